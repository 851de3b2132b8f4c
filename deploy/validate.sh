#!/usr/bin/env bash
# Offline checks of the deployment files: the compose file resolves with
# .env, and the Kubernetes base renders and validates against the API
# schemas. Installs what it needs (Debian's docker-compose, kubernetes-validate
# from PyPI into a cached virtualenv) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${ONESTOP_TOOLS_DIR:-$HOME/.cache/onestop-tools}"

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose "$@"
  elif command -v docker-compose >/dev/null 2>&1; then
    docker-compose "$@"
  elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    docker-compose "$@"
  else
    echo "no docker compose available to validate docker-compose.yml" >&2
    return 1
  fi
}

# The image's dependency layer needs every workspace member's manifest, and
# the image ships every service binary.
echo "Dockerfile: every workspace member copied, every service built"
for member in $(sed -n '/^members = \[/,/^\]/s/^ *"\(.*\)",\{0,1\}$/\1/p' Cargo.toml); do
  grep -q "^COPY $member/Cargo.toml $member/\$" deploy/Dockerfile \
    || { echo "deploy/Dockerfile lacks: COPY $member/Cargo.toml $member/" >&2; exit 1; }
  case "$member" in
    services/*)
      grep -q "^ARG SERVICES=.*\b${member#services/}\b" deploy/Dockerfile \
        || { echo "deploy/Dockerfile SERVICES lacks ${member#services/}" >&2; exit 1; } ;;
  esac
done

echo "compose: docker-compose.yml with .env, alone and with deploy/compose.tls.yml"
compose -f docker-compose.yml config -q
compose -f docker-compose.yml -f deploy/compose.tls.yml config -q

if [ ! -x "$tools/bin/kubernetes-validate" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate
fi

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
if command -v kubectl >/dev/null 2>&1; then
  echo "k8s: kubectl kustomize deploy/k8s/base and deploy/k8s/overlays/tls"
  kubectl kustomize deploy/k8s/base >"$rendered"
  echo "---" >>"$rendered"
  kubectl kustomize deploy/k8s/overlays/tls >>"$rendered"
else
  # Without kustomize, validate the resources the base lists, unpatched.
  echo "k8s: kubectl not found; validating the base's resources one by one"
  for file in $(sed -n '/^resources:/,/^[a-z]/s/^  - //p' deploy/k8s/base/kustomization.yaml); do
    cat "deploy/k8s/base/$file"
    echo "---"
  done >"$rendered"
fi
"$tools/bin/kubernetes-validate" --strict --quiet "$rendered"
echo "deployment files valid"
