/*
 * input_url.h - POST /v1/jobs with "input_url" instead of a file (API.md
 * "Inputs from a URL"): the URL comes as a multipart text part, a query
 * parameter, or a JSON body {"input_url": s, "preset": .., "outputs": ..,
 * "webhook_url": .., "metadata": .., "clip": .., "priority": ..}. The job
 * is stored and queued at once, without an input file: its runner fetches
 * the input as the job's first phase (jobs/fetch_input.h). Only the URL's
 * shape is checked here (http/https with a host: else 400 bad_request);
 * where it leads is judged when the fetch connects (--fetch-targets).
 *
 * Threading: any HTTP thread; each call works on its own request.
 */
#ifndef VIDQ_HTTP_INPUT_URL_H
#define VIDQ_HTTP_INPUT_URL_H

#include <stddef.h>

#include "http/upload.h"

/* Largest JSON body of POST /v1/jobs. */
enum { INPUT_URL_BODY_MAX = 256 * 1024 };

/* Fill o from a JSON body (len bytes). 0, or -1 with e filled (400). */
int input_url_options_from_json(const char *body, size_t len, struct upload_options *o,
                                struct api_error *e);

/* Store and queue a job whose input is o->input_url. On success *json holds
 * the job object (malloc'd) and id its id. Returns 0 or -1 with e filled. */
int input_url_submit(struct http_server *h, const struct upload_options *o, char **json,
                     size_t *json_len, char id[JOB_ID_SIZE], struct api_error *e);

#endif
