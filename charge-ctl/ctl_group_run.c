/*
 * ctl_group_run: one controller over a group of devices (ctl_group_run.h).
 */
#include "ctl_group_run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ctl_group_run_init(ctl_group_run_t *r, int64_t now_ms)
{
    memset(r, 0, sizeof *r);
    ctl_state_init(&r->st, now_ms);
    ctl_group_state_init(&r->gs);
    for (int i = 0; i < CTL_GROUP_MAX; i++)
        r->mode[i] = CTL_MODE_NONE;
}

int ctl_group_run_link_ca(const ctl_group_run_t *r, int i)
{
    return r->mode[i] == CTL_MODE_IDLE ? r->preset_ca[i] : r->current_ca[i];
}

/* The preset of each unit on standby (ctl_group_run_out_t.preset_ca). */
static void s_presets(const ctl_group_cfg_t *g, const ctl_group_run_t *r,
                      const ctl_group_dev_t *devs, ctl_group_run_out_t *out)
{
    int common = 0;
    bool same = true; /* the running units run the same way at one current, each of them
                         told so at this step: their writes and the preset's go together */
    for (int i = 0; i < g->n && same; i++) {
        if (!devs[i].online ||
            (out->mode[i] != CTL_MODE_CHARGE && out->mode[i] != CTL_MODE_DISCHARGE))
            continue;
        int ca = out->mode[i] == CTL_MODE_CHARGE ? out->current_ca[i] : -out->current_ca[i];
        if (out->mode[i] == r->mode[i] && out->current_ca[i] == r->current_ca[i])
            same = false; /* a unit that keeps its command: no write to merge with */
        else if (common == 0)
            common = ca;
        else if (ca != common)
            same = false;
    }
    for (int i = 0; i < g->n; i++) {
        if (!devs[i].online || out->mode[i] != CTL_MODE_IDLE)
            continue;
        int p = r->mode[i] == CTL_MODE_IDLE ? r->preset_ca[i] : 0; /* kept */
        if (out->go.why[i] == CTL_GU_STANDBY && same && common != 0)
            p = common;
        int max = p > 0 ? g->max_charge_ca[i] : g->max_discharge_ca[i];
        out->preset_ca[i] = abs(p) >= g->min_current_ca[i] && abs(p) <= max ? p : 0;
    }
}

void ctl_group_run_params(const ctl_params_t *unit, const ctl_group_cfg_t *g,
                          const ctl_group_dev_t *devs, ctl_params_t *pg)
{
    *pg = *unit;
    int online = 0;
    long c = 0, d = 0;
    for (int i = 0; i < g->n; i++) {
        if (!devs[i].online)
            continue;
        online++;
        c += g->max_charge_ca[i];
        d += g->max_discharge_ca[i];
    }
    if (online == 0) { /* nothing to drive: one unit's limits, the step idles anyway */
        online = 1;
        c = unit->max_charge_ca;
        d = unit->max_discharge_ca;
    }
    pg->max_charge_ca = (int)c;
    pg->max_discharge_ca = (int)d;
    for (int h = 0; h < 24; h++) {
        pg->hours[h].max_charge_w = unit->hours[h].max_charge_w * online;
        pg->hours[h].max_discharge_w = unit->hours[h].max_discharge_w * online;
    }
    pg->follow_timeout_ms = 0;
    /* each change of the group's setpoint is a setpoint per device on the one bus: the step
     * waits for the effect of the last one and changes in steps of 0.1 A at least, so that the
     * bus keeps room for the others' requests */
    pg->wait_effect = true;
    if (pg->quantum_ca < CTL_PERSISTED_QUANTUM_CA)
        pg->quantum_ca = CTL_PERSISTED_QUANTUM_CA;
}

/* A small change of the group's current, the same units running the same way as at the last
 * commands: it goes to one unit (the one furthest below its share in the change's direction,
 * that can take it within its limits) and the others keep theirs, so a meter's fluctuation
 * costs one device's writes on the bus, not every device's. The shares of the dispatch are
 * given whole when the change is larger, or a unit has drifted from its share. */
static void s_small_change(const ctl_group_cfg_t *g, const ctl_group_run_t *r,
                           const ctl_group_dev_t *devs, ctl_group_run_out_t *out)
{
    long delta = 0, cap = 0;
    int running = 0;
    for (int i = 0; i < g->n; i++) {
        if (!devs[i].online)
            continue;
        if (out->mode[i] != r->mode[i])
            return;
        if (out->mode[i] != CTL_MODE_CHARGE && out->mode[i] != CTL_MODE_DISCHARGE)
            continue;
        int max = out->mode[i] == CTL_MODE_CHARGE ? g->max_charge_ca[i] : g->max_discharge_ca[i];
        if (abs(out->current_ca[i] - r->current_ca[i]) * CTL_GROUP_DRIFT > max)
            return; /* drifted from its share: the shares whole */
        delta += out->current_ca[i] - r->current_ca[i];
        cap += max;
        running++;
    }
    if (running < 2 || labs(delta) * CTL_GROUP_SMALL > cap)
        return;
    int k = -1;
    long best = 0;
    for (int i = 0; i < g->n; i++) {
        if (!devs[i].online ||
            (out->mode[i] != CTL_MODE_CHARGE && out->mode[i] != CTL_MODE_DISCHARGE))
            continue;
        int max = out->mode[i] == CTL_MODE_CHARGE ? g->max_charge_ca[i] : g->max_discharge_ca[i];
        long want = r->current_ca[i] + delta;
        if (want < g->min_current_ca[i] || want > max)
            continue;
        long below = (long)(out->current_ca[i] - r->current_ca[i]) * (delta < 0 ? -1 : 1);
        if (k < 0 || below > best) {
            k = i;
            best = below;
        }
    }
    if (k < 0)
        return;
    for (int i = 0; i < g->n; i++) {
        if (!devs[i].online ||
            (out->mode[i] != CTL_MODE_CHARGE && out->mode[i] != CTL_MODE_DISCHARGE))
            continue;
        int ca = i == k ? (int)(r->current_ca[i] + delta) : r->current_ca[i];
        if (out->go.current_ca[i] > 0)
            out->go.power_w[i] *= (double)ca / out->go.current_ca[i];
        out->go.current_ca[i] = ca;
        out->current_ca[i] = ca;
    }
}

void ctl_group_run_step(const ctl_params_t *unit, const ctl_group_cfg_t *g, ctl_group_run_t *r,
                        const ctl_input_t *house, const ctl_group_dev_t *devs,
                        ctl_group_run_out_t *out)
{
    memset(out, 0, sizeof *out);
    ctl_params_t pg;
    ctl_group_run_params(unit, g, devs, &pg);

    /* the group as one device: voltage the mean, current the sum, telemetry as old as the
     * oldest, of the devices online */
    ctl_input_t in = *house;
    double v_sum = 0, a_sum = 0;
    int with_tel = 0;
    int64_t tel_ms = INT64_MAX;
    for (int i = 0; i < g->n; i++) {
        if (!devs[i].online)
            continue;
        out->online++;
        if (!devs[i].telemetry_valid)
            continue;
        with_tel++;
        v_sum += devs[i].dc_v;
        a_sum += devs[i].dc_a;
        if (devs[i].telemetry_ms < tel_ms)
            tel_ms = devs[i].telemetry_ms;
    }
    in.online = out->online > 0;
    in.lease_held = out->online > 0;
    in.telemetry_valid = with_tel > 0 && with_tel == out->online;
    in.telemetry_ms = with_tel > 0 ? tel_ms : 0;
    in.dc_v = with_tel > 0 ? v_sum / with_tel : 0;
    in.dc_a = a_sum;
    in.operation = 1;
    in.direction = r->direction;
    in.iout_ca = r->iout_ca;
    in.rev_iout_ca = r->rev_iout_ca;
    in.setpoints_age_ms = 0;
    in.vout_set_cv = unit->charge_voltage_cv;
    in.rev_vout_set_cv = unit->discharge_voltage_cv;
    in.temp_valid = false;
    in.fault_raw = 0;
    in.eeprom_tokens = -1;
    /* a device lost with a share: the setpoint stays, the others take it whole; it is in
     * flight from now, as a command of the step's own */
    bool lost = false;
    for (int i = 0; i < g->n; i++)
        lost |= r->running[i] && !devs[i].online;
    if (lost && (r->st.mode == CTL_MODE_CHARGE || r->st.mode == CTL_MODE_DISCHARGE)) {
        r->st.pending = true;
        r->st.since_ms = house->now_ms;
    }
    ctl_step(&pg, &r->st, &in, &out->ctl);

    /* the household setpoint in W at the mean voltage of the units that ran at the last step
     * (the group's voltage when none did): the dispatch turns each running unit's share back
     * into a current at their voltages, so the same units get the step's current exactly; at
     * the mean of all units a unit on standby, whose voltage moves apart from the running
     * units' as their current settles, made the running units' currents creep by 0.01-0.02 A
     * between meter readings, a write to a device each time */
    double v_run = 0;
    int n_run = 0;
    for (int i = 0; i < g->n; i++)
        if (r->running[i] && devs[i].online && devs[i].telemetry_valid) {
            v_run += devs[i].dc_v;
            n_run++;
        }
    double v = n_run > 0 ? v_run / n_run : in.dc_v;
    if (v <= 1.0)
        v = 0;
    if (out->ctl.mode == CTL_MODE_CHARGE && v > 0)
        r->setpoint_w = out->ctl.current_ca / 100.0 * v / unit->efficiency;
    else if (out->ctl.mode == CTL_MODE_DISCHARGE && v > 0)
        r->setpoint_w = -out->ctl.current_ca / 100.0 * v * unit->efficiency;
    else if (out->ctl.mode != CTL_MODE_NONE)
        r->setpoint_w = 0;
    if (out->ctl.send) {
        r->direction = out->ctl.mode == CTL_MODE_DISCHARGE;
        if (out->ctl.mode == CTL_MODE_CHARGE)
            r->iout_ca = out->ctl.current_ca;
        if (out->ctl.mode == CTL_MODE_DISCHARGE)
            r->rev_iout_ca = out->ctl.current_ca;
    }

    ctl_group_unit_t u[CTL_GROUP_MAX];
    memset(u, 0, sizeof u);
    for (int i = 0; i < g->n; i++) {
        u[i].online = devs[i].online;
        u[i].max_charge_ca = g->max_charge_ca[i];
        u[i].max_discharge_ca = g->max_discharge_ca[i];
        u[i].min_current_ca = g->min_current_ca[i];
        u[i].dc_v = devs[i].telemetry_valid ? devs[i].dc_v : 0;
        u[i].soc_valid = devs[i].soc_valid;
        u[i].soc_pct = devs[i].soc_pct;
        u[i].min_soc_pct = unit->min_soc_pct;
        u[i].max_soc_pct = unit->max_soc_pct;
        u[i].battery = g->battery[i];
        u[i].energy_wh = devs[i].energy_wh;
    }
    ctl_group_dispatch(&g->params, &r->gs, u, g->n, r->setpoint_w, &out->go);

    for (int i = 0; i < g->n; i++) {
        ctl_mode_t m = out->go.power_w[i] > 0   ? CTL_MODE_CHARGE
                       : out->go.power_w[i] < 0 ? CTL_MODE_DISCHARGE
                                                : CTL_MODE_IDLE;
        out->mode[i] = m;
        out->current_ca[i] = m == CTL_MODE_IDLE ? 0 : out->go.current_ca[i];
    }
    s_small_change(g, r, devs, out);
    s_presets(g, r, devs, out);
    for (int i = 0; i < g->n; i++) {
        ctl_mode_t m = out->mode[i];
        int ca = out->current_ca[i];
        if (!devs[i].online) { /* its gateway puts it in the safe state: on its return, the
                                  command is given again */
            r->mode[i] = CTL_MODE_NONE;
            r->running[i] = false;
            continue;
        }
        r->running[i] = m == CTL_MODE_CHARGE || m == CTL_MODE_DISCHARGE;
        out->send[i] =
            m != r->mode[i] || ca != r->current_ca[i] || out->preset_ca[i] != r->preset_ca[i];
        if (out->send[i]) {
            r->mode[i] = m;
            r->current_ca[i] = ca;
            r->preset_ca[i] = out->preset_ca[i];
        }
    }
}
