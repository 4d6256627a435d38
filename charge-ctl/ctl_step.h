/*
 * ctl_step: the grid-balance controller as a pure step function.
 *
 * One call per loop pass: parameters, state and the latest inputs (meter value with its
 * arrival time, device telemetry, lease, wall-clock hour) go in; the setpoint to apply and
 * the reasons for it come out. No I/O, no clock reads: the daemon and the offline twin run
 * exactly the same code.
 *
 * One controller instance drives one device (the [CHARGE_CONTROL] Id/X it was built for).
 * Several BICs on one battery are run as several instances, each with its own meter share
 * or target offset; see docs/charge-ctl.md.
 *
 * Sign conventions: grid power > 0 is import; battery power > 0 is charging.
 */
#ifndef CTL_STEP_H
#define CTL_STEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_CAP2V_MAX 101
#define CTL_NET_WINDOW 160       /* samples of household demand kept for the write-budget mode */
#define CTL_BUDGET_MODE_MS 31000 /* write intervals from this long on use the budget mode */
#define CTL_BAND_SAMPLES 5       /* in-band meter samples averaged before their mean is corrected */
#define CTL_BAND_MIN_CA 2        /* ... when it is more than this (A x 100) */
#define CTL_DWELL_SAMPLES 2      /* samples in a row asking for discharge that end a dwell */
#define CTL_CYCLE_MS 60000       /* a load that persisted and ended this recently may come back */
#define CTL_PERSISTED_QUANTUM_CA 10 /* the quantum where every write is persisted (A x 100) */
/* the gateway's budget counts as full from this share of its burst (%) */
#define CTL_BUDGET_FULL_PCT 90
/* telemetry samples kept to know the battery power at a meter sample */
#define CTL_TEL_HISTORY 16
/* after an empty cut, charge put back shows this much SOC before it is discharged again
 * (see s_protect) */
#define CTL_REUSE_SOC_PCT 0.05

struct config_t; /* common/config.h */

typedef struct {
    int max_charge_w;    /* ceiling of the charge power in this hour, >= 0 (W) */
    int max_discharge_w; /* floor of the discharge power, <= 0 (W); 0 = no discharge */
    int grid_offset_w;   /* grid target in this hour (W) */
    int block_time_s;    /* discharge blocked this long after charging (s) */
} ctl_hour_t;

typedef struct {
    int dev_id;
    bool enabled; /* Enable: run at start */

    /* Control law */
    int charge_tol_w;         /* deadband around the target (W) */
    double loop_gain;         /* per-sample gain for corrections that raise export risk */
    double fast_gain;         /* per-sample gain for corrections that cut export */
    int step_fast_w;          /* largest fast step per sample (W); see s_fast_step */
    int step_slow_w;          /* largest step per sample that increases export risk (W) */
    int direction_dwell_ms;   /* minimum time between direction reversals */
    int idle_dwell_ms;        /* minimum time in idle before leaving it */
    int dwell_max_w;          /* the dwells hold back a demand for discharge up to this (W) */
    int meter_timeout_ms;     /* meter stale after this long without a message */
    int settle_timeout_ms;    /* give up waiting for the device to follow after this */
    int follow_timeout_ms;    /* device not following this long: reported (0: check off) */
    int follow_safe_ms;       /* reported this long: safe state (output off) */
    int follow_retry_ms;      /* in that safe state this long: try again */
    int telemetry_timeout_ms; /* telemetry older than this is not trusted for W <-> A */
    int effect_margin_ms;     /* a meter sample counts as "after the effect" this much later */
    int meter_latency_ms;     /* a meter value was measured this long before it arrived */
    int device_tau_ms;        /* the device's current follows a command this fast (first order) */
    bool wait_effect;         /* act only once the last command is seen followed and a sample
                                 taken after that arrived (a group: each command is a setpoint
                                 per device on one bus), not on every sample */
    int fast_export_w;        /* export beyond target+this may be cut before the effect shows */
    double efficiency;        /* converter efficiency, one way, for W(AC) <-> A(DC) */

    /* Schedule */
    ctl_hour_t hours[24];
    bool has_profile;     /* any Profile/Hour key given (the seed pins 0 W without one) */
    int block_hour_start; /* -1 = none; windows may cross midnight */
    int block_hour_stop;

    /* Device limits */
    int charge_voltage_cv;         /* VOUT_SET (V x 100) */
    int discharge_voltage_cv;      /* REVERSE_VOUT_SET (V x 100) */
    int max_charge_ca;             /* A x 100 */
    int max_discharge_ca;          /* A x 100 */
    int min_current_ca;            /* the device's lowest current (A x 100) */
    bool charge_only;              /* an NPB charger (device 64-67): never discharge */
    int retune_min_ca;             /* a change of the running current smaller than this is
                                      not made (0: every change), see CTL_NPB_RETUNE_PCT */
    int quantum_ca;                /* setpoint resolution (A x 100), e.g. 10 = 0.1 A */
    int idle_enter_ca;             /* below this desired current: go idle */
    int idle_exit_ca;              /* at or above this desired current: leave idle */
    int min_write_interval_ms;     /* at least this long between current changes (EEPROM);
                                      from CTL_BUDGET_MODE_MS on, the write-budget mode runs */
    double budget_quantile;        /* write-budget mode: discharge level = this quantile of the
                                      recent demand */
    double budget_quantile_charge; /* the same for the charge level */
    int write_budget_per_day;      /* the gateway's daily budget of persisted writes (0: none) */
    int write_burst;               /* ... and how many it saves up */

    /* Battery protection */
    int cap2v_n;
    double cap2v_pct[CTL_CAP2V_MAX]; /* rising */
    double cap2v_v[CTL_CAP2V_MAX];   /* rising, open-circuit V */
    double r_internal_ohm;           /* for the load-corrected voltage */
    int min_soc_pct, max_soc_pct;
    double protect_hyst_pct; /* discharge resumes this far above MinSocPct (and the voltage
                                cut-offs clear 1 % beyond their limit) */
    double full_hyst_pct;    /* charging resumes this far below MaxSocPct */
    int min_voltage_cv, max_voltage_cv; /* load-corrected cut-offs (V x 100); 0 = off */

    /* Seed PID keys (used by the seed reference only) */
    double pid_p, pid_i, pid_d;
    int pid_clock_s;
    int pid_max_charge_w, pid_max_discharge_w;
} ctl_params_t;

typedef enum {
    CTL_MODE_NONE = 0, /* nothing to command (keep what the device has) */
    CTL_MODE_IDLE,
    CTL_MODE_OFF,
    CTL_MODE_CHARGE,
    CTL_MODE_DISCHARGE,
} ctl_mode_t;

typedef enum {
    CTL_R_DISABLED = 0,
    CTL_R_NO_METER,
    CTL_R_METER_STALE,
    CTL_R_NO_LEASE,
    CTL_R_OFFLINE,
    CTL_R_NO_VOLTAGE,
    CTL_R_WAIT_EFFECT,
    CTL_R_WAIT_SAMPLE,
    CTL_R_DEADBAND,
    CTL_R_TRACK,
    CTL_R_IDLE_ZERO,
    CTL_R_IDLE_DWELL,
    CTL_R_DIRECTION_DWELL,
    CTL_R_RATE_LIMIT,
    CTL_R_TELEMETRY_STALE,
    CTL_R_BAD_INPUT,
    CTL_R_NOT_FOLLOWING, /* the device does not do what is commanded (still commanding) */
    CTL_R_FOLLOW_SAFE,   /* ... and the safe state was taken for it */
} ctl_reason_t;

/* Why the device does not follow (ctl_follow.h). */
typedef enum {
    CTL_F_NONE = 0,
    CTL_F_CHARGE_VOLTAGE,    /* VOUT_SET not above the battery voltage (charges none, or
                                discharges by the 5 % reverse flow) */
    CTL_F_DISCHARGE_VOLTAGE, /* REVERSE_VOUT_SET not below the battery voltage */
    CTL_F_OUTPUT_OFF,        /* OPERATION off or the output switched off (remote contact) */
    CTL_F_FAULT,             /* a protection has shut the output down */
    CTL_F_DERATING,          /* hot, and less current than even a derated device gives */
    CTL_F_DIRECTION,         /* DIRECTION_CTRL reads the other direction */
    CTL_F_OUTPUT_ON,         /* idle or off commanded, and current flows */
    CTL_F_UNKNOWN,           /* none of the above */
} ctl_follow_cause_t;

typedef enum {
    CTL_L_NONE = 0,
    CTL_L_PROFILE_CHARGE,
    CTL_L_PROFILE_DISCHARGE,
    CTL_L_DEVICE_CHARGE,
    CTL_L_DEVICE_DISCHARGE,
    CTL_L_BLOCK_HOURS,
    CTL_L_BLOCK_AFTER_CHARGE,
    CTL_L_FULL,
    CTL_L_EMPTY,
    CTL_L_VOLTAGE_HIGH,
    CTL_L_VOLTAGE_LOW,
} ctl_limit_t;

typedef struct {
    int64_t now_ms; /* monotonic */
    int hour;       /* local wall clock 0-23 */
    int minute;     /* 0-59 */
    bool enabled;   /* runtime enable (control/set) */

    bool meter_valid;         /* at least one accepted sample */
    double meter_w;           /* latest grid power (W, + import) */
    int64_t meter_arrival_ms; /* monotonic arrival time of that sample */
    uint64_t meter_seq;       /* increments with each accepted sample */

    bool online;              /* device answers */
    bool lease_held;          /* we hold the gateway's control lease */
    bool telemetry_valid;     /* dc_v/dc_a are real readings */
    int64_t telemetry_ms;     /* monotonic arrival of the telemetry below */
    double dc_v;              /* battery voltage (V) */
    double dc_a;              /* battery current (A, + charging) */
    int operation;            /* OPERATION read-back: 0 off, 1 on */
    int direction;            /* DIRECTION_CTRL read-back: 0 charge, 1 discharge */
    int iout_ca;              /* IOUT_SET read-back (A x 100) */
    int rev_iout_ca;          /* REVERSE_IOUT_SET read-back (A x 100) */
    int64_t setpoints_age_ms; /* age of the read-back above */
    int vout_set_cv;          /* VOUT_SET read-back (V x 100); <= 0: unknown */
    int rev_vout_set_cv;      /* REVERSE_VOUT_SET read-back (V x 100); <= 0: unknown */
    bool temp_valid;          /* temp_c is a reading */
    double temp_c;            /* internal temperature (degC) */
    int fault_raw;            /* FAULT_STATUS (0: none or unknown) */
    double eeprom_tokens;     /* persisted writes the gateway's budget allows now; < 0: unknown */
    int64_t eeprom_tokens_ms; /* monotonic time of that figure */
} ctl_input_t;

typedef struct {
    ctl_mode_t mode;  /* commanded mode */
    int current_ca;   /* magnitude (A x 100) for charge/discharge */
    double power_w;   /* battery power aimed at, AC side (W, + charging) */
    int64_t since_ms; /* when this command was decided */

    bool pending;            /* waiting for the device to follow */
    int64_t effect_ms;       /* when the device was last seen following */
    uint64_t used_seq;       /* meter sample last acted on */
    int import_run;          /* consecutive samples asking for more discharge */
    int64_t last_arrival_ms; /* the newest meter sample's arrival (INT64_MIN: none yet) */
    int64_t meter_dt_ms;     /* ... and the interval before it (0: not known yet) */
    double band_sum_w;       /* in-band errors summed since the last correction (W) */
    double band_last_w;      /* the last in-band error (W) */
    /* The battery power the telemetry showed (W AC, + charging) and when, oldest first: the
     * law credits what a meter sample cannot have seen yet (s_power_at). */
    int64_t tel_hist_ms[CTL_TEL_HISTORY];
    double tel_hist_w[CTL_TEL_HISTORY];
    int tel_hist_n;
    /* The household's net power at the last two samples' times, for a ramp (s_ramp). */
    double ramp_net_w;
    int64_t ramp_ms;     /* INT64_MIN: none yet */
    double ramp_slope_w; /* W/s between the two samples before, 0: none */
    int band_n;          /* ... and how many samples */
    /* A load that cycles (an oven or a heater on its thermostat): the import at the first
     * sample of the current run, and the last import that persisted over samples, whether
     * it is still on and when it ended (INT64_MIN: none yet). */
    double run_import_w;
    double cycle_w;
    bool cycle_on;
    int64_t cycle_end_ms;
    /* The meter's reading when the last command was given and the power (W AC) that command
     * changed: a later sample whose meter moved by about that shows the device following it
     * before the telemetry does (ctl_step). */
    double cmd_meter_w;
    double cmd_step_w;

    /* Write-budget mode (see ctl_budget.c): the registers as commanded and recent demand. */
    int reg_charge_ca;            /* IOUT_SET as last commanded (0: unknown) */
    int reg_discharge_ca;         /* REVERSE_IOUT_SET as last commanded (0: unknown) */
    double net_w[CTL_NET_WINDOW]; /* household net power per sample (W, + import) */
    int net_n, net_head;

    int last_dir;           /* +1 charge, -1 discharge, 0 none yet */
    int64_t dir_end_ms;     /* when the last direction was left (INT64_MIN: never) */
    int64_t idle_since_ms;  /* when idle was entered */
    int discharge_run;      /* fresh samples in a row whose demand would leave idle to discharge */
    int64_t last_charge_ms; /* last time charging was commanded (INT64_MIN: never) */
    int64_t last_change_ms; /* last current change (rate limit) */
    double tokens;          /* the gateway's budget as this controller expects it (writes) */
    int64_t tokens_ms;      /* when tokens was brought up to date */
    int64_t tokens_sync_ms; /* the gateway's own figure last taken */

    bool charge_cut;      /* protection: charging stopped (full / high voltage) */
    bool discharge_cut;   /* protection: discharging stopped (empty / low voltage) */
    double cut_soc_hi;    /* SOC when charging was cut (%) */
    double cut_soc_lo;    /* SOC when discharging was cut (%) */
    double cut_charge_as; /* charge taken since discharging was cut (A s) */
    int64_t cut_tel_ms;   /* telemetry last counted into cut_charge_as */
    ctl_limit_t charge_cut_why, discharge_cut_why;
    /* Does the device follow? (ctl_follow.h) */
    ctl_mode_t follow_mode;          /* the mode the timers below belong to */
    int64_t follow_ok_ms;            /* last seen following (or excused), or the mode change */
    ctl_follow_cause_t follow_cause; /* the reported cause (NONE: nothing reported) */
    int64_t follow_since_ms;         /* when it was reported */
    bool follow_safe;                /* in the safe state for it */
    int64_t follow_safe_ms;          /* since when */
    uint32_t follow_count;           /* how often it was reported since the start */
    uint32_t follow_offs;            /* safe states for it since the device last followed */
    char follow_text[200];           /* the cause as a sentence */
    char follow_reason[240];         /* the reason text while it is reported */
    int64_t follow_mode_ms;          /* when follow_mode was commanded */
    ctl_mode_t follow_cause_mode;    /* the mode the cause was reported in */
    bool follow_bad_now;             /* judged not following at this step */
    bool follow_opposite_now;        /* ... with the current flowing the other way */

    bool safe;         /* in the safe state */
    ctl_limit_t limit; /* the limit found at the last step */
    bool started;
} ctl_state_t;

typedef struct {
    ctl_mode_t mode; /* what the device should do; NONE = send nothing */
    int current_ca;  /* magnitude for charge/discharge (A x 100) */
    double power_w;  /* battery power aimed at, AC side (W, + charging) */
    bool send;       /* the command differs from the last one: send it now */

    ctl_reason_t reason;
    const char *reason_text;
    ctl_limit_t limit; /* the limit that shaped this setpoint */
    const char *limit_text;

    double target_w; /* grid target in this hour */
    double error_w;  /* meter - target */
    bool soc_valid;
    double soc_pct;         /* from the load-corrected voltage */
    bool block_active;      /* discharge is blocked right now */
    const char *block_text; /* why, or "" */

    bool follow_problem;             /* the device does not follow (reported) */
    bool follow_safe;                /* ... and the safe state was taken for it */
    ctl_follow_cause_t follow_cause; /* why (NONE when no problem) */
    const char *follow_text;         /* the cause as a sentence, or "" */
    uint32_t follow_count;           /* reports since the start */
} ctl_output_t;

/* Defaults for everything (no device limits: these must come from the config or caller). */
void ctl_params_defaults(ctl_params_t *p);

/* Sets the device's lowest current (A x 100, at most the maximum charge current) and the
 * idle thresholds and retune step that follow from it. */
void ctl_params_set_min_current(ctl_params_t *p, int min_ca);
/* A BIC's lowest current when [DEVICE] MinCurrent is not set: 1 % of the rated current of
 * the variant judged from its charge voltage (V x 100); A x 100. */
int ctl_model_min_current_ca(int charge_voltage_cv);

/* [CHARGE_CONTROL] Id/X/Type: None (the seed's word) and off mean no controller. */
bool ctl_type_is_none(const char *type);

/* Device numbers 64-67 are the NPB chargers at CAN address 0-3 (the gateway's numbering). */
#define CTL_NPB_FIRST 64
#define CTL_NPB_LAST 67
/* An NPB's current minimum as a share of its model's maximum (the gateway's default, until
 * its info gives the model's range) and the smallest change of its charge current made
 * while it runs: every change of CURVE_CC is a persisted write and restarts the output. */
#define CTL_NPB_MIN_PCT 20
#define CTL_NPB_RETUNE_PCT 5

/* Fill p from [CHARGE_CONTROL] Id/<id>/..., [DEVICE] Id/<id>/... (for an NPB, device
 * 64 + A: [NPB] Id/A/..., charge-only) and [BAT_0]. Returns 0, or -1 with a message in err
 * naming the key, what was wrong and what is allowed. */
int ctl_params_from_config(const struct config_t *cfg, int id, ctl_params_t *p, char *err,
                           size_t errlen);

/* Apply the seed's hourly inheritance: hour h without a key takes hour h-1's value. `set`
 * flags say which (hour, field) were given: field 0 max charge, 1 max discharge, 2 offset,
 * 3 block time. Hour 0's unset fields keep the values already in p->hours[0]. */
void ctl_params_inherit(ctl_params_t *p, const bool set[24][4]);

/* Check ranges and consistency; 0 or -1 with a message. */
int ctl_params_validate(const ctl_params_t *p, char *err, size_t errlen);

/* Fresh state: idle, nothing pending. */
void ctl_state_init(ctl_state_t *s, int64_t now_ms);

/* One controller pass. */
void ctl_step(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in, ctl_output_t *out);

/* State of charge (0-100) from the SOC table for an open-circuit voltage, interpolated
 * linearly and clamped at both ends. Returns -1 without a table. */
double ctl_soc_from_voltage(const ctl_params_t *p, double ocv_v);

/* Is discharge blocked by the hour window at this hour? (windows may cross midnight) */
bool ctl_block_hour(const ctl_params_t *p, int hour);

/* Quantise a current magnitude (A x 100) to the parameter's quantum: round half up. */
int ctl_quantise_ca(const ctl_params_t *p, double current_a);

const char *ctl_mode_name(ctl_mode_t m);
const char *ctl_reason_name(ctl_reason_t r);
const char *ctl_limit_name(ctl_limit_t l);

#endif
