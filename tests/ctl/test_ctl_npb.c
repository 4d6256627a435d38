/*
 * Unit tests of the controller driving an NPB charger (device 64-67): [CHARGE_CONTROL] Id/67
 * accepted with its limits from [NPB] Id/3, refused without them and past 67; the step never
 * asks it to discharge, goes idle rather than import below its minimum current, and retunes
 * it only for a change of at least CTL_NPB_RETUNE_PCT of its maximum.
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
#include "ctl_step.h"
#include "ctl_test_util.h"

#define NPB_3                                                                                      \
    "[NPB]\n"                                                                                      \
    "Id/3/Type=NPB-1200-24\n"                                                                      \
    "Id/3/ChargeVoltage=2880\n"                                                                    \
    "Id/3/MaxChargeCurrent=2000\n"

static void test_npb_params_from_npb_keys(void **state)
{
    (void)state;
    char err[2048] = "";
    config_t *cfg = ctl_test_load(NPB_3 "[CHARGE_CONTROL]\n"
                                        "Id/67/TopicPower=tele/meter\n"
                                        "Id/67/MaxDischargePower=-1600\n",
                                  err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    assert_non_null(cfg);
    int ids[CONFIG_MAX_IDS];
    assert_int_equal(config_ids(cfg, "CHARGE_CONTROL", ids, CONFIG_MAX_IDS), 1);
    assert_int_equal(ids[0], 67);
    ctl_params_t p;
    assert_int_equal(ctl_params_from_config(cfg, 67, &p, err, sizeof err), 0);
    assert_true(p.charge_only);
    assert_int_equal(p.charge_voltage_cv, 2880);
    assert_int_equal(p.max_charge_ca, 2000);
    assert_int_equal(p.max_discharge_ca, 0);
    for (int h = 0; h < 24; h++)
        assert_int_equal(p.hours[h].max_discharge_w, 0); /* whatever MaxDischargePower says */
    assert_int_equal(p.min_current_ca, 400);             /* 20 % until the gateway says */
    assert_int_equal(p.retune_min_ca, 100);              /* 5 % of 20 A */
    ctl_params_set_min_current(&p, 720);                 /* the model's, from the gateway */
    assert_int_equal(p.min_current_ca, 720);
    assert_int_equal(p.idle_enter_ca, 720);
    assert_int_equal(p.idle_exit_ca, 900);
    config_destroy(&cfg);
}

static void test_npb_without_keys_refused(void **state)
{
    (void)state;
    char err[2048] = "";
    config_t *cfg = ctl_test_load(NPB_3 "[CHARGE_CONTROL]\n"
                                        "Id/66/TopicPower=tele/meter\n",
                                  err, sizeof err);
    assert_non_null(cfg);
    ctl_params_t p;
    assert_int_equal(ctl_params_from_config(cfg, 66, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "[NPB] Id/2/ChargeVoltage"));
    config_destroy(&cfg);

    cfg = ctl_test_load(NPB_3 "[CHARGE_CONTROL]\n"
                              "Id/68/TopicPower=tele/meter\n",
                        err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "Id/68"));
    assert_non_null(strstr(err, "64-67"));
}

typedef struct {
    ctl_params_t p;
    ctl_state_t s;
    ctl_input_t in;
    ctl_output_t out;
    int64_t t;
} rig_t;

static void s_rig(rig_t *r)
{
    memset(r, 0, sizeof *r);
    ctl_test_params(&r->p);
    r->p.charge_only = true;
    r->p.max_charge_ca = 2000;
    r->p.max_discharge_ca = 0;
    for (int h = 0; h < 24; h++)
        r->p.hours[h].max_discharge_w = 0;
    ctl_params_set_min_current(&r->p, 720);
    r->t = 1000000;
    ctl_state_init(&r->s, r->t);
    ctl_test_input(&r->in, r->t);
}

/* A meter sample of a household drawing load_w (negative: exporting) with the charger
 * doing what it was last told; then the charger follows the new command. */
static void s_sample(rig_t *r, double load_w)
{
    double batt_w = r->s.mode == CTL_MODE_CHARGE ? r->in.dc_v * r->in.dc_a / r->p.efficiency : 0;
    r->t += 1000;
    r->in.now_ms = r->in.telemetry_ms = r->in.meter_arrival_ms = r->t;
    r->in.meter_valid = true;
    r->in.meter_w = load_w + batt_w;
    r->in.meter_seq++;
    ctl_step(&r->p, &r->s, &r->in, &r->out);
    assert_int_not_equal(r->out.mode, CTL_MODE_DISCHARGE);
    r->t += 1500;
    r->in.operation = r->s.mode == CTL_MODE_CHARGE;
    r->in.iout_ca = r->s.mode == CTL_MODE_CHARGE ? r->s.current_ca : r->in.iout_ca;
    r->in.dc_a = r->s.mode == CTL_MODE_CHARGE ? r->s.current_ca / 100.0 : 0;
    r->in.now_ms = r->in.telemetry_ms = r->t;
    ctl_step(&r->p, &r->s, &r->in, &r->out);
    assert_int_not_equal(r->out.mode, CTL_MODE_DISCHARGE);
}

/* Twelve samples of a household drawing load_w; the mode the charger ends in. */
static ctl_mode_t s_run(rig_t *r, double load_w)
{
    for (int i = 0; i < 12; i++)
        s_sample(r, load_w);
    return r->s.mode;
}

static void test_npb_charges_from_surplus_only(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    /* 450 W exported: charging at about that, within its limits */
    assert_int_equal(s_run(&r, -450), CTL_MODE_CHARGE);
    assert_in_range(r.s.current_ca, 1400, 1700);
    /* 1500 W exported: at its 20 A maximum, never beyond */
    assert_int_equal(s_run(&r, -1500), CTL_MODE_CHARGE);
    assert_int_equal(r.s.current_ca, 2000);
    /* import: idle, never discharge (s_sample asserts at every step) */
    assert_int_equal(s_run(&r, 600), CTL_MODE_IDLE);
    /* a surplus below the minimum current (7.2 A, about 200 W): stays idle */
    assert_int_equal(s_run(&r, -150), CTL_MODE_IDLE);
}

static void test_npb_retuned_only_for_a_worthwhile_change(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    assert_int_equal(s_run(&r, -450), CTL_MODE_CHARGE);
    int held = r.s.current_ca;
    /* the surplus wanders by +-20 W (under 1 A at 26 V): the current is kept */
    for (int i = 0; i < 20; i++) {
        s_sample(&r, i % 2 ? -470 : -430);
        assert_int_equal(r.s.current_ca, held);
    }
    /* 150 W more surplus (over 5 A): retuned */
    for (int i = 0; i < 6; i++)
        s_sample(&r, -600);
    assert_true(r.s.current_ca >= held + 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npb_params_from_npb_keys),
        cmocka_unit_test(test_npb_without_keys_refused),
        cmocka_unit_test(test_npb_charges_from_surplus_only),
        cmocka_unit_test(test_npb_retuned_only_for_a_worthwhile_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
