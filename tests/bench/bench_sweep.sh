#!/usr/bin/env bash
# bench_sweep.sh BUILD [N] [SECONDS] [ROUNDS]: GET /status/<id> latency
# (p50, p99) while the sweeper works off N expired jobs (default 100000),
# against the same reads once nothing is left to sweep; on SQLite, and on
# PostgreSQL when run under tests/support/with_pg.sh (VIDQ_TEST_DB set):
#   nice bash tests/support/with_pg.sh bash tests/bench/bench_sweep.sh build 100000 20 3
# BACKENDS="sqlite" (or "postgres") picks one.
# How, per backend and round: one real job is run (thumbnail of a 1 s
# clip, ttl_s 3600), the server stopped, then N copies of its row are
# inserted by SQL straight into the stopped server's database (sqlite3 /
# psql, one statement) as jobs that ended an hour ago and expired a minute
# ago, so that the restarted server (--retention-records 60) must both
# delete their files (none exist: the unlink is all the file work) and
# forget their rows. Then wrk -t2 -c16 -d SECONDS on the real job's
# status and on GET /v1/jobs?limit=1 (a store read, so it meets the
# sweeper's writes), while sweeping, and again once the backlog is gone.
# The sweep must outlast the first window (a row count at its start and
# end says whether it did: 100,000 rows take 100-200 s at the sweeper's
# cap of 1,000 jobs a second). Prints one line per measurement and the
# medians over ROUNDS (default 1). Needs ffmpeg, curl, jq, wrk, sqlite3
# (and psql). Loopback only. On PostgreSQL every inserted, expired and
# deleted row also sends a NOTIFY that the server's status cache reads
# (the jobs_changed trigger), which is part of what the sweep costs there.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/bench/lib_bench.sh
build=${1:-build}
n=${2:-100000}
secs=${3:-20}
rounds=${4:-1}
bin=$PWD/$build/vidq
backends=${BACKENDS:-sqlite${VIDQ_TEST_DB:+ postgres}}
work=$(mktemp -d /tmp/vidq-bench-sweep.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
small=$work/small.mp4
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25:duration=1 \
  -c:v libx264 -preset ultrafast "$small"

dbn=0
new_db() { # BACKEND: a fresh data dir and database; sets db
  rm -rf "$work/data"
  dbn=$((dbn + 1))
  if [ "$1" = postgres ]; then
    : "${VIDQ_TEST_DB:?run under tests/support/with_pg.sh for postgres}"
    PGOPTIONS="-c client_min_messages=warning" psql -X -q "$VIDQ_TEST_DB" \
      -c "DROP DATABASE IF EXISTS sweep_$dbn" -c "CREATE DATABASE sweep_$dbn"
    db="postgresql://$VIDQ_TEST_PG_USER@/sweep_$dbn?host=$VIDQ_TEST_PG_HOST"
  else
    db="sqlite:$work/data/vidq.db"
  fi
}
sql() { # STATEMENTS on stdin, against the current database
  if [[ $db == postgres* ]]; then psql -X -q -v ON_ERROR_STOP=1 -At "$db"
  else sqlite3 "${db#sqlite:}"; fi
}
start_server() {
  rm -f "$work/port"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --db "$db" --port-file "$work/port" \
    --retention-records 60 --max-retention 86400 >"$work/out" 2>>"$work/log" &
  pid=$!
  for _ in $(seq 200); do [ -s "$work/port" ] && break; sleep 0.05; done
  [ -s "$work/port" ] || { echo "the server did not start: $(tail -5 "$work/log")" >&2; exit 1; }
  base=http://127.0.0.1:$(cat "$work/port")
}
stop_server() { kill -TERM "$pid"; wait "$pid" || true; pid=; }
rows() { echo "SELECT count(*) FROM jobs;" | sql; }
measure() { # BACKEND PHASE: wrk on the status and on the list
  local url r0
  for url in "/status/$id" "/v1/jobs?limit=1"; do
    r0=$(rows)
    wrk -t2 -c16 -d"${secs}s" --latency "$base$url" >"$work/wrk" 2>&1
    local line
    line=$(printf '%-8s %-8s %-22s req/s %8s p50 %8s p99 %8s rows %s -> %s' "$1" "$2" "$(echo "${url%%\?*}" | sed 's|/status/.*|/status/<id>|')" \
      "$(awk '/Requests\/sec/ { print $2 }' "$work/wrk")" \
      "$(awk '$1 == "50%" { print $2 }' "$work/wrk")" "$(awk '$1 == "99%" { print $2 }' "$work/wrk")" \
      "$r0" "$(rows)")
    echo "$line" | tee -a "$work/all"
  done
}
ms() { # a wrk time (812.00us, 1.20ms, 1.01s) in ms
  awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[^m]s$/) v *= 1000; printf "%.2f\n", v }'
}

for round in $(seq "$rounds"); do
  for backend in $backends; do
    new_db "$backend"
    start_server
    id=$(curl -sf -F "file=@$small" -F preset=thumbnail -F ttl_s=3600 "$base/v1/jobs" | jq -r .id)
    for _ in $(seq 300); do
      [ "$(curl -sf "$base/status/$id" | jq -r .status)" = succeeded ] && break; sleep 0.1
    done
    stop_server
    now=$(date +%s)
    if [ "$backend" = postgres ]; then gen="generate_series(1, $n) AS k(x)"; key="'b' || lpad(x::text, 21, '0')"
    else gen="(WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < $n) SELECT x FROM k)"
      key="printf('b%021d', x)"; fi
    t0=$(date +%s.%N)
    sql <<SQL
INSERT INTO jobs (id, status, priority, created_at, started_at, finished_at, attempts,
  input_path, input_json, outputs_json, results_json, metadata_json, ttl_s, expires_at)
SELECT $key, 'succeeded', 0, $now - 3700, $now - 3700, $now - 3600, 1,
  '$work/data/inputs/' || $key, j.input_json, j.outputs_json, j.results_json,
  j.metadata_json, 3540, $now - 60 FROM $gen, (SELECT * FROM jobs WHERE id = '$id') AS j;
SQL
    echo "round $round $backend: inserted $n expired jobs in $(awk -v a="$t0" -v b="$(date +%s.%N)" \
      'BEGIN { printf "%.1f", b - a }') s; rows: $(rows)"
    start_server
    t0=$(date +%s.%N)
    measure "$backend" sweeping
    for _ in $(seq 1200); do [ "$(rows)" -le 1 ] && break; sleep 0.5; done
    echo "round $round $backend: backlog gone $(awk -v a="$t0" -v b="$(date +%s.%N)" \
      'BEGIN { printf "%.1f", b - a }') s after the restart (rows: $(rows))"
    measure "$backend" idle
    [ "$(curl -sf "$base/status/$id" | jq -r .status)" = succeeded ] ||
      { echo "the real job is not readable any more" >&2; exit 1; }
    stop_server
  done
done

echo "== medians over $rounds round(s): req/s, p50 ms, p99 ms"
for backend in $backends; do
  for phase in sweeping idle; do
    for ep in /status /v1/jobs; do
      sel() { awk -v b="$backend" -v p="$phase" -v e="$ep" '$1 == b && $2 == p && index($3, e) == 1'; }
      [ "$ep" = /status ] && sel() { awk -v b="$backend" -v p="$phase" '$1 == b && $2 == p && $3 ~ /^\/status/'; }
      rps=$(sel <"$work/all" | awk '{ print $5 }' | median)
      p50=$(sel <"$work/all" | awk '{ print $7 }' | ms | median)
      p99=$(sel <"$work/all" | awk '{ print $9 }' | ms | median)
      printf '%-8s %-8s %-10s req/s %8s p50 %6s ms p99 %6s ms\n' "$backend" "$phase" "$ep" "$rps" "$p50" "$p99"
    done
  done
done
