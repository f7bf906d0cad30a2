/*
 * worker.h - run one job attempt in isolation and supervise it.
 *
 * worker_run starts tc_run either in a child process (forked by the warm
 * zygote, see zygote.h, or spawned as the vidq binary's hidden `worker`
 * subcommand, and sandboxed, see sandbox.h) or in a thread
 * of the server, and blocks the calling thread (a scheduler runner) until
 * the attempt ends: mirroring progress at least 5 times a second, stopping
 * it on request, enforcing the wall-clock timeout, always reaping the
 * child. See worker.c for the protocol.
 *
 * Threading: worker_run may run in several threads at once (one per job).
 * *stop is set by another thread; callbacks are called on the caller's
 * thread.
 */
#ifndef VIDQ_WORKER_H
#define VIDQ_WORKER_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <transcode/tc.h>

enum { WORKER_MAX_OUTPUTS = 16 };

enum worker_isolation { WORKER_PROCESS = 0, WORKER_THREAD = 1 };

enum worker_outcome {
    WORKER_SUCCEEDED,   /* every output written; results filled */
    WORKER_FAILED,      /* tc_run failed: error filled (its code name) */
    WORKER_STOPPED,     /* *stop was set and the run ended */
    WORKER_TIMEOUT,     /* the wall-clock limit passed; the run was killed */
    WORKER_CRASHED,     /* the child died (signal or odd exit); message says how */
};

struct worker_params {
    enum worker_isolation isolation;
    const char *exe;                   /* the vidq binary ("/proc/self/exe") */
    const char *input_path;            /* borrowed */
    const struct tc_output *outputs;   /* borrowed, n_outputs of them */
    size_t n_outputs;
    double timeout_s;                  /* <= 0: none */
    int64_t max_memory;                /* child RLIMIT_AS bytes; 0 = none */
    int nice;                          /* CPU niceness of the run */
    int threads;                       /* codec thread budget (tc_run_params);
                                        * an output spec's "threads" wins */
    atomic_int *stop;                  /* set non-zero to stop the run */
    int wake_fd;                       /* an eventfd written after setting
                                        * *stop, to wake the supervisor at
                                        * once; -1 if none */
    /* Called when the run started (pid of the child, 0 in thread mode) and
     * with each new progress sample. May be NULL. */
    void (*on_start)(void *opaque, pid_t pid);
    void (*on_progress)(void *opaque, const struct tc_progress_snapshot *snap);
    void *opaque;
};

struct worker_result {
    enum worker_outcome outcome;
    char code[48];                     /* API error code ("worker_crashed") */
    char message[256];
    struct tc_output_result results[WORKER_MAX_OUTPUTS];
};

/* Run one attempt; blocks until it ends. Returns 0 when result describes
 * the outcome, or -1 if the attempt could not be started at all (result
 * says why, outcome WORKER_FAILED). */
int worker_run(const struct worker_params *p, struct worker_result *result);

/* How every child is started, set once by the server's main thread before
 * the first job or probe (without it: no sandbox, no zygote, no cap): the
 * sandbox layers each child must apply (SANDBOX_*, 0 = none), the largest
 * file a job child may write (0 = no cap), and with warm set, the zygote
 * that forks them (zygote.h; exe is the vidq binary; spare_idle_s its
 * zygote_start argument). Returns 0, or a negative errno if the zygote
 * could not start (children are then spawned directly, slower but the
 * same). */
int worker_children_start(const char *exe, unsigned sandbox_layers, int64_t max_output_bytes,
                          int warm, double spare_idle_s);

/* Stop the zygote; after every job and probe ended. Main thread. */
void worker_children_stop(void);

/* The sandbox layers children apply. Any thread. */
unsigned worker_sandbox_layers(void);

/* The children's lines of /metrics (Prometheus text): each sandbox layer
 * (1 on, 0 off), the allowed system calls per kind of child, children
 * forked by the zygote. Returns the length written (snprintf's rule). */
int worker_children_prometheus(char *buf, size_t cap);

/* What worker_probe returns (besides tc_probe's codes) when the probe
 * child broke its sandbox: the upload is refused as `sandbox_violation`. */
enum { WORKER_ESANDBOX = -1000 };

/* The child side: `vidq worker` (called by cli_worker). Reads the request
 * on fd 0, writes progress into the shared struct on fd 3 and the result
 * on fd 1. Returns the process exit code. */
int worker_child_main(int argc, char **argv);

/* Probe an untrusted file (an upload) as a job would be isolated: in
 * WORKER_PROCESS a child (`vidq worker --probe`) with max_memory and nice,
 * killed after timeout_s (<= 0: 30 s); in WORKER_THREAD tc_probe in the
 * calling thread. Blocks the caller until the answer. Returns tc_probe's
 * result; a child that crashes, hangs or answers nothing is
 * TC_EUNSUPPORTED with a message saying so. Any thread. */
struct worker_probe_params {
    enum worker_isolation isolation;
    const char *exe;                   /* the vidq binary */
    const char *path;                  /* the file to probe */
    int64_t max_memory;                /* child RLIMIT_AS bytes; 0 = none */
    int nice;
    double timeout_s;
};
int worker_probe(const struct worker_probe_params *p, struct tc_media_info *info,
                 struct tc_error *err);

/* The child side of worker_probe (`vidq worker --probe - ...`): probes
 * descriptor 3 inside the sandbox layers given, joining the zygote's
 * template namespaces at ns_fd_base..+3 when ns_fd_base >= 0. */
int worker_probe_child_main(pid_t parent, long long max_memory, int nice_v, unsigned layers,
                            int ns_fd_base);

#endif
