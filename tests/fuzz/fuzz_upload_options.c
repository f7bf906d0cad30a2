/* fuzz_upload_options: the options of an upload (svc/http/upload.c), the
 * way both upload forms deliver them: first byte even, a query string
 * ("preset=a&outputs=...", each value percent-decoded as libmicrohttpd
 * does before upload_options_set sees it); odd, multipart text parts
 * (fields split at '&', values raw, NUL bytes included). Then
 * upload_options_check, as an upload does before its body is probed. What
 * it accepts must be a job's outputs JSON: an array of {"preset", "spec"}
 * whose every spec parses again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>
#include <transcode/tc.h>

#include "http/upload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_outputs_json(const char *text)
{
    json_t *arr = json_loads(text, 0, NULL);
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        abort();
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row)
    {
        struct tc_output_spec spec;
        struct tc_error err;
        json_t *spec_json = json_object_get(row, "spec");
        json_t *preset = json_object_get(row, "preset");
        if (!json_is_object(spec_json) || !(json_is_string(preset) || json_is_null(preset)))
            abort();
        memset(&err, 0, sizeof(err));
        if (tc_spec_parse(spec_json, &spec, &err) != 0)
            abort();
    }
    json_decref(arr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256 * 1024)
        return 0;
    int query = !(data[0] & 1);
    char *buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    size_t len = size - 1;

    struct upload_options o;
    struct api_error e;
    memset(&o, 0, sizeof(o));
    memset(&e, 0, sizeof(e));
    int failed = 0;
    size_t pos = 0;
    while (pos < len && !failed) {
        char *field = buf + pos;
        char *amp = memchr(field, '&', len - pos);
        size_t flen = amp ? (size_t)(amp - field) : len - pos;
        pos += flen + 1;
        field[flen] = '\0';
        char *eq = memchr(field, '=', flen);
        if (!eq)
            continue;
        *eq = '\0';
        char *value = eq + 1;
        size_t vlen = flen - (size_t)(value - field);
        if (query) {
            /* The query string is a C string for libmicrohttpd. */
            MHD_http_unescape(field);
            vlen = MHD_http_unescape(value);
            value[vlen] = '\0';
        }
        if (upload_options_set(&o, field, value, vlen, &e) < 0) {
            if (!e.code || !e.message[0])
                abort();
            failed = 1;
        }
    }
    if (!failed) {
        char *outputs_json = NULL;
        memset(&e, 0, sizeof(e));
        if (upload_options_check(&o, &outputs_json, &e) == 0)
            check_outputs_json(outputs_json);
        else if (!e.code || !e.message[0] || outputs_json)
            abort();
        free(outputs_json);
    }
    upload_options_clear(&o);
    free(buf);
    return 0;
}
