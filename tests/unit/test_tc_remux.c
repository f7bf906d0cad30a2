/* Unit tests of the automatic remux rules (remux.c): which input streams
 * may be copied into which output specs, and the "auto_copy" spec field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <transcode/tc.h>

#include "internal.h"

/* H.264 High 1280x720 25 fps 2 Mb/s + AAC stereo 48 kHz 96 kb/s, 10 s. */
static struct tc_media_info src720(void)
{
    struct tc_media_info m;
    memset(&m, 0, sizeof(m));
    m.has_video = m.has_audio = 1;
    m.duration_s = 10;
    m.size = 2700000;
    struct tc_video_info *v = &m.video;
    strcpy(v->codec, "h264");
    strcpy(v->profile, "High");
    strcpy(v->pix_fmt, "yuv420p");
    v->width = v->display_width = 1280;
    v->height = v->display_height = 720;
    v->fps = 25;
    v->bit_depth = 8;
    v->level = 31;
    v->bit_rate = 2000000;
    strcpy(m.audio.codec, "aac");
    m.audio.channels = 2;
    m.audio.sample_rate = 48000;
    m.audio.bit_rate = 96000;
    return m;
}

static struct tc_output_spec preset(const char *name)
{
    struct tc_output_spec s;
    assert_int_equal(tc_preset_find(name, &s, NULL), 0);
    return s;
}

static int vfits(const struct tc_output_spec *s, const struct tc_media_info *m)
{
    char why[128] = "";
    int r = tc_copy_video_fits(s, m, why, sizeof(why));
    assert_true(r == 1 || why[0] != '\0'); /* a refusal always says why */
    return r;
}

static int afits(const struct tc_output_spec *s, const struct tc_media_info *m)
{
    char why[128] = "";
    int r = tc_copy_audio_fits(s, m, why, sizeof(why));
    assert_true(r == 1 || why[0] != '\0');
    return r;
}

static void fitting_stream_is_copied(void **state)
{
    (void)state;
    struct tc_media_info m = src720();
    struct tc_output_spec s = preset("mp4-720p");
    assert_int_equal(vfits(&s, &m), 1);
    assert_int_equal(afits(&s, &m), 1);
    s = preset("mp4-1080p");
    assert_int_equal(vfits(&s, &m), 1);
    const char *profiles[] = {"Main", "Constrained Baseline", "Baseline"};
    for (size_t i = 0; i < 3; i++) {
        strcpy(m.video.profile, profiles[i]);
        assert_int_equal(vfits(&s, &m), 1);
    }
}

static void size_rules(void **state)
{
    (void)state;
    struct tc_media_info m = src720();
    struct tc_output_spec s = preset("mp4-480p");
    assert_int_equal(vfits(&s, &m), 0); /* would be scaled down */
    s = preset("mp4-720p");
    m.video.width = m.video.display_width = 1920;
    m.video.height = m.video.display_height = 1080;
    assert_int_equal(vfits(&s, &m), 0);
    m = src720();
    m.video.width = m.video.display_width = 853; /* odd: an encode evens it */
    m.video.height = m.video.display_height = 480;
    assert_int_equal(vfits(&s, &m), 0);
    m = src720();
    m.video.display_width = 1707; /* anamorphic */
    assert_int_equal(vfits(&s, &m), 0);
    m = src720();
    s.video.width = 640; /* an explicit box smaller than the source */
    assert_int_equal(vfits(&s, &m), 0);
}

static void rotation_only_where_kept(void **state)
{
    (void)state;
    struct tc_media_info m = src720();
    m.video.rotation = 90;
    m.video.display_width = 720;
    m.video.display_height = 1280;
    struct tc_output_spec s = preset("mp4-720p");
    assert_int_equal(vfits(&s, &m), 1); /* MP4 keeps the display matrix */
    strcpy(s.container, "mkv");
    assert_int_equal(vfits(&s, &m), 0);
    /* Portrait 1080x1920 under the 720 cap: scaled, so encoded. */
    m.video.width = 1920;
    m.video.height = 1080;
    m.video.display_width = 1080;
    m.video.display_height = 1920;
    strcpy(s.container, "mp4");
    assert_int_equal(vfits(&s, &m), 0);
}

static void codec_profile_pixfmt_level(void **state)
{
    (void)state;
    struct tc_output_spec s = preset("mp4-720p");
    struct tc_media_info m = src720();
    strcpy(m.video.codec, "hevc");
    strcpy(m.video.profile, "Main");
    assert_int_equal(vfits(&s, &m), 0); /* HEVC into an H.264 preset */
    m = src720();
    strcpy(m.video.profile, "High 10");
    strcpy(m.video.pix_fmt, "yuv420p10le");
    m.video.bit_depth = 10;
    assert_int_equal(vfits(&s, &m), 0);
    m = src720();
    strcpy(m.video.profile, "High 4:4:4 Predictive");
    strcpy(m.video.pix_fmt, "yuv444p");
    assert_int_equal(vfits(&s, &m), 0);
    m = src720();
    strcpy(m.video.pix_fmt, "yuvj420p");
    assert_int_equal(vfits(&s, &m), 0);
    m = src720();
    m.video.level = 51;
    assert_int_equal(vfits(&s, &m), 0);
    m.video.level = -1;
    assert_int_equal(vfits(&s, &m), 0);
    m.video.level = 42;
    assert_int_equal(vfits(&s, &m), 1);
    /* HEVC into the HEVC preset: Main 8-bit only. */
    s = preset("hevc-1080p");
    m = src720();
    strcpy(m.video.codec, "hevc");
    strcpy(m.video.profile, "Main");
    m.video.level = 93;
    assert_int_equal(vfits(&s, &m), 1);
    strcpy(m.video.profile, "Main 10");
    assert_int_equal(vfits(&s, &m), 0);
    /* VP9 profile 0 into webm-720p. */
    s = preset("webm-720p");
    m = src720();
    strcpy(m.video.codec, "vp9");
    strcpy(m.video.profile, "Profile 0");
    m.video.level = -99;
    assert_int_equal(vfits(&s, &m), 1);
}

static void timing_and_interlace(void **state)
{
    (void)state;
    struct tc_output_spec s = preset("mp4-720p");
    struct tc_media_info m = src720();
    m.video.interlaced = 1;
    assert_int_equal(vfits(&s, &m), 0);
    m = src720();
    s.video.fps = 25;
    assert_int_equal(vfits(&s, &m), 0);
}

static void bitrate_caps(void **state)
{
    (void)state;
    struct tc_output_spec s = preset("mp4-720p");
    struct tc_media_info m = src720();
    /* CRF-only: the ceiling for the frame's shorter side. */
    assert_int_equal(tc_copy_ceiling(720, 25), 5000000);
    assert_int_equal(tc_copy_ceiling(720, 60), 7500000);
    assert_int_equal(tc_copy_ceiling(360, 25), 1000000);
    assert_int_equal(tc_copy_ceiling(1080, 30), 8000000);
    m.video.bit_rate = 5000001;
    assert_int_equal(vfits(&s, &m), 0);
    m.video.bit_rate = 5000000;
    assert_int_equal(vfits(&s, &m), 1);
    /* Unknown: estimated from the file (an upper bound). */
    m.video.bit_rate = 0;
    assert_int_equal(vfits(&s, &m), 1);         /* 2.16 Mb/s */
    m.size = 10 * 1000000;                      /* 8 Mb/s */
    assert_int_equal(vfits(&s, &m), 0);
    m.duration_s = 0;
    assert_int_equal(vfits(&s, &m), 0);         /* cannot tell */
    /* An explicit bitrate is the cap (+5%). */
    m = src720();
    s.video.bitrate = 1000000;
    assert_int_equal(vfits(&s, &m), 0);
    s.video.bitrate = 1950000;
    assert_int_equal(vfits(&s, &m), 1);
}

static void audio_rules(void **state)
{
    (void)state;
    struct tc_output_spec s = preset("mp4-720p");
    struct tc_media_info m = src720();
    m.audio.bit_rate = 134000; /* 128k + 5% */
    assert_int_equal(afits(&s, &m), 1);
    m.audio.bit_rate = 135000;
    assert_int_equal(afits(&s, &m), 0);
    m = src720();
    m.audio.bit_rate = 0;
    assert_int_equal(afits(&s, &m), 0);
    m = src720();
    m.audio.channels = 6;
    assert_int_equal(afits(&s, &m), 0);
    m = src720();
    strcpy(m.audio.codec, "pcm_s16le");
    assert_int_equal(afits(&s, &m), 0);
    m = src720();
    s.audio.sample_rate = 44100;
    assert_int_equal(afits(&s, &m), 0);
    s = preset("audio-m4a");
    m = src720();
    assert_int_equal(afits(&s, &m), 1);
    s = preset("audio-opus");
    strcpy(m.audio.codec, "opus");
    assert_int_equal(afits(&s, &m), 1);
    s = preset("audio-mp3");
    strcpy(m.audio.codec, "mp3");
    m.audio.bit_rate = 320000;
    assert_int_equal(afits(&s, &m), 0);
}

static void never_for_hls_jpg_copy_or_off(void **state)
{
    (void)state;
    struct tc_media_info m = src720();
    struct tc_output_spec s = preset("hls");
    assert_int_equal(vfits(&s, &m), 0);
    assert_int_equal(afits(&s, &m), 0);
    s = preset("thumbnail");
    assert_int_equal(vfits(&s, &m), 0);
    s = preset("remux-mp4"); /* explicit copy: not the automatic path */
    assert_int_equal(vfits(&s, &m), 0);
    s = preset("mp4-720p");
    s.no_auto_copy = 1;
    assert_int_equal(vfits(&s, &m), 0);
    assert_int_equal(afits(&s, &m), 0);
}

static void spec_auto_copy_field(void **state)
{
    (void)state;
    struct tc_output_spec s;
    struct tc_error err = {0};
    json_t *j = json_loads("{\"preset\":\"mp4-720p\",\"auto_copy\":false}", 0, NULL);
    assert_int_equal(tc_spec_parse(j, &s, &err), 0);
    assert_int_equal(s.no_auto_copy, 1);
    assert_string_equal(s.preset, ""); /* changed: no longer the preset */
    json_t *back = tc_spec_to_json(&s);
    assert_true(json_is_false(json_object_get(back, "auto_copy")));
    struct tc_output_spec s2;
    assert_int_equal(tc_spec_parse(back, &s2, &err), 0);
    assert_int_equal(s2.no_auto_copy, 1);
    json_decref(back);
    json_decref(j);

    j = json_loads("{\"preset\":\"mp4-720p\",\"auto_copy\":true}", 0, NULL);
    assert_int_equal(tc_spec_parse(j, &s, &err), 0);
    assert_int_equal(s.no_auto_copy, 0);
    assert_string_equal(s.preset, "mp4-720p");
    back = tc_spec_to_json(&s);
    assert_null(json_object_get(back, "auto_copy"));
    json_decref(back);
    json_decref(j);

    j = json_loads("{\"preset\":\"mp4-720p\",\"auto_copy\":\"no\"}", 0, NULL);
    assert_int_equal(tc_spec_parse(j, &s, &err), TC_EINVALID_OUTPUT);
    assert_non_null(strstr(err.message, "auto_copy"));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fitting_stream_is_copied),
        cmocka_unit_test(size_rules),
        cmocka_unit_test(rotation_only_where_kept),
        cmocka_unit_test(codec_profile_pixfmt_level),
        cmocka_unit_test(timing_and_interlace),
        cmocka_unit_test(bitrate_caps),
        cmocka_unit_test(audio_rules),
        cmocka_unit_test(never_for_hls_jpg_copy_or_off),
        cmocka_unit_test(spec_auto_copy_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
