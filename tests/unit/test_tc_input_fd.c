/* Unit tests of input by file descriptor (tc_probe_fd, tc_run_params.input_fd):
 * the descriptor is borrowed (never closed, its offset never moved), nothing
 * is opened by path (the input's name is gone before the call), a zero-
 * initialised params struct with input_path keeps reading the path, and bad
 * descriptors get a clear error. The inputs are written here: a WAV and a
 * small YUV4MPEG2 video, both plain enough to make by hand. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <transcode/tc.h>


struct fx {
    char dir[256];
    char wav[300];
    char y4m[300];
};

static void put_le(unsigned char *p, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* 0.5 s of 16-bit mono 8 kHz sine-ish sawtooth. */
static void write_wav(const char *path)
{
    enum { RATE = 8000, N = RATE / 2 };
    unsigned char h[44];
    memcpy(h, "RIFF", 4);
    put_le(h + 4, 36 + N * 2, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le(h + 16, 16, 4);
    put_le(h + 20, 1, 2); /* PCM */
    put_le(h + 22, 1, 2);
    put_le(h + 24, RATE, 4);
    put_le(h + 28, RATE * 2, 4);
    put_le(h + 32, 2, 2);
    put_le(h + 34, 16, 2);
    memcpy(h + 36, "data", 4);
    put_le(h + 40, N * 2, 4);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(h, 1, sizeof(h), f), sizeof(h));
    for (int i = 0; i < N; i++) {
        unsigned char s[2];
        put_le(s, (uint32_t)(uint16_t)(int16_t)((i % 64) * 800 - 25600), 2);
        assert_int_equal(fwrite(s, 1, 2, f), 2);
    }
    assert_int_equal(fclose(f), 0);
}

/* 10 frames of 64x48 4:2:0 video, a moving gradient. */
static void write_y4m(const char *path)
{
    enum { W = 64, H = 48 };
    static unsigned char frame[W * H * 3 / 2];
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\n", f);
    for (int n = 0; n < 10; n++) {
        for (int i = 0; i < W * H; i++)
            frame[i] = (unsigned char)((i % W) * 3 + n * 8);
        memset(frame + W * H, 128, W * H / 2);
        fputs("FRAME\n", f);
        assert_int_equal(fwrite(frame, 1, sizeof(frame), f), sizeof(frame));
    }
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    const char *tmp = getenv("VIDQ_TEST_TMP");
    snprintf(fx->dir, sizeof(fx->dir), "%s/tc_input_fd.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->wav, sizeof(fx->wav), "%s/in.wav", fx->dir);
    snprintf(fx->y4m, sizeof(fx->y4m), "%s/in.y4m", fx->dir);
    write_wav(fx->wav);
    write_y4m(fx->y4m);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

static int open_ro(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void probe_fd_matches_path(void **state)
{
    struct fx *fx = *state;
    struct tc_media_info by_path, by_fd;
    struct tc_error err = {0};

    assert_int_equal(tc_probe(fx->wav, &by_path, &err), 0);
    int fd = open_ro(fx->wav);
    /* The caller's offset is its own business: leave it somewhere odd and
     * check it is still there afterwards. */
    assert_int_equal(lseek(fd, 7, SEEK_SET), 7);
    assert_int_equal(tc_probe_fd(fd, &by_fd, &err), 0);
    assert_string_equal(by_fd.format, "wav");
    assert_int_equal(by_fd.has_audio, 1);
    assert_int_equal(by_fd.has_video, 0);
    assert_int_equal(by_fd.audio.sample_rate, 8000);
    assert_int_equal(by_fd.audio.channels, 1);
    assert_int_equal(by_fd.size, by_path.size);
    assert_true(by_fd.duration_s > 0.45 && by_fd.duration_s < 0.55);
    assert_true(by_fd.duration_s == by_path.duration_s);
    /* Borrowed: still open, offset untouched, and it probes again. */
    assert_true(fcntl(fd, F_GETFD) >= 0);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 7);
    assert_int_equal(tc_probe_fd(fd, &by_fd, &err), 0);
    assert_string_equal(by_fd.format, "wav");
    assert_int_equal(close(fd), 0);
}

static void probe_fd_needs_no_path(void **state)
{
    struct fx *fx = *state;
    struct tc_media_info info;
    struct tc_error err = {0};
    char gone[320];

    /* A copy of the video whose name is removed before the probe: only the
     * descriptor can reach its bytes. */
    snprintf(gone, sizeof(gone), "%s/gone.y4m", fx->dir);
    write_y4m(gone);
    int fd = open_ro(gone);
    assert_int_equal(unlink(gone), 0);
    assert_int_equal(tc_probe_fd(fd, &info, &err), 0);
    assert_string_equal(info.format, "yuv4mpegpipe");
    assert_int_equal(info.has_video, 1);
    assert_int_equal(info.video.width, 64);
    assert_int_equal(info.video.height, 48);
    assert_int_equal(close(fd), 0);
}

static void probe_fd_bad_descriptors(void **state)
{
    struct fx *fx = *state;
    struct tc_media_info info;
    struct tc_error err = {0};
    int p[2];

    assert_int_equal(tc_probe_fd(-1, &info, &err), TC_EINVAL);
    assert_true(err.message[0] != '\0');

    /* Closed descriptor: an I/O error, not a crash. */
    int fd = open_ro(fx->wav);
    assert_int_equal(close(fd), 0);
    memset(&err, 0, sizeof(err));
    assert_int_equal(tc_probe_fd(fd, &info, &err), TC_EIO);
    assert_non_null(strstr(err.message, "cannot read the input"));

    /* Not a regular file: a directory, a pipe. */
    fd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(tc_probe_fd(fd, &info, &err), TC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "not a regular file"));
    assert_true(fcntl(fd, F_GETFD) >= 0);
    assert_int_equal(close(fd), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(tc_probe_fd(p[0], &info, &err), TC_EUNSUPPORTED);
    assert_true(fcntl(p[0], F_GETFD) >= 0);
    close(p[0]);
    close(p[1]);

    /* Empty, and not media: still the caller's afterwards. */
    char path[320];
    snprintf(path, sizeof(path), "%s/empty", fx->dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(tc_probe_fd(fd, &info, &err), TC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "empty"));
    assert_int_equal(write(fd, "hello, not a video\n", 19), 19);
    assert_int_equal(tc_probe_fd(fd, &info, &err), TC_EUNSUPPORTED);
    assert_true(fcntl(fd, F_GETFD) >= 0);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 19);
    assert_int_equal(close(fd), 0);
}

/* A run from a descriptor whose name is already gone; the descriptor is
 * still the caller's afterwards. */
static void run_from_fd(void **state)
{
    struct fx *fx = *state;
    struct tc_output outs[2];
    struct tc_output_result res[2];
    struct tc_error err = {0};
    struct tc_media_info info;
    char src[320], mp4[320], m4a[320];

    snprintf(src, sizeof(src), "%s/run_src.y4m", fx->dir);
    snprintf(mp4, sizeof(mp4), "%s/out.mp4", fx->dir);
    snprintf(m4a, sizeof(m4a), "%s/out.m4a", fx->dir);
    write_y4m(src);
    int fd = open_ro(src);
    assert_int_equal(unlink(src), 0);

    memset(outs, 0, sizeof(outs));
    assert_int_equal(tc_preset_find("mp4-480p", &outs[0].spec, &err), 0);
    outs[0].path = mp4;
    struct tc_run_params p = {.input_fd = fd, .outputs = outs, .n_outputs = 1, .threads = 1};
    int rc = tc_run(&p, res, &err);
    assert_int_equal(rc, 0);
    assert_true(res[0].size > 0);
    assert_int_equal(tc_probe(mp4, &info, &err), 0);
    assert_int_equal(info.has_video, 1);
    assert_string_equal(info.video.codec, "h264");
    assert_int_equal(info.video.width, 64);
    assert_true(fcntl(fd, F_GETFD) >= 0);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
    assert_int_equal(close(fd), 0);

    /* input_path wins over input_fd: a zero-initialised struct (input_fd 0)
     * with a path reads the path, whatever fd 0 is. */
    memset(outs, 0, sizeof(outs));
    assert_int_equal(tc_preset_find("audio-m4a", &outs[0].spec, &err), 0);
    outs[0].path = m4a;
    struct tc_run_params zp;
    memset(&zp, 0, sizeof(zp));
    zp.input_path = fx->wav;
    zp.outputs = outs;
    zp.n_outputs = 1;
    assert_int_equal(tc_run(&zp, res, &err), 0);
    assert_int_equal(tc_probe(m4a, &info, &err), 0);
    assert_int_equal(info.has_audio, 1);
    assert_string_equal(info.audio.codec, "aac");

    /* Neither a path nor a descriptor: refused, nothing written. */
    char none[320];
    snprintf(none, sizeof(none), "%s/none.m4a", fx->dir);
    outs[0].path = none;
    struct tc_run_params np = {.input_fd = -1, .outputs = outs, .n_outputs = 1};
    assert_int_equal(tc_run(&np, res, &err), TC_EINVAL);
    assert_int_equal(access(none, F_OK), -1);

    /* A descriptor that is not media: unsupported_media, nothing written,
     * still open. */
    char txt[320];
    snprintf(txt, sizeof(txt), "%s/notes.txt", fx->dir);
    FILE *f = fopen(txt, "w");
    assert_non_null(f);
    fputs("not a video at all\n", f);
    assert_int_equal(fclose(f), 0);
    fd = open_ro(txt);
    np.input_fd = fd;
    assert_int_equal(tc_run(&np, res, &err), TC_EUNSUPPORTED);
    assert_int_equal(access(none, F_OK), -1);
    assert_true(fcntl(fd, F_GETFD) >= 0);
    assert_int_equal(close(fd), 0);
}

int main(void)
{
    tc_set_log(NULL, NULL, TC_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(probe_fd_matches_path),
        cmocka_unit_test(probe_fd_needs_no_path),
        cmocka_unit_test(probe_fd_bad_descriptors),
        cmocka_unit_test(run_from_fd),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
