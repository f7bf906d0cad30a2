/* poster.c - pick the frame of a JPEG poster: a representative picture
 * from the start of the video, never a black or flat (fade, slate) one.
 *
 * DESIGN
 *   Window: the first W seconds, W = 10% of the duration but at least
 *   min(duration, 5 s) and at most 60 s (10 s when the duration is
 *   unknown), so a short clip is looked at whole and a film only for its
 *   first minute: the decode stops as soon as the pick is made.
 *   Sampling: the pipeline offers one decoded frame every W/K seconds
 *   (tc_poster_want); only those are scaled (by the output's own filter
 *   chain, to the poster's size and yuvj420p) and handed in with
 *   tc_poster_add, which keeps a reference and its statistics. K is 24,
 *   fewer for large posters so the candidates stay under ~48 MB.
 *   Usable: a frame is skipped when it is near-uniform (luma standard
 *   deviation < 6: black, white, grey slates, the flat middle of a fade)
 *   or dark (95% of pixels darker than 24 of 255), the checks of
 *   libavfilter's blackframe and signalstats.
 *   The pick is made early once half the candidates are usable and span
 *   half the window (a clip with content from the start is decoded about
 *   halfway, not whole).
 *   Pick: among the usable candidates of the window, the one whose
 *   histogram (64 luma + 2 x 32 chroma bins) is nearest the candidates'
 *   mean histogram, libavfilter's thumbnail filter's rule: it avoids the
 *   odd one out (a cut, a flash, a blur).
 *   Nothing usable in the window (a long black opening): the best frame so
 *   far (largest luma deviation) is kept as the fallback and sampling goes
 *   on at least every second; the first usable frame opens a new window of
 *   up to 5 s, picked as above. A video with no usable frame at all gets
 *   the fallback.
 *
 * Memory: at most K candidate frames of the poster's size plus one.
 * Threading: one pipeline thread per object; the pure helpers anywhere. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <libavutil/frame.h>
#include <libavutil/mem.h>

#include "internal.h"
#include "transcode/tc.h"

enum {
    MAX_CANDIDATES = 24,
    MIN_CANDIDATES = 4,
    CANDIDATE_BYTES = 48 * 1024 * 1024,
};

#define FLAT_STDDEV 6.0    /* luma standard deviation below: uniform */
#define DARK_LUMA 24       /* full-range luma below: a dark pixel */
#define DARK_FRACTION 0.95 /* dark pixels at least: a black frame */

struct candidate {
    AVFrame *frame;
    struct tc_frame_stats st;
    double t;
};

struct tc_poster {
    double window_start, window_len, window_end;
    double step, next_t;
    double want_t;              /* time of the last frame asked about */
    int max_cand, n;
    struct candidate c[MAX_CANDIDATES];
    struct candidate fallback; /* best frame of windows with nothing usable */
    int searching;             /* past a window that had nothing usable */
    int done;                  /* a pick is made; no more frames wanted */
    int picked;                /* index in c[], or -1 for the fallback */
};

void tc_frame_stats_compute(const uint8_t *y, int y_stride, int w, int h, const uint8_t *u,
                            const uint8_t *v, int c_stride, int cw, int ch,
                            struct tc_frame_stats *st)
{
    uint64_t sum = 0, sum2 = 0, dark = 0, n = 0;
    uint64_t hy[TC_HIST_Y] = {0}, hu[TC_HIST_C] = {0}, hv[TC_HIST_C] = {0};
    memset(st, 0, sizeof(*st));
    /* Every other sample of every other row: as good a picture of the
     * frame for these statistics, a quarter of the work. */
    int step = w >= 64 && h >= 64 ? 2 : 1;
    for (int r = 0; r < h; r += step) {
        const uint8_t *p = y + (ptrdiff_t)r * y_stride;
        for (int x = 0; x < w; x += step) {
            unsigned l = p[x];
            sum += l;
            sum2 += l * l;
            dark += l < DARK_LUMA;
            hy[l * TC_HIST_Y / 256]++;
            n++;
        }
    }
    if (n == 0)
        return;
    st->mean = (double)sum / (double)n;
    double var = (double)sum2 / (double)n - st->mean * st->mean;
    st->stddev = var > 0 ? sqrt(var) : 0.0;
    st->dark = (double)dark / (double)n;
    for (int i = 0; i < TC_HIST_Y; i++)
        st->hist[i] = (float)((double)hy[i] / (double)n);
    uint64_t nc = 0;
    for (int r = 0; u && v && r < ch; r += step) {
        const uint8_t *pu = u + (ptrdiff_t)r * c_stride, *pv = v + (ptrdiff_t)r * c_stride;
        for (int x = 0; x < cw; x += step) {
            hu[pu[x] * TC_HIST_C / 256]++;
            hv[pv[x] * TC_HIST_C / 256]++;
            nc++;
        }
    }
    for (int i = 0; nc && i < TC_HIST_C; i++) {
        st->hist[TC_HIST_Y + i] = (float)((double)hu[i] / (double)nc);
        st->hist[TC_HIST_Y + TC_HIST_C + i] = (float)((double)hv[i] / (double)nc);
    }
}

int tc_frame_usable(const struct tc_frame_stats *st)
{
    return st->stddev >= FLAT_STDDEV && st->dark < DARK_FRACTION;
}

int tc_poster_choose(const struct tc_frame_stats *c, int n)
{
    double mean[TC_HIST_BINS] = {0};
    int usable = 0, best = -1;
    for (int i = 0; i < n; i++) {
        if (!tc_frame_usable(&c[i]))
            continue;
        usable++;
        for (int b = 0; b < TC_HIST_BINS; b++)
            mean[b] += c[i].hist[b];
    }
    if (usable == 0) {
        /* Nothing usable: the least flat frame. */
        for (int i = 0; i < n; i++)
            if (best < 0 || c[i].stddev > c[best].stddev)
                best = i;
        return best;
    }
    double best_d = INFINITY;
    for (int i = 0; i < n; i++) {
        if (!tc_frame_usable(&c[i]))
            continue;
        double d = 0;
        for (int b = 0; b < TC_HIST_BINS; b++) {
            double e = c[i].hist[b] - mean[b] / usable;
            d += e * e;
        }
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    return best;
}

double tc_poster_window(double duration_s)
{
    if (!(duration_s > 0))
        return 10.0;
    double w = duration_s * 0.1;
    double lo = duration_s < 5.0 ? duration_s : 5.0;
    if (w < lo)
        w = lo;
    return w > 60.0 ? 60.0 : w;
}

static void open_window(struct tc_poster *p, double start, double len)
{
    p->window_start = start;
    p->window_len = len;
    p->window_end = start + len;
    p->step = len / p->max_cand;
    p->next_t = start;
}

int tc_poster_open(double duration_s, int width, int height, struct tc_poster **out)
{
    struct tc_poster *p = av_mallocz(sizeof(*p));
    *out = NULL;
    if (!p)
        return AVERROR(ENOMEM);
    int64_t bytes = (int64_t)width * height * 3 / 2;
    int64_t k = bytes > 0 ? CANDIDATE_BYTES / bytes : MAX_CANDIDATES;
    p->max_cand = k > MAX_CANDIDATES   ? MAX_CANDIDATES
                  : k < MIN_CANDIDATES ? MIN_CANDIDATES
                                       : (int)k;
    p->want_t = -1.0;
    p->picked = -2;
    open_window(p, 0.0, tc_poster_window(duration_s));
    *out = p;
    return 0;
}

void tc_poster_free(struct tc_poster **pp)
{
    if (!pp || !*pp)
        return;
    struct tc_poster *p = *pp;
    for (int i = 0; i < p->n; i++)
        av_frame_free(&p->c[i].frame);
    av_frame_free(&p->fallback.frame);
    av_free(p);
    *pp = NULL;
}

/* A usable time for t: frames without a timestamp count as 1/25 s after
 * the one before (*prev; -1 before the first). */
static double clock_of(double *prev, double t)
{
    if (isnan(t))
        t = *prev < 0 ? 0.0 : *prev + 0.04;
    *prev = t;
    return t;
}

int tc_poster_want(struct tc_poster *p, double t)
{
    if (p->done)
        return 0;
    t = clock_of(&p->want_t, t);
    if (t < p->next_t)
        return 0;
    /* Past a window with nothing usable: look at least every second. */
    double step = p->searching && p->step < 1.0 ? 1.0 : p->step;
    p->next_t = t + step * 0.999;
    return 1;
}

static int any_usable(const struct tc_poster *p)
{
    for (int i = 0; i < p->n; i++)
        if (tc_frame_usable(&p->c[i].st))
            return 1;
    return 0;
}

/* The window closed with nothing usable: keep its best frame as the
 * fallback and go on looking. */
static void keep_fallback(struct tc_poster *p)
{
    for (int i = 0; i < p->n; i++) {
        struct candidate *c = &p->c[i];
        if (!p->fallback.frame || c->st.stddev > p->fallback.st.stddev) {
            av_frame_free(&p->fallback.frame);
            p->fallback = *c;
            c->frame = NULL;
        }
        av_frame_free(&c->frame);
    }
    p->n = 0;
    p->searching = 1;
}

/* Enough to pick from before the window ends: half the candidates usable,
 * spread over half the window. Short clips are looked at whole in the
 * window, but need not be decoded whole for their poster. */
static int enough(const struct tc_poster *p)
{
    int usable = 0;
    double first = 0, last = 0;
    for (int i = 0; i < p->n; i++) {
        if (!tc_frame_usable(&p->c[i].st))
            continue;
        if (!usable++)
            first = p->c[i].t;
        last = p->c[i].t;
    }
    return usable >= (p->max_cand + 1) / 2 && last - first >= p->window_len / 2;
}

static void decide(struct tc_poster *p)
{
    struct tc_frame_stats st[MAX_CANDIDATES];
    for (int i = 0; i < p->n; i++)
        st[i] = p->c[i].st;
    p->picked = tc_poster_choose(st, p->n);
    if (p->picked < 0 || !tc_frame_usable(&st[p->picked])) {
        /* The fallback if it is better than this window's best. */
        if (p->fallback.frame && (p->picked < 0 || p->fallback.st.stddev >= st[p->picked].stddev))
            p->picked = -1;
    }
    p->done = 1;
}

int tc_poster_add(struct tc_poster *p, const AVFrame *f, double t)
{
    if (p->done)
        return 1;
    /* Without a timestamp: the time tc_poster_want gave the frame. */
    if (isnan(t))
        t = p->want_t < 0 ? 0.0 : p->want_t;
    if (t > p->window_end && p->n > 0) {
        /* This frame is past the window: decide on what came before. */
        if (any_usable(p)) {
            decide(p);
            return 1;
        }
        keep_fallback(p);
    }
    struct candidate c = {0};
    const uint8_t *u = f->data[1], *v = f->data[2];
    int cw = (f->width + 1) / 2, ch = (f->height + 1) / 2;
    tc_frame_stats_compute(f->data[0], f->linesize[0], f->width, f->height, u, v,
                           u && v && f->linesize[1] == f->linesize[2] ? f->linesize[1] : 0, cw,
                           u && v && f->linesize[1] == f->linesize[2] ? ch : 0, &c.st);
    if (p->searching) {
        if (!tc_frame_usable(&c.st)) {
            if (p->fallback.frame && c.st.stddev <= p->fallback.st.stddev)
                return 0;
            if (!(c.frame = av_frame_clone(f)))
                return AVERROR(ENOMEM);
            av_frame_free(&p->fallback.frame);
            p->fallback = c;
            return 0;
        }
        /* Content at last: a short window from here. */
        p->searching = 0;
        open_window(p, t, p->window_len < 5.0 ? p->window_len : 5.0);
        p->next_t = t + p->step * 0.999;
    }
    if (!(c.frame = av_frame_clone(f)))
        return AVERROR(ENOMEM);
    c.t = t;
    p->c[p->n++] = c;
    if (enough(p)) {
        decide(p);
        return 1;
    }
    if (p->n == p->max_cand) {
        if (any_usable(p)) {
            decide(p);
            return 1;
        }
        keep_fallback(p);
    }
    return 0;
}

const AVFrame *tc_poster_pick(struct tc_poster *p)
{
    if (!p->done)
        decide(p);
    if (p->picked == -1)
        return p->fallback.frame;
    return p->picked >= 0 ? p->c[p->picked].frame : NULL;
}
