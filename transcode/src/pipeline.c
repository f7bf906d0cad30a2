/* pipeline.c - tc_run: one input, one or more outputs, one pass.
 *
 * DESIGN
 *   One demuxer and at most one decoder per input stream (the best video,
 *   the best audio). Each decoded frame is pushed, by reference, into the
 *   filter chain of every output that encodes that kind of stream; each
 *   chain ends in that output's encoder, whose packets go to that output's
 *   muxer. Stream-copy outputs take the demuxed packets directly: those
 *   that ask for "copy", and (the remux fast path, remux.c) those whose
 *   input stream already satisfies their spec. A stream no output encodes
 *   is not decoded at all, so a run that only copies never decodes. Adding
 *   outputs (renditions, sprites) means adding entries to run->outs: the
 *   decode side does not change. The exception: an HLS ladder's smaller
 *   rungs take their pictures from the next larger rung's chain instead
 *   of the decoder (link_ladder: cheaper scaling, sharper pictures). Two outputs take only some frames: a
 *   thumbnail ("jpg") scales the frames poster.c samples and encodes the
 *   one it picks; a "sprite" output scales one frame per tile and hands it
 *   to sprite.c, which writes its folder (no muxer, no encoder here).
 *
 *   Chains are configured up front from the decoder's parameters (known
 *   after the input's stream info was read), so every header is written
 *   before the first packet; should a stream change its frame size, pixel
 *   or sample format mid-way, the affected chains are drained and rebuilt
 *   with the same output parameters.
 *
 *   Colour (colour.c): an HDR (PQ/HLG) source's pictures go as they are to
 *   the outputs that keep HDR and, through ONE tone mapping chain shared
 *   by every SDR output (feed_picture), to the others: an HLS ladder or
 *   several outputs tone map each picture once. Pictures no SDR output
 *   wants (the poster's and sprites' unsampled frames) are not tone mapped.
 *
 *   Clip: the input is seeked to the keyframe before the start; decoded
 *   frames before the start (video: before the picture shown at it) and at
 *   or after the end are dropped, and the rest moved back by the start
 *   (clip_frame), so every output starts at 0; the audio chains cut to the
 *   sample (atrim); reading stops past the end. Copies only happen with
 *   both cut points on keyframes. Progress runs over the clip.
 *
 *   Loudness: an output with audio.loudness_lufs gets its measurements
 *   from a first pass over the audio alone (loudness.c) before the run.
 *
 *   Timestamps: the input's start time is taken off every packet (demux.c),
 *   so outputs start at 0. Video keeps the source timestamps (variable
 *   frame rate stays variable) unless the spec asks for an fps.
 *
 *   Cancel: the flag is checked once per packet and per decoded frame, and
 *   the input's reads and the outputs' writes check it through libav's
 *   interrupt callbacks, so a run stops well within a second. Every exit
 *   goes through one cleanup that frees everything and removes .part files.
 *
 *   Threads: params->threads (or the largest "threads" of the output specs)
 *   is the codec thread budget (0 = let each codec pick, as the ffmpeg CLI
 *   does); the video decoder gets all of it and the video encoders split
 *   it (each encoder's filter graph gets the encoder's share); audio
 *   codecs run on one thread. The service sizes it from the cores and the
 *   jobs running at once.
 *
 * Threading: tc_run blocks its calling thread; runs are independent.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/channel_layout.h>
#include <libavutil/cpu.h>
#include <libavutil/time.h>

#include "transcode/tc.h"
#include "internal.h"

enum { MODE_NONE, MODE_ENCODE, MODE_COPY };

/* An "hls" output (hls.c): its renditions are outputs of this run. */
struct hls_group {
    struct tc_hls *h;
    size_t user;                    /* its index in params->outputs */
    size_t first;                   /* its renditions in run->outs */
};
enum { MAX_DECODE_ERRORS = 100 };

struct out_stream {
    int mode;
    struct tc_filter *filter;
    struct tc_encoder *enc;
    int index;                  /* stream index in the muxer */
    int started;                /* copied video: the first keyframe was written */
    /* what the chain was built for (a change rebuilds it) */
    int in_w, in_h, in_fmt, in_rate, in_channels;
    int out_w, out_h, out_fmt;
};

struct output {
    const struct tc_output *def;
    struct tc_mux *mux;
    struct out_stream v, a;
    int thumbnail;
    struct tc_poster *poster;   /* picks the thumbnail's frame (poster.c) */
    struct tc_sprite *sprite;   /* a "sprite" output's sheets (sprite.c); no mux */
    int done;                   /* finished early (thumbnail written) */
    struct tc_output_result result;
    struct tc_hls *hls;         /* a rendition of this HLS output, or NULL */
    size_t hls_k;               /* which one */
    double kf_next;             /* next forced keyframe time, s */
    /* Ladder cascade: a rung's pictures are scaled from the next larger
     * rung's (already rotated, deinterlaced, square-pixelled) instead of
     * from the decoded frame. */
    struct output *smaller;     /* rung fed from this one's chain, or NULL */
    struct output *larger;      /* rung this one is fed from, or NULL */
    /* Colour (colour.c): an HDR source's output either keeps HDR or takes
     * the run's tone mapped pictures. */
    int keep_hdr, tonemap;
    int at;                     /* a "jpg" with at_s: the picture at that time */
    int wants;                  /* this decoded picture is wanted */
    struct tc_colour col;       /* what the output holds and is tagged */
};

struct run {
    const struct tc_run_params *p;
    struct tc_error *err;
    struct tc_input *in;
    struct tc_media_info info;
    int vi, ai;
    AVStream *vst, *ast;
    AVCodecContext *vdec, *adec;
    int64_t offset;
    struct output *outs;
    size_t n_outs;
    const struct tc_output **defs;  /* one per outs[] */
    size_t *user;                   /* outs[i] answers params->outputs[user[i]] */
    struct hls_group *groups;
    size_t n_groups;
    AVPacket *pkt;
    AVFrame *frame, *filt, *sdr;
    int budget, dec_threads, enc_threads;  /* 0: codecs pick */
    int copy_v;                     /* some output copies the video */
    struct tc_colour src_col;       /* the source video's colour */
    struct tc_filter *tm;           /* HDR -> SDR, once for every SDR output */
    /* Clip: every output holds [clip_start, clip_end) of the input, its
     * timestamps moved back by clip_start; dur is what the outputs last
     * (the clip's, else the input's duration), progress runs over it. */
    int clip;
    double clip_start, clip_end, dur;
    int past_v, past_a;             /* a decoded frame at or after the end */
    int64_t first_vpts;             /* the first picture kept (moved to 0) */
    struct tc_loudness loud;        /* loudness.c's first pass, if asked */
    int tm_w, tm_h, tm_fmt;         /* what tm was built for */
    int vdec_errors, adec_errors;
    int64_t vframes, aframes;
    /* progress */
    double out_time;
    int64_t t0, last_update;
    double last_pct;
};

static int canceled(const struct run *r)
{
    return r->p->cancel && atomic_load(r->p->cancel);
}

static void publish(struct run *r, int final)
{
    struct tc_progress_snapshot s;
    double elapsed = (av_gettime_relative() - r->t0) / 1e6;
    tc_progress_compute(r->out_time, r->dur, elapsed, r->vframes, &s);
    if (final) {
        s.percent = 100.0;
        s.eta_s = 0.0;
        if (r->dur > 0)
            s.out_time_s = r->out_time > r->dur ? r->out_time : r->dur;
    }
    if (s.percent < r->last_pct)
        s.percent = r->last_pct;
    r->last_pct = s.percent;
    r->last_update = av_gettime_relative();
    if (r->p->progress)
        tc_progress_write(r->p->progress, &s);
    if (r->p->on_progress)
        r->p->on_progress(r->p->opaque, &s);
}

static void maybe_publish(struct run *r)
{
    int64_t now = av_gettime_relative();
    double pct = r->dur > 0 ? r->out_time / r->dur * 100.0 : 0.0;
    if (now - r->last_update >= 200000 || pct - r->last_pct >= 1.0)
        publish(r, 0);
}

static int fail_av(struct run *r, int code, int averr, const char *what)
{
    if (averr == AVERROR_EXIT || canceled(r))
        return tc_error_set(r->err, TC_ECANCELED, "canceled");
    return tc_error_av(r->err, code, averr, what);
}

/* ------------------------------------------------------------ set-up */

/* The pixel format an output's chain is fed: the tone mapping's for a
 * tone mapped output, else the decoder's. */
static int chain_in_fmt(const struct run *r, const struct output *o)
{
    return o->tonemap ? AV_PIX_FMT_YUV420P : r->vdec->pix_fmt;
}

static int build_video_chain(struct run *r, struct output *o, int w, int h, int fmt)
{
    struct out_stream *s = &o->v;
    const struct tc_video_spec *vs = &o->def->spec.video;
    AVRational sar = r->vst->sample_aspect_ratio.num ? r->vst->sample_aspect_ratio
                                                     : r->vdec->sample_aspect_ratio;
    AVRational fr = av_guess_frame_rate(r->in->fmt, r->vst, NULL);
    int rotation = tc_stream_rotation(r->vst);
    int out_fmt = !strcmp(vs->codec, "mjpeg") ? AV_PIX_FMT_YUVJ420P
                  : o->keep_hdr               ? AV_PIX_FMT_YUV420P10LE
                                              : AV_PIX_FMT_YUV420P;
    s->out_fmt = out_fmt;

    if (!s->out_w) {
        if (tc_dims_compute(w, h, sar.num, sar.den, rotation, vs, &s->out_w, &s->out_h) < 0)
            return tc_error_set(r->err, TC_EUNSUPPORTED, "bad video frame size %dx%d", w, h);
    }
    struct tc_video_chain c = {
        .in_w = w, .in_h = h, .in_fmt = fmt,
        .in_tb_num = r->vst->time_base.num, .in_tb_den = r->vst->time_base.den,
        .sar_num = sar.num, .sar_den = sar.den,
        .fr_num = fr.num, .fr_den = fr.den,
        .rotation = rotation,
        .deinterlace = r->info.video.interlaced,
        .out_w = s->out_w, .out_h = s->out_h, .out_fmt = out_fmt,
        .fps = o->thumbnail || o->sprite ? 0 : vs->fps,
        .threads = r->budget ? r->enc_threads : 0,
    };
    if (o->larger && (s->out_w > o->larger->v.out_w || s->out_h > o->larger->v.out_h)) {
        /* Not a smaller rung after all (cannot happen with the ladder's
         * order, but a cascade must never upscale): fed from the decoder. */
        o->larger->smaller = NULL;
        o->larger = NULL;
    }
    if (o->larger) {
        /* Its size was computed from the source above, as for any rung;
         * its input is the larger rung's output, already rotated,
         * deinterlaced, square and at the spec's frame rate. */
        const struct out_stream *ls = &o->larger->v;
        int tbn, tbd, frn, frd;
        tc_filter_out_timing(ls->filter, &tbn, &tbd, &frn, &frd);
        c.in_w = w = ls->out_w;
        c.in_h = h = ls->out_h;
        c.in_fmt = fmt = ls->out_fmt;
        c.in_tb_num = tbn;
        c.in_tb_den = tbd;
        c.sar_num = c.sar_den = 1;
        c.fr_num = frn;
        c.fr_den = frd;
        c.rotation = 0;
        c.deinterlace = 0;
        c.fps = 0;
        c.sharp = 1;
    }
    s->in_w = w;
    s->in_h = h;
    s->in_fmt = fmt;
    return tc_filter_video_open(&c, &s->filter, r->err);
}

static int build_audio_chain(struct run *r, struct output *o, const AVChannelLayout *layout,
                             int rate, int fmt)
{
    struct out_stream *s = &o->a;
    AVCodecContext *ec = tc_encoder_ctx(s->enc);
    int fixed = !(ec->codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE);
    struct tc_audio_chain c = {
        .in_rate = rate, .in_fmt = fmt,
        .in_tb_num = r->ast->time_base.num, .in_tb_den = r->ast->time_base.den,
        .in_layout = layout,
        .out_rate = ec->sample_rate, .out_fmt = ec->sample_fmt,
        .out_channels = ec->ch_layout.nb_channels,
        .frame_size = fixed ? ec->frame_size : 0,
        .loudness_lufs = o->def->spec.audio.loudness_lufs,
        .measured = &r->loud,
        .trim = r->clip,
        .trim_end_s = r->clip && r->clip_end > 0 ? r->clip_end - r->clip_start : 0,
    };
    s->in_rate = rate;
    s->in_fmt = fmt;
    s->in_channels = layout->nb_channels;
    return tc_filter_audio_open(&c, &s->filter, r->err);
}

static int setup_output(struct run *r, struct output *o)
{
    const struct tc_output_spec *spec = &o->def->spec;
    int ret, idx;

    if (!strcmp(spec->container, "sprite")) {
        /* Tiles are scaled by a chain of their own and tiled by sprite.c. */
        ret = build_video_chain(r, o, r->vdec->width, r->vdec->height, chain_in_fmt(r, o));
        if (ret < 0)
            return ret;
        return tc_sprite_open(o->def->path, &spec->sprite, o->v.out_w, o->v.out_h,
                              r->dur, &o->sprite, r->err);
    }
    ret = tc_mux_open(spec->container, o->def->path, r->p->cancel, &o->mux, r->err);
    if (ret < 0)
        return ret;
    if (o->hls)
        tc_mux_set_hls(o->mux, tc_hls_segment_seconds(o->hls), tc_hls_fmp4(o->hls));
    int gh = tc_mux_global_header(o->mux);

    if (o->v.mode == MODE_ENCODE) {
        ret = build_video_chain(r, o, r->vdec->width, r->vdec->height, chain_in_fmt(r, o));
        if (ret < 0)
            return ret;
        int tbn, tbd, frn, frd;
        tc_filter_out_timing(o->v.filter, &tbn, &tbd, &frn, &frd);
        if (frn <= 0 || frd <= 0) {
            AVRational fr = av_guess_frame_rate(r->in->fmt, r->vst, NULL);
            frn = fr.num;
            frd = fr.den;
        }
        ret = tc_encoder_open_video(&spec->video, o->v.out_w, o->v.out_h, o->v.out_fmt, tbn, tbd,
                                    frn, frd, r->enc_threads, gh, o->hls != NULL, &o->col,
                                    &o->v.enc, r->err);
        if (ret < 0)
            return ret;
        if (o->hls)
            tc_hls_describe(o->hls, o->hls_k, tc_encoder_ctx(o->v.enc));
        idx = tc_mux_add_encoded(o->mux, tc_encoder_ctx(o->v.enc), spec->container);
        if (idx < 0)
            return fail_av(r, TC_EINTERNAL, idx, "cannot add the video stream");
        o->v.index = idx;
        if (o->keep_hdr && (ret = tc_mux_set_hdr(o->mux, idx, &o->col)) < 0)
            return fail_av(r, TC_ENOMEM, ret, "cannot add the HDR metadata");
    } else if (o->v.mode == MODE_COPY) {
        idx = tc_mux_add_copy(o->mux, r->vst);
        if (idx < 0)
            return fail_av(r, TC_EINTERNAL, idx, "cannot add the video stream");
        o->v.index = idx;
        o->result.video_copied = 1;
    }

    if (o->a.mode == MODE_ENCODE) {
        ret = tc_encoder_open_audio(&spec->audio, r->adec->sample_rate,
                                    r->adec->ch_layout.nb_channels, gh, &o->a.enc, r->err);
        if (ret < 0)
            return ret;
        ret = build_audio_chain(r, o, &r->adec->ch_layout, r->adec->sample_rate, r->adec->sample_fmt);
        if (ret < 0)
            return ret;
        if (o->hls)
            tc_hls_describe(o->hls, o->hls_k, tc_encoder_ctx(o->a.enc));
        idx = tc_mux_add_encoded(o->mux, tc_encoder_ctx(o->a.enc), spec->container);
        if (idx < 0)
            return fail_av(r, TC_EINTERNAL, idx, "cannot add the audio stream");
        o->a.index = idx;
    } else if (o->a.mode == MODE_COPY) {
        idx = tc_mux_add_copy(o->mux, r->ast);
        if (idx < 0)
            return fail_av(r, TC_EINTERNAL, idx, "cannot add the audio stream");
        o->a.index = idx;
        o->result.audio_copied = 1;
    }
    return tc_mux_write_header(o->mux, r->err);
}

/* ------------------------------------------------------------ frames */

static int write_packet(void *opaque, AVPacket *pkt);

struct write_ctx {
    struct run *r;
    struct output *o;
    struct out_stream *s;
};

static int write_packet(void *opaque, AVPacket *pkt)
{
    struct write_ctx *w = opaque;
    /* Encoders may hold many frames (lookahead): a flush can run for a
     * while, so the cancel flag is looked at per packet too. */
    if (canceled(w->r))
        return AVERROR_EXIT;
    AVCodecContext *ec = tc_encoder_ctx(w->s->enc);
    if (w->o->hls)
        tc_hls_note_packet(w->o->hls, w->o->hls_k, ec, pkt);
    return tc_mux_write(w->o->mux, w->s->index, pkt, ec->time_base.num, ec->time_base.den);
}

static int finish_output(struct run *r, struct output *o);

/* Encode the poster's picked frame as the thumbnail's one picture. */
static int write_poster(struct run *r, struct output *o)
{
    const AVFrame *pick = tc_poster_pick(o->poster);
    if (!pick)
        return tc_error_set(r->err, TC_EDECODE, "no picture for the thumbnail");
    if (av_frame_ref(r->filt, pick) < 0)
        return tc_error_set(r->err, TC_ENOMEM, "out of memory");
    r->filt->pts = 0;
    struct write_ctx w = {r, o, &o->v};
    int ret = tc_encoder_send(o->v.enc, r->filt, write_packet, &w);
    av_frame_unref(r->filt);
    if (ret < 0)
        return fail_av(r, TC_EENCODE, ret, "encoding failed");
    return finish_output(r, o);
}

/* Move everything the chain has ready into the encoder. */
static int drain_chain(struct run *r, struct output *o, struct out_stream *s)
{
    struct write_ctx w = {r, o, s};
    for (;;) {
        int ret = tc_filter_pull(s->filter, r->filt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0)
            return fail_av(r, TC_EINTERNAL, ret, "filtering failed");
        int tbn, tbd, frn, frd;
        tc_filter_out_timing(s->filter, &tbn, &tbd, &frn, &frd);
        if (o->sprite) {
            double t = r->filt->pts != AV_NOPTS_VALUE ? r->filt->pts * av_q2d((AVRational){tbn, tbd})
                                                      : NAN;
            ret = tc_sprite_add(o->sprite, r->filt, t, r->err);
            av_frame_unref(r->filt);
            if (ret < 0)
                return canceled(r) ? tc_error_set(r->err, TC_ECANCELED, "canceled") : ret;
            continue;
        }
        struct output *smaller = s == &o->v && o->smaller && !o->smaller->done ? o->smaller : NULL;
        if (smaller) {
            /* A reference of the picture as the chain gave it (the
             * keyframe flag and pts below are this encoder's business). */
            ret = tc_filter_push(smaller->v.filter, r->filt);
            if (ret < 0) {
                av_frame_unref(r->filt);
                return fail_av(r, TC_EINTERNAL, ret, "filtering failed");
            }
        }
        AVCodecContext *ec = tc_encoder_ctx(s->enc);
        if (o->at) {
            /* The picture at at_s: the thumbnail's one picture. */
            r->filt->pts = 0;
            ret = tc_encoder_send(s->enc, r->filt, write_packet, &w);
            av_frame_unref(r->filt);
            if (ret < 0)
                return fail_av(r, TC_EENCODE, ret, "encoding failed");
            return finish_output(r, o);
        }
        if (o->thumbnail) {
            double t = r->filt->pts != AV_NOPTS_VALUE ? r->filt->pts * av_q2d((AVRational){tbn, tbd})
                                                      : NAN;
            ret = tc_poster_add(o->poster, r->filt, t);
            av_frame_unref(r->filt);
            if (ret < 0)
                return tc_error_set(r->err, TC_ENOMEM, "out of memory");
            if (ret == 1)
                return write_poster(r, o);
            continue;
        }
        if (o->hls && s == &o->v) {
            /* Keyframes exactly at the segment boundaries, in every rung. */
            r->filt->pict_type = AV_PICTURE_TYPE_NONE;
            if (r->filt->pts != AV_NOPTS_VALUE) {
                double t = r->filt->pts * av_q2d((AVRational){tbn, tbd});
                if (t >= o->kf_next - 1e-3) {
                    r->filt->pict_type = AV_PICTURE_TYPE_I;
                    while (o->kf_next <= t + 1e-3)
                        o->kf_next += tc_hls_segment_seconds(o->hls);
                }
            }
        }
        if (r->filt->pts != AV_NOPTS_VALUE)
            r->filt->pts = av_rescale_q(r->filt->pts, (AVRational){tbn, tbd}, ec->time_base);
        ret = tc_encoder_send(s->enc, r->filt, write_packet, &w);
        av_frame_unref(r->filt);
        if (ret < 0)
            return fail_av(r, TC_EENCODE, ret, "encoding failed");
        /* (r->filt is free again: the smaller rung may use it) */
        if (smaller && (ret = drain_chain(r, smaller, &smaller->v)) < 0)
            return ret;
    }
}

/* Flush a chain (EOF) and its encoder. */
static int flush_stream(struct run *r, struct output *o, struct out_stream *s)
{
    int ret;
    if (s->mode != MODE_ENCODE || o->done)
        return 0;
    ret = tc_filter_push(s->filter, NULL);
    if (ret < 0 && ret != AVERROR_EOF)
        return fail_av(r, TC_EINTERNAL, ret, "filtering failed");
    if ((ret = drain_chain(r, o, s)) < 0 || o->done || o->sprite)
        return ret;
    struct write_ctx w = {r, o, s};
    ret = tc_encoder_send(s->enc, NULL, write_packet, &w);
    if (ret < 0)
        return fail_av(r, TC_EENCODE, ret, "encoding failed");
    return 0;
}

static int finish_output(struct run *r, struct output *o)
{
    int ret;
    if (o->done)
        return 0;
    o->done = 1;
    if (o->sprite) {
        o->result.duration_s = r->dur > 0 ? r->dur : r->out_time;
        return tc_sprite_finish(o->sprite, r->dur, &o->result, r->err);
    }
    if (o->thumbnail) {
        struct write_ctx w = {r, o, &o->v};
        ret = tc_encoder_send(o->v.enc, NULL, write_packet, &w);
        if (ret < 0)
            return fail_av(r, TC_EENCODE, ret, "encoding failed");
    }
    ret = tc_mux_finish(o->mux, &o->result.size, &o->result.duration_s, r->err);
    if (ret < 0)
        return ret;
    tc_mux_free(&o->mux);
    return 0;
}

/* 1 if output o takes decoded picture f (asked once per picture: the
 * pickers count what they were offered). */
static int video_wanted(struct run *r, struct output *o, const AVFrame *f)
{
    double t = f->pts != AV_NOPTS_VALUE ? f->pts * av_q2d(r->vst->time_base) : NAN;
    if (o->at) /* the first picture at (or just after) at_s */
        return isnan(t) || t >= o->def->spec.at_s - 1e-3;
    if (o->thumbnail) /* only the frames the poster picker samples are scaled */
        return tc_poster_want(o->poster, t);
    if (o->sprite)
        return tc_sprite_want(o->sprite, t);
    return 1;
}

static int feed_video(struct run *r, struct output *o, AVFrame *f)
{
    struct out_stream *s = &o->v;
    int ret;
    if (f->width != s->in_w || f->height != s->in_h || f->format != s->in_fmt) {
        /* Mid-stream change: drain the old chain, build a new one to the
         * same output size. */
        ret = tc_filter_push(s->filter, NULL);
        if (ret >= 0 || ret == AVERROR_EOF)
            ret = drain_chain(r, o, s);
        if (ret < 0 || o->done)
            return ret;
        tc_filter_free(&s->filter);
        if ((ret = build_video_chain(r, o, f->width, f->height, f->format)) < 0)
            return ret;
    }
    ret = tc_filter_push(s->filter, f);
    if (ret < 0)
        return fail_av(r, TC_EINTERNAL, ret, "filtering failed");
    return drain_chain(r, o, s);
}

static int build_tonemap(struct run *r, const AVFrame *f)
{
    AVRational sar = r->vst->sample_aspect_ratio.num ? r->vst->sample_aspect_ratio
                                                     : r->vdec->sample_aspect_ratio;
    struct tc_tonemap_chain c = {
        .in_w = f->width, .in_h = f->height, .in_fmt = f->format,
        .in_tb_num = r->vst->time_base.num, .in_tb_den = r->vst->time_base.den,
        .sar_num = sar.num, .sar_den = sar.den,
        .transfer = r->src_col.transfer, .matrix = r->src_col.matrix, .range = r->src_col.range,
        .threads = r->budget ? r->dec_threads : 0,
    };
    r->tm_w = f->width;
    r->tm_h = f->height;
    r->tm_fmt = f->format;
    if (!r->tm) {
        char desc[512];
        tc_filter_tonemap_desc(&c, desc, sizeof(desc));
        tc_log(TC_LOG_INFO, "hdr tone mapping (once for every SDR output): %s", desc);
    }
    tc_filter_free(&r->tm);
    return tc_filter_tonemap_open(&c, &r->tm, r->err);
}

/* Hand every tone mapped picture ready to the SDR outputs that want it. */
static int drain_tonemap(struct run *r)
{
    for (;;) {
        int ret = tc_filter_pull(r->tm, r->sdr);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0)
            return fail_av(r, TC_EINTERNAL, ret, "tone mapping failed");
        for (size_t i = 0; i < r->n_outs && ret >= 0; i++) {
            struct output *o = &r->outs[i];
            if (!o->done && o->tonemap && o->wants && o->v.mode == MODE_ENCODE && !o->larger)
                ret = feed_video(r, o, r->sdr);
        }
        av_frame_unref(r->sdr);
        if (ret < 0)
            return ret;
    }
}

/* A decoded picture to every output that encodes video: as it is, or
 * (an HDR source's SDR outputs) through the one tone mapping. f NULL:
 * the end, flush the tone mapping. */
static int feed_picture(struct run *r, AVFrame *f)
{
    int ret, any_tm = 0;
    if (!f) {
        if (!r->tm)
            return 0;
        ret = tc_filter_push(r->tm, NULL);
        if (ret < 0 && ret != AVERROR_EOF)
            return fail_av(r, TC_EINTERNAL, ret, "tone mapping failed");
        return drain_tonemap(r);
    }
    for (size_t i = 0; i < r->n_outs; i++) {
        struct output *o = &r->outs[i];
        o->wants = 0;
        if (o->done || o->v.mode != MODE_ENCODE || o->larger)
            continue;
        if (!(o->wants = video_wanted(r, o, f)))
            continue;
        if (o->tonemap) {
            any_tm = 1;
            continue;
        }
        if ((ret = feed_video(r, o, f)) < 0)
            return ret;
    }
    if (!any_tm)
        return 0; /* no SDR output wants this picture: not tone mapped */
    if (!r->tm || f->width != r->tm_w || f->height != r->tm_h || f->format != r->tm_fmt) {
        if (r->tm) { /* a mid-stream change: what it holds goes first */
            ret = tc_filter_push(r->tm, NULL);
            if ((ret >= 0 || ret == AVERROR_EOF) && (ret = drain_tonemap(r)) < 0)
                return ret;
        }
        if ((ret = build_tonemap(r, f)) < 0)
            return ret;
    }
    ret = tc_filter_push(r->tm, f);
    if (ret < 0)
        return fail_av(r, TC_EINTERNAL, ret, "tone mapping failed");
    return drain_tonemap(r);
}

static int feed_audio(struct run *r, struct output *o, AVFrame *f)
{
    struct out_stream *s = &o->a;
    int ret;
    if (f->sample_rate != s->in_rate || f->format != s->in_fmt ||
        f->ch_layout.nb_channels != s->in_channels) {
        ret = tc_filter_push(s->filter, NULL);
        if (ret >= 0 || ret == AVERROR_EOF)
            ret = drain_chain(r, o, s);
        if (ret < 0)
            return ret;
        tc_filter_free(&s->filter);
        if ((ret = build_audio_chain(r, o, &f->ch_layout, f->sample_rate, f->format)) < 0)
            return ret;
    }
    ret = tc_filter_push(s->filter, f);
    if (ret < 0)
        return fail_av(r, TC_EINTERNAL, ret, "filtering failed");
    return drain_chain(r, o, s);
}

/* Keep a decoded frame of a clip (1; its timestamp moved back by the
 * clip's start) or drop it (0). Video: from the picture shown at the
 * start (its time moved to 0) to the last one before the end. Audio: the
 * frames that overlap the clip (the chain's atrim cuts to the sample). */
static int clip_frame(struct run *r, int video, AVFrame *f)
{
    const AVStream *st = video ? r->vst : r->ast;
    double tb = av_q2d(st->time_base);
    if (f->pts == AV_NOPTS_VALUE)
        return 1;
    double t = f->pts * tb;
    int64_t shift = llrint(r->clip_start / tb);
    if (video) {
        AVRational fr = av_guess_frame_rate(r->in->fmt, r->vst, NULL);
        double dur = fr.num > 0 && fr.den > 0 ? (double)fr.den / fr.num : 0.04;
        if (r->clip_end > 0 && t >= r->clip_end - 1e-3) {
            r->past_v = 1;
            return 0;
        }
        if (t + dur <= r->clip_start + 1e-3)
            return 0;
        f->pts -= shift;
        if (r->first_vpts == AV_NOPTS_VALUE) {
            r->first_vpts = f->pts;
            if (f->pts < 0)
                f->pts = 0;
        }
        return 1;
    }
    double len = f->sample_rate > 0 ? (double)f->nb_samples / f->sample_rate : 0.0;
    if (r->clip_end > 0 && t >= r->clip_end - 1e-6) {
        r->past_a = 1;
        return 0;
    }
    if (t + len <= r->clip_start)
        return 0;
    f->pts -= shift;
    return 1;
}

/* Send pkt (NULL: flush) to a decoder and feed every frame it gives. */
static int decode(struct run *r, AVCodecContext *dec, const AVPacket *pkt)
{
    int video = dec == r->vdec;
    int ret = avcodec_send_packet(dec, pkt);
    if (ret < 0 && ret != AVERROR_EOF) {
        if (ret == AVERROR(ENOMEM))
            return tc_error_set(r->err, TC_ENOMEM, "out of memory decoding");
        if (ret == AVERROR(EAGAIN))
            return tc_error_set(r->err, TC_EINTERNAL, "decoder refused input");
        /* A damaged packet: carry on, as players do, within reason. */
        int *errors = video ? &r->vdec_errors : &r->adec_errors;
        if (++*errors > MAX_DECODE_ERRORS)
            return tc_error_av(r->err, TC_EDECODE, ret, "too many decode errors");
        return 0;
    }
    for (;;) {
        if (canceled(r))
            return tc_error_set(r->err, TC_ECANCELED, "canceled");
        ret = avcodec_receive_frame(dec, r->frame);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0) {
            int *errors = video ? &r->vdec_errors : &r->adec_errors;
            if (ret == AVERROR(ENOMEM))
                return tc_error_set(r->err, TC_ENOMEM, "out of memory decoding");
            if (++*errors > MAX_DECODE_ERRORS)
                return tc_error_av(r->err, TC_EDECODE, ret, "too many decode errors");
            continue;
        }
        r->frame->pts = r->frame->best_effort_timestamp;
        if (video)
            r->vframes++;
        else
            r->aframes++;
        if (r->clip && !clip_frame(r, video, r->frame)) {
            av_frame_unref(r->frame);
            continue;
        }
        if (video)
            ret = feed_picture(r, r->frame);
        for (size_t i = 0; !video && i < r->n_outs && ret >= 0; i++) {
            struct output *o = &r->outs[i];
            if (!o->done && o->a.mode == MODE_ENCODE)
                ret = feed_audio(r, o, r->frame);
        }
        av_frame_unref(r->frame);
        if (ret < 0)
            return ret;
    }
}

static int copy_packet(struct run *r, struct output *o, struct out_stream *s, const AVPacket *pkt,
                       const AVStream *ist)
{
    int64_t shift = 0;
    if (r->clip) {
        /* Copied only with both cut points on keyframes (clip_on_keyframes). */
        double tb = av_q2d(ist->time_base);
        int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
        if (ts != AV_NOPTS_VALUE) {
            double t = ts * tb, len = pkt->duration > 0 ? pkt->duration * tb : 0.0;
            if (r->clip_end > 0 && t >= r->clip_end - 1e-3)
                return 0;
            if (s == &o->v ? t < r->clip_start - 1e-3 : t + len <= r->clip_start + 1e-6)
                return 0;
        }
        shift = llrint(r->clip_start / tb);
    }
    /* A copy starts at a keyframe: what comes before it cannot be shown. */
    if (s == &o->v && !s->started) {
        if (!(pkt->flags & AV_PKT_FLAG_KEY))
            return 0;
        s->started = 1;
    }
    AVPacket *cp = av_packet_clone(pkt);
    if (!cp)
        return tc_error_set(r->err, TC_ENOMEM, "out of memory");
    cp->pos = -1;
    if (shift) {
        if (cp->pts != AV_NOPTS_VALUE)
            cp->pts -= shift;
        if (cp->dts != AV_NOPTS_VALUE)
            cp->dts -= shift;
    }
    int ret = tc_mux_write(o->mux, s->index, cp, ist->time_base.num, ist->time_base.den);
    av_packet_free(&cp);
    if (ret < 0)
        return fail_av(r, TC_EIO, ret, "cannot write the output");
    return 0;
}

/* ------------------------------------------------------------ the run */

static void run_free(struct run *r)
{
    for (size_t i = 0; r->outs && i < r->n_outs; i++) {
        struct output *o = &r->outs[i];
        tc_filter_free(&o->v.filter);
        tc_filter_free(&o->a.filter);
        tc_encoder_free(&o->v.enc);
        tc_encoder_free(&o->a.enc);
        tc_mux_free(&o->mux); /* removes an unfinished .part */
        tc_poster_free(&o->poster);
        tc_sprite_free(&o->sprite);
    }
    av_free(r->outs);
    av_free(r->defs);
    av_free(r->user);
    for (size_t g = 0; r->groups && g < r->n_groups; g++)
        tc_hls_free(&r->groups[g].h, 0);
    av_free(r->groups);
    avcodec_free_context(&r->vdec);
    avcodec_free_context(&r->adec);
    tc_filter_free(&r->tm);
    av_packet_free(&r->pkt);
    av_frame_free(&r->frame);
    av_frame_free(&r->sdr);
    av_frame_free(&r->filt);
    tc_input_close(&r->in);
}

/* Remove the outputs that were already renamed into place (a later output
 * failed, so the run as a whole failed). */
static void remove_finished(struct run *r)
{
    for (size_t i = 0; r->outs && i < r->n_outs; i++) {
        if (r->outs[i].sprite)
            tc_sprite_discard(r->outs[i].sprite);
        else if (r->outs[i].done && !r->outs[i].mux && !r->outs[i].hls)
            unlink(r->outs[i].def->path);
    }
    for (size_t g = 0; r->groups && g < r->n_groups; g++)
        tc_hls_free(&r->groups[g].h, 1);
}

/* Expand the outputs: an "hls" output becomes its renditions (after
 * probing, the source's size is known). */
static int expand(struct run *r)
{
    const struct tc_run_params *p = r->p;
    size_t n = 0, n_hls = 0;
    int ret;
    for (size_t i = 0; i < p->n_outputs; i++) {
        if (!strcmp(p->outputs[i].spec.container, "hls"))
            n_hls++;
        else
            n++;
    }
    r->n_outs = n + n_hls * TC_HLS_MAX_RENDITIONS; /* an upper bound, trimmed below */
    r->defs = av_calloc(r->n_outs, sizeof(*r->defs));
    r->user = av_calloc(r->n_outs, sizeof(*r->user));
    r->groups = n_hls ? av_calloc(n_hls, sizeof(*r->groups)) : NULL;
    if (!r->defs || !r->user || (n_hls && !r->groups))
        return tc_error_set(r->err, TC_ENOMEM, "out of memory");
    n = 0;
    for (size_t i = 0; i < p->n_outputs; i++) {
        const struct tc_output *d = &p->outputs[i];
        if (strcmp(d->spec.container, "hls")) {
            r->defs[n] = d;
            r->user[n++] = i;
            continue;
        }
        struct hls_group *g = &r->groups[r->n_groups];
        if ((ret = tc_hls_open(d, &r->info, &g->h, r->err)) < 0)
            return ret;
        r->n_groups++;
        g->user = i;
        g->first = n;
        for (size_t k = 0; k < tc_hls_count(g->h); k++) {
            r->defs[n] = tc_hls_rendition(g->h, k);
            r->user[n++] = i;
        }
    }
    r->n_outs = n;
    return 0;
}

/* 1 if a keyframe of the video is at t (s, from the input's start),
 * within half a frame, by the demuxer's index. */
static int keyframe_at(const struct run *r, double t)
{
    AVStream *st = r->vst;
    AVRational fr = av_guess_frame_rate(r->in->fmt, r->vst, NULL);
    double half = fr.num > 0 && fr.den > 0 ? 0.5 * fr.den / fr.num : 0.02;
    double t0 = st->start_time != AV_NOPTS_VALUE ? st->start_time * av_q2d(st->time_base) : 0.0;
    double off = r->offset / (double)AV_TIME_BASE - t0; /* the demuxer's shift vs. this stream */
    int n = avformat_index_get_entries_count(st);
    for (int i = 0; i < n; i++) {
        const AVIndexEntry *e = avformat_index_get_entry(st, i);
        if (!e || !(e->flags & AVINDEX_KEYFRAME) || e->timestamp == AV_NOPTS_VALUE)
            continue;
        double k = e->timestamp * av_q2d(st->time_base) - t0 - off;
        if (fabs(k - t) <= half)
            return 1;
    }
    return 0;
}

/* A clipped output is copied only when both cut points fall on keyframes
 * (the start, and the end unless it is the input's end): a copy cannot
 * start or stop anywhere else. */
static int clip_on_keyframes(const struct run *r)
{
    if (!keyframe_at(r, r->clip_start))
        return 0;
    return r->clip_end <= 0 || r->clip_end >= r->info.duration_s - 1e-3 || keyframe_at(r, r->clip_end);
}

/* The remux fast path: an input stream that already satisfies the spec is
 * copied instead of re-encoded (rules in remux.c). A stream no output
 * encodes is never decoded. */
static void auto_copy(struct run *r, struct output *o)
{
    const struct tc_output_spec *spec = &o->def->spec;
    char why[128];
    if (o->v.mode == MODE_ENCODE) {
        if (r->vst && tc_colour_is_hdr(r->src_col.transfer) && !tc_colour_keeps_hdr(spec, &r->src_col))
            snprintf(why, sizeof(why), "the HDR source is tone mapped to SDR");
        else if (r->clip && !clip_on_keyframes(r))
            snprintf(why, sizeof(why), "the clip does not start and end on keyframes");
        else if (tc_copy_video_fits(spec, &r->info, why, sizeof(why)))
            o->v.mode = MODE_COPY;
        tc_log(TC_LOG_DEBUG, "output=%s video=%s%s%s", spec->name,
               o->v.mode == MODE_COPY ? "copied" : "encoded", o->v.mode == MODE_COPY ? "" : " why=",
               o->v.mode == MODE_COPY ? "" : why);
    }
    if (o->a.mode == MODE_ENCODE) {
        if (spec->audio.loudness_lufs != 0.0)
            snprintf(why, sizeof(why), "the loudness is normalized");
        else if (tc_copy_audio_fits(spec, &r->info, why, sizeof(why)))
            o->a.mode = MODE_COPY;
        tc_log(TC_LOG_DEBUG, "output=%s audio=%s%s%s", spec->name,
               o->a.mode == MODE_COPY ? "copied" : "encoded", o->a.mode == MODE_COPY ? "" : " why=",
               o->a.mode == MODE_COPY ? "" : why);
    }
}

/* Each ladder rung that encodes video is fed from the next larger one
 * (renditions come largest first), scaled with lanczos: 720p to 480p
 * with lanczos costs less than 1080p (let alone 4K) to 480p with bicubic,
 * and the pictures come out closer to a careful direct downscale (a
 * bicubic cascade would be cheaper still but visibly softer: 0.5 dB
 * PSNR lost at 360p after encoding). */
static void link_ladder(struct run *r)
{
    for (size_t g = 0; g < r->n_groups; g++) {
        struct output *larger = NULL;
        for (size_t k = 0; k < tc_hls_count(r->groups[g].h); k++) {
            struct output *o = &r->outs[r->groups[g].first + k];
            if (o->v.mode != MODE_ENCODE)
                continue;
            if (larger) {
                larger->smaller = o;
                o->larger = larger;
            }
            larger = o;
        }
    }
}

/* The run's clip (every output has the same) and the duration the
 * outputs will have. */
static int plan_clip(struct run *r)
{
    const struct tc_output_spec *first = &r->defs[0]->spec;
    int ret;
    for (size_t i = 1; i < r->n_outs; i++) {
        const struct tc_output_spec *sp = &r->defs[i]->spec;
        if (sp->clip_start_s != first->clip_start_s || sp->clip_end_s != first->clip_end_s)
            return tc_error_set(r->err, TC_EINVAL,
                                "clip: every output of a run has the same clip ('%s' differs from '%s')",
                                sp->name, first->name);
    }
    if ((ret = tc_clip_check(first->clip_start_s, first->clip_end_s, &r->info, r->err)) < 0)
        return ret;
    r->clip_start = first->clip_start_s;
    r->clip_end = first->clip_end_s;
    if (r->info.duration_s > 0 && r->clip_end > r->info.duration_s)
        r->clip_end = 0; /* (within tc_clip_check's slack of the end) */
    r->clip = r->clip_start > 0 || r->clip_end > 0;
    r->dur = r->info.duration_s;
    if (r->clip && r->info.duration_s > 0)
        r->dur = (r->clip_end > 0 ? r->clip_end : r->info.duration_s) - r->clip_start;
    else if (r->clip && r->clip_end > 0)
        r->dur = r->clip_end - r->clip_start;
    if (r->clip)
        tc_log(TC_LOG_INFO, "clip start=%.3f end=%.3f duration=%.3f", r->clip_start, r->clip_end,
               r->dur);
    return 0;
}

/* What each video output holds (colour.c): an HDR source is kept or
 * tone mapped per output; the tags follow. */
static int plan_colour(struct run *r)
{
    int hdr = r->vst && tc_colour_is_hdr(r->src_col.transfer), keep = 0, tm = 0;
    for (size_t i = 0; i < r->n_outs; i++) {
        struct output *o = &r->outs[i];
        if (o->v.mode != MODE_ENCODE)
            continue;
        o->keep_hdr = hdr && !o->thumbnail && !o->sprite &&
                      strcmp(o->def->spec.container, "sprite") != 0 &&
                      tc_colour_keeps_hdr(&o->def->spec, &r->src_col);
        o->tonemap = hdr && !o->keep_hdr;
        keep |= o->keep_hdr;
        tm |= o->tonemap;
    }
    if (keep && (!r->src_col.has_mastering || !r->src_col.has_light))
        tc_colour_peek_hdr(r->p->input_path, r->p->input_fd, r->vi, &r->src_col);
    for (size_t i = 0; i < r->n_outs; i++) {
        struct output *o = &r->outs[i];
        if (o->v.mode == MODE_ENCODE)
            tc_colour_for_output(&r->src_col, o->keep_hdr,
                                 !strcmp(o->def->spec.video.codec, "mjpeg"), &o->col);
    }
    if (hdr)
        tc_log(TC_LOG_INFO, "hdr source transfer=%s kept=%d%s tone_mapped=%d",
               tc_colour_zimg_transfer(r->src_col.transfer), keep,
               !keep ? "" : r->src_col.has_mastering ? " (with its mastering display)" : " (no mastering display)",
               tm);
    return 0;
}

static int plan(struct run *r)
{
    const struct tc_run_params *p = r->p;
    int need_v = 0, need_a = 0, n_venc = 0, ret;

    if ((ret = expand(r)) < 0)
        return ret;
    r->outs = av_calloc(r->n_outs, sizeof(*r->outs));
    if (!r->outs)
        return tc_error_set(r->err, TC_ENOMEM, "out of memory");
    if (r->vst)
        tc_colour_of_stream(r->vst, &r->src_col);
    if ((ret = plan_clip(r)) < 0)
        return ret;
    for (size_t g = 0; g < r->n_groups; g++)
        for (size_t k = 0; k < tc_hls_count(r->groups[g].h); k++) {
            r->outs[r->groups[g].first + k].hls = r->groups[g].h;
            r->outs[r->groups[g].first + k].hls_k = k;
        }
    for (size_t i = 0; i < r->n_outs; i++) {
        struct output *o = &r->outs[i];
        const struct tc_output_spec *spec = &r->defs[i]->spec;
        o->def = r->defs[i];
        if (!o->def->path || !o->def->path[0])
            return tc_error_set(r->err, TC_EINVAL, "output '%s' has no path", spec->name);
        /* (an HLS output was checked as a whole by tc_hls_open) */
        if (!o->hls && (ret = tc_spec_check_input(spec, &r->info, r->err)) < 0)
            return ret;
        if (spec->has_video && r->vi >= 0)
            o->v.mode = !strcmp(spec->video.codec, "copy") ? MODE_COPY : MODE_ENCODE;
        if (spec->has_audio && r->ai >= 0)
            o->a.mode = !strcmp(spec->audio.codec, "copy") ? MODE_COPY : MODE_ENCODE;
        auto_copy(r, o);
        if (r->clip && o->v.mode == MODE_COPY && !strcmp(spec->video.codec, "copy") &&
            !clip_on_keyframes(r))
            return tc_error_set(r->err, TC_EINVALID_OUTPUT,
                                "output '%s': video 'copy' cannot cut at clip %g..%g s: the cut "
                                "points are not on keyframes (leave the codec out to encode)",
                                spec->name, r->clip_start, r->clip_end);
        o->thumbnail = !strcmp(spec->container, "jpg");
        o->at = o->thumbnail && spec->has_at_s;
        need_v |= o->v.mode == MODE_ENCODE;
        need_a |= o->a.mode == MODE_ENCODE;
        r->copy_v |= o->v.mode == MODE_COPY;
        n_venc += o->v.mode == MODE_ENCODE && !o->thumbnail && strcmp(spec->container, "sprite");
    }

    link_ladder(r);
    if ((ret = plan_colour(r)) < 0)
        return ret;

    /* A budget the job asked for itself (an output's "threads") wins. */
    int asked = 0;
    for (size_t i = 0; i < p->n_outputs; i++)
        if (p->outputs[i].spec.threads > asked)
            asked = p->outputs[i].spec.threads;
    int budget = asked > 0 ? asked : p->threads > 0 ? p->threads : 0;
    r->budget = budget;
    if (budget == 0) {
        r->dec_threads = 0;
        r->enc_threads = 0;
    } else {
        /* The budget is cores, not threads: a frame-threaded decoder
         * mostly waits on the encoders it feeds, so it gets the whole
         * budget, and the video encoders split it (at least one each). */
        r->dec_threads = budget;
        r->enc_threads = n_venc ? budget / n_venc : 1;
        if (r->enc_threads < 1)
            r->enc_threads = 1;
        if (r->dec_threads < 1)
            r->dec_threads = 1;
    }
    tc_log(TC_LOG_INFO, "threads budget=%d video_decoder=%d video_encoders=%d x%d%s", budget,
           need_v ? r->dec_threads : 0, n_venc, r->enc_threads,
           budget ? "" : " (0: each codec picks)");
    if (need_v && (ret = tc_decoder_open(r->vst, r->dec_threads, &r->vdec, r->err)) < 0)
        return ret;
    if (need_a && (ret = tc_decoder_open(r->ast, 1, &r->adec, r->err)) < 0)
        return ret;
    if (r->vdec && (r->vdec->pix_fmt == AV_PIX_FMT_NONE || r->vdec->width <= 0))
        return tc_error_set(r->err, TC_EUNSUPPORTED, "cannot tell the video's pixel format");
    if (r->adec && (r->adec->sample_fmt == AV_SAMPLE_FMT_NONE || r->adec->sample_rate <= 0 ||
                    r->adec->ch_layout.nb_channels <= 0))
        return tc_error_set(r->err, TC_EUNSUPPORTED, "cannot tell the audio's sample format");
    int loudness = 0;
    for (size_t i = 0; i < r->n_outs; i++)
        loudness |= r->outs[i].a.mode == MODE_ENCODE && r->defs[i]->spec.audio.loudness_lufs != 0.0;
    if (loudness && (ret = tc_loudness_measure(p->input_path, p->input_fd, r->ai, r->clip_start,
                                               r->clip_end, p->cancel, &r->loud, r->err)) < 0)
        return ret;
    for (size_t i = 0; i < r->n_outs; i++) {
        struct output *o = &r->outs[i];
        if ((ret = setup_output(r, o)) < 0)
            return ret;
        if (o->thumbnail && o->v.mode == MODE_ENCODE && !o->at &&
            tc_poster_open(r->dur, o->v.out_w, o->v.out_h, &o->poster) < 0)
            return tc_error_set(r->err, TC_ENOMEM, "out of memory");
    }
    return 0;
}

static int loop(struct run *r)
{
    int ret;
    for (;;) {
        if (canceled(r))
            return tc_error_set(r->err, TC_ECANCELED, "canceled");
        int all_done = 1;
        for (size_t i = 0; i < r->n_outs; i++)
            all_done &= r->outs[i].done;
        if (all_done)
            return 0;
        ret = tc_demux_read(r->in, r->offset, r->pkt);
        if (ret == AVERROR_EOF) {
            /* A container that announced its length (sample tables, an
             * index) but whose data stops well short of it was cut off:
             * a truncated upload is a failed job, not a short output. */
            double d = r->dur;
            if (d > 0 && r->out_time < 0.9 * d - 0.5)
                return tc_error_set(r->err, TC_EDECODE,
                                    "the input ends at %.1f s of its %.1f s (truncated?)",
                                    r->out_time, d);
            return 0;
        }
        if (ret < 0) {
            if (ret == AVERROR_EXIT || canceled(r))
                return tc_error_set(r->err, TC_ECANCELED, "canceled");
            return tc_error_av(r->err, TC_EDECODE, ret, "the input broke while reading");
        }
        int si = r->pkt->stream_index;
        if (si == r->vi || si == r->ai) {
            AVStream *st = r->in->fmt->streams[si];
            int64_t ts = r->pkt->dts != AV_NOPTS_VALUE ? r->pkt->dts : r->pkt->pts;
            if (ts != AV_NOPTS_VALUE) {
                double t = ts * av_q2d(st->time_base);
                if (r->clip_end > 0 && t > r->clip_end + 0.1) {
                    /* Past the clip's end in decode order: every frame of
                     * the clip has been read (finish() flushes them). */
                    av_packet_unref(r->pkt);
                    return 0;
                }
                t -= r->clip_start;
                if (t > r->out_time && (r->dur <= 0 || t <= r->dur * 1.5))
                    r->out_time = t;
            }
            ret = 0;
            for (size_t i = 0; i < r->n_outs && ret >= 0; i++) {
                struct output *o = &r->outs[i];
                struct out_stream *s = si == r->vi ? &o->v : &o->a;
                if (!o->done && s->mode == MODE_COPY)
                    ret = copy_packet(r, o, s, r->pkt, st);
            }
            if (si == r->vi && !r->vdec && r->copy_v)
                r->vframes++; /* copied, not decoded: count packets as frames */
            if (ret >= 0 && si == r->vi && r->vdec)
                ret = decode(r, r->vdec, r->pkt);
            else if (ret >= 0 && si == r->ai && r->adec)
                ret = decode(r, r->adec, r->pkt);
            if (ret < 0) {
                av_packet_unref(r->pkt);
                return ret;
            }
        }
        av_packet_unref(r->pkt);
        maybe_publish(r);
    }
}

static int finish(struct run *r)
{
    int ret;
    if (r->vdec && (ret = decode(r, r->vdec, NULL)) < 0)
        return ret;
    if ((ret = feed_picture(r, NULL)) < 0)
        return ret;
    if (r->adec && (ret = decode(r, r->adec, NULL)) < 0)
        return ret;
    if (r->vdec && r->vframes == 0)
        return tc_error_set(r->err, TC_EDECODE, "no video frame could be decoded");
    if (r->adec && r->aframes == 0 && !r->vdec)
        return tc_error_set(r->err, TC_EDECODE, "no audio frame could be decoded");
    for (size_t i = 0; i < r->n_outs; i++) {
        struct output *o = &r->outs[i];
        if (o->thumbnail && !o->done && o->poster) {
            /* The video ended inside the pick window: pick from what the
             * chain still holds and what it gave. */
            ret = tc_filter_push(o->v.filter, NULL);
            if (ret < 0 && ret != AVERROR_EOF)
                return fail_av(r, TC_EINTERNAL, ret, "filtering failed");
            if ((ret = drain_chain(r, o, &o->v)) < 0)
                return ret;
            if (!o->done && (ret = write_poster(r, o)) < 0)
                return ret;
        }
        if ((ret = flush_stream(r, o, &o->v)) < 0 || (ret = flush_stream(r, o, &o->a)) < 0)
            return ret;
        if (canceled(r))
            return tc_error_set(r->err, TC_ECANCELED, "canceled");
        if (!o->done && o->at)
            return tc_error_set(r->err, TC_EDECODE, "output '%s': the video has no picture at %g s",
                                o->def->spec.name, o->def->spec.at_s);
        if (!o->done && o->thumbnail)
            return tc_error_set(r->err, TC_EDECODE, "no picture for the thumbnail");
        if ((ret = finish_output(r, o)) < 0)
            return ret;
    }
    return 0;
}

static int finish_groups(struct run *r, struct tc_output_result *results)
{
    int ret;
    for (size_t g = 0; g < r->n_groups; g++) {
        struct hls_group *hg = &r->groups[g];
        struct tc_output_result res;
        double duration = 0;
        for (size_t k = 0; k < tc_hls_count(hg->h); k++)
            if (r->outs[hg->first + k].result.duration_s > duration)
                duration = r->outs[hg->first + k].result.duration_s;
        if ((ret = tc_hls_finish(hg->h, duration, &res, r->err)) < 0)
            return ret;
        if (results)
            results[hg->user] = res;
    }
    return 0;
}

int tc_run(const struct tc_run_params *params, struct tc_output_result *results,
           struct tc_error *err)
{
    struct run run;
    struct run *r = &run;
    int ret;

    memset(r, 0, sizeof(*r));
    r->p = params;
    r->err = err;
    r->vi = r->ai = -1;
    r->first_vpts = AV_NOPTS_VALUE;
    r->t0 = r->last_update = av_gettime_relative();
    if (!params || (!params->input_path && params->input_fd < 0) || !params->outputs ||
        params->n_outputs == 0)
        return tc_error_set(err, TC_EINVAL, "a run needs an input and at least one output");
    if (params->progress)
        tc_progress_init(params->progress);

    ret = params->input_path ? tc_input_open(params->input_path, params->cancel, &r->in, err)
                             : tc_input_open_fd(params->input_fd, params->cancel, &r->in, err);
    if (ret < 0)
        goto out;
    if ((ret = tc_probe_input(r->in, &r->info, &r->vi, &r->ai, err)) < 0)
        goto out;
    r->vst = r->vi >= 0 ? r->in->fmt->streams[r->vi] : NULL;
    r->ast = r->ai >= 0 ? r->in->fmt->streams[r->ai] : NULL;
    r->offset = tc_demux_start_offset(r->in);
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    r->filt = av_frame_alloc();
    r->sdr = av_frame_alloc();
    if (!r->pkt || !r->frame || !r->filt || !r->sdr) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory");
        goto out;
    }
    /* Skip the streams nobody reads. */
    for (unsigned i = 0; i < r->in->fmt->nb_streams; i++)
        if ((int)i != r->vi && (int)i != r->ai)
            r->in->fmt->streams[i]->discard = AVDISCARD_ALL;
    if ((ret = plan(r)) < 0)
        goto out;
    if (r->clip_start > 0) {
        /* To the keyframe at or before the start (decoded from there, the
         * frames before the start dropped); a file that cannot seek is
         * read from its start. */
        int64_t ts = (int64_t)(r->clip_start * AV_TIME_BASE) + r->offset;
        if (avformat_seek_file(r->in->fmt, -1, INT64_MIN, ts, ts, 0) < 0)
            tc_log(TC_LOG_WARNING, "clip: cannot seek to %.3f s; reading from the start", r->clip_start);
    }
    publish(r, 0);
    if ((ret = loop(r)) < 0)
        goto out;
    if ((ret = finish(r)) < 0)
        goto out;
    if (results)
        for (size_t i = 0; i < r->n_outs; i++)
            if (!r->outs[i].hls)
                results[r->user[i]] = r->outs[i].result;
    if ((ret = finish_groups(r, results)) < 0)
        goto out;
    publish(r, 1);
    ret = 0;
out:
    if (ret < 0) {
        if (canceled(r) && ret != TC_ECANCELED)
            ret = tc_error_set(err, TC_ECANCELED, "canceled");
        remove_finished(r);
    }
    run_free(r);
    return ret;
}
