#!/usr/bin/env bash
# Smoke test of the transcode library end to end through the CLI: the
# generated fixture through mp4-720p, checked with ffprobe; a text file is
# refused with unsupported_media and leaves nothing behind; a hostile HLS
# playlist naming a local file is refused without reading it; several
# presets in one pass.
# ctest-labels: integration
# ctest-timeout: 60
set -euo pipefail
in="$VIDQ_MEDIA/h264_aac_640x360.mp4"
[ -s "$in" ] || { echo "missing fixture $in"; exit 77; }
tmp="$VIDQ_TEST_TMP/tc_smoke.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 1. mp4-720p: a 640x360 source stays 640x360 (never upscale), H.264 High
#    yuv420p + AAC, 2 s, progress JSON ends at 100.
"$VIDQ_BIN" transcode "$in" "$tmp/out.mp4" --preset mp4-720p --progress json >"$tmp/progress.jsonl" \
    || fail "transcode exit $?"
[ -s "$tmp/out.mp4" ] || fail "no output"
[ ! -e "$tmp/out.mp4.part" ] || fail "part file left"
probe() { ffprobe -v error -select_streams "$1" -show_entries "$2" -of default=nw=1:nk=1 "$tmp/out.mp4"; }
[ "$(probe v:0 stream=codec_name)" = h264 ] || fail "video codec $(probe v:0 stream=codec_name)"
[ "$(probe v:0 stream=profile)" = High ] || fail "profile $(probe v:0 stream=profile)"
[ "$(probe v:0 stream=pix_fmt)" = yuv420p ] || fail "pix_fmt"
[ "$(probe v:0 stream=width)x$(probe v:0 stream=height)" = 640x360 ] || fail "size $(probe v:0 stream=width)x$(probe v:0 stream=height)"
[ "$(probe a:0 stream=codec_name)" = aac ] || fail "audio codec"
dur=$(ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$tmp/out.mp4")
awk -v d="$dur" 'BEGIN { exit !(d > 1.9 && d < 2.1) }' || fail "duration $dur"
# faststart: the moov atom comes before mdat
# (grep -c reads all its input: grep -q would exit early, SIGPIPE head, and
# pipefail would turn that race into a failure.)
[ "$(head -c 65536 "$tmp/out.mp4" | grep -c moov)" -gt 0 ] || fail "moov not at the start (no faststart)"
# the last line is the outputs summary; the one before it the last progress
tail -n1 "$tmp/progress.jsonl" | grep -q '^{"outputs":\[' || fail "no outputs summary last: $(tail -n1 "$tmp/progress.jsonl")"
head -n -1 "$tmp/progress.jsonl" > "$tmp/p.jsonl" && mv "$tmp/p.jsonl" "$tmp/progress.jsonl"
tail -n1 "$tmp/progress.jsonl" | grep -q '"percent":100' || fail "last progress is not 100: $(tail -n1 "$tmp/progress.jsonl")"
# every line has the fields; percent never goes down; 100 only at the end
awk '
  !/"percent":[0-9.e+-]+,"out_time_s":[0-9.e+-]+,"frames":[0-9]+,"fps":[0-9.e+-]+,"speed":[0-9.e+-]+,"eta_s":([0-9.e+-]+|null)}$/ { print "bad line " NR ": " $0; bad = 1 }
  { match($0, /"percent":[0-9.e+-]+/); p = substr($0, RSTART + 10, RLENGTH - 10) + 0
    if (p < last) { print "percent went down at line " NR; bad = 1 }
    if (seen100) { print "line after 100"; bad = 1 }
    if (p == 100) seen100 = 1
    last = p }
  END { exit bad }' "$tmp/progress.jsonl" || fail "progress lines"

# 2. a text file: unsupported_media, exit 1, one stderr line, nothing left.
printf 'hello, not a video\n' > "$tmp/text.mp4"
set +e
"$VIDQ_BIN" transcode "$tmp/text.mp4" "$tmp/bad.mp4" 2>"$tmp/err.txt"; rc=$?
set -e
[ $rc -eq 1 ] || fail "text input exit $rc"
[ "$(wc -l < "$tmp/err.txt")" -eq 1 ] || fail "stderr not one line: $(cat "$tmp/err.txt")"
grep -q '^vidq: unsupported_media: ' "$tmp/err.txt" || fail "stderr: $(cat "$tmp/err.txt")"
[ ! -e "$tmp/bad.mp4" ] && [ ! -e "$tmp/bad.mp4.part" ] || fail "bad input left a file"

# 3. an HLS playlist naming a local file: refused before anything is opened.
printf '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile://%s\n#EXT-X-ENDLIST\n' "$in" > "$tmp/evil.m3u8"
set +e
"$VIDQ_BIN" transcode "$tmp/evil.m3u8" "$tmp/evil.mp4" 2>"$tmp/err.txt"; rc=$?
set -e
[ $rc -eq 1 ] || fail "hls input exit $rc"
grep -q "^vidq: unsupported_media: input format 'hls' is refused" "$tmp/err.txt" || fail "stderr: $(cat "$tmp/err.txt")"
[ ! -e "$tmp/evil.mp4" ] || fail "hls input left a file"

# 4. an unknown preset is a command-line error (exit 2).
set +e
"$VIDQ_BIN" transcode "$in" "$tmp/x.mp4" --preset nope 2>"$tmp/err.txt"; rc=$?
set -e
[ $rc -eq 2 ] || fail "unknown preset exit $rc"
grep -q '^vidq: invalid_preset: ' "$tmp/err.txt" || fail "stderr: $(cat "$tmp/err.txt")"
# 5. several presets in one pass: OUT is a folder of <preset>.<ext>.
"$VIDQ_BIN" transcode "$in" "$tmp/multi" --preset mp4-480p,thumbnail --progress none \
    || fail "multi-output exit $?"
[ "$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name -of default=nw=1:nk=1 "$tmp/multi/mp4-480p.mp4")" = h264 ] \
    || fail "multi: no mp4-480p.mp4"
[ "$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name -of default=nw=1:nk=1 "$tmp/multi/thumbnail.jpg")" = mjpeg ] \
    || fail "multi: no thumbnail.jpg"
[ "$(ls "$tmp/multi" | wc -l)" -eq 2 ] || fail "multi: unexpected files: $(ls "$tmp/multi")"
echo "ok"
