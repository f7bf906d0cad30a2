#!/usr/bin/env bash
# Retention soak (issue #14 "Done when"): VIDQ_SOAK_JOBS tiny jobs (default
# 2000) with ttl_s 1 through one server (--retention-records 5): once they
# ended and the windows passed, the bytes under inputs/, outputs/ and tmp/
# are back to their baseline (within 1 MiB) and the jobs table holds no
# more rows than the records window allows (none: every job ended more
# than 5 s ago). Uploads go 4 at a time; every one must be 202.
# ctest-labels: slow
# ctest-timeout: 3600
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
command -v sqlite3 >/dev/null || { echo "sqlite3 missing"; exit 77; }
n=${VIDQ_SOAK_JOBS:-2000}
W=$T/svc; D=$W/data; mkdir -p "$W"
tiny=$W/tiny.mp4
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=160x120:rate=10:duration=0.5 \
  -c:v libx264 -preset ultrafast "$tiny"
start_server "$W" "$D" --max-queued 100000 --retention-records 5 || finish
bytes() { du -sb "$D/inputs" "$D/outputs" "$D/tmp" | awk '{ s += $1 } END { print s }'; }
rows() { sqlite3 "$D/vidq.db" "SELECT count(*) FROM jobs"; }
base=$(bytes)
export BASE tiny
seq "$n" | xargs -P 4 -I{} sh -c \
  'curl -s -o /dev/null -w "%{http_code}\n" -H "Content-Type: video/mp4" --data-binary "@$tiny" "$BASE/v1/jobs?preset=thumbnail&ttl_s=1"' \
  >"$W/codes"
bad=$(grep -vc '^202$' "$W/codes" || true)
[ "$bad" = 0 ] || fail "$bad of $n uploads were not 202: $(sort "$W/codes" | uniq -c | tr '\n' ' ')"
note "uploaded $n; waiting for them to end"
for _ in $(seq 3000); do
  q=$(curl -s "$BASE/metrics" | awk '/^vidq_jobs\{status="(queued|running)"\}/ { s += $2 } END { print s + 0 }')
  [ "$q" = 0 ] && break
  sleep 1
done
peak_rows=$(rows)
sleep 8 # ttl_s 1 + --retention-records 5 + a sweep
after=$(bytes); left=$(rows)
note "bytes: baseline $base, after $after; rows: $peak_rows at the end of the run, $left after the windows"
d=$((after - base)); [ ${d#-} -le 1048576 ] || fail "disk use did not return to its baseline: $base -> $after"
[ "$left" = 0 ] || fail "$left rows left after --retention-records"
! grep -q "sweep failed" "$W/server.log" || fail "the sweeper failed: $(grep "sweep failed" "$W/server.log" | head -3)"
finish
