#!/usr/bin/env bash
# vidq submit against the real server: upload (tus) + --wait + --download
# (an MP4 checked with ffprobe, an HLS folder whole, a sprite folder);
# --progress plain / json / the bar on a terminal; a job that fails (not
# media; a job that times out while running; one canceled while followed)
# exits 1 with its error; a server that is down exits 3; an upload whose
# connection is dropped mid-PATCH (tests/support/drop_proxy.py) is resumed
# from the server's offset (HEAD, then PATCH from there, not from 0) and
# succeeds; a connection dropped on every PATCH gives up after 3 retries
# (exit 3); an upload interrupted by SIGINT (exit 130) is resumed by the
# same command run again; an interrupted download resumes with Range;
# --api-key; a URL is
# sent as input_url and the server's answer reported; bad command lines
# exit 2. The server keeps serving throughout.
# ctest-labels: integration
# ctest-timeout: 420
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
command -v python3 >/dev/null || { fail "python3 missing"; finish; }
M=$VIDQ_MEDIA
IN=$M/h264_aac_640x360.mp4
export XDG_CACHE_HOME=$T/cache   # where submit keeps unfinished uploads' URLs
W=$T/svc; mkdir -p "$W"
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; lib_cleanup; }
trap cleanup EXIT
start_server() { # NAME ARGS... -> sets BASE_<NAME>
  local name=$1; shift
  "$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$W/$name" --port-file "$W/$name.port" "$@" \
    >"$W/$name.out" 2>"$W/$name.log" &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$W/$name.port" ] && break; sleep 0.1; done
  [ -s "$W/$name.port" ] || { fail "server $name did not start: $(tail -c 300 "$W/$name.log")"; finish; }
  printf -v "BASE_$name" 'http://127.0.0.1:%s' "$(cat "$W/$name.port")"
}
start_proxy() { # NAME TARGET_BASE ARGS... -> sets PROXY_<NAME>, log $W/NAME.proxy.log
  local name=$1 target=${2#http://}; shift 2
  python3 "$VIDQ_SRC/tests/support/drop_proxy.py" --target "$target" --port-file "$W/$name.pport" \
    --log "$W/$name.proxy.log" "$@" 2>"$W/$name.proxy.err" &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$W/$name.pport" ] && break; sleep 0.1; done
  [ -s "$W/$name.pport" ] || { fail "proxy $name did not start: $(cat "$W/$name.proxy.err")"; finish; }
  printf -v "PROXY_$name" 'http://127.0.0.1:%s' "$(cat "$W/$name.pport")"
}
submit() { # ARGS...: run vidq submit, stdout/stderr in $T/out.txt $T/err.txt, exit code in RC
  RC=0
  timeout -k 5 180 "$VIDQ_BIN" submit "$@" >"$T/out.txt" 2>"$T/err.txt" || RC=$?
}
last_job() { tail -n 1 "$T/out.txt"; }

start_server main --max-concurrent 1
start_server keyed --api-key sekrit

# --- 1. upload, wait, download: mp4 + hls + sprite
D=$T/dl
submit "$IN" --server "$BASE_main" --preset mp4-480p --preset hls --preset thumbnails-sprite \
  --metadata '{"who":"test"}' --wait --download "$D"
[ "$RC" = 0 ] || fail "submit --wait --download: exit $RC: $(cat "$T/err.txt")"
job=$(last_job)
[ "$(jq -r .status <<<"$job")" = succeeded ] || fail "the last stdout line is not the succeeded job: ${job:0:300}"
[ "$(jq -r .metadata.who <<<"$job")" = test ] || fail "--metadata not echoed"
ID1=$(jq -r .id <<<"$job")
v=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,height -of csv=p=0 "$D/mp4-480p.mp4" 2>&1 || true)
[ "$v" = "h264,360" ] || fail "downloaded mp4-480p.mp4: ffprobe says '$v'"
[ "$(stat -c %s "$D/mp4-480p.mp4")" = "$(jq -r '.outputs[] | select(.name=="mp4-480p") | .size' <<<"$job")" ] || fail "mp4 size differs from the job's"
[ -f "$D/hls/master.m3u8" ] || fail "no hls/master.m3u8"
nseg=$(find "$D/hls" -name '*.ts' | wc -l)
[ "$nseg" -ge 3 ] || fail "hls: only $nseg segments downloaded"
d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$D/hls/master.m3u8" 2>/dev/null || true)
fcmp "${d:-0}" '>' 1.5 || fail "the downloaded HLS folder does not play (duration '$d')"
[ -f "$D/thumbnails-sprite/thumbnails.vtt" ] && [ -f "$D/thumbnails-sprite/sheet-0000.jpg" ] || fail "sprite folder incomplete: $(ls -R "$D/thumbnails-sprite" 2>&1)"
find "$D" -name '*.part' | grep -q . && fail "a .part file was left"
grep -q '^upload: 100% ' "$T/err.txt" || fail "no plain upload line on a non-terminal: $(head -c 300 "$T/err.txt")"
grep -q "^job $ID1: succeeded" "$T/err.txt" || fail "no plain job line"
grep -q '^downloaded .*mp4-480p.mp4' "$T/err.txt" || fail "no download line"
note "upload+wait+download ok ($ID1)"

# --- 2. --progress json: every stdout line JSON, the last the job
submit "$IN" --server "$BASE_main" --preset thumbnail --wait --progress json
[ "$RC" = 0 ] || fail "--progress json: exit $RC: $(cat "$T/err.txt")"
jq -e . "$T/out.txt" >/dev/null 2>&1 || fail "--progress json: a stdout line is not JSON"
grep -q '"phase":"upload"' "$T/out.txt" || fail "--progress json: no upload line"
grep -q '"phase":"job"' "$T/out.txt" || fail "--progress json: no job line"
[ "$(last_job | jq -r .status)" = succeeded ] || fail "--progress json: last line not the job"
[ -s "$T/err.txt" ] && fail "--progress json wrote to stderr: $(head -c 200 "$T/err.txt")"

# --- 3. the bars on a terminal (script gives a pty)
script -qec "'$VIDQ_BIN' submit '$IN' --server '$BASE_main' --preset thumbnail --wait" /dev/null > "$T/tty.txt" 2>&1 || true
grep -q $'\rupload \\[#' "$T/tty.txt" || fail "no upload bar on a terminal: $(head -c 300 "$T/tty.txt" | cat -v)"
grep -q $'\rjob    \\[' "$T/tty.txt" || fail "no job bar on a terminal"

# --- 4. a job that fails: not media (refused when the last byte lands)
head -c 300000 /dev/urandom > "$T/noise.mp4"
submit "$T/noise.mp4" --server "$BASE_main" --wait
[ "$RC" = 1 ] || fail "non-media: exit $RC, want 1"
grep -q '^vidq: unsupported_media: job .* failed: ' "$T/err.txt" || fail "non-media: stderr: $(tail -2 "$T/err.txt")"
[ "$(last_job | jq -r .status)" = failed ] || fail "non-media: the job on stdout is not failed"
# an output that does not fit the input
submit "$M/video_only.mp4" --server "$BASE_main" --preset audio-m4a
[ "$RC" = 1 ] || fail "audio-m4a of a silent video: exit $RC, want 1: $(cat "$T/err.txt")"
grep -q '^vidq: invalid_output: ' "$T/err.txt" || fail "audio-m4a of a silent video: $(tail -1 "$T/err.txt")"

# --- 5. a job that fails while running (timeout) and one canceled
start_server slow --job-timeout 1
submit "$M/h264_aac_640x360_10s.mp4" --server "$BASE_slow" --preset webm-720p --preset hevc-1080p --wait
[ "$RC" = 1 ] || fail "timed-out job: exit $RC, want 1: $(tail -2 "$T/err.txt")"
grep -q '^vidq: timeout: job .* failed' "$T/err.txt" || fail "timed-out job: $(tail -1 "$T/err.txt")"
timeout 120 "$VIDQ_BIN" submit "$M/h264_aac_640x360_10s.mp4" --server "$BASE_main" --preset hevc-1080p \
  --wait --progress json > "$T/c.out" 2>"$T/c.err" &
CP=$!
cid=
for _ in $(seq 200); do
  cid=$(grep -o '"phase":"job","id":"[^"]*","status":"running"' "$T/c.out" 2>/dev/null | head -1 | sed 's/.*"id":"\([^"]*\)".*/\1/' || true)
  [ -n "$cid" ] && break; sleep 0.1
done
[ -n "$cid" ] || fail "the job to cancel never ran"
[ -n "$cid" ] && curl -s -o /dev/null -X POST "$BASE_main/v1/jobs/$cid/cancel"
rc=0; wait "$CP" || rc=$?
[ "$rc" = 1 ] || fail "canceled job: exit $rc, want 1"
grep -q "job $cid canceled" "$T/c.err" || fail "canceled job: $(cat "$T/c.err")"

# --- 6. server down: exit 3 after the retries, one line
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
t0=$(date +%s.%N)
submit "$IN" --server "http://127.0.0.1:$port"
t1=$(date +%s.%N)
[ "$RC" = 3 ] || fail "server down: exit $RC, want 3"
[ "$(grep -c '^vidq: server_unreachable: ' "$T/err.txt")" = 1 ] || fail "server down: stderr: $(cat "$T/err.txt")"
[ "$(grep -c '^create: retrying' "$T/err.txt")" = 3 ] || fail "server down: want 3 retries: $(cat "$T/err.txt")"
fcmp "$(echo "$t1 - $t0" | bc)" '>=' 3.4 || fail "server down: the retries did not back off (0.5+1+2 s)"

# --- 7. a dropped connection mid-upload is resumed, not restarted. The
# server may hold the cut PATCH until it notices the connection is gone
# (the client waits out its 423): a short --connection-timeout bounds that.
start_server drop --connection-timeout 5
size=$(stat -c %s "$IN")
start_proxy drop "$BASE_drop" --drop-patch-after 200000
submit "$IN" --server "$PROXY_drop" --preset mp4-480p --wait --download "$T/dl2"
[ "$RC" = 0 ] || fail "dropped upload: exit $RC: $(cat "$T/err.txt")"
L=$W/drop.proxy.log
jq -s -e 'map(select(.method=="PATCH" and .dropped)) | length == 1' "$L" >/dev/null || fail "the proxy did not drop a PATCH: $(cat "$L")"
jq -s -e '(map(.dropped) | index(true)) as $d | $d != null and ([.[$d:][] | select(.method=="HEAD")] | length >= 1)' "$L" >/dev/null || fail "no HEAD after the drop: $(cat "$L")"
last=$(jq -s -c '[.[] | select(.method=="PATCH")] | last' "$L")
resumed=$(jq -r .upload_offset <<<"$last")
[ "$resumed" -gt 0 ] && [ "$((resumed + $(jq -r .content_length <<<"$last")))" = "$size" ] || fail "the upload was not completed from a resume point: last PATCH $last"
grep -q "^upload: resuming at $resumed bytes" "$T/err.txt" || fail "no resume line at $resumed: $(cat "$T/err.txt")"
grep -q "interrupted at [1-9][0-9]* bytes" "$W/drop.log" || fail "the server did not keep the bytes of the cut PATCH"
[ "$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name -of csv=p=0 "$T/dl2/mp4-480p.mp4" 2>&1)" = h264 ] || fail "dropped upload: the download is not h264"
note "dropped PATCH resumed at byte $resumed of $size"

# --- 8. every PATCH dropped: the retries run out, exit 3
start_proxy every "$BASE_drop" --drop-every --drop-patch-after 1000
submit "$IN" --server "$PROXY_every" --chunk-size 65536
[ "$RC" = 3 ] || fail "every PATCH dropped: exit $RC, want 3: $(tail -2 "$T/err.txt")"
grep -q '^vidq: server_unreachable: ' "$T/err.txt" || fail "every PATCH dropped: $(tail -1 "$T/err.txt")"
n=$(jq -s '[.[] | select(.method=="PATCH" and .dropped)] | length' "$W/every.proxy.log")
[ "$n" -ge 4 ] && [ "$n" -le 20 ] || fail "every PATCH dropped: $n PATCH requests, want 1 + 3 retries (plus any refused as locked)"
[ "$(ls "$T/cache/vidq/uploads" 2>/dev/null | wc -l)" = 1 ] || fail "the given-up upload's URL was not kept for a later run"

# --- 9. an interrupted download resumes with Range (--job: no upload)
full=$T/dl/mp4-480p.mp4
mkdir -p "$T/dl3"
head -c 50000 "$full" > "$T/dl3/mp4-480p.mp4.part"
start_proxy log "$BASE_main"
submit --job "$ID1" --server "$PROXY_log" --download "$T/dl3"
[ "$RC" = 0 ] || fail "--job --download: exit $RC: $(cat "$T/err.txt")"
cmp -s "$full" "$T/dl3/mp4-480p.mp4" || fail "the resumed download differs from the first"
jq -s -e 'map(select(.path | endswith("/outputs/mp4-480p"))) | .[0].range == "bytes=50000-"' "$W/log.proxy.log" >/dev/null || fail "the download did not resume with Range: $(cat "$W/log.proxy.log")"
[ -e "$T/dl3/mp4-480p.mp4.part" ] && fail "the .part was left"

# --- 10. API key
submit "$IN" --server "$BASE_keyed" --preset thumbnail
[ "$RC" = 1 ] || fail "no key: exit $RC, want 1"
grep -q '^vidq: unauthorized: ' "$T/err.txt" || fail "no key: $(cat "$T/err.txt")"
VIDQ_API_KEY=sekrit submit "$IN" --server "$BASE_keyed" --preset thumbnail --wait
[ "$RC" = 0 ] || fail "VIDQ_API_KEY: exit $RC: $(cat "$T/err.txt")"
submit "$IN" --server "$BASE_keyed" --api-key sekrit --preset thumbnail
[ "$RC" = 0 ] || fail "--api-key: exit $RC: $(cat "$T/err.txt")"

# --- 11. a URL is sent as input_url; the server's answer is reported
start_proxy url "$BASE_main"
submit "http://127.0.0.1:9/clip.mp4" --server "$PROXY_url" --preset mp4-480p
jq -s -e 'map(select(.method=="POST" and .path=="/v1/jobs")) | length == 1' "$W/url.proxy.log" >/dev/null || fail "the URL was not POSTed to /v1/jobs"
if [ "$RC" = 0 ]; then
  [ "$(last_job | jq -r .input.url)" = "http://127.0.0.1:9/clip.mp4" ] || fail "input_url accepted but not in the job"
else
  [ "$RC" = 1 ] || fail "URL input: exit $RC, want 1 (refused) or 0"
  grep -q '^vidq: [a-z_]*: submitting http://127.0.0.1:9/clip.mp4 as input_url: /v1/jobs: the server answered 4[0-9][0-9]: ' "$T/err.txt" || fail "URL input: $(cat "$T/err.txt")"
fi

# --- 12. interrupted (SIGINT: exit 130), then the same command resumes
# the upload where the server has it (its URL kept in XDG_CACHE_HOME)
cp "$M/h264_aac_640x360_10s.mp4" "$T/ten.mp4"
export XDG_CACHE_HOME=$T/cache12   # (case 8's given-up upload is in $T/cache)
start_proxy slow "$BASE_main" --delay-ms 40
"$VIDQ_BIN" submit "$T/ten.mp4" --server "$PROXY_slow" --chunk-size 65536 >"$T/i.out" 2>"$T/i.err" &
SP=$!
for _ in $(seq 300); do grep -q '^upload: 20%' "$T/i.err" 2>/dev/null && break; sleep 0.05; done
kill -INT "$SP"; rc=0; wait "$SP" || rc=$?
[ "$rc" = 130 ] || fail "SIGINT: exit $rc, want 130: $(cat "$T/i.err")"
grep -q '^vidq: interrupted: .*run the same command again' "$T/i.err" || fail "SIGINT: $(tail -1 "$T/i.err")"
[ "$(ls "$T/cache12/vidq/uploads" 2>/dev/null | wc -l)" = 1 ] || fail "no state kept for the interrupted upload"
submit "$T/ten.mp4" --server "$PROXY_slow" --chunk-size 65536 --preset thumbnail --wait
# a different --preset is another upload: not resumed
grep -q 'resuming an earlier upload' "$T/err.txt" && fail "an upload with other options was resumed"
submit "$T/ten.mp4" --server "$PROXY_slow" --chunk-size 65536 --wait
[ "$RC" = 0 ] || fail "rerun after SIGINT: exit $RC: $(tail -2 "$T/err.txt")"
at=$(sed -n 's/^upload: resuming an earlier upload at \([0-9]*\) bytes.*/\1/p' "$T/err.txt")
[ -n "$at" ] && [ "$at" -gt 0 ] || fail "the rerun did not resume: $(head -3 "$T/err.txt")"
[ "$(jq -s '[.[] | select(.method=="POST")] | length' "$W/slow.proxy.log")" = 2 ] || fail "want 2 creations (the interrupted upload, the thumbnail one): $(jq -c 'select(.method=="POST")' "$W/slow.proxy.log")"
[ "$(last_job | jq -r .status)" = succeeded ] || fail "the resumed upload's job did not succeed"
[ "$(ls "$T/cache12/vidq/uploads" | wc -l)" = 0 ] || fail "state left after the uploads finished: $(ls "$T/cache12/vidq/uploads")"
note "interrupted upload resumed by the next run at byte $at"

# --- 13. bad command lines: exit 2, one line, nothing sent
expect_usage() { # CTX ARGS...
  local ctx=$1; shift
  RC=0; timeout 20 "$VIDQ_BIN" submit "$@" >"$T/out.txt" 2>"$T/err.txt" || RC=$?
  expect_error "$ctx" 2 bad_request
}
expect_usage "no input"
expect_usage "unknown flag" "$IN" --frobnicate 1
expect_usage "missing value" "$IN" --server
expect_usage "bad clip" "$IN" --clip 5-2
expect_usage "bad clip text" "$IN" --clip abc
expect_usage "outputs not an array" "$IN" --outputs '{"name":"x"}'
expect_usage "outputs not JSON" "$IN" --outputs '[{'
expect_usage "metadata not an object" "$IN" --metadata '[1]'
expect_usage "bad server" "$IN" --server ftp://x
expect_usage "ftp input" ftp://host/x.mp4
expect_usage "two inputs" "$IN" "$IN"
expect_usage "bad progress" "$IN" --progress fancy
expect_usage "bad chunk" "$IN" --chunk-size 10
expect_usage "file and --job" "$IN" --job abc
submit "$T/missing.mp4" --server "$BASE_main"
[ "$RC" = 1 ] && grep -q '^vidq: bad_request: cannot read ' "$T/err.txt" || fail "missing file: exit $RC: $(cat "$T/err.txt")"
submit --job AAAAAAAAAAAAAAAAAAAAAA --server "$BASE_main"
[ "$RC" = 1 ] && grep -q '^vidq: not_found: ' "$T/err.txt" || fail "unknown --job: exit $RC: $(cat "$T/err.txt")"

[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE_main/healthz")" = 200 ] || fail "the server stopped serving"
finish
