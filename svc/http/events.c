/*
 * events.c - GET /v1/jobs/<id>/events: server-sent events.
 *
 * Each stream is a callback response. When the reader has nothing new to
 * send it suspends its connection (MHD_suspend_connection from the content
 * reader, returning 0), so no HTTP thread waits or spins for it; the
 * scheduler's observer (events_notify) marks the job's streams dirty and
 * resumes them. A resumed reader renders the job's current object once:
 * "event: status" when the status changed (and first), "event: progress"
 * otherwise; progress samples in between coalesce. After the event of a
 * final status the stream ends. events_shutdown resumes and ends all
 * streams before the daemon stops (MHD forbids stopping with suspended
 * connections).
 * A keep-alive thread resumes every stream every KEEPALIVE_S seconds to
 * send a comment line, so that a client that went away while its job
 * waited is noticed (the write fails) and its connection freed.
 *
 * Threading: one mutex (ev->lock) guards the list and every stream's
 * flags; it is never held while calling into the scheduler.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/internal.h"

enum { KEEPALIVE_S = 15 };

struct stream {
    struct events *ev;
    struct http_server *h;
    struct MHD_Connection *conn;
    char id[JOB_ID_SIZE];
    struct stream *prev, *next;
    int dirty, suspended, ending, ping;
    int last_status;          /* -1 before the first event */
    char *pending;            /* an event being sent */
    size_t pending_len, pending_off;
};

struct events {
    pthread_mutex_t lock;
    pthread_cond_t stop;
    struct stream *head;
    int shutting;
    pthread_t keepalive;
    int has_keepalive;
};

static void *keepalive_main(void *arg)
{
    struct events *ev = arg;
    pthread_mutex_lock(&ev->lock);
    while (!ev->shutting) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += KEEPALIVE_S;
        pthread_cond_timedwait(&ev->stop, &ev->lock, &ts);
        if (ev->shutting)
            break;
        for (struct stream *s = ev->head; s; s = s->next) {
            s->ping = 1;
            if (s->suspended) {
                s->suspended = 0;
                MHD_resume_connection(s->conn);
            }
        }
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

int events_create(struct events **out)
{
    struct events *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return -1;
    pthread_mutex_init(&ev->lock, NULL);
    pthread_cond_init(&ev->stop, NULL);
    if (pthread_create(&ev->keepalive, NULL, keepalive_main, ev) == 0)
        ev->has_keepalive = 1;
    *out = ev;
    return 0;
}

void events_free(struct events **pp)
{
    if (!pp || !*pp)
        return;
    struct events *ev = *pp;
    pthread_mutex_lock(&ev->lock);
    ev->shutting = 1;
    pthread_cond_broadcast(&ev->stop);
    pthread_mutex_unlock(&ev->lock);
    if (ev->has_keepalive)
        pthread_join(ev->keepalive, NULL);
    pthread_cond_destroy(&ev->stop);
    pthread_mutex_destroy(&ev->lock);
    free(ev);
    *pp = NULL;
}

void events_notify(struct events *ev, const char *job_id)
{
    pthread_mutex_lock(&ev->lock);
    for (struct stream *s = ev->head; s; s = s->next) {
        if (job_id && strcmp(s->id, job_id) != 0)
            continue;
        s->dirty = 1;
        if (s->suspended) {
            s->suspended = 0;
            MHD_resume_connection(s->conn);
        }
    }
    pthread_mutex_unlock(&ev->lock);
}

void events_shutdown(struct events *ev)
{
    pthread_mutex_lock(&ev->lock);
    ev->shutting = 1;
    pthread_cond_broadcast(&ev->stop);
    for (struct stream *s = ev->head; s; s = s->next)
        if (s->suspended) {
            s->suspended = 0;
            MHD_resume_connection(s->conn);
        }
    pthread_mutex_unlock(&ev->lock);
}

/* Render the next event into s->pending. Returns 0, or -1 to end. */
static int next_event(struct stream *s)
{
    char *json = NULL;
    size_t len = 0;
    enum job_status status;
    if (sched_job_json_status(s->h->sched, s->id, &json, &len, &status) != SCHED_OK)
        return -1;
    const char *name = (int)status != s->last_status ? "status" : "progress";
    size_t cap = len + 64;
    char *buf = malloc(cap);
    if (!buf) {
        free(json);
        return -1;
    }
    int n = snprintf(buf, cap, "event: %s\ndata: %s\n\n", name, json);
    free(json);
    free(s->pending);
    s->pending = buf;
    s->pending_len = n > 0 ? (size_t)n : 0;
    s->pending_off = 0;
    s->last_status = (int)status;
    if (job_status_is_final(status))
        s->ending = 1;
    return 0;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    struct events *ev = s->ev;
    for (;;) {
        if (s->pending_off < s->pending_len) {
            size_t n = s->pending_len - s->pending_off;
            if (n > max)
                n = max;
            memcpy(buf, s->pending + s->pending_off, n);
            s->pending_off += n;
            return (ssize_t)n;
        }
        pthread_mutex_lock(&ev->lock);
        int dirty = s->dirty, ending = s->ending, shutting = ev->shutting, ping = s->ping;
        s->dirty = 0;
        s->ping = 0;
        if (ping && !dirty && !ending && !shutting) {
            pthread_mutex_unlock(&ev->lock);
            static const char comment[] = ": keep-alive\n\n";
            free(s->pending);
            s->pending = strdup(comment);
            s->pending_len = s->pending ? sizeof(comment) - 1 : 0;
            s->pending_off = 0;
            continue;
        }
        if (!dirty && !ending && !shutting) {
            s->suspended = 1;
            MHD_suspend_connection(s->conn);
            pthread_mutex_unlock(&ev->lock);
            return 0;
        }
        pthread_mutex_unlock(&ev->lock);
        if (ending || shutting)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (next_event(s) < 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
    }
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    struct events *ev = s->ev;
    pthread_mutex_lock(&ev->lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        ev->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&ev->lock);
    free(s->pending);
    free(s);
}

enum MHD_Result events_handle(struct http_server *h, struct MHD_Connection *conn,
                              struct request *rq, const char *d, size_t *ds)
{
    const char *id = rq->params[0];
    char *json = NULL;
    if (!job_id_valid(id) || sched_job_json(h->sched, id, &json, NULL) != SCHED_OK)
        return http_fail(conn, "not_found", "no job with id '%s'", id);
    free(json);
    struct stream *s = calloc(1, sizeof(*s));
    if (!s)
        return MHD_NO;
    s->ev = h->events;
    s->h = h;
    s->conn = conn;
    s->dirty = 1;
    s->last_status = -1;
    memcpy(s->id, id, JOB_ID_SIZE); /* job_id_valid: exactly JOB_ID_LEN chars */
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, s, stream_free);
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    pthread_mutex_lock(&h->events->lock);
    s->next = h->events->head;
    if (s->next)
        s->next->prev = s;
    h->events->head = s;
    pthread_mutex_unlock(&h->events->lock);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}
