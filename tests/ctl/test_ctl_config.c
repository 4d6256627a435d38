/*
 * Unit tests of the controller's configuration mapping: real ini files through the common
 * loader into ctl_params_from_config and meter_cfg_from_config, including the seed's hourly
 * profile inheritance and files the seed accepted silently but that must be refused.
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
#include "config_schema.h"
#include "ctl_step.h"
#include "ctl_test_util.h"
#include "meter.h"

#define DEVICE_24V                                                                                 \
    "[DEVICE]\n"                                                                                   \
    "Id/0/ChargeVoltage=2760\n"                                                                    \
    "Id/0/DischargeVoltage=2450\n"                                                                 \
    "Id/0/MaxChargeCurrent=3500\n"                                                                 \
    "Id/0/MaxDischargeCurrent=2600\n"

static config_t *s_load(const char *text, char *err, size_t errlen)
{
    config_t *cfg = ctl_test_load(text, err, errlen);
    return cfg;
}

static void test_seed_profile_inheritance(void **state)
{
    char err[2048] = "";
    config_t *cfg = s_load(DEVICE_24V "[CHARGE_CONTROL]\n"
                                      "Id/0/TopicPower=tele/meter\n"
                                      "Id/0/Profile/Hour/0/MaxChargePower=1000\n"
                                      "Id/0/Profile/Hour/0/MaxDischargePower=-300\n"
                                      "Id/0/Profile/Hour/21/MaxDischargePower=-800\n"
                                      "Id/0/Profile/Hour/21/GridOffsetPower=40\n"
                                      "Id/0/Profile/Hour/23/DischargeBlockTimeSec=120\n",
                           err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    assert_non_null(cfg);
    ctl_params_t p;
    assert_int_equal(ctl_params_from_config(cfg, 0, &p, err, sizeof err), 0);
    assert_true(p.has_profile);
    assert_int_equal(p.hours[0].max_charge_w, 1000);
    assert_int_equal(p.hours[20].max_charge_w, 1000);
    assert_int_equal(p.hours[20].max_discharge_w, -300);
    assert_int_equal(p.hours[21].max_charge_w, 1000); /* not given for 21: inherited */
    assert_int_equal(p.hours[21].max_discharge_w, -800);
    assert_int_equal(p.hours[22].max_discharge_w, -800);
    assert_int_equal(p.hours[22].grid_offset_w, 40);
    assert_int_equal(p.hours[20].grid_offset_w, 0);
    assert_int_equal(p.hours[22].block_time_s, 60);
    assert_int_equal(p.hours[23].block_time_s, 120);
    config_destroy(&cfg);
}

static void test_no_profile_uses_flat_limits(void **state)
{
    char err[2048] = "";
    config_t *cfg = s_load(DEVICE_24V "[CHARGE_CONTROL]\n"
                                      "Id/0/TopicPower=tele/meter\n"
                                      "Id/0/ChargePowerOffset=25\n"
                                      "Id/0/DischargeBlockTimeSec=30\n"
                                      "Id/0/MaxChargePower=1500\n",
                           err, sizeof err);
    assert_non_null(cfg);
    ctl_params_t p;
    assert_int_equal(ctl_params_from_config(cfg, 0, &p, err, sizeof err), 0);
    /* Unlike the seed, a controller without a profile runs: the flat limits apply. */
    assert_false(p.has_profile);
    for (int h = 0; h < 24; h++) {
        assert_int_equal(p.hours[h].max_charge_w, 1500);
        assert_int_equal(p.hours[h].max_discharge_w, -1600);
        assert_int_equal(p.hours[h].grid_offset_w, 25);
        assert_int_equal(p.hours[h].block_time_s, 30);
    }
    assert_true(p.enabled);
    config_destroy(&cfg);
}

static void test_device_and_battery_keys(void **state)
{
    char err[2048] = "";
    config_t *cfg = s_load(DEVICE_24V "[BAT_0]\n"
                                      "Cap2V/0=24.0\n"
                                      "Cap2V/50=26.2\n"
                                      "Cap2V/100=27.2\n"
                                      "InternalResistanceMOhm=20\n"
                                      "[CHARGE_CONTROL]\n"
                                      "Id/0/TopicPower=tele/meter\n"
                                      "Id/0/DirectionDwellSec=12\n"
                                      "Id/0/IdleDwellSec=7\n"
                                      "Id/0/DwellMaxPower=450\n"
                                      "Id/0/MeterTimeoutSec=20\n"
                                      "Id/0/MinSocPct=10\n"
                                      "Id/0/DischargeBlockHourStart=22\n"
                                      "Id/0/DischargeBlockHourStop=5\n",
                           err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    assert_non_null(cfg);
    ctl_params_t p;
    assert_int_equal(ctl_params_from_config(cfg, 0, &p, err, sizeof err), 0);
    assert_int_equal(p.max_charge_ca, 3500);
    assert_int_equal(p.max_discharge_ca, 2600);
    assert_int_equal(p.min_current_ca, 90);   /* 24 V model: 1 % of 90 A */
    assert_int_equal(p.min_voltage_cv, 2450); /* default: DischargeVoltage */
    assert_int_equal(p.max_voltage_cv, 2760);
    assert_int_equal(p.cap2v_n, 3);
    assert_true(p.r_internal_ohm > 0.0199 && p.r_internal_ohm < 0.0201);
    assert_int_equal(p.direction_dwell_ms, 12000);
    assert_int_equal(p.idle_dwell_ms, 7000);
    assert_int_equal(p.dwell_max_w, 450);
    assert_int_equal(p.meter_timeout_ms, 20000);
    assert_int_equal(p.telemetry_timeout_ms, 10000); /* 5 x 1000 ms, at least 10 s */
    assert_int_equal(p.min_soc_pct, 10);
    assert_true(ctl_block_hour(&p, 23));
    assert_true(ctl_block_hour(&p, 4));
    assert_false(ctl_block_hour(&p, 12));
    assert_true(ctl_soc_from_voltage(&p, 27.5) == 100);
    config_destroy(&cfg);
}

static void test_disabled_controller(void **state)
{
    char err[2048] = "";
    config_t *cfg = s_load(DEVICE_24V "[CHARGE_CONTROL]\n"
                                      "Id/0/TopicPower=tele/meter\n"
                                      "Id/0/Enable=0\n",
                           err, sizeof err);
    assert_non_null(cfg);
    ctl_params_t p;
    assert_int_equal(ctl_params_from_config(cfg, 0, &p, err, sizeof err), 0);
    assert_false(p.enabled);
    config_destroy(&cfg);
}

static void test_meter_keys(void **state)
{
    char err[2048] = "";
    config_t *cfg = s_load(DEVICE_24V "[CHARGE_CONTROL]\n"
                                      "Id/0/TopicPower=tele/meter/SENSOR\n"
                                      "Id/0/MeterJsonPath=SML.curr_w\n"
                                      "Id/0/MeterUnit=kW\n"
                                      "Id/0/MeterInvert=1\n"
                                      "Id/0/MeterMaxAbsW=20000\n",
                           err, sizeof err);
    assert_non_null(cfg);
    meter_cfg_t m;
    assert_int_equal(meter_cfg_from_config(cfg, 0, &m, err, sizeof err), 0);
    assert_string_equal(m.json_path, "SML.curr_w");
    assert_true(m.scale == 1000);
    assert_true(m.invert);
    assert_true(m.max_abs_w == 20000);
    double w;
    const char *payload = "{\"SML\":{\"curr_w\":0.071}}";
    assert_int_equal(meter_parse(&m, payload, strlen(payload), &w, err, sizeof err), 0);
    assert_true(w > -71.001 && w < -70.999);
    config_destroy(&cfg);
}

/* Every bounded [CHARGE_CONTROL] key of the schema (from the table, so none is missed) in an
 * otherwise valid controller file: min-1 and max+1 (a thousandth past for floats) refused
 * for the range, min and max loaded and taken by ctl_params_from_config, or refused only by
 * a rule between keys (a block window's other end, MinSocPct not below MaxSocPct...). */
static void test_every_controller_bound(void **state)
{
    size_t tested = 0;
    for (size_t i = 0; i < config_schema_count; i++) {
        const config_key_t *k = &config_schema[i];
        if (strcmp(k->section, "CHARGE_CONTROL") != 0 || (k->type != CT_INT && k->type != CT_FLOAT))
            continue;
        char key[128];
        size_t j = 0;
        int hashes = 0;
        for (const char *c = k->key; *c && j + 1 < sizeof key; c++)
            key[j++] = *c == '#' ? (hashes++ == 0 ? '0' : '1') : *c; /* Id/0, Hour/1 */
        key[j] = '\0';
        for (int v = 0; v < 4; v++) {
            char text[64], ini[512], err[4096] = "", needle[256];
            double step = k->type == CT_INT ? 1 : 0.001;
            double val = v == 0 ? k->min - step : v == 1 ? k->min : v == 2 ? k->max : k->max + step;
            snprintf(text, sizeof text, "%.10g", val);
            snprintf(ini, sizeof ini, DEVICE_24V "[CHARGE_CONTROL]\nId/0/TopicPower=m\n%s=%s\n",
                     key, text);
            config_t *cfg = s_load(ini, err, sizeof err);
            snprintf(needle, sizeof needle, "%s: '%s' is out of range", key, text);
            if (v == 0 || v == 3) {
                if (cfg || !strstr(err, needle))
                    fail_msg("%s=%s (bounds %g..%g) not refused as out of range:\n%s", key, text,
                             k->min, k->max, err);
                continue;
            }
            if (strstr(err, needle))
                fail_msg("%s=%s (bounds %g..%g) refused:\n%s", key, text, k->min, k->max, err);
            if (!cfg) {
                /* refused by a rule between keys: the message names this key (perhaps as
                 * the other end, "MinSocPct: '5' is not below MaxSocPct (0)") */
                const char *name = key + strlen("Id/0/");
                if (!strstr(err, "is not a window") &&
                    (!strstr(err, " is not ") || !strstr(err, name)))
                    fail_msg("%s=%s refused for no rule of its own:\n%s", key, text, err);
                continue;
            }
            ctl_params_t p;
            if (ctl_params_from_config(cfg, 0, &p, err, sizeof err) != 0)
                fail_msg("%s=%s loaded but the controller refused it: %s", key, text, err);
            config_destroy(&cfg);
        }
        tested++;
    }
    assert_true(tested >= 30); /* the table has about 40; a broken filter would test nothing */
}

static void test_files_the_seed_accepted_are_refused(void **state)
{
    char err[2048] = "";
    /* The seed's sample ini: a missing newline made P the string "0.3Id/0/Pid/I=0", which
     * silently became 1.0. */
    config_t *cfg = s_load(DEVICE_24V "[CHARGE_CONTROL]\n"
                                      "Id/0/TopicPower=tele/meter\n"
                                      "Id/0/Pid/P=0.3Id/0/Pid/I=0\n",
                           err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "Pid/P"));
    /* A unit that does not exist. */
    cfg = s_load(DEVICE_24V "[CHARGE_CONTROL]\n"
                            "Id/0/TopicPower=tele/meter\n"
                            "Id/0/MeterUnit=hp\n",
                 err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "MeterUnit"));
    /* A profile hour that allows charging as "discharge". */
    cfg = s_load(DEVICE_24V "[CHARGE_CONTROL]\n"
                            "Id/0/TopicPower=tele/meter\n"
                            "Id/0/Profile/Hour/3/MaxDischargePower=200\n",
                 err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "MaxDischargePower"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_profile_inheritance),
        cmocka_unit_test(test_no_profile_uses_flat_limits),
        cmocka_unit_test(test_device_and_battery_keys),
        cmocka_unit_test(test_disabled_controller),
        cmocka_unit_test(test_meter_keys),
        cmocka_unit_test(test_files_the_seed_accepted_are_refused),
        cmocka_unit_test(test_every_controller_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
