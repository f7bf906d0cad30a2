/*
 * openapi.c - GET /openapi.json: the OpenAPI 3.1 document of everything
 * the server answers (API.md plus the README's extensions). The document
 * is svc/http/openapi.json, its info.version filled in by CMake and
 * compiled into the binary by cmake/embed.cmake, so it is edited as JSON,
 * read by validators as is, and served without reading a file.
 *
 * Auth: none (it describes the API; it holds no data and no secret), so
 * a client can discover how to authenticate.
 * Drift: tests/integration/test_openapi.sh checks that every route of
 * routes.c is in it and that real answers validate against its schemas.
 *
 * Threading: any HTTP thread; the document is read-only data.
 */
#include <stddef.h>
#include <stdint.h>

#include "http/internal.h"

extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;

enum MHD_Result openapi_handle(struct http_server *h, struct MHD_Connection *conn,
                               struct request *rq, const char *upload_data,
                               size_t *upload_data_size)
{
    (void)h;
    (void)rq;
    (void)upload_data;
    (void)upload_data_size;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        openapi_json_len, (void *)(uintptr_t)openapi_json, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    /* Swagger UI and other tools on another origin may read it. */
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}
