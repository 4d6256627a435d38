/*
 * The bridge's state shared by its files (bridge.c: settings, life cycle and the poll loop;
 * bridge_pub.c: the device state on MQTT and in discovery; bridge_gw.c: the gateway requests
 * and the gateway's PUB; bridge_mqtt.c: MQTT commands, the controllers' topics and the
 * libmosquitto callbacks): settings, slots, jobs, the service struct, and the functions they
 * call across files. Not an API: only mqtt-bridge/ includes it.
 */
#ifndef BRIDGE_INTERNAL_H
#define BRIDGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cJSON.h>
#include <czmq.h>
#include <mosquitto.h>

#include "bridge.h"
#include "bridge_cmd.h"
#include "dev_view.h"
#include "gw_client.h"
#include "ha_disc.h"
#include "mqtt_conn.h"

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
typedef struct {
    mqtt_site_t site; /* topics and payloads: applied at start only */
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

#define KEY_MAX 2048 /* a payload's key (dev_view_key) kept to skip building it unchanged */

typedef struct {
    dev_view_t *dv; /* NULL: slot unused */
    char *last[PUB_COUNT];
    int64_t last_ms[PUB_COUNT];
    unsigned char *key[PUB_COUNT]; /* dev_view_key() of last[] (NULL: none) */
    size_t key_len[PUB_COUNT];
    uint64_t disc_hash; /* of the discovery set last published; 0 = none */
    uint64_t
        disc_inputs;    /* of what the discovery set is built from (s_disc_inputs, bridge_pub.c) */
    int64_t soc_ms;     /* when the controller's SOC arrived; 0 = none or expired */
    int64_t surplus_ms; /* when the controller's surplus arrived; 0 = none or expired */
    int64_t tel0_ms;    /* the first telemetry of this device (0: none yet) */
    bool want_regs;     /* read SYSTEM_CONFIG / BIDIRECTIONAL_CONFIG for `info` */
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

/* bridge.c: settings, configuration reload */
void br_copy(char *dst, size_t n, const char *src);
int br_reload(bridge_t *b, char *err, size_t n);

/* bridge_pub.c: helpers, slots, publishing */
ha_ctx_t br_ha_ctx(const bridge_t *b);
int br_publish(bridge_t *b, const char *topic, const char *payload, int qos, bool retain);
void br_send_result(bridge_t *b, const reply_to_t *r, const char *payload);
bool br_configured(const bridge_t *b, int dev);
int br_msg_dev(const cJSON *id);
void br_slot_settings(const bridge_t *b, slot_t *s);
slot_t *br_slot(bridge_t *b, int dev, bool create);
void br_slot_clear(slot_t *s);
void br_publish_device(bridge_t *b, slot_t *s, int64_t now);
int64_t br_periodic_due(const bridge_t *b, int64_t now);
void br_publish_app(bridge_t *b, int64_t now);
void br_publish_all(bridge_t *b, int64_t now);
void br_unpublish_device(bridge_t *b, int dev);

/* bridge_gw.c: gateway requests, gateway PUB */
void br_job_free(job_t *j);
int br_enqueue(bridge_t *b, job_t *j);
void br_request_info(bridge_t *b);
void br_on_reply(bridge_t *b, job_t *j, cJSON *reply, int64_t now);
void br_on_gateway_lost(bridge_t *b, const job_t *j, int64_t now);
void br_pump_queue(bridge_t *b);
void br_set_gw_alive(bridge_t *b, bool alive, int64_t now);
void br_on_pub(bridge_t *b, const char *topic, cJSON *msg, int64_t now);

/* bridge_mqtt.c: libmosquitto callbacks */
void br_on_connect(mqtt_conn_t *c, void *user, int rc);
void br_on_disconnect(mqtt_conn_t *c, void *user, int rc, int retry_ms);
void br_on_connect_failed(mqtt_conn_t *c, void *user, const char *why, int retry_ms);
void br_on_publish(struct mosquitto *mosq, void *obj, int mid);
void br_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
                   const mosquitto_property *props);
void br_on_log(mqtt_conn_t *c, void *user, int level, const char *str);

#endif
