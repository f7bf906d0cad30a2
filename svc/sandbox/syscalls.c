/*
 * syscalls.c - the system calls a sandboxed child may make: one table,
 * one line per call with why it is there (see sandbox.h).
 *
 * Anything not in the table kills the whole child (SCMP_ACT_KILL_PROCESS:
 * it dies of SIGSYS, which the server reports as `sandbox_violation`).
 * A few calls answer an error instead of killing, because benign library
 * code makes them and copes with the refusal (clone3, ioctl, an encoder
 * asking for real-time scheduling).
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
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

enum cond { ANY, NO_EXEC, THREAD, SELF, FD_ONLY, NAME, FAIL_ENOSYS, FAIL_ENOTTY, FAIL_EPERM };
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
    {"mincore", BOTH, ANY, "av_mallocz: which pages of a block are resident (lazy_zero.c)"},
    {"madvise", BOTH, ANY, "malloc returns memory; thread exit"},
    /* threads: codec frame/slice threads only */
    {"clone", BOTH, THREAD, "pthread_create"},
    {"clone3", BOTH, FAIL_ENOSYS, "glibc tries it first; ENOSYS makes it use clone"},
    {"sched_setscheduler", BOTH, FAIL_EPERM, "encoders asking for real-time threads: refused"},
    {"sched_setattr", BOTH, FAIL_EPERM, "encoders asking for real-time threads: refused"},
    {"sched_setparam", BOTH, FAIL_EPERM, "encoders asking for real-time threads: refused"},
    {"setpriority", BOTH, FAIL_EPERM, "encoders raising their priority: refused"},
    {"getpriority", BOTH, ANY, "encoders read their niceness"},
    {"get_mempolicy", BOTH, FAIL_ENOSYS, "SVT-AV1's NUMA probe: answered as a kernel without NUMA"},
    {"set_mempolicy", BOTH, FAIL_ENOSYS, "SVT-AV1's NUMA binding: answered as a kernel without NUMA"},
    {"sched_setaffinity", BOTH, FAIL_EPERM, "SVT-AV1 pinning its threads: refused, the kernel places them"},
    {"futex", BOTH, ANY, "mutexes, condition variables, joins"},
    {"set_robust_list", BOTH, ANY, "new threads"},
    {"rseq", BOTH, ANY, "new threads"},
    {"sched_yield", BOTH, ANY, "spin-waits in codecs"},
    {"sched_getaffinity", BOTH, ANY, "av_cpu_count, thread counts"},
    {"gettid", BOTH, ANY, "glibc threads"},
    {"getpid", BOTH, ANY, "glibc raise/abort"},
    {"getuid", BOTH, ANY, "SVT-AV1 asks who it runs as"},
    {"geteuid", BOTH, ANY, "SVT-AV1 asks who it runs as"},
    {"getgid", BOTH, ANY, "ids only: harmless"},
    {"getegid", BOTH, ANY, "ids only: harmless"},
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
    {"newfstatat", JOB, ANY, "stat of output files by name"},
    {"getdents64", JOB, ANY, "listing a partial folder to remove it"},
    {"ftruncate", JOB, ANY, "avio truncates a reopened output"},
    {"fsync", JOB, ANY, "outputs made durable before the rename"},
    {"fdatasync", JOB, ANY, "outputs made durable before the rename"},
#ifdef __NR_mkdir /* x86-64: glibc calls the old names */
    {"mkdir", JOB, ANY, "HLS and sprite folders"},
    {"rename", JOB, ANY, "outputs renamed into place"},
    {"unlink", JOB, ANY, "partial outputs removed"},
    {"rmdir", JOB, ANY, "partial folders removed"},
    {"access", JOB, ANY, "avio's file check"},
#else /* arm64 and newer ABIs have only the *at calls */
    {"mkdirat", JOB, ANY, "HLS and sprite folders"},
    {"renameat", JOB, ANY, "outputs renamed into place"},
    {"renameat2", JOB, ANY, "outputs renamed into place"},
    {"unlinkat", JOB, ANY, "partial outputs and folders removed"},
    {"faccessat", JOB, ANY, "avio's file check"},
#endif
#ifdef VIDQ_SANITIZE
    /* ASan/UBSan's runtime, only in the sanitizer build */
    {"sigaltstack", BOTH, ANY, "sanitizer: signal stack per thread"},
    {"prlimit64", BOTH, ANY, "sanitizer: stack limits"},
    {"getrlimit", BOTH, ANY, "sanitizer: stack limits"},
    {"readlink", BOTH, ANY, "sanitizer: reports"},
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
    case FAIL_EPERM:
        return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    return -EINVAL;
}

static int applies(const struct allowed *a, enum sandbox_kind kind)
{
    return a->who == BOTH || kind == SANDBOX_JOB;
}

static int is_refusal(enum cond c)
{
    return c == FAIL_ENOSYS || c == FAIL_ENOTTY || c == FAIL_EPERM;
}

/* Distinct system calls that kind may make (a call listed twice, with
 * and without a condition, counts once; refusals do not count). */
size_t sandbox_syscall_count(enum sandbox_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        const struct allowed *a = &allowed[i];
        int seen = 0;
        if (!applies(a, kind) || is_refusal(a->cond) ||
            seccomp_syscall_resolve_name(a->name) == __NR_SCMP_ERROR)
            continue;
        for (size_t k = 0; k < i && !seen; k++)
            seen = applies(&allowed[k], kind) && !is_refusal(allowed[k].cond) &&
                   strcmp(allowed[k].name, a->name) == 0;
        n += !seen;
    }
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
