/* cli.h — what the command-line files share: exit codes and error printing. */
#pragma once

#include <stdbool.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

/* Prints "interpretdl: <message>" and the help hint; returns EXIT_USAGE. */
__attribute__((format(printf, 1, 2))) int cli_usage_error(const char *fmt, ...);
/* Prints "interpretdl: <what>: <idl_last_error()>"; returns EXIT_RUNTIME. */
int cli_runtime_error(const char *what);
/* `interpretdl demo`: see demo.c; parses the command line
 * `interpretdl demo [--out DIR] [--imagenet DIR] [--threads N]` (argv[2] on). */
int cli_demo_main(int argc, char **argv);
