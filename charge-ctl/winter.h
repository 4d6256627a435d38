/*
 * winter: the seed's Winter controller ([CHARGE_CONTROL] Id/X/Type=Winter), which keeps a
 * battery within a SOC band over winter with small charge and discharge steps, without a
 * meter (docs/charge-ctl.md "The Winter mode").
 *
 * The seed's keys and thresholds: charge at ChargeP W when the SOC is at or below CapMin,
 * until it reaches CapMax + 10; discharge at ChargeP W when it is above CapMax + 20, until it
 * is down to CapMax + 10; nothing at or below TempMin. Its bugs fixed: temperature and faults
 * are checked on every step, also while charging or discharging; the SOC is read only at
 * rest (no current for WINTER_REST_MS), so a pause is made every WINTER_CHECK_MS while
 * running to read it.
 *
 * Pure: plain values in, a command out; times in monotonic ms.
 */
#ifndef WINTER_H
#define WINTER_H

#include <stdbool.h>
#include <stdint.h>

struct config_t;

#define WINTER_COLD_MS 600000  /* too cold: check again after this (600 ticks) */
#define WINTER_IDLE_MS 3600000 /* within the band: check again after this (3600 ticks) */
#define WINTER_CHECK_MS 900000 /* while running, rest to read the SOC this often */
#define WINTER_REST_MS 60000   /* no current this long before a SOC reading counts */
#define WINTER_REST_A 0.5      /* "no current": below this (A) */

typedef struct {
    double temp_min_c; /* Winter/TempMin */
    double power_w;    /* Winter/ChargeP */
    int cap_min_pct;   /* Winter/CapMin */
    int cap_max_pct;   /* Winter/CapMax */
    int64_t start_ms;  /* Winter/StartDelaySec: the first wait (the seed's 120 ticks) */
} winter_params_t;

typedef enum {
    WINTER_START = 0, /* waiting after start */
    WINTER_WAIT,      /* resting until the next check */
    WINTER_CHARGE,
    WINTER_DISCHARGE,
} winter_phase_t;

typedef struct {
    winter_phase_t phase;
    int64_t until_ms;     /* START/WAIT: next check; CHARGE/DISCHARGE: next rest for a reading */
    bool resting;         /* CHARGE/DISCHARGE: paused to read the SOC */
    int64_t rest_from_ms; /* since when the current is below WINTER_REST_A (0: not at rest) */
    bool started;
} winter_state_t;

typedef struct {
    int64_t now_ms;
    bool online;   /* device reachable with fresh telemetry */
    double temp_c; /* the device's temperature (NAN unknown) */
    bool fault;    /* any protection fault active */
    double dc_a;   /* battery current, + charge (NAN unknown) */
    bool soc_valid;
    double soc_pct; /* from the [BAT_0] table at the measured voltage */
} winter_input_t;

typedef enum { WINTER_OUT_IDLE = 0, WINTER_OUT_CHARGE, WINTER_OUT_DISCHARGE } winter_cmd_t;

typedef struct {
    winter_cmd_t cmd;   /* what the device should do */
    double power_w;     /* magnitude for charge/discharge (W) */
    const char *reason; /* in words, for the status */
} winter_output_t;

/* The Winter keys of device ID. */
void winter_params_from_config(const struct config_t *cfg, int id, winter_params_t *p);

void winter_init(winter_state_t *s);

/* One step. */
void winter_step(const winter_params_t *p, winter_state_t *s, const winter_input_t *in,
                 winter_output_t *out);

#endif
