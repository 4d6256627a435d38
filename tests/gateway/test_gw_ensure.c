/*
 * Unit tests for the write engine (gw_ensure) with the EEPROM policy: every path of a job
 * (equal value skipped, written and verified, verify mismatch, a lost write written again,
 * timeout, bus down in the middle, deferral and release, a power cycle in the middle; a value the
 * caller knows: written without the read, never believed when it equals the wanted one) and the
 * rules (a person's write at once or refused, writes toward safety never held back, the
 * budget a hard limit for OPERATION too, a share kept for the lease holder, the bucket never
 * below zero).
 *
 * The bus is played by the test: a register file answers reads, takes writes (or drops them,
 * or holds a value of its own) and can time out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bic_plan.h"
#include "eeprom_policy.h"
#include "gw_ensure.h"

#define S 1000000LL
#define OPERATION 0x0000
#define VOUT 0x0020
#define IOUT 0x0030
#define REV_VOUT 0x0120
#define REV_IOUT 0x0130
#define DIRECTION 0x0100

typedef struct {
    int32_t reg[0x200];
    int drop_writes;   /* writes lost on the line (the device never sees them) */
    int32_t stuck_cmd; /* this register keeps stuck_val whatever is written (-1: none) */
    int32_t stuck_val;
    int timeouts;       /* reads that get no reply */
    bool down_on_write; /* the bus goes down when the write is submitted */
    int writes;         /* writes the device took */
} bus_t;

static void s_bus_init(bus_t *b)
{
    memset(b, 0, sizeof *b);
    b->stuck_cmd = -1;
}

/* One request of the job and its result. Returns the event, or -1 when the job had none. */
static int s_step(gw_ensure_t *e, eeprom_policy_t *eep, bus_t *b, int64_t now)
{
    bus_req_t req;
    if (!gw_ensure_next(e, now, &req))
        return -1;
    assert_int_equal(req.addr, 3);
    bus_result_t r;
    memset(&r, 0, sizeof r);
    r.req = req;
    if (req.len) {
        if (b->down_on_write) {
            r.status = BUS_DOWN;
            return (int)gw_ensure_on_result(e, eep, &r, false, 0, now);
        }
        r.status = BUS_WRITTEN;
        if (b->drop_writes > 0) {
            b->drop_writes--;
        } else {
            b->reg[req.cmd] = req.data[0] | req.data[1] << 8;
            b->writes++;
        }
        if ((int32_t)req.cmd == b->stuck_cmd)
            b->reg[req.cmd] = b->stuck_val;
        return (int)gw_ensure_on_result(e, eep, &r, false, 0, now);
    }
    if (b->timeouts > 0) {
        b->timeouts--;
        r.status = BUS_TIMEOUT;
        return (int)gw_ensure_on_result(e, eep, &r, false, 0, now);
    }
    r.status = BUS_OK;
    return (int)gw_ensure_on_result(e, eep, &r, true, b->reg[req.cmd], now);
}

static void s_run(gw_ensure_t *e, eeprom_policy_t *eep, bus_t *b, int64_t now)
{
    for (int i = 0; i < 100 && !gw_ensure_done(e); i++)
        s_step(e, eep, b, now);
    assert_true(gw_ensure_done(e));
}

static eeprom_policy_t *s_budget(int per_day, int burst, int spacing_s)
{
    eeprom_policy_t *eep = eeprom_policy_new(spacing_s * S);
    eeprom_policy_set_budget(eep, per_day, burst, 0);
    return eep;
}

/* One target, run to the end; returns its outcome. */
static gwe_outcome_t s_one(eeprom_policy_t *eep, bus_t *b, eeprom_writer_t by, bool holder,
                           uint16_t cmd, uint16_t value, int64_t now)
{
    gw_ensure_t *e = gw_ensure_new(3, by, holder);
    assert_int_equal(gw_ensure_add(e, cmd, value, 0xFFFF, false, NULL), 0);
    s_run(e, eep, b, now);
    gwe_outcome_t o = gw_ensure_target(e, 0)->outcome;
    gw_ensure_destroy(&e);
    return o;
}

static void test_equal_value_skipped(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[VOUT] = 2760;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_PERSON, false);
    gw_ensure_add(e, VOUT, 2760, 0xFFFF, false, NULL);
    s_run(e, eep, &b, 1 * S);
    const gwe_target_t *t = gw_ensure_target(e, 0);
    assert_int_equal(t->outcome, GWE_UNCHANGED);
    assert_false(t->written);
    assert_int_equal(b.writes, 0);
    assert_int_equal(eeprom_policy_total(eep), 0);
    assert_int_equal(gw_ensure_error(e), GWE_OK);
    gw_ensure_destroy(&e);
    assert_null(e);
    eeprom_policy_destroy(&eep);
}

static void test_written_and_verified(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[IOUT] = 1000;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_PERSON, false);
    gw_ensure_add(e, IOUT, 1200, 0xFFFF, false, NULL);
    /* read, write, read back: three requests, one at a time */
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_READ);
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_WRITTEN);
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_READ);
    assert_true(gw_ensure_done(e));
    const gwe_target_t *t = gw_ensure_target(e, 0);
    assert_int_equal(t->outcome, GWE_WRITTEN);
    assert_int_equal(t->before, 1000);
    assert_int_equal(t->after, 1200);
    assert_true(t->counted);
    assert_false(t->safety);
    assert_int_equal(b.reg[IOUT], 1200);
    assert_int_equal(eeprom_policy_count(eep, eeprom_reg_index(IOUT)), 1);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

static void test_bits_under_mask_and_at_most(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[0x00C2] = 0x0002;
    b.reg[IOUT] = 5000;
    b.reg[REV_IOUT] = 1000;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_PERSON, true);
    gw_ensure_add(e, 0x00C2, 0x0001, 0x0001, false, "can_ctrl");
    gw_ensure_add_at_most(e, IOUT, 4000, NULL);     /* above the maximum: lowered */
    gw_ensure_add_at_most(e, REV_IOUT, 4000, NULL); /* within it: left as it is */
    s_run(e, eep, &b, 1 * S);
    assert_int_equal(b.reg[0x00C2], 0x0003); /* the other bits kept */
    assert_int_equal(b.reg[IOUT], 4000);
    assert_true(gw_ensure_target(e, 1)->safety);
    assert_int_equal(b.reg[REV_IOUT], 1000);
    assert_int_equal(gw_ensure_target(e, 2)->outcome, GWE_UNCHANGED);
    assert_int_equal(gw_ensure_writes(e), 2);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

static void test_verify_mismatch_fails(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[VOUT] = 2700;
    b.stuck_cmd = VOUT;
    b.stuck_val = 2650; /* the device settles on a value of its own */
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_PERSON, false);
    gw_ensure_add(e, VOUT, 2760, 0xFFFF, false, NULL);
    gw_ensure_add(e, IOUT, 100, 0xFFFF, false, NULL);
    s_run(e, eep, &b, 1 * S);
    assert_int_equal(gw_ensure_error(e), GWE_ERR_VERIFY);
    assert_int_equal(gw_ensure_current(e), 0);
    const gwe_target_t *t = gw_ensure_target(e, 0);
    assert_int_equal(t->outcome, GWE_FAILED);
    assert_true(t->mismatch);
    assert_int_equal(t->after, 2650);
    /* the device changed the register: the EEPROM was written, the count stays */
    assert_int_equal(eeprom_policy_count(eep, eeprom_reg_index(VOUT)), 1);
    /* the job stopped there: the next target was never touched */
    assert_int_equal(gw_ensure_target(e, 1)->outcome, GWE_OPEN);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

static void test_lost_write_uncounted_and_written_again(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[IOUT] = 1000;
    b.drop_writes = 1;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_PERSON, false);
    gw_ensure_add(e, IOUT, 1500, 0xFFFF, false, NULL);
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_READ);
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_WRITTEN);
    assert_int_equal(eeprom_policy_total(eep), 1);
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_UNCOUNTED);
    assert_int_equal(eeprom_policy_total(eep), 0);
    s_run(e, eep, &b, 1 * S);
    assert_int_equal(gw_ensure_error(e), GWE_OK);
    assert_int_equal(gw_ensure_target(e, 0)->outcome, GWE_WRITTEN);
    assert_int_equal(b.reg[IOUT], 1500);
    assert_int_equal(eeprom_policy_total(eep), 1);
    gw_ensure_destroy(&e);
    /* lost twice: verify failed, nothing counted */
    b.drop_writes = 2;
    e = gw_ensure_new(3, EEPROM_BY_PERSON, false);
    gw_ensure_add(e, IOUT, 1600, 0xFFFF, false, NULL);
    s_run(e, eep, &b, 2 * S);
    assert_int_equal(gw_ensure_error(e), GWE_ERR_VERIFY);
    assert_int_equal(b.reg[IOUT], 1500);
    assert_int_equal(eeprom_policy_total(eep), 1);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

static void test_tolerated_mismatch_is_a_finding(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[0x00C2] = 0x0001;
    b.stuck_cmd = 0x00C2;
    b.stuck_val = 0x0001; /* old firmware: no EEP_OFF bit */
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_PERSON, true);
    gw_ensure_add(e, 0x00C2, 0x0400, 0x0400, true, "eep_off");
    gw_ensure_add(e, 0x0140, 0x0001, 0x0001, false, "battery_mode");
    s_run(e, eep, &b, 1 * S);
    assert_int_equal(gw_ensure_error(e), GWE_OK);
    assert_true(gw_ensure_target(e, 0)->mismatch);
    assert_int_equal(b.reg[0x0140], 1);
    /* SYSTEM_CONFIG keeps its count: the firmware stored the write without the bit */
    assert_int_equal(eeprom_policy_count(eep, eeprom_reg_index(0x00C2)), 1);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

static void test_timeout_ends_the_job(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.timeouts = 1; /* after the scheduler's own retries */
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1500, 0xFFFF, false, NULL);
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_FAILED);
    assert_true(gw_ensure_done(e));
    assert_int_equal(gw_ensure_error(e), GWE_ERR_TIMEOUT);
    assert_int_equal(s_step(e, eep, &b, 1 * S), -1); /* nothing more to send */
    assert_int_equal(b.writes, 0);
    gw_ensure_destroy(&e);
    /* a timed-out read-back: the write stays counted (it may have landed) */
    s_bus_init(&b);
    e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1500, 0xFFFF, false, NULL);
    s_step(e, eep, &b, 1 * S);
    s_step(e, eep, &b, 1 * S);
    b.timeouts = 1;
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_FAILED);
    assert_int_equal(gw_ensure_error(e), GWE_ERR_TIMEOUT);
    assert_true(gw_ensure_target(e, 0)->written);
    assert_int_equal(eeprom_policy_total(eep), 1);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

static void test_device_offline_in_the_middle(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1500, 0xFFFF, false, NULL);
    gw_ensure_add(e, OPERATION, 1, 0xFFFF, false, NULL);
    s_step(e, eep, &b, 1 * S); /* read */
    b.down_on_write = true;
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_FAILED);
    assert_int_equal(gw_ensure_error(e), GWE_ERR_BUS_DOWN);
    assert_int_equal(eeprom_policy_total(eep), 0);
    gw_ensure_destroy(&e);
    /* a submission the scheduler refuses ends the job the same way */
    e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1500, 0xFFFF, false, NULL);
    bus_req_t req;
    assert_int_equal(gw_ensure_next(e, 1 * S, &req), 1);
    gw_ensure_submit_failed(e, true);
    assert_true(gw_ensure_done(e));
    assert_int_equal(gw_ensure_error(e), GWE_ERR_BUS_DOWN);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

static void test_power_cycle_in_the_middle(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[IOUT] = 1000;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1500, 0xFFFF, false, NULL);
    bus_req_t req;
    assert_int_equal(gw_ensure_next(e, 1 * S, &req), 1);
    /* the device restarts while the read is on its way; it then holds its stored value */
    gw_ensure_power_cycled(e);
    b.reg[IOUT] = 1500;
    bus_result_t r = {.status = BUS_OK, .req = req};
    assert_int_equal(gw_ensure_on_result(e, eep, &r, true, 1000, 1 * S), GWE_EV_NONE);
    /* the stale answer was dropped: the target starts again from a read */
    assert_false(gw_ensure_done(e));
    assert_int_equal(gw_ensure_next(e, 1 * S, &req), 1);
    assert_int_equal(req.len, 0);
    r.req = req;
    gw_ensure_on_result(e, eep, &r, true, b.reg[IOUT], 1 * S);
    assert_true(gw_ensure_done(e));
    assert_int_equal(gw_ensure_target(e, 0)->outcome, GWE_UNCHANGED);
    assert_int_equal(eeprom_policy_total(eep), 0);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

/* A register whose value the gateway knows: the write goes out first, the read-back follows. */
static void test_known_value_goes_straight_to_the_write(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[IOUT] = 1000;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1200, 0xFFFF, false, NULL);
    assert_int_equal(gw_ensure_read_due(e), IOUT);
    assert_int_equal(gw_ensure_known(e, eep, 1000, 1 * S), 1);
    bus_req_t req;
    assert_int_equal(gw_ensure_next(e, 1 * S, &req), 1);
    assert_int_equal(req.len, 2); /* no read before it */
    assert_int_equal(req.data[0] | req.data[1] << 8, 1200);
    bus_result_t r = {.status = BUS_WRITTEN, .req = req};
    b.reg[IOUT] = 1200;
    assert_int_equal(gw_ensure_on_result(e, eep, &r, false, 0, 1 * S), GWE_EV_WRITTEN);
    assert_int_equal(s_step(e, eep, &b, 1 * S), GWE_EV_READ); /* the read-back */
    assert_true(gw_ensure_done(e));
    const gwe_target_t *t = gw_ensure_target(e, 0);
    assert_int_equal(t->outcome, GWE_WRITTEN);
    assert_true(t->known);
    assert_int_equal(t->before, 1000);
    assert_int_equal(t->after, 1200);
    assert_int_equal(eeprom_policy_count(eep, eeprom_reg_index(IOUT)), 1);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

/* The cache says the wanted value is there, the device (power cycled onto its stored value
 * unnoticed) holds another: the value is read, not believed, and the write goes out. */
static void test_known_equal_is_read_never_skipped(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[IOUT] = 1000; /* the stored value, back after the power cycle */
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1200, 0xFFFF, false, NULL);
    assert_int_equal(gw_ensure_known(e, eep, 1200, 1 * S), 0);
    bus_req_t req;
    assert_int_equal(gw_ensure_next(e, 1 * S, &req), 1);
    assert_int_equal(req.len, 0); /* a read */
    bus_result_t r = {.status = BUS_OK, .req = req};
    assert_int_equal(gw_ensure_on_result(e, eep, &r, true, b.reg[IOUT], 1 * S), GWE_EV_READ);
    s_run(e, eep, &b, 1 * S);
    const gwe_target_t *t = gw_ensure_target(e, 0);
    assert_int_equal(t->outcome, GWE_WRITTEN);
    assert_false(t->known);
    assert_int_equal(b.reg[IOUT], 1200);
    assert_int_equal(eeprom_policy_count(eep, eeprom_reg_index(IOUT)), 1);
    gw_ensure_destroy(&e);
    /* and when the device does hold it, nothing is written or counted */
    e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1200, 0xFFFF, false, NULL);
    assert_int_equal(gw_ensure_known(e, eep, 1200, 2 * S), 0);
    int writes = b.writes;
    s_run(e, eep, &b, 2 * S);
    assert_int_equal(gw_ensure_target(e, 0)->outcome, GWE_UNCHANGED);
    assert_int_equal(b.writes, writes);
    assert_int_equal(eeprom_policy_count(eep, eeprom_reg_index(IOUT)), 1);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

/* IOUT_SET to 12.00 A by the lease holder, the caller believing the device holds `known`,
 * with the first write lost on the line; runs the job to its end. */
static gw_ensure_t *s_known_lost_write(bus_t *b, eeprom_policy_t *eep, int32_t holds, int32_t known)
{
    s_bus_init(b);
    b->reg[IOUT] = holds;
    b->drop_writes = 1;
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1200, 0xFFFF, false, NULL);
    assert_int_equal(gw_ensure_known(e, eep, known, 1 * S), 1);
    s_run(e, eep, b, 1 * S);
    return e;
}

/* A known value and a write lost on the line: the read-back shows the old value, the write is
 * taken back from the counters and sent again. */
static void test_known_lost_write_found_and_written_again(void **state)
{
    (void)state;
    bus_t b;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = s_known_lost_write(&b, eep, 1000, 1000);
    assert_int_equal(gw_ensure_target(e, 0)->outcome, GWE_WRITTEN);
    assert_int_equal(b.reg[IOUT], 1200);
    assert_int_equal(eeprom_policy_count(eep, eeprom_reg_index(IOUT)), 1);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

/* The cache is wrong (another master changed the register) and the write is lost: the
 * read-back matches neither value, so the job fails with a verify error instead of passing. */
static void test_known_wrong_and_write_lost_is_an_error(void **state)
{
    (void)state;
    bus_t b;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = s_known_lost_write(&b, eep, 1100, 1000);
    assert_int_equal(gw_ensure_error(e), GWE_ERR_VERIFY);
    assert_int_equal(gw_ensure_target(e, 0)->after, 1100);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

/* Masked and at-most targets need the device's own bits: they are always read. */
static void test_known_only_for_whole_registers(void **state)
{
    (void)state;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_PERSON, false);
    gw_ensure_add(e, 0x00C2, 0x0001, 0x0001, false, NULL);
    assert_int_equal(gw_ensure_read_due(e), -1);
    assert_int_equal(gw_ensure_known(e, eep, 0, 1 * S), 0);
    gw_ensure_destroy(&e);
    e = gw_ensure_new(3, EEPROM_BY_PERSON, false);
    gw_ensure_add_at_most(e, IOUT, 1500, NULL);
    assert_int_equal(gw_ensure_read_due(e), -1);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

/* A power cycle while a known value's write is on its way: the target starts again from a
 * read of the device (now on its stored value), and so does every later target of the job. */
static void test_power_cycle_after_known_write_reads_again(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[IOUT] = 1000;
    b.reg[DIRECTION] = 1;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    eeprom_policy_set_eep_off(eep, true); /* RAM-only currents: a power-up loses them */
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1500, 0xFFFF, false, NULL);
    gw_ensure_add(e, DIRECTION, 0, 0xFFFF, false, NULL);
    assert_int_equal(gw_ensure_known(e, eep, 1000, 1 * S), 1);
    bus_req_t req;
    assert_int_equal(gw_ensure_next(e, 1 * S, &req), 1);
    assert_int_equal(req.len, 2);
    gw_ensure_power_cycled(e); /* the device restarts: the write is lost with its RAM */
    bus_result_t r = {.status = BUS_WRITTEN, .req = req};
    assert_int_equal(gw_ensure_on_result(e, eep, &r, false, 0, 1 * S), GWE_EV_NONE);
    assert_int_equal(gw_ensure_read_due(e), -1);
    assert_int_equal(gw_ensure_known(e, eep, 1500, 1 * S), 0);
    assert_int_equal(gw_ensure_next(e, 1 * S, &req), 1);
    assert_int_equal(req.len, 0); /* read from the device */
    r = (bus_result_t){.status = BUS_OK, .req = req};
    assert_int_equal(gw_ensure_on_result(e, eep, &r, true, b.reg[IOUT], 1 * S), GWE_EV_READ);
    s_step(e, eep, &b, 1 * S); /* the write */
    s_step(e, eep, &b, 1 * S); /* its read-back */
    assert_int_equal(gw_ensure_target(e, 0)->outcome, GWE_WRITTEN);
    assert_false(gw_ensure_target(e, 0)->known);
    /* the next target is read too, whatever the caller believes */
    assert_int_equal(gw_ensure_read_due(e), -1);
    s_run(e, eep, &b, 1 * S);
    assert_int_equal(gw_ensure_target(e, 1)->outcome, GWE_WRITTEN);
    assert_int_equal(b.reg[IOUT], 1500);
    assert_int_equal(b.reg[DIRECTION], 0);
    assert_int_equal(eeprom_policy_total(eep), 0);
    gw_ensure_destroy(&e);
    eeprom_policy_destroy(&eep);
}

static void test_control_write_deferred_then_released(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[IOUT] = 1000;
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    assert_int_equal(s_one(eep, &b, EEPROM_BY_CONTROL, true, IOUT, 1200, 1 * S), GWE_WRITTEN);
    /* a higher current 5 s later: the spacing holds it back, with the time it may go */
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_CONTROL, true);
    gw_ensure_add(e, IOUT, 1400, 0xFFFF, false, NULL);
    s_run(e, eep, &b, 6 * S);
    const gwe_target_t *t = gw_ensure_target(e, 0);
    assert_int_equal(t->outcome, GWE_DEFERRED);
    assert_int_equal(t->until, 21 * S);
    assert_int_equal(b.reg[IOUT], 1200);
    uint32_t raw;
    assert_true(eeprom_policy_pending(eep, IOUT, &raw));
    assert_int_equal(raw, 1400);
    gw_ensure_destroy(&e);
    /* released at its time: the pending value goes out as a controller's write */
    uint16_t cmd;
    assert_false(eeprom_policy_due(eep, 20 * S, &cmd, &raw));
    assert_true(eeprom_policy_due(eep, 21 * S, &cmd, &raw));
    assert_int_equal(s_one(eep, &b, EEPROM_BY_CONTROL, true, cmd, (uint16_t)raw, 21 * S),
                     GWE_WRITTEN);
    assert_int_equal(b.reg[IOUT], 1400);
    assert_false(eeprom_policy_pending(eep, IOUT, NULL));
    eeprom_policy_destroy(&eep);
}

static void test_person_write_at_once_then_refused(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    eeprom_policy_t *eep = s_budget(1, 5, 20); /* one write a day: nothing refills here */
    int reserve = eeprom_policy_reserve(eep);
    assert_int_equal(reserve, 1);
    /* five cvset in a row, each within the spacing: each one lands */
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_one(eep, &b, EEPROM_BY_PERSON, true, VOUT, 2700 + i, 1 * S + i),
                         GWE_WRITTEN);
    assert_int_equal(b.reg[VOUT], 2703);
    /* one token left: kept for the lease holder, refused for anyone else */
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_PERSON, false);
    gw_ensure_add(e, VOUT, 2750, 0xFFFF, false, NULL);
    s_run(e, eep, &b, 2 * S);
    assert_int_equal(gw_ensure_target(e, 0)->outcome, GWE_REFUSED);
    assert_true(gw_ensure_target(e, 0)->until > 2 * S);
    assert_false(eeprom_policy_pending(eep, VOUT, NULL)); /* refused, never queued */
    gw_ensure_destroy(&e);
    assert_int_equal(s_one(eep, &b, EEPROM_BY_PERSON, true, VOUT, 2704, 2 * S), GWE_WRITTEN);
    /* spent: refused for the holder too */
    assert_int_equal(s_one(eep, &b, EEPROM_BY_PERSON, true, VOUT, 2705, 3 * S), GWE_REFUSED);
    assert_int_equal(b.reg[VOUT], 2704);
    assert_int_equal(eeprom_policy_total(eep), 5);
    eeprom_policy_destroy(&eep);
}

static void test_safety_writes_never_held_back(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    b.reg[OPERATION] = 1;
    b.reg[IOUT] = 3000;
    b.reg[REV_IOUT] = 3000;
    b.reg[VOUT] = 2800;
    b.reg[REV_VOUT] = 2400;
    eeprom_policy_t *eep = s_budget(1, 1, 20);
    assert_int_equal(s_one(eep, &b, EEPROM_BY_CONTROL, true, IOUT, 3100, 1 * S), GWE_WRITTEN);
    assert_true(eeprom_policy_tokens(eep, 1 * S) < 1);
    /* the bucket is empty and the spacing running: lowering a current, lowering the charge
     * voltage, raising the discharge end voltage and switching off all go out at once */
    for (eeprom_writer_t by = EEPROM_BY_PERSON; by <= EEPROM_BY_CONTROL; by++) {
        bool holder = by == EEPROM_BY_CONTROL;
        int32_t k = by == EEPROM_BY_PERSON ? 0 : 100;
        assert_int_equal(s_one(eep, &b, by, holder, IOUT, (uint16_t)(2000 - k), 2 * S),
                         GWE_WRITTEN);
        assert_int_equal(s_one(eep, &b, by, holder, REV_IOUT, (uint16_t)(2000 - k), 2 * S),
                         GWE_WRITTEN);
        assert_int_equal(s_one(eep, &b, by, holder, VOUT, (uint16_t)(2700 - k), 2 * S),
                         GWE_WRITTEN);
        assert_int_equal(s_one(eep, &b, by, holder, REV_VOUT, (uint16_t)(2450 + k), 2 * S),
                         GWE_WRITTEN);
    }
    assert_int_equal(s_one(eep, &b, EEPROM_BY_PERSON, false, OPERATION, 0, 2 * S), GWE_WRITTEN);
    /* counted, and each took its token: nine past the empty bucket are a debt of nine */
    assert_int_equal(eeprom_policy_total(eep), 10);
    assert_true(eeprom_policy_tokens(eep, 2 * S) < -8.99);
    assert_true(eeprom_policy_tokens(eep, 2 * S) > -9.01);
    /* the opposite directions need the budget: output on is refused for a person and
     * held back for a controller */
    assert_int_equal(s_one(eep, &b, EEPROM_BY_PERSON, true, OPERATION, 1, 3 * S), GWE_REFUSED);
    assert_int_equal(s_one(eep, &b, EEPROM_BY_CONTROL, true, OPERATION, 1, 3 * S), GWE_DEFERRED);
    assert_int_equal(s_one(eep, &b, EEPROM_BY_PERSON, true, IOUT, 2500, 3 * S), GWE_REFUSED);
    assert_int_equal(b.reg[OPERATION], 0);
    /* the gateway's safe state is never held back, whatever it writes */
    assert_int_equal(s_one(eep, &b, EEPROM_BY_SAFETY, true, OPERATION, 1, 3 * S), GWE_WRITTEN);
    assert_true(eeprom_policy_tokens(eep, 3 * S) < -9.99);
    eeprom_policy_destroy(&eep);
}

static void test_flood_costs_at_most_the_share(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    eeprom_policy_t *eep = s_budget(1095, 300, 20);
    int64_t now = 1 * S;
    /* an hour of on/off toggles from someone without the lease, ten a second */
    for (int i = 0; i < 36000; i++, now += S / 10)
        s_one(eep, &b, EEPROM_BY_PERSON, false, OPERATION, (uint16_t)(i % 2 == 0), now);
    double tokens = eeprom_policy_tokens(eep, now);
    assert_true(tokens >= eeprom_policy_reserve(eep) - 1);
    assert_true(tokens < eeprom_policy_reserve(eep) + 2);
    /* what the flood cost: the share above the reserve and the hour's refill, switch-ons and
     * switch-offs together, and at most the one switch-off after the last switch-on */
    uint64_t cost = eeprom_policy_total(eep);
    assert_true(cost <= (uint64_t)(300 - 75 + 1095.0 / 24 + 1));
    /* the lease holder still has its reserve */
    assert_int_equal(s_one(eep, &b, EEPROM_BY_CONTROL, true, IOUT, 1500, now), GWE_WRITTEN);
    eeprom_policy_destroy(&eep);
}

/* One job of two targets, as a charge (current up, output on) or a stop (current down, output
 * off) writes them; returns the writes it made. */
static int s_pair(eeprom_policy_t *eep, bus_t *b, bool holder, uint16_t iout, uint16_t op,
                  int64_t now)
{
    gw_ensure_t *e = gw_ensure_new(3, EEPROM_BY_PERSON, holder);
    gw_ensure_add(e, IOUT, iout, 0xFFFF, false, NULL);
    gw_ensure_add(e, OPERATION, op, 0xFFFF, false, NULL);
    s_run(e, eep, b, now);
    int n = gw_ensure_writes(e);
    gw_ensure_destroy(&e);
    return n;
}

static void test_charge_stop_alternation_within_the_budget(void **state)
{
    (void)state;
    /* a day of a person's charge and stop in turn, a pair a second: the stops from the lease
     * holder itself, then from a client without the lease */
    for (int other = 0; other < 2; other++) {
        bus_t b;
        s_bus_init(&b);
        eeprom_policy_t *eep = s_budget(1095, 300, 20);
        int64_t now = 1 * S;
        int stop_writes = 0, last_stop = 0;
        for (int i = 0; i < 86400; i++, now += S) {
            s_pair(eep, &b, true, 1000, 1, now);
            last_stop = s_pair(eep, &b, !other, 90, 0, now + S / 2);
            stop_writes += last_stop;
        }
        /* the bucket and the day's refill, the stops included, and the one stop after the
         * last write that took a whole token (before: up to twice that) */
        uint64_t cost = eeprom_policy_total(eep);
        assert_true(cost <= (uint64_t)(300 + 1095 + 2));
        assert_true(cost >= 300 + 1095 - 2);
        assert_true(stop_writes > 0);
        /* the stops were never refused: the device ends stopped */
        assert_int_equal(b.reg[OPERATION], 0);
        assert_int_equal(b.reg[IOUT], 90);
        assert_true(eeprom_policy_tokens(eep, now) > -2.01);
        eeprom_policy_destroy(&eep);
    }
}

static void test_no_daily_budget_only_spacing(void **state)
{
    (void)state;
    bus_t b;
    s_bus_init(&b);
    eeprom_policy_t *eep = eeprom_policy_new(20 * S);
    assert_int_equal(s_one(eep, &b, EEPROM_BY_CONTROL, true, IOUT, 1000, 1 * S), GWE_WRITTEN);
    assert_int_equal(s_one(eep, &b, EEPROM_BY_CONTROL, true, IOUT, 1100, 2 * S), GWE_DEFERRED);
    /* a person's write does not wait for the spacing */
    assert_int_equal(s_one(eep, &b, EEPROM_BY_PERSON, false, IOUT, 1200, 3 * S), GWE_WRITTEN);
    assert_false(eeprom_policy_pending(eep, IOUT, NULL)); /* the newer write supersedes */
    eeprom_policy_destroy(&eep);
}

static void test_toward_safety(void **state)
{
    (void)state;
    assert_true(bic_write_toward_safety(OPERATION, 1, 0));
    assert_false(bic_write_toward_safety(OPERATION, 0, 1));
    assert_true(bic_write_toward_safety(IOUT, 1000, 900));
    assert_false(bic_write_toward_safety(IOUT, 900, 1000));
    assert_true(bic_write_toward_safety(REV_IOUT, 1000, 900));
    assert_true(bic_write_toward_safety(VOUT, 2760, 2700));
    assert_false(bic_write_toward_safety(VOUT, 2700, 2760));
    assert_true(bic_write_toward_safety(REV_VOUT, 2400, 2450));
    assert_false(bic_write_toward_safety(REV_VOUT, 2450, 2400));
    assert_false(bic_write_toward_safety(0x00C2, 0, 1));
    assert_false(bic_write_toward_safety(DIRECTION, 1, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_value_skipped),
        cmocka_unit_test(test_written_and_verified),
        cmocka_unit_test(test_bits_under_mask_and_at_most),
        cmocka_unit_test(test_verify_mismatch_fails),
        cmocka_unit_test(test_lost_write_uncounted_and_written_again),
        cmocka_unit_test(test_tolerated_mismatch_is_a_finding),
        cmocka_unit_test(test_timeout_ends_the_job),
        cmocka_unit_test(test_device_offline_in_the_middle),
        cmocka_unit_test(test_power_cycle_in_the_middle),
        cmocka_unit_test(test_known_value_goes_straight_to_the_write),
        cmocka_unit_test(test_known_equal_is_read_never_skipped),
        cmocka_unit_test(test_known_lost_write_found_and_written_again),
        cmocka_unit_test(test_known_wrong_and_write_lost_is_an_error),
        cmocka_unit_test(test_known_only_for_whole_registers),
        cmocka_unit_test(test_power_cycle_after_known_write_reads_again),
        cmocka_unit_test(test_control_write_deferred_then_released),
        cmocka_unit_test(test_person_write_at_once_then_refused),
        cmocka_unit_test(test_safety_writes_never_held_back),
        cmocka_unit_test(test_flood_costs_at_most_the_share),
        cmocka_unit_test(test_charge_stop_alternation_within_the_budget),
        cmocka_unit_test(test_no_daily_budget_only_spacing),
        cmocka_unit_test(test_toward_safety),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
