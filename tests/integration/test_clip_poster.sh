#!/usr/bin/env bash
# Clipping ("clip", `--clip S-E`) and posters at a time ("at_s"), issue 13
# points 6 and 7. A fixture made here: testsrc2 (every frame different) at
# 25 fps for 6 s with a white flash at 3.0 s and a 1 kHz beep at 3.0 s in
# silence, keyframes every second. Checked with ffprobe/ffmpeg:
#   - an encoded clip 1.3-4.7 starts at 0, its first picture is the source's
#     at 1.3 s (+-1 frame, by PSNR against the source frames), it lasts 3.4 s
#     (within a frame plus an audio frame), the flash and the beep stay
#     together (within one AAC frame) at 1.7 s, progress runs over 3.4 s;
#   - HLS ladders are clipped; an output that would be copied is copied only
#     when both cut points are keyframes (1-3), else encoded (1.3-3);
#   - at_s gives the picture at that time (+-1 frame); without it the
#     automatic pick stays;
#   - bad clips and at_s are refused with a clear code and nothing left;
#   - the service takes the clip as an upload field (JSON text), a query
#     parameter and tus metadata; input.duration_s stays the source's; a
#     clip outside the input is 400 bad_request, and the server goes on.
# ctest-labels: cli
# ctest-timeout: 600
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built

ff() { ffmpeg -nostdin -v error -y "$@"; }
SRC=$T/sync.mp4
ff -f lavfi -i "testsrc2=size=320x240:rate=25:duration=6" -f lavfi -i "color=c=white:size=320x240:rate=25:duration=6" \
   -f lavfi -i "aevalsrc=if(between(t\\,3\\,3.1)\\,0.5*sin(2*PI*1000*t)\\,0):s=48000:d=6" \
   -filter_complex "[0:v][1:v]overlay=enable='between(t,2.999,3.039)'[v]" -map "[v]" -map 2:a \
   -c:v libx264 -preset ultrafast -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p \
   -c:a aac -b:a 128k "$SRC"

# best_frame FILE_PICTURE N0 N1 W H: the source frame (by number) most like
# the first picture of FILE_PICTURE, by PSNR, among N0..N1.
best_frame() {
  local pic=$1 best=-1 bestp=-1 n p
  for n in $(seq "$2" "$3"); do
    p=$(ffmpeg -nostdin -hide_banner -i "$pic" -i "$SRC" -lavfi \
      "[1:v]select=eq(n\\,$n),scale=$4:$5:flags=bicubic,format=yuv420p[r];[0:v]format=yuv420p,trim=end_frame=1[a];[a][r]psnr" \
      -f null - 2>&1 | sed -n 's/.*average:\([0-9.inf]*\).*/\1/p' | tail -n 1 | sed 's/^inf$/100/')
    if [ -n "$p" ] && fcmp "$p" ">" "$bestp"; then best=$n bestp=$p; fi
  done
  echo "$best"
}

# flash FILE: time of the first picture brighter than 200 (mean luma).
flash() {
  ffprobe -v error -f lavfi -i "movie=$1,signalstats" -show_entries frame=pts_time:frame_tags=lavfi.signalstats.YAVG \
    -of csv=p=0 | awk -F, '$2 > 200 { print $1; exit }'
}
# beep FILE: time the first sound starts (end of the leading silence).
beep() {
  ffmpeg -nostdin -hide_banner -i "$1" -map 0:a:0 -af silencedetect=noise=-30dB:d=0.2 -f null - 2>&1 |
    sed -n 's/.*silence_end: \([0-9.]*\).*/\1/p' | head -n 1
}

note "encoded clip 1.3-4.7 (mp4-480p)"
run_vidq transcode "$SRC" "$T/c.mp4" --preset mp4-480p --clip 1.3-4.7 --progress json
if [ "$RC" -ne 0 ]; then fail "clip 1.3-4.7: exit $RC: $(cat "$T/err.txt")"
else
  f=$(facts "$T/c.mp4")
  near "$(jqv "$f" .start)" 0 0.001 || fail "clip: starts at $(jqv "$f" .start), want 0"
  near "$(jqv "$f" .vdur)" 3.4 0.062 || fail "clip: video lasts $(jqv "$f" .vdur) s, want 3.4 (+- a frame and an audio frame)"
  near "$(jqv "$f" .adur)" 3.4 0.062 || fail "clip: audio lasts $(jqv "$f" .adur) s, want 3.4"
  n=$(best_frame "$T/c.mp4" 30 35 320 240)
  [ "$n" -ge 31 ] && [ "$n" -le 33 ] || fail "clip: the first picture is source frame $n, want 32 +- 1 (1.3 s at 25 fps)"
  fl=$(flash "$T/c.mp4") bp=$(beep "$T/c.mp4")
  near "${fl:-0}" 1.7 0.021 || fail "clip: the flash is at ${fl:-none} s, want 1.7"
  near "${bp:-0}" 1.7 0.03 || fail "clip: the beep starts at ${bp:-none} s, want 1.7"
  near "${fl:-0}" "${bp:-9}" 0.0214 || fail "clip: flash at $fl s and beep at $bp s: out of sync by more than an AAC frame"
  note "  first picture: source frame $n; flash $fl s, beep $bp s"
  # progress over the clip: out_time never past 3.4 (+ a little), 100% at the end
  mx=$(grep '"percent"' "$T/out.txt" | jq -s 'map(.out_time_s) | max')
  fcmp "${mx:-99}" "<=" 3.6 || fail "clip: progress out_time_s reached $mx, want at most 3.4 (the clip)"
  last=$(grep '"percent"' "$T/out.txt" | tail -n 1 | jq .percent)
  [ "$last" = 100 ] || fail "clip: last progress $last, want 100"
  mid=$(grep '"percent"' "$T/out.txt" | jq -s 'map(select(.out_time_s > 1.6 and .out_time_s < 1.8) | .percent) | first // empty')
  [ -z "$mid" ] || near "$mid" 50 8 || fail "clip: percent $mid at half the clip, want about 50"
fi

note "an hls ladder is clipped"
run_vidq transcode "$SRC" "$T/h" --output '{"preset":"hls","segment_seconds":2}' --clip 1-5 --progress none
if [ "$RC" -ne 0 ]; then fail "hls clip 1-5: exit $RC: $(cat "$T/err.txt")"
else
  for pl in "$T"/h/*/index.m3u8; do
    d=$(awk -F'[:,]' '/^#EXTINF/ { s += $2 } END { print s + 0 }' "$pl")
    near "$d" 4 0.1 || fail "hls clip 1-5: ${pl#"$T"/} lists $d s, want 4"
  done
fi

note "copied only when both cuts fall on keyframes"
run_vidq transcode "$SRC" "$T/k.mp4" --preset mp4-480p --clip 1-3 --progress json
if [ "$RC" -ne 0 ]; then fail "clip 1-3: exit $RC: $(cat "$T/err.txt")"
else
  [ "$(claimed_copied "$T/out.txt" video)" = true ] || fail "clip 1-3 (keyframes at 1 and 3): video not copied: $(tail -n 1 "$T/out.txt")"
  f=$(facts "$T/k.mp4")
  near "$(jqv "$f" .vdur)" 2 0.05 || fail "clip 1-3 copied: video lasts $(jqv "$f" .vdur) s, want 2"
  n=$(best_frame "$T/k.mp4" 24 26 320 240)
  [ "$n" = 25 ] || fail "clip 1-3 copied: first picture is source frame $n, want 25"
fi
run_vidq transcode "$SRC" "$T/k2.mp4" --preset mp4-480p --clip 1.3-3 --progress json
if [ "$RC" -ne 0 ]; then fail "clip 1.3-3: exit $RC: $(cat "$T/err.txt")"
else
  [ "$(claimed_copied "$T/out.txt" video)" = false ] || fail "clip 1.3-3 (not on a keyframe): video copied"
fi
run_vidq transcode "$SRC" "$T/r.mp4" --preset remux-mp4 --clip 1.3-3 --progress none
expect_error "remux-mp4 clip 1.3-3" 1 invalid_output
expect_no_output "remux-mp4 clip 1.3-3" "$T/r.mp4"

note "bad clips"
run_vidq transcode "$SRC" "$T/b.mp4" --preset mp4-480p --clip 7-9 --progress none
expect_error "clip 7-9 of 6 s" 1 bad_request
expect_no_output "clip 7-9" "$T/b.mp4"
for bad in 3-2 abc 1.5 -- "-"; do
  run_vidq transcode "$SRC" "$T/b.mp4" --preset mp4-480p --clip "$bad" --progress none
  expect_error "clip '$bad'" 2 bad_request
  expect_no_output "clip '$bad'" "$T/b.mp4"
done

note "posters at a time"
run_vidq transcode "$SRC" "$T/p.jpg" --output '{"preset":"thumbnail","at_s":2.0}' --progress none
if [ "$RC" -ne 0 ]; then fail "at_s 2.0: exit $RC: $(cat "$T/err.txt")"
else
  n=$(best_frame "$T/p.jpg" 48 52 320 240)
  [ "$n" -ge 49 ] && [ "$n" -le 51 ] || fail "at_s 2.0: the poster is source frame $n, want 50 +- 1"
fi
run_vidq transcode "$SRC" "$T/p2.jpg" --output '{"preset":"thumbnail","at_s":1.0}' --clip 2-6 --progress none
if [ "$RC" -ne 0 ]; then fail "at_s 1.0 of clip 2-6: exit $RC: $(cat "$T/err.txt")"
else
  n=$(best_frame "$T/p2.jpg" 73 77 320 240)
  [ "$n" -ge 74 ] && [ "$n" -le 76 ] || fail "at_s 1.0 of clip 2-6: the poster is source frame $n, want 75 +- 1"
fi
run_vidq transcode "$SRC" "$T/p3.jpg" --preset thumbnail --progress none
[ "$RC" -eq 0 ] && [ -s "$T/p3.jpg" ] || fail "thumbnail without at_s: exit $RC: $(cat "$T/err.txt")"
run_vidq transcode "$SRC" "$T/b.jpg" --output '{"preset":"thumbnail","at_s":9}' --progress none
expect_error "at_s 9 of 6 s" 1 invalid_output
expect_no_output "at_s 9" "$T/b.jpg"
run_vidq transcode "$SRC" "$T/b.mp4" --output '{"preset":"mp4-480p","at_s":1}' --progress none
expect_error "at_s on mp4" 2 invalid_output
run_vidq transcode "$SRC" "$T/b.jpg" --output '{"preset":"thumbnail","at_s":-1}' --progress none
expect_error "at_s -1" 2 invalid_output

# ---- service
note "service: clip as an upload field, a query parameter, tus metadata"
W=$T/svc; D=$W/data; mkdir -p "$W"
PID=
stop_server() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=; }
trap 'stop_server; lib_cleanup' EXIT
"$VIDQ_BIN" serve --listen 127.0.0.1:0 --data-dir "$D" --port-file "$W/port" --max-concurrent 1 \
  >"$W/server.out" 2>"$W/server.log" &
PID=$!
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.1; done
if [ ! -s "$W/port" ]; then fail "server did not start: $(tail -c 300 "$W/server.log")"; finish; fi
BASE=http://127.0.0.1:$(cat "$W/port")

job_clip() { # CTX ID WANT_DURATION
  local st d
  st=$(wait_job "$BASE" "$2" "$W/job.json" 90)
  [ "$st" = succeeded ] || { fail "$1: status '$st': $(head -c 400 "$W/job.json")"; return 0; }
  near "$(jq -r .input.duration_s "$W/job.json")" 6 0.05 || fail "$1: input.duration_s $(jq -r .input.duration_s "$W/job.json"), want the source's 6"
  d=$(jq -r '.outputs[0].duration_s' "$W/job.json")
  near "$d" "$3" 0.07 || fail "$1: output duration_s $d, want $3"
  curl -s -o "$W/o.mp4" "$BASE$(jq -r '.outputs[0].url' "$W/job.json")"
  near "$(jqv "$(facts "$W/o.mp4")" .vdur)" "$3" 0.07 || fail "$1: the file's video lasts $(jqv "$(facts "$W/o.mp4")" .vdur), want $3"
}

code=$(curl -s -o "$W/up.json" -w '%{http_code}' -F "file=@$SRC" -F preset=mp4-480p \
  -F 'clip={"start_s":1.3,"end_s":4.7}' "$BASE/v1/jobs")
[ "$code" = 202 ] || fail "upload with a clip field: HTTP $code $(head -c 300 "$W/up.json")"
job_clip "clip field" "$(jq -r '.id // empty' "$W/up.json")" 3.4
code=$(curl -s -o "$W/up.json" -w '%{http_code}' -H 'Content-Type: video/mp4' --data-binary "@$SRC" \
  "$BASE/upload?preset=mp4-480p&clip=%7B%22start_s%22%3A2%7D")
[ "$code" = 202 ] || fail "raw upload with ?clip=: HTTP $code $(head -c 300 "$W/up.json")"
job_clip "clip query" "$(jq -r '.id // empty' "$W/up.json")" 4
code=$(curl -s -o "$W/up.json" -w '%{http_code}' -H 'Content-Type: video/mp4' --data-binary "@$SRC" \
  "$BASE/upload?preset=mp4-480p&clip=0.5-2.5")
[ "$code" = 202 ] || fail "raw upload with ?clip=0.5-2.5: HTTP $code $(head -c 300 "$W/up.json")"
job_clip "clip query S-E" "$(jq -r '.id // empty' "$W/up.json")" 2
# tus: Upload-Metadata clip
size=$(stat -c %s "$SRC")
b64() { printf '%s' "$1" | base64 -w0; }
loc=$(curl -si -X POST "$BASE/v1/uploads/" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" \
  -H "Upload-Metadata: filename $(b64 sync.mp4),preset $(b64 mp4-480p),clip $(b64 '{"start_s":1,"end_s":3.5}')" |
  tr -d '\r' | sed -n 's/^Location: //Ip')
if [ -z "$loc" ]; then fail "tus creation with a clip: no Location"
else
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH "$BASE${loc#"$BASE"}" -H 'Tus-Resumable: 1.0.0' \
    -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' --data-binary "@$SRC")
  [ "$code" = 204 ] || fail "tus PATCH: HTTP $code"
  job_clip "tus clip" "${loc##*/}" 2.5
fi

note "service: an HDR job with loudness, a poster time and a clip (in the job's sandbox)"
M=$VIDQ_TEST_TMP/media13
bash "$VIDQ_SRC/fixtures/gen.sh" "$M" media >/dev/null
OUTS='[{"preset":"hevc-1080p","video":{"codec":"hevc","max_height":1080,"crf":28,"speed":"ultrafast"},"audio":{"codec":"aac","loudness_lufs":-16}},{"preset":"mp4-480p"},{"preset":"thumbnail","at_s":0.5}]'
code=$(curl -s -o "$W/up.json" -w '%{http_code}' -F "file=@$M/hdr10.mp4" -F "outputs=$OUTS" -F 'clip=0.2-0.9' "$BASE/v1/jobs")
[ "$code" = 202 ] || fail "hdr upload: HTTP $code $(head -c 300 "$W/up.json")"
ID=$(jq -r '.id // empty' "$W/up.json")
st=$(wait_job "$BASE" "$ID" "$W/job.json" 120)
if [ "$st" != succeeded ]; then fail "hdr job: status '$st': $(head -c 400 "$W/job.json")"
else
  for o in hevc-1080p mp4-480p; do
    curl -s -o "$W/$o.mp4" "$BASE/v1/jobs/$ID/outputs/$o"
    d=$(jqv "$(facts "$W/$o.mp4")" .vdur)
    near "$d" 0.7 0.062 || fail "hdr job $o: lasts $d s, want 0.7 (clip 0.2-0.9)"
  done
  c=$(ffprobe -v error -select_streams v:0 -show_entries stream=pix_fmt,color_transfer -of csv=p=0 "$W/hevc-1080p.mp4")
  c=${c%%,}; [ "$c" = "yuv420p10le,smpte2084" ] || fail "hdr job hevc-1080p: '$c', want yuv420p10le,smpte2084 (HDR kept)"
  c=$(ffprobe -v error -select_streams v:0 -show_entries stream=pix_fmt,color_transfer -of csv=p=0 "$W/mp4-480p.mp4")
  c=${c%%,}; [ "$c" = "yuv420p,bt709" ] || fail "hdr job mp4-480p: '$c', want yuv420p,bt709 (tone mapped)"
  curl -s -o "$W/poster.jpg" "$BASE/v1/jobs/$ID/outputs/thumbnail"
  [ "$(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$W/poster.jpg")" = mjpeg ] || fail "hdr job: no JPEG poster"
fi

note "service: bad clips are 400 with nothing kept"
before=$(find "$D" -type f | wc -l)
for c in '{"start_s":10}' '{"start_s":3,"end_s":2}' '{"start":1}' 'x'; do
  code=$(curl -s -o "$W/bad.json" -w '%{http_code}' -F "file=@$SRC" -F preset=mp4-480p -F "clip=$c" "$BASE/v1/jobs")
  [ "$code" = 400 ] || fail "clip $c: HTTP $code, want 400: $(head -c 300 "$W/bad.json")"
  [ "$(jq -r .error.code "$W/bad.json" 2>/dev/null)" = bad_request ] || fail "clip $c: error $(head -c 300 "$W/bad.json"), want bad_request"
  jq -r .error.message "$W/bad.json" | grep -q clip || fail "clip $c: the message does not name clip: $(head -c 300 "$W/bad.json")"
done
code=$(curl -s -o "$W/bad.json" -w '%{http_code}' -X POST "$BASE/v1/uploads/" -H 'Tus-Resumable: 1.0.0' \
  -H "Upload-Length: $size" -H "Upload-Metadata: clip $(b64 '{"end_s":-1}')")
[ "$code" = 400 ] || fail "tus creation with a bad clip: HTTP $code, want 400"
sleep 0.5
after=$(find "$D" -type f -not -name 'vidq.db*' -not -name webhook_secret | wc -l)
after_all=$(find "$D" -type f | wc -l)
[ "$after_all" -le "$before" ] || fail "bad clips left files: $before -> $after_all ($(find "$D" -type f -newer "$W/port" | head -5))"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")
[ "$code" = 200 ] || fail "the server stopped serving after bad clips: $code"
: "$after"
stop_server
finish
