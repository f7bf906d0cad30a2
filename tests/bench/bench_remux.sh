#!/usr/bin/env bash
# Benchmark (not a ctest test): the automatic remux fast path against
# re-encoding the same file with the same preset, run alternately, printing
# medians and the ratio.
#
#   input: 60 s of 720p25 H.264 High at ~2.5 Mb/s + stereo AAC 96k (a file
#          that already satisfies mp4-720p: both streams are copied)
#   remux:     vidq transcode IN OUT --preset mp4-720p
#   re-encode: vidq transcode IN OUT --output '{"preset":"mp4-720p","auto_copy":false}'
#
#   tests/bench/bench_remux.sh [-n ROUNDS] [--vidq PATH] [--dir DIR]
# Defaults: 5 rounds, build/vidq, build/bench (the input is made there once
# and kept). Wall time from /usr/bin/time. The target is remux >= 20x faster.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=5 vidq=build/vidq dir=build/bench
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--rounds) rounds=$2; shift 2 ;;
    --vidq) vidq=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench_remux.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench_remux.sh: -n takes a positive number" >&2; exit 2; }
[ -x "$vidq" ] || { echo "bench_remux.sh: no vidq binary at $vidq (build first: bash deploy/build.sh)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench_remux.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
mkdir -p "$dir"
in="$dir/in_720p25_60s.mp4"
if [ ! -s "$in" ]; then
  echo "making $in (once)..."
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=60,noise=alls=2:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=60" \
    -c:v libx264 -preset veryfast -b:v 2500k -maxrate 3500k -bufsize 5M -pix_fmt yuv420p \
    -c:a aac -ac 2 -b:a 96k -shortest "$in.tmp.mp4"
  mv "$in.tmp.mp4" "$in"
fi

reencode='{"name":"o","preset":"mp4-720p","auto_copy":false}'
# run NAME ARGS...: time one `vidq transcode IN OUT ARGS`, append the wall
# time to $dir/NAME.txt, keep its summary line (--progress json) aside.
run() {
  local name=$1
  shift
  if ! /usr/bin/time -f '%e' -o "$dir/time.tmp" "$vidq" transcode "$in" "$dir/out_$name.mp4" \
       --progress json "$@" >"$dir/out_$name.json" 2>"$dir/err.tmp"; then
    echo "bench_remux.sh: failed: vidq transcode $in ... $*" >&2
    cat "$dir/err.tmp" >&2
    exit 1
  fi
  tail -n 1 "$dir/time.tmp" >> "$dir/$name.txt"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "vidq:   $("$vidq" --version | head -n 1)"
echo "cores:  $(nproc); load now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input:  $in ($(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,profile,width,height,bit_rate -of csv=p=0 "$in"), $(stat -c %s "$in") bytes)"
echo "remux:     vidq transcode IN OUT --preset mp4-720p"
echo "re-encode: vidq transcode IN OUT --output '$reencode'"
rm -f "$dir/remux.txt" "$dir/reencode.txt"
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="remux reencode"; else order="reencode remux"; fi
  for who in $order; do
    if [ "$who" = remux ]; then run remux --preset mp4-720p; else run reencode --output "$reencode"; fi
  done
  echo "  round $r: remux $(tail -n 1 "$dir/remux.txt") s, re-encode $(tail -n 1 "$dir/reencode.txt") s"
done
copied() { tail -n 1 "$dir/out_$1.json" | jq -r '.outputs[0] | "video copied=\(.video.copied), audio copied=\(.audio.copied)"'; }
echo "  remux output:     $(copied remux)"
echo "  re-encode output: $(copied reencode)"
rm_t=$(median < "$dir/remux.txt")
re_t=$(median < "$dir/reencode.txt")
echo
echo "== remux vs re-encode ($rounds rounds, alternating; median wall time; load now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '  remux      %8.3f s\n  re-encode  %8.3f s\n  ratio re-encode/remux: %.1fx (target >= 20x)\n' \
  "$rm_t" "$re_t" "$(awk -v a="$re_t" -v b="$rm_t" 'BEGIN { print (b > 0 ? a / b : 0) }')"
rm -f "$dir/time.tmp" "$dir/err.tmp"
