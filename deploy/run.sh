#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the
# service on its embedded default (SQLite in ./var), on 127.0.0.1:8080.
# Extra arguments go to `vidq serve` (e.g. --listen 127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh build
mkdir -p var
exec ./build/vidq serve --listen "${VIDQ_LISTEN:-127.0.0.1:8080}" --data-dir ./var "$@"
