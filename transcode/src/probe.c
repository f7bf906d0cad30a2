/* probe.c - describe an input: container, duration, the best video and
 * audio stream, as a struct and as the API's "input" JSON object.
 *
 * Threading: any thread. */
#include <math.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>

#include "transcode/tc.h"
#include "internal.h"

int tc_stream_rotation(const AVStream *st)
{
    double theta = 0.0;
    const int32_t *m = (const int32_t *)av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    if (m) {
        theta = -av_display_rotation_get(m);
    } else {
        const AVDictionaryEntry *e = av_dict_get(st->metadata, "rotate", NULL, 0);
        if (e) {
            char *end = NULL;
            double v = strtod(e->value, &end);
            if (end != e->value && isfinite(v))
                theta = v;
        }
    }
    if (!isfinite(theta))
        return 0;
    int deg = (int)lround(theta) % 360;
    if (deg < 0)
        deg += 360;
    /* Only right angles are applied; anything else is shown as is. */
    int r = ((deg + 45) / 90 * 90) % 360;
    return abs(deg - r) <= 2 || abs(deg - r) >= 358 ? r : 0;
}

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

int tc_probe_input(const struct tc_input *in, struct tc_media_info *info, int *video_index,
                   int *audio_index, struct tc_error *err)
{
    AVFormatContext *fmt = in->fmt;
    int vi = -1, ai = -1;

    memset(info, 0, sizeof(*info));
    copy_str(info->format, sizeof(info->format), fmt->iformat->name);
    info->size = in->size;
    if (fmt->duration > 0 && fmt->duration != AV_NOPTS_VALUE)
        info->duration_s = fmt->duration / (double)AV_TIME_BASE;
    /* libavformat's Matroska writer stores the END time as the segment
     * Duration, so a file whose timestamps start late claims start + length:
     * take the start off. */
    if (!strcmp(fmt->iformat->name, "matroska,webm") && fmt->start_time != AV_NOPTS_VALUE &&
        fmt->start_time > 0) {
        double start = fmt->start_time / (double)AV_TIME_BASE;
        if (info->duration_s > start)
            info->duration_s -= start;
    }

    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        AVStream *st = fmt->streams[i];
        AVCodecParameters *par = st->codecpar;
        if (!avcodec_find_decoder(par->codec_id))
            continue;
        if (par->codec_type == AVMEDIA_TYPE_VIDEO && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC) &&
            par->width > 0 && par->height > 0) {
            if (vi < 0 || (int64_t)par->width * par->height >
                              (int64_t)fmt->streams[vi]->codecpar->width * fmt->streams[vi]->codecpar->height)
                vi = (int)i;
        } else if (par->codec_type == AVMEDIA_TYPE_AUDIO && par->ch_layout.nb_channels > 0 &&
                   par->sample_rate > 0) {
            if (ai < 0)
                ai = (int)i;
        }
    }
    if (vi < 0 && ai < 0)
        return tc_error_set(err, TC_EUNSUPPORTED, "no decodable audio or video stream");

    if (vi >= 0) {
        AVStream *st = fmt->streams[vi];
        AVCodecParameters *par = st->codecpar;
        struct tc_video_info *v = &info->video;
        if ((int64_t)par->width * par->height > TC_MAX_PIXELS)
            return tc_error_set(err, TC_EUNSUPPORTED, "video frame %dx%d is larger than allowed",
                                par->width, par->height);
        info->has_video = 1;
        copy_str(v->codec, sizeof(v->codec), avcodec_get_name(par->codec_id));
        copy_str(v->profile, sizeof(v->profile), avcodec_profile_name(par->codec_id, par->profile));
        const AVPixFmtDescriptor *d = av_pix_fmt_desc_get((enum AVPixelFormat)par->format);
        copy_str(v->pix_fmt, sizeof(v->pix_fmt), d ? d->name : "");
        v->bit_depth = d ? d->comp[0].depth : 0;
        v->width = par->width;
        v->height = par->height;
        v->rotation = tc_stream_rotation(st);
        AVRational sar = st->sample_aspect_ratio.num ? st->sample_aspect_ratio : par->sample_aspect_ratio;
        double dw = par->width;
        if (sar.num > 0 && sar.den > 0)
            dw = par->width * av_q2d(sar);
        v->display_width = (int)lround(dw);
        v->display_height = par->height;
        if (v->rotation == 90 || v->rotation == 270) {
            v->display_width = par->height;
            v->display_height = (int)lround(dw);
        }
        AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
        v->fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0.0;
        v->interlaced = par->field_order != AV_FIELD_UNKNOWN && par->field_order != AV_FIELD_PROGRESSIVE;
        v->level = par->level == FF_LEVEL_UNKNOWN ? -1 : par->level;
        v->bit_rate = par->bit_rate > 0 ? par->bit_rate : 0;
        if (info->duration_s <= 0 && st->duration > 0 && st->duration != AV_NOPTS_VALUE)
            info->duration_s = st->duration * av_q2d(st->time_base);
    }
    if (ai >= 0) {
        AVStream *st = fmt->streams[ai];
        AVCodecParameters *par = st->codecpar;
        info->has_audio = 1;
        copy_str(info->audio.codec, sizeof(info->audio.codec), avcodec_get_name(par->codec_id));
        info->audio.channels = par->ch_layout.nb_channels;
        info->audio.sample_rate = par->sample_rate;
        info->audio.bit_rate = par->bit_rate > 0 ? par->bit_rate : 0;
        if (info->duration_s <= 0 && st->duration > 0 && st->duration != AV_NOPTS_VALUE)
            info->duration_s = st->duration * av_q2d(st->time_base);
    }
    if (video_index)
        *video_index = vi;
    if (audio_index)
        *audio_index = ai;
    return 0;
}

int tc_probe(const char *path, struct tc_media_info *info, struct tc_error *err)
{
    struct tc_input *in = NULL;
    int ret = tc_input_open(path, NULL, &in, err);
    if (ret < 0)
        return ret;
    ret = tc_probe_input(in, info, NULL, NULL, err);
    tc_input_close(&in);
    return ret;
}

int tc_probe_fd(int fd, struct tc_media_info *info, struct tc_error *err)
{
    struct tc_input *in = NULL;
    int ret = tc_input_open_fd(fd, NULL, &in, err);
    if (ret < 0)
        return ret;
    ret = tc_probe_input(in, info, NULL, NULL, err);
    tc_input_close(&in);
    return ret;
}

json_t *tc_video_info_to_json(const struct tc_video_info *vi)
{
    return json_pack("{s:s, s:i, s:i, s:f, s:s, s:s, s:i, s:i, s:i, s:i, s:b, s:I}", "codec",
                     vi->codec, "width", vi->width, "height", vi->height, "fps", vi->fps,
                     "profile", vi->profile, "pix_fmt", vi->pix_fmt, "bit_depth", vi->bit_depth,
                     "display_width", vi->display_width, "display_height", vi->display_height,
                     "rotation", vi->rotation, "interlaced", vi->interlaced, "bit_rate",
                     (json_int_t)vi->bit_rate);
}

json_t *tc_audio_info_to_json(const struct tc_audio_info *ai)
{
    return json_pack("{s:s, s:i, s:i, s:I}", "codec", ai->codec, "channels", ai->channels,
                     "sample_rate", ai->sample_rate, "bit_rate", (json_int_t)ai->bit_rate);
}

json_t *tc_media_info_to_json(const struct tc_media_info *info, const char *filename)
{
    json_t *o = json_object();
    json_t *v = NULL, *a = NULL;
    if (!o)
        return NULL;
    int bad = 0;
    if (filename)
        bad |= json_object_set_new(o, "filename", json_string(filename));
    bad |= json_object_set_new(o, "size", json_integer(info->size));
    bad |= json_object_set_new(o, "format", json_string(info->format));
    bad |= json_object_set_new(o, "duration_s", json_real(info->duration_s));
    if (info->has_video) {
        v = tc_video_info_to_json(&info->video);
        bad |= !v;
        bad |= json_object_set_new(o, "video", v ? v : json_null());
    } else {
        bad |= json_object_set_new(o, "video", json_null());
    }
    if (info->has_audio) {
        a = tc_audio_info_to_json(&info->audio);
        bad |= !a;
        bad |= json_object_set_new(o, "audio", a ? a : json_null());
    } else {
        bad |= json_object_set_new(o, "audio", json_null());
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}
