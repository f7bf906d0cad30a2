#!/usr/bin/env bash
# Bad and hostile inputs. Every committed bad fixture (fixtures/bad/, with
# its expected error code in fixtures/bad/EXPECTED) makes `vidq transcode`
# exit 1 with one line "vidq: <code>: <message>" and leave nothing in the
# output folder; `vidq probe` refuses it the same way. Then live hostile
# playlists and scripts made here, naming a loopback listener and real local
# media: they must be refused without opening what they name (the listener
# must see no connection, and a followed reference would have succeeded).
# ctest-labels: cli
# ctest-timeout: 240
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media
bad="$VIDQ_SRC/fixtures/bad"
expected="$bad/EXPECTED"

# refused CTX FILE CODES [PROBE]: transcode (and probe, unless PROBE=any)
# of FILE fail with CODES and leave an empty output folder.
n=0
refused() {
  local ctx=$1 f=$2 codes=$3 probe=${4:-fail} dir
  n=$((n + 1))
  dir="$T/out$n"
  mkdir "$dir"
  run_vidq transcode "$f" "$dir/out.mp4" --preset mp4-480p
  expect_error "$ctx: transcode" 1 "$codes"
  if [ -n "$(ls -A "$dir")" ]; then fail "$ctx: left files: $(ls -A "$dir" | tr '\n' ' ')"; fi
  run_vidq transcode "$f" "$dir/out.m4a" --preset audio-m4a
  expect_error "$ctx: transcode audio-m4a" 1 "$codes"
  if [ -n "$(ls -A "$dir")" ]; then fail "$ctx: left files: $(ls -A "$dir" | tr '\n' ' ')"; fi
  if [ "$probe" = fail ]; then
    run_vidq probe "$f"
    expect_error "$ctx: probe" 1 "$codes"
    [ -s "$T/out.txt" ] && fail "$ctx: probe printed on stdout: $(head -c 200 "$T/out.txt")"
  fi
  return 0
}

# --- committed bad fixtures: each has a row, each is refused as stated.
for f in "$bad"/*; do
  name=$(basename "$f")
  [ "$name" = EXPECTED ] && continue
  grep -q "^$name " "$expected" || fail "fixtures/bad/$name has no row in fixtures/bad/EXPECTED"
done
total=$(du -cb "$bad" | tail -1 | cut -f1)
[ "$total" -lt 2000000 ] || fail "fixtures/bad holds $total bytes, want < 2 MB"
while read -r name codes probe; do
  case "$name" in ''|\#*) continue ;; esac
  if [ ! -e "$bad/$name" ]; then fail "EXPECTED names $name, missing in fixtures/bad"; continue; fi
  note "bad: $name"
  refused "$name" "$bad/$name" "$codes" "$probe"
done < "$expected"

# --- live hostile references, watched by a loopback listener.
python3 "$VIDQ_SRC/tests/integration/listen.py" "$T/port" "$T/connections.log" &
CLEANUP_PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || { fail "listener did not start"; finish; }
port=$(cat "$T/port")
url="http://127.0.0.1:$port"
: > "$T/connections.log"

hls() { # target
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n%s\n#EXT-X-ENDLIST\n' "$1"
}
live="$T/live"
mkdir "$live"
# Real media next to the scripts: following a reference would SUCCEED.
cp "$VIDQ_MEDIA/mpeg2_mp2.ts" "$live/seg.ts"
cp "$VIDQ_MEDIA/h264_aac_640x360.mp4" "$live/seg.mp4"
hls "$url/x.ts" > "$live/loopback.m3u8"
hls "$url/x.ts" > "$live/loopback_named.mp4"
hls "$live/seg.ts" > "$live/local_abs.m3u8"
hls "seg.ts" > "$live/local_rel.m3u8"
hls "file:$live/seg.ts" > "$live/local_file_url.mp4"
printf "ffconcat version 1.0\nfile '%s/x.ts'\n" "$url" > "$live/loopback.ffconcat"
printf "ffconcat version 1.0\nfile 'seg.mp4'\n" > "$live/local_rel.ffconcat"
printf "ffconcat version 1.0\nfile 'seg.mp4'\n" > "$live/local_rel_named.mp4"
printf "ffconcat version 1.0\nfile '%s/seg.mp4'\n" "$live" > "$live/local_abs.ffconcat"
sed "s|http://127.0.0.1:1/|$url/|" "$bad/hostile_loopback.mpd" > "$live/loopback.mpd"
printf '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n%s/v.m3u8\n' "$url" > "$live/loopback_master.m3u8"

for f in "$live"/*; do
  case "$f" in */seg.*) continue ;; esac
  note "live hostile: $(basename "$f")"
  refused "live $(basename "$f")" "$f" unsupported_media fail
done

if [ -s "$T/connections.log" ]; then
  fail "the loopback listener was contacted: $(cat "$T/connections.log")"
fi
# Positive control: the listener does record a connection.
curl -s -m 2 "$url/control" >/dev/null 2>&1 || true
sleep 0.2
grep -q "control" "$T/connections.log" || fail "the listener records nothing (control request not seen): the check above proves nothing"
finish
