/* encode.c - open and drive one encoder: codec choice and options from the
 * spec (x264/x265 preset and CRF, VP9/AV1 speed, AAC/Opus/MP3 bitrate),
 * threads from the run's budget (thread_count for x264/libvpx/mjpeg,
 * x265-params pools for libx265, svtav1-params lp for SVT-AV1), and
 * packets handed to the muxer.
 *
 * Audio encoders with a fixed frame size (AAC, MP3, Opus) get frames of
 * exactly that size from their filter chain's sink (see filter.c), which
 * keeps the samples in a FIFO between decoded frames and stamps each cut
 * frame with its exact time.
 *
 * Threading: the thread running the pipeline; codecs run their own
 * worker threads. */
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>

#include "transcode/tc.h"
#include "internal.h"

struct tc_encoder {
    AVCodecContext *ctx;
    AVPacket *pkt;
    int64_t last_pts;      /* video: keep pts strictly increasing */
    int64_t next_pts;      /* audio: where the next frame starts */
    int64_t frame_dur;     /* video: one frame in ctx->time_base, for pkt durations */
    int64_t prev_pts;      /* video: the frame before last_pts */
    AVPacket *held;        /* video: the last packet, written when its duration is known */
    int forced_kf;         /* video: keep the caller's pict_type (forced keyframes) */
    int64_t end_pts;       /* video: where the last frame ends */
    int64_t first_dts;     /* video: of the first packet */
    int64_t min_pts;       /* video: the earliest packet pts */
};

AVCodecContext *tc_encoder_ctx(struct tc_encoder *e)
{
    return e->ctx;
}

void tc_encoder_free(struct tc_encoder **e)
{
    if (!e || !*e)
        return;
    avcodec_free_context(&(*e)->ctx);
    av_packet_free(&(*e)->pkt);
    av_packet_free(&(*e)->held);
    av_free(*e);
    *e = NULL;
}

static int speed_index(const char *speed)
{
    static const char *const names[] = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                        "medium",    "slow",      "slower",   "veryslow", "placebo"};
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(speed, names[i]) == 0)
            return i;
    return 5; /* medium */
}

static const char *video_encoder_name(const char *codec)
{
    if (!strcmp(codec, "h264"))
        return "libx264";
    if (!strcmp(codec, "hevc"))
        return "libx265";
    if (!strcmp(codec, "vp9"))
        return "libvpx-vp9";
    if (!strcmp(codec, "av1"))
        return "libsvtav1";
    if (!strcmp(codec, "mjpeg"))
        return "mjpeg";
    return NULL;
}

static struct tc_encoder *encoder_alloc(const AVCodec *codec)
{
    struct tc_encoder *e = av_mallocz(sizeof(*e));
    if (!e)
        return NULL;
    e->ctx = avcodec_alloc_context3(codec);
    e->pkt = av_packet_alloc();
    e->held = av_packet_alloc();
    e->last_pts = e->prev_pts = e->end_pts = e->next_pts = AV_NOPTS_VALUE;
    e->first_dts = e->min_pts = AV_NOPTS_VALUE;
    if (!e->ctx || !e->pkt || !e->held)
        tc_encoder_free(&e);
    return e;
}

int tc_encoder_open_video(const struct tc_video_spec *vs, int w, int h, int pix_fmt, int tb_num,
                          int tb_den, int fr_num, int fr_den, int threads, int global_header,
                          int fixed_gop, const struct tc_colour *colour, struct tc_encoder **out,
                          struct tc_error *err)
{
    struct tc_encoder *e = NULL;
    AVDictionary *opts = NULL;
    int ret, r;
    const char *name = video_encoder_name(vs->codec);
    const AVCodec *codec = name ? avcodec_find_encoder_by_name(name) : NULL;

    *out = NULL;
    if (!codec)
        return tc_error_set(err, TC_EENCODE, "no encoder for video codec '%s'", vs->codec);
    if (!(e = encoder_alloc(codec)))
        return tc_error_set(err, TC_ENOMEM, "out of memory opening an encoder");
    AVCodecContext *c = e->ctx;
    c->width = w;
    c->height = h;
    c->pix_fmt = (enum AVPixelFormat)pix_fmt;
    c->sample_aspect_ratio = (AVRational){1, 1};
    c->time_base = (AVRational){tb_num, tb_den};
    if (fr_num > 0 && fr_den > 0)
        c->framerate = (AVRational){fr_num, fr_den};
    c->thread_count = threads;
    if (global_header)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (vs->bitrate > 0)
        c->bit_rate = vs->bitrate;
    /* The tags the encoder writes (VUI, sequence header) and the muxer
     * copies into the container (colour.c says what they are). */
    char hdr[320] = "";
    if (colour) {
        tc_colour_to_ctx(colour, c);
        if (!strcmp(vs->codec, "hevc") && tc_colour_is_hdr(colour->transfer))
            (void)tc_colour_x265_params(colour, hdr, sizeof(hdr));
        else if (!strcmp(vs->codec, "av1") && tc_colour_is_hdr(colour->transfer))
            (void)tc_colour_svtav1_params(colour, hdr, sizeof(hdr));
    }

    int si = speed_index(vs->speed[0] ? vs->speed : "medium");
    if (!strcmp(vs->codec, "h264")) {
        av_dict_set(&opts, "preset", vs->speed[0] ? vs->speed : "medium", 0);
        av_dict_set(&opts, "profile", "high", 0);
        if (vs->crf >= 0 && !vs->bitrate)
            av_dict_set_int(&opts, "crf", vs->crf, 0);
        if (fixed_gop) {
            e->forced_kf = 1;
            c->gop_size = 100000; /* keyframes come from the caller */
            av_dict_set(&opts, "x264-params", "scenecut=0", 0);
            av_dict_set(&opts, "forced-idr", "1", 0);
            if (vs->bitrate > 0) {
                c->rc_max_rate = vs->bitrate * 3 / 2;
                c->rc_buffer_size = (int)(vs->bitrate * 2);
            }
        }
    } else if (!strcmp(vs->codec, "hevc")) {
        av_dict_set(&opts, "preset", vs->speed[0] ? vs->speed : "medium", 0);
        if (vs->crf >= 0 && !vs->bitrate)
            av_dict_set_int(&opts, "crf", vs->crf, 0);
        /* libx265 ignores thread_count: its pool size is "pools". */
        char x265[512] = "log-level=error";
        if (fixed_gop) {
            /* As for x264: IDR frames only where the caller forces them,
             * closed GOPs so each segment decodes on its own. */
            e->forced_kf = 1;
            c->gop_size = 100000;
            av_dict_set(&opts, "forced-idr", "1", 0);
            snprintf(x265, sizeof(x265), "%s",
                     "log-level=error:scenecut=0:open-gop=0:min-keyint=1:keyint=100000");
            if (vs->bitrate > 0) {
                c->rc_max_rate = vs->bitrate * 3 / 2;
                c->rc_buffer_size = (int)(vs->bitrate * 2);
            }
        }
        if (threads > 0) {
            size_t used = strlen(x265);
            snprintf(x265 + used, sizeof(x265) - used, ":pools=%d", threads);
        }
        if (hdr[0]) {
            /* HDR10 SEI (mastering display, content light level): libx265
             * of FFmpeg 5.1 does not take them from the frames. */
            size_t used = strlen(x265);
            snprintf(x265 + used, sizeof(x265) - used, "%s", hdr);
        }
        av_dict_set(&opts, "x265-params", x265, 0);
    } else if (!strcmp(vs->codec, "vp9")) {
        static const int cpu_used[] = {8, 8, 7, 6, 5, 4, 3, 2, 1, 0};
        av_dict_set(&opts, "deadline", si <= 2 ? "realtime" : "good", 0);
        av_dict_set_int(&opts, "cpu-used", si <= 2 ? cpu_used[si] : (cpu_used[si] > 5 ? 5 : cpu_used[si]), 0);
        av_dict_set_int(&opts, "row-mt", 1, 0);
        if (vs->crf >= 0) {
            av_dict_set_int(&opts, "crf", vs->crf, 0);
            if (!vs->bitrate)
                c->bit_rate = 0;
        }
    } else if (!strcmp(vs->codec, "av1")) {
        static const int preset[] = {12, 11, 10, 9, 8, 7, 6, 5, 4, 3};
        av_dict_set_int(&opts, "preset", preset[si], 0);
        /* SVT-AV1 sizes its threads from "lp" (logical processors). */
        char svt[400] = "";
        if (threads > 0)
            snprintf(svt, sizeof(svt), "lp=%d", threads);
        if (hdr[0]) {
            size_t used = strlen(svt);
            /* (hdr starts with ':', which must not lead the list) */
            snprintf(svt + used, sizeof(svt) - used, "%s", used ? hdr : hdr + 1);
        }
        if (svt[0])
            av_dict_set(&opts, "svtav1-params", svt, 0);
        if (vs->crf >= 0 && !vs->bitrate)
            av_dict_set_int(&opts, "crf", vs->crf, 0);
    } else if (!strcmp(vs->codec, "mjpeg")) {
        c->flags |= AV_CODEC_FLAG_QSCALE;
        c->global_quality = FF_QP2LAMBDA * 3;
        c->color_range = AVCOL_RANGE_JPEG;
        c->strict_std_compliance = FF_COMPLIANCE_UNOFFICIAL;
    }
    r = avcodec_open2(c, codec, &opts);
    if (r < 0) {
        ret = tc_error_av(err, TC_EENCODE, r, "cannot open the video encoder");
        goto out;
    }
    if (fr_num > 0 && fr_den > 0)
        e->frame_dur = av_rescale_q(1, (AVRational){fr_den, fr_num}, c->time_base);
    *out = e;
    e = NULL;
    ret = 0;
out:
    av_dict_free(&opts);
    tc_encoder_free(&e);
    return ret;
}

/* The supported rate nearest to want (the encoder's list, if any). */
static int pick_rate(const AVCodec *codec, int want)
{
    if (!codec->supported_samplerates)
        return want;
    int best = 0;
    for (const int *p = codec->supported_samplerates; *p; p++)
        if (!best || abs(*p - want) < abs(best - want) ||
            (abs(*p - want) == abs(best - want) && *p > best))
            best = *p;
    return best ? best : want;
}

int tc_encoder_open_audio(const struct tc_audio_spec *as, int src_rate, int src_channels,
                          int global_header, struct tc_encoder **out, struct tc_error *err)
{
    struct tc_encoder *e = NULL;
    int ret, r;
    const char *name = !strcmp(as->codec, "aac")    ? "aac"
                       : !strcmp(as->codec, "opus") ? "libopus"
                       : !strcmp(as->codec, "mp3")  ? "libmp3lame"
                                                    : NULL;
    const AVCodec *codec = name ? avcodec_find_encoder_by_name(name) : NULL;

    *out = NULL;
    if (!codec)
        return tc_error_set(err, TC_EENCODE, "no encoder for audio codec '%s'", as->codec);
    if (!(e = encoder_alloc(codec)))
        return tc_error_set(err, TC_ENOMEM, "out of memory opening an encoder");
    AVCodecContext *c = e->ctx;
    int channels = as->channels > 0 ? as->channels : src_channels;
    if (channels > 2)
        channels = 2;
    if (channels < 1)
        channels = 1;
    av_channel_layout_default(&c->ch_layout, channels);
    c->sample_rate = pick_rate(codec, as->sample_rate > 0 ? as->sample_rate : src_rate);
    c->sample_fmt = codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
    c->time_base = (AVRational){1, c->sample_rate};
    c->bit_rate = as->bitrate > 0 ? as->bitrate : 128000;
    c->thread_count = 1;
    if (global_header)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    r = avcodec_open2(c, codec, NULL);
    if (r < 0) {
        ret = tc_error_av(err, TC_EENCODE, r, "cannot open the audio encoder");
        goto out;
    }
    *out = e;
    e = NULL;
    ret = 0;
out:
    tc_encoder_free(&e);
    return ret;
}

int tc_encoder_send(struct tc_encoder *e, AVFrame *frame,
                    int (*write)(void *opaque, AVPacket *pkt), void *opaque)
{
    AVCodecContext *c = e->ctx;
    int r;

    if (frame) {
        if (c->codec_type == AVMEDIA_TYPE_AUDIO) {
            /* The sink's re-framing keeps exact timestamps; a frame
             * without one continues from the previous. */
            if (frame->pts == AV_NOPTS_VALUE)
                frame->pts = e->next_pts != AV_NOPTS_VALUE ? e->next_pts : 0;
            else if (e->next_pts != AV_NOPTS_VALUE && frame->pts < e->next_pts)
                /* Overlapping audio (files cut and joined: the next part
                 * starts before the last one's audio ended) plays right
                 * after what was sent: packets never go back in time,
                 * which muxers refuse. */
                frame->pts = e->next_pts;
            e->next_pts = frame->pts + frame->nb_samples;
        } else {
            if (frame->pts == AV_NOPTS_VALUE)
                frame->pts = e->last_pts == AV_NOPTS_VALUE ? 0 : e->last_pts + (e->frame_dur > 0 ? e->frame_dur : 1);
            else if (e->last_pts != AV_NOPTS_VALUE && frame->pts <= e->last_pts)
                frame->pts = e->last_pts + 1;
            e->prev_pts = e->last_pts;
            e->last_pts = frame->pts;
            /* The last frame lasts as long as the one before it (variable
             * frame rate), or one nominal frame. */
            int64_t dur = e->prev_pts != AV_NOPTS_VALUE ? frame->pts - e->prev_pts
                          : e->frame_dur > 0 ? e->frame_dur : 1;
            e->end_pts = frame->pts + dur;
            if (!e->forced_kf)
                frame->pict_type = AV_PICTURE_TYPE_NONE;
        }
    }
    r = avcodec_send_frame(c, frame);
    if (r < 0 && r != AVERROR_EOF)
        return r;
    for (;;) {
        r = avcodec_receive_packet(c, e->pkt);
        if (r == AVERROR(EAGAIN))
            return 0;
        if (r == AVERROR_EOF) {
            /* The last video packet lasts to the end of the last frame, so
             * the track is as long as the input even with B-frames and a
             * variable frame rate. */
            if (e->held->data) {
                /* Track length (sum of durations from the first dts) minus
                 * the decoding delay (first dts to first pts) must reach
                 * end_pts. */
                int64_t delay = e->min_pts != AV_NOPTS_VALUE && e->first_dts != AV_NOPTS_VALUE
                                    ? e->min_pts - e->first_dts : 0;
                if (e->end_pts != AV_NOPTS_VALUE && e->held->dts != AV_NOPTS_VALUE &&
                    e->end_pts - e->held->dts - delay > 0)
                    e->held->duration = e->end_pts - e->held->dts - delay;
                r = write(opaque, e->held);
                av_packet_unref(e->held);
                return r < 0 ? r : 0;
            }
            return 0;
        }
        if (r < 0)
            return r;
        if (c->codec_type == AVMEDIA_TYPE_VIDEO) {
            /* Hold each video packet until the next one gives its duration. */
            if (e->first_dts == AV_NOPTS_VALUE)
                e->first_dts = e->pkt->dts;
            if (e->pkt->pts != AV_NOPTS_VALUE && (e->min_pts == AV_NOPTS_VALUE || e->pkt->pts < e->min_pts))
                e->min_pts = e->pkt->pts;
            if (e->held->data) {
                int64_t d = e->pkt->dts - e->held->dts;
                e->held->duration = d > 0 ? d : (e->frame_dur > 0 ? e->frame_dur : 1);
                r = write(opaque, e->held);
                av_packet_unref(e->held);
                if (r < 0) {
                    av_packet_unref(e->pkt);
                    return r;
                }
            }
            av_packet_move_ref(e->held, e->pkt);
            continue;
        }
        r = write(opaque, e->pkt);
        av_packet_unref(e->pkt);
        if (r < 0)
            return r;
    }
}
