#!/usr/bin/env bash
# The suite without Docker: creates the five databases on a local Postgres,
# builds the five binaries and the dashboard page, starts them, seeds the
# demo data and prints where everything listens, with the dashboard's URL.
# Ctrl-C stops them all; so does any one of them dying (its log's last lines
# are printed).
#
#   deploy/run-local.sh            # run until Ctrl-C
#   deploy/run-local.sh --check    # start, seed, probe, then stop (CI)
#
# Postgres: PGHOST/PGPORT/PGUSER (default 127.0.0.1:5432, postgres, trust or
# PGPASSWORD). When nothing listens there and PostgreSQL is installed
# (initdb, pg_ctl), a private cluster is started on that port with its data
# under ${XDG_DATA_HOME:-~/.local/share}/onestop/postgres (ONESTOP_PGDATA
# moves it), kept between runs and stopped when the suite stops.
#
# Ports: ONESTOP_BASE_PORT (default 50051; intake, mentoring, buyers,
# referral and insights take it and the next four), ONESTOP_HTTP_PORT for the
# dashboard (default 8080, or the base port plus 5 when the base moved). A
# port already taken is refused before anything starts.
#
# Logs: one folder per run under $CARGO_TARGET_DIR/run-local (ONESTOP_RUN_LOGS
# moves it), `latest` links to the newest. Binaries: built with cargo (its own
# progress shown), or taken as they are from ONESTOP_BIN_DIR. The page needs
# Node (npm) once to build; without it, or with ONESTOP_NO_PAGE=1, the suite
# runs and the page is skipped.
#
# Keys: development mode (ONESTOP_DEV_MODE=true), the fixed development key
# set every checkout shares, so tokens minted here work at once. Every
# process warns about it; never run a shared deployment this way.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
case "$mode" in
  run | --check) ;;
  *) echo "usage: deploy/run-local.sh [--check]" >&2; exit 2 ;;
esac
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
base=${ONESTOP_BASE_PORT:-50051}
prefix=${ONESTOP_DB_PREFIX:-onestop}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

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

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Something else answering on one of the ports would pass the health probes
# below in place of the service that failed to bind it, so a taken port
# stops the run before anything starts.
for s in "${services[@]}" dashboard; do
  p=${port[$s]:-$http_port}
  if listening 127.0.0.1 "$p"; then
    echo "error: port $p ($s) is already in use (another suite, or another program);" \
      "move the suite with ONESTOP_BASE_PORT / ONESTOP_HTTP_PORT" >&2
    exit 1
  fi
done

# Everything started from here is stopped on the way out, whatever the exit.
names=()
pids=()
private_pgdata=
stop() {
  local status=$?
  # Ctrl-C reaches the services too; only an unexpected end is reported.
  if [ "$status" != 130 ] && [ "$status" != 143 ]; then report_dead || true; fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$private_pgdata" ]; then
    pg_ctl stop -s -m fast -D "$private_pgdata" >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Names every started service that is no longer running, with the end of
# its log; false when none died.
report_dead() {
  local i died=1
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      local status=0
      wait "${pids[$i]}" 2>/dev/null || status=$?
      echo "error: ${names[$i]} exited (status $status); the last lines of $logs/${names[$i]}.log:" >&2
      tail -n 20 "$logs/${names[$i]}.log" | sed 's/^/    /' >&2
      died=0
    fi
  done
  return "$died"
}

# Stops the run as soon as any started service has died.
watch_children() {
  if report_dead; then
    echo "error: stopping the others" >&2
    pids_alive_only
    exit 1
  fi
}

# Keeps only the live children in the lists, so stop() reports no one twice.
pids_alive_only() {
  local i kept_names=() kept_pids=()
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      kept_names+=("${names[$i]}")
      kept_pids+=("${pids[$i]}")
    fi
  done
  names=("${kept_names[@]}")
  pids=("${kept_pids[@]}")
}

# The tools of the newest PostgreSQL installed, when they are not on PATH.
pg_tools() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && export PATH="$dir:$PATH"
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

# No server on PGHOST:PGPORT: start one of this user's own there, as the
# tests do, so the one command runs on a machine with PostgreSQL installed
# but not running.
start_private_cluster() {
  case "$PGHOST" in
    127.0.0.1 | localhost) ;;
    *)
      echo "error: no Postgres answers on $PGHOST:$PGPORT; start it or set PGHOST/PGPORT" >&2
      exit 1
      ;;
  esac
  if ! pg_tools; then
    echo "error: no Postgres answers on $PGHOST:$PGPORT and PostgreSQL is not installed" \
      "(no initdb/pg_ctl); install it or point PGHOST/PGPORT at a server" >&2
    exit 1
  fi
  if [ "$(id -u)" = 0 ]; then
    echo "error: no Postgres answers on $PGHOST:$PGPORT, and initdb refuses to run as root;" \
      "start the system's cluster (e.g. pg_ctlcluster <version> main start) or run as a regular user" >&2
    exit 1
  fi
  local data=${ONESTOP_PGDATA:-${XDG_DATA_HOME:-$HOME/.local/share}/onestop/postgres}
  mkdir -p "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    echo "==> no Postgres on $PGHOST:$PGPORT: creating a private cluster in $data"
    initdb -U "$PGUSER" --auth=trust -D "$data" >"$data.initdb.log" 2>&1 || {
      echo "error: initdb failed; see $data.initdb.log" >&2
      exit 1
    }
  fi
  echo "==> starting the private cluster in $data on $PGHOST:$PGPORT (stopped with the suite)"
  if ! pg_ctl start -s -w -D "$data" -l "$data.log" \
    -o "-p $PGPORT -k $data -c listen_addresses=127.0.0.1"; then
    echo "error: the private cluster did not start; see $data.log" >&2
    exit 1
  fi
  private_pgdata=$data
}

if ! listening "$PGHOST" "$PGPORT"; then
  start_private_cluster
fi
echo "==> databases on $PGHOST:$PGPORT"
if ! psql -d postgres -tAc 'SELECT 1' >/dev/null; then
  echo "error: Postgres on $PGHOST:$PGPORT refused $PGUSER (above); set PGUSER/PGPASSWORD" >&2
  exit 1
fi
for s in "${services[@]}"; do
  if ! psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '${prefix}_$s'" | grep -q 1; then
    psql -d postgres -qc "CREATE DATABASE ${prefix}_$s"
    echo "    created ${prefix}_$s"
  fi
done

if [ -n "${ONESTOP_BIN_DIR:-}" ]; then
  bin=$ONESTOP_BIN_DIR
  echo "==> binaries from $bin (not built)"
else
  echo "==> building (cargo's progress below; the first build takes a while)"
  cargo build --bins -p onestop-intake -p onestop-mentoring -p onestop-buyers -p onestop-referral \
    -p onestop-insights
  bin="$CARGO_TARGET_DIR/debug"
fi
if [ -n "${ONESTOP_NO_PAGE:-}" ]; then
  echo "    the dashboard page is not built (ONESTOP_NO_PAGE; gRPC-Web still served)"
elif [ ! -f "$dashboard/index.html" ] || [ -n "${ONESTOP_REBUILD_PAGE:-}" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "==> building the dashboard page"
    services/insights/web/build-page.sh >/dev/null
  else
    echo "    npm not found: the dashboard page is not built (gRPC-Web still served)"
  fi
fi

# Each run's logs in a folder of their own; `latest` names the newest.
logs_root=${ONESTOP_RUN_LOGS:-$CARGO_TARGET_DIR/run-local}
run_id=$(date -u +%Y%m%dT%H%M%SZ)-$$
logs="$logs_root/$run_id"
mkdir -p "$logs"
ln -sfn "$run_id" "$logs_root/latest"

export ONESTOP_DEV_MODE=true
export ONESTOP_MENTORING_URL="http://127.0.0.1:${port[mentoring]}"
export ONESTOP_BUYERS_URL="http://127.0.0.1:${port[buyers]}"
export ONESTOP_REFERRAL_URL="http://127.0.0.1:${port[referral]}"
export ONESTOP_INTAKE_URL="http://127.0.0.1:${port[intake]}"

echo "==> starting (logs in $logs, also $logs_root/latest)"
export ONESTOP_HTTP_LISTEN="127.0.0.1:$http_port" ONESTOP_DASHBOARD_DIR="$PWD/$dashboard"
for s in mentoring buyers referral intake insights; do
  DATABASE_URL=$(db_url "$s") ONESTOP_LISTEN="127.0.0.1:${port[$s]}" \
    "$bin/onestop-$s" >"$logs/$s.log" 2>&1 &
  names+=("$s")
  pids+=($!)
done

for s in "${services[@]}"; do
  for attempt in $(seq 1 120); do
    watch_children
    if ONESTOP_LISTEN="127.0.0.1:${port[$s]}" "$bin/onestop-$s" probe >/dev/null 2>&1; then
      break
    fi
    if [ "$attempt" = 120 ]; then
      echo "error: $s did not become healthy within a minute; see $logs/$s.log" >&2
      exit 1
    fi
    sleep 0.5
  done
done

echo "==> seeding demo data"
ONESTOP_BIN_DIR="$bin" REFERRAL_DATABASE_URL=$(db_url referral) \
  MENTORING_DATABASE_URL=$(db_url mentoring) BUYERS_DATABASE_URL=$(db_url buyers) \
  deploy/seed-demo.sh
watch_children

echo
for s in "${services[@]}"; do
  printf '  %-10s grpc://127.0.0.1:%s   (%s)\n' "$s" "${port[$s]}" "$(db_url "$s")"
done
echo
echo "  admin token:  ONESTOP_DEV_MODE=true $bin/onestop-intake issue-token --role admin"
echo "  watch feeds:  ONESTOP_DEV_MODE=true ONESTOP_INTAKE_URL=$ONESTOP_INTAKE_URL" \
  "ONESTOP_MENTORING_URL=$ONESTOP_MENTORING_URL ONESTOP_BUYERS_URL=$ONESTOP_BUYERS_URL" \
  "ONESTOP_REFERRAL_URL=$ONESTOP_REFERRAL_URL $bin/onestop-intake watch-feeds"
page_token=$("$bin/onestop-insights" issue-token --role dashboard --subject local-dashboard --ttl 12h 2>/dev/null)
echo "  dashboard:    http://127.0.0.1:$http_port/#token=$page_token"

if [ "$mode" = "--check" ]; then
  status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/" || true)
  if [ -f "$dashboard/index.html" ] && [ -z "${ONESTOP_NO_PAGE:-}" ] && [ "$status" != 200 ]; then
    echo "error: the dashboard page did not answer (HTTP $status); see $logs/insights.log" >&2
    exit 1
  fi
  # The probes passed, but only this run's own processes count: each must
  # still run and its own log (this run's folder) must say it listens on
  # its port, else something else answered in its place.
  watch_children
  for s in "${services[@]}"; do
    if ! grep -q "listening.*addr=127.0.0.1:${port[$s]}" "$logs/$s.log"; then
      echo "error: $s never said it listens on 127.0.0.1:${port[$s]}; see $logs/$s.log" >&2
      exit 1
    fi
    if ! ONESTOP_LISTEN="127.0.0.1:${port[$s]}" "$bin/onestop-$s" probe >/dev/null 2>&1; then
      echo "error: $s stopped serving; see $logs/$s.log" >&2
      exit 1
    fi
  done
  watch_children
  echo "==> check passed; stopping"
  exit 0
fi
echo "Ctrl-C stops the suite."
while true; do
  watch_children
  sleep 1
done
