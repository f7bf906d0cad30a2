/*
 * preload.c - tc_preload (see tc.h): libav*'s lazy one-time set-up, done
 * up front.
 *
 * Why: FFmpeg initialises a good deal on first use, behind once-guards:
 * the first av_codec_iterate() calls every codec's init_static_data (for
 * the external encoders that is a query of libx265, libaom, libvpx...),
 * and the lists of parsers, formats and filters are built on first walk.
 * A zygote that does it before forking hands every child the result in
 * shared pages (measured in README, "Upload latency").
 */
#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavformat/avformat.h>

#include "transcode/tc.h"

void tc_preload(void)
{
    void *it = NULL;
    while (av_codec_iterate(&it))
        ;
    it = NULL;
    while (av_parser_iterate(&it))
        ;
    it = NULL;
    while (av_demuxer_iterate(&it))
        ;
    it = NULL;
    while (av_muxer_iterate(&it))
        ;
    it = NULL;
    while (av_filter_iterate(&it))
        ;
}
