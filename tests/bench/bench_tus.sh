#!/usr/bin/env bash
# bench_tus.sh - resumable (tus) upload throughput against the raw upload, in
# one run, alternating: a 1 GiB file of random bytes sent
#   raw   : one POST /upload (Content-Type application/octet-stream, curl -T);
#   tus   : POST /v1/uploads/ then PATCHes of CHUNK_MB (a curl loop, one
#           process and connection per chunk, as a simple client would);
#   rawjs : one POST /upload from node's http module (tests/support/
#           raw_upload.js): the raw figure of the client below;
#   tusjs : the npm tus-js-client under node, chunkSize CHUNK_MB.
# curl is compared with curl and node with node: node's stream plumbing
# alone tops out well below curl on this kind of machine.
# A tus PATCH answers 204 once its bytes were written (page cache) and its
# offset stored: every acknowledged byte survives kill -9 of the server. With
# BENCH_TUS_FSYNC=1 the server runs with --tus-fsync 1 (each chunk
# fdatasync'd before its 204: survives a power cut), to price that option.
# Time is client wall clock from the first byte to the last answer (the
# server probes the file in every case; random bytes are not media, so all
# end refused: no transcode in the figure). Prints MB/s per round, medians
# (and the range) and the tus/raw ratios (target >= 0.80), and the load.
# usage: [CHUNK_MB=64] [BENCH_TUS_FSYNC=0] tests/bench/bench_tus.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
rounds=${2:-3}
chunk_mb=${CHUNK_MB:-64}
fsync=${BENCH_TUS_FSYNC:-0}
bin=$PWD/$build/vidq
client=$PWD/tests/support/tus_upload.js
work=$(mktemp -d /tmp/vidq-bench-tus.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

size=$((1024 * 1024 * 1024))
chunk=$((chunk_mb * 1024 * 1024))
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
range() { sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {print lo "-" hi}'; }
now() { date +%s.%N; }
mbps() { echo "scale=1; $size / 1048576 / ($2 - $1)" | bc; }

head -c "$size" /dev/urandom >"$work/src.bin"
mkdir "$work/chunks"
split -b "$chunk" -d -a 4 "$work/src.bin" "$work/chunks/c"

rm -rf "$work/data"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --max-upload-bytes 4294967296 \
  --tus-fsync "$fsync" >"$work/out" 2>"$work/log" &
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
raw_js() {
  node "$PWD/tests/support/raw_upload.js" "$base/upload" "$work/src.bin" | grep -q '"status":415'
}
tus_js() {
  node "$client" --endpoint "$base/v1/uploads/" --file "$work/src.bin" --chunk-size "$chunk" |
    grep -q '"event":"success"'
}

: >"$work/raw"; : >"$work/tus"; : >"$work/rawjs"; : >"$work/tusjs"
echo "== 1 GiB upload, $chunk_mb MiB tus chunks, --tus-fsync $fsync, $rounds rounds (alternating)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  sync
  t0=$(now); raw; t1=$(now); mbps "$t0" "$t1" >>"$work/raw"
  sync
  t0=$(now); tus_curl; t1=$(now); mbps "$t0" "$t1" >>"$work/tus"
  sync
  t0=$(now); tus_js; t1=$(now); mbps "$t0" "$t1" >>"$work/tusjs"
  sync
  t0=$(now); raw_js; t1=$(now); mbps "$t0" "$t1" >>"$work/rawjs"
  echo "round $r: raw(curl) $(tail -1 "$work/raw") MB/s, tus(curl) $(tail -1 "$work/tus") MB/s," \
    "tus-js-client $(tail -1 "$work/tusjs") MB/s, raw(node) $(tail -1 "$work/rawjs") MB/s" \
    "(load $(cut -d' ' -f1 /proc/loadavg))"
done
m_raw=$(median <"$work/raw"); m_tus=$(median <"$work/tus")
m_rawjs=$(median <"$work/rawjs"); m_js=$(median <"$work/tusjs")
echo "median MB/s (range): raw(curl) $m_raw ($(range <"$work/raw")), tus(curl) $m_tus" \
  "($(range <"$work/tus")), raw(node) $m_rawjs ($(range <"$work/rawjs")), tus-js-client $m_js" \
  "($(range <"$work/tusjs"))"
echo "ratio tus(curl)/raw(curl): $(echo "scale=2; $m_tus / $m_raw" | bc)," \
  "tus-js-client/raw(node): $(echo "scale=2; $m_js / $m_rawjs" | bc)," \
  "tus-js-client/raw(curl): $(echo "scale=2; $m_js / $m_raw" | bc)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$pid"; wait "$pid" || true
