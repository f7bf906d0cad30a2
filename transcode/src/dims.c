/* dims.c - output frame size maths: display aspect (sample aspect ratio
 * and rotation applied), size caps, never upscale, even sides.
 *
 * Threading: pure functions. */
#include <math.h>

#include "transcode/tc.h"
#include "internal.h"

static int even_round(double x)
{
    int v = 2 * (int)lround(x / 2.0);
    return v < 2 ? 2 : v;
}

static int even_floor(double x)
{
    int v = 2 * (int)floor(x / 2.0 + 1e-9);
    return v < 2 ? 2 : v;
}

int tc_dims_compute(int w, int h, int sar_num, int sar_den, int rotation,
                    const struct tc_video_spec *vs, int *out_w, int *out_h)
{
    if (w <= 0 || h <= 0)
        return TC_EINVAL;
    /* The displayed frame: anamorphic pixels widen (or narrow) the width. */
    double dw = w, dh = h;
    if (sar_num > 0 && sar_den > 0 && sar_num != sar_den)
        dw = (double)w * sar_num / sar_den;
    if (rotation == 90 || rotation == 270) {
        double t = dw;
        dw = dh;
        dh = t;
    }

    /* The scale factor, never above 1. */
    double s = 1.0;
    if (vs) {
        if (vs->width > 0 && vs->width < dw * s)
            s = vs->width / dw;
        if (vs->height > 0 && vs->height < dh * s)
            s = vs->height / dh;
        double shorter = dw < dh ? dw : dh;
        if (vs->max_height > 0 && vs->max_height < shorter * s)
            s = vs->max_height / shorter;
    }

    int ow, oh;
    if (s >= 1.0) {
        ow = even_floor(dw);
        oh = even_floor(dh);
        /* Keep the aspect when flooring loses more on one side. */
    } else if (dw <= dh) {
        /* Derive the longer side from the shorter so that the cap is met
         * exactly (1080x1920 at 720 -> 720x1280). */
        ow = even_floor(dw * s + 0.5);
        oh = even_round(ow * dh / dw);
    } else {
        oh = even_floor(dh * s + 0.5);
        ow = even_round(oh * dw / dh);
    }
    if (ow > even_floor(dw))
        ow = even_floor(dw);
    if (oh > even_floor(dh))
        oh = even_floor(dh);
    *out_w = ow;
    *out_h = oh;
    return 0;
}
