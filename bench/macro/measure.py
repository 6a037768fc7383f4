#!/usr/bin/env python3
"""Measurement half of bench/macro/run.sh: drives wrk, h2load and a small SSE client against each
target in interleaved rounds, reads CPU time and RSS from /proc, writes results.md and results.csv.

  measure.py render TEMPLATE OUT KEY=VALUE...      fill @KEY@ placeholders
  measure.py calibrate --candidate NAME,URL,PID... print the cheaper upstream stand-in
  measure.py run --target NAME,URL,PID... [options]
"""

import argparse
import csv
import datetime
import http.client
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_SCRIPT = os.path.join(HERE, "wrk_report.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Paths every proxy config serves (see airbag.yaml.in, nginx-proxy.conf.in, haproxy.cfg.in).
GET_PATH = "/v2/models/bench"
POST_PATH = "/predict"
CACHE_PATH = "/v2/models/bench/infer"
DOWN_PATH = "/down"
OPEN_PATH = "/open"
HTTPS_UP_PATH = "/https/predict"
SSE_PATH = "/v1/chat/completions"
SHARED_PATH = "/shared/infer"
# The shared-tier row cycles through more keys than airbag's small local cache holds (LRU), so
# every request misses in memory and finds its answer in Redis, stored there beforehand.
SHARED_KEYS = 4096
SHARED_BODY_FORMAT = '{"amount":120,"features":[0.12,0.5,0.33,0.91],"request":"shared-%d"}'
SHARED_HITS = 'airbag_shared_cache_lookups_total{route="shared",result="hit"}'
SHARED_NOTE = (f"shared-tier row: {SHARED_KEYS:,} keys stored in Redis beforehand, more than "
               "airbag's 1 MiB local cache holds, so each request misses in memory and waits for "
               "one Redis round trip (GET); Redis runs on the servers' CPU. Redis round trips per "
               "path: local hit 0; shared-tier hit 1 (GET); miss in both tiers 1 awaited (GET) "
               "plus the SET after the answer; with coalesce: true, the pod taking the lock 2 "
               "awaited (GET, SET NX) plus SET and EVAL after the answer, a pod waiting on "
               "another's lock 2 plus one GET per 10 ms of waiting")
POST_BODY = b'{"amount":120,"features":[0.12,0.5,0.33,0.91],"request":"bench"}'
SSE_BODY = (b'{"model":"bench","stream":true,'
            b'"messages":[{"role":"user","content":"hello from the benchmark"}]}')
SSE_EVENTS = 100
PROXIES = ("airbag", "nginx", "haproxy")
ORDER = ("direct",) + PROXIES
LABELS = {"direct": "direct", "airbag": "airbag", "nginx": "nginx", "haproxy": "HAProxy"}


# ---------------------------------------------------------------- /proc readings

def process_tree(root):
    """The pid and all its live descendants (nginx: master, workers, cache helpers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo and len(pids) < 1000:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def cpu_seconds(root):
    """utime + stime of the whole tree, in seconds (threads are included in a process's stat)."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_kib(root, tree=True, field="VmRSS"):
    """field: VmRSS (all resident pages) or RssAnon (the process's own, not file-backed)."""
    total = 0
    for pid in process_tree(root) if tree else [root]:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


class RssSampler:
    """Samples the summed RSS of some process trees while a load run is under way."""

    def __init__(self, roots, period=0.1):
        self.trees = {r: process_tree(r) for r in roots}
        self.period = period
        self.peak = {r: 0 for r in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            for r, pids in self.trees.items():
                self.peak[r] = max(self.peak[r], sum(rss_kib(p, tree=False) for p in pids))
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------- load generators

class Target:
    def __init__(self, spec):
        name, url, pid = spec.split(",")
        self.name, self.url, self.pid = name, url.rstrip("/"), int(pid)
        parsed = urllib.parse.urlsplit(self.url)
        self.host, self.port = parsed.hostname, parsed.port


def run_wrk(url, method, body_file, connections, duration_s, timeout_s, close=False, threads=1,
            cpus=None, keys=0):
    """cpus: the CPUs wrk may run on (default: this process's own affinity); keys: cycle through
    that many SHARED_BODY_FORMAT bodies instead of sending body_file."""
    env = dict(os.environ, BENCH_METHOD=method, BENCH_BODY_FILE=body_file or "",
               BENCH_CLOSE="1" if close else "", BENCH_KEYS=str(keys),
               BENCH_BODY_FORMAT=SHARED_BODY_FORMAT)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "2s",
           "-s", WRK_SCRIPT, url]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s,
                         preexec_fn=pin)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    raise RuntimeError(f"wrk gave no result for {url}: {out.stdout[-500:]} {out.stderr[-500:]}")


def run_h2load(url, body_file, clients, rate, duration_s, timeout_s):
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log") as log:
        cmd = ["h2load", "--h1", "-c", str(clients), "--rps", str(rate // clients),
               "-D", str(duration_s), "--warm-up-time", "1", "--log-file", log.name,
               "-d", body_file, "-H", "content-type: application/json", url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        lat, ok, starts = [], 0, []
        with open(log.name) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 3:
                    continue
                starts.append(int(parts[0]))
                lat.append(int(parts[2]))
                ok += parts[1].startswith("2")
    if not lat:
        raise RuntimeError(f"h2load gave no requests for {url}: {out.stdout[-500:]}")
    lat.sort()
    span = max((max(starts) - min(starts)) / 1e6, 1e-3)
    return {"requests": len(lat), "ok": ok, "rate": len(lat) / span,
            "p50_us": percentile(lat, 50), "p99_us": percentile(lat, 99)}


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class HttpConn:
    """A keep-alive HTTP/1.1 client on a raw socket: just enough to time an SSE stream."""

    def __init__(self, host, port, timeout_s):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.sock, self.buf = None, bytearray()

    def connect(self):
        self.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _until(self, sep):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(sep)]
                return out
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def stream(self, path, body):
        """POSTs and reads the answer; returns (status, µs to the first event, µs to the end,
        events seen)."""
        if self.sock is None:
            self.connect()
        req = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
               f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        t0 = time.perf_counter_ns()
        self.sock.sendall(req)
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip().lower()
        first, end, pieces = None, None, []

        def take(piece):
            nonlocal first
            if first is None and b"data:" in piece:
                first = time.perf_counter_ns()
            pieces.append(piece)

        if "chunked" in headers.get("transfer-encoding", ""):
            # Only look for the end while the stream runs (one recv and one test per segment,
            # so the client's own cost per event stays small); decode the chunks afterwards.
            raw = bytearray(self.buf)
            self.buf.clear()
            if b"data:" in raw:
                first = time.perf_counter_ns()
            while not raw.endswith(b"\r\n0\r\n\r\n") and raw != b"0\r\n\r\n":
                data = self.sock.recv(262144)
                if not data:
                    raise EOFError("connection closed mid-stream")
                if first is None and b"data:" in data:
                    first = time.perf_counter_ns()
                raw += data
            end = time.perf_counter_ns()
            self.buf = raw  # no trailers: the terminator is the last thing sent
            while True:
                size = int(self._until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._until(b"\r\n")
                    break
                pieces.append(self._exact(size))
                self._exact(2)
        elif "content-length" in headers:
            take(self._exact(int(headers["content-length"])))
        else:
            try:
                while True:
                    self._fill()
                    take(bytes(self.buf))
                    self.buf.clear()
            except EOFError:
                pass
            self.close()
        if end is None:
            end = time.perf_counter_ns()
        if headers.get("connection") == "close":
            self.close()
        text = b"".join(pieces)
        events = text.count(b"data:") - text.count(b"data: [DONE]")
        ttfe = (first - t0) / 1e3 if first is not None else float("nan")
        return status, ttfe, (end - t0) / 1e3, events


def run_sse(target, duration_s, timeout_s):
    """Streams one after another for duration_s seconds (enough of them that the CPU they cost
    is well above the clock tick)."""
    conn = HttpConn(target.host, target.port, timeout_s)
    ttfe, total, bad = [], [], 0
    deadline = time.monotonic() + duration_s
    try:
        for _ in range(1000000):
            if time.monotonic() >= deadline:
                break
            try:
                status, first_us, end_us, events = conn.stream(SSE_PATH, SSE_BODY)
            except (OSError, EOFError, ValueError, IndexError):
                conn.close()  # the next stream starts on a fresh connection
                bad += 1
                continue
            if status != 200 or events != SSE_EVENTS:
                bad += 1
                continue
            ttfe.append(first_us)
            total.append(end_us)
    finally:
        conn.close()
    if not total:
        raise RuntimeError(f"no complete {SSE_EVENTS}-event stream through {target.name}")
    return {"streams": len(total) + bad, "bad": bad, "ttfe_us": statistics.median(ttfe),
            "stream_us": statistics.median(total)}


# ---------------------------------------------------------------- probes

def request(url, method="GET", body=None, headers=None, timeout_s=5):
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout_s)
    try:
        conn.request(method, parsed.path or "/", body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def metric_value(admin_url, sample):
    """One sample of airbag's GET /metrics, 0 when absent."""
    _, _, body = request(admin_url + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def probe_features(targets, admin_url, log):
    """Which of the optional rows each proxy can run here; the rest are reported as n/a."""
    ok = {}
    json_headers = {"content-type": "application/json"}

    def attempt(key, fn):
        try:
            ok[key] = bool(fn())
        except Exception as e:  # a probe that fails only disables its row
            log(f"probe {key}: {e}")
            ok[key] = False
        log(f"probe {key}: {'yes' if ok[key] else 'n/a'}")

    def cache_hit(t, header, value):
        def fn():
            for _ in range(3):
                status, headers, _ = request(t.url + CACHE_PATH, "POST", POST_BODY, json_headers)
                if status == 200 and headers.get(header, "").lower() == value:
                    return True
            return False
        return fn

    def down_default(t, check):
        def fn():
            status, headers, body = request(t.url + DOWN_PATH, "POST", POST_BODY, json_headers)
            return status == 200 and b"flag_for_review" in body and check(headers)
        return fn

    def breaker_open(t):
        status, _, _ = request(f"{admin_url}/routes/open/circuit", "POST",
                               b'{"state":"open"}', json_headers)
        if status != 200:
            return False
        status, _, body = request(t.url + OPEN_PATH, "POST", POST_BODY, json_headers)
        return status == 503 and b"circuit_open" in body

    def shared_hit(t):
        # Stores every key of the row once (model call, then SET in Redis), then asks for the
        # first again: long evicted from memory, it must come from Redis.
        parsed = urllib.parse.urlsplit(t.url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
        try:
            for i in range(SHARED_KEYS):
                conn.request("POST", SHARED_PATH, body=(SHARED_BODY_FORMAT % i).encode(),
                             headers=json_headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    return False
        finally:
            conn.close()
        for _ in range(50):  # the writes are asynchronous
            status, headers, _ = request(t.url + SHARED_PATH, "POST",
                                         (SHARED_BODY_FORMAT % 0).encode(), json_headers)
            if status == 200 and headers.get("x-airbag-cache-tier") == "shared":
                return True
            time.sleep(0.1)
        return False

    t = targets.get("airbag")
    if t:
        attempt("cache/airbag", cache_hit(t, "x-airbag-cache", "hit"))
        attempt("shared/airbag", lambda: shared_hit(t))
        attempt("down/airbag", down_default(t, lambda h: h.get("x-airbag-source") == "default"))
        attempt("open/airbag", lambda: breaker_open(t))
    t = targets.get("nginx")
    if t:
        attempt("cache/nginx", cache_hit(t, "x-cache-status", "hit"))
        attempt("down/nginx", down_default(t, lambda h: True))
    t = targets.get("haproxy")
    if t:
        attempt("down/haproxy", down_default(t, lambda h: True))
    return ok


# ---------------------------------------------------------------- the run

class Case:
    """tls: the client speaks TLS to the proxy's TLS port; close: a new connection per request."""
    def __init__(self, key, title, kind, path=None, method="POST", targets=ORDER, expect=200,
                 tls=False, close=False, keys=0):
        self.key, self.title, self.kind = key, title, kind
        self.path, self.method, self.targets, self.expect = path, method, targets, expect
        self.tls, self.close, self.keys = tls, close, keys


CASES = [
    Case("get", "GET pass-through", "wrk", GET_PATH, "GET"),
    Case("post", "POST pass-through", "wrk", POST_PATH),
    Case("rate", "POST at a fixed rate", "h2load", POST_PATH),
    Case("cache", "POST cache hit", "wrk", CACHE_PATH, targets=("airbag", "nginx")),
    Case("shared", "POST shared-tier hit (local miss, Redis hit)", "wrk", SHARED_PATH,
         targets=("airbag",), keys=SHARED_KEYS),
    Case("down", "upstream down → default answer", "wrk", DOWN_PATH, targets=PROXIES),
    Case("open", "breaker forced open → local 503", "wrk", OPEN_PATH, targets=("airbag",),
         expect=503),
    Case("sse", f"SSE relay, {SSE_EVENTS} events", "sse"),
    Case("tls", "TLS termination, keep-alive POST", "wrk", POST_PATH,
         targets=("airbag", "nginx"), tls=True),
    Case("tlsnew", "TLS termination, new connection per POST", "wrk", POST_PATH,
         targets=("airbag", "nginx"), tls=True, close=True),
    Case("httpsup", "https upstream pass-through (POST)", "wrk", HTTPS_UP_PATH,
         targets=("airbag", "nginx")),
    # A second set of proxies with two workers each, unpinned: proxy, upstream and a two-thread
    # wrk share both cores, as they would on a two-core pod.
    Case("get2", "GET, two workers on two cores", "wrk2", GET_PATH, "GET"),
]


def main_run(args):
    log = lambda msg: print(f"[measure] {msg}", file=sys.stderr, flush=True)
    if args.loadgen_cpu is not None:
        os.sched_setaffinity(0, {args.loadgen_cpu})
    targets = {t.name: t for t in map(Target, args.target)}
    tls_targets = {t.name: t for t in map(Target, args.tls_target or [])}
    only = set(args.cases.split(",")) if args.cases else None
    sse_direct = Target(f"direct,{args.sse_direct},{args.demo_pid}")
    body_file = os.path.join(args.run_dir, "post-body.json")
    with open(body_file, "wb") as f:
        f.write(POST_BODY)
    features = probe_features(targets, args.airbag_admin, log)

    two = {t.name: t for t in map(Target, args.two_workers or [])}

    def applies(case, name):
        if name not in targets or name not in case.targets:
            return False
        if only is not None and case.key not in only:
            return False
        if (case.tls or case.key == "httpsup") and name not in tls_targets:
            return False
        if case.kind == "wrk2":
            return name == "direct" or name in two
        if case.key in ("cache", "shared", "down", "open"):
            return features.get(f"{case.key}/{name}", False)
        return True

    idle_rss = {n: rss_kib(t.pid) for n, t in targets.items() if n != "direct"}
    idle_anon = {n: rss_kib(t.pid, field="RssAnon") for n, t in targets.items() if n != "direct"}
    direct = targets["direct"].url
    get_size = len(request(direct + GET_PATH)[2])
    post_size = len(request(direct + POST_PATH, "POST", POST_BODY,
                            {"content-type": "application/json"})[2])
    args.sizes = (f"answer bodies: GET {get_size} B, POST {post_size} B; "
                  f"POST request body {len(POST_BODY)} B")
    upstream_root = targets["direct"].pid
    rows = []  # (round, case, target, metric, value)
    peak_rss = {n: {} for n in idle_rss}  # target -> round -> peak KiB

    def one(rnd, case, name, duration):
        t = sse_direct if (case.kind == "sse" and name == "direct") else targets[name]
        if case.kind == "wrk2" and name != "direct":
            t = two[name]
        if case.tls:
            t = tls_targets[name]
        proxy_root = None if name == "direct" else t.pid
        up_root = args.demo_pid if case.kind == "sse" else upstream_root
        if case.key == "httpsup":
            up_root = args.https_upstream_pid
        roots = [r for r in (proxy_root, up_root) if r is not None]
        cpu0 = {r: cpu_seconds(r) for r in roots}
        for r in roots:
            if not os.path.exists(f"/proc/{r}"):
                raise SystemExit(f"measure: {name} (pid {r}) is no longer running")
        sampled = [proxy_root] if proxy_root and case.kind == "wrk" else []
        hits0 = metric_value(args.airbag_admin, SHARED_HITS) if case.keys else 0
        with RssSampler(sampled) as sampler:
            if case.kind in ("wrk", "wrk2"):
                wide = case.kind == "wrk2"
                res = run_wrk(t.url + case.path, case.method,
                              body_file if case.method == "POST" else None,
                              args.connections * (2 if wide else 1), duration, duration + 30,
                              case.close, threads=2 if wide else 1,
                              cpus=set(range(os.cpu_count())) if wide else None, keys=case.keys)
                n = res["requests"]
                bad = res["status"] + res["connect"] + res["read"] + res["write"] + res["timeout"]
                if case.expect != 200:
                    bad = n - res["status"] + res["connect"] + res["read"] + res["timeout"]
                vals = {"rps": n / (res["duration_us"] / 1e6), "p50_us": res["p50_us"],
                        "p99_us": res["p99_us"], "errors": bad}
            elif case.kind == "h2load":
                res = run_h2load(t.url + case.path, body_file, args.rate_clients, args.rate,
                                 args.rate_duration, args.rate_duration + 30)
                n = res["requests"]
                vals = {"rps": res["rate"], "p50_us": res["p50_us"], "p99_us": res["p99_us"],
                        "errors": n - res["ok"]}
            else:
                res = run_sse(t, duration, 10)
                n = res["streams"]
                vals = {"ttfe_us": res["ttfe_us"], "stream_us": res["stream_us"],
                        "errors": res["bad"]}
        cpu = {r: cpu_seconds(r) - cpu0[r] for r in roots}
        if case.keys and n > 0:  # the share of answers that really came from Redis
            # (requests still in flight when wrk stops were looked up but are not in n)
            hits = metric_value(args.airbag_admin, SHARED_HITS) - hits0
            vals["redis_pct"] = min(100.0, hits / n * 100)
        if n > 0:
            if proxy_root is not None:
                vals["cpu_us"] = cpu[proxy_root] / n * 1e6
            if up_root is not None:
                vals["upstream_cpu_us"] = cpu[up_root] / n * 1e6
        if proxy_root is not None and case.kind == "wrk":
            peak_rss[name][rnd] = max(peak_rss[name].get(rnd, 0), sampler.peak[proxy_root])
        for metric, value in vals.items():
            rows.append((rnd, case.key, name, metric, value))
        brief = ", ".join(f"{k}={v:.0f}" for k, v in vals.items())
        log(f"round {rnd} {case.key:5s} {name:8s} {brief}")

    # Warm-up: fills connection pools and caches and lets every process fault in its pages.
    log("warm-up")
    for case in CASES:
        for name in ORDER:
            if applies(case, name) and case.kind in ("wrk", "wrk2"):
                one(0, case, name, 1)
    rows.clear()
    for n in peak_rss:
        peak_rss[n].clear()

    for rnd in range(1, args.rounds + 1):
        for case in CASES:
            for name in ORDER:
                if applies(case, name):
                    one(rnd, case, name, args.duration)
    for name, peaks in peak_rss.items():
        for rnd, peak in sorted(peaks.items()):
            rows.append((rnd, "rss", name, "peak_kib", peak))
        rows.append((0, "rss", name, "idle_kib", idle_rss[name]))
        rows.append((0, "rss", name, "idle_anon_kib", idle_anon[name]))

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "case", "target", "metric", "value"])
        for r in rows:
            w.writerow([r[0], r[1], r[2], r[3], f"{r[4]:.3f}"])
    table = report(rows, args, features, targets)
    with open(os.path.join(args.out_dir, "results.md"), "w") as f:
        f.write(table)
    print(table)


# ---------------------------------------------------------------- the report

def fmt(v, digits=0):
    if v is None or v != v:
        return "n/a"
    if abs(v) >= 1000 and digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def summary(values, digits=0):
    if not values:
        return None, "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return med, fmt(med, digits)
    return med, f"{fmt(med, digits)} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def report(rows, args, features, targets):
    data = {}
    for rnd, case, name, metric, value in rows:
        data.setdefault((case, name, metric), {})[rnd] = value

    # Every series is round -> value, so that ratios can be taken within a round.
    def series(case, name, metric, scale=1.0):
        return {r: v * scale for r, v in data.get((case, name, metric), {}).items()}

    def paired(case, name, metric, base_case, base_name, op):
        mine = data.get((case, name, metric), {})
        base = data.get((base_case, base_name, metric), {})
        return {r: op(mine[r], base[r]) for r in sorted(mine) if r in base}

    head = ["case", "metric"] + [LABELS[n] for n in ORDER] + ["airbag ÷ nginx", "HAProxy ÷ nginx"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(title, metric, cells, digits=0, missing=None):
        """cells: target -> {round: value}; missing: target -> text shown instead."""
        missing = missing or {}
        texts = []
        for n in ORDER:
            if n in missing:
                text = missing[n]
            elif n in cells:
                text = summary(list(cells[n].values()), digits)[1]
            else:
                text = "—"
            texts.append(text)
        ratios = []
        for n in ("airbag", "haproxy"):
            # Each ratio is taken within one round (the two ran back to back, so a slow patch of
            # the machine hits both), then the median is taken over rounds. A ratio of two
            # differences that may be negative (inside the noise) says nothing.
            mine, base = cells.get(n, {}), cells.get("nginx", {})
            per_round = [mine[r] / base[r] for r in mine
                         if r in base and base[r] > 0 and mine[r] >= 0]
            ratios.append(f"{statistics.median(per_round):.2f}×"
                          if per_round and n not in missing and "nginx" not in missing else "—")
        lines.append("| " + " | ".join([title, metric] + texts + ratios) + " |")

    for case in CASES:
        names = [n for n in ORDER if n in targets and n in case.targets]
        if args.cases and case.key not in args.cases.split(","):
            continue
        if (case.tls or case.key == "httpsup") and not any(
                (case.key, n, "rps") in data for n in names):
            continue  # no TLS targets in this run
        missing = {}
        if case.key in ("cache", "shared", "down", "open"):
            why = ("cache not available" if case.key == "cache" else
                   "Redis not available" if case.key == "shared" else "fallback not available")
            if case.key == "open":
                why = "admin override not available"
            missing = {n: f"n/a ({why})" for n in names if not features.get(f"{case.key}/{n}")}
        live = [n for n in names if n not in missing]
        pick = lambda metric, scale=1.0: {n: series(case.key, n, metric, scale) for n in live}
        if case.kind == "wrk2":
            row(case.title, "req/s", pick("rps"))
            row(case.title, "p99 latency (µs)", pick("p99_us"))
            row(case.title, "proxy CPU per request (µs)",
                {n: v for n, v in pick("cpu_us").items() if n != "direct"}, 1)
        elif case.kind == "wrk":
            row(case.title, "req/s", pick("rps"), missing=missing)
            row(case.title, "p50 latency (µs)", pick("p50_us"), missing=missing)
            row(case.title, "p99 latency (µs)", pick("p99_us"), missing=missing)
            row(case.title, "proxy CPU per request (µs)",
                {n: v for n, v in pick("cpu_us").items() if n != "direct"}, 1, missing)
            if case.key in ("cache", "shared", "down", "open"):
                row(case.title, "CPU ÷ its own POST pass-through",
                    {n: paired(case.key, n, "cpu_us", "post", n, lambda a, b: a / b)
                     for n in live}, 2, missing)
            if case.key == "shared":
                row(case.title, "CPU ÷ its own local cache hit",
                    {n: paired(case.key, n, "cpu_us", "cache", n, lambda a, b: a / b)
                     for n in live}, 2, missing)
                row(case.title, "added p50 over a local cache hit (µs)",
                    {n: paired(case.key, n, "p50_us", "cache", n, lambda a, b: a - b)
                     for n in live}, 0, missing)
                row(case.title, "answers served from Redis (%)", pick("redis_pct"), 1, missing)
        elif case.kind == "h2load":
            title = f"POST at {args.rate:,} req/s (h2load)"
            sub = lambda a, b: a - b
            row(title, "p50 latency (µs)", pick("p50_us"))
            row(title, "p99 latency (µs)", pick("p99_us"))
            row(title, "added p50 over direct (µs)",
                {n: paired(case.key, n, "p50_us", case.key, "direct", sub)
                 for n in live if n != "direct"})
            row(title, "added p99 over direct (µs)",
                {n: paired(case.key, n, "p99_us", case.key, "direct", sub)
                 for n in live if n != "direct"})
            row(title, "proxy CPU per request (µs)",
                {n: v for n, v in pick("cpu_us").items() if n != "direct"}, 1)
        else:
            per_event = lambda a, b: (a - b) / SSE_EVENTS
            row(case.title, "time to first event (µs)", pick("ttfe_us"))
            row(case.title, "whole stream (µs)", pick("stream_us"))
            row(case.title, "added wall time per event (µs)",
                {n: paired(case.key, n, "stream_us", case.key, "direct", per_event)
                 for n in live if n != "direct"}, 2)
            row(case.title, "proxy CPU per event (µs)",
                {n: v for n, v in pick("cpu_us", 1 / SSE_EVENTS).items() if n != "direct"}, 2)
    row("memory", "idle RSS (MiB)",
        {n: series("rss", n, "idle_kib", 1 / 1024) for n in PROXIES if n in targets}, 1)
    row("memory", "idle private RSS (MiB)",
        {n: series("rss", n, "idle_anon_kib", 1 / 1024) for n in PROXIES if n in targets}, 1)
    row("memory", "peak RSS under load (MiB)",
        {n: series("rss", n, "peak_kib", 1 / 1024) for n in PROXIES if n in targets}, 1)

    notes = describe_machine(args)
    up_cpu = {}
    for (c, n, m), d in data.items():
        if m == "upstream_cpu_us" and c in ("get", "post"):
            up_cpu.setdefault(c, []).extend(d.values())
    notes.append(f"upstream stand-in: {args.upstream_label}; its own CPU per request: " + ", ".join(
        f"{c.upper()} {statistics.median(v):.1f} µs" for c, v in sorted(up_cpu.items())))
    notes.append(args.sizes)
    notes.append(f"closed loop: wrk, 1 thread, {args.connections} connections, {args.duration} s "
                 f"per measurement; fixed rate: h2load --h1, {args.rate_clients} connections, "
                 f"{args.rate_duration} s after 1 s of warm-up; SSE: streams of "
                 f"{SSE_EVENTS} events one after another on one keep-alive connection for "
                 f"{args.duration} s")
    notes.append(f"{args.rounds} interleaved rounds (direct, airbag, nginx, HAProxy for each "
                 "case in turn); cells are median (min–max) over rounds; each ratio is taken within a "
                 "round and the median over rounds is shown; "
                 "RSS is summed over each proxy's processes")
    if args.tls_note:
        notes.append(args.tls_note)
    if any(c == "shared" for (c, _, _) in data):
        notes.append(SHARED_NOTE)
    if args.loadgen_cpu is not None:
        notes.append("servers pinned to CPU 0, load generators to CPU "
                     f"{args.loadgen_cpu} (taskset)")
    errors = [(c, n, v) for (c, n, m), d in sorted(data.items()) if m == "errors"
              for v in d.values() if v]
    if errors:
        notes.append("unexpected answers or socket errors seen (case/target: count): " + ", ".join(
            f"{c}/{n}: {v:.0f}" for c, n, v in errors[:12]))
    out = ["# airbag macro benchmark", "",
           f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `bench/macro/run.sh`; "
           "bench/macro/README.md says what each row measures.", ""]
    out += lines + [""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def describe_machine(args):
    notes = []
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()
    notes.append(f"machine: {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}; "
                 f"load average at the end {load[0]:.2f} (other work on the machine moves "
                 "req/s and latency; CPU per request moves much less)")
    if args.versions:
        notes.append("versions: " + args.versions)
    return notes


# ---------------------------------------------------------------- calibrate, render

def main_calibrate(args):
    if args.loadgen_cpu is not None:
        os.sched_setaffinity(0, {args.loadgen_cpu})
    body_file = os.path.join(args.run_dir, "post-body.json")
    with open(body_file, "wb") as f:
        f.write(POST_BODY)
    cands = [Target(c) for c in args.candidate]
    cost = {c.name: [] for c in cands}
    for _ in range(3):
        for c in cands:
            c0 = cpu_seconds(c.pid)
            res = run_wrk(c.url + POST_PATH, "POST", body_file, args.connections, 2, 40)
            if res["status"] or res["requests"] == 0:
                raise SystemExit(f"calibrate: {c.name} answered badly: {res}")
            cost[c.name].append((cpu_seconds(c.pid) - c0) / res["requests"] * 1e6)
    for name, v in cost.items():
        print(f"[measure] upstream {name}: {statistics.median(v):.1f} µs CPU per request",
              file=sys.stderr)
    best = min(cost, key=lambda n: statistics.median(cost[n]))
    print(json.dumps({"choice": best, "cpu_us": {n: statistics.median(v)
                                                 for n, v in cost.items()}}))


def main_render(args):
    with open(args.template) as f:
        text = f.read()
    for kv in args.values:
        key, _, value = kv.partition("=")
        text = text.replace(f"@{key}@", value)
    left = sorted(set(re.findall(r"@[A-Z][A-Z_]*@", text)))
    if left:
        raise SystemExit(f"render: {args.template}: no value for {', '.join(left)}")
    with open(args.out, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("template")
    r.add_argument("out")
    r.add_argument("values", nargs="*")
    for name in ("calibrate", "run"):
        s = sub.add_parser(name)
        s.add_argument("--run-dir", required=True)
        s.add_argument("--loadgen-cpu", type=int)
        s.add_argument("--connections", type=int, default=32)
        if name == "calibrate":
            s.add_argument("--candidate", action="append", required=True)
        else:
            s.add_argument("--target", action="append", required=True)
            s.add_argument("--sse-direct", required=True)
            s.add_argument("--demo-pid", type=int, required=True)
            s.add_argument("--airbag-admin", required=True)
            s.add_argument("--two-workers", action="append",
                           help="NAME,URL,PID of a proxy running two workers, unpinned")
            s.add_argument("--rounds", type=int, default=3)
            s.add_argument("--duration", type=int, default=3)
            s.add_argument("--rate", type=int, default=2000)
            s.add_argument("--rate-clients", type=int, default=10)
            s.add_argument("--rate-duration", type=int, default=4)
            s.add_argument("--out-dir", required=True)
            s.add_argument("--upstream-label", default="")
            s.add_argument("--versions", default="")
            s.add_argument("--tls-target", action="append",
                           help="NAME,URL,PID of a proxy's TLS port (the TLS rows)")
            s.add_argument("--https-upstream-pid", type=int,
                           help="the https upstream stand-in, for its CPU per request")
            s.add_argument("--cases", default="",
                           help="comma-separated case keys to run (default: all)")
            s.add_argument("--tls-note", default="")
    args = p.parse_args()
    {"render": main_render, "calibrate": main_calibrate, "run": main_run}[args.cmd](args)


if __name__ == "__main__":
    main()
