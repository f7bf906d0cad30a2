/* job.c - see job.h. */
#define _GNU_SOURCE
#include "store/job.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <transcode/tc.h>

#include "common/log.h"

static const char *const status_names[] = {"queued", "running", "succeeded", "failed",
                                           "canceled"};

const char *job_status_name(enum job_status s)
{
    if ((unsigned)s < sizeof(status_names) / sizeof(status_names[0]))
        return status_names[s];
    return "unknown";
}

int job_status_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (strcmp(name, status_names[i]) == 0)
            return (int)i;
    return -1;
}

int job_status_is_final(enum job_status s)
{
    return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELED;
}

int job_id_new(char id[JOB_ID_SIZE])
{
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    /* 128 bits = 21 full sextets + 2 bits. */
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof(raw); i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            id[o++] = b64url[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        id[o++] = b64url[(acc << (6 - bits)) & 63];
    id[o] = '\0';
    return 0;
}

int job_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
        if (n > JOB_ID_LEN)
            return 0;
    }
    return n == JOB_ID_LEN;
}

void job_clear(struct job *job)
{
    free(job->input_path);
    free(job->input_json);
    free(job->outputs_json);
    free(job->results_json);
    free(job->metadata_json);
    free(job->webhook_url);
    free(job->error_code);
    free(job->error_message);
    memset(job, 0, sizeof(*job));
}

void job_free(struct job **pp)
{
    if (!pp || !*pp)
        return;
    job_clear(*pp);
    free(*pp);
    *pp = NULL;
}

static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

int job_copy(struct job *dst, const struct job *src)
{
    *dst = *src;
    int bad = 0;
    bad |= dup_str(&dst->input_path, src->input_path);
    bad |= dup_str(&dst->input_json, src->input_json);
    bad |= dup_str(&dst->outputs_json, src->outputs_json);
    bad |= dup_str(&dst->results_json, src->results_json);
    bad |= dup_str(&dst->metadata_json, src->metadata_json);
    bad |= dup_str(&dst->webhook_url, src->webhook_url);
    bad |= dup_str(&dst->error_code, src->error_code);
    bad |= dup_str(&dst->error_message, src->error_message);
    if (bad) {
        job_clear(dst);
        return -1;
    }
    return 0;
}

double job_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* RFC 3339 UTC with milliseconds, or JSON null for 0. */
static json_t *time_json(double t)
{
    if (t <= 0)
        return json_null();
    time_t sec = (time_t)t;
    struct tm tm;
    gmtime_r(&sec, &tm);
    char buf[64];
    int ms = (int)((t - (double)sec) * 1000.0);
    if (ms > 999)
        ms = 999;
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return json_string(buf);
}

static json_t *parse_or(const char *text, json_t *fallback)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    if (!v)
        return fallback;
    json_decref(fallback);
    return v;
}

/* The extension fields of a folder output's result ("renditions" of hls,
 * "sprite"; see tc_output_result_to_json) onto obj, each file named
 * relative to the folder given as a URL under base; url is the index's. */
static void add_folder_fields(json_t *obj, const json_t *res, const char *base, const char *url)
{
    json_t *list = json_object_get(res, "renditions");
    json_t *sprite = json_object_get(res, "sprite");
    if (json_is_array(list)) {
        json_t *out = json_array();
        size_t k;
        json_t *v;
        json_array_foreach(list, k, v) {
            const char *uri = json_string_value(json_object_get(v, "uri"));
            char u[512];
            if (!uri || snprintf(u, sizeof(u), "%s/%s", base, uri) >= (int)sizeof(u))
                continue;
            json_t *r = json_pack("{s:O, s:s}", "name", json_object_get(v, "name"), "url", u);
            if (r && json_object_update_missing(r, v) == 0)
                json_object_del(r, "uri");
            json_array_append_new(out, r);
        }
        json_object_set_new(obj, "renditions", out);
    }
    if (json_is_object(sprite)) {
        json_t *c = json_deep_copy(sprite);
        json_object_set_new(c, "vtt_url", json_string(url));
        json_object_set_new(obj, "sprite", c);
    }
}

static json_t *outputs_to_json(const struct job *job)
{
    json_t *list = json_array();
    json_t *outs = parse_or(job->outputs_json, json_array());
    json_t *results = job_outputs_kept(job) ? parse_or(job->results_json, json_array())
                                            : json_array();
    size_t i;
    json_t *o;
    json_array_foreach(outs, i, o) {
        json_t *spec = json_object_get(o, "spec");
        const char *name = json_string_value(json_object_get(spec, "name"));
        const char *container = json_string_value(json_object_get(spec, "container"));
        json_t *preset = json_object_get(o, "preset");
        json_t *res = json_array_get(results, i);
        char base[256], url[320];
        if (!name || !container)
            continue;
        snprintf(base, sizeof(base), "/v1/jobs/%s/outputs/%s", job->id, name);
        if (tc_container_is_folder(container))
            snprintf(url, sizeof(url), "%s/%s", base, tc_container_index(container));
        else
            snprintf(url, sizeof(url), "%s", base);
        json_t *size = json_object_get(res, "size");
        json_t *dur = json_object_get(res, "duration_s");
        json_t *video = json_object_get(res, "video");
        json_t *audio = json_object_get(res, "audio");
        json_t *obj = json_pack("{s:s, s:O, s:s, s:s, s:O, s:s, s:O, s:O, s:O}", "name", name,
                                "preset", preset ? preset : json_null(), "container",
                                container, "url", url, "size", size ? size : json_null(),
                                "mime", tc_container_mime(container), "duration_s",
                                dur ? dur : json_null(), "video", video ? video : json_null(),
                                "audio", audio ? audio : json_null());
        if (obj && tc_container_is_folder(container))
            add_folder_fields(obj, res, base, url);
        if (obj && json_object_get(res, "delivered_to")) { /* upload_url */
            json_object_set(obj, "delivered_to", json_object_get(res, "delivered_to"));
            if (json_object_get(res, "delivered_files"))
                json_object_set(obj, "delivered_files", json_object_get(res, "delivered_files"));
        }
        json_array_append_new(list, obj);
    }
    json_decref(outs);
    json_decref(results);
    return list;
}

json_t *job_to_json(const struct job *job, long queue_position)
{
    const struct job_progress *p = &job->progress;
    int running = job->status == JOB_RUNNING;
    double percent = job->status == JOB_SUCCEEDED ? 100.0 : p->percent;
    if (job->status != JOB_SUCCEEDED && percent >= 100.0)
        percent = 99.9;
    json_t *progress =
        json_pack("{s:f, s:f, s:I, s:f, s:f, s:o}", "percent", percent, "out_time_s", p->out_time_s,
                  "frames", (json_int_t)p->frames, "fps", p->fps, "speed", p->speed, "eta_s",
                  running && p->eta_s >= 0 ? json_real(p->eta_s)
                                           : (job->status == JOB_SUCCEEDED ? json_real(0)
                                                                           : json_null()));
    json_t *error = job->error_code ? json_pack("{s:s, s:s}", "code", job->error_code, "message",
                                                job->error_message ? job->error_message : "")
                                    : json_null();
    json_t *obj = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:o}", "id", job->id, "status",
        job_status_name(job->status), "progress", progress, "queue_position",
        job->status == JOB_QUEUED && queue_position > 0 ? json_integer(queue_position)
                                                        : json_null(),
        "created_at", time_json(job->created_at), "started_at", time_json(job->started_at),
        "finished_at", time_json(job->finished_at), "attempts", job->attempts, "input",
        parse_or(job->input_json, json_object()), "outputs", outputs_to_json(job), "error", error,
        "metadata", parse_or(job->metadata_json, json_object()));
    if (obj) {
        json_object_set_new(obj, "priority", json_integer(job->priority));
        json_object_set_new(obj, "expires_at", time_json(job_expires_at(job)));
        json_object_set_new(obj, "expired", json_boolean(job_is_expired(job, job_now())));
    }
    if (obj && running && p->phase[0]) { /* progress is obj's now */
        json_object_set_new(progress, "phase", json_string(p->phase));
        if (strcmp(p->phase, "fetching") == 0)
            json_object_set_new(progress, "fetch",
                                json_pack("{s:I, s:o, s:o}", "bytes", (json_int_t)p->fetch_bytes,
                                          "total", p->fetch_total >= 0 ? json_integer(p->fetch_total) : json_null(),
                                          "percent", p->fetch_total > 0
                                              ? json_real(100.0 * (double)p->fetch_bytes / (double)p->fetch_total)
                                              : json_null()));
        if (strcmp(p->phase, "delivering") == 0)
            json_object_set_new(progress, "deliver",
                                json_pack("{s:I, s:I, s:o}", "bytes", (json_int_t)p->deliver_bytes,
                                          "total", (json_int_t)p->deliver_total,
                                          "percent", p->deliver_total > 0
                                              ? json_real(100.0 * (double)p->deliver_bytes / (double)p->deliver_total)
                                              : json_null()));
    }
    return obj;
}

double job_expires_at(const struct job *job)
{
    if (job->expires_at > 0)
        return job->expires_at;
    if (job->finished_at > 0 && job->ttl_s > 0)
        return job->finished_at + job->ttl_s;
    return 0;
}

int job_outputs_kept(const struct job *job)
{
    return job->status == JOB_SUCCEEDED ||
           (job->status == JOB_FAILED && job->error_code &&
            strcmp(job->error_code, "output_undeliverable") == 0);
}

int job_is_expired(const struct job *job, double now)
{
    double at = job_expires_at(job);
    return job->expired || (at > 0 && now >= at);
}

static int fit(int n, size_t cap) { return n < 0 || (size_t)n >= cap ? -1 : 0; }

int job_input_path(char *buf, size_t cap, const char *data_dir, const char *id)
{
    return fit(snprintf(buf, cap, "%s/inputs/%s", data_dir, id), cap);
}

int job_output_dir(char *buf, size_t cap, const char *data_dir, const char *id)
{
    return fit(snprintf(buf, cap, "%s/outputs/%s", data_dir, id), cap);
}

int job_output_path(char *buf, size_t cap, const char *data_dir, const char *id,
                    const char *name, const char *container)
{
    return job_attempt_output_path(buf, cap, data_dir, id, 0, name, container);
}

int job_attempt_dir(char *buf, size_t cap, const char *data_dir, const char *id, int attempt)
{
    if (attempt <= 0)
        return job_output_dir(buf, cap, data_dir, id);
    return fit(snprintf(buf, cap, "%s/outputs/%s/" JOB_ATTEMPT_PREFIX "%d", data_dir, id,
                        attempt),
               cap);
}

int job_attempt_output_path(char *buf, size_t cap, const char *data_dir, const char *id,
                            int attempt, const char *name, const char *container)
{
    char dir[1400];
    if (job_attempt_dir(dir, sizeof(dir), data_dir, id, attempt) < 0)
        return -1;
    if (tc_container_is_folder(container))
        return fit(snprintf(buf, cap, "%s/%s", dir, name), cap);
    return fit(snprintf(buf, cap, "%s/%s.%s", dir, name, tc_container_ext(container)), cap);
}

int job_served_dir(char *buf, size_t cap, const char *data_dir, const struct job *job)
{
    struct stat sb;
    /* A job that succeeded before attempts had folders (or on one node)
     * has none: its files are in the plain folder. */
    if (job->attempts > 0 &&
        job_attempt_dir(buf, cap, data_dir, job->id, job->attempts) == 0 &&
        stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode))
        return 0;
    return job_output_dir(buf, cap, data_dir, job->id);
}

static int rm_tree_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static int rm_tree(const char *dir)
{
    if (access(dir, F_OK) != 0)
        return 0;
    return nftw(dir, rm_tree_cb, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

int job_remove_outputs(const char *data_dir, const char *id)
{
    char dir[1400];
    if (job_output_dir(dir, sizeof(dir), data_dir, id) < 0)
        return -1;
    return rm_tree(dir);
}

int job_remove_attempt(const char *data_dir, const char *id, int n)
{
    char dir[1400];
    if (n <= 0 || job_attempt_dir(dir, sizeof(dir), data_dir, id, n) < 0)
        return -1;
    return rm_tree(dir);
}

int job_remove_other_attempts(const char *data_dir, const char *id, int keep)
{
    char dir[1400], sub[1500];
    int ret = 0;
    if (job_output_dir(dir, sizeof(dir), data_dir, id) < 0)
        return -1;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    const size_t plen = strlen(JOB_ATTEMPT_PREFIX);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, JOB_ATTEMPT_PREFIX, plen) != 0)
            continue;
        char *end = NULL;
        long n = strtol(e->d_name + plen, &end, 10);
        /* Not ours to judge (a name this code never makes): left alone. */
        if (end == e->d_name + plen || *end != '\0' || n <= 0)
            continue;
        if (n == keep)
            continue;
        if (snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub) ||
            rm_tree(sub) < 0)
            ret = -1;
        else
            log_info("stale attempt folder removed id=%s attempt=%ld", id, n);
    }
    closedir(d);
    return ret;
}
