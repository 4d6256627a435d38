/*
 * gateway: the bic-can-gateway service loop (see gateway.h and docs/ipc-protocol.md).
 *
 * Layout of this file: settings from the config; devices and the EEPROM state; jobs (the
 * pending state of requests that need CAN exchanges); bus I/O; telemetry and events; the
 * request handlers; the loop.
 */
#include "gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>
#include <czmq.h>

#include "bic_plan.h"
#include "bic_proto.h"
#include "bus_sched.h"
#include "can_transport.h"
#include "eeprom_policy.h"
#include "gw_auth.h"
#include "gw_device.h"
#include "gw_ensure.h"
#include "gw_request.h"
#include "gw_bind.h"
#include "gw_internal.h"
#include "gw_settings.h"
#include "gw_state.h"
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

static void s_publish(gateway_t *gw, const char *topic, cJSON *body)
{
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text)
        return;
    zsock_send(gw->pub, "ss", topic, text);
    free(text);
}

cJSON *gw_event(const gw_dev_t *d, const char *name)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "v", 1);
    cJSON_AddNumberToObject(e, "dev", d->addr);
    cJSON_AddNumberToObject(e, "ts_ms", (double)gw_wall());
    cJSON_AddStringToObject(e, "event", name);
    return e;
}

void gw_publish_event(gateway_t *gw, const gw_dev_t *d, cJSON *e)
{
    char topic[16];
    snprintf(topic, sizeof topic, "evt/%d", d->addr);
    s_publish(gw, topic, e);
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
static void s_eep_configure(const gateway_t *gw, eeprom_policy_t *e, int64_t now)
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
            s_eep_configure(gw, gw->eep[addr], mono_us());
    }
    return gw->eep[addr];
}

static void s_publish_gw(gateway_t *gw, int64_t now);

/* Saves the counters; a failure keeps them in memory, is reported in `gw` health at once
 * and retried later. */
void gw_save_state(gateway_t *gw, int64_t now)
{
    char err[256];
    if (!gw->state_path[0])
        return;
    if (gw_state_save(gw->state_path, gw->eep, now, gw_wall(), err, sizeof err) < 0) {
        bool news = strcmp(err, gw->state_error) != 0;
        if (news)
            log_error("EEPROM counters not saved (kept in memory, retrying): %s", err);
        snprintf(gw->state_error, sizeof gw->state_error, "%s", err);
        gw->state_failures++;
        gw->state_dirty = true;
        gw->state_retry_at = now + STATE_RETRY_US;
        if (news)
            s_publish_gw(gw, now);
        return;
    }
    gw->state_dirty = false;
    if (gw->state_error[0]) {
        log_info("EEPROM counters saved again to %s", gw->state_path);
        gw->state_error[0] = '\0';
        s_publish_gw(gw, now);
    }
}

_Static_assert(sizeof(((gw_lease_rec_t *)0)->holder) == LEASE_NAME_MAX + 1,
               "a saved holder has the size of a lease name");

/* Keeps the lease file in step with the holders (written when a device's holder changes
 * only, so renewals cost no disk writes). A restarted gateway restores each holder with a
 * full TTL: the holder carries on, or the lease lapses and the safe state follows. */
void gw_lease_persist(gateway_t *gw, int64_t now)
{
    if (!gw->lease_path[0])
        return;
    gw_lease_rec_t rec[GW_LEASE_DEVS];
    bool changed = false;
    for (int a = 0; a < GW_DEV_MAX; a++) {
        const lease_t *l = gw_lease(gw, a);
        const char *h = lease_holder(l, now);
        snprintf(rec[a].holder, sizeof rec[a].holder, "%s", h ? h : "");
        rec[a].ttl_us = h ? lease_ttl(l) : 0;
        if (strcmp(rec[a].holder, gw->lease_saved[a]) != 0)
            changed = true;
    }
    if (!changed)
        return;
    char err[256];
    if (gw_state_save_leases(gw->lease_path, rec, err, sizeof err) < 0) {
        log_warn("lease not saved (a restart forgets it): %s", err);
        return;
    }
    for (int a = 0; a < GW_DEV_MAX; a++)
        memcpy(gw->lease_saved[a], rec[a].holder, sizeof gw->lease_saved[a]);
}

/* ---------------------------------------------------------------------------------------
   Devices
   --------------------------------------------------------------------------------------- */

static gw_dev_t *s_dev_add(gateway_t *gw, uint8_t addr)
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

#define TAG_TEL 0 /* job id 0: telemetry and probes */

/* A device is back after being offline: maybe a power cycle, which replaces RAM-only
 * setpoints with the stored ones. Read the tracked slow-set registers now (the fast set comes
 * with the next cycle); s_ram_check() compares once all of them are fresh. */
static void s_ram_check_start(gateway_t *gw, gw_dev_t *d, int64_t now)
{
    bool any = false;
    for (int s = 0; s < TREG_COUNT; s++)
        any = any || d->ram_set_valid[s];
    if (!any)
        return;
    d->back_at = now;
    for (int s = TREG_FAST_COUNT; s < TREG_COUNT; s++)
        if (d->ram_set_valid[s] && gw_submit(gw, BUS_PRIO_SLOW, d->addr, gw_treg_cmd(s), false, 0,
                                             0, gw_tag(TAG_TEL, s)) == 0)
            d->slow_left++;
}

static void s_set_online(gateway_t *gw, gw_dev_t *d, bool online, const char *reason)
{
    if (!online && reason)
        snprintf(d->offline_reason, sizeof d->offline_reason, "%s", reason);
    if (d->online == online)
        return;
    d->online = online;
    d->fast_busy = false;
    if (online) {
        d->offline_reason[0] = '\0';
        log_info("device %d (%s) online", d->addr, d->model.model);
        if (d->ever_online) {
            s_ram_check_start(gw, d, mono_us());
            /* it may have been power cycled: a write in progress reads its register again */
            for (job_t *j = gw->jobs; j; j = j->next)
                if (j->kind == JOB_ENSURE && j->addr == d->addr && j->ens && !j->waiting)
                    gw_ensure_power_cycled(j->ens);
        }
        d->ever_online = true;
    } else {
        log_warn("device %d offline: %s", d->addr, d->offline_reason);
    }
    cJSON *e = gw_event(d, online ? "online" : "offline");
    if (!online)
        cJSON_AddStringToObject(e, "reason", d->offline_reason);
    gw_publish_event(gw, d, e);
}

/* A request to the device failed after its retries. */
void gw_dev_failed(gateway_t *gw, gw_dev_t *d)
{
    if (++d->fails >= gw->set.offline_after && d->online) {
        char why[96];
        snprintf(why, sizeof why, "no reply to %d requests", d->fails);
        d->identified = false; /* re-read the identity when it answers again */
        s_set_online(gw, d, false, why);
    }
}

static void s_cache(gw_dev_t *d, uint16_t cmd, const bus_result_t *r, int64_t now)
{
    int slot = gw_treg_slot(cmd);
    const bic_cmd_t *c = bic_cmd_by_code(gw_fam(), cmd);
    int32_t raw;
    if (slot < 0 || !c || bic_data_to_raw(c, r->data, r->len, &raw) != BIC_OK)
        return;
    d->cache[slot].valid = true;
    d->cache[slot].raw = raw;
    d->cache[slot].at = now;
}

void gw_cache_raw(gw_dev_t *d, uint16_t cmd, int32_t raw, int64_t now)
{
    int slot = gw_treg_slot(cmd);
    if (slot < 0)
        return;
    d->cache[slot].valid = true;
    d->cache[slot].raw = raw;
    d->cache[slot].at = now;
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
        const bic_cmd_t *c = bic_cmd_by_code(gw_fam(), cmd);
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
static void s_job_pump_reads(gateway_t *gw, job_t *j)
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
        const bic_cmd_t *c = bic_cmd_by_code(gw_fam(), s->cmd);
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
   Identification
   --------------------------------------------------------------------------------------- */

static void s_safe_state_dev(gateway_t *gw, gw_dev_t *d, const char *reason, int64_t now);
static void s_apply_limits(gateway_t *gw, gw_dev_t *d, int64_t now);

static const uint16_t s_ident_regs[] = {
    BIC_CMD_MFR_MODEL_B0B5,       BIC_CMD_MFR_MODEL_B6B11,   BIC_CMD_SCALING_FACTOR,
    BIC_CMD_MFR_REVISION_B0B5,    BIC_CMD_MFR_LOCATION_B0B2, BIC_CMD_MFR_DATE_B0B5,
    BIC_CMD_MFR_SERIAL_B0B5,      BIC_CMD_MFR_SERIAL_B6B11,  BIC_CMD_SYSTEM_CONFIG,
    BIC_CMD_BIDIRECTIONAL_CONFIG, BIC_CMD_READ_FAN_SPEED_1,
};
#define N_IDENT (int)(sizeof s_ident_regs / sizeof s_ident_regs[0])

static void s_start_ident(gateway_t *gw, gw_dev_t *d, int64_t now)
{
    if (d->identifying)
        return;
    job_t *j = gw_job_new(gw, JOB_IDENT, NULL, NULL);
    if (!j)
        return;
    j->addr = d->addr;
    j->prio = BUS_PRIO_CLIENT;
    for (int i = 0; i < N_IDENT; i++)
        gw_job_add_read(j, d->addr, s_ident_regs[i],
                        s_ident_regs[i] == BIC_CMD_READ_FAN_SPEED_1 ? BUS_REQ_NO_RETRY : 0);
    d->identifying = true;
    gw_job_start(gw, j, now);
}

static void s_text(char *out, size_t outlen, const bus_result_t *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len && n + 1 < outlen; i++)
        out[n++] = (r->data[i] >= 0x20 && r->data[i] < 0x7f) ? (char)r->data[i] : ' ';
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

static void s_ident_finish(gateway_t *gw, job_t *j, int64_t now)
{
    gw_dev_t *d = gw->dev[j->addr];
    if (!d)
        return;
    d->identifying = false;
    const bus_result_t *r[N_IDENT];
    for (int i = 0; i < N_IDENT; i++)
        r[i] = &j->rd[i].r;
    if (r[0]->status != BUS_OK || r[1]->status != BUS_OK || r[8]->status != BUS_OK ||
        r[9]->status != BUS_OK) {
        gw_dev_failed(gw, d);
        if (d->online)
            s_set_online(gw, d, false,
                         "identification failed: no reply to MFR_MODEL, "
                         "SYSTEM_CONFIG or BIDIRECTIONAL_CONFIG");
        else
            snprintf(d->offline_reason, sizeof d->offline_reason,
                     "identification failed: no reply");
        return;
    }
    uint8_t b0[6] = {0}, b1[6] = {0};
    memcpy(b0, r[0]->data, r[0]->len > 6 ? 6 : r[0]->len);
    memcpy(b1, r[1]->data, r[1]->len > 6 ? 6 : r[1]->len);
    char why[120];
    bic_model_t m;
    if (bic_model_parse(b0, b1, &m, why, sizeof why) != BIC_OK || m.family != BIC_FAMILY_BIC) {
        char msg[160];
        snprintf(msg, sizeof msg, "not a supported BIC-2200: %s", why);
        d->identified = false;
        d->next_probe = now + IDENT_RETRY_US; /* it will not change by itself soon */
        s_set_online(gw, d, false, msg);
        return;
    }
    if (d->cfg.present && d->cfg.type_variant > 0 && d->cfg.type_variant != m.variant) {
        char msg[160];
        snprintf(msg, sizeof msg, "type mismatch: configured %s, device reports %s", d->cfg.type,
                 m.model);
        d->identified = false;
        d->next_probe = now + IDENT_RETRY_US;
        s_set_online(gw, d, false, msg);
        return;
    }
    d->model = m;
    if (r[2]->status != BUS_OK || bic_scaling_decode(r[2]->data, r[2]->len, &d->scaling) != BIC_OK)
        bic_scaling_fixed(&d->scaling);
    if (r[3]->status == BUS_OK)
        bic_revision_decode(r[3]->data, r[3]->len, &d->revision);
    if (r[4]->status == BUS_OK)
        s_text(d->location, sizeof d->location, r[4]);
    if (r[5]->status == BUS_OK)
        s_text(d->date, sizeof d->date, r[5]);
    char s1[8] = "", s2[8] = "";
    if (r[6]->status == BUS_OK)
        s_text(s1, sizeof s1, r[6]);
    if (r[7]->status == BUS_OK)
        s_text(s2, sizeof s2, r[7]);
    snprintf(d->serial, sizeof d->serial, "%.6s%.6s", s1, s2);
    d->sysconfig = (uint16_t)(r[8]->data[0] | (r[8]->data[1] << 8));
    bic_sysconfig_t sc;
    bic_sysconfig_decode(d->sysconfig, &sc);
    d->can_ctrl = sc.can_ctrl;
    eeprom_policy_set_eep_off(gw_eep(gw, d->addr), sc.eep_off);
    uint16_t bidir = (uint16_t)(r[9]->data[0] | (r[9]->data[1] << 8));
    d->mode = (bidir & 1) ? BIC_MODE_BATTERY : BIC_MODE_AUTO;
    d->mode_pending = false;
    d->fans = r[10]->status == BUS_OK;
    if (d->fans)
        s_cache(d, BIC_CMD_READ_FAN_SPEED_1, r[10], now);
    char err[160];
    if (gw_dev_compute_limits(d, err, sizeof err) < 0) {
        d->identified = false;
        d->next_probe = now + IDENT_RETRY_US;
        s_set_online(gw, d, false, err);
        return;
    }
    d->identified = true;
    d->fails = 0;
    s_set_online(gw, d, true, NULL);
    s_apply_limits(gw, d, now);
    if (d->safe_pending && !lease_holder(gw_lease(gw, d->addr), now))
        s_safe_state_dev(gw, d, d->safe_reason, now);
}

/* ---------------------------------------------------------------------------------------
   Discovery
   --------------------------------------------------------------------------------------- */

cJSON *gw_devices_json(gateway_t *gw)
{
    cJSON *arr = cJSON_CreateArray();
    for (int a = 0; a < GW_DEV_MAX; a++) {
        gw_dev_t *d = gw->dev[a];
        if (!d)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "dev", a);
        cJSON_AddBoolToObject(o, "online", d->online);
        if (d->identified)
            cJSON_AddStringToObject(o, "model", d->model.model);
        else
            cJSON_AddNullToObject(o, "model");
        if (!d->online)
            cJSON_AddStringToObject(o, "reason", d->offline_reason);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static void s_discover_step(gateway_t *gw, job_t *j, int64_t now)
{
    if (j->discover_phase == 0) {
        /* phase 1 done: read the model's second half from every address that answered */
        int answered[JOB_MAX_READS], n = 0;
        for (int i = 0; i < j->nreads; i++)
            if (j->rd[i].r.status == BUS_OK)
                answered[n++] = j->rd[i].addr;
        if (!bus_sched_is_up(gw->sched)) {
            gw_send_reply(gw, &j->env, gw_reply_error(j->req_id, "bus_down", "CAN bus is down"));
            gw_job_free(gw, j);
            return;
        }
        j->discover_phase = 1;
        read_slot_t first[JOB_MAX_READS];
        memcpy(first, j->rd, sizeof first);
        j->nreads = j->next_read = j->reads_left = 0;
        for (int k = 0; k < n; k++)
            gw_job_add_read(j, (uint8_t)answered[k], BIC_CMD_MFR_MODEL_B6B11, 0);
        for (int k = 0; k < n; k++) {
            /* stash the first half in the slot's data until both are in */
            for (int i = 0; i < JOB_MAX_READS; i++)
                if (first[i].addr == answered[k] && first[i].r.status == BUS_OK) {
                    memcpy(j->names[k], first[i].r.data, 6);
                    break;
                }
        }
        if (n > 0) {
            s_job_pump_reads(gw, j);
            if (j->reads_left > 0)
                return;
        }
    }
    for (int k = 0; k < j->nreads; k++) {
        read_slot_t *s = &j->rd[k];
        if (s->r.status != BUS_OK)
            continue;
        uint8_t b0[6], b1[6] = {0};
        memcpy(b0, j->names[k], 6);
        memcpy(b1, s->r.data, s->r.len > 6 ? 6 : s->r.len);
        bic_model_t m;
        if (bic_model_parse(b0, b1, &m, NULL, 0) != BIC_OK || m.family != BIC_FAMILY_BIC)
            continue;
        gw_dev_t *d = gw->dev[s->addr];
        if (!d) {
            d = s_dev_add(gw, s->addr);
            if (d)
                log_info("discovered %s at address %d", m.model, s->addr);
        }
        if (d && !d->online)
            s_start_ident(gw, d, now);
    }
    cJSON *reply = gw_reply_ok(j->req_id);
    cJSON_AddItemToObject(reply, "devices", gw_devices_json(gw));
    gw_send_reply(gw, &j->env, reply);
    gw_job_free(gw, j);
}

/* ---------------------------------------------------------------------------------------
   Job dispatch
   --------------------------------------------------------------------------------------- */

static void s_start_waiting(gateway_t *gw, int64_t now);

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
            s_cache(d, s->cmd, r, now);
        } else if (d && r->status == BUS_TIMEOUT && j->kind == JOB_GET) {
            gw_dev_failed(gw, d);
        }
    }
    s_job_pump_reads(gw, j);
    if (j->reads_left > 0)
        return;
    switch (j->kind) {
    case JOB_GET:
        s_get_finish(gw, j, now);
        gw_job_free(gw, j);
        break;
    case JOB_IDENT:
        s_ident_finish(gw, j, now);
        gw_job_free(gw, j);
        break;
    case JOB_DISCOVER:
        s_discover_step(gw, j, now);
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

/* ---------------------------------------------------------------------------------------
   Telemetry polling and publishing
   --------------------------------------------------------------------------------------- */

#define TEL_PROBE 0x8000

/* {"state":"ok|applying|failed|off|unknown","error":...}: the configured values on the device */
cJSON *gw_limits_state_json(const gateway_t *gw, const gw_dev_t *d)
{
    static const char *names[] = {"unknown", "applying", "ok", "failed"};
    cJSON *o = cJSON_CreateObject();
    bool off = !gw->set.apply_limits || !d->cfg.present;
    cJSON_AddStringToObject(o, "state", off ? "off" : names[d->limits_state]);
    if (!off && d->limits_state == GW_LIMITS_FAILED)
        cJSON_AddStringToObject(o, "error", d->limits_error);
    return o;
}

static void s_publish_tel(gateway_t *gw, gw_dev_t *d, int64_t now)
{
    cJSON *t = gw_dev_telemetry(d, now, gw_wall());
    cJSON *e = cJSON_AddObjectToObject(t, "eeprom");
    gw_eeprom_budget_json(e, gw_eep(gw, d->addr), now);
    cJSON_AddItemToObject(t, "lease", gw_lease_json(gw, d->addr, now));
    cJSON_AddItemToObject(t, "device_limits", gw_limits_state_json(gw, d));
    char topic[16];
    snprintf(topic, sizeof topic, "tel/%d", d->addr);
    s_publish(gw, topic, t);
}

static void s_fault_edges(gateway_t *gw, gw_dev_t *d)
{
    if (!d->cache[TREG_FAULT].valid)
        return;
    uint16_t now_raw = (uint16_t)d->cache[TREG_FAULT].raw;
    uint16_t old = d->fault_known ? d->last_fault : 0;
    d->last_fault = now_raw;
    d->fault_known = true;
    if (now_raw == old)
        return;
    bic_field_t fn[16], fo[16];
    int n = bic_fields(gw_fam(), BIC_CMD_FAULT_STATUS, now_raw, fn, 16);
    bic_fields(gw_fam(), BIC_CMD_FAULT_STATUS, old, fo, 16);
    for (int i = 0; i < n; i++) {
        if (fn[i].value == fo[i].value)
            continue;
        cJSON *e = gw_event(d, fn[i].value ? "fault_on" : "fault_off");
        cJSON_AddStringToObject(e, "fault", fn[i].name);
        gw_publish_event(gw, d, e);
    }
}

/* After a device came back: once every tracked RAM-only setpoint has been read again, the
 * ones that differ were lost (a power-up loads the stored values). The gateway does not
 * write them again by itself; it tells the controller, which holds the lease and decides. */
static void s_ram_check(gateway_t *gw, gw_dev_t *d, int64_t now)
{
    for (int s = 0; s < TREG_COUNT; s++)
        if (d->ram_set_valid[s] && (!d->cache[s].valid || d->cache[s].at < d->back_at))
            return; /* not all read again yet */
    d->back_at = 0;
    cJSON *lost = cJSON_CreateObject();
    int n = 0;
    for (int s = 0; s < TREG_COUNT; s++) {
        if (!d->ram_set_valid[s] || d->cache[s].raw == d->ram_set[s])
            continue;
        uint16_t cmd = gw_treg_cmd(s);
        cJSON *r = cJSON_AddObjectToObject(lost, gw_reg_name(cmd));
        cJSON_AddNumberToObject(r, "was", gw_raw_value(d, cmd, d->ram_set[s]));
        cJSON_AddNumberToObject(r, "now", gw_raw_value(d, cmd, d->cache[s].raw));
        d->ram_set_valid[s] = false; /* the device holds its stored value now */
        n++;
    }
    if (n == 0) {
        cJSON_Delete(lost);
        return;
    }
    const char *holder = lease_holder(gw_lease(gw, d->addr), now);
    log_warn("device %d: %d setpoint(s) held in RAM were lost (power cycle); %s", d->addr, n,
             holder ? "the lease holder is told" : "no lease holder: the stored values stand");
    cJSON *e = gw_event(d, "power_cycled");
    cJSON_AddItemToObject(e, "lost", lost);
    if (holder)
        cJSON_AddStringToObject(e, "holder", holder);
    else
        cJSON_AddNullToObject(e, "holder");
    gw_publish_event(gw, d, e);
}

static void s_tel_result(gateway_t *gw, const bus_result_t *r, int64_t now)
{
    gw_dev_t *d = gw->dev[r->req.addr];
    if (!d)
        return;
    int idx = (int)(r->tag & 0xFFFF);
    if (idx & TEL_PROBE) {
        d->probing = false;
        if (r->status == BUS_OK)
            s_start_ident(gw, d, now);
        return;
    }
    if (r->status == BUS_OK) {
        d->fails = 0;
        s_cache(d, r->req.cmd, r, now);
        if (d->back_at)
            s_ram_check(gw, d, now);
    } else if (r->status == BUS_TIMEOUT) {
        if (r->req.cmd == BIC_CMD_READ_FAN_SPEED_1 || r->req.cmd == BIC_CMD_READ_FAN_SPEED_2)
            ; /* optional register: silence is not a dead device */
        else
            gw_dev_failed(gw, d);
    }
    int slot = gw_treg_slot(r->req.cmd);
    if (slot >= TREG_FAST_COUNT) {
        d->slow_at = now;
        if (d->slow_left > 0)
            d->slow_left--;
        return;
    }
    if (d->fast_left > 0 && --d->fast_left == 0) {
        d->fast_busy = false;
        d->fast_at = now;
        s_fault_edges(gw, d);
        if (d->online)
            s_publish_tel(gw, d, now);
    }
}

static void s_tel_cycle(gateway_t *gw, int64_t now)
{
    bool up = bus_sched_is_up(gw->sched);
    for (int a = 0; a < GW_DEV_MAX; a++) {
        gw_dev_t *d = gw->dev[a];
        if (!d)
            continue;
        if (!up || !d->online) {
            s_publish_tel(gw, d, now);
            if (up && !d->probing && !d->identifying && now >= d->next_probe) {
                /* one cheap read per cycle to notice the device coming back */
                if (gw_submit(gw, BUS_PRIO_SLOW, d->addr, BIC_CMD_MFR_MODEL_B0B5, false, 0,
                              BUS_REQ_NO_RETRY, gw_tag(TAG_TEL, TEL_PROBE)) == 0)
                    d->probing = true;
            }
            continue;
        }
        if (d->fast_busy)
            continue; /* the bus is behind: skip a cycle rather than pile up */
        d->fast_left = 0;
        for (int s = 0; s < TREG_FAST_COUNT; s++)
            if (gw_submit(gw, BUS_PRIO_FAST, d->addr, gw_treg_cmd(s), false, 0, 0,
                          gw_tag(TAG_TEL, s)) == 0)
                d->fast_left++;
        d->fast_busy = d->fast_left > 0;
        /* two slow registers per cycle, round robin; fans only where the firmware has them;
         * none while the last ones still wait (a busy bus would pile them up) */
        for (int k = 0; k < 2 && d->slow_left == 0; k++) {
            int s;
            do {
                s = TREG_FAST_COUNT + d->slow_next;
                d->slow_next = (d->slow_next + 1) % (TREG_COUNT - TREG_FAST_COUNT);
            } while (!d->fans && (s == TREG_FAN1 || s == TREG_FAN2));
            if (gw_submit(gw, BUS_PRIO_SLOW, d->addr, gw_treg_cmd(s), false, 0, 0,
                          gw_tag(TAG_TEL, s)) == 0)
                d->slow_left++;
        }
    }
}

static void s_publish_gw(gateway_t *gw, int64_t now)
{
    const bus_sched_stats_t *st = bus_sched_stats(gw->sched);
    can_transport_stats_t ts = {0};
    if (gw->tp)
        can_transport_stats(gw->tp, &ts);
    cJSON *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(g, "v", 1);
    cJSON_AddNumberToObject(g, "ts_ms", (double)gw_wall());
    cJSON_AddStringToObject(g, "bus", bus_sched_is_up(gw->sched) ? "up" : "down");
    if (!bus_sched_is_up(gw->sched) && gw->bus_error[0])
        cJSON_AddStringToObject(g, "bus_error", gw->bus_error);
    cJSON_AddStringToObject(g, "transport", gw->set.can);
    cJSON_AddNumberToObject(g, "uptime_s", round((now - gw->start_us) / 100000.0) / 10.0);
    cJSON_AddNumberToObject(g, "frames_tx", (double)st->frames_tx);
    cJSON_AddNumberToObject(g, "frames_rx", (double)st->frames_rx);
    cJSON_AddNumberToObject(g, "errors", (double)(ts.errors + ts.error_frames + ts.garbage));
    cJSON_AddNumberToObject(g, "timeouts", (double)st->timeouts);
    cJSON_AddNumberToObject(g, "retries", (double)st->retries);
    cJSON_AddNumberToObject(g, "stray", (double)st->stray);
    cJSON_AddNumberToObject(g, "busy", (double)st->busy);
    cJSON_AddNumberToObject(g, "aged", (double)st->aged);
    cJSON_AddNumberToObject(g, "queue_depth", (double)bus_sched_depth(gw->sched));
    cJSON_AddNumberToObject(g, "reconnects", (double)gw->reconnects);
    /* every held lease, by device */
    cJSON *ls = cJSON_AddArrayToObject(g, "leases");
    for (int a = 0; a < GW_DEV_MAX; a++) {
        const char *h = lease_holder(gw_lease(gw, a), now);
        if (!h)
            continue;
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "dev", a);
        cJSON_AddStringToObject(l, "holder", h);
        cJSON_AddNumberToObject(l, "expires_in_s", gw_lease_left_s(gw, a, now));
        cJSON_AddItemToArray(ls, l);
    }
    cJSON *sf = cJSON_AddObjectToObject(g, "state_file");
    cJSON_AddBoolToObject(sf, "ok", gw->state_error[0] == '\0');
    cJSON_AddStringToObject(sf, "path", gw->state_path);
    if (gw->state_error[0])
        cJSON_AddStringToObject(sf, "error", gw->state_error);
    cJSON_AddNumberToObject(sf, "failures", (double)gw->state_failures);
    s_publish(gw, "gw", g);
}

/* ---------------------------------------------------------------------------------------
   Bus up/down
   --------------------------------------------------------------------------------------- */

static void s_dispatch_results(gateway_t *gw, int64_t now);
static void s_unlock_adapter(gateway_t *gw);

static void s_bus_down(gateway_t *gw, int64_t now, const char *why)
{
    snprintf(gw->bus_error, sizeof gw->bus_error, "%s", why);
    log_error("CAN bus down: %s; reconnecting", why);
    can_transport_close(&gw->tp);
    s_unlock_adapter(gw);
    bus_sched_set_up(gw->sched, false, now);
    for (int a = 0; a < GW_DEV_MAX; a++) {
        gw_dev_t *d = gw->dev[a];
        if (!d)
            continue;
        d->probing = false;
        d->fast_busy = false;
        d->fast_left = 0;
        d->slow_left = 0;
        s_set_online(gw, d, false, "CAN bus down");
    }
    s_dispatch_results(gw, now);
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->dev[a])
            gw->dev[a]->identifying = false;
    gw->backoff_us = RECONNECT_MIN_US;
    gw->reconnect_at = now + gw->backoff_us;
    s_publish_gw(gw, now);
}

/* One gateway per adapter: a second process on the same tty would split the replies, break
 * the pacing and, with its C/S5/O handshake, close the first one's channel. The lock is taken
 * on a descriptor of our own before the transport touches the device (flock locks the device
 * itself, so it also holds when the adapter is reached through different symlinks). */
static int s_lock_adapter(gateway_t *gw, char *err, size_t errlen)
{
    can_transport_spec_t spec;
    if (can_transport_parse_spec(gw->set.can, &spec, err, errlen) < 0 ||
        strcmp(spec.kind, "slcan") != 0)
        return 0;
    int fd = open(spec.path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return 0; /* the transport reports a missing device with a better message */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "%.200s is in use by another process (%s)", spec.path,
                 errno == EWOULDBLOCK ? "locked" : strerror(errno));
        close(fd);
        return -1;
    }
    gw->lock_fd = fd;
    return 0;
}

static void s_unlock_adapter(gateway_t *gw)
{
    if (gw->lock_fd >= 0)
        close(gw->lock_fd);
    gw->lock_fd = -1;
}

static int s_open_transport(gateway_t *gw, int64_t now)
{
    char err[256];
    if (s_lock_adapter(gw, err, sizeof err) < 0) {
        if (strcmp(err, gw->bus_error) != 0)
            log_warn("cannot use CAN transport %s: %s", gw->set.can, err);
        snprintf(gw->bus_error, sizeof gw->bus_error, "%s", err);
        return -1;
    }
    gw->tp = can_transport_open(gw->set.can, err, sizeof err);
    if (!gw->tp)
        s_unlock_adapter(gw);
    if (!gw->tp) {
        if (strcmp(err, gw->bus_error) != 0)
            log_warn("cannot open CAN transport %s: %s", gw->set.can, err);
        snprintf(gw->bus_error, sizeof gw->bus_error, "%s", err);
        return -1;
    }
    gw->bus_error[0] = '\0';
    bus_sched_set_up(gw->sched, true, now);
    /* another process may have used the bus a moment ago (a restart) */
    bus_sched_assume_busy(gw->sched, mono_us());
    log_info("CAN transport %s up", gw->set.can);
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->dev[a])
            s_start_ident(gw, gw->dev[a], now);
    if (gw->set.discover) {
        /* [GATEWAY] Discover: scan 0-7 whenever the bus comes up */
        job_t *j = gw_job_new(gw, JOB_DISCOVER, NULL, NULL);
        if (j) {
            for (int a = 0; a <= 7; a++)
                gw_job_add_read(j, (uint8_t)a, BIC_CMD_MFR_MODEL_B0B5, BUS_REQ_NO_RETRY);
            gw_job_start(gw, j, now);
        }
    }
    return 0;
}

static void s_try_reconnect(gateway_t *gw, int64_t now)
{
    if (gw->tp || now < gw->reconnect_at)
        return;
    if (s_open_transport(gw, now) == 0) {
        gw->reconnects++;
        gw->backoff_us = RECONNECT_MIN_US;
        s_publish_gw(gw, now);
        return;
    }
    gw->backoff_us = gw->backoff_us * 2 > RECONNECT_MAX_US ? RECONNECT_MAX_US : gw->backoff_us * 2;
    gw->reconnect_at = now + gw->backoff_us;
}

/* ---------------------------------------------------------------------------------------
   Bus I/O
   --------------------------------------------------------------------------------------- */

static void s_dispatch_results(gateway_t *gw, int64_t now)
{
    bus_result_t r;
    while (bus_sched_result(gw->sched, &r)) {
        uint32_t jid = (uint32_t)(r.tag >> 16);
        if (jid == TAG_TEL) {
            s_tel_result(gw, &r, now);
            continue;
        }
        job_t *j = s_job_find(gw, jid);
        if (j)
            s_job_step(gw, j, &r, now);
    }
    s_start_waiting(gw, now);
}

static void s_bus_io(gateway_t *gw, int64_t now)
{
    if (gw->tp) {
        can_frame_t fr;
        int rc;
        while ((rc = can_transport_recv(gw->tp, &fr)) == 1) {
            uint32_t id = (fr.ext && !fr.rtr) ? fr.id : 0xFFFFFFFFu;
            int64_t t = mono_us();
            int matched = bus_sched_on_rx(gw->sched, t, id, fr.data, fr.dlc);
            if (log_enabled(BIC_LOG_DEBUG))
                log_debug("rx %lld 0x%08X %02X%02X dlc %d%s", (long long)t, fr.id, fr.data[0],
                          fr.data[1], fr.dlc, matched ? "" : " stray");
        }
        if (rc < 0) {
            char why[256];
            snprintf(why, sizeof why, "%s", can_transport_last_error(gw->tp));
            s_bus_down(gw, now, why[0] ? why : "adapter gone");
            return;
        }
    }
    for (int guard = 0; guard < 4; guard++) {
        now = mono_us();
        bus_req_t tx;
        if (!gw->tp || !bus_sched_tick(gw->sched, now, &tx)) {
            break;
        }
        can_frame_t fr;
        bic_err_t e =
            tx.len
                ? bic_encode_write(gw_fam(), tx.addr, tx.cmd,
                                   tx.len == 1 ? tx.data[0] : (tx.data[0] | (tx.data[1] << 8)), &fr)
                : bic_encode_read(gw_fam(), tx.addr, tx.cmd, &fr);
        if (e != BIC_OK) {
            log_error("cannot encode request 0x%04X for device %d: %s", tx.cmd, tx.addr,
                      bic_strerror(e));
            continue;
        }
        int sent = can_transport_send(gw->tp, &fr);
        int64_t t_sent = mono_us();
        bus_sched_sent(gw->sched, t_sent);
        if (log_enabled(BIC_LOG_DEBUG))
            log_debug("tx %lld (picked %lld) 0x%08X %02X%02X dlc %d", (long long)t_sent,
                      (long long)now, fr.id, fr.data[0], fr.data[1], fr.dlc);
        if (sent < 0) {
            if (can_transport_state(gw->tp) == CAN_TRANSPORT_DOWN) {
                char why[256];
                snprintf(why, sizeof why, "%s", can_transport_last_error(gw->tp));
                s_bus_down(gw, now, why[0] ? why : "adapter gone");
                return;
            }
            log_warn("CAN send refused: %s", can_transport_last_error(gw->tp));
        }
    }
    bus_req_t dummy;
    (void)dummy;
    s_dispatch_results(gw, mono_us());
}

/* ---------------------------------------------------------------------------------------
   Lease lapse and safe state
   --------------------------------------------------------------------------------------- */

/* The writes of mode (can/bic_plan.h) as the job's targets, in the plan's order. */
void gw_job_add_plan(job_t *j, const gw_dev_t *d, bic_plan_mode_t mode, uint16_t current_raw)
{
    bic_plan_args_t a = {.current_raw = current_raw,
                         .charge_min_raw = d->limits.iout.min_raw,
                         .discharge_min_raw = d->limits.rev_iout.min_raw};
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(mode, &a, w);
    for (int i = 0; i < n; i++)
        gw_job_add_target(j, w[i].cmd, w[i].raw, 0xFFFF, false, NULL);
}

void gw_job_add_idle(job_t *j, const gw_dev_t *d, bool min_state)
{
    gw_job_add_plan(j, d, min_state ? BIC_PLAN_IDLE_MIN : BIC_PLAN_IDLE_OFF, 0);
}

/* Applies the safe state to one device now, or, when it cannot be reached, remembers it for
 * when the device is back (a device that missed the lapse must not keep the old setpoint). */
static void s_safe_state_dev(gateway_t *gw, gw_dev_t *d, const char *reason, int64_t now)
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
    gw_job_add_idle(j, d, gw->set.safe_state == SAFE_MIN);
    gw_job_start(gw, j, now);
}

static void s_apply_safe_state(gateway_t *gw, const char *reason, int64_t now)
{
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->dev[a])
            s_safe_state_dev(gw, gw->dev[a], reason, now);
}

/* A lapsed lease puts its own device in the safe state; the other devices carry on. */
static void s_check_lease(gateway_t *gw, int64_t now)
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
        s_safe_state_dev(gw, d, "lease lapsed", now);
    }
    if (any)
        gw_lease_persist(gw, now);
}

/* ---------------------------------------------------------------------------------------
   The configured limits on the device
   --------------------------------------------------------------------------------------- */

/* Brings VOUT_SET and REVERSE_VOUT_SET to the configured [DEVICE] values and IOUT_SET /
 * REVERSE_IOUT_SET within the configured maxima (unchanged values are skipped). A person
 * configured them: at once within the EEPROM budget, the reserve does not apply. */
static void s_apply_limits(gateway_t *gw, gw_dev_t *d, int64_t now)
{
    if (!gw->set.apply_limits || !d->cfg.present || !d->identified || !d->online)
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

static void s_check_pending_eeprom(gateway_t *gw, int64_t now)
{
    for (int a = 0; a < GW_DEV_MAX; a++) {
        gw_dev_t *d = gw->dev[a];
        if (d && d->limits_state == GW_LIMITS_FAILED && now >= d->limits_retry_at)
            s_apply_limits(gw, d, now);
    }
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

/* The EEPROM counters and the leases are saved in StateDir: one that cannot be written is
 * an error at start, not a surprise at the first persisted write. */
static int s_check_state_dir(const char *dir, char *err, size_t errlen)
{
    char probe[512];
    snprintf(probe, sizeof probe, "%s/.write-test-%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen,
                 "[GATEWAY] StateDir '%s' cannot be written (%s): the EEPROM write counters "
                 "and the leases are kept there",
                 dir, strerror(errno));
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

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

/* Restores the leases saved before a restart, each with a full TTL. The single-lease file
 * of earlier versions is the lease of every configured device. */
static void s_lease_restore(gateway_t *gw, int64_t now)
{
    snprintf(gw->lease_path, sizeof gw->lease_path, "%s/%s", gw->set.state_dir, GW_LEASE_FILE);
    gw_lease_rec_t rec[GW_LEASE_DEVS];
    bool every = false;
    char lerr[256];
    int n = gw_state_load_leases(gw->lease_path, rec, &every, lerr, sizeof lerr);
    if (n < 0)
        log_warn("lease file ignored: %s", lerr);
    if (n <= 0)
        return;
    if (every)
        for (int a = 1; a < GW_DEV_MAX; a++)
            rec[a] = gw->dev[a] ? rec[0] : (gw_lease_rec_t){{0}, 0};
    if (every && !gw->dev[0])
        rec[0] = (gw_lease_rec_t){{0}, 0};
    int64_t max = lease_table_max_ttl(gw->leases);
    for (int a = 0; a < GW_DEV_MAX; a++) {
        if (!rec[a].holder[0])
            continue;
        int64_t ttl = rec[a].ttl_us > max ? max : rec[a].ttl_us;
        if (lease_take(gw_lease(gw, a), rec[a].holder, ttl, now) != LEASE_OK)
            continue;
        memcpy(gw->lease_saved[a], rec[a].holder, sizeof gw->lease_saved[a]);
        log_info("control lease of '%s' on device %d restored for %.1f s: it renews or the "
                 "safe state follows",
                 rec[a].holder, a, ttl / 1e6);
    }
    /* an earlier single-lease file is rewritten in the per-device form */
    if (every)
        for (int a = 0; a < GW_DEV_MAX; a++)
            gw->lease_saved[a][0] = '\0';
    gw_lease_persist(gw, now);
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
    if (gw->set.state_dir[0]) {
        mkdir(gw->set.state_dir, 0755);
        if (s_check_state_dir(gw->set.state_dir, err, errlen) < 0)
            goto fail;
        snprintf(gw->state_path, sizeof gw->state_path, "%s/%s", gw->set.state_dir, GW_STATE_FILE);
        char lerr[256];
        int n = gw_state_load(gw->state_path, gw->eep, (int64_t)gw->set.eep_interval_s * 1000000,
                              now, gw_wall(), lerr, sizeof lerr);
        if (n < 0) {
            /* a damaged file must not silently reset the counters to 0 */
            snprintf(err, errlen, "EEPROM state: %s (fix or remove the file)", lerr);
            goto fail;
        }
        if (n > 0)
            log_info("EEPROM write counters of %d device(s) loaded from %s", n, gw->state_path);
        for (int a = 0; a < GW_DEV_MAX; a++)
            if (gw->eep[a])
                s_eep_configure(gw, gw->eep[a], now);
    }
    int configured = 0;
    for (int a = 0; a < GW_DEV_MAX; a++) {
        if (!gw->set.dev[a].present)
            continue;
        configured++;
        if (!s_dev_add(gw, (uint8_t)a)) {
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
        s_lease_restore(gw, now);
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
    gw->pub = gw_bind(ZMQ_PUB, gw->set.pub_ep, gw->set.curve_key, err, errlen);
    if (!gw->pub)
        goto fail;
    if (s_open_transport(gw, now) < 0) {
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
    s_unlock_adapter(gw);
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
    int64_t wait_us = dl - now;
    if (wait_us < 0)
        wait_us = 0;
    /* ppoll for microsecond deadlines (the bus pacing is in ms; zmq_poll rounds to whole
     * ms). The ROUTER's ZMQ_FD is edge-triggered: ZMQ_EVENTS is checked before sleeping
     * and after waking, and pending messages mean no sleep. */
    if (zsock_events(gw->router) & ZMQ_POLLIN)
        wait_us = 0;
    if (gw->auth && (zsock_events(gw_auth_sock(gw->auth)) & ZMQ_POLLIN))
        wait_us = 0;
    struct pollfd pfd[3];
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = zsock_fd(gw->router), .events = POLLIN};
    if (gw->auth)
        pfd[n++] = (struct pollfd){.fd = zsock_fd(gw_auth_sock(gw->auth)), .events = POLLIN};
    int tfd = gw->tp ? can_transport_fd(gw->tp) : -1;
    if (tfd >= 0)
        pfd[n++] = (struct pollfd){.fd = tfd, .events = POLLIN};
    struct timespec ts = {.tv_sec = (time_t)(wait_us / 1000000),
                          .tv_nsec = (long)(wait_us % 1000000) * 1000};
    int rc = ppoll(pfd, (nfds_t)n, &ts, NULL);
    if (rc < 0 && errno != EINTR) {
        log_error("poll failed: %s", strerror(errno));
        return -1;
    }
    now = mono_us();
    s_check_lease(gw, now);
    /* bus first: replies are time-critical */
    s_bus_io(gw, now);
    s_auth_io(gw, now);
    for (int k = 0; k < 32 && (zsock_events(gw->router) & ZMQ_POLLIN); k++) {
        zmsg_t *msg = zmsg_recv_nowait(gw->router);
        if (!msg)
            break;
        if (!gw->stopping)
            gw_handle_request(gw, msg, mono_us());
        else
            zmsg_destroy(&msg);
    }
    now = mono_us();
    s_try_reconnect(gw, now);
    if (now >= gw->next_tel) {
        s_tel_cycle(gw, now);
        gw->next_tel += (int64_t)gw->set.tel_period_ms * 1000;
        if (gw->next_tel < now)
            gw->next_tel = now + (int64_t)gw->set.tel_period_ms * 1000;
    }
    if (now >= gw->next_gw) {
        s_publish_gw(gw, now);
        gw->next_gw = now + GW_PUB_PERIOD_US;
    }
    if (!gw->stopping)
        s_check_pending_eeprom(gw, now);
    if (gw->state_dirty && now >= gw->state_retry_at)
        gw_save_state(gw, now);
    s_bus_io(gw, now);
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
            s_eep_configure(gw, gw->eep[a], now);
        if (gw->set.dev[a].present && !gw->dev[a])
            s_dev_add(gw, (uint8_t)a);
        gw_dev_t *d = gw->dev[a];
        if (!d)
            continue;
        d->cfg = gw->set.dev[a];
        d->next_probe = 0; /* a corrected Type or limit is tried at once */
        if (d->identified) {
            /* re-check type and limits against the new config */
            s_start_ident(gw, d, now);
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
        s_apply_safe_state(gw, "gateway stopping", now);
}

bool gateway_stopped(const gateway_t *gw)
{
    return gw->stopped;
}
