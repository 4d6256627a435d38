/*
 * ctl_daemon: the bic-charge-ctl service loop. See ctl_daemon.h for the contract and
 * docs/charge-ctl.md ("The daemon") for every topic it publishes and serves.
 *
 * One thread, one zmq_poll over three things: the MQTT socket (common/mqtt_conn: fetched
 * afresh each pass, POLLOUT only when libmosquitto wants to write, reconnects with back-off),
 * the gateway's PUB via SUB and the REQ socket of the asynchronous gateway client. At most
 * one gateway request is in flight; what to send next is decided from state (setpoint to
 * send, lease to take, renew or release), so a newer setpoint simply replaces an unsent one.
 */
#include "ctl_daemon.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <czmq.h>
#include <mosquitto.h>

#include "ctl_follow.h"
#include "ctl_link.h"
#include "ctl_d_mqtt.h"
#include "ctl_step.h"
#include "gw_client.h"
#include "log.h"
#include "meter.h"
#include "surplus.h"
#include "winter.h"
#include "monotime.h"
#include "mqtt_conn.h"
#include "numconv.h"
#include "sdnotify.h"
#include "sigflag.h"

#define STEP_PERIOD_MS 1000    /* the step also runs without meter samples (staleness) */
#define STATUS_PERIOD_MS 10000 /* status republished at least this often */
#define STATUS_MIN_GAP_MS 1000 /* value-only changes are published at most this often */
#define BAD_LOG_EVERY_MS 60000 /* rejected meter payloads: one line per minute at most */
#define FLUSH_MS 1500

typedef struct {
    /* MQTT */
    char topic_main[256];
    char ha_prefix[256];
    char ha_status[256];
    bool ha_discovery;
    char pl_online[65];
    char pl_offline[65];
    mqtt_conn_cfg_t mqtt; /* broker, credentials, TLS */
    char client_id[160];
    /* controller */
    int id;       /* the device driven: the first [CHARGE_CONTROL] Id/X */
    size_t n_ids; /* how many Id/X the section has */
    char topic_power[512];
    bool can_run;     /* Type is not off and there is a meter topic */
    bool disable_min; /* control/set 0 leaves the output on at the minimum charge current */
    bool winter;      /* Type=Winter: the Winter mode instead of the grid-balance step */
    winter_params_t winter_p;
    bool enable_at_start;
    meter_cfg_t meter;
    ctl_params_t params;
    int lease_ttl_s;
    int tel_silence_ms;    /* device treated as unreachable after this without telemetry */
    surplus_cfg_t surplus; /* [SURPLUS_SWITCH] of the device */
} settings_t;

struct ctl_daemon_t {
    settings_t set;
    char *config_path;
    char node[256];
    char client[48]; /* name towards the gateway (lease holder) */
    char t_status[600], t_avail[600], t_cmd[600], t_result[640], t_soc[600], t_fault[600],
        t_surplus[600];

    mqtt_conn_t *mq;
    int offline_mid;
    bool offline_acked;

    gw_client_t *gw;
    zsock_t *sub;
    ctl_link_t link; /* lease, setpoints, info and the stop sequence towards the gateway */

    bool enabled; /* runtime enable (config Enable, then control/set) */
    ctl_state_t st;
    ctl_output_t out;
    int64_t next_step;

    /* meter */
    bool meter_valid; /* a fresh (not retained) sample was accepted */
    double meter_w;
    int64_t meter_ms;
    uint64_t meter_seq;
    bool shown_valid; /* for the status: the latest accepted value, retained ones included */
    double shown_w;
    int64_t shown_ms;
    uint64_t meter_errors;
    uint64_t bad_unlogged;
    int64_t bad_log_ms;
    bool retained_logged;

    /* telemetry */
    bool tel_seen;
    bool tel_was_alive; /* for logging the transitions */
    int64_t tel_ms;
    bool tel_online;
    bool tel_valid;
    double dc_v, dc_a;
    bool fault_any; /* a protection fault is active */
    int operation, direction, iout_ca, rev_iout_ca;
    int vout_cv, rev_vout_cv; /* voltage settings read back (V x 100), -1 unknown */
    bool temp_valid;
    double temp_c;
    int fault_raw;
    int64_t sp_age_ms;

    bool info_done;

    /* publishing */
    char *status_key;
    int64_t status_ms;
    int64_t status_due; /* 0: nothing waiting */
    double eep_tokens;     /* the gateway's EEPROM budget left at its last info (-1: unknown) */
    int64_t eep_tokens_ms; /* when that info came */
    bool soc_pub_valid;
    double soc_pub;
    int64_t soc_ms;
    int64_t surplus_pub_ms;
    double surplus_pub;
    int64_t republish_at;

    winter_state_t winter; /* Type=Winter */
    winter_output_t winter_out;

    /* surplus switches */
    double surplus_w;   /* W the battery could not take (the seed's surplusP) */
    surplus_state_t sw; /* the switches' states */
    ctld_state_t last_state;
    char last_reason[160];
    /* the device-follows problem as last logged and published */
    bool follow_logged, follow_safe_logged;
    bool fault_pub_valid, fault_pub_active;
    ctl_follow_cause_t fault_pub_cause;
};

/* ---------------------------------------------------------------- settings */

/* Copies src into dst[n], cut to fit: reasons and notes that quote the gateway's messages
 * may be longer than the fields that show them, and a shortened text is what is wanted.
 * (Not snprintf: at higher optimisation levels the compiler sees the longer sources inlined
 * and warns about the intended truncation.) */
static void s_copy(char *dst, size_t n, const char *src)
{
    if (!n)
        return;
    size_t len = src ? strnlen(src, n - 1) : 0;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

static int s_settings(const config_t *cfg, settings_t *s, char *err, size_t n)
{
    memset(s, 0, sizeof *s);
    const char *cc = "CHARGE_CONTROL";
    s_copy(s->topic_main, sizeof s->topic_main, config_str(cfg, "MQTT", "TopicMain"));
    s_copy(s->ha_prefix, sizeof s->ha_prefix, config_str(cfg, "MQTT", "HaPrefix"));
    s_copy(s->ha_status, sizeof s->ha_status, config_str(cfg, "MQTT", "HaStatusTopic"));
    s->ha_discovery = config_bool(cfg, "MQTT", "HaDiscovery");
    s_copy(s->pl_online, sizeof s->pl_online, config_str(cfg, "MQTT", "StatePayloadOnline"));
    s_copy(s->pl_offline, sizeof s->pl_offline, config_str(cfg, "MQTT", "StatePayloadOffline"));
    if (!s->topic_main[0]) {
        snprintf(err, n, "[MQTT] TopicMain is empty");
        return -1;
    }
    if (mqtt_conn_cfg_from_config(cfg, &s->mqtt, err, n) != 0)
        return -1;

    int ids[CONFIG_MAX_IDS];
    s->n_ids = config_ids(cfg, cc, ids, CONFIG_MAX_IDS);
    if (s->n_ids == 0) {
        snprintf(err, n,
                 "[CHARGE_CONTROL] has no Id/X/ keys: there is no device to control "
                 "(set at least Id/X/TopicPower for the device X to drive)");
        return -1;
    }
    s->id = ids[0];
    char perr[512];
    if (ctl_params_from_config(cfg, s->id, &s->params, perr, sizeof perr) != 0) {
        snprintf(err, n, "[CHARGE_CONTROL] Id/%d: %s", s->id, perr);
        return -1;
    }
    if (meter_cfg_from_config(cfg, s->id, &s->meter, err, n) != 0)
        return -1;
    if (surplus_cfg_from_config(cfg, s->id, &s->surplus, err, n) != 0)
        return -1;
    s_copy(s->topic_power, sizeof s->topic_power, config_str(cfg, cc, "Id/%d/TopicPower", s->id));
    const char *type = config_str(cfg, cc, "Id/%d/Type", s->id);
    /* Winter runs without a meter. */
    s->winter = strcasecmp(type, "Winter") == 0;
    winter_params_from_config(cfg, s->id, &s->winter_p);
    s->can_run = (strcasecmp(type, "PID") == 0 && s->topic_power[0] != '\0') || s->winter;
    s->enable_at_start = s->can_run && config_bool(cfg, cc, "Id/%d/Enable", s->id);
    s->disable_min = strcmp(config_str(cfg, cc, "Id/%d/DisableState", s->id), "min") == 0;
    /* The runtime switch (config Enable, then control/set) decides; the step only needs to
     * know whether this controller may run at all. */
    s->params.enabled = s->can_run;
    s->lease_ttl_s = (int)config_int(cfg, cc, "Id/%d/LeaseTtlSec", s->id);
    int tel_ms = (int)config_int(cfg, "GATEWAY", "TelemetryPeriodMs");
    s->tel_silence_ms = tel_ms * 5 > 3000 ? tel_ms * 5 : 3000;

    /* The pid keeps a replacement instance from taking over the older one's broker session
     * (same client id: the broker would disconnect one of them, back and forth). */
    char suffix[48];
    snprintf(suffix, sizeof suffix, "ctl%d-%ld", s->id, (long)getpid());
    mqtt_client_id(config_str(cfg, "MQTT", "AppId"), suffix, s->client_id, sizeof s->client_id);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static int s_publish(ctl_daemon_t *d, const char *topic, const char *payload, int qos, bool retain)
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

/* The gateway's telemetry arrives: the controller can see what the device does. Without it
 * the controller neither takes nor renews the lease, so a gateway whose PUB side is dead
 * ends in its own safe state rather than in a setpoint nobody watches. */
static bool s_tel_alive(const ctl_daemon_t *d, int64_t now)
{
    return d->tel_seen && now - d->tel_ms <= d->set.tel_silence_ms;
}

static bool s_device_reachable(const ctl_daemon_t *d, int64_t now)
{
    return d->tel_seen && d->tel_online && now - d->tel_ms <= d->set.tel_silence_ms;
}

static bool s_meter_stale(const ctl_daemon_t *d, int64_t now)
{
    return !d->meter_valid || now - d->meter_ms > d->set.params.meter_timeout_ms;
}

static ctld_state_t s_state(const ctl_daemon_t *d)
{
    if (!d->enabled)
        return CTLD_ST_DISABLED;
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

static const char *s_reason(const ctl_daemon_t *d, int64_t now)
{
    if (!d->enabled)
        return d->set.can_run ? "disabled" : "controller Type=None/off, or PID without TopicPower";
    if (!d->link.lease_held && !s_tel_alive(d, now))
        return "no telemetry from the gateway";
    if (!d->link.lease_held)
        return d->link.lease_note[0] ? d->link.lease_note : "waiting for the control lease";
    return d->out.reason_text ? d->out.reason_text : "starting";
}

/* ---------------------------------------------------------------- publishing */

static void s_fill_status(const ctl_daemon_t *d, int64_t now, ctld_status_t *s)
{
    memset(s, 0, sizeof *s);
    s->enabled = d->enabled;
    s->state = d->link.stopping && d->link.stop_done ? CTLD_ST_STOPPED : s_state(d);
    s->reason = d->link.stopping && d->link.stop_done ? "program stopped" : s_reason(d, now);
    int hour = 0;
    time_t t = time(NULL);
    struct tm tm;
    if (localtime_r(&t, &tm))
        hour = tm.tm_hour;
    s->target_w = d->set.params.hours[hour].grid_offset_w;
    s->meter_valid = d->shown_valid;
    s->meter_w = d->shown_w;
    s->meter_age_s = (double)(now - d->shown_ms) / 1000.0;
    s->meter_stale = s_meter_stale(d, now);
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
static void s_publish_status(ctl_daemon_t *d, int64_t now, bool force)
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
    if (s_publish(d, d->t_status, json, 0, true) == 0) {
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
        if (s_publish(d, d->t_surplus, buf, 0, true) == 0) {
            d->surplus_pub = d->surplus_w;
            d->surplus_pub_ms = now;
        }
    }
    /* The bridge shows the controller's SOC on the device (<T>/ctl/<id>/soc). */
    if (s.soc_valid && (!d->soc_pub_valid || fabs(s.soc_pct - d->soc_pub) >= 0.1 ||
                        now - d->soc_ms >= STATUS_PERIOD_MS)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.1f", s.soc_pct);
        if (s_publish(d, d->t_soc, buf, 0, true) == 0) {
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
    ctld_ha_ctx_t ctx = {.prefix = d->set.ha_prefix,
                         .topic_main = d->set.topic_main,
                         .node = d->node,
                         .avail_online = d->set.pl_online,
                         .avail_offline = d->set.pl_offline,
                         .sw_version = BIC_VERSION,
                         .dev = d->set.id};
    ctld_switch_t sw[SURPLUS_MAX_SWITCHES];
    for (size_t i = 0; i < d->set.surplus.n; i++)
        sw[i] = (ctld_switch_t){.num = d->set.surplus.sw[i].num,
                                .topic = d->set.surplus.sw[i].topic,
                                .name = d->set.surplus.sw[i].name};
    ctx.switches = sw;
    ctx.n_switches = d->set.surplus.n;
    ctld_list_t list = {0};
    if (ctld_disc_msgs(&ctx, &list) != 0) {
        log_error("cannot build the discovery messages (out of memory)");
    } else {
        for (size_t i = 0; i < list.count; i++)
            s_publish(d, list.msgs[i].topic, d->set.ha_discovery ? list.msgs[i].payload : "", 1,
                      true);
        if (d->set.ha_discovery)
            log_info("published %zu discovery entities", list.count);
    }
    ctld_list_clear(&list);
}

/* The fault topic (retained): on every change of the device-follows problem, and on
 * connect. */
static void s_publish_fault(ctl_daemon_t *d, bool force)
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
    if (json && s_publish(d, d->t_fault, json, 1, true) == 0) {
        d->fault_pub_valid = true;
        d->fault_pub_active = active;
        d->fault_pub_cause = cause;
    }
    free(json);
}

static void s_publish_switches(ctl_daemon_t *d);

/* Everything, in Home Assistant's preferred order: discovery, availability, state. */
static void s_publish_all(ctl_daemon_t *d, int64_t now)
{
    s_publish_discovery(d);
    s_publish(d, d->t_avail, d->set.pl_online, 1, true);
    d->soc_pub_valid = false;
    s_publish_status(d, now, true);
    s_publish_fault(d, true);
    if (!d->link.standby)
        s_publish_switches(d); /* also after a restart: no load stays on by an old message */
}

/* Logs state transitions; a changed state or reason is published at once. */
static void s_note_state(ctl_daemon_t *d, int64_t now)
{
    ctld_state_t st = s_state(d);
    const char *why = s_reason(d, now);
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
    s_copy(d->last_reason, sizeof d->last_reason, why);
    s_publish_status(d, now, state_changed);
}

/* ---------------------------------------------------------------- surplus switches */

/* Publishes switch I's state ("0"/"1", retained, as the seed). */
static void s_publish_switch(ctl_daemon_t *d, size_t i)
{
    const surplus_switch_t *w = &d->set.surplus.sw[i];
    s_publish(d, w->topic, d->sw.on[i] ? "1" : "0", 1, true);
}

static void s_publish_switches(ctl_daemon_t *d)
{
    for (size_t i = 0; i < d->set.surplus.n; i++)
        s_publish_switch(d, i);
}

/* The seed's surplusP from this step, then the switches. */
static void s_surplus_step(ctl_daemon_t *d, const ctl_input_t *in, int64_t now)
{
    bool grid = d->meter_valid && !s_meter_stale(d, now);
    bool in_control = s_state(d) == CTLD_ST_RUNNING;
    ctl_limit_t l = d->out.limit;
    bool limited = l == CTL_L_PROFILE_CHARGE || l == CTL_L_DEVICE_CHARGE || l == CTL_L_FULL ||
                   l == CTL_L_VOLTAGE_HIGH;
    double measured = in->telemetry_valid ? in->dc_v * in->dc_a : NAN;
    double set_w = NAN;
    if (in->telemetry_valid && in->operation == 1 && in->direction == 0 && in->iout_ca > 0)
        set_w = in->dc_v * in->iout_ca / 100.0;
    d->surplus_w = surplus_power_w(grid, d->meter_w, in_control, limited, set_w, measured);
    if (d->link.standby)
        return; /* the active instance switches */
    unsigned changed = surplus_step(&d->set.surplus, &d->sw, d->surplus_w, now);
    for (size_t i = 0; i < d->set.surplus.n; i++) {
        if (!(changed & (1u << i)))
            continue;
        const surplus_switch_t *w = &d->set.surplus.sw[i];
        log_info("surplus switch %d (%s) %s at %.0f W surplus", w->num,
                 w->name[0] ? w->name : w->topic, d->sw.on[i] ? "on" : "off", d->surplus_w);
        s_publish_switch(d, i);
    }
}

/* ---------------------------------------------------------------- the Winter mode */

/* Type=Winter: the Winter state machine in place of the grid-balance step; its power becomes
 * a current at the measured voltage, within the device's current limits. */
static void s_winter_step(ctl_daemon_t *d, const ctl_input_t *in, int64_t now)
{
    const ctl_params_t *p = &d->set.params;
    winter_input_t wi = {.now_ms = now,
                         .online = in->telemetry_valid,
                         .temp_c = d->temp_valid && d->tel_online ? d->temp_c : NAN,
                         .fault = d->fault_any,
                         .dc_a = in->dc_a};
    double soc = in->telemetry_valid ? ctl_soc_from_voltage(p, in->dc_v) : -1;
    wi.soc_valid = soc >= 0;
    wi.soc_pct = soc;
    if (!d->enabled) {
        winter_init(&d->winter); /* enabled again: from the start */
        d->winter_out = (winter_output_t){.cmd = WINTER_OUT_IDLE, .reason = "disabled"};
    } else {
        winter_step(&d->set.winter_p, &d->winter, &wi, &d->winter_out);
    }
    const winter_output_t *w = &d->winter_out;
    ctl_mode_t mode = CTL_MODE_IDLE;
    int ca = 0;
    if (w->cmd != WINTER_OUT_IDLE && in->dc_v > 0) {
        bool charge = w->cmd == WINTER_OUT_CHARGE;
        int max = charge ? p->max_charge_ca : p->max_discharge_ca;
        ca = (int)lround(w->power_w / in->dc_v * 100.0);
        ca = ca < p->min_current_ca ? p->min_current_ca : ca > max ? max : ca;
        mode = charge ? CTL_MODE_CHARGE : CTL_MODE_DISCHARGE;
    }
    /* Small voltage moves do not rewrite the current: 0.2 A or more, or another mode. */
    bool changed = mode != d->out.mode || abs(ca - d->out.current_ca) >= 20 ||
                   d->link.acked_mode == CTL_MODE_NONE;
    ctl_output_t o = {.mode = mode,
                      .current_ca = changed ? ca : d->out.current_ca,
                      .power_w = mode == CTL_MODE_CHARGE      ? w->power_w
                                 : mode == CTL_MODE_DISCHARGE ? -w->power_w
                                                              : 0,
                      .send = changed,
                      .reason = mode == CTL_MODE_IDLE ? CTL_R_DEADBAND : CTL_R_TRACK,
                      .reason_text = w->reason,
                      .limit = CTL_L_NONE,
                      .limit_text = "none",
                      .soc_valid = wi.soc_valid,
                      .soc_pct = soc,
                      .block_text = ""};
    if (!in->telemetry_valid) {
        o.reason = CTL_R_OFFLINE;
        o.mode = CTL_MODE_NONE;
        o.send = false;
    }
    d->out = o;
    d->st.mode = o.mode;
    d->st.current_ca = o.current_ca;
    d->st.power_w = o.power_w;
    if (o.send && !d->link.sp_dirty)
        ctl_link_setpoint(&d->link, o.mode, o.current_ca);
}

/* ---------------------------------------------------------------- the step */

static void s_step(ctl_daemon_t *d, int64_t now)
{
    d->next_step = now + STEP_PERIOD_MS;
    if (d->link.stopping)
        return;
    ctl_input_t in;
    memset(&in, 0, sizeof in);
    in.now_ms = now;
    in.eeprom_tokens = d->eep_tokens;
    in.eeprom_tokens_ms = d->eep_tokens_ms;
    time_t t = time(NULL);
    struct tm tm;
    if (localtime_r(&t, &tm)) {
        in.hour = tm.tm_hour;
        in.minute = tm.tm_min;
    }
    in.enabled = d->enabled;
    in.meter_valid = d->meter_valid;
    in.meter_w = d->meter_w;
    in.meter_arrival_ms = d->meter_ms;
    in.meter_seq = d->meter_seq;
    in.online = s_device_reachable(d, now);
    in.lease_held = d->link.lease_held;
    in.telemetry_valid = in.online && d->tel_valid;
    in.telemetry_ms = d->tel_ms;
    in.dc_v = d->dc_v;
    in.dc_a = d->dc_a;
    in.operation = d->operation;
    in.direction = d->direction;
    in.iout_ca = d->iout_ca;
    in.rev_iout_ca = d->rev_iout_ca;
    in.setpoints_age_ms = d->sp_age_ms;
    in.vout_set_cv = d->vout_cv;
    in.rev_vout_set_cv = d->rev_vout_cv;
    in.temp_valid = d->temp_valid;
    in.temp_c = d->temp_c;
    in.fault_raw = d->fault_raw;
    if (d->set.winter) {
        s_winter_step(d, &in, now);
        s_note_state(d, now);
        s_surplus_step(d, &in, now);
        return;
    }
    ctl_step(&d->set.params, &d->st, &in, &d->out);
    if (d->out.send) /* replaces a setpoint not sent yet */
        ctl_link_setpoint(&d->link, d->out.mode, d->out.current_ca);
    if (d->out.follow_problem != d->follow_logged) {
        if (d->out.follow_problem)
            log_warn("device %d does not follow the setpoint: %s", d->set.id, d->out.follow_text);
        else
            log_info("device %d follows the setpoint again", d->set.id);
        d->follow_logged = d->out.follow_problem;
    }
    if (d->out.follow_safe != d->follow_safe_logged) {
        if (d->out.follow_safe)
            log_warn("device %d: output switched off (safe state) until the cause is gone or "
                     "%d s have passed",
                     d->set.id, d->set.params.follow_retry_ms / 1000);
        d->follow_safe_logged = d->out.follow_safe;
    }
    s_publish_fault(d, false);
    s_note_state(d, now);
    s_surplus_step(d, &in, now);
}

/* ---------------------------------------------------------------- gateway requests */

static cJSON *s_req(const ctl_daemon_t *d, const char *op)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    cJSON_AddNumberToObject(r, "v", 1);
    cJSON_AddStringToObject(r, "op", op);
    cJSON_AddStringToObject(r, "client", d->client);
    return r;
}

/* The JSON of a request the link wants sent. */
static cJSON *s_build(const ctl_daemon_t *d, const ctl_link_send_t *q)
{
    cJSON *r = NULL;
    switch (q->kind) {
    case CTL_LINK_REQ_NONE:
        break;
    case CTL_LINK_REQ_INFO:
        r = s_req(d, "info");
        if (r)
            cJSON_AddNumberToObject(r, "dev", d->set.id);
        break;
    case CTL_LINK_REQ_TAKE:
    case CTL_LINK_REQ_RENEW:
    case CTL_LINK_REQ_RELEASE:
        r = s_req(d, "lease");
        if (!r)
            break;
        cJSON_AddStringToObject(r, "action",
                                q->kind == CTL_LINK_REQ_TAKE    ? "take"
                                : q->kind == CTL_LINK_REQ_RENEW ? "renew"
                                                                : "release");
        /* The lease of this controller's own device only: another instance may drive
         * another device on the same gateway. */
        cJSON_AddNumberToObject(r, "dev", d->set.id);
        if (q->kind != CTL_LINK_REQ_RELEASE)
            cJSON_AddNumberToObject(r, "ttl_s", d->set.lease_ttl_s);
        break;
    case CTL_LINK_REQ_SETPOINT: {
        r = s_req(d, "setpoint");
        /* Switched off by control/set 0 with DisableState=min, as the seed: an output that is
         * on stays on at the minimum charge current (its idle), one that is off stays off. */
        bool seed_idle = q->mode == CTL_MODE_IDLE && !d->enabled && !d->link.stopping &&
                         d->set.disable_min && d->operation == 1 && d->tel_valid;
        if (!r)
            break;
        cJSON_AddNumberToObject(r, "dev", d->set.id);
        cJSON_AddStringToObject(r, "mode", seed_idle ? "charge" : ctl_mode_name(q->mode));
        if (seed_idle)
            cJSON_AddNumberToObject(r, "current_a", d->set.params.min_current_ca / 100.0);
        else if (q->mode == CTL_MODE_CHARGE || q->mode == CTL_MODE_DISCHARGE)
            cJSON_AddNumberToObject(r, "current_a", q->ca / 100.0);
        cJSON_AddNumberToObject(r, "lease_ttl_s", d->set.lease_ttl_s);
        break;
    }
    }
    return r;
}

static ctl_link_view_t s_view(const ctl_daemon_t *d, int64_t now)
{
    return (ctl_link_view_t){
        .tel_alive = s_tel_alive(d, now), .enabled = d->enabled, .out_mode = d->out.mode};
}

/* What to ask the gateway next, one request at a time. */
static void s_pump(ctl_daemon_t *d, int64_t now)
{
    ctl_link_view_t v = s_view(d, now);
    ctl_link_send_t q = ctl_link_next(&d->link, &v, now);
    if (q.kind == CTL_LINK_REQ_NONE)
        return;
    cJSON *req = s_build(d, &q);
    if (!req || gw_client_send(d->gw, req) != 0)
        ctl_link_send_failed(&d->link, now);
    cJSON_Delete(req);
}

/* Acts on what the link reports: the step starts again from idle, or runs now. */
static void s_link_flags(ctl_daemon_t *d, unsigned flags, int64_t now)
{
    if (flags & CTL_LINK_RESET)
        ctl_state_init(&d->st, now);
    if (flags & CTL_LINK_STEP)
        s_step(d, now);
}

static void s_on_info(ctl_daemon_t *d, const cJSON *reply, int64_t now)
{
    const cJSON *devs = cJSON_GetObjectItem(reply, "devices");
    const cJSON *dv;
    cJSON_ArrayForEach(dv, devs)
    {
        const cJSON *id = cJSON_GetObjectItem(dv, "dev");
        int64_t dev;
        if (!cJSON_IsNumber(id) || numconv_whole(id->valuedouble, 0, 63, &dev) != 0 ||
            dev != d->set.id)
            continue;
        const cJSON *eep = cJSON_GetObjectItem(dv, "eeprom");
        const cJSON *pol = cJSON_GetObjectItem(eep, "policy");
        const cJSON *iv = cJSON_GetObjectItem(eep, "min_interval_s");
        /* Without EEP_OFF every current change is a persisted write: space them as the
         * gateway's budget does, so the gateway never has to defer one. */
        int64_t iv_ms = 0;
        if (!cJSON_IsString(pol) || strcmp(pol->valuestring, "budget") != 0 ||
            !cJSON_IsNumber(iv) || !(iv->valuedouble > 0) ||
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
        if (w && cJSON_IsNumber(tokens) && isfinite(tokens->valuedouble) &&
            tokens->valuedouble >= 0) {
            d->eep_tokens = tokens->valuedouble;
            d->eep_tokens_ms = now;
        }
        if (!d->info_done || ms != d->set.params.min_write_interval_ms)
            log_info("device %d: EEPROM policy %s%s", d->set.id,
                     cJSON_IsString(pol) ? pol->valuestring : "unknown",
                     ms ? ": current changes at most one per write interval" : "");
        d->set.params.min_write_interval_ms = ms;
        d->info_done = true;
        ctl_link_info_ok(&d->link, now);
        return;
    }
    log_warn("the gateway does not know device %d (yet); asking again in %d s", d->set.id,
             CTL_LINK_INFO_RETRY_MS / 1000);
}

static void s_on_reply(ctl_daemon_t *d, const cJSON *reply, int64_t now)
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
    }
    unsigned flags = ctl_link_reply(&d->link, &r, now);
    if (flags & CTL_LINK_INFO)
        s_on_info(d, reply, now);
    s_link_flags(d, flags, now);
}

/* ---------------------------------------------------------------- gateway PUB */

static int s_ca(const cJSON *o, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    int64_t ca;
    if (!cJSON_IsNumber(v) || numconv_round(v->valuedouble * 100.0, -1000000, 1000000, &ca) != 0)
        return def;
    return (int)ca;
}

static void s_on_tel(ctl_daemon_t *d, const cJSON *msg, int64_t now)
{
    const cJSON *v = cJSON_GetObjectItem(msg, "dc_v");
    const cJSON *a = cJSON_GetObjectItem(msg, "dc_a");
    const cJSON *op = cJSON_GetObjectItem(msg, "operation");
    const cJSON *dir = cJSON_GetObjectItem(msg, "direction");
    const cJSON *sp = cJSON_GetObjectItem(msg, "setpoints");
    const cJSON *age = cJSON_GetObjectItem(cJSON_GetObjectItem(msg, "age_ms"), "fast");
    d->tel_seen = true;
    d->tel_ms = now;
    d->tel_online = cJSON_IsTrue(cJSON_GetObjectItem(msg, "online"));
    d->tel_valid = d->tel_online && cJSON_IsNumber(v) && cJSON_IsNumber(a) &&
                   isfinite(v->valuedouble) && isfinite(a->valuedouble);
    if (d->tel_valid) {
        d->dc_v = v->valuedouble;
        d->dc_a = a->valuedouble;
    }
    int64_t opv;
    d->operation =
        cJSON_IsNumber(op) && numconv_whole(op->valuedouble, 0, 1, &opv) == 0 ? (int)opv : -1;
    d->direction = cJSON_IsString(dir) && strcmp(dir->valuestring, "discharge") == 0 ? 1 : 0;
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
    d->iout_ca = s_ca(sp, "iout_a", -1);
    d->rev_iout_ca = s_ca(sp, "rev_iout_a", -1);
    d->vout_cv = s_ca(sp, "vout_v", -1);
    d->rev_vout_cv = s_ca(sp, "rev_vout_v", -1);
    const cJSON *temp = cJSON_GetObjectItem(msg, "temp_c");
    d->temp_valid = cJSON_IsNumber(temp) && isfinite(temp->valuedouble);
    d->temp_c = d->temp_valid ? temp->valuedouble : 0;
    const cJSON *fraw = cJSON_GetObjectItem(cJSON_GetObjectItem(msg, "fault"), "raw");
    int64_t fault_raw;
    d->fault_raw =
        cJSON_IsNumber(fraw) && numconv_whole(fraw->valuedouble, 0, 65535, &fault_raw) == 0
            ? (int)fault_raw
            : 0;
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
    s_link_flags(d, ctl_link_telemetry(&d->link, lease != NULL, who, now), now);
    s_step(d, now);
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
    bool ours = ctl_link_power_cycled(&d->link, cJSON_IsString(holder) ? holder->valuestring : NULL,
                                      d->st.mode, d->st.current_ca, now);
    if (!ours) {
        log_info("device %d came back from a power cycle (lost %s); not the lease holder",
                 d->set.id, lost[0] ? lost : "setpoints");
        return;
    }
    log_warn("device %d came back from a power cycle that replaced %s: setpoint re-applied",
             d->set.id, lost[0] ? lost : "setpoints held in RAM");
    if (d->st.mode != CTL_MODE_NONE) {
        d->st.pending = true;
        d->st.since_ms = now;
    }
    s_step(d, now);
    s_pump(d, now);
}

static void s_on_pub(ctl_daemon_t *d, const char *topic, const cJSON *msg, int64_t now)
{
    char mine[16];
    snprintf(mine, sizeof mine, "tel/%d", d->set.id);
    if (strcmp(topic, mine) == 0) {
        s_on_tel(d, msg, now);
        return;
    }
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
        s_link_flags(d, ctl_link_lease_lapsed(&d->link, who, now), now);
    } else if (strcmp(ev->valuestring, "safe_state") == 0 ||
               strcmp(ev->valuestring, "offline") == 0 || strcmp(ev->valuestring, "online") == 0) {
        log_info("gateway event on device %d: %s", d->set.id, ev->valuestring);
        if (strcmp(ev->valuestring, "online") == 0)
            ctl_link_device_online(&d->link, now); /* identity, firmware, EEPROM policy */
    }
}

/* ---------------------------------------------------------------- MQTT input */

static void s_log_bad_meter(ctl_daemon_t *d, int64_t now, const char *why,
                            const struct mosquitto_message *m)
{
    if (d->bad_log_ms && now - d->bad_log_ms < BAD_LOG_EVERY_MS) {
        d->bad_unlogged++;
        return;
    }
    char shown[65];
    size_t n = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
    if (n > sizeof shown - 1)
        n = sizeof shown - 1;
    for (size_t i = 0; i < n; i++) {
        char c = ((const char *)m->payload)[i];
        shown[i] = c >= 32 && c < 127 ? c : '?';
    }
    shown[n] = '\0';
    if (d->bad_unlogged)
        log_warn("meter %s: payload '%s' rejected: %s (and %llu more since the last report; "
                 "%llu in all)",
                 m->topic, shown, why, (unsigned long long)d->bad_unlogged,
                 (unsigned long long)d->meter_errors);
    else
        log_warn("meter %s: payload '%s' rejected: %s", m->topic, shown, why);
    d->bad_unlogged = 0;
    d->bad_log_ms = now;
}

static void s_on_meter(ctl_daemon_t *d, const struct mosquitto_message *m)
{
    int64_t now = mono_ms();
    double w;
    char err[200];
    size_t len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
    if (meter_parse(&d->set.meter, m->payload, len, &w, err, sizeof err) != 0) {
        d->meter_errors++;
        s_log_bad_meter(d, now, err, m);
        s_publish_status(d, now, false);
        return;
    }
    d->shown_valid = true;
    d->shown_w = w;
    d->shown_ms = now;
    if (m->retain) {
        /* Delivered at subscribe time from the broker's store: its age is unknown. */
        if (!d->retained_logged)
            log_info("meter %s: retained value %.1f W shown, not used for control", m->topic, w);
        d->retained_logged = true;
        s_publish_status(d, now, false);
        return;
    }
    bool was_stale = s_meter_stale(d, now);
    d->meter_valid = true;
    d->meter_w = w;
    d->meter_ms = now;
    d->meter_seq++;
    if (was_stale && d->meter_seq > 1)
        log_info("meter %s: fresh samples again", m->topic);
    s_step(d, now);
    s_pump(d, now);
    s_publish_status(d, now, false);
}

/* A standby instance follows the commands (it takes over in the state the user chose) but
 * leaves the answer to the instance that drives the device. */
static void s_publish_result(ctl_daemon_t *d, bool ok, const char *request, const char *code,
                             const char *msg)
{
    if (d->link.standby)
        return;
    char *p = ctld_result_json(ok, request, d->enabled, code, msg);
    if (p)
        s_publish(d, d->t_result, p, 1, false);
    free(p);
}

static void s_on_control(ctl_daemon_t *d, const struct mosquitto_message *m)
{
    int64_t now = mono_ms();
    if (m->payloadlen <= 0)
        return; /* clearing a retained command is not a command */
    if (m->retain) {
        log_warn("%s: retained command ignored (publish commands without the retain flag)",
                 m->topic);
        s_publish_result(d, false, NULL, "retained",
                         "retained command ignored; publish commands without the retain flag "
                         "and clear the retained message");
        return;
    }
    bool on = false;
    const char *code = NULL;
    char err[200];
    if (ctld_parse_enable(m->payload, (size_t)m->payloadlen, &on, &code, err, sizeof err) != 0) {
        log_warn("%s: refused: %s: %s", m->topic, code, err);
        s_publish_result(d, false, NULL, code, err);
        return;
    }
    if (on && !d->set.can_run) {
        const char *why =
            "this controller cannot run: [CHARGE_CONTROL] Type=None/off, or PID without "
            "TopicPower in the configuration";
        log_warn("%s: refused: %s", m->topic, why);
        s_publish_result(d, false, on ? "1" : "0", "not_configured", why);
        return;
    }
    /* As in the seed, every toggle (also a repeated one) stops charging: start from idle. */
    log_info("%s: controller %s", m->topic, on ? "enabled" : "disabled");
    d->enabled = on;
    /* the setpoint not sent yet and the one confirmed are forgotten with the step's state */
    d->link.sp_dirty = false;
    d->link.acked_mode = CTL_MODE_NONE;
    ctl_state_init(&d->st, now);
    if (on)
        d->link.next_lease_try = now;
    s_step(d, now);
    s_pump(d, now);
    s_publish_result(d, true, on ? "1" : "0", NULL, NULL);
    s_publish_status(d, now, true);
}

/* ---------------------------------------------------------------- libmosquitto callbacks */

static void s_subscribe_all(ctl_daemon_t *d)
{
    struct mosquitto *mosq = mqtt_conn_mosq(d->mq);
    mosquitto_subscribe(mosq, NULL, d->set.topic_power, 0);
    mosquitto_subscribe(mosq, NULL, d->t_cmd, 1);
    mosquitto_subscribe(mosq, NULL, d->t_avail, 1);
    if (d->set.ha_discovery)
        mosquitto_subscribe(mosq, NULL, d->set.ha_status, 1);
}

static void s_on_connect(mqtt_conn_t *c, void *user, int rc)
{
    ctl_daemon_t *d = user;
    struct mosquitto *mosq = mqtt_conn_mosq(c);
    if (rc != 0) {
        log_error("broker refused the connection: %s", mqtt_conn_refusal(c, rc));
        return; /* the library closes the socket; on_disconnect schedules the retry */
    }
    log_info("connected to %s:%d as %s", d->set.mqtt.host, d->set.mqtt.port, d->set.client_id);
    if (d->set.topic_power[0])
        s_subscribe_all(d);
    else {
        mosquitto_subscribe(mosq, NULL, d->t_cmd, 1);
        mosquitto_subscribe(mosq, NULL, d->t_avail, 1);
    }
    s_publish_all(d, mono_ms());
    sdnotify_status("connected to %s:%d", d->set.mqtt.host, d->set.mqtt.port);
}

static void s_on_disconnect(mqtt_conn_t *c, void *user, int rc, int retry_ms)
{
    log_warn("disconnected from the broker (%s); retrying in %d ms", mqtt_conn_loss(c, rc),
             retry_ms);
}

static void s_on_connect_failed(mqtt_conn_t *c, void *user, const char *why, int retry_ms)
{
    ctl_daemon_t *d = user;
    log_warn("cannot connect to %s:%d (%s); retrying in %d ms", d->set.mqtt.host, d->set.mqtt.port,
             why, retry_ms);
}

static void s_on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    ctl_daemon_t *d = mqtt_conn_user(obj);
    if (d->link.stopping && mid == d->offline_mid)
        d->offline_acked = true;
}

static void s_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
    ctl_daemon_t *d = mqtt_conn_user(obj);
    if (d->set.topic_power[0] && strcmp(m->topic, d->set.topic_power) == 0) {
        s_on_meter(d, m);
    } else if (strcmp(m->topic, d->t_cmd) == 0) {
        s_on_control(d, m);
    } else if (strcmp(m->topic, d->t_avail) == 0) {
        /* A previous instance's will can arrive after this one said it runs. */
        size_t n = strlen(d->set.pl_online);
        bool ours = m->payloadlen == (int)n && memcmp(m->payload, d->set.pl_online, n) == 0;
        if (!ours && !d->link.stopping)
            s_publish(d, d->t_avail, d->set.pl_online, 1, true);
    } else if (d->set.ha_discovery && strcmp(m->topic, d->set.ha_status) == 0) {
        if (m->payloadlen == 6 && memcmp(m->payload, "online", 6) == 0) {
            /* A short random delay spreads the burst when many clients react at once. */
            d->republish_at = mono_ms() + 1000 + (int64_t)(random() % 2000);
            log_info("Home Assistant is online: republishing discovery and status");
        }
    }
}

static void s_on_log(mqtt_conn_t *c, void *user, int level, const char *str)
{
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        log_debug("mosquitto: %s", str);
}

/* ---------------------------------------------------------------- configuration reload */

static void s_topics(ctl_daemon_t *d)
{
    const char *t = d->set.topic_main;
    int id = d->set.id;
    snprintf(d->t_status, sizeof d->t_status, "%s/inv/%d/control", t, id);
    snprintf(d->t_cmd, sizeof d->t_cmd, "%s/inv/%d/control/set", t, id);
    snprintf(d->t_result, sizeof d->t_result, "%s/result", d->t_cmd);
    snprintf(d->t_avail, sizeof d->t_avail, "%s/ctl/%d/state", t, id);
    snprintf(d->t_soc, sizeof d->t_soc, "%s/ctl/%d/soc", t, id);
    snprintf(d->t_fault, sizeof d->t_fault, "%s/ctl/%d/fault", t, id);
    snprintf(d->t_surplus, sizeof d->t_surplus, "%s/ctl/%d/surplus", t, id);
}

static int s_reload(ctl_daemon_t *d, char *err, size_t n)
{
    config_t *cfg = config_load(d->config_path, err, n);
    if (!cfg)
        return -1;
    settings_t *ns = malloc(sizeof *ns);
    if (!ns || s_settings(cfg, ns, err, n) != 0) {
        if (!ns)
            snprintf(err, n, "out of memory");
        free(ns);
        config_destroy(&cfg);
        return -1;
    }
    log_setup_from_config(cfg, "bic-charge-ctl");
    config_destroy(&cfg);
    settings_t *os = &d->set;
    if (ns->id != os->id)
        log_warn("config reload: the controlled device stays %d until a restart (the file now "
                 "names %d first)",
                 os->id, ns->id);
    const mqtt_conn_cfg_t *nm = &ns->mqtt, *om = &os->mqtt;
    if (strcmp(nm->host, om->host) || nm->port != om->port || strcmp(nm->user, om->user) ||
        strcmp(nm->pass, om->pass) || strcmp(ns->topic_main, os->topic_main) ||
        strcmp(ns->ha_prefix, os->ha_prefix) || strcmp(ns->ha_status, os->ha_status) ||
        ns->ha_discovery != os->ha_discovery || strcmp(nm->tls_ca, om->tls_ca) ||
        strcmp(ns->pl_online, os->pl_online) || strcmp(ns->pl_offline, os->pl_offline) ||
        nm->keepalive_s != om->keepalive_s)
        log_warn("config reload: [MQTT] connection, topic and discovery settings take effect "
                 "after a restart");
    if (ns->id == os->id) {
        if (strcmp(ns->topic_power, os->topic_power) != 0) {
            bool up = mqtt_conn_connected(d->mq);
            if (up && os->topic_power[0])
                mosquitto_unsubscribe(mqtt_conn_mosq(d->mq), NULL, os->topic_power);
            if (up && ns->topic_power[0])
                mosquitto_subscribe(mqtt_conn_mosq(d->mq), NULL, ns->topic_power, 0);
            d->meter_valid = d->shown_valid = false;
            log_info("meter topic now %s", ns->topic_power[0] ? ns->topic_power : "(none)");
            s_copy(os->topic_power, sizeof os->topic_power, ns->topic_power);
        }
        int eep_ms = os->params.min_write_interval_ms; /* from the gateway, not the file */
        os->params = ns->params;
        os->params.min_write_interval_ms = eep_ms;
        os->meter = ns->meter;
        os->lease_ttl_s = ns->lease_ttl_s;
        d->link.lease_ttl_s = ns->lease_ttl_s;
        os->can_run = ns->can_run;
        os->disable_min = ns->disable_min;
        if (os->winter != ns->winter)
            winter_init(&d->winter);
        os->winter = ns->winter;
        os->winter_p = ns->winter_p;
        os->tel_silence_ms = ns->tel_silence_ms;
        if (memcmp(&ns->surplus, &os->surplus, sizeof ns->surplus) != 0) {
            /* Switches that change or go: off first, then the new set from off. */
            for (size_t i = 0; i < os->surplus.n; i++) {
                if (d->sw.on[i]) {
                    d->sw.on[i] = false;
                    s_publish_switch(d, i);
                }
            }
            os->surplus = ns->surplus;
            surplus_init(&d->sw);
            log_info("surplus switches: %zu configured", os->surplus.n);
        }
        /* The runtime enable state is kept; only a controller that can no longer run
         * stops. */
        if (d->enabled && !os->can_run) {
            log_warn(
                "config reload: Type=None/off, or PID without TopicPower: controller disabled");
            d->enabled = false;
        }
    }
    free(ns);
    log_info("configuration reloaded from %s", d->config_path);
    return 0;
}

/* ---------------------------------------------------------------- life cycle */

int ctl_daemon_check_config(const config_t *cfg, char *err, size_t errlen)
{
    settings_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = s_settings(cfg, s, err, errlen);
    free(s);
    return rc == 0 ? gw_client_check_config(cfg, err, errlen) : -1;
}

ctl_daemon_t *ctl_daemon_new(const config_t *cfg, const char *config_path, char *err, size_t errlen)
{
    ctl_daemon_t *d = calloc(1, sizeof *d);
    if (d)
        d->eep_tokens = -1;
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (s_settings(cfg, &d->set, err, errlen) != 0)
        goto fail;
    if (d->set.n_ids > 1)
        log_warn("[CHARGE_CONTROL] names %zu devices; this controller drives device %d only "
                 "(the gateway's control lease admits one controller)",
                 d->set.n_ids, d->set.id);
    d->config_path = strdup(config_path ? config_path : CONFIG_DEFAULT_PATH);
    mqtt_node_id(d->set.topic_main, d->node, sizeof d->node);
    snprintf(d->client, sizeof d->client, "charge-ctl-%d-%ld", d->set.id, (long)getpid());
    ctl_link_init(&d->link, d->set.id, d->client, d->set.lease_ttl_s, mono_ms());
    s_topics(d);
    d->enabled = d->set.enable_at_start;
    d->last_state = CTLD_ST_COUNT;
    ctl_state_init(&d->st, mono_ms());

    d->gw = gw_client_from_config(cfg, err, errlen);
    if (!d->gw)
        goto fail;
    const char *prefixes[] = {"tel/", "evt/", NULL};
    d->sub = gw_client_sub_from_config(cfg, prefixes, err, errlen);
    if (!d->sub)
        goto fail;

    mqtt_conn_hooks_t hooks = {.on_connect = s_on_connect,
                               .on_disconnect = s_on_disconnect,
                               .on_connect_failed = s_on_connect_failed,
                               .on_log = s_on_log};
    d->mq = mqtt_conn_new(&d->set.mqtt, d->set.client_id, MQTT_PROTOCOL_V311, d->t_avail,
                          d->set.pl_offline, &hooks, d, err, errlen);
    if (!d->mq)
        goto fail;
    struct mosquitto *mosq = mqtt_conn_mosq(d->mq);
    mosquitto_message_callback_set(mosq, s_on_message);
    mosquitto_publish_callback_set(mosq, s_on_publish);
    srandom((unsigned)(time(NULL) ^ getpid()));
    return d;
fail:
    ctl_daemon_destroy(&d);
    return NULL;
}

void ctl_daemon_destroy(ctl_daemon_t **p)
{
    if (!p || !*p)
        return;
    ctl_daemon_t *d = *p;
    mqtt_conn_destroy(&d->mq);
    zsock_destroy(&d->sub);
    gw_client_destroy(&d->gw);
    free(d->status_key);
    free(d->config_path);
    free(d);
    *p = NULL;
}

/* One poll over the MQTT socket, the SUB and the REQ socket, until `deadline` at most. */
static void s_poll_once(ctl_daemon_t *d, int64_t deadline, bool gateway)
{
    zmq_pollitem_t items[3];
    int n = 0;
    int mq = -1, isub = -1, ireq = -1;
    if (mqtt_conn_pollitem(d->mq, &items[n]) == 0)
        mq = n++;
    if (gateway) {
        items[n] = (zmq_pollitem_t){.socket = zsock_resolve(d->sub), .events = ZMQ_POLLIN};
        isub = n++;
        void *req = gw_client_socket(d->gw);
        if (gw_client_pending(d->gw)) {
            if (req) {
                items[n] = (zmq_pollitem_t){.socket = zsock_resolve(req), .events = ZMQ_POLLIN};
                ireq = n++;
            }
            if (gw_client_deadline(d->gw) < deadline)
                deadline = gw_client_deadline(d->gw);
        }
    }
    int64_t now = mono_ms();
    long timeout = deadline > now ? (long)(deadline - now) : 0;
    if (zmq_poll(items, n, timeout) < 0) {
        if (errno != EINTR)
            log_warn("poll: %s", zmq_strerror(errno));
        return;
    }
    if (mq >= 0)
        mqtt_conn_handle(d->mq, items[mq].revents);
    if (ireq >= 0 && (items[ireq].revents & ZMQ_POLLIN)) {
        cJSON *reply = gw_client_recv(d->gw);
        if (reply && d->link.inflight != CTL_LINK_REQ_NONE) {
            int64_t t = mono_ms();
            s_on_reply(d, reply, t);
            s_pump(d, t);
        }
        cJSON_Delete(reply);
    }
    if (isub >= 0 && (items[isub].revents & ZMQ_POLLIN)) {
        /* Drain what is there, bounded so MQTT is never starved. */
        for (int i = 0; i < 64; i++) {
            char topic[64];
            cJSON *msg = gw_client_sub_recv(d->sub, topic, sizeof topic);
            if (msg) {
                s_on_pub(d, topic, msg, mono_ms());
                cJSON_Delete(msg);
            }
            if (!(zsock_events(d->sub) & ZMQ_POLLIN))
                break;
        }
    }
}

static void s_timers(ctl_daemon_t *d, int64_t now)
{
    if (mqtt_conn_tick(d->mq, now))
        sdnotify_watchdog();
    bool tel = s_tel_alive(d, now);
    if (tel != d->tel_was_alive) {
        if (tel)
            log_info("telemetry from the gateway");
        else
            log_warn("no telemetry from the gateway for %d s: the control lease is not renewed "
                     "(the gateway applies its safe state when it lapses)",
                     d->set.tel_silence_ms / 1000);
        d->tel_was_alive = tel;
    }
    if (d->link.inflight != CTL_LINK_REQ_NONE && now >= gw_client_deadline(d->gw)) {
        int rc = gw_client_expire(d->gw, now);
        if (rc < 0)
            s_link_flags(d, ctl_link_timeout(&d->link, now), now);
        else if (rc > 0)
            log_debug("gateway silent: %s resent", ctl_link_req_name(d->link.inflight));
    }
    /* No renewal confirmed within the TTL: the gateway has let the lease lapse by now. */
    s_link_flags(d, ctl_link_tick(&d->link, now), now);
    if (now >= d->next_step)
        s_step(d, now);
    if (d->republish_at && now >= d->republish_at) {
        d->republish_at = 0;
        s_publish_all(d, now);
    }
    s_pump(d, now);
    s_publish_status(d, now, false);
}

static int64_t s_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t s_deadline(const ctl_daemon_t *d, int64_t now)
{
    int64_t dl = s_min(now + 1000, d->next_step);
    dl = s_min(dl, mqtt_conn_deadline(d->mq));
    if (d->republish_at)
        dl = s_min(dl, d->republish_at);
    if (d->status_due)
        dl = s_min(dl, d->status_due);
    ctl_link_view_t v = s_view(d, now);
    dl = ctl_link_deadline(&d->link, &v, dl);
    return dl;
}

/* Orderly exit, MQTT side: the stopped status, `offline` (the broker drops the will on a
 * clean disconnect), then the disconnect itself. */
static void s_close_mqtt(ctl_daemon_t *d)
{
    if (!mqtt_conn_connected(d->mq))
        return;
    s_publish_status(d, mono_ms(), true);
    /* No load stays switched on by a controller that is gone. */
    for (size_t i = 0; i < d->set.surplus.n && !d->link.standby; i++) {
        if (d->sw.on[i]) {
            d->sw.on[i] = false;
            s_publish_switch(d, i);
        }
    }
    if (mosquitto_publish(mqtt_conn_mosq(d->mq), &d->offline_mid, d->t_avail,
                          (int)strlen(d->set.pl_offline), d->set.pl_offline, 1,
                          true) == MOSQ_ERR_SUCCESS) {
        int64_t deadline = mono_ms() + FLUSH_MS;
        while (!d->offline_acked && mqtt_conn_connected(d->mq) && mono_ms() < deadline)
            s_poll_once(d, deadline, false);
    }
    mqtt_conn_disconnect(d->mq);
    int64_t deadline = mono_ms() + 200;
    while (mqtt_conn_want_write(d->mq) && mono_ms() < deadline)
        s_poll_once(d, deadline, false);
}

int ctl_daemon_run(ctl_daemon_t *d)
{
    log_info("controller for device %d: meter %s, gateway %s, lease '%s' (TTL %d s), %s", d->set.id,
             d->set.topic_power[0] ? d->set.topic_power : "(none)", gw_client_endpoint(d->gw),
             d->client, d->set.lease_ttl_s, d->enabled ? "enabled" : "disabled");
    mqtt_conn_start(d->mq, mono_ms());
    sdnotify_ready();
    int64_t now = mono_ms();
    d->next_step = now;
    d->link.next_info = now;
    d->link.next_lease_try = now;
    for (;;) {
        now = mono_ms();
        if (sigflag_stop() && !d->link.stopping) {
            log_info("stopping (signal %d): device to idle, lease released", sigflag_stop_signal());
            sdnotify_stopping();
            ctl_link_stop(&d->link, now);
            mqtt_conn_stop(d->mq); /* a lost broker is not retried any more */
            s_pump(d, now);
        }
        if (ctl_link_stop_over(&d->link, now))
            break;
        if (sigflag_reload_take()) {
            char err[2048];
            if (s_reload(d, err, sizeof err) != 0)
                log_error("SIGHUP: configuration kept: %s", err);
        }
        s_poll_once(d, s_deadline(d, now), true);
        s_timers(d, mono_ms());
    }
    s_close_mqtt(d);
    return 0;
}
