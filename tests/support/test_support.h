/*
 * test_support.h - small helpers shared by the C integration tests: the
 * environment ctest sets (see tests/CMakeLists.txt), scratch folders,
 * running commands. Tests only; aborts the test on setup failure.
 */
#ifndef VIDQ_TEST_SUPPORT_H
#define VIDQ_TEST_SUPPORT_H

#include <stddef.h>

#include <jansson.h>

/* An environment variable ctest sets; exits 77 (skip) if missing. */
const char *ts_env(const char *name);

/* A new empty folder under VIDQ_TEST_TMP named after tag; returns a
 * malloc'd path. */
char *ts_mkdtemp(const char *tag);

/* Run a shell command, capture up to cap-1 bytes of stdout into out (may be
 * NULL); returns the exit status (or -1). */
int ts_run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Start argv[0] (searched in PATH) with argv, stdin from /dev/null, stderr
 * inherited; read the first line it prints on stdout into line (newline
 * removed), waiting at most timeout_s. Its later stdout is dropped. Returns
 * the child's pid, or -1 (the child is killed) if no line came. */
int ts_spawn_line(char *const argv[], char *line, size_t cap, int timeout_s);

/* SIGTERM then, after up to 2 s, SIGKILL a child from ts_spawn_line, and
 * reap it. */
void ts_stop(int pid);

/* Start the test webhook receiver (tests/support/webhook_receiver.js under
 * node, verifying signatures with the npm standardwebhooks package) with
 * the secret, appending one JSON object per request to log_path; extra is
 * a NULL-terminated list of more arguments (or NULL). Sets *port; returns
 * the pid for ts_stop. Exits 1 with a hint when the node packages are not
 * installed (tests/support/setup.sh). */
int ts_receiver_start(const char *secret, const char *log_path, const char *const extra[],
                      int *port);

/* The receiver's log so far: a JSON array of the request objects (an empty
 * array if none). Caller owns the result (json_decref). */
json_t *ts_receiver_log(const char *log_path);

#endif
