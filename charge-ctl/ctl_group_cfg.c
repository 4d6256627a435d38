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
    "allowed: empty (the controller's own device alone) or 1-8 distinct devices, "                 \
    "comma-separated, the controller's own among them, each an address 0-63 on [GATEWAY]'s "       \
    "own gateway or ADDRESS@G on gateway G 1-7 ([GATEWAY] Gw/G/...)"

const char *ctl_group_member_name(const ctl_group_cfg_t *g, int i, char *buf, size_t n)
{
    if (g->gw[i])
        snprintf(buf, n, "%d@%d", g->dev[i], g->gw[i]);
    else
        snprintf(buf, n, "%d", g->dev[i]);
    return buf;
}

/* One number 0..hi at *p (advanced past it), or -1. */
static long s_number(const char **p, long hi)
{
    if (!isdigit((unsigned char)**p))
        return -1;
    char *end;
    long v = strtol(*p, &end, 10);
    *p = end;
    return v <= hi ? v : -1;
}

/* Parses the Devices value into g->dev and g->gw; 0 or -1 with a message. */
static int s_devices(const char *value, int id, ctl_group_cfg_t *g, char *err, size_t errlen)
{
    g->n = 0;
    const char *p = value;
    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        long v = s_number(&p, 63), gw = 0;
        if (v >= 0 && *p == '@') {
            p++;
            gw = s_number(&p, CONFIG_MAX_GATEWAYS - 1);
            if (gw == 0)
                gw = -1; /* gateway 0 is written without @ */
        }
        if (v < 0 || gw < 0) {
            snprintf(err, errlen, "Id/%d/Devices: '%s' is not a list of devices; %s", id, value,
                     ALLOWED);
            return -1;
        }
        if (g->n == CTL_GROUP_MAX) {
            snprintf(err, errlen, "Id/%d/Devices: '%s' lists more than %d devices; %s", id, value,
                     CTL_GROUP_MAX, ALLOWED);
            return -1;
        }
        g->dev[g->n] = (int)v;
        g->gw[g->n] = (int)gw;
        for (int i = 0; i < g->n; i++) {
            if (g->dev[i] == v && g->gw[i] == gw) {
                char name[16];
                snprintf(err, errlen, "Id/%d/Devices: '%s' lists device %s twice; %s", id, value,
                         ctl_group_member_name(g, i, name, sizeof name), ALLOWED);
                return -1;
            }
        }
        g->n++;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == ',' && p[1] != '\0') {
            p++;
        } else if (*p != '\0') {
            snprintf(err, errlen, "Id/%d/Devices: '%s' is not a list of devices; %s", id, value,
                     ALLOWED);
            return -1;
        }
    }
    if (g->n == 0) {
        g->dev[g->n++] = id;
        return 0;
    }
    for (int i = 0; i < g->n; i++)
        if (g->dev[i] == id && g->gw[i] == 0)
            return 0;
    snprintf(err, errlen,
             "Id/%d/Devices: '%s' does not list the controller's own device %d; %s (the "
             "controller's keys are under the Id of one of its devices on [GATEWAY]'s own "
             "gateway)",
             id, value, id, ALLOWED);
    return -1;
}

/* Member i on another gateway: the gateway's endpoints are configured; py gets the
 * controller's own parameters with the device's [DEVICE] Id/Y@G/ limits, g its battery.
 * 0 or -1 with a message. */
static int s_remote(const config_t *cfg, int id, ctl_group_cfg_t *g, int i, ctl_params_t *py,
                    char *err, size_t errlen)
{
    int y = g->dev[i], gw = g->gw[i];
    const char *dv = "DEVICE";
    if (ctl_params_from_config(cfg, id, py, err, errlen) != 0)
        return -1;
    if (!*config_str(cfg, "GATEWAY", "Gw/%d/ReqEndpoint", gw) ||
        !*config_str(cfg, "GATEWAY", "Gw/%d/PubEndpoint", gw)) {
        snprintf(err, errlen,
                 "Id/%d/Devices: device %d@%d is on gateway %d, but [GATEWAY] "
                 "Gw/%d/ReqEndpoint and Gw/%d/PubEndpoint are not both set; allowed: the "
                 "gateway's ipc:// or tcp:// endpoints (with Gw/%d/CurveServerPublicKey for "
                 "CURVE)",
                 id, y, gw, gw, gw, gw, gw);
        return -1;
    }
    static const char *const required[] = {"ChargeVoltage", "DischargeVoltage", "MaxChargeCurrent",
                                           "MaxDischargeCurrent", NULL};
    for (int k = 0; required[k]; k++) {
        if (!config_has(cfg, dv, "Id/%d@%d/%s", y, gw, required[k])) {
            snprintf(err, errlen,
                     "Id/%d/Devices: device %d@%d has no [DEVICE] Id/%d@%d/%s; each device of "
                     "the group on another gateway needs Id/Y@G/ChargeVoltage, DischargeVoltage, "
                     "MaxChargeCurrent and MaxDischargeCurrent",
                     id, y, gw, y, gw, required[k]);
            return -1;
        }
    }
    py->dev_id = y;
    py->charge_voltage_cv = (int)config_int(cfg, dv, "Id/%d@%d/ChargeVoltage", y, gw);
    py->discharge_voltage_cv = (int)config_int(cfg, dv, "Id/%d@%d/DischargeVoltage", y, gw);
    py->max_charge_ca = (int)config_int(cfg, dv, "Id/%d@%d/MaxChargeCurrent", y, gw);
    py->max_discharge_ca = (int)config_int(cfg, dv, "Id/%d@%d/MaxDischargeCurrent", y, gw);
    py->min_current_ca = config_has(cfg, dv, "Id/%d@%d/MinCurrent", y, gw)
                             ? (int)config_int(cfg, dv, "Id/%d@%d/MinCurrent", y, gw)
                             : ctl_model_min_current_ca(py->charge_voltage_cv);
    if (py->discharge_voltage_cv >= py->charge_voltage_cv) {
        snprintf(err, errlen,
                 "[DEVICE] Id/%d@%d/DischargeVoltage: '%d' is not below Id/%d@%d/ChargeVoltage "
                 "(%d); allowed: less than ChargeVoltage",
                 y, gw, py->discharge_voltage_cv, y, gw, py->charge_voltage_cv);
        return -1;
    }
    int most = py->max_charge_ca < py->max_discharge_ca ? py->max_charge_ca : py->max_discharge_ca;
    if (py->min_current_ca > most) {
        snprintf(err, errlen,
                 "[DEVICE] Id/%d@%d/MinCurrent: '%d' is above the device's MaxChargeCurrent or "
                 "MaxDischargeCurrent; allowed: at most both",
                 y, gw, py->min_current_ca);
        return -1;
    }
    g->battery[i] = (int)config_int(cfg, dv, "Id/%d@%d/Battery", y, gw);
    return 0;
}

/* Member i on gateway 0: its limits as the controller reads them for one device ([DEVICE]
 * Id/Y/, an NPB's [NPB] keys), into py; its battery into g. 0 or -1 with a message. */
static int s_local(const config_t *cfg, int id, ctl_group_cfg_t *g, int i, ctl_params_t *py,
                   char *err, size_t errlen)
{
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
    char perr[400];
    if (ctl_params_from_config(cfg, y, py, perr, sizeof perr) != 0) {
        snprintf(err, errlen, "Id/%d/Devices: device %d: %s", id, y, perr);
        return -1;
    }
    g->battery[i] = npb ? 0 : (int)config_int(cfg, "DEVICE", "Id/%d/Battery", y);
    return 0;
}

/* Devices on one battery share its voltages: device i against each earlier device j on the
 * same battery (cv[k]: device k's ChargeVoltage and DischargeVoltage). */
static int s_same_battery(int id, const ctl_group_cfg_t *g, int i, const int (*cv)[2], char *err,
                          size_t errlen)
{
    for (int j = 0; j < i; j++) {
        if (g->battery[j] == g->battery[i] && (cv[i][0] != cv[j][0] || cv[i][1] != cv[j][1])) {
            char a[16], b[16];
            snprintf(err, errlen,
                     "Id/%d/Devices: devices %s and %s sit on battery %d but differ in "
                     "[DEVICE] ChargeVoltage or DischargeVoltage; devices on one battery "
                     "must share them (or set Id/Y/Battery apart)",
                     id, ctl_group_member_name(g, j, a, sizeof a),
                     ctl_group_member_name(g, i, b, sizeof b), g->battery[i]);
            return -1;
        }
    }
    return 0;
}

int ctl_group_cfg_from_config(const config_t *cfg, int id, ctl_group_cfg_t *g, char *err,
                              size_t errlen)
{
    memset(g, 0, sizeof *g);
    const char *cc = "CHARGE_CONTROL";
    if (s_devices(config_str(cfg, cc, "Id/%d/Devices", id), id, g, err, errlen) != 0)
        return -1;
    int cv[CTL_GROUP_MAX][2];
    for (int i = 0; i < g->n; i++) {
        if (g->gw[i] >= g->n_gw)
            g->n_gw = g->gw[i] + 1;
        ctl_params_t py = {0};
        if (g->gw[i] ? s_remote(cfg, id, g, i, &py, err, errlen) != 0
                     : s_local(cfg, id, g, i, &py, err, errlen) != 0)
            return -1;
        g->max_charge_ca[i] = py.max_charge_ca;
        g->max_discharge_ca[i] = py.max_discharge_ca;
        g->min_current_ca[i] = py.min_current_ca;
        cv[i][0] = py.charge_voltage_cv;
        cv[i][1] = py.discharge_voltage_cv;
        if (s_same_battery(id, g, i, (const int(*)[2])cv, err, errlen) != 0)
            return -1;
    }
    ctl_group_params_defaults(&g->params);
    g->params.stage_hyst = config_int(cfg, cc, "Id/%d/Group/StageHysteresisPct", id) / 100.0;
    g->params.rotate_wh = (double)config_int(cfg, cc, "Id/%d/Group/RotateWh", id);
    g->params.soc_balance = config_bool(cfg, cc, "Id/%d/Group/SocBalance", id);
    return ctl_group_params_validate(&g->params, err, errlen);
}
