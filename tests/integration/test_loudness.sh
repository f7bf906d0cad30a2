#!/usr/bin/env bash
# Loudness normalization ("audio": {"loudness_lufs": f}, issue 13 point 5):
# the loudness set of `fixtures/gen.sh DIR media` (a quiet speech-like
# voice at -38 LUFS, a loud music-like chord at -10 LUFS, quiet then loud)
# through AAC/M4A, Opus/Ogg and MP3 at -16 and -23 LUFS, and an H.264+AAC
# MP4 with video, each measured on the output with ffmpeg's ebur128
# filter: integrated loudness within +-1 LU of the target, true peak at
# most -1 dBTP. Silence is left alone (nothing to normalize). Bad values
# are refused (exit 2, invalid_output, the field named) with nothing left.
# ctest-labels: cli
# ctest-timeout: 480
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built

M=$VIDQ_TEST_TMP/media13
bash "$VIDQ_SRC/fixtures/gen.sh" "$M" media >/dev/null

# r128 FILE: "I TP" (LUFS, dBTP) of FILE's audio, by ebur128.
r128() {
  ffmpeg -nostdin -hide_banner -nostats -i "$1" -map 0:a:0 -af ebur128=peak=true -f null - 2>&1 |
    awk '/Integrated loudness:/ { s = 1 } s && $1 == "I:" { i = $2 } /True peak:/ { p = 1 } p && $1 == "Peak:" { tp = $2 } END { print i, tp }'
}

check_level() { # CTX FILE TARGET
  local i tp
  read -r i tp <<<"$(r128 "$2")"
  if [ -z "$i" ] || [ -z "$tp" ]; then fail "$1: cannot measure $2"; return 0; fi
  near "$i" "$3" 1 || fail "$1: integrated loudness $i LUFS, want $3 +- 1"
  fcmp "$tp" "<=" -1 || fail "$1: true peak $tp dBTP, want <= -1"
  note "  $1: I $i LUFS, true peak $tp dBTP"
}

for fx in loud_speech_quiet loud_music_loud loud_quiet_then_loud; do
  read -r i0 tp0 <<<"$(r128 "$M/$fx.wav")"
  note "$fx (I $i0 LUFS, true peak $tp0 dBTP)"
  run_vidq transcode "$M/$fx.wav" "$T/$fx.m4a" \
    --output '{"preset":"audio-m4a","audio":{"codec":"aac","bitrate":128000,"loudness_lufs":-16}}' --progress none
  if [ "$RC" -ne 0 ]; then fail "$fx -> m4a -16: exit $RC: $(cat "$T/err.txt")"; else check_level "$fx -> aac -16" "$T/$fx.m4a" -16; fi
  run_vidq transcode "$M/$fx.wav" "$T/$fx.ogg" \
    --output '{"container":"ogg","video":null,"audio":{"codec":"opus","loudness_lufs":-23}}' --progress none
  if [ "$RC" -ne 0 ]; then fail "$fx -> ogg -23: exit $RC: $(cat "$T/err.txt")"; else check_level "$fx -> opus -23" "$T/$fx.ogg" -23; fi
  run_vidq transcode "$M/$fx.wav" "$T/$fx.mp3" \
    --output '{"container":"mp3","video":null,"audio":{"codec":"mp3","bitrate":192000,"loudness_lufs":-14}}' --progress none
  if [ "$RC" -ne 0 ]; then fail "$fx -> mp3 -14: exit $RC: $(cat "$T/err.txt")"; else check_level "$fx -> mp3 -14" "$T/$fx.mp3" -14; fi
done

note "video + audio: the audio normalized, the video as without"
ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=320x240:rate=25:duration=6" -i "$M/loud_speech_quiet.wav" \
  -map 0:v -map 1:a -t 6 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -b:a 128k "$T/av.mp4"
VIDQ_LOG_LEVEL=info run_vidq transcode "$T/av.mp4" "$T/av_out.mp4" \
  --output '{"preset":"mp4-480p","audio":{"codec":"aac","bitrate":128000,"loudness_lufs":-16}}' --progress none
if [ "$RC" -ne 0 ]; then fail "av -> mp4 -16: exit $RC: $(cat "$T/err.txt")"
else
  check_level "av -> mp4-480p -16" "$T/av_out.mp4" -16
  f=$(facts "$T/av_out.mp4")
  [ "$(jqv "$f" .v.codec)" = h264 ] || fail "av -> mp4 -16: video $(jqv "$f" .v.codec), want h264"
  near "$(jqv "$f" .vdur)" 6 0.05 || fail "av -> mp4 -16: video lasts $(jqv "$f" .vdur) s, want 6"
  near "$(jqv "$f" .adur)" 6 0.1 || fail "av -> mp4 -16: audio lasts $(jqv "$f" .adur) s, want 6"
  # The first pass reads the audio alone: one video decoder in the run.
  n=$(grep -c "loudness measured" "$T/err.txt" || true)
  [ "$n" = 1 ] || fail "av -> mp4 -16: $n loudness passes logged, want 1"
fi

note "silence: nothing to normalize, still written"
ffmpeg -nostdin -v error -y -f lavfi -i "anullsrc=r=48000:cl=stereo" -t 2 -c:a pcm_s16le "$T/silence.wav"
run_vidq transcode "$T/silence.wav" "$T/silence.m4a" \
  --output '{"preset":"audio-m4a","audio":{"codec":"aac","loudness_lufs":-16}}' --progress none
[ "$RC" -eq 0 ] || fail "silence -> m4a -16: exit $RC: $(cat "$T/err.txt")"
[ -s "$T/silence.m4a" ] || fail "silence -> m4a -16: no output"

note "bad values"
for bad in '-80' '-4' '"loud"' 'null'; do
  run_vidq transcode "$M/loud_music_loud.wav" "$T/bad.m4a" \
    --output "{\"container\":\"m4a\",\"video\":null,\"audio\":{\"codec\":\"aac\",\"loudness_lufs\":$bad}}" --progress none
  expect_error "loudness_lufs $bad" 2 invalid_output
  grep -q "loudness_lufs" "$T/err.txt" || fail "loudness_lufs $bad: the message does not name the field: $(cat "$T/err.txt")"
  expect_no_output "loudness_lufs $bad" "$T/bad.m4a"
done
run_vidq transcode "$M/loud_music_loud.wav" "$T/bad.m4a" \
  --output '{"container":"m4a","video":null,"audio":{"codec":"copy","loudness_lufs":-16}}' --progress none
expect_error "loudness_lufs with copy" 2 invalid_output
expect_no_output "loudness_lufs with copy" "$T/bad.m4a"

finish
