#!/usr/bin/env bash
# Runs every fuzz target for a while: `fuzz/run.sh` (10 s each, what CI
# runs) or `fuzz/run.sh 600` for a person's long run. New inputs that add
# coverage land in fuzz/corpus/<target>/ (commit the small ones); a crash
# input libFuzzer saves under fuzz/artifacts/ goes into the corpus with its
# fix, so `cargo test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
# Nightly and sanitizer builds apart from the workspace's stable ones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "skipped: no nightly toolchain (rustup toolchain install nightly); the corpus still replays in cargo test"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo +nightly fuzz list); do
  echo "==> $target (${seconds}s)"
  if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target failed: the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units' "$log" || true
done
