#!/usr/bin/env bash
# `vidq presets --json` and every preset on the common H.264+AAC fixture,
# each result checked with ffprobe against lib_cli.sh's PRESET_TABLE. A
# preset that the table does not describe fails here: nothing ships untested.
# Also the default preset and a custom --output spec.
# ctest-labels: cli
# ctest-timeout: 300
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media
load_presets

note "presets: ${PRESET_NAMES[*]}"
for p in mp4-1080p mp4-720p mp4-480p audio-m4a thumbnail remux-mp4; do
  # (a here-string, not a pipe: grep -q exiting early would SIGPIPE the
  # writer, and pipefail would call that a miss)
  grep -qx -- "$p" <<<"$(printf '%s\n' "${PRESET_NAMES[@]}")" || fail "preset $p missing from vidq presets --json"
done
for p in "${PRESET_NAMES[@]}"; do
  [ -n "$(preset_row "$p")" ] || fail "preset $p has no row in PRESET_TABLE (tests/integration/lib_cli.sh): add its expectations"
  jq -e --arg n "$p" '.presets[] | select(.name == $n) | (.description | type == "string" and length > 0) and (.spec | type == "object") and (.spec.container | type == "string")' \
    <<<"$PRESETS_JSON" >/dev/null || fail "preset $p: no description or spec with a container in presets --json"
done
# The human listing names every preset too.
run_vidq presets
[ "$RC" -eq 0 ] || fail "vidq presets: exit $RC"
for p in "${PRESET_NAMES[@]}"; do
  grep -q -- "$p" "$T/out.txt" || fail "vidq presets (human listing) does not name $p"
done

for p in "${PRESET_NAMES[@]}"; do
  [ -n "$(preset_row "$p")" ] || continue
  note "h264_aac_640x360.mp4 -> $p"
  transcode_case "$p" h264_aac_640x360.mp4
done

# No --preset: mp4-720p.
in="$VIDQ_MEDIA/portrait_1080x1920.mp4"
note "default preset (portrait 1080x1920 -> 720x1280)"
run_vidq transcode "$in" "$T/default.mp4"
if [ "$RC" -ne 0 ]; then fail "default preset: exit $RC: $(cat "$T/err.txt")"
else check_transcode "default preset" "$in" "$T/default.mp4" mp4-720p
  [ "$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$T/default.mp4")" = "720,1280" ] ||
    fail "default preset: portrait 1080x1920 gave $(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$T/default.mp4"), want 720,1280"
fi

# A custom spec (the benchmark's): same expectations as mp4-720p.
spec='{"name":"o","container":"mp4","video":{"codec":"h264","max_height":720,"crf":23,"speed":"veryfast"},"audio":{"codec":"aac","bitrate":128000}}'
note "custom --output spec"
run_vidq transcode "$in" "$T/custom.mp4" --output "$spec"
if [ "$RC" -ne 0 ]; then fail "custom spec: exit $RC: $(cat "$T/err.txt")"
else check_transcode "custom spec" "$in" "$T/custom.mp4" mp4-720p; fi
# A custom spec with audio dropped.
run_vidq transcode "$VIDQ_MEDIA/h264_aac_640x360.mp4" "$T/noaudio.mp4" \
  --output '{"name":"n","container":"mp4","video":{"codec":"h264","max_height":240},"audio":null}'
if [ "$RC" -ne 0 ]; then fail "spec with audio null: exit $RC: $(cat "$T/err.txt")"
else
  n=$(ffprobe -v error -show_entries stream=codec_type -of csv=p=0 "$T/noaudio.mp4" | sort | tr '\n' ' ')
  [ "$n" = "video " ] || fail "spec with audio null: streams '$n', want 'video '"
  h=$(ffprobe -v error -select_streams v:0 -show_entries stream=height -of csv=p=0 "$T/noaudio.mp4")
  [ "$h" = 240 ] || fail "spec with max_height 240: height $h"
fi
finish
