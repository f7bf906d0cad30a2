#!/usr/bin/env bash
# Benchmark (not a ctest test): the `hls` preset's ladder from the standard
# 10 s 1080p25 input (lib_bench.sh makes it from testsrc2 + sine once)
# through `vidq transcode --preset hls`, next to
#   (a) ONE ffmpeg command doing the same ladder: -filter_complex split into
#       four scalers, four libx264 encoders with vidq's settings (veryfast,
#       High, the ladder's bitrates, maxrate 1.5x, bufsize 2x, keyframes
#       forced at every segment boundary, no scene cuts), AAC 128k once in
#       an audio group, the hls muxer with the same segment length;
#   (b) four separate ffmpeg runs, one per rung (same settings; the 360p run
#       also makes the audio rendition, so the work is the same).
# Runs alternate (vidq, a, b) for ROUNDS rounds; prints the medians of the
# wall times and the ratios vidq/a (target <= 1.0) and vidq/b (<= 0.6).
#
#   tests/bench/bench_hls.sh [-n ROUNDS] [--vidq PATH] [--dir DIR]
# Defaults: 3 rounds, build/vidq, build/bench. Every tool uses every core.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=3 vidq=build/vidq dir=build/bench
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--rounds) rounds=$2; shift 2 ;;
    --vidq) vidq=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench_hls.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench_hls.sh: -n takes a positive number" >&2; exit 2; }
[ -x "$vidq" ] || { echo "bench_hls.sh: no vidq binary at $vidq (build first: bash deploy/build.sh)" >&2; exit 2; }
. tests/bench/lib_bench.sh
in=$(bench_input "$dir")
w=$dir/hls
rm -rf "$w"
mkdir -p "$w"

# One vidq run first: it tells the segment length the preset picked for
# this input (and warms the page cache for everyone).
"$vidq" transcode "$in" "$w/probe" --preset hls --progress none
seg=$(sed -n 's/^#EXTINF:\([0-9.]*\),.*/\1/p' "$w/probe/720p/index.m3u8" | head -n 1)
seg=$(printf '%.0f' "$seg")
rungs=$(grep -c '^#EXT-X-STREAM-INF' "$w/probe/master.m3u8")
[ "$rungs" = 4 ] || { echo "bench_hls.sh: vidq made $rungs rungs, want 4" >&2; exit 1; }

# The two ffmpeg references, written out as scripts ($w/one.sh, $w/four.sh)
# so the exact command lines can be read and rerun.
ff="ffmpeg -nostdin -hide_banner -loglevel error -y -threads 0"
# vidq's H.264 rung settings (transcode/src/encode.c, fixed_gop) and the
# ladder of transcode/src/hls.c: height width bitrate.
x264="-c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -g 100000 -x264-params scenecut=0 -forced-idr 1 -force_key_frames 'expr:gte(t,n_forced*$seg)'"
ladder=("1080 1920 5000000" "720 1280 2800000" "480 854 1400000" "360 640 800000")
hls_opts="-f hls -hls_time $seg -hls_list_size 0 -hls_playlist_type vod -hls_segment_type mpegts -hls_flags independent_segments"
aac="-c:a aac -b:a 128k -ac 2"

fc="[0:v]split=4[s0][s1][s2][s3]" maps="" vsm="" i=0
for r in "${ladder[@]}"; do
  read -r h wd br <<<"$r"
  fc+=";[s$i]scale=$wd:$h:flags=bicubic,setsar=1[v$i]"
  maps+=" -map '[v$i]' -b:v:$i $br -maxrate:v:$i $((br * 3 / 2)) -bufsize:v:$i $((br * 2))"
  vsm+="v:$i,agroup:aud,name:${h}p "
  i=$((i + 1))
done
cat >"$w/one.sh" <<EOF
rm -rf '$w/a' && mkdir -p '$w/a'
$ff -i '$in' -filter_complex '$fc'$maps $x264 -map a:0 $aac \\
  $hls_opts -master_pl_name master.m3u8 -var_stream_map '${vsm}a:0,agroup:aud,name:audio' \\
  -hls_segment_filename '$w/a/%v/seg%05d.ts' '$w/a/%v/index.m3u8'
EOF
{
  echo "rm -rf '$w/b' && mkdir -p '$w/b'"
  for r in "${ladder[@]}"; do
    read -r h wd br <<<"$r"
    audio="-an"
    [ "$h" = 360 ] && audio="-map 0:a:0 $aac"
    echo "mkdir -p '$w/b/${h}p' && $ff -i '$in' -map 0:v:0 -vf scale=$wd:$h:flags=bicubic,setsar=1 $x264 -b:v $br -maxrate $((br * 3 / 2)) -bufsize $((br * 2)) $audio $hls_opts -hls_segment_filename '$w/b/${h}p/seg%05d.ts' '$w/b/${h}p/index.m3u8'"
  done
} >"$w/four.sh"

echo "vidq:   $("$vidq" --version | head -n 1)"
echo "ffmpeg: $(ffmpeg -version | head -n 1)"
echo "cores:  $(nproc); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input:  $in; ladder 1080/720/480/360, ${seg} s segments, $rounds rounds"
: >"$w/vidq.txt"; : >"$w/one.txt"; : >"$w/four.txt"
for i in $(seq "$rounds"); do
  rm -rf "$w/v"
  bench_measure "$w" vidq "$vidq" transcode "$in" "$w/v" --preset hls --progress none
  bench_measure "$w" one bash -e "$w/one.sh"
  bench_measure "$w" four bash -e "$w/four.sh"
  echo "round $i: vidq $(tail -n 1 "$w/vidq.txt" | cut -d' ' -f1) s, ffmpeg one command $(tail -n 1 "$w/one.txt" | cut -d' ' -f1) s, ffmpeg x4 $(tail -n 1 "$w/four.txt" | cut -d' ' -f1) s (load $(cut -d' ' -f1 /proc/loadavg))"
done
# The reference outputs are ladders too (a quick sanity check).
[ -s "$w/a/master.m3u8" ] && [ "$(grep -c '^#EXT-X-STREAM-INF:.*RESOLUTION=' "$w/a/master.m3u8")" = 4 ] ||
  { echo "bench_hls.sh: the one-command ffmpeg ladder is not 4 variants" >&2; exit 1; }
for h in 1080 720 480 360; do [ -s "$w/b/${h}p/index.m3u8" ] || { echo "bench_hls.sh: no ${h}p from the separate runs" >&2; exit 1; }; done

cpu() { awk '{ print $3 + $4 }' "$1" | median; }
cv=$(cpu "$w/vidq.txt") ca=$(cpu "$w/one.txt") cb=$(cpu "$w/four.txt")
mv=$(cut -d' ' -f1 "$w/vidq.txt" | median)
ma=$(cut -d' ' -f1 "$w/one.txt" | median)
mb=$(cut -d' ' -f1 "$w/four.txt" | median)
rv=$(cut -d' ' -f2 "$w/vidq.txt" | median)
ra=$(cut -d' ' -f2 "$w/one.txt" | median)
echo
printf '%-34s %8s %10s %12s\n' run "median s" "CPU s" "peak RSS MiB"
printf '%-34s %8.2f %10.2f %12.0f\n' "vidq transcode --preset hls" "$mv" "$cv" "$(echo "$rv / 1024" | bc -l)"
printf '%-34s %8.2f %10.2f %12.0f\n' "(a) ffmpeg, one command" "$ma" "$ca" "$(echo "$ra / 1024" | bc -l)"
printf '%-34s %8.2f %10.2f %12s\n' "(b) ffmpeg, four runs" "$mb" "$cb" "-"
printf 'ratio vidq/(a) = %.3f (target <= 1.0); CPU %.3f\n' "$(echo "$mv / $ma" | bc -l)" "$(echo "$cv / $ca" | bc -l)"
printf 'ratio vidq/(b) = %.3f (target <= 0.6); CPU %.3f\n' "$(echo "$mv / $mb" | bc -l)" "$(echo "$cv / $cb" | bc -l)"
# How busy each kept the cores (CPU s / wall s / cores): on a quiet
# machine both keep them busy, so the wall ratio follows the CPU ratio,
# which one decode can only push down by the decodes and scalers it saves:
# the encoders' work is the same in both.
printf 'cores kept busy: vidq %.0f%%, (b) %.0f%%\n' "$(echo "100 * $cv / $mv / $(nproc)" | bc -l)" \
  "$(echo "100 * $cb / $mb / $(nproc)" | bc -l)"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
