/*
 * ctl_group: the household setpoint split over a group of devices (see ctl_group.h).
 */
#include "ctl_group.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* On separate batteries the lead moves to another unit once that one has this much more SOC
 * headroom (%), so two batteries near the same SOC do not swap the lead at every sample. */
#define BALANCE_BAND_PCT 2.0

void ctl_eff_curve_bic2200(ctl_eff_curve_t *c)
{
    c->fixed_w = 20.0;
    c->prop = 0.045;
    c->quad_per_w = 1.2e-5;
}

double ctl_eff_loss_w(const ctl_eff_curve_t *c, double p)
{
    p = fabs(p);
    if (p <= 0.0)
        return 0.0;
    return c->fixed_w + c->prop * p + c->quad_per_w * p * p;
}

double ctl_eff_at(const ctl_eff_curve_t *c, double p)
{
    p = fabs(p);
    if (p <= 0.0)
        return 0.0;
    return p / (p + ctl_eff_loss_w(c, p));
}

void ctl_group_params_defaults(ctl_group_params_t *p)
{
    memset(p, 0, sizeof *p);
    ctl_eff_curve_bic2200(&p->curve);
    p->efficiency = 0.92;
    p->stage_hyst = 0.15;
    p->rotate_wh = 1000.0;
    p->soc_balance = true;
    p->staging = true;
}

int ctl_group_params_validate(const ctl_group_params_t *p, char *err, size_t errlen)
{
    if (!(p->efficiency >= 0.5 && p->efficiency <= 1.0)) {
        snprintf(err, errlen, "group efficiency %.3f: allowed 0.5-1", p->efficiency);
        return -1;
    }
    if (!(p->stage_hyst >= 0.0 && p->stage_hyst <= 1.0)) {
        snprintf(err, errlen, "group staging hysteresis %.3f: allowed 0-1 (a fraction)",
                 p->stage_hyst);
        return -1;
    }
    if (!(p->rotate_wh >= 0.0 && p->rotate_wh <= 1e7)) {
        snprintf(err, errlen, "group rotation energy %.0f Wh: allowed 0 (off) to 10000000",
                 p->rotate_wh);
        return -1;
    }
    if (!(p->curve.fixed_w >= 0.0 && p->curve.prop >= 0.0 && p->curve.prop < 1.0 &&
          p->curve.quad_per_w >= 0.0)) {
        snprintf(err, errlen,
                 "group efficiency curve (fixed %.3f W, prop %.4f, quad %.3g /W): allowed "
                 "fixed >= 0, 0 <= prop < 1, quad >= 0",
                 p->curve.fixed_w, p->curve.prop, p->curve.quad_per_w);
        return -1;
    }
    return 0;
}

void ctl_group_state_init(ctl_group_state_t *s)
{
    memset(s, 0, sizeof *s);
}

const char *ctl_group_why_name(ctl_group_why_t w)
{
    switch (w) {
    case CTL_GU_RUN:
        return "run";
    case CTL_GU_AT_LIMIT:
        return "at_limit";
    case CTL_GU_STANDBY:
        return "standby";
    case CTL_GU_IDLE:
        return "idle";
    case CTL_GU_OFFLINE:
        return "offline";
    case CTL_GU_SOC_LIMIT:
        return "soc_limit";
    case CTL_GU_NO_LIMIT:
        return "no_limit";
    }
    return "?";
}

/* A unit able to take a share, in the order they are started. */
typedef struct {
    int idx;
    double cap_w;    /* AC power limit in the direction */
    double min_w;    /* AC power at the minimum current */
    double headroom; /* SOC headroom in the direction (%) */
    double v;        /* its battery's voltage */
} cand_t;

/* How the running units share: by SOC headroom (separate batteries, balancing), in
 * proportion to their limits (separate batteries otherwise), or the same current each (one
 * battery: identical converters lose least at equal power, and equal commands can go to
 * the units as one broadcast frame on their bus), each within its limit. */
typedef enum { SPLIT_SOC, SPLIT_LIMITS, SPLIT_EQUAL } split_t;

/* AC power of a DC current at v: charging draws more from the grid than reaches the battery,
 * discharging gives less. */
static double s_ac_w(const ctl_group_params_t *p, int dir, int ca, double v)
{
    double dc = ca / 100.0 * v;
    return dir > 0 ? dc / p->efficiency : dc * p->efficiency;
}

/* Split demand (magnitude) over c[0..k-1] by weight, within each cap (water filling). */
static void s_fill(const cand_t *c, const double *w, int k, double demand, double *share)
{
    bool fixed[CTL_GROUP_MAX] = {false};
    double rem = demand;
    for (int i = 0; i < k; i++)
        share[i] = 0.0;
    for (int round = 0; round < k && rem > 1e-9; round++) {
        double wsum = 0.0;
        for (int i = 0; i < k; i++)
            if (!fixed[i])
                wsum += w[i];
        if (wsum <= 0.0)
            break;
        bool clipped = false;
        for (int i = 0; i < k; i++) {
            if (fixed[i])
                continue;
            double s = rem * w[i] / wsum;
            if (s >= c[i].cap_w) {
                share[i] = c[i].cap_w;
                fixed[i] = true;
                clipped = true;
            }
        }
        rem = demand;
        for (int i = 0; i < k; i++)
            if (fixed[i])
                rem -= share[i];
        if (!clipped) {
            for (int i = 0; i < k; i++)
                if (!fixed[i])
                    share[i] = rem * w[i] / wsum;
            rem = 0.0;
        }
    }
}

static void s_weights(const cand_t *c, int k, split_t split, double *w)
{
    for (int i = 0; i < k; i++)
        w[i] = split == SPLIT_SOC      ? fmax(c[i].headroom, 0.5) * c[i].cap_w
               : split == SPLIT_LIMITS ? c[i].cap_w
                                       : c[i].v; /* power in proportion to voltage */
}

/* The fewest units whose limits cover demand (all when none do). */
static int s_k_cap(const cand_t *c, int m, double demand)
{
    double sum = 0.0;
    for (int k = 1; k <= m; k++) {
        sum += c[k - 1].cap_w;
        if (sum >= demand - 1e-6)
            return k;
    }
    return m;
}

/* The number of units with the least loss for demand: at least s_k_cap, and more only while
 * each share stays at or above its unit's minimum. */
static int s_best_k(const ctl_group_params_t *p, const cand_t *c, int m, split_t split,
                    double demand)
{
    int k0 = s_k_cap(c, m, demand);
    int best = k0;
    double best_loss = INFINITY;
    for (int k = k0; k <= m; k++) {
        double w[CTL_GROUP_MAX], share[CTL_GROUP_MAX];
        s_weights(c, k, split, w);
        s_fill(c, w, k, demand, share);
        double loss = 0.0;
        bool below_min = false;
        for (int i = 0; i < k; i++) {
            loss += ctl_eff_loss_w(&p->curve, share[i]);
            if (share[i] < c[i].min_w)
                below_min = true;
        }
        if (k > k0 && below_min)
            break;
        if (loss < best_loss - 1e-9) {
            best_loss = loss;
            best = k;
        }
    }
    return best;
}

/* Candidates in start order: the lead first, then round from it (one battery), or by SOC
 * headroom (separate batteries with balancing). Updates s->lead. */
static int s_order(const ctl_group_params_t *p, ctl_group_state_t *s, const ctl_group_unit_t *units,
                   int n, cand_t *all, const bool *able, bool by_soc, cand_t *c)
{
    if (s->lead < 0 || s->lead >= n)
        s->lead = 0;
    if (by_soc) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (able[i] && (best < 0 || all[i].headroom > all[best].headroom))
                best = i;
        if (!able[s->lead] || all[best].headroom > all[s->lead].headroom + BALANCE_BAND_PCT)
            s->lead = best;
    } else if (p->rotate_wh > 0.0) {
        int least = -1;
        for (int i = 0; i < n; i++)
            if (units[i].online && (least < 0 || units[i].energy_wh < units[least].energy_wh))
                least = i;
        if (least >= 0 && units[s->lead].energy_wh - units[least].energy_wh > p->rotate_wh)
            s->lead = least;
    }
    int m = 0;
    if (able[s->lead])
        c[m++] = all[s->lead];
    if (by_soc) {
        /* the rest by headroom, most first (ties: lower index) */
        bool taken[CTL_GROUP_MAX] = {false};
        taken[s->lead] = true;
        for (;;) {
            int best = -1;
            for (int i = 0; i < n; i++)
                if (able[i] && !taken[i] && (best < 0 || all[i].headroom > all[best].headroom))
                    best = i;
            if (best < 0)
                break;
            taken[best] = true;
            c[m++] = all[best];
        }
    } else {
        for (int j = 1; j < n; j++) {
            int i = (s->lead + j) % n;
            if (able[i])
                c[m++] = all[i];
        }
    }
    return m;
}

void ctl_group_dispatch(const ctl_group_params_t *p, ctl_group_state_t *s,
                        const ctl_group_unit_t *units, int n, double setpoint_w,
                        ctl_group_out_t *out)
{
    memset(out, 0, sizeof *out);
    if (n > CTL_GROUP_MAX)
        n = CTL_GROUP_MAX;
    if (n < 0)
        n = 0;
    int dir = setpoint_w > 0.5 ? 1 : setpoint_w < -0.5 ? -1 : 0;
    double demand = fabs(setpoint_w);

    cand_t all[CTL_GROUP_MAX];
    bool able[CTL_GROUP_MAX] = {false};
    int batteries_seen = -1;
    bool separate = false, all_soc = true;
    for (int i = 0; i < n; i++) {
        const ctl_group_unit_t *u = &units[i];
        int cap_ca = dir >= 0 ? u->max_charge_ca : u->max_discharge_ca;
        all[i].idx = i;
        all[i].cap_w = 0.0;
        all[i].min_w = 0.0;
        all[i].headroom = 0.0;
        all[i].v = u->dc_v;
        if (!u->online) {
            out->why[i] = CTL_GU_OFFLINE;
            continue;
        }
        if (dir == 0) {
            out->why[i] = CTL_GU_IDLE;
            continue;
        }
        if (!(u->dc_v > 0.0) || cap_ca <= 0) {
            out->why[i] = CTL_GU_NO_LIMIT;
            continue;
        }
        if (u->soc_valid && ((dir > 0 && u->soc_pct >= u->max_soc_pct) ||
                             (dir < 0 && u->soc_pct <= u->min_soc_pct))) {
            out->why[i] = CTL_GU_SOC_LIMIT;
            continue;
        }
        all[i].cap_w = s_ac_w(p, dir, cap_ca, u->dc_v);
        int min_ca = u->min_current_ca < cap_ca ? u->min_current_ca : cap_ca;
        all[i].min_w = s_ac_w(p, dir, min_ca, u->dc_v);
        all[i].headroom = dir > 0 ? u->max_soc_pct - u->soc_pct : u->soc_pct - u->min_soc_pct;
        all_soc = all_soc && u->soc_valid;
        if (batteries_seen >= 0 && u->battery != batteries_seen)
            separate = true;
        batteries_seen = u->battery;
        able[i] = true;
        out->eligible++;
        out->why[i] = CTL_GU_STANDBY;
    }
    if (dir == 0 || out->eligible == 0) {
        out->unmet_w = setpoint_w;
        s->running = 0;
        s->dir = dir;
        return;
    }
    bool by_soc = p->soc_balance && separate && all_soc;
    split_t split = by_soc ? SPLIT_SOC : separate ? SPLIT_LIMITS : SPLIT_EQUAL;

    cand_t c[CTL_GROUP_MAX];
    int m = s_order(p, s, units, n, all, able, by_soc, c);

    /* staging, with hysteresis against the units running at the last call */
    int prev = s->dir == dir ? s->running : 0;
    int k;
    if (!p->staging) {
        k = m;
    } else if (prev <= 0) {
        k = s_best_k(p, c, m, split, demand);
    } else {
        int k_up = s_best_k(p, c, m, split, demand / (1.0 + p->stage_hyst));
        int k_dn = s_best_k(p, c, m, split, demand * (1.0 + p->stage_hyst));
        k = prev;
        if (k < k_up)
            k = k_up;
        if (k > k_dn)
            k = k_dn;
    }
    int kc = s_k_cap(c, m, demand);
    if (k < kc)
        k = kc;
    if (k > m)
        k = m;
    if (k < 1)
        k = 1;

    double w[CTL_GROUP_MAX], share[CTL_GROUP_MAX];
    s_weights(c, k, split, w);
    s_fill(c, w, k, demand, share);
    /* the minimum current: a share below a unit's minimum runs at the minimum, or (the only
     * unit, under half the minimum) not at all */
    for (int i = 0; i < k; i++) {
        if (share[i] >= c[i].min_w)
            continue;
        if (k == 1 && share[i] < c[i].min_w / 2.0)
            share[i] = 0.0;
        else
            share[i] = c[i].min_w;
    }

    for (int i = 0; i < k; i++) {
        int idx = c[i].idx;
        if (share[i] <= 0.0)
            continue;
        const ctl_group_unit_t *u = &units[idx];
        int cap_ca = dir > 0 ? u->max_charge_ca : u->max_discharge_ca;
        double dc_w = dir > 0 ? share[i] * p->efficiency : share[i] / p->efficiency;
        /* a half rounds up on every unit alike: the last bits of the float division would
         * otherwise split units meant to get the same current (4 units, 10.10 A: 2.525 A) */
        int ca = (int)lround(dc_w / u->dc_v * 100.0 + 1e-6);
        out->current_ca[idx] = ca > cap_ca ? cap_ca : ca;
        out->power_w[idx] = dir * share[i];
        out->why[idx] = share[i] >= c[i].cap_w - 0.5 ? CTL_GU_AT_LIMIT : CTL_GU_RUN;
        out->total_w += out->power_w[idx];
        out->loss_w += ctl_eff_loss_w(&p->curve, share[i]);
        out->running++;
    }
    out->unmet_w = setpoint_w - out->total_w;
    s->running = out->running;
    s->dir = dir;
}
