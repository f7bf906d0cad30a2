/*
 * server.c - the libmicrohttpd daemon: an internal thread pool on epoll,
 * with a connection timeout, connection limits (total and per client
 * address) and a memory limit per connection, plus the connection guard
 * (conns.c: a deadline for request heads, a reserve of free slots) and
 * the disk guard (disk.c). See http.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "http/conns.h"
#include "http/disk.h"
#include "http/internal.h"
#include "http/tus.h"
#include "http/upload.h"
#include "net/target.h"

enum { CONN_MEMORY = 128 * 1024, CONN_MEMORY_INCREMENT = 32 * 1024 };

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    log_msg(LOG_DEBUG, "http: %s", line);
}

int http_create(const struct config *cfg, struct http_server **out)
{
    struct http_server *h = calloc(1, sizeof(*h));
    if (!h)
        return -1;
    h->cfg = cfg;
    offload_init(&h->offload, cfg->http_threads);
    struct net_targets fetch_rule;
    if (net_targets_parse(cfg->fetch_targets, &fetch_rule) == 0)
        upload_set_fetch_targets(&fetch_rule); /* upload_url at submit */
    snprintf(h->tmp_dir, sizeof(h->tmp_dir), "%s/tmp", cfg->data_dir);
    snprintf(h->inputs_dir, sizeof(h->inputs_dir), "%s/inputs", cfg->data_dir);
    if (events_create(&h->events) < 0) {
        free(h);
        return -1;
    }
    if (tus_open(h) < 0) {
        events_free(&h->events);
        free(h);
        return -1;
    }
    if (disk_guard_start(cfg->data_dir, cfg->min_free_bytes, cfg->disk_scan_interval,
                         &h->disk) < 0 ||
        conns_create(cfg->header_timeout, cfg->connection_timeout,
                     (unsigned)cfg->max_connections, &h->conns) < 0) {
        disk_guard_stop(&h->disk);
        tus_close(h);
        events_free(&h->events);
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

int http_listen(struct http_server *h, struct sched *s, int *port)
{
    int ret = -1;
    struct addrinfo hints, *ai = NULL;
    char portstr[16];
    h->sched = s;
    if (tus_start(h) < 0)
        goto out;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%d", h->cfg->listen_port);
    int rc = getaddrinfo(h->cfg->listen_host, portstr, &hints, &ai);
    if (rc != 0 || !ai) {
        log_error("cannot resolve listen address %s: %s", h->cfg->listen_host, gai_strerror(rc));
        goto out;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)h->cfg->listen_port, NULL, NULL, routes_dispatch, h,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)h->cfg->http_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->cfg->connection_timeout,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)h->cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
        MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t)CONN_MEMORY_INCREMENT,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_NOTIFY_COMPLETED, routes_request_done, h,
        MHD_OPTION_NOTIFY_CONNECTION, conns_notify, h->conns,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_END);
    if (!h->daemon) {
        log_error("cannot listen on %s:%d (in use, or not a local address?)",
                  h->cfg->listen_host, h->cfg->listen_port);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : h->cfg->listen_port;
    ret = 0;
out:
    if (ai)
        freeaddrinfo(ai);
    return ret;
}

void http_drain(struct http_server *h)
{
    atomic_store(&h->draining, 1);
}

void http_job_changed(void *opaque, const char *job_id, int final)
{
    struct http_server *h = opaque;
    events_notify(h->events, job_id);
}

void http_destroy(struct http_server **pp)
{
    if (!pp || !*pp)
        return;
    struct http_server *h = *pp;
    offload_wait(&h->offload); /* they resume their connections */
    events_shutdown(h->events);
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    conns_free(&h->conns); /* after the daemon: it notifies every close */
    disk_guard_stop(&h->disk);
    events_free(&h->events);
    tus_close(h);
    offload_destroy(&h->offload);
    free(h);
    *pp = NULL;
}
