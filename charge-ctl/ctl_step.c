/*
 * ctl_step: the grid-balance controller's pure step function (see ctl_step.h).
 *
 * The law, per meter sample: new battery power = measured battery power - gain * (grid -
 * target), with a fast gain and a large step for corrections that cut export and a slow
 * gain and a small step for corrections that raise export risk. Every sample is acted on:
 * the error credits the commands the sample cannot have seen yet (the battery power when it
 * was measured, from the telemetry, against where the commands take it). Around the
 * result sit the limits (profile, device, blocks, battery protection), the idle state with
 * hysteresis and dwell, the direction dwell and the write-rate limit.
 */
#include "ctl_step.h"
#include "ctl_follow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NEVER INT64_MIN

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
    p->quantum_ca = 10;
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

void ctl_state_init(ctl_state_t *s, int64_t now_ms)
{
    memset(s, 0, sizeof *s);
    s->mode = CTL_MODE_NONE;
    s->since_ms = now_ms;
    s->effect_ms = NEVER;
    s->dir_end_ms = NEVER;
    s->idle_since_ms = NEVER;
    s->last_charge_ms = NEVER;
    s->last_change_ms = NEVER;
    s->tokens = -1;
    s->tokens_ms = now_ms;
    s->tokens_sync_ms = NEVER;
    s->follow_mode = CTL_MODE_NONE;
    s->follow_ok_ms = now_ms;
    s->follow_mode_ms = now_ms;
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

/* Battery power on the AC side for a DC power (+ charging). */
static double s_dc_to_ac(const ctl_params_t *p, double dc_w)
{
    return dc_w >= 0 ? dc_w / p->efficiency : dc_w * p->efficiency;
}

/* DC current magnitude (A) for an AC battery power. */
static double s_ac_to_amps(const ctl_params_t *p, double ac_w, double v)
{
    double dc = ac_w >= 0 ? ac_w * p->efficiency : ac_w / p->efficiency;
    return fabs(dc) / v;
}

static double s_amps_to_ac(const ctl_params_t *p, int dir, int ca, double v)
{
    double dc = dir * (ca / 100.0) * v;
    return s_dc_to_ac(p, dc);
}

/* Keeps the telemetry's battery power (W AC) with its time, the newest last. */
static void s_power_record(ctl_state_t *s, int64_t t_ms, double ac_w)
{
    int n = s->tel_hist_n;
    if (n > 0 && t_ms <= s->tel_hist_ms[n - 1]) {
        if (t_ms == s->tel_hist_ms[n - 1])
            s->tel_hist_w[n - 1] = ac_w;
        return;
    }
    if (n == CTL_TEL_HISTORY) {
        memmove(s->tel_hist_ms, s->tel_hist_ms + 1,
                (CTL_TEL_HISTORY - 1) * sizeof s->tel_hist_ms[0]);
        memmove(s->tel_hist_w, s->tel_hist_w + 1, (CTL_TEL_HISTORY - 1) * sizeof s->tel_hist_w[0]);
        n--;
    }
    s->tel_hist_ms[n] = t_ms;
    s->tel_hist_w[n] = ac_w;
    s->tel_hist_n = n + 1;
}

/* The battery power at time t_ms as the telemetry showed it: interpolated between the
 * samples around it, the oldest one before the first; after the newest, that one moved
 * toward a command still in progress as the device's first-order response would. */
static double s_power_at(const ctl_params_t *p, const ctl_state_t *s, int64_t t_ms,
                         double fallback_w)
{
    int n = s->tel_hist_n;
    if (n == 0)
        return fallback_w;
    if (t_ms >= s->tel_hist_ms[n - 1]) {
        double w = s->tel_hist_w[n - 1];
        int64_t from = s->tel_hist_ms[n - 1] > s->since_ms ? s->tel_hist_ms[n - 1] : s->since_ms;
        if (s->pending && p->device_tau_ms > 0 && t_ms > from)
            w += (s->power_w - w) * (1 - exp(-(double)(t_ms - from) / p->device_tau_ms));
        return w;
    }
    if (t_ms <= s->tel_hist_ms[0])
        return s->tel_hist_w[0];
    int i = n - 1;
    while (i > 0 && s->tel_hist_ms[i - 1] > t_ms)
        i--;
    double f = (double)(t_ms - s->tel_hist_ms[i - 1]) /
               (double)(s->tel_hist_ms[i] - s->tel_hist_ms[i - 1]);
    return s->tel_hist_w[i - 1] + f * (s->tel_hist_w[i] - s->tel_hist_w[i - 1]);
}

/* Protection with hysteresis, independent of the control law. */
static void s_protect(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in,
                      ctl_output_t *out, ctl_limit_t *charge_why, ctl_limit_t *discharge_why)
{
    *charge_why = CTL_L_NONE;
    *discharge_why = CTL_L_NONE;
    if (!in->telemetry_valid || !isfinite(in->dc_v) || !isfinite(in->dc_a) || in->dc_v <= 0)
        return;
    double ocv = in->dc_v - in->dc_a * p->r_internal_ohm; /* load-corrected */
    double ocv_cv = ocv * 100.0;
    double soc = ctl_soc_from_voltage(p, ocv);
    if (soc >= 0) {
        out->soc_valid = true;
        out->soc_pct = soc;
    }
    /* Voltage hysteresis: a quarter percent of the cut-off voltage (70 mV at 28 V). */
    bool v_high = p->max_voltage_cv > 0 && ocv_cv >= p->max_voltage_cv;
    bool v_high_clear = p->max_voltage_cv <= 0 || ocv_cv < p->max_voltage_cv * 0.9975;
    bool v_low = p->min_voltage_cv > 0 && ocv_cv <= p->min_voltage_cv;
    bool v_low_clear = p->min_voltage_cv <= 0 || ocv_cv > p->min_voltage_cv * 1.0025;
    /* Near the ends of the table the estimate approaches the last entry but need not reach
     * it, so there a twentieth of a percent short of a limit counts as reaching it; inside
     * the table the limit itself holds (a margin there leaves usable energy unused every
     * day), up to the estimate's rounding. */
    double m_hi = 0.005, m_lo = 0.005;
    if (p->cap2v_n > 0 && p->max_soc_pct >= p->cap2v_pct[p->cap2v_n - 1] - 0.5)
        m_hi = 0.05;
    if (p->cap2v_n > 0 && p->min_soc_pct <= p->cap2v_pct[0] + 0.5)
        m_lo = 0.05;
    bool soc_full = soc >= 0 && soc >= p->max_soc_pct - m_hi;
    bool soc_empty = soc >= 0 && soc <= p->min_soc_pct + m_lo;
    /* End of charge by tail current: the device holds ChargeVoltage and the current has
     * tapered to a quarter of what is asked and to three times the minimum current. A
     * current the other way is no taper: the device's voltage setting is below the battery
     * (the follow check reports it, s_follow). */
    bool tail = s->mode == CTL_MODE_CHARGE && !s->pending && p->charge_voltage_cv > 0 &&
                in->dc_v * 100.0 >= p->charge_voltage_cv - 5 &&
                in->dc_a * 100.0 > -p->min_current_ca && s->current_ca >= 2 * p->min_current_ca &&
                in->dc_a * 100.0 < s->current_ca / 4.0 &&
                in->dc_a * 100.0 < 3.0 * p->min_current_ca;
    /* Resume once the state of charge is the hysteresis away from the limit (or, for a
     * tail-current cut, from where it was cut); at least a tenth of a percent, so the cut
     * cannot toggle on the estimate's noise. */
    double hyst_lo = p->protect_hyst_pct > 0.1 ? p->protect_hyst_pct : 0.1;
    double hyst_hi = p->full_hyst_pct > 0.1 ? p->full_hyst_pct : 0.1;

    if (!s->charge_cut && (soc_full || v_high || tail)) {
        s->charge_cut = true;
        s->cut_soc_hi = soc >= 0 ? soc : 100;
        s->charge_cut_why = v_high && !soc_full ? CTL_L_VOLTAGE_HIGH : CTL_L_FULL;
    } else if (s->charge_cut && v_high_clear &&
               (soc < 0 || soc <= fmin(s->cut_soc_hi, p->max_soc_pct) - hyst_hi)) {
        s->charge_cut = false;
    }
    /* Charge taken since the empty cut, counted from the measured current (a noisy voltage
     * cannot fake it). Energy a small surplus put back at the bottom may be used again once
     * the estimate shows it (CTL_REUSE_SOC_PCT) and the battery really took it (at least a
     * minute at the minimum current); otherwise it would stay unused below the hysteresis. */
    if (s->discharge_cut && in->telemetry_ms > s->cut_tel_ms) {
        double dt_s = (double)(in->telemetry_ms - s->cut_tel_ms) / 1000.0;
        if (in->dc_a > 0 && dt_s < 10)
            s->cut_charge_as += in->dc_a * dt_s;
        s->cut_tel_ms = in->telemetry_ms;
    }
    bool reuse = s->discharge_cut_why == CTL_L_EMPTY && soc >= p->min_soc_pct + CTL_REUSE_SOC_PCT &&
                 s->cut_charge_as >= 60.0 * p->min_current_ca / 100.0;
    if (!s->discharge_cut && (soc_empty || v_low)) {
        s->discharge_cut = true;
        s->cut_soc_lo = soc >= 0 ? soc : 0;
        s->discharge_cut_why = v_low && !soc_empty ? CTL_L_VOLTAGE_LOW : CTL_L_EMPTY;
        s->cut_charge_as = 0;
        s->cut_tel_ms = in->telemetry_ms;
    } else if (s->discharge_cut && v_low_clear &&
               (soc < 0 || soc >= p->min_soc_pct + hyst_lo || reuse)) {
        s->discharge_cut = false;
    }
    if (s->charge_cut)
        *charge_why = s->charge_cut_why;
    if (s->discharge_cut)
        *discharge_why = s->discharge_cut_why;
}

/* Has the device followed the last command (read-back and current)? */
static bool s_effect_seen(const ctl_params_t *p, const ctl_state_t *s, const ctl_input_t *in)
{
    if (!in->telemetry_valid || in->telemetry_ms <= s->since_ms)
        return false;
    double a_ca = in->dc_a * 100.0;
    int tol = s->current_ca / 10;
    if (tol < 50)
        tol = 50;
    switch (s->mode) {
    case CTL_MODE_CHARGE:
        return in->operation == 1 && in->direction == 0 && in->iout_ca == s->current_ca &&
               fabs(a_ca - s->current_ca) <= tol;
    case CTL_MODE_DISCHARGE:
        return in->operation == 1 && in->direction == 1 && in->rev_iout_ca == s->current_ca &&
               fabs(-a_ca - s->current_ca) <= tol;
    case CTL_MODE_IDLE:
    case CTL_MODE_OFF:
        return fabs(a_ca) <= p->min_current_ca * 1.5;
    case CTL_MODE_NONE:
        return true;
    }
    return true;
}

/* Record a new command in the state; returns whether it differs from the last one. */
static bool s_command(ctl_state_t *s, const ctl_input_t *in, ctl_mode_t mode, int ca, double ac_w)
{
    bool running_before = s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE;
    bool running_after = mode == CTL_MODE_CHARGE || mode == CTL_MODE_DISCHARGE;
    if (mode == s->mode && (!running_after || ca == s->current_ca)) {
        s->power_w = ac_w;
        return false;
    }
    if (running_before && (!running_after || mode != s->mode))
        s->dir_end_ms = in->now_ms;
    /* The idle dwell counts from leaving a direction; a fresh start has none. */
    if (!running_after && running_before)
        s->idle_since_ms = in->now_ms;
    if (running_after) {
        s->last_dir = mode == CTL_MODE_CHARGE ? 1 : -1;
        s->last_change_ms = in->now_ms;
    }
    s->mode = mode;
    s->current_ca = running_after ? ca : 0;
    s->power_w = ac_w;
    s->since_ms = in->now_ms;
    s->pending = true;
    return true;
}

static void s_finish(const ctl_params_t *p, ctl_state_t *s, ctl_output_t *out, bool send)
{
    out->mode = s->mode;
    out->current_ca = s->current_ca;
    out->power_w = s->power_w;
    out->send = send;
    /* A device that does not follow the command in force is not "tracking" (nor waiting):
     * the reason says so once the cause is reported, and at once when the current flows
     * the other way. */
    bool same = s->mode == s->follow_mode;
    if (!s->follow_safe && s->follow_bad_now && same &&
        (s->follow_cause != CTL_F_NONE || s->follow_opposite_now) &&
        out->reason != CTL_R_FOLLOW_SAFE)
        out->reason = CTL_R_NOT_FOLLOWING;
    out->reason_text = ctl_reason_name(out->reason);
    if ((out->reason == CTL_R_NOT_FOLLOWING || out->reason == CTL_R_FOLLOW_SAFE) &&
        s->follow_reason[0])
        out->reason_text = s->follow_reason;
    out->limit_text = ctl_limit_name(out->limit);
    if (!out->block_text)
        out->block_text = "";
    out->follow_problem = s->follow_cause != CTL_F_NONE;
    out->follow_safe = s->follow_safe;
    out->follow_cause = s->follow_cause;
    out->follow_text = s->follow_cause != CTL_F_NONE ? s->follow_text : "";
    out->follow_count = s->follow_count;
    (void)p;
}

/* The safe state: idle, nothing pending; `mode` NONE when the device cannot be commanded. */
static void s_safe(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in, ctl_output_t *out,
                   ctl_reason_t why, ctl_mode_t mode)
{
    out->reason = why;
    s->safe = true;
    bool send = false;
    /* The device is not judged while another safe state holds: its time starts again. */
    if (why != CTL_R_FOLLOW_SAFE) {
        s->follow_ok_ms = in->now_ms;
        s->follow_bad_now = false;
    }
    if (mode == CTL_MODE_NONE) {
        /* Forget what the device has: a fresh command is sent once it can be reached. */
        if (s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE)
            s->dir_end_ms = in->now_ms;
        s->mode = CTL_MODE_NONE;
        s->current_ca = 0;
        s->power_w = 0;
        s->pending = false;
    } else {
        send = s_command(s, in, mode, 0, 0);
    }
    s_finish(p, s, out, send);
}

/* ---- does the device follow? --------------------------------------------------------------

   The command in force is judged against every telemetry sample once the device's response
   time (settle_timeout_ms) has passed since the mode was commanded (ctl_follow.h). A device
   that has not followed for follow_timeout_ms is reported with the likely cause; when that
   goes on for follow_safe_ms more, the output is switched off (the safe state) until the
   cause is seen gone (a voltage setting put right, a fault cleared) or follow_retry_ms have
   passed, doubled for each further switch-off before the device is seen following again (up
   to 32 times: every try costs two persisted OPERATION writes). The report stays until the device
   is seen following a charge or discharge again (or following in the mode it was reported in). */

static void s_follow_report(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in,
                            ctl_follow_cause_t cause)
{
    if (s->follow_cause == cause && s->follow_cause_mode == s->mode)
        return; /* reported: the text keeps the figures of the report */
    if (s->follow_cause == CTL_F_NONE) {
        s->follow_since_ms = in->now_ms;
        s->follow_count++;
    }
    s->follow_cause = cause;
    s->follow_cause_mode = s->mode;
    ctl_follow_text(p, cause, s->mode, s->current_ca, in, s->follow_text, sizeof s->follow_text);
}

/* Returns true when the step ends in the safe state for a device that does not follow. */
static bool s_follow(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in,
                     ctl_output_t *out)
{
    s->follow_bad_now = false;
    s->follow_opposite_now = false;
    if (p->follow_timeout_ms <= 0) {
        s->follow_cause = CTL_F_NONE;
        s->follow_safe = false;
        s->follow_reason[0] = '\0';
        return false;
    }
    if (s->follow_safe) {
        bool gone = ctl_follow_cause_gone(p, s->follow_cause, in);
        uint32_t doubling = s->follow_offs > 1 ? s->follow_offs - 1 : 0;
        int64_t wait_ms = (int64_t)p->follow_retry_ms << (doubling < 5 ? doubling : 5);
        if (!gone && in->now_ms - s->follow_safe_ms < wait_ms) {
            snprintf(s->follow_reason, sizeof s->follow_reason, "%s: %s",
                     ctl_reason_name(CTL_R_FOLLOW_SAFE), s->follow_text);
            s_safe(p, s, in, out, CTL_R_FOLLOW_SAFE, CTL_MODE_OFF);
            return true;
        }
        /* Try again (from idle, as after any safe state). */
        s->follow_safe = false;
        if (gone)
            s->follow_cause = CTL_F_NONE;
        s->follow_ok_ms = in->now_ms;
    }
    if (s->mode != s->follow_mode) {
        s->follow_mode = s->mode;
        s->follow_mode_ms = s->since_ms;
    }
    if (in->now_ms - s->follow_mode_ms < p->settle_timeout_ms ||
        in->telemetry_ms <= s->follow_mode_ms)
        return false; /* the device's response time */
    ctl_follow_t f;
    ctl_follow_judge(p, s->mode, s->current_ca, in, out->soc_valid ? out->soc_pct : -1, &f);
    if (f.verdict != CTL_FV_NOT_FOLLOWING) {
        s->follow_ok_ms = in->now_ms;
        bool running = s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE;
        if (s->follow_cause != CTL_F_NONE && (running || s->mode == s->follow_cause_mode))
            s->follow_cause = CTL_F_NONE;
        if (running)
            s->follow_offs = 0;
        if (s->follow_cause == CTL_F_NONE)
            s->follow_reason[0] = '\0';
        return false;
    }
    s->follow_bad_now = true;
    s->follow_opposite_now = f.opposite;
    int64_t bad_ms = in->now_ms - s->follow_ok_ms;
    if (bad_ms >= p->follow_timeout_ms)
        s_follow_report(p, s, in, f.cause);
    char text[sizeof s->follow_text];
    const char *why = s->follow_text;
    if (s->follow_cause == CTL_F_NONE) {
        ctl_follow_text(p, f.cause, s->mode, s->current_ca, in, text, sizeof text);
        why = text;
    }
    snprintf(s->follow_reason, sizeof s->follow_reason, "%s: %s",
             ctl_reason_name(CTL_R_NOT_FOLLOWING), why);
    if (s->follow_cause != CTL_F_NONE &&
        bad_ms >= (int64_t)p->follow_timeout_ms + p->follow_safe_ms) {
        s->follow_safe = true;
        s->follow_safe_ms = in->now_ms;
        s->follow_offs++;
        s->follow_bad_now = false;
        snprintf(s->follow_reason, sizeof s->follow_reason, "%s: %s",
                 ctl_reason_name(CTL_R_FOLLOW_SAFE), s->follow_text);
        s_safe(p, s, in, out, CTL_R_FOLLOW_SAFE, CTL_MODE_OFF);
        return true;
    }
    return false;
}

/* ---- write-budget mode ------------------------------------------------------------------

   On firmware without EEP_OFF every current change is an EEPROM write, and the gateway
   allows one per interval (79 s by default). Direction changes are free (DIRECTION_CTRL is
   not persisted), so the controller keeps one current level per direction and steers by
   choosing the direction on every sample; at each write opportunity it moves one level to
   a cautious quantile of the recent demand. OPERATION stays on (switching it is a write
   too); the idle state is used for safety and at the bottom of the battery. The choice
   between directions minimises the power that would flow the wrong way (s_dir_cost). */

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of the demand in one direction (sign * net): over the whole window, with
 * 0 for samples that wanted the other way (a level the demand reaches (1 - q) of the time),
 * or over only the samples that wanted this way (own_only). Also counts those samples. */
static double s_net_quantile(const ctl_state_t *s, double sign, double q, bool own_only, int *count)
{
    double v[CTL_NET_WINDOW];
    int n = 0;
    int pos = 0;
    for (int i = 0; i < s->net_n; i++) {
        double x = sign * s->net_w[i];
        pos += x > 0;
        if (x > 0 || !own_only)
            v[n++] = x > 0 ? x : 0;
    }
    *count = pos;
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof v[0], s_cmp_double);
    int k = (int)floor(q * (n - 1) + 0.5);
    return v[k];
}

/* The cost of a direction choice in the write-budget mode: the battery power that would
 * flow the wrong way. Discharge that is exported is lost for later and counts three times;
 * charge drawn from the grid comes back later minus the round-trip loss and counts once.
 * Demand that stays unmet is not counted: on a day when the battery empties or fills anyway
 * it is met later from the same energy. */
static double s_dir_cost(double net_w, double batt_w)
{
    double g = net_w + batt_w;
    if (batt_w > 0)
        return fmin(fmax(g, 0), batt_w);
    return 3 * fmin(fmax(-g, 0), -batt_w);
}

static void s_step_budget(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in,
                          ctl_output_t *out, double target_w, double meas_ac, bool fresh,
                          bool emergency, bool discharge_ok, ctl_limit_t why_not_discharge,
                          ctl_limit_t why_not_charge, double max_c_w, double max_d_w)
{
    double v = in->dc_v;
    bool running = s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE;
    /* The levels are what the device holds (the gateway may have reset one). */
    if (!s->pending && in->telemetry_ms > s->since_ms) {
        if (in->iout_ca >= p->min_current_ca)
            s->reg_charge_ca = in->iout_ca;
        if (in->rev_iout_ca >= p->min_current_ca)
            s->reg_discharge_ca = in->rev_iout_ca;
    }
    if (s->reg_charge_ca <= 0)
        s->reg_charge_ca = p->min_current_ca;
    if (s->reg_discharge_ca <= 0)
        s->reg_discharge_ca = p->min_current_ca;
    ctl_mode_t mode = running ? s->mode : CTL_MODE_CHARGE;
    bool hold_off = !running && s->last_change_ms != NEVER &&
                    in->now_ms - s->last_change_ms < p->min_write_interval_ms;
    int ca = mode == CTL_MODE_CHARGE ? s->reg_charge_ca : s->reg_discharge_ca;
    out->limit = CTL_L_NONE;

    if (fresh || emergency) {
        s->used_seq = in->meter_seq;
        double net = in->meter_w - meas_ac - target_w; /* demand the battery should meet */
        s->net_w[s->net_head] = net;
        s->net_head = (s->net_head + 1) % CTL_NET_WINDOW;
        if (s->net_n < CTL_NET_WINDOW)
            s->net_n++;

        /* Write opportunity: move the level that is further off its recent demand. */
        bool may_write = s->last_change_ms == NEVER ||
                         in->now_ms - s->last_change_ms >= p->min_write_interval_ms;
        if (may_write) {
            int nc = 0, nd = 0;
            /* Charging too much can only be undone by the next write (discharging is
             * blocked after charging), so its level counts the whole window; too much
             * discharge is undone for free by switching direction, so its level looks at
             * the samples that asked for discharge. At the bottom of the battery (discharge
             * cut) no discharge is served anyway: the charge level then looks at the samples
             * that asked for charge, so that a small surplus is taken in (and used again,
             * s_protect) rather than exported. */
            double want_c = s_net_quantile(s, -1, p->budget_quantile_charge, s->discharge_cut, &nc);
            double want_d = s_net_quantile(s, 1, p->budget_quantile, true, &nd);
            want_c = fmin(want_c, max_c_w);
            want_d = fmin(want_d, max_d_w);
            int ca_c = ctl_quantise_ca(p, s_ac_to_amps(p, want_c, v));
            int ca_d = ctl_quantise_ca(p, s_ac_to_amps(p, -want_d, v));
            ca_c = ca_c < p->min_current_ca  ? p->min_current_ca
                   : ca_c > p->max_charge_ca ? p->max_charge_ca
                                             : ca_c;
            ca_d = ca_d < p->min_current_ca     ? p->min_current_ca
                   : ca_d > p->max_discharge_ca ? p->max_discharge_ca
                                                : ca_d;
            /* Off by how much, weighted by how often that direction is wanted. */
            double err_c = fabs(s_amps_to_ac(p, 1, ca_c - s->reg_charge_ca, v)) * nc;
            double err_d =
                discharge_ok ? fabs(s_amps_to_ac(p, 1, ca_d - s->reg_discharge_ca, v)) * nd : 0;
            bool pick_d = err_d > err_c;
            /* Escape: charge is being drawn from the grid and discharging is not allowed
             * yet; only a write can stop it, so it goes first. */
            double pc_now = s_amps_to_ac(p, 1, s->reg_charge_ca, v);
            bool escape = s->mode == CTL_MODE_CHARGE && !discharge_ok &&
                          s->reg_charge_ca > p->min_current_ca &&
                          net + pc_now > p->charge_tol_w + p->fast_export_w;
            if (escape) {
                pick_d = false;
                ca_c = ctl_quantise_ca(p, s_ac_to_amps(p, net < 0 ? -net : 0, v));
                if (ca_c < p->min_current_ca)
                    ca_c = p->min_current_ca;
            }
            int *reg = pick_d ? &s->reg_discharge_ca : &s->reg_charge_ca;
            int want_ca = pick_d ? ca_d : ca_c;
            int hyst = *reg / 20 > p->quantum_ca ? *reg / 20 : p->quantum_ca;
            if (abs(want_ca - *reg) > hyst) {
                *reg = want_ca;
                s->last_change_ms = in->now_ms;
                mode = pick_d ? CTL_MODE_DISCHARGE : CTL_MODE_CHARGE;
            }
        }

        /* Free steering: the direction whose level fits the demand best. */
        double pc = s->charge_cut ? 0 : s_amps_to_ac(p, 1, s->reg_charge_ca, v);
        double pd = discharge_ok ? -s_amps_to_ac(p, -1, s->reg_discharge_ca, v) : 0;
        double cost_c = s_dir_cost(net, pc);
        double cost_d = discharge_ok ? s_dir_cost(net, -pd) : INFINITY;
        if (cost_d < cost_c)
            mode = CTL_MODE_DISCHARGE;
        else if (cost_c < cost_d)
            mode = CTL_MODE_CHARGE;
        out->reason = CTL_R_TRACK;
        if (hold_off) {
            mode = s->mode == CTL_MODE_NONE ? CTL_MODE_IDLE : s->mode; /* switching on is a write */
            out->reason = CTL_R_RATE_LIMIT;
        }
    } else {
        out->reason = s->pending ? CTL_R_WAIT_EFFECT : CTL_R_WAIT_SAMPLE;
        if (!running)
            mode = s->mode == CTL_MODE_NONE ? CTL_MODE_IDLE : s->mode;
    }
    if (mode == CTL_MODE_DISCHARGE && !discharge_ok) {
        mode = CTL_MODE_CHARGE;
        out->limit = why_not_discharge;
    }
    if (mode == CTL_MODE_CHARGE && s->charge_cut)
        out->limit = why_not_charge;
    ca = mode == CTL_MODE_CHARGE ? s->reg_charge_ca : s->reg_discharge_ca;
    bool on = mode == CTL_MODE_CHARGE || mode == CTL_MODE_DISCHARGE;
    double ac = on ? s_amps_to_ac(p, mode == CTL_MODE_CHARGE ? 1 : -1, ca, v) : 0;
    /* At the bottom with nothing to absorb, the minimum charge current would only cycle
     * grid energy through the battery: switch off (one write, like resuming later). */
    if (mode == CTL_MODE_CHARGE && s->discharge_cut && ca <= p->min_current_ca && s->net_n > 0 &&
        s->net_w[(s->net_head + CTL_NET_WINDOW - 1) % CTL_NET_WINDOW] > 0) {
        mode = CTL_MODE_IDLE;
        ac = 0;
        out->limit = why_not_discharge;
    }
    bool was_running = running;
    int64_t keep_change = s->last_change_ms;
    bool send = s_command(s, in, mode, ca, ac);
    /* Level writes and OPERATION switches count against the interval; a direction change
     * alone does not (DIRECTION_CTRL is not persisted). */
    bool now_running = s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE;
    s->last_change_ms = was_running != now_running ? in->now_ms : keep_change;
    if (in->dc_a * 100.0 > p->min_current_ca * 1.5)
        s->last_charge_ms = in->now_ms;
    s_finish(p, s, out, send);
}

/* The gateway's write budget as this controller expects it: refilled at the daily rate, up to
 * the burst, less what its own commands cost, and set to the gateway's figure whenever a
 * newer one comes. */
static void s_tokens_update(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in)
{
    if (p->write_budget_per_day <= 0 || p->min_write_interval_ms <= 0)
        return;
    if (in->eeprom_tokens >= 0 && in->eeprom_tokens_ms > s->tokens_sync_ms) {
        s->tokens = in->eeprom_tokens;
        s->tokens_sync_ms = in->eeprom_tokens_ms;
        s->tokens_ms = in->now_ms;
        return;
    }
    if (s->tokens < 0) { /* nothing known yet: a full bucket, as the gateway starts */
        s->tokens = p->write_burst;
        s->tokens_ms = in->now_ms;
    }
    if (in->now_ms > s->tokens_ms) {
        s->tokens += (double)(in->now_ms - s->tokens_ms) / 86400000.0 * p->write_budget_per_day;
        if (s->tokens > p->write_burst)
            s->tokens = p->write_burst;
        s->tokens_ms = in->now_ms;
    }
}

/* How long a trim of the current waits after the last change where every write is persisted:
 * the gateway's spacing while more than half the budget's burst is saved up, then the daily
 * rate (so trims alone never empty it), and no trim at all below two writes (a change forced by
 * a limit still goes out: the gateway counts it as a write toward safety). */
static int64_t s_trim_interval(const ctl_params_t *p, const ctl_state_t *s)
{
    int64_t iv = p->min_write_interval_ms;
    if (p->write_budget_per_day <= 0 || iv <= 0 || s->tokens < 0)
        return iv;
    if (s->tokens < 2)
        return INT64_MAX;
    int64_t rate_ms = 86400000 / p->write_budget_per_day;
    if (s->tokens < p->write_burst / 2.0 && rate_ms > iv)
        return rate_ms;
    return iv;
}

void ctl_step(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in, ctl_output_t *out)
{
    memset(out, 0, sizeof *out);
    out->block_text = "";
    int hour = in->hour >= 0 && in->hour < 24 ? in->hour : 0;
    const ctl_hour_t *hp = &p->hours[hour];
    out->target_w = hp->grid_offset_w;
    out->error_w = in->meter_valid ? in->meter_w - hp->grid_offset_w : 0;

    ctl_limit_t charge_why, discharge_why;
    s_protect(p, s, in, out, &charge_why, &discharge_why);
    s_tokens_update(p, s, in);

    bool block_hours = ctl_block_hour(p, hour);
    bool block_after = s->last_charge_ms != NEVER &&
                       in->now_ms - s->last_charge_ms < (int64_t)hp->block_time_s * 1000;
    if (block_hours) {
        out->block_active = true;
        out->block_text = "discharge block hours";
    } else if (block_after) {
        out->block_active = true;
        out->block_text = "discharge blocked after charging";
    }

    if (!in->online) {
        s_safe(p, s, in, out, CTL_R_OFFLINE, CTL_MODE_NONE);
        return;
    }
    if (!in->lease_held) {
        s_safe(p, s, in, out, CTL_R_NO_LEASE, CTL_MODE_NONE);
        return;
    }
    if (!p->enabled || !in->enabled) {
        s_safe(p, s, in, out, CTL_R_DISABLED, CTL_MODE_IDLE);
        return;
    }
    if (!in->meter_valid) {
        s_safe(p, s, in, out, CTL_R_NO_METER, CTL_MODE_IDLE);
        return;
    }
    if (in->now_ms - in->meter_arrival_ms > p->meter_timeout_ms) {
        s_safe(p, s, in, out, CTL_R_METER_STALE, CTL_MODE_IDLE);
        return;
    }
    if (!isfinite(in->meter_w) ||
        (in->telemetry_valid && (!isfinite(in->dc_v) || !isfinite(in->dc_a)))) {
        s_safe(p, s, in, out, CTL_R_BAD_INPUT, CTL_MODE_IDLE);
        return;
    }
    if (!in->telemetry_valid || in->dc_v <= 1.0) {
        s_safe(p, s, in, out, CTL_R_NO_VOLTAGE, CTL_MODE_IDLE);
        return;
    }
    if (p->telemetry_timeout_ms > 0 && in->now_ms - in->telemetry_ms > p->telemetry_timeout_ms) {
        s_safe(p, s, in, out, CTL_R_TELEMETRY_STALE, CTL_MODE_IDLE);
        return;
    }
    if (s_follow(p, s, in, out))
        return;
    bool was_safe = s->safe;
    s->safe = false;
    double v = in->dc_v;

    /* Follow-up of the last command. */
    if (s->pending) {
        if (s_effect_seen(p, s, in)) {
            s->pending = false;
            s->effect_ms = in->telemetry_ms;
        } else if (in->now_ms - s->since_ms >= p->settle_timeout_ms) {
            s->pending = false; /* the device cannot follow (e.g. CV phase): take what it does */
            s->effect_ms = in->now_ms;
        }
    }

    double meas_ac = s_dc_to_ac(p, in->dc_v * in->dc_a);
    /* Idle or off, a reading below half the minimum current is the reading's offset, not
     * power: taken as such, a small positive one would hold every discharge back (the law
     * does not discharge from a charging basis) and keep an import uncovered for good. */
    if (s->mode != CTL_MODE_CHARGE && s->mode != CTL_MODE_DISCHARGE &&
        fabs(in->dc_a) * 100.0 < p->idle_enter_ca)
        meas_ac = 0;
    /* A current the other way, after the device's response time, is not what the command
     * achieves: the law keeps the command's power as its basis (and the follow check reports
     * the device) instead of giving the command up because of what the device does. */
    double min_a = p->min_current_ca / 100.0;
    bool opposite = (s->mode == CTL_MODE_CHARGE && in->dc_a <= -min_a) ||
                    (s->mode == CTL_MODE_DISCHARGE && in->dc_a >= min_a);
    if (opposite && p->follow_timeout_ms > 0 &&
        in->now_ms - s->follow_mode_ms >= p->settle_timeout_ms)
        meas_ac = s->power_w;
    s_power_record(s, in->telemetry_ms, meas_ac);
    if (p->min_write_interval_ms >= CTL_BUDGET_MODE_MS) {
        bool new_sample_b = in->meter_seq != s->used_seq;
        bool fresh_b =
            !s->pending && new_sample_b &&
            (s->effect_ms == NEVER || in->meter_arrival_ms >= s->effect_ms + p->effect_margin_ms);
        bool emergency_b =
            s->pending && new_sample_b &&
            in->meter_arrival_ms >= s->since_ms + p->effect_margin_ms &&
            in->meter_w - hp->grid_offset_w < -(double)(p->charge_tol_w + p->fast_export_w);
        bool in_dwell = s->mode != CTL_MODE_DISCHARGE && s->last_dir > 0 &&
                        s->dir_end_ms != NEVER &&
                        in->now_ms - s->dir_end_ms < p->direction_dwell_ms;
        ctl_limit_t why = block_hours                ? CTL_L_BLOCK_HOURS
                          : block_after              ? CTL_L_BLOCK_AFTER_CHARGE
                          : s->discharge_cut         ? discharge_why
                          : hp->max_discharge_w >= 0 ? CTL_L_PROFILE_DISCHARGE
                                                     : CTL_L_NONE;
        bool discharge_ok = why == CTL_L_NONE && !in_dwell;
        double max_c = fmin(hp->max_charge_w, s_amps_to_ac(p, 1, p->max_charge_ca, v));
        double max_d = fmin(-hp->max_discharge_w, -s_amps_to_ac(p, -1, p->max_discharge_ca, v));
        s_step_budget(p, s, in, out, hp->grid_offset_w, meas_ac, fresh_b, emergency_b, discharge_ok,
                      why, charge_why, max_c, max_d);
        return;
    }
    /* The target itself: any standing error costs grid exchange (import and export alike),
     * so the law aims at the hour's offset, and the deadband below only spaces the changes
     * out (its errors are summed and corrected on average). */
    double aim = hp->grid_offset_w;
    /* Every meter sample is acted on, crediting the commands it cannot have seen yet: the
     * sample was measured meter_latency_ms before it arrived, when the battery ran at the
     * power the telemetry showed then (base); the household's net power at that time is the
     * reading less that power. Where the commands in force take the battery (expect: the
     * command while the device is still moving to it, otherwise what it does) the grid would
     * be the net power plus that; the error to correct is that grid less the aim. So a
     * correction is never made twice, whatever the latency, and no sample is skipped. */
    int64_t sample_ms = in->meter_arrival_ms - p->meter_latency_ms;
    double base = s_power_at(p, s, sample_ms, meas_ac);
    /* A command is in flight for the device's response (three time constants) after it was
     * given; a device not there by then does not follow, and what it does counts. An idle
     * that changed nothing (the first command) moves nothing either. */
    bool cmd_running = s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE;
    bool in_flight = s->pending && sample_ms < s->since_ms + 3 * (int64_t)p->device_tau_ms &&
                     (cmd_running || s->dir_end_ms == s->since_ms);
    double expect = in_flight ? s->power_w : meas_ac;
    if (was_safe || s->mode == CTL_MODE_NONE)
        base = expect = meas_ac;
    double err = in->meter_w - base + expect - aim;
    bool new_sample = in->meter_seq != s->used_seq;
    bool fresh = new_sample;

    /* What the law wants, in AC watts (+ charging). */
    double want = s->power_w;
    bool stepped = false;
    if (was_safe || s->mode == CTL_MODE_NONE)
        want = 0;
    if (fresh) {
        s->used_seq = in->meter_seq;
        if (fabs(err) <= p->charge_tol_w) {
            out->reason = CTL_R_DEADBAND;
            s->import_run = 0;
            /* Within the deadband the errors are summed; once CTL_BAND_SAMPLES samples show a
             * mean error of more than half a current step, the mean is corrected in one
             * change, so the deadband costs no standing error and few changes. */
            s->band_sum_w += err;
            s->band_n++;
            double quantum_w = p->quantum_ca / 100.0 * v;
            /* (Where every write is persisted, the deadband keeps its old meaning.) */
            if (s->band_n >= CTL_BAND_SAMPLES && p->min_write_interval_ms == 0 &&
                (s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE)) {
                double mean = s->band_sum_w / s->band_n;
                if (fabs(mean) > quantum_w / 2) {
                    want = s->power_w - mean;
                    stepped = true;
                    out->reason = CTL_R_TRACK;
                }
                s->band_sum_w = 0;
                s->band_n = 0;
            }
        } else {
            s->band_sum_w = 0;
            s->band_n = 0;
            /* Fast: anything that cuts export, and taking back charge power (charging from
             * the grid is never wanted). Slow: raising discharge power, since interval
             * loads (kettle, oven) switch off again and the discharge would be exported. */
            double corr = -err;
            if (corr > 0) {
                corr *= p->fast_gain;
                if (corr > p->step_fast_w)
                    corr = p->step_fast_w;
                want = expect + corr;
            } else if (expect > 0) {
                corr *= p->fast_gain;
                if (corr < -p->step_fast_w)
                    corr = -p->step_fast_w;
                want = expect + corr;
                if (want < 0)
                    want = 0;
            } else if (s->import_run == 0) {
                /* New import: a careful first step, since it may be an interval load; a
                 * small one (up to StepSlow) is taken whole, a larger one by LoopGain but
                 * at most StepSlow. */
                if (corr < -p->step_slow_w) {
                    corr *= p->loop_gain;
                    if (corr < -p->step_slow_w)
                        corr = -p->step_slow_w;
                }
                want = expect + corr;
            } else {
                /* The import persisted over another sample: take it. */
                corr *= p->fast_gain;
                if (corr < -p->step_fast_w)
                    corr = -p->step_fast_w;
                want = expect + corr;
            }
            s->import_run = corr < 0 && expect <= 0 ? s->import_run + 1 : 0;
            stepped = true;
            out->reason = CTL_R_TRACK;
        }
    } else {
        out->reason = s->pending ? CTL_R_WAIT_EFFECT : CTL_R_WAIT_SAMPLE;
    }

    /* Limits, in order: profile, device, blocks, protection. */
    ctl_limit_t lim = CTL_L_NONE;
    double dev_max_c = s_amps_to_ac(p, 1, p->max_charge_ca, v);
    double dev_max_d = s_amps_to_ac(p, -1, p->max_discharge_ca, v);
    if (want > hp->max_charge_w) {
        want = hp->max_charge_w;
        lim = CTL_L_PROFILE_CHARGE;
    }
    if (want > dev_max_c) {
        want = dev_max_c;
        lim = CTL_L_DEVICE_CHARGE;
    }
    if (want < hp->max_discharge_w) {
        want = hp->max_discharge_w;
        lim = CTL_L_PROFILE_DISCHARGE;
    }
    if (want < dev_max_d) {
        want = dev_max_d;
        lim = CTL_L_DEVICE_DISCHARGE;
    }
    if (want < 0 && block_hours) {
        want = 0;
        lim = CTL_L_BLOCK_HOURS;
    } else if (want < 0 && block_after) {
        want = 0;
        lim = CTL_L_BLOCK_AFTER_CHARGE;
    }
    if (want > 0 && s->charge_cut) {
        want = 0;
        lim = charge_why;
    }
    if (want < 0 && s->discharge_cut) {
        want = 0;
        lim = discharge_why;
    }
    /* The limit that shapes the setpoint stays reported between steps. */
    if (stepped || lim != CTL_L_NONE)
        s->limit = lim;
    out->limit = stepped || lim != CTL_L_NONE ? lim : s->limit;

    /* From watts to a mode and a quantised current. */
    int dir = want > 0 ? 1 : (want < 0 ? -1 : 0);
    int ca = ctl_quantise_ca(p, s_ac_to_amps(p, want, v));
    int max_ca = dir > 0 ? p->max_charge_ca : p->max_discharge_ca;
    bool running = s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE;
    int run_dir = s->mode == CTL_MODE_CHARGE ? 1 : (s->mode == CTL_MODE_DISCHARGE ? -1 : 0);
    ctl_mode_t mode = s->mode;
    int new_ca = s->current_ca;
    bool forced = lim != CTL_L_NONE && want == 0;

    /* Dwell and hysteresis guard the risky way only: leaving idle for discharge waits for
     * the idle dwell, and charge -> discharge for the direction dwell (and the block after
     * charging). Starting to charge, which absorbs export, may happen at once, and a
     * discharge -> charge reversal goes straight over (new current, then direction). */
    bool to_charge = dir > 0 && ca >= p->idle_exit_ca;
    /* Where every write is persisted (a write interval is set), leaving idle and reversing
     * cost writes too (output, direction, the other current): they wait at least as long. */
    int64_t idle_dwell =
        p->idle_dwell_ms > p->min_write_interval_ms ? p->idle_dwell_ms : p->min_write_interval_ms;
    int64_t dir_dwell = p->direction_dwell_ms > p->min_write_interval_ms ? p->direction_dwell_ms
                                                                         : p->min_write_interval_ms;
    if (!running || (run_dir < 0 && to_charge)) {
        mode = CTL_MODE_IDLE;
        new_ca = 0;
        if (dir == 0 || ca < p->idle_exit_ca) {
            if (stepped)
                out->reason = CTL_R_IDLE_ZERO;
        } else if (dir < 0 && s->idle_since_ms != NEVER &&
                   in->now_ms - s->idle_since_ms < idle_dwell) {
            out->reason = CTL_R_IDLE_DWELL;
        } else if (dir < 0 && s->last_dir > 0 && s->dir_end_ms != NEVER &&
                   in->now_ms - s->dir_end_ms < dir_dwell) {
            out->reason = CTL_R_DIRECTION_DWELL;
        } else {
            mode = dir > 0 ? CTL_MODE_CHARGE : CTL_MODE_DISCHARGE;
            new_ca = ca < p->min_current_ca ? p->min_current_ca : ca;
            if (new_ca > max_ca)
                new_ca = max_ca;
        }
    } else if (dir != run_dir || ca < p->idle_enter_ca) {
        mode = CTL_MODE_IDLE;
        new_ca = 0;
        if (stepped || forced)
            out->reason = CTL_R_IDLE_ZERO;
    } else if (stepped || (lim != CTL_L_NONE && ca < s->current_ca)) {
        new_ca = ca < p->min_current_ca ? p->min_current_ca : ca;
        if (new_ca > max_ca)
            new_ca = max_ca;
        /* Rate limit: changes that only trim the current wait for the write interval;
         * reductions forced by a limit do not. */
        bool reduce = new_ca < s->current_ca;
        int64_t trim_ms = s_trim_interval(p, s);
        if (new_ca != s->current_ca && p->min_write_interval_ms > 0 && s->last_change_ms != NEVER &&
            (trim_ms == INT64_MAX || in->now_ms - s->last_change_ms < trim_ms) &&
            !(reduce && lim != CTL_L_NONE)) {
            new_ca = s->current_ca;
            out->reason = CTL_R_RATE_LIMIT;
        }
        /* A charger retuned only for a change worth its write and its output's restart. */
        int delta = new_ca > s->current_ca ? new_ca - s->current_ca : s->current_ca - new_ca;
        if (delta && delta < p->retune_min_ca && !(reduce && lim != CTL_L_NONE)) {
            new_ca = s->current_ca;
            out->reason = CTL_R_DEADBAND;
        }
        if (!stepped && new_ca > s->current_ca)
            new_ca = s->current_ca; /* a limit never raises the current by itself */
    }
    if (p->charge_only && mode == CTL_MODE_DISCHARGE) {
        mode = CTL_MODE_IDLE; /* never asked of a charger (its limits make want >= 0) */
        new_ca = 0;
    }

    double ac = mode == CTL_MODE_CHARGE      ? s_amps_to_ac(p, 1, new_ca, v)
                : mode == CTL_MODE_DISCHARGE ? s_amps_to_ac(p, -1, new_ca, v)
                                             : 0;
    int prev_ca = s->current_ca;
    ctl_mode_t prev_mode = s->mode;
    bool send = s_command(s, in, mode, new_ca, ac);
    if (send && s->tokens >= 0 && p->write_budget_per_day > 0 && p->min_write_interval_ms > 0) {
        /* what the gateway will persist: the current, and on a change of mode the direction,
         * the output and the other current too */
        s->tokens -= mode != prev_mode ? 3 : (new_ca != prev_ca ? 1 : 0);
        if (s->tokens < 0)
            s->tokens = 0;
    }
    /* The block after charging counts from the last time the battery took more than the
     * minimum current (the floor some idle states keep flowing). */
    if (in->dc_a * 100.0 > p->min_current_ca * 1.5)
        s->last_charge_ms = in->now_ms;
    s_finish(p, s, out, send);
}

/* ---- configuration ---------------------------------------------------------------------- */

#include "config.h"

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
    if (config_has(cfg, dv, "Id/%d/MinCurrent", id))
        p->min_current_ca = (int)config_int(cfg, dv, "Id/%d/MinCurrent", id);
    else
        p->min_current_ca = ctl_model_min_current_ca(p->charge_voltage_cv);
    p->idle_enter_ca = p->min_current_ca / 2;
    p->idle_exit_ca = p->min_current_ca * 2;
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
    p->idle_exit_ca = min_ca * 2;
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
    /* Telemetry is stale after five of the gateway's cycles, and never before 10 s. */
    long tel = config_int(cfg, "GATEWAY", "TelemetryPeriodMs") * 5;
    p->telemetry_timeout_ms = tel > 10000 ? (int)tel : 10000;

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
