/*
 * ctl_budget: the step function where every current change is persisted (docs/charge-ctl.md
 * 1.4): the gateway's write budget as the controller expects it, the pacing of trims by it,
 * and the write-budget mode for long write intervals.
 */
#include "ctl_step.h"
#include "ctl_step_impl.h"

#include <math.h>
#include <stdlib.h>

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

void ctl_step_budget(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in,
                     ctl_output_t *out, double target_w, double meas_ac, bool fresh, bool emergency,
                     bool discharge_ok, ctl_limit_t why_not_discharge, ctl_limit_t why_not_charge,
                     double max_c_w, double max_d_w)
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
             * ctl_protect) rather than exported. */
            double want_c = s_net_quantile(s, -1, p->budget_quantile_charge, s->discharge_cut, &nc);
            double want_d = s_net_quantile(s, 1, p->budget_quantile, true, &nd);
            want_c = fmin(want_c, max_c_w);
            want_d = fmin(want_d, max_d_w);
            int ca_c = ctl_quantise_ca(p, ctl_ac_to_amps(p, want_c, v));
            int ca_d = ctl_quantise_ca(p, ctl_ac_to_amps(p, -want_d, v));
            ca_c = ca_c < p->min_current_ca  ? p->min_current_ca
                   : ca_c > p->max_charge_ca ? p->max_charge_ca
                                             : ca_c;
            ca_d = ca_d < p->min_current_ca     ? p->min_current_ca
                   : ca_d > p->max_discharge_ca ? p->max_discharge_ca
                                                : ca_d;
            /* Off by how much, weighted by how often that direction is wanted. */
            double err_c = fabs(ctl_amps_to_ac(p, 1, ca_c - s->reg_charge_ca, v)) * nc;
            double err_d =
                discharge_ok ? fabs(ctl_amps_to_ac(p, 1, ca_d - s->reg_discharge_ca, v)) * nd : 0;
            bool pick_d = err_d > err_c;
            /* Escape: charge is being drawn from the grid and discharging is not allowed
             * yet; only a write can stop it, so it goes first. */
            double pc_now = ctl_amps_to_ac(p, 1, s->reg_charge_ca, v);
            bool escape = s->mode == CTL_MODE_CHARGE && !discharge_ok &&
                          s->reg_charge_ca > p->min_current_ca &&
                          net + pc_now > p->charge_tol_w + p->fast_export_w;
            if (escape) {
                pick_d = false;
                ca_c = ctl_quantise_ca(p, ctl_ac_to_amps(p, net < 0 ? -net : 0, v));
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
        double pc = s->charge_cut ? 0 : ctl_amps_to_ac(p, 1, s->reg_charge_ca, v);
        double pd = discharge_ok ? -ctl_amps_to_ac(p, -1, s->reg_discharge_ca, v) : 0;
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
    double ac = on ? ctl_amps_to_ac(p, mode == CTL_MODE_CHARGE ? 1 : -1, ca, v) : 0;
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
    bool send = ctl_command(s, in, mode, ca, ac);
    /* Level writes and OPERATION switches count against the interval; a direction change
     * alone does not (DIRECTION_CTRL is not persisted). */
    bool now_running = s->mode == CTL_MODE_CHARGE || s->mode == CTL_MODE_DISCHARGE;
    s->last_change_ms = was_running != now_running ? in->now_ms : keep_change;
    if (in->dc_a * 100.0 > p->min_current_ca * 1.5)
        s->last_charge_ms = in->now_ms;
    ctl_finish(p, s, out, send);
}

/* The gateway's write budget as this controller expects it: refilled at the daily rate, up to
 * the burst, less what its own commands cost, and set to the gateway's figure whenever a
 * newer one comes. */
void ctl_tokens_update(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in)
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

/* How long a small trim of the current waits after the last change where every write is
 * persisted (the caller lets a larger one go at the spacing from two writes up): the gateway's
 * spacing while more than half the budget's burst is saved up, then the daily rate (so small
 * trims alone never empty it), and no trim at all below two writes (a change forced by
 * a limit still goes out: the gateway counts it as a write toward safety). The gateway's
 * fixed-interval rule reads as a bucket of one refilled once per interval: the interval alone
 * paces the trims there. */
int64_t ctl_trim_interval(const ctl_params_t *p, const ctl_state_t *s)
{
    int64_t iv = p->min_write_interval_ms;
    if (p->write_budget_per_day <= 0 || iv <= 0 || s->tokens < 0)
        return iv;
    if (s->tokens < 2 && p->write_burst >= 2)
        return INT64_MAX;
    int64_t rate_ms = 86400000 / p->write_budget_per_day;
    if (s->tokens < p->write_burst / 2.0 && rate_ms > iv)
        return rate_ms;
    return iv;
}

/* The gateway's daily budget (a bucket of more than one write) within CTL_BUDGET_FULL_PCT of
 * its burst: it refills at the daily rate and stops at the burst, so a day that keeps it full
 * leaves writes unused. A write taken now is one of those. */
bool ctl_budget_full(const ctl_params_t *p, const ctl_state_t *s)
{
    return p->write_budget_per_day > 0 && p->min_write_interval_ms > 0 && p->write_burst >= 2 &&
           s->tokens >= p->write_burst * (CTL_BUDGET_FULL_PCT / 100.0);
}

bool ctl_budget_last(const ctl_params_t *p, const ctl_state_t *s)
{
    return p->write_budget_per_day > 0 && p->min_write_interval_ms > 0 && s->tokens >= 0 &&
           s->tokens < CTL_IDLE_EXIT_WRITES;
}
