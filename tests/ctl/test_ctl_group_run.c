/*
 * Unit tests of one controller over a group (ctl_group_run.h): the household step on the
 * group as one device and the dispatch, with each device's command. An import covered by
 * one unit and then by more; a device lost: its share whole on the others at the step that
 * knows of it and no command to it; back: its command given again; the group's limits follow the
 * devices online; a standby unit's voltage moving between meter samples gives no command; a
 * standby unit given the running units' current as a preset, within its own limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>

#include "ctl_group_run.h"
#include "ctl_test_util.h"

typedef struct {
    ctl_params_t unit;
    ctl_group_cfg_t g;
    ctl_group_run_t run;
    ctl_group_dev_t dev[3];
    ctl_input_t house;
    ctl_group_run_out_t out;
    int64_t t;
} rig_t;

static void s_rig(rig_t *r)
{
    memset(r, 0, sizeof *r);
    ctl_test_params(&r->unit);
    r->t = 1000000;
    r->g.n = 3;
    for (int i = 0; i < 3; i++) {
        r->g.dev[i] = i;
        r->g.max_charge_ca[i] = r->unit.max_charge_ca;
        r->g.max_discharge_ca[i] = r->unit.max_discharge_ca;
        r->g.min_current_ca[i] = r->unit.min_current_ca;
        r->dev[i].online = true;
        r->dev[i].telemetry_valid = true;
        r->dev[i].dc_v = 26.4;
        r->dev[i].soc_valid = true;
        r->dev[i].soc_pct = 50;
    }
    ctl_group_params_defaults(&r->g.params);
    ctl_group_run_init(&r->run, r->t);
    ctl_test_input(&r->house, r->t);
}

/* Each device does what it was told; a meter sample of the household's load (W, + import)
 * with the group's power on it arrives; one step. */
static void s_sample(rig_t *r, double load_w)
{
    double batt = 0;
    for (int i = 0; i < 3; i++) {
        if (!r->dev[i].online) {
            r->dev[i].dc_a = 0;
            continue;
        }
        int ca = r->run.current_ca[i];
        double a = r->run.mode[i] == CTL_MODE_DISCHARGE ? -ca / 100.0
                   : r->run.mode[i] == CTL_MODE_CHARGE  ? ca / 100.0
                                                        : 0;
        r->dev[i].dc_a = a;
        double dc = a * 26.4;
        batt += dc >= 0 ? dc / r->unit.efficiency : dc * r->unit.efficiency;
    }
    r->t += 2000;
    for (int i = 0; i < 3; i++)
        r->dev[i].telemetry_ms = r->t - 500;
    r->house.now_ms = r->t;
    r->house.meter_valid = true;
    r->house.meter_w = load_w + batt;
    r->house.meter_arrival_ms = r->t;
    r->house.meter_seq++;
    ctl_group_run_step(&r->unit, &r->g, &r->run, &r->house, r->dev, &r->out);
}

static int s_running(const rig_t *r)
{
    int n = 0;
    for (int i = 0; i < 3; i++)
        n += r->run.mode[i] == CTL_MODE_CHARGE || r->run.mode[i] == CTL_MODE_DISCHARGE;
    return n;
}

/* A rig whose group has settled on an import of 2500 W after n samples: two units run. */
static void s_two_running(rig_t *r, int n)
{
    s_rig(r);
    for (int i = 0; i < n; i++)
        s_sample(r, 2500);
    assert_int_equal(s_running(r), 2);
}

static void test_import_covered_by_one_then_more(void **st)
{
    (void)st;
    rig_t r;
    s_rig(&r);
    for (int i = 0; i < 10; i++)
        s_sample(&r, 400);
    assert_int_equal(r.out.ctl.mode, CTL_MODE_DISCHARGE);
    assert_int_equal(s_running(&r), 1);
    assert_true(fabs(r.house.meter_w) < 40);
    for (int i = 0; i < 15; i++)
        s_sample(&r, 3500);
    assert_int_equal(s_running(&r), 3); /* 3.5 kW: more than two units' 1.6 kW each */
    assert_true(fabs(r.house.meter_w) < 40);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r.run.mode[i], CTL_MODE_DISCHARGE);
}

static void test_lost_device_share_taken_over_and_rejoins(void **st)
{
    (void)st;
    rig_t r;
    s_two_running(&r, 15);
    int lost = r.run.mode[0] == CTL_MODE_DISCHARGE ? 0 : 1;
    double before = r.out.go.total_w;
    /* lost: at the step that knows of it nothing goes to it and both others run, given its
     * share whole (the setpoint kept), although the meter sample of that step shows its part
     * as an import (the others' new commands are in flight: the sample is credited with them) */
    r.dev[lost].online = false;
    s_sample(&r, 2500);
    assert_true(fabs(r.out.go.total_w - before) <= 0.05 * fabs(before));
    assert_false(r.out.send[lost]);
    assert_int_equal(r.out.go.why[lost], CTL_GU_OFFLINE);
    assert_int_equal(r.out.online, 2);
    int others = 0;
    for (int i = 0; i < 3; i++)
        if (i != lost && r.out.mode[i] == CTL_MODE_DISCHARGE)
            others++;
    assert_int_equal(others, 2);
    s_sample(&r, 2500);
    assert_true(r.out.go.total_w <= before + 60);
    for (int i = 0; i < 10; i++)
        s_sample(&r, 2500);
    assert_true(fabs(r.house.meter_w) < 40);
    /* back: it is given a command again (its gateway idled it when the lease lapsed) */
    r.dev[lost].online = true;
    r.dev[lost].dc_a = 0;
    bool sent = false;
    for (int i = 0; i < 60 && !sent; i++) {
        s_sample(&r, 2500);
        sent = r.out.send[lost];
    }
    assert_true(sent);
}

static void test_small_change_to_one_unit(void **st)
{
    (void)st;
    rig_t r;
    s_two_running(&r, 20);
    /* the household's load wanders by a few watts: each change goes to one unit, and the
     * shares stay within a tenth of a unit's limit of the dispatch's */
    int changes = 0, one = 0;
    for (int i = 0; i < 40; i++) {
        s_sample(&r, 2500 + (i % 2 ? 25 : -25));
        int sends = r.out.send[0] + r.out.send[1] + r.out.send[2];
        changes += sends > 0;
        one += sends == 1;
        for (int u = 0; u < 3; u++)
            if (r.run.mode[u] == CTL_MODE_DISCHARGE)
                assert_true(abs(r.run.current_ca[u] - r.out.go.current_ca[u]) <=
                                r.g.max_discharge_ca[u] / CTL_GROUP_DRIFT ||
                            r.out.send[u]);
    }
    assert_true(changes > 5);
    assert_true(one >= changes - 2);
    assert_true(fabs(r.house.meter_w) < 60);
    /* a large change: the dispatch's shares, every running unit told */
    for (int i = 0; i < 3; i++)
        s_sample(&r, 3600);
    assert_int_equal(s_running(&r), 3);
    for (int u = 0; u < 3; u++)
        assert_true(abs(r.run.current_ca[u] - r.out.go.current_ca[u]) <= 1);
}

/* Two units run, the third is on standby and its voltage reads apart from theirs (no current
 * through it; telemetry read at another moment): the group's steps between meter samples give
 * the running units no new command. With the setpoint's power taken at the mean voltage of
 * all three, the running units' current crept with the standby unit's voltage: a write to a
 * device between meter readings, which holds that device's next command on the bus. */
static void test_standby_voltage_moves_no_command(void **st)
{
    (void)st;
    rig_t r;
    s_two_running(&r, 20);
    int standby =
        r.run.mode[0] == CTL_MODE_DISCHARGE ? (r.run.mode[1] == CTL_MODE_DISCHARGE ? 2 : 1) : 0;
    assert_int_equal(r.run.mode[standby], CTL_MODE_IDLE);
    int sends = 0;
    for (int k = 0; k < 10; k++) {
        r.dev[standby].dc_v = 26.4 + 0.05 * (k + 1); /* the standby unit's own reading */
        r.t += 1000;                                 /* the step's tick: no new meter sample */
        for (int i = 0; i < 3; i++)
            r.dev[i].telemetry_ms = r.t - 200;
        r.house.now_ms = r.t;
        ctl_group_run_step(&r.unit, &r.g, &r.run, &r.house, r.dev, &r.out);
        sends += r.out.send[0] + r.out.send[1] + r.out.send[2];
    }
    assert_int_equal(sends, 0);
}

static int s_standby(const rig_t *r)
{
    for (int i = 0; i < 3; i++)
        if (r->run.mode[i] == CTL_MODE_IDLE)
            return i;
    fail_msg("no unit on standby");
    return -1;
}

/* Two units discharge at one current, the third is on standby: it is given that current as
 * a discharge preset (its output stays idle: no current of its own); a small change that
 * leaves the running units at different currents keeps its preset (no command to it); the
 * next whole shares give it the new common current; a preset beyond its own limit is none. */
static void test_standby_unit_preset(void **st)
{
    (void)st;
    rig_t r;
    s_two_running(&r, 20);
    int sb = s_standby(&r);
    int run0 = sb == 0 ? 1 : 0, run1 = sb == 2 ? 1 : 2;
    /* a large change: whole shares, one current for both */
    s_sample(&r, 3000);
    for (int i = 0; i < 10 && r.run.current_ca[run0] != r.run.current_ca[run1]; i++)
        s_sample(&r, 3000);
    assert_int_equal(r.run.current_ca[run0], r.run.current_ca[run1]);
    assert_int_equal(r.run.mode[sb], CTL_MODE_IDLE);
    assert_int_equal(r.run.current_ca[sb], 0);
    assert_int_equal(r.run.preset_ca[sb], -r.run.current_ca[run0]);
    assert_int_equal(ctl_group_run_link_ca(&r.run, sb), -r.run.current_ca[run0]);
    assert_int_equal(ctl_group_run_link_ca(&r.run, run0), r.run.current_ca[run0]);
    assert_true(fabs(r.dev[sb].dc_a) < 1e-9);
    /* the next large change: the standby unit is told together with the running units */
    int before = r.run.preset_ca[sb];
    bool told = false;
    for (int i = 0; i < 10; i++) {
        s_sample(&r, 2200);
        if (r.run.preset_ca[sb] != before) {
            assert_true(r.out.send[sb]);
            assert_true(r.out.send[run0] || r.out.send[run1]);
            told = true;
            break;
        }
    }
    assert_true(told);
    /* small changes, each to one unit: the preset is kept (a write of its own would join no
     * frame), also when a trim brings the running units' currents together again */
    int p = r.run.preset_ca[sb];
    int trims = 0;
    for (int i = 0; i < 40; i++) {
        s_sample(&r, 2200 + (i % 2 ? 30 : -30));
        if (r.out.send[run0] != r.out.send[run1]) {
            trims++;
            assert_false(r.out.send[sb]);
            assert_int_equal(r.run.preset_ca[sb], p);
        }
        if (r.out.send[sb]) /* only together with every running unit */
            assert_true(r.out.send[run0] && r.out.send[run1]);
        p = r.run.preset_ca[sb];
    }
    assert_true(trims > 5);
    /* the standby unit's own limit below the running units' current: no preset */
    r.g.max_discharge_ca[sb] = abs(r.run.preset_ca[sb]) - 100;
    s_sample(&r, 2300);
    assert_int_equal(r.out.preset_ca[sb], 0);
    assert_true(r.out.send[sb]);
}

static void test_group_limits_follow_the_devices_online(void **st)
{
    (void)st;
    rig_t r;
    s_rig(&r);
    ctl_params_t pg;
    ctl_group_run_params(&r.unit, &r.g, r.dev, &pg);
    assert_int_equal(pg.max_charge_ca, 3 * r.unit.max_charge_ca);
    assert_int_equal(pg.hours[12].max_charge_w, 3 * r.unit.hours[12].max_charge_w);
    r.dev[1].online = false;
    ctl_group_run_params(&r.unit, &r.g, r.dev, &pg);
    assert_int_equal(pg.max_discharge_ca, 2 * r.unit.max_discharge_ca);
    assert_int_equal(pg.hours[12].max_discharge_w, 2 * r.unit.hours[12].max_discharge_w);
    /* none online: the step idles and no device is given anything */
    r.dev[0].online = r.dev[2].online = false;
    s_sample(&r, 1000);
    assert_int_equal(r.out.online, 0);
    for (int i = 0; i < 3; i++)
        assert_false(r.out.send[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_covered_by_one_then_more),
        cmocka_unit_test(test_lost_device_share_taken_over_and_rejoins),
        cmocka_unit_test(test_group_limits_follow_the_devices_online),
        cmocka_unit_test(test_small_change_to_one_unit),
        cmocka_unit_test(test_standby_voltage_moves_no_command),
        cmocka_unit_test(test_standby_unit_preset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
