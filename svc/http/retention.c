/*
 * retention.c - DELETE /v1/jobs/<id>/files: a client deletes an ended
 * job's input and outputs now instead of at its expires_at (README
 * "Retention"). 200 with the job (expired: true); 409 while it is queued
 * or running. The work is the sweeper's (jobs/sweeper.h).
 */
#include <stdlib.h>

#include "http/internal.h"
#include "jobs/sched.h"
#include "jobs/sweeper.h"

enum MHD_Result retention_delete_files(struct http_server *h, struct MHD_Connection *conn,
                                       struct request *rq, const char *d, size_t *ds)
{
    (void)d;
    (void)ds;
    const char *id = rq->params[0];
    char *json = NULL;
    size_t len = 0;
    if (!job_id_valid(id))
        return http_fail(conn, "not_found", "no job with id '%s'", id);
    int rc = sweeper_delete_files(h->sched, h->cfg->data_dir, id);
    if (rc == SCHED_ENOTFOUND)
        return http_fail(conn, "not_found", "no job with id '%s'", id);
    if (rc == SCHED_ECONFLICT)
        return http_fail(conn, "conflict",
                         "job %s has not ended; cancel it first, or its files are deleted "
                         "when it expires", id);
    if (rc != SCHED_OK)
        return http_fail(conn, "internal_error", "the files of job %s could not be deleted", id);
    rc = sched_job_json(h->sched, id, &json, &len);
    if (rc != SCHED_OK)
        return http_fail(conn, rc == SCHED_ENOTFOUND ? "not_found" : "internal_error",
                         "job %s cannot be read back", id);
    return http_send_json(conn, MHD_HTTP_OK, json, len, NULL);
}
