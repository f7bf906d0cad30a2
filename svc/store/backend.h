/*
 * backend.h - what a job store backend provides (internal to
 * the svc/store/ backends; callers use store.h only).
 *
 * store.c picks the backend by the URL's scheme and forwards every
 * store.h call through the backend's ops table. A backend's handle embeds
 * struct store as its first member, so the backend casts the struct store *
 * it is given back to its own type. Each op has the contract of the
 * store.h function of the same name.
 */
#ifndef VIDQ_STORE_BACKEND_H
#define VIDQ_STORE_BACKEND_H

#include "store/store.h"

struct store_ops {
    const char *name; /* "sqlite", "postgres" (logs) */
    int (*open)(const char *url, struct store **out, char *err, size_t errlen);
    void (*close)(struct store *st);
    int (*job_create)(struct store *st, struct job *job);
    int (*job_create_failed)(struct store *st, struct job *job);
    int (*job_claim_next)(struct store *st, struct job **out);
    int (*job_progress)(struct store *st, const char *id, const struct job_progress *p);
    int (*job_finish)(struct store *st, const char *id, enum job_status status,
                      const char *error_code, const char *error_message,
                      const char *results_json);
    int (*job_cancel_queued)(struct store *st, const char *id);
    int (*job_requeue)(struct store *st, const char *id);
    int (*requeue_running)(struct store *st, void (*fn)(void *opaque, const char *id),
                           void *opaque);
    int (*job_get)(struct store *st, const char *id, struct job **out);
    int (*job_list)(struct store *st, int status, int64_t before_seq, int limit,
                    int (*fn)(void *opaque, const struct job *job), void *opaque);
    int (*job_list_active)(struct store *st, int (*fn)(void *opaque, const struct job *job),
                           void *opaque);
    int (*count_by_status)(struct store *st, int64_t counts[5]);
    int (*webhook_add)(struct store *st, const char *job_id, const char *url, int events,
                       struct store_webhook *out, int *queued);
    int (*webhook_list)(struct store *st, const char *job_id,
                        int (*fn)(void *opaque, const struct store_webhook *w), void *opaque);
    int (*webhook_delete)(struct store *st, const char *id);
    int (*delivery_pending)(struct store *st, int64_t after_seq, int limit,
                            int (*fn)(void *opaque, const struct store_delivery *d),
                            void *opaque);
    int (*delivery_attempt)(struct store *st, const struct store_attempt *a);
    int (*delivery_list)(struct store *st, const char *job_id,
                         int (*fn_delivery)(void *opaque, const struct store_delivery *d),
                         int (*fn_attempt)(void *opaque, const struct store_attempt *a),
                         void *opaque);
    /* Several nodes; NULL in a backend that is not shared (store.c then
     * answers as store.h says for SQLite). */
    const char *(*node_id)(const struct store *st);
    void (*set_node_lease)(struct store *st, double seconds);
    int (*job_cancel_request)(struct store *st, const char *id, int *running);
    int (*cancel_requested)(struct store *st, void (*fn)(void *opaque, const char *id),
                            void *opaque);
    int (*queue_position)(struct store *st, const char *id, long *pos);
    int (*job_get_position)(struct store *st, const char *id, struct job **out, long *pos);
    int (*delivery_release)(struct store *st, int64_t seq);
};

/* The head of every backend's handle. */
struct store {
    const struct store_ops *ops;
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

/* A fresh webhook id, "wh_" + 32 random hex digits (the same in every
 * backend). STORE_EIO if the random generator fails. */
int store_new_webhook_id(char id[STORE_WEBHOOK_ID_SIZE]);

#endif
