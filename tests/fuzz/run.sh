#!/usr/bin/env bash
# tests/fuzz/run.sh - build the libFuzzer harnesses (clang, ASan+UBSan, into
# build-fuzz/), replay every committed corpus and regression input, then
# fuzz each harness for a bounded time. Fails on any crash, leak, sanitizer
# report, timeout or out-of-memory; the input that did it is kept (path
# printed) to be committed under tests/fuzz/regressions/<harness>/ with its fix.
#
#   tests/fuzz/run.sh                 replay, then 20 s per harness (deploy/test.sh: ~3 min in all)
#   tests/fuzz/run.sh --replay        replay only
#   tests/fuzz/run.sh --long [S]      replay, then S s per harness (default 1800), niced;
#                                     prints execs/s and totals per harness
#   FUZZ_SECONDS=N tests/fuzz/run.sh  N s per harness
#   FUZZ_ONLY=spec tests/fuzz/run.sh  one harness (fuzz_<name>)
# New interesting inputs go to build-fuzz/fuzz/work/<harness>/ (not into
# the committed corpus: merge by hand with -merge=1 when worth keeping).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
mode=short
seconds=${FUZZ_SECONDS:-20}
case "${1:-}" in
  --replay) mode=replay ;;
  --long) mode=long; seconds=${2:-1800} ;;
  "") ;;
  *) echo "usage: $0 [--replay | --long [SECONDS]]" >&2; exit 2 ;;
esac

command -v clang >/dev/null || { echo "fuzz: clang missing (Debian: clang, libclang-rt-14-dev)" >&2; exit 1; }
mkdir -p "$build"
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIDQ_FUZZ=ON \
    -DSANITIZE=ON -DVIDQ_TESTS=OFF >"$build/fuzz-configure.log" 2>&1 ||
    { tail -n 30 "$build/fuzz-configure.log" >&2; exit 1; }
fi
cmake --build "$build" --target fuzz_all -j"$(nproc)" >"$build/fuzz-build.log" 2>&1 ||
  { grep -E "error|Error" "$build/fuzz-build.log" | head -n 30 >&2; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$root/tests/support/lsan.supp:print_suppressions=0

harnesses=()
for src in "$here"/fuzz_*.c; do
  name=$(basename "$src" .c)
  [ -n "${FUZZ_ONLY:-}" ] && [ "$name" != "fuzz_${FUZZ_ONLY#fuzz_}" ] && continue
  harnesses+=("$name")
done
[ "${#harnesses[@]}" -gt 0 ] || { echo "fuzz: no harness" >&2; exit 1; }

# Per harness: the largest input worth trying.
max_len() { case "$1" in fuzz_probe) echo 65536 ;; fuzz_upload_options|fuzz_tus) echo 16384 ;; *) echo 4096 ;; esac; }

nice_cmd=()
[ "$mode" = long ] && nice_cmd=(nice -n 19)
total_runs=0
total_secs=0
summary=()
for h in "${harnesses[@]}"; do
  short=${h#fuzz_}
  bin="$build/fuzz/$h"
  corpus="$here/corpus/$short"
  regress="$here/regressions/$short"
  dict="$here/dict/$short.dict"
  work="$build/fuzz/work/$short"
  art="$build/fuzz/artifacts/$short/"
  mkdir -p "$work" "$art"
  dict_arg=()
  [ -f "$dict" ] && dict_arg=(-dict="$dict")
  dirs=("$corpus")
  [ -d "$regress" ] && dirs+=("$regress")
  # Replay: every committed input once.
  if ! "$bin" -runs=0 -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$art" "${dirs[@]}" \
      >"$work.replay.log" 2>&1; then
    echo "fuzz: $h FAILED replaying its corpus/regressions:" >&2
    tail -n 40 "$work.replay.log" >&2
    exit 1
  fi
  echo "fuzz: $h replayed $(find "${dirs[@]}" -type f | wc -l) inputs"
  [ "$mode" = replay ] && continue
  # Fuzz: the committed inputs seed a scratch corpus.
  if ! "${nice_cmd[@]}" "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len="$(max_len "$h")" -print_final_stats=1 -artifact_prefix="$art" "${dict_arg[@]}" \
      "$work" "${dirs[@]}" >"$work.log" 2>&1; then
    echo "fuzz: $h FOUND A FAILURE (input kept in $art):" >&2
    grep -E "ERROR|SUMMARY|==[0-9]+==|Test unit written|artifact" "$work.log" | head -n 20 >&2
    tail -n 30 "$work.log" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log" | tail -n 1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$work.log" | tail -n 1)
  runs=${runs:-0}
  secs=${secs:-$seconds}
  [ "$secs" -gt 0 ] || secs=1
  total_runs=$((total_runs + runs))
  total_secs=$((total_secs + secs))
  line=$(printf '%-22s %12d execs in %5d s = %8d execs/s, corpus %d' "$h" "$runs" "$secs" \
         $((runs / secs)) "$(find "$work" -type f | wc -l)")
  summary+=("$line")
  echo "fuzz: $line"
done
if [ "$mode" != replay ]; then
  echo "fuzz: total $total_runs executions in $total_secs s across ${#harnesses[@]} harnesses, no failure"
fi
