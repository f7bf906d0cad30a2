/* Unit tests of webhook event names, event lists and payloads
 * (svc/hooks/event.c) and of the --webhook-targets parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "hooks/deliver.h"
#include "store/hook_event.h"

static void names_round_trip(void **state)
{
    (void)state;
    static const char *names[] = {"job.started", "job.progress", "job.succeeded", "job.failed",
                                  "job.canceled"};
    int seen = 0;
    for (size_t i = 0; i < 5; i++) {
        int bit = hook_event_parse(names[i]);
        assert_true(bit != 0);
        assert_int_equal(seen & bit, 0);
        seen |= bit;
        assert_string_equal(hook_event_name(bit), names[i]);
    }
    assert_int_equal(seen, HOOK_EVENTS_ALL);
    assert_int_equal(hook_event_parse("job.cancelled"), 0);
    assert_int_equal(hook_event_parse("JOB.SUCCEEDED"), 0);
    assert_int_equal(hook_event_parse(""), 0);
    assert_int_equal(hook_event_parse(NULL), 0);
    assert_null(hook_event_name(0));
    assert_null(hook_event_name(HOOK_EVENT_FAILED | HOOK_EVENT_SUCCEEDED));
    assert_int_equal(hook_event_for_status("succeeded"), HOOK_EVENT_SUCCEEDED);
    assert_int_equal(hook_event_for_status("failed"), HOOK_EVENT_FAILED);
    assert_int_equal(hook_event_for_status("canceled"), HOOK_EVENT_CANCELED);
    assert_int_equal(hook_event_for_status("running"), 0);
    assert_int_equal(hook_event_for_status(NULL), 0);
}

static int parse(const char *text, char *err, size_t cap)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    int r = hook_events_from_json(v, err, cap);
    json_decref(v);
    return r;
}

static void event_lists(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(parse(NULL, err, sizeof(err)), HOOK_EVENTS_DEFAULT);
    assert_int_equal(parse("null", err, sizeof(err)), HOOK_EVENTS_DEFAULT);
    assert_int_equal(HOOK_EVENTS_DEFAULT,
                     HOOK_EVENT_SUCCEEDED | HOOK_EVENT_FAILED | HOOK_EVENT_CANCELED);
    assert_int_equal(parse("[\"job.started\",\"job.progress\"]", err, sizeof(err)),
                     HOOK_EVENT_STARTED | HOOK_EVENT_PROGRESS);
    assert_int_equal(parse("[\"job.failed\",\"job.failed\"]", err, sizeof(err)),
                     HOOK_EVENT_FAILED);
    err[0] = '\0';
    assert_int_equal(parse("[\"job.failed\",\"job.exploded\"]", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "job.exploded"));
    assert_int_equal(parse("[]", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(parse("\"job.failed\"", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "array"));
    assert_int_equal(parse("[1]", err, sizeof(err)), -1);
    assert_int_equal(parse("{}", err, sizeof(err)), -1);

    json_t *a = hook_events_to_json(HOOK_EVENT_STARTED | HOOK_EVENT_CANCELED);
    char *text = json_dumps(a, JSON_COMPACT);
    assert_string_equal(text, "[\"job.started\",\"job.canceled\"]");
    free(text);
    json_decref(a);
}

static void payload_shape(void **state)
{
    (void)state;
    json_t *job = json_pack("{s:s, s:s}", "id", "abc", "status", "succeeded");
    size_t len = 0;
    /* 2026-11-22T05:06:07.250Z */
    char *body = hook_event_body(HOOK_EVENT_SUCCEEDED, job, 1795323967.25, &len);
    assert_non_null(body);
    assert_int_equal(len, strlen(body));
    json_t *o = json_loads(body, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "job.succeeded");
    assert_string_equal(json_string_value(json_object_get(o, "timestamp")),
                        "2026-11-22T05:06:07.250Z");
    assert_true(json_equal(json_object_get(o, "data"), job));
    assert_int_equal(json_object_size(o), 3);
    json_decref(o);
    free(body);
    assert_null(hook_event_body(0, job, 0, &len));
    assert_null(hook_event_body(HOOK_EVENT_FAILED, NULL, 0, &len));
    json_decref(job);
}

static void targets_flag(void **state)
{
    (void)state;
    int deny = -1, lo = -1;
    assert_int_equal(hook_targets_parse(NULL, &deny, &lo), 0);
    assert_int_equal(deny, 0);
    assert_int_equal(hook_targets_parse("any", &deny, &lo), 0);
    assert_int_equal(deny, 0);
    assert_int_equal(hook_targets_parse("public", &deny, &lo), 0);
    assert_int_equal(deny, 1);
    assert_int_equal(lo, 0);
    assert_int_equal(hook_targets_parse("public+loopback", &deny, &lo), 0);
    assert_int_equal(deny, 1);
    assert_int_equal(lo, 1);
    assert_int_equal(hook_targets_parse("private", &deny, &lo), -22);
    assert_int_equal(hook_targets_parse("PUBLIC", &deny, &lo), -22);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_round_trip),
        cmocka_unit_test(event_lists),
        cmocka_unit_test(payload_shape),
        cmocka_unit_test(targets_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
