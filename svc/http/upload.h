/*
 * upload.h - turning a stored upload into a job: the path every way of
 * uploading shares (multipart, raw body, and later tus).
 *
 * Threading: any thread (upload_submit runs off the HTTP threads, in
 * offload.h's); each call works on its own upload.
 */
#ifndef VIDQ_HTTP_UPLOAD_H
#define VIDQ_HTTP_UPLOAD_H

#include <stddef.h>

#include "http/internal.h"

/* Caps on the option values an upload may carry. */
enum {
    UPLOAD_PRESETS_MAX = 1024,
    UPLOAD_OUTPUTS_MAX = 65536,
    UPLOAD_URL_MAX = 2048,
    UPLOAD_METADATA_MAX = 16384,
    UPLOAD_FILENAME_MAX = 256,
    UPLOAD_CLIP_MAX = 256,
};

/* The options of one upload, as text, whichever way they came. */
struct upload_options {
    char filename[UPLOAD_FILENAME_MAX];
    char presets[UPLOAD_PRESETS_MAX];    /* comma-separated */
    char *outputs;                       /* JSON array text or NULL (owned) */
    char *webhook_url;                   /* or NULL (owned) */
    char *metadata;                      /* JSON object text or NULL (owned) */
    char *input_url;                     /* a job from a URL (input_url.h), or NULL (owned) */
    char priority[24];                   /* "" = 0 */
    char clip[UPLOAD_CLIP_MAX];          /* "clip" JSON text ({"start_s": f,
                                          * "end_s": f}) or "S-E"; "" = none */
    char job_id[JOB_ID_SIZE];            /* "": a new id; else this one (tus) */
    char ttl_s[32];                      /* "" = --retention (README "Retention") */
};

/* The largest ttl_s an upload may ask (--max-retention); set once before
 * the HTTP threads start. */
void upload_set_max_ttl(double max_s);

/* The --fetch-targets rule for upload_url at submit (an address literal or
 * localhost the rule refuses is 400 invalid_output); set once before the
 * HTTP threads start (default "public"). */
struct net_targets;
void upload_set_fetch_targets(const struct net_targets *rule);

/* The ttl_s of o in seconds: 0 when none, -1 when malformed or out of range. */
double upload_options_ttl(const struct upload_options *o);

/* Free the owned strings of o. */
void upload_options_clear(struct upload_options *o);

/* Read the options of the query string (?preset=...&outputs=...). Returns
 * 0 or -1 with e filled (a value over its cap). */
int upload_options_from_query(struct MHD_Connection *conn, struct upload_options *o,
                              struct api_error *e);

/* Set one option by name (filename, preset, outputs, webhook_url, metadata,
 * priority, clip, ttl_s; others ignored) from a value of len bytes. Returns 0 or -1
 * with e filled (over its cap). */
int upload_options_set(struct upload_options *o, const char *key, const char *value, size_t len,
                       struct api_error *e);

/* Check the options without an input: presets exist, specs parse, names
 * are unique, priority and metadata are well-formed. On success
 * *outputs_json (if not NULL) receives the job's outputs JSON text
 * (malloc'd). Returns 0 or -1 with e filled (400). */
int upload_options_check(const struct upload_options *o, char **outputs_json,
                         struct api_error *e);

/* Make a job of the complete upload at tmp_path (a file in the server's
 * tmp dir, or a tus upload's data file): probe it (not media: 415 and the
 * file deleted), check the outputs against it, move it into the inputs
 * folder, store and queue the job. On success the file is owned by the
 * job and *json holds the job object (malloc'd) and id its id. On failure
 * the file is deleted and e says why; then, when o->job_id is set (a tus
 * upload: the client already holds that id), the refusal is stored as a
 * failed job with that id and e as its error (upload_record_failed) and
 * *failed_job (if not NULL) is set to 1. Returns 0 or -1. */
int upload_submit(struct http_server *h, const char *tmp_path, const struct upload_options *o,
                  int64_t size, char **json, size_t *json_len, char id[JOB_ID_SIZE],
                  struct api_error *e, int *failed_job);

/* Store a refused upload as a job in status failed with why as its error
 * (job.failed webhooks fire; GET /status and /v1/jobs show it): id
 * o->job_id (required), filename, metadata, webhook_url, priority and
 * outputs from o, input the probed "input" object when there is one (else
 * filename and size). Returns 0, or -1 (logged; e.g. the id exists). */
int upload_record_failed(struct http_server *h, const struct upload_options *o, int64_t size,
                         const json_t *input, const struct api_error *why);

/* A new temporary file in the server's tmp dir: returns the fd (O_CLOEXEC)
 * and its path in path, or -1 with e filled. */
int upload_tmp_open(struct http_server *h, char *path, size_t cap, struct api_error *e);

/* Append len bytes to fd, mapping a full disk to insufficient_storage.
 * Returns 0 or -1 with e filled. */
int upload_write(struct http_server *h, int fd, const char *data, size_t len,
                 struct api_error *e);

#endif
