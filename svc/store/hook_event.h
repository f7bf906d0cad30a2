/*
 * hook_event.h - webhook event names, payloads and message ids: what the
 * store needs to write an outbox row (below hooks/, which sends them).
 *
 * Events: job.started, job.progress, job.succeeded, job.failed,
 * job.canceled. A registration subscribes to a set of them (a bit mask);
 * with no "events" given it gets the three final ones. The payload of
 * every delivery is
 *   {"type": "<event>", "timestamp": "<RFC 3339 UTC>", "data": <job object>}
 * rendered once, when the event happens, and sent unchanged on every retry.
 *
 * Threading: pure functions; any thread.
 */
#ifndef VIDQ_HOOK_EVENT_H
#define VIDQ_HOOK_EVENT_H

#include <stddef.h>

#include <jansson.h>

enum hook_event {
    HOOK_EVENT_STARTED = 1 << 0,
    HOOK_EVENT_PROGRESS = 1 << 1,
    HOOK_EVENT_SUCCEEDED = 1 << 2,
    HOOK_EVENT_FAILED = 1 << 3,
    HOOK_EVENT_CANCELED = 1 << 4,
};

#define HOOK_EVENTS_FINAL (HOOK_EVENT_SUCCEEDED | HOOK_EVENT_FAILED | HOOK_EVENT_CANCELED)
#define HOOK_EVENTS_ALL (HOOK_EVENTS_FINAL | HOOK_EVENT_STARTED | HOOK_EVENT_PROGRESS)
#define HOOK_EVENTS_DEFAULT HOOK_EVENTS_FINAL

/* "job.succeeded" ... for one event bit; NULL for anything else. */
const char *hook_event_name(int event);

/* The bit of an event name; 0 if unknown. */
int hook_event_parse(const char *name);

/* The event a job status ends with ("succeeded" -> HOOK_EVENT_SUCCEEDED);
 * 0 for a status that is not final. */
int hook_event_for_status(const char *status);

/* Parse a registration's "events" member: NULL (absent) gives the default
 * set; else a non-empty array of known event names. Returns the mask, or
 * -1 with a sentence in err (unknown name, not an array, empty). */
int hook_events_from_json(const json_t *events, char *err, size_t err_cap);

/* The names of a mask as a new JSON array (NULL on out-of-memory). */
json_t *hook_events_to_json(int mask);

/* The payload text for event with the job object (borrowed) at time t
 * (Unix seconds); malloc'd, compact, caller frees. NULL on out-of-memory. */
char *hook_event_body(int event, const json_t *job_object, double t, size_t *len);

/* "msg_" + 32 hex digits + NUL. */
#define HOOK_MSG_ID_MAX 40

/* A new message id "msg_<32 hex digits>" (128 random bits) into out: the
 * webhook-id of one outbox row, the same on every attempt. 0, -EINVAL if
 * cap is too small, -EIO if the random generator failed. */
int hook_msg_id(char *out, size_t cap);

/* prefix + 32 random hex digits (128 bits) into out (the ids of outbox
 * rows and of registrations). Errors as hook_msg_id. */
int hook_id_new(const char *prefix, char *out, size_t cap);

/* t (Unix seconds) as RFC 3339 UTC with milliseconds, into out (>= 32). */
void hook_time_rfc3339(double t, char *out, size_t cap);

#endif
