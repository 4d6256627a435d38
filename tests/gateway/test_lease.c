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
#define T "0123456789abcdef0123456789abcdef" /* a token */
#define T2 "fedcba9876543210fedcba9876543210"

static void test_take_and_intruder(void **state)
{
    (void)state;
    lease_t *l = lease_new(3600 * S);
    assert_int_equal(lease_owner(l, "charge-ctl", 0), LEASE_FREE);
    assert_int_equal(lease_take(l, "charge-ctl", T, T, 10 * S, 0), LEASE_OK);
    assert_int_equal(lease_owner(l, "charge-ctl", 1 * S), LEASE_MINE);
    assert_int_equal(lease_owner(l, "bicctl", 1 * S), LEASE_OTHER);
    assert_int_equal(lease_take(l, "bicctl", T, T, 10 * S, 2 * S), LEASE_HELD);
    assert_int_equal(lease_renew(l, "bicctl", T, 10 * S, 2 * S), LEASE_HELD);
    assert_int_equal(lease_release(l, "bicctl", T, 2 * S), LEASE_HELD);
    assert_string_equal(lease_holder(l, 2 * S), "charge-ctl");
    assert_int_equal(lease_remaining(l, 2 * S), 8 * S);
    /* the holder may take again (idempotent) */
    assert_int_equal(lease_take(l, "charge-ctl", T, T, 5 * S, 3 * S), LEASE_OK);
    assert_int_equal(lease_remaining(l, 3 * S), 5 * S);
    lease_destroy(&l);
    assert_null(l);
}

static void test_renew_and_release(void **state)
{
    (void)state;
    lease_t *l = lease_new(60 * S);
    assert_int_equal(lease_renew(l, "a", T, 10 * S, 0), LEASE_NOT_HOLDER);
    lease_take(l, "a", T, T, 10 * S, 0);
    assert_int_equal(lease_renew(l, "a", T, 10 * S, 9 * S), LEASE_OK);
    char who[LEASE_NAME_MAX + 1];
    assert_false(lease_check_lapse(l, 18 * S, who)); /* renewed: still held at 18 s */
    assert_int_equal(lease_release(l, "a", T, 18 * S), LEASE_OK);
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
    lease_take(l, "charge-ctl", T, T, 10 * S, 0);
    char who[LEASE_NAME_MAX + 1] = "";
    assert_int_equal(lease_deadline(l), 10 * S);
    assert_false(lease_check_lapse(l, 10 * S - 1, who));
    assert_true(lease_check_lapse(l, 10 * S, who));
    assert_string_equal(who, "charge-ctl");
    assert_false(lease_check_lapse(l, 11 * S, who));
    /* after a lapse anyone may take it */
    assert_int_equal(lease_take(l, "other", T, T, 1 * S, 12 * S), LEASE_OK);
    lease_destroy(&l);
}

static void test_bounds_and_names(void **state)
{
    (void)state;
    lease_t *l = lease_new(60 * S);
    assert_int_equal(lease_take(l, "a", T, T, 61 * S, 0), LEASE_BAD_TTL);
    assert_int_equal(lease_take(l, "a", T, T, 0, 0), LEASE_BAD_TTL);
    assert_int_equal(lease_take(l, "", T, T, 1 * S, 0), LEASE_BAD_NAME);
    assert_int_equal(lease_take(l, NULL, T, T, 1 * S, 0), LEASE_BAD_NAME);
    assert_int_equal(lease_take(l, "bad name", T, T, 1 * S, 0), LEASE_BAD_NAME);
    assert_int_equal(lease_take(l, "x/y", T, T, 1 * S, 0), LEASE_BAD_NAME);
    char longname[40];
    memset(longname, 'a', 33);
    longname[33] = '\0';
    assert_int_equal(lease_take(l, longname, T, T, 1 * S, 0), LEASE_BAD_NAME);
    longname[32] = '\0';
    assert_int_equal(lease_take(l, longname, T, T, 1 * S, 0), LEASE_OK);
    assert_true(lease_name_valid("Charge_ctl-1.2"));
    assert_null(lease_new(0));
    lease_set_max_ttl(l, 5 * S);
    assert_int_equal(lease_take(l, longname, T, T, 6 * S, 0), LEASE_BAD_TTL);
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
    assert_int_equal(lease_take(lease_table_get(t, 0), "A", T, T, 10 * S, 0), LEASE_OK);
    assert_int_equal(lease_take(lease_table_get(t, 1), "B", T, T, 20 * S, 0), LEASE_OK);
    assert_int_equal(lease_take(lease_table_get(t, 1), "A", T, T, 10 * S, 1 * S), LEASE_HELD);
    assert_int_equal(lease_owner(lease_table_get(t, 1), "A", 1 * S), LEASE_OTHER);
    assert_int_equal(lease_owner(lease_table_get(t, 0), "A", 1 * S), LEASE_MINE);
    assert_int_equal(lease_ttl(lease_table_get(t, 1)), 20 * S);
    /* a take of every device is all or none: B holds device 1, so A gets neither */
    int blocked = -1;
    assert_int_equal(lease_table_take_all(t, s_devs(0x7), "A", T, T, 10 * S, 1 * S, &blocked, NULL),
                     LEASE_HELD);
    assert_int_equal(blocked, 1);
    assert_null(lease_holder(lease_table_get(t, 2), 1 * S));
    assert_int_equal(lease_table_take_all(t, s_devs(0x5), "A", T, T, 10 * S, 1 * S, &blocked, NULL),
                     LEASE_OK);
    assert_string_equal(lease_holder(lease_table_get(t, 2), 1 * S), "A");
    assert_int_equal(
        lease_table_take_all(t, s_devs(0x1), "x y", T, T, 10 * S, 1 * S, &blocked, NULL),
        LEASE_BAD_NAME);
    assert_int_equal(lease_table_take_all(t, s_devs(0x1), "A", T, T, 61 * S, 1 * S, &blocked, NULL),
                     LEASE_BAD_TTL);
    /* the max TTL applies to every device */
    lease_table_set_max_ttl(t, 5 * S);
    assert_int_equal(lease_table_max_ttl(t), 5 * S);
    assert_int_equal(lease_take(lease_table_get(t, 9), "C", T, T, 6 * S, 1 * S), LEASE_BAD_TTL);
    lease_table_destroy(&t);
    assert_null(t);
    lease_table_destroy(NULL);
    assert_null(lease_table_new(0));
}

static void test_table_renew_release_every(void **state)
{
    (void)state;
    lease_table_t *t = lease_table_new(60 * S);
    lease_take(lease_table_get(t, 0), "A", T, T, 10 * S, 0);
    lease_take(lease_table_get(t, 3), "A", T, T, 10 * S, 0);
    lease_take(lease_table_get(t, 1), "B", T, T, 10 * S, 0);
    lease_devs_t done;
    int blocked = -1;
    /* renew without a device renews every lease of A, and only those */
    assert_int_equal(lease_table_renew_all(t, "A", T, 30 * S, 5 * S, &done, &blocked), LEASE_OK);
    assert_int_equal(done.w[0], 0x9);
    assert_int_equal(lease_remaining(lease_table_get(t, 0), 5 * S), 30 * S);
    assert_int_equal(lease_remaining(lease_table_get(t, 3), 5 * S), 30 * S);
    assert_int_equal(lease_remaining(lease_table_get(t, 1), 5 * S), 5 * S);
    /* a client without a lease: held by someone else names a device, else not a holder */
    assert_int_equal(lease_table_renew_all(t, "C", T, 10 * S, 5 * S, &done, &blocked), LEASE_HELD);
    assert_true(blocked == 0 || blocked == 1 || blocked == 3);
    assert_int_equal(done.w[0], 0);
    assert_int_equal(lease_table_release_all(t, "C", T, 5 * S, &done, &blocked), LEASE_HELD);
    /* release without a device gives up every lease of A; B keeps device 1 */
    assert_int_equal(lease_table_release_all(t, "A", T, 6 * S, &done, &blocked), LEASE_OK);
    assert_int_equal(done.w[0], 0x9);
    assert_null(lease_holder(lease_table_get(t, 0), 6 * S));
    assert_null(lease_holder(lease_table_get(t, 3), 6 * S));
    assert_string_equal(lease_holder(lease_table_get(t, 1), 6 * S), "B");
    assert_int_equal(lease_table_renew_all(t, "A", T, 10 * S, 6 * S, &done, &blocked), LEASE_HELD);
    assert_int_equal(blocked, 1);
    /* nothing held at all */
    lease_release(lease_table_get(t, 1), "B", T, 7 * S);
    assert_int_equal(lease_table_release_all(t, "A", T, 7 * S, &done, &blocked), LEASE_NOT_HOLDER);
    assert_int_equal(lease_table_renew_all(t, "A", T, 10 * S, 7 * S, &done, &blocked),
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
    lease_take(lease_table_get(t, 0), "A", T, T, 10 * S, 0);
    lease_take(lease_table_get(t, 1), "B", T, T, 4 * S, 0);
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
    lease_take(lease_table_get(t, 7), "C", T, T, 5 * S, 5 * S);
    int seen = 0;
    while (lease_table_check_lapse(t, 20 * S, &dev, who))
        seen |= 1 << dev;
    assert_int_equal(seen, (1 << 0) | (1 << 7));
    assert_true(lease_table_deadline(t) == INT64_MAX);
    lease_table_destroy(&t);
}

/* The holder's name without its token acts on nothing: take, renew, release and the check
 * every other request makes are refused; the token survives renewals and goes with a
 * release or a lapse. */
static void test_token_binds_the_lease(void **state)
{
    (void)state;
    lease_t *l = lease_new(60 * S);
    assert_null(lease_token(l, 0));
    assert_int_equal(lease_check(l, "ctl", NULL, 0), LEASE_NOT_HOLDER);
    /* a free lease is taken with the fresh token whatever the request carried */
    assert_int_equal(lease_take(l, "ctl", T2, T, 10 * S, 0), LEASE_OK);
    assert_string_equal(lease_token(l, 1 * S), T);
    assert_int_equal(lease_check(l, "ctl", T, 1 * S), LEASE_OK);
    assert_int_equal(lease_check(l, "ctl", T2, 1 * S), LEASE_BAD_TOKEN);
    assert_int_equal(lease_check(l, "ctl", NULL, 1 * S), LEASE_BAD_TOKEN);
    assert_int_equal(lease_check(l, "ctl", "", 1 * S), LEASE_BAD_TOKEN);
    assert_int_equal(lease_check(l, "ctl", "0123", 1 * S), LEASE_BAD_TOKEN);
    assert_int_equal(lease_check(l, "other", T, 1 * S), LEASE_HELD);
    assert_int_equal(lease_check(l, NULL, T, 1 * S), LEASE_HELD);
    assert_int_equal(lease_check(l, "", T, 1 * S), LEASE_HELD);
    /* a second instance with the holder's name: no take, renew or release */
    assert_int_equal(lease_take(l, "ctl", NULL, T2, 10 * S, 2 * S), LEASE_BAD_TOKEN);
    assert_int_equal(lease_take(l, "ctl", T2, T2, 10 * S, 2 * S), LEASE_BAD_TOKEN);
    assert_int_equal(lease_renew(l, "ctl", NULL, 50 * S, 2 * S), LEASE_BAD_TOKEN);
    assert_int_equal(lease_renew(l, "ctl", T2, 50 * S, 2 * S), LEASE_BAD_TOKEN);
    assert_int_equal(lease_release(l, "ctl", NULL, 2 * S), LEASE_BAD_TOKEN);
    assert_int_equal(lease_remaining(l, 2 * S), 8 * S);
    assert_string_equal(lease_token(l, 2 * S), T);
    /* the holder with its token takes again (a renewal: the token stays) and renews */
    assert_int_equal(lease_take(l, "ctl", T, T2, 10 * S, 3 * S), LEASE_OK);
    assert_string_equal(lease_token(l, 3 * S), T);
    assert_int_equal(lease_renew(l, "ctl", T, 20 * S, 4 * S), LEASE_OK);
    assert_int_equal(lease_remaining(l, 4 * S), 20 * S);
    assert_int_equal(lease_release(l, "ctl", T, 5 * S), LEASE_OK);
    assert_null(lease_token(l, 5 * S));
    /* released: the old token is worth nothing, a new take gets a new one */
    assert_int_equal(lease_renew(l, "ctl", T, 10 * S, 5 * S), LEASE_NOT_HOLDER);
    assert_int_equal(lease_take(l, "ctl", T, T2, 1 * S, 5 * S), LEASE_OK);
    assert_string_equal(lease_token(l, 5 * S), T2);
    /* lapsed: the same */
    char who[LEASE_NAME_MAX + 1];
    assert_true(lease_check_lapse(l, 6 * S, who));
    assert_null(lease_token(l, 6 * S));
    assert_int_equal(lease_check(l, "ctl", T2, 6 * S), LEASE_NOT_HOLDER);
    /* a fresh token that is not one is refused (the caller's fault, nothing taken) */
    assert_int_equal(lease_take(l, "ctl", NULL, "xyz", 1 * S, 7 * S), LEASE_BAD_TOKEN);
    assert_null(lease_holder(l, 7 * S));
    lease_destroy(&l);
}

static void test_token_syntax(void **state)
{
    (void)state;
    assert_true(lease_token_valid(T));
    assert_false(lease_token_valid(NULL));
    assert_false(lease_token_valid(""));
    assert_false(lease_token_valid("0123456789abcdef0123456789abcde"));   /* 31 */
    assert_false(lease_token_valid("0123456789abcdef0123456789abcdef0")); /* 33 */
    assert_false(lease_token_valid("0123456789ABCDEF0123456789abcdef"));  /* upper case */
    assert_false(lease_token_valid("0123456789abcdeg0123456789abcdef"));
}

/* One token for all of a client's devices: a take that carries it extends to more devices;
 * without it (or with another) the client's own devices are refused, all or none. */
static void test_table_tokens(void **state)
{
    (void)state;
    lease_table_t *t = lease_table_new(60 * S);
    char got[LEASE_TOKEN_LEN + 1] = "";
    int blocked = -1;
    lease_devs_t done;
    assert_int_equal(lease_table_take_all(t, s_devs(0x1), "A", NULL, T, 10 * S, 0, &blocked, got),
                     LEASE_OK);
    assert_string_equal(got, T);
    /* device 1 with A's token: the same token */
    assert_int_equal(lease_table_take_all(t, s_devs(0x2), "A", T, T2, 10 * S, 0, &blocked, got),
                     LEASE_OK);
    assert_string_equal(got, T);
    assert_string_equal(lease_token(lease_table_get(t, 1), 0), T);
    /* A's name without the token: nothing, not even the free device 2 */
    assert_int_equal(lease_table_take_all(t, s_devs(0x7), "A", NULL, T2, 10 * S, 0, &blocked, got),
                     LEASE_BAD_TOKEN);
    assert_int_equal(blocked, 0);
    assert_null(lease_holder(lease_table_get(t, 2), 0));
    assert_int_equal(lease_table_renew_all(t, "A", T2, 10 * S, 1 * S, &done, &blocked),
                     LEASE_BAD_TOKEN);
    assert_int_equal(done.w[0], 0);
    assert_int_equal(lease_table_release_all(t, "A", NULL, 1 * S, &done, &blocked),
                     LEASE_BAD_TOKEN);
    assert_string_equal(lease_holder(lease_table_get(t, 0), 1 * S), "A");
    /* a free device alone, with a stale token: a fresh one */
    assert_int_equal(lease_table_take_all(t, s_devs(0x8), "A", T2,
                                          "00000000000000000000000000000000", 10 * S, 1 * S,
                                          &blocked, got),
                     LEASE_OK);
    assert_string_equal(got, "00000000000000000000000000000000");
    /* renew and release every device act on the devices of that token only */
    assert_int_equal(lease_table_renew_all(t, "A", T, 30 * S, 2 * S, &done, &blocked), LEASE_OK);
    assert_int_equal(done.w[0], 0x3);
    assert_int_equal(lease_table_release_all(t, "A", T, 3 * S, &done, &blocked), LEASE_OK);
    assert_int_equal(done.w[0], 0x3);
    assert_string_equal(lease_holder(lease_table_get(t, 3), 3 * S), "A");
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
        cmocka_unit_test(test_token_binds_the_lease),
        cmocka_unit_test(test_token_syntax),
        cmocka_unit_test(test_table_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
