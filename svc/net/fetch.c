/* fetch.c - see fetch.h for the design. */
#define _GNU_SOURCE
#include "net/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "net/easy.h"

#ifndef VIDQ_VERSION
#define VIDQ_VERSION "dev"
#endif

enum { BACKOFF_FIRST_MS = 500, BACKOFF_MAX_MS = 8000 };

/* One transfer: the file and what the answer said. */
struct attempt {
    const struct net_fetch_params *p;
    CURL *easy;
    int fd;
    int64_t start;     /* bytes on disk when the transfer began */
    int64_t have;      /* bytes on disk now */
    int64_t total;     /* announced size, -1 unknown */
    int checked;       /* the answer's status was looked at */
    long bad_status;   /* an answer that is not the body: 3xx..5xx */
    int too_large;
    int io_error;
};

const char *net_fetch_code(int status)
{
    switch (status) {
    case NET_FETCH_OK: return "ok";
    case NET_FETCH_REFUSED: return "input_refused";
    case NET_FETCH_UNREACHABLE: return "input_unreachable";
    case NET_FETCH_TOO_LARGE: return "too_large";
    case NET_FETCH_CANCELED: return "canceled";
    default: return "internal_error";
    }
}

/* The first chunk of an answer: is it the body we asked for, of a size
 * we take? 0 to go on, -1 to stop the transfer. */
static int check_answer(struct attempt *a)
{
    long status = 0;
    curl_off_t len = -1;
    a->checked = 1;
    curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 && status != 206) {
        a->bad_status = status;
        return -1;
    }
    curl_easy_getinfo(a->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
    a->total = len >= 0 ? a->start + (int64_t)len : -1;
    if (a->p->max_bytes > 0 && a->total > a->p->max_bytes) {
        a->too_large = 1;
        return -1;
    }
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct attempt *a = userdata;
    size_t n = size * nmemb;
    if (!a->checked && check_answer(a) < 0)
        return 0;
    if (a->p->max_bytes > 0 && a->have + (int64_t)n > a->p->max_bytes) {
        a->too_large = 1;
        return 0;
    }
    for (size_t done = 0; done < n;) {
        ssize_t w = write(a->fd, ptr + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            a->io_error = errno ? errno : EIO;
            return 0;
        }
        done += (size_t)w;
        a->have += w;
    }
    return n;
}

static int on_xfer(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    struct attempt *a = clientp;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (a->p->on_progress && a->p->on_progress(a->p->ctx, a->have, a->total) != 0)
        return 1;
    return 0;
}

/* Empty the file: the server sends the whole body again. */
static int restart_file(struct attempt *a)
{
    if (ftruncate(a->fd, 0) < 0 || lseek(a->fd, 0, SEEK_SET) < 0)
        return -1;
    a->have = 0;
    return 0;
}

/* Sleep ms, asking on_progress every 100 ms. 1 if it asked to stop. */
static int backoff(const struct net_fetch_params *p, int64_t have, int64_t total, unsigned ms)
{
    for (unsigned slept = 0; slept < ms; slept += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        if (p->on_progress && p->on_progress(p->ctx, have, total) != 0)
            return 1;
    }
    return 0;
}

/* A failure that another transfer may cure. */
static int retryable(CURLcode rc, long bad_status)
{
    if (bad_status)
        return bad_status >= 500 || bad_status == 408 || bad_status == 429;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

int net_fetch(const struct net_fetch_params *p, struct net_fetch_result *res)
{
    struct attempt a = {.p = p, .fd = -1, .total = -1};
    struct net_guard guard = {.rule = p->rule};
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *headers = NULL, *resolve = NULL;
    struct stat st;
    int ret = NET_FETCH_UNREACHABLE;
    unsigned failures = 0, restarts = 0;

    memset(res, 0, sizeof(*res));
    res->total = -1;
    if (net_url_check(p->url, "input_url", res->error, sizeof(res->error)) != 0) {
        ret = NET_FETCH_REFUSED;
        goto out;
    }
    a.fd = open(p->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (a.fd < 0 || fstat(a.fd, &st) < 0 || lseek(a.fd, 0, SEEK_END) < 0) {
        snprintf(res->error, sizeof(res->error), "cannot write the download: %s", strerror(errno));
        ret = NET_FETCH_IO;
        goto out;
    }
    a.have = st.st_size;
    if (p->max_bytes > 0 && a.have > p->max_bytes) {
        snprintf(res->error, sizeof(res->error), "the input is larger than %" PRId64 " bytes",
                 p->max_bytes);
        ret = NET_FETCH_TOO_LARGE;
        goto out;
    }
    headers = curl_slist_append(NULL, "Accept-Encoding: identity");
    resolve = net_resolve_list(p->resolve);
    a.easy = curl_easy_init();
    if (!headers || !a.easy) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        ret = NET_FETCH_IO;
        goto out;
    }

    for (;;) {
        CURL *e = a.easy;
        CURLcode rc = CURLE_OK;
        a.start = a.have;
        a.checked = 0;
        a.bad_status = 0;
        a.too_large = a.io_error = 0;
        struct net_easy_opts o = {
            .url = p->url,
            .user_agent = "vidq-fetch/" VIDQ_VERSION,
            .headers = headers,
            .resolve = resolve,
            .connect_timeout_s = p->connect_timeout_s,
            .stall_timeout_s = p->stall_timeout_s,
            .on_progress = on_xfer,
            .progress_data = &a,
            .errbuf = errbuf,
        };
        rc = net_easy_setup(e, &guard, &o);
        rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        rc |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)NET_FETCH_MAX_REDIRECTS);
        rc |= curl_easy_setopt(e, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)a.start);
        rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, &a);
        if (rc != CURLE_OK) {
            snprintf(res->error, sizeof(res->error), "cannot set up the download");
            ret = NET_FETCH_IO;
            goto out;
        }
        res->attempts++;
        if (a.start > 0)
            res->resumes++;
        log_info("fetch start url_attempt=%u range_from=%" PRId64, res->attempts, a.start);
        rc = curl_easy_perform(e);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        res->http_status = status;
        if (rc == CURLE_OK && !a.checked && status != 200 && status != 206)
            a.bad_status = status; /* an error answer without a body */
        if (rc == CURLE_OK && !a.bad_status) {
            if (a.total < 0 || a.have == a.total) {
                ret = NET_FETCH_OK;
                goto out;
            }
            rc = CURLE_PARTIAL_FILE; /* shorter than announced */
        }
        if (rc == CURLE_ABORTED_BY_CALLBACK) {
            snprintf(res->error, sizeof(res->error), "the download was stopped");
            ret = NET_FETCH_CANCELED;
            goto out;
        }
        if (a.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
            snprintf(res->error, sizeof(res->error), "the input is larger than %" PRId64 " bytes",
                     p->max_bytes);
            ret = NET_FETCH_TOO_LARGE;
            goto out;
        }
        if (a.io_error) {
            snprintf(res->error, sizeof(res->error), "cannot write the download: %s",
                     strerror(a.io_error));
            ret = NET_FETCH_IO;
            goto out;
        }
        if (guard.blocked && rc == CURLE_COULDNT_CONNECT) {
            snprintf(res->error, sizeof(res->error),
                     "address %s is not allowed (--fetch-targets)", guard.blocked_addr);
            ret = NET_FETCH_REFUSED;
            goto out;
        }
        if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
            snprintf(res->error, sizeof(res->error), "input_url led to a scheme other than http or https");
            ret = NET_FETCH_REFUSED;
            goto out;
        }
        /* The server ignored or refused our Range: take the whole body. */
        if (a.start > 0 && (rc == CURLE_RANGE_ERROR || a.bad_status == 416) && restarts++ < 2) {
            log_info("fetch restarts from 0: the server %s",
                     a.bad_status == 416 ? "answered 416" : "ignores Range");
            if (restart_file(&a) < 0) {
                snprintf(res->error, sizeof(res->error), "cannot write the download: %s", strerror(errno));
                ret = NET_FETCH_IO;
                goto out;
            }
            continue;
        }
        if (a.bad_status)
            snprintf(res->error, sizeof(res->error), "input_url answered HTTP %ld", a.bad_status);
        else if (rc == CURLE_TOO_MANY_REDIRECTS)
            snprintf(res->error, sizeof(res->error), "input_url redirected more than %d times",
                     NET_FETCH_MAX_REDIRECTS);
        else
            snprintf(res->error, sizeof(res->error), "cannot download input_url: %s",
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        if (!retryable(rc, a.bad_status)) {
            ret = NET_FETCH_UNREACHABLE;
            goto out;
        }
        failures = a.have > a.start ? 1 : failures + 1; /* progress resets the count */
        if (failures > p->max_retries) {
            ret = NET_FETCH_UNREACHABLE;
            goto out;
        }
        unsigned ms = BACKOFF_FIRST_MS << (failures - 1 < 4 ? failures - 1 : 4);
        log_info("fetch retry in %ums: %s (have=%" PRId64 ")", ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms,
                 res->error, a.have);
        if (backoff(p, a.have, a.total, ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms)) {
            snprintf(res->error, sizeof(res->error), "the download was stopped");
            ret = NET_FETCH_CANCELED;
            goto out;
        }
    }
out:
    if (ret == NET_FETCH_OK)
        res->error[0] = '\0';
    res->bytes = a.have;
    res->total = a.total;
    if (a.easy)
        curl_easy_cleanup(a.easy);
    curl_slist_free_all(headers);
    curl_slist_free_all(resolve);
    if (a.fd >= 0 && close(a.fd) < 0 && ret == NET_FETCH_OK) {
        snprintf(res->error, sizeof(res->error), "cannot write the download: %s", strerror(errno));
        ret = NET_FETCH_IO;
    }
    return ret;
}
