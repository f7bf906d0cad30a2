#!/usr/bin/env bash
# Outputs delivered to a URL (upload_url, API.md "Outputs delivered to a
# URL"), against real receivers on loopback (the server runs with
# --fetch-targets public+loopback for those):
# - Debian's nginx with the WebDAV module (dav_methods PUT,
#   create_full_put_path on): an MP4 output and an HLS output (a prefix)
#   arrive byte-identical (sha256 of every file against vidq's own copy),
#   with their Content-Type and Content-Length (nginx's log), the HLS
#   playlists after their segments and master.m3u8 last; a sprite output
#   (a prefix too) with thumbnails.vtt after its sheets; the job lists
#   delivered_to (and delivered_files for the folder);
# - tests/support/put_receiver.py failing the first two PUTs with 503: the
#   third try delivers, the job succeeds;
# - a receiver that always answers 503: three tries, then the job fails
#   output_undeliverable and its outputs are still downloadable from vidq;
#   one that answers 403: one try only; one that redirects: not followed;
# - under the default --fetch-targets public, an upload_url whose host is
#   loopback, private, link-local, CGNAT, multicast, unspecified or an
#   IPv4-mapped form of these (in several spellings), or not http(s), is
#   400 invalid_output at submit, with nothing queued; the server keeps
#   serving.
# Cancel and kill -9 while delivering: test_deliver_crash.sh. A public
# host redirecting to loopback: test_deliver_netns.sh.
# ctest-labels: integration
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
source "$VIDQ_SRC/tests/support/nginx.sh"
skip_if_not_built
ensure_media
command -v nginx >/dev/null || { echo "nginx not installed (deploy/packages.txt)"; exit 77; }
trap 'nginx_stop_all; lib_cleanup' EXIT

source "$(dirname "$0")/lib_deliver.sh" # receiver, submit, same_file, webdav_start

# -------------------------------------------------------------- WebDAV
note "nginx WebDAV: an MP4 and an HLS output arrive byte-identical"
webdav_start || finish # sets DAV
start_server "$T" "$T/data" --fetch-targets public+loopback
submit '[{"preset":"mp4-480p","name":"small","upload_url":"'"$DAV"'/j1/small.mp4"},
         {"preset":"hls","name":"ladder","upload_url":"'"$DAV"'/j1/ladder/"},
         {"preset":"thumbnails-sprite","name":"sheets","upload_url":"'"$DAV"'/j1/sheets/"}]'
jq -e '.status == "queued" or .status == "running"' "$T/up.json" >/dev/null || fail "not queued"
st=$(wait_job "$BASE" "$ID" "$T/job.json" 60)
if [ "$st" != succeeded ]; then
  fail "WebDAV job: $st $(head -c 400 "$T/job.json")"
else
  jq -e --arg d "$DAV" '.outputs[0].delivered_to == $d + "/j1/small.mp4" and
                        .outputs[1].delivered_to == $d + "/j1/ladder/" and
                        (.outputs[1].delivered_files | type) == "number"' "$T/job.json" >/dev/null ||
    fail "delivered_to: $(jq -c '[.outputs[] | {delivered_to, delivered_files}]' "$T/job.json")"
  www=$T/nginx/www/dav/j1
  same_file "mp4" "/v1/jobs/$ID/outputs/small" "$www/small.mp4"
  n=0
  while IFS= read -r f; do
    rel=${f#"$www/ladder/"}
    same_file "hls $rel" "/v1/jobs/$ID/outputs/ladder/$rel" "$f"
    n=$((n + 1))
  done < <(find "$www/ladder" -type f | sort)
  [ "$n" -ge 4 ] || fail "hls: only $n files arrived"
  [ "$n" = "$(jq '.outputs[1].delivered_files' "$T/job.json")" ] || fail "hls: $n files, delivered_files says otherwise"
  local_n=$(find "$T/data/outputs/$ID" -path '*ladder*' -type f | wc -l)
  [ "$n" = "$local_n" ] || fail "hls: $n files arrived, vidq has $local_n"
  # Content-Type and Content-Length as nginx saw them.
  grep -q "^PUT /dav/j1/small.mp4 201 video/mp4 $(stat -c %s "$www/small.mp4")\$" "$T/nginx/put.log" ||
    fail "mp4 PUT: $(grep small.mp4 "$T/nginx/put.log")"
  grep -Eq '^PUT /dav/j1/ladder/[^ ]+\.ts 201 video/mp2t [0-9]+$' "$T/nginx/put.log" ||
    fail "ts PUT content type: $(head -3 "$T/nginx/put.log")"
  grep -Eq '^PUT /dav/j1/ladder/master\.m3u8 201 application/vnd\.apple\.mpegurl [0-9]+$' "$T/nginx/put.log" ||
    fail "master PUT: $(grep master "$T/nginx/put.log")"
  [ "$(grep /ladder/ "$T/nginx/put.log" | tail -n 1 | cut -d' ' -f2)" = /dav/j1/ladder/master.m3u8 ] ||
    fail "master.m3u8 was not the last file sent"
  last_seg=$(grep -n '\.ts 201' "$T/nginx/put.log" | tail -n 1 | cut -d: -f1)
  first_pl=$(grep -n '\.m3u8 201' "$T/nginx/put.log" | head -n 1 | cut -d: -f1)
  [ "$last_seg" -lt "$first_pl" ] || fail "a playlist was sent before a segment"
  ffprobe -v error "$www/ladder/master.m3u8" >/dev/null 2>&1 || fail "the delivered master.m3u8 does not play"
  # A sprite output: the sheets, then thumbnails.vtt (text/vtt) last.
  for f in "$www"/sheets/*; do
    same_file "sprite ${f##*/}" "/v1/jobs/$ID/outputs/sheets/${f##*/}" "$f"
  done
  [ -f "$www/sheets/thumbnails.vtt" ] && [ -f "$www/sheets/sheet-0000.jpg" ] || fail "sprite files: $(ls "$www/sheets" 2>&1)"
  [ "$(grep /sheets/ "$T/nginx/put.log" | tail -n 1)" = "PUT /dav/j1/sheets/thumbnails.vtt 201 text/vtt $(stat -c %s "$www/sheets/thumbnails.vtt")" ] ||
    fail "sprite PUTs: $(grep /sheets/ "$T/nginx/put.log")"
  jq -e '.outputs[2].delivered_files == ('"$(ls "$www/sheets" | wc -l)"')' "$T/job.json" >/dev/null || fail "sprite delivered_files"
fi

# ------------------------------------------------- a receiver that fails
note "a receiver failing the first two PUTs gets the file on the third"
receiver flaky --fail-first 2
submit '[{"preset":"thumbnail","name":"v","upload_url":"http://127.0.0.1:'"$RPORT"'/out/v.jpg"}]'
st=$(wait_job "$BASE" "$ID" "$T/job.json" 60)
[ "$st" = succeeded ] || fail "flaky receiver: $st $(jq -c .error "$T/job.json")"
[ "$(jq -r .status "$T/flaky/log" | tr '\n' ' ')" = "503 503 201 " ] ||
  fail "flaky receiver saw: $(jq -r .status "$T/flaky/log" | tr '\n' ' ')"
jq -e 'select(.status == 201) | .content_type == "image/jpeg" and .transfer_encoding == null and
       (.content_length | tonumber) == .bytes' "$T/flaky/log" >/dev/null || fail "flaky: headers $(tail -n 1 "$T/flaky/log")"
[ -f "$T/flaky/www/out/v.jpg" ] && same_file "flaky" "/v1/jobs/$ID/outputs/v" "$T/flaky/www/out/v.jpg"

note "a receiver that always answers 503: output_undeliverable, outputs kept"
receiver down --always 503
submit '[{"preset":"audio-m4a","name":"v","upload_url":"http://127.0.0.1:'"$RPORT"'/v.m4a"},
         {"preset":"thumbnail","name":"poster"}]'
st=$(wait_job "$BASE" "$ID" "$T/job.json" 60)
jq -e '.status == "failed" and .error.code == "output_undeliverable" and
       (.error.message | test("3 tries.*HTTP 503"))' "$T/job.json" >/dev/null ||
  fail "always 503: $(jq -c '{status, error}' "$T/job.json")"
[ "$(wc -l <"$T/down/log")" = 3 ] || fail "always 503: $(wc -l <"$T/down/log") tries, want 3"
code=$(curl -s -o "$T/kept.m4a" -w '%{http_code}' "$BASE/v1/jobs/$ID/outputs/v")
[ "$code" = 200 ] && ffprobe -v error "$T/kept.m4a" >/dev/null 2>&1 || fail "undelivered output not downloadable: $code"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/jobs/$ID/outputs/poster")" = 200 ] || fail "the other output not downloadable"
jq -e '.outputs[0].size > 0 and .outputs[0].delivered_to == null' "$T/job.json" >/dev/null ||
  fail "undelivered outputs: $(jq -c .outputs "$T/job.json")"

note "403 is not retried; a redirect is not followed"
receiver forbidden --always 403
submit '[{"preset":"thumbnail","name":"p","upload_url":"http://127.0.0.1:'"$RPORT"'/p.jpg"}]'
st=$(wait_job "$BASE" "$ID" "$T/job.json" 60)
jq -e '.error.code == "output_undeliverable" and (.error.message | test("1 try.*HTTP 403"))' "$T/job.json" >/dev/null ||
  fail "403: $(jq -c '{status, error}' "$T/job.json")"
[ "$(wc -l <"$T/forbidden/log")" = 1 ] || fail "403 retried"
receiver target
receiver redir --redirect "http://127.0.0.1:$RPORT/elsewhere.jpg"
submit '[{"preset":"thumbnail","name":"p","upload_url":"http://127.0.0.1:'"$RPORT"'/p.jpg"}]'
st=$(wait_job "$BASE" "$ID" "$T/job.json" 60)
jq -e '.error.code == "output_undeliverable" and (.error.message | test("redirect"))' "$T/job.json" >/dev/null ||
  fail "redirect: $(jq -c '{status, error}' "$T/job.json")"
[ ! -s "$T/target/log" ] || fail "the redirect was followed: $(cat "$T/target/log")"

# ------------------------------------------- refused at submit (public)
note "default --fetch-targets public: address classes refused at submit"
start_server "$T" "$T/data2"
before=$(curl -s "$BASE/v1/jobs?limit=100" | jq '.jobs | length')
for u in http://127.0.0.1/x http://127.1.2.3:8080/x http://localhost/x http://a.localhost/x \
         http://2130706433/x http://0x7f.1/x http://017700000001/x 'http://[::1]/x' \
         'http://[::ffff:127.0.0.1]/x' 'http://[::ffff:10.0.0.1]/x' http://10.1.2.3/x \
         http://172.16.0.1/x http://192.168.1.1/x http://169.254.169.254/latest \
         'http://[fe80::1]/x' 'http://[fc00::1]/x' http://100.64.0.1/x http://224.0.0.1/x \
         'http://[ff02::1]/x' http://0.0.0.0/x 'http://[::]/x' http://255.255.255.255/x \
         'http://[64:ff9b::a00:1]/x' 'http://[2002:a00:1::]/x'; do
  # A JSON body (a URL job): the same check as an upload's, without a probe.
  code=$(curl -s -o "$T/r.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"input_url\":\"http://example.com/a.mp4\",\"outputs\":[{\"preset\":\"thumbnail\",\"name\":\"p\",\"upload_url\":\"$u\"}]}" \
    "$BASE/v1/jobs")
  [ "$code" = 400 ] && jq -e '.error.code == "invalid_output" and
      (.error.message | test("outputs\\[0\\]\\.upload_url: (address|host) .* not allowed"))' "$T/r.json" >/dev/null ||
    fail "upload_url $u: HTTP $code $(head -c 200 "$T/r.json")"
done
for u in ftp://example.com/x file:///etc/passwd 'not a url' ''; do
  code=$(curl -s -o "$T/r.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"input_url\":\"http://example.com/a.mp4\",\"outputs\":[{\"preset\":\"thumbnail\",\"upload_url\":\"$u\"}]}" \
    "$BASE/v1/jobs")
  [ "$code" = 400 ] && jq -e '.error.code == "invalid_output"' "$T/r.json" >/dev/null ||
    fail "upload_url '$u': HTTP $code $(head -c 200 "$T/r.json")"
done
code=$(curl -s -o "$T/r.json" -w '%{http_code}' -F "file=@$IN" \
  -F 'outputs=[{"preset":"thumbnail","upload_url":42}]' "$BASE/v1/jobs")
[ "$code" = 400 ] && grep -q 'must be a string' "$T/r.json" || fail "upload_url 42: $code"
# An upload (multipart, query) goes through the same check.
code=$(curl -s -o "$T/r.json" -w '%{http_code}' -F "file=@$IN" \
  -F 'outputs=[{"preset":"thumbnail","upload_url":"http://10.0.0.1/p.jpg"}]' "$BASE/v1/jobs")
[ "$code" = 400 ] && grep -q 'address 10.0.0.1 is not allowed' "$T/r.json" ||
  fail "upload with a private upload_url: $code $(head -c 200 "$T/r.json")"
code=$(curl -s -o "$T/r.json" -w '%{http_code}' -H 'Content-Type: video/mp4' --data-binary "@$IN" \
  "$BASE/v1/jobs?outputs=%5B%7B%22preset%22%3A%22thumbnail%22%2C%22upload_url%22%3A%22http%3A%2F%2F127.0.0.1%2Fp%22%7D%5D")
[ "$code" = 400 ] || fail "raw upload with a loopback upload_url: $code $(head -c 200 "$T/r.json")"
after=$(curl -s "$BASE/v1/jobs?limit=100" | jq '.jobs | length')
[ "$before" = "$after" ] || fail "refused submits queued jobs ($before -> $after)"
# A public address and a hostname pass the submit check (judged at connect).
code=$(curl -s -o "$T/r.json" -w '%{http_code}' -F "file=@$IN" \
  -F 'outputs=[{"preset":"thumbnail","name":"p","upload_url":"http://cdn.invalid/p.jpg"}]' "$BASE/v1/jobs")
[ "$code" = 202 ] || fail "hostname upload_url refused at submit: $code $(head -c 200 "$T/r.json")"
ID=$(jq -r .id "$T/r.json")
st=$(wait_job "$BASE" "$ID" "$T/job.json" 60)
jq -e '.error.code == "output_undeliverable"' "$T/job.json" >/dev/null || fail "unresolvable host: $(jq -c .error "$T/job.json")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ] || fail "server not serving after the refusals"

finish
