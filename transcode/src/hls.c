/* hls.c - an "hls" output: an adaptive ladder written as one directory.
 *
 * DESIGN
 *   An hls output expands into renditions, each an ordinary output of the
 *   pipeline with its own libavformat hls muxer writing
 *   "<dir>.part/<rendition>/index.m3u8" and its segments:
 *     - one video rendition per ladder rung (table below; rungs above the
 *       source's shorter displayed side or above the spec's max_height are
 *       left out; a small source gets the lowest rung at its own size), each
 *       video only, with its own scaler and encoder at the table's bitrate;
 *     - one audio rendition "audio/" (one AAC encoder) when the spec and the
 *       input both have audio; every variant names it through AUDIO="audio".
 *       With no video (an audio-only input, or "video": null) it is the one
 *       variant itself.
 *   The pipeline forces a keyframe at the first frame at or after every
 *   multiple of the segment duration in every rung (and the encoders make
 *   no others), so segment boundaries line up and players can switch.
 *   Segments are MPEG-TS or fMP4 (init.mp4 + .m4s, #EXT-X-MAP); HEVC is
 *   fMP4 only (tagged hvc1, as Apple players require).
 *   When every rendition is finished, tc_hls_finish writes master.m3u8
 *   (BANDWIDTH and AVERAGE-BANDWIDTH measured from the segments written,
 *   RESOLUTION, FRAME-RATE, CODECS computed from the encoders' parameter
 *   sets) from the variants it reports in the run's result (so the job's
 *   description and the master say the same), and renames the directory
 *   into place. On failure tc_hls_free removes whatever was written.
 *
 * Threading: the thread running the pipeline; no shared state.
 */
#define _GNU_SOURCE 1 /* nftw FTW_DEPTH/FTW_PHYS */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavutil/avstring.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>

#include "transcode/tc.h"
#include "internal.h"

/* The ladder. Bitrates are video targets in bits/s (the encoders' peak is
 * 1.5x); HEVC gets about 60% of H.264's for the same picture. */
static const struct rung {
    int height;
    int64_t h264, hevc;
} ladder[] = {
    {1080, 5000000, 3000000},
    {720, 2800000, 1700000},
    {480, 1400000, 850000},
    {360, 800000, 500000},
};
enum { N_RUNGS = sizeof(ladder) / sizeof(ladder[0]) };
_Static_assert((int)N_RUNGS <= (int)TC_HLS_MAX_VARIANTS && (int)N_RUNGS < (int)TC_HLS_MAX_RENDITIONS,
               "a variant per rung, plus the audio rendition");

struct rendition {
    struct tc_output out;       /* spec and path handed to the pipeline */
    char *path;                 /* owned; out.path points here */
    int is_video;
    struct tc_video_info video; /* its encoder's, if is_video */
    struct tc_audio_info audio; /* else */
    char codecs[48];            /* RFC 6381 codec string, "" until known */
};

struct tc_hls {
    const struct tc_output *def;   /* borrowed: the user's output */
    char *part;                    /* "<path>.part" while writing, else NULL */
    int fmp4;
    double seg;
    size_t n;
    int audio;                     /* index of the audio rendition, -1 if none */
    int renamed;                   /* the directory is in place */
    const char *video_range;       /* "PQ"/"HLG": an HDR ladder (VIDEO-RANGE), else NULL */
    struct rendition r[TC_HLS_MAX_RENDITIONS];
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Remove a directory tree we wrote (symlinks not followed). */
static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void tc_hls_free(struct tc_hls **hp, int failed)
{
    if (!hp || !*hp)
        return;
    struct tc_hls *h = *hp;
    if (h->part)
        rm_tree(h->part);
    if (failed && h->renamed)
        rm_tree(h->def->path);
    for (size_t k = 0; k < h->n; k++)
        av_free(h->r[k].path);
    av_free(h->part);
    av_free(h);
    *hp = NULL;
}

/* Add a rendition writing "<part>/<dir>/index.m3u8". */
static int add(struct tc_hls *h, const char *dir, struct tc_error *err)
{
    struct rendition *r = &h->r[h->n];
    char *d = av_asprintf("%s/%s", h->part, dir);
    r->path = av_asprintf("%s/%s/index.m3u8", h->part, dir);
    if (!d || !r->path) {
        av_free(d);
        return tc_error_set(err, TC_ENOMEM, "out of memory");
    }
    int mk = mkdir(d, 0755);
    av_free(d);
    if (mk != 0)
        return tc_error_set(err, TC_EIO, "cannot create an HLS rendition directory: %s",
                            strerror(errno));
    r->out.path = r->path;
    h->n++;
    return 0;
}

int tc_hls_open(const struct tc_output *def, const struct tc_media_info *info,
                struct tc_hls **out, struct tc_error *err)
{
    struct tc_hls *h = NULL;
    const struct tc_output_spec *spec = &def->spec;
    int ret;

    *out = NULL;
    if (!def->path || !def->path[0])
        return tc_error_set(err, TC_EINVAL, "output '%s' has no path", spec->name);
    if ((ret = tc_spec_check_input(spec, info, err)) < 0)
        return ret;
    if (!(h = av_mallocz(sizeof(*h))))
        return tc_error_set(err, TC_ENOMEM, "out of memory");
    h->def = def;
    h->audio = -1;
    h->fmp4 = !strcmp(spec->segment_format, "fmp4") ||
              (!spec->segment_format[0] && !strcmp(spec->video.codec, "hevc"));
    if (spec->segment_seconds > 0) {
        h->seg = spec->segment_seconds;
    } else {
        h->seg = 4.0;
        /* (a clip lasts from its start to its end) */
        double dur = info->duration_s;
        if (dur > 0 && (spec->clip_start_s > 0 || spec->clip_end_s > 0))
            dur = (spec->clip_end_s > 0 && spec->clip_end_s < dur ? spec->clip_end_s : dur) -
                  spec->clip_start_s;
        if (dur > 0 && dur < 12.0) {
            /* Short clips: at least ~3 segments, on whole half seconds. */
            h->seg = floor(dur / 3.0 * 2.0) / 2.0;
            if (h->seg < 1.0)
                h->seg = 1.0;
        }
    }
    if (!(h->part = av_asprintf("%s.part", def->path))) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory");
        goto out;
    }
    rm_tree(h->part); /* left by a crash */
    if (mkdir(h->part, 0755) != 0) {
        ret = tc_error_set(err, TC_EIO, "cannot create '%s': %s", h->part, strerror(errno));
        goto out;
    }

    int src_short = info->video.display_width < info->video.display_height
                        ? info->video.display_width : info->video.display_height;
    if (src_short <= 0)
        src_short = info->video.width < info->video.height ? info->video.width : info->video.height;
    int cap = spec->video.max_height > 0 ? spec->video.max_height : ladder[0].height;
    int hevc = !strcmp(spec->video.codec, "hevc");
    for (int k = 0; spec->has_video && info->has_video && k < N_RUNGS; k++) {
        int last = k == N_RUNGS - 1;
        if (!(last && h->n == 0) && (ladder[k].height > cap || ladder[k].height > src_short))
            continue;
        char dir[16];
        snprintf(dir, sizeof(dir), "%dp", ladder[k].height);
        struct rendition *r = &h->r[h->n];
        if ((ret = add(h, dir, err)) < 0)
            goto out;
        struct tc_output_spec *s = &r->out.spec;
        *s = *spec;
        snprintf(s->name, sizeof(s->name), "%s", dir);
        s->has_audio = 0;
        s->video.max_height = ladder[k].height;
        s->video.width = s->video.height = 0;
        s->video.bitrate = hevc ? ladder[k].hevc : ladder[k].h264;
        s->video.crf = -1;
        r->is_video = 1;
    }
    if (spec->has_audio && info->has_audio) {
        struct rendition *r = &h->r[h->n];
        h->audio = (int)h->n;
        if ((ret = add(h, "audio", err)) < 0)
            goto out;
        struct tc_output_spec *s = &r->out.spec;
        *s = *spec;
        snprintf(s->name, sizeof(s->name), "audio");
        s->has_video = 0;
        memset(&s->video, 0, sizeof(s->video));
        s->video.crf = -1;
    }
    *out = h;
    h = NULL;
    ret = 0;
out:
    tc_hls_free(&h, 1);
    return ret;
}

size_t tc_hls_count(const struct tc_hls *h)
{
    return h->n;
}

const struct tc_output *tc_hls_rendition(const struct tc_hls *h, size_t k)
{
    return &h->r[k].out;
}

double tc_hls_segment_seconds(const struct tc_hls *h)
{
    return h->seg;
}

int tc_hls_fmp4(const struct tc_hls *h)
{
    return h->fmp4;
}

/* Copy an H.264/HEVC NAL unit's payload without its emulation prevention
 * bytes (00 00 03 -> 00 00), at most cap bytes. Returns the bytes copied. */
static size_t unescape(const uint8_t *d, size_t n, uint8_t *dst, size_t cap)
{
    size_t o = 0, zeros = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        if (zeros >= 2 && d[i] == 3) {
            zeros = 0;
            continue;
        }
        zeros = d[i] == 0 ? zeros + 1 : 0;
        dst[o++] = d[i];
    }
    return o;
}

/* The first Annex B NAL unit of type nal_type (H.264 if !hevc) in d: its
 * payload after the NAL header, unescaped, into dst (cap bytes). Returns
 * the bytes copied, 0 if there is none. */
static size_t find_nal(const uint8_t *d, size_t n, int hevc, int nal_type, uint8_t *dst,
                       size_t cap)
{
    size_t hdr = hevc ? 2 : 1;
    for (size_t i = 0; i + 3 + hdr < n; i++) {
        if (d[i] != 0 || d[i + 1] != 0 || d[i + 2] != 1)
            continue;
        int t = hevc ? (d[i + 3] >> 1) & 0x3f : d[i + 3] & 0x1f;
        if (t == nal_type)
            return unescape(d + i + 3 + hdr, n - i - 3 - hdr, dst, cap);
    }
    return 0;
}

/* "hvc1.<space><profile>.<compat, bit-reversed>.<tier><level>[.<constraint
 * bytes>]" (ISO/IEC 14496-15 annex E) from the 12 bytes of a general
 * profile_tier_level; also the profile's name and the level. */
static void hvc1_string(const uint8_t *ptl, struct rendition *r)
{
    char *out = r->codecs;
    size_t cap = sizeof(r->codecs);
    int space = ptl[0] >> 6, tier = (ptl[0] >> 5) & 1, profile = ptl[0] & 0x1f;
    uint32_t compat = (uint32_t)ptl[1] << 24 | (uint32_t)ptl[2] << 16 | (uint32_t)ptl[3] << 8 | ptl[4];
    uint32_t rev = 0;
    for (int b = 0; b < 32; b++)
        if (compat & (1u << b))
            rev |= 1u << (31 - b);
    int n = snprintf(out, cap, "hvc1.%s%d.%X.%c%d", space ? (const char *[]){"", "A", "B", "C"}[space] : "",
                     profile, rev, tier ? 'H' : 'L', ptl[11]);
    int last = 10; /* constraint bytes ptl[5..10]; trailing zero bytes are left out */
    while (last >= 5 && ptl[last] == 0)
        last--;
    for (int i = 5; i <= last && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, ".%X", ptl[i]);
    const char *name = avcodec_profile_name(AV_CODEC_ID_HEVC, profile);
    snprintf(r->video.profile, sizeof(r->video.profile), "%s", name ? name : "");
    r->video.level = ptl[11];
}

/* "avc1.PPCCLL" from an SPS's profile_idc, constraint flags and level_idc;
 * also the profile's name as libavcodec says it and the level. */
static void avc1_string(const uint8_t *b, struct rendition *r)
{
    int profile = b[0];
    snprintf(r->codecs, sizeof(r->codecs), "avc1.%02X%02X%02X", b[0], b[1], b[2]);
    if (profile == 66 && (b[1] & 0x40)) /* constraint_set1: Constrained Baseline */
        profile |= FF_PROFILE_H264_CONSTRAINED;
    const char *name = avcodec_profile_name(AV_CODEC_ID_H264, profile);
    snprintf(r->video.profile, sizeof(r->video.profile), "%s", name ? name : "");
    r->video.level = b[2];
}

/* The codec string (and profile) of a rendition's encoder from its
 * parameter sets (in data: extradata or a packet); left "" if they are
 * not there. */
static void codec_string(struct rendition *r, enum AVCodecID id, const uint8_t *d, size_t n)
{
    uint8_t b[16];
    r->codecs[0] = '\0';
    if (!d || n == 0)
        return;
    if (id == AV_CODEC_ID_H264) {
        if (n >= 4 && d[0] == 1) { /* avcC */
            avc1_string(d + 1, r);
        } else if (find_nal(d, n, 0, 7, b, 3) == 3) {
            avc1_string(b, r);
        }
    } else if (id == AV_CODEC_ID_HEVC) {
        if (n >= 13 && d[0] == 1) { /* hvcC: its bytes 1..12 are the general PTL */
            hvc1_string(d + 1, r);
        } else if (find_nal(d, n, 1, 33, b, 13) == 13) {
            /* SPS: vps id, max sub-layers, nesting flag, then the PTL. */
            hvc1_string(b + 1, r);
        }
    } else if (id == AV_CODEC_ID_AAC) {
        /* AudioSpecificConfig: the audio object type. */
        int aot = d[0] >> 3;
        if (aot == 31 && n >= 2)
            aot = 32 + (((d[0] & 7) << 3) | (d[1] >> 5));
        if (aot > 0)
            snprintf(r->codecs, sizeof(r->codecs), "mp4a.40.%d", aot);
    }
}

void tc_hls_describe(struct tc_hls *h, size_t k, const AVCodecContext *enc)
{
    struct rendition *r = &h->r[k];
    if (enc->codec_type == AVMEDIA_TYPE_VIDEO) {
        struct tc_video_info *v = &r->video;
        const AVPixFmtDescriptor *pd = av_pix_fmt_desc_get(enc->pix_fmt);
        snprintf(v->codec, sizeof(v->codec), "%s", avcodec_get_name(enc->codec_id));
        snprintf(v->pix_fmt, sizeof(v->pix_fmt), "%s", pd ? pd->name : "");
        v->bit_depth = pd ? pd->comp[0].depth : 0;
        v->width = v->display_width = enc->width; /* square pixels, upright */
        v->height = v->display_height = enc->height;
        v->fps = enc->framerate.num > 0 && enc->framerate.den > 0 ? av_q2d(enc->framerate) : 0;
        v->level = -1;
        if (enc->color_trc == AVCOL_TRC_SMPTE2084)
            h->video_range = "PQ";
        else if (enc->color_trc == AVCOL_TRC_ARIB_STD_B67)
            h->video_range = "HLG";
    } else {
        snprintf(r->audio.codec, sizeof(r->audio.codec), "%s", avcodec_get_name(enc->codec_id));
        r->audio.channels = enc->ch_layout.nb_channels;
        r->audio.sample_rate = enc->sample_rate;
    }
    codec_string(r, enc->codec_id, enc->extradata,
                 (size_t)(enc->extradata_size > 0 ? enc->extradata_size : 0));
}

void tc_hls_note_packet(struct tc_hls *h, size_t k, const AVCodecContext *enc, const AVPacket *pkt)
{
    struct rendition *r = &h->r[k];
    if (!r->codecs[0])
        codec_string(r, enc->codec_id, pkt->data, (size_t)pkt->size);
}

/* Peak and average bit rate of a rendition's segments, from its media
 * playlist (which we wrote) and the segment files' sizes. 0 if unknown. */
static void measure(const struct tc_hls *h, const struct rendition *r, int64_t *peak,
                    int64_t *avg, int *version)
{
    char *pl = av_asprintf("%s/%s/index.m3u8", h->part, r->out.spec.name);
    FILE *f = pl ? fopen(pl, "r") : NULL;
    char line[512];
    double dur = -1, total_d = 0, peak_bps = 0;
    int64_t total_b = 0;
    *peak = *avg = 0;
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!strncmp(line, "#EXT-X-VERSION:", 15)) {
            long v = strtol(line + 15, NULL, 10);
            if (v > *version && v < 100)
                *version = (int)v;
            continue;
        }
        if (!strncmp(line, "#EXTINF:", 8)) {
            char *end;
            dur = strtod(line + 8, &end);
            if (end == line + 8 || !(dur >= 0))
                dur = -1;
            continue;
        }
        if (line[0] == '#' || !line[0] || dur < 0)
            continue;
        struct stat st;
        char *seg = av_asprintf("%s/%s/%s", h->part, r->out.spec.name, line);
        if (seg && !strchr(line, '/') && stat(seg, &st) == 0) {
            total_b += st.st_size;
            total_d += dur;
            /* A short last segment says little about the peak. */
            if (dur >= h->seg * 0.5 && st.st_size * 8.0 / dur > peak_bps)
                peak_bps = st.st_size * 8.0 / dur;
        }
        av_free(seg);
        dur = -1;
    }
    if (f)
        fclose(f);
    av_free(pl);
    if (total_d > 0) {
        *avg = (int64_t)ceil(total_b * 8.0 / total_d);
        *peak = peak_bps > 0 ? (int64_t)ceil(peak_bps) : *avg;
        /* The peak leaves out a short last segment; if that one raised the
         * average above it (TS overhead in a small audio segment), the
         * average is the peak: BANDWIDTH is never below AVERAGE-BANDWIDTH. */
        if (*peak < *avg)
            *peak = *avg;
    }
}

static _Thread_local int64_t tree_bytes; /* nftw has no opaque pointer */
static int size_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        tree_bytes += st->st_size;
    return 0;
}

/* The variants of the master from the renditions written: one per video
 * rung, with the audio rendition as its group; with no video, the audio
 * rendition alone. Bandwidths are measured from the segments (the
 * encoders' ceiling if nothing could be measured). */
static int plan_variants(const struct tc_hls *h, struct tc_output_result *res, int *version,
                         struct tc_error *err)
{
    int64_t peak[TC_HLS_MAX_RENDITIONS], avg[TC_HLS_MAX_RENDITIONS], apeak = 0, aavg = 0;
    const struct rendition *a = h->audio >= 0 ? &h->r[h->audio] : NULL;
    for (size_t k = 0; k < h->n; k++)
        measure(h, &h->r[k], &peak[k], &avg[k], version);
    if (a) {
        if (!a->codecs[0])
            return tc_error_set(err, TC_EINTERNAL, "cannot tell the codec string of rendition audio");
        apeak = peak[h->audio];
        aavg = avg[h->audio];
        if (apeak <= 0) /* nothing measurable: the encoder's target */
            apeak = aavg = a->out.spec.audio.bitrate > 0 ? a->out.spec.audio.bitrate : 128000;
    }
    res->n_variants = 0;
    for (size_t k = 0; k < h->n; k++) {
        const struct rendition *r = &h->r[k];
        int alone = r == a && h->n == 1;
        if (!r->is_video && !alone)
            continue;
        if (res->n_variants >= TC_HLS_MAX_VARIANTS)
            return tc_error_set(err, TC_EINTERNAL, "too many HLS variants");
        struct tc_hls_variant *v = &res->variants[res->n_variants++];
        snprintf(v->name, sizeof(v->name), "%s", r->out.spec.name);
        snprintf(v->uri, sizeof(v->uri), "%s/index.m3u8", r->out.spec.name);
        if (r->is_video) {
            if (!r->codecs[0])
                return tc_error_set(err, TC_EINTERNAL, "cannot tell the codec string of rendition %s",
                                    r->out.spec.name);
            if (peak[k] <= 0)
                peak[k] = avg[k] = r->out.spec.video.bitrate * 3 / 2;
            v->has_video = 1;
            v->video = r->video;
            v->video.bit_rate = avg[k];
            v->bandwidth = peak[k];
            v->average_bandwidth = avg[k];
        }
        if (a) {
            v->has_audio = 1;
            v->audio = a->audio;
            v->audio.bit_rate = aavg;
            v->bandwidth += apeak;
            v->average_bandwidth += aavg;
        }
        snprintf(v->codecs, sizeof(v->codecs), "%s%s%s", r->is_video ? r->codecs : "",
                 r->is_video && a ? "," : "", a ? a->codecs : "");
    }
    return 0;
}

int tc_hls_finish(struct tc_hls *h, double duration_s, struct tc_output_result *res,
                  struct tc_error *err)
{
    char *master = av_asprintf("%s/master.m3u8", h->part);
    FILE *f = master ? fopen(master, "w") : NULL;
    int ret = 0;

    memset(res, 0, sizeof(*res));
    res->duration_s = duration_s;
    if (!f) {
        ret = tc_error_set(err, TC_EIO, "cannot write master.m3u8");
        goto out;
    }
    /* The master says the highest version its media playlists say. */
    int version = 3;
    if ((ret = plan_variants(h, res, &version, err)) < 0)
        goto out;
    fprintf(f, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-INDEPENDENT-SEGMENTS\n", version);
    const struct rendition *a = h->audio >= 0 ? &h->r[h->audio] : NULL;
    int grouped = a && res->n_variants > 0 && res->variants[0].has_video;
    if (grouped)
        fprintf(f, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,"
                   "AUTOSELECT=YES,CHANNELS=\"%d\",URI=\"audio/index.m3u8\"\n",
                a->audio.channels);
    for (int k = 0; k < res->n_variants; k++) {
        const struct tc_hls_variant *v = &res->variants[k];
        fprintf(f, "#EXT-X-STREAM-INF:BANDWIDTH=%lld,AVERAGE-BANDWIDTH=%lld,",
                (long long)v->bandwidth, (long long)v->average_bandwidth);
        if (v->has_video)
            fprintf(f, "RESOLUTION=%dx%d,", v->video.width, v->video.height);
        if (v->has_video && v->video.fps > 0)
            fprintf(f, "FRAME-RATE=%.3f,", v->video.fps);
        if (v->has_video && h->video_range) /* HDR (kept): players must be told */
            fprintf(f, "VIDEO-RANGE=%s,", h->video_range);
        fprintf(f, "CODECS=\"%s\"%s\n%s\n", v->codecs, grouped ? ",AUDIO=\"audio\"" : "", v->uri);
    }
    if (fclose(f) != 0) {
        f = NULL;
        ret = tc_error_set(err, TC_EIO, "cannot write master.m3u8");
        goto out;
    }
    f = NULL;
    tree_bytes = 0;
    nftw(h->part, size_entry, 16, FTW_PHYS);
    res->size = tree_bytes;
    if (rename(h->part, h->def->path) != 0) {
        ret = tc_error_set(err, TC_EIO, "cannot move the HLS directory into place at '%s': %s",
                           h->def->path, strerror(errno));
        goto out;
    }
    av_freep(&h->part);
    h->renamed = 1;
out:
    if (f)
        fclose(f);
    av_free(master);
    return ret;
}
