/*  mqtt_conn: one libmosquitto client in the program's own poll loop. See mqtt_conn.h.
 */
#include "mqtt_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mqtt_protocol.h>

#include "log.h"
#include "monotime.h"

#define MISC_PERIOD_MS 1000 /* keep-alive pings and timeouts: mosquitto_loop_misc() */
/* Once due, mosquitto_loop_misc() waits up to a tenth of the keep-alive, at most this long,
 * for a wake-up the program has anyway (a message) rather than one of its own: a PINGREQ then
 * leaves well within the broker's one and a half keep-alives also at KeepAliveSec=5
 * (libmosquitto and the broker count whole seconds). */
#define MISC_SLACK_MAX_MS 1000
/* An attempt that has not reached CONNACK by then is given up and retried. libmosquitto
 * does not always report a failed TLS handshake (it may close the socket without a callback,
 * or retry the handshake on a dead socket for ever). */
#define CONNECT_TIMEOUT_MS 10000

struct mqtt_conn_t {
    mqtt_conn_cfg_t cfg;
    struct mosquitto *mosq;
    mqtt_conn_hooks_t hooks;
    void *user;
    int protocol;
    bool lib_init;
    bool connected;
    bool stopping;
    int64_t reconnect_at; /* 0: no reconnect scheduled */
    int backoff_ms;
    int64_t next_misc;
    int64_t attempt_ms;  /* a connect attempt in flight since then (no CONNACK yet); 0: none */
    bool abandoned;      /* the attempt was given up: its socket is not polled any more */
    bool refused;        /* the broker refused the last attempt (CONNACK with an error) */
    char tls_error[160]; /* the last TLS error libmosquitto logged during the attempt */
    bool log_hooked;     /* libmosquitto's log lines are taken (s_log_hook) */
    char why[4800];      /* the last reason text handed out (names the TLS file) */
};

/* ---------------------------------------------------------------- configuration, names */

static void s_copy(char *dst, size_t n, const char *src)
{
    if (!n)
        return;
    size_t len = src ? strnlen(src, n - 1) : 0;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

/* A TLS file the client will read at start: a readable regular file (libmosquitto says
 * only "Invalid function arguments provided." about a missing one). */
static int s_check_tls_file(const char *key, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (!path[0])
        return 0;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        snprintf(err, errlen, "[MQTT] %s: cannot read '%s': %s", key, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "[MQTT] %s: '%s' is not a regular file; allowed: a PEM file", key,
                 path);
        return -1;
    }
    return 0;
}

int mqtt_conn_cfg_from_config(const config_t *cfg, mqtt_conn_cfg_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    s_copy(out->host, sizeof out->host, config_str(cfg, "MQTT", "BrokerIpAdr"));
    out->port = (int)config_int(cfg, "MQTT", "BrokerPort");
    s_copy(out->user, sizeof out->user, config_str(cfg, "MQTT", "BrokerAccUser"));
    s_copy(out->pass, sizeof out->pass, config_str(cfg, "MQTT", "BrokerAccPasswd"));
    out->keepalive_s = (int)config_int(cfg, "MQTT", "KeepAliveSec");
    s_copy(out->tls_ca, sizeof out->tls_ca, config_str(cfg, "MQTT", "TlsCaFile"));
    s_copy(out->tls_cert, sizeof out->tls_cert, config_str(cfg, "MQTT", "TlsCertFile"));
    s_copy(out->tls_key, sizeof out->tls_key, config_str(cfg, "MQTT", "TlsKeyFile"));
    if ((out->tls_cert[0] != '\0') != (out->tls_key[0] != '\0')) {
        snprintf(err, errlen, "[MQTT] TlsCertFile and TlsKeyFile must be given together");
        return -1;
    }
    if (out->tls_cert[0] && !out->tls_ca[0]) {
        snprintf(err, errlen, "[MQTT] TlsCertFile needs TlsCaFile (TLS is enabled by the CA file)");
        return -1;
    }
    if (s_check_tls_file("TlsCaFile", out->tls_ca, err, errlen) != 0 ||
        s_check_tls_file("TlsCertFile", out->tls_cert, err, errlen) != 0 ||
        s_check_tls_file("TlsKeyFile", out->tls_key, err, errlen) != 0)
        return -1;
    return 0;
}

int mqtt_site_from_config(const config_t *cfg, mqtt_site_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    s_copy(out->topic_main, sizeof out->topic_main, config_str(cfg, "MQTT", "TopicMain"));
    s_copy(out->ha_prefix, sizeof out->ha_prefix, config_str(cfg, "MQTT", "HaPrefix"));
    s_copy(out->ha_status, sizeof out->ha_status, config_str(cfg, "MQTT", "HaStatusTopic"));
    out->ha_discovery = config_bool(cfg, "MQTT", "HaDiscovery");
    s_copy(out->pl_online, sizeof out->pl_online, config_str(cfg, "MQTT", "StatePayloadOnline"));
    s_copy(out->pl_offline, sizeof out->pl_offline, config_str(cfg, "MQTT", "StatePayloadOffline"));
    if (!out->topic_main[0]) {
        snprintf(err, errlen, "[MQTT] TopicMain is empty");
        return -1;
    }
    return 0;
}

bool mqtt_conn_cfg_equal(const mqtt_conn_cfg_t *a, const mqtt_conn_cfg_t *b)
{
    return strcmp(a->host, b->host) == 0 && a->port == b->port && strcmp(a->user, b->user) == 0 &&
           strcmp(a->pass, b->pass) == 0 && a->keepalive_s == b->keepalive_s &&
           strcmp(a->tls_ca, b->tls_ca) == 0 && strcmp(a->tls_cert, b->tls_cert) == 0 &&
           strcmp(a->tls_key, b->tls_key) == 0;
}

bool mqtt_site_equal(const mqtt_site_t *a, const mqtt_site_t *b)
{
    return strcmp(a->topic_main, b->topic_main) == 0 && strcmp(a->ha_prefix, b->ha_prefix) == 0 &&
           strcmp(a->ha_status, b->ha_status) == 0 && a->ha_discovery == b->ha_discovery &&
           strcmp(a->pl_online, b->pl_online) == 0 && strcmp(a->pl_offline, b->pl_offline) == 0;
}

void mqtt_node_id(const char *topic_main, char *out, size_t outlen)
{
    if (!outlen)
        return;
    size_t i = 0;
    for (; topic_main && topic_main[i] && i + 1 < outlen; i++) {
        char c = topic_main[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

void mqtt_client_id(const char *app_id, const char *suffix, char *out, size_t outlen)
{
    if (app_id && *app_id) {
        snprintf(out, outlen, "%s-%s", app_id, suffix);
        return;
    }
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(out, outlen, "bic2mqtt-%s-%s", host, suffix);
}

/* ---------------------------------------------------------------- reasons in words */

/* libmosquitto logs OpenSSL's errors ("OpenSSL Error[0]: error:0A000086:SSL
 * routines::certificate verify failed"); the text after the last "::" or ':' is the reason. */
static void s_on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
    mqtt_conn_t *c = obj;
    if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) && strstr(str, "OpenSSL Error") &&
        !c->tls_error[0]) {
        const char *r = strrchr(str, ':');
        s_copy(c->tls_error, sizeof c->tls_error, r && r[1] ? r + 1 : str);
    }
    if (c->hooks.on_log)
        c->hooks.on_log(c, c->user, level, str);
}

static const char *s_tls_reason(mqtt_conn_t *c)
{
    if (strstr(c->tls_error, "certificate verify failed"))
        snprintf(c->why, sizeof c->why,
                 "TLS handshake failed: the broker's certificate was not accepted (certificate "
                 "verify failed: not signed by the CA in TlsCaFile '%s', expired, or not issued "
                 "for BrokerIpAdr '%s')",
                 c->cfg.tls_ca, c->cfg.host);
    else if (c->tls_error[0])
        snprintf(c->why, sizeof c->why, "TLS handshake failed: %s", c->tls_error);
    else
        snprintf(c->why, sizeof c->why,
                 "TLS handshake failed (is the broker's port a TLS listener, and TlsCaFile '%s' "
                 "its CA?)",
                 c->cfg.tls_ca);
    return c->why;
}

const char *mqtt_conn_refusal(mqtt_conn_t *c, int rc)
{
    bool v5 = c->protocol == MQTT_PROTOCOL_V5;
    if ((v5 && rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD) ||
        (!v5 && rc == CONNACK_REFUSED_BAD_USERNAME_PASSWORD))
        snprintf(c->why, sizeof c->why,
                 "not authorised: wrong user name or password (BrokerAccUser '%s', "
                 "BrokerAccPasswd)",
                 c->cfg.user);
    else if (((v5 && rc == MQTT_RC_NOT_AUTHORIZED) ||
              (!v5 && rc == CONNACK_REFUSED_NOT_AUTHORIZED)) &&
             c->cfg.user[0])
        /* mosquitto answers a wrong password with "not authorised" too */
        snprintf(c->why, sizeof c->why,
                 "not authorised: the broker refuses BrokerAccUser '%s' with this "
                 "BrokerAccPasswd (wrong password, or a user the broker does not allow)",
                 c->cfg.user);
    else if ((v5 && rc == MQTT_RC_NOT_AUTHORIZED) || (!v5 && rc == CONNACK_REFUSED_NOT_AUTHORIZED))
        snprintf(c->why, sizeof c->why,
                 "not authorised: the broker allows no anonymous clients (set BrokerAccUser and "
                 "BrokerAccPasswd)");
    else if (v5)
        snprintf(c->why, sizeof c->why, "%s (reason code %d)", mosquitto_reason_string(rc), rc);
    else
        snprintf(c->why, sizeof c->why, "%s (return code %d)", mosquitto_connack_string(rc), rc);
    return c->why;
}

const char *mqtt_conn_loss(mqtt_conn_t *c, int rc)
{
    if (rc == 0)
        return "clean";
    if (c->refused)
        return "closed after the refusal";
    if (rc == MOSQ_ERR_TLS || (c->tls_error[0] && c->attempt_ms))
        return s_tls_reason(c);
    if (rc == MOSQ_ERR_CONN_LOST)
        return "the connection was lost (broker stopped or network down)";
    if (rc == MOSQ_ERR_KEEPALIVE)
        return "no answer from the broker within the keep-alive";
    return mosquitto_strerror(rc);
}

/* ---------------------------------------------------------------- connection */

/* The next attempt after the back-off, which doubles up to its maximum. */
static int s_schedule(mqtt_conn_t *c, int64_t now)
{
    int wait = c->backoff_ms;
    c->reconnect_at = now + wait;
    c->backoff_ms =
        c->backoff_ms * 2 > MQTT_CONN_BACKOFF_MAX_MS ? MQTT_CONN_BACKOFF_MAX_MS : c->backoff_ms * 2;
    return wait;
}

/* The attempt in flight is over without a connection: its socket is no longer polled (the
 * next attempt closes it), the failure is reported with why and the retry scheduled. */
static void s_give_up(mqtt_conn_t *c, int64_t now, const char *why)
{
    c->attempt_ms = 0;
    c->abandoned = true;
    int wait = s_schedule(c, now);
    if (c->hooks.on_connect_failed)
        c->hooks.on_connect_failed(c, c->user, why, wait);
}

static void s_on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    mqtt_conn_t *c = obj;
    c->attempt_ms = 0;
    c->refused = rc != 0;
    if (rc == 0) {
        c->connected = true;
        c->backoff_ms = MQTT_CONN_BACKOFF_MIN_MS;
    }
    if (c->hooks.on_connect)
        c->hooks.on_connect(c, c->user, rc);
}

static void s_on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    mqtt_conn_t *c = obj;
    c->connected = false;
    if (c->stopping || c->abandoned) {
        c->attempt_ms = 0;
        return;
    }
    /* A TLS failure during an attempt is reported with its reason; the attempt is over. */
    if (rc != 0 && c->attempt_ms && (rc == MOSQ_ERR_TLS || c->tls_error[0])) {
        s_give_up(c, mono_ms(), s_tls_reason(c));
        return;
    }
    c->attempt_ms = 0;
    int wait = s_schedule(c, mono_ms());
    if (c->hooks.on_disconnect)
        c->hooks.on_disconnect(c, c->user, rc, wait);
}

/* libmosquitto formats a log line for every packet when a log callback is set: it is set only
 * while the lines can matter (an attempt's TLS errors; the hooks' debug output). */
static void s_log_hook(mqtt_conn_t *c)
{
    bool want = !c->connected || log_enabled(BIC_LOG_DEBUG);
    if (want == c->log_hooked)
        return;
    mosquitto_log_callback_set(c->mosq, want ? s_on_log : NULL);
    c->log_hooked = want;
}

static void s_connect(mqtt_conn_t *c, bool first, int64_t now)
{
    s_log_hook(c);
    c->tls_error[0] = '\0';
    c->abandoned = false;
    c->refused = false;
    c->attempt_ms = now;
    int rc = first ? mosquitto_connect_async(c->mosq, c->cfg.host, c->cfg.port, c->cfg.keepalive_s)
                   : mosquitto_reconnect_async(c->mosq);
    c->reconnect_at = 0;
    if (rc == MOSQ_ERR_SUCCESS)
        return;
    c->attempt_ms = 0;
    const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno)
                      : rc == MOSQ_ERR_TLS ? s_tls_reason(c)
                                           : mosquitto_strerror(rc);
    int wait = s_schedule(c, now);
    if (c->hooks.on_connect_failed)
        c->hooks.on_connect_failed(c, c->user, why, wait);
}

mqtt_conn_t *mqtt_conn_new(const mqtt_conn_cfg_t *cfg, const char *client_id, int protocol,
                           const char *will_topic, const char *will_payload,
                           const mqtt_conn_hooks_t *hooks, void *user, char *err, size_t errlen)
{
    if (!cfg || !client_id || !will_topic || !will_payload) {
        snprintf(err, errlen, "MQTT client setup: configuration, client id and will needed");
        return NULL;
    }
    mqtt_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    if (hooks)
        c->hooks = *hooks;
    c->user = user;
    c->protocol = protocol;
    c->backoff_ms = MQTT_CONN_BACKOFF_MIN_MS;
    mosquitto_lib_init();
    c->lib_init = true;
    c->mosq = mosquitto_new(client_id, true, c);
    if (!c->mosq) {
        snprintf(err, errlen, "cannot create the MQTT client: %s", strerror(errno));
        goto fail;
    }
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, protocol);
    int rc =
        mosquitto_will_set(c->mosq, will_topic, (int)strlen(will_payload), will_payload, 1, true);
    if (rc == MOSQ_ERR_SUCCESS && cfg->user[0])
        rc = mosquitto_username_pw_set(c->mosq, cfg->user, cfg->pass[0] ? cfg->pass : NULL);
    if (rc == MOSQ_ERR_SUCCESS && cfg->tls_ca[0])
        rc = mosquitto_tls_set(c->mosq, cfg->tls_ca, NULL, cfg->tls_cert[0] ? cfg->tls_cert : NULL,
                               cfg->tls_key[0] ? cfg->tls_key : NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "MQTT client setup: %s", mosquitto_strerror(rc));
        goto fail;
    }
    mosquitto_connect_callback_set(c->mosq, s_on_connect);
    mosquitto_disconnect_callback_set(c->mosq, s_on_disconnect);
    mosquitto_log_callback_set(c->mosq, s_on_log);
    c->log_hooked = true;
    return c;
fail:
    mqtt_conn_destroy(&c);
    return NULL;
}

void mqtt_conn_destroy(mqtt_conn_t **p)
{
    if (!p || !*p)
        return;
    mqtt_conn_t *c = *p;
    if (c->mosq)
        mosquitto_destroy(c->mosq);
    if (c->lib_init)
        mosquitto_lib_cleanup();
    free(c);
    *p = NULL;
}

struct mosquitto *mqtt_conn_mosq(mqtt_conn_t *c)
{
    return c->mosq;
}

void *mqtt_conn_user(void *obj)
{
    return obj ? ((mqtt_conn_t *)obj)->user : NULL;
}

void mqtt_conn_start(mqtt_conn_t *c, int64_t now)
{
    s_connect(c, true, now);
}

bool mqtt_conn_connected(const mqtt_conn_t *c)
{
    return c->connected;
}

void mqtt_conn_set_protocol(mqtt_conn_t *c, int protocol)
{
    c->protocol = protocol;
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, protocol);
    c->backoff_ms = MQTT_CONN_BACKOFF_MIN_MS;
}

int mqtt_conn_protocol(const mqtt_conn_t *c)
{
    return c->protocol;
}

int mqtt_conn_pollitem(mqtt_conn_t *c, zmq_pollitem_t *item)
{
    int fd = mosquitto_socket(c->mosq);
    if (fd < 0 || c->abandoned)
        return -1;
    *item = (zmq_pollitem_t){.socket = NULL, .fd = fd, .events = ZMQ_POLLIN};
    if (mosquitto_want_write(c->mosq))
        item->events |= ZMQ_POLLOUT;
    return 0;
}

void mqtt_conn_handle(mqtt_conn_t *c, short revents)
{
    /* An error on the socket is found by reading it (which closes it and reports the
     * loss); left alone, it would end every poll at once. */
    if (revents & (ZMQ_POLLIN | ZMQ_POLLERR))
        mosquitto_loop_read(c->mosq, 1);
    /* The read may have closed the socket (and a callback may have reconnected). */
    if ((revents & ZMQ_POLLOUT) && mosquitto_socket(c->mosq) >= 0 && !c->abandoned)
        mosquitto_loop_write(c->mosq, 1);
    /* An attempt whose socket failed (hang-up, refused) and that the library goes on
     * handling as if it were alive: given up now, not after the timeout. */
    if ((revents & ZMQ_POLLERR) && c->attempt_ms && !c->connected && !c->abandoned &&
        mosquitto_socket(c->mosq) >= 0) {
        int so = 0;
        socklen_t len = sizeof so;
        getsockopt(mosquitto_socket(c->mosq), SOL_SOCKET, SO_ERROR, &so, &len);
        if (c->tls_error[0] || !so) {
            s_give_up(c, mono_ms(), c->cfg.tls_ca[0] ? s_tls_reason(c) : "connection closed");
        } else {
            snprintf(c->why, sizeof c->why, "%s", strerror(so));
            s_give_up(c, mono_ms(), c->why);
        }
    }
}

bool mqtt_conn_tick(mqtt_conn_t *c, int64_t now)
{
    s_log_hook(c);
    bool misc = false;
    if (now >= c->next_misc) {
        mosquitto_loop_misc(c->mosq);
        c->next_misc = now + MISC_PERIOD_MS;
        misc = true;
    }
    if (c->attempt_ms && !c->connected && !c->stopping) {
        /* The socket went away without a callback, or no CONNACK in time. */
        if (mosquitto_socket(c->mosq) < 0)
            s_give_up(c, now,
                      c->cfg.tls_ca[0] ? s_tls_reason(c) : "connection closed by the broker");
        else if (now - c->attempt_ms >= CONNECT_TIMEOUT_MS)
            s_give_up(c, now,
                      c->tls_error[0] ? s_tls_reason(c) : "no answer from the broker within 10 s");
    }
    if (c->reconnect_at && now >= c->reconnect_at && !c->connected)
        s_connect(c, false, now);
    return misc;
}

int64_t mqtt_conn_deadline(const mqtt_conn_t *c)
{
    int64_t slack = (int64_t)c->cfg.keepalive_s * 100;
    int64_t dl = c->next_misc + (slack < MISC_SLACK_MAX_MS ? slack : MISC_SLACK_MAX_MS);
    if (c->reconnect_at && c->reconnect_at < dl)
        dl = c->reconnect_at;
    if (c->attempt_ms && c->attempt_ms + CONNECT_TIMEOUT_MS < dl)
        dl = c->attempt_ms + CONNECT_TIMEOUT_MS;
    return dl;
}

bool mqtt_conn_want_write(mqtt_conn_t *c)
{
    return mosquitto_socket(c->mosq) >= 0 && mosquitto_want_write(c->mosq);
}

void mqtt_conn_stop(mqtt_conn_t *c)
{
    c->stopping = true;
}

void mqtt_conn_disconnect(mqtt_conn_t *c)
{
    c->stopping = true;
    mosquitto_disconnect(c->mosq);
}
