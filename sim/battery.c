/* battery.c - battery pack model: OCV curve over SOC, internal resistance, coulomb counting
 * with BMS cut-offs at the SOC bounds, and energy counters at the terminals. */
#include "battery.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct battery_t {
    battery_config_t cfg;
    double soc_pct;       /* % */
    double current_a;     /* last accepted current, + charge */
    double charged_wh;    /* Wh into the terminals */
    double discharged_wh; /* Wh out of the terminals */
    double charged_ah;
    double discharged_ah;
};

/* Per-cell LiFePO4 open-circuit voltage (rested) against SOC: steep at both ends, the
 * well-known flat plateau of about 3.25-3.35 V in between. */
static const double s_lfp_soc[] = {0, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 100};
static const double s_lfp_v[] = {2.50, 2.90, 3.05, 3.18, 3.24, 3.27, 3.29, 3.30,
                                 3.31, 3.32, 3.33, 3.34, 3.36, 3.40, 3.50};
#define S_LFP_POINTS (sizeof s_lfp_soc / sizeof s_lfp_soc[0])

static double s_interp(const double *x, const double *y, size_t n, double at)
{
    if (at <= x[0])
        return y[0];
    if (at >= x[n - 1])
        return y[n - 1];
    for (size_t i = 1; i < n; i++) {
        if (at <= x[i]) {
            double f = (at - x[i - 1]) / (x[i] - x[i - 1]);
            return y[i - 1] + f * (y[i] - y[i - 1]);
        }
    }
    return y[n - 1];
}

static double s_clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

double battery_lifepo4_cell_ocv(double soc_pct)
{
    return s_interp(s_lfp_soc, s_lfp_v, S_LFP_POINTS, s_clamp(soc_pct, 0, 100));
}

void battery_config_defaults(battery_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->capacity_ah = 280;
    cfg->cells_series = 8;
    cfg->r_internal_ohm = 0.010;
    cfg->soc_pct = 50;
    cfg->soc_min_pct = 0;
    cfg->soc_max_pct = 100;
    cfg->ocv_points = 0;
}

int battery_config_for_variant(battery_config_t *cfg, int variant)
{
    battery_config_defaults(cfg);
    int cells;
    switch (variant) {
    case 12:
        cells = 4;
        break;
    case 24:
        cells = 8;
        break;
    case 48:
        cells = 16;
        break;
    case 96:
        cells = 32;
        break;
    default:
        return -1;
    }
    /* Same energy as the 24 V default; resistance grows with the cell count. */
    cfg->cells_series = cells;
    cfg->capacity_ah = 280.0 * 8 / cells;
    /* R per cell scales inversely with cell capacity: R_pack = cells * r_cell,
     * r_cell ~ 1/Ah. With Ah ~ 1/cells this gives R_pack ~ cells^2. */
    cfg->r_internal_ohm = 0.010 * ((double)cells / 8) * ((double)cells / 8);
    return 0;
}

int battery_config_validate(const battery_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg) {
        s_err(err, errlen, "%s", "no battery configuration");
        return -1;
    }
    if (!isfinite(cfg->capacity_ah) || cfg->capacity_ah <= 0 || cfg->capacity_ah > 100000) {
        s_err(err, errlen, "%s: %g (allowed: more than 0, up to 100000 Ah)", "battery capacity",
              cfg->capacity_ah);
        return -1;
    }
    if (cfg->cells_series < 1 || cfg->cells_series > 64) {
        s_err(err, errlen, "%s: %g (allowed: 1..64)", "battery cells in series",
              (double)cfg->cells_series);
        return -1;
    }
    if (!isfinite(cfg->r_internal_ohm) || cfg->r_internal_ohm < 0 || cfg->r_internal_ohm > 10) {
        s_err(err, errlen, "%s: %g (allowed: 0..10 Ohm)", "battery internal resistance",
              cfg->r_internal_ohm);
        return -1;
    }
    if (!isfinite(cfg->soc_pct) || cfg->soc_pct < 0 || cfg->soc_pct > 100) {
        s_err(err, errlen, "%s: %g (allowed: 0..100 %%)", "battery SOC", cfg->soc_pct);
        return -1;
    }
    if (!isfinite(cfg->soc_min_pct) || !isfinite(cfg->soc_max_pct) || cfg->soc_min_pct < 0 ||
        cfg->soc_max_pct > 100 || cfg->soc_min_pct >= cfg->soc_max_pct) {
        s_err(err, errlen, "%s: min %g (allowed: 0 <= min < max <= 100 %%)", "battery SOC bounds",
              cfg->soc_min_pct);
        return -1;
    }
    if (cfg->ocv_points != 0) {
        size_t n = cfg->ocv_points;
        if (n < 2 || n > BATTERY_OCV_MAX_POINTS) {
            s_err(err, errlen, "%s: %g points (allowed: 2..32)", "battery OCV curve", (double)n);
            return -1;
        }
        if (cfg->ocv_soc_pct[0] != 0 || cfg->ocv_soc_pct[n - 1] != 100) {
            s_err(err, errlen, "%s", "battery OCV curve must start at 0 % and end at 100 % SOC");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(cfg->ocv_cell_v[i]) || cfg->ocv_cell_v[i] <= 0 ||
                cfg->ocv_cell_v[i] > 10) {
                s_err(err, errlen, "%s: %g V (allowed: more than 0, up to 10 V per cell)",
                      "battery OCV curve voltage", cfg->ocv_cell_v[i]);
                return -1;
            }
            if (i > 0 && (cfg->ocv_soc_pct[i] <= cfg->ocv_soc_pct[i - 1] ||
                          cfg->ocv_cell_v[i] < cfg->ocv_cell_v[i - 1])) {
                s_err(err, errlen,
                      "%s at point %g (SOC must strictly increase, voltage must not fall)",
                      "battery OCV curve", (double)i);
                return -1;
            }
        }
    }
    return 0;
}

int battery_config_set(battery_config_t *cfg, const char *key, const char *value, char *err,
                       size_t errlen)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(value ? value : "", &end);
    if (!value || !*value || errno || (end && *end) || !isfinite(v)) {
        if (err && errlen)
            snprintf(err, errlen, "battery option %s: '%s' is not a number", key,
                     value ? value : "");
        return -1;
    }
    if (strcmp(key, "soc") == 0)
        cfg->soc_pct = v;
    else if (strcmp(key, "soc_min") == 0)
        cfg->soc_min_pct = v;
    else if (strcmp(key, "soc_max") == 0)
        cfg->soc_max_pct = v;
    else if (strcmp(key, "ah") == 0)
        cfg->capacity_ah = v;
    else if (strcmp(key, "cells") == 0) {
        if (v != floor(v) || v < 1 || v > 64) {
            if (err && errlen)
                snprintf(err, errlen, "battery option cells: '%s' (allowed: whole number 1..64)",
                         value);
            return -1;
        }
        cfg->cells_series = (int)v;
    } else if (strcmp(key, "r_mohm") == 0)
        cfg->r_internal_ohm = v / 1000.0;
    else {
        if (err && errlen)
            snprintf(
                err, errlen,
                "unknown battery option '%s' (allowed: soc, soc_min, soc_max, ah, cells, r_mohm)",
                key);
        return -1;
    }
    return 0;
}

battery_t *battery_new(const battery_config_t *cfg)
{
    if (battery_config_validate(cfg, NULL, 0) != 0)
        return NULL;
    battery_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cfg = *cfg;
    b->soc_pct = cfg->soc_pct;
    return b;
}

void battery_destroy(battery_t **p)
{
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

static double s_cell_ocv(const battery_t *b, double soc)
{
    if (b->cfg.ocv_points == 0)
        return battery_lifepo4_cell_ocv(soc);
    return s_interp(b->cfg.ocv_soc_pct, b->cfg.ocv_cell_v, b->cfg.ocv_points, soc);
}

double battery_ocv_v(const battery_t *b)
{
    return s_cell_ocv(b, b->soc_pct) * b->cfg.cells_series;
}

double battery_terminal_v(const battery_t *b, double current_a)
{
    return battery_ocv_v(b) + current_a * b->cfg.r_internal_ohm;
}

double battery_voltage_v(const battery_t *b)
{
    return battery_terminal_v(b, b->current_a);
}

bool battery_can_charge(const battery_t *b)
{
    return b->soc_pct < b->cfg.soc_max_pct;
}

bool battery_can_discharge(const battery_t *b)
{
    return b->soc_pct > b->cfg.soc_min_pct;
}

double battery_step(battery_t *b, double current_a, double dt_s)
{
    if (!isfinite(current_a))
        current_a = 0;
    if (current_a > 0 && !battery_can_charge(b))
        current_a = 0;
    if (current_a < 0 && !battery_can_discharge(b))
        current_a = 0;
    b->current_a = current_a;
    if (!(dt_s > 0))
        return current_a;

    double ah = current_a * dt_s / 3600.0;
    double soc = b->soc_pct + 100.0 * ah / b->cfg.capacity_ah;
    /* The BMS opens at the bound: the part of the step beyond it carries no current. */
    if (current_a > 0 && soc > b->cfg.soc_max_pct) {
        ah = (b->cfg.soc_max_pct - b->soc_pct) * b->cfg.capacity_ah / 100.0;
        soc = b->cfg.soc_max_pct;
    } else if (current_a < 0 && soc < b->cfg.soc_min_pct) {
        ah = (b->cfg.soc_min_pct - b->soc_pct) * b->cfg.capacity_ah / 100.0;
        soc = b->cfg.soc_min_pct;
    }
    double v = battery_terminal_v(b, current_a);
    b->soc_pct = soc;
    if (ah > 0) {
        b->charged_ah += ah;
        b->charged_wh += ah * v;
    } else {
        b->discharged_ah += -ah;
        b->discharged_wh += -ah * v;
    }
    return current_a;
}

double battery_current_a(const battery_t *b)
{
    return b->current_a;
}

double battery_soc_pct(const battery_t *b)
{
    return b->soc_pct;
}

void battery_set_soc(battery_t *b, double soc_pct)
{
    if (!isfinite(soc_pct))
        return;
    b->soc_pct = s_clamp(soc_pct, 0, 100);
}

double battery_r_ohm(const battery_t *b)
{
    return b->cfg.r_internal_ohm;
}

double battery_capacity_ah(const battery_t *b)
{
    return b->cfg.capacity_ah;
}

int battery_cells(const battery_t *b)
{
    return b->cfg.cells_series;
}

double battery_charged_wh(const battery_t *b)
{
    return b->charged_wh;
}

double battery_discharged_wh(const battery_t *b)
{
    return b->discharged_wh;
}

double battery_charged_ah(const battery_t *b)
{
    return b->charged_ah;
}

double battery_discharged_ah(const battery_t *b)
{
    return b->discharged_ah;
}
