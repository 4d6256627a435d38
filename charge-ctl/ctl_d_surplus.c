/*
 * ctl_d_surplus: the surplus switches' wiring: the surplus from the step's inputs, the
 * switches' rules (surplus.h) and their retained topics. Part of the bic-charge-ctl daemon
 * (ctl_d.h).
 */
#include "ctl_d.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* Publishes switch I's state ("0"/"1", retained, as the seed). */
void ctld_publish_switch(ctl_daemon_t *d, size_t i)
{
    const surplus_switch_t *w = &d->set.surplus.sw[i];
    ctld_publish(d, w->topic, d->sw.on[i] ? "1" : "0", 1, true);
}

void ctld_publish_switches(ctl_daemon_t *d)
{
    for (size_t i = 0; i < d->set.surplus.n; i++)
        ctld_publish_switch(d, i);
}

/* The seed's surplusP from this step, then the switches. */
void ctld_surplus_step(ctl_daemon_t *d, const ctl_input_t *in, int64_t now)
{
    bool grid = d->meter_valid && !ctld_meter_stale(d, now);
    bool in_control = ctld_state(d) == CTLD_ST_RUNNING;
    ctl_limit_t l = d->out.limit;
    bool limited = l == CTL_L_PROFILE_CHARGE || l == CTL_L_DEVICE_CHARGE || l == CTL_L_FULL ||
                   l == CTL_L_VOLTAGE_HIGH;
    double measured = in->telemetry_valid ? in->dc_v * in->dc_a : NAN;
    double set_w = NAN;
    if (in->telemetry_valid && in->operation == 1 && in->direction == 0 && in->iout_ca > 0)
        set_w = in->dc_v * in->iout_ca / 100.0;
    d->surplus_w = surplus_power_w(grid, d->meter_w, in_control, limited, set_w, measured);
    if (d->link.standby)
        return; /* the active instance switches */
    unsigned changed = surplus_step(&d->set.surplus, &d->sw, d->surplus_w, now);
    for (size_t i = 0; i < d->set.surplus.n; i++) {
        if (!(changed & (1u << i)))
            continue;
        const surplus_switch_t *w = &d->set.surplus.sw[i];
        log_info("surplus switch %d (%s) %s at %.0f W surplus", w->num,
                 w->name[0] ? w->name : w->topic, d->sw.on[i] ? "on" : "off", d->surplus_w);
        ctld_publish_switch(d, i);
    }
}
