/*
 * ctl_step_impl: what the parts of the step function share (ctl_step.c the law and the
 * follow-up of commands, ctl_protect.c the battery protection, ctl_budget.c the EEPROM
 * pacing and the write-budget mode, ctl_params.c the parameters and their configuration).
 * Not for use outside charge-ctl/ctl_*.c.
 */
#ifndef CTL_STEP_IMPL_H
#define CTL_STEP_IMPL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl_step.h"

#define NEVER INT64_MIN

/* Battery power on the AC side for a DC power (+ charging). */
static inline double ctl_dc_to_ac(const ctl_params_t *p, double dc_w)
{
    return dc_w >= 0 ? dc_w / p->efficiency : dc_w * p->efficiency;
}

/* DC current magnitude (A) for an AC battery power. */
static inline double ctl_ac_to_amps(const ctl_params_t *p, double ac_w, double v)
{
    double dc = ac_w >= 0 ? ac_w * p->efficiency : ac_w / p->efficiency;
    return fabs(dc) / v;
}

static inline double ctl_amps_to_ac(const ctl_params_t *p, int dir, int ca, double v)
{
    double dc = dir * (ca / 100.0) * v;
    return ctl_dc_to_ac(p, dc);
}

/* Record a new command in the state; returns whether it differs from the last one. */
bool ctl_command(ctl_state_t *s, const ctl_input_t *in, ctl_mode_t mode, int ca, double ac_w);

/* Fill the output from the state at the end of a step. */
void ctl_finish(const ctl_params_t *p, ctl_state_t *s, ctl_output_t *out, bool send);

/* Battery protection with hysteresis (ctl_protect.c): sets the cut flags in the state and
 * the SOC in the output, and says which limit stops charging and discharging (NONE: none). */
void ctl_protect(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in, ctl_output_t *out,
                 ctl_limit_t *charge_why, ctl_limit_t *discharge_why);

/* The write-budget mode's step (ctl_budget.c). */
void ctl_step_budget(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in,
                     ctl_output_t *out, double target_w, double meas_ac, bool fresh, bool emergency,
                     bool discharge_ok, ctl_limit_t why_not_discharge, ctl_limit_t why_not_charge,
                     double max_c_w, double max_d_w);

/* The gateway's write budget as this controller expects it (ctl_budget.c). */
void ctl_tokens_update(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in);

/* How long a trim of the current waits after the last change (ctl_budget.c). */
int64_t ctl_trim_interval(const ctl_params_t *p, const ctl_state_t *s);

/* Whether the gateway's daily budget is full, so that a write now spends a saved-up one
 * (ctl_budget.c). */
bool ctl_budget_full(const ctl_params_t *p, const ctl_state_t *s);

/* Persisted writes a change of mode costs: the output, the current and the direction (or the
 * other current). */
#define CTL_IDLE_EXIT_WRITES 3

/* Whether the gateway's daily budget is down to fewer writes than a change of mode costs
 * (ctl_budget.c). */
bool ctl_budget_last(const ctl_params_t *p, const ctl_state_t *s);

#endif
