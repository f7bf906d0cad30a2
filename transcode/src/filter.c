/* filter.c - libavfilter chains from decoded frames to one encoder's
 * input: deinterlace, rotate, scale, pixel format, frame rate for video;
 * resample, sample format, channel layout and fixed frame size for audio.
 *
 * HDR to SDR (tc_filter_tonemap_open) is one chain of its own per run,
 * between the decoder and every chain that wants SDR, so an HLS ladder
 * (or several outputs) tone-maps each picture once, at the source's size:
 *   zscale=tin=<PQ|HLG>:pin=bt2020:min=<matrix>:rin=<range>:t=linear:npl=100,
 *   format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=mobius:desat=0,
 *   zscale=t=bt709:m=bt709:r=tv,format=yuv420p
 * Linear light with 100 cd/m2 as SDR white, BT.2020 -> BT.709 primaries
 * in linear float, then Mobius: linear (unchanged) up to 30% of SDR
 * white, so mid-grey and skin tones keep their level, and highlights up
 * to the source's peak (its metadata) rolled off smoothly into white.
 * Hable, the other usual pick, darkens the mid-tones by a third (a
 * mid-grey patch at luma 126 comes out 89); desat=0 keeps the colour of
 * highlights. zimg does the conversions on the CPU (slice threads).
 *
 * Frames are pushed by reference (AV_BUFFERSRC_FLAG_KEEP_REF), so several
 * chains fed from one decoded frame share its buffers; a chain whose
 * filters all pass through (same size and format) copies nothing.
 *
 * Threading: the thread running the pipeline; the graph may use its own
 * slice threads. */
#include <stdio.h>
#include <string.h>

#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>

#include "transcode/tc.h"
#include "internal.h"

struct tc_filter {
    AVFilterGraph *graph;
    AVFilterContext *src, *sink;
};

void tc_filter_free(struct tc_filter **f)
{
    if (!f || !*f)
        return;
    avfilter_graph_free(&(*f)->graph);
    av_free(*f);
    *f = NULL;
}

/* Build src -> desc -> sink and configure the graph. */
static int build(struct tc_filter *f, const char *desc, struct tc_error *err)
{
    AVFilterInOut *outputs = avfilter_inout_alloc();
    AVFilterInOut *inputs = avfilter_inout_alloc();
    int ret = TC_ENOMEM, r;
    if (!outputs || !inputs)
        goto out;
    outputs->name = av_strdup("in");
    outputs->filter_ctx = f->src;
    inputs->name = av_strdup("out");
    inputs->filter_ctx = f->sink;
    if (!outputs->name || !inputs->name)
        goto out;
    r = avfilter_graph_parse_ptr(f->graph, desc, &inputs, &outputs, NULL);
    if (r < 0) {
        ret = tc_error_av(err, TC_EINTERNAL, r, "cannot build the filter graph");
        tc_log(TC_LOG_ERROR, "filter graph was: %s", desc);
        goto out;
    }
    r = avfilter_graph_config(f->graph, NULL);
    if (r < 0) {
        ret = tc_error_av(err, TC_EINTERNAL, r, "cannot configure the filter graph");
        tc_log(TC_LOG_ERROR, "filter graph was: %s", desc);
        goto out;
    }
    ret = 0;
out:
    if (ret == TC_ENOMEM)
        tc_error_set(err, TC_ENOMEM, "out of memory building a filter graph");
    avfilter_inout_free(&inputs);
    avfilter_inout_free(&outputs);
    return ret;
}

int tc_filter_video_open(const struct tc_video_chain *c, struct tc_filter **out,
                         struct tc_error *err)
{
    struct tc_filter *f = NULL;
    char args[512], desc[1024];
    int ret = TC_ENOMEM, r, n = 0;

    *out = NULL;
    f = av_mallocz(sizeof(*f));
    if (!f || !(f->graph = avfilter_graph_alloc()))
        goto nomem;
    f->graph->nb_threads = c->threads;
    /* The ffmpeg CLI's default scaler, for the same pictures and speed. */
    f->graph->scale_sws_opts = av_strdup("flags=bicubic");
    if (!f->graph->scale_sws_opts)
        goto nomem;

    snprintf(args, sizeof(args), "video_size=%dx%d:pix_fmt=%d:time_base=%d/%d:pixel_aspect=%d/%d",
             c->in_w, c->in_h, c->in_fmt, c->in_tb_num, c->in_tb_den,
             c->sar_num > 0 ? c->sar_num : 1, c->sar_den > 0 ? c->sar_den : 1);
    if (c->fr_num > 0 && c->fr_den > 0) {
        size_t l = strlen(args);
        snprintf(args + l, sizeof(args) - l, ":frame_rate=%d/%d", c->fr_num, c->fr_den);
    }
    r = avfilter_graph_create_filter(&f->src, avfilter_get_by_name("buffer"), "in", args, NULL,
                                     f->graph);
    if (r >= 0)
        r = avfilter_graph_create_filter(&f->sink, avfilter_get_by_name("buffersink"), "out",
                                         NULL, NULL, f->graph);
    if (r < 0) {
        ret = tc_error_av(err, TC_EINTERNAL, r, "cannot create the video filter ends");
        goto out;
    }

#define ADD(...) n += snprintf(desc + n, sizeof(desc) - (size_t)n, __VA_ARGS__)
    desc[0] = '\0';
    if (c->deinterlace)
        ADD("bwdif=mode=send_frame:parity=auto:deint=interlaced,");
    if (c->rotation == 90)
        ADD("transpose=clock,");
    else if (c->rotation == 180)
        ADD("hflip,vflip,");
    else if (c->rotation == 270)
        ADD("transpose=cclock,");
    if (c->sharp)
        ADD("scale=%d:%d:flags=lanczos,setsar=1,", c->out_w, c->out_h);
    else
        ADD("scale=%d:%d,setsar=1,", c->out_w, c->out_h);
    ADD("format=%s", av_get_pix_fmt_name((enum AVPixelFormat)c->out_fmt));
    if (c->fps > 0)
        ADD(",fps=%.6f", c->fps);
#undef ADD
    if (n >= (int)sizeof(desc)) {
        ret = tc_error_set(err, TC_EINTERNAL, "filter description too long");
        goto out;
    }
    if ((ret = build(f, desc, err)) < 0)
        goto out;
    *out = f;
    f = NULL;
    ret = 0;
    goto out;
nomem:
    ret = tc_error_set(err, TC_ENOMEM, "out of memory building a filter graph");
out:
    tc_filter_free(&f);
    return ret;
}

void tc_filter_tonemap_desc(const struct tc_tonemap_chain *c, char *buf, size_t size)
{
    snprintf(buf, size,
             "zscale=tin=%s:pin=bt2020:min=%s:rin=%s:t=linear:npl=100,format=gbrpf32le,"
             "zscale=p=bt709,tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,"
             "format=yuv420p",
             tc_colour_zimg_transfer(c->transfer),
             c->matrix == AVCOL_SPC_BT2020_CL ? "bt2020c" : "bt2020nc",
             c->range == AVCOL_RANGE_JPEG ? "pc" : "tv");
}

int tc_filter_tonemap_open(const struct tc_tonemap_chain *c, struct tc_filter **out,
                           struct tc_error *err)
{
    struct tc_filter *f = NULL;
    char args[512], desc[512];
    int ret, r;

    *out = NULL;
    f = av_mallocz(sizeof(*f));
    if (!f || !(f->graph = avfilter_graph_alloc())) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory building a filter graph");
        goto out;
    }
    f->graph->nb_threads = c->threads;
    snprintf(args, sizeof(args), "video_size=%dx%d:pix_fmt=%d:time_base=%d/%d:pixel_aspect=%d/%d",
             c->in_w, c->in_h, c->in_fmt, c->in_tb_num, c->in_tb_den,
             c->sar_num > 0 ? c->sar_num : 1, c->sar_den > 0 ? c->sar_den : 1);
    r = avfilter_graph_create_filter(&f->src, avfilter_get_by_name("buffer"), "in", args, NULL,
                                     f->graph);
    if (r >= 0)
        r = avfilter_graph_create_filter(&f->sink, avfilter_get_by_name("buffersink"), "out",
                                         NULL, NULL, f->graph);
    if (r < 0) {
        ret = tc_error_av(err, TC_EINTERNAL, r, "cannot create the tone mapping filter ends");
        goto out;
    }
    tc_filter_tonemap_desc(c, desc, sizeof(desc));
    if ((ret = build(f, desc, err)) < 0)
        goto out;
    *out = f;
    f = NULL;
    ret = 0;
out:
    tc_filter_free(&f);
    return ret;
}

int tc_filter_audio_open(const struct tc_audio_chain *c, struct tc_filter **out,
                         struct tc_error *err)
{
    struct tc_filter *f = NULL;
    char args[512], desc[1024], layout[128], out_layout[128];
    int ret, r;
    AVChannelLayout ol;

    *out = NULL;
    f = av_mallocz(sizeof(*f));
    if (!f || !(f->graph = avfilter_graph_alloc())) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory building a filter graph");
        goto out;
    }
    f->graph->nb_threads = 1;
    const AVChannelLayout *il = c->in_layout;
    if (il->order == AV_CHANNEL_ORDER_UNSPEC) {
        AVChannelLayout d;
        av_channel_layout_default(&d, il->nb_channels);
        r = av_channel_layout_describe(&d, layout, sizeof(layout));
    } else {
        r = av_channel_layout_describe(il, layout, sizeof(layout));
    }
    av_channel_layout_default(&ol, c->out_channels);
    if (r >= 0)
        r = av_channel_layout_describe(&ol, out_layout, sizeof(out_layout));
    if (r < 0) {
        ret = tc_error_set(err, TC_EUNSUPPORTED, "unusable audio channel layout");
        goto out;
    }
    snprintf(args, sizeof(args), "time_base=%d/%d:sample_rate=%d:sample_fmt=%s:channel_layout=%s",
             c->in_tb_num, c->in_tb_den, c->in_rate,
             av_get_sample_fmt_name((enum AVSampleFormat)c->in_fmt), layout);
    r = avfilter_graph_create_filter(&f->src, avfilter_get_by_name("abuffer"), "in", args, NULL,
                                     f->graph);
    if (r >= 0)
        r = avfilter_graph_create_filter(&f->sink, avfilter_get_by_name("abuffersink"), "out",
                                         NULL, NULL, f->graph);
    if (r < 0) {
        ret = tc_error_av(err, TC_EINTERNAL, r, "cannot create the audio filter ends");
        goto out;
    }
    int n = 0;
#define ADD(...) n += snprintf(desc + n, sizeof(desc) - (size_t)(n < (int)sizeof(desc) ? n : (int)sizeof(desc)), __VA_ARGS__)
    desc[0] = '\0';
    if (c->trim) {
        /* A clip (the pipeline took its start off the timestamps): to the
         * sample, what is before 0 or at or after trim_end_s goes. */
        ADD("atrim=start=0");
        if (c->trim_end_s > 0)
            ADD(":end=%.6f", c->trim_end_s);
        ADD(",");
    }
    if (c->loudness_lufs != 0.0 && c->measured && c->measured->valid) {
        /* EBU R128 (loudness.c): a linear gain when the true peak allows
         * it; the peak target leaves room for the encoder's overshoot. */
        const struct tc_loudness *m = c->measured;
        ADD("loudnorm=I=%.2f:TP=%.1f:LRA=%.1f:measured_I=%.2f:measured_TP=%.2f:"
            "measured_LRA=%.2f:measured_thresh=%.2f:linear=true,",
            c->loudness_lufs, TC_LOUDNESS_TP_TARGET, m->lra > 20.0 ? 20.0 : m->lra < 1.0 ? 1.0 : m->lra,
            m->i, m->tp, m->lra, m->thresh);
    }
    ADD("aresample=%d,aformat=sample_fmts=%s:sample_rates=%d:channel_layouts=%s", c->out_rate,
        av_get_sample_fmt_name((enum AVSampleFormat)c->out_fmt), c->out_rate, out_layout);
#undef ADD
    if (n >= (int)sizeof(desc)) {
        ret = tc_error_set(err, TC_EINTERNAL, "filter description too long");
        goto out;
    }
    if ((ret = build(f, desc, err)) < 0)
        goto out;
    /* Encoders such as AAC take exactly frame_size samples per frame: the
     * sink's own FIFO cuts the stream into such frames (the last may be
     * shorter, which the encoders accept). */
    if (c->frame_size > 0)
        av_buffersink_set_frame_size(f->sink, (unsigned)c->frame_size);
    *out = f;
    f = NULL;
    ret = 0;
out:
    tc_filter_free(&f);
    return ret;
}

int tc_filter_push(struct tc_filter *f, AVFrame *frame)
{
    return av_buffersrc_add_frame_flags(f->src, frame, AV_BUFFERSRC_FLAG_KEEP_REF | AV_BUFFERSRC_FLAG_PUSH);
}

int tc_filter_pull(struct tc_filter *f, AVFrame *frame)
{
    return av_buffersink_get_frame(f->sink, frame);
}

void tc_filter_out_timing(const struct tc_filter *f, int *tb_num, int *tb_den, int *fr_num,
                          int *fr_den)
{
    AVRational tb = av_buffersink_get_time_base(f->sink);
    AVRational fr = av_buffersink_get_frame_rate(f->sink);
    *tb_num = tb.num;
    *tb_den = tb.den;
    *fr_num = fr.num;
    *fr_den = fr.den;
}
