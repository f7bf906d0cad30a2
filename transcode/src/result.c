/* result.c - what a finished output is, as the API's JSON
 * (tc_output_result_to_json) and as a JSON copy of struct tc_output_result
 * for another process (tc_output_result_pack / _unpack).
 *
 * A file output is described by probing the file; a folder output ("hls",
 * "sprite") by what the run recorded while writing it (hls.c, sprite.c):
 * its encoders' parameters and the sizes it measured.
 *
 * Threading: any thread. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "transcode/tc.h"

/* Copy a JSON string into a fixed field (cut to fit; "" if not a string). */
static void copy_str(char *dst, size_t cap, const json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, cap, "%s", s ? s : "");
}

/* One variant: {"name", "uri", "bandwidth", "average_bandwidth", "codecs",
 * "video": {...}|null, "audio": {...}|null}. */
static json_t *variant_to_json(const struct tc_hls_variant *v)
{
    json_t *video = v->has_video ? tc_video_info_to_json(&v->video) : json_null();
    json_t *audio = v->has_audio ? tc_audio_info_to_json(&v->audio) : json_null();
    if (!video || !audio) {
        json_decref(video);
        json_decref(audio);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:o, s:o}", "name", v->name, "uri", v->uri,
                     "bandwidth", (json_int_t)v->bandwidth, "average_bandwidth",
                     (json_int_t)v->average_bandwidth, "codecs", v->codecs, "video", video, "audio",
                     audio);
}

static json_t *variants_to_json(const struct tc_output_result *res)
{
    json_t *list = json_array();
    for (int k = 0; list && k < res->n_variants && k < TC_HLS_MAX_VARIANTS; k++) {
        if (json_array_append_new(list, variant_to_json(&res->variants[k])) < 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static json_t *sprite_to_json(const struct tc_sprite_result *s)
{
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:f}", "tile_width", s->tile_width,
                     "tile_height", s->tile_height, "columns", s->columns, "rows", s->rows,
                     "sheet_width", s->sheet_width, "sheet_height", s->sheet_height, "sheets",
                     s->sheets, "tiles", (json_int_t)s->tiles, "interval_s", s->interval_s);
}

/* A stream object with "copied": copied added; NULL stays NULL. */
static json_t *with_copied(json_t *stream, int copied)
{
    if (json_is_object(stream) && json_object_set_new(stream, "copied", json_boolean(copied)) < 0) {
        json_decref(stream);
        return NULL;
    }
    return stream;
}

/* "hls": the top variant's video, the audio rendition's audio, and every
 * variant; "sprite": the first sheet as video, and the layout. */
static json_t *folder_to_json(const struct tc_output *out, const struct tc_output_result *res)
{
    json_t *video = NULL, *audio = NULL, *ext = NULL;
    const char *ext_name;
    if (!strcmp(out->spec.container, "hls")) {
        ext_name = "renditions";
        ext = variants_to_json(res);
        const struct tc_hls_variant *top = res->n_variants > 0 ? &res->variants[0] : NULL;
        if (top && top->has_video && !(video = with_copied(tc_video_info_to_json(&top->video), 0)))
            goto nomem;
        if (top && top->has_audio && !(audio = with_copied(tc_audio_info_to_json(&top->audio), 0)))
            goto nomem;
    } else {
        ext_name = "sprite";
        ext = sprite_to_json(&res->sprite);
        if (res->sprite.sheets > 0 &&
            !(video = json_pack("{s:s, s:i, s:i, s:s, s:b}", "codec", "mjpeg", "width",
                                res->sprite.sheet_width, "height", res->sprite.sheet_height,
                                "pix_fmt", "yuvj420p", "copied", 0)))
            goto nomem;
    }
    if (!ext)
        goto nomem;
    return json_pack("{s:I, s:f, s:o, s:o, s:o}", "size", (json_int_t)res->size, "duration_s",
                     res->duration_s, "video", video ? video : json_null(), "audio",
                     audio ? audio : json_null(), ext_name, ext);
nomem:
    json_decref(video);
    json_decref(audio);
    json_decref(ext);
    return NULL;
}

json_t *tc_output_result_to_json(const struct tc_output *out, const struct tc_output_result *res)
{
    json_t *video = NULL, *audio = NULL;
    double duration = res->duration_s;
    struct tc_media_info info;
    if (tc_container_is_folder(out->spec.container))
        return folder_to_json(out, res);
    if (out->path && tc_probe(out->path, &info, NULL) == 0) {
        json_t *in = tc_media_info_to_json(&info, NULL);
        if (!in)
            return NULL;
        video = json_incref(json_object_get(in, "video"));
        audio = json_incref(json_object_get(in, "audio"));
        json_decref(in);
        if (info.duration_s > 0)
            duration = info.duration_s;
        video = with_copied(video, res->video_copied);
        audio = with_copied(audio, res->audio_copied);
        if ((info.has_video && !video) || (info.has_audio && !audio)) {
            json_decref(video);
            json_decref(audio);
            return NULL;
        }
    }
    return json_pack("{s:I, s:f, s:o, s:o}", "size", (json_int_t)res->size, "duration_s", duration,
                     "video", video ? video : json_null(), "audio", audio ? audio : json_null());
}

json_t *tc_output_result_pack(const struct tc_output_result *res)
{
    json_t *variants = variants_to_json(res);
    json_t *sprite = sprite_to_json(&res->sprite);
    if (!variants || !sprite) {
        json_decref(variants);
        json_decref(sprite);
        return NULL;
    }
    return json_pack("{s:I, s:f, s:b, s:b, s:o, s:o}", "size", (json_int_t)res->size, "duration_s",
                     res->duration_s, "video_copied", res->video_copied, "audio_copied",
                     res->audio_copied, "variants", variants, "sprite", sprite);
}

static int video_from_json(json_t *j, struct tc_video_info *vi)
{
    json_t *codec, *profile, *pix_fmt;
    json_int_t bit_rate;
    memset(vi, 0, sizeof(*vi));
    vi->level = -1;
    if (json_unpack(j, "{s:o, s:o, s:o, s:i, s:i, s:F, s:i, s:i, s:i, s:i, s:b, s:I}", "codec",
                    &codec, "profile", &profile, "pix_fmt", &pix_fmt, "width", &vi->width, "height",
                    &vi->height, "fps", &vi->fps, "bit_depth", &vi->bit_depth, "display_width",
                    &vi->display_width, "display_height", &vi->display_height, "rotation",
                    &vi->rotation, "interlaced", &vi->interlaced, "bit_rate", &bit_rate) < 0)
        return TC_EINVAL;
    copy_str(vi->codec, sizeof(vi->codec), codec);
    copy_str(vi->profile, sizeof(vi->profile), profile);
    copy_str(vi->pix_fmt, sizeof(vi->pix_fmt), pix_fmt);
    vi->bit_rate = bit_rate;
    return 0;
}

static int audio_from_json(json_t *j, struct tc_audio_info *ai)
{
    json_t *codec;
    json_int_t bit_rate;
    memset(ai, 0, sizeof(*ai));
    if (json_unpack(j, "{s:o, s:i, s:i, s:I}", "codec", &codec, "channels", &ai->channels,
                    "sample_rate", &ai->sample_rate, "bit_rate", &bit_rate) < 0)
        return TC_EINVAL;
    copy_str(ai->codec, sizeof(ai->codec), codec);
    ai->bit_rate = bit_rate;
    return 0;
}

static int variant_from_json(json_t *j, struct tc_hls_variant *v)
{
    json_t *name, *uri, *codecs, *video, *audio;
    json_int_t bw, avg;
    if (json_unpack(j, "{s:o, s:o, s:I, s:I, s:o, s:o, s:o}", "name", &name, "uri", &uri,
                    "bandwidth", &bw, "average_bandwidth", &avg, "codecs", &codecs, "video", &video,
                    "audio", &audio) < 0)
        return TC_EINVAL;
    copy_str(v->name, sizeof(v->name), name);
    copy_str(v->uri, sizeof(v->uri), uri);
    copy_str(v->codecs, sizeof(v->codecs), codecs);
    v->bandwidth = bw;
    v->average_bandwidth = avg;
    v->has_video = !json_is_null(video);
    v->has_audio = !json_is_null(audio);
    if ((v->has_video && video_from_json(video, &v->video) < 0) ||
        (v->has_audio && audio_from_json(audio, &v->audio) < 0))
        return TC_EINVAL;
    return 0;
}

int tc_output_result_unpack(json_t *j, struct tc_output_result *res)
{
    json_t *variants, *v;
    json_int_t size, tiles;
    struct tc_sprite_result *s = &res->sprite;
    size_t k;
    memset(res, 0, sizeof(*res));
    if (json_unpack(j, "{s:I, s:F, s:b, s:b, s:o, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:F}}",
                    "size", &size, "duration_s", &res->duration_s, "video_copied",
                    &res->video_copied, "audio_copied", &res->audio_copied, "variants", &variants,
                    "sprite", "tile_width", &s->tile_width, "tile_height", &s->tile_height,
                    "columns", &s->columns, "rows", &s->rows, "sheet_width", &s->sheet_width,
                    "sheet_height", &s->sheet_height, "sheets", &s->sheets, "tiles", &tiles,
                    "interval_s", &s->interval_s) < 0 ||
        !json_is_array(variants))
        goto bad;
    res->size = size;
    s->tiles = tiles;
    json_array_foreach(variants, k, v)
    {
        if (k >= TC_HLS_MAX_VARIANTS || variant_from_json(v, &res->variants[k]) < 0)
            goto bad;
        res->n_variants = (int)k + 1;
    }
    return 0;
bad:
    memset(res, 0, sizeof(*res));
    return TC_EINVAL;
}
