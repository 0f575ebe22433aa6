#!/usr/bin/env bash
# The main job: builds what is missing and runs the demo server on localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROLLCALL_SKIP_BROWSER=1
bash scripts/build.sh
exec node demo/server.js
