#!/usr/bin/env bash
# Builds airbag, then runs it beside two demo model servers on loopback so that every level of
# its fallback ladder can be tried with curl. Stays in the foreground; Ctrl-C stops all three.
#
#   scripts/quickstart.sh
#
#   127.0.0.1:8000  demo model server "model"        (the primary)
#   127.0.0.1:8001  demo model server "small-model"  (the fallback)
#   127.0.0.1:8080  airbag, configured by examples/quickstart.yaml
#   127.0.0.1:9901  airbag's admin port
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${ROOT}/build"
CONFIG="${ROOT}/examples/quickstart.yaml"
AIRBAG="${BUILD_DIR}/proxy/airbag"
DEMO="${BUILD_DIR}/examples/demo-model-server/demo-model-server"
READY_TIMEOUT_S=30

case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "quickstart.sh: unknown argument: $1" >&2; exit 2 ;;
esac

echo "Installing what is missing (Debian packages; quiet)..."
"${ROOT}/scripts/setup.sh" --deps-only

# Builds only the two programs the tour runs (scripts/test.sh builds the tests and benchmarks),
# showing cmake's progress lines; the whole log is shown only if the build fails.
echo "Building airbag and the demo model server (a first build takes a few minutes)..."
BUILD_LOG="$(mktemp -t airbag-quickstart-build.XXXXXX)"
{
  cmake -S "${ROOT}" -B "${BUILD_DIR}" -DCMAKE_BUILD_TYPE="${AIRBAG_BUILD_TYPE:-RelWithDebInfo}" &&
    cmake --build "${BUILD_DIR}" -j "${AIRBAG_JOBS:-$(nproc)}" --target airbag demo-model-server
  echo "$?" >"${BUILD_LOG}.status"
} 2>&1 | tee "${BUILD_LOG}" | grep --line-buffered -E '^\[ *[0-9]+%\] (Building|Linking)' |
  sed -u -E 's/^\[ *([0-9]+%)\] (Building|Linking) [A-Z]+ (object|executable|static library) /  \1  /' ||
  true
build_status="$(cat "${BUILD_LOG}.status" 2>/dev/null || echo 1)"
rm -f "${BUILD_LOG}.status"
if [[ ${build_status} -ne 0 ]]; then
  tail -n 60 "${BUILD_LOG}" >&2
  echo "quickstart.sh: the build failed; its log: ${BUILD_LOG}" >&2
  exit 1
fi
rm -f "${BUILD_LOG}"
for bin in "${AIRBAG}" "${DEMO}"; do
  [[ -x ${bin} ]] || { echo "quickstart.sh: ${bin} was not built" >&2; exit 1; }
done

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 8000 8001 8080 9901; do
  if port_busy "${port}"; then
    echo "quickstart.sh: 127.0.0.1:${port} is already in use; stop whatever listens there" >&2
    exit 1
  fi
done

LOGS="$(mktemp -d -t airbag-quickstart.XXXXXX)"
PIDS=()
NAMES=()

# Stops what we started: SIGTERM (airbag drains), then SIGKILL for anything still up after 10s.
stop_all() {
  trap - EXIT INT TERM
  local i
  for i in "${!PIDS[@]}"; do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
  for i in "${!PIDS[@]}"; do
    local n=0
    while kill -0 "${PIDS[$i]}" 2>/dev/null && [[ ${n} -lt 100 ]]; do
      sleep 0.1
      n=$((n + 1))
    done
    kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  echo "Stopped. Logs are in ${LOGS}"
}
trap stop_all EXIT
trap 'echo; exit 0' INT TERM

start() {
  local name="$1"
  shift
  "$@" >"${LOGS}/${name}.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=("${name}")
}

start model "${DEMO}" --listen 127.0.0.1:8000 --name model
start small-model "${DEMO}" --listen 127.0.0.1:8001 --name small-model
start airbag "${AIRBAG}" -c "${CONFIG}"

# Ready when the admin port answers /readyz (config loaded, listener up, model healthy).
deadline=$((SECONDS + READY_TIMEOUT_S))
until curl -fsS -o /dev/null "http://127.0.0.1:9901/readyz" 2>/dev/null; do
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "quickstart.sh: ${NAMES[$i]} exited; its log (${LOGS}/${NAMES[$i]}.log):" >&2
      tail -n 40 "${LOGS}/${NAMES[$i]}.log" >&2
      exit 1
    fi
  done
  if [[ ${SECONDS} -ge ${deadline} ]]; then
    echo "quickstart.sh: airbag not ready after ${READY_TIMEOUT_S}s; see ${LOGS}/airbag.log" >&2
    exit 1
  fi
  sleep 0.2
done

cat <<TOUR

airbag is up on 127.0.0.1:8080 (admin 127.0.0.1:9901), in front of two demo model servers.
Logs (airbag's access log is airbag.log): ${LOGS}

Try, from another terminal:

  # A normal call: answered by the model. Look at x-airbag-source and x-airbag-attempts.
  curl -si -X POST 127.0.0.1:8080/predict -H 'content-type: application/json' -d '{"amount":120}'
  # The same call again: answered from the cache (x-airbag-source: cache).
  curl -si -X POST 127.0.0.1:8080/predict -H 'content-type: application/json' -d '{"amount":120}'

  # OpenAI-style chat, whole and streamed (server-sent events pass through as they come).
  curl -si 127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
       -d '{"model":"model","messages":[{"role":"user","content":"hello"}]}'
  curl -N  127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
       -d '{"model":"model","stream":true,"messages":[{"role":"user","content":"hello"}]}'

  # What airbag knows: routes with breaker, bulkhead and cache state; Prometheus metrics.
  curl -s 127.0.0.1:9901/routes
  curl -s 127.0.0.1:9901/metrics | grep '^airbag_'

  # Now make the model fail every request...
  curl -X PUT 127.0.0.1:8000/control/behavior -d '{"error_rate":1}'
  # ...and call again: still answered, by the fallback (x-airbag-source: fallback:small-model).
  curl -si -X POST 127.0.0.1:8080/predict -H 'content-type: application/json' -d '{"amount":121}'

  # Fail the small model too: a rule answers large amounts (rule:high-amount), the safe
  # default answers the rest (default, with x-degraded: true).
  curl -X PUT 127.0.0.1:8001/control/behavior -d '{"error_rate":1}'
  curl -si -X POST 127.0.0.1:8080/predict -H 'content-type: application/json' -d '{"amount":9000}'
  curl -si -X POST 127.0.0.1:8080/predict -H 'content-type: application/json' -d '{"amount":42}'

  # Heal both models.
  curl -X POST 127.0.0.1:8000/control/reset; curl -X POST 127.0.0.1:8001/control/reset

Press Ctrl-C to stop.
TOUR

# In the foreground until Ctrl-C, or until one of the three ends on its own.
while true; do
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "quickstart.sh: ${NAMES[$i]} exited; its log (${LOGS}/${NAMES[$i]}.log):" >&2
      tail -n 40 "${LOGS}/${NAMES[$i]}.log" >&2
      exit 1
    fi
  done
  sleep 1
done
