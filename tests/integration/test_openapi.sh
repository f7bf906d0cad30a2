#!/usr/bin/env bash
# GET /openapi.json: served without the API key, application/json, the
# document of svc/http/openapi.json with the binary's version. It is a
# valid OpenAPI 3.1 document (@apidevtools/swagger-parser), every route of
# svc/http/routes.c is in it and nothing it documents as built is missing
# from them, and real answers of the server (jobs queued, running,
# succeeded, failed, canceled, with hls/thumbnail/sprite outputs; lists,
# presets, webhooks, deliveries, events; errors 400/401/404/405/409/415/
# 416 and the tus ones) validate against its schemas (ajv), through
# tests/support/openapi_check.js; so do the bodies of the webhooks of
# every event type (job.started/progress/succeeded/failed/canceled) the run
# sends to tests/support/webhook_receiver.js, and a degraded node's /healthz
# and 507. Other methods on it are 405 and the
# server goes on serving.
# ctest-labels: integration
# ctest-timeout: 240
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
SUPPORT=$VIDQ_SRC/tests/support
for m in @apidevtools/swagger-parser ajv ajv-formats; do
  [ -d "$SUPPORT/node_modules/$m" ] || { fail "$m missing: run tests/support/setup.sh"; finish; }
done

W=$T/svc; mkdir -p "$W"
S=$T/samples; mkdir -p "$S"
PID=
stop_server() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=; }
trap 'stop_server; [ -n "${RPID:-}" ] && kill "$RPID" 2>/dev/null; lib_cleanup' EXIT
# webhooks go to the test receiver (signatures checked with standardwebhooks)
SECRET=whsec_$(head -c 24 /dev/urandom | base64)
RPID=
node "$SUPPORT/webhook_receiver.js" --secret "$SECRET" --log "$W/hooks.log" --max-seconds 200 >"$W/recv.out" 2>"$W/recv.err" &
RPID=$!
for _ in $(seq 100); do [ -s "$W/recv.out" ] && break; sleep 0.1; done
RPORT=$(head -1 "$W/recv.out")
[ -n "$RPORT" ] || { fail "webhook receiver did not start: $(cat "$W/recv.err")"; finish; }
"$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$W/data" --port-file "$W/port" \
  --api-key K --max-concurrent 1 --webhook-secret "$SECRET" >"$W/server.out" 2>"$W/server.log" &
PID=$!
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.1; done
[ -s "$W/port" ] || { fail "server did not start: $(tail -c 300 "$W/server.log")"; finish; }
BASE=http://127.0.0.1:$(cat "$W/port")
AUTH=(-H 'Authorization: Bearer K')

# --- the document itself
r=$(curl -s -o "$W/doc.json" -w '%{http_code} %{content_type}' "$BASE/openapi.json")
[ "$r" = "200 application/json; charset=utf-8" ] || fail "GET /openapi.json without a key: $r"
version=$("$VIDQ_BIN" --version | sed -n '1s/^vidq //p')
jq -e . "$W/doc.json" >/dev/null || fail "the served document is not JSON"
[ "$(jq -r .info.version "$W/doc.json")" = "$version" ] || fail "info.version $(jq -r .info.version "$W/doc.json"), want $version"
sed "s/@PROJECT_VERSION@/$version/" "$VIDQ_SRC/svc/http/openapi.json" > "$W/src.json"
cmp -s "$W/doc.json" "$W/src.json" || fail "the served document differs from svc/http/openapi.json"
for m in POST PUT DELETE; do
  r=$(curl -s -o "$W/e.json" -w '%{http_code}' -X $m "$BASE/openapi.json")
  [ "$r" = 405 ] && [ "$(jq -r .error.code "$W/e.json")" = method_not_allowed ] || fail "$m /openapi.json: $r $(cat "$W/e.json")"
done

# --- real answers. grab NAME WANT_STATUS CURL_ARGS...: the body becomes
# sample NAME.STATUS.<n>.json; a different status is a failure.
n=0
grab() {
  local name=$1 want=$2 code; shift 2
  n=$((n + 1))
  code=$(curl -s -o "$S/$name.$want.$n.json" -w '%{http_code}' "$@") || true
  if [ "$code" != "$want" ]; then
    fail "$name: status $code, want $want: $(head -c 300 "$S/$name.$want.$n.json")"
    mv "$S/$name.$want.$n.json" "$T/unexpected.$n.json"
  fi
}
M=$VIDQ_MEDIA
grab addWebhook 201 "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d "{\"url\":\"http://127.0.0.1:$RPORT/all\",\"events\":[\"job.started\",\"job.progress\",\"job.succeeded\",\"job.failed\",\"job.canceled\"]}" "$BASE/v1/webhooks"
grab healthz 200 "$BASE/healthz"
grab listPresets 200 "${AUTH[@]}" "$BASE/v1/presets"
grab createJob 401 "$BASE/v1/jobs" -F "file=@$M/h264_aac_640x360.mp4"
# A: hls + thumbnail + sprite + mp4 (runs first); B queued behind it, canceled.
grab createJob 202 "${AUTH[@]}" "$BASE/v1/jobs" -F "file=@$M/h264_aac_640x360.mp4" \
  -F preset=hls -F preset=thumbnail -F preset=thumbnails-sprite -F preset=mp4-480p \
  -F 'metadata={"customer":"acme"}' -F webhook_url=http://127.0.0.1:9/hook
A=$(jq -r .id "$S"/createJob.202.*.json | head -1)
# follow A from its start: status and progress events
timeout 180 curl -sN "${AUTH[@]}" "$BASE/v1/jobs/$A/events" > "$W/events.txt" &
EV=$!
grab createJobUpload 202 "${AUTH[@]}" -H 'Content-Type: video/mp4' --data-binary "@$M/audio_only.mp3" \
  "$BASE/upload?preset=audio-m4a&filename=a.mp3&priority=3"
B=$(jq -r .id "$S"/createJobUpload.202.*.json)
grab getJob 200 "${AUTH[@]}" "$BASE/v1/jobs/$B"
[ "$(jq -r .status "$S/getJob.200.$n.json" 2>/dev/null)" = queued ] || note "B was not queued when read"
grab cancelJob 202 "${AUTH[@]}" -X POST "$BASE/v1/jobs/$B/cancel"
grab deleteJob 409 "${AUTH[@]}" -X DELETE "$BASE/v1/jobs/$B"
grab listJobs 200 "${AUTH[@]}" "$BASE/v1/jobs?limit=1"
grab listJobs 400 "${AUTH[@]}" "$BASE/v1/jobs?limit=0"
grab listJobs 400 "${AUTH[@]}" "$BASE/v1/jobs?status=bogus"
grab createJob 400 "${AUTH[@]}" "$BASE/v1/jobs" -F "file=@$M/h264_aac_640x360.mp4" -F preset=nope
grab createJob 400 "${AUTH[@]}" "$BASE/v1/jobs" -F "file=@$M/h264_aac_640x360.mp4" -F 'outputs=[{"name":"x","container":"avi"}]'
head -c 20000 /dev/urandom > "$W/noise.bin"
grab createJobUpload 415 "${AUTH[@]}" -H 'Content-Type: video/mp4' --data-binary "@$W/noise.bin" "$BASE/upload"
grab getStatus 404 "${AUTH[@]}" "$BASE/status/AAAAAAAAAAAAAAAAAAAAAA"
grab Error 404 "${AUTH[@]}" "$BASE/v1/nothing"
grab Error 405 "${AUTH[@]}" -X PUT "$BASE/v1/jobs"
grab addWebhook 201 "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"url":"http://127.0.0.1:9/all","events":["job.started","job.succeeded"]}' "$BASE/v1/webhooks"
grab addWebhook 400 "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"url":"ftp://x","events":["job.started"]}' "$BASE/v1/webhooks"
grab addWebhook 400 "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"url":"http://x/","events":["job.nope"]}' "$BASE/v1/webhooks"
grab listWebhooks 200 "${AUTH[@]}" "$BASE/v1/webhooks"
grab addJobWebhook 201 "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"url":"http://127.0.0.1:9/one"}' "$BASE/v1/jobs/$A/webhooks"
grab addJobWebhook 404 "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"url":"http://127.0.0.1:9/one"}' "$BASE/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/webhooks"
# tus: a created upload, bad requests, then a non-media file that becomes a failed job
grab tusCreate 412 "${AUTH[@]}" -X POST -H 'Upload-Length: 10' "$BASE/v1/uploads/"
grab tusCreate 401 -X POST -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 10' "$BASE/v1/uploads/"
grab tusCreate 400 "${AUTH[@]}" -X POST -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: x' "$BASE/v1/uploads/"
loc=$(curl -s -D - -o /dev/null "${AUTH[@]}" -X POST -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 20000' \
      -H "Upload-Metadata: filename $(printf noise.bin | base64)" "$BASE/v1/uploads/" | tr -d '\r' | sed -n 's/^Location: //Ip')
[ -n "$loc" ] || fail "tus creation gave no Location"
U=${loc##*/}
grab tusPatch 409 "${AUTH[@]}" -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Content-Type: application/offset+octet-stream' \
  -H 'Upload-Offset: 5' --data-binary "@$W/noise.bin" "$BASE$loc"
grab getStatus 404 "${AUTH[@]}" "$BASE/status/$U"
code=$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" -X PATCH -H 'Tus-Resumable: 1.0.0' \
  -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' --data-binary "@$W/noise.bin" "$BASE$loc")
[ "$code" = 204 ] || fail "tus PATCH: $code"
grab getStatus 200 "${AUTH[@]}" "$BASE/status/$U"
[ "$(jq -r .status "$S/getStatus.200.$n.json" 2>/dev/null)" = failed ] || fail "the non-media tus upload is not a failed job"

# A runs: the events stream gives job objects (status and progress)
wait "$EV" || fail "the events stream of A did not end by itself"
k=0
while IFS= read -r line; do
  k=$((k + 1)); printf '%s\n' "${line#data: }" > "$S/getJob.200.ev$k.json"
done < <(grep '^data: ' "$W/events.txt")
[ "$k" -ge 3 ] || fail "the events stream gave $k events"
grep -q '^event: status' "$W/events.txt" || fail "no 'event: status' in the stream"
grep -q '^event: progress' "$W/events.txt" || fail "no 'event: progress' in the stream"
grab getStatus 200 "${AUTH[@]}" "$BASE/status/$A"
[ "$(jq -r .status "$S/getStatus.200.$n.json" 2>/dev/null)" = succeeded ] || fail "job A did not succeed: $(head -c 400 "$S/getStatus.200.$n.json")"
for o in hls thumbnail thumbnails-sprite mp4-480p; do
  jq -e --arg o "$o" '.outputs[] | select(.name == $o)' "$S/getStatus.200.$n.json" >/dev/null || fail "job A has no output $o"
done
grab jobDeliveries 200 "${AUTH[@]}" "$BASE/v1/jobs/$A/deliveries"
grab listJobs 200 "${AUTH[@]}" "$BASE/v1/jobs"
grab getOutput 416 "${AUTH[@]}" -H 'Range: bytes=900000000-' "$BASE/v1/jobs/$A/outputs/mp4-480p"
grab getOutput 404 "${AUTH[@]}" "$BASE/v1/jobs/$A/outputs/nope"
grab getOutputFile 404 "${AUTH[@]}" "$BASE/v1/jobs/$A/outputs/hls/nope.m3u8"
grab cancelJob 409 "${AUTH[@]}" -X POST "$BASE/v1/jobs/$A/cancel"
grab jobEvents 404 "${AUTH[@]}" "$BASE/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/events"
code=$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" "$BASE/v1/jobs/$A/outputs/hls/master.m3u8")
[ "$code" = 200 ] || fail "hls master: $code"

# the webhook bodies (every event type the run caused) against WebhookEvent
for _ in $(seq 50); do
  [ "$(jq -s '[.[] | select(.path=="/all") | .body | fromjson | .type] | unique | length' "$W/hooks.log" 2>/dev/null || echo 0)" -ge 5 ] && break
  sleep 0.2
done
k=0
while IFS= read -r b; do
  k=$((k + 1)); printf '%s\n' "$b" > "$S/WebhookEvent.200.h$k.json"
done < <(jq -c 'select(.path=="/all") | .body | fromjson' "$W/hooks.log" 2>/dev/null)
types=$(jq -r 'select(.path=="/all") | .body | fromjson | .type' "$W/hooks.log" 2>/dev/null | sort -u | tr '\n' ' ')
[ "$types" = "job.canceled job.failed job.progress job.started job.succeeded " ] || fail "webhook events received: '$types'"
jq -s -e 'map(select(.path=="/all")) | all(.verified)' "$W/hooks.log" >/dev/null || fail "a webhook's signature did not verify"
# a degraded node (the disk guard's threshold above any disk): its health
# answer and its refusal of an upload validate too
"$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$W/data2" --port-file "$W/port2" \
  --min-free-bytes 1000000000000000 >/dev/null 2>"$W/server2.log" &
P2=$!
for _ in $(seq 100); do [ -s "$W/port2" ] && break; sleep 0.1; done
B2=http://127.0.0.1:$(cat "$W/port2")
grab healthz 200 "$B2/healthz"
jq -e '.status == "degraded" and .checks.disk == "low"' "$S/healthz.200.$n.json" >/dev/null ||
  fail "degraded healthz: $(cat "$S/healthz.200.$n.json")"
grab createJob 507 "$B2/v1/jobs" -F "file=@$M/h264_aac_640x360.mp4"
kill "$P2"; wait "$P2" 2>/dev/null || true
note "$(ls "$S" | wc -l) samples"
node "$SUPPORT/openapi_check.js" "$W/doc.json" "$VIDQ_SRC/svc/http/routes.c" "$S" > "$W/check.txt" 2>&1 || true
cat "$W/check.txt"
grep -q '^openapi ok:' "$W/check.txt" || fail "openapi_check.js: $(grep -c FAIL "$W/check.txt") problem(s)"
# the server still serves
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ] || fail "the server stopped answering"
finish
