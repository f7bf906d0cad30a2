/* offload.c - a request's slow step off the HTTP threads (see offload.h). */
#include "http/offload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct task {
    struct offload *o;
    struct MHD_Connection *conn;
    void (*step)(void *arg);
    void *arg;
};

void offload_init(struct offload *o, int limit)
{
    memset(o, 0, sizeof(*o));
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->ended, NULL);
    pthread_cond_init(&o->turn, NULL);
    o->limit = limit > 0 ? limit : 1;
}

void offload_destroy(struct offload *o)
{
    pthread_cond_destroy(&o->turn);
    pthread_cond_destroy(&o->ended);
    pthread_mutex_destroy(&o->lock);
}

static void run(struct task *t)
{
    struct offload *o = t->o;
    pthread_mutex_lock(&o->lock);
    while (o->running >= o->limit)
        pthread_cond_wait(&o->turn, &o->lock);
    o->running++;
    pthread_mutex_unlock(&o->lock);
    t->step(t->arg);
    pthread_mutex_lock(&o->lock);
    o->running--;
    pthread_cond_signal(&o->turn);
    pthread_mutex_unlock(&o->lock);
    /* The request's state is the HTTP thread's again from here. */
    MHD_resume_connection(t->conn);
    free(t);
}

static void *task_main(void *arg)
{
    run(arg);
    return NULL;
}

void offload_start(struct offload *o, struct MHD_Connection *conn, void (*step)(void *arg),
                   void *arg)
{
    pthread_mutex_lock(&o->lock);
    o->pending++;
    pthread_mutex_unlock(&o->lock);
    MHD_suspend_connection(conn);
    struct task *t = malloc(sizeof(*t));
    if (!t) {
        log_warn("offload: out of memory; the step runs in the HTTP thread");
        step(arg);
        MHD_resume_connection(conn);
        return;
    }
    *t = (struct task){o, conn, step, arg};
    pthread_attr_t attr;
    pthread_t th;
    int started = pthread_attr_init(&attr) == 0 &&
                  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                  pthread_create(&th, &attr, task_main, t) == 0;
    pthread_attr_destroy(&attr);
    if (!started) {
        log_warn("offload: no thread (%s); the step runs in the HTTP thread", strerror(errno));
        run(t);
    }
}

void offload_end(struct offload *o)
{
    pthread_mutex_lock(&o->lock);
    if (--o->pending == 0)
        pthread_cond_broadcast(&o->ended);
    pthread_mutex_unlock(&o->lock);
}

void offload_wait(struct offload *o)
{
    pthread_mutex_lock(&o->lock);
    while (o->pending > 0)
        pthread_cond_wait(&o->ended, &o->lock);
    pthread_mutex_unlock(&o->lock);
}
