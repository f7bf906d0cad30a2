# nginx.sh - a throwaway nginx (Debian's, with its modules) for a shell
# test, in a folder of its own. Sourced, not run.
#
# nginx_start DIR HTTP_TEXT: writes DIR/nginx.conf with HTTP_TEXT inside
# its http { } block, the word @PORT@ in it replaced by a free loopback
# port, and runs `nginx -p DIR` in the foreground as a background job
# (logs, temp files and pid in DIR). Sets NGINX_PID and NGINX_PORT once the
# port answers; returns 1 (after 3 tries with other ports) if it never did,
# with DIR/error.log kept. Each started nginx is added to NGINX_PIDS.
# NGINX_HOST (default 127.0.0.1) is where the port is probed.
# nginx_stop_all: stop every nginx this shell started.
NGINX_PIDS=()

nginx_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

nginx_start() {
  local dir=$1 text=$2 try port user=
  mkdir -p "$dir/logs" "$dir/tmp"
  # As root, nginx's workers would switch to nobody and lose the files.
  [ "$(id -u)" = 0 ] && user="user root;"
  for try in 1 2 3; do
    port=$(nginx_free_port)
    cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 256; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
${text//@PORT@/$port}
}
EOF
    nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>>"$dir/error.log" &
    NGINX_PID=$!
    for _ in $(seq 50); do
      if curl -s -o /dev/null "http://${NGINX_HOST:-127.0.0.1}:$port/" 2>/dev/null; then
        NGINX_PORT=$port
        NGINX_PIDS+=("$NGINX_PID")
        return 0
      fi
      kill -0 "$NGINX_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null || true
  done
  return 1
}

nginx_stop_all() {
  local p
  for p in "${NGINX_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NGINX_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  NGINX_PIDS=()
}
