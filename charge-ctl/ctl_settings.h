/*
 * ctl_settings: what bic-charge-ctl reads from the configuration ([MQTT], [CHARGE_CONTROL],
 * [SURPLUS_SWITCH], the lease and telemetry timing), checked and copied into one struct.
 * See docs/charge-ctl.md, "Keys it reads".
 */
#ifndef CTL_SETTINGS_H
#define CTL_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "ctl_group_cfg.h"
#include "ctl_step.h"
#include "meter.h"
#include "mqtt_conn.h"
#include "surplus.h"
#include "winter.h"

typedef struct {
    /* MQTT */
    mqtt_site_t site;     /* topics and payloads */
    mqtt_conn_cfg_t mqtt; /* broker, credentials, TLS */
    char client_id[160];
    /* controller */
    int id;       /* the device driven: the first [CHARGE_CONTROL] Id/X */
    size_t n_ids; /* how many Id/X the section has */
    char topic_power[512];
    bool can_run;     /* Type is not off and there is a meter topic */
    bool disable_min; /* control/set 0 leaves the output on at the minimum charge current */
    bool winter;      /* Type=Winter: the Winter mode instead of the grid-balance step */
    winter_params_t winter_p;
    bool enable_at_start;
    meter_cfg_t meter;
    ctl_params_t params;
    int lease_ttl_s;
    int tel_period_ms;     /* [GATEWAY] TelemetryPeriodMs: a gateway that states none has it */
    surplus_cfg_t surplus; /* [SURPLUS_SWITCH] of the device */
    ctl_group_cfg_t group; /* Id/X/Devices: X alone, or the group X drives */
} settings_t;

/* Copies src into dst[n], cut to fit. */
void ctl_copy_text(char *dst, size_t n, const char *src);

/* Fills s from cfg. 0, or -1 with what is wrong in err. */
int ctl_settings_load(const config_t *cfg, settings_t *s, char *err, size_t n);

#endif
