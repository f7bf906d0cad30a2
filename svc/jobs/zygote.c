/*
 * zygote.c - the warm zygote and the spawning of children (see zygote.h):
 * the server's side; the zygote's own loop is in zygote_proc.c.
 *
 * DESIGN
 *   Server side: the keeper thread (started by zygote_start from the main
 *   thread) posix_spawns `vidq zygote --parent PID --sandbox L
 *   --spare-idle MS` with one end of a SOCK_SEQPACKET socketpair as fd 3,
 *   publishes the other end once the zygote sent READY, and watches it
 *   until it dies (reading the messages it sends between requests); then
 *   it starts another (after 100 ms), until zygote_stop. zygote_spawn
 *   sends one request under a mutex:
 *     struct request {argc, nfds, args "a\0b\0..."} + SCM_RIGHTS(nfds fds)
 *   and reads one REPLY (struct zmsg, zygote_wire.h): the child's pid, or
 *   -errno, noting any SPARE message that comes before it. No reply
 *   within REPLY_TIMEOUT_MS, or a dead socket, and the request falls back
 *   to posix_spawn (the same argv, fds placed by file actions).
 *   Zygote side: one thread, one loop: receive a request, clone with
 *   CLONE_PARENT|SIGCHLD (the child's parent is the server), reply the
 *   pid, close the received descriptors. EOF on the socket (the server is
 *   gone) ends it; PR_SET_PDEATHSIG ends it too.
 *   Child side: close the socket, move the received descriptors to 0..n-1
 *   (through high numbers first, so none overwrites another), close every
 *   other, restore default signal handling, and run worker_child_main as
 *   `vidq worker` would; exit with its status.
 *   Probe namespaces: at start the zygote makes one set of sandbox
 *   namespaces for probes (sandbox_template_create) and hands each probe
 *   child their descriptors (after its own, with --ns-base N), so a probe
 *   joins them with setns instead of paying for new ones on the upload's
 *   critical path. A job joins the user, network and IPC ones too, and
 *   makes only its mount namespace (its own folder at /out).
 *   Warm-up: before it says ready, the zygote runs libav*'s one-time
 *   set-up (tc_preload) and probes a 5 KB clip compiled into the binary
 *   (svc/jobs/warmup/sample.mp4), so codec tables are built once, in pages
 *   every child shares.
 *   The spares: a probe is on an upload's critical path, so the zygote
 *   keeps PROBE_SPARES (2) probe children forked ahead ("vidq-spare").
 *   Each probes the same built-in clip in its own memory, with malloc
 *   told to keep what it frees, so the page faults and first-touch costs
 *   of a probe (~270 faults, ~5-7 ms of CPU on a VM where a fault is
 *   slow) are paid before an upload arrives; then it blocks on a socket
 *   of its own. A probe request is forwarded, whole (arguments and
 *   descriptors), to the oldest spare, the likeliest to have finished its
 *   warm-up (if it has not, the request waits for the rest of it: still
 *   less than a fresh fork's cold probe), and the spare carries on
 *   exactly as a freshly forked probe child: same descriptors, same
 *   sandbox, one upload, then exit. The zygote forks a replacement once
 *   it has answered. Two, not one: uploads back to back come faster than
 *   one warm-up, and the second spare had the previous upload's time to
 *   warm (p50 16-19 -> 14-15 ms; README, Upload latency). A spare only
 *   ever held the built-in clip's data, so nothing of one upload can
 *   reach another.
 *   The job spare: a job's child is on its claim's path, so the zygote
 *   also keeps one bare child forked ahead for the next job
 *   ("vidq-job-spare"): no warm-up (a job's work is its own; private
 *   memory ~20 KB while it waits), the same hand-over of the request,
 *   whole, and one job only. The fork that replaces it waits until the
 *   zygote has had no request for JOB_SPARE_IDLE_MS, so it never
 *   competes with the set-up of the job that just took the last one, nor
 *   delays an upload's probe; a job that finds no spare is forked on
 *   request as before.
 *   The hand-off: a spare says it took a request (one byte back on its
 *   socket) before the zygote replies with its pid. A spare can die
 *   with the request already queued on its socket (killed, the OOM
 *   killer: a dying process keeps its sockets open until its memory is
 *   torn down), and that must not cost the upload a 415 "crashed the
 *   probe": a hang-up before the word means the request goes to the
 *   next spare, or to a child forked here. A spare with no word within
 *   HANDOFF_TIMEOUT_MS (stopped, stuck) is killed and let go the same
 *   way, so no request is ever acted on twice. The wait is the rest of
 *   the spare's warm-up at most, which the probe would wait anyway.
 *   Spares are the server's children (CLONE_PARENT) like the rest, so the
 *   zygote tells the server each one's pid (a SPARE message); a REPLY
 *   naming it hands it to the caller, a spare the zygote let go is named
 *   by a SPARE_GONE (the server kills and reaps it), and those the
 *   zygote's death left unused are reaped by the keeper. The keeper reads
 *   these messages between requests too, so a spare let go is reaped at
 *   once, not left a zombie until the next request.
 *   Idle: while it waits for a request the zygote also watches its
 *   spares' sockets (a spare never writes: a hang-up means it died; it is
 *   let go, and replaced at the next request rather than at once, so a
 *   spare that cannot warm up is not forked in a loop), and after
 *   --spare-idle without a request it lets every spare go and forks none
 *   until the next request, which is then forked on request: an idle
 *   server holds the zygote alone (README, The warm zygote, Idle).
 *   Messages zygote -> server: struct zmsg {kind, pid}: READY once, then
 *   one REPLY per request, a SPARE whenever a new spare exists and a
 *   SPARE_GONE for a dead one.
 */
#define _GNU_SOURCE
#include "jobs/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "jobs/zygote_wire.h"

/* How long the server waits for a new zygote's READY. */
enum { READY_TIMEOUT_MS = 30000 };

static struct {
    pthread_mutex_t lock; /* sock, and one request at a time */
    int sock;             /* the server's end; -1 while no zygote runs */
    pid_t pid;            /* the zygote */
    pid_t spares[SPARES_MAX]; /* the zygote's spares (our children), unused: 0 */
    pthread_t keeper;
    int started;
    atomic_int stopping;
    atomic_ulong forks;
    const char *exe;
    char *const *envp;
    unsigned layers;
    unsigned spare_idle_ms; /* the zygote's --spare-idle */
} z = {.lock = PTHREAD_MUTEX_INITIALIZER, .sock = -1, .pid = -1};

unsigned long zygote_forks(void)
{
    return atomic_load(&z.forks);
}

/* ----------------------------------------------------------- server side */

static pid_t spawn_direct(const char *exe, char *const argv[], const int *fds, int nfds,
                          char *const envp[])
{
    posix_spawn_file_actions_t fa;
    char *args[ZYGOTE_MAX_ARGS + 2];
    int n = 0;
    pid_t pid = -1;
    args[n++] = (char *)"vidq";
    for (int i = 0; argv[i] && n < ZYGOTE_MAX_ARGS + 1; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -ENOMEM;
    /* Sources may sit on targets (fds[1] == 0, say): move them up first. */
    int high[ZYGOTE_MAX_FDS];
    for (int i = 0; i < nfds; i++) {
        high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64);
        if (high[i] < 0) {
            for (int k = 0; k < i; k++)
                close(high[k]);
            posix_spawn_file_actions_destroy(&fa);
            return -errno;
        }
    }
    for (int i = 0; i < nfds; i++)
        posix_spawn_file_actions_adddup2(&fa, high[i], i);
    int rc = posix_spawn(&pid, exe, &fa, NULL, args, envp);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < nfds; i++)
        close(high[i]);
    return rc == 0 ? pid : -rc;
}

int zygote_send_request(int sock, struct request *rq, size_t args_len, const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * ZYGOTE_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {.iov_base = rq, .iov_len = offsetof(struct request, args) + args_len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t w;
    while ((w = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return w < 0 ? -1 : 0;
}

/* Forget spare pid (a REPLY named it: the caller reaps it now); 1 if it
 * was one. Caller holds z.lock. */
static int spare_forget(pid_t pid)
{
    for (int i = 0; i < SPARES_MAX; i++)
        if (pid > 0 && z.spares[i] == pid) {
            z.spares[i] = 0;
            return 1;
        }
    return 0;
}

/* End and reap spare pid, our child that no request will use. */
static void spare_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Note a SPARE (a new spare: ours to reap if it is never used) or a
 * SPARE_GONE (the zygote found it dead and let it go: reap it) message;
 * 0, or -1 if m is neither. Caller holds z.lock. */
static int note_spare_msg(const struct zmsg *m)
{
    if (m->kind == ZMSG_SPARE) {
        for (int i = 0; i < SPARES_MAX; i++)
            if (z.spares[i] == 0) {
                z.spares[i] = m->pid;
                return 0;
            }
        log_warn("the zygote has more than %d spares; pid %d is not reaped unless a request "
                 "takes it", SPARES_MAX, (int)m->pid);
        return 0;
    }
    if (m->kind == ZMSG_SPARE_GONE) {
        if (spare_forget(m->pid))
            spare_reap(m->pid);
        return 0;
    }
    return -1;
}

/* The zygote is gone: read what it sent last (a SPARE may be among it),
 * then end and reap its unused spares, which are our children. Caller
 * holds z.lock. */
static void drop_spares(int sock)
{
    struct zmsg m;
    while (sock >= 0 && recv(sock, &m, sizeof(m), MSG_DONTWAIT) == (ssize_t)sizeof(m))
        note_spare_msg(&m);
    for (int i = 0; i < SPARES_MAX; i++)
        if (z.spares[i] > 0) {
            spare_reap(z.spares[i]);
            z.spares[i] = 0;
        }
}

/* Send one request; the caller holds z.lock and z.sock >= 0. */
static pid_t ask_zygote(char *const argv[], const int *fds, int nfds)
{
    struct request rq;
    size_t off = 0;
    memset(&rq, 0, sizeof(rq));
    for (int i = 0; argv[i]; i++) {
        size_t len = strlen(argv[i]) + 1;
        if (i >= ZYGOTE_MAX_ARGS || off + len > sizeof(rq.args))
            return -E2BIG;
        memcpy(rq.args + off, argv[i], len);
        off += len;
        rq.argc++;
    }
    rq.nfds = nfds;
    if (zygote_send_request(z.sock, &rq, off, fds, nfds) < 0)
        return -errno;
    for (;;) {
        struct pollfd pfd = {.fd = z.sock, .events = POLLIN};
        struct zmsg m;
        int n;
        while ((n = poll(&pfd, 1, REPLY_TIMEOUT_MS)) < 0 && errno == EINTR)
            ;
        if (n == 0)
            return -ETIMEDOUT;
        ssize_t k;
        while ((k = recv(z.sock, &m, sizeof(m), 0)) < 0 && errno == EINTR)
            ;
        if (k != (ssize_t)sizeof(m))
            return -EPIPE;
        if (note_spare_msg(&m) == 0)
            continue;
        if (m.kind != ZMSG_REPLY)
            return -EPROTO;
        spare_forget(m.pid); /* a spare took this request: the caller reaps it */
        return m.pid;
    }
}

pid_t zygote_spawn(const char *exe, char *const argv[], const int *fds, int nfds,
                   char *const envp[])
{
    if (nfds > ZYGOTE_MAX_FDS)
        return -EINVAL;
    pthread_mutex_lock(&z.lock);
    pid_t pid = -ENOENT;
    if (z.sock >= 0) {
        pid = ask_zygote(argv, fds, nfds);
        if (pid == -ETIMEDOUT || pid == -EPIPE) {
            /* A zygote that does not answer is useless: the keeper
             * starts a fresh one once this one is gone. */
            log_warn("the zygote did not answer (%s); restarting it", strerror(-pid));
            kill(z.pid, SIGKILL);
            z.sock = -1; /* the keeper closes it once the zygote is reaped */
        }
    }
    pthread_mutex_unlock(&z.lock);
    if (pid > 0) {
        atomic_fetch_add(&z.forks, 1);
        return pid;
    }
    return spawn_direct(exe, argv, fds, nfds, envp);
}

static pid_t start_zygote(int *sock_out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    char parent[32], layers[16], idle[16];
    snprintf(parent, sizeof(parent), "%ld", (long)getpid());
    snprintf(layers, sizeof(layers), "%u", z.layers);
    snprintf(idle, sizeof(idle), "%u", z.spare_idle_ms);
    char *argv[] = {(char *)"zygote",     (char *)"--parent", parent, (char *)"--sandbox", layers,
                    (char *)"--spare-idle", idle,             NULL};
    int fds[4] = {-1, STDOUT_FILENO, STDERR_FILENO, sv[1]};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fds[0] = devnull;
    pid_t pid = devnull < 0 ? -errno : spawn_direct(z.exe, argv, fds, 4, z.envp);
    if (devnull >= 0)
        close(devnull);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return pid;
    }
    *sock_out = sv[0];
    return pid;
}

/* Children the caller no longer waits for (zygote_reap_later). */
enum { REAP_MAX = 64 };
static pthread_mutex_t reap_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t reap_pids[REAP_MAX];
static int reap_n;

/* Reap those that have exited. */
static void reap_exited(void)
{
    pthread_mutex_lock(&reap_lock);
    for (int i = 0; i < reap_n;) {
        pid_t r = waitpid(reap_pids[i], NULL, WNOHANG);
        if (r == 0 || (r < 0 && errno == EINTR)) {
            i++;
            continue;
        }
        reap_pids[i] = reap_pids[--reap_n]; /* reaped, or not ours any more */
    }
    pthread_mutex_unlock(&reap_lock);
}

void zygote_reap_later(pid_t pid)
{
    reap_exited();
    if (waitpid(pid, NULL, WNOHANG) != 0)
        return;
    pthread_mutex_lock(&reap_lock);
    int queued = reap_n < REAP_MAX;
    if (queued)
        reap_pids[reap_n++] = pid;
    pthread_mutex_unlock(&reap_lock);
    if (!queued)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
}

/* Wait for the zygote pid to end (its status in *status), reading what
 * it says between requests meanwhile: a spare it let go (found dead, or
 * ended for idleness) is reaped at once rather than left a zombie until
 * the next request; and every second, the children zygote_reap_later
 * was given that have exited. Only SPARE and SPARE_GONE come unasked: no request is
 * in flight while this holds z.lock. */
static void watch_zygote(pid_t pid, int sock, int *status)
{
    for (;;) {
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        int n = poll(&pfd, 1, 1000);
        reap_exited();
        if (waitpid(pid, status, WNOHANG) == pid)
            return;
        int gone = n > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL));
        if (n > 0 && !gone && (pfd.revents & POLLIN)) {
            pthread_mutex_lock(&z.lock);
            if (z.sock == sock) {
                struct zmsg m;
                ssize_t k;
                while ((k = recv(sock, &m, sizeof(m), MSG_DONTWAIT)) == (ssize_t)sizeof(m))
                    note_spare_msg(&m);
                gone = k == 0;
            } else {
                gone = 1; /* zygote_spawn gave up on it and killed it */
            }
            pthread_mutex_unlock(&z.lock);
        }
        if (gone) {
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            return;
        }
    }
}

static void *keeper_main(void *arg)
{
    (void)arg;
    int failures = 0;
    while (!atomic_load(&z.stopping)) {
        int sock = -1;
        pid_t pid = start_zygote(&sock);
        if (pid < 0) {
            log_warn("cannot start the zygote: %s (children are spawned directly)",
                     strerror(-pid));
        } else {
            /* Publish the zygote once it said it is ready (it has loaded
             * everything), so no request waits on its start-up. */
            struct zmsg m = {0, 0};
            struct pollfd pfd = {.fd = sock, .events = POLLIN};
            int ready = poll(&pfd, 1, READY_TIMEOUT_MS) == 1 &&
                        recv(sock, &m, sizeof(m), 0) == (ssize_t)sizeof(m) && m.kind == ZMSG_READY;
            if (!ready) {
                log_warn("the zygote did not start; children are spawned directly meanwhile");
                kill(pid, SIGKILL);
            }
            pthread_mutex_lock(&z.lock);
            z.pid = pid;
            z.sock = ready ? sock : -1;
            pthread_mutex_unlock(&z.lock);
            log_debug("zygote started pid=%ld", (long)pid);
            int status = 0;
            if (ready) {
                watch_zygote(pid, sock, &status);
            } else {
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                    ;
            }
            pthread_mutex_lock(&z.lock);
            drop_spares(sock);
            close(sock);
            if (z.sock == sock)
                z.sock = -1;
            z.pid = -1;
            pthread_mutex_unlock(&z.lock);
            if (atomic_load(&z.stopping))
                break;
            log_warn("the zygote ended (%s %d); starting a new one",
                     WIFSIGNALED(status) ? "signal" : "status",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        }
        /* Back off, more after repeated failures; poll for zygote_stop. */
        failures = pid < 0 ? failures + 1 : 0;
        int wait_ms = failures > 5 ? 5000 : 100;
        for (int t = 0; t < wait_ms && !atomic_load(&z.stopping); t += 20) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        reap_exited();
    }
    return NULL;
}

int zygote_start(const char *exe, char *const envp[], unsigned sandbox_layers,
                 double spare_idle_s)
{
    double ms = spare_idle_s * 1000; /* 0: never; else at least 1 ms */
    z.spare_idle_ms = ms <= 0                  ? 0
                      : ms >= SPARE_IDLE_MAX_MS ? SPARE_IDLE_MAX_MS
                      : ms < 1                  ? 1
                                                : (unsigned)(ms + 0.5);
    z.exe = exe;
    z.envp = envp;
    z.layers = sandbox_layers;
    atomic_store(&z.stopping, 0);
    if (pthread_create(&z.keeper, NULL, keeper_main, NULL) != 0)
        return -EAGAIN;
    z.started = 1;
    /* Wait a little for the first zygote, so the first upload finds it. */
    for (int t = 0; t < 5000; t += 5) {
        pthread_mutex_lock(&z.lock);
        int up = z.sock >= 0;
        pthread_mutex_unlock(&z.lock);
        if (up)
            return 0;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -ETIMEDOUT;
}

void zygote_stop(void)
{
    if (!z.started)
        return;
    atomic_store(&z.stopping, 1);
    pthread_mutex_lock(&z.lock);
    if (z.pid > 0)
        kill(z.pid, SIGKILL);
    pthread_mutex_unlock(&z.lock);
    pthread_join(z.keeper, NULL);
    z.started = 0;
}
