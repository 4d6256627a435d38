/*
 * gw_bind: the gateway's ZeroMQ sockets bound, with its CURVE server key when one is
 * configured (CurveSecretKeyFile); an ipc endpoint's missing directory is created.
 */
#ifndef BIC_GW_BIND_H
#define BIC_GW_BIND_H

#include <stddef.h>

#include <czmq.h>

/* A socket of type (ZMQ_ROUTER, ZMQ_PUB) bound to ep, a CURVE server with the zcert secret
 * file curve when that is not empty. NULL with the reason in err. */
zsock_t *gw_bind(int type, const char *ep, const char *curve, char *err, size_t errlen);

#endif
