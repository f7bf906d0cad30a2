#!/usr/bin/env bash
# The full matrix: every generated fixture x every preset of
# `vidq presets --json`, each output checked with ffprobe against
# lib_cli.sh's PRESET_TABLE (pairs that cannot be made, e.g. audio-m4a from
# a video-only input or remux-mp4 of ProRes, must be refused with their error
# code and leave no file). The pairs test_cli_cases.sh and
# test_cli_presets.sh already run are left out.
# ctest-labels: cli slow
# ctest-timeout: 600
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media
load_presets

mapfile -t fixtures < <(media_list)
for p in "${PRESET_NAMES[@]}"; do
  if [ -z "$(preset_row "$p")" ]; then
    fail "preset $p has no row in PRESET_TABLE (tests/integration/lib_cli.sh)"
    continue
  fi
  [ "$p" = mp4-720p ] && continue
  for fx in "${fixtures[@]}"; do
    [ "$fx" = h264_aac_640x360.mp4 ] && continue
    note "$fx -> $p"
    transcode_case "$p" "$fx"
  done
done
finish
