/*  gw_client: REQ client of the gateway with the Lazy Pirate pattern, in a blocking and an
    event-loop form, plus the SUB side for telemetry and events.
*/
#include "gw_client.h"
#include "config.h"
#include "monotime.h"
#include "sigflag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_MAX_REQUEST 4096 /* the protocol's request limit */

struct gw_client_t {
    char *endpoint;
    int timeout_ms; /* per try */
    int retries;    /* resends after the first try */
    zsock_t *sock;
    char *curve_server; /* Z85 public key of the gateway, NULL = no CURVE */
    zcert_t *cert;      /* this client's keys when CURVE is on */
    char *pending;      /* the request in flight (serialised), NULL when none */
    int tries_left;     /* resends left for the pending request */
    int64_t deadline;   /* mono_ms when the pending reply is due */
};

static void s_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void s_err(char *err, size_t n, const char *fmt, ...)
{
    if (!err || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

static int s_apply_curve(zsock_t *sock, const char *server_key, zcert_t *cert)
{
    if (!server_key)
        return 0;
    zcert_apply(cert, sock);
    zsock_set_curve_serverkey(sock, server_key);
    return 0;
}

static int s_open(gw_client_t *self)
{
    zsock_destroy(&self->sock);
    self->sock = zsock_new(ZMQ_REQ);
    if (!self->sock)
        return -1;
    //  Never hold the process at exit for unsent requests; never block on send.
    zsock_set_linger(self->sock, 0);
    zsock_set_sndtimeo(self->sock, 0);
    s_apply_curve(self->sock, self->curve_server, self->cert);
    if (zsock_connect(self->sock, "%s", self->endpoint) != 0) {
        zsock_destroy(&self->sock);
        return -1;
    }
    return 0;
}

gw_client_t *gw_client_new(const char *endpoint, int timeout_ms, int retries)
{
    if (!endpoint || !*endpoint || timeout_ms <= 0 || retries < 0)
        return NULL;
    gw_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->endpoint = strdup(endpoint);
    self->timeout_ms = timeout_ms;
    self->retries = retries;
    self->deadline = INT64_MAX;
    if (!self->endpoint || s_open(self) != 0)
        gw_client_destroy(&self);
    return self;
}

void gw_client_destroy(gw_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_client_t *self = *self_p;
    zsock_destroy(&self->sock);
    zcert_destroy(&self->cert);
    free(self->curve_server);
    free(self->pending);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

//  Load a zcert file for its keys; NULL with a message when it has no secret key.
static zcert_t *s_load_cert(const char *path, char *err, size_t n)
{
    if (!path || !*path) {
        zcert_t *cert = zcert_new();
        if (!cert)
            s_err(err, n, "cannot create a CURVE key pair");
        return cert;
    }
    zcert_t *cert = zcert_load(path);
    if (!cert) {
        s_err(err, n, "%s: cannot load the CURVE certificate (zcert format)", path);
        return NULL;
    }
    static const char zero_key[] = "0000000000000000000000000000000000000000";
    if (strcmp(zcert_secret_txt(cert), zero_key) == 0) {
        s_err(err, n, "%s: the certificate has no secret key (expected %s_secret beside it)", path,
              path);
        zcert_destroy(&cert);
    }
    return cert;
}

int gw_client_set_curve(gw_client_t *self, const char *server_key, const char *client_cert,
                        char *err, size_t n)
{
    if (!zsys_has_curve()) {
        s_err(err, n, "this libzmq has no CURVE support");
        return -1;
    }
    if (!server_key || strlen(server_key) != 40) {
        s_err(err, n, "the gateway's public key must be 40 Z85 characters");
        return -1;
    }
    zcert_t *cert = s_load_cert(client_cert, err, n);
    if (!cert)
        return -1;
    char *key = strdup(server_key);
    if (!key) {
        zcert_destroy(&cert);
        s_err(err, n, "out of memory");
        return -1;
    }
    zcert_destroy(&self->cert);
    free(self->curve_server);
    self->cert = cert;
    self->curve_server = key;
    //  The keys apply to a socket before it connects: reopen (drops a pending request).
    return gw_client_reset(self);
}

/* The [GATEWAY] key of gateway g: its own for 0, Gw/<g>/<key> for another. */
static const char *s_gw_key(const config_t *cfg, int g, const char *key)
{
    return g == 0 ? config_str(cfg, "GATEWAY", "%s", key)
                  : config_str(cfg, "GATEWAY", "Gw/%d/%s", g, key);
}

int gw_client_check_config(const config_t *cfg, char *err, size_t n)
{
    bool curve = false;
    for (int g = 0; g < CONFIG_MAX_GATEWAYS; g++)
        curve = curve || *s_gw_key(cfg, g, "CurveServerPublicKey");
    if (!curve)
        return 0;
    if (!zsys_has_curve()) {
        s_err(err, n, "this libzmq has no CURVE support");
        return -1;
    }
    const char *path = config_str(cfg, "GATEWAY", "CurveClientKeyFile");
    if (!*path)
        return 0;
    zcert_t *cert = s_load_cert(path, err, n);
    if (!cert)
        return -1;
    zcert_destroy(&cert);
    return 0;
}

gw_client_t *gw_client_from_config(const config_t *cfg, char *err, size_t n)
{
    return gw_client_from_config_gw(cfg, 0, err, n);
}

gw_client_t *gw_client_from_config_gw(const config_t *cfg, int g, char *err, size_t n)
{
    const char *endpoint = s_gw_key(cfg, g, "ReqEndpoint");
    gw_client_t *self = gw_client_new(endpoint, (int)config_int(cfg, "GATEWAY", "ClientTimeoutMs"),
                                      (int)config_int(cfg, "GATEWAY", "ClientRetries"));
    if (!self) {
        s_err(err, n, "cannot create a client for %s", *endpoint ? endpoint : "(no endpoint)");
        return NULL;
    }
    const char *server_key = s_gw_key(cfg, g, "CurveServerPublicKey");
    if (*server_key &&
        gw_client_set_curve(self, server_key, config_str(cfg, "GATEWAY", "CurveClientKeyFile"), err,
                            n) != 0)
        gw_client_destroy(&self);
    return self;
}

int gw_client_reset(gw_client_t *self)
{
    free(self->pending);
    self->pending = NULL;
    self->deadline = INT64_MAX;
    return s_open(self);
}

//  Serialise REQ with "v":1 added when missing. NULL when not an object or too large.
static char *s_serialise(const cJSON *req)
{
    if (!cJSON_IsObject(req))
        return NULL;
    cJSON *copy = cJSON_Duplicate(req, true);
    if (!copy)
        return NULL;
    if (!cJSON_HasObjectItem(copy, "v"))
        cJSON_AddNumberToObject(copy, "v", 1);
    char *text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (text && strlen(text) > GW_MAX_REQUEST) {
        cJSON_free(text);
        return NULL;
    }
    return text;
}

//  Send the pending request on the current socket; a failed send is retried at expiry.
static void s_transmit(gw_client_t *self)
{
    if (self->sock)
        zstr_send(self->sock, self->pending);
    self->deadline = mono_ms() + self->timeout_ms;
}

int gw_client_send(gw_client_t *self, const cJSON *req)
{
    if (self->pending)
        return -1;
    char *text = s_serialise(req);
    if (!text)
        return -1;
    self->pending = strdup(text);
    cJSON_free(text);
    if (!self->pending)
        return -1;
    self->tries_left = self->retries;
    s_transmit(self);
    return 0;
}

void *gw_client_socket(gw_client_t *self)
{
    return self->sock;
}

bool gw_client_pending(const gw_client_t *self)
{
    return self->pending != NULL;
}

int64_t gw_client_deadline(const gw_client_t *self)
{
    return self->pending ? self->deadline : INT64_MAX;
}

int gw_client_expire(gw_client_t *self, int64_t now)
{
    if (!self->pending || now < self->deadline)
        return 0;
    if (self->tries_left <= 0) {
        gw_client_reset(self);
        return -1;
    }
    self->tries_left--;
    //  Lazy Pirate: a REQ socket that lost its reply is stuck; start over with a new one.
    //  If that fails the socket stays NULL until the next expiry tries again.
    s_open(self);
    s_transmit(self);
    return 1;
}

static cJSON *s_bad_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static cJSON *s_bad_reply(const char *fmt, ...)
{
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    cJSON *reply = cJSON_CreateObject();
    cJSON *error = cJSON_CreateObject();
    if (!reply || !error) {
        cJSON_Delete(reply);
        cJSON_Delete(error);
        return NULL;
    }
    cJSON_AddNumberToObject(reply, "v", 1);
    cJSON_AddBoolToObject(reply, "ok", false);
    cJSON_AddStringToObject(error, "code", "bad_reply");
    cJSON_AddStringToObject(error, "message", message);
    cJSON_AddItemToObject(reply, "error", error);
    return reply;
}

//  Read one whole message (all frames) without waiting. Returns the first frame's text
//  (NUL-terminated, caller frees) or NULL when nothing was there; *FRAMES counts frames,
//  *TOO_LONG is set when the first frame exceeded MAX.
static char *s_recv_text(zsock_t *sock, size_t max, int *frames, bool *too_long)
{
    void *handle = zsock_resolve(sock);
    *frames = 0;
    *too_long = false;
    char *text = NULL;
    int more = 1;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, handle, *frames == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        if (*frames == 0) {
            size_t size = zmq_msg_size(&msg);
            if (size > max) {
                *too_long = true;
            } else {
                text = malloc(size + 1);
                if (text) {
                    memcpy(text, zmq_msg_data(&msg), size);
                    text[size] = '\0';
                }
            }
        }
        (*frames)++;
        more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
    }
    return text;
}

cJSON *gw_client_recv(gw_client_t *self)
{
    if (!self->pending || !self->sock)
        return NULL;
    int frames;
    bool too_long;
    char *text = s_recv_text(self->sock, GW_CLIENT_MAX_REPLY, &frames, &too_long);
    if (frames == 0)
        return NULL;
    free(self->pending);
    self->pending = NULL;
    self->deadline = INT64_MAX;

    cJSON *reply = NULL;
    if (too_long)
        reply = s_bad_reply("reply longer than %d bytes", GW_CLIENT_MAX_REPLY);
    else if (frames != 1)
        reply = s_bad_reply("reply has %d frames; expected 1", frames);
    else if (!text)
        reply = s_bad_reply("out of memory");
    else {
        reply = cJSON_Parse(text);
        if (!cJSON_IsObject(reply)) {
            cJSON_Delete(reply);
            reply = s_bad_reply("reply is not a JSON object");
        } else if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
            cJSON_Delete(reply);
            reply = s_bad_reply("reply has no boolean \"ok\"");
        }
    }
    free(text);
    return reply;
}

cJSON *gw_client_call(gw_client_t *self, const cJSON *req, char *err, size_t n)
{
    if (self->pending) {
        s_err(err, n, "a request is already pending");
        return NULL;
    }
    if (gw_client_send(self, req) != 0) {
        s_err(err, n, "the request is not a JSON object of at most %d bytes", GW_MAX_REQUEST);
        return NULL;
    }
    while (true) {
        int64_t now = mono_ms();
        if (now >= self->deadline) {
            if (gw_client_expire(self, now) < 0) {
                s_err(err, n, "no reply from the gateway at %s after %d tr%s of %d ms",
                      self->endpoint, self->retries + 1, self->retries ? "ies" : "y",
                      self->timeout_ms);
                return NULL;
            }
            continue;
        }
        int64_t wait = self->deadline - now;
        zmq_pollitem_t item = {self->sock ? zsock_resolve(self->sock) : NULL, 0, ZMQ_POLLIN, 0};
        //  Without a socket (a reopen failed) wait for the deadline; expiry tries again.
        int rc = zmq_poll(self->sock ? &item : NULL, self->sock ? 1 : 0, (long)wait);
        if (rc < 0) {
            if (errno == EINTR && !sigflag_stop())
                continue;
            s_err(err, n, "interrupted while waiting for the gateway");
            gw_client_reset(self);
            return NULL;
        }
        if (rc > 0 && (item.revents & ZMQ_POLLIN)) {
            cJSON *reply = gw_client_recv(self);
            if (reply)
                return reply;
        }
    }
}

const char *gw_client_endpoint(const gw_client_t *self)
{
    return self->endpoint;
}

static zsock_t *s_sub_new(const char *endpoint, const char *const *prefixes, const char *server_key,
                          zcert_t *cert, int heartbeat_ms)
{
    if (!endpoint || !*endpoint)
        return NULL;
    zsock_t *sub = zsock_new(ZMQ_SUB);
    if (!sub)
        return NULL;
    zsock_set_linger(sub, 0);
    if (heartbeat_ms > 0) { /* before the connect: options apply to new connections */
        zsock_set_heartbeat_ivl(sub, heartbeat_ms);
        zsock_set_heartbeat_timeout(sub, 3 * heartbeat_ms);
    }
    s_apply_curve(sub, server_key, cert);
    if (prefixes)
        for (const char *const *p = prefixes; *p; p++)
            zsock_set_subscribe(sub, *p);
    else
        zsock_set_subscribe(sub, "");
    if (zsock_connect(sub, "%s", endpoint) != 0)
        zsock_destroy(&sub);
    return sub;
}

zsock_t *gw_client_sub_new(const char *endpoint, const char *const *prefixes)
{
    return s_sub_new(endpoint, prefixes, NULL, NULL, 0);
}

zsock_t *gw_client_sub_from_config(const config_t *cfg, const char *const *prefixes, char *err,
                                   size_t n)
{
    return gw_client_sub_from_config_gw(cfg, 0, prefixes, 0, err, n);
}

zsock_t *gw_client_sub_from_config_gw(const config_t *cfg, int g, const char *const *prefixes,
                                      int heartbeat_ms, char *err, size_t n)
{
    const char *endpoint = s_gw_key(cfg, g, "PubEndpoint");
    const char *server_key = s_gw_key(cfg, g, "CurveServerPublicKey");
    zcert_t *cert = NULL;
    if (*server_key) {
        if (!zsys_has_curve()) {
            s_err(err, n, "this libzmq has no CURVE support");
            return NULL;
        }
        cert = s_load_cert(config_str(cfg, "GATEWAY", "CurveClientKeyFile"), err, n);
        if (!cert)
            return NULL;
    }
    zsock_t *sub =
        s_sub_new(endpoint, prefixes, *server_key ? server_key : NULL, cert, heartbeat_ms);
    zcert_destroy(&cert);
    if (!sub)
        s_err(err, n, "cannot connect a SUB socket to %s", *endpoint ? endpoint : "(no endpoint)");
    return sub;
}

cJSON *gw_client_sub_recv(zsock_t *sub, char *topic, size_t topic_len)
{
    void *handle = zsock_resolve(sub);
    char *parts[2] = {NULL, NULL};
    int frames = 0;
    bool bad = false;
    int more = 1;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, handle, frames == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        size_t size = zmq_msg_size(&msg);
        if (frames < 2 && size <= GW_CLIENT_MAX_REPLY) {
            parts[frames] = malloc(size + 1);
            if (parts[frames]) {
                memcpy(parts[frames], zmq_msg_data(&msg), size);
                parts[frames][size] = '\0';
            }
        } else {
            bad = true;
        }
        frames++;
        more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
    }
    cJSON *body = NULL;
    if (!bad && frames == 2 && parts[0] && parts[1]) {
        body = cJSON_Parse(parts[1]);
        if (!cJSON_IsObject(body)) {
            cJSON_Delete(body);
            body = NULL;
        } else if (topic && topic_len) {
            snprintf(topic, topic_len, "%s", parts[0]);
        }
    }
    free(parts[0]);
    free(parts[1]);
    return body;
}

bool gw_token_valid(const char *s)
{
    return s && strlen(s) == GW_TOKEN_LEN && strspn(s, "0123456789abcdef") == GW_TOKEN_LEN;
}
