#!/usr/bin/env bash
# Builds the npm package's wasm: release (opt-level z, real LTO: the wasm
# crate is cdylib-only), wasm-bindgen --target web, then wasm-opt -Oz from
# the binaryen npm package. Skips the work when pkg/ is newer than sources.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

out=pkg/rollcall_wasm_bg.wasm
if [ -f "$out" ] && [ -z "$(find src wasm/src Cargo.toml Cargo.lock wasm/Cargo.toml -newer "$out" -print -quit)" ]; then
  echo "build: pkg/ is up to date" >&2
  node scripts/package.mjs
  exit 0
fi

echo "build: cargo build --release (wasm32)" >&2
cargo build -p rollcall-wasm --release --target wasm32-unknown-unknown >&2
rm -rf pkg.tmp && mkdir -p pkg.tmp
wasm-bindgen --target web --out-dir pkg.tmp --out-name rollcall_wasm \
  target/wasm32-unknown-unknown/release/rollcall_wasm.wasm >&2
echo "build: wasm-opt -Oz" >&2
node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
  pkg.tmp/rollcall_wasm_bg.wasm -o pkg.tmp/rollcall_wasm_bg.opt.wasm >&2
mv pkg.tmp/rollcall_wasm_bg.opt.wasm pkg.tmp/rollcall_wasm_bg.wasm
rm -rf pkg && mv pkg.tmp pkg
raw=$(stat -c %s "$out"); gz=$(gzip -9 -c "$out" | wc -c)
echo "build: $out is $raw bytes raw, $gz bytes gzipped" >&2

# Packaging: the inline-wasm module and the CommonJS copy (dist/). Cheap,
# so it runs every time (js/ changes more often than the wasm).
node scripts/package.mjs
