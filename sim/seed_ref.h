/*
 * seed_ref: the Python project's PID charge control reimplemented faithfully, quirks
 * included, as a yardstick for the twin (docs/charge-ctl.md). It is not used to drive a
 * device in production.
 *
 * What is reproduced: an incremental PID whose Kp acts per meter sample, integer-second dt,
 * the deadband with a full-error "fine tune" every 30th in-band sample, the sign-flip reset,
 * the saturation ("gap") publish suppression, rounding to 10 W, the hourly profile clamp
 * (switched once a minute, all zero until the first check), the discharge blocks (hour
 * window without midnight wrap, block time after charging counted from start), W -> A with
 * the 24 V fallback below 20 V, the 0.2 A quantisation with its rounding asymmetry and
 * float truncation, the 0.9 A floor instead of a zero, and a setpoint cache that is never
 * invalidated. Writes are verified writes (read, write if different, read back): every
 * write lands in EEPROM on firmware without EEP_OFF.
 */
#ifndef SEED_REF_H
#define SEED_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl_step.h"

#define SEED_IDLE_CA 90 /* the seed's 0.9 A floor and idle current */

typedef struct {
    bool pid_fresh;       /* next PID call is the first after a reset */
    int64_t pid_last_ms;  /* time of the last PID call */
    double pid_i;         /* integral term */
    double pid_e_prev;    /* last error */
    double setpoint_last; /* W, + charge */
    int in_tol_cnt;
    bool have_grid_last;
    int grid_last;
    int gap_cnt;
    int64_t t_last_charge_ms;
    bool have_cached;
    int cached_p;            /* the setpoint cache (W) */
    int profile_hour;        /* -1: profile not loaded yet (all limits 0) */
    int64_t next_profile_ms; /* next once-a-minute profile check */
    int64_t last_grid_ms;    /* for the 320-tick meter timeout */
    bool timeout_fired;
} seed_state_t;

/* What one grid message (or tick) leads to. */
typedef struct {
    bool reset;   /* write the idle setpoints first (IOUT 0.9 A, REV 0.9 A, direction charge) */
    bool publish; /* a chargeP command goes out */
    int charge_p; /* its value (W, + charge) */
} seed_step_t;

/* The register writes one chargeP command turns into. */
typedef struct {
    int direction; /* 0 charge, 1 discharge */
    int a100;      /* value for IOUT_SET (direction 0) or REVERSE_IOUT_SET (1), A x 100 */
} seed_cmd_t;

void seed_init(seed_state_t *s, int64_t now_ms);

/* Once per main-loop tick (about a second): the once-a-minute profile check and the meter
 * timeout (320 ticks, taken as 326 s), which resets to idle once. */
void seed_tick(const ctl_params_t *p, seed_state_t *s, int64_t now_ms, int hour, seed_step_t *out);

/* One grid message: an integer payload in W (+ import) at wall-clock `hour` (for the
 * block window). measured_charge_w is the last published battery power round(A x V)
 * (+ charge). */
void seed_on_grid(const ctl_params_t *p, seed_state_t *s, int64_t now_ms, int hour, int grid,
                  double measured_charge_w, seed_step_t *out);

/* A chargeP command through the cache: returns 1 with the register command, or 0 when the
 * cache says "unchanged" (nothing is written). dc_v is the published battery voltage. */
int seed_set_pow(const ctl_params_t *p, seed_state_t *s, int charge_p, double dc_v,
                 seed_cmd_t *cmd);

/* The seed's charge_set_amp: amps (+ charge) to a register command with its quantisation
 * and clamping. */
void seed_amp_cmd(const ctl_params_t *p, double amps, seed_cmd_t *cmd);

/* The PID step alone (exposed for tests): returns the step in W. */
int seed_pid_step(const ctl_params_t *p, seed_state_t *s, int64_t now_ms, int grid, int offset);

#endif
