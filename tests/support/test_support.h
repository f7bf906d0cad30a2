/*
 * test_support.h - small helpers shared by the C integration tests: the
 * environment ctest sets (see tests/CMakeLists.txt), scratch folders,
 * running commands. Tests only; aborts the test on setup failure.
 */
#ifndef VIDQ_TEST_SUPPORT_H
#define VIDQ_TEST_SUPPORT_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

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
 * the child's pid, or -1 (the child is killed) if no line came. A child
 * still running when the test exits (a failed TS_CHECK) is killed then. */
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


/* ------------------------------------------------------------ the server
 * Start `vidq serve` on 127.0.0.1:0 with a data dir, wait for its
 * "listening on" line, talk to it with libcurl, stop or kill it. */

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct ts_server {
    pid_t pid;
    int port;
    char base[64];          /* "http://127.0.0.1:PORT" */
    char data_dir[4096];
    char log_path[4200];    /* the server's stderr */
    char out_path[4200];    /* the server's stdout */
    const char *const *auth; /* headers ts_wait_* send (e.g. the API key), or NULL */
};

/* The store URL for a server or store on data_dir: sqlite:<data_dir>/vidq.db,
 * or, when the test runs under tests/support/with_pg.sh (VIDQ_TEST_PG_HOST
 * set), a PostgreSQL database of the throwaway cluster, one per data_dir
 * (created if needed; exits 1 if the cluster cannot be reached). A static
 * buffer: copy it before the next call. */
const char *ts_store_url(const char *data_dir);

/* Start the server with data_dir (created if needed) and extra flags (a
 * space-separated string, may be NULL); under with_pg.sh and without --db
 * in flags it gets --db ts_store_url(data_dir) --node-lease 3. Environment
 * from the caller.
 * Aborts the test if it does not listen within 20 s. A server not stopped
 * when the test exits (a failed TS_CHECK) is killed (SIGKILL) then. */
void ts_server_start(struct ts_server *s, const char *data_dir, const char *flags);

/* Send sig and wait (up to timeout_s, then SIGKILL); returns the exit
 * status (128+signal if killed by one). */
int ts_server_stop(struct ts_server *s, int sig, double timeout_s);

/* The server's log so far (malloc'd). */
char *ts_server_log(const struct ts_server *s);

/* One HTTP answer. */
struct ts_http {
    long status;
    char *body;             /* NUL-terminated */
    size_t len;
    char headers[8192];
};

/* A request: method, path (appended to s->base) or full URL, optional
 * headers (NULL-terminated list), optional body. Returns 0 or -1 on a
 * transport error (status 0). */
int ts_http(const struct ts_server *s, struct ts_http *r, const char *method, const char *path,
            const char *const *headers, const void *body, size_t len);

/* POST a file as a raw body (streamed) with content_type. */
int ts_http_upload_raw(const struct ts_server *s, struct ts_http *r, const char *path,
                       const char *file, const char *content_type, const char *const *headers);

/* POST multipart/form-data: the file as part "file" plus name/value
 * pairs (NULL-terminated, alternating). */
int ts_http_upload_multipart(const struct ts_server *s, struct ts_http *r, const char *path,
                             const char *file, const char *const *fields,
                             const char *const *headers);

void ts_http_free(struct ts_http *r);

/* A header's value from r (malloc'd) or NULL. */
char *ts_http_header(const struct ts_http *r, const char *name);

/* The body as JSON (new reference) or NULL. */
json_t *ts_http_json(const struct ts_http *r);

/* GET /status/<id> until the job's status is final or timeout_s passes;
 * returns the last job object (new reference) or NULL. */
json_t *ts_wait_job(const struct ts_server *s, const char *id, double timeout_s);

/* GET /status/<id> until the status equals want (or a final one). */
json_t *ts_wait_status(const struct ts_server *s, const char *id, const char *want,
                       double timeout_s);

/* ffprobe -show_format -show_streams of a file as JSON, or NULL. */
json_t *ts_ffprobe(const char *path);

/* Download path to file; returns the HTTP status. */
long ts_http_download(const struct ts_server *s, const char *path, const char *file);

/* Seconds since some fixed point (monotonic). */
double ts_now(void);

/* Sleep for ms milliseconds. */
void ts_sleep_ms(int ms);

/* Check macro for integration tests: print where and exit 1. */
/* Path of a generated media file under VIDQ_MEDIA (a static buffer: use it
 * before the next call). */
const char *ts_media(const char *name);

/* Checks that failed through TS_EXPECT; a test exits non-zero if any did. */
extern int ts_failures;

/* Like TS_CHECK but counts the failure and goes on, so one run reports
 * every broken case. */
#define TS_EXPECT(cond, ...)                                                         \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                            \
            fprintf(stderr, "\n");                                                   \
            ts_failures++;                                                           \
        }                                                                            \
    } while (0)

#define TS_CHECK(cond, ...)                                                          \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fprintf(stderr, "\n");                                                   \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

/* Send raw bytes on a new TCP connection to the server; if read_reply,
 * read the answer into resp (up to cap-1 bytes, NUL-terminated) until the
 * server closes or 5 s pass; then close. Returns bytes read or -1. */
int ts_raw_request(const struct ts_server *s, const void *req, size_t len, int read_reply,
                   char *resp, size_t cap);

/* Number of entries in a folder (no "." or ".."); -1 if it cannot be read. */
int ts_count_files(const char *dir);

#endif
