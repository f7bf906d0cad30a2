#!/usr/bin/env bash
# Install vidq as a systemd service (Debian 12, as root):
#   bash deploy/install.sh [--bin FILE] [--prefix DIR] [--destdir DIR] [--enable]
#     --bin FILE     the binary to install (default build/vidq; built by
#                    deploy/build.sh when absent)
#     --prefix DIR   where it goes: DIR/bin/vidq (default /usr/local)
#     --destdir DIR  stage everything under DIR instead of / (packaging,
#                    tests); nothing is reloaded or started then
#     --enable       also `systemctl enable --now vidq` (starts it)
# Installs PREFIX/bin/vidq, /etc/systemd/system/vidq.service (ExecStart
# pointing at PREFIX/bin/vidq) and, once, /etc/vidq/vidq.env (mode 0600;
# an existing one is kept). Without --enable it starts nothing.
# Exit codes: 0 installed, 1 failed, 2 bad command line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
bin="" prefix=/usr/local destdir="" enable=0

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) [ $# -ge 2 ] || usage; bin=$2; shift 2 ;;
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    --destdir) [ $# -ge 2 ] || usage; destdir=$2; shift 2 ;;
    --enable) enable=1; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
case "$prefix" in
  /*) ;;
  *) echo "install.sh: --prefix must be an absolute path (the unit runs it)" >&2; exit 2 ;;
esac
case "$prefix" in *[[:space:]%\$\\]*)
  echo "install.sh: --prefix may not hold spaces, %, \$ or \\ (systemd would read them)" >&2
  exit 2 ;;
esac
if [ -n "$destdir" ] && [ "$enable" = 1 ]; then
  echo "install.sh: --enable cannot start a staged (--destdir) install" >&2
  exit 2
fi

if [ -z "$bin" ]; then
  bin=$src/build/vidq
  if [ ! -x "$bin" ]; then
    bash "$here/install-deps.sh"
    bash "$here/build.sh" "$src/build"
  fi
fi
if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
  echo "install.sh: $bin is not an executable file" >&2
  exit 1
fi
if ! "$bin" --version >/dev/null 2>&1; then
  echo "install.sh: $bin does not run (vidq --version failed)" >&2
  exit 1
fi

root=${destdir%/}
bindir=$root$prefix/bin
unitdir=$root/etc/systemd/system
confdir=$root/etc/vidq
install -d -m 0755 "$bindir" "$unitdir"
install -d -m 0755 "$confdir"
# Written aside and renamed, so a running service never sees half a binary.
install -m 0755 "$bin" "$bindir/.vidq.new"
mv -f "$bindir/.vidq.new" "$bindir/vidq"
sed "s|^ExecStart=/usr/local/bin/vidq |ExecStart=$prefix/bin/vidq |" "$here/vidq.service" \
  > "$unitdir/.vidq.service.new"
chmod 0644 "$unitdir/.vidq.service.new"
mv -f "$unitdir/.vidq.service.new" "$unitdir/vidq.service"
if [ -e "$confdir/vidq.env" ]; then
  echo "install.sh: kept $confdir/vidq.env (see $here/vidq.env for new settings)"
else
  install -m 0600 "$here/vidq.env" "$confdir/vidq.env"
fi
echo "install.sh: installed $bindir/vidq, $unitdir/vidq.service, $confdir/vidq.env"

if [ -n "$destdir" ]; then
  exit 0
fi
if [ ! -d /run/systemd/system ]; then
  echo "install.sh: systemd is not running here; start it later with: systemctl enable --now vidq"
  exit 0
fi
systemctl daemon-reload
if [ "$enable" = 1 ]; then
  systemctl enable --now vidq.service
  echo "install.sh: vidq is running: systemctl status vidq; journalctl -u vidq"
else
  echo "install.sh: start it with: systemctl enable --now vidq"
fi
