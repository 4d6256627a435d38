/* test_sim_models.c - the battery model, the simulated bus (reply delay, injected late,
 * dropped and duplicated replies, pacing violations, frame log) and the household replay
 * (CSV validation with line numbers, zero-order hold, transients, meter reading). */
#include "sim_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "battery.h"
#include "household.h"
#include "sim_bus.h"

/* ---- battery ---- */

static void test_battery_defaults_and_ocv(void **state)
{
    (void)state;
    battery_config_t c;
    battery_config_defaults(&c);
    assert_int_equal(c.cells_series, 8);
    assert_true(c.capacity_ah == 280 && c.r_internal_ohm == 0.010 && c.soc_pct == 50);
    battery_t *b = battery_new(&c);
    assert_non_null(b);
    assert_true(fabs(battery_ocv_v(b) - 8 * battery_lifepo4_cell_ocv(50)) < 1e-9);
    /* LiFePO4: steep ends, flat middle, monotonic. */
    double prev = 0;
    for (int soc = 0; soc <= 100; soc += 5) {
        double v = battery_lifepo4_cell_ocv(soc);
        assert_true(v >= prev);
        prev = v;
    }
    assert_true(battery_lifepo4_cell_ocv(0) < 2.8);
    assert_true(battery_lifepo4_cell_ocv(100) > 3.4);
    assert_true(battery_lifepo4_cell_ocv(60) - battery_lifepo4_cell_ocv(40) < 0.05);
    assert_true(battery_lifepo4_cell_ocv(-5) == battery_lifepo4_cell_ocv(0));
    /* Terminal voltage under load: OCV + I x R. */
    assert_true(fabs(battery_terminal_v(b, 50) - (battery_ocv_v(b) + 0.5)) < 1e-9);
    assert_true(fabs(battery_terminal_v(b, -50) - (battery_ocv_v(b) - 0.5)) < 1e-9);
    battery_destroy(&b);
    assert_null(b);
    battery_destroy(&b);
    battery_destroy(NULL);

    assert_int_equal(battery_config_for_variant(&c, 48), 0);
    assert_int_equal(c.cells_series, 16);
    assert_true(fabs(c.capacity_ah - 140) < 1e-9);
    assert_int_equal(battery_config_for_variant(&c, 36), -1);
}

static void test_battery_step_soc_energy(void **state)
{
    (void)state;
    battery_config_t c;
    battery_config_defaults(&c);
    battery_t *b = battery_new(&c);
    /* 28 A for an hour into 280 Ah = +10 % SOC. */
    for (int i = 0; i < 3600; i++)
        assert_true(fabs(battery_step(b, 28, 1.0) - 28) < 1e-12);
    assert_true(fabs(battery_soc_pct(b) - 60) < 1e-6);
    assert_true(fabs(battery_charged_ah(b) - 28) < 1e-6);
    double wh = battery_charged_wh(b);
    assert_true(wh > 28 * 26.5 && wh < 28 * 27);
    for (int i = 0; i < 3600; i++)
        battery_step(b, -28, 1.0);
    assert_true(fabs(battery_soc_pct(b) - 50) < 1e-6);
    assert_true(battery_discharged_wh(b) < wh); /* losses in R both ways */
    assert_true(fabs(battery_current_a(b) + 28) < 1e-12);
    assert_true(battery_voltage_v(b) < battery_ocv_v(b));
    /* Non-finite current is treated as none; dt <= 0 changes nothing. */
    double soc = battery_soc_pct(b);
    battery_step(b, NAN, 10);
    battery_step(b, 100, 0);
    battery_step(b, 100, -1);
    assert_true(battery_soc_pct(b) == soc);
    battery_set_soc(b, 150);
    assert_true(battery_soc_pct(b) == 100);
    battery_set_soc(b, NAN);
    assert_true(battery_soc_pct(b) == 100);
    battery_destroy(&b);
}

static void test_battery_bounds(void **state)
{
    (void)state;
    battery_config_t c;
    battery_config_defaults(&c);
    c.soc_pct = 94;
    c.soc_min_pct = 10;
    c.soc_max_pct = 95;
    battery_t *b = battery_new(&c);
    /* 100 A for an hour would be +35 %; the BMS stops at 95 %. */
    for (int i = 0; i < 3600; i++)
        battery_step(b, 100, 1.0);
    assert_true(fabs(battery_soc_pct(b) - 95) < 1e-9);
    assert_false(battery_can_charge(b));
    assert_true(battery_step(b, 10, 1) == 0);
    assert_true(battery_step(b, -10, 1) == -10);
    battery_set_soc(b, 10.001);
    battery_step(b, -1000, 60);
    assert_true(fabs(battery_soc_pct(b) - 10) < 1e-9);
    assert_false(battery_can_discharge(b));
    battery_destroy(&b);
}

static void test_battery_config_validation(void **state)
{
    (void)state;
    battery_config_t c;
    char err[256];
    battery_config_defaults(&c);
    assert_int_equal(battery_config_validate(&c, err, sizeof err), 0);
    c.capacity_ah = 0;
    assert_int_equal(battery_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "capacity"));
    assert_null(battery_new(&c));
    battery_config_defaults(&c);
    c.cells_series = 0;
    assert_int_equal(battery_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "cells"));
    battery_config_defaults(&c);
    c.r_internal_ohm = NAN;
    assert_int_equal(battery_config_validate(&c, err, sizeof err), -1);
    battery_config_defaults(&c);
    c.soc_min_pct = 60;
    c.soc_max_pct = 40;
    assert_int_equal(battery_config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "SOC bounds"));
    /* A custom OCV curve must span 0..100 % and not fall. */
    battery_config_defaults(&c);
    c.ocv_points = 3;
    double s1[] = {0, 50, 100}, v1[] = {3.0, 3.5, 3.4};
    memcpy(c.ocv_soc_pct, s1, sizeof s1);
    memcpy(c.ocv_cell_v, v1, sizeof v1);
    assert_int_equal(battery_config_validate(&c, err, sizeof err), -1);
    v1[2] = 4.2;
    memcpy(c.ocv_cell_v, v1, sizeof v1);
    assert_int_equal(battery_config_validate(&c, err, sizeof err), 0);
    battery_t *b = battery_new(&c);
    assert_true(fabs(battery_ocv_v(b) - 8 * 3.5) < 1e-9);
    battery_destroy(&b);
    c.ocv_soc_pct[2] = 90;
    assert_int_equal(battery_config_validate(&c, err, sizeof err), -1);
    assert_int_equal(battery_config_validate(NULL, err, sizeof err), -1);
    /* key=value settings. */
    battery_config_defaults(&c);
    assert_int_equal(battery_config_set(&c, "r_mohm", "25", err, sizeof err), 0);
    assert_true(fabs(c.r_internal_ohm - 0.025) < 1e-12);
    assert_int_equal(battery_config_set(&c, "ah", "1e3", err, sizeof err), 0);
    assert_int_equal(battery_config_set(&c, "ah", "", err, sizeof err), -1);
    assert_int_equal(battery_config_set(&c, "volts", "3", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown battery option"));
}

/* ---- bus ---- */

static sim_bus_t *s_bus(const char *spec1, const char *spec2)
{
    sim_bus_t *bus = sim_bus_new(NULL);
    assert_non_null(bus);
    bic_device_t *d = t_device(spec1, 0);
    assert_int_equal(sim_bus_add(bus, &d), 0);
    assert_null(d);
    if (spec2) {
        d = t_device(spec2, 0);
        assert_int_equal(sim_bus_add(bus, &d), 0);
    }
    return bus;
}

static void test_bus_reply_delay(void **state)
{
    (void)state;
    sim_bus_t *bus = s_bus("0:24", "1:48");
    can_frame_t req = t_frame(0x000C0301, 0x0083, 0, NULL), rep;
    assert_int_equal(sim_bus_request(bus, &req, SEC(1)), 1);
    assert_true(sim_bus_next_due_us(bus) == SEC(1) + 1000);
    assert_int_equal(sim_bus_take_reply(bus, SEC(1) + 999, &rep), 0);
    assert_int_equal(sim_bus_take_reply(bus, SEC(1) + 1000, &rep), 1);
    assert_int_equal(rep.id, 0x000C0201);
    assert_memory_equal(rep.data + 2, "00-48 ", 6);
    assert_true(sim_bus_next_due_us(bus) == INT64_MAX);
    /* A write: applied, nothing scheduled. */
    uint8_t v[] = {0xC4, 0x09};
    req = t_frame(0x000C0300, 0x0020, 2, v);
    assert_int_equal(sim_bus_request(bus, &req, SEC(2)), 0);
    assert_int_equal(t_read(sim_bus_find(bus, 0), 0x0020, SEC(2)), 2500);
    /* A broadcast write reaches both, a broadcast read gets nothing. */
    req = t_frame(0x000C03FF, 0x0020, 2, v);
    req.data[2] = 0x8C;
    req.data[3] = 0x0A; /* 27.00 V: in range for 24 V only */
    assert_int_equal(sim_bus_request(bus, &req, SEC(3)), 0);
    assert_int_equal(t_read(sim_bus_find(bus, 0), 0x0020, SEC(3)), 2700);
    assert_int_equal(t_read(sim_bus_find(bus, 1), 0x0020, SEC(3)), 4800); /* ignored */
    req = t_frame(0x000C03FF, 0x0020, 0, NULL);
    assert_int_equal(sim_bus_request(bus, &req, SEC(4)), 0);
    /* Frames for nobody. */
    req = t_frame(0x000C0307, 0x0020, 0, NULL);
    assert_int_equal(sim_bus_request(bus, &req, SEC(5)), 0);
    req.ext = false;
    req.id = 0x123;
    assert_int_equal(sim_bus_request(bus, &req, SEC(6)), 0);
    sim_bus_counters_t c;
    sim_bus_counters(bus, &c);
    assert_int_equal(c.requests, 5);
    assert_int_equal(c.replies, 1);
    assert_int_equal(c.foreign, 2);
    assert_int_equal(c.silent, 4);
    assert_int_equal(c.pacing_violations, 0);
    /* Address taken, device lookup. */
    bic_device_t *d = t_device("1:24", 0);
    assert_int_equal(sim_bus_add(bus, &d), -1);
    assert_null(d);
    assert_int_equal(sim_bus_count(bus), 2);
    assert_null(sim_bus_device(bus, 2));
    assert_null(sim_bus_find(bus, 9));
    sim_bus_destroy(&bus);
    assert_null(bus);
    sim_bus_destroy(NULL);
}

static void test_bus_pacing(void **state)
{
    (void)state;
    sim_bus_t *bus = s_bus("0:24", NULL);
    can_frame_t req = t_frame(0x000C0300, 0x0060, 0, NULL), rep;
    int64_t t = SEC(1);
    sim_bus_request(bus, &req, t);
    sim_bus_take_reply(bus, t + 1000, &rep);
    /* 25 ms later: fine. */
    t += 25000;
    sim_bus_request(bus, &req, t);
    sim_bus_take_reply(bus, t + 1000, &rep);
    sim_bus_counters_t c;
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_violations, 0);
    /* 10 ms after the previous request: period violation. */
    t += 10000;
    sim_bus_request(bus, &req, t);
    sim_bus_take_reply(bus, t + 1000, &rep);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_period, 1);
    assert_int_equal(c.pacing_margin, 0);
    assert_int_equal(c.pacing_violations, 1);
    /* 21 ms after the request but 3 ms after a late reply: margin violation. */
    sim_bus_options_t o;
    sim_bus_get_options(bus, &o);
    o.reply_delay_us = 18000;
    assert_int_equal(sim_bus_set_options(bus, &o), 0);
    t += 25000;
    sim_bus_request(bus, &req, t);
    assert_int_equal(sim_bus_take_reply(bus, t + 18000, &rep), 1);
    sim_bus_request(bus, &req, t + 21000);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_margin, 1);
    assert_int_equal(c.pacing_period, 1);
    assert_int_equal(c.pacing_violations, 2);
    /* Both at once count as one violating request. */
    sim_bus_take_reply(bus, t + 39000, &rep);
    sim_bus_request(bus, &req, t + 39500);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_violations, 3);
    assert_int_equal(c.pacing_period, 2);
    assert_int_equal(c.pacing_margin, 2);
    /* The drop option: violating requests are not delivered. */
    o.pacing_drop = true;
    o.reply_delay_us = 1000;
    sim_bus_set_options(bus, &o);
    while (sim_bus_take_reply(bus, t + 60000, &rep) == 1)
        ;
    t += SEC(1);
    assert_int_equal(sim_bus_request(bus, &req, t), 1);
    assert_int_equal(sim_bus_request(bus, &req, t + 2000), 0);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_dropped, 1);
    sim_bus_destroy(&bus);
}

/* The judgement tells a sender's violation from a gap that only looks short because the
 * simulator read the frames late (a loaded machine). */
static void test_bus_pacing_judgement(void **state)
{
    (void)state;
    sim_bus_t *bus = s_bus("0:24", NULL);
    can_frame_t req = t_frame(0x000C0300, 0x0060, 0, NULL), rep;
    sim_bus_counters_t c;
    int64_t t = SEC(1);
    /* A request read 59 ms late, the next one read 7.9 ms after it (67 ms apart when sent):
     * suspect, not a violation. */
    sim_rx_t a = {.t_us = t, .empty_us = t - 80000, .chunk = 1, .lag_us = 59000};
    sim_bus_request_rx(bus, &req, &a, t);
    assert_int_equal(sim_bus_take_reply(bus, t + 1000, &rep), 1);
    sim_rx_t b = {.t_us = t + 7900, .empty_us = t + 1000, .chunk = 2, .lag_us = 0};
    sim_bus_request_rx(bus, &req, &b, t);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_violations, 0);
    assert_int_equal(c.pacing_suspect, 1);
    /* The same gap after a prompt read: the sender's violation. */
    sim_bus_take_reply(bus, t + 8900, &rep);
    t += SEC(1);
    sim_rx_t p1 = {.t_us = t, .empty_us = t - 30000, .chunk = 3, .lag_us = 100};
    sim_bus_request_rx(bus, &req, &p1, t);
    assert_int_equal(sim_bus_take_reply(bus, t + 1000, &rep), 1);
    sim_rx_t p2 = {.t_us = t + 7900, .empty_us = t + 1000, .chunk = 4, .lag_us = 100};
    sim_bus_request_rx(bus, &req, &p2, t);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_violations, 1);
    assert_int_equal(c.pacing_period, 1);
    assert_int_equal(c.pacing_margin, 0);
    assert_int_equal(c.pacing_suspect, 1);
    /* Two requests in one read after a long silence: their distance is unknown. */
    sim_bus_take_reply(bus, t + 8900, &rep);
    t += SEC(1);
    sim_rx_t r1 = {.t_us = t, .empty_us = t - 40000, .chunk = 5, .lag_us = 40000};
    sim_rx_t r2 = r1;
    sim_bus_request_rx(bus, &req, &r1, t);
    sim_bus_request_rx(bus, &req, &r2, t);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_violations, 1);
    assert_int_equal(c.pacing_suspect, 2);
    /* Two requests in one read whose window was 6 ms: certainly less than 20 ms apart. */
    while (sim_bus_take_reply(bus, t + 5000, &rep))
        ;
    t += SEC(1);
    sim_rx_t w1 = {.t_us = t, .empty_us = t - 6000, .chunk = 6, .lag_us = 6000};
    sim_rx_t w2 = w1;
    sim_bus_request_rx(bus, &req, &w1, t);
    sim_bus_request_rx(bus, &req, &w2, t);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_violations, 2);
    assert_int_equal(c.pacing_period, 2);
    assert_int_equal(c.pacing_suspect, 2);
    /* Within the tolerance: 19.5 ms after the request, 4.5 ms after the reply. */
    while (sim_bus_take_reply(bus, t + 15000, &rep))
        ;
    sim_rx_t tol = {.t_us = t + 19500, .empty_us = t + 15000, .chunk = 7, .lag_us = 0};
    sim_bus_request_rx(bus, &req, &tol, t);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_violations, 2);
    assert_int_equal(c.pacing_suspect, 2);
    /* A reply the simulator itself sent 16 ms late (due 1 ms after the request): a request
     * 3 ms after it may come from a sender that had given up on it: suspect. */
    while (sim_bus_take_reply(bus, t + 20500, &rep))
        ;
    t += SEC(1);
    sim_rx_t l1 = {.t_us = t, .empty_us = t - 30000, .chunk = 8, .lag_us = 0};
    sim_bus_request_rx(bus, &req, &l1, t);
    assert_int_equal(sim_bus_take_reply(bus, t + 17000, &rep), 1);
    sim_bus_options_t o;
    sim_bus_get_options(bus, &o);
    o.reply_delay_us = 18000;
    assert_int_equal(sim_bus_set_options(bus, &o), 0);
    sim_rx_t l2 = {.t_us = t + 20000, .empty_us = t + 17000, .chunk = 9, .lag_us = 0};
    sim_bus_request_rx(bus, &req, &l2, t);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_violations, 2);
    assert_int_equal(c.pacing_margin, 0);
    assert_int_equal(c.pacing_suspect, 3);
    /* 3 ms after a reply that left when it was due (a slow device): the sender's violation. */
    assert_int_equal(sim_bus_take_reply(bus, t + 38000, &rep), 1);
    sim_rx_t m = {.t_us = t + 41000, .empty_us = t + 38000, .chunk = 10, .lag_us = 0};
    sim_bus_request_rx(bus, &req, &m, t);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_margin, 1);
    assert_int_equal(c.pacing_violations, 3);
    assert_int_equal(c.pacing_suspect, 3);
    assert_int_equal(c.pacing_injected, 0);
    /* 3 ms after a reply the fault options sent late (17 ms, after the sender's timeout):
     * the sender cannot foresee it, and no slow reader made the gap look short: counted
     * apart from both. */
    while (sim_bus_take_reply(bus, t + 60000, &rep))
        ;
    t += SEC(1);
    o.reply_delay_us = 1000;
    o.late_pct = 100;
    o.late_delay_us = 17000;
    assert_int_equal(sim_bus_set_options(bus, &o), 0);
    sim_rx_t i1 = {.t_us = t, .empty_us = t - 30000, .chunk = 11, .lag_us = 0};
    sim_bus_request_rx(bus, &req, &i1, t);
    assert_int_equal(sim_bus_take_reply(bus, t + 1000, &rep), 0);
    assert_int_equal(sim_bus_take_reply(bus, t + 17000, &rep), 1);
    o.late_pct = 0;
    assert_int_equal(sim_bus_set_options(bus, &o), 0);
    sim_rx_t i2 = {.t_us = t + 20000, .empty_us = t + 17000, .chunk = 12, .lag_us = 0};
    sim_bus_request_rx(bus, &req, &i2, t);
    sim_bus_counters(bus, &c);
    assert_int_equal(c.pacing_violations, 3);
    assert_int_equal(c.pacing_suspect, 3);
    assert_int_equal(c.pacing_injected, 1);
    sim_bus_destroy(&bus);
}

static void test_bus_fault_injection(void **state)
{
    (void)state;
    sim_bus_options_t o;
    sim_bus_options_defaults(&o);
    o.drop_pct = 100;
    sim_bus_t *bus = sim_bus_new(&o);
    bic_device_t *d = t_device("0:24", 0);
    sim_bus_add(bus, &d);
    can_frame_t req = t_frame(0x000C0300, 0x0060, 0, NULL), rep;
    assert_int_equal(sim_bus_request(bus, &req, SEC(1)), 0);
    assert_int_equal(sim_bus_take_reply(bus, SEC(2), &rep), 0);
    /* Late: after the late delay, beyond the manual's 5 ms. */
    o.drop_pct = 0;
    o.late_pct = 100;
    o.late_delay_us = 9000;
    sim_bus_set_options(bus, &o);
    assert_int_equal(sim_bus_request(bus, &req, SEC(3)), 1);
    assert_int_equal(sim_bus_take_reply(bus, SEC(3) + 5000, &rep), 0);
    assert_int_equal(sim_bus_take_reply(bus, SEC(3) + 9000, &rep), 1);
    /* Duplicated: the same reply twice. */
    o.late_pct = 0;
    o.dup_pct = 100;
    sim_bus_set_options(bus, &o);
    sim_bus_request(bus, &req, SEC(4));
    can_frame_t r1, r2;
    assert_int_equal(sim_bus_take_reply(bus, SEC(5), &r1), 1);
    assert_int_equal(sim_bus_take_reply(bus, SEC(5), &r2), 1);
    assert_memory_equal(&r1, &r2, sizeof r1);
    assert_int_equal(sim_bus_take_reply(bus, SEC(5), &r2), 0);
    sim_bus_counters_t c;
    sim_bus_counters(bus, &c);
    assert_int_equal(c.dropped, 1);
    assert_int_equal(c.late, 1);
    assert_int_equal(c.duplicated, 1);
    /* A share in between is reproducible for a seed and lands near its value. */
    o.dup_pct = 0;
    o.drop_pct = 30;
    o.seed = 42;
    sim_bus_set_options(bus, &o);
    int got = 0;
    for (int i = 0; i < 1000; i++)
        got += sim_bus_request(bus, &req, SEC(10) + i * 30000);
    assert_true(got > 620 && got < 780);
    /* Invalid options are refused. */
    o.drop_pct = 101;
    assert_int_equal(sim_bus_set_options(bus, &o), -1);
    assert_null(sim_bus_new(&o));
    char err[128];
    assert_int_equal(sim_bus_options_validate(&o, err, sizeof err), -1);
    assert_non_null(strstr(err, "dropped"));
    sim_bus_destroy(&bus);
}

static void test_bus_frame_log(void **state)
{
    (void)state;
    sim_bus_t *bus = s_bus("0:24", NULL);
    can_frame_t req = t_frame(0x000C0300, 0x0000, 0, NULL), rep;
    sim_bus_request(bus, &req, SEC(1));
    sim_bus_take_reply(bus, SEC(2), &rep);
    sim_frame_log_t log[4];
    size_t n = sim_bus_log(bus, log, 4);
    assert_int_equal(n, 2);
    assert_int_equal(log[0].dir, SIM_FRAME_RX);
    assert_int_equal(log[0].frame.id, 0x000C0300);
    assert_int_equal(log[1].dir, SIM_FRAME_TX);
    assert_int_equal(log[1].frame.dlc, 3);
    assert_true(log[1].t_us == SEC(2));
    /* The log keeps the newest entries. */
    for (int i = 0; i < SIM_BUS_LOG_MAX + 10; i++)
        sim_bus_request(bus, &req, SEC(3) + i * 30000);
    static sim_frame_log_t all[SIM_BUS_LOG_MAX];
    n = sim_bus_log(bus, all, SIM_BUS_LOG_MAX);
    assert_int_equal(n, SIM_BUS_LOG_MAX);
    n = sim_bus_log(bus, log, 1);
    assert_int_equal(n, 1);
    assert_true(log[0].t_us == SEC(3) + (SIM_BUS_LOG_MAX + 9) * 30000);
    sim_bus_destroy(&bus);
}

/* ---- household ---- */

static household_t *s_parse(const char *text, char *err, size_t n)
{
    return household_parse(text, strlen(text), "day.csv", err, n);
}

static void test_household_hold_and_meter(void **state)
{
    (void)state;
    char err[256];
    household_t *h = s_parse(
        "t_s,load_w,pv_w\r\n# comment\n0,400,0\n60, 500 ,100\n\n120,300.5,2000\n", err, sizeof err);
    if (!h)
        fail_msg("%s", err);
    assert_int_equal(household_rows(h), 3);
    assert_true(household_span_s(h) == 180);
    double load, pv;
    household_at(h, 0, &load, &pv);
    assert_true(load == 400 && pv == 0);
    household_at(h, 59.9, &load, &pv);
    assert_true(load == 400);
    household_at(h, 60, &load, &pv);
    assert_true(load == 500 && pv == 100);
    household_at(h, 1000, &load, &pv);
    assert_true(load == 300.5 && pv == 2000);
    household_at(h, -5, &load, NULL);
    assert_true(load == 400);
    /* Meter: load - pv + battery (charging adds import). */
    assert_true(household_meter_w(500, 100, 0) == 400);
    assert_true(household_meter_w(500, 2000, 800) == -700);
    assert_true(household_meter_w(500, 0, -300) == 200);
    household_destroy(&h);
    assert_null(h);
    household_destroy(NULL);

    /* Times are on the CSV's own axis: a profile starting at 06:00. */
    h = s_parse("t_s,load_w,pv_w\n21600,700,0\n21660,800,50\n", err, sizeof err);
    assert_non_null(h);
    assert_true(household_start_s(h) == 21600);
    assert_true(household_span_s(h) == 120);
    household_at(h, 21659, &load, &pv);
    assert_true(load == 700);
    household_at(h, 21660, &load, &pv);
    assert_true(load == 800 && pv == 50);
    household_at(h, 60, &load, &pv);
    assert_true(load == 700);
    household_destroy(&h);
}

static void test_household_csv_errors(void **state)
{
    (void)state;
    struct {
        const char *text;
        const char *needle;
    } bad[] = {
        {"", "empty"},
        {"time,load,pv\n0,1,2\n", "day.csv:1: header"},
        {"t_s,load_w,pv_w\n", "no data rows"},
        {"t_s,load_w,pv_w\n0,1,2\n60,1\n", "day.csv:3: expected 3"},
        {"t_s,load_w,pv_w\n0,1,2\n60,1,2,3\n", "day.csv:3: expected 3"},
        {"t_s,load_w,pv_w\n0,abc,2\n", "day.csv:2: load_w 'abc'"},
        {"t_s,load_w,pv_w\n0,1,nan\n", "day.csv:2: pv_w 'nan'"},
        {"t_s,load_w,pv_w\n0,1,inf\n", "not a finite number"},
        {"t_s,load_w,pv_w\n0,1,\n", "pv_w ''"},
        {"t_s,load_w,pv_w\n0,1,2\n60,1,2\n60,1,2\n", "day.csv:4: t_s 60 is not after"},
        {"t_s,load_w,pv_w\n0,1,2\n60,1,2\n30,1,2\n", "day.csv:4"},
        {"t_s,load_w,pv_w\n0,-1,2\n", "negative"},
        {"t_s,load_w,pv_w\n-60,1,2\n", "negative"},
        {"t_s,load_w,pv_w\n0,1e999,2\n", "not a finite number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        household_t *h = s_parse(bad[i].text, err, sizeof err);
        if (h)
            fail_msg("accepted: %s", bad[i].text);
        if (!strstr(err, bad[i].needle))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].text, err, bad[i].needle);
    }
    char err[256];
    const char nul[] = "t_s,load_w,pv_w\n0,1\0,2\n";
    assert_null(household_parse(nul, sizeof nul - 1, "x.csv", err, sizeof err));
    assert_non_null(strstr(err, "NUL"));
    assert_null(household_load("/nonexistent/day.csv", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/day.csv: cannot open"));
}

static void test_household_real_profile(void **state)
{
    (void)state;
    char err[256];
    household_t *h = household_load(BIC_PROFILE_DIR "/p1_clear_march.csv", err, sizeof err);
    if (!h)
        fail_msg("%s", err);
    assert_int_equal(household_rows(h), 1440);
    assert_true(household_span_s(h) == 86400);
    double load, pv;
    household_at(h, 12 * 3600 + 30, &load, &pv);
    assert_true(pv > 1000);
    household_destroy(&h);
}

static void test_household_transients(void **state)
{
    (void)state;
    /* A flat day: 500 W load, 3 kW PV from 08:00 to 18:00. */
    size_t cap = 1441 * 32;
    char *text = malloc(cap);
    size_t len = (size_t)snprintf(text, cap, "t_s,load_w,pv_w\n");
    for (int i = 0; i < 1440; i++)
        len += (size_t)snprintf(text + len, cap - len, "%d,500,%d\n", i * 60,
                                (i >= 480 && i < 1080) ? 3000 : 0);
    char err[256];
    household_t *h = household_parse(text, len, "flat.csv", err, sizeof err);
    free(text);
    assert_non_null(h);
    int n = household_add_transients(h, 7);
    assert_true(n > 10);
    /* Loads appear (kettle 2 kW, oven 2.2 kW, microwave 1.2 kW) with fast edges; PV dips. */
    int load_edges = 0, pv_dips = 0, on_kettle = 0;
    double prev_load = 500, prev_pv = 0;
    for (int t = 0; t < 86400; t++) {
        double load, pv;
        household_at(h, t, &load, &pv);
        if (fabs(load - prev_load) >= 1000)
            load_edges++;
        if (load >= 2500)
            on_kettle++;
        if (prev_pv == 3000 && pv < 1000)
            pv_dips++;
        prev_load = load;
        prev_pv = pv;
    }
    assert_true(load_edges >= 10);
    assert_true(on_kettle >= 180);
    assert_true(pv_dips >= 5);
    /* Reproducible: same seed, same values; another seed differs somewhere. */
    household_t *h2 = household_parse("t_s,load_w,pv_w\n0,500,0\n", 24, "x", err, sizeof err);
    assert_non_null(h2);
    household_destroy(&h2);
    double a[200], b[200];
    for (int i = 0; i < 200; i++)
        household_at(h, i * 431.0, &a[i], NULL);
    household_add_transients(h, 7);
    for (int i = 0; i < 200; i++) {
        household_at(h, i * 431.0, &b[i], NULL);
        assert_true(a[i] == b[i]);
    }
    household_add_transients(h, 8);
    int differ = 0;
    for (int t = 0; t < 86400; t += 10) {
        double x, y;
        household_add_transients(h, 7);
        household_at(h, t, &x, NULL);
        household_add_transients(h, 8);
        household_at(h, t, &y, NULL);
        differ += x != y;
        if (differ)
            break;
    }
    assert_true(differ > 0);
    household_clear_transients(h);
    double load;
    household_at(h, 43200, &load, NULL);
    assert_true(load == 500);
    household_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_battery_defaults_and_ocv),
        cmocka_unit_test(test_battery_step_soc_energy),
        cmocka_unit_test(test_battery_bounds),
        cmocka_unit_test(test_battery_config_validation),
        cmocka_unit_test(test_bus_reply_delay),
        cmocka_unit_test(test_bus_pacing),
        cmocka_unit_test(test_bus_pacing_judgement),
        cmocka_unit_test(test_bus_fault_injection),
        cmocka_unit_test(test_bus_frame_log),
        cmocka_unit_test(test_household_hold_and_meter),
        cmocka_unit_test(test_household_csv_errors),
        cmocka_unit_test(test_household_real_profile),
        cmocka_unit_test(test_household_transients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
