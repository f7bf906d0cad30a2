/*
 * upload.c - POST /upload and POST /v1/jobs: multipart/form-data (MHD's
 * post processor) or a raw body, streamed into a temporary file in the
 * data dir as it arrives (memory stays flat), then probed and turned into
 * a job by upload_submit, the path tus uploads reuse, in a thread of its
 * own while the connection waits suspended (offload.h).
 *
 * A request's body is checked while it arrives: over --max-upload-bytes
 * stops writing at once (413), a full disk stops it (507); the rest of the
 * body is read and dropped, then the error is answered. A body cut off
 * mid-way ends in upload_free, which deletes the temporary file: no job,
 * no file.
 */
#define _GNU_SOURCE
#include "http/upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "common/log.h"
#include "hooks/deliver.h"
#include "http/disk.h"
#include "http/input_url.h"
#include "jobs/worker.h"
#include "net/target.h"

enum { POST_BUFFER = 64 * 1024, MAX_OUTPUTS = 16, PROBE_TIMEOUT_S = 30 };

struct upload {
    struct http_server *h;
    int fd;
    char tmp_path[1200];
    int64_t bytes;
    int multipart;
    int url_query;    /* ?input_url=: no body */
    int json_body;    /* application/json: options and input_url (input_url.h) */
    char *body_text;  /* the JSON body so far */
    struct MHD_PostProcessor *pp;
    int file_parts;
    int failed;
    struct api_error err;
    struct upload_options opts;
    /* The probe and submit, off the HTTP thread (submit_step): 1 while
     * they run, 2 once their answer waits to be sent. */
    int submit_state;
    char submit_path[1200];
    int submit_rc;
    char *answer;
    size_t answer_len;
    char answer_id[JOB_ID_SIZE];
    struct api_error answer_err;
};

void upload_options_clear(struct upload_options *o)
{
    free(o->outputs);
    free(o->webhook_url);
    free(o->metadata);
    free(o->input_url);
    memset(o, 0, sizeof(*o));
}

/* Append a chunk to a capped, NUL-terminated heap string. */
static int append_text(char **dst, const char *data, size_t len, size_t cap)
{
    size_t have = *dst ? strlen(*dst) : 0;
    if (have + len + 1 > cap)
        return -1;
    char *n = realloc(*dst, have + len + 1);
    if (!n)
        return -1;
    memcpy(n + have, data, len);
    n[have + len] = '\0';
    *dst = n;
    return 0;
}

/* Append to a fixed buffer; sep is put first when the buffer is not
 * empty and this is the start of a new value. */
static int append_fixed(char *buf, size_t cap, const char *sep, const char *data, size_t len)
{
    size_t have = strlen(buf);
    size_t sl = sep && have ? strlen(sep) : 0;
    if (have + sl + len + 1 > cap)
        return -1;
    if (sl)
        memcpy(buf + have, sep, sl);
    memcpy(buf + have + sl, data, len);
    buf[have + sl + len] = '\0';
    return 0;
}

/* The last path component, without control characters. */
static void set_filename(struct upload_options *o, const char *name)
{
    const char *base = name;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    size_t n = 0;
    for (const char *p = base; *p && n + 1 < sizeof(o->filename); p++)
        if ((unsigned char)*p >= 0x20 && *p != 0x7f)
            o->filename[n++] = *p;
    o->filename[n] = '\0';
}

/* One option field (from the query string or a multipart text part).
 * first is 1 at the start of a value. */
static int option_field(struct upload_options *o, const char *key, const char *data, size_t len,
                        int first, struct api_error *e)
{
    int bad = 0;
    if (strcmp(key, "preset") == 0 || strcmp(key, "presets") == 0)
        bad = append_fixed(o->presets, sizeof(o->presets), first ? "," : NULL, data, len);
    else if (strcmp(key, "outputs") == 0)
        bad = append_text(&o->outputs, data, len, UPLOAD_OUTPUTS_MAX);
    else if (strcmp(key, "webhook_url") == 0)
        bad = append_text(&o->webhook_url, data, len, UPLOAD_URL_MAX);
    else if (strcmp(key, "input_url") == 0)
        bad = append_text(&o->input_url, data, len, UPLOAD_URL_MAX);
    else if (strcmp(key, "metadata") == 0)
        bad = append_text(&o->metadata, data, len, UPLOAD_METADATA_MAX);
    else if (strcmp(key, "priority") == 0) {
        if (first)
            o->priority[0] = '\0';
        bad = append_fixed(o->priority, sizeof(o->priority), NULL, data, len);
    } else if (strcmp(key, "ttl_s") == 0) {
        if (first)
            o->ttl_s[0] = '\0';
        bad = append_fixed(o->ttl_s, sizeof(o->ttl_s), NULL, data, len);
    } else if (strcmp(key, "clip") == 0) {
        if (first)
            o->clip[0] = '\0';
        bad = append_fixed(o->clip, sizeof(o->clip), NULL, data, len);
    } else if (strcmp(key, "filename") == 0) {
        char tmp[UPLOAD_FILENAME_MAX];
        if (len >= sizeof(tmp))
            bad = 1;
        else {
            memcpy(tmp, data, len);
            tmp[len] = '\0';
            set_filename(o, tmp);
        }
    }
    /* Unknown fields are ignored, as form posts often carry extras. */
    if (bad)
        return api_error_set(e, "bad_request", "the field '%s' is too long", key);
    return 0;
}

int upload_options_set(struct upload_options *o, const char *key, const char *value, size_t len,
                       struct api_error *e)
{
    return option_field(o, key, value, len, 1, e);
}

struct query_ctx {
    struct upload_options *o;
    struct api_error *e;
    int failed;
};

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct query_ctx *q = cls;
    if (!key || !value)
        return MHD_YES;
    if (option_field(q->o, key, value, strlen(value), 1, q->e) < 0) {
        q->failed = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

int upload_options_from_query(struct MHD_Connection *conn, struct upload_options *o,
                              struct api_error *e)
{
    struct query_ctx q = {o, e, 0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_iter, &q);
    return q.failed ? -1 : 0;
}

/* The upload's "clip" (JSON {"start_s", "end_s"}, or "S-E" as the command
 * line takes it) into *start / *end. Returns 0 or -1 with e filled. */
static int parse_clip(const char *text, double *start, double *end, struct api_error *e)
{
    struct tc_error terr;
    json_t *c = NULL;
    int ret = -1;
    memset(&terr, 0, sizeof(terr));
    const char *p = text;
    while (*p == ' ')
        p++;
    if (*p == '{') {
        c = json_loads(p, 0, NULL);
        if (!c) {
            api_error_set(e, "bad_request", "clip must be a JSON object {\"start_s\": f, \"end_s\": f}");
            goto out;
        }
    } else {
        /* "2.5-10", "2.5-", "-10" */
        const char *dash = strchr(p, '-');
        char *endp = NULL;
        double s = 0, t = 0;
        if (!dash)
            goto bad;
        if (dash > p) {
            errno = 0;
            s = strtod(p, &endp);
            if (errno || endp != dash)
                goto bad;
        }
        if (dash[1]) {
            errno = 0;
            t = strtod(dash + 1, &endp);
            if (errno || *endp)
                goto bad;
        }
        if (!(c = json_object()))
            goto bad;
        if (dash > p)
            json_object_set_new(c, "start_s", json_real(s));
        if (dash[1])
            json_object_set_new(c, "end_s", json_real(t));
    }
    if (tc_clip_parse(c, start, end, &terr) < 0) {
        api_error_set(e, "bad_request", "%s", terr.message);
        goto out;
    }
    ret = 0;
    goto out;
bad:
    api_error_set(e, "bad_request", "clip must be {\"start_s\": f, \"end_s\": f} or START-END in seconds");
out:
    json_decref(c);
    return ret;
}

static double max_ttl_s = 30 * 86400;

/* --fetch-targets, for the part of the rule an upload_url's text shows
 * (an address literal, localhost); set at start like max_ttl_s. */
static struct net_targets upload_rule = {.deny_private = 1, .allow_loopback = 0};

void upload_set_fetch_targets(const struct net_targets *rule) { upload_rule = *rule; }

void upload_set_max_ttl(double max_s) { max_ttl_s = max_s; }

/* The ttl_s asked for: 0 when none, -1 when it is not a number of
 * seconds from 1 to --max-retention. */
static double ttl_of(const struct upload_options *o);

double upload_options_ttl(const struct upload_options *o) { return ttl_of(o); }

static double ttl_of(const struct upload_options *o)
{
    if (!o->ttl_s[0])
        return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(o->ttl_s, &end);
    if (errno || end == o->ttl_s || *end || !(v >= 1 && v <= max_ttl_s))
        return -1;
    return v;
}

/* Parse and check the options; fills specs (n of them) and, if wanted,
 * the outputs JSON text. */
static int check_options(const struct upload_options *o, struct tc_output_spec *specs,
                         size_t *n, char **outputs_json, int *priority, struct api_error *e)
{
    int ret = -1;
    json_t *list = json_array();
    json_t *given = NULL, *meta = NULL;
    struct tc_error terr;
    char presets[UPLOAD_PRESETS_MAX];
    *n = 0;
    if (!list) {
        api_error_set(e, "internal_error", "out of memory");
        goto out;
    }
    snprintf(presets, sizeof(presets), "%s", o->presets);
    char *save = NULL;
    for (char *tok = strtok_r(presets, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t tl = strlen(tok);
        while (tl > 0 && tok[tl - 1] == ' ')
            tok[--tl] = '\0';
        if (!*tok)
            continue;
        if (*n >= MAX_OUTPUTS) {
            api_error_set(e, "invalid_output", "at most %d outputs per job", MAX_OUTPUTS);
            goto out;
        }
        memset(&terr, 0, sizeof(terr));
        if (tc_preset_find(tok, &specs[*n], &terr) < 0) {
            api_error_set(e, "invalid_preset", "unknown preset '%.64s' (see GET /v1/presets)",
                          tok);
            goto out;
        }
        json_array_append_new(list, json_pack("{s:s, s:o}", "preset", tok, "spec",
                                              tc_spec_to_json(&specs[*n])));
        (*n)++;
    }
    if (o->outputs && *o->outputs) {
        json_error_t jerr;
        given = json_loads(o->outputs, 0, &jerr);
        if (json_is_object(given)) { /* one spec alone is fine too */
            json_t *arr = json_array();
            json_array_append(arr, given);
            json_decref(given);
            given = arr;
        }
        if (!json_is_array(given)) {
            api_error_set(e, "invalid_output", "outputs must be a JSON array of output specs");
            goto out;
        }
        size_t i;
        json_t *spec;
        json_array_foreach(given, i, spec) {
            if (*n >= MAX_OUTPUTS) {
                api_error_set(e, "invalid_output", "at most %d outputs per job", MAX_OUTPUTS);
                goto out;
            }
            /* "upload_url" is the service's (where the file goes), not the
             * transcode library's: checked here and kept beside the spec. */
            json_t *given_url = json_object_get(spec, "upload_url");
            char upload_url[NET_URL_MAX + 1] = "";
            if (given_url) {
                char what[48], why[320];
                snprintf(what, sizeof(what), "outputs[%zu].upload_url", i);
                if (!json_is_string(given_url)) {
                    api_error_set(e, "invalid_output", "%s must be a string", what);
                    goto out;
                }
                if (net_url_target_check(json_string_value(given_url), what, &upload_rule, why,
                                         sizeof(why)) != 0) {
                    api_error_set(e, "invalid_output", "%s", why);
                    goto out;
                }
                snprintf(upload_url, sizeof(upload_url), "%s", json_string_value(given_url));
                json_object_del(spec, "upload_url"); /* given is ours */
            }
            memset(&terr, 0, sizeof(terr));
            if (tc_spec_parse(spec, &specs[*n], &terr) < 0) {
                api_error_set(e, "invalid_output", "outputs[%zu]: %s", i, terr.message);
                goto out;
            }
            /* A spec built on a preset ({"preset":"hls", ...}) names it in
             * the job's outputs, as a preset given by name does. */
            json_t *base = json_object_get(spec, "preset");
            json_t *entry = json_pack("{s:O, s:o}", "preset",
                                      json_is_string(base) ? base : json_null(), "spec",
                                      tc_spec_to_json(&specs[*n]));
            if (entry && upload_url[0])
                json_object_set_new(entry, "upload_url", json_string(upload_url));
            json_array_append_new(list, entry);
            (*n)++;
        }
    }
    if (*n == 0) {
        memset(&terr, 0, sizeof(terr));
        if (tc_preset_find("mp4-720p", &specs[0], &terr) < 0) {
            api_error_set(e, "internal_error", "the default preset is missing");
            goto out;
        }
        json_array_append_new(list, json_pack("{s:s, s:o}", "preset", "mp4-720p", "spec",
                                              tc_spec_to_json(&specs[0])));
        *n = 1;
    }
    if (json_array_size(list) != *n) {
        api_error_set(e, "internal_error", "out of memory");
        goto out;
    }
    if (o->clip[0]) {
        /* The job's clip holds for every output (one decode feeds them). */
        double cs, ce;
        if (parse_clip(o->clip, &cs, &ce, e) < 0)
            goto out;
        for (size_t i = 0; i < *n; i++) {
            specs[i].clip_start_s = cs;
            specs[i].clip_end_s = ce;
            json_t *sj = tc_spec_to_json(&specs[i]);
            if (!sj || json_object_set_new(json_array_get(list, i), "spec", sj) < 0) {
                api_error_set(e, "internal_error", "out of memory");
                goto out;
            }
        }
    }
    for (size_t i = 1; i < *n; i++)
        if (specs[i].clip_start_s != specs[0].clip_start_s ||
            specs[i].clip_end_s != specs[0].clip_end_s) {
            api_error_set(e, "bad_request",
                          "clip: outputs '%s' and '%s' have different clips; give one clip for the job",
                          specs[0].name, specs[i].name);
            goto out;
        }
    for (size_t a = 0; a < *n; a++)
        for (size_t b = a + 1; b < *n; b++)
            if (strcmp(specs[a].name, specs[b].name) == 0) {
                api_error_set(e, "invalid_output",
                              "two outputs are named '%s'; give each a unique name",
                              specs[a].name);
                goto out;
            }
    *priority = 0;
    if (o->priority[0]) {
        char *end = NULL;
        errno = 0;
        long v = strtol(o->priority, &end, 10);
        if (errno || end == o->priority || *end || v < -1000000 || v > 1000000) {
            api_error_set(e, "bad_request", "priority must be an integer (higher runs first)");
            goto out;
        }
        *priority = (int)v;
    }
    if (ttl_of(o) < 0) {
        api_error_set(e, "bad_request",
                      "ttl_s must be a number of seconds from 1 to %.0f (--max-retention)",
                      max_ttl_s);
        goto out;
    }
    if (o->metadata && *o->metadata) {
        meta = json_loads(o->metadata, 0, NULL);
        if (!json_is_object(meta)) {
            api_error_set(e, "bad_request", "metadata must be a JSON object");
            goto out;
        }
    }
    if (o->webhook_url && *o->webhook_url) {
        char why[256];
        if (hook_url_check(o->webhook_url, why, sizeof(why)) != 0) {
            api_error_set(e, "bad_request", "webhook_url: %s", why);
            goto out;
        }
    }
    if (outputs_json) {
        *outputs_json = json_dumps(list, JSON_COMPACT);
        if (!*outputs_json) {
            api_error_set(e, "internal_error", "out of memory");
            goto out;
        }
    }
    ret = 0;
out:
    json_decref(meta);
    json_decref(given);
    json_decref(list);
    return ret;
}

int upload_options_check(const struct upload_options *o, char **outputs_json,
                         struct api_error *e)
{
    struct tc_output_spec specs[MAX_OUTPUTS];
    size_t n;
    int priority;
    return check_options(o, specs, &n, outputs_json, &priority, e);
}

int upload_tmp_open(struct http_server *h, char *path, size_t cap, struct api_error *e)
{
    if (snprintf(path, cap, "%s/upload-XXXXXX", h->tmp_dir) >= (int)cap)
        return api_error_set(e, "internal_error", "temporary path too long");
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        path[0] = '\0';
        if (errno == ENOSPC || errno == EDQUOT)
            return api_error_set(e, "insufficient_storage", "the server's disk is full");
        log_error("cannot create an upload file in %s: %s", h->tmp_dir, strerror(errno));
        return api_error_set(e, "internal_error", "cannot store the upload");
    }
    return fd;
}

int upload_write(struct http_server *h, int fd, const char *data, size_t len,
                 struct api_error *e)
{
    if (disk_guard_write(h->disk, len) < 0)
        return api_error_set(e, "insufficient_storage",
                             "the server's disk is nearly full (under its --min-free-bytes); "
                             "the upload was dropped; retry later");
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            if (errno == ENOSPC || errno == EDQUOT)
                return api_error_set(e, "insufficient_storage",
                                     "the server's disk is full; the upload was dropped");
            log_error("writing an upload failed: %s", strerror(errno));
            return api_error_set(e, "internal_error", "cannot store the upload");
        }
        data += w;
        len -= (size_t)w;
        atomic_fetch_add(&h->bytes_uploaded, (long long)w);
    }
    return 0;
}

int upload_record_failed(struct http_server *h, const struct upload_options *o, int64_t size,
                         const json_t *input, const struct api_error *why)
{
    int ret = -1;
    struct job job;
    struct api_error e;
    char input_path[1400];
    char *outputs_json = NULL;
    json_t *in = NULL;
    memset(&job, 0, sizeof(job));
    if (!job_id_valid(o->job_id))
        return -1;
    snprintf(job.id, sizeof(job.id), "%s", o->job_id);
    /* The outputs and priority asked for, when they still parse (they did
     * at creation). */
    struct tc_output_spec specs[MAX_OUTPUTS];
    size_t n = 0;
    int priority = 0;
    if (check_options(o, specs, &n, &outputs_json, &priority, &e) < 0) {
        free(outputs_json);
        outputs_json = NULL;
        priority = 0;
    }
    in = input ? json_deep_copy(input) : json_object();
    if (in && !input) {
        if (o->filename[0])
            json_object_set_new(in, "filename", json_string(o->filename));
        json_object_set_new(in, "size", json_integer(size));
        json_object_set_new(in, "format", json_null());
        json_object_set_new(in, "duration_s", json_null());
        json_object_set_new(in, "video", json_null());
        json_object_set_new(in, "audio", json_null());
    }
    job.priority = priority;
    job.ttl_s = ttl_of(o) > 0 ? ttl_of(o) : h->cfg->retention;
    job.input_json = in ? json_dumps(in, JSON_COMPACT) : NULL;
    job.outputs_json = outputs_json ? outputs_json : strdup("[]");
    outputs_json = NULL;
    job.metadata_json = strdup(o->metadata && *o->metadata ? o->metadata : "{}");
    job.webhook_url = o->webhook_url && *o->webhook_url ? strdup(o->webhook_url) : NULL;
    job.error_code = strdup(why->code ? why->code : "internal_error");
    job.error_message = strdup(why->message);
    if (job_input_path(input_path, sizeof(input_path), h->cfg->data_dir, job.id) < 0 ||
        !(job.input_path = strdup(input_path)) || !job.input_json || !job.outputs_json ||
        !job.metadata_json || !job.error_code || !job.error_message) {
        log_error("job %s: out of memory recording its refusal", o->job_id);
        goto out;
    }
    int rc = sched_record_failed(h->sched, &job, NULL, NULL);
    if (rc != SCHED_OK) {
        log_error("job %s: cannot record its refusal (%s): sched error %d", o->job_id,
                  job.error_code, rc);
        goto out;
    }
    ret = 0;
out:
    json_decref(in);
    free(outputs_json);
    job_clear(&job);
    return ret;
}

int upload_submit(struct http_server *h, const char *tmp_path, const struct upload_options *o,
                  int64_t size, char **json, size_t *json_len, char id[JOB_ID_SIZE],
                  struct api_error *e, int *failed_job)
{
    int ret = -1;
    struct tc_output_spec specs[MAX_OUTPUTS];
    size_t n = 0;
    int priority = 0;
    char *outputs_json = NULL;
    char input_path[1400];
    int moved = 0;
    struct job job;
    struct tc_media_info info;
    struct tc_error terr;
    json_t *input = NULL;

    memset(&job, 0, sizeof(job));
    memset(&terr, 0, sizeof(terr));
    if (failed_job)
        *failed_job = 0;
    /* The first read of an untrusted file: isolated like a job (a child
     * in process mode), so a hostile file costs this upload, not the server. */
    struct worker_probe_params probe = {
        .isolation = h->cfg->isolation == CONFIG_ISOLATION_THREAD ? WORKER_THREAD : WORKER_PROCESS,
        .exe = "/proc/self/exe",
        .path = tmp_path,
        .max_memory = h->cfg->worker_max_memory,
        .nice = 0, /* the client is waiting for the answer */
        .timeout_s = PROBE_TIMEOUT_S,
    };
    int probed = worker_probe(&probe, &info, &terr);
    if (probed == WORKER_ESANDBOX) {
        api_error_set(e, "sandbox_violation",
                      "the upload was refused because probing it broke the sandbox: %s",
                      terr.message[0] ? terr.message : "a forbidden act");
        goto out;
    }
    if (probed < 0) {
        api_error_set(e, "unsupported_media", "the upload is not a decodable audio/video file: %s",
                      terr.message[0] ? terr.message : tc_strerror(TC_EUNSUPPORTED));
        goto out;
    }
    input = tc_media_info_to_json(&info, o->filename[0] ? o->filename : NULL);
    if (input && size >= 0)
        json_object_set_new(input, "size", json_integer(size));
    if (check_options(o, specs, &n, &outputs_json, &priority, e) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        memset(&terr, 0, sizeof(terr));
        int rc = tc_spec_check_input(&specs[i], &info, &terr);
        if (rc < 0) {
            api_error_set(e, http_code_for_tc(rc), "output '%s': %s", specs[i].name,
                          terr.message[0] ? terr.message : tc_strerror(rc));
            goto out;
        }
    }
    if (o->job_id[0])
        snprintf(job.id, sizeof(job.id), "%s", o->job_id);
    else if (job_id_new(job.id) < 0) {
        api_error_set(e, "internal_error", "no random id available");
        goto out;
    }
    job.input_json = input ? json_dumps(input, JSON_COMPACT) : NULL;
    job.outputs_json = outputs_json;
    outputs_json = NULL;
    job.metadata_json = strdup(o->metadata && *o->metadata ? o->metadata : "{}");
    job.webhook_url = o->webhook_url && *o->webhook_url ? strdup(o->webhook_url) : NULL;
    job.priority = priority;
    job.ttl_s = ttl_of(o) > 0 ? ttl_of(o) : h->cfg->retention;
    if (job_input_path(input_path, sizeof(input_path), h->cfg->data_dir, job.id) < 0 ||
        !(job.input_path = strdup(input_path)) || !job.input_json || !job.metadata_json) {
        api_error_set(e, "internal_error", "out of memory");
        goto out;
    }
    if (rename(tmp_path, input_path) < 0) {
        log_error("cannot move %s to %s: %s", tmp_path, input_path, strerror(errno));
        api_error_set(e, "internal_error", "cannot store the upload");
        goto out;
    }
    moved = 1;
    /* A tus upload passed the queue cap when it was created: its bytes are
     * in, so it is queued whatever the queue looks like now. */
    int rc = sched_submit(h->sched, &job, o->job_id[0] != 0, json, json_len);
    if (rc != SCHED_OK) {
        const char *code = http_code_for_sched(rc);
        api_error_set(e, code, "%s",
                      rc == SCHED_EQUEUE_FULL ? "the queue is full; try again later"
                      : rc == SCHED_ESHUTDOWN ? "the server is shutting down"
                                              : "the job store failed");
        goto out;
    }
    snprintf(id, JOB_ID_SIZE, "%s", job.id);
    moved = 0; /* the job owns the input now */
    ret = 0;
out:
    if (ret < 0) {
        unlink(moved ? input_path : tmp_path);
        if (o->job_id[0] && upload_record_failed(h, o, size, input, e) == 0 && failed_job)
            *failed_job = 1;
    }
    json_decref(input);
    free(outputs_json);
    job_clear(&job);
    return ret;
}

/* ------------------------------------------------------- the request */

void upload_free(struct upload **pp)
{
    if (!pp || !*pp)
        return;
    struct upload *u = *pp;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp_path[0]) /* not handed to a job: a cut-off or refused body */
        unlink(u->tmp_path);
    upload_options_clear(&u->opts);
    free(u->body_text);
    free(u->answer);
    if (u->submit_state) /* its answer was sent, or its client went away */
        offload_end(&u->h->offload);
    free(u);
    *pp = NULL;
}

static void fail(struct upload *u, const struct api_error *e)
{
    if (u->failed)
        return;
    u->failed = 1;
    u->err = *e;
    /* Nothing of a refused upload stays on disk, even while the rest of
     * its body is still being read and dropped. */
    if (u->fd >= 0) {
        close(u->fd);
        u->fd = -1;
    }
    if (u->tmp_path[0]) {
        unlink(u->tmp_path);
        u->tmp_path[0] = '\0';
    }
}

static int add_bytes(struct http_server *h, struct upload *u, const char *data, size_t len)
{
    struct api_error e;
    if (u->bytes + (int64_t)len > h->cfg->max_upload_bytes) {
        api_error_set(&e, "too_large", "the upload is larger than this server's limit of %lld bytes",
                      (long long)h->cfg->max_upload_bytes);
        fail(u, &e);
        return -1;
    }
    if (upload_write(h, u->fd, data, len, &e) < 0) {
        fail(u, &e);
        return -1;
    }
    u->bytes += (int64_t)len;
    return 0;
}

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *filename, const char *content_type,
                                 const char *transfer_encoding, const char *data, uint64_t off,
                                 size_t size)
{
    struct upload *u = cls;
    struct api_error e;
    if (u->failed || !key)
        return u->failed ? MHD_NO : MHD_YES;
    if (strcmp(key, "file") == 0) {
        if (off == 0) {
            if (u->file_parts++ > 0) {
                api_error_set(&e, "bad_request", "send one file part named 'file', not several");
                fail(u, &e);
                return MHD_NO;
            }
            if (filename && *filename && !u->opts.filename[0])
                set_filename(&u->opts, filename);
        }
        return size == 0 || add_bytes(u->h, u, data, size) == 0 ? MHD_YES : MHD_NO;
    }
    if (option_field(&u->opts, key, data, size, off == 0, &e) < 0) {
        fail(u, &e);
        return MHD_NO;
    }
    return MHD_YES;
}

/* The first call: headers only. Refuse what can be refused before the
 * body arrives; else set up the temporary file. */
static enum MHD_Result begin(struct http_server *h, struct MHD_Connection *conn,
                             struct request *rq)
{
    struct api_error e;
    struct upload *u = NULL;
    const char *ctype =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *clen =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

    if (atomic_load(&h->draining))
        return http_rejectf(conn, rq, "shutting_down", "the server is shutting down; upload later");
    if (!ctype)
        ctype = "";
    int multipart = strncasecmp(ctype, "multipart/form-data", 19) == 0;
    int raw = strncasecmp(ctype, "video/", 6) == 0 || strncasecmp(ctype, "audio/", 6) == 0 ||
              strncasecmp(ctype, "application/octet-stream", 24) == 0;
    /* A job from a URL: a JSON body, or ?input_url= with no body. */
    int json_body = strncasecmp(ctype, "application/json", 16) == 0;
    int url_query = !multipart && !json_body &&
                    MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "input_url") != NULL;
    if (json_body || url_query)
        raw = 0;
    if (!multipart && !raw && !json_body && !url_query)
        return http_rejectf(conn, rq, "unsupported_media",
                         "send multipart/form-data with a 'file' part, or a raw body with "
                         "Content-Type video/*, audio/* or application/octet-stream");
    long long body_len = 0; /* 0: chunked, not known yet */
    if (clen) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(clen, &end, 10);
        if (errno || end == clen || *end || v < 0)
            return http_rejectf(conn, rq, "bad_request", "bad Content-Length");
        if (v > h->cfg->max_upload_bytes)
            return http_rejectf(conn, rq, "too_large",
                             "the upload (%lld bytes) is larger than this server's limit of "
                             "%lld bytes",
                             v, (long long)h->cfg->max_upload_bytes);
        if (v == 0 && !url_query)
            return http_rejectf(conn, rq, "bad_request", "the upload is empty");
        if (url_query && v > 0)
            return http_rejectf(conn, rq, "bad_request", "send input_url without a body, or a file without input_url");
        if (json_body && v > INPUT_URL_BODY_MAX)
            return http_rejectf(conn, rq, "too_large", "a JSON body is at most %d bytes", INPUT_URL_BODY_MAX);
        body_len = v;
    } else if (!url_query && (!te || !strcasestr(te, "chunked"))) {
        return http_rejectf(conn, rq, "length_required",
                         "send a Content-Length or a chunked body");
    }
    if (sched_queue_full(h->sched))
        return http_rejectf(conn, rq, "queue_full", "the queue is full; try again later");
    /* Before the first byte: a body that would take the disk under its
     * threshold is refused now (a chunked one is checked as it comes). */
    if (disk_guard_admit(h->disk, body_len) < 0)
        return http_rejectf(conn, rq, "insufficient_storage",
                            "the server's disk is nearly full (under its --min-free-bytes); "
                            "retry later");

    u = calloc(1, sizeof(*u));
    if (!u)
        return MHD_NO;
    u->h = h;
    u->fd = -1;
    u->multipart = multipart;
    u->url_query = url_query;
    u->json_body = json_body;
    rq->upload = u;
    if (upload_options_from_query(conn, &u->opts, &e) < 0)
        return http_reject(conn, rq, &e);
    if (json_body || url_query)
        return MHD_YES; /* no file: the job fetches its input */
    /* Options known now are checked now: no body is stored for nothing. */
    if (raw && upload_options_check(&u->opts, NULL, &e) < 0)
        return http_reject(conn, rq, &e);
    if (multipart) {
        u->pp = MHD_create_post_processor(conn, POST_BUFFER, post_iter, u);
        if (!u->pp)
            return http_rejectf(conn, rq, "bad_request", "malformed multipart/form-data header");
    }
    u->fd = upload_tmp_open(h, u->tmp_path, sizeof(u->tmp_path), &e);
    if (u->fd < 0)
        return http_reject(conn, rq, &e);
    return MHD_YES;
}

/* The probe and submit of a complete upload, off the HTTP thread
 * (offload.h): its answer waits in u until the handler's next call. */
static void submit_step(void *arg)
{
    struct upload *u = arg;
    u->submit_rc = upload_submit(u->h, u->submit_path, &u->opts, u->bytes, &u->answer,
                                 &u->answer_len, u->answer_id, &u->answer_err, NULL);
    u->submit_state = 2;
}

/* The answer submit_step kept. */
static enum MHD_Result send_answer(struct MHD_Connection *conn, struct upload *u)
{
    if (u->submit_rc < 0)
        return http_send_error(conn, &u->answer_err);
    char location[64];
    snprintf(location, sizeof(location), "/status/%s", u->answer_id);
    char *json = u->answer;
    u->answer = NULL; /* http_send_json owns it */
    return http_send_json(conn, MHD_HTTP_ACCEPTED, json, u->answer_len, location);
}

/* The last call: the body is complete (and, once more, when the
 * connection is resumed with submit_step's answer). */
static enum MHD_Result finish(struct http_server *h, struct MHD_Connection *conn,
                              struct upload *u)
{
    struct api_error e;
    char *json = NULL;
    size_t len = 0;
    char id[JOB_ID_SIZE];
    if (u->submit_state == 2)
        return send_answer(conn, u);
    if (u->submit_state == 1) /* not resumed yet (MHD should not call) */
        return MHD_YES;
    if (u->pp) { /* flushes the last part */
        MHD_destroy_post_processor(u->pp);
        u->pp = NULL;
    }
    if (!u->failed && u->json_body &&
        input_url_options_from_json(u->body_text ? u->body_text : "", u->body_text ? strlen(u->body_text) : 0,
                                    &u->opts, &e) < 0)
        fail(u, &e);
    if (!u->failed && u->multipart && u->opts.input_url && u->file_parts > 0) {
        api_error_set(&e, "bad_request", "send a file part or input_url, not both");
        fail(u, &e);
    }
    if (!u->failed && (u->json_body || u->url_query || (u->multipart && u->opts.input_url))) {
        if (u->fd >= 0) { /* a multipart body's (empty) file: not used */
            close(u->fd);
            u->fd = -1;
        }
        if (u->tmp_path[0]) {
            unlink(u->tmp_path);
            u->tmp_path[0] = '\0';
        }
        if (input_url_submit(h, &u->opts, &json, &len, id, &e) < 0)
            return http_send_error(conn, &e);
        char where[64];
        snprintf(where, sizeof(where), "/status/%s", id);
        return http_send_json(conn, MHD_HTTP_ACCEPTED, json, len, where);
    }
    if (!u->failed && u->multipart && u->file_parts == 0) {
        api_error_set(&e, "bad_request", "the multipart body has no file part named 'file'");
        fail(u, &e);
    }
    if (!u->failed && u->bytes == 0) {
        api_error_set(&e, "bad_request", "the upload is empty");
        fail(u, &e);
    }
    if (u->failed)
        return http_send_error(conn, &u->err);
    close(u->fd);
    u->fd = -1;
    /* upload_submit owns the file from here, whatever happens. */
    memcpy(u->submit_path, u->tmp_path, sizeof(u->submit_path));
    u->tmp_path[0] = '\0';
    u->submit_state = 1;
    offload_start(&h->offload, conn, submit_step, u);
    return MHD_YES;
}

enum MHD_Result upload_handle(struct http_server *h, struct MHD_Connection *conn,
                              struct request *rq, const char *upload_data,
                              size_t *upload_data_size)
{
    struct upload *u = rq->upload;
    if (!u)
        return begin(h, conn, rq);
    if (*upload_data_size == 0)
        return finish(h, conn, u);
    if (!u->failed) {
        if (u->multipart) {
            if (MHD_post_process(u->pp, upload_data, *upload_data_size) != MHD_YES &&
                !u->failed) {
                struct api_error e;
                api_error_set(&e, "bad_request", "malformed multipart/form-data body");
                fail(u, &e);
            }
        } else if (u->json_body) {
            if (append_text(&u->body_text, upload_data, *upload_data_size, INPUT_URL_BODY_MAX) < 0) {
                struct api_error e;
                api_error_set(&e, "too_large", "a JSON body is at most %d bytes", INPUT_URL_BODY_MAX);
                fail(u, &e);
            }
        } else if (u->url_query) {
            struct api_error e;
            api_error_set(&e, "bad_request", "send input_url without a body, or a file without input_url");
            fail(u, &e);
        } else {
            add_bytes(h, u, upload_data, *upload_data_size);
        }
    }
    *upload_data_size = 0;
    return MHD_YES;
}
