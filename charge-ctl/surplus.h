/*
 * surplus: the seed's surplus switches ([SURPLUS_SWITCH], docs/charge-ctl.md "Surplus
 * switches"). Loads such as a heater or a pump are switched on ("1" on their topic) while PV
 * power is exported that the battery cannot take, and off ("0") again.
 *
 * Pure: the surplus rule and the switches' state machine over plain values, times passed in
 * (monotonic ms). The daemon publishes what changed.
 */
#ifndef SURPLUS_H
#define SURPLUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_t;

#define SURPLUS_MAX_SWITCHES 16
/* Charge the device falls short of its setpoint by at least this much: it cannot take more
 * (the seed's DEF_SATURATION_POW). */
#define SURPLUS_SATURATION_W 80.0

typedef struct {
    int num;            /* N of Id/X/switch/N */
    char topic[512];    /* "0"/"1", retained */
    char name[65];      /* for logs and Home Assistant ("switch N" when empty) */
    double min_power_w; /* SurplusMinP: on at this much surplus (W, > 0) */
    int64_t min_on_ms;  /* MinDurationMin: stays on at least this long */
    int64_t max_on_ms;  /* MaxDurationMax: off after this long on; -1 no limit */
    int64_t block_ms;   /* BlockRestart: not on again within this after turning on; -1 none */
} surplus_switch_t;

typedef struct {
    int64_t delay_ms; /* SwitchDelaySec: after any switch turns on, none changes this long */
    size_t n;         /* switches, by ascending N */
    surplus_switch_t sw[SURPLUS_MAX_SWITCHES];
} surplus_cfg_t;

typedef struct {
    bool on[SURPLUS_MAX_SWITCHES];
    int64_t on_since_ms[SURPLUS_MAX_SWITCHES];
    int64_t block_until_ms[SURPLUS_MAX_SWITCHES]; /* 0: no block */
    int64_t delay_until_ms;                       /* 0: no delay */
} surplus_state_t;

/* The switches of device ID from [SURPLUS_SWITCH]: every Id/ID/switch/N whose SurplusMinP is
 * above 0 (as the seed: a switch exists only then). Returns 0, or -1 with a message when
 * there are more than SURPLUS_MAX_SWITCHES. */
int surplus_cfg_from_config(const struct config_t *cfg, int id, surplus_cfg_t *out, char *err,
                            size_t errlen);

/* All switches off, no delay, no block. */
void surplus_init(surplus_state_t *s);

/* What the battery could not take, in W (>= 0): while power is exported (GRID_W < 0, a
 * valid meter sample) and the battery cannot take more, the exported power; else 0.
 * "Cannot take more": the controller does not drive the device (IN_CONTROL false: disabled,
 * safe state), or its charging is held at a limit (CHARGE_LIMITED: an hourly or device
 * charge limit, battery full, voltage high), or the device charges at least
 * SURPLUS_SATURATION_W less than it was told to (the seed's rule; SET_W the charge power
 * commanded, MEASURED_W the measured, both + charging; SET_W <= 0 when not charging). */
double surplus_power_w(bool grid_valid, double grid_w, bool in_control, bool charge_limited,
                       double set_w, double measured_w);

/* One step at NOW_MS with SURPLUS_W. The seed's rules, in ascending N:
 * - while a switch-on delay runs, nothing changes;
 * - an off switch turns on when SURPLUS_W >= its SurplusMinP and its restart block is over;
 *   that starts the delay (so the next switch waits) and its restart block;
 * - an on switch turns off after MaxDurationMax, or when SURPLUS_W is 0 and it has been on
 *   longer than MinDurationMin.
 * Returns a bit mask of the switches that changed (bit i = cfg->sw[i]). */
unsigned surplus_step(const surplus_cfg_t *cfg, surplus_state_t *s, double surplus_w,
                      int64_t now_ms);

#endif
