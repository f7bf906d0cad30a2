/* Unit tests of output spec parsing and validation (spec.c): good specs,
 * bad ones with the field named, JSON round trip, input checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <transcode/tc.h>

static int parse(const char *text, struct tc_output_spec *spec, struct tc_error *err)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    if (!o)
        fail_msg("bad test JSON: %s: %s", text, jerr.text);
    int rc = tc_spec_parse(o, spec, err);
    json_decref(o);
    return rc;
}

static void good_custom_spec(void **state)
{
    (void)state;
    struct tc_output_spec s;
    struct tc_error err = {0};
    int rc = parse("{\"name\":\"small-1\",\"container\":\"mp4\","
                   "\"video\":{\"codec\":\"h264\",\"max_height\":360,\"crf\":28,\"speed\":\"fast\",\"fps\":24},"
                   "\"audio\":{\"codec\":\"aac\",\"bitrate\":96000,\"channels\":1,\"sample_rate\":44100}}",
                   &s, &err);
    assert_int_equal(rc, 0);
    assert_string_equal(s.name, "small-1");
    assert_string_equal(s.container, "mp4");
    assert_string_equal(s.preset, "");
    assert_true(s.has_video && s.has_audio);
    assert_string_equal(s.video.codec, "h264");
    assert_int_equal(s.video.max_height, 360);
    assert_int_equal(s.video.crf, 28);
    assert_string_equal(s.video.speed, "fast");
    assert_true(s.video.fps == 24.0);
    assert_int_equal(s.audio.bitrate, 96000);
    assert_int_equal(s.audio.channels, 1);
    assert_int_equal(s.audio.sample_rate, 44100);
}

static void null_drops_a_stream(void **state)
{
    (void)state;
    struct tc_output_spec s;
    struct tc_error err = {0};
    assert_int_equal(parse("{\"name\":\"a\",\"container\":\"mp4\",\"video\":null,"
                           "\"audio\":{\"codec\":\"aac\"}}", &s, &err), 0);
    assert_false(s.has_video);
    assert_true(s.has_audio);
    assert_int_equal(s.video.crf, -1);
    assert_int_equal(parse("{\"name\":\"t\",\"container\":\"jpg\",\"video\":{},\"audio\":null}", &s, &err), 0);
    assert_string_equal(s.video.codec, "mjpeg");
}

static void preset_base_with_override(void **state)
{
    (void)state;
    struct tc_output_spec s;
    struct tc_error err = {0};
    assert_int_equal(parse("{\"preset\":\"mp4-720p\"}", &s, &err), 0);
    assert_string_equal(s.name, "mp4-720p");
    assert_string_equal(s.preset, "mp4-720p");
    assert_int_equal(s.video.max_height, 720);
    assert_int_equal(parse("{\"preset\":\"mp4-720p\",\"name\":\"x\",\"video\":{\"crf\":30}}", &s, &err), 0);
    assert_string_equal(s.name, "x");
    assert_string_equal(s.preset, "");
    assert_int_equal(s.video.crf, 30);
    assert_int_equal(s.video.max_height, 720);
}

struct bad_case {
    const char *json;
    const char *needle; /* must appear in the message */
};

static void bad_specs_name_the_field(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"[]", "object"},
        {"{\"name\":\"a\"}", "container"},
        {"{\"name\":\"a\",\"container\":\"avi\",\"video\":{\"codec\":\"h264\"},\"audio\":null}", "container"},
        {"{\"name\":\"a\",\"container\":5,\"video\":null,\"audio\":{\"codec\":\"aac\"}}", "container"},
        {"{\"name\":\"a b\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"audio\":null}", "name"},
        {"{\"name\":\"\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"audio\":null}", "name"},
        {"{\"name\":\"../x\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"audio\":null}", "name"},
        {"{\"name\":7,\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"audio\":null}", "name"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h263\"},\"audio\":null}", "video.codec"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"max_height\":-720},\"audio\":null}", "video.max_height"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"width\":-2},\"audio\":null}", "video.width"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"height\":\"720\"},\"audio\":null}", "video.height"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"crf\":1.5},\"audio\":null}", "video.crf"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"crf\":60},\"audio\":null}", "video.crf"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"fps\":0},\"audio\":null}", "video.fps"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"speed\":\"warp\"},\"audio\":null}", "video.speed"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"colour\":1},\"audio\":null}", "video.colour"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"copy\",\"max_height\":720},\"audio\":null}", "copy"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":\"h264\",\"audio\":null}", "video"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":null,\"audio\":null}", "video"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":null,\"audio\":{\"codec\":\"flac\"}}", "audio.codec"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":null,\"audio\":{\"codec\":\"aac\",\"bitrate\":-1}}", "audio.bitrate"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":null,\"audio\":{\"codec\":\"aac\",\"channels\":6}}", "audio.channels"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":null,\"audio\":{}}", "audio.codec"},
        {"{\"name\":\"a\",\"container\":\"m4a\",\"video\":{\"codec\":\"vp9\"},\"audio\":{\"codec\":\"aac\"}}", "video"},
        {"{\"name\":\"a\",\"container\":\"m4a\",\"video\":null,\"audio\":{\"codec\":\"opus\"}}", "audio.codec"},
        {"{\"name\":\"a\",\"container\":\"webm\",\"video\":{\"codec\":\"h264\"},\"audio\":null}", "video.codec"},
        {"{\"name\":\"a\",\"container\":\"webm\",\"video\":{\"codec\":\"vp9\"},\"audio\":{\"codec\":\"aac\"}}", "audio.codec"},
        {"{\"name\":\"a\",\"container\":\"jpg\",\"video\":{\"codec\":\"h264\"},\"audio\":null}", "video.codec"},
        {"{\"name\":\"a\",\"container\":\"jpg\",\"video\":{},\"audio\":{\"codec\":\"aac\"}}", "audio"},
        {"{\"name\":\"a\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"audio\":null,\"extra\":1}", "extra"},
        {"{\"preset\":\"nope\"}", "preset"},
        {"{\"preset\":\"hls\",\"segment_seconds\":1.5}", "segment_seconds"},
        {"{\"preset\":\"hls\",\"segment_seconds\":10.5}", "segment_seconds"},
        {"{\"preset\":\"hls\",\"segment_seconds\":\"4\"}", "segment_seconds"},
        {"{\"preset\":\"hls\",\"segment_format\":\"mp4\"}", "segment_format"},
        {"{\"preset\":\"hls\",\"segment_format\":null}", "segment_format"},
        {"{\"preset\":\"hls\",\"segment_format\":\"ts\",\"video\":{\"codec\":\"hevc\"}}", "segment_format"},
        {"{\"preset\":\"mp4-720p\",\"segment_format\":\"fmp4\"}", "segment_format"},
        {"{\"preset\":\"mp4-720p\",\"segment_seconds\":4}", "segment_seconds"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tc_output_spec s;
        struct tc_error err = {0};
        int rc = parse(cases[i].json, &s, &err);
        if (rc != TC_EINVALID_OUTPUT || !strstr(err.message, cases[i].needle))
            fail_msg("case %zu (%s): rc %d message '%s'", i, cases[i].json, rc, err.message);
        assert_int_equal(err.code, TC_EINVALID_OUTPUT);
    }
}

static void hls_segment_options(void **state)
{
    (void)state;
    struct tc_output_spec s;
    struct tc_error err = {0};
    assert_int_equal(parse("{\"preset\":\"hls\"}", &s, &err), 0);
    assert_string_equal(s.segment_format, "");
    assert_true(s.segment_seconds == 0);
    assert_string_equal(s.preset, "hls");
    assert_int_equal(parse("{\"preset\":\"hls\",\"segment_format\":\"fmp4\",\"segment_seconds\":6}", &s, &err), 0);
    assert_string_equal(s.segment_format, "fmp4");
    assert_true(s.segment_seconds == 6.0);
    assert_string_equal(s.preset, ""); /* changed: custom */
    assert_int_equal(parse("{\"preset\":\"hls\",\"segment_seconds\":2.5}", &s, &err), 0);
    assert_true(s.segment_seconds == 2.5);
    /* HEVC without a segment format gets fMP4. */
    assert_int_equal(parse("{\"preset\":\"hls\",\"video\":{\"codec\":\"hevc\"}}", &s, &err), 0);
    assert_string_equal(s.segment_format, "fmp4");
    assert_string_equal(s.video.codec, "hevc");
    /* Printed back and parsed again: the same. */
    assert_int_equal(parse("{\"preset\":\"hls\",\"segment_format\":\"fmp4\",\"segment_seconds\":3}", &s, &err), 0);
    json_t *j = tc_spec_to_json(&s);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "segment_format")), "fmp4");
    assert_true(json_number_value(json_object_get(j, "segment_seconds")) == 3.0);
    struct tc_output_spec back;
    assert_int_equal(tc_spec_parse(j, &back, &err), 0);
    json_decref(j);
    assert_string_equal(back.segment_format, "fmp4");
    assert_true(back.segment_seconds == 3.0);
}

static void json_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < tc_preset_count(); i++) {
        struct tc_output_spec a, b;
        struct tc_error err = {0};
        assert_int_equal(tc_preset_find(tc_preset_name(i), &a, &err), 0);
        json_t *j = tc_spec_to_json(&a);
        assert_non_null(j);
        int rc = tc_spec_parse(j, &b, &err);
        if (rc != 0)
            fail_msg("preset %s does not parse back: %s", a.name, err.message);
        json_decref(j);
        assert_memory_equal(&a.video, &b.video, sizeof(a.video));
        assert_memory_equal(&a.audio, &b.audio, sizeof(a.audio));
        assert_memory_equal(&a.sprite, &b.sprite, sizeof(a.sprite));
        assert_string_equal(a.container, b.container);
        assert_string_equal(a.name, b.name);
        assert_string_equal(a.preset, b.preset);
    }
}

static void check_input_rules(void **state)
{
    (void)state;
    struct tc_output_spec s;
    struct tc_error err = {0};
    struct tc_media_info audio_only, video_only, av1_flac;
    memset(&audio_only, 0, sizeof(audio_only));
    audio_only.has_audio = 1;
    snprintf(audio_only.audio.codec, sizeof(audio_only.audio.codec), "aac");
    memset(&video_only, 0, sizeof(video_only));
    video_only.has_video = 1;
    snprintf(video_only.video.codec, sizeof(video_only.video.codec), "h264");
    av1_flac = video_only;
    av1_flac.has_audio = 1;
    snprintf(av1_flac.audio.codec, sizeof(av1_flac.audio.codec), "vorbis");

    assert_int_equal(tc_preset_find("mp4-720p", &s, &err), 0);
    assert_int_equal(tc_spec_check_input(&s, &audio_only, &err), 0);
    assert_int_equal(tc_spec_check_input(&s, &video_only, &err), 0);
    assert_int_equal(tc_preset_find("thumbnail", &s, &err), 0);
    assert_int_equal(tc_spec_check_input(&s, &audio_only, &err), TC_EINVALID_OUTPUT);
    assert_non_null(strstr(err.message, "video"));
    assert_int_equal(tc_preset_find("audio-m4a", &s, &err), 0);
    assert_int_equal(tc_spec_check_input(&s, &video_only, &err), TC_EINVALID_OUTPUT);
    assert_int_equal(tc_preset_find("remux-mp4", &s, &err), 0);
    assert_int_equal(tc_spec_check_input(&s, &video_only, &err), 0);
    assert_int_equal(tc_spec_check_input(&s, &av1_flac, &err), TC_ENOT_REMUXABLE);
    assert_non_null(strstr(err.message, "vorbis"));
}

static void sprite_specs(void **state)
{
    (void)state;
    struct tc_output_spec s;
    struct tc_error err = {0};
    /* The container alone: the defaults. */
    assert_int_equal(parse("{\"container\":\"sprite\"}", &s, &err), 0);
    assert_true(s.has_video && !s.has_audio);
    assert_string_equal(s.video.codec, "mjpeg");
    assert_int_equal(s.video.width, 160);
    assert_true(s.sprite.interval_s == 5.0);
    assert_int_equal(s.sprite.columns, 10);
    assert_int_equal(s.sprite.rows, 10);
    assert_true(tc_container_is_folder("sprite") && tc_container_is_folder("hls"));
    assert_false(tc_container_is_folder("jpg") || tc_container_is_folder("nope"));
    assert_string_equal(tc_container_index("sprite"), "thumbnails.vtt");
    assert_string_equal(tc_container_index("hls"), "master.m3u8");
    assert_null(tc_container_index("mp4"));
    assert_string_equal(tc_container_mime("sprite"), "text/vtt");
    /* The preset with one field changed is custom; a height box keeps no
     * default width. */
    assert_int_equal(parse("{\"preset\":\"thumbnails-sprite\",\"sprite\":{\"interval_s\":2.5}}", &s,
                           &err), 0);
    assert_string_equal(s.preset, "");
    assert_true(s.sprite.interval_s == 2.5);
    assert_int_equal(s.sprite.columns, 10);
    assert_int_equal(parse("{\"container\":\"sprite\",\"video\":{\"height\":90}}", &s, &err), 0);
    assert_int_equal(s.video.width, 0);
    assert_int_equal(s.video.height, 90);
    /* Printed with its layout. */
    json_t *j = tc_spec_to_json(&s);
    assert_non_null(j);
    assert_true(json_real_value(json_object_get(json_object_get(j, "sprite"), "interval_s")) == 5.0);
    json_decref(j);
    /* Sprite fields elsewhere, and a preset moved to another container. */
    assert_int_equal(parse("{\"container\":\"jpg\",\"sprite\":{}}", &s, &err), TC_EINVALID_OUTPUT);
    assert_non_null(strstr(err.message, "sprite"));
    assert_int_equal(parse("{\"preset\":\"thumbnails-sprite\",\"container\":\"jpg\"}", &s, &err), 0);
    assert_true(s.sprite.interval_s == 0 && s.sprite.columns == 0);
    /* Tile count cap against a known duration. */
    struct tc_media_info in;
    memset(&in, 0, sizeof(in));
    in.has_video = 1;
    snprintf(in.video.codec, sizeof(in.video.codec), "h264");
    in.duration_s = 1000.0;
    assert_int_equal(parse("{\"container\":\"sprite\",\"sprite\":{\"interval_s\":0.1}}", &s, &err), 0);
    assert_int_equal(tc_spec_check_input(&s, &in, &err), 0); /* exactly 10000 */
    in.duration_s = 1000.2;
    assert_int_equal(tc_spec_check_input(&s, &in, &err), TC_EINVALID_OUTPUT);
    assert_non_null(strstr(err.message, "10000"));
    in.has_video = 0;
    in.has_audio = 1;
    in.duration_s = 10;
    assert_int_equal(tc_spec_check_input(&s, &in, &err), TC_EINVALID_OUTPUT);
}

/* Issue 13's fields: video.hdr, audio.loudness_lufs, at_s, clip; parsed,
 * refused with the field named, printed back, checked against an input. */
static void media13_fields(void **state)
{
    (void)state;
    struct tc_output_spec s, back;
    struct tc_error err = {0};
    assert_int_equal(parse("{\"preset\":\"hevc-1080p\",\"video\":{\"codec\":\"hevc\",\"hdr\":\"keep\"},"
                           "\"audio\":{\"codec\":\"aac\",\"loudness_lufs\":-16.5},"
                           "\"clip\":{\"start_s\":1.5,\"end_s\":4}}", &s, &err), 0);
    assert_string_equal(s.video.hdr, "keep");
    assert_true(s.audio.loudness_lufs == -16.5);
    assert_true(s.clip_start_s == 1.5 && s.clip_end_s == 4.0);
    json_t *j = tc_spec_to_json(&s);
    assert_non_null(j);
    assert_int_equal(tc_spec_parse(j, &back, &err), 0);
    json_decref(j);
    assert_string_equal(back.video.hdr, "keep");
    assert_true(back.audio.loudness_lufs == -16.5);
    assert_true(back.clip_start_s == 1.5 && back.clip_end_s == 4.0);

    assert_int_equal(parse("{\"preset\":\"thumbnail\",\"at_s\":0}", &s, &err), 0);
    assert_true(s.has_at_s && s.at_s == 0.0);
    assert_string_equal(s.preset, ""); /* a picked time is not the preset's pick */
    j = tc_spec_to_json(&s);
    assert_int_equal(tc_spec_parse(j, &back, &err), 0);
    json_decref(j);
    assert_true(back.has_at_s && back.at_s == 0.0);

    static const struct {
        const char *spec, *field;
    } bad[] = {
        {"{\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"hdr\":\"keep\"}}", "video.hdr"},
        {"{\"container\":\"mp4\",\"video\":{\"codec\":\"hevc\",\"hdr\":\"hdr10\"}}", "video.hdr"},
        {"{\"container\":\"mp4\",\"video\":{\"codec\":\"copy\",\"hdr\":\"tonemap\"}}", "video.hdr"},
        {"{\"container\":\"m4a\",\"audio\":{\"codec\":\"aac\",\"loudness_lufs\":-71}}", "audio.loudness_lufs"},
        {"{\"container\":\"m4a\",\"audio\":{\"codec\":\"aac\",\"loudness_lufs\":\"-16\"}}", "audio.loudness_lufs"},
        {"{\"container\":\"m4a\",\"audio\":{\"codec\":\"copy\",\"loudness_lufs\":-16}}", "audio.loudness_lufs"},
        {"{\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"at_s\":1}", "at_s"},
        {"{\"container\":\"jpg\",\"at_s\":-1}", "at_s"},
        {"{\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"clip\":{\"start_s\":3,\"end_s\":2}}", "clip"},
        {"{\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"clip\":{\"begin\":1}}", "clip.begin"},
        {"{\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"clip\":{\"end_s\":0}}", "clip.end_s"},
        {"{\"container\":\"mp4\",\"video\":{\"codec\":\"h264\"},\"clip\":3}", "clip"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(parse(bad[i].spec, &s, &err), TC_EINVALID_OUTPUT);
        if (strncmp(err.message, bad[i].field, strlen(bad[i].field)) != 0)
            fail_msg("%s: message '%s' does not start with '%s'", bad[i].spec, err.message, bad[i].field);
    }

    /* Against an input of 10 s: a clip outside is bad_request (TC_EINVAL). */
    struct tc_media_info info;
    memset(&info, 0, sizeof(info));
    info.duration_s = 10.0;
    info.has_video = info.has_audio = 1;
    assert_int_equal(tc_clip_check(2, 9, &info, &err), 0);
    assert_int_equal(tc_clip_check(0, 10.05, &info, &err), 0);
    assert_int_equal(tc_clip_check(10, 0, &info, &err), TC_EINVAL);
    assert_int_equal(tc_clip_check(1, 11, &info, &err), TC_EINVAL);
    assert_int_equal(parse("{\"preset\":\"thumbnail\",\"at_s\":9.5,\"clip\":{\"start_s\":5}}", &s, &err), 0);
    assert_int_equal(tc_spec_check_input(&s, &info, &err), TC_EINVALID_OUTPUT); /* 9.5 of a 5 s clip */
    s.at_s = 4.5;
    assert_int_equal(tc_spec_check_input(&s, &info, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_custom_spec),
        cmocka_unit_test(null_drops_a_stream),
        cmocka_unit_test(preset_base_with_override),
        cmocka_unit_test(bad_specs_name_the_field),
        cmocka_unit_test(hls_segment_options),
        cmocka_unit_test(json_round_trip),
        cmocka_unit_test(check_input_rules),
        cmocka_unit_test(sprite_specs),
        cmocka_unit_test(media13_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
