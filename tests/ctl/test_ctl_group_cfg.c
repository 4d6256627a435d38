/*
 * Unit tests of a controller's group from the configuration (ctl_group_cfg.h): real ini
 * files through the common loader. Without Id/X/Devices the group is X alone; a listed group
 * with its batteries, limits and dispatch keys; every wrong list refused with the key and
 * what is allowed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "ctl_group_cfg.h"
#include "ctl_test_util.h"

#define DEV(y, cv, max)                                                                            \
    "Id/" #y "/ChargeVoltage=" #cv "\n"                                                            \
    "Id/" #y "/DischargeVoltage=2400\n"                                                            \
    "Id/" #y "/MaxChargeCurrent=" #max "\n"                                                        \
    "Id/" #y "/MaxDischargeCurrent=6000\n"

#define THREE "[DEVICE]\n" DEV(0, 2800, 7500) DEV(1, 2800, 5000) DEV(2, 2800, 7500)

/* Loads text and reads controller 0's group; returns its result, err as it says. */
static int s_group(const char *text, ctl_group_cfg_t *g, char *err, size_t errlen)
{
    config_t *cfg = ctl_test_load(text, err, errlen);
    if (!cfg)
        fprintf(stderr, "%s\n", err);
    assert_non_null(cfg);
    int rc = ctl_group_cfg_from_config(cfg, 0, g, err, errlen);
    config_destroy(&cfg);
    return rc;
}

static void test_no_devices_key_is_the_device_alone(void **st)
{
    (void)st;
    char err[1024] = "";
    ctl_group_cfg_t g;
    assert_int_equal(s_group(THREE "[CHARGE_CONTROL]\nId/0/TopicPower=m\n", &g, err, sizeof err),
                     0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.dev[0], 0);
    assert_int_equal(g.max_charge_ca[0], 7500);
    assert_true(g.params.stage_hyst == 0.15);
    assert_true(g.params.rotate_wh == 1000.0);
    assert_true(g.params.soc_balance);
    assert_true(g.params.staging);
}

static void test_a_group(void **st)
{
    (void)st;
    char err[1024] = "";
    ctl_group_cfg_t g;
    assert_int_equal(s_group(THREE "Id/2/Battery=1\n"
                                   "Id/1/MinCurrent=200\n"
                                   "[CHARGE_CONTROL]\n"
                                   "Id/0/TopicPower=m\n"
                                   "Id/0/Devices= 2, 0 ,1\n"
                                   "Id/0/Group/StageHysteresisPct=25\n"
                                   "Id/0/Group/RotateWh=0\n"
                                   "Id/0/Group/SocBalance=0\n",
                             &g, err, sizeof err),
                     0);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.dev[0], 2);
    assert_int_equal(g.dev[1], 0);
    assert_int_equal(g.dev[2], 1);
    assert_int_equal(g.battery[0], 1);
    assert_int_equal(g.battery[1], 0);
    assert_int_equal(g.battery[2], 0);
    assert_int_equal(g.max_charge_ca[2], 5000);
    assert_int_equal(g.min_current_ca[2], 200);
    assert_true(g.params.stage_hyst == 0.25);
    assert_true(g.params.rotate_wh == 0.0);
    assert_false(g.params.soc_balance);
}

static void test_wrong_lists_refused(void **st)
{
    (void)st;
    static const struct {
        const char *devices;
        const char *says;
    } bad[] = {
        {"0,0", "lists device 0 twice"},
        {"1,2", "does not list the controller's own device 0"},
        {"0,70", "is not a list of devices"},
        {"0,x", "is not a list of devices"},
        {"0,1,", "is not a list of devices"},
        {"0;1", "is not a list of devices"},
        {"0,1,2,3,4,5,6,7,8", "lists more than 8 devices"},
        {"0,5", "device 5 has no [DEVICE] Id/5/ keys"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024], err[1024] = "";
        snprintf(text, sizeof text, THREE "[CHARGE_CONTROL]\nId/0/TopicPower=m\nId/0/Devices=%s\n",
                 bad[i].devices);
        ctl_group_cfg_t g;
        assert_int_equal(s_group(text, &g, err, sizeof err), -1);
        if (!strstr(err, bad[i].says))
            fprintf(stderr, "%s: %s\n", bad[i].devices, err);
        assert_non_null(strstr(err, bad[i].says));
        assert_non_null(strstr(err, "Id/0/Devices"));
    }
}

static void test_one_battery_shares_its_voltages(void **st)
{
    (void)st;
    char err[1024] = "";
    ctl_group_cfg_t g;
    const char *diff =
        "[DEVICE]\n" DEV(0, 2800, 7500) DEV(1, 2760, 7500) "[CHARGE_CONTROL]\n"
                                                           "Id/0/TopicPower=m\nId/0/Devices=0,1\n";
    assert_int_equal(s_group(diff, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "sit on battery 0 but differ"));
    /* on separate batteries they may differ */
    const char *apart = "[DEVICE]\n" DEV(0, 2800, 7500)
        DEV(1, 2760, 7500) "Id/1/Battery=1\n"
                           "[CHARGE_CONTROL]\nId/0/TopicPower=m\nId/0/Devices=0,1\n";
    assert_int_equal(s_group(apart, &g, err, sizeof err), 0);
    assert_int_equal(g.n, 2);
    /* two devices on a second battery share its voltages, not the first battery's */
    const char *second = "[DEVICE]\n" DEV(0, 2800, 7500) DEV(1, 2760, 7500) "Id/1/Battery=1\n" DEV(
        2, 2760, 7500) "Id/2/Battery=1\n"
                       "[CHARGE_CONTROL]\nId/0/TopicPower=m\nId/0/Devices=0,1,2\n";
    assert_int_equal(s_group(second, &g, err, sizeof err), 0);
    assert_int_equal(g.n, 3);
    const char *second_diff =
        "[DEVICE]\n" DEV(0, 2800, 7500) DEV(1, 2760, 7500) "Id/1/Battery=1\n" DEV(
            2, 2800, 7500) "Id/2/Battery=1\n"
                           "[CHARGE_CONTROL]\nId/0/TopicPower=m\nId/0/Devices=0,1,2\n";
    assert_int_equal(s_group(second_diff, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "devices 1 and 2 sit on battery 1 but differ"));
}

#define REMOTE(y, g, cv)                                                                           \
    "Id/" #y "@" #g "/ChargeVoltage=" #cv "\n"                                                     \
    "Id/" #y "@" #g "/DischargeVoltage=2400\n"                                                     \
    "Id/" #y "@" #g "/MaxChargeCurrent=5000\n"                                                     \
    "Id/" #y "@" #g "/MaxDischargeCurrent=4000\n"

#define GW1                                                                                        \
    "[GATEWAY]\nGw/1/ReqEndpoint=tcp://127.0.0.1:5555\nGw/1/PubEndpoint=tcp://127.0.0.1:5556\n"

/* Devices on two gateways: device 0 on [GATEWAY]'s own and device 0 on gateway 1 (the same
 * address on another bus), each with its own limits. */
static void test_a_group_over_two_gateways(void **st)
{
    (void)st;
    char err[1024] = "";
    ctl_group_cfg_t g;
    assert_int_equal(s_group(GW1 THREE REMOTE(0, 1, 2800) "Id/0@1/Battery=3\n"
                                                          "[CHARGE_CONTROL]\n"
                                                          "Id/0/TopicPower=m\n"
                                                          "Id/0/Devices=0, 0@1\n",
                             &g, err, sizeof err),
                     0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.n_gw, 2);
    assert_int_equal(g.dev[0], 0);
    assert_int_equal(g.gw[0], 0);
    assert_int_equal(g.dev[1], 0);
    assert_int_equal(g.gw[1], 1);
    assert_int_equal(g.max_charge_ca[1], 5000);
    assert_int_equal(g.max_discharge_ca[1], 4000);
    assert_int_equal(g.min_current_ca[1], 90); /* the 24 V model's 1 % */
    assert_int_equal(g.battery[1], 3);
    char name[16];
    assert_string_equal(ctl_group_member_name(&g, 1, name, sizeof name), "0@1");
    assert_string_equal(ctl_group_member_name(&g, 0, name, sizeof name), "0");

    /* the other gateway's devices are not [GATEWAY]'s own: its gateway sees devices 0-2 */
    config_t *cfg = ctl_test_load(GW1 THREE REMOTE(5, 1, 2800), err, sizeof err);
    assert_non_null(cfg);
    int ids[CONFIG_MAX_IDS];
    assert_int_equal(config_ids(cfg, "DEVICE", ids, CONFIG_MAX_IDS), 3);
    config_destroy(&cfg);
}

static void test_wrong_remote_devices_refused(void **st)
{
    (void)st;
    static const struct {
        const char *text;
        const char *says;
    } bad[] = {
        {GW1 THREE REMOTE(0, 1, 2800) "[CHARGE_CONTROL]\nId/0/Devices=0,0@1,0@1\n",
         "lists device 0@1 twice"},
        {GW1 THREE REMOTE(0, 1, 2800) "[CHARGE_CONTROL]\nId/0/Devices=0,0@0\n",
         "is not a list of devices"},
        {GW1 THREE REMOTE(0, 1, 2800) "[CHARGE_CONTROL]\nId/0/Devices=0,0@8\n",
         "is not a list of devices"},
        {GW1 THREE REMOTE(0, 1, 2800) "[CHARGE_CONTROL]\nId/0/Devices=0@1\n",
         "does not list the controller's own device 0"},
        {THREE REMOTE(0, 2, 2800) "[CHARGE_CONTROL]\nId/0/Devices=0,0@2\n",
         "Gw/2/ReqEndpoint and Gw/2/PubEndpoint are not both set"},
        {GW1 THREE "[CHARGE_CONTROL]\nId/0/Devices=0,1@1\n",
         "has no [DEVICE] Id/1@1/ChargeVoltage"},
        {GW1 THREE REMOTE(0, 1, 2300) "[CHARGE_CONTROL]\nId/0/Devices=0,0@1\n",
         "Id/0@1/DischargeVoltage: '2400' is not below"},
        {GW1 THREE REMOTE(0, 1, 2760) "[CHARGE_CONTROL]\nId/0/Devices=0,0@1\n",
         "devices 0 and 0@1 sit on battery 0 but differ"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[2048], err[1024] = "";
        snprintf(text, sizeof text, "%sId/0/TopicPower=m\n", bad[i].text);
        ctl_group_cfg_t g;
        assert_int_equal(s_group(text, &g, err, sizeof err), -1);
        if (!strstr(err, bad[i].says))
            fprintf(stderr, "%zu: %s\n", i, err);
        assert_non_null(strstr(err, bad[i].says));
    }
    /* out of range in the file itself: the loader names the key */
    char err[2048] = "";
    config_t *cfg = ctl_test_load("[GATEWAY]\nGw/8/ReqEndpoint=ipc:///x\n", err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "gateway number 8 is out of range; allowed: 1..7"));
    cfg = ctl_test_load("[DEVICE]\nId/0@0/ChargeVoltage=2800\n", err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "gateway number 0 is out of range"));
    cfg = ctl_test_load("[GATEWAY]\nGw/1/ReqEndpoint=http://x\n", err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "Gw/1/ReqEndpoint"));
}

static void test_group_keys_ranges(void **st)
{
    (void)st;
    char err[2048] = "";
    config_t *cfg = ctl_test_load(THREE "[CHARGE_CONTROL]\nId/0/TopicPower=m\n"
                                        "Id/0/Group/StageHysteresisPct=150\n",
                                  err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "StageHysteresisPct"));
    cfg = ctl_test_load(THREE "Id/1/Battery=64\n", err, sizeof err);
    assert_null(cfg);
    assert_non_null(strstr(err, "Battery"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_devices_key_is_the_device_alone),
        cmocka_unit_test(test_a_group),
        cmocka_unit_test(test_wrong_lists_refused),
        cmocka_unit_test(test_one_battery_shares_its_voltages),
        cmocka_unit_test(test_group_keys_ranges),
        cmocka_unit_test(test_a_group_over_two_gateways),
        cmocka_unit_test(test_wrong_remote_devices_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
