/* test_sim_io.c - the adapter side of slcan (answers, BEL on errors and garbage, frames
 * only while open, bit rate) and the JSON control handler (every command, bad input). */
#include "sim_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <cJSON.h>

#include "sim_bus.h"
#include "sim_control.h"
#include "slcan_adapter.h"

/* ---- slcan adapter ---- */

typedef struct {
    can_frame_t frames[16];
    int n;
} s_sink_t;

static void s_sink(void *arg, const can_frame_t *fr)
{
    s_sink_t *s = arg;
    if (s->n < 16)
        s->frames[s->n++] = *fr;
}

/* Feeds text and returns what the adapter answered (static buffer). */
static const char *s_feed(slcan_adapter_t *a, const char *text, s_sink_t *sink)
{
    static char out[SLCAN_ADAPTER_OUT_MAX + 1];
    slcan_adapter_feed(a, (const uint8_t *)text, strlen(text), 0, s_sink, sink);
    size_t n;
    const uint8_t *o = slcan_adapter_output(a, &n);
    memcpy(out, o, n);
    out[n] = '\0';
    slcan_adapter_consume(a, n);
    return out;
}

static void test_adapter_handshake_and_frames(void **state)
{
    (void)state;
    slcan_adapter_t *a = slcan_adapter_new();
    s_sink_t sink = {0};
    /* A frame before the channel is open is refused. */
    assert_string_equal(s_feed(a, "T000C030022000\r", &sink), "\a");
    assert_int_equal(sink.n, 0);
    assert_string_equal(s_feed(a, "C\rS5\rO\r", &sink), "\r\r\r");
    assert_true(slcan_adapter_is_open(a));
    assert_int_equal(slcan_adapter_bitrate(a), 250000);
    /* Opening twice or changing the bit rate while open: BEL. */
    assert_string_equal(s_feed(a, "O\rS4\r", &sink), "\a\a");
    /* An extended frame: "Z" ack and onto the bus, byte for byte. */
    assert_string_equal(s_feed(a, "T000C030042000B80B\r", &sink), "Z\r");
    assert_int_equal(sink.n, 1);
    assert_true(sink.frames[0].ext);
    assert_int_equal(sink.frames[0].id, 0x000C0300);
    assert_int_equal(sink.frames[0].dlc, 4);
    uint8_t want[] = {0x20, 0x00, 0xB8, 0x0B};
    assert_memory_equal(sink.frames[0].data, want, 4);
    /* A standard frame gets "z". Split across reads. */
    assert_string_equal(s_feed(a, "t12", &sink), "");
    assert_string_equal(s_feed(a, "31AA\r", &sink), "z\r");
    assert_int_equal(sink.n, 2);
    assert_false(sink.frames[1].ext);
    /* Bus frames go to the host while open. */
    can_frame_t rep = t_frame(0x000C0200, 0x0020, 2, (const uint8_t[]){0x60, 0x09});
    assert_int_equal(slcan_adapter_bus_frame(a, &rep, 0), 1);
    size_t n;
    const uint8_t *o = slcan_adapter_output(a, &n);
    assert_int_equal(n, strlen("T000C020042000600\r") + 1);
    assert_memory_equal(o, "T000C0200420006009\r", n);
    slcan_adapter_consume(a, n);
    /* Version, serial, status. */
    assert_string_equal(s_feed(a, "V\rN\rF\r", &sink), "V1013\rNSIM0\rF00\r");
    /* Closed: no frames to the host. */
    assert_string_equal(s_feed(a, "C\r", &sink), "\r");
    assert_int_equal(slcan_adapter_bus_frame(a, &rep, 0), 0);
    slcan_adapter_output(a, &n);
    assert_int_equal(n, 0);
    slcan_adapter_stats_t st;
    slcan_adapter_stats(a, &st);
    assert_int_equal(st.frames_from_host, 2);
    assert_int_equal(st.frames_to_host, 1);
    assert_int_equal(st.not_open, 1);
    assert_int_equal(st.bel_sent, 3);
    slcan_adapter_destroy(&a);
    assert_null(a);
    slcan_adapter_destroy(NULL);
}

static void test_adapter_garbage_and_bitrate(void **state)
{
    (void)state;
    slcan_adapter_t *a = slcan_adapter_new();
    s_sink_t sink = {0};
    s_feed(a, "S5\rO\r", &sink);
    /* Garbage lines: BEL each, and the next valid line still works. */
    assert_string_equal(s_feed(a, "hello\r", &sink), "\a");
    assert_string_equal(s_feed(a, "T000C03002\r", &sink), "\a");     /* too short */
    assert_string_equal(s_feed(a, "TXYZC030022000\r", &sink), "\a"); /* bad hex */
    assert_string_equal(s_feed(a, "T000C03009200000000000000000000\r", &sink), "\a"); /* DLC 9 */
    char longline[200];
    memset(longline, 'T', sizeof longline - 2);
    longline[sizeof longline - 2] = '\r';
    longline[sizeof longline - 1] = '\0';
    assert_string_equal(s_feed(a, longline, &sink), "\a");
    assert_int_equal(sink.n, 0);
    assert_string_equal(s_feed(a, "T000C030022000\r", &sink), "Z\r");
    assert_int_equal(sink.n, 1);
    slcan_adapter_stats_t st;
    slcan_adapter_stats(a, &st);
    assert_true(st.garbage >= 3);
    assert_true(st.overlong >= 1);
    assert_int_equal(st.garbage + st.overlong, 5);
    /* Another bit rate: acknowledged, but nothing on a 250 kbit/s bus hears it. */
    s_feed(a, "C\rS6\rO\r", &sink);
    assert_string_equal(s_feed(a, "T000C030022000\r", &sink), "Z\r");
    assert_int_equal(sink.n, 1);
    slcan_adapter_stats(a, &st);
    assert_int_equal(st.bitrate_mismatch, 1);
    /* A bad bit-rate code, listen-only refusing frames, timestamps. */
    s_feed(a, "C\r", &sink);
    assert_string_equal(s_feed(a, "S9\r", &sink), "\a");
    assert_string_equal(s_feed(a, "S5\rZ1\rL\r", &sink), "\r\r\r");
    assert_string_equal(s_feed(a, "T000C030022000\r", &sink), "\a");
    s_feed(a, "C\rO\r", &sink);
    can_frame_t rep = t_frame(0x000C0200, 0x0000, 1, (const uint8_t[]){1});
    assert_int_equal(slcan_adapter_bus_frame(a, &rep, 1234), 1);
    size_t n;
    const uint8_t *o = slcan_adapter_output(a, &n);
    assert_memory_equal(o, "T000C0200300000104D2\r", n); /* timestamp 1234 ms */
    /* Reset forgets everything pending. */
    slcan_adapter_reset(a);
    slcan_adapter_output(a, &n);
    assert_int_equal(n, 0);
    assert_false(slcan_adapter_is_open(a));
    slcan_adapter_destroy(&a);
}

static void test_adapter_output_bounded(void **state)
{
    (void)state;
    slcan_adapter_t *a = slcan_adapter_new();
    s_sink_t sink = {0};
    s_feed(a, "S5\rO\r", &sink);
    can_frame_t rep = t_frame(0x000C0200, 0x0080, 6, (const uint8_t *)"MEANWE");
    int dropped = 0;
    for (int i = 0; i < 5000; i++)
        dropped += slcan_adapter_bus_frame(a, &rep, 0) < 0;
    assert_true(dropped > 0);
    size_t n;
    slcan_adapter_output(a, &n);
    assert_true(n <= SLCAN_ADAPTER_OUT_MAX);
    slcan_adapter_stats_t st;
    slcan_adapter_stats(a, &st);
    assert_int_equal(st.out_dropped, (uint64_t)dropped);
    slcan_adapter_destroy(&a);
}

/* ---- control ---- */

static cJSON *s_ctl(sim_bus_t *bus, const sim_control_env_t *env, const char *req, int64_t now)
{
    char *out = sim_control_handle(bus, env, req, strlen(req), now, now);
    assert_non_null(out);
    cJSON *j = cJSON_Parse(out);
    if (!j)
        fail_msg("reply is not JSON: %s", out);
    free(out);
    return j;
}

static bool s_ok(const cJSON *j)
{
    return cJSON_IsTrue(cJSON_GetObjectItem(j, "ok"));
}

static const char *s_errcode(const cJSON *j)
{
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    const cJSON *c = cJSON_GetObjectItem(e, "code");
    return cJSON_IsString(c) ? c->valuestring : "";
}

static double s_num(const cJSON *j, const char *path1, const char *path2)
{
    const cJSON *x = cJSON_GetObjectItem(j, path1);
    if (path2)
        x = cJSON_GetObjectItem(x, path2);
    if (!cJSON_IsNumber(x))
        fail_msg("%s.%s is not a number", path1, path2 ? path2 : "");
    return x->valuedouble;
}

static sim_bus_t *s_bus2(void)
{
    sim_bus_t *bus = sim_bus_new(NULL);
    bic_device_t *d = t_device("0:24:battery,canctrl,boot_ms=0", 0);
    sim_bus_add(bus, &d);
    d = t_device("3:48:fw=old", 0);
    sim_bus_add(bus, &d);
    return bus;
}

static void test_control_state_and_counters(void **state)
{
    (void)state;
    sim_bus_t *bus = s_bus2();
    cJSON *j = s_ctl(bus, NULL, "{\"cmd\":\"state\"}", SEC(1));
    assert_true(s_ok(j));
    cJSON *devs = cJSON_GetObjectItem(j, "devices");
    assert_int_equal(cJSON_GetArraySize(devs), 2);
    cJSON *d0 = cJSON_GetArrayItem(devs, 0);
    assert_true(s_num(d0, "addr", NULL) == 0);
    assert_true(s_num(d0, "variant", NULL) == 24);
    assert_string_equal(cJSON_GetObjectItem(d0, "mode")->valuestring, "battery");
    assert_true(s_num(d0, "registers", "VOUT_SET") == 2520);
    assert_true(s_num(d0, "eeprom", "BIDIRECTIONAL_CONFIG") == 1);
    assert_true(s_num(d0, "soc_pct", NULL) > 49.9);
    cJSON_Delete(j);
    j = s_ctl(bus, NULL, "{\"cmd\":\"state\",\"dev\":3}", SEC(1));
    devs = cJSON_GetObjectItem(j, "devices");
    assert_int_equal(cJSON_GetArraySize(devs), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(devs, 0), "fw")->valuestring, "old");
    cJSON_Delete(j);
    /* A write through the bus shows up in the counters. */
    can_frame_t f;
    bic_encode_write(bic_family_bic(), 0, 0x0020, 2700, &f);
    sim_bus_request(bus, &f, SEC(2));
    bic_encode_read(bic_family_bic(), 0, 0x0020, &f);
    sim_bus_request(bus, &f, SEC(2) + 5000); /* too soon: a pacing violation */
    j = s_ctl(bus, NULL, "{\"cmd\":\"counters\",\"dev\":0}", SEC(3));
    assert_true(s_ok(j));
    assert_true(s_num(j, "bus", "requests") == 2);
    assert_true(s_num(j, "bus", "pacing_violations") == 1);
    cJSON *w = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "devices"), 0),
                                   "eeprom_writes");
    assert_true(s_num(w, "VOUT_SET", NULL) == 1);
    cJSON_Delete(j);
    /* The frame log. */
    j = s_ctl(bus, NULL, "{\"cmd\":\"frames\",\"max\":2}", SEC(3));
    cJSON *fr = cJSON_GetObjectItem(j, "frames");
    assert_int_equal(cJSON_GetArraySize(fr), 2);
    cJSON *f0 = cJSON_GetArrayItem(fr, 0);
    assert_string_equal(cJSON_GetObjectItem(f0, "id")->valuestring, "0x000C0300");
    assert_string_equal(cJSON_GetObjectItem(f0, "data")->valuestring, "20008C0A");
    assert_string_equal(cJSON_GetObjectItem(f0, "dir")->valuestring, "rx");
    cJSON_Delete(j);
    sim_bus_destroy(&bus);
}

static void test_control_actions(void **state)
{
    (void)state;
    sim_bus_t *bus = s_bus2();
    bic_device_t *d0 = sim_bus_find(bus, 0);
    cJSON *j =
        s_ctl(bus, NULL, "{\"cmd\":\"fault\",\"dev\":0,\"name\":\"ovp\",\"on\":true}", SEC(1));
    assert_true(s_ok(j));
    cJSON_Delete(j);
    assert_true(bic_device_fault_active(d0, BIC_DEV_FAULT_OVP));
    assert_false(bic_device_fault_active(sim_bus_find(bus, 3), BIC_DEV_FAULT_OVP));
    j = s_ctl(bus, NULL, "{\"cmd\":\"fault\",\"dev\":0,\"name\":\"ovp\",\"on\":false}", SEC(2));
    cJSON_Delete(j);
    assert_true(bic_device_fault_active(d0, BIC_DEV_FAULT_OVP)); /* latched */
    j = s_ctl(bus, NULL, "{\"cmd\":\"power_cycle\",\"dev\":0}", SEC(3));
    assert_true(s_ok(j));
    cJSON_Delete(j);
    assert_false(bic_device_fault_active(d0, BIC_DEV_FAULT_OVP));
    j = s_ctl(bus, NULL, "{\"cmd\":\"ac\",\"on\":false}", SEC(4));
    cJSON_Delete(j);
    assert_false(bic_device_ac_on(d0));
    assert_false(bic_device_ac_on(sim_bus_find(bus, 3)));
    j = s_ctl(bus, NULL, "{\"cmd\":\"ac\",\"on\":true}", SEC(5));
    cJSON_Delete(j);
    assert_true(bic_device_ac_on(d0));
    j = s_ctl(bus, NULL, "{\"cmd\":\"battery\",\"dev\":3,\"soc\":81.5}", SEC(6));
    assert_true(s_ok(j));
    cJSON_Delete(j);
    assert_true(fabs(battery_soc_pct(bic_device_battery(sim_bus_find(bus, 3))) - 81.5) < 1e-9);
    j = s_ctl(bus, NULL, "{\"cmd\":\"remote\",\"dev\":0,\"on\":false}", SEC(7));
    cJSON_Delete(j);
    bic_device_state_t st;
    bic_device_get_state(d0, &st);
    assert_false(st.output_on);
    /* Bus and device options. */
    j = s_ctl(bus, NULL,
              "{\"cmd\":\"set\",\"reply_delay_us\":3000,\"drop_pct\":10,\"late_pct\":5,"
              "\"dup_pct\":1,\"pacing_drop\":true,\"range\":\"clamp\",\"boot_ms\":0}",
              SEC(8));
    assert_true(s_ok(j));
    assert_true(s_num(j, "options", "reply_delay_us") == 3000);
    cJSON_Delete(j);
    sim_bus_options_t o;
    sim_bus_get_options(bus, &o);
    assert_true(o.reply_delay_us == 3000 && o.drop_pct == 10 && o.late_pct == 5 && o.dup_pct == 1);
    assert_true(o.pacing_drop);
    assert_int_equal(bic_device_config(d0)->range, BIC_RANGE_CLAMP);
    sim_bus_destroy(&bus);
}

static void test_control_bad_input(void **state)
{
    (void)state;
    sim_bus_t *bus = s_bus2();
    struct {
        const char *req;
        const char *code;
    } bad[] = {
        {"", "bad_request"},
        {"not json", "bad_request"},
        {"[1,2]", "bad_request"},
        {"{}", "bad_request"},
        {"{\"cmd\":5}", "bad_request"},
        {"{\"cmd\":\"explode\"}", "unknown_cmd"},
        {"{\"cmd\":\"state\",\"dev\":9}", "unknown_device"},
        {"{\"cmd\":\"state\",\"dev\":64}", "bad_request"},
        {"{\"cmd\":\"state\",\"dev\":\"0\"}", "bad_request"},
        {"{\"cmd\":\"fault\",\"name\":\"fire\",\"on\":true}", "bad_request"},
        {"{\"cmd\":\"fault\",\"name\":\"otp\"}", "bad_request"},
        {"{\"cmd\":\"fault\",\"name\":\"otp\",\"on\":1}", "bad_request"},
        {"{\"cmd\":\"ac\"}", "bad_request"},
        {"{\"cmd\":\"battery\",\"soc\":101}", "bad_request"},
        {"{\"cmd\":\"battery\",\"soc\":\"full\"}", "bad_request"},
        {"{\"cmd\":\"set\",\"drop_pct\":101}", "bad_request"},
        {"{\"cmd\":\"set\",\"reply_delay_us\":-1}", "bad_request"},
        {"{\"cmd\":\"set\",\"range\":\"wrap\"}", "bad_request"},
        {"{\"cmd\":\"set\",\"pacing_drop\":\"yes\"}", "bad_request"},
        {"{\"cmd\":\"frames\",\"max\":0}", "bad_request"},
        {"{\"cmd\":\"household\"}", "not_available"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = sim_control_handle(bus, NULL, bad[i].req, strlen(bad[i].req), 0, 0);
        assert_non_null(out);
        cJSON *j = cJSON_Parse(out);
        if (!j || s_ok(j) || strcmp(s_errcode(j), bad[i].code) != 0)
            fail_msg("request '%s': got %s, expected error %s", bad[i].req, out, bad[i].code);
        const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message");
        assert_true(cJSON_IsString(m) && strlen(m->valuestring) > 5);
        cJSON_Delete(j);
        free(out);
    }
    /* Nothing changed on the way. */
    sim_bus_options_t o;
    sim_bus_get_options(bus, &o);
    assert_int_equal(o.drop_pct, 0);
    /* Oversized requests. */
    char *big = malloc(5000);
    memset(big, ' ', 4999);
    big[4999] = '\0';
    char *out = sim_control_handle(bus, NULL, big, 4999, 0, 0);
    assert_non_null(strstr(out, "too_large"));
    free(out);
    free(big);
    sim_bus_destroy(&bus);
}

static void test_control_household(void **state)
{
    (void)state;
    sim_bus_t *bus = s_bus2();
    char err[128];
    const char *csv = "t_s,load_w,pv_w\n0,1000,400\n";
    household_t *h = household_parse(csv, strlen(csv), "h.csv", err, sizeof err);
    sim_control_env_t env = {.household = h, .household_t_s = 30, .speed = 1};
    cJSON *j = s_ctl(bus, &env, "{\"cmd\":\"household\"}", SEC(1));
    assert_true(s_ok(j));
    double bat = s_num(j, "household", "battery_w");
    assert_true(s_num(j, "household", "load_w") == 1000);
    assert_true(fabs(s_num(j, "household", "meter_w") - (600 + bat)) < 0.02);
    cJSON_Delete(j);
    household_destroy(&h);
    sim_bus_destroy(&bus);
}

/* ---- random input: never a crash, never a malformed reply ---- */

static uint64_t s_rng = 0x1234567;
static uint32_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 11);
}

static void test_random_frames(void **state)
{
    (void)state;
    sim_bus_t *bus = sim_bus_new(NULL);
    bic_device_t *d = t_device("0:24:battery,canctrl,clamp", 0);
    sim_bus_add(bus, &d);
    d = t_device("63:96:fw=old", 0);
    sim_bus_add(bus, &d);
    int replies = 0;
    for (int i = 0; i < 200000; i++) {
        can_frame_t f;
        memset(&f, 0, sizeof f);
        uint32_t r = s_rand();
        /* Mostly plausible frames: our ids, known commands, any data. */
        f.ext = (r & 7) != 0;
        f.rtr = (r & 0x38) == 0;
        static const uint8_t addrs[] = {0, 63, 0xFF, 1, 7};
        f.id = (r & 0x40) ? 0x000C0300u | addrs[s_rand() % 5] : s_rand() & 0x1FFFFFFF;
        f.dlc = (uint8_t)(s_rand() % 9);
        for (int k = 0; k < 8; k++)
            f.data[k] = (uint8_t)s_rand();
        if (r & 0x80) {
            static const uint16_t cmds[] = {0x0000, 0x0020, 0x0030, 0x0040, 0x0060, 0x0061, 0x0070,
                                            0x0085, 0x00C0, 0x00C2, 0x0100, 0x0120, 0x0130, 0x0140};
            uint16_t c = cmds[s_rand() % (sizeof cmds / sizeof cmds[0])];
            f.data[0] = (uint8_t)c;
            f.data[1] = (uint8_t)(c >> 8);
        }
        int64_t now = (int64_t)i * 30000;
        int n = sim_bus_request(bus, &f, now);
        can_frame_t rep;
        while (sim_bus_take_reply(bus, now + 2000, &rep) == 1) {
            replies++;
            /* A reply answers a read (DLC 2) of this device, echoing the command. */
            assert_true(rep.ext && !rep.rtr);
            assert_int_equal(f.dlc, 2);
            assert_int_equal(rep.id, 0x000C0200u | (f.id & 0xFF));
            assert_memory_equal(rep.data, f.data, 2);
            bic_msg_t msg;
            assert_int_equal(bic_decode_reply(bic_family_bic(), &rep, &msg), BIC_OK);
        }
        (void)n;
    }
    assert_true(replies > 1000);
    /* The devices still hold sane values. */
    for (size_t k = 0; k < sim_bus_count(bus); k++) {
        bic_device_state_t st;
        bic_device_t *dev = sim_bus_device(bus, k);
        bic_device_step(dev, SEC(7000));
        bic_device_get_state(dev, &st);
        assert_true(isfinite(st.dc_a) && isfinite(st.dc_v) && isfinite(st.ac_w));
        assert_true(st.soc_pct >= 0 && st.soc_pct <= 100);
    }
    sim_bus_destroy(&bus);
}

static void test_random_bytes(void **state)
{
    (void)state;
    slcan_adapter_t *a = slcan_adapter_new();
    s_sink_t sink = {0};
    uint8_t buf[64];
    for (int i = 0; i < 20000; i++) {
        size_t n = s_rand() % sizeof buf;
        for (size_t k = 0; k < n; k++) {
            uint32_t r = s_rand();
            /* Bias toward slcan's alphabet so deeper states are reached. */
            static const char alpha[] = "TtRrOCSLZVNF0123456789ABCDEF\r\r\r";
            buf[k] = (r & 1) ? (uint8_t)alpha[(r >> 1) % (sizeof alpha - 1)] : (uint8_t)(r >> 8);
        }
        sink.n = 0;
        slcan_adapter_feed(a, buf, n, 0, s_sink, &sink);
        size_t out;
        slcan_adapter_output(a, &out);
        slcan_adapter_consume(a, out);
    }
    slcan_adapter_destroy(&a);

    /* Household CSV and control requests made of random bytes. */
    sim_bus_t *bus = sim_bus_new(NULL);
    bic_device_t *d = t_device("0:24", 0);
    sim_bus_add(bus, &d);
    for (int i = 0; i < 5000; i++) {
        size_t n = s_rand() % sizeof buf;
        for (size_t k = 0; k < n; k++) {
            static const char alpha[] = "{}[]\":,0123456789.-e cmdstaeflurbyoqpwnx_\n";
            uint32_t r = s_rand();
            buf[k] = (r & 3) ? (uint8_t)alpha[(r >> 2) % (sizeof alpha - 1)] : (uint8_t)(r >> 8);
        }
        char err[128];
        household_t *h = household_parse((const char *)buf, n, "r.csv", err, sizeof err);
        household_destroy(&h);
        char *out = sim_control_handle(bus, NULL, (const char *)buf, n, 0, 0);
        assert_non_null(out);
        cJSON *j = cJSON_Parse(out);
        assert_non_null(j);
        assert_true(cJSON_IsBool(cJSON_GetObjectItem(j, "ok")));
        cJSON_Delete(j);
        free(out);
    }
    sim_bus_destroy(&bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adapter_handshake_and_frames),
        cmocka_unit_test(test_adapter_garbage_and_bitrate),
        cmocka_unit_test(test_adapter_output_bounded),
        cmocka_unit_test(test_control_state_and_counters),
        cmocka_unit_test(test_control_actions),
        cmocka_unit_test(test_control_bad_input),
        cmocka_unit_test(test_control_household),
        cmocka_unit_test(test_random_frames),
        cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
