#!/usr/bin/env bash
# Builds airbag and runs the whole test suite (unit and integration) in build/. With CI=true or
# --sanitize it also builds build-asan/ with AddressSanitizer + UBSan and runs the suite there,
# runs the fuzz targets for a short while (tests/fuzz/run.sh, in build-fuzz/), and runs the unit,
# integration, chaos and soak tests under ThreadSanitizer (build-tsan/, clang). Exits non-zero if
# anything failed; the last lines printed are ctest's summaries.
#
#   scripts/test.sh [--sanitize] [ctest arguments...]
#
# Environment: AIRBAG_JOBS (parallel build jobs, default: CPU count),
#              AIRBAG_TEST_JOBS (parallel tests, default: 2),
#              AIRBAG_FUZZ_SECONDS (seconds per fuzz target with --sanitize, default: 60).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${AIRBAG_JOBS:-$(nproc)}"
TEST_JOBS="${AIRBAG_TEST_JOBS:-2}"
SANITIZE=0
[[ "${CI:-}" == "true" ]] && SANITIZE=1
CTEST_ARGS=()
for arg in "$@"; do
  case "${arg}" in
    --sanitize) SANITIZE=1 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) CTEST_ARGS+=("${arg}") ;;
  esac
done

# Builds quietly into $1 with the remaining cmake arguments; shows the log if it fails.
build() {
  local dir="$1"
  shift
  local log
  log="$(mktemp -t airbag-build.XXXXXX)"
  if ! { cmake -S "${ROOT}" -B "${dir}" "$@" && cmake --build "${dir}" -j "${JOBS}"; } \
      >"${log}" 2>&1; then
    tail -n 200 "${log}" >&2
    rm -f "${log}"
    echo "test.sh: build of ${dir} failed" >&2
    return 1
  fi
  rm -f "${log}"
}

# Per-section timing, so that a CI log shows where the time goes: each section prints when it
# starts and, when it ends, its wall seconds and the CPU seconds (user + sys) of everything it ran.
# CPU seconds are what contention distorts least; on two idle cores a build's wall is about half
# of them. The table is printed again before the summaries.
TIMES_FILE="$(mktemp -t airbag-times.XXXXXX)"
trap 'rm -f "${TIMES_FILE}"' EXIT
TIMINGS=()
# Sets CHILDREN_CPU to the user + sys seconds, in hundredths, of every finished child of this
# shell (`times` must run in this shell, not in a command substitution).
children_cpu() {
  times >"${TIMES_FILE}"
  CHILDREN_CPU="$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, "m"); sub("s", "", t[2]);
                 c += t[1] * 60 + t[2] } printf "%d\n", c * 100 + 0.5 }' "${TIMES_FILE}")"
}
SECTION_NAME=""
section_start() {
  SECTION_NAME="$1"
  SECTION_WALL=${SECONDS}
  children_cpu
  SECTION_CPU=${CHILDREN_CPU}
  echo "test.sh: $(date -u +%H:%M:%S) ${SECTION_NAME}: started"
}
section_end() {
  local cpu line
  children_cpu
  cpu=$((CHILDREN_CPU - SECTION_CPU))
  line="$(printf '%-28s %5d s wall %6d.%02d s cpu' "${SECTION_NAME}" $((SECONDS - SECTION_WALL)) \
    $((cpu / 100)) $((cpu % 100)))"
  TIMINGS+=("${line}")
  echo "test.sh: $(date -u +%H:%M:%S) ${line}"
}

# Runs ctest in $1 (more ctest arguments may follow), keeping its summary line in SUMMARY[$1];
# returns ctest's status.
declare -A SUMMARY
run_ctest() {
  local dir="$1"
  shift
  local out status=0
  out="$(mktemp -t airbag-ctest.XXXXXX)"
  (cd "${dir}" && ctest --output-on-failure --no-tests=error -j "${TEST_JOBS}" "$@" \
      "${CTEST_ARGS[@]}") 2>&1 | tee "${out}" || status=$?
  SUMMARY["${dir}"]="$(grep -E '^[0-9]+% tests passed' "${out}" | tail -n 1 || true)"
  [[ -n ${SUMMARY["${dir}"]} ]] || SUMMARY["${dir}"]="no test summary (ctest exit ${status})"
  rm -f "${out}"
  return "${status}"
}

section_start "setup (and build of build/)"
"${ROOT}/scripts/setup.sh"
section_end

failed=0
section_start "build of build/"
build "${ROOT}/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo || failed=1
section_end
if [[ ${failed} -eq 0 ]]; then
  section_start "tests in build/"
  run_ctest "${ROOT}/build" || failed=1
  section_end
else
  SUMMARY["${ROOT}/build"]="build failed"
fi

if [[ ${SANITIZE} -eq 1 ]]; then
  asan_dir="${ROOT}/build-asan"
  section_start "build of build-asan/"
  asan_built=0
  # A build-asan/ configured with GCC before is started afresh (CMake cannot switch compilers).
  if [[ -f "${asan_dir}/CMakeCache.txt" ]] &&
     ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++' "${asan_dir}/CMakeCache.txt"; then
    rm -rf "${asan_dir}"
  fi
  # Clang, like the fuzz and TSan builds: it compiles the sanitized code in about half the CPU
  # time GCC takes, and the plain build stays GCC's, so both compilers see every change.
  build "${asan_dir}" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAIRBAG_SANITIZE=ON -DAIRBAG_BUILD_BENCH=OFF && asan_built=1
  section_end
  if [[ ${asan_built} -eq 1 ]]; then
    section_start "tests in build-asan/"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      run_ctest "${asan_dir}" || failed=1
    section_end
  else
    SUMMARY["${asan_dir}"]="build failed"
    failed=1
  fi
fi

if [[ ${SANITIZE} -eq 1 ]]; then
  # Fuzzing: a short run of each target from its committed corpus; a finding fails the run.
  section_start "fuzz build and runs"
  fuzz_out="$(mktemp -t airbag-fuzz.XXXXXX)"
  AIRBAG_JOBS="${JOBS}" "${ROOT}/tests/fuzz/run.sh" "${AIRBAG_FUZZ_SECONDS:-60}" 2>&1 \
    | tee "${fuzz_out}" || failed=1
  FUZZ_SUMMARY="$(grep -E '^fuzz: .*fuzz targets passed' "${fuzz_out}" | tail -n 1 || true)"
  [[ -n ${FUZZ_SUMMARY} ]] || FUZZ_SUMMARY="fuzz: no summary (see above)"
  # A failed target's verdict (what failed, the input as base64) is repeated at the end, where a
  # log cut to its tail still shows it.
  FUZZ_FAILURES="$(awk '/^fuzz: .*: FAILED/ { p = 1; print; next } /^  / { if (p) print; next }
                        { p = 0 }' "${fuzz_out}")"
  rm -f "${fuzz_out}"
  section_end

  # ThreadSanitizer, clang-built: the unit, integration, chaos and soak tests, with the airbag
  # and demo-model-server binaries they run built with TSan too (the corpus replays are single
  # threaded, the deploy tests run no C++). A race report ends the process that found it: a test
  # binary's fails its test; a child's fails the test that started it (the harness looks for it
  # in the child's stderr).
  tsan_dir="${ROOT}/build-tsan"
  section_start "build of build-tsan/"
  tsan_built=0
  build "${tsan_dir}" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAIRBAG_TSAN=ON -DAIRBAG_BUILD_BENCH=OFF && tsan_built=1
  section_end
  if [[ ${tsan_built} -eq 1 ]]; then
    section_start "tests in build-tsan/"
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" run_ctest "${tsan_dir}" \
      -L '^(unit|integration|chaos|soak)$' || failed=1
    section_end
  else
    SUMMARY["${tsan_dir}"]="build failed"
    failed=1
  fi
fi

echo
echo "time per section:"
printf '  %s\n' "${TIMINGS[@]}"
if [[ ${SANITIZE} -eq 1 ]]; then
  [[ -n ${FUZZ_FAILURES:-} ]] && echo "${FUZZ_FAILURES}"
  echo "${FUZZ_SUMMARY}"
  echo "summary of build-tsan/ (unit, integration, chaos and soak tests):"
  echo "${SUMMARY["${ROOT}/build-tsan"]}"
fi
echo "summary of build/:"
echo "${SUMMARY["${ROOT}/build"]}"
if [[ ${SANITIZE} -eq 1 ]]; then
  echo "summary of build-asan/:"
  echo "${SUMMARY["${ROOT}/build-asan"]}"
fi
exit "${failed}"
