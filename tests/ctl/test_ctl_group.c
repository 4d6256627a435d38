/*
 * Unit tests of the group dispatch (ctl_group.h): one household setpoint split over several
 * devices. One unit at low demand and more as it rises, with hysteresis at the thresholds;
 * never one unit charging while another discharges; each share within its device's limits
 * and minimum, the same current for units on one battery where their limits allow; a unit
 * offline or at its battery's SOC limit left out and its share taken by the others at once;
 * SOC balancing on separate batteries; rotation of the lead unit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>

#include "ctl_group.h"

#define V 26.4
#define MAX_CA 7000 /* 70 A: about 2 kW AC each way */
#define MIN_CA 90

static void s_units(ctl_group_unit_t *u, int n)
{
    memset(u, 0, sizeof *u * (size_t)n);
    for (int i = 0; i < n; i++) {
        u[i].online = true;
        u[i].max_charge_ca = MAX_CA;
        u[i].max_discharge_ca = MAX_CA;
        u[i].min_current_ca = MIN_CA;
        u[i].dc_v = V;
        u[i].soc_valid = true;
        u[i].soc_pct = 50.0;
        u[i].min_soc_pct = 10.0;
        u[i].max_soc_pct = 95.0;
        u[i].battery = 0;
    }
}

/* Default parameters, a fresh state and n alike units. */
static void s_start(ctl_group_params_t *p, ctl_group_state_t *s, ctl_group_unit_t *u, int n)
{
    ctl_group_params_defaults(p);
    ctl_group_state_init(s);
    s_units(u, n);
}

/* Charge limit of one unit on the AC side (W). */
static double s_cap_w(const ctl_group_params_t *p)
{
    return MAX_CA / 100.0 * V / p->efficiency;
}

static void s_same_sign(const ctl_group_out_t *o, int n, double sp)
{
    for (int i = 0; i < n; i++) {
        if (sp > 0)
            assert_true(o->power_w[i] >= 0.0);
        else if (sp < 0)
            assert_true(o->power_w[i] <= 0.0);
        else
            assert_true(o->power_w[i] == 0.0);
    }
}

static void test_curve(void **st)
{
    (void)st;
    ctl_eff_curve_t c;
    ctl_eff_curve_bic2200(&c);
    assert_true(ctl_eff_at(&c, 100) > 0.78 && ctl_eff_at(&c, 100) < 0.82);
    assert_true(ctl_eff_at(&c, 200) > 0.85 && ctl_eff_at(&c, 200) < 0.89);
    assert_true(ctl_eff_at(&c, 1000) > 0.92);
    assert_true(ctl_eff_at(&c, 2200) > 0.92);
    assert_true(ctl_eff_at(&c, 50) < ctl_eff_at(&c, 300));
    assert_true(ctl_eff_at(&c, 300) < ctl_eff_at(&c, 1000));
    assert_true(ctl_eff_loss_w(&c, 0) == 0.0);
    assert_true(ctl_eff_at(&c, 0) == 0.0);
}

static void test_low_demand_one_unit(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_state_t s;
    ctl_group_unit_t u[3];
    ctl_group_out_t o;
    s_start(&p, &s, u, 3);
    ctl_group_dispatch(&p, &s, u, 3, 300.0, &o);
    assert_int_equal(o.running, 1);
    assert_int_equal(o.eligible, 3);
    assert_true(fabs(o.total_w - 300.0) < 1e-6);
    assert_true(o.power_w[0] == 300.0);
    assert_int_equal(o.why[0], CTL_GU_RUN);
    assert_int_equal(o.why[1], CTL_GU_STANDBY);
    assert_int_equal(o.why[2], CTL_GU_STANDBY);
    /* 300 W over one unit loses less than over three */
    assert_true(o.loss_w < 3.0 * ctl_eff_loss_w(&p.curve, 100.0));
    /* current at the voltage: 300 W AC x 0.92 / 26.4 V */
    assert_int_equal(o.current_ca[0], (int)lround(300.0 * 0.92 / V * 100.0));
}

static void test_units_added_as_demand_rises(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_state_t s;
    ctl_group_unit_t u[3];
    ctl_group_out_t o;
    s_start(&p, &s, u, 3);
    int last = 0;
    for (double w = 50; w <= 3.0 * s_cap_w(&p); w += 50) {
        ctl_group_dispatch(&p, &s, u, 3, w, &o);
        assert_true(o.running >= last);
        assert_true(o.running >= 1);
        assert_true(fabs(o.total_w - w) < 1e-6);
        last = o.running;
    }
    assert_int_equal(last, 3);
    /* and fewer as it falls again, for discharging the same */
    ctl_group_state_init(&s);
    last = 4;
    for (double w = 3.0 * s_cap_w(&p) * p.efficiency * p.efficiency; w >= 50; w -= 50) {
        ctl_group_dispatch(&p, &s, u, 3, -w, &o);
        assert_true(o.running <= last);
        assert_true(fabs(o.total_w + w) < 1e-6);
        s_same_sign(&o, 3, -w);
        last = o.running;
    }
    assert_int_equal(last, 1);
}

/* With a large fixed loss the second unit pays off from sqrt(2 x 100 / 1e-4) = 1414 W. */
static void test_staging_hysteresis(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_params_defaults(&p);
    p.curve.fixed_w = 100.0;
    p.curve.prop = 0.0;
    p.curve.quad_per_w = 1e-4;
    p.stage_hyst = 0.15;
    p.efficiency = 1.0;
    ctl_group_unit_t u[2];
    s_units(u, 2);
    u[0].max_charge_ca = u[1].max_charge_ca = 40000; /* 10 kW: only the loss stages */
    u[0].dc_v = u[1].dc_v = 25.0;
    ctl_group_state_t s;
    ctl_group_state_init(&s);
    ctl_group_out_t o;

    /* fresh: the unit count with the least loss */
    ctl_group_dispatch(&p, &s, u, 2, 1300.0, &o);
    assert_int_equal(o.running, 1);
    ctl_group_state_init(&s);
    ctl_group_dispatch(&p, &s, u, 2, 1500.0, &o);
    assert_int_equal(o.running, 2);

    /* rising from one unit: past the threshold but within the hysteresis, still one */
    ctl_group_state_init(&s);
    ctl_group_dispatch(&p, &s, u, 2, 1000.0, &o);
    assert_int_equal(o.running, 1);
    for (int i = 0; i < 20; i++) {
        ctl_group_dispatch(&p, &s, u, 2, i % 2 ? 1400.0 : 1500.0, &o);
        assert_int_equal(o.running, 1);
    }
    ctl_group_dispatch(&p, &s, u, 2, 1700.0, &o);
    assert_int_equal(o.running, 2);
    assert_true(fabs(o.power_w[0] - 850.0) < 1e-6 && fabs(o.power_w[1] - 850.0) < 1e-6);
    /* falling: below the threshold but within the hysteresis, still two */
    for (int i = 0; i < 20; i++) {
        ctl_group_dispatch(&p, &s, u, 2, i % 2 ? 1300.0 : 1430.0, &o);
        assert_int_equal(o.running, 2);
    }
    ctl_group_dispatch(&p, &s, u, 2, 1150.0, &o);
    assert_int_equal(o.running, 1);
    /* a reversal starts afresh */
    ctl_group_dispatch(&p, &s, u, 2, -1500.0, &o);
    assert_int_equal(o.running, 2);
    s_same_sign(&o, 2, -1500.0);
    /* staging off: every able unit runs */
    p.staging = false;
    ctl_group_dispatch(&p, &s, u, 2, 300.0, &o);
    assert_int_equal(o.running, 2);
    assert_true(fabs(o.power_w[0] - 150.0) < 1e-6);
}

static void test_never_opposite_directions(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_state_t s;
    ctl_group_unit_t u[3];
    ctl_group_out_t o;
    s_start(&p, &s, u, 3);
    u[0].battery = 0;
    u[1].battery = 1;
    u[2].battery = 2;
    u[0].soc_pct = 12.0;
    u[1].soc_pct = 94.0;
    u[2].soc_pct = 50.0;
    uint32_t x = 12345;
    for (int i = 0; i < 2000; i++) {
        x = x * 1103515245u + 12345u;
        double sp = ((double)(x >> 8) / (double)(1u << 24) - 0.5) * 14000.0;
        u[i % 3].online = (x & 7) != 0;
        ctl_group_dispatch(&p, &s, u, 3, sp, &o);
        s_same_sign(&o, 3, sp);
        for (int k = 0; k < 3; k++) {
            assert_true(o.current_ca[k] <= MAX_CA);
            if (!u[k].online)
                assert_true(o.power_w[k] == 0.0);
        }
    }
}

static void test_limits_and_minimum(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_state_t s;
    ctl_group_unit_t u[3];
    ctl_group_out_t o;
    s_start(&p, &s, u, 3);
    u[2].max_charge_ca = 2000; /* derated: 20 A */
    ctl_group_dispatch(&p, &s, u, 3, 10000.0, &o);
    assert_int_equal(o.running, 3);
    assert_int_equal(o.current_ca[0], MAX_CA);
    assert_int_equal(o.current_ca[2], 2000);
    assert_int_equal(o.why[0], CTL_GU_AT_LIMIT);
    assert_int_equal(o.why[2], CTL_GU_AT_LIMIT);
    double cap = 2.0 * s_cap_w(&p) + 20.0 * V / p.efficiency;
    assert_true(fabs(o.total_w - cap) < 1e-6);
    assert_true(fabs(o.unmet_w - (10000.0 - cap)) < 1e-6);

    /* the minimum: 0.9 A at 26.4 V is 25.8 W AC; 10 W idles, 20 W runs at the minimum */
    double min_w = MIN_CA / 100.0 * V / p.efficiency;
    ctl_group_state_init(&s);
    ctl_group_dispatch(&p, &s, u, 3, 10.0, &o);
    assert_int_equal(o.running, 0);
    assert_true(o.unmet_w == 10.0);
    ctl_group_dispatch(&p, &s, u, 3, 20.0, &o);
    assert_int_equal(o.running, 1);
    assert_true(fabs(o.power_w[0] - min_w) < 1e-6);
    assert_int_equal(o.current_ca[0], MIN_CA);

    /* no demand: every online unit idle */
    ctl_group_dispatch(&p, &s, u, 3, 0.0, &o);
    assert_int_equal(o.running, 0);
    assert_int_equal(o.why[1], CTL_GU_IDLE);
}

static void test_one_battery_equal_currents(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_state_t s;
    ctl_group_unit_t u[3];
    ctl_group_out_t o;
    s_start(&p, &s, u, 3);
    p.staging = false;
    /* one battery read a little differently by each unit, one unit derated: the units below
     * their limits get the same current (one command for all of them), the derated one its
     * limit, the demand met */
    u[0].dc_v = 26.38;
    u[1].dc_v = 26.45;
    u[2].dc_v = 26.41;
    for (int k = 0; k < 50; k++) {
        double sp = 300.0 + 97.3 * k;
        ctl_group_dispatch(&p, &s, u, 3, sp, &o);
        assert_int_equal(o.running, 3);
        assert_int_equal(o.current_ca[0], o.current_ca[1]);
        assert_int_equal(o.current_ca[0], o.current_ca[2]);
        assert_true(fabs(o.total_w - sp) < 1e-6);
    }
    u[2].max_charge_ca = 2000; /* derated: 20 A */
    ctl_group_dispatch(&p, &s, u, 3, 4000.0, &o);
    assert_int_equal(o.current_ca[2], 2000);
    assert_int_equal(o.why[2], CTL_GU_AT_LIMIT);
    assert_int_equal(o.current_ca[0], o.current_ca[1]);
    assert_true(o.current_ca[0] > 2000);
    assert_true(fabs(o.total_w - 4000.0) < 1e-6);
    ctl_group_dispatch(&p, &s, u, 3, 1500.0, &o); /* within every limit: equal again */
    assert_int_equal(o.current_ca[0], o.current_ca[2]);
    assert_int_equal(o.current_ca[1], o.current_ca[2]);

    /* four units, a group current of 10.10 A to 20.00 A in steps of 0.10 A: a quarter of it
     * often ends in half a hundredth (2.525 A), rounded alike on every unit */
    ctl_group_unit_t w[4];
    s_start(&p, &s, w, 4);
    p.staging = false;
    const double v4[4] = {26.38, 26.45, 26.41, 26.43};
    double vsum = 0.0;
    for (int i = 0; i < 4; i++) {
        w[i].dc_v = v4[i];
        vsum += v4[i];
    }
    for (int ca = 1010; ca <= 2000; ca += 10) {
        double sp = ca / 100.0 / 4.0 * vsum / p.efficiency;
        ctl_group_dispatch(&p, &s, w, 4, sp, &o);
        assert_int_equal(o.running, 4);
        for (int i = 1; i < 4; i++)
            assert_int_equal(o.current_ca[i], o.current_ca[0]);
        assert_true(abs(o.current_ca[0] * 4 - ca) <= 2);
    }
}

static void test_offline_share_taken_over(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_state_t s;
    ctl_group_unit_t u[3];
    ctl_group_out_t o;
    s_start(&p, &s, u, 3);
    ctl_group_dispatch(&p, &s, u, 3, 3000.0, &o);
    assert_int_equal(o.running, 2);
    assert_true(o.power_w[0] > 0.0 && o.power_w[1] > 0.0);
    /* unit 0 lost: the next call gives its share to the others, the total unchanged */
    u[0].online = false;
    ctl_group_dispatch(&p, &s, u, 3, 3000.0, &o);
    assert_int_equal(o.why[0], CTL_GU_OFFLINE);
    assert_true(o.power_w[0] == 0.0);
    assert_int_equal(o.running, 2);
    assert_true(fabs(o.total_w - 3000.0) < 1e-6);
    /* two lost: the last one at its limit, the rest unmet */
    u[1].online = false;
    ctl_group_dispatch(&p, &s, u, 3, 3000.0, &o);
    assert_int_equal(o.running, 1);
    assert_int_equal(o.why[2], CTL_GU_AT_LIMIT);
    assert_true(o.unmet_w > 900.0);
    /* back: it rejoins */
    u[0].online = u[1].online = true;
    ctl_group_dispatch(&p, &s, u, 3, 3000.0, &o);
    assert_int_equal(o.running, 2);
    assert_true(fabs(o.total_w - 3000.0) < 1e-6);
    /* none online */
    for (int i = 0; i < 3; i++)
        u[i].online = false;
    ctl_group_dispatch(&p, &s, u, 3, 3000.0, &o);
    assert_int_equal(o.running, 0);
    assert_int_equal(o.eligible, 0);
    assert_true(o.unmet_w == 3000.0);
}

static void test_soc_limits(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_state_t s;
    ctl_group_unit_t u[2];
    ctl_group_out_t o;
    s_start(&p, &s, u, 2);
    u[0].battery = 0;
    u[1].battery = 1;
    u[0].soc_pct = 95.0; /* full */
    u[1].soc_pct = 10.0; /* empty */
    ctl_group_dispatch(&p, &s, u, 2, 1000.0, &o);
    assert_int_equal(o.why[0], CTL_GU_SOC_LIMIT);
    assert_true(o.power_w[0] == 0.0 && fabs(o.power_w[1] - 1000.0) < 1e-6);
    ctl_group_dispatch(&p, &s, u, 2, -1000.0, &o);
    assert_int_equal(o.why[1], CTL_GU_SOC_LIMIT);
    assert_true(o.power_w[1] == 0.0 && fabs(o.power_w[0] + 1000.0) < 1e-6);
    /* a direction without a current limit */
    s_units(u, 2);
    u[0].max_discharge_ca = 0;
    ctl_group_dispatch(&p, &s, u, 2, -500.0, &o);
    assert_int_equal(o.why[0], CTL_GU_NO_LIMIT);
    assert_true(fabs(o.power_w[1] + 500.0) < 1e-6);
}

static void test_soc_balance_separate_batteries(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_state_t s;
    ctl_group_unit_t u[2];
    ctl_group_out_t o;
    s_start(&p, &s, u, 2);
    u[0].battery = 0;
    u[1].battery = 1;
    u[0].soc_pct = 40.0;
    u[1].soc_pct = 70.0;
    /* low demand, one unit: discharging the fuller battery, charging the emptier */
    ctl_group_dispatch(&p, &s, u, 2, -300.0, &o);
    assert_int_equal(o.running, 1);
    assert_true(o.power_w[1] == -300.0);
    ctl_group_state_init(&s);
    ctl_group_dispatch(&p, &s, u, 2, 300.0, &o);
    assert_true(o.power_w[0] == 300.0);
    /* both running: shares by headroom (discharge 30 % vs 60 % above MinSoc) */
    ctl_group_dispatch(&p, &s, u, 2, -2000.0, &o);
    assert_int_equal(o.running, 2);
    assert_true(fabs(o.power_w[1] / o.power_w[0] - 2.0) < 1e-6);
    ctl_group_dispatch(&p, &s, u, 2, 3000.0, &o);
    assert_true(o.power_w[0] > o.power_w[1]);
    /* the lead moves only beyond the balance band */
    ctl_group_state_init(&s);
    u[0].soc_pct = 50.0;
    u[1].soc_pct = 51.0;
    ctl_group_dispatch(&p, &s, u, 2, -300.0, &o);
    assert_true(o.power_w[0] == -300.0); /* lead 0 kept: 1 % is within the band */
    u[1].soc_pct = 53.0;
    ctl_group_dispatch(&p, &s, u, 2, -300.0, &o);
    assert_true(o.power_w[1] == -300.0);
    /* on one battery (or balancing off): shares by limits, equal here */
    u[1].battery = 0;
    ctl_group_dispatch(&p, &s, u, 2, -3000.0, &o);
    assert_true(fabs(o.power_w[0] - o.power_w[1]) < 1e-6);
    u[1].battery = 1;
    p.soc_balance = false;
    ctl_group_dispatch(&p, &s, u, 2, -3000.0, &o);
    assert_true(fabs(o.power_w[0] - o.power_w[1]) < 1e-6);
}

static void test_rotation(void **st)
{
    (void)st;
    ctl_group_params_t p;
    ctl_group_params_defaults(&p);
    p.rotate_wh = 1000.0;
    ctl_group_state_t s;
    ctl_group_state_init(&s);
    ctl_group_unit_t u[3];
    s_units(u, 3);
    ctl_group_out_t o;
    ctl_group_dispatch(&p, &s, u, 3, 500.0, &o);
    assert_true(o.power_w[0] == 500.0);
    u[0].energy_wh = 900.0;
    ctl_group_dispatch(&p, &s, u, 3, 500.0, &o);
    assert_true(o.power_w[0] == 500.0); /* within the rotation energy */
    u[0].energy_wh = 1100.0;
    u[1].energy_wh = 50.0;
    u[2].energy_wh = 20.0;
    ctl_group_dispatch(&p, &s, u, 3, 500.0, &o);
    assert_true(o.power_w[2] == 500.0); /* the least used leads */
    assert_int_equal(s.lead, 2);
    /* the order goes round from the lead: the second unit is 0 */
    ctl_group_dispatch(&p, &s, u, 3, 3000.0, &o);
    assert_true(o.power_w[2] > 0.0 && o.power_w[0] > 0.0 && o.power_w[1] == 0.0);
    /* rotation off: the first unit leads whatever it has moved */
    p.rotate_wh = 0.0;
    ctl_group_state_init(&s);
    u[0].energy_wh = 1e6;
    ctl_group_dispatch(&p, &s, u, 3, 500.0, &o);
    assert_true(o.power_w[0] == 500.0);
}

static void test_params_validate(void **st)
{
    (void)st;
    char err[200];
    ctl_group_params_t p;
    ctl_group_params_defaults(&p);
    assert_int_equal(ctl_group_params_validate(&p, err, sizeof err), 0);
    p.stage_hyst = 1.5;
    assert_int_equal(ctl_group_params_validate(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "hysteresis"));
    assert_non_null(strstr(err, "allowed 0-1"));
    ctl_group_params_defaults(&p);
    p.rotate_wh = -1.0;
    assert_int_equal(ctl_group_params_validate(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "rotation"));
    ctl_group_params_defaults(&p);
    p.curve.prop = 1.5;
    assert_int_equal(ctl_group_params_validate(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "curve"));
    ctl_group_params_defaults(&p);
    p.efficiency = 0.2;
    assert_int_equal(ctl_group_params_validate(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "efficiency"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curve),
        cmocka_unit_test(test_low_demand_one_unit),
        cmocka_unit_test(test_units_added_as_demand_rises),
        cmocka_unit_test(test_staging_hysteresis),
        cmocka_unit_test(test_never_opposite_directions),
        cmocka_unit_test(test_limits_and_minimum),
        cmocka_unit_test(test_offline_share_taken_over),
        cmocka_unit_test(test_soc_limits),
        cmocka_unit_test(test_soc_balance_separate_batteries),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_one_battery_equal_currents),
        cmocka_unit_test(test_params_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
