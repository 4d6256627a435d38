/*
 * gw_npb: the gateway's NPB specifics (see gw_npb.h, docs/npb.md "The gateway").
 */
#include "gw_npb.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t gw_npb_rx_filters(can_filter_spec_t *out, size_t max)
{
    static const uint8_t npb_addrs[GW_NPB_COUNT] = {0, 1, 2, 3};
    int n = can_transport_reply_filters(bic_family_bic()->dev_base, NULL, 0, out, max);
    if (n < 0)
        return 0;
    int m = can_transport_reply_filters(bic_family_get(BIC_FAMILY_NPB)->dev_base, npb_addrs,
                                        GW_NPB_COUNT, out + n, max - (size_t)n);
    return (size_t)n + (size_t)(m < 0 ? 0 : m);
}

uint16_t gw_npb_ident_cmd(uint16_t bic_cmd)
{
    if (bic_cmd == BIC_CMD_BIDIRECTIONAL_CONFIG)
        return NPB_CMD_CURVE_CONFIG;
    if (bic_cmd == BIC_CMD_READ_FAN_SPEED_1)
        return NPB_CMD_CHG_STATUS;
    return bic_cmd;
}

int gw_npb_identify(gw_dev_t *d, const uint8_t b0b5[6], const uint8_t b6b11[6], char *why,
                    size_t whylen)
{
    char err[320];
    const npb_model_t *nm = NULL;
    if (npb_model_detect(b0b5, b6b11, &nm, err, sizeof err) != BIC_OK) {
        snprintf(why, whylen, "not a supported NPB charger: %s", err);
        return -1;
    }
    if (d->cfg.present && d->cfg.npb_type && d->cfg.npb_type != nm) {
        snprintf(why, whylen, "type mismatch: configured %s, device reports %s",
                 d->cfg.npb_type->name, nm->name);
        return -1;
    }
    bic_model_t m;
    if (bic_model_parse(b0b5, b6b11, &m, err, sizeof err) != BIC_OK) {
        snprintf(why, whylen, "not a supported NPB charger: %s", err);
        return -1;
    }
    d->model = m;
    d->npb = nm;
    return 0;
}

static void s_clip(bic_range_t *r, int hi)
{
    if (hi > 0 && hi < r->max_raw)
        r->max_raw = (uint16_t)hi;
}

int gw_npb_compute_limits(gw_dev_t *d, char *err, size_t errlen)
{
    if (!d->npb) {
        snprintf(err, errlen, "no range table for model '%s'", d->model.model);
        return -1;
    }
    bic_limits_t lim;
    memset(&lim, 0, sizeof lim);
    npb_range(d->npb, &d->cfg.npb_opts, NPB_CMD_CURVE_CV, &lim.vout);
    npb_range(d->npb, &d->cfg.npb_opts, NPB_CMD_CURVE_CC, &lim.iout);
    if (d->cfg.present) {
        s_clip(&lim.vout, d->cfg.charge_v_raw);
        s_clip(&lim.iout, d->cfg.max_charge_raw);
    }
    if (lim.vout.min_raw > lim.vout.max_raw || lim.iout.min_raw > lim.iout.max_raw) {
        bool v = lim.vout.min_raw > lim.vout.max_raw;
        const bic_range_t *r = v ? &lim.vout : &lim.iout;
        snprintf(err, errlen,
                 "configured limits leave no valid %s for %s (%.2f > %.2f): [NPB] %s is below "
                 "the model's minimum",
                 v ? "charge voltage" : "charge current", d->npb->name, r->min_raw / 100.0,
                 r->max_raw / 100.0, v ? "ChargeVoltage" : "MaxChargeCurrent");
        return -1;
    }
    d->limits = lim;
    return 0;
}

/* Registers that share the charge voltage range, and the current range. */
static bool s_voltage_reg(uint16_t code)
{
    return code == BIC_CMD_VOUT_SET || code == NPB_CMD_CURVE_CV || code == NPB_CMD_CURVE_FV ||
           code == NPB_CMD_CHG_RST_VBAT;
}

static bool s_current_reg(uint16_t code)
{
    return code == BIC_CMD_IOUT_SET || code == NPB_CMD_CURVE_CC;
}

void gw_npb_reg_range(const gw_dev_t *d, uint16_t code, int32_t *min, int32_t *max)
{
    bic_range_t r;
    if (!d->npb || npb_range(d->npb, &d->cfg.npb_opts, code, &r) != BIC_OK) {
        *min = 0;
        *max = 0xFFFF;
        return;
    }
    *min = r.min_raw;
    *max = r.max_raw;
    if (s_voltage_reg(code))
        *max = d->limits.vout.max_raw;
    else if (s_current_reg(code))
        *max = d->limits.iout.max_raw;
    else if (code == NPB_CMD_CURVE_TC && d->limits.iout.max_raw < *max)
        *max = d->limits.iout.max_raw;
}

int gw_npb_check_value(const gw_dev_t *d, const bic_cmd_t *c, int32_t raw, char *why, size_t whylen)
{
    char err[256];
    if (!d->npb) {
        snprintf(why, whylen, "%s: the device's model is not known", c->name);
        return -1;
    }
    if (npb_check_write(d->npb, &d->cfg.npb_opts, c->code, raw, err, sizeof err) != BIC_OK) {
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    int32_t lo, hi;
    gw_npb_reg_range(d, c->code, &lo, &hi);
    if (raw < lo || raw > hi) {
        snprintf(why, whylen, "%s raw %d is outside %d-%d (the [NPB] limits of device %d)", c->name,
                 raw, lo, hi, d->addr);
        return -1;
    }
    return 0;
}

int gw_npb_check_curve(const gw_dev_t *d, uint16_t code, int32_t raw, int32_t *lo, int32_t *hi,
                       char *why, size_t whylen)
{
    const gw_cached_t *cv = &d->cache[TREG_CURVE_CV], *fv = &d->cache[TREG_CURVE_FV];
    const gw_cached_t *cc = &d->cache[TREG_CURVE_CC];
    if (code == NPB_CMD_CURVE_FV && cv->valid && raw > cv->raw) {
        *hi = cv->raw;
        snprintf(why, whylen,
                 "the float voltage stays at or below the boost voltage CURVE_CV, which the "
                 "device holds at %.2f V",
                 cv->raw / 100.0);
        return -1;
    }
    if (code == NPB_CMD_CURVE_CV && fv->valid && raw < fv->raw) {
        *lo = fv->raw;
        snprintf(why, whylen,
                 "the boost voltage stays at or above the float voltage CURVE_FV, which the "
                 "device holds at %.2f V",
                 fv->raw / 100.0);
        return -1;
    }
    if (code == NPB_CMD_CURVE_TC && cc->valid && raw >= cc->raw) {
        *hi = cc->raw - 1;
        snprintf(why, whylen,
                 "the taper current stays below the charge current CURVE_CC, which the device "
                 "holds at %.2f A",
                 cc->raw / 100.0);
        return -1;
    }
    return 0;
}

bool gw_npb_slot_applies(const gw_dev_t *d, int slot)
{
    bool npb = GW_DEV_IS_NPB(d->addr);
    switch (slot) {
    case TREG_CHG_STATUS:
    case TREG_CURVE_CC:
    case TREG_CURVE_CV:
    case TREG_CURVE_FV:
    case TREG_CURVE_CONFIG:
        return npb;
    case TREG_DIRECTION:
    case TREG_REV_IOUT_SET:
    case TREG_REV_VOUT_SET:
        return !npb;
    case TREG_FAN1:
    case TREG_FAN2:
        return !npb && d->fans;
    case TREG_READ_VIN:
        return !npb || (d->npb && d->npb->read_vin);
    default:
        return true;
    }
}

bool gw_npb_charger_mode(const gw_dev_t *d)
{
    const gw_cached_t *c = &d->cache[TREG_CURVE_CONFIG];
    if (!c->valid)
        return true;
    npb_curve_config_t cfg;
    npb_curve_config_decode((uint16_t)c->raw, &cfg);
    return cfg.charger;
}

uint16_t gw_npb_setpoint_cmd(const gw_dev_t *d)
{
    return gw_npb_charger_mode(d) ? NPB_CMD_CURVE_CC : BIC_CMD_IOUT_SET;
}

int gw_npb_plan(const gw_dev_t *d, bic_plan_mode_t mode, uint16_t current_raw,
                bic_plan_write_t out[BIC_PLAN_MAX])
{
    int n = 0;
    switch (mode) {
    case BIC_PLAN_CHARGE: {
        uint16_t cmd = gw_npb_setpoint_cmd(d);
        out[n++] = (bic_plan_write_t){cmd, current_raw};
        if (cmd == NPB_CMD_CURVE_CC) {
            const gw_cached_t *cc = &d->cache[TREG_CURVE_CC];
            const gw_cached_t *op = &d->cache[TREG_OPERATION];
            bool on = !op->valid || op->raw != 0;
            bool changed = !cc->valid || cc->raw != current_raw;
            if (on && changed)
                out[n++] = (bic_plan_write_t){BIC_CMD_OPERATION, 0};
        }
        out[n++] = (bic_plan_write_t){BIC_CMD_OPERATION, 1};
        return n;
    }
    case BIC_PLAN_IDLE_OFF:
    case BIC_PLAN_IDLE_MIN:
    case BIC_PLAN_OFF:
    case BIC_PLAN_STOP:
        /* a charger left running charges with nobody watching: idle and safe are output off */
        out[n++] = (bic_plan_write_t){BIC_CMD_OPERATION, 0};
        return n;
    default:
        return -1;
    }
}

static double s_cached(const gw_dev_t *d, int slot)
{
    return d->cache[slot].valid ? d->cache[slot].raw / 100.0 : NAN;
}

static void s_num_or_null(cJSON *o, const char *k, double v)
{
    if (isnan(v))
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddNumberToObject(o, k, round(v * 100) / 100);
}

static const char *s_stage(const gw_dev_t *d)
{
    if (!d->cache[TREG_CHG_STATUS].valid)
        return NULL;
    return npb_stage_name(npb_stage_of((uint16_t)d->cache[TREG_CHG_STATUS].raw));
}

static void s_curve_json(const gw_dev_t *d, cJSON *o)
{
    cJSON *c = cJSON_AddObjectToObject(o, "curve");
    s_num_or_null(c, "cc_a", s_cached(d, TREG_CURVE_CC));
    s_num_or_null(c, "cv_v", s_cached(d, TREG_CURVE_CV));
    s_num_or_null(c, "fv_v", s_cached(d, TREG_CURVE_FV));
    if (d->cache[TREG_CURVE_CONFIG].valid) {
        npb_curve_config_t cfg;
        npb_curve_config_decode((uint16_t)d->cache[TREG_CURVE_CONFIG].raw, &cfg);
        cJSON_AddStringToObject(c, "mode", cfg.charger ? "charger" : "psu");
        cJSON_AddBoolToObject(c, "two_stage", cfg.two_stage);
        cJSON_AddStringToObject(c, "tcs", npb_tcs_name(cfg.tcs));
        cJSON_AddNumberToObject(c, "config_raw", d->cache[TREG_CURVE_CONFIG].raw);
    } else {
        cJSON_AddNullToObject(c, "mode");
    }
}

void gw_npb_telemetry(const gw_dev_t *d, cJSON *t)
{
    cJSON_AddStringToObject(t, "family", "NPB");
    cJSON_ReplaceItemInObject(t, "direction", cJSON_CreateString("charge"));
    if (d->identified) /* its mode is CURVE_CONFIG's, not the BIC's BIDIRECTIONAL_CONFIG */
        cJSON_ReplaceItemInObject(t, "mode",
                                  cJSON_CreateString(gw_npb_charger_mode(d) ? "charger" : "psu"));
    const char *stage = s_stage(d);
    if (stage)
        cJSON_AddStringToObject(t, "stage", stage);
    else
        cJSON_AddNullToObject(t, "stage");
    if (d->cache[TREG_CHG_STATUS].valid) {
        uint16_t raw = (uint16_t)d->cache[TREG_CHG_STATUS].raw;
        cJSON *s = cJSON_AddObjectToObject(t, "charge_status");
        cJSON_AddNumberToObject(s, "raw", raw);
        bic_field_t f[16];
        int n = bic_fields(gw_dev_family(d->addr), NPB_CMD_CHG_STATUS, raw, f, 16);
        for (int i = 0; i < n; i++)
            cJSON_AddBoolToObject(s, f[i].name, f[i].value != 0);
    } else {
        cJSON_AddNullToObject(t, "charge_status");
    }
    s_curve_json(d, t);
    if (d->cache[TREG_SYSSTATUS].valid) {
        npb_sysstatus_t st;
        npb_sysstatus_decode(&d->cfg.npb_opts, (uint16_t)d->cache[TREG_SYSSTATUS].raw, &st);
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "raw", d->cache[TREG_SYSSTATUS].raw);
        cJSON_AddBoolToObject(s, "dc_ok", st.dc_ok);
        /* the bit read with the configured polarity against the measured output */
        if (d->npb && d->cache[TREG_READ_VOUT].valid) {
            npb_dcok_check_t c = npb_dcok_cross_check(d->npb, &d->cfg.npb_opts,
                                                      (uint16_t)d->cache[TREG_SYSSTATUS].raw,
                                                      (uint16_t)d->cache[TREG_READ_VOUT].raw);
            cJSON_AddStringToObject(s, "dc_ok_check",
                                    c == NPB_DCOK_AGREES        ? "agrees"
                                    : c == NPB_DCOK_CONTRADICTS ? "contradicts"
                                                                : "unknown");
        }
        cJSON_AddBoolToObject(s, "initialising", st.initialising);
        cJSON_AddBoolToObject(s, "eeper", st.eeper);
        cJSON_ReplaceItemInObject(t, "status", s);
    }
}

static void s_range_json(cJSON *o, const char *k, const gw_dev_t *d, uint16_t code, double div)
{
    int32_t lo, hi;
    gw_npb_reg_range(d, code, &lo, &hi);
    cJSON *a = cJSON_AddArrayToObject(o, k);
    cJSON_AddItemToArray(a, cJSON_CreateNumber(lo / div));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(hi / div));
}

void gw_npb_info(const gw_dev_t *d, cJSON *o)
{
    cJSON_ReplaceItemInObject(o, "family", cJSON_CreateString("NPB"));
    cJSON_ReplaceItemInObject(o, "mode",
                              cJSON_CreateString(gw_npb_charger_mode(d) ? "charger" : "psu"));
    cJSON_AddNumberToObject(o, "address", gw_dev_bus_addr(d->addr));
    const char *stage = s_stage(d);
    if (stage)
        cJSON_AddStringToObject(o, "stage", stage);
    else
        cJSON_AddNullToObject(o, "stage");
    s_curve_json(d, o);
    cJSON *op = cJSON_AddObjectToObject(o, "options");
    cJSON_AddStringToObject(op, "dc_ok",
                            d->cfg.npb_opts.dc_ok == NPB_DCOK_ONE_IS_LOW ? "low" : "normal");
    cJSON_AddNumberToObject(op, "current_min_pct", d->cfg.npb_opts.iout_min_pct);
    cJSON *r = cJSON_AddObjectToObject(o, "ranges");
    s_range_json(r, "curve_cc_a", d, NPB_CMD_CURVE_CC, 100.0);
    s_range_json(r, "curve_cv_v", d, NPB_CMD_CURVE_CV, 100.0);
    s_range_json(r, "curve_fv_v", d, NPB_CMD_CURVE_FV, 100.0);
    s_range_json(r, "curve_tc_a", d, NPB_CMD_CURVE_TC, 100.0);
    s_range_json(r, "timeout_min", d, NPB_CMD_CURVE_CC_TIMEOUT, 1.0);
    s_range_json(r, "chg_rst_vbat_v", d, NPB_CMD_CHG_RST_VBAT, 100.0);
}
