/* test_tus_meta.c - Upload-Metadata and Upload-Checksum parsing, body digests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "uploads/tus_meta.h"

static void meta_ok(void **state)
{
    struct tus_meta m;
    char err[256];
    size_t len = 0;
    /* "clip.mp4", "mp4-720p", empty-valued flag, and a value with NUL */
    assert_int_equal(tus_meta_parse("filename Y2xpcC5tcDQ=,preset bXA0LTcyMHA=, is_confidential,"
                                    "bin AGE=",
                                    &m, err, sizeof(err)),
                     0);
    assert_int_equal(m.n, 4);
    assert_string_equal(tus_meta_get(&m, "filename", &len), "clip.mp4");
    assert_int_equal(len, 8);
    assert_string_equal(tus_meta_get(&m, "preset", NULL), "mp4-720p");
    assert_string_equal(tus_meta_get(&m, "is_confidential", &len), "");
    assert_int_equal(len, 0);
    const char *b = tus_meta_get(&m, "bin", &len);
    assert_int_equal(len, 2);
    assert_int_equal(b[0], 0);
    assert_int_equal(b[1], 'a');
    assert_null(tus_meta_get(&m, "nope", NULL));
    tus_meta_clear(&m);

    assert_int_equal(tus_meta_parse(NULL, &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 0);
    assert_int_equal(tus_meta_parse("  ", &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 0);
    /* one and two padding chars, no padding */
    assert_int_equal(tus_meta_parse("a YQ==,b YWI=,c YWJj", &m, err, sizeof(err)), 0);
    assert_string_equal(tus_meta_get(&m, "a", NULL), "a");
    assert_string_equal(tus_meta_get(&m, "b", NULL), "ab");
    assert_string_equal(tus_meta_get(&m, "c", NULL), "abc");
    tus_meta_clear(&m);
}

static void meta_bad(void **state)
{
    static const char *bad[] = {
        "filename Y2xpcC5tcDQ",   /* no padding */
        "filename Y2xp*C5t",      /* bad char */
        "filename Y2xpcC5tcDQ=,", /* trailing empty pair */
        ",filename Y2xpcC5tcDQ=", /* leading empty pair */
        "a YQ==,a YQ==",          /* duplicate key */
        "a  YQ==",                /* two spaces */
        "a YQ== x",               /* junk after the value */
        "a Y===",                 /* too much padding */
        "a =YQ=",                 /* padding inside */
        "k\x01 YQ==",             /* control char in key */
    };
    struct tus_meta m;
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tus_meta_parse(bad[i], &m, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        assert_int_equal(m.n, 0);
    }
    /* caps: a key over 64 bytes, more than 32 pairs, a huge header */
    char key[100];
    memset(key, 'k', 65);
    key[65] = '\0';
    assert_int_equal(tus_meta_parse(key, &m, err, sizeof(err)), -1);
    char many[33 * 8 + 1];
    size_t n = 0;
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%sk%02d", i ? "," : "", i);
    assert_int_equal(tus_meta_parse(many, &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "32"));
    char *huge = malloc(TUS_META_HEADER_MAX + 16);
    assert_non_null(huge);
    memcpy(huge, "a ", 2);
    memset(huge + 2, 'A', TUS_META_HEADER_MAX + 8);
    huge[TUS_META_HEADER_MAX + 10] = '\0';
    assert_int_equal(tus_meta_parse(huge, &m, err, sizeof(err)), -1);
    /* a value over TUS_META_VALUE_MAX decoded bytes */
    size_t vl = (TUS_META_VALUE_MAX / 3 + 4) * 4;
    memset(huge + 2, 'A', vl);
    huge[2 + vl] = '\0';
    assert_int_equal(tus_meta_parse(huge, &m, err, sizeof(err)), -1);
    free(huge);
}

static void checksum_parse(void **state)
{
    char algo[16], err[256];
    unsigned char d[TUS_DIGEST_MAX];
    size_t dl = 0;
    /* sha1("hello") */
    assert_int_equal(
        tus_checksum_parse("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=", algo, d, &dl, err, sizeof(err)), 0);
    assert_string_equal(algo, "sha1");
    assert_int_equal(dl, 20);
    assert_int_equal(d[0], 0xaa);
    assert_int_equal(tus_checksum_parse("SHA256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=", algo,
                                        d, &dl, err, sizeof(err)),
                     0);
    assert_string_equal(algo, "sha256");
    assert_int_equal(dl, 32);
    assert_int_equal(tus_checksum_parse("crc32 AAAAAA==", algo, d, &dl, err, sizeof(err)), -2);
    assert_int_equal(tus_checksum_parse("sha1", algo, d, &dl, err, sizeof(err)), -1);
    assert_int_equal(tus_checksum_parse("sha1 qvTG", algo, d, &dl, err, sizeof(err)), -1);
    assert_int_equal(tus_checksum_parse(" qvTG", algo, d, &dl, err, sizeof(err)), -1);
    assert_int_equal(tus_checksum_parse("sha1 !!!!", algo, d, &dl, err, sizeof(err)), -1);
    assert_int_equal(tus_checksum_parse(NULL, algo, d, &dl, err, sizeof(err)), -1);
}

static void digest(void **state)
{
    char algo[16], err[256];
    unsigned char want[TUS_DIGEST_MAX];
    size_t wl = 0;
    struct tus_digest *d = NULL;
    assert_int_equal(
        tus_checksum_parse("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=", algo, want, &wl, err, sizeof(err)),
        0);
    assert_int_equal(tus_digest_new(algo, &d), 0);
    assert_int_equal(tus_digest_update(d, "hel", 3), 0);
    assert_int_equal(tus_digest_update(d, "lo", 2), 0);
    assert_int_equal(tus_digest_matches(d, want, wl), 1);
    tus_digest_free(&d);
    assert_null(d);
    assert_int_equal(tus_digest_new(algo, &d), 0);
    assert_int_equal(tus_digest_update(d, "hellO", 5), 0);
    assert_int_equal(tus_digest_matches(d, want, wl), 0);
    tus_digest_free(&d);
    tus_digest_free(NULL);
    assert_int_equal(tus_digest_new("nope", &d), -1);
    assert_null(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meta_ok),
        cmocka_unit_test(meta_bad),
        cmocka_unit_test(checksum_parse),
        cmocka_unit_test(digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
