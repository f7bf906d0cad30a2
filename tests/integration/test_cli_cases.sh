#!/usr/bin/env bash
# Every generated fixture (fixtures/gen.sh: odd size, VFR, 10-bit, interlaced,
# rotated, portrait, MKV/WebM/MOV/TS/AVI, audio-only, video-only, 5.1, mono,
# non-zero start...) through the default preset mp4-720p, checked with
# ffprobe: codecs, displayed size (rotation applied, shorter side capped,
# never upscaled, aspect kept, even), 8-bit 4:2:0 High, progressive, stream
# counts, channels, start near 0, duration within a frame, faststart.
# The other presets over every fixture: test_cli_matrix_slow.sh.
# ctest-labels: cli
# ctest-timeout: 400
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media
load_presets

mapfile -t fixtures < <(media_list)
[ "${#fixtures[@]}" -ge 20 ] || fail "only ${#fixtures[@]} generated fixtures in $VIDQ_MEDIA"
for fx in "${fixtures[@]}"; do
  note "$fx -> mp4-720p"
  transcode_case mp4-720p "$fx"
done

# The cases the issue names, spelled out (the generic checks above derive
# them; these pin the exact figures).
displayed() { # FILE -> "WxH" as displayed (rotation applied)
  local f
  f=$(facts "$1")
  jq -r '"\(.v.dw | round)x\(.v.dh | round)"' <<<"$f"
}
pin() { # FIXTURE PRESET WANT_DISPLAYED [ALT]
  local fx=$1 p=$2 want=$3 alt=${4:-} out got
  out="$T/pin.${fx%.*}.$p.mp4"
  run_vidq transcode "$VIDQ_MEDIA/$fx" "$out" --preset "$p"
  if [ "$RC" -ne 0 ]; then fail "$fx -> $p: exit $RC: $(cat "$T/err.txt")"; return 0; fi
  got=$(displayed "$out")
  [ "$got" = "$want" ] || [ "$got" = "$alt" ] || fail "$fx -> $p: displayed $got, want $want${alt:+ or $alt}"
  rm -f "$out"
}
pin portrait_1080x1920.mp4 mp4-720p 720x1280
pin portrait_1080x1920.mp4 mp4-480p 480x854 480x852
pin rotated90.mp4 mp4-480p 480x854 480x852
pin odd_321x241.mp4 mp4-720p 320x240 322x242
pin anamorphic_480x360_sar4-3.mp4 mp4-720p 640x360
finish
