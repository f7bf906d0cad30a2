/* cli_transcode.c - `vidq transcode IN OUT [--preset P | --output SPEC]
 * [--progress json|bar|none] [--threads N] [--clip START-END]`: one run
 * of the library.
 * Several presets (P1,P2) or a JSON array of specs make several outputs
 * from one decode, written into the folder OUT as <name>.<ext> (a folder
 * <name> for hls and sprite outputs). A single hls or sprite output makes
 * the folder OUT itself.
 *
 * Progress: a bar on stderr when stderr is a terminal (default), or one
 * JSON object per update on stdout with --progress json. SIGINT/SIGTERM
 * set the run's cancel flag: the run stops, removes its partial output,
 * and the command exits 130. Errors: one line "vidq: <code>: <message>".
 *
 * Threading: the main thread runs the transcode; the signal handler only
 * stores to an atomic flag. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "cli/cli.h"

static atomic_int cancel_flag;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&cancel_flag, 1);
}

enum progress_mode { PROGRESS_NONE, PROGRESS_BAR, PROGRESS_JSON };

static void print_json(void *opaque, const struct tc_progress_snapshot *s)
{
    (void)opaque;
    json_t *o = json_pack("{s:f, s:f, s:I, s:f, s:f, s:o}", "percent", s->percent, "out_time_s",
                          s->out_time_s, "frames", (json_int_t)s->frames, "fps", s->fps, "speed",
                          s->speed, "eta_s", s->eta_s >= 0 ? json_real(s->eta_s) : json_null());
    if (!o)
        return;
    if (json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) == 0) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    json_decref(o);
}

static void print_bar(void *opaque, const struct tc_progress_snapshot *s)
{
    (void)opaque;
    char bar[31];
    int filled = (int)(s->percent * 30.0 / 100.0);
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    char eta[32];
    if (s->eta_s >= 0)
        snprintf(eta, sizeof(eta), "%d:%02d", (int)s->eta_s / 60, (int)s->eta_s % 60);
    else
        snprintf(eta, sizeof(eta), "--:--");
    fprintf(stderr, "\r[%s] %5.1f%%  %.2fx  ETA %s ", bar, s->percent, s->speed, eta);
    fflush(stderr);
}

/* The CLI prints exactly one line on failure: library and libav log lines
 * are shown (through vidq's logger, see log_init) only when VIDQ_LOG_LEVEL
 * asks for them. */
void cli_quiet_log(void *opaque, int level, const char *msg)
{
    (void)opaque;
    (void)level;
    (void)msg;
}

enum { MAX_OUTPUTS = 16 };

/* --preset P or --preset P1,P2,...: one output per preset. */
static int specs_from_presets(const char *list, struct tc_output *outs, size_t *n)
{
    struct tc_error err = {0};
    char name[64];
    const char *p = list;
    *n = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof(name)) {
            fprintf(stderr, "vidq: invalid_preset: no such preset: '%.*s' (see vidq presets)\n",
                    (int)(len > 64 ? 64 : len), p);
            return CLI_USAGE;
        }
        if (*n == MAX_OUTPUTS) {
            fprintf(stderr, "vidq: bad_request: at most %d outputs\n", MAX_OUTPUTS);
            return CLI_USAGE;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        int rc = tc_preset_find(name, &outs[*n].spec, &err);
        if (rc < 0) {
            fprintf(stderr, "vidq: %s: %s\n", tc_errname(rc), err.message);
            return CLI_USAGE;
        }
        (*n)++;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

/* --output SPEC or --output [SPEC, ...]. */
static int specs_from_json(const char *text, struct tc_output *outs, size_t *n)
{
    struct tc_error err = {0};
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    int ret = CLI_USAGE;
    *n = 0;
    if (!root) {
        fprintf(stderr, "vidq: invalid_output: --output is not valid JSON: %s\n", jerr.text);
        return CLI_USAGE;
    }
    if (json_is_array(root)) {
        if (json_array_size(root) == 0 || json_array_size(root) > MAX_OUTPUTS) {
            fprintf(stderr, "vidq: invalid_output: --output takes 1 to %d specs\n", MAX_OUTPUTS);
            goto out;
        }
        for (size_t i = 0; i < json_array_size(root); i++) {
            int rc = tc_spec_parse(json_array_get(root, i), &outs[i].spec, &err);
            if (rc < 0) {
                fprintf(stderr, "vidq: %s: output %zu: %s\n", tc_errname(rc), i, err.message);
                goto out;
            }
        }
        *n = json_array_size(root);
    } else {
        int rc = tc_spec_parse(root, &outs[0].spec, &err);
        if (rc < 0) {
            fprintf(stderr, "vidq: %s: %s\n", tc_errname(rc), err.message);
            goto out;
        }
        *n = 1;
    }
    ret = 0;
out:
    json_decref(root);
    return ret;
}

/* "video h264 (copied)" for a stream object of an output, "" for null. */
static void describe_stream(const json_t *st, const char *kind, char *buf, size_t size)
{
    const char *codec = json_string_value(json_object_get(st, "codec"));
    if (!json_is_object(st))
        return;
    snprintf(buf, size, "%s %s (%s)", kind, codec ? codec : "?",
             json_is_true(json_object_get(st, "copied")) ? "copied" : "encoded");
}

/* After a successful run: with --progress json, one last line on stdout
 * {"outputs": [{"name", "path", "container", "size", "duration_s",
 * "video": {..., "copied": b}|null, "audio": {..., "copied": b}|null}]}
 * (hls and sprite outputs: also "renditions" with a "path" each, or
 * "sprite"; see tc_output_result_to_json);
 * with the bar, one line per output on stderr saying what was copied. */
static void print_outputs(enum progress_mode mode, const struct tc_output *outs,
                          const struct tc_output_result *res, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        json_t *o = tc_output_result_to_json(&outs[i], &res[i]);
        if (!o)
            break;
        json_object_set_new(o, "name", json_string(outs[i].spec.name));
        json_object_set_new(o, "path", json_string(outs[i].path));
        json_object_set_new(o, "container", json_string(outs[i].spec.container));
        /* Each HLS variant's media playlist as a path too. */
        size_t k;
        json_t *variant;
        json_array_foreach(json_object_get(o, "renditions"), k, variant) {
            char path[4200];
            const char *uri = json_string_value(json_object_get(variant, "uri"));
            if (uri && snprintf(path, sizeof(path), "%s/%s", outs[i].path, uri) < (int)sizeof(path))
                json_object_set_new(variant, "path", json_string(path));
        }
        json_array_append_new(list, o);
        if (mode == PROGRESS_BAR) {
            char v[64] = "", a[64] = "";
            describe_stream(json_object_get(o, "video"), "video", v, sizeof(v));
            describe_stream(json_object_get(o, "audio"), "audio", a, sizeof(a));
            fprintf(stderr, "%s: %s%s%s\n", outs[i].path, v, v[0] && a[0] ? ", " : "", a);
        }
    }
    if (mode == PROGRESS_JSON && list) {
        json_t *root = json_pack("{s:O}", "outputs", list);
        if (root && json_dumpf(root, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6)) == 0) {
            fputc('\n', stdout);
            fflush(stdout);
        }
        json_decref(root);
    }
    json_decref(list);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vidq transcode IN OUT [--preset P | --output SPEC_JSON]\n"
            "                      [--progress json|bar|none] [--threads N] [--clip S-E]\n"
            "  --preset P      an output preset (default mp4-720p; see vidq presets);\n"
            "                  P1,P2,... makes several outputs in one pass, written\n"
            "                  into the folder OUT as <preset>.<ext> (hls and sprite\n"
            "                  outputs are folders: OUT/<preset>/)\n"
            "  --output SPEC   a custom output spec as JSON (see API.md), or a JSON\n"
            "                  array of specs (OUT is then a folder: <name>.<ext>)\n"
            "  --progress M    bar (default on a terminal), json (one object per line\n"
            "                  on stdout, then {\"outputs\":[...]} saying per stream\n"
            "                  whether it was copied) or none\n"
            "  --threads N     codec threads in total (default: all cores)\n"
            "  --clip S-E      only seconds S to E of the input (either may be left\n"
            "                  out: 2.5-  -10.0), timestamps from 0\n"
            "exit codes: 0 ok, 1 failed, 2 bad command line, 130 interrupted\n");
}

static int usage_error(const char *code, const char *msg, const char *arg)
{
    fprintf(stderr, "vidq: %s: %s%s%s\n", code, msg, arg ? " " : "", arg ? arg : "");
    return CLI_USAGE;
}

/* One side of --clip: "" (absent: 0) or seconds. */
static int clip_time(const char *s, size_t len, double *out)
{
    char buf[64];
    char *end = NULL;
    *out = 0.0;
    if (len == 0)
        return 0;
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    double v = strtod(buf, &end);
    if (errno || end == buf || *end || !(v >= 0.0 && v <= 1e7))
        return -1;
    *out = v;
    return 0;
}

/* --clip START-END into every output's spec, checked as the API's "clip". */
static int set_clip(const char *v, struct tc_output *outputs, size_t n)
{
    const char *dash = strchr(v, '-');
    double start, end;
    struct tc_error err = {0};
    if (!dash || clip_time(v, (size_t)(dash - v), &start) < 0 ||
        clip_time(dash + 1, strlen(dash + 1), &end) < 0 || (start <= 0 && end <= 0))
        return usage_error("bad_request", "--clip takes START-END in seconds (2.5-10, 2.5-, -10), not", v);
    json_t *c = json_object();
    if (start > 0)
        json_object_set_new(c, "start_s", json_real(start));
    if (end > 0)
        json_object_set_new(c, "end_s", json_real(end));
    int rc = tc_clip_parse(c, &start, &end, &err);
    json_decref(c);
    if (rc < 0)
        return usage_error("bad_request", err.message, NULL);
    for (size_t i = 0; i < n; i++) {
        outputs[i].spec.clip_start_s = start;
        outputs[i].spec.clip_end_s = end;
    }
    return 0;
}

int cli_transcode(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *preset = NULL, *spec_json = NULL, *clip = NULL;
    char preset_list[1024] = "";
    int made_out_dir = 0;
    enum progress_mode mode = isatty(STDERR_FILENO) ? PROGRESS_BAR : PROGRESS_NONE;
    int threads = 0;
    struct tc_error err = {0};
    struct tc_output outputs[MAX_OUTPUTS];
    struct tc_output_result results[MAX_OUTPUTS];
    char paths[MAX_OUTPUTS][4096];
    size_t n_outputs = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--preset") || !strcmp(a, "--output") || !strcmp(a, "--progress") ||
                   !strcmp(a, "--threads") || !strcmp(a, "--clip")) {
            if (i + 1 >= argc)
                return usage_error("bad_request", "missing value after", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--preset")) {
                /* Repeated --preset adds outputs, like --preset a,b. */
                size_t used = strlen(preset_list);
                if (used + strlen(v) + 2 > sizeof(preset_list))
                    return usage_error("bad_request", "too many presets at", v);
                snprintf(preset_list + used, sizeof(preset_list) - used, "%s%s",
                         used ? "," : "", v);
                preset = preset_list;
            } else if (!strcmp(a, "--output")) {
                spec_json = v;
            } else if (!strcmp(a, "--clip")) {
                clip = v;
            } else if (!strcmp(a, "--progress")) {
                if (!strcmp(v, "json"))
                    mode = PROGRESS_JSON;
                else if (!strcmp(v, "bar"))
                    mode = PROGRESS_BAR;
                else if (!strcmp(v, "none"))
                    mode = PROGRESS_NONE;
                else
                    return usage_error("bad_request", "--progress takes json, bar or none, not", v);
            } else {
                char *end = NULL;
                errno = 0;
                long n = strtol(v, &end, 10);
                if (errno || end == v || *end || n < 0 || n > 256)
                    return usage_error("bad_request", "--threads takes a number 0..256, not", v);
                threads = (int)n;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("bad_request", "unknown option", a);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return usage_error("bad_request", "unexpected argument", a);
        }
    }
    if (!in || !out)
        return usage_error("bad_request", "usage: vidq transcode IN OUT [--preset P | --output SPEC_JSON]", NULL);
    if (preset && spec_json)
        return usage_error("bad_request", "give --preset or --output, not both", NULL);

    memset(outputs, 0, sizeof(outputs));
    int rc = spec_json ? specs_from_json(spec_json, outputs, &n_outputs)
                       : specs_from_presets(preset ? preset : "mp4-720p", outputs, &n_outputs);
    if (rc != 0)
        return rc;
    if (clip && (rc = set_clip(clip, outputs, n_outputs)) != 0)
        return rc;
    for (size_t i = 0; i < n_outputs; i++) {
        for (size_t j = 0; j < i; j++)
            if (!strcmp(outputs[i].spec.name, outputs[j].spec.name)) {
                fprintf(stderr, "vidq: invalid_output: two outputs are named '%s'\n",
                        outputs[i].spec.name);
                return CLI_USAGE;
            }
    }
    if (n_outputs == 1) {
        outputs[0].path = out;
    } else {
        /* Several outputs: OUT is a folder holding <name>.<ext> each
         * (or the folder <name> of an hls or sprite output). */
        if (mkdir(out, 0755) == 0)
            made_out_dir = 1;
        else if (errno != EEXIST) {
            fprintf(stderr, "vidq: io_error: cannot create the folder '%s': %s\n", out, strerror(errno));
            return CLI_FAILED;
        }
        for (size_t i = 0; i < n_outputs; i++) {
            const char *c = outputs[i].spec.container;
            if (tc_container_is_folder(c)) /* hls, sprite: OUT/<name>/ */
                snprintf(paths[i], sizeof(paths[i]), "%s/%s", out, outputs[i].spec.name);
            else
                snprintf(paths[i], sizeof(paths[i]), "%s/%s.%s", out, outputs[i].spec.name,
                         tc_container_ext(c));
            outputs[i].path = paths[i];
        }
    }

    if (!getenv("VIDQ_LOG_LEVEL"))
        tc_set_log(cli_quiet_log, NULL, 0); /* nothing but the one error line */

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    atomic_store(&cancel_flag, 0);

    struct tc_run_params params = {
        .input_path = in,
        .outputs = outputs,
        .n_outputs = n_outputs,
        .threads = threads,
        .cancel = &cancel_flag,
        .on_progress = mode == PROGRESS_JSON  ? print_json
                       : mode == PROGRESS_BAR ? print_bar
                                              : NULL,
    };
    rc = tc_run(&params, results, &err);
    if (mode == PROGRESS_BAR)
        fputc('\n', stderr);
    /* A refused or failed run leaves no folder it made (rmdir only removes
     * it while empty: tc_run already removed its own files). */
    if (rc < 0 && made_out_dir)
        rmdir(out);
    if (rc == TC_ECANCELED || (rc < 0 && atomic_load(&cancel_flag))) {
        fprintf(stderr, "vidq: canceled: interrupted; partial output removed\n");
        return CLI_INTERRUPTED;
    }
    if (rc < 0) {
        fprintf(stderr, "vidq: %s: %s\n", tc_errname(rc), err.message);
        return CLI_FAILED;
    }
    if (mode != PROGRESS_NONE)
        print_outputs(mode, outputs, results, n_outputs);
    return CLI_OK;
}
