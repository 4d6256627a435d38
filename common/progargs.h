/*
 * progargs: the command line and start-up every daemon shares (-c FILE, -v, --check-config,
 * --version, --help), so that each main() stays a thin shell around its service object.
 */
#ifndef BIC_PROGARGS_H
#define BIC_PROGARGS_H

#include <stdbool.h>

#include "config.h"

typedef struct {
    const char *config_path; /* -c FILE, default CONFIG_DEFAULT_PATH */
    bool verbose;            /* -v: log at debug level */
    bool check;              /* --check-config */
} progargs_t;

/* Parses argv. Returns -1 when the program should go on, otherwise the exit status: 0 after
   --help or --version, 2 for a usage error (the usage goes to stderr). `prog` names the
   program in messages. */
int progargs_parse(int argc, char **argv, const char *prog, progargs_t *ret_args);

/* Starts logging as `prog`, loads the configuration, applies [ALL] logging and -v, logs its
   warnings and installs the signal flags. NULL (the reason logged) when the file is invalid
   or the handlers cannot be installed. The caller owns the result. */
config_t *progargs_start(const progargs_t *args, const char *prog);

#endif
