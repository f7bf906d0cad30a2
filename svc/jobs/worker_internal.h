/*
 * worker_internal.h - what worker.c, worker_probe.c and worker_child.c
 * share: how a child is started, and how its end is named. Not for other
 * modules.
 */
#ifndef VIDQ_WORKER_INTERNAL_H
#define VIDQ_WORKER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Start `vidq <argv...>` (argv[0] = "worker") with fds[i] as descriptor i:
 * through the zygote when it runs, else posix_spawn of exe. Returns the
 * pid of a child of this process, or a negative errno. */
pid_t worker_spawn(const char *exe, char *const argv[], const int *fds, int nfds);

/* The configured sandbox layers and output cap (worker_configure_children),
 * as the decimal strings the child's --sandbox / --max-file-size take. */
void worker_child_args(char *layers, size_t lcap, char *fsize, size_t fcap);

/* Name the death of a child by a signal we did not send: its API error
 * code ("sandbox_violation" for SIGSYS, the seccomp kill; "too_large" for
 * SIGXFSZ, the output cap; else "worker_crashed") and a sentence. */
const char *worker_signal_code(int sig, char *msg, size_t cap, const char *who);

#endif
