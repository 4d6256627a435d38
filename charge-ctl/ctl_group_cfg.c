/*
 * ctl_group_cfg: a controller's group of devices from the configuration (ctl_group_cfg.h).
 */
#include "ctl_group_cfg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl_step.h"

#define ALLOWED                                                                                    \
    "allowed: empty (the controller's own device alone) or 1-8 distinct device addresses 0-63, "   \
    "comma-separated, the controller's own among them"

/* Parses the Devices value into g->dev; 0 or -1 with a message. */
static int s_devices(const char *value, int id, ctl_group_cfg_t *g, char *err, size_t errlen)
{
    g->n = 0;
    const char *p = value;
    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        char *end = NULL;
        long v = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : -1;
        if (v < 0 || v > 63 || end == p) {
            snprintf(err, errlen, "Id/%d/Devices: '%s' is not a list of device addresses; %s", id,
                     value, ALLOWED);
            return -1;
        }
        if (g->n == CTL_GROUP_MAX) {
            snprintf(err, errlen, "Id/%d/Devices: '%s' lists more than %d devices; %s", id, value,
                     CTL_GROUP_MAX, ALLOWED);
            return -1;
        }
        for (int i = 0; i < g->n; i++) {
            if (g->dev[i] == v) {
                snprintf(err, errlen, "Id/%d/Devices: '%s' lists device %ld twice; %s", id, value,
                         v, ALLOWED);
                return -1;
            }
        }
        g->dev[g->n++] = (int)v;
        p = end;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == ',' && p[1] != '\0') {
            p++;
        } else if (*p != '\0') {
            snprintf(err, errlen, "Id/%d/Devices: '%s' is not a list of device addresses; %s", id,
                     value, ALLOWED);
            return -1;
        }
    }
    if (g->n == 0) {
        g->dev[g->n++] = id;
        return 0;
    }
    for (int i = 0; i < g->n; i++)
        if (g->dev[i] == id)
            return 0;
    snprintf(err, errlen,
             "Id/%d/Devices: '%s' does not list the controller's own device %d; %s (the "
             "controller's keys are under the Id of one of its devices)",
             id, value, id, ALLOWED);
    return -1;
}

int ctl_group_cfg_from_config(const config_t *cfg, int id, ctl_group_cfg_t *g, char *err,
                              size_t errlen)
{
    memset(g, 0, sizeof *g);
    const char *cc = "CHARGE_CONTROL";
    if (s_devices(config_str(cfg, cc, "Id/%d/Devices", id), id, g, err, errlen) != 0)
        return -1;
    ctl_params_t first;
    for (int i = 0; i < g->n; i++) {
        int y = g->dev[i];
        bool npb = y >= CTL_NPB_FIRST; /* its keys are [NPB] Id/<y - 64>/ */
        if (npb && g->n > 1) {
            snprintf(err, errlen,
                     "Id/%d/Devices: device %d is an NPB charger, which a controller drives "
                     "alone; allowed: an NPB without Devices",
                     id, y);
            return -1;
        }
        if (!npb && !config_has(cfg, "DEVICE", "Id/%d/ChargeVoltage", y)) {
            snprintf(err, errlen,
                     "Id/%d/Devices: device %d has no [DEVICE] Id/%d/ keys; each device of the "
                     "group needs its ChargeVoltage, DischargeVoltage and current limits",
                     id, y, y);
            return -1;
        }
        /* the device's own limits, as the controller reads them for one device */
        ctl_params_t py;
        char perr[400];
        if (ctl_params_from_config(cfg, y, &py, perr, sizeof perr) != 0) {
            snprintf(err, errlen, "Id/%d/Devices: device %d: %s", id, y, perr);
            return -1;
        }
        g->battery[i] = npb ? 0 : (int)config_int(cfg, "DEVICE", "Id/%d/Battery", y);
        g->max_charge_ca[i] = py.max_charge_ca;
        g->max_discharge_ca[i] = py.max_discharge_ca;
        g->min_current_ca[i] = py.min_current_ca;
        if (i == 0)
            first = py;
        for (int j = 0; j < i; j++) {
            if (g->battery[j] == g->battery[i] &&
                (py.charge_voltage_cv != first.charge_voltage_cv ||
                 py.discharge_voltage_cv != first.discharge_voltage_cv)) {
                snprintf(err, errlen,
                         "Id/%d/Devices: devices %d and %d sit on battery %d but differ in "
                         "[DEVICE] ChargeVoltage or DischargeVoltage; devices on one battery "
                         "must share them (or set Id/Y/Battery apart)",
                         id, g->dev[j], y, g->battery[i]);
                return -1;
            }
        }
    }
    ctl_group_params_defaults(&g->params);
    g->params.stage_hyst = config_int(cfg, cc, "Id/%d/Group/StageHysteresisPct", id) / 100.0;
    g->params.rotate_wh = (double)config_int(cfg, cc, "Id/%d/Group/RotateWh", id);
    g->params.soc_balance = config_bool(cfg, cc, "Id/%d/Group/SocBalance", id);
    return ctl_group_params_validate(&g->params, err, errlen);
}
