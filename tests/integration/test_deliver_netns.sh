#!/usr/bin/env bash
# The target rule end to end under the default --fetch-targets public, with
# a public host to start from: the test re-runs itself in a user + network
# + mount namespace (unshare -rnm) where loopback also carries 1.2.3.4, an
# address the rule calls public, and where /etc/hosts is the test's own.
# - input_url on the public host: the job succeeds (the host is allowed);
# - input_url on the public host redirecting to 127.0.0.1: input_refused,
#   and the loopback origin sees no request;
# - input_url and upload_url on a hostname that resolves to loopback
#   (/etc/hosts): input_refused / output_undeliverable, no request reaches
#   the listener there;
# - upload_url on the public host: delivered under public (delivered_to);
#   one that redirects to 127.0.0.1: not followed (output_undeliverable),
#   nothing reaches loopback.
# Skipped (77) where unprivileged namespaces are not available.
# ctest-labels: integration
# ctest-timeout: 120
set -euo pipefail
if [ -z "${VIDQ_IN_NETNS:-}" ]; then
  unshare -rnm true 2>/dev/null && command -v ip >/dev/null || {
    echo "no user/network namespaces or no ip(8): skipped"; exit 77; }
  VIDQ_IN_NETNS=1 exec unshare -rnm bash "$0" "$@"
fi
PUB=1.2.3.4
ip link set lo up
ip addr add $PUB/32 dev lo

source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media
source "$(dirname "$0")/lib_deliver.sh" # IN, receiver NAME --host HOST ...
mkdir -p "$T/files"
cp "$IN" "$T/files/in.mp4"
printf '127.0.0.1 localhost\n127.0.0.1 media.internal.test\n%s media.public.test\n' "$PUB" >"$T/hosts"
mount --bind "$T/hosts" /etc/hosts

# origin NAME HOST: fetch_origin.py serving $T/files on HOST; sets OPORT.
origin() {
  python3 "$VIDQ_SRC/tests/support/fetch_origin.py" "$T/files" "$T/$1.log" "$2" >"$T/$1.port" &
  CLEANUP_PIDS+=($!)
  for _ in $(seq 50); do [ -s "$T/$1.port" ] && break; sleep 0.1; done
  OPORT=$(cut -d' ' -f2 "$T/$1.port")
  touch "$T/$1.log"
}
# job JSON: POST it as a URL job and wait for its end into $T/job.json.
job() {
  local code
  code=$(curl -s -o "$T/up.json" -w '%{http_code}' -H 'Content-Type: application/json' -d "$1" "$BASE/v1/jobs")
  [ "$code" = 202 ] || { fail "POST $1: HTTP $code $(head -c 300 "$T/up.json")"; echo '{}' >"$T/job.json"; return 0; }
  wait_job "$BASE" "$(jq -r .id "$T/up.json")" "$T/job.json" 60 >/dev/null
}

origin pub $PUB;  PUBO=$OPORT
origin lo 127.0.0.1; LOO=$OPORT
receiver loput --host 127.0.0.1; LOPUT=$RPORT
start_server "$T" "$T/data"   # --fetch-targets public (the default)

note "input_url on a public host: allowed"
job '{"input_url":"http://'$PUB:$PUBO'/file/in.mp4","preset":"thumbnail"}'
jq -e '.status == "succeeded"' "$T/job.json" >/dev/null || fail "public host: $(jq -c '{status, error}' "$T/job.json")"

note "input_url on a public host redirecting to 127.0.0.1: refused"
to=$(jq -rn --arg u "http://127.0.0.1:$LOO/file/in.mp4" '$u | @uri')
job '{"input_url":"http://'$PUB:$PUBO'/redirect?to='"$to"'","preset":"thumbnail"}'
jq -e '.status == "failed" and .error.code == "input_refused" and (.error.message | test("127.0.0.1"))' \
  "$T/job.json" >/dev/null || fail "redirect to loopback: $(jq -c '{status, error}' "$T/job.json")"
grep -q '^GET /redirect' "$T/pub.log" || fail "the public origin was not asked"
[ ! -s "$T/lo.log" ] || fail "the loopback origin was reached: $(cat "$T/lo.log")"

note "a hostname that resolves to loopback: refused at connect"
job '{"input_url":"http://media.internal.test:'$LOO'/file/in.mp4","preset":"thumbnail"}'
jq -e '.error.code == "input_refused"' "$T/job.json" >/dev/null || fail "name -> loopback input: $(jq -c .error "$T/job.json")"
[ ! -s "$T/lo.log" ] || fail "the loopback origin was reached by name"
job '{"input_url":"http://'$PUB:$PUBO'/file/in.mp4","outputs":[{"preset":"thumbnail","name":"p","upload_url":"http://media.internal.test:'$LOPUT'/p.jpg"}]}'
jq -e '.status == "failed" and .error.code == "output_undeliverable" and (.error.message | test("127.0.0.1 is not allowed"))' \
  "$T/job.json" >/dev/null || fail "name -> loopback upload: $(jq -c .error "$T/job.json")"
[ ! -s "$T/loput/log" ] || fail "the loopback receiver was reached by name"

note "upload_url on a public host: delivered; its redirect to loopback: not followed"
receiver pubput --host $PUB
job '{"input_url":"http://media.public.test:'$PUBO'/file/in.mp4","outputs":[{"preset":"thumbnail","name":"p","upload_url":"http://media.public.test:'$RPORT'/out/p.jpg"}]}'
jq -e '.status == "succeeded" and (.outputs[0].delivered_to | endswith("/out/p.jpg"))' "$T/job.json" >/dev/null ||
  fail "public receiver: $(jq -c '{status, error}' "$T/job.json")"
[ -s "$T/pubput/www/out/p.jpg" ] || fail "nothing arrived at the public receiver"
receiver pubredir --host $PUB --redirect "http://127.0.0.1:$LOPUT/p.jpg"
job '{"input_url":"http://'$PUB:$PUBO'/file/in.mp4","outputs":[{"preset":"thumbnail","name":"p","upload_url":"http://'$PUB:$RPORT'/p.jpg"}]}'
jq -e '.error.code == "output_undeliverable" and (.error.message | test("redirect"))' "$T/job.json" >/dev/null ||
  fail "public receiver redirecting: $(jq -c .error "$T/job.json")"
[ ! -s "$T/loput/log" ] || fail "the redirect reached loopback"

finish
