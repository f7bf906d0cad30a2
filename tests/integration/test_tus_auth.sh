#!/usr/bin/env bash
# test_tus_auth.sh - resumable uploads with --api-key, through the real
# tus-js-client (npm) under node: without the key the client's upload fails
# with 401 (nothing stored), with it (headers: Authorization: Bearer <key>)
# the upload completes and its job succeeds; GET /status needs the key too.
# A plain OPTIONS (tus discovery) needs none.
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/lib_tus.sh"
tus_setup tus-auth # SRC, CLIENT, W, D, fail
KEY=k3y-$RANDOM$RANDOM

start_server "$W" "$D" --api-key "$KEY"

# discovery without the key
st=$(curl -s -o /dev/null -D "$W/opt.h" -w '%{http_code}' -X OPTIONS "$BASE/v1/uploads/")
[ "$st" = 204 ] && grep -qi '^Tus-Version: 1.0.0' "$W/opt.h" || fail "OPTIONS: $st $(cat "$W/opt.h")"

# tus-js-client without the key: 401, no upload stored
if node "$CLIENT" --endpoint "$BASE/v1/uploads/" --file "$SRC" --chunk-size 65536 \
    >"$W/nokey.jsonl"; then
  fail "upload without the key succeeded: $(cat "$W/nokey.jsonl")"
fi
grep -q '"event":"error".*"status":401' "$W/nokey.jsonl" || fail "no 401: $(cat "$W/nokey.jsonl")"
[ -z "$(ls -A "$D/uploads")" ] || fail "something stored without the key: $(ls "$D/uploads")"

# a wrong key: 401 too
node "$CLIENT" --endpoint "$BASE/v1/uploads/" --file "$SRC" --chunk-size 65536 \
  --header "Authorization: Bearer wrong" >"$W/wrong.jsonl" && fail "wrong key accepted"
grep -q '"status":401' "$W/wrong.jsonl" || fail "wrong key: $(cat "$W/wrong.jsonl")"

# with the key: the upload completes and the job runs
node "$CLIENT" --endpoint "$BASE/v1/uploads/" --file "$SRC" --chunk-size 65536 \
  --header "Authorization: Bearer $KEY" --meta filename=clip.mp4 --meta preset=thumbnail \
  >"$W/key.jsonl" || fail "upload with the key: $(cat "$W/key.jsonl")"
ID=$(sed -n 's/.*"event":"success","url":"[^"]*\/\([^"/]*\)".*/\1/p' "$W/key.jsonl")
[ -n "$ID" ] || fail "no id: $(cat "$W/key.jsonl")"
st=$(curl -s -o "$W/nostatus.json" -w '%{http_code}' "$BASE/status/$ID")
[ "$st" = 401 ] && grep -q '"code":"unauthorized"' "$W/nostatus.json" ||
  fail "status without the key: $st $(cat "$W/nostatus.json")"
tus_wait_job "$ID" "$W/job.json" -H "Authorization: Bearer $KEY"
grep -q '"status":"succeeded"' "$W/job.json" || fail "job: $(cat "$W/job.json")"

tus_stop_clean
echo "ok: tus with --api-key (401 without, works with the key)"
