/*
 * Unit tests for the control lease: take/renew/release, intruders, TTL bounds, names, lapse;
 * and the table of one lease per device: per-device holders, take of every device (all or
 * none), renew and release of every lease a client holds, expiry per device.
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

/* The set of the devices whose bit is set in bits (bit n = device n). */
static const lease_devs_t *s_devs(uint64_t bits)
{
    static lease_devs_t s;
    memset(&s, 0, sizeof s);
    s.w[0] = bits;
    return &s;
}

static void test_table_per_device(void **state)
{
    (void)state;
    lease_table_t *t = lease_table_new(60 * S);
    assert_null(lease_table_get(t, -1));
    assert_null(lease_table_get(t, LEASE_TABLE_SIZE)); /* devices 0-67 */
    /* two controllers, one device each */
    assert_int_equal(lease_take(lease_table_get(t, 0), "A", 10 * S, 0), LEASE_OK);
    assert_int_equal(lease_take(lease_table_get(t, 1), "B", 20 * S, 0), LEASE_OK);
    assert_int_equal(lease_take(lease_table_get(t, 1), "A", 10 * S, 1 * S), LEASE_HELD);
    assert_int_equal(lease_owner(lease_table_get(t, 1), "A", 1 * S), LEASE_OTHER);
    assert_int_equal(lease_owner(lease_table_get(t, 0), "A", 1 * S), LEASE_MINE);
    assert_int_equal(lease_ttl(lease_table_get(t, 1)), 20 * S);
    /* a take of every device is all or none: B holds device 1, so A gets neither */
    int blocked = -1;
    assert_int_equal(lease_table_take_all(t, s_devs(0x7), "A", 10 * S, 1 * S, &blocked),
                     LEASE_HELD);
    assert_int_equal(blocked, 1);
    assert_null(lease_holder(lease_table_get(t, 2), 1 * S));
    assert_int_equal(lease_table_take_all(t, s_devs(0x5), "A", 10 * S, 1 * S, &blocked), LEASE_OK);
    assert_string_equal(lease_holder(lease_table_get(t, 2), 1 * S), "A");
    assert_int_equal(lease_table_take_all(t, s_devs(0x1), "x y", 10 * S, 1 * S, &blocked),
                     LEASE_BAD_NAME);
    assert_int_equal(lease_table_take_all(t, s_devs(0x1), "A", 61 * S, 1 * S, &blocked),
                     LEASE_BAD_TTL);
    /* the max TTL applies to every device */
    lease_table_set_max_ttl(t, 5 * S);
    assert_int_equal(lease_table_max_ttl(t), 5 * S);
    assert_int_equal(lease_take(lease_table_get(t, 9), "C", 6 * S, 1 * S), LEASE_BAD_TTL);
    lease_table_destroy(&t);
    assert_null(t);
    lease_table_destroy(NULL);
    assert_null(lease_table_new(0));
}

static void test_table_renew_release_every(void **state)
{
    (void)state;
    lease_table_t *t = lease_table_new(60 * S);
    lease_take(lease_table_get(t, 0), "A", 10 * S, 0);
    lease_take(lease_table_get(t, 3), "A", 10 * S, 0);
    lease_take(lease_table_get(t, 1), "B", 10 * S, 0);
    lease_devs_t done;
    int blocked = -1;
    /* renew without a device renews every lease of A, and only those */
    assert_int_equal(lease_table_renew_all(t, "A", 30 * S, 5 * S, &done, &blocked), LEASE_OK);
    assert_int_equal(done.w[0], 0x9);
    assert_int_equal(lease_remaining(lease_table_get(t, 0), 5 * S), 30 * S);
    assert_int_equal(lease_remaining(lease_table_get(t, 3), 5 * S), 30 * S);
    assert_int_equal(lease_remaining(lease_table_get(t, 1), 5 * S), 5 * S);
    /* a client without a lease: held by someone else names a device, else not a holder */
    assert_int_equal(lease_table_renew_all(t, "C", 10 * S, 5 * S, &done, &blocked), LEASE_HELD);
    assert_true(blocked == 0 || blocked == 1 || blocked == 3);
    assert_int_equal(done.w[0], 0);
    assert_int_equal(lease_table_release_all(t, "C", 5 * S, &done, &blocked), LEASE_HELD);
    /* release without a device gives up every lease of A; B keeps device 1 */
    assert_int_equal(lease_table_release_all(t, "A", 6 * S, &done, &blocked), LEASE_OK);
    assert_int_equal(done.w[0], 0x9);
    assert_null(lease_holder(lease_table_get(t, 0), 6 * S));
    assert_null(lease_holder(lease_table_get(t, 3), 6 * S));
    assert_string_equal(lease_holder(lease_table_get(t, 1), 6 * S), "B");
    assert_int_equal(lease_table_renew_all(t, "A", 10 * S, 6 * S, &done, &blocked), LEASE_HELD);
    assert_int_equal(blocked, 1);
    /* nothing held at all */
    lease_release(lease_table_get(t, 1), "B", 7 * S);
    assert_int_equal(lease_table_release_all(t, "A", 7 * S, &done, &blocked), LEASE_NOT_HOLDER);
    assert_int_equal(lease_table_renew_all(t, "A", 10 * S, 7 * S, &done, &blocked),
                     LEASE_NOT_HOLDER);
    lease_table_destroy(&t);
}

static void test_table_expiry_per_device(void **state)
{
    (void)state;
    lease_table_t *t = lease_table_new(60 * S);
    char who[LEASE_NAME_MAX + 1] = "";
    int dev = -1;
    assert_true(lease_table_deadline(t) == INT64_MAX);
    assert_false(lease_table_check_lapse(t, 100 * S, &dev, who));
    lease_take(lease_table_get(t, 0), "A", 10 * S, 0);
    lease_take(lease_table_get(t, 1), "B", 4 * S, 0);
    assert_int_equal(lease_table_deadline(t), 4 * S);
    assert_false(lease_table_check_lapse(t, 4 * S - 1, &dev, who));
    /* B stops renewing: only device 1 lapses, A keeps device 0 */
    assert_true(lease_table_check_lapse(t, 5 * S, &dev, who));
    assert_int_equal(dev, 1);
    assert_string_equal(who, "B");
    assert_false(lease_table_check_lapse(t, 5 * S, &dev, who));
    assert_string_equal(lease_holder(lease_table_get(t, 0), 5 * S), "A");
    assert_int_equal(lease_table_deadline(t), 10 * S);
    /* both lapse at once: each is reported once */
    lease_take(lease_table_get(t, 7), "C", 5 * S, 5 * S);
    int seen = 0;
    while (lease_table_check_lapse(t, 20 * S, &dev, who))
        seen |= 1 << dev;
    assert_int_equal(seen, (1 << 0) | (1 << 7));
    assert_true(lease_table_deadline(t) == INT64_MAX);
    lease_table_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_and_intruder),
        cmocka_unit_test(test_renew_and_release),
        cmocka_unit_test(test_lapse_once),
        cmocka_unit_test(test_bounds_and_names),
        cmocka_unit_test(test_table_per_device),
        cmocka_unit_test(test_table_renew_release_every),
        cmocka_unit_test(test_table_expiry_per_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
