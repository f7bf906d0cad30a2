/*
 * store.c - the store.h calls, forwarded to the backend that the URL's
 * scheme names: "sqlite:<path>" (sqlite.c) or "postgres://..." /
 * "postgresql://..." (pg.c). See backend.h.
 */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "store/hook_event.h"
#include "store/backend.h"

const char *store_strerror(int code)
{
    switch (code) {
    case STORE_OK: return "ok";
    case STORE_ENOTFOUND: return "no such job";
    case STORE_ECONFLICT: return "the job is not in a state that allows this";
    case STORE_EIO: return "database error";
    case STORE_ENOMEM: return "out of memory";
    case STORE_EINVAL: return "invalid argument";
    default: return "unknown store error";
    }
}

int store_open(const char *url, struct store **out, char *err, size_t errlen)
{
    const struct store_ops *ops = NULL;
    *out = NULL;
    if (!url)
        url = "";
    if (strncmp(url, "sqlite:", 7) == 0)
        ops = &store_sqlite_ops;
    else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        ops = &store_pg_ops;
    if (!ops) {
        snprintf(err, errlen,
                 "unsupported store URL '%s' (expected sqlite:<path> or postgres://...)", url);
        return STORE_EINVAL;
    }
    int rc = ops->open(url, out, err, errlen);
    if (rc == STORE_OK) {
        (*out)->ops = ops;
        log_info("job store open backend=%s", ops->name); /* not the URL: it may hold a password */
    }
    return rc;
}

void store_close(struct store **pp)
{
    if (!pp || !*pp)
        return;
    (*pp)->ops->close(*pp);
    *pp = NULL;
}

int store_job_create(struct store *st, struct job *job)
{
    return st->ops->job_create(st, job);
}

int store_job_create_failed(struct store *st, struct job *job)
{
    return st->ops->job_create_failed(st, job);
}

int store_job_claim_next(struct store *st, struct job **out)
{
    return st->ops->job_claim_next(st, out);
}

int store_job_progress(struct store *st, const char *id, const struct job_progress *p)
{
    return st->ops->job_progress(st, id, p);
}

int store_job_finish(struct store *st, const char *id, enum job_status status,
                     const char *error_code, const char *error_message, const char *results_json)
{
    if (!job_status_is_final(status))
        return STORE_EINVAL;
    return st->ops->job_finish(st, id, status, error_code, error_message, results_json);
}

int store_job_cancel_queued(struct store *st, const char *id)
{
    return st->ops->job_cancel_queued(st, id);
}

int store_job_requeue(struct store *st, const char *id)
{
    return st->ops->job_requeue(st, id);
}

int store_requeue_running(struct store *st, void (*fn)(void *opaque, const char *id),
                          void *opaque)
{
    return st->ops->requeue_running(st, fn, opaque);
}

int store_job_get(struct store *st, const char *id, struct job **out)
{
    return st->ops->job_get(st, id, out);
}

int store_job_list(struct store *st, int status, int64_t before_seq, int limit,
                   int (*fn)(void *opaque, const struct job *job), void *opaque)
{
    return st->ops->job_list(st, status, before_seq, limit, fn, opaque);
}

int store_job_list_active(struct store *st, int (*fn)(void *opaque, const struct job *job),
                          void *opaque)
{
    return st->ops->job_list_active(st, fn, opaque);
}

int store_count_by_status(struct store *st, int64_t counts[5])
{
    return st->ops->count_by_status(st, counts);
}

int store_webhook_add(struct store *st, const char *job_id, const char *url, int events,
                      struct store_webhook *out, int *queued)
{
    return st->ops->webhook_add(st, job_id, url, events, out, queued);
}

int store_webhook_list(struct store *st, const char *job_id,
                       int (*fn)(void *opaque, const struct store_webhook *w), void *opaque)
{
    return st->ops->webhook_list(st, job_id, fn, opaque);
}

int store_webhook_delete(struct store *st, const char *id)
{
    return st->ops->webhook_delete(st, id);
}

int store_delivery_pending(struct store *st, int64_t after_seq, int limit,
                           int (*fn)(void *opaque, const struct store_delivery *d), void *opaque)
{
    return st->ops->delivery_pending(st, after_seq, limit, fn, opaque);
}

int store_delivery_attempt(struct store *st, const struct store_attempt *a)
{
    return st->ops->delivery_attempt(st, a);
}

int store_delivery_list(struct store *st, const char *job_id,
                        int (*fn_delivery)(void *opaque, const struct store_delivery *d),
                        int (*fn_attempt)(void *opaque, const struct store_attempt *a),
                        void *opaque)
{
    return st->ops->delivery_list(st, job_id, fn_delivery, fn_attempt, opaque);
}

int store_is_shared(const struct store *st)
{
    return st->ops->node_id != NULL;
}

const char *store_node_id(const struct store *st)
{
    return st->ops->node_id ? st->ops->node_id(st) : "";
}

void store_set_node_lease(struct store *st, double seconds)
{
    if (st->ops->set_node_lease)
        st->ops->set_node_lease(st, seconds < 1 ? 1 : seconds);
}

int store_job_cancel_request(struct store *st, const char *id, int *running)
{
    *running = 0;
    return st->ops->job_cancel_request ? st->ops->job_cancel_request(st, id, running)
                                       : STORE_EINVAL;
}

int store_cancel_requested(struct store *st, void (*fn)(void *opaque, const char *id),
                           void *opaque)
{
    return st->ops->cancel_requested ? st->ops->cancel_requested(st, fn, opaque) : STORE_EINVAL;
}

int store_queue_position(struct store *st, const char *id, long *pos)
{
    *pos = 0;
    return st->ops->queue_position ? st->ops->queue_position(st, id, pos) : STORE_EINVAL;
}

int store_delivery_release(struct store *st, int64_t seq)
{
    return st->ops->delivery_release ? st->ops->delivery_release(st, seq) : STORE_OK;
}

int store_job_get_position(struct store *st, const char *id, struct job **out, long *pos)
{
    *pos = 0;
    if (!st->ops->job_get_position)
        return st->ops->job_get(st, id, out);
    return st->ops->job_get_position(st, id, out, pos);
}

int store_new_webhook_id(char id[STORE_WEBHOOK_ID_SIZE])
{
    return hook_id_new("wh_", id, STORE_WEBHOOK_ID_SIZE) == 0 ? STORE_OK : STORE_EIO;
}
