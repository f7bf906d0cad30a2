#!/usr/bin/env bash
# bench_url_job.sh - a job from a URL (input_url) against what a client
# would do without it: `curl -o` from the same origin, then a raw upload
# of that file through the service (issue #15: "a URL job costs no more
# wall time than curl -o followed by an upload").
#   url  : POST /v1/jobs {"input_url": ...}; the server fetches (libcurl,
#          the target rule, Range resume), probes, transcodes;
#   curl : curl -o FILE from the origin, then POST /v1/jobs with the file as
#          a raw body (probed before the 202), then the same transcode.
# The origin is Debian's nginx serving the file on loopback (sendfile), so
# both sides fetch at the same speed; the server runs with --fetch-targets
# public+loopback. Rounds alternate url/curl. Time is client wall clock
# from the first request to the job's status "succeeded" (polled every
# 50 ms). The input is a CLIP_S seconds long 1280x720 H.264/AAC clip, of SIZE_MB
# (the bitrate chosen to reach about that), transcoded with
# PRESET (default thumbnail: the transfer dominates; use mp4-480p to see
# it against a real encode). Prints each round, the medians, url/curl, and
# the load average before and after.
# usage: [PRESET=thumbnail] [SIZE_MB=200] [CLIP_S=20] [PAIR=1] tests/bench/bench_url_job.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
rounds=${2:-3}
preset=${PRESET:-thumbnail}
size_mb=${SIZE_MB:-200}
secs=${CLIP_S:-20}
bin=$PWD/$build/vidq
work=$(mktemp -d /tmp/vidq-bench-url.XXXXXX)
source tests/support/nginx.sh
trap 'nginx_stop_all; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# The input: bitrate for size_mb over secs seconds (x264 ultrafast, CBR-ish).
kbps=$((size_mb * 8 * 1024 / secs))
mkdir -p "$work/www"
ffmpeg -v error -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=$secs" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$secs" \
  -c:v libx264 -preset ultrafast -b:v "${kbps}k" -minrate "${kbps}k" -maxrate "${kbps}k" \
  -bufsize "$((kbps * 2))k" -pix_fmt yuv420p -c:a aac -shortest "$work/www/in.mp4"
bytes=$(stat -c %s "$work/www/in.mp4")
echo "input: $bytes bytes, ${secs} s 1280x720, preset $preset"

nginx_start "$work/nginx" "
  server {
    listen 127.0.0.1:@PORT@;
    location / { root $work/www; sendfile on; }
  }" || { echo "nginx did not start" >&2; exit 1; }
origin=http://127.0.0.1:$NGINX_PORT/in.mp4

"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --fetch-targets public+loopback \
  --port-file "$work/port" >"$work/out" 2>"$work/log" &
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
base=http://127.0.0.1:$(cat "$work/port")

# wait_ok ID: until the job succeeded (exit 1 if it ended otherwise).
wait_ok() {
  local st
  while :; do
    st=$(curl -s "$base/v1/jobs/$1" | jq -r .status)
    case "$st" in
      succeeded) return 0 ;;
      failed|canceled) echo "job $1 $st: $(curl -s "$base/v1/jobs/$1" | jq -c .error)" >&2; return 1 ;;
    esac
    sleep 0.05
  done
}

run_url() {
  local t0 id
  t0=$(now)
  id=$(curl -s -H 'Content-Type: application/json' \
    -d "{\"input_url\": \"$origin\", \"preset\": [\"$preset\"]}" "$base/v1/jobs" | jq -r .id)
  wait_ok "$id"
  echo "$(now) - $t0" | bc
}

run_curl() {
  local t0 id
  t0=$(now)
  curl -s -o "$work/dl.mp4" "$origin"
  id=$(curl -s -X POST -H 'Content-Type: video/mp4' -T "$work/dl.mp4" \
    "$base/v1/jobs?preset=$preset" | jq -r .id)
  wait_ok "$id"
  rm -f "$work/dl.mp4"
  echo "$(now) - $t0" | bc
}

# PAIR=1: no rounds here; write the two clients as scripts (each one job,
# following its event stream to the end), print them and keep the server
# and the origin up until interrupted, so an outside timer can run them in
# turn as whole processes.
if [ "${PAIR:-0}" = 1 ]; then
  cat >"$work/url.sh" <<EOT
#!/bin/bash
id=\$(curl -s -H 'Content-Type: application/json' -d '{"input_url": "$origin", "preset": ["$preset"]}' "$base/v1/jobs" | jq -r .id)
curl -sfN "$base/v1/jobs/\$id/events" >/dev/null
[ "\$(curl -s "$base/v1/jobs/\$id" | jq -r .status)" = succeeded ]
EOT
  cat >"$work/curl.sh" <<EOT
#!/bin/bash
f=\$(mktemp -p "$work" dl.XXXXXX)
curl -s -o "\$f" "$origin"
id=\$(curl -s -X POST -H 'Content-Type: video/mp4' -T "\$f" "$base/v1/jobs?preset=$preset" | jq -r .id)
rm -f "\$f"
curl -sfN "$base/v1/jobs/\$id/events" >/dev/null
[ "\$(curl -s "$base/v1/jobs/\$id" | jq -r .status)" = succeeded ]
EOT
  chmod +x "$work/url.sh" "$work/curl.sh"
  echo "url client:  bash $work/url.sh"
  echo "curl client: bash $work/curl.sh"
  echo "(server and origin up; interrupt to stop)"
  trap 'exit 0' INT TERM # through the EXIT trap: nginx, server, files
  while :; do sleep 3600 & wait $!; done
fi

: >"$work/url.txt"
: >"$work/curl.txt"
for r in $(seq "$rounds"); do
  u=$(run_url)
  c=$(run_curl)
  echo "$u" >>"$work/url.txt"
  echo "$c" >>"$work/curl.txt"
  printf 'round %d: url %.2f s, curl -o + upload %.2f s\n' "$r" "$u" "$c"
done
mu=$(median <"$work/url.txt")
mc=$(median <"$work/curl.txt")
printf 'median: url %.2f s, curl -o + upload %.2f s, url/curl %.2f\n' "$mu" "$mc" \
  "$(echo "$mu / $mc" | bc -l)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
