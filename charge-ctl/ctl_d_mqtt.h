/*
 * ctl_d_mqtt: the payloads of bic-charge-ctl's own MQTT topics (docs/charge-ctl.md, "The
 * daemon"): the retained status `<T>/inv/<id>/control`, the result of a `control/set`
 * command, the command's payload, and the Home Assistant discovery of the controller's
 * entities.
 *
 * Pure: plain values in, strings out. Nothing here touches a socket or a clock, so every
 * payload the daemon publishes and every command it accepts is tested without a broker.
 */
#ifndef CTL_D_MQTT_H
#define CTL_D_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest control/set payload accepted; longer ones are refused with `too_large`. */
#define CTLD_MAX_CMD 64
/* Longest state/set payload the controller follows (the bridge's limit). */
#define CTLD_MAX_STATE_CMD 1024

/* The controller's own state, as published in `mode` and the Home Assistant enum sensor. */
typedef enum {
    CTLD_ST_DISABLED = 0, /* switched off (config Enable=0 or control/set 0) */
    CTLD_ST_NO_LEASE,     /* enabled, but does not hold the gateway's control lease */
    CTLD_ST_SAFE,         /* holds the lease, device in the safe state (meter stale, ...) */
    CTLD_ST_RUNNING,      /* tracking the grid target */
    CTLD_ST_PAUSED,       /* enabled, paused by state/set 0 until state/set 1 or control/set */
    CTLD_ST_STOPPED,      /* the program stopped (last status before `offline`) */
    CTLD_ST_COUNT
} ctld_state_t;

const char *ctld_state_name(ctld_state_t st);

/* Everything the status topic carries. Strings are borrowed; NULL prints as null. */
typedef struct {
    bool enabled;
    ctld_state_t state;
    const char *reason; /* why the controller does what it does */
    double target_w;    /* grid target of this hour (W) */

    bool meter_valid;      /* a sample was accepted (retained ones included, for display) */
    double meter_w;        /* grid power (W, + import) */
    double meter_age_s;    /* since arrival (s) */
    bool meter_stale;      /* no fresh sample within MeterTimeoutSec */
    uint64_t meter_errors; /* payloads rejected since start */

    const char *sp_mode; /* commanded device mode: charge, discharge, idle, off, none */
    double sp_current_a; /* magnitude (A) */
    double sp_power_w;   /* battery power aimed at, AC side (W, + charging) */

    const char *limit; /* the limit that shapes the setpoint, NULL or "none" when none */

    bool soc_valid;
    double soc_pct;

    bool block_active;
    const char *block_why;

    bool lease_held;
    const char *lease_client; /* the name this controller uses towards the gateway */
    const char *lease_note;   /* why the lease is not held ("controlled by X"), or NULL */

    bool follow_problem;        /* the device does not follow the setpoint */
    bool follow_safe;           /* ... and its output was switched off for it */
    const char *follow_cause;   /* machine name (ctl_follow_cause_name), NULL when none */
    const char *follow_message; /* the cause as a sentence, NULL when none */
    uint32_t follow_count;      /* reports since the start */
} ctld_status_t;

/* The status JSON (new string, caller frees; NULL when out of memory). */
char *ctld_status_json(const ctld_status_t *s);

/* The controller's fault topic `<T>/ctl/<id>/fault` (retained), in the bridge's fault style:
 * {"follow":{"active":0|1,"cnt":N,"desc":...,"cause":...,"message":...}} (new string, caller
 * frees; NULL when out of memory). cause/message may be NULL (printed as null). */
char *ctld_fault_json(bool active, uint32_t count, const char *cause, const char *message);

/* control/set: `1`/`0` (also on/off, true/false, case-insensitive, surrounding whitespace
 * allowed). Returns 0 with *on, or -1 with *code (`bad_request`, `too_large`, `empty`) and a
 * message naming what was wrong and what is allowed. */
int ctld_parse_enable(const void *payload, size_t len, bool *on, const char **code, char *err,
                      size_t errlen);

/* state/set, as the bridge takes it (docs/mqtt.md): `0` off, `1` on, `2` toggle, or
 * {"val":N,...}. Returns 0, 1 or 2, or -1 for anything else (the bridge refuses it and answers
 * the command; the controller only follows it). */
int ctld_parse_state(const void *payload, size_t len);

/* Result published on `<command topic>/result` (new string, caller frees). `request` is the
 * accepted payload text (NULL when refused); code/message only when !ok. */
char *ctld_result_json(bool ok, const char *request, bool enabled, const char *code,
                       const char *message);

/* The group topic `<T>/ctl/<id>/group` (retained) of a controller driving several devices:
 * {"setpoint_w":W,"online":N,"units":[{"dev":D,"online":b,"lease":b,"state":S,"mode":M,
 * "current_a":A,"power_w":W,"energy_wh":E,"follow":C|null},...]} in the configured order
 * ("gw":G after "dev" for a device on gateway G of a group over several gateways);
 * state is the dispatch's word for the unit (ctl_group_why_name) or "not_following". */
typedef struct {
    int dev;
    int gw;             /* its gateway ([GATEWAY] Gw/G/...; 0: "gw" left out) */
    bool online;        /* its telemetry arrives and says online */
    bool lease_held;    /* this controller holds its lease */
    const char *state;  /* ctl_group_why_name() */
    const char *mode;   /* its command: ctl_mode_name() */
    double current_a;   /* ... and current (magnitude) */
    double power_w;     /* its share (W AC, + charging) */
    double energy_wh;   /* energy it moved since the start */
    const char *follow; /* why it does not follow its share (ctl_follow_cause_name), or NULL */
} ctld_group_unit_view_t;

typedef struct {
    double setpoint_w; /* the household setpoint (W AC, + charging) */
    int n;
    ctld_group_unit_view_t unit[8];
} ctld_group_view_t;

/* The group JSON (new string, caller frees; NULL when out of memory); without the energy
 * when with_energy is false (to tell whether anything else changed). */
char *ctld_group_json(const ctld_group_view_t *v, bool with_energy);

/* ---- Home Assistant discovery ---------------------------------------------------------- */

/* A surplus switch ([SURPLUS_SWITCH]) shown as a binary sensor on its own topic. */
typedef struct {
    int num;           /* N of Id/X/switch/N */
    const char *topic; /* "0"/"1" */
    const char *name;  /* "" or NULL: "Surplus switch N" */
} ctld_switch_t;

typedef struct {
    const char *prefix;        /* discovery prefix, e.g. "homeassistant" */
    const char *topic_main;    /* <T> */
    const char *node;          /* mqtt_node_id(<T>) (common/mqtt_conn.h): the bridge's node id,
                                  so the controller's topics and ids sit beside the bridge's */
    const char *avail_online;  /* payload on <T>/ctl/<id>/state while running */
    const char *avail_offline; /* its will */
    const char *sw_version;
    int dev;                       /* the device the controller drives */
    const ctld_switch_t *switches; /* the surplus switches, n_switches of them */
    size_t n_switches;
    const int *group;    /* the group's devices (Id/X/Devices), n_group of them; 0 or 1: none */
    const int *group_gw; /* ... their gateways (Y@G; NULL or 0: gateway 0) */
    int n_group;
} ctld_ha_ctx_t;

typedef struct {
    char *topic;
    char *payload;
} ctld_msg_t;

typedef struct {
    ctld_msg_t *msgs;
    size_t count;
    size_t cap;
} ctld_list_t;

/* Frees every message and resets the list. */
void ctld_list_clear(ctld_list_t *list);

/* Appends the controller's discovery messages (topics
 * `<prefix>/<component>/<node>/ctl<dev>_<object>/config`). 0, or -1 when out of memory. */
int ctld_disc_msgs(const ctld_ha_ctx_t *ctx, ctld_list_t *out);

#endif
