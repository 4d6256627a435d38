/*
 * bic-charge-ctl: the grid-balance controller on MQTT and the gateway.
 * Thin shell: flags, logging, configuration, the controller object, its loop, teardown.
 */
#include "config.h"
#include "ctl_daemon.h"
#include "log.h"
#include "progargs.h"

#define PROG "bic-charge-ctl"

int main(int argc, char **argv)
{
    progargs_t args;
    int rc = progargs_parse(argc, argv, PROG, &args);
    if (rc >= 0)
        return rc;
    if (args.check)
        return config_check_main_with(args.config_path, ctl_daemon_check_config);

    config_t *cfg = progargs_start(&args, PROG);
    if (!cfg)
        return 1;
    char err[4096];
    rc = 1;
    ctl_daemon_t *ctl = ctl_daemon_new(cfg, args.config_path, err, sizeof err);
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
