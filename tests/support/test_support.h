/*
 * test_support.h - small helpers shared by the C integration tests: the
 * environment ctest sets (see tests/CMakeLists.txt), scratch folders,
 * running commands. Tests only; aborts the test on setup failure.
 */
#ifndef VIDQ_TEST_SUPPORT_H
#define VIDQ_TEST_SUPPORT_H

#include <stddef.h>

/* An environment variable ctest sets; exits 77 (skip) if missing. */
const char *ts_env(const char *name);

/* A new empty folder under VIDQ_TEST_TMP named after tag; returns a
 * malloc'd path. */
char *ts_mkdtemp(const char *tag);

/* Run a shell command, capture up to cap-1 bytes of stdout into out (may be
 * NULL); returns the exit status (or -1). */
int ts_run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
