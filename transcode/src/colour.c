/* colour.c - what colour a video output holds and how it is tagged.
 *
 * DESIGN
 *   Every video output is tagged with primaries, transfer, matrix and
 *   range (the encoder's VUI / sequence header, and the container's colr /
 *   Colour element through the codec parameters), matching what it holds:
 *
 *   - SDR source: the output keeps the source's colour, unchanged (the
 *     scaler converts sizes and bit depth, never the matrix), and says so.
 *     A source that does not say (untagged) is read the way players read
 *     it: BT.709 from 720 lines (or 1280 columns) up, else BT.601
 *     (SMPTE 170M; BT.470BG primaries for 576-line PAL). An SD BT.601
 *     source scaled to HD stays BT.601 and is tagged so: converting the
 *     matrix would cost a pass over every picture, and every current
 *     player (browsers, Safari/AVFoundation, ExoPlayer, VLC, mpv) honours
 *     the tag. The range is limited (tv) for every encoded output but the
 *     JPEG ones, which are full range (JFIF).
 *   - HDR source (PQ "smpte2084" or HLG "arib-std-b67" transfer): an
 *     output that keeps HDR (tc_colour_keeps_hdr) is 10-bit with the
 *     source's transfer, BT.2020 primaries and matrix, and the mastering
 *     display and content light level metadata (from the container, else
 *     the first decoded picture: tc_colour_peek_hdr); every other output is
 *     tone mapped once per run to BT.709 SDR (filter.c,
 *     tc_filter_tonemap_open) and tagged BT.709.
 *
 * Threading: pure functions, plus tc_colour_peek_hdr which opens its own
 * input; any thread.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/mastering_display_metadata.h>
#include <libavutil/pixdesc.h>

#include "transcode/tc.h"
#include "internal.h"

int tc_colour_is_hdr(int transfer)
{
    return transfer == AVCOL_TRC_SMPTE2084 || transfer == AVCOL_TRC_ARIB_STD_B67;
}

void tc_colour_of_stream(const AVStream *st, struct tc_colour *c)
{
    const AVCodecParameters *p = st->codecpar;
    int hd = p->height >= 720 || p->width >= 1280;
    int pal = p->height == 576 || p->height == 288;

    memset(c, 0, sizeof(*c));
    c->primaries = p->color_primaries;
    c->transfer = p->color_trc;
    c->matrix = p->color_space;
    c->range = p->color_range;
    /* HDR with a matrix left out is BT.2020 (nothing else carries PQ/HLG). */
    if (c->matrix == AVCOL_SPC_UNSPECIFIED || c->matrix == AVCOL_SPC_RESERVED)
        c->matrix = tc_colour_is_hdr(c->transfer) || c->primaries == AVCOL_PRI_BT2020
                        ? AVCOL_SPC_BT2020_NCL
                    : c->primaries == AVCOL_PRI_BT709 ? AVCOL_SPC_BT709
                    : c->primaries == AVCOL_PRI_SMPTE170M || c->primaries == AVCOL_PRI_BT470BG
                        ? AVCOL_SPC_SMPTE170M
                    : hd ? AVCOL_SPC_BT709
                         : AVCOL_SPC_SMPTE170M;
    /* An RGB (or paletted) source is made YUV by swscale with its default
     * matrix, BT.601, whatever the size: the tag says so. */
    const AVPixFmtDescriptor *pd = av_pix_fmt_desc_get((enum AVPixelFormat)p->format);
    if (c->matrix == AVCOL_SPC_RGB ||
        (pd && (pd->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)))) {
        c->matrix = AVCOL_SPC_SMPTE170M;
        if (c->primaries == AVCOL_PRI_UNSPECIFIED)
            c->primaries = AVCOL_PRI_BT709; /* sRGB's */
    }
    if (c->primaries == AVCOL_PRI_UNSPECIFIED || c->primaries == AVCOL_PRI_RESERVED ||
        c->primaries == AVCOL_PRI_RESERVED0)
        c->primaries = c->matrix == AVCOL_SPC_BT2020_NCL || c->matrix == AVCOL_SPC_BT2020_CL
                           ? AVCOL_PRI_BT2020
                       : c->matrix == AVCOL_SPC_BT709 ? AVCOL_PRI_BT709
                       : pal ? AVCOL_PRI_BT470BG
                             : AVCOL_PRI_SMPTE170M;
    if (c->transfer == AVCOL_TRC_UNSPECIFIED || c->transfer == AVCOL_TRC_RESERVED ||
        c->transfer == AVCOL_TRC_RESERVED0)
        c->transfer = c->primaries == AVCOL_PRI_BT2020 ? AVCOL_TRC_BT2020_10
                      : c->primaries == AVCOL_PRI_BT709 ? AVCOL_TRC_BT709
                                                        : AVCOL_TRC_SMPTE170M;
    if (c->range != AVCOL_RANGE_JPEG)
        c->range = pd && !strncmp(pd->name, "yuvj", 4) ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
    /* Side data the container carries (Matroska Colour, MP4 mdcv/clli). */
    size_t sz = 0;
    const uint8_t *sd = av_stream_get_side_data(st, AV_PKT_DATA_MASTERING_DISPLAY_METADATA, &sz);
    if (sd && sz >= sizeof(AVMasteringDisplayMetadata))
        tc_colour_set_mastering(c, sd);
    sd = av_stream_get_side_data(st, AV_PKT_DATA_CONTENT_LIGHT_LEVEL, &sz);
    if (sd && sz >= sizeof(AVContentLightMetadata))
        tc_colour_set_light(c, sd);
}

void tc_colour_set_mastering(struct tc_colour *c, const void *mdm)
{
    const AVMasteringDisplayMetadata *m = mdm;
    if (!m->has_primaries || !m->has_luminance)
        return;
    c->mastering = *m;
    c->has_mastering = 1;
}

void tc_colour_set_light(struct tc_colour *c, const void *cll)
{
    const AVContentLightMetadata *l = cll;
    c->light = *l;
    c->has_light = 1;
}

int tc_colour_keeps_hdr(const struct tc_output_spec *spec, const struct tc_colour *src)
{
    const char *vc = spec->video.codec;
    if (!tc_colour_is_hdr(src->transfer) || !spec->has_video)
        return 0;
    if (!strcmp(spec->video.hdr, "tonemap"))
        return 0;
    if (strcmp(vc, "hevc") != 0 && strcmp(vc, "av1") != 0 && strcmp(vc, "vp9") != 0)
        return 0; /* h264 (8-bit for every player), mjpeg */
    /* An HLS ladder is for every player: SDR unless asked for ("keep"). */
    if (!strcmp(spec->container, "hls"))
        return !strcmp(spec->video.hdr, "keep");
    return 1;
}

void tc_colour_for_output(const struct tc_colour *src, int keep_hdr, int jpeg,
                          struct tc_colour *out)
{
    if (keep_hdr) {
        *out = *src;
        out->primaries = AVCOL_PRI_BT2020;
        if (out->matrix != AVCOL_SPC_BT2020_CL)
            out->matrix = AVCOL_SPC_BT2020_NCL;
        out->range = AVCOL_RANGE_MPEG;
        return;
    }
    memset(out, 0, sizeof(*out));
    if (tc_colour_is_hdr(src->transfer)) {
        /* Tone mapped (filter.c): BT.709 SDR. */
        out->primaries = AVCOL_PRI_BT709;
        out->transfer = AVCOL_TRC_BT709;
        out->matrix = AVCOL_SPC_BT709;
    } else {
        out->primaries = src->primaries;
        out->transfer = src->transfer;
        out->matrix = src->matrix;
        if (out->matrix == AVCOL_SPC_BT2020_NCL && out->transfer == AVCOL_TRC_BT2020_10)
            out->transfer = AVCOL_TRC_BT709; /* the same curve, for 8-bit */
    }
    out->range = jpeg ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
}

void tc_colour_to_ctx(const struct tc_colour *c, AVCodecContext *ctx)
{
    ctx->color_primaries = (enum AVColorPrimaries)c->primaries;
    ctx->color_trc = (enum AVColorTransferCharacteristic)c->transfer;
    ctx->colorspace = (enum AVColorSpace)c->matrix;
    ctx->color_range = (enum AVColorRange)c->range;
}

/* A chromaticity or luminance as an integer in the given unit. */
static long q_in(AVRational q, double unit)
{
    return q.den ? lrint(av_q2d(q) * unit) : 0;
}

int tc_colour_x265_params(const struct tc_colour *c, char *buf, size_t size)
{
    size_t n = 0;
    int w;
    buf[0] = '\0';
    if (c->has_mastering) {
        const AVMasteringDisplayMetadata *m = &c->mastering;
        /* x265: G, B, R chromaticities in 0.00002, luminance in 0.0001 cd/m2. */
        w = snprintf(buf, size, ":hdr10=1:master-display=G(%ld,%ld)B(%ld,%ld)R(%ld,%ld)WP(%ld,%ld)L(%ld,%ld)",
                     q_in(m->display_primaries[1][0], 50000), q_in(m->display_primaries[1][1], 50000),
                     q_in(m->display_primaries[2][0], 50000), q_in(m->display_primaries[2][1], 50000),
                     q_in(m->display_primaries[0][0], 50000), q_in(m->display_primaries[0][1], 50000),
                     q_in(m->white_point[0], 50000), q_in(m->white_point[1], 50000),
                     q_in(m->max_luminance, 10000), q_in(m->min_luminance, 10000));
        if (w < 0 || (size_t)w >= size)
            return -1;
        n = (size_t)w;
    }
    if (c->has_light) {
        w = snprintf(buf + n, size - n, "%s:max-cll=%u,%u", c->has_mastering ? "" : ":hdr10=1",
                     c->light.MaxCLL, c->light.MaxFALL);
        if (w < 0 || (size_t)w >= size - n)
            return -1;
    }
    return 0;
}

int tc_colour_svtav1_params(const struct tc_colour *c, char *buf, size_t size)
{
    size_t n = 0;
    int w;
    buf[0] = '\0';
    if (c->has_mastering) {
        const AVMasteringDisplayMetadata *m = &c->mastering;
        w = snprintf(buf, size,
                     ":mastering-display=G(%.4f,%.4f)B(%.4f,%.4f)R(%.4f,%.4f)WP(%.4f,%.4f)L(%.4f,%.4f)",
                     av_q2d(m->display_primaries[1][0]), av_q2d(m->display_primaries[1][1]),
                     av_q2d(m->display_primaries[2][0]), av_q2d(m->display_primaries[2][1]),
                     av_q2d(m->display_primaries[0][0]), av_q2d(m->display_primaries[0][1]),
                     av_q2d(m->white_point[0]), av_q2d(m->white_point[1]),
                     av_q2d(m->max_luminance), av_q2d(m->min_luminance));
        if (w < 0 || (size_t)w >= size)
            return -1;
        n = (size_t)w;
    }
    if (c->has_light) {
        w = snprintf(buf + n, size - n, ":content-light=%u,%u", c->light.MaxCLL,
                     c->light.MaxFALL);
        if (w < 0 || (size_t)w >= size - n)
            return -1;
    }
    return 0;
}

void tc_colour_peek_hdr(const char *path, int fd, int vi, struct tc_colour *c)
{
    struct tc_input *in = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    struct tc_error err;

    if (!pkt || !f ||
        (path ? tc_input_open(path, NULL, &in, &err) : tc_input_open_fd(fd, NULL, &in, &err)) < 0 ||
        vi < 0 ||
        vi >= (int)in->fmt->nb_streams ||
        tc_decoder_open(in->fmt->streams[vi], 1, &dec, &err) < 0)
        goto out;
    for (unsigned i = 0; i < in->fmt->nb_streams; i++)
        if ((int)i != vi)
            in->fmt->streams[i]->discard = AVDISCARD_ALL;
    /* The metadata rides on the first pictures (SEI / OBU); a few hundred
     * packets without any picture is a broken stream: give up quietly,
     * the run itself reports it. */
    for (int n = 0; n < 300; n++) {
        int r = av_read_frame(in->fmt, pkt);
        if (r < 0)
            break;
        if (pkt->stream_index != vi) {
            av_packet_unref(pkt);
            continue;
        }
        r = avcodec_send_packet(dec, pkt);
        av_packet_unref(pkt);
        if (r < 0 && r != AVERROR(EAGAIN))
            continue;
        if (avcodec_receive_frame(dec, f) == 0) {
            const AVFrameSideData *sd;
            if (!c->has_mastering &&
                (sd = av_frame_get_side_data(f, AV_FRAME_DATA_MASTERING_DISPLAY_METADATA)))
                tc_colour_set_mastering(c, sd->data);
            if (!c->has_light &&
                (sd = av_frame_get_side_data(f, AV_FRAME_DATA_CONTENT_LIGHT_LEVEL)))
                tc_colour_set_light(c, sd->data);
            break;
        }
    }
out:
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    tc_input_close(&in);
}

const char *tc_colour_zimg_transfer(int transfer)
{
    return transfer == AVCOL_TRC_ARIB_STD_B67 ? "arib-std-b67" : "smpte2084";
}
