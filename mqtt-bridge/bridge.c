/*
 * bridge: the bic-mqtt-bridge service loop. See bridge.h for the contract and docs/mqtt.md
 * for every topic it publishes and serves.
 *
 * One thread, one zmq_poll over three things: the MQTT socket (common/mqtt_conn: fetched
 * afresh each pass, POLLOUT only when libmosquitto wants to write, reconnects with back-off),
 * the gateway's PUB via SUB, and the REQ socket of the asynchronous gateway client. Gateway
 * requests are queued and sent one at a time; the MQTT side never waits for the gateway.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mqtt_protocol.h>

#include "bridge_internal.h"
#include "log.h"
#include "monotime.h"
#include "sdnotify.h"
#include "sigflag.h"

/* ---------------------------------------------------------------- settings */

void br_copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static int s_settings(const config_t *cfg, settings_t *s, char *err, size_t n)
{
    memset(s, 0, sizeof *s);
    if (mqtt_site_from_config(cfg, &s->site, err, n) != 0)
        return -1;
    s->publish_period_s = (int)config_int(cfg, "MQTT", "PublishPeriodSec");
    s->lease_ttl_s = (int)config_int(cfg, "MQTT", "ManualLeaseTtlSec");
    int ids[CONFIG_MAX_IDS];
    size_t nids = config_ids(cfg, "DEVICE", ids, CONFIG_MAX_IDS);
    for (size_t i = 0; i < nids && i < MAX_DEVS; i++)
        if (ids[i] >= 0 && ids[i] < MAX_DEVS)
            s->ids[s->nids++] = ids[i];
    nids = config_ids(cfg, "NPB", ids, CONFIG_MAX_IDS); /* [NPB] Id/X: device 64 + X */
    for (size_t i = 0; i < nids && s->nids < MAX_DEVS; i++)
        if (ids[i] >= 0 && ids[i] < 4)
            s->ids[s->nids++] = 64 + ids[i];

    s->cap2v_n = config_cap2v(cfg, s->cap2v_pct, s->cap2v_v, DEV_VIEW_CAP2V);
    if (s->cap2v_n > DEV_VIEW_CAP2V)
        s->cap2v_n = DEV_VIEW_CAP2V;
    s->r_ohm = config_float(cfg, "BAT_0", "InternalResistanceMOhm") / 1000.0;
    nids = config_ids(cfg, "CHARGE_CONTROL", ids, CONFIG_MAX_IDS);
    for (size_t i = 0; i < nids && i < CONFIG_MAX_IDS; i++) {
        if (ids[i] < 0 || ids[i] >= MAX_DEVS)
            continue;
        const char *type = config_str(cfg, "CHARGE_CONTROL", "Id/%d/Type", ids[i]);
        const char *name = strcmp(type, "PID") == 0      ? "ChargePID"
                           : strcmp(type, "Winter") == 0 ? "ChargeWinter"
                                                         : "";
        br_copy(s->ctrl_name[ids[i]], sizeof s->ctrl_name[ids[i]], name);
    }

    mqtt_client_id(config_str(cfg, "MQTT", "AppId"), "bridge", s->client_id, sizeof s->client_id);
    return mqtt_conn_cfg_from_config(cfg, &s->mqtt, err, n);
}

/* ---------------------------------------------------------------- configuration reload */

int br_reload(bridge_t *b, char *err, size_t n)
{
    config_t *cfg = config_load(b->config_path, err, n);
    if (!cfg)
        return -1;
    settings_t ns;
    if (s_settings(cfg, &ns, err, n) != 0) {
        config_destroy(&cfg);
        return -1;
    }
    log_setup_from_config(cfg, "bic-mqtt-bridge");
    config_destroy(&cfg);
    /* What needs a new connection or a new topic tree takes effect at the next start. */
    if (!mqtt_conn_cfg_equal(&ns.mqtt, &b->set.mqtt) || !mqtt_site_equal(&ns.site, &b->set.site))
        log_warn("config reload: [MQTT] connection, topic and discovery settings take effect "
                 "after a restart");
    settings_t old = b->set;
    b->set.publish_period_s = ns.publish_period_s;
    b->set.lease_ttl_s = ns.lease_ttl_s;
    memcpy(b->set.ids, ns.ids, sizeof ns.ids);
    b->set.nids = ns.nids;
    b->set.cap2v_n = ns.cap2v_n;
    memcpy(b->set.cap2v_pct, ns.cap2v_pct, sizeof ns.cap2v_pct);
    memcpy(b->set.cap2v_v, ns.cap2v_v, sizeof ns.cap2v_v);
    b->set.r_ohm = ns.r_ohm;
    memcpy(b->set.ctrl_name, ns.ctrl_name, sizeof ns.ctrl_name);
    for (int d = 0; d < MAX_DEVS; d++)
        if (b->slots[d].dv)
            br_slot_settings(b, &b->slots[d]);
    bool was_dynamic = b->dynamic;
    b->dynamic = ns.nids == 0;
    int64_t now = mono_ms();
    for (int d = 0; d < MAX_DEVS; d++) {
        bool before = was_dynamic ? b->slots[d].dv != NULL : false;
        for (size_t i = 0; i < old.nids; i++)
            before = before || old.ids[i] == d;
        bool after = b->dynamic ? b->slots[d].dv != NULL : br_configured(b, d);
        if (before && !after) {
            br_slot_clear(&b->slots[d]);
            br_unpublish_device(b, d);
        } else if (after && !b->slots[d].dv) {
            br_slot(b, d, true);
            b->next_info = now;
        }
    }
    log_info("configuration reloaded from %s", b->config_path);
    return 0;
}

/* ---------------------------------------------------------------- life cycle */

int bridge_check_config(const config_t *cfg, char *err, size_t errlen)
{
    settings_t s;
    if (s_settings(cfg, &s, err, errlen) != 0)
        return -1;
    return gw_client_check_config(cfg, err, errlen);
}

bridge_t *bridge_new(const config_t *cfg, const char *config_path, char *err, size_t errlen)
{
    bridge_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (s_settings(cfg, &b->set, err, errlen) != 0)
        goto fail;
    b->config_path = strdup(config_path ? config_path : CONFIG_DEFAULT_PATH);
    mqtt_node_id(b->set.site.topic_main, b->node, sizeof b->node);
    b->dynamic = b->set.nids == 0;
    b->start_wall = time(NULL);
    b->gw_last_ms = mono_ms();
    b->gw_alive = false;
    for (size_t i = 0; i < b->set.nids; i++)
        br_slot(b, b->set.ids[i], true);

    b->gw = gw_client_from_config(cfg, err, errlen);
    if (!b->gw)
        goto fail;
    br_copy(b->pub_endpoint, sizeof b->pub_endpoint, config_str(cfg, "GATEWAY", "PubEndpoint"));
    const char *prefixes[] = {"tel/", "evt/", "gw", NULL};
    b->sub = gw_client_sub_from_config(cfg, prefixes, err, errlen);
    if (!b->sub)
        goto fail;

    /* MQTT v5 for response topics and correlation data on commands; a broker that only
     * speaks 3.1.1 makes the bridge fall back (br_on_connect). */
    char topic[600];
    snprintf(topic, sizeof topic, "%s/sys/state", b->set.site.topic_main);
    mqtt_conn_hooks_t hooks = {.on_connect = br_on_connect,
                               .on_disconnect = br_on_disconnect,
                               .on_connect_failed = br_on_connect_failed,
                               .on_log = br_on_log};
    b->mq = mqtt_conn_new(&b->set.mqtt, b->set.client_id, MQTT_PROTOCOL_V5, topic,
                          b->set.site.pl_offline, &hooks, b, err, errlen);
    if (!b->mq)
        goto fail;
    struct mosquitto *mosq = mqtt_conn_mosq(b->mq);
    /* Small state messages should leave at once, not wait for Nagle's delayed ACK. */
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_message_v5_callback_set(mosq, br_on_message);
    mosquitto_publish_callback_set(mosq, br_on_publish);
    srandom((unsigned)(time(NULL) ^ getpid()));
    return b;
fail:
    bridge_destroy(&b);
    return NULL;
}

void bridge_destroy(bridge_t **p)
{
    if (!p || !*p)
        return;
    bridge_t *b = *p;
    mqtt_conn_destroy(&b->mq);
    zsock_destroy(&b->sub);
    gw_client_destroy(&b->gw);
    for (int d = 0; d < MAX_DEVS; d++)
        br_slot_clear(&b->slots[d]);
    while (b->qlen) {
        br_job_free(&b->queue[b->qhead]);
        b->qhead = (b->qhead + 1) % QUEUE_MAX;
        b->qlen--;
    }
    if (b->busy)
        br_job_free(&b->inflight);
    free(b->config_path);
    free(b);
    *p = NULL;
}

/* One poll over the MQTT socket, the SUB and the REQ socket, until `deadline` at most. */
static void s_poll_once(bridge_t *b, int64_t deadline)
{
    zmq_pollitem_t items[3];
    int n = 0;
    int mq = -1, isub = -1, ireq = -1;
    if (mqtt_conn_pollitem(b->mq, &items[n]) == 0)
        mq = n++;
    if (!b->stopping) {
        items[n] = (zmq_pollitem_t){.socket = zsock_resolve(b->sub), .events = ZMQ_POLLIN};
        isub = n++;
        void *req = gw_client_socket(b->gw);
        if (req && gw_client_pending(b->gw)) {
            items[n] = (zmq_pollitem_t){.socket = zsock_resolve(req), .events = ZMQ_POLLIN};
            ireq = n++;
            if (gw_client_deadline(b->gw) < deadline)
                deadline = gw_client_deadline(b->gw);
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
        mqtt_conn_handle(b->mq, items[mq].revents);
    now = mono_ms();
    if (isub >= 0 && (items[isub].revents & ZMQ_POLLIN)) {
        /* Drain what is there, bounded so MQTT is never starved. */
        for (int i = 0; i < 64; i++) {
            char topic[64];
            cJSON *msg = gw_client_sub_recv(b->sub, topic, sizeof topic);
            if (msg) {
                br_on_pub(b, topic, msg, now);
                cJSON_Delete(msg);
            }
            if (!(zsock_events(b->sub) & ZMQ_POLLIN))
                break;
        }
    }
    if (ireq >= 0 && (items[ireq].revents & ZMQ_POLLIN)) {
        cJSON *reply = gw_client_recv(b->gw);
        if (reply && b->busy) {
            job_t j = b->inflight;
            b->busy = false;
            memset(&b->inflight, 0, sizeof b->inflight);
            br_on_reply(b, &j, reply, now);
            br_job_free(&j);
        }
        cJSON_Delete(reply);
    }
}

static void s_timers(bridge_t *b, int64_t now)
{
    if (b->charge_sub && now >= b->charge_hold_until && mqtt_conn_connected(b->mq)) {
        char topic[600];
        snprintf(topic, sizeof topic, "%s/inv/+/charge", b->set.site.topic_main);
        mosquitto_unsubscribe(mqtt_conn_mosq(b->mq), NULL, topic);
        b->charge_sub = false;
    }
    if (mqtt_conn_tick(b->mq, now))
        sdnotify_watchdog();
    if (b->busy && now >= gw_client_deadline(b->gw)) {
        if (gw_client_expire(b->gw, now) < 0) {
            job_t j = b->inflight;
            b->busy = false;
            memset(&b->inflight, 0, sizeof b->inflight);
            br_on_gateway_lost(b, &j, now);
            br_job_free(&j);
        }
    }
    if (b->gw_alive && now - b->gw_last_ms > GW_SILENCE_MS)
        br_set_gw_alive(b, false, now);
    if (!b->gw_alive && !b->gw_silence_warned && now - b->gw_last_ms > GW_SILENCE_MS) {
        /* Often a wrong [GATEWAY] PubEndpoint, or the gateway not running. */
        log_warn("nothing heard from the gateway on %s yet; devices stay offline", b->pub_endpoint);
        b->gw_silence_warned = true;
    }
    if (now >= b->next_info && b->gw_alive) {
        b->next_info = now + INFO_RETRY_MS; /* until the reply sets the next hour */
        b->last_info_ms = now;
        br_request_info(b);
    }
    if (b->republish_at && now >= b->republish_at) {
        b->republish_at = 0;
        br_publish_all(b, now);
    }
    if (mqtt_conn_connected(b->mq) && now >= b->next_app)
        br_publish_app(b, now);
    /* Periodic republish of the seed topics (each topic keeps its own period), old SOC and
     * surplus values: on the first wake-up after one is due. */
    if (mqtt_conn_connected(b->mq) && now >= br_periodic_due(b, now)) {
        b->periodic_after = now + 1000;
        for (int d = 0; d < MAX_DEVS; d++) {
            slot_t *s = &b->slots[d];
            if (!s->dv)
                continue;
            if (s->soc_ms && now - s->soc_ms > SOC_MAX_AGE_MS) {
                log_warn("dev %d: no SOC from the controller for %d s: shown as unknown", d,
                         SOC_MAX_AGE_MS / 1000);
                dev_view_expire_soc(s->dv);
                s->soc_ms = 0;
            }
            if (s->surplus_ms && now - s->surplus_ms > SURPLUS_MAX_AGE_MS) {
                dev_view_set_surplus(s->dv, NAN);
                s->surplus_ms = 0;
            }
            br_publish_device(b, s, now);
        }
    }
    br_pump_queue(b);
}

static int64_t s_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The next time s_timers() has something to do: the loop sleeps until then (or news). */
static int64_t s_deadline(const bridge_t *b, int64_t now)
{
    int64_t dl = mqtt_conn_deadline(b->mq);
    if (b->republish_at)
        dl = s_min(dl, b->republish_at);
    if (b->charge_sub && mqtt_conn_connected(b->mq))
        dl = s_min(dl, b->charge_hold_until);
    if (b->busy)
        dl = s_min(dl, gw_client_deadline(b->gw));
    if (b->gw_alive || !b->gw_silence_warned)
        dl = s_min(dl, b->gw_last_ms + GW_SILENCE_MS + 1);
    if (b->gw_alive)
        dl = s_min(dl, b->next_info);
    if (mqtt_conn_connected(b->mq)) {
        dl = s_min(dl, b->next_app);
        /* a periodic republish is looked at within a second of its due time, as when it was
         * looked for once a second: on a wake-up for telemetry if one comes by then */
        int64_t due = br_periodic_due(b, now);
        if (due != INT64_MAX)
            dl = s_min(dl, due + PERIODIC_SLACK_MS);
    }
    return dl;
}

static void s_shutdown(bridge_t *b)
{
    b->stopping = true;
    mqtt_conn_stop(b->mq);
    if (!mqtt_conn_connected(b->mq))
        return;
    char topic[600];
    snprintf(topic, sizeof topic, "%s/sys/state", b->set.site.topic_main);
    /* The broker drops the will on a clean disconnect: say offline ourselves. */
    if (mosquitto_publish(mqtt_conn_mosq(b->mq), &b->offline_mid, topic,
                          (int)strlen(b->set.site.pl_offline), b->set.site.pl_offline, 1,
                          true) == MOSQ_ERR_SUCCESS) {
        int64_t deadline = mono_ms() + SHUTDOWN_FLUSH_MS;
        while (!b->offline_acked && mqtt_conn_connected(b->mq) && mono_ms() < deadline)
            s_poll_once(b, deadline);
    }
    mqtt_conn_disconnect(b->mq);
    int64_t deadline = mono_ms() + 200;
    while (mqtt_conn_want_write(b->mq) && mono_ms() < deadline)
        s_poll_once(b, deadline);
}

int bridge_run(bridge_t *b)
{
    log_info("bridge for %s on %s:%d, gateway %s, %zu configured device(s)%s",
             b->set.site.topic_main, b->set.mqtt.host, b->set.mqtt.port, gw_client_endpoint(b->gw),
             b->set.nids, b->dynamic ? " (serving every device the gateway reports)" : "");
    mqtt_conn_start(b->mq, mono_ms());
    sdnotify_ready();
    while (!sigflag_stop()) {
        if (sigflag_reload_take()) {
            char err[1024];
            if (br_reload(b, err, sizeof err) != 0)
                log_error("SIGHUP: configuration kept: %s", err);
        }
        s_poll_once(b, s_deadline(b, mono_ms()));
        s_timers(b, mono_ms());
    }
    log_info("stopping (signal %d)", sigflag_stop_signal());
    sdnotify_stopping();
    s_shutdown(b);
    return 0;
}
