/*
 * gw_discover: which devices are there: a device's online state (and the event for it), its
 * identification (identity, scaling, firmware, configuration and the effective limits) and
 * the scan of the bus for devices (discover, [GATEWAY] Discover).
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "bic_proto.h"
#include "gw_internal.h"
#include "gw_npb.h"
#include "lease.h"
#include "log.h"
#include "monotime.h"

void gw_set_online(gateway_t *gw, gw_dev_t *d, bool online, const char *reason)
{
    if (!online && reason)
        snprintf(d->offline_reason, sizeof d->offline_reason, "%.*s",
                 (int)sizeof d->offline_reason - 1, reason);
    if (d->online == online)
        return;
    d->online = online;
    d->fast_busy = false;
    /* away and back, maybe power cycled onto its stored values: what was read before is not
     * known any more (gw_dev_known) */
    d->known_since = mono_us();
    if (online) {
        d->offline_reason[0] = '\0';
        log_info("device %d (%s) online", d->addr, d->model.model);
        if (d->ever_online) {
            gw_ram_check_start(gw, d, mono_us());
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
        gw_set_online(gw, d, false, why);
    }
}

static const uint16_t s_ident_regs[] = {
    BIC_CMD_MFR_MODEL_B0B5,       BIC_CMD_MFR_MODEL_B6B11,   BIC_CMD_SCALING_FACTOR,
    BIC_CMD_MFR_REVISION_B0B5,    BIC_CMD_MFR_LOCATION_B0B2, BIC_CMD_MFR_DATE_B0B5,
    BIC_CMD_MFR_SERIAL_B0B5,      BIC_CMD_MFR_SERIAL_B6B11,  BIC_CMD_SYSTEM_CONFIG,
    BIC_CMD_BIDIRECTIONAL_CONFIG, BIC_CMD_READ_FAN_SPEED_1,
};

#define N_IDENT (int)(sizeof s_ident_regs / sizeof s_ident_regs[0])

void gw_ident_start(gateway_t *gw, gw_dev_t *d, int64_t now)
{
    if (d->identifying)
        return;
    job_t *j = gw_job_new(gw, JOB_IDENT, NULL, NULL);
    if (!j)
        return;
    j->addr = d->addr;
    j->prio = BUS_PRIO_CLIENT;
    for (int i = 0; i < N_IDENT; i++)
        gw_job_add_read(j, d->addr,
                        GW_DEV_IS_NPB(d->addr) ? gw_npb_ident_cmd(s_ident_regs[i])
                                               : s_ident_regs[i],
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

void gw_ident_finish(gateway_t *gw, job_t *j, int64_t now)
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
            gw_set_online(gw, d, false,
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
    bool npb = GW_DEV_IS_NPB(d->addr);
    if (npb) {
        char msg[400];
        if (gw_npb_identify(d, b0, b1, msg, sizeof msg) < 0) {
            d->identified = false;
            d->next_probe = now + IDENT_RETRY_US;
            gw_set_online(gw, d, false, msg);
            return;
        }
        m = d->model;
    } else if (bic_model_parse(b0, b1, &m, why, sizeof why) != BIC_OK ||
               m.family != BIC_FAMILY_BIC) {
        char msg[160];
        snprintf(msg, sizeof msg, "not a supported BIC-2200: %s", why);
        d->identified = false;
        d->next_probe = now + IDENT_RETRY_US; /* it will not change by itself soon */
        gw_set_online(gw, d, false, msg);
        return;
    }
    if (!npb && d->cfg.present && d->cfg.type_variant > 0 && d->cfg.type_variant != m.variant) {
        char msg[160];
        snprintf(msg, sizeof msg, "type mismatch: configured %s, device reports %s", d->cfg.type,
                 m.model);
        d->identified = false;
        d->next_probe = now + IDENT_RETRY_US;
        gw_set_online(gw, d, false, msg);
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
    d->mode = (bidir & 1) || npb ? BIC_MODE_BATTERY : BIC_MODE_AUTO;
    d->mode_pending = false;
    d->fans = !npb && r[10]->status == BUS_OK;
    if (d->fans)
        gw_cache_result(d, BIC_CMD_READ_FAN_SPEED_1, r[10], now);
    if (npb) { /* its mode (CURVE_CONFIG) and charge stage */
        gw_cache_result(d, NPB_CMD_CURVE_CONFIG, r[9], now);
        if (r[10]->status == BUS_OK)
            gw_cache_result(d, NPB_CMD_CHG_STATUS, r[10], now);
    }
    char err[160];
    if (gw_dev_compute_limits(d, err, sizeof err) < 0) {
        d->identified = false;
        d->next_probe = now + IDENT_RETRY_US;
        gw_set_online(gw, d, false, err);
        return;
    }
    d->identified = true;
    d->fails = 0;
    gw_set_online(gw, d, true, NULL);
    gw_limits_apply(gw, d, now);
    if (d->safe_pending && !lease_holder(gw_lease(gw, d->addr), now))
        gw_safe_state_dev(gw, d, d->safe_reason, now);
}

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

void gw_discover_step(gateway_t *gw, job_t *j, int64_t now)
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
            gw_job_pump_reads(gw, j);
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
        bic_family_id_t want = GW_DEV_IS_NPB(s->addr) ? BIC_FAMILY_NPB : BIC_FAMILY_BIC;
        if (bic_model_parse(b0, b1, &m, NULL, 0) != BIC_OK || m.family != want)
            continue;
        gw_dev_t *d = gw->dev[s->addr];
        if (!d) {
            d = gw_dev_add(gw, s->addr);
            if (d)
                log_info("discovered %s at address %d", m.model, s->addr);
        }
        if (d && !d->online)
            gw_ident_start(gw, d, now);
    }
    cJSON *reply = gw_reply_ok(j->req_id);
    cJSON_AddItemToObject(reply, "devices", gw_devices_json(gw));
    gw_send_reply(gw, &j->env, reply);
    gw_job_free(gw, j);
}
