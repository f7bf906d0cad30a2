/* Unit tests of webhook signing (svc/hooks/sign.c): the Standard Webhooks
 * known-answer vector, tampering, secret parsing and the secret file. */
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

#include "hooks/sign.h"

/* The vector of the standard-webhooks reference libraries' tests
 * (javascript/python "test_sign_function"). */
#define KAT_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define KAT_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define KAT_TS 1614265330
#define KAT_BODY "{\"test\": 2432232314}"
#define KAT_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void known_answer(void **state)
{
    (void)state;
    struct hook_secret s;
    char err[200], sig[HOOK_SIGNATURE_MAX];
    assert_int_equal(hook_secret_parse(KAT_SECRET, &s, err, sizeof(err)), 0);
    assert_int_equal(s.len, 24);
    assert_int_equal(hook_sign(&s, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), sig, sizeof(sig)), 0);
    assert_string_equal(sig, KAT_SIG);
}

static void tampering_changes_signature(void **state)
{
    (void)state;
    struct hook_secret s;
    char sig[HOOK_SIGNATURE_MAX];
    const char *tampered = "{\"test\": 2432232315}";
    assert_int_equal(hook_secret_parse(KAT_SECRET, &s, NULL, 0), 0);
    assert_int_equal(hook_sign(&s, KAT_ID, KAT_TS, tampered, strlen(tampered), sig, sizeof(sig)), 0);
    assert_string_not_equal(sig, KAT_SIG);
    assert_int_equal(hook_sign(&s, KAT_ID, KAT_TS + 1, KAT_BODY, strlen(KAT_BODY), sig, sizeof(sig)), 0);
    assert_string_not_equal(sig, KAT_SIG);
    assert_int_equal(hook_sign(&s, "msg_other", KAT_TS, KAT_BODY, strlen(KAT_BODY), sig, sizeof(sig)), 0);
    assert_string_not_equal(sig, KAT_SIG);
    s.key[0] ^= 1;
    assert_int_equal(hook_sign(&s, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), sig, sizeof(sig)), 0);
    assert_string_not_equal(sig, KAT_SIG);
    /* too small an output buffer is refused, not truncated */
    assert_int_equal(hook_sign(&s, KAT_ID, KAT_TS, KAT_BODY, strlen(KAT_BODY), sig, 10), -22);
    /* an empty body signs fine */
    assert_int_equal(hook_sign(&s, KAT_ID, KAT_TS, NULL, 0, sig, sizeof(sig)), 0);
    assert_int_equal(strncmp(sig, "v1,", 3), 0);
    assert_int_equal(strlen(sig), 3 + 44);
}

static void secret_parsing(void **state)
{
    (void)state;
    struct hook_secret s;
    char err[200];
    static const char *bad[] = {
        "",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",            /* no prefix */
        "whsec_",                                      /* empty */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa",          /* 27 bytes: not a multiple of 4 */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La",            /* too short (28 chars: 21 bytes) */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",        /* bad alphabet */
        "whsec_MfKQ9r8GKYqrTwjUPD8I PZIo2LaLaSw",        /* whitespace */
        "whsec_MfKQ9r8GKYqrTwjU=D8ILPZIo2LaLaSw",        /* padding in the middle */
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",        /* wrong case prefix */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (hook_secret_parse(bad[i], &s, err, sizeof(err)) != -22)
            fail_msg("accepted bad secret %zu: %s", i, bad[i]);
        assert_true(strlen(err) > 10);
    }
    assert_int_equal(hook_secret_parse(NULL, &s, err, sizeof(err)), -22);
    /* 88 characters without padding decode to 66 bytes: too long */
    char long_secret[6 + 92 + 1] = "whsec_";
    memset(long_secret + 6, 'A', 88);
    long_secret[6 + 88] = '\0';
    assert_int_equal(hook_secret_parse(long_secret, &s, err, sizeof(err)), -22);
    assert_non_null(strstr(err, "24 to 64 bytes"));
    memset(long_secret + 6, 'A', 92);
    long_secret[6 + 92] = '\0';
    assert_int_equal(hook_secret_parse(long_secret, &s, err, sizeof(err)), -22);
    /* 64 bytes (88 chars with "==" padding) is the upper bound */
    char max[128];
    snprintf(max, sizeof(max), "whsec_%.*s==", 86,
             "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw");
    assert_int_equal(hook_secret_parse(max, &s, err, sizeof(err)), 0);
    assert_int_equal(s.len, 64);
    assert_int_equal(s.key[63], 63);
    /* round trip through the text form */
    struct hook_secret g, back;
    char text[HOOK_SECRET_TEXT_MAX];
    assert_int_equal(hook_secret_generate(&g), 0);
    assert_int_equal(hook_secret_format(&g, text, sizeof(text)), 0);
    assert_int_equal(strncmp(text, "whsec_", 6), 0);
    assert_int_equal(hook_secret_parse(text, &back, err, sizeof(err)), 0);
    assert_int_equal(back.len, g.len);
    assert_memory_equal(back.key, g.key, g.len);
}

static void msg_ids_are_unique(void **state)
{
    (void)state;
    char a[HOOK_MSG_ID_MAX], b[HOOK_MSG_ID_MAX];
    assert_int_equal(hook_msg_id(a, sizeof(a)), 0);
    assert_int_equal(hook_msg_id(b, sizeof(b)), 0);
    assert_int_equal(strncmp(a, "msg_", 4), 0);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    assert_int_equal(hook_msg_id(a, 10), -22);
}

static char *scratch_dir(void)
{
    const char *base = getenv("VIDQ_TEST_TMP");
    char path[4096];
    snprintf(path, sizeof(path), "%s/hook_sign.XXXXXX", base && *base ? base : "/tmp");
    char *p = mkdtemp(path);
    assert_non_null(p);
    return strdup(p);
}

static void secret_file_created_once(void **state)
{
    (void)state;
    char *dir = scratch_dir();
    char path[4200], err[300], text[200];
    struct hook_secret a, b;
    struct stat st;

    assert_int_equal(hook_secret_load_or_create(dir, &a, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/webhook_secret", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* reused on the next start */
    assert_int_equal(hook_secret_load_or_create(dir, &b, err, sizeof(err)), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.key, b.key, a.len);
    /* the file holds the text form */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof(text), f));
    fclose(f);
    assert_int_equal(strncmp(text, "whsec_", 6), 0);
    /* no temporary file left behind */
    char cmd[4400], out[64] = "";
    snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, sizeof(out), p));
    pclose(p);
    assert_int_equal(strtol(out, NULL, 10), 1);

    /* a corrupt file is an error, never silently replaced */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("whsec_not-base64!\n", f);
    fclose(f);
    err[0] = '\0';
    assert_int_equal(hook_secret_load_or_create(dir, &b, err, sizeof(err)), -22);
    assert_non_null(strstr(err, "webhook_secret"));
    f = fopen(path, "r");
    assert_non_null(fgets(text, sizeof(text), f));
    fclose(f);
    assert_string_equal(text, "whsec_not-base64!\n");

    /* an unwritable data dir is a clear error */
    err[0] = '\0';
    assert_true(hook_secret_load_or_create("/nonexistent/dir", &b, err, sizeof(err)) < 0);
    assert_true(strlen(err) > 0);
    unlink(path);
    rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_answer),
        cmocka_unit_test(tampering_changes_signature),
        cmocka_unit_test(secret_parsing),
        cmocka_unit_test(msg_ids_are_unique),
        cmocka_unit_test(secret_file_created_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
