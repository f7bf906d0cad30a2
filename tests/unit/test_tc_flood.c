/* Pixel floods and decompression bombs (fixtures/bad/, made by
 * fixtures/make_bad.sh) are refused by tc_probe and tc_probe_fd with
 * TC_EUNSUPPORTED in under 1 s and 64 MiB: each probe runs in a child
 * process of its own, timed around the call, its peak RSS read by wait4.
 * A plain small input probed the same way gives the baseline the bombs are
 * compared with (the shared libraries alone are most of the 64 MiB). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <transcode/tc.h>

enum { RSS_LIMIT_KB = 64 * 1024 };

static const char *const floods[] = {
    "flood_gif_30000x30000.gif", /* 34 bytes: the container declares the frame */
    "flood_gif_16000x16000.gif", /* under libav's own size check */
    "bomb_png_12000.mov",        /* 140 KB inflating to 144 MB of pixels */
    "bomb_png_hidden.mov",       /* the same, the container saying 64x64 */
    "flood_mjpeg_hidden.avi",    /* 12 KB of MJPEG whose SOF says 12000x12000 */
};

struct outcome {
    int rc;
    double seconds;
    char message[256];
};

static void fixture(const char *name, char *buf, size_t cap)
{
    const char *src = getenv("VIDQ_SRC");
    snprintf(buf, cap, "%s/fixtures/bad/%s", src && *src ? src : ".", name);
}

/* Probe path (by descriptor if by_fd) in a child; its result comes back
 * through a pipe, its peak RSS in KiB through wait4. */
static long probe_in_child(const char *path, int by_fd, struct outcome *o)
{
    int p[2];
    struct rusage ru;
    int status = 0;

    memset(o, 0, sizeof(*o));
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct outcome r = {0};
        struct tc_media_info info;
        struct tc_error err = {0};
        struct timespec a, b;
        close(p[0]);
        tc_set_log(NULL, NULL, TC_LOG_ERROR);
        int fd = by_fd ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        clock_gettime(CLOCK_MONOTONIC, &a);
        r.rc = by_fd ? tc_probe_fd(fd, &info, &err) : tc_probe(path, &info, &err);
        clock_gettime(CLOCK_MONOTONIC, &b);
        r.seconds = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        snprintf(r.message, sizeof(r.message), "%s", err.message);
        if (write(p[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(2);
        _exit(0);
    }
    close(p[1]);
    ssize_t n = read(p[0], o, sizeof(*o));
    close(p[0]);
    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(n, (ssize_t)sizeof(*o));
    return ru.ru_maxrss;
}

static void floods_refused_small_and_fast(void **state)
{
    (void)state;
    char path[512];
    struct outcome o;

    /* The baseline: a valid small file. */
    char wav[600];
    const char *tmp = getenv("VIDQ_TEST_TMP");
    snprintf(wav, sizeof(wav), "%s/flood_baseline.%d.wav", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    FILE *f = fopen(wav, "wb");
    assert_non_null(f);
    static const unsigned char hdr[44] = {'R', 'I', 'F', 'F', 36 + 200, 0, 0, 0, 'W', 'A', 'V', 'E',
                                          'f', 'm', 't', ' ', 16, 0, 0, 0, 1, 0, 1, 0,
                                          0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0,
                                          'd', 'a', 't', 'a', 200, 0, 0, 0};
    static const unsigned char zero[200];
    assert_int_equal(fwrite(hdr, 1, sizeof(hdr), f), sizeof(hdr));
    assert_int_equal(fwrite(zero, 1, sizeof(zero), f), sizeof(zero));
    assert_int_equal(fclose(f), 0);
    long base = probe_in_child(wav, 0, &o);
    unlink(wav);
    assert_int_equal(o.rc, 0);
    printf("baseline probe of a small WAV: %.3f s, %ld KiB peak RSS\n", o.seconds, base);

    for (size_t i = 0; i < sizeof(floods) / sizeof(floods[0]); i++) {
        fixture(floods[i], path, sizeof(path));
        assert_int_equal(access(path, R_OK), 0);
        for (int by_fd = 0; by_fd <= 1; by_fd++) {
            long rss = probe_in_child(path, by_fd, &o);
            printf("%-28s %s: rc %d in %.3f s, %ld KiB peak RSS (+%ld): %s\n", floods[i],
                   by_fd ? "fd  " : "path", o.rc, o.seconds, rss, rss - base, o.message);
            assert_int_equal(o.rc, TC_EUNSUPPORTED);
            assert_true(o.message[0] != '\0');
            assert_true(o.seconds < 1.0);
#ifndef __SANITIZE_ADDRESS__ /* ASan's shadow memory and quarantine are not ours */
            assert_true(rss < RSS_LIMIT_KB);
#endif
            /* The frame was never allocated: a 12000x12000 grey frame
             * alone is 140 MiB. */
            assert_true(rss - base < 16 * 1024);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(floods_refused_small_and_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
