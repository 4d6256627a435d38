/*
 * Unit tests of "does the device follow?" (ctl_follow.h and its timers in ctl_step): for
 * each cause a device that does not follow is reported after FollowTimeoutSec with that
 * cause and switched off after FollowSafeSec more; a device that follows in its own way
 * (response time, CV taper at the voltage setting, the BMS at the ends, derating) never is.
 * The rig feeds a meter sample and a telemetry sample every second; the "device" does what
 * each test says, not what is commanded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "ctl_follow.h"
#include "ctl_step.h"
#include "ctl_test_util.h"

typedef struct {
    ctl_params_t p;
    ctl_state_t s;
    ctl_input_t in;
    ctl_output_t out;
    int64_t t; /* ms */
    /* What the device does, whatever the command: */
    double dev_a;     /* measured current (A, + charging) */
    bool dev_follows; /* instead: the commanded current, after dev_delay_ms */
    int64_t dev_delay_ms;
    int64_t cmd_ms;  /* when the command in force was sent */
    int64_t mode_ms; /* when its mode was first commanded */
    ctl_mode_t mode;
    bool saw_tracking_opposite;  /* reason "tracking" while the current ran the other way */
    int64_t problem_at, safe_at; /* first report and safe state, relative to start (ms) */
    int64_t start;
} rig_t;

/* The 24 V test pack (ctl_test_util.h), leaving idle without a dwell. */
static void s_rig(rig_t *r)
{
    memset(r, 0, sizeof *r);
    ctl_params_t *p = &r->p;
    ctl_test_params(p);
    p->idle_dwell_ms = 0;
    r->t = 1000000;
    r->start = r->t;
    r->problem_at = r->safe_at = -1;
    ctl_state_init(&r->s, r->t);
    ctl_test_input(&r->in, r->t);
    r->in.operation = 1;
    r->in.vout_set_cv = 2800;
    r->in.rev_vout_set_cv = 2400;
    r->in.temp_valid = true;
    r->in.temp_c = 35;
}

/* One second: the device state (as the test set it), then a meter sample and a step. The
 * read-back shows the command (the gateway wrote it); the current is the test's. */
static void s_second(rig_t *r, double grid_w)
{
    r->t += 1000;
    if (r->s.mode == CTL_MODE_CHARGE || r->s.mode == CTL_MODE_DISCHARGE) {
        bool charge = r->s.mode == CTL_MODE_CHARGE;
        r->in.direction = charge ? 0 : 1;
        if (charge)
            r->in.iout_ca = r->s.current_ca;
        else
            r->in.rev_iout_ca = r->s.current_ca;
    }
    if (r->dev_follows) {
        double want = r->s.mode == CTL_MODE_CHARGE      ? r->s.current_ca / 100.0
                      : r->s.mode == CTL_MODE_DISCHARGE ? -r->s.current_ca / 100.0
                                                        : 0;
        r->in.dc_a = r->t - r->mode_ms >= r->dev_delay_ms ? want : 0;
    } else {
        r->in.dc_a = r->dev_a;
    }
    r->in.telemetry_ms = r->t;
    r->in.meter_valid = true;
    r->in.meter_w = grid_w;
    r->in.meter_arrival_ms = r->t;
    r->in.meter_seq++;
    r->in.now_ms = r->t;
    ctl_step(&r->p, &r->s, &r->in, &r->out);
    if (r->out.send)
        r->cmd_ms = r->t;
    if (r->out.mode != r->mode) {
        r->mode = r->out.mode;
        r->mode_ms = r->t;
    }
    bool opposite = (r->out.mode == CTL_MODE_CHARGE && r->in.dc_a < -0.9) ||
                    (r->out.mode == CTL_MODE_DISCHARGE && r->in.dc_a > 0.9);
    if (opposite && r->t - r->cmd_ms >= r->p.settle_timeout_ms &&
        (r->out.reason == CTL_R_TRACK || r->out.reason == CTL_R_WAIT_EFFECT))
        r->saw_tracking_opposite = true;
    if (r->out.follow_problem && r->problem_at < 0)
        r->problem_at = r->t - r->start;
    if (r->out.follow_safe && r->safe_at < 0)
        r->safe_at = r->t - r->start;
    if (getenv("CTL_TEST_TRACE"))
        fprintf(stderr, "t=%lld a=%.2f v=%.2f -> %s %d (%s) problem=%d %s\n",
                (long long)(r->t - r->start), r->in.dc_a, r->in.dc_v, ctl_mode_name(r->out.mode),
                r->out.current_ca, r->out.reason_text, r->out.follow_problem,
                ctl_follow_cause_name(r->out.follow_cause));
}

static void s_run(rig_t *r, int seconds, double grid_w)
{
    for (int i = 0; i < seconds; i++)
        s_second(r, grid_w);
}

/* Export: the controller charges. */
#define EXPORT (-800.0)
/* Import: the controller discharges. */
#define IMPORT 800.0

/* ---- each cause ------------------------------------------------------------------------ */

/* The scene of the report: VOUT_SET 25.20 V below a battery at 26.35 V; charge commanded,
 * the device discharges at 4.5 A (the 5 % reverse flow). */
static void test_charge_voltage_below_battery(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.vout_set_cv = 2520;
    r.in.dc_v = 26.35;
    r.dev_a = -4.5;
    s_run(&r, 1, EXPORT);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    /* Within the response time: no report yet. */
    s_run(&r, 4, EXPORT);
    assert_false(r.out.follow_problem);
    /* After it, never "tracking" while the current runs the other way. */
    s_run(&r, 3, EXPORT);
    assert_int_equal(r.out.reason, CTL_R_NOT_FOLLOWING);
    assert_false(r.out.follow_problem);
    s_run(&r, 5, EXPORT);
    assert_true(r.out.follow_problem);
    assert_int_equal(r.out.follow_cause, CTL_F_CHARGE_VOLTAGE);
    assert_non_null(strstr(r.out.follow_text, "25.20 V"));
    assert_non_null(strstr(r.out.follow_text, "26.35 V"));
    assert_non_null(strstr(r.out.reason_text, "charge voltage setting"));
    /* Reported 10 s after the command (FollowTimeoutSec), still commanding. */
    assert_true(r.problem_at >= 10000 && r.problem_at <= 11000);
    assert_false(r.out.follow_safe);
    /* 10 s more (FollowSafeSec): the output goes off and stays off. */
    s_run(&r, 10, EXPORT);
    assert_true(r.out.follow_safe);
    assert_true(r.safe_at >= 20000 && r.safe_at <= 21000);
    assert_int_equal(r.out.mode, CTL_MODE_OFF);
    assert_int_equal(r.out.reason, CTL_R_FOLLOW_SAFE);
    assert_non_null(strstr(r.out.reason_text, "output off"));
    assert_non_null(strstr(r.out.reason_text, "25.20 V"));
    r.dev_a = 0; /* off: no current */
    s_run(&r, 120, EXPORT);
    assert_int_equal(r.out.mode, CTL_MODE_OFF);
    assert_true(r.out.follow_problem);
    assert_int_equal(r.out.follow_count, 1);
    assert_false(r.saw_tracking_opposite);

    /* VOUT_SET put right (27.60 V): the controller tries again at once and, with the device
     * following, the problem clears. */
    r.in.vout_set_cv = 2760;
    r.dev_follows = true;
    r.dev_delay_ms = 1000;
    s_run(&r, 30, EXPORT);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_false(r.out.follow_problem);
    assert_false(r.out.follow_safe);
    assert_int_equal(r.out.follow_count, 1);
}

/* The configured ChargeVoltage (and so VOUT_SET) below the battery: the reversed current is
 * no end-of-charge taper, so charging is not cut as "full"; the device is reported and
 * switched off instead. */
static void test_configured_charge_voltage_below_battery(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.p.charge_voltage_cv = 2520;
    r.p.max_voltage_cv = 2800;
    r.in.vout_set_cv = 2520;
    r.in.dc_v = 26.35;
    s_run(&r, 1, EXPORT);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    r.dev_a = -4.5;
    s_run(&r, 11, EXPORT);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_false(r.s.charge_cut);
    assert_true(r.out.follow_problem);
    assert_int_equal(r.out.follow_cause, CTL_F_CHARGE_VOLTAGE);
    s_run(&r, 10, EXPORT);
    assert_true(r.out.follow_safe);
    assert_int_equal(r.out.mode, CTL_MODE_OFF);
}

/* REVERSE_VOUT_SET 27.00 V above a battery at 26.40 V: discharge commanded, it charges. */
static void test_discharge_end_voltage_above_battery(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.rev_vout_set_cv = 2700;
    s_run(&r, 1, IMPORT);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    r.dev_a = 4.5;
    /* The controller keeps asking for the discharge (its law does not give the command up
     * for what the device does) and names the cause 10 s after the command. */
    s_run(&r, 8, IMPORT);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_false(r.out.follow_problem);
    s_run(&r, 3, IMPORT);
    assert_true(r.out.follow_problem);
    assert_int_equal(r.out.follow_cause, CTL_F_DISCHARGE_VOLTAGE);
    assert_non_null(strstr(r.out.follow_text, "27.00 V"));
    s_run(&r, 10, IMPORT);
    assert_int_equal(r.out.mode, CTL_MODE_OFF);
    assert_false(r.saw_tracking_opposite);
}

static void test_output_off(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.operation = 0;
    r.in.fault_raw = CTL_FOLLOW_FAULT_OP_OFF;
    r.dev_a = 0;
    s_run(&r, 12, EXPORT);
    assert_true(r.out.follow_problem);
    assert_int_equal(r.out.follow_cause, CTL_F_OUTPUT_OFF);
    assert_non_null(strstr(r.out.follow_text, "output is off"));
    /* No current either way: the reason says so only once it is reported. */
    assert_int_equal(r.out.reason, CTL_R_NOT_FOLLOWING);
}

static void test_fault(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.fault_raw = 0x0002 | CTL_FOLLOW_FAULT_OP_OFF; /* OTP shut it down */
    r.dev_a = 0;
    s_run(&r, 12, EXPORT);
    assert_true(r.out.follow_problem);
    assert_int_equal(r.out.follow_cause, CTL_F_FAULT);
    assert_non_null(strstr(r.out.follow_text, "otp"));
    s_run(&r, 10, EXPORT);
    assert_true(r.out.follow_safe);
    /* The fault clears: the controller tries again without waiting FollowRetrySec. */
    r.in.fault_raw = 0;
    r.dev_follows = true;
    s_run(&r, 20, EXPORT);
    assert_false(r.out.follow_safe);
    assert_false(r.out.follow_problem);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
}

/* Hot, and next to no current in the commanded direction: derating is the likely cause. */
static void test_derating_cause(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.temp_c = 88;
    r.dev_a = 0.3;
    s_run(&r, 12, EXPORT);
    assert_true(r.out.follow_problem);
    assert_int_equal(r.out.follow_cause, CTL_F_DERATING);
    assert_non_null(strstr(r.out.follow_text, "88.0 degC"));
}

static void test_direction_not_applied(void **state)
{
    (void)state;
    ctl_params_t p;
    ctl_params_defaults(&p);
    p.charge_voltage_cv = 2800;
    p.discharge_voltage_cv = 2400;
    ctl_input_t in = {.dc_v = 26.4,
                      .dc_a = 0,
                      .operation = 1,
                      .direction = 1,
                      .iout_ca = 2000,
                      .vout_set_cv = 2800,
                      .rev_vout_set_cv = 2400};
    ctl_follow_t f;
    ctl_follow_judge(&p, CTL_MODE_CHARGE, 2000, &in, 50, &f);
    assert_int_equal(f.verdict, CTL_FV_NOT_FOLLOWING);
    assert_int_equal(f.cause, CTL_F_DIRECTION);
}

/* Current flowing in the other direction with no voltage, fault or switch to explain it. */
static void test_unknown_cause(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    s_run(&r, 1, IMPORT);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    r.dev_a = 3.0; /* charges while discharge is commanded, REVERSE_VOUT_SET well below */
    s_run(&r, 11, IMPORT);
    assert_true(r.out.follow_problem);
    assert_int_equal(r.out.follow_cause, CTL_F_UNKNOWN);
    assert_non_null(strstr(r.out.follow_text, "no cause found"));
}

/* Idle with the minimum current kept ([GATEWAY] IdleState min) and VOUT_SET below the
 * battery: the 5 % flow discharges the battery while the controller thinks it idles. */
static void test_idle_with_reverse_flow(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.vout_set_cv = 2520;
    r.in.dc_v = 26.35;
    r.dev_a = -4.5;
    s_run(&r, 12, 0);
    assert_int_equal(r.out.mode, CTL_MODE_IDLE);
    assert_true(r.out.follow_problem);
    assert_int_equal(r.out.follow_cause, CTL_F_CHARGE_VOLTAGE);
    s_run(&r, 10, 0);
    assert_int_equal(r.out.mode, CTL_MODE_OFF);
}

/* ---- no false alarms -------------------------------------------------------------------- */

/* A slow device: nothing for 8 s, then it follows. Never reported, and since the current
 * never ran the other way the reason never says it does not follow. */
static void test_response_time(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.dev_follows = true;
    r.dev_delay_ms = 8000;
    for (int i = 0; i < 60; i++) {
        s_second(&r, EXPORT);
        assert_int_not_equal(r.out.reason, CTL_R_NOT_FOLLOWING);
    }
    assert_int_equal(r.problem_at, -1);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
}

/* In the constant-voltage stage at VOUT_SET the current tapers to a small part of the
 * setpoint: that is following. */
static void test_cv_taper_at_the_limit(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.vout_set_cv = 2700;
    r.in.dc_v = 26.95;
    r.dev_a = 3.0;
    s_run(&r, 120, EXPORT);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    assert_true(r.out.current_ca >= 1500);
    assert_int_equal(r.problem_at, -1);
    /* The same taper at REVERSE_VOUT_SET while discharging. */
    s_rig(&r);
    r.in.rev_vout_set_cv = 2500;
    r.in.dc_v = 25.1;
    s_run(&r, 1, IMPORT);
    r.dev_a = -0.5;
    s_run(&r, 120, IMPORT);
    assert_int_equal(r.out.mode, CTL_MODE_DISCHARGE);
    assert_int_equal(r.problem_at, -1);
}

/* The battery's BMS stops the current near full while the voltage setting is higher. */
static void test_soc_limit(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.vout_set_cv = 2900;
    r.in.dc_v = 27.96; /* 98.75 % on the table */
    r.dev_a = 0;
    s_run(&r, 120, EXPORT);
    assert_int_equal(r.problem_at, -1);
    /* The judgement alone, at the bottom. */
    ctl_follow_t f;
    ctl_input_t in = {.dc_v = 23.0,
                      .dc_a = 0,
                      .operation = 1,
                      .direction = 1,
                      .rev_iout_ca = 2000,
                      .vout_set_cv = 2800,
                      .rev_vout_set_cv = 2200};
    ctl_follow_judge(&r.p, CTL_MODE_DISCHARGE, 2000, &in, 3.0, &f);
    assert_int_equal(f.verdict, CTL_FV_EXCUSED);
    assert_int_equal(f.excuse, CTL_FX_SOC);
    /* In the middle of the battery the same is not following. */
    ctl_follow_judge(&r.p, CTL_MODE_DISCHARGE, 2000, &in, 40.0, &f);
    assert_int_equal(f.verdict, CTL_FV_NOT_FOLLOWING);
}

/* Hot: a third of the setpoint in the right direction is derating, not a fault; the same
 * when cool is reported. */
static void test_derating_excused(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.in.temp_c = 82;
    r.dev_a = 4.0; /* of about 20 A asked */
    s_run(&r, 1, -550);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
    s_run(&r, 120, -550);
    assert_true(r.s.current_ca >= 1000);
    assert_int_equal(r.problem_at, -1);
    /* The HI_TEMP flag alone counts too. */
    s_rig(&r);
    r.in.temp_valid = false;
    r.in.fault_raw = CTL_FOLLOW_FAULT_HI_TEMP;
    r.dev_a = 4.0;
    s_run(&r, 120, -550);
    assert_int_equal(r.problem_at, -1);
    /* Cool: the same current is reported. */
    s_rig(&r);
    r.dev_a = 4.0;
    s_run(&r, 30, -550);
    assert_true(r.problem_at > 0);
    assert_int_equal(r.out.follow_cause, CTL_F_UNKNOWN);
}

/* The current register does not hold the command yet (the gateway defers the write): the
 * device follows what it holds. */
static void test_write_not_done_yet(void **state)
{
    (void)state;
    ctl_params_t p;
    ctl_params_defaults(&p);
    p.charge_voltage_cv = 2800;
    ctl_input_t in = {.dc_v = 26.4,
                      .dc_a = 5.0,
                      .operation = 1,
                      .direction = 0,
                      .iout_ca = 500,
                      .vout_set_cv = 2800};
    ctl_follow_t f;
    ctl_follow_judge(&p, CTL_MODE_CHARGE, 3000, &in, 50, &f);
    assert_int_not_equal(f.verdict, CTL_FV_NOT_FOLLOWING);
}

/* A device that follows every command over a long run with changing demand. */
static void test_following_device_never_reported(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.dev_follows = true;
    r.dev_delay_ms = 2000;
    for (int i = 0; i < 1800; i++) {
        double grid = (i / 90) % 2 ? -900 + 10 * (i % 90) : 600 - 5 * (i % 90);
        s_second(&r, grid);
        assert_int_not_equal(r.out.reason, CTL_R_NOT_FOLLOWING);
    }
    assert_int_equal(r.problem_at, -1);
    assert_int_equal(r.out.follow_count, 0);
}

/* FollowTimeoutSec = 0 switches the check off. */
static void test_check_off(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.p.follow_timeout_ms = 0;
    r.in.vout_set_cv = 2520;
    r.dev_a = -4.5;
    s_run(&r, 60, EXPORT);
    assert_int_equal(r.problem_at, -1);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
}

/* FollowRetrySec: a cause that cannot be seen gone is tried again after that long. */
static void test_retry_after_the_interval(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.p.follow_retry_ms = 60000;
    r.in.operation = 0;
    r.dev_a = 0;
    s_run(&r, 25, EXPORT);
    assert_true(r.out.follow_safe);
    s_run(&r, 50, EXPORT);
    assert_true(r.out.follow_safe);
    r.in.operation = 1;
    r.dev_follows = true;
    s_run(&r, 30, EXPORT);
    assert_false(r.out.follow_safe);
    assert_false(r.out.follow_problem);
    assert_int_equal(r.out.mode, CTL_MODE_CHARGE);
}

/* A cause that stays: each further try waits twice as long (two persisted OPERATION writes
 * per try), and once the device follows the interval starts again from FollowRetrySec. */
static void test_retry_backs_off(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    r.p.follow_retry_ms = 60000;
    r.in.operation = 0;
    r.dev_a = 0;
    int64_t offs[4];
    int n = 0;
    bool was_safe = false;
    for (int i = 0; i < 600 && n < 4; i++) {
        s_second(&r, EXPORT);
        if (r.out.follow_safe && !was_safe)
            offs[n++] = r.t;
        was_safe = r.out.follow_safe;
    }
    assert_int_equal(n, 4);
    /* Off, then tries after 60, 120 and 240 s (plus the time to see it fail again). */
    int64_t g1 = offs[1] - offs[0], g2 = offs[2] - offs[1], g3 = offs[3] - offs[2];
    assert_true(g1 >= 60000 && g1 < 60000 + 25000);
    assert_true(g2 >= 120000 && g2 < 120000 + 25000);
    assert_true(g3 >= 240000 && g3 < 240000 + 25000);
    assert_int_equal(r.out.follow_count, 1); /* one problem, reported once */
    /* It follows again: the next problem waits FollowRetrySec again. */
    r.in.operation = 1;
    r.dev_follows = true;
    s_run(&r, 500, EXPORT);
    assert_false(r.out.follow_problem);
    assert_int_equal(r.s.follow_offs, 0);
}

/* ---- configuration ---------------------------------------------------------------------- */

#define INI_HEAD                                                                                   \
    "[DEVICE]\nId/0/ChargeVoltage=2760\nId/0/DischargeVoltage=2450\n"                              \
    "Id/0/MaxChargeCurrent=3500\nId/0/MaxDischargeCurrent=2600\n"                                  \
    "[CHARGE_CONTROL]\nId/0/TopicPower=tele/meter\n"

static void test_config_keys(void **state)
{
    (void)state;
    char err[1024] = "";
    config_t *cfg = ctl_test_load(INI_HEAD, err, sizeof err);
    assert_non_null(cfg);
    ctl_params_t p;
    assert_int_equal(ctl_params_from_config(cfg, 0, &p, err, sizeof err), 0);
    assert_int_equal(p.follow_timeout_ms, 10000);
    assert_int_equal(p.follow_safe_ms, 10000);
    assert_int_equal(p.follow_retry_ms, 600000);
    config_destroy(&cfg);

    cfg = ctl_test_load(INI_HEAD "Id/0/FollowTimeoutSec=0\nId/0/FollowSafeSec=0\n"
                                 "Id/0/FollowRetrySec=60\n",
                        err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(ctl_params_from_config(cfg, 0, &p, err, sizeof err), 0);
    assert_int_equal(p.follow_timeout_ms, 0);
    assert_int_equal(p.follow_safe_ms, 0);
    assert_int_equal(p.follow_retry_ms, 60000);
    config_destroy(&cfg);

    /* Shorter than the response time: refused by the controller with what is allowed. */
    cfg = ctl_test_load(INI_HEAD "Id/0/FollowTimeoutSec=3\n", err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(ctl_params_from_config(cfg, 0, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "FollowTimeoutSec"));
    assert_non_null(strstr(err, "0 (check off) or 5-600"));
    config_destroy(&cfg);

    /* Out of range: refused by the loader naming the key and the range. */
    const char *bad[] = {INI_HEAD "Id/0/FollowTimeoutSec=601\n", INI_HEAD "Id/0/FollowSafeSec=-1\n",
                         INI_HEAD "Id/0/FollowRetrySec=5\n",
                         INI_HEAD "Id/0/FollowTimeoutSec=ten\n"};
    const char *key[] = {"FollowTimeoutSec", "FollowSafeSec", "FollowRetrySec", "FollowTimeoutSec"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cfg = ctl_test_load(bad[i], err, sizeof err);
        assert_null(cfg);
        assert_non_null(strstr(err, key[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charge_voltage_below_battery),
        cmocka_unit_test(test_configured_charge_voltage_below_battery),
        cmocka_unit_test(test_discharge_end_voltage_above_battery),
        cmocka_unit_test(test_output_off),
        cmocka_unit_test(test_fault),
        cmocka_unit_test(test_derating_cause),
        cmocka_unit_test(test_direction_not_applied),
        cmocka_unit_test(test_unknown_cause),
        cmocka_unit_test(test_idle_with_reverse_flow),
        cmocka_unit_test(test_response_time),
        cmocka_unit_test(test_cv_taper_at_the_limit),
        cmocka_unit_test(test_soc_limit),
        cmocka_unit_test(test_derating_excused),
        cmocka_unit_test(test_write_not_done_yet),
        cmocka_unit_test(test_following_device_never_reported),
        cmocka_unit_test(test_check_off),
        cmocka_unit_test(test_retry_after_the_interval),
        cmocka_unit_test(test_retry_backs_off),
        cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
