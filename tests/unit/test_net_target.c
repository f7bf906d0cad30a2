/* Unit tests of the address rule shared by webhooks and fetches
 * (svc/net/target.c): the three settings, every refused class under
 * "public", the IPv4-in-IPv6 forms, and the URL shape check. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/target.h"

/* 1 if addr (IPv4 or IPv6 text) is allowed under the rule named targets. */
static int allowed(const char *targets, const char *addr)
{
    struct net_targets rule;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    assert_int_equal(net_targets_parse(targets, &rule), 0);
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, addr, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, addr, &a->sin_addr), 1);
    }
    return net_address_allowed((struct sockaddr *)&ss, &rule);
}

static void parse(void **state)
{
    (void)state;
    struct net_targets r;
    assert_int_equal(net_targets_parse("public", &r), 0);
    assert_true(r.deny_private && !r.allow_loopback);
    assert_int_equal(net_targets_parse("public+loopback", &r), 0);
    assert_true(r.deny_private && r.allow_loopback);
    assert_int_equal(net_targets_parse("any", &r), 0);
    assert_true(!r.deny_private);
    assert_int_equal(net_targets_parse(NULL, &r), 0);
    assert_true(!r.deny_private);
    assert_int_equal(net_targets_parse("private", &r), -22);
    assert_int_equal(net_targets_parse("Public", &r), -22);
    assert_int_equal(net_targets_parse("public+", &r), -22);
}

static const char *const refused_always[] = {
    /* private */
    "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.0.1",
    "fc00::1", "fd12:3456::1",
    /* link-local, with the cloud metadata address */
    "169.254.169.254", "169.254.0.1", "fe80::1", "fe80::a9fe:a9fe", "fec0::1",
    /* multicast, unspecified, broadcast, reserved, CGNAT */
    "224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2", "0.0.0.0", "0.1.2.3", "::",
    "255.255.255.255", "240.0.0.1", "100.64.0.1", "100.127.255.254",
    /* documentation, benchmarking */
    "192.0.2.1", "198.51.100.1", "203.0.113.1", "198.18.0.1", "2001:db8::1",
    /* IPv4-mapped, -compatible, NAT64, 6to4 forms of the above */
    "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:192.168.1.1", "::ffff:0.0.0.0",
    "::ffff:224.0.0.1", "::10.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "2002:a00:1::1",
    "2002:a9fe:a9fe::1",
};
static const char *const loopback[] = {"127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1",
                                       "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"};
static const char *const public_ones[] = {"8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255",
                                          "100.128.0.1", "169.255.0.1", "2001:4860:4860::8888",
                                          "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"};

static void classes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(refused_always) / sizeof(*refused_always); i++) {
        if (allowed("public", refused_always[i]) || allowed("public+loopback", refused_always[i]))
            fail_msg("%s allowed", refused_always[i]);
        assert_true(allowed("any", refused_always[i]));
    }
    for (size_t i = 0; i < sizeof(loopback) / sizeof(*loopback); i++) {
        if (allowed("public", loopback[i]))
            fail_msg("loopback %s allowed under public", loopback[i]);
        if (!allowed("public+loopback", loopback[i]))
            fail_msg("loopback %s refused under public+loopback", loopback[i]);
    }
    for (size_t i = 0; i < sizeof(public_ones) / sizeof(*public_ones); i++)
        if (!allowed("public", public_ones[i]))
            fail_msg("public %s refused", public_ones[i]);
}

static void other_families(void **state)
{
    (void)state;
    struct net_targets rule;
    struct sockaddr sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_family = AF_UNIX;
    net_targets_parse("public+loopback", &rule);
    assert_int_equal(net_address_allowed(&sa, &rule), 0);
    net_targets_parse("any", &rule);
    assert_int_equal(net_address_allowed(&sa, &rule), 1);
}

static void urls(void **state)
{
    (void)state;
    char err[256];
    static const char *const bad[] = {"ftp://h/x", "file:///etc/passwd", "gopher://h/", "http://",
                                      "//h/x", "h/x", "", "javascript:alert(1)",
                                      "http://exa mple.com/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        err[0] = '\0';
        if (net_url_check(bad[i], "input_url", err, sizeof(err)) != -22)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err, "input_url"));
    }
    assert_int_equal(net_url_check(NULL, "input_url", err, sizeof(err)), -22);
    assert_int_equal(net_url_check("https://cdn.example.com/a.mp4?sig=x", "input_url", err, sizeof(err)), 0);
    assert_int_equal(net_url_check("HTTP://[::1]:8080/", "input_url", err, sizeof(err)), 0);
    char *huge = malloc(NET_URL_MAX + 32);
    memset(huge, 'a', NET_URL_MAX + 31);
    memcpy(huge, "http://h/", 9);
    huge[NET_URL_MAX + 31] = '\0';
    assert_int_equal(net_url_check(huge, "input_url", err, sizeof(err)), -22);
    free(huge);
}

/* The submit-time half of the rule (upload_url): address literals in any
 * spelling and localhost are judged from the text; names pass. */
static void url_targets(void **state)
{
    (void)state;
    char err[256];
    struct net_targets pub, lo, any;
    net_targets_parse("public", &pub);
    net_targets_parse("public+loopback", &lo);
    net_targets_parse("any", &any);
    static const char *const refused[] = {
        "http://127.0.0.1/x", "http://2130706433/x", "http://0x7f.1/x", "http://017700000001/",
        "http://127.1/", "http://[::1]:80/", "http://[::ffff:127.0.0.1]/", "http://localhost/",
        "http://LocalHost./", "http://a.b.localhost/", "http://10.0.0.1/", "http://[::ffff:a00:1]/",
        "http://169.254.169.254/latest/meta-data", "http://[fe80::1%25lo]/", "http://[fc00::1]/",
        "http://192.168.0.1/", "http://172.31.0.1/", "http://100.64.0.1/", "http://0.0.0.0/",
        "http://[::]/", "http://224.0.0.1/", "http://[ff02::1]/", "http://240.0.0.1/",
        "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
        err[0] = '\0';
        if (net_url_target_check(refused[i], "upload_url", &pub, err, sizeof(err)) != -22)
            fail_msg("public accepted %s", refused[i]);
        assert_non_null(strstr(err, "not allowed"));
        assert_int_equal(net_url_target_check(refused[i], "upload_url", &any, err, sizeof(err)), 0);
    }
    assert_int_equal(net_url_target_check("http://127.0.0.1:8/", "u", &lo, err, sizeof(err)), 0);
    assert_int_equal(net_url_target_check("http://localhost/", "u", &lo, err, sizeof(err)), 0);
    assert_int_equal(net_url_target_check("http://10.0.0.1/", "u", &lo, err, sizeof(err)), -22);
    static const char *const passed[] = {"https://bucket.s3.amazonaws.com/k?X-Amz-Signature=1",
                                         "http://8.8.8.8/x", "http://[2001:4860::8888]/",
                                         "http://localhost.example.com/", "http://intranet/x"};
    for (size_t i = 0; i < sizeof(passed) / sizeof(*passed); i++)
        if (net_url_target_check(passed[i], "upload_url", &pub, err, sizeof(err)) != 0)
            fail_msg("public refused %s: %s", passed[i], err);
    assert_int_equal(net_url_target_check("ftp://8.8.8.8/", "upload_url", &pub, err, sizeof(err)), -22);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse),
        cmocka_unit_test(classes),
        cmocka_unit_test(other_families),
        cmocka_unit_test(urls),
        cmocka_unit_test(url_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
