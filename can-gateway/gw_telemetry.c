/*
 * gw_telemetry: the telemetry cycle: the fast set every TelemetryPeriodMs and the slow set
 * round robin, the register cache, a probe of an offline device, the tel/<dev> message, the
 * fault edges as events and the check for RAM-only setpoints lost in a power cycle.
 */
#include <stdio.h>

#include <cJSON.h>

#include "bic_proto.h"
#include "gw_internal.h"
#include "gw_npb.h"
#include "lease.h"
#include "log.h"

/* A device is back after being offline: maybe a power cycle, which replaces RAM-only
 * setpoints with the stored ones. Read the tracked slow-set registers now (the fast set comes
 * with the next cycle); s_ram_check() compares once all of them are fresh. */
void gw_ram_check_start(gateway_t *gw, gw_dev_t *d, int64_t now)
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

void gw_cache_result(gw_dev_t *d, uint16_t cmd, const bus_result_t *r, int64_t now)
{
    int slot = gw_treg_slot(cmd);
    const bic_cmd_t *c = gw_dev_cmd(d->addr, cmd);
    int32_t raw;
    if (slot < 0 || !c || bic_data_to_raw(c, r->data, r->len, &raw) != BIC_OK)
        return;
    d->cache[slot].valid = true;
    d->cache[slot].raw = raw;
    d->cache[slot].at = now;
    d->cache[slot].written = false;
}

void gw_cache_raw(gw_dev_t *d, uint16_t cmd, int32_t raw, int64_t now)
{
    int slot = gw_treg_slot(cmd);
    if (slot < 0)
        return;
    d->cache[slot].valid = true;
    d->cache[slot].raw = raw;
    d->cache[slot].at = now;
    d->cache[slot].written = false;
}

#define TEL_PROBE 0x8000

static void s_publish_tel(gateway_t *gw, gw_dev_t *d, int64_t now)
{
    cJSON *t = gw_dev_telemetry(d, now, gw_wall());
    /* its period, so a client knows when its silence means something (each gateway has its
     * own) */
    cJSON_AddNumberToObject(t, "period_ms", gw->set.tel_period_ms);
    cJSON *e = cJSON_AddObjectToObject(t, "eeprom");
    gw_eeprom_budget_json(e, gw_eep(gw, d->addr), now);
    cJSON_AddItemToObject(t, "lease", gw_lease_json(gw, d->addr, now));
    cJSON_AddItemToObject(t, "device_limits", gw_limits_state_json(gw, d));
    char topic[16];
    snprintf(topic, sizeof topic, "tel/%d", d->addr);
    gw_publish(gw, topic, t);
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
    int n = bic_fields(gw_dev_family(d->addr), BIC_CMD_FAULT_STATUS, now_raw, fn, 16);
    bic_fields(gw_dev_family(d->addr), BIC_CMD_FAULT_STATUS, old, fo, 16);
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

void gw_tel_result(gateway_t *gw, const bus_result_t *r, int64_t now)
{
    gw_dev_t *d = gw->dev[r->req.addr];
    if (!d)
        return;
    int idx = (int)(r->tag & 0xFFFF);
    if (idx & TEL_PROBE) {
        d->probing = false;
        if (r->status == BUS_OK)
            gw_ident_start(gw, d, now);
        return;
    }
    if (r->status == BUS_OK) {
        d->fails = 0;
        gw_cache_result(d, r->req.cmd, r, now);
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

void gw_tel_cycle(gateway_t *gw, int64_t now)
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
            if (gw_npb_slot_applies(d, s) && gw_submit(gw, BUS_PRIO_FAST, d->addr, gw_treg_cmd(s),
                                                       false, 0, 0, gw_tag(TAG_TEL, s)) == 0)
                d->fast_left++;
        d->fast_busy = d->fast_left > 0;
        /* two slow registers per cycle, round robin; fans only where the firmware has them;
         * none while the last ones still wait (a busy bus would pile them up) */
        for (int k = 0; k < 2 && d->slow_left == 0; k++) {
            int s;
            do {
                s = TREG_FAST_COUNT + d->slow_next;
                d->slow_next = (d->slow_next + 1) % (TREG_COUNT - TREG_FAST_COUNT);
            } while (!gw_npb_slot_applies(d, s));
            if (gw_submit(gw, BUS_PRIO_SLOW, d->addr, gw_treg_cmd(s), false, 0, 0,
                          gw_tag(TAG_TEL, s)) == 0)
                d->slow_left++;
        }
    }
}
