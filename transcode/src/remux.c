/* remux.c - the automatic remux fast path: does an input stream already
 * satisfy an output spec, so that its packets can be copied instead of
 * decoded and re-encoded?
 *
 * A stream is copied only when an encode could not make it any more
 * acceptable to the players the spec is for:
 *   video: same codec as the spec asks; a profile, bit depth, pixel format
 *     and level every player of that codec takes (H.264: Constrained
 *     Baseline/Baseline/Main/High, 8-bit yuv420p, level <= 4.2, or <= 5.2
 *     when the frame's shorter side is above 1080; HEVC: Main, yuv420p,
 *     level <= 4.1 / 5.1; VP9: profile 0, yuv420p; AV1: Main, yuv420p);
 *     square pixels and a displayed size (after rotation) that is exactly
 *     what the scaler would produce under the spec's caps (so no scaling,
 *     no cropping to even sides); no fps change asked; progressive (an
 *     encode would deinterlace); no rotation unless the container keeps
 *     the display matrix (MP4); and a bitrate within the cap: the spec's
 *     bitrate + 5% if it has one, else (CRF-only specs) the ceiling of
 *     copy_ceiling() for the frame's shorter side and rate. A bitrate the
 *     container does not state is estimated as the whole file's rate (an
 *     upper bound).
 *   audio: same codec; channels no more than the spec's (or 2); the spec's
 *     sample rate if it sets one; a known bitrate within the spec's (or the
 *     encoder's default 128 kb/s) + 5%.
 * Only single-file containers (mp4 webm mkv m4a mp3 ogg) copy: HLS
 * ladders (aligned keyframes) and pictures never do; a spec with
 * "auto_copy": false never does either.
 *
 * Threading: pure functions; any thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "transcode/tc.h"
#include "internal.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, list[i]))
            return 1;
    return 0;
}

static int no(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Say why not (into why, if given) and return 0. */
static int no(char *why, size_t why_size, const char *fmt, ...)
{
    if (why && why_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
    }
    return 0;
}

int64_t tc_copy_ceiling(int short_side, double fps)
{
    /* YouTube's recommended upload bitrates for H.264 SDR at 24-30 fps
     * (x1.5 at 48-60 fps): a source above them is worth re-encoding. */
    static const struct {
        int short_side;
        int64_t bps;
    } table[] = {
        {360, 1000000}, {480, 2500000}, {720, 5000000},
        {1080, 8000000}, {1440, 16000000}, {2160, 45000000},
    };
    int64_t bps = 68000000;
    for (size_t i = 0; i < N(table); i++)
        if (short_side <= table[i].short_side) {
            bps = table[i].bps;
            break;
        }
    return fps > 31.0 ? bps * 3 / 2 : bps;
}

/* Only plain single-file containers: an HLS ladder needs its forced,
 * aligned keyframes, pictures (thumbnails, sprites) are always made. */
static int auto_copy_applies(const struct tc_output_spec *spec)
{
    static const char *const files[] = {"mp4", "webm", "mkv", "m4a", "mp3", "ogg"};
    return !spec->no_auto_copy && in_list(spec->container, files, N(files));
}

int tc_copy_video_fits(const struct tc_output_spec *spec, const struct tc_media_info *info,
                       char *why, size_t why_size)
{
    const struct tc_video_spec *vs = &spec->video;
    const struct tc_video_info *v = &info->video;

    if (!spec->has_video || !info->has_video || !strcmp(vs->codec, "copy"))
        return no(why, why_size, "%s", "not an encoded video output");
    if (!auto_copy_applies(spec))
        return no(why, why_size, "automatic copy is off for container %s", spec->container);
    if (strcmp(v->codec, vs->codec) != 0)
        return no(why, why_size, "source codec %s differs", v->codec);
    if (!tc_copy_container_ok(spec->container, v->codec))
        return no(why, why_size, "container does not take %s", v->codec);
    if (strcmp(v->pix_fmt, "yuv420p") != 0 || v->bit_depth != 8)
        return no(why, why_size, "pixel format %s is not 8-bit yuv420p", v->pix_fmt);

    int rotated = v->rotation == 90 || v->rotation == 270;
    int cw = rotated ? v->height : v->width, ch = rotated ? v->width : v->height;
    int short_side = cw < ch ? cw : ch;
    int big = short_side > 1080;
    if (!strcmp(v->codec, "h264")) {
        static const char *const profiles[] = {"Constrained Baseline", "Baseline", "Main", "High"};
        if (!in_list(v->profile, profiles, N(profiles)))
            return no(why, why_size, "H.264 profile '%s' is not one players take", v->profile);
        if (v->level <= 0 || v->level > (big ? 52 : 42))
            return no(why, why_size, "%s", "H.264 level unknown or too high");
    } else if (!strcmp(v->codec, "hevc")) {
        if (strcmp(v->profile, "Main") != 0)
            return no(why, why_size, "HEVC profile '%s' is not Main", v->profile);
        if (v->level <= 0 || v->level > (big ? 153 : 123))
            return no(why, why_size, "%s", "HEVC level unknown or too high");
    } else if (!strcmp(v->codec, "vp9")) {
        if (strcmp(v->profile, "Profile 0") != 0)
            return no(why, why_size, "VP9 profile '%s' is not 0", v->profile);
    } else if (!strcmp(v->codec, "av1")) {
        if (strcmp(v->profile, "Main") != 0)
            return no(why, why_size, "AV1 profile '%s' is not Main", v->profile);
    } else {
        return no(why, why_size, "codec %s is never copied automatically", v->codec);
    }

    if (v->interlaced)
        return no(why, why_size, "%s", "interlaced source (an encode deinterlaces)");
    if (vs->fps > 0)
        return no(why, why_size, "%s", "the spec changes the frame rate");
    if (v->rotation != 0 && strcmp(spec->container, "mp4") != 0)
        return no(why, why_size, "rotation cannot be kept in %s", spec->container);
    /* Square pixels: the displayed size is the coded one (turned). */
    if (v->display_width != cw || v->display_height != ch)
        return no(why, why_size, "%s", "non-square pixels (an encode makes them square)");
    int ow = 0, oh = 0;
    if (tc_dims_compute(v->width, v->height, 0, 0, v->rotation, vs, &ow, &oh) < 0 || ow != cw ||
        oh != ch)
        return no(why, why_size, "%s", "the spec's size differs from the source's");

    int64_t cap = vs->bitrate > 0 ? vs->bitrate + vs->bitrate / 20
                                  : tc_copy_ceiling(short_side, v->fps);
    int64_t rate = v->bit_rate;
    if (rate <= 0 && info->duration_s > 0 && info->size > 0)
        rate = (int64_t)(info->size * 8.0 / info->duration_s);
    if (rate <= 0 || rate > cap)
        return no(why, why_size, "%s", "bitrate unknown or above the cap");
    return 1;
}

int tc_copy_audio_fits(const struct tc_output_spec *spec, const struct tc_media_info *info,
                       char *why, size_t why_size)
{
    const struct tc_audio_spec *as = &spec->audio;
    const struct tc_audio_info *a = &info->audio;

    if (!spec->has_audio || !info->has_audio || !strcmp(as->codec, "copy"))
        return no(why, why_size, "%s", "not an encoded audio output");
    if (!auto_copy_applies(spec))
        return no(why, why_size, "automatic copy is off for container %s", spec->container);
    if (strcmp(a->codec, as->codec) != 0)
        return no(why, why_size, "source codec %s differs", a->codec);
    if (!tc_copy_container_ok(spec->container, a->codec))
        return no(why, why_size, "container does not take %s", a->codec);
    if (a->channels < 1 || a->channels > (as->channels > 0 ? as->channels : 2))
        return no(why, why_size, "%s", "too many channels");
    if (as->sample_rate > 0 && a->sample_rate != as->sample_rate)
        return no(why, why_size, "%s", "the spec changes the sample rate");
    int64_t want = as->bitrate > 0 ? as->bitrate : 128000;
    if (a->bit_rate <= 0 || a->bit_rate > want + want / 20)
        return no(why, why_size, "%s", "bitrate unknown or above the cap");
    return 1;
}
