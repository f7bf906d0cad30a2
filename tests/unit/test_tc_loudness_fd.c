/* Unit test of the loudness first pass over an input given by descriptor
 * (tc_run_params.input_fd; loudness.c reopens it, by the descriptor, never
 * by a path): a WAV written here is unlinked before the run, so only the
 * descriptor can reach it. The level itself is checked against ffmpeg's
 * ebur128 by tests/integration/test_loudness.sh. */
#include <fcntl.h>
#include <math.h>
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

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

/* 2 s of a 1 kHz stereo tone at amplitude amp, 48 kHz 16-bit PCM. */
static void write_wav(const char *path, double amp)
{
    enum { RATE = 48000, SECONDS = 2, CH = 2 };
    uint32_t data = RATE * SECONDS * CH * 2;
    unsigned char h[44];
    memcpy(h, "RIFF", 4);
    put32(h + 4, 36 + data);
    memcpy(h + 8, "WAVEfmt ", 8);
    put32(h + 16, 16);
    put16(h + 20, 1);
    put16(h + 22, CH);
    put32(h + 24, RATE);
    put32(h + 28, RATE * CH * 2);
    put16(h + 32, CH * 2);
    put16(h + 34, 16);
    memcpy(h + 36, "data", 4);
    put32(h + 40, data);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(h, 1, sizeof(h), f), sizeof(h));
    for (int i = 0; i < RATE * SECONDS; i++) {
        int16_t s = (int16_t)lrint(amp * 32767.0 * sin(2.0 * M_PI * 1000.0 * i / RATE));
        unsigned char b[4];
        put16(b, (unsigned)(uint16_t)s);
        put16(b + 2, (unsigned)(uint16_t)s);
        assert_int_equal(fwrite(b, 1, 4, f), 4);
    }
    assert_int_equal(fclose(f), 0);
}

static void loudness_from_fd(void **state)
{
    (void)state;
    char dir[] = "/tmp/vidq-loudfd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char src[128], out[128];
    snprintf(src, sizeof(src), "%s/in.wav", dir);
    snprintf(out, sizeof(out), "%s/out.m4a", dir);
    write_wav(src, 0.05);
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(unlink(src), 0);

    struct tc_output outs[1];
    struct tc_output_result res[1];
    struct tc_error err = {0};
    memset(outs, 0, sizeof(outs));
    assert_int_equal(tc_preset_find("audio-m4a", &outs[0].spec, &err), 0);
    outs[0].spec.audio.loudness_lufs = -16.0;
    outs[0].spec.clip_start_s = 0.5; /* the first pass measures the clip alone */
    outs[0].path = out;
    struct tc_run_params p = {.input_fd = fd, .outputs = outs, .n_outputs = 1, .threads = 1};
    int rc = tc_run(&p, res, &err);
    if (rc != 0)
        fail_msg("tc_run by descriptor with loudness_lufs: %d %s", rc, err.message);
    assert_true(res[0].size > 0);
    assert_true(fabs(res[0].duration_s - 1.5) < 0.05);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0); /* borrowed: offset untouched */
    assert_int_equal(close(fd), 0);
    unlink(out);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loudness_from_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
