/*
 * ctl_group_run: one controller over a group of devices, as a pure step. The household's
 * battery power comes from the step function (ctl_step) run on the group as one device (its
 * current limits the sum of the devices online, the hourly powers per unit times the units
 * online, its telemetry the devices' together), and ctl_group_dispatch splits it; each
 * device's command (mode, current, whether it changed) comes out. No I/O, no clock: the
 * twin runs it (sim/twin_group.c), and the daemon (ctl_d_group.c) sends each command over
 * its device's gateway link.
 */
#ifndef CTL_GROUP_RUN_H
#define CTL_GROUP_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl_group.h"
#include "ctl_group_cfg.h"
#include "ctl_step.h"

/* What is known of one device of the group at a step. */
typedef struct {
    bool online;          /* answers and its lease is held: it can take a share */
    bool telemetry_valid; /* dc_v, dc_a are readings */
    int64_t telemetry_ms; /* when they arrived */
    double dc_v;          /* its battery's voltage (V) */
    double dc_a;          /* its current (A, + charging) */
    bool soc_valid;
    double soc_pct;   /* its battery's SOC estimate (%) */
    double energy_wh; /* energy it has moved, for rotation */
} ctl_group_dev_t;

/* A change of the group's current up to 1/CTL_GROUP_SMALL of the running units' limits goes
 * to one unit while no unit is more than 1/CTL_GROUP_DRIFT of its limit from its share. */
#define CTL_GROUP_SMALL 20
#define CTL_GROUP_DRIFT 10

typedef struct {
    ctl_state_t st;                 /* the household step's state */
    ctl_group_state_t gs;           /* the dispatch's */
    double setpoint_w;              /* the household setpoint (W AC, + charging) */
    int direction;                  /* the group's commanded direction (0 charge, 1 discharge) */
    int iout_ca, rev_iout_ca;       /* ... and currents, as the step's read-back */
    ctl_mode_t mode[CTL_GROUP_MAX]; /* each device's command as last given */
    int current_ca[CTL_GROUP_MAX];
    int preset_ca[CTL_GROUP_MAX]; /* an idle device's preset as last given (see out) */
    bool running[CTL_GROUP_MAX];  /* online with a share at the last step */
} ctl_group_run_t;

typedef struct {
    ctl_output_t ctl;               /* the household step */
    ctl_group_out_t go;             /* the shares */
    int online;                     /* devices online */
    ctl_mode_t mode[CTL_GROUP_MAX]; /* each device's command */
    int current_ca[CTL_GROUP_MAX];  /* (A x 100, magnitude) */
    /* A unit on standby (idle while others run) is given the running units' current as a
     * preset when each of them is told to run the same way at one new current at this step
     * and it is within the unit's limits (A x 100, + charge, - discharge; 0: none): its output
     * stays off and the gateway, when it writes the group's identical writes as one broadcast
     * frame, sets the unit's current register with that frame instead of leaving the frame
     * to the running units one by one. Kept otherwise (a small change to one unit, or running
     * units whose currents differ): a preset alone would be a write without a frame to join. */
    int preset_ca[CTL_GROUP_MAX];
    bool send[CTL_GROUP_MAX]; /* it differs from the last one given */
} ctl_group_run_out_t;

void ctl_group_run_init(ctl_group_run_t *r, int64_t now_ms);

/* The current to give device i's link with its mode as last given: an idle device's preset,
 * else its current (ctl_link_setpoint). */
int ctl_group_run_link_ca(const ctl_group_run_t *r, int i);

/* The step function's parameters for the group as one device: unit's (one device's
 * controller parameters) with the current limits of the devices online summed and the
 * hourly powers times their number; the follow check is the devices' own. */
void ctl_group_run_params(const ctl_params_t *unit, const ctl_group_cfg_t *g,
                          const ctl_group_dev_t *devs, ctl_params_t *pg);

/* One step. house carries the time, the enable switch and the meter (its device fields are
 * ignored: they come from devs[0..g->n-1]). A device that had a share and is no longer online
 * (its loss known: offline, lease lost, left out) gives it whole to the others at this step:
 * the household setpoint is kept, as a command in flight from now, so a meter sample taken
 * before the others follow is credited with their new commands (the law's dead-time
 * compensation) instead of cutting the setpoint to what they measured meanwhile. */
void ctl_group_run_step(const ctl_params_t *unit, const ctl_group_cfg_t *g, ctl_group_run_t *r,
                        const ctl_input_t *house, const ctl_group_dev_t *devs,
                        ctl_group_run_out_t *out);

#endif
