#!/usr/bin/env bash
# bench_http_threads.sh BUILD [RUNS] [SECONDS] [THREADS...]: GET /status/<id>
# with wrk (32 keep-alive connections) against `vidq serve --http-threads T`
# for each T (default 1 2 3 4 6 8), RUNS times each (default 5), SECONDS a
# run (default 10); prints every run and then, per T, the median req/s and
# the median p99 (and p50). What --http-threads' default is derived from
# (svc/common/config.c, README "Running in production").
#   nice bash tests/bench/bench_http_threads.sh build 5 10
# Each run starts a fresh server (one finished job: a thumbnail of a 1 s
# clip, served from the scheduler's memory, so this measures the HTTP
# layer, not the store), warms it up for 1 s, then runs wrk; the thread
# counts are visited in a different order every run (rotated), so a drift
# of the machine's load does not favour one of them. WRK_THREADS (default
# 2) sets wrk's own threads: wrk runs on the same machine and takes CPU
# from the server, which is part of what this measures (a server is never
# alone on its cores either: its jobs run there). Prints the machine's
# cores (the ones this process may run on) and its load average before
# and after. UPLOADS=1 adds one client that uploads the small clip again
# and again during each measurement (a thumbnail job each): an upload is
# probed in the HTTP thread that received it (tens of ms), and every other
# connection of that thread waits meanwhile, which a status-only run
# cannot show. Needs ffmpeg, curl, jq, wrk. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/bench/lib_bench.sh
build=${1:-build}
runs=${2:-5}
secs=${3:-10}
shift $(( $# < 3 ? $# : 3 ))
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 2 3 4 6 8)
wt=${WRK_THREADS:-2}
bin=$PWD/$build/vidq
work=$(mktemp -d /tmp/vidq-bench-httpt.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
small=$work/small.mp4
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=1 \
  -c:v libx264 -preset ultrafast "$small"

start_server() { # THREADS
  rm -rf "$work/data" "$work/port"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --port-file "$work/port" \
    --http-threads "$1" >"$work/out" 2>"$work/log" &
  pid=$!
  for _ in $(seq 200); do [ -s "$work/port" ] && break; sleep 0.05; done
  [ -s "$work/port" ] || { echo "the server did not start: $(tail -5 "$work/log")" >&2; exit 1; }
  base=http://127.0.0.1:$(cat "$work/port")
}
stop_server() { kill -TERM "$pid"; wait "$pid" || true; pid=; }
ms() { # a wrk time (812.00us, 1.20ms, 1.01s) in ms
  awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[^m]s$/) v *= 1000; printf "%.3f\n", v }'
}

echo "cores: $(nproc) (of $(nproc --all)); wrk -t$wt -c32 -d${secs}s; uploads alongside: ${UPLOADS:-0}; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$runs"); do
  k=$(( (run - 1) % ${#threads[@]} ))
  for t in "${threads[@]:k}" "${threads[@]:0:k}"; do
    start_server "$t"
    id=$(curl -sf -F "file=@$small" -F preset=thumbnail "$base/v1/jobs" | jq -r .id)
    for _ in $(seq 300); do
      [ "$(curl -sf "$base/status/$id" | jq -r .status)" = succeeded ] && break; sleep 0.1
    done
    wrk -t"$wt" -c32 -d1s "$base/status/$id" >/dev/null 2>&1
    upid=
    if [ "${UPLOADS:-0}" = 1 ]; then
      (while :; do curl -s -o /dev/null -F "file=@$small" -F preset=thumbnail -F ttl_s=60 \
        "$base/v1/jobs" || exit 0; done) &
      upid=$!
    fi
    wrk -t"$wt" -c32 -d"${secs}s" --latency "$base/status/$id" >"$work/wrk" 2>&1
    [ -n "$upid" ] && { kill "$upid" 2>/dev/null; wait "$upid" 2>/dev/null || true; }
    rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk")
    p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk" | ms)
    p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk" | ms)
    errs=$(awk '/Non-2xx|Socket errors/' "$work/wrk" | tr -s ' ' | tr '\n' ' ')
    printf 'run %d threads %d req/s %s p50 %s ms p99 %s ms %s\n' "$run" "$t" "$rps" "$p50" "$p99" "$errs" |
      tee -a "$work/all"
    stop_server
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== medians over $runs run(s)"
printf '%-8s %12s %10s %10s\n' threads req/s p50_ms p99_ms
for t in "${threads[@]}"; do
  sel() { awk -v t="$t" '$4 == t' "$work/all"; }
  printf '%-8s %12s %10s %10s\n' "$t" "$(sel | awk '{ print $6 }' | median)" \
    "$(sel | awk '{ print $8 }' | median)" "$(sel | awk '{ print $11 }' | median)"
done
