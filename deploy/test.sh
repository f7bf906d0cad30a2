#!/usr/bin/env bash
# The README's second command: install what is missing, build, and run every
# test: the normal build (all labels), then an ASan+UBSan build of the same
# tests. Fails on the first failing stage. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash deploy/install-deps.sh --test
[ -x tests/support/setup.sh ] && bash tests/support/setup.sh

export VIDQ_MEDIA="$PWD/build/test-media"   # generated once, shared by both builds
jobs=$(nproc)

echo "== build (RelWithDebInfo, warnings as errors)"
bash deploy/build.sh build -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
echo "== tests"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== build (ASan+UBSan)"
bash deploy/build.sh build-asan -DSANITIZE=ON -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
echo "== tests under ASan+UBSan"
(cd build-asan && ctest --output-on-failure -j"$jobs" -LE slow)

echo "== fuzzing (libFuzzer, ASan+UBSan): replay every corpus, then 20 s per harness"
bash tests/fuzz/run.sh

echo "== all tests passed in $(( $(date +%s) - start )) s"
