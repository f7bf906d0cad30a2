/* fuzz_spec: the output spec JSON of the API (tc_spec_parse), as one
 * object or as the "outputs" array of an upload. A spec that parses must
 * survive a round trip: tc_spec_to_json of it parses again to the same
 * JSON, and tc_spec_check_input against a few input shapes answers one of
 * its documented codes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <transcode/tc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_input_shapes(const struct tc_output_spec *spec)
{
    struct tc_media_info av, audio, video;
    struct tc_error err;
    memset(&av, 0, sizeof(av));
    snprintf(av.format, sizeof(av.format), "mov,mp4,m4a,3gp,3g2,mj2");
    av.duration_s = 10;
    av.has_video = av.has_audio = 1;
    snprintf(av.video.codec, sizeof(av.video.codec), "h264");
    snprintf(av.video.pix_fmt, sizeof(av.video.pix_fmt), "yuv420p");
    av.video.width = av.video.display_width = 1280;
    av.video.height = av.video.display_height = 720;
    av.video.fps = 25;
    av.video.bit_depth = 8;
    snprintf(av.audio.codec, sizeof(av.audio.codec), "aac");
    av.audio.channels = 2;
    av.audio.sample_rate = 48000;
    audio = av;
    audio.has_video = 0;
    video = av;
    video.has_audio = 0;
    const struct tc_media_info *shapes[] = {&av, &audio, &video};
    for (size_t i = 0; i < 3; i++) {
        memset(&err, 0, sizeof(err));
        int r = tc_spec_check_input(spec, shapes[i], &err);
        if (r != 0 && r != TC_ENOT_REMUXABLE && r != TC_EINVALID_OUTPUT)
            abort();
        if (r != 0 && !err.message[0])
            abort();
    }
}

static void one(const json_t *obj)
{
    struct tc_output_spec spec, again;
    struct tc_error err;
    memset(&err, 0, sizeof(err));
    int r = tc_spec_parse(obj, &spec, &err);
    if (r != 0) {
        if (r != TC_EINVALID_OUTPUT || !err.message[0])
            abort();
        return;
    }
    json_t *j = tc_spec_to_json(&spec);
    if (!j)
        return; /* out of memory */
    memset(&err, 0, sizeof(err));
    if (tc_spec_parse(j, &again, &err) != 0)
        abort(); /* what we print must parse */
    json_t *j2 = tc_spec_to_json(&again);
    if (j2 && !json_equal(j, j2))
        abort(); /* and mean the same */
    json_decref(j2);
    json_decref(j);
    check_input_shapes(&spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                              NULL);
    if (!root)
        return 0;
    if (json_is_array(root)) {
        size_t i;
        json_t *v;
        json_array_foreach(root, i, v)
        {
            if (i >= 16)
                break;
            one(v);
        }
    } else {
        one(root);
    }
    json_decref(root);
    return 0;
}
