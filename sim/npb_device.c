/* npb_device.c - one simulated NPB charger: registers, EEPROM, the charge curve and PSU mode
 * on an owned battery (see npb_device.h; docs/npb.md, docs/simulator.md). The command table,
 * models, ranges and decoders are the protocol library's (can/bic_proto.h, can/npb_proto.h). */
#include "npb_device.h"

#include "dev_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The EEPROM-backed registers, in this order. */
enum {
    R_OPERATION,
    R_VOUT,
    R_IOUT,
    R_SYSCFG,
    R_CC,
    R_CV,
    R_FV,
    R_TC,
    R_CONFIG,
    R_CC_TO,
    R_CV_TO,
    R_FV_TO,
    R_RST,
    R_COUNT
};
static const uint16_t s_reg_cmd[R_COUNT] = {
    BIC_CMD_OPERATION,        BIC_CMD_VOUT_SET,         BIC_CMD_IOUT_SET,
    BIC_CMD_SYSTEM_CONFIG,    NPB_CMD_CURVE_CC,         NPB_CMD_CURVE_CV,
    NPB_CMD_CURVE_FV,         NPB_CMD_CURVE_TC,         NPB_CMD_CURVE_CONFIG,
    NPB_CMD_CURVE_CC_TIMEOUT, NPB_CMD_CURVE_CV_TIMEOUT, NPB_CMD_CURVE_FV_TIMEOUT,
    NPB_CMD_CHG_RST_VBAT,
};

#define S_MAX_SUBSTEP_S 0.25
#define S_OTP_C 95.0
#define S_OTP_CLEAR_C 80.0
#define S_HI_TEMP_C 80.0
#define S_HI_TEMP_CLEAR_C 75.0
#define S_TAPER_SETTLE_S 5.0 /* the CV stage lasts at least this before the taper can end it */
#define S_TC_REF_C 25.0      /* temperature compensation reference */

/* Internal charge state; CHG_STATUS is derived from it. */
typedef enum { ST_OFF = 0, ST_CC, ST_CV, ST_FV, ST_FULL, ST_TIMEOUT } s_stage_t;

struct npb_device_t {
    npb_device_config_t cfg;
    npb_options_t opts; /* the unit's own range rules (current minimum) */
    const bic_family_t *fam;
    battery_t *bat;

    uint16_t ram[R_COUNT];
    uint16_t eep[R_COUNT];
    uint16_t act[R_COUNT]; /* curve registers in force (latched at re-power, ON) */
    uint32_t eep_writes[R_COUNT];
    uint32_t eep_total;
    bool pending[R_COUNT];
    int64_t last_change_us;

    bool ac_on, remote, battery_connected;
    double battery_temp_c;
    int64_t boot_until_us;
    bool cause[NPB_DEV_FAULT_COUNT], latched[NPB_DEV_FAULT_COUNT];
    bool otp_natural, hi_temp_natural;

    int64_t last_us;
    bool output_on;
    s_stage_t stage;
    double stage_s;
    bool full;    /* FULLM: the taper ended a charge (kept through float and its timeout) */
    uint16_t tof; /* latched CCTOF/CVTOF/FVTOF bits */
    double current_a, target_a, target_v, ac_w, temp_c;
};

static int s_ridx(uint16_t cmd)
{
    for (int i = 0; i < R_COUNT; i++)
        if (s_reg_cmd[i] == cmd)
            return i;
    return -1;
}

/* ---------------------------------------------------------------------------------------
   Life cycle
   --------------------------------------------------------------------------------------- */

static bool s_latches(npb_dev_fault_t f)
{
    return f == NPB_DEV_FAULT_OVP || f == NPB_DEV_FAULT_OLP || f == NPB_DEV_FAULT_SHORT;
}

static bool s_fault_on(const npb_device_t *dev, npb_dev_fault_t f)
{
    return dev->cause[f] || dev->latched[f];
}

static bool s_booting(const npb_device_t *dev, int64_t now_us)
{
    return dev->ac_on && now_us < dev->boot_until_us;
}

/* The curve registers come into force (re-power, Remote ON, OPERATION OFF -> ON): the charge
 * starts again at the CC stage. */
static void s_apply_curve(npb_device_t *dev)
{
    memcpy(dev->act, dev->ram, sizeof dev->act);
    dev->stage = ST_CC;
    dev->stage_s = 0;
    dev->full = false;
    dev->tof = 0;
}

static void s_power_up(npb_device_t *dev, int64_t now_us, bool silent)
{
    memcpy(dev->ram, dev->eep, sizeof dev->ram);
    memset(dev->pending, 0, sizeof dev->pending);
    bic_sysconfig_t sc;
    bic_sysconfig_decode(dev->eep[R_SYSCFG], &sc);
    if (sc.operation_init == BIC_OPINIT_OFF)
        dev->ram[R_OPERATION] = 0;
    else if (sc.operation_init == BIC_OPINIT_ON)
        dev->ram[R_OPERATION] = 1;
    for (int f = 0; f < NPB_DEV_FAULT_COUNT; f++)
        dev->latched[f] = dev->cause[f] && s_latches((npb_dev_fault_t)f);
    s_apply_curve(dev);
    dev->boot_until_us = silent ? now_us + dev->cfg.boot_silence_us : now_us;
}

npb_device_t *npb_device_new(const npb_device_config_t *cfg, const battery_config_t *bcfg,
                             int64_t now_us)
{
    if (npb_device_config_validate(cfg, NULL, 0) != 0 ||
        battery_config_validate(bcfg, NULL, 0) != 0)
        return NULL;
    npb_device_t *dev = calloc(1, sizeof *dev);
    if (!dev)
        return NULL;
    dev->bat = battery_new(bcfg);
    if (!dev->bat) {
        free(dev);
        return NULL;
    }
    dev->cfg = *cfg;
    npb_options_default(&dev->opts);
    dev->opts.dc_ok = cfg->dc_ok;
    dev->opts.iout_min_pct = cfg->iout_min_pct;
    dev->fam = bic_family_get(BIC_FAMILY_NPB);
    for (int i = 0; i < R_COUNT; i++) {
        bic_range_t r;
        npb_range(cfg->model, &dev->opts, s_reg_cmd[i], &r);
        dev->eep[i] = r.def_raw;
    }
    dev->ac_on = true;
    dev->remote = !cfg->remote_open;
    dev->battery_connected = cfg->battery_connected;
    dev->battery_temp_c = cfg->battery_temp_c;
    dev->temp_c = cfg->ambient_c;
    dev->last_us = now_us;
    s_power_up(dev, now_us, false);
    return dev;
}

void npb_device_destroy(npb_device_t **p)
{
    if (!p || !*p)
        return;
    battery_destroy(&(*p)->bat);
    free(*p);
    *p = NULL;
}

/* ---------------------------------------------------------------------------------------
   EEPROM (as the BIC: '*' registers obey EEP_OFF and EEP_CONFIG on new firmware)
   --------------------------------------------------------------------------------------- */

static dev_eep_regs_t s_eep_regs(npb_device_t *dev)
{
    return (dev_eep_regs_t){R_COUNT,         dev->ram,        dev->eep,
                            dev->eep_writes, &dev->eep_total, dev->pending};
}

static void s_eeprom_after_write(npb_device_t *dev, int idx, int64_t now_us)
{
    const bic_cmd_t *c = bic_cmd_by_code(dev->fam, s_reg_cmd[idx]);
    dev->last_change_us = now_us;
    dev_eep_regs_t r = s_eep_regs(dev);
    dev_eep_after_write(
        &r, idx, dev_eep_action(dev->ram[R_SYSCFG], c && c->eep_star, dev->cfg.fw == NPB_FW_NEW));
}

static void s_eeprom_tick(npb_device_t *dev, int64_t now_us)
{
    dev_eep_regs_t r = s_eep_regs(dev);
    dev_eep_tick(&r, dev->ram[R_SYSCFG], dev->last_change_us, now_us);
}

/* ---------------------------------------------------------------------------------------
   Physics: the charge curve
   --------------------------------------------------------------------------------------- */

static bool s_shutdown(const npb_device_t *dev)
{
    return s_fault_on(dev, NPB_DEV_FAULT_OTP) || dev->otp_natural ||
           s_fault_on(dev, NPB_DEV_FAULT_OVP) || s_fault_on(dev, NPB_DEV_FAULT_OLP) ||
           s_fault_on(dev, NPB_DEV_FAULT_SHORT) || s_fault_on(dev, NPB_DEV_FAULT_AC_FAIL) ||
           s_fault_on(dev, NPB_DEV_FAULT_EEPER);
}

static bool s_output_enabled(const npb_device_t *dev, int64_t now_us)
{
    return dev->ac_on && !s_booting(dev, now_us) && dev->remote && !s_shutdown(dev) &&
           dev->ram[R_OPERATION] != 0;
}

static bool s_charger(const npb_device_t *dev)
{
    npb_curve_config_t cc;
    npb_curve_config_decode(dev->act[R_CONFIG], &cc);
    return cc.charger;
}

/* A curve voltage with temperature compensation: -mV/degC per lead-acid cell (one per 2 V of
 * the model's nominal voltage) around 25 degC, sensor range 0..40 degC, 3-stage only. */
static double s_compensated(const npb_device_t *dev, uint16_t raw_v)
{
    npb_curve_config_t cc;
    npb_curve_config_decode(dev->act[R_CONFIG], &cc);
    double v = raw_v / 100.0;
    if (cc.two_stage || !dev->cfg.ntc_fitted || s_fault_on(dev, NPB_DEV_FAULT_NTC_SHORT))
        return v;
    double t = dev->battery_temp_c < 0 ? 0 : dev->battery_temp_c > 40 ? 40 : dev->battery_temp_c;
    int cells = dev->cfg.model->volts / 2;
    return v - npb_tcs_mv(cc.tcs) / 1000.0 * (t - S_TC_REF_C) * cells;
}

/* The charge current that brings the terminal voltage to v, within 0..i_max. */
static double s_regulate(const npb_device_t *dev, double v, double i_max)
{
    double r = battery_r_ohm(dev->bat);
    if (r < 1e-4)
        r = 1e-4;
    double i = (v - battery_ocv_v(dev->bat)) / r;
    return i < 0 ? 0 : i > i_max ? i_max : i;
}

static void s_enter(npb_device_t *dev, s_stage_t st)
{
    dev->stage = st;
    dev->stage_s = 0;
}

/* Stage timeouts: a stage that lasts longer than its enabled timeout stops the charge. */
static bool s_timed_out(npb_device_t *dev, int reg, bool enabled, uint16_t flag)
{
    if (!enabled || dev->stage_s < dev->act[reg] * 60.0)
        return false;
    dev->tof |= flag;
    s_enter(dev, ST_TIMEOUT);
    return true;
}

/* The charger's target current for this step, and its stage transitions. */
static double s_charge_target(npb_device_t *dev, double dt)
{
    npb_curve_config_t cc;
    npb_curve_config_decode(dev->act[R_CONFIG], &cc);
    double i_cc = dev->act[R_CC] / 100.0;
    double i_tc = dev->act[R_TC] / 100.0;
    double v_cv = s_compensated(dev, dev->act[R_CV]);
    double v_fv = s_compensated(dev, dev->act[R_FV]);
    bool has_rst = dev->cfg.fw == NPB_FW_NEW && cc.restart_en;
    dev->stage_s += dt;

    /* Restart below CHG_RST_VBAT after a finished charge (float, 2-stage full, or a float
       timeout). */
    if (has_rst &&
        (dev->stage == ST_FV || dev->stage == ST_FULL ||
         (dev->stage == ST_TIMEOUT && dev->tof == 0x8000u)) &&
        battery_voltage_v(dev->bat) < dev->act[R_RST] / 100.0) {
        dev->full = false;
        dev->tof = 0;
        s_enter(dev, ST_CC);
    }
    switch (dev->stage) {
    case ST_CC: {
        if (s_timed_out(dev, R_CC_TO, cc.cc_timeout_en, 0x2000u))
            return 0;
        double i = s_regulate(dev, v_cv, i_cc);
        dev->target_v = v_cv;
        /* The voltage limit is reached, or the battery's BMS opened (the output then rises to
           the limit at no load). */
        if (i < i_cc - 1e-9 || !battery_can_charge(dev->bat))
            s_enter(dev, ST_CV);
        return i;
    }
    case ST_CV: {
        if (s_timed_out(dev, R_CV_TO, cc.cv_timeout_en, 0x4000u))
            return 0;
        dev->target_v = v_cv;
        if (dev->stage_s >= S_TAPER_SETTLE_S && dev->current_a <= i_tc) {
            dev->full = true;
            s_enter(dev, cc.two_stage ? ST_FULL : ST_FV);
        }
        return s_regulate(dev, v_cv, i_cc);
    }
    case ST_FV:
        if (s_timed_out(dev, R_FV_TO, cc.fv_timeout_en, 0x8000u))
            return 0;
        dev->target_v = v_fv;
        return s_regulate(dev, v_fv, i_cc);
    case ST_FULL: /* 2-stage: holds the boost voltage */
        dev->target_v = v_cv;
        return s_regulate(dev, v_cv, i_cc);
    default:
        return 0;
    }
}

static double s_lag_alpha(double dt, double tau)
{
    return tau <= 0 ? 1 : 1 - exp(-dt / tau);
}

static void s_substep(npb_device_t *dev, int64_t now_us, double dt)
{
    dev->output_on = s_output_enabled(dev, now_us);
    double target = 0;
    dev->target_v = 0;
    if (dev->output_on && dev->battery_connected) {
        if (s_charger(dev)) {
            target = s_charge_target(dev, dt);
        } else {
            dev->target_v = dev->ram[R_VOUT] / 100.0;
            target = s_regulate(dev, dev->target_v, dev->ram[R_IOUT] / 100.0);
        }
        double v = battery_ocv_v(dev->bat);
        double p_lim = dev->cfg.model->power_w / (v > 1 ? v : 1);
        target = target > p_lim ? p_lim : target;
    }
    dev->target_a = target;
    double i = dev->output_on && dev->battery_connected
                   ? dev->current_a + (target - dev->current_a) * s_lag_alpha(dt, dev->cfg.tau_s)
                   : 0;
    i = battery_step(dev->bat, i, dt);
    dev->current_a = i < 0 ? 0 : i;
    double dc_w = battery_voltage_v(dev->bat) * dev->current_a;
    dev->ac_w = dc_w / dev->cfg.eff;
    double loss = dev->ac_w - dc_w;
    double t_target = dev->cfg.ambient_c + dev->cfg.thermal_k_per_w * loss;
    dev->temp_c += (t_target - dev->temp_c) * s_lag_alpha(dt, dev->cfg.thermal_tau_s);
    if (dev->temp_c >= S_OTP_C)
        dev->otp_natural = true;
    else if (dev->temp_c <= S_OTP_CLEAR_C)
        dev->otp_natural = false;
    if (dev->temp_c >= S_HI_TEMP_C)
        dev->hi_temp_natural = true;
    else if (dev->temp_c <= S_HI_TEMP_CLEAR_C)
        dev->hi_temp_natural = false;
}

void npb_device_step(npb_device_t *dev, int64_t now_us)
{
    if (!dev || now_us <= dev->last_us)
        return;
    int64_t t = dev->last_us;
    while (t < now_us) {
        int64_t next = t + (int64_t)(S_MAX_SUBSTEP_S * 1e6);
        if (t < dev->boot_until_us && next > dev->boot_until_us)
            next = dev->boot_until_us;
        if (next > now_us)
            next = now_us;
        s_substep(dev, next, (double)(next - t) / 1e6);
        t = next;
    }
    dev->last_us = now_us;
    if (dev->ac_on)
        s_eeprom_tick(dev, now_us);
    dev->output_on = s_output_enabled(dev, now_us);
}

/* ---------------------------------------------------------------------------------------
   Registers
   --------------------------------------------------------------------------------------- */

static uint16_t s_chg_status(const npb_device_t *dev)
{
    npb_chg_status_t s;
    memset(&s, 0, sizeof s);
    s.no_battery = !dev->battery_connected;
    s.ntc_short = s_fault_on(dev, NPB_DEV_FAULT_NTC_SHORT);
    s.cc_timeout = (dev->tof & 0x2000u) != 0;
    s.cv_timeout = (dev->tof & 0x4000u) != 0;
    s.fv_timeout = (dev->tof & 0x8000u) != 0;
    if (dev->output_on && dev->battery_connected && s_charger(dev)) {
        s.cc = dev->stage == ST_CC;
        s.cv = dev->stage == ST_CV;
        s.fv = dev->stage == ST_FV;
    }
    s.full = dev->full && s_charger(dev);
    return npb_chg_status_encode(&s);
}

static uint16_t s_fault_status(const npb_device_t *dev)
{
    /* FAULT_STATUS as the BIC's, bit 0 (FAN_FAIL) unused on the NPB */
    uint16_t raw = 0;
    raw |= s_fault_on(dev, NPB_DEV_FAULT_OTP) || dev->otp_natural ? 0x0002u : 0;
    raw |= s_fault_on(dev, NPB_DEV_FAULT_OVP) ? 0x0004u : 0;
    raw |= s_fault_on(dev, NPB_DEV_FAULT_OLP) ? 0x0008u : 0;
    raw |= s_fault_on(dev, NPB_DEV_FAULT_SHORT) ? 0x0010u : 0;
    raw |= s_fault_on(dev, NPB_DEV_FAULT_AC_FAIL) ? 0x0020u : 0;
    raw |= !dev->output_on ? 0x0040u : 0;
    raw |= s_fault_on(dev, NPB_DEV_FAULT_HI_TEMP) || dev->hi_temp_natural ? 0x0080u : 0;
    return raw;
}

/* The output voltage: the battery's terminal voltage, or the regulated voltage at no load
 * while the battery's BMS refuses charge. */
static double s_vout(const npb_device_t *dev)
{
    if (dev->output_on && dev->battery_connected && dev->target_v > 0 &&
        !battery_can_charge(dev->bat))
        return dev->target_v;
    return battery_voltage_v(dev->bat);
}

static uint16_t s_system_status(const npb_device_t *dev, int64_t now_us)
{
    bool normal = dev->output_on && s_vout(dev) * 100.0 >= dev->cfg.model->vmin_raw;
    bool bit = dev->cfg.dc_ok == NPB_DCOK_ONE_IS_LOW ? !normal : normal;
    uint16_t raw = bit ? 0x0002u : 0;
    if (s_booting(dev, now_us))
        raw |= 0x0020u; /* 1 = in initialisation on the NPB */
    if (s_fault_on(dev, NPB_DEV_FAULT_EEPER))
        raw |= 0x0040u;
    return raw;
}

static bool s_known_here(const npb_device_t *dev, uint16_t cmd)
{
    if (cmd == NPB_CMD_CHG_RST_VBAT && dev->cfg.fw == NPB_FW_OLD)
        return false;
    if (cmd == BIC_CMD_READ_VIN && !dev->cfg.model->read_vin)
        return false;
    return bic_cmd_by_code(dev->fam, cmd) != NULL;
}

npb_write_result_t npb_device_write(npb_device_t *dev, uint16_t cmd, uint16_t raw, int64_t now_us)
{
    npb_device_step(dev, now_us);
    if (!dev->ac_on || s_booting(dev, now_us))
        return NPB_WRITE_UNPOWERED;
    if (!s_known_here(dev, cmd))
        return NPB_WRITE_UNKNOWN;
    const bic_cmd_t *c = bic_cmd_by_code(dev->fam, cmd);
    if (!c->writable)
        return NPB_WRITE_READ_ONLY;
    if (c->len == 1)
        raw &= 0xFF;
    npb_write_result_t res = NPB_WRITE_OK;
    if (npb_check_write(dev->cfg.model, &dev->opts, cmd, raw, NULL, 0) != BIC_OK) {
        bic_range_t r;
        if (!dev->cfg.clamp || c->type == BIC_TYPE_BITS || c->len == 1 ||
            npb_range(dev->cfg.model, &dev->opts, cmd, &r) != BIC_OK)
            return NPB_WRITE_OUT_OF_RANGE;
        raw = raw < r.min_raw ? r.min_raw : r.max_raw;
        res = NPB_WRITE_CLAMPED;
    }
    if (cmd == BIC_CMD_SYSTEM_CONFIG) {
        bic_sysconfig_t sc;
        bic_sysconfig_decode(raw, &sc);
        if (sc.operation_init == BIC_OPINIT_RESERVED || sc.eep_config == BIC_EEPCFG_RESERVED)
            return NPB_WRITE_OUT_OF_RANGE;
        if (dev->cfg.fw == NPB_FW_OLD)
            raw &= (uint16_t)~0x0700u;
    }
    int idx = s_ridx(cmd);
    bool turning_on = cmd == BIC_CMD_OPERATION && dev->ram[R_OPERATION] == 0 && raw == 1;
    dev->ram[idx] = raw;
    s_eeprom_after_write(dev, idx, now_us);
    if (turning_on)
        s_apply_curve(dev);
    dev->output_on = s_output_enabled(dev, now_us);
    return res;
}

int npb_device_read(npb_device_t *dev, uint16_t cmd, int64_t now_us, uint8_t data[6], size_t *len)
{
    npb_device_step(dev, now_us);
    if (!dev->ac_on || s_booting(dev, now_us) || !s_known_here(dev, cmd))
        return -1;
    const bic_cmd_t *c = bic_cmd_by_code(dev->fam, cmd);
    memset(data, 0, 6);
    *len = c->len;
    int idx = s_ridx(cmd);
    int32_t raw = 0;
    if (idx >= 0) {
        raw = dev->ram[idx];
    } else {
        uint8_t m0[6], m1[6];
        switch (cmd) {
        case BIC_CMD_FAULT_STATUS:
            raw = s_fault_status(dev);
            break;
        case BIC_CMD_SYSTEM_STATUS:
            raw = s_system_status(dev, now_us);
            break;
        case NPB_CMD_CHG_STATUS:
            raw = s_chg_status(dev);
            break;
        case BIC_CMD_READ_VIN:
            raw = dev_round_raw(s_fault_on(dev, NPB_DEV_FAULT_AC_FAIL) ? 0 : dev->cfg.ac_v, 0.1, 0,
                                65535);
            break;
        case BIC_CMD_READ_VOUT:
            raw = dev_round_raw(s_vout(dev), 0.01, 0, 65535);
            break;
        case BIC_CMD_READ_IOUT:
            raw = dev_round_raw(dev->current_a, 0.01, -32768, 32767);
            break;
        case BIC_CMD_READ_TEMPERATURE_1:
            raw = dev_round_raw(dev->temp_c, 0.1, -400, 1100);
            break;
        case BIC_CMD_MFR_ID_B0B5:
            dev_put_text(data, "MEANWE", 6);
            return 0;
        case BIC_CMD_MFR_ID_B6B11:
            dev_put_text(data, "LL", 6);
            return 0;
        case BIC_CMD_MFR_MODEL_B0B5:
        case BIC_CMD_MFR_MODEL_B6B11:
            npb_model_encode(dev->cfg.model, m0, m1);
            memcpy(data, cmd == BIC_CMD_MFR_MODEL_B0B5 ? m0 : m1, 6);
            return 0;
        case BIC_CMD_MFR_REVISION_B0B5:
            memcpy(data, dev->cfg.revision, 6);
            return 0;
        case BIC_CMD_MFR_LOCATION_B0B2:
            dev_put_text(data, dev->cfg.location, 3);
            return 0;
        case BIC_CMD_MFR_DATE_B0B5:
            dev_put_text(data, dev->cfg.date, 6);
            return 0;
        case BIC_CMD_MFR_SERIAL_B0B5:
            dev_put_text(data, dev->cfg.serial, 6);
            return 0;
        case BIC_CMD_MFR_SERIAL_B6B11:
            dev_put_text(data, strlen(dev->cfg.serial) > 6 ? dev->cfg.serial + 6 : "", 6);
            return 0;
        case BIC_CMD_SCALING_FACTOR:
            bic_scaling_encode_fixed(data);
            return 0;
        default:
            return -1;
        }
    }
    return bic_raw_to_data(c, raw, data) == BIC_OK ? 0 : -1;
}

int npb_device_handle_frame(npb_device_t *dev, const can_frame_t *req, int64_t now_us,
                            can_frame_t *reply)
{
    if (!dev || !req)
        return 0;
    bic_msg_t msg;
    bic_err_t e = bic_decode_request(dev->fam, req, &msg);
    npb_device_step(dev, now_us);
    if (e != BIC_OK)
        return 0;
    bool broadcast = msg.addr == BIC_ADDR_BROADCAST;
    if (!broadcast && msg.addr != dev->cfg.addr)
        return 0;
    if (msg.write) {
        int32_t raw = 0;
        if (bic_data_to_raw(msg.cmd, msg.data, msg.len, &raw) == BIC_OK)
            npb_device_write(dev, msg.code, (uint16_t)raw, now_us);
        return 0;
    }
    if (broadcast || !reply)
        return 0;
    uint8_t data[6];
    size_t len = 0;
    if (npb_device_read(dev, msg.code, now_us, data, &len) != 0)
        return 0;
    return bic_encode_reply(dev->fam, dev->cfg.addr, msg.code, data, len, reply) == BIC_OK;
}

/* ---------------------------------------------------------------------------------------
   State and controls
   --------------------------------------------------------------------------------------- */

void npb_device_get_state(const npb_device_t *dev, npb_device_state_t *out)
{
    memset(out, 0, sizeof *out);
    out->powered = dev->ac_on;
    out->booting = s_booting(dev, dev->last_us);
    out->output_on = dev->output_on;
    out->charger = s_charger(dev);
    out->chg_status = s_chg_status(dev);
    out->stage = npb_stage_of(out->chg_status);
    out->fault_status = s_fault_status(dev);
    out->system_status = s_system_status(dev, dev->last_us);
    out->dc_v = s_vout(dev);
    out->dc_a = dev->current_a;
    out->target_a = dev->target_a;
    out->target_v = dev->target_v;
    out->ac_w = dev->ac_w;
    out->soc_pct = battery_soc_pct(dev->bat);
    out->temperature_c = dev->temp_c;
    out->stage_s = dev->stage_s;
    out->eeprom_writes_total = dev->eep_total;
}

int npb_device_register(const npb_device_t *dev, uint16_t cmd, uint16_t *raw)
{
    int idx = s_ridx(cmd);
    if (idx < 0)
        return -1;
    *raw = dev->ram[idx];
    return 0;
}

int npb_device_eeprom_value(const npb_device_t *dev, uint16_t cmd, uint16_t *raw)
{
    int idx = s_ridx(cmd);
    if (idx < 0)
        return -1;
    *raw = dev->eep[idx];
    return 0;
}

uint32_t npb_device_eeprom_writes(const npb_device_t *dev, uint16_t cmd)
{
    int idx = s_ridx(cmd);
    return idx < 0 ? 0 : dev->eep_writes[idx];
}

static const char *const s_fault_names[NPB_DEV_FAULT_COUNT] = {
    "otp", "ovp", "olp", "short", "ac_fail", "hi_temp", "eeper", "ntc_short"};

const char *npb_dev_fault_name(npb_dev_fault_t fault)
{
    return (unsigned)fault < NPB_DEV_FAULT_COUNT ? s_fault_names[fault] : "unknown";
}

int npb_dev_fault_from_name(const char *name)
{
    for (int i = 0; name && i < NPB_DEV_FAULT_COUNT; i++)
        if (strcmp(name, s_fault_names[i]) == 0)
            return i;
    return -1;
}

void npb_device_set_fault(npb_device_t *dev, npb_dev_fault_t fault, bool on, int64_t now_us)
{
    if ((unsigned)fault >= NPB_DEV_FAULT_COUNT)
        return;
    npb_device_step(dev, now_us);
    dev->cause[fault] = on;
    if (on && s_latches(fault))
        dev->latched[fault] = true;
    dev->output_on = s_output_enabled(dev, now_us);
}

void npb_device_set_ac(npb_device_t *dev, bool on, int64_t now_us)
{
    npb_device_step(dev, now_us);
    if (on && !dev->ac_on) {
        dev->ac_on = true;
        s_power_up(dev, now_us, true);
    } else if (!on && dev->ac_on) {
        dev->ac_on = false;
        memset(dev->pending, 0, sizeof dev->pending);
        dev->current_a = 0;
    }
    dev->output_on = s_output_enabled(dev, now_us);
}

void npb_device_power_cycle(npb_device_t *dev, int64_t now_us)
{
    npb_device_set_ac(dev, false, now_us);
    npb_device_set_ac(dev, true, now_us);
}

void npb_device_set_remote(npb_device_t *dev, bool closed, int64_t now_us)
{
    npb_device_step(dev, now_us);
    if (closed && !dev->remote)
        s_apply_curve(dev);
    dev->remote = closed;
    dev->output_on = s_output_enabled(dev, now_us);
}

void npb_device_set_battery_temp(npb_device_t *dev, double temp_c, int64_t now_us)
{
    npb_device_step(dev, now_us);
    dev->battery_temp_c = temp_c;
}

void npb_device_set_battery_connected(npb_device_t *dev, bool connected, int64_t now_us)
{
    npb_device_step(dev, now_us);
    if (connected && !dev->battery_connected)
        s_apply_curve(dev);
    dev->battery_connected = connected;
}

battery_t *npb_device_battery(npb_device_t *dev)
{
    return dev->bat;
}

uint8_t npb_device_addr(const npb_device_t *dev)
{
    return dev->cfg.addr;
}

const npb_device_config_t *npb_device_config(const npb_device_t *dev)
{
    return &dev->cfg;
}
