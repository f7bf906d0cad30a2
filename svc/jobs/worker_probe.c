/*
 * worker_probe.c - probe an untrusted upload in a child process (see
 * worker.h, worker_probe).
 *
 * An upload is probed before the server answers it, so the probe is the
 * first libavformat code to read a hostile file. In process isolation it
 * runs where a job would: in a child (`vidq worker --probe -`, started
 * like a job's worker, with the same address-space limit and niceness,
 * given the file as descriptor 3 and sandboxed before it reads it), so a
 * demuxer crash or hang costs that upload a 415, not the server; a child
 * that breaks its sandbox is a `sandbox_violation`.
 *
 * Protocol: the child writes one struct probe_reply, raw, to fd 1 and exits
 * 0. The parent and child are the same executable, so the layout matches.
 * Anything else (a signal, a short reply, the time limit) is a failed
 * probe: TC_EUNSUPPORTED with a message saying what happened.
 *
 * A whole reply is the answer: the upload does not wait for the child to
 * exit (tearing down a forked address space of ~180 libraries costs a few
 * ms). The child is reaped later (zygote_reap_later: within a second,
 * not left a zombie while the server idles); it has nothing left to do
 * but exit, and its exit status no longer matters. Without a whole reply
 * the caller waits, since the status says what went wrong.
 */
#define _GNU_SOURCE
#include "jobs/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobs/worker_internal.h"
#include "jobs/zygote.h"
#include "sandbox/fault.h"
#include "sandbox/sandbox.h"

/* The probe child's input descriptor (after 0 = /dev/null, 1 = reply,
 * 2 = stderr). */
enum { FD_INPUT = 3 };

struct probe_reply {
    int rc;
    struct tc_media_info info;
    struct tc_error err;
};

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int fail(struct tc_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct tc_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = TC_EUNSUPPORTED;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return TC_EUNSUPPORTED;
}

int worker_probe(const struct worker_probe_params *p, struct tc_media_info *info,
                 struct tc_error *err)
{
    memset(err, 0, sizeof(*err));
    if (p->isolation == WORKER_THREAD)
        return tc_probe(p->path, info, err);

    /* The child gets the file as a read-only descriptor, never its path. */
    int input = open(p->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (input < 0)
        return fail(err, "cannot open the file to probe: %s", strerror(errno));
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out[2] = {-1, -1};
    if (devnull < 0 || pipe2(out, O_CLOEXEC) < 0) {
        int e = errno;
        close(input);
        if (devnull >= 0)
            close(devnull);
        return fail(err, "cannot start the probe: %s", strerror(e));
    }
    char a_parent[32], a_mem[32], a_nice[16], a_layers[16], a_fsize[32];
    snprintf(a_parent, sizeof(a_parent), "%ld", (long)getpid());
    snprintf(a_mem, sizeof(a_mem), "%lld", (long long)p->max_memory);
    snprintf(a_nice, sizeof(a_nice), "%d", p->nice);
    worker_child_args(a_layers, sizeof(a_layers), a_fsize, sizeof(a_fsize));
    char *argv[] = {(char *)"worker", (char *)"--probe",     (char *)"-", (char *)"--parent",
                    a_parent,         (char *)"--max-memory", a_mem,       (char *)"--nice",
                    a_nice,           (char *)"--sandbox",   a_layers,    NULL};
    int fds[] = {devnull, out[1], STDERR_FILENO, input};
    pid_t pid = worker_spawn(p->exe, argv, fds, (int)(sizeof(fds) / sizeof(fds[0])));
    close(out[1]);
    close(devnull);
    close(input);
    if (pid < 0) {
        close(out[0]);
        return fail(err, "cannot start the probe: %s", strerror((int)-pid));
    }

    struct probe_reply reply;
    size_t got = 0;
    int timed_out = 0;
    double deadline = mono_ms() + (p->timeout_s > 0 ? p->timeout_s : 30) * 1e3;
    while (got < sizeof(reply)) {
        double left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        int n = poll(&pfd, 1, (int)left + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        ssize_t k = read(out[0], (char *)&reply + got, sizeof(reply) - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(out[0]);
    if (!timed_out && got == sizeof(reply)) {
        zygote_reap_later(pid);
        reply.err.message[sizeof(reply.err.message) - 1] = '\0';
        *err = reply.err;
        if (reply.rc == 0)
            *info = reply.info;
        return reply.rc;
    }
    kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        return fail(err, "probing the file took longer than %.0f s", p->timeout_s > 0 ? p->timeout_s : 30);
    if (WIFSIGNALED(status)) {
        char msg[200];
        const char *abbrev = sigabbrev_np(WTERMSIG(status));
        if (strcmp(worker_signal_code(WTERMSIG(status), msg, sizeof(msg), "probe"),
                   "sandbox_violation") == 0) {
            fail(err, "%s", msg);
            return WORKER_ESANDBOX;
        }
        return fail(err, "the file crashed the probe (SIG%s)", abbrev ? abbrev : "?");
    }
    return fail(err, "the probe ended without an answer (exit status %d)",
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int worker_probe_child_main(pid_t parent, long long max_memory, int nice_v, unsigned layers,
                            int ns_fd_base)
{
    /* Die with the server, like a job's worker. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent > 0 && getppid() != parent)
        return 1;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
#ifndef VIDQ_SANITIZE /* ASan reserves terabytes of address space */
    if (max_memory > 0) {
        struct rlimit rl = {(rlim_t)max_memory, (rlim_t)max_memory};
        setrlimit(RLIMIT_AS, &rl);
    }
#else
    (void)max_memory;
#endif
    struct probe_reply reply;
    memset(&reply, 0, sizeof(reply));
    struct sandbox_policy policy = {
        .kind = SANDBOX_PROBE, .layers = layers, .max_fd = FD_INPUT, .ns_fd_base = ns_fd_base,
        .nice = nice_v}; /* taken last: the set-up is on the upload's path */
    if (sandbox_enter(&policy, reply.err.message, sizeof(reply.err.message)) < 0) {
        reply.rc = TC_EINTERNAL;
    } else {
        /* Fault injection for the tests of this isolation (README,
         * Security model): the probe misbehaves as an exploited demuxer
         * would. */
        int fault = fault_escape_from_env("VIDQ_FAULT_PROBE", reply.err.message,
                                          sizeof(reply.err.message));
        if (fault == FAULT_BLOCKED)
            reply.rc = WORKER_ESANDBOX;
        else if (fault == FAULT_ESCAPED)
            reply.rc = TC_EINTERNAL;
        else
            reply.rc = tc_probe_fd(FD_INPUT, &reply.info, &reply.err);
    }
    reply.err.code = reply.rc;
    const char *p = (const char *)&reply;
    size_t off = 0;
    while (off < sizeof(reply)) {
        ssize_t w = write(STDOUT_FILENO, p + off, sizeof(reply) - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 1;
        off += (size_t)w;
    }
    return 0;
}
