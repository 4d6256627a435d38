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
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bic_device.h"
#include "bic_plan.h"
#include "bic_proto.h"
#include "config.h"
#include "ctl_step.h"
#include "household.h"
#include "seed_ref.h"
#include "surplus.h"

#define PLOT_EVERY_S TWIN_PLOT_EVERY_S

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
    m->meter_phase_s = 0;
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
    /* breakdown (every run but "none"): grid per step, the run's battery power and, for
     * the controller, its situation */
    float *bd_grid, *bd_batt;
    uint8_t *bd_cat;
    size_t bd_n;
    int overshoot_events;
    double over_run_s;
    bool over_counted;
    long setpoint_changes;
    long follow_reports; /* the controller reported the device not following */
    double ideal_last_w;
    /* setpoint reversals (signed current, + charge) and the largest 1 s mean AC powers */
    int last_sp_ca;
    int last_change_sign;
    int64_t last_change_ms;
    long reversals;
    double sec_acc_w;
    int sec_acc_n;
    double max_charge_w, max_discharge_w;
    double db_sp_w; /* deadbeat: its setpoint (W AC, + charge) */
    /* surplus switches (controller run): their states, the power of those on (each load
     * taken to draw its SurplusMinP) and the energy moved into them */
    surplus_state_t sw;
    double sw_load_w;
    double switched_j;
    double tel_v; /* the battery voltage of the latest telemetry (V) */
    int hour_now; /* the hour of day of the step being simulated */

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

/* Returns 1 when written (read, write if different). */
static uint16_t s_max_ca(const run_t *r, bool charge, int hour);

/* A verified write by the seed (it writes to the bus itself), held to the same current
 * limits as every run. */
static int s_vwrite(run_t *r, uint16_t cmd, uint16_t raw, int64_t now_ms)
{
    if (cmd == BIC_CMD_IOUT_SET || cmd == BIC_CMD_REVERSE_IOUT_SET) {
        uint16_t max = s_max_ca(r, cmd == BIC_CMD_IOUT_SET, r->hour_now);
        if (raw > max)
            raw = max;
    }
    if (s_reg(r, cmd) == raw)
        return 0;
    bic_device_write(r->dev, cmd, raw, now_ms * 1000);
    return 1;
}

/* The registers a setpoint needs, in the gateway's order (can/bic_plan.h): the new
 * direction's current, the direction, output on, and (unless keep_other) the other
 * direction's current to its minimum; idle `off`: both currents to the minimum, then output
 * off. Returns the number of writes. */
static int s_setpoint_regs(const run_t *r, ctl_mode_t mode, int ca, bic_plan_write_t *w)
{
    uint16_t min_ca = (uint16_t)r->p->min_current_ca;
    bic_plan_args_t a = {.current_raw = (uint16_t)ca,
                         .charge_min_raw = min_ca,
                         .discharge_min_raw = min_ca,
                         .keep_other = r->model->gw_keep_other};
    switch (mode) {
    case CTL_MODE_CHARGE:
        return bic_setpoint_plan(BIC_PLAN_CHARGE, &a, w);
    case CTL_MODE_DISCHARGE:
        return bic_setpoint_plan(BIC_PLAN_DISCHARGE, &a, w);
    case CTL_MODE_IDLE:
        return bic_setpoint_plan(r->idle_min ? BIC_PLAN_IDLE_MIN : BIC_PLAN_IDLE_OFF, &a, w);
    case CTL_MODE_OFF:
        return bic_setpoint_plan(BIC_PLAN_OFF, &a, w);
    case CTL_MODE_NONE:
        break;
    }
    return 0;
}

/* Setpoint registers whose writes the EEPROM interval may defer (they obey EEP_OFF). */
static int s_star_index(uint16_t cmd)
{
    switch (cmd) {
    case BIC_CMD_VOUT_SET:
        return 0;
    case BIC_CMD_IOUT_SET:
        return 1;
    case BIC_CMD_REVERSE_VOUT_SET:
        return 2;
    case BIC_CMD_REVERSE_IOUT_SET:
        return 3;
    default:
        return -1;
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

/* The device limits every run obeys, as AC power (W, + charge) at battery voltage v in this
 * hour: the converter's AC ratings (the model), the configured current limits and the hour's
 * power limits. */
static void s_window(const run_t *r, int hour, double v, double *lo, double *hi)
{
    const ctl_params_t *p = r->p;
    const twin_model_t *m = r->model;
    const ctl_hour_t *h = &p->hours[hour];
    if (!(v > 1.0))
        v = m->cells * 3.2;
    *hi =
        fmin(fmin(h->max_charge_w, m->max_charge_w), p->max_charge_ca / 100.0 * v / m->efficiency);
    *lo = fmax(fmax(h->max_discharge_w, -m->max_discharge_w),
               -p->max_discharge_ca / 100.0 * v * m->efficiency);
    if (*hi < 0)
        *hi = 0;
    if (*lo > 0)
        *lo = 0;
}

/* The largest current register value (A x 100) within the window for a direction at the
 * battery voltage of the latest telemetry: the gateway stand-in never writes more, whoever
 * asks, so every device run is held to the same limits. */
static uint16_t s_max_ca(const run_t *r, bool charge, int hour)
{
    double lo, hi;
    double v = r->tel_v > 1.0 ? r->tel_v : r->model->cells * 3.2;
    s_window(r, hour, v, &lo, &hi);
    double a = charge ? hi * r->model->efficiency / v : -lo / r->model->efficiency / v;
    double ca = floor(a * 100);
    return (uint16_t)(ca < 0 ? 0 : ca > 65535 ? 65535 : ca);
}

/* Counts a reversal: a change of the signed setpoint (+ charge, A x 100) whose direction is
 * the opposite of the previous change's and comes less than 10 s after it. */
static void s_note_setpoint(run_t *r, int signed_ca, int64_t now_ms)
{
    if (signed_ca == r->last_sp_ca)
        return;
    int sign = signed_ca > r->last_sp_ca ? 1 : -1;
    if (r->last_change_sign && sign != r->last_change_sign && now_ms - r->last_change_ms < 10000)
        r->reversals++;
    r->last_change_sign = sign;
    r->last_change_ms = now_ms;
    r->last_sp_ca = signed_ca;
}

/* One register through the gateway's EEPROM policy: skipped when equal; with EEPROM writes
 * on, a setpoint register waits while the interval since the last persisted write runs or
 * the budget has no token (the newest value is kept), unless the write moves the device
 * toward safety (a lower current): that goes at once and takes its token, as in the gateway;
 * other registers are written at once. Returns 1 if written. */
static int s_gw_write(run_t *r, uint16_t cmd, uint16_t raw, int64_t now_ms)
{
    if (cmd == BIC_CMD_IOUT_SET || cmd == BIC_CMD_REVERSE_IOUT_SET) {
        uint16_t max = s_max_ca(r, cmd == BIC_CMD_IOUT_SET, r->hour_now);
        if (raw > max)
            raw = max;
    }
    int star = s_star_index(cmd);
    if (s_reg(r, cmd) == raw) {
        if (star >= 0)
            r->gw_pend[star] = false;
        return 0;
    }
    if (star >= 0 && r->model->eeprom_on && !bic_write_toward_safety(cmd, s_reg(r, cmd), raw) &&
        !s_interval_open(r, now_ms)) {
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

/* Whether a setpoint register's write is waiting for the interval. */
static bool s_gw_pending(const run_t *r)
{
    for (int i = 0; i < 4; i++)
        if (r->gw_pend[i])
            return true;
    return false;
}

/* The gateway's setpoint operation. */
static void s_gw_apply(run_t *r, ctl_mode_t mode, int ca, int64_t now_ms)
{
    bic_plan_write_t w[BIC_PLAN_MAX];
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

void twin_battery_cfg(const twin_model_t *m, battery_config_t *b)
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
    twin_battery_cfg(m, &bc);
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

double twin_voltage_limit_a(const ctl_params_t *p, const battery_t *b, double i)
{
    double ocv = battery_ocv_v(b);
    double rb = battery_r_ohm(b) > 1e-4 ? battery_r_ohm(b) : 1e-4;
    double i_cv = (p->charge_voltage_cv / 100.0 - ocv) / rb;
    double i_dv = (p->discharge_voltage_cv / 100.0 - ocv) / rb;
    if (i > 0 && i > i_cv)
        i = i_cv > 0 ? i_cv : 0;
    if (i < 0 && i < i_dv)
        i = i_dv < 0 ? i_dv : 0;
    return i;
}

/* The ideal battery, the physics limit: it meets the net load at once, within the device
 * limits every run obeys (s_window) and the battery's window, with no minimum current and no
 * discharge block after charging (an hour the profile blocks discharge in still holds: that
 * is the owner's rule, not the controller's). */
static double s_ideal_step(run_t *r, double net_w, int hour, int64_t now_ms, double dt)
{
    const ctl_params_t *p = r->p;
    const ctl_hour_t *h = &p->hours[hour];
    const twin_model_t *m = r->model;
    (void)now_ms;
    double want = -(net_w - h->grid_offset_w);
    double lo, hi;
    s_window(r, hour, battery_ocv_v(r->ideal_bat), &lo, &hi);
    if (want > hi)
        want = hi;
    if (want < lo)
        want = lo;
    if (want < 0 && ctl_block_hour(p, hour))
        want = 0;
    double dc = want > 0 ? want * m->efficiency : want / m->efficiency;
    double v = battery_ocv_v(r->ideal_bat);
    double i = dc / v;
    v = battery_terminal_v(r->ideal_bat, i);
    i = dc / v;
    /* The converter's voltage limits hold for the ideal battery too: charging tapers at
     * ChargeVoltage (constant voltage), discharging stops at DischargeVoltage. */
    i = twin_voltage_limit_a(p, r->ideal_bat, i);
    double got = battery_step(r->ideal_bat, i, dt);
    double dcw = got * battery_voltage_v(r->ideal_bat);
    double ac = dcw > 0 ? dcw / m->efficiency : dcw * m->efficiency;
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
    const surplus_cfg_t *sw; /* [SURPLUS_SWITCH] of the controller's device */
} day_t;

/* The surplus switches as bic-charge-ctl runs them, after each controller step. */
static void s_switches(const surplus_cfg_t *sw, run_t *r, const ctl_input_t *in,
                       const ctl_output_t *out, int64_t t)
{
    ctl_limit_t l = out->limit;
    bool limited = l == CTL_L_PROFILE_CHARGE || l == CTL_L_DEVICE_CHARGE || l == CTL_L_FULL ||
                   l == CTL_L_VOLTAGE_HIGH;
    double set_w = in->operation == 1 && in->direction == 0 && in->iout_ca > 0
                       ? in->dc_v * in->iout_ca / 100.0
                       : NAN;
    double surplus =
        surplus_power_w(in->meter_valid, in->meter_w, true, limited, set_w, in->dc_v * in->dc_a);
    surplus_step(sw, &r->sw, surplus, t);
    r->sw_load_w = 0;
    for (size_t i = 0; i < sw->n; i++)
        if (r->sw.on[i])
            r->sw_load_w += sw->sw[i].min_power_w;
}

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

    if (r->kind == TWIN_CONTROLLER || r->kind == TWIN_SEED || r->kind == TWIN_DEADBEAT) {
        if (s_make_device(r, p, err, errlen) != 0)
            return -1;
    } else if (r->kind == TWIN_IDEAL) {
        battery_config_t bc;
        twin_battery_cfg(m, &bc);
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
    if (m->breakdown && r->kind != TWIN_NONE) {
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
    int64_t next_sample = (int64_t)llround(m->meter_phase_s * 1000), next_tel = 0, next_tick = 0,
            next_pub = 0;

    ctl_state_t cs;
    ctl_state_init(&cs, 0);
    ctl_input_t in;
    memset(&in, 0, sizeof in);
    in.enabled = true;
    in.online = true;
    in.lease_held = true;
    in.eeprom_tokens = -1;
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
        r->hour_now = hour;
        double soc = 0;
        bool could_absorb = false;
        double v_now = m->cells * 3.2;
        if (r->dev) {
            bic_device_step(r->dev, t * 1000);
            bic_device_state_t st;
            bic_device_get_state(r->dev, &st);
            batt_ac = st.ac_w;
            soc = st.soc_pct;
            v_now = st.dc_v;
            could_absorb =
                battery_can_charge(bic_device_battery(r->dev)) && soc < m->soc_max_pct - 0.5;
        } else if (r->ideal_bat) {
            v_now = battery_ocv_v(r->ideal_bat);
            batt_ac = s_ideal_step(r, net, hour, t, dt);
            soc = battery_soc_pct(r->ideal_bat);
            could_absorb = battery_can_charge(r->ideal_bat) && soc < m->soc_max_pct - 0.5;
        } else {
            batt_ac = 0;
            soc = 0;
            could_absorb = true; /* no battery: every export episode counts */
        }
        double win_lo, charge_limit;
        s_window(r, hour, v_now, &win_lo, &charge_limit);
        could_absorb = could_absorb && charge_limit > 100 && batt_ac < charge_limit - 100;
        r->sec_acc_w += batt_ac;
        r->sec_acc_n++;
        if ((t + step_ms) % 1000 == 0) {
            double mean = r->sec_acc_w / r->sec_acc_n;
            if (mean > r->max_charge_w)
                r->max_charge_w = mean;
            if (-mean > r->max_discharge_w)
                r->max_discharge_w = -mean;
            r->sec_acc_w = 0;
            r->sec_acc_n = 0;
        }
        grid = household_meter_w(load, pv, batt_ac) + r->sw_load_w;
        r->switched_j += r->sw_load_w * dt;

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

        bool tel_due = t >= next_tel;
        if (tel_due) {
            bic_device_state_t st;
            bic_device_get_state(r->dev, &st);
            r->tel_v = st.dc_v;
        }
        if (r->kind == TWIN_DEADBEAT) {
            s_gw_tick(r, t);
            if (tel_due)
                next_tel += tel_ms;
            /* With EEPROM writes on it takes a reading only when the gateway would let a
             * setpoint write through (the interval since the last persisted write has run and
             * a token is left): the same limits as the controller's, taken as a plain
             * integrator would take them. Adding every reading while its writes wait would
             * wind the setpoint up past the load (it rings), and taking the lower currents
             * that would go at once but not the higher ones runs it down into idle and the
             * budget into debt. */
            if (delivered && (!m->eeprom_on || (!s_gw_pending(r) && s_interval_open(r, t)))) {
                /* setpoint += -(grid - offset), held within the window */
                double lo, hi;
                s_window(r, hour, r->tel_v, &lo, &hi);
                r->db_sp_w -= delivered_w - p->hours[hour].grid_offset_w;
                if (r->db_sp_w > hi)
                    r->db_sp_w = hi;
                if (r->db_sp_w < lo)
                    r->db_sp_w = lo;
                double v = r->tel_v > 1.0 ? r->tel_v : m->cells * 3.2;
                double a = r->db_sp_w > 0 ? r->db_sp_w * m->efficiency / v
                                          : -r->db_sp_w / m->efficiency / v;
                int ca = (int)lround(a * 100);
                ctl_mode_t mode = ca < p->min_current_ca ? CTL_MODE_IDLE
                                  : r->db_sp_w > 0       ? CTL_MODE_CHARGE
                                                         : CTL_MODE_DISCHARGE;
                if (mode == CTL_MODE_IDLE)
                    ca = 0;
                s_note_setpoint(r, mode == CTL_MODE_DISCHARGE ? -ca : ca, t);
                s_gw_apply(r, mode, ca, t);
            }
        } else if (r->kind == TWIN_CONTROLLER) {
            s_gw_tick(r, t);
            if (tel_due) {
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
                in.vout_set_cv = s_reg(r, BIC_CMD_VOUT_SET);
                in.rev_vout_set_cv = s_reg(r, BIC_CMD_REVERSE_VOUT_SET);
                in.temp_valid = true;
                in.temp_c = st.temperature_c;
                in.fault_raw = st.fault_status;
                if (m->eeprom_on && m->eeprom_budget > 0) {
                    /* the gateway's figure as the daemon reads it (a debt as none left) */
                    s_tokens(r, t);
                    in.eeprom_tokens = r->tokens > 0 ? floor(r->tokens * 100) / 100 : 0;
                    in.eeprom_tokens_ms = t;
                }
                next_tel += tel_ms;
            }
            bool run_step = delivered || t >= next_tick || tel_due; /* as the daemon */
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
                if (d->sw && d->sw->n)
                    s_switches(d->sw, r, &in, &out, t);
                if (out.reason != CTL_R_WAIT_EFFECT && out.reason != CTL_R_WAIT_SAMPLE)
                    bd_reason = out.reason;
                bd_mode = out.mode;
                r->follow_reports = (long)out.follow_count;
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
                if (out.send) {
                    int sp = out.mode == CTL_MODE_CHARGE      ? out.current_ca
                             : out.mode == CTL_MODE_DISCHARGE ? -out.current_ca
                                                              : 0;
                    s_note_setpoint(r, sp, t);
                    s_gw_apply(r, out.mode, out.current_ca, t);
                }
            }
        } else { /* seed */
            if (tel_due)
                next_tel += tel_ms;
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
                s_note_setpoint(r, cmd.direction ? -(int)cmd.a100 : (int)cmd.a100, t);
                written += s_vwrite(r, BIC_CMD_DIRECTION_CTRL, (uint16_t)cmd.direction, t);
                written += s_vwrite(r, cmd.direction ? BIC_CMD_REVERSE_IOUT_SET : BIC_CMD_IOUT_SET,
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
    out->reversals = r->reversals;
    out->max_charge_w = r->max_charge_w;
    out->max_discharge_w = r->max_discharge_w;
    out->follow_reports = r->follow_reports;
    out->switched_kwh = r->switched_j / 3.6e6;
    const battery_t *b = r->dev ? bic_device_battery(r->dev) : r->ideal_bat;
    if (r->dev)
        out->eeprom_writes = (long)(bic_device_eeprom_writes_total(r->dev) - r->eep_base);
    if (b) {
        out->throughput_kwh = (battery_charged_wh(b) + battery_discharged_wh(b)) / 1000.0;
        out->final_soc_pct = battery_soc_pct(b);
    }
}

/* ---- the day -------------------------------------------------------------------------------- */

int twin_ctl_params(const config_t *cfg, const char *config_path, const twin_model_t *model,
                    ctl_params_t *p, int *id_out, char *err, size_t errlen)
{
    char cerr[2048] = "";
    int id = model->ctl_id;
    if (id < 0) {
        int ids[1];
        if (config_ids(cfg, "CHARGE_CONTROL", ids, 1) < 1) {
            snprintf(err, errlen,
                     "%s: no [CHARGE_CONTROL] Id/X/ keys; the twin needs one "
                     "controller",
                     config_path);
            return -1;
        }
        id = ids[0];
    }
    if (ctl_params_from_config(cfg, id, p, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "%s: [CHARGE_CONTROL] Id/%d: %s", config_path, id, cerr);
        return -1;
    }
    /* The model's converter: current limits from its AC power ratings at the nominal
     * voltage (3.2 V per cell), intersected with the configured limits. */
    double v_nom = model->cells * 3.2;
    int c_ca = (int)(model->max_charge_w * model->efficiency / v_nom * 100);
    int d_ca = (int)(model->max_discharge_w / model->efficiency / v_nom * 100);
    if (p->max_charge_ca > c_ca)
        p->max_charge_ca = c_ca;
    if (p->max_discharge_ca > d_ca)
        p->max_discharge_ca = d_ca;
    ctl_params_set_min_current(p, (int)lround(model->min_current_a * 100));
    p->efficiency = model->efficiency;
    p->enabled = true;
    p->meter_latency_ms = (int)lround(model->meter_latency_s * 1000); /* as configured */
    if (p->telemetry_timeout_ms < 5000 * model->telemetry_period_s)
        p->telemetry_timeout_ms = (int)(5000 * model->telemetry_period_s);
    if (model->eeprom_on && p->min_write_interval_ms < model->eeprom_interval_s * 1000)
        p->min_write_interval_ms = model->eeprom_interval_s * 1000;
    if (model->eeprom_on && model->eeprom_budget > 0) { /* the gateway's info says so */
        p->write_budget_per_day = model->eeprom_budget;
        p->write_burst = model->eeprom_burst;
    }
    if (ctl_params_validate(p, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "%s: %s", config_path, cerr);
        return -1;
    }
    *id_out = id;
    return 0;
}

int twin_run(const char *profile_path, const char *config_path, const twin_model_t *model,
             twin_plot_t *plot, twin_result_t *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (plot)
        memset(plot, 0, sizeof *plot);
    household_t *hh = household_load(profile_path, err, errlen);
    if (!hh)
        return -1;
    const char *base = strrchr(profile_path, '/');
    int rc = twin_run_household(hh, base ? base + 1 : profile_path, config_path, model, plot, res,
                                err, errlen);
    household_destroy(&hh);
    return rc;
}

int twin_run_household(household_t *hh, const char *name, const char *config_path,
                       const twin_model_t *model, twin_plot_t *plot, twin_result_t *res, char *err,
                       size_t errlen)
{
    int rc = -1;
    config_t *cfg = NULL;
    run_t runs[TWIN_RUNS];
    memset(runs, 0, sizeof runs);
    memset(res, 0, sizeof *res);
    if (plot)
        memset(plot, 0, sizeof *plot);
    char cerr[2048] = "";

    if (model->transients)
        household_add_transients(hh, model->transient_seed);
    else
        household_clear_transients(hh);
    cfg = config_load(config_path, cerr, sizeof cerr);
    if (!cfg) {
        snprintf(err, errlen, "%s", cerr);
        goto cleanup;
    }
    ctl_params_t p;
    int id;
    if (twin_ctl_params(cfg, config_path, model, &p, &id, err, errlen) != 0)
        goto cleanup;

    surplus_cfg_t sw;
    if (surplus_cfg_from_config(cfg, id, &sw, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "%s: %s", config_path, cerr);
        goto cleanup;
    }
    day_t d = {
        .sw = &sw,
        .hh = hh,
        .model = model,
        .p = &p,
        .idle_min = strcasecmp(config_str(cfg, "GATEWAY", "IdleState"), "min") == 0,
        .want_plot = plot != NULL,
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
                    twin_run_name(k), runs[k].diag_imp[0] / 3.6e6, runs[k].diag_imp[1] / 3.6e6,
                    runs[k].diag_imp[2] / 3.6e6, runs[k].diag_exp[0] / 3.6e6,
                    runs[k].diag_exp[1] / 3.6e6, runs[k].diag_exp[2] / 3.6e6);
    }
    double x_none = res->m[TWIN_NONE].import_kwh + res->m[TWIN_NONE].export_kwh;
    double x_ideal = res->m[TWIN_IDEAL].import_kwh + res->m[TWIN_IDEAL].export_kwh;
    for (int k = 0; k < TWIN_RUNS; k++) {
        double x = res->m[k].import_kwh + res->m[k].export_kwh;
        res->m[k].captured_pct =
            x_none - x_ideal > 1e-9 ? 100 * (x_none - x) / (x_none - x_ideal) : 0;
        res->m[k].shortfall_kwh = x - x_ideal;
    }
    if (model->breakdown) {
        const run_t *c = &runs[TWIN_CONTROLLER], *i = &runs[TWIN_IDEAL];
        double dt = model->step_s;
        res->has_bd = true;
        for (size_t k = 0; k < i->bd_n; k++) {
            int hour = (int)((double)k * dt / 3600) % 24;
            bool at_limit = fabs(i->bd_grid[k] - p.hours[hour].grid_offset_w) > 5;
            for (int j = 0; j < TWIN_RUNS; j++) { /* every run's shortfall, split */
                const run_t *r = &runs[j];
                if (j == TWIN_IDEAL || !r->bd_grid || k >= r->bd_n)
                    continue;
                double part = (fabs(r->bd_grid[k]) - fabs(i->bd_grid[k])) * dt / 3.6e6;
                *(at_limit ? &res->bd.at_limit_kwh[j] : &res->bd.elsewhere_kwh[j]) += part;
            }
            if (k >= c->bd_n)
                continue;
            int cat = at_limit ? TWIN_BD_IDEAL_LIMIT : c->bd_cat[k];
            double g = c->bd_grid[k], b = c->bd_batt[k];
            double wrong = b > 0 ? fmin(fmax(g, 0), b) : fmin(fmax(-g, 0), -b);
            res->bd.hours[cat] += dt / 3600;
            res->bd.delta_kwh[cat] += (fabs(g) - fabs(i->bd_grid[k])) * dt / 3.6e6;
            res->bd.wrong_kwh[cat] += wrong * dt / 3.6e6;
            res->bd.missed_kwh[cat] += (fabs(i->bd_batt[k]) - fabs(b)) * dt / 3.6e6;
        }
    }
    if (model->trace) {
        const run_t *ri = &runs[TWIN_IDEAL], *rctl = &runs[TWIN_CONTROLLER];
        const run_t *rs = &runs[TWIN_SEED], *rd = &runs[TWIN_DEADBEAT];
        fprintf(model->trace, "hour  controller-ideal  seed-ideal  deadbeat-ideal (kWh)\n");
        for (int h = 0; h < 24; h++)
            fprintf(model->trace, "%2d %8.3f %8.3f %8.3f\n", h,
                    (rctl->diag_hour_x[h] - ri->diag_hour_x[h]) / 3.6e6,
                    (rs->diag_hour_x[h] - ri->diag_hour_x[h]) / 3.6e6,
                    (rd->diag_hour_x[h] - ri->diag_hour_x[h]) / 3.6e6);
        for (int k = 0; k < 1440; k++)
            fprintf(model->trace, "minute %4d %02d:%02d %8.2f %8.2f Wh\n", k, k / 60, k % 60,
                    (rctl->diag_min_x[k] - ri->diag_min_x[k]) / 3600.0,
                    (rd->diag_min_x[k] - ri->diag_min_x[k]) / 3600.0);
    }
    if (plot) {
        snprintf(plot->title, sizeof plot->title, "bic2mqtt twin: %s%s%s", name,
                 model->transients ? ", fast transients" : "",
                 model->eeprom_on ? ", EEPROM writes on" : "");
        for (int k = 0; k < TWIN_RUNS; k++) {
            twin_series_t *sr = &plot->run[k];
            sr->grid_w = runs[k].pl_grid;
            sr->batt_w = runs[k].pl_batt;
            sr->soc_pct = runs[k].pl_soc;
            sr->n = runs[k].pl_n;
            runs[k].pl_grid = runs[k].pl_batt = runs[k].pl_soc = NULL;
            runs[k].pl_n = runs[k].pl_cap = 0;
        }
    }
    rc = 0;
cleanup:
    for (int k = 0; k < TWIN_RUNS; k++)
        s_run_free(&runs[k]);
    config_destroy(&cfg);
    return rc;
}

static const char *s_names[TWIN_RUNS] = {"controller", "none", "ideal", "seed", "deadbeat"};

const char *twin_run_name(int k)
{
    return k >= 0 && k < TWIN_RUNS ? s_names[k] : "?";
}

void twin_plot_free(twin_plot_t *plot)
{
    if (!plot)
        return;
    for (int k = 0; k < TWIN_RUNS; k++) {
        free(plot->run[k].grid_w);
        free(plot->run[k].batt_w);
        free(plot->run[k].soc_pct);
    }
    memset(plot, 0, sizeof *plot);
}

const char *twin_bd_name(int k)
{
    static const char *names[TWIN_BD_N] = {
        "ideal_limited", "after_step",     "idle_dwell_block", "protection",
        "power_limit",   "write_interval", "deadband",         "tracking",
    };
    return k >= 0 && k < TWIN_BD_N ? names[k] : "?";
}
