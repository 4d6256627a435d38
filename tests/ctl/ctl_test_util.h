/* ctl_test_util.h - what the controller's unit tests share: the 24 V test pack's parameters
 * and loading an ini text through the common loader. */
#ifndef CTL_TEST_UTIL_H
#define CTL_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl_step.h"

/* A 24 V LiFePO4 pack: OCV table 20.0 V = 0 %, 24.4 V = 5 %, 26.4 V = 50 %, 28.0 V = 100 %;
 * ChargeVoltage 28.00 V, DischargeVoltage 24.00 V, no voltage cut-offs, no block after
 * charging (tests of the block set it themselves). */
static inline void ctl_test_params(ctl_params_t *p)
{
    ctl_params_defaults(p);
    p->charge_voltage_cv = 2800;
    p->discharge_voltage_cv = 2400;
    p->max_charge_ca = 7000;
    p->max_discharge_ca = 6500;
    p->min_current_ca = 90;
    p->idle_enter_ca = 45;
    p->idle_exit_ca = 180;
    p->min_voltage_cv = 0;
    p->max_voltage_cv = 0;
    static const double pct[] = {0, 5, 50, 100};
    static const double v[] = {20.0, 24.4, 26.4, 28.0};
    p->cap2v_n = 4;
    memcpy(p->cap2v_pct, pct, sizeof pct);
    memcpy(p->cap2v_v, v, sizeof v);
    for (int h = 0; h < 24; h++)
        p->hours[h].block_time_s = 0;
}

/* Inputs of a device that is online, leased, at 26.4 V (50 %), idle, at noon, with the
 * currents' read-back at the minimum and telemetry arriving at t. */
static inline void ctl_test_input(ctl_input_t *in, int64_t t)
{
    memset(in, 0, sizeof *in);
    in->enabled = true;
    in->online = true;
    in->lease_held = true;
    in->telemetry_valid = true;
    in->telemetry_ms = t;
    in->dc_v = 26.4;
    in->dc_a = 0;
    in->hour = 12;
    in->iout_ca = 90;
    in->rev_iout_ca = 90;
}

/* Loads an ini text (through a temporary file) with config_load; NULL and err as it says.
 * A temporary file that cannot be written aborts the test (never a NULL that looks like a
 * refused file). */
static inline config_t *ctl_test_load(const char *text, char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_ctl_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    FILE *f = fdopen(fd, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
    config_t *cfg = config_load(path, err, errlen);
    unlink(path);
    return cfg;
}

#endif
