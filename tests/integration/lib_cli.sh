# lib_cli.sh - shared helpers of the CLI integration tests (test_cli_*.sh).
# Sourced, not run (its name does not match test_*, so ctest skips it).
#
# Every check goes through ffprobe (an independent tool), never through
# `vidq probe`. A failed check prints "FAIL: <what>" and the test goes on, so
# one run lists every failure; `finish` exits 1 if there was any.
#
# Needs: VIDQ_BIN VIDQ_SRC VIDQ_MEDIA VIDQ_TEST_TMP (see tests/CMakeLists.txt),
# ffprobe, jq, timeout.
set -euo pipefail
: "${VIDQ_BIN:?}" "${VIDQ_SRC:?}" "${VIDQ_MEDIA:?}" "${VIDQ_TEST_TMP:?}"

TEST_NAME=$(basename "$0" .sh)
mkdir -p "$VIDQ_TEST_TMP"
T=$(mktemp -d "$VIDQ_TEST_TMP/$TEST_NAME.XXXXXX")
FAILS=0
CLEANUP_PIDS=()

lib_cleanup() {
  local p
  stop_server
  for p in "${CLEANUP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # Keep the scratch folder of a failed test for a look; drop a passed one.
  if [ "$FAILS" -eq 0 ]; then rm -rf "$T"; else echo "scratch kept: $T" >&2; fi
}
trap lib_cleanup EXIT

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# The service: start_server, stop_server (also at exit), run_job, wait_job.
source "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"
note() { echo "-- $*"; }

finish() {
  if [ "$FAILS" -gt 0 ]; then
    echo "$TEST_NAME: $FAILS failure(s)" >&2
    exit 1
  fi
  echo "$TEST_NAME: ok"
  exit 0
}

# Make the generated fixtures if the media setup test has not (a test run on
# its own with ctest -R).
ensure_media() {
  bash "$VIDQ_SRC/fixtures/gen.sh" "$VIDQ_MEDIA" >/dev/null
}

# All generated fixtures, one name a line (hidden temporaries excluded).
media_list() {
  (cd "$VIDQ_MEDIA" && ls -1 | grep -v '^\.' | grep -v '\.tmp\.' | sort)
}

# run_vidq ARGS...: run the binary (time-boxed) with stdout and stderr kept
# in $T/out.txt and $T/err.txt; its exit code goes to RC. Never fails itself.
RC=0
run_vidq() {
  RC=0
  timeout -k 5 "${VIDQ_TIMEOUT:-90}" "$VIDQ_BIN" "$@" >"$T/out.txt" 2>"$T/err.txt" || RC=$?
}

# expect_error CONTEXT RC_WANTED CODE_REGEX: the last run_vidq exited with
# RC_WANTED and wrote exactly one stderr line "vidq: <code>: <message>" whose
# code matches CODE_REGEX (an ERE such as "unsupported_media" or "a|b").
expect_error() {
  local ctx=$1 want=$2 codes=$3 lines line
  if [ "$RC" -ne "$want" ]; then
    fail "$ctx: exit $RC, want $want (stderr: $(head -c 300 "$T/err.txt"))"
    return 0
  fi
  lines=$(wc -l < "$T/err.txt")
  line=$(head -n 1 "$T/err.txt")
  if [ "$lines" -ne 1 ]; then
    fail "$ctx: $lines stderr lines, want exactly 1: $(head -c 400 "$T/err.txt")"
  fi
  if ! [[ "$line" =~ ^vidq:\ ([a-z_]+):\ (.+)$ ]]; then
    fail "$ctx: stderr line is not 'vidq: <code>: <message>': $line"
    return 0
  fi
  local code=${BASH_REMATCH[1]} msg=${BASH_REMATCH[2]}
  if ! [[ "$code" =~ ^($codes)$ ]]; then
    fail "$ctx: error code '$code', want $codes ($line)"
  fi
  if [ "${#msg}" -lt 8 ]; then
    fail "$ctx: message too short to say why: $line"
  fi
}

# expect_no_output CONTEXT OUT: neither OUT nor OUT.part nor any other
# OUT* sibling exists.
expect_no_output() {
  local ctx=$1 out=$2 f
  for f in "$out" "$out".*; do
    if [ -e "$f" ]; then fail "$ctx: left $f behind"; fi
  done
}

# Skip (exit 77) while `vidq transcode` is still the placeholder.
# TODO(fixtures): remove once the transcode CLI is on main.
skip_if_not_built() {
  local said
  said=$("$VIDQ_BIN" transcode 2>&1 || true)
  if [[ "$said" == *"not built yet"* ]]; then
    echo "$TEST_NAME: vidq transcode not built yet: skipped"
    trap - EXIT
    rm -rf "$T"
    exit 77
  fi
}

# ------------------------------------------------------------ ffprobe facts

# probe_json FILE: ffprobe's format, streams and packets as one JSON object.
probe_json() {
  ffprobe -v error -of json -show_entries "format=format_name:stream=index,codec_type,codec_name,profile,pix_fmt,width,height,sample_aspect_ratio,field_order,avg_frame_rate,r_frame_rate,start_time,channels,sample_rate:stream_side_data=rotation:packet=stream_index,pts_time,duration_time" "$1"
}

# facts FILE: one JSON object with what the tests compare, from ffprobe:
#   format, nv, na (stream counts), ns (all streams), start (earliest start),
#   dur (content duration: last packet end - first packet start, negative
#   timestamps of encoder priming counted as 0), vdur, adur (per kind),
#   v: {codec, profile, pix_fmt, w, h, dw, dh (displayed: SAR and rotation
#   applied), rot, field_order, fps}, a: {codec, channels, sample_rate}.
facts() {
  probe_json "$1" | jq -c '
    def num: if . == null or . == "N/A" then null else tonumber end;
    def span(pk): if (pk | length) == 0 then -1 else
      (pk | map(.pts_time | num) | min) as $s
      | (pk | map((.pts_time | num) + ((.duration_time // "0") | num // 0)) | max)
        - (if $s < 0 then 0 else $s end) end;
    def ratio: if . == null or . == "0/0" or . == "0:1" or . == "N/A" then null
      else (split("[:/]"; null) | map(tonumber)) as $r
      | if $r[1] == 0 then null else $r[0] / $r[1] end end;
    (.streams | map({key: (.index | tostring), value: .codec_type}) | from_entries) as $t
    | [(.packets // [])[] | select(.pts_time != null and .pts_time != "N/A")] as $p
    | ([.streams[] | select(.codec_type == "video")] | first) as $v
    | ([.streams[] | select(.codec_type == "audio")] | first) as $a
    | {
        format: .format.format_name,
        ns: (.streams | length),
        nv: ([.streams[] | select(.codec_type == "video")] | length),
        na: ([.streams[] | select(.codec_type == "audio")] | length),
        start: ([.streams[] | .start_time | num | select(. != null)] | min),
        dur: span($p),
        vdur: span($p | map(select($t[.stream_index | tostring] == "video"))),
        adur: span($p | map(select($t[.stream_index | tostring] == "audio"))),
        v: (if $v == null then null else
             ([$v.side_data_list[]? | select(.rotation != null) | .rotation] | first // 0) as $rot
             | (($v.sample_aspect_ratio | ratio) // 1) as $sar
             | ($v.width * (if $sar > 0 then $sar else 1 end)) as $sw
             | (if ((($rot | fabs | round) % 180) == 90) then [$v.height, $sw] else [$sw, $v.height] end) as $d
             | {codec: $v.codec_name, profile: ($v.profile // ""), pix_fmt: ($v.pix_fmt // ""),
                w: $v.width, h: $v.height, dw: $d[0], dh: $d[1], rot: $rot,
                field_order: ($v.field_order // "unknown"),
                fps: (($v.avg_frame_rate | ratio) // ($v.r_frame_rate | ratio) // 25)}
           end),
        a: (if $a == null then null else
             {codec: $a.codec_name, channels: $a.channels, sample_rate: ($a.sample_rate | num)}
           end)
      }'
}

# jqv JSON FILTER: one value out of a facts object.
jqv() { jq -r "$2" <<<"$1"; }

# same_codec A B: codec names of a stream and of its stream copy agree (MP4
# files MPEG-1/2 layer II audio under the object type ffprobe reads as mp3).
same_codec() {
  [ "$1" = "$2" ] && return 0
  case "$1:$2" in mp3:mp2|mp2:mp3) return 0 ;; esac
  return 1
}

# fcmp A OP B: float comparison with awk (OP: < <= > >= ==).
fcmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }

# top_boxes FILE: the top-level MP4 box types in file order, space-separated.
top_boxes() {
  local f=$1 size off=0 total types="" hdr n
  total=$(stat -c %s "$f")
  while [ "$off" -lt "$total" ] && [ "${#types}" -lt 400 ]; do
    hdr=$(od -An -v -tx1 -j "$off" -N 16 "$f" | tr -d ' \n')
    [ "${#hdr}" -ge 16 ] || break
    size=$((16#${hdr:0:8}))
    types+="$(printf '%b' "\\x${hdr:8:2}\\x${hdr:10:2}\\x${hdr:12:2}\\x${hdr:14:2}") "
    if [ "$size" -eq 1 ]; then
      [ "${#hdr}" -ge 32 ] || break
      size=$((16#${hdr:16:16}))
    elif [ "$size" -eq 0 ]; then
      break
    fi
    [ "$size" -ge 8 ] || break
    off=$((off + size))
  done
  echo "$types"
}

# is_faststart FILE: moov comes before mdat at the top level.
is_faststart() {
  local boxes
  boxes=" $(top_boxes "$1")"
  [[ "$boxes" == *" moov "*" mdat "* ]]
}

# ---------------------------------------------------- preset expectations
#
# What each preset must produce. EVERY preset listed by `vidq presets --json`
# needs a row here: a preset without one fails test_cli_presets (nothing
# ships untested). Adding a preset = adding a row.
#
#   kind   av:    audio+video output; audio-only input gives audio-only
#                 output, video-only input video-only output
#          audio: audio only; an input without audio must be refused
#          image: one still frame; an input without video must be refused
#          copy:  stream copy (remux); codecs the container cannot hold must
#                 be refused with not_remuxable
#   fmt    ERE on ffprobe's format_name
#   vcodec video codec ("-" none, "copy" same as input)
#   pix    ERE on pix_fmt ("-" none/any)
#   prof   ERE on the video profile ("-" any)
#   maxh   cap on the shorter displayed side ("-" none: never upscale only)
#   acodec audio codec ("-" none, "copy" same as input)
#   fast   yes: MP4 moov before mdat; - : not checked
#
# preset      kind  fmt              vcodec pix                 prof    maxh acodec fast
PRESET_TABLE='
mp4-1080p     av    mp4              h264   ^yuv420p$           ^High$  1080 aac    yes
mp4-720p      av    mp4              h264   ^yuv420p$           ^High$  720  aac    yes
mp4-480p      av    mp4              h264   ^yuv420p$           ^High$  480  aac    yes
audio-m4a     audio mp4              -      -                   -       -    aac    yes
thumbnail     image image2|jpeg|mjpeg mjpeg ^yuvj?4[24][024]p$  -       spec -      -
remux-mp4     copy  mp4              copy   -                   -       -    copy   yes
hevc-1080p    av    mp4              hevc   ^yuv420p$           -       1080 aac    yes
webm-720p     av    webm             vp9    ^yuv420p$           -       720  opus   -
av1-720p      av    mp4              av1    ^yuv420p$           -       720  opus   yes
audio-mp3     audio mp3              -      -                   -       -    mp3    -
audio-opus    audio ogg              -      -                   -       -    opus   -
hls           hls   mpegts           h264   ^yuv420p$           ^High$  1080 aac    -
thumbnails-sprite sprite image2|jpeg|mjpeg mjpeg ^yuvj420p$ -       -    -      -
'

# preset_row NAME: the row's fields (without the name), or nothing.
preset_row() {
  awk -v n="$1" '$1 == n { $1 = ""; print substr($0, 2); exit }' <<<"$PRESET_TABLE"
}

# Container support of MP4 for stream copy: "yes" codecs must be remuxed,
# "no" codecs must be refused (not_remuxable), the rest may go either way
# (ffmpeg's muxer takes them, a product may refuse them as unplayable).
mp4_copy_class() {
  case "$1" in
    h264|hevc|av1|vp9|mpeg4|aac|mp3|opus|ac3|eac3|alac) echo yes ;;
    prores|vp8|theora|rawvideo|ffv1|dnxhd|pcm_*|wmav2|wmv2|vorbis) echo no ;;
    *) echo maybe ;;
  esac
}

PRESETS_JSON=""
# load_presets: `vidq presets --json` into PRESETS_JSON and PRESET_NAMES.
load_presets() {
  run_vidq presets --json
  if [ "$RC" -ne 0 ] || ! jq -e '.presets | type == "array" and length > 0' "$T/out.txt" >/dev/null 2>&1; then
    fail "vidq presets --json: exit $RC, not a {\"presets\":[...]} object: $(head -c 300 "$T/out.txt") $(head -c 300 "$T/err.txt")"
    finish
  fi
  PRESETS_JSON=$(cat "$T/out.txt")
  mapfile -t PRESET_NAMES < <(jq -r '.presets[].name' <<<"$PRESETS_JSON")
  local name container maxh
  while read -r name container maxh; do
    PRESET_EXT[$name]=$container
    PRESET_MAXH[$name]=$maxh
  done < <(jq -r '.presets[] | "\(.name) \(.spec.container // "out") \(.spec.video.max_height? // 0)"' <<<"$PRESETS_JSON")
}
declare -A PRESET_EXT PRESET_MAXH

# preset_spec NAME: the preset's spec object from PRESETS_JSON.
preset_spec() {
  jq -c --arg n "$1" '.presets[] | select(.name == $n) | .spec' <<<"$PRESETS_JSON"
}

# ------------------------------------------------------- the main check

# load_facts PREFIX FACTS_JSON: the facts as shell variables PREFIX_nv,
# PREFIX_na, PREFIX_ns, PREFIX_format, PREFIX_start, PREFIX_dur,
# PREFIX_vdur, PREFIX_adur, PREFIX_vcodec, PREFIX_profile, PREFIX_pix,
# PREFIX_w, PREFIX_h, PREFIX_dw, PREFIX_dh, PREFIX_rot, PREFIX_fo,
# PREFIX_fps, PREFIX_acodec, PREFIX_ch, PREFIX_sr (one jq run).
load_facts() {
  local assigns
  assigns=$(jq -r --arg p "$1" '
    def s: if . == null then "" else tostring end;
    [["nv", .nv], ["na", .na], ["ns", .ns], ["format", .format],
     ["start", (.start // 0)], ["dur", .dur], ["vdur", .vdur], ["adur", .adur],
     ["vcodec", .v.codec?], ["profile", .v.profile?], ["pix", .v.pix_fmt?],
     ["w", .v.w?], ["h", .v.h?], ["dw", .v.dw?], ["dh", .v.dh?], ["rot", .v.rot?],
     ["fo", .v.field_order?], ["fps", .v.fps?],
     ["acodec", .a.codec?], ["ch", .a.channels?], ["sr", .a.sample_rate?]]
    | .[] | "\($p)_\(.[0])=\(.[1] | s | @sh)"' <<<"$2")
  eval "$assigns"
}

# input_facts FILE: facts of an input, computed once per test.
input_facts() {
  local key
  key="$T/facts.$(basename "$1").json"
  [ -s "$key" ] || facts "$1" > "$key"
  cat "$key"
}

# expected_short SRC_SHORT CAP: the shorter displayed side to expect.
expected_short() {
  local s=$1 cap=$2
  if [ "$cap" != "-" ] && [ "$cap" -gt 0 ] && fcmp "$s" ">" "$cap"; then echo "$cap"; else echo "$s"; fi
}

# check_video_geometry CTX CAP EVEN (with I_* and O_* facts loaded):
# displayed size of the output against the input's: shorter side =
# min(src, cap) (+-2 for even rounding), aspect ratio kept within 2%, the
# orientation kept, coded dims even when EVEN=1.
check_video_geometry() {
  local ctx=$1 cap=$2 even=$3 ishort oshort want
  ishort=$(awk -v a="$I_dw" -v b="$I_dh" 'BEGIN { print (a < b ? a : b) }')
  oshort=$(awk -v a="$O_dw" -v b="$O_dh" 'BEGIN { print (a < b ? a : b) }')
  want=$(expected_short "$ishort" "$cap")
  if ! awk -v o="$oshort" -v w="$want" 'BEGIN { d = o - w; exit !(d >= -2.01 && d <= 2.01) }'; then
    fail "$ctx: displayed ${O_dw}x${O_dh} (coded ${O_w}x${O_h}), shorter side $oshort, want $want (input displayed ${I_dw}x${I_dh}, cap $cap)"
  fi
  if ! awk -v a="$I_dw" -v b="$I_dh" -v c="$O_dw" -v d="$O_dh" \
       'BEGIN { r = (a / b) / (c / d); exit !(r > 0.98 && r < 1.02) }'; then
    fail "$ctx: display aspect changed: input ${I_dw}x${I_dh}, output ${O_dw}x${O_dh}"
  fi
  if awk -v a="$I_dw" -v b="$I_dh" -v c="$O_dw" -v d="$O_dh" \
       'BEGIN { exit !((a < b && c > d) || (a > b && c < d)) }'; then
    fail "$ctx: orientation flipped: input displayed ${I_dw}x${I_dh}, output ${O_dw}x${O_dh}"
  fi
  if [ "$even" = 1 ] && { [ $((O_w % 2)) -ne 0 ] || [ $((O_h % 2)) -ne 0 ]; }; then
    fail "$ctx: odd coded size ${O_w}x${O_h}"
  fi
  return 0
}

# check_duration CTX WHAT IN_DUR OUT_DUR TOL
check_duration() {
  local ctx=$1 what=$2 i=$3 o=$4 tol=$5
  if ! awk -v i="$i" -v o="$o" -v t="$tol" 'BEGIN { d = o - i; if (d < 0) d = -d; exit !(d <= t) }'; then
    fail "$ctx: ${what:+$what }duration $o s, input $i s (tolerance $tol s)"
  fi
  return 0
}

# frames_digest FILE KIND: md5 of the content hashes of FILE's first KIND
# (v or a) stream's decoded frames, timestamps left out: equal for a stream
# copy (whatever the containers), never for a lossy re-encode.
frames_digest() {
  ffmpeg -nostdin -v error -i "$1" -map "0:$2:0" -f framemd5 - 2>/dev/null </dev/null |
    grep -v '^#' | awk -F, '{ print $NF }' | md5sum | cut -d' ' -f1
}

# packets_md5 FILE KIND: md5 of the first KIND stream's packets as stored.
packets_md5() {
  ffmpeg -nostdin -v error -i "$1" -map "0:$2:0" -c copy -f md5 - 2>/dev/null </dev/null || true
}

# is_copy IN OUT KIND: OUT's KIND stream is a copy of IN's: the same
# packets, or (container changes such as ADTS -> MP4) the same decoded
# frames. (Decoded frames alone are not enough: an MP3 file's LAME header
# trims the encoder delay that the same packets in AVI decode with.)
is_copy() {
  [ "$(packets_md5 "$2" "$3")" = "$(packets_md5 "$1" "$3")" ] ||
    [ "$(frames_digest "$2" "$3")" = "$(frames_digest "$1" "$3")" ]
}

# claimed_copied FILE KIND: what `vidq transcode --progress json` said in its
# last stdout line ({"outputs":[...]}) of the first output's KIND (video or
# audio): true, false, or "" when it said nothing.
claimed_copied() {
  tail -n 1 "$1" 2>/dev/null | jq -r --arg k "$2" '.outputs[0][$k] | if type == "object" then .copied | tostring else empty end' 2>/dev/null || true
}

# Set by the caller of check_transcode when the CLI said per stream whether
# it was copied (claimed_copied); checked against what the output shows.
CLAIM_V="" CLAIM_A=""

# The H.264 profiles a copied stream may have (remux.c: what players take).
H264_COPY_PROFILES='^(Constrained Baseline|Baseline|Main|High)$'

# check_transcode CTX INPUT OUT PRESET [MAXH]: OUT was made from INPUT with
# PRESET (row in PRESET_TABLE; MAXH overrides the row's cap, for custom
# specs like a preset): check it with ffprobe. A stream of an encoding
# preset may be a copy of the input's (the remux fast path): then it must
# be the preset's codec, decode to the same frames as the input's, and
# still meet the preset's size cap (and an H.264 copy a profile players
# take).
check_transcode() {
  local ctx=$1 in=$2 out=$3 preset=$4
  local row kind fmt vcodec pix prof maxh acodec fast fout
  row=$(preset_row "$preset")
  read -r kind fmt vcodec pix prof maxh acodec fast <<<"$row"
  [ -n "${5:-}" ] && maxh=$5
  if [ ! -s "$out" ]; then fail "$ctx: no output file"; return 0; fi
  load_facts I "$(input_facts "$in")"
  if ! fout=$(facts "$out" 2>"$T/ffprobe.err"); then
    fail "$ctx: ffprobe cannot read the output: $(head -c 300 "$T/ffprobe.err")"
    return 0
  fi
  load_facts O "$fout"
  local inv=$I_nv ina=$I_na
  [ "$inv" -gt 1 ] && inv=1
  [ "$ina" -gt 1 ] && ina=1

  [[ "$O_format" =~ ($fmt) ]] || fail "$ctx: container '$O_format', want /$fmt/"

  # Which streams the output must have.
  local wantv wanta
  case "$kind" in
    av|copy) wantv=$inv wanta=$ina ;;
    audio) wantv=0 wanta=1 ;;
    image) wantv=1 wanta=0 ;;
  esac
  [ "$vcodec" = "-" ] && wantv=0
  [ "$acodec" = "-" ] && wanta=0
  [ "$O_nv" -eq "$wantv" ] || fail "$ctx: $O_nv video streams, want $wantv"
  [ "$O_na" -eq "$wanta" ] || fail "$ctx: $O_na audio streams, want $wanta"
  [ "$O_ns" -eq $((wantv + wanta)) ] || fail "$ctx: $O_ns streams in all, want $((wantv + wanta))"

  # The remux fast path: which streams are copies of the input's.
  local vcopied=false acopied=false
  if [ "$kind" = av ] && [ "$wantv" -eq 1 ] && [ "$O_nv" -ge 1 ] && [ "$O_vcodec" = "$I_vcodec" ] &&
     is_copy "$in" "$out" v; then
    vcopied=true
    [ "$prof" != "-" ] && [ "$vcodec" = h264 ] && prof=$H264_COPY_PROFILES
    [ "$O_profile" = "$I_profile" ] || fail "$ctx: copied video has profile '$O_profile', input '$I_profile'"
    [ "${O_w}x$O_h" = "${I_w}x$I_h" ] || fail "$ctx: copied video is ${O_w}x$O_h, input ${I_w}x$I_h"
  fi
  if [ "$kind" = av ] || [ "$kind" = audio ]; then
    if [ "$wanta" -eq 1 ] && [ "$O_na" -ge 1 ] && [ "$O_acodec" = "$I_acodec" ] && [ "$acodec" != copy ] &&
       is_copy "$in" "$out" a; then
      acopied=true
    fi
  fi
  if [ "$kind" = copy ]; then
    [ "$O_nv" -ge 1 ] && vcopied=true
    [ "$O_na" -ge 1 ] && acopied=true
  fi
  [ -z "$CLAIM_V" ] || [ "$CLAIM_V" = "$vcopied" ] || fail "$ctx: the CLI says video copied=$CLAIM_V, the output shows $vcopied"
  [ -z "$CLAIM_A" ] || [ "$CLAIM_A" = "$acopied" ] || fail "$ctx: the CLI says audio copied=$CLAIM_A, the output shows $acopied"

  # Video.
  if [ "$wantv" -eq 1 ] && [ "$O_nv" -ge 1 ]; then
    if [ "$vcodec" = copy ]; then
      [ "$O_vcodec" = "$I_vcodec" ] || fail "$ctx: video codec $O_vcodec, want a copy of $I_vcodec"
      [ "$O_pix" = "$I_pix" ] || fail "$ctx: pix_fmt $O_pix, want a copy ($I_pix)"
      [ "${O_w}x$O_h" = "${I_w}x$I_h" ] || fail "$ctx: coded size ${O_w}x$O_h, want a copy (${I_w}x$I_h)"
      awk -v a="$O_dw" -v b="$O_dh" -v c="$I_dw" -v d="$I_dh" \
          'BEGIN { x = a - c; y = b - d; exit !(x * x < 1 && y * y < 1) }' ||
        fail "$ctx: displayed size/rotation not kept: ${O_dw}x$O_dh rot $O_rot, input ${I_dw}x$I_dh rot $I_rot"
    else
      [ "$O_vcodec" = "$vcodec" ] || fail "$ctx: video codec $O_vcodec, want $vcodec"
      [ "$pix" = "-" ] || [[ "$O_pix" =~ $pix ]] || fail "$ctx: pix_fmt $O_pix, want /$pix/"
      [ "$prof" = "-" ] || [[ "$O_profile" =~ $prof ]] || fail "$ctx: profile '$O_profile', want /$prof/"
      case "$O_fo" in tt|bb|tb|bt) fail "$ctx: output is interlaced (field_order $O_fo)" ;; esac
      local cap=$maxh even=0
      if [ "$cap" = spec ]; then
        cap=${PRESET_MAXH[$preset]:-0}
        [ "$cap" -gt 0 ] || cap=-
      fi
      [[ "$pix" == *420* ]] && even=1
      check_video_geometry "$ctx" "$cap" "$even"
    fi
  fi

  # Audio.
  if [ "$wanta" -eq 1 ] && [ "$O_na" -ge 1 ]; then
    if [ "$acodec" = copy ]; then
      same_codec "$O_acodec" "$I_acodec" || fail "$ctx: audio codec $O_acodec, want a copy of $I_acodec"
      [ "$O_ch" = "$I_ch" ] || fail "$ctx: $O_ch audio channels, want a copy ($I_ch)"
    else
      [ "$O_acodec" = "$acodec" ] || fail "$ctx: audio codec $O_acodec, want $acodec"
      local wantch=$I_ch
      [ "$wantch" -gt 2 ] && wantch=2
      [ "$O_ch" = "$wantch" ] || fail "$ctx: $O_ch audio channels, want $wantch (input $I_ch)"
    fi
  fi

  # Time: starts near 0 and lasts as long as the input (not for stills).
  if [ "$kind" != image ]; then
    local vfr=0 tol
    awk -v s="$O_start" 'BEGIN { exit !(s >= -0.1 && s <= 0.1) }' ||
      fail "$ctx: output starts at $O_start s, want about 0 (input starts at $I_start s)"
    # One video frame plus one audio frame (<= 0.05 s at >= 22.05 kHz).
    [ "$inv" -eq 1 ] && vfr=$(awk -v f="$I_fps" 'BEGIN { print (f > 0 ? 1 / f : 0.04) }')
    tol=$(awk -v v="$vfr" 'BEGIN { print v + 0.05 }')
    if [ "$kind" = audio ]; then
      # An .mp3 file keeps LAME's encoder delay and padding (~1100 + up to
      # 1100 samples) in what ffprobe reports; ffmpeg's own MP3s measure the same.
      local atol=0.05
      [ "$O_acodec" = mp3 ] && atol=0.12
      check_duration "$ctx" "audio" "$I_adur" "$O_dur" "$atol"
    else
      check_duration "$ctx" "" "$I_dur" "$O_dur" "$tol"
      if [ "$wantv" -eq 1 ] && [ "$O_nv" -ge 1 ]; then
        check_duration "$ctx" "video" "$I_vdur" "$O_vdur" "$tol"
      fi
      if [ "$wanta" -eq 1 ] && [ "$O_na" -ge 1 ]; then
        check_duration "$ctx" "audio" "$I_adur" "$O_adur" "$tol"
      fi
    fi
  fi

  if [ "$fast" = yes ] && ! is_faststart "$out"; then
    fail "$ctx: not faststart (top-level boxes: $(top_boxes "$out"))"
  fi
  return 0
}

# expect_refusal KIND (with I_* facts loaded): for a preset of KIND and
# that input, prints the error-code ERE the CLI must fail with, "maybe", or
# nothing if it must succeed.
expect_refusal() {
  local kind=$1
  case "$kind" in
    audio) [ "$I_na" -gt 0 ] || echo "invalid_output|unsupported_media" ;;
    image|sprite) [ "$I_nv" -gt 0 ] || echo "invalid_output|unsupported_media" ;;
    copy)
      local c cls any_no=0 any_maybe=0
      for c in $I_vcodec $I_acodec; do
        cls=$(mp4_copy_class "$c")
        [ "$cls" = no ] && any_no=1
        [ "$cls" = maybe ] && any_maybe=1
      done
      if [ "$any_no" = 1 ]; then echo "not_remuxable"
      elif [ "$any_maybe" = 1 ]; then echo "maybe"
      fi ;;
  esac
  return 0
}

# transcode_case PRESET FIXTURE: transcode $VIDQ_MEDIA/FIXTURE with PRESET
# and check the result, or the refusal if the pair cannot be made.
transcode_case() {
  local preset=$1 fx=$2 row kind ext in out ctx refuse
  row=$(preset_row "$preset")
  if [ -z "$row" ]; then fail "preset $preset: no row in PRESET_TABLE (tests/integration/lib_cli.sh)"; return 0; fi
  kind=${row%% *}
  ext=${PRESET_EXT[$preset]:-out}
  in="$VIDQ_MEDIA/$fx"
  out="$T/${fx%.*}.$preset.$ext"
  ctx="$fx -> $preset"
  load_facts I "$(input_facts "$in")"
  refuse=$(expect_refusal "$kind")
  run_vidq transcode "$in" "$out" --preset "$preset" --progress json
  if [ -n "$refuse" ] && [ "$refuse" != maybe ]; then
    expect_error "$ctx (must be refused)" 1 "$refuse"
    expect_no_output "$ctx" "$out"
    return 0
  fi
  if [ "$refuse" = maybe ] && [ "$RC" -ne 0 ]; then
    expect_error "$ctx (may be refused)" 1 "not_remuxable"
    expect_no_output "$ctx" "$out"
    return 0
  fi
  if [ "$RC" -ne 0 ]; then
    fail "$ctx: exit $RC: $(head -c 300 "$T/err.txt")"
    expect_no_output "$ctx" "$out"
    return 0
  fi
  [ -e "$out.part" ] && fail "$ctx: $out.part left after success"
  if [ "$kind" = hls ]; then
    if [ "$I_nv" -gt 0 ]; then check_hls "$ctx" "$in" "$out"; else check_hls_audio "$ctx" "$out"; fi
    tail -n 1 "$T/out.txt" | jq '.outputs[0]' >"$T/result.json" || true
    check_hls_result "$ctx (its description)" "$out" "$T/result.json"
    rm -rf "$out"
    return 0
  fi
  if [ "$kind" = sprite ]; then
    local sp
    sp=$(preset_spec "$preset")
    check_sprite "$ctx" "$in" "$out" "$(jq -r .sprite.interval_s <<<"$sp")" \
      "$(jq -r .video.width <<<"$sp")" "$(jq -r .sprite.columns <<<"$sp")" "$(jq -r .sprite.rows <<<"$sp")"
    tail -n 1 "$T/out.txt" | jq '.outputs[0]' >"$T/result.json" || true
    check_sprite_result "$ctx (its description)" "$out" "$T/result.json" "$(jq -r .sprite.interval_s <<<"$sp")" \
      "$(jq -r .sprite.columns <<<"$sp")" "$(jq -r .sprite.rows <<<"$sp")"
    rm -rf "$out"
    return 0
  fi
  CLAIM_V=$(claimed_copied "$T/out.txt" video) CLAIM_A=$(claimed_copied "$T/out.txt" audio)
  check_transcode "$ctx" "$in" "$out" "$preset"
  CLAIM_V="" CLAIM_A=""
  rm -f "$out"
}

# check_hls CTX INPUT DIR [VCODEC]: DIR is an hls output for INPUT (video
# VCODEC, h264 by default), checked with ffprobe: master.m3u8 has one variant
# per ladder rung (1080/720/480/360, none above the source's shorter side; a
# smaller source gets one rung at its size), each with BANDWIDTH, RESOLUTION
# and CODECS; CODECS agrees with each stream's profile and level; when the
# source has audio there is exactly one audio group (one EXT-X-MEDIA, its own
# AAC playlist, AUDIO="audio" on every variant, video-only variants) and none
# otherwise; every media playlist lists segments that exist, decode, have the
# variant's size and codec and start with a keyframe (fMP4: EXT-X-MAP, its
# init segment, version >= 6); segment boundaries are the same in every rung
# and the audio lasts as long as the video.
check_hls() {
  local ctx=$1 in=$2 dir=$3 vcodec=${4:-h264} short na want=() got=() line res bw codecs uri seg h
  local master=$dir/master.m3u8
  if [ ! -s "$master" ]; then fail "$ctx: no $master"; return 0; fi
  short=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$in" |
    awk -F, 'NR == 1 { print ($1 < $2 ? $1 : $2) }')
  na=$(ffprobe -v error -select_streams a -show_entries stream=index -of csv=p=0 "$in" | wc -l)
  for h in 1080 720 480 360; do [ "$h" -le "$short" ] && want+=("$h"); done
  [ "${#want[@]}" -eq 0 ] && want=("$(( short / 2 * 2 ))")
  head -n 1 "$master" | grep -qx '#EXTM3U' || fail "$ctx: master.m3u8 does not start with #EXTM3U"
  local nmedia acodec="" vre
  nmedia=$(grep -c '^#EXT-X-MEDIA:' "$master" || true)
  case "$vcodec" in
    h264) vre='avc1\.[0-9A-F]{6}' ;;
    hevc) vre='hvc1\.[0-9]+\.[0-9A-F]+\.[LH][0-9]+(\.[0-9A-F]{1,2})*' ;;
  esac
  if [ "$na" -gt 0 ]; then
    [ "$nmedia" = 1 ] || fail "$ctx: $nmedia EXT-X-MEDIA lines, want exactly one audio group"
    line=$(grep '^#EXT-X-MEDIA:' "$master" | head -n 1 || true)
    [[ "$line" == *TYPE=AUDIO* && "$line" == *'GROUP-ID="audio"'* && "$line" == *'URI="audio/index.m3u8"'* ]] ||
      fail "$ctx: audio group line '$line'"
    check_hls_playlist "$ctx" "$dir" audio/index.m3u8 audio "" ""
    acodec=mp4a.40.2
  else
    [ "$nmedia" = 0 ] || fail "$ctx: $nmedia EXT-X-MEDIA lines for a silent source, want none"
    [ -e "$dir/audio" ] && fail "$ctx: an audio folder for a silent source"
  fi
  local ref_durs="" n=0 vdur=""
  while IFS= read -r line; do
    case "$line" in '#EXT-X-STREAM-INF:'*) ;; *) continue ;; esac
    IFS= read -r uri
    n=$((n + 1))
    bw=$(grep -o ',BANDWIDTH=[0-9]*\|:BANDWIDTH=[0-9]*' <<<"$line" | cut -d= -f2 || true)
    res=$(grep -o 'RESOLUTION=[0-9]*x[0-9]*' <<<"$line" | cut -d= -f2 || true)
    codecs=$(grep -o 'CODECS="[^"]*"' <<<"$line" | cut -d'"' -f2 || true)
    [ -n "$bw" ] && [ "$bw" -gt 0 ] || fail "$ctx: variant $uri has no BANDWIDTH: $line"
    [ -n "$res" ] || { fail "$ctx: variant $uri has no RESOLUTION: $line"; continue; }
    if [ "$na" -gt 0 ]; then
      [[ "$codecs" =~ ^${vre},${acodec}$ ]] || fail "$ctx: variant $uri CODECS='$codecs', want $vcodec,$acodec"
      [[ "$line" == *',AUDIO="audio"'* ]] || fail "$ctx: variant $uri does not name the audio group: $line"
    else
      [[ "$codecs" =~ ^${vre}$ ]] || fail "$ctx: variant $uri CODECS='$codecs', want $vcodec only"
      [[ "$line" == *AUDIO=* ]] && fail "$ctx: variant $uri names an audio group for a silent source"
    fi
    local w=${res%x*} hh=${res#*x}
    got+=("$(( w < hh ? w : hh ))")
    check_hls_playlist "$ctx" "$dir" "$uri" "$vcodec" "$w,$hh" "${codecs%%,*}" || continue
    if [ -z "$ref_durs" ]; then ref_durs=$HLS_DURS; vdur=$HLS_TOTAL
    elif [ "$HLS_DURS" != "$ref_durs" ]; then fail "$ctx: $uri segment durations '$HLS_DURS' differ from the first rung's '$ref_durs' (keyframes not aligned)"; fi
  done < "$master"
  [ "${got[*]}" = "${want[*]}" ] || fail "$ctx: variant shorter sides '${got[*]}', want '${want[*]}' (source shorter side $short)"
  [ "$n" -ge 1 ] || fail "$ctx: master.m3u8 has no variant"
  if [ "$na" -gt 0 ] && [ -n "$vdur" ]; then
    # The whole presentation, as a player sees it (ffmpeg picks video+audio).
    local ad vd
    ad=$(ffprobe -v error -select_streams a -show_entries stream=codec_name -of csv=p=0 "$master" </dev/null | awk NF | sort -u | tr '\n' ' ')
    vd=$(ffprobe -v error -select_streams v -show_entries stream=codec_name -of csv=p=0 "$master" </dev/null | awk NF | sort -u | tr '\n' ' ')
    [ "$ad" = "aac " ] && [ "$vd" = "$vcodec " ] || fail "$ctx: master.m3u8 plays video '$vd' audio '$ad'"
    awk -v a="$HLS_AUDIO_TOTAL" -v v="$vdur" 'BEGIN { d = a - v; exit !(d < 0.5 && d > -0.5) }' ||
      fail "$ctx: audio lasts $HLS_AUDIO_TOTAL s, video $vdur s"
  fi
  return 0
}

# check_hls_audio CTX DIR: DIR is an hls output of an audio-only input: its
# master.m3u8 has one variant, audio/index.m3u8 (CODECS "mp4a.40.2", no
# RESOLUTION, no EXT-X-MEDIA), a valid AAC playlist, and nothing else.
check_hls_audio() {
  local ctx=$1 dir=$2 master=$2/master.m3u8
  if [ ! -s "$master" ]; then fail "$ctx: no $master"; return 0; fi
  [ "$(grep -A1 '^#EXT-X-STREAM-INF:' "$master" | grep -v '^#' | tr '\n' ' ')" = "audio/index.m3u8 " ] ||
    fail "$ctx: master.m3u8 variants are not audio/index.m3u8 alone: $(tr '\n' ' ' <"$master")"
  grep -q '^#EXT-X-STREAM-INF:.*CODECS="mp4a.40.2"$' "$master" || fail "$ctx: the audio variant's CODECS: $(grep STREAM-INF "$master")"
  grep -q 'RESOLUTION=\|^#EXT-X-MEDIA' "$master" && fail "$ctx: RESOLUTION or EXT-X-MEDIA in an audio-only master: $(tr '\n' ' ' <"$master")"
  [ "$(cd "$dir" && ls | tr '\n' ' ')" = "audio master.m3u8 " ] || fail "$ctx: the folder holds $(cd "$dir" && ls | tr '\n' ' ')"
  check_hls_playlist "$ctx" "$dir" audio/index.m3u8 audio "" ""
  return 0
}

# check_hls_playlist CTX DIR URI KIND SIZE CODECS: one media playlist of an
# hls output (KIND h264|hevc with SIZE "w,h" and CODECS its codec string, or
# audio). Sets HLS_DURS (its EXTINF lines) and HLS_TOTAL (their sum; for
# audio also HLS_AUDIO_TOTAL). Returns 1 if it is missing.
check_hls_playlist() {
  local ctx=$1 dir=$2 uri=$3 kind=$4 size=$5 cstr=$6 pl d seg nseg=0 init="" ver
  pl=$dir/$uri; d=${uri%/*}
  if [ ! -s "$pl" ]; then fail "$ctx: media playlist $uri missing"; return 1; fi
  grep -q '^#EXT-X-ENDLIST' "$pl" || fail "$ctx: $uri has no #EXT-X-ENDLIST"
  HLS_DURS=$(grep '^#EXTINF:' "$pl" | tr '\n' ' ' || true)
  HLS_TOTAL=$(grep '^#EXTINF:' "$pl" | cut -d: -f2 | cut -d, -f1 | awk '{ s += $1 } END { printf "%.3f", s }')
  [ "$kind" = audio ] && HLS_AUDIO_TOTAL=$HLS_TOTAL
  ver=$(sed -n 's/^#EXT-X-VERSION://p' "$pl" | head -n 1)
  if grep -q '^#EXT-X-MAP:' "$pl"; then
    init=$(sed -n 's/^#EXT-X-MAP:URI="\([^"]*\)".*/\1/p' "$pl")
    [ -s "$dir/$d/$init" ] || fail "$ctx: $uri maps '$init' which does not exist"
    [ "${ver:-0}" -ge 6 ] || fail "$ctx: $uri uses EXT-X-MAP with version '$ver' (< 6)"
  fi
  while IFS= read -r seg; do
    nseg=$((nseg + 1))
    local sp="$dir/$d/$seg" probe
    if [ ! -s "$sp" ]; then fail "$ctx: $uri lists $seg which does not exist"; continue; fi
    # The playlist says the segments' format (a tiny TS tail segment can
    # look like something else to ffprobe's guess).
    local f=(-f mpegts)
    probe=$sp
    if [ -n "$init" ]; then probe=$T/hls_seg.mp4; f=(-f mp4); cat "$dir/$d/$init" "$sp" >"$probe"; fi
    local vs as
    vs=$(ffprobe -v error "${f[@]}" -select_streams v -show_entries stream=codec_name,width,height -of csv=p=0 "$probe" </dev/null | awk NF | sort -u | tr '\n' ' ')
    as=$(ffprobe -v error "${f[@]}" -select_streams a -show_entries stream=codec_name -of csv=p=0 "$probe" </dev/null | awk NF | sort -u | tr '\n' ' ')
    if [ "$kind" = audio ]; then
      [ -z "$vs" ] && [ "$as" = "aac " ] || fail "$ctx: $d/$seg has video '$vs' audio '$as', want AAC only"
    else
      [ "$vs" = "$kind,$size " ] || fail "$ctx: $d/$seg video '$vs', want '$kind,$size '"
      [ -z "$as" ] || fail "$ctx: $d/$seg of a video variant has audio '$as' (audio goes in its own group)"
    fi
    ffmpeg -nostdin -v error "${f[@]}" -i "$probe" -f null - 2>"$T/dec.err" </dev/null || fail "$ctx: $d/$seg does not decode: $(head -c 200 "$T/dec.err")"
    [ -s "$T/dec.err" ] && fail "$ctx: $d/$seg decode errors: $(head -c 200 "$T/dec.err")"
    if [ "$kind" != audio ]; then
      local k
      k=$(ffprobe -v error "${f[@]}" -select_streams v:0 -show_entries frame=key_frame -of csv=p=0 "$probe" </dev/null || true)
      k=${k%%$'\n'*}; k=${k%%,*}
      [ "$k" = 1 ] || fail "$ctx: $d/$seg does not start with a keyframe"
      if [ "$nseg" = 1 ]; then
        # CODECS from the stream's own profile and level.
        local prof lvl want
        IFS=, read -r prof lvl < <(ffprobe -v error "${f[@]}" -select_streams v:0 -show_entries stream=profile,level -of csv=p=0 "$probe" </dev/null)
        case "$kind,$prof" in
          h264,High) want=$(printf 'avc1.6400%02X' "$lvl") ;;
          hevc,Main) want=$(printf 'hvc1.1.6.L%d' "$lvl") ;;
          *) want="?$kind/$prof" ;;
        esac
        [[ "$cstr" == "$want"* ]] || fail "$ctx: $uri CODECS '$cstr' but the stream is $prof level $lvl ($want)"
      fi
    fi
  done < <(grep -v '^#' "$pl" | grep -v '^$')
  [ "$nseg" -ge 1 ] || fail "$ctx: $uri lists no segment"
  return 0
}

# dir_bytes DIR: the bytes of every file under DIR.
dir_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

# near A B TOL: |A - B| <= TOL.
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; exit !(d <= t && -d <= t) }'; }

# stream_facts FILE v|a: ffprobe's first video (audio) stream of FILE (an
# HLS media playlist works) as the keys vidq's stream objects use.
stream_facts() {
  ffprobe -v error -select_streams "$2:0" -of json -show_entries \
    stream=codec_name,profile,pix_fmt,width,height,avg_frame_rate,r_frame_rate,channels,sample_rate "$1" </dev/null |
    jq -c '.streams[0] // {} | def rate(r): (r | split("/") | map(tonumber)) as [$n, $d] | if $d > 0 then $n / $d else 0 end;
      {codec: .codec_name, profile, pix_fmt, width, height, channels, sample_rate: (.sample_rate // null | if . then tonumber else null end),
       fps: (if (.avg_frame_rate // "0/0") != "0/0" then rate(.avg_frame_rate) else rate(.r_frame_rate // "0/0") end)}'
}

# check_hls_result CTX DIR OBJ_FILE: OBJ_FILE holds the description of the
# hls output in DIR (one object of `vidq transcode --progress json`'s or of
# the job's "outputs"); checked against the files: valid JSON; size = the
# bytes of DIR; duration_s = ffprobe's of master.m3u8 (within 0.15 s); one
# rendition per variant of master.m3u8 in its order, with its URI (the
# rendition's "uri", "url" or "path" ends with it), BANDWIDTH,
# AVERAGE-BANDWIDTH and CODECS; average_bandwidth = the bytes of the
# variant's segments (and the audio's) over ffprobe's durations (within
# 3 %), bandwidth >= it; each rendition's video = ffprobe of its media
# playlist (codec, profile, pix_fmt, width, height, fps), its audio =
# ffprobe of the audio playlist (codec, channels, sample_rate), null when
# there is none; the output's video = the first rendition's, its audio =
# the audio rendition's, each with "copied": false.
check_hls_result() {
  local ctx=$1 dir=$2 obj=$3 master=$2/master.m3u8 d n=0 line uri r got want kind bytes dur rate sum apl=""
  jq -e 'type == "object"' "$obj" >/dev/null 2>&1 || { fail "$ctx: not a JSON object: $(head -c 300 "$obj")"; return 0; }
  got=$(jq -r .size "$obj"); want=$(dir_bytes "$dir")
  [ "$got" = "$want" ] || fail "$ctx: size $got, the folder holds $want bytes"
  d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$master" </dev/null)
  near "$(jq -r .duration_s "$obj")" "$d" 0.15 || fail "$ctx: duration_s $(jq -r .duration_s "$obj"), ffprobe says $d"
  grep -q '^#EXT-X-MEDIA:TYPE=AUDIO' "$master" && apl=audio/index.m3u8
  # Bits per second of a media playlist's segments, by ffprobe's duration.
  hls_rate() {
    local pl=$1 b
    b=$(grep -v '^#' "$pl" | grep . | while read -r seg; do stat -c %s "${pl%/*}/$seg"; done | awk '{ s += $1 } END { print s + 0 }')
    awk -v b="$b" -v d="$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$pl" </dev/null)" 'BEGIN { print b * 8 / d }'
  }
  while IFS= read -r line; do
    case "$line" in '#EXT-X-STREAM-INF:'*) ;; *) continue ;; esac
    IFS= read -r uri
    r=$(jq -c ".renditions[$n] // empty" "$obj")
    n=$((n + 1))
    [ -n "$r" ] || { fail "$ctx: no rendition for variant $n ($uri)"; continue; }
    got=$(jq -r '.url // .uri' <<<"$r")
    [[ "$got" == "$uri" || "$got" == */"$uri" ]] || fail "$ctx: rendition $n is at '$got', the master's variant $n is $uri"
    [ "$(jq -r .name <<<"$r")" = "${uri%%/*}" ] || fail "$ctx: rendition $n name $(jq -r .name <<<"$r"), its folder is ${uri%%/*}"
    for kind in BANDWIDTH AVERAGE-BANDWIDTH; do
      want=$(grep -o "[:,]$kind=[0-9]*" <<<"$line" | cut -d= -f2)
      got=$(jq -r ".$(tr 'A-Z-' 'a-z_' <<<"$kind")" <<<"$r")
      [ "$got" = "$want" ] || fail "$ctx: rendition $n $kind $got, master.m3u8 says $want"
    done
    want=$(grep -o 'CODECS="[^"]*"' <<<"$line" | cut -d'"' -f2)
    [ "$(jq -r .codecs <<<"$r")" = "$want" ] || fail "$ctx: rendition $n codecs $(jq -r .codecs <<<"$r"), master.m3u8 says $want"
    sum=$(hls_rate "$dir/$uri")
    if [ -n "$apl" ]; then sum=$(awk -v a="$sum" -v b="$(hls_rate "$dir/$apl")" 'BEGIN { print a + b }'); fi
    awk -v g="$(jq -r .average_bandwidth <<<"$r")" -v w="$sum" 'BEGIN { exit !(g > w * 0.97 && g < w * 1.03) }' ||
      fail "$ctx: rendition $n average_bandwidth $(jq -r .average_bandwidth <<<"$r"), its segments make $sum bit/s"
    jq -e '.bandwidth >= .average_bandwidth' <<<"$r" >/dev/null || fail "$ctx: rendition $n bandwidth below its average: $r"
    if [[ "$line" == *RESOLUTION=* ]]; then
      want=$(stream_facts "$dir/$uri" v)
      jq -e --argjson w "$want" '.video as $v | $v.codec == $w.codec and $v.profile == $w.profile and $v.pix_fmt == $w.pix_fmt
        and $v.width == $w.width and $v.height == $w.height and ($v.fps - $w.fps | fabs) < 0.01' <<<"$r" >/dev/null ||
        fail "$ctx: rendition $n video $(jq -c .video <<<"$r"), ffprobe of $uri says $want"
    else
      jq -e '.video == null' <<<"$r" >/dev/null || fail "$ctx: rendition $n ($uri) has no video but says $(jq -c .video <<<"$r")"
    fi
    local apath=${apl:-}
    [[ -z "$apl" && "$(jq -r .codecs <<<"$r")" == mp4a* ]] && apath=$uri
    if [ -n "$apath" ]; then
      want=$(stream_facts "$dir/$apath" a)
      jq -e --argjson w "$want" '.audio as $a | $a.codec == $w.codec and $a.channels == $w.channels and $a.sample_rate == $w.sample_rate' \
        <<<"$r" >/dev/null || fail "$ctx: rendition $n audio $(jq -c .audio <<<"$r"), ffprobe of $apath says $want"
    else
      jq -e '.audio == null' <<<"$r" >/dev/null || fail "$ctx: rendition $n of a silent output says audio $(jq -c .audio <<<"$r")"
    fi
  done < "$master"
  [ "$n" -ge 1 ] || fail "$ctx: master.m3u8 has no variant"
  [ "$(jq '.renditions | length' "$obj")" = "$n" ] || fail "$ctx: $(jq '.renditions | length' "$obj") renditions, master.m3u8 has $n variants"
  jq -e '(.video == (if .renditions[0].video then .renditions[0].video + {copied: false} else null end))
    and (.audio == (if .renditions[0].audio then .renditions[0].audio + {copied: false} else null end))' "$obj" >/dev/null ||
    fail "$ctx: the output's video/audio $(jq -c '[.video, .audio]' "$obj") are not the top rendition's $(jq -c '.renditions[0] | [.video, .audio]' "$obj")"
  return 0
}

# check_sprite_result CTX DIR OBJ_FILE INTERVAL COLS ROWS: the description
# of the sprite output in DIR against its files: size = the bytes of DIR;
# video = ffprobe of sheet-0000.jpg (mjpeg, its width and height), audio
# null; sprite.tile_width/height = the cues' xywh size, sheets = the
# sheet files, tiles = the cues, columns/rows/interval_s as asked; with
# "vtt_url" (the job), that = the output's url.
check_sprite_result() {
  local ctx=$1 dir=$2 obj=$3 iv=$4 cols=$5 rows=$6 got want
  jq -e 'type == "object"' "$obj" >/dev/null 2>&1 || { fail "$ctx: not a JSON object: $(head -c 300 "$obj")"; return 0; }
  got=$(jq -r .size "$obj"); want=$(dir_bytes "$dir")
  [ "$got" = "$want" ] || fail "$ctx: size $got, the folder holds $want bytes"
  want=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height -of csv=p=0 "$dir/sheet-0000.jpg" </dev/null)
  got=$(jq -r '.video | "\(.codec),\(.width),\(.height)"' "$obj")
  [ "$got" = "$want" ] || fail "$ctx: video $got, ffprobe of sheet-0000.jpg says $want"
  jq -e '.audio == null and .video.copied == false' "$obj" >/dev/null || fail "$ctx: audio/copied: $(jq -c '[.audio, .video]' "$obj")"
  vtt_cues "$dir/thumbnails.vtt" >"$T/cues_r.txt"
  want="$(awk 'NR == 1 { print $6 "x" $7 }' "$T/cues_r.txt") $(ls "$dir"/sheet-*.jpg | wc -l) $(wc -l <"$T/cues_r.txt") $cols $rows"
  got=$(jq -r '.sprite | "\(.tile_width)x\(.tile_height) \(.sheets) \(.tiles) \(.columns) \(.rows)"' "$obj")
  [ "$got" = "$want" ] || fail "$ctx: sprite (tile, sheets, tiles, columns, rows) '$got', the files say '$want'"
  near "$(jq -r .sprite.interval_s "$obj")" "$iv" 0.0001 || fail "$ctx: sprite.interval_s $(jq -r .sprite.interval_s "$obj"), want $iv"
  if jq -e '.url' "$obj" >/dev/null; then
    jq -e '.sprite.vtt_url == .url' "$obj" >/dev/null || fail "$ctx: sprite.vtt_url $(jq -r .sprite.vtt_url "$obj"), url $(jq -r .url "$obj")"
  fi
  return 0
}

# run_matrix SHARD SHARDS: the full matrix, every generated fixture x every
# preset of `vidq presets --json`, minus the pairs test_cli_cases.sh and
# test_cli_presets.sh run; pairs dealt round-robin over SHARDS test files so
# ctest runs them in parallel. Pairs that cannot be made (audio-m4a from a
# video-only input, remux-mp4 of ProRes) must be refused with their code.
run_matrix() {
  local shard=$1 shards=$2 i=0 p fx fixtures
  mapfile -t fixtures < <(media_list)
  for p in "${PRESET_NAMES[@]}"; do
    if [ -z "$(preset_row "$p")" ]; then
      fail "preset $p has no row in PRESET_TABLE (tests/integration/lib_cli.sh)"
      continue
    fi
    [ "$p" = mp4-720p ] && continue
    for fx in "${fixtures[@]}"; do
      [ "$fx" = h264_aac_640x360.mp4 ] && continue
      i=$((i + 1))
      [ $((i % shards)) -eq $((shard - 1)) ] || continue
      note "$fx -> $p"
      transcode_case "$p" "$fx"
    done
  done
}

# vtt_cues FILE: one line per WebVTT cue, "START END SHEET X Y W H" (times
# in seconds), or "BAD <line>" for a cue whose payload is not
# <file>#xywh=x,y,w,h.
vtt_cues() {
  awk '
    function secs(t,   p, n) { n = split(t, p, ":"); return n == 3 ? p[1] * 3600 + p[2] * 60 + p[3] : p[1] * 60 + p[2] }
    / --> / { start = secs($1); end = secs($3); getline pl
              if (match(pl, /^[A-Za-z0-9_.-]+#xywh=[0-9]+,[0-9]+,[0-9]+,[0-9]+$/)) {
                split(pl, a, "#xywh="); split(a[2], r, ",")
                printf "%.3f %.3f %s %d %d %d %d\n", start, end, a[1], r[1], r[2], r[3], r[4]
              } else print "BAD " pl }' "$1"
}

# check_sprite CTX INPUT DIR INTERVAL TILE_W COLS ROWS: DIR is a sprite
# output of INPUT (a tile TILE_W wide every INTERVAL s, COLS x ROWS a
# sheet), checked against ffprobe: thumbnails.vtt starts WEBVTT and has
# ceil(duration / INTERVAL) cues, cue i spanning [i*INTERVAL,
# min((i+1)*INTERVAL, duration)]; each names tile i of the layout (sheet
# i / (COLS*ROWS), row-major); tiles are TILE_W wide (or the source's width
# if smaller) with the displayed aspect; every sheet is an MJPEG of exactly
# the tiles it holds (cols*w x rows*h; only a lone sheet is narrower).
check_sprite() {
  local ctx=$1 in=$2 dir=$3 iv=$4 tw=$5 cols=$6 rows=$7 vtt=$3/thumbnails.vtt
  if [ ! -s "$vtt" ]; then fail "$ctx: no $vtt"; return 0; fi
  [ -e "$dir.part" ] && fail "$ctx: $dir.part left"
  [ "$(head -n 1 "$vtt" | tr -d '\r')" = WEBVTT ] || fail "$ctx: thumbnails.vtt does not start with WEBVTT"
  local fmt d start dw dh
  read -r fmt d start <<<"$(ffprobe -v error -show_entries format=format_name,duration,start_time -of json "$in" |
    jq -r '.format | "\(.format_name) \(.duration // 0) \(.start_time // 0)"')"
  # vidq takes a late start off Matroska's duration (it stores the end time).
  if [[ "$fmt" == matroska* ]] && fcmp "$start" ">" 0 && fcmp "$d" ">" "$start"; then
    d=$(awk -v d="$d" -v s="$start" 'BEGIN { print d - s }')
  fi
  load_facts I "$(input_facts "$in")"
  dw=$I_dw dh=$I_dh
  local want_n w h
  want_n=$(awk -v d="$d" -v i="$iv" 'BEGIN { n = d / i - 1e-6; c = int(n); if (c < n) c++; if (c < 1) c = 1; print c }')
  w=$(awk -v dw="$dw" -v t="$tw" 'BEGIN { x = dw < t ? dw : t; print 2 * int(x / 2 + 1e-9) }')
  vtt_cues "$vtt" > "$T/cues.txt"
  if grep -q '^BAD' "$T/cues.txt"; then fail "$ctx: bad cue payload: $(grep -m1 '^BAD' "$T/cues.txt")"; return 0; fi
  local n
  n=$(wc -l < "$T/cues.txt")
  [ "$n" -eq "$want_n" ] || fail "$ctx: $n cues, want ceil($d / $iv) = $want_n"
  h=$(awk 'NR == 1 { print $7 }' "$T/cues.txt")
  [ "$(awk 'NR == 1 { print $6 }' "$T/cues.txt")" = "$w" ] || fail "$ctx: tile width $(awk 'NR == 1 { print $6 }' "$T/cues.txt"), want $w (source displayed ${dw}x$dh, tile width $tw)"
  awk -v w="$w" -v h="$h" -v a="$dw" -v b="$dh" 'BEGIN { r = (w / h) / (a / b); exit !(r > 0.96 && r < 1.04 && h % 2 == 0) }' ||
    fail "$ctx: tile ${w}x$h does not keep the displayed aspect ${dw}x$dh (or odd height)"
  local errs
  errs=$(awk -v iv="$iv" -v d="$d" -v w="$w" -v h="$h" -v cols="$cols" -v rows="$rows" '
    function abs(x) { return x < 0 ? -x : x }
    { i = NR - 1; ws = i * iv; we = (i + 1) * iv; if (we > d) we = d
      if (abs($1 - ws) > 0.0015 || abs($2 - we) > 0.0015) { printf "cue %d is %s --> %s, want %.3f --> %.3f; ", i, $1, $2, ws, we; bad++ }
      per = cols * rows; sheet = int(i / per); cell = i % per
      f = sprintf("sheet-%04d.jpg", sheet)
      if ($3 != f || $4 != (cell % cols) * w || $5 != int(cell / cols) * h || $6 != w || $7 != h) {
        printf "cue %d names %s#xywh=%d,%d,%d,%d, want %s#xywh=%d,%d,%d,%d; ", i, $3, $4, $5, $6, $7, f, (cell % cols) * w, int(cell / cols) * h, w, h; bad++ }
      if (bad > 3) exit }' "$T/cues.txt")
  [ -z "$errs" ] || fail "$ctx: $errs"
  # Each sheet: MJPEG, exactly the cells it holds.
  local sheets s cnt sw sh want_w want_h got
  sheets=$(awk '{ print $3 }' "$T/cues.txt" | sort -u)
  for s in $sheets; do
    if [ ! -s "$dir/$s" ]; then fail "$ctx: $s is named by the index but missing"; continue; fi
    cnt=$(awk -v f="$s" '$3 == f' "$T/cues.txt" | wc -l)
    sw=$cols
    [ "$(wc -w <<<"$sheets")" -eq 1 ] && [ "$cnt" -lt "$cols" ] && sw=$cnt
    sh=$(( (cnt + cols - 1) / cols ))
    want_w=$((sw * w)) want_h=$((sh * h))
    got=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height -of csv=p=0 "$dir/$s" || true)
    [ "$got" = "mjpeg,$want_w,$want_h" ] || fail "$ctx: $s is '$got', want 'mjpeg,$want_w,$want_h' ($cnt tiles, $cols columns)"
  done
  # Nothing else in the folder.
  local extra
  extra=$(cd "$dir" && ls -1 | grep -vx 'thumbnails.vtt' | grep -vxF "$sheets" || true)
  [ -z "$extra" ] || fail "$ctx: unexpected files in the sprite folder: $extra"
  return 0
}
