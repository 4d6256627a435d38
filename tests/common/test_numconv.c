/*  Tests of numconv: outside numbers that do not fit an integer (1.7e26, NaN, infinities,
    one past a bound) are refused and leave the output alone; those that fit convert
    exactly, at the bounds too, by each of the three rules (whole, truncate, round).
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>

#include <cmocka.h>

#include "numconv.h"

typedef int (*conv_fn)(double, int64_t, int64_t, int64_t *);

static const conv_fn s_all[] = {numconv_whole, numconv_trunc, numconv_round};
#define N_ALL (sizeof s_all / sizeof s_all[0])

static void s_refused(conv_fn f, double v, int64_t min, int64_t max)
{
    int64_t out = 12345;
    if (f(v, min, max, &out) != -1)
        fail_msg("%g accepted for [%lld, %lld]", v, (long long)min, (long long)max);
    assert_int_equal(out, 12345);
}

static void s_accepted(conv_fn f, double v, int64_t min, int64_t max, int64_t want)
{
    int64_t out = 12345;
    if (f(v, min, max, &out) != 0)
        fail_msg("%.17g refused for [%lld, %lld]", v, (long long)min, (long long)max);
    assert_int_equal(out, want);
}

static void test_not_representable(void **state)
{
    (void)state;
    const double bad[] = {1.7e26,
                          -1.7e26,
                          NAN,
                          -NAN,
                          INFINITY,
                          -INFINITY,
                          1e300,
                          -1e300,
                          9223372036854775808.0 /* 2^63 */,
                          -9223372036854777856.0};
    for (size_t f = 0; f < N_ALL; f++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            s_refused(s_all[f], bad[i], INT64_MIN, INT64_MAX);
            s_refused(s_all[f], bad[i], LONG_MIN, LONG_MAX);
            s_refused(s_all[f], bad[i], 0, 65535);
        }
}

static void test_type_limits(void **state)
{
    (void)state;
    /* -2^63 is exact and fits; the largest double below 2^63 fits too */
    for (size_t f = 0; f < N_ALL; f++) {
        s_accepted(s_all[f], -9223372036854775808.0, INT64_MIN, INT64_MAX, INT64_MIN);
        s_accepted(s_all[f], 9223372036854774784.0, INT64_MIN, INT64_MAX,
                   INT64_C(9223372036854774784));
        s_accepted(s_all[f], 2147483647.0, INT32_MIN, INT32_MAX, INT32_MAX);
        s_refused(s_all[f], 2147483648.0, INT32_MIN, INT32_MAX);
        s_accepted(s_all[f], -2147483648.0, INT32_MIN, INT32_MAX, INT32_MIN);
        s_refused(s_all[f], -2147483649.0, INT32_MIN, INT32_MAX);
    }
}

static void test_caller_bounds(void **state)
{
    (void)state;
    for (size_t f = 0; f < N_ALL; f++) {
        s_refused(s_all[f], -1, 0, 63);
        s_accepted(s_all[f], 0, 0, 63, 0);
        s_accepted(s_all[f], 63, 0, 63, 63);
        s_refused(s_all[f], 64, 0, 63);
        s_accepted(s_all[f], -0.0, 0, 63, 0);
    }
}

static void test_rules(void **state)
{
    (void)state;
    /* whole: any fraction is refused */
    s_refused(numconv_whole, 2.5, 0, 100);
    s_refused(numconv_whole, 1e-300, 0, 100);
    /* trunc: toward zero, and the bound applies to the truncated value */
    s_accepted(numconv_trunc, 2.9, 0, 100, 2);
    s_accepted(numconv_trunc, -2.9, -100, 100, -2);
    s_accepted(numconv_trunc, 100.9, 0, 100, 100);
    s_accepted(numconv_trunc, -0.5, 0, 100, 0);
    s_refused(numconv_trunc, 101.0, 0, 100);
    /* round: halves away from zero, and the bound applies to the rounded value */
    s_accepted(numconv_round, 2.5, 0, 100, 3);
    s_accepted(numconv_round, -2.5, -100, 100, -3);
    s_accepted(numconv_round, 2.49, 0, 100, 2);
    s_accepted(numconv_round, 100.49, 0, 100, 100);
    s_refused(numconv_round, 100.5, 0, 100);
    s_refused(numconv_round, -0.5, 0, 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_representable),
        cmocka_unit_test(test_type_limits),
        cmocka_unit_test(test_caller_bounds),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
