/*  gw_client: the client side of the gateway protocol (docs/ipc-protocol.md), for bicctl,
    the bridge and the controller.

    Requests go over a REQ socket with the Lazy Pirate pattern: wait for the reply with a
    timeout; on timeout close and reopen the socket and resend, a bounded number of times.
    "v":1 is added to a request that has no "v".

    Two ways to use it:
    - blocking: gw_client_call() (for bicctl and start-up steps);
    - in an event loop: gw_client_send(), poll gw_client_socket() for input with a timeout
      no later than gw_client_deadline(), then gw_client_recv() when readable, or
      gw_client_expire(now) when the deadline passed.
    One request is in flight at a time.

    Replies that are not JSON objects are turned into a local error object
    {"ok":false,"error":{"code":"bad_reply","message":"..."}} so callers only ever branch
    on "ok".
*/
#ifndef BIC_GW_CLIENT_H
#define BIC_GW_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>
#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

struct config_t;
typedef struct gw_client_t gw_client_t;

#define GW_CLIENT_TIMEOUT_MS 2000 /* default reply timeout per try */
#define GW_CLIENT_RETRIES 2       /* default resends after the first try */
#define GW_CLIENT_MAX_REPLY 65536 /* longer replies are bad_reply */

/*  A client for ENDPOINT (ipc:// or tcp://). TIMEOUT_MS per try (>0), RETRIES resends
    after the first try (>=0). Returns NULL on bad arguments or when the socket cannot be
    created. The socket connects lazily, so a gateway that is not up yet is fine. */
gw_client_t *gw_client_new(const char *endpoint, int timeout_ms, int retries);

/*  A client from [GATEWAY] ReqEndpoint, ClientTimeoutMs, ClientRetries and the CURVE keys
    (CurveServerPublicKey, CurveClientKeyFile). NULL with a message in ERR on failure. */
gw_client_t *gw_client_from_config(const struct config_t *cfg, char *err, size_t n);

/*  The same for gateway G of [GATEWAY] (0: ReqEndpoint and CurveServerPublicKey; 1-7:
    Gw/G/ReqEndpoint and Gw/G/CurveServerPublicKey), with the one CurveClientKeyFile,
    ClientTimeoutMs and ClientRetries. */
gw_client_t *gw_client_from_config_gw(const struct config_t *cfg, int g, char *err, size_t n);

/*  What gw_client_from_config() and gw_client_sub_from_config() would find wrong in cfg
    (for every gateway of [GATEWAY]), without creating a socket (the CURVE client certificate is
   loaded and dropped). 0, or -1 with the reason in err. */
int gw_client_check_config(const struct config_t *cfg, char *err, size_t n);

/*  Destroy; accepts NULL; nulls the caller's pointer. */
void gw_client_destroy(gw_client_t **self_p);

/*  Use CURVE: SERVER_KEY is the gateway's public key (Z85, 40 chars); CLIENT_CERT a zcert
    file with this client's keys, or NULL/"" for a fresh ephemeral key pair. Applies to the
    current and every reopened socket. Returns 0, or -1 with a message in ERR. */
int gw_client_set_curve(gw_client_t *self, const char *server_key, const char *client_cert,
                        char *err, size_t n);

/*  Send REQ (borrowed; not modified) and wait for its reply, with the retries.
    Returns the parsed reply (caller frees with cJSON_Delete): an ok or error object, or a
    local "bad_reply" error object. Returns NULL with a message in ERR when the gateway
    did not answer after the retries, when REQ is not an object or is too large, or when a
    request is already pending from gw_client_send(). */
cJSON *gw_client_call(gw_client_t *self, const cJSON *req, char *err, size_t n);

/*  Asynchronous form. Send REQ (borrowed) and return at once. Returns 0, or -1 when a
    request is already pending or REQ cannot be serialised (at most 4096 bytes). */
int gw_client_send(gw_client_t *self, const cJSON *req);

/*  The socket to poll for input (a zsock_t *). It changes after a reset (expire), so
    fetch it afresh before each poll. NULL in the rare case that reopening failed (out of
    file descriptors): then poll nothing until the deadline; expiry tries again. */
void *gw_client_socket(gw_client_t *self);

/*  When the socket is readable: the reply to the pending request (caller frees), or NULL
    when nothing could be read (then keep waiting). Clears the pending state on a reply. */
cJSON *gw_client_recv(gw_client_t *self);

/*  True while a request waits for its reply. */
bool gw_client_pending(const gw_client_t *self);

/*  Monotonic ms (mono_ms) by which the pending reply is due; INT64_MAX when none. */
int64_t gw_client_deadline(const gw_client_t *self);

/*  Handle a passed deadline at NOW (mono_ms): reopen the socket and resend while tries
    remain. Returns 0 when nothing was due, 1 when the request was resent, -1 when the
    retries are exhausted (the request is dropped, the socket reopened, no longer
    pending). */
int gw_client_expire(gw_client_t *self, int64_t now);

/*  Reopen the socket and drop any pending request. Returns 0 or -1. */
int gw_client_reset(gw_client_t *self);

/*  The endpoint (owned by the client). */
const char *gw_client_endpoint(const gw_client_t *self);

/*  A SUB socket connected to ENDPOINT subscribed to every prefix in PREFIXES (a NULL
    terminated list; NULL list = everything). Caller owns it (zsock_destroy). NULL on
    failure. */
zsock_t *gw_client_sub_new(const char *endpoint, const char *const *prefixes);

/*  The same for [GATEWAY] PubEndpoint, with the CURVE keys from the config. */
zsock_t *gw_client_sub_from_config(const struct config_t *cfg, const char *const *prefixes,
                                   char *err, size_t n);

/*  The same for gateway G (PubEndpoint or Gw/G/PubEndpoint, as gw_client_from_config_gw),
    with ZMTP heartbeats every HEARTBEAT_MS (0: none): a gateway that answers none for three
    times that is disconnected (its process hangs, its host or the network went). */
zsock_t *gw_client_sub_from_config_gw(const struct config_t *cfg, int g,
                                      const char *const *prefixes, int heartbeat_ms, char *err,
                                      size_t n);

/*  Read one PUB message from SUB (after poll said readable): the topic into TOPIC and the
    parsed JSON body (caller frees). NULL when the message is not "topic | JSON object". */
cJSON *gw_client_sub_recv(zsock_t *sub, char *topic, size_t topic_len);

/*  A lease is tied to the token its take replied with (docs/ipc-protocol.md, "Control
    lease"): GW_TOKEN_LEN lowercase hex digits. True when s is one. */
#define GW_TOKEN_LEN 32
bool gw_token_valid(const char *s);

#ifdef __cplusplus
}
#endif

#endif
