/* avlog.c - route av_log and the library's own logging to the caller's
 * callback (tc_set_log). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libavutil/log.h>

#include "transcode/tc.h"
#include "internal.h"

static tc_log_fn log_fn;
static void *log_opaque;
static int log_max = TC_LOG_WARNING;

static int to_tc_level(int av_level)
{
    if (av_level <= AV_LOG_ERROR)
        return TC_LOG_ERROR;
    if (av_level <= AV_LOG_WARNING)
        return TC_LOG_WARNING;
    if (av_level <= AV_LOG_INFO)
        return TC_LOG_INFO;
    return TC_LOG_DEBUG;
}

static void emit(int level, const char *msg)
{
    if (level > log_max)
        return;
    if (log_fn)
        log_fn(log_opaque, level, msg);
    else
        fprintf(stderr, "%s\n", msg);
}

static void av_callback(void *avcl, int av_level, const char *fmt, va_list vl)
    __attribute__((format(printf, 3, 0)));

static void av_callback(void *avcl, int av_level, const char *fmt, va_list vl)
{
    int level = to_tc_level(av_level);
    if (level > log_max)
        return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line2(avcl, av_level, fmt, vl, line, sizeof(line), &print_prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n > 0)
        emit(level, line);
}

void tc_set_log(tc_log_fn fn, void *opaque, int max_level)
{
    log_fn = fn;
    log_opaque = opaque;
    log_max = max_level;
    av_log_set_callback(av_callback);
}

void tc_log(int level, const char *fmt, ...)
{
    if (level > log_max)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emit(level, line);
}
