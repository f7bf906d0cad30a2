#!/usr/bin/env bash
# GET / serves the web page: 200 text/html, self-contained (no script,
# style, image or font from another origin), using the API's endpoints
# (multipart upload with XHR progress, the events stream, status, outputs).
# Served without the key on a server with --api-key, while the API it calls
# still needs the key. HEAD works; other methods on / are 405; the server
# goes on serving.
# ctest-labels: cli
# ctest-timeout: 60
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built

W=$T/svc; mkdir -p "$W"
serve() { start_server "$W" "$W/data" "$@" || finish; } # serve [ARGS...]

# check_page CTX: GET / is the page.
check_page() {
  local ctx=$1 r
  r=$(curl -s -o "$W/index.html" -D "$W/h.txt" -w '%{http_code} %{content_type}' "$BASE/")
  [ "$r" = "200 text/html; charset=utf-8" ] || { fail "$ctx: GET / gave '$r'"; return 0; }
  [ "$(stat -c %s "$W/index.html")" -gt 2000 ] || fail "$ctx: the page is only $(stat -c %s "$W/index.html") bytes"
  grep -qi '^content-security-policy:.*default-src '"'"'self'"'" "$W/h.txt" || fail "$ctx: no CSP limiting the page to its origin"
  local want
  for want in '<!doctype html>' '<input id="file" type="file"' 'ondrop' 'XMLHttpRequest' \
              'upload.onprogress' '"/v1/jobs"' '/events' 'EventSource' '"/v1/presets"' \
              '<progress' 'createElement(first.mime.startsWith("audio/") ? "audio" : "video")' \
              'Authorization' '/cancel' 'input_url' 'p.fetch.percent'; do
    grep -qF -- "$want" "$W/index.html" || fail "$ctx: the page lacks $want"
  done
  # Self-contained: nothing loaded from another origin.
  local far='(src|href|action)=["'"'"']?(https?:)?//|@import|url\(["'"'"']?(https?:)?//|(fetch|open)\(["'"'"'][a-z]+:'
  if grep -Eiq "$far" "$W/index.html"; then
    fail "$ctx: the page loads something from elsewhere: $(grep -Eio "$far[^ ]*" "$W/index.html" | head -n 3)"
  fi
  r=$(curl -s -I -o /dev/null -w '%{http_code} %{content_type}' "$BASE/")
  [ "$r" = "200 text/html; charset=utf-8" ] || fail "$ctx: HEAD / gave '$r'"
  r=$(curl -s -X POST -o "$W/post.json" -w '%{http_code}' "$BASE/")
  [ "$r" = 405 ] || fail "$ctx: POST / gave $r, want 405"
  [ "$(jq -r .error.code "$W/post.json" 2>/dev/null)" = method_not_allowed ] || fail "$ctx: POST / body $(head -c 200 "$W/post.json")"
  r=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/index.htm")
  [ "$r" = 404 ] || fail "$ctx: GET /index.htm gave $r, want 404"
}

note "no API key"
serve
check_page "open server"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/presets")
[ "$code" = 200 ] || fail "open server: /v1/presets $code"
stop_server

note "with --api-key: the page loads without it, the API does not"
serve --api-key "k3y-for-the-page-test"
check_page "keyed server"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/presets")
[ "$code" = 401 ] || fail "keyed server: /v1/presets without the key gave $code, want 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer k3y-for-the-page-test' "$BASE/v1/presets")
[ "$code" = 200 ] || fail "keyed server: /v1/presets with the key gave $code"
grep -q "sessionStorage" "$W/index.html" || fail "keyed server: the page keeps no key"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")
[ "$code" = 200 ] || fail "server stopped serving: healthz $code"
stop_server
finish
