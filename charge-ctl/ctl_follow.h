/*
 * ctl_follow: does the device do what the controller commands?
 *
 * A pure judgement of one telemetry sample against the command in force: the measured DC
 * current and its direction against the setpoint, allowing for what a BIC-2200 in battery
 * mode does by itself (the current tapering in the constant-voltage stage near VOUT_SET or
 * REVERSE_VOUT_SET, the battery's BMS at its ends, temperature derating) and naming the
 * likely cause when none of that explains it (the charge voltage setting below the battery
 * voltage, the discharge end voltage above it, the output off, a protection fault, derating,
 * the direction not applied). No clock, no I/O; ctl_step() keeps the timers (docs/charge-ctl.md,
 * "Does the device follow?").
 */
#ifndef CTL_FOLLOW_H
#define CTL_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>

#include "ctl_step.h"

/* Internal temperature (READ_TEMPERATURE_1) from which a smaller current than asked is put
 * down to derating (degC); the HI_TEMP flag counts too. */
#define CTL_FOLLOW_DERATE_C 70.0

/* FAULT_STATUS bits that shut the output down: OTP, OVP, OLP, SHORT, AC_FAIL. */
#define CTL_FOLLOW_FAULT_SHUTDOWN 0x003Eu
#define CTL_FOLLOW_FAULT_OP_OFF 0x0040u
#define CTL_FOLLOW_FAULT_HI_TEMP 0x0080u

typedef enum {
    CTL_FV_FOLLOWS = 0,   /* the current is where the command puts it */
    CTL_FV_EXCUSED,       /* less than asked, and the device's own behaviour explains it */
    CTL_FV_NOT_FOLLOWING, /* neither: see the cause */
} ctl_follow_verdict_t;

typedef enum {
    CTL_FX_NONE = 0,
    CTL_FX_CV,       /* at the voltage setting: the constant-voltage stage tapers the current */
    CTL_FX_SOC,      /* the battery is at an end of its charge (its BMS stops the current) */
    CTL_FX_DERATING, /* hot: the device derates its current, in the commanded direction */
    CTL_FX_PENDING,  /* the current register does not hold the command yet (write under way) */
} ctl_follow_excuse_t;

typedef struct {
    ctl_follow_verdict_t verdict;
    ctl_follow_cause_t cause;   /* for CTL_FV_NOT_FOLLOWING */
    ctl_follow_excuse_t excuse; /* for CTL_FV_EXCUSED */
    bool opposite;              /* the current flows against the command */
} ctl_follow_t;

/* Judges one sample: the command (mode, magnitude in A x 100) against the telemetry in `in`
 * (dc_v, dc_a, operation, direction, the read-back of the setpoints, temperature, faults).
 * soc_pct is the controller's estimate (-1: none). CTL_MODE_NONE always follows. */
void ctl_follow_judge(const ctl_params_t *p, ctl_mode_t mode, int current_ca, const ctl_input_t *in,
                      double soc_pct, ctl_follow_t *out);

/* Would the cause be gone by what the telemetry shows now (a voltage setting put right, the
 * protection fault cleared)? false for causes that only a new attempt can show. */
bool ctl_follow_cause_gone(const ctl_params_t *p, ctl_follow_cause_t cause, const ctl_input_t *in);

/* The cause as a short machine name ("charge_voltage", ...) and as a sentence with the
 * figures of `in` for the command (mode, current_ca), written into buf. */
const char *ctl_follow_cause_name(ctl_follow_cause_t cause);
void ctl_follow_text(const ctl_params_t *p, ctl_follow_cause_t cause, ctl_mode_t mode,
                     int current_ca, const ctl_input_t *in, char *buf, size_t n);

#endif
