/*  Tests of the ini loader: every value type and its bounds, the messages a user sees
    (file, line, key, value, what is allowed), warnings for unknown keys, the cross-field
    rules, the seed's sample file and --check-config's exit codes.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "config_schema.h"

static char s_path[64];
static char s_err[8192];

//  Write TEXT to a fresh temporary file and load it; s_err holds the errors.
static config_t *load_text(const char *text)
{
    snprintf(s_path, sizeof s_path, "/tmp/bic-test-config-XXXXXX");
    int fd = mkstemp(s_path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    s_err[0] = '\0';
    config_t *cfg = config_load(s_path, s_err, sizeof s_err);
    return cfg;
}

static void done(config_t **cfg)
{
    config_destroy(cfg);
    unlink(s_path);
}

//  Load TEXT, expect failure, and expect every NEEDLE in the message.
static void expect_error(const char *text, const char *needle, ...)
{
    config_t *cfg = load_text(text);
    if (cfg)
        fail_msg("loaded although it should fail:\n%s", text);
    va_list ap;
    va_start(ap, needle);
    for (const char *n = needle; n; n = va_arg(ap, const char *))
        if (!strstr(s_err, n))
            fail_msg("error message lacks '%s':\n%s", n, s_err);
    va_end(ap);
    done(&cfg);
}

static config_t *expect_ok(const char *text)
{
    config_t *cfg = load_text(text);
    if (!cfg)
        fail_msg("did not load:\n%s\nerror:\n%s", text, s_err);
    return cfg;
}

static bool has_warning(const config_t *cfg, const char *needle)
{
    for (size_t i = 0; i < config_warning_count(cfg); i++)
        if (strstr(config_warning(cfg, i), needle))
            return true;
    return false;
}

#define DEVICE0                                                                                    \
    "[DEVICE]\nId/0/ChargeVoltage=2760\nId/0/DischargeVoltage=2500\n"                              \
    "Id/0/MaxChargeCurrent=2000\nId/0/MaxDischargeCurrent=1500\n"

static void test_defaults(void **state)
{
    config_t *cfg = expect_ok("# nothing set\n");
    assert_int_equal(config_int(cfg, "MQTT", "BrokerPort"), 1883);
    assert_string_equal(config_str(cfg, "MQTT", "TopicMain"), "haus/power/bat/bic2mqtt");
    assert_string_equal(config_str(cfg, "ALL", "TraceLevel"), "info");
    assert_string_equal(config_str(cfg, "GATEWAY", "ReqEndpoint"),
                        "ipc:///run/bic2mqtt/gateway.sock");
    assert_int_equal(config_int(cfg, "GATEWAY", "EepromWriteIntervalSec"), 79);
    assert_true(config_bool(cfg, "MQTT", "HaDiscovery"));
    assert_false(config_bool(cfg, "GATEWAY", "Discover"));
    assert_true(config_float(cfg, "CHARGE_CONTROL", "Id/%d/LoopGain", 0) == 0.5);
    assert_int_equal(config_int(cfg, "CHARGE_CONTROL", "Id/%d/Pid/MaxDischargePower", 3), -400);
    assert_string_equal(config_str(cfg, "CHARGE_CONTROL", "Id/%d/Type", 0), "PID");
    //  The seed talks to SocketCAN can0; so does a file without a Can key.
    assert_string_equal(config_str(cfg, "GATEWAY", "Can"), "socketcan:can0");
    assert_false(config_has(cfg, "MQTT", "BrokerPort"));
    assert_int_equal(config_line(cfg, "MQTT", "BrokerPort"), 0);
    assert_int_equal(config_ids(cfg, "DEVICE", NULL, 0), 0);
    assert_int_equal(config_warning_count(cfg), 0);
    done(&cfg);
}

static void test_values_and_case(void **state)
{
    config_t *cfg = expect_ok("[mqtt]\n"
                              "brokerport = 1884\n"
                              "TOPICMAIN = \" home/bat \"\n"
                              "HaDiscovery=no\n"
                              "[Device]\n"
                              "id/0/chargevoltage=2760\n"
                              "Id/0/DischargeVoltage=2500\n"
                              "Id/0/MaxChargeCurrent=0200\n"
                              "Id/0/MaxDischargeCurrent=1500\n"
                              "Id/0/type=bic2200-24can\n"
                              "[charge_control]\n"
                              "Id/0/Type=pid\n"
                              "Id/0/TopicPower=meter/power ; the grid meter\n"
                              "Id/0/Pid/P=0.3\n"
                              "Id/0/MeterUnit=kw\n");
    assert_int_equal(config_int(cfg, "MQTT", "BrokerPort"), 1884);
    assert_true(config_has(cfg, "mqtt", "brokerPort"));
    assert_int_equal(config_line(cfg, "MQTT", "BrokerPort"), 2);
    assert_string_equal(config_str(cfg, "MQTT", "TopicMain"), "home/bat");
    assert_false(config_bool(cfg, "MQTT", "HaDiscovery"));
    assert_int_equal(config_int(cfg, "DEVICE", "Id/%d/ChargeVoltage", 0), 2760);
    //  Decimal, not octal: the seed writes 0200 for 2.00 A.
    assert_int_equal(config_int(cfg, "DEVICE", "Id/%d/MaxChargeCurrent", 0), 200);
    assert_string_equal(config_str(cfg, "DEVICE", "Id/%d/Type", 0), "BIC2200-24CAN");
    assert_string_equal(config_str(cfg, "CHARGE_CONTROL", "Id/%d/Type", 0), "PID");
    assert_string_equal(config_str(cfg, "CHARGE_CONTROL", "Id/%d/TopicPower", 0), "meter/power");
    assert_true(config_float(cfg, "CHARGE_CONTROL", "Id/%d/Pid/P", 0) == 0.3);
    assert_string_equal(config_str(cfg, "CHARGE_CONTROL", "Id/%d/MeterUnit", 0), "kW");
    done(&cfg);
}

static void test_int_errors(void **state)
{
    expect_error("[MQTT]\nBrokerPort=70000\n", ":2: [MQTT] BrokerPort: '70000' is out of range",
                 "allowed: 1..65535", NULL);
    expect_error("\n[MQTT]\nBrokerPort=18x3\n", ":3: [MQTT] BrokerPort: '18x3' is not an integer",
                 NULL);
    expect_error("[MQTT]\nBrokerPort=\n", "'' is not an integer", NULL);
    expect_error("[MQTT]\nBrokerPort=1883.5\n", "is not an integer", NULL);
    expect_error("[MQTT]\nBrokerPort=99999999999999999999999\n", "is not an integer", NULL);
    expect_error("[GATEWAY]\nRetries=-1\n", "'-1' is out of range; allowed: 0..5", NULL);
    expect_error(DEVICE0 "Id/0/CanBitrate=500000\n", "CanBitrate: '500000'", "allowed: 250000",
                 NULL);
    //  The file name leads the message.
    expect_error("[MQTT]\nKeepAliveSec=1\n", s_path, NULL);
}

static void test_float_bool_enum_errors(void **state)
{
    expect_error("[CHARGE_CONTROL]\nId/0/Enable=0\nId/0/LoopGain=nan\n",
                 ":3: [CHARGE_CONTROL] Id/0/LoopGain: 'nan' is not a number", "allowed: 0.01..2",
                 NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/Enable=0\nId/0/LoopGain=3\n", "'3' is out of range", NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/Enable=0\nId/0/Pid/P=1,5\n", "is not a number", NULL);
    expect_error("[GATEWAY]\nDiscover=2\n", "Discover: '2' is not a boolean", "allowed: 0, 1",
                 NULL);
    expect_error("[GATEWAY]\nSafeState=explode\n", "'explode' is not a known value",
                 "allowed: off, min, hold", NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/Type=simple\n", "'simple' is not a known value",
                 "allowed: PID, Winter, None, off", NULL);
    expect_error("[ALL]\nTraceLevel=verbose\n", "allowed: debug, info, warn, error", NULL);
    /* the NPB family's disputed points (docs/npb.md) */
    expect_error("[NPB]\nDcOkPolarity=inverted\n", "DcOkPolarity: 'inverted' is not a known value",
                 "allowed: normal, low", NULL);
    expect_error("[NPB]\nCurrentMinPct=10\n", "CurrentMinPct: '10' is out of range",
                 "allowed: 20..100", NULL);

    //  An empty enum means its default.
    config_t *cfg = expect_ok("[ALL]\nTraceLevel=\n[GATEWAY]\nDiscover=true\n");
    assert_string_equal(config_str(cfg, "ALL", "TraceLevel"), "info");
    assert_true(config_bool(cfg, "GATEWAY", "Discover"));
    done(&cfg);
}

static void test_text_types(void **state)
{
    expect_error("[MQTT]\nTopicMain=haus/+/bat\n", "is not a valid MQTT topic", NULL);
    expect_error("[MQTT]\nTopicMain=haus/bat/\n", "is not a valid MQTT topic", NULL);
    expect_error("[MQTT]\nTopicMain=\n", "TopicMain: '' is empty", NULL);
    expect_error("[GATEWAY]\nReqEndpoint=http://x\n", "is not a ZeroMQ endpoint", NULL);
    expect_error("[GATEWAY]\nReqEndpoint=tcp://localhost\n", "is not a ZeroMQ endpoint", NULL);
    expect_error("[GATEWAY]\nPubEndpoint=tcp://h:0\n", "is not a ZeroMQ endpoint", NULL);
    expect_error("[MQTT]\nBrokerIpAdr=my broker\n", "is not a host name or address", NULL);
    expect_error("[GATEWAY]\nCan=can0\n", "Can: 'can0' is not valid", "socketcan:IFACE", NULL);
    expect_error("[GATEWAY]\nCan=socketcan:averyveryverylongname\n", "is not valid", NULL);
    expect_error("[GATEWAY]\nCurveServerPublicKey=tooshort\n", "Z85 key of 40 characters", NULL);
    expect_error(
        "[MQTT]\nAppId=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        "has 65 characters; allowed: 0..64 characters", NULL);
    expect_error("[MQTT]\nStatePayloadOnline=\n", "has 0 characters", NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/Enable=0\nId/0/MeterJsonPath=a..b\n",
                 "MeterJsonPath: 'a..b' is not valid", NULL);

    config_t *cfg = expect_ok("[GATEWAY]\nCan=slcan:/dev/ttyUSB0:115200\n"
                              "ReqEndpoint=tcp://127.0.0.1:5555\n"
                              "CurveServerPublicKey=rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n"
                              "[CHARGE_CONTROL]\nId/0/Enable=0\n"
                              "Id/0/MeterJsonPath=ENERGY.Power[0]\n");
    assert_string_equal(config_str(cfg, "GATEWAY", "Can"), "slcan:/dev/ttyUSB0:115200");
    assert_string_equal(config_str(cfg, "CHARGE_CONTROL", "Id/%d/MeterJsonPath", 0),
                        "ENERGY.Power[0]");
    done(&cfg);
}

static void test_unknown_keys_warn(void **state)
{
    config_t *cfg = expect_ok("[MQTT]\n"
                              "BrokerPort=1883\n"
                              "BrokerPrt=1\n"
                              "[NOPE]\n"
                              "a=1\n"
                              "b=2\n"
                              "[SURPLUS_SWITCH]\n"
                              "Id/0/SwitchDelaySec=40\n"
                              "[CHARGE_CONTROL]\n"
                              "Id/0/Enable=0\n"
                              "Id/0/ChargeVoltage=2760\n"
                              "Id/0/switch/0/Name=boiler\n"
                              "[Device]\n"
                              "ChargeVoltage=2750\n");
    assert_int_equal(config_warning_count(cfg), 5);
    assert_true(has_warning(cfg, ":3: [MQTT] BrokerPrt: unknown key"));
    assert_true(has_warning(cfg, ":5: [NOPE]: unknown section"));
    assert_int_equal(config_int(cfg, "SURPLUS_SWITCH", "Id/%d/SwitchDelaySec", 0), 40);
    assert_true(has_warning(cfg, ":11: [CHARGE_CONTROL] Id/0/ChargeVoltage: unknown key, "
                                 "ignored (it belongs in [DEVICE])"));
    assert_true(has_warning(cfg, ":12: [CHARGE_CONTROL] Id/0/switch/0/Name: unknown key, ignored "
                                 "(a surplus-switch key: move it to [SURPLUS_SWITCH])"));
    assert_true(has_warning(cfg, ":14: [DEVICE] ChargeVoltage: unknown key, ignored (keys here "
                                 "carry a device address: Id/0/ChargeVoltage)"));
    //  An unknown key does not leak into the known ones.
    assert_false(config_has(cfg, "DEVICE", "Id/%d/ChargeVoltage", 0));
    done(&cfg);
}

static void test_syntax_errors(void **state)
{
    expect_error("[MQTT]\nthis is no setting\n", ":2: 'this is no setting' is not a setting", NULL);
    expect_error("[MQTT\nBrokerPort=1\n", ":1: '[MQTT' is not a section header", NULL);
    expect_error("[MQTT]\nBrokerPort=1883\nbrokerport=1884\n",
                 ":3: [MQTT] brokerport: set twice (also on line 2)", NULL);
    expect_error("[DEVICE]\nId/64/ChargeVoltage=2760\n", "device address 64 is out of range", NULL);
    //  A negative address is the same error as one too large, not an unknown key.
    expect_error("[DEVICE]\nId/-1/ChargeVoltage=2760\n",
                 "device address -1 is out of range; allowed: 0..63", NULL);
    expect_error("[CHARGE_CONTROL]\nId/-3/Enable=0\n", "device number -3 is out of range", NULL);
    /* a controller's device may be an NPB: 64 + its address 0-3 */
    expect_error("[CHARGE_CONTROL]\nId/68/Enable=0\n",
                 "device number 68 is out of range; allowed: 0..67 (a BIC's address 0-63, an "
                 "NPB's 64-67)",
                 NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/Enable=0\nId/0/Profile/Hour/24/MaxChargePower=1\n",
                 "hour 24 is out of range; allowed: 0..23", NULL);
    expect_error("[BAT_0]\nCap2V/101=27\n", "percentage 101 is out of range", NULL);

    char longline[400];
    snprintf(longline, sizeof longline, "[MQTT]\nTopicMain=%0300d\n", 0);
    expect_error(longline, ":2: line is", "allowed: at most", NULL);
    //  A long comment is fine.
    snprintf(longline, sizeof longline, "# %0300d\n[MQTT]\nBrokerPort=1\n", 0);
    config_t *ok = expect_ok(longline);
    assert_int_equal(config_line(ok, "MQTT", "BrokerPort"), 3);
    done(&ok);

    //  A NUL byte inside a line.
    snprintf(s_path, sizeof s_path, "/tmp/bic-test-config-XXXXXX");
    int fd = mkstemp(s_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "[MQTT]\nAppId=a\0b\n", 17), 17);
    close(fd);
    config_t *cfg = config_load(s_path, s_err, sizeof s_err);
    assert_null(cfg);
    assert_non_null(strstr(s_err, ":2: contains a NUL byte"));
    unlink(s_path);
}

static void test_indented_line_is_its_own_key(void **state)
{
    //  inih would glue an indented line to the previous value; we read it as a key.
    config_t *cfg = expect_ok("[CHARGE_CONTROL]\nId/0/Enable=0\nId/0/Pid/P=0.3\n"
                              "   Id/0/Pid/I=0.1\n");
    assert_true(config_float(cfg, "CHARGE_CONTROL", "Id/%d/Pid/P", 0) == 0.3);
    assert_true(config_float(cfg, "CHARGE_CONTROL", "Id/%d/Pid/I", 0) == 0.1);
    done(&cfg);
}

static void test_device_rules(void **state)
{
    expect_error("[DEVICE]\n\nId/1/ChargeVoltage=2760\nId/1/MaxChargeCurrent=2000\n",
                 ":3: [DEVICE] Id/1/DischargeVoltage: missing; required for device 1",
                 "[DEVICE] Id/1/MaxDischargeCurrent: missing", NULL);
    //  Any Id/X/ key makes a device, even one that is not a limit.
    expect_error("[DEVICE]\nId/2/Type=BIC2200-48CAN\n", "Id/2/ChargeVoltage: missing", NULL);
    expect_error("[DEVICE]\nId/0/ChargeVoltage=2500\nId/0/DischargeVoltage=2600\n"
                 "Id/0/MaxChargeCurrent=2000\nId/0/MaxDischargeCurrent=1500\n",
                 ":3: [DEVICE] Id/0/DischargeVoltage: '2600' is not below Id/0/ChargeVoltage",
                 NULL);
    expect_error(DEVICE0 "Id/0/MinCurrent=1800\n",
                 "Id/0/MinCurrent: '1800' is above "
                 "Id/0/MaxDischargeCurrent",
                 NULL);
    //  A bad value is reported once, not again as "missing".
    config_t *cfg = load_text("[DEVICE]\nId/0/ChargeVoltage=abc\nId/0/DischargeVoltage=2500\n"
                              "Id/0/MaxChargeCurrent=2000\nId/0/MaxDischargeCurrent=1500\n");
    assert_null(cfg);
    assert_non_null(strstr(s_err, "'abc' is not an integer"));
    assert_null(strstr(s_err, "missing"));
    done(&cfg);

    cfg = expect_ok("[DEVICE]\n"
                    "Id/12/ChargeVoltage=5520\nId/12/DischargeVoltage=5000\n"
                    "Id/12/MaxChargeCurrent=2000\nId/12/MaxDischargeCurrent=1500\n" DEVICE0
                    "Id/3/ChargeVoltage=2760\nId/3/DischargeVoltage=2500\n"
                    "Id/3/MaxChargeCurrent=2000\nId/3/MaxDischargeCurrent=1500\n");
    int ids[8];
    assert_int_equal(config_ids(cfg, "device", ids, 8), 3);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 12);
    assert_int_equal(config_ids(cfg, "DEVICE", ids, 1), 3);
    assert_int_equal(config_int(cfg, "DEVICE", "Id/%d/ChargeVoltage", 12), 5520);
    assert_false(config_has(cfg, "DEVICE", "Id/%d/MinCurrent", 12));
    done(&cfg);
}

static void test_controller_rules(void **state)
{
    expect_error("[CHARGE_CONTROL]\nId/0/ChargeTol=10\n",
                 ":2: [CHARGE_CONTROL] Id/0/TopicPower: missing; required when Id/0/Type=PID",
                 NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/TopicPower=\n", "TopicPower: missing", NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/TopicPower=m\nId/0/DischargeBlockHourStart=22\n",
                 "DischargeBlockHourStart/Stop: '22'/'-1' is not a window",
                 "both -1 (no block) or both 0..23", NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/TopicPower=m\nId/0/DischargeBlockHourStop=-2\n",
                 "'-2' is out of range; allowed: -1 (no block) or 0..23", NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/TopicPower=m\nId/0/MinSocPct=60\nId/0/MaxSocPct=50\n",
                 "MinSocPct: '60' is not below MaxSocPct", NULL);

    //  Not required when the controller is off or disabled.
    config_t *cfg = expect_ok("[CHARGE_CONTROL]\nId/0/Type=off\nId/1/Enable=0\n"
                              "Id/2/TopicPower=m\nId/2/DischargeBlockHourStart=22\n"
                              "Id/2/DischargeBlockHourStop=6\n");
    assert_int_equal(config_int(cfg, "CHARGE_CONTROL", "Id/%d/DischargeBlockHourStop", 2), 6);
    int ids[4];
    assert_int_equal(config_ids(cfg, "CHARGE_CONTROL", ids, 4), 3);
    done(&cfg);

    //  The seed's controller words, in any case and quoted as its sample writes them.
    static const char *const types[][2] = {
        {"none", "None"},    {"\"None\"", "None"}, {"Winter", "Winter"}, {"\"winter\"", "Winter"},
        {"\"PID\" ", "PID"}, {"pid", "PID"},       {"OFF", "off"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[CHARGE_CONTROL]\nId/0/Type=%s\nId/0/TopicPower=m\n",
                 types[i][0]);
        cfg = expect_ok(text);
        assert_string_equal(config_str(cfg, "CHARGE_CONTROL", "Id/%d/Type", 0), types[i][1]);
        done(&cfg);
    }
    //  Winter needs no meter; PID does.
    cfg = expect_ok("[CHARGE_CONTROL]\nId/0/Type=winter\n");
    done(&cfg);
    expect_error("[CHARGE_CONTROL]\nId/0/Type=simple\n",
                 ":2: [CHARGE_CONTROL] Id/0/Type: 'simple' is not a known value; allowed: PID, "
                 "Winter, None, off",
                 NULL);
    expect_error("[CHARGE_CONTROL]\nId/0/Type=Winter\nId/0/Winter/CapMin=60\n",
                 ":3: [CHARGE_CONTROL] Id/0/Winter/CapMin: '60' is not below Winter/CapMax (50)",
                 NULL);
}

static void test_surplus_switch_rules(void **state)
{
    config_t *cfg = expect_ok("[SURPLUS_SWITCH]\nId/0/SwitchDelaySec=30\n"
                              "Id/0/switch/1/SurplusMinP=400\nId/0/switch/1/Topic=a/b\n"
                              "Id/0/switch/1/MaxDurationMax=-1\n"
                              "Id/0/switch/2/Name=unused\n");
    assert_int_equal(config_int(cfg, "SURPLUS_SWITCH", "Id/%d/switch/%d/MinDurationMin", 0, 1), 5);
    assert_int_equal(config_int(cfg, "SURPLUS_SWITCH", "Id/%d/switch/%d/BlockRestart", 0, 1), -1);
    done(&cfg);
    expect_error("[SURPLUS_SWITCH]\nId/0/switch/3/SurplusMinP=400\n",
                 ":2: [SURPLUS_SWITCH] Id/0/switch/3/Topic: missing; required when "
                 "Id/0/switch/3/SurplusMinP is above 0",
                 NULL);
    expect_error("[SURPLUS_SWITCH]\nId/0/switch/0/BlockRestart=-2\n",
                 "'-2' is out of range; allowed: -1 (no block) or 0..10080", NULL);
    expect_error("[SURPLUS_SWITCH]\nId/0/switch/0/Topic=a/#\n", "not a valid MQTT topic", NULL);
}

//  KEY of the schema with each '#' made 1 (a valid device address, hour and percentage).
static void s_concrete_key(const config_key_t *k, char *out, size_t n)
{
    size_t j = 0;
    for (const char *c = k->key; *c && j + 1 < n; c++)
        out[j++] = *c == '#' ? '1' : *c;
    out[j] = '\0';
}

//  KEY=TEXT alone in its section: refused for its range (OUT) or not (in range). A value in
//  range may still be refused by a rule between keys (a missing partner, an order); that is
//  another test's business, but a range refusal of it, or a different value read back, fails.
static void s_boundary(const config_key_t *k, const char *key, const char *text, bool out,
                       double want)
{
    char ini[256], needle[256];
    snprintf(ini, sizeof ini, "[%s]\n%s=%s\n", k->section, key, text);
    config_t *cfg = load_text(ini);
    snprintf(needle, sizeof needle, "%s: '%s' is out of range; allowed: ", key, text);
    if (out) {
        if (cfg || !strstr(s_err, needle))
            fail_msg("[%s] %s=%s (bounds %g..%g) not refused as out of range:\n%s", k->section, key,
                     text, k->min, k->max, s_err);
    } else {
        if (strstr(s_err, needle))
            fail_msg("[%s] %s=%s (bounds %g..%g) refused:\n%s", k->section, key, text, k->min,
                     k->max, s_err);
        snprintf(needle, sizeof needle, "%s: '%s' is not a", key, text);
        if (strstr(s_err, needle))
            fail_msg("[%s] %s=%s refused as no number:\n%s", k->section, key, text, s_err);
        if (cfg && k->type == CT_INT && config_int(cfg, k->section, "%s", key) != (long)want)
            fail_msg("[%s] %s=%s read back as %ld", k->section, key, text,
                     config_int(cfg, k->section, "%s", key));
        if (cfg && k->type == CT_FLOAT && config_float(cfg, k->section, "%s", key) != want)
            fail_msg("[%s] %s=%s read back as %g", k->section, key, text,
                     config_float(cfg, k->section, "%s", key));
    }
    done(&cfg);
}

//  Every bounded key of the schema, from the table itself so none is missed: min-1 and
//  max+1 (a step past for floats) refused with the range, min and max accepted; an integer
//  key refuses a fraction.
static void test_every_bound(void **state)
{
    size_t tested = 0;
    for (size_t i = 0; i < config_schema_count; i++) {
        const config_key_t *k = &config_schema[i];
        if (k->type != CT_INT && k->type != CT_FLOAT)
            continue;
        char key[128], text[64];
        s_concrete_key(k, key, sizeof key);
        if (k->type == CT_INT) {
            long lo = (long)k->min, hi = (long)k->max;
            const long vals[] = {lo - 1, lo, hi, hi + 1};
            for (int v = 0; v < 4; v++) {
                snprintf(text, sizeof text, "%ld", vals[v]);
                s_boundary(k, key, text, v == 0 || v == 3, (double)vals[v]);
            }
            snprintf(text, sizeof text, "%ld.5", lo);
            char ini[256], needle[256];
            snprintf(ini, sizeof ini, "[%s]\n%s=%s\n", k->section, key, text);
            config_t *cfg = load_text(ini);
            snprintf(needle, sizeof needle, "%s: '%s' is not an integer", key, text);
            if (cfg || !strstr(s_err, needle))
                fail_msg("[%s] %s=%s not refused as a fraction:\n%s", k->section, key, text, s_err);
            done(&cfg);
        } else {
            /* a thousandth past each bound: the floats' bounds have at most two decimals */
            const double vals[] = {k->min - 0.001, k->min, k->max, k->max + 0.001};
            for (int v = 0; v < 4; v++) {
                snprintf(text, sizeof text, "%.10g", vals[v]);
                s_boundary(k, key, text, v == 0 || v == 3, vals[v]);
            }
        }
        tested++;
    }
    assert_true(tested >= 50); /* the table has about 60; a broken filter would test nothing */
}

static void test_cap2v(void **state)
{
    config_t *cfg = expect_ok("[BAT_0]\nCap2V/100=27.0\nCap2V/0=20\nCap2V/50=26.2\n"
                              "Cap2V/10=25\n");
    double pct[8], volts[8];
    assert_int_equal(config_cap2v(cfg, pct, volts, 8), 4);
    assert_true(pct[0] == 0 && volts[0] == 20.0);
    assert_true(pct[1] == 10 && volts[1] == 25.0);
    assert_true(pct[2] == 50 && volts[2] == 26.2);
    assert_true(pct[3] == 100 && volts[3] == 27.0);
    done(&cfg);

    expect_error("[BAT_0]\nCap2V/0=20\nCap2V/50=26.2\nCap2V/60=26.2\n",
                 ":4: [BAT_0] Cap2V/60: '26.2' is not above Cap2V/50 (26.2, line 3)", NULL);
    expect_error("[BAT_0]\nCap2V/90=26\nCap2V/10=27\n", ":2: [BAT_0] Cap2V/90", NULL);
}

static void test_seed_sample(void **state)
{
    char err[8192];
    config_t *cfg = config_load(BIC_TEST_DATA "/seed-bic2mqtt.ini", err, sizeof err);
    assert_null(cfg);
    //  The missing newline is an error naming its line, key and the glued value.
    assert_non_null(strstr(err, "seed-bic2mqtt.ini:52: [CHARGE_CONTROL] Id/0/Pid/P: "
                                "'0.3Id/0/Pid/I=0' is not a number"));

    cfg = config_load(BIC_TEST_DATA "/seed-bic2mqtt-fixed.ini", err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    assert_true(config_float(cfg, "CHARGE_CONTROL", "Id/%d/Pid/P", 0) == 0.3);
    assert_true(config_float(cfg, "CHARGE_CONTROL", "Id/%d/Pid/I", 0) == 0.0);
    assert_int_equal(config_int(cfg, "CHARGE_CONTROL", "Id/%d/DischargeBlockTimeSec", 0), 61);
    assert_int_equal(config_int(cfg, "DEVICE", "Id/%d/MaxChargeCurrent", 0), 200);
    assert_int_equal(config_int(cfg, "DEVICE", "Id/%d/MaxDischargeCurrent", 0), 210);
    assert_int_equal(config_int(cfg, "DEVICE", "Id/%d/ChargeVoltage", 0), 2750);
    assert_string_equal(config_str(cfg, "MQTT", "TopicMain"), "haus/power/bat");
    assert_string_equal(config_str(cfg, "CHARGE_CONTROL", "Id/%d/TopicPower", 0),
                        "haus/power/grid/power");
    assert_int_equal(
        config_int(cfg, "CHARGE_CONTROL", "Id/%d/Profile/Hour/%d/MaxDischargePower", 0, 22), -400);
    assert_false(config_has(cfg, "CHARGE_CONTROL", "Id/%d/Profile/Hour/%d/MaxChargePower", 0, 5));
    assert_int_equal(config_cap2v(cfg, NULL, NULL, 0), 11);
    //  Every key of the corrected sample is known: the Winter keys and the switches too.
    assert_int_equal(config_warning_count(cfg), 0);
    assert_int_equal(config_int(cfg, "CHARGE_CONTROL", "Id/%d/Winter/CapMax", 0), 50);
    assert_true(config_float(cfg, "CHARGE_CONTROL", "Id/%d/Winter/TempMin", 0) == 10.0);
    assert_int_equal(config_int(cfg, "SURPLUS_SWITCH", "Id/%d/switch/%d/SurplusMinP", 0, 0), 500);
    assert_int_equal(config_int(cfg, "SURPLUS_SWITCH", "Id/%d/switch/%d/MaxDurationMax", 0, 0), 60);
    assert_string_equal(config_str(cfg, "SURPLUS_SWITCH", "Id/%d/switch/%d/Name", 0, 0), "boiler");
    config_destroy(&cfg);
    assert_null(cfg);
}

static void test_seed_sample_misplaced_switches_warned(void **state)
{
    //  With the P typo fixed but the switches still misplaced, the file loads and every
    //  misplaced key is a warning with its line (the inserted newline moves the later
    //  lines down by one).
    FILE *in = fopen(BIC_TEST_DATA "/seed-bic2mqtt.ini", "r");
    assert_non_null(in);
    char text[8192];
    size_t len = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[len] = '\0';
    char *typo = strstr(text, "\nId/0/Pid/P=0.3Id/0/Pid/I=0");
    assert_non_null(typo);
    typo[15] = '\n';
    config_t *cfg = expect_ok(text);
    assert_true(has_warning(cfg, ":67: [CHARGE_CONTROL] SwitchDelaySec: unknown key, ignored (a "
                                 "surplus-switch key: move it to [SURPLUS_SWITCH] as "
                                 "Id/0/SwitchDelaySec)"));
    assert_true(has_warning(cfg, ":68: [CHARGE_CONTROL] Id/0/switch/0/SurplusMinP: unknown key, "
                                 "ignored (a surplus-switch key: move it to [SURPLUS_SWITCH])"));
    assert_false(config_has(cfg, "SURPLUS_SWITCH", "Id/%d/switch/%d/SurplusMinP", 0, 0));
    done(&cfg);
}

static void test_missing_file(void **state)
{
    char err[256];
    assert_null(config_load("/nonexistent/bic2mqtt.ini", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/bic2mqtt.ini: cannot open"));
    //  Not a regular file: refused at once (a device is never read, a FIFO never waited on).
    assert_null(config_load("/tmp", err, sizeof err));
    assert_non_null(strstr(err, "/tmp: not a regular file (a directory)"));
    assert_null(config_load("/dev/zero", err, sizeof err));
    assert_non_null(strstr(err, "/dev/zero: not a regular file (a character device)"));
    char dir[] = "/tmp/bic-test-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[64], big[64];
    snprintf(fifo, sizeof fifo, "%s/fifo.ini", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_null(config_load(fifo, err, sizeof err));
    assert_non_null(strstr(err, "not a regular file (a FIFO)"));
    //  Above CONFIG_MAX_BYTES: refused without reading it.
    snprintf(big, sizeof big, "%s/big.ini", dir);
    FILE *f = fopen(big, "w");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), CONFIG_MAX_BYTES + 1), 0);
    fclose(f);
    assert_null(config_load(big, err, sizeof err));
    assert_non_null(strstr(err, "bytes; allowed: at most 1048576"));
    unlink(fifo);
    unlink(big);
    rmdir(dir);
    assert_null(config_load(NULL, err, sizeof err));
    //  A tiny error buffer is cut, never overrun.
    char tiny[8];
    assert_null(config_load("/nonexistent/bic2mqtt.ini", tiny, sizeof tiny));
    assert_true(strlen(tiny) < sizeof tiny);
}

static void test_check_main(void **state)
{
    assert_int_equal(config_check_main(BIC_TEST_DATA "/seed-bic2mqtt-fixed.ini"), 0);
    assert_int_equal(config_check_main(BIC_TEST_DATA "/seed-bic2mqtt.ini"), 1);
    assert_int_equal(config_check_main("/nonexistent/bic2mqtt.ini"), 1);
}

static void test_unknown_getter_key_aborts(void **state)
{
    config_t *cfg = expect_ok("\n");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        config_int(cfg, "MQTT", "NoSuchKey");
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);

    pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        config_int(cfg, "MQTT", "TopicMain"); //  a string read as an integer
        _exit(0);
    }
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    done(&cfg);
}

//  Random files built from ini fragments and raw bytes: each one either loads or is
//  refused with a message; none crashes (the ASan build checks memory use too).
static void test_random_garbage(void **state)
{
    static const char *const parts[] = {"[DEVICE]\n",
                                        "[Device]\n",
                                        "[CHARGE_CONTROL]\n",
                                        "[BAT_0]\n",
                                        "[MQTT]\n",
                                        "[x\n",
                                        "Id/0/ChargeVoltage=",
                                        "Id/0/DischargeVoltage=",
                                        "Id/99/Type=",
                                        "Cap2V/",
                                        "=",
                                        "Id/0/Profile/Hour/",
                                        "Id/0/TopicPower=",
                                        "\"",
                                        "2750",
                                        "-1",
                                        "0.3Id/0/Pid/I=0",
                                        "\n",
                                        "\n",
                                        "   ",
                                        ";",
                                        "#",
                                        ":",
                                        "/",
                                        "+",
                                        "nan",
                                        "1e999",
                                        "\t",
                                        "\xEF\xBB\xBF",
                                        "\x01",
                                        "\xff",
                                        "Id/0/Pid/P=",
                                        "BrokerPort=",
                                        "TopicMain=",
                                        "0200"};
    const size_t nparts = sizeof parts / sizeof parts[0];
    srand(12345);
    for (int round = 0; round < 300; round++) {
        char text[1200];
        size_t len = 0;
        int pieces = 1 + rand() % 60;
        for (int i = 0; i < pieces; i++) {
            const char *piece = parts[(size_t)rand() % nparts];
            size_t plen = strlen(piece);
            if (len + plen + 1 >= sizeof text)
                break;
            memcpy(text + len, piece, plen);
            len += plen;
        }
        text[len] = '\0';
        config_t *cfg = load_text(text);
        if (cfg) {
            assert_string_equal(s_err, "");
            config_str(cfg, "MQTT", "TopicMain");
            config_ids(cfg, "DEVICE", NULL, 0);
            config_cap2v(cfg, NULL, NULL, 0);
        } else if (s_err[0] == '\0') {
            fail_msg("refused without a message:\n%s", text);
        }
        done(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_and_case),
        cmocka_unit_test(test_int_errors),
        cmocka_unit_test(test_float_bool_enum_errors),
        cmocka_unit_test(test_text_types),
        cmocka_unit_test(test_unknown_keys_warn),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_indented_line_is_its_own_key),
        cmocka_unit_test(test_device_rules),
        cmocka_unit_test(test_controller_rules),
        cmocka_unit_test(test_cap2v),
        cmocka_unit_test(test_every_bound),
        cmocka_unit_test(test_surplus_switch_rules),
        cmocka_unit_test(test_seed_sample),
        cmocka_unit_test(test_seed_sample_misplaced_switches_warned),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_check_main),
        cmocka_unit_test(test_unknown_getter_key_aborts),
        cmocka_unit_test(test_random_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
