/*
 * bridge_pub: the devices' state on MQTT: the slots behind the seed topics, their payloads
 * (built by dev_view, sent when changed or due), the bridge's `app` topic and the Home
 * Assistant discovery sets; and the publishing helpers the other bridge files use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mqtt_protocol.h>

#include "bridge_internal.h"
#include "log.h"
#include "monotime.h"
#include "numconv.h"

static const char *const s_pub_names[PUB_COUNT] = {"availability", "info", "state", "charge",
                                                   "fault"};

/* The dev_view payload behind each seed topic (availability has none). */
static const dev_view_payload_t s_pub_view[PUB_COUNT] = {[PUB_AVAIL] = DEV_VIEW_P_COUNT,
                                                         [PUB_INFO] = DEV_VIEW_P_INFO,
                                                         [PUB_STATE] = DEV_VIEW_P_STATE,
                                                         [PUB_CHARGE] = DEV_VIEW_P_CHARGE,
                                                         [PUB_FAULT] = DEV_VIEW_P_FAULT};

/* ---------------------------------------------------------------- helpers */

static uint64_t s_fnv(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ 0xff; /* separates "ab"+"c" from "a"+"bc" */
}

ha_ctx_t br_ha_ctx(const bridge_t *b)
{
    ha_ctx_t c = {.prefix = b->set.site.ha_prefix,
                  .topic_main = b->set.site.topic_main,
                  .node = b->node,
                  .avail_online = b->set.site.pl_online,
                  .avail_offline = b->set.site.pl_offline,
                  .sw_version = BIC_VERSION};
    return c;
}

int br_publish(bridge_t *b, const char *topic, const char *payload, int qos, bool retain)
{
    if (!mqtt_conn_connected(b->mq))
        return -1;
    int rc = mosquitto_publish(mqtt_conn_mosq(b->mq), NULL, topic, (int)strlen(payload), payload,
                               qos, retain);
    if (rc != MOSQ_ERR_SUCCESS) {
        log_warn("publish %s failed: %s", topic, mosquitto_strerror(rc));
        return -1;
    }
    return 0;
}

/* A command result: QoS 1, not retained, with the v5 correlation data when there was one. */
void br_send_result(bridge_t *b, const reply_to_t *r, const char *payload)
{
    if (!payload || !mqtt_conn_connected(b->mq))
        return;
    if (r->corr_len < 0 || mqtt_conn_protocol(b->mq) != MQTT_PROTOCOL_V5) {
        br_publish(b, r->topic, payload, 1, false);
        return;
    }
    mosquitto_property *props = NULL;
    int rc = mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, r->corr,
                                           (uint16_t)r->corr_len);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_publish_v5(mqtt_conn_mosq(b->mq), NULL, r->topic, (int)strlen(payload),
                                  payload, 1, false, props);
    if (rc != MOSQ_ERR_SUCCESS)
        log_warn("publish %s failed: %s", r->topic, mosquitto_strerror(rc));
    mosquitto_property_free_all(&props);
}

bool br_configured(const bridge_t *b, int dev)
{
    for (size_t i = 0; i < b->set.nids; i++)
        if (b->set.ids[i] == dev)
            return true;
    return false;
}

/* The device address in a gateway message's "dev": a whole number 0 to MAX_DEVS-1, else -1. */
int br_msg_dev(const cJSON *id)
{
    int64_t dev;
    return cJSON_IsNumber(id) && numconv_whole(id->valuedouble, 0, MAX_DEVS - 1, &dev) == 0
               ? (int)dev
               : -1;
}

/* What the view takes from the configuration (at creation and after a reload). */
void br_slot_settings(const bridge_t *b, slot_t *s)
{
    int dev = dev_view_dev(s->dv);
    dev_view_set_battery(s->dv, b->set.cap2v_pct, b->set.cap2v_v, b->set.cap2v_n, b->set.r_ohm);
    dev_view_set_ctrl_name(s->dv, b->set.ctrl_name[dev]);
}

slot_t *br_slot(bridge_t *b, int dev, bool create)
{
    if (dev < 0 || dev >= MAX_DEVS)
        return NULL;
    slot_t *s = &b->slots[dev];
    if (!s->dv && create && (b->dynamic || br_configured(b, dev))) {
        s->dv = dev_view_new(dev);
        if (s->dv) {
            dev_view_set_gateway_reachable(s->dv, b->gw_alive);
            br_slot_settings(b, s);
        }
    }
    return s->dv ? s : NULL;
}

static void s_slot_forget(slot_t *s)
{
    for (int i = 0; i < PUB_COUNT; i++) {
        free(s->last[i]);
        s->last[i] = NULL;
        s->last_ms[i] = 0;
        free(s->key[i]);
        s->key[i] = NULL;
        s->key_len[i] = 0;
    }
    s->disc_hash = 0;
    s->disc_inputs = 0;
}

void br_slot_clear(slot_t *s)
{
    s_slot_forget(s);
    dev_view_destroy(&s->dv);
    s->want_regs = false;
    s->tel0_ms = 0;
}

/* Forget what was published so that the next pass publishes everything again. */
static void s_forget_all(bridge_t *b)
{
    for (int d = 0; d < MAX_DEVS; d++)
        s_slot_forget(&b->slots[d]);
    b->bridge_disc_hash = 0;
}

/* ---------------------------------------------------------------- publishing */

static uint64_t s_fnv_bytes(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= ((const unsigned char *)p)[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* What a device's discovery set is built from besides the settings: its identity, features
 * and register ranges. Building the set to compare it cost most of the bridge's CPU while it
 * was done on every telemetry message; now it is built when these change. */
static uint64_t s_disc_inputs(const dev_view_t *dv)
{
    static const char *const limits[] = {"vout_v", "rev_vout_v", "iout_a", "rev_iout_a"};
    const char *strs[] = {dev_view_model(dv), dev_view_firmware(dv), dev_view_serial(dv)};
    int ints[] = {dev_view_dev(dv), dev_view_variant(dv), dev_view_has_fans(dv),
                  dev_view_has_soc(dv), dev_view_is_npb(dv)};
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        h = s_fnv(h, strs[i] ? strs[i] : "");
    h = s_fnv_bytes(h, ints, sizeof ints);
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        double v[3] = {0, 0, 0};
        v[0] = dev_view_limit(dv, limits[i], &v[1], &v[2]);
        h = s_fnv_bytes(h, v, sizeof v);
    }
    return h | 1; /* never 0 (0 = not yet built) */
}

static void s_publish_discovery(bridge_t *b, slot_t *s)
{
    if (!b->set.site.ha_discovery || !mqtt_conn_connected(b->mq))
        return;
    uint64_t inputs = s_disc_inputs(s->dv);
    if (s->disc_hash && inputs == s->disc_inputs)
        return;
    s->disc_inputs = inputs;
    ha_ctx_t ctx = br_ha_ctx(b);
    ha_list_t list = {0};
    int dev = dev_view_dev(s->dv);
    if (ha_device_msgs(&ctx, s->dv, &list) != 0) {
        log_error("dev %d: cannot build discovery messages (out of memory)", dev);
        ha_list_clear(&list);
        return;
    }
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < list.count; i++)
        h = s_fnv(s_fnv(h, list.msgs[i].topic), list.msgs[i].payload);
    if (h != s->disc_hash) {
        for (size_t i = 0; i < list.count; i++)
            br_publish(b, list.msgs[i].topic, list.msgs[i].payload, 1, true);
        log_info("dev %d: published %zu discovery entities", dev, list.count);
        s->disc_hash = h;
    }
    ha_list_clear(&list);
}

static void s_publish_bridge_discovery(bridge_t *b)
{
    if (!b->set.site.ha_discovery || !mqtt_conn_connected(b->mq) || b->bridge_disc_hash)
        return;
    ha_ctx_t ctx = br_ha_ctx(b);
    ha_list_t list = {0};
    if (ha_bridge_msgs(&ctx, &list) == 0) {
        for (size_t i = 0; i < list.count; i++)
            br_publish(b, list.msgs[i].topic, list.msgs[i].payload, 1, true);
        b->bridge_disc_hash = 1;
    }
    ha_list_clear(&list);
}

static char *s_seed_payload(const slot_t *s, int which)
{
    if (which == PUB_AVAIL)
        return strdup(dev_view_availability(s->dv));
    return dev_view_json(s->dv, s_pub_view[which]);
}

/* Keeps the key of the payload last[i] holds (none when it did not fit). */
static void s_keep_key(slot_t *s, int i, const unsigned char *key, size_t n)
{
    if (n == 0 || n > KEY_MAX) {
        s->key_len[i] = 0;
        return;
    }
    if (!s->key[i] && !(s->key[i] = malloc(KEY_MAX))) {
        s->key_len[i] = 0;
        return;
    }
    memcpy(s->key[i], key, n);
    s->key_len[i] = n;
}

/* Seed topics of one device: on change, and again after PublishPeriodSec. A payload whose
 * key (dev_view_key) is that of the last one published is not built: it is the same. */
void br_publish_device(bridge_t *b, slot_t *s, int64_t now)
{
    if (!mqtt_conn_connected(b->mq) || !s->dv)
        return;
    s_publish_discovery(b, s);
    int dev = dev_view_dev(s->dv);
    int64_t period = (int64_t)b->set.publish_period_s * 1000;
    for (int i = 0; i < PUB_COUNT; i++) {
        if (i == PUB_CHARGE && now < b->charge_hold_until)
            continue;
        /* The first state carries every value (both fans, as the seed's first one did):
         * the gateway reads the slow registers one by one, so wait for them a little. */
        if (i == PUB_STATE && !s->last[i] && !dev_view_state_complete(s->dv) &&
            (!s->tel0_ms || now - s->tel0_ms < STATE_WAIT_MS))
            continue;
        bool due = !s->last[i] || now - s->last_ms[i] >= period;
        unsigned char key[KEY_MAX];
        size_t klen = 0;
        if (s_pub_view[i] != DEV_VIEW_P_COUNT) {
            klen = dev_view_key(s->dv, s_pub_view[i], key, sizeof key);
            if (klen == 0)
                continue; /* nothing to say yet */
            if (!due && klen <= sizeof key && klen == s->key_len[i] &&
                memcmp(key, s->key[i], klen) == 0)
                continue;
        }
        char *p = s_seed_payload(s, i);
        if (!p)
            continue;
        bool changed = !s->last[i] || strcmp(s->last[i], p) != 0;
        if (!changed && !due) {
            s_keep_key(s, i, key, klen);
            free(p);
            continue;
        }
        char topic[600];
        snprintf(topic, sizeof topic, "%s/inv/%d/%s", b->set.site.topic_main, dev, s_pub_names[i]);
        if (br_publish(b, topic, p, i == PUB_AVAIL ? 1 : 0, true) == 0) {
            free(s->last[i]);
            s->last[i] = p;
            s->last_ms[i] = now;
            s_keep_key(s, i, key, klen);
        } else {
            free(p);
        }
    }
}

/* When a device's topics next need a look without news from the gateway: a periodic
 * republish, the first state's wait for slow values, an old SOC or surplus. INT64_MAX:
 * nothing is due. */
static int64_t s_slot_due(const bridge_t *b, const slot_t *s)
{
    int64_t due = INT64_MAX;
    int64_t period = (int64_t)b->set.publish_period_s * 1000;
    for (int i = 0; i < PUB_COUNT; i++) {
        int64_t t = s->last[i] ? s->last_ms[i] + period : INT64_MAX;
        if (i == PUB_STATE && !s->last[i] && s->tel0_ms)
            t = s->tel0_ms + STATE_WAIT_MS;
        if (t < due)
            due = t;
    }
    if (s->soc_ms && s->soc_ms + SOC_MAX_AGE_MS + 1 < due)
        due = s->soc_ms + SOC_MAX_AGE_MS + 1;
    if (s->surplus_ms && s->surplus_ms + SURPLUS_MAX_AGE_MS + 1 < due)
        due = s->surplus_ms + SURPLUS_MAX_AGE_MS + 1;
    return due;
}

/* The earliest s_slot_due() of the devices; the charge topics also once their hold ends. */
int64_t br_periodic_due(const bridge_t *b, int64_t now)
{
    int64_t due = now < b->charge_hold_until ? b->charge_hold_until : INT64_MAX;
    for (int d = 0; d < MAX_DEVS; d++) {
        if (!b->slots[d].dv)
            continue;
        int64_t t = s_slot_due(b, &b->slots[d]);
        if (t < due)
            due = t;
    }
    return due < b->periodic_after ? b->periodic_after : due;
}

void br_publish_app(bridge_t *b, int64_t now)
{
    if (!mqtt_conn_connected(b->mq))
        return;
    /* The seed's time format: yymmdd_HH:MM:SS, local time. */
    char start[32], ts[48];
    struct tm tm;
    localtime_r(&b->start_wall, &tm);
    snprintf(start, sizeof start, "%02d%02d%02d_%02d:%02d:%02d", tm.tm_year % 100, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    int64_t wall = wall_ms();
    time_t secs = (time_t)(wall / 1000);
    localtime_r(&secs, &tm);
    snprintf(ts, sizeof ts, "%02d%02d%02d_%02d:%02d:%02d.%03d", tm.tm_year % 100, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(wall % 1000));
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddStringToObject(o, "appVer", BIC_VERSION);
    cJSON_AddStringToObject(o, "appName", "bic2mqtt");
    cJSON_AddStringToObject(o, "startTS", start);
    cJSON_AddStringToObject(o, "ts", ts);
    cJSON_AddNumberToObject(o, "conTimeMin", (double)((secs - b->start_wall) / 60));
    cJSON_AddNumberToObject(o, "conCnt", b->conn_count);
    cJSON_AddStringToObject(o, "program", "bic-mqtt-bridge");
    cJSON_AddBoolToObject(o, "gateway", b->gw_alive);
    cJSON_AddStringToObject(o, "bus", b->gw_bus[0] ? b->gw_bus : "unknown");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s)
        br_publish(b, b->set.site.topic_main, s, 0, true);
    free(s);
    b->next_app = now + APP_PERIOD_MS;
}

/* Everything, in Home Assistant's preferred order: discovery, availability, states. */
void br_publish_all(bridge_t *b, int64_t now)
{
    s_forget_all(b);
    s_publish_bridge_discovery(b);
    for (int d = 0; d < MAX_DEVS; d++)
        if (b->slots[d].dv)
            s_publish_discovery(b, &b->slots[d]);
    /* The bridge's own availability too: after Home Assistant's birth message the broker
     * may have lost every retained message, this one included. */
    char topic[600];
    snprintf(topic, sizeof topic, "%s/sys/state", b->set.site.topic_main);
    br_publish(b, topic, b->set.site.pl_online, 1, true);
    for (int d = 0; d < MAX_DEVS; d++)
        if (b->slots[d].dv)
            br_publish_device(b, &b->slots[d], now);
    br_publish_app(b, now);
}

/* Empty retained messages for a device that left the configuration. */
void br_unpublish_device(bridge_t *b, int dev)
{
    if (!mqtt_conn_connected(b->mq))
        return;
    ha_ctx_t ctx = br_ha_ctx(b);
    ha_list_t list = {0};
    if (ha_device_remove_msgs(&ctx, dev, &list) == 0)
        for (size_t i = 0; i < list.count; i++)
            br_publish(b, list.msgs[i].topic, "", 1, true);
    ha_list_clear(&list);
    for (int i = 0; i < PUB_COUNT; i++) {
        char topic[600];
        snprintf(topic, sizeof topic, "%s/inv/%d/%s", b->set.site.topic_main, dev, s_pub_names[i]);
        br_publish(b, topic, "", 1, true);
    }
    log_info("dev %d: removed from the configuration; its retained topics are cleared", dev);
}
