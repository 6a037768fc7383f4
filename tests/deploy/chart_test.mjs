// charts/airbag, offline: helm lint and template for the defaults, every example's values and
// the chart's switches; every rendered object against the Kubernetes (and Prometheus operator)
// schemas; then what no schema can say: probes name real ports, the Service reaches airbag and
// never the model, the rendered config passes `airbag --check-config`, shutdown is ordered, the
// alerts and dashboard queries parse and name metrics airbag exports.
import fs from "node:fs";
import path from "node:path";
import {
  check, env, equal, exampleFamilies, finish, freePort, helm, helmTemplate, chartDir, readYaml,
  request, run, startAirbag, startDemo, stopAll, tmpDir, tool, waitFor, YAML,
} from "./lib.mjs";

const k8s = {
  v1: await tool("kubernetes-models", "v1/index.js"),
  "apps/v1": await tool("kubernetes-models", "apps/v1/index.js"),
  "monitoring.coreos.com/v1": await tool(
    "@kubernetes-models/prometheus-operator", "monitoring.coreos.com/v1/index.js"),
};
const work = tmpDir("airbag-chart-test-");
const examples = path.join(env.source, "examples");

// Validates one object against its kind's OpenAPI schema.
function validateObject(obj, where) {
  const models = k8s[obj.apiVersion];
  const Model = models?.[obj.kind];
  if (!check(Model !== undefined, `${where}: no schema for ${obj.apiVersion} ${obj.kind}`)) return;
  try {
    new Model(obj).validate();
  } catch (e) {
    check(false, `${where}: ${obj.kind} ${obj.metadata?.name}: ${e.message}`);
  }
}

const byKind = (docs, kind) => docs.filter((d) => d.kind === kind);
const durationSeconds = (s) => {
  const m = /^(\d+)(ms|s|m|h)$/.exec(s);
  return m ? Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]] : NaN;
};

// The airbag config a render carries, as an object.
function renderedConfig(docs) {
  const cm = docs.find((d) => d.kind === "ConfigMap" && d.data?.["airbag.yaml"]);
  return cm ? YAML.parse(cm.data["airbag.yaml"]) : null;
}

// Checks one render in deployment mode; `values` are the values it was made from.
function checkDeployment(docs, where, values) {
  for (const d of docs) validateObject(d, where);
  const [dep] = byKind(docs, "Deployment");
  if (!check(dep !== undefined, `${where}: no Deployment`)) return;
  const pod = dep.spec.template.spec;
  const all = [...(pod.initContainers ?? []), ...pod.containers];
  const airbag = all.find((c) => c.name === "airbag");
  const model = pod.containers.find((c) => c.name !== "airbag");
  if (!check(airbag && model, `${where}: the pod lacks airbag or the model`)) return;

  // Sidecar placement.
  const native = (values.sidecar ?? "native") === "native";
  const inInit = (pod.initContainers ?? []).includes(airbag);
  check(inInit === native, `${where}: airbag is ${inInit ? "" : "not "}an init container`);
  if (native) equal(airbag.restartPolicy, "Always", `${where}: native sidecar restartPolicy`);

  // Ports: unique numbers in the pod, names unique per container, probes name real ports.
  const numbers = all.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
  check(new Set(numbers).size === numbers.length, `${where}: two containers share a port: ${numbers}`);
  for (const c of all) {
    const names = (c.ports ?? []).map((p) => p.name);
    for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const port = c[kind]?.httpGet?.port;
      if (port === undefined) continue;
      check(
        typeof port === "number" ? numbers.includes(port) : names.includes(port),
        `${where}: ${c.name}.${kind} names port ${port}, which ${c.name} does not have`);
    }
  }
  const portOf = (c, name) => c.ports.find((p) => p.name === name)?.containerPort;
  equal(airbag.livenessProbe?.httpGet, { path: "/healthz", port: "admin" }, `${where}: airbag liveness`);
  equal(airbag.readinessProbe?.httpGet, { path: "/readyz", port: "admin" }, `${where}: airbag readiness`);

  // The Service reaches airbag's data port, never the model's.
  for (const svc of byKind(docs, "Service")) {
    for (const p of svc.spec.ports) {
      const target = typeof p.targetPort === "number" ? p.targetPort
        : all.flatMap((c) => c.ports).find((x) => x.name === p.targetPort)?.containerPort;
      check(target !== undefined, `${where}: Service ${svc.metadata.name} targets unknown port ${p.targetPort}`);
      check(!(model.ports ?? []).some((mp) => mp.containerPort === target || mp.name === p.targetPort),
        `${where}: Service ${svc.metadata.name} targets the model's port ${p.targetPort}`);
      check([portOf(airbag, "http"), portOf(airbag, "admin")].includes(target),
        `${where}: Service ${svc.metadata.name} does not target airbag`);
    }
  }
  const [main] = byKind(docs, "Service").filter((s) => !s.metadata.name.endsWith("-admin"));
  equal(main?.spec.ports.map((p) => p.targetPort), ["http"], `${where}: the Service's target`);

  // The config agrees with the pod: addresses, the model's port, and it passes --check-config.
  const config = renderedConfig(docs);
  if (!check(config !== null, `${where}: no airbag config`)) return;
  equal(config.listen.address, `0.0.0.0:${portOf(airbag, "http")}`, `${where}: listen.address`);
  equal(config.admin.address, `0.0.0.0:${portOf(airbag, "admin")}`, `${where}: admin.address`);
  const modelPort = portOf(model, "model");
  for (const [name, u] of Object.entries(config.upstreams)) {
    const url = new URL(u.url);
    if (url.hostname === "127.0.0.1" || url.hostname === "localhost") {
      equal(Number(url.port), modelPort, `${where}: upstream ${name} is the model's port`);
    }
  }
  const file = path.join(work, "rendered.yaml");
  fs.writeFileSync(file, YAML.stringify(config));
  const cc = run(env.airbag, ["--check-config", file]);
  check(cc.status === 0 && !cc.stderr.includes("warning"), `${where}: airbag --check-config: ${cc.stderr.trim()}`);
  const args = airbag.args ?? [];
  equal(args.slice(0, 2), ["-c", "/etc/airbag/airbag.yaml"], `${where}: airbag's -c`);
  const mount = airbag.volumeMounts.find((m) => m.mountPath === "/etc/airbag");
  const vol = pod.volumes.find((v) => v.name === mount?.name);
  equal(vol?.configMap?.name, byKind(docs, "ConfigMap")[0].metadata.name, `${where}: config volume`);

  // Shutdown: the pod's grace covers the endpoint lag, airbag's drain and the model's stop; the
  // model's preStop holds it until airbag has drained.
  const grace = durationSeconds(args[args.indexOf("--drain-grace") + 1]);
  check(grace > 0, `${where}: airbag has no --drain-grace`);
  check(pod.terminationGracePeriodSeconds > grace,
    `${where}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= drain grace ${grace}`);
  const hold = model.lifecycle?.preStop?.exec?.command?.join(" ") ?? "";
  const held = Number(/sleep (\d+)/.exec(hold)?.[1] ?? 0);
  check(held >= grace, `${where}: the model's preStop holds ${held}s, less than the drain grace ${grace}s`);
  check(pod.terminationGracePeriodSeconds > held, `${where}: the pod's grace ends inside the model's hold`);

  // Hardening.
  const sc = airbag.securityContext ?? {};
  check(sc.runAsNonRoot === true && sc.readOnlyRootFilesystem === true &&
        sc.allowPrivilegeEscalation === false && !sc.capabilities?.add &&
        JSON.stringify(sc.capabilities?.drop) === '["ALL"]',
        `${where}: airbag's securityContext is not hardened: ${JSON.stringify(sc)}`);
  equal(pod.securityContext?.seccompProfile?.type, "RuntimeDefault", `${where}: pod seccomp`);
  check(airbag.resources?.requests?.cpu && airbag.resources?.limits?.memory,
    `${where}: airbag has no CPU request or memory limit`);
}

// The config without the addresses the chart owns, for comparing with an example's file.
function withoutAddresses(config) {
  const c = structuredClone(config);
  for (const k of ["listen", "admin"]) {
    if (!c[k]) continue;
    delete c[k].address;
    if (Object.keys(c[k]).length === 0) delete c[k];
  }
  return c;
}

// --- lint, and every values file ---
const valueSets = [["defaults", []], ...exampleFamilies().map((f) => [f, [path.join(examples, f, "values.yaml")]])];
for (const [name, files] of valueSets) {
  const args = ["lint", "--strict", chartDir(), ...files.flatMap((f) => ["-f", f])];
  const lint = run(helm(), args);
  check(lint.status === 0, `helm lint --strict (${name}): ${lint.stdout}${lint.stderr}`);
  const r = helmTemplate(files);
  if (!check(r.status === 0, `helm template (${name}): ${r.stderr}`)) continue;
  const values = files.length ? readYaml(files[0]) : {};
  checkDeployment(r.docs, name, values.airbag ?? {});
  // The example's values carry the same config as its airbag.yaml; the chart's default is vLLM's.
  const family = name === "defaults" ? "vllm" : name;
  const own = withoutAddresses(readYaml(path.join(examples, family, "airbag.yaml")));
  equal(withoutAddresses(renderedConfig(r.docs)), own, `${name}: the rendered config vs examples/${family}/airbag.yaml`);
}

// --- the chart's switches ---
for (const [name, sets] of [
  ["classic sidecar", ["airbag.sidecar=container"]],
  ["admin token", ["airbag.adminTokenSecret=airbag-admin"]],
  ["shared cache", ["airbag.sharedCache.redis=redis://redis:6379",
    "airbag.sharedCache.passwordSecret=airbag-redis"]],
  ["hot reload", ["airbag.reload=hot"]],
  ["monitors", ["metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true", "metrics.dashboard.enabled=true"]],
]) {
  const r = helmTemplate([], sets);
  if (!check(r.status === 0, `helm template (${name}): ${r.stderr}`)) continue;
  checkDeployment(r.docs, name, { sidecar: sets[0] === "airbag.sidecar=container" ? "container" : "native" });
}
{
  const token = helmTemplate([], ["airbag.adminTokenSecret=airbag-admin"]);
  equal(renderedConfig(token.docs)?.admin.token_file, "/var/run/airbag/admin/token", "admin token file");
  const shared = helmTemplate([], ["airbag.sharedCache.redis=redis://redis:6379",
    "airbag.sharedCache.passwordSecret=airbag-redis"]);
  const sharedConfig = renderedConfig(shared.docs)?.cache?.shared;
  equal(sharedConfig?.redis, "redis://redis:6379", "shared cache: redis url");
  equal(sharedConfig?.password_file, "/var/run/airbag/redis/password", "shared cache: password file");
  equal(sharedConfig?.timeout, "5ms", "shared cache: timeout");
  const sharedPod = shared.docs.find((d) => d.kind === "Deployment")?.spec.template.spec;
  check(sharedPod?.volumes?.some((v) => v.secret?.secretName === "airbag-redis"),
    "shared cache: the password Secret is not mounted");
  check(sharedConfig?.coalesce === undefined, "shared cache: coalescing on by default");
  const coalesced = renderedConfig(helmTemplate([], ["airbag.sharedCache.redis=redis://redis:6379",
    "airbag.sharedCache.coalesce=true", "airbag.sharedCache.coalesceWait=800ms"]).docs)?.cache?.shared;
  equal(coalesced?.coalesce, true, "shared cache: coalesce");
  equal(coalesced?.coalesce_wait, "800ms", "shared cache: coalesce_wait");
  check(renderedConfig(helmTemplate([], []).docs)?.cache?.shared === undefined,
    "shared cache: on without airbag.sharedCache.redis");
  // A managed Redis Cluster over TLS: rediss://, cluster, the CA from a Secret, the checked name.
  const tlsSets = ["airbag.sharedCache.redis=rediss://clustercfg.cache.example.internal:6379",
    "airbag.sharedCache.cluster=true", "airbag.sharedCache.tls.caSecret=redis-ca",
    "airbag.sharedCache.tls.sni=cache.example.internal"];
  const tlsRendered = helmTemplate([], tlsSets);
  if (check(tlsRendered.status === 0, `helm template (shared cache over TLS): ${tlsRendered.stderr}`)) {
    checkDeployment(tlsRendered.docs, "shared cache over TLS", { sidecar: "native" });
    const tlsShared = renderedConfig(tlsRendered.docs)?.cache?.shared;
    equal(tlsShared?.cluster, true, "shared cache: cluster");
    equal(tlsShared?.tls?.ca, "/var/run/airbag/redis-ca/ca.crt", "shared cache: tls.ca");
    equal(tlsShared?.tls?.sni, "cache.example.internal", "shared cache: tls.sni");
    check(tlsShared?.tls?.verify === undefined, "shared cache: tls.verify written although true");
    const tlsPod = tlsRendered.docs.find((d) => d.kind === "Deployment")?.spec.template.spec;
    check(tlsPod?.volumes?.some((v) => v.secret?.secretName === "redis-ca"),
      "shared cache: the CA Secret is not mounted");
    const mounted = [...(tlsPod?.initContainers ?? []), ...(tlsPod?.containers ?? [])]
      .find((x) => x.name === "airbag")?.volumeMounts ?? [];
    check(mounted.some((m) => m.mountPath === "/var/run/airbag/redis-ca"),
      "shared cache: the CA Secret is not mounted in the airbag container");
  }
  check(renderedConfig(helmTemplate([], ["airbag.sharedCache.redis=redis://redis:6379"]).docs)
    ?.cache?.shared?.tls === undefined, "shared cache: tls written for a redis:// url");
  const plainTls = helmTemplate([], ["airbag.sharedCache.redis=redis://redis:6379",
    "airbag.sharedCache.tls.verify=false"]);
  check(plainTls.status !== 0 && plainTls.stderr.includes("rediss://"),
    `shared cache: tls settings with a redis:// url did not fail: ${plainTls.stderr.trim()}`);
  const classic = helmTemplate([], ["airbag.sidecar=container"]).docs.find((d) => d.kind === "Deployment");
  const c = classic?.spec.template.spec.containers.find((x) => x.name === "airbag");
  check(c?.lifecycle?.preStop?.exec, "classic sidecar: airbag has no preStop for the endpoint lag");
}

// Config changes roll the pods, unless reload is hot.
{
  const sum = (sets) => helmTemplate([], sets).docs.find((d) => d.kind === "Deployment")
    ?.spec.template.metadata.annotations?.["checksum/airbag-config"];
  const a = sum([]);
  const b = sum(["airbag.port=8081"]);
  check(a && b && a !== b, "the config checksum does not follow the config");
  check(sum(["airbag.port=8081", "airbag.reload=hot"]) === undefined,
    "reload=hot still rolls pods on config changes");
}

// Bad values fail at install time, naming the value.
for (const [set, says] of [
  ["airbag.sidecar=sidecar", "airbag.sidecar"],
  ["airbag.drainGraceSeconds=0", "airbag.drainGraceSeconds"],
  ["airbag.config.listen.address=1.2.3.4:80", "address"],
  ["airbag.config.upstreams.m.url=http://127.0.0.1:1", "routes"],
  ["airbag.config.cache.max_bytes=lots", "airbag.config.cache.max_bytes"],
  ["model.port=70000", "model.port"],
  ["mode=both", "mode"],
]) {
  const r = helmTemplate([], [set]);
  check(r.status !== 0 && r.stderr.includes(says), `--set ${set} did not fail naming ${says}: ${r.stderr.trim()}`);
}

// --- patch mode: only airbag, as a strategic-merge patch; merged into a workload it validates ---
{
  for (const sidecar of ["native", "container"]) {
    const r = helmTemplate([], ["mode=patch", `airbag.sidecar=${sidecar}`]);
    if (!check(r.status === 0, `helm template (patch, ${sidecar}): ${r.stderr}`)) continue;
    check(!r.docs.some((d) => ["Deployment", "Service"].includes(d.kind)), "patch mode renders a Deployment or Service");
    const patch = r.docs.find((d) => d.kind === undefined);
    if (!check(patch?.spec?.template?.spec, "patch mode renders no patch")) continue;
    const p = patch.spec.template.spec;
    const owned = {
      apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "my-model" },
      spec: {
        selector: { matchLabels: { app: "m" } },
        template: {
          metadata: { labels: { app: "m" }, annotations: patch.spec.template.metadata?.annotations },
          spec: {
            terminationGracePeriodSeconds: p.terminationGracePeriodSeconds,
            initContainers: p.initContainers,
            containers: [{ name: "model", image: "m:1", ports: [{ name: "model", containerPort: 8000 }],
              lifecycle: { preStop: { exec: { command: ["/bin/sh", "-c", "sleep 30"] } } } },
            ...(p.containers ?? [])],
            volumes: p.volumes,
            securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          },
        },
      },
    };
    const docs = [...r.docs.filter((d) => d.kind !== undefined), owned,
      { apiVersion: "v1", kind: "Service", metadata: { name: "my-model" },
        spec: { selector: { app: "m" }, ports: [{ name: "http", port: 80, targetPort: "http" }] } }];
    checkDeployment(docs, `patch (${sidecar})`, { sidecar });
  }
}

// --- alerts and dashboard: promtool parses them; every metric they name is exported ---
async function exportedMetrics() {
  const demo = await startDemo();
  const config = YAML.parse(YAML.stringify(renderedConfig(helmTemplate().docs)));
  for (const u of Object.values(config.upstreams)) u.url = `http://127.0.0.1:${demo.port}`;
  const ab = await startAirbag(config, work);
  // Traffic that makes every family the alerts and dashboard use appear: a cache lookup, then a
  // model answering 503 until retries outrun the retry budget.
  const json = { "content-type": "application/json" };
  await request(ab.port, "POST", "/v1/embeddings", { input: "a" }, json);
  await request(demo.port, "PUT", "/control/behavior", { error_rate: 1, error_status: 503 });
  // embeddings retries 5xx and has no breaker to stop the retries.
  let text = "";
  let sent = 0;
  await waitFor(async () => {
    await Promise.all(Array.from({ length: 10 }, () =>
      request(ab.port, "POST", "/v1/embeddings", { input: `x${sent++}` }, json)));
    text = (await request(ab.adminPort, "GET", "/metrics")).body;
    return text.includes("airbag_retry_budget_exhausted_total{") || sent >= 300;
  }, 20_000, "retries refused by the budget");
  const names = new Set();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)/gm)) {
    names.add(m[1]);
    if (m[2] === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(m[1] + s);
  }
  for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)) names.add(m[1]);
  return names;
}
const metricsIn = (expr) => [...expr.matchAll(/\bairbag_[a-z_]+/g)].map((m) => m[0]);

try {
  const exported = await exportedMetrics();
  const r = helmTemplate([], ["metrics.prometheusRule.enabled=true", "metrics.dashboard.enabled=true"]);
  const rule = r.docs.find((d) => d.kind === "PrometheusRule");
  if (check(rule, "no PrometheusRule with metrics.prometheusRule.enabled")) {
    const file = path.join(work, "rules.yaml");
    fs.writeFileSync(file, YAML.stringify(rule.spec));
    const pt = run(env.promtool, ["check", "rules", file]);
    check(pt.status === 0, `promtool check rules: ${pt.stdout}${pt.stderr}`);
    const alerts = rule.spec.groups.flatMap((g) => g.rules);
    equal(alerts.map((a) => a.alert).sort(),
      ["AirbagAnswersNotFromModel", "AirbagCacheFull", "AirbagCircuitOpen", "AirbagRetryBudgetExhausted"], "alerts");
    for (const a of alerts) {
      check(a.annotations?.runbook, `${a.alert} has no runbook line`);
      for (const m of metricsIn(a.expr)) check(exported.has(m), `${a.alert} names ${m}, which airbag does not export`);
    }
    const byName = Object.fromEntries(alerts.map((a) => [a.alert, a]));
    check(/> 0\.1\b/.test(byName.AirbagAnswersNotFromModel?.expr) && byName.AirbagAnswersNotFromModel?.for === "5m",
      "the not-from-model alert is not > 10% for 5m");
    equal(byName.AirbagCircuitOpen?.for, "5m", "breaker alert's for");
    check(byName.AirbagCacheFull?.expr.includes(String(Math.trunc(64 * 1024 * 1024 * 0.95))),
      `the cache alert's threshold is not 95% of 64MiB: ${byName.AirbagCacheFull?.expr}`);
  }
  const dash = r.docs.find((d) => d.kind === "ConfigMap" && d.data?.["airbag.json"]);
  if (check(dash, "no dashboard ConfigMap with metrics.dashboard.enabled")) {
    const json = JSON.parse(dash.data["airbag.json"]);
    const exprs = json.panels.flatMap((p) => p.targets.map((t) => t.expr));
    const titles = json.panels.map((p) => p.title).join(" | ");
    for (const want of ["x-airbag-source", "breaker", "percentile", "hit ratio"]) {
      check(titles.toLowerCase().includes(want.toLowerCase()), `the dashboard has no panel for ${want}`);
    }
    const rules = {
      groups: [{ name: "dashboard", rules: exprs.map((e, i) => ({
        record: `dashboard:query${i}`,
        expr: e.replaceAll("$__rate_interval", "5m").replaceAll("$namespace", ".*").replaceAll("$pod", ".*"),
      })) }],
    };
    const file = path.join(work, "dashboard-rules.yaml");
    fs.writeFileSync(file, YAML.stringify(rules));
    const pt = run(env.promtool, ["check", "rules", file]);
    check(pt.status === 0, `the dashboard's queries do not parse: ${pt.stdout}${pt.stderr}`);
    for (const e of exprs) for (const m of metricsIn(e)) check(exported.has(m), `the dashboard names ${m}, which airbag does not export`);
  }
} finally {
  await stopAll();
  fs.rmSync(work, { recursive: true, force: true });
}
finish("chart_test");
