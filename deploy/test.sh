#!/usr/bin/env bash
# The README's second command: install what is missing, build, and run every
# test once in the build that checks it best, then fuzz. Fails on the first
# failing stage. Called by .ci/run.
#
# Every test runs in the ASan+UBSan build, where it also checks memory and
# undefined behaviour, except the ones labelled `slow` (the full CLI matrix
# and the retention soak: minutes of encoding that ASan would double), which
# run in the release build, with the unit tests and the tests labelled
# `release` (budgets of time and memory that hold only without sanitizers). Running every quick test in
# both builds cost 10 of CI's 30 minutes on 2 cores and found nothing the
# sanitizer run did not; `--full` still does it (every test in both builds).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
full=0
case "${1:-}" in
  --full) full=1 ;;
  "") ;;
  *) echo "usage: deploy/test.sh [--full]" >&2; exit 2 ;;
esac
bash deploy/install-deps.sh --test
[ -x tests/support/setup.sh ] && bash tests/support/setup.sh

export VIDQ_MEDIA="$PWD/build/test-media"   # generated once, shared by both builds
jobs=$(nproc)

echo "== build (RelWithDebInfo, warnings as errors)"
bash deploy/build.sh build -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
if [ "$full" = 1 ]; then
  echo "== tests (all)"
  (cd build && ctest --output-on-failure -j"$jobs")
else
  echo "== tests labelled slow, unit or release (the rest run under ASan+UBSan below)"
  (cd build && ctest --output-on-failure -j"$jobs" -L 'slow|unit|release')
fi

echo "== build (ASan+UBSan)"
bash deploy/build.sh build-asan -DSANITIZE=ON -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
echo "== tests under ASan+UBSan"
(cd build-asan && ctest --output-on-failure -j"$jobs" -LE slow)

echo "== fuzzing (libFuzzer, ASan+UBSan): replay every corpus, then 20 s per harness"
bash tests/fuzz/run.sh

echo "== all tests passed in $(( $(date +%s) - start )) s"
