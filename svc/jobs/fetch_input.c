/* fetch_input.c - see fetch_input.h. */
#include "jobs/fetch_input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "common/log.h"
#include "net/fetch.h"

enum { PROBE_TIMEOUT_S = 60, FETCH_RETRIES = 4 };

int fetch_input_is_url(const char *input_json)
{
    json_t *in = input_json ? json_loads(input_json, 0, NULL) : NULL;
    int yes = json_is_string(json_object_get(in, "url"));
    json_decref(in);
    return yes;
}

struct progress_ctx {
    const struct fetch_input_params *p;
    int64_t last_have;
};

static int on_fetch_progress(void *ctx, int64_t have, int64_t total)
{
    struct progress_ctx *c = ctx;
    if (c->p->stop && atomic_load(c->p->stop))
        return 1;
    if (c->p->on_progress && have != c->last_have) {
        c->last_have = have;
        c->p->on_progress(c->p->opaque, have, total);
    }
    return 0;
}

int fetch_input_run(const struct fetch_input_params *p, char **new_input, char *code,
                    char *message)
{
    json_t *in = NULL, *probed = NULL;
    char tmp[1400];
    struct net_fetch_result fr;
    struct tc_media_info info;
    struct tc_error terr;
    int ret = -1;

    *new_input = NULL;
    snprintf(code, FETCH_INPUT_CODE_MAX, "internal_error");
    message[0] = '\0';
    in = json_loads(p->input_json ? p->input_json : "{}", 0, NULL);
    const char *url = json_string_value(json_object_get(in, "url"));
    if (!url || access(p->input_path, F_OK) == 0) {
        ret = 0; /* an uploaded input, or fetched by an earlier attempt */
        goto out;
    }
    if (snprintf(tmp, sizeof(tmp), "%s/tmp/fetch-%s", p->data_dir, p->id) >= (int)sizeof(tmp)) {
        snprintf(message, FETCH_INPUT_MESSAGE_MAX, "data dir path too long");
        goto out;
    }
    struct progress_ctx pc = {p, -1};
    struct net_fetch_params fp = {
        .url = url,
        .path = tmp,
        .rule = p->rule,
        .max_bytes = p->max_bytes,
        .max_retries = FETCH_RETRIES,
        .on_progress = on_fetch_progress,
        .ctx = &pc,
    };
    log_info("job fetch id=%s", p->id);
    int rc = net_fetch(&fp, &fr);
    log_info("job fetch ended id=%s status=%s bytes=%lld attempts=%u resumes=%u%s%s", p->id,
             net_fetch_code(rc), (long long)fr.bytes, fr.attempts, fr.resumes,
             fr.error[0] ? " error=" : "", fr.error);
    if (rc == NET_FETCH_CANCELED) {
        ret = 1; /* keep the bytes: a requeued job resumes from them */
        goto out;
    }
    if (rc != NET_FETCH_OK) {
        snprintf(code, FETCH_INPUT_CODE_MAX, "%s", net_fetch_code(rc));
        snprintf(message, FETCH_INPUT_MESSAGE_MAX, "%s", fr.error);
        unlink(tmp);
        goto out;
    }
    if (fr.bytes == 0) {
        snprintf(code, FETCH_INPUT_CODE_MAX, "unsupported_media");
        snprintf(message, FETCH_INPUT_MESSAGE_MAX, "input_url gave an empty body");
        unlink(tmp);
        goto out;
    }
    memset(&terr, 0, sizeof(terr));
    struct worker_probe_params probe = {
        .isolation = p->isolation,
        .exe = p->exe,
        .path = tmp,
        .max_memory = p->max_memory,
        .nice = 0,
        .timeout_s = PROBE_TIMEOUT_S,
    };
    rc = worker_probe(&probe, &info, &terr);
    if (rc < 0) {
        snprintf(code, FETCH_INPUT_CODE_MAX, "%s",
                 rc == WORKER_ESANDBOX ? "sandbox_violation" : "unsupported_media");
        snprintf(message, FETCH_INPUT_MESSAGE_MAX,
                 "the input at input_url is not a decodable audio/video file: %s",
                 terr.message[0] ? terr.message : tc_strerror(TC_EUNSUPPORTED));
        unlink(tmp);
        goto out;
    }
    const char *filename = json_string_value(json_object_get(in, "filename"));
    probed = tc_media_info_to_json(&info, filename);
    if (!probed || json_object_set(probed, "url", json_object_get(in, "url")) < 0 ||
        json_object_set_new(probed, "size", json_integer(fr.bytes)) < 0 ||
        !(*new_input = json_dumps(probed, JSON_COMPACT))) {
        snprintf(message, FETCH_INPUT_MESSAGE_MAX, "out of memory");
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, p->input_path) < 0) {
        snprintf(message, FETCH_INPUT_MESSAGE_MAX, "cannot store the input: %s", strerror(errno));
        unlink(tmp);
        free(*new_input);
        *new_input = NULL;
        goto out;
    }
    ret = 0;
out:
    json_decref(probed);
    json_decref(in);
    return ret;
}
