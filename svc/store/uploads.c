/*
 * uploads.c - the tus_uploads table (see uploads.h), written once for both
 * backends through store_exec. The two dialects differ in two places
 * only, so each statement below is built from one text with two macros:
 *   NOW: the database's clock in Unix seconds (leases are compared with
 *   it, never with a node's clock);
 *   HELD_BY_LIVE: PostgreSQL's "or the holder's node is dead" (pg.c
 *   NODES) in the lists of complete uploads to recover: a live node that
 *   is still making the job (probing can outlast the lease) is left alone.
 *   SQLite has one node, no such clause.
 * A lock is taken over only once its lease lapsed, never because its
 * node looks dead: a node cut off from the database (its presence lock
 * gone) may still be writing to the shared data dir until its own clock
 * ends its lease (uploads/tus_store.h, Locks).
 */
#include "store/uploads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"

#define PG_NOW "extract(epoch from clock_timestamp())::double precision"
#define SQ_NOW "((julianday('now') - 2440587.5) * 86400.0)"
/* pg.c's LIVE_NODES: nodes whose lease holds and whose presence lock is held. */
#define PG_LIVE                                                                          \
    "(SELECT n.id FROM nodes n WHERE n.alive_until > " PG_NOW " AND EXISTS (SELECT 1 "   \
    "FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND " \
    "l.classid = 7617::oid AND "                                                         \
    "l.objid = (hashtext(n.id)::bigint & 4294967295)::oid))"
#define PG_DEAD " OR lock_node NOT IN " PG_LIVE

#define TABLE_SQL                                                                          \
    "CREATE TABLE IF NOT EXISTS tus_uploads (id TEXT PRIMARY KEY,"                         \
    " upload_length BIGINT NOT NULL, upload_offset BIGINT NOT NULL DEFAULT 0,"             \
    " metadata TEXT, created_at DOUBLE PRECISION NOT NULL,"                                \
    " expires_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION NOT NULL DEFAULT 0," \
    " phase TEXT NOT NULL, error_code TEXT NOT NULL DEFAULT '',"                           \
    " error_message TEXT NOT NULL DEFAULT '', locked_by TEXT, lock_node TEXT,"             \
    " locked_until DOUBLE PRECISION)"
#define INDEX1_SQL "CREATE INDEX IF NOT EXISTS tus_uploads_expiry ON tus_uploads(expires_at)"
#define INDEX2_SQL "CREATE INDEX IF NOT EXISTS tus_uploads_phase ON tus_uploads(phase)"

enum {
    U_INSERT,
    U_GET,
    U_LOCK,
    U_RENEW,
    U_EXISTS,
    U_UNLOCK,
    U_COMMIT,
    U_SAVE,
    U_DELETE,
    U_EXPIRED,
    U_COMPLETE,
    U_UNFINISHED,
    U_N
};

#define STATEMENTS(NOW, HELD_BY_LIVE)                                                   \
    {                                                                                        \
        [U_INSERT] = "INSERT INTO tus_uploads (id, upload_length, upload_offset, metadata,"  \
                     " created_at, expires_at, finished_at, phase, locked_by, lock_node,"    \
                     " locked_until) VALUES ($1, $2, 0, $3, $4, $5, 0, 'partial', $6, $7, " NOW \
                     " + $8)",                                                               \
        [U_GET] = "SELECT upload_offset, upload_length, metadata, created_at, expires_at,"   \
                  " finished_at, phase, error_code, error_message FROM tus_uploads"          \
                  " WHERE id = $1",                                                          \
        [U_LOCK] = "UPDATE tus_uploads SET locked_by = $2, lock_node = $3, locked_until = " \
                   NOW " + $4 WHERE id = $1 AND (locked_by IS NULL OR locked_by = $2 OR"     \
                   " locked_until < " NOW ")",                                          \
        [U_RENEW] = "UPDATE tus_uploads SET locked_until = " NOW " + $3 WHERE id = $1 AND"   \
                    " locked_by = $2",                                                        \
        [U_EXISTS] = "SELECT 1 FROM tus_uploads WHERE id = $1",                              \
        [U_UNLOCK] = "UPDATE tus_uploads SET locked_by = NULL, lock_node = NULL,"            \
                     " locked_until = NULL WHERE id = $1 AND locked_by = $2",                \
        [U_COMMIT] = "UPDATE tus_uploads SET upload_offset = $4, expires_at = $5, phase = $6" \
                     " WHERE id = $1 AND locked_by = $2 AND upload_offset = $3",             \
        [U_SAVE] = "UPDATE tus_uploads SET expires_at = $2, finished_at = $3, phase = $4,"   \
                   " error_code = $5, error_message = $6 WHERE id = $1 AND locked_by = $7",  \
        [U_DELETE] = "DELETE FROM tus_uploads WHERE id = $1 AND locked_by = $2",             \
        [U_EXPIRED] = "SELECT id FROM tus_uploads WHERE expires_at <= $1 AND"                \
                      " phase <> 'complete' AND (locked_by IS NULL OR locked_until < " NOW   \
                      ") ORDER BY expires_at LIMIT $2",                                 \
        [U_COMPLETE] = "SELECT id FROM tus_uploads WHERE phase = 'complete' AND"             \
                       " (locked_by IS NULL" HELD_BY_LIVE ") ORDER BY created_at LIMIT $1",  \
        [U_UNFINISHED] = "SELECT id FROM tus_uploads WHERE phase IN ('complete', 'failed')"  \
                         " AND (locked_by IS NULL" HELD_BY_LIVE ") ORDER BY created_at"      \
                         " LIMIT $1",                                                        \
    }

static const char *const pg_sql[U_N] = STATEMENTS(PG_NOW, PG_DEAD);
static const char *const sq_sql[U_N] = STATEMENTS(SQ_NOW, "");

static const char *const phase_names[] = {"partial", "complete", "done", "failed"};

static const char *sql(const struct store *st, int id)
{
    return store_is_shared(st) ? pg_sql[id] : sq_sql[id];
}

int store_uploads_init(struct store *st)
{
    int rc;
    if (store_is_shared(st)) {
        /* One statement, under a transaction-scoped advisory lock: two
         * nodes creating the table at once would otherwise race. */
        rc = store_exec(st, "tus_uploads schema",
                        "DO $$ BEGIN PERFORM pg_advisory_xact_lock(7617710003); " TABLE_SQL
                        "; " INDEX1_SQL "; " INDEX2_SQL "; END $$",
                        NULL, NULL, NULL, NULL);
        return rc;
    }
    const char *const steps[] = {TABLE_SQL, INDEX1_SQL, INDEX2_SQL,
                                 /* one node: a lock left now is a dead process's */
                                 "UPDATE tus_uploads SET locked_by = NULL, lock_node = NULL,"
                                 " locked_until = NULL WHERE locked_by IS NOT NULL"};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if ((rc = store_exec(st, "tus_uploads schema", steps[i], NULL, NULL, NULL, NULL)) !=
            STORE_OK)
            return rc;
    return STORE_OK;
}

void store_upload_clear(struct store_upload *u)
{
    free(u->metadata);
    u->metadata = NULL;
}

int store_upload_insert(struct store *st, const struct store_upload *u, const char *token,
                        double lease_s)
{
    struct store_params p = {{sp_text(u->id), sp_i64(u->length), sp_text(u->metadata),
                              sp_double(u->created_at), sp_double(u->expires_at), sp_text(token),
                              sp_text(store_node_id(st)), sp_double(lease_s)}};
    return store_exec(st, "upload insert", sql(st, U_INSERT), &p, NULL, NULL, NULL);
}

struct got {
    struct store_upload *u;
    int found, nomem;
};

static int keep_upload(void *opaque, const struct store_row *r)
{
    struct got *g = opaque;
    struct store_upload *u = g->u;
    const char *phase = r->ops->text(r, 6, NULL);
    const char *meta = r->ops->text(r, 2, NULL);
    const char *ec = r->ops->text(r, 7, NULL);
    const char *em = r->ops->text(r, 8, NULL);
    g->found = 1;
    u->offset = r->ops->i64(r, 0);
    u->length = r->ops->i64(r, 1);
    u->created_at = r->ops->num(r, 3);
    u->expires_at = r->ops->num(r, 4);
    u->finished_at = r->ops->num(r, 5);
    u->phase = STORE_UPLOAD_PARTIAL;
    for (int i = 0; phase && i < 4; i++)
        if (strcmp(phase, phase_names[i]) == 0)
            u->phase = i;
    snprintf(u->error_code, sizeof(u->error_code), "%s", ec ? ec : "");
    snprintf(u->error_message, sizeof(u->error_message), "%s", em ? em : "");
    if (meta && *meta && !(u->metadata = strdup(meta)))
        g->nomem = 1;
    return 1;
}

int store_upload_get(struct store *st, const char *id, struct store_upload *u)
{
    memset(u, 0, sizeof(*u));
    if (!id || strlen(id) > STORE_UPLOAD_ID_MAX)
        return STORE_ENOTFOUND;
    snprintf(u->id, sizeof(u->id), "%s", id);
    struct got g = {u, 0, 0};
    struct store_params p = {{sp_text(id)}};
    int rc = store_exec(st, "upload get", sql(st, U_GET), &p, keep_upload, &g, NULL);
    if (rc == STORE_OK && !g.found)
        rc = STORE_ENOTFOUND;
    if (rc == STORE_OK && g.nomem)
        rc = STORE_ENOMEM;
    if (rc != STORE_OK)
        store_upload_clear(u);
    return rc;
}

static int keep_found(void *opaque, const struct store_row *r)
{
    (void)r;
    *(int *)opaque = 1;
    return 1;
}

/* After a guarded change that changed nothing: the row's existence tells
 * STORE_ECONFLICT from STORE_ENOTFOUND. */
static int conflict_or_missing(struct store *st, const char *id)
{
    int found = 0;
    struct store_params p = {{sp_text(id)}};
    int rc = store_exec(st, "upload exists", sql(st, U_EXISTS), &p, keep_found, &found, NULL);
    if (rc != STORE_OK)
        return rc;
    return found ? STORE_ECONFLICT : STORE_ENOTFOUND;
}

/* Run a guarded change of id: STORE_OK if it changed the row. */
static int guarded(struct store *st, const char *what, int stmt, const struct store_params *p,
                   const char *id)
{
    int64_t changed = 0;
    int rc = store_exec(st, what, sql(st, stmt), p, NULL, NULL, &changed);
    if (rc != STORE_OK || changed == 1)
        return rc;
    return conflict_or_missing(st, id);
}

int store_upload_lock(struct store *st, const char *id, const char *token, double lease_s)
{
    struct store_params p = {
        {sp_text(id), sp_text(token), sp_text(store_node_id(st)), sp_double(lease_s)}};
    return guarded(st, "upload lock", U_LOCK, &p, id);
}

int store_upload_renew(struct store *st, const char *id, const char *token, double lease_s)
{
    struct store_params p = {{sp_text(id), sp_text(token), sp_double(lease_s)}};
    return guarded(st, "upload renew", U_RENEW, &p, id);
}

int store_upload_unlock(struct store *st, const char *id, const char *token)
{
    struct store_params p = {{sp_text(id), sp_text(token)}};
    return guarded(st, "upload unlock", U_UNLOCK, &p, id);
}

int store_upload_commit(struct store *st, const char *id, const char *token, int64_t old_offset,
                        int64_t new_offset, double expires_at, int phase)
{
    if (phase < 0 || phase > 3)
        return STORE_EINVAL;
    struct store_params p = {{sp_text(id), sp_text(token), sp_i64(old_offset),
                              sp_i64(new_offset), sp_double(expires_at),
                              sp_text(phase_names[phase])}};
    return guarded(st, "upload commit", U_COMMIT, &p, id);
}

int store_upload_save(struct store *st, const struct store_upload *u, const char *token)
{
    if (u->phase < 0 || u->phase > 3)
        return STORE_EINVAL;
    struct store_params p = {{sp_text(u->id), sp_double(u->expires_at),
                              sp_double(u->finished_at), sp_text(phase_names[u->phase]),
                              sp_text(u->error_code), sp_text(u->error_message), sp_text(token)}};
    return guarded(st, "upload save", U_SAVE, &p, u->id);
}

int store_upload_delete(struct store *st, const char *id, const char *token)
{
    struct store_params p = {{sp_text(id), sp_text(token)}};
    return guarded(st, "upload delete", U_DELETE, &p, id);
}

struct id_list {
    char (*ids)[STORE_UPLOAD_ID_MAX + 1];
    int n, cap, nomem;
};

static int add_id(void *opaque, const struct store_row *r)
{
    struct id_list *l = opaque;
    const char *id = r->ops->text(r, 0, NULL);
    if (!id || l->n >= l->cap)
        return 0;
    snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", id);
    return 0;
}

int store_upload_list(struct store *st, enum store_upload_list which, double now, int limit,
                      void (*fn)(void *opaque, const char *id), void *opaque)
{
    if (limit <= 0)
        return STORE_OK;
    struct id_list l = {calloc((size_t)limit, sizeof(l.ids[0])), 0, limit, 0};
    if (!l.ids)
        return STORE_ENOMEM;
    int rc;
    if (which == STORE_UPLOADS_EXPIRED) {
        struct store_params p = {{sp_double(now), sp_i64(limit)}};
        rc = store_exec(st, "uploads expired", sql(st, U_EXPIRED), &p, add_id, &l, NULL);
    } else {
        struct store_params p = {{sp_i64(limit)}};
        int stmt = which == STORE_UPLOADS_COMPLETE ? U_COMPLETE : U_UNFINISHED;
        rc = store_exec(st, "uploads unfinished", sql(st, stmt), &p, add_id, &l, NULL);
    }
    for (int i = 0; rc == STORE_OK && i < l.n; i++)
        fn(opaque, l.ids[i]);
    free(l.ids);
    return rc;
}
