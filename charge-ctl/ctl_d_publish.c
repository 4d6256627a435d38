/*
 * ctl_d_publish: the controller's own MQTT topics: status, availability, fault, command
 * results and Home Assistant discovery. Part of the bic-charge-ctl daemon (ctl_d.h).
 */
#include "ctl_d.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define STATUS_PERIOD_MS 10000 /* status republished at least this often */
#define STATUS_MIN_GAP_MS 1000 /* value-only changes are published at most this often */

int ctld_publish(ctl_daemon_t *d, const char *topic, const char *payload, int qos, bool retain)
{
    if (!mqtt_conn_connected(d->mq))
        return -1;
    int rc = mosquitto_publish(mqtt_conn_mosq(d->mq), NULL, topic, (int)strlen(payload), payload,
                               qos, retain);
    if (rc != MOSQ_ERR_SUCCESS) {
        log_warn("publish %s failed: %s", topic, mosquitto_strerror(rc));
        return -1;
    }
    return 0;
}

ctld_state_t ctld_state(const ctl_daemon_t *d)
{
    if (!d->enabled)
        return CTLD_ST_DISABLED;
    if (d->paused)
        return CTLD_ST_PAUSED;
    if (!d->link.lease_held)
        return CTLD_ST_NO_LEASE;
    switch (d->out.reason) {
    case CTL_R_WAIT_EFFECT:
    case CTL_R_WAIT_SAMPLE:
    case CTL_R_DEADBAND:
    case CTL_R_TRACK:
    case CTL_R_IDLE_ZERO:
    case CTL_R_IDLE_DWELL:
    case CTL_R_DIRECTION_DWELL:
    case CTL_R_RATE_LIMIT:
    case CTL_R_NOT_FOLLOWING:
        return CTLD_ST_RUNNING;
    default:
        return CTLD_ST_SAFE;
    }
}

const char *ctld_reason(const ctl_daemon_t *d, int64_t now)
{
    if (!d->enabled)
        return d->set.can_run ? "disabled" : "controller Type=None/off, or PID without TopicPower";
    if (d->paused && d->resume_on)
        return "state/set 1: resuming once the output is on";
    if (d->paused)
        return "paused: output switched off by state/set 0; state/set 1 or control/set 1 resumes";
    if (!d->link.lease_held && !ctld_tel_alive(d, now))
        return "no telemetry from the gateway";
    if (!d->link.lease_held)
        return d->link.lease_note[0] ? d->link.lease_note : "waiting for the control lease";
    return d->out.reason_text ? d->out.reason_text : "starting";
}

static void s_fill_status(const ctl_daemon_t *d, int64_t now, ctld_status_t *s)
{
    memset(s, 0, sizeof *s);
    s->enabled = d->enabled;
    s->state = d->link.stopping && d->link.stop_done ? CTLD_ST_STOPPED : ctld_state(d);
    s->reason = d->link.stopping && d->link.stop_done ? "program stopped" : ctld_reason(d, now);
    int hour = 0;
    time_t t = time(NULL);
    struct tm tm;
    if (localtime_r(&t, &tm))
        hour = tm.tm_hour;
    s->target_w = d->set.params.hours[hour].grid_offset_w;
    s->meter_valid = d->shown_valid;
    s->meter_w = d->shown_w;
    s->meter_age_s = (double)(now - d->shown_ms) / 1000.0;
    s->meter_stale = ctld_meter_stale(d, now);
    s->meter_errors = d->meter_errors;
    bool commanding = d->link.lease_held && d->link.acked_mode != CTL_MODE_NONE;
    s->sp_mode = ctl_mode_name(commanding ? d->st.mode : CTL_MODE_NONE);
    s->sp_current_a = commanding ? d->st.current_ca / 100.0 : 0;
    s->sp_power_w = commanding ? d->st.power_w : 0;
    s->limit = d->link.lease_held && d->out.limit != CTL_L_NONE ? d->out.limit_text : NULL;
    s->soc_valid = d->out.soc_valid;
    s->soc_pct = d->out.soc_pct;
    s->block_active = d->out.block_active;
    s->block_why = d->out.block_text;
    s->lease_held = d->link.lease_held;
    s->lease_client = d->client;
    s->lease_note = d->link.lease_note[0] ? d->link.lease_note : NULL;
    s->follow_problem = d->out.follow_problem;
    s->follow_safe = d->out.follow_safe;
    s->follow_cause = d->out.follow_problem ? ctl_follow_cause_name(d->out.follow_cause) : NULL;
    s->follow_message = d->out.follow_problem ? d->out.follow_text : NULL;
    s->follow_count = d->out.follow_count;
}

/* The status on change (value-only changes at most once a second) and every 10 s. */
void ctld_publish_status(ctl_daemon_t *d, int64_t now, bool force)
{
    /* A held-back status that has come due is dealt with now, whatever follows: left set
     * in the past, it would make every poll return at once (a busy loop). */
    if (d->status_due && now >= d->status_due)
        d->status_due = 0;
    /* The status topic belongs to the instance that drives the device. Without a
     * connection there is nothing to hold back: the connect publishes everything. */
    if (!mqtt_conn_connected(d->mq) || d->link.standby)
        return;
    /* Within the gap after a publish nothing but a forced status goes out: look again when
     * it ends. (Building the status twice to compare it, on every meter reading, was most of
     * the CPU a reading cost.) */
    if (!force && d->status_key && now - d->status_ms < STATUS_MIN_GAP_MS) {
        if (!d->status_due)
            d->status_due = d->status_ms + STATUS_MIN_GAP_MS;
        return;
    }
    ctld_status_t s;
    s_fill_status(d, now, &s);
    char *json = ctld_status_json(&s);
    s.meter_age_s = 0; /* the age alone is not a change */
    char *key = ctld_status_json(&s);
    if (!json || !key)
        goto cleanup;
    bool changed = !d->status_key || strcmp(key, d->status_key) != 0;
    if (!force && !changed && now - d->status_ms < STATUS_PERIOD_MS)
        goto cleanup;
    if (!force && changed && now - d->status_ms < STATUS_MIN_GAP_MS) {
        d->status_due = d->status_ms + STATUS_MIN_GAP_MS;
        goto cleanup;
    }
    if (ctld_publish(d, d->t_status, json, 0, true) == 0) {
        free(d->status_key);
        d->status_key = key;
        key = NULL;
        d->status_ms = now;
        d->status_due = 0;
    } else if (changed) {
        d->status_due = now + STATUS_MIN_GAP_MS; /* tried again, not at once */
    }
    /* The bridge shows the surplus on the device as the seed's surplusP. */
    if (fabs(d->surplus_w - d->surplus_pub) >= 10 || now - d->surplus_pub_ms >= STATUS_PERIOD_MS) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.0f", d->surplus_w);
        if (ctld_publish(d, d->t_surplus, buf, 0, true) == 0) {
            d->surplus_pub = d->surplus_w;
            d->surplus_pub_ms = now;
        }
    }
    /* The bridge shows the controller's SOC on the device (<T>/ctl/<id>/soc). */
    if (s.soc_valid && (!d->soc_pub_valid || fabs(s.soc_pct - d->soc_pub) >= 0.1 ||
                        now - d->soc_ms >= STATUS_PERIOD_MS)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.1f", s.soc_pct);
        if (ctld_publish(d, d->t_soc, buf, 0, true) == 0) {
            d->soc_pub_valid = true;
            d->soc_pub = s.soc_pct;
            d->soc_ms = now;
        }
    }
cleanup:
    free(json);
    free(key);
}

/* Discovery on, or (HaDiscovery=0) empty retained configs that remove what an earlier run
 * published. */
static void s_publish_discovery(ctl_daemon_t *d)
{
    if (!mqtt_conn_connected(d->mq))
        return;
    ctld_ha_ctx_t ctx = {.prefix = d->set.site.ha_prefix,
                         .topic_main = d->set.site.topic_main,
                         .node = d->node,
                         .avail_online = d->set.site.pl_online,
                         .avail_offline = d->set.site.pl_offline,
                         .sw_version = BIC_VERSION,
                         .dev = d->set.id};
    ctld_switch_t sw[SURPLUS_MAX_SWITCHES];
    for (size_t i = 0; i < d->set.surplus.n; i++)
        sw[i] = (ctld_switch_t){.num = d->set.surplus.sw[i].num,
                                .topic = d->set.surplus.sw[i].topic,
                                .name = d->set.surplus.sw[i].name};
    ctx.switches = sw;
    ctx.n_switches = d->set.surplus.n;
    ctx.group = d->set.group.dev;
    ctx.group_gw = d->set.group.gw;
    ctx.n_group = d->set.group.n;
    ctld_list_t list = {0};
    if (ctld_disc_msgs(&ctx, &list) != 0) {
        log_error("cannot build the discovery messages (out of memory)");
    } else {
        for (size_t i = 0; i < list.count; i++)
            ctld_publish(d, list.msgs[i].topic,
                         d->set.site.ha_discovery ? list.msgs[i].payload : "", 1, true);
        if (d->set.site.ha_discovery)
            log_info("published %zu discovery entities", list.count);
    }
    ctld_list_clear(&list);
}

/* The fault topic (retained): on every change of the device-follows problem, and on
 * connect. */
void ctld_publish_fault(ctl_daemon_t *d, bool force)
{
    bool active = d->out.follow_problem;
    ctl_follow_cause_t cause = active ? d->out.follow_cause : CTL_F_NONE;
    if (!force && d->fault_pub_valid && d->fault_pub_active == active &&
        d->fault_pub_cause == cause)
        return;
    if (d->link.standby || !mqtt_conn_connected(d->mq))
        return;
    char *json = ctld_fault_json(active, d->out.follow_count, ctl_follow_cause_name(cause),
                                 d->out.follow_text);
    if (json && ctld_publish(d, d->t_fault, json, 1, true) == 0) {
        d->fault_pub_valid = true;
        d->fault_pub_active = active;
        d->fault_pub_cause = cause;
    }
    free(json);
}

/* Everything, in Home Assistant's preferred order: discovery, availability, state. */
void ctld_publish_all(ctl_daemon_t *d, int64_t now)
{
    s_publish_discovery(d);
    ctld_publish(d, d->t_avail, d->set.site.pl_online, 1, true);
    d->soc_pub_valid = false;
    ctld_publish_status(d, now, true);
    ctld_publish_fault(d, true);
    ctld_publish_group(d, now, true);
    if (!d->link.standby)
        ctld_publish_switches(d); /* also after a restart: no load stays on by an old message */
}

/* Logs state transitions; a changed state or reason is published at once. */
void ctld_note_state(ctl_daemon_t *d, int64_t now)
{
    ctld_state_t st = ctld_state(d);
    const char *why = ctld_reason(d, now);
    bool state_changed = st != d->last_state;
    bool reason_changed = strcmp(why, d->last_reason) != 0;
    if (!state_changed && !reason_changed)
        return;
    if (state_changed) {
        if (st == CTLD_ST_SAFE || (st == CTLD_ST_NO_LEASE && d->enabled))
            log_warn("controller %s: %s", ctld_state_name(st), why);
        else
            log_info("controller %s: %s", ctld_state_name(st), why);
    } else {
        log_debug("controller %s: %s", ctld_state_name(st), why);
    }
    d->last_state = st;
    ctl_copy_text(d->last_reason, sizeof d->last_reason, why);
    ctld_publish_status(d, now, state_changed);
}

/* A standby instance follows the commands (it takes over in the state the user chose) but
 * leaves the answer to the instance that drives the device. */
void ctld_publish_result(ctl_daemon_t *d, bool ok, const char *request, const char *code,
                         const char *msg)
{
    if (d->link.standby)
        return;
    char *p = ctld_result_json(ok, request, d->enabled, code, msg);
    if (p)
        ctld_publish(d, d->t_result, p, 1, false);
    free(p);
}
