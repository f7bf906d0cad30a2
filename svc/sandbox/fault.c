/* fault.c - test-only escape attempts of a sandboxed child (see fault.h). */
#define _GNU_SOURCE
#include "sandbox/fault.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int blocked(char *msg, size_t cap, const char *act, int err)
{
    snprintf(msg, cap, "the sandbox refused '%s': %s", act, strerror(err));
    return FAULT_BLOCKED;
}

static int escaped(char *msg, size_t cap, const char *act)
{
    snprintf(msg, cap, "the sandbox let '%s' through", act);
    return FAULT_ESCAPED;
}

static int try_connect(const char *port_s, char *msg, size_t cap, const char *act)
{
    char *end = NULL;
    long port = strtol(port_s, &end, 10);
    if (!end || *end || port <= 0 || port > 65535)
        return blocked(msg, cap, act, EINVAL);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return blocked(msg, cap, act, errno);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(s);
        return blocked(msg, cap, act, e);
    }
    ssize_t w = write(s, "escaped\n", 8);
    close(s);
    return w == 8 ? escaped(msg, cap, act) : blocked(msg, cap, act, errno);
}

int fault_escape_from_env(const char *env, char *msg, size_t cap)
{
    const char *act = getenv(env);
    if (!act || !*act)
        return FAULT_NONE;
    if (strncmp(act, "spin:", 5) == 0) {
        double secs = strtod(act + 5, NULL);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do
            clock_gettime(CLOCK_MONOTONIC, &t);
        while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < secs);
        return FAULT_NONE;
    }
    if (strcmp(act, "segv") == 0) {
        raise(SIGSEGV);
        return blocked(msg, cap, act, EFAULT);
    }
    if (strncmp(act, "read:", 5) == 0) {
        char byte;
        int fd = open(act + 5, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return blocked(msg, cap, act, errno);
        ssize_t k = read(fd, &byte, 1);
        int e = errno;
        close(fd);
        return k >= 0 ? escaped(msg, cap, act) : blocked(msg, cap, act, e);
    }
    if (strncmp(act, "write:", 6) == 0) {
        int fd = open(act + 6, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return blocked(msg, cap, act, errno);
        ssize_t w = write(fd, "escaped\n", 8);
        close(fd);
        return w == 8 ? escaped(msg, cap, act) : blocked(msg, cap, act, errno);
    }
    if (strncmp(act, "connect:", 8) == 0)
        return try_connect(act + 8, msg, cap, act);
    if (strcmp(act, "exec") == 0) {
        char *argv[] = {(char *)"sh", (char *)"-c", (char *)"exit 0", NULL};
        char *envp[] = {NULL};
        execve("/bin/sh", argv, envp);
        return blocked(msg, cap, act, errno);
    }
    if (strcmp(act, "fork") == 0) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0)
            return blocked(msg, cap, act, errno);
        waitpid(pid, NULL, 0);
        return escaped(msg, cap, act);
    }
    if (strcmp(act, "ptrace") == 0) {
        if (ptrace(PTRACE_ATTACH, getppid(), NULL, NULL) < 0)
            return blocked(msg, cap, act, errno);
        ptrace(PTRACE_DETACH, getppid(), NULL, NULL);
        return escaped(msg, cap, act);
    }
    if (strcmp(act, "kill") == 0) {
        /* SIGURG: ignored by default, so a hole here costs the test
         * server nothing, but kill() succeeding is still the escape. */
        if (kill(getppid(), SIGURG) < 0)
            return blocked(msg, cap, act, errno);
        return escaped(msg, cap, act);
    }
    if (strcmp(act, "mmap_wx") == 0) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (p == MAP_FAILED)
            return blocked(msg, cap, act, errno);
        munmap(p, 4096);
        return escaped(msg, cap, act);
    }
    if (strcmp(act, "mprotect_x") == 0) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return blocked(msg, cap, act, errno);
        int rc = mprotect(p, 4096, PROT_READ | PROT_EXEC);
        int e = errno;
        munmap(p, 4096);
        return rc == 0 ? escaped(msg, cap, act) : blocked(msg, cap, act, e);
    }
    /* Counted as an escape, so a misspelt act fails its test loudly. */
    snprintf(msg, cap, "unknown fault '%s'", act);
    return FAULT_ESCAPED;
}
