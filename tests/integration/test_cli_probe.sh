#!/usr/bin/env bash
# `vidq probe FILE` on every generated fixture: valid JSON in the shape of
# API.md's job "input" object, and the same facts as ffprobe: size, format,
# duration, video codec/size/fps (or null), audio codec/channels/rate (or null).
# ctest-labels: cli
# ctest-timeout: 180
set -euo pipefail
source "$(dirname "$0")/lib_cli.sh"
skip_if_not_built
ensure_media

mapfile -t fixtures < <(media_list)
for fx in "${fixtures[@]}"; do
  f="$VIDQ_MEDIA/$fx"
  run_vidq probe "$f"
  if [ "$RC" -ne 0 ]; then fail "probe $fx: exit $RC: $(head -c 300 "$T/err.txt")"; continue; fi
  if ! jq -e 'type == "object"' "$T/out.txt" >/dev/null 2>&1; then
    fail "probe $fx: not a JSON object: $(head -c 300 "$T/out.txt")"; continue
  fi
  got=$(jq -c . "$T/out.txt")
  ref=$(ffprobe -v error -show_format -show_streams -of json "$f")
  size=$(stat -c %s "$f")
  content=$(jqv "$(facts "$f")" .dur)
  verdict=$(jq -n -r --argjson g "$got" --argjson r "$ref" --arg fx "$fx" \
      --argjson size "$size" --argjson content "$content" '
    def num: if . == null or . == "N/A" then null else tonumber end;
    def ratio: if . == null or . == "0/0" then null
      else (split("/") | map(tonumber)) as $x | if $x[1] == 0 then null else $x[0] / $x[1] end end;
    def near($a; $b; $tol): ($a != null and $b != null) and (($a - $b) | fabs) <= $tol;
    ([$r.streams[] | select(.codec_type == "video")] | first) as $v
    | ([$r.streams[] | select(.codec_type == "audio")] | first) as $a
    | ([$v.side_data_list[]? | select(.rotation != null) | .rotation] | first // 0) as $rot
    | ($r.format.duration | num) as $fd
    | [
        (if ($g | has("filename")) and $g.filename != $fx then "filename \($g.filename), want \($fx)" else empty end),
        (if $g.size != $size then "size \($g.size), want \($size)" else empty end),
        (if ($g.format | type) != "string" or ($g.format != $r.format.format_name
             and (($r.format.format_name | split(",")) | index($g.format)) == null)
           then "format \($g.format), ffprobe says \($r.format.format_name)" else empty end),
        (if ($g.duration_s | type) != "number" or
            ((near($g.duration_s; $fd; 0.1) or near($g.duration_s; $content; 0.1)) | not)
           then "duration_s \($g.duration_s), ffprobe says \($fd) (content \($content))" else empty end),
        (if $v == null then
           (if $g.video != null then "video \($g.video), want null" else empty end)
         elif ($g.video | type) != "object" then "video \($g.video), want an object"
         else
           (if $g.video.codec != $v.codec_name then "video codec \($g.video.codec), want \($v.codec_name)" else empty end),
           (if ([$g.video.width, $g.video.height] != [$v.width, $v.height])
               and ((($rot | fabs) == 90 and [$g.video.width, $g.video.height] == [$v.height, $v.width]) | not)
             then "video size \($g.video.width)x\($g.video.height), want \($v.width)x\($v.height) (rotation \($rot))" else empty end),
           (($v.avg_frame_rate | ratio) as $avg | ($v.r_frame_rate | ratio) as $rr
            | if (near($g.video.fps; $avg; 0.02 * ($avg // 0) + 0.01) or near($g.video.fps; $rr; 0.02 * ($rr // 0) + 0.01)) | not
              then "video fps \($g.video.fps), ffprobe says \($avg) avg / \($rr) r" else empty end)
         end),
        (if $a == null then
           (if $g.audio != null then "audio \($g.audio), want null" else empty end)
         elif ($g.audio | type) != "object" then "audio \($g.audio), want an object"
         else
           (if $g.audio.codec != $a.codec_name then "audio codec \($g.audio.codec), want \($a.codec_name)" else empty end),
           (if $g.audio.channels != $a.channels then "audio channels \($g.audio.channels), want \($a.channels)" else empty end),
           (if $g.audio.sample_rate != ($a.sample_rate | num) then "audio sample_rate \($g.audio.sample_rate), want \($a.sample_rate)" else empty end)
         end)
      ] | if length == 0 then "ok" else join("; ") end' 2>&1)
  [ "$verdict" = ok ] || fail "probe $fx: $verdict"
done
finish
