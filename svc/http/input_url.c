/* input_url.c - see input_url.h. */
#include "http/input_url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "net/target.h"

/* One JSON member as option text: strings as they are, numbers and
 * objects/arrays as JSON text; arrays of strings for "preset" joined. */
static int set_member(struct upload_options *o, const char *key, json_t *v, struct api_error *e)
{
    if (strcmp(key, "preset") == 0 && json_is_array(v)) {
        size_t i;
        json_t *p;
        json_array_foreach(v, i, p) {
            if (!json_is_string(p))
                return api_error_set(e, "bad_request", "preset must be a string or strings");
            if (upload_options_set(o, "preset", json_string_value(p), json_string_length(p), e) < 0)
                return -1;
        }
        return 0;
    }
    if (json_is_string(v))
        return upload_options_set(o, key, json_string_value(v), json_string_length(v), e);
    if (json_is_null(v))
        return 0;
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return api_error_set(e, "internal_error", "out of memory");
    int rc = upload_options_set(o, key, text, strlen(text), e);
    free(text);
    return rc;
}

int input_url_options_from_json(const char *body, size_t len, struct upload_options *o,
                                struct api_error *e)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    int ret = -1;
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        api_error_set(e, "bad_request", "the body must be a JSON object: %s",
                      root ? "not an object" : jerr.text);
        goto out;
    }
    if (!json_is_string(json_object_get(root, "input_url"))) {
        api_error_set(e, "bad_request", "a JSON body needs \"input_url\" (a string)");
        goto out;
    }
    json_object_foreach(root, key, v) {
        if (set_member(o, key, v, e) < 0)
            goto out;
    }
    ret = 0;
out:
    json_decref(root);
    return ret;
}

/* The last segment of the URL's path, for "input.filename". */
static void filename_of(const char *url, char *out, size_t cap)
{
    CURLU *u = curl_url();
    char *path = NULL;
    out[0] = '\0';
    if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) == CURLUE_OK) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t n = 0;
        for (const char *p = base; *p && n + 1 < cap; p++)
            if ((unsigned char)*p >= 0x20 && *p != 0x7f)
                out[n++] = *p;
        out[n] = '\0';
    }
    curl_free(path);
    curl_url_cleanup(u);
}

int input_url_submit(struct http_server *h, const struct upload_options *o, char **json,
                     size_t *json_len, char id[JOB_ID_SIZE], struct api_error *e)
{
    int ret = -1;
    char *outputs_json = NULL;
    char input_path[1400], why[256], filename[UPLOAD_FILENAME_MAX];
    struct job job;
    json_t *input = NULL;
    long priority = 0;

    memset(&job, 0, sizeof(job));
    if (net_url_check(o->input_url, "input_url", why, sizeof(why)) != 0) {
        api_error_set(e, "bad_request", "%s", why);
        goto out;
    }
    if (upload_options_check(o, &outputs_json, e) < 0)
        goto out;
    if (o->priority[0]) { /* checked by upload_options_check */
        char *end = NULL;
        errno = 0;
        priority = strtol(o->priority, &end, 10);
        if (errno || end == o->priority)
            priority = 0;
    }
    if (job_id_new(job.id) < 0) {
        api_error_set(e, "internal_error", "no random id available");
        goto out;
    }
    if (o->filename[0])
        snprintf(filename, sizeof(filename), "%s", o->filename);
    else
        filename_of(o->input_url, filename, sizeof(filename));
    input = json_pack("{s:s}", "url", o->input_url);
    if (input && filename[0])
        json_object_set_new(input, "filename", json_string(filename));
    job.input_json = input ? json_dumps(input, JSON_COMPACT) : NULL;
    job.outputs_json = outputs_json;
    outputs_json = NULL;
    job.metadata_json = strdup(o->metadata && *o->metadata ? o->metadata : "{}");
    job.webhook_url = o->webhook_url && *o->webhook_url ? strdup(o->webhook_url) : NULL;
    job.priority = (int)priority;
    job.ttl_s = upload_options_ttl(o) > 0 ? upload_options_ttl(o) : h->cfg->retention;
    if (job_input_path(input_path, sizeof(input_path), h->cfg->data_dir, job.id) < 0 ||
        !(job.input_path = strdup(input_path)) || !job.input_json || !job.metadata_json) {
        api_error_set(e, "internal_error", "out of memory");
        goto out;
    }
    int rc = sched_submit(h->sched, &job, 0, json, json_len);
    if (rc != SCHED_OK) {
        api_error_set(e, http_code_for_sched(rc), "%s",
                      rc == SCHED_EQUEUE_FULL ? "the queue is full; try again later"
                      : rc == SCHED_ESHUTDOWN ? "the server is shutting down"
                                              : "the job store failed");
        goto out;
    }
    snprintf(id, JOB_ID_SIZE, "%s", job.id);
    ret = 0;
out:
    json_decref(input);
    free(outputs_json);
    job_clear(&job);
    return ret;
}
