/* Integration test of tc_run through the library API: one pass to several
 * outputs (transcode, thumbnail, audio only, stream copy, custom spec),
 * each checked with ffprobe; progress monotonic and 100 at the end;
 * cancel from the progress callback stops the run and leaves no file; an
 * unwritable output fails with nothing left behind.
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "test_support.h"

static int failures;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ffprobe's value of one entry (e.g. "stream=codec_name") of one stream. */
static void probe(const char *path, const char *sel, const char *entry, char *out, size_t cap)
{
    out[0] = '\0';
    ts_run(out, cap, "ffprobe -v error -select_streams %s -show_entries %s -of default=nw=1:nk=1 '%s'",
           sel, entry, path);
    out[strcspn(out, "\n")] = '\0';
}

struct progress_log {
    double last;
    int calls, went_down, hundred_early;
    int cancel_at;            /* set cancel when percent passes this (0: never) */
    atomic_int *cancel;
    struct timespec canceled_at;
};

static void on_progress(void *opaque, const struct tc_progress_snapshot *s)
{
    struct progress_log *l = opaque;
    if (s->percent < l->last)
        l->went_down++;
    if (l->last >= 100.0)
        l->hundred_early++;
    l->last = s->percent;
    l->calls++;
    if (l->cancel_at && s->percent >= l->cancel_at && !atomic_load(l->cancel)) {
        clock_gettime(CLOCK_MONOTONIC, &l->canceled_at);
        atomic_store(l->cancel, 1);
    }
}

static void many_outputs_one_pass(const char *in, const char *dir)
{
    static const char *const presets[] = {"mp4-480p", "thumbnail", "audio-m4a", "remux-mp4"};
    static const char *const names[] = {"a.mp4", "b.jpg", "c.m4a", "d.mp4", "e.mkv"};
    struct tc_output outs[5];
    char paths[5][400];
    struct tc_output_result res[5];
    struct tc_error err = {0};
    struct tc_progress prog;
    struct progress_log log = {0};
    char v[256];

    memset(outs, 0, sizeof(outs));
    for (int i = 0; i < 5; i++) {
        snprintf(paths[i], sizeof(paths[i]), "%s/%s", dir, names[i]);
        outs[i].path = paths[i];
        if (i < 4)
            CHECK(tc_preset_find(presets[i], &outs[i].spec, &err) == 0, "%s", err.message);
    }
    json_t *spec = json_loads("{\"name\":\"tiny\",\"container\":\"mkv\",\"video\":{\"codec\":\"h264\","
                              "\"max_height\":180,\"fps\":10,\"speed\":\"ultrafast\"},\"audio\":null}", 0, NULL);
    CHECK(spec && tc_spec_parse(spec, &outs[4].spec, &err) == 0, "%s", err.message);
    json_decref(spec);

    struct tc_run_params p = {
        .input_path = in, .outputs = outs, .n_outputs = 5, .threads = 2,
        .progress = &prog, .on_progress = on_progress, .opaque = &log,
    };
    int rc = tc_run(&p, res, &err);
    CHECK(rc == 0, "tc_run: %s: %s", tc_errname(rc), err.message);
    if (rc != 0)
        return;
    struct tc_progress_snapshot snap;
    tc_progress_read(&prog, &snap);
    CHECK(snap.percent == 100.0, "final percent %f", snap.percent);
    CHECK(snap.frames > 0, "frames %lld", (long long)snap.frames);
    CHECK(log.calls >= 3 && !log.went_down && !log.hundred_early && log.last == 100.0,
          "progress calls %d down %d early100 %d last %f", log.calls, log.went_down,
          log.hundred_early, log.last);

    probe(paths[0], "v:0", "stream=codec_name,width,height,pix_fmt", v, sizeof(v));
    CHECK(!strcmp(v, "h264"), "a.mp4 video %s", v);
    probe(paths[0], "v:0", "stream=height", v, sizeof(v));
    CHECK(!strcmp(v, "360"), "a.mp4 height %s", v);
    probe(paths[0], "a:0", "stream=codec_name", v, sizeof(v));
    CHECK(!strcmp(v, "aac"), "a.mp4 audio %s", v);
    CHECK(res[0].size > 1000 && res[0].duration_s > 1.9 && res[0].duration_s < 2.1,
          "a.mp4 result size %lld duration %f", (long long)res[0].size, res[0].duration_s);

    probe(paths[1], "v:0", "stream=codec_name", v, sizeof(v));
    CHECK(!strcmp(v, "mjpeg"), "b.jpg codec %s", v);
    probe(paths[1], "v:0", "stream=width", v, sizeof(v));
    CHECK(!strcmp(v, "640"), "b.jpg width %s", v);

    probe(paths[2], "v", "stream=codec_name", v, sizeof(v));
    CHECK(v[0] == '\0', "c.m4a has video %s", v);
    probe(paths[2], "a:0", "stream=codec_name", v, sizeof(v));
    CHECK(!strcmp(v, "aac"), "c.m4a audio %s", v);

    CHECK(res[3].video_copied && res[3].audio_copied, "d.mp4 not copied");
    probe(paths[3], "v:0", "stream=profile", v, sizeof(v));
    CHECK(!strcmp(v, "Constrained Baseline"), "d.mp4 copy changed the profile: %s", v);

    probe(paths[4], "v:0", "stream=width", v, sizeof(v));
    CHECK(!strcmp(v, "320"), "e.mkv width %s", v);
    probe(paths[4], "v:0", "stream=avg_frame_rate", v, sizeof(v));
    CHECK(!strcmp(v, "10/1"), "e.mkv fps %s", v);
    probe(paths[4], "a", "stream=codec_name", v, sizeof(v));
    CHECK(v[0] == '\0', "e.mkv has audio %s", v);
    for (int i = 0; i < 5; i++) {
        char part[1200];
        snprintf(part, sizeof(part), "%.380s.part", paths[i]);
        CHECK(!exists(part), "%s left", part);
    }
}

static void cancel_stops_and_cleans(const char *in, const char *dir)
{
    struct tc_output out;
    char path[400];
    struct tc_error err = {0};
    atomic_int cancel = 0;
    struct progress_log log = {.cancel_at = 20, .cancel = &cancel};
    struct timespec end;

    memset(&out, 0, sizeof(out));
    snprintf(path, sizeof(path), "%s/canceled.mp4", dir);
    out.path = path;
    CHECK(tc_preset_find("mp4-720p", &out.spec, &err) == 0, "%s", err.message);
    struct tc_run_params p = {
        .input_path = in, .outputs = &out, .n_outputs = 1, .cancel = &cancel,
        .on_progress = on_progress, .opaque = &log,
    };
    int rc = tc_run(&p, NULL, &err);
    clock_gettime(CLOCK_MONOTONIC, &end);
    CHECK(rc == TC_ECANCELED, "rc %d (%s)", rc, err.message);
    CHECK(!strcmp(tc_errname(rc), "canceled"), "name %s", tc_errname(rc));
    double waited = (double)(end.tv_sec - log.canceled_at.tv_sec) +
                    (double)(end.tv_nsec - log.canceled_at.tv_nsec) / 1e9;
    CHECK(waited < 1.0, "stopped %f s after cancel", waited);
    CHECK(log.last < 100.0, "canceled run reached 100");
    char part[1200];
    snprintf(part, sizeof(part), "%s.part", path);
    CHECK(!exists(path) && !exists(part), "canceled output left behind");
}

static void unwritable_output_fails_cleanly(const char *in, const char *dir)
{
    struct tc_output outs[2];
    char ok_path[400], bad_path[400];
    struct tc_error err = {0};

    memset(outs, 0, sizeof(outs));
    snprintf(ok_path, sizeof(ok_path), "%s/fine.mp4", dir);
    snprintf(bad_path, sizeof(bad_path), "%s/no/such/dir/x.mp4", dir);
    outs[0].path = ok_path;
    outs[1].path = bad_path;
    CHECK(tc_preset_find("mp4-480p", &outs[0].spec, &err) == 0, "%s", err.message);
    CHECK(tc_preset_find("mp4-480p", &outs[1].spec, &err) == 0, "%s", err.message);
    struct tc_run_params p = {.input_path = in, .outputs = outs, .n_outputs = 2};
    int rc = tc_run(&p, NULL, &err);
    CHECK(rc == TC_EIO, "rc %d (%s)", rc, err.message);
    char part[1200];
    snprintf(part, sizeof(part), "%s.part", ok_path);
    CHECK(!exists(ok_path) && !exists(part), "the other output was left behind");

    /* an input that is not there */
    p.input_path = "/nonexistent/input.mp4";
    p.n_outputs = 1;
    rc = tc_run(&p, NULL, &err);
    CHECK(rc < 0 && err.message[0], "missing input rc %d", rc);
    CHECK(!exists(ok_path), "output made from nothing");
}

int main(void)
{
    const char *media = ts_env("VIDQ_MEDIA");
    char in[512];
    snprintf(in, sizeof(in), "%s/h264_aac_640x360.mp4", media);
    if (!exists(in)) {
        fprintf(stderr, "missing fixture %s\n", in);
        return 77;
    }
    char *dir = ts_mkdtemp("tc_run");
    many_outputs_one_pass(in, dir);
    cancel_stops_and_cleans(in, dir);
    unwritable_output_fails_cleanly(in, dir);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ts_run(NULL, 0, "%s", cmd);
    free(dir);
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
