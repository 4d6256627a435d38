/*
 * twin: the offline digital twin. Replays a household day in simulated time against the
 * device and battery model with the real controller step function, and against three
 * references on the same day and battery: no battery, an ideal (oracle) battery within the
 * same limits and rules, and the seed's algorithm. A whole day takes about a second.
 *
 * `bic-sim twin --profile FILE.csv -c bic2mqtt.ini [--json] [--plot FILE.png] ...`
 * (options in twin_usage / docs/charge-ctl.md).
 */
#ifndef TWIN_H
#define TWIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "battery.h"
#include "ctl_step.h"
#include "household.h"

typedef struct {
    /* battery */
    double soc_pct; /* initial SOC (%) */
    double capacity_ah;
    int cells; /* LiFePO4 cells in series */
    double r_mohm;
    double soc_min_pct; /* usable window (BMS cut-offs) */
    double soc_max_pct;
    /* converter */
    int variant;            /* 12/24/48/96 */
    double max_charge_w;    /* AC charge power limit (W) */
    double max_discharge_w; /* AC discharge power limit (W, magnitude) */
    double efficiency;      /* each way */
    double min_current_a;
    double tau_s; /* first-order response time constant */
    /* meter and links */
    double meter_period_s;
    double meter_latency_s;
    double meter_phase_s; /* first meter sample this long after the day's start (s), so that
                             the profile's steps need not fall on a sample */
    double telemetry_period_s;
    /* EEPROM */
    bool eeprom_on;        /* old firmware: every setpoint write is persisted */
    int eeprom_interval_s; /* the gateway's minimum interval between persisted writes */
    int eeprom_budget;     /* > 0: also at most this many persisted writes a day, as a
                              token bucket (a gateway policy that allows bursts) */
    int eeprom_burst;      /* the bucket's depth (writes); it starts full */
    bool gw_keep_other;    /* the gateway leaves the other direction's current alone */
    /* day */
    bool transients;
    uint64_t transient_seed;
    int ctl_id;     /* [CHARGE_CONTROL] Id/X to run */
    double step_s;  /* simulation step */
    FILE *trace;    /* controller decisions are written here when not NULL */
    bool breakdown; /* decompose the controller's shortfall (twin_result_t.bd) */
} twin_model_t;

typedef struct {
    double import_kwh;
    double export_kwh;
    double captured_pct;
    int overshoot_events;
    double rms_w;
    long setpoint_changes;
    long eeprom_writes;
    long follow_reports; /* controller run: how often the device was reported not following */
    double throughput_kwh;
    double final_soc_pct;
    double shortfall_kwh;   /* X - X_ideal, X = import + export */
    long reversals;         /* setpoint changes that reverse the previous change within 10 s */
    double max_charge_w;    /* largest AC charge power (1 s mean, W) */
    double max_discharge_w; /* largest AC discharge power (1 s mean, W, magnitude) */
    double switched_kwh;    /* energy into loads the surplus switches turned on (controller) */
} twin_metrics_t;

/* The runs of a day, each on the same household, meter, battery and device limits:
 * the controller; no battery; the ideal battery (the physics limit: it meets the net load
 * at once, within the device's power limits and the battery's window, with no minimum current
 * and no discharge block); the seed's algorithm; and a deadbeat (each meter reading adds
 * -grid to the setpoint, no deadband) on the same device and meter model. */
enum { TWIN_CONTROLLER = 0, TWIN_NONE, TWIN_IDEAL, TWIN_SEED, TWIN_DEADBEAT, TWIN_RUNS };

/* Where the controller's shortfall arises: every simulation step is put in one situation
 * (the first that applies, in this order) and the step's |grid| difference to the ideal
 * run is added there, so the parts sum to the shortfall. Negative parts are energy the
 * controller made up later (e.g. still discharging after the ideal battery was empty).
 * Since |grid| = |net| - |battery| + 2 x (battery power that crosses the meter), each part
 * is the battery throughput the controller missed (AC, ideal - controller) plus twice its
 * wrong-way energy (minus the ideal's, which is zero without a grid offset). */
enum {
    TWIN_BD_IDEAL_LIMIT = 0, /* the ideal battery does not meet the net load (empty, full,
                                power limit, block): catching up or falling behind there */
    TWIN_BD_STEP,            /* within 10 s of a change of the net load of more than 50 W */
    TWIN_BD_IDLE,            /* the controller idle, in a dwell or a discharge block */
    TWIN_BD_PROTECT,         /* at a protection limit (full, empty, voltage) */
    TWIN_BD_LIMIT,           /* at a profile or device power limit */
    TWIN_BD_RATE,            /* a change held back by the write interval / budget mode */
    TWIN_BD_DEADBAND,        /* steady, within the deadband */
    TWIN_BD_TRACK,           /* steady, tracking or waiting for the effect */
    TWIN_BD_N
};

typedef struct {
    double hours[TWIN_BD_N];      /* time in each situation (h) */
    double delta_kwh[TWIN_BD_N];  /* controller |grid| - ideal |grid| (kWh) */
    double missed_kwh[TWIN_BD_N]; /* ideal |battery AC| - controller |battery AC| (kWh) */
    double wrong_kwh[TWIN_BD_N];  /* battery power through the meter the wrong way: charge
                                     drawn from the grid plus discharge exported (kWh) */
    /* Each run's shortfall split by the ideal battery's state: where it is at a limit
     * (TWIN_BD_IDEAL_LIMIT: what a run made up or fell behind there) and elsewhere (where
     * it meets the net load: the control itself). The two add up to the run's shortfall;
     * the ideal's and "none"'s are left 0. */
    double at_limit_kwh[TWIN_RUNS];
    double elsewhere_kwh[TWIN_RUNS];
} twin_breakdown_t;

typedef struct {
    twin_metrics_t m[TWIN_RUNS];
    bool has_bd;
    twin_breakdown_t bd; /* with twin_model_t.breakdown */
} twin_result_t;

/* Name of a breakdown situation (TWIN_BD_*). */
const char *twin_bd_name(int k);

void twin_model_defaults(twin_model_t *m);

/* The day's series for a plot, per run: every TWIN_PLOT_EVERY_S seconds the mean grid power
 * (W, + import), the mean battery power (W AC, + charge) and the SOC (%). */
#define TWIN_PLOT_EVERY_S 10
typedef struct {
    float *grid_w;
    float *batt_w;
    float *soc_pct;
    size_t n;
} twin_series_t;

typedef struct {
    twin_series_t run[TWIN_RUNS];
    char title[256]; /* the day and the model's options in words */
} twin_plot_t;

/* Frees the series (twin_run filled them) and clears *plot; NULL is fine. */
void twin_plot_free(twin_plot_t *plot);

/* Name of a run (TWIN_CONTROLLER ...): "controller", "none", "ideal", "seed". */
const char *twin_run_name(int k);

/* Run all four on a day: pure simulation in simulated time, nothing is drawn or printed but
 * model->trace. With plot not NULL its series are filled (the caller frees them with
 * twin_plot_free, also after a failure). Returns 0, or -1 with a message. */
int twin_run(const char *profile_path, const char *config_path, const twin_model_t *model,
             twin_plot_t *plot, twin_result_t *res, char *err, size_t errlen);

/* The same on a household already loaded (a file or a generated day); name is the day's name
 * for the plot's title. The model's transients replace any on hh. */
int twin_run_household(household_t *hh, const char *name, const char *config_path,
                       const twin_model_t *model, twin_plot_t *plot, twin_result_t *res, char *err,
                       size_t errlen);

/* The controller's parameters for a run: [CHARGE_CONTROL] Id/X (model->ctl_id, or the first
 * one) of the loaded configuration, with the model's converter limits, minimum current,
 * efficiency and EEPROM policy; *id_out is the X taken. Returns 0, or -1 with a message naming
 * config_path. */
int twin_ctl_params(const struct config_t *cfg, const char *config_path, const twin_model_t *model,
                    ctl_params_t *p, int *id_out, char *err, size_t errlen);

/* The battery of the model (capacity, cells, resistance, SOC and its window). */
void twin_battery_cfg(const twin_model_t *model, battery_config_t *b);

/* The current (A, + charging) a converter gives battery b when asked for i: at most what
 * its voltage limits allow (constant voltage at ChargeVoltage when charging, none below
 * DischargeVoltage when discharging). */
double twin_voltage_limit_a(const ctl_params_t *p, const battery_t *b, double i);

/* twin_cli.c: the command line around twin_run. */

/* Print the result as a table or as one JSON object. */
void twin_print_table(FILE *f, const twin_result_t *res);
void twin_print_json(FILE *f, const twin_result_t *res);
/* Print the breakdown (when the result has one) as a table. */
void twin_print_breakdown(FILE *f, const twin_result_t *res);

/* An option's number in [lo, hi] (twin_opt_whole: a whole number, a fraction refused);
 * 0, or -1 after a message on stderr naming opt, the text and the range. */
int twin_opt_num(const char *opt, const char *text, double lo, double hi, double *out);
int twin_opt_whole(const char *opt, const char *text, double lo, double hi, int64_t *out);

/* The `twin` subcommand: argv[0] is "twin" (or the program name). Exit code 0 ok, 1 run
 * failure, 2 usage. */
int twin_main(int argc, char **argv);

#endif
