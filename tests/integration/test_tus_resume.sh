#!/usr/bin/env bash
# test_tus_resume.sh - a real tus client (npm tus-js-client under node)
# uploads a generated video in small chunks to /v1/uploads/, aborts part-way;
# the server is killed with -9 and restarted on the same data dir; HEAD
# reports the acknowledged offset; the client resumes from its stored URL;
# the job runs; the output is checked with ffprobe and the stored input
# hash-matches the source (sha256). Also: an interrupted body (curl cut off
# mid-PATCH) keeps the bytes that arrived, and a non-media upload ends as a
# failed job (unsupported_media) with its bytes removed.
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/lib_tus.sh"
tus_setup tus-resume # SRC, CLIENT, W, D, fail

start() { # start the server on the data dir; sets PID, PORT, BASE
  SERVER_LOG=$W/server$RUN.log start_server "$W" "$D" --max-concurrent 1 "$@"
}
RUN=1; start

size=$(stat -c %s "$SRC")
chunk=65536
stop=$((chunk * 3))
[ "$size" -gt $((stop + chunk)) ] || fail "fixture too small ($size)"

# 1. upload part of it, then abort like a dropped network would
node "$CLIENT" --endpoint "$BASE/v1/uploads/" --file "$SRC" --chunk-size $chunk \
  --stop-after $stop --url-file "$W/url" --meta filename=clip.mp4 --meta preset=mp4-480p \
  --meta 'metadata={"user":"u1"}' >"$W/first.jsonl" || fail "first client run: $(cat "$W/first.jsonl")"
grep -q '"event":"aborted"' "$W/first.jsonl" || fail "client did not abort: $(cat "$W/first.jsonl")"
URL=$(cat "$W/url"); ID=${URL##*/}
acked=$(sed -n 's/.*"event":"aborted".*"offset":\([0-9]*\).*/\1/p' "$W/first.jsonl")
[ "$acked" -ge "$stop" ] && [ "$acked" -lt "$size" ] || fail "acked=$acked"

# incomplete: GET /status says so (404 not_found with the offset)
st=$(curl -s -o "$W/status.json" -w '%{http_code}' "$BASE/status/$ID")
[ "$st" = 404 ] && grep -q "incomplete: $acked of $size" "$W/status.json" ||
  fail "status of an incomplete upload: $st $(cat "$W/status.json")"

# 2. kill -9, restart on the same data dir
kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=
RUN=2; start
head=$(curl -s -I -H 'Tus-Resumable: 1.0.0' "$BASE/v1/uploads/$ID" | tr -d '\r')
echo "$head" | grep -qi "^Upload-Offset: $acked$" || fail "HEAD after restart: $head"
echo "$head" | grep -qi "^Cache-Control: no-store" || fail "no Cache-Control: $head"

# 3. resume from the stored URL (on the new port: the path is the same)
node "$CLIENT" --endpoint "$BASE/v1/uploads/" --file "$SRC" --chunk-size $chunk \
  --resume-url "$BASE/v1/uploads/$ID" >"$W/second.jsonl" || fail "resume: $(cat "$W/second.jsonl")"
grep -q '"event":"success"' "$W/second.jsonl" || fail "no success: $(cat "$W/second.jsonl")"
first_chunk=$(grep -m1 '"event":"chunk"' "$W/second.jsonl" | sed 's/.*"offset":\([0-9]*\).*/\1/')
[ "$first_chunk" -eq $((acked + chunk)) ] || [ "$first_chunk" -eq "$size" ] ||
  fail "resume did not start at $acked (first chunk ended at $first_chunk)"

# 4. the job: succeeded, the same id; output probed by ffprobe
tus_wait_job "$ID" "$W/job.json"
grep -q '"status":"succeeded"' "$W/job.json" || fail "job: $(cat "$W/job.json")"
grep -q '"filename":"clip.mp4"' "$W/job.json" || fail "filename lost: $(cat "$W/job.json")"
grep -q '"user":"u1"' "$W/job.json" || fail "metadata lost: $(cat "$W/job.json")"
curl -sf -o "$W/out.mp4" "$BASE/v1/jobs/$ID/outputs/mp4-480p" || fail "no output"
h=$(ffprobe -v error -select_streams v:0 -show_entries stream=height -of csv=p=0 "$W/out.mp4")
[ "$h" = 360 ] || fail "output height $h"
dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$W/out.mp4")
awk -v d="$dur" 'BEGIN { exit !(d > 1.5 && d < 2.5) }' || fail "output duration $dur"
want=$(sha256sum <"$SRC" | cut -d' ' -f1)
got=$(sha256sum <"$D/inputs/$ID" | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "uploaded bytes differ from the source"
# a finished upload still answers HEAD (offset = length) for clients that check
curl -s -I -H 'Tus-Resumable: 1.0.0' "$BASE/v1/uploads/$ID" | tr -d '\r' |
  grep -qi "^Upload-Offset: $size$" || fail "HEAD of a finished upload"

# 5. a body cut off mid-PATCH keeps what arrived (made durable), a prefix
# of what was sent: the client resumes from there
loc=$(curl -s -D - -o /dev/null -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" \
  "$BASE/v1/uploads/" | tr -d '\r' | sed -n 's/^Location: //Ip')
[ -n "$loc" ] || fail "no Location"
sent=$((size - 50000))
# announce the whole file but send only $sent bytes, then hang up
python3 - "$PORT" "$loc" "$size" "$SRC" "$sent" <<'PY' || fail "raw client"
import socket, sys, time
port, loc, size, src, sent = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
data = open(src, "rb").read()[:sent]
s = socket.create_connection(("127.0.0.1", port))
s.sendall((f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
           f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
           f"Content-Length: {size}\r\n\r\n").encode() + data)
time.sleep(0.3)
s.close()
PY
off=0
for _ in $(seq 50); do
  grep -q "upload ${loc##*/} interrupted" "$W/server$RUN.log" && break
  sleep 0.1
done
off=$(curl -s -I -H 'Tus-Resumable: 1.0.0' "$BASE$loc" | tr -d '\r' | sed -n 's/^Upload-Offset: //Ip')
[ "$off" -gt 0 ] && [ "$off" -le "$sent" ] || fail "interrupted PATCH kept $off bytes (sent $sent)"
[ "$(head -c "$off" "$SRC" | sha256sum)" = "$(sha256sum <"$D/uploads/${loc##*/}.bin")" ] ||
  fail "the kept bytes are not the prefix sent"
tail -c +$((off + 1)) "$SRC" >"$W/rest"
st=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' \
  -H 'Content-Type: application/offset+octet-stream' -H "Upload-Offset: $off" \
  --data-binary @"$W/rest" "$BASE$loc")
[ "$st" = 204 ] || fail "PATCH of the rest: $st"

# 6. a non-media file: the job fails with unsupported_media, bytes removed
head -c 150000 /dev/urandom >"$W/noise.bin"
node "$CLIENT" --endpoint "$BASE/v1/uploads/" --file "$W/noise.bin" --chunk-size 50000 \
  --meta filename=noise.bin >"$W/noise.jsonl" || fail "noise upload: $(cat "$W/noise.jsonl")"
NID=$(sed -n 's/.*"event":"success","url":"[^"]*\/\([^"/]*\)".*/\1/p' "$W/noise.jsonl")
[ -n "$NID" ] || fail "no id: $(cat "$W/noise.jsonl")"
curl -s "$BASE/status/$NID" >"$W/noise.json"
grep -q '"status":"failed"' "$W/noise.json" && grep -q '"code":"unsupported_media"' "$W/noise.json" ||
  fail "non-media job: $(cat "$W/noise.json")"
[ ! -e "$D/uploads/$NID.bin" ] && [ ! -e "$D/inputs/$NID" ] || fail "non-media bytes kept"

# 7. a crash after the last byte was stored but before the job was made: the
# next start makes the job (state written by hand as the server would leave it)
tus_stop_clean
RID=recoverAAAAAAAAAAAAAAA
cp "$SRC" "$D/uploads/$RID.bin"
now=$(date +%s)
meta="filename $(printf r.mp4 | base64),preset $(printf mp4-480p | base64)"
printf '{"id":"%s","offset":%s,"length":%s,"created_at":%s,"expires_at":%s,"finished_at":0,"phase":"complete","metadata":"%s","error_code":"","error_message":""}' \
  "$RID" "$size" "$size" "$now" $((now + 3600)) "$meta" >"$D/uploads/$RID.json"
RUN=3; start
tus_wait_job "$RID" "$W/rjob.json"
grep -q '"status":"succeeded"' "$W/rjob.json" || fail "recovered upload: $(cat "$W/rjob.json")"
grep -q '"filename":"r.mp4"' "$W/rjob.json" || fail "recovered metadata: $(cat "$W/rjob.json")"
[ ! -e "$D/uploads/$RID.bin" ] || fail "recovered upload's bytes left in uploads/"

tus_stop_clean
echo "ok: tus resume across kill -9 ($acked of $size bytes acknowledged before the crash)"
