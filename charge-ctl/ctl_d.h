/*
 * ctl_d: the state of the bic-charge-ctl daemon, shared by the files that make it up (the
 * loop in ctl_daemon.c; the topics, the gateway, the inputs, the surplus switches and the
 * Winter mode each in its own ctl_d_*.c). Not a public interface: ctl_daemon.h is.
 */
#ifndef CTL_D_H
#define CTL_D_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>
#include <czmq.h>
#include <mosquitto.h>

#include "config.h"
#include "ctl_d_mqtt.h"
#include "ctl_daemon.h"
#include "ctl_follow.h"
#include "ctl_group_run.h"
#include "ctl_link.h"
#include "ctl_settings.h"
#include "ctl_step.h"
#include "ctl_tel_period.h"
#include "gw_client.h"
#include "mqtt_conn.h"
#include "surplus.h"
#include "winter.h"

/* A device of the controller's group ([CHARGE_CONTROL] Id/X/Devices) other than X itself,
 * whose link and telemetry are the daemon's own (link, tel_*, dc_v, dc_a). */
typedef struct {
    int dev;
    int gateway;     /* the gateway it is on ([GATEWAY] Gw/G/...; 0: [GATEWAY]'s own) */
    ctl_link_t link; /* its own lease, with its own client name */
    gw_client_t *gw; /* its own gateway socket: the devices' requests go out together */
    bool tel_seen;
    int64_t tel_ms;
    int tel_period_ms; /* its gateway's stated telemetry period (0: none, -1: not valid) */
    ctl_tel_spacing_t tel_spacing; /* ... and measured, for a gateway that states none */
    bool tel_measured;             /* the measured spacing is the one used (logged) */
    ctl_input_t tel;               /* its telemetry's fields (ctld_tel_reading) */
    /* does it follow its command? (ctl_follow, for every device of a group) */
    ctl_mode_t f_mode;          /* the command judged */
    int64_t f_mode_ms, f_ok_ms; /* when it was given; when last seen following */
    ctl_follow_cause_t f_cause; /* reported (CTL_F_NONE: none) */
    char f_text[200];           /* ... as a sentence */
    int64_t f_out_ms;           /* left out of the group since (0: in it) */
    bool f_safe;                /* ... and switched off (FollowSafeSec after that) */
    int64_t f_safe_ms;          /* when */
    unsigned f_offs;            /* switch-offs since it was last seen following */
    bool in_step;               /* it took part in the last step (online, lease, not left out) */
    /* a person's stop (ctl_d_hold.c) */
    bool held;          /* switched off by a person: left out, its lease given back */
    bool resume;        /* its setpoints carry "resume":true (control/set 1) until one is taken */
    int64_t off_ask_ms; /* when its output read off while it runs was last asked about */
    char t_state[600];  /* <T>/inv/<dev>/state/set */
} ctld_unit_t;

struct ctl_daemon_t {
    settings_t set;
    char *config_path;
    char node[256];
    char client[48]; /* name towards the gateway (lease holder) */
    char t_status[600], t_avail[600], t_cmd[600], t_result[640], t_soc[600], t_fault[600],
        t_surplus[600], t_state_cmd[600];

    mqtt_conn_t *mq;
    int offline_mid;
    bool offline_acked;

    gw_client_t *gw;
    zsock_t *sub;
    ctl_link_t link; /* lease, setpoints, info and the stop sequence towards the gateway */

    /* a group (Id/X/Devices lists more than X): one link and gateway socket per device, one
     * step over them all (ctl_d_group.c) */
    int n_units;                      /* devices driven (1: X alone, as before) */
    int own;                          /* X's index in set.group.dev */
    ctld_unit_t units[CTL_GROUP_MAX]; /* the others (units[own] unused) */
    ctl_group_run_t grun;
    /* a group over several gateways (ctl_d_gateways.c): gateway G's SUB (gateway 0's is
     * sub) and a monitor of each gateway's SUB connection, so a gateway that drops out is
     * seen at once */
    int n_gw;
    zsock_t *gsub[CONFIG_MAX_GATEWAYS];
    zsock_t *gmon[CONFIG_MAX_GATEWAYS];
    bool gw_up[CONFIG_MAX_GATEWAYS]; /* its SUB connection's handshake succeeded */
    bool gw_auth_logged[CONFIG_MAX_GATEWAYS];
    ctl_group_run_out_t gout;
    double energy_wh[CTL_GROUP_MAX]; /* moved by each device, for the rotation */
    int64_t energy_ms;
    char t_group[600];
    char *group_key; /* the group topic's payload as last published */
    int64_t group_ms;

    bool enabled;   /* runtime enable (config Enable, then control/set) */
    bool paused;    /* state/set 0: the output was switched off by a person; no setpoint, no
                       lease until state/set 1 (once the output is on) or control/set */
    bool resume_on; /* paused, state/set 1 came: resume once telemetry shows the output on */
    bool resume_sp; /* a person resumed it (control/set): setpoints carry "resume":true until
                       one that switches the output on is taken (the gateway's held_off) */
    ctl_state_t st;
    ctl_output_t out;
    int64_t next_step;

    /* meter */
    bool meter_valid; /* a fresh (not retained) sample was accepted */
    double meter_w;
    int64_t meter_ms;
    uint64_t meter_seq;
    bool shown_valid; /* for the status: the latest accepted value, retained ones included */
    double shown_w;
    int64_t shown_ms;
    uint64_t meter_errors;
    uint64_t bad_unlogged;
    int64_t bad_log_ms;
    bool retained_logged;

    /* telemetry */
    bool tel_seen;
    bool tel_was_alive; /* for logging the transitions */
    int64_t tel_ms;
    int tel_period_ms; /* its gateway's stated telemetry period (0: none, -1: not valid) */
    ctl_tel_spacing_t tel_spacing; /* ... and measured, for a gateway that states none */
    bool tel_measured;             /* the measured spacing is the one used (logged) */
    bool tel_online;
    bool tel_valid;
    double dc_v, dc_a;
    bool fault_any; /* a protection fault is active */
    int operation, direction, iout_ca, rev_iout_ca;
    int vout_cv, rev_vout_cv; /* voltage settings read back (V x 100), -1 unknown */
    bool temp_valid;
    double temp_c;
    int fault_raw;
    int64_t sp_age_ms;

    bool info_done;

    /* publishing */
    char *status_key;
    int64_t status_ms;
    int64_t status_due;    /* 0: nothing waiting */
    double eep_tokens;     /* the gateway's EEPROM budget left at its last info (-1: unknown) */
    int64_t eep_tokens_ms; /* when that info came */
    bool soc_pub_valid;
    double soc_pub;
    int64_t soc_ms;
    int64_t surplus_pub_ms;
    double surplus_pub;
    int64_t republish_at;

    winter_state_t winter; /* Type=Winter */
    winter_output_t winter_out;

    /* surplus switches */
    double surplus_w;   /* W the battery could not take (the seed's surplusP) */
    surplus_state_t sw; /* the switches' states */
    ctld_state_t last_state;
    char last_reason[160];
    /* the device-follows problem as last logged and published */
    bool follow_logged, follow_safe_logged;
    bool fault_pub_valid, fault_pub_active;
    ctl_follow_cause_t fault_pub_cause;
};

/* The controller drives the device: enabled and not paused. */
static inline bool ctld_active(const ctl_daemon_t *d)
{
    return d->enabled && !d->paused;
}

/* ctl_daemon.c: the loop */
bool ctld_tel_alive(const ctl_daemon_t *d, int64_t now);
bool ctld_device_reachable(const ctl_daemon_t *d, int64_t now);
bool ctld_meter_stale(const ctl_daemon_t *d, int64_t now);
void ctld_step(ctl_daemon_t *d, int64_t now);

/* ctl_d_publish.c: the status, availability, fault, result and discovery topics */
int ctld_publish(ctl_daemon_t *d, const char *topic, const char *payload, int qos, bool retain);
ctld_state_t ctld_state(const ctl_daemon_t *d);
const char *ctld_reason(const ctl_daemon_t *d, int64_t now);
void ctld_publish_status(ctl_daemon_t *d, int64_t now, bool force);
void ctld_publish_fault(ctl_daemon_t *d, bool force);
void ctld_publish_all(ctl_daemon_t *d, int64_t now);
void ctld_note_state(ctl_daemon_t *d, int64_t now);
void ctld_publish_result(ctl_daemon_t *d, bool ok, const char *request, const char *code,
                         const char *message);

/* ctl_d_surplus.c: the surplus switches' wiring */
void ctld_publish_switch(ctl_daemon_t *d, size_t i);
void ctld_publish_switches(ctl_daemon_t *d);
void ctld_surplus_step(ctl_daemon_t *d, const ctl_input_t *in, int64_t now);

/* ctl_d_winter.c: the Winter mode's wiring */
void ctld_winter_step(ctl_daemon_t *d, const ctl_input_t *in, int64_t now);

/* ctl_d_gateway.c: requests, replies, telemetry and events of the gateway */
ctl_link_view_t ctld_link_view(const ctl_daemon_t *d, int i, int64_t now);
/* The device's fields of a step input from a telemetry message: online, dc_v/dc_a with
 * telemetry_valid when both are numbers (kept otherwise), operation, direction, the
 * setpoints read back, temperature and the raw fault word. */
void ctld_tel_reading(const cJSON *msg, ctl_input_t *t);
void ctld_pump(ctl_daemon_t *d, int64_t now);
void ctld_link_flags(ctl_daemon_t *d, unsigned flags, int64_t now);
/* The reply to device i's link's request in flight. */
void ctld_on_reply(ctl_daemon_t *d, int i, const cJSON *reply, int64_t now);
void ctld_on_pub(ctl_daemon_t *d, const char *topic, const cJSON *msg, int64_t now);

/* ctl_d_gateways.c: the gateways of a group over several */
int ctld_gateways_setup(ctl_daemon_t *d, const config_t *cfg, char *err, size_t errlen);
void ctld_gateways_destroy(ctl_daemon_t *d);
/* Adds the other gateways' SUB sockets and every gateway's monitor to items (at most max);
 * returns how many. */
int ctld_gateways_pollitems(ctl_daemon_t *d, zmq_pollitem_t *items, int max);
/* After the poll: the n items ctld_gateways_pollitems() added. */
void ctld_gateways_handle(ctl_daemon_t *d, const zmq_pollitem_t *items, int n);
/* Reads up to 64 messages waiting on a gateway's SUB socket, each to ctld_on_pub (gateway 0)
 * or ctld_group_on_pub. */
void ctld_gateway_drain(ctl_daemon_t *d, int g, zsock_t *sub);
/* Device i's telemetry counts as silent after this long without it: five of the period its
 * gateway states (the file's TelemetryPeriodMs when it states none), at least 3 s. */
int ctld_unit_silence_ms(const ctl_daemon_t *d, int i);
/* Device i's telemetry message at now: the period its gateway states is taken (logged when it
 * changes), or the spacing of its messages measured when it states none, and the step's
 * stale telemetry timeout follows (ctld_tel_stale_update). */
void ctld_tel_period_seen(ctl_daemon_t *d, int i, const cJSON *msg, int64_t now);
/* The step's telemetry timeout (params.telemetry_timeout_ms): five of the longest period of
 * the devices' gateways, at least 10 s, so a device is never stale for the step while its
 * telemetry is not yet silent. */
void ctld_tel_stale_update(ctl_daemon_t *d);

/* ctl_d_group.c: a group of devices */
bool ctld_is_group(const ctl_daemon_t *d);
/* The gateway socket of device i's link (the daemon's for X). */
gw_client_t *ctld_unit_gw(ctl_daemon_t *d, int i);
int ctld_group_setup(ctl_daemon_t *d, int64_t now);
ctl_link_t *ctld_unit_link(ctl_daemon_t *d, int i);
bool ctld_unit_tel_alive(const ctl_daemon_t *d, int i, int64_t now);
void ctld_group_step(ctl_daemon_t *d, const ctl_input_t *house, int64_t now);
/* The link of unit i reports flags (ctl_link.h). */
void ctld_unit_flags(ctl_daemon_t *d, int i, unsigned flags, int64_t now);
/* tel/N or evt/N from gateway g of another device of the group; false when N is none of
 * them. */
bool ctld_group_on_pub(ctl_daemon_t *d, int g, const char *topic, const cJSON *msg, int64_t now);
/* The connection to gateway g dropped: its devices are out of the group from this step on. */
void ctld_group_gateway_lost(ctl_daemon_t *d, int g, int64_t now);
void ctld_publish_group(ctl_daemon_t *d, int64_t now, bool force);
/* Every link's setpoint not sent yet and the one confirmed are forgotten with the step's
 * state (control/set, a pause); retake: the leases are taken again at once. */
void ctld_forget_commands(ctl_daemon_t *d, bool retake, int64_t now);

/* ctl_d_hold.c: a person's stop of one device of a group */
/* Device i is held off by a person (always false outside a group). */
bool ctld_unit_held(const ctl_daemon_t *d, int i);
/* Device i was switched off by a person (why: how that was learnt): it is left out of the group,
 * told stop, its lease given back, until the gateway no longer holds it off or control/set. */
void ctld_unit_hold(ctl_daemon_t *d, int i, const char *why, int64_t now);
/* control/set: every hold ends (the setpoints carry "resume":true). */
void ctld_holds_clear(ctl_daemon_t *d, int64_t now);
/* The info reply's entry dv of device i: its `held_off` starts or ends a hold. */
void ctld_unit_info(ctl_daemon_t *d, int i, const cJSON *dv, int64_t now);
/* Device i's telemetry (in) while the step has it charging or discharging: an output that
 * reads off may be a person's stop this controller did not hear of; the gateway is asked. */
void ctld_unit_check_off(ctl_daemon_t *d, int i, const ctl_input_t *in, int64_t now);
/* Subscribes every device's state/set topic (a group only). */
void ctld_group_subscribe(ctl_daemon_t *d, struct mosquitto *mosq);
/* state/set of a device of the group (X's too): false when m is none of them. */
bool ctld_group_on_state(ctl_daemon_t *d, const struct mosquitto_message *m);

/* ctl_d_input.c: the meter and control/set on MQTT */
void ctld_on_meter(ctl_daemon_t *d, const struct mosquitto_message *m);
void ctld_on_control(ctl_daemon_t *d, const struct mosquitto_message *m);
/* state/set, the bridge's command (it answers it): 0 pauses, 1 resumes once the output is on,
 * 2 toggles by the output's state in telemetry */
void ctld_on_state_cmd(ctl_daemon_t *d, const struct mosquitto_message *m);
/* Telemetry came: a pause that waits for the output to be on ends when it is. */
void ctld_check_resume(ctl_daemon_t *d, int64_t now);
/* Pauses as on state/set 0 (also when the gateway refuses a setpoint with held_off). */
void ctld_pause(ctl_daemon_t *d, int64_t now);

#endif
