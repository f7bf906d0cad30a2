/*
 * main.c - wiring only: pick the subcommand and run it. Each subcommand
 * lives in svc/cli/ and owns its flags; see cli.h for exit codes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <transcode/tc.h>

#include "cli/cli.h"
#include "common/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vidq <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve      run the HTTP transcoding service (vidq serve --help)\n"
            "  transcode  IN OUT [--preset P | --output SPEC_JSON] [--progress json]\n"
            "  probe      FILE    print the media description as JSON\n"
            "  presets    [--json] list the output presets\n"
            "  submit     FILE|URL [--server URL] [--wait] [--download DIR] (vidq submit --help)\n"
            "\n"
            "  --help     this text\n"
            "  --version  version of vidq and of the libraries it uses\n"
            "\n"
            "exit codes: 0 ok, 1 failed, 2 bad command line, 130 interrupted\n");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {
        {"serve", cli_serve},         {"worker", cli_worker}, {"transcode", cli_transcode},
        {"probe", cli_probe},         {"presets", cli_presets},  {"submit", cli_submit},
        {"zygote", cli_zygote},
    };

    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("vidq %s\n%s\n%s\n", VIDQ_VERSION, tc_version(), curl_version());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            /* libcurl's global init is not thread-safe: once, here, before
             * any thread starts. */
            curl_global_init(CURL_GLOBAL_DEFAULT);
            /* SVT-AV1 prints to stderr itself unless told otherwise (0 =
             * fatal only); set before any thread can read the environment. */
            setenv("SVT_LOG", "0", 0);
            log_init();
            int rc = commands[i].run(argc - 1, argv + 1);
            curl_global_cleanup();
            return rc;
        }
    }
    fprintf(stderr, "vidq: bad_request: unknown command '%s' (try vidq --help)\n", argv[1]);
    return CLI_USAGE;
}
