/* cli_submit.c - `vidq submit FILE|URL [--server URL] [--api-key K]
 * [--preset P]... [--outputs JSON] [--clip S-E] [--wait] [--download DIR]
 * [--progress bar|plain|json|none] ...`: the client of a vidq server.
 *
 * A FILE is uploaded with tus (submit.h: creation, then PATCHes; a dropped
 * connection is resumed from the server's offset, at most 3 retries in a
 * row with backoff). A URL is sent as input_url in a JSON POST /v1/jobs
 * (API.md, Inputs from a URL) and the server's answer is reported. With
 * --wait (implied by --download) the job is followed through its event
 * stream; --download DIR then fetches every output, folders whole.
 *
 * Output: progress on stderr (a bar on a terminal, plain lines otherwise,
 * or JSON lines on stdout with --progress json); stdout's last line is the
 * job object. Errors: one line "vidq: <code>: <message>" on stderr.
 * Exit codes: 0 the job succeeded (without --wait: it was accepted), 1 it
 * failed or was canceled or the server refused it, 2 bad command line,
 * 3 the server could not be reached, 130 interrupted.
 *
 * Threading: one thread; the signal handler only sets an atomic flag.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "cli/cli.h"
#include "cli/submit.h"

enum { MAX_PRESETS = 32, DEFAULT_CHUNK = 8 << 20 };

static atomic_int cancel_flag;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&cancel_flag, 1);
}

static int is_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

enum progress_mode { PROGRESS_NONE, PROGRESS_PLAIN, PROGRESS_BAR, PROGRESS_JSON };

struct ui {
    enum progress_mode mode;
    const char *state_path; /* where a created upload's URL is kept, or NULL */
    double last_at;     /* monotonic time of the last bar or JSON line */
    int last_decile;    /* plain: last 10% step printed */
    int bar_open;       /* a \r line is on screen */
    uint64_t last_sent; /* bar: for the rate */
    double rate_at;
    double rate;
    char status[16]; /* the job's last status shown */
    int job_decile;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void close_bar(struct ui *u)
{
    if (u->bar_open) {
        fputc('\n', stderr);
        u->bar_open = 0;
    }
}

static void json_line(json_t *o)
{
    if (o && json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) == 0) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    json_decref(o);
}

static void draw(const char *label, double percent, const char *tail)
{
    char bar[31];
    int filled = (int)(percent * 30.0 / 100.0);
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r%s [%s] %5.1f%%  %s\033[K", label, bar, percent, tail);
    fflush(stderr);
}

static void on_upload(void *opaque, uint64_t sent, uint64_t total)
{
    struct ui *u = opaque;
    double pct = total ? 100.0 * (double)sent / (double)total : 100.0;
    double t = now_s();
    int done = sent == total;
    if (u->mode == PROGRESS_BAR) {
        if (!done && t - u->last_at < 0.1)
            return;
        if (t - u->rate_at >= 0.5) {
            if (u->rate_at > 0 && sent >= u->last_sent)
                u->rate = (double)(sent - u->last_sent) / (t - u->rate_at);
            u->rate_at = t;
            u->last_sent = sent;
        }
        char tail[96];
        snprintf(tail, sizeof(tail), "%.1f/%.1f MiB  %.1f MiB/s", sent / 1048576.0,
                 total / 1048576.0, u->rate / 1048576.0);
        draw("upload", pct, tail);
        u->bar_open = 1;
        u->last_at = t;
    } else if (u->mode == PROGRESS_PLAIN) {
        int d = (int)(pct / 10.0);
        if (d <= u->last_decile)
            return;
        u->last_decile = d;
        fprintf(stderr, "upload: %d%% (%llu of %llu bytes)\n", d * 10, (unsigned long long)sent,
                (unsigned long long)total);
    } else if (u->mode == PROGRESS_JSON) {
        if (!done && t - u->last_at < 0.25)
            return;
        u->last_at = t;
        json_line(json_pack("{s:s, s:I, s:I}", "phase", "upload", "bytes", (json_int_t)sent,
                            "total", (json_int_t)total));
    }
}

static void on_retry(void *opaque, const char *what, uint64_t at, const char *why)
{
    struct ui *u = opaque;
    if (u->mode == PROGRESS_JSON) {
        json_line(json_pack("{s:s, s:s, s:I, s:s}", "phase", "retry", "what", what, "resume_at",
                            (json_int_t)at, "error", why));
    } else if (u->mode != PROGRESS_NONE) {
        close_bar(u);
        if (strcmp(what, "earlier") == 0)
            fprintf(stderr, "upload: resuming an earlier upload at %llu bytes (%s)\n",
                    (unsigned long long)at, why);
        else if (strcmp(what, "locked") == 0)
            fprintf(stderr, "upload: waiting for the server to release the dropped request: %s\n",
                    why);
        else if (strcmp(what, "upload") == 0)
            fprintf(stderr, "upload: resuming at %llu bytes after: %s\n", (unsigned long long)at,
                    why);
        else
            fprintf(stderr, "%s: retrying after: %s\n", what, why);
    }
}

static void on_job(void *opaque, const json_t *job)
{
    struct ui *u = opaque;
    const char *id = json_string_value(json_object_get(job, "id"));
    const char *st = json_string_value(json_object_get(job, "status"));
    json_t *p = json_object_get(job, "progress");
    double pct = json_number_value(json_object_get(p, "percent"));
    if (!id || !st)
        return;
    int changed = strcmp(st, u->status) != 0;
    snprintf(u->status, sizeof(u->status), "%s", st);
    if (u->mode == PROGRESS_JSON) {
        json_line(json_pack("{s:s, s:s, s:s, s:f}", "phase", "job", "id", id, "status", st,
                            "percent", pct));
    } else if (u->mode == PROGRESS_BAR) {
        char tail[96];
        json_t *eta = json_object_get(p, "eta_s");
        double speed = json_number_value(json_object_get(p, "speed"));
        if (json_is_number(eta))
            snprintf(tail, sizeof(tail), "%-9s %.2fx  ETA %d:%02d", st, speed,
                     (int)json_number_value(eta) / 60, (int)json_number_value(eta) % 60);
        else
            snprintf(tail, sizeof(tail), "%-9s", st);
        draw("job   ", pct, tail);
        u->bar_open = 1;
    } else if (u->mode == PROGRESS_PLAIN) {
        int d = (int)(pct / 10.0);
        if (changed) {
            json_t *qp = json_object_get(job, "queue_position");
            if (json_is_integer(qp))
                fprintf(stderr, "job %s: %s (position %lld)\n", id, st,
                        (long long)json_integer_value(qp));
            else
                fprintf(stderr, "job %s: %s\n", id, st);
            u->job_decile = d;
        } else if (d > u->job_decile && strcmp(st, "running") == 0) {
            u->job_decile = d;
            fprintf(stderr, "job %s: %d%%\n", id, d * 10);
        }
    }
}

static void on_downloaded(void *opaque, const char *path, uint64_t size)
{
    struct ui *u = opaque;
    if (u->mode == PROGRESS_JSON) {
        json_line(json_pack("{s:s, s:s, s:I}", "phase", "download", "path", path, "size",
                            (json_int_t)size));
    } else if (u->mode != PROGRESS_NONE) {
        close_bar(u);
        fprintf(stderr, "downloaded %s (%llu bytes)\n", path, (unsigned long long)size);
    }
}

/* Keep the URL of a created upload in the state file, so that running
 * the same command again (after Ctrl-C, a lost network) resumes it. */
static void on_created(void *opaque, const char *url)
{
    struct ui *u = opaque;
    if (!u->state_path)
        return;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", u->state_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return; /* resuming across runs is a convenience, not a need */
    int bad = fprintf(f, "%s\n", url) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, u->state_path) != 0)
        unlink(tmp);
}

/* $XDG_CACHE_HOME/vidq/uploads/<sha256 of server, file, size, mtime,
 * metadata>: one small file per unfinished upload. 0 on success. */
static int state_path_for(char *out, size_t cap, const char *base, const char *file,
                          const char *meta)
{
    char real[4096], dir[4096], key[8800];
    unsigned char md[32];
    unsigned int mdlen = 0;
    struct stat st;
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (!realpath(file, real) || stat(real, &st) != 0)
        return -1;
    if (cache && cache[0] == '/')
        snprintf(dir, sizeof(dir), "%s/vidq/uploads", cache);
    else if (home && home[0] == '/')
        snprintf(dir, sizeof(dir), "%s/.cache/vidq/uploads", home);
    else
        return -1;
    /* the cache folder and its parents, as XDG asks (0700) */
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            int bad = mkdir(dir, 0700) != 0 && errno != EEXIST;
            *p = c;
            if (bad)
                return -1;
            if (!c)
                break;
        }
    }
    int n = snprintf(key, sizeof(key), "%s\n%s\n%lld\n%lld.%09ld\n%s", base, real,
                     (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                     meta ? meta : "");
    if (n < 0 || (size_t)n >= sizeof(key) ||
        !EVP_Digest(key, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
        return -1;
    size_t o = (size_t)snprintf(out, cap, "%s/", dir);
    for (unsigned i = 0; i < 16 && o + 3 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", md[i]);
    return o + 1 < cap ? 0 : -1;
}

/* The URL an earlier run left in the state file, or "". */
static void state_read(const char *path, char *url, size_t cap)
{
    url[0] = '\0';
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return;
    if (!fgets(url, (int)cap, f))
        url[0] = '\0';
    url[strcspn(url, "\r\n")] = '\0';
    fclose(f);
    if (!is_url(url))
        url[0] = '\0';
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vidq submit FILE|URL [options]   or   vidq submit --job ID [options]\n"
            "  upload FILE to a vidq server (resumable, tus) or submit URL as input_url,\n"
            "  then optionally wait for the job and download its outputs\n"
            "\n"
            "  --server URL        the server (VIDQ_SERVER; default http://127.0.0.1:8080)\n"
            "  --api-key K         Authorization: Bearer K (VIDQ_API_KEY)\n"
            "  --preset P          an output preset; repeatable (or P1,P2)\n"
            "  --outputs JSON      a JSON array of output specs\n"
            "  --clip S-E          only seconds S to E of the input (either may be left out)\n"
            "  --metadata JSON     a JSON object echoed in the job\n"
            "  --webhook-url URL   notify this URL when the job ends\n"
            "  --priority N        higher runs first\n"
            "  --wait              follow the job until it ends\n"
            "  --download DIR      then download its outputs into DIR (implies --wait)\n"
            "  --progress MODE     bar (default on a terminal), plain (default otherwise),\n"
            "                      json (JSON lines on stdout) or none\n"
            "  --chunk-size BYTES  bytes per upload request (default 8 MiB)\n"
            "  --job ID            no upload: follow (--wait) or download (--download) job ID;\n"
            "                      an interrupted download resumes where it stopped\n"
            "\n"
            "stdout's last line is the job object (JSON).\n"
            "exit codes: 0 succeeded (without --wait: accepted), 1 failed, canceled or\n"
            "refused, 2 bad command line, 3 server unreachable, 130 interrupted\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vidq: bad_request: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (vidq submit --help)\n");
    return CLI_USAGE;
}

/* "S-E", "S-" or "-E" (seconds, S < E) as {"start_s": S, "end_s": E}. */
static json_t *parse_clip(const char *v)
{
    const char *dash = strchr(v, '-');
    double start = -1, end = -1;
    char *e = NULL;
    if (!dash)
        return NULL;
    if (dash != v) {
        errno = 0;
        start = strtod(v, &e);
        if (errno || e != dash || !isfinite(start) || start < 0)
            return NULL;
    }
    if (dash[1]) {
        errno = 0;
        end = strtod(dash + 1, &e);
        if (errno || *e || e == dash + 1 || !isfinite(end) || end <= 0)
            return NULL;
    }
    if (start < 0 && end < 0)
        return NULL;
    if (start >= 0 && end >= 0 && end <= start)
        return NULL;
    json_t *o = json_object();
    if (o && start >= 0)
        json_object_set_new(o, "start_s", json_real(start));
    if (o && end >= 0)
        json_object_set_new(o, "end_s", json_real(end));
    return o;
}


static int exit_code(int rc)
{
    switch (rc) {
    case SUBMIT_OK: return CLI_OK;
    case SUBMIT_EUNREACHABLE: return CLI_UNREACHABLE;
    case SUBMIT_ECANCELED: return CLI_INTERRUPTED;
    default: return CLI_FAILED;
    }
}

int cli_submit(int argc, char **argv)
{
    const char *input = NULL, *server = getenv("VIDQ_SERVER"), *key = getenv("VIDQ_API_KEY");
    const char *outputs_s = NULL, *clip_s = NULL, *download = NULL, *metadata_s = NULL;
    const char *webhook = NULL, *priority_s = NULL, *job_id = NULL;
    const char *presets[MAX_PRESETS];
    size_t n_presets = 0, chunk = DEFAULT_CHUNK;
    int wait = 0, ret = CLI_FAILED, rc;
    struct ui ui = {.mode = isatty(STDERR_FILENO) ? PROGRESS_BAR : PROGRESS_PLAIN};
    json_t *outputs = NULL, *clip = NULL, *metadata = NULL, *job = NULL, *final = NULL;
    json_t *body = NULL;
    char *clip_text = NULL, *outputs_text = NULL, *metadata_text = NULL, *preset_list = NULL;
    char *tus_meta = NULL;
    char base[2048], id[128];
    struct submit_error err = {0};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        }
        if (strcmp(a, "--wait") == 0) {
            wait = 1;
            continue;
        }
        if (a[0] == '-' && a[1] == '-') {
            if (i + 1 >= argc)
                return usage_error("missing value after %s", a);
            const char *v = argv[++i];
            if (strcmp(a, "--server") == 0) {
                server = v;
            } else if (strcmp(a, "--api-key") == 0) {
                key = v;
            } else if (strcmp(a, "--preset") == 0) {
                if (n_presets >= MAX_PRESETS)
                    return usage_error("at most %d --preset", MAX_PRESETS);
                if (!v[0])
                    return usage_error("--preset needs a name");
                presets[n_presets++] = v;
            } else if (strcmp(a, "--outputs") == 0) {
                outputs_s = v;
            } else if (strcmp(a, "--clip") == 0) {
                clip_s = v;
            } else if (strcmp(a, "--job") == 0) {
                if (!v[0] || strlen(v) >= 100 || strcspn(v, "/?#% ") != strlen(v))
                    return usage_error("--job takes a job id, not '%s'", v);
                job_id = v;
            } else if (strcmp(a, "--download") == 0) {
                download = v;
            } else if (strcmp(a, "--metadata") == 0) {
                metadata_s = v;
            } else if (strcmp(a, "--webhook-url") == 0) {
                webhook = v;
            } else if (strcmp(a, "--priority") == 0) {
                char *end = NULL;
                errno = 0;
                long p = strtol(v, &end, 10);
                if (errno || end == v || *end || p < -1000000 || p > 1000000)
                    return usage_error("--priority takes an integer, not '%s'", v);
                priority_s = v;
            } else if (strcmp(a, "--progress") == 0) {
                if (strcmp(v, "bar") == 0)
                    ui.mode = PROGRESS_BAR;
                else if (strcmp(v, "plain") == 0)
                    ui.mode = PROGRESS_PLAIN;
                else if (strcmp(v, "json") == 0)
                    ui.mode = PROGRESS_JSON;
                else if (strcmp(v, "none") == 0)
                    ui.mode = PROGRESS_NONE;
                else
                    return usage_error("--progress takes bar, plain, json or none, not '%s'", v);
            } else if (strcmp(a, "--chunk-size") == 0) {
                char *end = NULL;
                errno = 0;
                long long c = strtoll(v, &end, 10);
                if (errno || end == v || *end || c < 1024 || c > (1LL << 30))
                    return usage_error("--chunk-size takes 1024..1073741824 bytes, not '%s'", v);
                chunk = (size_t)c;
            } else {
                return usage_error("unknown option %s", a);
            }
            continue;
        }
        if (input)
            return usage_error("one FILE or URL only; '%s' is extra", a);
        input = a;
    }
    if (!input && !job_id)
        return usage_error("FILE or URL missing");
    if (input && job_id)
        return usage_error("give FILE, URL or --job ID, not both");
    if (download)
        wait = 1;
    if (!server || !server[0])
        server = "http://127.0.0.1:8080";
    if (!is_url(server))
        return usage_error("--server must be an http:// or https:// URL, not '%s'", server);
    snprintf(base, sizeof(base), "%s", server);
    for (size_t l = strlen(base); l > 0 && base[l - 1] == '/'; l--)
        base[l - 1] = '\0';
    if (input && strstr(input, "://") && !is_url(input))
        return usage_error("only http:// and https:// URLs can be submitted, not '%s'", input);
    if (outputs_s) {
        outputs = json_loads(outputs_s, 0, NULL);
        if (!json_is_array(outputs) || json_array_size(outputs) == 0) {
            json_decref(outputs);
            return usage_error("--outputs takes a non-empty JSON array of output specs");
        }
    }
    if (clip_s && !(clip = parse_clip(clip_s))) {
        json_decref(outputs);
        return usage_error("--clip takes S-E, S- or -E in seconds with S < E, not '%s'", clip_s);
    }
    if (metadata_s)
        metadata = json_loads(metadata_s, 0, NULL); /* json_is_object evaluates twice */
    if (metadata_s && !json_is_object(metadata)) {
        json_decref(outputs);
        json_decref(clip);
        json_decref(metadata);
        return usage_error("--metadata takes a JSON object");
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct submit_server srv = {
        .base = base,
        .api_key = key,
        .cancel = &cancel_flag,
        .report = {&ui, on_upload, on_retry, on_job, on_downloaded, on_created},
    };

    if (n_presets) {
        size_t len = 1;
        for (size_t i = 0; i < n_presets; i++)
            len += strlen(presets[i]) + 1;
        if (!(preset_list = calloc(1, len)))
            goto oom;
        for (size_t i = 0, n = 0; i < n_presets; i++)
            n += (size_t)snprintf(preset_list + n, len - n, "%s%s", i ? "," : "", presets[i]);
    }
    if (job_id) {
        /* an existing job: follow it, download its outputs again */
        snprintf(id, sizeof(id), "%s", job_id);
        rc = submit_get_job(&srv, id, &job, &err);
        if (rc != SUBMIT_OK) {
            fprintf(stderr, "vidq: %s: job %s: %s\n", err.code, id, err.message);
            ret = exit_code(rc);
            goto out;
        }
    } else if (is_url(input)) {
        /* API.md, Inputs from a URL: a JSON body. */
        body = json_pack("{s:s}", "input_url", input);
        if (!body)
            goto oom;
        if (n_presets == 1)
            json_object_set_new(body, "preset", json_string(presets[0]));
        else if (n_presets > 1) {
            json_t *arr = json_array();
            for (size_t i = 0; i < n_presets; i++)
                json_array_append_new(arr, json_string(presets[i]));
            json_object_set_new(body, "preset", arr);
        }
        if (outputs)
            json_object_set(body, "outputs", outputs);
        if (clip)
            json_object_set(body, "clip", clip);
        if (metadata)
            json_object_set(body, "metadata", metadata);
        if (webhook)
            json_object_set_new(body, "webhook_url", json_string(webhook));
        if (priority_s)
            json_object_set_new(body, "priority", json_integer(strtol(priority_s, NULL, 10)));
        rc = submit_post_json(&srv, "/v1/jobs", body, &job, &err);
        if (rc != SUBMIT_OK) {
            close_bar(&ui);
            fprintf(stderr, "vidq: %s: submitting %s as input_url: %s%s\n", err.code, input,
                    err.message,
                    rc == SUBMIT_EFAILED && (err.http_status == 415 || err.http_status == 400)
                        ? " (this server does not take URL inputs; upload the file instead)"
                        : "");
            ret = exit_code(rc);
            goto out;
        }
        const char *jid = json_string_value(json_object_get(job, "id"));
        if (!jid) {
            fprintf(stderr, "vidq: bad_answer: the server accepted the URL but sent no job id\n");
            goto out;
        }
        snprintf(id, sizeof(id), "%s", jid);
    } else {
        if (outputs && !(outputs_text = json_dumps(outputs, JSON_COMPACT)))
            goto oom;
        if (clip && !(clip_text = json_dumps(clip, JSON_COMPACT)))
            goto oom;
        if (metadata && !(metadata_text = json_dumps(metadata, JSON_COMPACT)))
            goto oom;
        const char *slash = strrchr(input, '/');
        const char *kv[] = {"filename", slash ? slash + 1 : input, "preset", preset_list,
                            "outputs", outputs_text, "clip", clip_text, "metadata",
                            metadata_text, "webhook_url", webhook, "priority", priority_s,
                            NULL, NULL};
        if (!(tus_meta = submit_tus_metadata(kv)))
            goto oom;
        int resumes = 0;
        char state[4200], earlier[2600] = "";
        if (state_path_for(state, sizeof(state), base, input, tus_meta) == 0) {
            ui.state_path = state;
            state_read(state, earlier, sizeof(earlier));
        }
        rc = submit_tus_upload(&srv, input, tus_meta, earlier, chunk, id, sizeof(id), &resumes,
                               &err);
        close_bar(&ui);
        /* keep the state only for an upload a later run can resume */
        if (ui.state_path && rc != SUBMIT_ECANCELED && rc != SUBMIT_EUNREACHABLE)
            unlink(ui.state_path);
        ui.state_path = NULL;
        if (rc != SUBMIT_OK) {
            fprintf(stderr, "vidq: %s: %s%s\n", err.code, err.message,
                    rc == SUBMIT_ECANCELED || rc == SUBMIT_EUNREACHABLE
                        ? " (run the same command again to resume the upload)"
                        : "");
            ret = exit_code(rc);
            goto out;
        }
        /* The last PATCH probed the file: the job exists (maybe failed). */
        rc = submit_get_job(&srv, id, &job, &err);
        if (rc != SUBMIT_OK) {
            fprintf(stderr, "vidq: %s: upload %s done, but its job: %s\n", err.code, id,
                    err.message);
            ret = exit_code(rc);
            goto out;
        }
    }
    on_job(&ui, job);

    if (!wait) {
        close_bar(&ui);
        json_line(json_incref(job));
        const char *st = json_string_value(json_object_get(job, "status"));
        ret = st && (strcmp(st, "failed") == 0 || strcmp(st, "canceled") == 0) ? CLI_FAILED
                                                                                : CLI_OK;
        if (ret != CLI_OK) {
            json_t *je = json_object_get(job, "error");
            fprintf(stderr, "vidq: %s: job %s %s: %s\n",
                    json_string_value(json_object_get(je, "code")) ?: "job_failed", id, st,
                    json_string_value(json_object_get(je, "message")) ?: "no reason given");
        }
        goto out;
    }
    rc = submit_follow(&srv, id, &final, &err);
    close_bar(&ui);
    if (rc != SUBMIT_OK) {
        fprintf(stderr, "vidq: %s: following job %s: %s\n", err.code, id, err.message);
        ret = exit_code(rc);
        goto out;
    }
    const char *st = json_string_value(json_object_get(final, "status"));
    if (!st || strcmp(st, "succeeded") != 0) {
        json_t *je = json_object_get(final, "error");
        json_line(json_incref(final));
        fprintf(stderr, "vidq: %s: job %s %s: %s\n",
                json_string_value(json_object_get(je, "code")) ?: (st ? st : "job_failed"), id,
                st ? st : "ended", json_string_value(json_object_get(je, "message")) ?: st);
        ret = CLI_FAILED;
        goto out;
    }
    if (download) {
        rc = submit_download_outputs(&srv, final, download, &err);
        close_bar(&ui);
        if (rc != SUBMIT_OK) {
            json_line(json_incref(final));
            fprintf(stderr, "vidq: %s: downloading the outputs of job %s: %s\n", err.code, id,
                    err.message);
            ret = exit_code(rc);
            goto out;
        }
    }
    json_line(json_incref(final));
    ret = CLI_OK;
    goto out;
oom:
    fprintf(stderr, "vidq: out_of_memory: out of memory\n");
    ret = CLI_FAILED;
out:
    json_decref(final);
    json_decref(job);
    json_decref(body);
    json_decref(outputs);
    json_decref(clip);
    json_decref(metadata);
    free(clip_text);
    free(outputs_text);
    free(metadata_text);
    free(preset_list);
    free(tus_meta);
    return ret;
}
