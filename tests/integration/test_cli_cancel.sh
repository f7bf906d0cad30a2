#!/usr/bin/env bash
# Cancel: SIGINT or SIGTERM during `vidq transcode` (after some progress, and
# right at the start) ends it with exit 130 within about a second, leaving
# neither OUT nor OUT.part nor anything else in the output folder.
# ctest-labels: cli
# ctest-timeout: 240
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

# A job that takes many seconds: 10 s of 640x360 encoded at x264 "veryslow".
in="$T/in10s.mp4"
ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=640x360:rate=25:duration=10 \
  -f lavfi -i sine=duration=10 -c:v libx264 -preset ultrafast -c:a aac -shortest "$in"
slow='{"name":"slow","container":"mp4","video":{"codec":"h264","speed":"veryslow","crf":18},"audio":{"codec":"aac"}}'

slow2=${slow/\"slow\"/\"slow2\"}

# cancel_case SIGNAL WAIT_FOR_PROGRESS(1|0) [multi]: multi = two outputs in
# one pass, into a folder.
n=0
cancel_case() {
  local sig=$1 after_progress=$2 multi=${3:-} dir pid t_sig t_end rc elapsed i ctx
  local target=()
  n=$((n + 1))
  ctx="SIG$sig at start"
  [ "$after_progress" = 1 ] && ctx="SIG$sig after progress"
  dir="$T/c$n"
  mkdir "$dir"
  if [ -n "$multi" ]; then
    ctx="$ctx (two outputs)"
    target=("$dir" --output "[$slow,$slow2]")
  else
    target=("$dir/out.mp4" --output "$slow")
  fi
  # Job control: the child gets default signal dispositions (a background
  # job of a non-interactive shell would start with SIGINT ignored).
  set -m
  "$VIDQ_BIN" transcode "$in" "${target[@]}" --progress json \
    >"$T/c$n.out" 2>"$T/c$n.err" &
  pid=$!
  set +m
  CLEANUP_PIDS+=("$pid")
  if [ "$after_progress" = 1 ]; then
    for i in $(seq 300); do
      [ "$(grep -c . "$T/c$n.out" 2>/dev/null || true)" -ge 2 ] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    if ! kill -0 "$pid" 2>/dev/null; then
      fail "$ctx: vidq ended before it could be cancelled: $(cat "$T/c$n.err")"
      return 0
    fi
    [ "$(grep -c . "$T/c$n.out" || true)" -ge 2 ] || fail "$ctx: no progress within 15 s"
    local pct
    pct=$(tail -n 1 "$T/c$n.out" | jq -r .percent 2>/dev/null || echo "?")
    note "$ctx: signalling at $pct%"
  else
    sleep 0.2
  fi
  t_sig=$EPOCHREALTIME
  kill -"$sig" "$pid"
  # Wait up to 10 s, noting when it ended.
  for i in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  t_end=$EPOCHREALTIME
  if kill -0 "$pid" 2>/dev/null; then
    fail "$ctx: still running 10 s after SIG$sig"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rc=0
  wait "$pid" || rc=$?
  elapsed=$(awk -v a="$t_sig" -v b="$t_end" 'BEGIN { printf "%.2f", b - a }')
  note "$ctx: exit $rc after $elapsed s"
  [ "$rc" -eq 130 ] || fail "$ctx: exit $rc, want 130 (stderr: $(head -c 300 "$T/c$n.err"))"
  # The library stops within 1 s of the flag; allow 2 s for the process to
  # exit, plus slack when the machine is oversubscribed (load over cores).
  local limit load
  load=$(cut -d' ' -f1 /proc/loadavg)
  limit=$(awk -v l="$load" -v c="$(nproc)" 'BEGIN { x = 2 + (l > c ? (l - c) / c : 0); print (x > 6 ? 6 : x) }')
  fcmp "$elapsed" "<=" "$limit" || fail "$ctx: took $elapsed s to stop (want about 1 s; allowed $limit s at load $load)"
  [ "$(wc -l < "$T/c$n.err")" -le 1 ] || fail "$ctx: several stderr lines: $(head -c 300 "$T/c$n.err")"
  if [ -n "$(ls -A "$dir")" ]; then fail "$ctx: left files: $(ls -A "$dir" | tr '\n' ' ')"; fi
  if grep -q '"percent":100' "$T/c$n.out"; then fail "$ctx: a cancelled run reported 100%"; fi
  return 0
}

cancel_case INT 1
cancel_case TERM 1
cancel_case INT 0
cancel_case INT 1 multi
finish
