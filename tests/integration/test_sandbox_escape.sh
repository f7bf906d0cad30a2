#!/usr/bin/env bash
# The worker sandbox holds (issue #11, README "Security model"): with the
# test-only fault switch (svc/sandbox/fault.h), a probe child
# (VIDQ_FAULT_PROBE) and a job child (VIDQ_FAULT_JOB) try, once sandboxed,
# each forbidden act: read /etc/passwd, the database and another job's
# output; write outside their folder; connect to a TCP listener of this
# test; exec a shell; fork; ptrace, or signal, the server; map memory
# writable+executable, or make it executable. Each must fail or kill the
# child:
#   - a probe: the upload gets 415 sandbox_violation, no job, nothing kept;
#   - a job: it fails with sandbox_violation and leaves no output;
#   - the server goes on serving, the listener hears nothing, no file
#     appears, the other job's output is intact.
# Controls, so that these checks can fail: with --sandbox off the same
# read is let through (the job fails sandbox_escaped); a plain job still
# succeeds in the sandbox; strict mode logs and exports every layer and
# the allow-lists stay at most 60 calls; bad --sandbox values exit 2.
# ctest-labels: sandbox
# ctest-timeout: 300
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

in=$VIDQ_MEDIA/h264_aac_640x360.mp4
W=$T/svc; D=$W/data; mkdir -p "$W"
LPID=
trap 'stop_server; [ -n "$LPID" ] && kill "$LPID" 2>/dev/null; lib_cleanup' EXIT
# serve [ENV=VAL...] -- [ARGS...]: a server on $D at log level info.
serve() { VIDQ_LOG_LEVEL=info start_server_env "$W" "$D" "$@"; }
upload() { # PRESET -> HTTP code in CODE, body in $W/up.json
  CODE=$(curl -s -o "$W/up.json" -w '%{http_code}' -F "file=@$in" -F "preset=$1" "$BASE/v1/jobs")
}
njobs() { curl -s "$BASE/v1/jobs?limit=100" | jq '.jobs | length'; }
still_serving() { # CTX
  curl -sf -m 5 "$BASE/healthz" >/dev/null || fail "$1: the server stopped answering"
  kill -0 "$PID" 2>/dev/null || fail "$1: the server died"
}

# A TCP listener that records every connection it gets.
python3 "$(dirname "$0")/listen.py" "$W/lport" "$W/listener.log" &
LPID=$!
for _ in $(seq 50); do [ -s "$W/lport" ] && break; sleep 0.1; done
lport=$(cat "$W/lport")
: >"$W/listener.log"

note "strict: every layer found is logged and exported; the allow-lists are short"
serve -- || finish
layers=$(grep -o 'sandbox=[a-z,]*' "$W/server.log" | head -n 1)
[[ "$layers" == *seccomp* ]] || fail "no 'sandbox=...seccomp...' line: $(head -c 400 "$W/server.log")"
note "this kernel: $layers"
curl -s "$BASE/metrics" >"$W/metrics.txt"
grep -q '^vidq_sandbox_layer{layer="seccomp"} 1$' "$W/metrics.txt" || fail "metrics: seccomp layer not 1"
for l in userns mountns netns ipcns landlock; do
  on=$([[ "$layers" == *$l* ]] && echo 1 || echo 0)
  grep -q "^vidq_sandbox_layer{layer=\"$l\"} $on\$" "$W/metrics.txt" || fail "metrics: $l should be $on"
done
for c in probe job; do
  n=$(awk -v c="$c" -F' ' '$1 == "vidq_sandbox_syscalls{child=\"" c "\"}" { print $2 }' "$W/metrics.txt")
  [ -n "$n" ] && [ "$n" -ge 20 ] && [ "$n" -le 60 ] || fail "allowed syscalls of a $c child: '$n' (want 20..60)"
done

note "a plain job runs in the sandbox; its output is the 'other job' of the attempts below"
upload mp4-480p
[ "$CODE" = 202 ] || fail "plain upload: HTTP $CODE $(head -c 300 "$W/up.json")"
other=$(jq -r .id "$W/up.json")
[ "$(wait_job "$BASE" "$other" "$W/job.json" 90)" = succeeded ] ||
  fail "plain job in the sandbox: $(jq -c .error "$W/job.json")"
other_out=$D/outputs/$other/mp4-480p.mp4
[ -s "$other_out" ] || fail "plain job: no output at $other_out"
other_sum=$(sha256sum "$other_out" | cut -d' ' -f1)
grep -q 'vidq_zygote_forks_total [1-9]' <(curl -s "$BASE/metrics") ||
  fail "the children were not forked by the zygote"

acts=("read:/etc/passwd" "read:$D/vidq.db" "read:$other_out" "write:$D/outputs/escaped.txt"
  "write:$W/escaped.txt" "write:../escaped.txt" "connect:$lport" exec fork ptrace kill mmap_wx mprotect_x)

for act in "${acts[@]}"; do
  note "probe child: $act"
  serve VIDQ_FAULT_PROBE="$act" -- || continue
  before=$(njobs)
  upload thumbnail
  [ "$CODE" = 415 ] || fail "probe $act: HTTP $CODE, want 415: $(head -c 300 "$W/up.json")"
  jq -e '.error.code == "sandbox_violation" and (.error.message | length > 10)' "$W/up.json" >/dev/null ||
    fail "probe $act: $(head -c 300 "$W/up.json")"
  [ "$(njobs)" = "$before" ] || fail "probe $act: a job was created"
  [ -z "$(ls -A "$D/tmp" 2>/dev/null)" ] || fail "probe $act: upload left in tmp: $(ls "$D/tmp")"
  still_serving "probe $act"

  note "job child: $act"
  serve VIDQ_FAULT_JOB="$act" -- || continue
  upload mp4-480p
  [ "$CODE" = 202 ] || { fail "job $act: upload HTTP $CODE $(head -c 300 "$W/up.json")"; continue; }
  id=$(jq -r .id "$W/up.json")
  st=$(wait_job "$BASE" "$id" "$W/job.json" 60)
  [ "$st" = failed ] || fail "job $act: status '$st', want failed"
  jq -e '.error.code == "sandbox_violation"' "$W/job.json" >/dev/null ||
    fail "job $act: error $(jq -c .error "$W/job.json")"
  [ -z "$(find "$D/outputs/$id" -type f 2>/dev/null)" ] || fail "job $act: left files: $(find "$D/outputs/$id" -type f)"
  still_serving "job $act"
done

note "nothing got out"
[ ! -s "$W/listener.log" ] || fail "the listener was reached: $(cat "$W/listener.log")"
[ ! -e "$D/outputs/escaped.txt" ] || fail "a child wrote $D/outputs/escaped.txt"
[ ! -e "$W/escaped.txt" ] || fail "a child wrote $W/escaped.txt"
[ "$(sha256sum "$other_out" | cut -d' ' -f1)" = "$other_sum" ] || fail "the other job's output changed"

note "control: with --sandbox off the same read is let through (the check can fail)"
serve VIDQ_FAULT_JOB="read:/etc/passwd" -- --sandbox off || finish
grep -q 'sandbox=none' "$W/server.log" || fail "--sandbox off: no warning line"
upload mp4-480p
id=$(jq -r .id "$W/up.json")
wait_job "$BASE" "$id" "$W/job.json" 60 >/dev/null
jq -e '.error.code == "sandbox_escaped"' "$W/job.json" >/dev/null ||
  fail "--sandbox off: the read was not let through: $(jq -c .error "$W/job.json")"
grep -q '^vidq_sandbox_layer{layer="seccomp"} 0$' <(curl -s "$BASE/metrics") || fail "--sandbox off: metrics say seccomp on"
stop_server

note "bad --sandbox values"
for v in on "" STRICT; do
  rc=0
  timeout 10 "$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$D" --sandbox "$v" >/dev/null 2>"$W/bad.txt" || rc=$?
  [ "$rc" = 2 ] || fail "--sandbox '$v': exit $rc, want 2"
  grep -q 'sandbox' "$W/bad.txt" || fail "--sandbox '$v': the message does not name the flag: $(cat "$W/bad.txt")"
done
finish
