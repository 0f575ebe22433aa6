#!/usr/bin/env bash
# A short fuzz run of the engine (fuzz/harness.rs through cargo-fuzz):
# 30 seconds from the committed corpus, new inputs kept in a temporary
# directory (the committed corpus does not change). Exits non-zero when the
# fuzzer finds a crash; the input is then in fuzz/artifacts/engine/.
#   ROLLCALL_FUZZ_SECONDS=N   run N seconds instead of 30.
# Needs the nightly toolchain (`cargo +nightly`); installs cargo-fuzz when
# it is missing. The first run builds the target (minutes); later ones
# take about the fuzzing time.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet || cargo install cargo-fuzz --quiet
fi

seconds=${ROLLCALL_FUZZ_SECONDS:-30}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cd fuzz
# libFuzzer adds new inputs to the first directory only; it reads both.
cargo +nightly fuzz run engine "$scratch" corpus/engine -- \
  -max_total_time="$seconds" -timeout=10 -print_final_stats=1
