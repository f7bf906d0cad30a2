/* presets.c - the preset table (adding a preset is adding a row) and the
 * containers' names, MIME types, extensions and muxers.
 *
 * Threading: read-only tables; any thread. */
#include <string.h>

#include "transcode/tc.h"
#include "internal.h"

#define H264_AAC(nm, h, desc)                                                              \
    {desc,                                                                                 \
     {.name = nm, .preset = nm, .container = "mp4", .has_video = 1, .has_audio = 1,        \
      .video = {.codec = "h264", .max_height = h, .crf = 23, .speed = "veryfast"},         \
      .audio = {.codec = "aac", .bitrate = 128000}}}

static const struct preset {
    const char *description;
    struct tc_output_spec spec;
} presets[] = {
    H264_AAC("mp4-1080p", 1080, "H.264 High (CRF 23, veryfast) + AAC 128k in MP4 with faststart, up to 1080p"),
    H264_AAC("mp4-720p", 720, "H.264 High (CRF 23, veryfast) + AAC 128k in MP4 with faststart, up to 720p"),
    H264_AAC("mp4-480p", 480, "H.264 High (CRF 23, veryfast) + AAC 128k in MP4 with faststart, up to 480p"),
    {"HEVC (libx265 CRF 28, tagged hvc1) + AAC 128k in MP4 with faststart, up to 1080p",
     {.name = "hevc-1080p", .preset = "hevc-1080p", .container = "mp4", .has_video = 1, .has_audio = 1,
      .video = {.codec = "hevc", .max_height = 1080, .crf = 28, .speed = "veryfast"},
      .audio = {.codec = "aac", .bitrate = 128000}}},
    {"VP9 (CRF 33) + Opus 96k in WebM, up to 720p",
     {.name = "webm-720p", .preset = "webm-720p", .container = "webm", .has_video = 1, .has_audio = 1,
      .video = {.codec = "vp9", .max_height = 720, .crf = 33, .speed = "veryfast"},
      .audio = {.codec = "opus", .bitrate = 96000}}},
    {"AV1 (SVT-AV1 CRF 35) + Opus 96k in MP4 with faststart, up to 720p",
     {.name = "av1-720p", .preset = "av1-720p", .container = "mp4", .has_video = 1, .has_audio = 1,
      .video = {.codec = "av1", .max_height = 720, .crf = 35, .speed = "veryfast"},
      .audio = {.codec = "opus", .bitrate = 96000}}},
    {"adaptive HLS ladder in one pass: H.264 1080p 5 Mb/s, 720p 2.8 Mb/s, 480p 1.4 Mb/s, 360p 0.8 Mb/s "
     "(rungs above the source left out), AAC 128k encoded once in one audio group, ~4 s MPEG-TS "
     "segments with aligned keyframes, master.m3u8",
     {.name = "hls", .preset = "hls", .container = "hls", .has_video = 1, .has_audio = 1,
      .video = {.codec = "h264", .max_height = 1080, .crf = -1, .speed = "veryfast"},
      .audio = {.codec = "aac", .bitrate = 128000}}},
    {"AAC 128k audio only in M4A",
     {.name = "audio-m4a", .preset = "audio-m4a", .container = "m4a", .has_audio = 1,
      .video = {.crf = -1}, .audio = {.codec = "aac", .bitrate = 128000}}},
    {"MP3 192k audio only",
     {.name = "audio-mp3", .preset = "audio-mp3", .container = "mp3", .has_audio = 1,
      .video = {.crf = -1}, .audio = {.codec = "mp3", .bitrate = 192000}}},
    {"Opus 96k audio only in Ogg",
     {.name = "audio-opus", .preset = "audio-opus", .container = "ogg", .has_audio = 1,
      .video = {.crf = -1}, .audio = {.codec = "opus", .bitrate = 96000}}},
    {"one JPEG poster frame, up to 720p: the most representative of the first 10% (5 s to 1 min), "
     "black and flat frames skipped",
     {.name = "thumbnail", .preset = "thumbnail", .container = "jpg", .has_video = 1,
      .video = {.codec = "mjpeg", .max_height = 720, .crf = -1}}},
    {"JPEG sprite sheets for seek-bar previews: a tile 160 px wide every 5 s, 10 x 10 tiles a "
     "sheet, and the WebVTT index thumbnails.vtt (cues sheet-NNNN.jpg#xywh=x,y,w,h)",
     {.name = "thumbnails-sprite", .preset = "thumbnails-sprite", .container = "sprite",
      .has_video = 1, .video = {.codec = "mjpeg", .width = 160, .crf = -1},
      .sprite = {.interval_s = 5.0, .columns = 10, .rows = 10}}},
    {"stream copy into MP4 with faststart (no re-encode; only codecs MP4 can hold)",
     {.name = "remux-mp4", .preset = "remux-mp4", .container = "mp4", .has_video = 1, .has_audio = 1,
      .video = {.codec = "copy", .crf = -1}, .audio = {.codec = "copy"}}},
};

enum { N_PRESETS = sizeof(presets) / sizeof(presets[0]) };

int tc_preset_find(const char *preset, struct tc_output_spec *spec, struct tc_error *err)
{
    for (size_t i = 0; preset && i < N_PRESETS; i++) {
        if (strcmp(presets[i].spec.name, preset) == 0) {
            *spec = presets[i].spec;
            return 0;
        }
    }
    return tc_error_set(err, TC_EINVALID_PRESET, "no such preset: '%.64s' (see vidq presets)",
                        preset ? preset : "");
}

size_t tc_preset_count(void)
{
    return N_PRESETS;
}

const char *tc_preset_name(size_t i)
{
    return i < N_PRESETS ? presets[i].spec.name : NULL;
}

const char *tc_preset_description(size_t i)
{
    return i < N_PRESETS ? presets[i].description : NULL;
}

json_t *tc_presets_to_json(void)
{
    json_t *root = json_object();
    json_t *arr = json_array();
    if (!root || !arr)
        goto fail;
    for (size_t i = 0; i < N_PRESETS; i++) {
        json_t *spec = tc_spec_to_json(&presets[i].spec);
        json_t *row = spec ? json_pack("{s:s, s:s, s:o}", "name", presets[i].spec.name,
                                       "description", presets[i].description, "spec", spec)
                           : NULL;
        if (!row || json_array_append_new(arr, row) != 0)
            goto fail;
    }
    if (json_object_set_new(root, "presets", arr) != 0) {
        arr = NULL;
        goto fail;
    }
    return root;
fail:
    json_decref(arr);
    json_decref(root);
    return NULL;
}

/* index: the file a folder output is entered by (NULL: one file). The
 * sprite folder is written by sprite.c, not by a muxer. */
static const struct container {
    const char *name, *mime, *ext, *muxer, *index;
} containers[] = {
    {"mp4", "video/mp4", "mp4", "mp4", NULL},
    {"webm", "video/webm", "webm", "webm", NULL},
    {"mkv", "video/x-matroska", "mkv", "matroska", NULL},
    {"hls", "application/vnd.apple.mpegurl", "m3u8", "hls", "master.m3u8"},
    {"m4a", "audio/mp4", "m4a", "ipod", NULL},
    {"mp3", "audio/mpeg", "mp3", "mp3", NULL},
    {"ogg", "audio/ogg", "ogg", "ogg", NULL},
    {"jpg", "image/jpeg", "jpg", "mjpeg", NULL},
    {"sprite", "text/vtt", "vtt", NULL, TC_SPRITE_INDEX},
};

static const struct container *container_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof(containers) / sizeof(containers[0]); i++)
        if (strcmp(containers[i].name, name) == 0)
            return &containers[i];
    return NULL;
}

const char *tc_container_mime(const char *container)
{
    const struct container *c = container_find(container);
    return c ? c->mime : "application/octet-stream";
}

const char *tc_file_mime(const char *path)
{
    /* Every file an output may hold: a container's main file and the
     * pieces of folder outputs (playlists, segments, init files, sprite
     * sheets and their WebVTT index). */
    static const struct {
        const char *ext, *mime;
    } types[] = {
        {".m3u8", "application/vnd.apple.mpegurl"}, {".ts", "video/mp2t"},
        {".m4s", "video/iso.segment"},              {".mp4", "video/mp4"},
        {".m4a", "audio/mp4"},                      {".aac", "audio/aac"},
        {".vtt", "text/vtt"},                       {".jpg", "image/jpeg"},
        {".webm", "video/webm"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].mime;
    return "application/octet-stream";
}

const char *tc_container_ext(const char *container)
{
    const struct container *c = container_find(container);
    return c ? c->ext : "bin";
}

const char *tc_container_muxer(const char *container)
{
    const struct container *c = container_find(container);
    return c ? c->muxer : NULL;
}

int tc_container_is_folder(const char *container)
{
    const struct container *c = container_find(container);
    return c && c->index != NULL;
}

const char *tc_container_index(const char *container)
{
    const struct container *c = container_find(container);
    return c ? c->index : NULL;
}
