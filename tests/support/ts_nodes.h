/*
 * ts_nodes.h - what the job and several-node C tests share (on top of
 * test_support.h): the frame of a PostgreSQL-only test, submitting and
 * reading jobs, waiting on what a node's log says (which node runs a job,
 * its worker pid, its progress), the webhook receiver's deliveries, queue
 * positions, tus uploads, and the end of a test.
 *
 * Tests only, single-threaded unless a helper says otherwise. Checks:
 * helpers named "must"/that say "aborts" end the test (TS_CHECK, exit 1)
 * on what the test cannot go on without; helpers that say "counts" record
 * a failure (TS_EXPECT) and go on, and ts_finish turns any into exit 1.
 * Strings returned as "malloc'd" are the caller's to free; json_t results
 * are new references (json_decref).
 */
#ifndef VIDQ_TS_NODES_H
#define VIDQ_TS_NODES_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "test_support.h"

/* The outputs most job tests use, as JSON text for ?outputs=. MEDIUM: a few
 * seconds on the 10 s clip (x264 medium, "med"); SLOW: x264 veryslow
 * ("slow"), about 9 s on the 10 s clip on 2 cores: a test that must hold a
 * slot for longer needs a slower job (test_pg_status_cache: x265). */
#define TS_OUTPUTS_MEDIUM                                                                 \
    "[{\"name\":\"med\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"speed\":"    \
    "\"medium\"},\"audio\":{\"codec\":\"aac\"}}]"
#define TS_OUTPUTS_SLOW                                                                   \
    "[{\"name\":\"slow\",\"container\":\"mp4\",\"video\":{\"codec\":\"h264\",\"speed\":"   \
    "\"veryslow\"},\"audio\":{\"codec\":\"aac\"}}]"

/* The flags that point a node's webhook sender at the test receiver: the
 * secret, fast retries, loopback targets allowed. */
#define TS_WEBHOOK_FLAGS(secret)                                                          \
    "--webhook-secret " secret " --webhook-retry-min 0.2 --webhook-targets any"

/* ------------------------------------------------------------ the frame */

/* A test that runs only under tests/support/with_pg.sh: curl_global_init,
 * then, unless VIDQ_TEST_PG_HOST is set, says "<test> runs under
 * tests/support/with_pg.sh only" and exits 1 (not 77: ctest registers it
 * only there, so a missing cluster is a failure, not a skip). */
void ts_pg_only(const char *test);

/* A new scratch folder for tag (ts_mkdtemp, malloc'd) whose store URL
 * (ts_store_url) is copied into url. */
char *ts_mkdtemp_store(const char *tag, char *url, size_t cap);

/* The end of main: curl_global_cleanup; then, if a TS_EXPECT failed, says
 * "N check(s) failed (logs kept in dir)" and returns 1; else removes dir
 * when remove is set, says "ok" and returns 0. Frees dir (may be NULL). */
int ts_finish(char *dir, int remove);

/* One node for an isolation mode: a scratch folder "<tag>-<isolation>"
 * and ts_server_start on it with "--isolation <isolation> <flags>" (flags
 * may be NULL). Returns the folder (malloc'd). */
char *ts_start_isolated(struct ts_server *s, const char *tag, const char *isolation,
                        const char *flags);

/* The node still answers (GET /healthz 200) and then stops cleanly
 * (SIGTERM, exit 0 within timeout_s). Counts. */
void ts_serving_then_stop(struct ts_server *s, double timeout_s);

/* ------------------------------------------------------------ jobs */

/* A string member of o (NULL if absent or not a string; o may be NULL). */
const char *ts_jstr(json_t *o, const char *key);

/* A job object's "status" (NULL if none) and "attempts" (0 if none). */
const char *ts_job_status(json_t *job);
long ts_job_attempts(json_t *job);

/* POST query (e.g. "/upload?preset=mp4-480p") with the media file clip
 * (ts_media) as a raw video/mp4 body. Aborts unless the answer is want;
 * for a 202 returns the job id (malloc'd; aborts if the answer has none),
 * else NULL. If answer is not NULL it gets the body as JSON (or NULL). */
char *ts_submit(const struct ts_server *s, const char *clip, const char *query, long want,
                json_t **answer);

/* The same with query "/upload?outputs=<outputs, URL-escaped><extra>"
 * (extra may be NULL, else starts with '&'). */
char *ts_submit_outputs(const struct ts_server *s, const char *clip, const char *outputs,
                        const char *extra, long want, json_t **answer);

/* GET /status/<id>: the job object for a 200, else NULL; *status (may be
 * NULL) gets the HTTP status. */
json_t *ts_job_get(const struct ts_server *s, const char *id, long *status);

/* The same, but aborts unless the answer is a 200 with a job object. */
json_t *ts_job_must(const struct ts_server *s, const char *id);

/* POST /v1/jobs/<id>/cancel; aborts unless it answers 200 or 202 (or 409,
 * already final, when allow_final). */
void ts_job_cancel(const struct ts_server *s, const char *id, int allow_final);

/* The job's queue_position in GET /status/<id>: -1 when it has none. */
long ts_queue_position(const struct ts_server *s, const char *id);

/* The job's queue_position in the list at list_path (e.g.
 * "/v1/jobs?limit=100"): -1 when listed without one, -2 when not listed. */
long ts_list_position(const struct ts_server *s, const char *list_path, const char *id);

/* Wait (poll every 20 ms, up to timeout_s) until the job is running with
 * progress percent > 0 and >= min_pct; aborts if it never is. */
void ts_wait_progress(const struct ts_server *s, const char *id, double min_pct,
                      double timeout_s);

/* ------------------------------------------------------------ node logs */

/* How many times needle stands in the node's log (its stderr) so far. */
int ts_log_count(const struct ts_server *s, const char *needle);
int ts_log_has(const struct ts_server *s, const char *needle);

/* How many times the node's log says "job started id=<id> ". */
int ts_started_count(const struct ts_server *s, const char *id);

/* Which of the n nodes started job id (the first whose log says so).
 * timeout_s 0: look once, -1 if none has; otherwise poll up to timeout_s
 * and abort if none did. */
int ts_runner_of(struct ts_server *const nodes[], int n, const char *id, double timeout_s);

/* The pid of job id's worker child, as its log says ("id=<id>
 * worker_pid=<pid>", --isolation process); polls up to timeout_s, aborts
 * if never logged. */
pid_t ts_worker_pid(const struct ts_server *s, const char *id, double timeout_s);

/* ------------------------------------------------------------ webhooks */

/* Start the test receiver (ts_receiver_start) with secret, logging to
 * <dir>/receiver.jsonl (its path copied into log); sets *port, returns the
 * pid for ts_stop. */
int ts_hooks_start(const char *dir, const char *secret, char *log, size_t cap, int *port);

/* Register on s a global webhook to the receiver on port, path /all, for
 * events (a JSON array's text, e.g. "[\"job.succeeded\"]"); aborts unless
 * it answers 201. */
void ts_hooks_register(const struct ts_server *s, int port, const char *events);

/* The receiver's requests for job id's event type (e.g. "job.succeeded");
 * counts a failure for each whose signature the receiver did not verify. */
int ts_deliveries(const char *log, const char *id, const char *type);

/* Poll (every 100 ms, up to timeout_s) until one such request came;
 * counts a failure if none did. */
void ts_wait_delivered(const char *log, const char *id, const char *type, double timeout_s);

/* ------------------------------------------------------------ files */

/* SHA-256 (hex) of a file into out (empty when it cannot be read). */
void ts_sha256_file(const char *file, char out[65]);

/* Download output name of job id through s (into dir, then removed) and
 * give its SHA-256; aborts unless the answer is a 200 with a body. */
void ts_download_sha(const struct ts_server *s, const char *id, const char *name,
                     const char *dir, char out[65]);

/* 1 if path is a folder. */
int ts_is_dir(const char *path);

/* At exit (a failed TS_CHECK included), SIGKILL then SIGCONT each pid of
 * pids[0..n-1] that is > 0 and still there: a frozen node or job child
 * must not outlive the test. The array is the caller's (static); set an
 * entry to 0 once that process is gone, so a reused pid is never hit. */
void ts_kill_at_exit(pid_t *pids, int n);

/* ------------------------------------------------------------ tus uploads */

/* Standard base64 of the string in into out (cap bytes; truncated to fit,
 * always NUL-terminated). */
void ts_b64(const char *in, char *out, size_t cap);

/* POST /v1/uploads/ for length bytes with the metadata pairs kv (key,
 * value, ..., NULL; may be NULL); aborts unless 201 with a Location;
 * returns the Location (malloc'd, "/v1/uploads/<id>"). */
char *ts_tus_create(const struct ts_server *s, long long length, const char *const *kv);

/* PATCH len bytes of body at offset off to the upload at loc; returns the
 * HTTP status (0 on a transport error); *new_off (may be NULL) gets the
 * Upload-Offset answered, -1 without. */
long ts_tus_patch(const struct ts_server *s, const char *loc, long long off, const void *body,
                  size_t len, long long *new_off);

/* HEAD of the upload at loc: the status; *off the Upload-Offset, -1 without. */
long ts_tus_head(const struct ts_server *s, const char *loc, long long *off);

#endif
