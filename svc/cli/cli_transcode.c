/* cli_transcode.c - `vidq transcode IN OUT [--preset P | --output SPEC]...
 * [--progress json|bar|none] [--threads N]`: one run of the library.
 *
 * Several --preset (or several --output) make several outputs in ONE pass
 * (one demux and decode feeding every encoder); OUT is then an existing
 * folder that receives <name>.<ext> for each output.
 *
 * Progress: a bar on stderr when stderr is a terminal (default), or one
 * JSON object per update on stdout with --progress json. SIGINT/SIGTERM
 * set the run's cancel flag: the run stops, removes its partial output,
 * and the command exits 130. Errors: one line "vidq: <code>: <message>".
 *
 * Threading: the main thread runs the transcode; the signal handler only
 * stores to an atomic flag. */
#include <errno.h>
#include <limits.h>
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

enum { MAX_OUTPUTS = 8 };

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

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vidq transcode IN OUT [--preset P | --output SPEC_JSON]\n"
            "                      [--progress json|bar|none] [--threads N]\n"
            "  --preset P      an output preset (default mp4-720p; see vidq presets)\n"
            "  --output SPEC   a custom output spec as JSON (see API.md)\n"
            "                  Several --preset (or several --output, up to 8) make\n"
            "                  every output in one pass; OUT is then an existing\n"
            "                  folder that gets <name>.<ext> for each.\n"
            "  --progress M    bar (default on a terminal), json (one object per line\n"
            "                  on stdout) or none\n"
            "  --threads N     codec threads in total (default: all cores)\n"
            "exit codes: 0 ok, 1 failed, 2 bad command line, 130 interrupted\n");
}

static int usage_error(const char *code, const char *msg, const char *arg)
{
    fprintf(stderr, "vidq: %s: %s%s%s\n", code, msg, arg ? " " : "", arg ? arg : "");
    return CLI_USAGE;
}

int cli_transcode(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    const char *presets[MAX_OUTPUTS], *spec_jsons[MAX_OUTPUTS];
    size_t n_presets = 0, n_specs = 0;
    enum progress_mode mode = isatty(STDERR_FILENO) ? PROGRESS_BAR : PROGRESS_NONE;
    int threads = 0;
    struct tc_error err = {0};
    static struct tc_output outputs[MAX_OUTPUTS];
    static struct tc_output_result results[MAX_OUTPUTS];
    static char paths[MAX_OUTPUTS][PATH_MAX];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--preset") || !strcmp(a, "--output") || !strcmp(a, "--progress") ||
                   !strcmp(a, "--threads")) {
            if (i + 1 >= argc)
                return usage_error("bad_request", "missing value after", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--preset") || !strcmp(a, "--output")) {
                if (n_presets + n_specs == MAX_OUTPUTS)
                    return usage_error("bad_request", "too many outputs (8 at most) at", a);
                if (!strcmp(a, "--preset"))
                    presets[n_presets++] = v;
                else
                    spec_jsons[n_specs++] = v;
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
    if (n_presets && n_specs)
        return usage_error("bad_request", "give --preset or --output, not both", NULL);

    size_t n_outputs = n_specs ? n_specs : n_presets ? n_presets : 1;
    memset(outputs, 0, sizeof(outputs));
    for (size_t i = 0; i < n_outputs; i++) {
        struct tc_output *o = &outputs[i];
        if (n_specs) {
            json_error_t jerr;
            json_t *obj = json_loads(spec_jsons[i], 0, &jerr);
            if (!obj) {
                fprintf(stderr, "vidq: invalid_output: --output is not valid JSON: %s\n", jerr.text);
                return CLI_USAGE;
            }
            int rc = tc_spec_parse(obj, &o->spec, &err);
            json_decref(obj);
            if (rc < 0) {
                fprintf(stderr, "vidq: %s: %s\n", tc_errname(rc), err.message);
                return CLI_USAGE;
            }
        } else {
            int rc = tc_preset_find(n_presets ? presets[i] : "mp4-720p", &o->spec, &err);
            if (rc < 0) {
                fprintf(stderr, "vidq: %s: %s\n", tc_errname(rc), err.message);
                return CLI_USAGE;
            }
        }
        if (!strcmp(o->spec.container, "hls")) {
            fprintf(stderr, "vidq: invalid_output: hls output is not available yet\n");
            return CLI_USAGE;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(outputs[j].spec.name, o->spec.name)) {
                fprintf(stderr, "vidq: invalid_output: two outputs are named '%s'\n", o->spec.name);
                return CLI_USAGE;
            }
        o->path = out;
    }
    if (n_outputs > 1) {
        /* Several outputs: OUT is a folder, each output <name>.<ext> in it. */
        struct stat st;
        if (stat(out, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "vidq: io_error: with several outputs OUT must be an existing folder: %s\n",
                    out);
            return CLI_FAILED;
        }
        for (size_t i = 0; i < n_outputs; i++) {
            int len = snprintf(paths[i], sizeof(paths[i]), "%s/%s.%s", out, outputs[i].spec.name,
                               tc_container_ext(outputs[i].spec.container));
            if (len < 0 || (size_t)len >= sizeof(paths[i])) {
                fprintf(stderr, "vidq: io_error: output path too long in %s\n", out);
                return CLI_FAILED;
            }
            outputs[i].path = paths[i];
        }
    }

    if (!getenv("VIDQ_LOG_LEVEL"))
        tc_set_log(cli_quiet_log, NULL, 0); /* nothing but the one error line */

    /* SVT-AV1 prints to stderr itself unless told otherwise; 0 = fatal
     * only. Set once here, before any thread starts. */
    setenv("SVT_LOG", "0", 0);

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
    int rc = tc_run(&params, results, &err);
    if (mode == PROGRESS_BAR)
        fputc('\n', stderr);
    if (rc == TC_ECANCELED || (rc < 0 && atomic_load(&cancel_flag))) {
        fprintf(stderr, "vidq: canceled: interrupted; partial output removed\n");
        return CLI_INTERRUPTED;
    }
    if (rc < 0) {
        fprintf(stderr, "vidq: %s: %s\n", tc_errname(rc), err.message);
        return CLI_FAILED;
    }
    return CLI_OK;
}
