/*
 * conns.c - the connection guard (see conns.h).
 *
 * DESIGN
 *   What happens without it (measured, MHD 0.9.75, thread pool on epoll):
 *   slow or idle connections cost no thread (each pool thread polls many
 *   sockets), so answers stay fast while there are free slots. But
 *   MHD's timeout is an idle one that each byte restarts, so 1024
 *   connections trickling a header byte a second from 4 addresses (under
 *   the per-address cap) hold every slot for ever: MHD stops accepting and
 *   GET /healthz from anyone else waits in the kernel's backlog until the
 *   client gives up.
 *   States: a connection is waiting for a head (list `fresh`: its first
 *   request; list `kept`: a later one on a kept-alive connection), or
 *   receiving a request body (list `body`), or in a request otherwise (no
 *   list: the handler's work and the answer are MHD's idle timeout's
 *   business), or doomed (closed by the guard, not yet by MHD). The head
 *   lists are ordered by the time the wait began, so the oldest is the
 *   head of a list.
 *   Rules: the reaper closes a fresh connection header_timeout after it
 *   began waiting and a kept one idle_timeout after (trickled bytes do not
 *   restart either clock), and a body that averages under BODY_MIN_RATE
 *   once header_timeout has passed since its head. Past the soft limit (the cap minus a reserve of
 *   a sixteenth) each new connection closes one waiting connection, kept
 *   ones first (an idle kept-alive connection may be closed at any time;
 *   clients retry), then the oldest fresh one. A client that sends its
 *   head at once is in a request within a millisecond and is never the
 *   oldest waiter, so it is served whatever the flood.
 *   Threads: MHD's pool threads call the notification and the request
 *   hooks; one reaper thread runs every REAP_MS. One mutex guards the
 *   lists. A connection is closed by shutdown(2) of its socket: MHD reads
 *   the end of the stream and closes it in its own thread. That is safe
 *   because MHD calls the CLOSED notification, which unlinks the entry
 *   under the mutex, before it closes the socket: under the mutex a
 *   linked entry's fd is still its connection's.
 */
#define _GNU_SOURCE
#include "http/conns.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"

/* A request body must average BODY_MIN_RATE bytes a second from its head
 * on, once header_timeout has passed: a body trickled a byte a second
 * (slowloris on the body, "R.U.D.Y.") would else hold its slot for ever
 * too. 1 KiB/s is far below any real upload link (a 2G mobile link does
 * a few KB/s) and above any trickle that could hold many slots cheaply. */
enum { REAP_MS = 200, BODY_MIN_RATE = 1024 };

enum conn_list { LIST_NONE = 0, LIST_FRESH, LIST_KEPT, LIST_BODY };

struct conn {
    struct conn *prev, *next;
    int fd;
    enum conn_list list;
    int doomed;
    double since;      /* when the wait for a head began, or the head came */
    int64_t body;      /* LIST_BODY: body bytes received so far */
};

struct list {
    struct conn *head, *tail;
};

struct conns {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* wakes the reaper to stop */
    pthread_t reaper;
    int reaper_started;
    int stop;
    double header_timeout, idle_timeout;
    unsigned soft_limit;
    unsigned open, doomed;
    struct list fresh, kept, body;
    atomic_llong header_timeouts, evicted, slow_bodies;
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct list *list_of(struct conns *c, enum conn_list l)
{
    switch (l) {
    case LIST_FRESH: return &c->fresh;
    case LIST_KEPT: return &c->kept;
    case LIST_BODY: return &c->body;
    default: return NULL;
    }
}

static void unlink_conn(struct conns *c, struct conn *e)
{
    struct list *l = list_of(c, e->list);
    if (!l)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    e->list = LIST_NONE;
}

static void append(struct conns *c, struct conn *e, enum conn_list which, double since)
{
    struct list *l = list_of(c, which);
    unlink_conn(c, e);
    e->since = since;
    e->list = which;
    e->prev = l->tail;
    e->next = NULL;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
}

/* Close e's connection (lock held). MHD notices the end of the stream in
 * its thread; the entry is freed by the CLOSED notification. */
static void doom(struct conns *c, struct conn *e)
{
    unlink_conn(c, e);
    if (e->doomed)
        return;
    e->doomed = 1;
    c->doomed++;
    /* Only shut down, never close: the fd stays MHD's. */
    if (shutdown(e->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
        log_debug("http: shutdown of a connection failed: %s", strerror(errno));
}

static void *reaper_main(void *arg)
{
    struct conns *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)REAP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
        double now = now_mono();
        int n = 0;
        while (c->fresh.head && c->fresh.head->since + c->header_timeout <= now) {
            doom(c, c->fresh.head);
            n++;
        }
        while (c->kept.head && c->kept.head->since + c->idle_timeout <= now)
            doom(c, c->kept.head);
        /* Bodies are not ordered by their deadline (it moves with each
         * byte): walk them all; there are at most --max-connections. */
        for (struct conn *e = c->body.head, *next; e; e = next) {
            next = e->next;
            double age = now - e->since;
            if (age > c->header_timeout && (double)e->body < BODY_MIN_RATE * age) {
                doom(c, e);
                atomic_fetch_add(&c->slow_bodies, 1);
            }
        }
        if (n) {
            atomic_fetch_add(&c->header_timeouts, n);
            log_debug("http: closed %d connections without a request head in %.0f s", n,
                      c->header_timeout);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int conns_create(double header_timeout_s, double idle_timeout_s, unsigned max_connections,
                 struct conns **out)
{
    int ret = -1;
    struct conns *c = calloc(1, sizeof(*c));
    pthread_condattr_t ca;
    int ca_init = 0;
    if (!c)
        goto out;
    c->header_timeout = header_timeout_s;
    c->idle_timeout = idle_timeout_s;
    unsigned reserve = max_connections / 16;
    if (reserve < 1)
        reserve = 1;
    c->soft_limit = max_connections > reserve ? max_connections - reserve : 1;
    if (pthread_condattr_init(&ca) != 0)
        goto out;
    ca_init = 1;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&c->cond, &ca) != 0)
        goto out;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        pthread_cond_destroy(&c->cond);
        goto out;
    }
    if (pthread_create(&c->reaper, NULL, reaper_main, c) != 0) {
        log_error("http: cannot start the connection reaper thread");
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        goto out;
    }
    c->reaper_started = 1;
    *out = c;
    c = NULL;
    ret = 0;
out:
    if (ca_init)
        pthread_condattr_destroy(&ca);
    free(c);
    return ret;
}

void conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code)
{
    struct conns *c = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn *e = calloc(1, sizeof(*e));
        if (!e || !ci) { /* unguarded: MHD's own limits still apply */
            free(e);
            *socket_context = NULL;
            return;
        }
        e->fd = ci->connect_fd;
        double now = now_mono();
        pthread_mutex_lock(&c->lock);
        c->open++;
        if (c->open - c->doomed > c->soft_limit) {
            struct conn *victim = c->kept.head ? c->kept.head : c->fresh.head;
            if (victim) {
                doom(c, victim);
                atomic_fetch_add(&c->evicted, 1);
            }
        }
        append(c, e, LIST_FRESH, now);
        pthread_mutex_unlock(&c->lock);
        *socket_context = e;
        return;
    }
    struct conn *e = *socket_context;
    if (code != MHD_CONNECTION_NOTIFY_CLOSED || !e)
        return;
    pthread_mutex_lock(&c->lock);
    unlink_conn(c, e);
    c->open--;
    if (e->doomed)
        c->doomed--;
    pthread_mutex_unlock(&c->lock);
    free(e);
    *socket_context = NULL;
}

static struct conn *entry_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void conns_request_begin(struct conns *c, struct MHD_Connection *conn, int has_body)
{
    struct conn *e = c ? entry_of(conn) : NULL;
    if (!e)
        return;
    double now = now_mono();
    pthread_mutex_lock(&c->lock);
    unlink_conn(c, e);
    if (has_body && !e->doomed) { /* its pace counts from the head on */
        append(c, e, LIST_BODY, now);
        e->body = 0;
    }
    pthread_mutex_unlock(&c->lock);
}

void conns_body_bytes(struct conns *c, struct MHD_Connection *conn, size_t n)
{
    struct conn *e = c ? entry_of(conn) : NULL;
    if (!e)
        return;
    pthread_mutex_lock(&c->lock);
    if (e->list == LIST_BODY)
        e->body += (int64_t)n;
    pthread_mutex_unlock(&c->lock);
}

void conns_body_end(struct conns *c, struct MHD_Connection *conn)
{
    struct conn *e = c ? entry_of(conn) : NULL;
    if (!e)
        return;
    pthread_mutex_lock(&c->lock);
    if (e->list == LIST_BODY)
        unlink_conn(c, e);
    pthread_mutex_unlock(&c->lock);
}

void conns_request_end(struct conns *c, struct MHD_Connection *conn)
{
    struct conn *e = c ? entry_of(conn) : NULL;
    if (!e)
        return;
    double now = now_mono();
    pthread_mutex_lock(&c->lock);
    if (!e->doomed)
        append(c, e, LIST_KEPT, now);
    pthread_mutex_unlock(&c->lock);
}

void conns_get_counters(struct conns *c, struct conns_counters *out)
{
    memset(out, 0, sizeof(*out));
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    out->open = c->open;
    pthread_mutex_unlock(&c->lock);
    out->header_timeouts = atomic_load(&c->header_timeouts);
    out->evicted = atomic_load(&c->evicted);
    out->slow_bodies = atomic_load(&c->slow_bodies);
}

void conns_free(struct conns **pp)
{
    if (!pp || !*pp)
        return;
    struct conns *c = *pp;
    if (c->reaper_started) {
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->reaper, NULL);
    }
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
    *pp = NULL;
}
