#!/usr/bin/env bash
# The thread budget (README "Thread budget"):
#   - `vidq transcode --threads N` and an output spec's "threads" are
#     applied: the library logs the budget it used, and the process really
#     runs fewer threads with a budget of 1 than with every core.
#   - bad values: --threads -1 / abc (exit 2), "threads": 0 / "x" / 65
#     (invalid_output, nothing written; 400 from the service).
#   - the service sizes the budget from the cores and --max-concurrent
#     (cores / N, at least 1), --job-threads overrides it, a job's own
#     "threads" wins; each job's log line says which (the server shows
#     the library's own log lines at VIDQ_LOG_LEVEL=debug).
# ctest-labels: cli
# ctest-timeout: 240
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

in=$VIDQ_MEDIA/h264_aac_640x360_10s.mp4
cores=$(nproc)
enc='{"name":"o","preset":"mp4-480p"%s}'
spec() { printf "$enc" "${1:-}"; }

# peak_threads OUTFILE ARGS...: run `vidq transcode IN OUTFILE ARGS`, with
# VIDQ_LOG_LEVEL=info, sampling the process's thread count; prints the
# largest. The log goes to $T/log.txt.
peak_threads() {
  local out=$1 pid peak=0 n
  shift
  VIDQ_LOG_LEVEL=info "$VIDQ_BIN" transcode "$in" "$out" --progress none "$@" 2>"$T/log.txt" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    n=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$n" ] && [ "$n" -gt "$peak" ] && peak=$n
    sleep 0.02
  done
  wait "$pid" || { fail "transcode $*: exit $?: $(tail -c 300 "$T/log.txt")"; }
  echo "$peak"
}

note "--threads 1: budget 1 logged, fewer threads than with every core"
one=$(peak_threads "$T/one.mp4" --output "$(spec)" --threads 1)
grep -q 'threads budget=1 video_decoder=1 video_encoders=1 x1' "$T/log.txt" ||
  fail "--threads 1: no budget line: $(grep -m1 threads "$T/log.txt" || true)"
all=$(peak_threads "$T/all.mp4" --output "$(spec)")
grep -q 'threads budget=0 ' "$T/log.txt" || fail "default: no 'budget=0' line: $(grep -m1 threads "$T/log.txt" || true)"
note "peak threads: budget 1 -> $one, every core ($cores) -> $all"
[ "$one" -ge 1 ] && [ "$one" -le 3 ] || fail "--threads 1 ran $one threads at once (want at most 3)"
if [ "$cores" -ge 2 ]; then
  [ "$all" -gt "$one" ] || fail "every core ran $all threads, --threads 1 ran $one: the budget changed nothing"
fi
check_transcode "--threads 1" "$in" "$T/one.mp4" mp4-480p

note "spec \"threads\": 2 wins over --threads 1"
peak_threads "$T/two.mp4" --output "$(spec ',"threads":2')" --threads 1 >/dev/null
grep -q 'threads budget=2 video_decoder=2 video_encoders=1 x2' "$T/log.txt" ||
  fail "spec threads 2: $(grep -m1 threads "$T/log.txt" || true)"

note "bad values"
for v in 0 65 '"x"' 1.5 null; do
  run_vidq transcode "$in" "$T/bad.mp4" --output "$(spec ",\"threads\":$v")"
  expect_error "threads $v" 2 invalid_output
  grep -q threads "$T/err.txt" || fail "threads $v: the error does not name the field: $(cat "$T/err.txt")"
  expect_no_output "threads $v" "$T/bad.mp4"
done
for v in -1 abc 257; do
  run_vidq transcode "$in" "$T/bad.mp4" --threads "$v"
  expect_error "--threads $v" 2 bad_request
  expect_no_output "--threads $v" "$T/bad.mp4"
done

# ---- service
W=$T/svc; mkdir -p "$W"
serve() { VIDQ_LOG_LEVEL=debug start_server "$W" "$W/data" "$@"; } # serve [ARGS...]
# job ARGS...: upload $in with curl -F ARGS; wait for it; its id in ID.
job() { run_job "$W" "$in" 90 "$@"; }

want=$((cores / 2)); [ "$want" -ge 1 ] || want=1
note "service --max-concurrent 2 on $cores cores: $want thread(s) per job"
if serve --max-concurrent 2; then
  grep -q "cores=$cores job_threads=$want" "$W/server.log" ||
    fail "scheduler line: $(grep -m1 'scheduler started' "$W/server.log" || true)"
  if job -F preset=mp4-480p; then
    grep -q "job threads id=$ID threads=$want source=server" "$W/server.log" ||
      fail "job threads line: $(grep -m1 'job threads' "$W/server.log" || true)"
    grep -q "threads budget=$want " "$W/server.log" ||
      fail "the worker did not use budget $want: $(grep -m1 'threads budget' "$W/server.log" || true)"
  fi
  note "a job's own \"threads\" wins"
  if job -F 'outputs=[{"name":"o","preset":"mp4-480p","threads":3}]'; then
    grep -q "job threads id=$ID threads=3 source=job" "$W/server.log" ||
      fail "job's threads line: $(grep 'job threads' "$W/server.log" | tail -n 1)"
    grep -q "threads budget=3 " "$W/server.log" || fail "the worker did not use the job's budget 3"
    jq -e '.outputs[0].name == "o"' <(curl -s "$BASE/v1/jobs/$ID") >/dev/null || fail "job JSON lost its output"
  fi
  for v in 0 '"2"' 100; do
    code=$(curl -s -o "$W/bad.json" -w '%{http_code}' -F "file=@$in" \
      -F "outputs=[{\"name\":\"o\",\"preset\":\"mp4-480p\",\"threads\":$v}]" "$BASE/v1/jobs")
    [ "$code" = 400 ] || fail "service threads $v: HTTP $code"
    jq -e '.error.code == "invalid_output" and (.error.message | test("threads"))' "$W/bad.json" >/dev/null ||
      fail "service threads $v: $(head -c 300 "$W/bad.json")"
  done
  curl -sf "$BASE/healthz" >/dev/null || fail "server stopped answering after bad values"
fi
note "service --job-threads 3 --isolation thread"
if serve --max-concurrent 2 --job-threads 3 --isolation thread; then
  grep -q "job_threads=3" "$W/server.log" || fail "--job-threads 3: $(grep -m1 'scheduler started' "$W/server.log" || true)"
  if job -F preset=mp4-480p; then
    grep -q "threads budget=3 " "$W/server.log" || fail "--job-threads 3 (thread isolation): budget not applied"
  fi
fi
stop_server
finish
