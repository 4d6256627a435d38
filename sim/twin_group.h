/*
 * twin_group: the offline twin with a group of devices. One controller (the real step
 * function) computes the household setpoint from the meter, the group dispatch
 * (charge-ctl/ctl_group.h) splits it over N converters on one battery or on one battery each,
 * and the day is compared with an ideal battery of the combined power and capacity.
 *
 * Each converter is modelled by its current (first-order response), the voltage limits of
 * its battery and its loss curve (ctl_eff_curve_bic2200: poor at low power). A unit can be
 * lost for a time of the day (it stops at once and the dispatch sees it offline from the next
 * control step) and comes back after it.
 *
 * `bic-sim twin --units N [--separate-batteries] [--unit-lost U@HH:MM-HH:MM] ...`
 * (twin_group_cli.c, docs/simulator.md).
 */
#ifndef TWIN_GROUP_H
#define TWIN_GROUP_H

#include <stdbool.h>
#include <stdio.h>

#include "ctl_group.h"
#include "household.h"
#include "twin.h"

typedef struct {
    twin_model_t base; /* each unit's converter and battery, the meter, the step (twin.h);
                          the profile's and the device's powers are per unit */
    int units;         /* 1..CTL_GROUP_MAX; with [CHARGE_CONTROL] Id/X/Devices, its count (the
                          devices' limits and batteries then come from the configuration) */
    bool separate;     /* one battery of base.capacity_ah per unit (else one battery of
                          units x base.capacity_ah) */
    double unit_soc_pct[CTL_GROUP_MAX]; /* separate batteries: each one's initial SOC */
    int lost_unit;                      /* unit lost for a time, -1: none */
    double lost_from_s, lost_until_s;   /* ... from, until (seconds into the day) */
    double stage_hyst; /* ctl_group_params_t; NAN: the configuration's (Id/X/Group/...) */
    double rotate_wh;  /* NAN: the configuration's */
    int soc_balance;   /* 0, 1; -1: the configuration's */
} twin_group_model_t;

/* The runs: the controller with staging; the same with every able unit running at an equal
 * share (no staging, for comparison); no battery; the ideal battery. */
enum { TWIN_G_STAGED = 0, TWIN_G_EVEN, TWIN_G_NONE, TWIN_G_IDEAL, TWIN_G_RUNS };

typedef struct {
    double import_kwh;
    double export_kwh;
    double shortfall_kwh;  /* (import + export) - the ideal battery's */
    double loss_kwh;       /* converter losses (curve; the ideal: its constant efficiency) */
    double throughput_kwh; /* AC energy through the converters, both ways */
    double unit_kwh[CTL_GROUP_MAX];     /* ... per unit */
    double unit_hours[CTL_GROUP_MAX];   /* time each unit ran */
    double unit_soc_pct[CTL_GROUP_MAX]; /* each unit's battery at the end */
    long unit_changes;                  /* changes of a unit's current setpoint */
    double takeover_s;    /* after the loss: until the grid is back within 100 W of the target or
                             the others run at their limits (-1: no loss in the run) */
    double lost_grid_kwh; /* |grid| while the unit is lost */
    double handover_s;    /* after the loss: until the commands of the units left carry the
                             group's power before it (within 5 %, or the units left at their
                             limits); the units' response comes after (-1: no loss) */
} twin_group_metrics_t;

typedef struct {
    int units;
    twin_group_metrics_t m[TWIN_G_RUNS];
} twin_group_result_t;

void twin_group_model_defaults(twin_group_model_t *g);

/* Checks the group options; 0 or -1 with a message naming the option. */
int twin_group_model_validate(const twin_group_model_t *g, char *err, size_t errlen);

const char *twin_group_run_name(int k);

/* Run all four on a day (hh with its transients as the model says). Returns 0, or -1 with a
 * message. */
int twin_group_run(household_t *hh, const char *config_path, const twin_group_model_t *g,
                   twin_group_result_t *res, char *err, size_t errlen);

void twin_group_print_table(FILE *f, const twin_group_result_t *res);
void twin_group_print_json(FILE *f, const twin_group_result_t *res);

/* twin_group_cli.c: `bic-sim twin --units N ...` (argv as twin_main's). Exit code 0 ok,
 * 1 run failure, 2 usage. */
int twin_group_main(int argc, char **argv);

/* Does argv ask for a group (--units)? */
bool twin_group_wanted(int argc, char **argv);

#endif
