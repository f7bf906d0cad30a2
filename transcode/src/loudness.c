/* loudness.c - the first pass of EBU R128 loudness normalization
 * ("audio": {"loudness_lufs": f}): measure the input's audio.
 *
 * DESIGN
 *   Two passes over the audio, one over the video: before the run, the
 *   input is opened a second time with every stream but the audio
 *   discarded, the audio (of the clip, if any) is decoded and fed to
 *   libavfilter's ebur128 (integrated loudness I, loudness range LRA, true
 *   peak per channel, 4x oversampled). The run's audio chains then put
 *   loudnorm, told these measurements, before their resampler
 *   (filter.c): with the measurements it applies one linear gain (target -
 *   I) whenever that keeps the true peak under the target peak, so the
 *   level lands on the target exactly and the dynamics are untouched;
 *   only a gain that would push peaks over the ceiling makes it switch to
 *   its dynamic mode (a true-peak limiter with a 3 s lookahead).
 *   The video is never decoded here: demuxing skips its packets.
 *
 * Threading: the thread running the pipeline; no shared state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/dict.h>

#include "transcode/tc.h"
#include "internal.h"

struct meter {
    AVFilterGraph *graph;
    AVFilterContext *src, *sink;
};

static void meter_free(struct meter *m)
{
    avfilter_graph_free(&m->graph);
}

static int meter_open(struct meter *m, const AVCodecContext *dec, const AVStream *st,
                      struct tc_error *err)
{
    char args[512], layout[128];
    AVFilterInOut *outputs = NULL, *inputs = NULL;
    int r, ret;

    if (!(m->graph = avfilter_graph_alloc()))
        return tc_error_set(err, TC_ENOMEM, "out of memory");
    m->graph->nb_threads = 1;
    if (dec->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        AVChannelLayout d;
        av_channel_layout_default(&d, dec->ch_layout.nb_channels);
        r = av_channel_layout_describe(&d, layout, sizeof(layout));
    } else {
        r = av_channel_layout_describe(&dec->ch_layout, layout, sizeof(layout));
    }
    if (r < 0)
        return tc_error_set(err, TC_EUNSUPPORTED, "unusable audio channel layout");
    snprintf(args, sizeof(args), "time_base=%d/%d:sample_rate=%d:sample_fmt=%s:channel_layout=%s",
             st->time_base.num, st->time_base.den, dec->sample_rate,
             av_get_sample_fmt_name(dec->sample_fmt), layout);
    r = avfilter_graph_create_filter(&m->src, avfilter_get_by_name("abuffer"), "in", args, NULL,
                                     m->graph);
    if (r >= 0)
        r = avfilter_graph_create_filter(&m->sink, avfilter_get_by_name("abuffersink"), "out",
                                         NULL, NULL, m->graph);
    if (r < 0)
        return tc_error_av(err, TC_EINTERNAL, r, "cannot create the loudness meter");
    outputs = avfilter_inout_alloc();
    inputs = avfilter_inout_alloc();
    ret = TC_ENOMEM;
    if (!outputs || !inputs || !(outputs->name = av_strdup("in")) ||
        !(inputs->name = av_strdup("out"))) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory");
        goto out;
    }
    outputs->filter_ctx = m->src;
    inputs->filter_ctx = m->sink;
    r = avfilter_graph_parse_ptr(m->graph, "ebur128=peak=true:metadata=1", &inputs, &outputs,
                                 NULL);
    if (r >= 0)
        r = avfilter_graph_config(m->graph, NULL);
    if (r < 0) {
        ret = tc_error_av(err, TC_EINTERNAL, r, "cannot configure the loudness meter");
        goto out;
    }
    ret = 0;
out:
    avfilter_inout_free(&inputs);
    avfilter_inout_free(&outputs);
    return ret;
}

static double meta_num(const AVDictionary *d, const char *key, double dflt)
{
    const AVDictionaryEntry *e = av_dict_get(d, key, NULL, 0);
    if (!e)
        return dflt;
    char *end = NULL;
    double v = strtod(e->value, &end);
    return end && end != e->value ? v : dflt;
}

/* Read what the meter has given so far into out. */
static int meter_drain(struct meter *m, AVFrame *f, struct tc_loudness *out)
{
    for (;;) {
        int r = av_buffersink_get_frame(m->sink, f);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
            return 0;
        if (r < 0)
            return r;
        out->i = meta_num(f->metadata, "lavfi.r128.I", out->i);
        out->lra = meta_num(f->metadata, "lavfi.r128.LRA", out->lra);
        /* (a linear amplitude, the largest of every channel so far) */
        double tp = meta_num(f->metadata, "lavfi.r128.true_peak", 0.0);
        if (tp > 0.0 && 20.0 * log10(tp) > out->tp)
            out->tp = 20.0 * log10(tp);
        av_frame_unref(f);
    }
}

int tc_loudness_measure(const char *path, int fd, int ai, double start_s, double end_s,
                        atomic_int *cancel, struct tc_loudness *out, struct tc_error *err)
{
    struct tc_input *in = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc(), *mf = av_frame_alloc();
    struct meter m = {0};
    int ret, r, eof = 0;

    memset(out, 0, sizeof(*out));
    out->i = -70.0;
    out->tp = -HUGE_VAL;
    if (!pkt || !f || !mf) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory");
        goto out;
    }
    ret = path ? tc_input_open(path, cancel, &in, err) : tc_input_open_fd(fd, cancel, &in, err);
    if (ret < 0)
        goto out;
    if (ai < 0 || ai >= (int)in->fmt->nb_streams) {
        ret = tc_error_set(err, TC_EINTERNAL, "no audio stream to measure");
        goto out;
    }
    AVStream *st = in->fmt->streams[ai];
    for (unsigned i = 0; i < in->fmt->nb_streams; i++)
        if ((int)i != ai)
            in->fmt->streams[i]->discard = AVDISCARD_ALL;
    if ((ret = tc_decoder_open(st, 1, &dec, err)) < 0)
        goto out;
    if ((ret = meter_open(&m, dec, st, err)) < 0)
        goto out;
    int64_t offset = tc_demux_start_offset(in);
    while (!eof) {
        if (cancel && atomic_load(cancel)) {
            ret = tc_error_set(err, TC_ECANCELED, "canceled");
            goto out;
        }
        r = tc_demux_read(in, offset, pkt);
        if (r == AVERROR_EOF) {
            eof = 1;
            r = avcodec_send_packet(dec, NULL);
        } else if (r < 0) {
            ret = tc_error_av(err, TC_EDECODE, r, "the input broke while measuring its loudness");
            goto out;
        } else {
            if (pkt->stream_index != ai) {
                av_packet_unref(pkt);
                continue;
            }
            r = avcodec_send_packet(dec, pkt);
            av_packet_unref(pkt);
        }
        if (r < 0 && r != AVERROR_EOF && r != AVERROR(EAGAIN))
            continue; /* a damaged packet: the run itself counts those */
        while ((r = avcodec_receive_frame(dec, f)) == 0) {
            int64_t pts = f->best_effort_timestamp;
            double t = pts != AV_NOPTS_VALUE ? pts * av_q2d(st->time_base) : 0.0;
            double len = f->sample_rate > 0 ? (double)f->nb_samples / f->sample_rate : 0.0;
            /* Only the clip is measured (to the frame). */
            if (t + len <= start_s || (end_s > 0 && t >= end_s) || f->sample_rate != dec->sample_rate ||
                f->format != dec->sample_fmt ||
                f->ch_layout.nb_channels != dec->ch_layout.nb_channels) {
                av_frame_unref(f);
                if (end_s > 0 && t >= end_s)
                    eof = 1;
                continue;
            }
            f->pts = pts;
            r = av_buffersrc_add_frame(m.src, f); /* takes the frame's data */
            if (r >= 0)
                r = meter_drain(&m, mf, out);
            if (r < 0) {
                ret = tc_error_av(err, TC_EINTERNAL, r, "measuring the loudness failed");
                goto out;
            }
        }
    }
    r = av_buffersrc_add_frame(m.src, NULL);
    if (r >= 0 || r == AVERROR_EOF)
        r = meter_drain(&m, mf, out);
    if (r < 0) {
        ret = tc_error_av(err, TC_EINTERNAL, r, "measuring the loudness failed");
        goto out;
    }
    if (!isfinite(out->tp))
        out->tp = -70.0;
    /* loudnorm's measured_thresh: the relative gate, 10 LU under the
     * gated loudness. */
    out->thresh = out->i - 10.0;
    out->valid = out->i > -70.0;
    tc_log(TC_LOG_INFO, "loudness measured I=%.2f LUFS LRA=%.2f LU TP=%.2f dBTP", out->i, out->lra,
           out->tp);
    ret = 0;
out:
    meter_free(&m);
    av_frame_free(&mf);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    tc_input_close(&in);
    return ret;
}
