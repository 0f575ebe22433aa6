#!/usr/bin/env bash
# Runs every test: the core natively (with the fuzz corpus replayed), the
# core on wasm32 in Node and in headless Chromium, the npm package with
# node --test (Engine, a real ws server with real clients, the client SDK,
# the demo in Chromium, workerd and Durable Objects through Miniflare), and
# a short fuzz run. Installs what is missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
logs=$(mktemp -d)

section() { printf '\n== %s\n' "$*"; }

# Sums "test result: ok. N passed" lines; fails when a run executed nothing.
passed_in() {
  local n
  n=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$1" | awk '{ s += $4 } END { print s + 0 }')
  if [ "$n" -eq 0 ]; then
    echo "error: $2 executed no test" >&2
    exit 1
  fi
  echo "$n"
}

section "core: cargo test (native)"
cargo test 2>&1 | tee "$logs/native.log"
native=$(passed_in "$logs/native.log" "the native run")
# The criterion benches are not run here, but they must keep compiling.
cargo check --benches --quiet

section "core: cargo test on wasm32 in Node"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
cargo test --target wasm32-unknown-unknown --tests 2>&1 | tee "$logs/wasm-node.log"
wasm_node=$(passed_in "$logs/wasm-node.log" "the wasm run in Node")

section "core: cargo test on wasm32 in headless Chromium"
WASM_BINDGEN_USE_BROWSER=1 cargo test --target wasm32-unknown-unknown --tests 2>&1 | tee "$logs/wasm-browser.log"
wasm_browser=$(passed_in "$logs/wasm-browser.log" "the wasm run in Chromium")
if [ "$wasm_browser" -ne "$wasm_node" ]; then
  echo "error: Chromium ran $wasm_browser wasm tests, Node ran $wasm_node" >&2
  exit 1
fi

section "package: build"
bash scripts/build.sh

section "package: node --test"
node --test --test-timeout=60000 tests/js/ 2>&1 | tee "$logs/node.log"
js=$(awk '/^# pass/ { print $3 }' "$logs/node.log")

section "fuzz: a short cargo-fuzz run from the corpus"
# The corpus itself is replayed by cargo test above (tests/fuzz_corpus.rs).
# A machine that cannot build the target (no nightly, no cargo-fuzz) skips
# it with a message; a crash in the run fails the tests.
fuzz_ready() {
  cargo +nightly --version >/dev/null 2>&1 || { echo "skipped: no nightly toolchain (cargo +nightly)"; return 1; }
  cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet 2>/dev/null ||
    cargo install cargo-fuzz --quiet || { echo "skipped: cargo-fuzz did not install"; return 1; }
  (cd fuzz && cargo +nightly fuzz build engine && cargo +nightly fuzz build cluster) >"$logs/fuzz-build.log" 2>&1 ||
    { tail -n 20 "$logs/fuzz-build.log"; echo "skipped: the fuzz targets did not build here"; return 1; }
}
if fuzz_ready; then
  ROLLCALL_FUZZ_SECONDS=${ROLLCALL_FUZZ_SECONDS:-20} bash scripts/fuzz-smoke.sh 2>&1 | tail -n 30
fi

section "summary"
echo "core native: $native, core wasm32 Node: $wasm_node, core wasm32 Chromium: $wasm_browser, package: $js"
echo "$((native + wasm_node + wasm_browser + js)) passed, 0 failed"
