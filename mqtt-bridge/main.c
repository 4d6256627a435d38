/*
 * bic-mqtt-bridge: the BIC-2200 devices on MQTT (the seed's topics) and in Home Assistant.
 * Thin shell: flags, logging, configuration, the bridge object, its loop, teardown.
 */
#include "bridge.h"
#include "config.h"
#include "log.h"
#include "progargs.h"

#define PROG "bic-mqtt-bridge"

int main(int argc, char **argv)
{
    progargs_t args;
    int rc = progargs_parse(argc, argv, PROG, &args);
    if (rc >= 0)
        return rc;
    if (args.check)
        return config_check_main_with(args.config_path, bridge_check_config);

    config_t *cfg = progargs_start(&args, PROG);
    if (!cfg)
        return 1;
    char err[2048];
    rc = 1;
    bridge_t *bridge = bridge_new(cfg, args.config_path, err, sizeof err);
    config_destroy(&cfg);
    if (!bridge) {
        log_error("%s", err);
        goto cleanup;
    }
    rc = bridge_run(bridge) == 0 ? 0 : 1;
cleanup:
    bridge_destroy(&bridge);
    log_close();
    return rc;
}
