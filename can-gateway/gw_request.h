/*
 * The gateway's request decoding (docs/ipc-protocol.md): the bytes of one request in, a typed
 * request or a typed refusal out. No I/O and no gateway state: what depends on the devices,
 * the leases or the bus (is "dev" configured, is the device online, who holds the lease) is
 * the gateway's to check, on the fields decoded here.
 *
 * Decoded here, in the order a refusal is chosen: the size, the frame count, UTF-8, exactly
 * one JSON object, the id (its text as sent, to echo), "v", "op" (known, and allowed to a
 * read-only client), the syntax of the common fields "dev", "client" and "token" (a
 * malformed token is refused here: bad_request; "dev" and "client" are kept as states: the
 * gateway refuses them where they matter, after the checks that depend on its devices), and
 * the op's own fields (their syntax and types). What depends on a device or on the
 * configuration (which command table a register name is looked up in, a register's limits,
 * the longest lease) is the gateway's.
 */
#ifndef BIC_GW_REQUEST_H
#define BIC_GW_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#define GWR_MAX_BYTES 4096 /* largest request body accepted */
#define GWR_ID_MAX 511     /* longest id text echoed as sent */

typedef enum {
    GWR_PING,
    GWR_INFO,
    GWR_DEVICES,
    GWR_DISCOVER,
    GWR_GET,
    GWR_SET,
    GWR_SETPOINT,
    GWR_INIT,
    GWR_LEASE,
    GWR_EEPROM,
    GWR_OP_COUNT
} gwr_op_t;

#define GWR_DEV_ABSENT (-1)  /* "dev" missing or null */
#define GWR_DEV_INVALID (-2) /* "dev" present but not an integer 0-67 */
#define GWR_DEV_LAST 67      /* 0-63 the BIC at that CAN address, 64-67 the NPB at 0-3 */

typedef enum {
    GWR_CLIENT_ABSENT, /* missing or null */
    GWR_CLIENT_OK,     /* 1-32 characters of [A-Za-z0-9_.-] */
    GWR_CLIENT_INVALID,
} gwr_client_t;

#define GWR_GET_MAX 32 /* registers one get may list */

#define GWR_REG_NAME_MAX 23 /* longest register name or code ("READ_VOUT", "0x0060") */

/* get: the register names or codes asked ("reg" or "regs": 1-32 of them, each a string of at
 * most GWR_REG_NAME_MAX characters), as asked; they point into the request object. */
typedef struct {
    int n;
    const char *name[GWR_GET_MAX];
} gwr_get_t;

/* set: the register name or code ("reg", pointing into the request object) and exactly one
 * of "value" (engineering units, finite) or "raw" (an integer within +-1e9; the register's
 * own range is the gateway's to check). */
typedef struct {
    const char *reg;
    bool is_raw;
    double value;
    int32_t raw;
} gwr_set_t;

typedef enum {
    GWR_MODE_CHARGE,
    GWR_MODE_DISCHARGE,
    GWR_MODE_IDLE,
    GWR_MODE_OFF,
    GWR_MODE_STOP,
} gwr_mode_t;

/* setpoint: the mode; for charge and discharge exactly one magnitude >= 0, "current_a" or
 * "power_w"; for idle, optionally "preset" ("charge" or "discharge": the output stays off and
 * that direction's current is set, see can/bic_plan.h standby) with "current_a" >= 0;
 * "manual" (a person's command); "resume" (a person let the controller switch the output on
 * again after a stop); "lease_ttl_s" when given (NaN when not a number: its range depends on
 * the configuration, the gateway refuses it). */
typedef struct {
    gwr_mode_t mode;
    bool manual;
    bool resume;
    bool by_power; /* amount is power_w, else current_a (charge and discharge only) */
    double amount; /* charge and discharge; idle with a preset: its current_a */
    bool has_preset;
    gwr_mode_t preset; /* GWR_MODE_CHARGE or GWR_MODE_DISCHARGE when has_preset */
    bool has_ttl;
    double ttl_s;
} gwr_setpoint_t;

typedef enum { GWR_LEASE_TAKE, GWR_LEASE_RENEW, GWR_LEASE_RELEASE } gwr_lease_action_t;

/* lease: the action; "ttl_s" (has_ttl when it is a number: whether take and renew have one,
 * and its range, depend on the configuration and are the gateway's to refuse). */
typedef struct {
    gwr_lease_action_t action;
    bool has_ttl;
    double ttl_s;
} gwr_lease_t;

/* discover: "extended" (addresses 0-63 instead of 0-7). */
typedef struct {
    bool extended;
} gwr_discover_t;

typedef struct {
    gwr_op_t op;
    cJSON *json;     /* the request object (owned) */
    const cJSON *id; /* the id to echo (as sent when it fits), NULL when absent */
    cJSON *id_raw;   /* owned: the id's text as sent, when id points to it */
    int dev;         /* device number 0-67, GWR_DEV_ABSENT or GWR_DEV_INVALID */
    gwr_client_t client_state;
    const char *client; /* the name when GWR_CLIENT_OK, else NULL */
    const char *token;  /* the lease token (LEASE_TOKEN_LEN hex digits), NULL when absent */
    /* the op's own fields, decoded (the member of op) */
    gwr_get_t get;
    gwr_set_t set;
    gwr_setpoint_t setpoint;
    gwr_discover_t discover;
    gwr_lease_t lease;
} gw_request_t;

typedef struct {
    char code[24]; /* too_large, bad_request, bad_version, forbidden, unknown_op */
    char message[256];
} gwr_error_t;

/* Decodes one request body of len bytes that came in parts frames (1 for a proper request),
 * from a client whose key is read-only (CurveReadOnlyClientsDir) when read_only.
 * Returns 0 with *out filled, or -1 with *err the refusal; then out->id is the id to echo in
 * it (NULL when the request did not get that far). Either way gw_request_free(out) after. */
int gw_request_decode(const char *text, size_t len, size_t parts, bool read_only, gw_request_t *out,
                      gwr_error_t *err);

void gw_request_free(gw_request_t *r);

/* "ping", "info", ... */
const char *gw_request_op_name(gwr_op_t op);

/* "charge", "discharge", "idle", "off", "stop" */
const char *gw_request_mode_name(gwr_mode_t mode);

/* "take", "renew", "release" */
const char *gw_request_lease_action_name(gwr_lease_action_t action);

/* Ops a read-only client may use: nothing that writes, takes a lease or scans the bus. */
bool gw_request_op_read_only(gwr_op_t op);

#endif
