#!/usr/bin/env bash
# Install the Debian packages vidq needs, only those missing.
#   deploy/install-deps.sh          what building and running needs
#   deploy/install-deps.sh --test   plus what the tests need
# Idempotent: with everything present it touches nothing and needs no network.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
want="build"
[ "${1:-}" = "--test" ] && want="build|test"

missing=()
while read -r kind pkg cmd; do
  case "$kind" in ''|\#*) continue ;; esac
  [[ "$kind" =~ ^($want)$ ]] || continue
  if [ -n "${cmd:-}" ] && command -v "$cmd" >/dev/null 2>&1; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done < "$here/packages.txt"

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
