#!/usr/bin/env bash
# The hls preset: one pass, a ladder of H.264 rungs up to the source's
# shorter side, aligned keyframes, TS segments, the audio once in its own
# group, master.m3u8 (check_hls in lib_cli.sh does the ffprobe checks).
# CLI: a 360p source (one rung), a 720p 3 s source (three rungs), the same
# with fMP4 2 s segments, a rotated 720p source (each rung's pictures match
# ffmpeg's direct downscale: the cascade from rung to rung is right), a
# source whose size changes mid-way (every rung keeps its size), HEVC
# (fMP4, hvc1), a video-only source (no audio group), an audio-only source
# (one audio variant), an output directory
# that exists and is not empty (refused, kept intact), bad segment options
# (refused with the field named). Service: upload with preset=hls plus an
# fMP4 output, fetch master.m3u8, the playlists, a video and an audio
# segment and init.mp4 over HTTP with their Content-Types; a traversal is
# refused; bad segment options are 400 invalid_output.
# Each run's description (the CLI's {"outputs": [...]}, the job's outputs,
# the job.succeeded webhook) is checked against the files by
# check_hls_result: size, duration, and per variant its URL, bandwidths,
# codecs, video and audio as ffprobe sees them.
# ctest-labels: cli
# ctest-timeout: 300
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

# result FILE: the CLI's description of its first output (last stdout line).
result() { tail -n 1 "$T/out.txt" | jq '.outputs[0]' >"$1" || true; }

in360=$VIDQ_MEDIA/h264_aac_640x360.mp4
note "360p source -> hls (one rung)"
run_vidq transcode "$in360" "$T/h360" --preset hls --progress json
if [ "$RC" -ne 0 ]; then fail "360p -> hls: exit $RC: $(cat "$T/err.txt")"
else
  [ -e "$T/h360.part" ] && fail "360p -> hls: h360.part left after success"
  check_hls "360p -> hls" "$in360" "$T/h360"
  result "$T/h360.json"
  check_hls_result "360p -> hls" "$T/h360" "$T/h360.json"
  jq -e '[.renditions[] | .path] == ["'"$T"'/h360/360p/index.m3u8"]' "$T/h360.json" >/dev/null ||
    fail "360p -> hls: rendition paths $(jq -c '[.renditions[].path]' "$T/h360.json")"
  n=$(ls "$T"/h360/360p/*.ts | wc -l)
  [ "$n" -ge 2 ] || fail "360p -> hls: $n segments, want several for a short clip"
fi

in720=$T/src720.mp4
ffmpeg -v error -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=3" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=3" \
  -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$in720"
note "720p 3 s source -> hls (720p, 480p, 360p)"
run_vidq transcode "$in720" "$T/h720" --preset hls --progress json
if [ "$RC" -ne 0 ]; then fail "720p -> hls: exit $RC: $(cat "$T/err.txt")"
else
  check_hls "720p -> hls" "$in720" "$T/h720"
  result "$T/h720.json"
  check_hls_result "720p -> hls" "$T/h720" "$T/h720.json"
  [ "$(jq -c '[.renditions[].name], .video.height' "$T/h720.json" | tr '\n' ' ')" = '["720p","480p","360p"] 720 ' ] ||
    fail "720p -> hls: renditions $(jq -c '[.renditions[].name]' "$T/h720.json"), top video $(jq -c .video "$T/h720.json")"
  grep -c '^#EXT-X-STREAM-INF' "$T/h720/master.m3u8" | grep -qx 3 || fail "720p -> hls: want 3 variants"
  # Bandwidths go down the ladder.
  bws=$(grep -o 'BANDWIDTH=[0-9]*' "$T/h720/master.m3u8" | cut -d= -f2 | tr '\n' ' ')
  [ "$(tr ' ' '\n' <<<"$bws" | grep . | sort -rn | tr '\n' ' ')" = "$bws" ] || fail "720p -> hls: BANDWIDTH not descending: $bws"
fi

note "720p 3 s source -> hls, fMP4 segments of 2 s"
run_vidq transcode "$in720" "$T/f720" --progress json \
  --output '{"name":"f","preset":"hls","segment_format":"fmp4","segment_seconds":2}'
if [ "$RC" -ne 0 ]; then fail "720p -> hls fmp4: exit $RC: $(cat "$T/err.txt")"
else
  check_hls "720p -> hls fmp4" "$in720" "$T/f720"
  result "$T/f720.json"
  check_hls_result "720p -> hls fmp4" "$T/f720" "$T/f720.json"
  for pl in "$T"/f720/*/index.m3u8; do
    grep -q '^#EXT-X-MAP:URI="init.mp4"' "$pl" || fail "fmp4: $pl has no EXT-X-MAP"
    grep -q '^#EXT-X-TARGETDURATION:2$' "$pl" || fail "fmp4: $pl target duration is not 2"
    ls "${pl%/*}"/*.ts >/dev/null 2>&1 && fail "fmp4: TS segments in ${pl%/*}"
    # Every segment but the last is 2 s long.
    grep '^#EXTINF:' "$pl" | head -n -1 | cut -d: -f2 | cut -d, -f1 |
      awk '{ if ($1 < 1.9 || $1 > 2.1) bad = 1 } END { exit bad }' || fail "fmp4: $pl segments are not 2 s: $(grep '^#EXTINF' "$pl" | tr '\n' ' ')"
  done
  grep -q '^#EXT-X-VERSION:7$' "$T/f720/master.m3u8" || fail "fmp4: master.m3u8 version is not 7"
fi

note "rotated 720p source -> hls: every rung (each scaled from the rung above) is the source's picture"
# rotated90.mp4: 1280x720 coded, displayed 720x1280: rungs 720, 480, 360
# (portrait). The 480 and 360 rungs are scaled from the rung above, which
# was rotated already: each rung's frames must match ffmpeg's own direct
# downscale of the (auto-rotated) source, frame for frame.
rot=$VIDQ_MEDIA/rotated90.mp4
frames_of() {
  ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
    -of default=nw=1:nk=1 "$1" </dev/null | awk '/^[0-9]+$/ && !n { print; n = 1 }'
}
run_vidq transcode "$rot" "$T/hrot" --preset hls --progress none
if [ "$RC" -ne 0 ]; then fail "rotated -> hls: exit $RC: $(cat "$T/err.txt")"
else
  check_hls "rotated -> hls" "$rot" "$T/hrot"
  for r in 720p:720x1280 480p:480x854 360p:360x640; do
    name=${r%%:*} size=${r#*:}
    n=$(frames_of "$T/hrot/$name/index.m3u8") want=$(frames_of "$rot")
    [ "$n" = "$want" ] || fail "rotated -> hls: $name has $n frames, the source $want"
    ssim=$(ffmpeg -nostdin -i "$T/hrot/$name/index.m3u8" -i "$rot" -lavfi \
      "[0:v]setpts=PTS-STARTPTS[a];[1:v]scale=${size/x/:}:flags=lanczos,setpts=PTS-STARTPTS[b];[a][b]ssim" \
      -f null - 2>&1 | sed -n 's/.*SSIM.* All:\([0-9.]*\).*/\1/p')
    awk -v s="${ssim:-0}" 'BEGIN { exit !(s >= 0.9) }' ||
      fail "rotated -> hls: $name SSIM against ffmpeg's downscale of the source is '${ssim}' (want >= 0.9: wrong picture?)"
  done
fi

note "a source whose picture size changes mid-way (720p then 360p pieces joined) -> hls and mp4"
# The decoder's frames change size half-way: the top rung's chain is
# rebuilt, the rungs below it keep taking its (constant-size) pictures.
ff_piece() { ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=$1:rate=25:duration=1" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=1" -c:v libx264 -preset ultrafast \
  -pix_fmt yuv420p -c:a aac -shortest "${@:3}" -f mpegts "$2"; }
ff_piece 1280x720 "$T/p1.ts" && ff_piece 640x360 "$T/p2.ts" -output_ts_offset 1
cat "$T/p1.ts" "$T/p2.ts" >"$T/sizes.ts"
sizes_of() { # FILE -> the distinct WxH of its decoded video frames
  ffprobe -v error -select_streams v:0 -show_entries frame=width,height -of csv=p=0 "$1" </dev/null |
    awk -F, 'NF >= 2 { print $1 "," $2 }' | sort -u | tr '\n' ' '
}
run_vidq transcode "$T/sizes.ts" "$T/hsizes" --preset hls --progress none
if [ "$RC" -ne 0 ]; then fail "size change -> hls: exit $RC: $(cat "$T/err.txt")"
else
  for r in 720p:1280,720 480p:854,480 360p:640,360; do
    name=${r%%:*}
    got=$(sizes_of "$T/hsizes/$name/index.m3u8")
    [ "$got" = "${r#*:} " ] || fail "size change -> hls: $name frames are '$got', want '${r#*:}' throughout"
    n=$(frames_of "$T/hsizes/$name/index.m3u8")
    [ "$n" = 50 ] || fail "size change -> hls: $name has $n frames, want 50"
    # Decoded by ffprobe (the pieces meet 19 ms apart, as in the source,
    # which ffmpeg's null muxer would round onto one 1/25 s slot and call
    # non-monotonic).
    ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
      "$T/hsizes/$name/index.m3u8" </dev/null >/dev/null 2>"$T/dec.err"
    if [ -s "$T/dec.err" ]; then fail "size change -> hls: $name decode errors: $(head -c 200 "$T/dec.err")"; fi
  done
fi
run_vidq transcode "$T/sizes.ts" "$T/sizes.mp4" --progress none \
  --output '{"name":"o","preset":"mp4-720p","auto_copy":false}'
if [ "$RC" -ne 0 ]; then fail "size change -> mp4: exit $RC: $(cat "$T/err.txt")"
else
  got=$(sizes_of "$T/sizes.mp4")
  [ "$got" = "1280,720 " ] || fail "size change -> mp4: frames are '$got', want 1280x720 throughout"
  [ "$(frames_of "$T/sizes.mp4")" = 50 ] || fail "size change -> mp4: $(frames_of "$T/sizes.mp4") frames, want 50"
fi

note "HEVC in HLS: fMP4, tagged hvc1, aligned keyframes"
run_vidq transcode "$in360" "$T/hevc" --progress json --output '{"name":"hv","preset":"hls","video":{"codec":"hevc"}}'
if [ "$RC" -ne 0 ]; then fail "360p -> hls hevc: exit $RC: $(cat "$T/err.txt")"
else
  check_hls "360p -> hls hevc" "$in360" "$T/hevc" hevc
  result "$T/hevc.json"
  check_hls_result "360p -> hls hevc" "$T/hevc" "$T/hevc.json"
  jq -e '.video.codec == "hevc" and .video.profile == "Main" and (.renditions[0].codecs | startswith("hvc1."))' "$T/hevc.json" >/dev/null ||
    fail "hevc: described as $(jq -c '[.video, .renditions[0].codecs]' "$T/hevc.json")"
  grep -q '^#EXT-X-MAP:' "$T/hevc/360p/index.m3u8" || fail "hevc: no EXT-X-MAP (not fMP4)"
  tag=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_tag_string -of csv=p=0 "$T/hevc/360p/init.mp4")
  [ "$tag" = hvc1 ] || fail "hevc: init.mp4 tagged '$tag', want hvc1"
fi

note "video-only source -> hls: no audio group"
run_vidq transcode "$VIDQ_MEDIA/video_only.mp4" "$T/vonly" --preset hls --progress json
if [ "$RC" -ne 0 ]; then fail "video-only -> hls: exit $RC: $(cat "$T/err.txt")"
else
  check_hls "video-only -> hls" "$VIDQ_MEDIA/video_only.mp4" "$T/vonly"
  result "$T/vonly.json"
  check_hls_result "video-only -> hls" "$T/vonly" "$T/vonly.json"
  jq -e '.audio == null and ([.renditions[].audio] | all(. == null))' "$T/vonly.json" >/dev/null ||
    fail "video-only -> hls: audio described: $(jq -c '[.audio, .renditions[].audio]' "$T/vonly.json")"
fi

note "bad segment options: refused, field named, nothing written"
BAD_SPECS=(
  'segment_seconds|{"name":"b","preset":"hls","segment_seconds":1}'
  'segment_seconds|{"name":"b","preset":"hls","segment_seconds":11}'
  'segment_seconds|{"name":"b","preset":"hls","segment_seconds":"4"}'
  'segment_format|{"name":"b","preset":"hls","segment_format":"mp4"}'
  'segment_format|{"name":"b","preset":"hls","segment_format":"ts","video":{"codec":"hevc"}}'
  'segment_format|{"name":"b","preset":"mp4-720p","segment_format":"fmp4"}'
  'segment_seconds|{"name":"b","preset":"mp4-720p","segment_seconds":4}'
)
for b in "${BAD_SPECS[@]}"; do
  field=${b%%|*}; spec=${b#*|}
  run_vidq transcode "$in360" "$T/bad" --progress none --output "$spec"
  expect_error "bad spec $spec" 2 invalid_output
  grep -q "$field" "$T/err.txt" || fail "bad spec $spec: message does not name $field: $(cat "$T/err.txt")"
  expect_no_output "bad spec $spec" "$T/bad"
done

note "audio-only source -> hls: the audio rendition is the one variant"
run_vidq transcode "$VIDQ_MEDIA/audio_only.mp3" "$T/haudio" --preset hls --progress json
if [ "$RC" -ne 0 ]; then fail "audio-only -> hls: exit $RC: $(cat "$T/err.txt")"
else
  check_hls_audio "audio-only -> hls" "$T/haudio"
  result "$T/haudio.json"
  check_hls_result "audio-only -> hls" "$T/haudio" "$T/haudio.json"
  jq -e '.video == null and .audio.codec == "aac" and ([.renditions[].name] == ["audio"])' "$T/haudio.json" >/dev/null ||
    fail "audio-only -> hls: described as $(jq -c '[.video, .audio, [.renditions[].name]]' "$T/haudio.json")"
fi
note "a spec without audio of an audio-only source: refused, nothing left"
run_vidq transcode "$VIDQ_MEDIA/audio_only.mp3" "$T/hnone" --output '{"name":"n","preset":"hls","audio":null}' --progress none
expect_error "audio-only -> hls without audio" 1 "invalid_output"
expect_no_output "audio-only -> hls without audio" "$T/hnone"

note "existing non-empty output directory: refused, left intact"
mkdir -p "$T/busy"; echo keep >"$T/busy/keep.txt"
run_vidq transcode "$in360" "$T/busy" --preset hls --progress none
[ "$RC" -ne 0 ] || fail "hls into a non-empty directory: exit 0"
[ -s "$T/busy/keep.txt" ] || fail "hls into a non-empty directory: its file is gone"
[ -e "$T/busy.part" ] && fail "hls into a non-empty directory: busy.part left"

# ---- service
note "service: upload preset=hls, download over HTTP"
W=$T/svc; D=$W/data; mkdir -p "$W"
[ -d "$VIDQ_SRC/tests/support/node_modules/standardwebhooks" ] || {
  fail "the webhook receiver needs node packages: run tests/support/setup.sh"; finish; }
RPID=
trap '[ -n "$RPID" ] && kill "$RPID" 2>/dev/null; lib_cleanup' EXIT
SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
coproc RECV { exec node "$VIDQ_SRC/tests/support/webhook_receiver.js" --secret "$SECRET" --log "$W/hooks.jsonl" --max-seconds 280; }
RPID=$RECV_PID
read -r -t 20 RPORT <&"${RECV[0]}" || true
[[ "$RPORT" =~ ^[0-9]+$ ]] || { fail "webhook receiver did not start"; finish; }
start_server "$W" "$D" --max-concurrent 1 --webhook-secret "$SECRET" || finish
OUTS='[{"preset":"hls"},{"name":"f4","preset":"hls","segment_format":"fmp4","segment_seconds":2}]'
code=$(curl -s -o "$W/up.json" -w '%{http_code}' -F "file=@$in720" -F "outputs=$OUTS" \
  -F "webhook_url=http://127.0.0.1:$RPORT/hook" "$BASE/v1/jobs")
[ "$code" = 202 ] || fail "upload: HTTP $code $(head -c 300 "$W/up.json")"
ID=$(jq -r '.id // empty' "$W/up.json")
[ -n "$ID" ] || { fail "upload: no job id in $(head -c 300 "$W/up.json")"; stop_server; finish; }
st=$(wait_job "$BASE" "$ID" "$W/job.json" 90)
[ "$st" = succeeded ] || fail "hls job: status '$st': $(head -c 400 "$W/job.json")"
get() { # get URL FILE -> "code content-type"
  curl -s -o "$2" -D "$2.h" -w '%{http_code}' "$1" >"$2.code" || true
  echo "$(cat "$2.code") $(grep -i '^content-type:' "$2.h" | head -n 1 | cut -d' ' -f2- | tr -d '\r')"
}
if [ "$st" = succeeded ]; then
  # The job's description of both outputs against the files it serves.
  for i in 0 1; do
    jq ".outputs[$i]" "$W/job.json" >"$W/out$i.json"
    n=$(jq -r .name "$W/out$i.json")
    check_hls_result "service $n" "$D/outputs/$ID/$n" "$W/out$i.json"
    [ "$(jq -r .mime "$W/out$i.json")" = application/vnd.apple.mpegurl ] || fail "service $n: mime $(jq -r .mime "$W/out$i.json")"
    # Both specs were built on the hls preset: the job names it.
    [ "$(jq -r .preset "$W/out$i.json")" = hls ] || fail "service $n: preset '$(jq -r .preset "$W/out$i.json")', want hls"
    for u in $(jq -r '.renditions[].url' "$W/out$i.json"); do
      [[ "$u" == "/v1/jobs/$ID/outputs/$n/"*/index.m3u8 ]] || fail "service $n: rendition url $u"
      r=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$BASE$u")
      [ "$r" = "200 application/vnd.apple.mpegurl" ] || fail "GET $u: '$r'"
    done
  done
  # The job.succeeded webhook carries the same outputs.
  hook=
  for _ in $(seq 100); do
    hook=$(jq -c 'select(.path == "/hook" and .verified) | .body | fromjson | select(.type == "job.succeeded") | .data.outputs' \
      "$W/hooks.jsonl" 2>/dev/null | head -n 1)
    [ -n "$hook" ] && break
    sleep 0.1
  done
  [ -n "$hook" ] && jq -e --argjson h "$hook" '.outputs == $h' "$W/job.json" >/dev/null ||
    fail "job.succeeded webhook outputs differ from the job's: $(head -c 400 <<<"$hook")"
  name=$(jq -r '.outputs[0].name' "$W/job.json")
  url=$(jq -r '.outputs[0].url' "$W/job.json")
  [ "$url" = "/v1/jobs/$ID/outputs/$name/master.m3u8" ] || fail "output url '$url'"
  O=$BASE/v1/jobs/$ID/outputs/$name
  mkdir -p "$W/dl"
  r=$(get "$BASE$url" "$W/dl/master.m3u8")
  [ "$r" = "200 application/vnd.apple.mpegurl" ] || fail "GET master.m3u8: '$r'"
  uri=$(grep -v '^#' "$W/dl/master.m3u8" | head -n 1)
  [ -n "$uri" ] || fail "downloaded master.m3u8 names no variant"
  r=$(get "$O/$uri" "$W/dl/media.m3u8")
  [ "$r" = "200 application/vnd.apple.mpegurl" ] || fail "GET $uri: '$r'"
  seg=$(grep -v '^#' "$W/dl/media.m3u8" | head -n 1)
  r=$(get "$O/${uri%/*}/$seg" "$W/dl/seg.ts")
  [ "$r" = "200 video/mp2t" ] || fail "GET ${uri%/*}/$seg: '$r'"
  s=$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$W/dl/seg.ts" | awk NF | sort -u | tr '\n' ' ')
  [ "$s" = "h264 " ] || fail "downloaded video segment streams '$s'"
  auri=$(sed -n 's/^#EXT-X-MEDIA:TYPE=AUDIO.*URI="\([^"]*\)".*/\1/p' "$W/dl/master.m3u8")
  r=$(get "$O/$auri" "$W/dl/audio.m3u8")
  [ "$r" = "200 application/vnd.apple.mpegurl" ] || fail "GET $auri: '$r'"
  seg=$(grep -v '^#' "$W/dl/audio.m3u8" | head -n 1)
  r=$(get "$O/${auri%/*}/$seg" "$W/dl/aseg.ts")
  [ "$r" = "200 video/mp2t" ] || fail "GET ${auri%/*}/$seg: '$r'"
  s=$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$W/dl/aseg.ts" | awk NF | sort -u | tr '\n' ' ')
  [ "$s" = "aac " ] || fail "downloaded audio segment streams '$s'"
  # The fMP4 output: init segment and a .m4s.
  F=$BASE/v1/jobs/$ID/outputs/f4
  r=$(get "$F/720p/index.m3u8" "$W/dl/f.m3u8")
  [ "$r" = "200 application/vnd.apple.mpegurl" ] || fail "GET f4/720p/index.m3u8: '$r'"
  r=$(get "$F/720p/init.mp4" "$W/dl/init.mp4")
  [ "$r" = "200 video/mp4" ] || fail "GET f4/720p/init.mp4: '$r'"
  seg=$(grep -v '^#' "$W/dl/f.m3u8" | head -n 1)
  r=$(get "$F/720p/$seg" "$W/dl/seg.m4s")
  [ "$r" = "200 video/iso.segment" ] || fail "GET f4/720p/$seg: '$r'"
  cat "$W/dl/init.mp4" "$W/dl/seg.m4s" >"$W/dl/joined.mp4"
  s=$(ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 "$W/dl/joined.mp4" | awk NF | tr '\n' ' ')
  [ "$s" = "h264,1280,720 " ] || fail "downloaded fMP4 segment '$s'"
  for bad in "/../../jobs.db" "/..%2F..%2Fserver.log" "/%2e%2e/%2e%2e/x" "/${uri%/*}/../../../x"; do
    code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$O$bad")
    [ "$code" = 404 ] || [ "$code" = 400 ] || fail "GET $bad: HTTP $code, want 404/400"
  done
  code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/jobs/$ID")
  [ "$code" = 200 ] || fail "server stopped serving after the traversal attempts: $code"
fi

note "service: an audio-only upload -> hls"
code=$(curl -s -o "$W/up2.json" -w '%{http_code}' -F "file=@$VIDQ_MEDIA/audio_only.mp3" -F preset=hls "$BASE/v1/jobs")
[ "$code" = 202 ] || fail "audio-only upload: HTTP $code $(head -c 300 "$W/up2.json")"
ID2=$(jq -r '.id // empty' "$W/up2.json")
st=$(wait_job "$BASE" "$ID2" "$W/job2.json" 30)
if [ "$st" != succeeded ]; then fail "audio-only hls job: status '$st': $(head -c 400 "$W/job2.json")"
else
  jq '.outputs[0]' "$W/job2.json" >"$W/out2.json"
  check_hls_audio "service audio-only" "$D/outputs/$ID2/hls"
  check_hls_result "service audio-only" "$D/outputs/$ID2/hls" "$W/out2.json"
  jq -e '.video == null and .audio.codec == "aac" and .renditions[0].url == "/v1/jobs/'"$ID2"'/outputs/hls/audio/index.m3u8"' \
    "$W/out2.json" >/dev/null || fail "service audio-only: described as $(head -c 400 "$W/out2.json")"
fi

note "service: bad segment options -> 400 invalid_output, no job"
for b in "${BAD_SPECS[@]}"; do
  field=${b%%|*}; spec=${b#*|}
  code=$(curl -s -o "$W/bad.json" -w '%{http_code}' -F "file=@$in360" -F "outputs=[$spec]" "$BASE/v1/jobs")
  [ "$code" = 400 ] || fail "upload with $spec: HTTP $code, want 400"
  [ "$(jq -r '.error.code' "$W/bad.json")" = invalid_output ] || fail "upload with $spec: $(head -c 300 "$W/bad.json")"
  jq -r '.error.message' "$W/bad.json" | grep -q "$field" || fail "upload with $spec: message does not name $field: $(head -c 300 "$W/bad.json")"
done
n=$(curl -s "$BASE/v1/jobs?limit=100" | jq '.jobs | length')
[ "$n" = 2 ] || fail "refused uploads made jobs: $n jobs, want 2"
[ -z "$(ls -A "$D/inputs" 2>/dev/null | grep -v "^$ID\$" | grep -v "^$ID2\$")" ] || fail "refused uploads left inputs: $(ls "$D/inputs")"
stop_server
finish
