/*
 * bridge_cmd: MQTT command topics of the bridge -> validated gateway requests, and the JSON
 * results published on `<command topic>/result`.
 *
 * Pure: payload bytes in, a gateway request (docs/ipc-protocol.md) or an error out. Nothing
 * here touches a socket; the loop sends the request and publishes the result. Every outside
 * payload is validated here before anything can reach a register.
 */
#ifndef BRIDGE_CMD_H
#define BRIDGE_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

/* Payloads longer than this are refused with `too_large`. */
#define BCMD_MAX_PAYLOAD 1024

/* Client name the bridge uses towards the gateway (appears in leases and logs). */
#define BCMD_CLIENT "mqtt-bridge"

typedef enum {
    BCMD_STATE,        /* state/set: 1 on, 2 toggle, 0 stop (seed: idle set-points, off) */
    BCMD_CHARGE,       /* charge/set: {"var":"chargeA"|"chargeP"|"cfgReload"|"release","val":N} */
    BCMD_CHARGE_V,     /* chargeV/set: VOUT_SET in V */
    BCMD_DISCHARGE_V,  /* dischargeV/set: REVERSE_VOUT_SET in V */
    BCMD_CHARGE_LIM_A, /* chargeLimA/set: IOUT_SET in A */
    BCMD_DISCHARGE_LIM_A, /* dischargeLimA/set: REVERSE_IOUT_SET in A */
    BCMD_DIRECTION,       /* direction/set: "charge" | "discharge" */
    BCMD_NPB_CC,          /* npbCurveCC/set: an NPB's CURVE_CC in A */
    BCMD_NPB_CV,          /* npbCurveCV/set: an NPB's CURVE_CV in V */
    BCMD_NPB_FV,          /* npbCurveFV/set: an NPB's CURVE_FV in V */
    BCMD_NPB_MODE,        /* npbMode/set: an NPB's mode, "charger" | "psu" (CURVE_CONFIG bit 7) */
    BCMD_KINDS
} bcmd_kind_t;

/* Topic segment of each kind ("state", "charge", ...); the topic is <T>/inv/<id>/<seg>/set. */
const char *bcmd_kind_name(bcmd_kind_t kind);

/* Splits `topic` into device and kind when it is `<topic_main>/inv/<0-67>/<seg>/set` for one
 * of the kinds above. Returns false for anything else (including other programs' topics such
 * as control/set). */
bool bcmd_topic_parse(const char *topic, const char *topic_main, int *dev, bcmd_kind_t *kind);

typedef struct {
    int lease_ttl_s;  /* lease a manual setpoint takes (charge/set chargeA/chargeP) */
    int operation;    /* device's OPERATION now (0/1), -1 unknown: needed for toggle */
    int curve_config; /* an NPB's CURVE_CONFIG now, -1 unknown: needed for npbMode */
} bcmd_opts_t;

typedef struct {
    bcmd_kind_t kind;
    int dev;
    bool reload;   /* charge/set cfgReload: reload the configuration, no gateway request */
    cJSON *req;    /* the gateway request (owned), NULL for reload */
    cJSON *corr;   /* the payload's correlation `id` (owned), NULL when none */
    char what[64]; /* what was asked, for logs and the result, e.g. "chargeP -250" */
} bcmd_t;

/* Parses one command payload. On success returns 0 and fills *out (bcmd_clear() it later).
 * On refusal returns -1, sets *code to an error code (`bad_request`, `too_large`,
 * `out_of_range`, `unknown_state`) and a message in err naming what was wrong and what is
 * allowed; out->corr is still filled when the payload carried an `id`. */
int bcmd_parse(bcmd_kind_t kind, int dev, const void *payload, size_t len, const bcmd_opts_t *opts,
               bcmd_t *out, const char **code, char *err, size_t errlen);

/* Frees what bcmd_parse() allocated; safe on a zeroed or already cleared command. */
void bcmd_clear(bcmd_t *cmd);

/* Result payloads (new strings, caller frees). `corr` echoes the request's id (may be NULL).
 * bcmd_result_ok copies the gateway reply's fields (borrowed, may be NULL) under "result".
 * bcmd_result_error copies extra fields of a gateway error object (borrowed, may be NULL),
 * e.g. `holder` and `expires_in_s` of a `lease_held` refusal. */
char *bcmd_result_ok(bcmd_kind_t kind, const cJSON *corr, const char *what, const cJSON *reply);
char *bcmd_result_error(bcmd_kind_t kind, const cJSON *corr, const char *what, const char *code,
                        const char *message, const cJSON *gw_error);

#endif
