/* easy.c - see easy.h. */
#include "net/easy.h"

#include <stdio.h>
#include <string.h>

CURLcode net_easy_setup(CURL *e, struct net_guard *guard, const struct net_easy_opts *o)
{
    CURLcode rc = CURLE_OK;
    curl_easy_reset(e);
    if (o->errbuf)
        o->errbuf[0] = '\0';
    if (net_guard_attach(e, guard) != 0)
        return CURLE_BAD_FUNCTION_ARGUMENT;
    rc |= curl_easy_setopt(e, CURLOPT_URL, o->url);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS */
    if (o->headers)
        rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->headers);
    if (o->resolve)
        rc |= curl_easy_setopt(e, CURLOPT_RESOLVE, o->resolve);
    rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, o->user_agent);
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT,
                           o->connect_timeout_s > 0 ? o->connect_timeout_s : 10L);
    /* No overall timeout (a gigabyte may take long), but a stalled peer
     * is dropped and the caller retries. */
    rc |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                           o->stall_timeout_s > 0 ? o->stall_timeout_s : 30L);
    if (o->on_progress) {
        rc |= curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        rc |= curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, o->on_progress);
        rc |= curl_easy_setopt(e, CURLOPT_XFERINFODATA, o->progress_data);
    }
    if (o->errbuf)
        rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, o->errbuf);
    return rc;
}

struct curl_slist *net_resolve_list(const char *spec)
{
    struct curl_slist *list = NULL;
    char entry[512];
    for (const char *r = spec; r && *r;) {
        size_t len = strcspn(r, ",");
        snprintf(entry, sizeof(entry), "%.*s", (int)len, r);
        struct curl_slist *l = curl_slist_append(list, entry);
        if (!l)
            break;
        list = l;
        r += len + (r[len] == ',');
    }
    return list;
}
