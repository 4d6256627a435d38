/*
 * bridge_mqtt: what arrives on MQTT: commands (validated by bridge_cmd, queued as gateway
 * requests, answered on `<topic>/result`), the controllers' SOC, surplus and control topics,
 * the retained `charge` counters at start, and the libmosquitto callbacks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mqtt_protocol.h>

#include "bridge_internal.h"
#include "log.h"
#include "monotime.h"
#include "sdnotify.h"

/* ---------------------------------------------------------------- MQTT commands */

static void s_publish_refusal(bridge_t *b, const reply_to_t *r, bcmd_kind_t kind, const cJSON *corr,
                              const char *what, const char *code, const char *msg)
{
    char *p = bcmd_result_error(kind, corr, what, code, msg, NULL);
    br_send_result(b, r, p);
    free(p);
}

/* `<topic>/result`, or the v5 response topic when the request names a usable one. */
static void s_reply_to(const struct mosquitto_message *m, const mosquitto_property *props,
                       reply_to_t *r)
{
    snprintf(r->topic, sizeof r->topic, "%s/result", m->topic);
    r->corr_len = -1;
    char *rt = NULL;
    if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false) && rt) {
        if (*rt && strlen(rt) < sizeof r->topic && !strpbrk(rt, "+#"))
            snprintf(r->topic, sizeof r->topic, "%s", rt);
        else
            log_warn("%s: response topic ignored (empty, wildcard or too long)", m->topic);
        free(rt);
    }
    void *cd = NULL;
    uint16_t cdlen = 0;
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cdlen, false) &&
        cd) {
        if (cdlen <= sizeof r->corr) {
            memcpy(r->corr, cd, cdlen);
            r->corr_len = cdlen;
        } else {
            log_warn("%s: correlation data over %zu bytes not echoed", m->topic, sizeof r->corr);
        }
        free(cd);
    }
}

static void s_on_command(bridge_t *b, const struct mosquitto_message *m,
                         const mosquitto_property *props, int dev, bcmd_kind_t kind)
{
    reply_to_t reply;
    s_reply_to(m, props, &reply);
    if (m->retain) {
        /* A retained command would replay an old setpoint at every reconnect. */
        log_warn("%s: retained command ignored (publish commands without the retain flag)",
                 m->topic);
        s_publish_refusal(b, &reply, kind, NULL, NULL, "retained",
                          "retained command ignored; publish commands without the retain flag "
                          "and clear the retained message");
        return;
    }
    slot_t *s = br_slot(b, dev, false);
    bcmd_opts_t opts = {.lease_ttl_s = b->set.lease_ttl_s,
                        .operation = s ? dev_view_operation(s->dv) : -1,
                        .curve_config = s ? dev_view_curve_config(s->dv) : -1};
    bcmd_t cmd;
    const char *code = NULL;
    char err[256];
    if (bcmd_parse(kind, dev, m->payload, (size_t)(m->payloadlen > 0 ? m->payloadlen : 0), &opts,
                   &cmd, &code, err, sizeof err) != 0) {
        log_warn("%s: refused: %s: %s", m->topic, code, err);
        s_publish_refusal(b, &reply, kind, cmd.corr, NULL, code, err);
        bcmd_clear(&cmd);
        return;
    }
    if (!s && !cmd.reload) {
        char msg[128];
        snprintf(msg, sizeof msg, "device %d is not configured on this bridge", dev);
        log_warn("%s: refused: %s", m->topic, msg);
        s_publish_refusal(b, &reply, kind, cmd.corr, cmd.what, "unknown_device", msg);
        bcmd_clear(&cmd);
        return;
    }
    if (!cmd.reload && !b->gw_alive) {
        /* Do not let commands wait out the client's retries when the gateway is known to be
         * silent: say so at once. */
        log_warn("%s: refused: the gateway is not reachable", m->topic);
        s_publish_refusal(b, &reply, kind, cmd.corr, cmd.what, "gateway_unreachable",
                          "no message from the gateway for a while; nothing was sent");
        bcmd_clear(&cmd);
        return;
    }
    if (cmd.reload) {
        char rerr[1024];
        if (br_reload(b, rerr, sizeof rerr) == 0) {
            char *p = bcmd_result_ok(kind, cmd.corr, cmd.what, NULL);
            br_send_result(b, &reply, p);
            free(p);
        } else {
            log_error("cfgReload: configuration kept: %s", rerr);
            s_publish_refusal(b, &reply, kind, cmd.corr, cmd.what, "bad_config", rerr);
        }
        bcmd_clear(&cmd);
        return;
    }
    log_info("%s: %s", m->topic, cmd.what);
    job_t j = {.origin = ORIGIN_CMD, .kind = kind, .dev = dev, .req = cmd.req, .corr = cmd.corr};
    br_copy(j.what, sizeof j.what, cmd.what);
    j.reply = reply;
    cJSON *corr_copy = cmd.corr ? cJSON_Duplicate(cmd.corr, true) : NULL;
    if (br_enqueue(b, &j) != 0) {
        log_warn("%s: refused: gateway request queue full", m->topic);
        s_publish_refusal(b, &reply, kind, corr_copy, cmd.what, "busy",
                          "too many commands waiting for the gateway; retry later");
    }
    cJSON_Delete(corr_copy);
}

/* A plain number of at most 32 characters (surrounding white space allowed) into V; BUF
 * (40 bytes) gets the text for messages. False when it is not one. */
static bool s_payload_num(const struct mosquitto_message *m, char *buf, double *v)
{
    buf[0] = '\0';
    if (m->payloadlen <= 0 || m->payloadlen > 32)
        return false;
    memcpy(buf, m->payload, (size_t)m->payloadlen);
    buf[m->payloadlen] = '\0';
    char *end;
    *v = strtod(buf, &end);
    while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')
        end++;
    return end != buf && !*end && isfinite(*v);
}

static void s_on_soc(bridge_t *b, const struct mosquitto_message *m, int dev)
{
    slot_t *s = br_slot(b, dev, false);
    char buf[40];
    double v;
    if (!s)
        return;
    if (!s_payload_num(m, buf, &v) || dev_view_set_soc(s->dv, v) != 0) {
        log_warn("%s: '%s' is not a state of charge; allowed: a number 0-100", m->topic, buf);
        return;
    }
    s->soc_ms = mono_ms();
    br_publish_device(b, s, mono_ms());
}

/* `<T>/ctl/<id>/surplus`: the controller's surplus in W (the seed's surplusP). */
static void s_on_surplus(bridge_t *b, const struct mosquitto_message *m, int dev)
{
    slot_t *s = br_slot(b, dev, false);
    char buf[40];
    double v;
    if (!s)
        return;
    if (!s_payload_num(m, buf, &v) || v < 0 || v > 1e6) {
        log_warn("%s: '%s' is not a surplus power; allowed: a number of W, 0-1000000", m->topic,
                 buf);
        return;
    }
    dev_view_set_surplus(s->dv, v);
    s->surplus_ms = mono_ms();
    br_publish_device(b, s, s->surplus_ms);
}

/* `<T>` MID `<id>` SUFFIX (e.g. "/inv/", "/charge") -> id, or -1. */
static int s_topic_dev(const bridge_t *b, const char *topic, const char *mid, const char *suffix)
{
    size_t tl = strlen(b->set.site.topic_main), ml = strlen(mid);
    if (strncmp(topic, b->set.site.topic_main, tl) != 0 || strncmp(topic + tl, mid, ml) != 0)
        return -1;
    const char *num = topic + tl + ml;
    char *end;
    long id = strtol(num, &end, 10);
    if (end == num || *num < '0' || *num > '9' || strcmp(end, suffix) != 0 || id >= MAX_DEVS)
        return -1;
    return (int)id;
}

/* `control/set 1` takes control back at once, as in the seed: a manual hold that a
 * `charge/set` started (the bridge's lease on the device) ends here, so the controller's
 * next attempt gets the lease. The controller answers the command itself. */
static void s_on_control(bridge_t *b, const struct mosquitto_message *m, int dev)
{
    if (m->retain || m->payloadlen <= 0 || m->payloadlen > 64 || !br_slot(b, dev, false))
        return;
    char buf[72];
    memcpy(buf, m->payload, (size_t)m->payloadlen);
    buf[m->payloadlen] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '"')
        p++;
    size_t len = strcspn(p, " \t\r\n\"");
    bool on = (len == 1 && *p == '1') || (len == 2 && strncasecmp(p, "on", 2) == 0) ||
              (len == 4 && strncasecmp(p, "true", 4) == 0);
    if (!on)
        return;
    job_t j = {.origin = ORIGIN_RELEASE, .dev = dev, .req = cJSON_CreateObject()};
    if (!j.req)
        return;
    cJSON_AddNumberToObject(j.req, "v", 1);
    cJSON_AddStringToObject(j.req, "op", "lease");
    cJSON_AddStringToObject(j.req, "action", "release");
    cJSON_AddNumberToObject(j.req, "dev", dev);
    cJSON_AddStringToObject(j.req, "client", BCMD_CLIENT);
    br_copy(j.what, sizeof j.what, "release");
    if (br_enqueue(b, &j) != 0)
        log_warn("%s: the manual hold could not be ended: gateway request queue full", m->topic);
}

/* The energy counters live on in the broker: the retained `charge` message of an earlier run
 * carries them, so a restarted bridge continues from there instead of from zero. Counters
 * only ever move up (the larger value wins), so this cannot make them run backwards. */
static void s_on_retained_charge(bridge_t *b, const struct mosquitto_message *m, int dev)
{
    slot_t *s = br_slot(b, dev, false);
    if (!s || !m->retain || m->payloadlen <= 0 || m->payloadlen > 1024)
        return;
    cJSON *j = cJSON_ParseWithLength(m->payload, (size_t)m->payloadlen);
    const cJSON *in = cJSON_GetObjectItem(j, "chargedTotalKWh");
    const cJSON *out = cJSON_GetObjectItem(j, "dischargedTotalKWh");
    if (cJSON_IsNumber(in) && cJSON_IsNumber(out) && in->valuedouble >= 0 &&
        out->valuedouble >= 0) {
        double cin, cout;
        dev_view_energy(s->dv, &cin, &cout);
        double rin = in->valuedouble * 1000.0, rout = out->valuedouble * 1000.0;
        if (rin > cin || rout > cout) {
            dev_view_set_energy(s->dv, rin > cin ? rin : cin, rout > cout ? rout : cout);
            log_info("dev %d: energy counters continue from %.3f / %.3f kWh", dev, in->valuedouble,
                     out->valuedouble);
        }
    }
    cJSON_Delete(j);
}

/* ---------------------------------------------------------------- libmosquitto callbacks */

void br_on_connect(mqtt_conn_t *c, void *user, int rc)
{
    bridge_t *b = user;
    struct mosquitto *mosq = mqtt_conn_mosq(c);
    if (rc != 0) {
        if (mqtt_conn_protocol(c) == MQTT_PROTOCOL_V5 &&
            (rc == CONNACK_REFUSED_PROTOCOL_VERSION ||
             rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION)) {
            log_warn("broker does not speak MQTT v5: using 3.1.1 (results then carry only "
                     "the payload's id)");
            mqtt_conn_set_protocol(c, MQTT_PROTOCOL_V311);
            return;
        }
        log_error("broker refused the connection: %s", mqtt_conn_refusal(c, rc));
        return; /* the library closes the socket; on_disconnect schedules the retry */
    }
    b->conn_count++;
    log_info("connected to %s:%d as %s", b->set.mqtt.host, b->set.mqtt.port, b->set.client_id);
    char topic[600];
    for (int k = 0; k < BCMD_KINDS; k++) {
        snprintf(topic, sizeof topic, "%s/inv/+/%s/set", b->set.site.topic_main,
                 bcmd_kind_name((bcmd_kind_t)k));
        mosquitto_subscribe(mosq, NULL, topic, 1);
    }
    snprintf(topic, sizeof topic, "%s/ctl/+/soc", b->set.site.topic_main);
    mosquitto_subscribe(mosq, NULL, topic, 0);
    snprintf(topic, sizeof topic, "%s/ctl/+/surplus", b->set.site.topic_main);
    mosquitto_subscribe(mosq, NULL, topic, 0);
    snprintf(topic, sizeof topic, "%s/inv/+/control/set", b->set.site.topic_main);
    mosquitto_subscribe(mosq, NULL, topic, 1);
    /* Before anything is published: the broker delivers the retained `charge` messages
     * (energy counters of the previous run) before it stores our new ones. */
    snprintf(topic, sizeof topic, "%s/inv/+/charge", b->set.site.topic_main);
    mosquitto_subscribe(mosq, NULL, topic, 1);
    if (b->set.site.ha_discovery)
        mosquitto_subscribe(mosq, NULL, b->set.site.ha_status, 1);
    /* Our own discovery topics: stale ones (devices no longer configured, or all of them
     * when discovery is off) arrive retained and are cleared. */
    snprintf(topic, sizeof topic, "%s/+/%s/+/config", b->set.site.ha_prefix, b->node);
    mosquitto_subscribe(mosq, NULL, topic, 1);
    b->charge_hold_until = mono_ms() + 1000;
    b->charge_sub = true;
    br_publish_all(b, mono_ms()); /* `running` on <T>/sys/state among it */
    sdnotify_status("connected to %s:%d", b->set.mqtt.host, b->set.mqtt.port);
}

void br_on_disconnect(mqtt_conn_t *c, void *user, int rc, int retry_ms)
{
    log_warn("disconnected from the broker (%s); retrying in %d ms", mqtt_conn_loss(c, rc),
             retry_ms);
}

void br_on_connect_failed(mqtt_conn_t *c, void *user, const char *why, int retry_ms)
{
    bridge_t *b = user;
    log_warn("cannot connect to %s:%d (%s); retrying in %d ms", b->set.mqtt.host, b->set.mqtt.port,
             why, retry_ms);
}

void br_on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    bridge_t *b = mqtt_conn_user(obj);
    if (b->stopping && mid == b->offline_mid)
        b->offline_acked = true;
}

void br_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
                   const mosquitto_property *props)
{
    bridge_t *b = mqtt_conn_user(obj);
    int dev;
    bcmd_kind_t kind;
    if (bcmd_topic_parse(m->topic, b->set.site.topic_main, &dev, &kind)) {
        s_on_command(b, m, props, dev, kind);
        return;
    }
    if (b->set.site.ha_discovery && strcmp(m->topic, b->set.site.ha_status) == 0) {
        if (m->payloadlen == 6 && memcmp(m->payload, "online", 6) == 0) {
            /* A short random delay spreads the burst when many clients react at once. */
            b->republish_at = mono_ms() + 1000 + (int64_t)(random() % 2000);
            log_info("Home Assistant is online: republishing discovery and states");
        }
        return;
    }
    ha_ctx_t ctx = br_ha_ctx(b);
    if (ha_topic_dev(&ctx, m->topic, &dev)) {
        if (m->payloadlen == 0)
            return;
        bool keep = b->set.site.ha_discovery && (dev < 0 || b->dynamic || br_slot(b, dev, false));
        if (!keep) {
            log_info("removing stale discovery entity %s", m->topic);
            br_publish(b, m->topic, "", 1, true);
        }
        return;
    }
    int sdev = s_topic_dev(b, m->topic, "/ctl/", "/soc");
    if (sdev >= 0) {
        s_on_soc(b, m, sdev);
        return;
    }
    sdev = s_topic_dev(b, m->topic, "/ctl/", "/surplus");
    if (sdev >= 0) {
        s_on_surplus(b, m, sdev);
        return;
    }
    int cdev = s_topic_dev(b, m->topic, "/inv/", "/charge");
    if (cdev >= 0) {
        s_on_retained_charge(b, m, cdev);
        return;
    }
    cdev = s_topic_dev(b, m->topic, "/inv/", "/control/set");
    if (cdev >= 0)
        s_on_control(b, m, cdev);
}

void br_on_log(mqtt_conn_t *c, void *user, int level, const char *str)
{
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        log_debug("mosquitto: %s", str);
}
