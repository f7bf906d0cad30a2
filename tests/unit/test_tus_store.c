/* test_tus_store.c - durable tus upload state (rows in a SQLite job store,
 * bytes in files): create/get/save, writes and commits, checksum discard,
 * length cap, locks (held, lapsed and taken over: the slow writer stops
 * and keeps nothing), expiry sweep, recovery of unacknowledged bytes after
 * a crash (a forked writer killed with -9), locks of a dead process freed
 * on reopen. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"
#include "uploads/tus_meta.h"
#include "uploads/tus_store.h"

struct fx {
    char base[512];
    char dir[600];
    struct store *st;
    struct tus_store *ts;
};

static int open_all(struct fx *f, double lease, int sync_each)
{
    char url[700], err[256];
    snprintf(url, sizeof(url), "sqlite:%s/store.db", f->base);
    if (!f->st && store_open(url, &f->st, err, sizeof(err)) != STORE_OK)
        return -1;
    return tus_store_open(f->dir, f->st, 3600, lease, sync_each, &f->ts) == TUS_OK ? 0 : -1;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *base = getenv("VIDQ_TEST_TMP");
    snprintf(f->base, sizeof(f->base), "%s/tus-unit-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(f->base))
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/uploads", f->base);
    if (open_all(f, 10, 0) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tus_store_close(&f->ts);
    store_close(&f->st);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->base);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static long long file_size(const struct fx *f, const char *id)
{
    char p[1200];
    struct stat st;
    tus_store_data_path(f->ts, id, p, sizeof(p));
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* Create upload id, its lock held in lk. */
static void make(struct fx *f, struct tus_upload *u, struct tus_lock *lk, const char *id,
                 int64_t length)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->id, sizeof(u->id), "%s", id);
    u->length = length;
    u->metadata = strdup("filename YS5tcDQ=");
    assert_int_equal(tus_store_create(f->ts, u, lk), TUS_OK);
    assert_true(lk->held);
}

static void create_get(void **state)
{
    struct fx *f = *state;
    struct tus_upload u, g;
    struct tus_lock lk, lk2;
    make(f, &u, &lk, "abcDEF_123-x", 1000);
    assert_int_equal(tus_store_get(f->ts, "abcDEF_123-x", &g), TUS_OK);
    assert_int_equal(g.offset, 0);
    assert_int_equal(g.length, 1000);
    assert_int_equal(g.phase, TUS_PARTIAL);
    assert_string_equal(g.metadata, "filename YS5tcDQ=");
    assert_true(g.expires_at > g.created_at + 3000);
    assert_int_equal(file_size(f, "abcDEF_123-x"), 0);
    tus_upload_clear(&g);
    /* a second create of the same id fails, bad ids are refused */
    struct tus_upload dup = u;
    dup.metadata = NULL;
    assert_true(tus_store_create(f->ts, &dup, &lk2) < 0);
    assert_int_equal(tus_store_get(f->ts, "nope", &g), TUS_ENOTFOUND);
    assert_int_equal(tus_store_get(f->ts, "../etc", &g), TUS_ENOTFOUND);
    assert_false(tus_id_valid("a/b"));
    assert_false(tus_id_valid(""));
    assert_int_equal(tus_store_remove(f->ts, &lk), TUS_OK);
    assert_false(lk.held);
    assert_int_equal(tus_store_get(f->ts, "abcDEF_123-x", &g), TUS_ENOTFOUND);
    assert_int_equal(file_size(f, "abcDEF_123-x"), -1);
    assert_int_equal(tus_store_lock(f->ts, "abcDEF_123-x", &lk), TUS_ENOTFOUND);
    tus_upload_clear(&u);
    /* no metadata at all */
    memset(&u, 0, sizeof(u));
    snprintf(u.id, sizeof(u.id), "nometa");
    u.length = 5;
    assert_int_equal(tus_store_create(f->ts, &u, &lk), TUS_OK);
    tus_store_unlock(f->ts, &lk);
    assert_int_equal(tus_store_get(f->ts, "nometa", &g), TUS_OK);
    assert_null(g.metadata);
    assert_int_equal(g.length, 5);
    tus_upload_clear(&g);
}

static void write_commit(void **state)
{
    struct fx *f = *state;
    struct tus_upload u, g;
    struct tus_write *w = NULL;
    struct tus_lock lk;
    make(f, &u, &lk, "w1", 10);
    assert_int_equal(tus_write_begin(f->ts, &u, &lk, NULL, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "hello", 5), TUS_OK);
    assert_int_equal(tus_write_count(w), 5);
    assert_int_equal(tus_write_commit(&w, &u, NULL, 0), TUS_OK);
    assert_null(w);
    assert_int_equal(u.offset, 5);
    assert_int_equal(tus_store_get(f->ts, "w1", &g), TUS_OK);
    assert_int_equal(g.offset, 5);
    assert_int_equal(g.phase, TUS_PARTIAL);
    tus_upload_clear(&g);

    /* past the length: refused, nothing written */
    assert_int_equal(tus_write_begin(f->ts, &u, &lk, NULL, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "0123456", 7), TUS_ETOOBIG);
    tus_write_free(&w);
    assert_int_equal(file_size(f, "w1"), 5);

    /* a bad checksum discards the chunk, the offset stays */
    char algo[16], err[128];
    unsigned char want[TUS_DIGEST_MAX];
    size_t wl;
    assert_int_equal(
        tus_checksum_parse("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=", algo, want, &wl, err, sizeof(err)),
        0); /* sha1("hello") */
    assert_int_equal(tus_write_begin(f->ts, &u, &lk, algo, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "world", 5), TUS_OK);
    assert_int_equal(tus_write_commit(&w, &u, want, wl), TUS_ECHECKSUM);
    assert_null(w);
    assert_int_equal(u.offset, 5);
    assert_int_equal(file_size(f, "w1"), 5);
    assert_int_equal(tus_store_get(f->ts, "w1", &g), TUS_OK);
    assert_int_equal(g.offset, 5);
    tus_upload_clear(&g);

    /* the right checksum completes it */
    assert_int_equal(tus_write_begin(f->ts, &u, &lk, algo, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "hello", 5), TUS_OK);
    assert_int_equal(tus_write_commit(&w, &u, want, wl), TUS_OK);
    assert_int_equal(u.offset, 10);
    assert_int_equal(u.phase, TUS_COMPLETE);
    assert_int_equal(tus_store_get(f->ts, "w1", &g), TUS_OK);
    assert_int_equal(g.phase, TUS_COMPLETE);
    tus_upload_clear(&g);
    char p[1200], buf[16] = {0};
    tus_store_data_path(f->ts, "w1", p, sizeof(p));
    FILE *fp = fopen(p, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(buf, 1, sizeof(buf), fp), 10);
    fclose(fp);
    assert_string_equal(buf, "hellohello");
    tus_upload_clear(&u);
}

static int count_complete;
static void on_complete(void *opaque, const char *id)
{
    (void)opaque;
    count_complete++;
    assert_string_equal(id, "w1");
}

static void crash_recovery(void **state)
{
    struct fx *f = *state;
    struct tus_upload u, g;
    struct tus_lock lk;
    struct tus_write *w = NULL;
    make(f, &u, &lk, "crash", 100);
    /* acknowledge 10 bytes */
    assert_int_equal(tus_write_begin(f->ts, &u, &lk, NULL, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "0123456789", 10), TUS_OK);
    assert_int_equal(tus_write_commit(&w, &u, NULL, 0), TUS_OK);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* write 20 more and die before the commit (the lock is fresh: no
         * store call in the child) */
        if (tus_write_begin(f->ts, &u, &lk, NULL, &w) ||
            tus_write_data(w, "abcdefghijabcdefghij", 20))
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_int_equal(file_size(f, "crash"), 30);
    assert_int_equal(tus_store_get(f->ts, "crash", &g), TUS_OK);
    assert_int_equal(g.offset, 10); /* the acknowledged part only */
    assert_int_equal(tus_write_begin(f->ts, &g, &lk, NULL, &w), TUS_OK);
    assert_int_equal(file_size(f, "crash"), 10); /* the rest was dropped */
    tus_write_free(&w);
    tus_upload_clear(&g);
    tus_upload_clear(&u);
    tus_store_unlock(f->ts, &lk);
    count_complete = 0;
    assert_int_equal(tus_store_each_complete(f->ts, 1, on_complete, NULL), TUS_OK);
    assert_int_equal(count_complete, 0);
    /* a complete upload is listed once its lock is free, not before */
    make(f, &u, &lk, "w1", 3);
    assert_int_equal(tus_write_begin(f->ts, &u, &lk, NULL, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "abc", 3), TUS_OK);
    assert_int_equal(tus_write_commit(&w, &u, NULL, 0), TUS_OK);
    assert_int_equal(u.phase, TUS_COMPLETE);
    assert_int_equal(tus_store_each_complete(f->ts, 0, on_complete, NULL), TUS_OK);
    assert_int_equal(count_complete, 0);
    tus_store_unlock(f->ts, &lk);
    assert_int_equal(tus_store_each_complete(f->ts, 0, on_complete, NULL), TUS_OK);
    assert_int_equal(count_complete, 1);
    tus_upload_clear(&u);
}

/* A row that claims more than the data file holds (a power cut without
 * --tus-fsync can leave that) resumes at the data's end; --tus-fsync mode
 * writes and commits the same way. */
static void offset_clamped(void **state)
{
    struct fx *f = *state;
    struct tus_upload u, g;
    struct tus_write *w = NULL;
    struct tus_lock lk;
    tus_store_close(&f->ts);
    assert_int_equal(open_all(f, 10, 1), 0);
    make(f, &u, &lk, "clamp", 100);
    assert_int_equal(tus_write_begin(f->ts, &u, &lk, NULL, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "0123456789abcdefghij", 20), TUS_OK);
    assert_int_equal(tus_write_commit(&w, &u, NULL, 0), TUS_OK);
    assert_int_equal(u.offset, 20);
    char p[1200];
    tus_store_data_path(f->ts, "clamp", p, sizeof(p));
    assert_int_equal(truncate(p, 12), 0);
    assert_int_equal(tus_store_get(f->ts, "clamp", &g), TUS_OK);
    assert_int_equal(g.offset, 12);
    assert_int_equal(g.phase, TUS_PARTIAL);
    /* the client resumes at 12 and completes */
    assert_int_equal(tus_write_begin(f->ts, &g, &lk, NULL, &w), TUS_OK);
    char rest[88];
    memset(rest, 'x', sizeof(rest));
    assert_int_equal(tus_write_data(w, rest, sizeof(rest)), TUS_OK);
    assert_int_equal(tus_write_commit(&w, &g, NULL, 0), TUS_OK);
    assert_int_equal(g.phase, TUS_COMPLETE);
    assert_int_equal(file_size(f, "clamp"), 100);
    tus_upload_clear(&g);
    tus_upload_clear(&u);
}

static void locks(void **state)
{
    struct fx *f = *state;
    struct tus_upload u, g;
    struct tus_lock a, b, c;
    struct tus_write *w = NULL;
    make(f, &u, &a, "a1", 100);
    assert_int_equal(tus_store_lock(f->ts, "a1", &b), TUS_ELOCKED);
    assert_false(b.held);
    assert_int_equal(tus_store_lock(f->ts, "nope", &b), TUS_ENOTFOUND);
    assert_int_equal(tus_store_lock(f->ts, "../x", &b), TUS_ENOTFOUND);
    tus_store_unlock(f->ts, &a);
    assert_int_equal(tus_store_lock(f->ts, "a1", &b), TUS_OK);
    tus_store_unlock(f->ts, &b);
    tus_upload_clear(&u);

    /* a 1 s lease: a writer that stalls past it loses the upload to the
     * next request, stops writing, keeps nothing and truncates nothing */
    tus_store_close(&f->ts);
    assert_int_equal(open_all(f, 1, 0), 0);
    make(f, &u, &a, "slow", 100);
    assert_int_equal(tus_write_begin(f->ts, &u, &a, NULL, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "0123456789", 10), TUS_OK);
    assert_int_equal(tus_store_lock(f->ts, "slow", &b), TUS_ELOCKED);
    int taken = 0;
    for (int i = 0; i < 60 && !taken; i++) { /* the lease lapses by the store's clock */
        usleep(50000);
        taken = tus_store_lock(f->ts, "slow", &b) == TUS_OK;
    }
    assert_true(taken);
    assert_int_equal(tus_store_get(f->ts, "slow", &g), TUS_OK);
    assert_int_equal(g.offset, 0);
    struct tus_write *w2 = NULL;
    assert_int_equal(tus_write_begin(f->ts, &g, &b, NULL, &w2), TUS_OK);
    assert_int_equal(tus_write_data(w2, "ABCDE", 5), TUS_OK);
    assert_int_equal(tus_write_data(w, "xxxxx", 5), TUS_ELOCKED); /* the slow one stops */
    tus_write_free(&w);                                           /* and truncates nothing */
    assert_int_equal(tus_write_commit(&w2, &g, NULL, 0), TUS_OK);
    assert_int_equal(g.offset, 5);
    assert_int_equal(file_size(f, "slow"), 5);
    assert_int_equal(tus_store_lock(f->ts, "slow", &c), TUS_ELOCKED);
    tus_store_unlock(f->ts, &a); /* lost: a no-op */
    assert_int_equal(tus_store_lock(f->ts, "slow", &c), TUS_ELOCKED);
    tus_store_unlock(f->ts, &b);
    tus_upload_clear(&g);
    /* a lapsed lock nobody took stays its holder's: its commit counts */
    assert_int_equal(tus_store_lock(f->ts, "slow", &a), TUS_OK);
    assert_int_equal(tus_store_get(f->ts, "slow", &g), TUS_OK);
    assert_int_equal(tus_write_begin(f->ts, &g, &a, NULL, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "FGH", 3), TUS_OK);
    usleep(1100000);
    assert_int_equal(tus_write_commit(&w, &g, NULL, 0), TUS_OK);
    assert_int_equal(g.offset, 8);
    assert_int_equal(file_size(f, "slow"), 8);
    tus_upload_clear(&g);
    tus_upload_clear(&u);

    /* a lock left by a process that died is freed when the one node
     * reopens its SQLite store */
    tus_store_close(&f->ts);
    assert_int_equal(open_all(f, 10, 0), 0);
    assert_int_equal(tus_store_lock(f->ts, "slow", &b), TUS_OK);
    tus_store_unlock(f->ts, &b);
}

static void sweep(void **state)
{
    struct fx *f = *state;
    struct tus_upload u1, u2, u3;
    struct tus_lock l1, l2, l3;
    make(f, &u1, &l1, "old", 50);
    make(f, &u2, &l2, "young", 50);
    make(f, &u3, &l3, "busy", 50);
    struct tus_write *w = NULL;
    assert_int_equal(tus_write_begin(f->ts, &u1, &l1, NULL, &w), TUS_OK);
    assert_int_equal(tus_write_data(w, "0123456789", 10), TUS_OK);
    assert_int_equal(tus_write_commit(&w, &u1, NULL, 0), TUS_OK);
    u1.expires_at = 1000; /* long past */
    u3.expires_at = 1000;
    assert_int_equal(tus_store_save(f->ts, &u1, &l1), TUS_OK);
    assert_int_equal(tus_store_save(f->ts, &u3, &l3), TUS_OK);
    assert_int_equal(tus_store_save(f->ts, &u3, &l1), TUS_ELOCKED); /* not its lock */
    tus_store_unlock(f->ts, &l1);
    tus_store_unlock(f->ts, &l2);
    assert_int_equal(tus_store_sweep(f->ts, 2000), 1);
    struct tus_upload g;
    assert_int_equal(tus_store_get(f->ts, "old", &g), TUS_ENOTFOUND);
    assert_int_equal(file_size(f, "old"), -1);
    assert_int_equal(tus_store_get(f->ts, "young", &g), TUS_OK);
    tus_upload_clear(&g);
    assert_int_equal(tus_store_get(f->ts, "busy", &g), TUS_OK); /* locked: kept */
    tus_upload_clear(&g);
    tus_store_unlock(f->ts, &l3);
    /* the sweep thread does it on its own */
    assert_int_equal(tus_store_sweep_start(f->ts, 0.05, NULL, NULL), TUS_OK);
    for (int i = 0; i < 100 && file_size(f, "busy") >= 0; i++)
        usleep(20000);
    assert_int_equal(file_size(f, "busy"), -1);
    assert_int_equal(tus_store_get(f->ts, "busy", &g), TUS_ENOTFOUND);
    assert_true(file_size(f, "young") >= 0);
    tus_upload_clear(&u1);
    tus_upload_clear(&u2);
    tus_upload_clear(&u3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_get, setup, teardown),
        cmocka_unit_test_setup_teardown(write_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(crash_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(offset_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(locks, setup, teardown),
        cmocka_unit_test_setup_teardown(sweep, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
