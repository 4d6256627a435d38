/*
 * gw_limits: the configured [DEVICE] values on the device (ApplyDeviceLimits): the write job
 * that brings them there, its outcome as an event and in info, the retry while they are not.
 */
#include <stdio.h>

#include <cJSON.h>

#include "gw_internal.h"
#include "log.h"

/* {"state":"ok|applying|failed|off|unknown","error":...}: the configured values on the device */
cJSON *gw_limits_state_json(const gateway_t *gw, const gw_dev_t *d)
{
    static const char *names[] = {"unknown", "applying", "ok", "failed"};
    cJSON *o = cJSON_CreateObject();
    bool off = !gw->set.apply_limits || !d->cfg.present || GW_DEV_IS_NPB(d->addr);
    cJSON_AddStringToObject(o, "state", off ? "off" : names[d->limits_state]);
    if (!off && d->limits_state == GW_LIMITS_FAILED)
        cJSON_AddStringToObject(o, "error", d->limits_error);
    return o;
}

/* Brings VOUT_SET and REVERSE_VOUT_SET to the configured [DEVICE] values and IOUT_SET /
 * REVERSE_IOUT_SET within the configured maxima (unchanged values are skipped). A person
 * configured them: at once within the EEPROM budget, the reserve does not apply. */
void gw_limits_apply(gateway_t *gw, gw_dev_t *d, int64_t now)
{
    if (!gw->set.apply_limits || !d->cfg.present || !d->identified || !d->online ||
        GW_DEV_IS_NPB(d->addr)) /* [NPB] values bound writes; none is written */
        return;
    job_t *j = gw_ensure_job_new(gw, NULL, NULL, d->addr, ENS_LIMITS, EEPROM_BY_PERSON, true);
    if (!j) {
        d->limits_state = GW_LIMITS_FAILED;
        snprintf(d->limits_error, sizeof d->limits_error, "no room for the job; retrying");
        d->limits_retry_at = now + LIMITS_RETRY_US;
        return;
    }
    d->limits_state = GW_LIMITS_APPLYING;
    j->prio = BUS_PRIO_SAFETY;
    /* currents first (toward safety), then the voltages */
    gw_ensure_add_at_most(j->ens, BIC_CMD_IOUT_SET, (uint16_t)d->limits.iout.max_raw, NULL);
    gw_ensure_add_at_most(j->ens, BIC_CMD_REVERSE_IOUT_SET, (uint16_t)d->limits.rev_iout.max_raw,
                          NULL);
    /* the configured values within the effective limits (a ChargeVoltage above the model's
     * range is the model's maximum) */
    int32_t cv = d->cfg.charge_v_raw, dv = d->cfg.discharge_v_raw;
    cv = cv > d->limits.vout.max_raw ? d->limits.vout.max_raw : cv;
    cv = cv < d->limits.vout.min_raw ? d->limits.vout.min_raw : cv;
    dv = dv < d->limits.rev_vout.min_raw ? d->limits.rev_vout.min_raw : dv;
    dv = dv > d->limits.rev_vout.max_raw ? d->limits.rev_vout.max_raw : dv;
    /* the discharge end voltage stays below the charge voltage on the way: a lower one goes
     * first, a higher one after the charge voltage */
    bool rev_first = d->cache[TREG_REV_VOUT_SET].valid && dv < d->cache[TREG_REV_VOUT_SET].raw;
    if (rev_first)
        gw_job_add_target(j, BIC_CMD_REVERSE_VOUT_SET, (uint16_t)dv, 0xFFFF, false, NULL);
    gw_job_add_target(j, BIC_CMD_VOUT_SET, (uint16_t)cv, 0xFFFF, false, NULL);
    if (!rev_first)
        gw_job_add_target(j, BIC_CMD_REVERSE_VOUT_SET, (uint16_t)dv, 0xFFFF, false, NULL);
    gw_job_start(gw, j, now);
}

void gw_limits_result(gateway_t *gw, job_t *j, const char *err_msg, int64_t now)
{
    gw_dev_t *d = gw->dev[j->addr];
    if (!d)
        return;
    char why[320] = "";
    if (err_msg) {
        snprintf(why, sizeof why, "%s", err_msg);
    } else {
        for (int i = 0; i < gw_ensure_count(j->ens) && !why[0]; i++) {
            const gwe_target_t *t = gw_ensure_target(j->ens, i);
            if (t->outcome == GWE_REFUSED || t->outcome == GWE_DEFERRED) {
                char pol[200];
                gw_policy_why(gw, d, t, true, now, pol, sizeof pol, NULL, 0);
                snprintf(why, sizeof why, "%s %g not written: %s", gw_reg_name(t->cmd),
                         gw_raw_value(d, t->cmd, t->value), pol);
            }
        }
    }
    if (why[0]) {
        d->limits_state = GW_LIMITS_FAILED;
        snprintf(d->limits_error, sizeof d->limits_error, "%s", why);
        d->limits_retry_at = now + LIMITS_RETRY_US;
        log_error("device %d: the configured [DEVICE] limits are not on the device: %s; "
                  "setpoints are refused until they are (retried every %lld s)",
                  d->addr, why, (long long)(LIMITS_RETRY_US / 1000000));
        cJSON *e = gw_event(d, "limits_not_applied");
        cJSON_AddStringToObject(e, "reason", why);
        gw_publish_event(gw, d, e);
        return;
    }
    bool was_failed = d->limits_state == GW_LIMITS_FAILED;
    d->limits_state = GW_LIMITS_OK;
    d->limits_error[0] = '\0';
    int writes = gw_ensure_writes(j->ens);
    if (writes)
        log_info("device %d: the configured [DEVICE] limits are on the device (%d written)",
                 d->addr, writes);
    cJSON *e = gw_event(d, "limits_applied");
    cJSON_AddNumberToObject(e, "writes", writes);
    cJSON_AddItemToObject(e, "outcomes", gw_outcomes_json(gw, j, d, now));
    if (was_failed || writes)
        gw_publish_event(gw, d, e);
    else
        cJSON_Delete(e);
}

/* A device whose configured values failed is tried again once its retry time came. */
void gw_limits_retry(gateway_t *gw, int64_t now)
{
    for (int a = 0; a < GW_DEV_MAX; a++) {
        gw_dev_t *d = gw->dev[a];
        if (d && d->limits_state == GW_LIMITS_FAILED && now >= d->limits_retry_at)
            gw_limits_apply(gw, d, now);
    }
}
