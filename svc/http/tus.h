/*
 * tus.h - resumable uploads (tus 1.0.0) at /v1/uploads/: the route handler
 * and its hooks into the server's life cycle and GET /status. See tus.c.
 *
 * Threading: tus_handle, tus_request_free and tus_status_answer run on
 * MHD's threads (any of them, each on its own request); tus_open,
 * tus_start and tus_close on the main thread (http_create, http_listen,
 * http_destroy).
 */
#ifndef VIDQ_HTTP_TUS_H
#define VIDQ_HTTP_TUS_H

#include "http/internal.h"

struct tus_request;

/* Route handler of every /v1/uploads/ route (any method). */
enum MHD_Result tus_handle(struct http_server *h, struct MHD_Connection *conn, struct request *rq,
                           const char *upload_data, size_t *upload_data_size);

/* End of a request: keeps the bytes of an interrupted PATCH, releases the
 * upload's lock, frees. Accepts NULL and sets *pp = NULL. */
void tus_request_free(struct tus_request **pp);

/* GET /status/<id> for an id the scheduler does not know: 404 (unknown,
 * or an upload still incomplete, said in the message), or the failed job
 * of a complete upload that was refused. */
enum MHD_Result tus_status_answer(struct http_server *h, struct MHD_Connection *conn,
                                  const char *id);

/* Parsers of the request headers, exposed for tests/fuzz/: a tus integer
 * header (Upload-Length, Upload-Offset, Content-Length: digits only, no
 * sign, fits int64) to *out, 0 or -1; and the upload options an
 * Upload-Metadata's pairs carry (o is reset first; 0, or -1 with e filled
 * and o cleared). */
struct tus_meta;
struct upload_options;
int tus_header_i64(const char *s, int64_t *out);
int tus_options_from_meta(const struct tus_meta *m, struct upload_options *o,
                          struct api_error *e);

/* Open <data-dir>/uploads (h->tus). Returns 0 or -1 (logged). */
int tus_open(struct http_server *h);

/* With the scheduler running: make the jobs of uploads that were complete
 * at a crash, start the expiry sweep. Returns 0 or -1. */
int tus_start(struct http_server *h);

/* Stop the sweep and free h->tus (after the daemon stopped). */
void tus_close(struct http_server *h);

#endif
