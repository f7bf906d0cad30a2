/*
 * syscalls.c - the system calls a sandboxed child may make: one table,
 * one line per call with why it is there (see sandbox.h).
 *
 * Anything not in the table kills the whole child (SCMP_ACT_KILL_PROCESS:
 * it dies of SIGSYS, which the server reports as `sandbox_violation`).
 * A few calls answer an error instead of killing, because benign library
 * code makes them and copes with the refusal (clone3, ioctl).
 * Conditions on arguments:
 *   no-exec   the protection bits carry no PROT_EXEC: no writable and
 *             executable memory, and no new executable memory at all
 *             (W^X; FFmpeg's and the codecs' assembly is mapped by the
 *             loader before the sandbox, nothing generates code)
 *   thread    clone only with CLONE_THREAD: a thread, never a process
 *   self      tgkill only to our own process (raise, abort, pthread_kill)
 *   fd-only   newfstatat only with AT_EMPTY_PATH: fstat of an open
 *             descriptor, never a path
 *   name      prctl only PR_SET_NAME / PR_GET_NAME (thread names)
 */
#define _GNU_SOURCE
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

enum cond { ANY, NO_EXEC, THREAD, SELF, FD_ONLY, NAME, FAIL_ENOSYS, FAIL_ENOTTY };
enum who { BOTH, JOB };

static const struct allowed {
    const char *name;
    enum who who;
    enum cond cond;
    const char *why; /* for the reader; not used at run time */
} allowed[] = {
    /* descriptors we were given */
    {"read", BOTH, ANY, "input, request pipe"},
    {"pread64", BOTH, ANY, "demuxers read at offsets"},
    {"readv", BOTH, ANY, "stdio"},
    {"write", BOTH, ANY, "result pipe, outputs, log on stderr"},
    {"pwrite64", JOB, ANY, "muxers patch headers in place"},
    {"writev", BOTH, ANY, "stdio"},
    {"lseek", BOTH, ANY, "seekable input and outputs"},
    {"close", BOTH, ANY, "descriptors we own"},
    {"fstat", BOTH, ANY, "size of the input"},
    {"newfstatat", BOTH, FD_ONLY, "glibc's fstat"},
    {"fcntl", BOTH, ANY, "descriptor flags (stdio, avio)"},
    {"ioctl", BOTH, FAIL_ENOTTY, "isatty: answered ENOTTY, never performed"},
    /* memory */
    {"brk", BOTH, ANY, "malloc"},
    {"mmap", BOTH, NO_EXEC, "malloc, thread stacks, frame pools"},
    {"munmap", BOTH, ANY, "malloc"},
    {"mremap", BOTH, ANY, "realloc of large blocks"},
    {"mprotect", BOTH, NO_EXEC, "thread stack guard pages, malloc arenas"},
    {"madvise", BOTH, ANY, "malloc returns memory; thread exit"},
    /* threads: codec frame/slice threads only */
    {"clone", BOTH, THREAD, "pthread_create"},
    {"clone3", BOTH, FAIL_ENOSYS, "glibc tries it first; ENOSYS makes it use clone"},
    {"futex", BOTH, ANY, "mutexes, condition variables, joins"},
    {"set_robust_list", BOTH, ANY, "new threads"},
    {"rseq", BOTH, ANY, "new threads"},
    {"sched_yield", BOTH, ANY, "spin-waits in codecs"},
    {"sched_getaffinity", BOTH, ANY, "av_cpu_count, thread counts"},
    {"gettid", BOTH, ANY, "glibc threads"},
    {"getpid", BOTH, ANY, "glibc raise/abort"},
    {"exit", BOTH, ANY, "a thread ends"},
    {"exit_group", BOTH, ANY, "the child ends"},
    /* signals, to ourselves only */
    {"rt_sigaction", BOTH, ANY, "SIGTERM handler (cancel)"},
    {"rt_sigprocmask", BOTH, ANY, "threads block signals"},
    {"rt_sigreturn", BOTH, ANY, "return from the handler"},
    {"tgkill", BOTH, SELF, "raise/abort on a failed assertion"},
    {"prctl", BOTH, NAME, "thread names"},
    /* time and randomness */
    {"clock_gettime", BOTH, ANY, "progress, timestamps (when not in the vDSO)"},
    {"gettimeofday", BOTH, ANY, "av_gettime (when not in the vDSO)"},
    {"clock_nanosleep", BOTH, ANY, "usleep"},
    {"nanosleep", BOTH, ANY, "usleep"},
    {"getrandom", BOTH, ANY, "av_get_random_seed, malloc"},
    /* a job writes its outputs beneath its own folder (the only path the
     * mount namespace and Landlock leave it) */
    {"openat", JOB, ANY, "output files, reading back playlists"},
    {"mkdirat", JOB, ANY, "HLS and sprite folders"},
    {"mkdir", JOB, ANY, "HLS and sprite folders"},
    {"renameat", JOB, ANY, "outputs renamed into place"},
    {"renameat2", JOB, ANY, "outputs renamed into place"},
    {"rename", JOB, ANY, "outputs renamed into place"},
    {"unlinkat", JOB, ANY, "partial outputs removed"},
    {"unlink", JOB, ANY, "partial outputs removed"},
    {"rmdir", JOB, ANY, "partial folders removed"},
    {"getdents64", JOB, ANY, "listing a partial folder to remove it"},
    {"ftruncate", JOB, ANY, "avio truncates a reopened output"},
    {"fsync", JOB, ANY, "outputs made durable before the rename"},
    {"fdatasync", JOB, ANY, "outputs made durable before the rename"},
    {"faccessat", JOB, ANY, "avio's file check"},
    {"faccessat2", JOB, ANY, "avio's file check"},
    {"access", JOB, ANY, "avio's file check"},
    {"newfstatat", JOB, ANY, "stat of output files by name"},
    {"statx", JOB, ANY, "stat of output files"},
    {"stat", JOB, ANY, "stat of output files"},
    {"lstat", JOB, ANY, "stat of output files"},
#ifdef VIDQ_SANITIZE
    /* ASan/UBSan's runtime, only in the sanitizer build */
    {"sigaltstack", BOTH, ANY, "sanitizer: signal stack per thread"},
    {"prlimit64", BOTH, ANY, "sanitizer: stack limits"},
    {"getrlimit", BOTH, ANY, "sanitizer: stack limits"},
    {"readlink", BOTH, ANY, "sanitizer: reports"},
    {"mincore", BOTH, ANY, "sanitizer: stack unwinding"},
    {"sched_getparam", BOTH, ANY, "sanitizer"},
    {"getppid", BOTH, ANY, "sanitizer: report"},
#endif
};

static int add_rule(scmp_filter_ctx ctx, const struct allowed *a, int nr)
{
    switch (a->cond) {
    case ANY:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    case NO_EXEC:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    case THREAD:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    case SELF:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    case FD_ONLY:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH));
    case NAME: {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
        return r < 0 ? r
                     : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                        SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
    }
    case FAIL_ENOSYS:
        return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    case FAIL_ENOTTY:
        return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTTY), nr, 0);
    }
    return -EINVAL;
}

static int applies(const struct allowed *a, enum sandbox_kind kind)
{
    return a->who == BOTH || kind == SANDBOX_JOB;
}

size_t sandbox_syscall_count(enum sandbox_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (applies(&allowed[i], kind) && allowed[i].cond != FAIL_ENOSYS &&
            allowed[i].cond != FAIL_ENOTTY &&
            seccomp_syscall_resolve_name(allowed[i].name) != __NR_SCMP_ERROR)
            n++;
    return n;
}

int sandbox_seccomp_load(enum sandbox_kind kind)
{
    int ret = -ENOMEM;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx)
        goto out;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (!applies(&allowed[i], kind))
            continue;
        int nr = seccomp_syscall_resolve_name(allowed[i].name);
        if (nr == __NR_SCMP_ERROR) /* not a call on this architecture */
            continue;
        if ((ret = add_rule(ctx, &allowed[i], nr)) < 0 && ret != -EEXIST)
            goto out;
    }
    /* A probe child opens nothing: its input is a descriptor. Answer
     * rather than kill, so a library that merely looks for a file (CPU
     * topology, say) carries on without it. */
    if (kind == SANDBOX_PROBE) {
        static const char *const no_open[] = {"open", "openat", "openat2"};
        for (size_t i = 0; i < sizeof(no_open) / sizeof(no_open[0]); i++) {
            int nr = seccomp_syscall_resolve_name(no_open[i]);
            if (nr != __NR_SCMP_ERROR &&
                (ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), nr, 0)) < 0)
                goto out;
        }
    }
    ret = seccomp_load(ctx);
out:
    seccomp_release(ctx);
    return ret;
}
