/* cli_presets.c - `vidq presets [--json]`: the preset table. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <transcode/tc.h>

#include "cli/cli.h"

int cli_presets(int argc, char **argv)
{
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vidq presets [--json]\n");
            return CLI_OK;
        } else {
            fprintf(stderr, "vidq: bad_request: unknown option '%s'\n", argv[i]);
            return CLI_USAGE;
        }
    }
    if (as_json) {
        json_t *o = tc_presets_to_json();
        if (!o || json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
            json_decref(o);
            fprintf(stderr, "vidq: out_of_memory: cannot print the presets\n");
            return CLI_FAILED;
        }
        json_decref(o);
        fputc('\n', stdout);
    } else {
        for (size_t i = 0; i < tc_preset_count(); i++)
            printf("%-12s %s\n", tc_preset_name(i), tc_preset_description(i));
    }
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
}
