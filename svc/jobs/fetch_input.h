/*
 * fetch_input.h - the first phase of a job created from a URL (its
 * "input" holds "url"): download the input into the data dir, probe it
 * like an upload, and move it where the job's worker reads it.
 *
 * DESIGN
 *   Runs on the job's runner thread, in the job's slot, in the server
 *   process: job and probe children have no network (sandbox), and the
 *   fetch never decodes media, so the child still reads a local file.
 *   The bytes go to <data_dir>/tmp/fetch-<id> (resumed with Range from
 *   what is there: after a dropped connection, and after a restart if the
 *   file survived it), capped and judged by the target rule (net/fetch.h).
 *   Then the file is probed by an isolated probe child (not media:
 *   unsupported_media), renamed to the job's input path, and the job's
 *   "input" object becomes the probe's, with "url" kept. An input already
 *   at the input path (an earlier attempt got that far) is not fetched
 *   again.
 *
 * Threading: any thread; one call per job at a time.
 */
#ifndef VIDQ_JOBS_FETCH_INPUT_H
#define VIDQ_JOBS_FETCH_INPUT_H

#include <stdatomic.h>
#include <stdint.h>

#include "jobs/worker.h"
#include "net/target.h"

struct fetch_input_params {
    const char *data_dir;
    const char *id;              /* the job */
    const char *input_path;      /* where the worker reads the input */
    const char *input_json;      /* the job's "input" object (text) */
    struct net_targets rule;     /* --fetch-targets */
    int64_t max_bytes;           /* --max-upload-bytes */
    enum worker_isolation isolation; /* of the probe */
    const char *exe;
    int64_t max_memory;
    atomic_int *stop;            /* non-zero: stop (cancel, shutdown) */
    /* Bytes on disk and the size (-1 unknown), about once a second. */
    void (*on_progress)(void *opaque, int64_t have, int64_t total);
    void *opaque;
};

enum { FETCH_INPUT_CODE_MAX = 32, FETCH_INPUT_MESSAGE_MAX = 384 };

/* 1 if input_json names a URL input (has "url"). */
int fetch_input_is_url(const char *input_json);

/* Make sure the job's input is at input_path. Returns 0 (*new_input, if
 * the input was fetched now, receives the new "input" object as malloc'd
 * text; else NULL), 1 if stopped through *stop, or -1 with an API error
 * code (input_unreachable, input_refused, too_large, unsupported_media,
 * internal_error) and a sentence. The partial download is kept on stop
 * (a requeued job resumes it) and removed on failure. */
int fetch_input_run(const struct fetch_input_params *p, char **new_input, char *code,
                    char *message);

#endif
