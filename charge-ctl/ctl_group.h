/*
 * ctl_group: one household setpoint dispatched over a group of devices, as a pure function.
 *
 * The controller computes one battery power for the household (W, AC side, + charging,
 * - discharging); ctl_group_dispatch splits it over the devices of the group:
 * - only devices that are online, below their battery's SOC limit in the asked direction
 *   and with a current limit above zero in that direction take a share;
 * - efficiency-aware staging: the number of running units is the one with the least
 *   converter loss for the demand (ctl_eff_loss_w, a loss curve per unit), at least as many
 *   as the demand needs by their limits; a unit is added only when the demand is
 *   stage_hyst above the point where it pays off and dropped only when it is stage_hyst
 *   below it, so a demand near a threshold does not switch units on and off;
 * - every share has the household setpoint's sign: never one unit charging while another
 *   discharges;
 * - each share within its device's limits; a share below a unit's minimum power is raised to
 *   the minimum (or the unit left idle when the demand is below half of it);
 * - on one battery the running units share in proportion to their limits; units on separate
 *   batteries (different `battery` numbers) share by their SOC headroom in the direction
 *   (charging: up to the SOC maximum; discharging: down to the minimum) and the unit with
 *   the most headroom runs first, so the batteries converge;
 * - rotation: the unit that runs first (the lead) changes when it has moved rotate_wh more
 *   energy than the unit that has moved least, so one unit does not age alone.
 * No I/O, no clock: the daemon and the twin run the same code.
 */
#ifndef CTL_GROUP_H
#define CTL_GROUP_H

#include <stdbool.h>
#include <stddef.h>

#define CTL_GROUP_MAX 8

/* Converter loss of one unit at an AC power of p W (magnitude):
 * fixed_w + prop x p + quad_per_w x p^2 while it runs (0 at p = 0). */
typedef struct {
    double fixed_w;    /* loss while running, independent of the power (W) */
    double prop;       /* loss proportional to the power (fraction) */
    double quad_per_w; /* loss growing with the square of the power (1/W) */
} ctl_eff_curve_t;

/* The BIC-2200 curve the simulator models (docs/simulator.md): about 80 % at 100 W, 87 % at
 * 200 W, 92-93 % from 600 W to the rated 2.2 kW. */
void ctl_eff_curve_bic2200(ctl_eff_curve_t *c);

/* Loss (W) of one unit running at |p| W; 0 for p == 0. */
double ctl_eff_loss_w(const ctl_eff_curve_t *c, double p);

/* Efficiency (0-1) at |p| W: p / (p + loss); 0 for p == 0. */
double ctl_eff_at(const ctl_eff_curve_t *c, double p);

/* What the dispatch knows of one device. */
typedef struct {
    bool online;          /* answers, and this controller holds its lease */
    int max_charge_ca;    /* charge current limit now (A x 100, >= 0) */
    int max_discharge_ca; /* discharge current limit now (A x 100, >= 0) */
    int min_current_ca;   /* the device's lowest current (A x 100, >= 0) */
    double dc_v;          /* battery voltage (V, > 0 for a share) */
    bool soc_valid;       /* soc_pct is an estimate */
    double soc_pct;       /* its battery's SOC (%) */
    double min_soc_pct;   /* discharging stops here */
    double max_soc_pct;   /* charging stops here */
    int battery;          /* which battery it sits on (units with the same number share one) */
    double energy_wh;     /* energy it has moved (both ways), for rotation */
} ctl_group_unit_t;

typedef struct {
    ctl_eff_curve_t curve;
    double efficiency; /* one way, for W(AC) <-> A(DC) of the limits (as ctl_params_t) */
    double stage_hyst; /* staging hysteresis, fraction of the threshold (0-1) */
    double rotate_wh;  /* lead changes after this much more energy than the least used unit
                          (0: the lead stays the first unit) */
    bool soc_balance;  /* on separate batteries, share and rank by SOC headroom */
    bool staging;      /* false: every able unit runs (for comparison: no staging) */
} ctl_group_params_t;

/* What the dispatch remembers between calls. */
typedef struct {
    int running; /* units running after the last call */
    int dir;     /* +1 charging, -1 discharging, 0 none */
    int lead;    /* index of the unit that runs first */
} ctl_group_state_t;

typedef enum {
    CTL_GU_RUN = 0,   /* running, share below its limit */
    CTL_GU_AT_LIMIT,  /* running at its limit */
    CTL_GU_STANDBY,   /* able, not needed at this demand (idle) */
    CTL_GU_IDLE,      /* no demand */
    CTL_GU_OFFLINE,   /* not online */
    CTL_GU_SOC_LIMIT, /* its battery is full (charging) or empty (discharging) */
    CTL_GU_NO_LIMIT,  /* no current allowed in this direction, or no voltage */
} ctl_group_why_t;

typedef struct {
    double power_w[CTL_GROUP_MAX]; /* each unit's share (W AC, sign of the setpoint) */
    int current_ca[CTL_GROUP_MAX]; /* ... as a current at its voltage (A x 100, magnitude) */
    ctl_group_why_t why[CTL_GROUP_MAX];
    int running;    /* units with a share */
    int eligible;   /* units that could take a share in this direction */
    double total_w; /* sum of the shares */
    double unmet_w; /* setpoint - total (beyond the group's limits or below a minimum) */
    double loss_w;  /* converter loss at these shares (curve) */
} ctl_group_out_t;

void ctl_group_params_defaults(ctl_group_params_t *p);

/* Check ranges; 0 or -1 with a message naming the field and what is allowed. */
int ctl_group_params_validate(const ctl_group_params_t *p, char *err, size_t errlen);

void ctl_group_state_init(ctl_group_state_t *s);

/* Split setpoint_w (W AC, + charging) over units[0..n-1] (n <= CTL_GROUP_MAX). */
void ctl_group_dispatch(const ctl_group_params_t *p, ctl_group_state_t *s,
                        const ctl_group_unit_t *units, int n, double setpoint_w,
                        ctl_group_out_t *out);

const char *ctl_group_why_name(ctl_group_why_t w);

#endif
