/*
 * ctl_d_gateway: the daemon's side of the gateway: the link's requests as JSON, the replies
 * (the EEPROM policy from info), the telemetry and the events. Part of the bic-charge-ctl
 * daemon (ctl_d.h).
 */
#include "ctl_d.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "numconv.h"

static cJSON *s_req(const ctl_link_t *l, const char *op)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    cJSON_AddNumberToObject(r, "v", 1);
    cJSON_AddStringToObject(r, "op", op);
    cJSON_AddStringToObject(r, "client", l->client);
    return r;
}

/* The JSON of a request the link l (of device l->dev) wants sent. */
static cJSON *s_build(const ctl_daemon_t *d, int i, const ctl_link_t *l, const ctl_link_send_t *q)
{
    bool resume = ctld_is_group(d) ? d->units[i].resume : d->resume_sp;
    cJSON *r = NULL;
    switch (q->kind) {
    case CTL_LINK_REQ_NONE:
        break;
    case CTL_LINK_REQ_INFO:
        r = s_req(l, "info");
        if (r)
            cJSON_AddNumberToObject(r, "dev", l->dev);
        break;
    case CTL_LINK_REQ_TAKE:
    case CTL_LINK_REQ_RENEW:
    case CTL_LINK_REQ_RELEASE:
        r = s_req(l, "lease");
        if (!r)
            break;
        cJSON_AddStringToObject(r, "action",
                                q->kind == CTL_LINK_REQ_TAKE    ? "take"
                                : q->kind == CTL_LINK_REQ_RENEW ? "renew"
                                                                : "release");
        /* The lease of this controller's own device only: another instance may drive
         * another device on the same gateway. */
        cJSON_AddNumberToObject(r, "dev", l->dev);
        /* the lease is ours by its token, not by our (public) name */
        if (l->token[0])
            cJSON_AddStringToObject(r, "token", l->token);
        if (q->kind != CTL_LINK_REQ_RELEASE)
            cJSON_AddNumberToObject(r, "ttl_s", d->set.lease_ttl_s);
        break;
    case CTL_LINK_REQ_SETPOINT: {
        r = s_req(l, "setpoint");
        if (r && l->token[0])
            cJSON_AddStringToObject(r, "token", l->token);
        /* Switched off by control/set 0 with DisableState=min, as the seed: an output that is
         * on stays on at the minimum charge current (its idle), one that is off stays off. */
        bool seed_idle = q->mode == CTL_MODE_IDLE && !d->enabled && !d->paused && !l->stopping &&
                         d->set.disable_min && d->operation == 1 && d->tel_valid && l == &d->link;
        /* Paused by state/set 0: the idle set-points and the output off, as the bridge asked
         * the gateway for the same message (unchanged registers cost nothing); the last word
         * on the device from this controller before it gives the lease back. */
        bool stop = q->mode == CTL_MODE_IDLE && (d->paused || ctld_unit_held(d, i)) && !l->stopping;
        if (!r)
            break;
        cJSON_AddNumberToObject(r, "dev", l->dev);
        cJSON_AddStringToObject(r, "mode",
                                stop        ? "stop"
                                : seed_idle ? "charge"
                                            : ctl_mode_name(q->mode));
        if (seed_idle)
            cJSON_AddNumberToObject(r, "current_a", d->set.params.min_current_ca / 100.0);
        else if (q->mode == CTL_MODE_CHARGE || q->mode == CTL_MODE_DISCHARGE)
            cJSON_AddNumberToObject(r, "current_a", q->ca / 100.0);
        else if (q->mode == CTL_MODE_IDLE && q->ca != 0 && !stop && !seed_idle) {
            /* a unit on standby in a group: output off, one direction's current preset */
            cJSON_AddStringToObject(r, "preset", q->ca > 0 ? "charge" : "discharge");
            cJSON_AddNumberToObject(r, "current_a", abs(q->ca) / 100.0);
        }
        cJSON_AddNumberToObject(r, "lease_ttl_s", d->set.lease_ttl_s);
        if (resume && !stop)
            cJSON_AddBoolToObject(r, "resume", true);
        break;
    }
    }
    return r;
}

ctl_link_view_t ctld_link_view(const ctl_daemon_t *d, int i, int64_t now)
{
    return (ctl_link_view_t){.tel_alive = ctld_unit_tel_alive(d, i, now),
                             .enabled = ctld_active(d) && !ctld_unit_held(d, i),
                             .out_mode = d->out.mode};
}

/* What to ask the gateway next, one request at a time per link (in a group each device's
 * link on its own socket). */
void ctld_pump(ctl_daemon_t *d, int64_t now)
{
    for (int i = 0; i < d->n_units; i++) {
        ctl_link_t *l = ctld_unit_link(d, i);
        ctl_link_view_t v = ctld_link_view(d, i, now);
        ctl_link_send_t q = ctl_link_next(l, &v, now);
        if (q.kind == CTL_LINK_REQ_NONE)
            continue;
        cJSON *req = s_build(d, i, l, &q);
        if (!req || gw_client_send(ctld_unit_gw(d, i), req) != 0)
            ctl_link_send_failed(l, now);
        cJSON_Delete(req);
    }
}

/* Acts on what the link reports: the step starts again from idle, or runs now. */
void ctld_link_flags(ctl_daemon_t *d, unsigned flags, int64_t now)
{
    if (ctld_is_group(d)) {
        ctld_unit_flags(d, d->own, flags, now);
        return;
    }
    if (flags & CTL_LINK_RESET)
        ctl_state_init(&d->st, now);
    if (flags & CTL_LINK_STEP)
        ctld_step(d, now);
}

/* An NPB's lowest charge current is its model's (the gateway's range of CURVE_CC). */
static void s_npb_min_current(ctl_daemon_t *d, const cJSON *dv)
{
    const cJSON *cc = cJSON_GetObjectItem(cJSON_GetObjectItem(dv, "ranges"), "curve_cc_a");
    const cJSON *lo = cJSON_GetArrayItem(cc, 0);
    int64_t ca;
    if (!cJSON_IsNumber(lo) || numconv_round(lo->valuedouble * 100, 1, 100000, &ca) != 0)
        return;
    if (ca != d->set.params.min_current_ca)
        log_info("device %d: the NPB's lowest charge current is %.2f A", d->set.id, ca / 100.0);
    ctl_params_set_min_current(&d->set.params, (int)ca);
}

static void s_on_info(ctl_daemon_t *d, int i, ctl_link_t *l, const cJSON *reply, int64_t now)
{
    const cJSON *devs = cJSON_GetObjectItem(reply, "devices");
    const cJSON *dv;
    cJSON_ArrayForEach(dv, devs)
    {
        const cJSON *id = cJSON_GetObjectItem(dv, "dev");
        int64_t dev;
        if (!cJSON_IsNumber(id) || numconv_whole(id->valuedouble, 0, CTL_NPB_LAST, &dev) != 0 ||
            dev != l->dev)
            continue;
        ctl_link_info_ok(l, now);
        ctld_unit_info(d, i, dv, now); /* a person's stop of one device of a group */
        if (l != &d->link)             /* another device of the group: X's policy paces them */
            return;
        if (d->set.params.charge_only)
            s_npb_min_current(d, dv);
        const cJSON *eep = cJSON_GetObjectItem(dv, "eeprom");
        const cJSON *pol = cJSON_GetObjectItem(eep, "policy");
        const cJSON *iv = cJSON_GetObjectItem(eep, "min_interval_s");
        /* Without EEP_OFF every current change is a persisted write: space them as the
         * gateway's budget does, so the gateway never has to defer one. A charge-only device's
         * (an NPB's) current is CURVE_CC, persisted whatever EEP_OFF says (docs/npb.md): its
         * changes are spaced under either policy. */
        bool persisted = cJSON_IsString(pol) &&
                         (strcmp(pol->valuestring, "budget") == 0 || d->set.params.charge_only);
        int64_t iv_ms = 0;
        if (!persisted || !cJSON_IsNumber(iv) || !(iv->valuedouble > 0) ||
            numconv_trunc(iv->valuedouble * 1000, 0, 86400000 - 1, &iv_ms) != 0)
            iv_ms = 0;
        int ms = (int)iv_ms;
        /* the daily budget the gateway spends and what is left of it now */
        const cJSON *wpd = cJSON_GetObjectItem(eep, "writes_per_day");
        const cJSON *burst = cJSON_GetObjectItem(eep, "burst");
        const cJSON *tokens = cJSON_GetObjectItem(eep, "tokens");
        int64_t w = 0, b = 0;
        if (!ms || !cJSON_IsNumber(wpd) || !cJSON_IsNumber(burst) ||
            numconv_trunc(wpd->valuedouble, 1, 1000000, &w) != 0 ||
            numconv_trunc(burst->valuedouble, 1, 1000000, &b) != 0)
            w = b = 0;
        d->set.params.write_budget_per_day = (int)w;
        d->set.params.write_burst = (int)b;
        if (w && cJSON_IsNumber(tokens) && isfinite(tokens->valuedouble)) {
            /* below 0 a debt (writes toward safety past an empty bucket): empty here */
            d->eep_tokens = tokens->valuedouble > 0 ? tokens->valuedouble : 0;
            d->eep_tokens_ms = now;
        }
        const char *pace = !ms ? ""
                           : d->set.params.charge_only
                               ? ": current changes at most one per write interval (CURVE_CC "
                                 "persists whatever EEP_OFF says)"
                               : ": current changes at most one per write interval";
        if (!d->info_done || ms != d->set.params.min_write_interval_ms)
            log_info("device %d: EEPROM policy %s%s", d->set.id,
                     cJSON_IsString(pol) ? pol->valuestring : "unknown", pace);
        d->set.params.min_write_interval_ms = ms;
        d->info_done = true;
        return;
    }
    log_warn("the gateway does not know device %d (yet); asking again in %d s", l->dev,
             CTL_LINK_INFO_RETRY_MS / 1000);
}

void ctld_on_reply(ctl_daemon_t *d, int i, const cJSON *reply, int64_t now)
{
    ctl_link_reply_t r = {
        .ok = cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")), .code = "", .msg = ""};
    if (!r.ok) {
        const cJSON *e = cJSON_GetObjectItem(reply, "error");
        const cJSON *c = cJSON_GetObjectItem(e, "code");
        const cJSON *m = cJSON_GetObjectItem(e, "message");
        const cJSON *h = cJSON_GetObjectItem(e, "holder");
        r.code = cJSON_IsString(c) ? c->valuestring : "internal";
        r.msg = cJSON_IsString(m) ? m->valuestring : "gateway error without message";
        r.holder = cJSON_IsString(h) ? h->valuestring : NULL;
    } else {
        const cJSON *tk = cJSON_GetObjectItem(reply, "token");
        r.token = cJSON_IsString(tk) ? tk->valuestring : NULL;
    }
    ctl_link_t *l = ctld_unit_link(d, i);
    if (l->inflight == CTL_LINK_REQ_NONE)
        return;
    bool setpoint = l->inflight == CTL_LINK_REQ_SETPOINT;
    ctl_mode_t mode = l->inflight_mode;
    unsigned flags = ctl_link_reply(l, &r, now);
    if (flags & CTL_LINK_INFO)
        s_on_info(d, i, l, reply, now);
    ctld_unit_flags(d, i, flags, now);
    if (setpoint && r.ok && (mode == CTL_MODE_CHARGE || mode == CTL_MODE_DISCHARGE)) {
        d->resume_sp = false; /* the output is this controller's to switch again */
        d->units[i].resume = false;
    }
    if (setpoint && !r.ok && strcmp(r.code, "held_off") == 0 && ctld_is_group(d)) {
        /* one device of a group stopped by a person: the others go on */
        ctld_unit_hold(d, i, "the gateway refused its setpoint: held_off", now);
    } else if (setpoint && !r.ok && strcmp(r.code, "held_off") == 0 && !d->paused) {
        /* a person's stop this controller did not hear of (state/set 0 while it was away
         * from the broker, or before it started) */
        log_warn("setpoint refused: %s: the controller pauses until state/set 1 or control/set",
                 r.msg);
        ctld_pause(d, now);
    }
}

static int s_ca(const cJSON *o, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    int64_t ca;
    if (!cJSON_IsNumber(v) || numconv_round(v->valuedouble * 100.0, -1000000, 1000000, &ca) != 0)
        return def;
    return (int)ca;
}

void ctld_tel_reading(const cJSON *msg, ctl_input_t *t)
{
    const cJSON *v = cJSON_GetObjectItem(msg, "dc_v");
    const cJSON *a = cJSON_GetObjectItem(msg, "dc_a");
    const cJSON *op = cJSON_GetObjectItem(msg, "operation");
    const cJSON *dir = cJSON_GetObjectItem(msg, "direction");
    const cJSON *sp = cJSON_GetObjectItem(msg, "setpoints");
    t->online = cJSON_IsTrue(cJSON_GetObjectItem(msg, "online"));
    t->telemetry_valid = t->online && cJSON_IsNumber(v) && cJSON_IsNumber(a) &&
                         isfinite(v->valuedouble) && isfinite(a->valuedouble);
    if (t->telemetry_valid) {
        t->dc_v = v->valuedouble;
        t->dc_a = a->valuedouble;
    }
    int64_t opv;
    t->operation =
        cJSON_IsNumber(op) && numconv_whole(op->valuedouble, 0, 1, &opv) == 0 ? (int)opv : -1;
    t->direction = cJSON_IsString(dir) && strcmp(dir->valuestring, "discharge") == 0 ? 1 : 0;
    t->iout_ca = s_ca(sp, "iout_a", -1);
    t->rev_iout_ca = s_ca(sp, "rev_iout_a", -1);
    t->vout_set_cv = s_ca(sp, "vout_v", -1);
    t->rev_vout_set_cv = s_ca(sp, "rev_vout_v", -1);
    const cJSON *temp = cJSON_GetObjectItem(msg, "temp_c");
    t->temp_valid = cJSON_IsNumber(temp) && isfinite(temp->valuedouble);
    t->temp_c = t->temp_valid ? temp->valuedouble : 0;
    const cJSON *fraw = cJSON_GetObjectItem(cJSON_GetObjectItem(msg, "fault"), "raw");
    int64_t fault_raw;
    t->fault_raw =
        cJSON_IsNumber(fraw) && numconv_whole(fraw->valuedouble, 0, 65535, &fault_raw) == 0
            ? (int)fault_raw
            : 0;
}

static void s_on_tel(ctl_daemon_t *d, const cJSON *msg, int64_t now)
{
    const cJSON *age = cJSON_GetObjectItem(cJSON_GetObjectItem(msg, "age_ms"), "fast");
    d->tel_seen = true;
    d->tel_ms = now;
    ctld_tel_period_seen(d, d->own, msg, now);
    ctl_input_t t = {.dc_v = d->dc_v, .dc_a = d->dc_a};
    ctld_tel_reading(msg, &t);
    d->tel_online = t.online;
    d->tel_valid = t.telemetry_valid;
    d->dc_v = t.dc_v;
    d->dc_a = t.dc_a;
    d->operation = t.operation;
    d->direction = t.direction;
    d->iout_ca = t.iout_ca;
    d->rev_iout_ca = t.rev_iout_ca;
    d->vout_cv = t.vout_set_cv;
    d->rev_vout_cv = t.rev_vout_set_cv;
    d->temp_valid = t.temp_valid;
    d->temp_c = t.temp_c;
    d->fault_raw = t.fault_raw;
    const cJSON *fault = cJSON_GetObjectItem(msg, "fault");
    if (cJSON_IsObject(fault)) {
        d->fault_any = false;
        const cJSON *f;
        cJSON_ArrayForEach(f, fault)
        {
            /* op_off says the output is off: a state, not a fault. */
            if (cJSON_IsTrue(f) && f->string && strcmp(f->string, "op_off") != 0)
                d->fault_any = true;
        }
    }
    int64_t age_ms;
    d->sp_age_ms =
        cJSON_IsNumber(age) && numconv_trunc(age->valuedouble, INT32_MIN, INT32_MAX, &age_ms) == 0
            ? age_ms
            : 0;

    /* A gateway that restarted, or a lease that lapsed while its event was missed: the
     * telemetry names another holder (allowing for telemetry sent before our take). */
    const cJSON *lease = cJSON_GetObjectItem(msg, "lease"); /* null: free */
    const cJSON *holder = cJSON_GetObjectItem(lease, "holder");
    const char *who = cJSON_IsString(holder) ? holder->valuestring : NULL;
    ctld_link_flags(d, ctl_link_telemetry(&d->link, lease != NULL, who, now), now);
    ctld_check_resume(d, now);
    ctld_step(d, now);
}

/* The device came back from a power-up that replaced setpoints held in RAM (EEP_OFF
 * currents, DIRECTION_CTRL): it runs on its stored values, not on what this controller
 * commanded. The lease holder decides what it does now: the last command is sent again at
 * once (an unchanged command is otherwise never resent) and the step waits for the device
 * to follow it before acting on the meter again. */
static void s_on_power_cycled(ctl_daemon_t *d, const cJSON *msg, int64_t now)
{
    const cJSON *holder = cJSON_GetObjectItem(msg, "holder");
    char lost[160] = "";
    size_t used = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(msg, "lost"))
    {
        if (!r->string || used >= sizeof lost - 1)
            continue;
        int k = snprintf(lost + used, sizeof lost - used, "%s%s", used ? ", " : "", r->string);
        used = k < 0 ? sizeof lost - 1 : used + (size_t)k;
    }
    bool group = ctld_is_group(d);
    bool ours = ctl_link_power_cycled(
        &d->link, cJSON_IsString(holder) ? holder->valuestring : NULL,
        group ? d->grun.mode[d->own] : d->st.mode,
        group ? ctl_group_run_link_ca(&d->grun, d->own) : d->st.current_ca, now);
    if (!ours) {
        log_info("device %d came back from a power cycle (lost %s); not the lease holder",
                 d->set.id, lost[0] ? lost : "setpoints");
        return;
    }
    log_warn("device %d came back from a power cycle that replaced %s: setpoint re-applied",
             d->set.id, lost[0] ? lost : "setpoints held in RAM");
    if (d->st.mode != CTL_MODE_NONE && !group) {
        d->st.pending = true;
        d->st.since_ms = now;
    }
    ctld_step(d, now);
    ctld_pump(d, now);
}

void ctld_on_pub(ctl_daemon_t *d, const char *topic, const cJSON *msg, int64_t now)
{
    char mine[16];
    snprintf(mine, sizeof mine, "tel/%d", d->set.id);
    if (strcmp(topic, mine) == 0) {
        s_on_tel(d, msg, now);
        return;
    }
    if (ctld_group_on_pub(d, 0, topic, msg, now))
        return;
    snprintf(mine, sizeof mine, "evt/%d", d->set.id);
    if (strcmp(topic, mine) != 0)
        return;
    const cJSON *ev = cJSON_GetObjectItem(msg, "event");
    if (!cJSON_IsString(ev))
        return;
    if (strcmp(ev->valuestring, "power_cycled") == 0) {
        s_on_power_cycled(d, msg, now);
    } else if (strcmp(ev->valuestring, "lease_lapsed") == 0) {
        const cJSON *h = cJSON_GetObjectItem(msg, "holder");
        const char *who = cJSON_IsString(h) ? h->valuestring : NULL;
        ctld_link_flags(d, ctl_link_lease_lapsed(&d->link, who, now), now);
    } else if (strcmp(ev->valuestring, "safe_state") == 0 ||
               strcmp(ev->valuestring, "offline") == 0 || strcmp(ev->valuestring, "online") == 0) {
        log_info("gateway event on device %d: %s", d->set.id, ev->valuestring);
        if (strcmp(ev->valuestring, "online") == 0)
            ctl_link_device_online(&d->link, now); /* identity, firmware, EEPROM policy */
    }
}
