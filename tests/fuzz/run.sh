#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (clang, ASan + UBSan) into build-fuzz/ and runs
# each for a bounded time, starting from its committed seed corpus. Prints one line per target
# and a summary line; exits non-zero if any target crashed, failed a property or did not build.
#
#   tests/fuzz/run.sh [seconds per target, default 60] [target...]
#
# New inputs that grow coverage go to build-fuzz/corpus/<target>/ (kept between runs, never
# committed by this script). A finding is saved as build-fuzz/findings/<target>/crash-*: turn it
# into a regression test in tests/unit/ and copy it into tests/fuzz/corpus/<target>/, where the
# normal build replays it (ctest: fuzz_corpus.<target>).
#
# Environment: AIRBAG_JOBS (parallel build jobs, default: CPU count),
#              AIRBAG_FUZZ_JOBS (targets fuzzed at once, default: CPU count),
#              AIRBAG_FUZZ_BUILD (build folder, default: build-fuzz).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${AIRBAG_FUZZ_BUILD:-${ROOT}/build-fuzz}"
JOBS="${AIRBAG_JOBS:-$(nproc)}"
FUZZ_JOBS="${AIRBAG_FUZZ_JOBS:-$(nproc)}"
SECONDS_EACH="${1:-60}"
[[ $# -gt 0 ]] && shift
if [[ ! ${SECONDS_EACH} =~ ^[0-9]+$ ]]; then
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
fi

# Longest input per target: configs and HTTP streams need room, the header values do not.
declare -A MAX_LEN=([config_fuzz]=4096 [request_framing_fuzz]=2048 [response_framing_fuzz]=2048
                    [json_fuzz]=2048 [header_values_fuzz]=256 [prometheus_text_fuzz]=2048
                    [shared_entry_fuzz]=2048)
TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  TARGETS=()
  for src in "${ROOT}"/tests/fuzz/*_fuzz.cc; do TARGETS+=("$(basename "${src}" .cc)"); done
fi

launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache
                                               -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
log="$(mktemp -t airbag-fuzz-build.XXXXXX)"
build_started=${SECONDS}
if ! { cmake -S "${ROOT}" -B "${BUILD}" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
         -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAIRBAG_FUZZ=ON -DAIRBAG_BUILD_TESTS=OFF \
         -DAIRBAG_BUILD_BENCH=OFF "${launcher[@]}" &&
       cmake --build "${BUILD}" -j "${JOBS}" --target airbag_fuzzers; } >"${log}" 2>&1; then
  tail -n 200 "${log}" >&2
  rm -f "${log}"
  echo "fuzz: build of ${BUILD} failed"
  exit 1
fi
rm -f "${log}"
echo "fuzz: $(date -u +%H:%M:%S) built ${BUILD} in $((SECONDS - build_started)) s"

# Runs one target; its verdict (one or more lines, the first "passed" or "FAILED") goes to
# ${BUILD}/<target>.result.
fuzz_one() {
  local t="$1" bin work findings out status=0 runs cov
  local result="${BUILD}/${t}.result"
  bin="$(find "${BUILD}/tests/fuzz" -maxdepth 1 -type f -name "${t}" -perm -u+x | head -n 1)"
  if [[ -z ${bin} ]]; then
    echo "fuzz: ${t}: FAILED: no such target" >"${result}"
    return
  fi
  work="${BUILD}/corpus/${t}"
  findings="${BUILD}/findings/${t}"
  rm -rf "${findings}"
  mkdir -p "${work}" "${findings}"
  out="${BUILD}/${t}.log"
  # The first corpus folder receives new inputs; the committed seeds are only read.
  # -rss_limit_mb and -timeout turn runaway memory or time into findings too.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "${bin}" -max_total_time="${SECONDS_EACH}" -max_len="${MAX_LEN[${t}]:-4096}" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="${findings}/" \
      "${work}" "${ROOT}/tests/fuzz/corpus/${t}" >"${out}" 2>&1 || status=$?
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "${out}" | grep -Eo '[0-9]+$' || true)"
  cov="$(grep -Eo 'cov: [0-9]+' "${out}" | tail -n 1 || true)"
  if [[ ${status} -eq 0 ]]; then
    echo "fuzz: ${t}: passed, ${runs:-?} inputs in ${SECONDS_EACH}s (${cov:-no coverage stat})" \
      >"${result}"
  else
    {
      echo "fuzz: ${t}: FAILED (exit ${status}); log ${out}; input:"
      ls -1 "${findings}" | sed "s|^|  ${findings}/|"
      grep -E 'ERROR|runtime error|_fuzz:|http_framing:|SUMMARY' "${out}" | head -n 5 |
        sed 's/^/  /'
      # The input itself, so that a finding on a machine that is gone can still be replayed:
      # base64 -d into a file and run the target on it.
      for f in "${findings}"/*; do
        [[ -f ${f} ]] && echo "  $(basename "${f}") as base64: $(head -c 8192 "${f}" | base64 -w 0)"
      done
    } >"${result}"
  fi
}

# The targets run side by side, as many at once as there are cores: each is single threaded.
running=0
for t in "${TARGETS[@]}"; do
  rm -f "${BUILD}/${t}.result"
  if [[ ${running} -ge ${FUZZ_JOBS} ]]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "${t}" &
  running=$((running + 1))
done
wait || true

failed=0
passed=0
failed_names=""
for t in "${TARGETS[@]}"; do
  if [[ -f "${BUILD}/${t}.result" ]] && head -n 1 "${BUILD}/${t}.result" | grep -q ': passed,'; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failed_names+="${failed_names:+,} ${t}"
  fi
  cat "${BUILD}/${t}.result" 2>/dev/null || echo "fuzz: ${t}: FAILED: no verdict"
done

total=$((passed + failed))
echo "fuzz: $((total == 0 ? 0 : passed * 100 / total))% of fuzz targets passed, ${failed} failed out of ${total}${failed_names:+:${failed_names}}"
[[ ${failed} -eq 0 ]]
