/*
 * cli.h - the subcommands of the vidq binary. main.c picks one by argv[1]
 * and hands it the remaining arguments (argv[0] is the subcommand name).
 *
 * Exit codes, the same for every subcommand:
 *   0  success
 *   1  the work failed (a bad or unsupported input file, an encode error,
 *      a server that could not start); one line on stderr says why
 *   2  bad command line (unknown flag, missing argument, bad spec/preset)
 *   3  submit: the server could not be reached
 *   130 interrupted by SIGINT/SIGTERM (transcode: partial output removed)
 */
#ifndef VIDQ_CLI_H
#define VIDQ_CLI_H

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2, CLI_UNREACHABLE = 3, CLI_INTERRUPTED = 130 };

int cli_serve(int argc, char **argv);      /* vidq serve [flags] */
int cli_worker(int argc, char **argv);     /* internal: one job in a child */
int cli_zygote(int argc, char **argv);     /* internal: the warm zygote */
int cli_transcode(int argc, char **argv);  /* vidq transcode IN OUT [...] */
int cli_probe(int argc, char **argv);      /* vidq probe FILE */
int cli_presets(int argc, char **argv);    /* vidq presets [--json] */
int cli_submit(int argc, char **argv);     /* vidq submit FILE|URL [...] (a client) */

/* A tc_set_log callback that drops everything: one-shot subcommands print
 * exactly one error line unless VIDQ_LOG_LEVEL asks for logs. */
void cli_quiet_log(void *opaque, int level, const char *msg);

#endif
