#!/usr/bin/env python3
"""Admission under overload: a model at 2x its capacity, mixed priorities, with and without
saturation-aware admission. Starts the demo model server in its saturation mode and airbag on
loopback, sends an open-loop load (a fixed arrival rate, each request on its own connection),
samples the model's queue, and writes:

  requests.csv  scenario,phase,t_ms,tier,status,source,admission,ttfb_ms,total_ms,airbag_ms
  queue.csv     scenario,t_ms,waiting,running
  results.md    the side-by-side summary

  bench.py --airbag BIN --demo BIN --out DIR [--short] [--check]
           [--capacity 8] [--service-ms 200] [--seconds 20] [--port-base N]
           [--scrape-ms 50] [--waiting-gt N]

airbag_ms is airbag's own time for the request (total_ms of its access log, matched by
x-request-id): the client's total_ms minus airbag_ms is what the load generator, the kernel and
the loopback cost, reported on its own so a busy machine's Python is not mistaken for airbag.

--short runs a few seconds per phase; --check then asserts what must hold whatever the machine
(exit 1 if not): with admission no critical request fails and every request gets an answer.
"""
import argparse
import asyncio
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

TIERS = [("critical", 0.2), ("normal", 0.3), ("optional", 0.5)]

CONFIG = """
listen: {{ address: 127.0.0.1:{port}, workers: 2 }}
admin: {{ address: 127.0.0.1:{admin} }}
log: {{ level: warn, access_log: {access_log}, format: json }}
upstreams:
  model:
    url: http://127.0.0.1:{model}
    connect_timeout: 1s
    max_connections: 1024
{saturation}
routes:
{routes}
"""

SATURATION = """    saturation:
      metrics_path: /metrics
      interval: {interval}ms
      when_any: [ {{ metric: "vllm:num_requests_waiting", gt: {gt} }} ]"""

ROUTE = """  - name: {tier}
    match: {{ path: /predict, headers: {{ x-tier: {tier} }} }}
    upstream: model
    priority: {tier}
    timeout: {{ total: {total}, first_byte: {first_byte} }}
    bulkhead: {{ max_in_flight: 1024 }}
{admission}    fallback:
      - respond: {{ status: 200, json: {{ degraded: true, tier: {tier} }} }}
"""

# Critical requests may wait for the model the longest; optional ones are not worth a wait. The
# adaptive limit is the model's, shared by the three routes.
ADMISSION = {
    "critical": "    admission: { adaptive: { min: 4, max: 64 }, queue: { max: 1024, timeout: 5s } }\n",
    "normal": "    admission: { queue: { max: 256, timeout: 500ms } }\n",
    "optional": "    admission: { queue: { max: 0 } }\n",
}


def config(ports, admission, args, access_log):
    routes = "".join(
        ROUTE.format(tier=t, total="10s", first_byte="5s", admission=ADMISSION[t] if admission else "")
        for t, _ in TIERS)
    gt = args.waiting_gt or max(1, args.capacity // 4)
    sat = SATURATION.format(gt=gt, interval=args.scrape_ms) if admission else ""
    return CONFIG.format(port=ports["airbag"], admin=ports["admin"], model=ports["model"],
                         saturation=sat, routes=routes, access_log=access_log)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def http(port, method, path, body=b"", headers=None, timeout=5.0):
    """One blocking request with Connection: close; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        h = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        s.sendall(f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
                  f"content-length: {len(body)}\r\n{h}\r\n".encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), fields, rest


async def one_request(port, tier, request_id, deadline_s):
    """Returns (status, source, admission, ttfb_ms, total_ms); status 0 when it failed."""
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        body = b'{"prompt":"bench"}'
        writer.write(b"POST /predict HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
                     b"x-tier: " + tier.encode() + b"\r\ncontent-type: application/json\r\n"
                     b"x-request-id: " + request_id.encode() + b"\r\n"
                     b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), deadline_s)
        ttfb = time.monotonic() - start
        await asyncio.wait_for(reader.read(), deadline_s)
        total = time.monotonic() - start
        writer.close()
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        return (int(lines[0].split()[1]), fields.get("x-airbag-source", ""),
                fields.get("x-airbag-admission", ""), ttfb * 1000, total * 1000)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
        return (0, "", "", 0.0, (time.monotonic() - start) * 1000)


async def sample_queue(model_port, scenario, t0, stop, out):
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            _, _, body = await loop.run_in_executor(
                None, lambda: http(model_port, "GET", "/control/stats", timeout=2))
            st = json.loads(body)
            out.append((scenario, int((time.monotonic() - t0) * 1000), st["waiting"], st["running"]))
        except (OSError, ValueError, KeyError):
            pass
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass


async def phase(port, scenario, name, rate, seconds, t0, rng, rows):
    """Open loop: requests start at `rate` per second whatever the answers do."""
    tasks = []
    n = int(rate * seconds)
    start = time.monotonic()
    for i in range(n):
        at = start + i / rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        r = rng.random()
        acc = 0.0
        tier = TIERS[-1][0]
        for t, share in TIERS:
            acc += share
            if r < acc:
                tier = t
                break
        sent = int((time.monotonic() - t0) * 1000)

        async def run(tier=tier, sent=sent, rid=f"{scenario}-{name}-{i}"):
            res = await one_request(port, tier, rid, 30)
            rows.append((scenario, name, sent, tier) + res + (rid,))

        tasks.append(asyncio.create_task(run()))
    await asyncio.gather(*tasks)


def start(argv, label, log_dir):
    out = open(os.path.join(log_dir, label + ".log"), "w")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def scenario(args, name, admission, rows, queue):
    if args.port_base:
        ports = {"model": args.port_base, "airbag": args.port_base + 1, "admin": args.port_base + 2}
    else:
        ports = {"model": free_port(), "airbag": free_port(), "admin": free_port()}
    work = tempfile.mkdtemp(prefix="airbag-admission-bench-")
    cfg = os.path.join(work, "airbag.yaml")
    access_log = os.path.join(work, "access.log")
    with open(cfg, "w") as f:
        f.write(config(ports, admission, args, access_log))
    demo = start([args.demo, "--listen", f"127.0.0.1:{ports['model']}"], "demo", work)
    airbag = None
    try:
        wait_port(ports["model"])
        http(ports["model"], "PUT", "/control/behavior",
             json.dumps({"capacity": args.capacity, "service_ms": args.service_ms}).encode())
        airbag = start([args.airbag, "-c", cfg], "airbag", work)
        wait_port(ports["airbag"])
        wait_port(ports["admin"])
        rng = random.Random(1)
        t0 = time.monotonic()
        halt = asyncio.Event()
        sampler = asyncio.create_task(sample_queue(ports["model"], name, t0, halt, queue))
        capacity_rps = args.capacity * 1000.0 / args.service_ms
        await phase(ports["airbag"], name, "unloaded", capacity_rps * 0.5, args.seconds / 2, t0,
                    rng, rows)
        await phase(ports["airbag"], name, "overload", capacity_rps * 2, args.seconds, t0, rng,
                    rows)
        halt.set()
        await sampler
    finally:
        if airbag:
            stop(airbag)
        stop(demo)
    # airbag's own time per request, from its access log (written before the answer's last byte).
    inside = {}
    try:
        with open(access_log) as f:
            for line in f:
                try:
                    e = json.loads(line)
                    inside[e["request_id"]] = e["total_ms"]
                except (ValueError, KeyError):
                    pass
    except OSError:
        pass
    for k, r in enumerate(rows):
        if r[0] == name and isinstance(r[9], str):
            rows[k] = r[:9] + (inside.get(r[9], float("nan")),)


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def ratio(a, b):
    return a / b if b else float("nan")


def summarize(rows, queue, args):
    out = ["# Admission under overload", "",
           f"Model: demo-model-server, capacity {args.capacity} at once, {args.service_ms} ms each "
           f"({args.capacity * 1000 // args.service_ms} requests/s). Load: open loop, "
           f"{args.seconds / 2:g} s at 0.5x then {args.seconds:g} s at 2x, "
           + ", ".join(f"{int(s * 100)}% {t}" for t, s in TIERS) + ". "
           f"Machine load average (1 min) at the start and the end of the run: "
           f"{args.load[0]:.1f} and {args.load[1]:.1f}.", ""]
    stats = {}
    for scen in ("without", "with"):
        r = [x for x in rows if x[0] == scen]
        unl = [x for x in r if x[1] == "unloaded" and x[3] == "critical" and x[5] == "upstream"]
        over = [x for x in r if x[1] == "overload"]
        crit = [x for x in over if x[3] == "critical"]
        crit_ok = [x for x in crit if x[4] == 200 and x[5] == "upstream"]
        ladder = [x for x in over if x[5] not in ("upstream", "")]
        q = [x[2] for x in queue if x[0] == scen]
        stats[scen] = {
            "unloaded_p99": pct([x[7] for x in unl], 99),
            "crit_n": len(crit), "crit_ok": len(crit_ok),
            "crit_failed": len([x for x in crit if x[4] != 200]),
            "crit_p99": pct([x[7] for x in crit_ok], 99),
            "unloaded_inside_p99": pct([x[9] for x in unl if x[9] == x[9]], 99),
            "crit_inside_p99": pct([x[9] for x in crit_ok if x[9] == x[9]], 99),
            "by_source": {s: len([x for x in over if x[5] == s]) for s in ("upstream", "default", "none", "")},
            "ladder_p99": pct([x[8] for x in ladder if x[6] in ("saturated", "adaptive-limit")], 99),
            "ladder_at_once_p99": pct([x[8] for x in ladder if x[3] == "optional"], 99),
            "ladder_inside_p99": pct([x[9] for x in ladder if x[3] == "optional" and x[9] == x[9]], 99),
            "ladder_outside_p99": pct([x[8] - x[9] for x in ladder
                                       if x[3] == "optional" and x[9] == x[9]], 99),
            "failed": len([x for x in r if x[4] == 0]),
            "max_waiting": max(q) if q else 0,
            "total": len(r),
        }
    s0, s1 = stats["without"], stats["with"]
    rowsmd = [
        ("critical requests in the overload", s0["crit_n"], s1["crit_n"]),
        ("critical answered by the model", s0["crit_ok"], s1["crit_ok"]),
        ("critical answered by the ladder (degraded)", s0["crit_n"] - s0["crit_ok"] - s0["crit_failed"],
         s1["crit_n"] - s1["crit_ok"] - s1["crit_failed"]),
        ("critical failed (not 200)", s0["crit_failed"], s1["crit_failed"]),
        ("critical p99 time to first byte, unloaded (ms)", f"{s0['unloaded_p99']:.0f}", f"{s1['unloaded_p99']:.0f}"),
        ("critical p99 time to first byte at 2x, answered by the model (ms)", f"{s0['crit_p99']:.0f}",
         f"{s1['crit_p99']:.0f}"),
        ("... the same two inside airbag, unloaded / at 2x: p99 of its access log's total_ms (ms)",
         f"{s0['unloaded_inside_p99']:.0f} / {s0['crit_inside_p99']:.0f}",
         f"{s1['unloaded_inside_p99']:.0f} / {s1['crit_inside_p99']:.0f}"),
        ("... at 2x against unloaded, inside airbag (target: within 2x)",
         f"{ratio(s0['crit_inside_p99'], s0['unloaded_inside_p99']):.2f}x",
         f"{ratio(s1['crit_inside_p99'], s1['unloaded_inside_p99']):.2f}x"),
        ("answers at 2x by the model", s0["by_source"]["upstream"], s1["by_source"]["upstream"]),
        ("answers at 2x by the ladder (default)", s0["by_source"]["default"], s1["by_source"]["default"]),
        ("answers at 2x: local error (none)", s0["by_source"]["none"], s1["by_source"]["none"]),
        ("optional requests answered by the ladder: p99 answer time, as the client saw it (ms)",
         f"{s0['ladder_at_once_p99']:.0f}", f"{s1['ladder_at_once_p99']:.0f}"),
        ("... of which inside airbag: p99 of its access log's total_ms (ms)",
         f"{s0['ladder_inside_p99']:.1f}", f"{s1['ladder_inside_p99']:.1f}"),
        ("... and outside airbag (load generator, kernel): p99 of client minus airbag (ms)",
         f"{s0['ladder_outside_p99']:.0f}", f"{s1['ladder_outside_p99']:.0f}"),
        ("requests with no answer at all", s0["failed"], s1["failed"]),
        ("the model's longest queue (waiting)", s0["max_waiting"], s1["max_waiting"]),
    ]
    out += ["| | without admission | with admission |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rowsmd]
    out += ["", "![the model's queue over time](queue.png)", ""]
    return "\n".join(out) + "\n", stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--airbag", required=True)
    ap.add_argument("--demo", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--capacity", type=int, default=8)
    ap.add_argument("--service-ms", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--port-base", type=int, default=0, help="0: free ports on 127.0.0.1")
    ap.add_argument("--scrape-ms", type=int, default=50, help="saturation scrape interval")
    ap.add_argument("--waiting-gt", type=int, default=0,
                    help="saturated while the model's waiting requests exceed this (0: capacity / 4)")
    args = ap.parse_args()
    if args.short:
        args.seconds = 4
    os.makedirs(args.out, exist_ok=True)
    rows, queue = [], []
    load_start = os.getloadavg()[0]
    for name, admission in (("without", False), ("with", True)):
        asyncio.run(scenario(args, name, admission, rows, queue))
    args.load = (load_start, os.getloadavg()[0])
    with open(os.path.join(args.out, "requests.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "phase", "t_ms", "tier", "status", "source", "admission",
                    "ttfb_ms", "total_ms", "airbag_ms"])
        w.writerows([r[:7] + (f"{r[7]:.1f}", f"{r[8]:.1f}", f"{r[9]:.1f}") for r in rows])
    with open(os.path.join(args.out, "queue.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "t_ms", "waiting", "running"])
        w.writerows(queue)
    text, stats = summarize(rows, queue, args)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    print(text)
    if args.check:
        s = stats["with"]
        problems = []
        if s["crit_failed"] != 0:
            problems.append(f"{s['crit_failed']} critical requests failed with admission")
        if s["failed"] != 0:
            problems.append(f"{s['failed']} requests got no answer with admission")
        if s["by_source"]["default"] == 0:
            problems.append("with admission, nothing was answered by the ladder at 2x")
        if s["max_waiting"] >= stats["without"]["max_waiting"]:
            problems.append("the model's queue was not shorter with admission")
        for p in problems:
            print("CHECK FAILED:", p, file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
