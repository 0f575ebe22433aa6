#!/usr/bin/env bash
# A short fuzz run of the engine (fuzz/harness.rs through cargo-fuzz):
# 30 seconds from the committed corpus, then 15 seconds of the cluster
# target (fuzz/cluster_harness.rs, two engines in cluster mode and a model
# store), new inputs kept in temporary directories (the committed corpora
# do not change). Exits non-zero when the fuzzer finds a crash; the input
# is then in fuzz/artifacts/engine/ or fuzz/artifacts/cluster/.
#   ROLLCALL_FUZZ_SECONDS=N           run the engine target N seconds instead of 30.
#   ROLLCALL_FUZZ_CLUSTER_SECONDS=N   run the cluster target N seconds instead of 15.
# Needs the nightly toolchain (`cargo +nightly`); installs cargo-fuzz when
# it is missing. The first run builds the targets (minutes; the cluster
# target adds seconds once the engine's is built); later ones take about
# the fuzzing time.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet || cargo install cargo-fuzz --quiet
fi

seconds=${ROLLCALL_FUZZ_SECONDS:-30}
cluster_seconds=${ROLLCALL_FUZZ_CLUSTER_SECONDS:-15}
scratch=$(mktemp -d)
cluster_scratch=$(mktemp -d)
trap 'rm -rf "$scratch" "$cluster_scratch"' EXIT

cd fuzz
# libFuzzer adds new inputs to the first directory only; it reads both.
cargo +nightly fuzz run engine "$scratch" corpus/engine -- \
  -max_total_time="$seconds" -timeout=10 -print_final_stats=1
cargo +nightly fuzz run cluster "$cluster_scratch" corpus/cluster -- \
  -max_total_time="$cluster_seconds" -timeout=10 -print_final_stats=1
