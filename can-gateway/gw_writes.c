/*
 * The gateway's write jobs: a request's (or the gateway's own) wanted register values through
 * the write engine (gw_ensure.h) on the bus: read, skip when equal, the EEPROM policy, write,
 * read back; the outcomes, the reply, the events and the log lines.
 */
#include "gw_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <czmq.h>

#include "log.h"
#include "monotime.h"
#include "numconv.h"

/* ---------------------------------------------------------------------------------------
   Ensure jobs: bring registers to wanted values (read, skip when equal, EEPROM policy, write,
   read back, verify), one target after the other.
   --------------------------------------------------------------------------------------- */

void gw_job_add_target(job_t *j, uint16_t cmd, uint16_t value, uint16_t mask, bool tolerate,
                       const char *label)
{
    gw_ensure_add(j->ens, cmd, value, mask, tolerate, label);
}

bool gw_job_ensure_busy(gateway_t *gw, const job_t *self)
{
    for (job_t *j = gw->jobs; j; j = j->next)
        if (j != self && j->kind == JOB_ENSURE && j->addr == self->addr && !j->waiting)
            return true;
    return false;
}

const char *gw_reg_name(uint16_t cmd)
{
    const bic_cmd_t *c = gw_cmd_any(cmd);
    return c ? c->name : "?";
}

double gw_raw_value(const gw_dev_t *d, uint16_t cmd, int32_t raw)
{
    const bic_cmd_t *c = gw_cmd_any(cmd);
    if (!c)
        return raw;
    double v = bic_raw_to_value(c, d ? &d->scaling : NULL, raw);
    double f = bic_scaling_factor(d ? &d->scaling : NULL, c->scale);
    if (c->scale != BIC_SCALE_NONE && f > 0 && f < 1)
        v = round(v / f) * f;
    return v;
}

static const char *s_unit(uint16_t cmd)
{
    const bic_cmd_t *c = gw_cmd_any(cmd);
    return c && c->unit ? c->unit : "";
}

static const char *s_outcome_name(gwe_outcome_t o)
{
    switch (o) {
    case GWE_UNCHANGED:
        return "unchanged";
    case GWE_WRITTEN:
        return "written";
    case GWE_DEFERRED:
        return "deferred";
    case GWE_REFUSED:
        return "refused";
    case GWE_FAILED:
        return "failed";
    default:
        return "open";
    }
}

/* Why the policy held a write back or refused it, and what the user can do. */
void gw_policy_why(gateway_t *gw, const gw_dev_t *d, const gwe_target_t *t, bool holder,
                   int64_t now, char *why, size_t whylen, char *remedy, size_t remlen)
{
    const eeprom_policy_t *eep = gw->eep[d->addr];
    double tokens = eeprom_policy_tokens(eep, now);
    int reserve = holder ? 0 : eeprom_policy_reserve(eep);
    if (eeprom_policy_writes_per_day(eep) > 0 && tokens < 1 + reserve) {
        if (tokens < 0)
            snprintf(why, whylen,
                     "daily EEPROM budget spent (0 of %d writes left, %.1f more taken by writes "
                     "toward safety, paid off first)",
                     eeprom_policy_burst(eep), -tokens);
        else if (reserve)
            snprintf(why, whylen,
                     "daily EEPROM budget spent (%.1f of %d writes left, %d kept for the "
                     "device's controller)",
                     tokens, eeprom_policy_burst(eep), reserve);
        else
            snprintf(why, whylen, "daily EEPROM budget spent (%.1f of %d writes left)", tokens,
                     eeprom_policy_burst(eep));
    } else {
        snprintf(why, whylen, "EEPROM write spacing (%lld s between persisted writes)",
                 (long long)(eeprom_policy_interval(eep) / 1000000));
    }
    if (remedy) {
        bool star = t->cmd != BIC_CMD_OPERATION && t->cmd != BIC_CMD_SYSTEM_CONFIG &&
                    t->cmd != BIC_CMD_BIDIRECTIONAL_CONFIG;
        double in_s = (double)(t->until - now) / 1e6;
        if (star && !eeprom_policy_eep_off(eep))
            snprintf(remedy, remlen,
                     "run `bicctl init_mode` to turn EEPROM writes off for the set-points where "
                     "the firmware can (then they cost no budget), or retry in %.0f s",
                     in_s);
        else
            snprintf(remedy, remlen, "retry in %.0f s, when the budget has refilled", in_s);
    }
}

/* The outcome of every target of a finished job: {"reg","value","outcome",...} */
cJSON *gw_outcomes_json(gateway_t *gw, const job_t *j, const gw_dev_t *d, int64_t now)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < gw_ensure_count(j->ens); i++) {
        const gwe_target_t *t = gw_ensure_target(j->ens, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "reg", gw_reg_name(t->cmd));
        if (t->read_ok) {
            int32_t raw = t->outcome == GWE_WRITTEN ? t->after : t->value;
            cJSON_AddNumberToObject(o, "value", gw_raw_value(d, t->cmd, raw));
            cJSON_AddNumberToObject(o, "raw", raw);
            cJSON_AddNumberToObject(o, "before", gw_raw_value(d, t->cmd, t->before));
        }
        cJSON_AddStringToObject(o, "outcome", s_outcome_name(t->outcome));
        if (t->outcome == GWE_DEFERRED || t->outcome == GWE_REFUSED) {
            char why[200], remedy[200];
            gw_policy_why(gw, d, t, j->holder, now, why, sizeof why, remedy, sizeof remedy);
            cJSON_AddNumberToObject(o, "until_s", round((t->until - now) / 1e5) / 10.0);
            cJSON_AddNumberToObject(o, "until_ms", (double)(gw_wall() + (t->until - now) / 1000));
            cJSON_AddStringToObject(o, "reason", why);
            if (t->outcome == GWE_REFUSED)
                cJSON_AddStringToObject(o, "remedy", remedy);
        }
        if (t->written && t->safety)
            cJSON_AddBoolToObject(o, "toward_safety", true);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* Logs what happened to each write of a job (nothing for the values that were unchanged). */
static void s_log_outcomes(gateway_t *gw, const job_t *j, const gw_dev_t *d, int64_t now)
{
    const char *who = j->purpose == ENS_LIMITS ? "[DEVICE] limits"
                      : j->client[0]           ? j->client
                      : j->env                 ? "anonymous"
                                               : "the gateway";
    for (int i = 0; i < gw_ensure_count(j->ens); i++) {
        const gwe_target_t *t = gw_ensure_target(j->ens, i);
        const char *name = gw_reg_name(t->cmd);
        double v = gw_raw_value(d, t->cmd, t->value);
        char why[200];
        switch (t->outcome) {
        case GWE_WRITTEN:
            log_info("device %d: %s %g%s%s written (by %s)", j->addr, name, v,
                     *s_unit(t->cmd) ? " " : "", s_unit(t->cmd), who);
            break;
        case GWE_DEFERRED:
            gw_policy_why(gw, d, t, j->holder, now, why, sizeof why, NULL, 0);
            log_info("device %d: %s %g%s%s deferred for %.0f s: %s (by %s)", j->addr, name, v,
                     *s_unit(t->cmd) ? " " : "", s_unit(t->cmd), (t->until - now) / 1e6, why, who);
            break;
        case GWE_REFUSED:
            gw_policy_why(gw, d, t, j->holder, now, why, sizeof why, NULL, 0);
            log_warn("device %d: %s %g%s%s refused: %s (by %s)", j->addr, name, v,
                     *s_unit(t->cmd) ? " " : "", s_unit(t->cmd), why, who);
            break;
        case GWE_UNCHANGED:
            if (j->purpose == ENS_SET)
                log_info("device %d: %s %g%s%s unchanged: the device already holds it (by %s)",
                         j->addr, name, v, *s_unit(t->cmd) ? " " : "", s_unit(t->cmd), who);
            break;
        default:
            break;
        }
    }
}

static void s_ensure_reply(gateway_t *gw, job_t *j, const char *err_code, const char *err_msg,
                           int64_t now)
{
    gw_dev_t *d = gw->dev[j->addr];
    if (d)
        s_log_outcomes(gw, j, d, now);
    if (j->purpose == ENS_LIMITS) {
        gw_limits_result(gw, j, err_code ? err_msg : NULL, now);
        return;
    }
    if (j->purpose == ENS_SAFE || j->purpose == ENS_PENDING) {
        if (err_code) {
            log_warn("device %d: %s not applied: %s", j->addr,
                     j->purpose == ENS_SAFE ? "safe state" : "deferred EEPROM write", err_msg);
            if (j->purpose == ENS_SAFE && d) {
                d->safe_pending = true;
                snprintf(d->safe_reason, sizeof d->safe_reason, "%s", j->reason);
            }
        } else if (j->purpose == ENS_SAFE && d) {
            static const char *names[] = {"off", "min", "hold"};
            const char *name =
                d->held_off && gw->set.safe_state == SAFE_MIN ? "off" : names[gw->set.safe_state];
            cJSON *e = gw_event(d, "safe_state");
            cJSON_AddStringToObject(e, "state", name);
            cJSON_AddStringToObject(e, "reason", j->reason);
            gw_publish_event(gw, d, e);
            log_info("device %d: safe state '%s' applied (%s)", j->addr, name, j->reason);
        }
        return;
    }
    if (err_code) {
        gw_send_reply(gw, &j->env, gw_reply_error(j->req_id, err_code, "%s", err_msg));
        return;
    }
    const gwe_target_t *t0 = gw_ensure_target(j->ens, 0);
    for (int i = 0; j->purpose == ENS_SETPOINT && i < gw_ensure_count(j->ens); i++)
        if (gw_ensure_target(j->ens, i)->outcome == GWE_REFUSED) {
            t0 = gw_ensure_target(j->ens, i); /* a person's setpoint: the first refusal */
            break;
        }
    if ((j->purpose == ENS_SET || j->purpose == ENS_SETPOINT) && t0 && t0->outcome == GWE_REFUSED) {
        char why[200], remedy[200];
        gw_policy_why(gw, d, t0, j->holder, now, why, sizeof why, remedy, sizeof remedy);
        cJSON *r =
            gw_reply_error(j->req_id, "eeprom_budget", "device %d: %s %g%s%s refused: %s; %s",
                           j->addr, gw_reg_name(t0->cmd), gw_raw_value(d, t0->cmd, t0->value),
                           *s_unit(t0->cmd) ? " " : "", s_unit(t0->cmd), why, remedy);
        cJSON *e = gw_reply_error_obj(r);
        cJSON_AddStringToObject(e, "reason", why);
        cJSON_AddStringToObject(e, "remedy", remedy);
        cJSON_AddNumberToObject(e, "dev", j->addr);
        cJSON_AddNumberToObject(e, "until_s", round((t0->until - now) / 1e5) / 10.0);
        if (j->purpose == ENS_SETPOINT)
            cJSON_AddItemToObject(e, "outcomes", gw_outcomes_json(gw, j, d, now));
        gw_send_reply(gw, &j->env, r);
        return;
    }
    cJSON *reply = gw_reply_ok(j->req_id);
    cJSON_AddNumberToObject(reply, "dev", j->addr);
    if (j->purpose == ENS_SET) {
        const gwe_target_t *t = t0;
        int32_t raw = t->outcome == GWE_WRITTEN ? t->after : t->value;
        cJSON_AddStringToObject(reply, "reg", gw_reg_name(t->cmd));
        cJSON_AddNumberToObject(reply, "value", gw_raw_value(d, t->cmd, raw));
        cJSON_AddNumberToObject(reply, "raw", raw);
        cJSON_AddBoolToObject(reply, "written", t->written);
        cJSON_AddBoolToObject(reply, "deferred", t->outcome == GWE_DEFERRED);
        cJSON_AddStringToObject(reply, "outcome", s_outcome_name(t->outcome));
        if (t->outcome == GWE_DEFERRED) {
            char why[200];
            gw_policy_why(gw, d, t, j->holder, now, why, sizeof why, NULL, 0);
            cJSON_AddNumberToObject(reply, "until_s", round((t->until - now) / 1e5) / 10.0);
            cJSON_AddStringToObject(reply, "reason", why);
        }
    } else if (j->purpose == ENS_SETPOINT) {
        bool deferred = gw_ensure_any(j->ens, GWE_DEFERRED);
        cJSON_AddStringToObject(reply, "mode", j->mode);
        if (j->preset_asked) {
            cJSON_AddBoolToObject(reply, "preset", j->preset_applied);
            if (!j->preset_applied)
                cJSON_AddStringToObject(reply, "preset_skipped", j->preset_skipped);
        }
        if (j->token[0]) /* the lease this setpoint took or renewed: for its client only */
            cJSON_AddStringToObject(reply, "token", j->token);
        if (j->have_current)
            cJSON_AddNumberToObject(reply, "current_a", j->current_a);
        cJSON_AddNumberToObject(reply, "writes", gw_ensure_writes(j->ens));
        cJSON_AddBoolToObject(reply, "deferred", deferred);
        cJSON *ap = cJSON_AddObjectToObject(reply, "applied");
        int32_t op = -1, dir = -1, io = -1, rio = -1;
        if (d) {
            if (d->cache[TREG_OPERATION].valid)
                op = d->cache[TREG_OPERATION].raw;
            if (d->cache[TREG_DIRECTION].valid)
                dir = d->cache[TREG_DIRECTION].raw;
            if (d->cache[TREG_IOUT_SET].valid)
                io = d->cache[TREG_IOUT_SET].raw;
            if (d->cache[TREG_REV_IOUT_SET].valid)
                rio = d->cache[TREG_REV_IOUT_SET].raw;
        }
        for (int i = 0; i < gw_ensure_count(j->ens); i++) {
            const gwe_target_t *t = gw_ensure_target(j->ens, i);
            if (!t->read_ok)
                continue;
            int32_t v = t->written ? t->after : t->before;
            if (t->cmd == BIC_CMD_OPERATION)
                op = v;
            else if (t->cmd == BIC_CMD_DIRECTION_CTRL)
                dir = v;
            else if (t->cmd == BIC_CMD_IOUT_SET)
                io = v;
            else if (t->cmd == BIC_CMD_REVERSE_IOUT_SET)
                rio = v;
        }
        if (op >= 0)
            cJSON_AddNumberToObject(ap, "operation", op);
        if (dir >= 0)
            cJSON_AddStringToObject(ap, "direction", dir ? "discharge" : "charge");
        if (io >= 0)
            cJSON_AddNumberToObject(ap, "iout_a", io / 100.0);
        if (rio >= 0)
            cJSON_AddNumberToObject(ap, "rev_iout_a", rio / 100.0);
        if (deferred) {
            cJSON *p = cJSON_AddObjectToObject(reply, "pending");
            for (int i = 0; i < gw_ensure_count(j->ens); i++) {
                const gwe_target_t *t = gw_ensure_target(j->ens, i);
                if (t->outcome == GWE_DEFERRED)
                    cJSON_AddNumberToObject(p, gw_reg_name(t->cmd),
                                            gw_raw_value(d, t->cmd, t->value));
            }
        }
        cJSON_AddItemToObject(reply, "outcomes", gw_outcomes_json(gw, j, d, now));
    } else if (j->purpose == ENS_INIT) {
        cJSON *steps = cJSON_AddArrayToObject(reply, "steps");
        bool eep_off = false, cycle = false;
        for (int i = 0; i < gw_ensure_count(j->ens); i++) {
            const gwe_target_t *t = gw_ensure_target(j->ens, i);
            char line[96];
            bool is_eep = t->label && strcmp(t->label, "eep_off") == 0;
            const char *label = t->label ? t->label : "step";
            if (is_eep && t->mismatch)
                snprintf(line, sizeof line, "%s: not supported", label);
            else if (t->outcome == GWE_REFUSED)
                snprintf(line, sizeof line, "%s: refused (daily EEPROM budget spent)", label);
            else
                snprintf(line, sizeof line, "%s: %s", label, t->written ? "set" : "already set");
            if (is_eep && !t->mismatch && t->outcome != GWE_REFUSED)
                eep_off = true;
            if (t->cmd == BIC_CMD_BIDIRECTIONAL_CONFIG && t->written)
                cycle = true;
            if (t->cmd == BIC_CMD_BIDIRECTIONAL_CONFIG && !t->written && d && d->mode_pending)
                cycle = true;
            cJSON_AddItemToArray(steps, cJSON_CreateString(line));
        }
        cJSON_AddBoolToObject(reply, "eep_off", eep_off);
        cJSON_AddBoolToObject(reply, "power_cycle_needed", cycle);
    }
    gw_send_reply(gw, &j->env, reply);
}

/* Ends a job that failed: the reply or the log names the register, the step and why. */
static void s_ensure_fail(gateway_t *gw, job_t *j, int64_t now)
{
    char msg[200];
    const gwe_target_t *t = gw_ensure_target(j->ens, gw_ensure_current(j->ens));
    gw_dev_t *d = gw->dev[j->addr];
    const char *code;
    switch (gw_ensure_error(j->ens)) {
    case GWE_ERR_VERIFY:
        code = "verify_failed";
        snprintf(msg, sizeof msg, "device %d: %s written %d (%g) but read back %d (%g)", j->addr,
                 gw_reg_name(t->cmd), t->value, gw_raw_value(d, t->cmd, t->value), t->after,
                 gw_raw_value(d, t->cmd, t->after));
        if (d) {
            cJSON *e = gw_event(d, "write_rejected");
            cJSON_AddStringToObject(e, "reg", gw_reg_name(t->cmd));
            cJSON_AddNumberToObject(e, "value", gw_raw_value(d, t->cmd, t->value));
            cJSON_AddStringToObject(e, "reason", "read-back differs");
            gw_publish_event(gw, d, e);
        }
        break;
    case GWE_ERR_BUS_DOWN:
    case GWE_ERR_TIMEOUT:
    default: {
        bool down = gw_ensure_error(j->ens) == GWE_ERR_BUS_DOWN || !bus_sched_is_up(gw->sched);
        code = down ? "bus_down" : "timeout";
        snprintf(msg, sizeof msg, "device %d: %s of %s failed: %s", j->addr,
                 !t->read_ok   ? "read"
                 : !t->written ? "write"
                               : "read-back",
                 gw_reg_name(t->cmd), down ? "CAN bus is down" : "no reply after the retries");
        if (d && !down)
            gw_dev_failed(gw, d);
        break;
    }
    }
    s_ensure_reply(gw, j, code, msg, now);
    gw_job_free(gw, j);
}

static void s_publish_deferred(gateway_t *gw, gw_dev_t *d, const job_t *j, const gwe_target_t *t,
                               int64_t now);

bool gw_known(gateway_t *gw, const gw_dev_t *d, uint16_t cmd, int64_t now, int32_t *raw)
{
    return gw_dev_known(d, cmd, now, (int64_t)gw->set.tel_period_ms * 1500,
                        bus_sched_foreign_at(gw->sched), raw);
}

/* A setpoint's registers whose values the gateway knows (gw_dev_known: read within the last
 * telemetry cycle, a period and a half, with no power cycle, outage or other CAN master since)
 * go to their write without the read before it; the read-back after the write stays. */
static void s_use_known(gateway_t *gw, job_t *j, int64_t now)
{
    gw_dev_t *d = gw->dev[j->addr];
    if (!d || j->purpose != ENS_SETPOINT)
        return;
    int64_t foreign_at = bus_sched_foreign_at(gw->sched);
    if (foreign_at != INT64_MIN && foreign_at != gw->foreign_noted) {
        if (!gw->foreign_noted || foreign_at - gw->foreign_noted >= GW_KNOWN_FOREIGN_HOLD_US)
            log_info("another CAN master is on the bus: every write reads its register first");
        gw->foreign_noted = foreign_at;
    }
    int cmd;
    int32_t raw;
    while ((cmd = gw_ensure_read_due(j->ens)) >= 0 && gw_known(gw, d, (uint16_t)cmd, now, &raw)) {
        int i = gw_ensure_current(j->ens);
        if (!gw_ensure_known(j->ens, gw_eep(gw, j->addr), raw, now))
            return;
        const gwe_target_t *t = gw_ensure_target(j->ens, i);
        if (t->outcome == GWE_DEFERRED || t->outcome == GWE_REFUSED)
            s_publish_deferred(gw, d, j, t, now);
    }
}

/* Submits the job's next bus request, or finishes the job. */
void gw_job_ensure_pump(gateway_t *gw, job_t *j, int64_t now)
{
    bus_req_t req;
    s_use_known(gw, j, now);
    if (gw_ensure_done(j->ens)) {
        if (gw_ensure_error(j->ens) != GWE_OK) {
            s_ensure_fail(gw, j, now);
            return;
        }
        s_ensure_reply(gw, j, NULL, NULL, now);
        gw_job_free(gw, j);
        return;
    }
    if (!gw_ensure_next(j->ens, now, &req))
        return;
    bool write = req.len > 0;
    int rc = gw_submit(gw, j->prio, j->addr, req.cmd, write,
                       (uint16_t)(req.data[0] | req.data[1] << 8), 0, gw_tag(j->id, 0));
    if (rc == BUS_SCHED_EFULL) {
        gw_ensure_submit_failed(j->ens, false);
        s_ensure_reply(gw, j, "busy", "request queue for the bus is full; retry later", now);
        gw_job_free(gw, j);
        return;
    }
    if (rc != 0) {
        gw_ensure_submit_failed(j->ens, rc == BUS_SCHED_EDOWN);
        s_ensure_fail(gw, j, now);
    }
}

static void s_publish_deferred(gateway_t *gw, gw_dev_t *d, const job_t *j, const gwe_target_t *t,
                               int64_t now)
{
    char why[200];
    gw_policy_why(gw, d, t, j->holder, now, why, sizeof why, NULL, 0);
    cJSON *e = gw_event(d, t->outcome == GWE_DEFERRED ? "write_deferred" : "write_refused");
    cJSON_AddStringToObject(e, "reg", gw_reg_name(t->cmd));
    cJSON_AddNumberToObject(e, "value", gw_raw_value(d, t->cmd, t->value));
    cJSON_AddNumberToObject(e, "raw", t->value);
    cJSON_AddNumberToObject(e, "until_s", round((t->until - now) / 1e5) / 10.0);
    cJSON_AddStringToObject(e, "reason", why);
    if (j->client[0])
        cJSON_AddStringToObject(e, "client", j->client);
    gw_publish_event(gw, d, e);
}

/* Remembers a verified setpoint that lives in RAM only (not persisted under the EEPROM state
 * now in force), so its loss at a power-up can be noticed; a persisted one forgets it. */
static void s_ram_note(gateway_t *gw, gw_dev_t *d, uint16_t cmd, int32_t raw)
{
    int slot = gw_treg_slot(cmd);
    if (slot < 0)
        return;
    d->ram_set[slot] = raw;
    d->ram_set_valid[slot] = !eeprom_policy_persists(gw_eep(gw, d->addr), cmd);
}

void gw_job_ensure_on_result(gateway_t *gw, job_t *j, const bus_result_t *r, int64_t now)
{
    gw_dev_t *d = gw->dev[j->addr];
    eeprom_policy_t *eep = gw_eep(gw, j->addr);
    int cur = gw_ensure_current(j->ens);
    const gwe_target_t *t = gw_ensure_target(j->ens, cur);
    const bic_cmd_t *c = gw_dev_cmd(j->addr, r->req.cmd);
    int32_t raw = 0;
    bool raw_ok = r->status == BUS_OK && c && bic_data_to_raw(c, r->data, r->len, &raw) == BIC_OK;
    if (raw_ok && d) {
        d->fails = 0;
        gw_cache_raw(d, r->req.cmd, raw, now);
    }
    bool was_written = t && t->written;
    gwe_event_t ev = gw_ensure_on_result(j->ens, eep, r, raw_ok, raw, now);
    if (ev == GWE_EV_WRITTEN) {
        /* noted at once: a power cycle may cut off the read-back of a write the device took */
        if (d) {
            s_ram_note(gw, d, t->cmd, t->value);
            int slot = gw_treg_slot(t->cmd);
            if (slot >= 0)
                d->cache[slot].written = true; /* not known again before it is read */
        }
        if (t->counted)
            gw_save_state(gw, now);
    } else if (ev == GWE_EV_UNCOUNTED) {
        gw_save_state(gw, now);
    }
    if (t && d && (t->outcome == GWE_DEFERRED || t->outcome == GWE_REFUSED))
        s_publish_deferred(gw, d, j, t, now);
    if (t && d && was_written && t->outcome == GWE_WRITTEN) {
        /* what the device holds now, taken or not */
        s_ram_note(gw, d, t->cmd, t->after);
        if (t->cmd == BIC_CMD_SYSTEM_CONFIG) {
            bic_sysconfig_t sc;
            d->sysconfig = (uint16_t)t->after;
            bic_sysconfig_decode(d->sysconfig, &sc);
            d->can_ctrl = sc.can_ctrl;
            eeprom_policy_set_eep_off(eep, sc.eep_off);
        }
        if (t->cmd == BIC_CMD_BIDIRECTIONAL_CONFIG) {
            bic_mode_t m = (t->after & 1) ? BIC_MODE_BATTERY : BIC_MODE_AUTO;
            d->mode_pending = m != d->mode;
            d->pending_mode = m;
            if (d->mode_pending) {
                cJSON *e = gw_event(d, "power_cycle_needed");
                cJSON_AddStringToObject(e, "mode", bic_mode_name(m));
                gw_publish_event(gw, d, e);
            }
        }
    }
    gw_job_ensure_pump(gw, j, now);
}
