/* spec.c - output specs: parse and validate the API's JSON (every error
 * names its field), print them back, and check one against a probed input.
 *
 * Threading: pure functions; any thread. */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "transcode/tc.h"
#include "internal.h"

static const char *const containers[] = {"mp4", "webm", "mkv", "hls", "m4a",
                                         "mp3", "ogg", "jpg", "sprite"};
static const char *const video_codecs[] = {"h264", "hevc", "vp9", "av1", "copy", "mjpeg"};
static const char *const audio_codecs[] = {"aac", "opus", "mp3", "copy"};
static const char *const segment_formats[] = {"ts", "fmp4"};
static const char *const hdr_modes[] = {"auto", "tonemap", "keep"};
static const char *const speeds[] = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                     "medium",    "slow",      "slower",   "veryslow", "placebo"};

/* jansson's iteration macros take a non-const object; nothing is written. */
static json_t *unconst(const json_t *o)
{
    return (json_t *)(uintptr_t)o;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return 1;
    return 0;
}

static int bad(struct tc_error *err, const char *field, const char *why)
{
    return tc_error_set(err, TC_EINVALID_OUTPUT, "%s: %s", field, why);
}

/* A string member that must be one of list; copied into dst. */
static int get_enum(const json_t *v, const char *field, const char *const *list, size_t n,
                    char *dst, size_t dstsz, struct tc_error *err)
{
    if (!json_is_string(v))
        return bad(err, field, "must be a string");
    const char *s = json_string_value(v);
    if (!in_list(s, list, n) || strlen(s) >= dstsz)
        return tc_error_set(err, TC_EINVALID_OUTPUT, "%s: unknown value '%.32s'", field, s);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int get_int(const json_t *v, const char *field, int64_t lo, int64_t hi, int64_t *out,
                   struct tc_error *err)
{
    if (!json_is_integer(v))
        return bad(err, field, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return tc_error_set(err, TC_EINVALID_OUTPUT, "%s: must be between %lld and %lld",
                            field, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

static int parse_video(const json_t *obj, struct tc_video_spec *vs, struct tc_error *err)
{
    const char *key;
    json_t *v;
    int64_t x = 0; /* set by get_int on success; -O3 cannot see that */
    int ret;
    json_object_foreach(unconst(obj), key, v) {
        if (strcmp(key, "codec") == 0) {
            ret = get_enum(v, "video.codec", video_codecs, N(video_codecs), vs->codec,
                           sizeof(vs->codec), err);
        } else if (strcmp(key, "max_height") == 0) {
            ret = get_int(v, "video.max_height", 16, 8192, &x, err);
            vs->max_height = (int)x;
        } else if (strcmp(key, "width") == 0) {
            ret = get_int(v, "video.width", 16, 8192, &x, err);
            vs->width = (int)x;
        } else if (strcmp(key, "height") == 0) {
            ret = get_int(v, "video.height", 16, 8192, &x, err);
            vs->height = (int)x;
        } else if (strcmp(key, "crf") == 0) {
            ret = get_int(v, "video.crf", 0, 63, &x, err);
            vs->crf = (int)x;
        } else if (strcmp(key, "bitrate") == 0) {
            ret = get_int(v, "video.bitrate", 10000, 500000000, &x, err);
            vs->bitrate = x;
        } else if (strcmp(key, "fps") == 0) {
            if (!json_is_number(v))
                return bad(err, "video.fps", "must be a number");
            double f = json_number_value(v);
            if (!(f >= 1.0 && f <= 240.0))
                return bad(err, "video.fps", "must be between 1 and 240");
            vs->fps = f;
            ret = 0;
        } else if (strcmp(key, "speed") == 0) {
            ret = get_enum(v, "video.speed", speeds, N(speeds), vs->speed, sizeof(vs->speed), err);
        } else if (strcmp(key, "hdr") == 0) {
            ret = get_enum(v, "video.hdr", hdr_modes, N(hdr_modes), vs->hdr, sizeof(vs->hdr), err);
        } else {
            return tc_error_set(err, TC_EINVALID_OUTPUT, "video.%.64s: unknown field", key);
        }
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int parse_audio(const json_t *obj, struct tc_audio_spec *as, struct tc_error *err)
{
    const char *key;
    json_t *v;
    int64_t x = 0; /* set by get_int on success; -O3 cannot see that */
    int ret;
    json_object_foreach(unconst(obj), key, v) {
        if (strcmp(key, "codec") == 0) {
            ret = get_enum(v, "audio.codec", audio_codecs, N(audio_codecs), as->codec,
                           sizeof(as->codec), err);
        } else if (strcmp(key, "bitrate") == 0) {
            ret = get_int(v, "audio.bitrate", 6000, 640000, &x, err);
            as->bitrate = x;
        } else if (strcmp(key, "channels") == 0) {
            ret = get_int(v, "audio.channels", 1, 2, &x, err);
            as->channels = (int)x;
        } else if (strcmp(key, "sample_rate") == 0) {
            ret = get_int(v, "audio.sample_rate", 8000, 96000, &x, err);
            as->sample_rate = (int)x;
        } else if (strcmp(key, "loudness_lufs") == 0) {
            if (!json_is_number(v))
                return bad(err, "audio.loudness_lufs", "must be a number (LUFS)");
            double f = json_number_value(v);
            if (!(f >= -70.0 && f <= -5.0))
                return bad(err, "audio.loudness_lufs", "must be between -70 and -5 (LUFS)");
            as->loudness_lufs = f;
            ret = 0;
        } else {
            return tc_error_set(err, TC_EINVALID_OUTPUT, "audio.%.64s: unknown field", key);
        }
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int parse_sprite(const json_t *obj, struct tc_sprite_spec *ss, struct tc_error *err)
{
    const char *key;
    json_t *v;
    int64_t x = 0; /* set by get_int on success; -O3 cannot see that */
    int ret;
    json_object_foreach(unconst(obj), key, v) {
        if (strcmp(key, "interval_s") == 0) {
            if (!json_is_number(v))
                return bad(err, "sprite.interval_s", "must be a number (seconds)");
            double f = json_number_value(v);
            if (!(f >= 0.1 && f <= 3600.0))
                return bad(err, "sprite.interval_s", "must be between 0.1 and 3600 seconds");
            ss->interval_s = f;
            ret = 0;
        } else if (strcmp(key, "columns") == 0) {
            ret = get_int(v, "sprite.columns", 1, 32, &x, err);
            ss->columns = (int)x;
        } else if (strcmp(key, "rows") == 0) {
            ret = get_int(v, "sprite.rows", 1, 32, &x, err);
            ss->rows = (int)x;
        } else {
            return tc_error_set(err, TC_EINVALID_OUTPUT, "sprite.%.64s: unknown field", key);
        }
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* A time in seconds of a clip or poster: a number, 0 .. 1e7. */
static int get_time(const json_t *v, const char *field, double *out, struct tc_error *err)
{
    if (!json_is_number(v))
        return bad(err, field, "must be a number (seconds)");
    double f = json_number_value(v);
    if (!(f >= 0.0 && f <= 1e7))
        return bad(err, field, "must be between 0 and 10000000 seconds");
    *out = f;
    return 0;
}

int tc_clip_parse(const json_t *obj, double *start_s, double *end_s, struct tc_error *err)
{
    const char *key;
    json_t *v;
    double start = 0.0, end = 0.0;
    int ret;
    if (!json_is_object(obj))
        return bad(err, "clip", "must be an object {\"start_s\": f, \"end_s\": f}");
    json_object_foreach(unconst(obj), key, v) {
        if (strcmp(key, "start_s") == 0) {
            if (json_is_null(v))
                continue;
            ret = get_time(v, "clip.start_s", &start, err);
        } else if (strcmp(key, "end_s") == 0) {
            if (json_is_null(v))
                continue;
            ret = get_time(v, "clip.end_s", &end, err);
            if (ret == 0 && end <= 0.0)
                return bad(err, "clip.end_s", "must be above 0");
        } else {
            return tc_error_set(err, TC_EINVALID_OUTPUT, "clip.%.64s: unknown field", key);
        }
        if (ret < 0)
            return ret;
    }
    if (end > 0.0 && end <= start)
        return bad(err, "clip", "end_s must be after start_s");
    *start_s = start;
    *end_s = end;
    return 0;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > TC_NAME_MAX - 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

/* The combinations a container can hold. */
static int check_combo(const struct tc_output_spec *s, struct tc_error *err)
{
    const char *c = s->container;
    const char *vc = s->video.codec, *ac = s->audio.codec;
    int audio_only = !strcmp(c, "m4a") || !strcmp(c, "mp3") || !strcmp(c, "ogg");

    if (!s->has_video && !s->has_audio)
        return bad(err, "video", "an output needs video or audio (both are null)");
    if (audio_only && s->has_video)
        return tc_error_set(err, TC_EINVALID_OUTPUT,
                            "video: container '%s' holds audio only (set video to null)", c);
    if (!strcmp(c, "sprite")) {
        const struct tc_video_spec *v = &s->video;
        if (!s->has_video)
            return bad(err, "video", "container 'sprite' needs video (omit it for the defaults)");
        if (s->has_audio)
            return bad(err, "audio", "container 'sprite' holds no audio (set audio to null)");
        if (strcmp(vc, "mjpeg") != 0)
            return tc_error_set(err, TC_EINVALID_OUTPUT,
                                "video.codec: '%s' cannot go into 'sprite' (omit it)", vc);
        if (v->crf >= 0 || v->bitrate || v->fps > 0 || v->speed[0])
            return bad(err, "video",
                       "container 'sprite' takes only width, height or max_height (the tile "
                       "size; the tile interval is sprite.interval_s)");
        if (v->width && (int64_t)v->width * s->sprite.columns > TC_SPRITE_MAX_SIDE)
            return tc_error_set(err, TC_EINVALID_OUTPUT,
                                "sprite.columns: %d tiles of video.width %d make a sheet wider "
                                "than %d pixels",
                                s->sprite.columns, v->width, TC_SPRITE_MAX_SIDE);
        return 0;
    }
    if (!strcmp(c, "jpg")) {
        if (!s->has_video)
            return bad(err, "video", "container 'jpg' needs video");
        if (s->has_audio)
            return bad(err, "audio", "container 'jpg' holds no audio (set audio to null)");
        if (strcmp(vc, "mjpeg") != 0)
            return tc_error_set(err, TC_EINVALID_OUTPUT,
                                "video.codec: '%s' cannot go into 'jpg' (omit it)", vc);
        return 0;
    }
    if (s->has_video) {
        static const char *const mp4v[] = {"h264", "hevc", "av1", "vp9", "copy"};
        static const char *const webmv[] = {"vp9", "av1", "copy"};
        static const char *const mkvv[] = {"h264", "hevc", "av1", "vp9", "copy"};
        static const char *const hlsv[] = {"h264", "hevc"};
        int ok = !strcmp(c, "mp4") ? in_list(vc, mp4v, N(mp4v))
                 : !strcmp(c, "webm") ? in_list(vc, webmv, N(webmv))
                 : !strcmp(c, "mkv") ? in_list(vc, mkvv, N(mkvv))
                 : !strcmp(c, "hls") ? in_list(vc, hlsv, N(hlsv))
                                     : 0;
        if (!ok)
            return tc_error_set(err, TC_EINVALID_OUTPUT,
                                "video.codec: '%s' cannot go into container '%s'", vc, c);
        if (!strcmp(vc, "copy") && (s->video.max_height || s->video.width || s->video.height ||
                                    s->video.crf >= 0 || s->video.bitrate || s->video.fps > 0))
            return bad(err, "video.codec", "'copy' takes no size, crf, bitrate or fps");
        if (s->video.crf > 51 && (!strcmp(vc, "h264") || !strcmp(vc, "hevc")))
            return tc_error_set(err, TC_EINVALID_OUTPUT, "video.crf: %s takes 0..51", vc);
    }
    if (s->has_audio) {
        static const char *const mp4a[] = {"aac", "mp3", "opus", "copy"};
        static const char *const webma[] = {"opus", "copy"};
        static const char *const mkva[] = {"aac", "mp3", "opus", "copy"};
        static const char *const hlsa[] = {"aac"};
        static const char *const m4aa[] = {"aac", "copy"};
        static const char *const mp3a[] = {"mp3", "copy"};
        static const char *const ogga[] = {"opus", "copy"};
        int ok = !strcmp(c, "mp4") ? in_list(ac, mp4a, N(mp4a))
                 : !strcmp(c, "webm") ? in_list(ac, webma, N(webma))
                 : !strcmp(c, "mkv") ? in_list(ac, mkva, N(mkva))
                 : !strcmp(c, "hls") ? in_list(ac, hlsa, N(hlsa))
                 : !strcmp(c, "m4a") ? in_list(ac, m4aa, N(m4aa))
                 : !strcmp(c, "mp3") ? in_list(ac, mp3a, N(mp3a))
                 : !strcmp(c, "ogg") ? in_list(ac, ogga, N(ogga))
                                     : 0;
        if (!ok)
            return tc_error_set(err, TC_EINVALID_OUTPUT,
                                "audio.codec: '%s' cannot go into container '%s'", ac, c);
        if (!strcmp(ac, "copy") && (s->audio.bitrate || s->audio.channels || s->audio.sample_rate))
            return bad(err, "audio.codec", "'copy' takes no bitrate, channels or sample_rate");
    }
    return 0;
}

int tc_spec_parse(const json_t *obj, struct tc_output_spec *spec, struct tc_error *err)
{
    struct tc_output_spec s;
    int ret;

    if (!json_is_object(obj))
        return tc_error_set(err, TC_EINVALID_OUTPUT, "an output spec must be a JSON object");
    memset(&s, 0, sizeof(s));
    s.video.crf = -1;

    /* A spec may start from a preset and override some fields. */
    json_t *pv = json_object_get(obj, "preset");
    if (pv && !json_is_null(pv)) {
        if (!json_is_string(pv))
            return bad(err, "preset", "must be a string");
        if (tc_preset_find(json_string_value(pv), &s, NULL) < 0)
            return tc_error_set(err, TC_EINVALID_OUTPUT, "preset: no such preset '%.64s'",
                                json_string_value(pv));
    }

    const char *key;
    json_t *v;
    int saw_container = s.container[0] != '\0';
    int saw_video = 0, saw_sprite = 0;
    json_object_foreach(unconst(obj), key, v) {
        if (strcmp(key, "preset") == 0)
            continue;
        if (strcmp(key, "name") == 0) {
            if (!json_is_string(v))
                return bad(err, "name", "must be a string");
            if (!name_ok(json_string_value(v)))
                return bad(err, "name", "must be 1 to 63 characters of A-Z a-z 0-9 _ -");
            snprintf(s.name, sizeof(s.name), "%s", json_string_value(v));
        } else if (strcmp(key, "container") == 0) {
            ret = get_enum(v, "container", containers, N(containers), s.container,
                           sizeof(s.container), err);
            if (ret < 0)
                return ret;
            saw_container = 1;
        } else if (strcmp(key, "threads") == 0) {
            int64_t x = 0; /* set by get_int on success; -O3 cannot see that */
            if ((ret = get_int(v, "threads", 1, 64, &x, err)) < 0)
                return ret;
            s.threads = (int)x;
        } else if (strcmp(key, "auto_copy") == 0) {
            if (!json_is_boolean(v))
                return bad(err, "auto_copy", "must be true or false");
            s.no_auto_copy = !json_is_true(v);
        } else if (strcmp(key, "video") == 0) {
            saw_video = 1;
            if (json_is_null(v)) {
                s.has_video = 0;
                memset(&s.video, 0, sizeof(s.video));
                s.video.crf = -1;
                continue;
            }
            if (!json_is_object(v))
                return bad(err, "video", "must be an object or null");
            if (!s.has_video) {
                memset(&s.video, 0, sizeof(s.video));
                s.video.crf = -1;
            }
            s.has_video = 1;
            if ((ret = parse_video(v, &s.video, err)) < 0)
                return ret;
        } else if (strcmp(key, "audio") == 0) {
            if (json_is_null(v)) {
                s.has_audio = 0;
                memset(&s.audio, 0, sizeof(s.audio));
                continue;
            }
            if (!json_is_object(v))
                return bad(err, "audio", "must be an object or null");
            if (!s.has_audio)
                memset(&s.audio, 0, sizeof(s.audio));
            s.has_audio = 1;
            if ((ret = parse_audio(v, &s.audio, err)) < 0)
                return ret;
        } else if (strcmp(key, "sprite") == 0) {
            if (!json_is_object(v))
                return bad(err, "sprite", "must be an object");
            saw_sprite = 1;
            if ((ret = parse_sprite(v, &s.sprite, err)) < 0)
                return ret;
        } else if (strcmp(key, "segment_format") == 0) {
            ret = get_enum(v, "segment_format", segment_formats, N(segment_formats),
                           s.segment_format, sizeof(s.segment_format), err);
            if (ret < 0)
                return ret;
        } else if (strcmp(key, "at_s") == 0) {
            if ((ret = get_time(v, "at_s", &s.at_s, err)) < 0)
                return ret;
            s.has_at_s = 1;
        } else if (strcmp(key, "clip") == 0) {
            if (json_is_null(v))
                continue;
            if ((ret = tc_clip_parse(v, &s.clip_start_s, &s.clip_end_s, err)) < 0)
                return ret;
        } else if (strcmp(key, "segment_seconds") == 0) {
            if (!json_is_number(v))
                return bad(err, "segment_seconds", "must be a number");
            double d = json_number_value(v);
            if (!(d >= 2.0 && d <= 10.0))
                return bad(err, "segment_seconds", "must be between 2 and 10");
            s.segment_seconds = d;
        } else {
            return tc_error_set(err, TC_EINVALID_OUTPUT, "%.64s: unknown field", key);
        }
    }
    if (!saw_container)
        return bad(err, "container", "is required");
    if (!strcmp(s.container, "sprite")) {
        /* {"container": "sprite"} alone is a sheet with the defaults. */
        if (!saw_video && !s.has_video) {
            s.has_video = 1;
            memset(&s.video, 0, sizeof(s.video));
            s.video.crf = -1;
        }
        if (!s.video.width && !s.video.height && !s.video.max_height)
            s.video.width = 160;
        if (s.sprite.interval_s <= 0)
            s.sprite.interval_s = 5.0;
        if (!s.sprite.columns)
            s.sprite.columns = 10;
        if (!s.sprite.rows)
            s.sprite.rows = 10;
    } else if (saw_sprite) {
        return bad(err, "sprite", "only for container 'sprite'");
    } else {
        memset(&s.sprite, 0, sizeof(s.sprite));
    }
    if (!s.name[0])
        snprintf(s.name, sizeof(s.name), "%s", s.preset[0] ? s.preset : "output");
    if ((!strcmp(s.container, "jpg") || !strcmp(s.container, "sprite")) && s.has_video &&
        !s.video.codec[0])
        snprintf(s.video.codec, sizeof(s.video.codec), "mjpeg");
    if (s.has_video && !s.video.codec[0])
        return bad(err, "video.codec", "is required");
    if (s.has_audio && !s.audio.codec[0])
        return bad(err, "audio.codec", "is required");
    if (strcmp(s.container, "hls") != 0) {
        if (s.segment_format[0])
            return bad(err, "segment_format", "is for container 'hls' only");
        if (s.segment_seconds > 0)
            return bad(err, "segment_seconds", "is for container 'hls' only");
    } else if (s.has_video && !strcmp(s.video.codec, "hevc")) {
        /* Apple players take HEVC in HLS from fMP4 segments only. */
        if (!strcmp(s.segment_format, "ts"))
            return bad(err, "segment_format",
                       "HEVC in HLS needs 'fmp4' segments (Apple players do not play HEVC in MPEG-TS)");
        snprintf(s.segment_format, sizeof(s.segment_format), "fmp4");
    }
    if ((ret = check_combo(&s, err)) < 0)
        return ret;
    if (s.has_at_s && strcmp(s.container, "jpg") != 0)
        return bad(err, "at_s", "is for container 'jpg' only (the poster's time)");
    if (s.has_video && !strcmp(s.video.hdr, "keep") && strcmp(s.video.codec, "hevc") != 0 &&
        strcmp(s.video.codec, "av1") != 0 && strcmp(s.video.codec, "vp9") != 0)
        return tc_error_set(err, TC_EINVALID_OUTPUT,
                            "video.hdr: 'keep' needs a codec that carries HDR (hevc, av1 or vp9), "
                            "not '%s' (use 'tonemap' or 'auto')", s.video.codec);
    if (s.has_video && !strcmp(s.video.hdr, "tonemap") && !strcmp(s.video.codec, "copy"))
        return bad(err, "video.hdr", "'tonemap' cannot go with codec 'copy' (a copy keeps the "
                                     "pictures as they are)");
    if (s.has_audio && s.audio.loudness_lufs != 0.0 && !strcmp(s.audio.codec, "copy"))
        return bad(err, "audio.loudness_lufs", "cannot go with codec 'copy' (a copy keeps the "
                                               "level as it is)");
    /* A spec that changed a preset's fields is custom, unless unchanged. */
    if (s.preset[0]) {
        struct tc_output_spec p;
        if (tc_preset_find(s.preset, &p, NULL) == 0 &&
            (memcmp(&p.video, &s.video, sizeof(p.video)) != 0 ||
             memcmp(&p.audio, &s.audio, sizeof(p.audio)) != 0 ||
             memcmp(&p.sprite, &s.sprite, sizeof(p.sprite)) != 0 || p.has_video != s.has_video ||
             p.has_audio != s.has_audio || p.no_auto_copy != s.no_auto_copy ||
             p.has_at_s != s.has_at_s || p.at_s != s.at_s ||
             strcmp(p.container, s.container) != 0 ||
             strcmp(p.segment_format, s.segment_format) != 0 ||
             p.segment_seconds != s.segment_seconds))
            s.preset[0] = '\0';
    }
    *spec = s;
    return 0;
}

json_t *tc_spec_to_json(const struct tc_output_spec *spec)
{
    json_t *o = json_pack("{s:s, s:s}", "name", spec->name, "container", spec->container);
    if (!o)
        return NULL;
    int bad_set = 0;
    if (spec->preset[0])
        bad_set |= json_object_set_new(o, "preset", json_string(spec->preset));
    if (spec->no_auto_copy)
        bad_set |= json_object_set_new(o, "auto_copy", json_false());
    if (spec->threads)
        bad_set |= json_object_set_new(o, "threads", json_integer(spec->threads));
    if (spec->has_video) {
        const struct tc_video_spec *v = &spec->video;
        json_t *vo = json_pack("{s:s}", "codec", v->codec);
        if (!vo)
            goto fail;
        if (v->max_height)
            bad_set |= json_object_set_new(vo, "max_height", json_integer(v->max_height));
        if (v->width)
            bad_set |= json_object_set_new(vo, "width", json_integer(v->width));
        if (v->height)
            bad_set |= json_object_set_new(vo, "height", json_integer(v->height));
        if (v->crf >= 0)
            bad_set |= json_object_set_new(vo, "crf", json_integer(v->crf));
        if (v->bitrate)
            bad_set |= json_object_set_new(vo, "bitrate", json_integer(v->bitrate));
        if (v->fps > 0)
            bad_set |= json_object_set_new(vo, "fps", json_real(v->fps));
        if (v->speed[0])
            bad_set |= json_object_set_new(vo, "speed", json_string(v->speed));
        if (v->hdr[0])
            bad_set |= json_object_set_new(vo, "hdr", json_string(v->hdr));
        bad_set |= json_object_set_new(o, "video", vo);
    } else {
        bad_set |= json_object_set_new(o, "video", json_null());
    }
    if (spec->has_audio) {
        const struct tc_audio_spec *a = &spec->audio;
        json_t *ao = json_pack("{s:s}", "codec", a->codec);
        if (!ao)
            goto fail;
        if (a->bitrate)
            bad_set |= json_object_set_new(ao, "bitrate", json_integer(a->bitrate));
        if (a->channels)
            bad_set |= json_object_set_new(ao, "channels", json_integer(a->channels));
        if (a->sample_rate)
            bad_set |= json_object_set_new(ao, "sample_rate", json_integer(a->sample_rate));
        if (a->loudness_lufs != 0.0)
            bad_set |= json_object_set_new(ao, "loudness_lufs", json_real(a->loudness_lufs));
        bad_set |= json_object_set_new(o, "audio", ao);
    } else {
        bad_set |= json_object_set_new(o, "audio", json_null());
    }
    if (!strcmp(spec->container, "sprite"))
        bad_set |= json_object_set_new(o, "sprite",
                                       json_pack("{s:f, s:i, s:i}", "interval_s",
                                                 spec->sprite.interval_s, "columns",
                                                 spec->sprite.columns, "rows", spec->sprite.rows));
    if (spec->segment_format[0])
        bad_set |= json_object_set_new(o, "segment_format", json_string(spec->segment_format));
    if (spec->segment_seconds > 0)
        bad_set |= json_object_set_new(o, "segment_seconds", json_real(spec->segment_seconds));
    if (spec->has_at_s)
        bad_set |= json_object_set_new(o, "at_s", json_real(spec->at_s));
    if (spec->clip_start_s > 0 || spec->clip_end_s > 0) {
        json_t *c = json_object();
        if (!c)
            goto fail;
        if (spec->clip_start_s > 0)
            bad_set |= json_object_set_new(c, "start_s", json_real(spec->clip_start_s));
        if (spec->clip_end_s > 0)
            bad_set |= json_object_set_new(c, "end_s", json_real(spec->clip_end_s));
        bad_set |= json_object_set_new(o, "clip", c);
    }
    if (bad_set)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

int tc_copy_container_ok(const char *container, const char *codec)
{
    static const char *const mp4[] = {"h264", "hevc", "av1", "vp9", "mpeg4", "mpeg2video",
                                      "mjpeg", "aac", "mp3", "ac3", "eac3", "opus", "alac",
                                      "mp2"};
    static const char *const webm[] = {"vp8", "vp9", "av1", "opus", "vorbis"};
    static const char *const m4a[] = {"aac", "alac"};
    static const char *const mp3[] = {"mp3"};
    static const char *const ogg[] = {"opus", "vorbis", "flac"};
    if (!strcmp(container, "mp4"))
        return in_list(codec, mp4, N(mp4));
    if (!strcmp(container, "webm"))
        return in_list(codec, webm, N(webm));
    if (!strcmp(container, "m4a"))
        return in_list(codec, m4a, N(m4a));
    if (!strcmp(container, "mp3"))
        return in_list(codec, mp3, N(mp3));
    if (!strcmp(container, "ogg"))
        return in_list(codec, ogg, N(ogg));
    return !strcmp(container, "mkv");
}

int tc_clip_check(double start_s, double end_s, const struct tc_media_info *info,
                  struct tc_error *err)
{
    double d = info->duration_s;
    if (d <= 0 || (start_s <= 0 && end_s <= 0))
        return 0;
    if (start_s >= d)
        return tc_error_set(err, TC_EINVAL,
                            "clip: start_s %g is outside the input, which lasts %.3f s", start_s, d);
    /* A few hundredths over (an end rounded up) is the end. */
    if (end_s > d + 0.1)
        return tc_error_set(err, TC_EINVAL,
                            "clip: end_s %g is outside the input, which lasts %.3f s", end_s, d);
    return 0;
}

int tc_spec_check_input(const struct tc_output_spec *spec, const struct tc_media_info *info,
                        struct tc_error *err)
{
    int ret;
    int video = spec->has_video && info->has_video;
    int audio = spec->has_audio && info->has_audio;

    if (!strcmp(spec->container, "sprite")) {
        if (!info->has_video || !spec->has_video)
            return tc_error_set(err, TC_EINVALID_OUTPUT,
                                "output '%s': sprite sheets need a video stream and the input has none",
                                spec->name);
        int64_t n = tc_sprite_cue_count(info->duration_s, spec->sprite.interval_s);
        if (n > TC_SPRITE_MAX_TILES)
            return tc_error_set(err, TC_EINVALID_OUTPUT,
                                "output '%s': sprite.interval_s %g over %.0f s makes %lld tiles, "
                                "at most %d (raise the interval)",
                                spec->name, spec->sprite.interval_s, info->duration_s,
                                (long long)n, TC_SPRITE_MAX_TILES);
    }
    if ((ret = tc_clip_check(spec->clip_start_s, spec->clip_end_s, info, err)) < 0)
        return ret;
    if (spec->has_at_s && info->duration_s > 0) {
        double end = spec->clip_end_s > 0 ? spec->clip_end_s : info->duration_s;
        double len = end - spec->clip_start_s;
        if (spec->at_s >= len)
            return tc_error_set(err, TC_EINVALID_OUTPUT,
                                "output '%s': at_s %g is past the end of the video (%.3f s%s)",
                                spec->name, spec->at_s, len, spec->clip_end_s > 0 || spec->clip_start_s > 0 ? " clipped" : "");
    }
    if (!strcmp(spec->container, "jpg") && !info->has_video)
        return tc_error_set(err, TC_EINVALID_OUTPUT,
                            "output '%s': a JPEG thumbnail needs a video stream and the input has none",
                            spec->name);
    if (!video && !audio)
        return tc_error_set(err, TC_EINVALID_OUTPUT,
                            "output '%s': the input has no %s stream for it", spec->name,
                            spec->has_audio && !spec->has_video ? "audio"
                            : spec->has_video && !spec->has_audio ? "video"
                                                                  : "audio or video");
    if (video && !strcmp(spec->video.codec, "copy") && !tc_copy_container_ok(spec->container, info->video.codec))
        return tc_error_set(err, TC_ENOT_REMUXABLE,
                            "output '%s': video codec '%s' cannot be copied into %s (transcode it instead)",
                            spec->name, info->video.codec, spec->container);
    if (audio && !strcmp(spec->audio.codec, "copy") && !tc_copy_container_ok(spec->container, info->audio.codec))
        return tc_error_set(err, TC_ENOT_REMUXABLE,
                            "output '%s': audio codec '%s' cannot be copied into %s (transcode it instead)",
                            spec->name, info->audio.codec, spec->container);
    return 0;
}
