/*
 * bic-can-gateway: the only process with access to the CAN bus. Thin shell around the
 * gateway service: flags, logging, config, sockets, READY, loop, clean exit.
 *
 *   bic-can-gateway [-c PATH] [-v] [--check-config] [--version]
 */
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "monotime.h"
#include "progargs.h"
#include "sdnotify.h"
#include "sigflag.h"

#define PROG "bic-can-gateway"

/* WARN: log the loader's warnings. */
static config_t *s_load(const char *path, bool warn)
{
    char err[4096];
    config_t *cfg = config_load(path, err, sizeof err);
    if (!cfg) {
        log_error("%s", err);
        return NULL;
    }
    for (size_t i = 0; warn && i < config_warning_count(cfg); i++)
        log_warn("%s", config_warning(cfg, i));
    char gerr[512];
    if (gateway_check_config(cfg, gerr, sizeof gerr) < 0) {
        log_error("%s: %s", path, gerr);
        config_destroy(&cfg);
    }
    return cfg;
}

int main(int argc, char **argv)
{
    progargs_t args;
    int rc = progargs_parse(argc, argv, PROG, &args);
    if (rc >= 0)
        return rc;
    const char *path = args.config_path;
    bool verbose = args.verbose;
    log_init(PROG);
    if (args.check)
        return config_check_main_with(path, gateway_check_config);

    rc = 1;
    gateway_t *gw = NULL;
    config_t *cfg = s_load(path, true);
    if (!cfg)
        goto cleanup;
    log_setup_from_config(cfg, PROG);
    if (verbose)
        log_set_level(BIC_LOG_DEBUG);
    if (sigflag_install() < 0) {
        log_error("cannot install signal handlers");
        goto cleanup;
    }
    /* The loop sleeps until the next bus slot to the microsecond; the default 50 µs timer
     * slack would add to every slot of the 20 ms pacing. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    char err[512];
    gw = gateway_new(cfg, err, sizeof err);
    if (!gw) {
        log_error("%s", err);
        goto cleanup;
    }
    sdnotify_ready();
    log_info("running (config %s)", path);
    int64_t wd_us = sdnotify_watchdog_interval_us();
    int64_t next_wd = mono_us();
    while (!gateway_stopped(gw)) {
        if (sigflag_stop())
            gateway_begin_stop(gw);
        if (sigflag_reload_take()) {
            sdnotify_reloading();
            config_t *fresh = s_load(path, true);
            char note[512] = "";
            if (!fresh) {
                log_error("reload: keeping the old configuration");
            } else if (gateway_reload(gw, fresh, note, sizeof note) < 0) {
                log_error("reload: %s; keeping the old configuration", note);
                config_destroy(&fresh);
            } else {
                config_destroy(&cfg);
                cfg = fresh;
                log_info("reloaded %s%s%s", path, note[0] ? "; " : "", note);
            }
            sdnotify_ready();
        }
        if (wd_us > 0 && mono_us() >= next_wd) {
            sdnotify_watchdog();
            next_wd = mono_us() + wd_us / 2;
        }
        if (gateway_poll(gw, wd_us > 0 ? (int)(wd_us / 2000) : 1000) < 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    sdnotify_stopping();
    gateway_destroy(&gw);
    config_destroy(&cfg);
    log_info("stopped");
    log_close();
    return rc;
}
