#!/usr/bin/env bash
# The dashboard's browser test, from nothing to a screenshot, at a small,
# bounded scale (one company, one case, five buyers; about a minute once the
# binaries are built):
#   - installs Debian's Chromium and a Korean font when missing (as root;
#     CHROMIUM names another binary), and the locked npm packages;
#   - builds the page, then starts the suite with deploy/run-local.sh on six
#     free ports from ONESTOP_E2E_BASE_PORT (default 57051) and databases of
#     its own (onestop_e2e_*, dropped before and after);
#   - runs the Playwright test (e2e/dashboard.test.ts) against the real
#     binaries and saves the screenshot to ONESTOP_SCREENSHOT (default
#     $CARGO_TARGET_DIR/ci-artifacts/insights-dashboard.png).
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../../.. && pwd)

# Chromium, and a Korean font so the page renders its Korean text.
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
fc-list :lang=ko 2>/dev/null | grep -q . || missing+=(fonts-nanum)
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "needed: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

echo "==> dashboard page"
./build-page.sh

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
# Six ports from the base, all free (other suites may run on this machine).
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base=${ONESTOP_E2E_BASE_PORT:-57051}
for _ in $(seq 1 50); do
  busy=0
  for p in $(seq "$base" $((base + 5))); do in_use "$p" && busy=1; done
  [ "$busy" = 0 ] && break
  base=$((base + 10))
done
prefix=onestop_e2e
drop_databases() {
  for s in intake mentoring buyers referral insights; do
    psql -d postgres -qc "DROP DATABASE IF EXISTS ${prefix}_$s WITH (FORCE)" >/dev/null 2>&1 || true
  done
}
drop_databases

log=$(mktemp)
ONESTOP_BASE_PORT=$base ONESTOP_DB_PREFIX=$prefix ONESTOP_HTTP_PORT=$((base + 5)) \
  "$root/deploy/run-local.sh" >"$log" 2>&1 &
suite=$!
finish() {
  kill -TERM "$suite" 2>/dev/null || true
  wait "$suite" 2>/dev/null || true
  drop_databases
  rm -f "$log"
}
trap finish EXIT

echo "==> starting the suite (deploy/run-local.sh on $base-$((base + 5)))"
for _ in $(seq 1 1200); do
  grep -q '^Ctrl-C stops the suite' "$log" && break
  if ! kill -0 "$suite" 2>/dev/null; then
    cat "$log" >&2
    echo "the suite did not start" >&2
    exit 1
  fi
  sleep 0.5
done
grep -q '^Ctrl-C stops the suite' "$log" || { cat "$log" >&2; echo "the suite did not start in time" >&2; exit 1; }

export ONESTOP_PAGE_URL=$(sed -n 's/^  dashboard: *//p' "$log")
export ONESTOP_INTAKE_URL="http://127.0.0.1:$base"
export ONESTOP_BUYERS_URL="http://127.0.0.1:$((base + 2))"
export ONESTOP_BIN_DIR="$CARGO_TARGET_DIR/debug"
# The suite runs on the development keys (run-local.sh), so the test mints
# its tokens with them too.
export ONESTOP_DEV_MODE=true
export ONESTOP_SCREENSHOT=${ONESTOP_SCREENSHOT:-$CARGO_TARGET_DIR/ci-artifacts/insights-dashboard.png}

echo "==> browser test"
npm run --silent test:browser
