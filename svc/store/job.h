/*
 * job.h - a job as the service keeps it: one uploaded input, one or more
 * outputs, its state and progress. Plain data shared by the store, the
 * scheduler and the HTTP layer; job_to_json renders the API's job object.
 *
 * Ownership: every char * of struct job is owned by the struct and freed by
 * job_free / job_clear. Threading: a struct job has no lock; whoever holds
 * it guards it (the scheduler's lock for cached jobs).
 */
#ifndef VIDQ_JOB_H
#define VIDQ_JOB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum job_status { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELED };

/* 16 random bytes in base64url: 22 characters. */
enum { JOB_ID_LEN = 22, JOB_ID_SIZE = 23 };

/* The name of attempt n's folder in a job's output folder is this prefix
 * and n (job_attempt_dir); a dot-name, so no output name can be it. */
#define JOB_ATTEMPT_PREFIX ".attempt-"

struct job_progress {
    double percent, out_time_s, fps, speed, eta_s; /* eta_s < 0: unknown */
    int64_t frames;
    /* A job from a URL (input.url): "fetching" while its input downloads
     * (fetch_bytes so far, fetch_total or -1), then "transcoding"; "" for
     * an uploaded job. In memory only (not stored). */
    char phase[16];
    int64_t fetch_bytes, fetch_total;
    /* "delivering" (outputs with upload_url): bytes sent of the total. */
    int64_t deliver_bytes, deliver_total;
};

struct job {
    char id[JOB_ID_SIZE];
    int64_t seq;            /* creation order, from the store; the list cursor */
    enum job_status status;
    int priority;
    double created_at, started_at, finished_at; /* Unix seconds; 0 = null */
    int attempts;           /* times the job was started */
    char *input_path;       /* the stored upload */
    char *input_json;       /* the API's "input" object */
    char *outputs_json;     /* [{"preset": s|null, "spec": {...}}, ...] */
    char *results_json;     /* [{"size", "duration_s", "video", "audio"}, ...] or NULL */
    char *metadata_json;    /* "{}" when none */
    char *webhook_url;      /* NULL when none */
    struct job_progress progress;
    char *error_code;       /* NULL unless failed */
    char *error_message;
    /* Retention (README "Retention"): ttl_s is how long the files are
     * kept after the job ends (the upload's ttl_s or --retention; 0 =
     * the server's default); expires_at is set by the store when the job
     * ends (0 = null); expired = 1 once its files were deleted. */
    double ttl_s, expires_at;
    int expired;
};

/* "queued", ... ; job_status_parse gives -1 for an unknown name. */
const char *job_status_name(enum job_status s);
int job_status_parse(const char *name);

/* 1 for succeeded, failed and canceled. */
int job_status_is_final(enum job_status s);

/* Fill id with a fresh id of >= 128 random bits (OpenSSL RAND_bytes).
 * Returns 0, or -1 if the random generator failed. */
int job_id_new(char id[JOB_ID_SIZE]);

/* 1 if s has the shape of a job id (URL-safe, right length). */
int job_id_valid(const char *s);

/* Free the strings of job and zero it (job itself is not freed). */
void job_clear(struct job *job);

/* Free a heap job; accepts NULL and sets *pp = NULL. */
void job_free(struct job **pp);

/* Deep copy of src into dst (dst's old content is not freed). -1 on OOM. */
int job_copy(struct job *dst, const struct job *src);

/* When job's files expire (Unix s): expires_at, or finished_at + ttl_s
 * for a job that ended in memory; 0 = not (yet) known. */
double job_expires_at(const struct job *job);

/* 1 if job's outputs are there to download: it succeeded, or it failed
 * only because an upload_url did not take them (output_undeliverable). */
int job_outputs_kept(const struct job *job);

/* 1 if job's files are gone or due to go at now (its outputs answer 410). */
int job_is_expired(const struct job *job, double now);

/* The API's job object. queue_position is 1-based, <= 0 renders null.
 * Returns a new reference, NULL on out-of-memory. */
json_t *job_to_json(const struct job *job, long queue_position);

/* Where a job's files live under data_dir: its stored upload
 * (<data_dir>/inputs/<id>), its output folder (<data_dir>/outputs/<id>) and
 * one output (<folder>/<name>.<ext>, or the folder <folder>/<name> for a
 * folder container: hls, sprite). Return 0, or -1 if buf is too small. */
int job_input_path(char *buf, size_t cap, const char *data_dir, const char *id);
int job_output_dir(char *buf, size_t cap, const char *data_dir, const char *id);
int job_output_path(char *buf, size_t cap, const char *data_dir, const char *id,
                    const char *name, const char *container);

/* Remove a job's output folder and everything in it (partial outputs).
 * Returns 0 or -1 (logged). */
int job_remove_outputs(const char *data_dir, const char *id);

/* Fenced attempts (several nodes on one store; README "Several nodes"):
 * attempt n of a job (its attempts count at the claim) writes only under
 * <folder>/.attempt-<n>/, and a succeeded job's outputs are those of
 * attempt `attempts` (the success transition is fenced on that count, see
 * store_job_finish_attempt), so a stale attempt's files are never served
 * and never replace the winner's. attempt 0 is the plain layout (one node:
 * outputs directly in the job's folder, and jobs from before attempts had
 * folders). job_attempt_dir gives <data_dir>/outputs/<id>[/.attempt-<n>];
 * job_attempt_output_path one output in it (as job_output_path). 0 or -1
 * if buf is too small. */
int job_attempt_dir(char *buf, size_t cap, const char *data_dir, const char *id, int attempt);
int job_attempt_output_path(char *buf, size_t cap, const char *data_dir, const char *id,
                            int attempt, const char *name, const char *container);

/* The folder a succeeded job's outputs are read from (downloads): its
 * winning attempt's folder when there is one, else the plain folder. Same
 * returns. */
int job_served_dir(char *buf, size_t cap, const char *data_dir, const struct job *job);

/* Remove the attempt folders of job id but attempt keep (keep 0: all of
 * them): a stale or killed attempt's files. Never touches the plain
 * layout's files. Returns 0 or -1 (logged). */
int job_remove_other_attempts(const char *data_dir, const char *id, int keep);

/* Remove the folder of one attempt (n > 0) of job id: an attempt whose
 * end the store refused cleans up after itself. 0 or -1 (logged). */
int job_remove_attempt(const char *data_dir, const char *id, int n);

/* Current time as Unix seconds with sub-second precision. */
double job_now(void);

#endif
