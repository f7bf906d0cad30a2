#!/usr/bin/env bash
# Pixel floods and decompression bombs (fixtures/bad/flood_*, bomb_*): a few
# bytes declaring a 30000x30000 frame, a 140 KB PNG inflating to 144 MB, the
# same hidden behind a container that says 64x64, MJPEG frames whose SOF
# says 12000x12000. Each is refused at probe with unsupported_media:
#   - `vidq probe` (the library call the service's probe child makes), under
#     /usr/bin/time: exit 1, peak RSS under 64 MiB, CPU under 1 s, wall
#     printed (it is mostly the process start: dynamic linking of libav);
#   - uploaded to the server: 415 unsupported_media, answered within 2 s
#     (upload + probe child), nothing kept in the data dir, and the server
#     goes on taking a good upload.
# Labelled release: its budgets hold only without sanitizers, so deploy/test.sh
# runs it in the release build as well as under ASan.
# ctest-labels: release
# ctest-timeout: 180
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
ensure_media
command -v /usr/bin/time >/dev/null || { fail "/usr/bin/time missing (Debian package time)"; finish; }
bad="$VIDQ_SRC/fixtures/bad"
# Under ASan (deploy/test.sh's second pass) the shadow memory and the
# allocator's quarantine are in the RSS and everything is slower: refusal is
# still checked, the budgets only in the plain build.
sanitized=0
case "$(ldd "$VIDQ_BIN" 2>/dev/null || true)" in *libasan*) sanitized=1 ;; esac
floods=(flood_gif_30000x30000.gif flood_gif_16000x16000.gif bomb_png_12000.mov
        bomb_png_hidden.mov flood_mjpeg_hidden.avi)

for name in "${floods[@]}"; do
  f="$bad/$name"
  [ -s "$f" ] || { fail "missing fixture $name"; continue; }
  RC=0
  /usr/bin/time -f '%e %U %S %M' -o "$T/time.txt" "$VIDQ_BIN" probe "$f" \
    >"$T/out.txt" 2>"$T/err.txt" || RC=$?
  expect_error "probe $name" 1 unsupported_media
  read -r wall user sys rss_kb < <(tail -n 1 "$T/time.txt")
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  note "probe $name: $(head -c 160 "$T/err.txt" | tr -d '\n'); wall ${wall}s cpu ${cpu}s peak RSS ${rss_kb} KiB"
  [ "$sanitized" = 1 ] && continue
  [ "$rss_kb" -lt 65536 ] || fail "probe $name: peak RSS $rss_kb KiB, want < 64 MiB"
  fcmp "$cpu" "<" 1.0 || fail "probe $name: ${cpu}s of CPU, want < 1 s"
done

# Through the service.
D="$T/data"
"$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$D" --port-file "$T/port" \
  >"$T/server.out" 2>"$T/server.log" &
CLEANUP_PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || { fail "server did not start: $(tail -5 "$T/server.log")"; finish; }
base="http://127.0.0.1:$(cat "$T/port")"
for name in "${floods[@]}"; do
  out=$(curl -s -o "$T/resp.json" -w '%{http_code} %{time_total}' -X POST \
        -H 'Content-Type: application/octet-stream' --data-binary "@$bad/$name" \
        "$base/upload?preset=mp4-480p&filename=$name")
  read -r st secs <<<"$out"
  code=$(jq -r '.error.code // empty' "$T/resp.json" 2>/dev/null || true)
  note "upload $name: $st $code in ${secs}s: $(jq -r '.error.message // empty' "$T/resp.json" 2>/dev/null)"
  [ "$st" = 415 ] && [ "$code" = unsupported_media ] ||
    fail "upload $name: $st $(head -c 300 "$T/resp.json"), want 415 unsupported_media"
  [ "$sanitized" = 1 ] || fcmp "$secs" "<" 2.0 || fail "upload $name: answered in ${secs}s, want < 2 s"
done
left=$(find "$D/inputs" "$D/tmp" -type f 2>/dev/null | head -5)
[ -z "$left" ] || fail "refused uploads left files: $left"
st=$(curl -s -o "$T/ok.json" -w '%{http_code}' -X POST -H 'Content-Type: video/mp4' \
     --data-binary "@$VIDQ_MEDIA/h264_aac_640x360.mp4" "$base/upload?preset=thumbnail&filename=ok.mp4")
[ "$st" = 202 ] || fail "a good upload after the floods: $st $(head -c 300 "$T/ok.json")"
finish
