#!/usr/bin/env bash
# setup-and-run.sh — first command of the README: install packages, build, start `kubec server` in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh build
exec ./build/kubec server "$@"
