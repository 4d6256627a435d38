/*
 * ha_disc: Home Assistant discovery payloads. See ha_disc.h; the entity list is documented in
 * docs/mqtt.md ("Home Assistant discovery").
 */
#include "ha_disc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "bic_proto.h"

/* Every entity a BIC can have: used to build them and to remove them all. */
typedef struct {
    const char *component;
    const char *object; /* suffix of the object id bic<dev>_<object> */
} s_ent_t;

static const s_ent_t s_all[] = {
    {"sensor", "dc_voltage"},
    {"sensor", "dc_current"},
    {"sensor", "battery_power"},
    {"sensor", "ac_voltage"},
    {"sensor", "temperature"},
    {"sensor", "fan1"},
    {"sensor", "fan2"},
    {"sensor", "soc"},
    {"sensor", "eeprom_writes"},
    {"sensor", "charged_energy"},
    {"sensor", "discharged_energy"},
    {"sensor", "surplus_power"},
    {"sensor", "current_setpoint"},
    {"sensor", "state"},
    {"sensor", "charge_stage"},
    {"number", "curve_cc"},
    {"number", "curve_cv"},
    {"number", "curve_fv"},
    {"select", "npb_mode"},
    {"binary_sensor", "connectivity"},
    {"binary_sensor", "fault_fan"},
    {"binary_sensor", "fault_otp"},
    {"binary_sensor", "fault_otpHi"},
    {"binary_sensor", "fault_ovp"},
    {"binary_sensor", "fault_ovpHi"},
    {"binary_sensor", "fault_olp"},
    {"binary_sensor", "fault_short"},
    {"binary_sensor", "fault_acRange"},
    {"binary_sensor", "fault_dcOff"},
    {"binary_sensor", "fault_eeprom"},
    {"binary_sensor", "fault_limits"},
    {"switch", "output"},
    {"number", "charge_voltage"},
    {"number", "discharge_voltage"},
    {"number", "charge_current"},
    {"number", "discharge_current"},
    {"select", "direction"},
};

/* Fault names shown in Home Assistant, by seed key (the `can` fault is the connectivity
 * sensor instead). */
static const char *const s_fault_names[DEV_VIEW_FAULTS - 1] = {
    "Fan failure",     "Over temperature", "High temperature", "DC over voltage", "HV over voltage",
    "DC over current", "Short circuit",    "AC out of range",  "DC output off",   "EEPROM error"};

void ha_list_clear(ha_list_t *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->msgs[i].topic);
        free(list->msgs[i].payload);
    }
    free(list->msgs);
    list->msgs = NULL;
    list->count = list->cap = 0;
}

/* Takes ownership of topic and payload (frees them on failure). */
static int s_push(ha_list_t *list, char *topic, char *payload)
{
    if (!topic || !payload)
        goto fail;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 32;
        ha_msg_t *m = realloc(list->msgs, cap * sizeof *m);
        if (!m)
            goto fail;
        list->msgs = m;
        list->cap = cap;
    }
    list->msgs[list->count].topic = topic;
    list->msgs[list->count].payload = payload;
    list->count++;
    return 0;
fail:
    free(topic);
    free(payload);
    return -1;
}

static char *s_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *s_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static char *s_config_topic(const ha_ctx_t *ctx, const char *component, const char *object_id)
{
    return s_fmt("%s/%s/%s/%s/config", ctx->prefix, component, ctx->node, object_id);
}

static cJSON *s_origin(const ha_ctx_t *ctx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "bic2mqtt");
    cJSON_AddStringToObject(o, "sw", ctx->sw_version);
    return o;
}

static cJSON *s_bridge_device(const ha_ctx_t *ctx)
{
    cJSON *d = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(d, "ids");
    char *id = s_fmt("%s_bridge", ctx->node);
    cJSON_AddItemToArray(ids, cJSON_CreateString(id ? id : ""));
    free(id);
    cJSON_AddStringToObject(d, "name", "bic2mqtt bridge");
    cJSON_AddStringToObject(d, "mf", "bic2mqtt");
    cJSON_AddStringToObject(d, "mdl", "bic-mqtt-bridge");
    cJSON_AddStringToObject(d, "sw", ctx->sw_version);
    return d;
}

static cJSON *s_bic_device(const ha_ctx_t *ctx, const dev_view_t *dv)
{
    int dev = dev_view_dev(dv);
    cJSON *d = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(d, "ids");
    char *id = s_fmt("%s_bic_%d", ctx->node, dev);
    cJSON_AddItemToArray(ids, cJSON_CreateString(id ? id : ""));
    free(id);
    const char *model = dev_view_model(dv);
    char *name = s_fmt("%s #%d", model && *model ? model : "BIC-2200", dev);
    cJSON_AddStringToObject(d, "name", name ? name : "BIC-2200");
    free(name);
    cJSON_AddStringToObject(d, "mf", "Mean Well");
    cJSON_AddStringToObject(d, "mdl", model && *model ? model : "BIC-2200");
    const char *fw = dev_view_firmware(dv);
    if (fw && *fw)
        cJSON_AddStringToObject(d, "sw", fw);
    const char *sn = dev_view_serial(dv);
    if (sn && *sn)
        cJSON_AddStringToObject(d, "sn", sn);
    /* No via_device: retained configs reach Home Assistant in any order, and a via_device
     * whose parent is not registered yet is warned about (2025.1) and meant to stop working.
     * Each device block stands on its own. */
    return d;
}

static cJSON *s_avail_entry(const char *topic, const char *on, const char *off)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "topic", topic);
    cJSON_AddStringToObject(a, "payload_available", on);
    cJSON_AddStringToObject(a, "payload_not_available", off);
    return a;
}

/* Availability: the bridge's LWT, and (with_device) the device's own reachability; both
 * must say available (mode all). */
static void s_add_avail(cJSON *e, const ha_ctx_t *ctx, int dev, bool with_device)
{
    cJSON *list = cJSON_AddArrayToObject(e, "avty");
    char *t = s_fmt("%s/sys/state", ctx->topic_main);
    cJSON_AddItemToArray(list, s_avail_entry(t ? t : "", ctx->avail_online, ctx->avail_offline));
    free(t);
    if (with_device) {
        t = s_fmt("%s/inv/%d/availability", ctx->topic_main, dev);
        cJSON_AddItemToArray(list, s_avail_entry(t ? t : "", "online", "offline"));
        free(t);
        cJSON_AddStringToObject(e, "avty_mode", "all");
    }
}

/* Common part of one BIC entity. `sub` is the state topic's last segment (NULL: none). */
static cJSON *s_bic_entity(const ha_ctx_t *ctx, const dev_view_t *dv, const char *object,
                           const char *name, const char *sub, const char *tpl)
{
    int dev = dev_view_dev(dv);
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return NULL;
    cJSON_AddStringToObject(e, "name", name);
    char *uid = s_fmt("%s_bic%d_%s", ctx->node, dev, object);
    cJSON_AddStringToObject(e, "uniq_id", uid ? uid : "");
    free(uid);
    if (sub) {
        char *st = s_fmt("%s/inv/%d/%s", ctx->topic_main, dev, sub);
        cJSON_AddStringToObject(e, "stat_t", st ? st : "");
        free(st);
    }
    if (tpl)
        cJSON_AddStringToObject(e, "val_tpl", tpl);
    s_add_avail(e, ctx, dev, true);
    cJSON_AddItemToObject(e, "dev", s_bic_device(ctx, dv));
    cJSON_AddItemToObject(e, "o", s_origin(ctx));
    return e;
}

static int s_emit(const ha_ctx_t *ctx, ha_list_t *out, const char *component, int dev,
                  const char *object, cJSON *e)
{
    if (!e)
        return -1;
    char *payload = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    char *oid = dev >= 0 ? s_fmt("bic%d_%s", dev, object) : s_fmt("bridge_%s", object);
    char *topic = oid ? s_config_topic(ctx, component, oid) : NULL;
    free(oid);
    return s_push(out, topic, payload);
}

static void s_opt_str(cJSON *e, const char *key, const char *value)
{
    if (value)
        cJSON_AddStringToObject(e, key, value);
}

/* A measurement sensor on a JSON key of a seed topic. */
static int s_sensor(const ha_ctx_t *ctx, const dev_view_t *dv, ha_list_t *out, const char *object,
                    const char *name, const char *sub, const char *key, const char *dev_cla,
                    const char *stat_cla, const char *unit, const char *ent_cat, int precision)
{
    char *tpl = s_fmt("{{ value_json.%s }}", key);
    cJSON *e = s_bic_entity(ctx, dv, object, name, sub, tpl);
    free(tpl);
    if (!e)
        return -1;
    s_opt_str(e, "dev_cla", dev_cla);
    s_opt_str(e, "stat_cla", stat_cla);
    s_opt_str(e, "unit_of_meas", unit);
    s_opt_str(e, "ent_cat", ent_cat);
    if (precision >= 0)
        cJSON_AddNumberToObject(e, "sug_dsp_prc", precision);
    return s_emit(ctx, out, "sensor", dev_view_dev(dv), object, e);
}

/* The range a number entity announces: every value the device's register can hold, so that
 * Home Assistant accepts any state (it marks a state outside min/max as an error and shows
 * the entity unknown). A factory-state unit holds values outside the configured [DEVICE]
 * limits (19 V discharge voltage with 24-28 V configured), so this is the model's table
 * over both modes, joined with the effective limits; a write outside the effective limits
 * is still refused by the gateway. Without a known model: the effective limits. */
static void s_number_range(const dev_view_t *dv, const char *limit, double *lo, double *hi)
{
    const bic_variant_t *v = bic_variant_get(bic_family_bic(), dev_view_variant(dv));
    for (int mode = BIC_MODE_AUTO; v && mode <= BIC_MODE_BATTERY; mode++) {
        bic_limits_t l;
        if (bic_limits_get(v, (bic_mode_t)mode, BIC_MIN_1PCT, &l) != BIC_OK)
            continue;
        const bic_range_t *r = strcmp(limit, "vout_v") == 0       ? &l.vout
                               : strcmp(limit, "iout_a") == 0     ? &l.iout
                               : strcmp(limit, "rev_vout_v") == 0 ? &l.rev_vout
                                                                  : &l.rev_iout;
        *lo = fmin(*lo, r->min_raw / 100.0);
        *hi = fmax(*hi, r->max_raw / 100.0);
    }
}

static int s_number(const ha_ctx_t *ctx, const dev_view_t *dv, ha_list_t *out, const char *object,
                    const char *name, const char *limit, const char *cmd, const char *key,
                    const char *dev_cla, const char *unit)
{
    double lo, hi;
    if (!dev_view_limit(dv, limit, &lo, &hi))
        return 0; /* no limits from the gateway yet: the entity appears once they are known */
    if (!dev_view_is_npb(dv)) /* an NPB's limits are its model's ranges already */
        s_number_range(dv, limit, &lo, &hi);
    int dev = dev_view_dev(dv);
    char *tpl = s_fmt("{{ value_json.%s }}", key);
    cJSON *e = s_bic_entity(ctx, dv, object, name, "state", tpl);
    free(tpl);
    if (!e)
        return -1;
    char *ct = s_fmt("%s/inv/%d/%s/set", ctx->topic_main, dev, cmd);
    cJSON_AddStringToObject(e, "cmd_t", ct ? ct : "");
    free(ct);
    cJSON_AddNumberToObject(e, "min", lo);
    cJSON_AddNumberToObject(e, "max", hi);
    cJSON_AddNumberToObject(e, "step", 0.01);
    cJSON_AddStringToObject(e, "mode", "box");
    cJSON_AddStringToObject(e, "dev_cla", dev_cla);
    cJSON_AddStringToObject(e, "unit_of_meas", unit);
    cJSON_AddStringToObject(e, "ent_cat", "config");
    cJSON_AddNumberToObject(e, "qos", 1);
    cJSON_AddBoolToObject(e, "ret", false);
    return s_emit(ctx, out, "number", dev, object, e);
}

/* Common part of a bridge entity on `state_topic` (NULL sub: <T> itself). */
static cJSON *s_bridge_entity(const ha_ctx_t *ctx, const char *object, const char *name,
                              const char *sub)
{
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return NULL;
    cJSON_AddStringToObject(e, "name", name);
    char *uid = s_fmt("%s_bridge_%s", ctx->node, object);
    cJSON_AddStringToObject(e, "uniq_id", uid ? uid : "");
    free(uid);
    char *st = sub ? s_fmt("%s/%s", ctx->topic_main, sub) : strdup(ctx->topic_main);
    cJSON_AddStringToObject(e, "stat_t", st ? st : "");
    free(st);
    cJSON_AddStringToObject(e, "ent_cat", "diagnostic");
    cJSON_AddItemToObject(e, "dev", s_bridge_device(ctx));
    cJSON_AddItemToObject(e, "o", s_origin(ctx));
    return e;
}

int ha_bridge_msgs(const ha_ctx_t *ctx, ha_list_t *out)
{
    int rc = 0;
    /* The bridge itself: its LWT, so it can say "disconnected" (no availability of its own). */
    cJSON *e = s_bridge_entity(ctx, "running", "Bridge running", "sys/state");
    if (e) {
        cJSON_AddStringToObject(e, "pl_on", ctx->avail_online);
        cJSON_AddStringToObject(e, "pl_off", ctx->avail_offline);
        cJSON_AddStringToObject(e, "dev_cla", "connectivity");
    }
    rc |= s_emit(ctx, out, "binary_sensor", -1, "running", e);

    /* The gateway as the bridge hears it, from the app JSON on <T>. */
    e = s_bridge_entity(ctx, "gateway", "Gateway", NULL);
    if (e) {
        cJSON_AddStringToObject(e, "val_tpl", "{{ 'ON' if value_json.gateway else 'OFF' }}");
        cJSON_AddStringToObject(e, "dev_cla", "connectivity");
        s_add_avail(e, ctx, -1, false);
    }
    rc |= s_emit(ctx, out, "binary_sensor", -1, "gateway", e);
    e = s_bridge_entity(ctx, "bus", "CAN bus", NULL);
    if (e) {
        cJSON_AddStringToObject(e, "val_tpl", "{{ value_json.bus }}");
        cJSON_AddStringToObject(e, "dev_cla", "enum");
        cJSON *opts = cJSON_AddArrayToObject(e, "ops");
        const char *states[] = {"up", "down", "unknown"};
        for (size_t i = 0; i < 3; i++)
            cJSON_AddItemToArray(opts, cJSON_CreateString(states[i]));
        s_add_avail(e, ctx, -1, false);
    }
    rc |= s_emit(ctx, out, "sensor", -1, "bus", e);
    return rc ? -1 : 0;
}

/* A select of two options on state KEY, commanded on <T>/inv/<id>/CMD/set. */
static int s_select(const ha_ctx_t *ctx, const dev_view_t *dv, ha_list_t *out, const char *object,
                    const char *name, const char *key, const char *cmd, const char *opt1,
                    const char *opt2)
{
    char *tpl = s_fmt("{{ value_json.%s }}", key);
    cJSON *e = tpl ? s_bic_entity(ctx, dv, object, name, "state", tpl) : NULL;
    free(tpl);
    if (e) {
        char *ct = s_fmt("%s/inv/%d/%s/set", ctx->topic_main, dev_view_dev(dv), cmd);
        cJSON_AddStringToObject(e, "cmd_t", ct ? ct : "");
        free(ct);
        cJSON *opts = cJSON_AddArrayToObject(e, "ops");
        cJSON_AddItemToArray(opts, cJSON_CreateString(opt1));
        cJSON_AddItemToArray(opts, cJSON_CreateString(opt2));
        cJSON_AddStringToObject(e, "ent_cat", "config");
        cJSON_AddNumberToObject(e, "qos", 1);
        cJSON_AddBoolToObject(e, "ret", false);
    }
    return s_emit(ctx, out, "select", dev_view_dev(dv), object, e);
}

/* An NPB charger's entities: its charge stage, its charge curve and its mode. */
static int s_npb_msgs(const ha_ctx_t *ctx, const dev_view_t *dv, ha_list_t *out)
{
    int rc = 0;
    cJSON *e =
        s_bic_entity(ctx, dv, "charge_stage", "Charge stage", "state", "{{ value_json.npbStage }}");
    if (e) {
        cJSON_AddStringToObject(e, "dev_cla", "enum");
        cJSON *opts = cJSON_AddArrayToObject(e, "ops");
        const char *stages[] = {"idle", "cc", "cv", "float", "full", "timeout", "no_battery"};
        for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
            cJSON_AddItemToArray(opts, cJSON_CreateString(stages[i]));
    }
    rc |= s_emit(ctx, out, "sensor", dev_view_dev(dv), "charge_stage", e);
    /* the curve within the model's ranges (the gateway's limits: iout_a and vout_v) */
    rc |= s_number(ctx, dv, out, "curve_cc", "Charge curve current", "iout_a", "npbCurveCC",
                   "npbCurveCC", "current", "A");
    rc |= s_number(ctx, dv, out, "curve_cv", "Charge curve boost voltage", "vout_v", "npbCurveCV",
                   "npbCurveCV", "voltage", "V");
    rc |= s_number(ctx, dv, out, "curve_fv", "Charge curve float voltage", "vout_v", "npbCurveFV",
                   "npbCurveFV", "voltage", "V");
    rc |= s_select(ctx, dv, out, "npb_mode", "Charger mode", "mode", "npbMode", "charger", "psu");
    return rc;
}

int ha_device_msgs(const ha_ctx_t *ctx, const dev_view_t *dv, ha_list_t *out)
{
    int dev = dev_view_dev(dv);
    int rc = 0;
    rc |= s_sensor(ctx, dv, out, "dc_voltage", "DC voltage", "state", "dcBatV", "voltage",
                   "measurement", "V", NULL, 2);
    rc |= s_sensor(ctx, dv, out, "dc_current", "DC current", "charge", "chargeA", "current",
                   "measurement", "A", NULL, 1);
    rc |= s_sensor(ctx, dv, out, "battery_power", "Battery power", "charge", "chargeP", "power",
                   "measurement", "W", NULL, 0);
    rc |= s_sensor(ctx, dv, out, "ac_voltage", "AC voltage", "state", "acGridV", "voltage",
                   "measurement", "V", NULL, 0);
    rc |= s_sensor(ctx, dv, out, "temperature", "Temperature", "state", "tempC", "temperature",
                   "measurement", "°C", "diagnostic", 0);
    if (dev_view_has_fans(dv)) {
        rc |= s_sensor(ctx, dv, out, "fan1", "Fan 1", "state", "fan[0]", NULL, "measurement", "rpm",
                       "diagnostic", 0);
        rc |= s_sensor(ctx, dv, out, "fan2", "Fan 2", "state", "fan[1]", NULL, "measurement", "rpm",
                       "diagnostic", 0);
    }
    if (dev_view_has_soc(dv))
        rc |= s_sensor(ctx, dv, out, "soc", "State of charge", "state", "capBatPc", "battery",
                       "measurement", "%", NULL, 0);
    rc |= s_sensor(ctx, dv, out, "eeprom_writes", "EEPROM writes", "info", "cntWrite", NULL,
                   "total_increasing", NULL, "diagnostic", -1);
    rc |= s_sensor(ctx, dv, out, "charged_energy", "Charged energy", "charge", "chargedTotalKWh",
                   "energy", "total_increasing", "kWh", NULL, 3);
    rc |= s_sensor(ctx, dv, out, "discharged_energy", "Discharged energy", "charge",
                   "dischargedTotalKWh", "energy", "total_increasing", "kWh", NULL, 3);
    rc |= s_sensor(ctx, dv, out, "surplus_power", "Surplus power", "charge", "surplusP", "power",
                   "measurement", "W", NULL, 0);
    rc |= s_sensor(ctx, dv, out, "current_setpoint", "Current setpoint", "charge", "chargeSetA",
                   "current", "measurement", "A", "diagnostic", 2);

    if (dev_view_is_npb(dv))
        rc |= s_npb_msgs(ctx, dv, out);

    /* Operating state as an enum sensor: no state_class, options listed. */
    cJSON *e =
        s_bic_entity(ctx, dv, "state", "Operating state", "state", "{{ value_json.onlMode }}");
    if (e) {
        cJSON_AddStringToObject(e, "dev_cla", "enum");
        cJSON *opts = cJSON_AddArrayToObject(e, "ops");
        const char *modes[] = {"offline", "init", "idle", "running"};
        for (size_t i = 0; i < 4; i++)
            cJSON_AddItemToArray(opts, cJSON_CreateString(modes[i]));
    }
    rc |= s_emit(ctx, out, "sensor", dev, "state", e);

    /* Connectivity: only the bridge's LWT gates it, so it can say "disconnected". */
    e = cJSON_CreateObject();
    if (e) {
        cJSON_AddStringToObject(e, "name", "Connectivity");
        char *uid = s_fmt("%s_bic%d_connectivity", ctx->node, dev);
        cJSON_AddStringToObject(e, "uniq_id", uid ? uid : "");
        free(uid);
        char *st = s_fmt("%s/inv/%d/availability", ctx->topic_main, dev);
        cJSON_AddStringToObject(e, "stat_t", st ? st : "");
        free(st);
        cJSON_AddStringToObject(e, "pl_on", "online");
        cJSON_AddStringToObject(e, "pl_off", "offline");
        cJSON_AddStringToObject(e, "dev_cla", "connectivity");
        cJSON_AddStringToObject(e, "ent_cat", "diagnostic");
        s_add_avail(e, ctx, dev, false);
        cJSON_AddItemToObject(e, "dev", s_bic_device(ctx, dv));
        cJSON_AddItemToObject(e, "o", s_origin(ctx));
    }
    rc |= s_emit(ctx, out, "binary_sensor", dev, "connectivity", e);

    for (int i = 0; i < DEV_VIEW_FAULTS - 1; i++) {
        char *object = s_fmt("fault_%s", dev_view_fault_keys[i]);
        char *tpl =
            s_fmt("{{ 'ON' if value_json.%s.active == 1 else 'OFF' }}", dev_view_fault_keys[i]);
        e = object && tpl ? s_bic_entity(ctx, dv, object, s_fault_names[i], "fault", tpl) : NULL;
        if (e) {
            cJSON_AddStringToObject(e, "dev_cla", "problem");
            cJSON_AddStringToObject(e, "ent_cat", "diagnostic");
        }
        rc |= object ? s_emit(ctx, out, "binary_sensor", dev, object, e) : -1;
        free(object);
        free(tpl);
    }

    e = s_bic_entity(ctx, dv, "fault_limits", "Configured limits not applied", "fault",
                     "{{ 'ON' if value_json.limits.active == 1 else 'OFF' }}");
    if (e) {
        cJSON_AddStringToObject(e, "dev_cla", "problem");
        cJSON_AddStringToObject(e, "ent_cat", "diagnostic");
    }
    rc |= s_emit(ctx, out, "binary_sensor", dev, "fault_limits", e);

    e = s_bic_entity(ctx, dv, "output", "Output", "state", "{{ value_json.opMode }}");
    if (e) {
        char *ct = s_fmt("%s/inv/%d/state/set", ctx->topic_main, dev);
        cJSON_AddStringToObject(e, "cmd_t", ct ? ct : "");
        free(ct);
        cJSON_AddStringToObject(e, "pl_on", "1");
        cJSON_AddStringToObject(e, "pl_off", "0");
        cJSON_AddStringToObject(e, "stat_on", "1");
        cJSON_AddStringToObject(e, "stat_off", "0");
        cJSON_AddBoolToObject(e, "opt", false);
        cJSON_AddNumberToObject(e, "qos", 1);
        cJSON_AddBoolToObject(e, "ret", false);
    }
    rc |= s_emit(ctx, out, "switch", dev, "output", e);

    rc |= s_number(ctx, dv, out, "charge_voltage", "Charge voltage", "vout_v", "chargeV", "chargeV",
                   "voltage", "V");
    if (!dev_view_is_npb(dv))
        rc |= s_number(ctx, dv, out, "discharge_voltage", "Discharge voltage", "rev_vout_v",
                       "dischargeV", "dischargeV", "voltage", "V");
    rc |= s_number(ctx, dv, out, "charge_current", "Charge current", "iout_a", "chargeLimA",
                   "chargeLimA", "current", "A");
    if (dev_view_is_npb(dv)) /* a charger: no discharge side, no direction */
        return rc ? -1 : 0;
    rc |= s_number(ctx, dv, out, "discharge_current", "Discharge current", "rev_iout_a",
                   "dischargeLimA", "dischargeLimA", "current", "A");

    rc |= s_select(ctx, dv, out, "direction", "Direction", "direction", "direction", "charge",
                   "discharge");
    return rc ? -1 : 0;
}

int ha_device_remove_msgs(const ha_ctx_t *ctx, int dev, ha_list_t *out)
{
    for (size_t i = 0; i < sizeof s_all / sizeof s_all[0]; i++) {
        char *oid = s_fmt("bic%d_%s", dev, s_all[i].object);
        char *topic = oid ? s_config_topic(ctx, s_all[i].component, oid) : NULL;
        free(oid);
        if (s_push(out, topic, strdup("")) != 0)
            return -1;
    }
    return 0;
}

bool ha_topic_dev(const ha_ctx_t *ctx, const char *topic, int *dev)
{
    size_t pl = strlen(ctx->prefix);
    if (strncmp(topic, ctx->prefix, pl) != 0 || topic[pl] != '/')
        return false;
    const char *comp = topic + pl + 1;
    const char *slash = strchr(comp, '/');
    if (!slash)
        return false;
    size_t nl = strlen(ctx->node);
    if (strncmp(slash + 1, ctx->node, nl) != 0 || slash[1 + nl] != '/')
        return false;
    const char *obj = slash + 2 + nl;
    const char *end = strchr(obj, '/');
    if (!end || strcmp(end, "/config") != 0)
        return false;
    if (strncmp(obj, "bridge_", 7) == 0) {
        *dev = -1;
        return true;
    }
    int id = 0, digits = 0;
    if (strncmp(obj, "bic", 3) != 0)
        return false;
    for (obj += 3; *obj >= '0' && *obj <= '9' && digits < 3; obj++, digits++)
        id = id * 10 + (*obj - '0');
    if (!digits || *obj != '_' || id > 63)
        return false;
    *dev = id;
    return true;
}
