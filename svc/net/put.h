/*
 * put.h - send one file to a URL with PUT, safely: the target rule of
 * net/target.h on every connection, no redirects, the body streamed from
 * disk.
 *
 * DESIGN
 *   One blocking libcurl easy transfer per try, on the caller's thread (a
 *   job's runner): PUT with Content-Type and Content-Length (the file's
 *   size, read once; no chunked body), "Expect:" off, no proxy, http and
 *   https only. Redirects are not followed: a PUT body cannot be replayed
 *   safely across hosts and a 3xx is where an allowed host would send the
 *   bytes somewhere internal, so a 3xx answer is a failure (not retried).
 *   Any 2xx is delivered. A refused connect, DNS failure, a dropped
 *   connection, a stall, 408, 429 and 5xx are tried again, up to
 *   params->tries tries in all, after 0.5 s, 1 s, 2 s ... (at most 8 s);
 *   each try sends the whole file again (PUT replaces, so a retry is
 *   idempotent). Other 4xx answers (an expired presigned URL: 403) fail at
 *   once. An address the rule refuses fails at once (NET_PUT_REFUSED).
 *   Cancel: on_progress is called about once a second and on every chunk
 *   read, and during backoffs; non-zero stops (NET_PUT_CANCELED).
 *
 * Threading: net_put may run on any thread, several at once (one easy
 * handle each). curl_global_init must have run.
 */
#ifndef VIDQ_NET_PUT_H
#define VIDQ_NET_PUT_H

#include <stdint.h>

#include "net/target.h"

#define NET_PUT_ERROR_MAX 320

/* How a PUT ended (net_put's return value, 0 or negative). */
enum net_put_status {
    NET_PUT_OK = 0,
    NET_PUT_REFUSED = -1,  /* the rule refused an address, or not an http(s) URL */
    NET_PUT_FAILED = -2,   /* HTTP error, redirect, network error after the tries */
    NET_PUT_CANCELED = -3, /* on_progress asked to stop */
    NET_PUT_IO = -4,       /* cannot read the file */
};

struct net_put_params {
    const char *url;
    const char *path;          /* the file to send (borrowed) */
    const char *content_type;  /* NULL: application/octet-stream */
    struct net_targets rule;
    long connect_timeout_s;    /* 0: 10 */
    long stall_timeout_s;      /* 0: 30 */
    unsigned tries;            /* tries in all; 0: 1 */
    /* "host:port:address" entries, ','-separated, for CURLOPT_RESOLVE
     * (tests); the rule still judges the address. NULL: none. */
    const char *resolve;
    /* Called with the bytes of this file sent so far in the current try
     * and the file's size; non-zero stops. May be NULL. */
    int (*on_progress)(void *ctx, int64_t sent, int64_t size);
    void *ctx;
};

struct net_put_result {
    int64_t size;           /* the file's size */
    long http_status;       /* last answer's status, 0 when none */
    unsigned tries;         /* tries made */
    char error[NET_PUT_ERROR_MAX]; /* why it failed, a sentence; "" on success */
};

/* PUT params->path to params->url. Returns NET_PUT_OK or a negative
 * status above, with the reason in result->error. */
int net_put(const struct net_put_params *params, struct net_put_result *result);

#endif
