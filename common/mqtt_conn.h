/*  mqtt_conn: one libmosquitto client driven from the program's own poll loop, as the bridge
    and the controller daemon use it. It owns the connection's life: the [MQTT] connection
    keys (broker, credentials, TLS), the client set-up with its last will, the first connect
    and the reconnects with a doubling back-off (1 s to 30 s, back to 1 s once connected)
    for as long as the program runs (an attempt whose TLS handshake fails or that has no
    CONNACK within 10 s is given up and retried, with the reason in words),
    the socket for zmq_poll (fetched afresh on every pass, since it changes on reconnect;
    POLLOUT only while libmosquitto has something to write), and mosquitto_loop_misc() once
    every one to two seconds, on a wake-up the program has anyway where there is one.

    The program keeps everything else: topics, subscriptions (in its on_connect hook),
    publishing and its own message callbacks on mqtt_conn_mosq(). The mosquitto object's
    user data is the connection; mqtt_conn_user() gives the program's pointer back in a
    callback. Nothing here logs: what happened is reported through the hooks.

    Also the names both programs derive from [MQTT]: the Home Assistant node id and the
    client id.
*/
#ifndef BIC_MQTT_CONN_H
#define BIC_MQTT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>
#include <zmq.h>

#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MQTT_CONN_BACKOFF_MIN_MS 1000
#define MQTT_CONN_BACKOFF_MAX_MS 30000

/*  The [MQTT] keys of the connection itself. */
typedef struct {
    char host[256]; /* BrokerIpAdr */
    int port;       /* BrokerPort */
    char user[257]; /* BrokerAccUser, empty: none */
    char pass[257]; /* BrokerAccPasswd */
    int keepalive_s;
    char tls_ca[4096]; /* TlsCaFile, empty: no TLS */
    char tls_cert[4096];
    char tls_key[4096];
} mqtt_conn_cfg_t;

/*  Reads the connection keys of [MQTT] into out. 0, or -1 with a message in err when they
    cannot work together (a client certificate without its key or without a CA file) or a
    TLS file named there is not a readable regular file. */
int mqtt_conn_cfg_from_config(const config_t *cfg, mqtt_conn_cfg_t *out, char *err, size_t errlen);

/*  True when a and b are the same in every field (a reload that changes any needs a new
    connection, which is made at the next start). */
bool mqtt_conn_cfg_equal(const mqtt_conn_cfg_t *a, const mqtt_conn_cfg_t *b);

/*  The [MQTT] topics and payloads both programs publish under. */
typedef struct {
    char topic_main[256]; /* TopicMain */
    char ha_prefix[256];  /* HaPrefix */
    char ha_status[256];  /* HaStatusTopic */
    bool ha_discovery;    /* HaDiscovery */
    char pl_online[65];   /* StatePayloadOnline */
    char pl_offline[65];  /* StatePayloadOffline */
} mqtt_site_t;

/*  Reads them into out. 0, or -1 with a message in err (an empty TopicMain). */
int mqtt_site_from_config(const config_t *cfg, mqtt_site_t *out, char *err, size_t errlen);

/*  True when a and b are the same in every field. */
bool mqtt_site_equal(const mqtt_site_t *a, const mqtt_site_t *b);

/*  The Home Assistant node id of an installation: TopicMain with every character outside
    [A-Za-z0-9_-] replaced by '_', cut to outlen - 1. The bridge's devices and the
    controller's (via_device) must agree on it. */
void mqtt_node_id(const char *topic_main, char *out, size_t outlen);

/*  The MQTT client id `<AppId>-<suffix>`, or `bic2mqtt-<hostname>-<suffix>` without AppId. */
void mqtt_client_id(const char *app_id, const char *suffix, char *out, size_t outlen);

typedef struct mqtt_conn_t mqtt_conn_t;

/*  What the program hears about the connection. Any hook may be NULL. */
typedef struct {
    /*  CONNACK. rc 0: connected (subscribe here); otherwise the broker refused (the
        library closes the socket; on_disconnect follows with the retry). */
    void (*on_connect)(mqtt_conn_t *c, void *user, int rc);
    /*  The connection was lost (rc 0: a clean disconnect); the next attempt follows in
        retry_ms. Not called after mqtt_conn_stop(). */
    void (*on_disconnect)(mqtt_conn_t *c, void *user, int rc, int retry_ms);
    /*  A connect attempt failed before reaching the broker (why: the reason as text); the
        next attempt follows in retry_ms. */
    void (*on_connect_failed)(mqtt_conn_t *c, void *user, const char *why, int retry_ms);
    /*  libmosquitto's log lines (MOSQ_LOG_* level). */
    void (*on_log)(mqtt_conn_t *c, void *user, int level, const char *str);
} mqtt_conn_hooks_t;

/*  A client for cfg (copied) with client_id, MQTT protocol (MQTT_PROTOCOL_V311 or
    MQTT_PROTOCOL_V5) and a retained QoS 1 last will will_payload on will_topic (both
    required). Connects nothing yet. NULL with a message in err on failure. */
mqtt_conn_t *mqtt_conn_new(const mqtt_conn_cfg_t *cfg, const char *client_id, int protocol,
                           const char *will_topic, const char *will_payload,
                           const mqtt_conn_hooks_t *hooks, void *user, char *err, size_t errlen);

/*  Destroys the client (without sending anything); accepts NULL, nulls the pointer. */
void mqtt_conn_destroy(mqtt_conn_t **p);

/*  The libmosquitto client, for subscribing, publishing and the program's own callbacks
    (their obj argument is the mqtt_conn_t). Owned by c. */
struct mosquitto *mqtt_conn_mosq(mqtt_conn_t *c);

/*  The user pointer given to mqtt_conn_new(), from a libmosquitto callback's obj. */
void *mqtt_conn_user(void *obj);

/*  The first connect (asynchronous). A failure is reported through on_connect_failed and
    retried from mqtt_conn_tick(). */
void mqtt_conn_start(mqtt_conn_t *c, int64_t now);

/*  Connected (CONNACK accepted, not lost since). */
bool mqtt_conn_connected(const mqtt_conn_t *c);

/*  Switches the protocol for the next attempt (e.g. to MQTT_PROTOCOL_V311 after a broker
    refused v5), with the back-off back at its minimum. */
void mqtt_conn_set_protocol(mqtt_conn_t *c, int protocol);
int mqtt_conn_protocol(const mqtt_conn_t *c);

/*  A broker's refusal (the rc of on_connect) in words, e.g. "not authorised: wrong user name
    or password (...)" rather than libmosquitto's "Connection Refused: unknown reason." for
    an MQTT v5 reason code. The text lives in c until the next call. */
const char *mqtt_conn_refusal(mqtt_conn_t *c, int rc);

/*  A lost connection (the rc of on_disconnect) in words; a TLS failure names what was not
    accepted. The text lives in c until the next call. */
const char *mqtt_conn_loss(mqtt_conn_t *c, int rc);

/*  The poll item of this pass: the current socket, ZMQ_POLLIN, and ZMQ_POLLOUT while
    libmosquitto wants to write. 0, or -1 when there is no socket (not connected). */
int mqtt_conn_pollitem(mqtt_conn_t *c, zmq_pollitem_t *item);

/*  After zmq_poll: reads and writes as the item's revents say. */
void mqtt_conn_handle(mqtt_conn_t *c, short revents);

/*  Timers: mosquitto_loop_misc() every one to two seconds (returns true when it
    ran, so the program can hang its periodic duties on it) and the reconnect when it is
    due. Call it on every wake-up: misc runs on the first one after its second has passed
    (by then at the latest: a tenth of the keep-alive, at most a second, after it). */
bool mqtt_conn_tick(mqtt_conn_t *c, int64_t now);

/*  The latest time mqtt_conn_tick() must run (monotonic ms): misc waits up to a tenth of
    the keep-alive (at most a second) past its due time for a wake-up the program has
    anyway. */
int64_t mqtt_conn_deadline(const mqtt_conn_t *c);

/*  libmosquitto has data waiting to be written on a live socket. */
bool mqtt_conn_want_write(mqtt_conn_t *c);

/*  The program is on its way out: a lost connection is no longer retried or reported.
    Publishing goes on while the connection lasts. */
void mqtt_conn_stop(mqtt_conn_t *c);

/*  Orderly end: mqtt_conn_stop(), then DISCONNECT (the broker drops the will). Poll with
    mqtt_conn_pollitem() while mqtt_conn_want_write() to get it out. */
void mqtt_conn_disconnect(mqtt_conn_t *c);

#ifdef __cplusplus
}
#endif

#endif
