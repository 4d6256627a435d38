/*
 * Unit tests of ha_disc: discovery topics and payloads for the bridge and a BIC (numbers
 * follow the gateway's limits, conditional entities appear when their data is known), unique
 * ids, and removal messages covering every entity. The payloads are checked against Home
 * Assistant's documented schema by the integration test (ha_schema.py); here the structure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ha_disc.h"

static const ha_ctx_t CTX = {.prefix = "homeassistant",
                             .topic_main = "haus/power/bat/bic2mqtt",
                             .node = "haus_power_bat_bic2mqtt",
                             .avail_online = "running",
                             .avail_offline = "offline",
                             .sw_version = "0.1.0"};

static const char *INFO =
    "{\"dev\":1,\"online\":true,\"model\":\"BIC-2200-24\",\"firmware\":{\"raw\":\"0E0DFFFFFFFF\","
    "\"mcu\":[\"R01.4\",\"R01.3\"]},\"serial\":\"180101000001\",\"caps\":{\"fans\":true},"
    "\"limits\":{\"vout_v\":[19.0,28.0],\"iout_a\":[0.9,90.0],\"rev_vout_v\":[19.0,28.0],"
    "\"rev_iout_a\":[0.9,76.5]}}";

static const ha_msg_t *find(const ha_list_t *l, const char *topic)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->msgs[i].topic, topic) == 0)
            return &l->msgs[i];
    return NULL;
}

static dev_view_t *full_device(void)
{
    dev_view_t *dv = dev_view_new(1);
    cJSON *j = cJSON_Parse(INFO);
    char err[64];
    assert_int_equal(dev_view_on_info(dv, j, err, sizeof err), 0);
    cJSON_Delete(j);
    assert_int_equal(dev_view_set_soc(dv, 50), 0);
    return dv;
}

static void test_device_entities(void **state)
{
    dev_view_t *dv = full_device();
    ha_list_t l = {0};
    assert_int_equal(ha_device_msgs(&CTX, dv, &l), 0);
    assert_true(l.count >= 25);

    /* Every message: a topic of this node, a JSON object with a unique uniq_id, the device
     * block without via_device (retained configs arrive in any order), origin, and
     * availability on the bridge's LWT. */
    for (size_t i = 0; i < l.count; i++) {
        int dev = -2;
        assert_true(ha_topic_dev(&CTX, l.msgs[i].topic, &dev));
        assert_int_equal(dev, 1);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(l.msgs[i].topic, l.msgs[k].topic);
        cJSON *p = cJSON_Parse(l.msgs[i].payload);
        assert_true(cJSON_IsObject(p));
        const char *uid = cJSON_GetObjectItem(p, "uniq_id")->valuestring;
        for (size_t k = 0; k < i; k++) {
            cJSON *q = cJSON_Parse(l.msgs[k].payload);
            assert_string_not_equal(uid, cJSON_GetObjectItem(q, "uniq_id")->valuestring);
            cJSON_Delete(q);
        }
        const cJSON *d = cJSON_GetObjectItem(p, "dev");
        assert_null(cJSON_GetObjectItem(d, "via_device"));
        assert_string_equal(cJSON_GetObjectItem(d, "mdl")->valuestring, "BIC-2200-24");
        assert_string_equal(cJSON_GetObjectItem(d, "sn")->valuestring, "180101000001");
        assert_string_equal(cJSON_GetObjectItem(d, "sw")->valuestring, "R01.4/R01.3");
        assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "o"), "name"));
        const cJSON *av = cJSON_GetArrayItem(cJSON_GetObjectItem(p, "avty"), 0);
        assert_string_equal(cJSON_GetObjectItem(av, "topic")->valuestring,
                            "haus/power/bat/bic2mqtt/sys/state");
        assert_string_equal(cJSON_GetObjectItem(av, "payload_available")->valuestring, "running");
        cJSON_Delete(p);
    }

    /* Numbers take min/max from the gateway's limits and use a box. */
    const ha_msg_t *m =
        find(&l, "homeassistant/number/haus_power_bat_bic2mqtt/bic1_discharge_current/config");
    assert_non_null(m);
    cJSON *p = cJSON_Parse(m->payload);
    assert_float_equal(cJSON_GetObjectItem(p, "min")->valuedouble, 0.9, 1e-9);
    assert_float_equal(cJSON_GetObjectItem(p, "max")->valuedouble, 76.5, 1e-9);
    assert_string_equal(cJSON_GetObjectItem(p, "mode")->valuestring, "box");
    assert_string_equal(cJSON_GetObjectItem(p, "cmd_t")->valuestring,
                        "haus/power/bat/bic2mqtt/inv/1/dischargeLimA/set");
    assert_string_equal(cJSON_GetObjectItem(p, "avty_mode")->valuestring, "all");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p, "avty")), 2);
    cJSON_Delete(p);

    /* The switch drives state/set with the seed's 1/0. */
    m = find(&l, "homeassistant/switch/haus_power_bat_bic2mqtt/bic1_output/config");
    assert_non_null(m);
    p = cJSON_Parse(m->payload);
    assert_string_equal(cJSON_GetObjectItem(p, "cmd_t")->valuestring,
                        "haus/power/bat/bic2mqtt/inv/1/state/set");
    assert_string_equal(cJSON_GetObjectItem(p, "pl_on")->valuestring, "1");
    cJSON_Delete(p);

    /* Connectivity is gated by the bridge's LWT only, so it can show "disconnected". */
    m = find(&l, "homeassistant/binary_sensor/haus_power_bat_bic2mqtt/bic1_connectivity/config");
    assert_non_null(m);
    p = cJSON_Parse(m->payload);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p, "avty")), 1);
    cJSON_Delete(p);

    assert_non_null(find(&l, "homeassistant/sensor/haus_power_bat_bic2mqtt/bic1_soc/config"));
    assert_non_null(find(&l, "homeassistant/sensor/haus_power_bat_bic2mqtt/bic1_fan2/config"));

    /* Removal covers every entity the builder produced. */
    ha_list_t rm = {0};
    assert_int_equal(ha_device_remove_msgs(&CTX, 1, &rm), 0);
    for (size_t i = 0; i < l.count; i++) {
        const ha_msg_t *r = find(&rm, l.msgs[i].topic);
        if (!r)
            fail_msg("removal misses %s", l.msgs[i].topic);
        assert_string_equal(r->payload, "");
    }
    ha_list_clear(&rm);
    ha_list_clear(&l);
    assert_int_equal(l.count, 0);
    dev_view_destroy(&dv);
}

/* A factory-state unit holds values outside the configured limits (discharge voltage 19 V
 * with 24-28 V configured, currents 80 A and 64.3 A above 75 A and 60 A): the numbers
 * announce the model's register range over both modes, so every such state is valid in
 * Home Assistant. */
static void test_numbers_hold_every_device_value(void **state)
{
    dev_view_t *dv = dev_view_new(1);
    cJSON *j = cJSON_Parse("{\"dev\":1,\"online\":true,\"model\":\"BIC-2200-24\",\"variant\":24,"
                           "\"limits\":{\"vout_v\":[24.0,28.0],\"iout_a\":[0.9,75.0],"
                           "\"rev_vout_v\":[24.0,28.0],\"rev_iout_a\":[0.9,60.0]}}");
    char err[64];
    assert_int_equal(dev_view_on_info(dv, j, err, sizeof err), 0);
    cJSON_Delete(j);
    ha_list_t l = {0};
    assert_int_equal(ha_device_msgs(&CTX, dv, &l), 0);
    static const struct {
        const char *object;
        double min, max, held;
    } want[] = {
        {"charge_voltage", 19.0, 28.0, 25.2},
        {"discharge_voltage", 19.0, 28.0, 19.0},
        {"charge_current", 0.9, 99.0, 80.0},
        {"discharge_current", 0.9, 76.5, 64.3},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char topic[160];
        snprintf(topic, sizeof topic, "homeassistant/number/haus_power_bat_bic2mqtt/bic1_%s/config",
                 want[i].object);
        const ha_msg_t *m = find(&l, topic);
        assert_non_null(m);
        cJSON *p = cJSON_Parse(m->payload);
        double lo = cJSON_GetObjectItem(p, "min")->valuedouble;
        double hi = cJSON_GetObjectItem(p, "max")->valuedouble;
        assert_float_equal(lo, want[i].min, 1e-9);
        assert_float_equal(hi, want[i].max, 1e-9);
        assert_true(want[i].held >= lo && want[i].held <= hi);
        cJSON_Delete(p);
    }
    ha_list_clear(&l);
    dev_view_destroy(&dv);
}

static void test_conditional_entities(void **state)
{
    /* A device the gateway has not described yet: no numbers (no limits), no fans, no SOC. */
    dev_view_t *dv = dev_view_new(4);
    ha_list_t l = {0};
    assert_int_equal(ha_device_msgs(&CTX, dv, &l), 0);
    for (size_t i = 0; i < l.count; i++) {
        assert_null(strstr(l.msgs[i].topic, "/number/"));
        assert_null(strstr(l.msgs[i].topic, "_fan1"));
        assert_null(strstr(l.msgs[i].topic, "_soc/"));
        cJSON *p = cJSON_Parse(l.msgs[i].payload);
        const cJSON *d = cJSON_GetObjectItem(p, "dev");
        assert_string_equal(cJSON_GetObjectItem(d, "name")->valuestring, "BIC-2200 #4");
        assert_null(cJSON_GetObjectItem(d, "sn"));
        cJSON_Delete(p);
    }
    assert_non_null(find(&l, "homeassistant/switch/haus_power_bat_bic2mqtt/bic4_output/config"));
    ha_list_clear(&l);
    dev_view_destroy(&dv);
}

static void test_bridge_and_topics(void **state)
{
    ha_list_t l = {0};
    assert_int_equal(ha_bridge_msgs(&CTX, &l), 0);
    assert_int_equal(l.count, 3); /* running, gateway, CAN bus */
    int dev = 0;
    for (size_t i = 0; i < l.count; i++) {
        dev = 0;
        assert_true(ha_topic_dev(&CTX, l.msgs[i].topic, &dev));
        assert_int_equal(dev, -1);
    }
    assert_non_null(find(&l, "homeassistant/sensor/haus_power_bat_bic2mqtt/bridge_bus/config"));
    cJSON *p = cJSON_Parse(l.msgs[0].payload);
    assert_string_equal(cJSON_GetObjectItem(p, "pl_on")->valuestring, "running");
    const cJSON *ids = cJSON_GetObjectItem(cJSON_GetObjectItem(p, "dev"), "ids");
    assert_string_equal(cJSON_GetArrayItem(ids, 0)->valuestring, "haus_power_bat_bic2mqtt_bridge");
    cJSON_Delete(p);
    ha_list_clear(&l);

    const char *no[] = {"homeassistant/sensor/other_node/bic1_soc/config",
                        "homeassistant/sensor/haus_power_bat_bic2mqtt/bic1_soc/state",
                        "homeassistant/sensor/haus_power_bat_bic2mqtt/bic64_soc/config",
                        "homeassistant/sensor/haus_power_bat_bic2mqtt/bicx_soc/config",
                        "ha/sensor/haus_power_bat_bic2mqtt/bic1_soc/config",
                        "homeassistant/sensor/haus_power_bat_bic2mqtt/bic1_soc/config/x"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (ha_topic_dev(&CTX, no[i], &dev))
            fail_msg("%s accepted", no[i]);
    assert_true(
        ha_topic_dev(&CTX, "homeassistant/sensor/haus_power_bat_bic2mqtt/bic63_x/config", &dev));
    assert_int_equal(dev, 63);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_entities),
        cmocka_unit_test(test_numbers_hold_every_device_value),
        cmocka_unit_test(test_conditional_entities),
        cmocka_unit_test(test_bridge_and_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
