#!/usr/bin/env bash
# lb_cluster.sh DIR N [VIDQ SERVE FLAGS...] - N vidq nodes on loopback behind
# Debian's nginx, round-robin, no stickiness (issue #17 part 4).
#
# Starts N `vidq serve --listen 127.0.0.1:0 --data-dir DIR FLAGS...` at once
# (so they share DIR; pass the same --db to share the database), waits until
# every one listens, then runs nginx in the foreground of its own prefix
# DIR/nginx/ (config, pid, logs, temp files) on a free loopback port, with
# deploy/nginx/vidq.conf as its server config: the same file an operator
# copies, with only the upstream addresses and the listen line changed.
# When nginx answers /healthz through a node, prints one line on stdout:
#   ready <nginx port>
# and writes DIR/cluster.tsv, one line per process:
#   node <k> <pid> <port> <stderr log> <stdout log> <exit status file>
#   nginx 0 <pid> <port> <access log> <error log> -
# The exit status file of node k (DIR/node-k.exit) gets the node's exit
# status when it ends (137 after kill -9), so a test can stop a node itself
# and see whether it stopped cleanly. The access log has one line per
# request: "<method> <uri> <status> c<client connection serial> <upstream
# address(es)>".
# On SIGTERM/SIGINT, when nginx dies or when the parent process is gone:
# nginx and the nodes get SIGTERM, then SIGKILL after 20 s. Needs VIDQ_BIN and VIDQ_SRC (ctest sets them).
# Run by hand, e.g.: tests/support/with_pg.sh bash -c \
#   'tests/support/lb_cluster.sh /tmp/c 3 --db "$VIDQ_TEST_DB"'
set -uo pipefail

die() { echo "lb_cluster.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: lb_cluster.sh DIR N [VIDQ SERVE FLAGS...]"
dir=$1 n=$2
shift 2
: "${VIDQ_BIN:?}" "${VIDQ_SRC:?}"
[[ "$n" =~ ^[1-9][0-9]?$ ]] || die "N must be 1..99, got '$n'"
conf_src=$VIDQ_SRC/deploy/nginx/vidq.conf
[ -r "$conf_src" ] || die "no $conf_src"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || die "nginx is not installed (deploy/install-deps.sh --test)"
mkdir -p "$dir/nginx/tmp" || die "cannot make $dir/nginx"

pids=()
nginx_pid=
watch_pid=
stopping=0
stop_all() {
  stopping=1
  [ -n "$watch_pid" ] && kill -KILL "$watch_pid" 2>/dev/null
  [ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 200); do
    alive=0
    for p in "$nginx_pid" "${pids[@]}"; do
      [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "$nginx_pid" "${pids[@]}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap 'stop_all; exit 0' TERM INT
trap '[ $stopping = 1 ] || stop_all' EXIT

# A test that dies without stopping us (a failed check, a crash) must not
# leave nginx and the nodes running: stop when the parent is gone.
parent=$PPID
( while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done; kill -TERM $$ ) &
watch_pid=$!
disown "$watch_pid" # stop_all's wait is not for it, nor is bash's "Killed" notice

# ---- the nodes, all at once; each in a subshell that records its status
for k in $(seq 1 "$n"); do
  rm -f "$dir/node-$k.exit" "$dir/node-$k.pid"
  (
    trap '' INT
    "$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$dir" "$@" \
      >"$dir/node-$k.out" 2>"$dir/node-$k.log" </dev/null &
    echo $! >"$dir/node-$k.pid"
    trap 'kill -TERM $! 2>/dev/null' TERM
    exec 2>/dev/null # bash's "Killed" notice after a kill -9: the status file says it
    wait $!; rc=$?
    # a TERM trap interrupts the first wait: wait again for the real status
    kill -0 $! 2>/dev/null && { wait $!; rc=$?; }
    echo $rc >"$dir/node-$k.exit"
  ) &
  pids+=($!)
done
ports=()
deadline=$((SECONDS + 30))
for k in $(seq 1 "$n"); do
  port=
  while [ -z "$port" ]; do
    # no fork per poll: on a loaded machine each one costs tens of ms
    line=
    [ -s "$dir/node-$k.out" ] && IFS= read -r line <"$dir/node-$k.out"
    [[ "$line" =~ listening\ on\ 127\.0\.0\.1:([0-9]+) ]] && port=${BASH_REMATCH[1]}
    [ -n "$port" ] && break
    if [ -s "$dir/node-$k.exit" ] || [ $SECONDS -ge $deadline ]; then
      cat "$dir/node-$k.log" >&2
      die "node $k did not start"
    fi
    sleep 0.05
  done
  ports+=("$port")
done
# the subshells' pids are not the nodes': signal the nodes themselves
node_pids=()
for k in $(seq 1 "$n"); do node_pids+=("$(cat "$dir/node-$k.pid")"); done

# ---- nginx's config: vidq.conf with the test's addresses
# A port below the kernel's ephemeral range (32768+ by default), so no
# outgoing connection holds it; nginx failing to bind it is retried below.
# (No python probe: its start alone takes seconds on a loaded machine.)
free_port() { echo $((20000 + RANDOM % 12000)); }
gen_conf() { # listen port
  awk -v listen="127.0.0.1:$1" -v ports="${ports[*]}" '
    /^[ \t]*upstream[ \t]+vidq[ \t]*\{/ { up = 1 }
    up && /^[ \t]*server[ \t]+[^ \t;]+/ {
      if (!done) {   # one line per test node, with the first line'"'"'s parameters
        n = split(ports, p, " ")
        for (i = 1; i <= n; i++) {
          line = $0
          sub(/server[ \t]+[^ \t;]+/, "server 127.0.0.1:" p[i], line)
          print line
        }
        done = 1
      }
      next
    }
    up && /^[ \t]*\}/ { up = 0 }
    /^[ \t]*listen[ \t]+[^;]+;/ { sub(/listen[ \t]+[^;]+;/, "listen " listen ";") }
    { print }' "$conf_src" >"$dir/nginx/vidq.conf"
  {
    [ "$(id -u)" = 0 ] && echo "user $(id -un) $(id -gn);"
    cat <<CONF
# generated by tests/support/lb_cluster.sh; the server config is vidq.conf
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log info;
events { worker_connections 512; }
http {
    log_format lb '\$request_method \$request_uri \$status c\$connection \$upstream_addr';
    access_log $dir/nginx/access.log lb;
    client_body_temp_path $dir/nginx/tmp/body;
    proxy_temp_path $dir/nginx/tmp/proxy;
    fastcgi_temp_path $dir/nginx/tmp/fastcgi;
    uwsgi_temp_path $dir/nginx/tmp/uwsgi;
    scgi_temp_path $dir/nginx/tmp/scgi;
    include $dir/nginx/vidq.conf;
}
CONF
  } >"$dir/nginx/nginx.conf"
}

# The port may be taken (nginx exits: bind() failed): try another.
lb_port=
for _ in 1 2 3 4 5 6 7 8; do
  port=$(free_port) || die "no free port"
  gen_conf "$port"
  "$nginx_bin" -p "$dir/nginx/" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" \
    </dev/null >>"$dir/nginx/stdout.log" 2>&1 &
  nginx_pid=$!
  deadline=$((SECONDS + 10))
  while kill -0 "$nginx_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz"; then
      lb_port=$port
      break
    fi
    sleep 0.05
  done
  [ -n "$lb_port" ] && break
  kill -TERM "$nginx_pid" 2>/dev/null
  wait "$nginx_pid" 2>/dev/null
  nginx_pid=
done
[ -n "$lb_port" ] || { tail -20 "$dir/nginx/error.log" >&2; die "nginx did not start"; }

{
  for k in $(seq 1 "$n"); do
    printf 'node %d %s %s %s %s %s\n' "$k" "${node_pids[$((k - 1))]}" "${ports[$((k - 1))]}" \
      "$dir/node-$k.log" "$dir/node-$k.out" "$dir/node-$k.exit"
  done
  printf 'nginx 0 %s %s %s %s -\n' "$nginx_pid" "$lb_port" "$dir/nginx/access.log" \
    "$dir/nginx/error.log"
} >"$dir/cluster.tsv"
echo "ready $lb_port"

# Stay until told to stop, or until nginx dies (then stop the nodes too).
wait "$nginx_pid"
nginx_pid=
