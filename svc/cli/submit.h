/*
 * submit.h - the HTTP client of `vidq submit` (libcurl): a resumable tus
 * upload, a JSON request, following a job (its event stream, polling when
 * the stream breaks), downloading its outputs (HLS and sprite folders
 * whole) with resume.
 *
 * Failures are retried at most SUBMIT_RETRIES times in a row with backoff
 * (0.5 s, 1 s, 2 s): a transport error (refused, reset, timed out), a 5xx,
 * and for an upload a 409/423 (the offset moved) are retried; the upload
 * resumes by HEAD (the server's offset) and a PATCH from there, a download
 * with Range from the bytes it has. Other 4xx are the server's answer and
 * are not retried. A 423 on a PATCH (the server still holds the dropped
 * request) is waited out, a second at a time for up to 120 s, without
 * spending a retry.
 *
 * Errors: functions return SUBMIT_OK or a negative SUBMIT_E*; struct
 * submit_error then holds a snake_case code (the server's error code when
 * it sent one) and a sentence.
 * Ownership: json_t results are new references for the caller.
 * Threading: one thread per struct submit_server; every call makes its
 * own curl easy handles (curl_global_init is done by main). The cancel
 * flag may be set from a signal handler: transfers stop within ~1 s.
 */
#ifndef VIDQ_SUBMIT_H
#define VIDQ_SUBMIT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum { SUBMIT_RETRIES = 3 };

enum submit_rc {
    SUBMIT_OK = 0,
    SUBMIT_EFAILED = -1,      /* the server said no, or a protocol error */
    SUBMIT_EUNREACHABLE = -2, /* no answer from the server after the retries */
    SUBMIT_ECANCELED = -3,    /* the cancel flag was set */
    SUBMIT_EIO = -4,          /* a local file could not be read or written */
};

struct submit_error {
    char code[64];
    char message[512];
    long http_status; /* 0 when no answer */
};

/* How progress is told; every callback may be NULL. */
struct submit_report {
    void *opaque;
    /* bytes of the file the server has acknowledged or is receiving */
    void (*upload)(void *opaque, uint64_t sent, uint64_t total);
    /* a failed transfer that will be retried (resume_at: where from) */
    void (*retry)(void *opaque, const char *what, uint64_t resume_at, const char *why);
    /* a job object from the event stream or a poll */
    void (*job)(void *opaque, const json_t *job);
    /* a file written by a download */
    void (*downloaded)(void *opaque, const char *path, uint64_t size);
    /* an upload was created at url (so that a later run can resume it) */
    void (*created)(void *opaque, const char *url);
};

struct submit_server {
    const char *base;    /* "http://host:port", no trailing slash */
    const char *api_key; /* sent as a Bearer token; NULL or "" for none */
    atomic_int *cancel;  /* set: stop (may be NULL) */
    struct submit_report report;
};

/* Upload the file at path with tus (creation, then PATCHes of chunk bytes
 * at most) with the Upload-Metadata header value metadata (may be NULL).
 * resume_url (may be NULL or "") is an upload an earlier run created: it
 * is continued from the server's offset, or, if the server no longer has
 * it, a new upload is created (report.created tells its URL).
 * On success writes the upload id (the job id) into id (cap >= 64) and
 * the number of resumes into *resumes. */
int submit_tus_upload(const struct submit_server *s, const char *path, const char *metadata,
                      const char *resume_url, size_t chunk, char *id, size_t cap, int *resumes,
                      struct submit_error *e);

/* POST body (JSON, borrowed) to path; on a 2xx answer *answer is its JSON.
 * A 4xx/5xx is SUBMIT_EFAILED with the server's error code and message. */
int submit_post_json(const struct submit_server *s, const char *path, const json_t *body,
                     json_t **answer, struct submit_error *e);

/* GET /status/<id>: the job object into *job. */
int submit_get_job(const struct submit_server *s, const char *id, json_t **job,
                   struct submit_error *e);

/* Follow job id until it ends (succeeded, failed or canceled): its event
 * stream, or polling /status/<id> once a second when the stream cannot be
 * used. Each job object goes to report.job; the final one into *final. */
int submit_follow(const struct submit_server *s, const char *id, json_t **final,
                  struct submit_error *e);

/* Download every output of a succeeded job into dir (created if needed):
 * a file output as dir/<name>.<ext>, a folder output (hls, sprite) as
 * dir/<name>/ with every file its index names. Each file is written as
 * <file>.part and renamed when complete; an existing .part is resumed. */
int submit_download_outputs(const struct submit_server *s, const json_t *job, const char *dir,
                            struct submit_error *e);

/* "key base64(value)" pairs joined by commas (the tus Upload-Metadata
 * syntax) of the NULL-terminated key/value list (a NULL value is
 * skipped); malloc'd, NULL if out of memory. */
char *submit_tus_metadata(const char *const *kv);

#endif
