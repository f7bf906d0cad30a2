/*
 * fault.h - test-only fault injection: make a sandboxed child misbehave
 * as a hostile file exploiting a decoder bug would, to prove the sandbox
 * holds (README, Security model; tests/integration/test_sandbox_escape.sh).
 *
 * An environment variable of the server (VIDQ_FAULT_PROBE for probe
 * children, VIDQ_FAULT_JOB for job children) names one act, tried once
 * the sandbox is up:
 *   segv            die of SIGSEGV (a plain crash)
 *   read:PATH       open PATH for reading and read from it
 *   write:PATH      create PATH and write to it
 *   connect:PORT    connect to 127.0.0.1:PORT and send bytes
 *   exec            execve /bin/sh
 *   fork            fork a process
 *   ptrace          attach to the parent (the server)
 *   kill            send SIGTERM to the parent (the server)
 *   mmap_wx         map memory writable and executable
 *   mprotect_x      make writable memory executable
 *   spin:SECONDS    use the CPU for SECONDS, then go on as if unset (a
 *                   decoder stuck on a hostile file, for as long as that)
 * Unset in production; nothing else reads these variables.
 * Threading: the child's single thread, after sandbox_enter.
 */
#ifndef VIDQ_SANDBOX_FAULT_H
#define VIDQ_SANDBOX_FAULT_H

#include <stddef.h>

enum fault_outcome {
    FAULT_NONE,    /* the variable is unset */
    FAULT_BLOCKED, /* the act failed (or the filter killed us first) */
    FAULT_ESCAPED, /* the act worked: the sandbox did not hold */
};

/* Try the act named by the environment variable env; msg says what
 * happened. Returns enum fault_outcome (may not return at all: a seccomp
 * kill). */
int fault_escape_from_env(const char *env, char *msg, size_t cap);

#endif
