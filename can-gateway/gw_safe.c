/*
 * gw_safe: the safe state: a lapsed lease, a stopping gateway or a device back after missing
 * one puts the device in the configured SafeState (the writes of can/bic_plan.h); and the
 * writes of can/bic_plan.h as a job's targets, for the setpoint modes too (an idle preset's
 * standby plan among them).
 */
#include <stdio.h>

#include <cJSON.h>

#include "bic_plan.h"
#include "bic_proto.h"
#include "gw_internal.h"
#include "gw_npb.h"
#include "lease.h"
#include "log.h"

/* The writes of mode (can/bic_plan.h) as the job's targets, in the plan's order. */
void gw_job_add_plan(job_t *j, const gw_dev_t *d, bic_plan_mode_t mode, uint16_t current_raw)
{
    if (GW_DEV_IS_NPB(d->addr)) { /* charge-only, output off for the rest (gw_npb.h) */
        bic_plan_write_t nw[BIC_PLAN_MAX];
        int nn = gw_npb_plan(d, mode, current_raw, nw);
        for (int i = 0; i < nn; i++)
            gw_job_add_target(j, nw[i].cmd, nw[i].raw, 0xFFFF, false, NULL);
        return;
    }
    bic_plan_args_t a = {.current_raw = current_raw,
                         .charge_min_raw = d->limits.iout.min_raw,
                         .discharge_min_raw = d->limits.rev_iout.min_raw};
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(mode, &a, w);
    for (int i = 0; i < n; i++)
        gw_job_add_target(j, w[i].cmd, w[i].raw, 0xFFFF, false, NULL);
}

/* Another write job of j's device, running or waiting: it may change what the gateway knows
 * before j runs. */
static bool s_other_write_job(const gateway_t *gw, const job_t *j)
{
    for (const job_t *o = gw->jobs; o; o = o->next)
        if (o != j && o->kind == JOB_ENSURE && o->addr == j->addr)
            return true;
    return false;
}

/* The plan switches the output off first. When the gateway knows the output is off already
 * and no other write job of the device comes before this one, that step goes after the
 * current instead: it writes nothing then, and its confirming read, the device's first bus
 * request, would keep the current's write from merging with the running units' identical
 * writes into one broadcast frame (bus_sched.c). */
void gw_job_add_standby(gateway_t *gw, job_t *j, const gw_dev_t *d, bool charge,
                        uint16_t current_raw, int64_t now)
{
    bic_plan_args_t a = {.current_raw = current_raw,
                         .charge_min_raw = d->limits.iout.min_raw,
                         .discharge_min_raw = d->limits.rev_iout.min_raw};
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(charge ? BIC_PLAN_STANDBY_CHARGE : BIC_PLAN_STANDBY_DISCHARGE, &a, w);
    int32_t op = -1;
    if (n >= 2 && w[0].cmd == BIC_CMD_OPERATION && !s_other_write_job(gw, j) &&
        gw_known(gw, d, BIC_CMD_OPERATION, now, &op) && op == w[0].raw) {
        bic_plan_write_t off = w[0];
        w[0] = w[1];
        w[1] = off;
    }
    for (int i = 0; i < n; i++)
        gw_job_add_target(j, w[i].cmd, w[i].raw, 0xFFFF, false, NULL);
}

void gw_job_add_idle(job_t *j, const gw_dev_t *d, bool min_state)
{
    gw_job_add_plan(j, d, min_state ? BIC_PLAN_IDLE_MIN : BIC_PLAN_IDLE_OFF, 0);
}

/* Applies the safe state to one device now, or, when it cannot be reached, remembers it for
 * when the device is back (a device that missed the lapse must not keep the old setpoint). */
void gw_safe_state_dev(gateway_t *gw, gw_dev_t *d, const char *reason, int64_t now)
{
    /* pending EEPROM values of the former controller must not be applied later */
    for (int i = 0; i < EEPROM_NREGS; i++)
        eeprom_policy_clear_pending(gw_eep(gw, d->addr), eeprom_reg_cmd(i));
    if (gw->set.safe_state == SAFE_HOLD) {
        cJSON *e = gw_event(d, "safe_state");
        cJSON_AddStringToObject(e, "state", "hold");
        cJSON_AddStringToObject(e, "reason", reason);
        gw_publish_event(gw, d, e);
        return;
    }
    if (!d->identified || !d->online || !bus_sched_is_up(gw->sched)) {
        d->safe_pending = true;
        snprintf(d->safe_reason, sizeof d->safe_reason, "%s", reason);
        log_warn("device %d unreachable: safe state applied when it is back", d->addr);
        return;
    }
    job_t *j = gw_ensure_job_new(gw, NULL, NULL, d->addr, ENS_SAFE, EEPROM_BY_SAFETY, true);
    if (!j) {
        d->safe_pending = true;
        snprintf(d->safe_reason, sizeof d->safe_reason, "%s", reason);
        log_error("device %d: no room to apply the safe state now; retrying", d->addr);
        return;
    }
    d->safe_pending = false;
    j->prio = BUS_PRIO_SAFETY;
    snprintf(j->reason, sizeof j->reason, "%s", reason);
    /* a device a person stopped stays off: SafeState=min would switch it on */
    gw_job_add_idle(j, d, gw->set.safe_state == SAFE_MIN && !d->held_off);
    gw_job_start(gw, j, now);
}

void gw_safe_state_all(gateway_t *gw, const char *reason, int64_t now)
{
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->dev[a])
            gw_safe_state_dev(gw, gw->dev[a], reason, now);
}

/* A lapsed lease puts its own device in the safe state; the other devices carry on. */
void gw_lease_check_lapse(gateway_t *gw, int64_t now)
{
    char holder[LEASE_NAME_MAX + 1];
    int a;
    bool any = false;
    while (lease_table_check_lapse(gw->leases, now, &a, holder)) {
        any = true;
        gw_dev_t *d = gw->dev[a];
        if (!d)
            continue; /* an address no longer (or not yet) in service */
        log_warn("control lease of '%s' on device %d lapsed; applying the safe state", holder, a);
        cJSON *e = gw_event(d, "lease_lapsed");
        cJSON_AddStringToObject(e, "holder", holder);
        gw_publish_event(gw, d, e);
        gw_safe_state_dev(gw, d, "lease lapsed", now);
    }
    if (any)
        gw_lease_persist(gw, now);
}
