/* test_support.c - see test_support.h. */
#include "test_support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *ts_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "skip: %s not set (run under ctest)\n", name);
        exit(77);
    }
    return v;
}

char *ts_mkdtemp(const char *tag)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.XXXXXX", ts_env("VIDQ_TEST_TMP"), tag);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        exit(1);
    }
    return strdup(path);
}

int ts_run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = 0;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), p)) > 0) {
        if (out && n + 1 < cap) {
            size_t take = got < cap - 1 - n ? got : cap - 1 - n;
            memcpy(out + n, buf, take);
            n += take;
        }
    }
    if (out && cap)
        out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int ts_spawn_line(char *const argv[], char *line, size_t cap, int timeout_s)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        FILE *devnull = freopen("/dev/null", "r", stdin);
        (void)devnull;
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    int got_line = 0;
    time_t end = time(NULL) + timeout_s;
    while (!got_line && n + 1 < cap && time(NULL) <= end) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        ssize_t r = read(fds[0], line + n, 1);
        if (r <= 0)
            break;
        if (line[n] == '\n')
            got_line = 1;
        else
            n++;
    }
    line[n] = '\0';
    if (!got_line) {
        close(fds[0]);
        ts_stop(pid);
        return -1;
    }
    /* The read end stays open until the test exits, so that a later write
     * of the child never gets SIGPIPE. */
    return pid;
}

void ts_stop(int pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 40; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(50 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int ts_receiver_start(const char *secret, const char *log_path, const char *const extra[],
                      int *port)
{
    char script[4096], mods[4096], line[64];
    const char *src = ts_env("VIDQ_SRC");
    snprintf(script, sizeof(script), "%s/tests/support/webhook_receiver.js", src);
    snprintf(mods, sizeof(mods), "%s/tests/support/node_modules/standardwebhooks", src);
    if (access(mods, R_OK) != 0) {
        fprintf(stderr, "the webhook tests need node packages: run tests/support/setup.sh\n");
        exit(1);
    }
    const char *argv[32] = {"node", script, "--secret", secret, "--log", log_path,
                            "--max-seconds", "300"};
    size_t n = 8;
    for (size_t i = 0; extra && extra[i] && n + 1 < sizeof(argv) / sizeof(argv[0]); i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int pid = ts_spawn_line((char *const *)(void *)argv, line, sizeof(line), 20);
    char *end = NULL;
    long p = pid > 0 ? strtol(line, &end, 10) : 0;
    if (pid <= 0 || !end || *end || p <= 0 || p > 65535) {
        fprintf(stderr, "webhook receiver did not start (got \"%s\")\n", pid > 0 ? line : "");
        ts_stop(pid);
        exit(1);
    }
    *port = (int)p;
    return pid;
}

json_t *ts_receiver_log(const char *log_path)
{
    json_t *all = json_array();
    FILE *f = fopen(log_path, "r");
    if (!f)
        return all;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (o)
            json_array_append_new(all, o);
    }
    free(line);
    fclose(f);
    return all;
}
