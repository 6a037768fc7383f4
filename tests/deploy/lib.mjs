// The test kit of tests/deploy/: running tools, rendering the chart, starting airbag and the demo
// model server on loopback, and collecting failures so that one run reports all of them.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import http from "node:http";

export const env = {
  source: required("AIRBAG_SOURCE_DIR"),
  airbag: process.env.AIRBAG_BIN ?? "",
  demo: process.env.DEMO_SERVER_BIN ?? "",
  tools: process.env.DEPLOY_TOOLS ?? "",
  promtool: process.env.PROMTOOL ?? "promtool",
};

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return v;
}

// Loads a package installed by install-tools.sh (ES modules, by file path).
export async function tool(pkg, sub = "index.js") {
  return import(path.join(env.tools, "node_modules", pkg, sub));
}
export const YAML = env.tools ? await tool("yaml", "dist/index.js") : null;

// Failures are collected, printed together, and decide the exit status.
const failures = [];
export function check(ok, what) {
  if (!ok) failures.push(what);
  return ok;
}
// JSON with object keys sorted, so that key order does not count.
export function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}
export function equal(actual, expected, what) {
  const a = canonical(actual);
  const e = canonical(expected);
  if (a === e) return true;
  let i = 0;
  while (i < a.length && a[i] === e[i]) i++;
  const at = (s) => s.slice(Math.max(0, i - 60), i + 60);
  return check(false, `${what}: differs at ...${at(e)}... (expected) vs ...${at(a)}... (got)`);
}
export function finish(name) {
  if (failures.length > 0) {
    console.error(`${name}: ${failures.length} failure(s)`);
    for (const f of failures) console.error(`  - ${f}`);
    process.exit(1);
  }
  console.log(`${name}: all checks passed`);
}

// Runs a command to completion (bounded); returns {status, stdout, stderr}.
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000, ...opts });
  if (r.error) return { status: -1, stdout: "", stderr: String(r.error) };
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function tmpDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const chartDir = () => path.join(env.source, "charts", "airbag");
export const helm = () => path.join(env.tools, "bin", "helm");

// `helm template` with values files and --set pairs; returns {status, docs, stderr}.
export function helmTemplate(valuesFiles = [], sets = [], extra = []) {
  const args = ["template", "rel", chartDir(), "--namespace", "models"];
  for (const f of valuesFiles) args.push("-f", f);
  for (const s of sets) args.push("--set", s);
  const r = run(helm(), [...args, ...extra]);
  if (r.status !== 0) return { status: r.status, docs: [], stderr: r.stderr };
  const docs = YAML.parseAllDocuments(r.stdout)
    .map((d) => d.toJS())
    .filter((d) => d !== null && d !== undefined);
  return { status: 0, docs, stderr: r.stderr };
}

// The example folders: examples/<family>/ with airbag.yaml and values.yaml.
export function exampleFamilies() {
  const dir = path.join(env.source, "examples");
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, "airbag.yaml")))
    .map((e) => e.name)
    .sort();
}

export function readYaml(file) {
  return YAML.parse(fs.readFileSync(file, "utf8"));
}

// A TCP port on 127.0.0.1 that was free a moment ago.
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// One HTTP request to 127.0.0.1; resolves {status, headers, body} (body as text).
export function request(port, method, pathname, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method, path: pathname, headers, timeout: 10_000, agent: false },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (data += c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${pathname}: timed out`)));
    req.on("error", reject);
    if (body !== undefined) req.write(typeof body === "string" ? body : JSON.stringify(body));
    req.end();
  });
}

// Polls `probe` (an async function returning true when done) every 50 ms for up to `ms`.
export async function waitFor(probe, ms, what) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return true;
    } catch (e) {
      if (e.fatal) throw e; // else: not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

// Processes started by a test; stopAll() ends them (SIGTERM, then SIGKILL after 5 s).
const children = [];
export function start(cmd, args) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.output = "";
  child.stdout.on("data", (c) => (child.output += c));
  child.stderr.on("data", (c) => (child.output += c));
  children.push(child);
  return child;
}
export async function stopAll() {
  await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => c.kill("SIGKILL"), 5000);
          c.once("exit", () => {
            clearTimeout(t);
            resolve();
          });
          c.kill("SIGTERM");
        }),
    ),
  );
}

// The demo model server on a free loopback port; resolves {child, port}.
export async function startDemo(name = "model") {
  const child = start(env.demo, ["--listen", "127.0.0.1:0", "--name", name]);
  let port = 0;
  await waitFor(
    async () => {
      const m = child.output.match(/listening on 127\.0\.0\.1:(\d+)/);
      if (m) port = Number(m[1]);
      return port > 0;
    },
    10_000,
    "the demo model server's port",
  );
  return { child, port };
}

// airbag with `config` (an object) written to a file, listening on free loopback ports, ready
// when /readyz answers 200; resolves {child, port, adminPort}.
export async function startAirbag(config, dir) {
  const port = await freePort();
  const adminPort = await freePort();
  config.listen = { ...(config.listen ?? {}), address: `127.0.0.1:${port}`, workers: 1 };
  config.admin = { ...(config.admin ?? {}), address: `127.0.0.1:${adminPort}` };
  config.log = { level: "warn", access_log: "off", format: "text" };
  const file = path.join(dir, "airbag.yaml");
  fs.writeFileSync(file, YAML.stringify(config));
  const child = start(env.airbag, ["-c", file]);
  await waitFor(
    async () => {
      if (child.exitCode !== null) {
        throw Object.assign(new Error(`airbag exited: ${child.output}`), { fatal: true });
      }
      return (await request(adminPort, "GET", "/readyz")).status === 200;
    },
    10_000,
    "airbag's /readyz",
  );
  return { child, port, adminPort };
}
