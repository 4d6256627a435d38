/* bic_device.c - one simulated BIC-2200: registers, EEPROM model, power cycles, faults and
 * the converter physics on an owned battery. Implements docs/bic2200-protocol.md §16; the
 * command table, limits and codecs come from the protocol library (can/bic_proto.h). */
#include "bic_device.h"

#include "dev_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Index of a register in the EEPROM-backed set (§11, §16 item 18). */
enum { P_OPERATION, P_VOUT, P_IOUT, P_RVOUT, P_RIOUT, P_BIDIR, P_SYSCFG, P_COUNT };
static const uint16_t s_persist_cmd[P_COUNT] = {
    BIC_CMD_OPERATION,        BIC_CMD_VOUT_SET,         BIC_CMD_IOUT_SET,
    BIC_CMD_REVERSE_VOUT_SET, BIC_CMD_REVERSE_IOUT_SET, BIC_CMD_BIDIRECTIONAL_CONFIG,
    BIC_CMD_SYSTEM_CONFIG,
};

#define S_SYSCFG_VALID 0x0707u /* CAN_CTRL, OPERATION_INIT, EEP_CONFIG, EEP_OFF */
#define S_SYSCFG_EEP_BITS 0x0700u
#define S_HI_TEMP_C 80.0 /* internal high-temperature alarm threshold */
#define S_HI_TEMP_CLEAR_C 75.0
#define S_OTP_C 95.0          /* over-temperature shutdown */
#define S_OTP_CLEAR_C 80.0    /* automatic recovery once cooled to this */
#define S_DERATE_START_C 75.0 /* current limits derate from this internal temperature ... */
#define S_DERATE_FULL_C 90.0  /* ... linearly down to S_DERATE_MIN of the rating here */
#define S_DERATE_MIN 0.5
#define S_MAX_SUBSTEP_S 0.25  /* physics integration step */
#define S_AC_FAIL_VIN_V 170.0 /* READ_VIN while AC is out of range */

typedef struct {
    double dt, tau, alpha;
} s_lag_cache_t;

struct bic_device_t {
    bic_device_config_t cfg;
    const bic_family_t *fam;
    const bic_variant_t *var;
    battery_t *bat;

    uint16_t ram[P_COUNT]; /* register values as they read back */
    uint8_t direction;     /* DIRECTION_CTRL, volatile */
    uint16_t eep[P_COUNT]; /* EEPROM content */
    uint32_t eep_writes[P_COUNT];
    uint32_t eep_total;
    bool pending[P_COUNT];  /* waiting for an EEP_CONFIG delayed commit */
    int64_t last_change_us; /* last accepted write (restarts the EEP_CONFIG delay) */

    bic_mode_t mode; /* active mode, from BIDIRECTIONAL_CONFIG at power-up */
    bool can_ctrl;   /* active CAN_CTRL */

    bool ac_on;
    bool remote; /* Remote ON/OFF contact closed */
    int64_t boot_until_us;

    bool cause[BIC_DEV_FAULT_COUNT];   /* injected cause present */
    bool latched[BIC_DEV_FAULT_COUNT]; /* latched flag (latching faults only) */
    bool otp_natural;                  /* over-temperature from the thermal model */
    bool hi_temp_natural;
    bool ovp_natural; /* DC over-voltage trip from the battery voltage, latched */

    int64_t last_us;
    bool output_on;
    double current_a; /* DC current, + charge */
    double target_a;
    double ac_w;
    double temp_c;
    s_lag_cache_t lag_i; /* current response */
    s_lag_cache_t lag_t; /* temperature */
};

static int s_pidx(uint16_t cmd)
{
    for (int i = 0; i < P_COUNT; i++)
        if (s_persist_cmd[i] == cmd)
            return i;
    return -1;
}

static double s_clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---------------------------------------------------------------------------------------
   Life cycle, power
   --------------------------------------------------------------------------------------- */

static bool s_fault_latches(const bic_device_t *dev, bic_dev_fault_t f)
{
    switch (f) {
    case BIC_DEV_FAULT_OVP:
    case BIC_DEV_FAULT_OLP:
    case BIC_DEV_FAULT_SHORT:
        return true;
    case BIC_DEV_FAULT_ISLANDING:
        return !dev->cfg.islanding_auto;
    default:
        return false;
    }
}

static bool s_fault_on(const bic_device_t *dev, bic_dev_fault_t f)
{
    return dev->cause[f] || dev->latched[f];
}

static bic_limits_t s_limits(const bic_device_t *dev)
{
    bic_limits_t lim;
    memset(&lim, 0, sizeof lim);
    bic_limits_get(dev->var, dev->mode, dev->cfg.min_current_20pct ? BIC_MIN_20PCT : BIC_MIN_1PCT,
                   &lim);
    return lim;
}

static bool s_booting(const bic_device_t *dev, int64_t now_us)
{
    return dev->ac_on && now_us < dev->boot_until_us;
}

/* Power-up (§12, §16 items 16 and 21): RAM from EEPROM, the active mode and CAN_CTRL from
 * the stored configuration, OPERATION from OPERATION_INIT, DIRECTION_CTRL 0, latched
 * faults cleared (a cause still present trips again at once). */
static void s_power_up(bic_device_t *dev, int64_t now_us, bool silent)
{
    memcpy(dev->ram, dev->eep, sizeof dev->ram);
    memset(dev->pending, 0, sizeof dev->pending);
    dev->direction = 0;
    dev->mode = (dev->eep[P_BIDIR] & 1) ? BIC_MODE_BATTERY : BIC_MODE_AUTO;
    dev->can_ctrl = dev->eep[P_SYSCFG] & 1;
    bic_sysconfig_t sc;
    bic_sysconfig_decode(dev->eep[P_SYSCFG], &sc);
    switch (sc.operation_init) {
    case BIC_OPINIT_OFF:
        dev->ram[P_OPERATION] = 0;
        break;
    case BIC_OPINIT_PREVIOUS:
        dev->ram[P_OPERATION] = dev->eep[P_OPERATION] ? 1 : 0;
        break;
    default:
        dev->ram[P_OPERATION] = 1;
        break;
    }
    /* A mode change can leave a stored current above the new mode's maximum. */
    bic_limits_t lim = s_limits(dev);
    if (dev->ram[P_IOUT] > lim.iout.max_raw)
        dev->ram[P_IOUT] = lim.iout.max_raw;
    if (dev->ram[P_RIOUT] > lim.rev_iout.max_raw)
        dev->ram[P_RIOUT] = lim.rev_iout.max_raw;
    for (int f = 0; f < BIC_DEV_FAULT_COUNT; f++)
        dev->latched[f] = s_fault_latches(dev, f) && dev->cause[f];
    dev->ovp_natural = false;
    dev->otp_natural = false;
    dev->ac_on = true;
    dev->boot_until_us = silent ? now_us + dev->cfg.boot_silence_us : now_us;
    dev->current_a = 0;
    dev->target_a = 0;
    dev->last_us = now_us;
}

bic_device_t *bic_device_new(const bic_device_config_t *cfg, const battery_config_t *bcfg,
                             int64_t now_us)
{
    if (bic_device_config_validate(cfg, NULL, 0) != 0)
        return NULL;
    bic_device_t *dev = calloc(1, sizeof *dev);
    if (!dev)
        return NULL;
    dev->cfg = *cfg;
    dev->fam = bic_family_bic();
    dev->var = bic_variant_get(dev->fam, cfg->variant);
    dev->bat = battery_new(bcfg);
    if (!dev->var || !dev->bat)
        goto fail;
    if (dev->cfg.svr_v <= 0) {
        int32_t raw = 0;
        bic_default_raw(dev->var, BIC_MODE_AUTO, BIC_CMD_VOUT_SET, &raw);
        dev->cfg.svr_v = raw / 100.0;
    }
    bic_mode_t mode = cfg->battery_mode ? BIC_MODE_BATTERY : BIC_MODE_AUTO;
    for (int i = 0; i < P_COUNT; i++) {
        int32_t raw = 0;
        bic_default_raw(dev->var, mode, s_persist_cmd[i], &raw);
        dev->eep[i] = (uint16_t)raw;
    }
    dev->eep[P_BIDIR] = cfg->battery_mode ? 1 : 0;
    if (cfg->can_ctrl)
        dev->eep[P_SYSCFG] |= 1;
    dev->remote = !cfg->remote_open;
    dev->temp_c = cfg->ambient_c;
    s_power_up(dev, now_us, false);
    return dev;
fail:
    battery_destroy(&dev->bat);
    free(dev);
    return NULL;
}

void bic_device_destroy(bic_device_t **p)
{
    if (!p || !*p)
        return;
    battery_destroy(&(*p)->bat);
    free(*p);
    *p = NULL;
}

/* ---------------------------------------------------------------------------------------
   EEPROM
   --------------------------------------------------------------------------------------- */

static dev_eep_regs_t s_eep_regs(bic_device_t *dev)
{
    return (dev_eep_regs_t){P_COUNT,         dev->ram,        dev->eep,
                            dev->eep_writes, &dev->eep_total, dev->pending};
}

/* What an accepted write does to the EEPROM (§11, §16 item 19). */
static void s_eeprom_after_write(bic_device_t *dev, int idx, int64_t now_us)
{
    bool star = idx == P_VOUT || idx == P_IOUT || idx == P_RVOUT || idx == P_RIOUT;
    bool obeys = star || dev->cfg.all_obey_eep_off;
    dev->last_change_us = now_us;
    dev_eep_regs_t r = s_eep_regs(dev);
    dev_eep_after_write(&r, idx,
                        dev_eep_action(dev->ram[P_SYSCFG], obeys, dev->cfg.fw == BIC_FW_NEW));
}

static void s_eeprom_tick(bic_device_t *dev, int64_t now_us)
{
    dev_eep_regs_t r = s_eep_regs(dev);
    dev_eep_tick(&r, dev->ram[P_SYSCFG], dev->last_change_us, now_us);
}

/* ---------------------------------------------------------------------------------------
   Physics
   --------------------------------------------------------------------------------------- */

static bool s_shutdown(const bic_device_t *dev)
{
    return s_fault_on(dev, BIC_DEV_FAULT_OTP) || dev->otp_natural ||
           s_fault_on(dev, BIC_DEV_FAULT_OVP) || dev->ovp_natural ||
           s_fault_on(dev, BIC_DEV_FAULT_OLP) || s_fault_on(dev, BIC_DEV_FAULT_SHORT) ||
           s_fault_on(dev, BIC_DEV_FAULT_AC_FAIL) || s_fault_on(dev, BIC_DEV_FAULT_ISLANDING) ||
           s_fault_on(dev, BIC_DEV_FAULT_EEPER);
}

static bool s_output_enabled(const bic_device_t *dev, int64_t now_us)
{
    if (!dev->ac_on || s_booting(dev, now_us) || !dev->remote || s_shutdown(dev))
        return false;
    if (dev->can_ctrl && dev->ram[P_OPERATION] == 0)
        return false;
    return true;
}

/* CV regulation toward v_target with the current clamped to [-dis_max, chg_max]. */
static double s_regulate(double v_target, double ocv, double r, double dis_max, double chg_max)
{
    if (r < 1e-4)
        r = 1e-4;
    return s_clampd((v_target - ocv) / r, -dis_max, chg_max);
}

/* Share of the rated currents available at an internal temperature (docs/simulator.md,
 * "Temperature derating"): 1 up to S_DERATE_START_C, then linearly down to S_DERATE_MIN at
 * S_DERATE_FULL_C and above. */
static double s_derate(double temp_c)
{
    if (temp_c <= S_DERATE_START_C)
        return 1;
    if (temp_c >= S_DERATE_FULL_C)
        return S_DERATE_MIN;
    return 1 -
           (1 - S_DERATE_MIN) * (temp_c - S_DERATE_START_C) / (S_DERATE_FULL_C - S_DERATE_START_C);
}

/* The current the converter steers toward (§13, §16 items 22-25). */
static double s_target_current(bic_device_t *dev, int64_t now_us)
{
    if (!s_output_enabled(dev, now_us))
        return 0;
    double ocv = battery_ocv_v(dev->bat);
    double r = battery_r_ohm(dev->bat);
    double rev5 = 0.05 * dev->var->rated_current_ca / 100.0;
    double target;
    if (!dev->can_ctrl) {
        /* SVR: auto-detect around the potentiometer voltage with the factory limits. */
        int32_t i_def = 0, ri_def = 0;
        bic_default_raw(dev->var, dev->mode, BIC_CMD_IOUT_SET, &i_def);
        bic_default_raw(dev->var, dev->mode, BIC_CMD_REVERSE_IOUT_SET, &ri_def);
        target = s_regulate(dev->cfg.svr_v, ocv, r, ri_def / 100.0, i_def / 100.0);
    } else if (dev->mode == BIC_MODE_AUTO) {
        target = s_regulate(dev->ram[P_VOUT] / 100.0, ocv, r, dev->ram[P_RIOUT] / 100.0,
                            dev->ram[P_IOUT] / 100.0);
    } else if (dev->direction == 0) {
        /* Charge: CC/CV to VOUT_SET; above it, the 5 % reverse flow discharges. */
        target = s_regulate(dev->ram[P_VOUT] / 100.0, ocv, r, rev5, dev->ram[P_IOUT] / 100.0);
    } else {
        /* Discharge down to REVERSE_VOUT_SET; below it, the 5 % reverse flow charges. */
        target = s_regulate(dev->ram[P_RVOUT] / 100.0, ocv, r, dev->ram[P_RIOUT] / 100.0, rev5);
    }
    double v = ocv > 1 ? ocv : 1;
    double derate = s_derate(dev->temp_c);
    if (target < 0) {
        /* DC->AC: constant power above the rated voltage, max input current below it. */
        double lim = fmin(dev->var->dc_in_current_ca / 100.0, dev->var->dc_in_power_w / v);
        target = fmax(target, -lim * derate);
    } else {
        double lim = fmin(dev->var->rated_current_ca / 100.0, dev->var->rated_power_w / v);
        target = fmin(target, lim * derate);
    }
    return target;
}

/* The first-order lag factor 1 - exp(-dt/tau), cached: the twin steps with a constant dt. */
static double s_lag(s_lag_cache_t *c, double dt, double tau)
{
    if (tau <= 0)
        return 1;
    if (dt != c->dt || tau != c->tau) {
        c->dt = dt;
        c->tau = tau;
        c->alpha = 1 - exp(-dt / tau);
    }
    return c->alpha;
}

static void s_substep(bic_device_t *dev, int64_t now_us, double dt)
{
    dev->output_on = s_output_enabled(dev, now_us);
    dev->target_a = s_target_current(dev, now_us);
    double i = dev->current_a;
    if (!dev->output_on) {
        i = 0; /* shutdown and OFF cut the current at once */
    } else {
        double a = s_lag(&dev->lag_i, dt, dev->cfg.tau_s);
        double next = i + (dev->target_a - i) * a;
        if (dev->cfg.ramp_a_per_s > 0) {
            double step = dev->cfg.ramp_a_per_s * dt;
            next = s_clampd(next, i - step, i + step);
        }
        i = next;
    }
    i = battery_step(dev->bat, i, dt);
    dev->current_a = i;
    double v = battery_voltage_v(dev->bat);
    double dc_w = v * i;
    if (i > 0)
        dev->ac_w = dc_w / dev->cfg.eff_charge;
    else
        dev->ac_w = dc_w * dev->cfg.eff_discharge;
    double loss_w = fabs(dev->ac_w - dc_w);

    double t_target = dev->cfg.ambient_c + dev->cfg.thermal_k_per_w * loss_w;
    double at = s_lag(&dev->lag_t, dt, dev->cfg.thermal_tau_s);
    dev->temp_c += (t_target - dev->temp_c) * at;

    if (dev->temp_c >= S_OTP_C)
        dev->otp_natural = true;
    else if (dev->temp_c <= S_OTP_CLEAR_C)
        dev->otp_natural = false;
    if (dev->temp_c >= S_HI_TEMP_C)
        dev->hi_temp_natural = true;
    else if (dev->temp_c <= S_HI_TEMP_CLEAR_C)
        dev->hi_temp_natural = false;
    /* DC over-voltage protection, latched like an injected OVP. */
    if (dev->ac_on && v * 100.0 > dev->var->ovp_min_cv)
        dev->ovp_natural = true;
}

void bic_device_step(bic_device_t *dev, int64_t now_us)
{
    if (!dev)
        return;
    if (now_us <= dev->last_us) {
        dev->output_on = s_output_enabled(dev, dev->last_us);
        return;
    }
    int64_t t = dev->last_us;
    while (t < now_us) {
        int64_t next = t + (int64_t)(S_MAX_SUBSTEP_S * 1e6);
        /* Stop at the end of the boot silence so the output starts when it ends. */
        if (t < dev->boot_until_us && next > dev->boot_until_us)
            next = dev->boot_until_us;
        if (next > now_us)
            next = now_us;
        s_substep(dev, next, (next - t) / 1e6);
        t = next;
    }
    dev->last_us = now_us;
    if (dev->ac_on)
        s_eeprom_tick(dev, now_us);
    dev->output_on = s_output_enabled(dev, now_us);
}

/* ---------------------------------------------------------------------------------------
   Status registers
   --------------------------------------------------------------------------------------- */

static int s_fan_rpm(const bic_device_t *dev, int fan)
{
    if (!dev->ac_on || dev->cfg.fw == BIC_FW_OLD)
        return 0;
    if (fan == 0 && dev->cause[BIC_DEV_FAULT_FAN_FAIL])
        return 0;
    double rpm = 1500 + fmax(0, dev->temp_c - 35) * 400;
    rpm = fmin(rpm, 12000);
    if (fan == 1)
        rpm *= 0.97;
    return (int)lround(rpm);
}

static uint16_t s_fault_status(const bic_device_t *dev)
{
    uint16_t r = 0;
    if (dev->cause[BIC_DEV_FAULT_FAN_FAIL])
        r |= 1u << 0;
    if (s_fault_on(dev, BIC_DEV_FAULT_OTP) || dev->otp_natural)
        r |= 1u << 1;
    if (s_fault_on(dev, BIC_DEV_FAULT_OVP) || dev->ovp_natural)
        r |= 1u << 2;
    if (s_fault_on(dev, BIC_DEV_FAULT_OLP))
        r |= 1u << 3;
    if (s_fault_on(dev, BIC_DEV_FAULT_SHORT))
        r |= 1u << 4;
    if (s_fault_on(dev, BIC_DEV_FAULT_AC_FAIL) || s_fault_on(dev, BIC_DEV_FAULT_ISLANDING))
        r |= 1u << 5;
    if (!dev->output_on)
        r |= 1u << 6;
    if (dev->cause[BIC_DEV_FAULT_HI_TEMP] || dev->hi_temp_natural)
        r |= 1u << 7;
    if (dev->cause[BIC_DEV_FAULT_HV_OVP])
        r |= 1u << 8;
    return r;
}

static uint16_t s_system_status(const bic_device_t *dev, int64_t now_us)
{
    uint16_t r = 1u << 0; /* a single unit is its own master */
    if (dev->output_on)
        r |= 1u << 1; /* DC_OK */
    if (dev->ac_on && !s_fault_on(dev, BIC_DEV_FAULT_AC_FAIL) &&
        !s_fault_on(dev, BIC_DEV_FAULT_ISLANDING))
        r |= 1u << 2; /* PFC_OK */
    if (!s_booting(dev, now_us))
        r |= 1u << 5; /* INITIAL_STATE: 1 = ready on the BIC */
    if (dev->cause[BIC_DEV_FAULT_EEPER])
        r |= 1u << 6;
    return r;
}

/* ---------------------------------------------------------------------------------------
   Register access
   --------------------------------------------------------------------------------------- */

static bic_write_result_t s_check_range(const bic_device_t *dev, const bic_range_t *rg,
                                        uint16_t *raw)
{
    if (*raw >= rg->min_raw && *raw <= rg->max_raw)
        return BIC_WRITE_OK;
    if (dev->cfg.range != BIC_RANGE_CLAMP)
        return BIC_WRITE_OUT_OF_RANGE;
    *raw = *raw < rg->min_raw ? rg->min_raw : rg->max_raw;
    return BIC_WRITE_CLAMPED;
}

bic_write_result_t bic_device_write(bic_device_t *dev, uint16_t cmd, uint16_t raw, int64_t now_us)
{
    bic_device_step(dev, now_us);
    if (!dev->ac_on || s_booting(dev, now_us))
        return BIC_WRITE_UNPOWERED;
    const bic_cmd_t *c = bic_cmd_by_code(dev->fam, cmd);
    if (!c)
        return BIC_WRITE_UNKNOWN;
    if (!c->writable)
        return BIC_WRITE_READ_ONLY;
    bic_limits_t lim = s_limits(dev);
    bic_write_result_t res = BIC_WRITE_OK;
    if (c->len == 1)
        raw &= 0xFF;
    switch (cmd) {
    case BIC_CMD_OPERATION:
    case BIC_CMD_DIRECTION_CTRL:
        if (raw > 1)
            return BIC_WRITE_OUT_OF_RANGE;
        break;
    case BIC_CMD_VOUT_SET:
        res = s_check_range(dev, &lim.vout, &raw);
        break;
    case BIC_CMD_IOUT_SET:
        res = s_check_range(dev, &lim.iout, &raw);
        break;
    case BIC_CMD_REVERSE_VOUT_SET:
        res = s_check_range(dev, &lim.rev_vout, &raw);
        break;
    case BIC_CMD_REVERSE_IOUT_SET:
        res = s_check_range(dev, &lim.rev_iout, &raw);
        break;
    case BIC_CMD_BIDIRECTIONAL_CONFIG:
        if (raw > 1)
            return BIC_WRITE_OUT_OF_RANGE;
        break;
    case BIC_CMD_SYSTEM_CONFIG: {
        if (raw & ~S_SYSCFG_VALID)
            return BIC_WRITE_OUT_OF_RANGE;
        bic_sysconfig_t sc;
        bic_sysconfig_decode(raw, &sc);
        if (sc.operation_init == BIC_OPINIT_RESERVED || sc.eep_config == BIC_EEPCFG_RESERVED)
            return BIC_WRITE_OUT_OF_RANGE;
        /* Old firmware has no EEPROM control: those bits do not stick. */
        if (dev->cfg.fw == BIC_FW_OLD)
            raw &= (uint16_t)~S_SYSCFG_EEP_BITS;
        break;
    }
    default:
        return BIC_WRITE_READ_ONLY;
    }
    if (res == BIC_WRITE_OUT_OF_RANGE)
        return res;

    if (cmd == BIC_CMD_DIRECTION_CTRL) {
        dev->direction = (uint8_t)raw; /* volatile */
        return res;
    }
    int idx = s_pidx(cmd);
    dev->ram[idx] = raw;
    if (cmd == BIC_CMD_SYSTEM_CONFIG && !dev->cfg.can_ctrl_at_power_up)
        dev->can_ctrl = raw & 1;
    s_eeprom_after_write(dev, idx, now_us);
    dev->output_on = s_output_enabled(dev, now_us);
    return res;
}

int bic_device_read(bic_device_t *dev, uint16_t cmd, int64_t now_us, uint8_t data[6], size_t *len)
{
    bic_device_step(dev, now_us);
    if (!dev->ac_on || s_booting(dev, now_us))
        return -1;
    const bic_cmd_t *c = bic_cmd_by_code(dev->fam, cmd);
    if (!c)
        return -1;
    if (dev->cfg.fw == BIC_FW_OLD &&
        (cmd == BIC_CMD_READ_FAN_SPEED_1 || cmd == BIC_CMD_READ_FAN_SPEED_2))
        return -1;
    memset(data, 0, 6);
    *len = c->len;
    int32_t raw = 0;
    bool numeric = true;
    uint8_t m0[6], m1[6];
    switch (cmd) {
    case BIC_CMD_OPERATION:
        raw = dev->ram[P_OPERATION];
        break;
    case BIC_CMD_DIRECTION_CTRL:
        raw = dev->direction;
        break;
    case BIC_CMD_VOUT_SET:
    case BIC_CMD_IOUT_SET:
    case BIC_CMD_REVERSE_VOUT_SET:
    case BIC_CMD_REVERSE_IOUT_SET:
    case BIC_CMD_BIDIRECTIONAL_CONFIG:
    case BIC_CMD_SYSTEM_CONFIG:
        raw = dev->ram[s_pidx(cmd)];
        break;
    case BIC_CMD_FAULT_STATUS:
        raw = s_fault_status(dev);
        break;
    case BIC_CMD_SYSTEM_STATUS:
        raw = s_system_status(dev, now_us);
        break;
    case BIC_CMD_READ_VIN: {
        bool bad =
            s_fault_on(dev, BIC_DEV_FAULT_AC_FAIL) || s_fault_on(dev, BIC_DEV_FAULT_ISLANDING);
        raw = dev_round_raw(bad ? S_AC_FAIL_VIN_V : dev->cfg.ac_v, 0.1, 0, 65535);
        break;
    }
    case BIC_CMD_READ_VOUT:
        raw = dev_round_raw(battery_voltage_v(dev->bat), 0.01, 0, 65535);
        break;
    case BIC_CMD_READ_IOUT:
        raw = dev_round_raw(dev->current_a, 0.01, -32768, 32767);
        break;
    case BIC_CMD_READ_TEMPERATURE_1:
        raw = dev_round_raw(dev->temp_c, 0.1, -400, 1100);
        break;
    case BIC_CMD_READ_FAN_SPEED_1:
        raw = s_fan_rpm(dev, 0);
        break;
    case BIC_CMD_READ_FAN_SPEED_2:
        raw = s_fan_rpm(dev, 1);
        break;
    default:
        numeric = false;
        break;
    }
    if (numeric)
        return bic_raw_to_data(c, raw, data) == BIC_OK ? 0 : -1;

    switch (cmd) {
    case BIC_CMD_MFR_ID_B0B5:
        dev_put_text(data, "MEANWE", 6);
        break;
    case BIC_CMD_MFR_ID_B6B11:
        dev_put_text(data, "LL", 6);
        break;
    case BIC_CMD_MFR_MODEL_B0B5:
    case BIC_CMD_MFR_MODEL_B6B11:
        if (bic_model_encode(dev->fam, dev->cfg.variant, m0, m1) != BIC_OK)
            return -1;
        memcpy(data, cmd == BIC_CMD_MFR_MODEL_B0B5 ? m0 : m1, 6);
        break;
    case BIC_CMD_MFR_REVISION_B0B5:
        memcpy(data, dev->cfg.revision, 6);
        break;
    case BIC_CMD_MFR_LOCATION_B0B2:
        dev_put_text(data, dev->cfg.location, 3);
        break;
    case BIC_CMD_MFR_DATE_B0B5:
        dev_put_text(data, dev->cfg.date, 6);
        break;
    case BIC_CMD_MFR_SERIAL_B0B5:
        dev_put_text(data, dev->cfg.serial, 6);
        break;
    case BIC_CMD_MFR_SERIAL_B6B11:
        dev_put_text(data, strlen(dev->cfg.serial) > 6 ? dev->cfg.serial + 6 : "", 6);
        break;
    case BIC_CMD_SCALING_FACTOR:
        bic_scaling_encode_fixed(data);
        *len = dev->cfg.scaling_short ? 2 : 6;
        break;
    default:
        return -1;
    }
    return 0;
}

int bic_device_handle_frame(bic_device_t *dev, const can_frame_t *req, int64_t now_us,
                            can_frame_t *reply)
{
    if (!dev || !req)
        return 0;
    bic_msg_t msg;
    bic_err_t e = bic_decode_request(dev->fam, req, &msg);
    bic_device_step(dev, now_us);
    if (e != BIC_OK)
        return 0; /* not ours, malformed, too short or unknown: silence */
    bool broadcast = msg.addr == BIC_ADDR_BROADCAST;
    if (!broadcast && msg.addr != dev->cfg.addr)
        return 0;
    if (msg.write) {
        int32_t raw = 0;
        if (!msg.cmd->writable || bic_data_to_raw(msg.cmd, msg.data, msg.len, &raw) != BIC_OK)
            return 0;
        bic_device_write(dev, msg.code, (uint16_t)raw, now_us);
        return 0;
    }
    if (broadcast)
        return 0;
    uint8_t data[6];
    size_t len = 0;
    if (bic_device_read(dev, msg.code, now_us, data, &len) != 0)
        return 0;
    if (!reply)
        return 0;
    return bic_encode_reply(dev->fam, dev->cfg.addr, msg.code, data, len, reply) == BIC_OK ? 1 : 0;
}

/* ---------------------------------------------------------------------------------------
   Getters and controls
   --------------------------------------------------------------------------------------- */

void bic_device_get_state(const bic_device_t *dev, bic_device_state_t *out)
{
    memset(out, 0, sizeof *out);
    out->powered = dev->ac_on;
    out->booting = s_booting(dev, dev->last_us);
    out->output_on = dev->output_on;
    out->battery_mode = dev->mode == BIC_MODE_BATTERY;
    out->can_ctrl = dev->can_ctrl;
    out->discharging = dev->current_a < 0;
    out->dc_v = battery_voltage_v(dev->bat);
    out->dc_a = dev->current_a;
    out->target_a = dev->target_a;
    out->ac_w = dev->ac_w;
    out->soc_pct = battery_soc_pct(dev->bat);
    out->temperature_c = dev->temp_c;
    out->fan_rpm[0] = s_fan_rpm(dev, 0);
    out->fan_rpm[1] = s_fan_rpm(dev, 1);
    out->fault_status = s_fault_status(dev);
    out->system_status = s_system_status(dev, dev->last_us);
    out->eeprom_writes_total = dev->eep_total;
}

int bic_device_register(const bic_device_t *dev, uint16_t cmd, uint16_t *raw)
{
    if (cmd == BIC_CMD_DIRECTION_CTRL) {
        *raw = dev->direction;
        return 0;
    }
    int idx = s_pidx(cmd);
    if (idx < 0)
        return -1;
    *raw = dev->ram[idx];
    return 0;
}

int bic_device_eeprom_value(const bic_device_t *dev, uint16_t cmd, uint16_t *raw)
{
    int idx = s_pidx(cmd);
    if (idx < 0)
        return -1;
    *raw = dev->eep[idx];
    return 0;
}

uint32_t bic_device_eeprom_writes(const bic_device_t *dev, uint16_t cmd)
{
    int idx = s_pidx(cmd);
    return idx < 0 ? 0 : dev->eep_writes[idx];
}

uint32_t bic_device_eeprom_writes_total(const bic_device_t *dev)
{
    return dev->eep_total;
}

bool bic_device_eeprom_pending(const bic_device_t *dev)
{
    for (int i = 0; i < P_COUNT; i++)
        if (dev->pending[i])
            return true;
    return false;
}

static const char *const s_fault_names[BIC_DEV_FAULT_COUNT] = {
    "fan_fail", "otp", "ovp", "olp", "short", "ac_fail", "hi_temp", "hv_ovp", "eeper", "islanding",
};

const char *bic_dev_fault_name(bic_dev_fault_t fault)
{
    if ((int)fault < 0 || fault >= BIC_DEV_FAULT_COUNT)
        return "unknown";
    return s_fault_names[fault];
}

int bic_dev_fault_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < BIC_DEV_FAULT_COUNT; i++)
        if (strcmp(name, s_fault_names[i]) == 0)
            return i;
    return -1;
}

void bic_device_set_fault(bic_device_t *dev, bic_dev_fault_t fault, bool on, int64_t now_us)
{
    if ((int)fault < 0 || fault >= BIC_DEV_FAULT_COUNT)
        return;
    bic_device_step(dev, now_us);
    dev->cause[fault] = on;
    if (on && s_fault_latches(dev, fault))
        dev->latched[fault] = true;
    dev->output_on = s_output_enabled(dev, now_us);
    if (!dev->output_on)
        dev->current_a = 0;
}

bool bic_device_fault_active(const bic_device_t *dev, bic_dev_fault_t fault)
{
    if ((int)fault < 0 || fault >= BIC_DEV_FAULT_COUNT)
        return false;
    if (fault == BIC_DEV_FAULT_OTP && dev->otp_natural)
        return true;
    if (fault == BIC_DEV_FAULT_OVP && dev->ovp_natural)
        return true;
    if (fault == BIC_DEV_FAULT_HI_TEMP && dev->hi_temp_natural)
        return true;
    return s_fault_on(dev, fault);
}

void bic_device_set_ac(bic_device_t *dev, bool on, int64_t now_us)
{
    bic_device_step(dev, now_us);
    if (on == dev->ac_on)
        return;
    if (!on) {
        /* Unpowered: silent, output off, values waiting for a delayed commit are lost. */
        dev->ac_on = false;
        dev->output_on = false;
        dev->current_a = 0;
        dev->target_a = 0;
        dev->ac_w = 0;
        memset(dev->pending, 0, sizeof dev->pending);
        battery_step(dev->bat, 0, 0);
        return;
    }
    s_power_up(dev, now_us, true);
}

bool bic_device_ac_on(const bic_device_t *dev)
{
    return dev->ac_on;
}

void bic_device_power_cycle(bic_device_t *dev, int64_t now_us)
{
    bic_device_set_ac(dev, false, now_us);
    bic_device_set_ac(dev, true, now_us);
}

void bic_device_set_remote(bic_device_t *dev, bool closed, int64_t now_us)
{
    bic_device_step(dev, now_us);
    dev->remote = closed;
    dev->output_on = s_output_enabled(dev, now_us);
    if (!dev->output_on)
        dev->current_a = 0;
}

void bic_device_set_range_policy(bic_device_t *dev, bic_range_policy_t policy)
{
    dev->cfg.range = policy == BIC_RANGE_CLAMP ? BIC_RANGE_CLAMP : BIC_RANGE_IGNORE;
}

void bic_device_set_boot_silence(bic_device_t *dev, int64_t boot_silence_us)
{
    if (boot_silence_us >= 0)
        dev->cfg.boot_silence_us = boot_silence_us;
}

battery_t *bic_device_battery(bic_device_t *dev)
{
    return dev->bat;
}

uint8_t bic_device_addr(const bic_device_t *dev)
{
    return dev->cfg.addr;
}

int bic_device_variant(const bic_device_t *dev)
{
    return dev->cfg.variant;
}

bic_fw_t bic_device_fw(const bic_device_t *dev)
{
    return dev->cfg.fw;
}

const bic_device_config_t *bic_device_config(const bic_device_t *dev)
{
    return &dev->cfg;
}
