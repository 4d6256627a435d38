/*
 * ctl_daemon: the bic-charge-ctl service loop. See ctl_daemon.h for the contract and
 * docs/charge-ctl.md ("The daemon") for every topic it publishes and serves.
 *
 * One thread, one zmq_poll over three things: the MQTT socket (common/mqtt_conn: fetched
 * afresh each pass, POLLOUT only when libmosquitto wants to write, reconnects with back-off),
 * the gateway's PUB via SUB and the REQ socket of the asynchronous gateway client (one per
 * device of a group, ctl_d_group.c). At most one gateway request per device is in flight;
 * what to send next is decided from state (setpoint to
 * send, lease to take, renew or release), so a newer setpoint simply replaces an unsent one.
 *
 * This file holds the loop and the wiring; each concern around it has its own file
 * (ctl_d.h): the settings (ctl_settings.c), the link to the gateway (ctl_link.c, pure) and
 * its JSON, replies, telemetry and events (ctl_d_gateway.c), the MQTT topics it publishes
 * (ctl_d_publish.c), the meter and control/set (ctl_d_input.c), the surplus switches
 * (ctl_d_surplus.c) and the Winter mode (ctl_d_winter.c).
 */
#include "ctl_daemon.h"
#include "ctl_d.h"

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

#define STEP_PERIOD_MS 1000 /* the step also runs without meter samples (staleness) */
#define FLUSH_MS 1500

/* ---------------------------------------------------------------- what the daemon knows */

/* The gateway's telemetry arrives: the controller can see what the device does. Without it
 * the controller neither takes nor renews the lease, so a gateway whose PUB side is dead
 * ends in its own safe state rather than in a setpoint nobody watches. */
bool ctld_tel_alive(const ctl_daemon_t *d, int64_t now)
{
    return d->tel_seen && now - d->tel_ms <= ctld_unit_silence_ms(d, d->own);
}

bool ctld_device_reachable(const ctl_daemon_t *d, int64_t now)
{
    return d->tel_seen && d->tel_online && now - d->tel_ms <= ctld_unit_silence_ms(d, d->own);
}

bool ctld_meter_stale(const ctl_daemon_t *d, int64_t now)
{
    return !d->meter_valid || now - d->meter_ms > d->set.params.meter_timeout_ms;
}

/* ---------------------------------------------------------------- the step */

void ctld_step(ctl_daemon_t *d, int64_t now)
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
    in.enabled = ctld_active(d);
    in.meter_valid = d->meter_valid;
    in.meter_w = d->meter_w;
    in.meter_arrival_ms = d->meter_ms;
    in.meter_seq = d->meter_seq;
    in.online = ctld_device_reachable(d, now);
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
        ctld_winter_step(d, &in, now);
        ctld_note_state(d, now);
        ctld_surplus_step(d, &in, now);
        return;
    }
    if (ctld_is_group(d)) {
        ctld_group_step(d, &in, now);
    } else {
        ctl_step(&d->set.params, &d->st, &in, &d->out);
        if (d->out.send) /* replaces a setpoint not sent yet */
            ctl_link_setpoint(&d->link, d->out.mode, d->out.current_ca);
    }
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
    ctld_publish_fault(d, false);
    ctld_note_state(d, now);
    ctld_surplus_step(d, &in, now);
}

/* ---------------------------------------------------------------- libmosquitto callbacks */

static void s_subscribe_all(ctl_daemon_t *d)
{
    struct mosquitto *mosq = mqtt_conn_mosq(d->mq);
    mosquitto_subscribe(mosq, NULL, d->set.topic_power, 0);
    mosquitto_subscribe(mosq, NULL, d->t_cmd, 1);
    mosquitto_subscribe(mosq, NULL, d->t_state_cmd, 1);
    ctld_group_subscribe(d, mosq);
    mosquitto_subscribe(mosq, NULL, d->t_avail, 1);
    if (d->set.site.ha_discovery)
        mosquitto_subscribe(mosq, NULL, d->set.site.ha_status, 1);
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
        mosquitto_subscribe(mosq, NULL, d->t_state_cmd, 1);
        mosquitto_subscribe(mosq, NULL, d->t_avail, 1);
    }
    ctld_publish_all(d, mono_ms());
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
        ctld_on_meter(d, m);
    } else if (strcmp(m->topic, d->t_cmd) == 0) {
        ctld_on_control(d, m);
    } else if (ctld_group_on_state(d, m)) {
        /* a group: state/set of one device stops or resumes that device alone */
    } else if (strcmp(m->topic, d->t_state_cmd) == 0) {
        ctld_on_state_cmd(d, m);
    } else if (strcmp(m->topic, d->t_avail) == 0) {
        /* A previous instance's will can arrive after this one said it runs. */
        size_t n = strlen(d->set.site.pl_online);
        bool ours = m->payloadlen == (int)n && memcmp(m->payload, d->set.site.pl_online, n) == 0;
        if (!ours && !d->link.stopping)
            ctld_publish(d, d->t_avail, d->set.site.pl_online, 1, true);
    } else if (d->set.site.ha_discovery && strcmp(m->topic, d->set.site.ha_status) == 0) {
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
    const char *t = d->set.site.topic_main;
    int id = d->set.id;
    snprintf(d->t_status, sizeof d->t_status, "%s/inv/%d/control", t, id);
    snprintf(d->t_cmd, sizeof d->t_cmd, "%s/inv/%d/control/set", t, id);
    snprintf(d->t_result, sizeof d->t_result, "%s/result", d->t_cmd);
    snprintf(d->t_state_cmd, sizeof d->t_state_cmd, "%s/inv/%d/state/set", t, id);
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
    if (!ns || ctl_settings_load(cfg, ns, err, n) != 0) {
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
    if (!mqtt_conn_cfg_equal(&ns->mqtt, &os->mqtt) || !mqtt_site_equal(&ns->site, &os->site))
        log_warn("config reload: [MQTT] connection, topic and discovery settings take effect "
                 "after a restart");
    if (ns->group.n != os->group.n || memcmp(ns->group.dev, os->group.dev, sizeof ns->group.dev) ||
        memcmp(ns->group.gw, os->group.gw, sizeof ns->group.gw))
        log_warn("config reload: the group's devices (Id/%d/Devices) and their gateways take "
                 "effect after a restart",
                 os->id);
    if (ns->id == os->id) {
        if (strcmp(ns->topic_power, os->topic_power) != 0) {
            bool up = mqtt_conn_connected(d->mq);
            if (up && os->topic_power[0])
                mosquitto_unsubscribe(mqtt_conn_mosq(d->mq), NULL, os->topic_power);
            if (up && ns->topic_power[0])
                mosquitto_subscribe(mqtt_conn_mosq(d->mq), NULL, ns->topic_power, 0);
            d->meter_valid = d->shown_valid = false;
            log_info("meter topic now %s", ns->topic_power[0] ? ns->topic_power : "(none)");
            ctl_copy_text(os->topic_power, sizeof os->topic_power, ns->topic_power);
        }
        int eep_ms = os->params.min_write_interval_ms; /* from the gateway, not the file */
        os->params = ns->params;
        os->params.min_write_interval_ms = eep_ms;
        os->meter = ns->meter;
        os->lease_ttl_s = ns->lease_ttl_s;
        for (int i = 0; i < d->n_units; i++)
            ctld_unit_link(d, i)->lease_ttl_s = ns->lease_ttl_s;
        os->can_run = ns->can_run;
        os->disable_min = ns->disable_min;
        if (os->winter != ns->winter)
            winter_init(&d->winter);
        os->winter = ns->winter;
        os->winter_p = ns->winter_p;
        os->tel_period_ms = ns->tel_period_ms;
        ctld_tel_stale_update(d); /* the gateways' stated periods over the file's */
        if (memcmp(&ns->surplus, &os->surplus, sizeof ns->surplus) != 0) {
            /* Switches that change or go: off first, then the new set from off. */
            for (size_t i = 0; i < os->surplus.n; i++) {
                if (d->sw.on[i]) {
                    d->sw.on[i] = false;
                    ctld_publish_switch(d, i);
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
    int rc = ctl_settings_load(cfg, s, err, errlen);
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
    if (ctl_settings_load(cfg, &d->set, err, errlen) != 0)
        goto fail;
    if (d->set.n_ids > 1 && d->set.group.n <= 1)
        log_warn("[CHARGE_CONTROL] names %zu devices; this controller drives device %d only "
                 "(the gateway's control lease admits one controller)",
                 d->set.n_ids, d->set.id);
    d->config_path = strdup(config_path ? config_path : CONFIG_DEFAULT_PATH);
    mqtt_node_id(d->set.site.topic_main, d->node, sizeof d->node);
    snprintf(d->client, sizeof d->client, "charge-ctl-%d-%ld", d->set.id, (long)getpid());
    ctl_link_init(&d->link, d->set.id, d->client, d->set.lease_ttl_s, mono_ms());
    s_topics(d);
    ctld_group_setup(d, mono_ms());
    d->enabled = d->set.enable_at_start;
    d->last_state = CTLD_ST_COUNT;
    ctl_state_init(&d->st, mono_ms());

    d->gw = gw_client_from_config(cfg, err, errlen);
    if (!d->gw)
        goto fail;
    for (int i = 0; ctld_is_group(d) && i < d->n_units; i++) {
        if (i != d->own &&
            !(d->units[i].gw = gw_client_from_config_gw(cfg, d->set.group.gw[i], err, errlen)))
            goto fail;
    }
    const char *prefixes[] = {"tel/", "evt/", NULL};
    d->sub = gw_client_sub_from_config(cfg, prefixes, err, errlen);
    if (!d->sub || ctld_gateways_setup(d, cfg, err, errlen) != 0)
        goto fail;

    mqtt_conn_hooks_t hooks = {.on_connect = s_on_connect,
                               .on_disconnect = s_on_disconnect,
                               .on_connect_failed = s_on_connect_failed,
                               .on_log = s_on_log};
    d->mq = mqtt_conn_new(&d->set.mqtt, d->set.client_id, MQTT_PROTOCOL_V311, d->t_avail,
                          d->set.site.pl_offline, &hooks, d, err, errlen);
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
    ctld_gateways_destroy(d);
    zsock_destroy(&d->sub);
    gw_client_destroy(&d->gw);
    for (int i = 0; i < CTL_GROUP_MAX; i++)
        gw_client_destroy(&d->units[i].gw);
    free(d->status_key);
    free(d->group_key);
    free(d->config_path);
    free(d);
    *p = NULL;
}

/* One poll over the MQTT socket, the SUB and the REQ sockets (one per device of a group),
 * until `deadline` at most. */
static void s_poll_once(ctl_daemon_t *d, int64_t deadline, bool gateway)
{
    zmq_pollitem_t items[2 + CTL_GROUP_MAX + 2 * CONFIG_MAX_GATEWAYS];
    int n = 0;
    int mq = -1, isub = -1, ireq[CTL_GROUP_MAX], igw = 0, ngw = 0;
    if (mqtt_conn_pollitem(d->mq, &items[n]) == 0)
        mq = n++;
    for (int i = 0; i < d->n_units; i++)
        ireq[i] = -1;
    if (gateway) {
        items[n] = (zmq_pollitem_t){.socket = zsock_resolve(d->sub), .events = ZMQ_POLLIN};
        isub = n++;
        for (int i = 0; i < d->n_units; i++) {
            gw_client_t *gw = ctld_unit_gw(d, i);
            void *req = gw_client_socket(gw);
            if (!gw_client_pending(gw))
                continue;
            if (req) {
                items[n] = (zmq_pollitem_t){.socket = zsock_resolve(req), .events = ZMQ_POLLIN};
                ireq[i] = n++;
            }
            if (gw_client_deadline(gw) < deadline)
                deadline = gw_client_deadline(gw);
        }
        igw = n;
        ngw = ctld_gateways_pollitems(d, &items[n], (int)(sizeof items / sizeof items[0]) - n);
        n += ngw;
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
    for (int i = 0; i < d->n_units; i++) {
        if (ireq[i] < 0 || !(items[ireq[i]].revents & ZMQ_POLLIN))
            continue;
        cJSON *reply = gw_client_recv(ctld_unit_gw(d, i));
        if (reply && ctld_unit_link(d, i)->inflight != CTL_LINK_REQ_NONE) {
            int64_t t = mono_ms();
            ctld_on_reply(d, i, reply, t);
            ctld_pump(d, t);
        }
        cJSON_Delete(reply);
    }
    if (isub >= 0 && (items[isub].revents & ZMQ_POLLIN))
        ctld_gateway_drain(d, 0, d->sub);
    ctld_gateways_handle(d, &items[igw], ngw);
}

static void s_timers(ctl_daemon_t *d, int64_t now)
{
    if (mqtt_conn_tick(d->mq, now))
        sdnotify_watchdog();
    bool tel = ctld_tel_alive(d, now);
    if (tel != d->tel_was_alive) {
        if (tel)
            log_info("telemetry from the gateway");
        else
            log_warn("no telemetry from the gateway for %d s: the control lease is not renewed "
                     "(the gateway applies its safe state when it lapses)",
                     ctld_unit_silence_ms(d, d->own) / 1000);
        d->tel_was_alive = tel;
    }
    for (int i = 0; i < d->n_units; i++) {
        ctl_link_t *l = ctld_unit_link(d, i);
        gw_client_t *gw = ctld_unit_gw(d, i);
        if (l->inflight == CTL_LINK_REQ_NONE || now < gw_client_deadline(gw))
            continue;
        int rc = gw_client_expire(gw, now);
        if (rc < 0)
            ctld_unit_flags(d, i, ctl_link_timeout(l, now), now);
        else if (rc > 0)
            log_debug("gateway silent: %s resent", ctl_link_req_name(l->inflight));
    }
    /* No renewal confirmed within the TTL: the gateway has let the lease lapse by now. */
    for (int i = 0; i < d->n_units; i++)
        ctld_unit_flags(d, i, ctl_link_tick(ctld_unit_link(d, i), now), now);
    if (now >= d->next_step)
        ctld_step(d, now);
    if (d->republish_at && now >= d->republish_at) {
        d->republish_at = 0;
        ctld_publish_all(d, now);
    }
    ctld_pump(d, now);
    ctld_publish_status(d, now, false);
}

static int64_t s_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t s_deadline(ctl_daemon_t *d, int64_t now)
{
    int64_t dl = s_min(now + 1000, d->next_step);
    dl = s_min(dl, mqtt_conn_deadline(d->mq));
    if (d->republish_at)
        dl = s_min(dl, d->republish_at);
    if (d->status_due)
        dl = s_min(dl, d->status_due);
    for (int i = 0; i < d->n_units; i++) {
        ctl_link_view_t v = ctld_link_view(d, i, now);
        dl = ctl_link_deadline(ctld_unit_link(d, i), &v, dl);
    }
    return dl;
}

/* Orderly exit, MQTT side: the stopped status, `offline` (the broker drops the will on a
 * clean disconnect), then the disconnect itself. */
static void s_close_mqtt(ctl_daemon_t *d)
{
    if (!mqtt_conn_connected(d->mq))
        return;
    ctld_publish_status(d, mono_ms(), true);
    /* No load stays switched on by a controller that is gone. */
    for (size_t i = 0; i < d->set.surplus.n && !d->link.standby; i++) {
        if (d->sw.on[i]) {
            d->sw.on[i] = false;
            ctld_publish_switch(d, i);
        }
    }
    if (mosquitto_publish(mqtt_conn_mosq(d->mq), &d->offline_mid, d->t_avail,
                          (int)strlen(d->set.site.pl_offline), d->set.site.pl_offline, 1,
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
            for (int i = 0; i < d->n_units; i++)
                ctl_link_stop(ctld_unit_link(d, i), now);
            mqtt_conn_stop(d->mq); /* a lost broker is not retried any more */
            ctld_pump(d, now);
        }
        bool over = d->link.stopping;
        for (int i = 0; i < d->n_units; i++)
            over = ctl_link_stop_over(ctld_unit_link(d, i), now) && over;
        if (over)
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
