/* mux.c - write one output file aside ("<path>.part", format named
 * explicitly, file protocol only), rename it into place when complete,
 * remove it on failure.
 *
 * Threading: the thread running the pipeline. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/common.h>
#include <libavutil/mem.h>

#include "transcode/tc.h"
#include "internal.h"

struct tc_mux {
    AVFormatContext *oc;
    char *path, *part;
    int header_written;
    int64_t max_end;        /* furthest packet end, AV_TIME_BASE units */
    int hls;                /* an HLS rung: path is its index.m3u8 inside a
                             * directory written aside by the pipeline; the
                             * muxer opens its own files, nothing renamed */
    double hls_time;        /* target segment duration, seconds */
    int hls_fmp4;           /* fMP4 segments, else MPEG-TS */
    int64_t last_dts[TC_MUX_MAX_STREAMS]; /* per stream, its time base */
    int64_t bumped;         /* packets whose dts was moved forward */
};

static int interrupt_cb(void *opaque)
{
    atomic_int *cancel = opaque;
    return cancel && atomic_load(cancel);
}

void tc_mux_free(struct tc_mux **mp)
{
    if (!mp || !*mp)
        return;
    struct tc_mux *m = *mp;
    if (m->oc) {
        if (m->oc->pb)
            avio_closep(&m->oc->pb);
        avformat_free_context(m->oc);
    }
    if (m->part)
        unlink(m->part);
    av_free(m->path);
    av_free(m->part);
    av_free(m);
    *mp = NULL;
}

int tc_mux_open(const char *container, const char *path, atomic_int *cancel, struct tc_mux **out,
                struct tc_error *err)
{
    struct tc_mux *m = NULL;
    AVDictionary *opts = NULL;
    int ret, r;
    const char *muxer = tc_container_muxer(container);

    *out = NULL;
    if (!muxer)
        return tc_error_set(err, TC_EINVALID_OUTPUT, "container '%s' cannot be written here",
                            container);
    m = av_mallocz(sizeof(*m));
    if (!m || !(m->path = av_strdup(path)) || !(m->part = av_asprintf("%s.part", path))) {
        if (m) {
            av_free(m->path);
            av_free(m);
        }
        return tc_error_set(err, TC_ENOMEM, "out of memory opening an output");
    }
    for (int i = 0; i < TC_MUX_MAX_STREAMS; i++)
        m->last_dts[i] = AV_NOPTS_VALUE;
    m->max_end = 0;
    r = avformat_alloc_output_context2(&m->oc, NULL, muxer, m->part);
    if (r < 0 || !m->oc) {
        ret = tc_error_av(err, TC_EINTERNAL, r, "cannot create the muxer");
        goto out;
    }
    m->oc->interrupt_callback.callback = interrupt_cb;
    m->oc->interrupt_callback.opaque = cancel;
    if (!strcmp(container, "hls")) {
        /* The hls muxer opens the playlist and segments itself (through
         * the file protocol only); path is written in place. */
        m->hls = 1;
        m->hls_time = 4.0;
        av_freep(&m->part);
        av_freep(&m->oc->url);
        if (!(m->oc->url = av_strdup(path)) || !(m->oc->protocol_whitelist = av_strdup("file"))) {
            ret = tc_error_set(err, TC_ENOMEM, "out of memory opening an output");
            goto out;
        }
        *out = m;
        m = NULL;
        ret = 0;
        goto out;
    }
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    r = avio_open2(&m->oc->pb, m->part, AVIO_FLAG_WRITE, &m->oc->interrupt_callback, &opts);
    if (r < 0) {
        ret = tc_error_av(err, TC_EIO, r, "cannot create the output file");
        /* Not created: nothing to unlink, but unlink is harmless. */
        goto out;
    }
    *out = m;
    m = NULL;
    ret = 0;
out:
    av_dict_free(&opts);
    tc_mux_free(&m);
    return ret;
}

void tc_mux_set_hls(struct tc_mux *m, double seconds, int fmp4)
{
    if (seconds > 0)
        m->hls_time = seconds;
    m->hls_fmp4 = fmp4;
}

int tc_mux_global_header(const struct tc_mux *m)
{
    return (m->oc->oformat->flags & AVFMT_GLOBALHEADER) != 0;
}

int tc_mux_add_encoded(struct tc_mux *m, const AVCodecContext *enc, const char *container)
{
    AVStream *st = avformat_new_stream(m->oc, NULL);
    if (!st)
        return AVERROR(ENOMEM);
    int r = avcodec_parameters_from_context(st->codecpar, enc);
    if (r < 0)
        return r;
    st->time_base = enc->time_base;
    if (enc->codec_type == AVMEDIA_TYPE_VIDEO) {
        st->avg_frame_rate = enc->framerate;
        st->sample_aspect_ratio = enc->sample_aspect_ratio;
        /* Apple players want HEVC tagged hvc1 in MP4 (and in HLS fMP4,
         * whose segments the hls muxer writes with the tag given here). */
        if (enc->codec_id == AV_CODEC_ID_HEVC && (!strcmp(container, "mp4") || !strcmp(container, "hls")))
            st->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');
    }
    return st->index;
}

int tc_mux_set_hdr(struct tc_mux *m, int index, const struct tc_colour *c)
{
    AVStream *st = m->oc->streams[index];
    if (c->has_mastering) {
        uint8_t *d = av_stream_new_side_data(st, AV_PKT_DATA_MASTERING_DISPLAY_METADATA,
                                             sizeof(AVMasteringDisplayMetadata));
        if (!d)
            return AVERROR(ENOMEM);
        memcpy(d, &c->mastering, sizeof(AVMasteringDisplayMetadata));
    }
    if (c->has_light) {
        uint8_t *d = av_stream_new_side_data(st, AV_PKT_DATA_CONTENT_LIGHT_LEVEL,
                                             sizeof(AVContentLightMetadata));
        if (!d)
            return AVERROR(ENOMEM);
        memcpy(d, &c->light, sizeof(AVContentLightMetadata));
    }
    return 0;
}

int tc_mux_add_copy(struct tc_mux *m, const AVStream *ist)
{
    AVStream *st = avformat_new_stream(m->oc, NULL);
    if (!st)
        return AVERROR(ENOMEM);
    int r = avcodec_parameters_copy(st->codecpar, ist->codecpar);
    if (r < 0)
        return r;
    st->codecpar->codec_tag = 0;
    /* Apple players want HEVC tagged hvc1 in MP4 (parameter sets in the
     * sample entry, which the muxer writes from the extradata). */
    if (st->codecpar->codec_id == AV_CODEC_ID_HEVC && !strcmp(m->oc->oformat->name, "mp4"))
        st->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');
    st->time_base = ist->time_base;
    st->avg_frame_rate = ist->avg_frame_rate;
    st->sample_aspect_ratio = ist->sample_aspect_ratio;
    /* Keep the display rotation of copied video. */
    size_t sz = 0;
    const uint8_t *dm = av_stream_get_side_data(ist, AV_PKT_DATA_DISPLAYMATRIX, &sz);
    if (dm && sz) {
        uint8_t *d = av_stream_new_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, sz);
        if (!d)
            return AVERROR(ENOMEM);
        memcpy(d, dm, sz);
    }
    return st->index;
}

int tc_mux_write_header(struct tc_mux *m, struct tc_error *err)
{
    AVDictionary *opts = NULL;
    const char *name = m->oc->oformat->name;
    if (!strcmp(name, "mp4") || !strcmp(name, "ipod") || !strcmp(name, "mov"))
        av_dict_set(&opts, "movflags", "+faststart", 0);
    if (m->hls) {
        char *seg = NULL, *slash = strrchr(m->path, '/');
        char t[32];
        snprintf(t, sizeof(t), "%.3f", m->hls_time);
        av_dict_set(&opts, "hls_time", t, 0);
        av_dict_set(&opts, "hls_list_size", "0", 0);
        av_dict_set(&opts, "hls_playlist_type", "vod", 0);
        av_dict_set(&opts, "hls_segment_type", m->hls_fmp4 ? "fmp4" : "mpegts", 0);
        av_dict_set(&opts, "hls_flags", "independent_segments", 0);
        /* fMP4: init.mp4 beside the playlist (#EXT-X-MAP). */
        const char *ext = m->hls_fmp4 ? "m4s" : "ts";
        seg = slash ? av_asprintf("%.*s/seg%%05d.%s", (int)(slash - m->path), m->path, ext)
                    : av_asprintf("seg%%05d.%s", ext);
        if (!seg) {
            av_dict_free(&opts);
            return tc_error_set(err, TC_ENOMEM, "out of memory");
        }
        av_dict_set(&opts, "hls_segment_filename", seg, AV_DICT_DONT_STRDUP_VAL);
    }
    int r = avformat_write_header(m->oc, &opts);
    av_dict_free(&opts);
    if (r < 0)
        return tc_error_av(err, TC_EENCODE, r, "cannot write the output header");
    m->header_written = 1;
    return 0;
}

int tc_mux_write(struct tc_mux *m, int index, AVPacket *pkt, int tb_num, int tb_den)
{
    AVStream *st = m->oc->streams[index];
    AVRational tb = {tb_num, tb_den};
    pkt->stream_index = index;
    av_packet_rescale_ts(pkt, tb, st->time_base);
    /* Inputs joined from pieces (camera files, cut recordings) can step
     * back in time where the pieces meet; muxers refuse a dts that does
     * not move forward. As the ffmpeg CLI does, such a packet is moved
     * just after the previous one. */
    if (index < TC_MUX_MAX_STREAMS && pkt->dts != AV_NOPTS_VALUE) {
        int64_t last = m->last_dts[index];
        if (last != AV_NOPTS_VALUE) {
            int64_t min = last + !(m->oc->oformat->flags & AVFMT_TS_NONSTRICT);
            if (pkt->dts < min) {
                if (!m->bumped++)
                    tc_log(TC_LOG_WARNING, "output %s stream %d: timestamps go back (%" PRId64
                           " after %" PRId64 "): moved forward", m->path, index, pkt->dts, last);
                if (pkt->pts != AV_NOPTS_VALUE && pkt->pts >= pkt->dts)
                    pkt->pts = FFMAX(pkt->pts, min);
                pkt->dts = min;
            }
        }
        m->last_dts[index] = pkt->dts;
    }
    if (pkt->pts != AV_NOPTS_VALUE) {
        int64_t end = av_rescale_q(pkt->pts + (pkt->duration > 0 ? pkt->duration : 0), st->time_base,
                                   AV_TIME_BASE_Q);
        if (end > m->max_end)
            m->max_end = end;
    }
    return av_interleaved_write_frame(m->oc, pkt);
}

int tc_mux_finish(struct tc_mux *m, int64_t *size, double *duration_s, struct tc_error *err)
{
    int r;
    struct stat stt;

    if (!m->header_written)
        return tc_error_set(err, TC_EINTERNAL, "output was never started");
    r = av_write_trailer(m->oc);
    if (r < 0)
        return tc_error_av(err, TC_EIO, r, "cannot finish the output");
    if (m->hls) {
        /* Sizes are summed over the directory by the pipeline. */
        if (size)
            *size = 0;
        if (duration_s)
            *duration_s = m->max_end / (double)AV_TIME_BASE;
        return 0;
    }
    r = avio_closep(&m->oc->pb);
    if (r < 0)
        return tc_error_av(err, TC_EIO, r, "cannot close the output");
    if (stat(m->part, &stt) != 0)
        return tc_error_set(err, TC_EIO, "output vanished: %s", strerror(errno));
    if (rename(m->part, m->path) != 0)
        return tc_error_set(err, TC_EIO, "cannot move the output into place: %s", strerror(errno));
    av_freep(&m->part); /* renamed: nothing to remove any more */
    if (size)
        *size = stt.st_size;
    if (duration_s)
        *duration_s = m->max_end / (double)AV_TIME_BASE;
    return 0;
}
