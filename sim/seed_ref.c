/*
 * seed_ref: the Python project's PID charge control, as coded (see seed_ref.h and
 * the seed behaviour description, sections 7.2-7.10). Python semantics are kept where they
 * matter: int() truncates toward zero, round() rounds half to even, % on a negative number
 * gives a non-negative remainder, timedelta.seconds counts whole seconds.
 */
#include "seed_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_TIMEOUT_MS 326000 /* 320 ticks of at least 1.02 s */

void seed_init(seed_state_t *s, int64_t now_ms)
{
    memset(s, 0, sizeof *s);
    s->pid_fresh = true;
    s->t_last_charge_ms = now_ms; /* discharge blocked for the first block time after start */
    s->profile_hour = -1;
    s->next_profile_ms = now_ms + 1000; /* first check about one tick after start */
    s->last_grid_ms = now_ms;
}

/* Python's round(x, ndigits) on a double: correctly rounded via the decimal text. */
static double s_pyround(double x, int ndigits)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.*f", ndigits, x);
    return strtod(buf, NULL);
}

static ctl_hour_t s_profile(const ctl_params_t *p, const seed_state_t *s)
{
    ctl_hour_t h = {0, 0, 0, 60};
    if (p->has_profile && s->profile_hour >= 0 && s->profile_hour < 24)
        h = p->hours[s->profile_hour];
    return h;
}

static void s_pid_reset(seed_state_t *s)
{
    s->pid_fresh = true;
    s->pid_i = 0;
    s->pid_e_prev = 0;
}

int seed_pid_step(const ctl_params_t *p, seed_state_t *s, int64_t now_ms, int grid, int offset)
{
    double e = (double)offset - grid;
    if (s->pid_fresh) {
        s->pid_fresh = false;
        s->pid_last_ms = now_ms;
        s->pid_e_prev = e;
        return 0;
    }
    double dt = p->pid_clock_s > 0 ? (double)p->pid_clock_s
                                   : (double)((now_ms - s->pid_last_ms) / 1000); /* whole s */
    s->pid_last_ms = now_ms;
    double lo = p->pid_max_discharge_w, hi = p->pid_max_charge_w;
    double pt = p->pid_p * e;
    s->pid_i += p->pid_i * e * dt;
    if (s->pid_i < lo / 4)
        s->pid_i = lo / 4;
    if (s->pid_i > hi / 4)
        s->pid_i = hi / 4;
    double d = dt > 0 ? p->pid_d * (e - s->pid_e_prev) / dt : 0;
    s->pid_e_prev = e;
    double out = pt + s->pid_i + d;
    if (out < lo)
        out = lo;
    if (out > hi)
        out = hi;
    return (int)out; /* int() truncates toward zero */
}

static bool s_discharge_blocked(const ctl_params_t *p, const seed_state_t *s, int64_t now_ms,
                                int hour)
{
    int a = p->block_hour_start, b = p->block_hour_stop;
    if (a >= 0 && b >= 0 && a <= hour && hour <= b) /* no window across midnight */
        return true;
    ctl_hour_t h = s_profile(p, s);
    int64_t since_s = (now_ms - s->t_last_charge_ms) / 1000;
    return since_s < h.block_time_s;
}

void seed_tick(const ctl_params_t *p, seed_state_t *s, int64_t now_ms, int hour, seed_step_t *out)
{
    memset(out, 0, sizeof *out);
    if (now_ms >= s->next_profile_ms) {
        s->profile_hour = hour;
        s->next_profile_ms = now_ms + 60000;
    }
    if (!s->timeout_fired && now_ms - s->last_grid_ms >= SEED_TIMEOUT_MS) {
        s->timeout_fired = true;
        out->reset = true; /* idle setpoints, PID reset; the cache is not touched */
        s_pid_reset(s);
    }
    (void)p;
}

void seed_on_grid(const ctl_params_t *p, seed_state_t *s, int64_t now_ms, int hour, int grid,
                  double measured_charge_w, seed_step_t *out)
{
    memset(out, 0, sizeof *out);
    s->last_grid_ms = now_ms;
    s->timeout_fired = false;

    ctl_hour_t h = s_profile(p, s);
    int offset = h.grid_offset_w;
    int tol = p->charge_tol_w;
    int err_w = grid - offset;
    s->in_tol_cnt = abs(err_w) > tol ? 0 : s->in_tol_cnt + 1;

    bool flip = s->have_grid_last && s->grid_last != 0 && abs(s->grid_last) > 2 * tol &&
                abs(grid) >= 300 && ((s->grid_last > 0) != (grid > 0));
    double nw;
    if (flip) {
        out->reset = true;
        s_pid_reset(s);
        s->setpoint_last = 0;
        s->gap_cnt = 0;
        nw = 0;
    } else if (abs(err_w) > tol) {
        nw = s->setpoint_last + seed_pid_step(p, s, now_ms, grid, offset);
    } else if (err_w != 0 && s->in_tol_cnt > 0 && s->in_tol_cnt % 30 == 0) {
        nw = s->setpoint_last - err_w;
    } else {
        s_pid_reset(s);
        s->grid_last = grid;
        s->have_grid_last = true;
        return;
    }

    nw = 10.0 * nearbyint(nw / 10.0); /* round(x, -1): half to even */
    if (nw < h.max_discharge_w)
        nw = h.max_discharge_w;
    if (nw > h.max_charge_w)
        nw = h.max_charge_w;
    bool suppressed = s->gap_cnt > 10 && s->gap_cnt % 60 != 0;
    if (nw < 0 && s_discharge_blocked(p, s, now_ms, hour)) {
        nw = 0;
        s_pid_reset(s);
    }
    if (!suppressed) {
        out->publish = true;
        out->charge_p = (int)nw;
    }
    s->setpoint_last = nw;
    if (nw > 0)
        s->t_last_charge_ms = now_ms;
    double gap = fabs(nw - measured_charge_w);
    if (gap >= 100)
        s->gap_cnt++;
    else if (gap < 80)
        s->gap_cnt = 0;
    s->grid_last = grid;
    s->have_grid_last = true;
}

void seed_amp_cmd(const ctl_params_t *p, double amps, seed_cmd_t *cmd)
{
    double a = s_pyround(amps, 1);
    long tenths = lround(a * 10.0);
    if (((tenths % 2) + 2) % 2 == 1) /* "even tenths only" */
        a += 0.1;
    int a100 = (int)(a * 100.0); /* float truncation: 4.6 -> 459 */
    if (a100 >= 0) {
        if (a100 > p->max_charge_ca)
            a100 = p->max_charge_ca;
        else if (a100 < SEED_IDLE_CA)
            a100 = SEED_IDLE_CA;
        cmd->direction = 0;
    } else {
        a100 = -a100;
        if (a100 > p->max_discharge_ca)
            a100 = p->max_discharge_ca;
        else if (a100 < SEED_IDLE_CA)
            a100 = SEED_IDLE_CA;
        cmd->direction = 1;
    }
    cmd->a100 = a100;
}

int seed_set_pow(const ctl_params_t *p, seed_state_t *s, int charge_p, double dc_v, seed_cmd_t *cmd)
{
    if (s->have_cached && charge_p == s->cached_p)
        return 0;
    s->have_cached = true;
    s->cached_p = charge_p;
    double v = dc_v;
    if (v < 20)
        v = 24;
    seed_amp_cmd(p, charge_p / s_pyround(v, 1), cmd);
    return 1;
}
