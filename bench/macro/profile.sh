#!/usr/bin/env bash
# What one pass-through request costs airbag, counted rather than timed: user-space instructions
# (valgrind's callgrind), heap allocations (a counting malloc, count_allocs.c, preloaded) and
# system calls by name (strace -c -f), per keep-alive POST through one
# worker to the demo model server's 600 B answer. Both are differences of two runs, one with
# --warmup requests and one with --warmup + --requests, so start-up and shutdown cancel out.
#
#   bench/macro/profile.sh [--requests N] [--warmup N] [--connections C] [--no-setup]
#                          [--only callgrind|strace|allocs]
#
#   --requests N     requests counted (default 20000)
#   --warmup N       requests in both runs, filling pools and caches (default 1000)
#   --connections C  client connections, one request in flight on each (default 32, like wrk)
#   --no-setup       skip installing valgrind, strace, python3 and curl
#   --only WHAT      run one of the three counts
#
# Environment: AIRBAG_BIN, DEMO_BIN (default build/proxy/airbag and
# build/examples/demo-model-server/demo-model-server), PROFILE_PORT_BASE (default 18100: uses
# BASE to BASE+2 on 127.0.0.1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"
AIRBAG_BIN="${AIRBAG_BIN:-${ROOT}/build/proxy/airbag}"
DEMO_BIN="${DEMO_BIN:-${ROOT}/build/examples/demo-model-server/demo-model-server}"
PORT_BASE="${PROFILE_PORT_BASE:-18100}"
REQUESTS=20000
WARMUP=1000
CONNECTIONS=32
SETUP=1
ONLY=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --requests) REQUESTS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    --only) ONLY="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

UP_PORT=$((PORT_BASE + 0))
AIRBAG_PORT=$((PORT_BASE + 1))
ADMIN_PORT=$((PORT_BASE + 2))

log() { printf '[profile] %s\n' "$*" >&2; }
die() { printf 'profile.sh: %s\n' "$*" >&2; exit 1; }

if [[ ${SETUP} -eq 1 ]]; then
  declare -A want=([valgrind]=valgrind [strace]=strace [python3]=python3 [curl]=curl)
  missing=()
  for tool in "${!want[@]}"; do
    command -v "${tool}" >/dev/null 2>&1 || missing+=("${want[${tool}]}")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    [[ ${EUID} -eq 0 ]] || die "missing ${missing[*]}; run as root to install them"
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
for tool in valgrind strace python3 curl; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} not found (run without --no-setup)"
done
for bin in "${AIRBAG_BIN}" "${DEMO_BIN}"; do
  [[ -x ${bin} ]] || die "${bin} is not built (scripts/setup.sh builds it)"
done

RUN_DIR="$(mktemp -d -t airbag-profile.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "${pid}" 2>/dev/null || true; done
  rm -rf "${RUN_DIR}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() {
  local pid="$1" url="$2" deadline=$((SECONDS + 60))
  until curl -s -o /dev/null --max-time 1 "${url}"; do
    kill -0 "${pid}" 2>/dev/null || die "process ${pid} exited during start-up"
    [[ ${SECONDS} -lt ${deadline} ]] || die "${url} not ready after 60 s"
    sleep 0.2
  done
}

"${DEMO_BIN}" --listen "127.0.0.1:${UP_PORT}" --name bench >"${RUN_DIR}/demo.log" 2>&1 &
PIDS+=("$!")
wait_ready "$!" "http://127.0.0.1:${UP_PORT}/health"
curl -fsS -o /dev/null -X PUT "http://127.0.0.1:${UP_PORT}/control/behavior" \
  -d '{"response_bytes":600}' || die "the demo server refused its behaviour"

cat >"${RUN_DIR}/airbag.yaml" <<EOF
listen:
  address: 127.0.0.1:${AIRBAG_PORT}
  workers: 1
  limits: { idle_timeout: 600s, header_timeout: 600s }
admin: { address: "127.0.0.1:${ADMIN_PORT}" }
log: { level: warn, access_log: off }
upstreams:
  up: { url: "http://127.0.0.1:${UP_PORT}", max_connections: 256 }
routes:
  - name: pass-post
    match: { path: /predict, methods: [POST] }
    upstream: up
EOF
"${AIRBAG_BIN}" --check-config "${RUN_DIR}/airbag.yaml" >&2 || die "airbag rejected its config"

load() {
  python3 "${HERE}/keepalive_load.py" --port "${AIRBAG_PORT}" --requests "$1" \
    --connections "${CONNECTIONS}" >/dev/null
}

# Runs airbag under the given wrapper, sends $1 requests, stops it with SIGTERM (a clean exit,
# so the wrapper writes its report) and waits.
run_wrapped() {
  local n="$1"
  shift
  "$@" "${AIRBAG_BIN}" -c "${RUN_DIR}/airbag.yaml" >"${RUN_DIR}/airbag.log" 2>&1 &
  local pid=$!
  PIDS+=("${pid}")
  wait_ready "${pid}" "http://127.0.0.1:${AIRBAG_PORT}/"
  load "${n}"
  # strace does not pass SIGTERM on to the program it runs: signal airbag itself, its child.
  local children
  children="$(cat "/proc/${pid}/task/${pid}/children" 2>/dev/null || true)"
  children="${children%% *}"
  kill -TERM "${children:-${pid}}"
  wait "${pid}" || die "airbag did not exit cleanly: $(tail -n 5 "${RUN_DIR}/airbag.log")"
}

callgrind_total() {
  rm -f "${RUN_DIR}"/callgrind.out.*
  run_wrapped "$1" valgrind --tool=callgrind --trace-children=no \
    --callgrind-out-file="${RUN_DIR}/callgrind.out.%p"
  cat "${RUN_DIR}"/callgrind.out.* | awk '/^(summary|totals):/ { s += $2 } END { print s / 2 }'
}

strace_counts() {
  run_wrapped "$1" strace -f -c -o "${RUN_DIR}/strace.$1"
  # "% time seconds usecs/call calls [errors] syscall": keep name and calls.
  awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { print $NF, $4 }' \
    "${RUN_DIR}/strace.$1"
}

echo "airbag: $("${AIRBAG_BIN}" --version 2>&1 | head -n 1); ${REQUESTS} keep-alive POSTs" \
  "(${CONNECTIONS} connections, 64 B body, 600 B answer) after ${WARMUP}, one worker"

if [[ -z ${ONLY} || ${ONLY} == callgrind ]]; then
  log "callgrind: ${WARMUP} requests"
  base="$(callgrind_total "${WARMUP}")"
  log "callgrind: $((WARMUP + REQUESTS)) requests"
  full="$(callgrind_total "$((WARMUP + REQUESTS))")"
  python3 -c 'import sys; b, f, n = map(float, sys.argv[1:])
print(f"instructions per request (callgrind Ir): {(f - b) / n:,.0f}")' "${base}" "${full}" \
    "${REQUESTS}"
fi

allocs_total() {
  ALLOC_COUNT_FILE="${RUN_DIR}/allocs.$1" run_wrapped "$1" \
    env LD_PRELOAD="${RUN_DIR}/count_allocs.so"
  cat "${RUN_DIR}/allocs.$1"
}

if [[ -z ${ONLY} || ${ONLY} == allocs ]]; then
  cc -O2 -shared -fPIC -o "${RUN_DIR}/count_allocs.so" "${HERE}/count_allocs.c" -ldl ||
    die "cannot build count_allocs.so"
  log "allocations: ${WARMUP} requests"
  base="$(allocs_total "${WARMUP}")"
  log "allocations: $((WARMUP + REQUESTS)) requests"
  full="$(allocs_total "$((WARMUP + REQUESTS))")"
  python3 -c 'import sys; b, f, n = map(int, sys.argv[1:])
print(f"heap allocations per request (malloc, calloc, realloc): {(f - b) / n:.3f}"
      f" ({f - b} over {n} requests; {b} with the warm-up only)")' \
    "${base}" "${full}" "${REQUESTS}"
fi

if [[ -z ${ONLY} || ${ONLY} == strace ]]; then
  log "strace: ${WARMUP} requests"
  strace_counts "${WARMUP}" >"${RUN_DIR}/sys.base"
  log "strace: $((WARMUP + REQUESTS)) requests"
  strace_counts "$((WARMUP + REQUESTS))" >"${RUN_DIR}/sys.full"
  python3 - "${RUN_DIR}/sys.base" "${RUN_DIR}/sys.full" "${REQUESTS}" <<'EOF'
import sys
def read(path):
    out = {}
    for line in open(path):
        name, calls = line.split()
        out[name] = out.get(name, 0) + int(calls)
    return out
base, full, n = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
per = {k: (full.get(k, 0) - base.get(k, 0)) / n for k in full}
per = {k: v for k, v in per.items() if v >= 0.005}
print(f"system calls per request (strace -c -f): {sum(per.values()):.2f}")
for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
    print(f"  {k:<16} {v:.2f}")
EOF
fi
