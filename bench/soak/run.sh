#!/usr/bin/env bash
# Runs the soak test for a long while (default 600 s) against the build in build/ and keeps its
# per-second samples and summary:
#
#   bench/soak/run.sh [SECONDS] [OUT_DIR]      # default: 600 bench/soak/results
#
# Writes OUT_DIR/soak-SECONDSs.csv (t_s, rss_kib, fds, sockets, ok, injected_errors,
# other_errors, reloads, restarts) and OUT_DIR/soak-SECONDSs.txt (the summary: slopes per minute,
# errors, baseline and end figures). Exits non-zero if the soak test failed. CPU-light: ~160
# requests/s; better run when nothing else is building.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECONDS_TO_RUN="${1:-600}"
OUT_DIR="${2:-${ROOT}/bench/soak/results}"
BIN="${ROOT}/build/bench/soak/soak_test"

if [[ ! -x ${BIN} ]]; then
  echo "run.sh: ${BIN} not built (cmake --build build --target soak_test)" >&2
  exit 1
fi
mkdir -p "${OUT_DIR}"
AIRBAG_SOAK_SECONDS="${SECONDS_TO_RUN}" \
  AIRBAG_SOAK_CSV="${OUT_DIR}/soak-${SECONDS_TO_RUN}s.csv" \
  AIRBAG_SOAK_SUMMARY="${OUT_DIR}/soak-${SECONDS_TO_RUN}s.txt" \
  "${BIN}" --gtest_brief=1
echo "run.sh: samples in ${OUT_DIR}/soak-${SECONDS_TO_RUN}s.csv"
