/* decode.c - open one decoder per input stream: threaded as the ffmpeg
 * CLI does (frame + slice), frame size capped.
 *
 * Threading: the thread running the input; libavcodec runs its own
 * worker threads. */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "transcode/tc.h"
#include "internal.h"

int tc_decoder_open(const AVStream *st, int threads, AVCodecContext **out, struct tc_error *err)
{
    AVCodecContext *ctx = NULL;
    int ret, r;
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);

    *out = NULL;
    if (!codec)
        return tc_error_set(err, TC_EUNSUPPORTED, "no decoder for codec '%s'",
                            avcodec_get_name(st->codecpar->codec_id));
    ctx = avcodec_alloc_context3(codec);
    if (!ctx)
        return tc_error_set(err, TC_ENOMEM, "out of memory opening a decoder");
    r = avcodec_parameters_to_context(ctx, st->codecpar);
    if (r < 0) {
        ret = tc_error_av(err, TC_EUNSUPPORTED, r, "bad stream parameters");
        goto out;
    }
    ctx->pkt_timebase = st->time_base;
    ctx->max_pixels = TC_MAX_PIXELS;
    ctx->thread_count = threads;
    ctx->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
        ctx->framerate = st->avg_frame_rate;
    r = avcodec_open2(ctx, codec, NULL);
    if (r < 0) {
        ret = tc_error_av(err, TC_EUNSUPPORTED, r, "cannot open the decoder");
        goto out;
    }
    *out = ctx;
    ctx = NULL;
    ret = 0;
out:
    avcodec_free_context(&ctx);
    return ret;
}
