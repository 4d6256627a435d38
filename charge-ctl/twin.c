/*
 * twin: the offline digital twin (see twin.h and docs/charge-ctl.md).
 *
 * Simulated time advances in fixed steps (default 0.1 s, so that the meter latency is
 * exact); the household's rows are held until the next, synthetic transients come on
 * top. The controller and the seed reference each drive their own device model
 * through its registers, so EEPROM writes are counted by the model. Between the controller
 * and the device sits a small stand-in for the gateway's `setpoint` operation: register
 * order, skip-when-equal, and with EEPROM writes on the minimum interval between persisted
 * writes (the newest pending setpoint is applied once allowed).
 */
#include "twin.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bic_device.h"
#include "bic_proto.h"
#include "config.h"
#include "ctl_step.h"
#include "household.h"
#include "seed_ref.h"

#define PLOT_EVERY_S 10

void twin_model_defaults(twin_model_t *m)
{
    memset(m, 0, sizeof *m);
    m->soc_pct = 50;
    m->capacity_ah = 280;
    m->cells = 8;
    m->r_mohm = 10;
    m->soc_min_pct = 5;
    m->soc_max_pct = 100;
    m->variant = 24;
    m->max_charge_w = 2000;
    m->max_discharge_w = 1600;
    m->efficiency = 0.92;
    m->min_current_a = 0.9;
    m->tau_s = 1.0;
    m->meter_period_s = 2.0;
    m->meter_latency_s = 0.3;
    m->telemetry_period_s = 1.0;
    m->eeprom_on = false;
    m->eeprom_interval_s = 79;
    m->eeprom_burst = 300;
    m->transients = false;
    m->transient_seed = 1;
    m->ctl_id = -1;
    m->step_s = 0.1;
}

/* ---- one run --------------------------------------------------------------------------- */

typedef struct {
    int kind;
    const twin_model_t *model;
    const ctl_params_t *p; /* controller params (limits shared by every run) */
    bool idle_min;         /* [GATEWAY] IdleState = min */

    bic_device_t *dev;
    battery_t *ideal_bat;
    uint32_t eep_base;

    /* gateway stand-in: last persisted write, deferred setpoint registers */
    int64_t last_persist_ms;
    double tokens;     /* persisted writes the daily budget allows now (eeprom_budget) */
    int64_t tokens_ms; /* when tokens was brought up to date */
    bool gw_pend[4];
    uint16_t gw_pend_cmd[4], gw_pend_raw[4];
    int64_t gw_pend_since[4];

    /* metrics */
    double import_j, export_j, sq_sum, t_sum;
    double diag_imp[3], diag_exp[3]; /* by battery state: charging, discharging, idle */
    double diag_hour_x[24];          /* grid exchange per hour (J) */
    double diag_min_x[1440];         /* grid exchange per minute (J) */
    /* breakdown (controller and ideal runs): grid per step, the controller's situation
     * and its battery power */
    float *bd_grid, *bd_batt;
    uint8_t *bd_cat;
    size_t bd_n;
    int overshoot_events;
    double over_run_s;
    bool over_counted;
    long setpoint_changes;
    double ideal_last_w;
    int64_t ideal_last_charge_ms;

    /* plot series (every PLOT_EVERY_S) */
    float *pl_grid, *pl_batt, *pl_soc;
    size_t pl_n, pl_cap;
} run_t;

static uint16_t s_reg(run_t *r, uint16_t cmd)
{
    uint16_t raw = 0;
    bic_device_register(r->dev, cmd, &raw);
    return raw;
}

/* A verified write: read, write if different, read back. Returns 1 when written. */
static int s_vwrite(run_t *r, uint16_t cmd, uint16_t raw, int64_t now_ms)
{
    if (s_reg(r, cmd) == raw)
        return 0;
    bic_device_write(r->dev, cmd, raw, now_ms * 1000);
    return 1;
}

typedef struct {
    uint16_t cmd;
    uint16_t raw;
} regw_t;

/* The registers a setpoint needs, in the gateway's order (current, direction, operation). */
/* The registers a setpoint needs, in the gateway's order: the new direction's current, the
 * direction, output on, and (unless keep_other) the other direction's current to its
 * minimum; idle `off`: both currents to the minimum, then output off. */
static int s_setpoint_regs(const run_t *r, ctl_mode_t mode, int ca, regw_t *w)
{
    int n = 0;
    uint16_t min_ca = (uint16_t)r->p->min_current_ca;
    bool other = !r->model->gw_keep_other;
    switch (mode) {
    case CTL_MODE_CHARGE:
        w[n++] = (regw_t){BIC_CMD_IOUT_SET, (uint16_t)ca};
        w[n++] = (regw_t){BIC_CMD_DIRECTION_CTRL, 0};
        w[n++] = (regw_t){BIC_CMD_OPERATION, 1};
        if (other)
            w[n++] = (regw_t){BIC_CMD_REVERSE_IOUT_SET, min_ca};
        break;
    case CTL_MODE_DISCHARGE:
        w[n++] = (regw_t){BIC_CMD_REVERSE_IOUT_SET, (uint16_t)ca};
        w[n++] = (regw_t){BIC_CMD_DIRECTION_CTRL, 1};
        w[n++] = (regw_t){BIC_CMD_OPERATION, 1};
        if (other)
            w[n++] = (regw_t){BIC_CMD_IOUT_SET, min_ca};
        break;
    case CTL_MODE_IDLE:
        if (r->idle_min) {
            w[n++] = (regw_t){BIC_CMD_REVERSE_IOUT_SET, min_ca};
            w[n++] = (regw_t){BIC_CMD_IOUT_SET, min_ca};
            w[n++] = (regw_t){BIC_CMD_DIRECTION_CTRL, 0};
            w[n++] = (regw_t){BIC_CMD_OPERATION, 1};
        } else {
            w[n++] = (regw_t){BIC_CMD_IOUT_SET, min_ca};
            w[n++] = (regw_t){BIC_CMD_REVERSE_IOUT_SET, min_ca};
            w[n++] = (regw_t){BIC_CMD_OPERATION, 0};
        }
        break;
    case CTL_MODE_OFF:
        w[n++] = (regw_t){BIC_CMD_OPERATION, 0};
        break;
    case CTL_MODE_NONE:
        break;
    }
    return n;
}

/* Setpoint registers whose writes the EEPROM interval may defer (they obey EEP_OFF). */
static int s_star_index(uint16_t cmd)
{
    switch (cmd) {
    case BIC_CMD_VOUT_SET: return 0;
    case BIC_CMD_IOUT_SET: return 1;
    case BIC_CMD_REVERSE_VOUT_SET: return 2;
    case BIC_CMD_REVERSE_IOUT_SET: return 3;
    default: return -1;
    }
}

/* A daily budget as a token bucket: eeprom_budget a day, at most eeprom_burst saved up. */
static void s_tokens(run_t *r, int64_t now_ms)
{
    const twin_model_t *m = r->model;
    if (m->eeprom_budget <= 0)
        return;
    r->tokens += (double)(now_ms - r->tokens_ms) / 1000.0 * m->eeprom_budget / 86400.0;
    if (r->tokens > m->eeprom_burst)
        r->tokens = m->eeprom_burst;
    r->tokens_ms = now_ms;
}

static bool s_interval_open(run_t *r, int64_t now_ms)
{
    s_tokens(r, now_ms);
    if (r->model->eeprom_budget > 0 && r->tokens < 1)
        return false;
    return r->last_persist_ms == INT64_MIN ||
           now_ms - r->last_persist_ms >= (int64_t)r->model->eeprom_interval_s * 1000;
}

static void s_persisted(run_t *r, int64_t now_ms)
{
    s_tokens(r, now_ms);
    r->tokens -= 1;
    r->last_persist_ms = now_ms;
}

/* One register through the gateway's EEPROM policy: skipped when equal; with EEPROM writes
 * on, a setpoint register waits while the interval since the last persisted write runs
 * (the newest value is kept); other registers are written at once. Returns 1 if written. */
static int s_gw_write(run_t *r, uint16_t cmd, uint16_t raw, int64_t now_ms)
{
    int star = s_star_index(cmd);
    if (s_reg(r, cmd) == raw) {
        if (star >= 0)
            r->gw_pend[star] = false;
        return 0;
    }
    if (star >= 0 && r->model->eeprom_on && !s_interval_open(r, now_ms)) {
        if (!r->gw_pend[star])
            r->gw_pend_since[star] = now_ms;
        r->gw_pend[star] = true;
        r->gw_pend_cmd[star] = cmd;
        r->gw_pend_raw[star] = raw;
        return 0;
    }
    bic_device_write(r->dev, cmd, raw, now_ms * 1000);
    if (star >= 0)
        r->gw_pend[star] = false;
    /* Persisted: every setpoint register on old firmware, OPERATION always. */
    if ((star >= 0 && r->model->eeprom_on) || cmd == BIC_CMD_OPERATION)
        s_persisted(r, now_ms);
    return 1;
}

/* The gateway writes the oldest deferred value once the interval allows. */
static void s_gw_tick(run_t *r, int64_t now_ms)
{
    int best = -1;
    for (int i = 0; i < 4; i++)
        if (r->gw_pend[i] && (best < 0 || r->gw_pend_since[i] < r->gw_pend_since[best]))
            best = i;
    if (best < 0 || !s_interval_open(r, now_ms))
        return;
    r->gw_pend[best] = false;
    if (s_reg(r, r->gw_pend_cmd[best]) != r->gw_pend_raw[best]) {
        bic_device_write(r->dev, r->gw_pend_cmd[best], r->gw_pend_raw[best], now_ms * 1000);
        s_persisted(r, now_ms);
    }
}

/* The gateway's setpoint operation. */
static void s_gw_apply(run_t *r, ctl_mode_t mode, int ca, int64_t now_ms)
{
    regw_t w[5];
    int n = s_setpoint_regs(r, mode, ca, w);
    int written = 0;
    for (int i = 0; i < n; i++)
        written += s_gw_write(r, w[i].cmd, w[i].raw, now_ms);
    if (written)
        r->setpoint_changes++;
}

static int s_plot_push(run_t *r, double grid, double batt, double soc)
{
    if (r->pl_n == r->pl_cap) {
        size_t cap = r->pl_cap ? r->pl_cap * 2 : 9000;
        float *g = realloc(r->pl_grid, cap * sizeof *g);
        if (!g)
            return -1;
        r->pl_grid = g;
        float *b = realloc(r->pl_batt, cap * sizeof *b);
        if (!b)
            return -1;
        r->pl_batt = b;
        float *s = realloc(r->pl_soc, cap * sizeof *s);
        if (!s)
            return -1;
        r->pl_soc = s;
        r->pl_cap = cap;
    }
    r->pl_grid[r->pl_n] = (float)grid;
    r->pl_batt[r->pl_n] = (float)batt;
    r->pl_soc[r->pl_n] = (float)soc;
    r->pl_n++;
    return 0;
}

static void s_run_free(run_t *r)
{
    bic_device_destroy(&r->dev);
    battery_destroy(&r->ideal_bat);
    free(r->pl_grid);
    free(r->pl_batt);
    free(r->pl_soc);
    r->pl_grid = r->pl_batt = r->pl_soc = NULL;
    free(r->bd_grid);
    free(r->bd_batt);
    free(r->bd_cat);
    r->bd_grid = r->bd_batt = NULL;
    r->bd_cat = NULL;
}

/* The controller's situation for the breakdown, from its last decision. */
static int s_bd_situation(ctl_reason_t reason, ctl_mode_t mode, ctl_limit_t limit, bool step)
{
    if (step)
        return TWIN_BD_STEP;
    if (mode == CTL_MODE_IDLE || mode == CTL_MODE_OFF || mode == CTL_MODE_NONE ||
        reason == CTL_R_IDLE_DWELL || reason == CTL_R_DIRECTION_DWELL ||
        reason == CTL_R_IDLE_ZERO || limit == CTL_L_BLOCK_HOURS ||
        limit == CTL_L_BLOCK_AFTER_CHARGE)
        return TWIN_BD_IDLE;
    if (limit == CTL_L_FULL || limit == CTL_L_EMPTY || limit == CTL_L_VOLTAGE_HIGH ||
        limit == CTL_L_VOLTAGE_LOW)
        return TWIN_BD_PROTECT;
    if (limit != CTL_L_NONE)
        return TWIN_BD_LIMIT;
    if (reason == CTL_R_RATE_LIMIT)
        return TWIN_BD_RATE;
    if (reason == CTL_R_DEADBAND)
        return TWIN_BD_DEADBAND;
    return TWIN_BD_TRACK;
}

static void s_battery_cfg(const twin_model_t *m, battery_config_t *b)
{
    battery_config_defaults(b);
    b->capacity_ah = m->capacity_ah;
    b->cells_series = m->cells;
    b->r_internal_ohm = m->r_mohm / 1000.0;
    b->soc_pct = m->soc_pct;
    b->soc_min_pct = m->soc_min_pct;
    b->soc_max_pct = m->soc_max_pct;
}

static int s_make_device(run_t *r, const ctl_params_t *p, char *err, size_t errlen)
{
    const twin_model_t *m = r->model;
    bic_device_config_t dc;
    battery_config_t bc;
    bic_device_config_defaults(&dc, m->variant);
    dc.fw = m->eeprom_on ? BIC_FW_OLD : BIC_FW_NEW;
    dc.battery_mode = true;
    dc.can_ctrl = true;
    dc.tau_s = m->tau_s;
    dc.eff_charge = m->efficiency;
    dc.eff_discharge = m->efficiency;
    s_battery_cfg(m, &bc);
    if (bic_device_config_validate(&dc, err, errlen) != 0 ||
        battery_config_validate(&bc, err, errlen) != 0)
        return -1;
    r->dev = bic_device_new(&dc, &bc, 0);
    if (!r->dev) {
        snprintf(err, errlen, "cannot create the device model");
        return -1;
    }
    /* Commissioning: voltage limits, EEPROM writes off where the firmware has it, idle. */
    bic_device_write(r->dev, BIC_CMD_VOUT_SET, (uint16_t)p->charge_voltage_cv, 0);
    bic_device_write(r->dev, BIC_CMD_REVERSE_VOUT_SET, (uint16_t)p->discharge_voltage_cv, 0);
    if (!m->eeprom_on) {
        uint16_t sc = s_reg(r, BIC_CMD_SYSTEM_CONFIG);
        bic_device_write(r->dev, BIC_CMD_SYSTEM_CONFIG, (uint16_t)(sc | 0x0400), 0);
    }
    bic_device_write(r->dev, BIC_CMD_IOUT_SET, (uint16_t)p->min_current_ca, 0);
    bic_device_write(r->dev, BIC_CMD_REVERSE_IOUT_SET, (uint16_t)p->min_current_ca, 0);
    bic_device_write(r->dev, BIC_CMD_DIRECTION_CTRL, 0, 0);
    bic_device_write(r->dev, BIC_CMD_OPERATION, r->kind == TWIN_SEED ? 1 : 0, 0);
    r->eep_base = bic_device_eeprom_writes_total(r->dev);
    return 0;
}

/* The ideal battery: meets the net load exactly within the same limits and rules. */
static double s_ideal_step(run_t *r, double net_w, int hour, int64_t now_ms, double dt)
{
    const ctl_params_t *p = r->p;
    const ctl_hour_t *h = &p->hours[hour];
    const twin_model_t *m = r->model;
    double want = -(net_w - h->grid_offset_w);
    /* The same converter limits as the device runs: its current limits at the present
     * battery voltage (the AC ratings hold at the nominal voltage). */
    double v_now = battery_ocv_v(r->ideal_bat);
    double hi = fmin(h->max_charge_w, p->max_charge_ca / 100.0 * v_now / m->efficiency);
    double lo = fmax(h->max_discharge_w, -p->max_discharge_ca / 100.0 * v_now * m->efficiency);
    if (want > hi)
        want = hi;
    if (want < lo)
        want = lo;
    if (want < 0 && (ctl_block_hour(p, hour) ||
                     (r->ideal_last_charge_ms != INT64_MIN &&
                      now_ms - r->ideal_last_charge_ms < (int64_t)h->block_time_s * 1000)))
        want = 0;
    double dc = want > 0 ? want * m->efficiency : want / m->efficiency;
    double v = battery_ocv_v(r->ideal_bat);
    double i = dc / v;
    v = battery_terminal_v(r->ideal_bat, i);
    i = dc / v;
    /* The converter's voltage limits hold for the ideal battery too: charging tapers at
     * ChargeVoltage (constant voltage), discharging stops at DischargeVoltage. */
    double ocv = battery_ocv_v(r->ideal_bat);
    double rb = battery_r_ohm(r->ideal_bat) > 1e-4 ? battery_r_ohm(r->ideal_bat) : 1e-4;
    double i_cv = (p->charge_voltage_cv / 100.0 - ocv) / rb;
    double i_dv = (p->discharge_voltage_cv / 100.0 - ocv) / rb;
    if (i > 0 && i > i_cv)
        i = i_cv > 0 ? i_cv : 0;
    if (i < 0 && i < i_dv)
        i = i_dv < 0 ? i_dv : 0;
    double got = battery_step(r->ideal_bat, i, dt);
    double dcw = got * battery_voltage_v(r->ideal_bat);
    double ac = dcw > 0 ? dcw / m->efficiency : dcw * m->efficiency;
    if (ac > 0.5)
        r->ideal_last_charge_ms = now_ms;
    if (fabs(ac - r->ideal_last_w) >= 1.0) {
        r->setpoint_changes++;
        r->ideal_last_w = ac;
    }
    return ac;
}

typedef struct {
    household_t *hh;
    const twin_model_t *model;
    const ctl_params_t *p;
    bool idle_min;
    bool want_plot;
} day_t;

static int s_run(const day_t *d, run_t *r, char *err, size_t errlen)
{
    const twin_model_t *m = d->model;
    const ctl_params_t *p = d->p;
    r->model = m;
    r->p = p;
    r->idle_min = d->idle_min;
    r->last_persist_ms = INT64_MIN;
    r->tokens = m->eeprom_burst;
    r->tokens_ms = 0;
    r->ideal_last_charge_ms = INT64_MIN;

    if (r->kind == TWIN_CONTROLLER || r->kind == TWIN_SEED) {
        if (s_make_device(r, p, err, errlen) != 0)
            return -1;
    } else if (r->kind == TWIN_IDEAL) {
        battery_config_t bc;
        s_battery_cfg(m, &bc);
        r->ideal_bat = battery_new(&bc);
        if (!r->ideal_bat) {
            snprintf(err, errlen, "cannot create the battery model");
            return -1;
        }
    }

    double span_s = household_span_s(d->hh);
    double t0 = household_start_s(d->hh);
    int64_t step_ms = (int64_t)llround(m->step_s * 1000);
    int64_t end_ms = (int64_t)llround(span_s * 1000);
    int64_t meter_ms = (int64_t)llround(m->meter_period_s * 1000);
    int64_t lat_ms = (int64_t)llround(m->meter_latency_s * 1000);
    int64_t tel_ms = (int64_t)llround(m->telemetry_period_s * 1000);
    double dt = step_ms / 1000.0;
    if (m->breakdown && (r->kind == TWIN_CONTROLLER || r->kind == TWIN_IDEAL)) {
        r->bd_n = (size_t)((end_ms + step_ms - 1) / step_ms);
        r->bd_grid = calloc(r->bd_n, sizeof *r->bd_grid);
        r->bd_batt = calloc(r->bd_n, sizeof *r->bd_batt);
        r->bd_cat = calloc(r->bd_n, sizeof *r->bd_cat);
        if (!r->bd_grid || !r->bd_batt || !r->bd_cat) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    size_t bd_i = 0;
    double bd_prev_net = NAN;
    int64_t bd_jump_ms = INT64_MIN;
    ctl_reason_t bd_reason = CTL_R_NO_METER;
    ctl_mode_t bd_mode = CTL_MODE_IDLE;
    ctl_limit_t bd_limit = CTL_L_NONE;

    /* Meter samples in flight (taken, not yet delivered). */
    enum { QMAX = 64 };
    double q_val[QMAX];
    int64_t q_at[QMAX];
    int q_head = 0, q_n = 0;
    int64_t next_sample = 0, next_tel = 0, next_tick = 0, next_pub = 0;

    ctl_state_t cs;
    ctl_state_init(&cs, 0);
    ctl_input_t in;
    memset(&in, 0, sizeof in);
    in.enabled = true;
    in.online = true;
    in.lease_held = true;
    seed_state_t ss;
    seed_init(&ss, 0);
    double seed_meas_w = 0, seed_v = 0;

    double grid = 0, batt_ac = 0;
    double load = 0, pv = 0;
    double plot_acc_g = 0, plot_acc_b = 0;
    int plot_acc_n = 0;

    for (int64_t t = 0; t < end_ms; t += step_ms) {
        int hour = (int)((t / 3600000) % 24);
        int minute = (int)((t / 60000) % 60);
        household_at(d->hh, t0 + t / 1000.0, &load, &pv);
        double net = load - pv;

        /* Physics. */
        double soc = 0;
        bool could_absorb = false;
        double charge_limit = fmin(p->hours[hour].max_charge_w, m->max_charge_w);
        if (r->ideal_bat)
            charge_limit = fmin(charge_limit, p->max_charge_ca / 100.0 *
                                                  battery_ocv_v(r->ideal_bat) / m->efficiency);
        if (r->dev) {
            bic_device_step(r->dev, t * 1000);
            bic_device_state_t st;
            bic_device_get_state(r->dev, &st);
            batt_ac = st.ac_w;
            soc = st.soc_pct;
            could_absorb = battery_can_charge(bic_device_battery(r->dev)) &&
                           soc < m->soc_max_pct - 0.5;
        } else if (r->ideal_bat) {
            batt_ac = s_ideal_step(r, net, hour, t, dt);
            soc = battery_soc_pct(r->ideal_bat);
            could_absorb = battery_can_charge(r->ideal_bat) && soc < m->soc_max_pct - 0.5;
        } else {
            batt_ac = 0;
            soc = 0;
            could_absorb = true; /* no battery: every export episode counts */
        }
        could_absorb = could_absorb && charge_limit > 100 && batt_ac < charge_limit - 100;
        grid = household_meter_w(load, pv, batt_ac);

        /* Metrics. */
        if (r->bd_grid && bd_i < r->bd_n) {
            if (isfinite(bd_prev_net) && fabs(net - bd_prev_net) > 50)
                bd_jump_ms = t;
            bd_prev_net = net;
            r->bd_grid[bd_i] = (float)grid;
            r->bd_batt[bd_i] = (float)batt_ac;
            r->bd_cat[bd_i] = (uint8_t)s_bd_situation(
                bd_reason, bd_mode, bd_limit, bd_jump_ms != INT64_MIN && t - bd_jump_ms < 10000);
            bd_i++;
        }
        if (m->trace) {
            int k = batt_ac > 5 ? 0 : (batt_ac < -5 ? 1 : 2);
            r->diag_hour_x[hour] += fabs(grid) * dt;
            r->diag_min_x[(t / 60000) % 1440] += fabs(grid) * dt;
            if (grid > 0)
                r->diag_imp[k] += grid * dt;
            else
                r->diag_exp[k] -= grid * dt;
        }
        if (grid > 0)
            r->import_j += grid * dt;
        else
            r->export_j += -grid * dt;
        double dev = grid - p->hours[hour].grid_offset_w;
        r->sq_sum += dev * dev * dt;
        r->t_sum += dt;
        if (grid < -100 && could_absorb) {
            r->over_run_s += dt;
            if (r->over_run_s > 5.0 && !r->over_counted) {
                r->overshoot_events++;
                r->over_counted = true;
                if (m->trace && r->kind == TWIN_CONTROLLER)
                    fprintf(m->trace, "overshoot event at t=%.1f grid=%.0f battery=%.0f\n",
                            t / 1000.0, grid, batt_ac);
            }
        } else {
            r->over_run_s = 0;
            r->over_counted = false;
        }
        if (d->want_plot) {
            plot_acc_g += grid;
            plot_acc_b += batt_ac;
            plot_acc_n++;
            if (t % (PLOT_EVERY_S * 1000) == 0 && plot_acc_n > 0) {
                if (s_plot_push(r, plot_acc_g / plot_acc_n, plot_acc_b / plot_acc_n, soc) != 0) {
                    snprintf(err, errlen, "out of memory");
                    return -1;
                }
                plot_acc_g = plot_acc_b = 0;
                plot_acc_n = 0;
            }
        }

        if (!r->dev)
            continue;

        /* Meter: sample now, deliver after the latency. */
        bool delivered = false;
        double delivered_w = 0;
        if (t >= next_sample) {
            if (q_n < QMAX) {
                int idx = (q_head + q_n) % QMAX;
                q_val[idx] = grid;
                q_at[idx] = t + lat_ms;
                q_n++;
            }
            next_sample += meter_ms;
        }
        while (q_n > 0 && q_at[q_head] <= t) {
            delivered = true;
            delivered_w = q_val[q_head];
            q_head = (q_head + 1) % QMAX;
            q_n--;
        }

        if (r->kind == TWIN_CONTROLLER) {
            s_gw_tick(r, t);
            if (t >= next_tel) {
                bic_device_state_t st;
                bic_device_get_state(r->dev, &st);
                in.telemetry_valid = true;
                in.telemetry_ms = t;
                in.dc_v = st.dc_v;
                in.dc_a = st.dc_a;
                in.operation = s_reg(r, BIC_CMD_OPERATION);
                in.direction = s_reg(r, BIC_CMD_DIRECTION_CTRL);
                in.iout_ca = s_reg(r, BIC_CMD_IOUT_SET);
                in.rev_iout_ca = s_reg(r, BIC_CMD_REVERSE_IOUT_SET);
                next_tel += tel_ms;
            }
            bool run_step = delivered || t >= next_tick;
            if (delivered) {
                in.meter_valid = true;
                in.meter_w = delivered_w;
                in.meter_arrival_ms = t;
                in.meter_seq++;
            }
            if (t >= next_tick)
                next_tick += 1000;
            if (run_step) {
                in.now_ms = t;
                in.hour = hour;
                in.minute = minute;
                ctl_output_t out;
                ctl_step(p, &cs, &in, &out);
                if (out.reason != CTL_R_WAIT_EFFECT && out.reason != CTL_R_WAIT_SAMPLE)
                    bd_reason = out.reason;
                bd_mode = out.mode;
                bd_limit = out.limit;
                if (m->trace && (out.send || t % 60000 < 1000)) {
                    bic_device_state_t st;
                    bic_device_get_state(r->dev, &st);
                    fprintf(m->trace,
                            "t=%.1f grid=%.0f net=%.0f bat=%.0f soc=%.1f v=%.2f a=%.2f "
                            "mode=%s ca=%d reason='%s' limit='%s' cut=%d/%d\n",
                            t / 1000.0, grid, net, batt_ac, st.soc_pct, st.dc_v, st.dc_a,
                            ctl_mode_name(out.mode), out.current_ca, out.reason_text,
                            out.limit_text, cs.charge_cut, cs.discharge_cut);
                }
                if (out.send)
                    s_gw_apply(r, out.mode, out.current_ca, t);
            }
        } else { /* seed */
            if (t >= next_pub) {
                /* The seed publishes state and charge every 4 ticks. */
                bic_device_state_t st;
                bic_device_get_state(r->dev, &st);
                seed_meas_w = round(st.dc_a * st.dc_v);
                seed_v = round(st.dc_v * 100) / 100;
                next_pub += 4000;
            }
            seed_step_t so;
            memset(&so, 0, sizeof so);
            if (t >= next_tick) {
                seed_tick(p, &ss, t, hour, &so);
                next_tick += 1000;
            }
            if (!so.reset && delivered)
                seed_on_grid(p, &ss, t, hour, (int)lround(delivered_w), seed_meas_w, &so);
            int written = 0;
            if (so.reset) {
                written += s_vwrite(r, BIC_CMD_IOUT_SET, SEED_IDLE_CA, t);
                written += s_vwrite(r, BIC_CMD_REVERSE_IOUT_SET, SEED_IDLE_CA, t);
                written += s_vwrite(r, BIC_CMD_DIRECTION_CTRL, 0, t);
            }
            seed_cmd_t cmd;
            if (so.publish && seed_set_pow(p, &ss, so.charge_p, seed_v, &cmd)) {
                written += s_vwrite(r, BIC_CMD_DIRECTION_CTRL, (uint16_t)cmd.direction, t);
                written += s_vwrite(r,
                                    cmd.direction ? BIC_CMD_REVERSE_IOUT_SET : BIC_CMD_IOUT_SET,
                                    (uint16_t)cmd.a100, t);
            }
            if (written)
                r->setpoint_changes++;
        }
    }
    return 0;
}

static void s_metrics(const run_t *r, twin_metrics_t *out)
{
    memset(out, 0, sizeof *out);
    out->import_kwh = r->import_j / 3.6e6;
    out->export_kwh = r->export_j / 3.6e6;
    out->overshoot_events = r->overshoot_events;
    out->rms_w = r->t_sum > 0 ? sqrt(r->sq_sum / r->t_sum) : 0;
    out->setpoint_changes = r->setpoint_changes;
    const battery_t *b = r->dev ? bic_device_battery(r->dev) : r->ideal_bat;
    if (r->dev)
        out->eeprom_writes = (long)(bic_device_eeprom_writes_total(r->dev) - r->eep_base);
    if (b) {
        out->throughput_kwh = (battery_charged_wh(b) + battery_discharged_wh(b)) / 1000.0;
        out->final_soc_pct = battery_soc_pct(b);
    }
}

/* ---- plot -------------------------------------------------------------------------------- */

static int s_plot(const char *path, const char *title, run_t *runs, char *err, size_t errlen)
{
    char data[] = "/tmp/bic-twin-XXXXXX";
    int fd = mkstemp(data);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a temporary file: %s", strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(data);
        snprintf(err, errlen, "cannot write the plot data");
        return -1;
    }
    run_t *c = &runs[TWIN_CONTROLLER], *n = &runs[TWIN_NONE], *s = &runs[TWIN_SEED],
          *i = &runs[TWIN_IDEAL];
    size_t rows = c->pl_n;
    for (size_t k = 0; k < rows; k++)
        fprintf(f, "%.4f %.1f %.1f %.2f %.1f %.1f %.2f %.2f\n", k * PLOT_EVERY_S / 3600.0,
                c->pl_grid[k], c->pl_batt[k], c->pl_soc[k], k < n->pl_n ? n->pl_grid[k] : 0,
                k < s->pl_n ? s->pl_grid[k] : 0, k < s->pl_n ? s->pl_soc[k] : 0,
                k < i->pl_n ? i->pl_soc[k] : 0);
    fclose(f);

    FILE *g = popen("gnuplot 2>&1", "w");
    if (!g) {
        unlink(data);
        snprintf(err, errlen, "cannot run gnuplot (Debian package gnuplot-nox)");
        return -1;
    }
    fprintf(g,
            "set terminal pngcairo size 1400,1000 font ',10'\n"
            "set termoption noenhanced\n"
            "set output '%s'\n"
            "set multiplot layout 3,1 title '%s'\n"
            "set grid\nset xrange [0:24]\nset xtics 2\n"
            "set key outside right\n"
            "set ylabel 'grid power (W, + import)'\n"
            "plot '%s' u 1:5 w l lc rgb '#bbbbbb' t 'no battery', "
            "'' u 1:6 w l lc rgb '#e69f00' t 'seed', '' u 1:2 w l lc rgb '#0072b2' t 'controller'\n"
            "set ylabel 'battery power (W AC, + charge)'\n"
            "plot '%s' u 1:3 w l lc rgb '#009e73' t 'controller'\n"
            "set ylabel 'SOC (%%)'\nset xlabel 'hour of day'\nset yrange [0:100]\n"
            "plot '%s' u 1:8 w l lc rgb '#999999' t 'ideal', '' u 1:7 w l lc rgb '#e69f00' t 'seed', "
            "'' u 1:4 w l lc rgb '#0072b2' lw 2 t 'controller'\n"
            "unset multiplot\n",
            path, title, data, data, data);
    int rc = pclose(g);
    unlink(data);
    if (rc != 0) {
        snprintf(err, errlen, "gnuplot failed (exit %d) writing %s", rc, path);
        return -1;
    }
    return 0;
}

/* ---- the day -------------------------------------------------------------------------------- */

int twin_run(const char *profile_path, const char *config_path, const twin_model_t *model,
             const char *plot_path, twin_result_t *res, char *err, size_t errlen)
{
    int rc = -1;
    household_t *hh = NULL;
    config_t *cfg = NULL;
    run_t runs[TWIN_RUNS];
    memset(runs, 0, sizeof runs);
    memset(res, 0, sizeof *res);
    char cerr[2048] = "";

    hh = household_load(profile_path, err, errlen);
    if (!hh)
        goto cleanup;
    if (model->transients)
        household_add_transients(hh, model->transient_seed);
    cfg = config_load(config_path, cerr, sizeof cerr);
    if (!cfg) {
        snprintf(err, errlen, "%s", cerr);
        goto cleanup;
    }
    int id = model->ctl_id;
    if (id < 0) {
        int ids[1];
        if (config_ids(cfg, "CHARGE_CONTROL", ids, 1) < 1) {
            snprintf(err, errlen, "%s: no [CHARGE_CONTROL] Id/X/ keys; the twin needs one "
                     "controller", config_path);
            goto cleanup;
        }
        id = ids[0];
    }
    ctl_params_t p;
    if (ctl_params_from_config(cfg, id, &p, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "%s: [CHARGE_CONTROL] Id/%d: %s", config_path, id, cerr);
        goto cleanup;
    }
    /* The model's converter: current limits from its AC power ratings at the nominal
     * voltage (3.2 V per cell), intersected with the configured limits. */
    double v_nom = model->cells * 3.2;
    int c_ca = (int)(model->max_charge_w * model->efficiency / v_nom * 100);
    int d_ca = (int)(model->max_discharge_w / model->efficiency / v_nom * 100);
    if (p.max_charge_ca > c_ca)
        p.max_charge_ca = c_ca;
    if (p.max_discharge_ca > d_ca)
        p.max_discharge_ca = d_ca;
    p.min_current_ca = (int)lround(model->min_current_a * 100);
    p.idle_enter_ca = p.min_current_ca / 2;
    p.idle_exit_ca = p.min_current_ca * 2;
    p.efficiency = model->efficiency;
    p.enabled = true;
    if (p.telemetry_timeout_ms < 5000 * model->telemetry_period_s)
        p.telemetry_timeout_ms = (int)(5000 * model->telemetry_period_s);
    if (model->eeprom_on && p.min_write_interval_ms < model->eeprom_interval_s * 1000)
        p.min_write_interval_ms = model->eeprom_interval_s * 1000;
    if (ctl_params_validate(&p, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "%s: %s", config_path, cerr);
        goto cleanup;
    }

    day_t d = {
        .hh = hh,
        .model = model,
        .p = &p,
        .idle_min = strcasecmp(config_str(cfg, "GATEWAY", "IdleState"), "min") == 0,
        .want_plot = plot_path != NULL,
    };
    for (int k = 0; k < TWIN_RUNS; k++) {
        runs[k].kind = k;
        if (s_run(&d, &runs[k], err, errlen) != 0)
            goto cleanup;
        s_metrics(&runs[k], &res->m[k]);
        if (model->trace)
            fprintf(model->trace,
                    "%s: import while charging/discharging/idle %.3f/%.3f/%.3f kWh, "
                    "export %.3f/%.3f/%.3f kWh\n",
                    k == 0 ? "controller" : k == 1 ? "none" : k == 2 ? "ideal" : "seed",
                    runs[k].diag_imp[0] / 3.6e6, runs[k].diag_imp[1] / 3.6e6,
                    runs[k].diag_imp[2] / 3.6e6, runs[k].diag_exp[0] / 3.6e6,
                    runs[k].diag_exp[1] / 3.6e6, runs[k].diag_exp[2] / 3.6e6);
    }
    double x_none = res->m[TWIN_NONE].import_kwh + res->m[TWIN_NONE].export_kwh;
    double x_ideal = res->m[TWIN_IDEAL].import_kwh + res->m[TWIN_IDEAL].export_kwh;
    for (int k = 0; k < TWIN_RUNS; k++) {
        double x = res->m[k].import_kwh + res->m[k].export_kwh;
        res->m[k].captured_pct = x_none - x_ideal > 1e-9 ? 100 * (x_none - x) / (x_none - x_ideal) : 0;
    }
    if (model->breakdown) {
        const run_t *c = &runs[TWIN_CONTROLLER], *i = &runs[TWIN_IDEAL];
        double dt = model->step_s;
        res->has_bd = true;
        for (size_t k = 0; k < c->bd_n && k < i->bd_n; k++) {
            int hour = (int)((double)k * dt / 3600) % 24;
            int cat = c->bd_cat[k];
            if (fabs(i->bd_grid[k] - p.hours[hour].grid_offset_w) > 5)
                cat = TWIN_BD_IDEAL_LIMIT;
            double g = c->bd_grid[k], b = c->bd_batt[k];
            double wrong = b > 0 ? fmin(fmax(g, 0), b) : fmin(fmax(-g, 0), -b);
            res->bd.hours[cat] += dt / 3600;
            res->bd.delta_kwh[cat] += (fabs(g) - fabs(i->bd_grid[k])) * dt / 3.6e6;
            res->bd.wrong_kwh[cat] += wrong * dt / 3.6e6;
            res->bd.missed_kwh[cat] += (fabs(i->bd_batt[k]) - fabs(b)) * dt / 3.6e6;
        }
    }
    if (model->trace) {
        fprintf(model->trace, "hour  controller-ideal  seed-ideal (kWh)\n");
        for (int h = 0; h < 24; h++)
            fprintf(model->trace, "%2d %8.3f %8.3f\n", h,
                    (runs[0].diag_hour_x[h] - runs[2].diag_hour_x[h]) / 3.6e6,
                    (runs[3].diag_hour_x[h] - runs[2].diag_hour_x[h]) / 3.6e6);
        for (int k = 0; k < 1440; k++)
            fprintf(model->trace, "minute %4d %02d:%02d %8.2f Wh\n", k, k / 60, k % 60,
                    (runs[0].diag_min_x[k] - runs[2].diag_min_x[k]) / 3600.0);
    }
    char title[256];
    const char *base = strrchr(profile_path, '/');
    snprintf(title, sizeof title, "bic2mqtt twin: %s%s%s", base ? base + 1 : profile_path,
             model->transients ? ", fast transients" : "",
             model->eeprom_on ? ", EEPROM writes on" : "");
    for (char *c = title; *c; c++)
        if (*c == '\'' || *c == '\\')
            *c = ' ';
    if (plot_path && s_plot(plot_path, title, runs, err, errlen) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    for (int k = 0; k < TWIN_RUNS; k++)
        s_run_free(&runs[k]);
    config_destroy(&cfg);
    household_destroy(&hh);
    return rc;
}

static const char *s_names[TWIN_RUNS] = {"controller", "none", "ideal", "seed"};

const char *twin_bd_name(int k)
{
    static const char *names[TWIN_BD_N] = {
        "ideal_limited", "after_step", "idle_dwell_block", "protection", "power_limit",
        "write_interval", "deadband", "tracking",
    };
    return k >= 0 && k < TWIN_BD_N ? names[k] : "?";
}

void twin_print_breakdown(FILE *f, const twin_result_t *res)
{
    if (!res->has_bd)
        return;
    fprintf(f, "shortfall by situation (= missed battery throughput + 2 x wrong-way energy)\n");
    fprintf(f, "%-18s %8s %14s %14s %14s\n", "situation", "hours", "shortfall_kWh",
            "missed_kWh", "wrong_way_kWh");
    double h = 0, d = 0, mi = 0, w = 0;
    for (int k = 0; k < TWIN_BD_N; k++) {
        fprintf(f, "%-18s %8.2f %14.4f %14.4f %14.4f\n", twin_bd_name(k), res->bd.hours[k],
                res->bd.delta_kwh[k], res->bd.missed_kwh[k], res->bd.wrong_kwh[k]);
        h += res->bd.hours[k];
        d += res->bd.delta_kwh[k];
        mi += res->bd.missed_kwh[k];
        w += res->bd.wrong_kwh[k];
    }
    fprintf(f, "%-18s %8.2f %14.4f %14.4f %14.4f\n", "total", h, d, mi, w);
}

void twin_print_table(FILE *f, const twin_result_t *res)
{
    fprintf(f, "%-11s %10s %10s %9s %9s %8s %10s %8s %11s %9s %11s\n", "run", "import_kWh",
            "export_kWh", "X_kWh", "captured%", "overshoot", "rms_W", "changes", "eeprom_writes",
            "thru_kWh", "final_soc%");
    for (int k = 0; k < TWIN_RUNS; k++) {
        const twin_metrics_t *m = &res->m[k];
        fprintf(f, "%-11s %10.3f %10.3f %9.3f %9.2f %9d %10.1f %8ld %13ld %9.3f %11.1f\n",
                s_names[k], m->import_kwh, m->export_kwh, m->import_kwh + m->export_kwh,
                m->captured_pct, m->overshoot_events, m->rms_w, m->setpoint_changes,
                m->eeprom_writes, m->throughput_kwh, m->final_soc_pct);
    }
    double xi = res->m[TWIN_IDEAL].import_kwh + res->m[TWIN_IDEAL].export_kwh;
    double xc = res->m[TWIN_CONTROLLER].import_kwh + res->m[TWIN_CONTROLLER].export_kwh - xi;
    double xs = res->m[TWIN_SEED].import_kwh + res->m[TWIN_SEED].export_kwh - xi;
    fprintf(f, "shortfall (X - X_ideal): controller %.3f kWh, seed %.3f kWh\n", xc, xs);
}

void twin_print_json(FILE *f, const twin_result_t *res)
{
    fprintf(f, "{");
    for (int k = 0; k < TWIN_RUNS; k++) {
        const twin_metrics_t *m = &res->m[k];
        fprintf(f,
                "%s\"%s\":{\"import_kwh\":%.4f,\"export_kwh\":%.4f,\"captured_pct\":%.3f,"
                "\"overshoot_events\":%d,\"rms_w\":%.2f,\"setpoint_changes\":%ld,"
                "\"eeprom_writes\":%ld,\"throughput_kwh\":%.4f,\"final_soc_pct\":%.2f}",
                k ? "," : "", s_names[k], m->import_kwh, m->export_kwh, m->captured_pct,
                m->overshoot_events, m->rms_w, m->setpoint_changes, m->eeprom_writes,
                m->throughput_kwh, m->final_soc_pct);
    }
    if (res->has_bd) {
        fprintf(f, ",\"breakdown\":{");
        for (int k = 0; k < TWIN_BD_N; k++)
            fprintf(f,
                    "%s\"%s\":{\"hours\":%.3f,\"shortfall_kwh\":%.4f,\"missed_kwh\":%.4f,"
                    "\"wrong_way_kwh\":%.4f}",
                    k ? "," : "", twin_bd_name(k), res->bd.hours[k], res->bd.delta_kwh[k],
                    res->bd.missed_kwh[k], res->bd.wrong_kwh[k]);
        fprintf(f, "}");
    }
    fprintf(f, "}\n");
}

/* ---- command line ------------------------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bic-sim twin --profile FILE.csv -c bic2mqtt.ini [options]\n"
            "  --json               print the figures as one JSON object\n"
            "  --plot FILE.png      draw grid power, battery power and SOC (gnuplot)\n"
            "  --trace FILE         write the controller's decisions (each command, each minute)\n"
            "  --transients SEED    add synthetic kettle/oven/microwave/cloud transients\n"
            "  --eeprom-on          old firmware: every setpoint write is persisted\n"
            "  --eeprom-interval S  gateway's minimum interval between persisted writes (79)\n"
            "  --eeprom-budget N    also at most N persisted writes a day, as a token bucket\n"
            "                       (a gateway policy allowing bursts; default: interval only)\n"
            "  --eeprom-burst D     the bucket's depth in writes (300)\n"
            "  --gw-keep-other      the gateway leaves the other direction's current alone\n"
            "                       (default: set to its minimum, as bic-can-gateway does)\n"
            "  --breakdown          decompose the controller's shortfall by situation\n"
            "  --id X               [CHARGE_CONTROL] Id/X to run (default: the first)\n"
            "model (defaults in brackets):\n"
            "  --variant V [24]  --soc PCT [50]  --ah AH [280]  --cells N [variant/3]\n"
            "  --r-mohm R [10]  --soc-min PCT [5]  --soc-max PCT [100]\n"
            "  --max-charge-w W [2000]  --max-discharge-w W [1600]  --eff F [0.92]\n"
            "  --min-current A [1 %% of the rated current: 0.9 A on 24 V]  --tau S [1]\n"
            "  --meter-period S [2]  --meter-latency S [0.3]  --telemetry-period S [1]\n"
            "  --step S [0.1]\n");
}

static int s_num(const char *opt, const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "bic-sim twin: %s '%s' is not a number in [%g, %g]\n", opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int twin_main(int argc, char **argv)
{
    enum {
        O_JSON = 256, O_PLOT, O_TRANS, O_EEP, O_EEPI, O_ID, O_SOC, O_AH, O_CELLS, O_RM, O_SOCMIN,
        O_SOCMAX, O_MCW, O_MDW, O_EFF, O_MINA, O_TAU, O_MP, O_ML, O_TP, O_STEP, O_PROFILE, O_TRACE,
        O_VARIANT, O_KEEP, O_BD, O_EEPB, O_EEPD,
    };
    static const struct option opts[] = {
        {"profile", required_argument, NULL, O_PROFILE},
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, O_JSON},
        {"plot", required_argument, NULL, O_PLOT},
        {"trace", required_argument, NULL, O_TRACE},
        {"transients", required_argument, NULL, O_TRANS},
        {"eeprom-on", no_argument, NULL, O_EEP},
        {"eeprom-interval", required_argument, NULL, O_EEPI},
        {"gw-keep-other", no_argument, NULL, O_KEEP},
        {"breakdown", no_argument, NULL, O_BD},
        {"eeprom-budget", required_argument, NULL, O_EEPB},
        {"eeprom-burst", required_argument, NULL, O_EEPD},
        {"id", required_argument, NULL, O_ID},
        {"soc", required_argument, NULL, O_SOC},
        {"ah", required_argument, NULL, O_AH},
        {"cells", required_argument, NULL, O_CELLS},
        {"variant", required_argument, NULL, O_VARIANT},
        {"r-mohm", required_argument, NULL, O_RM},
        {"soc-min", required_argument, NULL, O_SOCMIN},
        {"soc-max", required_argument, NULL, O_SOCMAX},
        {"max-charge-w", required_argument, NULL, O_MCW},
        {"max-discharge-w", required_argument, NULL, O_MDW},
        {"eff", required_argument, NULL, O_EFF},
        {"min-current", required_argument, NULL, O_MINA},
        {"tau", required_argument, NULL, O_TAU},
        {"meter-period", required_argument, NULL, O_MP},
        {"meter-latency", required_argument, NULL, O_ML},
        {"telemetry-period", required_argument, NULL, O_TP},
        {"step", required_argument, NULL, O_STEP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    twin_model_t m;
    twin_model_defaults(&m);
    const char *profile = NULL, *config = NULL, *plot = NULL, *trace = NULL;
    bool json = false, cells_given = false, mina_given = false;
    double v;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case O_PROFILE: profile = optarg; break;
        case 'c': config = optarg; break;
        case O_JSON: json = true; break;
        case O_PLOT: plot = optarg; break;
        case O_TRACE: trace = optarg; break;
        case O_TRANS:
            if (s_num("--transients", optarg, 0, 1e15, &v))
                return 2;
            m.transients = true;
            m.transient_seed = (uint64_t)v;
            break;
        case O_EEP: m.eeprom_on = true; break;
        case O_KEEP: m.gw_keep_other = true; break;
        case O_BD: m.breakdown = true; break;
        case O_EEPB:
            if (s_num("--eeprom-budget", optarg, 1, 100000, &v))
                return 2;
            m.eeprom_budget = (int)v;
            break;
        case O_EEPD:
            if (s_num("--eeprom-burst", optarg, 1, 100000, &v))
                return 2;
            m.eeprom_burst = (int)v;
            break;
        case O_EEPI:
            if (s_num("--eeprom-interval", optarg, 0, 86400, &v))
                return 2;
            m.eeprom_interval_s = (int)v;
            break;
        case O_ID:
            if (s_num("--id", optarg, 0, 63, &v))
                return 2;
            m.ctl_id = (int)v;
            break;
#define NUMOPT(O, name, lo, hi, field)                                                             \
    case O:                                                                                        \
        if (s_num(name, optarg, lo, hi, &v))                                                       \
            return 2;                                                                              \
        m.field = v;                                                                               \
        break;
        NUMOPT(O_SOC, "--soc", 0, 100, soc_pct)
        NUMOPT(O_AH, "--ah", 1, 100000, capacity_ah)
        NUMOPT(O_RM, "--r-mohm", 0, 1000, r_mohm)
        NUMOPT(O_SOCMIN, "--soc-min", 0, 100, soc_min_pct)
        NUMOPT(O_SOCMAX, "--soc-max", 0, 100, soc_max_pct)
        NUMOPT(O_MCW, "--max-charge-w", 0, 100000, max_charge_w)
        NUMOPT(O_MDW, "--max-discharge-w", 0, 100000, max_discharge_w)
        NUMOPT(O_EFF, "--eff", 0.5, 1, efficiency)
        case O_MINA:
            if (s_num("--min-current", optarg, 0.01, 100, &v))
                return 2;
            m.min_current_a = v;
            mina_given = true;
            break;
        NUMOPT(O_TAU, "--tau", 0, 60, tau_s)
        NUMOPT(O_MP, "--meter-period", 0.1, 600, meter_period_s)
        NUMOPT(O_ML, "--meter-latency", 0, 60, meter_latency_s)
        NUMOPT(O_TP, "--telemetry-period", 0.1, 600, telemetry_period_s)
        NUMOPT(O_STEP, "--step", 0.01, 1, step_s)
#undef NUMOPT
        case O_CELLS:
            if (s_num("--cells", optarg, 1, 64, &v))
                return 2;
            m.cells = (int)v;
            cells_given = true;
            break;
        case O_VARIANT:
            if (s_num("--variant", optarg, 12, 96, &v) ||
                (v != 12 && v != 24 && v != 48 && v != 96)) {
                fprintf(stderr, "bic-sim twin: --variant must be 12, 24, 48 or 96\n");
                return 2;
            }
            m.variant = (int)v;
            break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "twin") != 0) {
            fprintf(stderr, "bic-sim twin: unexpected argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    if (!profile || !config) {
        fprintf(stderr, "bic-sim twin: --profile and -c are required\n");
        s_usage(stderr);
        return 2;
    }
    if (!cells_given)
        m.cells = m.variant / 3; /* 4, 8, 16, 32 LiFePO4 cells */
    if (!mina_given)
        m.min_current_a = bic_device_rated_current_a(m.variant) / 100.0;
    if (m.cells * 3.2 < m.variant * 0.8 || m.cells * 3.2 > m.variant * 1.15) {
        fprintf(stderr, "bic-sim twin: %d cells (%.1f V nominal) do not suit a %d V BIC; "
                "allowed: about %d cells\n", m.cells, m.cells * 3.2, m.variant, m.variant / 3);
        return 2;
    }
    if (m.soc_min_pct >= m.soc_max_pct) {
        fprintf(stderr, "bic-sim twin: --soc-min %g must be below --soc-max %g\n", m.soc_min_pct,
                m.soc_max_pct);
        return 2;
    }
    if (trace) {
        m.trace = strcmp(trace, "-") == 0 ? stderr : fopen(trace, "w");
        if (!m.trace) {
            fprintf(stderr, "bic-sim twin: cannot write %s: %s\n", trace, strerror(errno));
            return 1;
        }
    }
    twin_result_t res;
    char err[4096];
    int rc = twin_run(profile, config, &m, plot, &res, err, sizeof err);
    if (m.trace && m.trace != stderr)
        fclose(m.trace);
    if (rc != 0) {
        fprintf(stderr, "bic-sim twin: %s\n", err);
        return 1;
    }
    if (json)
        twin_print_json(stdout, &res);
    else {
        twin_print_table(stdout, &res);
        twin_print_breakdown(stdout, &res);
    }
    return 0;
}
