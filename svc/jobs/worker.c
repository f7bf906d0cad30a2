/*
 * worker.c - run and supervise one job attempt (see worker.h).
 *
 * DESIGN (worker protocol)
 *   Process mode: the runner thread makes a memfd holding one
 *   struct tc_progress (mmap MAP_SHARED on both sides), a request pipe and a
 *   result pipe, opens the input read-only and the job's output folder,
 *   and starts "vidq worker --parent PID ..." (worker_spawn: forked by the
 *   zygote, or posix_spawned) with fd 0 = request, fd 1 = result, fd 2 =
 *   stderr, fd 3 = progress, fd 4 = input, fd 5 = output folder, and no
 *   other descriptor. The child sets PR_SET_PDEATHSIG (it dies with the
 *   server, so a kill -9 of the server leaves no orphan writing outputs),
 *   its niceness and rlimits (address space, CPU time), reads the request
 *   JSON
 *     {"input": name, "outputs": [{"spec": {...}, "preset": s, "path": s}]}
 *   (output paths relative to the output folder), enters its sandbox
 *   (sandbox.h: the folder becomes its working directory and the only
 *   path it can reach), runs tc_run on fd 4 with the shared progress and
 *   a cancel flag that SIGTERM sets, writes one result JSON line
 *     {"results": [<tc_output_result_pack>, ...]} | {"error": {"code","message"}}
 *   and exits 0 (succeeded) or 1 (failed).
 *   The runner polls the result pipe and a wake-up eventfd with a 200 ms
 *   timeout: each wake it reads the progress seqlock (>= 5 samples/s),
 *   checks the stop flag (cancel or shutdown: SIGKILL at once, the
 *   runner deletes the partial outputs) and the wall clock (SIGKILL on
 *   timeout). EOF on the result pipe means the child is gone: waitpid reaps
 *   it. A death by signal we did not send is `worker_crashed` naming the
 *   signal, or `sandbox_violation` for SIGSYS (the seccomp filter killed
 *   it) and `too_large` for SIGXFSZ (an output passed the size cap).
 *   Thread mode: the same loop, but tc_run runs in a thread with a plain
 *   struct tc_progress, and an eventfd replaces the result pipe; stop and
 *   timeout set the cancel flag (a thread cannot be killed).
 */
#define _GNU_SOURCE
#include "jobs/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "jobs/worker_internal.h"
#include "jobs/zygote.h"
#include "sandbox/sandbox.h"

extern char **environ;

/* Set once by worker_configure_children before any child starts. */
static unsigned child_layers;
static int64_t child_max_file_size;
static char **child_env; /* environ, or a copy with sanitizer options */

enum { POLL_MS = 200, RESULT_MAX = 65536 };

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_result(struct worker_result *r, enum worker_outcome o, const char *code,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set_result(struct worker_result *r, enum worker_outcome o, const char *code,
                       const char *fmt, ...)
{
    va_list ap;
    r->outcome = o;
    snprintf(r->code, sizeof(r->code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
}

static void publish(const struct worker_params *p, const struct tc_progress *prog,
                    struct tc_progress_snapshot *last)
{
    struct tc_progress_snapshot snap;
    tc_progress_read(prog, &snap);
    if (memcmp(&snap, last, sizeof(snap)) == 0)
        return;
    *last = snap;
    if (p->on_progress)
        p->on_progress(p->opaque, &snap);
}

/* Reset the wake-up eventfd once it fired, so the next poll sleeps. */
static void drain_wake(const struct pollfd pfd[2], int n)
{
    uint64_t v;
    if (n > 0 && pfd[1].fd >= 0 && pfd[1].revents) {
        ssize_t k = read(pfd[1].fd, &v, sizeof(v));
        (void)k;
    }
}

/* The request JSON for the child; output paths relative to the output
 * folder (dir_len bytes of each path, and a slash). New string (free),
 * NULL on OOM. */
static char *request_json(const struct worker_params *p, size_t dir_len)
{
    char *text = NULL;
    json_t *outs = json_array();
    for (size_t i = 0; outs && i < p->n_outputs; i++) {
        const struct tc_output *o = &p->outputs[i];
        json_t *spec = tc_spec_to_json(&o->spec);
        if (!spec)
            goto out;
        json_array_append_new(outs, json_pack("{s:o, s:s, s:s}", "spec", spec, "preset",
                                              o->spec.preset, "path", o->path + dir_len + 1));
    }
    const char *slash = strrchr(p->input_path, '/');
    json_t *req = json_pack("{s:s, s:o, s:i}", "input", slash ? slash + 1 : p->input_path,
                            "outputs", outs, "threads", p->threads);
    outs = NULL;
    if (req)
        text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
out:
    json_decref(outs);
    return text;
}

static void parse_child_result(const char *buf, const struct worker_params *p,
                               struct worker_result *r)
{
    json_error_t jerr;
    json_t *res = json_loads(buf, 0, &jerr);
    json_t *e = json_object_get(res, "error");
    json_t *list = json_object_get(res, "results");
    if (e) {
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        set_result(r, WORKER_FAILED, code ? code : "internal_error", "%s",
                   msg ? msg : "the transcode failed");
    } else if (json_is_array(list) && json_array_size(list) == p->n_outputs) {
        int bad = 0;
        for (size_t i = 0; i < p->n_outputs; i++)
            bad |= tc_output_result_unpack(json_array_get(list, i), &r->results[i]) < 0;
        if (bad)
            set_result(r, WORKER_CRASHED, "worker_crashed",
                       "the worker process sent a malformed result");
        else
            set_result(r, WORKER_SUCCEEDED, "", "ok");
    } else {
        set_result(r, WORKER_CRASHED, "worker_crashed", "the worker process sent no result");
    }
    json_decref(res);
}

/* The folder every output path lies directly in ("<data>/outputs/<id>"):
 * its length, or 0 if the outputs do not share one (then no job runs). */
static size_t output_dir_len(const struct worker_params *p)
{
    const char *first = p->outputs[0].path;
    const char *slash = strrchr(first, '/');
    if (!slash || slash == first)
        return 0;
    size_t len = (size_t)(slash - first);
    for (size_t i = 0; i < p->n_outputs; i++) {
        const char *path = p->outputs[i].path;
        if (strncmp(path, first, len) != 0 || path[len] != '/' || !path[len + 1] ||
            strchr(path + len + 1, '/'))
            return 0;
    }
    return len;
}

static int run_process(const struct worker_params *p, struct worker_result *r)
{
    int ret = -1;
    int memfd = -1, req[2] = {-1, -1}, res[2] = {-1, -1}, input = -1, outdir = -1;
    struct tc_progress *prog = MAP_FAILED;
    char *request = NULL, *buf = NULL;
    pid_t pid = -1;
    char a_parent[32], a_mem[32], a_cpu[32], a_nice[16], a_layers[16], a_fsize[32];
    char dir[4096];

    set_result(r, WORKER_FAILED, "internal_error", "could not start the worker process");
    size_t dir_len = output_dir_len(p);
    if (dir_len == 0 || dir_len >= sizeof(dir)) {
        set_result(r, WORKER_FAILED, "internal_error", "the outputs do not share one folder");
        goto out;
    }
    memcpy(dir, p->outputs[0].path, dir_len);
    dir[dir_len] = '\0';
    /* The child reaches the input and its folder only through these. */
    input = open(p->input_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    outdir = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (input < 0 || outdir < 0) {
        set_result(r, WORKER_FAILED, "internal_error", "cannot open the job's %s: %s",
                   input < 0 ? "input" : "output folder", strerror(errno));
        goto out;
    }
    memfd = memfd_create("vidq-progress", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, (off_t)sizeof(struct tc_progress)) < 0)
        goto out;
    prog = mmap(NULL, sizeof(*prog), PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (prog == MAP_FAILED)
        goto out;
    tc_progress_init(prog);
    if (pipe2(req, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
        goto out;
    request = request_json(p, dir_len);
    buf = malloc(RESULT_MAX);
    if (!request || !buf)
        goto out;
    /* CPU time: the wall-clock limit on every core, plus slack. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double cpu = p->timeout_s > 0 ? p->timeout_s * (double)(ncpu > 0 ? ncpu : 1) + 60 : 0;
    snprintf(a_parent, sizeof(a_parent), "%ld", (long)getpid());
    snprintf(a_mem, sizeof(a_mem), "%lld", (long long)p->max_memory);
    snprintf(a_cpu, sizeof(a_cpu), "%.0f", cpu);
    snprintf(a_nice, sizeof(a_nice), "%d", p->nice);
    worker_child_args(a_layers, sizeof(a_layers), a_fsize, sizeof(a_fsize));
    char *argv[] = {(char *)"worker", (char *)"--parent", a_parent, (char *)"--max-memory", a_mem,
                    (char *)"--max-cpu", a_cpu, (char *)"--nice", a_nice, (char *)"--sandbox",
                    a_layers, (char *)"--max-file-size", a_fsize, NULL};
    int fds[] = {req[0], res[1], STDERR_FILENO, memfd, input, outdir};
    pid = worker_spawn(p->exe, argv, fds, (int)(sizeof(fds) / sizeof(fds[0])));
    if (pid < 0) {
        set_result(r, WORKER_FAILED, "internal_error", "cannot start the worker process: %s",
                   strerror((int)-pid));
        pid = -1;
        goto out;
    }
    close(req[0]);
    close(res[1]);
    req[0] = res[1] = -1;
    if (p->on_start)
        p->on_start(p->opaque, pid);

    /* The request is far below the pipe's capacity; a child that died at
     * once gives EPIPE (SIGPIPE is blocked in the server). */
    size_t len = strlen(request), off = 0;
    while (off < len) {
        ssize_t w = write(req[1], request + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(req[1]);
    req[1] = -1;

    double start = mono_now();
    int timed_out = 0, stopped = 0, killed = 0;
    size_t got = 0;
    struct tc_progress_snapshot last;
    memset(&last, 0, sizeof(last));
    for (;;) {
        struct pollfd pfd[2] = {{.fd = res[0], .events = POLLIN},
                                {.fd = p->wake_fd, .events = POLLIN}};
        int n = poll(pfd, p->wake_fd >= 0 ? 2 : 1, POLL_MS);
        publish(p, prog, &last);
        drain_wake(pfd, n);
        if (n > 0 && pfd[0].revents) {
            ssize_t k = read(res[0], buf + got, RESULT_MAX - 1 - got);
            if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
                break;
            if (k > 0)
                got += (size_t)k;
            if (got >= RESULT_MAX - 1) /* an oversized result: stop listening */
                break;
        }
        double now = mono_now();
        /* A stopped job's outputs are thrown away, so the child need not
         * clean up: SIGKILL ends it at once. */
        if (!stopped && atomic_load(p->stop)) {
            stopped = 1;
            killed = 1;
            kill(pid, SIGKILL);
        }
        if (!timed_out && p->timeout_s > 0 && now - start > p->timeout_s) {
            timed_out = 1;
            killed = 1;
            kill(pid, SIGKILL);
        }
    }
    buf[got] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    publish(p, prog, &last);
    if (timed_out)
        set_result(r, WORKER_TIMEOUT, "timeout", "the job ran longer than its %.0f s limit",
                   p->timeout_s);
    else if (stopped && killed && (WIFSIGNALED(status) ||
                         (WIFEXITED(status) && WEXITSTATUS(status) != 0)))
        set_result(r, WORKER_STOPPED, "canceled", "the job was stopped");
    else if (WIFSIGNALED(status)) {
        char msg[200];
        const char *code = worker_signal_code(WTERMSIG(status), msg, sizeof(msg), "worker process");
        set_result(r, strcmp(code, "worker_crashed") ? WORKER_FAILED : WORKER_CRASHED, code, "%s",
                   msg);
    } else if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 1) &&
               got > 0) {
        parse_child_result(buf, p, r);
        if (stopped && r->outcome != WORKER_SUCCEEDED)
            set_result(r, WORKER_STOPPED, "canceled", "the job was stopped");
    } else
        set_result(r, WORKER_CRASHED, "worker_crashed",
                   "the worker process exited with status %d and no result",
                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    ret = 0;
out:
    if (pid > 0) { /* only if we bailed out after spawning */
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (input >= 0)
        close(input);
    if (outdir >= 0)
        close(outdir);
    for (int i = 0; i < 2; i++) {
        if (req[i] >= 0)
            close(req[i]);
        if (res[i] >= 0)
            close(res[i]);
    }
    if (prog != MAP_FAILED)
        munmap(prog, sizeof(*prog));
    if (memfd >= 0)
        close(memfd);
    free(request);
    free(buf);
    return ret;
}

/* ------------------------------------------------------- starting children */

static void build_child_env(unsigned sandbox_layers)
{
#ifdef VIDQ_SANITIZE
    /* ASan turns a SIGSEGV into an abort: let a crashed child die of the
     * signal it got, as in a normal build. LeakSanitizer's exit check
     * ptraces the process, which the seccomp filter kills: off in a
     * sandboxed child (the server and the one-shot CLI still check). */
    static char *env_copy[512];
    static char asan_opts[1024];
    size_t ne = 0;
    const char *cur = getenv("ASAN_OPTIONS");
    snprintf(asan_opts, sizeof(asan_opts), "ASAN_OPTIONS=%s%shandle_segv=0:handle_sigbus=0%s",
             cur ? cur : "", cur && *cur ? ":" : "",
             sandbox_layers & SANDBOX_SECCOMP ? ":detect_leaks=0" : "");
    for (char **e = environ; *e && ne + 2 < sizeof(env_copy) / sizeof(env_copy[0]); e++)
        if (strncmp(*e, "ASAN_OPTIONS=", 13) != 0)
            env_copy[ne++] = *e;
    env_copy[ne++] = asan_opts;
    env_copy[ne] = NULL;
    child_env = env_copy;
#else
    (void)sandbox_layers;
    child_env = environ;
#endif
}

int worker_children_start(const char *exe, unsigned sandbox_layers, int64_t max_output_bytes,
                          int warm, double spare_idle_s)
{
    child_layers = sandbox_layers;
    child_max_file_size = max_output_bytes;
    build_child_env(sandbox_layers);
    return warm ? zygote_start(exe, child_env, sandbox_layers, spare_idle_s) : 0;
}

void worker_children_stop(void)
{
    zygote_stop();
}

unsigned worker_sandbox_layers(void)
{
    return child_layers;
}

int worker_children_prometheus(char *buf, size_t cap)
{
    static const char *const names[] = {"seccomp", "userns", "mountns", "netns", "ipcns", "landlock"};
    size_t n = 0;
#define OUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(buf + n, cap - n, __VA_ARGS__);                                          \
        if (w_ < 0 || (size_t)w_ >= cap - n)                                                       \
            return (int)cap;                                                                       \
        n += (size_t)w_;                                                                           \
    } while (0)
    OUT("# HELP vidq_sandbox_layer Sandbox layers each probe and job child enters (1 on).\n"
        "# TYPE vidq_sandbox_layer gauge\n");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        OUT("vidq_sandbox_layer{layer=\"%s\"} %d\n", names[i], (child_layers >> i) & 1 ? 1 : 0);
    OUT("# HELP vidq_sandbox_syscalls System calls a sandboxed child may make.\n"
        "# TYPE vidq_sandbox_syscalls gauge\n"
        "vidq_sandbox_syscalls{child=\"probe\"} %zu\nvidq_sandbox_syscalls{child=\"job\"} %zu\n",
        sandbox_syscall_count(SANDBOX_PROBE), sandbox_syscall_count(SANDBOX_JOB));
    OUT("# HELP vidq_zygote_forks_total Children forked by the warm zygote.\n"
        "# TYPE vidq_zygote_forks_total counter\nvidq_zygote_forks_total %lu\n",
        zygote_forks());
#undef OUT
    return (int)n;
}

void worker_child_args(char *layers, size_t lcap, char *fsize, size_t fcap)
{
    snprintf(layers, lcap, "%u", child_layers);
    snprintf(fsize, fcap, "%lld", (long long)child_max_file_size);
}

pid_t worker_spawn(const char *exe, char *const argv[], const int *fds, int nfds)
{
    return zygote_spawn(exe, argv, fds, nfds, child_env ? child_env : environ);
}

const char *worker_signal_code(int sig, char *msg, size_t cap, const char *who)
{
    const char *abbrev = sigabbrev_np(sig);
    if (sig == SIGSYS) {
        snprintf(msg, cap, "the %s broke its sandbox (a forbidden system call) and was killed", who);
        return "sandbox_violation";
    }
    if (sig == SIGXFSZ) {
        snprintf(msg, cap, "an output grew past the largest file a job may write (--max-output-bytes)");
        return "too_large";
    }
    snprintf(msg, cap, "the %s was killed by signal %d (SIG%s)", who, sig, abbrev ? abbrev : "?");
    return "worker_crashed";
}

/* ------------------------------------------------------------ thread mode */

struct thread_run {
    const struct worker_params *p;
    struct tc_progress progress;
    atomic_int cancel;
    int efd;
    int rc;
    struct tc_error err;
    struct tc_output_result results[WORKER_MAX_OUTPUTS];
};

static void *thread_main(void *arg)
{
    struct thread_run *t = arg;
    /* Linux niceness is per thread: lower this one below the HTTP threads. */
    if (t->p->nice > 0)
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), t->p->nice);
    struct tc_run_params rp = {
        .input_path = t->p->input_path,
        .outputs = t->p->outputs,
        .n_outputs = t->p->n_outputs,
        .threads = t->p->threads,
        .cancel = &t->cancel,
        .progress = &t->progress,
    };
    t->rc = tc_run(&rp, t->results, &t->err);
    uint64_t one = 1;
    ssize_t w = write(t->efd, &one, sizeof(one));
    (void)w;
    return NULL;
}

static int run_thread(const struct worker_params *p, struct worker_result *r)
{
    int ret = -1;
    pthread_t th;
    struct thread_run *t = calloc(1, sizeof(*t));
    set_result(r, WORKER_FAILED, "internal_error", "could not start the job thread");
    if (!t)
        return -1;
    t->p = p;
    tc_progress_init(&t->progress);
    t->efd = eventfd(0, EFD_CLOEXEC);
    if (t->efd < 0)
        goto out;
    if (pthread_create(&th, NULL, thread_main, t) != 0)
        goto out;
    if (p->on_start)
        p->on_start(p->opaque, 0);
    double start = mono_now();
    int timed_out = 0, stopped = 0;
    struct tc_progress_snapshot last;
    memset(&last, 0, sizeof(last));
    for (;;) {
        struct pollfd pfd[2] = {{.fd = t->efd, .events = POLLIN},
                                {.fd = p->wake_fd, .events = POLLIN}};
        int n = poll(pfd, p->wake_fd >= 0 ? 2 : 1, POLL_MS);
        publish(p, &t->progress, &last);
        drain_wake(pfd, n);
        if (n > 0 && pfd[0].revents)
            break;
        if (!stopped && atomic_load(p->stop)) {
            stopped = 1;
            atomic_store(&t->cancel, 1);
        }
        if (!timed_out && p->timeout_s > 0 && mono_now() - start > p->timeout_s) {
            timed_out = 1;
            atomic_store(&t->cancel, 1);
        }
    }
    pthread_join(th, NULL);
    publish(p, &t->progress, &last);
    if (t->rc == 0) {
        memcpy(r->results, t->results, sizeof(r->results));
        set_result(r, WORKER_SUCCEEDED, "", "ok");
    } else if (timed_out)
        set_result(r, WORKER_TIMEOUT, "timeout", "the job ran longer than its %.0f s limit",
                   p->timeout_s);
    else if (stopped)
        set_result(r, WORKER_STOPPED, "canceled", "the job was stopped");
    else
        set_result(r, WORKER_FAILED, tc_errname(t->rc), "%s", t->err.message);
    ret = 0;
out:
    if (t->efd >= 0)
        close(t->efd);
    free(t);
    return ret;
}

int worker_run(const struct worker_params *p, struct worker_result *r)
{
    memset(r, 0, sizeof(*r));
    if (p->n_outputs == 0 || p->n_outputs > WORKER_MAX_OUTPUTS) {
        set_result(r, WORKER_FAILED, "invalid_output", "a job needs 1 to %d outputs",
                   WORKER_MAX_OUTPUTS);
        return -1;
    }
    return p->isolation == WORKER_THREAD ? run_thread(p, r) : run_process(p, r);
}
