/* deliver_out.c - see deliver_out.h. */
#define _GNU_SOURCE
#include "jobs/deliver_out.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "common/log.h"
#include "net/put.h"

enum { MAX_FILES = 20000, MAX_DEPTH = 8 };

/* One file to send. */
struct item {
    char *path;       /* local file */
    char *url;        /* where it goes */
    const char *mime;
    int64_t size;
    size_t output;    /* the output it belongs to */
    int rank;         /* folder files: 0 media, then index files deepest first */
};

struct plan {
    struct item *items;
    size_t n, cap;
    int64_t total;
};

int deliver_out_wanted(const char *outputs_json)
{
    json_t *list = outputs_json ? json_loads(outputs_json, 0, NULL) : NULL;
    size_t i;
    json_t *o;
    int yes = 0;
    json_array_foreach(list, i, o) {
        if (json_is_string(json_object_get(o, "upload_url")))
            yes = 1;
    }
    json_decref(list);
    return yes;
}

static void plan_free(struct plan *pl)
{
    for (size_t i = 0; i < pl->n; i++) {
        free(pl->items[i].path);
        free(pl->items[i].url);
    }
    free(pl->items);
    memset(pl, 0, sizeof(*pl));
}

/* base + rel, rel percent-encoded except unreserved characters and '/'.
 * Malloc'd, or NULL when over NET_URL_MAX or out of memory. */
static char *join_url(const char *base, const char *rel)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t bl = strlen(base), n = bl;
    char *out = malloc(NET_URL_MAX + 1);
    if (!out || bl > NET_URL_MAX)
        goto fail;
    memcpy(out, base, bl);
    for (const unsigned char *c = (const unsigned char *)rel; *c; c++) {
        int plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || strchr("-._~/", *c);
        if (n + (plain ? 1 : 3) > NET_URL_MAX)
            goto fail;
        if (plain) {
            out[n++] = (char)*c;
        } else {
            out[n++] = '%';
            out[n++] = hex[*c >> 4];
            out[n++] = hex[*c & 15];
        }
    }
    out[n] = '\0';
    return out;
fail:
    free(out);
    return NULL;
}

static int plan_add(struct plan *pl, const char *path, char *url, const char *mime, int64_t size,
                    size_t output, int rank)
{
    if (pl->n >= MAX_FILES)
        return -1;
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 16;
        struct item *grown = realloc(pl->items, cap * sizeof(*grown));
        if (!grown)
            return -1;
        pl->items = grown;
        pl->cap = cap;
    }
    char *p = strdup(path);
    if (!p)
        return -1;
    pl->items[pl->n++] = (struct item){p, url, mime, size, output, rank};
    pl->total += size;
    return 0;
}

/* Add every regular file under dir/rel (rel "" at the top) to the plan,
 * each to prefix + its path relative to the output's folder. */
static int walk(struct plan *pl, const char *dir, const char *rel, const char *prefix,
                size_t output, int depth, char *err, size_t errlen)
{
    char here[4096];
    DIR *d = NULL;
    struct dirent *de;
    int ret = -1;
    if (depth > MAX_DEPTH) {
        snprintf(err, errlen, "output folder nested too deep");
        return -1;
    }
    if (snprintf(here, sizeof(here), "%s%s%s", dir, *rel ? "/" : "", rel) >= (int)sizeof(here) ||
        !(d = opendir(here))) {
        snprintf(err, errlen, "cannot read the output folder: %s", strerror(errno));
        return -1;
    }
    while ((de = readdir(d))) {
        char path[4096], sub[2048];
        struct stat st;
        if (de->d_name[0] == '.')
            continue; /* ".", "..", and nothing of ours is hidden */
        if (snprintf(path, sizeof(path), "%s/%s", here, de->d_name) >= (int)sizeof(path) ||
            snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
                (int)sizeof(sub) ||
            lstat(path, &st) < 0) {
            snprintf(err, errlen, "cannot read the output folder");
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            if (walk(pl, dir, sub, prefix, output, depth + 1, err, errlen) < 0)
                goto out;
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        const char *mime = tc_file_mime(sub);
        int index = strcmp(mime, "application/vnd.apple.mpegurl") == 0 ||
                    strcmp(mime, "text/vtt") == 0;
        char *url = join_url(prefix, sub);
        if (!url) {
            snprintf(err, errlen, "upload_url + '%.200s' is longer than %d bytes", sub,
                     NET_URL_MAX);
            goto out;
        }
        if (plan_add(pl, path, url, mime, st.st_size, output, index ? MAX_DEPTH + 1 - depth : 0) <
            0) {
            free(url);
            snprintf(err, errlen, "too many files in the output folder (at most %d)", MAX_FILES);
            goto out;
        }
    }
    ret = 0;
out:
    closedir(d);
    return ret;
}

static int by_rank(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->output != y->output)
        return x->output < y->output ? -1 : 1;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return strcmp(x->url, y->url);
}

struct progress_ctx {
    const struct deliver_out_params *p;
    int64_t done;   /* bytes of the files already sent */
    int64_t total;
    int64_t last;
};

static int on_put_progress(void *ctx, int64_t sent, int64_t size)
{
    struct progress_ctx *c = ctx;
    (void)size;
    if (c->p->stop && atomic_load(c->p->stop))
        return 1;
    if (c->p->on_progress && c->done + sent != c->last) {
        c->last = c->done + sent;
        c->p->on_progress(c->p->opaque, c->last, c->total);
    }
    return 0;
}

int deliver_out_run(const struct deliver_out_params *p, char **results_json, char *code,
                    char *message)
{
    json_t *outs = NULL, *results = NULL;
    struct plan pl = {0};
    int ret = -1;
    size_t i;
    json_t *o;

    snprintf(code, DELIVER_OUT_CODE_MAX, "internal_error");
    message[0] = '\0';
    outs = json_loads(p->outputs_json ? p->outputs_json : "[]", 0, NULL);
    results = json_loads(*results_json ? *results_json : "[]", 0, NULL);
    if (!json_is_array(outs) || !json_is_array(results)) {
        snprintf(message, DELIVER_OUT_MESSAGE_MAX, "the job's outputs cannot be read");
        goto out;
    }
    json_array_foreach(outs, i, o) {
        const char *url = json_string_value(json_object_get(o, "upload_url"));
        json_t *spec = json_object_get(o, "spec");
        const char *container = json_string_value(json_object_get(spec, "container"));
        if (!url)
            continue;
        if (i >= p->n || !container) {
            snprintf(message, DELIVER_OUT_MESSAGE_MAX, "output %zu has no file", i);
            goto out;
        }
        if (tc_container_is_folder(container)) {
            char err[256] = "";
            if (walk(&pl, p->paths[i], "", url, i, 0, err, sizeof(err)) < 0) {
                snprintf(message, DELIVER_OUT_MESSAGE_MAX, "%s", err);
                goto out;
            }
            continue;
        }
        struct stat st;
        char *u = strdup(url);
        if (!u || stat(p->paths[i], &st) < 0 ||
            plan_add(&pl, p->paths[i], u, tc_container_mime(container), st.st_size, i, 0) < 0) {
            free(u);
            snprintf(message, DELIVER_OUT_MESSAGE_MAX, "cannot read output %zu", i);
            goto out;
        }
    }
    qsort(pl.items, pl.n, sizeof(*pl.items), by_rank);

    struct progress_ctx pc = {p, 0, pl.total, -1};
    if (p->on_progress)
        p->on_progress(p->opaque, 0, pl.total);
    log_info("job deliver id=%s files=%zu bytes=%lld", p->id, pl.n, (long long)pl.total);
    for (size_t k = 0; k < pl.n; k++) {
        const struct item *it = &pl.items[k];
        struct net_put_result pr;
        struct net_put_params pp = {
            .url = it->url,
            .path = it->path,
            .content_type = it->mime,
            .rule = p->rule,
            .tries = DELIVER_OUT_TRIES,
            .on_progress = on_put_progress,
            .ctx = &pc,
        };
        int rc = net_put(&pp, &pr);
        const char *name = json_string_value(
            json_object_get(json_object_get(json_array_get(outs, it->output), "spec"), "name"));
        if (rc == NET_PUT_CANCELED) {
            log_info("job deliver stopped id=%s", p->id);
            ret = 1;
            goto out;
        }
        if (rc != NET_PUT_OK) {
            const char *slash = strrchr(it->path, '/');
            log_warn("job deliver failed id=%s output=%s file=%s tries=%u status=%ld error=%s",
                     p->id, name ? name : "?", slash ? slash + 1 : it->path, pr.tries,
                     pr.http_status, pr.error);
            snprintf(code, DELIVER_OUT_CODE_MAX, "output_undeliverable");
            if (snprintf(message, DELIVER_OUT_MESSAGE_MAX,
                         "output '%.64s' (%.64s) not delivered after %u %s: %s",
                         name ? name : "?", slash ? slash + 1 : it->path, pr.tries,
                         pr.tries == 1 ? "try" : "tries", pr.error) >= DELIVER_OUT_MESSAGE_MAX)
                log_debug("job deliver message cut id=%s", p->id);
            goto out;
        }
        pc.done += it->size;
    }
    /* Every output with an upload_url arrived: say where. */
    json_array_foreach(outs, i, o) {
        json_t *url = json_object_get(o, "upload_url");
        json_t *r = json_array_get(results, i);
        if (!json_is_string(url) || !json_is_object(r))
            continue;
        json_object_set(r, "delivered_to", url);
        const char *container =
            json_string_value(json_object_get(json_object_get(o, "spec"), "container"));
        if (container && tc_container_is_folder(container)) {
            json_int_t files = 0;
            for (size_t k = 0; k < pl.n; k++)
                files += pl.items[k].output == i;
            json_object_set_new(r, "delivered_files", json_integer(files));
        }
    }
    char *text = json_dumps(results, JSON_COMPACT);
    if (!text) {
        snprintf(message, DELIVER_OUT_MESSAGE_MAX, "out of memory");
        goto out;
    }
    free(*results_json);
    *results_json = text;
    log_info("job delivered id=%s files=%zu bytes=%lld", p->id, pl.n, (long long)pl.total);
    ret = 0;
out:
    plan_free(&pl);
    json_decref(results);
    json_decref(outs);
    return ret;
}
