// examples/: every config passes `airbag --check-config`; the OpenAI (vLLM) and KServe v2
// (Triton) examples run end to end against the demo model server, healthy and then failing.
import fs from "node:fs";
import path from "node:path";
import {
  check, env, equal, exampleFamilies, finish, readYaml, request, run, startAirbag, startDemo,
  stopAll, tmpDir,
} from "./lib.mjs";

const examples = path.join(env.source, "examples");
const work = tmpDir("airbag-examples-test-");
const json = { "content-type": "application/json" };

for (const file of [
  path.join(examples, "quickstart.yaml"),
  ...exampleFamilies().map((f) => path.join(examples, f, "airbag.yaml")),
]) {
  const r = run(env.airbag, ["--check-config", file]);
  check(r.status === 0 && !r.stderr.includes("warning"),
    `--check-config ${path.relative(examples, file)}: ${r.stderr.trim()}`);
  check(fs.existsSync(path.join(path.dirname(file), "README.md")) || file.endsWith("quickstart.yaml"),
    `${path.relative(examples, path.dirname(file))} has no README.md`);
}

// Runs one family's example against a fresh demo model server; `steps(ab, demo)` makes the calls.
async function family(name, steps) {
  const demo = await startDemo();
  const config = readYaml(path.join(examples, name, "airbag.yaml"));
  for (const u of Object.values(config.upstreams)) u.url = `http://127.0.0.1:${demo.port}`;
  const dir = fs.mkdtempSync(path.join(work, `${name}-`));
  const ab = await startAirbag(config, dir);
  try {
    await steps(ab, demo);
  } finally {
    await stopAll();
  }
}
const source = (r) => r.headers["x-airbag-source"];
const expect = (r, status, src, what) =>
  check(r.status === status && source(r) === src,
    `${what}: expected ${status} from ${src}, got ${r.status} from ${source(r)}: ${r.body.slice(0, 200)}`);
const behave = (demo, b) => request(demo.port, "PUT", "/control/behavior", b);

try {
  await family("vllm", async (ab, demo) => {
    const chat = { model: "m", messages: [{ role: "user", content: "hello" }] };
    // Healthy: the model answers; its other endpoints pass straight through.
    let r = await request(ab.port, "POST", "/v1/chat/completions", chat, json);
    expect(r, 200, "upstream", "chat, healthy");
    check(r.status === 200 && JSON.parse(r.body).choices?.[0]?.message?.content === "hello", "chat answer");
    r = await request(ab.port, "POST", "/v1/chat/completions", { ...chat, stream: true }, json);
    expect(r, 200, "upstream", "streamed chat, healthy");
    check(r.headers["content-type"]?.startsWith("text/event-stream") && r.body.includes("data: [DONE]"),
      "the stream passes through to [DONE]");
    expect(await request(ab.port, "GET", "/health"), 200, "upstream", "/health through airbag");
    // The demo has no /metrics or /tokenize: its own 404, not airbag's no_route.
    for (const p of ["/metrics", "/tokenize"]) {
      r = await request(ab.port, p === "/metrics" ? "GET" : "POST", p, p === "/metrics" ? undefined : "{}");
      check(source(r) === "upstream" && !r.body.includes("no_route"), `${p} reaches the model: ${r.body}`);
    }
    expect(await request(ab.port, "GET", "/v1/models"), 200, "upstream", "models, healthy");
    r = await request(ab.port, "POST", "/v1/embeddings", { input: "same" }, json);
    expect(r, 200, "upstream", "embeddings, first");
    expect(await request(ab.port, "POST", "/v1/embeddings", { input: "same" }, json), 200, "cache", "embeddings, again");

    // Failing: the safe default, in OpenAI's error shape; a kept embedding still answers.
    await behave(demo, { error_rate: 1, error_status: 500 });
    r = await request(ab.port, "POST", "/v1/chat/completions", chat, json);
    expect(r, 503, "default", "chat, model failing");
    const err = JSON.parse(r.body).error ?? {};
    check(typeof err.message === "string" && typeof err.type === "string" && "code" in err,
      `OpenAI error shape: ${r.body}`);
    expect(await request(ab.port, "POST", "/v1/embeddings", { input: "same" }, json), 200, "cache", "embeddings, model failing");
    // A health answer is the model's own, failing too: never cached, never stale.
    await behave(demo, { error_rate: 0, healthy: false });
    expect(await request(ab.port, "GET", "/health"), 503, "upstream", "/health, model unhealthy");

    // The README's walk-through: fail the route on purpose through the admin fault endpoint.
    await request(demo.port, "POST", "/control/reset");
    r = await request(ab.adminPort, "PUT", "/routes/chat/fault", { abort: { percent: 100, status: 503 } });
    equal(r.status, 200, "PUT /routes/chat/fault");
    expect(await request(ab.port, "POST", "/v1/chat/completions", chat, json), 503, "default", "chat, fault injected");
    await request(ab.adminPort, "DELETE", "/routes/chat/fault");
    expect(await request(ab.port, "POST", "/v1/chat/completions", chat, json), 200, "upstream", "chat, fault cleared");
  });

  await family("kserve-triton", async (ab, demo) => {
    const infer = { id: "r1", inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [1] }] };
    let r = await request(ab.port, "POST", "/v2/models/iris/infer", infer, json);
    expect(r, 200, "upstream", "infer, healthy");
    check(r.status === 200 && JSON.parse(r.body).outputs?.length === 1, "infer answer");
    for (const p of ["/v2/health/ready", "/v2/health/live", "/v2/models/iris/ready"]) {
      expect(await request(ab.port, "GET", p), 200, "upstream", `${p}, healthy`);
    }
    expect(await request(ab.port, "GET", "/v2/models/iris"), 200, "upstream", "model metadata");
    expect(await request(ab.port, "GET", "/v2/models/iris"), 200, "cache", "model metadata, again");

    // Failing and not ready: inference gets the protocol's error shape from the default; the
    // readiness answers are the server's own 503, never a stale 200.
    await behave(demo, { error_rate: 1, healthy: false });
    r = await request(ab.port, "POST", "/v2/models/iris/infer", infer, json);
    expect(r, 503, "default", "infer, model failing");
    check(typeof JSON.parse(r.body).error === "string", `KServe error shape: ${r.body}`);
    for (const p of ["/v2/health/ready", "/v2/models/iris/ready"]) {
      expect(await request(ab.port, "GET", p), 503, "upstream", `${p}, model not ready`);
    }
  });
} finally {
  await stopAll();
  fs.rmSync(work, { recursive: true, force: true });
}
finish("examples_test");
