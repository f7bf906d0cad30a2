/* log.c - see log.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <transcode/tc.h>

static atomic_int max_level = LOG_INFO;

void log_set_level(enum log_level level) { atomic_store(&max_level, (int)level); }

int log_enabled(enum log_level level) { return (int)level <= atomic_load(&max_level); }

int log_level_parse(const char *name)
{
    static const struct { const char *name; int level; } names[] = {
        {"error", LOG_ERROR}, {"warning", LOG_WARNING}, {"warn", LOG_WARNING},
        {"info", LOG_INFO},   {"debug", LOG_DEBUG},
    };
    for (size_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0)
            return names[i].level;
    return -1;
}

static const char *level_name(int level)
{
    switch (level) {
    case LOG_ERROR: return "error";
    case LOG_WARNING: return "warning";
    case LOG_INFO: return "info";
    default: return "debug";
    }
}

static void vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void vlog(int level, const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%d] %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), (int)getpid(), level_name(level));
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    while (len > 0 && line[len - 1] == '\n')
        len--;
    line[len++] = '\n';
    /* One write per line: atomic enough for stderr pipes across threads. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog((int)level, fmt, ap);
    va_end(ap);
}

static void from_transcode(void *opaque, int level, const char *msg)
{
    (void)opaque;
    if (log_enabled((enum log_level)level))
        log_msg((enum log_level)level, "transcode: %s", msg);
}

void log_route_transcode(enum log_level transcode_max)
{
    tc_set_log(from_transcode, NULL, (int)transcode_max);
}

void log_init(void)
{
    int level = log_level_parse(getenv("VIDQ_LOG_LEVEL"));
    if (level > 0)
        log_set_level((enum log_level)level);
    tc_set_log(from_transcode, NULL, atomic_load(&max_level));
}
