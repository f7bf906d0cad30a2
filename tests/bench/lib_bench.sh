# lib_bench.sh - what the benchmark scripts share (sourced, not run).
#   bench_input DIR     prints the path of the standard input, made once in DIR:
#                       10 s of 1080p25 H.264 (~8 Mb/s, light grain, like a
#                       phone or camera file) + stereo AAC 192k.
#   median              the median of the numbers on stdin, one per line.
#   bench_measure DIR NAME CMD...
#                       runs CMD under /usr/bin/time and appends "secs kib
#                       user sys" (wall time, peak RSS, CPU seconds) to
#                       DIR/NAME.txt; a failing
#                       command stops the benchmark with its stderr.

bench_input() {
  local dir=$1 in="$1/in_1080p25_10s.mp4"
  mkdir -p "$dir"
  if [ ! -s "$in" ]; then
    echo "making $in (once)..." >&2
    ffmpeg -nostdin -hide_banner -loglevel error -y \
      -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=10,noise=alls=3:allf=t" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
      -c:v libx264 -preset veryfast -b:v 8M -maxrate 10M -bufsize 16M -pix_fmt yuv420p \
      -c:a aac -ac 2 -b:a 192k \
      -shortest "$in.tmp.mp4"
    mv "$in.tmp.mp4" "$in"
  fi
  echo "$in"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bench_measure() {
  local dir=$1 name=$2
  shift 2
  if ! /usr/bin/time -f '%e %M %U %S' -o "$dir/time.tmp" "$@" >/dev/null 2>"$dir/err.tmp"; then
    echo "benchmark: failed: $*" >&2
    cat "$dir/err.tmp" >&2
    exit 1
  fi
  tail -n 1 "$dir/time.tmp" >> "$dir/$name.txt"
}
