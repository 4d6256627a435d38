/*
 * Unit tests for the control lease: take/renew/release, intruders, TTL bounds, names, lapse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lease.h"

#define S 1000000LL

static void test_take_and_intruder(void **state)
{
    (void)state;
    lease_t *l = lease_new(3600 * S);
    assert_int_equal(lease_owner(l, "charge-ctl", 0), LEASE_FREE);
    assert_int_equal(lease_take(l, "charge-ctl", 10 * S, 0), LEASE_OK);
    assert_int_equal(lease_owner(l, "charge-ctl", 1 * S), LEASE_MINE);
    assert_int_equal(lease_owner(l, "bicctl", 1 * S), LEASE_OTHER);
    assert_int_equal(lease_take(l, "bicctl", 10 * S, 2 * S), LEASE_HELD);
    assert_int_equal(lease_renew(l, "bicctl", 10 * S, 2 * S), LEASE_HELD);
    assert_int_equal(lease_release(l, "bicctl", 2 * S), LEASE_HELD);
    assert_string_equal(lease_holder(l, 2 * S), "charge-ctl");
    assert_int_equal(lease_remaining(l, 2 * S), 8 * S);
    /* the holder may take again (idempotent) */
    assert_int_equal(lease_take(l, "charge-ctl", 5 * S, 3 * S), LEASE_OK);
    assert_int_equal(lease_remaining(l, 3 * S), 5 * S);
    lease_destroy(&l);
    assert_null(l);
}

static void test_renew_and_release(void **state)
{
    (void)state;
    lease_t *l = lease_new(60 * S);
    assert_int_equal(lease_renew(l, "a", 10 * S, 0), LEASE_NOT_HOLDER);
    lease_take(l, "a", 10 * S, 0);
    assert_int_equal(lease_renew(l, "a", 10 * S, 9 * S), LEASE_OK);
    char who[LEASE_NAME_MAX + 1];
    assert_false(lease_check_lapse(l, 18 * S, who)); /* renewed: still held at 18 s */
    assert_int_equal(lease_release(l, "a", 18 * S), LEASE_OK);
    assert_null(lease_holder(l, 18 * S));
    /* a released lease does not lapse (no safe state on release) */
    assert_false(lease_check_lapse(l, 100 * S, who));
    assert_true(lease_deadline(l) == INT64_MAX);
    lease_destroy(&l);
}

static void test_lapse_once(void **state)
{
    (void)state;
    lease_t *l = lease_new(60 * S);
    lease_take(l, "charge-ctl", 10 * S, 0);
    char who[LEASE_NAME_MAX + 1] = "";
    assert_int_equal(lease_deadline(l), 10 * S);
    assert_false(lease_check_lapse(l, 10 * S - 1, who));
    assert_true(lease_check_lapse(l, 10 * S, who));
    assert_string_equal(who, "charge-ctl");
    assert_false(lease_check_lapse(l, 11 * S, who));
    /* after a lapse anyone may take it */
    assert_int_equal(lease_take(l, "other", 1 * S, 12 * S), LEASE_OK);
    lease_destroy(&l);
}

static void test_bounds_and_names(void **state)
{
    (void)state;
    lease_t *l = lease_new(60 * S);
    assert_int_equal(lease_take(l, "a", 61 * S, 0), LEASE_BAD_TTL);
    assert_int_equal(lease_take(l, "a", 0, 0), LEASE_BAD_TTL);
    assert_int_equal(lease_take(l, "", 1 * S, 0), LEASE_BAD_NAME);
    assert_int_equal(lease_take(l, NULL, 1 * S, 0), LEASE_BAD_NAME);
    assert_int_equal(lease_take(l, "bad name", 1 * S, 0), LEASE_BAD_NAME);
    assert_int_equal(lease_take(l, "x/y", 1 * S, 0), LEASE_BAD_NAME);
    char longname[40];
    memset(longname, 'a', 33);
    longname[33] = '\0';
    assert_int_equal(lease_take(l, longname, 1 * S, 0), LEASE_BAD_NAME);
    longname[32] = '\0';
    assert_int_equal(lease_take(l, longname, 1 * S, 0), LEASE_OK);
    assert_true(lease_name_valid("Charge_ctl-1.2"));
    assert_null(lease_new(0));
    lease_set_max_ttl(l, 5 * S);
    assert_int_equal(lease_take(l, longname, 6 * S, 0), LEASE_BAD_TTL);
    lease_destroy(&l);
    lease_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_and_intruder),
        cmocka_unit_test(test_renew_and_release),
        cmocka_unit_test(test_lapse_once),
        cmocka_unit_test(test_bounds_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
