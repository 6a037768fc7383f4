// The Dockerfile, without a container engine: the runtime stages install the Debian package of
// every shared library `ldd` lists for the binary they ship, and the build stage builds with the
// README's commands.
import fs from "node:fs";
import path from "node:path";
import { check, env, equal, finish, run } from "./lib.mjs";

const dockerfile = fs.readFileSync(path.join(env.source, "Dockerfile"), "utf8");
const readme = fs.readFileSync(path.join(env.source, "README.md"), "utf8");

// Stages in order: {name, from, runs: [command], copies: [line], user, entrypoint}.
function stages(text) {
  const out = [];
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim());
  for (const line of lines) {
    if (line === "" || line.startsWith("#")) continue;
    const [op, ...rest] = line.split(/\s+/);
    const arg = rest.join(" ");
    if (op.toUpperCase() === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(arg);
      out.push({ from: m[1], name: m[2] ?? "", runs: [], copies: [], user: "", entrypoint: "" });
      continue;
    }
    const s = out.at(-1);
    if (op === "RUN") s.runs.push(arg.replace(/\s+/g, " "));
    if (op === "COPY") s.copies.push(arg);
    if (op === "USER") s.user = arg;
    if (op === "ENTRYPOINT") s.entrypoint = arg;
  }
  return out;
}
const all = stages(dockerfile);
const stage = (name) => all.find((s) => s.name === name);
const chain = (s) => (s ? [s, ...chain(stage(s.from))] : []);

// Debian packages installed by `apt-get install` in a stage and the stages it is built on.
function installed(s) {
  const pkgs = new Set();
  for (const st of chain(s)) {
    for (const r of st.runs) {
      for (const part of r.split("&&")) {
        const m = /apt-get install (.*)/.exec(part.trim());
        if (m) for (const w of m[1].split(/\s+/)) if (w && !w.startsWith("-")) pkgs.add(w);
      }
    }
  }
  return pkgs;
}

// Where the dynamic loader finds a library by its soname, from `ldconfig -p`.
function libraryPath(soname) {
  const m = new RegExp(`^\\s*${soname.replace(/\./g, "\\.")} \\(.*\\) => (\\S+)$`, "m")
    .exec(run("ldconfig", ["-p"]).stdout);
  check(m, `ldconfig does not know ${soname}`);
  return m?.[1];
}

// The Debian package that ships each shared library the binary loads (one dpkg query for all),
// with `opened` (sonames the binary opens at run time, and what they load) among them.
function neededPackages(binary, opened = []) {
  const libs = new Set();
  for (const file of [binary, ...opened.map(libraryPath).filter(Boolean)]) {
    if (file !== binary) libs.add(file);
    const ldd = run("ldd", [file]);
    if (!check(ldd.status === 0, `ldd ${file}: ${ldd.stderr}`)) continue;
    for (const m of ldd.stdout.matchAll(/=>\s+(\/\S+)/g)) libs.add(m[1]);
  }
  // Debian 12 registers a library under /lib or /usr/lib: ask for both spellings.
  const spellings = (lib) => [lib, lib.startsWith("/usr/") ? lib.slice(4) : `/usr${lib}`];
  const owners = new Map();
  for (const line of run("dpkg", ["-S", ...[...libs].flatMap(spellings)]).stdout.split("\n")) {
    const m = /^([^:]+)(?::[^:]+)?: (\/\S+)$/.exec(line.trim());
    if (m) owners.set(m[2], m[1]);
  }
  const pkgs = new Set();
  for (const lib of libs) {
    const owner = spellings(lib).map((p) => owners.get(p)).find(Boolean);
    if (check(owner, `no Debian package ships ${lib}`)) pkgs.add(owner);
  }
  return [...pkgs].sort();
}

const build = stage("build");
const final = all.at(-1);
check(build && /^debian:12(\b|$)/.test(build.from), "the build stage is not FROM debian:12");
equal(final?.name, "airbag", "the default (last) stage");
// airbag opens libcurl when a configuration has an https upstream or a health check.
for (const [name, binary, where, opened] of [
  ["airbag", env.airbag, "/usr/local/bin/airbag", ["libcurl.so.4"]],
  ["demo-model-server", env.demo, "/usr/local/bin/demo-model-server", []],
]) {
  const s = stage(name);
  if (!check(s, `no ${name} stage`)) continue;
  check(/^debian:12-slim$/.test(chain(s).at(-1).from), `${name} is not built on debian:12-slim`);
  const have = installed(s);
  for (const pkg of neededPackages(binary, opened)) {
    check(have.has(pkg), `${name}: ldd needs ${pkg}, which the stage does not install`);
  }
  check(s.copies.some((c) => c.startsWith("--from=build ") && c.endsWith(where)), `${name}: not copied from the build stage to ${where}`);
  check(/^\d+(:\d+)?$/.test(s.user) && !/^0(:|$)/.test(s.user), `${name}: USER is not a non-root uid: ${s.user}`);
  check(s.entrypoint.includes(where), `${name}: ENTRYPOINT is not ${where}`);
  check(!installed(s).has("build-essential"), `${name}: ships a compiler`);
}

// Every command of the build stage that installs or builds is one the README gives.
const readmeCommands = new Set(
  [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1].split("\n").map((l) => l.replace(/#.*$/, "").trim().replace(/^\.\//, "")).filter(Boolean)));
const buildCommands = build?.runs.filter((r) => /setup\.sh|cmake/.test(r)) ?? [];
check(buildCommands.length >= 3, `the build stage has ${buildCommands.length} setup/cmake commands`);
for (const c of buildCommands) {
  check(readmeCommands.has(c.replace(/^\.\//, "")), `the build stage runs \`${c}\`, which the README does not give`);
}
check(buildCommands.some((c) => c.includes("--target airbag demo-model-server")),
  "the build stage does not build only airbag and the demo model server");

// The build context leaves out build trees and the repository.
const ignore = fs.readFileSync(path.join(env.source, ".dockerignore"), "utf8").split("\n").map((l) => l.trim());
for (const want of [".git", "build"]) check(ignore.includes(want), `.dockerignore does not leave out ${want}`);

finish("image_test");
