#!/usr/bin/env bash
# Retention (issue #14 part 1, README "Retention"), on SQLite and, as
# it.test_retention.pg under tests/support/with_pg.sh, on PostgreSQL:
#   - ttl_s out of 1 .. --max-retention, or not a number, is 400
#     bad_request (form field, query, tus metadata) and leaves nothing;
#   - a job ends with expires_at = finished_at + --retention (or its ttl_s)
#     and expired false; past it its files are gone, its outputs answer 410
#     expired and the job says expired true; past --retention-records it
#     is 404 (status, deliveries);
#   - DELETE /v1/jobs/<id>/files: 409 while queued or running, 200 with
#     the job (expired true) once it ended, files gone at once, 410 after;
#   - a crash mid-sweep (kill -9, one job's input already deleted but the
#     job not yet marked): after the restart that job is finished off,
#     and a job that is not due keeps every file.
# ctest-labels: integration
# ctest-timeout: 240
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

in=$VIDQ_MEDIA/h264_aac_640x360.mp4
slow_in=$VIDQ_MEDIA/h264_aac_640x360_10s.mp4
W=$T/svc; D=$W/data; mkdir -p "$W"
DB=(); [ -n "${VIDQ_TEST_DB:-}" ] && DB=(--db "$VIDQ_TEST_DB")
PID=
stop_server() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=; }
trap 'stop_server; lib_cleanup' EXIT
start_server() { # ARGS...
  stop_server
  rm -f "$W/port"
  VIDQ_LOG_LEVEL=info "$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$D" "${DB[@]}" \
    --port-file "$W/port" "$@" >>"$W/server.out" 2>>"$W/server.log" &
  PID=$!
  for _ in $(seq 150); do [ -s "$W/port" ] && break; sleep 0.1; done
  [ -s "$W/port" ] || { fail "server did not start: $(tail -c 300 "$W/server.log")"; return 1; }
  BASE=http://127.0.0.1:$(cat "$W/port")
}
upload() { # FILE PRESET [curl args...]: code in CODE, body in $W/up.json, id in ID
  local f=$1 p=$2; shift 2
  CODE=$(curl -s -o "$W/up.json" -w '%{http_code}' -F "file=@$f" -F "preset=$p" "$@" "$BASE/v1/jobs")
  ID=$(jq -r '.id // empty' "$W/up.json" 2>/dev/null || true)
}
status_of() { curl -s "$BASE/status/$1"; }
wait_final() { # ID: waits up to 60 s for the job to end, prints its object
  local j s
  for _ in $(seq 600); do
    j=$(status_of "$1"); s=$(jq -r .status <<<"$j")
    case $s in succeeded|failed|canceled) echo "$j"; return 0 ;; esac
    sleep 0.1
  done
  echo "$j"
}
code_of() { curl -s -o "$W/body.json" -w '%{http_code}' "$@"; }
leftovers() { find "$D/tmp" "$D/inputs" -type f | wc -l; }

start_server --retention 3 --max-retention 100 --retention-records 16 || finish

note "ttl_s out of bounds or not a number: 400, nothing kept"
before=$(leftovers)
for bad in 0 0.5 101 -3 abc 1e999 ""x; do
  upload "$in" thumbnail -F "ttl_s=$bad"
  [ "$CODE" = 400 ] || fail "ttl_s=$bad: HTTP $CODE, want 400"
  [ "$(jq -r .error.code "$W/up.json")" = bad_request ] || fail "ttl_s=$bad: $(cat "$W/up.json")"
  jq -r .error.message "$W/up.json" | grep -q "ttl_s" || fail "ttl_s=$bad: message does not name ttl_s"
done
CODE=$(curl -s -o "$W/up.json" -w '%{http_code}' -H 'Content-Type: video/mp4' \
  --data-binary "@$in" "$BASE/v1/jobs?preset=thumbnail&ttl_s=1000")
[ "$CODE" = 400 ] || fail "query ttl_s=1000: HTTP $CODE"
b64() { printf %s "$1" | base64 -w0; }
CODE=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Tus-Resumable: 1.0.0' \
  -H "Upload-Length: $(stat -c %s "$in")" \
  -H "Upload-Metadata: filename $(b64 a.mp4),preset $(b64 thumbnail),ttl_s $(b64 0)" "$BASE/v1/uploads")
[ "$CODE" = 400 ] || fail "tus ttl_s=0: HTTP $CODE"
sleep 0.3
[ "$(leftovers)" = "$before" ] || fail "a refused ttl_s left files behind: $(find "$D/tmp" "$D/inputs" -type f)"
[ "$(code_of "$BASE/healthz")" = 200 ] || fail "the server stopped serving"

note "a job keeps its files for --retention, then 410 and expired, then 404"
upload "$in" thumbnail
[ "$CODE" = 202 ] || fail "upload: HTTP $CODE $(cat "$W/up.json")"
A=$ID
upload "$in" thumbnail -F "ttl_s=60"
[ "$CODE" = 202 ] || fail "upload with ttl_s=60: HTTP $CODE $(cat "$W/up.json")"
B=$ID
ja=$(wait_final "$A")
[ "$(jqv "$ja" .status)" = succeeded ] || fail "job A: $ja"
[ "$(jqv "$ja" .expired)" = false ] || fail "job A expired at once: $ja"
[ "$(code_of "$BASE/v1/jobs/$A/outputs/thumbnail")" = 200 ] || fail "A's output before expiry: $(cat "$W/body.json")"
[ -f "$D/inputs/$A" ] || fail "A's input is gone before expiry"
ta=$(date -d "$(jqv "$ja" .finished_at)" +%s.%N); ea=$(date -d "$(jqv "$ja" .expires_at)" +%s.%N)
near "$(awk -v a="$ea" -v b="$ta" 'BEGIN { print a - b }')" 3 0.01 || fail "A: expires_at - finished_at is not 3 s: $ja"
jb=$(wait_final "$B")
[ "$(jqv "$jb" .status)" = succeeded ] || fail "job B: $jb"
eb=$(date -d "$(jqv "$jb" .expires_at)" +%s.%N); tb=$(date -d "$(jqv "$jb" .finished_at)" +%s.%N)
near "$(awk -v a="$eb" -v b="$tb" 'BEGIN { print a - b }')" 60 0.01 || fail "B: expires_at - finished_at is not 60 s: $jb"

note "DELETE /v1/jobs/<id>/files: 409 while it runs, 200 once it ended"
upload "$slow_in" mp4-720p
[ "$CODE" = 202 ] || fail "slow upload: HTTP $CODE"
S=$ID
[ "$(code_of -X DELETE "$BASE/v1/jobs/$S/files")" = 409 ] || fail "DELETE files of a live job: $(cat "$W/body.json")"
[ "$(jq -r .error.code "$W/body.json")" = conflict ] || fail "409 body: $(cat "$W/body.json")"
[ -f "$D/inputs/$S" ] || fail "the 409 deleted the live job's input"
[ "$(code_of -X POST "$BASE/v1/jobs/$S/cancel")" = 202 ] || fail "cancel of the slow job: $(cat "$W/body.json")"
# Its end is checked now: by the time A's record is forgotten below, S's
# (which ended a moment after A) may be gone too.
[ "$(jqv "$(wait_final "$S")" .status)" = canceled ] || fail "the slow job did not end canceled"
[ "$(code_of -X DELETE "$BASE/v1/jobs/$B/files")" = 200 ] || fail "DELETE files of B: $(cat "$W/body.json")"
[ "$(jq -r .expired "$W/body.json")" = true ] || fail "DELETE files answer: $(cat "$W/body.json")"
[ "$(jq -r .id "$W/body.json")" = "$B" ] || fail "DELETE files answer is not the job"
[ ! -e "$D/inputs/$B" ] && [ ! -e "$D/outputs/$B" ] || fail "B's files are still there"
[ "$(code_of "$BASE/v1/jobs/$B/outputs/thumbnail")" = 410 ] || fail "B's output after DELETE files"
[ "$(jqv "$(status_of "$B")" .expired)" = true ] || fail "B's status says not expired"
[ "$(code_of -X DELETE "$BASE/v1/jobs/$B/files")" = 200 ] || fail "DELETE files again: not 200"
[ "$(code_of -X DELETE "$BASE/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/files")" = 404 ] || fail "DELETE files of no job"

while [ "$(awk -v e="$ea" -v n="$(date +%s.%N)" 'BEGIN { print (n < e + 1.5) }')" = 1 ]; do sleep 0.2; done
[ "$(code_of "$BASE/v1/jobs/$A/outputs/thumbnail")" = 410 ] || fail "A's output after expiry: $(head -c 200 "$W/body.json")"
[ "$(jq -r .error.code "$W/body.json")" = expired ] || fail "A's 410 body: $(cat "$W/body.json")"
[ "$(jqv "$(status_of "$A")" .expired)" = true ] || fail "A is not expired: $(status_of "$A")"
# 410 and expired hold from expires_at on; the files go at the sweeper's
# next round (every second; later on a loaded machine): allow it 10 s.
for _ in $(seq 100); do [ ! -e "$D/inputs/$A" ] && [ ! -e "$D/outputs/$A" ] && break; sleep 0.1; done
[ ! -e "$D/inputs/$A" ] || fail "A's input is still there"
[ ! -e "$D/outputs/$A" ] || fail "A's outputs are still there: $(ls -R "$D/outputs/$A")"
gone=
for _ in $(seq 200); do
  [ "$(code_of "$BASE/status/$A")" = 404 ] && { gone=1; break; }
  sleep 0.1
done
[ -n "$gone" ] || fail "A is still readable after --retention-records: $(status_of "$A")"
[ "$(code_of "$BASE/v1/jobs/$A/deliveries")" = 404 ] || fail "A's deliveries are still there"
for _ in $(seq 100); do [ ! -e "$D/inputs/$S" ] && break; sleep 0.1; done
[ ! -e "$D/inputs/$S" ] || fail "the canceled job kept its input past its expiry"

note "a crash mid-sweep: the due job is finished off, the others keep their files"
start_server --retention 4 --max-retention 1000 || finish
upload "$in" thumbnail; C=$ID
# K through tus (creation-with-upload), its ttl_s in the metadata
curl -s -D "$W/tus.h" -o /dev/null -X POST -H 'Tus-Resumable: 1.0.0' \
  -H "Upload-Length: $(stat -c %s "$in")" -H 'Content-Type: application/offset+octet-stream' \
  -H "Upload-Metadata: filename $(b64 k.mp4),preset $(b64 thumbnail),ttl_s $(b64 600)" \
  --data-binary "@$in" "$BASE/v1/uploads"
K=$(tr -d '\r' <"$W/tus.h" | awk 'tolower($1) == "location:" { n = split($2, p, "/"); print p[n] }')
[ -n "$K" ] || fail "tus creation-with-upload: no Location: $(cat "$W/tus.h")"
wait_final "$C" >/dev/null; jk=$(wait_final "$K")
[ "$(jqv "$jk" .status)" = succeeded ] || fail "tus job K: $jk"
ek=$(date -d "$(jqv "$jk" .expires_at)" +%s.%N); tk=$(date -d "$(jqv "$jk" .finished_at)" +%s.%N)
near "$(awk -v a="$ek" -v b="$tk" 'BEGIN { print a - b }')" 600 0.01 || fail "K: tus ttl_s 600 not kept: $jk"
stop_server # kill -9
sleep 4.5   # C is due now, not yet swept
rm -f "$D/inputs/$C" # as if the sweeper had got this far before the crash
start_server --retention 4 --max-retention 1000 || finish
done_c=
for _ in $(seq 50); do
  [ "$(jqv "$(status_of "$C")" .expired)" = true ] && [ ! -e "$D/outputs/$C" ] && { done_c=1; break; }
  sleep 0.1
done
[ -n "$done_c" ] || fail "C was not finished off after the restart: $(status_of "$C")"
[ -f "$D/inputs/$K" ] || fail "K (not due) lost its input"
[ "$(code_of "$BASE/v1/jobs/$K/outputs/thumbnail")" = 200 ] || fail "K (not due) lost its output"
[ "$(jqv "$(status_of "$K")" .expired)" = false ] || fail "K says expired"
grep -q "job files expired id=$C" "$W/server.log" || fail "no log line for C's expiry"
finish
