/*
 * The gateway's request handlers: each op of docs/ipc-protocol.md on a decoded request
 * (gw_request.h), answered at once or by the job it starts (gateway.c runs the jobs).
 */
#include "gw_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <czmq.h>

#include "gw_npb.h"
#include "gw_request.h"
#include "log.h"
#include "numconv.h"

/* ---------------------------------------------------------------------------------------
   Requests
   --------------------------------------------------------------------------------------- */

typedef struct {
    gateway_t *gw;
    zmsg_t **env;
    const gw_request_t *rq; /* the decoded request */
    const cJSON *id;
    int64_t now;
} ctx_t;

static void s_reply_now(ctx_t *c, cJSON *reply)
{
    gw_send_reply(c->gw, c->env, reply);
}

/* Resolves "dev": present and known, or absent with exactly one device. */
static gw_dev_t *s_req_dev(ctx_t *c, bool *replied)
{
    *replied = true;
    int addr = -1;
    if (c->rq->dev == GWR_DEV_ABSENT) {
        int only = -1;
        int n = gw_dev_count(c->gw, &only);
        if (n != 1) {
            s_reply_now(c, gw_reply_error(c->id, "bad_request",
                                          "'dev' is required when the gateway has %d devices "
                                          "(allowed: 0-63 a BIC's CAN address, 64-67 the "
                                          "NPB at address 0-3)",
                                          n));
            return NULL;
        }
        addr = only;
    } else if (c->rq->dev == GWR_DEV_INVALID) {
        s_reply_now(c,
                    gw_reply_error(c->id, "bad_request",
                                   "'dev' must be an integer: 0-63 a BIC's CAN address, 64-67 the "
                                   "NPB at address 0-3"));
        return NULL;
    } else {
        addr = c->rq->dev;
    }
    if (!c->gw->dev[addr]) {
        s_reply_now(c, gw_reply_error(c->id, "unknown_device",
                                      "device %d is not configured or discovered", addr));
        return NULL;
    }
    *replied = false;
    return c->gw->dev[addr];
}

/* The command table a device's register names come from. */
static const char *s_table_name(const gw_dev_t *d)
{
    return GW_DEV_IS_NPB(d->addr) ? "NPB" : "BIC-2200";
}

/* Device must be reachable: bus up and device online. */
static bool s_req_online(ctx_t *c, gw_dev_t *d)
{
    if (!bus_sched_is_up(c->gw->sched)) {
        s_reply_now(c, gw_reply_error(c->id, "bus_down", "CAN bus is down (%s); reconnecting",
                                      c->gw->bus_error[0] ? c->gw->bus_error : "adapter gone"));
        return false;
    }
    if (!d->online || !d->identified) {
        s_reply_now(c, gw_reply_error(c->id, "device_offline", "device %d is offline: %s", d->addr,
                                      d->offline_reason));
        return false;
    }
    return true;
}

/* Optional/required "client". Returns the name, "" when absent and optional, NULL after an
 * error reply. */
static const char *s_req_client(ctx_t *c, bool required)
{
    if (c->rq->client_state == GWR_CLIENT_ABSENT) {
        if (!required)
            return "";
        s_reply_now(c, gw_reply_error(c->id, "bad_request",
                                      "'client' is required: 1-32 characters of [A-Za-z0-9_.-]"));
        return NULL;
    }
    if (c->rq->client_state != GWR_CLIENT_OK) {
        s_reply_now(c, gw_reply_error(c->id, "bad_request",
                                      "'client' must be 1-32 characters of [A-Za-z0-9_.-]"));
        return NULL;
    }
    return c->rq->client;
}

/* lease_held naming the holder of device addr, the one that refused the request. */
static cJSON *s_lease_held_error(ctx_t *c, int addr)
{
    const char *h = lease_holder(gw_lease(c->gw, addr), c->now);
    cJSON *r = gw_reply_error(c->id, "lease_held", "controlled by %s", h ? h : "?");
    cJSON *e = gw_reply_error_obj(r);
    cJSON_AddStringToObject(e, "holder", h ? h : "");
    cJSON_AddNumberToObject(e, "dev", addr);
    cJSON_AddNumberToObject(e, "expires_in_s", gw_lease_left_s(c->gw, addr, c->now));
    return r;
}

/* bad_token: the request names device addr's holder without the holder's token. Logged at
 * most once a second under a flood (the others counted in the next line); the token is never
 * logged. */
static cJSON *s_bad_token_error(ctx_t *c, int addr, const char *client)
{
    gateway_t *gw = c->gw;
    const char *what = gw_request_op_name(c->rq->op);
    if (c->now - gw->token_log_at < 1000000) {
        gw->token_quiet++;
    } else {
        char more[48] = "";
        if (gw->token_quiet)
            snprintf(more, sizeof more, " (and %u more refusals not shown)", gw->token_quiet);
        log_warn("device %d: %s as '%s' refused: %s token of the lease holder%s", addr, what,
                 client, c->rq->token ? "not the" : "without the", more);
        gw->token_log_at = c->now;
        gw->token_quiet = 0;
    }
    cJSON *r = gw_reply_error(c->id, "bad_token",
                              "device %d: '%s' holds the lease under another token: a request "
                              "acting on the lease must carry the 'token' its take replied with",
                              addr, client);
    cJSON_AddNumberToObject(gw_reply_error_obj(r), "dev", addr);
    return r;
}

/* Replies to a refusal of the lease core about device addr: lease_held or bad_token. */
static void s_lease_refused(ctx_t *c, lease_rc_t rc, int addr, const char *client)
{
    if (rc == LEASE_BAD_TOKEN)
        s_reply_now(c, s_bad_token_error(c, addr, client));
    else
        s_reply_now(c, s_lease_held_error(c, addr));
}

/* A new token for a take into fresh (LEASE_TOKEN_LEN + 1); false after an error reply. */
static bool s_fresh_token(ctx_t *c, char *fresh)
{
    if (gw_lease_token_new(fresh) == 0)
        return true;
    log_error("no random bytes for a lease token: %s", strerror(errno));
    s_reply_now(c, gw_reply_error(c->id, "internal", "no random bytes for a lease token"));
    return false;
}

static cJSON *s_range_error(ctx_t *c, const gw_dev_t *d, const bic_cmd_t *cmd, int32_t min,
                            int32_t max, double got)
{
    double lo = gw_raw_value(d, cmd->code, min), hi = gw_raw_value(d, cmd->code, max);
    cJSON *r = gw_reply_error(c->id, "out_of_range", "%s %g%s%s is outside %g-%g%s%s (device %d)",
                              cmd->name, got, cmd->unit ? " " : "", cmd->unit ? cmd->unit : "", lo,
                              hi, cmd->unit ? " " : "", cmd->unit ? cmd->unit : "", d->addr);
    cJSON *e = gw_reply_error_obj(r);
    cJSON_AddNumberToObject(e, "min", lo);
    cJSON_AddNumberToObject(e, "max", hi);
    if (cmd->unit)
        cJSON_AddStringToObject(e, "unit", cmd->unit);
    return r;
}

static void s_op_ping(ctx_t *c)
{
    cJSON *r = gw_reply_ok(c->id);
    cJSON_AddStringToObject(r, "gateway", "bic-can-gateway");
    cJSON_AddStringToObject(r, "version", BIC_VERSION);
    cJSON_AddNumberToObject(r, "uptime_s", round((c->now - c->gw->start_us) / 100000.0) / 10.0);
    cJSON_AddStringToObject(r, "bus", bus_sched_is_up(c->gw->sched) ? "up" : "down");
    s_reply_now(c, r);
}

static cJSON *s_eeprom_json(gateway_t *gw, const gw_dev_t *d, int64_t now)
{
    eeprom_policy_t *eep = gw_eep(gw, d->addr);
    cJSON *o = cJSON_CreateObject();
    gw_eeprom_budget_json(o, eep, now);
    cJSON *w = cJSON_AddObjectToObject(o, "writes");
    for (int i = 0; i < EEPROM_NREGS; i++)
        if (gw_dev_cmd(d->addr, eeprom_reg_cmd(i))) /* the registers of its family */
            cJSON_AddNumberToObject(w, eeprom_reg_name(i), (double)eeprom_policy_count(eep, i));
    cJSON *p = cJSON_AddObjectToObject(o, "pending");
    for (int i = 0; i < EEPROM_NREGS; i++) {
        uint32_t raw;
        if (eeprom_policy_pending(eep, eeprom_reg_cmd(i), &raw))
            cJSON_AddNumberToObject(p, eeprom_reg_name(i),
                                    gw_raw_value(d, eeprom_reg_cmd(i), (int32_t)raw));
    }
    return o;
}

static cJSON *s_device_info(gateway_t *gw, const gw_dev_t *d, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "dev", d->addr);
    cJSON_AddBoolToObject(o, "online", d->online);
    if (!d->online)
        cJSON_AddStringToObject(o, "reason", d->offline_reason);
    if (d->identified) {
        cJSON_AddStringToObject(o, "family", "BIC");
        cJSON_AddStringToObject(o, "model", d->model.model);
        cJSON_AddNumberToObject(o, "variant", d->model.variant);
        cJSON *fw = cJSON_AddObjectToObject(o, "firmware");
        cJSON_AddStringToObject(fw, "raw", d->revision.raw);
        cJSON *m = cJSON_AddArrayToObject(fw, "mcu");
        for (int i = 0; i < d->revision.nmcu; i++)
            cJSON_AddItemToArray(m, cJSON_CreateString(d->revision.mcu[i]));
        cJSON_AddStringToObject(o, "serial", d->serial);
        cJSON_AddStringToObject(o, "date", d->date);
        cJSON_AddStringToObject(o, "location", d->location);
        cJSON_AddStringToObject(o, "mode", bic_mode_name(d->mode));
        if (d->mode_pending)
            cJSON_AddStringToObject(o, "mode_pending", bic_mode_name(d->pending_mode));
        else
            cJSON_AddNullToObject(o, "mode_pending");
        cJSON_AddBoolToObject(o, "can_ctrl", d->can_ctrl);
        cJSON *caps = cJSON_AddObjectToObject(o, "caps");
        cJSON_AddBoolToObject(caps, "fans", d->fans);
        cJSON_AddBoolToObject(caps, "eep_off", eeprom_policy_eep_off(gw_eep(gw, d->addr)));
        cJSON_AddItemToObject(o, "limits", gw_dev_limits_json(d));
        cJSON_AddItemToObject(o, "device_limits", gw_limits_state_json(gw, d));
        if (GW_DEV_IS_NPB(d->addr))
            gw_npb_info(d, o);
    } else {
        cJSON_AddNullToObject(o, "model");
    }
    cJSON_AddItemToObject(o, "eeprom", s_eeprom_json(gw, d, now));
    cJSON_AddItemToObject(o, "lease", gw_lease_json(gw, d->addr, now));
    if (d->held_off)
        cJSON_AddStringToObject(o, "held_off", d->held_off_by);
    else
        cJSON_AddNullToObject(o, "held_off");
    return o;
}

static void s_op_info(ctx_t *c)
{
    gateway_t *gw = c->gw;
    gw_dev_t *only = NULL;
    if (c->rq->dev != GWR_DEV_ABSENT) {
        bool replied;
        only = s_req_dev(c, &replied);
        if (!only)
            return;
    }
    cJSON *r = gw_reply_ok(c->id);
    cJSON *g = cJSON_AddObjectToObject(r, "gateway");
    cJSON_AddStringToObject(g, "version", BIC_VERSION);
    cJSON_AddStringToObject(g, "transport", gw->set.can);
    cJSON_AddStringToObject(g, "bus", bus_sched_is_up(gw->sched) ? "up" : "down");
    cJSON_AddNumberToObject(g, "uptime_s", round((c->now - gw->start_us) / 100000.0) / 10.0);
    cJSON *arr = cJSON_AddArrayToObject(r, "devices");
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->dev[a] && (!only || only == gw->dev[a]))
            cJSON_AddItemToArray(arr, s_device_info(gw, gw->dev[a], c->now));
    s_reply_now(c, r);
}

static void s_op_devices(ctx_t *c)
{
    cJSON *r = gw_reply_ok(c->id);
    cJSON_AddItemToObject(r, "devices", gw_devices_json(c->gw));
    s_reply_now(c, r);
}

static void s_op_eeprom(ctx_t *c)
{
    bool replied;
    gw_dev_t *d = s_req_dev(c, &replied);
    if (!d)
        return;
    cJSON *r = gw_reply_ok(c->id);
    cJSON_AddNumberToObject(r, "dev", d->addr);
    cJSON_AddItemToObject(r, "eeprom", s_eeprom_json(c->gw, d, c->now));
    s_reply_now(c, r);
}

static void s_op_discover(ctx_t *c)
{
    bool ext = c->rq->discover.extended;
    if (!bus_sched_is_up(c->gw->sched)) {
        s_reply_now(c, gw_reply_error(c->id, "bus_down", "CAN bus is down; reconnecting"));
        return;
    }
    job_t *j = gw_job_new(c->gw, JOB_DISCOVER, c->env, c->id);
    if (!j) {
        s_reply_now(c, gw_reply_error(c->id, "busy", "too many requests in progress; retry later"));
        return;
    }
    j->extended = ext;
    int top = ext ? 63 : 7;
    for (int a = 0; a <= top; a++)
        gw_job_add_read(j, (uint8_t)a, BIC_CMD_MFR_MODEL_B0B5, BUS_REQ_NO_RETRY);
    for (int a = GW_NPB_BASE; a < GW_DEV_MAX; a++) /* the NPB addresses 0-3 */
        gw_job_add_read(j, (uint8_t)a, BIC_CMD_MFR_MODEL_B0B5, BUS_REQ_NO_RETRY);
    gw_job_start(c->gw, j, c->now);
}

static void s_op_get(ctx_t *c)
{
    bool replied;
    gw_dev_t *d = s_req_dev(c, &replied);
    if (!d)
        return;
    /* the names against the device's own command table; each register read once */
    const gwr_get_t *g = &c->rq->get;
    const bic_cmd_t *cmds[GWR_GET_MAX];
    int n = 0;
    for (int i = 0; i < g->n; i++) {
        const bic_cmd_t *cmd = bic_cmd_by_name(gw_dev_family(d->addr), g->name[i]);
        if (!cmd) {
            s_reply_now(c, gw_reply_error(c->id, "unknown_register",
                                          "'%s' is not in the %s command table", g->name[i],
                                          s_table_name(d)));
            return;
        }
        bool dup = false;
        for (int k = 0; k < n; k++)
            dup = dup || cmds[k] == cmd;
        if (!dup) /* asked twice: read once, one key in the reply */
            cmds[n++] = cmd;
    }
    if (!s_req_online(c, d))
        return;
    job_t *j = gw_job_new(c->gw, JOB_GET, c->env, c->id);
    if (!j) {
        s_reply_now(c, gw_reply_error(c->id, "busy", "too many requests in progress; retry later"));
        return;
    }
    j->addr = d->addr;
    for (int i = 0; i < n; i++) {
        const bic_cmd_t *cmd = cmds[i];
        int idx = j->nreads;
        gw_job_add_read(
            j, d->addr, cmd->code,
            (cmd->code == BIC_CMD_READ_FAN_SPEED_1 || cmd->code == BIC_CMD_READ_FAN_SPEED_2) &&
                    !d->fans
                ? BUS_REQ_NO_RETRY
                : 0);
        /* reply keys: canonical names (codes asked as "0x0030" come back under the name) */
        snprintf(j->names[idx], sizeof j->names[idx], "%s", cmd->name);
    }
    gw_job_start(c->gw, j, c->now);
}

/* The lease of device addr for a request of client ("": anonymous): true after a refusal
 * (lease_held when another client holds it and output, bad_token when client names the
 * holder without its token, whatever the request); *holder: client holds it with its token. */
static bool s_lease_blocks(ctx_t *c, int addr, const char *client, bool output, bool *holder)
{
    lease_rc_t rc =
        lease_check(gw_lease(c->gw, addr), client[0] ? client : NULL, c->rq->token, c->now);
    *holder = rc == LEASE_OK;
    if (rc == LEASE_BAD_TOKEN || (rc == LEASE_HELD && output)) {
        s_lease_refused(c, rc, addr, client);
        return true;
    }
    return false;
}

/* Replies with a range error r and publishes the refusal. */
static void s_reject_range(ctx_t *c, gw_dev_t *d, const bic_cmd_t *cmd, double shown, cJSON *r)
{
    cJSON *ev = gw_event(d, "write_rejected");
    cJSON_AddStringToObject(ev, "reg", cmd->name);
    cJSON_AddNumberToObject(ev, "value", shown);
    cJSON_AddStringToObject(ev, "reason", "out of range");
    gw_publish_event(c->gw, d, ev);
    s_reply_now(c, r);
}

/* The hold of a person's stop ends (see gw_device.h held_off). */
static void s_held_off_end(gw_dev_t *d, const char *why)
{
    if (!d->held_off)
        return;
    d->held_off = false;
    log_info("device %d: the stop by '%s' ends: %s", d->addr, d->held_off_by, why);
}

static void s_op_set(ctx_t *c)
{
    bool replied;
    gw_dev_t *d = s_req_dev(c, &replied);
    if (!d)
        return;
    const char *client = s_req_client(c, false);
    if (!client)
        return;
    const gwr_set_t *st = &c->rq->set;
    const bic_cmd_t *cmd = bic_cmd_by_name(gw_dev_family(d->addr), st->reg);
    if (!cmd) {
        s_reply_now(c, gw_reply_error(c->id, "unknown_register",
                                      "'%.40s' is not in the %s command table", st->reg,
                                      s_table_name(d)));
        return;
    }
    if (!cmd->writable) {
        s_reply_now(c, gw_reply_error(c->id, "read_only", "%s is read-only", cmd->name));
        return;
    }
    if (!s_req_online(c, d))
        return;
    int32_t want;
    double shown;
    if (!st->is_raw) {
        shown = st->value;
        if (bic_value_to_raw(cmd, &d->scaling, st->value, &want) != BIC_OK) {
            int32_t lo, hi;
            gw_dev_reg_range(d, cmd, &lo, &hi);
            s_reply_now(c, s_range_error(c, d, cmd, lo, hi, shown));
            return;
        }
    } else {
        want = st->raw;
        shown = gw_raw_value(d, cmd->code, want);
    }
    int32_t lo, hi;
    gw_dev_reg_range(d, cmd, &lo, &hi);
    char why[256];
    if (gw_dev_check_value(d, cmd, want, why, sizeof why) < 0) {
        cJSON *r = s_range_error(c, d, cmd, lo, hi, shown);
        if (cmd->type == BIC_TYPE_BITS) /* a bitfield: the range alone does not say it */
            cJSON_ReplaceItemInObject(gw_reply_error_obj(r), "message", cJSON_CreateString(why));
        s_reject_range(c, d, cmd, shown, r);
        return;
    }
    /* the discharge end voltage stays below the charge voltage the device holds */
    int pair = cmd->code == BIC_CMD_REVERSE_VOUT_SET ? TREG_VOUT_SET
               : cmd->code == BIC_CMD_VOUT_SET       ? TREG_REV_VOUT_SET
                                                     : -1;
    if (pair >= 0 && d->cache[pair].valid) {
        int32_t other = d->cache[pair].raw;
        bool rev = cmd->code == BIC_CMD_REVERSE_VOUT_SET;
        if (rev ? want >= other : want <= other) {
            if (rev)
                hi = other - 1;
            else
                lo = other + 1;
            cJSON *r = s_range_error(c, d, cmd, lo, hi, shown);
            cJSON *e = gw_reply_error_obj(r);
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
            char msg[300];
            snprintf(msg, sizeof msg, "%s (%s, which the device holds at %g V)",
                     cJSON_IsString(m) ? m->valuestring : "",
                     rev ? "the discharge end voltage stays below the charge voltage VOUT_SET"
                         : "the charge voltage stays above the discharge end voltage "
                           "REVERSE_VOUT_SET",
                     gw_raw_value(d, rev ? BIC_CMD_VOUT_SET : BIC_CMD_REVERSE_VOUT_SET, other));
            cJSON_ReplaceItemInObject(e, "message", cJSON_CreateString(msg));
            s_reject_range(c, d, cmd, shown, r);
            return;
        }
    }
    char rule[200];
    if (GW_DEV_IS_NPB(d->addr) &&
        gw_npb_check_curve(d, cmd->code, want, &lo, &hi, rule, sizeof rule) < 0) {
        cJSON *r = s_range_error(c, d, cmd, lo, hi, shown);
        cJSON *e = gw_reply_error_obj(r);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        char msg[400];
        snprintf(msg, sizeof msg, "%s (%s)", cJSON_IsString(m) ? m->valuestring : "", rule);
        cJSON_ReplaceItemInObject(e, "message", cJSON_CreateString(msg));
        s_reject_range(c, d, cmd, shown, r);
        return;
    }
    bool holder = false;
    if (s_lease_blocks(c, d->addr, client, cmd->output, &holder))
        return;
    job_t *j = gw_ensure_job_new(c->gw, c->env, c->id, d->addr, ENS_SET, EEPROM_BY_PERSON, holder);
    if (!j) {
        s_reply_now(c, gw_reply_error(c->id, "busy", "too many requests in progress; retry later"));
        return;
    }
    log_info("device %d: set %s %g asked by '%s'", d->addr, cmd->name, shown,
             client[0] ? client : "anonymous");
    if (cmd->code == BIC_CMD_OPERATION && want == 1)
        s_held_off_end(d, "a person's output on");
    j->prio = cmd->output ? BUS_PRIO_SAFETY : BUS_PRIO_CLIENT;
    snprintf(j->client, sizeof j->client, "%s", client);
    gw_job_add_target(j, cmd->code, (uint16_t)want, 0xFFFF, false, NULL);
    gw_job_start(c->gw, j, c->now);
}

/* Takes or renews the lease of device addr for a setpoint that carries lease_ttl_s (its
 * token into granted, LEASE_TOKEN_LEN + 1), or checks it is client's. Returns false after an
 * error reply. */
static bool s_setpoint_lease(ctx_t *c, int addr, const char *client, char *granted)
{
    const gwr_setpoint_t *sp = &c->rq->setpoint;
    lease_t *l = gw_lease(c->gw, addr);
    int64_t max_s = lease_table_max_ttl(c->gw->leases) / 1000000;
    if (sp->has_ttl) {
        /* NaN (not a number) fails the first test */
        if (!(sp->ttl_s >= 1) || sp->ttl_s > max_s) {
            cJSON *r = gw_reply_error(c->id, "out_of_range", "'lease_ttl_s' must be 1-%lld s",
                                      (long long)max_s);
            cJSON_AddNumberToObject(gw_reply_error_obj(r), "min", 1);
            cJSON_AddNumberToObject(gw_reply_error_obj(r), "max", (double)max_s);
            cJSON_AddStringToObject(gw_reply_error_obj(r), "unit", "s");
            s_reply_now(c, r);
            return false;
        }
        int64_t ttl_us = 0; /* 1 s to max_s, checked above */
        numconv_trunc(sp->ttl_s * 1000000, 1000000, max_s * 1000000, &ttl_us);
        char fresh[LEASE_TOKEN_LEN + 1];
        if (!s_fresh_token(c, fresh))
            return false;
        lease_devs_t one = {{0}};
        lease_devs_add(&one, addr);
        lease_rc_t rc = lease_table_take_all(c->gw->leases, &one, client, c->rq->token, fresh,
                                             ttl_us, c->now, NULL, granted);
        if (rc != LEASE_OK) {
            s_lease_refused(c, rc, addr, client);
            return false;
        }
        gw_lease_persist(c->gw, c->now);
        return true;
    }
    lease_rc_t rc = lease_check(l, client, c->rq->token, c->now);
    if (rc == LEASE_HELD || rc == LEASE_BAD_TOKEN) {
        s_lease_refused(c, rc, addr, client);
        return false;
    }
    if (rc == LEASE_NOT_HOLDER) {
        s_reply_now(c, gw_reply_error(c->id, "no_lease",
                                      "setpoint needs the control lease of device %d: send "
                                      "'lease_ttl_s' or take it with the lease op",
                                      addr));
        return false;
    }
    return true;
}

/* Mode stop: a person switches the output off (the seed's state/set 0). Toward safety, so it
 * needs no lease and is never refused for one (or for limits not applied); the holder's lease
 * stays, and `lease_ttl_s` renews it only when the client is the holder with its token (the
 * holder's name without it is not refused here: the stop goes out, the lease is left as it
 * is). Always a person's
 * writes: at once within the EEPROM budget (lowering a current and switching off always go
 * out). Values a controller's setpoint left pending are dropped: they must not switch the
 * output back on later. */
static void s_setpoint_stop(ctx_t *c, gw_dev_t *d, const char *client)
{
    if (!d->held_off) /* the first stop names who switched off */
        snprintf(d->held_off_by, sizeof d->held_off_by, "%s", client);
    d->held_off = true;
    bool holder = lease_check(gw_lease(c->gw, d->addr), client, c->rq->token, c->now) == LEASE_OK;
    char granted[LEASE_TOKEN_LEN + 1] = "";
    if (holder && !s_setpoint_lease(c, d->addr, client, granted))
        return;
    job_t *j =
        gw_ensure_job_new(c->gw, c->env, c->id, d->addr, ENS_SETPOINT, EEPROM_BY_PERSON, holder);
    if (!j) {
        s_reply_now(c, gw_reply_error(c->id, "busy", "too many requests in progress; retry later"));
        return;
    }
    for (int i = 0; i < EEPROM_NREGS; i++)
        eeprom_policy_clear_pending(gw_eep(c->gw, d->addr), eeprom_reg_cmd(i));
    const char *h = lease_holder(gw_lease(c->gw, d->addr), c->now);
    if (h && !holder)
        log_info("device %d: stop by '%s' (the lease of '%s' stays)", d->addr, client, h);
    else
        log_info("device %d: stop by '%s'", d->addr, client);
    j->prio = BUS_PRIO_SAFETY;
    snprintf(j->client, sizeof j->client, "%s", client);
    snprintf(j->mode, sizeof j->mode, "stop");
    snprintf(j->token, sizeof j->token, "%s", granted);
    gw_job_add_plan(j, d, BIC_PLAN_STOP, 0);
    gw_job_start(c->gw, j, c->now);
}

static void s_op_setpoint(ctx_t *c)
{
    bool replied;
    gw_dev_t *d = s_req_dev(c, &replied);
    if (!d)
        return;
    const char *client = s_req_client(c, true);
    if (!client)
        return;
    const gwr_setpoint_t *sp = &c->rq->setpoint;
    const char *mode = gw_request_mode_name(sp->mode);
    bool charge = sp->mode == GWR_MODE_CHARGE;
    bool discharge = sp->mode == GWR_MODE_DISCHARGE;
    bool stop = sp->mode == GWR_MODE_STOP;
    /* the direction whose current is set: charge, discharge and an idle's preset */
    bool amps_given = charge || discharge || sp->has_preset;
    bool to_charge = charge || (sp->has_preset && sp->preset == GWR_MODE_CHARGE);
    if (sp->has_preset && GW_DEV_IS_NPB(d->addr)) {
        s_reply_now(c, gw_reply_error(c->id, "not_supported",
                                      "device %d is an NPB charger: it has no preset; send mode "
                                      "\"idle\" without 'preset'",
                                      d->addr));
        return;
    }
    if (discharge && GW_DEV_IS_NPB(d->addr)) {
        s_reply_now(c, gw_reply_error(c->id, "not_supported",
                                      "device %d is an NPB charger: it only charges; allowed "
                                      "modes: \"charge\", \"idle\", \"off\" or \"stop\"",
                                      d->addr));
        return;
    }
    int32_t amps_raw = 0;
    double amps = 0;
    if (!s_req_online(c, d))
        return;
    if (amps_given) {
        if (sp->by_power) {
            gw_cached_t *v = &d->cache[TREG_READ_VOUT];
            double volts = gw_dev_value(d, TREG_READ_VOUT);
            if (!v->valid || c->now - v->at > VOLTAGE_MAX_AGE_US || !(volts > 1.0)) {
                s_reply_now(c,
                            gw_reply_error(c->id, "no_voltage",
                                           "power_w needs a battery voltage reading younger than "
                                           "10 s from device %d; there is none",
                                           d->addr));
                return;
            }
            amps = sp->amount / volts;
        } else {
            amps = sp->amount;
        }
        const bic_range_t *rg = to_charge ? &d->limits.iout : &d->limits.rev_iout;
        int64_t a100;
        /* a magnitude too large for any register (1e300 W) is out of range like 1 A over */
        bool fits = numconv_round(amps * 100.0, 0, INT32_MAX, &a100) == 0;
        amps_raw = fits ? (int32_t)a100 : INT32_MAX;
        if (fits)
            amps = amps_raw / 100.0;
        if (amps_raw < rg->min_raw || amps_raw > rg->max_raw) {
            const bic_cmd_t *cmd =
                gw_dev_cmd(d->addr, GW_DEV_IS_NPB(d->addr) ? gw_npb_setpoint_cmd(d)
                                    : to_charge            ? BIC_CMD_IOUT_SET
                                                           : BIC_CMD_REVERSE_IOUT_SET);
            cJSON *r = s_range_error(c, d, cmd, rg->min_raw, rg->max_raw, amps);
            if (sp->by_power) {
                cJSON *e = gw_reply_error_obj(r);
                cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
                char msg[300];
                snprintf(msg, sizeof msg, "%g W at %.2f V is %.2f A; %s", sp->amount,
                         gw_dev_value(d, TREG_READ_VOUT), amps, m ? m->valuestring : "");
                cJSON_ReplaceItemInObject(e, "message", cJSON_CreateString(msg));
            }
            s_reply_now(c, r);
            return;
        }
    }
    if (stop) {
        s_setpoint_stop(c, d, client);
        return;
    }
    /* After a person's stop, only a person (or a controller a person resumed) switches the
     * output on again. */
    bool switches_on =
        charge || discharge ||
        (sp->mode == GWR_MODE_IDLE && c->gw->set.idle_min && !GW_DEV_IS_NPB(d->addr));
    if (d->held_off && switches_on && !sp->manual && !sp->resume) {
        cJSON *r = gw_reply_error(c->id, "held_off",
                                  "device %d was switched off by '%s' (stop): a controller does "
                                  "not switch it on again until a person does (state/set 1, set "
                                  "OPERATION 1) or resumes it (control/set 1: \"resume\":true)",
                                  d->addr, d->held_off_by);
        cJSON_AddNumberToObject(gw_reply_error_obj(r), "dev", d->addr);
        cJSON_AddStringToObject(gw_reply_error_obj(r), "by", d->held_off_by);
        s_reply_now(c, r);
        return;
    }
    if (c->gw->set.apply_limits && d->cfg.present && d->limits_state == GW_LIMITS_FAILED) {
        cJSON *r =
            gw_reply_error(c->id, "limits_not_applied",
                           "device %d: the configured [DEVICE] limits are not on the device (%s); "
                           "no setpoint until they are: fix the cause (bicctl eeprom, bicctl "
                           "status) and the gateway applies them again within %lld s",
                           d->addr, d->limits_error, (long long)(LIMITS_RETRY_US / 1000000));
        cJSON_AddNumberToObject(gw_reply_error_obj(r), "dev", d->addr);
        s_reply_now(c, r);
        return;
    }
    char granted[LEASE_TOKEN_LEN + 1] = "";
    if (!s_setpoint_lease(c, d->addr, client, granted))
        return;
    job_t *j = gw_ensure_job_new(c->gw, c->env, c->id, d->addr, ENS_SETPOINT,
                                 sp->manual ? EEPROM_BY_PERSON : EEPROM_BY_CONTROL, true);
    if (!j) {
        s_reply_now(c, gw_reply_error(c->id, "busy", "too many requests in progress; retry later"));
        return;
    }
    j->preset_asked = sp->has_preset;
    if (sp->has_preset)
        j->preset_applied =
            gw_bcast_preset_applies(c->gw, d, c->now, j->preset_skipped, sizeof j->preset_skipped);
    if (charge || discharge)
        log_info("device %d: setpoint %s %.2f A by '%s'", d->addr, mode, amps, client);
    else if (j->preset_applied)
        log_info("device %d: setpoint %s, preset %s %.2f A by '%s'", d->addr, mode,
                 gw_request_mode_name(sp->preset), amps, client);
    else if (sp->has_preset)
        log_info("device %d: setpoint %s by '%s' (preset %s %.2f A not applied: %s)", d->addr, mode,
                 client, gw_request_mode_name(sp->preset), amps, j->preset_skipped);
    else
        log_info("device %d: setpoint %s by '%s'", d->addr, mode, client);
    d->safe_pending = false; /* the controller in charge decides now */
    if (switches_on)
        s_held_off_end(d, sp->manual ? "a person's setpoint" : "resumed by a person");
    j->prio = BUS_PRIO_SAFETY;
    snprintf(j->client, sizeof j->client, "%s", client);
    snprintf(j->token, sizeof j->token, "%s", granted);
    snprintf(j->mode, sizeof j->mode, "%s", mode);
    if (charge || discharge) {
        j->have_current = true;
        j->current_a = amps;
        /* the other direction's current is left at its minimum */
        gw_job_add_plan(j, d, charge ? BIC_PLAN_CHARGE : BIC_PLAN_DISCHARGE, (uint16_t)amps_raw);
    } else if (j->preset_applied) { /* the output stays off: see can/bic_plan.h standby */
        gw_job_add_standby(c->gw, j, d, to_charge, (uint16_t)amps_raw, c->now);
    } else if (sp->mode == GWR_MODE_IDLE) {
        gw_job_add_idle(j, d, c->gw->set.idle_min);
    } else {
        gw_job_add_plan(j, d, BIC_PLAN_OFF, 0);
    }
    gw_job_start(c->gw, j, c->now);
}

static void s_op_init(ctx_t *c)
{
    bool replied;
    gw_dev_t *d = s_req_dev(c, &replied);
    if (!d)
        return;
    const char *client = s_req_client(c, false);
    if (!client)
        return;
    if (GW_DEV_IS_NPB(d->addr)) {
        s_reply_now(c, gw_reply_error(c->id, "not_supported",
                                      "device %d is an NPB charger: init commissions a BIC-2200 "
                                      "(CAN control, EEP_OFF, battery mode); an NPB needs none",
                                      d->addr));
        return;
    }
    bool holder = false;
    if (s_lease_blocks(c, d->addr, client, true, &holder))
        return;
    if (!s_req_online(c, d))
        return;
    job_t *j = gw_ensure_job_new(c->gw, c->env, c->id, d->addr, ENS_INIT, EEPROM_BY_PERSON, holder);
    if (!j) {
        s_reply_now(c, gw_reply_error(c->id, "busy", "too many requests in progress; retry later"));
        return;
    }
    log_info("device %d: commissioning by '%s'", d->addr, client[0] ? client : "anonymous");
    j->prio = BUS_PRIO_CLIENT;
    snprintf(j->client, sizeof j->client, "%s", client);
    gw_job_add_target(j, BIC_CMD_SYSTEM_CONFIG, 0x0001, 0x0001, false, "can_ctrl");
    gw_job_add_target(j, BIC_CMD_SYSTEM_CONFIG, 0x0400, 0x0400, true, "eep_off");
    gw_job_add_target(j, BIC_CMD_BIDIRECTIONAL_CONFIG, 0x0001, 0x0001, false, "battery_mode");
    gw_job_start(c->gw, j, c->now);
}

/* The lease op. With "dev": that device's lease. Without: take covers every device (all or
 * none), renew and release every device the client holds, so a client written for a single
 * gateway-wide lease keeps working. */
static void s_op_lease(ctx_t *c)
{
    const char *client = s_req_client(c, true);
    if (!client)
        return;
    const gwr_lease_t *ls = &c->rq->lease;
    const char *action = gw_request_lease_action_name(ls->action);
    gateway_t *gw = c->gw;
    int addr = -1; /* -1: every device */
    if (c->rq->dev != GWR_DEV_ABSENT) {
        bool replied;
        gw_dev_t *d = s_req_dev(c, &replied);
        if (!d)
            return;
        addr = d->addr;
    }
    bool release = ls->action == GWR_LEASE_RELEASE;
    bool take = ls->action == GWR_LEASE_TAKE;
    int64_t max_s = lease_table_max_ttl(gw->leases) / 1000000;
    int64_t us = 0;
    if (!release) {
        if (!ls->has_ttl) {
            s_reply_now(c, gw_reply_error(c->id, "bad_request",
                                          "'ttl_s' must be a number of seconds "
                                          "1-%lld",
                                          (long long)max_s));
            return;
        }
        if (!(ls->ttl_s >= 1) || ls->ttl_s > max_s) {
            cJSON *r = gw_reply_error(c->id, "out_of_range", "'ttl_s' %g is outside 1-%lld s",
                                      ls->ttl_s, (long long)max_s);
            cJSON_AddNumberToObject(gw_reply_error_obj(r), "min", 1);
            cJSON_AddNumberToObject(gw_reply_error_obj(r), "max", (double)max_s);
            cJSON_AddStringToObject(gw_reply_error_obj(r), "unit", "s");
            s_reply_now(c, r);
            return;
        }
        numconv_trunc(ls->ttl_s * 1000000, 1000000, max_s * 1000000, &us); /* checked */
    }
    lease_rc_t rc;
    int blocked = addr;
    lease_devs_t done = {{0}};
    const char *token = c->rq->token;
    char granted[LEASE_TOKEN_LEN + 1] = "";
    if (take) {
        char fresh[LEASE_TOKEN_LEN + 1];
        if (!s_fresh_token(c, fresh))
            return;
        for (int a = 0; a < GW_DEV_MAX; a++)
            if (gw->dev[a] && (addr < 0 || a == addr))
                lease_devs_add(&done, a);
        rc = lease_table_take_all(gw->leases, &done, client, token, fresh, us, c->now, &blocked,
                                  granted);
    } else if (addr >= 0) {
        lease_t *l = gw_lease(gw, addr);
        rc = release ? lease_release(l, client, token, c->now)
                     : lease_renew(l, client, token, us, c->now);
        if (rc == LEASE_OK)
            lease_devs_add(&done, addr);
    } else if (release) {
        rc = lease_table_release_all(gw->leases, client, token, c->now, &done, &blocked);
    } else {
        rc = lease_table_renew_all(gw->leases, client, token, us, c->now, &done, &blocked);
    }
    if (rc == LEASE_HELD || rc == LEASE_BAD_TOKEN) {
        s_lease_refused(c, rc, blocked, client);
        return;
    }
    if (rc == LEASE_NOT_HOLDER) {
        if (addr >= 0)
            s_reply_now(c,
                        gw_reply_error(c->id, "no_lease",
                                       "'%s' does not hold the lease of device %d", client, addr));
        else
            s_reply_now(c, gw_reply_error(c->id, "no_lease", "'%s' does not hold a lease", client));
        return;
    }
    if (rc != LEASE_OK) {
        s_reply_now(c, gw_reply_error(c->id, "bad_request", "lease request refused"));
        return;
    }
    if (addr >= 0)
        log_info("lease %s of device %d by '%s'", action, addr, client);
    else
        log_info("lease %s of every device by '%s'", action, client);
    gw_lease_persist(gw, c->now);
    cJSON *r = gw_reply_ok(c->id);
    if (addr >= 0)
        cJSON_AddNumberToObject(r, "dev", addr);
    if (release) {
        cJSON_AddNullToObject(r, "holder");
        cJSON_AddNumberToObject(r, "expires_in_s", 0);
    } else {
        cJSON_AddStringToObject(r, "holder", client);
        cJSON_AddNumberToObject(r, "expires_in_s", round((double)us / 100000.0) / 10.0);
    }
    if (take) /* only the taker sees it: never in a log line, an event, info or telemetry */
        cJSON_AddStringToObject(r, "token", granted);
    cJSON *devs = cJSON_AddArrayToObject(r, "devs");
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (lease_devs_has(&done, a))
            cJSON_AddItemToArray(devs, cJSON_CreateNumber(a));
    s_reply_now(c, r);
}

/* The handler of each op, by gwr_op_t. */
static void (*const s_ops[GWR_OP_COUNT])(ctx_t *) = {
    [GWR_PING] = s_op_ping,         [GWR_INFO] = s_op_info, [GWR_DEVICES] = s_op_devices,
    [GWR_DISCOVER] = s_op_discover, [GWR_GET] = s_op_get,   [GWR_SET] = s_op_set,
    [GWR_SETPOINT] = s_op_setpoint, [GWR_INIT] = s_op_init, [GWR_LEASE] = s_op_lease,
    [GWR_EEPROM] = s_op_eeprom,
};

void gw_handle_request(gateway_t *gw, zmsg_t *msg, int64_t now)
{
    /* envelope: routing frames up to and including the empty delimiter, then the body */
    zframe_t *body = zmsg_last(msg);
    if (!body || zmsg_size(msg) < 2) {
        zmsg_destroy(&msg);
        return;
    }
    body = zmsg_last(msg);
    zmsg_remove(msg, body);
    zmsg_t *env = msg;
    ctx_t c = {.gw = gw, .env = &env, .now = now};
    /* One frame after the empty delimiter: the frames of a multipart request are dropped
     * (the reply goes to the envelope alone) and the request refused. */
    size_t parts = 1;
    bool delim = false;
    for (zframe_t *f = zmsg_first(env); f && !delim; f = zmsg_next(env))
        delim = zframe_size(f) == 0;
    while (delim && zframe_size(zmsg_last(env)) != 0) {
        zframe_t *f = zmsg_last(env);
        zmsg_remove(env, f);
        zframe_destroy(&f);
        parts++;
    }
    gw_request_t rq;
    gwr_error_t err;
    if (gw_request_decode((const char *)zframe_data(body), zframe_size(body), parts,
                          gw_auth_read_only(body), &rq, &err) != 0) {
        s_reply_now(&c, gw_reply_error(rq.id, err.code, "%s", err.message));
        goto cleanup;
    }
    c.rq = &rq;
    c.id = rq.id;
    s_ops[rq.op](&c);
cleanup:
    if (env) {
        /* a handler that neither replied nor kept the envelope: answer anyway, once */
        s_reply_now(&c, gw_reply_error(c.id, "internal", "request was not answered"));
    }
    gw_request_free(&rq);
    zframe_destroy(&body);
}
