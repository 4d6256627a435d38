/*
 * gateway: the bic-can-gateway service loop (see gateway.h and docs/ipc-protocol.md).
 *
 * Layout of this file: small helpers (leases, the EEPROM policies); devices; replies; jobs
 * (the pending state of requests that need CAN exchanges) and their dispatch; the writes due;
 * construction, the loop, reload and stop. The other concerns are in their own files (see
 * gw_internal.h).
 */
#include "gateway.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <czmq.h>

#include "bic_plan.h"
#include "bic_proto.h"
#include "bus_sched.h"
#include "eeprom_policy.h"
#include "gw_auth.h"
#include "gw_device.h"
#include "gw_ensure.h"
#include "gw_request.h"
#include "gw_bind.h"
#include "gw_internal.h"
#include "gw_settings.h"
#include "jget.h"
#include "lease.h"
#include "log.h"
#include "monotime.h"
#include "numconv.h"

/* ---------------------------------------------------------------------------------------
   Small helpers
   --------------------------------------------------------------------------------------- */

const bic_family_t *gw_fam(void)
{
    return bic_family_bic();
}

int64_t gw_wall(void)
{
    return wall_ms();
}

lease_t *gw_lease(gateway_t *gw, int addr)
{
    return lease_table_get(gw->leases, addr);
}

double gw_lease_left_s(gateway_t *gw, int addr, int64_t now)
{
    return round(lease_remaining(gw_lease(gw, addr), now) / 100000.0) / 10.0;
}

/* The lease of device addr as info and telemetry show it: {"holder","expires_in_s"} or null. */
cJSON *gw_lease_json(gateway_t *gw, int addr, int64_t now)
{
    const char *h = lease_holder(gw_lease(gw, addr), now);
    if (!h)
        return cJSON_CreateNull();
    cJSON *l = cJSON_CreateObject();
    cJSON_AddStringToObject(l, "holder", h);
    cJSON_AddNumberToObject(l, "expires_in_s", gw_lease_left_s(gw, addr, now));
    return l;
}

/* Applies the configured spacing and daily budget to a device's policy (keeps its level). */
void gw_eep_configure(const gateway_t *gw, eeprom_policy_t *e, int64_t now)
{
    eeprom_policy_set_interval(e, (int64_t)gw->set.eep_interval_s * 1000000);
    eeprom_policy_set_budget(e, gw->set.eep_per_day, gw->set.eep_burst, now);
}

/* policy, spacing, daily budget, bucket level and the total count, as info, eeprom and
 * telemetry show them. min_interval_s is the spacing (what a controller paces its writes by);
 * with the fixed-interval rule the budget reads as a one-deep bucket refilled once per
 * interval (writes_per_day null when the interval is 0: no limit). */
void gw_eeprom_budget_json(cJSON *o, const eeprom_policy_t *eep, int64_t now)
{
    double spacing_s = (double)(eeprom_policy_interval(eep) / 1000000);
    cJSON_AddStringToObject(o, "policy", eeprom_policy_eep_off(eep) ? "eep_off" : "budget");
    cJSON_AddNumberToObject(o, "min_interval_s", spacing_s);
    cJSON_AddNumberToObject(o, "min_spacing_s", spacing_s);
    if (eeprom_policy_writes_per_day(eep) > 0) {
        cJSON_AddNumberToObject(o, "writes_per_day", eeprom_policy_writes_per_day(eep));
        cJSON_AddNumberToObject(o, "burst", eeprom_policy_burst(eep));
    } else {
        if (spacing_s > 0)
            cJSON_AddNumberToObject(o, "writes_per_day", round(86400.0 / spacing_s * 100) / 100);
        else
            cJSON_AddNullToObject(o, "writes_per_day");
        cJSON_AddNumberToObject(o, "burst", 1);
    }
    /* rounded down: 0.999 is not a token yet */
    cJSON_AddNumberToObject(o, "tokens", floor(eeprom_policy_tokens(eep, now) * 100) / 100);
    cJSON_AddNumberToObject(o, "writes_total", (double)eeprom_policy_total(eep));
}

eeprom_policy_t *gw_eep(gateway_t *gw, uint8_t addr)
{
    if (!gw->eep[addr]) {
        gw->eep[addr] = eeprom_policy_new((int64_t)gw->set.eep_interval_s * 1000000);
        if (gw->eep[addr])
            gw_eep_configure(gw, gw->eep[addr], mono_us());
    }
    return gw->eep[addr];
}

/* ---------------------------------------------------------------------------------------
   Devices
   --------------------------------------------------------------------------------------- */

gw_dev_t *gw_dev_add(gateway_t *gw, uint8_t addr)
{
    if (gw->dev[addr])
        return gw->dev[addr];
    gw_dev_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->addr = addr;
    d->cfg = gw->set.dev[addr];
    snprintf(d->offline_reason, sizeof d->offline_reason, "not identified yet");
    bic_scaling_fixed(&d->scaling);
    gw->dev[addr] = d;
    gw_eep(gw, addr);
    return d;
}

int gw_dev_count(const gateway_t *gw, int *only)
{
    int n = 0;
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->dev[a]) {
            n++;
            if (only)
                *only = a;
        }
    return n;
}

/* ---------------------------------------------------------------------------------------
   Replies
   --------------------------------------------------------------------------------------- */

void gw_send_reply(gateway_t *gw, zmsg_t **env, cJSON *reply)
{
    char *text = cJSON_PrintUnformatted(reply);
    cJSON_Delete(reply);
    if (!*env) {
        free(text);
        return;
    }
    zmsg_t *msg = *env;
    *env = NULL;
    if (!text) {
        zmsg_destroy(&msg);
        return;
    }
    zmsg_addstr(msg, text);
    free(text);
    zmsg_send(&msg, gw->router);
    gw->router_check = true;
}

cJSON *gw_reply_ok(const cJSON *id)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "v", 1);
    cJSON_AddBoolToObject(r, "ok", true);
    if (id)
        cJSON_AddItemToObject(r, "id", cJSON_Duplicate(id, true));
    return r;
}

cJSON *gw_reply_error(const cJSON *id, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "v", 1);
    cJSON_AddBoolToObject(r, "ok", false);
    if (id)
        cJSON_AddItemToObject(r, "id", cJSON_Duplicate(id, true));
    cJSON *e = cJSON_AddObjectToObject(r, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    return r;
}

cJSON *gw_reply_error_obj(cJSON *reply)
{
    return cJSON_GetObjectItemCaseSensitive(reply, "error");
}

/* ---------------------------------------------------------------------------------------
   Jobs: creation, submission, completion
   --------------------------------------------------------------------------------------- */

job_t *gw_job_new(gateway_t *gw, job_kind_t kind, zmsg_t **env, const cJSON *id)
{
    if (gw->njobs >= MAX_JOBS)
        return NULL;
    job_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    if (++gw->next_job_id == 0)
        gw->next_job_id = 1;
    j->id = gw->next_job_id;
    j->kind = kind;
    if (env) {
        j->env = *env;
        *env = NULL;
    }
    if (id)
        j->req_id = cJSON_Duplicate(id, true);
    j->prio = BUS_PRIO_CLIENT;
    j->next = gw->jobs;
    gw->jobs = j;
    gw->njobs++;
    return j;
}

void gw_job_free(gateway_t *gw, job_t *j)
{
    job_t **pp = &gw->jobs;
    while (*pp && *pp != j)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = j->next;
        gw->njobs--;
    }
    zmsg_destroy(&j->env);
    cJSON_Delete(j->req_id);
    gw_ensure_destroy(&j->ens);
    free(j);
}

static job_t *s_job_find(gateway_t *gw, uint32_t id)
{
    for (job_t *j = gw->jobs; j; j = j->next)
        if (j->id == id)
            return j;
    return NULL;
}

uint64_t gw_tag(uint32_t job, int idx)
{
    return ((uint64_t)job << 16) | (uint16_t)idx;
}

/* Who a job's bus requests are for (bus_req_t.flow, the scheduler's share key with the
 * device): 0 for the gateway's own jobs (telemetry, safe state, deferred writes), otherwise
 * a hash of the client's name or, without one, of its connection's routing id. Never 0 for a
 * client: a client never shares the gateway's own turn. */
static uint32_t s_flow(gateway_t *gw, uint64_t tag)
{
    job_t *j = (tag >> 16) ? s_job_find(gw, (uint32_t)(tag >> 16)) : NULL;
    if (!j || (!j->client[0] && !j->env))
        return 0;
    const unsigned char *p = (const unsigned char *)j->client;
    size_t n = strlen(j->client);
    if (!n) {
        zframe_t *id = zmsg_first(j->env);
        p = id ? zframe_data(id) : NULL;
        n = id ? zframe_size(id) : 0;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h ? h : 1;
}

/* Queue a bus request; returns 0 or the scheduler's error. */
int gw_submit(gateway_t *gw, bus_prio_t prio, uint8_t addr, uint16_t cmd, bool write, uint16_t raw,
              uint8_t flags, uint64_t tag)
{
    bus_req_t r = {.addr = addr, .cmd = cmd, .flags = flags, .flow = s_flow(gw, tag)};
    if (write) {
        const bic_cmd_t *c = gw_dev_cmd(addr, cmd);
        r.len = c ? c->len : 2;
        r.data[0] = raw & 0xff;
        r.data[1] = raw >> 8;
    }
    return bus_sched_submit(gw->sched, prio, &r, tag);
}

void gw_job_add_read(job_t *j, uint8_t addr, uint16_t cmd, uint8_t flags)
{
    if (j->nreads >= JOB_MAX_READS)
        return;
    read_slot_t *s = &j->rd[j->nreads++];
    memset(s, 0, sizeof *s);
    s->addr = addr;
    s->cmd = cmd;
    s->flags = flags;
    j->reads_left++;
}

/* Keeps up to READ_WINDOW reads of the job queued. A refused submission completes the slot
 * with BUS_DOWN (bus down) or a busy marker (queue full). */
void gw_job_pump_reads(gateway_t *gw, job_t *j)
{
    int inflight = 0;
    for (int i = 0; i < j->next_read; i++)
        if (j->rd[i].submitted && !j->rd[i].done)
            inflight++;
    while (j->next_read < j->nreads && inflight < READ_WINDOW) {
        read_slot_t *s = &j->rd[j->next_read];
        int rc = gw_submit(gw, j->prio, s->addr, s->cmd, false, 0, s->flags,
                           gw_tag(j->id, j->next_read));
        j->next_read++;
        s->submitted = true;
        if (rc != 0) {
            s->done = true;
            s->r.status = rc == BUS_SCHED_EDOWN ? BUS_DOWN : BUS_TIMEOUT;
            s->r.attempts = rc == BUS_SCHED_EFULL ? -1 : 0; /* -1 marks "busy" */
            j->reads_left--;
            continue;
        }
        inflight++;
    }
}

static void s_job_step(gateway_t *gw, job_t *j, const bus_result_t *r, int64_t now);

void gw_job_start(gateway_t *gw, job_t *j, int64_t now)
{
    s_job_step(gw, j, NULL, now);
}

/* A write job for device addr (targets added by the caller, then gw_job_start). */
job_t *gw_ensure_job_new(gateway_t *gw, zmsg_t **env, const cJSON *id, uint8_t addr,
                         ens_purpose_t purpose, eeprom_writer_t by, bool holder)
{
    gw_ensure_t *ens = gw_ensure_new(addr, by, holder);
    if (!ens)
        return NULL;
    job_t *j = gw_job_new(gw, JOB_ENSURE, env, id);
    if (!j) {
        gw_ensure_destroy(&ens);
        return NULL;
    }
    j->ens = ens;
    j->addr = addr;
    j->purpose = purpose;
    j->holder = holder;
    return j;
}

/* ---------------------------------------------------------------------------------------
   GET
   --------------------------------------------------------------------------------------- */

static const char *s_status_code(const bus_result_t *r, bool bus_up)
{
    if (r->status == BUS_DOWN || !bus_up)
        return "bus_down";
    if (r->attempts < 0)
        return "busy";
    return "timeout";
}

static void s_get_finish(gateway_t *gw, job_t *j, int64_t now)
{
    gw_dev_t *d = gw->dev[j->addr];
    cJSON *reply = gw_reply_ok(j->req_id);
    cJSON_AddNumberToObject(reply, "dev", j->addr);
    cJSON *vals = cJSON_AddObjectToObject(reply, "values");
    int ok = 0;
    const char *first_err = NULL;
    for (int i = 0; i < j->nreads; i++) {
        read_slot_t *s = &j->rd[i];
        const bic_cmd_t *c = gw_dev_cmd(j->addr, s->cmd);
        if (s->r.status == BUS_OK && c && d) {
            cJSON_AddItemToObject(vals, j->names[i], gw_reg_json(d, c, s->r.data, s->r.len));
            ok++;
        } else {
            const char *code = s_status_code(&s->r, bus_sched_is_up(gw->sched));
            if (strcmp(code, "timeout") == 0 && d && !d->fans &&
                (s->cmd == BIC_CMD_READ_FAN_SPEED_1 || s->cmd == BIC_CMD_READ_FAN_SPEED_2))
                code = "not_supported";
            if (!first_err)
                first_err = code;
            cJSON *slot = cJSON_CreateObject();
            cJSON *e = cJSON_AddObjectToObject(slot, "error");
            cJSON_AddStringToObject(e, "code", code);
            cJSON_AddStringToObject(e, "message",
                                    strcmp(code, "not_supported") == 0
                                        ? "this device's firmware has no fan speed readings"
                                    : strcmp(code, "timeout") == 0
                                        ? "no reply after the retries (unsupported by this "
                                          "firmware or device not answering)"
                                    : strcmp(code, "busy") == 0 ? "request queue full, retry later"
                                                                : "CAN bus is down");
            cJSON_AddItemToObject(vals, j->names[i], slot);
        }
    }
    (void)now;
    if (ok == 0) {
        cJSON_Delete(reply);
        reply = gw_reply_error(j->req_id, first_err ? first_err : "timeout",
                               "no register of device %d could be read (%s)", j->addr,
                               first_err ? first_err : "timeout");
    }
    gw_send_reply(gw, &j->env, reply);
}

/* ---------------------------------------------------------------------------------------
   Job dispatch
   --------------------------------------------------------------------------------------- */

static void s_job_step(gateway_t *gw, job_t *j, const bus_result_t *r, int64_t now)
{
    if (j->kind == JOB_ENSURE) {
        if (!r) {
            if (gw_job_ensure_busy(gw, j)) {
                j->waiting = true;
                return;
            }
            j->waiting = false;
            gw_job_ensure_pump(gw, j, now);
            return;
        }
        gw_job_ensure_on_result(gw, j, r, now);
        return;
    }
    if (r) {
        int idx = (int)(r->tag & 0xFFFF);
        if (idx < 0 || idx >= j->nreads)
            return;
        read_slot_t *s = &j->rd[idx];
        if (s->done)
            return;
        s->done = true;
        s->r = *r;
        j->reads_left--;
        gw_dev_t *d = gw->dev[s->addr];
        if (d && r->status == BUS_OK) {
            d->fails = 0;
            gw_cache_result(d, s->cmd, r, now);
        } else if (d && r->status == BUS_TIMEOUT && j->kind == JOB_GET) {
            gw_dev_failed(gw, d);
        }
    }
    gw_job_pump_reads(gw, j);
    if (j->reads_left > 0)
        return;
    switch (j->kind) {
    case JOB_GET:
        s_get_finish(gw, j, now);
        gw_job_free(gw, j);
        break;
    case JOB_IDENT:
        gw_ident_finish(gw, j, now);
        gw_job_free(gw, j);
        break;
    case JOB_DISCOVER:
        gw_discover_step(gw, j, now);
        break;
    default:
        gw_job_free(gw, j);
    }
}

static void s_start_waiting(gateway_t *gw, int64_t now)
{
    bool again = true;
    while (again) {
        again = false;
        for (job_t *j = gw->jobs; j; j = j->next) {
            if (j->kind == JOB_ENSURE && j->waiting && !gw_job_ensure_busy(gw, j)) {
                j->waiting = false;
                gw_job_ensure_pump(gw, j, now);
                again = true; /* the list may have changed */
                break;
            }
        }
    }
}

/* Each bus result to its job (or to telemetry), then the write jobs that were waiting. */
void gw_dispatch_results(gateway_t *gw, int64_t now)
{
    bus_result_t r;
    while (bus_sched_result(gw->sched, &r)) {
        uint32_t jid = (uint32_t)(r.tag >> 16);
        if (jid == TAG_TEL) {
            gw_tel_result(gw, &r, now);
            continue;
        }
        job_t *j = s_job_find(gw, jid);
        if (j)
            s_job_step(gw, j, &r, now);
    }
    s_start_waiting(gw, now);
}

/* ---------------------------------------------------------------------------------------
   Writes due, CURVE handshakes
   --------------------------------------------------------------------------------------- */

/* The configured limits again where they failed, then the writes the EEPROM policy deferred
 * that are due now. */
static void s_check_pending_eeprom(gateway_t *gw, int64_t now)
{
    gw_limits_retry(gw, now);
    for (int a = 0; a < GW_DEV_MAX; a++) {
        gw_dev_t *d = gw->dev[a];
        if (!d || !d->online || !gw->eep[a])
            continue;
        uint16_t cmd;
        uint32_t raw;
        if (!eeprom_policy_due(gw->eep[a], now, &cmd, &raw))
            continue;
        bool busy = false;
        for (job_t *j = gw->jobs; j; j = j->next)
            if (j->kind == JOB_ENSURE && j->addr == a)
                busy = true;
        if (busy)
            continue;
        job_t *j =
            gw_ensure_job_new(gw, NULL, NULL, (uint8_t)a, ENS_PENDING, EEPROM_BY_CONTROL, true);
        if (!j)
            return;
        j->prio = BUS_PRIO_SAFETY;
        gw_job_add_target(j, cmd, (uint16_t)raw, 0xFFFF, false, NULL);
        log_info("device %d: writing the deferred %s %g now", a, gw_reg_name(cmd),
                 gw_raw_value(d, cmd, (int32_t)raw));
        gw_job_start(gw, j, now);
    }
}

/* Answers the CURVE handshakes waiting (ZAP); a refused client is logged, at most once a
 * second under a flood (the others counted in the next line). */
static void s_auth_io(gateway_t *gw, int64_t now)
{
    if (!gw->auth)
        return;
    for (int k = 0; k < 32 && (zsock_events(gw_auth_sock(gw->auth)) & ZMQ_POLLIN); k++) {
        char why[160] = "";
        if (gw_auth_handle(gw->auth, why, sizeof why) != 1)
            continue;
        if (now - gw->auth_log_at < 1000000) {
            gw->auth_quiet++;
            continue;
        }
        if (gw->auth_quiet)
            log_warn("CURVE: refused %s: not in CurveClientsDir or CurveReadOnlyClientsDir "
                     "(and %u more refusals not shown)",
                     why, gw->auth_quiet);
        else
            log_warn("CURVE: refused %s: not in CurveClientsDir or CurveReadOnlyClientsDir", why);
        gw->auth_log_at = now;
        gw->auth_quiet = 0;
    }
}

/* ---------------------------------------------------------------------------------------
   Construction, loop, reload, stop
   --------------------------------------------------------------------------------------- */

/* Telemetry's share of a bus kept busy by clients: a fast set that waited half a telemetry
 * period goes ahead of client requests, so it is done before the next cycle is due (a cycle
 * still busy is skipped) and one fast cycle completes every period; the slow set after
 * TEL_SLOW_AGING periods. Safety and setpoint writes still come first. */
#define TEL_SLOW_AGING 5
static int64_t s_fast_max_wait_us(const settings_t *set)
{
    return (int64_t)set->tel_period_ms * 1000 / 2;
}

static int64_t s_slow_max_wait_us(const settings_t *set)
{
    return (int64_t)set->tel_period_ms * 1000 * TEL_SLOW_AGING;
}

gateway_t *gateway_new(const config_t *cfg, char *err, size_t errlen)
{
    if (gateway_check_config(cfg, err, errlen) < 0)
        return NULL;
    gateway_t *gw = calloc(1, sizeof *gw);
    if (!gw) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int64_t now = mono_us();
    gw->start_us = now;
    gw->lock_fd = -1;
    if (gw_settings_read(cfg, &gw->set, err, errlen) < 0)
        goto fail;
    bus_sched_cfg_t sc;
    bus_sched_cfg_default(&sc);
    sc.period_us += PACING_GUARD_US;
    sc.seen_slack_us = SEEN_SLACK_US;
    sc.write_extra_us = WRITE_GUARD_US;
    sc.bcast_hold_us = BCAST_HOLD_US;
    sc.timeout_us = (int64_t)gw->set.timeout_ms * 1000;
    sc.retries = gw->set.retries;
    sc.max_wait_us[BUS_PRIO_FAST] = s_fast_max_wait_us(&gw->set);
    sc.max_wait_us[BUS_PRIO_SLOW] = s_slow_max_wait_us(&gw->set);
    gw->sched = bus_sched_new(&sc);
    gw->leases = lease_table_new((int64_t)gw->set.lease_max_ttl_s * 1000000);
    if (!gw->sched || !gw->leases) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (gw_persist_load(gw, now, err, errlen) < 0)
        goto fail;
    int configured = 0;
    for (int a = 0; a < GW_DEV_MAX; a++) {
        if (!gw->set.dev[a].present)
            continue;
        configured++;
        if (!gw_dev_add(gw, (uint8_t)a)) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (!configured && !gw->set.discover)
        log_warn("no device to serve: the configuration has no [DEVICE] Id/X block and "
                 "[GATEWAY] Discover = 0; for the unit at CAN address 0 set [DEVICE] Id/0/Type, "
                 "Id/0/ChargeVoltage, Id/0/DischargeVoltage, Id/0/MaxChargeCurrent and "
                 "Id/0/MaxDischargeCurrent (or Discover = 1 to scan addresses 0-7)");
    if (gw->set.state_dir[0])
        gw_lease_restore(gw, now);
    if (gw->set.curve_key[0] && gw->set.curve_clients[0]) {
        /* the handler exists before the CURVE sockets, or they accept every client */
        gw->auth = gw_auth_new(gw->set.curve_clients, gw->set.curve_ro_clients, err, errlen);
        if (!gw->auth)
            goto fail;
        log_info("CURVE: %zu client key(s) allowed, %zu read-only", gw_auth_count(gw->auth, false),
                 gw_auth_count(gw->auth, true));
    } else if (gw->set.curve_key[0]) {
        log_warn("CURVE without CurveClientsDir: every client that knows the server's public "
                 "key is accepted");
    }
    gw->router = gw_bind(ZMQ_ROUTER, gw->set.req_ep, gw->set.curve_key, err, errlen);
    if (!gw->router)
        goto fail;
    gw->router_check = true;
    gw->router_fd = zsock_fd(gw->router);
    gw->pub = gw_bind(ZMQ_PUB, gw->set.pub_ep, gw->set.curve_key, err, errlen);
    if (!gw->pub)
        goto fail;
    if (gw_bus_open(gw, now) < 0) {
        bus_sched_set_up(gw->sched, false, now);
        gw->backoff_us = RECONNECT_MIN_US;
        gw->reconnect_at = now + gw->backoff_us;
    }
    gw->next_tel = now + (int64_t)gw->set.tel_period_ms * 1000;
    gw->next_gw = now;
    return gw;
fail:
    gateway_destroy(&gw);
    return NULL;
}

void gateway_destroy(gateway_t **p)
{
    if (!p || !*p)
        return;
    gateway_t *gw = *p;
    if (gw->state_dirty)
        gw_save_state(gw, mono_us());
    while (gw->jobs)
        gw_job_free(gw, gw->jobs);
    for (int a = 0; a < GW_DEV_MAX; a++) {
        free(gw->dev[a]);
        eeprom_policy_destroy(&gw->eep[a]);
    }
    can_transport_close(&gw->tp);
    gw_adapter_unlock(gw);
    zsock_destroy(&gw->router);
    zsock_destroy(&gw->pub);
    gw_auth_destroy(&gw->auth);
    bus_sched_destroy(&gw->sched);
    lease_table_destroy(&gw->leases);
    free(gw);
    *p = NULL;
}

static int64_t s_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int gateway_poll(gateway_t *gw, int max_wait_ms)
{
    int64_t now = mono_us();
    int64_t dl = now + (int64_t)max_wait_ms * 1000;
    dl = s_min(dl, bus_sched_deadline(gw->sched));
    dl = s_min(dl, gw->next_tel);
    dl = s_min(dl, gw->next_gw);
    dl = s_min(dl, lease_table_deadline(gw->leases));
    if (!gw->tp)
        dl = s_min(dl, gw->reconnect_at);
    if (gw->state_dirty)
        dl = s_min(dl, gw->state_retry_at);
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->eep[a] && gw->dev[a] && gw->dev[a]->online)
            dl = s_min(dl, eeprom_policy_deadline(gw->eep[a]));
    if (gw->stopping)
        dl = s_min(dl, gw->stop_deadline);
    /* the adapter is watched unless its next input is known not to be due yet (rx_defer) */
    int tfd = gw->tp ? can_transport_fd(gw->tp) : -1;
    bool watch = tfd >= 0 && rx_defer_poll(&gw->rxd, &dl);
    int64_t wait_us = dl - now;
    if (wait_us < 0)
        wait_us = 0;
    /* ppoll for microsecond deadlines (the bus pacing is in ms; zmq_poll rounds to whole
     * ms). The ROUTER's ZMQ_FD is edge-triggered: ZMQ_EVENTS is checked before sleeping when
     * the socket was used since its last check, and pending messages mean no sleep. */
    if (gw->router_check) {
        if (zsock_events(gw->router) & ZMQ_POLLIN)
            wait_us = 0;
        else
            gw->router_check = false;
    }
    if (gw->auth && (zsock_events(gw_auth_sock(gw->auth)) & ZMQ_POLLIN))
        wait_us = 0;
    struct pollfd pfd[3];
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = gw->router_fd, .events = POLLIN};
    if (gw->auth)
        pfd[n++] = (struct pollfd){.fd = zsock_fd(gw_auth_sock(gw->auth)), .events = POLLIN};
    int ti = n;
    if (watch)
        pfd[n++] = (struct pollfd){.fd = tfd, .events = POLLIN};
    struct timespec ts = {.tv_sec = (time_t)(wait_us / 1000000),
                          .tv_nsec = (long)(wait_us % 1000000) * 1000};
    int rc = ppoll(pfd, (nfds_t)n, &ts, NULL);
    if (rc < 0 && errno != EINTR) {
        log_error("poll failed: %s", strerror(errno));
        return -1;
    }
    if (rc > 0 && pfd[0].revents)
        gw->router_check = true;
    now = mono_us();
    /* the adapter is read when the poll found it ready, until drained: no read that finds
     * nothing on a wake-up for another cause; and when its deferral ended */
    if (tfd >= 0)
        can_transport_polled(gw->tp, (watch && rc > 0 && pfd[ti].revents != 0) ||
                                         (!watch && rx_defer_due(&gw->rxd, now)));
    gw_lease_check_lapse(gw, now);
    /* bus first: replies are time-critical */
    gw_bus_io(gw, now);
    s_auth_io(gw, now);
    for (int k = 0; k < 32 && gw->router_check; k++) {
        if (!(zsock_events(gw->router) & ZMQ_POLLIN)) {
            gw->router_check = false;
            break;
        }
        zmsg_t *msg = zmsg_recv_nowait(gw->router);
        if (!msg)
            break;
        if (!gw->stopping)
            gw_handle_request(gw, msg, mono_us());
        else
            zmsg_destroy(&msg);
    }
    now = mono_us();
    gw_bus_reconnect(gw, now);
    if (now >= gw->next_tel) {
        gw_tel_cycle(gw, now);
        gw->next_tel += (int64_t)gw->set.tel_period_ms * 1000;
        if (gw->next_tel < now)
            gw->next_tel = now + (int64_t)gw->set.tel_period_ms * 1000;
    }
    if (now >= gw->next_gw) {
        gw_publish_health(gw, now);
        gw->next_gw = now + GW_PUB_PERIOD_US;
    }
    if (!gw->stopping)
        s_check_pending_eeprom(gw, now);
    if (gw->state_dirty && now >= gw->state_retry_at)
        gw_save_state(gw, now);
    gw_bus_io(gw, now);
    if (gw->stopping) {
        bool busy = false;
        for (job_t *j = gw->jobs; j; j = j->next)
            if (j->kind == JOB_ENSURE && j->purpose == ENS_SAFE)
                busy = true;
        if (!busy || now >= gw->stop_deadline)
            gw->stopped = true;
    }
    return 0;
}

int gateway_reload(gateway_t *gw, const config_t *cfg, char *note, size_t notelen)
{
    settings_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(note, notelen, "out of memory");
        return -1;
    }
    if (gateway_check_config(cfg, note, notelen) < 0 ||
        gw_settings_read(cfg, s, note, notelen) < 0) {
        free(s);
        return -1;
    }
    note[0] = '\0';
    if (strcmp(s->can, gw->set.can) || strcmp(s->req_ep, gw->set.req_ep) ||
        strcmp(s->pub_ep, gw->set.pub_ep) || strcmp(s->state_dir, gw->set.state_dir) ||
        strcmp(s->curve_key, gw->set.curve_key)) {
        snprintf(note, notelen,
                 "Can, endpoints, CURVE key and StateDir changes take effect after a restart");
        snprintf(s->can, sizeof s->can, "%s", gw->set.can);
        snprintf(s->req_ep, sizeof s->req_ep, "%s", gw->set.req_ep);
        snprintf(s->pub_ep, sizeof s->pub_ep, "%s", gw->set.pub_ep);
        snprintf(s->state_dir, sizeof s->state_dir, "%s", gw->set.state_dir);
        snprintf(s->curve_key, sizeof s->curve_key, "%s", gw->set.curve_key);
    }
    gw->set = *s;
    free(s);
    bus_sched_set_timing(gw->sched, (int64_t)gw->set.timeout_ms * 1000, gw->set.retries);
    bus_sched_set_max_wait(gw->sched, BUS_PRIO_FAST, s_fast_max_wait_us(&gw->set));
    bus_sched_set_max_wait(gw->sched, BUS_PRIO_SLOW, s_slow_max_wait_us(&gw->set));
    lease_table_set_max_ttl(gw->leases, (int64_t)gw->set.lease_max_ttl_s * 1000000);
    int64_t now = mono_us();
    for (int a = 0; a < GW_DEV_MAX; a++) {
        if (gw->eep[a])
            gw_eep_configure(gw, gw->eep[a], now);
        if (gw->set.dev[a].present && !gw->dev[a])
            gw_dev_add(gw, (uint8_t)a);
        gw_dev_t *d = gw->dev[a];
        if (!d)
            continue;
        d->cfg = gw->set.dev[a];
        d->next_probe = 0; /* a corrected Type or limit is tried at once */
        if (d->identified) {
            /* re-check type and limits against the new config */
            gw_ident_start(gw, d, now);
        }
    }
    return 0;
}

void gateway_begin_stop(gateway_t *gw)
{
    if (gw->stopping)
        return;
    int64_t now = mono_us();
    gw->stopping = true;
    gw->stop_deadline = now + STOP_MAX_US;
    /* answer what is pending with an error: nothing is left unanswered */
    for (job_t *j = gw->jobs; j; j = j->next)
        if (j->env)
            gw_send_reply(gw, &j->env,
                          gw_reply_error(j->req_id, "internal", "gateway is stopping"));
    if (gw->set.safe_on_exit && bus_sched_is_up(gw->sched))
        gw_safe_state_all(gw, "gateway stopping", now);
}

bool gateway_stopped(const gateway_t *gw)
{
    return gw->stopped;
}
