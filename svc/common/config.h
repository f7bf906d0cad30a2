/*
 * config.h - the settings of `vidq serve`: defaults, then VIDQ_<FLAG>
 * environment variables, then command-line flags (last one wins).
 *
 * Every flag --some-flag has the environment variable VIDQ_SOME_FLAG.
 * Threading: config_parse runs once in main before any thread starts; the
 * filled struct is read-only afterwards and may be read by any thread.
 */
#ifndef VIDQ_CONFIG_H
#define VIDQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum config_isolation { CONFIG_ISOLATION_PROCESS = 0, CONFIG_ISOLATION_THREAD = 1 };

struct config {
    char listen_host[256];       /* --listen HOST:PORT */
    int listen_port;             /* 0 = any free port */
    char data_dir[1024];         /* --data-dir */
    char db[1100];               /* --db sqlite:<path> (default in data dir) */
    int max_concurrent;          /* --max-concurrent */
    enum config_isolation isolation;
    int max_queued;              /* --max-queued */
    int status_cache_jobs;       /* --status-cache-jobs (PostgreSQL) */
    int64_t max_upload_bytes;    /* --max-upload-bytes */
    char api_key[256];           /* --api-key ("" = no auth) */
    char webhook_secret[256];    /* --webhook-secret (kept for the webhook sender) */
    double webhook_retry_min;    /* --webhook-retry-min S */
    double webhook_retry_max_age;/* --webhook-retry-max-age S */
    double webhook_timeout;      /* --webhook-timeout S, per delivery attempt */
    char webhook_targets[32];    /* --webhook-targets any|public|public+loopback */
    char fetch_targets[32];      /* --fetch-targets any|public|public+loopback (input_url, upload_url) */
    double job_timeout;          /* --job-timeout S, wall clock per attempt */
    double shutdown_grace;       /* --shutdown-grace S on SIGTERM/SIGINT */
    int http_threads;            /* --http-threads */
    int max_connections;         /* --max-connections */
    int max_connections_per_ip;  /* --max-connections-per-ip */
    int connection_timeout;      /* --connection-timeout S (idle) */
    int header_timeout;          /* --header-timeout S: a request head must be complete within */
    int64_t min_free_bytes;      /* --min-free-bytes: uploads get 507 below this much free disk */
    double disk_scan_interval;   /* --disk-scan-interval S: walk of the data dir for /metrics */
    int64_t worker_max_memory;   /* --worker-max-memory: child RLIMIT_AS bytes */
    int worker_nice;             /* --worker-nice: child CPU niceness */
    double spare_idle;           /* --spare-idle S: the zygote ends its spares after S idle (0: never) */
    int job_threads;             /* --job-threads: codec threads per job; 0 = auto */
    double tus_expiry;           /* --tus-expiry S: unfinished tus uploads kept after their last byte */
    int tus_fsync;               /* --tus-fsync 0|1: fdatasync each tus chunk before its answer */
    double node_lease;           /* --node-lease S: shared store, a silent node's jobs are requeued after this */
    char port_file[1024];        /* --port-file: write the bound port here */
    char sandbox[16];            /* --sandbox strict|off: the children's sandbox */
    int64_t max_output_bytes;    /* --max-output-bytes: a job child's RLIMIT_FSIZE */
    double retention;            /* --retention S: a job's files kept after it ends */
    double max_retention;        /* --max-retention S: the largest ttl_s an upload may ask */
    double retention_records;    /* --retention-records S: its row kept after it ends */
};

/* Result of config_parse besides 0: */
enum { CONFIG_HELP = 1, CONFIG_ERROR = -1 };

/* Fill cfg from defaults, the environment and argv (argv[0] is the
 * subcommand name). Returns 0, CONFIG_HELP when --help was asked, or
 * CONFIG_ERROR with a one-line reason in err. */
int config_parse(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

/* --http-threads' default for a process that may run on `cores` cores:
 * cores, at least 2, at most 8 (config.c says what was measured). */
int config_default_http_threads(int cores);

/* The help text of `vidq serve` (flags, env vars, defaults). Static. */
const char *config_usage(void);

#endif
