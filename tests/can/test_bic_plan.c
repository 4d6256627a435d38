/* bic_plan: the registers, order and values of every setpoint mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bic_plan.h"
#include "bic_proto.h"

static const bic_plan_args_t ARGS = {
    .current_raw = 1234, .charge_min_raw = 176, .discharge_min_raw = 150, .keep_other = false};

static void s_expect(const bic_plan_write_t *w, int n, const bic_plan_write_t *want, int want_n)
{
    assert_int_equal(n, want_n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(w[i].cmd, want[i].cmd);
        assert_int_equal(w[i].raw, want[i].raw);
    }
}

static void test_charge_sets_current_then_direction_then_output_then_other_minimum(void **state)
{
    (void)state;
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(BIC_PLAN_CHARGE, &ARGS, w);
    const bic_plan_write_t want[] = {{BIC_CMD_IOUT_SET, 1234},
                                     {BIC_CMD_DIRECTION_CTRL, 0},
                                     {BIC_CMD_OPERATION, 1},
                                     {BIC_CMD_REVERSE_IOUT_SET, 150}};
    s_expect(w, n, want, 4);
}

static void test_discharge_mirrors_charge(void **state)
{
    (void)state;
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(BIC_PLAN_DISCHARGE, &ARGS, w);
    const bic_plan_write_t want[] = {{BIC_CMD_REVERSE_IOUT_SET, 1234},
                                     {BIC_CMD_DIRECTION_CTRL, 1},
                                     {BIC_CMD_OPERATION, 1},
                                     {BIC_CMD_IOUT_SET, 176}};
    s_expect(w, n, want, 4);
}

static void test_keep_other_leaves_the_other_current_alone(void **state)
{
    (void)state;
    bic_plan_args_t a = ARGS;
    a.keep_other = true;
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(BIC_PLAN_DISCHARGE, &a, w);
    const bic_plan_write_t want[] = {
        {BIC_CMD_REVERSE_IOUT_SET, 1234}, {BIC_CMD_DIRECTION_CTRL, 1}, {BIC_CMD_OPERATION, 1}};
    s_expect(w, n, want, 3);
}

static void test_idle_off_lowers_both_currents_before_the_output_goes_off(void **state)
{
    (void)state;
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(BIC_PLAN_IDLE_OFF, &ARGS, w);
    const bic_plan_write_t want[] = {
        {BIC_CMD_IOUT_SET, 176}, {BIC_CMD_REVERSE_IOUT_SET, 150}, {BIC_CMD_OPERATION, 0}};
    s_expect(w, n, want, 3);
}

static void test_idle_min_holds_a_trickle_in_charge_direction(void **state)
{
    (void)state;
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(BIC_PLAN_IDLE_MIN, &ARGS, w);
    const bic_plan_write_t want[] = {{BIC_CMD_REVERSE_IOUT_SET, 150},
                                     {BIC_CMD_IOUT_SET, 176},
                                     {BIC_CMD_DIRECTION_CTRL, 0},
                                     {BIC_CMD_OPERATION, 1}};
    s_expect(w, n, want, 4);
}

static void test_off_touches_only_the_output(void **state)
{
    (void)state;
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(BIC_PLAN_OFF, &ARGS, w);
    const bic_plan_write_t want[] = {{BIC_CMD_OPERATION, 0}};
    s_expect(w, n, want, 1);
}

static void test_stop_is_idle_off_then_the_charge_direction_with_the_output_off(void **state)
{
    (void)state;
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(BIC_PLAN_STOP, &ARGS, w);
    const bic_plan_write_t want[] = {{BIC_CMD_IOUT_SET, 176},
                                     {BIC_CMD_REVERSE_IOUT_SET, 150},
                                     {BIC_CMD_OPERATION, 0},
                                     {BIC_CMD_DIRECTION_CTRL, 0}};
    s_expect(w, n, want, 4);
}

static void test_standby_charge_switches_off_before_the_current_is_raised(void **state)
{
    (void)state;
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(BIC_PLAN_STANDBY_CHARGE, &ARGS, w);
    const bic_plan_write_t want[] = {{BIC_CMD_OPERATION, 0},
                                     {BIC_CMD_IOUT_SET, 1234},
                                     {BIC_CMD_REVERSE_IOUT_SET, 150},
                                     {BIC_CMD_DIRECTION_CTRL, 0}};
    s_expect(w, n, want, 4);
}

static void test_standby_discharge_mirrors_standby_charge(void **state)
{
    (void)state;
    bic_plan_args_t a = ARGS;
    a.keep_other = true; /* a standby unit's other direction goes to its minimum regardless */
    bic_plan_write_t w[BIC_PLAN_MAX];
    int n = bic_setpoint_plan(BIC_PLAN_STANDBY_DISCHARGE, &a, w);
    const bic_plan_write_t want[] = {{BIC_CMD_OPERATION, 0},
                                     {BIC_CMD_REVERSE_IOUT_SET, 1234},
                                     {BIC_CMD_IOUT_SET, 176},
                                     {BIC_CMD_DIRECTION_CTRL, 1}};
    s_expect(w, n, want, 4);
}

static void test_unknown_mode_is_refused(void **state)
{
    (void)state;
    bic_plan_write_t w[BIC_PLAN_MAX];
    assert_int_equal(bic_setpoint_plan((bic_plan_mode_t)99, &ARGS, w), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charge_sets_current_then_direction_then_output_then_other_minimum),
        cmocka_unit_test(test_discharge_mirrors_charge),
        cmocka_unit_test(test_keep_other_leaves_the_other_current_alone),
        cmocka_unit_test(test_idle_off_lowers_both_currents_before_the_output_goes_off),
        cmocka_unit_test(test_idle_min_holds_a_trickle_in_charge_direction),
        cmocka_unit_test(test_off_touches_only_the_output),
        cmocka_unit_test(test_stop_is_idle_off_then_the_charge_direction_with_the_output_off),
        cmocka_unit_test(test_standby_charge_switches_off_before_the_current_is_raised),
        cmocka_unit_test(test_standby_discharge_mirrors_standby_charge),
        cmocka_unit_test(test_unknown_mode_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
