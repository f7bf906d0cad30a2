#!/usr/bin/env bash
# bench_service.sh - the service against its references, in one run:
#   1. job time through `vidq serve` (upload -> succeeded, client clock) vs the
#      ffmpeg CLI doing the same job (mp4-720p of a 10 s 1080p clip), run
#      alternately, medians and ratio, for --isolation process (sandboxed, and with --sandbox off) and thread
#      (plus `vidq transcode`, the same library without the service);
#   2. GET /status/<id> with wrk: requests/s and p99, idle and while 2 jobs
#      transcode;
#   3. upload throughput of a 1 GiB raw and multipart body with curl (MB/s) and
#      the server's peak RSS (VmHWM) before/after;
#   4. slot hand-off: with --max-concurrent 1 and 8 short jobs queued, the
#      time from one job's finished_at to the next one's started_at (median
#      and max; target <= 20 ms).
# usage: tests/bench/bench_service.sh [BUILD_DIR] [ROUNDS]   (BENCH_PHASES="1 2 3 4" picks phases)
# Needs ffmpeg, curl, wrk, jq. Heavy: run with `nice` on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
rounds=${2:-3}
bin=$PWD/$build/vidq
work=$(mktemp -d /tmp/vidq-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

src=$work/src_1080p_10s.mp4
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=10 \
  -f lavfi -i sine=frequency=440:duration=10 -c:v libx264 -preset ultrafast -crf 18 -c:a aac -shortest "$src"

start_server() { # isolation, extra flags...
  local iso=$1; shift
  rm -rf "$work/data" "$work/out"   # no stale "listening on" line of the last server
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --isolation "$iso" \
    --max-upload-bytes 4294967296 "$@" >"$work/out" 2>"$work/log" &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.05; done
  port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$work/out")
  base=http://127.0.0.1:$port
}
stop_server() { kill -TERM "$pid"; wait "$pid" || true; }

upload() { # file, query -> job id (one retry; says why on failure)
  local try code
  for try in 1 2; do
    code=$(curl -s -o "$work/resp" -w '%{http_code}' -X POST -H 'Content-Type: video/mp4' \
      -T "$1" "$base/upload?$2" || true)
    if [ "$code" = 202 ]; then jq -r .id "$work/resp"; return 0; fi
    echo "upload failed (try $try): HTTP $code $(head -c 300 "$work/resp" 2>/dev/null)" >&2
    tail -n 5 "$work/log" >&2
  done
  return 1
}
wait_done() { # id: follow the job's event stream (it ends with the job), no polling
  curl -sfN "$base/v1/jobs/$1/events" >/dev/null || true
  st=$(curl -sf "$base/status/$1" | jq -r .status)
  [ "$st" = succeeded ] || { echo "job $1 $st" >&2; return 1; }
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
phases=${BENCH_PHASES:-1 2 3 4}
case " $phases " in *" 1 "*)
echo "== 1. job time: service vs ffmpeg CLI (mp4-720p of 10 s 1080p30, $rounds rounds each, alternating)"
# process (sandboxed, the default), process with --sandbox off (what the
# sandbox costs), thread.
for mode in process process:off thread; do
  iso=${mode%%:*}
  sandbox=strict; [ "$mode" = process:off ] && sandbox=off
  # The job's child runs at the bench's own niceness, so that it competes
  # for the CPU exactly like the ffmpeg run it is compared with.
  start_server "$iso" --max-concurrent 1 --worker-nice "$(nice)" --sandbox "$sandbox"
  : >"$work/t_svc"; : >"$work/t_ff"; : >"$work/t_cli"
  for r in $(seq "$rounds"); do
    t0=$(now)
    "$bin" transcode "$src" "$work/cli.mp4" --preset mp4-720p --progress none
    echo "$(now) - $t0" | bc >>"$work/t_cli"
    t0=$(now)
    ffmpeg -nostdin -hide_banner -loglevel error -y -i "$src" -vf scale=-2:720 -c:v libx264 \
      -preset veryfast -crf 23 -profile:v high -pix_fmt yuv420p -c:a aac -b:a 128k \
      -movflags +faststart "$work/ff.mp4"
    echo "$(now) - $t0" | bc >>"$work/t_ff"
    t0=$(now)
    id=$(upload "$src" "preset=mp4-720p")
    wait_done "$id"
    echo "$(now) - $t0" | bc >>"$work/t_svc"
  done
  svc=$(median <"$work/t_svc"); ff=$(median <"$work/t_ff"); cli=$(median <"$work/t_cli")
  printf "isolation=%-8s sandbox=%-6s service %.3f s  ffmpeg %.3f s  ratio %.3f   (vidq transcode CLI %.3f s: service/CLI %.3f)\n" \
    "$iso" "$([ "$iso" = thread ] && echo none || echo "$sandbox")" "$svc" "$ff" "$(echo "$svc / $ff" | bc -l)" "$cli" "$(echo "$svc / $cli" | bc -l)"
  stop_server
done
;; esac

case " $phases " in *" 2 "*)
echo "== 2. GET /status/<id> with wrk (-t2 -d5s, 16 and 64 keep-alive connections)"
# Jobs at lower CPU priority than the HTTP threads, as in production
# (--worker-nice is absolute: 10 above the bench's own niceness).
wn=$(( $(nice) + 10 )); [ $wn -gt 19 ] && wn=19
start_server process --max-concurrent 2 --worker-nice $wn
id=$(upload "$src" "preset=mp4-480p"); wait_done "$id"
run_wrk() {
  local c
  for c in 16 64; do
    wrk -t2 -c$c -d5s --latency "$base/status/$id" >"$work/wrk" 2>&1
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk")
    p99=$(awk '$1=="99%" {print $2}' "$work/wrk")
    echo "$1, $c connections: $rps req/s, p99 $p99"
  done
}
run_wrk "idle"
j1=$(upload "$src" "preset=mp4-1080p"); j2=$(upload "$src" "preset=mp4-1080p")
sleep 0.5
run_wrk "2 jobs transcoding"
running=$(curl -sf "$base/metrics" | awk '/^vidq_jobs_running/ {print $2}')
echo "   (jobs running at the end of the wrk run: $running)"
wait_done "$j1"; wait_done "$j2"
stop_server
;; esac

case " $phases " in *" 3 "*)
echo "== 3. upload throughput (1 GiB) and peak RSS"
big=$work/big.bin
head -c 1073741824 /dev/zero >"$big"
start_server process
rss() { awk '/VmHWM/ {print $2 " " $3}' /proc/"$pid"/status; }
echo "peak RSS after start: $(rss)"
for kind in raw multipart; do
  if [ $kind = raw ]; then
    out=$(curl -s -o /dev/null -w '%{http_code} %{speed_upload}' -X POST -H 'Content-Type: application/octet-stream' \
      -H 'Expect:' -T "$big" "$base/upload")
  else
    out=$(curl -s -o /dev/null -w '%{http_code} %{speed_upload}' -H 'Expect:' -F "file=@$big" "$base/upload")
  fi
  code=${out% *}; speed=${out#* }
  # The body is zeros, so the answer is 415 after it was stored and probed.
  printf "%-9s upload: HTTP %s, %.0f MB/s, peak RSS now %s\n" $kind "$code" "$(echo "$speed / 1000000" | bc -l)" "$(rss)"
done
stop_server
;; esac

case " $phases " in *" 4 "*)
echo "== 4. slot hand-off: finished_at of a job -> started_at of the next (--max-concurrent 1, 1 long + 8 short jobs queued)"
short=$work/short.mp4
ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=25:duration=1 \
  -f lavfi -i sine=duration=1 -c:v libx264 -preset ultrafast -c:a aac -shortest "$short"
start_server process --max-concurrent 1
# A longer job first holds the slot while the 8 short ones are uploaded,
# so every hand-off has a queued job waiting (else a gap measures the
# next upload's arrival, not the hand-off).
ids=("$(upload "$src" "preset=mp4-720p")")
for _ in $(seq 8); do ids+=("$(upload "$short" "preset=audio-m4a")"); done
for id in "${ids[@]}"; do wait_done "$id"; done
# Seconds with milliseconds from the ISO times, sorted by start.
for id in "${ids[@]}"; do curl -sf "$base/status/$id"; echo; done |
  jq -r '[.started_at, .finished_at] | map((.[0:19] + "Z" | fromdateiso8601) + (.[20:23] | tonumber) / 1000) | @tsv' |
  sort -g >"$work/times"
awk 'NR > 1 { print ($1 - prev) * 1000 } { prev = $2 }' "$work/times" >"$work/gaps"
printf "hand-off: median %.1f ms, max %.1f ms over %d hand-offs\n" "$(median <"$work/gaps")" \
  "$(sort -g "$work/gaps" | tail -n 1)" "$(wc -l <"$work/gaps")"
stop_server
;; esac
