/*
 * Unit tests of meter: smart-meter payloads as they arrive on MQTT (plain numbers, Tasmota and
 * Shelly JSON, numeric strings, units, sign inversion) and the ones that must be refused with
 * a reason and never count as a fresh sample.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meter.h"

static double s_ok(const meter_cfg_t *m, const char *payload)
{
    double w = -12345;
    char err[256] = "";
    int rc = meter_parse(m, payload, strlen(payload), &w, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "unexpected rejection of '%s': %s\n", payload, err);
    assert_int_equal(rc, 0);
    return w;
}

static void s_bad(const meter_cfg_t *m, const char *payload, size_t len, const char *why)
{
    double w = 777;
    char err[256] = "";
    assert_int_equal(meter_parse(m, payload, len, &w, err, sizeof err), -1);
    assert_true(w == 777); /* untouched */
    if (!strstr(err, why))
        fprintf(stderr, "reason for '%.*s' was '%s', expected '%s'\n", (int)len,
                payload ? payload : "", err, why);
    assert_non_null(strstr(err, why));
}

static void test_plain_numbers(void **state)
{
    meter_cfg_t m;
    meter_cfg_defaults(&m);
    assert_true(s_ok(&m, "-345") == -345);
    assert_true(s_ok(&m, " 123.4 ") == 123.4); /* the seed ignored floats */
    assert_true(s_ok(&m, "1.2e3") == 1200);
    assert_true(s_ok(&m, "0") == 0);
    assert_true(s_ok(&m, "-0") == 0);
    /* Not NUL-terminated: only len bytes count. */
    double w;
    char err[64];
    assert_int_equal(meter_parse(&m, "42garbage", 2, &w, err, sizeof err), 0);
    assert_true(w == 42);
}

static void test_plain_rejects(void **state)
{
    meter_cfg_t m;
    meter_cfg_defaults(&m);
    s_bad(&m, "", 0, "empty");
    s_bad(&m, NULL, 0, "empty");
    s_bad(&m, "abc", 3, "not a plain number");
    s_bad(&m, "12 W", 4, "not a plain number");
    s_bad(&m, "nan", 3, "not a plain number");
    s_bad(&m, "inf", 3, "not a plain number");
    s_bad(&m, "0x10", 4, "not a plain number");
    s_bad(&m, "{\"power\":5}", 11, "MeterJsonPath");
    s_bad(&m,
          "1\0"
          "2",
          3, "NUL");
    s_bad(&m, "99999", 5, "plausibility");
    static char big[METER_MAX_PAYLOAD + 2];
    memset(big, '1', sizeof big);
    s_bad(&m, big, sizeof big, "too long");
}

static void test_json_paths(void **state)
{
    meter_cfg_t m;
    meter_cfg_defaults(&m);
    snprintf(m.json_path, sizeof m.json_path, "SML.curr_w");
    assert_true(s_ok(&m, "{\"Time\":\"2024-05-01T12:00:00\",\"SML\":{\"total_kwh\":15011.575,"
                         "\"curr_w\":-71}}") == -71);
    snprintf(m.json_path, sizeof m.json_path, "ENERGY.Power");
    assert_true(s_ok(&m, "{\"ENERGY\":{\"Power\":123,\"Voltage\":230}}") == 123);
    snprintf(m.json_path, sizeof m.json_path, "total_act_power");
    assert_true(s_ok(&m, "{\"id\":0,\"total_act_power\":-345.6}") == -345.6);
    snprintf(m.json_path, sizeof m.json_path, "emeters[1].power");
    assert_true(s_ok(&m, "{\"emeters\":[{\"power\":1},{\"power\":\"501.8\"}]}") == 501.8);
    snprintf(m.json_path, sizeof m.json_path, "power");
    assert_true(s_ok(&m, "{\"power\":\"123.4\"}") == 123.4); /* numeric string */
}

static void test_json_rejects(void **state)
{
    meter_cfg_t m;
    meter_cfg_defaults(&m);
    snprintf(m.json_path, sizeof m.json_path, "ENERGY.Power");
    s_bad(&m, "{\"ENERGY\":{\"Power\":", 19, "not valid JSON");
    s_bad(&m, "{\"ENERGY\":{}}", 13, "no number at 'ENERGY.Power'");
    s_bad(&m, "{\"ENERGY\":{\"Power\":\"high\"}}", 27, "no number");
    s_bad(&m, "{\"ENERGY\":{\"Power\":true}}", 25, "no number");
    s_bad(&m, "{\"ENERGY\":{\"Power\":null}}", 25, "no number");
    s_bad(&m, "123", 3, "no number"); /* a plain number is not the configured document */
    s_bad(&m, "{\"ENERGY\":{\"Power\":1e9}}", 24, "plausibility");
}

static void test_units_and_sign(void **state)
{
    meter_cfg_t m;
    meter_cfg_defaults(&m);
    assert_true(meter_unit_scale("W") == 1);
    assert_true(meter_unit_scale("kw") == 1000);
    assert_true(meter_unit_scale("mW") == 0.001);
    assert_true(meter_unit_scale("MW") == 0.001); /* names are case-insensitive */
    assert_true(meter_unit_scale("hp") < 0);
    m.scale = 1000;
    assert_true(s_ok(&m, "1.25") == 1250);
    m.scale = 0.001;
    assert_true(s_ok(&m, "500000") == 500);
    m.scale = 1;
    m.invert = true;
    assert_true(s_ok(&m, "300") == -300); /* a meter that reports export as positive */
    /* Plausibility applies after unit and sign. */
    m.invert = false;
    m.scale = 1000;
    m.max_abs_w = 5000;
    s_bad(&m, "6", 1, "plausibility");
    assert_true(s_ok(&m, "-4.9") == -4900);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_numbers),  cmocka_unit_test(test_plain_rejects),
        cmocka_unit_test(test_json_paths),     cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_units_and_sign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
