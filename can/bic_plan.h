/*
 * bic_plan: the one place that says how a setpoint becomes register writes on a BIC-2200:
 * which registers, in which order, with which values. The gateway's setpoint, idle and
 * safe-state paths and the offline twin all follow it, so the twin judges the order the
 * device really sees.
 *
 * The order is chosen so that no intermediate state asks for more than the end state:
 * charge and discharge set the new direction's current before the direction and switch the
 * output on last, then bring the other direction's current to its minimum (unless the caller
 * keeps it); idle `off` lowers both currents before the output goes off; idle `min` lowers both
 * currents, then selects the charge direction with the output on (the unit holds a trickle);
 * stop (a person's off) lowers both currents, switches the output off, then selects the charge
 * direction with the output already off; standby (a preset: the output stays off while the
 * current register of a group's direction holds the running units' value, so that all of them
 * get the same write) switches the output off first, then sets that direction's current, the
 * other direction's current to its minimum and the direction, every step with the output off
 * (the gateway, when it knows the output is off already, confirms that first step after the
 * current instead: see gw_job_add_standby).
 * Pure: no I/O.
 */
#ifndef BIC_PLAN_H
#define BIC_PLAN_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    BIC_PLAN_CHARGE = 0, /* charge at current_raw */
    BIC_PLAN_DISCHARGE,  /* discharge at current_raw */
    BIC_PLAN_IDLE_OFF,   /* both currents to the minimum, output off (idle and safe state) */
    BIC_PLAN_IDLE_MIN,   /* both currents to the minimum, output on (IdleState/SafeState min) */
    BIC_PLAN_OFF,        /* output off, nothing else touched */
    BIC_PLAN_STOP, /* a person's off (the seed's state/set 0): idle off, then direction charge */
    BIC_PLAN_STANDBY_CHARGE,    /* output off, IOUT_SET at current_raw, direction charge */
    BIC_PLAN_STANDBY_DISCHARGE, /* output off, REVERSE_IOUT_SET at current_raw, discharge */
} bic_plan_mode_t;

typedef struct {
    uint16_t cmd; /* BIC_CMD_* */
    uint16_t raw; /* the register's raw value */
} bic_plan_write_t;

#define BIC_PLAN_MAX 4

typedef struct {
    uint16_t current_raw;       /* charge/discharge/standby: the direction's current (A x 100) */
    uint16_t charge_min_raw;    /* IOUT_SET's minimum on this model */
    uint16_t discharge_min_raw; /* REVERSE_IOUT_SET's minimum on this model */
    bool keep_other;            /* charge/discharge: leave the other direction's current alone */
} bic_plan_args_t;

/* Fills out[] with the writes for mode in the order they must reach the device; returns how
 * many (0..BIC_PLAN_MAX), or -1 for a mode that is not one of BIC_PLAN_*. */
int bic_setpoint_plan(bic_plan_mode_t mode, const bic_plan_args_t *args,
                      bic_plan_write_t out[BIC_PLAN_MAX]);

/* True when writing new_raw over old_raw to cmd moves the device toward safety: output off
 * (OPERATION 1 -> 0), a lower current limit (IOUT_SET, REVERSE_IOUT_SET, and an NPB's
 * CURVE_CC), a lower charge voltage (VOUT_SET), a higher discharge end voltage
 * (REVERSE_VOUT_SET). The gateway lets such a write through at once, whatever the EEPROM's
 * spacing (it still takes its token), and the twin's gateway stand-in does the same. */
bool bic_write_toward_safety(uint16_t cmd, int32_t old_raw, int32_t new_raw);

#endif
