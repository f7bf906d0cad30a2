#!/usr/bin/env bash
# bench_status_db.sh BUILD [ROUNDS]: GET /status/<id> with wrk on the SQLite
# store vs the PostgreSQL store, rounds alternating. Run it under
# tests/support/with_pg.sh (it needs VIDQ_TEST_DB), e.g.
#   nice bash tests/support/with_pg.sh bash tests/bench/bench_status_db.sh build 3
# Each round and backend: one `vidq serve --max-concurrent 1`, one job done,
# one running (a slow 1080p encode) and one queued behind it; wrk -t2 -c16
# -d5s on the status of each. On SQLite all three are served from the
# scheduler's memory. On PostgreSQL the finished and the running job are
# this node's (memory); the queued one is the store's (the queue is shared
# by all nodes), served from the status cache (LISTEN/NOTIFY) with its
# queue_position. PostgreSQL also gets a "remote" case: a second node on
# the same database (it runs a fourth job, priority 1) answers the status
# of the job the first node runs. Prints req/s and p99 per case, the
# medians, and whether the goal (queued on PostgreSQL at least half of
# SQLite's req/s) is met. Needs ffmpeg, curl, wrk, jq. Loopback only.
# A small try: ROUNDS 1 (about 2 minutes; each wrk still runs 5 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
rounds=${2:-3}
: "${VIDQ_TEST_DB:?run under tests/support/with_pg.sh}"
bin=$PWD/$build/vidq
work=$(mktemp -d /tmp/vidq-bench-db.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

src=$work/src.mp4
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=10 \
  -f lavfi -i sine=frequency=440:duration=10 -c:v libx264 -preset ultrafast -crf 18 -c:a aac -shortest "$src"
small=$work/small.mp4
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=1 \
  -c:v libx264 -preset ultrafast "$small"
slow='[{"name":"s","container":"mp4","video":{"codec":"h264","speed":"veryslow"},"audio":null}]'
wn=$(( $(nice) + 10 )); [ $wn -gt 19 ] && wn=19

n=0
start_server() { # db URL
  n=$((n + 1))
  rm -rf "$work/data"
  if [[ $1 == postgres* ]]; then
    PGOPTIONS="-c client_min_messages=warning" psql -X -q "$VIDQ_TEST_DB" -c "DROP DATABASE IF EXISTS bench_$n" -c "CREATE DATABASE bench_$n"
    db="postgresql://$VIDQ_TEST_PG_USER@/bench_$n?host=$VIDQ_TEST_PG_HOST"
  else
    db="sqlite:$work/data/vidq.db"
  fi
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --db "$db" --max-concurrent 1 \
    --worker-nice "$wn" >"$work/out" 2>"$work/log" &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.05; done
  base=http://127.0.0.1:$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$work/out")
}
upload() { curl -sf -X POST -H 'Content-Type: video/mp4' -T "$1" "$base/upload?$2" | jq -r .id; }
status() { curl -sf "$base/status/$1" | jq -r .status; }

declare -A all
for round in $(seq "$rounds"); do
  for backend in sqlite postgres; do
    [ $backend = sqlite ] && start_server sqlite || start_server postgres
    done_id=$(upload "$small" "preset=mp4-480p")
    for _ in $(seq 200); do [ "$(status "$done_id")" = succeeded ] && break; sleep 0.1; done
    run_id=$(upload "$src" "outputs=$(jq -rn --arg s "$slow" '$s|@uri')")
    queued_id=$(upload "$src" "outputs=$(jq -rn --arg s "$slow" '$s|@uri')")
    for _ in $(seq 100); do [ "$(status "$run_id")" = running ] && break; sleep 0.1; done
    [ "$(status "$queued_id")" = queued ] || { echo "the third job is not queued" >&2; exit 1; }
    cases="done running queued"
    pid2=""
    if [ $backend = postgres ]; then
      # A second node: it claims the fourth job (priority 1, ahead of the
      # queued one) and then answers for the first node's running job.
      extra_id=$(upload "$src" "priority=1&outputs=$(jq -rn --arg s "$slow" '$s|@uri')")
      "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --db "$db" --max-concurrent 1 \
        --worker-nice "$wn" >"$work/out2" 2>"$work/log2" &
      pid2=$!
      for _ in $(seq 100); do grep -q "listening on" "$work/out2" 2>/dev/null && break; sleep 0.05; done
      base2=http://127.0.0.1:$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$work/out2")
      for _ in $(seq 100); do [ "$(status "$extra_id")" = running ] && break; sleep 0.1; done
      [ "$(status "$queued_id")" = queued ] || { echo "the third job is not queued" >&2; exit 1; }
      cases="$cases remote"
    fi
    for case in $cases; do
      url=$base
      [ $case = done ] && id=$done_id
      [ $case = running ] && id=$run_id
      [ $case = queued ] && id=$queued_id
      [ $case = remote ] && { id=$run_id; url=$base2; }
      wrk -t2 -c16 -d5s --latency "$url/status/$id" >"$work/wrk" 2>&1
      rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk")
      p99=$(awk '$1=="99%" {print $2}' "$work/wrk")
      echo "round $round $backend $case: $rps req/s, p99 $p99 (load $(cut -d' ' -f1 /proc/loadavg))"
      all[$backend.$case]+="$rps "
    done
    [ -n "$pid2" ] && { kill -TERM "$pid2"; wait "$pid2" || true; }
    kill -TERM "$pid"; wait "$pid" || true
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo "== medians of $rounds rounds (req/s)"
for case in done running queued; do
  s=$(median <<<"${all[sqlite.$case]}"); p=$(median <<<"${all[postgres.$case]}")
  echo "$case: sqlite $s, postgres $p, postgres/sqlite $(awk -v a="$p" -v b="$s" 'BEGIN {printf "%.2f", a / b}')"
done
echo "remote (postgres, the other node's job): $(median <<<"${all[postgres.remote]}")"
s=$(median <<<"${all[sqlite.queued]}"); p=$(median <<<"${all[postgres.queued]}")
awk -v a="$p" -v b="$s" 'BEGIN {printf "goal (queued: postgres >= sqlite / 2): %s\n", ((a * 2 >= b) ? "met" : "NOT met")}'
