/* cli_serve.c - placeholder until the service lands (issue 3). */
#include <stdio.h>

#include "cli/cli.h"

int cli_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vidq serve: not built yet\n");
    return CLI_FAILED;
}

int cli_worker(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vidq worker: not built yet\n");
    return CLI_FAILED;
}
