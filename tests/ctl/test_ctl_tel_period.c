/*
 * Unit tests of ctl_tel_period.h: a device's telemetry judged by the period its own gateway
 * states. A gateway slower than the controller's file says is not taken for silent between
 * two of its messages; one that stops is, after five of its periods; a gateway that states
 * none, or a period that is not valid, is judged by the file's, or by the spacing measured
 * between its messages where that is longer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "ctl_tel_period.h"

#define FILE_MS 500 /* the controller's [GATEWAY] TelemetryPeriodMs */

static int s_stated(const char *json, char *err, size_t errlen)
{
    cJSON *msg = cJSON_Parse(json);
    assert_non_null(msg);
    err[0] = '\0';
    int p = ctl_tel_period_stated(msg, err, errlen);
    cJSON_Delete(msg);
    return p;
}

/* Telemetry at now_ms after the last one at last_ms counts as silent for a gateway that
 * stated json. */
static bool s_silent(const char *json, int64_t last_ms, int64_t now_ms)
{
    char err[160];
    int period = ctl_tel_period_ms(s_stated(json, err, sizeof err), FILE_MS, 0);
    return now_ms - last_ms > ctl_tel_silence_ms(period);
}

static void test_stated_period(void **state)
{
    (void)state;
    char err[160];
    assert_int_equal(s_stated("{\"dev\":0,\"period_ms\":4000}", err, sizeof err), 4000);
    assert_int_equal(s_stated("{\"dev\":0,\"period_ms\":200}", err, sizeof err), 200);
    assert_int_equal(s_stated("{\"dev\":0,\"period_ms\":60000}", err, sizeof err), 60000);
    /* a gateway from before the key: none stated, no error */
    assert_int_equal(s_stated("{\"dev\":0}", err, sizeof err), 0);
    assert_string_equal(err, "");
    /* not valid: refused, naming the value and what is allowed */
    assert_int_equal(s_stated("{\"period_ms\":199}", err, sizeof err), -1);
    assert_string_equal(err, "period_ms 199 is not a whole number of 200-60000 ms");
    assert_int_equal(s_stated("{\"period_ms\":1000.5}", err, sizeof err), -1);
    assert_non_null(strstr(err, "1000.5"));
    assert_int_equal(s_stated("{\"period_ms\":60001}", err, sizeof err), -1);
    assert_int_equal(s_stated("{\"period_ms\":1e300}", err, sizeof err), -1);
    assert_int_equal(s_stated("{\"period_ms\":\"1000\"}", err, sizeof err), -1);
    assert_string_equal(err, "period_ms is not a number; allowed: a whole number of 200-60000 ms");
    assert_int_equal(s_stated("{\"period_ms\":null}", err, sizeof err), -1);
}

static void test_period_falls_back_to_the_file(void **state)
{
    (void)state;
    assert_int_equal(ctl_tel_period_ms(4000, FILE_MS, 0), 4000);
    assert_int_equal(ctl_tel_period_ms(0, FILE_MS, 0), FILE_MS);  /* none stated */
    assert_int_equal(ctl_tel_period_ms(-1, FILE_MS, 0), FILE_MS); /* not valid */
    /* stated wins over measured; measured only when longer than the file's */
    assert_int_equal(ctl_tel_period_ms(1000, FILE_MS, 4000), 1000);
    assert_int_equal(ctl_tel_period_ms(0, FILE_MS, 4000), 4000);
    assert_int_equal(ctl_tel_period_ms(-1, FILE_MS, 4000), 4000);
    assert_int_equal(ctl_tel_period_ms(0, 4000, 500), 4000);
}

/* A gateway that states no period (one from before the key): the spacing of its messages,
 * once four gaps are known, and one outage among them is not taken for its period. */
static void test_measured_spacing(void **state)
{
    (void)state;
    ctl_tel_spacing_t sp;
    memset(&sp, 0, sizeof sp);
    int64_t t = 100000;
    ctl_tel_spacing_add(&sp, t);
    for (int k = 0; k < 3; k++) {
        t += 4000;
        ctl_tel_spacing_add(&sp, t);
        assert_int_equal(ctl_tel_spacing_ms(&sp), 0); /* too few gaps yet */
    }
    t += 4010;
    ctl_tel_spacing_add(&sp, t);
    assert_int_equal(ctl_tel_spacing_ms(&sp), 4000); /* 4000, 4000, 4000, 4010 */
    assert_int_equal(ctl_tel_silence_ms(ctl_tel_period_ms(0, FILE_MS, ctl_tel_spacing_ms(&sp))),
                     20000);
    /* an outage of 60 s among them: the median stays at the period */
    t += 60000;
    ctl_tel_spacing_add(&sp, t);
    for (int k = 0; k < 3; k++) {
        t += 4000;
        ctl_tel_spacing_add(&sp, t);
    }
    assert_int_equal(ctl_tel_spacing_ms(&sp), 4000);
    /* the last 8 gaps only: a gateway now at 1 s is measured at 1 s after 5 of its gaps */
    for (int k = 0; k < 5; k++) {
        t += 1000;
        ctl_tel_spacing_add(&sp, t);
    }
    assert_int_equal(ctl_tel_spacing_ms(&sp), 1000);
    /* within the periods a gateway may have */
    memset(&sp, 0, sizeof sp);
    for (int k = 0; k < 6; k++)
        ctl_tel_spacing_add(&sp, 1000 + k * 50);
    assert_int_equal(ctl_tel_spacing_ms(&sp), CTL_TEL_PERIOD_MIN_MS);
    memset(&sp, 0, sizeof sp);
    for (int k = 0; k < 6; k++)
        ctl_tel_spacing_add(&sp, 1000 + k * 3600000LL);
    assert_int_equal(ctl_tel_spacing_ms(&sp), CTL_TEL_PERIOD_MAX_MS);
    /* the same time twice (or earlier) is no gap */
    memset(&sp, 0, sizeof sp);
    ctl_tel_spacing_add(&sp, 5000);
    ctl_tel_spacing_add(&sp, 5000);
    ctl_tel_spacing_add(&sp, 4000);
    assert_int_equal(sp.n, 0);
}

static void test_silence_and_stale(void **state)
{
    (void)state;
    assert_int_equal(ctl_tel_silence_ms(200), 3000); /* never before 3 s */
    assert_int_equal(ctl_tel_silence_ms(600), 3000);
    assert_int_equal(ctl_tel_silence_ms(1000), 5000);
    assert_int_equal(ctl_tel_silence_ms(4000), 20000);
    assert_int_equal(ctl_tel_silence_ms(60000), 300000);
    assert_int_equal(ctl_tel_stale_ms(500), 10000); /* never before 10 s */
    assert_int_equal(ctl_tel_stale_ms(4000), 20000);
    /* a device is never stale for the step while its telemetry is not silent */
    for (int p = 200; p <= 60000; p += 100)
        assert_true(ctl_tel_stale_ms(p) >= ctl_tel_silence_ms(p));
}

/* A gateway that sends every 4 s, the controller's file at 0.5 s: between its messages it is
 * not silent; when it stops, it is after 5 of its periods (20 s), not after the file's 3 s.
 * One that states nothing is judged by the file's period and counts as silent at 4 s. */
static void test_slow_gateway_not_silent_one_that_stops_is(void **state)
{
    (void)state;
    const char *slow = "{\"dev\":0,\"period_ms\":4000}";
    int64_t last = 0;
    for (int64_t t = 4000; t <= 60000; t += 4000) {
        assert_false(s_silent(slow, last, t));
        assert_false(s_silent(slow, last, t + 1500)); /* a late message too */
        last = t;
    }
    /* it stops at 60 s */
    assert_false(s_silent(slow, last, last + 20000));
    assert_true(s_silent(slow, last, last + 20001));
    /* a fast gateway that stops is seen as soon as before */
    const char *fast = "{\"dev\":0,\"period_ms\":200}";
    assert_false(s_silent(fast, 0, 3000));
    assert_true(s_silent(fast, 0, 3001));
    /* no period stated: the file's, as before (a 4 s spacing is silence) */
    assert_true(s_silent("{\"dev\":0}", 0, 4000));
    assert_true(s_silent("{\"dev\":0,\"period_ms\":-4000}", 0, 4000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stated_period),
        cmocka_unit_test(test_period_falls_back_to_the_file),
        cmocka_unit_test(test_measured_spacing),
        cmocka_unit_test(test_silence_and_stale),
        cmocka_unit_test(test_slow_gateway_not_silent_one_that_stops_is),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
