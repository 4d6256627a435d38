/*
 * test_winter: the Winter controller's rules (charge-ctl/winter.c): the seed's thresholds
 * (charge at or below CapMin up to CapMax + 10, discharge above CapMax + 20 down to
 * CapMax + 10, nothing at or below TempMin), its waits, and its bugs fixed: temperature and
 * faults stop a running charge at once, the SOC is read only at rest.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "winter.h"

#define WINTER_START_MS 120000 /* the seed's first wait, StartDelaySec's default */

static const winter_params_t P = {.temp_min_c = 10,
                                  .power_w = 200,
                                  .cap_min_pct = 20,
                                  .cap_max_pct = 50,
                                  .start_ms = WINTER_START_MS};

/* The device at rest (no current) at SOC, 20 degC. */
static winter_input_t s_in(int64_t now, double soc, double amps)
{
    return (winter_input_t){.now_ms = now,
                            .online = true,
                            .temp_c = 20,
                            .dc_a = amps,
                            .soc_valid = true,
                            .soc_pct = soc};
}

static winter_output_t s_step(winter_state_t *s, winter_input_t in)
{
    winter_output_t out;
    winter_step(&P, s, &in, &out);
    return out;
}

static void test_start_wait_then_charge_until_band(void **state)
{
    winter_state_t s;
    winter_init(&s);
    int64_t t = 1000;
    /* The seed's first wait after start. */
    assert_int_equal(s_step(&s, s_in(t, 15, 0)).cmd, WINTER_OUT_IDLE);
    assert_int_equal(s_step(&s, s_in(t + WINTER_START_MS - 1, 15, 0)).cmd, WINTER_OUT_IDLE);
    winter_output_t o = s_step(&s, s_in(t + WINTER_START_MS, 15, 0));
    assert_int_equal(o.cmd, WINTER_OUT_CHARGE);
    assert_true(o.power_w == 200);
    t += WINTER_START_MS;
    /* Charging (current flows): the voltage under load is not read as SOC; every
     * WINTER_CHECK_MS a rest. */
    o = s_step(&s, s_in(t + 1000, 90, 7.5));
    assert_int_equal(o.cmd, WINTER_OUT_CHARGE);
    o = s_step(&s, s_in(t + WINTER_CHECK_MS, 90, 7.5));
    assert_int_equal(o.cmd, WINTER_OUT_IDLE);
    assert_string_equal(o.reason, "resting to read the SOC");
    int64_t r = t + WINTER_CHECK_MS + 1000;
    assert_int_equal(s_step(&s, s_in(r, 40, 0)).cmd, WINTER_OUT_IDLE);
    /* At rest long enough: 40 % is below CapMax + 10: charging goes on. */
    assert_int_equal(s_step(&s, s_in(r + WINTER_REST_MS, 40, 0)).cmd, WINTER_OUT_CHARGE);
    /* Next rest: 60 % = CapMax + 10: stop, wait an hour. */
    r += WINTER_REST_MS + WINTER_CHECK_MS;
    assert_int_equal(s_step(&s, s_in(r, 60, 7.5)).cmd, WINTER_OUT_IDLE);
    assert_int_equal(s_step(&s, s_in(r + 1000, 60, 0)).cmd, WINTER_OUT_IDLE);
    o = s_step(&s, s_in(r + 1000 + WINTER_REST_MS, 60, 0));
    assert_int_equal(o.cmd, WINTER_OUT_IDLE);
    assert_string_equal(o.reason, "charged into the band");
    assert_int_equal(s.phase, WINTER_WAIT);
    /* Within the band after the hour: still nothing. */
    o = s_step(&s, s_in(r + 2000 + WINTER_REST_MS + WINTER_IDLE_MS, 55, 0));
    assert_string_equal(o.reason, "within the band");
}

static void test_discharge_above_band(void **state)
{
    winter_state_t s;
    winter_init(&s);
    int64_t t = 1000;
    s_step(&s, s_in(t, 70, 0));
    /* 70 % = CapMax + 20 is not above it: nothing. */
    assert_string_equal(s_step(&s, s_in(t + WINTER_START_MS, 70, 0)).reason, "within the band");
    winter_init(&s);
    s_step(&s, s_in(t, 71, 0));
    winter_output_t o = s_step(&s, s_in(t + WINTER_START_MS, 71, 0));
    assert_int_equal(o.cmd, WINTER_OUT_DISCHARGE);
    t += WINTER_START_MS + WINTER_CHECK_MS;
    s_step(&s, s_in(t, 71, -7.5));
    s_step(&s, s_in(t + 1000, 60, 0));
    o = s_step(&s, s_in(t + 1000 + WINTER_REST_MS, 60, 0));
    assert_string_equal(o.reason, "discharged into the band");
}

static void test_cold_and_faults_stop_a_running_charge(void **state)
{
    winter_state_t s;
    winter_init(&s);
    int64_t t = 1000;
    s_step(&s, s_in(t, 10, 0));
    t += WINTER_START_MS;
    assert_int_equal(s_step(&s, s_in(t, 10, 0)).cmd, WINTER_OUT_CHARGE);
    /* The seed never looked again while charging; here the next step stops. */
    winter_input_t in = s_in(t + 1000, 10, 7.5);
    in.temp_c = 10; /* at TempMin */
    winter_output_t o = s_step(&s, in);
    assert_int_equal(o.cmd, WINTER_OUT_IDLE);
    assert_string_equal(o.reason, "at or below TempMin");
    /* Warm again: waits WINTER_COLD_MS before the next check. */
    assert_int_equal(s_step(&s, s_in(t + 2000 + WINTER_REST_MS, 10, 0)).cmd, WINTER_OUT_IDLE);
    assert_int_equal(s_step(&s, s_in(t + 1000 + WINTER_COLD_MS, 10, 0)).cmd, WINTER_OUT_CHARGE);
    /* A fault, and an unknown temperature, stop it too. */
    in = s_in(t + 2000 + WINTER_COLD_MS, 10, 7.5);
    in.fault = true;
    assert_string_equal(s_step(&s, in).reason, "device fault");
    /* A temperature not known yet holds nothing back once it is known. */
    winter_init(&s);
    in = s_in(t, 10, 0);
    in.temp_c = NAN;
    assert_string_equal(s_step(&s, in).reason, "no temperature");
    assert_int_equal(s_step(&s, s_in(t + WINTER_START_MS, 10, 0)).cmd, WINTER_OUT_CHARGE);
}

static void test_offline_and_no_soc(void **state)
{
    winter_state_t s;
    winter_init(&s);
    int64_t t = 1000;
    s_step(&s, s_in(t, 10, 0));
    winter_input_t in = s_in(t + WINTER_START_MS, 10, 0);
    in.soc_valid = false;
    assert_string_equal(s_step(&s, in).reason, "waiting for a SOC at rest");
    in.online = false;
    assert_string_equal(s_step(&s, in).reason, "device offline");
    /* Current flowing (someone else drives the device): no reading, no decision. */
    winter_init(&s);
    s_step(&s, s_in(t, 10, 3));
    assert_string_equal(s_step(&s, s_in(t + WINTER_START_MS, 10, 3)).reason,
                        "waiting for a SOC at rest");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_wait_then_charge_until_band),
        cmocka_unit_test(test_discharge_above_band),
        cmocka_unit_test(test_cold_and_faults_stop_a_running_charge),
        cmocka_unit_test(test_offline_and_no_soc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
