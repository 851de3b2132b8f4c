#!/usr/bin/env bash
# Offline checks of the deployment files: the Dockerfile copies every
# workspace member, the compose file resolves with .env, and the Kubernetes
# base renders and validates against the API schemas.
#
# It installs nothing and needs no network unless asked: a check whose tool
# is missing is skipped with what to install, and the summary says what was
# skipped. --install fetches what is missing (Debian's docker-compose when
# root, kubernetes-validate from PyPI into a cached virtualenv);
# ONESTOP_VALIDATE_REQUIRE_ALL=1 makes a skipped check fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."

install=false
case "${1:-}" in
  --install) install=true ;;
  "") ;;
  *) echo "usage: deploy/validate.sh [--install]" >&2; exit 2 ;;
esac

tools="${ONESTOP_TOOLS_DIR:-$HOME/.cache/onestop-tools}"
skipped=()

skip() {
  echo "  skipped: $1" >&2
  skipped+=("$1")
}

compose_command() {
  if docker compose version >/dev/null 2>&1; then
    echo "docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then
    echo "docker-compose"
  elif $install && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    echo "docker-compose"
  fi
}

kubernetes_validate() {
  if [ -x "$tools/bin/kubernetes-validate" ]; then
    echo "$tools/bin/kubernetes-validate"
  elif command -v kubernetes-validate >/dev/null 2>&1; then
    command -v kubernetes-validate
  elif $install && python3 -m venv "$tools" >/dev/null \
    && "$tools/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate; then
    echo "$tools/bin/kubernetes-validate"
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
compose=$(compose_command)
if [ -n "$compose" ]; then
  $compose -f docker-compose.yml config -q
  $compose -f docker-compose.yml -f deploy/compose.tls.yml config -q
else
  skip "compose files: no docker compose (install Docker's compose plugin or docker-compose, or run with --install as root)"
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
validator=$(kubernetes_validate)
if [ -n "$validator" ]; then
  "$validator" --strict --quiet "$rendered"
else
  skip "kubernetes schemas: no kubernetes-validate (pip install kubernetes-validate, or run with --install)"
fi

if [ ${#skipped[@]} -eq 0 ]; then
  echo "deployment files valid"
else
  echo "deployment files valid as far as checked; ${#skipped[@]} check(s) skipped:" >&2
  printf '  %s\n' "${skipped[@]}" >&2
  if [ "${ONESTOP_VALIDATE_REQUIRE_ALL:-0}" = 1 ]; then
    exit 1
  fi
fi
