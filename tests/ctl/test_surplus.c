/*
 * test_surplus: the surplus rule and the surplus switches' rules (charge-ctl/surplus.c): on
 * at SurplusMinP, the global delay after a switch-on, MinDurationMin, MaxDurationMax,
 * BlockRestart, and the [SURPLUS_SWITCH] keys as the seed's sample ini writes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "surplus.h"

#define MIN 60000LL
#define SEC 1000LL

static config_t *s_load(const char *text, char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_surplus_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    config_t *cfg = config_load(path, err, errlen);
    unlink(path);
    return cfg;
}

/* One switch at 400 W, on at least 5 min, at most 60 min, no restart block, 40 s delay. */
static surplus_cfg_t s_one(void)
{
    surplus_cfg_t c = {.delay_ms = 40 * SEC, .n = 1};
    c.sw[0] = (surplus_switch_t){.num = 0,
                                 .topic = "home/boiler/set",
                                 .min_power_w = 400,
                                 .min_on_ms = 5 * MIN,
                                 .max_on_ms = 60 * MIN,
                                 .block_ms = -1};
    return c;
}

static void test_surplus_rule(void **state)
{
    /* Importing, or no meter: no surplus, whatever the battery does. */
    assert_true(surplus_power_w(true, 100, false, true, 0, 0) == 0);
    assert_true(surplus_power_w(false, -900, false, true, 0, 0) == 0);
    /* Exporting while the controller tracks and the device follows: the battery takes it in
     * (the export is a transient the controller is closing). */
    assert_true(surplus_power_w(true, -300, true, false, 1000, 990) == 0);
    /* Exporting while the charge is held at a limit, or the controller is not in control. */
    assert_true(surplus_power_w(true, -300, true, true, 1000, 990) == 300);
    assert_true(surplus_power_w(true, -300, false, false, 0, 0) == 300);
    /* The seed's rule: the device charges 80 W or more below its setpoint. */
    assert_true(surplus_power_w(true, -250, true, false, 1000, 920) == 250);
    assert_true(surplus_power_w(true, -250, true, false, 1000, 921) == 0);
}

static void test_on_at_threshold_and_min_duration(void **state)
{
    surplus_cfg_t c = s_one();
    surplus_state_t s;
    surplus_init(&s);
    int64_t t = 1000;
    assert_int_equal(surplus_step(&c, &s, 399, t), 0);
    assert_false(s.on[0]);
    assert_int_equal(surplus_step(&c, &s, 400, t), 1);
    assert_true(s.on[0]);
    /* Surplus gone, but MinDurationMin has not passed: stays on. */
    assert_int_equal(surplus_step(&c, &s, 0, t + 4 * MIN), 0);
    assert_true(s.on[0]);
    /* Some surplus left (less than SurplusMinP): stays on after MinDurationMin too. */
    assert_int_equal(surplus_step(&c, &s, 50, t + 6 * MIN), 0);
    assert_true(s.on[0]);
    /* None left after MinDurationMin: off. */
    assert_int_equal(surplus_step(&c, &s, 0, t + 6 * MIN), 1);
    assert_false(s.on[0]);
}

static void test_max_duration_and_block_restart(void **state)
{
    surplus_cfg_t c = s_one();
    c.sw[0].block_ms = 90 * MIN;
    surplus_state_t s;
    surplus_init(&s);
    int64_t t = 1000;
    assert_int_equal(surplus_step(&c, &s, 800, t), 1);
    /* Plenty of surplus all the time: off after MaxDurationMax. */
    assert_int_equal(surplus_step(&c, &s, 800, t + 60 * MIN), 0);
    assert_int_equal(surplus_step(&c, &s, 800, t + 60 * MIN + 1), 1);
    assert_false(s.on[0]);
    /* BlockRestart counts from the switch-on: not again before 90 min, then again. */
    assert_int_equal(surplus_step(&c, &s, 800, t + 89 * MIN), 0);
    assert_false(s.on[0]);
    assert_int_equal(surplus_step(&c, &s, 800, t + 90 * MIN), 1);
    assert_true(s.on[0]);
    /* MaxDurationMax -1: no limit. */
    c.sw[0].max_on_ms = -1;
    assert_int_equal(surplus_step(&c, &s, 800, t + 1000 * MIN), 0);
    assert_true(s.on[0]);
}

static void test_delay_between_switches(void **state)
{
    surplus_cfg_t c = s_one();
    c.n = 2;
    c.sw[1] = c.sw[0];
    c.sw[1].num = 3;
    c.sw[1].min_power_w = 200;
    c.sw[0].min_on_ms = 0;
    surplus_state_t s;
    surplus_init(&s);
    int64_t t = 1000;
    /* Both could go on; the first does and the delay holds the second. */
    assert_int_equal(surplus_step(&c, &s, 1000, t), 1);
    assert_int_equal(surplus_step(&c, &s, 1000, t + 39 * SEC), 0);
    /* Nothing turns off during the delay either (the grid settles first). */
    assert_int_equal(surplus_step(&c, &s, 0, t + 39 * SEC), 0);
    assert_true(s.on[0]);
    assert_int_equal(surplus_step(&c, &s, 1000, t + 40 * SEC), 2);
    assert_true(s.on[0] && s.on[1]);
    /* Turning off starts no delay: both off in one step once the surplus is gone. */
    assert_int_equal(surplus_step(&c, &s, 0, t + 90 * SEC + 5 * MIN), 3);
}

static void test_config_keys(void **state)
{
    char err[2048] = "";
    config_t *cfg = s_load("[SURPLUS_SWITCH]\n"
                           "Id/0/SwitchDelaySec=30\n"
                           "Id/0/switch/0/Name=\"pool-pump\"\n"
                           "Id/0/switch/0/Topic=\"foo/bar/poolpump\"\n"
                           "Id/0/switch/0/SurplusMinP=401\n"
                           "Id/0/switch/0/MinDurationMin=9\n"
                           "Id/0/switch/0/MaxDurationMax=11\n"
                           "Id/0/switch/2/SurplusMinP=0\n"
                           "Id/0/switch/5/SurplusMinP=1500\n"
                           "Id/0/switch/5/Topic=heater\n"
                           "Id/0/switch/5/BlockRestart=1440\n"
                           "Id/1/switch/0/SurplusMinP=100\n"
                           "Id/1/switch/0/Topic=other\n",
                           err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    surplus_cfg_t c;
    assert_int_equal(surplus_cfg_from_config(cfg, 0, &c, err, sizeof err), 0);
    assert_int_equal(c.delay_ms, 30 * SEC);
    assert_int_equal(c.n, 2); /* SurplusMinP 0: no switch, as in the seed */
    assert_int_equal(c.sw[0].num, 0);
    assert_string_equal(c.sw[0].name, "pool-pump");
    assert_string_equal(c.sw[0].topic, "foo/bar/poolpump");
    assert_true(c.sw[0].min_power_w == 401);
    assert_int_equal(c.sw[0].min_on_ms, 9 * MIN);
    assert_int_equal(c.sw[0].max_on_ms, 11 * MIN);
    assert_int_equal(c.sw[0].block_ms, -1);
    assert_int_equal(c.sw[1].num, 5);
    assert_int_equal(c.sw[1].min_on_ms, 5 * MIN); /* the seed's default */
    assert_int_equal(c.sw[1].max_on_ms, -1);
    assert_int_equal(c.sw[1].block_ms, 1440 * MIN);
    config_destroy(&cfg);

    /* Without the section: no switches, the seed's 40 s delay. */
    cfg = s_load("# empty\n", err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(surplus_cfg_from_config(cfg, 0, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(c.delay_ms, 40 * SEC);
    config_destroy(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_surplus_rule),
        cmocka_unit_test(test_on_at_threshold_and_min_duration),
        cmocka_unit_test(test_max_duration_and_block_restart),
        cmocka_unit_test(test_delay_between_switches),
        cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
