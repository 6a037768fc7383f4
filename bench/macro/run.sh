#!/usr/bin/env bash
# Macro benchmark: airbag against nginx and HAProxy (and no proxy at all) on loopback, one
# command from a fresh Debian 12 machine. Writes bench/macro/results.md and results.csv.
#
#   bench/macro/run.sh [--rounds N] [--duration S] [--no-setup] [--out DIR] [--cases LIST]
#
#   --rounds N     interleaved rounds (default 3, at least 3 for a min-max that means something)
#   --duration S   seconds per closed-loop measurement (default 3)
#   --no-setup     skip installing packages and building; use the binaries already built
#   --out DIR      where results.md and results.csv go (default: this folder)
#   --cases LIST   only these rows, e.g. post,tls,tlsnew,httpsup (default: every row)
#
# Environment: AIRBAG_BIN, DEMO_BIN (binaries; default build/proxy/airbag and
# build/examples/demo-model-server/demo-model-server), BENCH_PORT_BASE (default 18000: uses
# BASE..BASE+31 on 127.0.0.1), BENCH_CONNECTIONS (wrk connections, default 32).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"
AIRBAG_BIN="${AIRBAG_BIN:-${ROOT}/build/proxy/airbag}"
DEMO_BIN="${DEMO_BIN:-${ROOT}/build/examples/demo-model-server/demo-model-server}"
PORT_BASE="${BENCH_PORT_BASE:-18000}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
ROUNDS=3
DURATION=3
SETUP=1
OUT_DIR="${HERE}"
CASES=""
READY_TIMEOUT_S=20

while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    --cases) CASES="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ ${ROUNDS} =~ ^[0-9]+$ && ${ROUNDS} -ge 1 && ${ROUNDS} -le 20 ]] ||
  { echo "run.sh: --rounds must be 1..20" >&2; exit 2; }
[[ ${DURATION} =~ ^[0-9]+$ && ${DURATION} -ge 1 && ${DURATION} -le 30 ]] ||
  { echo "run.sh: --duration must be 1..30 seconds" >&2; exit 2; }

UP_NGINX_PORT=$((PORT_BASE + 0))   # nginx answering a fixed ~600 B JSON
DEMO_PORT=$((PORT_BASE + 1))       # the demo model server
DEAD_PORT=$((PORT_BASE + 2))       # nothing listens here: the "model is down" rows
UP_TLS_PORT=$((PORT_BASE + 3))     # the nginx stand-in over TLS: the https upstream rows
REDIS_PORT=$((PORT_BASE + 4))      # redis-server: airbag's shared cache tier (the shared row)
AIRBAG_PORT=$((PORT_BASE + 10))
AIRBAG_ADMIN_PORT=$((PORT_BASE + 11))
AIRBAG_TLS_PORT=$((PORT_BASE + 12))
NGINX_PORT=$((PORT_BASE + 20))
NGINX_TLS_PORT=$((PORT_BASE + 21))
HAPROXY_PORT=$((PORT_BASE + 30))
# The same three proxies again with two workers each, unpinned, for the two-core row.
AIRBAG2_PORT=$((PORT_BASE + 14))
AIRBAG2_ADMIN_PORT=$((PORT_BASE + 15))
AIRBAG2_TLS_PORT=$((PORT_BASE + 16))
NGINX2_PORT=$((PORT_BASE + 22))
NGINX2_TLS_PORT=$((PORT_BASE + 23))
HAPROXY2_PORT=$((PORT_BASE + 31))

log() { printf '[run] %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- packages and build

install_tools() {
  local -A want=([nginx]="nginx-light nginx" [haproxy]=haproxy [wrk]=wrk [h2load]=nghttp2-client
                 [taskset]=util-linux [python3]=python3 [curl]=curl [openssl]=openssl
                 [redis-server]=redis-server)
  local tool missing=()
  for tool in "${!want[@]}"; do
    command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ ${EUID} -eq 0 ]] || die "missing ${missing[*]}; run as root to install them"
  log "installing: ${missing[*]}"
  # nginx and haproxy packages start their services on install; policy-rc.d answering 101
  # keeps them stopped, we only want the binaries.
  local own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  for tool in "${missing[@]}"; do
    local pkg ok=0
    for pkg in ${want[${tool}]}; do
      if apt-get install -y -q --no-install-recommends "${pkg}" >/dev/null; then ok=1; break; fi
    done
    [[ ${ok} -eq 1 ]] || die "could not install ${want[${tool}]}"
  done
  if [[ ${own_policy} -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
}

if [[ ${SETUP} -eq 1 ]]; then
  install_tools
  log "building airbag (scripts/setup.sh; the first run takes a few minutes)"
  "${ROOT}/scripts/setup.sh"
fi
for tool in nginx haproxy wrk h2load taskset python3 curl openssl redis-server redis-cli; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} not found (run without --no-setup)"
done
for bin in "${AIRBAG_BIN}" "${DEMO_BIN}"; do
  [[ -x ${bin} ]] || die "${bin} is not built"
done

# ---------------------------------------------------------------- processes

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "${UP_NGINX_PORT}" "${DEMO_PORT}" "${DEAD_PORT}" "${UP_TLS_PORT}" "${REDIS_PORT}" "${AIRBAG_PORT}" \
            "${AIRBAG_ADMIN_PORT}" "${AIRBAG_TLS_PORT}" "${NGINX_PORT}" "${NGINX_TLS_PORT}" \
            "${HAPROXY_PORT}" "${AIRBAG2_PORT}" "${AIRBAG2_ADMIN_PORT}" "${AIRBAG2_TLS_PORT}" \
            "${NGINX2_PORT}" "${NGINX2_TLS_PORT}" "${HAPROXY2_PORT}"; do
  port_busy "${port}" && die "127.0.0.1:${port} is in use; set BENCH_PORT_BASE to move the ports"
done

# Servers share CPU 0, the load generator has CPU 1: the proxy and the upstream compete for one
# core as a sidecar and its model server would, and the client never steals from them.
if [[ $(nproc) -ge 2 ]]; then
  PIN_SERVER=(taskset -c 0)
  PIN_CLIENT=(taskset -c 1)
  LOADGEN_CPU=(--loadgen-cpu 1)
else
  log "one CPU only: no pinning, figures will be noisier"
  PIN_SERVER=()
  PIN_CLIENT=()
  LOADGEN_CPU=()
fi

RUN_DIR="$(mktemp -d -t airbag-bench.XXXXXX)"
PIDS=()
declare -A PID_OF=()

# Stops everything we started: SIGTERM, then SIGKILL for whatever is still up after 10 s.
stop_all() {
  local rc=$?
  trap - EXIT INT TERM
  local i n name
  if [[ ${rc} -ne 0 ]]; then
    for name in "${!PID_OF[@]}"; do
      if ! kill -0 "${PID_OF[${name}]}" 2>/dev/null; then
        echo "run.sh: ${name} (pid ${PID_OF[${name}]}) is not running; the end of its log:" >&2
        tail -n 20 "${RUN_DIR}/${name}.log" >&2 || true
      fi
    done
  fi
  for i in "${!PIDS[@]}"; do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
  for i in "${!PIDS[@]}"; do
    n=0
    while kill -0 "${PIDS[$i]}" 2>/dev/null && [[ ${n} -lt 100 ]]; do
      sleep 0.1
      n=$((n + 1))
    done
    kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  rm -rf "${RUN_DIR}"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

start() {
  local name="$1"
  shift
  "${PIN_SERVER[@]}" "$@" >"${RUN_DIR}/${name}.log" 2>&1 &
  PIDS+=("$!")
  PID_OF[${name}]=$!
}

# The same, free to run on every CPU (the two-worker proxies).
start_unpinned() {
  local name="$1"
  shift
  "$@" >"${RUN_DIR}/${name}.log" 2>&1 &
  PIDS+=("$!")
  PID_OF[${name}]=$!
}

# Waits until URL answers (any HTTP status), failing early if the named process has exited.
wait_ready() {
  local name="$1" url="$2"
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until curl -s -o /dev/null --max-time 1 --cacert "${RUN_DIR}/tls.crt" "${url}"; do
    if ! kill -0 "${PID_OF[${name}]}" 2>/dev/null; then
      tail -n 30 "${RUN_DIR}/${name}.log" >&2
      die "${name} exited during start-up"
    fi
    [[ ${SECONDS} -lt ${deadline} ]] || die "${name} not ready after ${READY_TIMEOUT_S}s"
    sleep 0.1
  done
}

render() { python3 "${HERE}/measure.py" render "$@"; }

# nginx drops privileges to this user for its workers; the run directory must stay usable.
USER_LINE=""
if [[ ${EUID} -eq 0 ]]; then USER_LINE="user root $(id -gn);"; fi

# The ~600 B answer of the nginx stand-in, shaped like the demo server's /predict answer.
ANSWER="$(python3 -c '
import json
a = {"predictions": [{"score": 0.731058, "label": "positive"}], "model": "bench", "padding": ""}
a["padding"] = "x" * (600 - len(json.dumps(a, separators=(",", ":"))))
print(json.dumps(a, separators=(",", ":")))')"
DEFAULT_ANSWER='{"predictions":[{"score":0.0}],"flag_for_review":true}'
printf 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s' \
  "${#DEFAULT_ANSWER}" "${DEFAULT_ANSWER}" >"${RUN_DIR}/haproxy-default.http"

# One throwaway certificate (ECDSA P-256) for every TLS server of the run: airbag's and nginx's
# TLS ports and the https upstream stand-in.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "${RUN_DIR}/tls.key" -out "${RUN_DIR}/tls.crt" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null ||
  die "openssl could not make the benchmark's certificate"

COMMON=(RUN_DIR="${RUN_DIR}" USER_LINE="${USER_LINE}" DEMO_PORT="${DEMO_PORT}"
        DEAD_PORT="${DEAD_PORT}" UP_NGINX_PORT="${UP_NGINX_PORT}" UP_TLS_PORT="${UP_TLS_PORT}"
        REDIS_PORT="${REDIS_PORT}")

# ---------------------------------------------------------------- upstream stand-in

log "starting the upstream candidates (run directory ${RUN_DIR})"
render "${HERE}/nginx-upstream.conf.in" "${RUN_DIR}/nginx-upstream.conf" "${COMMON[@]}" \
  ANSWER="${ANSWER}"
start nginx-upstream nginx -c "${RUN_DIR}/nginx-upstream.conf" -p "${RUN_DIR}" \
  -e "${RUN_DIR}/nginx-upstream.error.log"
start demo "${DEMO_BIN}" --listen "127.0.0.1:${DEMO_PORT}" --name bench
# The shared tier's Redis, beside the servers on their core: no persistence, loopback only.
start redis redis-server --port "${REDIS_PORT}" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "${RUN_DIR}"
wait_ready nginx-upstream "http://127.0.0.1:${UP_NGINX_PORT}/"
wait_ready nginx-upstream "https://127.0.0.1:${UP_TLS_PORT}/"
wait_ready demo "http://127.0.0.1:${DEMO_PORT}/health"
deadline=$((SECONDS + READY_TIMEOUT_S))
until [[ $(redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping 2>/dev/null) == PONG ]]; do
  kill -0 "${PID_OF[redis]}" 2>/dev/null || die "redis-server exited during start-up"
  [[ ${SECONDS} -lt ${deadline} ]] || die "redis-server not ready after ${READY_TIMEOUT_S}s"
  sleep 0.1
done
curl -fsS -o /dev/null -X PUT "http://127.0.0.1:${DEMO_PORT}/control/behavior" \
  -d "{\"response_bytes\":600,\"stream_events\":100,\"stream_interval_ms\":0}" ||
  die "the demo server refused its behaviour"

# The upstream must not be the bottleneck: use whichever stand-in costs less CPU per request.
CALIBRATION="$("${PIN_CLIENT[@]}" python3 "${HERE}/measure.py" calibrate --run-dir "${RUN_DIR}" \
  "${LOADGEN_CPU[@]}" --connections "${CONNECTIONS}" \
  --candidate "nginx,http://127.0.0.1:${UP_NGINX_PORT},${PID_OF[nginx-upstream]}" \
  --candidate "demo,http://127.0.0.1:${DEMO_PORT},${PID_OF[demo]}")"
UP_CHOICE="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["choice"])' \
  "${CALIBRATION}")"
UP_LABEL="$(python3 -c '
import json, sys
c = json.loads(sys.argv[1])
names = {"nginx": "nginx answering a fixed 600 B JSON", "demo": "the demo model server"}
costs = ", ".join(f"{n} {v:.1f} µs" for n, v in c["cpu_us"].items())
print(names[c["choice"]] + f" (chosen as the cheaper per request: {costs})")' "${CALIBRATION}")"
if [[ ${UP_CHOICE} == nginx ]]; then
  UP_PORT="${UP_NGINX_PORT}"
  UP_PID="${PID_OF[nginx-upstream]}"
else
  UP_PORT="${DEMO_PORT}"
  UP_PID="${PID_OF[demo]}"
fi
log "upstream: ${UP_LABEL}"

# ---------------------------------------------------------------- the proxies

VALUES=("${COMMON[@]}" UP_PORT="${UP_PORT}" DEFAULT_ANSWER="${DEFAULT_ANSWER}")
# Writes the three proxies' configs for one set: $1 = suffix ("" or "2"), $2 = workers.
render_proxies() {
  local sfx="$1" workers="$2" ap="AIRBAG${1}_PORT" aap="AIRBAG${1}_ADMIN_PORT" \
    atp="AIRBAG${1}_TLS_PORT" np="NGINX${1}_PORT" ntp="NGINX${1}_TLS_PORT" hp="HAPROXY${1}_PORT"
  local values=("${VALUES[@]}" WORKERS="${workers}" INSTANCE="nginx-proxy${sfx}"
                AIRBAG_PORT="${!ap}" AIRBAG_ADMIN_PORT="${!aap}" AIRBAG_TLS_PORT="${!atp}"
                NGINX_PORT="${!np}" NGINX_TLS_PORT="${!ntp}" HAPROXY_PORT="${!hp}")
  render "${HERE}/airbag.yaml.in" "${RUN_DIR}/airbag${sfx}.yaml" "${values[@]}"
  render "${HERE}/nginx-proxy.conf.in" "${RUN_DIR}/nginx-proxy${sfx}.conf" "${values[@]}"
  render "${HERE}/haproxy.cfg.in" "${RUN_DIR}/haproxy${sfx}.cfg" "${values[@]}"
  "${AIRBAG_BIN}" --check-config "${RUN_DIR}/airbag${sfx}.yaml" >&2 || die "airbag rejected its config"
  nginx -t -q -c "${RUN_DIR}/nginx-proxy${sfx}.conf" -p "${RUN_DIR}" \
    -e "${RUN_DIR}/nginx-proxy${sfx}.error.log" || die "nginx rejected its config"
  haproxy -c -q -f "${RUN_DIR}/haproxy${sfx}.cfg" || die "haproxy rejected its config"
}
render_proxies "" 1
render_proxies 2 2

log "starting airbag, nginx and HAProxy (one worker, pinned; two workers, unpinned)"
start airbag "${AIRBAG_BIN}" -c "${RUN_DIR}/airbag.yaml"
start nginx-proxy nginx -c "${RUN_DIR}/nginx-proxy.conf" -p "${RUN_DIR}" \
  -e "${RUN_DIR}/nginx-proxy.error.log"
start haproxy haproxy -db -f "${RUN_DIR}/haproxy.cfg"
start_unpinned airbag2 "${AIRBAG_BIN}" -c "${RUN_DIR}/airbag2.yaml"
start_unpinned nginx-proxy2 nginx -c "${RUN_DIR}/nginx-proxy2.conf" -p "${RUN_DIR}" \
  -e "${RUN_DIR}/nginx-proxy2.error.log"
start_unpinned haproxy2 haproxy -db -f "${RUN_DIR}/haproxy2.cfg"
wait_ready airbag "http://127.0.0.1:${AIRBAG_ADMIN_PORT}/healthz"
wait_ready airbag "http://127.0.0.1:${AIRBAG_PORT}/v2/models/bench"
wait_ready nginx-proxy "http://127.0.0.1:${NGINX_PORT}/v2/models/bench"
wait_ready haproxy "http://127.0.0.1:${HAPROXY_PORT}/v2/models/bench"
wait_ready airbag "https://127.0.0.1:${AIRBAG_TLS_PORT}/v2/models/bench"
wait_ready nginx-proxy "https://127.0.0.1:${NGINX_TLS_PORT}/v2/models/bench"
wait_ready airbag2 "http://127.0.0.1:${AIRBAG2_PORT}/v2/models/bench"
wait_ready nginx-proxy2 "http://127.0.0.1:${NGINX2_PORT}/v2/models/bench"
wait_ready haproxy2 "http://127.0.0.1:${HAPROXY2_PORT}/v2/models/bench"
for port in "${UP_PORT}" "${AIRBAG_PORT}" "${NGINX_PORT}" "${HAPROXY_PORT}"; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -d '{"amount":1}' "http://127.0.0.1:${port}/predict")"
  [[ ${code} == 200 ]] || die "POST /predict on 127.0.0.1:${port} answered ${code}, not 200"
done
for url in "https://127.0.0.1:${AIRBAG_TLS_PORT}/predict" "https://127.0.0.1:${NGINX_TLS_PORT}/predict" \
           "http://127.0.0.1:${AIRBAG_PORT}/https/predict" "http://127.0.0.1:${NGINX_PORT}/https/predict"; do
  code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "${RUN_DIR}/tls.crt" -X POST \
    -H 'content-type: application/json' -d '{"amount":1}' "${url}")"
  [[ ${code} == 200 ]] || die "POST ${url} answered ${code}, not 200"
done
negotiated() {
  curl -sv -o /dev/null --cacert "${RUN_DIR}/tls.crt" "$1" 2>&1 |
    sed -n 's/^\* SSL connection using \(.*\)$/\1/p' | head -n 1
}
TLS_NOTE="TLS rows: one ECDSA P-256 certificate for every TLS server; curl negotiates"
TLS_NOTE+=" $(negotiated "https://127.0.0.1:${AIRBAG_TLS_PORT}/predict") with airbag and"
TLS_NOTE+=" $(negotiated "https://127.0.0.1:${NGINX_TLS_PORT}/predict") with nginx; wrk (its"
TLS_NOTE+=" own OpenSSL defaults) is the client, reconnecting after every answer in the 'new"
TLS_NOTE+=" connection' row; the https upstream is the nginx stand-in on TLS, verified by both"
TLS_NOTE+=" proxies"

VERSIONS="$("${AIRBAG_BIN}" --version 2>&1 | head -n 1); $(nginx -v 2>&1 | head -n 1 |
  sed 's/^nginx version: //'); $(haproxy -v 2>&1 | head -n 1 | cut -d' ' -f1-3); $(wrk -v 2>&1 |
  head -n 1 | cut -d' ' -f1-2); h2load $(h2load --version 2>&1 | awk '{print $NF}' | head -n 1)"

log "measuring: ${ROUNDS} rounds (about $((ROUNDS * (22 * DURATION + 30) / 60 + 1)) minutes)"
mkdir -p "${OUT_DIR}"
"${PIN_CLIENT[@]}" python3 "${HERE}/measure.py" run --run-dir "${RUN_DIR}" "${LOADGEN_CPU[@]}" \
  --connections "${CONNECTIONS}" --rounds "${ROUNDS}" --duration "${DURATION}" \
  --target "direct,http://127.0.0.1:${UP_PORT},${UP_PID}" \
  --target "airbag,http://127.0.0.1:${AIRBAG_PORT},${PID_OF[airbag]}" \
  --target "nginx,http://127.0.0.1:${NGINX_PORT},${PID_OF[nginx-proxy]}" \
  --target "haproxy,http://127.0.0.1:${HAPROXY_PORT},${PID_OF[haproxy]}" \
  --sse-direct "http://127.0.0.1:${DEMO_PORT}" --demo-pid "${PID_OF[demo]}" \
  --airbag-admin "http://127.0.0.1:${AIRBAG_ADMIN_PORT}" \
  --two-workers "airbag,http://127.0.0.1:${AIRBAG2_PORT},${PID_OF[airbag2]}" \
  --two-workers "nginx,http://127.0.0.1:${NGINX2_PORT},${PID_OF[nginx-proxy2]}" \
  --two-workers "haproxy,http://127.0.0.1:${HAPROXY2_PORT},${PID_OF[haproxy2]}" \
  --tls-target "airbag,https://127.0.0.1:${AIRBAG_TLS_PORT},${PID_OF[airbag]}" \
  --tls-target "nginx,https://127.0.0.1:${NGINX_TLS_PORT},${PID_OF[nginx-proxy]}" \
  --https-upstream-pid "${PID_OF[nginx-upstream]}" --cases "${CASES}" --tls-note "${TLS_NOTE}" \
  --upstream-label "${UP_LABEL}" --versions "${VERSIONS}" --out-dir "${OUT_DIR}"
log "wrote ${OUT_DIR}/results.md and ${OUT_DIR}/results.csv"
