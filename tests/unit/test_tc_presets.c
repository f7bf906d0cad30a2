/* Unit tests of the preset table (presets.c): names of API.md, lookups,
 * the JSON listing, container MIME types and extensions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <transcode/tc.h>

static void api_presets_exist(void **state)
{
    (void)state;
    static const char *const names[] = {"mp4-1080p", "mp4-720p", "mp4-480p", "audio-m4a",
                                         "thumbnail", "remux-mp4", "hevc-1080p", "webm-720p",
                                         "av1-720p", "audio-mp3", "audio-opus"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct tc_output_spec s;
        struct tc_error err = {0};
        if (tc_preset_find(names[i], &s, &err) != 0)
            fail_msg("preset %s missing: %s", names[i], err.message);
        assert_string_equal(s.name, names[i]);
        assert_string_equal(s.preset, names[i]);
    }
}

static void mp4_presets_are_h264_aac(void **state)
{
    (void)state;
    static const struct { const char *name; int h; } rows[] = {
        {"mp4-1080p", 1080}, {"mp4-720p", 720}, {"mp4-480p", 480}};
    for (size_t i = 0; i < 3; i++) {
        struct tc_output_spec s;
        assert_int_equal(tc_preset_find(rows[i].name, &s, NULL), 0);
        assert_string_equal(s.container, "mp4");
        assert_string_equal(s.video.codec, "h264");
        assert_string_equal(s.audio.codec, "aac");
        assert_int_equal(s.video.max_height, rows[i].h);
        assert_int_equal(s.video.crf, 23);
        assert_int_equal(s.audio.bitrate, 128000);
        assert_true(s.has_video && s.has_audio);
    }
    struct tc_output_spec s;
    assert_int_equal(tc_preset_find("audio-m4a", &s, NULL), 0);
    assert_false(s.has_video);
    assert_string_equal(s.container, "m4a");
    assert_int_equal(tc_preset_find("remux-mp4", &s, NULL), 0);
    assert_string_equal(s.video.codec, "copy");
    assert_string_equal(s.audio.codec, "copy");
    assert_int_equal(tc_preset_find("thumbnail", &s, NULL), 0);
    assert_string_equal(s.container, "jpg");
    assert_false(s.has_audio);
}

static void unknown_preset(void **state)
{
    (void)state;
    struct tc_output_spec s;
    struct tc_error err = {0};
    assert_int_equal(tc_preset_find("mp4-4k", &s, &err), TC_EINVALID_PRESET);
    assert_non_null(strstr(err.message, "mp4-4k"));
    assert_int_equal(tc_preset_find(NULL, &s, &err), TC_EINVALID_PRESET);
    assert_null(tc_preset_name(tc_preset_count()));
    assert_null(tc_preset_description(tc_preset_count()));
}

static void json_listing(void **state)
{
    (void)state;
    json_t *o = tc_presets_to_json();
    assert_non_null(o);
    json_t *arr = json_object_get(o, "presets");
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), tc_preset_count());
    json_t *first = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(first, "name")), tc_preset_name(0));
    assert_true(json_is_string(json_object_get(first, "description")));
    assert_true(json_is_object(json_object_get(first, "spec")));
    json_decref(o);
}

static void containers(void **state)
{
    (void)state;
    assert_string_equal(tc_container_mime("mp4"), "video/mp4");
    assert_string_equal(tc_container_mime("hls"), "application/vnd.apple.mpegurl");
    assert_string_equal(tc_container_mime("jpg"), "image/jpeg");
    assert_string_equal(tc_container_mime("m4a"), "audio/mp4");
    assert_string_equal(tc_container_ext("hls"), "m3u8");
    assert_string_equal(tc_container_ext("webm"), "webm");
    assert_non_null(tc_container_mime("nope"));
    assert_non_null(tc_container_ext(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(api_presets_exist),
        cmocka_unit_test(mp4_presets_are_h264_aac),
        cmocka_unit_test(unknown_preset),
        cmocka_unit_test(json_listing),
        cmocka_unit_test(containers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
