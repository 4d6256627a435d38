/*
 * bridge: the bic-mqtt-bridge service loop. See bridge.h for the contract and docs/mqtt.md
 * for every topic it publishes and serves.
 *
 * One thread, one zmq_poll over three things: the MQTT socket (common/mqtt_conn: fetched
 * afresh each pass, POLLOUT only when libmosquitto wants to write, reconnects with back-off),
 * the gateway's PUB via SUB, and the REQ socket of the asynchronous gateway client. Gateway
 * requests are queued and sent one at a time; the MQTT side never waits for the gateway.
 */
#include "bridge.h"

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
#include <mqtt_protocol.h>

#include "bridge_cmd.h"
#include "dev_view.h"
#include "gw_client.h"
#include "ha_disc.h"
#include "log.h"
#include "monotime.h"
#include "mqtt_conn.h"
#include "numconv.h"
#include "sdnotify.h"
#include "sigflag.h"

#define MAX_DEVS 68 /* 0-63 the BICs, 64-67 the NPB chargers at CAN address 0-3 */
#define QUEUE_MAX 32
#define GW_SILENCE_MS 15000    /* the gateway publishes `gw` every 5 s */
#define INFO_PERIOD_MS 3600000 /* device info re-read hourly */
#define INFO_RETRY_MS 5000
#define APP_PERIOD_MS 60000
#define SHUTDOWN_FLUSH_MS 1500
#define SOC_MAX_AGE_MS 600000    /* a controller's SOC older than this is not shown */
#define SURPLUS_MAX_AGE_MS 60000 /* nor a surplus older than this (the controller is gone) */
#define STATE_WAIT_MS 15000      /* the first state waits this long at most for slow values */
#define PERIODIC_SLACK_MS 500    /* a periodic republish may wait this long for a wake-up */

/* Seed topics per device, in publishing order. */
enum { PUB_AVAIL, PUB_INFO, PUB_STATE, PUB_CHARGE, PUB_FAULT, PUB_COUNT };
static const char *const s_pub_names[PUB_COUNT] = {"availability", "info", "state", "charge",
                                                   "fault"};

typedef struct {
    char topic_main[256];
    char ha_prefix[256];
    char ha_status[256];
    bool ha_discovery;
    char pl_online[65];
    char pl_offline[65];
    int publish_period_s;
    int lease_ttl_s;
    int ids[MAX_DEVS];
    size_t nids;
    size_t cap2v_n; /* [BAT_0] table for the SOC shown as capBatPc */
    double cap2v_pct[DEV_VIEW_CAP2V], cap2v_v[DEV_VIEW_CAP2V];
    double r_ohm;
    char ctrl_name[MAX_DEVS][16]; /* the seed's ChargeCtrlName per device, "" = none */
    /* connection: applied at start only */
    mqtt_conn_cfg_t mqtt;
    char client_id[128];
} settings_t;

/* The dev_view payload behind each seed topic (availability has none). */
static const dev_view_payload_t s_pub_view[PUB_COUNT] = {[PUB_AVAIL] = DEV_VIEW_P_COUNT,
                                                         [PUB_INFO] = DEV_VIEW_P_INFO,
                                                         [PUB_STATE] = DEV_VIEW_P_STATE,
                                                         [PUB_CHARGE] = DEV_VIEW_P_CHARGE,
                                                         [PUB_FAULT] = DEV_VIEW_P_FAULT};

#define KEY_MAX 2048 /* a payload's key (dev_view_key) kept to skip building it unchanged */

typedef struct {
    dev_view_t *dv; /* NULL: slot unused */
    char *last[PUB_COUNT];
    int64_t last_ms[PUB_COUNT];
    unsigned char *key[PUB_COUNT]; /* dev_view_key() of last[] (NULL: none) */
    size_t key_len[PUB_COUNT];
    uint64_t disc_hash;   /* of the discovery set last published; 0 = none */
    uint64_t disc_inputs; /* of what the discovery set is built from (s_disc_inputs) */
    int64_t soc_ms;       /* when the controller's SOC arrived; 0 = none or expired */
    int64_t surplus_ms;   /* when the controller's surplus arrived; 0 = none or expired */
    int64_t tel0_ms;      /* the first telemetry of this device (0: none yet) */
    bool want_regs;       /* read SYSTEM_CONFIG / BIDIRECTIONAL_CONFIG for `info` */
} slot_t;

typedef enum { ORIGIN_CMD, ORIGIN_INFO, ORIGIN_REGS, ORIGIN_RELEASE } origin_t;

/* Where a command's result goes: `<topic>/result`, or the MQTT v5 response topic, with the
 * request's v5 correlation data echoed (corr_len -1: none). */
typedef struct {
    char topic[600];
    unsigned char corr[256];
    int corr_len;
} reply_to_t;

typedef struct {
    origin_t origin;
    cJSON *req; /* owned */
    /* ORIGIN_CMD */
    bcmd_kind_t kind;
    int dev;
    cJSON *corr; /* owned */
    char what[64];
    reply_to_t reply;
} job_t;

struct bridge_t {
    settings_t set;
    char *config_path;
    char node[256];
    mqtt_conn_t *mq; /* MQTT v5, or 3.1.1 after a broker refused v5 */
    bool stopping;
    unsigned conn_count;
    time_t start_wall;
    int offline_mid; /* mid of the `offline` publish at shutdown */
    bool offline_acked;

    gw_client_t *gw;
    zsock_t *sub;
    bool gw_alive;
    char lease_token[GW_TOKEN_LEN + 1]; /* the token of the manual leases ("" before a take) */
    int64_t gw_last_ms;     /* last message on the PUB socket; at start: the start time */
    bool gw_silence_warned; /* said once that the gateway has not been heard from */
    char pub_endpoint[1025];
    char gw_bus[16];

    slot_t slots[MAX_DEVS];
    bool dynamic; /* no [DEVICE] ids: serve what the gateway reports */

    job_t queue[QUEUE_MAX];
    size_t qhead, qlen;
    job_t inflight;
    bool busy;

    int64_t next_info;
    int64_t republish_at; /* Home Assistant came online: republish everything then */
    int64_t next_app;
    int64_t periodic_after;    /* the periodic pass ran: not again before this (a failed publish
                                  stays due, and is tried again once a second) */
    int64_t charge_hold_until; /* no `charge` before the retained counters had time to arrive */
    bool charge_sub;      /* subscribed to the `charge` topics for those (until the hold ends: later
                             ones would be our own messages coming back) */
    int64_t last_info_ms; /* when device info was last asked for */
    uint64_t bridge_disc_hash;
};

/* ---------------------------------------------------------------- settings */

static void s_copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static int s_settings(const config_t *cfg, settings_t *s, char *err, size_t n)
{
    memset(s, 0, sizeof *s);
    s_copy(s->topic_main, sizeof s->topic_main, config_str(cfg, "MQTT", "TopicMain"));
    s_copy(s->ha_prefix, sizeof s->ha_prefix, config_str(cfg, "MQTT", "HaPrefix"));
    s_copy(s->ha_status, sizeof s->ha_status, config_str(cfg, "MQTT", "HaStatusTopic"));
    s->ha_discovery = config_bool(cfg, "MQTT", "HaDiscovery");
    s_copy(s->pl_online, sizeof s->pl_online, config_str(cfg, "MQTT", "StatePayloadOnline"));
    s_copy(s->pl_offline, sizeof s->pl_offline, config_str(cfg, "MQTT", "StatePayloadOffline"));
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
        s_copy(s->ctrl_name[ids[i]], sizeof s->ctrl_name[ids[i]], name);
    }

    mqtt_client_id(config_str(cfg, "MQTT", "AppId"), "bridge", s->client_id, sizeof s->client_id);
    if (!s->topic_main[0]) {
        snprintf(err, n, "[MQTT] TopicMain is empty");
        return -1;
    }
    return mqtt_conn_cfg_from_config(cfg, &s->mqtt, err, n);
}

/* ---------------------------------------------------------------- helpers */

static uint64_t s_fnv(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ 0xff; /* separates "ab"+"c" from "a"+"bc" */
}

static ha_ctx_t s_ha_ctx(const bridge_t *b)
{
    ha_ctx_t c = {.prefix = b->set.ha_prefix,
                  .topic_main = b->set.topic_main,
                  .node = b->node,
                  .avail_online = b->set.pl_online,
                  .avail_offline = b->set.pl_offline,
                  .sw_version = BIC_VERSION};
    return c;
}

static int s_publish(bridge_t *b, const char *topic, const char *payload, int qos, bool retain)
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
static void s_send_result(bridge_t *b, const reply_to_t *r, const char *payload)
{
    if (!payload || !mqtt_conn_connected(b->mq))
        return;
    if (r->corr_len < 0 || mqtt_conn_protocol(b->mq) != MQTT_PROTOCOL_V5) {
        s_publish(b, r->topic, payload, 1, false);
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

static bool s_configured(const bridge_t *b, int dev)
{
    for (size_t i = 0; i < b->set.nids; i++)
        if (b->set.ids[i] == dev)
            return true;
    return false;
}

/* The device address in a gateway message's "dev": a whole number 0 to MAX_DEVS-1, else -1. */
static int s_msg_dev(const cJSON *id)
{
    int64_t dev;
    return cJSON_IsNumber(id) && numconv_whole(id->valuedouble, 0, MAX_DEVS - 1, &dev) == 0
               ? (int)dev
               : -1;
}

/* What the view takes from the configuration (at creation and after a reload). */
static void s_slot_settings(const bridge_t *b, slot_t *s)
{
    int dev = dev_view_dev(s->dv);
    dev_view_set_battery(s->dv, b->set.cap2v_pct, b->set.cap2v_v, b->set.cap2v_n, b->set.r_ohm);
    dev_view_set_ctrl_name(s->dv, b->set.ctrl_name[dev]);
}

static slot_t *s_slot(bridge_t *b, int dev, bool create)
{
    if (dev < 0 || dev >= MAX_DEVS)
        return NULL;
    slot_t *s = &b->slots[dev];
    if (!s->dv && create && (b->dynamic || s_configured(b, dev))) {
        s->dv = dev_view_new(dev);
        if (s->dv) {
            dev_view_set_gateway_reachable(s->dv, b->gw_alive);
            s_slot_settings(b, s);
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

static void s_slot_clear(slot_t *s)
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
    if (!b->set.ha_discovery || !mqtt_conn_connected(b->mq))
        return;
    uint64_t inputs = s_disc_inputs(s->dv);
    if (s->disc_hash && inputs == s->disc_inputs)
        return;
    s->disc_inputs = inputs;
    ha_ctx_t ctx = s_ha_ctx(b);
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
            s_publish(b, list.msgs[i].topic, list.msgs[i].payload, 1, true);
        log_info("dev %d: published %zu discovery entities", dev, list.count);
        s->disc_hash = h;
    }
    ha_list_clear(&list);
}

static void s_publish_bridge_discovery(bridge_t *b)
{
    if (!b->set.ha_discovery || !mqtt_conn_connected(b->mq) || b->bridge_disc_hash)
        return;
    ha_ctx_t ctx = s_ha_ctx(b);
    ha_list_t list = {0};
    if (ha_bridge_msgs(&ctx, &list) == 0) {
        for (size_t i = 0; i < list.count; i++)
            s_publish(b, list.msgs[i].topic, list.msgs[i].payload, 1, true);
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
static void s_publish_device(bridge_t *b, slot_t *s, int64_t now)
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
        snprintf(topic, sizeof topic, "%s/inv/%d/%s", b->set.topic_main, dev, s_pub_names[i]);
        if (s_publish(b, topic, p, i == PUB_AVAIL ? 1 : 0, true) == 0) {
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
static int64_t s_periodic_due(const bridge_t *b, int64_t now)
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

static void s_publish_app(bridge_t *b, int64_t now)
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
        s_publish(b, b->set.topic_main, s, 0, true);
    free(s);
    b->next_app = now + APP_PERIOD_MS;
}

/* Everything, in Home Assistant's preferred order: discovery, availability, states. */
static void s_publish_all(bridge_t *b, int64_t now)
{
    s_forget_all(b);
    s_publish_bridge_discovery(b);
    for (int d = 0; d < MAX_DEVS; d++)
        if (b->slots[d].dv)
            s_publish_discovery(b, &b->slots[d]);
    /* The bridge's own availability too: after Home Assistant's birth message the broker
     * may have lost every retained message, this one included. */
    char topic[600];
    snprintf(topic, sizeof topic, "%s/sys/state", b->set.topic_main);
    s_publish(b, topic, b->set.pl_online, 1, true);
    for (int d = 0; d < MAX_DEVS; d++)
        if (b->slots[d].dv)
            s_publish_device(b, &b->slots[d], now);
    s_publish_app(b, now);
}

/* Empty retained messages for a device that left the configuration. */
static void s_unpublish_device(bridge_t *b, int dev)
{
    if (!mqtt_conn_connected(b->mq))
        return;
    ha_ctx_t ctx = s_ha_ctx(b);
    ha_list_t list = {0};
    if (ha_device_remove_msgs(&ctx, dev, &list) == 0)
        for (size_t i = 0; i < list.count; i++)
            s_publish(b, list.msgs[i].topic, "", 1, true);
    ha_list_clear(&list);
    for (int i = 0; i < PUB_COUNT; i++) {
        char topic[600];
        snprintf(topic, sizeof topic, "%s/inv/%d/%s", b->set.topic_main, dev, s_pub_names[i]);
        s_publish(b, topic, "", 1, true);
    }
    log_info("dev %d: removed from the configuration; its retained topics are cleared", dev);
}

/* ---------------------------------------------------------------- gateway requests */

static void s_job_free(job_t *j)
{
    cJSON_Delete(j->req);
    cJSON_Delete(j->corr);
    memset(j, 0, sizeof *j);
}

/* Takes ownership of the job's allocations (freed on failure). */
static int s_enqueue(bridge_t *b, job_t *j)
{
    if (b->qlen == QUEUE_MAX) {
        s_job_free(j);
        return -1;
    }
    b->queue[(b->qhead + b->qlen) % QUEUE_MAX] = *j;
    b->qlen++;
    memset(j, 0, sizeof *j);
    return 0;
}

static bool s_queued(const bridge_t *b, origin_t origin, int dev)
{
    if (b->busy && b->inflight.origin == origin && b->inflight.dev == dev)
        return true;
    for (size_t i = 0; i < b->qlen; i++) {
        const job_t *j = &b->queue[(b->qhead + i) % QUEUE_MAX];
        if (j->origin == origin && j->dev == dev)
            return true;
    }
    return false;
}

static void s_request_info(bridge_t *b)
{
    if (s_queued(b, ORIGIN_INFO, -1))
        return;
    job_t j = {.origin = ORIGIN_INFO, .dev = -1};
    j.req = cJSON_CreateObject();
    cJSON_AddNumberToObject(j.req, "v", 1);
    cJSON_AddStringToObject(j.req, "op", "info");
    cJSON_AddStringToObject(j.req, "client", BCMD_CLIENT);
    if (s_enqueue(b, &j) != 0)
        log_warn("gateway request queue full; device info refresh postponed");
}

static void s_request_regs(bridge_t *b, int dev)
{
    if (s_queued(b, ORIGIN_REGS, dev))
        return;
    job_t j = {.origin = ORIGIN_REGS, .dev = dev};
    j.req = cJSON_CreateObject();
    cJSON_AddNumberToObject(j.req, "v", 1);
    cJSON_AddStringToObject(j.req, "op", "get");
    cJSON_AddNumberToObject(j.req, "dev", dev);
    cJSON_AddStringToObject(j.req, "client", BCMD_CLIENT);
    cJSON *regs = cJSON_AddArrayToObject(j.req, "regs");
    cJSON_AddItemToArray(regs, cJSON_CreateString("SYSTEM_CONFIG"));
    /* an NPB has no BIDIRECTIONAL_CONFIG (its mode is in the telemetry's curve) */
    if (dev < 64)
        cJSON_AddItemToArray(regs, cJSON_CreateString("BIDIRECTIONAL_CONFIG"));
    s_enqueue(b, &j);
}

static void s_result(bridge_t *b, const job_t *j, const cJSON *reply)
{
    char *payload;
    if (cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok"))) {
        payload = bcmd_result_ok(j->kind, j->corr, j->what, reply);
        log_info("dev %d %s/set %s: ok", j->dev, bcmd_kind_name(j->kind), j->what);
    } else {
        const cJSON *e = cJSON_GetObjectItem(reply, "error");
        const cJSON *code = cJSON_GetObjectItem(e, "code");
        const cJSON *msg = cJSON_GetObjectItem(e, "message");
        const char *c = cJSON_IsString(code) ? code->valuestring : "internal";
        const char *m = cJSON_IsString(msg) ? msg->valuestring : "gateway error without message";
        payload = bcmd_result_error(j->kind, j->corr, j->what, c, m, e);
        log_warn("dev %d %s/set %s: refused by the gateway: %s: %s", j->dev,
                 bcmd_kind_name(j->kind), j->what, c, m);
    }
    s_send_result(b, &j->reply, payload);
    free(payload);
}

static void s_on_reply(bridge_t *b, job_t *j, cJSON *reply, int64_t now)
{
    bool ok = cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok"));
    /* a take (a manual setpoint with lease_ttl_s) replies with the lease's token: the gateway
     * gives one token for all of the bridge's devices while it presents it, a new one after
     * its leases lapsed or were released */
    const cJSON *tk = cJSON_GetObjectItem(reply, "token");
    if (ok && cJSON_IsString(tk) && gw_token_valid(tk->valuestring))
        s_copy(b->lease_token, sizeof b->lease_token, tk->valuestring);
    switch (j->origin) {
    case ORIGIN_CMD:
        s_result(b, j, reply);
        break;
    case ORIGIN_INFO: {
        if (!ok) {
            b->next_info = now + INFO_RETRY_MS;
            break;
        }
        const cJSON *devs = cJSON_GetObjectItem(reply, "devices");
        const cJSON *d;
        cJSON_ArrayForEach(d, devs)
        {
            int dev = s_msg_dev(cJSON_GetObjectItem(d, "dev"));
            slot_t *s = s_slot(b, dev, true);
            if (!s)
                continue;
            char err[128];
            if (dev_view_on_info(s->dv, d, err, sizeof err) != 0)
                log_warn("gateway info for dev %d ignored: %s", dev, err);
            else if (cJSON_IsTrue(cJSON_GetObjectItem(d, "online")))
                s->want_regs = true;
        }
        b->next_info = now + INFO_PERIOD_MS;
        for (int dev = 0; dev < MAX_DEVS; dev++) {
            slot_t *s = &b->slots[dev];
            if (!s->dv)
                continue;
            if (s->want_regs)
                s_request_regs(b, dev);
            s_publish_device(b, s, now);
        }
        break;
    }
    case ORIGIN_RELEASE:
        if (ok)
            log_info("dev %d: controller enabled: the manual hold ends", j->dev);
        break;
    case ORIGIN_REGS: {
        slot_t *s = s_slot(b, j->dev, false);
        if (!s)
            break;
        if (ok) {
            dev_view_on_regs(s->dv, cJSON_GetObjectItem(reply, "values"));
            s->want_regs = false;
            s_publish_device(b, s, now);
        }
        break;
    }
    }
}

static void s_on_gateway_lost(bridge_t *b, const job_t *j, int64_t now)
{
    if (j->origin == ORIGIN_CMD) {
        char *p = bcmd_result_error(j->kind, j->corr, j->what, "gateway_unreachable",
                                    "the gateway did not answer; nothing was changed by the "
                                    "bridge (the request may or may not have reached the device)",
                                    NULL);
        s_send_result(b, &j->reply, p);
        free(p);
        log_warn("dev %d %s/set %s: the gateway did not answer", j->dev, bcmd_kind_name(j->kind),
                 j->what);
    } else if (j->origin == ORIGIN_INFO) {
        b->next_info = now + INFO_RETRY_MS;
    }
}

static void s_pump_queue(bridge_t *b)
{
    while (!b->busy && b->qlen) {
        job_t j = b->queue[b->qhead];
        b->qhead = (b->qhead + 1) % QUEUE_MAX;
        b->qlen--;
        /* every request in the bridge's name carries its lease token: the name is public,
         * the lease is the bridge's by the token */
        const cJSON *cl = cJSON_GetObjectItem(j.req, "client");
        if (b->lease_token[0] && cJSON_IsString(cl) && strcmp(cl->valuestring, BCMD_CLIENT) == 0 &&
            !cJSON_GetObjectItem(j.req, "token"))
            cJSON_AddStringToObject(j.req, "token", b->lease_token);
        if (gw_client_send(b->gw, j.req) != 0) {
            log_error("cannot send a request to the gateway");
            s_on_gateway_lost(b, &j, mono_ms());
            s_job_free(&j);
            continue;
        }
        b->inflight = j;
        b->busy = true;
    }
}

/* ---------------------------------------------------------------- gateway PUB */

static void s_set_gw_alive(bridge_t *b, bool alive, int64_t now)
{
    if (alive == b->gw_alive)
        return;
    b->gw_alive = alive;
    b->gw_silence_warned = !alive; /* a lost gateway is logged here already */
    if (alive)
        log_info("gateway reachable");
    else
        log_warn("gateway silent for %d s: devices reported offline", GW_SILENCE_MS / 1000);
    for (int d = 0; d < MAX_DEVS; d++) {
        slot_t *s = &b->slots[d];
        if (!s->dv)
            continue;
        dev_view_set_gateway_reachable(s->dv, alive);
        s_publish_device(b, s, now);
    }
    if (alive)
        b->next_info = now; /* a restarted gateway may know more (or other) devices */
    s_publish_app(b, now);
}

static void s_on_pub(bridge_t *b, const char *topic, cJSON *msg, int64_t now)
{
    b->gw_last_ms = now;
    s_set_gw_alive(b, true, now);
    if (strncmp(topic, "tel/", 4) == 0) {
        slot_t *s = s_slot(b, s_msg_dev(cJSON_GetObjectItem(msg, "dev")), true);
        if (!s)
            return; /* no device address, or a device this bridge is not configured for */
        char err[128];
        if (dev_view_on_telemetry(s->dv, msg, err, sizeof err) != 0) {
            log_warn("telemetry %s ignored: %s", topic, err);
            return;
        }
        if (!s->tel0_ms)
            s->tel0_ms = now;
        if (!dev_view_has_info(s->dv) && b->next_info > b->last_info_ms + INFO_RETRY_MS)
            b->next_info = b->last_info_ms + INFO_RETRY_MS;
        s_publish_device(b, s, now);
    } else if (strncmp(topic, "evt/", 4) == 0) {
        const cJSON *ev = cJSON_GetObjectItem(msg, "event");
        int dev = s_msg_dev(cJSON_GetObjectItem(msg, "dev"));
        if (!cJSON_IsString(ev))
            return;
        log_info("gateway event dev %d: %s", dev, ev->valuestring);
        if (strcmp(ev->valuestring, "online") == 0)
            b->next_info = now; /* identity and limits may have changed */
        /* Events (fault edges, lease lapsed, safe state applied, ...) for users, as the
         * gateway sent them. */
        slot_t *s = s_slot(b, dev, false);
        char *p = s ? cJSON_PrintUnformatted(msg) : NULL;
        if (p) {
            char t[600];
            snprintf(t, sizeof t, "%s/inv/%d/event", b->set.topic_main, dev);
            s_publish(b, t, p, 0, false);
        }
        free(p);
    } else if (strcmp(topic, "gw") == 0) {
        const cJSON *bus = cJSON_GetObjectItem(msg, "bus");
        if (cJSON_IsString(bus) && strcmp(bus->valuestring, b->gw_bus) != 0) {
            s_copy(b->gw_bus, sizeof b->gw_bus, bus->valuestring);
            s_publish_app(b, now);
        }
    }
}

/* ---------------------------------------------------------------- configuration reload */

static int s_reload(bridge_t *b, char *err, size_t n)
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
    const mqtt_conn_cfg_t *nm = &ns.mqtt, *om = &b->set.mqtt;
    if (strcmp(nm->host, om->host) || nm->port != om->port || strcmp(nm->user, om->user) ||
        strcmp(nm->pass, om->pass) || strcmp(ns.topic_main, b->set.topic_main) ||
        strcmp(ns.ha_prefix, b->set.ha_prefix) || strcmp(ns.ha_status, b->set.ha_status) ||
        ns.ha_discovery != b->set.ha_discovery || strcmp(nm->tls_ca, om->tls_ca) ||
        strcmp(ns.pl_online, b->set.pl_online) || strcmp(ns.pl_offline, b->set.pl_offline))
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
            s_slot_settings(b, &b->slots[d]);
    bool was_dynamic = b->dynamic;
    b->dynamic = ns.nids == 0;
    int64_t now = mono_ms();
    for (int d = 0; d < MAX_DEVS; d++) {
        bool before = was_dynamic ? b->slots[d].dv != NULL : false;
        for (size_t i = 0; i < old.nids; i++)
            before = before || old.ids[i] == d;
        bool after = b->dynamic ? b->slots[d].dv != NULL : s_configured(b, d);
        if (before && !after) {
            s_slot_clear(&b->slots[d]);
            s_unpublish_device(b, d);
        } else if (after && !b->slots[d].dv) {
            s_slot(b, d, true);
            b->next_info = now;
        }
    }
    log_info("configuration reloaded from %s", b->config_path);
    return 0;
}

/* ---------------------------------------------------------------- MQTT commands */

static void s_publish_refusal(bridge_t *b, const reply_to_t *r, bcmd_kind_t kind, const cJSON *corr,
                              const char *what, const char *code, const char *msg)
{
    char *p = bcmd_result_error(kind, corr, what, code, msg, NULL);
    s_send_result(b, r, p);
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
    slot_t *s = s_slot(b, dev, false);
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
        if (s_reload(b, rerr, sizeof rerr) == 0) {
            char *p = bcmd_result_ok(kind, cmd.corr, cmd.what, NULL);
            s_send_result(b, &reply, p);
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
    s_copy(j.what, sizeof j.what, cmd.what);
    j.reply = reply;
    cJSON *corr_copy = cmd.corr ? cJSON_Duplicate(cmd.corr, true) : NULL;
    if (s_enqueue(b, &j) != 0) {
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
    slot_t *s = s_slot(b, dev, false);
    char buf[40];
    double v;
    if (!s)
        return;
    if (!s_payload_num(m, buf, &v) || dev_view_set_soc(s->dv, v) != 0) {
        log_warn("%s: '%s' is not a state of charge; allowed: a number 0-100", m->topic, buf);
        return;
    }
    s->soc_ms = mono_ms();
    s_publish_device(b, s, mono_ms());
}

/* `<T>/ctl/<id>/surplus`: the controller's surplus in W (the seed's surplusP). */
static void s_on_surplus(bridge_t *b, const struct mosquitto_message *m, int dev)
{
    slot_t *s = s_slot(b, dev, false);
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
    s_publish_device(b, s, s->surplus_ms);
}

/* `<T>` MID `<id>` SUFFIX (e.g. "/inv/", "/charge") -> id, or -1. */
static int s_topic_dev(const bridge_t *b, const char *topic, const char *mid, const char *suffix)
{
    size_t tl = strlen(b->set.topic_main), ml = strlen(mid);
    if (strncmp(topic, b->set.topic_main, tl) != 0 || strncmp(topic + tl, mid, ml) != 0)
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
    if (m->retain || m->payloadlen <= 0 || m->payloadlen > 64 || !s_slot(b, dev, false))
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
    s_copy(j.what, sizeof j.what, "release");
    if (s_enqueue(b, &j) != 0)
        log_warn("%s: the manual hold could not be ended: gateway request queue full", m->topic);
}

/* The energy counters live on in the broker: the retained `charge` message of an earlier run
 * carries them, so a restarted bridge continues from there instead of from zero. Counters
 * only ever move up (the larger value wins), so this cannot make them run backwards. */
static void s_on_retained_charge(bridge_t *b, const struct mosquitto_message *m, int dev)
{
    slot_t *s = s_slot(b, dev, false);
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

static void s_on_connect(mqtt_conn_t *c, void *user, int rc)
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
        snprintf(topic, sizeof topic, "%s/inv/+/%s/set", b->set.topic_main,
                 bcmd_kind_name((bcmd_kind_t)k));
        mosquitto_subscribe(mosq, NULL, topic, 1);
    }
    snprintf(topic, sizeof topic, "%s/ctl/+/soc", b->set.topic_main);
    mosquitto_subscribe(mosq, NULL, topic, 0);
    snprintf(topic, sizeof topic, "%s/ctl/+/surplus", b->set.topic_main);
    mosquitto_subscribe(mosq, NULL, topic, 0);
    snprintf(topic, sizeof topic, "%s/inv/+/control/set", b->set.topic_main);
    mosquitto_subscribe(mosq, NULL, topic, 1);
    /* Before anything is published: the broker delivers the retained `charge` messages
     * (energy counters of the previous run) before it stores our new ones. */
    snprintf(topic, sizeof topic, "%s/inv/+/charge", b->set.topic_main);
    mosquitto_subscribe(mosq, NULL, topic, 1);
    if (b->set.ha_discovery)
        mosquitto_subscribe(mosq, NULL, b->set.ha_status, 1);
    /* Our own discovery topics: stale ones (devices no longer configured, or all of them
     * when discovery is off) arrive retained and are cleared. */
    snprintf(topic, sizeof topic, "%s/+/%s/+/config", b->set.ha_prefix, b->node);
    mosquitto_subscribe(mosq, NULL, topic, 1);
    b->charge_hold_until = mono_ms() + 1000;
    b->charge_sub = true;
    s_publish_all(b, mono_ms()); /* `running` on <T>/sys/state among it */
    sdnotify_status("connected to %s:%d", b->set.mqtt.host, b->set.mqtt.port);
}

static void s_on_disconnect(mqtt_conn_t *c, void *user, int rc, int retry_ms)
{
    log_warn("disconnected from the broker (%s); retrying in %d ms", mqtt_conn_loss(c, rc),
             retry_ms);
}

static void s_on_connect_failed(mqtt_conn_t *c, void *user, const char *why, int retry_ms)
{
    bridge_t *b = user;
    log_warn("cannot connect to %s:%d (%s); retrying in %d ms", b->set.mqtt.host, b->set.mqtt.port,
             why, retry_ms);
}

static void s_on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    bridge_t *b = mqtt_conn_user(obj);
    if (b->stopping && mid == b->offline_mid)
        b->offline_acked = true;
}

static void s_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
                         const mosquitto_property *props)
{
    bridge_t *b = mqtt_conn_user(obj);
    int dev;
    bcmd_kind_t kind;
    if (bcmd_topic_parse(m->topic, b->set.topic_main, &dev, &kind)) {
        s_on_command(b, m, props, dev, kind);
        return;
    }
    if (b->set.ha_discovery && strcmp(m->topic, b->set.ha_status) == 0) {
        if (m->payloadlen == 6 && memcmp(m->payload, "online", 6) == 0) {
            /* A short random delay spreads the burst when many clients react at once. */
            b->republish_at = mono_ms() + 1000 + (int64_t)(random() % 2000);
            log_info("Home Assistant is online: republishing discovery and states");
        }
        return;
    }
    ha_ctx_t ctx = s_ha_ctx(b);
    if (ha_topic_dev(&ctx, m->topic, &dev)) {
        if (m->payloadlen == 0)
            return;
        bool keep = b->set.ha_discovery && (dev < 0 || b->dynamic || s_slot(b, dev, false));
        if (!keep) {
            log_info("removing stale discovery entity %s", m->topic);
            s_publish(b, m->topic, "", 1, true);
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

static void s_on_log(mqtt_conn_t *c, void *user, int level, const char *str)
{
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        log_debug("mosquitto: %s", str);
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
    mqtt_node_id(b->set.topic_main, b->node, sizeof b->node);
    b->dynamic = b->set.nids == 0;
    b->start_wall = time(NULL);
    b->gw_last_ms = mono_ms();
    b->gw_alive = false;
    for (size_t i = 0; i < b->set.nids; i++)
        s_slot(b, b->set.ids[i], true);

    b->gw = gw_client_from_config(cfg, err, errlen);
    if (!b->gw)
        goto fail;
    s_copy(b->pub_endpoint, sizeof b->pub_endpoint, config_str(cfg, "GATEWAY", "PubEndpoint"));
    const char *prefixes[] = {"tel/", "evt/", "gw", NULL};
    b->sub = gw_client_sub_from_config(cfg, prefixes, err, errlen);
    if (!b->sub)
        goto fail;

    /* MQTT v5 for response topics and correlation data on commands; a broker that only
     * speaks 3.1.1 makes the bridge fall back (s_on_connect). */
    char topic[600];
    snprintf(topic, sizeof topic, "%s/sys/state", b->set.topic_main);
    mqtt_conn_hooks_t hooks = {.on_connect = s_on_connect,
                               .on_disconnect = s_on_disconnect,
                               .on_connect_failed = s_on_connect_failed,
                               .on_log = s_on_log};
    b->mq = mqtt_conn_new(&b->set.mqtt, b->set.client_id, MQTT_PROTOCOL_V5, topic,
                          b->set.pl_offline, &hooks, b, err, errlen);
    if (!b->mq)
        goto fail;
    struct mosquitto *mosq = mqtt_conn_mosq(b->mq);
    /* Small state messages should leave at once, not wait for Nagle's delayed ACK. */
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_message_v5_callback_set(mosq, s_on_message);
    mosquitto_publish_callback_set(mosq, s_on_publish);
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
        s_slot_clear(&b->slots[d]);
    while (b->qlen) {
        s_job_free(&b->queue[b->qhead]);
        b->qhead = (b->qhead + 1) % QUEUE_MAX;
        b->qlen--;
    }
    if (b->busy)
        s_job_free(&b->inflight);
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
                s_on_pub(b, topic, msg, now);
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
            s_on_reply(b, &j, reply, now);
            s_job_free(&j);
        }
        cJSON_Delete(reply);
    }
}

static void s_timers(bridge_t *b, int64_t now)
{
    if (b->charge_sub && now >= b->charge_hold_until && mqtt_conn_connected(b->mq)) {
        char topic[600];
        snprintf(topic, sizeof topic, "%s/inv/+/charge", b->set.topic_main);
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
            s_on_gateway_lost(b, &j, now);
            s_job_free(&j);
        }
    }
    if (b->gw_alive && now - b->gw_last_ms > GW_SILENCE_MS)
        s_set_gw_alive(b, false, now);
    if (!b->gw_alive && !b->gw_silence_warned && now - b->gw_last_ms > GW_SILENCE_MS) {
        /* Often a wrong [GATEWAY] PubEndpoint, or the gateway not running. */
        log_warn("nothing heard from the gateway on %s yet; devices stay offline", b->pub_endpoint);
        b->gw_silence_warned = true;
    }
    if (now >= b->next_info && b->gw_alive) {
        b->next_info = now + INFO_RETRY_MS; /* until the reply sets the next hour */
        b->last_info_ms = now;
        s_request_info(b);
    }
    if (b->republish_at && now >= b->republish_at) {
        b->republish_at = 0;
        s_publish_all(b, now);
    }
    if (mqtt_conn_connected(b->mq) && now >= b->next_app)
        s_publish_app(b, now);
    /* Periodic republish of the seed topics (each topic keeps its own period), old SOC and
     * surplus values: on the first wake-up after one is due. */
    if (mqtt_conn_connected(b->mq) && now >= s_periodic_due(b, now)) {
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
            s_publish_device(b, s, now);
        }
    }
    s_pump_queue(b);
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
        int64_t due = s_periodic_due(b, now);
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
    snprintf(topic, sizeof topic, "%s/sys/state", b->set.topic_main);
    /* The broker drops the will on a clean disconnect: say offline ourselves. */
    if (mosquitto_publish(mqtt_conn_mosq(b->mq), &b->offline_mid, topic,
                          (int)strlen(b->set.pl_offline), b->set.pl_offline, 1,
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
    log_info("bridge for %s on %s:%d, gateway %s, %zu configured device(s)%s", b->set.topic_main,
             b->set.mqtt.host, b->set.mqtt.port, gw_client_endpoint(b->gw), b->set.nids,
             b->dynamic ? " (serving every device the gateway reports)" : "");
    mqtt_conn_start(b->mq, mono_ms());
    sdnotify_ready();
    while (!sigflag_stop()) {
        if (sigflag_reload_take()) {
            char err[1024];
            if (s_reload(b, err, sizeof err) != 0)
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
