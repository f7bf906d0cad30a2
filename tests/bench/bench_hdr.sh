#!/usr/bin/env bash
# Benchmark (not a ctest test): an HDR10 -> SDR 1080p -> 720p job, vidq
# against the ffmpeg command line running the same chain, alternately.
#
#   input: DURATION s (default 10) of 1080p25 HEVC Main 10, PQ / BT.2020 with
#          mastering display + content light level (testsrc2 with light grain
#          taken to PQ by zimg, 100 cd/m2 SDR white), stereo AAC; made once.
#   vidq:   vidq transcode IN OUT --output '{mp4-720p, "auto_copy": false}'
#   ffmpeg: ffmpeg -i IN -vf "<vidq's tone mapping>,scale=-2:720" -c:v libx264
#           -preset veryfast -crf 23 -profile:v high -c:a aac -b:a 128k
#           -movflags +faststart OUT
#   The tone mapping (transcode/src/filter.c):
#     zscale=tin=smpte2084:pin=bt2020:min=bt2020nc:rin=tv:t=linear:npl=100,
#     format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=mobius:desat=0,
#     zscale=t=bt709:m=bt709:r=tv,format=yuv420p
#
#   tests/bench/bench_hdr.sh [-n ROUNDS] [-d DURATION] [--vidq PATH] [--dir DIR]
# Defaults: 5 rounds, 10 s, build/vidq, build/bench. Both tools use every
# core. Prints medians, the ratio vidq/ffmpeg (target <= 1.02) and the PSNR
# of vidq's output against ffmpeg's (the same pictures: >= 40 dB).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=5 dur=10 vidq=build/vidq dir=build/bench
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--rounds) rounds=$2; shift 2 ;;
    -d|--duration) dur=$2; shift 2 ;;
    --vidq) vidq=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bench_hdr.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench_hdr.sh: -n takes a positive number" >&2; exit 2; }
[[ "$dur" =~ ^[1-9][0-9]*$ ]] || { echo "bench_hdr.sh: -d takes whole seconds" >&2; exit 2; }
[ -x "$vidq" ] || { echo "bench_hdr.sh: no vidq binary at $vidq (build first: bash deploy/build.sh)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench_hdr.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
mkdir -p "$dir"
. tests/bench/lib_bench.sh

in=$dir/in_hdr10_1080p25_${dur}s.mp4
if [ ! -s "$in" ]; then
  echo "making $in (once)..." >&2
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=$dur,noise=alls=3:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$dur" \
    -vf "format=yuv420p,zscale=tin=bt709:pin=bt709:min=bt709:rin=tv:t=smpte2084:p=bt2020:m=bt2020nc:r=tv:npl=100,format=yuv420p10le" \
    -c:v libx265 -preset ultrafast -b:v 12M \
    -x265-params "log-level=error:hdr10=1:repeat-headers=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50):max-cll=1000,400" \
    -color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc -tag:v hvc1 \
    -c:a aac -b:a 192k -shortest "$in.tmp.mp4"
  mv "$in.tmp.mp4" "$in"
fi

tm="zscale=tin=smpte2084:pin=bt2020:min=bt2020nc:rin=tv:t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
spec='{"name":"o","preset":"mp4-720p","auto_copy":false}'
rm -f "$dir/hdr_vidq.txt" "$dir/hdr_ffmpeg.txt"
for i in $(seq "$rounds"); do
  bench_measure "$dir" hdr_vidq "$vidq" transcode "$in" "$dir/hdr_vidq.mp4" --output "$spec" --progress none
  bench_measure "$dir" hdr_ffmpeg ffmpeg -nostdin -hide_banner -loglevel error -y -i "$in" \
    -vf "$tm,scale=-2:720" -c:v libx264 -preset veryfast -crf 23 -profile:v high \
    -c:a aac -b:a 128k -movflags +faststart "$dir/hdr_ffmpeg.mp4"
  echo "round $i/$rounds: vidq $(tail -n 1 "$dir/hdr_vidq.txt" | cut -d' ' -f1) s, ffmpeg $(tail -n 1 "$dir/hdr_ffmpeg.txt" | cut -d' ' -f1) s" >&2
done
vt=$(cut -d' ' -f1 "$dir/hdr_vidq.txt" | median)
ft=$(cut -d' ' -f1 "$dir/hdr_ffmpeg.txt" | median)
vm=$(cut -d' ' -f2 "$dir/hdr_vidq.txt" | median)
fm=$(cut -d' ' -f2 "$dir/hdr_ffmpeg.txt" | median)
psnr=$(ffmpeg -nostdin -hide_banner -i "$dir/hdr_vidq.mp4" -i "$dir/hdr_ffmpeg.mp4" -lavfi "[0:v][1:v]psnr" -f null - 2>&1 |
  sed -n 's/.*average:\([0-9.inf]*\).*/\1/p' | tail -n 1)
echo
echo "== HDR10 1080p -> SDR 720p H.264 ($rounds rounds, ${dur} s input, alternating; medians)"
printf '  vidq    %7.2f s  %7.1f MiB\n' "$vt" "$(awk -v k="$vm" 'BEGIN{print k/1024}')"
printf '  ffmpeg  %7.2f s  %7.1f MiB\n' "$ft" "$(awk -v k="$fm" 'BEGIN{print k/1024}')"
printf '  ratio vidq/ffmpeg: time %.3f (target <= 1.02), peak RSS %.3f; PSNR vidq vs ffmpeg %s dB\n' \
  "$(awk -v a="$vt" -v b="$ft" 'BEGIN{print a/b}')" "$(awk -v a="$vm" -v b="$fm" 'BEGIN{print a/b}')" "$psnr"
