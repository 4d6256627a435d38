/*
 * Unit tests for the gateway's request decoding (can-gateway/gw_request.h): every op decoded,
 * the common fields "dev", "client" and "token" in each of their states, the id echoed as
 * sent, each op's own fields typed, and every refusal with its code and the order in which
 * refusals are chosen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_request.h"

static int s_decode(const char *text, bool read_only, gw_request_t *r, gwr_error_t *e)
{
    return gw_request_decode(text, strlen(text), 1, read_only, r, e);
}

/* Decoding text must be refused with code; the message must contain want. */
static void s_refused(const char *text, size_t parts, bool read_only, const char *code,
                      const char *want)
{
    gw_request_t r;
    gwr_error_t e;
    assert_int_equal(gw_request_decode(text, strlen(text), parts, read_only, &r, &e), -1);
    assert_string_equal(e.code, code);
    if (!strstr(e.message, want))
        fail_msg("message '%s' lacks '%s'", e.message, want);
    gw_request_free(&r);
}

static void test_every_op(void **state)
{
    (void)state;
    const char *ops[] = {"ping", "info",     "devices", "discover", "get",
                         "set",  "setpoint", "init",    "lease",    "eeprom"};
    /* the fields an op cannot do without */
    const char *fields[] = {"",
                            "",
                            "",
                            "",
                            ",\"reg\":\"READ_VOUT\"",
                            ",\"reg\":\"VOUT_SET\",\"raw\":1",
                            ",\"mode\":\"off\"",
                            "",
                            ",\"action\":\"release\"",
                            ""};
    assert_int_equal(sizeof ops / sizeof ops[0], GWR_OP_COUNT);
    for (int i = 0; i < GWR_OP_COUNT; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"v\":1,\"op\":\"%s\"%s}", ops[i], fields[i]);
        gw_request_t r;
        gwr_error_t e;
        assert_int_equal(s_decode(text, false, &r, &e), 0);
        assert_int_equal(r.op, i);
        assert_string_equal(gw_request_op_name(r.op), ops[i]);
        assert_non_null(r.json);
        assert_null(r.id);
        assert_int_equal(r.dev, GWR_DEV_ABSENT);
        assert_int_equal(r.client_state, GWR_CLIENT_ABSENT);
        assert_null(r.client);
        gw_request_free(&r);
    }
}

/* The common fields and the op's own, decoded together; the request keeps its object (the
 * names decoded point into it). */
static void test_op_fields_kept(void **state)
{
    (void)state;
    gw_request_t r;
    gwr_error_t e;
    assert_int_equal(s_decode("{\"v\":1,\"op\":\"setpoint\",\"dev\":3,\"client\":\"charge-ctl\","
                              "\"mode\":\"charge\",\"current_a\":12.5}",
                              false, &r, &e),
                     0);
    assert_int_equal(r.op, GWR_SETPOINT);
    assert_int_equal(r.dev, 3);
    assert_int_equal(r.client_state, GWR_CLIENT_OK);
    assert_string_equal(r.client, "charge-ctl");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r.json, "mode")->valuestring, "charge");
    assert_true(cJSON_GetObjectItemCaseSensitive(r.json, "current_a")->valuedouble == 12.5);
    assert_int_equal(r.setpoint.mode, GWR_MODE_CHARGE);
    assert_true(r.setpoint.amount == 12.5);
    gw_request_free(&r);
}

static void test_dev_states(void **state)
{
    (void)state;
    static const struct {
        const char *dev;
        int want;
    } cases[] = {
        {"0", 0},
        {"63", 63},
        {"7.0", 7},
        {"null", GWR_DEV_ABSENT},
        {"64", 64}, /* the NPB at address 0 */
        {"67", 67},
        {"68", GWR_DEV_INVALID},
        {"-1", GWR_DEV_INVALID},
        {"1.5", GWR_DEV_INVALID},
        {"\"1\"", GWR_DEV_INVALID},
        {"true", GWR_DEV_INVALID},
        {"[1]", GWR_DEV_INVALID},
        {"1e300", GWR_DEV_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"v\":1,\"op\":\"eeprom\",\"dev\":%s}", cases[i].dev);
        gw_request_t r;
        gwr_error_t e;
        assert_int_equal(s_decode(text, false, &r, &e), 0);
        if (r.dev != cases[i].want)
            fail_msg("dev %s: got %d, want %d", cases[i].dev, r.dev, cases[i].want);
        gw_request_free(&r);
    }
}

static void test_client_states(void **state)
{
    (void)state;
    static const struct {
        const char *client;
        gwr_client_t want;
    } cases[] = {
        {"\"bicctl\"", GWR_CLIENT_OK},
        {"\"a.b_c-9\"", GWR_CLIENT_OK},
        {"\"12345678901234567890123456789012\"", GWR_CLIENT_OK},
        {"null", GWR_CLIENT_ABSENT},
        {"\"\"", GWR_CLIENT_INVALID},
        {"\"123456789012345678901234567890123\"", GWR_CLIENT_INVALID},
        {"\"with space\"", GWR_CLIENT_INVALID},
        {"\"a/b\"", GWR_CLIENT_INVALID},
        {"5", GWR_CLIENT_INVALID},
        {"{}", GWR_CLIENT_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[160];
        snprintf(text, sizeof text, "{\"v\":1,\"op\":\"init\",\"client\":%s}", cases[i].client);
        gw_request_t r;
        gwr_error_t e;
        assert_int_equal(s_decode(text, false, &r, &e), 0);
        if (r.client_state != cases[i].want)
            fail_msg("client %s: got %d, want %d", cases[i].client, r.client_state, cases[i].want);
        if (r.client_state == GWR_CLIENT_OK)
            assert_non_null(r.client);
        else
            assert_null(r.client);
        gw_request_free(&r);
    }
}

/* "token": absent or null, or exactly 32 lowercase hex digits; anything else is refused with
 * a message that says what a token is. */
static void test_token(void **state)
{
    (void)state;
    static const char *const good[] = {"\"0123456789abcdef0123456789abcdef\"", "null", NULL};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[200];
        if (good[i])
            snprintf(text, sizeof text,
                     "{\"v\":1,\"op\":\"lease\",\"action\":\"renew\",\"token\":%s}", good[i]);
        else
            snprintf(text, sizeof text, "{\"v\":1,\"op\":\"lease\",\"action\":\"renew\"}");
        gw_request_t r;
        gwr_error_t e;
        assert_int_equal(s_decode(text, false, &r, &e), 0);
        if (i == 0)
            assert_string_equal(r.token, "0123456789abcdef0123456789abcdef");
        else
            assert_null(r.token);
        gw_request_free(&r);
    }
    static const char *const bad[] = {
        "\"\"",
        "\"0123456789abcdef0123456789abcde\"",   /* 31 digits */
        "\"0123456789abcdef0123456789abcdef0\"", /* 33 */
        "\"0123456789ABCDEF0123456789ABCDEF\"",  /* upper case */
        "\"0123456789abcdef0123456789abcdeg\"",
        "12345",
        "[\"0123456789abcdef0123456789abcdef\"]",
        "true",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "{\"v\":1,\"op\":\"setpoint\",\"token\":%s}", bad[i]);
        s_refused(text, 1, false, "bad_request",
                  "'token' must be the 32 lowercase hex digits a lease take replied with");
    }
}

/* The id comes back as its text was sent: numbers no double holds, strings, objects. */
static void test_id_as_sent(void **state)
{
    (void)state;
    const char *ids[] = {"1e400", "18446744073709551617", "\"a\\\"b\"", "{\"k\":[1,2]}", "null",
                         "-0.0"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char text[160];
        snprintf(text, sizeof text, "{\"op\":\"ping\", \"id\" : %s ,\"v\":1}", ids[i]);
        gw_request_t r;
        gwr_error_t e;
        assert_int_equal(s_decode(text, false, &r, &e), 0);
        assert_non_null(r.id);
        char *out = cJSON_PrintUnformatted(r.id);
        assert_string_equal(out, ids[i]);
        free(out);
        gw_request_free(&r);
    }
    /* a control byte the parser let through inside the id's string (a NUL among them) is
     * not echoed raw: the reply stays valid JSON */
    static const char nul_id[] = "{\"v\":1,\"op\":\"info\",\"id\":\"a\0\0b\n\"}";
    {
        gw_request_t r;
        gwr_error_t e;
        assert_int_equal(gw_request_decode(nul_id, sizeof nul_id - 1, 1, false, &r, &e), 0);
        assert_non_null(r.id);
        assert_null(r.id_raw);
        char *out = cJSON_PrintUnformatted(r.id);
        assert_non_null(out);
        cJSON *back = cJSON_Parse(out);
        assert_non_null(back);
        cJSON_Delete(back);
        free(out);
        gw_request_free(&r);
    }
    /* control bytes the parser takes for white space around or inside the id are not echoed
     * either: the id comes back as a valid JSON value, never as empty or broken text */
    static const struct {
        const char *text;
        size_t len;
        const char *want;
    } ctl[] = {
        {"{\"v\":1,\"id\":\5\0\0\0\"discov%r\"}", 27, "\"discov%r\""},
        {"{\"v\":1,\"op\":\"ping\",\"id\":5\5}", 27, "5"},
        {"{\"v\":1,\"op\":\"ping\",\"id\":[1,\5 2]}", 32, "[1,2]"},
    };
    for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) {
        gw_request_t r;
        gwr_error_t e;
        gw_request_decode(ctl[i].text, ctl[i].len, 1, false, &r, &e);
        assert_non_null(r.id);
        char *out = cJSON_PrintUnformatted(r.id);
        assert_string_equal(out, ctl[i].want);
        cJSON *back = cJSON_Parse(out);
        assert_non_null(back);
        cJSON_Delete(back);
        free(out);
        gw_request_free(&r);
    }
    /* an id longer than GWR_ID_MAX is echoed as parsed */
    char text[700];
    int n = snprintf(text, sizeof text, "{\"v\":1,\"op\":\"ping\",\"id\":\"");
    memset(text + n, 'x', 600);
    strcpy(text + n + 600, "\"}");
    gw_request_t r;
    gwr_error_t e;
    assert_int_equal(s_decode(text, false, &r, &e), 0);
    assert_true(cJSON_IsString(r.id));
    assert_int_equal(strlen(r.id->valuestring), 600);
    assert_null(r.id_raw);
    gw_request_free(&r);
}

static void test_refusals(void **state)
{
    (void)state;
    s_refused("{\"v\":1,\"op\":\"ping\"}", 2, false, "bad_request", "had 2 frames");
    s_refused("{\"v\":1,\"op\":\"ping\"", 1, false, "bad_request", "not valid JSON");
    s_refused("", 1, false, "bad_request", "not valid JSON");
    s_refused("[1,2]", 1, false, "bad_request", "must be a JSON object");
    s_refused("\"ping\"", 1, false, "bad_request", "must be a JSON object");
    s_refused("{\"v\":1,\"op\":\"ping\"} {}", 1, false, "bad_request", "2 bytes after");
    s_refused("{\"v\":1,\"op\":\"ping\"}\n x", 1, false, "bad_request", "1 bytes after");
    s_refused("{\"v\":1,\"op\":\"p\xc3\x28\"}", 1, false, "bad_request",
              "not valid UTF-8 (byte 14)");
    s_refused("{\"op\":\"ping\"}", 1, false, "bad_version", "'v' must be 1");
    s_refused("{\"v\":2,\"op\":\"ping\"}", 1, false, "bad_version", "'v' must be 1");
    s_refused("{\"v\":\"1\",\"op\":\"ping\"}", 1, false, "bad_version", "'v' must be 1");
    s_refused("{\"v\":1}", 1, false, "bad_request", "'op' is required");
    s_refused("{\"v\":1,\"op\":7}", 1, false, "bad_request", "'op' is required");
    s_refused("{\"v\":1,\"op\":\"reboot\"}", 1, false, "unknown_op", "unknown op 'reboot'");
    s_refused("{\"v\":1,\"op\":\"PING\"}", 1, false, "unknown_op", "unknown op 'PING'");
    /* a read-only key: only the reading ops */
    const char *writing[] = {"discover", "set", "setpoint", "init", "lease", "nosuchop"};
    for (size_t i = 0; i < sizeof writing / sizeof writing[0]; i++) {
        char text[96];
        snprintf(text, sizeof text, "{\"v\":1,\"op\":\"%s\"}", writing[i]);
        s_refused(text, 1, true, "forbidden", "read-only");
    }
    const char *reading[] = {"ping", "info", "devices", "get\",\"reg\":\"READ_VOUT", "eeprom"};
    for (size_t i = 0; i < sizeof reading / sizeof reading[0]; i++) {
        char text[96];
        snprintf(text, sizeof text, "{\"v\":1,\"op\":\"%s\"}", reading[i]);
        gw_request_t r;
        gwr_error_t e;
        assert_int_equal(s_decode(text, true, &r, &e), 0);
        gw_request_free(&r);
    }
}

static void test_too_large(void **state)
{
    (void)state;
    size_t n = GWR_MAX_BYTES + 1;
    char *text = malloc(n + 1);
    assert_non_null(text);
    memset(text, ' ', n);
    memcpy(text, "{\"v\":1,\"op\":\"ping\"}", 19);
    text[n] = '\0';
    /* exactly the limit passes (white space after the object is allowed) */
    gw_request_t r;
    gwr_error_t e;
    assert_int_equal(gw_request_decode(text, n - 1, 1, false, &r, &e), 0);
    gw_request_free(&r);
    /* one byte more is refused before anything else, even as several frames */
    s_refused(text, 3, false, "too_large", "4097 bytes; at most 4096");
    free(text);
}

/* Which refusal wins, and whether the id is echoed in it. */
static void test_refusal_order_and_id(void **state)
{
    (void)state;
    gw_request_t r;
    gwr_error_t e;
    /* before the object is parsed nothing is echoed */
    assert_int_equal(gw_request_decode("{\"id\":5,\"v\":1", 13, 1, false, &r, &e), -1);
    assert_null(r.id);
    gw_request_free(&r);
    /* after it, the id comes back in the refusal */
    assert_int_equal(s_decode("{\"id\":5,\"v\":3,\"op\":\"nope\"}", true, &r, &e), -1);
    assert_string_equal(e.code, "bad_version");
    assert_non_null(r.id);
    assert_true(cJSON_IsRaw(r.id));
    assert_string_equal(r.id->valuestring, "5");
    gw_request_free(&r);
    /* forbidden before unknown_op for a read-only key */
    assert_int_equal(s_decode("{\"id\":\"x\",\"v\":1,\"op\":\"nope\"}", true, &r, &e), -1);
    assert_string_equal(e.code, "forbidden");
    assert_string_equal(r.id->valuestring, "\"x\"");
    gw_request_free(&r);
    /* the common fields never refuse in decoding: the gateway chooses when they matter */
    assert_int_equal(
        s_decode("{\"v\":1,\"op\":\"ping\",\"dev\":\"x\",\"client\":1}", false, &r, &e), 0);
    assert_int_equal(r.dev, GWR_DEV_INVALID);
    assert_int_equal(r.client_state, GWR_CLIENT_INVALID);
    gw_request_free(&r);
    /* an op's own field refuses in decoding, before the gateway looks at "dev" or "client" */
    assert_int_equal(
        s_decode("{\"v\":1,\"op\":\"set\",\"dev\":99,\"reg\":\"VOUT_SET\"}", false, &r, &e), -1);
    assert_string_equal(e.code, "bad_request");
    assert_non_null(strstr(e.message, "exactly one of 'value'"));
    assert_int_equal(r.dev, GWR_DEV_INVALID);
    gw_request_free(&r);
    /* freeing twice is harmless */
    gw_request_free(&r);
    gw_request_free(NULL);
}

static gw_request_t s_ok(const char *text)
{
    gw_request_t r;
    gwr_error_t e;
    if (s_decode(text, false, &r, &e) != 0)
        fail_msg("%s refused: %s %s", text, e.code, e.message);
    return r;
}

static void test_get_fields(void **state)
{
    (void)state;
    gw_request_t r = s_ok("{\"v\":1,\"op\":\"get\",\"reg\":\"READ_VOUT\"}");
    assert_int_equal(r.get.n, 1);
    assert_string_equal(r.get.name[0], "READ_VOUT");
    gw_request_free(&r);
    /* the names as asked, in order: which table they are looked up in (BIC or NPB) and which
     * of them name one register is the gateway's, by the device */
    r = s_ok("{\"v\":1,\"op\":\"get\",\"regs\":[\"READ_IOUT\",\"0x0060\",\"NOPE\","
             "\"12345678901234567890123\"]}");
    assert_int_equal(r.get.n, 4);
    assert_string_equal(r.get.name[0], "READ_IOUT");
    assert_string_equal(r.get.name[1], "0x0060");
    assert_string_equal(r.get.name[2], "NOPE");
    assert_int_equal(strlen(r.get.name[3]), GWR_REG_NAME_MAX);
    gw_request_free(&r);
}

static void test_set_fields(void **state)
{
    (void)state;
    gw_request_t r = s_ok("{\"v\":1,\"op\":\"set\",\"reg\":\"VOUT_SET\",\"value\":27.5}");
    assert_string_equal(r.set.reg, "VOUT_SET");
    assert_false(r.set.is_raw);
    assert_true(r.set.value == 27.5);
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"set\",\"reg\":\"0x0030\",\"raw\":2500.0}");
    assert_string_equal(r.set.reg, "0x0030");
    assert_true(r.set.is_raw);
    assert_int_equal(r.set.raw, 2500);
    gw_request_free(&r);
    /* the register's own range is the gateway's: any integer within +-1e9 decodes */
    r = s_ok("{\"v\":1,\"op\":\"set\",\"reg\":\"VOUT_SET\",\"raw\":-1000000000}");
    assert_int_equal(r.set.raw, -1000000000);
    gw_request_free(&r);
}

static void test_setpoint_fields(void **state)
{
    (void)state;
    gw_request_t r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"charge\",\"current_a\":12.5}");
    assert_int_equal(r.setpoint.mode, GWR_MODE_CHARGE);
    assert_false(r.setpoint.by_power);
    assert_true(r.setpoint.amount == 12.5);
    assert_false(r.setpoint.manual);
    assert_false(r.setpoint.has_ttl);
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"discharge\",\"power_w\":0,"
             "\"manual\":true,\"lease_ttl_s\":30}");
    assert_int_equal(r.setpoint.mode, GWR_MODE_DISCHARGE);
    assert_true(r.setpoint.by_power);
    assert_true(r.setpoint.amount == 0);
    assert_true(r.setpoint.manual);
    assert_true(r.setpoint.has_ttl);
    assert_true(r.setpoint.ttl_s == 30);
    gw_request_free(&r);
    /* idle and off carry no magnitude (one given is not looked at); a lease_ttl_s that is no
     * number is kept as NaN for the gateway to refuse with the configured range */
    r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"idle\",\"current_a\":\"x\","
             "\"lease_ttl_s\":\"30\"}");
    assert_int_equal(r.setpoint.mode, GWR_MODE_IDLE);
    assert_true(r.setpoint.has_ttl);
    assert_true(isnan(r.setpoint.ttl_s));
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"off\",\"lease_ttl_s\":null}");
    assert_int_equal(r.setpoint.mode, GWR_MODE_OFF);
    assert_false(r.setpoint.has_ttl);
    assert_false(r.setpoint.resume);
    assert_string_equal(gw_request_mode_name(r.setpoint.mode), "off");
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"stop\"}");
    assert_int_equal(r.setpoint.mode, GWR_MODE_STOP);
    assert_string_equal(gw_request_mode_name(r.setpoint.mode), "stop");
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"charge\",\"current_a\":3,\"resume\":true}");
    assert_true(r.setpoint.resume);
    assert_false(r.setpoint.has_preset);
    gw_request_free(&r);
    /* idle with a preset: the direction and its current */
    r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":\"charge\","
             "\"current_a\":8.5}");
    assert_int_equal(r.setpoint.mode, GWR_MODE_IDLE);
    assert_true(r.setpoint.has_preset);
    assert_int_equal(r.setpoint.preset, GWR_MODE_CHARGE);
    assert_true(r.setpoint.amount == 8.5);
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":\"discharge\","
             "\"current_a\":0}");
    assert_true(r.setpoint.has_preset);
    assert_int_equal(r.setpoint.preset, GWR_MODE_DISCHARGE);
    assert_true(r.setpoint.amount == 0);
    gw_request_free(&r);
    /* a null preset is none, on any mode */
    r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":null}");
    assert_false(r.setpoint.has_preset);
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"setpoint\",\"mode\":\"charge\",\"current_a\":3,\"preset\":null}");
    assert_false(r.setpoint.has_preset);
    gw_request_free(&r);
}

static void test_lease_fields(void **state)
{
    (void)state;
    gw_request_t r = s_ok("{\"v\":1,\"op\":\"lease\",\"action\":\"take\",\"ttl_s\":30}");
    assert_int_equal(r.lease.action, GWR_LEASE_TAKE);
    assert_true(r.lease.has_ttl);
    assert_true(r.lease.ttl_s == 30);
    assert_string_equal(gw_request_lease_action_name(r.lease.action), "take");
    gw_request_free(&r);
    /* a ttl_s that is no number is none: whether the action needs one and its range are the
     * gateway's (the configured longest lease) */
    r = s_ok("{\"v\":1,\"op\":\"lease\",\"action\":\"renew\",\"ttl_s\":\"30\"}");
    assert_int_equal(r.lease.action, GWR_LEASE_RENEW);
    assert_false(r.lease.has_ttl);
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"lease\",\"action\":\"release\",\"ttl_s\":-5}");
    assert_int_equal(r.lease.action, GWR_LEASE_RELEASE);
    assert_true(r.lease.has_ttl);
    assert_true(r.lease.ttl_s == -5);
    gw_request_free(&r);
}

static void test_discover_fields(void **state)
{
    (void)state;
    gw_request_t r = s_ok("{\"v\":1,\"op\":\"discover\"}");
    assert_false(r.discover.extended);
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"discover\",\"extended\":true}");
    assert_true(r.discover.extended);
    gw_request_free(&r);
    r = s_ok("{\"v\":1,\"op\":\"discover\",\"extended\":null}");
    assert_false(r.discover.extended);
    gw_request_free(&r);
}

/* Each wrong field of an op: refused with what is wrong and what is allowed. */
static void test_op_field_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *fields, *code, *want;
    } cases[] = {
        /* discover */
        {"\"op\":\"discover\",\"extended\":1", "bad_request", "'extended' must be true or false"},
        /* get */
        {"\"op\":\"get\"", "bad_request", "'reg' (a register name or \"0x0030\") or 'regs'"},
        {"\"op\":\"get\",\"regs\":\"READ_VOUT\"", "bad_request", "or 'regs' (a list of them)"},
        {"\"op\":\"get\",\"reg\":\"READ_VOUT\",\"regs\":[\"READ_VOUT\"]", "bad_request",
         "either 'reg' or 'regs', not both"},
        {"\"op\":\"get\",\"regs\":[]", "bad_request", "1-32 register names (got 0)"},
        {"\"op\":\"get\",\"reg\":5", "bad_request", "register names must be strings"},
        {"\"op\":\"get\",\"reg\":\"READ_VOUT_AND_MORE_THAN_23\"", "bad_request",
         "register names must be strings"},
        {"\"op\":\"get\",\"regs\":[\"READ_VOUT\",\"READ_VOUT_AND_MORE_THAN_23\"]", "bad_request",
         "register names must be strings"},
        /* set */
        {"\"op\":\"set\",\"value\":1", "bad_request", "'reg' is required"},
        {"\"op\":\"set\",\"reg\":48,\"value\":1", "bad_request",
         "'reg' is required: a register name"},
        {"\"op\":\"set\",\"reg\":\"VOUT_SET\"", "bad_request",
         "exactly one of 'value' (engineering units) or 'raw'"},
        {"\"op\":\"set\",\"reg\":\"VOUT_SET\",\"value\":1,\"raw\":1", "bad_request",
         "exactly one of 'value'"},
        {"\"op\":\"set\",\"reg\":\"VOUT_SET\",\"value\":\"27\"", "bad_request",
         "'value' must be a number"},
        {"\"op\":\"set\",\"reg\":\"VOUT_SET\",\"raw\":1.5", "bad_request",
         "'raw' must be an integer"},
        {"\"op\":\"set\",\"reg\":\"VOUT_SET\",\"raw\":1e10", "bad_request",
         "'raw' must be an integer"},
        /* lease */
        {"\"op\":\"lease\"", "bad_request", "'action' must be \"take\", \"renew\" or \"release\""},
        {"\"op\":\"lease\",\"action\":\"Take\"", "bad_request", "'action' must be"},
        {"\"op\":\"lease\",\"action\":1", "bad_request", "'action' must be"},
        /* setpoint */
        {"\"op\":\"setpoint\"", "bad_request", "'mode' must be \"charge\", \"discharge\""},
        {"\"op\":\"setpoint\",\"mode\":\"Charge\"", "bad_request", "\"off\" or \"stop\""},
        {"\"op\":\"setpoint\",\"mode\":\"stop\",\"resume\":\"yes\"", "bad_request",
         "'resume' must be true"},
        {"\"op\":\"setpoint\",\"mode\":\"off\",\"manual\":1", "bad_request",
         "'manual' must be true"},
        {"\"op\":\"setpoint\",\"mode\":\"charge\"", "bad_request",
         "charge needs exactly one of 'current_a' or 'power_w'"},
        {"\"op\":\"setpoint\",\"mode\":\"discharge\",\"current_a\":1,\"power_w\":1", "bad_request",
         "discharge needs exactly one"},
        {"\"op\":\"setpoint\",\"mode\":\"charge\",\"current_a\":-1", "bad_request",
         "'current_a' must be a number >= 0"},
        {"\"op\":\"setpoint\",\"mode\":\"charge\",\"power_w\":\"5\"", "bad_request",
         "'power_w' must be a number >= 0"},
        {"\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":\"charge\"", "bad_request",
         "'preset' needs 'current_a': a number >= 0"},
        {"\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":\"charge\",\"current_a\":\"8\"",
         "bad_request", "'preset' needs 'current_a'"},
        {"\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":\"discharge\",\"current_a\":-1",
         "bad_request", "'preset' needs 'current_a': a number >= 0"},
        {"\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":\"idle\",\"current_a\":1", "bad_request",
         "'preset' must be \"charge\" or \"discharge\""},
        {"\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":true,\"current_a\":1", "bad_request",
         "'preset' must be \"charge\" or \"discharge\""},
        {"\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":\"charge\",\"power_w\":100",
         "bad_request", "'preset' takes 'current_a' (A), not 'power_w'"},
        {"\"op\":\"setpoint\",\"mode\":\"idle\",\"preset\":\"charge\",\"current_a\":1,"
         "\"power_w\":100",
         "bad_request", "not 'power_w'"},
        {"\"op\":\"setpoint\",\"mode\":\"charge\",\"current_a\":1,\"preset\":\"charge\"",
         "bad_request", "'preset' is only for mode \"idle\""},
        {"\"op\":\"setpoint\",\"mode\":\"off\",\"preset\":\"charge\",\"current_a\":1",
         "bad_request", "'preset' is only for mode \"idle\" (a unit on standby); off has none"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"v\":1,\"id\":7,%s}", cases[i].fields);
        gw_request_t r;
        gwr_error_t e;
        if (s_decode(text, false, &r, &e) != -1)
            fail_msg("%s was not refused", text);
        if (strcmp(e.code, cases[i].code) != 0 || !strstr(e.message, cases[i].want))
            fail_msg("%s: got %s '%s', want %s '%s'", text, e.code, e.message, cases[i].code,
                     cases[i].want);
        /* the refusal echoes the id */
        assert_non_null(r.id);
        assert_string_equal(r.id->valuestring, "7");
        gw_request_free(&r);
    }
}

static void test_op_names(void **state)
{
    (void)state;
    assert_string_equal(gw_request_op_name(GWR_EEPROM), "eeprom");
    assert_string_equal(gw_request_op_name(GWR_OP_COUNT), "?");
    assert_true(gw_request_op_read_only(GWR_GET));
    assert_false(gw_request_op_read_only(GWR_SETPOINT));
    assert_false(gw_request_op_read_only(GWR_DISCOVER));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op),        cmocka_unit_test(test_op_fields_kept),
        cmocka_unit_test(test_dev_states),      cmocka_unit_test(test_client_states),
        cmocka_unit_test(test_id_as_sent),      cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_too_large),       cmocka_unit_test(test_refusal_order_and_id),
        cmocka_unit_test(test_op_names),        cmocka_unit_test(test_get_fields),
        cmocka_unit_test(test_set_fields),      cmocka_unit_test(test_setpoint_fields),
        cmocka_unit_test(test_discover_fields), cmocka_unit_test(test_op_field_refusals),
        cmocka_unit_test(test_token),           cmocka_unit_test(test_lease_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
