/* test_support.c - see test_support.h. */
#define _GNU_SOURCE
#include "test_support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

int ts_failures;

const char *ts_media(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof(path), "%s/%s", ts_env("VIDQ_MEDIA"), name);
    return path;
}

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

/* ------------------------------------------------------------ the server */

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

double ts_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

const char *ts_store_url(const char *data_dir)
{
    static char url[4400];
    const char *host = getenv("VIDQ_TEST_PG_HOST");
    if (!host || !*host) {
        snprintf(url, sizeof(url), "sqlite:%s/vidq.db", data_dir);
        return url;
    }
    const char *user = getenv("VIDQ_TEST_PG_USER");
    const char *admin = getenv("VIDQ_TEST_DB");
    if (!user || !*user || !admin || !*admin) {
        fprintf(stderr, "VIDQ_TEST_PG_HOST is set but VIDQ_TEST_PG_USER or VIDQ_TEST_DB is not "
                        "(run the test through tests/support/with_pg.sh)\n");
        exit(1);
    }
    /* One database per data dir: a restart on the same dir finds its jobs. */
    uint64_t h = 14695981039346656037ull;
    for (const char *p = data_dir; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    char name[40];
    snprintf(name, sizeof(name), "t_%016llx", (unsigned long long)h);
    PGconn *c = PQconnectdb(admin);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "cannot reach the test PostgreSQL (%s): %s", admin, PQerrorMessage(c));
        exit(1);
    }
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name); /* our own name: [t_0-9a-f] */
    PGresult *r = PQexec(c, sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && !(state && strcmp(state, "42P04") == 0)) {
        fprintf(stderr, "cannot create the test database %s: %s", name, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
    snprintf(url, sizeof(url), "postgresql://%s@/%s?host=%s", user, name, host);
    return url;
}

/* The servers and helpers a test started and has not stopped yet: a failed
 * TS_CHECK exits, and they must not outlive the test (a node of a
 * PostgreSQL test would go on running against a removed cluster). */
enum { TS_MAX_CHILDREN = 64 };
static pid_t ts_children[TS_MAX_CHILDREN];

static void kill_children(void)
{
    for (int i = 0; i < TS_MAX_CHILDREN; i++) {
        pid_t pid = ts_children[i];
        ts_children[i] = 0;
        /* Only a child of ours not reaped yet (its pid cannot have been
         * reused); in a forked copy of the test these are not its
         * children and waitpid says so. */
        if (pid > 0 && waitpid(pid, NULL, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    }
}

static void track_child(pid_t pid)
{
    static int registered;
    if (!registered && atexit(kill_children) == 0)
        registered = 1;
    for (int i = 0; i < TS_MAX_CHILDREN; i++)
        if (ts_children[i] <= 0) {
            ts_children[i] = pid;
            return;
        }
}

static void untrack_child(pid_t pid)
{
    for (int i = 0; i < TS_MAX_CHILDREN; i++)
        if (ts_children[i] == pid)
            ts_children[i] = 0;
}

void ts_server_start(struct ts_server *s, const char *data_dir, const char *flags)
{
    static int counter;
    memset(s, 0, sizeof(*s));
    snprintf(s->data_dir, sizeof(s->data_dir), "%s", data_dir);
    mkdir(data_dir, 0755);
    counter++;
    snprintf(s->log_path, sizeof(s->log_path), "%s/server-%d-%d.log", data_dir, (int)getpid(),
             counter);
    snprintf(s->out_path, sizeof(s->out_path), "%s/server-%d-%d.out", data_dir, (int)getpid(),
             counter);
    char *argv[64];
    int argc = 0;
    char *copy = strdup(flags ? flags : "");
    char *bin = strdup(ts_env("VIDQ_BIN"));
    argv[argc++] = bin;
    argv[argc++] = (char *)"serve";
    argv[argc++] = (char *)"--listen";
    argv[argc++] = (char *)"127.0.0.1:0";
    argv[argc++] = (char *)"--data-dir";
    argv[argc++] = s->data_dir;
    char *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t && argc < 60; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    char *db = NULL;
    const char *pg_host = getenv("VIDQ_TEST_PG_HOST");
    if (pg_host && *pg_host && !strstr(flags ? flags : "", "--db")) {
        db = strdup(ts_store_url(s->data_dir));
        argv[argc++] = (char *)"--db";
        argv[argc++] = db;
        /* a server killed -9 gives its jobs back to the next start soon */
        argv[argc++] = (char *)"--node-lease";
        argv[argc++] = (char *)"3";
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        int out = open(s->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0)
            _exit(127);
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    free(copy);
    free(bin);
    free(db);
    s->pid = pid;
    track_child(pid);
    double deadline = ts_now() + 20;
    while (ts_now() < deadline) {
        char *out = read_file(s->out_path);
        char *l = strstr(out, "listening on 127.0.0.1:");
        if (l) {
            s->port = (int)strtol(l + strlen("listening on 127.0.0.1:"), NULL, 10);
            free(out);
            snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
            return;
        }
        free(out);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char *log = read_file(s->log_path);
            fprintf(stderr, "server exited at start:\n%s\n", log);
            free(log);
            exit(1);
        }
        ts_sleep_ms(20);
    }
    fprintf(stderr, "server did not start listening\n");
    kill(pid, SIGKILL);
    exit(1);
}

int ts_server_stop(struct ts_server *s, int sig, double timeout_s)
{
    if (s->pid <= 0)
        return -1;
    untrack_child(s->pid);
    kill(s->pid, sig);
    double deadline = ts_now() + timeout_s;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(s->pid, &st, WNOHANG);
        if (w == s->pid)
            break;
        if (ts_now() > deadline) {
            fprintf(stderr, "server did not stop in %.0f s; killing it\n", timeout_s);
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            break;
        }
        ts_sleep_ms(10);
    }
    s->pid = 0;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

char *ts_server_log(const struct ts_server *s) { return read_file(s->log_path); }

struct buf {
    char *p;
    size_t n;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *cls)
{
    struct buf *b = cls;
    size_t len = size * nmemb;
    char *np = realloc(b->p, b->n + len + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, data, len);
    b->n += len;
    np[b->n] = '\0';
    b->p = np;
    return len;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *cls)
{
    struct ts_http *r = cls;
    size_t len = size * nmemb, have = strlen(r->headers);
    if (have + len + 1 < sizeof(r->headers)) {
        memcpy(r->headers + have, data, len);
        r->headers[have + len] = '\0';
    }
    return len;
}

static int perform(CURL *c, struct ts_http *r, const struct ts_server *s, const char *path,
                   const char *const *headers)
{
    char url[8192];
    struct buf b = {NULL, 0};
    struct curl_slist *hl = NULL;
    memset(r, 0, sizeof(*r));
    if (strncmp(path, "http", 4) == 0)
        snprintf(url, sizeof(url), "%s", path);
    else
        snprintf(url, sizeof(url), "%s%s", s->base, path);
    for (int i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    r->body = b.p ? b.p : strdup("");
    r->len = b.n;
    if (rc != CURLE_OK) {
        fprintf(stderr, "curl %s: %s\n", url, curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

int ts_http(const struct ts_server *s, struct ts_http *r, const char *method, const char *path,
            const char *const *headers, const void *body, size_t len)
{
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    int rc = perform(c, r, s, path, headers);
    curl_easy_cleanup(c);
    return rc;
}

int ts_http_upload_raw(const struct ts_server *s, struct ts_http *r, const char *path,
                       const char *file, const char *content_type, const char *const *headers)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        perror(file);
        exit(1);
    }
    struct stat st;
    fstat(fileno(f), &st);
    const char *hs[16];
    char ct[256];
    int n = 0;
    snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
    hs[n++] = ct;
    for (int i = 0; headers && headers[i] && n < 15; i++)
        hs[n++] = headers[i];
    hs[n] = NULL;
    int chunked = 0;
    for (int i = 0; headers && headers[i]; i++)
        chunked |= strcasestr(headers[i], "chunked") != NULL;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READDATA, f);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, chunked ? (curl_off_t)-1 : (curl_off_t)st.st_size);
    int rc = perform(c, r, s, path, hs);
    curl_easy_cleanup(c);
    fclose(f);
    return rc;
}

int ts_http_upload_multipart(const struct ts_server *s, struct ts_http *r, const char *path,
                             const char *file, const char *const *fields,
                             const char *const *headers)
{
    CURL *c = curl_easy_init();
    curl_mime *mime = curl_mime_init(c);
    for (int i = 0; fields && fields[i] && fields[i + 1]; i += 2) {
        curl_mimepart *p = curl_mime_addpart(mime);
        curl_mime_name(p, fields[i]);
        curl_mime_data(p, fields[i + 1], CURL_ZERO_TERMINATED);
    }
    if (file) {
        curl_mimepart *p = curl_mime_addpart(mime);
        curl_mime_name(p, "file");
        curl_mime_filedata(p, file);
        curl_mime_type(p, "video/mp4");
    }
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    int rc = perform(c, r, s, path, headers);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    return rc;
}

void ts_http_free(struct ts_http *r)
{
    free(r->body);
    r->body = NULL;
}

char *ts_http_header(const struct ts_http *r, const char *name)
{
    size_t nl = strlen(name);
    for (const char *l = r->headers; l && *l;) {
        const char *e = strstr(l, "\r\n");
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            char *out = malloc(vl + 1);
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        l = e ? e + 2 : NULL;
    }
    return NULL;
}

json_t *ts_http_json(const struct ts_http *r)
{
    return r->body ? json_loads(r->body, 0, NULL) : NULL;
}

json_t *ts_wait_status(const struct ts_server *s, const char *id, const char *want,
                       double timeout_s)
{
    char path[256];
    snprintf(path, sizeof(path), "/status/%s", id);
    double deadline = ts_now() + timeout_s;
    json_t *last = NULL;
    while (ts_now() < deadline) {
        struct ts_http r;
        ts_http(s, &r, "GET", path, s->auth, NULL, 0);
        json_t *j = ts_http_json(&r);
        ts_http_free(&r);
        if (j) {
            json_decref(last);
            last = j;
            const char *st = json_string_value(json_object_get(j, "status"));
            if (st && ((want && strcmp(st, want) == 0) || strcmp(st, "succeeded") == 0 ||
                       strcmp(st, "failed") == 0 || strcmp(st, "canceled") == 0))
                return last;
        }
        ts_sleep_ms(25);
    }
    return last;
}

json_t *ts_wait_job(const struct ts_server *s, const char *id, double timeout_s)
{
    return ts_wait_status(s, id, NULL, timeout_s);
}

json_t *ts_ffprobe(const char *path)
{
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    int rc = ts_run(out, cap,
                    "ffprobe -v error -show_format -show_streams -of json '%s' 2>/dev/null", path);
    json_t *j = rc == 0 ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return j;
}

long ts_http_download(const struct ts_server *s, const char *path, const char *file)
{
    struct ts_http r;
    ts_http(s, &r, "GET", path, NULL, NULL, 0);
    FILE *f = fopen(file, "wb");
    if (f) {
        fwrite(r.body, 1, r.len, f);
        fclose(f);
    }
    long st = r.status;
    ts_http_free(&r);
    return st;
}

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

int ts_raw_request(const struct ts_server *s, const void *req, size_t len, int read_reply,
                   char *resp, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)s->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    const char *p = req;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
    int n = 0;
    if (read_reply && resp && cap > 0) {
        double deadline = ts_now() + 5;
        while (ts_now() < deadline && (size_t)n + 1 < cap) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (poll(&pfd, 1, 100) <= 0)
                continue;
            ssize_t k = recv(fd, resp + n, cap - 1 - (size_t)n, 0);
            if (k <= 0)
                break;
            n += (int)k;
            if (strstr(resp, "\r\n\r\n")) { /* headers are in; a small body follows */
                resp[n] = '\0';
                const char *cl = strcasestr(resp, "content-length:");
                const char *hend = strstr(resp, "\r\n\r\n") + 4;
                if (cl && (long)(n - (hend - resp)) >= strtol(cl + 15, NULL, 10))
                    break;
            }
        }
        resp[n] = '\0';
    }
    close(fd);
    return n;
}

int ts_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
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
    track_child(pid);
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
    untrack_child(pid);
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
