/*
 * range.h - the HTTP Range header of output downloads (outputs.c), alone so
 * that tests/fuzz/ can reach it.
 *
 * Threading: a pure function; any thread.
 */
#ifndef VIDQ_HTTP_RANGE_H
#define VIDQ_HTTP_RANGE_H

#include <stdint.h>

/* Parse a single "bytes=a-b" range (h may be NULL) against a file of size
 * bytes. Returns 1 with 0 <= *from <= *to < size set, 0 if there is no
 * usable range header (serve it all: several ranges, malformed), -1 if
 * unsatisfiable (416). */
int http_range_parse(const char *h, int64_t size, int64_t *from, int64_t *to);

#endif
