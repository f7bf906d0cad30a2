# lib_deliver.sh - what the delivery tests (test_deliver*.sh: outputs sent
# to an upload_url) share: PUT receivers on loopback, a job of the 2 s clip
# with given outputs, comparing a delivered file with vidq's copy, and the
# WebDAV receiver (Debian's nginx). Sourced after lib_cli.sh, not run (its
# name does not match test_*, so ctest skips it).
#
# Needs: lib_cli.sh (T, BASE, CLEANUP_PIDS, fail), python3, curl, jq.

# The input of every job; a test may set IN before sourcing.
IN=${IN:-$VIDQ_MEDIA/h264_aac_640x360.mp4}

# receiver NAME [ARGS...]: start tests/support/put_receiver.py (ARGS: its
# flags, e.g. --host H, --fail-first N, --always CODE, --rate B/s,
# --redirect URL) with the files it stores under $T/NAME/www and one JSON
# line a request in $T/NAME/log; stopped at exit. Sets RPORT.
receiver() {
  local name=$1
  shift
  mkdir -p "$T/$name"
  python3 "$VIDQ_SRC/tests/support/put_receiver.py" --root "$T/$name/www" --log "$T/$name/log" \
    "$@" >"$T/$name/port" &
  CLEANUP_PIDS+=($!)
  for _ in $(seq 50); do [ -s "$T/$name/port" ] && break; sleep 0.1; done
  RPORT=$(head -n 1 "$T/$name/port")
  touch "$T/$name/log"
}

# submit JSON_OUTPUTS: a job of $IN (multipart) with these outputs; the
# answer in $T/up.json, the id in ID (empty if refused, after a fail).
submit() {
  local code
  code=$(curl -s -o "$T/up.json" -w '%{http_code}' -F "file=@$IN" -F "outputs=$1" "$BASE/v1/jobs")
  ID=$(jq -r '.id // empty' "$T/up.json")
  [ "$code" = 202 ] || fail "submit $1: HTTP $code $(head -c 300 "$T/up.json")"
}

# same_file CONTEXT URL_PATH FILE: vidq's copy (downloaded) has FILE's sha256.
same_file() {
  curl -s -o "$T/dl" "$BASE$2"
  [ "$(sha256sum <"$T/dl")" = "$(sha256sum <"$3")" ] || fail "$1: $3 differs from $2"
}

# webdav_start: Debian's nginx as a WebDAV receiver (dav_methods PUT,
# create_full_put_path on) under $T/nginx: files under $T/nginx/www/dav/,
# one line a request in $T/nginx/put.log ("<method> <uri> <status>
# <content type> <content length>"). Sets DAV (its base URL). Needs
# tests/support/nginx.sh sourced and nginx_stop_all at exit; returns 1
# after a fail if nginx did not start.
webdav_start() {
  nginx_start "$T/nginx" '
  log_format put "$request_method $uri $status $content_type $content_length";
  server {
    listen 127.0.0.1:@PORT@;
    access_log '"$T"'/nginx/put.log put;
    client_max_body_size 0;
    location /dav/ {
      root '"$T"'/nginx/www;
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }' || { fail "nginx did not start: $(tail -c 300 "$T/nginx/error.log")"; return 1; }
  DAV=http://127.0.0.1:$NGINX_PORT/dav
}
