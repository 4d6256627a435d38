/*
 * Unit tests of ctl_step: the controller's pure step function. A small rig feeds meter
 * samples and lets the "device" follow each command (read-back and current), the way the
 * gateway's telemetry would show it, so each test reads like a short scene: import appears,
 * the controller discharges, the load drops, and so on.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_step.h"
#include "ctl_test_util.h"

typedef struct {
    ctl_params_t p;
    ctl_state_t s;
    ctl_input_t in;
    ctl_output_t out;
    int64_t t;        /* ms */
    bool tel_stopped; /* the gateway's telemetry stopped arriving */
    double hold_soc;  /* > 0: the voltage follows the current so that the load-corrected
                         reading stays at this SOC (rig table, 5-50 %) */
} rig_t;

/* The 24 V test pack (ctl_test_util.h). */
static void s_params(ctl_params_t *p)
{
    ctl_test_params(p);
}

static void s_rig(rig_t *r)
{
    memset(r, 0, sizeof *r);
    s_params(&r->p);
    r->t = 1000000;
    ctl_state_init(&r->s, r->t);
    ctl_test_input(&r->in, r->t);
}

static void s_step(rig_t *r)
{
    r->in.now_ms = r->t;
    ctl_step(&r->p, &r->s, &r->in, &r->out);
    if (getenv("CTL_TEST_TRACE"))
        fprintf(stderr, "t=%lld meter=%.0f a=%.2f v=%.2f -> %s %d %.0f W (%s; %s) cut=%d/%d\n",
                (long long)r->t, r->in.meter_w, r->in.dc_a, r->in.dc_v, ctl_mode_name(r->out.mode),
                r->out.current_ca, r->out.power_w, r->out.reason_text, r->out.limit_text,
                r->s.charge_cut, r->s.discharge_cut);
}

/* A meter sample arrives dt_ms later; telemetry (unchanged device state) keeps arriving
 * unless it was stopped. */
static void s_meter(rig_t *r, int64_t dt_ms, double grid_w)
{
    r->t += dt_ms;
    if (!r->tel_stopped)
        r->in.telemetry_ms = r->t;
    r->in.meter_valid = true;
    r->in.meter_w = grid_w;
    r->in.meter_arrival_ms = r->t;
    r->in.meter_seq++;
    s_step(r);
}

/* Time passes without a meter sample; telemetry keeps arriving. */
static void s_wait(rig_t *r, int64_t dt_ms)
{
    r->t += dt_ms;
    if (!r->tel_stopped)
        r->in.telemetry_ms = r->t;
    s_step(r);
}

/* The device follows the last command fully; telemetry shows it dt_ms later. */
static void s_follow(rig_t *r, int64_t dt_ms)
{
    r->t += dt_ms;
    switch (r->s.mode) {
    case CTL_MODE_CHARGE:
        r->in.operation = 1;
        r->in.direction = 0;
        r->in.iout_ca = r->s.current_ca;
        r->in.dc_a = r->s.current_ca / 100.0;
        break;
    case CTL_MODE_DISCHARGE:
        r->in.operation = 1;
        r->in.direction = 1;
        r->in.rev_iout_ca = r->s.current_ca;
        r->in.dc_a = -r->s.current_ca / 100.0;
        break;
    default:
        r->in.operation = 0;
        r->in.dc_a = 0;
        break;
    }
    if (r->hold_soc > 0)
        r->in.dc_v = 24.4 + (r->hold_soc - 5) * 2.0 / 45 + r->in.dc_a * r->p.r_internal_ohm;
    r->in.telemetry_ms = r->t;
    s_step(r);
}

/* Battery power (AC side) for the rig's current: + charging. */
static double s_batt_ac(const rig_t *r)
{
    double dc = r->in.dc_v * r->in.dc_a;
    return dc >= 0 ? dc / r->p.efficiency : dc * r->p.efficiency;
}

/* Run a plant in which the household draws load_w: grid = load + battery power. */
static void s_settle(rig_t *r, double load_w, int samples)
{
    for (int i = 0; i < samples; i++) {
        s_meter(r, 1000, load_w + s_batt_ac(r));
        s_follow(r, 1500);
    }
}

/* ---- tracking, wait for effect, deadband --------------------------------------------------- */

static void test_import_is_covered_by_discharge(void **state)
{
    rig_t r;
    s_rig(&r);
    s_settle(&r, 500, 8);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    double grid = 500 + s_batt_ac(&r);
    /* Settles a little on the import side (the discharge deadband is [0, 2 x ChargeTol]). */
    assert_true(grid >= -1 && grid <= 2 * r.p.charge_tol_w + 5);
}

/* An idle device whose current reading is not exactly zero (a few hundredths of an ampere of
 * offset or noise, below the minimum current): an import is still covered by discharge. */
static void test_import_covered_from_idle_with_a_current_offset(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.dc_a = 0.03;
    s_meter(&r, 1000, 500);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_true(r.out.power_w < -249);
}

static void test_first_import_step_is_careful(void **state)
{
    rig_t r;
    s_rig(&r);
    s_meter(&r, 1000, 2000); /* a kettle: 2 kW import out of nowhere */
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* First step: loop gain 0.5 and at most StepSlow (300 W). */
    assert_true(r.out.power_w >= -303 && r.out.power_w <= -250);
    s_follow(&r, 1500);
    s_meter(&r, 1000, 2000 + s_batt_ac(&r));
    /* The import persisted: now the full correction. */
    assert_true(r.out.power_w < -1500);
}

/* The device follows each command at once and the meter shows it, but the gateway's
 * telemetry carries a reading taken before the write for two seconds (a slow gateway or
 * bus, a meter quicker than MeterLatencyMs): household_w is the household's net power, and
 * the number of times the mode changed over 16 samples is returned. */
static int s_late_telemetry(rig_t *r, double household_w)
{
    int changes = 0, late = 0;
    ctl_mode_t shown = r->s.mode;
    for (int i = 0; i < 16; i++) {
        if (r->s.mode != shown && ++late == 5) { /* the telemetry catches up */
            s_follow(r, 0);
            shown = r->s.mode;
            late = 0;
        }
        ctl_mode_t mode = r->s.mode;
        double batt = r->s.mode == CTL_MODE_CHARGE ? r->s.power_w : 0;
        s_meter(r, 500, household_w + batt);
        if (r->s.mode != mode)
            changes++;
    }
    return changes;
}

/* The controller keeps its command, not the command and its undoing by turns on every
 * sample as if the household had drawn the charge from the grid (or put it back). */
static void test_a_reading_older_than_the_meter_does_not_undo_the_command(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    /* 1.5 kW export: one charge */
    assert_int_equal(s_late_telemetry(&r, -1500), 1);
    assert_int_equal(r.s.mode, CTL_MODE_CHARGE);
    assert_true(fabs(r.s.power_w - 1500) <= 2 * r.p.charge_tol_w);
    /* a cloud: the export is gone, and the charge stops once */
    assert_int_equal(s_late_telemetry(&r, 0), 1);
    assert_int_equal(r.s.mode, CTL_MODE_IDLE);
}

static void test_export_is_cut_at_once(void **state)
{
    rig_t r;
    s_rig(&r);
    s_settle(&r, 1500, 8);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* The load drops to 300 W: one sample later the discharge is down to about 300 W. */
    s_meter(&r, 1000, 300 + s_batt_ac(&r));
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_true(r.out.power_w > -320 && r.out.power_w < -270);
}

/* Every sample is acted on, and a command the meter cannot have seen yet is credited: a
 * sample taken before the device moved is not corrected again (no double correction, so no
 * ringing when the meter's latency reaches its period). */
static void test_every_sample_credits_the_command_in_flight(void **state)
{
    rig_t r;
    s_rig(&r);
    s_meter(&r, 1000, 400);
    assert_true(r.out.send);
    double first = r.out.power_w; /* the careful first step: LoopGain x 400 W */
    assert_true(first > -210 && first < -190);
    /* The import is still there in a sample taken before the device moved: the rest of it
     * is taken (the import persisted), not the whole 400 W again. */
    s_meter(&r, 500, 400);
    assert_true(r.out.send);
    assert_true(r.out.power_w > -410 && r.out.power_w < -390);
    int ca = r.out.current_ca;
    /* Another sample that cannot have seen it: nothing more. */
    s_meter(&r, 500, 400);
    assert_false(r.out.send);
    assert_int_equal(r.out.current_ca, ca);
    assert_int_equal(r.out.reason, CTL_R_DEADBAND);
    /* The device follows and the meter shows it: the command stands. */
    s_follow(&r, 1000);
    s_meter(&r, 1000, 400 + s_batt_ac(&r));
    assert_false(r.out.send);
    assert_int_equal(r.out.current_ca, ca);
}

/* The careful first step for a new import is StepSlow per second of the meter's interval:
 * at a 1 s meter a new 1000 W import gets 300 W first, at a 5 s meter it is taken whole
 * (waiting for the next sample would leave it uncovered for 5 s). */
static void test_careful_first_step_scales_with_the_meter_interval(void **state)
{
    int64_t periods[2] = {1000, 5000};
    for (int k = 0; k < 2; k++) {
        rig_t r;
        s_rig(&r);
        for (int i = 0; i < 4; i++)
            s_meter(&r, periods[k], 0);
        assert_int_equal(r.out.mode, CTL_MODE_IDLE);
        s_meter(&r, periods[k], 1000);
        assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
        if (k == 0)
            assert_true(r.out.power_w > -310 && r.out.power_w < -290);
        else
            assert_true(r.out.power_w > -1010 && r.out.power_w < -990);
    }
}

/* The household draws load_w for `samples` samples of a 1 s meter; the device follows each
 * command at once. */
static void s_on_1s(rig_t *r, double load_w, int samples)
{
    for (int i = 0; i < samples; i++) {
        s_meter(r, 1000, load_w + s_batt_ac(r));
        s_follow(r, 0);
    }
}

/* A 1,000 W heater on its thermostat, at a 1 s meter over a 200 W base load: on for four
 * samples, off for `off_s` seconds. Returns the discharge (W) given at the first sample of
 * the heater's return. */
static double s_heater_back(rig_t *r, double heater_w, int off_s)
{
    s_on_1s(r, 200 + heater_w, 4);
    s_on_1s(r, 200, off_s);
    s_meter(r, 1000, 200 + heater_w + s_batt_ac(r));
    return -r->out.power_w;
}

/* A load that cycles (an oven or heater on its thermostat) is taken whole when it comes back
 * within a minute at about the size it had: it will persist again, and the careful first step
 * would cost it a meter interval each time. A new load, one of another size, one back after
 * longer, and any load where every write is persisted get the careful first step (LoopGain,
 * at most StepSlow: 500 W of discharge here). */
static void test_a_cycling_load_that_comes_back_is_taken_whole(void **state)
{
    rig_t r;
    s_rig(&r);
    s_on_1s(&r, 200, 6);
    assert_true(-r.out.power_w > 195 && -r.out.power_w < 205);
    /* the first time: careful */
    s_meter(&r, 1000, 1200 + s_batt_ac(&r));
    assert_true(-r.out.power_w < 500 + 5);
    /* back after 10 s: whole (200 W base + 1,000 W) */
    double back = s_heater_back(&r, 1000, 10);
    assert_true(back > 1200 - 30 && back < 1200 + 30);
    /* back after 70 s: careful again */
    back = s_heater_back(&r, 1000, 70);
    assert_true(back < 500 + 5);
    /* known again; it goes off, and 5 s later a load of 2.5 times its size comes on:
     * careful */
    back = s_heater_back(&r, 1000, 10);
    assert_true(back > 1200 - 30);
    s_on_1s(&r, 1200, 3);
    s_on_1s(&r, 200, 5);
    s_meter(&r, 1000, 2700 + s_batt_ac(&r));
    assert_true(-r.out.power_w < 500 + 5);
    /* where every write is persisted: careful */
    s_rig(&r);
    r.p.min_write_interval_ms = 1000;
    s_on_1s(&r, 200, 6);
    s_heater_back(&r, 1000, 0);
    back = s_heater_back(&r, 1000, 10);
    assert_true(back < 500 + 5);
}

/* A steady ramp of the household's net power (PV rising as a cloud moves off): the command
 * leads the ramp by the time its effect takes instead of trailing it, and once the ramp ends
 * the command matches the net power again (a ramp is not carried on). */
static void test_a_steady_ramp_is_led(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.meter_latency_ms = 0; /* the rig's meter shows the battery as it is when read */
    double net = -500;        /* export: the battery charges */
    for (int i = 0; i < 12; i++) {
        s_meter(&r, 500, net + s_batt_ac(&r));
        s_follow(&r, 500);
        net -= 40; /* 40 W more export every second */
    }
    net += 40;
    /* The last command absorbs more than the export its sample showed. */
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_true(r.s.power_w > -net + 30);
    /* The ramp ends: within a few samples the command is back on the net power. */
    net -= 40;
    for (int i = 0; i < 8; i++) {
        s_meter(&r, 500, net + s_batt_ac(&r));
        s_follow(&r, 500);
    }
    double grid = net + s_batt_ac(&r);
    assert_true(grid > -r.p.charge_tol_w - 5 && grid < r.p.charge_tol_w + 5);
}

static void test_clear_export_is_cut_before_the_effect_shows(void **state)
{
    rig_t r;
    s_rig(&r);
    s_settle(&r, 1500, 8);
    int ca = r.s.current_ca;
    /* A small correction in flight ... */
    s_meter(&r, 1000, 1500 + s_batt_ac(&r) + 100);
    assert_true(r.s.pending);
    /* ... and then the load vanishes: the export is cut without waiting. */
    s_meter(&r, 1000, -1400);
    assert_true(r.out.send);
    assert_true(r.out.current_ca < ca / 2 || r.out.mode != CTL_MODE_DISCHARGE);
}

static void test_deadband_holds(void **state)
{
    rig_t r;
    s_rig(&r);
    s_settle(&r, 800, 8);
    int ca = r.s.current_ca;
    double g = 800 + s_batt_ac(&r);
    s_meter(&r, 1000, g + 3);
    assert_false(r.out.send);
    assert_int_equal(r.out.current_ca, ca);
    assert_int_equal(r.out.reason, CTL_R_DEADBAND);
}

/* Inside the deadband: noise that changes side from sample to sample changes nothing, a
 * small error that stays on one side over two samples in a row (a small load that stays)
 * is corrected at once, not only by the mean of five. */
static void test_deadband_corrects_a_persistent_small_error(void **state)
{
    rig_t r;
    s_rig(&r);
    s_settle(&r, 800, 8);
    int ca = r.s.current_ca;
    double p0 = r.s.power_w;
    for (int i = 0; i < 4; i++) {
        s_meter(&r, 1000, 800 + s_batt_ac(&r) + (i % 2 ? -6 : 6));
        assert_false(r.out.send);
        assert_int_equal(r.out.current_ca, ca);
    }
    s_meter(&r, 1000, 800 + s_batt_ac(&r) + 6);
    assert_false(r.out.send);
    s_meter(&r, 1000, 800 + s_batt_ac(&r) + 6);
    assert_true(r.out.send);
    assert_int_equal(r.out.reason, CTL_R_TRACK);
    assert_true(r.out.power_w < p0 - 4 && r.out.power_w > p0 - 8);
}

/* ---- idle, dwell, direction ------------------------------------------------------------- */

static void test_zero_is_a_real_idle(void **state)
{
    rig_t r;
    s_rig(&r);
    /* 15 W import wants 0.6 A of discharge: below the exit threshold, the controller stays
     * idle instead of running a minimum current (the seed's 0.9 A "zero"). */
    s_meter(&r, 1000, 15);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_int_equal(r.out.current_ca, 0);
    assert_int_equal(r.out.power_w, 0);
}

static void test_idle_hysteresis(void **state)
{
    rig_t r;
    s_rig(&r);
    s_settle(&r, 300, 8);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* Demand of about 1 A stays running (above the enter threshold of 0.45 A) ... */
    s_meter(&r, 1000, 25 + s_batt_ac(&r));
    s_follow(&r, 1500);
    assert_int_equal(r.s.mode, CTL_MODE_DISCHARGE);
    assert_true(r.s.current_ca >= r.p.min_current_ca);
    /* ... and nearly nothing goes idle. */
    s_settle(&r, 5, 4);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
}

static void test_idle_dwell_before_discharging_again(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.idle_dwell_ms = 20000;
    s_settle(&r, 600, 8);
    s_settle(&r, 0, 3); /* the load goes: idle */
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    int64_t idle_at = r.s.idle_since_ms;
    /* A small load (up to DwellMaxPower) that is there on one sample and gone on the next
     * (switching on and off): the controller waits out the dwell. */
    while (r.t - idle_at < 12000) {
        s_meter(&r, 2000, 250);
        assert_int_equal(r.out.mode, CTL_MODE_IDLE);
        assert_int_equal(r.out.reason, CTL_R_IDLE_DWELL);
        s_meter(&r, 2000, 0);
        assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    }
    /* A load the next sample shows too ends the dwell early. */
    s_meter(&r, 2000, 250);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_int_equal(r.out.reason, CTL_R_IDLE_DWELL);
    s_meter(&r, 2000, 250);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_true(r.t - idle_at < 20000);
}

static void test_direction_dwell_charge_to_discharge(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.direction_dwell_ms = 30000;
    r.p.idle_dwell_ms = 0;
    s_settle(&r, -800, 8); /* surplus: charging */
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    s_settle(&r, 250, 1); /* a small deficit: charging stops */
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    int64_t left = r.s.dir_end_ms;
    /* A small deficit on every other sample (a cloud's edge coming and going): no
     * discharge within the dwell. */
    while (r.t - left < 20000) {
        s_meter(&r, 2000, 0);
        assert_int_equal(r.out.mode, CTL_MODE_IDLE);
        s_meter(&r, 2000, 250);
        assert_int_equal(r.out.mode, CTL_MODE_IDLE);
        assert_int_equal(r.out.reason, CTL_R_DIRECTION_DWELL);
    }
    /* One that the next sample shows too: discharging starts before the dwell is over. */
    s_meter(&r, 2000, 250);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_true(r.t - left < 30000);
}

static bool s_in_dwell(const rig_t *r)
{
    return r->out.reason == CTL_R_IDLE_DWELL || r->out.reason == CTL_R_DIRECTION_DWELL;
}

/* A demand for discharge above DwellMaxPower is served on the sample that shows it, within
 * both dwells, and a charge turns straight into it (a step up to StepUpFast, not the careful
 * first step); at or below it, or with the key raised, it waits as before. */
static void test_a_large_demand_is_not_held_by_the_dwell(void **state)
{
    for (int raised = 0; raised <= 1; raised++) {
        rig_t r;
        s_rig(&r);
        r.p.direction_dwell_ms = 30000;
        r.p.idle_dwell_ms = 20000;
        if (raised)
            r.p.dwell_max_w = 100000;
        s_settle(&r, -800, 8); /* surplus: charging */
        assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
        s_settle(&r, 250, 1); /* a deficit: charging stops */
        assert_int_equal(r.out.mode, CTL_MODE_IDLE);
        /* a small one again, once: held */
        s_meter(&r, 2000, 0);
        s_meter(&r, 2000, 250);
        assert_int_equal(r.out.mode, CTL_MODE_IDLE);
        assert_true(s_in_dwell(&r));
        /* a kettle after an export sample: served at once, by the careful first step */
        s_meter(&r, 2000, 0);
        s_meter(&r, 2000, 1800);
        if (raised) {
            assert_int_equal(r.out.mode, CTL_MODE_IDLE);
            assert_true(s_in_dwell(&r));
        } else {
            assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
            assert_true(r.out.power_w < -300);
            assert_true(r.out.power_w >= -600 - 5); /* StepSlow at a 2 s meter */
        }
    }
    /* Charging, a cloud takes the surplus and a load comes on: a 1,600 W import on one
     * sample. With the key raised: idle first. */
    for (int raised = 0; raised <= 1; raised++) {
        rig_t r;
        s_rig(&r);
        if (raised)
            r.p.dwell_max_w = 100000;
        s_settle(&r, -800, 30);
        assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
        s_meter(&r, 1000, 1600 + s_batt_ac(&r));
        if (raised) {
            assert_int_equal(r.out.mode, CTL_MODE_IDLE);
        } else {
            /* 800 W of charge to 1,600 W of discharge: the charge is taken back whole and
             * the discharge, within StepUpFast, goes to the device's limit */
            assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
            assert_int_equal(r.out.limit, CTL_L_DEVICE_DISCHARGE);
            assert_true(r.out.power_w < -1500);
        }
    }
    /* Where every write is persisted the dwells hold whatever the demand (1.4). */
    rig_t r;
    s_rig(&r);
    r.p.min_write_interval_ms = 20000;
    r.p.idle_dwell_ms = 20000;
    s_settle(&r, 600, 8);
    s_settle(&r, 0, 3);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    s_meter(&r, 2000, 1800);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
}

/* A fast step takes back what the battery runs in its present direction whole: StepUpFast
 * bounds the power set in the other direction, not the whole step (a charge of 2,000 W met
 * by an import of 2,500 W was left at 0 W for a meter interval). Where every write is
 * persisted the whole step stays bounded. */
static void test_a_fast_step_takes_back_the_direction_whole(void **state)
{
    (void)state;
    for (int persisted = 0; persisted <= 1; persisted++) {
        /* Charging 1,500 W; a 2.2 kW load comes on: 700 W short. */
        rig_t r;
        s_rig(&r);
        r.p.step_fast_w = 1000;
        s_settle(&r, -1500, 8);
        assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
        if (persisted) {
            r.p.min_write_interval_ms = 20000;
            s_follow(&r, 25000);
        }
        s_meter(&r, 1000, 700 + s_batt_ac(&r));
        if (persisted) {
            /* bounded: 1,000 W less charge, still charging (from the grid) */
            assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
            assert_true(r.out.power_w > 480 && r.out.power_w < 530);
        } else {
            /* the charge whole, and the 700 W (a large demand) on the same sample */
            assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
            assert_true(r.out.power_w < -680 && r.out.power_w > -720);
        }

        /* Discharging 1,200 W; the load goes and the sun comes out: 1,500 W spare. */
        s_rig(&r);
        r.p.step_fast_w = 1000;
        s_settle(&r, 1200, 8);
        assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
        if (persisted) {
            r.p.min_write_interval_ms = 20000;
            s_follow(&r, 25000);
        }
        s_meter(&r, 1000, -1500 + s_batt_ac(&r));
        if (persisted) {
            /* bounded: 1,000 W less discharge, still exporting */
            assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
            assert_true(r.out.power_w < -180 && r.out.power_w > -230);
        } else {
            /* the discharge whole, and a charge of StepUpFast */
            assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
            assert_true(r.out.power_w > 990 && r.out.power_w < 1010);
        }
    }
}

static void test_discharge_to_charge_goes_straight(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.direction_dwell_ms = 30000;
    r.p.idle_dwell_ms = 20000;
    s_settle(&r, 700, 8);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* The sun comes out: export is absorbed at once, without a pause in idle. */
    s_meter(&r, 1000, -900 + s_batt_ac(&r));
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
}

/* ---- limits and blocks ----------------------------------------------------------------- */

static void test_profile_limits(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.hours[12].max_charge_w = 500;
    r.p.hours[12].max_discharge_w = -400;
    s_settle(&r, -2000, 8);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_true(r.out.power_w <= 503 && r.out.power_w > 480);
    assert_int_equal(r.out.limit, CTL_L_PROFILE_CHARGE);
    s_settle(&r, 2000, 20);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* Within one quantum (0.1 A, about 2.4 W) of the limit. */
    assert_true(r.out.power_w >= -403 && r.out.power_w < -380);
    assert_int_equal(r.out.limit, CTL_L_PROFILE_DISCHARGE);
}

/* Where every write is persisted, a current held by the hour's power limit stays put while
 * the battery's rising voltage keeps its power within the deadband below the limit (no write
 * a second as the voltage creeps up), and is cut at once, inside the write interval, to the
 * middle of that band when the power passes the limit. */
static void test_persisted_writes_keep_the_power_limit_in_a_band(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.min_write_interval_ms = 20000;
    r.p.hours[12].max_charge_w = 500;
    s_settle(&r, -2000, 30);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_int_equal(r.out.limit, CTL_L_PROFILE_CHARGE);
    assert_true(s_batt_ac(&r) <= 500 && s_batt_ac(&r) >= 500 - r.p.charge_tol_w);
    /* The voltage creeps up, 0.01 V a sample (about 0.2 W at this current): the current is
     * kept while the power is within the limit, cut the first sample past it, then kept
     * again for the band's width. */
    int cuts = 0, kept_between = 0;
    for (int i = 0; i < 2000 && cuts < 2; i++) {
        int ca = r.s.current_ca;
        int64_t changed = r.s.last_change_ms;
        r.in.dc_v += 0.01;
        double before = s_batt_ac(&r);
        s_meter(&r, 1000, -2000 + before);
        if (r.s.current_ca == ca) {
            assert_true(before <= 500 + 1e-9); /* kept only while within the limit */
            if (cuts == 1)
                kept_between++;
        } else {
            assert_true(before > 500); /* cut at once, inside the write interval */
            assert_true(r.s.current_ca < ca);
            assert_true(r.s.last_change_ms > changed);
            cuts++;
        }
        s_follow(&r, 0);
        if (r.s.current_ca != ca) {
            double after = s_batt_ac(&r);
            assert_true(after <= 500 - r.p.charge_tol_w / 4 && after >= 500 - r.p.charge_tol_w);
        }
    }
    assert_int_equal(cuts, 2);
    assert_true(kept_between >= 10); /* not a write a second as the voltage creeps up */
    int ca = r.s.current_ca;
    /* Right after the cut (inside the write interval) nothing is raised again. */
    ca = r.s.current_ca;
    s_meter(&r, 1000, -2000 + s_batt_ac(&r));
    assert_int_equal(r.s.current_ca, ca);
}

/* Old firmware behind the gateway's daily budget (1095 a day, 300 deep, 20 s apart), charging
 * 800 W of surplus. */
static void s_charging_persisted(rig_t *r)
{
    s_rig(r);
    r->p.min_write_interval_ms = 20000;
    r->p.write_budget_per_day = 1095;
    r->p.write_burst = 300;
    s_settle(r, -800, 30);
}

/* Where every write is persisted and the gateway's budget is down to fewer writes than leaving
 * idle again costs, a charge that a load would end keeps its direction at the minimum current
 * (one write, toward safety) and takes the next surplus with one write; with writes to spare
 * it goes idle as ever. */
static ctl_reason_t s_load_after_charge(rig_t *r, double tokens)
{
    s_charging_persisted(r);
    assert_int_equal(r->out.mode, CTL_MODE_CHARGE);
    r->in.eeprom_tokens = tokens;
    r->in.eeprom_tokens_ms = r->t;
    ctl_reason_t why = CTL_R_TRACK; /* the reason shown with the command that left the charge */
    for (int i = 0; i < 8; i++) {   /* a 600 W load: 800 W surplus becomes 600 W import */
        int ca = r->s.current_ca;
        ctl_mode_t mode = r->s.mode;
        s_meter(r, 1000, 600 + s_batt_ac(r));
        if (r->out.send && (r->out.mode != mode || r->out.current_ca != ca))
            why = r->out.reason;
        s_follow(r, 1500);
    }
    return why;
}

static void test_last_writes_keep_a_charge_at_its_minimum(void **state)
{
    rig_t r;
    s_load_after_charge(&r, 50);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE); /* straight over (below) */
    /* kept at the minimum for the budget: the reason says so, not "demand below the minimum" */
    assert_int_equal(s_load_after_charge(&r, 2), CTL_R_RATE_LIMIT);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_int_equal(r.out.current_ca, r.p.min_current_ca);
    /* The surplus comes back: the charge follows it. */
    for (int i = 0; i < 30; i++) {
        r.in.eeprom_tokens = 2;
        r.in.eeprom_tokens_ms = r.t;
        s_meter(&r, 1000, -800 + s_batt_ac(&r));
        s_follow(&r, 1500);
    }
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_true(r.out.current_ca > r.p.min_current_ca);
    /* A full battery still ends the charge. */
    r.in.eeprom_tokens = 2;
    r.in.eeprom_tokens_ms = r.t;
    r.in.dc_v = 29.5;
    for (int i = 0; i < 5; i++) {
        s_meter(&r, 1000, -800 + s_batt_ac(&r));
        s_follow(&r, 1500);
    }
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
}

/* Where every write is persisted, a charge whose surplus turns into import goes straight over
 * to discharge once the gateway's spacing since the last change has passed (one write: the
 * discharge current; the direction is not persisted), by at most the careful first step; inside
 * the spacing it goes idle (a lower current goes at once), and the block after charging still
 * holds the discharge back. */
static void s_charge_then_load(rig_t *r, int64_t after_change_ms, int block_s)
{
    s_charging_persisted(r);
    r->p.hours[r->in.hour].block_time_s = block_s;
    r->in.eeprom_tokens = 250;
    r->in.eeprom_tokens_ms = r->t;
    /* more surplus: a trim up, once the write interval allows */
    for (int i = 0; i < 60 && r->s.last_change_ms != r->t; i++)
        s_meter(r, 1000, -1000 + s_batt_ac(r));
    assert_int_equal(r->s.last_change_ms, r->t);
    int64_t changed = r->t;
    s_follow(r, 1500);
    while (r->t - changed < after_change_ms)
        s_meter(r, 1000, -1000 + s_batt_ac(r));
    assert_int_equal(r->out.mode, CTL_MODE_CHARGE);
    s_meter(r, 1000, 600 + s_batt_ac(r)); /* a 1,600 W load: 600 W import */
}

static void test_persisted_charge_turns_straight_into_discharge(void **state)
{
    rig_t r;
    s_charge_then_load(&r, 25000, 0);
    assert_true(r.out.send);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    double slow = r.p.step_slow_w * fmax(1.0, r.s.meter_dt_ms / 1000.0); /* the careful step */
    assert_true(-r.out.power_w > 0 && -r.out.power_w <= slow + 5);       /* + the quantum */
    /* inside the spacing: idle */
    s_charge_then_load(&r, 5000, 0);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    /* the block after charging holds */
    s_charge_then_load(&r, 25000, 60);
    assert_int_not_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* with EEP_OFF a small import goes idle first (the direction dwell); a large one goes
     * straight over (test_a_large_demand_is_not_held_by_the_dwell) */
    s_rig(&r);
    s_settle(&r, -800, 30);
    s_meter(&r, 1000, 250 + s_batt_ac(&r));
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
}

/* Where every write is persisted, a reduction for an import of more than twice the deadband
 * (a charge now drawn from the grid) goes at once inside the write interval while the
 * gateway's budget is full, and waits for the interval otherwise. */
static void s_import_after_trim(rig_t *r, double tokens)
{
    s_charging_persisted(r);
    r->in.eeprom_tokens = tokens;
    r->in.eeprom_tokens_ms = r->t;
    /* more surplus: a trim up, once the write interval allows */
    for (int i = 0; i < 60 && r->s.last_change_ms != r->t; i++) {
        r->in.eeprom_tokens = tokens;
        r->in.eeprom_tokens_ms = r->t;
        s_meter(r, 1000, -1000 + s_batt_ac(r));
    }
    assert_int_equal(r->s.last_change_ms, r->t);
    s_follow(r, 1500);
    r->in.eeprom_tokens = tokens;
    r->in.eeprom_tokens_ms = r->t;
    s_meter(r, 1000, -400 + s_batt_ac(r)); /* a 600 W load 2.5 s later */
}

static void test_full_budget_lets_a_reduction_through_at_once(void **state)
{
    rig_t r;
    s_import_after_trim(&r, 300);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_int_equal(r.s.last_change_ms, r.t);
    assert_true(s_batt_ac(&r) > 900); /* the device has not followed yet */
    assert_true(r.out.power_w < 500);
    s_import_after_trim(&r, 100);
    assert_int_equal(r.out.reason, CTL_R_RATE_LIMIT);
    assert_true(r.out.power_w > 900);
}

static void test_profile_zero_discharge_means_none(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.hours[12].max_discharge_w = 0;
    s_settle(&r, 1000, 8);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
}

static void test_hour_changes_the_target(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.hours[13].grid_offset_w = 200; /* hour 13: keep 200 W import */
    s_settle(&r, 1000, 8);
    double g12 = 1000 + s_batt_ac(&r);
    r.in.hour = 13;
    s_settle(&r, 1000, 8);
    double g13 = 1000 + s_batt_ac(&r);
    assert_true(g12 < 30);
    assert_true(g13 > 190 && g13 < 230);
    assert_int_equal((int)r.out.target_w, 200);
}

static void test_device_current_limit(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.max_discharge_ca = 1000; /* 10 A: about 240 W */
    s_settle(&r, 1500, 10);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_int_equal(r.out.current_ca, 1000);
    assert_int_equal(r.out.limit, CTL_L_DEVICE_DISCHARGE);
}

static void test_block_hours_across_midnight(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.block_hour_start = 22;
    r.p.block_hour_stop = 5;
    assert_true(ctl_block_hour(&r.p, 22));
    assert_true(ctl_block_hour(&r.p, 23));
    assert_true(ctl_block_hour(&r.p, 0));
    assert_true(ctl_block_hour(&r.p, 5));
    assert_false(ctl_block_hour(&r.p, 6));
    assert_false(ctl_block_hour(&r.p, 21));
    r.in.hour = 23;
    s_settle(&r, 800, 6);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_true(r.out.block_active);
    assert_string_equal(r.out.block_text, "discharge block hours");
    r.in.hour = 6;
    s_settle(&r, 800, 6);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_false(r.out.block_active);
    /* Running discharge stops when the block window starts. */
    r.in.hour = 22;
    s_follow(&r, 1000);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    /* A plain window and an unset one. */
    r.p.block_hour_start = 1;
    r.p.block_hour_stop = 3;
    assert_false(ctl_block_hour(&r.p, 0));
    assert_true(ctl_block_hour(&r.p, 2));
    r.p.block_hour_start = -1;
    assert_false(ctl_block_hour(&r.p, 2));
}

static void test_block_after_charging(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.direction_dwell_ms = 0;
    r.p.idle_dwell_ms = 0;
    r.p.hours[12].block_time_s = 60;
    s_settle(&r, -800, 6);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    int64_t charged = r.t;
    s_settle(&r, 700, 3);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_true(r.out.block_active);
    assert_string_equal(r.out.block_text, "discharge blocked after charging");
    while (r.t - charged < 60000)
        s_meter(&r, 2000, 700);
    s_settle(&r, 700, 3);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_false(r.out.block_active);
}

/* ---- SOC and protection ---------------------------------------------------------------- */

static void test_soc_table_edges(void **state)
{
    ctl_params_t p;
    s_params(&p);
    assert_true(ctl_soc_from_voltage(&p, 20.0) == 0);
    assert_true(ctl_soc_from_voltage(&p, 15.0) == 0);   /* beyond the bottom: 0 % */
    assert_true(ctl_soc_from_voltage(&p, 28.0) == 100); /* at the top: 100 % (the seed: 0 %) */
    assert_true(ctl_soc_from_voltage(&p, 29.5) == 100); /* beyond the top */
    assert_true(ctl_soc_from_voltage(&p, 24.4) == 5);
    double mid = ctl_soc_from_voltage(&p, 25.4); /* halfway between 5 % and 50 % */
    assert_true(mid > 27.49 && mid < 27.51);
    double top = ctl_soc_from_voltage(&p, 27.2);
    assert_true(top > 74.99 && top < 75.01);
    p.cap2v_n = 0;
    assert_true(ctl_soc_from_voltage(&p, 26.0) < 0);
    p.cap2v_n = 1;
    p.cap2v_pct[0] = 40;
    p.cap2v_v[0] = 26.0;
    assert_true(ctl_soc_from_voltage(&p, 27.0) == 40);
}

static void test_protection_empty_with_hysteresis(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.min_soc_pct = 5;
    r.p.protect_hyst_pct = 3;
    s_settle(&r, 600, 6);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* Load-corrected voltage reaches 24.4 V (5 %): discharge stops. */
    r.in.dc_v = 24.4 + r.in.dc_a * r.p.r_internal_ohm;
    s_follow(&r, 500);
    s_meter(&r, 1000, 600 + s_batt_ac(&r));
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_int_equal(r.out.limit, CTL_L_EMPTY);
    /* At 6 % (inside the hysteresis) it stays stopped ... */
    /* (load-corrected, like the cut above: the last telemetry still shows the discharge) */
    r.in.dc_v = 24.4 + 0.01 * (26.4 - 24.4) / 45 * 100 + r.in.dc_a * r.p.r_internal_ohm;
    s_settle(&r, 600, 4); /* about 6 % */
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    /* ... at 9 % it resumes. */
    r.in.dc_v = 24.4 + 0.04 * (26.4 - 24.4) / 45 * 100;
    s_settle(&r, 600, 12); /* (after the idle dwell) */
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* Charging is never blocked by the empty cut. */
    r.in.dc_v = 24.0;
    s_settle(&r, -900, 4);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
}

/* The load-corrected voltage that the rig's table reads as soc_pct (5-50 % segment). */
static double s_v_at(const rig_t *r, double soc_pct)
{
    return 24.4 + (soc_pct - 5) * 2.0 / 45 + r->in.dc_a * r->p.r_internal_ohm;
}

static void test_protection_empty_at_the_limit_itself(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.min_soc_pct = 5; /* inside the table (it starts at 0 %) */
    s_settle(&r, 600, 6);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* A few hundredths above MinSocPct the usable energy is still used ... */
    r.in.dc_v = s_v_at(&r, 5.03);
    s_settle(&r, 600, 3);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_false(r.s.discharge_cut);
    /* ... and at MinSocPct discharging stops. */
    r.in.dc_v = s_v_at(&r, 5.0);
    s_settle(&r, 600, 2);
    assert_true(r.s.discharge_cut);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_int_equal(r.out.limit, CTL_L_EMPTY);
}

static void test_empty_cut_reuses_charge_put_back(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.min_soc_pct = 5;
    r.p.protect_hyst_pct = 3;
    r.p.idle_dwell_ms = 0;
    s_settle(&r, 600, 6);
    r.hold_soc = 4.99;
    s_settle(&r, 600, 3);
    assert_true(r.s.discharge_cut);
    /* The voltage reading alone creeping up (no charge taken) does not resume: that is
     * what the hysteresis is for. */
    r.hold_soc = 5.2;
    s_settle(&r, 600, 10);
    assert_true(r.s.discharge_cut);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    /* A small surplus is absorbed (charging is never blocked by the empty cut) ... */
    for (int i = 0; i < 40; i++) {
        r.hold_soc = 5.0 + 0.09 * i / 40;
        s_settle(&r, -400, 1);
    }
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    /* ... and once it shows, the energy put back is used when the load returns (well
     * inside the 3 % hysteresis). */
    r.hold_soc = 5.09;
    s_settle(&r, 600, 40); /* (after the direction dwell) */
    assert_false(r.s.discharge_cut);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* Down at MinSocPct again it stops. */
    r.hold_soc = 4.99;
    s_settle(&r, 600, 2);
    assert_true(r.s.discharge_cut);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
}

static void test_protection_full(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.max_soc_pct = 90;
    r.p.full_hyst_pct = 0.5;
    r.in.dc_v = 27.68; /* 90 % at rest */
    s_settle(&r, -900, 4);
    assert_int_not_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_int_equal(r.out.limit, CTL_L_FULL);
    assert_true(r.out.soc_valid);
    assert_true(r.out.soc_pct > 89.9);
    /* Discharging is still allowed at full. */
    s_settle(&r, 900, 6);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
}

static void test_protection_voltage_is_load_corrected(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.min_voltage_cv = 2500;
    r.p.cap2v_n = 0; /* voltage only */
    r.p.r_internal_ohm = 0.02;
    s_settle(&r, 1500, 8);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* Under a 60 A discharge the terminal sags to 24.9 V, but the corrected voltage is
     * 26.1 V: no cut. */
    r.in.dc_a = -60;
    r.in.dc_v = 24.9;
    s_step(&r);
    assert_false(r.s.discharge_cut);
    /* Corrected 24.9 V: cut. */
    r.in.dc_v = 23.7;
    s_step(&r);
    assert_true(r.s.discharge_cut);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_int_equal(r.out.limit, CTL_L_VOLTAGE_LOW);
}

/* ---- staleness, lease, offline --------------------------------------------------------- */

static void test_stale_meter_goes_safe_and_recovers(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.meter_timeout_ms = 30000;
    s_settle(&r, 900, 6);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* No sample for 29 s: still running; the same value arriving again counts as fresh. */
    s_meter(&r, 1000, 900 + s_batt_ac(&r));
    s_wait(&r, 29000);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    s_meter(&r, 0, r.in.meter_w);
    s_wait(&r, 29000);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* 31 s by arrival time: safe state, with the reason. */
    s_wait(&r, 2000);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_true(r.out.send);
    assert_int_equal(r.out.reason, CTL_R_METER_STALE);
    assert_string_equal(r.out.reason_text, "meter stale");
    /* A fresh sample: control resumes (after the idle dwell), the device following. */
    s_follow(&r, 1000);
    s_settle(&r, 900, 12);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_false(r.out.follow_problem);
}

static void test_no_meter_yet(void **state)
{
    rig_t r;
    s_rig(&r);
    s_step(&r);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_int_equal(r.out.reason, CTL_R_NO_METER);
}

static void test_lease_lost_and_offline(void **state)
{
    rig_t r;
    s_rig(&r);
    s_settle(&r, 900, 6);
    r.in.lease_held = false;
    s_step(&r);
    assert_int_equal(r.out.mode, CTL_MODE_NONE);
    assert_int_equal(r.out.reason, CTL_R_NO_LEASE);
    r.in.lease_held = true;
    r.in.online = false;
    s_step(&r);
    assert_int_equal(r.out.mode, CTL_MODE_NONE);
    assert_int_equal(r.out.reason, CTL_R_OFFLINE);
    /* Back: the first command is sent again (the cache was reset). */
    r.in.online = true;
    s_meter(&r, 1000, 900);
    assert_true(r.out.send);
}

static void test_disabled_is_idle(void **state)
{
    rig_t r;
    s_rig(&r);
    s_settle(&r, 900, 6);
    r.in.enabled = false;
    s_step(&r);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_true(r.out.send);
    assert_int_equal(r.out.reason, CTL_R_DISABLED);
}

static void test_stale_telemetry_and_bad_numbers(void **state)
{
    rig_t r;
    s_rig(&r);
    s_settle(&r, 900, 6);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    /* The gateway's telemetry stops: W -> A and the effect check have nothing to go on. */
    r.tel_stopped = true;
    for (int i = 0; i < 6; i++)
        s_meter(&r, 2000, 900 + s_batt_ac(&r));
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_int_equal(r.out.reason, CTL_R_TELEMETRY_STALE);
    /* Not-a-number from anywhere is refused the same way, without a false protection cut. */
    r.tel_stopped = false;
    s_follow(&r, 1000);
    r.in.dc_v = 0.0 / 0.0;
    s_meter(&r, 1000, 900);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_int_equal(r.out.reason, CTL_R_BAD_INPUT);
    assert_false(r.s.charge_cut);
    assert_false(r.s.discharge_cut);
    r.in.dc_v = 26.4;
    s_meter(&r, 1000, 1.0 / 0.0);
    assert_int_equal(r.out.reason, CTL_R_BAD_INPUT);
    assert_true(ctl_soc_from_voltage(&r.p, 0.0 / 0.0) < 0);
}

static void test_no_voltage_no_power(void **state)
{
    rig_t r;
    s_rig(&r);
    r.in.telemetry_valid = false;
    s_meter(&r, 1000, 900);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_int_equal(r.out.reason, CTL_R_NO_VOLTAGE);
}

/* ---- quantisation and write rate ------------------------------------------------------- */

static void test_quantise_one_rule(void **state)
{
    ctl_params_t p;
    s_params(&p);
    p.quantum_ca = 10;
    assert_int_equal(ctl_quantise_ca(&p, 4.6), 460); /* the seed wrote 459 */
    assert_int_equal(ctl_quantise_ca(&p, 0.3), 30);  /* the seed wrote 0.4 A */
    assert_int_equal(ctl_quantise_ca(&p, -0.3), 30); /* magnitude, the same rule */
    assert_int_equal(ctl_quantise_ca(&p, 12.349), 1230);
    assert_int_equal(ctl_quantise_ca(&p, 12.35), 1240); /* half up */
    p.quantum_ca = 1;
    assert_int_equal(ctl_quantise_ca(&p, 12.345), 1235);
}

static void test_setpoints_are_quantised(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.quantum_ca = 20;
    for (int i = 0; i < 8; i++) {
        s_meter(&r, 1000, 777 + s_batt_ac(&r));
        if (r.out.mode == CTL_MODE_DISCHARGE || r.out.mode == CTL_MODE_CHARGE)
            assert_int_equal(r.out.current_ca % 20, 0);
        s_follow(&r, 1500);
    }
}

static void test_rate_limit_holds_trims(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.min_write_interval_ms = 10000;
    s_settle(&r, 800, 2);
    int64_t changed = r.s.last_change_ms;
    int ca = r.s.current_ca;
    /* A change wanted 3 s later is held back. */
    s_meter(&r, 1000, 800 + s_batt_ac(&r) + 200);
    if (r.t - changed < 10000) {
        assert_int_equal(r.out.current_ca, ca);
        assert_int_equal(r.out.reason, CTL_R_RATE_LIMIT);
    }
    while (r.t - changed < 10000)
        s_meter(&r, 2000, 1000 + s_batt_ac(&r));
    s_follow(&r, 500);
    s_meter(&r, 1000, 1000 + s_batt_ac(&r));
    assert_int_not_equal(r.out.current_ca, ca);
}

/* With the gateway's daily budget known, trims wait for the spacing while more than half the
 * burst is saved; below that a small trim (an error of up to twice the deadband) waits for the
 * daily rate (so trims alone never empty it) and a larger one for the spacing only; below two
 * writes none goes; a reduction forced by a limit still goes out. err_w: the error to trim. */
static void s_trim_err_after_budget(rig_t *r, int per_day, int burst, double tokens, double err_w,
                                    int64_t wait_ms, bool expect_change)
{
    s_rig(r);
    if (err_w <= 2 * r->p.charge_tol_w)
        s_settle(r, 800, 8);
    r->p.min_write_interval_ms = 20000;
    r->p.write_budget_per_day = per_day;
    r->p.write_burst = burst;
    s_settle(r, 800, 2);
    r->in.eeprom_tokens = tokens;
    r->in.eeprom_tokens_ms = r->t;
    int64_t changed = r->s.last_change_ms;
    int ca = r->s.current_ca;
    ctl_reason_t why = CTL_R_TRACK;
    while (r->t - changed < wait_ms) {
        /* a large error: the load steps from 800 to 800 + err_w W; a small one: the meter
         * reads err_w from the aim (settled first, so no other error is left) */
        double aim = r->p.hours[r->in.hour].grid_offset_w;
        s_meter(r, 2000, err_w > 2 * r->p.charge_tol_w ? 800 + err_w + s_batt_ac(r) : aim + err_w);
        why = r->out.reason;
        s_follow(r, 0);
    }
    if (expect_change)
        assert_int_not_equal(r->s.current_ca, ca);
    else {
        assert_int_equal(r->s.current_ca, ca);
        assert_int_equal(why, CTL_R_RATE_LIMIT);
    }
}

static void s_trim_after_budget(rig_t *r, int per_day, int burst, double tokens, int64_t wait_ms,
                                bool expect_change)
{
    s_trim_err_after_budget(r, per_day, burst, tokens, 300, wait_ms, expect_change);
}

static void s_trim_after(rig_t *r, double tokens, int64_t wait_ms, bool expect_change)
{
    s_trim_after_budget(r, 1095, 300, tokens, wait_ms, expect_change);
}

/* a small trim: an error between the deadband and twice it */
static void s_small_trim_after(rig_t *r, double tokens, int64_t wait_ms, bool expect_change)
{
    s_trim_err_after_budget(r, 1095, 300, tokens, 1.5 * r->p.charge_tol_w, wait_ms, expect_change);
}

/* The gateway's fixed-interval rule (EepromWriteIntervalSec) reads as a one-deep bucket
 * refilled once per interval: trims follow the interval (before: never, a bucket of one never
 * holds the two writes the daily budget keeps back). */
static void test_fixed_interval_paces_trims(void **state)
{
    rig_t r;
    s_trim_after_budget(&r, 86400 / 20, 1, 1, 25000, true);
    s_trim_after_budget(&r, 86400 / 20, 1, 0, 10000, false);
}

static void test_write_budget_paces_trims(void **state)
{
    rig_t r;
    s_trim_after(&r, 250, 25000, true); /* plenty saved: the 20 s spacing */
    s_small_trim_after(&r, 250, 25000, true);
    s_small_trim_after(&r, 100, 25000, false); /* below half the burst: the daily rate, 79 s */
    s_small_trim_after(&r, 100, 82000, true);
    s_trim_after(&r, 100, 25000, true);   /* ... for small trims only: a step, 20 s */
    s_trim_after(&r, 0.5, 100000, false); /* nearly spent (0.5 + 1.3 refilled): no trims */
    /* ... but a limit still lowers the current at once */
    r.p.hours[r.in.hour].max_discharge_w = -200;
    s_meter(&r, 2000, 1100 + s_batt_ac(&r));
    assert_true(r.out.power_w >= -205);
}

/* Where every write is persisted, a small error within the deadband that stays on one side (a
 * small load that stays, a slow drift) is left while the gateway's budget is below full (each
 * write holds the next change back by the spacing), and corrected once the budget is full, where
 * its writes would go unused. */
static void s_band_trim(rig_t *r, double tokens, bool expect_change)
{
    s_rig(r);
    r->p.quantum_ca = CTL_PERSISTED_QUANTUM_CA;
    s_settle(r, 800, 8);
    r->p.min_write_interval_ms = 20000;
    r->p.write_budget_per_day = 1095;
    r->p.write_burst = 300;
    r->in.eeprom_tokens = tokens;
    r->in.eeprom_tokens_ms = r->t;
    int64_t changed = r->s.last_change_ms;
    int ca = r->s.current_ca;
    double p0 = r->s.power_w;
    ctl_reason_t why = CTL_R_TRACK;
    while (r->t - changed < 30000) {
        s_meter(r, 2000, 800 + s_batt_ac(r) + 7);
        why = r->out.reason;
        s_follow(r, 0);
        if (r->s.current_ca != ca)
            break;
    }
    if (expect_change) {
        assert_true(r->s.power_w < p0 - 4 && r->s.power_w > p0 - 10);
    } else {
        assert_int_equal(r->s.current_ca, ca);
        assert_int_equal(why, CTL_R_DEADBAND);
    }
}

static void test_in_band_error_corrected_while_the_budget_is_full(void **state)
{
    rig_t r;
    s_band_trim(&r, 300, true);
    s_band_trim(&r, 298, true);
    s_band_trim(&r, 275, true); /* full: at least 90 % of the burst */
    s_band_trim(&r, 260, false);
    s_band_trim(&r, 150, false);
    /* the gateway's fixed interval (a bucket of one) keeps the deadband as it was */
    s_rig(&r);
    r.p.quantum_ca = CTL_PERSISTED_QUANTUM_CA;
    s_settle(&r, 800, 8);
    r.p.min_write_interval_ms = 20000;
    r.p.write_budget_per_day = 86400 / 20;
    r.p.write_burst = 1;
    r.in.eeprom_tokens = 1;
    r.in.eeprom_tokens_ms = r.t;
    int ca = r.s.current_ca;
    for (int i = 0; i < 15; i++) {
        s_meter(&r, 2000, 800 + s_batt_ac(&r) + 7);
        s_follow(&r, 0);
    }
    assert_int_equal(r.s.current_ca, ca);
}

static void test_budget_mode_spaces_level_writes(void **state)
{
    rig_t r;
    s_rig(&r);
    r.p.min_write_interval_ms = 79000;
    int changes = 0;
    int64_t last = INT64_MIN, min_gap = INT64_MAX;
    int charge_lvl = -1, discharge_lvl = -1;
    /* Evening-like deficits, then a sunny stretch, then deficits again, each with some
     * minute-to-minute variation. */
    double load[] = {600, 650, 550, 700, -500, -600, -450, -520, 580, 620, 590};
    int64_t t0 = r.t;
    bool charged = false, discharged = false;
    for (int k = 0; k < 900; k++) {
        double l = load[(k / 90) % 11];
        s_meter(&r, 500, l + s_batt_ac(&r));
        s_follow(&r, 1500);
        charged = charged || (r.s.mode == CTL_MODE_CHARGE && r.s.current_ca > r.p.min_current_ca);
        discharged = discharged || r.s.mode == CTL_MODE_DISCHARGE;
        if (r.s.reg_charge_ca != charge_lvl || r.s.reg_discharge_ca != discharge_lvl) {
            if (charge_lvl >= 0) {
                if (last != INT64_MIN && r.t - last < min_gap)
                    min_gap = r.t - last;
                last = r.t;
                changes++;
            }
            charge_lvl = r.s.reg_charge_ca;
            discharge_lvl = r.s.reg_discharge_ca;
        }
    }
    assert_true(changes > 2);
    assert_true(min_gap >= 79000);
    assert_true(changes <= (r.t - t0) / 79000 + 1);
    /* Between writes it steers by direction: both directions were used. */
    assert_true(charged && discharged);
}

/* ---- parameters ------------------------------------------------------------------------- */

static void test_inheritance(void **state)
{
    ctl_params_t p;
    s_params(&p);
    bool set[24][4];
    memset(set, 0, sizeof set);
    p.hours[0] = (ctl_hour_t){1000, -500, 0, 60};
    p.hours[21] = (ctl_hour_t){0, -1500, 50, 120};
    set[0][0] = set[0][1] = set[0][2] = set[0][3] = true;
    set[21][0] = set[21][1] = set[21][2] = set[21][3] = true;
    p.hours[8].max_charge_w = 2000; /* only one key for hour 8 */
    set[8][0] = true;
    ctl_params_inherit(&p, set);
    assert_int_equal(p.hours[7].max_charge_w, 1000);
    assert_int_equal(p.hours[8].max_charge_w, 2000);
    assert_int_equal(p.hours[8].max_discharge_w, -500); /* other keys still from hour 0 */
    assert_int_equal(p.hours[20].max_charge_w, 2000);
    assert_int_equal(p.hours[21].max_charge_w, 0);
    assert_int_equal(p.hours[23].max_discharge_w, -1500);
    assert_int_equal(p.hours[23].grid_offset_w, 50);
    assert_int_equal(p.hours[22].block_time_s, 120);
}

static void test_validate_rejects(void **state)
{
    ctl_params_t p;
    char err[256];
    s_params(&p);
    assert_int_equal(ctl_params_validate(&p, err, sizeof err), 0);
    p.max_charge_ca = 50; /* below the minimum current: the seed wrote IOUT_SET = 0 */
    assert_int_equal(ctl_params_validate(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "MaxChargeCurrent"));
    s_params(&p);
    p.cap2v_v[2] = 24.0; /* falls */
    assert_int_equal(ctl_params_validate(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "Cap2V"));
    s_params(&p);
    p.hours[3].max_discharge_w = 100;
    assert_int_equal(ctl_params_validate(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "hour 3"));
    s_params(&p);
    p.min_soc_pct = 60;
    p.max_soc_pct = 50;
    assert_int_equal(ctl_params_validate(&p, err, sizeof err), -1);
}

static void test_names(void **state)
{
    assert_string_equal(ctl_mode_name(CTL_MODE_DISCHARGE), "discharge");
    assert_string_equal(ctl_mode_name(CTL_MODE_IDLE), "idle");
    assert_string_equal(ctl_reason_name(CTL_R_DIRECTION_DWELL), "direction dwell");
    assert_string_equal(ctl_limit_name(CTL_L_BLOCK_HOURS), "discharge block hours");
    assert_string_equal(ctl_reason_name((ctl_reason_t)999), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reading_older_than_the_meter_does_not_undo_the_command),
        cmocka_unit_test(test_import_is_covered_by_discharge),
        cmocka_unit_test(test_import_covered_from_idle_with_a_current_offset),
        cmocka_unit_test(test_first_import_step_is_careful),
        cmocka_unit_test(test_export_is_cut_at_once),
        cmocka_unit_test(test_every_sample_credits_the_command_in_flight),
        cmocka_unit_test(test_a_steady_ramp_is_led),
        cmocka_unit_test(test_clear_export_is_cut_before_the_effect_shows),
        cmocka_unit_test(test_deadband_holds),
        cmocka_unit_test(test_careful_first_step_scales_with_the_meter_interval),
        cmocka_unit_test(test_a_cycling_load_that_comes_back_is_taken_whole),
        cmocka_unit_test(test_deadband_corrects_a_persistent_small_error),
        cmocka_unit_test(test_zero_is_a_real_idle),
        cmocka_unit_test(test_idle_hysteresis),
        cmocka_unit_test(test_idle_dwell_before_discharging_again),
        cmocka_unit_test(test_direction_dwell_charge_to_discharge),
        cmocka_unit_test(test_a_large_demand_is_not_held_by_the_dwell),
        cmocka_unit_test(test_a_fast_step_takes_back_the_direction_whole),
        cmocka_unit_test(test_discharge_to_charge_goes_straight),
        cmocka_unit_test(test_profile_limits),
        cmocka_unit_test(test_persisted_writes_keep_the_power_limit_in_a_band),
        cmocka_unit_test(test_last_writes_keep_a_charge_at_its_minimum),
        cmocka_unit_test(test_persisted_charge_turns_straight_into_discharge),
        cmocka_unit_test(test_full_budget_lets_a_reduction_through_at_once),
        cmocka_unit_test(test_profile_zero_discharge_means_none),
        cmocka_unit_test(test_hour_changes_the_target),
        cmocka_unit_test(test_device_current_limit),
        cmocka_unit_test(test_block_hours_across_midnight),
        cmocka_unit_test(test_block_after_charging),
        cmocka_unit_test(test_soc_table_edges),
        cmocka_unit_test(test_protection_empty_with_hysteresis),
        cmocka_unit_test(test_protection_empty_at_the_limit_itself),
        cmocka_unit_test(test_empty_cut_reuses_charge_put_back),
        cmocka_unit_test(test_protection_full),
        cmocka_unit_test(test_protection_voltage_is_load_corrected),
        cmocka_unit_test(test_stale_meter_goes_safe_and_recovers),
        cmocka_unit_test(test_no_meter_yet),
        cmocka_unit_test(test_lease_lost_and_offline),
        cmocka_unit_test(test_disabled_is_idle),
        cmocka_unit_test(test_no_voltage_no_power),
        cmocka_unit_test(test_stale_telemetry_and_bad_numbers),
        cmocka_unit_test(test_quantise_one_rule),
        cmocka_unit_test(test_setpoints_are_quantised),
        cmocka_unit_test(test_rate_limit_holds_trims),
        cmocka_unit_test(test_write_budget_paces_trims),
        cmocka_unit_test(test_in_band_error_corrected_while_the_budget_is_full),
        cmocka_unit_test(test_fixed_interval_paces_trims),
        cmocka_unit_test(test_budget_mode_spaces_level_writes),
        cmocka_unit_test(test_inheritance),
        cmocka_unit_test(test_validate_rejects),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
