/*
 * ts_lb.h - the load-balancer harness for the C tests (issue #17 part 4):
 * tests/support/lb_cluster.sh starts N vidq nodes at once on one data dir
 * (and, with --db, one database) behind nginx configured from
 * deploy/nginx/vidq.conf; this header starts it and describes what it
 * started as struct ts_server values, so the usual ts_http / ts_wait_job /
 * ts_server_log helpers work through the balancer or on one node.
 *
 * Header-only (static inline) because only the test_pg_lb* tests use it and
 * the test_support library's sources are listed in tests/CMakeLists.txt.
 * Tests only: aborts the test (exit 1) on setup failure. Single-threaded.
 * The nodes are children of the harness script, not of the test: stop one
 * with ts_lb_stop_node (SIGTERM or SIGKILL, then its exit status from the
 * script), never with ts_server_stop (which waits for a child).
 */
#ifndef VIDQ_TS_LB_H
#define VIDQ_TS_LB_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"
#include "ts_nodes.h"

enum { TS_LB_MAX_NODES = 8 };

struct ts_lb {
    int script_pid;                      /* lb_cluster.sh, for ts_stop */
    int n;                               /* nodes */
    struct ts_server node[TS_LB_MAX_NODES];
    char exit_path[TS_LB_MAX_NODES][4200]; /* the node's exit status, once it ended */
    struct ts_server lb;                 /* nginx: base is the balancer's URL, pid 0 */
    char access_log[4200];               /* "<method> <uri> <status> c<conn> <upstream>" */
    char error_log[4200];
};

/* Stop nginx and whatever nodes still run: SIGTERM to the script, whose
 * handler stops them all (nodes may take seconds to end their jobs), and
 * wait for it; SIGKILL only after 40 s (ts_stop's 2 s would kill the
 * script mid-way and leave its nodes running). */
static inline void ts_lb_stop(struct ts_lb *c)
{
    if (c->script_pid <= 0)
        return;
    kill(c->script_pid, SIGTERM);
    double deadline = ts_now() + 40;
    int st;
    while (waitpid(c->script_pid, &st, WNOHANG) == 0) {
        if (ts_now() > deadline) {
            kill(c->script_pid, SIGKILL);
            waitpid(c->script_pid, &st, 0);
            break;
        }
        ts_sleep_ms(20);
    }
    c->script_pid = 0;
}

/* A failed TS_CHECK exits: stop the cluster then too (the script also
 * stops by itself once this process is gone). */
static struct ts_lb *ts_lb_running;
static inline void ts_lb_at_exit(void)
{
    if (ts_lb_running)
        ts_lb_stop(ts_lb_running);
}

/* Start n nodes with `vidq serve --listen 127.0.0.1:0 --data-dir dir
 * <flags>` (space-separated, no quoting) behind nginx; returns when nginx
 * answers through a node. */
static inline void ts_lb_start(struct ts_lb *c, const char *dir, int n, const char *flags)
{
    memset(c, 0, sizeof(*c));
    TS_CHECK(n >= 1 && n <= TS_LB_MAX_NODES, "ts_lb_start: %d nodes", n);
    static char script[4200], count[8], dir_arg[4200];
    snprintf(script, sizeof(script), "%s/tests/support/lb_cluster.sh", ts_env("VIDQ_SRC"));
    snprintf(count, sizeof(count), "%d", n);
    char *argv[72];
    int argc = 0;
    argv[argc++] = (char *)"bash";
    argv[argc++] = script;
    snprintf(dir_arg, sizeof(dir_arg), "%s", dir);
    argv[argc++] = dir_arg;
    argv[argc++] = count;
    char *copy = strdup(flags ? flags : "");
    char *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t && argc < 70; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    argv[argc] = NULL;
    char line[128];
    c->script_pid = ts_spawn_line(argv, line, sizeof(line), 60);
    free(copy);
    TS_CHECK(c->script_pid > 0 && strncmp(line, "ready ", 6) == 0,
             "lb_cluster.sh did not start (see its stderr above)");
    ts_lb_running = c;
    atexit(ts_lb_at_exit);
    char tsv[4400];
    snprintf(tsv, sizeof(tsv), "%s/cluster.tsv", dir);
    FILE *f = fopen(tsv, "r");
    TS_CHECK(f, "no %s", tsv);
    char kind[16], a[4200], b[4200], e[4200];
    int k, pid, port;
    while (fscanf(f, "%15s %d %d %d %4199s %4199s %4199s", kind, &k, &pid, &port, a, b, e) == 7) {
        struct ts_server *s = NULL;
        if (strcmp(kind, "node") == 0 && k >= 1 && k <= n) {
            s = &c->node[k - 1];
            snprintf(c->exit_path[k - 1], sizeof(c->exit_path[0]), "%s", e);
            snprintf(s->log_path, sizeof(s->log_path), "%s", a);
            snprintf(s->out_path, sizeof(s->out_path), "%s", b);
            s->pid = pid;
            c->n++;
        } else if (strcmp(kind, "nginx") == 0) {
            s = &c->lb;
            snprintf(c->access_log, sizeof(c->access_log), "%s", a);
            snprintf(c->error_log, sizeof(c->error_log), "%s", b);
            snprintf(s->log_path, sizeof(s->log_path), "%s", b);
        }
        if (s) {
            s->port = port;
            snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", port);
            snprintf(s->data_dir, sizeof(s->data_dir), "%s", dir);
        }
    }
    fclose(f);
    TS_CHECK(c->n == n && c->lb.port > 0, "%s lists %d of %d nodes", tsv, c->n, n);
}

/* The exit status of node k (0-based) once it ended (137 after kill -9), or
 * -1 while it runs. */
static inline int ts_lb_node_exit(const struct ts_lb *c, int k)
{
    FILE *f = fopen(c->exit_path[k], "r");
    int st = -1;
    if (f) {
        if (fscanf(f, "%d", &st) != 1)
            st = -1;
        fclose(f);
    }
    return st;
}

/* Send sig to node k and wait (up to timeout_s) for its exit status. */
static inline int ts_lb_stop_node(struct ts_lb *c, int k, int sig, double timeout_s)
{
    struct ts_server *s = &c->node[k];
    if (s->pid > 0)
        kill(s->pid, sig);
    double deadline = ts_now() + timeout_s;
    int st;
    while ((st = ts_lb_node_exit(c, k)) < 0 && ts_now() < deadline)
        ts_sleep_ms(20);
    s->pid = 0;
    return st;
}

/* SIGTERM every node but skip (-1: none), counting a failure unless each
 * exits 0 within timeout_s; then ts_lb_stop (nginx and the script). */
static inline void ts_lb_stop_all(struct ts_lb *c, int skip, double timeout_s)
{
    for (int k = 0; k < c->n; k++) {
        if (k == skip)
            continue;
        int st = ts_lb_stop_node(c, k, SIGTERM, timeout_s);
        TS_EXPECT(st == 0, "node %d stopped with %d", k + 1, st);
    }
    ts_lb_stop(c);
}

/* Which node (0-based) started job id: ts_runner_of over the nodes. */
static inline int ts_lb_runner_of(struct ts_lb *c, const char *id, double timeout_s)
{
    struct ts_server *nodes[TS_LB_MAX_NODES];
    for (int k = 0; k < c->n; k++)
        nodes[k] = &c->node[k];
    return ts_runner_of(nodes, c->n, id, timeout_s);
}

/* How many times the nodes' logs, all together, say job id started. */
static inline int ts_lb_started(const struct ts_lb *c, const char *id)
{
    int n = 0;
    for (int k = 0; k < c->n; k++)
        n += ts_started_count(&c->node[k], id);
    return n;
}

/* Lines of the balancer's access log whose text contains every one of
 * the NULL-terminated needles, and how many distinct upstream addresses
 * (the last field) they went to (*upstreams, may be NULL). */
static inline int ts_lb_access(const struct ts_lb *c, const char *const *needles,
                               int *upstreams)
{
    FILE *f = fopen(c->access_log, "r");
    int count = 0, nup = 0;
    char seen[TS_LB_MAX_NODES * 4][64];
    char line[8192];
    while (f && fgets(line, sizeof(line), f)) {
        int all = 1;
        for (int i = 0; needles && needles[i]; i++)
            all &= strstr(line, needles[i]) != NULL;
        if (!all)
            continue;
        count++;
        char *up = strrchr(line, ' ');
        if (!up)
            continue;
        up++;
        up[strcspn(up, "\n")] = '\0';
        int known = 0;
        for (int i = 0; i < nup; i++)
            known |= strcmp(seen[i], up) == 0;
        if (!known && nup < (int)(sizeof(seen) / sizeof(seen[0])))
            snprintf(seen[nup++], sizeof(seen[0]), "%s", up);
    }
    if (f)
        fclose(f);
    if (upstreams)
        *upstreams = nup;
    return count;
}

#endif
