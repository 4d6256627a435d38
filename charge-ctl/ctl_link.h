/*
 * ctl_link: the controller's link to the gateway as a state machine, without sockets or
 * clocks. It decides which request goes to the gateway next (one at a time: info, lease
 * take, renew and release, setpoint), follows the control lease through the gateway's
 * replies, its telemetry and its events, and runs the stop sequence (device to idle, lease
 * released). The daemon turns the requests into JSON, sends them, and feeds back the replies,
 * the timeouts, the telemetry's lease holder, the events and the time.
 *
 * The lease is tied to the token the gateway's take replied with (docs/ipc-protocol.md): the
 * link keeps it and the daemon sends it with every request on the lease (take, renew,
 * release, setpoint). It is kept after a loss too, so the next take carries it: a lease the
 * gateway still holds under it (a renewal that timed out while the gateway restarted) carries
 * on, a lapsed one is taken with a new token from the reply. A release forgets it.
 *
 * Functions that change what the controller may assume return CTL_LINK_* flags:
 * CTL_LINK_RESET: what the device was told is unknown now (lease gained or lost, setpoint
 * refused): the step starts again from idle (ctl_state_init). CTL_LINK_STEP: run the step
 * now (after RESET when both are set). See docs/charge-ctl.md, "The daemon".
 */
#ifndef CTL_LINK_H
#define CTL_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl_step.h"
#include "gw_client.h"

#define CTL_LINK_LEASE_RETRY_MS 2000    /* retry taking a lease another client holds */
#define CTL_LINK_INFO_RETRY_MS 10000    /* info again after a reply without our device */
#define CTL_LINK_INFO_PERIOD_MS 600000  /* the EEPROM policy changes with commissioning */
#define CTL_LINK_SETPOINT_RETRY_MS 2000 /* after a refused setpoint */
#define CTL_LINK_STOP_BUDGET_MS 8000    /* idle + release at exit, then leave regardless */
#define CTL_LINK_HOLDER_GRACE_MS 2000   /* telemetry sent before our take names the old holder */

typedef enum {
    CTL_LINK_REQ_NONE = 0,
    CTL_LINK_REQ_INFO,
    CTL_LINK_REQ_TAKE,
    CTL_LINK_REQ_RENEW,
    CTL_LINK_REQ_RELEASE,
    CTL_LINK_REQ_SETPOINT
} ctl_link_req_t;

enum { CTL_LINK_RESET = 1, CTL_LINK_STEP = 2, CTL_LINK_INFO = 4 };

/* A request to send: its kind, and for a setpoint the mode and current (A x 100; for idle
 * the preset, see ctl_link_setpoint). */
typedef struct {
    ctl_link_req_t kind;
    ctl_mode_t mode;
    int ca;
} ctl_link_send_t;

/* The gateway's reply to the request in flight, decoded by the caller. */
typedef struct {
    bool ok;
    const char *code;   /* error code ("" when ok) */
    const char *msg;    /* error message ("" when ok) */
    const char *holder; /* error.holder of a refused take, or NULL */
    const char *token;  /* "token" of an accepted take or setpoint, or NULL */
} ctl_link_reply_t;

typedef struct {
    /* configuration */
    int dev;
    int lease_ttl_s;
    char client[48]; /* name towards the gateway (lease holder) */

    ctl_link_req_t inflight;
    ctl_mode_t inflight_mode;
    int inflight_ca;

    /* lease */
    bool lease_held;
    int64_t lease_taken_ms, lease_ok_ms, renew_at, next_lease_try;
    char lease_note[160]; /* why there is no lease ("" while held) */
    bool standby;         /* another instance of this controller holds the lease: stay quiet */
    char token[GW_TOKEN_LEN +
               1]; /* the lease's token ("" without a lease or from a gateway without) */

    /* the setpoint to send */
    bool sp_dirty;
    ctl_mode_t sp_mode;
    int sp_ca;
    int64_t sp_retry_at;
    ctl_mode_t acked_mode; /* the last setpoint the gateway confirmed since the lease */

    int64_t next_info;

    bool stopping, stop_idle_sent, stop_done;
    int64_t stop_deadline;
} ctl_link_t;

/* What ctl_link_next() needs to know of the rest of the controller. */
typedef struct {
    bool tel_alive;      /* the gateway's telemetry arrives */
    bool enabled;        /* the controller runs (config Enable, control/set) */
    ctl_mode_t out_mode; /* the step's latest output mode */
} ctl_link_view_t;

/* A link for device dev as client, everything due at now (info, lease). */
void ctl_link_init(ctl_link_t *l, int dev, const char *client, int lease_ttl_s, int64_t now);

const char *ctl_link_req_name(ctl_link_req_t kind);

/* The step wants mode/ca on the device: replaces a setpoint not sent yet (only while the
 * lease is held). For CTL_MODE_IDLE, ca is a preset (a group's unit on standby): + a charge,
 * - a discharge current the gateway may set while the output stays off; 0 none. */
void ctl_link_setpoint(ctl_link_t *l, ctl_mode_t mode, int ca);

/* The next request to send now, marked in flight; kind NONE when nothing is due. */
ctl_link_send_t ctl_link_next(ctl_link_t *l, const ctl_link_view_t *v, int64_t now);

/* The request from ctl_link_next() could not be handed to the socket: everything is tried
 * again after CTL_LINK_LEASE_RETRY_MS. */
void ctl_link_send_failed(ctl_link_t *l, int64_t now);

/* The reply to the request in flight. CTL_LINK_INFO: an accepted info reply, for the caller
 * to read (then ctl_link_info_ok() when it named the device). */
unsigned ctl_link_reply(ctl_link_t *l, const ctl_link_reply_t *r, int64_t now);

/* The info reply named the device: next info after CTL_LINK_INFO_PERIOD_MS. */
void ctl_link_info_ok(ctl_link_t *l, int64_t now);

/* The gateway did not answer the request in flight after its resends. */
unsigned ctl_link_timeout(ctl_link_t *l, int64_t now);

/* The connection to the gateway dropped (its process ended, its host or the network went):
 * the request in flight is dropped (the caller resets its socket), the lease counts as lost
 * and what the device was told as unknown; the token is kept, so once the gateway is back
 * (with its saved leases) the take carries on with the same lease. */
unsigned ctl_link_gateway_lost(ctl_link_t *l, int64_t now);

/* Telemetry of the device: has_lease says it carries a "lease" member, holder its holder
 * (NULL: free). Another holder than us ends the lease (gateway restarted, lapse missed). */
unsigned ctl_link_telemetry(ctl_link_t *l, bool has_lease, const char *holder, int64_t now);

/* The gateway's lease_lapsed event naming holder. */
unsigned ctl_link_lease_lapsed(ctl_link_t *l, const char *holder, int64_t now);

/* The device is online again (its identity and EEPROM policy may have changed): info now. */
void ctl_link_device_online(ctl_link_t *l, int64_t now);

/* The gateway's power_cycled event naming holder: when we hold the lease, the command in
 * force (mode, ca from the step's state) is sent again at once. True when it is. */
bool ctl_link_power_cycled(ctl_link_t *l, const char *holder, ctl_mode_t mode, int ca, int64_t now);

/* Periodic check: no renewal confirmed within the TTL means the gateway let the lease lapse. */
unsigned ctl_link_tick(ctl_link_t *l, int64_t now);

/* When ctl_link_next() has something due next (at most `dl`). */
int64_t ctl_link_deadline(const ctl_link_t *l, const ctl_link_view_t *v, int64_t dl);

/* Starts the stop sequence: idle, release, within CTL_LINK_STOP_BUDGET_MS. */
void ctl_link_stop(ctl_link_t *l, int64_t now);

/* The stop sequence is over: done, or its time is up (then stop_done is set too). */
bool ctl_link_stop_over(ctl_link_t *l, int64_t now);

#endif
