#!/usr/bin/env bash
# setup-and-run.sh — first command of the README: install packages, build, start `kubec server` in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh build
# three simulated nodes until the real runtime (runc) lands, so that a Deployment ends with Pods Running
exec ./build/kubec server --sim-nodes 3 "$@"
