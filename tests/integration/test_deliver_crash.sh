#!/usr/bin/env bash
# upload_url while the delivery runs, against a slow receiver
# (tests/support/put_receiver.py --rate):
# - progress.phase is "delivering" with progress.deliver {bytes, total,
#   percent} growing;
# - cancel during the delivery: the job is canceled within seconds and its
#   local outputs removed (bytes already handed to the socket may still
#   reach the receiver: a cancel cannot call them back);
# - kill -9 of the server during the delivery, then a restart on the same
#   data dir: the job is requeued, transcoded and delivered again (attempts
#   2) and succeeds; the receiver's file is byte-identical to vidq's copy.
# ctest-labels: integration
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

source "$(dirname "$0")/lib_deliver.sh" # receiver, submit

# wait_delivering: poll the job until it is delivering with bytes sent;
# the job object in $T/job.json. Returns 1 if that never happened.
wait_delivering() {
  for _ in $(seq 600); do
    curl -s "$BASE/v1/jobs/$ID" >"$T/job.json" || true
    jq -e '.progress.phase == "delivering" and .progress.deliver.bytes > 0' "$T/job.json" \
      >/dev/null 2>&1 && return 0
    jq -e '.status | IN("succeeded", "failed", "canceled")' "$T/job.json" >/dev/null 2>&1 && break
    sleep 0.1
  done
  fail "never seen delivering: $(head -c 400 "$T/job.json")"
  return 1
}

start_server "$T" "$T/data" --fetch-targets public+loopback

note "cancel while delivering"
receiver slow1 --rate 20000
submit '[{"preset":"mp4-480p","name":"v","upload_url":"http://127.0.0.1:'"$RPORT"'/v.mp4"}]'
if wait_delivering; then
  jq -e '.status == "running" and .progress.deliver.total > 0 and
         .progress.deliver.bytes <= .progress.deliver.total and
         (.progress.deliver.percent | . > 0 and . <= 100)' "$T/job.json" >/dev/null ||
    fail "delivering progress: $(jq -c .progress "$T/job.json")"
  t0=$(date +%s.%N)
  curl -s -o /dev/null -X POST "$BASE/v1/jobs/$ID/cancel"
  st=$(wait_job "$BASE" "$ID" "$T/job.json" 20)
  [ "$st" = canceled ] || fail "cancel while delivering: $st"
  dt=$(echo "$(date +%s.%N) - $t0" | bc)
  [ "$(echo "$dt < 5" | bc)" = 1 ] || fail "cancel took ${dt}s"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/jobs/$ID/outputs/v")" = 404 ] ||
    fail "a canceled job's output is still served"
fi

note "kill -9 while delivering, then a restart: delivered again"
receiver slow2 --rate 40000
submit '[{"preset":"mp4-480p","name":"v","upload_url":"http://127.0.0.1:'"$RPORT"'/v.mp4"}]'
if wait_delivering; then
  stop_server # kill -9
  start_server "$T" "$T/data" --fetch-targets public+loopback
  st=$(wait_job "$BASE" "$ID" "$T/job.json" 90)
  jq -e '.status == "succeeded" and .attempts == 2 and
         (.outputs[0].delivered_to | endswith("/v.mp4"))' "$T/job.json" >/dev/null ||
    fail "after kill -9: $(jq -c '{status, attempts, error, outputs: [.outputs[] | .delivered_to]}' "$T/job.json")"
  curl -s -o "$T/dl.mp4" "$BASE/v1/jobs/$ID/outputs/v"
  [ "$(sha256sum <"$T/dl.mp4")" = "$(sha256sum <"$T/slow2/www/v.mp4")" ] ||
    fail "after kill -9: the receiver's file differs from vidq's"
  [ "$(jq -r .status "$T/slow2/log" | tail -n 1)" = 201 ] || fail "receiver log: $(cat "$T/slow2/log")"
fi

finish
