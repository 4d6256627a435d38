/*
 * gw_device: device identity, effective limits, telemetry cache and their JSON forms.
 */
#include "gw_device.h"

#include "gw_npb.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const uint16_t s_tregs[TREG_COUNT] = {
    [TREG_READ_VOUT] = BIC_CMD_READ_VOUT,
    [TREG_READ_IOUT] = BIC_CMD_READ_IOUT,
    [TREG_OPERATION] = BIC_CMD_OPERATION,
    [TREG_DIRECTION] = BIC_CMD_DIRECTION_CTRL,
    [TREG_FAULT] = BIC_CMD_FAULT_STATUS,
    [TREG_IOUT_SET] = BIC_CMD_IOUT_SET,
    [TREG_REV_IOUT_SET] = BIC_CMD_REVERSE_IOUT_SET,
    [TREG_CHG_STATUS] = NPB_CMD_CHG_STATUS,
    [TREG_CURVE_CC] = NPB_CMD_CURVE_CC,
    [TREG_READ_VIN] = BIC_CMD_READ_VIN,
    [TREG_TEMP] = BIC_CMD_READ_TEMPERATURE_1,
    [TREG_FAN1] = BIC_CMD_READ_FAN_SPEED_1,
    [TREG_FAN2] = BIC_CMD_READ_FAN_SPEED_2,
    [TREG_SYSSTATUS] = BIC_CMD_SYSTEM_STATUS,
    [TREG_VOUT_SET] = BIC_CMD_VOUT_SET,
    [TREG_REV_VOUT_SET] = BIC_CMD_REVERSE_VOUT_SET,
    [TREG_CURVE_CV] = NPB_CMD_CURVE_CV,
    [TREG_CURVE_FV] = NPB_CMD_CURVE_FV,
    [TREG_CURVE_CONFIG] = NPB_CMD_CURVE_CONFIG,
};

uint16_t gw_treg_cmd(int slot)
{
    return (slot >= 0 && slot < TREG_COUNT) ? s_tregs[slot] : 0xFFFF;
}

int gw_treg_slot(uint16_t cmd)
{
    for (int i = 0; i < TREG_COUNT; i++)
        if (s_tregs[i] == cmd)
            return i;
    return -1;
}

const bic_family_t *gw_dev_family(int dev)
{
    return GW_DEV_IS_NPB(dev) ? bic_family_get(BIC_FAMILY_NPB) : bic_family_bic();
}

uint8_t gw_dev_bus_addr(int dev)
{
    return (uint8_t)(GW_DEV_IS_NPB(dev) ? dev - GW_NPB_BASE : dev);
}

const bic_cmd_t *gw_dev_cmd(int dev, uint16_t code)
{
    return bic_cmd_by_code(gw_dev_family(dev), code);
}

const bic_cmd_t *gw_cmd_any(uint16_t code)
{
    const bic_cmd_t *c = bic_cmd_by_code(bic_family_bic(), code);
    return c ? c : bic_cmd_by_code(bic_family_get(BIC_FAMILY_NPB), code);
}

int gw_type_variant(const char *type)
{
    if (!type || !*type)
        return 0;
    static const struct {
        const char *name;
        int v;
    } t[] = {
        {"BIC2200-12CAN", 12}, {"BIC2200-24CAN", 24}, {"BIC2200-48CAN", 48}, {"BIC2200-96CAN", 96}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcasecmp(type, t[i].name) == 0)
            return t[i].v;
    return -1;
}

static void s_clip(bic_range_t *r, int lo, int hi)
{
    if (lo > 0 && lo > r->min_raw)
        r->min_raw = (uint16_t)lo;
    if (hi > 0 && hi < r->max_raw)
        r->max_raw = (uint16_t)hi;
}

int gw_dev_compute_limits(gw_dev_t *d, char *err, size_t errlen)
{
    if (GW_DEV_IS_NPB(d->addr))
        return gw_npb_compute_limits(d, err, errlen);
    if (!d->model.var) {
        snprintf(err, errlen, "no limit table for model '%s'", d->model.model);
        return -1;
    }
    bic_limits_t lim;
    if (bic_limits_get(d->model.var, d->mode, BIC_MIN_1PCT, &lim) != BIC_OK) {
        snprintf(err, errlen, "no limit table for model '%s' in %s mode", d->model.model,
                 bic_mode_name(d->mode));
        return -1;
    }
    if (d->cfg.present) {
        /* the battery's window on both sides of both voltage set-points */
        s_clip(&lim.vout, d->cfg.discharge_v_raw, d->cfg.charge_v_raw);
        s_clip(&lim.rev_vout, d->cfg.discharge_v_raw, d->cfg.charge_v_raw);
        s_clip(&lim.iout, d->cfg.min_current_raw, d->cfg.max_charge_raw);
        s_clip(&lim.rev_iout, d->cfg.min_current_raw, d->cfg.max_discharge_raw);
    }
    const bic_range_t *rs[4] = {&lim.vout, &lim.iout, &lim.rev_vout, &lim.rev_iout};
    static const char *names[4] = {"VOUT_SET", "IOUT_SET", "REVERSE_VOUT_SET", "REVERSE_IOUT_SET"};
    for (int i = 0; i < 4; i++) {
        if (rs[i]->min_raw > rs[i]->max_raw) {
            snprintf(err, errlen, "configured limits leave no valid %s for %s (%.2f > %.2f)",
                     names[i], d->model.model, rs[i]->min_raw / 100.0, rs[i]->max_raw / 100.0);
            return -1;
        }
    }
    d->limits = lim;
    return 0;
}

void gw_dev_reg_range(const gw_dev_t *d, const bic_cmd_t *c, int32_t *min, int32_t *max)
{
    if (GW_DEV_IS_NPB(d->addr)) {
        gw_npb_reg_range(d, c->code, min, max);
        return;
    }
    const bic_range_t *r = NULL;
    switch (c->code) {
    case BIC_CMD_VOUT_SET:
        r = &d->limits.vout;
        break;
    case BIC_CMD_IOUT_SET:
        r = &d->limits.iout;
        break;
    case BIC_CMD_REVERSE_VOUT_SET:
        r = &d->limits.rev_vout;
        break;
    case BIC_CMD_REVERSE_IOUT_SET:
        r = &d->limits.rev_iout;
        break;
    case BIC_CMD_OPERATION:
    case BIC_CMD_DIRECTION_CTRL:
    case BIC_CMD_BIDIRECTIONAL_CONFIG:
        *min = 0;
        *max = 1;
        return;
    case BIC_CMD_SYSTEM_CONFIG:
        /* CAN_CTRL, OPERATION_INIT 00-10, EEP_CONFIG 00-10, EEP_OFF (gw_dev_check_value
         * refuses the reserved bits and field values in between) */
        *min = 0;
        *max = 0x0605;
        return;
    default:
        *min = 0;
        *max = c->len == 1 ? 0xFF : 0xFFFF;
        return;
    }
    *min = r->min_raw;
    *max = r->max_raw;
}

int gw_dev_check_value(const gw_dev_t *d, const bic_cmd_t *c, int32_t raw, char *why, size_t whylen)
{
    if (GW_DEV_IS_NPB(d->addr))
        return gw_npb_check_value(d, c, raw, why, whylen);
    int32_t lo, hi;
    gw_dev_reg_range(d, c, &lo, &hi);
    if (raw < lo || raw > hi) {
        snprintf(why, whylen, "%s raw %d is outside %d-%d", c->name, raw, lo, hi);
        return -1;
    }
    if (c->code == BIC_CMD_SYSTEM_CONFIG) {
        bool reserved_bits = (raw & ~0x0707) != 0;
        bool opinit = ((raw >> 1) & 3) == 3, eepcfg = ((raw >> 8) & 3) == 3;
        if (reserved_bits || opinit || eepcfg) {
            snprintf(why, whylen,
                     "SYSTEM_CONFIG 0x%04X has %s; allowed: bit 0 CAN_CTRL, bits 2:1 "
                     "OPERATION_INIT 00/01/10, bits 9:8 EEP_CONFIG 00/01/10, bit 10 EEP_OFF",
                     (unsigned)raw,
                     reserved_bits ? "reserved bits set"
                     : opinit      ? "OPERATION_INIT 11 (reserved)"
                                   : "EEP_CONFIG 11 (reserved)");
            return -1;
        }
    }
    return 0;
}

static void s_hex(const uint8_t *data, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        sprintf(out + 2 * i, "%02X", data[i]);
    out[2 * len] = '\0';
}

cJSON *gw_reg_json(const gw_dev_t *d, const bic_cmd_t *c, const uint8_t *data, size_t len)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    char hex[2 * BIC_DATA_MAX + 1];
    if (len > BIC_DATA_MAX)
        len = BIC_DATA_MAX;
    if (c->type == BIC_TYPE_ASCII) {
        char txt[BIC_DATA_MAX + 1];
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
            txt[n++] = (data[i] >= 0x20 && data[i] < 0x7f) ? (char)data[i] : ' ';
        txt[n] = '\0';
        s_hex(data, len, hex);
        cJSON_AddStringToObject(o, "value", txt);
        cJSON_AddStringToObject(o, "raw", hex);
        return o;
    }
    if (c->type == BIC_TYPE_BYTES) {
        s_hex(data, len, hex);
        cJSON_AddStringToObject(o, "value", hex);
        cJSON_AddStringToObject(o, "raw", hex);
        if (c->code == BIC_CMD_MFR_REVISION_B0B5) {
            bic_revision_t rev;
            if (bic_revision_decode(data, len, &rev) == BIC_OK) {
                cJSON *m = cJSON_AddArrayToObject(o, "mcu");
                for (int i = 0; i < rev.nmcu; i++)
                    cJSON_AddItemToArray(m, cJSON_CreateString(rev.mcu[i]));
            }
        }
        return o;
    }
    int32_t raw = 0;
    if (bic_data_to_raw(c, data, len, &raw) != BIC_OK) {
        s_hex(data, len, hex);
        cJSON_AddNullToObject(o, "value");
        cJSON_AddStringToObject(o, "raw", hex);
        return o;
    }
    if (c->type == BIC_TYPE_BITS) {
        cJSON_AddNumberToObject(o, "value", raw);
        cJSON_AddNumberToObject(o, "raw", raw);
        bic_field_t f[16];
        int n = bic_fields(d ? gw_dev_family(d->addr) : bic_family_bic(), c->code, (uint16_t)raw, f,
                           16);
        if (n > 0) {
            cJSON *b = cJSON_AddObjectToObject(o, "bits");
            for (int i = 0; i < n; i++) {
                if (f[i].is_flag)
                    cJSON_AddBoolToObject(b, f[i].name, f[i].value != 0);
                else if (f[i].text)
                    cJSON_AddStringToObject(b, f[i].name, f[i].text);
                else
                    cJSON_AddNumberToObject(b, f[i].name, f[i].value);
            }
        }
        return o;
    }
    double v = bic_raw_to_value(c, d ? &d->scaling : NULL, raw);
    /* round to the register's resolution so 26.41 does not print as 26.410000000000001 */
    double f = bic_scaling_factor(d ? &d->scaling : NULL, c->scale);
    if (c->scale != BIC_SCALE_NONE && f > 0 && f < 1) {
        double k = 1.0 / f;
        v = round(v * k) / k;
    }
    cJSON_AddNumberToObject(o, "value", v);
    if (c->unit)
        cJSON_AddStringToObject(o, "unit", c->unit);
    cJSON_AddNumberToObject(o, "raw", raw);
    return o;
}

bool gw_dev_known(const gw_dev_t *d, uint16_t cmd, int64_t now, int64_t max_age_us,
                  int64_t foreign_at, int32_t *raw)
{
    int slot = gw_treg_slot(cmd);
    if (slot < 0 || !d->online || !d->identified || d->back_at)
        return false;
    const gw_cached_t *c = &d->cache[slot];
    if (!c->valid || c->written || c->at < d->known_since || now - c->at > max_age_us)
        return false;
    if (foreign_at != INT64_MIN &&
        (c->at <= foreign_at || now - foreign_at < GW_KNOWN_FOREIGN_HOLD_US))
        return false;
    *raw = c->raw;
    return true;
}

double gw_dev_value(const gw_dev_t *d, int slot)
{
    if (slot < 0 || slot >= TREG_COUNT || !d->cache[slot].valid)
        return NAN;
    const bic_cmd_t *c = gw_cmd_any(s_tregs[slot]);
    if (!c)
        return NAN;
    double v = bic_raw_to_value(c, &d->scaling, d->cache[slot].raw);
    double f = bic_scaling_factor(&d->scaling, c->scale);
    if (c->scale != BIC_SCALE_NONE && f > 0 && f < 1)
        v = round(v / f) * f;
    return v;
}

static void s_num_or_null(cJSON *o, const char *k, double v, double step)
{
    if (isnan(v)) {
        cJSON_AddNullToObject(o, k);
        return;
    }
    if (step > 0)
        v = round(v / step) * step;
    cJSON_AddNumberToObject(o, k, v);
}

cJSON *gw_dev_limits_json(const gw_dev_t *d)
{
    cJSON *l = cJSON_CreateObject();
    const bic_range_t *rs[4] = {&d->limits.vout, &d->limits.iout, &d->limits.rev_vout,
                                &d->limits.rev_iout};
    static const char *names[4] = {"vout_v", "iout_a", "rev_vout_v", "rev_iout_a"};
    for (int i = 0; i < 4; i++) {
        cJSON *a = cJSON_AddArrayToObject(l, names[i]);
        cJSON_AddItemToArray(a, cJSON_CreateNumber(rs[i]->min_raw / 100.0));
        cJSON_AddItemToArray(a, cJSON_CreateNumber(rs[i]->max_raw / 100.0));
    }
    return l;
}

cJSON *gw_dev_telemetry(const gw_dev_t *d, int64_t now_us, int64_t wall_ms)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "v", 1);
    cJSON_AddNumberToObject(t, "dev", d->addr);
    cJSON_AddNumberToObject(t, "ts_ms", (double)wall_ms);
    cJSON_AddBoolToObject(t, "online", d->online);
    if (d->identified)
        cJSON_AddStringToObject(t, "model", d->model.model);
    else
        cJSON_AddNullToObject(t, "model");
    if (!d->online && d->offline_reason[0])
        cJSON_AddStringToObject(t, "reason", d->offline_reason);
    double v = gw_dev_value(d, TREG_READ_VOUT), a = gw_dev_value(d, TREG_READ_IOUT);
    s_num_or_null(t, "dc_v", v, 0.01);
    s_num_or_null(t, "dc_a", a, 0.01);
    s_num_or_null(t, "dc_w", v * a, 0.1);
    s_num_or_null(t, "ac_v", gw_dev_value(d, TREG_READ_VIN), 0.1);
    s_num_or_null(t, "temp_c", gw_dev_value(d, TREG_TEMP), 0.1);
    if (d->fans && d->cache[TREG_FAN1].valid) {
        cJSON *f = cJSON_AddArrayToObject(t, "fans");
        cJSON_AddItemToArray(f, cJSON_CreateNumber(d->cache[TREG_FAN1].raw));
        if (d->cache[TREG_FAN2].valid)
            cJSON_AddItemToArray(f, cJSON_CreateNumber(d->cache[TREG_FAN2].raw));
    } else {
        cJSON_AddNullToObject(t, "fans");
    }
    if (d->cache[TREG_OPERATION].valid)
        cJSON_AddNumberToObject(t, "operation", d->cache[TREG_OPERATION].raw);
    else
        cJSON_AddNullToObject(t, "operation");
    if (d->cache[TREG_DIRECTION].valid)
        cJSON_AddStringToObject(t, "direction",
                                d->cache[TREG_DIRECTION].raw ? "discharge" : "charge");
    else
        cJSON_AddNullToObject(t, "direction");
    if (d->identified)
        cJSON_AddStringToObject(t, "mode", bic_mode_name(d->mode));
    else
        cJSON_AddNullToObject(t, "mode");
    cJSON *sp = cJSON_AddObjectToObject(t, "setpoints");
    s_num_or_null(sp, "vout_v", gw_dev_value(d, TREG_VOUT_SET), 0.01);
    s_num_or_null(sp, "iout_a", gw_dev_value(d, TREG_IOUT_SET), 0.01);
    s_num_or_null(sp, "rev_vout_v", gw_dev_value(d, TREG_REV_VOUT_SET), 0.01);
    s_num_or_null(sp, "rev_iout_a", gw_dev_value(d, TREG_REV_IOUT_SET), 0.01);
    const bic_family_t *fam = gw_dev_family(d->addr);
    if (d->cache[TREG_FAULT].valid) {
        cJSON *f = cJSON_AddObjectToObject(t, "fault");
        uint16_t raw = (uint16_t)d->cache[TREG_FAULT].raw;
        cJSON_AddNumberToObject(f, "raw", raw);
        bic_field_t fl[16];
        int n = bic_fields(fam, BIC_CMD_FAULT_STATUS, raw, fl, 16);
        for (int i = 0; i < n; i++)
            cJSON_AddBoolToObject(f, fl[i].name, fl[i].value != 0);
    } else {
        cJSON_AddNullToObject(t, "fault");
    }
    if (d->cache[TREG_SYSSTATUS].valid) {
        cJSON *s = cJSON_AddObjectToObject(t, "status");
        uint16_t raw = (uint16_t)d->cache[TREG_SYSSTATUS].raw;
        cJSON_AddNumberToObject(s, "raw", raw);
        bic_sysstatus_t st;
        bic_sysstatus_decode(fam, raw, &st);
        cJSON_AddBoolToObject(s, "master", st.master);
        cJSON_AddBoolToObject(s, "dc_ok", st.dc_ok);
        cJSON_AddBoolToObject(s, "pfc_ok", st.pfc_ok);
        cJSON_AddBoolToObject(s, "adl_on", st.adl_on);
        cJSON_AddBoolToObject(s, "initial_state", st.initial_state);
        cJSON_AddBoolToObject(s, "eeper", st.eeper);
    } else {
        cJSON_AddNullToObject(t, "status");
    }
    cJSON *age = cJSON_AddObjectToObject(t, "age_ms");
    if (d->fast_at > 0)
        cJSON_AddNumberToObject(age, "fast", (double)((now_us - d->fast_at) / 1000));
    else
        cJSON_AddNullToObject(age, "fast");
    if (d->slow_at > 0)
        cJSON_AddNumberToObject(age, "slow", (double)((now_us - d->slow_at) / 1000));
    else
        cJSON_AddNullToObject(age, "slow");
    if (GW_DEV_IS_NPB(d->addr))
        gw_npb_telemetry(d, t);
    return t;
}
