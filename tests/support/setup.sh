#!/usr/bin/env bash
# Install the Node packages the tests use (package-lock.json) into
# tests/support/node_modules. deploy/test.sh runs this. Idempotent and quick:
# does nothing when node_modules already matches the lock file.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.vidq-setup-stamp
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(sha256sum package-lock.json | cut -d' ' -f1)" ]; then
  exit 0
fi
echo "tests/support/setup.sh: npm ci"
npm ci --no-audit --no-fund --loglevel=error
sha256sum package-lock.json | cut -d' ' -f1 > "$stamp"
