/* Unit tests of the poster pick (poster.c): frame statistics, what counts
 * as black or flat, the most representative frame, the window, and the
 * picker over a black opening, a long black opening and an all-black
 * video, with real AVFrames. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>
#include <transcode/tc.h>

#include "internal.h"

enum { W = 64, H = 48 };

/* Kinds of synthetic pictures. */
enum { BLACK, GREY, NOISE_DARK, BARS, BARS_SHIFTED, FLASH };

static void paint(uint8_t *y, int stride, int w, int h, int kind, int seed)
{
    for (int r = 0; r < h; r++)
        for (int x = 0; x < w; x++) {
            uint8_t v;
            switch (kind) {
            case BLACK:
                v = 0;
                break;
            case GREY:
                v = 128;
                break;
            case NOISE_DARK:
                v = (uint8_t)((x * 7 + r * 13 + seed) % 24);
                break; /* < 24 */
            case BARS:
                v = (uint8_t)((x / 8) * 32 + seed % 3);
                break;
            case BARS_SHIFTED:
                v = (uint8_t)(((x / 8 + 1) % 8) * 32);
                break;
            default:
                v = (uint8_t)(x < w / 2 ? 255 : 250 - r);
                break;
            }
            y[r * stride + x] = v;
        }
}

static struct tc_frame_stats stats_of(int kind, int seed)
{
    uint8_t y[W * H], c[(W / 2) * (H / 2)];
    struct tc_frame_stats st;
    paint(y, W, W, H, kind, seed);
    memset(c, 128, sizeof(c));
    tc_frame_stats_compute(y, W, W, H, c, c, W / 2, W / 2, H / 2, &st);
    return st;
}

static void stats_values(void **state)
{
    (void)state;
    struct tc_frame_stats st = stats_of(BLACK, 0);
    assert_true(st.mean == 0.0 && st.stddev == 0.0 && st.dark == 1.0);
    assert_true(fabs(st.hist[0] - 1.0f) < 1e-6);
    assert_true(fabs(st.hist[TC_HIST_Y + TC_HIST_C / 2] - 1.0f) < 1e-6); /* U = 128 */
    st = stats_of(GREY, 0);
    assert_true(st.mean == 128.0 && st.stddev == 0.0 && st.dark == 0.0);
    st = stats_of(BARS, 0);
    /* 8 bars 0, 32, .. 224: mean 112, deviation 32 * sqrt(21/4). */
    assert_true(fabs(st.mean - 112.0) < 1e-9);
    assert_true(fabs(st.stddev - 32.0 * sqrt(5.25)) < 1e-6);
    assert_true(fabs(st.dark - 0.125) < 1e-9);
    double sum = 0;
    for (int i = 0; i < TC_HIST_Y; i++)
        sum += st.hist[i];
    assert_true(fabs(sum - 1.0) < 1e-5);
}

static void usable_frames(void **state)
{
    (void)state;
    struct tc_frame_stats st = stats_of(BLACK, 0);
    assert_false(tc_frame_usable(&st));
    st = stats_of(GREY, 0);
    assert_false(tc_frame_usable(&st)); /* flat, though not dark */
    st = stats_of(NOISE_DARK, 0);
    assert_true(st.stddev > 6.0);       /* not flat... */
    assert_false(tc_frame_usable(&st)); /* ...but black to the eye */
    st = stats_of(BARS, 0);
    assert_true(tc_frame_usable(&st));
}

static void choose_representative(void **state)
{
    (void)state;
    struct tc_frame_stats c[8];
    memset(c, 0, sizeof(c));
    assert_int_equal(tc_poster_choose(c, 0), -1);
    /* Black, black, then four similar frames and one odd one out. */
    c[0] = stats_of(BLACK, 0);
    c[1] = stats_of(NOISE_DARK, 1);
    c[2] = stats_of(BARS, 0);
    c[3] = stats_of(FLASH, 0);
    c[4] = stats_of(BARS, 1);
    c[5] = stats_of(BARS, 2);
    c[6] = stats_of(BARS_SHIFTED, 0);
    int k = tc_poster_choose(c, 7);
    assert_true(k == 2 || k == 4 || k == 5 || k == 6);
    /* Nothing usable: the least flat. */
    c[0] = stats_of(BLACK, 0);
    c[1] = stats_of(NOISE_DARK, 1);
    c[2] = stats_of(GREY, 0);
    assert_int_equal(tc_poster_choose(c, 3), 1);
}

static void window_lengths(void **state)
{
    (void)state;
    assert_true(tc_poster_window(3.0) == 3.0);     /* a short clip whole */
    assert_true(tc_poster_window(20.0) == 5.0);    /* at least 5 s */
    assert_true(tc_poster_window(100.0) == 10.0);  /* 10% */
    assert_true(tc_poster_window(7200.0) == 60.0); /* at most a minute */
    assert_true(tc_poster_window(0.0) == 10.0);    /* unknown */
}

static AVFrame *frame_of(int kind, int seed)
{
    AVFrame *f = av_frame_alloc();
    assert_non_null(f);
    f->format = AV_PIX_FMT_YUVJ420P;
    f->width = W;
    f->height = H;
    assert_int_equal(av_frame_get_buffer(f, 0), 0);
    paint(f->data[0], f->linesize[0], W, H, kind, seed);
    for (int r = 0; r < H / 2; r++) {
        memset(f->data[1] + r * f->linesize[1], 128, W / 2);
        memset(f->data[2] + r * f->linesize[2], 128, W / 2);
    }
    return f;
}

/* Run a 25 fps video of duration d through a picker: kind_at(t) says what
 * the frame at t shows. Returns the picked frame's first luma sample and
 * sets *frames_seen to the frames offered before the pick was made. */
static int run_picker(double d, int (*kind_at)(double t), int *offered, double *stop_t)
{
    struct tc_poster *p = NULL;
    assert_int_equal(tc_poster_open(d, W, H, &p), 0);
    int n = (int)(d * 25), got = 0;
    *offered = 0;
    *stop_t = d;
    for (int i = 0; i < n && !got; i++) {
        double t = i / 25.0;
        if (!tc_poster_want(p, t))
            continue;
        AVFrame *f = frame_of(kind_at(t), i);
        f->data[0][0] = (uint8_t)kind_at(t); /* a tag to tell what was picked */
        int r = tc_poster_add(p, f, t);
        av_frame_free(&f);
        assert_true(r == 0 || r == 1);
        (*offered)++;
        if (r == 1) {
            got = 1;
            *stop_t = t;
        }
    }
    const AVFrame *pick = tc_poster_pick(p);
    assert_non_null(pick);
    assert_int_equal(pick->width, W);
    int tag = pick->data[0][0];
    tc_poster_free(&p);
    assert_null(p);
    return tag;
}

static int black_then_bars(double t)
{
    return t < 1.5 ? BLACK : BARS;
}
static int long_black(double t)
{
    return t < 30.0 ? (t < 10 ? BLACK : NOISE_DARK) : BARS;
}
static int all_black(double t)
{
    return t < 2.0 ? BLACK : NOISE_DARK;
}

static void picker_skips_black(void **state)
{
    (void)state;
    int offered;
    double stop;
    /* 1.5 s black then bars, 4.5 s: the whole clip is the window. */
    assert_int_equal(run_picker(4.5, black_then_bars, &offered, &stop), BARS);
    assert_true(offered >= 20 && offered <= 25);
    /* A 30 s black opening of a 40 s video: the 5 s window holds nothing
     * usable, the picker goes on, then picks within 5 s of the content. */
    assert_int_equal(run_picker(40.0, long_black, &offered, &stop), BARS);
    if (!(stop >= 30.0 && stop <= 35.5))
        fail_msg(
            "picked at %.2f s after %d frames, want 30..35.5 s (the first frame past a 5 s window)",
            stop, offered);
    assert_true(offered < 24 + 30 + 25);
    /* Nothing usable at all: the least flat frame (the dark noise), found
     * at the end of the video. */
    assert_int_equal(run_picker(6.0, all_black, &offered, &stop), NOISE_DARK);
}

static void picker_nothing_offered(void **state)
{
    (void)state;
    struct tc_poster *p = NULL;
    assert_int_equal(tc_poster_open(0.0, 8192, 8192, &p), 0);
    assert_true(tc_poster_want(p, NAN)); /* no timestamp: still sampled */
    assert_null(tc_poster_pick(p));
    tc_poster_free(&p);
    tc_poster_free(&p); /* NULL-safe */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stats_values),          cmocka_unit_test(usable_frames),
        cmocka_unit_test(choose_representative), cmocka_unit_test(window_lengths),
        cmocka_unit_test(picker_skips_black),    cmocka_unit_test(picker_nothing_offered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
