#!/usr/bin/env bash
# Bad command lines and unusable paths: exit 2 (bad command line, unknown
# preset, bad spec JSON) or 1 (the input or output cannot be used), always
# with exactly one stderr line "vidq: <code>: <message>", and never a file
# left in the output folder. Plus --help and --version.
# ctest-labels: cli
# ctest-timeout: 120
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media
in="$VIDQ_MEDIA/h264_aac_640x360.mp4"
od="$T/out"
mkdir "$od"
out="$od/out.mp4"

# usage CTX RC CODES ARGS...: run `vidq ARGS`, expect RC + CODES, no file.
usage() {
  local ctx=$1 rc=$2 codes=$3
  shift 3
  run_vidq "$@"
  expect_error "$ctx" "$rc" "$codes"
  [ -s "$T/out.txt" ] && fail "$ctx: printed on stdout: $(head -c 200 "$T/out.txt")"
  if [ -n "$(ls -A "$od")" ]; then fail "$ctx: left files: $(ls -A "$od" | tr '\n' ' ')"; rm -f "$od"/*; fi
  return 0
}
# message_has CTX WORD: the last error message names WORD.
message_has() {
  grep -qi -- "$2" "$T/err.txt" || fail "$1: message does not name '$2': $(head -n 1 "$T/err.txt")"
}

any='[a-z_]+'
usage "no arguments" 2 "$any" transcode
usage "no OUT" 2 "$any" transcode "$in"
usage "extra argument" 2 "$any" transcode "$in" "$out" "$od/third.mp4"
usage "unknown flag" 2 "$any" transcode "$in" "$out" --bogus
usage "--preset without value" 2 "$any" transcode "$in" "$out" --preset
usage "--output without value" 2 "$any" transcode "$in" "$out" --output
usage "--preset and --output" 2 "$any" transcode "$in" "$out" --preset mp4-720p \
  --output '{"name":"o","container":"mp4","video":{"codec":"h264"},"audio":{"codec":"aac"}}'
usage "--progress bogus" 2 "$any" transcode "$in" "$out" --progress bogus
usage "--threads abc" 2 "$any" transcode "$in" "$out" --threads abc
usage "--threads -1" 2 "$any" transcode "$in" "$out" --threads -1
usage "--threads 12x" 2 "$any" transcode "$in" "$out" --threads 12x

usage "unknown preset" 2 invalid_preset transcode "$in" "$out" --preset mp4-9000p
message_has "unknown preset" mp4-9000p
usage "empty preset" 2 invalid_preset transcode "$in" "$out" --preset ""

usage "spec not JSON" 2 invalid_output transcode "$in" "$out" --output '{"name": "o", "container":'
usage "spec is an array" 2 invalid_output transcode "$in" "$out" --output '[]'
usage "spec is a string" 2 invalid_output transcode "$in" "$out" --output '"mp4"'
usage "spec unknown container" 2 invalid_output transcode "$in" "$out" \
  --output '{"name":"o","container":"avi","video":{"codec":"h264"},"audio":{"codec":"aac"}}'
message_has "spec unknown container" container
usage "spec unknown video codec" 2 invalid_output transcode "$in" "$out" \
  --output '{"name":"o","container":"mp4","video":{"codec":"divx"},"audio":{"codec":"aac"}}'
message_has "spec unknown video codec" codec
usage "spec negative max_height" 2 invalid_output transcode "$in" "$out" \
  --output '{"name":"o","container":"mp4","video":{"codec":"h264","max_height":-5},"audio":{"codec":"aac"}}'
message_has "spec negative max_height" max_height
usage "spec crf not a number" 2 invalid_output transcode "$in" "$out" \
  --output '{"name":"o","container":"mp4","video":{"codec":"h264","crf":"x"},"audio":{"codec":"aac"}}'
message_has "spec crf not a number" crf
usage "spec bad name" 2 invalid_output transcode "$in" "$out" \
  --output '{"name":"../x","container":"mp4","video":{"codec":"h264"},"audio":{"codec":"aac"}}'
message_has "spec bad name" name
usage "spec no streams" 2 invalid_output transcode "$in" "$out" \
  --output '{"name":"o","container":"mp4","video":null,"audio":null}'

usage "input missing" 1 io_error transcode "$T/no-such-input.mp4" "$out"
message_has "input missing" no-such-input.mp4
usage "input is a folder" 1 "io_error|unsupported_media" transcode "$T" "$out"
if [ "$(id -u)" -ne 0 ]; then
  cp "$in" "$T/unreadable.mp4"
  chmod 000 "$T/unreadable.mp4"
  usage "input unreadable" 1 io_error transcode "$T/unreadable.mp4" "$out"
fi
usage "output folder missing" 1 io_error transcode "$in" "$od/no/such/dir/out.mp4"
touch "$T/plainfile"
usage "output under a file" 1 io_error transcode "$in" "$T/plainfile/out.mp4"
[ -s "$T/plainfile" ] && fail "output under a file: wrote into $T/plainfile"
# procfs refuses new files even to root.
usage "output folder not writable" 1 io_error transcode "$in" /proc/vidq-test-out.mp4

usage "probe without file" 2 "$any" probe
usage "probe missing file" 1 io_error probe "$T/no-such-input.mp4"
usage "presets unknown flag" 2 "$any" presets --bogus
usage "unknown subcommand" 2 "$any" transcodex "$in" "$out"

run_vidq --help
[ "$RC" -eq 0 ] || fail "--help: exit $RC"
grep -q transcode "$T/out.txt" || fail "--help does not mention transcode"
run_vidq --version
[ "$RC" -eq 0 ] || fail "--version: exit $RC"
grep -qi vidq "$T/out.txt" || fail "--version does not print vidq's version"
run_vidq transcode --help
[ "$RC" -eq 0 ] || fail "transcode --help: exit $RC"
grep -q -- --preset "$T/out.txt" || fail "transcode --help does not document --preset"
finish
