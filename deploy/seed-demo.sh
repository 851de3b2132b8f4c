#!/usr/bin/env bash
# Loads the demo data into a running suite; every step is idempotent, so it
# is safe to run again:
#   - the agency and program directory, into referral's database;
#   - demo export advisors, through mentoring's API;
#   - demo overseas buyers, registered and verified by their trade offices
#     through buyers' API.
# Needs REFERRAL_DATABASE_URL, ONESTOP_MENTORING_URL, ONESTOP_BUYERS_URL and
# the issuer key (ONESTOP_ISSUER_KEY; ONESTOP_DEV_MODE=true on a development
# machine), plus ONESTOP_TLS_CA (and a client certificate) when the URLs are
# https://. Binaries come from ONESTOP_BIN_DIR (default /usr/local/bin, where
# the image has them).
set -euo pipefail

bin=${ONESTOP_BIN_DIR:-/usr/local/bin}
export RUST_LOG=${RUST_LOG:-warn}

DATABASE_URL="${REFERRAL_DATABASE_URL:?set REFERRAL_DATABASE_URL}" "$bin/onestop-referral" seed-directory
"$bin/onestop-mentoring" seed-advisors --mentoring-url "${ONESTOP_MENTORING_URL:?set ONESTOP_MENTORING_URL}"
"$bin/onestop-buyers" seed-buyers --buyers-url "${ONESTOP_BUYERS_URL:?set ONESTOP_BUYERS_URL}"
