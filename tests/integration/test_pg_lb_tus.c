/*
 * Resumable (tus) uploads through nginx in front of three vidq nodes on one
 * PostgreSQL database and one --data-dir, round-robin, no stickiness
 * (issue #17 parts 1 and 4; only on PostgreSQL: it.test_pg_lb_tus.pg under
 * tests/support/with_pg.sh). The client is the npm tus-js-client under node
 * (tests/support/tus_upload.js), not ours:
 *   - the file goes up in 64 KiB chunks over three client runs, each a new
 *     process; every request asks for "Connection: close", so each chunk
 *     comes on a new connection (a forced reconnect between chunks: the
 *     access log shows one connection per PATCH); each run resumes from the
 *     stored upload URL, whichever node gets it;
 *   - between runs, HEAD through the balancer (another node) gives the
 *     offset the last run was acknowledged;
 *   - before the last run, kill -9 of the node that acknowledged the last
 *     PATCH: no acknowledged byte is lost (HEAD elsewhere still says so),
 *     the upload finishes on the others;
 *   - the job succeeds with every byte (sha256 of the stored input = the
 *     source's), its output probes right;
 *   - bad requests: a PATCH at a wrong offset is 409, HEAD of an unknown
 *     upload 404, and the nodes keep serving.
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ts_lb.h"

#define CLIP "h264_aac_640x360.mp4" /* 2 s */
enum { CHUNK = 65536 };

static struct ts_lb C;
static const struct ts_server *LB;

/* One client run: resumes from url_file when it exists; stops (as a
 * dropped connection would) once stop_after bytes are acknowledged (0:
 * to the end). Returns the offset acknowledged last. */
static long client_run(const char *dir, int run, long stop_after)
{
    char out[4400], cmd[16384];
    snprintf(out, sizeof(out), "%s/client-%d.jsonl", dir, run);
    char stop[64] = "";
    if (stop_after > 0)
        snprintf(stop, sizeof(stop), "--stop-after %ld", stop_after);
    snprintf(cmd, sizeof(cmd),
             "node %s/tests/support/tus_upload.js --endpoint %s/v1/uploads/ --file %s"
             " --chunk-size %d %s --url-file %s/url --meta filename=lb.mp4 --meta preset=mp4-480p"
             " --header 'Connection: close' >%s",
             ts_env("VIDQ_SRC"), LB->base, ts_media(CLIP), CHUNK, stop, dir, out);
    int rc = ts_run(NULL, 0, "%s", cmd);
    char log[8192] = "";
    ts_run(log, sizeof(log), "cat %s", out);
    TS_CHECK(rc == 0, "client run %d failed (%d): %s", run, rc, log);
    const char *want = stop_after > 0 ? "\"event\":\"aborted\"" : "\"event\":\"success\"";
    char *e = strstr(log, want);
    TS_CHECK(e, "client run %d: no %s in %s", run, want, log);
    char *o = strstr(e, "\"offset\":");
    TS_CHECK(o, "client run %d: no offset: %s", run, log);
    return strtol(o + 9, NULL, 10);
}

/* Upload-Offset from a HEAD through the balancer, or -status on an error. */
static long head_offset(const char *path)
{
    long long off = -1;
    long st = ts_tus_head(LB, path, &off);
    return st == 200 && off >= 0 ? (long)off : -st;
}

/* The upstream that answered the last PATCH of the upload, as a node index. */
static int last_patch_node(const char *id)
{
    FILE *f = fopen(C.access_log, "r");
    TS_CHECK(f, "no access log");
    char line[8192], up[128] = "";
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "PATCH ", 6) != 0 || !strstr(line, id) || !strstr(line, " 204 "))
            continue;
        char *sp = strrchr(line, ' ');
        snprintf(up, sizeof(up), "%s", sp + 1);
        up[strcspn(up, "\n")] = '\0';
    }
    fclose(f);
    for (int k = 0; k < C.n; k++) {
        char want[64];
        snprintf(want, sizeof(want), "127.0.0.1:%d", C.node[k].port);
        if (strcmp(up, want) == 0)
            return k;
    }
    TS_CHECK(0, "no PATCH of %s in the access log (last upstream '%s')", id, up);
    return -1;
}

/* PATCHes of the upload answered 204, and on how many distinct client
 * connections (the access log's "c<serial>" field). */
static int patch_connections(const char *id, int *patches)
{
    FILE *f = fopen(C.access_log, "r");
    TS_CHECK(f, "no access log");
    char line[8192];
    long seen[256];
    int n = 0, distinct = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "PATCH ", 6) != 0 || !strstr(line, id) || !strstr(line, " 204 "))
            continue;
        n++;
        char *c = strstr(line, " 204 c");
        long conn = c ? strtol(c + 6, NULL, 10) : -1;
        int known = 0;
        for (int i = 0; i < distinct; i++)
            known |= seen[i] == conn;
        if (!known && distinct < 256)
            seen[distinct++] = conn;
    }
    fclose(f);
    *patches = n;
    return distinct;
}

int main(void)
{
    ts_pg_only("test_pg_lb_tus");
    char mods[4400];
    snprintf(mods, sizeof(mods), "%s/tests/support/node_modules/tus-js-client", ts_env("VIDQ_SRC"));
    struct stat sb;
    TS_CHECK(stat(mods, &sb) == 0, "tus-js-client missing: run tests/support/setup.sh");
    double t_start = ts_now();
    char url[4400], flags[5000];
    char *dir = ts_mkdtemp_store("pg-lb-tus", url, sizeof(url));
    snprintf(flags, sizeof(flags), "--db %s --node-lease 3 --max-concurrent 1 --isolation process",
             url);
    ts_lb_start(&C, dir, 3, flags);
    LB = &C.lb;
    printf("3 nodes and nginx up at %.1f s\n", ts_now() - t_start);

    const char *src = ts_media(CLIP);
    struct stat st;
    TS_CHECK(stat(src, &st) == 0 && st.st_size > 5 * CHUNK, "fixture %s", src);
    long size = (long)st.st_size;

    /* ---- run 1: two chunks, then the connection drops */
    long acked = client_run(dir, 1, 2 * CHUNK);
    TS_CHECK(acked >= 2 * CHUNK && acked < size, "run 1 acknowledged %ld", acked);
    char loc[4400] = "";
    char urlf[4400];
    snprintf(urlf, sizeof(urlf), "%s/url", dir);
    FILE *f = fopen(urlf, "r");
    TS_CHECK(f && fgets(loc, sizeof(loc), f), "no upload URL");
    fclose(f);
    loc[strcspn(loc, "\n")] = '\0';
    const char *p = strstr(loc, "/v1/uploads/");
    TS_CHECK(p, "upload URL %s", loc);
    char path[256], id[128];
    snprintf(path, sizeof(path), "%s", p);
    snprintf(id, sizeof(id), "%s", p + strlen("/v1/uploads/"));
    /* every node answers HEAD with what was acknowledged (3 requests:
     * round-robin puts one on each) */
    for (int i = 0; i < C.n; i++) {
        long off = head_offset(path);
        TS_EXPECT(off == acked, "HEAD %d after run 1: %ld, acknowledged %ld", i, off, acked);
    }

    /* ---- a PATCH at the wrong offset: 409, nothing written */
    long bad = ts_tus_patch(LB, path, 1, "xxxx", 4, NULL);
    TS_EXPECT(bad == 409, "PATCH at a wrong offset: %ld", bad);
    TS_EXPECT(head_offset(path) == acked, "a refused PATCH moved the offset");
    TS_EXPECT(head_offset("/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA") == -404, "HEAD of an unknown upload");

    printf("run 1 (%ld bytes) and checks done at %.1f s\n", acked, ts_now() - t_start);
    /* ---- run 2: resumes wherever it lands, two more chunks */
    long acked2 = client_run(dir, 2, acked + 2 * CHUNK);
    TS_CHECK(acked2 > acked && acked2 < size, "run 2 acknowledged %ld (after %ld)", acked2, acked);

    /* ---- kill -9 of the node that acknowledged the last PATCH */
    int victim = last_patch_node(id);
    int kst = ts_lb_stop_node(&C, victim, SIGKILL, 10);
    TS_CHECK(kst == 128 + SIGKILL, "kill -9 node %d: %d", victim + 1, kst);
    for (int i = 0; i < C.n; i++) {
        long off = head_offset(path);
        TS_EXPECT(off == acked2, "HEAD %d after the kill: %ld, acknowledged %ld", i, off, acked2);
    }

    printf("run 2 (%ld bytes), kill -9 of node %d done at %.1f s\n", acked2, victim + 1,
           ts_now() - t_start);
    /* ---- run 3: to the end, on the survivors */
    long end = client_run(dir, 3, 0);
    TS_CHECK(end == size, "run 3 ended at %ld of %ld", end, size);
    int ups = 0;
    const char *const patches[] = {"PATCH ", id, " 204 ", NULL};
    int npatch = ts_lb_access(&C, patches, &ups);
    printf("tus through nginx: %d PATCHes of %d KiB answered by %d nodes\n", npatch, CHUNK / 1024,
           ups);
    TS_EXPECT(ups >= 2, "all PATCHes on %d node(s): not round-robin?", ups);
    int np = 0, conns = patch_connections(id, &np);
    TS_EXPECT(np == npatch && conns == np, "%d PATCHes came on %d connections", np, conns);

    printf("run 3 done at %.1f s\n", ts_now() - t_start);
    /* ---- the job: every byte, a right output */
    json_t *j = ts_wait_job(LB, id, 60);
    TS_CHECK(j, "no job %s", id);
    TS_EXPECT(strcmp(json_string_value(json_object_get(j, "status")) ?: "", "succeeded") == 0,
              "job: %s", json_dumps(j, JSON_COMPACT));
    json_t *in = json_object_get(j, "input");
    TS_EXPECT(json_integer_value(json_object_get(in, "size")) == size &&
                  strcmp(json_string_value(json_object_get(in, "filename")) ?: "", "lb.mp4") == 0,
              "input: %s", json_dumps(in, JSON_COMPACT));
    json_decref(j);
    char want[128] = "", got[128] = "";
    ts_run(want, sizeof(want), "sha256sum < %s | cut -d' ' -f1", src);
    ts_run(got, sizeof(got), "sha256sum < %s/inputs/%s | cut -d' ' -f1", dir, id);
    TS_EXPECT(want[0] && strcmp(want, got) == 0, "stored input differs from the source");
    char opath[512], ofile[4400];
    snprintf(opath, sizeof(opath), "/v1/jobs/%s/outputs/mp4-480p", id);
    snprintf(ofile, sizeof(ofile), "%s/out.mp4", dir);
    TS_EXPECT(ts_http_download(LB, opath, ofile) == 200, "download");
    json_t *pr = ts_ffprobe(ofile);
    TS_EXPECT(pr && json_array_size(json_object_get(pr, "streams")) == 2, "ffprobe output");
    json_decref(pr);

    ts_lb_stop_all(&C, victim, 30);
    printf("whole test: %.1f s\n", ts_now() - t_start);
    return ts_finish(dir, 1);
}
