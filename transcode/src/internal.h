/*
 * internal.h - declarations shared by the library's own modules; never
 * installed, never included from svc/.
 */
#ifndef VIDQ_TC_INTERNAL_H
#define VIDQ_TC_INTERNAL_H

/* Log one line through the caller's callback (see tc_set_log). */
void tc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
