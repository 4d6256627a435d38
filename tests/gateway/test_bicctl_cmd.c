/*
 * test_bicctl_cmd - the command core of bicctl: value validation with the allowed range,
 * the gateway requests each command sends, error replies mapped to exit codes and
 * messages, and the seed's plain output rendered from gateway replies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bicctl_cmd.h"
#include "bicctl_group.h"

static bicctl_args_t s_args(void)
{
    bicctl_args_t a = {.dev = -1, .client = "bicctl"};
    return a;
}

/* Render CMD's replies (JSON texts) and return the output (caller frees) and exit code. */
static char *s_render(const char *cmdname, const bicctl_args_t *a, const char *const *texts,
                      size_t n, int *rc, char *err, size_t errlen)
{
    const bicctl_cmd_t *cmd = bicctl_cmd_find(cmdname);
    assert_non_null(cmd);
    cJSON *replies[8];
    for (size_t i = 0; i < n; i++) {
        replies[i] = cJSON_Parse(texts[i]);
        assert_non_null(replies[i]);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    err[0] = '\0';
    *rc = bicctl_render(cmd, a, replies, n, out, err, errlen);
    fclose(out);
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(replies[i]);
    return buf;
}

static void test_unknown_command(void **state)
{
    (void)state;
    assert_null(bicctl_cmd_find("frobnicate"));
    assert_null(bicctl_cmd_find(""));
    assert_null(bicctl_cmd_find(NULL));
    assert_null(bicctl_cmd_find("CVSET")); /* command names are exact, as in the seed */
    static const char *const seed[] = {
        "on",        "off",     "statusread", "outputread", "cvread",   "cvset",    "ccread",
        "ccset",     "dvread",  "dvset",      "dcread",     "dcset",    "vread",    "cread",
        "acvread",   "charge",  "discharge",  "dirread",    "tempread", "typeread", "dump",
        "faultread", "fanread", "init_mode",  "can_up",     "can_down", "info",     "devices",
        "status",    "eeprom",  "watch",      NULL};
    for (size_t i = 0; seed[i]; i++) {
        const bicctl_cmd_t *c = bicctl_cmd_find(seed[i]);
        assert_non_null(c);
        assert_string_equal(bicctl_cmd_name(c), seed[i]);
    }
}

static void test_value_validation(void **state)
{
    (void)state;
    char err[256];
    bicctl_args_t a = s_args();
    const bicctl_cmd_t *cvset = bicctl_cmd_find("cvset");

    assert_int_equal(bicctl_cmd_check_value(cvset, "2566", &a, err, sizeof err), 0);
    assert_true(a.has_value);
    assert_int_equal(a.value, 2566);
    assert_int_equal(bicctl_cmd_check_value(cvset, "0200", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "1000-11200")); /* 2.00 V is below every variant */

    /* not an integer: the seed's traceback becomes a message with the format */
    assert_int_equal(bicctl_cmd_check_value(cvset, "26.5", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "not an integer"));
    assert_non_null(strstr(err, "2566"));
    assert_int_equal(bicctl_cmd_check_value(cvset, "", &a, err, sizeof err), -1);
    assert_int_equal(bicctl_cmd_check_value(cvset, "12ab", &a, err, sizeof err), -1);
    assert_int_equal(bicctl_cmd_check_value(cvset, "99999999999999999999", &a, err, sizeof err),
                     -1);
    assert_int_equal(bicctl_cmd_check_value(cvset, NULL, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "needs a VALUE"));

    /* range: the union of all variants, with units */
    assert_int_equal(bicctl_cmd_check_value(cvset, "11201", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "allowed 1000-11200"));
    assert_non_null(strstr(err, "10.00-112.00 V"));
    assert_int_equal(bicctl_cmd_check_value(cvset, "-2566", &a, err, sizeof err), -1);
    const bicctl_cmd_t *dcset = bicctl_cmd_find("dcset");
    assert_int_equal(bicctl_cmd_check_value(dcset, "15301", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "25-15300"));
    assert_int_equal(bicctl_cmd_check_value(dcset, "15300", &a, err, sizeof err), 0);
    assert_int_equal(bicctl_cmd_check_value(bicctl_cmd_find("ccset"), "19800", &a, err, sizeof err),
                     0);

    /* commands without a value refuse one; charge points at the current setter */
    assert_int_equal(bicctl_cmd_check_value(bicctl_cmd_find("charge"), "500", &a, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "ccset"));
    assert_int_equal(bicctl_cmd_check_value(bicctl_cmd_find("vread"), "1", &a, err, sizeof err),
                     -1);
    assert_int_equal(bicctl_cmd_check_value(bicctl_cmd_find("vread"), NULL, &a, err, sizeof err),
                     0);

    /* interface names for can_up */
    const bicctl_cmd_t *up = bicctl_cmd_find("can_up");
    assert_int_equal(bicctl_cmd_check_value(up, NULL, &a, err, sizeof err), 0);
    assert_int_equal(bicctl_cmd_check_value(up, "can1", &a, err, sizeof err), 0);
    assert_int_equal(bicctl_cmd_check_value(up, "can0; reboot", &a, err, sizeof err), -1);
    assert_int_equal(bicctl_cmd_check_value(up, "averyveryverylongname", &a, err, sizeof err), -1);
    assert_int_equal(bicctl_cmd_check_value(up, "-x", &a, err, sizeof err), -1);
}

static char *s_json(const cJSON *o)
{
    char *t = cJSON_PrintUnformatted(o);
    assert_non_null(t);
    return t;
}

static void test_requests(void **state)
{
    (void)state;
    char err[256];
    bicctl_args_t a = s_args();

    /* cvset 2566 on device 3: a verified set of the raw value */
    a.dev = 3;
    const bicctl_cmd_t *cvset = bicctl_cmd_find("cvset");
    assert_int_equal(bicctl_cmd_check_value(cvset, "2566", &a, err, sizeof err), 0);
    cJSON *req = bicctl_next_request(cvset, &a, NULL, 0);
    char *t = s_json(req);
    assert_string_equal(t, "{\"v\":1,\"op\":\"set\",\"dev\":3,\"client\":\"bicctl\","
                           "\"reg\":\"VOUT_SET\",\"raw\":2566}");
    free(t);
    /* one request only */
    cJSON *replies[1] = {req};
    assert_null(bicctl_next_request(cvset, &a, replies, 1));
    cJSON_Delete(req);

    /* on / discharge: fixed raw values; no dev when not given */
    a = s_args();
    req = bicctl_next_request(bicctl_cmd_find("on"), &a, NULL, 0);
    t = s_json(req);
    assert_string_equal(t, "{\"v\":1,\"op\":\"set\",\"client\":\"bicctl\",\"reg\":\"OPERATION\","
                           "\"raw\":1}");
    free(t);
    cJSON_Delete(req);
    req = bicctl_next_request(bicctl_cmd_find("discharge"), &a, NULL, 0);
    t = s_json(req);
    assert_non_null(strstr(t, "\"reg\":\"DIRECTION_CTRL\",\"raw\":1"));
    free(t);
    cJSON_Delete(req);

    /* fanread reads both fans in one get */
    req = bicctl_next_request(bicctl_cmd_find("fanread"), &a, NULL, 0);
    t = s_json(req);
    assert_non_null(strstr(t, "\"op\":\"get\""));
    assert_non_null(strstr(t, "\"regs\":[\"READ_FAN_SPEED_1\",\"READ_FAN_SPEED_2\"]"));
    free(t);
    cJSON_Delete(req);

    /* init_mode is the gateway's commissioning op, with the client name */
    a.client = "tester";
    req = bicctl_next_request(bicctl_cmd_find("init_mode"), &a, NULL, 0);
    t = s_json(req);
    assert_string_equal(t, "{\"v\":1,\"op\":\"init\",\"client\":\"tester\"}");
    free(t);
    cJSON_Delete(req);

    /* dump: a get of six registers, then the eeprom counters */
    a = s_args();
    const bicctl_cmd_t *dump = bicctl_cmd_find("dump");
    cJSON *r0 = bicctl_next_request(dump, &a, NULL, 0);
    assert_non_null(r0);
    cJSON *r1 = bicctl_next_request(dump, &a, &r0, 1);
    t = s_json(r1);
    assert_non_null(strstr(t, "\"op\":\"eeprom\""));
    free(t);
    cJSON *both[2] = {r0, r1};
    assert_null(bicctl_next_request(dump, &a, both, 2));
    cJSON_Delete(r0);
    cJSON_Delete(r1);

    /* status: info, then one get per online device (offline ones are shown from info) */
    const bicctl_cmd_t *status = bicctl_cmd_find("status");
    cJSON *info = cJSON_Parse("{\"v\":1,\"ok\":true,\"devices\":["
                              "{\"dev\":0,\"online\":true},{\"dev\":1,\"online\":false},"
                              "{\"dev\":5,\"online\":true}]}");
    req = bicctl_next_request(status, &a, NULL, 0);
    t = s_json(req);
    assert_string_equal(t, "{\"v\":1,\"op\":\"info\",\"client\":\"bicctl\"}");
    free(t);
    cJSON_Delete(req);
    cJSON *rs[3] = {info, NULL, NULL};
    req = bicctl_next_request(status, &a, rs, 1);
    t = s_json(req);
    assert_non_null(strstr(t, "\"dev\":0"));
    free(t);
    rs[1] = req;
    cJSON *req2 = bicctl_next_request(status, &a, rs, 2);
    t = s_json(req2);
    assert_non_null(strstr(t, "\"dev\":5"));
    free(t);
    rs[2] = req2;
    assert_null(bicctl_next_request(status, &a, rs, 3));
    cJSON_Delete(req);
    cJSON_Delete(req2);
    /* with --dev 5 only that device is read */
    a.dev = 5;
    req = bicctl_next_request(status, &a, rs, 1);
    t = s_json(req);
    assert_non_null(strstr(t, "\"dev\":5"));
    free(t);
    rs[1] = req;
    assert_null(bicctl_next_request(status, &a, rs, 2));
    cJSON_Delete(req);
    cJSON_Delete(info);

    /* local commands send nothing */
    assert_null(bicctl_next_request(bicctl_cmd_find("can_up"), &a, NULL, 0));
    assert_null(bicctl_next_request(bicctl_cmd_find("watch"), &a, NULL, 0));
}

static int s_check(const char *cmdname, const bicctl_args_t *a, const char *text, char *msg,
                   size_t n)
{
    cJSON *r = cJSON_Parse(text);
    assert_non_null(r);
    int rc = bicctl_reply_check(cmdname ? bicctl_cmd_find(cmdname) : NULL, a, r, msg, n);
    cJSON_Delete(r);
    return rc;
}

static void test_reply_errors(void **state)
{
    (void)state;
    char msg[512];
    bicctl_args_t a = s_args();
    assert_int_equal(s_check("vread", &a, "{\"v\":1,\"ok\":true}", msg, sizeof msg), 0);

    /* out of the device's range: exit 4 with the range in the command's units */
    a.has_value = true;
    a.value = 3000;
    assert_int_equal(s_check("cvset", &a,
                             "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"out_of_range\","
                             "\"message\":\"VOUT_SET 30 V outside 19-28 V\",\"min\":19.0,"
                             "\"max\":28.0,\"unit\":\"V\"}}",
                             msg, sizeof msg),
                     BICCTL_EXIT_REFUSED);
    assert_non_null(strstr(msg, "3000"));
    assert_non_null(strstr(msg, "allowed 1900-2800"));
    assert_non_null(strstr(msg, "19.00-28.00 V"));

    /* lease held by another client */
    assert_int_equal(s_check("on", &a,
                             "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"lease_held\","
                             "\"message\":\"controlled by charge-ctl\",\"holder\":\"charge-ctl\","
                             "\"expires_in_s\":8.5}}",
                             msg, sizeof msg),
                     BICCTL_EXIT_REFUSED);
    assert_non_null(strstr(msg, "controlled by charge-ctl"));

    /* device errors: exit 3 with the code and the gateway's message */
    assert_int_equal(s_check("vread", &a,
                             "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"device_offline\","
                             "\"message\":\"device 0 does not answer\"}}",
                             msg, sizeof msg),
                     BICCTL_EXIT_DEVICE);
    assert_non_null(strstr(msg, "device_offline"));
    assert_non_null(strstr(msg, "does not answer"));
    assert_int_equal(s_check("cvset", &a,
                             "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"verify_failed\","
                             "\"message\":\"wrote 2566, read 2500\"}}",
                             msg, sizeof msg),
                     BICCTL_EXIT_DEVICE);

    /* protocol trouble is the gateway's: exit 2 */
    assert_int_equal(s_check("vread", &a,
                             "{\"ok\":false,\"error\":{\"code\":\"bad_reply\",\"message\":\"x\"}}",
                             msg, sizeof msg),
                     BICCTL_EXIT_GATEWAY);
    assert_int_equal(s_check("vread", &a, "{\"v\":2,\"ok\":true}", msg, sizeof msg),
                     BICCTL_EXIT_GATEWAY);
    assert_int_equal(s_check("vread", &a, "[1,2]", msg, sizeof msg), BICCTL_EXIT_GATEWAY);
    assert_int_equal(s_check("vread", &a, "{\"v\":1,\"ok\":false}", msg, sizeof msg),
                     BICCTL_EXIT_GATEWAY);

    assert_int_equal(bicctl_exit_for_code("unknown_op"), BICCTL_EXIT_GATEWAY);
    /* what the gateway still finds wrong in a request came from the user */
    assert_int_equal(s_check("vread", &a,
                             "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"bad_request\","
                             "\"message\":\"'dev' is required when the gateway has 2 devices\"}}",
                             msg, sizeof msg),
                     BICCTL_EXIT_USAGE);
    assert_non_null(strstr(msg, "--dev"));
    assert_int_equal(bicctl_exit_for_code("timeout"), BICCTL_EXIT_DEVICE);
    assert_int_equal(bicctl_exit_for_code("not_supported"), BICCTL_EXIT_DEVICE);
    assert_int_equal(bicctl_exit_for_code("no_lease"), BICCTL_EXIT_REFUSED);
    assert_int_equal(bicctl_exit_for_code(NULL), BICCTL_EXIT_GATEWAY);
}

static void test_render_seed_output(void **state)
{
    (void)state;
    char err[256];
    int rc;
    bicctl_args_t a = s_args();

    /* cread: READ_IOUT is signed (the seed's "> 20000" hack is gone) */
    const char *cread[] = {"{\"v\":1,\"ok\":true,\"dev\":0,\"values\":{\"READ_IOUT\":"
                           "{\"value\":-12.3,\"unit\":\"A\",\"raw\":64306}}}"};
    char *out = s_render("cread", &a, cread, 1, &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "-1230\n");
    free(out);
    /* already sign-extended raw is taken as is */
    const char *cread2[] = {"{\"v\":1,\"ok\":true,\"values\":{\"READ_IOUT\":{\"raw\":-1230}}}"};
    out = s_render("cread", &a, cread2, 1, &rc, err, sizeof err);
    assert_string_equal(out, "-1230\n");
    free(out);
    /* tempread below zero */
    const char *temp[] = {"{\"v\":1,\"ok\":true,\"values\":{\"READ_TEMPERATURE_1\":"
                          "{\"value\":-5.0,\"raw\":65486}}}"};
    out = s_render("tempread", &a, temp, 1, &rc, err, sizeof err);
    assert_string_equal(out, "-50\n");
    free(out);
    /* voltages are not sign-extended */
    const char *vout[] = {"{\"v\":1,\"ok\":true,\"values\":{\"READ_VOUT\":{\"raw\":40000}}}"};
    out = s_render("vread", &a, vout, 1, &rc, err, sizeof err);
    assert_string_equal(out, "40000\n");
    free(out);

    /* statusread: the manual's bit positions; 0x22 = DC_OK + INITIAL_STATE (ready) */
    const char *st[] = {"{\"v\":1,\"ok\":true,\"values\":{\"SYSTEM_STATUS\":{\"raw\":34}}}"};
    out = s_render("statusread", &a, st, 1, &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "Current Device is Slave\n"
                             "Secondary DD output Status NORMAL\n"
                             "Primary PFC OFF oder abnormal\n"
                             "Active Dummy Load off / not_supported\n"
                             "NOT in initialization status\n"
                             "EEPROM data access normal\n");
    free(out);
    /* EEPER is bit 6: 0x40 alone is an EEPROM error, not a dummy-load flag */
    const char *st2[] = {"{\"v\":1,\"ok\":true,\"values\":{\"SYSTEM_STATUS\":{\"raw\":64}}}"};
    out = s_render("statusread", &a, st2, 1, &rc, err, sizeof err);
    assert_non_null(strstr(out, "EEPROM data access error"));
    assert_non_null(strstr(out, "Device in initialization status"));
    free(out);

    /* faultread: OTP (bit 1) and AC fail (bit 5) */
    const char *fault[] = {"{\"v\":1,\"ok\":true,\"values\":{\"FAULT_STATUS\":{\"raw\":34}}}"};
    out = s_render("faultread", &a, fault, 1, &rc, err, sizeof err);
    /* cbic2200.py's lines, word for word: the changes a fresh process sees, in bit order,
     * then its dictionary in its order. */
    assert_string_equal(out, "fault state changed can = 0 cnt:0\n"
                             "fault state changed otp = 1 cnt:1\n"
                             "fault state changed acRange = 1 cnt:1\n"
                             "{'active': 0, 'cnt': 0, 'desc': 'fanspeed abnormal'}\n"
                             "{'active': 1, 'cnt': 1, 'desc': 'over temperature protection'}\n"
                             "{'active': 0, 'cnt': 0, 'desc': 'internal hi temperature "
                             "protection'}\n"
                             "{'active': 0, 'cnt': 0, 'desc': 'over voltage protection'}\n"
                             "{'active': 0, 'cnt': 0, 'desc': 'over voltage protection'}\n"
                             "{'active': 0, 'cnt': 0, 'desc': 'over current protection'}\n"
                             "{'active': 0, 'cnt': 0, 'desc': 'short circuit protection'}\n"
                             "{'active': 1, 'cnt': 1, 'desc': 'ac grid range'}\n"
                             "{'active': 0, 'cnt': 0, 'desc': 'dc off'}\n"
                             "{'active': 0, 'cnt': 0, 'desc': 'eeprom fault'}\n"
                             "{'active': 0, 'cnt': 0, 'desc': 'can-com error / read-tmo'}\n");
    free(out);
    /* --table: one line per fault. */
    a.table = true;
    out = s_render("faultread", &a, fault, 1, &rc, err, sizeof err);
    assert_non_null(strstr(out, "otp      1  over temperature protection\n"));
    assert_non_null(strstr(out, "acRange  1  ac grid range\n"));
    assert_non_null(strstr(out, "fan      0  fanspeed abnormal\n"));
    free(out);
    a.table = false;

    /* fanread and typeread */
    const char *fan[] = {"{\"v\":1,\"ok\":true,\"values\":{\"READ_FAN_SPEED_1\":{\"raw\":1200},"
                         "\"READ_FAN_SPEED_2\":{\"raw\":1300}}}"};
    out = s_render("fanread", &a, fan, 1, &rc, err, sizeof err);
    assert_string_equal(out, "fan1:1200 fan2:1300\n");
    free(out);
    const char *type[] = {"{\"v\":1,\"ok\":true,\"values\":{\"MFR_MODEL_B0B5\":{\"value\":"
                          "\"BIC-22\"},\"MFR_MODEL_B6B11\":{\"value\":\"00-24 \"}}}"};
    out = s_render("typeread", &a, type, 1, &rc, err, sizeof err);
    assert_string_equal(out, "BIC-2200-24 \n");
    free(out);

    /* a register slot with an error: exit code of the error, nothing printed */
    const char *nofan[] = {"{\"v\":1,\"ok\":true,\"values\":{\"READ_FAN_SPEED_1\":{\"error\":"
                           "{\"code\":\"not_supported\",\"message\":\"old firmware\"}},"
                           "\"READ_FAN_SPEED_2\":{\"raw\":1}}}"};
    out = s_render("fanread", &a, nofan, 1, &rc, err, sizeof err);
    assert_int_equal(rc, BICCTL_EXIT_DEVICE);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "not_supported"));
    free(out);
    a.json = true;
    out = s_render("fanread", &a, nofan, 1, &rc, err, sizeof err);
    assert_int_equal(rc, BICCTL_EXIT_DEVICE);
    free(out);
    a.json = false;

    /* dump in the seed's dictionary format; firmRev from the first two revision bytes */
    const char *dump[] = {
        "{\"v\":1,\"ok\":true,\"dev\":0,\"values\":{"
        "\"MFR_MODEL_B0B5\":{\"value\":\"BIC-22\"},\"MFR_MODEL_B6B11\":{\"value\":\"00-24 \"},"
        "\"MFR_REVISION_B0B5\":{\"raw\":\"0E0DFFFFFFFF\"},\"SYSTEM_CONFIG\":{\"raw\":1025},"
        "\"BIDIRECTIONAL_CONFIG\":{\"raw\":1},\"MFR_DATE_B0B5\":{\"value\":\"230512\"}}}",
        "{\"v\":1,\"ok\":true,\"dev\":0,\"policy\":\"eep_off\",\"writes_total\":17}"};
    out = s_render("dump", &a, dump, 2, &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "dev-info:{'modelName': 'BIC-2200-24 ', 'firmRev': '0xd0e', "
                             "'sysCfg': '0x401', 'sysCfgBDir': '0x1', 'manDate': '230512', "
                             "'cntWrite': 17}\n");
    free(out);
    a.json = true;
    out = s_render("dump", &a, dump, 2, &rc, err, sizeof err);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "firmRev")->valuestring, "0xd0e");
    assert_int_equal(cJSON_GetObjectItem(j, "cntWrite")->valueint, 17);
    cJSON_Delete(j);
    free(out);
    a.json = false;

    /* writes print nothing; --json prints the gateway's result without the envelope */
    const char *set[] = {"{\"v\":1,\"ok\":true,\"id\":7,\"dev\":0,\"reg\":\"VOUT_SET\","
                         "\"value\":25.66,\"raw\":2566,\"written\":true,\"deferred\":false}"};
    out = s_render("cvset", &a, set, 1, &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "");
    free(out);
    a.json = true;
    out = s_render("cvset", &a, set, 1, &rc, err, sizeof err);
    assert_string_equal(out, "{\"dev\":0,\"reg\":\"VOUT_SET\",\"value\":25.66,\"raw\":2566,"
                             "\"written\":true,\"deferred\":false}\n");
    free(out);
}

static void test_render_views(void **state)
{
    (void)state;
    char err[256];
    int rc;
    bicctl_args_t a = s_args();
    const char *info =
        "{\"v\":1,\"ok\":true,\"gateway\":{\"version\":\"0.1.0\",\"transport\":\"slcan:/x\","
        "\"bus\":\"up\",\"uptime_s\":5},\"devices\":[{\"dev\":0,\"online\":true,"
        "\"model\":\"BIC-2200-24\",\"firmware\":{\"raw\":\"0E0DFFFFFFFF\",\"mcu\":[\"R01.4\","
        "\"R01.3\"]},\"mode\":\"battery\",\"mode_pending\":null,\"can_ctrl\":true,"
        "\"caps\":{\"fans\":true,\"eep_off\":true},\"limits\":{\"vout_v\":[19.0,28.0],"
        "\"iout_a\":[0.9,90.0],\"rev_vout_v\":[19.0,28.0],\"rev_iout_a\":[0.9,76.5]},"
        "\"eeprom\":{\"policy\":\"eep_off\",\"writes_total\":3,\"writes\":{\"VOUT_SET\":3},"
        "\"pending\":{}},\"lease\":{\"holder\":\"charge-ctl\",\"expires_in_s\":8.5}},"
        "{\"dev\":1,\"online\":false,\"model\":\"BIC-2200-48\"}]}";
    const char *get =
        "{\"v\":1,\"ok\":true,\"dev\":0,\"values\":{\"READ_VOUT\":{\"value\":26.41},"
        "\"READ_IOUT\":{\"value\":-12.3},\"READ_VIN\":{\"value\":231.0},"
        "\"READ_TEMPERATURE_1\":{\"value\":31.2},\"READ_FAN_SPEED_1\":{\"error\":{\"code\":"
        "\"timeout\",\"message\":\"no reply\"}},\"READ_FAN_SPEED_2\":{\"value\":1300},"
        "\"OPERATION\":{\"value\":1,\"raw\":1},\"DIRECTION_CTRL\":{\"value\":1,\"raw\":1},"
        "\"VOUT_SET\":{\"value\":27.6},\"IOUT_SET\":{\"value\":0.9},"
        "\"REVERSE_VOUT_SET\":{\"value\":24.0},\"REVERSE_IOUT_SET\":{\"value\":12.3},"
        "\"FAULT_STATUS\":{\"raw\":2},\"SYSTEM_STATUS\":{\"raw\":34}}}";
    const char *status[] = {info, get};
    char *out = s_render("status", &a, status, 2, &rc, err, sizeof err);
    /* device 1 is offline: shown, and the exit code says so */
    assert_int_equal(rc, BICCTL_EXIT_DEVICE);
    assert_non_null(strstr(err, "device 1 is offline"));
    assert_non_null(strstr(out, "BIC-2200-24, online"));
    assert_non_null(strstr(out, "R01.4/R01.3"));
    assert_non_null(strstr(out, "26.41 V  -12.30 A  -324.8 W (discharging)"));
    assert_non_null(strstr(out, "output        on, direction discharge"));
    assert_non_null(strstr(out, "n/a (not reported"));
    assert_non_null(strstr(out, "faults        otp"));
    assert_non_null(strstr(out, "held by charge-ctl"));
    assert_non_null(strstr(out, "policy eep_off, 3 persisted writes (VOUT_SET 3)"));
    assert_non_null(strstr(out, "charge 19.00-28.00 V 0.90-90.00 A"));
    assert_non_null(strstr(out, "BIC-2200-48, OFFLINE"));
    free(out);

    /* --dev 0: the online device only, exit 0 */
    a.dev = 0;
    out = s_render("status", &a, status, 2, &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_null(strstr(out, "BIC-2200-48"));
    free(out);
    /* --dev 9: the gateway knows no such device */
    a.dev = 9;
    out = s_render("status", &a, status, 1, &rc, err, sizeof err);
    assert_int_equal(rc, BICCTL_EXIT_DEVICE);
    assert_non_null(strstr(err, "no device 9"));
    free(out);

    a = s_args();
    const char *infos[] = {info};
    out = s_render("info", &a, infos, 1, &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "bic-can-gateway 0.1.0, slcan:/x, bus up"));
    assert_non_null(strstr(out, "capabilities  fans yes, EEP_OFF yes"));
    free(out);

    const char *devs[] = {"{\"v\":1,\"ok\":true,\"devices\":[{\"dev\":0,\"online\":true,"
                          "\"model\":\"BIC-2200-24\"},{\"dev\":3,\"online\":false}]}"};
    out = s_render("devices", &a, devs, 1, &rc, err, sizeof err);
    assert_string_equal(out, "0 BIC-2200-24 online\n3 unknown offline\n");
    free(out);

    const char *ee[] = {"{\"v\":1,\"ok\":true,\"dev\":0,\"policy\":\"budget\","
                        "\"min_interval_s\":79,\"writes_total\":5,\"writes\":{\"IOUT_SET\":5},"
                        "\"pending\":{\"IOUT_SET\":12.4}}"};
    out = s_render("eeprom", &a, ee, 1, &rc, err, sizeof err);
    assert_non_null(strstr(out, "at most one persisted write per 79 s"));
    assert_non_null(strstr(out, "writes total  5\n"));
    assert_non_null(strstr(out, "pending       IOUT_SET 12.4\n"));
    free(out);

    const char *init[] = {"{\"v\":1,\"ok\":true,\"dev\":0,\"steps\":[\"can_ctrl: set\","
                          "\"eep_off: not supported\",\"battery_mode: set\"],\"eep_off\":false,"
                          "\"power_cycle_needed\":true}"};
    out = s_render("init_mode", &a, init, 1, &rc, err, sizeof err);
    assert_string_equal(out, "can_ctrl: set\neep_off: not supported\nbattery_mode: set\n"
                             "need repowering: switch the AC supply off and on to activate "
                             "battery mode\ninit_mode done\n");
    free(out);
}

static char *s_pub(const char *topic, const char *json, int dev, bool js, int *printed)
{
    cJSON *m = cJSON_Parse(json);
    assert_non_null(m);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    *printed = bicctl_render_pub(topic, m, dev, js, out);
    fclose(out);
    cJSON_Delete(m);
    return buf;
}

static void test_render_pub(void **state)
{
    (void)state;
    int printed;
    const char *tel = "{\"v\":1,\"dev\":2,\"ts_ms\":1732960000123,\"online\":true,"
                      "\"dc_v\":26.41,\"dc_a\":-12.3,\"dc_w\":-324.8,\"ac_v\":231.0,"
                      "\"temp_c\":31.2,\"operation\":1,\"direction\":\"discharge\","
                      "\"fault\":{\"otp\":true},\"lease\":null}";
    char *out = s_pub("tel/2", tel, -1, false, &printed);
    assert_int_equal(printed, 1);
    assert_non_null(strstr(out, " dev 2 26.41 V -12.30 A -324.8 W AC 231.0 V 31.2 degC "
                                "output on discharge faults otp\n"));
    free(out);
    /* another device is filtered out, also one whose number only starts the same */
    out = s_pub("tel/2", tel, 1, false, &printed);
    assert_int_equal(printed, 0);
    free(out);
    out = s_pub("tel/12", tel, 1, false, &printed);
    assert_int_equal(printed, 0);
    free(out);
    out = s_pub("tel/2", tel, 2, true, &printed);
    assert_int_equal(printed, 1);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "topic")->valuestring, "tel/2");
    cJSON_Delete(j);
    free(out);
    out = s_pub("evt/0", "{\"v\":1,\"dev\":0,\"ts_ms\":1,\"event\":\"fault_on\",\"fault\":\"otp\"}",
                -1, false, &printed);
    assert_non_null(strstr(out, " dev 0 event fault_on fault=otp\n"));
    free(out);
    out = s_pub("tel/0", "{\"v\":1,\"dev\":0,\"online\":false}", -1, false, &printed);
    assert_non_null(strstr(out, "dev 0 OFFLINE"));
    free(out);
    out = s_pub("other", "{\"v\":1}", -1, false, &printed);
    assert_int_equal(printed, 0);
    free(out);
}

/* Replies a broken or future gateway might send: every command renders them without a
 * crash, and a read that finds no usable value fails with a message instead of printing. */
static void test_render_malformed(void **state)
{
    (void)state;
    static const char *const names[] = {
        "on",      "outputread", "cvread", "cvset",      "cread",     "tempread",
        "fanread", "typeread",   "dump",   "statusread", "faultread", "init_mode",
        "info",    "devices",    "status", "eeprom",     NULL};
    static const char *const bodies[] = {
        "{\"v\":1,\"ok\":true}",
        "{\"v\":1,\"ok\":true,\"values\":[]}",
        "{\"v\":1,\"ok\":true,\"values\":{\"READ_VOUT\":7}}",
        "{\"v\":1,\"ok\":true,\"values\":{\"VOUT_SET\":{\"raw\":\"zz\"},\"READ_IOUT\":{}}}",
        "{\"v\":1,\"ok\":true,\"values\":{\"OPERATION\":{\"raw\":1e300},"
        "\"MFR_MODEL_B0B5\":{\"value\":5},\"SYSTEM_STATUS\":{\"error\":7}}}",
        "{\"v\":1,\"ok\":true,\"devices\":\"x\",\"steps\":{},\"eeprom\":[1]}",
        "{\"v\":1,\"ok\":true,\"devices\":[1,null,{\"dev\":\"0\"},{\"dev\":0,"
        "\"online\":true,\"limits\":{\"vout_v\":[\"a\"]},\"firmware\":7,\"lease\":[],"
        "\"eeprom\":{\"writes\":[1,2],\"pending\":\"x\"}}]}",
        NULL};
    char err[256];
    for (size_t i = 0; names[i]; i++) {
        for (size_t k = 0; bodies[k]; k++) {
            for (int js = 0; js < 2; js++) {
                bicctl_args_t a = s_args();
                a.json = js;
                a.has_value = true;
                a.value = 2566;
                const char *texts[3] = {bodies[k], bodies[k], bodies[k]};
                int rc = -1;
                char *out = s_render(names[i], &a, texts, 3, &rc, err, sizeof err);
                assert_true(rc >= 0 && rc <= 4);
                if (rc != 0)
                    assert_true(strlen(err) > 0);
                free(out);
            }
        }
    }
    /* reads that cannot find their value fail instead of printing a made-up number */
    bicctl_args_t a = s_args();
    int rc;
    const char *empty[] = {"{\"v\":1,\"ok\":true,\"values\":{}}"};
    char *out = s_render("vread", &a, empty, 1, &rc, err, sizeof err);
    assert_int_equal(rc, BICCTL_EXIT_GATEWAY);
    assert_string_equal(out, "");
    free(out);

    /* watch: garbage messages print nothing or a line, never crash */
    static const char *const pubs[] = {"{}", "{\"online\":true,\"fault\":7,\"lease\":\"x\"}",
                                       "{\"event\":5,\"x\":[1,{\"y\":null}]}", NULL};
    static const char *const topics[] = {"tel/0", "evt/0",           "gw", "tel/",
                                         "tel/x", "evt/99999999999", NULL};
    for (size_t i = 0; pubs[i]; i++)
        for (size_t k = 0; topics[k]; k++) {
            int printed;
            char *o = s_pub(topics[k], pubs[i], -1, false, &printed);
            assert_true(printed == 0 || printed == 1);
            free(o);
            o = s_pub(topics[k], pubs[i], 0, true, &printed);
            free(o);
        }
}

/* A device of a status reply held by HOLDER, charging at SET A (or off), with its get reply. */
static void s_group_dev(char *info, size_t n1, char *get, size_t n2, int dev, const char *holder,
                        double set)
{
    snprintf(info, n1, "{\"dev\":%d,\"online\":true,\"model\":\"BIC-2200-24\",\"lease\":%s%s%s}",
             dev, holder ? "{\"holder\":\"" : "null", holder ? holder : "", holder ? "\"}" : "");
    snprintf(get, n2,
             "{\"v\":1,\"ok\":true,\"dev\":%d,\"values\":{\"READ_VOUT\":{\"value\":26.5},"
             "\"READ_IOUT\":{\"value\":%g},\"OPERATION\":{\"value\":%d},"
             "\"DIRECTION_CTRL\":{\"value\":0},\"IOUT_SET\":{\"value\":%g},"
             "\"REVERSE_IOUT_SET\":{\"value\":0.9}}}",
             dev, set, set > 0, set > 0 ? set : 0.9);
}

static void test_status_groups(void **state)
{
    (void)state;
    int x = -1;
    char inst[48];
    /* the names a group controller's leases carry, and others */
    assert_true(bicctl_group_holder("charge-ctl-0-4242", &x, inst, sizeof inst));
    assert_int_equal(x, 0);
    assert_string_equal(inst, "charge-ctl-0-4242");
    assert_true(bicctl_group_holder("charge-ctl-12-77-u3", &x, inst, sizeof inst));
    assert_int_equal(x, 12);
    assert_string_equal(inst, "charge-ctl-12-77");
    /* a device of a group over several gateways, on the controller's gateway 1 */
    assert_true(bicctl_group_holder("charge-ctl-0-77-u0g1", &x, inst, sizeof inst));
    assert_int_equal(x, 0);
    assert_string_equal(inst, "charge-ctl-0-77");
    assert_false(bicctl_group_holder("charge-ctl-0-77-u0g", &x, inst, sizeof inst));
    assert_false(bicctl_group_holder("charge-ctl-0-77-u0g8", &x, inst, sizeof inst));
    assert_false(bicctl_group_holder("charge-ctl-0-77-u0g1x", &x, inst, sizeof inst));
    const char *bad[] = {"bicctl",          "charge-ctl",          "charge-ctl-0",
                         "charge-ctl-0-",   "charge-ctl-68-1",     "charge-ctl-0-0",
                         "charge-ctl-0-1-", "charge-ctl-0-1-u",    "charge-ctl-0-1-u68",
                         "charge-ctl-0-1x", "charge-ctl-0-1-u2-x", "charge-ctl-a-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(bicctl_group_holder(bad[i], &x, inst, sizeof inst));
    assert_false(bicctl_group_holder(NULL, &x, inst, sizeof inst));

    /* devices 0 and 2 held by one controller's group, 1 by a person, 3 by a single
     * controller: one group, devices 0 and 2 */
    char d[4][200], g[4][400];
    s_group_dev(d[0], sizeof d[0], g[0], sizeof g[0], 0, "charge-ctl-0-4242", 15);
    s_group_dev(d[1], sizeof d[1], g[1], sizeof g[1], 1, "bicctl", 0);
    s_group_dev(d[2], sizeof d[2], g[2], sizeof g[2], 2, "charge-ctl-0-4242-u2", 0);
    s_group_dev(d[3], sizeof d[3], g[3], sizeof g[3], 3, "charge-ctl-3-99", 10);
    char info[1200];
    snprintf(info, sizeof info, "{\"v\":1,\"ok\":true,\"devices\":[%s,%s,%s,%s]}", d[0], d[1], d[2],
             d[3]);
    const char *replies[] = {info, g[0], g[1], g[2], g[3]};
    char err[256];
    int rc;
    bicctl_args_t a = s_args();
    char *out = s_render("status", &a, replies, 5, &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\ngroup 0       charge-ctl-0-4242 drives devices 0, 2\n"
                                "  device 0    charge 15.00 A; output 26.50 V +15.00 A +397.5 W\n"
                                "  device 2    off; output 26.50 V +0.00 A +0.0 W\n"
                                "  together    +397.5 W\n"));
    assert_null(strstr(out, "group 3"));
    free(out);
    a.json = true;
    out = s_render("status", &a, replies, 5, &rc, err, sizeof err);
    assert_non_null(strstr(out, "\"groups\":[{\"controller\":0,\"holder\":\"charge-ctl-0-4242\","
                                "\"devices\":[{\"dev\":0,\"mode\":\"charge\",\"current_set_a\":15,"
                                "\"dc_v\":26.5,\"dc_a\":15,\"power_w\":397.5},{\"dev\":2,"
                                "\"mode\":\"off\",\"current_set_a\":null,"));
    free(out);
    /* device 2's registers could not be read (a full bus): shown without them, the group
     * still listed from the leases, and the exit code says so */
    a = s_args();
    const char *busy = "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":"
                       "\"no register of device 2 could be read (busy)\"}}";
    const char *partial[] = {info, g[0], g[1], busy, g[3]};
    out = s_render("status", &a, partial, 5, &rc, err, sizeof err);
    assert_int_equal(rc, BICCTL_EXIT_DEVICE);
    assert_non_null(strstr(err, "device 2: registers not read: busy"));
    assert_non_null(strstr(out, "group 0       charge-ctl-0-4242 drives devices 0, 2\n"));
    assert_non_null(strstr(out, "  device 2    n/a; output n/a\n"));
    free(out);
    assert_false(bicctl_reply_tolerated(bicctl_cmd_find("status"), 1)); /* the info */
    assert_true(bicctl_reply_tolerated(bicctl_cmd_find("status"), 2));
    assert_false(bicctl_reply_tolerated(bicctl_cmd_find("cvread"), 2));

    /* no group: an empty list, and no group block */
    a = s_args();
    const char *one[] = {info, g[0]};
    snprintf(info, sizeof info, "{\"v\":1,\"ok\":true,\"devices\":[%s]}", d[0]);
    out = s_render("status", &a, one, 2, &rc, err, sizeof err);
    assert_null(strstr(out, "group"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_command),    cmocka_unit_test(test_value_validation),
        cmocka_unit_test(test_requests),           cmocka_unit_test(test_reply_errors),
        cmocka_unit_test(test_render_seed_output), cmocka_unit_test(test_render_views),
        cmocka_unit_test(test_render_pub),         cmocka_unit_test(test_render_malformed),
        cmocka_unit_test(test_status_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
