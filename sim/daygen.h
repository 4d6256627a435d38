/*
 * daygen: seeded household days at one-second resolution, for judging the controller on days
 * it was not tuned on. Each day draws a season (day of year: day length and the sun's
 * height), a PV size and a sky (clear, broken clouds with sharp edges and short ramps,
 * overcast), a household size (base load, daily energy) and the appliances of such a day
 * (kettle, microwave, oven and hob cycling, washing machine, dishwasher, vacuum cleaner,
 * hair dryer, the fridge's compressor) placed by the hourly shape of the measured days in
 * data/profiles/. The figures it is built from are in docs/simulator.md.
 *
 * Pure: the same seed and index give the same day, byte for byte.
 */
#ifndef BIC_SIM_DAYGEN_H
#define BIC_SIM_DAYGEN_H

#include <stddef.h>
#include <stdint.h>

#define DAYGEN_SECONDS 86400

typedef struct {
    int day_of_year;     /* 0..364 */
    double day_length_h; /* sunrise to sunset */
    double pv_kwp;       /* PV size (kWp) */
    const char *sky;     /* "clear", "broken", "overcast" */
    double base_w;       /* the night-time base load (W) */
    double load_kwh;     /* the day's load energy (kWh) */
    double pv_kwh;       /* the day's PV energy (kWh) */
    double load_max_w, pv_max_w;
    int appliances; /* appliance runs placed */
} daygen_info_t;

/* Fills load_w[] and pv_w[] (DAYGEN_SECONDS each, W) with day `index` of the series `seed`
 * and describes it in *info (may be NULL). */
void daygen_day(uint64_t seed, int index, float *load_w, float *pv_w, daygen_info_t *info);

/* The same day as `t_s,load_w,pv_w` CSV text (a row wherever a value changes), for
 * household_parse or a file. Returns a malloc'd NUL-terminated string (caller frees) and its
 * length in *len, or NULL when out of memory. */
char *daygen_csv(uint64_t seed, int index, size_t *len, daygen_info_t *info);

#endif
