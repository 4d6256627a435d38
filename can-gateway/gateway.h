/*
 * gateway: the bic-can-gateway service. It owns the CAN transport, one bus scheduler, the
 * devices on the bus, the control lease and the EEPROM policy, and serves the ZeroMQ
 * protocol of docs/ipc-protocol.md on a ROUTER socket (requests) and a PUB socket
 * (telemetry, events, health), all from one poll loop with deadlines.
 *
 * A request that needs CAN exchanges becomes a job (pending state); the loop advances it as
 * bus results arrive and answers it exactly once when it is done.
 */
#ifndef BIC_GATEWAY_H
#define BIC_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct gateway gateway_t;

/* Checks the gateway's own rules on a loaded config (endpoints, CURVE on non-loopback tcp,
 * device types). Returns 0, or -1 with the reason in err. */
int gateway_check_config(const config_t *cfg, char *err, size_t errlen);

/* Creates the service from cfg (borrowed for the call only): binds the sockets, loads the
 * state file and opens the CAN transport (a transport that cannot be opened is not fatal:
 * the bus is down and the gateway keeps retrying). NULL with the reason in err. */
gateway_t *gateway_new(const config_t *cfg, char *err, size_t errlen);
void gateway_destroy(gateway_t **p);

/* Runs one pass of the loop: waits at most max_wait_ms for sockets/the bus, then handles
 * everything due. Returns 0, or -1 on a fatal socket error. */
int gateway_poll(gateway_t *gw, int max_wait_ms);

/* Applies a new, valid config. Settings that need new sockets or a new transport (endpoints,
 * Can, StateDir) are kept until a restart; the function says so in note. Returns 0 or -1. */
int gateway_reload(gateway_t *gw, const config_t *cfg, char *note, size_t notelen);

/* Starts a clean shutdown: applies the safe state when configured (SafeStateOnExit).
 * Call gateway_poll() until gateway_stopped() is true (bounded by an internal deadline). */
void gateway_begin_stop(gateway_t *gw);
bool gateway_stopped(const gateway_t *gw);

#endif
