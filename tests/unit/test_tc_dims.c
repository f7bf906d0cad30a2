/* Unit tests of the output size maths (dims.c): caps on the shorter
 * displayed side, rotation, sample aspect ratio, odd sizes, no upscale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <transcode/tc.h>

#include "internal.h"

static struct tc_video_spec cap(int max_height)
{
    struct tc_video_spec vs;
    memset(&vs, 0, sizeof(vs));
    vs.max_height = max_height;
    vs.crf = -1;
    return vs;
}

static void check(int w, int h, int sn, int sd, int rot, const struct tc_video_spec *vs, int ew,
                  int eh)
{
    int ow = -1, oh = -1;
    assert_int_equal(tc_dims_compute(w, h, sn, sd, rot, vs, &ow, &oh), 0);
    assert_int_equal(ow, ew);
    assert_int_equal(oh, eh);
    assert_int_equal(ow % 2, 0);
    assert_int_equal(oh % 2, 0);
}

static void landscape_caps(void **state)
{
    (void)state;
    struct tc_video_spec v720 = cap(720), v480 = cap(480), v1080 = cap(1080);
    check(1920, 1080, 0, 0, 0, &v720, 1280, 720);
    check(1920, 1080, 1, 1, 0, &v480, 854, 480);
    check(1920, 1080, 0, 1, 0, &v1080, 1920, 1080);
    check(3840, 2160, 0, 0, 0, &v1080, 1920, 1080);
}

static void portrait_caps_shorter_side(void **state)
{
    (void)state;
    struct tc_video_spec v720 = cap(720);
    check(1080, 1920, 0, 0, 0, &v720, 720, 1280);
}

static void rotation_swaps_display(void **state)
{
    (void)state;
    struct tc_video_spec v720 = cap(720), none = cap(0);
    check(1920, 1080, 0, 0, 90, &v720, 720, 1280);
    check(1920, 1080, 0, 0, 270, &v720, 720, 1280);
    check(1920, 1080, 0, 0, 180, &v720, 1280, 720);
    check(640, 360, 0, 0, 90, &none, 360, 640);
}

static void never_upscales(void **state)
{
    (void)state;
    struct tc_video_spec v1080 = cap(1080), box = cap(0);
    check(640, 360, 0, 0, 0, &v1080, 640, 360);
    check(320, 240, 0, 0, 0, &v1080, 320, 240);
    box.width = 1920;
    box.height = 1080;
    check(640, 360, 0, 0, 0, &box, 640, 360);
}

static void odd_sizes_become_even(void **state)
{
    (void)state;
    struct tc_video_spec v720 = cap(720), v100 = cap(100);
    check(641, 361, 0, 0, 0, &v720, 640, 360);
    check(321, 241, 0, 0, 0, &v100, 134, 100);
    check(3, 3, 0, 0, 0, &v720, 2, 2);
}

static void sample_aspect_ratio_is_applied(void **state)
{
    (void)state;
    struct tc_video_spec v480 = cap(480), none = cap(0);
    /* DVD PAL 16:9: 720x576 with SAR 64:45 shows as 1024x576. */
    check(720, 576, 64, 45, 0, &none, 1024, 576);
    check(720, 576, 64, 45, 0, &v480, 854, 480);
    /* anamorphic 1440x1080 (SAR 4:3) is 1920x1080 displayed */
    struct tc_video_spec v720 = cap(720);
    check(1440, 1080, 4, 3, 0, &v720, 1280, 720);
}

static void explicit_box_keeps_aspect(void **state)
{
    (void)state;
    struct tc_video_spec box = cap(0);
    box.width = 1000;
    check(1920, 1080, 0, 0, 0, &box, 1000, 562);
    box.width = 0;
    box.height = 360;
    check(1920, 1080, 0, 0, 0, &box, 640, 360);
}

static void nonsense_is_refused(void **state)
{
    (void)state;
    int w, h;
    struct tc_video_spec v = cap(720);
    assert_int_equal(tc_dims_compute(0, 1080, 0, 0, 0, &v, &w, &h), TC_EINVAL);
    assert_int_equal(tc_dims_compute(1920, -2, 0, 0, 0, &v, &w, &h), TC_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(landscape_caps),
        cmocka_unit_test(portrait_caps_shorter_side),
        cmocka_unit_test(rotation_swaps_display),
        cmocka_unit_test(never_upscales),
        cmocka_unit_test(odd_sizes_become_even),
        cmocka_unit_test(sample_aspect_ratio_is_applied),
        cmocka_unit_test(explicit_box_keeps_aspect),
        cmocka_unit_test(nonsense_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
