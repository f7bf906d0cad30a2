/*
 * fetch.h - download one URL into a file, safely: the target rule of
 * net/target.h on every connection, redirects and resume.
 *
 * DESIGN
 *   One blocking libcurl easy transfer at a time, on the caller's thread
 *   (a job's runner): GET, at most NET_FETCH_MAX_REDIRECTS redirects (each
 *   hop's address judged again by the rule, http/https only), no proxy.
 *   The body is appended to `path` as it arrives, never held in memory. If
 *   `path` already holds bytes (an earlier attempt, a restart) the transfer
 *   asks for the rest with `Range: bytes=N-`; a server that answers 200
 *   instead (no ranges) has the file truncated and is read from 0, a 416
 *   likewise. A dropped connection, a stall, a refused connect, DNS
 *   failure or a 5xx/408/429 answer is retried from the bytes already on
 *   disk, at most max_retries times in a row (a retry that brought new
 *   bytes resets the count), after 0.5 s, 1 s, 2 s, ... (at most 8 s).
 *   Limits: max_bytes on the announced size (Content-Length, or the total
 *   of Content-Range) before any byte is written and on the bytes written;
 *   connect_timeout_s per connect; a transfer that moves less than 1 byte/s
 *   for stall_timeout_s is dropped (and retried).
 *   Cancel: on_progress is called about once a second and on every chunk;
 *   a non-zero return stops the transfer (NET_FETCH_CANCELED).
 *
 * Threading: net_fetch may run on any thread, several at once (one easy
 * handle each). curl_global_init must have run.
 */
#ifndef VIDQ_NET_FETCH_H
#define VIDQ_NET_FETCH_H

#include <stdint.h>

#include "net/target.h"

#define NET_FETCH_MAX_REDIRECTS 5
#define NET_FETCH_ERROR_MAX 320

/* How a fetch ended (net_fetch's return value, 0 or negative). */
enum net_fetch_status {
    NET_FETCH_OK = 0,
    NET_FETCH_REFUSED = -1,     /* the rule refused an address, or a non-http(s) URL */
    NET_FETCH_UNREACHABLE = -2, /* DNS, connect, timeout, HTTP error after the retries */
    NET_FETCH_TOO_LARGE = -3,   /* over max_bytes */
    NET_FETCH_CANCELED = -4,    /* on_progress asked to stop */
    NET_FETCH_IO = -5,          /* cannot write the file */
};

struct net_fetch_params {
    const char *url;
    const char *path;          /* destination; created, or appended to (resume) */
    struct net_targets rule;
    int64_t max_bytes;         /* 0: no limit */
    long connect_timeout_s;    /* 0: 10 */
    long stall_timeout_s;      /* 0: 30 */
    unsigned max_retries;      /* retries in a row without progress; 0: none */
    /* "host:port:address" entries, ','-separated, given to CURLOPT_RESOLVE
     * (tests: a name that resolves to a private address); the rule still
     * judges the address. NULL: none. */
    const char *resolve;
    /* Called with the bytes on disk and the total size (-1 when unknown);
     * non-zero stops the fetch. May be NULL. */
    int (*on_progress)(void *ctx, int64_t have, int64_t total);
    void *ctx;
};

struct net_fetch_result {
    int64_t bytes;          /* bytes in the file at the end */
    int64_t total;          /* announced size, -1 when unknown */
    long http_status;       /* last answer's status, 0 when none */
    unsigned resumes;       /* transfers that continued from a byte > 0 */
    unsigned attempts;      /* transfers made */
    char error[NET_FETCH_ERROR_MAX]; /* why it failed, a sentence; "" on success */
};

/* Fetch params->url into params->path. Returns NET_FETCH_OK or one of
 * the negative statuses above, with the reason in result->error. The file
 * is left as it is on failure (the caller removes it or resumes later). */
int net_fetch(const struct net_fetch_params *params, struct net_fetch_result *result);

/* The API's error code of a status: "input_refused", "input_unreachable",
 * "too_large", "canceled", "internal_error". Static. */
const char *net_fetch_code(int status);

#endif
