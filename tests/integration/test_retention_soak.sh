#!/usr/bin/env bash
# Retention soak (issue #14 "Done when"): VIDQ_SOAK_JOBS tiny jobs (default
# 2000) with ttl_s 1 through one server (--max-concurrent 2,
# --retention-records 5). Once they have ended and the windows have passed,
# the bytes under inputs/, outputs/ and tmp/ are back to their baseline
# (within 1 MiB) and the jobs table holds no more rows than the records
# window allows (none: every job ended more than 5 s ago).
# No file or folder of a job may be left either (the byte count alone
# cannot see one: a folder's own size stays what its largest listing
# needed, so outputs/ itself is a few KiB above its baseline afterwards).
# Cheap on purpose, so 2,000 jobs fit the CI stage: a 64x64 clip of two
# frames, the thumbnail preset (one small JPEG), one curl process that
# uploads 8 at a time (--parallel), polls instead of sleeps, and
# --isolation thread: retention's files and rows are the same in both
# isolations, and a probe child plus a job child per job (process) cost
# ~0.1-0.2 s each on 2 busy cores, which makes 2,000 jobs take minutes.
# VIDQ_SOAK_ISOLATION=process tries that. Prints where the wall time went
# (uploads, jobs, sweep) and the database's files, which are not part of
# the byte check: SQLite reuses freed pages but does not give them back.
# Its WAL is checked on its own: checkpointed as the jobs go, it stays
# under 16 MiB (unchecked it grew by ~28 KB a job: 56 MB and more here).
# ctest-labels: slow
# ctest-timeout: 600
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
command -v sqlite3 >/dev/null || { echo "sqlite3 missing"; exit 77; }
n=${VIDQ_SOAK_JOBS:-2000}
W=$T/svc; D=$W/data; mkdir -p "$W"
tiny=$W/tiny.mp4
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=64x64:rate=10:duration=0.2 \
  -c:v libx264 -preset ultrafast "$tiny"
t0=$(date +%s.%N)
start_server "$W" "$D" --max-concurrent 2 --isolation "${VIDQ_SOAK_ISOLATION:-thread}" ${VIDQ_SOAK_ARGS:-} \
  --max-queued 100000 --retention-records 5 || finish
files_bytes() { { du -sb "$D/inputs" "$D/outputs" "$D/tmp" 2>/dev/null || true; } | awk '{ s += $1 } END { print s }'; }
db_files() { { du -b "$D"/vidq.db* 2>/dev/null || true; } | awk '{ sub(".*/", "", $2); printf "%s %s, ", $2, $1 }'; }
# The CLI has no busy timeout: a read that meets the server's checkpoint
# restarting the WAL would fail (and end the test under set -e).
rows() { sqlite3 -cmd ".timeout 10000" "$D/vidq.db" "SELECT count(*) FROM jobs"; }
active() { curl -s "$BASE/metrics" | awk '/^vidq_jobs\{status="(queued|running)"\}/ { s += $2 } END { print s + 0 }'; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
base=$(files_bytes); base_db=$(db_files)

# One curl for all uploads: a config with one URL (and its output) per job.
for i in $(seq "$n"); do
  printf 'url = "%s/v1/jobs?preset=thumbnail&ttl_s=1"\noutput = "/dev/null"\n' "$BASE"
  printf 'write-out = "%%{http_code}\\n"\nsilent\n'
  printf 'header = "Content-Type: video/mp4"\ndata-binary = "@%s"\n' "$tiny"
  [ "$i" -lt "$n" ] && echo next
done >"$W/curl.cfg"
t_up=$(date +%s.%N)
curl -s --parallel --parallel-max 8 -K "$W/curl.cfg" >"$W/codes" || true
up_s=$(since "$t_up")
got=$(wc -l <"$W/codes"); bad=$(grep -vc '^202$' "$W/codes" || true)
[ "$got" = "$n" ] && [ "$bad" = 0 ] ||
  fail "$bad of $got answers (of $n uploads) were not 202: $(sort "$W/codes" | uniq -c | tr '\n' ' ')"

# Wait for the queue to drain (a job is ~20-50 ms; 2,000 of them well
# under the deadline on 2 idle cores).
t_jobs=$(date +%s.%N)
for _ in $(seq 6000); do [ "$(active)" = 0 ] && break; sleep 0.1; done
jobs_s=$(since "$t_jobs")
[ "$(active)" = 0 ] || fail "jobs still queued or running after $jobs_s s"
peak_rows=$(rows); peak_bytes=$(files_bytes)
# Early jobs' rows may be gone already (the windows are short), so the
# log counts the successes.
ok=$(grep -c "job ended id=.* status=succeeded" "$W/server.log" || true)
[ "$ok" = "$n" ] || fail "$ok of $n jobs succeeded: $(grep -o 'job ended id=.* status=[a-z]*' "$W/server.log" |
  sed 's/.*status=//' | sort | uniq -c | tr '\n' ' ')"

# ttl_s 1, then --retention-records 5, then a sweep round: poll until the
# files and the rows are gone, at most 30 s (the sweeper's cap is 1,000
# jobs a second of each kind, so the backlog itself takes ~2 s).
t_sweep=$(date +%s.%N)
# find fails when a folder goes while it walks (the sweeper is at work):
# what it printed still counts, its status does not (set -e, pipefail).
paths() { { find "$D/inputs" "$D/outputs" "$D/tmp" -mindepth 1 2>/dev/null || true; } | head -"${1:-1000000}"; }
for _ in $(seq 300); do
  after=$(files_bytes); left=$(rows); d=$((after - base)); left_paths=$(paths | wc -l)
  [ ${d#-} -le 1048576 ] && [ "$left" = 0 ] && [ "$left_paths" = 0 ] && break
  sleep 0.1
done
sweep_s=$(since "$t_sweep")
note "bytes under inputs/outputs/tmp: baseline $base, $peak_bytes when the jobs ended, $after after the windows"
note "rows: $peak_rows when the jobs ended, $left after the windows; database files (bytes) before: ${base_db%, }; after: $(db_files | sed "s/, $//")"
note "wall: uploads ${up_s} s, jobs drained ${jobs_s} s later, swept ${sweep_s} s later, $(since "$t0") s in all ($n jobs)"
[ "$left_paths" = 0 ] || fail "$left_paths files or folders left, e.g.: $(paths 3 | tr '\n' ' ')"
[ ${d#-} -le 1048576 ] || fail "disk use did not return to its baseline: $base -> $after"
[ "$left" = 0 ] || fail "$left rows left after --retention-records"
wal=$(stat -c %s "$D/vidq.db-wal" 2>/dev/null || echo 0)
[ "$wal" -le $((16 << 20)) ] || fail "the WAL grew to $wal bytes: it is not being checkpointed"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ] || fail "the server stopped answering"
! grep -q "sweep failed" "$W/server.log" || fail "the sweeper failed: $(grep "sweep failed" "$W/server.log" | head -3)"
finish
