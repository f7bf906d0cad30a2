/* cli_transcode.c - placeholder until the transcode CLI lands (issue 2). */
#include <stdio.h>

#include "cli/cli.h"

int cli_transcode(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vidq transcode: not built yet\n");
    return CLI_FAILED;
}

int cli_probe(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vidq probe: not built yet\n");
    return CLI_FAILED;
}

int cli_presets(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vidq presets: not built yet\n");
    return CLI_FAILED;
}
