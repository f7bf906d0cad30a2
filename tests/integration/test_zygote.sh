#!/usr/bin/env bash
# The warm zygote (issue #16, README "The warm zygote"):
#   - in process isolation the server runs one `vidq-zygote` child, and
#     probes and jobs are forked by it (vidq_zygote_forks_total grows), as
#     direct children of the server, one per probe and per job;
#   - the zygote keeps two warmed probe children ahead, `vidq-spare`, also
#     direct children of the server; each upload's probe takes the oldest
#     and a new one replaces it (never reused); a spare killed by hand is
#     replaced and reaped, and the next uploads are still answered; one
#     that dies with the request on its way is passed over for the other
#     (no 415), and one that never takes it (stopped) is killed after 2 s
#     and the upload served all the same;
#   - it keeps one bare job child ahead too, `vidq-job-spare`: the next
#     job runs in it (its worker_pid is the spare's) and a new one
#     replaces it; a job spare killed by hand is replaced and reaped, and
#     the next job, forked on request, still succeeds;
#   - kill -9 of the zygote: uploads keep getting 202 at once (direct
#     spawn meanwhile), a new zygote is running within 3 s, and it forks
#     again; the old zygote's spares are gone, not left zombies;
#   - idle (--spare-idle): once nothing came for that long the spares end
#     and are reaped, leaving the zygote alone beside the server; the
#     next upload (good or bad) is answered as before by a child forked
#     on request, and the spares come back after it; no zombie is left
#     while the server idles (an upload's probe child is reaped then);
#   - a probe child that crashes (VIDQ_FAULT_PROBE=segv) is a 415 for that
#     upload alone: the zygote lives on;
#   - a job's child runs at --worker-nice once it runs (taken at the end
#     of its set-up);
#   - kill -9 of the server mid-job: neither the zygote, nor its spares,
#     nor the job's child outlives it;
#   - --isolation thread runs no zygote and still serves.
# ctest-labels: sandbox
# ctest-timeout: 240
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

in=$VIDQ_MEDIA/h264_aac_640x360.mp4
slow_in=$VIDQ_MEDIA/h264_aac_640x360_10s.mp4
W=$T/svc; D=$W/data; mkdir -p "$W"
trap 'stop_server; lib_cleanup' EXIT
# serve [ENV=VAL...] -- [ARGS...]: a server on $D at log level info.
serve() { VIDQ_LOG_LEVEL=info start_server_env "$W" "$D" "$@"; }
zygote_pid() { # the server's vidq-zygote child, waiting up to 3 s for it to have named itself
  local z=
  for _ in $(seq 30); do
    z=$(ps -o pid= -o comm= --ppid "$PID" | awk '$2 == "vidq-zygote" { print $1 }')
    [ -n "$z" ] && break
    sleep 0.1
  done
  echo "$z"
}
child_named() { # NAME [NOT]: the server's child called NAME (not a zombie), waiting up to 3 s for one other than NOT
  local p=
  for _ in $(seq 30); do
    p=$(ps -o pid= -o stat= -o comm= --ppid "$PID" | awk -v n="$1" -v not="${2:-}" '$3 == n && $2 !~ /^Z/ && $1 != not { print $1 }')
    [ -n "$p" ] && break
    sleep 0.1
  done
  echo "$p"
}
spare_pid() { child_named vidq-spare "${1:-}"; }
job_spare_pid() { child_named vidq-job-spare "${1:-}"; }
worker_pid_of() { grep -o "id=$1 worker_pid=[0-9]*" "$W/server.log" | head -n 1 | cut -d= -f3; }
zombies() { ps -o pid= -o stat= --ppid "$PID" | awk '$2 ~ /^Z/ { print $1 }' | tr '\n' ' '; }
alive() { # PID: running (not a zombie, not gone)
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null || true)
  [ -n "$st" ] && [[ "$st" != Z* ]]
}
forks() { curl -s "$BASE/metrics" | awk '/^vidq_zygote_forks_total/ { print $2 }'; }
upload() { # FILE PRESET [ENV...]: HTTP code in CODE, body in $W/up.json
  CODE=$(curl -s -o "$W/up.json" -w '%{http_code}' -F "file=@$1" -F "preset=$2" "$BASE/v1/jobs")
}

note "process isolation: one zygote, and the children come from it"
serve -- || finish
z1=$(zygote_pid)
[ -n "$z1" ] || { fail "no vidq-zygote child of the server: $(ps -o pid,comm --ppid "$PID" | tr '\n' ' ')"; finish; }
[ "$(zygote_pid | wc -l)" -le 1 ] || fail "more than one zygote"
f0=$(forks)
upload "$in" thumbnail
[ "$CODE" = 202 ] || fail "upload: HTTP $CODE $(head -c 300 "$W/up.json")"
id=$(jq -r .id "$W/up.json")
[ "$(wait_job "$BASE" "$id" "$W/job.json" 60)" = succeeded ] || fail "job: $(jq -c .error "$W/job.json")"
f1=$(forks)
[ "$f1" -ge $((f0 + 2)) ] || fail "a probe and a job should be 2 forks: $f0 -> $f1"
wpid=$(grep -o "id=$id worker_pid=[0-9]*" "$W/server.log" | head -n 1 | cut -d= -f3)
grep -q "\[$wpid\] info worker running pid=$wpid" "$W/server.log" || fail "the job's child did not log that it runs"

note "the spares: two warmed probe children ahead, each used once, replaced"
spares() { # the live vidq-spare children (in no order), waiting up to 3 s for two
  local l=
  for _ in $(seq 30); do
    l=$(ps -o pid= -o stat= -o comm= --ppid "$PID" | awk '$3 == "vidq-spare" && $2 !~ /^Z/ { print $1 }' | tr '\n' ' ')
    [ "$(wc -w <<<"$l")" -ge 2 ] && break
    sleep 0.1
  done
  echo "$l"
}
read -r s1 s2 rest <<<"$(spares)"
[ -n "$s1" ] && [ -n "$s2" ] && [ -z "$rest" ] ||
  fail "want two vidq-spare children of the server: $(ps -o pid,stat,comm --ppid "$PID" | tr '\n' ' ')"
# Which is older: the start time in clock ticks (pids wrap, so their order
# says nothing); the two first spares may share a tick.
started() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }
a1=$(started "$s1"); a2=$(started "$s2")
upload "$in" thumbnail
[ "$CODE" = 202 ] || fail "upload with a spare: HTTP $CODE $(head -c 300 "$W/up.json")"
read -r v1 v2 rest <<<"$(spares)"
[ -n "$v1" ] && [ -n "$v2" ] && [ -z "$rest" ] || fail "not two spares after an upload: '$v1 $v2 $rest'"
t1= t2= # t1: the first spare that is left, t2: the new one
for v in $v1 $v2; do
  if [ "$v" = "$s1" ] || [ "$v" = "$s2" ]; then t1=$v; else t2=$v; fi
done
[ -n "$t1" ] && [ -n "$t2" ] ||
  fail "one spare should have taken the upload and a new one come: was '$s1 $s2', now '$v1 $v2'"
used=$s1; [ "$t1" = "$s1" ] && used=$s2
[ -n "$a1" ] && [ -n "$a2" ] && [ "$a1" != "$a2" ] && { [ "$a1" -lt "$a2" ] && want=$s1 || want=$s2; } || want=$used
[ "$used" = "$want" ] || fail "the upload took the newer spare $used, not the oldest $want"
alive "$used" && fail "the spare $used still runs after its upload: it must serve one upload only"
kill -9 "$t1" # the next upload's spare, dead: the zygote finds it so, and uses the other
upload "$in" thumbnail
[ "$CODE" = 202 ] || fail "upload after the spare was killed: HTTP $CODE $(head -c 300 "$W/up.json")"
read -r u1 u2 rest <<<"$(spares)"
[ -n "$u1" ] && [ -n "$u2" ] && [ -z "$rest" ] || fail "not two spares after one was killed: '$u1 $u2 $rest'"
alive "$t2" && fail "the spare $t2 did not take the upload after $t1 was killed"
for _ in $(seq 30); do [[ " $(zombies) " == *" $t1 "* ]] || break; sleep 0.1; done
[[ " $(zombies) " == *" $t1 "* ]] && fail "the killed spare $t1 was never reaped"
ps -p "$t1" >/dev/null 2>&1 && fail "the killed spare $t1 is still there ($(ps -o stat= -p "$t1"))"
if [ "$CODE" = 202 ]; then
  id=$(jq -r .id "$W/up.json")
  [ "$(wait_job "$BASE" "$id" "$W/job.json" 60)" = succeeded ] || fail "job after the spare churn: $(jq -c .error "$W/job.json")"
fi

# A spare that dies with the request already on its socket (a dying
# process keeps its sockets until its memory is torn down): stopped, the
# request sent to it, then killed. The zygote sees the hang-up before the
# spare's word that it took it, and gives the request to the other spare.
read -r s1 s2 rest <<<"$(spares)"
a1=$(started "$s1"); a2=$(started "$s2")
old=$s1 next=$s2
[ -n "$a1" ] && [ -n "$a2" ] && [ "$a2" -lt "$a1" ] && { old=$s2; next=$s1; }
if [ -n "$a1" ] && [ -n "$a2" ] && [ "$a1" != "$a2" ]; then
  kill -STOP "$old"
  upload "$in" thumbnail &
  up_pid=$!
  sleep 0.5
  kill -9 "$old"
  wait "$up_pid"
  CODE=$(jq -r 'if .id then "202" else "error" end' "$W/up.json" 2>/dev/null || echo error)
  [ "$CODE" = 202 ] || fail "upload handed to a spare that then died: $(head -c 300 "$W/up.json")"
  [ "$(jq -r .input.video.width "$W/up.json")" = 640 ] || fail "the upload after a dying spare was not probed: $(head -c 300 "$W/up.json")"
  for _ in $(seq 30); do alive "$next" || break; sleep 0.1; done
  alive "$next" && fail "the other spare $next did not take the upload its dying sibling $old could not"
  for _ in $(seq 30); do ps -p "$old" >/dev/null 2>&1 || break; sleep 0.1; done
  ps -p "$old" >/dev/null 2>&1 && fail "the dead spare $old was not reaped"
fi

# A spare that never takes the request (stopped: stuck) is killed after
# the zygote's hand-off wait (2 s), and the upload is served all the same.
read -r s1 s2 rest <<<"$(spares)"
a1=$(started "$s1"); a2=$(started "$s2")
old=$s1
[ -n "$a1" ] && [ -n "$a2" ] && [ "$a2" -lt "$a1" ] && old=$s2
kill -STOP "$old"
upload "$in" thumbnail
[ "$CODE" = 202 ] || fail "upload with a stuck spare: HTTP $CODE $(head -c 300 "$W/up.json")"
[ "$(jq -r .input.video.width "$W/up.json")" = 640 ] || fail "the upload past a stuck spare was not probed: $(head -c 300 "$W/up.json")"
for _ in $(seq 30); do ps -p "$old" >/dev/null 2>&1 || break; sleep 0.1; done
ps -p "$old" >/dev/null 2>&1 && { fail "the stuck spare $old was not killed and reaped ($(ps -o stat= -p "$old"))"; kill -9 "$old"; }
read -r u1 u2 rest <<<"$(spares)"
[ -n "$u1" ] && [ -n "$u2" ] && [ -z "$rest" ] || fail "not two spares after a stuck one: '$u1 $u2 $rest'"

note "the job spare: one bare job child ahead, taken by the next job, replaced"
j1=$(job_spare_pid)
[ -n "$j1" ] || fail "no vidq-job-spare child of the server: $(ps -o pid,stat,comm --ppid "$PID" | tr '\n' ' ')"
[ "$(job_spare_pid | wc -w)" -le 1 ] || fail "more than one job spare"
upload "$in" thumbnail
id=$(jq -r .id "$W/up.json")
[ "$(wait_job "$BASE" "$id" "$W/job.json" 60)" = succeeded ] || fail "job in the job spare: $(jq -c .error "$W/job.json")"
[ "$(worker_pid_of "$id")" = "$j1" ] || fail "the job ran in $(worker_pid_of "$id"), not in the job spare $j1"
j2=$(job_spare_pid "$j1")
[ -n "$j2" ] && [ "$j2" != "$j1" ] || fail "no new job spare after a job (was $j1, now '$j2')"
alive "$j1" && fail "the job spare $j1 still runs after its job: it must serve one job only"
kill -9 "$j2"
upload "$in" thumbnail
id=$(jq -r .id "$W/up.json")
[ "$(wait_job "$BASE" "$id" "$W/job.json" 60)" = succeeded ] || fail "job after the job spare was killed: $(jq -c .error "$W/job.json")"
w=$(worker_pid_of "$id")
[ -n "$w" ] && [ "$w" != "$j2" ] || fail "the job after the kill names the dead spare ($w)"
j3=$(job_spare_pid "$j2")
[ -n "$j3" ] || fail "no job spare after the last one was killed"
upload "$in" thumbnail # the server hears of the new spare, and reaps the killed one
[ "$CODE" = 202 ] || fail "upload: HTTP $CODE"
for p in $(zombies); do [ "$p" = "$j2" ] && fail "the killed job spare $j2 was never reaped"; done

note "kill -9 of the zygote: uploads go on, a new zygote comes"
sz=$(spare_pid)
sj=$(job_spare_pid)
kill -9 "$z1"
upload "$in" thumbnail
[ "$CODE" = 202 ] || fail "upload right after the zygote died: HTTP $CODE $(head -c 300 "$W/up.json")"
z2=
for _ in $(seq 10); do z2=$(zygote_pid); [ -n "$z2" ] && [ "$z2" != "$z1" ] && break; sleep 0.1; done
[ -n "$z2" ] && [ "$z2" != "$z1" ] || fail "no new zygote within 3 s (old $z1, now '$z2')"
grep -q 'the zygote ended' "$W/server.log" || fail "the zygote's death was not logged"
if [ -n "$sz" ]; then
  for _ in $(seq 30); do ps -p "$sz" >/dev/null 2>&1 || break; sleep 0.1; done
  ps -p "$sz" >/dev/null 2>&1 && fail "the dead zygote's spare $sz is still there ($(ps -o stat= -p "$sz"))"
fi
if [ -n "$sj" ]; then
  for _ in $(seq 30); do ps -p "$sj" >/dev/null 2>&1 || break; sleep 0.1; done
  ps -p "$sj" >/dev/null 2>&1 && fail "the dead zygote's job spare $sj is still there ($(ps -o stat= -p "$sj"))"
fi
f2=$(forks)
upload "$in" thumbnail
[ "$CODE" = 202 ] || fail "upload with the new zygote: HTTP $CODE"
[ "$(forks)" -gt "$f2" ] || fail "the new zygote forked nothing ($f2 -> $(forks))"
curl -sf "$BASE/healthz" >/dev/null || fail "the server stopped answering"

note "idle: the spares end after --spare-idle, and come back with the next upload"
# A data folder of its own: the jobs the sections above left queued would
# start here one after another (each a request to the zygote), and on a
# loaded machine keep it from ever being idle for 2 s.
D=$W/data-idle
serve -- --spare-idle 2 || finish
z5=$(zygote_pid)
read -r s1 s2 rest <<<"$(spares)"
[ -n "$s1" ] && [ -n "$s2" ] || fail "idle: no spares at start: $(ps -o pid,stat,comm --ppid "$PID" | tr '\n' ' ')"
j5=$(job_spare_pid)
[ -n "$j5" ] || fail "idle: no job spare at start"
# children NAME: the server's children called NAME, zombies included.
children() { ps -o pid= -o comm= --ppid "$PID" | awk -v n="$1" '$2 == n { print $1 }' | tr '\n' ' '; }
for _ in $(seq 80); do [ -z "$(children vidq-spare)$(children vidq-job-spare)" ] && break; sleep 0.1; done
left="$(children vidq-spare)$(children vidq-job-spare)"
[ -z "$left" ] || fail "idle: spares still there (or not reaped) 8 s after the last request: $left$(ps -o pid,stat,comm --ppid "$PID" | tr '\n' ' ')"
[ "$(zygote_pid)" = "$z5" ] || fail "idle: the zygote changed ($z5 -> $(zygote_pid))"
others=$(ps -o pid= -o comm= --ppid "$PID" | awk '$2 != "vidq-zygote"' | tr '\n' ' ')
[ -z "$others" ] || fail "idle: the server has children besides the zygote: $others"
upload "$in" thumbnail
[ "$CODE" = 202 ] || fail "idle: upload after the spares ended: HTTP $CODE $(head -c 300 "$W/up.json")"
jq -e '.input.video.width == 640 and .input.audio.channels > 0' "$W/up.json" >/dev/null ||
  fail "idle: the probe without a spare described the input wrongly: $(jq -c .input "$W/up.json")"
read -r v1 v2 rest <<<"$(spares)"
[ -n "$v1" ] && [ -n "$v2" ] || fail "idle: the spares did not come back after an upload"
[ -n "$(job_spare_pid)" ] || fail "idle: the job spare did not come back"
id=$(jq -r .id "$W/up.json")
[ "$(wait_job "$BASE" "$id" "$W/job.json" 60)" = succeeded ] || fail "idle: job: $(jq -c .error "$W/job.json")"
for _ in $(seq 80); do [ -z "$(children vidq-spare)" ] && break; sleep 0.1; done
[ -z "$(children vidq-spare)" ] || fail "idle: the second round of spares did not end"
# The upload's probe child answered and exited: reaped meanwhile, not
# left a zombie until the next upload.
[ -z "$(zombies)" ] || fail "idle: zombie children while idle: $(zombies) ($(ps -o pid,stat,comm --ppid "$PID" | tr '\n' ' '))"
head -c 4096 /dev/urandom >"$W/junk.mp4"
upload "$W/junk.mp4" thumbnail
[ "$CODE" = 415 ] || fail "idle: junk upload without a spare: HTTP $CODE, want 415"
jq -e '.error.code == "unsupported_media"' "$W/up.json" >/dev/null || fail "idle: junk: $(head -c 300 "$W/up.json")"
curl -sf "$BASE/healthz" >/dev/null || fail "idle: the server stopped answering"

note "a crashing probe child is a 415 for that upload alone"
serve VIDQ_FAULT_PROBE=segv -- || finish
z3=$(zygote_pid)
upload "$in" thumbnail
[ "$CODE" = 415 ] || fail "segv probe: HTTP $CODE, want 415"
jq -e '.error.code == "unsupported_media" and (.error.message | test("SIGSEGV"))' "$W/up.json" >/dev/null ||
  fail "segv probe: $(head -c 300 "$W/up.json")"
[ "$(zygote_pid)" = "$z3" ] || fail "the zygote did not survive a crashing child"

note "kill -9 of the server mid-job: no zygote and no child outlive it"
serve -- --max-concurrent 1 --worker-nice 7 || finish
z4=$(zygote_pid)
s4=$(spare_pid)
j4=$(job_spare_pid)
upload "$slow_in" av1-720p
id=$(jq -r .id "$W/up.json")
wpid=
for _ in $(seq 100); do
  wpid=$(grep -o "id=$id worker_pid=[0-9]*" "$W/server.log" | head -n 1 | cut -d= -f3 || true)
  [ -n "$wpid" ] && break; sleep 0.1
done
[ -n "$wpid" ] || fail "the job's child never started"
# Its niceness is taken last in its set-up (README, Upload latency): by
# the time it says it runs, it has it.
for _ in $(seq 100); do grep -q "\[$wpid\] info worker running" "$W/server.log" && break; sleep 0.1; done
ni=$(ps -o ni= -p "$wpid" | tr -d ' ')
want=$(ps -o ni= -p "$PID" | tr -d ' ') # under `nice`, a child is at least as nice as the server
[ "$want" -ge 7 ] || want=7
[ "$ni" = "$want" ] || fail "the job's child runs at niceness '$ni', want $want (--worker-nice 7)"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=
for _ in $(seq 50); do
  { [ -n "$z4" ] && kill -0 "$z4" 2>/dev/null; } || { [ -n "$wpid" ] && kill -0 "$wpid" 2>/dev/null; } || break
  sleep 0.1
done
[ -n "$z4" ] && kill -0 "$z4" 2>/dev/null && fail "the zygote $z4 outlived the server"
[ -n "$wpid" ] && kill -0 "$wpid" 2>/dev/null && fail "the job's child $wpid outlived the server"
for _ in $(seq 30); do { [ -n "$s4" ] && kill -0 "$s4" 2>/dev/null; } || break; sleep 0.1; done
[ -n "$s4" ] && kill -0 "$s4" 2>/dev/null && fail "the spare $s4 outlived the server"
# The job may have taken the job spare j4 (then it is wpid, checked above).
for _ in $(seq 30); do { [ -n "$j4" ] && kill -0 "$j4" 2>/dev/null; } || break; sleep 0.1; done
[ -n "$j4" ] && kill -0 "$j4" 2>/dev/null && fail "the job spare $j4 outlived the server"

note "thread isolation: no zygote"
serve -- --isolation thread || finish
sleep 0.5
[ -z "$(ps -o comm= --ppid "$PID" | grep vidq-zygote)" ] || fail "a zygote runs in thread isolation"
upload "$in" thumbnail
[ "$CODE" = 202 ] || fail "thread isolation upload: HTTP $CODE"
grep -q 'sandbox=none' "$W/server.log" || fail "thread isolation: no warning that nothing is sandboxed"
stop_server
finish
