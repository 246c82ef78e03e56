#!/usr/bin/env bash
# test.sh — the whole test suite: installs what is missing, builds a normal and an ASan+UBSan build,
# and runs every unit and end-to-end test in both. This is the README's second command and .ci/run's.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
./scripts/deps.sh
./scripts/build.sh build
./scripts/build.sh build-asan -DKUBEC_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
echo "=== tests (release build) ==="
ctest --test-dir build --output-on-failure -j2 || status=1
echo "=== tests (AddressSanitizer + UndefinedBehaviorSanitizer build) ==="
ctest --test-dir build-asan --output-on-failure -j2 || status=1
echo "test.sh: finished in $(( $(date +%s) - start ))s, status $status"
exit $status
