/*
 * cli_serve.c - `vidq serve` (wiring only) and the hidden `vidq worker`.
 *
 * serve: parse the config, prepare the data dir, open the store, drop
 * leftovers of interrupted uploads, requeue the jobs a previous run left
 * running (deleting their partial outputs; a shared store: only those of
 * nodes that are gone, and their files stay for the next attempt),
 * start the webhook sender, the scheduler and the HTTP server, wait for
 * SIGTERM/SIGINT, then stop in reverse: refuse uploads, let running jobs
 * finish for the grace period (the rest go back to the queue), stop HTTP,
 * stop the webhook sender (pending deliveries stay in the store's outbox
 * for the next start), close the store.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/config.h"
#include "common/log.h"
#include "hooks/outbox.h"
#include "http/http.h"
#include "http/upload.h"
#include "jobs/sched.h"
#include "jobs/sweeper.h"
#include "store/store.h"
#include "jobs/worker.h"
#include "jobs/zygote.h"
#include "sandbox/sandbox.h"

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "vidq serve: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The data dir's folders. */
static int prepare_data_dir(const char *dir)
{
    char path[1200];
    static const char *const subs[] = {"tmp", "inputs", "outputs"};
    if (make_dir(dir) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
        if (make_dir(path) < 0)
            return -1;
    }
    return 0;
}

/* With a shared store the data dir is shared too: a file another node is
 * writing right now is young; leftovers are only files untouched this long. */
enum { SHARED_LEFTOVER_AGE_S = 600 };

static int is_leftover(const char *path, int shared)
{
    struct stat sb;
    if (!shared)
        return 1;
    return stat(path, &sb) == 0 && time(NULL) - sb.st_mtime > SHARED_LEFTOVER_AGE_S;
}

/* Leftovers of interrupted uploads in tmp/ are dropped. */
static void clean_tmp(const char *dir, int shared)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/tmp", dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char f[1600];
        snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
        if (is_leftover(f, shared))
            unlink(f);
    }
    if (d)
        closedir(d);
}

struct requeue_ctx {
    const char *data_dir;
    int shared;
};

static void on_requeued(void *opaque, const char *id)
{
    const struct requeue_ctx *ctx = opaque;
    log_info("job requeued after restart id=%s", id);
    /* On a shared store another node may claim the job again at once, so
     * its files stay: the next attempt writes a folder of its own and
     * removes the older ones (job.h), as sched_nodes.c does for jobs of
     * dead nodes. Alone on SQLite nothing can claim it yet. */
    if (!ctx->shared)
        job_remove_outputs(ctx->data_dir, id);
}

/* Uploads renamed into inputs/ whose job was never committed (a crash
 * between the two) are dropped. */
static void drop_orphan_inputs(struct store *st, const char *data_dir)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/inputs", data_dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        struct job *job = NULL;
        if (!job_id_valid(e->d_name))
            continue;
        char f[1600];
        snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
        if (store_job_get(st, e->d_name, &job) == STORE_ENOTFOUND &&
            is_leftover(f, store_is_shared(st))) {
            log_info("dropping an upload without a job file=%s", f);
            unlink(f);
        }
        job_free(&job);
    }
    if (d)
        closedir(d);
}

/* Who hears of job changes: the event streams, and the webhook outbox,
 * woken at once when a job ends (it also polls the store on its own). */
struct job_observers {
    struct http_server *http;
    struct hook_outbox *hooks;
};

static void on_job_changed(void *opaque, const char *job_id, int final)
{
    struct job_observers *o = opaque;
    http_job_changed(o->http, job_id, final);
    if (final)
        hook_outbox_notify(o->hooks);
}

static int write_port_file(const char *path, int port)
{
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

/* --sandbox strict|off and --isolation: which sandbox layers children
 * apply. strict needs seccomp at least; every layer found is logged.
 * Returns 0, or -1 after saying why the server cannot start. */
static int choose_sandbox(const struct config *cfg, unsigned *layers)
{
    char names[128];
    *layers = 0;
    if (strcmp(cfg->sandbox, "strict") != 0 && strcmp(cfg->sandbox, "off") != 0) {
        fprintf(stderr, "vidq serve: --sandbox: expected strict or off, got '%s'\n", cfg->sandbox);
        return -1;
    }
    if (cfg->isolation == CONFIG_ISOLATION_THREAD) {
        log_warn("sandbox=none: --isolation thread runs probes and jobs inside the server, "
                 "where no sandbox can hold them (README, Security model)");
        return 0;
    }
    if (strcmp(cfg->sandbox, "off") == 0) {
        log_warn("sandbox=none: --sandbox off; children reading uploads run with the "
                 "server's rights (for debugging only)");
        return 0;
    }
    unsigned found = sandbox_detect();
    if (!(found & SANDBOX_SECCOMP)) {
        fprintf(stderr,
                "vidq serve: the sandbox needs seccomp, which this kernel or its container "
                "refuses (found: %s); --sandbox off runs without it, unsafe for untrusted "
                "uploads\n",
                sandbox_layers_str(found, names, sizeof(names)));
        return -1;
    }
    *layers = found;
    if (found != SANDBOX_ALL) {
        char missing[128];
        log_warn("sandbox layers missing on this kernel: %s",
                 sandbox_layers_str(SANDBOX_ALL & ~found, missing, sizeof(missing)));
    }
    log_info("sandbox=%s", sandbox_layers_str(found, names, sizeof(names)));
    return 0;
}

int cli_serve(int argc, char **argv)
{
    int ret = CLI_FAILED;
    struct config cfg;
    char err[512];
    struct store *st = NULL;
    struct http_server *http = NULL;
    struct sched *sched = NULL;
    struct hook_outbox *hooks = NULL;
    struct sweeper *sweeper = NULL;
    int port = 0;

    int rc = config_parse(&cfg, argc, argv, err, sizeof(err));
    if (rc == CONFIG_HELP) {
        fputs(config_usage(), stdout);
        return CLI_OK;
    }
    if (rc != 0) {
        fprintf(stderr, "vidq serve: %s\n", err);
        return CLI_USAGE;
    }
    if (prepare_data_dir(cfg.data_dir) < 0)
        return CLI_FAILED;
    if (!log_enabled(LOG_DEBUG))
        log_route_transcode(LOG_WARNING);
    /* Before any thread: sandbox_detect forks a test child. */
    unsigned layers = 0;
    if (choose_sandbox(&cfg, &layers) < 0)
        return strcmp(cfg.sandbox, "strict") && strcmp(cfg.sandbox, "off") ? CLI_USAGE : CLI_FAILED;

    /* Signals are taken by sigwait below; every thread inherits the mask.
     * SIGPIPE stays blocked: a client or child that goes away is an error
     * return, not a death. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* After the mask: the zygote's keeper thread must not take SIGTERM. */
    int process = cfg.isolation != CONFIG_ISOLATION_THREAD;
    if (worker_children_start("/proc/self/exe", layers, cfg.max_output_bytes, process,
                              cfg.spare_idle) < 0)
        log_warn("no warm zygote: every probe and job child is spawned afresh (slower)");

    if (store_open(cfg.db, &st, err, sizeof(err)) != STORE_OK) {
        fprintf(stderr, "vidq serve: %s\n", err);
        goto out;
    }
    /* PostgreSQL: several nodes may share the store and the data dir. */
    store_set_node_lease(st, cfg.node_lease);
    store_set_retention(st, cfg.retention);
    upload_set_max_ttl(cfg.max_retention);
    clean_tmp(cfg.data_dir, store_is_shared(st));
    struct requeue_ctx requeue = {cfg.data_dir, store_is_shared(st)};
    if (store_requeue_running(st, on_requeued, &requeue) != STORE_OK) {
        fprintf(stderr, "vidq serve: cannot requeue interrupted jobs\n");
        goto out;
    }
    drop_orphan_inputs(st, cfg.data_dir);
    struct hook_outbox_config hc = {
        .store = st,
        .data_dir = cfg.data_dir,
        .secret = cfg.webhook_secret,
        .retry_min_s = cfg.webhook_retry_min,
        .retry_max_age_s = cfg.webhook_retry_max_age,
        .timeout_s = cfg.webhook_timeout,
        .targets = cfg.webhook_targets,
    };
    if (hook_outbox_start(&hc, &hooks, err, sizeof(err)) != 0) {
        fprintf(stderr, "vidq serve: %s\n", err);
        goto out;
    }
    if (http_create(&cfg, &http) < 0)
        goto out;
    http_set_hooks(http, hooks);
    struct job_observers observers = {http, hooks};
    struct sched_config sc = {
        .data_dir = cfg.data_dir,
        .exe = "/proc/self/exe",
        .max_concurrent = cfg.max_concurrent,
        .max_queued = cfg.max_queued,
        .status_cache_jobs = cfg.status_cache_jobs,
        .isolation = cfg.isolation == CONFIG_ISOLATION_THREAD ? WORKER_THREAD : WORKER_PROCESS,
        .job_timeout_s = cfg.job_timeout,
        .worker_max_memory = cfg.worker_max_memory,
        .worker_nice = cfg.worker_nice,
        .job_threads = cfg.job_threads,
        .fetch_max_bytes = cfg.max_upload_bytes,
        .observer = on_job_changed,
        .observer_opaque = &observers,
    };
    if (net_targets_parse(cfg.fetch_targets, &sc.fetch_rule) != 0) {
        fprintf(stderr, "vidq serve: --fetch-targets: expected any, public or public+loopback\n");
        goto out;
    }
    if (sched_start(st, &sc, &sched) != SCHED_OK) {
        fprintf(stderr, "vidq serve: cannot start the scheduler\n");
        goto out;
    }
    struct sweeper_config wc = {.store = st, .sched = sched, .data_dir = cfg.data_dir,
                                .records_s = cfg.retention_records};
    if (sweeper_start(&wc, &sweeper) < 0)
        goto out;
    if (http_listen(http, sched, &port) < 0) {
        fprintf(stderr, "vidq serve: cannot listen on %s:%d\n", cfg.listen_host,
                cfg.listen_port);
        goto out;
    }
    if (cfg.port_file[0] && write_port_file(cfg.port_file, port) < 0)
        log_warn("cannot write the port file %s", cfg.port_file);
    printf("listening on %s:%d\n", cfg.listen_host, port);
    fflush(stdout);
    log_info("vidq serve listening on %s:%d data_dir=%s isolation=%s max_concurrent=%d",
             cfg.listen_host, port, cfg.data_dir,
             cfg.isolation == CONFIG_ISOLATION_THREAD ? "thread" : "process",
             cfg.max_concurrent);

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    log_info("signal %d: stopping (uploads refused, running jobs get %.0f s)", sig,
             cfg.shutdown_grace);
    http_drain(http);
    sched_stop(sched, cfg.shutdown_grace);
    ret = CLI_OK;
out:
    sched_stop(sched, 0);
    sweeper_stop(&sweeper); /* it reads the scheduler */
    /* The HTTP threads read the scheduler until they are gone. */
    http_destroy(&http);
    sched_free(&sched);
    hook_outbox_stop(&hooks); /* after everything that changes jobs */
    worker_children_stop();   /* every child has ended */
    store_close(&st);
    if (ret == CLI_OK)
        log_info("stopped");
    return ret;
}

int cli_zygote(int argc, char **argv)
{
    if (!log_enabled(LOG_DEBUG))
        log_route_transcode(LOG_WARNING);
    return zygote_main(argc, argv);
}

int cli_worker(int argc, char **argv)
{
    if (!log_enabled(LOG_DEBUG))
        log_route_transcode(LOG_WARNING);
    return worker_child_main(argc, argv);
}
