/* demux.c - read packets of the input with its start time taken off, so
 * that every output starts at 0.
 *
 * Threading: the thread running the input. */
#include <libavformat/avformat.h>

#include "transcode/tc.h"
#include "internal.h"

int64_t tc_demux_start_offset(const struct tc_input *in)
{
    int64_t st = in->fmt->start_time;
    return st == AV_NOPTS_VALUE ? 0 : st;
}

int tc_demux_read(struct tc_input *in, int64_t offset_us, AVPacket *pkt)
{
    int r = av_read_frame(in->fmt, pkt);
    if (r < 0)
        return r;
    if (offset_us) {
        const AVStream *st = in->fmt->streams[pkt->stream_index];
        int64_t off = av_rescale_q(offset_us, AV_TIME_BASE_Q, st->time_base);
        if (pkt->pts != AV_NOPTS_VALUE)
            pkt->pts -= off;
        if (pkt->dts != AV_NOPTS_VALUE)
            pkt->dts -= off;
    }
    return 0;
}
