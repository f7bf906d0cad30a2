#!/usr/bin/env bash
# The automatic remux fast path (transcode/src/remux.c), through `vidq
# transcode` and through the service's job JSON:
#   - H.264 High 720p MP4 through mp4-720p: video AND audio copied, video
#     packets bit-exact (Annex B md5 of input and output), said so by the
#     CLI's last line; no decode at all (frames counted from packets).
#   - the same H.264 in MPEG-TS (Annex B, ADTS audio) -> MP4: copied, same
#     pictures (decoded-frame hashes), avcC written, faststart.
#   - H.264 + PCM in MOV and in Matroska: video copied, audio encoded to AAC.
#   - 1080p input through mp4-720p, 10-bit H.264 and 10-bit HEVC through an
#     H.264 preset, interlaced, anamorphic, a spec asking for an fps, a
#     bitrate cap below the source's, "auto_copy": false: encoded.
#   - rotated H.264 (display matrix): copied into MP4 with the rotation
#     kept, encoded for Matroska (no matrix there).
#   - one input feeding a copying and an encoding output in one pass.
#   - a bad auto_copy value: invalid_output, nothing written.
#   - the service: the job JSON's outputs[].video/audio.copied.
# ctest-labels: cli
# ctest-timeout: 300
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
# annexb_md5 FILE: md5 of the video packets in Annex B form (bit-exactness
# of an H.264 copy between MP4-family containers).
annexb_md5() { ffmpeg -nostdin -v error -i "$1" -map 0:v:0 -c copy -bsf:v h264_mp4toannexb -f md5 - </dev/null; }
vprobe() { ffprobe -v error -select_streams v:0 -show_entries "stream=$2" -of csv=p=0 "$1"; }
aprobe() { ffprobe -v error -select_streams a:0 -show_entries "stream=$2" -of csv=p=0 "$1"; }
# said KIND: what the last run's summary line says of KIND's "copied".
said() { claimed_copied "$T/out.txt" "$1"; }

# Inputs: a 4 s H.264 High 720p25 clip at ~2 Mb/s with AAC 96k, and the
# same streams in other containers.
in720=$T/in720.mp4
ff -f lavfi -i testsrc2=size=1280x720:rate=25:duration=4 -f lavfi -i sine=duration=4:sample_rate=48000 \
  -c:v libx264 -preset veryfast -b:v 2M -pix_fmt yuv420p -c:a aac -b:a 96k -shortest "$in720"
ff -i "$in720" -c copy "$T/in720.ts"
ff -i "$in720" -c:v copy -c:a pcm_s16le "$T/in720pcm.mov"
ff -i "$in720" -c:v copy -c:a pcm_s16le "$T/in720pcm.mkv"
[ "$(vprobe "$in720" profile)" = High ] || fail "test input is not H.264 High"

note "H.264 720p MP4 -> mp4-720p: both streams copied, bit-exact"
run_vidq transcode "$in720" "$T/c.mp4" --preset mp4-720p --progress json
if [ "$RC" -ne 0 ]; then fail "mp4 copy: exit $RC: $(cat "$T/err.txt")"; else
  [ "$(said video)" = true ] || fail "mp4 copy: CLI says video copied='$(said video)'"
  [ "$(said audio)" = true ] || fail "mp4 copy: CLI says audio copied='$(said audio)'"
  [ "$(annexb_md5 "$T/c.mp4")" = "$(annexb_md5 "$in720")" ] || fail "mp4 copy: video packets differ"
  [ "$(frames_digest "$T/c.mp4" a)" = "$(frames_digest "$in720" a)" ] || fail "mp4 copy: audio differs"
  is_faststart "$T/c.mp4" || fail "mp4 copy: not faststart"
  # Every packet counted as a frame although nothing was decoded.
  frames=$(tail -n 2 "$T/out.txt" | head -n 1 | jq -r .frames)
  [ "$frames" = 100 ] || fail "mp4 copy: progress frames $frames, want 100"
  CLAIM_V=true CLAIM_A=true check_transcode "mp4 copy" "$in720" "$T/c.mp4" mp4-720p
fi

note "H.264 in MPEG-TS (Annex B, ADTS) -> mp4-720p: copied into MP4"
run_vidq transcode "$T/in720.ts" "$T/ts.mp4" --preset mp4-720p --progress json
if [ "$RC" -ne 0 ]; then fail "ts copy: exit $RC: $(cat "$T/err.txt")"; else
  [ "$(said video)" = true ] || fail "ts copy: CLI says video copied='$(said video)'"
  [ "$(frames_digest "$T/ts.mp4" v)" = "$(frames_digest "$in720" v)" ] || fail "ts copy: pictures differ"
  [ "$(vprobe "$T/ts.mp4" codec_tag_string)" = avc1 ] || fail "ts copy: tag $(vprobe "$T/ts.mp4" codec_tag_string)"
  n=$(ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=nb_read_packets -of csv=p=0 "$T/ts.mp4")
  [ "$n" = 100 ] || fail "ts copy: $n video packets, want 100"
  ff -i "$T/ts.mp4" -f null - 2>"$T/dec.err" || true
  [ -s "$T/dec.err" ] && fail "ts copy: decode errors: $(head -c 200 "$T/dec.err")"
  CLAIM_V=true CLAIM_A=true check_transcode "ts copy" "$T/in720.ts" "$T/ts.mp4" mp4-720p
fi

for c in mov mkv; do
  note "H.264 + PCM in $c -> mp4-720p: video copied, audio encoded to AAC"
  run_vidq transcode "$T/in720pcm.$c" "$T/pcm_$c.mp4" --preset mp4-720p --progress json
  if [ "$RC" -ne 0 ]; then fail "pcm $c: exit $RC: $(cat "$T/err.txt")"; continue; fi
  [ "$(said video)" = true ] || fail "pcm $c: CLI says video copied='$(said video)'"
  [ "$(said audio)" = false ] || fail "pcm $c: CLI says audio copied='$(said audio)'"
  [ "$(annexb_md5 "$T/pcm_$c.mp4")" = "$(annexb_md5 "$in720")" ] || fail "pcm $c: video packets differ"
  [ "$(aprobe "$T/pcm_$c.mp4" codec_name)" = aac ] || fail "pcm $c: audio $(aprobe "$T/pcm_$c.mp4" codec_name)"
  CLAIM_V=true CLAIM_A=false check_transcode "pcm $c" "$T/in720pcm.$c" "$T/pcm_$c.mp4" mp4-720p
done

# encoded IN PRESET|--output SPEC CTX: the video must be re-encoded.
encoded() {
  local in=$1 ctx=$3 flag=--preset
  [ "${2:0:1}" = "{" ] && flag=--output
  run_vidq transcode "$in" "$T/e.mp4" "$flag" "$2" --progress json
  if [ "$RC" -ne 0 ]; then fail "$ctx: exit $RC: $(cat "$T/err.txt")"; return 0; fi
  [ "$(said video)" = false ] || fail "$ctx: CLI says video copied='$(said video)'"
  [ "$(frames_digest "$T/e.mp4" v)" != "$(frames_digest "$in" v)" ] || fail "$ctx: the video is a copy"
  [ "$(vprobe "$T/e.mp4" codec_name,profile,pix_fmt)" = "h264,High,yuv420p" ] ||
    fail "$ctx: video $(vprobe "$T/e.mp4" codec_name,profile,pix_fmt)"
  rm -f "$T/e.mp4"
}
in1080=$T/in1080.mp4
ff -f lavfi -i testsrc2=size=1920x1080:rate=25:duration=2 -c:v libx264 -preset ultrafast -b:v 3M "$in1080"
note "encoded: 1080p -> mp4-720p, 10-bit H.264, 10-bit HEVC, interlaced, anamorphic"
encoded "$in1080" mp4-720p "1080p -> mp4-720p"
run_vidq transcode "$in1080" "$T/e1080.mp4" --preset mp4-720p --progress none
[ "$(vprobe "$T/e1080.mp4" width,height)" = "1280,720" ] || fail "1080p -> mp4-720p: $(vprobe "$T/e1080.mp4" width,height)"
encoded "$VIDQ_MEDIA/h264_10bit.mp4" mp4-720p "10-bit H.264 -> mp4-720p"
encoded "$VIDQ_MEDIA/hevc_10bit.mp4" mp4-1080p "10-bit HEVC -> mp4-1080p"
encoded "$VIDQ_MEDIA/interlaced.mp4" mp4-720p "interlaced -> mp4-720p"
encoded "$VIDQ_MEDIA/anamorphic_480x360_sar4-3.mp4" mp4-720p "anamorphic -> mp4-720p"
spec() { echo "{\"name\":\"s\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"max_height\":720${1:-}},\"audio\":{\"codec\":\"aac\"}${2:-}}"; }
encoded "$in720" "$(spec ',"fps":30')" "spec with fps"
encoded "$in720" "$(spec ',"bitrate":1000000')" "bitrate cap below the source's"
encoded "$in720" "$(spec '' ',"auto_copy":false')" "auto_copy false"
note "copied: explicit bitrate cap above the source's"
run_vidq transcode "$in720" "$T/cap.mp4" --output "$(spec ',"bitrate":3000000')" --progress json
[ "$RC" -eq 0 ] && [ "$(said video)" = true ] || fail "bitrate cap above the source: video copied='$(said video)' rc $RC"

note "rotated H.264: copied into MP4 (matrix kept), encoded for Matroska"
rot=$VIDQ_MEDIA/rotated90.mp4
run_vidq transcode "$rot" "$T/rot.mp4" --preset mp4-720p --progress json
if [ "$RC" -ne 0 ]; then fail "rotated mp4: exit $RC: $(cat "$T/err.txt")"; else
  [ "$(said video)" = true ] || fail "rotated mp4: CLI says video copied='$(said video)'"
  CLAIM_V=true check_transcode "rotated mp4" "$rot" "$T/rot.mp4" mp4-720p
fi
run_vidq transcode "$rot" "$T/rot.mkv" --output '{"name":"m","container":"mkv","video":{"codec":"h264","max_height":720},"audio":{"codec":"aac"}}' --progress json
if [ "$RC" -ne 0 ]; then fail "rotated mkv: exit $RC: $(cat "$T/err.txt")"; else
  [ "$(said video)" = false ] || fail "rotated mkv: CLI says video copied='$(said video)'"
  [ "$(vprobe "$T/rot.mkv" width,height)" = "720,1280" ] || fail "rotated mkv: $(vprobe "$T/rot.mkv" width,height), want 720,1280 upright"
fi

note "one pass, two outputs: mp4-720p copies, mp4-480p encodes"
run_vidq transcode "$in720" "$T/two" --preset mp4-720p,mp4-480p --progress json
if [ "$RC" -ne 0 ]; then fail "two outputs: exit $RC: $(cat "$T/err.txt")"; else
  got=$(tail -n 1 "$T/out.txt" | jq -r '[.outputs[] | "\(.name):\(.video.copied):\(.audio.copied)"] | join(" ")')
  [ "$got" = "mp4-720p:true:true mp4-480p:false:true" ] || fail "two outputs: $got"
  [ "$(annexb_md5 "$T/two/mp4-720p.mp4")" = "$(annexb_md5 "$in720")" ] || fail "two outputs: 720p not bit-exact"
  [ "$(vprobe "$T/two/mp4-480p.mp4" width,height)" = "854,480" ] || fail "two outputs: 480p is $(vprobe "$T/two/mp4-480p.mp4" width,height)"
fi

note "bad auto_copy: invalid_output, nothing written"
run_vidq transcode "$in720" "$T/bad.mp4" --output "$(spec '' ',"auto_copy":"no"')"
expect_error "auto_copy \"no\"" 2 invalid_output
grep -q auto_copy "$T/err.txt" || fail "the error does not name auto_copy: $(cat "$T/err.txt")"
expect_no_output "bad auto_copy" "$T/bad.mp4"

# ---- service: the job JSON says which streams were copied.
note "service: job JSON outputs[].video.copied / audio.copied"
W=$T/svc; D=$W/data; mkdir -p "$W"
start_server "$W" "$D" --max-concurrent 2 || finish
# job FILE ARGS...: upload, wait for the end, the job JSON in $W/job.json.
job() {
  local f=$1
  shift
  run_job "$W" "$f" 60 "$@" || return 1
  curl -s -o "$W/dl.mp4" "$BASE/v1/jobs/$ID/outputs/$(jq -r '.outputs[0].name' "$W/job.json")"
}
if job "$T/in720pcm.mov" -F preset=mp4-720p -F preset=mp4-480p; then
  got=$(jq -r '[.outputs[] | "\(.name):\(.video.codec):\(.video.copied):\(.audio.codec):\(.audio.copied)"] | join(" ")' "$W/job.json")
  [ "$got" = "mp4-720p:h264:true:aac:false mp4-480p:h264:false:aac:false" ] || fail "service pcm job: $got"
  [ "$(annexb_md5 "$W/dl.mp4")" = "$(annexb_md5 "$in720")" ] || fail "service: downloaded 720p video not bit-exact"
fi
if job "$in720" -F 'outputs=[{"name":"re","preset":"mp4-720p","auto_copy":false}]'; then
  got=$(jq -r '[.outputs[] | "\(.name):\(.video.copied):\(.audio.copied)"] | join(" ")' "$W/job.json")
  [ "$got" = "re:false:false" ] || fail "service auto_copy false job: $got"
fi
code=$(curl -s -o "$W/bad.json" -w '%{http_code}' -F "file=@$in720" \
  -F 'outputs=[{"name":"x","preset":"mp4-720p","auto_copy":1}]' "$BASE/v1/jobs")
[ "$code" = 400 ] || fail "service: auto_copy 1 gave HTTP $code"
jq -e '.error.code == "invalid_output" and (.error.message | test("auto_copy"))' "$W/bad.json" >/dev/null ||
  fail "service: bad auto_copy error: $(head -c 300 "$W/bad.json")"
stop_server
finish
