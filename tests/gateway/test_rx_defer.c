/*
 * Unit tests for rx_defer: when the gateway reads an slcan adapter. No deferral before the
 * round trip is known, a read's deferral to the shortest recent round trip and a margin, a
 * write's to the next bus deadline, replies read late not taken as samples, one read in
 * RX_DEFER_PROMPT_EVERY polled as it comes, none on an adapter without acks; and with the real
 * scheduler: a reply read at the end of a deferral never lets the next request out earlier
 * than the same reply read as it came.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bus_sched.h"
#include "rx_defer.h"

#define MS 1000
#define IDLE INT64_MAX

/* A read sent at t, its reply read as it came at t + rtt (the adapter polled). */
static void s_prompt(rx_defer_t *d, int64_t t, int64_t rtt)
{
    rx_defer_sent(d, t, true, IDLE);
    int64_t dl = IDLE;
    assert_true(rx_defer_poll(d, &dl));
    assert_false(rx_defer_due(d, t + rtt));
    rx_defer_reply(d, t + rtt);
}

/* A fresh rx_defer with RX_DEFER_TRUST replies of rtt read as they came; returns the time
 * after them. */
static int64_t s_trusted(rx_defer_t *d, int64_t rtt)
{
    rx_defer_init(d, true);
    int64_t t = 0;
    for (int i = 0; i < RX_DEFER_TRUST; i++, t += 20 * MS)
        s_prompt(d, t, rtt);
    return t;
}

/* The end of the deferral of the read sent at t (0: not deferred). */
static int64_t s_until(rx_defer_t *d, int64_t t)
{
    rx_defer_sent(d, t, true, IDLE);
    int64_t dl = IDLE;
    if (rx_defer_poll(d, &dl))
        return 0;
    assert_true(dl > t && dl < IDLE);
    return dl;
}

static void test_no_deferral_before_round_trip_known(void **state)
{
    (void)state;
    rx_defer_t d;
    rx_defer_init(&d, true);
    int64_t t = 0;
    for (int i = 0; i < RX_DEFER_TRUST; i++, t += 20 * MS) {
        int64_t dl = IDLE;
        rx_defer_sent(&d, t, true, IDLE);
        assert_true(rx_defer_poll(&d, &dl));
        assert_true(dl == IDLE);
        rx_defer_reply(&d, t + 1100 + i * 10);
    }
    /* then to the shortest round trip and the margin */
    assert_true(s_until(&d, t) == t + 1100 + RX_DEFER_MARGIN_US);
}

static void test_deferred_read_ends_with_one_read(void **state)
{
    (void)state;
    rx_defer_t d;
    int64_t t = s_trusted(&d, 1000);
    int64_t until = s_until(&d, t);
    /* a wake-up for something else before its end: the adapter stays unwatched and unread */
    int64_t dl = IDLE;
    assert_false(rx_defer_due(&d, until - 1));
    assert_false(rx_defer_poll(&d, &dl));
    assert_true(dl == until);
    /* at its end: read though the poll did not watch it; the reply found is no sample */
    assert_true(rx_defer_due(&d, until + 40));
    rx_defer_reply(&d, until + 40);
    assert_int_equal(d.caught, 1);
    assert_int_equal(d.nrtt, RX_DEFER_TRUST);
    /* watched again from the next poll on */
    assert_true(rx_defer_poll(&d, &dl));
}

static void test_reply_after_deferral_is_a_sample(void **state)
{
    (void)state;
    rx_defer_t d;
    int64_t t = s_trusted(&d, 1000);
    int64_t until = s_until(&d, t);
    /* only the ack was in at the end: the reply comes later, read as it came */
    assert_true(rx_defer_due(&d, until));
    int64_t dl = IDLE;
    assert_true(rx_defer_poll(&d, &dl));
    rx_defer_reply(&d, t + 3000);
    assert_int_equal(d.caught, 0);
    assert_int_equal(d.nrtt, RX_DEFER_TRUST + 1);
}

static void test_estimate_follows_the_bus(void **state)
{
    (void)state;
    rx_defer_t d;
    int64_t t = s_trusted(&d, 1000);
    /* the round trip grows (a slower adapter): a window of prompt samples later it is used */
    for (int i = 0; i < RX_DEFER_WINDOW; i++, t += 20 * MS) {
        rx_defer_sent(&d, t, true, IDLE);
        int64_t dl = IDLE;
        if (!rx_defer_poll(&d, &dl))
            assert_true(rx_defer_due(&d, dl)); /* only the ack in at the end */
        assert_true(rx_defer_poll(&d, &dl));
        rx_defer_reply(&d, t + 4000);
    }
    assert_true(s_until(&d, t) == t + 4000 + RX_DEFER_MARGIN_US);
    /* and never longer than RX_DEFER_READ_MAX_US */
    t = s_trusted(&d, 40 * MS);
    assert_true(s_until(&d, t) == t + RX_DEFER_READ_MAX_US);
}

static void test_one_read_in_so_many_prompt(void **state)
{
    (void)state;
    rx_defer_t d;
    rx_defer_init(&d, true);
    int64_t t = 0;
    int prompt = 0, n = 10 * RX_DEFER_PROMPT_EVERY;
    for (int i = 0; i < n; i++, t += 20 * MS) {
        int64_t until = s_until(&d, t);
        if (!until) {
            prompt++;
            rx_defer_reply(&d, t + 1000);
        } else {
            assert_true(rx_defer_due(&d, until));
            rx_defer_reply(&d, until);
        }
    }
    /* the first reads until the estimate is trusted, then one in RX_DEFER_PROMPT_EVERY */
    assert_true(prompt >= n / RX_DEFER_PROMPT_EVERY && prompt <= n / RX_DEFER_PROMPT_EVERY + 4);
}

static void test_write_ack_read_at_next_bus_deadline(void **state)
{
    (void)state;
    rx_defer_t d;
    rx_defer_init(&d, true);
    int64_t dl = IDLE;
    /* a write, the next request 35 ms later: the ack waits for that wake-up */
    rx_defer_sent(&d, 0, false, 35 * MS);
    assert_false(rx_defer_poll(&d, &dl));
    assert_true(dl == 35 * MS);
    assert_true(rx_defer_due(&d, 35 * MS));
    /* nothing queued after it: read within RX_DEFER_WRITE_MAX_US */
    rx_defer_sent(&d, 100 * MS, false, IDLE);
    dl = IDLE;
    assert_false(rx_defer_poll(&d, &dl));
    assert_true(dl == 100 * MS + RX_DEFER_WRITE_MAX_US);
    /* a bus deadline already due: not deferred */
    rx_defer_sent(&d, 300 * MS, false, 300 * MS);
    dl = IDLE;
    assert_true(rx_defer_poll(&d, &dl));
}

static void test_adapter_without_acks_never_deferred(void **state)
{
    (void)state;
    rx_defer_t d;
    rx_defer_init(&d, false);
    int64_t t = 0;
    for (int i = 0; i < 3 * RX_DEFER_PROMPT_EVERY; i++, t += 20 * MS) {
        assert_true(s_until(&d, t) == 0);
        rx_defer_reply(&d, t + 1000);
        rx_defer_sent(&d, t + 5 * MS, false, t + 40 * MS);
        int64_t dl = IDLE;
        assert_true(rx_defer_poll(&d, &dl));
    }
    assert_int_equal(d.deferred, 0);
}

/* The gateway's loop in small: a scheduler and one device that sees request i x[i] after it
 * left and answers r[i] later, its reply polled as it comes (defer false) or read at the end of
 * the deferral. Fills when the scheduler let each of n requests start. */
static void s_run(bool defer, int n, const int64_t *x, const int64_t *r, int64_t *starts)
{
    bus_sched_cfg_t cfg;
    bus_sched_cfg_default(&cfg);
    bus_sched_t *s = bus_sched_new(&cfg);
    assert_non_null(s);
    rx_defer_t d;
    rx_defer_init(&d, defer);
    int64_t now = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(bus_sched_submit(s, BUS_PRIO_CLIENT, &(bus_req_t){.cmd = 0x0060}, 1), 0);
        now = bus_sched_deadline(s) > now ? bus_sched_deadline(s) : now;
        bus_req_t tx;
        assert_int_equal(bus_sched_tick(s, now, &tx), 1);
        starts[i] = now;
        rx_defer_sent(&d, now, true, bus_sched_deadline(s));
        int64_t arrive = now + x[i] + r[i], dl = IDLE, read_at = arrive;
        if (!rx_defer_poll(&d, &dl)) {
            assert_true(rx_defer_due(&d, dl));
            read_at = dl > arrive ? dl : arrive; /* in at the end, or read when it comes */
        }
        uint8_t data[4] = {0x60, 0x00, 1, 0};
        assert_int_equal(bus_sched_on_rx(s, read_at, 0x000C0200u, data, 4), 1);
        rx_defer_reply(&d, read_at);
        bus_result_t res;
        assert_int_equal(bus_sched_result(s, &res), 1);
        now = read_at;
    }
    bus_sched_destroy(&s);
}

static void test_late_read_never_lets_next_request_out_earlier(void **state)
{
    (void)state;
    enum { N = 300 };
    int64_t x[N], r[N], prompt[N], deferred[N];
    /* the device answers 1 ms after it saw a request, which reaches it 0-0.9 ms after it left,
     * now and then 3 ms, once 7 ms */
    for (int i = 0; i < N; i++) {
        r[i] = 1000;
        x[i] = (i * 37) % 900 + (i % 23 == 5 ? 3000 : 0) + (i == 100 ? 7000 : 0);
    }
    s_run(false, N, x, r, prompt);
    s_run(true, N, x, r, deferred);
    for (int i = 1; i < N; i++) {
        /* each period at least the one kept with every reply read as it came, and the device
         * sees at least 20 ms between two requests */
        assert_true(deferred[i] - deferred[i - 1] >= prompt[i] - prompt[i - 1]);
        assert_true(deferred[i] + x[i] - (deferred[i - 1] + x[i - 1]) >= 20 * MS);
    }
}

static void test_shorter_round_trips_learnt_within_prompt_reads(void **state)
{
    (void)state;
    enum { N = 200, DROP = 40 };
    int64_t x[N], r[N], starts[N];
    /* the device's answer comes 0.5 ms sooner from request DROP on: replies caught at the end of
     * a deferral do not show it, only reads polled as they come do (one in
     * RX_DEFER_PROMPT_EVERY, and replies not in at the end): until one of them has shown it,
     * the device may see the period short by at most that difference, which the gateway's
     * pacing guard (0.5 ms beyond the 20 ms) covers */
    for (int i = 0; i < N; i++) {
        r[i] = i < DROP ? 1500 : 1000;
        x[i] = (i * 37) % 900 + (i % 17 == 3 ? 2500 : 0);
    }
    s_run(true, N, x, r, starts);
    for (int i = 1; i < N; i++) {
        int64_t seen = starts[i] + x[i] - (starts[i - 1] + x[i - 1]);
        assert_true(seen >= (i <= DROP ? 20 * MS : 20 * MS - 500));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_deferral_before_round_trip_known),
        cmocka_unit_test(test_deferred_read_ends_with_one_read),
        cmocka_unit_test(test_reply_after_deferral_is_a_sample),
        cmocka_unit_test(test_estimate_follows_the_bus),
        cmocka_unit_test(test_one_read_in_so_many_prompt),
        cmocka_unit_test(test_write_ack_read_at_next_bus_deadline),
        cmocka_unit_test(test_adapter_without_acks_never_deferred),
        cmocka_unit_test(test_late_read_never_lets_next_request_out_earlier),
        cmocka_unit_test(test_shorter_round_trips_learnt_within_prompt_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
