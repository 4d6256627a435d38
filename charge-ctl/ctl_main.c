/*
 * bic-charge-ctl: the grid-balance controller on MQTT and the gateway.
 * Thin shell: flags, logging, configuration, the controller object, its loop, teardown.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl_daemon.h"
#include "log.h"
#include "sigflag.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: bic-charge-ctl [-c FILE] [-v] [--check-config] [--version]\n"
               "  -c, --config FILE   configuration (default " CONFIG_DEFAULT_PATH ")\n"
               "  -v, --verbose       log at debug level\n"
               "      --check-config  validate the configuration and exit (0 valid, 1 not)\n"
               "      --version       print the version and exit\n");
}

int main(int argc, char **argv)
{
    const char *path = CONFIG_DEFAULT_PATH;
    bool verbose = false, check = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"verbose", no_argument, NULL, 'v'},
        {"check-config", no_argument, NULL, 'C'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        case 'C':
            check = true;
            break;
        case 'V':
            printf("bic-charge-ctl %s\n", BIC_VERSION);
            return 0;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bic-charge-ctl: unexpected argument '%s'\n", argv[optind]);
        s_usage(stderr);
        return 2;
    }
    if (check)
        return config_check_main(path);

    log_init("bic-charge-ctl");
    char err[4096];
    config_t *cfg = config_load(path, err, sizeof err);
    if (!cfg) {
        log_error("%s", err);
        return 1;
    }
    log_setup_from_config(cfg, "bic-charge-ctl");
    if (verbose)
        log_set_level(BIC_LOG_DEBUG);
    for (size_t i = 0; i < config_warning_count(cfg); i++)
        log_warn("%s", config_warning(cfg, i));
    if (sigflag_install() != 0) {
        log_error("cannot install signal handlers");
        config_destroy(&cfg);
        return 1;
    }
    int rc = 1;
    ctl_daemon_t *ctl = ctl_daemon_new(cfg, path, err, sizeof err);
    config_destroy(&cfg);
    if (!ctl) {
        log_error("%s", err);
        goto cleanup;
    }
    rc = ctl_daemon_run(ctl) == 0 ? 0 : 1;
cleanup:
    ctl_daemon_destroy(&ctl);
    log_close();
    return rc;
}
