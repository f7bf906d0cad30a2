# lib_tus.sh - the start of the shell tests of tus uploads through the real
# tus-js-client under node (test_tus_*.sh), and their job waits. Sourced,
# not run (its name does not match test_*, so ctest skips it).
#
# Needs: VIDQ_BIN VIDQ_SRC VIDQ_MEDIA VIDQ_TEST_TMP, node with
# tests/support/node_modules (tests/support/setup.sh), curl.

# tus_setup TAG: checks the environment (exits 77 if vidq is not built, 1
# if tus-js-client or the clip is missing); sets SRC (the 2 s clip),
# CLIENT (tests/support/tus_upload.js), W (a new folder
# $VIDQ_TEST_TMP/TAG-XXXXXX) and D ($W/data); sources lib_serve.sh
# (start_server, stop_server, PID, BASE) with the server stopped at exit;
# defines fail MESSAGE (prints it and the servers' log tails, exits 1).
tus_setup() {
  : "${VIDQ_BIN:?}" "${VIDQ_SRC:?}" "${VIDQ_MEDIA:?}" "${VIDQ_TEST_TMP:?}"
  [ -x "$VIDQ_BIN" ] || { echo "vidq not built"; exit 77; }
  [ -d "$VIDQ_SRC/tests/support/node_modules/tus-js-client" ] || {
    echo "tus-js-client missing: run tests/support/setup.sh"; exit 1; }
  SRC=$VIDQ_MEDIA/h264_aac_640x360.mp4
  [ -s "$SRC" ] || { echo "missing $SRC"; exit 1; }
  CLIENT=$VIDQ_SRC/tests/support/tus_upload.js
  W=$(mktemp -d "$VIDQ_TEST_TMP/$1-XXXXXX")
  D=$W/data
  source "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"
  trap 'stop_server; wait 2>/dev/null || true' EXIT
}

fail() { echo "FAIL: $*"; echo "--- server log"; tail -n 30 "$W"/server*.log || true; exit 1; }

# tus_wait_job ID FILE [CURL ARGS...]: polls GET $BASE/status/ID (with the
# curl arguments, e.g. an Authorization header) into FILE until the job
# has ended, for 30 s at most; the caller checks FILE.
tus_wait_job() {
  local id=$1 file=$2
  shift 2
  for _ in $(seq 300); do
    curl -s "$@" "$BASE/status/$id" >"$file"
    grep -q '"status":"\(succeeded\|failed\|canceled\)"' "$file" && break
    sleep 0.1
  done
}

# tus_stop_clean: SIGTERM the server and fail unless it exits 0.
tus_stop_clean() {
  kill -TERM "$PID"
  wait "$PID" || fail "server exit status $?"
  PID=
}
