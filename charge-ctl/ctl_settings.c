/*
 * ctl_settings: the controller daemon's configuration. See ctl_settings.h.
 */
#include "ctl_settings.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Copies src into dst[n], cut to fit: reasons and notes that quote the gateway's messages
 * may be longer than the fields that show them, and a shortened text is what is wanted.
 * (Not snprintf: at higher optimisation levels the compiler sees the longer sources inlined
 * and warns about the intended truncation.) */
void ctl_copy_text(char *dst, size_t n, const char *src)
{
    if (!n)
        return;
    size_t len = src ? strnlen(src, n - 1) : 0;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

int ctl_settings_load(const config_t *cfg, settings_t *s, char *err, size_t n)
{
    memset(s, 0, sizeof *s);
    const char *cc = "CHARGE_CONTROL";
    if (mqtt_site_from_config(cfg, &s->site, err, n) != 0)
        return -1;
    if (mqtt_conn_cfg_from_config(cfg, &s->mqtt, err, n) != 0)
        return -1;

    int ids[CONFIG_MAX_IDS];
    s->n_ids = config_ids(cfg, cc, ids, CONFIG_MAX_IDS);
    if (s->n_ids == 0) {
        snprintf(err, n,
                 "[CHARGE_CONTROL] has no Id/X/ keys: there is no device to control "
                 "(set at least Id/X/TopicPower for the device X to drive)");
        return -1;
    }
    s->id = ids[0];
    char perr[512];
    if (ctl_params_from_config(cfg, s->id, &s->params, perr, sizeof perr) != 0) {
        snprintf(err, n, "[CHARGE_CONTROL] Id/%d: %s", s->id, perr);
        return -1;
    }
    if (ctl_group_cfg_from_config(cfg, s->id, &s->group, perr, sizeof perr) != 0) {
        snprintf(err, n, "[CHARGE_CONTROL] %s", perr);
        return -1;
    }
    if (meter_cfg_from_config(cfg, s->id, &s->meter, err, n) != 0)
        return -1;
    if (surplus_cfg_from_config(cfg, s->id, &s->surplus, err, n) != 0)
        return -1;
    ctl_copy_text(s->topic_power, sizeof s->topic_power,
                  config_str(cfg, cc, "Id/%d/TopicPower", s->id));
    const char *type = config_str(cfg, cc, "Id/%d/Type", s->id);
    /* Winter runs without a meter. */
    s->winter = strcasecmp(type, "Winter") == 0;
    winter_params_from_config(cfg, s->id, &s->winter_p);
    if (s->winter && s->group.n > 1) {
        snprintf(err, n,
                 "[CHARGE_CONTROL] Id/%d/Type=Winter with Id/%d/Devices listing %d devices: the "
                 "Winter mode drives one device; use Type=PID for a group, or list one device",
                 s->id, s->id, s->group.n);
        return -1;
    }
    if (s->winter && s->params.charge_only) {
        snprintf(err, n,
                 "[CHARGE_CONTROL] Id/%d/Type=Winter: device %d is an NPB charger, which cannot "
                 "discharge as the Winter mode does; allowed for an NPB: PID, None, off",
                 s->id, s->id);
        return -1;
    }
    s->can_run = (strcasecmp(type, "PID") == 0 && s->topic_power[0] != '\0') || s->winter;
    s->enable_at_start = s->can_run && config_bool(cfg, cc, "Id/%d/Enable", s->id);
    s->disable_min = strcmp(config_str(cfg, cc, "Id/%d/DisableState", s->id), "min") == 0;
    /* The runtime switch (config Enable, then control/set) decides; the step only needs to
     * know whether this controller may run at all. */
    s->params.enabled = s->can_run;
    s->lease_ttl_s = (int)config_int(cfg, cc, "Id/%d/LeaseTtlSec", s->id);
    s->tel_period_ms = (int)config_int(cfg, "GATEWAY", "TelemetryPeriodMs");

    /* The pid keeps a replacement instance from taking over the older one's broker session
     * (same client id: the broker would disconnect one of them, back and forth). */
    char suffix[48];
    snprintf(suffix, sizeof suffix, "ctl%d-%ld", s->id, (long)getpid());
    mqtt_client_id(config_str(cfg, "MQTT", "AppId"), suffix, s->client_id, sizeof s->client_id);
    return 0;
}
