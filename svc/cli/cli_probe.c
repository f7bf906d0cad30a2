/* cli_probe.c - `vidq probe FILE`: the API's "input" object on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "cli/cli.h"

int cli_probe(int argc, char **argv)
{
    struct tc_media_info info;
    struct tc_error err = {0};
    const char *path = NULL;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vidq probe FILE\n  prints the media description as JSON\n");
            return CLI_OK;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "vidq: bad_request: unknown option '%s'\n", argv[i]);
            return CLI_USAGE;
        }
        if (path) {
            fprintf(stderr, "vidq: bad_request: probe takes one file\n");
            return CLI_USAGE;
        }
        path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "vidq: bad_request: usage: vidq probe FILE\n");
        return CLI_USAGE;
    }
    if (!getenv("VIDQ_LOG_LEVEL"))
        tc_set_log(cli_quiet_log, NULL, 0); /* nothing but the one error line */
    int rc = tc_probe(path, &info, &err);
    if (rc < 0) {
        fprintf(stderr, "vidq: %s: %s\n", tc_errname(rc), err.message);
        return CLI_FAILED;
    }
    const char *base = strrchr(path, '/');
    json_t *o = tc_media_info_to_json(&info, base ? base + 1 : path);
    if (!o || json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) != 0) {
        json_decref(o);
        fprintf(stderr, "vidq: out_of_memory: cannot print the description\n");
        return CLI_FAILED;
    }
    json_decref(o);
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
}
