/*
 * easy.h - the libcurl options every transfer to a user's URL shares
 * (a fetch of input_url, a PUT to upload_url): the address rule on every
 * connect (target.h), http/https only, no proxy, no signals, the same
 * connect and stall timeouts, progress and error reporting. What differs
 * (method, body, redirects, Range) each caller sets after this.
 *
 * Threading: any thread; an easy handle belongs to one thread at a time.
 * Errors: net_easy_setup returns a CURLcode (CURLE_OK or the first
 * refused option); net_resolve_list returns NULL for an empty spec or
 * when out of memory (then the transfer resolves names itself).
 */
#ifndef VIDQ_NET_EASY_H
#define VIDQ_NET_EASY_H

#include <curl/curl.h>

#include "net/target.h"

struct net_easy_opts {
    const char *url;
    const char *user_agent;
    struct curl_slist *headers;        /* borrowed; may be NULL */
    struct curl_slist *resolve;        /* borrowed; NULL: system resolver */
    long connect_timeout_s;            /* 0: 10 */
    long stall_timeout_s;              /* less than 1 byte/s this long: dropped; 0: 30 */
    curl_xferinfo_callback on_progress; /* non-zero return stops the transfer */
    void *progress_data;
    char *errbuf;                      /* CURL_ERROR_SIZE bytes, borrowed */
};

/* curl_easy_reset(e), then the shared options; guard (borrowed, must
 * outlive the transfer) records an address the rule refused. */
CURLcode net_easy_setup(CURL *e, struct net_guard *guard, const struct net_easy_opts *o);

/* "host:port:addr,host:port:addr" (CURLOPT_RESOLVE entries, for tests
 * that point a name at an address) as a list the caller frees with
 * curl_slist_free_all. */
struct curl_slist *net_resolve_list(const char *spec);

#endif
