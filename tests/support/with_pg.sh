#!/usr/bin/env bash
# with_pg.sh CMD [ARGS...] - run CMD against a throwaway PostgreSQL cluster.
#
# Makes a cluster in a new temp dir (initdb, trust auth, no TCP: a unix
# socket in that dir, fsync off), starts it, creates the database "vidq",
# runs CMD with
#   VIDQ_TEST_PG_HOST  the socket dir
#   VIDQ_TEST_PG_USER  the superuser name (vidq)
#   VIDQ_TEST_DB       postgresql://vidq@/vidq?host=<socket dir>
# then stops the cluster and removes the dir, whatever CMD did. Exits with
# CMD's status; exits 1 (never 77: a skipped PostgreSQL test would hide a
# broken backend) when PostgreSQL is missing or does not start.
# PostgreSQL refuses to run as root: as root, the cluster runs as the
# postgres user (Debian's package creates it) via runuser.
set -uo pipefail

die() { echo "with_pg.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: with_pg.sh CMD [ARGS...]"
bindir=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { bindir=$d; break; }
done
[ -n "$bindir" ] || die "no PostgreSQL server (initdb, pg_ctl) under /usr/lib/postgresql/*/bin: install the postgresql package (deploy/install-deps.sh --test)"

as=()
owner=$(id -un)
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user to run the cluster as"
  as=(runuser -u postgres --)
  owner=postgres
fi

dir=$(mktemp -d /tmp/vidq-pg.XXXXXX) || die "mktemp failed"
chmod 755 "$dir"
[ "$owner" = "$(id -un)" ] || chown "$owner" "$dir"

cleanup() {
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! "${as[@]}" "$bindir/initdb" -D "$dir/data" -U vidq -A trust -E UTF8 --locale=C \
     --no-sync >"$dir/initdb.log" 2>&1; then
  cat "$dir/initdb.log" >&2
  die "initdb failed"
fi
if ! "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
     -o "-k $dir -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
     start >/dev/null 2>&1; then
  cat "$dir/server.log" >&2
  die "the PostgreSQL server did not start"
fi
if ! "$bindir/psql" -X -q -h "$dir" -U vidq -d postgres -c 'CREATE DATABASE vidq' >/dev/null; then
  cat "$dir/server.log" >&2
  die "cannot create the database"
fi

export VIDQ_TEST_PG_HOST="$dir" VIDQ_TEST_PG_USER=vidq
export VIDQ_TEST_DB="postgresql://vidq@/vidq?host=$dir"
"$@"
rc=$?
if [ $rc -ne 0 ] && [ -n "${WITH_PG_SHOW_LOG:-}" ]; then
  tail -50 "$dir/server.log" >&2
fi
exit $rc
