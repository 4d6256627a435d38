/*
 * ctl_params: the step function's parameters: defaults, checks, the hourly inheritance,
 * reading them from the configuration, and the small pure helpers the daemon and the twin
 * use with them (SOC table, block hours, quantisation, names).
 */
#include "ctl_step.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void ctl_params_defaults(ctl_params_t *p)
{
    memset(p, 0, sizeof *p);
    p->enabled = true;
    p->charge_tol_w = 10;
    p->loop_gain = 0.5;
    p->fast_gain = 1.0;
    p->step_fast_w = 2000;
    p->step_slow_w = 300;
    p->direction_dwell_ms = 5000;
    p->idle_dwell_ms = 3000;
    p->dwell_max_w = 300;
    p->meter_timeout_ms = 30000;
    p->settle_timeout_ms = 5000;
    p->follow_timeout_ms = 10000;
    p->follow_safe_ms = 10000;
    p->follow_retry_ms = 600000;
    p->telemetry_timeout_ms = 10000;
    p->effect_margin_ms = 500;
    p->meter_latency_ms = 500;
    p->device_tau_ms = 1000;
    p->fast_export_w = 100;
    p->efficiency = 0.92;
    for (int h = 0; h < 24; h++) {
        p->hours[h].max_charge_w = 2000;
        p->hours[h].max_discharge_w = -1600;
        p->hours[h].grid_offset_w = 0;
        p->hours[h].block_time_s = 60;
    }
    p->block_hour_start = -1;
    p->block_hour_stop = -1;
    p->min_current_ca = 90;
    p->quantum_ca = 1; /* the device's resolution (IOUT_SET in 0.01 A) */
    p->idle_enter_ca = 45;
    p->idle_exit_ca = 180;
    p->r_internal_ohm = 0.010;
    p->min_soc_pct = 5;
    p->max_soc_pct = 100;
    p->protect_hyst_pct = 3;
    p->full_hyst_pct = 0.5;
    p->budget_quantile = 0.1;
    p->budget_quantile_charge = 0.2;
    p->pid_p = 1.0;
    p->pid_max_charge_w = 400;
    p->pid_max_discharge_w = -400;
}

void ctl_params_inherit(ctl_params_t *p, const bool set[24][4])
{
    for (int h = 1; h < 24; h++) {
        const ctl_hour_t *prev = &p->hours[h - 1];
        ctl_hour_t *cur = &p->hours[h];
        if (!set[h][0])
            cur->max_charge_w = prev->max_charge_w;
        if (!set[h][1])
            cur->max_discharge_w = prev->max_discharge_w;
        if (!set[h][2])
            cur->grid_offset_w = prev->grid_offset_w;
        if (!set[h][3])
            cur->block_time_s = prev->block_time_s;
    }
}

int ctl_params_validate(const ctl_params_t *p, char *err, size_t errlen)
{
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (err)                                                                                   \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
        return -1;                                                                                 \
    } while (0)
    if (p->min_current_ca <= 0)
        FAIL("minimum current %d cA must be > 0", p->min_current_ca);
    if (p->max_charge_ca < p->min_current_ca)
        FAIL("MaxChargeCurrent %d is below the minimum current %d (A x 100)", p->max_charge_ca,
             p->min_current_ca);
    if (!p->charge_only && p->max_discharge_ca < p->min_current_ca)
        FAIL("MaxDischargeCurrent %d is below the minimum current %d (A x 100)",
             p->max_discharge_ca, p->min_current_ca);
    if (p->quantum_ca < 1 || p->quantum_ca > 1000)
        FAIL("current quantum %d cA out of range; allowed 1-1000", p->quantum_ca);
    if (p->efficiency <= 0.3 || p->efficiency > 1.0)
        FAIL("efficiency %.3f out of range; allowed 0.3-1", p->efficiency);
    if (p->loop_gain <= 0 || p->loop_gain > 2 || p->fast_gain <= 0 || p->fast_gain > 2)
        FAIL("gains must be in (0, 2]");
    if (p->meter_timeout_ms < 1000)
        FAIL("meter timeout %d ms too short; allowed >= 1000", p->meter_timeout_ms);
    if (p->follow_timeout_ms != 0 && p->follow_timeout_ms < p->settle_timeout_ms)
        FAIL("FollowTimeoutSec %d s is shorter than the device's response time %d s; allowed "
             "0 (check off) or %d-600",
             p->follow_timeout_ms / 1000, p->settle_timeout_ms / 1000, p->settle_timeout_ms / 1000);
    if (p->follow_safe_ms < 0 || p->follow_retry_ms < 1000)
        FAIL("FollowSafeSec must be >= 0 and FollowRetrySec >= 1");
    if (p->min_soc_pct < 0 || p->max_soc_pct > 100 || p->min_soc_pct >= p->max_soc_pct)
        FAIL("MinSocPct %d must be below MaxSocPct %d, both 0-100", p->min_soc_pct, p->max_soc_pct);
    if (p->block_hour_start < -1 || p->block_hour_start > 23 || p->block_hour_stop < -1 ||
        p->block_hour_stop > 23)
        FAIL("discharge block hours must be -1 or 0-23");
    for (int h = 0; h < 24; h++) {
        if (p->hours[h].max_charge_w < 0 || p->hours[h].max_discharge_w > 0)
            FAIL("hour %d: MaxChargePower must be >= 0 and MaxDischargePower <= 0", h);
    }
    for (int i = 1; i < p->cap2v_n; i++) {
        if (!(p->cap2v_pct[i] > p->cap2v_pct[i - 1]) || !(p->cap2v_v[i] > p->cap2v_v[i - 1]))
            FAIL("Cap2V table must rise: %g %% = %g V after %g %% = %g V", p->cap2v_pct[i],
                 p->cap2v_v[i], p->cap2v_pct[i - 1], p->cap2v_v[i - 1]);
    }
    return 0;
#undef FAIL
}

double ctl_soc_from_voltage(const ctl_params_t *p, double v)
{
    int n = p->cap2v_n;
    if (n < 1 || !isfinite(v))
        return -1;
    if (n == 1 || v <= p->cap2v_v[0])
        return v <= p->cap2v_v[0] ? p->cap2v_pct[0] : p->cap2v_pct[n - 1];
    if (v >= p->cap2v_v[n - 1])
        return p->cap2v_pct[n - 1];
    for (int i = 1; i < n; i++) {
        if (v <= p->cap2v_v[i]) {
            double f = (v - p->cap2v_v[i - 1]) / (p->cap2v_v[i] - p->cap2v_v[i - 1]);
            return p->cap2v_pct[i - 1] + f * (p->cap2v_pct[i] - p->cap2v_pct[i - 1]);
        }
    }
    return p->cap2v_pct[n - 1];
}

bool ctl_block_hour(const ctl_params_t *p, int hour)
{
    int a = p->block_hour_start, b = p->block_hour_stop;
    if (a < 0 || b < 0)
        return false;
    if (a <= b)
        return hour >= a && hour <= b;
    return hour >= a || hour <= b; /* across midnight, e.g. 22-5 */
}

int ctl_quantise_ca(const ctl_params_t *p, double current_a)
{
    /* One rule: magnitude in centi-amps, rounded half up to the nearest quantum. */
    double ca = fabs(current_a) * 100.0;
    long q = p->quantum_ca > 0 ? p->quantum_ca : 1;
    /* Where every write is persisted, a trim finer than CTL_PERSISTED_QUANTUM_CA is not
     * worth its write. */
    if (p->min_write_interval_ms > 0 && q < CTL_PERSISTED_QUANTUM_CA)
        q = CTL_PERSISTED_QUANTUM_CA;
    long steps = (long)floor(ca / (double)q + 0.5);
    return (int)(steps * q);
}

const char *ctl_mode_name(ctl_mode_t m)
{
    switch (m) {
    case CTL_MODE_NONE:
        return "none";
    case CTL_MODE_IDLE:
        return "idle";
    case CTL_MODE_OFF:
        return "off";
    case CTL_MODE_CHARGE:
        return "charge";
    case CTL_MODE_DISCHARGE:
        return "discharge";
    }
    return "?";
}

const char *ctl_reason_name(ctl_reason_t r)
{
    static const char *names[] = {
        [CTL_R_DISABLED] = "disabled",
        [CTL_R_NO_METER] = "no meter value yet",
        [CTL_R_METER_STALE] = "meter stale",
        [CTL_R_NO_LEASE] = "lease lost",
        [CTL_R_OFFLINE] = "device offline",
        [CTL_R_NO_VOLTAGE] = "no battery voltage",
        [CTL_R_WAIT_EFFECT] = "waiting for the device to follow",
        [CTL_R_WAIT_SAMPLE] = "waiting for a newer meter sample",
        [CTL_R_DEADBAND] = "within deadband",
        [CTL_R_TRACK] = "tracking",
        [CTL_R_IDLE_ZERO] = "idle: demand below the minimum current",
        [CTL_R_IDLE_DWELL] = "idle dwell",
        [CTL_R_DIRECTION_DWELL] = "direction dwell",
        [CTL_R_RATE_LIMIT] = "write rate limit",
        [CTL_R_TELEMETRY_STALE] = "device telemetry stale",
        [CTL_R_BAD_INPUT] = "input not a finite number",
        [CTL_R_NOT_FOLLOWING] = "device does not follow",
        [CTL_R_FOLLOW_SAFE] = "device did not follow: output off",
    };
    if ((unsigned)r < sizeof names / sizeof names[0] && names[r])
        return names[r];
    return "?";
}

const char *ctl_limit_name(ctl_limit_t l)
{
    static const char *names[] = {
        [CTL_L_NONE] = "none",
        [CTL_L_PROFILE_CHARGE] = "hourly charge limit",
        [CTL_L_PROFILE_DISCHARGE] = "hourly discharge limit",
        [CTL_L_DEVICE_CHARGE] = "device charge current limit",
        [CTL_L_DEVICE_DISCHARGE] = "device discharge current limit",
        [CTL_L_BLOCK_HOURS] = "discharge block hours",
        [CTL_L_BLOCK_AFTER_CHARGE] = "discharge blocked after charging",
        [CTL_L_FULL] = "battery full",
        [CTL_L_EMPTY] = "battery empty",
        [CTL_L_VOLTAGE_HIGH] = "battery voltage high",
        [CTL_L_VOLTAGE_LOW] = "battery voltage low",
    };
    if ((unsigned)l < sizeof names / sizeof names[0] && names[l])
        return names[l];
    return "?";
}

#include "config.h"
#include "ctl_tel_period.h"

/* The device's lowest current when [DEVICE] MinCurrent is not set: 1 % of the rated
 * current of the variant, judged from the charge voltage (A x 100). */
int ctl_model_min_current_ca(int charge_voltage_cv)
{
    if (charge_voltage_cv <= 1600)
        return 180;
    if (charge_voltage_cv <= 3000)
        return 90;
    if (charge_voltage_cv <= 6600)
        return 45;
    return 25;
}

/* A BIC's limits from [DEVICE] Id/<id>/. */
static void s_device_limits(const struct config_t *cfg, int id, ctl_params_t *p)
{
    const char *dv = "DEVICE";
    p->charge_voltage_cv = (int)config_int(cfg, dv, "Id/%d/ChargeVoltage", id);
    p->discharge_voltage_cv = (int)config_int(cfg, dv, "Id/%d/DischargeVoltage", id);
    p->max_charge_ca = (int)config_int(cfg, dv, "Id/%d/MaxChargeCurrent", id);
    p->max_discharge_ca = (int)config_int(cfg, dv, "Id/%d/MaxDischargeCurrent", id);
    ctl_params_set_min_current(p, config_has(cfg, dv, "Id/%d/MinCurrent", id)
                                      ? (int)config_int(cfg, dv, "Id/%d/MinCurrent", id)
                                      : ctl_model_min_current_ca(p->charge_voltage_cv));
}

/* An NPB charger's limits from [NPB] Id/<id - 64>/: charge only. The minimum current is
 * CTL_NPB_MIN_PCT of the configured maximum until the gateway's info gives the model's
 * (ctl_params_set_min_current). */
static int s_npb_limits(const struct config_t *cfg, int id, ctl_params_t *p, char *err,
                        size_t errlen)
{
    const char *nb = "NPB";
    int a = id - CTL_NPB_FIRST;
    if (!config_has(cfg, nb, "Id/%d/ChargeVoltage", a) ||
        !config_has(cfg, nb, "Id/%d/MaxChargeCurrent", a)) {
        snprintf(err, errlen,
                 "device %d is the NPB at CAN address %d: [NPB] Id/%d/ChargeVoltage and "
                 "Id/%d/MaxChargeCurrent are required (the charge voltage in V x 100 and the "
                 "largest charge current in A x 100 the controller may ask)",
                 id, a, a, a);
        return -1;
    }
    p->charge_only = true;
    p->charge_voltage_cv = (int)config_int(cfg, nb, "Id/%d/ChargeVoltage", a);
    p->discharge_voltage_cv = 0;
    p->max_charge_ca = (int)config_int(cfg, nb, "Id/%d/MaxChargeCurrent", a);
    p->max_discharge_ca = 0;
    int min_ca = p->max_charge_ca * CTL_NPB_MIN_PCT / 100;
    ctl_params_set_min_current(p, min_ca > 0 ? min_ca : 1);
    return 0;
}

void ctl_params_set_min_current(ctl_params_t *p, int min_ca)
{
    if (min_ca > p->max_charge_ca)
        min_ca = p->max_charge_ca;
    p->min_current_ca = min_ca;
    p->idle_enter_ca = min_ca / 2;
    p->idle_exit_ca = min_ca * 3 / 2;
    if (p->charge_only) {
        /* Surplus only: below its minimum a charger goes idle rather than take the rest
         * from the grid, and starts again a quarter above it. */
        p->idle_enter_ca = min_ca;
        p->idle_exit_ca = min_ca + min_ca / 4;
        p->retune_min_ca = p->max_charge_ca * CTL_NPB_RETUNE_PCT / 100;
    }
}

bool ctl_type_is_none(const char *type)
{
    return strcasecmp(type, "off") == 0 || strcasecmp(type, "None") == 0;
}

int ctl_params_from_config(const struct config_t *cfg, int id, ctl_params_t *p, char *err,
                           size_t errlen)
{
    const char *cc = "CHARGE_CONTROL";
    ctl_params_defaults(p);
    p->dev_id = id;

    const char *type = config_str(cfg, cc, "Id/%d/Type", id);
    p->enabled = config_bool(cfg, cc, "Id/%d/Enable", id) && !ctl_type_is_none(type);
    p->charge_tol_w = (int)config_int(cfg, cc, "Id/%d/ChargeTol", id);
    int offset = (int)config_int(cfg, cc, "Id/%d/ChargePowerOffset", id);
    p->block_hour_start = (int)config_int(cfg, cc, "Id/%d/DischargeBlockHourStart", id);
    p->block_hour_stop = (int)config_int(cfg, cc, "Id/%d/DischargeBlockHourStop", id);
    int block_time = (int)config_int(cfg, cc, "Id/%d/DischargeBlockTimeSec", id);
    p->loop_gain = config_float(cfg, cc, "Id/%d/LoopGain", id);
    p->pid_p = config_float(cfg, cc, "Id/%d/Pid/P", id);
    p->pid_i = config_float(cfg, cc, "Id/%d/Pid/I", id);
    p->pid_d = config_float(cfg, cc, "Id/%d/Pid/D", id);
    p->pid_clock_s = (int)config_int(cfg, cc, "Id/%d/Pid/ClockSec", id);
    p->pid_max_charge_w = (int)config_int(cfg, cc, "Id/%d/Pid/MaxChargePower", id);
    p->pid_max_discharge_w = (int)config_int(cfg, cc, "Id/%d/Pid/MaxDischargePower", id);
    p->direction_dwell_ms = (int)config_int(cfg, cc, "Id/%d/DirectionDwellSec", id) * 1000;
    p->idle_dwell_ms = (int)config_int(cfg, cc, "Id/%d/IdleDwellSec", id) * 1000;
    p->dwell_max_w = (int)config_int(cfg, cc, "Id/%d/DwellMaxPower", id);
    p->step_fast_w = (int)config_int(cfg, cc, "Id/%d/StepUpFast", id);
    p->step_slow_w = (int)config_int(cfg, cc, "Id/%d/StepSlow", id);
    p->min_soc_pct = (int)config_int(cfg, cc, "Id/%d/MinSocPct", id);
    p->max_soc_pct = (int)config_int(cfg, cc, "Id/%d/MaxSocPct", id);
    p->protect_hyst_pct = (double)config_int(cfg, cc, "Id/%d/ProtectHysteresisPct", id);
    /* At the top the device's constant-voltage stage at ChargeVoltage ends the charge by
     * itself; the full cut only stops asking for more, so half a percent is enough to keep
     * it from toggling, and the battery is kept topped up. */
    p->full_hyst_pct =
        p->protect_hyst_pct < 0.5 ? (p->protect_hyst_pct > 0.1 ? p->protect_hyst_pct : 0.1) : 0.5;
    p->meter_timeout_ms = (int)config_int(cfg, cc, "Id/%d/MeterTimeoutSec", id) * 1000;
    p->meter_latency_ms = (int)config_int(cfg, cc, "Id/%d/MeterLatencyMs", id);
    p->follow_timeout_ms = (int)config_int(cfg, cc, "Id/%d/FollowTimeoutSec", id) * 1000;
    p->follow_safe_ms = (int)config_int(cfg, cc, "Id/%d/FollowSafeSec", id) * 1000;
    p->follow_retry_ms = (int)config_int(cfg, cc, "Id/%d/FollowRetrySec", id) * 1000;
    /* Telemetry is stale after five of the gateway's cycles, and never before 10 s (the
     * daemon lengthens it for a gateway that states a longer period). */
    p->telemetry_timeout_ms =
        ctl_tel_stale_ms((int)config_int(cfg, "GATEWAY", "TelemetryPeriodMs"));

    /* Device limits. */
    if (id >= CTL_NPB_FIRST && id <= CTL_NPB_LAST) {
        if (s_npb_limits(cfg, id, p, err, errlen) != 0)
            return -1;
    } else {
        s_device_limits(cfg, id, p);
    }
    p->min_voltage_cv = config_has(cfg, cc, "Id/%d/MinVoltage", id)

                            ? (int)config_int(cfg, cc, "Id/%d/MinVoltage", id)
                            : p->discharge_voltage_cv;
    p->max_voltage_cv = config_has(cfg, cc, "Id/%d/MaxVoltage", id)
                            ? (int)config_int(cfg, cc, "Id/%d/MaxVoltage", id)
                            : p->charge_voltage_cv;

    /* Battery. */
    size_t n = config_cap2v(cfg, p->cap2v_pct, p->cap2v_v, CTL_CAP2V_MAX);
    p->cap2v_n = n > CTL_CAP2V_MAX ? CTL_CAP2V_MAX : (int)n;
    p->r_internal_ohm = config_float(cfg, "BAT_0", "InternalResistanceMOhm") / 1000.0;

    /* Hourly profile with the seed's inheritance; without any profile key the flat
     * MaxChargePower/MaxDischargePower apply to every hour. */
    bool any = false;
    bool set[24][4];
    memset(set, 0, sizeof set);
    static const char *fields[4] = {"MaxChargePower", "MaxDischargePower", "GridOffsetPower",
                                    "DischargeBlockTimeSec"};
    for (int h = 0; h < 24; h++)
        for (int f = 0; f < 4; f++)
            if (config_has(cfg, cc, "Id/%d/Profile/Hour/%d/%s", id, h, fields[f]))
                set[h][f] = any = true;
    int flat_c = (int)config_int(cfg, cc, "Id/%d/MaxChargePower", id);
    int flat_d = (int)config_int(cfg, cc, "Id/%d/MaxDischargePower", id);
    for (int h = 0; h < 24; h++) {
        ctl_hour_t *hr = &p->hours[h];
        hr->max_charge_w = any ? 0 : flat_c;
        hr->max_discharge_w = any ? 0 : flat_d;
        hr->grid_offset_w = offset;
        hr->block_time_s = block_time;
        if (set[h][0])
            hr->max_charge_w =
                (int)config_int(cfg, cc, "Id/%d/Profile/Hour/%d/%s", id, h, fields[0]);
        if (set[h][1])
            hr->max_discharge_w =
                (int)config_int(cfg, cc, "Id/%d/Profile/Hour/%d/%s", id, h, fields[1]);
        if (set[h][2])
            hr->grid_offset_w =
                (int)config_int(cfg, cc, "Id/%d/Profile/Hour/%d/%s", id, h, fields[2]);
        if (set[h][3])
            hr->block_time_s =
                (int)config_int(cfg, cc, "Id/%d/Profile/Hour/%d/%s", id, h, fields[3]);
    }
    p->has_profile = any;
    if (any)
        ctl_params_inherit(p, set);
    if (p->charge_only)
        for (int h = 0; h < 24; h++)
            p->hours[h].max_discharge_w = 0;
    return ctl_params_validate(p, err, errlen);
}
