/* Unit tests of result.c: a folder output's API description (hls
 * renditions, sprite layout) from struct tc_output_result alone, and the
 * pack/unpack round trip the service's worker child uses, with bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <transcode/tc.h>

/* A 2-rung ladder with audio, as tc_run reports it. */
static void hls_result(struct tc_output_result *r)
{
    memset(r, 0, sizeof(*r));
    r->size = 123456;
    r->duration_s = 3.5;
    r->n_variants = 2;
    for (int k = 0; k < 2; k++) {
        struct tc_hls_variant *v = &r->variants[k];
        snprintf(v->name, sizeof(v->name), "%s", k ? "360p" : "720p");
        snprintf(v->uri, sizeof(v->uri), "%s/index.m3u8", v->name);
        snprintf(v->codecs, sizeof(v->codecs), "avc1.64001F,mp4a.40.2");
        v->bandwidth = k ? 1000000 : 3000000;
        v->average_bandwidth = v->bandwidth * 9 / 10;
        v->has_video = v->has_audio = 1;
        snprintf(v->video.codec, sizeof(v->video.codec), "h264");
        snprintf(v->video.profile, sizeof(v->video.profile), "High");
        snprintf(v->video.pix_fmt, sizeof(v->video.pix_fmt), "yuv420p");
        v->video.width = v->video.display_width = k ? 640 : 1280;
        v->video.height = v->video.display_height = k ? 360 : 720;
        v->video.fps = 25;
        v->video.bit_depth = 8;
        v->video.level = -1;
        v->video.bit_rate = v->average_bandwidth - 130000;
        snprintf(v->audio.codec, sizeof(v->audio.codec), "aac");
        v->audio.channels = 2;
        v->audio.sample_rate = 48000;
        v->audio.bit_rate = 130000;
    }
}

static void hls_description(void **state)
{
    (void)state;
    struct tc_output out = {.path = "/nonexistent/out"};
    struct tc_output_result r;
    hls_result(&r);
    snprintf(out.spec.container, sizeof(out.spec.container), "hls");
    json_t *j = tc_output_result_to_json(&out, &r);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "size")), 123456);
    json_t *list = json_object_get(j, "renditions");
    assert_int_equal(json_array_size(list), 2);
    json_t *v1 = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(v1, "uri")), "360p/index.m3u8");
    assert_int_equal(json_integer_value(json_object_get(v1, "bandwidth")), 1000000);
    assert_int_equal(json_integer_value(json_object_get(v1, "average_bandwidth")), 900000);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v1, "video"), "height")),
                     360);
    /* The output's streams: the top rung's video and the audio, "copied" false. */
    json_t *video = json_object_get(j, "video");
    assert_int_equal(json_integer_value(json_object_get(video, "height")), 720);
    assert_true(json_is_false(json_object_get(video, "copied")));
    json_t *audio = json_object_get(j, "audio");
    assert_int_equal(json_integer_value(json_object_get(audio, "sample_rate")), 48000);
    assert_true(json_is_false(json_object_get(audio, "copied")));
    json_decref(j);

    /* Audio only: one variant without video. */
    r.n_variants = 1;
    r.variants[0] = r.variants[1];
    r.variants[0].has_video = 0;
    j = tc_output_result_to_json(&out, &r);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "video")));
    assert_true(json_is_null(
        json_object_get(json_array_get(json_object_get(j, "renditions"), 0), "video")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "audio"), "codec")),
                        "aac");
    json_decref(j);
}

static void sprite_description(void **state)
{
    (void)state;
    struct tc_output out = {.path = "/nonexistent/out"};
    struct tc_output_result r = {.size = 999, .duration_s = 10};
    snprintf(out.spec.container, sizeof(out.spec.container), "sprite");
    r.sprite = (struct tc_sprite_result){.tile_width = 160,
                                         .tile_height = 90,
                                         .columns = 10,
                                         .rows = 10,
                                         .sheet_width = 1600,
                                         .sheet_height = 900,
                                         .sheets = 2,
                                         .tiles = 150,
                                         .interval_s = 2};
    json_t *j = tc_output_result_to_json(&out, &r);
    assert_non_null(j);
    json_t *video = json_object_get(j, "video");
    assert_string_equal(json_string_value(json_object_get(video, "codec")), "mjpeg");
    assert_int_equal(json_integer_value(json_object_get(video, "width")), 1600);
    assert_int_equal(json_integer_value(json_object_get(video, "height")), 900);
    assert_true(json_is_null(json_object_get(j, "audio")));
    json_t *s = json_object_get(j, "sprite");
    assert_int_equal(json_integer_value(json_object_get(s, "tile_width")), 160);
    assert_int_equal(json_integer_value(json_object_get(s, "sheets")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "tiles")), 150);
    json_decref(j);
}

static void pack_round_trip(void **state)
{
    (void)state;
    struct tc_output_result r, back;
    hls_result(&r);
    r.video_copied = 1;
    r.sprite.sheets = 3;
    json_t *p = tc_output_result_pack(&r);
    assert_non_null(p);
    /* Through text, as it crosses the pipe. */
    char *text = json_dumps(p, JSON_COMPACT);
    json_t *q = json_loads(text, 0, NULL);
    assert_non_null(q);
    assert_int_equal(tc_output_result_unpack(q, &back), 0);
    assert_int_equal(back.size, r.size);
    assert_true(back.duration_s == r.duration_s);
    assert_int_equal(back.video_copied, 1);
    assert_int_equal(back.audio_copied, 0);
    assert_int_equal(back.n_variants, 2);
    assert_string_equal(back.variants[1].codecs, r.variants[1].codecs);
    assert_string_equal(back.variants[1].video.profile, "High");
    assert_int_equal(back.variants[1].average_bandwidth, 900000);
    assert_int_equal(back.variants[0].audio.channels, 2);
    assert_int_equal(back.sprite.sheets, 3);
    json_t *again = tc_output_result_pack(&back);
    assert_true(json_equal(again, p));
    json_decref(again);
    json_decref(q);
    free(text);
    json_decref(p);
}

static void unpack_bad(void **state)
{
    (void)state;
    struct tc_output_result r, good;
    hls_result(&good);
    json_t *p = tc_output_result_pack(&good);
    assert_non_null(p);
    /* Not an object, a missing key, a wrong type, too many variants: all
     * refused, res zeroed. */
    json_t *bad[5];
    bad[0] = json_string("x");
    bad[1] = json_deep_copy(p);
    json_object_del(bad[1], "sprite");
    bad[2] = json_deep_copy(p);
    json_object_set_new(bad[2], "size", json_string("12"));
    bad[3] = json_deep_copy(p);
    json_t *vs = json_object_get(bad[3], "variants");
    for (int k = 0; k < 3; k++)
        json_array_append(vs, json_array_get(vs, 0));
    bad[4] = json_deep_copy(p);
    json_object_del(
        json_object_get(json_array_get(json_object_get(bad[4], "variants"), 0), "video"), "width");
    for (int i = 0; i < 5; i++) {
        memset(&r, 0xff, sizeof(r));
        assert_int_equal(tc_output_result_unpack(bad[i], &r), TC_EINVAL);
        assert_int_equal(r.size, 0);
        assert_int_equal(r.n_variants, 0);
        json_decref(bad[i]);
    }
    /* A string longer than its field is cut, not overrun. */
    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    json_object_set_new(json_array_get(json_object_get(p, "variants"), 0), "codecs",
                        json_string(longname));
    assert_int_equal(tc_output_result_unpack(p, &r), 0);
    assert_int_equal(strlen(r.variants[0].codecs), sizeof(r.variants[0].codecs) - 1);
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hls_description),
        cmocka_unit_test(sprite_description),
        cmocka_unit_test(pack_round_trip),
        cmocka_unit_test(unpack_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
