#!/usr/bin/env bash
# The web page in a real browser (headless Debian chromium driven by
# playwright-core, tests/support/web_page.js): choose a file, watch both
# progress bars reach 100, and the mp4-480p output play in the page's
# <video> (metadata loaded: size and duration from the server's file).
# Once against an open server (progress by EventSource, the video from its
# URL), once through the page's "from a URL" field (the server fetches
# the clip from a loopback origin) and once with --api-key (the page asks for the key, polls the
# status and plays the output from a blob fetched with the key).
# Needs chromium (deploy/packages.txt, test) and playwright-core
# (tests/support/setup.sh): missing either fails the test, it never skips.
# ctest-labels: cli
# ctest-timeout: 240
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

SUPPORT=$VIDQ_SRC/tests/support
command -v chromium >/dev/null || { fail "chromium is not installed (deploy/install-deps.sh --test)"; finish; }
[ -d "$SUPPORT/node_modules/playwright-core" ] || { fail "playwright-core missing: run tests/support/setup.sh"; finish; }

W=$T/svc; mkdir -p "$W"
serve() { start_server "$W" "$W/data" --max-concurrent 1 "$@" || finish; } # serve [ARGS...]

in=$VIDQ_MEDIA/h264_aac_640x360.mp4
# browse CTX [web_page.js args]: run the browser; the played video must be
# the 480p rendition of the 640x360 input (never upscaled: 640x360).
browse() {
  local ctx=$1 rc=0
  shift
  timeout -k 5 180 node "$SUPPORT/web_page.js" --base "$BASE" --file "$in" --preset mp4-480p \
    --timeout-s 120 "$@" >"$W/browser.out" 2>"$W/browser.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "$ctx: browser run exit $rc: $(head -c 600 "$W/browser.err")"
    return 0
  fi
  local v
  v=$(jq -r '.video | "\(.w)x\(.h) \(.d > 1.5 and .d < 2.5)"' "$W/browser.out")
  [ "$v" = "640x360 true" ] || fail "$ctx: the page played '$v' ($(cat "$W/browser.out")), want 640x360 of about 2 s"
}

note "open server: upload, EventSource progress, play"
serve
browse "open server"
stop_server

note "from a URL: the page's URL field, the server fetches (input_url), plays"
mkdir -p "$W/origin"
cp "$in" "$W/origin/in.mp4"
python3 "$SUPPORT/fetch_origin.py" "$W/origin" "$W/origin.log" >"$W/origin.port" &
CLEANUP_PIDS+=($!)
for _ in $(seq 50); do [ -s "$W/origin.port" ] && break; sleep 0.1; done
serve --fetch-targets public+loopback
browse "from a URL" --url "http://127.0.0.1:$(cut -d' ' -f2 "$W/origin.port")/file/in.mp4"
grep -q '^GET /file/in.mp4' "$W/origin.log" || fail "from a URL: the origin was not asked"
stop_server

note "server with --api-key: the page asks for the key, polls, plays a blob"
serve --api-key "browser-test-key"
browse "keyed server" --key "browser-test-key"
stop_server
finish
