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
#include "ctl_step_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    s->ramp_ms = NEVER;
    s->last_arrival_ms = NEVER;
    s->cycle_end_ms = NEVER;
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

/* The careful first step for a new import: up to StepSlow per second of the meter's interval
 * (1-10 s), since it may be an interval load that ends within it. */
static double s_slow_step(const ctl_params_t *p, const ctl_state_t *s)
{
    return p->step_slow_w * fmax(1.0, fmin(s->meter_dt_ms, 10000) / 1000.0);
}

/* Whether a new import of `import_w` is a cycling load come back: about the size (half to
 * twice) of the last import that persisted over samples and ended within CTL_CYCLE_MS.
 * Such a load will persist again, so the careful first step would only cost it for an
 * interval. Not where every write is persisted: there a whole step spends writes. */
static bool s_cycle_back(const ctl_params_t *p, const ctl_state_t *s, const ctl_input_t *in,
                         double import_w)
{
    return p->min_write_interval_ms == 0 && s->cycle_end_ms != NEVER &&
           in->now_ms - s->cycle_end_ms <= CTL_CYCLE_MS && import_w > 0.5 * s->cycle_w &&
           import_w < 2.0 * s->cycle_w;
}

/* Follows the imports that persist over samples and when they end (for s_cycle_back): a run
 * of `run` samples asking for more discharge, on a sample whose error is `err` (+ import). */
static void s_cycle_track(ctl_state_t *s, const ctl_input_t *in, int run, double err)
{
    if (run == 1)
        s->run_import_w = err;
    if (run == 2) {
        s->cycle_on = true;
        s->cycle_w = s->run_import_w;
    }
    if (s->cycle_on && err < -0.5 * s->cycle_w) {
        s->cycle_on = false;
        s->cycle_end_ms = in->now_ms;
    }
}

/* Where every write is persisted (and not in a group), a charge may turn straight into
 * discharge once the gateway's spacing since the last change has passed (see below). */
static bool s_straight_ok(const ctl_params_t *p, const ctl_state_t *s, const ctl_input_t *in)
{
    return p->min_write_interval_ms > 0 && !p->wait_effect && s->last_change_ms != NEVER &&
           in->now_ms - s->last_change_ms >= p->min_write_interval_ms && !ctl_budget_last(p, s);
}

/* Where no write interval is set, a demand for discharge of more than `dwell_max_w` (the
 * sample's, before any step limit) is served on the sample that shows it: past the dwells,
 * and from a charge straight into discharge. A large load or a cloud that takes the whole
 * surplus seldom lasts a single sample, and waiting for the next costs the whole of it for an
 * interval (5 s with a 5 s meter) each time it comes. */
static bool s_large_demand(const ctl_params_t *p, double need_w)
{
    return p->min_write_interval_ms == 0 && -need_w > p->dwell_max_w;
}

/* A fast step (one that cuts export or takes back charge power, gain applied): at most
 * `StepUpFast` per sample. Without a write interval, what the battery runs in its present
 * direction is taken back whole and the bound is on the power set in the other direction:
 * a charge of 2,000 W met by an import of 2,500 W (a cycling oven, a cloud and a load at
 * once) ends in a discharge of 500 W on that sample, not in the 0 W that a bound on the
 * whole step leaves, which costs the import for a meter interval. Where every write is
 * persisted the whole step is bounded: a larger step there spends writes. */
static double s_fast_step(const ctl_params_t *p, double expect, double corr)
{
    double lim = p->step_fast_w;
    double want = expect + corr;
    if (p->min_write_interval_ms == 0 && expect * corr < 0) {
        if (expect > 0 && want < -lim)
            want = -lim;
        if (expect < 0 && want > lim)
            want = lim;
        return want;
    }
    return expect + fmax(-lim, fmin(lim, corr));
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

/* A steady ramp of the household's net power (a cloud's edge, PV rising in the morning):
 * where the last two sample intervals both changed it the same way at a similar rate, the
 * net power is carried on at the slower rate to when the next command takes effect (the
 * sample's age, the device's response and half a sample interval). */
static double s_ramp(const ctl_params_t *p, ctl_state_t *s, double net_w, int64_t sample_ms,
                     int64_t now_ms)
{
    double out = 0;
    if (s->ramp_ms != NEVER && sample_ms > s->ramp_ms && sample_ms - s->ramp_ms < 15000) {
        double dt_s = (double)(sample_ms - s->ramp_ms) / 1000.0;
        double slope = (net_w - s->ramp_net_w) / dt_s;
        double prev = s->ramp_slope_w;
        if (slope * prev > 0) {
            double lo = fabs(slope) < fabs(prev) ? slope : prev;
            double hi = fabs(slope) < fabs(prev) ? prev : slope;
            if (fabs(lo) >= 5 && fabs(lo) >= 0.33 * fabs(hi)) {
                double lead_s = (double)(now_ms - sample_ms + p->device_tau_ms) / 1000.0 + dt_s / 2;
                out = lo * lead_s;
                if (fabs(out) > 300)
                    out = out > 0 ? 300 : -300;
            }
        }
        s->ramp_slope_w = slope;
    } else {
        s->ramp_slope_w = 0;
    }
    s->ramp_net_w = net_w;
    s->ramp_ms = sample_ms;
    return out;
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
bool ctl_command(ctl_state_t *s, const ctl_input_t *in, ctl_mode_t mode, int ca, double ac_w)
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
    s->cmd_meter_w = in->meter_w;
    s->cmd_step_w = ac_w - s->power_w;
    s->mode = mode;
    s->current_ca = running_after ? ca : 0;
    s->power_w = ac_w;
    s->since_ms = in->now_ms;
    s->pending = true;
    return true;
}

void ctl_finish(const ctl_params_t *p, ctl_state_t *s, ctl_output_t *out, bool send)
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
        send = ctl_command(s, in, mode, 0, 0);
    }
    ctl_finish(p, s, out, send);
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

void ctl_step(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in, ctl_output_t *out)
{
    memset(out, 0, sizeof *out);
    out->block_text = "";
    int hour = in->hour >= 0 && in->hour < 24 ? in->hour : 0;
    const ctl_hour_t *hp = &p->hours[hour];
    out->target_w = hp->grid_offset_w;
    out->error_w = in->meter_valid ? in->meter_w - hp->grid_offset_w : 0;

    ctl_limit_t charge_why, discharge_why;
    ctl_protect(p, s, in, out, &charge_why, &discharge_why);
    ctl_tokens_update(p, s, in);

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

    double meas_ac = ctl_dc_to_ac(p, in->dc_v * in->dc_a);
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
    /* Where every write is persisted, a change waits until the device is seen to follow
     * the last one and a meter sample taken after that shows its effect (only a clear
     * export is cut before): trims are spaced by the write interval anyway, and a change
     * made on a prediction that proves wrong costs a write to undo. A group waits too
     * (wait_effect). */
    bool new_sample = in->meter_seq != s->used_seq;
    if (new_sample && in->meter_arrival_ms > s->last_arrival_ms) {
        if (s->last_arrival_ms != NEVER)
            s->meter_dt_ms = in->meter_arrival_ms - s->last_arrival_ms;
        s->last_arrival_ms = in->meter_arrival_ms;
    }
    bool settled =
        !s->pending && new_sample &&
        (s->effect_ms == NEVER || in->meter_arrival_ms >= s->effect_ms + p->effect_margin_ms);
    bool emergency =
        s->pending && new_sample && in->meter_arrival_ms >= s->since_ms + p->effect_margin_ms &&
        in->meter_w - hp->grid_offset_w < -(double)(p->charge_tol_w + p->fast_export_w);
    if (p->min_write_interval_ms >= CTL_BUDGET_MODE_MS) {
        bool fresh_b = settled, emergency_b = emergency;
        bool in_dwell = s->mode != CTL_MODE_DISCHARGE && s->last_dir > 0 &&
                        s->dir_end_ms != NEVER &&
                        in->now_ms - s->dir_end_ms < p->direction_dwell_ms;
        ctl_limit_t why = block_hours                ? CTL_L_BLOCK_HOURS
                          : block_after              ? CTL_L_BLOCK_AFTER_CHARGE
                          : s->discharge_cut         ? discharge_why
                          : hp->max_discharge_w >= 0 ? CTL_L_PROFILE_DISCHARGE
                                                     : CTL_L_NONE;
        bool discharge_ok = why == CTL_L_NONE && !in_dwell;
        double max_c = fmin(hp->max_charge_w, ctl_amps_to_ac(p, 1, p->max_charge_ca, v));
        double max_d = fmin(-hp->max_discharge_w, -ctl_amps_to_ac(p, -1, p->max_discharge_ca, v));
        ctl_step_budget(p, s, in, out, hp->grid_offset_w, meas_ac, fresh_b, emergency_b,
                        discharge_ok, why, charge_why, max_c, max_d);
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
    bool waits = p->min_write_interval_ms > 0 || p->wait_effect;
    /* A sample that arrived after the command and was taken before the telemetry showed
     * the device following it: the telemetry may show the command late while the meter
     * already does (a reading taken before the write reached the device and published after
     * it, a slow gateway or bus, a meter quicker than MeterLatencyMs says). Where the meter
     * has moved since the command by about the command's step (half to one and a half times
     * it, the same way), the battery's power at the sample is taken anywhere between what
     * the telemetry makes of it and the command: the household is taken as unchanged since
     * the sample before unless the meter moved by more than that. Without this, a device
     * that followed at once looks as if the household took its power from the grid, and the
     * command is undone on every other sample. A meter that moved otherwise (a sample taken
     * before the device could move, the household's own change) keeps the telemetry's. */
    double moved = in->meter_w - s->cmd_meter_w;
    bool shows = s->cmd_step_w * moved > 0 && fabs(moved) >= 0.5 * fabs(s->cmd_step_w) &&
                 fabs(moved) <= 1.5 * fabs(s->cmd_step_w);
    if ((s->pending || sample_ms < s->effect_ms) && !waits && shows &&
        in->meter_arrival_ms > s->since_ms && s->ramp_ms != NEVER && sample_ms > s->ramp_ms &&
        sample_ms - s->ramp_ms < 15000) {
        double lo = fmin(base, s->power_w), hi = fmax(base, s->power_w);
        base = fmin(hi, fmax(lo, in->meter_w - s->ramp_net_w));
    }
    if (waits)
        base = expect = meas_ac;
    double err = in->meter_w - base + expect - aim;
    if (new_sample && !waits)
        err += s_ramp(p, s, in->meter_w - base, sample_ms, in->now_ms);
    bool fresh = waits ? settled || emergency : new_sample;

    /* What the law wants, in AC watts (+ charging); `need` is what would meet the sample. */
    double want = s->power_w;
    double need = expect - err;
    bool large_demand = s_large_demand(p, need);
    /* ... and from a charge straight into it (a group's step goes by idle: it waits for its
     * commands' effect on every device) */
    bool large_straight = large_demand && !p->wait_effect;
    bool stepped = false;
    if (was_safe || s->mode == CTL_MODE_NONE)
        want = 0;
    if (fresh) {
        s->used_seq = in->meter_seq;
        if (fabs(err) <= p->charge_tol_w) {
            out->reason = CTL_R_DEADBAND;
            s->import_run = 0;
            /* Within the deadband the errors are summed; once CTL_BAND_SAMPLES samples show a
             * mean error of more than CTL_BAND_MIN_CA (or half the quantum, if coarser), the
             * mean is corrected in one change, so the deadband costs no standing error and
             * few changes. An error that stays on one side over two samples in a row (a small
             * load that persists, not the meter's noise) is corrected at once, by the
             * latest sample's error: a device acting on every sample only. */
            bool same_side = s->band_n > 0 && s->band_last_w * err > 0;
            s->band_last_w = err;
            s->band_sum_w += err;
            s->band_n++;
            int band_ca = p->quantum_ca / 2 > CTL_BAND_MIN_CA ? p->quantum_ca / 2 : CTL_BAND_MIN_CA;
            double band_w = band_ca / 100.0 * v;
            bool running_now = s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE;
            double mean = s->band_sum_w / s->band_n;
            /* Where every write is persisted, only while the gateway's budget is full (its
             * writes would go unused): otherwise the deadband keeps its old meaning. */
            bool spare = !p->wait_effect && ctl_budget_full(p, s);
            if (same_side && (!waits || spare) && running_now && fabs(mean) > band_w) {
                want = s->power_w - err;
                stepped = true;
                out->reason = CTL_R_TRACK;
                s->band_sum_w = 0;
                s->band_n = 0;
            } else if (s->band_n >= CTL_BAND_SAMPLES && p->min_write_interval_ms == 0 &&
                       running_now) {
                if (fabs(mean) > band_w) {
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
            if (corr > 0 || expect > 0) {
                want = s_fast_step(p, expect, corr * p->fast_gain);
                /* A charge taken back goes beyond 0 only where it may turn straight into
                 * discharge (below): for a large demand, whole; where every write is
                 * persisted, by at most the careful first step of a new import. */
                if (corr < 0 && want < 0 && !large_straight)
                    want = s_straight_ok(p, s, in) ? fmax(want, -s_slow_step(p, s)) : 0;
            } else if (s->import_run == 0 && !s_cycle_back(p, s, in, err)) {
                /* New import: a careful first step, since it may be an interval load; a
                 * small one (up to StepSlow per second of the meter's interval, 1-10 s) is
                 * taken whole, a larger one by LoopGain but at most that. Waiting for the
                 * next sample costs the rest of the import for an interval: the longer the
                 * interval, the fewer loads end within it. A cycling load come back is
                 * taken as one that persisted (below). */
                double slow = s_slow_step(p, s);
                if (corr < -slow) {
                    corr *= p->loop_gain;
                    if (corr < -slow)
                        corr = -slow;
                }
                want = expect + corr;
            } else {
                /* The import persisted over another sample, or a cycling load came back:
                 * take it. */
                corr *= p->fast_gain;
                if (corr < -p->step_fast_w)
                    corr = -p->step_fast_w;
                want = expect + corr;
            }
            s->import_run = corr < 0 && expect <= 0 ? s->import_run + 1 : 0;
            s_cycle_track(s, in, s->import_run, err);
            stepped = true;
            out->reason = CTL_R_TRACK;
        }
    } else {
        out->reason = s->pending ? CTL_R_WAIT_EFFECT : CTL_R_WAIT_SAMPLE;
    }

    /* Limits, in order: profile, device, blocks, protection. */
    ctl_limit_t lim = CTL_L_NONE;
    double dev_max_c = ctl_amps_to_ac(p, 1, p->max_charge_ca, v);
    double dev_max_d = ctl_amps_to_ac(p, -1, p->max_discharge_ca, v);
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
    int ca = ctl_quantise_ca(p, ctl_ac_to_amps(p, want, v));
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
    /* The dwells hold back a demand for discharge that one sample shows (a load switching
     * on and off again, a cloud's edge); one that the next sample shows too ends them (where
     * no write interval is set): so the dwell costs at most one sample interval. A large
     * demand is not held back at all (s_large_demand). */
    if (fresh)
        s->discharge_run = dir < 0 && ca >= p->idle_exit_ca ? s->discharge_run + 1 : 0;
    bool persists = (s->discharge_run >= CTL_DWELL_SAMPLES && p->min_write_interval_ms == 0) ||
                    (fresh && large_demand);
    /* Where every write is persisted, charge -> discharge goes straight over too, on a fresh
     * sample once the gateway's spacing since the last change has passed: the discharge current
     * is one write and the direction none, where going by idle costs the idle's writes, three
     * to leave it again and the spacing in between (a cloud's edge every minute kept the
     * battery idle for 20 s each time). Without a write interval, a large demand goes straight
     * over (s_large_demand). The block after charging and the protection still hold: they take
     * `want` to 0. */
    bool straight = dir < 0 && run_dir > 0 && ca >= p->idle_exit_ca && fresh && stepped &&
                    (s_straight_ok(p, s, in) || large_straight);
    if (straight)
        persists = true;
    if (!running || (run_dir < 0 && to_charge) || straight) {
        mode = CTL_MODE_IDLE;
        new_ca = 0;
        if (dir == 0 || ca < p->idle_exit_ca) {
            if (stepped)
                out->reason = CTL_R_IDLE_ZERO;
        } else if (dir < 0 && !persists && s->idle_since_ms != NEVER &&
                   in->now_ms - s->idle_since_ms < idle_dwell) {
            out->reason = CTL_R_IDLE_DWELL;
        } else if (dir < 0 && !persists && s->last_dir > 0 && s->dir_end_ms != NEVER &&
                   in->now_ms - s->dir_end_ms < dir_dwell) {
            out->reason = CTL_R_DIRECTION_DWELL;
        } else {
            mode = dir > 0 ? CTL_MODE_CHARGE : CTL_MODE_DISCHARGE;
            new_ca = ca < p->min_current_ca ? p->min_current_ca : ca;
            if (new_ca > max_ca)
                new_ca = max_ca;
        }
    } else if ((dir != run_dir || ca < p->idle_enter_ca) && !forced && ctl_budget_last(p, s)) {
        /* Where every write is persisted and the gateway's budget is down to its last writes,
         * a running unit that would go idle keeps its direction at the minimum current: the
         * lower current goes out at once (toward safety) and the next surplus or load takes
         * one write, where leaving idle again takes three the budget does not have (a busy
         * day then kept it idle for an hour and more). A limit still takes it to idle. The
         * reason shown is the write budget's. */
        new_ca = p->min_current_ca;
        if (stepped)
            out->reason = CTL_R_RATE_LIMIT;
    } else if (dir != run_dir || ca < p->idle_enter_ca) {
        mode = CTL_MODE_IDLE;
        new_ca = 0;
        if (stepped || forced)
            out->reason = CTL_R_IDLE_ZERO;
    } else if (stepped || (lim != CTL_L_NONE && ca < s->current_ca)) {
        new_ca = ca < p->min_current_ca ? p->min_current_ca : ca;
        if (new_ca > max_ca)
            new_ca = max_ca;
        /* Where every write is persisted and the hour's power limit holds the setpoint, the
         * current is kept anywhere within the deadband below the limit: as the battery's
         * voltage rises, a current at the limit passes it by a few watts a minute, and
         * following it each time would spend a write each time. Passed, it is cut to the
         * middle of that band at once (the gateway lets a lower current through at once). */
        if (p->min_write_interval_ms > 0 &&
            (lim == CTL_L_PROFILE_CHARGE || lim == CTL_L_PROFILE_DISCHARGE)) {
            double cur_w = fabs(ctl_amps_to_ac(p, run_dir, s->current_ca, v));
            double lim_w = fabs(want);
            if (cur_w <= lim_w && cur_w >= lim_w - p->charge_tol_w) {
                new_ca = s->current_ca;
            } else if (cur_w > lim_w) {
                double aim_w = want - run_dir * p->charge_tol_w / 2.0;
                int c = ctl_quantise_ca(p, ctl_ac_to_amps(p, aim_w, v));
                new_ca = c < p->min_current_ca ? p->min_current_ca : c;
            }
        }
        /* Rate limit: changes that only trim the current wait for the write interval;
         * reductions forced by a limit do not, nor, while the gateway's budget is full, a
         * reduction for an error of more than twice the deadband on a fresh sample (charge
         * drawn from the grid, discharge exported): the gateway lets a lower current through
         * at once, and a full bucket would lose that write anyway. Such an error waits for the
         * gateway's spacing only, however low the bucket: the pacing at the daily rate is for
         * the small trims, which are most of them (a step left for 79 s instead of 20 cost
         * more than the writes it saved). */
        bool reduce = new_ca < s->current_ca;
        bool large = stepped && fresh && fabs(err) > 2.0 * p->charge_tol_w;
        bool cut = reduce && (lim != CTL_L_NONE || (large && ctl_budget_full(p, s)));
        int64_t trim_ms = ctl_trim_interval(p, s);
        if (large && trim_ms != INT64_MAX)
            trim_ms = p->min_write_interval_ms;
        if (new_ca != s->current_ca && p->min_write_interval_ms > 0 && s->last_change_ms != NEVER &&
            (trim_ms == INT64_MAX || in->now_ms - s->last_change_ms < trim_ms) && !cut) {
            new_ca = s->current_ca;
            out->reason = CTL_R_RATE_LIMIT;
        }
        /* A charger retuned only for a change worth its write and its output's restart. */
        int delta = new_ca > s->current_ca ? new_ca - s->current_ca : s->current_ca - new_ca;
        if (delta && delta < p->retune_min_ca && !cut) {
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

    double ac = mode == CTL_MODE_CHARGE      ? ctl_amps_to_ac(p, 1, new_ca, v)
                : mode == CTL_MODE_DISCHARGE ? ctl_amps_to_ac(p, -1, new_ca, v)
                                             : 0;
    int prev_ca = s->current_ca;
    ctl_mode_t prev_mode = s->mode;
    bool send = ctl_command(s, in, mode, new_ca, ac);
    if (send && s->tokens >= 0 && p->write_budget_per_day > 0 && p->min_write_interval_ms > 0) {
        /* what the gateway will persist: the current, and on a change of mode the direction,
         * the output and the other current too */
        s->tokens -= mode != prev_mode ? CTL_IDLE_EXIT_WRITES : (new_ca != prev_ca ? 1 : 0);
        if (s->tokens < 0)
            s->tokens = 0;
    }
    /* The block after charging counts from the last time the battery took more than the
     * minimum current (the floor some idle states keep flowing). */
    if (in->dc_a * 100.0 > p->min_current_ca * 1.5)
        s->last_charge_ms = in->now_ms;
    ctl_finish(p, s, out, send);
}
