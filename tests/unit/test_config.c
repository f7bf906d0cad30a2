/* Unit tests of `vidq serve`'s configuration: defaults, env, flags. */
#define _GNU_SOURCE /* sched_getaffinity, sched_setaffinity */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/config.h"

static int parse(struct config *cfg, char **argv, char *err)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return config_parse(cfg, argc, argv, err, 256);
}

static void defaults(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    char *argv[] = {"serve", NULL};
    assert_int_equal(parse(&cfg, argv, err), 0);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.data_dir, "./var");
    assert_string_equal(cfg.db, "sqlite:./var/vidq.db");
    assert_int_equal(cfg.isolation, CONFIG_ISOLATION_PROCESS);
    assert_true(cfg.max_concurrent >= 1);
    assert_string_equal(cfg.api_key, "");
    assert_int_equal(cfg.header_timeout, 10);
    assert_int_equal(cfg.min_free_bytes, (int64_t)1 << 30);
    assert_true(cfg.disk_scan_interval == 30);
}

/* --http-threads follows the cores the process may use: one per core,
 * at least 2, at most 8; a flag or VIDQ_HTTP_THREADS still wins. */
static void http_threads_from_cores(void **state)
{
    (void)state;
    assert_int_equal(config_default_http_threads(1), 2);
    assert_int_equal(config_default_http_threads(2), 2);
    assert_int_equal(config_default_http_threads(3), 3);
    assert_int_equal(config_default_http_threads(8), 8);
    assert_int_equal(config_default_http_threads(64), 8);
    struct config cfg;
    char err[256];
    char *argv[] = {"serve", NULL};
    cpu_set_t all, one;
    assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
    assert_int_equal(parse(&cfg, argv, err), 0);
    assert_int_equal(cfg.http_threads, config_default_http_threads(CPU_COUNT(&all)));
    /* One usable core (taskset -c 0): still 2. */
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all)) {
            CPU_SET(c, &one);
            break;
        }
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
    assert_int_equal(parse(&cfg, argv, err), 0);
    assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
    assert_int_equal(cfg.http_threads, 2);
    char *flag[] = {"serve", "--http-threads", "1", NULL};
    assert_int_equal(parse(&cfg, flag, err), 0);
    assert_int_equal(cfg.http_threads, 1);
    char *zero[] = {"serve", "--http-threads", "0", NULL};
    assert_int_equal(parse(&cfg, zero, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "http-threads"));
}

/* The connection and disk guards' flags: 0 turns the disk guard off; a
 * header timeout of 0 (no deadline) or a negative threshold is refused. */
static void guard_flags(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    char *a[] = {"serve", "--min-free-bytes", "0", "--header-timeout", "3",
                 "--disk-scan-interval", "0.5", NULL};
    assert_int_equal(parse(&cfg, a, err), 0);
    assert_int_equal(cfg.min_free_bytes, 0);
    assert_int_equal(cfg.header_timeout, 3);
    assert_true(cfg.disk_scan_interval == 0.5);
    char *b[] = {"serve", "--header-timeout", "0", NULL};
    assert_int_equal(parse(&cfg, b, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "--header-timeout"));
    char *c[] = {"serve", "--min-free-bytes", "-1", NULL};
    assert_int_equal(parse(&cfg, c, err), CONFIG_ERROR);
    char *d[] = {"serve", "--disk-scan-interval", "0", NULL};
    assert_int_equal(parse(&cfg, d, err), CONFIG_ERROR);
}

static void flags_env_and_precedence(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    setenv("VIDQ_MAX_CONCURRENT", "3", 1);
    setenv("VIDQ_API_KEY", "from-env", 1);
    setenv("VIDQ_ISOLATION", "thread", 1);
    char *argv[] = {"serve", "--listen", "0.0.0.0:0", "--data-dir=/tmp/d", "--api-key", "flag",
                    "--max-upload-bytes", "1048576", "--job-timeout", "2.5", NULL};
    assert_int_equal(parse(&cfg, argv, err), 0);
    assert_int_equal(cfg.max_concurrent, 3);                /* env */
    assert_string_equal(cfg.api_key, "flag");               /* flag beats env */
    assert_int_equal(cfg.isolation, CONFIG_ISOLATION_THREAD);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 0);
    assert_string_equal(cfg.db, "sqlite:/tmp/d/vidq.db");
    assert_int_equal(cfg.max_upload_bytes, 1048576);
    assert_true(cfg.job_timeout == 2.5);
    unsetenv("VIDQ_MAX_CONCURRENT");
    unsetenv("VIDQ_API_KEY");
    unsetenv("VIDQ_ISOLATION");

    char *v6[] = {"serve", "--listen", "[::1]:9000", NULL};
    assert_int_equal(parse(&cfg, v6, err), 0);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9000);
}

static void bad_input(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    char *a[] = {"serve", "--max-concurrent", "0", NULL};
    assert_int_equal(parse(&cfg, a, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "--max-concurrent"));
    char *b[] = {"serve", "--max-concurrent", "2x", NULL};
    assert_int_equal(parse(&cfg, b, err), CONFIG_ERROR);
    char *c[] = {"serve", "--bogus", "1", NULL};
    assert_int_equal(parse(&cfg, c, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "unknown flag"));
    char *d[] = {"serve", "--listen", "nocolon", NULL};
    assert_int_equal(parse(&cfg, d, err), CONFIG_ERROR);
    char *e[] = {"serve", "--listen", "127.0.0.1:70000", NULL};
    assert_int_equal(parse(&cfg, e, err), CONFIG_ERROR);
    char *f[] = {"serve", "--isolation", "container", NULL};
    assert_int_equal(parse(&cfg, f, err), CONFIG_ERROR);
    char *g[] = {"serve", "--data-dir", NULL};
    assert_int_equal(parse(&cfg, g, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "needs a value"));
    char *h[] = {"serve", "stray", NULL};
    assert_int_equal(parse(&cfg, h, err), CONFIG_ERROR);
    setenv("VIDQ_MAX_QUEUED", "-1", 1);
    char *i[] = {"serve", NULL};
    assert_int_equal(parse(&cfg, i, err), CONFIG_ERROR);
    assert_non_null(strstr(err, "VIDQ_MAX_QUEUED"));
    unsetenv("VIDQ_MAX_QUEUED");
    char *help[] = {"serve", "--help", NULL};
    assert_int_equal(parse(&cfg, help, err), CONFIG_HELP);
    assert_non_null(strstr(config_usage(), "VIDQ_MAX_CONCURRENT"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(http_threads_from_cores),
        cmocka_unit_test(flags_env_and_precedence),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(guard_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
