/*
 * Unit tests for bus_sched's broadcast writes: identical client writes queued for every BIC
 * of the broadcast set go out as one frame to the broadcast ID, each request with its own
 * result; never with one value different, across a (device, flow) pair's order, for reads,
 * the gateway's own requests, or while another CAN master is on the bus; the wait for the
 * partners is bounded.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bus_sched.h"

#define MS 1000
#define SET012 0x7u
/* a write of v to register c of device a, asked by client flow f */
#define WRF(a, c, v, f)                                                                            \
    (&(bus_req_t){.addr = (a), .cmd = (c), .len = 2, .data = {(v)&0xff, (v) >> 8}, .flow = (f)})
#define RDF(a, c, f) (&(bus_req_t){.addr = (a), .cmd = (c), .flow = (f)})
#define IOUT 0x30

static bus_sched_t *s_new(int64_t hold_us)
{
    bus_sched_cfg_t cfg;
    bus_sched_cfg_default(&cfg);
    cfg.write_extra_us = 15 * MS;
    cfg.bcast_hold_us = hold_us;
    bus_sched_t *s = bus_sched_new(&cfg);
    assert_non_null(s);
    bus_sched_set_broadcast(s, SET012);
    return s;
}

/* The three devices' setpoint writes of one controller (a flow per device link). */
static void s_submit3(bus_sched_t *s, uint16_t v0, uint16_t v1, uint16_t v2)
{
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(0, IOUT, v0, 100), 10), 0);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(1, IOUT, v1, 101), 11), 0);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(2, IOUT, v2, 102), 12), 0);
}

/* Sends everything queued at the pacing; returns the frames sent, their addresses in addr. */
static int s_drain(bus_sched_t *s, int64_t *now, uint8_t *addr, int max)
{
    int n = 0;
    bus_req_t tx;
    while (!bus_sched_idle(s) && n < max) {
        int64_t dl = bus_sched_deadline(s);
        if (dl > *now)
            *now = dl;
        if (bus_sched_tick(s, *now, &tx))
            addr[n++] = tx.addr;
    }
    return n;
}

static void test_identical_writes_merge(void **state)
{
    (void)state;
    bus_sched_t *s = s_new(0);
    s_submit3(s, 1500, 1500, 1500);
    bus_req_t tx;
    assert_int_equal(bus_sched_tick(s, 1000 * MS, &tx), 1);
    assert_int_equal(tx.addr, BUS_ADDR_BROADCAST);
    assert_int_equal(tx.cmd, IOUT);
    assert_int_equal(tx.len, 2);
    assert_int_equal(tx.data[0] | tx.data[1] << 8, 1500);
    /* every request has its own result, as if written alone */
    bus_result_t r;
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bus_sched_result(s, &r), 1);
        assert_int_equal(r.status, BUS_WRITTEN);
        assert_int_equal(r.attempts, 1);
        assert_int_equal(r.req.addr, r.tag - 10);
        assert_int_equal(r.req.flow, 100 + r.req.addr);
        seen |= 1 << r.req.addr;
    }
    assert_int_equal(seen, 0x7);
    assert_int_equal(bus_sched_result(s, &r), 0);
    assert_true(bus_sched_idle(s));
    const bus_sched_stats_t *st = bus_sched_stats(s);
    assert_int_equal(st->frames_tx, 1);
    assert_int_equal(st->broadcasts, 1);
    assert_int_equal(st->merged, 3);
    /* one write's pacing after it */
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_CLIENT, RDF(1, 0x60, 101), 20), 0);
    assert_int_equal(bus_sched_deadline(s), 1000 * MS + 20 * MS + 15 * MS);
    bus_sched_destroy(&s);
}

static void test_one_value_different_no_merge(void **state)
{
    (void)state;
    bus_sched_t *s = s_new(3 * MS);
    s_submit3(s, 1500, 1500, 1501);
    int64_t now = 1000 * MS;
    uint8_t addr[8];
    /* no wait either: every device has its write queued, they just differ; once one went
     * alone the others do not wait for it */
    assert_int_equal(s_drain(s, &now, addr, 8), 3);
    assert_int_equal(addr[0], 0);
    assert_int_equal(addr[1], 1);
    assert_int_equal(addr[2], 2);
    assert_int_equal(now, 1000 * MS + 2 * 35 * MS);
    assert_int_equal(bus_sched_stats(s)->broadcasts, 0);
    assert_int_equal(bus_sched_stats(s)->merged, 0);
    bus_sched_destroy(&s);
}

static void test_pair_order_holds(void **state)
{
    (void)state;
    bus_sched_t *s = s_new(0);
    /* device 1's link has an earlier write of another value queued: its 1500 may not overtake
     * it, so there is no broadcast of 1500 for all three */
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(0, IOUT, 1500, 100), 10), 0);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(1, IOUT, 900, 101), 11), 0);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(1, IOUT, 1500, 101), 12), 0);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(2, IOUT, 1500, 102), 13), 0);
    int64_t now = 0;
    bus_req_t tx;
    int v1[2], n1 = 0;
    uint64_t frames = 0;
    while (!bus_sched_idle(s)) {
        if (bus_sched_deadline(s) > now)
            now = bus_sched_deadline(s);
        if (!bus_sched_tick(s, now, &tx))
            continue;
        frames++;
        assert_int_not_equal(tx.addr, BUS_ADDR_BROADCAST);
        if (tx.addr == 1)
            v1[n1++] = tx.data[0] | tx.data[1] << 8;
    }
    assert_int_equal(frames, 4);
    assert_int_equal(n1, 2);
    assert_int_equal(v1[0], 900);
    assert_int_equal(v1[1], 1500);
    assert_int_equal(bus_sched_stats(s)->broadcasts, 0);
    bus_sched_destroy(&s);
}

static void test_reads_and_gateway_writes_never_merge(void **state)
{
    (void)state;
    bus_sched_t *s = s_new(0);
    for (int a = 0; a < 3; a++)
        assert_int_equal(bus_sched_submit(s, BUS_PRIO_CLIENT, RDF(a, 0x60, 100 + a), a), 0);
    int64_t now = 0;
    uint8_t addr[8];
    bus_req_t tx;
    /* reads: one each, answered */
    for (int i = 0; i < 3; i++) {
        if (bus_sched_deadline(s) > now)
            now = bus_sched_deadline(s);
        assert_int_equal(bus_sched_tick(s, now, &tx), 1);
        assert_int_equal(tx.addr, i);
        uint8_t d[4] = {0x60, 0, 1, 0};
        now += 2 * MS;
        assert_int_equal(bus_sched_on_rx(s, now, 0x000C0200u | tx.addr, d, 4), 1);
    }
    /* the gateway's own writes (flow 0: safe state, deferred writes) stay per device */
    for (int a = 0; a < 3; a++)
        assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(a, IOUT, 0, 0), 10 + a), 0);
    assert_int_equal(s_drain(s, &now, addr, 8), 3);
    for (int i = 0; i < 3; i++)
        assert_int_not_equal(addr[i], BUS_ADDR_BROADCAST);
    assert_int_equal(bus_sched_stats(s)->broadcasts, 0);
    bus_sched_destroy(&s);
}

static void test_set_of_one_or_none_never_merges(void **state)
{
    (void)state;
    bus_sched_t *s = s_new(3 * MS);
    bus_sched_set_broadcast(s, 0x1);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(0, IOUT, 1500, 100), 10), 0);
    bus_req_t tx;
    assert_int_equal(bus_sched_tick(s, 0, &tx), 1); /* no wait for partners */
    assert_int_equal(tx.addr, 0);
    bus_sched_set_broadcast(s, 0);
    s_submit3(s, 1500, 1500, 1500);
    int64_t now = 0;
    uint8_t addr[8];
    assert_int_equal(s_drain(s, &now, addr, 8), 3);
    assert_int_equal(bus_sched_stats(s)->broadcasts, 0);
    bus_sched_destroy(&s);
}

static void test_wait_for_partners_bounded(void **state)
{
    (void)state;
    bus_sched_t *s = s_new(3 * MS);
    bus_req_t tx;
    /* two of three there: the write waits for the third, at most 3 ms */
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(0, IOUT, 1500, 100), 10), 0);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(1, IOUT, 1500, 101), 11), 0);
    assert_int_equal(bus_sched_tick(s, 1000 * MS, &tx), 0);
    assert_int_equal(bus_sched_deadline(s), 1003 * MS);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(2, IOUT, 1500, 102), 12), 0);
    assert_int_equal(bus_sched_tick(s, 1001 * MS, &tx), 1);
    assert_int_equal(tx.addr, BUS_ADDR_BROADCAST);
    assert_int_equal(bus_sched_stats(s)->merged, 3);
    /* the third never comes: device 0's write goes alone when the wait is over */
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(0, IOUT, 800, 100), 20), 0);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(1, IOUT, 800, 101), 21), 0);
    int64_t t = 1001 * MS + 35 * MS;
    assert_int_equal(bus_sched_deadline(s), t);
    assert_int_equal(bus_sched_tick(s, t, &tx), 0);
    assert_int_equal(bus_sched_deadline(s), t + 3 * MS);
    assert_int_equal(bus_sched_tick(s, t + 3 * MS - 1, &tx), 0);
    assert_int_equal(bus_sched_tick(s, t + 3 * MS, &tx), 1);
    assert_true(tx.addr == 0 || tx.addr == 1);
    /* and the other one, queued before that went alone, does not wait again */
    assert_int_equal(bus_sched_tick(s, t + 3 * MS + 35 * MS, &tx), 1);
    assert_true(tx.addr == 0 || tx.addr == 1);
    assert_int_equal(bus_sched_stats(s)->broadcasts, 1);
    bus_sched_destroy(&s);
}

static void test_no_merge_with_another_master(void **state)
{
    (void)state;
    bus_sched_t *s = s_new(0);
    uint8_t write[4] = {IOUT, 0x00, 0xE8, 0x03}; /* another master's IOUT_SET to device 1 */
    assert_int_equal(bus_sched_on_rx(s, 100 * MS, 0x000C0301, write, 4), 0);
    s_submit3(s, 1500, 1500, 1500);
    int64_t now = 200 * MS;
    uint8_t addr[8];
    assert_int_equal(s_drain(s, &now, addr, 8), 3);
    assert_int_equal(bus_sched_stats(s)->broadcasts, 0);
    /* a minute of quiet later (the default) they merge again */
    s_submit3(s, 1600, 1600, 1600);
    now = 100 * MS + 60000 * MS;
    assert_int_equal(s_drain(s, &now, addr, 8), 1);
    assert_int_equal(addr[0], BUS_ADDR_BROADCAST);
    /* the adapter's echo of the broadcast frame is not another master */
    uint8_t echo[4] = {IOUT, 0x00, 1600 & 0xff, 1600 >> 8};
    assert_int_equal(bus_sched_on_rx(s, now + 1 * MS, 0x000C03FF, echo, 4), 0);
    assert_int_equal(bus_sched_stats(s)->foreign, 1);
    bus_sched_destroy(&s);
}

static void test_merged_writes_take_their_turns(void **state)
{
    (void)state;
    /* a person's write to device 0 (another flow) was queued first: the controller's three
     * identical writes still merge (each the first of its own pair), in the turn the
     * fairness gives them, and device 0 gets both writes in the order of their pairs' turns */
    bus_sched_t *s = s_new(0);
    assert_int_equal(bus_sched_submit(s, BUS_PRIO_SAFETY, WRF(0, IOUT, 700, 7), 1), 0);
    s_submit3(s, 1500, 1500, 1500);
    int64_t now = 0;
    uint8_t addr[8];
    assert_int_equal(s_drain(s, &now, addr, 8), 2);
    assert_int_equal(addr[0], 0);
    assert_int_equal(addr[1], BUS_ADDR_BROADCAST);
    bus_result_t r;
    int n = 0;
    while (bus_sched_result(s, &r)) {
        assert_int_equal(r.status, BUS_WRITTEN);
        n++;
    }
    assert_int_equal(n, 4);
    bus_sched_destroy(&s);
}

/* What the random mix has promised and seen so far. */
enum { NDEV = 8, NFLOW = 4, MAXREQ = 4000 };
typedef struct {
    uint64_t seq_of_tag[MAXREQ];
    uint64_t last_seq[NDEV][NFLOW + 1];
    bool done[MAXREQ];
    int want[NDEV]; /* IOUT_SET as the last write result reported it */
    int submitted, finished;
} mix_t;

/* One result: exactly one per request, a pair's results in its order. */
static void s_account(mix_t *m, const bus_result_t *r)
{
    assert_true(r->tag < (uint64_t)m->submitted && !m->done[r->tag]);
    m->done[r->tag] = true;
    m->finished++;
    uint64_t *ls = &m->last_seq[r->req.addr][r->req.flow];
    assert_true(m->seq_of_tag[r->tag] > *ls);
    *ls = m->seq_of_tag[r->tag];
    if (r->status == BUS_WRITTEN)
        m->want[r->req.addr] = r->req.data[0] | r->req.data[1] << 8;
}

/* A random mix of reads and writes of several clients on eight devices, three of them in the
 * broadcast set: every request gets exactly one result, each (device, flow) pair's results
 * come in the order it submitted them, the pacing holds (a broadcast frame counts as one
 * write), a broadcast frame carries identical writes of a client for each device of the set
 * and nothing else, and each device ends with what the last write reported for it says. */
static void test_random_mix_keeps_every_promise(void **state)
{
    (void)state;
    bus_sched_t *s = s_new(3 * MS);
    static mix_t m;
    memset(&m, 0, sizeof m);
    int reg[NDEV] = {0}; /* IOUT_SET as the frames on the bus set it */
    uint32_t rnd = 777;
    int broadcasts = 0;
    int64_t last_start = -1000 * MS, last_reply = -1000 * MS;
    bool last_write = false;
    int pending = -1;
    int64_t reply_at = 0;
    uint16_t reply_cmd = 0;
    bus_req_t tx;
    bus_result_t r;
    for (int64_t t = 0; t < 30000 * MS || !bus_sched_idle(s); t += 100) {
        rnd = rnd * 1103515245u + 12345u;
        if (t < 30000 * MS && (rnd >> 16) % 300 == 0) {
            int burst = (rnd >> 4) % 3 == 0 ? 3 : 1; /* a group's three writes at once */
            uint16_t v = (uint16_t)(100 + (rnd >> 8) % 3);
            for (int i = 0; i < burst && m.submitted < MAXREQ; i++) {
                rnd = rnd * 1103515245u + 12345u;
                uint8_t a = burst == 3 ? (uint8_t)i : (uint8_t)((rnd >> 9) % NDEV);
                uint32_t f = burst == 3 ? 1 + (uint32_t)i : (uint32_t)((rnd >> 5) % (NFLOW + 1));
                bool wr = burst == 3 || (rnd >> 12) % 2;
                bus_req_t q = {.addr = a, .cmd = wr ? IOUT : 0x60, .flow = f};
                if (wr) {
                    q.len = 2;
                    q.data[0] = v & 0xff;
                    q.data[1] = v >> 8;
                }
                /* one queue: a pair's order holds within a queue (priorities reorder) */
                if (bus_sched_submit(s, BUS_PRIO_SAFETY, &q, (uint64_t)m.submitted) == 0) {
                    m.seq_of_tag[m.submitted] = (uint64_t)m.submitted + 1;
                    m.submitted++;
                }
            }
        }
        if (pending >= 0 && t >= reply_at) {
            uint8_t d[4] = {reply_cmd & 0xff, reply_cmd >> 8, 1, 0};
            if (bus_sched_on_rx(s, t, 0x000C0200u | (unsigned)pending, d, 4))
                last_reply = t;
            pending = -1;
        }
        while (bus_sched_result(s, &r)) /* reads answered or timed out */
            s_account(&m, &r);
        if (!bus_sched_tick(s, t, &tx))
            continue;
        assert_true(t - last_start >= 20 * MS + (last_write ? 15 * MS : 0));
        assert_true(t - last_reply >= 5 * MS);
        last_start = t;
        last_write = tx.len > 0;
        int v = tx.data[0] | tx.data[1] << 8, seen_set = 0;
        if (tx.addr == BUS_ADDR_BROADCAST) {
            broadcasts++;
            for (int a = 0; a < 3; a++)
                reg[a] = v;
        } else if (tx.len) {
            reg[tx.addr] = v;
        } else {
            pending = tx.addr;
            reply_cmd = tx.cmd;
            reply_at = t + (int64_t)(1 + (rnd >> 20) % 30) * MS;
        }
        while (bus_sched_result(s, &r)) {
            s_account(&m, &r);
            if (tx.addr == BUS_ADDR_BROADCAST) {
                assert_int_equal(r.status, BUS_WRITTEN);
                assert_true(r.req.addr < 3 && r.req.flow != 0);
                assert_int_equal(r.req.data[0] | r.req.data[1] << 8, v);
                seen_set |= 1 << r.req.addr;
            }
        }
        if (tx.addr == BUS_ADDR_BROADCAST)
            assert_int_equal(seen_set, 0x7);
    }
    assert_int_equal(m.finished, m.submitted);
    assert_true(m.submitted > 200);
    assert_true(broadcasts > 10);
    for (int a = 0; a < NDEV; a++)
        assert_int_equal(reg[a], m.want[a]);
    bus_sched_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_writes_merge),
        cmocka_unit_test(test_one_value_different_no_merge),
        cmocka_unit_test(test_pair_order_holds),
        cmocka_unit_test(test_reads_and_gateway_writes_never_merge),
        cmocka_unit_test(test_set_of_one_or_none_never_merges),
        cmocka_unit_test(test_wait_for_partners_bounded),
        cmocka_unit_test(test_no_merge_with_another_master),
        cmocka_unit_test(test_merged_writes_take_their_turns),
        cmocka_unit_test(test_random_mix_keeps_every_promise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
