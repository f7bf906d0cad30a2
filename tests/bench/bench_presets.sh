#!/usr/bin/env bash
# Benchmark (not a ctest test): each preset's encode speed through
# `vidq transcode --preset P` next to the ffmpeg command line with the same
# settings (encoder, speed preset, CRF/bitrate, scale, container), run
# alternately in one run; prints median wall time, speed (x realtime = input
# duration / wall time) and the ratio vidq/ffmpeg per preset.
#
#   tests/bench/bench_presets.sh [-n ROUNDS] [--vidq PATH] [--dir DIR] [PRESET...]
# Defaults: 3 rounds, build/vidq, build/bench, every preset below. The input
# is the standard 10 s 1080p25 H.264+AAC clip (lib_bench.sh). Both tools use
# every core; run it on a quiet machine and compare ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=3 vidq=build/vidq dir=build/bench
presets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--rounds) rounds=$2; shift 2 ;;
    --vidq) vidq=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "bench_presets.sh: unknown argument $1" >&2; exit 2 ;;
    *) presets+=("$1"); shift ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench_presets.sh: -n takes a positive number" >&2; exit 2; }
[ -x "$vidq" ] || { echo "bench_presets.sh: no vidq binary at $vidq (build first: bash deploy/build.sh)" >&2; exit 2; }
. tests/bench/lib_bench.sh
in=$(bench_input "$dir")

# The ffmpeg command line that does what each preset does (see
# transcode/src/presets.c and encode.c: "veryfast" is x264/x265 veryfast,
# libvpx realtime cpu-used 7, SVT-AV1 preset 10). Output extension, then
# the arguments between -i IN and OUT.
declare -A ext args
aac="-c:a aac -b:a 128k"
h264="-c:v libx264 -preset veryfast -crf 23 -profile:v high -pix_fmt yuv420p"
ext[mp4-1080p]=mp4; args[mp4-1080p]="$h264 $aac -movflags +faststart"
ext[mp4-720p]=mp4;  args[mp4-720p]="-vf scale=-2:720 $h264 $aac -movflags +faststart"
ext[mp4-480p]=mp4;  args[mp4-480p]="-vf scale=-2:480 $h264 $aac -movflags +faststart"
ext[hevc-1080p]=mp4; args[hevc-1080p]="-c:v libx265 -preset veryfast -crf 28 -x265-params log-level=error -tag:v hvc1 $aac -movflags +faststart"
ext[webm-720p]=webm; args[webm-720p]="-vf scale=-2:720 -c:v libvpx-vp9 -deadline realtime -cpu-used 7 -row-mt 1 -crf 33 -b:v 0 -c:a libopus -b:a 96k"
ext[av1-720p]=mp4;  args[av1-720p]="-vf scale=-2:720 -c:v libsvtav1 -preset 10 -crf 35 -c:a libopus -b:a 96k -movflags +faststart"
ext[audio-m4a]=m4a; args[audio-m4a]="-vn $aac"
ext[audio-mp3]=mp3; args[audio-mp3]="-vn -c:a libmp3lame -b:a 192k"
ext[audio-opus]=ogg; args[audio-opus]="-vn -c:a libopus -b:a 96k"
[ ${#presets[@]} -gt 0 ] || presets=(mp4-1080p mp4-720p mp4-480p hevc-1080p webm-720p av1-720p audio-m4a audio-mp3 audio-opus)
for p in "${presets[@]}"; do
  [ -n "${ext[$p]:-}" ] || { echo "bench_presets.sh: no ffmpeg reference for preset '$p'" >&2; exit 2; }
done

dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$in")
ff=(ffmpeg -nostdin -hide_banner -loglevel error -y -threads 0)
echo "vidq:   $("$vidq" --version | head -n 1)"
echo "ffmpeg: $(ffmpeg -version | head -n 1)"
echo "cores:  $(nproc); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input:  $in (${dur}s)"
echo
printf '%-11s %9s %9s %9s %9s %7s\n' preset "vidq s" "ffmpeg s" "vidq xRT" "ff xRT" ratio
for p in "${presets[@]}"; do
  rm -f "$dir/p_vidq.txt" "$dir/p_ff.txt"
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then order="vidq ffmpeg"; else order="ffmpeg vidq"; fi
    for who in $order; do
      if [ "$who" = vidq ]; then
        # auto_copy false: this measures encoding (the 1080p input would
        # otherwise be copied as it is by mp4-1080p, see bench_remux.sh).
        bench_measure "$dir" p_vidq "$vidq" transcode "$in" "$dir/p_vidq.${ext[$p]}" \
          --output "{\"name\":\"o\",\"preset\":\"$p\",\"auto_copy\":false}" --progress none
      else
        # shellcheck disable=SC2086 # args are words on purpose
        bench_measure "$dir" p_ff "${ff[@]}" -i "$in" ${args[$p]} "$dir/p_ff.${ext[$p]}"
      fi
    done
  done
  v=$(cut -d' ' -f1 "$dir/p_vidq.txt" | median)
  f=$(cut -d' ' -f1 "$dir/p_ff.txt" | median)
  awk -v p="$p" -v v="$v" -v f="$f" -v d="$dur" \
    'BEGIN { printf "%-11s %9.2f %9.2f %9.1f %9.1f %7.3f\n", p, v, f, d / v, d / f, v / f }'
done
echo
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$dir/time.tmp" "$dir/err.tmp"
