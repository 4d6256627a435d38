/*
 * Unit tests of ctl_d_mqtt: the controller's status payload, the control/set command and its
 * result, and the Home Assistant discovery of the controller's entities.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "ctl_d_mqtt.h"

static ctld_status_t s_status(void)
{
    ctld_status_t s = {
        .enabled = true,
        .state = CTLD_ST_RUNNING,
        .reason = "tracking",
        .target_w = 0,
        .meter_valid = true,
        .meter_w = -345.67,
        .meter_age_s = 1.234,
        .meter_stale = false,
        .meter_errors = 3,
        .sp_mode = "charge",
        .sp_current_a = 12.345,
        .sp_power_w = 330.4,
        .limit = "hourly charge limit",
        .soc_valid = true,
        .soc_pct = 57.26,
        .block_active = false,
        .block_why = "",
        .lease_held = true,
        .lease_client = "charge-ctl-0-42",
    };
    return s;
}

static cJSON *s_parse_status(const ctld_status_t *s)
{
    char *txt = ctld_status_json(s);
    assert_non_null(txt);
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    assert_non_null(j);
    return j;
}

static double s_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_status_fields(void **unused)
{
    ctld_status_t s = s_status();
    cJSON *j = s_parse_status(&s);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "enabled")));
    assert_string_equal(cJSON_GetObjectItem(j, "mode")->valuestring, "running");
    assert_string_equal(cJSON_GetObjectItem(j, "reason")->valuestring, "tracking");
    assert_float_equal(s_num(j, "meter_w"), -345.7, 1e-9);
    assert_float_equal(s_num(j, "meter_age_s"), 1.2, 1e-9);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "meter_stale")));
    assert_float_equal(s_num(j, "meter_errors"), 3, 0);
    const cJSON *sp = cJSON_GetObjectItem(j, "setpoint");
    assert_string_equal(cJSON_GetObjectItem(sp, "mode")->valuestring, "charge");
    assert_float_equal(s_num(sp, "current_a"), 12.35, 1e-9);
    assert_float_equal(s_num(sp, "power_w"), 330, 1e-9);
    const cJSON *lim = cJSON_GetObjectItem(j, "limit");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(lim, "active")));
    assert_string_equal(cJSON_GetObjectItem(lim, "why")->valuestring, "hourly charge limit");
    assert_float_equal(s_num(j, "soc_pct"), 57.3, 1e-9);
    const cJSON *blk = cJSON_GetObjectItem(j, "discharge_block");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(blk, "active")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(blk, "why")));
    const cJSON *ls = cJSON_GetObjectItem(j, "lease");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(ls, "held")));
    assert_string_equal(cJSON_GetObjectItem(ls, "client")->valuestring, "charge-ctl-0-42");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(ls, "note")));
    const cJSON *fo = cJSON_GetObjectItem(j, "follow");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(fo, "problem")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(fo, "safe")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(fo, "cause")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(fo, "message")));
    assert_float_equal(s_num(fo, "count"), 0, 0);
    cJSON_Delete(j);
}

/* A device that does not follow: the status carries the cause, the fault topic too. */
static void test_follow_problem(void **unused)
{
    ctld_status_t s = s_status();
    s.state = CTLD_ST_SAFE;
    s.reason = "device did not follow: output off: charge voltage setting ...";
    s.follow_problem = true;
    s.follow_safe = true;
    s.follow_cause = "charge_voltage";
    s.follow_message = "charge voltage setting (VOUT_SET 25.20 V) not above the battery";
    s.follow_count = 2;
    cJSON *j = s_parse_status(&s);
    const cJSON *fo = cJSON_GetObjectItem(j, "follow");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(fo, "problem")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(fo, "safe")));
    assert_string_equal(cJSON_GetObjectItem(fo, "cause")->valuestring, "charge_voltage");
    assert_non_null(strstr(cJSON_GetObjectItem(fo, "message")->valuestring, "25.20 V"));
    assert_float_equal(s_num(fo, "count"), 2, 0);
    cJSON_Delete(j);

    char *txt = ctld_fault_json(true, 2, "charge_voltage", "VOUT_SET 25.20 V");
    assert_non_null(txt);
    j = cJSON_Parse(txt);
    free(txt);
    const cJSON *f = cJSON_GetObjectItem(j, "follow");
    assert_float_equal(s_num(f, "active"), 1, 0);
    assert_float_equal(s_num(f, "cnt"), 2, 0);
    assert_string_equal(cJSON_GetObjectItem(f, "desc")->valuestring,
                        "device does not follow the setpoint");
    assert_string_equal(cJSON_GetObjectItem(f, "cause")->valuestring, "charge_voltage");
    assert_string_equal(cJSON_GetObjectItem(f, "message")->valuestring, "VOUT_SET 25.20 V");
    cJSON_Delete(j);
    /* Cleared: active 0, the count kept, no cause. */
    txt = ctld_fault_json(false, 2, "charge_voltage", "stale text");
    j = cJSON_Parse(txt);
    free(txt);
    f = cJSON_GetObjectItem(j, "follow");
    assert_float_equal(s_num(f, "active"), 0, 0);
    assert_float_equal(s_num(f, "cnt"), 2, 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(f, "cause")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(f, "message")));
    cJSON_Delete(j);
}

/* Values that are not known are null, never a made-up number. */
static void test_status_unknowns_are_null(void **unused)
{
    ctld_status_t s = s_status();
    s.meter_valid = false;
    s.meter_stale = true;
    s.soc_valid = false;
    s.limit = "none";
    s.block_active = true;
    s.block_why = "discharge block hours";
    s.lease_held = false;
    s.lease_note = "controlled by mqtt-bridge";
    s.state = CTLD_ST_NO_LEASE;
    cJSON *j = s_parse_status(&s);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "meter_w")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "meter_age_s")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "meter_stale")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "soc_pct")));
    const cJSON *lim = cJSON_GetObjectItem(j, "limit");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(lim, "active")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(lim, "why")));
    const cJSON *blk = cJSON_GetObjectItem(j, "discharge_block");
    assert_string_equal(cJSON_GetObjectItem(blk, "why")->valuestring, "discharge block hours");
    const cJSON *ls = cJSON_GetObjectItem(j, "lease");
    assert_string_equal(cJSON_GetObjectItem(ls, "note")->valuestring, "controlled by mqtt-bridge");
    assert_string_equal(cJSON_GetObjectItem(j, "mode")->valuestring, "no_lease");
    cJSON_Delete(j);
}

static void s_enable_ok(const char *payload, bool want)
{
    bool on = !want;
    const char *code = NULL;
    char err[200];
    assert_int_equal(ctld_parse_enable(payload, strlen(payload), &on, &code, err, sizeof err), 0);
    assert_int_equal(on, want);
}

static void s_enable_bad(const void *payload, size_t len, const char *want_code)
{
    bool on = true;
    const char *code = NULL;
    char err[200] = "";
    assert_int_equal(ctld_parse_enable(payload, len, &on, &code, err, sizeof err), -1);
    assert_non_null(code);
    assert_string_equal(code, want_code);
    assert_non_null(strstr(err, "allowed: 1 or 0"));
    assert_true(on); /* untouched */
}

static void test_enable_payloads(void **unused)
{
    s_enable_ok("1", true);
    s_enable_ok("0", false);
    s_enable_ok(" 1\n", true);
    s_enable_ok("ON", true);
    s_enable_ok("off", false);
    s_enable_ok("True", true);
    s_enable_ok("false", false);
    s_enable_bad("2", 1, "bad_request");
    s_enable_bad("10", 2, "bad_request");
    s_enable_bad("enable", 6, "bad_request");
    s_enable_bad("1 0", 3, "bad_request");
    s_enable_bad("", 0, "empty");
    s_enable_bad(NULL, 0, "empty");
    s_enable_bad("1\0", 2, "bad_request"); /* a NUL is not whitespace */
    char big[CTLD_MAX_CMD + 1];
    memset(big, '1', sizeof big);
    s_enable_bad(big, sizeof big, "too_large");
    /* Control bytes are not echoed into the message. */
    bool on;
    const char *code;
    char err[200];
    assert_int_equal(ctld_parse_enable("\x1b[2J", 4, &on, &code, err, sizeof err), -1);
    assert_null(strchr(err, '\x1b'));
}

/* Random bytes of random length: always an answer, never a crash; only the allowed words
 * are accepted. */
static void test_enable_random_payloads(void **unused)
{
    uint32_t x = 12345;
    for (int i = 0; i < 20000; i++) {
        unsigned char buf[CTLD_MAX_CMD + 8];
        x = x * 1103515245u + 12345u;
        size_t len = (x >> 16) % sizeof buf;
        for (size_t k = 0; k < len; k++) {
            x = x * 1103515245u + 12345u;
            /* mostly the characters of the allowed words, sometimes anything */
            buf[k] = (x >> 24) % 4 ? (unsigned char)"01onftrueals \n"[(x >> 16) % 14]
                                   : (unsigned char)(x >> 16);
        }
        bool on = false;
        const char *code = NULL;
        char err[200] = "";
        int rc = ctld_parse_enable(buf, len, &on, &code, err, sizeof err);
        if (rc == 0)
            continue;
        assert_int_equal(rc, -1);
        assert_non_null(code);
        assert_true(err[0] != '\0');
        for (const char *p = err; *p; p++)
            assert_true((unsigned char)*p >= 32 && (unsigned char)*p < 127);
    }
}

static void test_result(void **unused)
{
    char *t = ctld_result_json(true, "1", true, NULL, NULL);
    cJSON *j = cJSON_Parse(t);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    assert_string_equal(cJSON_GetObjectItem(j, "request")->valuestring, "1");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "enabled")));
    assert_null(cJSON_GetObjectItem(j, "error"));
    cJSON_Delete(j);
    free(t);
    t = ctld_result_json(false, NULL, true, "bad_request", "'2' is not a switch value");
    j = cJSON_Parse(t);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")));
    assert_null(cJSON_GetObjectItem(j, "request"));
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    assert_string_equal(cJSON_GetObjectItem(e, "code")->valuestring, "bad_request");
    assert_string_equal(cJSON_GetObjectItem(e, "message")->valuestring,
                        "'2' is not a switch value");
    cJSON_Delete(j);
    free(t);
}

static const cJSON *s_find(const ctld_list_t *l, const char *topic, cJSON **owned)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->msgs[i].topic, topic) == 0) {
            *owned = cJSON_Parse(l->msgs[i].payload);
            return *owned;
        }
    return NULL;
}

static void test_discovery(void **unused)
{
    ctld_ha_ctx_t ctx = {.prefix = "homeassistant",
                         .topic_main = "test/bic",
                         .node = "test_bic",
                         .avail_online = "running",
                         .avail_offline = "offline",
                         .sw_version = "0.1.0",
                         .dev = 3};
    ctld_list_t l = {0};
    assert_int_equal(ctld_disc_msgs(&ctx, &l), 0);
    assert_int_equal(l.count, 8);
    /* unique ids and topics, all under the bridge's node, none the bridge would claim */
    for (size_t i = 0; i < l.count; i++) {
        assert_non_null(strstr(l.msgs[i].topic, "/test_bic/ctl3_"));
        for (size_t k = i + 1; k < l.count; k++)
            assert_string_not_equal(l.msgs[i].topic, l.msgs[k].topic);
        cJSON *e = cJSON_Parse(l.msgs[i].payload);
        assert_non_null(e);
        const cJSON *dev = cJSON_GetObjectItem(e, "dev");
        assert_null(cJSON_GetObjectItem(dev, "via_device")); /* order of configs irrelevant */
        assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(dev, "ids"), 0)->valuestring,
                            "test_bic_ctl_3");
        assert_string_equal(cJSON_GetObjectItem(e, "stat_t")->valuestring,
                            "test/bic/inv/3/control");
        const cJSON *av = cJSON_GetArrayItem(cJSON_GetObjectItem(e, "avty"), 0);
        assert_string_equal(cJSON_GetObjectItem(av, "topic")->valuestring, "test/bic/ctl/3/state");
        assert_string_equal(cJSON_GetObjectItem(av, "payload_available")->valuestring, "running");
        assert_non_null(cJSON_GetObjectItem(e, "o"));
        cJSON_Delete(e);
    }
    cJSON *e = NULL;
    const cJSON *sw = s_find(&l, "homeassistant/switch/test_bic/ctl3_enable/config", &e);
    assert_non_null(sw);
    assert_string_equal(cJSON_GetObjectItem(sw, "cmd_t")->valuestring,
                        "test/bic/inv/3/control/set");
    assert_string_equal(cJSON_GetObjectItem(sw, "pl_on")->valuestring, "1");
    assert_string_equal(cJSON_GetObjectItem(sw, "pl_off")->valuestring, "0");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(sw, "ret")));
    cJSON_Delete(e);
    const cJSON *soc = s_find(&l, "homeassistant/sensor/test_bic/ctl3_soc/config", &e);
    assert_non_null(soc);
    assert_string_equal(cJSON_GetObjectItem(soc, "dev_cla")->valuestring, "battery");
    assert_string_equal(cJSON_GetObjectItem(soc, "unit_of_meas")->valuestring, "%");
    cJSON_Delete(e);
    const cJSON *st = s_find(&l, "homeassistant/sensor/test_bic/ctl3_state/config", &e);
    assert_non_null(st);
    assert_string_equal(cJSON_GetObjectItem(st, "dev_cla")->valuestring, "enum");
    assert_null(cJSON_GetObjectItem(st, "stat_cla"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(st, "ops")), CTLD_ST_COUNT);
    cJSON_Delete(e);
    const cJSON *stale =
        s_find(&l, "homeassistant/binary_sensor/test_bic/ctl3_meter_stale/config", &e);
    assert_non_null(stale);
    assert_string_equal(cJSON_GetObjectItem(stale, "dev_cla")->valuestring, "problem");
    cJSON_Delete(e);
    /* The device does not follow: a problem entity with the cause as attributes. */
    const cJSON *nf =
        s_find(&l, "homeassistant/binary_sensor/test_bic/ctl3_not_following/config", &e);
    assert_non_null(nf);
    assert_string_equal(cJSON_GetObjectItem(nf, "dev_cla")->valuestring, "problem");
    assert_string_equal(cJSON_GetObjectItem(nf, "val_tpl")->valuestring,
                        "{{ 'ON' if value_json.follow.problem else 'OFF' }}");
    assert_string_equal(cJSON_GetObjectItem(nf, "json_attr_t")->valuestring,
                        "test/bic/inv/3/control");
    assert_string_equal(cJSON_GetObjectItem(nf, "json_attr_tpl")->valuestring,
                        "{{ value_json.follow | tojson }}");
    cJSON_Delete(e);
    ctld_list_clear(&l);
    assert_int_equal(l.count, 0);
    ctld_list_clear(&l); /* twice is fine */
}

/* A group: its topic's JSON and the entities reading it; a single device has none. */
static void test_group(void **unused)
{
    ctld_group_view_t v = {.setpoint_w = 812.4, .n = 2};
    v.unit[0] = (ctld_group_unit_view_t){.dev = 0,
                                         .online = true,
                                         .lease_held = true,
                                         .state = "run",
                                         .mode = "charge",
                                         .current_a = 15.004,
                                         .power_w = 412.2,
                                         .energy_wh = 3.21};
    v.unit[1] = (ctld_group_unit_view_t){
        .dev = 4, .online = false, .state = "offline", .mode = "idle", .follow = "charge_voltage"};
    char *js = ctld_group_json(&v, true);
    assert_non_null(js);
    assert_string_equal(js, "{\"setpoint_w\":812,\"units\":[{\"dev\":0,\"online\":true,"
                            "\"lease\":true,\"state\":\"run\",\"mode\":\"charge\","
                            "\"current_a\":15,\"power_w\":412,\"energy_wh\":3.2,\"follow\":null},"
                            "{\"dev\":4,\"online\":false,\"lease\":false,\"state\":\"offline\","
                            "\"mode\":\"idle\",\"current_a\":0,\"power_w\":0,"
                            "\"energy_wh\":0,\"follow\":\"charge_voltage\"}],\"online\":1}");
    free(js);
    js = ctld_group_json(&v, false);
    assert_null(strstr(js, "energy_wh"));
    free(js);

    int devs[] = {0, 4};
    ctld_ha_ctx_t ctx = {.prefix = "homeassistant",
                         .topic_main = "test/bic",
                         .node = "test_bic",
                         .avail_online = "running",
                         .avail_offline = "offline",
                         .sw_version = "0.1.0",
                         .dev = 0,
                         .group = devs,
                         .n_group = 1};
    ctld_list_t l = {0};
    assert_int_equal(ctld_disc_msgs(&ctx, &l), 0);
    assert_int_equal(l.count, 8); /* one device: as without a group */
    ctld_list_clear(&l);
    ctx.n_group = 2;
    assert_int_equal(ctld_disc_msgs(&ctx, &l), 0);
    assert_int_equal(l.count, 11);
    cJSON *e = NULL;
    const cJSON *sp = s_find(&l, "homeassistant/sensor/test_bic/ctl0_group_setpoint/config", &e);
    assert_non_null(sp);
    assert_string_equal(cJSON_GetObjectItem(sp, "stat_t")->valuestring, "test/bic/ctl/0/group");
    assert_string_equal(cJSON_GetObjectItem(sp, "val_tpl")->valuestring,
                        "{{ value_json.setpoint_w }}");
    assert_string_equal(cJSON_GetObjectItem(sp, "unit_of_meas")->valuestring, "W");
    cJSON_Delete(e);
    const cJSON *u = s_find(&l, "homeassistant/sensor/test_bic/ctl0_unit4_share/config", &e);
    assert_non_null(u);
    assert_string_equal(cJSON_GetObjectItem(u, "name")->valuestring, "Unit 4 share");
    assert_string_equal(cJSON_GetObjectItem(u, "val_tpl")->valuestring,
                        "{{ value_json.units[1].power_w }}");
    assert_string_equal(cJSON_GetObjectItem(u, "json_attr_t")->valuestring, "test/bic/ctl/0/group");
    assert_string_equal(cJSON_GetObjectItem(u, "json_attr_tpl")->valuestring,
                        "{{ value_json.units[1] | tojson }}");
    cJSON_Delete(e);
    ctld_list_clear(&l);

    /* over two gateways, both at address 0 (0,0@1): the unit on gateway 1 says so in the
     * JSON and has an entity of its own */
    v.unit[1].dev = 0;
    v.unit[1].gw = 1;
    js = ctld_group_json(&v, false);
    assert_non_null(strstr(js, "{\"dev\":0,\"online\":true,"));
    assert_non_null(strstr(js, "{\"dev\":0,\"gw\":1,\"online\":false,"));
    free(js);
    int same[] = {0, 0}, gws[] = {0, 1};
    ctx.group = same;
    ctx.group_gw = gws;
    assert_int_equal(ctld_disc_msgs(&ctx, &l), 0);
    assert_int_equal(l.count, 11);
    assert_non_null(s_find(&l, "homeassistant/sensor/test_bic/ctl0_unit0_share/config", &e));
    cJSON_Delete(e);
    u = s_find(&l, "homeassistant/sensor/test_bic/ctl0_unit0_g1_share/config", &e);
    assert_non_null(u);
    assert_string_equal(cJSON_GetObjectItem(u, "name")->valuestring, "Unit 0@1 share");
    assert_string_equal(cJSON_GetObjectItem(u, "val_tpl")->valuestring,
                        "{{ value_json.units[1].power_w }}");
    cJSON_Delete(e);
    ctld_list_clear(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_fields),   cmocka_unit_test(test_status_unknowns_are_null),
        cmocka_unit_test(test_enable_payloads), cmocka_unit_test(test_enable_random_payloads),
        cmocka_unit_test(test_result),          cmocka_unit_test(test_discovery),
        cmocka_unit_test(test_follow_problem),  cmocka_unit_test(test_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
