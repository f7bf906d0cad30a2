/*
 * log.h - one logger for the whole binary.
 *
 * log_msg(level, fmt, ...) writes one line to stderr:
 *   2026-11-22T05:06:52.123Z level=info msg... (key=value fields by habit)
 * The level is checked before formatting, so debug lines cost nothing when
 * off. Threading: any thread; each line is written with one write(2), so
 * lines from different threads and from child processes do not interleave.
 */
#ifndef VIDQ_LOG_H
#define VIDQ_LOG_H

enum log_level { LOG_ERROR = 3, LOG_WARNING = 4, LOG_INFO = 6, LOG_DEBUG = 7 };

/* Lines above this level are dropped. Default LOG_INFO; VIDQ_LOG_LEVEL
 * ("error", "warning", "info", "debug") read by log_init. */
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

/* Read VIDQ_LOG_LEVEL and route the transcode library's log here. */
void log_init(void);

/* Route the transcode library's (and libav's) lines up to max_level into
 * this log (log_init uses the log's own level). The service passes
 * LOG_WARNING so that per-job encoder statistics stay out of its log. */
void log_route_transcode(enum log_level transcode_max);

/* Name of a level for parsing/printing; -1 if unknown. */
int log_level_parse(const char *name);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                       \
    do {                                                                     \
        if (log_enabled(LOG_DEBUG))                                          \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                 \
    } while (0)

#endif
