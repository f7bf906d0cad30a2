/* config.c - see config.h. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_kind { OPT_STR, OPT_INT, OPT_I64, OPT_DOUBLE, OPT_LISTEN, OPT_ISOLATION };

struct opt {
    const char *flag;       /* without the leading "--" */
    enum opt_kind kind;
    size_t offset;
    size_t size;            /* OPT_STR: buffer size */
    double min, max;        /* numeric range */
    const char *help;
};

#define STR(f, h) {#f, OPT_STR, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0, h}

static const struct opt opts[] = {
    {"listen", OPT_LISTEN, 0, 0, 0, 0, "HOST:PORT to listen on; port 0 picks a free one"},
    {"data-dir", OPT_STR, offsetof(struct config, data_dir), sizeof(((struct config *)0)->data_dir), 0, 0,
     "folder for the database, uploads and outputs"},
    {"db", OPT_STR, offsetof(struct config, db), sizeof(((struct config *)0)->db), 0, 0,
     "job store: sqlite:<path> (default sqlite:<data-dir>/vidq.db) or postgres://user@host/db"},
    {"max-concurrent", OPT_INT, offsetof(struct config, max_concurrent), 0, 1, 256, "jobs running at once"},
    {"isolation", OPT_ISOLATION, 0, 0, 0, 0, "process (a child per job) or thread"},
    {"max-queued", OPT_INT, offsetof(struct config, max_queued), 0, 1, 1000000, "queued jobs before 429"},
    {"max-upload-bytes", OPT_I64, offsetof(struct config, max_upload_bytes), 0, 1, 1e15,
     "largest accepted upload (413 above)"},
    {"api-key", OPT_STR, offsetof(struct config, api_key), sizeof(((struct config *)0)->api_key), 0, 0,
     "require Authorization: Bearer <key> (not for /healthz)"},
    {"webhook-secret", OPT_STR, offsetof(struct config, webhook_secret),
     sizeof(((struct config *)0)->webhook_secret), 0, 0, "whsec_<base64> signing key for webhooks"},
    {"webhook-retry-min", OPT_DOUBLE, offsetof(struct config, webhook_retry_min), 0, 0.01, 1e9,
     "first webhook retry delay, seconds"},
    {"webhook-retry-max-age", OPT_DOUBLE, offsetof(struct config, webhook_retry_max_age), 0, 1, 1e9,
     "give up retrying a webhook after this many seconds"},
    {"webhook-timeout", OPT_DOUBLE, offsetof(struct config, webhook_timeout), 0, 0.1, 3600,
     "timeout of one webhook delivery attempt, seconds"},
    {"webhook-targets", OPT_STR, offsetof(struct config, webhook_targets),
     sizeof(((struct config *)0)->webhook_targets), 0, 0,
     "addresses webhooks may reach: any, public, public+loopback (README)"},
    {"fetch-targets", OPT_STR, offsetof(struct config, fetch_targets),
     sizeof(((struct config *)0)->fetch_targets), 0, 0,
     "addresses input_url fetches may reach: any, public, public+loopback (README)"},
    {"job-timeout", OPT_DOUBLE, offsetof(struct config, job_timeout), 0, 0.1, 1e9,
     "wall-clock limit of one job attempt, seconds"},
    {"shutdown-grace", OPT_DOUBLE, offsetof(struct config, shutdown_grace), 0, 0, 1e6,
     "on SIGTERM/SIGINT, seconds running jobs may still finish"},
    {"http-threads", OPT_INT, offsetof(struct config, http_threads), 0, 1, 256,
     "HTTP thread pool size (default: the cores, at least 2, at most 8)"},
    {"max-connections", OPT_INT, offsetof(struct config, max_connections), 0, 1, 100000,
     "open HTTP connections at most"},
    {"max-connections-per-ip", OPT_INT, offsetof(struct config, max_connections_per_ip), 0, 1, 100000,
     "open HTTP connections per client address"},
    {"connection-timeout", OPT_INT, offsetof(struct config, connection_timeout), 0, 1, 86400,
     "close an idle HTTP connection after this many seconds"},
    {"header-timeout", OPT_INT, offsetof(struct config, header_timeout), 0, 1, 3600,
     "close a connection whose request head is not complete after this many seconds"},
    {"min-free-bytes", OPT_I64, offsetof(struct config, min_free_bytes), 0, 0, 1e15,
     "refuse uploads (507) that would leave less free disk in the data dir (0 = off)"},
    {"disk-scan-interval", OPT_DOUBLE, offsetof(struct config, disk_scan_interval), 0, 0.1, 86400,
     "seconds between walks of the data dir that count bytes stored for /metrics"},
    {"worker-max-memory", OPT_I64, offsetof(struct config, worker_max_memory), 0, 0, 1e15,
     "address-space limit of a job's child process, bytes (0 = none)"},
    {"job-threads", OPT_INT, offsetof(struct config, job_threads), 0, 0, 256,
     "codec threads per job (0 = cores / --max-concurrent, at least 1)"},
    {"worker-nice", OPT_INT, offsetof(struct config, worker_nice), 0, 0, 19,
     "CPU niceness of job children and threads"},
    {"spare-idle", OPT_DOUBLE, offsetof(struct config, spare_idle), 0, 0, 86400,
     "seconds without an upload or job after which the warm zygote ends its spare children (0 = never)"},
    {"tus-expiry", OPT_DOUBLE, offsetof(struct config, tus_expiry), 0, 0.1, 1e9,
     "seconds an unfinished resumable (tus) upload is kept after its last write"},
    {"tus-fsync", OPT_INT, offsetof(struct config, tus_fsync), 0, 0, 1,
     "1: fdatasync every tus chunk before its 204 (survives a power cut; slower)"},
    {"status-cache-jobs", OPT_INT, offsetof(struct config, status_cache_jobs), 0, 1, 10000000,
     "PostgreSQL store: queued and other nodes' jobs a node answers for from memory, at most"},
    {"node-lease", OPT_DOUBLE, offsetof(struct config, node_lease), 0, 1, 3600,
     "PostgreSQL store: seconds after which the jobs of a node that stopped renewing go to others"},
    STR(sandbox, "strict (job and probe children sandboxed; refuse to start without seccomp) or off"),
    {"max-output-bytes", OPT_I64, offsetof(struct config, max_output_bytes), 0, 1, 1e15,
     "largest file a job may write (RLIMIT_FSIZE of its child; the job fails above)"},
    {"retention", OPT_DOUBLE, offsetof(struct config, retention), 0, 1, 1e10,
     "seconds a job's input and outputs are kept after it ends (uploads may ask less or more: ttl_s)"},
    {"max-retention", OPT_DOUBLE, offsetof(struct config, max_retention), 0, 1, 1e10,
     "the largest ttl_s an upload may ask, seconds"},
    {"retention-records", OPT_DOUBLE, offsetof(struct config, retention_records), 0, 1, 1e10,
     "seconds a job (and its webhook deliveries) stays readable after it ends; then 404"},
    {"port-file", OPT_STR, offsetof(struct config, port_file), sizeof(((struct config *)0)->port_file), 0, 0,
     "write the bound port number to this file once listening"},
};

#undef STR

/* The cores this process may run on (its affinity: taskset and cgroup
 * cpusets count), as the scheduler counts them for the thread budget. */
static int usable_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* --http-threads' default, measured with tests/bench/bench_http_threads.sh
 * (README "Running in production", HTTP threads). On 2 cores, GET
 * /status/<id> alone (wrk, 32 connections) ran fastest on 1 thread
 * (65-75k req/s, p99 1.0-1.8 ms) and slowest on 4 (43-57k, p99 3.9-8.4 ms):
 * threads beyond the cores only contend. But a handler may block its
 * thread: an upload was probed in the thread that received it (tens of
 * ms, more for a big file; now in a thread of its own, offload.c), a
 * PostgreSQL read waits on the network, and every other connection of
 * that thread waits meanwhile; with uploads
 * alongside, 1 thread fell to a fifth of 2 threads' req/s (p50 3.5 vs
 * 0.6 ms). So one thread per core, never fewer than 2, and at most 8
 * (one epoll thread serves tens of thousands of requests a second; more
 * than 8 was not measured to help anything). */
int config_default_http_threads(int cores)
{
    return cores < 2 ? 2 : cores > 8 ? 8 : cores;
}

static void set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
    cfg->listen_port = 8080;
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./var");
    cfg->max_concurrent = 2;
    cfg->isolation = CONFIG_ISOLATION_PROCESS;
    cfg->max_queued = 1000;
    cfg->status_cache_jobs = 20000;
    cfg->max_upload_bytes = (int64_t)8 << 30;
    cfg->webhook_retry_min = 5;
    cfg->webhook_retry_max_age = 86400;
    cfg->webhook_timeout = 15;
    snprintf(cfg->webhook_targets, sizeof(cfg->webhook_targets), "any");
    snprintf(cfg->fetch_targets, sizeof(cfg->fetch_targets), "public");
    cfg->job_timeout = 3600;
    cfg->tus_expiry = 86400;
    cfg->shutdown_grace = 30;
    cfg->http_threads = config_default_http_threads(usable_cores());
    cfg->max_connections = 1024;
    cfg->max_connections_per_ip = 256;
    cfg->connection_timeout = 60;
    cfg->header_timeout = 10;
    cfg->min_free_bytes = (int64_t)1 << 30; /* README: Disk guard */
    cfg->disk_scan_interval = 30;
    cfg->worker_max_memory = (int64_t)8 << 30;
    cfg->worker_nice = 10;
    cfg->spare_idle = 60; /* README: The warm zygote, Idle */
    cfg->node_lease = 10;
    snprintf(cfg->sandbox, sizeof(cfg->sandbox), "strict");
    cfg->max_output_bytes = (int64_t)64 << 30;
    cfg->retention = 7 * 86400;
    cfg->max_retention = 30 * 86400;
    cfg->retention_records = 30 * 86400;
}

static int parse_double(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || v != v || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_i64(const char *s, double min, double max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || (double)v < min || (double)v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int parse_listen(struct config *cfg, const char *v)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return -1;
    size_t hl = (size_t)(colon - v);
    const char *host = v;
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') { /* [::1]:8080 */
        host++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(cfg->listen_host))
        return -1;
    int64_t port;
    if (parse_i64(colon + 1, 0, 65535, &port) < 0)
        return -1;
    memcpy(cfg->listen_host, host, hl);
    cfg->listen_host[hl] = '\0';
    cfg->listen_port = (int)port;
    return 0;
}

static int apply(struct config *cfg, const struct opt *o, const char *v, const char *from,
                 char *err, size_t errlen)
{
    char *base = (char *)cfg;
    int64_t i;
    double d;
    switch (o->kind) {
    case OPT_STR:
        if (strlen(v) >= o->size) {
            snprintf(err, errlen, "%s: value too long", from);
            return -1;
        }
        memcpy(base + o->offset, v, strlen(v) + 1);
        return 0;
    case OPT_INT:
        if (parse_i64(v, o->min, o->max, &i) < 0)
            break;
        *(int *)(void *)(base + o->offset) = (int)i;
        return 0;
    case OPT_I64:
        if (parse_i64(v, o->min, o->max, &i) < 0)
            break;
        *(int64_t *)(void *)(base + o->offset) = i;
        return 0;
    case OPT_DOUBLE:
        if (parse_double(v, o->min, o->max, &d) < 0)
            break;
        *(double *)(void *)(base + o->offset) = d;
        return 0;
    case OPT_LISTEN:
        if (parse_listen(cfg, v) < 0) {
            snprintf(err, errlen, "%s: expected HOST:PORT, got '%s'", from, v);
            return -1;
        }
        return 0;
    case OPT_ISOLATION:
        if (strcmp(v, "process") == 0)
            cfg->isolation = CONFIG_ISOLATION_PROCESS;
        else if (strcmp(v, "thread") == 0)
            cfg->isolation = CONFIG_ISOLATION_THREAD;
        else {
            snprintf(err, errlen, "%s: expected process or thread, got '%s'", from, v);
            return -1;
        }
        return 0;
    }
    if (o->kind == OPT_DOUBLE)
        snprintf(err, errlen, "%s: expected a number in [%g, %g], got '%s'", from, o->min, o->max, v);
    else
        snprintf(err, errlen, "%s: expected an integer in [%.0f, %.0f], got '%s'", from, o->min,
                 o->max, v);
    return -1;
}

/* "max-concurrent" -> "VIDQ_MAX_CONCURRENT" */
static void env_name(const char *flag, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "VIDQ_");
    for (const char *p = flag; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    size_t nopts = sizeof(opts) / sizeof(opts[0]);
    set_defaults(cfg);
    for (size_t k = 0; k < nopts; k++) {
        char name[64];
        env_name(opts[k].flag, name, sizeof(name));
        const char *v = getenv(name);
        if (v && *v && apply(cfg, &opts[k], v, name, err, errlen) < 0)
            return CONFIG_ERROR;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return CONFIG_HELP;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s'", arg);
            return CONFIG_ERROR;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = NULL;
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].flag) == nl && strncmp(opts[k].flag, name, nl) == 0)
                o = &opts[k];
        if (!o) {
            snprintf(err, errlen, "unknown flag '%s' (try vidq serve --help)", arg);
            return CONFIG_ERROR;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (a + 1 >= argc) {
                snprintf(err, errlen, "flag --%s needs a value", o->flag);
                return CONFIG_ERROR;
            }
            v = argv[++a];
        }
        char from[80];
        snprintf(from, sizeof(from), "--%s", o->flag);
        if (apply(cfg, o, v, from, err, errlen) < 0)
            return CONFIG_ERROR;
    }
    if (cfg->db[0] == '\0')
        snprintf(cfg->db, sizeof(cfg->db), "sqlite:%s/vidq.db", cfg->data_dir);
    return 0;
}

const char *config_usage(void)
{
    static char text[6000];
    if (text[0])
        return text;
    size_t n = (size_t)snprintf(text, sizeof(text),
                                "usage: vidq serve [flags]\n"
                                "Every flag --some-flag can also be set by VIDQ_SOME_FLAG.\n\n");
    for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]) && n < sizeof(text); k++) {
        char env[64];
        env_name(opts[k].flag, env, sizeof(env));
        int w = snprintf(text + n, sizeof(text) - n, "  --%-24s %-28s %s\n", opts[k].flag, env,
                         opts[k].help);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    return text;
}
