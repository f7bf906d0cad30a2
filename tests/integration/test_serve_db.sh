#!/usr/bin/env bash
# vidq serve --db: a store URL that cannot be used stops the server at once
# with exit 1 and one stderr line naming the problem (never the URL's
# password), and it never says "listening". Under tests/support/with_pg.sh
# (ctest it.test_serve_db.pg) also: the server runs on the test cluster,
# and refuses a database whose vidq schema version is not its own.
# ctest-labels: integration
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built

# bad_db CTX URL WORD: serve with --db URL fails fast, naming WORD.
bad_db() {
  local ctx=$1 url=$2 word=$3 t0 t1
  t0=$(date +%s)
  VIDQ_TIMEOUT=30 run_vidq serve --listen 127.0.0.1:0 --data-dir "$T/data" --db "$url"
  t1=$(date +%s)
  [ "$RC" -eq 1 ] || fail "$ctx: exit $RC, want 1 ($(head -c 300 "$T/err.txt"))"
  grep -q "listening" "$T/out.txt" && fail "$ctx: the server said it was listening"
  grep -q "^vidq serve: .*$word" "$T/err.txt" || fail "$ctx: no 'vidq serve: ...$word' line: $(head -c 300 "$T/err.txt")"
  grep -q "s3cret" "$T/err.txt" "$T/out.txt" && fail "$ctx: the password was printed"
  [ $((t1 - t0)) -le 15 ] || fail "$ctx: took $((t1 - t0)) s to fail"
  return 0
}

bad_db "unknown scheme" "mysql://x/y" "postgres://"
bad_db "empty sqlite path" "sqlite:" "sqlite"
bad_db "sqlite in a missing folder" "sqlite:$T/no/such/dir/x.db" "no/such/dir"
bad_db "unresolvable host" "postgres://vidq:s3cret@nohost.invalid/x" "nohost.invalid"
bad_db "no server on the socket" "postgresql:///x?host=$T/nosock" "nosock"
bad_db "connection refused" "postgres://vidq:s3cret@127.0.0.1:1/x" "refused"
bad_db "malformed URL" "postgres://[::1/x" "URI"

if [ -n "${VIDQ_TEST_DB:-}" ]; then
  url="postgresql://$VIDQ_TEST_PG_USER@/serve_db?host=$VIDQ_TEST_PG_HOST"
  psql -X -q "$VIDQ_TEST_DB" -c 'CREATE DATABASE serve_db' >/dev/null
  bad_db "missing database" "postgresql://$VIDQ_TEST_PG_USER@/no_such_db?host=$VIDQ_TEST_PG_HOST" "no_such_db"
  # The real thing: it starts, creates its schema, answers, stops cleanly.
  "$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$T/data" --db "$url" \
    --port-file "$T/port" >"$T/serve.out" 2>"$T/serve.err" &
  pid=$!
  CLEANUP_PIDS+=("$pid")
  for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
  port=$(cat "$T/port" 2>/dev/null || echo 0)
  [ "$port" -gt 0 ] || fail "the server on PostgreSQL did not start: $(head -c 500 "$T/serve.err")"
  body=$(curl -s "http://127.0.0.1:$port/v1/jobs") || true
  [ "$body" = '{"jobs":[],"next":null}' ] || fail "GET /v1/jobs on a new database: $body"
  kill -TERM "$pid"
  wait "$pid" || fail "the server on PostgreSQL exited $? on SIGTERM"
  v=$(psql -X -At "$url" -c "SELECT value FROM vidq_meta WHERE key = 'schema_version'")
  [ "$v" = 1 ] || fail "schema_version is '$v'"
  # Started again on the same database: the schema is already there.
  VIDQ_TIMEOUT=30 run_vidq serve --listen 127.0.0.1:0 --data-dir "$T/data" --db "$url" --port-file "$T/port2" &
  p2=$!
  for _ in $(seq 100); do [ -s "$T/port2" ] && break; sleep 0.1; done
  [ -s "$T/port2" ] || fail "the second start on the same database failed: $(head -c 500 "$T/err.txt")"
  kill -TERM "$p2" 2>/dev/null || true
  wait "$p2" || true
  # A schema from another vidq version is refused, not used.
  psql -X -q "$url" -c "UPDATE vidq_meta SET value = '99' WHERE key = 'schema_version'"
  bad_db "newer schema" "$url" "schema version 99"
fi
finish
