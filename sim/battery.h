/* battery.h - a battery pack model for the simulator and the offline twin.
 *
 * A series string of cells with a per-cell open-circuit-voltage (OCV) curve over state of
 * charge, one lumped internal resistance and a capacity in Ah. Pure: no clock, no I/O; the
 * caller advances it with battery_step() and a time step.
 *
 * Sign convention everywhere: current > 0 charges the battery, current < 0 discharges it.
 * SOC is in percent (0..100).
 */
#ifndef BIC_SIM_BATTERY_H
#define BIC_SIM_BATTERY_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BATTERY_OCV_MAX_POINTS 32

typedef struct {
    double capacity_ah;    /* usable charge between 0 % and 100 % SOC, Ah (> 0) */
    int cells_series;      /* cells in series, 1..64 */
    double r_internal_ohm; /* pack internal resistance, Ohm (>= 0) */
    double soc_pct;        /* initial SOC, % (0..100) */
    double soc_min_pct;    /* SOC floor: discharge stops here (BMS cut-off), % */
    double soc_max_pct;    /* SOC ceiling: charge stops here (BMS cut-off), % */
    size_t ocv_points;     /* 0 = the built-in LiFePO4 curve; else 2..BATTERY_OCV_MAX_POINTS */
    double ocv_soc_pct[BATTERY_OCV_MAX_POINTS]; /* strictly increasing, first 0, last 100 */
    double
        ocv_cell_v[BATTERY_OCV_MAX_POINTS]; /* per-cell OCV at ocv_soc_pct[i], V, non-decreasing */
} battery_config_t;

typedef struct battery_t battery_t;

/* Fills *cfg with the defaults: LiFePO4, 8 cells (24 V class), 280 Ah, 50 % SOC,
 * 10 mOhm, SOC bounds 0..100 %, built-in OCV curve. */
void battery_config_defaults(battery_config_t *cfg);

/* Fills *cfg with defaults sized for a BIC-2200 variant (12/24/48/96 V): LiFePO4 with
 * 4/8/16/32 cells; capacity scaled to keep the same energy as 280 Ah at 24 V.
 * Returns 0, or -1 for an unknown variant (cfg then holds the 24 V defaults). */
int battery_config_for_variant(battery_config_t *cfg, int variant);

/* Checks a configuration. Returns 0 when valid; otherwise -1 and a message in err
 * (what is wrong and what is allowed). err may be NULL. */
int battery_config_validate(const battery_config_t *cfg, char *err, size_t errlen);

/* Parses one "key=value" setting into *cfg: soc, soc_min, soc_max (percent), ah, cells,
 * r_mohm. Returns 0, or -1 with a message in err for an unknown key or a bad value. */
int battery_config_set(battery_config_t *cfg, const char *key, const char *value, char *err,
                       size_t errlen);

/* Creates a battery from a validated configuration (copied). NULL if cfg is invalid or
 * memory is short. The caller owns the result. */
battery_t *battery_new(const battery_config_t *cfg);

/* Destroys *p and sets it to NULL. Accepts NULL and *p == NULL. */
void battery_destroy(battery_t **p);

/* Advances the model by dt_s seconds with current_a flowing (+ charge, - discharge).
 * The BMS cut-offs apply: at soc_max no charge current is accepted and at soc_min no
 * discharge current. Returns the current actually accepted (A), which the caller should
 * treat as the real current. dt_s <= 0 changes nothing and returns the clipped current. */
double battery_step(battery_t *b, double current_a, double dt_s);

/* Open-circuit voltage of the pack at the present SOC, V. */
double battery_ocv_v(const battery_t *b);

/* Terminal voltage with current_a flowing: OCV + current_a * R, V. */
double battery_terminal_v(const battery_t *b, double current_a);

/* Terminal voltage at the last current passed to battery_step(), V. */
double battery_voltage_v(const battery_t *b);

/* The last accepted current (+ charge), A. */
double battery_current_a(const battery_t *b);

/* State of charge, %. */
double battery_soc_pct(const battery_t *b);

/* Sets the SOC (clamped to 0..100 %). Counters are kept. */
void battery_set_soc(battery_t *b, double soc_pct);

/* Pack internal resistance, Ohm. */
double battery_r_ohm(const battery_t *b);

/* Nominal capacity, Ah, and cells in series. */
double battery_capacity_ah(const battery_t *b);
int battery_cells(const battery_t *b);

/* Would the BMS accept current in this direction now? (false at soc_max for charge,
 * at soc_min for discharge) */
bool battery_can_charge(const battery_t *b);
bool battery_can_discharge(const battery_t *b);

/* Energy counters since creation, measured at the terminals, Wh (both >= 0). */
double battery_charged_wh(const battery_t *b);
double battery_discharged_wh(const battery_t *b);

/* Charge counters since creation, Ah (both >= 0). */
double battery_charged_ah(const battery_t *b);
double battery_discharged_ah(const battery_t *b);

/* Per-cell OCV of the built-in LiFePO4 curve at a SOC (clamped to 0..100 %), V. */
double battery_lifepo4_cell_ocv(double soc_pct);

#ifdef __cplusplus
}
#endif

#endif
