/*
 * Unit tests for the EEPROM policy (write budget, pending values, counters, EEP_OFF) and the
 * persisted counter file (atomic save, load across a restart, failures keep the counts), and
 * the daily budget's token bucket (refill, depth, spacing, deferral, restart, clock jumps).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eeprom_policy.h"
#include "gw_state.h"

#define S 1000000LL
#define VOUT 0x0020
#define IOUT 0x0030
#define REV_IOUT 0x0130
#define OPERATION 0x0000
#define DIRECTION 0x0100

static void test_first_write_allowed_then_budget(void **state)
{
    (void)state;
    eeprom_policy_t *e = eeprom_policy_new(79 * S);
    assert_int_equal(eeprom_policy_request(e, IOUT, 1000, 10 * S), EEPROM_WRITE_NOW);
    eeprom_policy_written(e, IOUT, 10 * S);
    assert_int_equal(eeprom_policy_count(e, eeprom_reg_index(IOUT)), 1);
    /* 30 s later: inside the 79 s interval, deferred and kept as pending */
    assert_int_equal(eeprom_policy_request(e, IOUT, 1100, 40 * S), EEPROM_DEFER);
    uint32_t raw = 0;
    assert_true(eeprom_policy_pending(e, IOUT, &raw));
    assert_int_equal(raw, 1100);
    /* a newer value replaces the pending one */
    assert_int_equal(eeprom_policy_request(e, IOUT, 1200, 50 * S), EEPROM_DEFER);
    assert_true(eeprom_policy_pending(e, IOUT, &raw));
    assert_int_equal(raw, 1200);
    uint16_t cmd;
    assert_false(eeprom_policy_due(e, 88 * S, &cmd, &raw));
    assert_int_equal(eeprom_policy_deadline(e), 89 * S);
    assert_true(eeprom_policy_due(e, 89 * S, &cmd, &raw));
    assert_int_equal(cmd, IOUT);
    assert_int_equal(raw, 1200);
    eeprom_policy_written(e, IOUT, 89 * S);
    assert_false(eeprom_policy_pending(e, IOUT, NULL));
    assert_int_equal(eeprom_policy_count(e, eeprom_reg_index(IOUT)), 2);
    assert_true(eeprom_policy_deadline(e) == INT64_MAX);
    eeprom_policy_destroy(&e);
    assert_null(e);
}

static void test_interval_is_per_device_not_per_register(void **state)
{
    (void)state;
    eeprom_policy_t *e = eeprom_policy_new(79 * S);
    eeprom_policy_written(e, IOUT, 0);
    /* another setpoint register shares the device's budget */
    assert_int_equal(eeprom_policy_request(e, VOUT, 2760, 1 * S), EEPROM_DEFER);
    eeprom_policy_destroy(&e);
}

static void test_operation_never_deferred_but_counted(void **state)
{
    (void)state;
    eeprom_policy_t *e = eeprom_policy_new(79 * S);
    eeprom_policy_written(e, IOUT, 0);
    /* turning the output off must not wait for the budget */
    assert_int_equal(eeprom_policy_request(e, OPERATION, 0, 1 * S), EEPROM_WRITE_NOW);
    eeprom_policy_written(e, OPERATION, 1 * S);
    assert_int_equal(eeprom_policy_count(e, eeprom_reg_index(OPERATION)), 1);
    assert_int_equal(eeprom_policy_total(e), 2);
    /* DIRECTION_CTRL is volatile: neither budgeted nor counted */
    assert_int_equal(eeprom_policy_request(e, DIRECTION, 1, 2 * S), EEPROM_WRITE_NOW);
    eeprom_policy_written(e, DIRECTION, 2 * S);
    assert_int_equal(eeprom_policy_total(e), 2);
    assert_int_equal(eeprom_reg_index(DIRECTION), -1);
    eeprom_policy_destroy(&e);
}

static void test_eep_off_keeps_npb_curve_cc_spaced(void **state)
{
    (void)state;
    /* an NPB's CURVE_CC held back by the spacing stays held back when EEP_OFF is set: it
     * persists whatever EEP_OFF says, so it is due only once the spacing has passed (before,
     * it was due at once and deferred again by the spacing, round and round) */
    eeprom_policy_t *e = eeprom_policy_new(5 * S);
    eeprom_policy_set_eep_off(e, true);
    eeprom_policy_written(e, 0x00B0, 0);
    int64_t until = 0;
    assert_int_equal(
        eeprom_policy_decide(e, 0x00B0, 1000, 1750, EEPROM_BY_CONTROL, true, 1 * S, &until),
        EEPROM_DEFER);
    assert_int_equal(until, 5 * S);
    uint16_t cmd;
    uint32_t raw;
    assert_int_equal(eeprom_policy_deadline(e), 5 * S);
    assert_false(eeprom_policy_due(e, 1 * S, &cmd, &raw));
    assert_true(eeprom_policy_due(e, 5 * S, &cmd, &raw));
    assert_int_equal(cmd, 0x00B0);
    assert_int_equal(raw, 1750);
    eeprom_policy_destroy(&e);
}

static void test_eep_off_lifts_budget_for_setpoints(void **state)
{
    (void)state;
    eeprom_policy_t *e = eeprom_policy_new(79 * S);
    eeprom_policy_written(e, IOUT, 0);
    assert_int_equal(eeprom_policy_request(e, IOUT, 500, 1 * S), EEPROM_DEFER);
    assert_int_equal(eeprom_policy_request(e, REV_IOUT, 300, 1 * S), EEPROM_DEFER);
    assert_int_equal(eeprom_policy_request(e, OPERATION, 1, 1 * S), EEPROM_WRITE_NOW);
    eeprom_policy_written(e, OPERATION, 1 * S);
    eeprom_policy_set_eep_off(e, true);
    /* the held-back setpoints are not lost: they are due at once, oldest first, as they no
     * longer wear the EEPROM (before EEP_OFF they waited for the 79 s budget) */
    uint16_t cmd;
    uint32_t raw;
    assert_int_equal(eeprom_policy_deadline(e), 0);
    assert_true(eeprom_policy_due(e, 1 * S, &cmd, &raw));
    assert_int_equal(cmd, IOUT);
    assert_int_equal(raw, 500);
    eeprom_policy_written(e, IOUT, 1 * S);
    assert_true(eeprom_policy_due(e, 1 * S, &cmd, &raw));
    assert_int_equal(cmd, REV_IOUT);
    assert_int_equal(raw, 300);
    eeprom_policy_written(e, REV_IOUT, 1 * S);
    assert_false(eeprom_policy_due(e, 1 * S, &cmd, &raw));
    assert_int_equal(eeprom_policy_deadline(e), INT64_MAX);
    assert_false(eeprom_policy_pending(e, IOUT, NULL));
    for (int i = 0; i < 100; i++) {
        assert_int_equal(eeprom_policy_request(e, IOUT, 500 + i, (2 + i) * S), EEPROM_WRITE_NOW);
        eeprom_policy_written(e, IOUT, (2 + i) * S);
    }
    /* RAM-only writes do not wear the EEPROM and are not counted */
    assert_int_equal(eeprom_policy_count(e, eeprom_reg_index(IOUT)), 1);
    assert_int_equal(eeprom_policy_count(e, eeprom_reg_index(REV_IOUT)), 0);
    /* OPERATION still persists with EEP_OFF */
    assert_true(eeprom_policy_persists(e, OPERATION));
    assert_false(eeprom_policy_persists(e, REV_IOUT));
    eeprom_policy_destroy(&e);
}

static void test_clear_pending_when_device_already_has_value(void **state)
{
    (void)state;
    eeprom_policy_t *e = eeprom_policy_new(79 * S);
    eeprom_policy_written(e, IOUT, 0);
    eeprom_policy_request(e, IOUT, 700, 1 * S);
    eeprom_policy_clear_pending(e, IOUT);
    uint16_t cmd;
    uint32_t raw;
    assert_false(eeprom_policy_due(e, 200 * S, &cmd, &raw));
    eeprom_policy_destroy(&e);
}

static void test_oldest_pending_first(void **state)
{
    (void)state;
    eeprom_policy_t *e = eeprom_policy_new(10 * S);
    eeprom_policy_written(e, VOUT, 0);
    eeprom_policy_request(e, REV_IOUT, 300, 2 * S);
    eeprom_policy_request(e, IOUT, 400, 3 * S);
    uint16_t cmd;
    uint32_t raw;
    assert_true(eeprom_policy_due(e, 10 * S, &cmd, &raw));
    assert_int_equal(cmd, REV_IOUT);
    eeprom_policy_written(e, REV_IOUT, 10 * S);
    assert_false(eeprom_policy_due(e, 19 * S, &cmd, &raw));
    assert_true(eeprom_policy_due(e, 20 * S, &cmd, &raw));
    assert_int_equal(cmd, IOUT);
    eeprom_policy_destroy(&e);
}

static void test_uncount_write_the_device_did_not_take(void **state)
{
    (void)state;
    eeprom_policy_t *e = eeprom_policy_new(79 * S);
    eeprom_policy_written(e, IOUT, 0);
    eeprom_policy_written(e, IOUT, 100 * S);
    eeprom_policy_uncount(e, IOUT);
    assert_int_equal(eeprom_policy_count(e, eeprom_reg_index(IOUT)), 1);
    /* the interval still runs from the attempt */
    assert_int_equal(eeprom_policy_request(e, IOUT, 5, 101 * S), EEPROM_DEFER);
    eeprom_policy_uncount(e, VOUT); /* never below zero */
    assert_int_equal(eeprom_policy_count(e, eeprom_reg_index(VOUT)), 0);
    eeprom_policy_destroy(&e);
}

static void test_zero_interval_never_defers(void **state)
{
    (void)state;
    eeprom_policy_t *e = eeprom_policy_new(0);
    eeprom_policy_written(e, IOUT, 5 * S);
    assert_int_equal(eeprom_policy_request(e, IOUT, 1, 5 * S), EEPROM_WRITE_NOW);
    assert_null(eeprom_policy_new(-1));
    eeprom_policy_destroy(&e);
}

static char s_dir[64];

static int s_setup_dir(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/gwstate.XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown_dir(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", s_dir, s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the daily budget (token bucket) ---- */

/* A budget of 8640 writes a day is one token every 10 s: easy numbers for the refill. */
static eeprom_policy_t *s_bucket(int per_day, int burst, int64_t spacing_us)
{
    eeprom_policy_t *e = eeprom_policy_new(spacing_us);
    assert_non_null(e);
    eeprom_policy_set_budget(e, per_day, burst, 0);
    return e;
}

static void test_bucket_starts_full_spends_then_refills(void **state)
{
    (void)state;
    eeprom_policy_t *e = s_bucket(8640, 3, 2 * S);
    assert_int_equal(eeprom_policy_writes_per_day(e), 8640);
    assert_int_equal(eeprom_policy_burst(e), 3);
    assert_true(eeprom_policy_tokens(e, 0) == 3.0);
    assert_int_equal(eeprom_policy_request(e, IOUT, 1000, 0), EEPROM_WRITE_NOW);
    eeprom_policy_written(e, IOUT, 0);
    assert_true(eeprom_policy_tokens(e, 0) == 2.0);
    /* 1 s later: tokens are there, but the spacing is not over */
    assert_int_equal(eeprom_policy_request(e, IOUT, 1100, 1 * S), EEPROM_DEFER);
    assert_int_equal(eeprom_policy_request(e, IOUT, 1200, 1 * S + 1), EEPROM_DEFER);
    assert_int_equal(eeprom_policy_deadline(e), 2 * S);
    uint16_t cmd;
    uint32_t raw;
    assert_false(eeprom_policy_due(e, 2 * S - 1, &cmd, &raw));
    assert_true(eeprom_policy_due(e, 2 * S, &cmd, &raw));
    assert_int_equal(raw, 1200); /* the newest deferred value */
    eeprom_policy_written(e, IOUT, 2 * S);
    /* 2 - 1 + 0.2 refilled in 2 s */
    assert_true(fabs(eeprom_policy_tokens(e, 2 * S) - 1.2) < 1e-9);
    assert_int_equal(eeprom_policy_request(e, VOUT, 2700, 4 * S), EEPROM_WRITE_NOW);
    eeprom_policy_written(e, VOUT, 4 * S);
    assert_true(fabs(eeprom_policy_tokens(e, 4 * S) - 0.4) < 1e-9);
    /* spacing over, but less than a whole token: deferred until the bucket holds one,
     * 0.6 tokens = 6 s after the last write */
    assert_int_equal(eeprom_policy_request(e, VOUT, 2710, 6 * S), EEPROM_DEFER);
    assert_int_equal(eeprom_policy_deadline(e), 10 * S);
    assert_false(eeprom_policy_due(e, 10 * S - 1, &cmd, &raw));
    assert_true(eeprom_policy_due(e, 10 * S, &cmd, &raw));
    assert_int_equal(cmd, VOUT);
    assert_int_equal(raw, 2710);
    assert_int_equal(eeprom_policy_total(e), 3);
    eeprom_policy_destroy(&e);
}

static void test_bucket_capacity_caps_saving_up(void **state)
{
    (void)state;
    /* one write a day: the refill is negligible within the test */
    eeprom_policy_t *e = s_bucket(1, 3, 2 * S);
    eeprom_policy_written(e, IOUT, 0);
    /* a long quiet time saves up at most the burst, however long it is */
    int64_t t = 400LL * 86400 * S;
    assert_true(eeprom_policy_tokens(e, t) == 3.0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(eeprom_policy_request(e, IOUT, 100 + (uint32_t)i, t), EEPROM_WRITE_NOW);
        eeprom_policy_written(e, IOUT, t);
        t += 2 * S;
    }
    /* the burst is spent: deferred although the spacing is over */
    assert_int_equal(eeprom_policy_request(e, IOUT, 200, t + 60 * S), EEPROM_DEFER);
    assert_true(eeprom_policy_tokens(e, t + 60 * S) < 0.01);
    /* a whole token after a day (less what had refilled already) */
    int64_t dl = eeprom_policy_deadline(e);
    assert_true(dl > t + 86000 * S && dl <= t + 86400 * S);
    eeprom_policy_destroy(&e);
}

static void test_bucket_never_deferred_writes_take_tokens(void **state)
{
    (void)state;
    eeprom_policy_t *e = s_bucket(8640, 1, 0);
    eeprom_policy_written(e, IOUT, 0);
    /* switching off never waits, not even for an empty bucket; it is counted and takes its
     * token all the same: 0.1 refilled in the second, less one, is a debt of 0.9 */
    assert_int_equal(eeprom_policy_request(e, OPERATION, 0, 1 * S), EEPROM_WRITE_NOW);
    eeprom_policy_written(e, OPERATION, 1 * S);
    assert_int_equal(eeprom_policy_count(e, eeprom_reg_index(OPERATION)), 1);
    assert_true(fabs(eeprom_policy_tokens(e, 1 * S) + 0.9) < 1e-9);
    /* the setpoint waits until the debt is paid and a token is whole again: 1.9 tokens, 19 s
     * after the switch-off */
    assert_int_equal(eeprom_policy_request(e, IOUT, 5, 2 * S), EEPROM_DEFER);
    assert_int_equal(eeprom_policy_deadline(e), 20 * S);
    eeprom_policy_destroy(&e);
}

static void test_bucket_spacing_with_full_bucket(void **state)
{
    (void)state;
    eeprom_policy_t *e = s_bucket(1095, 300, 20 * S);
    eeprom_policy_written(e, IOUT, 100 * S);
    assert_int_equal(eeprom_policy_request(e, IOUT, 1, 120 * S - 1), EEPROM_DEFER);
    assert_int_equal(eeprom_policy_deadline(e), 120 * S);
    assert_int_equal(eeprom_policy_request(e, IOUT, 2, 120 * S), EEPROM_WRITE_NOW);
    eeprom_policy_destroy(&e);
}

static void test_bucket_reconfigured_keeps_level(void **state)
{
    (void)state;
    eeprom_policy_t *e = s_bucket(1, 300, 0);
    for (int i = 0; i < 100; i++)
        eeprom_policy_written(e, IOUT, 0);
    /* a reload (SIGHUP) keeps the level; a smaller burst clips it */
    eeprom_policy_set_budget(e, 1, 300, 1);
    assert_true(eeprom_policy_tokens(e, 1) < 200.01 && eeprom_policy_tokens(e, 1) >= 200.0);
    eeprom_policy_set_budget(e, 1, 50, 2);
    assert_true(eeprom_policy_tokens(e, 2) == 50.0);
    /* turned off: the fixed-interval rule, reported as a one-deep bucket */
    eeprom_policy_set_budget(e, 0, 0, 3);
    assert_int_equal(eeprom_policy_writes_per_day(e), 0);
    eeprom_policy_set_interval(e, 10 * S);
    eeprom_policy_written(e, IOUT, 10 * S);
    assert_true(fabs(eeprom_policy_tokens(e, 15 * S) - 0.5) < 1e-9);
    assert_true(eeprom_policy_tokens(e, 30 * S) == 1.0);
    eeprom_policy_destroy(&e);
}

/* Saves one device whose bucket holds 0.4 tokens (8640 a day, 3 deep) at wall time W. */
#define W 1000000000000LL
static void s_save_bucket(const char *path)
{
    eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
    eep[2] = s_bucket(8640, 3, 2 * S);
    eeprom_policy_written(eep[2], IOUT, 0);
    eeprom_policy_written(eep[2], IOUT, 2 * S);
    eeprom_policy_written(eep[2], IOUT, 4 * S);
    char err[256];
    assert_true(fabs(eeprom_policy_tokens(eep[2], 4 * S) - 0.4) < 1e-9);
    assert_int_equal(gw_state_save(path, eep, 4 * S, W, err, sizeof err), 0);
    eeprom_policy_destroy(&eep[2]);
}

/* Loads at wall time wall_ms with a new monotonic origin (1 s) and configures the budget as
 * the gateway does; returns the tokens right after. */
static double s_load_bucket_later(const char *path, int64_t wall_ms, double *later);
static double s_load_bucket(const char *path, int64_t wall_ms)
{
    return s_load_bucket_later(path, wall_ms, NULL);
}

/* As s_load_bucket; *later: the tokens 5 s after the restart. */
static double s_load_bucket_later(const char *path, int64_t wall_ms, double *later)
{
    eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
    char err[256] = "";
    assert_int_equal(gw_state_load(path, eep, 2 * S, 1 * S, wall_ms, err, sizeof err), 1);
    assert_non_null(eep[2]);
    eeprom_policy_set_budget(eep[2], 8640, 3, 1 * S);
    double t = eeprom_policy_tokens(eep[2], 1 * S);
    /* below a whole token a setpoint still waits after the restart */
    if (t < 1)
        assert_int_equal(eeprom_policy_request(eep[2], IOUT, 9, 1 * S), EEPROM_DEFER);
    if (later)
        *later = eeprom_policy_tokens(eep[2], 6 * S);
    eeprom_policy_destroy(&eep[2]);
    return t;
}

static void test_bucket_restart_does_not_refill(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/bucket.json", s_dir);
    s_save_bucket(path);
    /* restarted at once: the level as saved, not a full bucket */
    assert_true(fabs(s_load_bucket(path, W) - 0.4) < 1e-6);
    /* down for 5 s by the wall clock: refilled by 5 s (0.5 tokens) */
    assert_true(fabs(s_load_bucket(path, W + 5000) - 0.9) < 1e-6);
    /* a state file from before the bucket (no tokens): a full bucket, as a new device */
    FILE *f = fopen(path, "w");
    fputs("{\"v\":1,\"devices\":{\"2\":{\"writes\":{\"IOUT_SET\":3}}}}", f);
    fclose(f);
    assert_true(s_load_bucket(path, W) == 3.0);
}

static void test_bucket_restart_clock_jumps(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/bucket.json", s_dir);
    s_save_bucket(path);
    /* the wall clock went back an hour: no refill (and no negative one) */
    double later = 0;
    assert_true(fabs(s_load_bucket_later(path, W - 3600 * 1000, &later) - 0.4) < 1e-6);
    /* and from the restart on it refills as usual, not only once the clock caught up */
    assert_true(fabs(later - 0.9) < 1e-6);
    /* a jump forward by years refills no more than the bucket's depth */
    assert_true(s_load_bucket(path, W + 5LL * 365 * 86400 * 1000) == 3.0);
}

static void test_bucket_debt_kept_across_restart(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/bucket-debt.json", s_dir);
    eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
    eep[2] = s_bucket(8640, 3, 2 * S);
    for (int i = 0; i < 5; i++) /* three from the bucket, two toward safety past it */
        eeprom_policy_written(eep[2], i < 3 ? IOUT : OPERATION, 0);
    char err[256];
    assert_true(fabs(eeprom_policy_tokens(eep[2], 0) + 2.0) < 1e-9);
    assert_int_equal(gw_state_save(path, eep, 0, W, err, sizeof err), 0);
    eeprom_policy_destroy(&eep[2]);
    /* restarted 10 s later: the debt less the refill, and a setpoint still waits */
    assert_true(fabs(s_load_bucket(path, W + 10000) + 1.0) < 1e-6);
}

static void test_bucket_bad_tokens_rejected(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/bucket-bad.json", s_dir);
    const char *bad[] = {
        "{\"v\":1,\"devices\":{\"2\":{\"tokens\":\"x\",\"tokens_ms\":1}}}",
        "{\"v\":1,\"devices\":{\"2\":{\"tokens\":1e300,\"tokens_ms\":1}}}",
        "{\"v\":1,\"devices\":{\"2\":{\"tokens\":1}}}",
        "{\"v\":1,\"devices\":{\"2\":{\"tokens\":1,\"tokens_ms\":-5}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
        char err[256] = "";
        assert_int_equal(gw_state_load(path, eep, S, 0, W, err, sizeof err), -1);
        assert_non_null(strstr(err, "bad tokens"));
        for (int a = 0; a < GW_LEASE_DEVS; a++)
            eeprom_policy_destroy(&eep[a]);
    }
}

static void test_state_roundtrip(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, GW_STATE_FILE);
    eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
    eep[0] = eeprom_policy_new(79 * S);
    eep[5] = eeprom_policy_new(79 * S);
    for (int i = 0; i < 3; i++)
        eeprom_policy_written(eep[0], IOUT, 100 * S);
    eeprom_policy_written(eep[5], VOUT, 100 * S);
    char err[256];
    /* wall clock 1e12 ms at monotonic 130 s: last write 30 s ago */
    assert_int_equal(gw_state_save(path, eep, 130 * S, 1000000000000LL, err, sizeof err), 0);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* no temporary left behind */

    /* a restart: new monotonic origin (5 s), wall clock 10 s later */
    eeprom_policy_t *back[GW_LEASE_DEVS] = {0};
    assert_int_equal(gw_state_load(path, back, 79 * S, 5 * S, 1000000010000LL, err, sizeof err), 2);
    assert_non_null(back[0]);
    assert_non_null(back[5]);
    assert_null(back[1]);
    assert_int_equal(eeprom_policy_count(back[0], eeprom_reg_index(IOUT)), 3);
    assert_int_equal(eeprom_policy_count(back[5], eeprom_reg_index(VOUT)), 1);
    assert_int_equal(eeprom_policy_total(back[0]), 3);
    /* the last write was 40 s ago: the budget still holds for 39 s after the restart */
    assert_int_equal(eeprom_policy_request(back[0], IOUT, 1, 6 * S), EEPROM_DEFER);
    assert_int_equal(eeprom_policy_deadline(back[0]), 44 * S);
    for (int a = 0; a < GW_LEASE_DEVS; a++) {
        eeprom_policy_destroy(&eep[a]);
        eeprom_policy_destroy(&back[a]);
    }
}

static void s_put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_lease_file_roundtrip(void **state)
{
    (void)state;
    char path[128], err[256];
    gw_lease_rec_t rec[GW_LEASE_DEVS] = {0}, back[GW_LEASE_DEVS];
    bool every = true;
    snprintf(path, sizeof path, "%s/%s", s_dir, GW_LEASE_FILE);
    unlink(path);
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), 0);
    assert_false(every);
    /* one holder per device */
    snprintf(rec[0].holder, sizeof rec[0].holder, "charge-ctl-0");
    rec[0].ttl_us = 10 * S;
    snprintf(rec[5].holder, sizeof rec[5].holder, "charge-ctl-5");
    rec[5].ttl_us = 30 * S;
    assert_int_equal(gw_state_save_leases(path, rec, err, sizeof err), 0);
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), 2);
    assert_false(every);
    assert_string_equal(back[0].holder, "charge-ctl-0");
    assert_int_equal(back[0].ttl_us, 10 * S);
    assert_string_equal(back[5].holder, "charge-ctl-5");
    assert_int_equal(back[5].ttl_us, 30 * S);
    assert_string_equal(back[1].holder, "");
    /* all free */
    memset(rec, 0, sizeof rec);
    assert_int_equal(gw_state_save_leases(path, rec, err, sizeof err), 0);
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), 0);
    /* the single-lease file of earlier versions: every device */
    s_put(path, "{\"v\":1,\"holder\":\"charge-ctl\",\"ttl_ms\":10000}");
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), 1);
    assert_true(every);
    assert_string_equal(back[0].holder, "charge-ctl");
    assert_int_equal(back[0].ttl_us, 10 * S);
    s_put(path, "{\"v\":1,\"holder\":null}");
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), 0);
    assert_false(every);
    /* damaged files are refused with the reason, nothing half loaded */
    s_put(path, "{\"v\":1,\"holder\":\"x\",\"ttl_ms\":-5}");
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), -1);
    s_put(path, "{\"v\":2,\"leases\":[{\"dev\":1,\"holder\":\"a\",\"ttl_ms\":5000},"
                "{\"dev\":68,\"holder\":\"b\",\"ttl_ms\":5000}]}");
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad lease entry"));
    assert_string_equal(back[1].holder, "");
    s_put(path, "{\"v\":2,\"leases\":[{\"dev\":1,\"holder\":\"a\",\"ttl_ms\":5000},"
                "{\"dev\":1,\"holder\":\"b\",\"ttl_ms\":5000}]}");
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), -1);
    s_put(path, "{\"v\":2,\"leases\":[{\"dev\":2,\"holder\":\"\",\"ttl_ms\":5000}]}");
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), -1);
    s_put(path, "garbage");
    assert_int_equal(gw_state_load_leases(path, back, &every, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a lease file"));
}

static void test_state_missing_file_is_empty(void **state)
{
    (void)state;
    eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
    char err[256];
    assert_int_equal(gw_state_load("/nonexistent-dir/x.json", eep, S, 0, 0, err, sizeof err), 0);
}

static void test_state_corrupt_file_rejected(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/bad.json", s_dir);
    FILE *f = fopen(path, "w");
    fputs("{\"devices\": [1,2", f);
    fclose(f);
    eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
    char err[256] = "";
    assert_int_equal(gw_state_load(path, eep, S, 0, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a state file"));
    f = fopen(path, "w");
    fputs("{\"v\":1,\"devices\":{\"99\":{}}}", f);
    fclose(f);
    assert_int_equal(gw_state_load(path, eep, S, 0, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "0-67"));
}

/* Numbers no integer holds in a state file (a count of 1e30, a wall time of 1e300 or NaN's
 * neighbours): the load stays defined (numconv) and ignores them; the sane counts load. */
static void test_state_huge_numbers_ignored(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/huge.json", s_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"v\":1,\"devices\":{\"2\":{\"writes\":{\"IOUT_SET\":1e30,\"VOUT_SET\":-1e300,"
          "\"OPERATION\":4},\"last_write_ms\":1e300}}}",
          f);
    fclose(f);
    eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
    char err[256] = "";
    assert_int_equal(gw_state_load(path, eep, S, 0, W, err, sizeof err), 1);
    assert_non_null(eep[2]);
    assert_int_equal(eeprom_policy_total(eep[2]), 4);
    for (int a = 0; a < GW_LEASE_DEVS; a++)
        eeprom_policy_destroy(&eep[a]);
}

static void test_state_save_failure_keeps_counts(void **state)
{
    (void)state;
    /* The state directory is a regular file: creating the temporary file in it fails with
     * ENOTDIR for every user, root included (a read-only directory would not stop root). */
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/notadir", s_dir);
    FILE *f = fopen(dir, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s", dir, GW_STATE_FILE);
    eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
    eep[0] = eeprom_policy_new(S);
    eeprom_policy_written(eep[0], IOUT, 0);
    char err[256] = "";
    assert_int_equal(gw_state_save(path, eep, 0, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot create"));
    assert_int_equal(eeprom_policy_total(eep[0]), 1);
    eeprom_policy_destroy(&eep[0]);
}

static void test_state_save_to_full_disk(void **state)
{
    (void)state;
    /* /dev/full accepts the open and fails the write with ENOSPC */
    if (access("/dev/full", W_OK) != 0)
        fail_msg("/dev/full is not writable: every Linux system has it");
    char dir[128], link[160];
    snprintf(dir, sizeof dir, "%s/full", s_dir);
    mkdir(dir, 0755);
    snprintf(link, sizeof link, "%s/x.json.tmp", dir);
    assert_int_equal(symlink("/dev/full", link), 0);
    snprintf(link, sizeof link, "%s/x.json", dir);
    eeprom_policy_t *eep[GW_LEASE_DEVS] = {0};
    eep[3] = eeprom_policy_new(S);
    eeprom_policy_written(eep[3], OPERATION, 0);
    char err[256] = "";
    assert_int_equal(gw_state_save(link, eep, 0, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot write"));
    assert_int_equal(eeprom_policy_total(eep[3]), 1);
    eeprom_policy_destroy(&eep[3]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_write_allowed_then_budget),
        cmocka_unit_test(test_interval_is_per_device_not_per_register),
        cmocka_unit_test(test_operation_never_deferred_but_counted),
        cmocka_unit_test(test_eep_off_lifts_budget_for_setpoints),
        cmocka_unit_test(test_eep_off_keeps_npb_curve_cc_spaced),
        cmocka_unit_test(test_clear_pending_when_device_already_has_value),
        cmocka_unit_test(test_oldest_pending_first),
        cmocka_unit_test(test_uncount_write_the_device_did_not_take),
        cmocka_unit_test(test_zero_interval_never_defers),
        cmocka_unit_test(test_bucket_starts_full_spends_then_refills),
        cmocka_unit_test(test_bucket_capacity_caps_saving_up),
        cmocka_unit_test(test_bucket_never_deferred_writes_take_tokens),
        cmocka_unit_test(test_bucket_spacing_with_full_bucket),
        cmocka_unit_test(test_bucket_reconfigured_keeps_level),
        cmocka_unit_test(test_bucket_restart_does_not_refill),
        cmocka_unit_test(test_bucket_restart_clock_jumps),
        cmocka_unit_test(test_bucket_debt_kept_across_restart),
        cmocka_unit_test(test_bucket_bad_tokens_rejected),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_lease_file_roundtrip),
        cmocka_unit_test(test_state_missing_file_is_empty),
        cmocka_unit_test(test_state_corrupt_file_rejected),
        cmocka_unit_test(test_state_huge_numbers_ignored),
        cmocka_unit_test(test_state_save_failure_keeps_counts),
        cmocka_unit_test(test_state_save_to_full_disk),
    };
    return cmocka_run_group_tests(tests, s_setup_dir, s_teardown_dir);
}
