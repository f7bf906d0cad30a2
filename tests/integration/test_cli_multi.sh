#!/usr/bin/env bash
# Several outputs in one `vidq transcode` pass (--preset P1,P2,... or
# --output '[SPEC, SPEC, ...]', OUT a folder getting <name>.<ext> each):
# every output checked with ffprobe against its preset row; refusals
# (duplicate names, OUT a file, one output impossible, too many outputs)
# leave nothing behind.
# ctest-labels: cli
# ctest-timeout: 240
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media
load_presets

in="$VIDQ_MEDIA/portrait_1080x1920.mp4"
d="$T/five"
mkdir "$d"
note "portrait 1080x1920 -> mp4-1080p mp4-720p mp4-480p thumbnail audio-m4a in one pass"
run_vidq transcode "$in" "$d" --preset mp4-1080p,mp4-720p,mp4-480p,thumbnail,audio-m4a --progress none
if [ "$RC" -ne 0 ]; then
  fail "five presets: exit $RC: $(cat "$T/err.txt")"
else
  for p in mp4-1080p mp4-720p mp4-480p thumbnail audio-m4a; do
    check_transcode "five presets: $p" "$in" "$d/$p.${PRESET_EXT[$p]}" "$p"
  done
  n=$(ls -A "$d" | wc -l)
  [ "$n" -eq 5 ] || fail "five presets: $n files in the folder: $(ls -A "$d" | tr '\n' ' ')"
  [ "$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$d/mp4-480p.mp4")" = "480,854" ] ||
    fail "five presets: mp4-480p of the portrait is not 480x854"
fi

# Custom specs: the benchmark's three renditions of a landscape input.
d="$T/three"
mkdir "$d"
spec() { echo "{\"name\":\"r$1\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"max_height\":$1,\"crf\":23,\"speed\":\"veryfast\"},\"audio\":{\"codec\":\"aac\",\"bitrate\":128000}}"; }
in="$VIDQ_MEDIA/h264_aac_640x360.mp4"
run_vidq transcode "$in" "$d" --output "[$(spec 360),$(spec 240),$(spec 144)]" --progress json
if [ "$RC" -ne 0 ]; then
  fail "three specs: exit $RC: $(cat "$T/err.txt")"
else
  for h in 360 240 144; do
    check_transcode "three specs: r$h" "$in" "$d/r$h.mp4" mp4-1080p "$h"
    got=$(ffprobe -v error -select_streams v:0 -show_entries stream=height -of csv=p=0 "$d/r$h.mp4")
    [ "$got" = "$h" ] || fail "three specs: r$h is ${got} high"
  done
  [ "$(tail -n 2 "$T/out.txt" | head -n 1 | jq -r .percent)" = 100 ] || fail "three specs: last progress line is not 100%"
  [ "$(tail -n 1 "$T/out.txt" | jq -r '[.outputs[].name] | join(",")')" = r360,r240,r144 ] ||
    fail "three specs: the last line does not list the three outputs: $(tail -n 1 "$T/out.txt" | head -c 300)"
fi

# Refusals: nothing written.
refuse() { # CTX RC CODES ARGS...
  local ctx=$1 rc=$2 codes=$3 dir="$T/refused"
  shift 3
  rm -rf "$dir"
  mkdir "$dir"
  run_vidq transcode "$@"
  expect_error "$ctx" "$rc" "$codes"
  if [ -n "$(ls -A "$dir")" ]; then fail "$ctx: left files: $(ls -A "$dir" | tr '\n' ' ')"; fi
  return 0
}
refuse "duplicate names" 2 invalid_output "$in" "$T/refused" --preset mp4-480p,mp4-480p
refuse "one output impossible" 1 not_remuxable "$VIDQ_MEDIA/prores_pcm.mov" "$T/refused" \
  --preset mp4-480p,remux-mp4
refuse "one output impossible (video-only input)" 1 "invalid_output|unsupported_media" \
  "$VIDQ_MEDIA/video_only.mp4" "$T/refused" --preset mp4-480p,audio-m4a
many=$(spec 16)
for i in $(seq 2 17); do many+=",$(spec $((i * 16)))"; done
refuse "seventeen outputs" 2 "bad_request|invalid_output" "$in" "$T/refused" --output "[$many]"
# OUT an existing file: refused, the file untouched.
mkdir -p "$T/refused"
printf 'keep me\n' > "$T/refused/file"
run_vidq transcode "$in" "$T/refused/file" --preset mp4-480p,thumbnail
expect_error "OUT is a file" 1 io_error
[ "$(cat "$T/refused/file")" = "keep me" ] || fail "OUT is a file: the file was changed"
[ "$(ls -A "$T/refused")" = file ] || fail "OUT is a file: left $(ls -A "$T/refused" | tr '\n' ' ')"
# Repeated --preset adds outputs (the same as --preset a,b).
d="$T/repeated"
run_vidq transcode "$VIDQ_MEDIA/h264_aac_640x360.mp4" "$d" --preset mp4-480p --preset audio-m4a --progress none
if [ "$RC" -ne 0 ]; then
  fail "repeated --preset: exit $RC: $(cat "$T/err.txt")"
else
  [ -s "$d/mp4-480p.mp4" ] && [ -s "$d/audio-m4a.m4a" ] ||
    fail "repeated --preset: want mp4-480p.mp4 and audio-m4a.m4a, got $(ls -A "$d" | tr '\n' ' ')"
fi

# A refused run leaves no folder it made itself (thumbnail of audio-only input).
run_vidq transcode "$VIDQ_MEDIA/audio_only.wav" "$T/made_by_vidq" --preset audio-m4a,thumbnail --progress none
[ "$RC" -ne 0 ] || fail "thumbnail of audio-only input succeeded"
[ ! -e "$T/made_by_vidq" ] || fail "refused run left its folder: $(ls -A "$T/made_by_vidq" | tr '\n' ' ')"
finish
