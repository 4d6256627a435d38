/* household.h - a household day for replay: load and PV power over time, from a
 * `t_s,load_w,pv_w` CSV (e.g. one row a minute), optionally with synthetic fast transients
 * on top (kettle, oven cycling, microwave, cloud edges on PV), and the smart meter's reading.
 *
 * Each row's values hold from its t_s until the next row's (the last row holds to the end).
 * Pure after loading: household_at() is a function of t only, so a replay is reproducible
 * for a given file and transient seed.
 */
#ifndef BIC_SIM_HOUSEHOLD_H
#define BIC_SIM_HOUSEHOLD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HOUSEHOLD_MAX_ROWS 1000000
#define HOUSEHOLD_MAX_EVENTS 256

typedef struct household_t household_t;

/* Loads a CSV file. The first line must be the header `t_s,load_w,pv_w` (spaces around
 * fields and CRLF line ends are accepted); each following line holds three finite numbers,
 * t_s strictly increasing from >= 0, load_w and pv_w >= 0. Blank lines and lines starting
 * with '#' are skipped. NULL on error with a message in err naming the file, line and what
 * was wrong. The caller owns the result. */
household_t *household_load(const char *path, char *err, size_t errlen);

/* The same from text in memory; name is used in error messages. */
household_t *household_parse(const char *text, size_t len, const char *name, char *err,
                             size_t errlen);

/* Destroys *p and sets it to NULL; accepts NULL. */
void household_destroy(household_t **p);

/* Adds synthetic fast transients generated from seed over the profile's span: kettle
 * (2 kW for 3 min), oven cycling (2.2 kW, 40 s on / 80 s off for 40 min), microwave
 * (1.2 kW, 20 s on / 20 s off for 4 min), and cloud edges on PV (PV drops to 30 % for
 * 20-240 s with sharp edges, only while PV > 200 W). Replaces earlier transients; the same
 * seed gives the same events. Returns the number of events. */
int household_add_transients(household_t *h, uint64_t seed);

/* Removes the transients. */
void household_clear_transients(household_t *h);

/* Load and PV at time t_s, on the CSV's own time axis (the t_s column): the row with the
 * largest t_s <= t_s holds; before the first row the first row holds, after the last row
 * the last row. Transients are placed relative to the first row's t_s. */
void household_at(const household_t *h, double t_s, double *load_w, double *pv_w);

/* Rows loaded, first and last t_s, and the span (last t_s plus the last row's interval,
 * e.g. 86400 for 1440 one-minute rows starting at 0). */
size_t household_rows(const household_t *h);
double household_start_s(const household_t *h);
double household_span_s(const household_t *h);

/* The meter's reading in W (+ import): load - pv + battery AC power (+ when charging). */
double household_meter_w(double load_w, double pv_w, double battery_ac_w);

#ifdef __cplusplus
}
#endif

#endif
