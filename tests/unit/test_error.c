/* Unit tests of the transcode library's error names and messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <transcode/tc.h>

static void names_are_stable(void **state)
{
    (void)state;
    assert_string_equal(tc_errname(TC_EUNSUPPORTED), "unsupported_media");
    assert_string_equal(tc_errname(TC_EINVALID_PRESET), "invalid_preset");
    assert_string_equal(tc_errname(TC_EINVALID_OUTPUT), "invalid_output");
    assert_string_equal(tc_errname(TC_ENOSPC), "no_space"); /* a job's error */
    assert_string_equal(tc_errname(12345), "internal_error");
}

static void error_set_formats_and_returns_code(void **state)
{
    (void)state;
    struct tc_error err;
    assert_int_equal(tc_error_set(&err, TC_EIO, "cannot open %s", "x.mp4"), TC_EIO);
    assert_int_equal(err.code, TC_EIO);
    assert_string_equal(err.message, "cannot open x.mp4");
    assert_int_equal(tc_error_set(NULL, TC_EINVAL, "ignored"), TC_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_are_stable),
        cmocka_unit_test(error_set_formats_and_returns_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
