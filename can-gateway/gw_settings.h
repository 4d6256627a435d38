/*
 * The gateway's settings: the [GATEWAY] and [DEVICE] keys of a loaded configuration read
 * into one struct, and the gateway's own rules on them (gateway_check_config, gateway.h).
 */
#ifndef BIC_GW_SETTINGS_H
#define BIC_GW_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "gw_device.h"

enum { SAFE_OFF = 0, SAFE_MIN, SAFE_HOLD };

typedef struct {
    char can[300];
    char req_ep[256], pub_ep[256], curve_key[256], state_dir[256];
    char curve_clients[256], curve_ro_clients[256]; /* allow-lists of client keys (dirs) */
    int tel_period_ms, timeout_ms, retries, offline_after;
    bool discover;
    bool bcast; /* the bus holds no BIC but the configured ones: a group's identical writes
                   may go as one broadcast frame */
    bool idle_min;
    int safe_state;
    bool safe_on_exit;
    bool apply_limits; /* bring the [DEVICE] values onto each device when it comes online */
    int eep_interval_s, lease_max_ttl_s;
    int eep_per_day, eep_burst; /* daily budget; 0 with the fixed-interval rule */
    gw_dev_cfg_t dev[GW_DEV_MAX];
} settings_t;

/* Reads the settings of cfg (already checked by gateway_check_config) into *s. Returns 0,
 * or -1 with the reason in err. */
int gw_settings_read(const config_t *cfg, settings_t *s, char *err, size_t errlen);

#endif
