#!/usr/bin/env bash
# The full matrix, part 1 of 2: every generated fixture x every preset,
# each output checked with ffprobe against lib_cli.sh's PRESET_TABLE (see
# run_matrix there). The pairs run by the quick tests are left out.
# ctest-labels: cli slow
# ctest-timeout: 600
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media
load_presets
run_matrix 1 2
finish
