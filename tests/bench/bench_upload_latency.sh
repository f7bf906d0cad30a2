#!/usr/bin/env bash
# Upload latency (issue #16): how long a client waits for its 202, probe
# included, against a plain loopback sink that only reads the same bytes
# (upload_sink.py), in the same run; and how long a claimed job waits for
# its worker to run.
#   tests/bench/bench_upload_latency.sh [N] [VIDQ_SERVE_ARGS...]
# N uploads (default 200) of each size (7.5 KB and 1 MB clips), one after
# another and 8 at a time, raw bodies over one keep-alive curl process per
# batch; p50 and p99 of curl's time_total. Claim -> running is read from
# the server's log: "job started" (claimed) to the child's "worker running"
# (forked, sandboxed, about to read its input). Jobs are thumbnails at
# --worker-nice 19 so they disturb the uploads as little as possible.
# The memory of the idle server is taken twice: with the zygote's spares,
# and after --spare-idle (5 s here) has ended them.
# Then claim -> running once more on a fresh server with nothing else
# going on: a longer job holds the one slot while 30 short jobs queue.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${VIDQ_BIN:-$here/../../build/vidq}
n=${1:-200}
shift || true
work=$(mktemp -d /tmp/vidq-bench-upload.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

# The clips: ~7.5 KB (two seconds of 128x96 video) and ~1 MB.
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=128x96:rate=10:duration=2" \
  -c:v libx264 -preset veryfast -crf 30 -pix_fmt yuv420p "$work/small.mp4"
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=640x360:rate=25:duration=4,noise=alls=20:allf=t" \
  -c:v libx264 -preset veryfast -b:v 2M -pix_fmt yuv420p "$work/large.mp4"

"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --port-file "$work/port" \
  --max-queued 100000 --max-concurrent 1 --worker-nice 19 --spare-idle 5 "$@" >/dev/null 2>"$work/server.log" &
pids+=($!)
python3 "$here/upload_sink.py" "$work/sinkport" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && [ -s "$work/sinkport" ] && break; sleep 0.1; done
vidq=http://127.0.0.1:$(cat "$work/port")/upload?preset=thumbnail
sink=http://127.0.0.1:$(cat "$work/sinkport")/upload?preset=thumbnail

pct() { # P: the P-th percentile of the numbers on stdin (nearest rank)
  sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", v[i] * 1000 }'
}
# claim_stats LOG WHAT: claim ("job started") -> the child's "worker
# running" for every job in LOG (ms timestamps), p50 and p99.
claim_stats() {
  awk '
    function ms(ts) { split(substr(ts, 12, 12), t, ":"); return (t[1] * 3600 + t[2] * 60 + t[3]) * 1000 }
    / job started id=/ { match($0, /id=[^ ]+/); id = substr($0, RSTART + 3, RLENGTH - 3); started[id] = ms($1) }
    / job worker started id=/ { match($0, /id=[^ ]+/); id = substr($0, RSTART + 3, RLENGTH - 3)
                               match($0, /worker_pid=[0-9]+/); pidof[substr($0, RSTART + 11, RLENGTH - 11)] = id }
    / worker running pid=/ { match($0, /pid=[0-9]+/); p = substr($0, RSTART + 4, RLENGTH - 4)
                            if (p in pidof && pidof[p] in started) print ms($1) - started[pidof[p]] }
  ' "$1" >"$work/claim.txt"
  local c
  c=$(wc -l <"$work/claim.txt")
  echo "claim -> worker running, $2 ($c jobs): p50 $(sort -n "$work/claim.txt" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }') ms, p99 $(sort -n "$work/claim.txt" | awk '{ v[NR] = $1 } END { i = int(NR * 0.99 + 0.999); print v[i] }') ms"
}
# batch URL FILE PARALLEL: n uploads of FILE, time_total of each, one a line.
batch() {
  local url=$1 file=$2 par=$3 urls=()
  for _ in $(seq "$n"); do urls+=(-o /dev/null "$url"); done
  local popt=()
  [ "$par" -gt 1 ] && popt=(--parallel --parallel-max "$par")
  # No "Expect: 100-continue": the sink would not answer it, and curl
  # would wait 1 s before each large body.
  curl -s --no-progress-meter -H 'Expect:' "${popt[@]}" -w '%{http_code} %{time_total}\n' -X POST \
    -H 'Content-Type: video/mp4' --data-binary "@$file" "${urls[@]}" >"$work/times.txt"
  local bad
  bad=$(awk '$1 != 202' "$work/times.txt" | wc -l)
  [ "$bad" -eq 0 ] || { echo "bench: $bad answers were not 202: $(awk '$1 != 202' "$work/times.txt" | head -3)" >&2; exit 1; }
  awk '{ print $2 }' "$work/times.txt"
}

printf '%-22s %10s %10s %10s %10s %8s\n' "case ($n uploads)" "vidq p50" "vidq p99" "sink p50" "sink p99" "p50 x"
for size in small large; do
  for par in 1 8; do
    # Alternate: the sink, then vidq, so both see the same machine.
    s=$(batch "$sink" "$work/$size.mp4" "$par")
    v=$(batch "$vidq" "$work/$size.mp4" "$par")
    sp50=$(pct 50 <<<"$s"); sp99=$(pct 99 <<<"$s")
    vp50=$(pct 50 <<<"$v"); vp99=$(pct 99 <<<"$v")
    printf '%-22s %8s ms %7s ms %7s ms %7s ms %8.1f\n' \
      "$size ($(( $(stat -c %s "$work/$size.mp4") / 1024 )) KiB) x$par" "$vp50" "$vp99" "$sp50" "$sp99" \
      "$(awk -v a="$vp50" -v b="$sp50" 'BEGIN { print (b > 0 ? a / b : 0) }')"
  done
done

# Claim -> worker running, from the log (ms timestamps): wait for a few
# jobs to have started.
for _ in $(seq 300); do
  [ "$(grep -c 'worker running' "$work/server.log")" -ge 30 ] && break
  sleep 0.2
done
claim_stats "$work/server.log" "alongside the uploads, --worker-nice 19"
# The memory of an idle server: once every job ran (a spare caught while
# it becomes a job's child would be measured as that child).
metrics() { curl -s "http://127.0.0.1:$(cat "$work/port")/metrics"; }
for _ in $(seq 600); do
  metrics | awk '/^vidq_jobs\{status="(queued|running)"\}/ { n += $2 } END { exit n > 0 }' && break
  sleep 0.2
done
sleep 0.5 # the job spare is forked after 20 ms without a request
forks=$(metrics | awk '/^vidq_zygote_forks_total/ { print $2 }')
zpid=$(ps -o pid= -o comm= --ppid "${pids[0]}" | awk '$2 == "vidq-zygote" { print $1 }')
spid=$(ps -o pid= -o stat= -o comm= --ppid "${pids[0]}" | awk '$3 == "vidq-spare" && $2 !~ /^Z/ { print $1 }' | head -n 1)
jpid=$(ps -o pid= -o stat= -o comm= --ppid "${pids[0]}" | awk '$3 == "vidq-job-spare" && $2 !~ /^Z/ { print $1 }' | head -n 1)
# mem PID: RSS, PSS (shared pages divided among their users) and private
# (dirty + clean) memory, from smaps_rollup, in MB.
mem() {
  awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } /^Private_(Clean|Dirty):/ { v += $2 }
       END { printf "RSS %.1f MB, PSS %.1f MB, private %.1f MB", r / 1024, p / 1024, v / 1024 }' \
    "/proc/$1/smaps_rollup" 2>/dev/null || echo '?'
}
echo "children forked by the zygote: $forks"
# A probe spare's warm-up (a probe of the built-in clip in a fresh child,
# what each upload costs besides its own probe): its CPU so far
# (schedstat, ns) and its page faults. It has done nothing else yet.
[ -n "$spid" ] && echo "a probe spare's warm-up: $(awk '{ printf "%.1f ms CPU", $1 / 1e6 }' "/proc/$spid/schedstat"), $(awk '{ print $10 }' "/proc/$spid/stat") page faults"
echo "memory: server $(mem "${pids[0]}"); zygote $(mem "$zpid"); a probe spare ${spid:-none} $( [ -n "$spid" ] && mem "$spid"); job spare ${jpid:-none} $( [ -n "$jpid" ] && mem "$jpid")"
# Idle: after --spare-idle (5 s here) without a request the spares end,
# and the server's only live child is the zygote.
for _ in $(seq 100); do
  [ -z "$(ps -o comm= --ppid "${pids[0]}" | grep -E '^vidq-(job-)?spare$')" ] && break
  sleep 0.1
done
echo "idle, after --spare-idle: the server's children: $(ps -o comm= -o stat= --ppid "${pids[0]}" | awk '{ printf "%s%s ", $1, ($2 ~ /^Z/ ? "(zombie)" : "") }')"
echo "memory idle: server $(mem "${pids[0]}"); zygote $(mem "$zpid")"

# Claim -> running with nothing else going on: a fresh server, one slot,
# a longer job holding it while 30 short ones queue behind it (so each
# claim happens at a hand-off, with no upload being probed meanwhile),
# default --worker-nice.
"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data2" --port-file "$work/port2" \
  --max-concurrent 1 "$@" >/dev/null 2>"$work/server2.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/port2" ] && break; sleep 0.1; done
base2=http://127.0.0.1:$(cat "$work/port2")
ids=("$(curl -s -X POST -H 'Content-Type: video/mp4' --data-binary "@$work/large.mp4" "$base2/upload?preset=mp4-720p" | jq -r .id)")
for _ in $(seq 30); do
  ids+=("$(curl -s -X POST -H 'Content-Type: video/mp4' --data-binary "@$work/small.mp4" "$base2/upload?preset=thumbnail" | jq -r .id)")
done
# One client waits, on the last job (they run in order): a curl started
# per job would start exactly at each hand-off and take the CPU the next
# job's child needs (it doubled this figure before 2026-12-03).
curl -sfN "$base2/v1/jobs/${ids[-1]}/events" >/dev/null || true
claim_stats "$work/server2.log" "a queue and nothing else"
