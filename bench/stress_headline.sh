#!/usr/bin/env bash
# bench/stress_headline.sh — the headline creation-chain run of issue 8: 1,000 Deployments x 10 replicas on
# 100 sim nodes (preset fast), measured by `kubec stress` against a fresh `kubec server` on loopback.
# A benchmark, not a test: it prints the figures and keeps the report; its exit code is kubec stress's.
#
# Steps: a fresh server (own data dir, free port, --sim-nodes N --sim-profile fast); the load average
# before; `kubec stress` with --report; the server's true peak RSS (VmHWM from /proc, beside the
# /metrics samples kubec stress takes); the load average after; SIGTERM to the server (by its pid).
#
# Settings (environment):
#   KUBEC_BIN           the kubec binary (default <repo>/build/kubec)
#   KUBEC_STRESS_CMD    replaces "$KUBEC_BIN stress" (space separated), e.g. a development driver
#   STRESS_DEPLOYMENTS  default 1000      STRESS_REPLICAS  default 10     STRESS_NODES default 100
#   STRESS_CONCURRENCY  default 32        STRESS_TIMEOUT   default 10m
#   STRESS_ARGS         extra flags for kubec stress (e.g. "--threshold Ready:p99=5s")
#   SERVER_ARGS         extra flags for kubec server
#   STRESS_OUT          report directory (default /tmp/kubec-stress-headline-<time>)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
KUBEC_BIN=${KUBEC_BIN:-$repo/build/kubec}
read -r -a STRESS <<<"${KUBEC_STRESS_CMD:-$KUBEC_BIN stress}"
DEPLOYMENTS=${STRESS_DEPLOYMENTS:-1000}
REPLICAS=${STRESS_REPLICAS:-10}
NODES=${STRESS_NODES:-100}
CONCURRENCY=${STRESS_CONCURRENCY:-32}
TIMEOUT=${STRESS_TIMEOUT:-10m}
OUT=${STRESS_OUT:-/tmp/kubec-stress-headline-$(date +%Y%m%d-%H%M%S)}
read -r -a EXTRA <<<"${STRESS_ARGS:-}"
read -r -a SEXTRA <<<"${SERVER_ARGS:-}"

data=$(mktemp -d /tmp/kubec-stress-data-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_pid=
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 1 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid"
  fi
  server_pid=
}
trap 'stop_server; rm -rf "$data"' EXIT

"$KUBEC_BIN" server --data-dir "$data" --listen "127.0.0.1:$port" --sim-nodes "$NODES" --sim-profile fast \
  "${SEXTRA[@]}" >"$data/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
  if [ -f "$data/kubeconfig.yaml" ] && curl -sfk "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { echo "kubec server exited:"; cat "$data/server.log"; exit 2; }
  sleep 0.1
done
# the sim nodes register asynchronously: wait until all of them are there
token=$(cat "$data/token" 2>/dev/null || awk '/token:/ {gsub(/"/, "", $2); print $2}' "$data/kubeconfig.yaml")
for _ in $(seq 1 300); do
  n=$(curl -sfk -H "Authorization: Bearer $token" "https://127.0.0.1:$port/api/v1/nodes" |
      python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))' 2>/dev/null || echo 0)
  [ "$n" -ge "$NODES" ] && break
  sleep 0.1
done

echo "machine: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
cmd=("${STRESS[@]}" --kubeconfig "$data/kubeconfig.yaml" --deployments "$DEPLOYMENTS" --replicas "$REPLICAS"
     --concurrency "$CONCURRENCY" --timeout "$TIMEOUT" --report "$OUT" "${EXTRA[@]}")
echo "server: $KUBEC_BIN server --sim-nodes $NODES --sim-profile fast ${SEXTRA[*]}"
echo "run:    ${cmd[*]}"
set +e
"${cmd[@]}"
rc=$?
set -e
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server peak RSS (VmHWM): $((hwm / 1024)) MiB"
echo "report: $OUT/report.json $OUT/report.html"
stop_server
exit $rc
