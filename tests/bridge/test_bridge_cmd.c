/*
 * Unit tests of bridge_cmd: command topics, payload validation (good payloads become the
 * documented gateway requests, bad ones are refused with a code and a message), results.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bridge_cmd.h"

#define T "haus/power/bat/bic2mqtt"

static const bcmd_opts_t OPTS_ON = {.lease_ttl_s = 300, .operation = 1};
static const bcmd_opts_t OPTS_UNKNOWN = {.lease_ttl_s = 300, .operation = -1};

static bcmd_t ok(bcmd_kind_t kind, const char *payload, const bcmd_opts_t *opts)
{
    bcmd_t c;
    const char *code = NULL;
    char err[256];
    int rc = bcmd_parse(kind, 2, payload, strlen(payload), opts, &c, &code, err, sizeof err);
    if (rc != 0)
        fail_msg("'%s' refused: %s %s", payload, code, err);
    return c;
}

static void refused(bcmd_kind_t kind, const char *payload, const char *want_code)
{
    bcmd_t c;
    const char *code = NULL;
    char err[256] = "";
    int rc = bcmd_parse(kind, 2, payload, strlen(payload), &OPTS_ON, &c, &code, err, sizeof err);
    if (rc != -1)
        fail_msg("'%s' accepted", payload);
    assert_non_null(code);
    assert_string_equal(code, want_code);
    assert_true(strlen(err) > 5); /* says what was wrong */
    assert_null(c.req);           /* nothing to send */
    bcmd_clear(&c);
}

static const char *req_str(const bcmd_t *c, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->req, key);
    assert_true(cJSON_IsString(it));
    return it->valuestring;
}

static double req_num(const bcmd_t *c, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->req, key);
    assert_true(cJSON_IsNumber(it));
    return it->valuedouble;
}

static void test_topics(void **state)
{
    int dev = -1;
    bcmd_kind_t kind;
    assert_true(bcmd_topic_parse(T "/inv/0/state/set", T, &dev, &kind));
    assert_int_equal(dev, 0);
    assert_int_equal(kind, BCMD_STATE);
    assert_true(bcmd_topic_parse(T "/inv/63/charge/set", T, &dev, &kind));
    assert_int_equal(dev, 63);
    assert_int_equal(kind, BCMD_CHARGE);
    assert_true(bcmd_topic_parse(T "/inv/67/npbCurveCC/set", T, &dev, &kind)); /* an NPB */
    assert_int_equal(dev, 67);
    assert_int_equal(kind, BCMD_NPB_CC);
    assert_true(bcmd_topic_parse(T "/inv/7/dischargeLimA/set", T, &dev, &kind));
    assert_int_equal(kind, BCMD_DISCHARGE_LIM_A);
    const char *no[] = {
        T "/inv/0/control/set", /* the controller's topic */
        T "/inv/68/state/set",       T "/inv/01/state/set", T "/inv/x/state/set",
        T "/inv/0/state/set/result", T "/inv/0/state",      "other/inv/0/state/set",
        T "x/inv/0/state/set",       T "/inv//state/set",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (bcmd_topic_parse(no[i], T, &dev, &kind))
            fail_msg("%s accepted", no[i]);
}

static void test_state_set(void **state)
{
    bcmd_t c = ok(BCMD_STATE, "1", &OPTS_UNKNOWN);
    assert_string_equal(req_str(&c, "op"), "set");
    assert_string_equal(req_str(&c, "reg"), "OPERATION");
    assert_int_equal(req_num(&c, "value"), 1);
    assert_int_equal(req_num(&c, "dev"), 2);
    assert_int_equal(req_num(&c, "v"), 1);
    assert_string_equal(req_str(&c, "client"), "mqtt-bridge");
    bcmd_clear(&c);
    bcmd_clear(&c); /* twice is fine */

    /* Off as the seed: the gateway's setpoint stop (idle set-points, output off), a
     * person's command, without a lease. */
    const char *offs[] = {"0", " 0\n", "{\"val\":0}"};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        c = ok(BCMD_STATE, offs[i], &OPTS_UNKNOWN);
        assert_string_equal(req_str(&c, "op"), "setpoint");
        assert_string_equal(req_str(&c, "mode"), "stop");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c.req, "manual")));
        assert_null(cJSON_GetObjectItemCaseSensitive(c.req, "lease_ttl_s"));
        assert_null(cJSON_GetObjectItemCaseSensitive(c.req, "reg"));
        assert_int_equal(req_num(&c, "dev"), 2);
        assert_string_equal(c.what, "off");
        bcmd_clear(&c);
    }
    /* The seed switched off for anything but 1 and 2; refused here, nothing written. */
    const char *bad[] = {"abc", " ", "3", "-1", "0.5", "on", "{\"val\":7}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(BCMD_STATE, bad[i], "bad_request");
    /* Toggle uses the device's state; without one it is refused. */
    c = ok(BCMD_STATE, "2", &OPTS_ON);
    assert_string_equal(req_str(&c, "mode"), "stop");
    bcmd_clear(&c);
    static const bcmd_opts_t opts_off = {.lease_ttl_s = 300, .operation = 0};
    c = ok(BCMD_STATE, "2", &opts_off);
    assert_string_equal(req_str(&c, "reg"), "OPERATION");
    assert_int_equal(req_num(&c, "value"), 1);
    bcmd_clear(&c);
    bcmd_t u;
    const char *code;
    char err[128];
    assert_int_equal(bcmd_parse(BCMD_STATE, 0, "2", 1, &OPTS_UNKNOWN, &u, &code, err, sizeof err),
                     -1);
    assert_string_equal(code, "unknown_state");
    bcmd_clear(&u);

    /* JSON form with a correlation id, echoed into the gateway request. */
    c = ok(BCMD_STATE, "{\"val\":1,\"id\":\"abc-1\"}", &OPTS_UNKNOWN);
    assert_int_equal(req_num(&c, "value"), 1);
    assert_string_equal(req_str(&c, "id"), "abc-1");
    assert_string_equal(c.corr->valuestring, "abc-1");
    bcmd_clear(&c);
    refused(BCMD_STATE, "", "bad_request"); /* what clearing a retained message delivers */
    refused(BCMD_STATE, "{\"val\":\"on\"}", "bad_request");
    refused(BCMD_STATE, "{\"val\":1", "bad_request");
    refused(BCMD_STATE, "{\"val\":1,\"id\":[1]}", "bad_request");
}

static void test_charge_set(void **state)
{
    bcmd_t c = ok(BCMD_CHARGE, "{\"var\":\"chargeA\",\"val\":12.5}", &OPTS_ON);
    assert_string_equal(req_str(&c, "op"), "setpoint");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c.req, "manual")));
    assert_string_equal(req_str(&c, "mode"), "charge");
    assert_float_equal(req_num(&c, "current_a"), 12.5, 1e-9);
    assert_int_equal(req_num(&c, "lease_ttl_s"), 300);
    assert_string_equal(req_str(&c, "client"), "mqtt-bridge");
    assert_false(c.reload);
    bcmd_clear(&c);

    c = ok(BCMD_CHARGE, "{\"var\":\"chargeP\",\"val\":-250,\"id\":7}", &OPTS_ON);
    assert_string_equal(req_str(&c, "mode"), "discharge");
    assert_float_equal(req_num(&c, "power_w"), 250, 1e-9);
    assert_null(cJSON_GetObjectItem(c.req, "current_a"));
    assert_int_equal(req_num(&c, "id"), 7);
    bcmd_clear(&c);

    c = ok(BCMD_CHARGE, "{\"var\":\"chargeP\",\"val\":0}", &OPTS_ON);
    assert_string_equal(req_str(&c, "mode"), "idle");
    bcmd_clear(&c);

    c = ok(BCMD_CHARGE, "{\"var\":\"cfgReload\",\"val\":0}", &OPTS_ON);
    assert_true(c.reload);
    assert_null(c.req);
    bcmd_clear(&c);
    c = ok(BCMD_CHARGE, "{\"var\":\"cfgReload\"}", &OPTS_ON); /* val optional here */
    assert_true(c.reload);
    bcmd_clear(&c);

    c = ok(BCMD_CHARGE, "{\"var\":\"release\"}", &OPTS_ON);
    assert_string_equal(req_str(&c, "op"), "lease");
    assert_string_equal(req_str(&c, "action"), "release");
    assert_string_equal(req_str(&c, "client"), "mqtt-bridge");
    bcmd_clear(&c);

    refused(BCMD_CHARGE, "12", "bad_request");
    refused(BCMD_CHARGE, "not json", "bad_request");
    refused(BCMD_CHARGE, "", "bad_request");
    refused(BCMD_CHARGE, "{\"val\":12}", "bad_request");
    refused(BCMD_CHARGE, "{\"var\":\"chargeX\",\"val\":12}", "bad_request");
    refused(BCMD_CHARGE, "{\"var\":\"chargeA\",\"val\":\"12\"}", "bad_request");
    refused(BCMD_CHARGE, "{\"var\":\"chargeA\"}", "bad_request");
    refused(BCMD_CHARGE, "{\"var\":\"chargeA\",\"val\":1e300}", "out_of_range");
    refused(BCMD_CHARGE, "{\"var\":\"chargeA\",\"val\":-201}", "out_of_range");
    refused(BCMD_CHARGE, "{\"var\":\"chargeP\",\"val\":100001}", "out_of_range");

    char big[BCMD_MAX_PAYLOAD + 50];
    int n = snprintf(big, sizeof big, "{\"var\":\"chargeA\",\"val\":1,\"pad\":\"");
    memset(big + n, 'x', sizeof big - (size_t)n - 3);
    strcpy(big + sizeof big - 3, "\"}");
    refused(BCMD_CHARGE, big, "too_large");

    /* A correlation id is kept even when the command is refused, for the result. */
    bcmd_t r;
    const char *code;
    char err[128];
    const char *p = "{\"var\":\"chargeA\",\"val\":\"x\",\"id\":\"c9\"}";
    assert_int_equal(bcmd_parse(BCMD_CHARGE, 0, p, strlen(p), &OPTS_ON, &r, &code, err, sizeof err),
                     -1);
    assert_string_equal(r.corr->valuestring, "c9");
    bcmd_clear(&r);

    /* An embedded NUL is refused, not truncated into something valid. */
    const char nul[] = "{\"var\":\"chargeA\",\"val\":1}\0junk";
    assert_int_equal(
        bcmd_parse(BCMD_CHARGE, 0, nul, sizeof nul - 1, &OPTS_ON, &r, &code, err, sizeof err), -1);
    bcmd_clear(&r);
}

static void test_register_topics(void **state)
{
    bcmd_t c = ok(BCMD_CHARGE_V, "27.6", &OPTS_ON);
    assert_string_equal(req_str(&c, "op"), "set");
    assert_string_equal(req_str(&c, "reg"), "VOUT_SET");
    assert_float_equal(req_num(&c, "value"), 27.6, 1e-9);
    bcmd_clear(&c);
    c = ok(BCMD_DISCHARGE_LIM_A, "{\"val\":20,\"id\":\"q\"}", &OPTS_ON);
    assert_string_equal(req_str(&c, "reg"), "REVERSE_IOUT_SET");
    bcmd_clear(&c);
    c = ok(BCMD_DIRECTION, "discharge", &OPTS_ON);
    assert_string_equal(req_str(&c, "reg"), "DIRECTION_CTRL");
    assert_int_equal(req_num(&c, "value"), 1);
    bcmd_clear(&c);
    c = ok(BCMD_DIRECTION, "{\"val\":\"charge\"}", &OPTS_ON);
    assert_int_equal(req_num(&c, "value"), 0);
    bcmd_clear(&c);

    refused(BCMD_CHARGE_V, "abc", "bad_request");
    refused(BCMD_CHARGE_V, "27.6V", "bad_request");
    refused(BCMD_CHARGE_V, "-1", "out_of_range");
    refused(BCMD_CHARGE_V, "0", "out_of_range");
    refused(BCMD_CHARGE_V, "500", "out_of_range");
    refused(BCMD_CHARGE_V, "nan", "bad_request");
    refused(BCMD_CHARGE_LIM_A, "{\"val\":\"5\"}", "bad_request");
    refused(BCMD_CHARGE_LIM_A, "{\"id\":1}", "bad_request");
    refused(BCMD_DIRECTION, "sideways", "bad_request");
    refused(BCMD_DIRECTION, "1", "bad_request");
    refused(BCMD_DIRECTION, "", "bad_request");

    /* an NPB's mode: CURVE_CONFIG with bit 7 as asked, the other bits as last reported */
    const bcmd_opts_t npb = {.lease_ttl_s = 300, .operation = 1, .curve_config = 0x0884};
    c = ok(BCMD_NPB_MODE, "psu", &npb);
    assert_string_equal(req_str(&c, "reg"), "CURVE_CONFIG");
    assert_int_equal(req_num(&c, "raw"), 0x0804);
    bcmd_clear(&c);
    c = ok(BCMD_NPB_MODE, "{\"val\":\"charger\"}", &npb);
    assert_int_equal(req_num(&c, "raw"), 0x0884);
    bcmd_clear(&c);
    c = ok(BCMD_NPB_CC, "12.5", &npb);
    assert_string_equal(req_str(&c, "reg"), "CURVE_CC");
    bcmd_clear(&c);
    refused(BCMD_NPB_MODE, "battery", "bad_request");
    const char *code = NULL;
    char err[128];
    const bcmd_opts_t unknown = {.lease_ttl_s = 300, .operation = 1, .curve_config = -1};
    assert_int_equal(bcmd_parse(BCMD_NPB_MODE, 67, "psu", 3, &unknown, &c, &code, err, sizeof err),
                     -1);
    assert_string_equal(code, "unknown_state");
    bcmd_clear(&c);
}

static void test_results(void **state)
{
    cJSON *corr = cJSON_CreateString("abc");
    cJSON *reply = cJSON_Parse("{\"v\":1,\"ok\":true,\"id\":99,\"dev\":0,\"mode\":\"charge\","
                               "\"current_a\":12.4,"
                               "\"token\":\"0123456789abcdef0123456789abcdef\"}");
    char *s = bcmd_result_ok(BCMD_CHARGE, corr, "chargeA 12.4", reply);
    cJSON *r = cJSON_Parse(s);
    free(s);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    assert_string_equal(cJSON_GetObjectItem(r, "id")->valuestring, "abc");
    assert_string_equal(cJSON_GetObjectItem(r, "cmd")->valuestring, "charge");
    const cJSON *res = cJSON_GetObjectItem(r, "result");
    assert_string_equal(cJSON_GetObjectItem(res, "mode")->valuestring, "charge");
    assert_null(cJSON_GetObjectItem(res, "v"));
    assert_null(cJSON_GetObjectItem(res, "id"));
    /* the lease token is the bridge's own, never published */
    assert_null(cJSON_GetObjectItem(res, "token"));
    cJSON_Delete(r);
    cJSON_Delete(reply);

    cJSON *gwerr = cJSON_Parse("{\"code\":\"lease_held\",\"message\":\"controlled by charge-ctl\","
                               "\"holder\":\"charge-ctl\",\"expires_in_s\":8.5}");
    s = bcmd_result_error(BCMD_STATE, NULL, "on", "lease_held", "controlled by charge-ctl", gwerr);
    r = cJSON_Parse(s);
    free(s);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")));
    assert_null(cJSON_GetObjectItem(r, "id"));
    const cJSON *e = cJSON_GetObjectItem(r, "error");
    assert_string_equal(cJSON_GetObjectItem(e, "code")->valuestring, "lease_held");
    assert_string_equal(cJSON_GetObjectItem(e, "message")->valuestring, "controlled by charge-ctl");
    assert_string_equal(cJSON_GetObjectItem(e, "holder")->valuestring, "charge-ctl");
    cJSON_Delete(r);
    cJSON_Delete(gwerr);
    cJSON_Delete(corr);
}

/* Random bytes and mangled valid payloads: every one is either refused with a code and a
 * message or becomes a request of the documented shape; nothing crashes (run under ASan and
 * valgrind too). */
static void test_random_payloads(void **state)
{
    static const char *seeds[] = {"{\"var\":\"chargeA\",\"val\":12.5,\"id\":\"x\"}",
                                  "{\"var\":\"chargeP\",\"val\":-250}", "27.6", "discharge",
                                  "{\"val\":1,\"id\":3}"};
    unsigned seed = 12345;
    int accepted = 0, refused_n = 0;
    char buf[BCMD_MAX_PAYLOAD + 8];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len;
        if (iter % 2) {
            len = (size_t)(rand_r(&seed) % (sizeof buf));
            for (size_t i = 0; i < len; i++)
                buf[i] = (char)(rand_r(&seed) % 256);
        } else {
            const char *src = seeds[rand_r(&seed) % 5];
            len = strlen(src);
            memcpy(buf, src, len);
            static const char flips[] = "{}[]\",:0-9.eEtrufalsn \\";
            for (int k = 0; k < 3; k++) /* flip a few characters */
                buf[rand_r(&seed) % len] = flips[rand_r(&seed) % (sizeof flips - 1)];
        }
        bcmd_kind_t kind = (bcmd_kind_t)(rand_r(&seed) % BCMD_KINDS);
        bcmd_opts_t opts = {.lease_ttl_s = 60, .operation = (int)(rand_r(&seed) % 3) - 1};
        bcmd_t c;
        const char *code = NULL;
        char err[256];
        int rc = bcmd_parse(kind, 1, buf, len, &opts, &c, &code, err, sizeof err);
        if (rc == 0) {
            accepted++;
            assert_true(c.reload || cJSON_IsObject(c.req));
            if (c.req) {
                const cJSON *op = cJSON_GetObjectItem(c.req, "op");
                assert_true(cJSON_IsString(op));
                assert_string_equal(cJSON_GetObjectItem(c.req, "client")->valuestring,
                                    "mqtt-bridge");
            }
        } else {
            refused_n++;
            assert_int_equal(rc, -1);
            assert_non_null(code);
            assert_true(strlen(err) > 0);
            assert_null(c.req);
        }
        bcmd_clear(&c);
    }
    /* Both paths were exercised, many times (state/set refuses what is not 0, 1 or 2, so
     * most mutants are refused). */
    assert_true(accepted > 50);
    assert_true(refused_n > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics),     cmocka_unit_test(test_state_set),
        cmocka_unit_test(test_charge_set), cmocka_unit_test(test_register_topics),
        cmocka_unit_test(test_results),    cmocka_unit_test(test_random_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
