#!/usr/bin/env bash
# Builds the dashboard page into dist/ (or ONESTOP_DASHBOARD_OUT) from the
# locked npm packages: code generated from proto/, type-checked, bundled.
# Installs Node and npm from the distribution when they are missing (as
# root on Debian), so a fresh machine needs nothing by hand.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing Node.js and npm" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "npm is needed to build the dashboard page" >&2
    exit 1
  fi
fi

# Reinstall only when the lock file changed since the last install.
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "node_modules/.onestop-lock"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.onestop-lock
fi
npm run --silent build
