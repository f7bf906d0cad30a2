/*
 * worker_child.c - the child side of the worker protocol (`vidq worker`,
 * see worker.c's DESIGN): one transcode, isolated from the server, and
 * sandboxed (sandbox.h) before it reads the first byte of its input.
 * Single-threaded until tc_run starts libav's codec threads.
 */
#define _GNU_SOURCE
#include "jobs/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "jobs/worker_internal.h"
#include "sandbox/fault.h"
#include "sandbox/sandbox.h"

enum { REQUEST_MAX = 1 << 20 };
/* The descriptors worker.c hands a job's child. */
enum { FD_PROGRESS = 3, FD_INPUT = 4, FD_OUTPUT_DIR = 5 };

static atomic_int cancel_flag;

static void on_term(int sig)
{
    (void)sig;
    atomic_store(&cancel_flag, 1);
}

static int parse_ll(const char *s, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

/* Write one JSON line to fd 1. */
static void reply(json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (text) {
        size_t len = strlen(text), off = 0;
        while (off < len) {
            ssize_t w = write(STDOUT_FILENO, text + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    free(text);
    json_decref(obj);
}

static int reply_error(const char *code, const char *message)
{
    reply(json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message));
    return 1;
}

static char *read_request(void)
{
    char *buf = malloc(REQUEST_MAX);
    size_t got = 0;
    if (!buf)
        return NULL;
    for (;;) {
        ssize_t k = read(STDIN_FILENO, buf + got, REQUEST_MAX - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got >= REQUEST_MAX - 1)
            break;
    }
    buf[got] = '\0';
    return buf;
}

int worker_child_main(int argc, char **argv)
{
    int ret = 1;
    long long parent = 0, max_mem = 0, max_cpu = 0, nice_v = 0, layers = 0, max_fsize = 0;
    long long ns_base = -1;
    char *text = NULL;
    json_t *req = NULL;
    struct tc_progress *prog = MAP_FAILED;
    struct tc_output outs[WORKER_MAX_OUTPUTS];
    struct tc_output_result results[WORKER_MAX_OUTPUTS];
    size_t n = 0;

    int first = 1;
    const char *probe_path = NULL;
    if (argc >= 3 && strcmp(argv[1], "--probe") == 0) {
        probe_path = argv[2];
        first = 3;
    }
    for (int a = first; a + 1 < argc; a += 2) {
        long long *dst = strcmp(argv[a], "--parent") == 0       ? &parent
                         : strcmp(argv[a], "--max-memory") == 0 ? &max_mem
                         : strcmp(argv[a], "--max-cpu") == 0    ? &max_cpu
                         : strcmp(argv[a], "--nice") == 0       ? &nice_v
                         : strcmp(argv[a], "--sandbox") == 0    ? &layers
                         : strcmp(argv[a], "--max-file-size") == 0 ? &max_fsize
                         : strcmp(argv[a], "--ns-base") == 0    ? &ns_base
                                                                : NULL;
        if (!dst || parse_ll(argv[a + 1], dst) < 0) {
            fprintf(stderr, "vidq worker: internal subcommand; bad argument '%s'\n", argv[a]);
            return 2;
        }
    }
    if (probe_path)
        return worker_probe_child_main((pid_t)parent, max_mem, (int)nice_v, (unsigned)layers,
                                       (int)ns_base);
    /* Die with the runner thread that started us, and notice if it is
     * already gone. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent > 0 && getppid() != (pid_t)parent)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    pthread_sigmask(SIG_SETMASK, &set, NULL);
#ifndef VIDQ_SANITIZE /* ASan reserves terabytes of address space */
    if (max_mem > 0) {
        struct rlimit rl = {(rlim_t)max_mem, (rlim_t)max_mem};
        setrlimit(RLIMIT_AS, &rl);
    }
#endif
    if (max_cpu > 0) {
        struct rlimit rl = {(rlim_t)max_cpu, (rlim_t)max_cpu + 5};
        setrlimit(RLIMIT_CPU, &rl);
    }

    prog = mmap(NULL, sizeof(*prog), PROT_READ | PROT_WRITE, MAP_SHARED, FD_PROGRESS, 0);
    if (prog == MAP_FAILED) {
        ret = reply_error("internal_error", "worker: cannot map the progress memory");
        goto out;
    }
    close(FD_PROGRESS);
    text = read_request();
    req = text ? json_loads(text, 0, NULL) : NULL;
    const char *input = json_string_value(json_object_get(req, "input")); /* a name, for logs */
    json_t *list = json_object_get(req, "outputs");
    if (!input || !json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > WORKER_MAX_OUTPUTS) {
        ret = reply_error("internal_error", "worker: malformed request");
        goto out;
    }
    for (n = 0; n < json_array_size(list); n++) {
        json_t *o = json_array_get(list, n);
        struct tc_error err = {0};
        const char *path = json_string_value(json_object_get(o, "path"));
        const char *preset = json_string_value(json_object_get(o, "preset"));
        memset(&outs[n], 0, sizeof(outs[n]));
        if (!path || tc_spec_parse(json_object_get(o, "spec"), &outs[n].spec, &err) < 0) {
            ret = reply_error("invalid_output", err.message[0] ? err.message : "bad output");
            goto out;
        }
        snprintf(outs[n].spec.preset, sizeof(outs[n].spec.preset), "%s", preset ? preset : "");
        outs[n].path = path;
    }
    /* From here on the child reaches only its descriptors and, by the
     * relative paths above, its own output folder. */
    char why[256];
    struct sandbox_policy policy = {
        .kind = SANDBOX_JOB,
        .layers = (unsigned)layers,
        .out_dir_fd = FD_OUTPUT_DIR,
        .max_fd = FD_OUTPUT_DIR,
        .max_file_size = max_fsize,
        .ns_fd_base = (int)ns_base,
        .nice = (int)nice_v, /* taken last: the set-up is on the claim's path */
    };
    if (sandbox_enter(&policy, why, sizeof(why)) < 0) {
        ret = reply_error("internal_error", why);
        goto out;
    }
    close(FD_OUTPUT_DIR); /* the working directory now */
    /* When the child is ready to read its input (the claim-to-running
     * figure of tests/bench/bench_upload_latency.sh). */
    log_info("worker running pid=%ld", (long)getpid());
    int fault = fault_escape_from_env("VIDQ_FAULT_JOB", why, sizeof(why));
    if (fault != FAULT_NONE) {
        ret = reply_error(fault == FAULT_BLOCKED ? "sandbox_violation" : "sandbox_escaped", why);
        goto out;
    }
    struct tc_run_params rp = {
        .input_path = NULL,
        .input_fd = FD_INPUT,
        .outputs = outs,
        .n_outputs = n,
        .threads = (int)json_integer_value(json_object_get(req, "threads")),
        .cancel = &cancel_flag,
        .progress = prog,
    };
    struct tc_error err = {0};
    int rc = tc_run(&rp, results, &err);
    if (rc < 0) {
        ret = reply_error(tc_errname(rc), err.message[0] ? err.message : tc_strerror(rc));
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, tc_output_result_pack(&results[i]));
    reply(json_pack("{s:o}", "results", arr));
    ret = 0;
out:
    json_decref(req);
    free(text);
    if (prog != MAP_FAILED)
        munmap(prog, sizeof(*prog));
    return ret;
}
