/* Unit tests of lazy_zero.c, the binary's av_mallocz: every block it
 * returns reads as zero, whether its memory is fresh, reused after being
 * dirtied, partly resident, small or of an odd size; and libavcodec's own
 * calls come to it (a decoder's large context is not written over). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <libavcodec/avcodec.h>
#include <libavutil/mem.h>

static const size_t sizes[] = {1, 100, 4095, 4096, 65535, 65536, 65537, 200000, 765352, 3145851};

static void assert_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            fail_msg("byte %zu of %zu is 0x%02x, not zero", i, n, p[i]);
}

/* Whole pages of [p, p + n) that are resident, and how many there are. */
static size_t resident_pages(const void *p, size_t n, size_t *total)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(pg - 1);
    *total = e > a ? (e - a) / pg : 0;
    size_t in = 0;
    unsigned char v[4096];
    for (size_t off = 0; off < *total * pg; off += sizeof(v) * pg) {
        size_t k = *total - off / pg < sizeof(v) ? *total - off / pg : sizeof(v);
        assert_int_equal(mincore((void *)(a + off), k * pg, v), 0);
        for (size_t i = 0; i < k; i++)
            in += v[i] & 1;
    }
    return in;
}

/* First, on a heap nothing was freed into yet: libavcodec's zeroed
 * allocations come here. The H.264 decoder's context (765 KB, almost all
 * unused until a stream needs it) keeps most of its pages untouched. */
static void libavcodec_calls_it(void **state)
{
    (void)state;
    const AVCodec *c = avcodec_find_decoder(AV_CODEC_ID_H264);
    assert_non_null(c);
    AVCodecContext *ctx = avcodec_alloc_context3(c);
    assert_non_null(ctx);
    assert_non_null(ctx->priv_data);
    size_t total = 0;
    size_t in = resident_pages(ctx->priv_data, 765352, &total);
    assert_true(total > 100);
    if (in * 2 > total)
        fail_msg("%zu of the context's %zu whole pages are resident: libavcodec's av_mallocz "
                 "wrote them (is lazy_zero.c's av_mallocz linked in?)",
                 in, total);
    /* (Not all zero: the context's class and option defaults are set.) */
    avcodec_free_context(&ctx);
}

static void fresh_blocks_are_zero(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = av_mallocz(sizes[i]);
        assert_non_null(p);
        assert_zero(p, sizes[i]);
        memset(p, 0x5a, sizes[i]); /* every byte is ours to write */
        av_free(p);
    }
}

/* A block dirtied and freed, then asked again with av_mallocz: malloc
 * hands the same memory back, resident and full of bytes. */
static void reused_blocks_are_zero(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = av_malloc(sizes[i]);
        assert_non_null(p);
        memset(p, 0xab, sizes[i]);
        av_free(p);
        unsigned char *q = av_mallocz(sizes[i]);
        assert_non_null(q);
        assert_zero(q, sizes[i]);
        av_free(q);
    }
}

/* Resident and untouched pages side by side: every other page dirtied. */
static void partly_resident_blocks_are_zero(void **state)
{
    (void)state;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = 300 * pg + 123;
    unsigned char *p = av_malloc(n);
    assert_non_null(p);
    for (size_t off = 0; off < n; off += 2 * pg)
        p[off] = 0xcd;
    av_free(p);
    unsigned char *q = av_mallocz(n);
    assert_non_null(q);
    assert_zero(q, n);
    av_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(libavcodec_calls_it),
        cmocka_unit_test(fresh_blocks_are_zero),
        cmocka_unit_test(reused_blocks_are_zero),
        cmocka_unit_test(partly_resident_blocks_are_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
