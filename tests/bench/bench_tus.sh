#!/usr/bin/env bash
# bench_tus.sh - resumable (tus) upload throughput against the raw upload, in
# one run, alternating: a 1 GiB file sent
#   raw   : one POST /upload (Content-Type application/octet-stream, curl);
#   tus   : POST /v1/uploads/ then PATCHes of 8 MiB (a curl loop, one
#           connection per chunk, as a simple client would);
#   tusjs : the npm tus-js-client under node, chunkSize 8 MiB.
# Each tus PATCH is fdatasync'd before its 204 (every acknowledged byte
# survives kill -9); the raw upload is not. Time is client wall clock from
# the first byte to the last answer (the server probes the file in both cases;
# random bytes are not media, so both end refused: no transcode in the figure).
# Prints MB/s per round, medians and tus/raw ratios (target >= 0.80), and
# the disk's own ceiling for that durability: dd of the file in 8 MiB
# writes with oflag=dsync (each write on disk before the next), so a tus
# figure can be read against what the disk allows.
# usage: tests/bench/bench_tus.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
rounds=${2:-3}
bin=$PWD/$build/vidq
client=$PWD/tests/support/tus_upload.js
work=$(mktemp -d /tmp/vidq-bench-tus.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

size=$((1024 * 1024 * 1024))
chunk=$((8 * 1024 * 1024))
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
mbps() { echo "scale=1; $size / 1048576 / ($2 - $1)" | bc; }

head -c "$size" /dev/urandom >"$work/src.bin"
mkdir "$work/chunks"
split -b "$chunk" -d -a 4 "$work/src.bin" "$work/chunks/c"

rm -rf "$work/data"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --max-upload-bytes 4294967296 \
  >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$work/out")
base=http://127.0.0.1:$port

raw() {
  curl -s -o /dev/null -X POST -H 'Content-Type: application/octet-stream' -H 'Expect:' \
    -T "$work/src.bin" "$base/upload"
}
tus_curl() {
  loc=$(curl -s -D - -o /dev/null -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" \
    "$base/v1/uploads/" | tr -d '\r' | sed -n 's/^Location: //Ip')
  off=0
  for f in "$work"/chunks/c*; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Expect:' \
      -H 'Content-Type: application/offset+octet-stream' -H "Upload-Offset: $off" \
      -T "$f" "$base$loc")
    [ "$code" = 204 ] || { echo "PATCH at $off: $code" >&2; exit 1; }
    off=$((off + $(stat -c %s "$f")))
  done
}
tus_js() {
  node "$client" --endpoint "$base/v1/uploads/" --file "$work/src.bin" --chunk-size "$chunk" |
    grep -q '"event":"success"'
}

: >"$work/raw"; : >"$work/tus"; : >"$work/tusjs"; : >"$work/disk"
disk() { dd if="$work/src.bin" of="$work/dd.bin" bs=8M oflag=dsync status=none; rm -f "$work/dd.bin"; }
echo "== 1 GiB upload, 8 MiB tus chunks, $rounds rounds (alternating)"
for r in $(seq "$rounds"); do
  sync
  t0=$(now); raw; t1=$(now); mbps "$t0" "$t1" >>"$work/raw"
  sync
  t0=$(now); tus_curl; t1=$(now); mbps "$t0" "$t1" >>"$work/tus"
  sync
  t0=$(now); tus_js; t1=$(now); mbps "$t0" "$t1" >>"$work/tusjs"
  sync
  t0=$(now); disk; t1=$(now); mbps "$t0" "$t1" >>"$work/disk"
  echo "round $r: raw $(tail -1 "$work/raw") MB/s, tus(curl) $(tail -1 "$work/tus") MB/s," \
    "tus-js-client $(tail -1 "$work/tusjs") MB/s, disk dsync ceiling $(tail -1 "$work/disk") MB/s"
done
m_raw=$(median <"$work/raw"); m_tus=$(median <"$work/tus"); m_js=$(median <"$work/tusjs")
m_disk=$(median <"$work/disk")
echo "median: raw $m_raw MB/s, tus(curl) $m_tus MB/s, tus-js-client $m_js MB/s, disk dsync $m_disk MB/s"
echo "ratio tus(curl)/raw: $(echo "scale=2; $m_tus / $m_raw" | bc)," \
  "tus-js-client/raw: $(echo "scale=2; $m_js / $m_raw" | bc)," \
  "tus-js-client/disk ceiling: $(echo "scale=2; $m_js / $m_disk" | bc)"
kill -TERM "$pid"; wait "$pid" || true
