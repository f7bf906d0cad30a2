/*
 * deliver_out.h - the last phase of a job whose output specs carry
 * "upload_url" (API.md "Outputs delivered to a URL"): send each finished
 * output there with PUT.
 *
 * DESIGN
 *   Runs on the job's runner thread, in the job's slot, in the server
 *   process (job children have no network), after the worker succeeded
 *   and before the job's end is written: the job is "running" with
 *   progress.phase "delivering" meanwhile. A file output goes to its
 *   upload_url; a folder output (hls, sprite) to <upload_url><relative
 *   path> for each of its files, the index files last (rendition
 *   playlists, then master.m3u8 / thumbnails.vtt) so that a reader of the
 *   receiver never sees a playlist naming a file not there yet. One PUT at
 *   a time (net/put.h: the target rule, no redirects, Content-Type and
 *   Content-Length, streamed from disk), each file tried up to
 *   DELIVER_OUT_TRIES times with backoff. The first file that still fails
 *   fails the job with output_undeliverable; the local outputs are kept
 *   (the caller keeps them downloadable). A restart (kill -9) requeues
 *   the running job like any other: it is transcoded and delivered again
 *   from the start, which PUT's replace semantics make harmless.
 *
 * Threading: any thread; one call per job at a time.
 */
#ifndef VIDQ_JOBS_DELIVER_OUT_H
#define VIDQ_JOBS_DELIVER_OUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "net/target.h"

enum { DELIVER_OUT_TRIES = 3, DELIVER_OUT_CODE_MAX = 32, DELIVER_OUT_MESSAGE_MAX = 384 };

struct deliver_out_params {
    const char *id;                /* the job, for logs */
    const char *outputs_json;      /* the job's outputs: [{"spec", "upload_url"?}, ...] */
    const char *const *paths;      /* paths[i]: output i's file or folder (borrowed) */
    size_t n;                      /* outputs */
    struct net_targets rule;       /* --fetch-targets */
    atomic_int *stop;              /* non-zero: stop (cancel, shutdown) */
    /* Bytes sent so far and the total to send, about once a second. */
    void (*on_progress)(void *opaque, int64_t sent, int64_t total);
    void *opaque;
};

/* 1 if any output of outputs_json has an "upload_url". */
int deliver_out_wanted(const char *outputs_json);

/* Send every output that has an upload_url. *results_json (the run's
 * results, malloc'd text, one object per output) is replaced by a copy
 * whose delivered outputs carry "delivered_to" (the URL, or the prefix of
 * a folder, with "delivered_files"). Returns 0, 1 if stopped through
 * *stop, or -1 with an API error code (output_undeliverable,
 * internal_error) and a sentence in code and message. */
int deliver_out_run(const struct deliver_out_params *p, char **results_json, char *code,
                    char *message);

#endif
