#!/usr/bin/env bash
# Benchmark (not a ctest test): vidq against the ffmpeg command line on the
# same jobs, run alternately in one run, printing medians and ratios.
#
#   1. 10 s of 1080p25 H.264+AAC -> 720p H.264 veryfast CRF 23 + AAC 128k
#      (MP4 with faststart on both sides, as vidq always writes it).
#   2. the same input -> three MP4 renditions (1080p, 720p, 480p): ONE vidq
#      pass (one demux+decode feeding three encoders) against three separate
#      ffmpeg runs (the time of the three added up, the largest peak RSS).
#
#   tests/bench/bench_transcode.sh [-n ROUNDS] [--vidq PATH] [--dir DIR] [--only 1|2]
# Defaults: 5 rounds, build/vidq, build/bench (the input is made there once
# and kept). Wall time and peak RSS come from /usr/bin/time -f '%e %M'.
# Both tools use every core (their default); run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=5 vidq=build/vidq dir=build/bench only=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--rounds) rounds=$2; shift 2 ;;
    --vidq) vidq=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench_transcode.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench_transcode.sh: -n takes a positive number" >&2; exit 2; }
[ -x "$vidq" ] || { echo "bench_transcode.sh: no vidq binary at $vidq (build first: bash deploy/build.sh)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench_transcode.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
mkdir -p "$dir"

. tests/bench/lib_bench.sh
in=$(bench_input "$dir")
measure() { local name=$1; shift; bench_measure "$dir" "$name" "$@"; }
# summary NAME: "median_secs median_peak_kib max_peak_kib" of NAME's runs.
summary() {
  echo "$(cut -d' ' -f1 "$dir/$1.txt" | median) $(cut -d' ' -f2 "$dir/$1.txt" | median) $(cut -d' ' -f2 "$dir/$1.txt" | sort -n | tail -n 1)"
}
report() { # TITLE VIDQ_NAME FFMPEG_NAME
  local vt vm vx ft fm fx
  read -r vt vm vx <<<"$(summary "$2")"
  read -r ft fm fx <<<"$(summary "$3")"
  echo
  echo "== $1 ($rounds rounds, alternating; median wall time, median / max peak RSS)"
  printf '  %-8s %7.2f s   %7.1f MiB / %7.1f MiB\n' vidq "$vt" "$(awk -v k="$vm" 'BEGIN{print k/1024}')" "$(awk -v k="$vx" 'BEGIN{print k/1024}')"
  printf '  %-8s %7.2f s   %7.1f MiB / %7.1f MiB\n' ffmpeg "$ft" "$(awk -v k="$fm" 'BEGIN{print k/1024}')" "$(awk -v k="$fx" 'BEGIN{print k/1024}')"
  printf '  ratio vidq/ffmpeg: time %.3f, peak RSS %.3f\n' \
    "$(awk -v a="$vt" -v b="$ft" 'BEGIN{print a/b}')" "$(awk -v a="$vm" -v b="$fm" 'BEGIN{print a/b}')"
}

ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)
spec720='{"name":"o","container":"mp4","video":{"codec":"h264","max_height":720,"crf":23,"speed":"veryfast"},"audio":{"codec":"aac","bitrate":128000}}'
# "auto_copy": false: the 1080p rung would otherwise be a stream copy of the
# ~7.8 Mb/s 1080p input (the remux fast path), and this job measures encoding.
rendition() { # HEIGHT: a spec like spec720 at that height
  echo "{\"name\":\"r$1\",\"container\":\"mp4\",\"auto_copy\":false,\"video\":{\"codec\":\"h264\",\"max_height\":$1,\"crf\":23,\"speed\":\"veryfast\"},\"audio\":{\"codec\":\"aac\",\"bitrate\":128000}}"
}

# The three renditions in one vidq pass: --output with a JSON array of
# specs, OUT a folder that gets <name>.mp4 for each.
vidq_three_form() {
  echo "vidq transcode IN DIR --progress none --output '[R1080,R720,R480]' (R<h>: the spec above at max_height h, named r<h>)"
}
vidq_three() {
  rm -rf "$dir/vidq3"
  mkdir -p "$dir/vidq3"
  measure three_vidq "$vidq" transcode "$in" "$dir/vidq3" --progress none \
    --output "[$(rendition 1080),$(rendition 720),$(rendition 480)]"
}

echo "vidq:   $("$vidq" --version | head -n 1)"
echo "ffmpeg: $(ffmpeg -version | head -n 1)"
echo "cores:  $(nproc); load now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input:  $in ($(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height,avg_frame_rate -of csv=p=0 "$in"), $(stat -c %s "$in") bytes)"

if [ -z "$only" ] || [ "$only" = 1 ]; then
  rm -f "$dir/one_vidq.txt" "$dir/one_ffmpeg.txt"
  echo
  echo "job 1: vidq transcode $in OUT --progress none --output '$spec720'"
  echo "   vs: ffmpeg -i $in -vf scale=-2:720 -c:v libx264 -preset veryfast -crf 23 -c:a aac -b:a 128k -movflags +faststart OUT"
  for r in $(seq "$rounds"); do
    # Alternate who goes first, so neither always gets the warmer cache.
    if [ $((r % 2)) -eq 1 ]; then order="vidq ffmpeg"; else order="ffmpeg vidq"; fi
    for who in $order; do
      if [ "$who" = vidq ]; then
        measure one_vidq "$vidq" transcode "$in" "$dir/out_vidq.mp4" --progress none --output "$spec720"
      else
        measure one_ffmpeg "${ff[@]}" -i "$in" -vf scale=-2:720 -c:v libx264 -preset veryfast -crf 23 \
          -c:a aac -b:a 128k -movflags +faststart "$dir/out_ffmpeg.mp4"
      fi
    done
    echo "  round $r: vidq $(tail -n 1 "$dir/one_vidq.txt" | cut -d' ' -f1) s, ffmpeg $(tail -n 1 "$dir/one_ffmpeg.txt" | cut -d' ' -f1) s"
  done
  for o in "$dir/out_vidq.mp4" "$dir/out_ffmpeg.mp4"; do
    echo "  $(basename "$o"): $(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,profile,width,height,pix_fmt -of csv=p=0 "$o"), $(stat -c %s "$o") bytes"
  done
  report "720p job" one_vidq one_ffmpeg
fi

if [ -z "$only" ] || [ "$only" = 2 ]; then
  rm -f "$dir/three_vidq.txt" "$dir/three_ffmpeg.txt"
  echo
  echo "job 2: three renditions 1080p/720p/480p"
  echo "  vidq: ONE $(vidq_three_form)"
  echo "  ffmpeg: three runs of: ffmpeg -i $in -vf scale=-2:H -c:v libx264 -preset veryfast -crf 23 -c:a aac -b:a 128k -movflags +faststart OUT_H.mp4"
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then order="vidq ffmpeg"; else order="ffmpeg vidq"; fi
    for who in $order; do
      if [ "$who" = vidq ]; then
        vidq_three
      else
        rm -f "$dir/three.tmp"
        for h in 1080 720 480; do
          measure three.tmp "${ff[@]}" -i "$in" -vf "scale=-2:$h" -c:v libx264 -preset veryfast -crf 23 \
            -c:a aac -b:a 128k -movflags +faststart "$dir/ffmpeg_r$h.mp4"
        done
        # The three runs as one job: times added, the largest peak.
        awk '{ t += $1; if ($2 > m) m = $2 } END { printf "%.2f %d\n", t, m }' "$dir/three.tmp.txt" >> "$dir/three_ffmpeg.txt"
        rm -f "$dir/three.tmp.txt"
      fi
    done
    echo "  round $r: vidq $(tail -n 1 "$dir/three_vidq.txt" | cut -d' ' -f1) s, ffmpeg x3 $(tail -n 1 "$dir/three_ffmpeg.txt" | cut -d' ' -f1) s"
  done
  report "three renditions" three_vidq three_ffmpeg
fi
rm -f "$dir/time.tmp" "$dir/err.tmp"
