/*
 * ctl_daemon: the bic-charge-ctl service. One poll loop holds the controller's own MQTT
 * connection (libmosquitto driven from this loop, no thread: the meter topic, control/set,
 * the status and availability topics, Home Assistant discovery), the gateway's PUB (SUB:
 * telemetry and events) and REP (asynchronous REQ, one request in flight).
 *
 * Each accepted meter sample, each telemetry message and a 1 s timer run ctl_step() with the
 * latest inputs; a changed setpoint goes to the gateway as `setpoint` with `lease_ttl_s`,
 * and the lease is renewed every TTL/3 while the controller runs. The controller drives one
 * device: the first [CHARGE_CONTROL] Id/X. See docs/charge-ctl.md, "The daemon".
 */
#ifndef CTL_DAEMON_H
#define CTL_DAEMON_H

#include <stddef.h>

#include "config.h"

typedef struct ctl_daemon_t ctl_daemon_t;

/* What ctl_daemon_new() would refuse in cfg, short of creating sockets (--check-config).
 * 0, or -1 with the reason in err. */
int ctl_daemon_check_config(const config_t *cfg, char *err, size_t errlen);

/* A controller configured from cfg (borrowed; what it needs is copied). config_path is
 * remembered for SIGHUP. Creates the sockets; connects nothing yet. NULL with a message in
 * err when the configuration cannot drive a device or a socket cannot be created. */
ctl_daemon_t *ctl_daemon_new(const config_t *cfg, const char *config_path, char *err,
                             size_t errlen);

/* Destroys the controller; accepts NULL and nulls the caller's pointer. Sends nothing: the
 * orderly exit (device to idle, lease released, offline published) is ctl_daemon_run's. */
void ctl_daemon_destroy(ctl_daemon_t **p);

/* Runs until SIGINT/SIGTERM (sigflag). On the way out puts the device to idle through the
 * gateway, releases the lease, publishes the stopped status and `offline`, disconnects.
 * Returns 0, or -1 on a fatal error. */
int ctl_daemon_run(ctl_daemon_t *d);

#endif
