/*
 * zygote.h - start the children that read untrusted media (a job's
 * worker, an upload's probe) at fork speed, from a warm zygote.
 *
 * `vidq zygote` is a small helper process started once by the server. It
 * has loaded every library already, so a child forked from it skips the
 * ~70 ms of dynamic loading that an exec pays. Each probe and each job
 * gets a fresh child that is never reused; it then does exactly what an
 * exec'd `vidq worker` does (its descriptors, its limits, its sandbox).
 * The zygote forks with CLONE_PARENT, so every child is a direct child of
 * the server: the caller waits for it, kills it and reads its exit status
 * as if it had spawned it itself, and PR_SET_PDEATHSIG ties it to the
 * server's keeper thread, so a kill -9 of the server leaves no child.
 * If the zygote dies, the keeper thread starts a new one; meanwhile, and
 * whenever the zygote cannot answer, zygote_spawn falls back to
 * posix_spawn of the binary. Nothing a child does can reach the zygote:
 * they share no memory and the child closes the zygote's socket at once.
 *
 * Threading: zygote_start/zygote_stop from the main thread (the keeper
 * thread they manage must outlive every child, see PR_SET_PDEATHSIG);
 * zygote_spawn from any thread, serialized inside.
 */
#ifndef VIDQ_ZYGOTE_H
#define VIDQ_ZYGOTE_H

#include <sys/types.h>

enum { ZYGOTE_MAX_FDS = 8, ZYGOTE_MAX_ARGS = 32 };

/* Start the zygote and its keeper thread; exe is the vidq binary. envp is
 * the children's environment (borrowed; must outlive zygote_stop);
 * sandbox_layers the children's (the zygote prepares the probes'
 * namespaces); spare_idle_s the seconds without a request after which
 * the zygote ends the children it keeps forked ahead (0: never; see
 * zygote.c, DESIGN, Idle). Returns 0, or a negative errno (children are
 * then spawned directly). */
int zygote_start(const char *exe, char *const envp[], unsigned sandbox_layers, double spare_idle_s);

/* Stop the keeper thread and the zygote. Call after every child ended. */
void zygote_stop(void);

/* Start `vidq <argv...>` (argv[0] is the subcommand, "worker") with
 * fds[i] as its descriptor i, for i < nfds; every other descriptor is
 * closed. The new process is a child of the caller's process. Returns
 * its pid, or a negative errno. The caller still owns fds. */
pid_t zygote_spawn(const char *exe, char *const argv[], const int *fds, int nfds,
                   char *const envp[]);

/* Reap pid, a child of this process that the caller no longer waits for
 * (a probe child that already answered): now if it has exited, else
 * within a second, by the keeper thread (or by a later call), so none is
 * left a zombie while the server idles. Blocks until pid exits only if
 * 64 such children are pending already. Any thread. */
void zygote_reap_later(pid_t pid);

/* The zygote's side (`vidq zygote`, called by main). */
int zygote_main(int argc, char **argv);

/* Children forked by the zygote so far (for /metrics and the tests). */
unsigned long zygote_forks(void);

#endif
