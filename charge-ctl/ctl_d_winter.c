/*
 * ctl_d_winter: the Winter mode's wiring: winter.h's step on the daemon's inputs, its command
 * as a setpoint. Part of the bic-charge-ctl daemon (ctl_d.h).
 */
#include "ctl_d.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Type=Winter: the Winter state machine in place of the grid-balance step; its power becomes
 * a current at the measured voltage, within the device's current limits. */
void ctld_winter_step(ctl_daemon_t *d, const ctl_input_t *in, int64_t now)
{
    const ctl_params_t *p = &d->set.params;
    winter_input_t wi = {.now_ms = now,
                         .online = in->telemetry_valid,
                         .temp_c = d->temp_valid && d->tel_online ? d->temp_c : NAN,
                         .fault = d->fault_any,
                         .dc_a = in->dc_a};
    double soc = in->telemetry_valid ? ctl_soc_from_voltage(p, in->dc_v) : -1;
    wi.soc_valid = soc >= 0;
    wi.soc_pct = soc;
    if (!ctld_active(d)) {
        winter_init(&d->winter); /* enabled again: from the start */
        d->winter_out = (winter_output_t){.cmd = WINTER_OUT_IDLE, .reason = "disabled"};
    } else {
        winter_step(&d->set.winter_p, &d->winter, &wi, &d->winter_out);
    }
    const winter_output_t *w = &d->winter_out;
    ctl_mode_t mode = CTL_MODE_IDLE;
    int ca = 0;
    if (w->cmd != WINTER_OUT_IDLE && in->dc_v > 0) {
        bool charge = w->cmd == WINTER_OUT_CHARGE;
        int max = charge ? p->max_charge_ca : p->max_discharge_ca;
        ca = (int)lround(w->power_w / in->dc_v * 100.0);
        ca = ca < p->min_current_ca ? p->min_current_ca : ca > max ? max : ca;
        mode = charge ? CTL_MODE_CHARGE : CTL_MODE_DISCHARGE;
    }
    /* Small voltage moves do not rewrite the current: 0.2 A or more, or another mode. */
    bool changed = mode != d->out.mode || abs(ca - d->out.current_ca) >= 20 ||
                   d->link.acked_mode == CTL_MODE_NONE;
    ctl_output_t o = {.mode = mode,
                      .current_ca = changed ? ca : d->out.current_ca,
                      .power_w = mode == CTL_MODE_CHARGE      ? w->power_w
                                 : mode == CTL_MODE_DISCHARGE ? -w->power_w
                                                              : 0,
                      .send = changed,
                      .reason = mode == CTL_MODE_IDLE ? CTL_R_DEADBAND : CTL_R_TRACK,
                      .reason_text = w->reason,
                      .limit = CTL_L_NONE,
                      .limit_text = "none",
                      .soc_valid = wi.soc_valid,
                      .soc_pct = soc,
                      .block_text = ""};
    if (!in->telemetry_valid) {
        o.reason = CTL_R_OFFLINE;
        o.mode = CTL_MODE_NONE;
        o.send = false;
    }
    d->out = o;
    d->st.mode = o.mode;
    d->st.current_ca = o.current_ca;
    d->st.power_w = o.power_w;
    if (o.send && !d->link.sp_dirty)
        ctl_link_setpoint(&d->link, o.mode, o.current_ca);
}
