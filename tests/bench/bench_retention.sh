#!/usr/bin/env bash
# bench_retention.sh BUILD [N] [SECONDS]: GET /status/<id> (and GET /v1/jobs,
# which reads the store) while the sweeper works off N expired jobs (default
# 100000), against the same reads with nothing to sweep. SQLite store.
#   nice bash tests/bench/bench_retention.sh build 100000 20
# How: one real job is run (thumbnail of a 1 s clip, ttl_s 3600), the
# server stopped, then N copies of its row are inserted with sqlite3 as
# jobs that ended an hour ago and expired a minute ago, so that the
# restarted server (--retention-records 60) must both delete their files
# (none exist: the unlink is all the file work) and forget their rows.
# wrk -t2 -c16 -d SECONDS on the real job's status and on the job list,
# while sweeping and then again once the backlog is gone; prints req/s,
# p99 and how many rows were left after each phase. Needs ffmpeg, curl,
# jq, wrk, sqlite3. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
n=${2:-100000}
secs=${3:-20}
bin=$PWD/$build/vidq
work=$(mktemp -d /tmp/vidq-bench-ret.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
db=$work/data/vidq.db
small=$work/small.mp4
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=1 \
  -c:v libx264 -preset ultrafast "$small"

start_server() {
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --port-file "$work/port" \
    --retention-records 60 --max-retention 86400 >"$work/out" 2>>"$work/log" &
  pid=$!
  for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
  base=http://127.0.0.1:$(cat "$work/port")
}
stop_server() { kill -TERM "$pid"; wait "$pid" || true; pid=; rm -f "$work/port"; }
rows() { sqlite3 "$db" "SELECT count(*) FROM jobs"; }
measure() { # LABEL: wrk on the status and on the list
  local label=$1 url
  for url in "$base/status/$id" "$base/v1/jobs?limit=1"; do
    wrk -t2 -c16 -d"${secs}s" --latency "$url" >"$work/wrk" 2>&1
    printf '%-10s %-28s req/s %-10s p99 %-9s rows left %s\n' "$label" "${url#"$base"}" \
      "$(awk '/Requests\/sec/ { print $2 }' "$work/wrk")" \
      "$(awk '$1 == "99%" { print $2 }' "$work/wrk")" "$(rows)"
  done
}

start_server
id=$(curl -sf -F "file=@$small" -F preset=thumbnail -F ttl_s=3600 "$base/v1/jobs" | jq -r .id)
for _ in $(seq 300); do
  [ "$(curl -sf "$base/status/$id" | jq -r .status)" = succeeded ] && break; sleep 0.1
done
stop_server
now=$(date +%s)
sqlite3 "$db" <<SQL
WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < $n)
INSERT INTO jobs (id, status, priority, created_at, started_at, finished_at, attempts,
  input_path, input_json, outputs_json, results_json, metadata_json, ttl_s, expires_at)
SELECT printf('b%021d', x), 'succeeded', 0, $now - 3700, $now - 3700, $now - 3600, 1,
  '$work/data/inputs/' || printf('b%021d', x), input_json, outputs_json, results_json,
  metadata_json, 3540, $now - 60 FROM k, (SELECT * FROM jobs WHERE id = '$id');
SQL
echo "inserted $n expired jobs; rows: $(rows)"
start_server
t0=$(date +%s.%N)
measure sweeping
for _ in $(seq 600); do [ "$(rows)" -le 1 ] && break; sleep 1; done
t1=$(date +%s.%N)
echo "backlog gone after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
measure idle
stop_server
