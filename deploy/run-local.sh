#!/usr/bin/env bash
# The suite without Docker: creates the five databases on a local Postgres,
# builds the five binaries and the dashboard page, starts them, seeds the
# demo data and prints where everything listens, with the dashboard's URL.
# Ctrl-C stops them all.
#
#   deploy/run-local.sh            # run until Ctrl-C
#   deploy/run-local.sh --check    # start, seed, probe, then stop (CI)
#
# Postgres: PGHOST/PGPORT/PGUSER (default 127.0.0.1:5432, postgres, trust or
# PGPASSWORD). Ports: ONESTOP_BASE_PORT (default 50051; intake, mentoring,
# buyers, referral and insights take it and the next four), ONESTOP_HTTP_PORT
# for the dashboard (default 8080, or the base port plus 5 when the base
# moved). The page needs Node (npm) once to build; without it the suite runs
# and the page is skipped.
#
# Keys: development mode (ONESTOP_DEV_MODE=true), the fixed development key
# set every checkout shares, so tokens minted here work at once. Every
# process warns about it; never run a shared deployment this way.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
base=${ONESTOP_BASE_PORT:-50051}
prefix=${ONESTOP_DB_PREFIX:-onestop}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
logs="$CARGO_TARGET_DIR/run-local"
mkdir -p "$logs"

services=(intake mentoring buyers referral insights)
declare -A port
for i in "${!services[@]}"; do port[${services[$i]}]=$((base + i)); done
if [ "$base" = 50051 ]; then
  http_port=${ONESTOP_HTTP_PORT:-8080}
else
  http_port=${ONESTOP_HTTP_PORT:-$((base + 5))}
fi
dashboard=services/insights/web/dist

db_url() {
  local auth="$PGUSER"
  [ -n "${PGPASSWORD:-}" ] && auth="$PGUSER:$PGPASSWORD"
  echo "postgres://$auth@$PGHOST:$PGPORT/${prefix}_$1"
}

# Something else answering on one of the ports would pass the health probes
# below in place of the service that failed to bind it.
for p in "${port[@]}" "$http_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p is already in use; move the suite with ONESTOP_BASE_PORT / ONESTOP_HTTP_PORT" >&2
    exit 1
  fi
done

echo "==> databases on $PGHOST:$PGPORT"
for s in "${services[@]}"; do
  if ! psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '${prefix}_$s'" | grep -q 1; then
    psql -d postgres -qc "CREATE DATABASE ${prefix}_$s"
    echo "    created ${prefix}_$s"
  fi
done

echo "==> building"
cargo build --quiet --bins -p onestop-intake -p onestop-mentoring -p onestop-buyers -p onestop-referral \
  -p onestop-insights
bin="$CARGO_TARGET_DIR/debug"
if [ ! -f "$dashboard/index.html" ] || [ -n "${ONESTOP_REBUILD_PAGE:-}" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "==> building the dashboard page"
    services/insights/web/build-page.sh >/dev/null
  else
    echo "    npm not found: the dashboard page is not built (gRPC-Web still served)"
  fi
fi

pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT

export ONESTOP_DEV_MODE=true
export ONESTOP_MENTORING_URL="http://127.0.0.1:${port[mentoring]}"
export ONESTOP_BUYERS_URL="http://127.0.0.1:${port[buyers]}"
export ONESTOP_REFERRAL_URL="http://127.0.0.1:${port[referral]}"
export ONESTOP_INTAKE_URL="http://127.0.0.1:${port[intake]}"

echo "==> starting (logs in $logs)"
export ONESTOP_HTTP_LISTEN="127.0.0.1:$http_port" ONESTOP_DASHBOARD_DIR="$PWD/$dashboard"
for s in mentoring buyers referral intake insights; do
  DATABASE_URL=$(db_url "$s") ONESTOP_LISTEN="127.0.0.1:${port[$s]}" \
    "$bin/onestop-$s" >"$logs/$s.log" 2>&1 &
  pids+=($!)
done

for s in "${services[@]}"; do
  for attempt in $(seq 1 60); do
    if ONESTOP_LISTEN="127.0.0.1:${port[$s]}" "$bin/onestop-$s" probe >/dev/null 2>&1; then
      break
    fi
    if [ "$attempt" = 60 ]; then
      echo "$s did not become healthy; see $logs/$s.log" >&2
      exit 1
    fi
    sleep 0.5
  done
done

echo "==> seeding demo data"
ONESTOP_BIN_DIR="$bin" REFERRAL_DATABASE_URL=$(db_url referral) \
  MENTORING_DATABASE_URL=$(db_url mentoring) BUYERS_DATABASE_URL=$(db_url buyers) \
  deploy/seed-demo.sh

echo
for s in "${services[@]}"; do
  printf '  %-10s grpc://127.0.0.1:%s   (%s)\n' "$s" "${port[$s]}" "$(db_url "$s")"
done
echo
echo "  admin token:  ONESTOP_DEV_MODE=true $bin/onestop-intake issue-token --role admin"
echo "  watch feeds:  ONESTOP_DEV_MODE=true $bin/onestop-intake watch-feeds"
page_token=$("$bin/onestop-insights" issue-token --role dashboard --subject local-dashboard --ttl 12h 2>/dev/null)
echo "  dashboard:    http://127.0.0.1:$http_port/#token=$page_token"
if [ "$mode" = "--check" ]; then
  status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/" || true)
  if [ -f "$dashboard/index.html" ] && [ "$status" != 200 ]; then
    echo "the dashboard page did not answer (HTTP $status); see $logs/insights.log" >&2
    exit 1
  fi
fi

if [ "$mode" = "--check" ]; then
  echo "==> check passed; stopping"
  exit 0
fi
echo "Ctrl-C stops the suite."
wait
