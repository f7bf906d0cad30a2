#!/usr/bin/env bash
# The hls preset: one pass, a ladder of H.264 rungs up to the source's
# shorter side, aligned keyframes, TS segments, master.m3u8 (check_hls in
# lib_cli.sh does the ffprobe checks). CLI: a 360p source (one rung), a 720p
# 3 s source (three rungs), an audio-only source (refused, nothing left),
# an output directory that exists and is not empty (refused, kept intact).
# Service: upload with preset=hls, fetch master.m3u8, a media playlist and a
# segment over HTTP with their Content-Types; a traversal is refused.
# ctest-labels: cli
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

in360=$VIDQ_MEDIA/h264_aac_640x360.mp4
note "360p source -> hls (one rung)"
run_vidq transcode "$in360" "$T/h360" --preset hls --progress none
if [ "$RC" -ne 0 ]; then fail "360p -> hls: exit $RC: $(cat "$T/err.txt")"
else
  [ -e "$T/h360.part" ] && fail "360p -> hls: h360.part left after success"
  check_hls "360p -> hls" "$in360" "$T/h360"
  n=$(ls "$T"/h360/360p/*.ts | wc -l)
  [ "$n" -ge 2 ] || fail "360p -> hls: $n segments, want several for a short clip"
fi

in720=$T/src720.mp4
ffmpeg -v error -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=3" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=3" \
  -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$in720"
note "720p 3 s source -> hls (720p, 480p, 360p)"
run_vidq transcode "$in720" "$T/h720" --preset hls --progress none
if [ "$RC" -ne 0 ]; then fail "720p -> hls: exit $RC: $(cat "$T/err.txt")"
else
  check_hls "720p -> hls" "$in720" "$T/h720"
  grep -c '^#EXT-X-STREAM-INF' "$T/h720/master.m3u8" | grep -qx 3 || fail "720p -> hls: want 3 variants"
  # Bandwidths go down the ladder.
  bws=$(grep -o 'BANDWIDTH=[0-9]*' "$T/h720/master.m3u8" | cut -d= -f2 | tr '\n' ' ')
  [ "$(tr ' ' '\n' <<<"$bws" | grep . | sort -rn | tr '\n' ' ')" = "$bws" ] || fail "720p -> hls: BANDWIDTH not descending: $bws"
fi

note "audio-only source -> hls: refused"
run_vidq transcode "$VIDQ_MEDIA/audio_only.mp3" "$T/haudio" --preset hls --progress none
expect_error "audio-only -> hls" 1 "invalid_output|unsupported_media"
expect_no_output "audio-only -> hls" "$T/haudio"

note "existing non-empty output directory: refused, left intact"
mkdir -p "$T/busy"; echo keep >"$T/busy/keep.txt"
run_vidq transcode "$in360" "$T/busy" --preset hls --progress none
[ "$RC" -ne 0 ] || fail "hls into a non-empty directory: exit 0"
[ -s "$T/busy/keep.txt" ] || fail "hls into a non-empty directory: its file is gone"
[ -e "$T/busy.part" ] && fail "hls into a non-empty directory: busy.part left"

# ---- service
note "service: upload preset=hls, download over HTTP"
W=$T/svc; D=$W/data; mkdir -p "$W"
PID=
stop_server() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=; }
trap 'stop_server; lib_cleanup' EXIT
"$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$D" --port-file "$W/port" \
  --max-concurrent 1 >"$W/server.out" 2>"$W/server.log" &
PID=$!
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.1; done
if [ ! -s "$W/port" ]; then fail "server did not start: $(tail -c 300 "$W/server.log")"; finish; fi
BASE=http://127.0.0.1:$(cat "$W/port")
code=$(curl -s -o "$W/up.json" -w '%{http_code}' -F "file=@$in720" -F preset=hls "$BASE/v1/jobs")
[ "$code" = 201 ] || [ "$code" = 202 ] || [ "$code" = 200 ] || fail "upload: HTTP $code $(head -c 300 "$W/up.json")"
ID=$(jq -r '.id // .job.id // empty' "$W/up.json")
[ -n "$ID" ] || { fail "upload: no job id in $(head -c 300 "$W/up.json")"; stop_server; finish; }
st=
for _ in $(seq 600); do
  curl -s "$BASE/v1/jobs/$ID" >"$W/job.json" || true
  st=$(jq -r '.status // empty' "$W/job.json")
  case "$st" in succeeded|failed|canceled) break ;; esac
  sleep 0.1
done
[ "$st" = succeeded ] || fail "hls job: status '$st': $(head -c 400 "$W/job.json")"
if [ "$st" = succeeded ]; then
  name=$(jq -r '.outputs[0].name' "$W/job.json")
  O=$BASE/v1/jobs/$ID/outputs/$name
  mkdir -p "$W/dl"
  get() { # get PATH FILE -> "code content-type"
    curl -s -o "$2" -D "$2.h" -w '%{http_code}' "$O$1" >"$2.code" || true
    echo "$(cat "$2.code") $(grep -i '^content-type:' "$2.h" | head -n 1 | cut -d' ' -f2- | tr -d '\r')"
  }
  r=$(get /master.m3u8 "$W/dl/master.m3u8")
  [ "$r" = "200 application/vnd.apple.mpegurl" ] || fail "GET master.m3u8: '$r'"
  uri=$(grep -v '^#' "$W/dl/master.m3u8" | head -n 1)
  [ -n "$uri" ] || fail "downloaded master.m3u8 names no variant"
  r=$(get "/$uri" "$W/dl/media.m3u8")
  [ "$r" = "200 application/vnd.apple.mpegurl" ] || fail "GET $uri: '$r'"
  seg=$(grep -v '^#' "$W/dl/media.m3u8" | head -n 1)
  r=$(get "/${uri%/*}/$seg" "$W/dl/seg.ts")
  [ "$r" = "200 video/mp2t" ] || fail "GET ${uri%/*}/$seg: '$r'"
  s=$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$W/dl/seg.ts" | awk NF | sort -u | tr '\n' ' ')
  [ "$s" = "aac h264 " ] || fail "downloaded segment streams '$s'"
  for bad in "/../../jobs.db" "/..%2F..%2Fserver.log" "/%2e%2e/%2e%2e/x" "/${uri%/*}/../../../x"; do
    code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$O$bad")
    [ "$code" = 404 ] || [ "$code" = 400 ] || fail "GET $bad: HTTP $code, want 404/400"
  done
  code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/jobs/$ID")
  [ "$code" = 200 ] || fail "server stopped serving after the traversal attempts: $code"
fi
stop_server
finish
