/* put.c - see put.h for the design. */
#define _GNU_SOURCE
#include "net/put.h"

#include <errno.h>
#include <fcntl.h>
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

/* One try: the file being read and where it stands. */
struct send {
    const struct net_put_params *p;
    int fd;
    int64_t size;
    int64_t sent;
    int io_error;
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct send *s = userdata;
    size_t want = size * nitems;
    for (;;) {
        ssize_t n = read(s->fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s->io_error = errno ? errno : EIO;
            return CURL_READFUNC_ABORT;
        }
        s->sent += n;
        return (size_t)n;
    }
}

/* The receiver's answer body is not wanted (an error page at most). */
static size_t on_answer(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

/* libcurl rewinds the body when it must send it again on the same try. */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
    struct send *s = userdata;
    if (origin != SEEK_SET || lseek(s->fd, (off_t)offset, SEEK_SET) < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    s->sent = offset;
    return CURL_SEEKFUNC_OK;
}

static int on_xfer(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    struct send *s = clientp;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (s->p->on_progress && s->p->on_progress(s->p->ctx, s->sent, s->size) != 0)
        return 1;
    return 0;
}

/* Sleep ms, asking on_progress every 100 ms. 1 if it asked to stop. */
static int backoff(const struct net_put_params *p, int64_t size, unsigned ms)
{
    for (unsigned slept = 0; slept < ms; slept += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        if (p->on_progress && p->on_progress(p->ctx, 0, size) != 0)
            return 1;
    }
    return 0;
}

/* A failure that another try may cure. */
static int retryable(CURLcode rc, long status)
{
    if (rc == CURLE_OK)
        return status >= 500 || status == 408 || status == 429;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

int net_put(const struct net_put_params *p, struct net_put_result *res)
{
    struct send s = {.p = p, .fd = -1};
    struct net_guard guard = {.rule = p->rule};
    char errbuf[CURL_ERROR_SIZE];
    char ctype[160];
    struct curl_slist *headers = NULL, *resolve = NULL;
    CURL *e = NULL;
    struct stat st;
    int ret = NET_PUT_FAILED;
    unsigned tries = p->tries > 0 ? p->tries : 1;

    memset(res, 0, sizeof(*res));
    if (net_url_check(p->url, "upload_url", res->error, sizeof(res->error)) != 0) {
        ret = NET_PUT_REFUSED;
        goto out;
    }
    s.fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (s.fd < 0 || fstat(s.fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(res->error, sizeof(res->error), "cannot read the output: %s",
                 s.fd < 0 ? strerror(errno) : "not a file");
        ret = NET_PUT_IO;
        goto out;
    }
    s.size = res->size = st.st_size;
    snprintf(ctype, sizeof(ctype), "Content-Type: %s",
             p->content_type ? p->content_type : "application/octet-stream");
    headers = curl_slist_append(NULL, ctype);
    if (headers) {
        /* No "Expect: 100-continue": one round trip less, and receivers
         * that ignore it would cost a 1 s wait on every file. */
        struct curl_slist *l = curl_slist_append(headers, "Expect:");
        headers = l ? l : headers;
    }
    resolve = net_resolve_list(p->resolve);
    e = curl_easy_init();
    if (!headers || !e) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        ret = NET_PUT_IO;
        goto out;
    }

    for (;;) {
        CURLcode rc = CURLE_OK;
        long status = 0;
        s.sent = 0;
        s.io_error = 0;
        if (lseek(s.fd, 0, SEEK_SET) < 0) {
            snprintf(res->error, sizeof(res->error), "cannot read the output: %s", strerror(errno));
            ret = NET_PUT_IO;
            goto out;
        }
        struct net_easy_opts o = {
            .url = p->url,
            .user_agent = "vidq-deliver/" VIDQ_VERSION,
            .headers = headers,
            .resolve = resolve,
            .connect_timeout_s = p->connect_timeout_s,
            .stall_timeout_s = p->stall_timeout_s,
            .on_progress = on_xfer,
            .progress_data = &s,
            .errbuf = errbuf,
        };
        rc = net_easy_setup(e, &guard, &o);
        rc |= curl_easy_setopt(e, CURLOPT_UPLOAD, 1L); /* PUT */
        rc |= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)s.size);
        rc |= curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        rc |= curl_easy_setopt(e, CURLOPT_READDATA, &s);
        rc |= curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        rc |= curl_easy_setopt(e, CURLOPT_SEEKDATA, &s);
        rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
        rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        if (rc != CURLE_OK) {
            snprintf(res->error, sizeof(res->error), "cannot set up the delivery");
            ret = NET_PUT_IO;
            goto out;
        }
        res->tries++;
        rc = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        res->http_status = status;
        if (rc == CURLE_OK && status >= 200 && status < 300) {
            ret = NET_PUT_OK;
            goto out;
        }
        if (rc == CURLE_ABORTED_BY_CALLBACK) {
            snprintf(res->error, sizeof(res->error), "the delivery was stopped");
            ret = NET_PUT_CANCELED;
            goto out;
        }
        if (s.io_error) {
            snprintf(res->error, sizeof(res->error), "cannot read the output: %s",
                     strerror(s.io_error));
            ret = NET_PUT_IO;
            goto out;
        }
        if (guard.blocked && rc == CURLE_COULDNT_CONNECT) {
            snprintf(res->error, sizeof(res->error), "address %s is not allowed (--fetch-targets)",
                     guard.blocked_addr);
            ret = NET_PUT_REFUSED;
            goto out;
        }
        if (rc == CURLE_OK && status >= 300 && status < 400) {
            snprintf(res->error, sizeof(res->error),
                     "upload_url answered a redirect (HTTP %ld); a PUT does not follow redirects",
                     status);
            ret = NET_PUT_FAILED;
            goto out;
        }
        if (rc == CURLE_OK)
            snprintf(res->error, sizeof(res->error), "upload_url answered HTTP %ld", status);
        else
            snprintf(res->error, sizeof(res->error), "cannot send to upload_url: %s",
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        if (!retryable(rc, status) || res->tries >= tries) {
            ret = NET_PUT_FAILED;
            goto out;
        }
        unsigned ms = BACKOFF_FIRST_MS << (res->tries - 1 < 4 ? res->tries - 1 : 4);
        if (ms > BACKOFF_MAX_MS)
            ms = BACKOFF_MAX_MS;
        log_info("deliver retry in %ums: %s", ms, res->error);
        if (backoff(p, s.size, ms)) {
            snprintf(res->error, sizeof(res->error), "the delivery was stopped");
            ret = NET_PUT_CANCELED;
            goto out;
        }
    }
out:
    if (ret == NET_PUT_OK)
        res->error[0] = '\0';
    if (e)
        curl_easy_cleanup(e);
    curl_slist_free_all(headers);
    curl_slist_free_all(resolve);
    if (s.fd >= 0)
        close(s.fd);
    return ret;
}
