/*
 * meter: turns a smart meter's MQTT payload into grid power in W (+ import).
 *
 * Accepted: a plain integer or float ("-345", " 123.4 ", "1.2e3"), a JSON document with the
 * value at a configured path (Tasmota "SML.curr_w", Shelly "total_act_power", "a.b[0].c"),
 * where the value may also be a numeric string; the unit (W, kW, mW) and sign inversion
 * are configured. A value beyond the plausibility limit is rejected. A rejected payload
 * gets a reason and must not count as a fresh sample.
 */
#ifndef METER_H
#define METER_H

#include <stdbool.h>
#include <stddef.h>

#define METER_MAX_PAYLOAD 4096
#define METER_MAX_PATH 128

struct config_t;

typedef struct {
    char json_path[METER_MAX_PATH]; /* empty: the payload is a plain number */
    double scale;                   /* unit factor to W: 1, 1000 (kW), 0.001 (mW) */
    bool invert;                    /* the meter reports export as positive */
    double max_abs_w;               /* plausibility limit (W) */
} meter_cfg_t;

void meter_cfg_defaults(meter_cfg_t *m);

/* Unit name ("W", "kW", "mW", case-insensitive) to its factor; -1 for another name. */
double meter_unit_scale(const char *unit);

/* From [CHARGE_CONTROL] Id/<id>/MeterJsonPath, MeterUnit, MeterInvert, MeterMaxAbsW.
 * 0, or -1 with a message. */
int meter_cfg_from_config(const struct config_t *cfg, int id, meter_cfg_t *m, char *err,
                          size_t errlen);

/* Parse a payload of len bytes (need not be NUL-terminated). Returns 0 with *out_w, or -1
 * with the reason in err (*out_w untouched). */
int meter_parse(const meter_cfg_t *m, const char *payload, size_t len, double *out_w, char *err,
                size_t errlen);

#endif
