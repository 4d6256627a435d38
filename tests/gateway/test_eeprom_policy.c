/*
 * Unit tests for the EEPROM policy (write budget, pending values, counters, EEP_OFF) and the
 * persisted counter file (atomic save, load across a restart, failures keep the counts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

static void test_state_roundtrip(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, GW_STATE_FILE);
    eeprom_policy_t *eep[64] = {0};
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
    eeprom_policy_t *back[64] = {0};
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
    for (int a = 0; a < 64; a++) {
        eeprom_policy_destroy(&eep[a]);
        eeprom_policy_destroy(&back[a]);
    }
}

static void test_lease_file_roundtrip(void **state)
{
    (void)state;
    char path[128], err[256], holder[33];
    int64_t ttl = 0;
    snprintf(path, sizeof path, "%s/%s", s_dir, GW_LEASE_FILE);
    assert_int_equal(gw_state_load_lease(path, holder, sizeof holder, &ttl, err, sizeof err), 0);
    assert_int_equal(gw_state_save_lease(path, "charge-ctl", 10 * S, err, sizeof err), 0);
    assert_int_equal(gw_state_load_lease(path, holder, sizeof holder, &ttl, err, sizeof err), 1);
    assert_string_equal(holder, "charge-ctl");
    assert_int_equal(ttl, 10 * S);
    assert_int_equal(gw_state_save_lease(path, NULL, 0, err, sizeof err), 0);
    assert_int_equal(gw_state_load_lease(path, holder, sizeof holder, &ttl, err, sizeof err), 0);
    FILE *f = fopen(path, "w");
    fputs("{\"v\":1,\"holder\":\"x\",\"ttl_ms\":-5}", f);
    fclose(f);
    assert_int_equal(gw_state_load_lease(path, holder, sizeof holder, &ttl, err, sizeof err), -1);
    f = fopen(path, "w");
    fputs("garbage", f);
    fclose(f);
    assert_int_equal(gw_state_load_lease(path, holder, sizeof holder, &ttl, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a lease file"));
}

static void test_state_missing_file_is_empty(void **state)
{
    (void)state;
    eeprom_policy_t *eep[64] = {0};
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
    eeprom_policy_t *eep[64] = {0};
    char err[256] = "";
    assert_int_equal(gw_state_load(path, eep, S, 0, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a state file"));
    f = fopen(path, "w");
    fputs("{\"v\":1,\"devices\":{\"99\":{}}}", f);
    fclose(f);
    assert_int_equal(gw_state_load(path, eep, S, 0, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "0-63"));
}

static void test_state_save_failure_keeps_counts(void **state)
{
    (void)state;
    if (geteuid() == 0)
        skip(); /* root writes into read-only directories */
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/ro", s_dir);
    mkdir(dir, 0555);
    snprintf(path, sizeof path, "%s/%s", dir, GW_STATE_FILE);
    eeprom_policy_t *eep[64] = {0};
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
        skip();
    char dir[128], link[160];
    snprintf(dir, sizeof dir, "%s/full", s_dir);
    mkdir(dir, 0755);
    snprintf(link, sizeof link, "%s/x.json.tmp", dir);
    assert_int_equal(symlink("/dev/full", link), 0);
    snprintf(link, sizeof link, "%s/x.json", dir);
    eeprom_policy_t *eep[64] = {0};
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
        cmocka_unit_test(test_clear_pending_when_device_already_has_value),
        cmocka_unit_test(test_oldest_pending_first),
        cmocka_unit_test(test_uncount_write_the_device_did_not_take),
        cmocka_unit_test(test_zero_interval_never_defers),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_lease_file_roundtrip),
        cmocka_unit_test(test_state_missing_file_is_empty),
        cmocka_unit_test(test_state_corrupt_file_rejected),
        cmocka_unit_test(test_state_save_failure_keeps_counts),
        cmocka_unit_test(test_state_save_to_full_disk),
    };
    return cmocka_run_group_tests(tests, s_setup_dir, s_teardown_dir);
}
