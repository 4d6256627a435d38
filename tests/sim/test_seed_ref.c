/*
 * Unit tests of seed_ref: the Python project's charge control reproduced with its quirks,
 * checked against the documented behaviour (seed behaviour description, sections 7.3-7.10),
 * starting with its worked example.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "seed_ref.h"

#define T0 5000000 /* ms */

static void s_params(ctl_params_t *p, int limit_w)
{
    ctl_params_defaults(p);
    p->has_profile = true;
    for (int h = 0; h < 24; h++)
        p->hours[h] = (ctl_hour_t){limit_w, -limit_w, 0, 60};
    p->pid_p = 1.0;
    p->pid_i = 0;
    p->pid_d = 0;
    p->pid_max_charge_w = 400;
    p->pid_max_discharge_w = -400;
    p->charge_tol_w = 10;
    p->max_charge_ca = 5000;
    p->max_discharge_ca = 5000;
}

/* Start the seed and let its first profile check run. */
static void s_start(const ctl_params_t *p, seed_state_t *s)
{
    seed_step_t o;
    seed_init(s, T0);
    seed_tick(p, s, T0 + 1000, 12, &o);
}

static int s_grid(const ctl_params_t *p, seed_state_t *s, int64_t t, int grid, seed_step_t *o)
{
    seed_on_grid(p, s, t, 12, grid, s->setpoint_last, o);
    return o->charge_p;
}

static void test_worked_example(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 500);
    s_start(&p, &s);
    /* After the 60 s discharge block that follows the start. */
    int64_t t = T0 + 61000;
    assert_int_equal(s_grid(&p, &s, t, 300, &o), 0);
    assert_true(o.publish);
    assert_int_equal(s_grid(&p, &s, t + 2000, 300, &o), -300);
    assert_int_equal(s_grid(&p, &s, t + 4000, 250, &o), -500); /* clamped by the profile */
}

static void test_discharge_blocked_after_start(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 500);
    s_start(&p, &s);
    int64_t t = T0 + 10000;
    s_grid(&p, &s, t, 300, &o);
    assert_int_equal(s_grid(&p, &s, t + 2000, 300, &o), 0);
}

static void test_no_profile_pins_zero(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 500);
    p.has_profile = false;
    s_start(&p, &s);
    int64_t t = T0 + 61000;
    for (int i = 0; i < 5; i++)
        assert_int_equal(s_grid(&p, &s, t + i * 2000, 800, &o), 0);
}

static void test_profile_loaded_late(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 500);
    seed_init(&s, T0);
    /* Before the first once-a-minute check all limits are 0. */
    seed_on_grid(&p, &s, T0 + 500, 12, -300, 0, &o);
    seed_on_grid(&p, &s, T0 + 900, 12, -300, 0, &o);
    assert_int_equal(o.charge_p, 0);
    /* The hour switches up to a minute late: hour 13's limit applies only after a check. */
    p.hours[13].max_charge_w = 100;
    seed_tick(&p, &s, T0 + 1000, 12, &o);
    seed_tick(&p, &s, T0 + 30000, 13, &o);
    assert_int_equal(s.profile_hour, 12);
    seed_tick(&p, &s, T0 + 61000, 13, &o);
    assert_int_equal(s.profile_hour, 13);
}

static void test_deadband_and_fine_tune(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 2000);
    s_start(&p, &s);
    int64_t t = T0 + 61000;
    s_grid(&p, &s, t, -200, &o);
    assert_int_equal(s_grid(&p, &s, t += 2000, -200, &o), 200);
    /* Within ChargeTol: nothing is published, except a full-error correction on the 30th
     * consecutive in-band sample. */
    for (int i = 1; i < 30; i++) {
        seed_on_grid(&p, &s, t += 2000, 12, -7, 200, &o);
        assert_false(o.publish);
    }
    seed_on_grid(&p, &s, t += 2000, 12, -7, 200, &o);
    assert_true(o.publish);
    assert_int_equal(o.charge_p, 210); /* 200 + 7, rounded to 10 W */
}

static void test_first_step_after_deadband_is_zero(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 2000);
    s_start(&p, &s);
    int64_t t = T0 + 61000;
    s_grid(&p, &s, t, -200, &o);
    s_grid(&p, &s, t += 2000, -200, &o);
    seed_on_grid(&p, &s, t += 2000, 12, 5, 200, &o); /* in band: PID reset */
    /* Out of band again: the first PID call after a reset adds nothing. */
    assert_int_equal(s_grid(&p, &s, t += 2000, -300, &o), 200);
    assert_int_equal(s_grid(&p, &s, t += 2000, -300, &o), 500);
}

static void test_sign_flip_reset(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 2000);
    s_start(&p, &s);
    int64_t t = T0 + 61000;
    s_grid(&p, &s, t, 300, &o);
    s_grid(&p, &s, t += 2000, 300, &o);
    assert_false(o.reset);
    /* From +300 to -350 W: reset to the idle setpoints and publish 0. */
    seed_on_grid(&p, &s, t += 2000, 12, -350, 0, &o);
    assert_true(o.reset);
    assert_true(o.publish);
    assert_int_equal(o.charge_p, 0);
    /* A smaller swing does not reset. */
    seed_on_grid(&p, &s, t += 2000, 12, 250, 0, &o);
    assert_false(o.reset);
}

static void test_gap_suppression(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 2000);
    s_start(&p, &s);
    int64_t t = T0 + 61000;
    int published = 0;
    /* The device cannot follow (measured stays 0): after 10 steps with a gap of 100 W or
     * more, publishing stops except on every 60th step. */
    for (int i = 0; i < 70; i++) {
        seed_on_grid(&p, &s, t += 2000, 12, -500, 0, &o);
        published += o.publish;
    }
    assert_true(published < 20);
    assert_true(s.setpoint_last >= 2000); /* the internal setpoint kept moving (no anti-windup) */
}

static void test_integer_second_dt(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    s_params(&p, 2000);
    p.pid_i = 1.0;
    seed_init(&s, T0);
    seed_pid_step(&p, &s, T0, -100, 0);
    /* 0.9 s later: dt = 0 whole seconds, the integral term adds nothing. */
    int out = seed_pid_step(&p, &s, T0 + 900, -100, 0);
    assert_int_equal(out, 100);
    assert_true(s.pid_i == 0);
    /* 1.9 s later: dt = 1. */
    out = seed_pid_step(&p, &s, T0 + 2800, -100, 0);
    assert_true(s.pid_i == 100); /* clamped to MaxChargePower / 4 at most */
    assert_int_equal(out, 200);
}

static void test_hour_block_has_no_wrap(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 2000);
    s_start(&p, &s);
    int64_t t = T0 + 61000;
    p.block_hour_start = 2;
    p.block_hour_stop = 4;
    s_grid(&p, &s, t, 300, &o);
    seed_on_grid(&p, &s, t += 2000, 3, 300, 0, &o);
    assert_int_equal(o.charge_p, 0); /* blocked at 3 */
    /* 22-5 "across midnight" never blocks in the seed. */
    p.block_hour_start = 22;
    p.block_hour_stop = 5;
    seed_on_grid(&p, &s, t += 2000, 23, 300, 0, &o);
    seed_on_grid(&p, &s, t += 2000, 23, 300, 0, &o);
    assert_true(o.charge_p < 0);
}

static void test_amps_quantisation_quirks(void **state)
{
    ctl_params_t p;
    seed_cmd_t c;
    s_params(&p, 2000);
    seed_amp_cmd(&p, 4.6, &c);
    assert_int_equal(c.direction, 0);
    assert_int_equal(c.a100, 459); /* float truncation */
    seed_amp_cmd(&p, 4.5, &c);
    assert_int_equal(c.a100, 459); /* odd tenth up to 4.6, then truncation */
    seed_amp_cmd(&p, 12.3, &c);
    assert_int_equal(c.a100, 1240);
    seed_amp_cmd(&p, -4.5, &c); /* negative odd tenth: toward zero */
    assert_int_equal(c.direction, 1);
    assert_int_equal(c.a100, 440);
    seed_amp_cmd(&p, 0, &c); /* no zero: 0.9 A charge */
    assert_int_equal(c.direction, 0);
    assert_int_equal(c.a100, SEED_IDLE_CA);
    seed_amp_cmd(&p, -0.1, &c); /* -0.1 A becomes charge */
    assert_int_equal(c.direction, 0);
    assert_int_equal(c.a100, SEED_IDLE_CA);
    seed_amp_cmd(&p, -0.5, &c); /* -0.5 A becomes a 0.9 A discharge */
    assert_int_equal(c.direction, 1);
    assert_int_equal(c.a100, SEED_IDLE_CA);
    p.max_charge_ca = 0; /* MaxChargeCurrent missing: every charge writes 0 */
    seed_amp_cmd(&p, 10, &c);
    assert_int_equal(c.a100, 0);
}

static void test_power_cache_and_voltage_fallback(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_cmd_t c;
    s_params(&p, 2000);
    seed_init(&s, T0);
    assert_int_equal(seed_set_pow(&p, &s, 300, 25.0, &c), 1);
    assert_int_equal(c.a100, 1200);
    assert_int_equal(seed_set_pow(&p, &s, 300, 25.0, &c), 0); /* cached: nothing written */
    /* A reset does not invalidate the cache. */
    seed_step_t o;
    seed_tick(&p, &s, T0 + 400000, 12, &o); /* meter timeout: reset */
    assert_true(o.reset);
    assert_int_equal(seed_set_pow(&p, &s, 300, 25.0, &c), 0);
    /* Below 20 V the seed assumes 24 V (wrong for a 12 V pack). */
    assert_int_equal(seed_set_pow(&p, &s, 240, 12.8, &c), 1);
    assert_int_equal(c.a100, 1000);
}

static void test_meter_timeout_fires_once(void **state)
{
    ctl_params_t p;
    seed_state_t s;
    seed_step_t o;
    s_params(&p, 2000);
    s_start(&p, &s);
    seed_tick(&p, &s, T0 + 300000, 12, &o);
    assert_false(o.reset);
    seed_tick(&p, &s, T0 + 330000, 12, &o);
    assert_true(o.reset);
    seed_tick(&p, &s, T0 + 400000, 12, &o);
    assert_false(o.reset);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_discharge_blocked_after_start),
        cmocka_unit_test(test_no_profile_pins_zero),
        cmocka_unit_test(test_profile_loaded_late),
        cmocka_unit_test(test_deadband_and_fine_tune),
        cmocka_unit_test(test_first_step_after_deadband_is_zero),
        cmocka_unit_test(test_sign_flip_reset),
        cmocka_unit_test(test_gap_suppression),
        cmocka_unit_test(test_integer_second_dt),
        cmocka_unit_test(test_hour_block_has_no_wrap),
        cmocka_unit_test(test_amps_quantisation_quirks),
        cmocka_unit_test(test_power_cache_and_voltage_fallback),
        cmocka_unit_test(test_meter_timeout_fires_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
