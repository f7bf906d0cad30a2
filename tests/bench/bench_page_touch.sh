#!/usr/bin/env bash
# bench_page_touch.sh - what a fresh page costs on this host (page_touch.c):
# the unit of a forked child's warm-up (README, Upload latency). Builds the
# probe with cc and runs it; no vidq involved.
#   tests/bench/bench_page_touch.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp /tmp/vidq-page-touch.XXXXXX)
trap 'rm -f "$out"' EXIT
cc -O2 -o "$out" "$here/page_touch.c"
"$out"
