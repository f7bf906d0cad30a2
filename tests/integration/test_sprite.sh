#!/usr/bin/env bash
# Sprite sheets (container "sprite", preset thumbnails-sprite): a folder of
# JPEG sheets plus thumbnails.vtt. check_sprite (lib_cli.sh) checks the
# index against ffprobe (cue count = ceil(duration / interval), times,
# xywh inside the layout, sheet sizes = cols*w x rows*h). Here also: each
# tile shows its cue's start (a clip whose grey level changes every second,
# tile brightness against ffmpeg's own frame at that time), a video shorter
# than its audio, a rotated source (portrait tiles), defaults, several
# outputs in one pass, bad specs (CLI exit 2 / 1 with one clear line,
# nothing left), and through the service: the job's url and mime, the VTT
# and a sheet over HTTP with their Content-Types, 400 for bad specs. The
# outputs' descriptions (CLI and job) against the files: check_sprite_result.
# ctest-labels: cli
# ctest-timeout: 240
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

ff() { ffmpeg -nostdin -v error -y "$@"; }
yavg() { # yavg FILTERGRAPH_INPUT_FILE [FILTERS]: mean luma of the first frame
  ffprobe -v error -f lavfi -i "movie=$1${2:+,$2},signalstats" -read_intervals "%+#1" \
    -show_entries frame_tags=lavfi.signalstats.YAVG -of csv=p=0 | head -n 1
}

# 6.5 s whose grey level steps every second (20, 60, .. 220, 4), with audio.
steps=$T/steps.mp4
ff -f lavfi -i "color=c=black:size=320x180:rate=25:duration=6.5,format=yuv420p,geq=lum='mod(floor(T)*40+20\,256)':cb=128:cr=128" \
   -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=6.5" \
   -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$steps"

note "grey steps, a tile every second, 4 x 2 a sheet"
spec='{"name":"s","container":"sprite","video":{"width":96},"sprite":{"interval_s":1,"columns":4,"rows":2}}'
run_vidq transcode "$steps" "$T/steps" --output "$spec" --progress json
if [ "$RC" -ne 0 ]; then fail "steps: exit $RC: $(cat "$T/err.txt")"
else
  check_sprite "steps" "$steps" "$T/steps" 1 96 4 2
  tail -n 1 "$T/out.txt" | jq '.outputs[0]' >"$T/steps.json" || true
  check_sprite_result "steps" "$T/steps" "$T/steps.json" 1 4 2
  # 7 tiles of 96x54 on one sheet of 4 x 2 cells (384x108).
  jq -e '.video.width == 384 and .video.height == 108 and .sprite.sheets == 1 and .sprite.tiles == 7' "$T/steps.json" >/dev/null ||
    fail "steps: described as $(jq -c '[.video, .sprite]' "$T/steps.json")"
  # Each tile is the frame at its cue's start (within one grey step).
  while read -r start _ sheet x y w h; do
    got=$(yavg "$T/steps/$sheet" "crop=$w:$h:$x:$y")
    # (a JPEG too, so both are full-range YUV as signalstats reads them)
    ff -ss "$start" -i "$steps" -frames:v 1 -vf "scale=$w:$h" -pix_fmt yuvj420p -q:v 2 "$T/ref.jpg"
    want=$(yavg "$T/ref.jpg")
    awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit !(d < 12 && d > -12) }' ||
      fail "steps: tile at $start s ($sheet $x,$y) has mean luma $got, ffmpeg's frame at $start s has $want"
  done < "$T/cues.txt"
fi

note "video 3 s, audio 6 s: cues to 6 s, the last frame repeated"
ff -f lavfi -i "testsrc2=size=320x240:rate=25:duration=3" -f lavfi -i "sine=duration=6" \
   -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac "$T/short_video.mp4"
run_vidq transcode "$T/short_video.mp4" "$T/sv" --output '{"container":"sprite","sprite":{"interval_s":1}}' --progress none
if [ "$RC" -ne 0 ]; then fail "short video: exit $RC: $(cat "$T/err.txt")"
else check_sprite "short video" "$T/short_video.mp4" "$T/sv" 1 160 10 10; fi

note "rotated 90 (displayed portrait), odd size, 10-bit, defaults"
for fx in rotated90.mp4 odd_321x241.mp4 h264_10bit.mp4 vfr.mp4; do
  run_vidq transcode "$VIDQ_MEDIA/$fx" "$T/$fx.d" --output '{"container":"sprite","sprite":{"interval_s":0.5,"columns":3,"rows":2}}' --progress none
  if [ "$RC" -ne 0 ]; then fail "$fx: exit $RC: $(cat "$T/err.txt")"; continue; fi
  check_sprite "$fx" "$VIDQ_MEDIA/$fx" "$T/$fx.d" 0.5 160 3 2
done
h=$(awk 'NR == 1 { print $7 }' <(vtt_cues "$T/rotated90.mp4.d/thumbnails.vtt"))
[ "$h" = 284 ] || fail "rotated90: tile height $h, want 284 (160 wide, displayed 720x1280)"

note "several outputs in one pass: OUT/thumbnails-sprite/, OUT/thumbnail.jpg, OUT/mp4-480p.mp4"
in=$VIDQ_MEDIA/h264_aac_640x360_10s.mp4
run_vidq transcode "$in" "$T/multi" --preset thumbnails-sprite,thumbnail,mp4-480p --progress json
if [ "$RC" -ne 0 ]; then fail "multi: exit $RC: $(cat "$T/err.txt")"
else
  check_sprite "multi" "$in" "$T/multi/thumbnails-sprite" 5 160 10 10
  tail -n 1 "$T/out.txt" | jq '.outputs[0]' >"$T/multi.json" || true
  check_sprite_result "multi" "$T/multi/thumbnails-sprite" "$T/multi.json" 5 10 10
  [ -s "$T/multi/thumbnail.jpg" ] || fail "multi: no thumbnail.jpg"
  [ -s "$T/multi/mp4-480p.mp4" ] || fail "multi: no mp4-480p.mp4"
fi

note "bad specs: exit 2, one line naming the field, nothing written"
while IFS='|' read -r spec field; do
  [ -n "$spec" ] || continue
  run_vidq transcode "$in" "$T/bad" --output "$spec" --progress none
  expect_error "bad spec $spec" 2 invalid_output
  grep -q -- "$field" "$T/err.txt" || fail "bad spec $spec: message does not name '$field': $(cat "$T/err.txt")"
  expect_no_output "bad spec $spec" "$T/bad"
done <<'EOF'
{"container":"sprite","sprite":{"interval_s":0}}|sprite.interval_s
{"container":"sprite","sprite":{"interval_s":-1}}|sprite.interval_s
{"container":"sprite","sprite":{"interval_s":"5"}}|sprite.interval_s
{"container":"sprite","sprite":{"interval_s":3601}}|sprite.interval_s
{"container":"sprite","sprite":{"columns":0}}|sprite.columns
{"container":"sprite","sprite":{"columns":33}}|sprite.columns
{"container":"sprite","sprite":{"rows":2.5}}|sprite.rows
{"container":"sprite","sprite":{"interval":5}}|sprite.interval
{"container":"sprite","sprite":[5]}|sprite
{"container":"sprite","video":{"width":1000},"sprite":{"columns":5}}|sprite.columns
{"container":"sprite","video":{"width":8}}|video.width
{"container":"sprite","video":null}|video
{"container":"sprite","video":{"codec":"h264"}}|video.codec
{"container":"sprite","video":{"fps":2}}|interval_s
{"container":"sprite","audio":{"codec":"aac"}}|audio
{"container":"mp4","video":{"codec":"h264"},"audio":null,"sprite":{"interval_s":1}}|sprite
EOF

note "audio-only input: refused, nothing left"
run_vidq transcode "$VIDQ_MEDIA/audio_only.mp3" "$T/audio" --preset thumbnails-sprite --progress none
expect_error "audio-only" 1 "invalid_output|unsupported_media"
expect_no_output "audio-only" "$T/audio"

note "more than 10000 tiles: refused before any work"
long=$T/long.mp4
ff -f lavfi -i "color=c=gray:size=16x16:rate=1:duration=1001" -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$long"
run_vidq transcode "$long" "$T/many" --output '{"container":"sprite","sprite":{"interval_s":0.1}}' --progress none
expect_error "10010 tiles" 1 invalid_output
grep -q "10000" "$T/err.txt" || fail "10010 tiles: message does not give the limit: $(cat "$T/err.txt")"
expect_no_output "10010 tiles" "$T/many"

# ---- service
note "service: sprite outputs over HTTP"
W=$T/svc; mkdir -p "$W"
start_server "$W" "$W/data" --max-concurrent 1 || finish

# bad specs: 400 invalid_output, nothing kept, the server goes on
for spec in '{"name":"x","container":"sprite","sprite":{"interval_s":0}}' \
            '{"name":"x","container":"sprite","sprite":{"columns":99}}' \
            '{"name":"x","container":"sprite","audio":{"codec":"aac"}}'; do
  code=$(curl -s -o "$W/bad.json" -w '%{http_code}' -F "file=@$in" -F "outputs=[$spec]" "$BASE/v1/jobs")
  [ "$code" = 400 ] || fail "upload with $spec: HTTP $code, want 400"
  [ "$(jq -r .error.code "$W/bad.json")" = invalid_output ] || fail "upload with $spec: $(head -c 300 "$W/bad.json")"
done
code=$(curl -s -o "$W/bad.json" -w '%{http_code}' -H 'Content-Type: audio/mpeg' \
  --data-binary "@$VIDQ_MEDIA/audio_only.mp3" "$BASE/upload?preset=thumbnails-sprite")
[ "$code" = 400 ] || fail "sprite of audio-only upload: HTTP $code $(head -c 300 "$W/bad.json"), want 400"
code=$(curl -s -o "$W/bad.json" -w '%{http_code}' -H 'Content-Type: video/mp4' --data-binary "@$long" \
  "$BASE/upload?outputs=$(jq -rn '[{"name":"m","container":"sprite","sprite":{"interval_s":0.1}}] | tojson | @uri')")
[ "$code" = 400 ] || fail "10010-tile upload: HTTP $code $(head -c 300 "$W/bad.json"), want 400"
n=$(find "$W/data/inputs" "$W/data/outputs" -type f 2>/dev/null | wc -l)
[ "$n" -eq 0 ] || fail "refused uploads left $n files in the data dir"

if run_job "$W" "$steps" 30 -F preset=thumbnails-sprite \
  -F 'outputs=[{"name":"fine","container":"sprite","video":{"width":96},"sprite":{"interval_s":1,"columns":4,"rows":2}}]'; then
  for name in thumbnails-sprite fine; do
    o=$(jq -c --arg n "$name" '.outputs[] | select(.name == $n)' "$W/job.json")
    url=$(jq -r .url <<<"$o")
    [ "$url" = "/v1/jobs/$ID/outputs/$name/thumbnails.vtt" ] || fail "$name: url '$url'"
    [ "$(jq -r .mime <<<"$o")" = text/vtt ] || fail "$name: mime $(jq -r .mime <<<"$o")"
    [ "$(jq -r .container <<<"$o")" = sprite ] || fail "$name: container $(jq -r .container <<<"$o")"
    jq -e '.size > 0' <<<"$o" >/dev/null || fail "$name: size $(jq -r .size <<<"$o")"
    echo "$o" >"$W/$name.json"
    case $name in
      fine) check_sprite_result "service $name" "$W/data/outputs/$ID/$name" "$W/$name.json" 1 4 2 ;;
      *) check_sprite_result "service $name" "$W/data/outputs/$ID/$name" "$W/$name.json" 5 10 10 ;;
    esac
    dl=$W/dl/$name; mkdir -p "$dl"
    r=$(curl -s -o "$dl/thumbnails.vtt" -w '%{http_code} %{content_type}' "$BASE$url")
    [ "$r" = "200 text/vtt" ] || fail "GET $url: '$r'"
    r=$(curl -s -o "$W/index.vtt" -w '%{http_code} %{content_type}' "$BASE/v1/jobs/$ID/outputs/$name")
    [ "$r" = "200 text/vtt" ] || fail "GET .../outputs/$name (the index): '$r'"
    for s in $(vtt_cues "$dl/thumbnails.vtt" | awk '{ print $3 }' | sort -u); do
      r=$(curl -s -o "$dl/$s" -w '%{http_code} %{content_type}' "$BASE/v1/jobs/$ID/outputs/$name/$s")
      [ "$r" = "200 image/jpeg" ] || fail "GET $name/$s: '$r'"
    done
  done
  check_sprite "service preset" "$steps" "$W/dl/thumbnails-sprite" 5 160 10 10
  check_sprite "service custom" "$steps" "$W/dl/fine" 1 96 4 2
  for bad in "/thumbnails-sprite/../../../vidq.db" "/fine/%2e%2e/x" "/fine/sheet-9999.jpg" "/fine/.hidden"; do
    code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$BASE/v1/jobs/$ID/outputs$bad")
    [ "$code" = 404 ] || [ "$code" = 400 ] || fail "GET outputs$bad: HTTP $code, want 404/400"
  done
fi
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")
[ "$code" = 200 ] || fail "server stopped serving: healthz $code"
stop_server
finish
