/*
 * sandbox.h - what a child that reads untrusted media may do.
 *
 * A probe child and a job child enter the sandbox after they hold every
 * descriptor they need and before they read the first byte of input.
 * Layers, each detected at server start and applied in this order:
 *   userns  a new user namespace (unprivileged mapping of our uid), which
 *           lets the next layers work without privileges;
 *   mountns a new mount namespace whose root is an empty read-only tmpfs;
 *           a job child sees only its own output folder there, at /out;
 *   netns   a new network namespace: no interface but a down loopback;
 *   ipcns   a new IPC namespace: no SysV/POSIX IPC shared with the host;
 *   landlock no file access at all (probe) or only beneath the output
 *           folder (job); no TCP bind/connect; no signals or abstract
 *           sockets outside the sandbox (each right as the kernel's ABI
 *           allows);
 *   rlimits no core files, few descriptors, an output size cap;
 *   seccomp an allow-list of system calls (syscalls.c, one table), default
 *           kill, with PR_SET_NO_NEW_PRIVS: no socket, no exec, no fork
 *           (threads only), no ptrace, no signal to another process, no
 *           executable memory, no open by path in a probe child.
 * seccomp is the floor: in strict mode a child that cannot apply it does
 * not run. The other layers are applied whenever the kernel has them.
 *
 * Errors: functions return 0 or a negative errno; sandbox_enter says in
 * err which layer failed.
 * Threading: sandbox_detect once at start (it forks); sandbox_enter only
 * in a single-threaded child.
 */
#ifndef VIDQ_SANDBOX_H
#define VIDQ_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

enum sandbox_layer {
    SANDBOX_SECCOMP = 1 << 0,
    SANDBOX_USERNS = 1 << 1,
    SANDBOX_MOUNTNS = 1 << 2,
    SANDBOX_NETNS = 1 << 3,
    SANDBOX_IPCNS = 1 << 4,
    SANDBOX_LANDLOCK = 1 << 5,
};
enum { SANDBOX_ALL = (1 << 6) - 1 };

enum sandbox_kind { SANDBOX_PROBE, SANDBOX_JOB };

struct sandbox_policy {
    enum sandbox_kind kind;
    unsigned layers;       /* SANDBOX_* to apply; every one must succeed */
    int out_dir_fd;        /* SANDBOX_JOB: the job's output folder; it
                            * becomes the working directory */
    int max_fd;            /* descriptors above this are closed first */
    int64_t max_file_size; /* RLIMIT_FSIZE; 0 = none */
    int ns_fd_base;        /* >= 0 when descriptors ns_fd_base..+3 hold a
                            * template's user, net, IPC and mount namespaces
                            * (sandbox_template_create): joined instead of
                            * made, and closed. A probe joins all four; a job
                            * joins user, net and IPC and still makes its own
                            * mount namespace (its folder at /out); -1: none */
    int nice;              /* > 0: the niceness taken last, just before the
                            * seccomp filter, so the set-up before it (on a
                            * claim's or an upload's critical path) runs at
                            * the caller's priority and only the media work
                            * after it is niced */
};

/* A probe's namespaces, made once: user, net, IPC and a mount namespace
 * whose root is the empty read-only tmpfs, held by four descriptors
 * (user, net, ipc, mnt) in fds. Probe children join them with setns
 * instead of building their own, which costs two RCU grace periods each
 * (the unmount of the old root, and the namespace's teardown at exit):
 * tens of milliseconds on a busy host. What they share is nothing they can
 * use: no path (empty root, Landlock), no socket or IPC call and no
 * signal to another process (seccomp). layers must hold all four
 * namespace layers. Forks a helper; call from a single-threaded process.
 * Returns 0 or a negative errno (fds then untouched). */
int sandbox_template_create(unsigned layers, int fds[4]);

/* Apply the policy to the calling (single-threaded) process. On failure
 * returns a negative errno and writes which step failed into err; the
 * process may then be half-sandboxed and must exit. */
int sandbox_enter(const struct sandbox_policy *p, char *err, size_t err_cap);

/* Which layers this kernel lets a child apply: forks a throw-away child
 * that enters a probe sandbox layer by layer. Returns the SANDBOX_* mask
 * that worked (0 if even seccomp failed). */
unsigned sandbox_detect(void);

/* "seccomp,userns,mountns,netns,ipcns,landlock" for a mask; "none" for 0. */
const char *sandbox_layers_str(unsigned layers, char *buf, size_t cap);

/* The Landlock ABI version of this kernel, 0 if it has none. */
int sandbox_landlock_abi(void);

/* Install the system-call allow-list for kind (syscalls.c). Returns 0 or
 * a negative errno. Requires PR_SET_NO_NEW_PRIVS already set. */
int sandbox_seccomp_load(enum sandbox_kind kind);

/* How many system calls the allow-list of kind permits (the README's
 * figure; tests check it). */
size_t sandbox_syscall_count(enum sandbox_kind kind);

#endif
