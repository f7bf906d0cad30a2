#!/usr/bin/env bash
# The thumbnail preset's poster frame: never the black opening. Fixtures
# made here with lavfi: 1.5 s of black then testsrc (with audio), a 12 s
# black opening with a fade-in, a video that is black throughout (still a
# JPEG), and a plain, a rotated, a 10-bit and an odd-sized clip (a valid
# JPEG of the right displayed size). Brightness is measured with ffmpeg's
# signalstats (YAVG, mean luma 0..255, and YLOW..YHIGH spread). Service:
# the black-start clip uploaded with preset=thumbnail gives a non-black
# image/jpeg.
# ctest-labels: cli
# ctest-timeout: 180
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

ff() { ffmpeg -nostdin -v error -y "$@"; }

# luma FILE: "YAVG YLOW YHIGH" of a picture (signalstats).
luma() {
  ffprobe -v error -f lavfi -i "movie=$1,signalstats" \
    -show_entries frame_tags=lavfi.signalstats.YAVG,lavfi.signalstats.YLOW,lavfi.signalstats.YHIGH \
    -of default=nw=1 | sed 's/^TAG:lavfi.signalstats.//' | sort | awk -F= '{ v[$1] = $2 } END { print v["YAVG"], v["YLOW"], v["YHIGH"] }'
}

# not_black CTX FILE: mean luma above 40 and a real spread (not a flat slate).
not_black() {
  local avg low high
  read -r avg low high <<<"$(luma "$2")"
  if [ -z "$avg" ]; then fail "$1: cannot measure $2"; return 0; fi
  awk -v a="$avg" -v l="$low" -v h="$high" 'BEGIN { exit !(a > 40 && h - l > 40) }' ||
    fail "$1: poster is black or flat: YAVG $avg, YLOW $low, YHIGH $high"
  return 0
}

# jpeg_size CTX FILE WxH: an MJPEG picture of that size.
jpeg_size() {
  local got
  got=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height -of csv=p=0 "$2" || true)
  [ "$got" = "mjpeg,$3" ] || fail "$1: $2 is '$got', want 'mjpeg,$3'"
}

black=$T/black_start.mp4
ff -f lavfi -i "color=black:size=640x360:rate=25:duration=1.5" \
   -f lavfi -i "testsrc=size=640x360:rate=25:duration=3" \
   -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=4.5" \
   -filter_complex "[0:v][1:v]concat=n=2:v=1:a=0[v]" -map "[v]" -map 2:a \
   -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$black"
# The fixture is what it claims: its first frame is black.
ff -i "$black" -frames:v 1 "$T/first.png"
read -r avg _ <<<"$(luma "$T/first.png")"
awk -v a="$avg" 'BEGIN { exit !(a < 20) }' || fail "fixture: first frame YAVG $avg, want black"

note "1.5 s black, then content -> the poster shows the content"
run_vidq transcode "$black" "$T/black.jpg" --preset thumbnail --progress none
if [ "$RC" -ne 0 ]; then fail "black start: exit $RC: $(cat "$T/err.txt")"
else
  jpeg_size "black start" "$T/black.jpg" 640,360
  not_black "black start" "$T/black.jpg"
fi

note "12 s black opening, fade-in, 4 s content (past the 5 s window)"
long=$T/long_black.mp4
ff -f lavfi -i "color=black:size=320x240:rate=25:duration=12" \
   -f lavfi -i "testsrc2=size=320x240:rate=25:duration=4" \
   -filter_complex "[0:v][1:v]concat=n=2:v=1:a=0,fade=in:st=12:d=1[v]" -map "[v]" \
   -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$long"
run_vidq transcode "$long" "$T/long.jpg" --preset thumbnail --progress none
if [ "$RC" -ne 0 ]; then fail "long black: exit $RC: $(cat "$T/err.txt")"
else
  jpeg_size "long black" "$T/long.jpg" 320,240
  not_black "long black" "$T/long.jpg"
fi

note "black throughout -> still a JPEG"
ff -f lavfi -i "color=black:size=320x240:rate=25:duration=2" -c:v libx264 -preset ultrafast \
   -pix_fmt yuv420p "$T/all_black.mp4"
run_vidq transcode "$T/all_black.mp4" "$T/all_black.jpg" --preset thumbnail --progress none
if [ "$RC" -ne 0 ]; then fail "all black: exit $RC: $(cat "$T/err.txt")"
else jpeg_size "all black" "$T/all_black.jpg" 320,240; fi

note "ordinary clips: right size, not black"
while read -r fx want; do
  run_vidq transcode "$VIDQ_MEDIA/$fx" "$T/$fx.jpg" --preset thumbnail --progress none
  if [ "$RC" -ne 0 ]; then fail "$fx: exit $RC: $(cat "$T/err.txt")"; continue; fi
  [ -e "$T/$fx.jpg.part" ] && fail "$fx: .part left"
  jpeg_size "$fx" "$T/$fx.jpg" "$want"
  not_black "$fx" "$T/$fx.jpg"
done <<'EOF'
h264_aac_640x360.mp4 640,360
rotated90.mp4 720,1280
portrait_1080x1920.mp4 720,1280
h264_10bit.mp4 320,240
odd_321x241.mp4 320,240
anamorphic_480x360_sar4-3.mp4 640,360
EOF

# ---- service
note "service: preset=thumbnail of the black-start clip"
W=$T/svc; mkdir -p "$W"
start_server "$W" "$W/data" --max-concurrent 1 || finish
if run_job "$W" "$black" 30 -F preset=thumbnail; then
  url=$(jq -r '.outputs[0].url' "$W/job.json")
  [ "$(jq -r '.outputs[0].mime' "$W/job.json")" = image/jpeg ] || fail "job output mime: $(jq -c '.outputs[0]' "$W/job.json")"
  ct=$(curl -s -o "$W/poster.jpg" -w '%{http_code} %{content_type}' "$BASE$url")
  [ "$ct" = "200 image/jpeg" ] || fail "GET $url: '$ct'"
  jpeg_size "service" "$W/poster.jpg" 640,360
  not_black "service" "$W/poster.jpg"
fi
stop_server
finish
