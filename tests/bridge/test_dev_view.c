/*
 * Unit tests of dev_view: seed payloads built from gateway telemetry and info, fault edge
 * counting, monotonic energy counters, and refusal of telemetry that is not this device's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dev_view.h"

/* The telemetry example of docs/ipc-protocol.md. */
static const char *TEL =
    "{\"v\":1,\"dev\":0,\"ts_ms\":1732960000123,\"online\":true,\"model\":\"BIC-2200-24\","
    "\"dc_v\":26.41,\"dc_a\":-12.30,\"dc_w\":-324.8,\"ac_v\":231.0,\"temp_c\":31.2,"
    "\"fans\":[1180,1320],\"operation\":1,\"direction\":\"discharge\",\"mode\":\"battery\","
    "\"setpoints\":{\"vout_v\":27.6,\"iout_a\":0.9,\"rev_vout_v\":24.0,\"rev_iout_a\":12.3},"
    "\"fault\":{\"raw\":0,\"fan_fail\":false,\"otp\":false,\"ovp\":false,\"olp\":false,"
    "\"short\":false,\"ac_fail\":false,\"op_off\":false,\"hi_temp\":false,\"hv_ovp\":false},"
    "\"status\":{\"raw\":34,\"eeper\":false},\"eeprom\":{\"writes_total\":17,\"policy\":"
    "\"eep_off\"},\"lease\":{\"holder\":\"charge-ctl\",\"expires_in_s\":8.5},"
    "\"age_ms\":{\"fast\":40,\"slow\":2100}}";

static const char *INFO =
    "{\"dev\":0,\"online\":true,\"family\":\"BIC\",\"model\":\"BIC-2200-24\",\"variant\":24,"
    "\"firmware\":{\"raw\":\"0E0DFFFFFFFF\",\"mcu\":[\"R01.4\",\"R01.3\"]},"
    "\"serial\":\"180101000001\",\"date\":\"180101\",\"mode\":\"battery\",\"mode_pending\":null,"
    "\"can_ctrl\":true,\"caps\":{\"fans\":true,\"eep_off\":true},"
    "\"limits\":{\"vout_v\":[19.0,28.0],\"iout_a\":[0.9,90.0],\"rev_vout_v\":[19.0,28.0],"
    "\"rev_iout_a\":[0.9,76.5]},\"eeprom\":{\"policy\":\"eep_off\",\"writes_total\":17},"
    "\"lease\":null}";

static void feed(dev_view_t *dv, const char *json)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    char err[128];
    assert_int_equal(dev_view_on_telemetry(dv, j, err, sizeof err), 0);
    cJSON_Delete(j);
}

/* Telemetry with just power, time and fault bits. */
static void feed_power(dev_view_t *dv, int64_t ts, double w, bool online)
{
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"v\":1,\"dev\":0,\"ts_ms\":%lld,\"online\":%s,\"dc_w\":%g,\"dc_v\":26,"
             "\"dc_a\":%g}",
             (long long)ts, online ? "true" : "false", w, w / 26);
    feed(dv, buf);
}

static cJSON *parsed(char *s)
{
    assert_non_null(s);
    cJSON *j = cJSON_Parse(s);
    free(s);
    assert_non_null(j);
    return j;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(it));
    return it->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(it));
    return it->valuestring;
}

static void test_nothing_before_telemetry(void **state)
{
    dev_view_t *dv = dev_view_new(0);
    assert_null(dev_view_state_json(dv));
    assert_null(dev_view_charge_json(dv));
    assert_null(dev_view_fault_json(dv));
    assert_null(dev_view_info_json(dv));
    assert_string_equal(dev_view_availability(dv), "offline");
    dev_view_destroy(&dv);
    assert_null(dv);
    dev_view_destroy(&dv); /* NULL is fine */
}

static void test_state_seed_keys(void **state)
{
    dev_view_t *dv = dev_view_new(0);
    feed(dv, TEL);
    cJSON *s = parsed(dev_view_state_json(dv));
    assert_string_equal(str(s, "onlMode"), "running");
    assert_int_equal(num(s, "opMode"), 1);
    assert_int_equal(num(s, "tempC"), 31);
    const cJSON *fan = cJSON_GetObjectItem(s, "fan");
    assert_int_equal(cJSON_GetArraySize(fan), 2);
    assert_int_equal(cJSON_GetArrayItem(fan, 0)->valueint, 1200); /* rounded to 100 RPM */
    assert_int_equal(cJSON_GetArrayItem(fan, 1)->valueint, 1300);
    assert_int_equal(num(s, "acGridV"), 231);
    assert_float_equal(num(s, "dcBatV"), 26.41, 1e-9);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(s, "capBatPc"))); /* no SOC yet */
    assert_string_equal(str(s, "direction"), "discharge");
    assert_float_equal(num(s, "chargeV"), 27.6, 1e-9);
    assert_float_equal(num(s, "dischargeLimA"), 12.3, 1e-9);
    assert_string_equal(str(s, "leaseHolder"), "charge-ctl");
    cJSON_Delete(s);

    assert_int_equal(dev_view_set_soc(dv, 57.4), 0);
    assert_int_equal(dev_view_set_soc(dv, 101), -1);
    assert_int_equal(dev_view_set_soc(dv, -0.1), -1);
    s = parsed(dev_view_state_json(dv));
    assert_int_equal(num(s, "capBatPc"), 57);
    cJSON_Delete(s);
    dev_view_expire_soc(dv); /* stale: unknown, but the SOC entity stays */
    s = parsed(dev_view_state_json(dv));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(s, "capBatPc")));
    cJSON_Delete(s);
    assert_true(dev_view_has_soc(dv));
    assert_int_equal(dev_view_set_soc(dv, 58), 0);
    assert_string_equal(dev_view_availability(dv), "online");
    assert_int_equal(dev_view_operation(dv), 1);
    dev_view_destroy(&dv);
}

static void test_charge_seed_keys(void **state)
{
    dev_view_t *dv = dev_view_new(0);
    feed(dv, TEL);
    cJSON *c = parsed(dev_view_charge_json(dv));
    assert_float_equal(num(c, "chargeA"), -12.3, 1e-9);
    assert_int_equal(num(c, "chargeP"), -325);
    assert_float_equal(num(c, "chargeSetA"), -12.3, 1e-9); /* -REVERSE_IOUT_SET when discharging */
    assert_float_equal(num(c, "chargedKWh"), 0, 1e-9);
    assert_float_equal(num(c, "dischargedKWh"), 0, 1e-9);
    cJSON_Delete(c);
    dev_view_destroy(&dv);
}

static void test_energy_monotonic_counters(void **state)
{
    dev_view_t *dv = dev_view_new(0);
    int64_t t = 1000000;
    /* One hour of 1000 W charging in 1 s samples: 1 kWh in. */
    for (int i = 0; i <= 3600; i++)
        feed_power(dv, t + i * 1000LL, 1000, true);
    t += 3600 * 1000LL;
    double in, out;
    dev_view_energy(dv, &in, &out);
    assert_float_equal(in, 1000, 1e-6);
    assert_float_equal(out, 0, 1e-9);
    /* Half an hour of 500 W discharging: 0.25 kWh out, the charged counter does not move. */
    for (int i = 1; i <= 1800; i++)
        feed_power(dv, t + i * 1000LL, -500, true);
    t += 1800 * 1000LL;
    dev_view_energy(dv, &in, &out);
    assert_float_equal(in, 1000 + 1000.0 / 3600, 1e-6); /* the first interval still at +1000 W */
    assert_float_equal(out, 250 - 500.0 / 3600, 1e-6);
    double in0 = in, out0 = out;
    /* The same sample again adds nothing. */
    feed_power(dv, t, -500, true);
    /* A gap longer than the limit is skipped, not guessed. */
    feed_power(dv, t + DEV_VIEW_ENERGY_MAX_GAP_MS + 1000, -500, true);
    dev_view_energy(dv, &in, &out);
    assert_float_equal(in, in0, 1e-9);
    assert_float_equal(out, out0, 1e-9);
    /* Offline samples are not integrated. */
    t += DEV_VIEW_ENERGY_MAX_GAP_MS + 1000;
    feed_power(dv, t + 1000, -500, false);
    feed_power(dv, t + 2000, -500, false);
    dev_view_energy(dv, &in, &out);
    assert_float_equal(out, out0, 1e-9);

    cJSON *c = parsed(dev_view_charge_json(dv));
    assert_float_equal(num(c, "chargedTotalKWh"), 1.0, 0.0005);
    assert_true(num(c, "dischargedTotalKWh") > 0); /* monotonic, positive */
    /* The seed's keys: the last 24 hours, one decimal, discharged negative. */
    assert_float_equal(num(c, "chargedKWh"), 1.0, 1e-9);
    assert_float_equal(num(c, "dischargedKWh"), -0.2, 1e-9);
    cJSON_Delete(c);
    /* A day later the 24-hour sums have rolled out; the counters stay. */
    t += 24 * 3600 * 1000LL + 120000;
    feed_power(dv, t, 0, true);
    feed_power(dv, t + 1000, 0, true);
    c = parsed(dev_view_charge_json(dv));
    assert_float_equal(num(c, "chargedKWh"), 0, 1e-9);
    assert_float_equal(num(c, "dischargedKWh"), 0, 1e-9);
    assert_float_equal(num(c, "chargedTotalKWh"), 1.0, 0.0005);
    cJSON_Delete(c);

    assert_int_equal(dev_view_set_energy(dv, 5, 7), 0);
    assert_int_equal(dev_view_set_energy(dv, -1, 7), -1);
    dev_view_energy(dv, &in, &out);
    assert_float_equal(in, 5, 1e-9);
    assert_float_equal(out, 7, 1e-9);
    dev_view_destroy(&dv);
}

static void test_soc_from_table(void **state)
{
    static const double pct[] = {0, 10, 50, 100};
    static const double volts[] = {20.0, 25.0, 26.2, 27.0};
    dev_view_t *dv = dev_view_new(0);
    dev_view_set_battery(dv, pct, volts, 4, 0.010);
    assert_true(dev_view_has_soc(dv));
    /* At rest: 25.6 V is halfway between 10 % and 50 %. */
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"dc_v\":25.6,\"dc_a\":0}");
    cJSON *s = parsed(dev_view_state_json(dv));
    assert_int_equal(num(s, "capBatPc"), 30);
    cJSON_Delete(s);
    /* Charging at 20 A raises the voltage by 0.2 V over the 10 mOhm: the same SOC. */
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"dc_v\":25.8,\"dc_a\":20}");
    s = parsed(dev_view_state_json(dv));
    assert_int_equal(num(s, "capBatPc"), 30);
    cJSON_Delete(s);
    /* At and above the top entry 100 % (the seed said 0 %), below the first 0 %. */
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"dc_v\":27.5,\"dc_a\":0}");
    s = parsed(dev_view_state_json(dv));
    assert_int_equal(num(s, "capBatPc"), 100);
    cJSON_Delete(s);
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"dc_v\":19,\"dc_a\":0}");
    s = parsed(dev_view_state_json(dv));
    assert_int_equal(num(s, "capBatPc"), 0);
    cJSON_Delete(s);
    /* A controller's fresh SOC wins; when it goes stale the table's is shown again. */
    assert_int_equal(dev_view_set_soc(dv, 42), 0);
    s = parsed(dev_view_state_json(dv));
    assert_int_equal(num(s, "capBatPc"), 42);
    cJSON_Delete(s);
    dev_view_expire_soc(dv);
    s = parsed(dev_view_state_json(dv));
    assert_int_equal(num(s, "capBatPc"), 0);
    cJSON_Delete(s);
    dev_view_destroy(&dv);
}

static void test_surplus(void **state)
{
    dev_view_t *dv = dev_view_new(0);
    int64_t t = 1000000;
    feed_power(dv, t, 300, true);
    cJSON *c = parsed(dev_view_charge_json(dv));
    assert_int_equal(num(c, "surplusP"), 0); /* unknown: 0 as the seed without a controller */
    cJSON_Delete(c);
    /* Half an hour with 600 W the battery cannot take: 0.3 kWh. */
    dev_view_set_surplus(dv, 600);
    for (int i = 1; i <= 1800; i++)
        feed_power(dv, t + i * 1000LL, 300, true);
    c = parsed(dev_view_charge_json(dv));
    assert_int_equal(num(c, "surplusP"), 600);
    assert_float_equal(num(c, "surplusKWh"), 0.3, 1e-9);
    cJSON_Delete(c);
    dev_view_destroy(&dv);
}

static const cJSON *fault_entry(const cJSON *f, const char *key)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f, key);
    assert_true(cJSON_IsObject(e));
    return e;
}

static void test_fault_edges_counted(void **state)
{
    dev_view_t *dv = dev_view_new(0);
    feed(dv, TEL);
    const char *on = "{\"v\":1,\"dev\":0,\"online\":true,\"fault\":{\"otp\":true},"
                     "\"status\":{\"eeper\":true}}";
    const char *off = "{\"v\":1,\"dev\":0,\"online\":true,\"fault\":{\"otp\":false},"
                      "\"status\":{\"eeper\":false}}";
    feed(dv, on);
    feed(dv, on); /* still on: not a new edge */
    feed(dv, off);
    feed(dv, on);
    cJSON *f = parsed(dev_view_fault_json(dv));
    for (int i = 0; i < DEV_VIEW_FAULTS; i++)
        fault_entry(f, dev_view_fault_keys[i]);
    assert_int_equal(num(fault_entry(f, "otp"), "active"), 1);
    assert_int_equal(num(fault_entry(f, "otp"), "cnt"), 2);
    assert_int_equal(num(fault_entry(f, "eeprom"), "cnt"), 2);
    assert_int_equal(num(fault_entry(f, "ovp"), "active"), 0);
    assert_int_equal(num(fault_entry(f, "can"), "active"), 0);
    /* The seed's texts. */
    assert_string_equal(str(fault_entry(f, "fan"), "desc"), "fanspeed abnormal");
    assert_string_equal(str(fault_entry(f, "otpHi"), "desc"), "internal hi temperature protection");
    assert_string_equal(str(fault_entry(f, "acRange"), "desc"), "ac grid range");
    assert_string_equal(str(fault_entry(f, "can"), "desc"), "can-com error / read-tmo");
    cJSON_Delete(f);

    /* Device offline: the `can` fault goes active, availability offline, onlMode offline. */
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":false}");
    f = parsed(dev_view_fault_json(dv));
    assert_int_equal(num(fault_entry(f, "can"), "active"), 1);
    assert_int_equal(num(fault_entry(f, "can"), "cnt"), 1);
    cJSON_Delete(f);
    assert_string_equal(dev_view_availability(dv), "offline");
    assert_int_equal(dev_view_operation(dv), -1);
    cJSON *s = parsed(dev_view_state_json(dv));
    assert_string_equal(str(s, "onlMode"), "offline");
    assert_float_equal(num(s, "dcBatV"), 26.41, 1e-9); /* last known value kept */
    cJSON_Delete(s);

    /* Back online, then the gateway disappears. */
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true}");
    assert_string_equal(dev_view_availability(dv), "online");
    dev_view_set_gateway_reachable(dv, false);
    assert_string_equal(dev_view_availability(dv), "offline");
    f = parsed(dev_view_fault_json(dv));
    assert_int_equal(num(fault_entry(f, "can"), "cnt"), 2);
    cJSON_Delete(f);
    dev_view_destroy(&dv);
}

static void test_limits_not_applied_is_a_fault(void **state)
{
    (void)state;
    dev_view_t *dv = dev_view_new(0);
    feed(dv, TEL);
    cJSON *f = parsed(dev_view_fault_json(dv));
    assert_int_equal(num(fault_entry(f, "limits"), "active"), 0);
    cJSON_Delete(f);
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"device_limits\":{\"state\":\"failed\","
             "\"error\":\"VOUT_SET 27.6 not written: daily EEPROM budget spent\"}}");
    f = parsed(dev_view_fault_json(dv));
    assert_int_equal(num(fault_entry(f, "limits"), "active"), 1);
    assert_int_equal(num(fault_entry(f, "limits"), "cnt"), 1);
    assert_non_null(strstr(str(fault_entry(f, "limits"), "desc"), "budget spent"));
    cJSON_Delete(f);
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"device_limits\":{\"state\":\"ok\"}}");
    f = parsed(dev_view_fault_json(dv));
    assert_int_equal(num(fault_entry(f, "limits"), "active"), 0);
    assert_int_equal(num(fault_entry(f, "limits"), "cnt"), 1);
    assert_null(strstr(str(fault_entry(f, "limits"), "desc"), "budget"));
    cJSON_Delete(f);
    dev_view_destroy(&dv);
}

/* The bridge builds a payload only when its key (dev_view_key) differs from the last one's:
 * over telemetry that repeats, moves below and above the shown precision, toggles a fault,
 * goes offline and changes the limits' reason, and info that changes, an equal key always
 * means an equal payload, and every change of a payload changes its key. */
static void test_key_follows_the_payload(void **state)
{
    (void)state;
    dev_view_t *dv = dev_view_new(0);
    const char *seq[] = {
        TEL,
        TEL,
        "{\"v\":1,\"dev\":0,\"ts_ms\":1000,\"online\":true,\"dc_v\":26.001,\"dc_a\":1.01}",
        "{\"v\":1,\"dev\":0,\"ts_ms\":2000,\"online\":true,\"dc_v\":26.002,\"dc_a\":1.02}",
        "{\"v\":1,\"dev\":0,\"ts_ms\":3000,\"online\":true,\"dc_v\":26.02,\"dc_a\":1.2}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"fans\":[1210,1190]}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"fans\":[1240,1160]}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"fault\":{\"otp\":true}}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"fault\":{\"otp\":true}}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"fault\":{\"otp\":false}}",
        "{\"v\":1,\"dev\":0,\"online\":false}",
        "{\"v\":1,\"dev\":0,\"online\":true}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"device_limits\":{\"state\":\"failed\","
        "\"error\":\"a\"}}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"device_limits\":{\"state\":\"failed\","
        "\"error\":\"b\"}}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"device_limits\":{\"state\":\"failed\","
        "\"error\":\"b\"}}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"device_limits\":{\"state\":\"ok\"}}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"lease\":{\"holder\":\"ctl\"}}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"setpoints\":{\"iout_a\":10.004}}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"setpoints\":{\"iout_a\":10.001}}",
        "{\"v\":1,\"dev\":0,\"online\":true,\"setpoints\":{\"iout_a\":10.5}}",
    };
    int n = (int)(sizeof seq / sizeof seq[0]);
    char *prev[DEV_VIEW_P_COUNT] = {0};
    unsigned char prev_key[DEV_VIEW_P_COUNT][2048], key[2048];
    size_t prev_len[DEV_VIEW_P_COUNT] = {0};
    int unchanged = 0, changed = 0;
    for (int i = 0; i < n; i++) {
        feed(dv, seq[i]);
        if (i == n / 2) {
            cJSON *info = cJSON_Parse("{\"dev\":0,\"model\":\"BIC-2200-24-CAN\"}");
            char err[128];
            assert_int_equal(dev_view_on_info(dv, info, err, sizeof err), 0);
            cJSON_Delete(info);
        }
        for (int w = 0; w < DEV_VIEW_P_COUNT; w++) {
            char *p = dev_view_json(dv, (dev_view_payload_t)w);
            size_t len = dev_view_key(dv, (dev_view_payload_t)w, key, sizeof key);
            assert_true(len <= sizeof key);
            assert_int_equal(len == 0, p == NULL);
            if (prev[w] && p) {
                bool same_key = len == prev_len[w] && memcmp(key, prev_key[w], len) == 0;
                bool same = strcmp(prev[w], p) == 0;
                assert_int_equal(same_key, same);
                if (same)
                    unchanged++;
                else
                    changed++;
            }
            free(prev[w]);
            prev[w] = p;
            memcpy(prev_key[w], key, len);
            prev_len[w] = len;
        }
    }
    /* both kinds happened: the sequence tests something */
    assert_true(unchanged > 10);
    assert_true(changed > 10);
    for (int w = 0; w < DEV_VIEW_P_COUNT; w++)
        free(prev[w]);
    dev_view_destroy(&dv);
}

static void test_bad_telemetry_refused(void **state)
{
    dev_view_t *dv = dev_view_new(3);
    const char *bad[] = {
        "[1,2]",
        "{\"v\":1,\"dev\":0,\"online\":true}",     /* another device */
        "{\"v\":2,\"dev\":3,\"online\":true}",     /* another version */
        "{\"dev\":3,\"online\":true}",             /* no version */
        "{\"v\":1,\"dev\":3}",                     /* no online */
        "{\"v\":1,\"dev\":\"3\",\"online\":true}", /* dev not a number */
    };
    char err[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *j = cJSON_Parse(bad[i]);
        assert_non_null(j);
        err[0] = '\0';
        assert_int_equal(dev_view_on_telemetry(dv, j, err, sizeof err), -1);
        assert_true(strlen(err) > 0);
        cJSON_Delete(j);
    }
    assert_false(dev_view_has_telemetry(dv));
    assert_null(dev_view_state_json(dv));
    /* Wrongly typed fields in otherwise good telemetry are ignored, not trusted. */
    cJSON *j = cJSON_Parse("{\"v\":1,\"dev\":3,\"online\":true,\"dc_v\":\"26\",\"fans\":7,"
                           "\"operation\":5,\"fault\":{\"otp\":1}}");
    assert_int_equal(dev_view_on_telemetry(dv, j, err, sizeof err), 0);
    cJSON_Delete(j);
    cJSON *s = parsed(dev_view_state_json(dv));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(s, "dcBatV")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(s, "opMode")));
    assert_string_equal(str(s, "onlMode"), "init");
    cJSON_Delete(s);
    dev_view_destroy(&dv);
}

static void test_info_seed_keys(void **state)
{
    dev_view_t *dv = dev_view_new(0);
    cJSON *j = cJSON_Parse(INFO);
    char err[128];
    assert_int_equal(dev_view_on_info(dv, j, err, sizeof err), 0);
    cJSON_Delete(j);
    cJSON *regs = cJSON_Parse("{\"SYSTEM_CONFIG\":{\"value\":1025,\"raw\":1025},"
                              "\"BIDIRECTIONAL_CONFIG\":{\"value\":1,\"raw\":1}}");
    assert_int_equal(dev_view_on_regs(dv, regs), 0);
    cJSON_Delete(regs);
    cJSON *i = parsed(dev_view_info_json(dv));
    assert_int_equal(num(i, "id"), 0);
    assert_string_equal(str(i, "modelName"), "BIC-2200-24");
    assert_string_equal(str(i, "firmRev"), "0xd0e"); /* as the seed prints 0E 0D */
    assert_string_equal(str(i, "sysCfg"), "0x401");
    assert_string_equal(str(i, "sysCfgBDir"), "0x1");
    assert_string_equal(str(i, "manDate"), "180101");
    assert_int_equal(num(i, "cntWrite"), 17);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(i, "ChargeCtrlName")));
    assert_string_equal(str(i, "serial"), "180101000001");
    assert_string_equal(str(i, "firmware"), "R01.4/R01.3");
    cJSON_Delete(i);
    double lo, hi;
    assert_true(dev_view_limit(dv, "rev_iout_a", &lo, &hi));
    assert_float_equal(lo, 0.9, 1e-9);
    assert_float_equal(hi, 76.5, 1e-9);
    assert_false(dev_view_limit(dv, "nonsense", &lo, &hi));
    assert_true(dev_view_has_fans(dv));

    /* With the fan capability both fans are always listed; one not read yet is null, and a
     * shorter list later does not drop a fan already read. */
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"fans\":[1500]}");
    cJSON *st = parsed(dev_view_state_json(dv));
    const cJSON *fan = cJSON_GetObjectItem(st, "fan");
    assert_int_equal(cJSON_GetArraySize(fan), 2);
    assert_int_equal(cJSON_GetArrayItem(fan, 0)->valueint, 1500);
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(fan, 1)));
    cJSON_Delete(st);
    assert_false(dev_view_state_complete(dv)); /* the bridge holds the first state back */
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"fans\":[1500,1420]}");
    assert_false(dev_view_state_complete(dv)); /* no AC voltage, temperature, ... yet */
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"operation\":1,\"dc_v\":26,"
             "\"ac_v\":230,\"temp_c\":30}");
    assert_true(dev_view_state_complete(dv));
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"fans\":[1600]}");
    st = parsed(dev_view_state_json(dv));
    fan = cJSON_GetObjectItem(st, "fan");
    assert_int_equal(cJSON_GetArrayItem(fan, 0)->valueint, 1600);
    assert_int_equal(cJSON_GetArrayItem(fan, 1)->valueint, 1400);
    cJSON_Delete(st);

    /* EEPROM writes move with telemetry. */
    feed(dv, TEL);
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"eeprom\":{\"writes_total\":18}}");
    i = parsed(dev_view_info_json(dv));
    assert_int_equal(num(i, "cntWrite"), 18);
    /* ChargeCtrlName names the configured controller as the seed does, whoever holds the
     * lease (leaseHolder, an addition). */
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(i, "ChargeCtrlName")));
    assert_string_equal(str(i, "leaseHolder"), "charge-ctl");
    cJSON_Delete(i);
    dev_view_set_ctrl_name(dv, "ChargePID");
    i = parsed(dev_view_info_json(dv));
    assert_string_equal(str(i, "ChargeCtrlName"), "ChargePID");
    cJSON_Delete(i);

    /* A count no integer holds (1.7e26, once a crash of the conversion) or a negative one
     * is ignored: the last sane count stays. */
    j = cJSON_Parse("{\"dev\":0,\"eeprom\":{\"writes_total\":1.7e26}}");
    assert_int_equal(dev_view_on_info(dv, j, err, sizeof err), 0);
    cJSON_Delete(j);
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"eeprom\":{\"writes_total\":-1e300}}");
    feed(dv, "{\"v\":1,\"dev\":0,\"online\":true,\"eeprom\":{\"writes_total\":1.7e26}}");
    i = parsed(dev_view_info_json(dv));
    assert_int_equal(num(i, "cntWrite"), 18);
    cJSON_Delete(i);

    j = cJSON_Parse("{\"dev\":5,\"model\":\"X\"}");
    assert_int_equal(dev_view_on_info(dv, j, err, sizeof err), -1);
    cJSON_Delete(j);
    assert_string_equal(dev_view_model(dv), "BIC-2200-24");
    dev_view_destroy(&dv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_before_telemetry),
        cmocka_unit_test(test_state_seed_keys),
        cmocka_unit_test(test_charge_seed_keys),
        cmocka_unit_test(test_energy_monotonic_counters),
        cmocka_unit_test(test_soc_from_table),
        cmocka_unit_test(test_surplus),
        cmocka_unit_test(test_fault_edges_counted),
        cmocka_unit_test(test_limits_not_applied_is_a_fault),
        cmocka_unit_test(test_key_follows_the_payload),
        cmocka_unit_test(test_bad_telemetry_refused),
        cmocka_unit_test(test_info_seed_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
