#!/usr/bin/env bash
# Runs every test. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets 2>&1
cargo test --doc 2>&1
