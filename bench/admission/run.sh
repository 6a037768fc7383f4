#!/usr/bin/env bash
# Admission benchmark: the demo model server at 2x its capacity, mixed priorities, with and
# without saturation-aware admission, side by side. One command from a fresh Debian 12 machine.
# Writes results.md, requests.csv, queue.csv and queue.png (the model's queue over time) here.
#
#   bench/admission/run.sh [--seconds S] [--no-setup] [--out DIR]
#
#   --seconds S   seconds of overload per scenario (default 20; half as long unloaded first)
#   --no-setup    skip installing packages and building; use the binaries already built
#   --out DIR     where the results go (default: this folder)
#
# Environment: AIRBAG_BIN, DEMO_BIN (default build/proxy/airbag and
# build/examples/demo-model-server/demo-model-server).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"
AIRBAG_BIN="${AIRBAG_BIN:-${ROOT}/build/proxy/airbag}"
DEMO_BIN="${DEMO_BIN:-${ROOT}/build/examples/demo-model-server/demo-model-server}"
SECONDS_OVERLOAD=20
SETUP=1
OUT_DIR="${HERE}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) SECONDS_OVERLOAD="$2"; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ ${SECONDS_OVERLOAD} =~ ^[0-9]+$ && ${SECONDS_OVERLOAD} -ge 2 && ${SECONDS_OVERLOAD} -le 600 ]] ||
  { echo "run.sh: --seconds must be 2..600" >&2; exit 2; }

die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

if [[ ${SETUP} -eq 1 ]]; then
  # gnuplot draws the PNG; python3 drives the load. Debian packages, installed when missing.
  missing=()
  command -v gnuplot >/dev/null 2>&1 || missing+=(gnuplot-nox)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  if [[ ${#missing[@]} -gt 0 ]]; then
    [[ ${EUID} -eq 0 ]] || die "missing ${missing[*]}; run as root to install them"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
  "${ROOT}/scripts/setup.sh"
fi
for bin in "${AIRBAG_BIN}" "${DEMO_BIN}"; do
  [[ -x ${bin} ]] || die "${bin} is not built"
done
command -v gnuplot >/dev/null 2>&1 || die "gnuplot not found (run without --no-setup)"

mkdir -p "${OUT_DIR}"
python3 "${HERE}/bench.py" --airbag "${AIRBAG_BIN}" --demo "${DEMO_BIN}" --out "${OUT_DIR}" \
  --seconds "${SECONDS_OVERLOAD}"

# The model's queue over time, both scenarios on one plot.
awk -F, 'NR > 1 && $1 == "without" { print $2 / 1000, $3 }' "${OUT_DIR}/queue.csv" \
  >"${OUT_DIR}/.queue-without.dat"
awk -F, 'NR > 1 && $1 == "with" { print $2 / 1000, $3 }' "${OUT_DIR}/queue.csv" \
  >"${OUT_DIR}/.queue-with.dat"
gnuplot <<GNUPLOT
set terminal pngcairo size 900,420 font "sans,10"
set output "${OUT_DIR}/queue.png"
set termoption noenhanced
set title "The model's own queue (vllm:num_requests_waiting) at 0.5x, then 2x its capacity"
set xlabel "seconds"
set ylabel "requests waiting in the model"
set key top left
set grid
plot "${OUT_DIR}/.queue-without.dat" with lines lw 2 title "without admission", \
     "${OUT_DIR}/.queue-with.dat" with lines lw 2 title "with admission"
GNUPLOT
rm -f "${OUT_DIR}/.queue-without.dat" "${OUT_DIR}/.queue-with.dat"
echo "wrote ${OUT_DIR}/results.md, requests.csv, queue.csv, queue.png" >&2
