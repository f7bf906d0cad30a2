/*
 * web.c - GET / (and HEAD /): the web page of API.md's Operations (drop a
 * file, watch its progress, play the output). The page is
 * svc/http/web/index.html, compiled into the binary by cmake/embed.cmake,
 * so the server reads no file for it and it works from any directory.
 *
 * Auth: the page itself is served without the API key (it holds no data
 * and no secret); every API call it makes carries the key the user types
 * in, so a server with --api-key still answers nothing without it.
 * The page loads nothing from elsewhere, and the Content-Security-Policy
 * says so to the browser.
 *
 * Threading: any HTTP thread; the page is read-only data.
 */
#include <stddef.h>

#include "http/internal.h"

extern const unsigned char web_index_html[];
extern const size_t web_index_html_len;

enum MHD_Result web_handle(struct http_server *h, struct MHD_Connection *conn, struct request *rq,
                           const char *upload_data, size_t *upload_data_size)
{
    (void)h;
    (void)rq;
    (void)upload_data;
    (void)upload_data_size;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        web_index_html_len, (void *)(uintptr_t)web_index_html, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; script-src 'unsafe-inline'; "
                            "style-src 'unsafe-inline'; img-src 'self' blob: data:; "
                            "media-src 'self' blob:; frame-ancestors 'none'");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}
