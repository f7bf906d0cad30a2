/*
 * zygote_proc.c - the zygote process itself (`vidq zygote`): its warm-up,
 * its spares, and the loop that forks a child per request; the server's
 * side and the DESIGN of both are in zygote.c.
 *
 * Threading: the zygote is one thread; each spare and child it forks is
 * one thread until worker_child_main starts more.
 */
#define _GNU_SOURCE
#include "jobs/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "jobs/worker.h"
#include "jobs/zygote_wire.h"
#include "sandbox/sandbox.h"
#include "transcode/tc.h"

/* The built-in warm-up clip (svc/CMakeLists.txt embeds it). */
extern const unsigned char warmup_sample_mp4[];
extern const size_t warmup_sample_mp4_len;

/* The zygote's own: the template namespaces its children join
 * (sandbox_template_create; all four for probes, all but the mount
 * namespace for jobs), -1 while there are none. */
static int template_ns[4] = {-1, -1, -1, -1};

/* Runs in the new child: descriptors into place, then the worker. */
static void child_run(struct request *rq, int *fds, int nfds)
{
    char *argv[ZYGOTE_MAX_ARGS + 3];
    char base[16];
    int argc = 0;
    size_t off = 0;
    while (argc < rq->argc && argc < ZYGOTE_MAX_ARGS && off < sizeof(rq->args)) {
        argv[argc++] = rq->args + off;
        off += strlen(rq->args + off) + 1;
    }
    int probe = argc > 1 && strcmp(argv[1], "--probe") == 0;
    /* Every source goes up high first, so no dup2 below overwrites one
     * still to be placed (a job's 6 descriptors reach the template's). */
    int high[ZYGOTE_MAX_FDS + 4];
    int nt = template_ns[0] >= 0 ? 4 : 0;
    for (int i = 0; i < nfds + nt; i++)
        if ((high[i] = fcntl(i < nfds ? fds[i] : template_ns[i - nfds], F_DUPFD,
                             64 + ZYGOTE_MAX_FDS + 4)) < 0)
            _exit(120);
    for (int i = 0; i < nfds; i++)
        if (dup2(high[i], i) < 0)
            _exit(120);
    int keep = nfds;
    /* The template namespaces are handed over right after the child's own
     * descriptors: a probe joins all four, a job all but the mount
     * namespace (sandbox.h, ns_fd_base). */
    if (nt) {
        for (int i = 0; i < 4; i++)
            if (dup2(high[nfds + i], nfds + i) < 0)
                _exit(120);
        keep = nfds + 4;
        snprintf(base, sizeof(base), "%d", nfds);
        argv[argc++] = (char *)"--ns-base";
        argv[argc++] = base;
    }
    argv[argc] = NULL;
    syscall(SYS_close_range, (unsigned)keep, ~0U, 0);
    /* ps and top show what the child is, not the zygote it came from. */
    prctl(PR_SET_NAME, probe ? "vidq-probe" : "vidq-worker");
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int rc = worker_child_main(argc, argv);
    /* _exit, not exit: the zygote's ~180 libraries' destructors would run
     * in every child (30 ms, measured), while the server waits to reap it.
     * The child's output went through write(2), nothing is buffered. */
    fflush(NULL);
    _exit(rc);
}

/* Receive one request and its descriptors (at most ZYGOTE_MAX_FDS, the
 * rest closed). Returns 1 with a well-formed request (args NUL-ended),
 * 0 at EOF or on a socket error, -1 for a malformed one (its descriptors
 * closed). */
static int recv_request(int sock, struct request *rq, int fds[ZYGOTE_MAX_FDS], int *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * ZYGOTE_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = rq, .iov_len = sizeof(*rq)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    ssize_t k;
    memset(rq, 0, sizeof(*rq));
    *nfds = 0;
    while ((k = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (k <= 0)
        return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + sizeof(int) * (size_t)i, sizeof(int));
            if (*nfds < ZYGOTE_MAX_FDS)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || *nfds != rq->nfds || rq->argc < 1 ||
        rq->argc > ZYGOTE_MAX_ARGS) {
        for (int i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        return -1;
    }
    rq->args[sizeof(rq->args) - 1] = '\0';
    return 1;
}

/* Probe the built-in clip, from memory (see DESIGN, Warm-up). */
static void warm_up_probe(void)
{
    int fd = memfd_create("vidq-warmup", MFD_CLOEXEC);
    if (fd < 0)
        return;
    size_t off = 0;
    while (off < warmup_sample_mp4_len) {
        ssize_t w = write(fd, warmup_sample_mp4 + off, warmup_sample_mp4_len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    struct tc_media_info info;
    struct tc_error err;
    if (off == warmup_sample_mp4_len && tc_probe_fd(fd, &info, &err) < 0)
        log_warn("zygote: the warm-up clip did not probe: %s", err.message);
    close(fd);
}

/* The zygote's spares (zygote side): the probe spares in the order they
 * were forked (the oldest, the warmest, is used first) and the job spare;
 * sock -1: none. */
struct spare {
    pid_t pid;
    int sock;
};
static struct spare probe_spares[PROBE_SPARES];
static int n_probe_spares;
static struct spare job_spare = {-1, -1};

/* In a child of the zygote: only the zygote talks to its spares. */
static void close_spare_socks(void)
{
    for (int i = 0; i < n_probe_spares; i++)
        close(probe_spares[i].sock);
    if (job_spare.sock >= 0)
        close(job_spare.sock);
}

/* A spare's life (see DESIGN, The spares and The job spare): a probe
 * spare warms up; then it waits for one request on sock and becomes the
 * child it asks for. */
static void spare_main(int sock, int probe)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(ZYGOTE_FD);
    prctl(PR_SET_NAME, probe ? "vidq-spare" : "vidq-job-spare");
    if (probe) {
        /* Freed memory stays mapped, so the upload's probe reuses the
         * pages the warm-up faulted in (a probe's buffers are a few MB). */
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 64 << 20);
        warm_up_probe();
    }
    struct request rq;
    int fds[ZYGOTE_MAX_FDS], nfds = 0;
    if (recv_request(sock, &rq, fds, &nfds) <= 0)
        _exit(0); /* the zygote is gone, or sent nonsense: never a child */
    /* Say the request is taken: until then the zygote may still give it
     * to another child (DESIGN, The hand-off); if it no longer listens,
     * it has (or will) and this spare must not act on it. */
    char taken = 'T';
    if (send(sock, &taken, 1, MSG_NOSIGNAL) != 1)
        _exit(0);
    close(sock);
    child_run(&rq, fds, nfds);
}

/* Fork a new spare (a probe one if probe, else a job one); 0, or -1 if it
 * could not (children of that kind are then forked on request, as without
 * a spare). */
static int make_spare(int probe, struct spare *out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
    if (pid == 0) {
        close(sv[0]);
        close_spare_socks();
        spare_main(sv[1], probe);
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return -1;
    }
    out->pid = (pid_t)pid;
    out->sock = sv[0];
    return 0;
}

static int send_zmsg(int kind, int32_t pid)
{
    struct zmsg m = {kind, pid};
    ssize_t w;
    while ((w = send(ZYGOTE_FD, &m, sizeof(m), MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return w == (ssize_t)sizeof(m) ? 0 : -1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Let a spare go (the server reaps it: SPARE_GONE) and close its socket:
 * an unused spare that sees EOF exits. -1 if the server is gone. */
static int let_spare_go(struct spare *sp)
{
    int rc = send_zmsg(ZMSG_SPARE_GONE, sp->pid);
    close(sp->sock);
    sp->pid = sp->sock = -1;
    return rc;
}

/* Whether the spare sp took the request just sent to it (see DESIGN, The
 * hand-off): 1 once it said so; 0 if its socket hung up first (it died,
 * perhaps while the request was on its way: a kill, the OOM killer), or
 * if it gave no word by deadline (stuck or stopped: it is killed, so it
 * never acts on a request the zygote gives to another child). */
static int spare_took(const struct spare *sp, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        struct pollfd pfd = {.fd = sp->sock, .events = POLLIN};
        int n = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            kill(sp->pid, SIGKILL);
            return 0;
        }
        char taken;
        ssize_t k = recv(sp->sock, &taken, 1, MSG_DONTWAIT);
        if (k == 1)
            return 1;
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return 0;
    }
}

/* Wait for the server's next request, keeping the spares meanwhile (see
 * DESIGN, Idle): a spare that died (its socket hung up: a spare never
 * writes) is let go, and replaced at the next request rather than at
 * once, so a spare that cannot warm up is not forked again and again;
 * once idle_ms (0: never) passed since last_request with no request,
 * every spare is let go and *dormant set. Returns 1 when a request (or
 * the server's EOF) is there to read, 0 when the caller should look at
 * its spares again (the job spare is due, or some were let go), -1 if
 * the server is gone. */
static int wait_for_request(int *need_job_spare, int *dormant, int *refill, int64_t last_request,
                            unsigned idle_ms)
{
    struct pollfd pfd[1 + PROBE_SPARES + 1];
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = ZYGOTE_FD, .events = POLLIN};
    for (int i = 0; i < n_probe_spares; i++)
        pfd[n++] = (struct pollfd){.fd = probe_spares[i].sock, .events = POLLIN};
    if (job_spare.sock >= 0)
        pfd[n++] = (struct pollfd){.fd = job_spare.sock, .events = POLLIN};
    int64_t deadline = -1;
    if (!*dormant && *refill && *need_job_spare)
        deadline = last_request + JOB_SPARE_IDLE_MS;
    else if (!*dormant && idle_ms > 0 && n > 1)
        deadline = last_request + idle_ms;
    int64_t wait = deadline < 0 ? -1 : deadline - mono_ms();
    int r = poll(pfd, (nfds_t)n, wait < 0 ? (deadline < 0 ? -1 : 0) : (int)wait);
    if (r < 0)
        return errno == EINTR ? 0 : -1;
    if (r == 0) {
        if (!*dormant && *refill && *need_job_spare)
            return 0; /* the job spare is due */
        for (int i = 0; i < n_probe_spares; i++)
            if (let_spare_go(&probe_spares[i]) < 0)
                return -1;
        n_probe_spares = 0;
        if (job_spare.sock >= 0 && let_spare_go(&job_spare) < 0)
            return -1;
        *dormant = 1;
        return 0;
    }
    /* A spare's socket stirs only when it died: let it go. Back to front,
     * so removing one leaves the indexes still to see in place. */
    int lost = 0;
    for (int k = n - 1; k >= 1; k--) {
        if (!pfd[k].revents)
            continue;
        lost = 1;
        if (job_spare.sock == pfd[k].fd) {
            if (let_spare_go(&job_spare) < 0)
                return -1;
            *need_job_spare = 1;
            continue;
        }
        for (int i = 0; i < n_probe_spares; i++)
            if (probe_spares[i].sock == pfd[k].fd) {
                if (let_spare_go(&probe_spares[i]) < 0)
                    return -1;
                memmove(&probe_spares[i], &probe_spares[i + 1],
                        sizeof(probe_spares[0]) * (size_t)(n_probe_spares - i - 1));
                n_probe_spares--;
                break;
            }
    }
    if (lost)
        *refill = 0;
    return pfd[0].revents ? 1 : 0;
}

int zygote_main(int argc, char **argv)
{
    long parent = 0, layers = 0, idle = 0;
    if (argc >= 3 && strcmp(argv[1], "--parent") == 0)
        parent = strtol(argv[2], NULL, 10);
    if (argc >= 5 && strcmp(argv[3], "--sandbox") == 0)
        layers = strtol(argv[4], NULL, 10);
    if (argc >= 7 && strcmp(argv[5], "--spare-idle") == 0)
        idle = strtol(argv[6], NULL, 10);
    unsigned idle_ms = idle > 0 && idle <= SPARE_IDLE_MAX_MS ? (unsigned)idle : 0;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (parent <= 0 || getppid() != (pid_t)parent)
        return 1;
    /* Children join namespaces made once here; without them each makes
     * its own (slower, the same sandbox). */
    int rc = (layers & (SANDBOX_USERNS | SANDBOX_MOUNTNS | SANDBOX_NETNS | SANDBOX_IPCNS))
                 ? sandbox_template_create((unsigned)layers, template_ns)
                 : -EOPNOTSUPP;
    if (rc < 0 && rc != -EOPNOTSUPP)
        log_warn("zygote: no shared sandbox namespaces (%s); each child makes its own",
                 strerror(-rc));
    prctl(PR_SET_NAME, "vidq-zygote");
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    tc_preload();
    warm_up_probe();
    /* The first log line's time stamp (gmtime_r) reads /etc/localtime:
     * once here, not in every child on its way to running. */
    tzset();
    if (send_zmsg(ZMSG_READY, 0) < 0)
        return 0;
    int need_job_spare = 1;
    int dormant = 0; /* the spares were ended for idleness: none until a request */
    int refill = 1;  /* 0 after a spare was found dead: replaced at the next request */
    int64_t last_request = mono_ms();
    for (;;) {
        while (!dormant && refill && n_probe_spares < PROBE_SPARES) {
            struct spare sp;
            if (make_spare(1, &sp) < 0)
                break; /* probes are forked on request meanwhile */
            probe_spares[n_probe_spares++] = sp;
            if (send_zmsg(ZMSG_SPARE, sp.pid) < 0)
                return 0;
        }
        /* The job spare only after JOB_SPARE_IDLE_MS without a request
         * (DESIGN). */
        if (!dormant && refill && need_job_spare && mono_ms() - last_request >= JOB_SPARE_IDLE_MS) {
            need_job_spare = 0;
            if (make_spare(0, &job_spare) == 0 && send_zmsg(ZMSG_SPARE, job_spare.pid) < 0)
                return 0;
        }
        int woke = wait_for_request(&need_job_spare, &dormant, &refill, last_request, idle_ms);
        if (woke < 0)
            return 0; /* the server is gone */
        if (woke == 0)
            continue;
        struct request rq;
        int fds[ZYGOTE_MAX_FDS], nfds = 0;
        int got = recv_request(ZYGOTE_FD, &rq, fds, &nfds);
        if (got == 0)
            return 0; /* the server is gone; the spares see EOF and end */
        last_request = mono_ms();
        dormant = 0;
        refill = 1;
        int32_t reply = -EINVAL;
        int handed = 0;
        int probe = got > 0 && rq.argc > 1 && strcmp(rq.args + strlen(rq.args) + 1, "--probe") == 0;
        size_t len = 0;
        for (int i = 0; got > 0 && i < rq.argc; i++)
            len += strlen(rq.args + len) + 1;
        /* Hand the request, whole, to a spare of its kind (the oldest
         * probe spare: the likeliest to have finished its warm-up). One
         * that does not take it (dead, or stuck: spare_took) is let go,
         * the server reaps it, and the next is tried, until
         * HANDOFF_TIMEOUT_MS; then the child is forked here. */
        int64_t handoff_deadline = mono_ms() + HANDOFF_TIMEOUT_MS;
        while (got > 0 && !handed && (probe ? n_probe_spares > 0 : job_spare.sock >= 0) &&
               mono_ms() < handoff_deadline) {
            struct spare sp = probe ? probe_spares[0] : job_spare;
            if (probe) {
                memmove(&probe_spares[0], &probe_spares[1],
                        sizeof(probe_spares[0]) * (size_t)--n_probe_spares);
            } else {
                job_spare.pid = job_spare.sock = -1;
            }
            if (zygote_send_request(sp.sock, &rq, len, fds, nfds) == 0 &&
                spare_took(&sp, handoff_deadline)) {
                reply = sp.pid;
                handed = 1;
                close(sp.sock);
            } else if (let_spare_go(&sp) < 0) {
                return 0;
            }
        }
        if (got > 0 && !probe && job_spare.sock < 0)
            need_job_spare = 1;
        if (got > 0 && !handed) {
            /* CLONE_PARENT: the child belongs to the server, which waits
             * for it; the zygote never has a child to reap. */
            long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
            if (pid == 0) {
                close(ZYGOTE_FD);
                close_spare_socks();
                child_run(&rq, fds, nfds);
            }
            reply = pid < 0 ? -errno : (int32_t)pid;
        }
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        if (send_zmsg(ZMSG_REPLY, reply) < 0)
            return 0;
    }
}
