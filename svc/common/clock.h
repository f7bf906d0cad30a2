/*
 * clock.h - deadlines for pthread_cond_timedwait, whose clock is
 * CLOCK_REALTIME (the condition variables here keep the default clock).
 *
 * Threading: pure; any thread. Errors: none.
 */
#ifndef VIDQ_CLOCK_H
#define VIDQ_CLOCK_H

#include <time.h>

/* The time seconds (>= 0) from now, normalised (tv_nsec < 1e9). */
struct timespec clock_deadline(double seconds);

#endif
