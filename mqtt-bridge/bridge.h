/*
 * bridge: the bic-mqtt-bridge service. One poll loop holds the MQTT connection
 * (libmosquitto driven from this loop, no thread), the gateway's PUB (SUB socket) and REP
 * (asynchronous REQ client). Telemetry becomes the seed topics and Home Assistant
 * discovery; MQTT commands become gateway requests, answered on `<topic>/result`.
 *
 * The pure parts live in dev_view (payloads), bridge_cmd (commands) and ha_disc
 * (discovery); this module only moves bytes between them and the sockets (bridge.c: the loop
 * and the life cycle; bridge_pub.c, bridge_gw.c, bridge_mqtt.c: see bridge_internal.h).
 */
#ifndef BRIDGE_H
#define BRIDGE_H

#include <stddef.h>

#include "config.h"

typedef struct bridge_t bridge_t;

/* What bridge_new() would refuse in cfg, short of creating sockets (--check-config).
 * 0, or -1 with the reason in err. */
int bridge_check_config(const config_t *cfg, char *err, size_t errlen);

/* A bridge configured from cfg (borrowed; what the bridge needs is copied). config_path is
 * remembered for cfgReload and SIGHUP. Creates the sockets; connects nothing yet.
 * NULL with a message in err on failure. */
bridge_t *bridge_new(const config_t *cfg, const char *config_path, char *err, size_t errlen);

/* Destroys the bridge; accepts NULL and nulls the caller's pointer. */
void bridge_destroy(bridge_t **p);

/* Runs until SIGINT/SIGTERM (sigflag): connects, reconnects, serves. On the way out publishes
 * the offline state and disconnects cleanly. Returns 0, or -1 on a fatal setup error. */
int bridge_run(bridge_t *b);

#endif
