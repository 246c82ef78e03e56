#!/usr/bin/env bash
# bench/run.sh — the kubec API server benchmark (a benchmark, not a test: it prints figures, it does not judge
# them, and its exit code only says whether it could measure).
#
# Steps: build kubec + bench programs (incremental); start-to-ready on fresh data dirs (CA, keys and an empty
# store are created) and on a reused one; a fresh server on a free loopback port; apibench at concurrency 1, 16
# and 64 (creates adding up to 10,000 pods, topped up if some failed); a baseline of cached GETs at concurrency 64; the server's RSS; SIGTERM and time to exit;
# a restart on the 10,000-pod store (start-to-ready and RSS with the cache filled); one summary table.
#
# Loopback only, bounded: each apibench run is capped at BENCH_MAX_SECONDS, every wait has a timeout, and the
# servers this script starts are stopped on exit (by their pid). Settings (environment):
#   BENCH_COMMIT=REV   benchmark a committed revision instead of the work tree: `git archive REV` into
#                      /tmp/kubec-bench-src-<sha> and build there (the shared work tree may not build mid-edit)
#   BUILD_DIR          build directory (default <repo>/build-bench, or <that source>/build with BENCH_COMMIT)
#   BUILD_TYPE         CMake build type (default RelWithDebInfo: -O2 -g, what scripts/build.sh ships)
#   BENCH_COUNTS       creates at concurrency 1,16,64 (default "1000 3000 6000" = 10,000 pods)
#   BENCH_READY_RUNS   start-to-ready runs of each kind (default 5)
#   BENCH_MAX_SECONDS  cap per apibench run (default 120)
#   BENCH_PERF=FILE    also `perf record -g` the server during the concurrency-64 run into FILE
#   BENCH_KEEP=1       keep the temp dir (data dirs, server logs)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$repo
what="work tree at $(git -C "$repo" rev-parse --short HEAD)"
if [ -n "${BENCH_COMMIT:-}" ]; then
  sha=$(git -C "$repo" rev-parse --short "$BENCH_COMMIT^{commit}")
  src=/tmp/kubec-bench-src-$sha
  what="commit $sha"
  if [ ! -d "$src" ]; then
    mkdir -p "$src.part" && git -C "$repo" archive "$sha" | tar -x -C "$src.part" && mv "$src.part" "$src"
  fi
  BUILD_DIR=${BUILD_DIR:-$src/build}
fi
BUILD_DIR=${BUILD_DIR:-$repo/build-bench}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
read -r -a COUNTS <<<"${BENCH_COUNTS:-1000 3000 6000}"
LEVELS=(1 16 64)
READY_RUNS=${BENCH_READY_RUNS:-5}
MAX_SECONDS=${BENCH_MAX_SECONDS:-120}
TOTAL_PODS=0
for c in "${COUNTS[@]}"; do TOTAL_PODS=$((TOTAL_PODS + c)); done

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------- build ----------
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  say "configuring $BUILD_DIR ($BUILD_TYPE)"
  cmake -S "$src" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >/dev/null
fi
say "building kubec, apibench, readytime (incremental)"
cmake --build "$BUILD_DIR" -j2 --target kubec apibench readytime >/dev/null
KUBEC=$BUILD_DIR/kubec
APIBENCH=$BUILD_DIR/bench/apibench
READYTIME=$BUILD_DIR/bench/readytime

tmp=$(mktemp -d /tmp/kubec-bench.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    sleep 1
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# "anon A MiB, file F MiB": heap vs file pages mapped (sqlite mmap reads, libraries), both part of VmRSS
rss_split() { awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {printf "anon %.1f MiB, file %.1f MiB", a/1024, f/1024}' "/proc/$1/status"; }
# CPU seconds (user+system, all threads) used so far by PID
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz}' "/proc/$1/stat"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# field NAME from a "KEY k=v k=v" line
field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" | head -n1; }
# median / min / max of numbers on stdin
stats() { sort -g | awk '{v[NR]=$1} END {m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.1f (min %.1f, max %.1f, n=%d)", m, v[1], v[NR], NR}'; }

load_start=$(load)
say "load average at start: $load_start ($(nproc) cores)"

# ---------- start-to-ready ----------
ready_run() { # DATA_DIR -> ms
  local port out
  port=$(free_port)
  out=$("$READYTIME" --url "https://127.0.0.1:$port/readyz" -- \
    "$KUBEC" server --data-dir "$1" --listen "127.0.0.1:$port" 2>>"$tmp/ready.log")
  echo "$out" | grep '^READY' | field ms
}
say "start-to-ready: $READY_RUNS fresh data dirs, then $READY_RUNS restarts on one of them"
cold=() warm=()
for i in $(seq 1 "$READY_RUNS"); do cold+=("$(ready_run "$tmp/ready-$i")"); done
for i in $(seq 1 "$READY_RUNS"); do warm+=("$(ready_run "$tmp/ready-1")"); done
cold_s=$(printf '%s\n' "${cold[@]}" | stats)
warm_s=$(printf '%s\n' "${warm[@]}" | stats)
cold_med=${cold_s%% *}
warm_med=${warm_s%% *}
say "fresh: $cold_s ms; reused: $warm_s ms"

# ---------- the server under load ----------
port=$(free_port)
data=$tmp/main
url=https://127.0.0.1:$port
"$KUBEC" server --data-dir "$data" --listen "127.0.0.1:$port" 2>"$tmp/server.log" &
server_pid=$!
for _ in $(seq 1 300); do
  curl -sfk -o /dev/null "$url/readyz" && break
  kill -0 "$server_pid" 2>/dev/null || { say "server died:"; cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.05
done
curl -sfk -o /dev/null "$url/readyz" || { say "server not ready in 15 s"; exit 1; }
rss_idle=$(rss_kb "$server_pid")
split_idle=$(rss_split "$server_pid")
say "server pid $server_pid on $url, idle RSS $((rss_idle / 1024)) MiB"

bench() { # CONC COUNT PREFIX -> apibench's output (also appended to apibench.log)
  "$APIBENCH" --server "$url" --token-file "$data/token" --cacert "$data/ca.crt" --concurrency "$1" \
    --count "$2" --duration "$MAX_SECONDS" --prefix "bench-$3" 2>&1 | tee -a "$tmp/apibench.log"
}
created=0
declare -A res
for i in "${!LEVELS[@]}"; do
  c=${LEVELS[$i]}
  perf_pid=
  if [ -n "${BENCH_PERF:-}" ] && [ "$c" = 64 ]; then
    perf record -g -o "$BENCH_PERF" -p "$server_pid" 2>"$tmp/perf.log" >&2 &
    perf_pid=$!
    sleep 0.5
  fi
  say "apibench concurrency $c, ${COUNTS[$i]} creates (load $(load))"
  cpu0=$(cpu_s "$server_pid")
  bench "$c" "${COUNTS[$i]}" "r$i" | tee /dev/stderr | grep '^RESULT' >"$tmp/res-$c" || true
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; say "perf data in $BENCH_PERF"; fi
  n=$(field created <"$tmp/res-$c")
  srv_us=$(awk -v a="$cpu0" -v b="$(cpu_s "$server_pid")" -v n="${n:-0}" 'BEGIN {printf "%.0f", n ? (b - a) * 1e6 / n : 0}')
  res[$c]="$(cat "$tmp/res-$c") server_cpu_us_per_create=$srv_us"
  say "server CPU: $srv_us us per create"
  created=$((created + ${n:-0}))
done
# Baseline for the HTTPS stack alone: authenticated GETs of one namespace from the watch cache.
say "baseline: GET /api/v1/namespaces/default at concurrency 64"
cpu0=$(cpu_s "$server_pid")
"$APIBENCH" --server "$url" --token-file "$data/token" --cacert "$data/ca.crt" --concurrency 64 --count 20000 \
  --duration "$MAX_SECONDS" --get /api/v1/namespaces/default 2>&1 | tee -a "$tmp/apibench.log" | tee /dev/stderr |
  grep '^RESULT' >"$tmp/res-get" || true
get_us=$(awk -v a="$cpu0" -v b="$(cpu_s "$server_pid")" -v n="$(field created <"$tmp/res-get")" \
  'BEGIN {printf "%.0f", n ? (b - a) * 1e6 / n : 0}')
res[get]="$(cat "$tmp/res-get") server_cpu_us_per_create=$get_us"
if [ "$created" -lt "$TOTAL_PODS" ]; then
  say "topping up: $((TOTAL_PODS - created)) more pods to reach $TOTAL_PODS"
  bench 16 $((TOTAL_PODS - created)) fill | grep '^RESULT' >"$tmp/res-fill" || true
  created=$((created + $(field created <"$tmp/res-fill")))
fi
rss_full=$(rss_kb "$server_pid")
split_full=$(rss_split "$server_pid")
hwm_full=$(hwm_kb "$server_pid")
db_kb=$(du -k "$data/state.db" | cut -f1)
say "$created pods: RSS $((rss_full / 1024)) MiB (peak $((hwm_full / 1024)) MiB), state.db $((db_kb / 1024)) MiB"

t0=$(date +%s%N)
kill -TERM "$server_pid"
for _ in $(seq 1 600); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.01; done
wait "$server_pid" && stop_status=0 || stop_status=$?
stop_ms=$((($(date +%s%N) - t0) / 1000000))
server_pid=
say "stopped with SIGTERM in ${stop_ms} ms, exit status $stop_status"

# ---------- restart on the full store ----------
port=$(free_port)
out=$("$READYTIME" --keep --url "https://127.0.0.1:$port/readyz" -- \
  "$KUBEC" server --data-dir "$data" --listen "127.0.0.1:$port" 2>>"$tmp/restart.log")
restart_ms=$(field ms <<<"$out")
server_pid=$(field pid <<<"$out")
sleep 0.2
rss_restart=$(rss_kb "$server_pid")
split_restart=$(rss_split "$server_pid")
kill -TERM "$server_pid"
for _ in $(seq 1 600); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.01; done
server_pid=
load_end=$(load)

# ---------- summary ----------
get() { field "$2" <<<"${res[$1]:-}"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB = %.1f MB", k/1024, k*1024/1e6}'; }
mark() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { if (v == "") {print "n/a"; exit}
  ok = (dir == "min") ? v >= t : v <= t; printf "%s", ok ? "met" : sprintf("MISSED (x%.2f)", dir == "min" ? t / (v ? v : 1) : v / t) }'; }
echo
echo "kubec API server benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $BUILD_TYPE build of the $what"
echo "load average: $load_start at start, $load_end at end"
echo
printf '%-46s %-40s %s\n' "measure" "value" "target"
printf '%-46s %-40s %s\n' "----------------------------------------------" "----------------------------------------" "------------------------------"
for c in "${LEVELS[@]}"; do
  printf '%-46s %-40s %s\n' "creates/s, concurrency $c ($(get "$c" requests) req)" "$(get "$c" creates_per_s)" \
    "$([ "$c" = 64 ] && echo ">= 10000: $(mark "$(get 64 creates_per_s)" 10000 min)")"
  printf '%-46s %-40s %s\n' "  latency p50 / p90 / p99 / max (ms)" \
    "$(get "$c" p50_ms) / $(get "$c" p90_ms) / $(get "$c" p99_ms) / $(get "$c" max_ms)" \
    "p99 <= 10 ms: $(mark "$(get "$c" p99_ms)" 10 max)"
  printf '%-46s %-40s %s\n' "  non-201 answers (code:count)" "$(get "$c" non201)" ""
  printf '%-46s %-40s %s\n' "  CPU per create: server / apibench (us)" \
    "$(get "$c" server_cpu_us_per_create) / $(get "$c" client_cpu_us_per_req)" ""
done
printf '%-46s %-40s %s\n' "baseline GET namespace/s, concurrency 64" "$(get get creates_per_s)" ""
printf '%-46s %-40s %s\n' "  latency p50 / p90 / p99 / max (ms)" \
  "$(get get p50_ms) / $(get get p90_ms) / $(get get p99_ms) / $(get get max_ms)" ""
printf '%-46s %-40s %s\n' "  CPU per GET: server / apibench (us)" \
  "$(get get server_cpu_us_per_create) / $(get get client_cpu_us_per_req)" ""
printf '%-46s %-40s %s\n' "start-to-ready, fresh data dir (ms)" "$cold_s" "< 100 ms: $(mark "$cold_med" 100 max)"
printf '%-46s %-40s %s\n' "start-to-ready, reused empty data dir (ms)" "$warm_s" "< 100 ms: $(mark "$warm_med" 100 max)"
printf '%-46s %-40s %s\n' "start-to-ready, $created pods in store (ms)" "$restart_ms" ""
printf '%-46s %-40s %s\n' "RSS idle after start" "$(mib "$rss_idle")" ""
printf '%-46s %-40s %s\n' "  of which" "$split_idle" ""
printf '%-46s %-40s %s\n' "RSS with $created pods (peak)" "$(mib "$rss_full") ($(mib "$hwm_full"))" \
  "<= 100 MB: $(mark "$(awk -v k="$rss_full" 'BEGIN{print k*1024/1e6}')" 100 max)"
printf '%-46s %-40s %s\n' "  of which" "$split_full" ""
printf '%-46s %-40s %s\n' "RSS after restart with $created pods" "$(mib "$rss_restart")" ""
printf '%-46s %-40s %s\n' "  of which" "$split_restart" ""
printf '%-46s %-40s %s\n' "state.db size" "$(mib "$db_kb")" ""
printf '%-46s %-40s %s\n' "SIGTERM to exit (ms), exit status" "$stop_ms, $stop_status" ""
