/*
 * gw_auth: who may talk to the gateway over CURVE. A ZAP handler (ZeroMQ's authentication
 * protocol, RFC 27) on inproc://zeromq.zap.01 that accepts a CURVE client only when its public
 * key is in an allow-list: the zcert public files of a directory, as czmq's zauth keeps them
 * (`CurveClientsDir`: full access; `CurveReadOnlyClientsDir`: telemetry and reads only).
 * An accepted connection's messages carry the User-Id `rw:<key>` or `ro:<key>`; every other
 * client is refused before its first message reaches the gateway.
 *
 * The gateway's loop polls gw_auth_sock() and calls gw_auth_handle(); nothing here logs, a
 * refusal is reported to the caller.
 */
#ifndef BIC_GW_AUTH_H
#define BIC_GW_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <czmq.h>

typedef struct gw_auth_t gw_auth_t;

/* Checks that dir can serve as an allow-list: a readable directory holding at least one
 * zcert public file. 0, or -1 with the reason in err (key names the config key). */
int gw_auth_check_dir(const char *key, const char *dir, char *err, size_t errlen);

/* Loads the allow-lists (ro_dir may be empty) and binds the ZAP handler, which must exist
 * before the CURVE sockets are bound. NULL with the reason in err. */
gw_auth_t *gw_auth_new(const char *rw_dir, const char *ro_dir, char *err, size_t errlen);

/* Destroys the handler; accepts NULL, nulls the caller's pointer. */
void gw_auth_destroy(gw_auth_t **p);

/* The ZAP socket, for the caller's poll loop. Owned by the handler. */
zsock_t *gw_auth_sock(gw_auth_t *self);

/* Keys allowed with full access and read-only. */
size_t gw_auth_count(const gw_auth_t *self, bool read_only);

/* Answers one pending ZAP request. Returns 0 (accepted), 1 (refused: why says whose key
 * from where) or -1 (nothing to answer). */
int gw_auth_handle(gw_auth_t *self, char *why, size_t whylen);

/* True when a request frame came from a read-only client (its User-Id). */
bool gw_auth_read_only(zframe_t *frame);

#endif
