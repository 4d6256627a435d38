/*
 * twin_group: the offline twin with a group of devices (see twin_group.h).
 */
#include "twin_group.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "battery.h"
#include "config.h"
#include "ctl_group_cfg.h"
#include "ctl_group_run.h"
#include "ctl_step.h"

void twin_group_model_defaults(twin_group_model_t *g)
{
    memset(g, 0, sizeof *g);
    twin_model_defaults(&g->base);
    g->units = 2;
    g->lost_unit = -1;
    for (int i = 0; i < CTL_GROUP_MAX; i++)
        g->unit_soc_pct[i] = g->base.soc_pct;
    g->stage_hyst = NAN; /* from the configuration */
    g->rotate_wh = NAN;
    g->soc_balance = -1;
}

int twin_group_model_validate(const twin_group_model_t *g, char *err, size_t errlen)
{
    if (g->units < 1 || g->units > CTL_GROUP_MAX) {
        snprintf(err, errlen, "--units %d: allowed 1-%d", g->units, CTL_GROUP_MAX);
        return -1;
    }
    if (g->lost_unit >= g->units) {
        snprintf(err, errlen, "--unit-lost: unit %d, the group has units 0-%d", g->lost_unit,
                 g->units - 1);
        return -1;
    }
    if (g->lost_unit >= 0 && !(g->lost_from_s < g->lost_until_s)) {
        snprintf(err, errlen, "--unit-lost: the unit must be lost before it comes back");
        return -1;
    }
    return 0;
}

const char *twin_group_run_name(int k)
{
    static const char *const names[TWIN_G_RUNS] = {"staged", "even", "none", "ideal"};
    return k >= 0 && k < TWIN_G_RUNS ? names[k] : "?";
}

/* ---- one run --------------------------------------------------------------------------- */

typedef struct {
    int kind;
    const twin_group_model_t *g;
    const ctl_params_t *p1;    /* one unit's limits (the configured controller) */
    const ctl_group_cfg_t *gc; /* the group's devices */
    int n;
    battery_t *bat[CTL_GROUP_MAX];
    int nbat;
    double a[CTL_GROUP_MAX];     /* each unit's current (A, + charging) */
    double tgt_a[CTL_GROUP_MAX]; /* ... as set */
    double got[CTL_GROUP_MAX];   /* ... as the battery took it */
    double import_j, export_j, loss_j, lost_grid_j;
    double unit_j[CTL_GROUP_MAX], unit_s[CTL_GROUP_MAX];
    long changes;
    double takeover_s;
    double handover_s;
    double before_w; /* the dispatched total at the last step before the loss */
} grun_t;

static void s_free(grun_t *r)
{
    for (int i = 0; i < r->nbat; i++)
        battery_destroy(&r->bat[i]);
    r->nbat = 0;
}

static int s_batteries(grun_t *r, char *err, size_t errlen)
{
    const twin_group_model_t *g = r->g;
    battery_config_t bc;
    twin_battery_cfg(&g->base, &bc);
    if (g->separate && r->kind != TWIN_G_IDEAL) {
        for (int i = 0; i < r->n; i++) {
            bc.soc_pct = g->unit_soc_pct[i];
            r->bat[r->nbat] = battery_new(&bc);
            if (!r->bat[r->nbat]) {
                snprintf(err, errlen, "cannot create the battery model");
                return -1;
            }
            r->nbat++;
        }
        return 0;
    }
    bc.capacity_ah *= r->n;
    if (g->separate) { /* the ideal battery: the units' charge together */
        double soc = 0;
        for (int i = 0; i < r->n; i++)
            soc += g->unit_soc_pct[i];
        bc.soc_pct = soc / r->n;
    }
    r->bat[0] = battery_new(&bc);
    if (!r->bat[0]) {
        snprintf(err, errlen, "cannot create the battery model");
        return -1;
    }
    r->nbat = 1;
    return 0;
}

static battery_t *s_bat(grun_t *r, int i)
{
    return r->nbat > 1 ? r->bat[i] : r->bat[0];
}

/* The units' power window together at voltage v in this hour (W AC): each within the hour's
 * powers, the model's converter and its own current limits. */
static void s_group_window(const grun_t *r, int hour, double v, double *lo, double *hi)
{
    const twin_model_t *m = &r->g->base;
    const ctl_hour_t *h = &r->p1->hours[hour];
    *hi = 0;
    *lo = 0;
    for (int i = 0; i < r->n; i++) {
        *hi += fmax(fmin(fmin(h->max_charge_w, m->max_charge_w),
                         r->gc->max_charge_ca[i] / 100.0 * v / m->efficiency),
                    0);
        *lo += fmin(fmax(fmax(h->max_discharge_w, -m->max_discharge_w),
                         -r->gc->max_discharge_ca[i] / 100.0 * v * m->efficiency),
                    0);
    }
}

static bool s_lost(const twin_group_model_t *g, int i, double t_s)
{
    return i == g->lost_unit && t_s >= g->lost_from_s && t_s < g->lost_until_s;
}

/* The units' physics for one step: currents, batteries, AC power and losses (curve).
 * Returns the AC power of the group (W, + charging). */
static double s_units_step(grun_t *r, double t_s, double dt)
{
    const twin_group_model_t *g = r->g;
    ctl_eff_curve_t curve;
    ctl_eff_curve_bic2200(&curve);
    double k = g->base.tau_s > 0 ? 1.0 - exp(-dt / g->base.tau_s) : 1.0;
    double got[CTL_GROUP_MAX];
    for (int i = 0; i < r->n; i++) {
        double tgt =
            s_lost(g, i, t_s) ? 0.0 : twin_voltage_limit_a(r->p1, s_bat(r, i), r->tgt_a[i]);
        r->a[i] += (tgt - r->a[i]) * k;
        if (fabs(r->a[i] - tgt) < 0.005)
            r->a[i] = tgt; /* settled (the current's resolution is 0.01 A) */
        if (s_lost(g, i, t_s))
            r->a[i] = 0.0; /* tripped: off at once */
        got[i] = r->a[i];
    }
    if (r->nbat > 1) {
        for (int i = 0; i < r->n; i++)
            got[i] = battery_step(r->bat[i], r->a[i], dt);
    } else {
        double sum = 0;
        for (int i = 0; i < r->n; i++)
            sum += r->a[i];
        double took = battery_step(r->bat[0], sum, dt);
        double ratio = fabs(sum) > 1e-9 ? took / sum : 0.0;
        for (int i = 0; i < r->n; i++)
            got[i] = r->a[i] * ratio;
    }
    double ac_sum = 0;
    for (int i = 0; i < r->n; i++) {
        r->got[i] = got[i];
        double dc = got[i] * battery_voltage_v(s_bat(r, i));
        double ac = 0;
        if (fabs(got[i]) > 0.05) {
            /* charging draws the loss from the grid on top; discharging gives the battery's
             * power less the loss (nothing when the loss takes it all) */
            ac = dc > 0 ? dc + ctl_eff_loss_w(&curve, dc)
                        : fmin(0.0, dc + ctl_eff_loss_w(&curve, dc));
            r->unit_s[i] += dt;
        }
        r->loss_j += (ac - dc) * dt;
        r->unit_j[i] += fabs(ac) * dt;
        ac_sum += ac;
    }
    return ac_sum;
}

/* The ideal battery of the combined power and capacity: meets the net load at once within
 * the units' windows together and the battery's, constant efficiency, no minimum current. */
static double s_ideal_step(grun_t *r, double net_w, int hour, double dt)
{
    const twin_model_t *m = &r->g->base;
    const ctl_hour_t *h = &r->p1->hours[hour];
    battery_t *b = r->bat[0];
    double lo, hi;
    s_group_window(r, hour, battery_ocv_v(b), &lo, &hi);
    double want = -(net_w - h->grid_offset_w);
    want = fmax(fmin(want, hi), lo);
    if (want < 0 && ctl_block_hour(r->p1, hour))
        want = 0;
    double dc = want > 0 ? want * m->efficiency : want / m->efficiency;
    double i = dc / battery_terminal_v(b, dc / battery_ocv_v(b));
    i = twin_voltage_limit_a(r->p1, b, i);
    double got = battery_step(b, i, dt);
    double dcw = got * battery_voltage_v(b);
    double ac = dcw > 0 ? dcw / m->efficiency : dcw * m->efficiency;
    r->loss_j += (ac - dcw) * dt;
    r->unit_j[0] += fabs(ac) * dt;
    return ac;
}

typedef struct {
    const household_t *hh;
    const ctl_params_t *p1;
    const ctl_group_cfg_t *gc; /* the group: its devices' limits, the dispatch's parameters */
} gday_t;

/* Meter samples in flight. */
typedef struct {
    double val[64];
    int64_t at[64];
    int head, n;
} meterq_t;

static int s_run(const gday_t *d, grun_t *r, char *err, size_t errlen)
{
    const twin_group_model_t *g = r->g;
    const twin_model_t *m = &g->base;
    r->p1 = d->p1;
    r->gc = d->gc;
    r->takeover_s = -1;
    r->handover_s = -1;
    if (r->kind != TWIN_G_NONE && s_batteries(r, err, errlen) != 0)
        return -1;

    /* the group (s_resolve), with its batteries as this run has them */
    ctl_group_cfg_t gc = *d->gc;
    for (int i = 0; i < r->n; i++)
        gc.battery[i] = r->nbat > 1 ? i : 0;
    gc.params.staging = r->kind == TWIN_G_STAGED;
    ctl_group_run_t run;
    ctl_group_run_init(&run, 0);
    ctl_group_dev_t devs[CTL_GROUP_MAX];
    memset(devs, 0, sizeof devs);
    ctl_input_t in;
    memset(&in, 0, sizeof in);
    in.enabled = true;

    double span_s = household_span_s(d->hh), t0 = household_start_s(d->hh);
    int64_t step_ms = (int64_t)llround(m->step_s * 1000);
    int64_t end_ms = (int64_t)llround(span_s * 1000);
    int64_t meter_ms = (int64_t)llround(m->meter_period_s * 1000);
    int64_t lat_ms = (int64_t)llround(m->meter_latency_s * 1000);
    int64_t tel_ms = (int64_t)llround(m->telemetry_period_s * 1000);
    double dt = step_ms / 1000.0;
    meterq_t q = {.head = 0, .n = 0};
    int64_t next_sample = (int64_t)llround(m->meter_phase_s * 1000), next_tel = 0, next_tick = 0;

    for (int64_t t = 0; t < end_ms; t += step_ms) {
        double t_s = t / 1000.0;
        int hour = (int)((t / 3600000) % 24);
        double load, pv;
        household_at(d->hh, t0 + t_s, &load, &pv);
        double net = load - pv;
        double batt_ac = 0;
        if (r->kind == TWIN_G_IDEAL)
            batt_ac = s_ideal_step(r, net, hour, dt);
        else if (r->kind != TWIN_G_NONE)
            batt_ac = s_units_step(r, t_s, dt);
        double grid = household_meter_w(load, pv, batt_ac);
        if (grid > 0)
            r->import_j += grid * dt;
        else
            r->export_j -= grid * dt;
        if (g->lost_unit >= 0 && t_s >= g->lost_from_s && t_s < g->lost_until_s)
            r->lost_grid_j += fabs(grid) * dt;
        if (r->kind == TWIN_G_IDEAL || r->kind == TWIN_G_NONE)
            continue;

        bool delivered = false;
        if (t >= next_sample) {
            if (q.n < 64) {
                int idx = (q.head + q.n) % 64;
                q.val[idx] = grid;
                q.at[idx] = t + lat_ms;
                q.n++;
            }
            next_sample += meter_ms;
        }
        while (q.n > 0 && q.at[q.head] <= t) {
            delivered = true;
            in.meter_valid = true;
            in.meter_w = q.val[q.head];
            in.meter_arrival_ms = t;
            in.meter_seq++;
            q.head = (q.head + 1) % 64;
            q.n--;
        }

        /* what the controller knows of each unit: telemetry every period */
        for (int i = 0; i < r->n; i++) {
            battery_t *b = s_bat(r, i);
            devs[i].online = !s_lost(g, i, t_s);
            devs[i].soc_valid = true;
            devs[i].soc_pct = battery_soc_pct(b);
            devs[i].energy_wh = r->unit_j[i] / 3600.0;
            if (t >= next_tel) {
                devs[i].telemetry_valid = true;
                devs[i].telemetry_ms = t;
                devs[i].dc_v = battery_voltage_v(b);
                devs[i].dc_a = round(r->got[i] * 100) / 100; /* READ_IOUT's resolution */
            }
        }
        if (t >= next_tel)
            next_tel += tel_ms;
        bool run_step = delivered || t >= next_tick;
        if (t >= next_tick)
            next_tick += 1000;
        if (!run_step)
            continue;
        in.now_ms = t;
        in.hour = hour;
        in.minute = (int)((t / 60000) % 60);
        ctl_group_run_out_t out;
        ctl_group_run_step(d->p1, &gc, &run, &in, devs, &out);
        bool all_at_limit = true; /* every unit online at a limit (the group's or its own) */
        for (int i = 0; i < r->n; i++) {
            if (out.send[i])
                r->changes++;
            if (devs[i].online)
                r->tgt_a[i] =
                    (out.mode[i] == CTL_MODE_DISCHARGE ? -out.current_ca[i] : out.current_ca[i]) /
                    100.0;
            if (devs[i].online && out.go.why[i] != CTL_GU_AT_LIMIT &&
                out.go.why[i] != CTL_GU_SOC_LIMIT && out.go.why[i] != CTL_GU_NO_LIMIT &&
                out.ctl.limit == CTL_L_NONE)
                all_at_limit = false;
        }
        double total = out.go.total_w;
        if (g->lost_unit >= 0 && t_s < g->lost_from_s)
            r->before_w = total;
        if (g->lost_unit >= 0 && r->handover_s < 0 && t_s >= g->lost_from_s &&
            t_s < g->lost_until_s &&
            (fabs(total - r->before_w) <= 0.05 * fabs(r->before_w) || all_at_limit))
            r->handover_s = t_s - g->lost_from_s;
        if (g->lost_unit >= 0 && r->takeover_s < 0 && t_s >= g->lost_from_s &&
            t_s < g->lost_until_s &&
            (fabs(grid - d->p1->hours[hour].grid_offset_w) < 100 ||
             (all_at_limit && fabs(batt_ac - total) < fmax(100, 0.05 * fabs(total)))))
            r->takeover_s = t_s - g->lost_from_s;
    }
    return 0;
}

static void s_metrics(const grun_t *r, twin_group_metrics_t *o)
{
    memset(o, 0, sizeof *o);
    o->import_kwh = r->import_j / 3.6e6;
    o->export_kwh = r->export_j / 3.6e6;
    o->loss_kwh = r->loss_j / 3.6e6;
    o->lost_grid_kwh = r->lost_grid_j / 3.6e6;
    o->unit_changes = r->changes;
    o->takeover_s = r->takeover_s;
    o->handover_s = r->handover_s;
    for (int i = 0; i < r->n; i++) {
        o->unit_kwh[i] = r->unit_j[i] / 3.6e6;
        o->unit_hours[i] = r->unit_s[i] / 3600.0;
        o->throughput_kwh += o->unit_kwh[i];
        if (r->nbat > 0)
            o->unit_soc_pct[i] = battery_soc_pct(r->bat[r->nbat > 1 ? i : 0]);
    }
}

/* The group as the run has it: the configuration's ([CHARGE_CONTROL] Id/X/Devices, each
 * device's limits within the model's converter, [DEVICE] Id/Y/Battery, Id/X/Group/...) where
 * it lists one, else --units copies of the configured device; the options given override
 * the Group keys. */
static int s_resolve(const ctl_params_t *p1, ctl_group_cfg_t *gc, twin_group_model_t *g,
                     const char *config_path, int id, char *err, size_t errlen)
{
    if (gc->n > 1 && gc->n != g->units) {
        snprintf(err, errlen,
                 "--units %d, but %s: [CHARGE_CONTROL] Id/%d/Devices lists %d devices; give "
                 "--units %d",
                 g->units, config_path, id, gc->n, gc->n);
        return -1;
    }
    if (gc->n > 1) {
        for (int i = 1; i < gc->n; i++)
            if (gc->battery[i] != gc->battery[0])
                g->separate = true;
    } else {
        gc->n = g->units;
        for (int i = 0; i < gc->n; i++) {
            gc->dev[i] = i;
            gc->max_charge_ca[i] = p1->max_charge_ca;
            gc->max_discharge_ca[i] = p1->max_discharge_ca;
            gc->min_current_ca[i] = p1->min_current_ca;
        }
    }
    for (int i = 0; i < gc->n; i++) { /* within the model's converter (twin_ctl_params) */
        if (gc->max_charge_ca[i] > p1->max_charge_ca)
            gc->max_charge_ca[i] = p1->max_charge_ca;
        if (gc->max_discharge_ca[i] > p1->max_discharge_ca)
            gc->max_discharge_ca[i] = p1->max_discharge_ca;
        gc->min_current_ca[i] = p1->min_current_ca;
    }
    gc->params.efficiency = g->base.efficiency;
    if (!isnan(g->stage_hyst))
        gc->params.stage_hyst = g->stage_hyst;
    if (!isnan(g->rotate_wh))
        gc->params.rotate_wh = g->rotate_wh;
    if (g->soc_balance >= 0)
        gc->params.soc_balance = g->soc_balance;
    return 0;
}

int twin_group_run(household_t *hh, const char *config_path, const twin_group_model_t *g,
                   twin_group_result_t *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (twin_group_model_validate(g, err, errlen) != 0)
        return -1;
    if (g->base.transients)
        household_add_transients(hh, g->base.transient_seed);
    else
        household_clear_transients(hh);
    char cerr[2048] = "";
    config_t *cfg = config_load(config_path, cerr, sizeof cerr);
    if (!cfg) {
        snprintf(err, errlen, "%s", cerr);
        return -1;
    }
    ctl_params_t p1;
    int id;
    ctl_group_cfg_t gc;
    int rc = twin_ctl_params(cfg, config_path, &g->base, &p1, &id, err, errlen);
    if (rc == 0 && ctl_group_cfg_from_config(cfg, id, &gc, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "%s: [CHARGE_CONTROL] %s", config_path, cerr);
        rc = -1;
    }
    config_destroy(&cfg);
    if (rc != 0)
        return -1;
    twin_group_model_t eff = *g;
    if (s_resolve(&p1, &gc, &eff, config_path, id, err, errlen) != 0)
        return -1;
    g = &eff;
    gday_t d = {.hh = hh, .p1 = &p1, .gc = &gc};
    res->units = g->units;
    for (int k = 0; k < TWIN_G_RUNS; k++) {
        grun_t r;
        memset(&r, 0, sizeof r);
        r.kind = k;
        r.g = g;
        r.n = g->units;
        rc = s_run(&d, &r, err, errlen);
        if (rc == 0)
            s_metrics(&r, &res->m[k]);
        s_free(&r);
        if (rc != 0)
            return -1;
    }
    double x_ideal = res->m[TWIN_G_IDEAL].import_kwh + res->m[TWIN_G_IDEAL].export_kwh;
    for (int k = 0; k < TWIN_G_RUNS; k++)
        res->m[k].shortfall_kwh = res->m[k].import_kwh + res->m[k].export_kwh - x_ideal;
    return 0;
}
