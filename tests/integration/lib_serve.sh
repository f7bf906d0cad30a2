# lib_serve.sh - the service in a shell test: start `vidq serve` on a free
# loopback port, upload a file as a job, wait for a job to end. Sourced, not
# run (lib_cli.sh sources it, and so do the tests that do without
# lib_cli.sh); its name does not match test_*, so ctest skips it.
#
# Needs: VIDQ_BIN, curl, jq, and a fail function (lib_cli.sh's, or the
# test's own).

PID=
BASE=
# stop_server: kill -9 the server that start_server started, if any.
stop_server() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=; }

# start_server DIR DATA_DIR [ARGS...]: stop the server started before, then
# run `vidq serve --listen 127.0.0.1:0 --data-dir DATA_DIR ARGS...` with its
# stdout in DIR/server.out, its log in $SERVER_LOG (default DIR/server.log)
# and its port in DIR/port; an environment prefix (VIDQ_LOG_LEVEL=debug
# start_server ...) reaches the server. Sets PID, PORT and BASE; when no
# port was written within 10 s, calls fail with the log's tail and returns 1.
start_server() {
  local dir=$1 data=$2
  shift 2
  stop_server
  rm -f "$dir/port"
  "$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$data" --port-file "$dir/port" "$@" \
    >"$dir/server.out" 2>"${SERVER_LOG:-$dir/server.log}" &
  PID=$!
  for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
  if [ ! -s "$dir/port" ]; then
    fail "server did not start: $(tail -c 300 "${SERVER_LOG:-$dir/server.log}")"
    return 1
  fi
  PORT=$(cat "$dir/port")
  BASE=http://127.0.0.1:$PORT
}

# start_server_env DIR DATA_DIR [ENV=VAL...] -- [ARGS...]: start_server
# with the variables ENV set for that server only (the fault switches of
# the sandbox tests, say).
start_server_env() {
  local dir=$1 data=$2 envs=() e rc=0
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  for e in "${envs[@]}"; do export "${e?}"; done
  start_server "$dir" "$data" "$@" || rc=$?
  for e in "${envs[@]}"; do unset "${e%%=*}"; done
  return $rc
}

# wait_job BASE ID FILE [SECONDS]: polls GET BASE/v1/jobs/ID into FILE until
# the job has ended or SECONDS (default 60) have passed; prints the last
# status seen ("" if none).
wait_job() {
  local base=$1 id=$2 file=$3 st=""
  for _ in $(seq $(( ${4:-60} * 10 ))); do
    [ -n "$id" ] || break
    curl -s "$base/v1/jobs/$id" >"$file" || true
    st=$(jq -r '.status // empty' "$file" 2>/dev/null || true)
    case "$st" in succeeded|failed|canceled) break ;; esac
    sleep 0.1
  done
  echo "$st"
}

# run_job DIR FILE SECONDS [ARGS...]: upload FILE to $BASE as a job (curl
# -F file=@FILE ARGS...) and wait up to SECONDS for its end: the answer in
# DIR/up.json, the job object in DIR/job.json, its id in ID. Returns 0 for a
# job that succeeded, else 1 after a FAIL line that says why.
run_job() {
  local dir=$1 f=$2 secs=$3 code st
  shift 3
  ID=
  code=$(curl -s -o "$dir/up.json" -w '%{http_code}' -F "file=@$f" "$@" "$BASE/v1/jobs")
  [ "$code" = 202 ] || { fail "upload $f: HTTP $code $(head -c 300 "$dir/up.json")"; return 1; }
  ID=$(jq -r '.id // empty' "$dir/up.json")
  st=$(wait_job "$BASE" "$ID" "$dir/job.json" "$secs")
  [ "$st" = succeeded ] || { fail "job $f: status '$st': $(head -c 400 "$dir/job.json")"; return 1; }
}
