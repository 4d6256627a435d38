/*
 * progargs: the shared command line and start-up of the daemons.
 */
#include "progargs.h"

#include <getopt.h>
#include <stdio.h>

#include "log.h"
#include "sigflag.h"

static void s_usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [-c FILE] [-v] [--check-config] [--version]\n"
            "  -c, --config FILE   configuration (default " CONFIG_DEFAULT_PATH ")\n"
            "  -v, --verbose       log at debug level\n"
            "      --check-config  validate the configuration and exit (0 valid, 1 not)\n"
            "      --version       print the version and exit\n"
            "  -h, --help          this text\n",
            prog);
}

int progargs_parse(int argc, char **argv, const char *prog, progargs_t *ret_args)
{
    progargs_t a = {.config_path = CONFIG_DEFAULT_PATH};
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"verbose", no_argument, NULL, 'v'},
        {"check-config", no_argument, NULL, 'C'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a.config_path = optarg;
            break;
        case 'v':
            a.verbose = true;
            break;
        case 'C':
            a.check = true;
            break;
        case 'V':
            printf("%s %s\n", prog, BIC_VERSION);
            return 0;
        case 'h':
            s_usage(stdout, prog);
            return 0;
        default:
            s_usage(stderr, prog);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        s_usage(stderr, prog);
        return 2;
    }
    *ret_args = a;
    return -1;
}

config_t *progargs_start(const progargs_t *args, const char *prog)
{
    log_init(prog);
    char err[4096];
    config_t *cfg = config_load(args->config_path, err, sizeof err);
    if (!cfg) {
        log_error("%s", err);
        return NULL;
    }
    log_setup_from_config(cfg, prog);
    if (args->verbose)
        log_set_level(BIC_LOG_DEBUG);
    for (size_t i = 0; i < config_warning_count(cfg); i++)
        log_warn("%s", config_warning(cfg, i));
    if (sigflag_install() != 0) {
        log_error("cannot install signal handlers");
        config_destroy(&cfg);
        return NULL;
    }
    return cfg;
}
