/* hook_event.c - see hook_event.h. */
#include "store/hook_event.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

static const struct {
    int bit;
    const char *name;
} events[] = {
    {HOOK_EVENT_STARTED, "job.started"},     {HOOK_EVENT_PROGRESS, "job.progress"},
    {HOOK_EVENT_SUCCEEDED, "job.succeeded"}, {HOOK_EVENT_FAILED, "job.failed"},
    {HOOK_EVENT_CANCELED, "job.canceled"},
};
#define N_EVENTS (sizeof(events) / sizeof(events[0]))

const char *hook_event_name(int event)
{
    for (size_t i = 0; i < N_EVENTS; i++)
        if (events[i].bit == event)
            return events[i].name;
    return NULL;
}

int hook_event_parse(const char *name)
{
    for (size_t i = 0; name && i < N_EVENTS; i++)
        if (strcmp(events[i].name, name) == 0)
            return events[i].bit;
    return 0;
}

int hook_event_for_status(const char *status)
{
    if (!status)
        return 0;
    if (strcmp(status, "succeeded") == 0)
        return HOOK_EVENT_SUCCEEDED;
    if (strcmp(status, "failed") == 0)
        return HOOK_EVENT_FAILED;
    if (strcmp(status, "canceled") == 0)
        return HOOK_EVENT_CANCELED;
    return 0;
}

int hook_events_from_json(const json_t *list, char *err, size_t err_cap)
{
    if (!list || json_is_null(list))
        return HOOK_EVENTS_DEFAULT;
    if (!json_is_array(list)) {
        snprintf(err, err_cap, "\"events\" must be an array of event names");
        return -1;
    }
    if (json_array_size(list) == 0) {
        snprintf(err, err_cap, "\"events\" must not be empty (omit it for the defaults)");
        return -1;
    }
    int mask = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v) {
        int bit = json_is_string(v) ? hook_event_parse(json_string_value(v)) : 0;
        if (!bit) {
            snprintf(err, err_cap,
                     "unknown event %s%.64s%s (known: job.started, job.progress, "
                     "job.succeeded, job.failed, job.canceled)",
                     json_is_string(v) ? "\"" : "", json_is_string(v) ? json_string_value(v) : "(not a string)",
                     json_is_string(v) ? "\"" : "");
            return -1;
        }
        mask |= bit;
    }
    return mask;
}

json_t *hook_events_to_json(int mask)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < N_EVENTS; i++)
        if (mask & events[i].bit)
            json_array_append_new(a, json_string(events[i].name));
    return a;
}

void hook_time_rfc3339(double t, char *out, size_t cap)
{
    time_t secs = (time_t)floor(t);
    int ms = (int)((t - floor(t)) * 1000.0);
    if (ms > 999)
        ms = 999;
    if (ms < 0) /* not a number */
        ms = 0;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

char *hook_event_body(int event, const json_t *job_object, double t, size_t *len)
{
    char ts[40];
    const char *name = hook_event_name(event);
    if (!name || !job_object)
        return NULL;
    hook_time_rfc3339(t, ts, sizeof(ts));
    /* json_pack's "O" takes a new reference; the cast only drops const. */
    json_t *o = json_pack("{s:s, s:s, s:O}", "type", name, "timestamp", ts, "data",
                          (json_t *)(uintptr_t)job_object);
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text && len)
        *len = strlen(text);
    return text;
}

int hook_id_new(const char *prefix, char *out, size_t cap)
{
    unsigned char rnd[16];
    size_t n = strlen(prefix);
    if (cap < n + 2 * sizeof(rnd) + 1)
        return -EINVAL;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -EIO;
    memcpy(out, prefix, n);
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(out + n + 2 * i, 3, "%02x", rnd[i]);
    return 0;
}

int hook_msg_id(char *out, size_t cap) { return hook_id_new("msg_", out, cap); }
