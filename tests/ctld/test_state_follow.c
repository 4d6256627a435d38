/* The controller follows state/set exactly where the bridge acts on it: ctld_parse_state
 * (charge-ctl/ctl_d_mqtt.h) against bcmd_parse (mqtt-bridge/bridge_cmd.h) on the same payloads,
 * so the controller never pauses on a command the bridge refuses, nor misses one it runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bridge_cmd.h"
#include "ctl_d_mqtt.h"

/* The bridge's reading of payload with the output on: -1 refused, 0 off (stop), 1 on, 2
 * toggle (off). */
static int s_bridge(const void *payload, size_t len)
{
    static const bcmd_opts_t opts = {.lease_ttl_s = 600, .operation = 1};
    bcmd_t c;
    const char *code = NULL;
    char err[256];
    if (bcmd_parse(BCMD_STATE, 0, payload, len, &opts, &c, &code, err, sizeof err) != 0) {
        bcmd_clear(&c);
        return -1;
    }
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(c.req, "mode");
    int v = cJSON_IsString(mode) && strcmp(mode->valuestring, "stop") == 0 ? 0 : 1;
    if (strncmp(c.what, "toggle", 6) == 0)
        v = 2;
    bcmd_clear(&c);
    return v;
}

static void s_same(const char *payload, int want)
{
    size_t len = strlen(payload);
    int ctl = ctld_parse_state(payload, len);
    if (ctl != want || s_bridge(payload, len) != want)
        fail_msg("'%s': controller %d, bridge %d, expected %d", payload, ctl,
                 s_bridge(payload, len), want);
}

static void test_state_payloads(void **unused)
{
    s_same("0", 0);
    s_same(" 0\n", 0);
    s_same("1", 1);
    s_same("2", 2);
    s_same("{\"val\":0}", 0);
    s_same("{\"val\":1,\"id\":\"abc\"}", 1);
    s_same("{\"val\":0,\"id\":7}", 0);
    s_same("", -1);
    s_same("on", -1);
    s_same("3", -1);
    s_same("0.5", -1);
    s_same("nan", -1);
    s_same("{\"val\":\"0\"}", -1);
    s_same("{\"val\":0,\"id\":[1]}", -1);
    s_same("{\"val\":0", -1);
    s_same("[0]", -1);
    assert_int_equal(ctld_parse_state(NULL, 0), -1);
    assert_int_equal(ctld_parse_state("0\0", 2), -1);
}

/* Random payloads built from the characters that matter: both read each one alike. */
static void test_state_random_payloads(void **unused)
{
    static const char chars[] = "0123 .{}\":,validx\n-e[]";
    uint32_t x = 4242;
    int accepted = 0;
    for (int i = 0; i < 50000; i++) {
        char buf[40];
        x = x * 1103515245u + 12345u;
        size_t len = (x >> 16) % 24;
        if (i % 3 == 0) { /* often a JSON object around a value */
            len = (size_t)snprintf(buf, sizeof buf, "{\"val\":%u%s}", (x >> 20) % 4,
                                   (x >> 8) % 2 ? "" : ",\"id\":1");
        } else {
            for (size_t k = 0; k < len; k++) {
                x = x * 1103515245u + 12345u;
                buf[k] = chars[(x >> 16) % (sizeof chars - 1)];
            }
        }
        int ctl = ctld_parse_state(buf, len);
        int br = s_bridge(buf, len);
        if (ctl != br)
            fail_msg("'%.*s': controller %d, bridge %d", (int)len, buf, ctl, br);
        accepted += ctl >= 0;
    }
    assert_true(accepted > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_payloads),
        cmocka_unit_test(test_state_random_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
