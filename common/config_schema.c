/*  config_schema: every key of docs/configuration.md with its type, default and range.
    Keep this table and the document in step: a key is parsed if and only if it is here.
*/
#include "config_schema.h"
#include "jget.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const char *const config_sections[] = {"ALL",   "MQTT",           "GATEWAY",        "DEVICE", "NPB",
                                       "BAT_0", "CHARGE_CONTROL", "SURPLUS_SWITCH", NULL};
const char *const config_ignored_sections[] = {NULL};

static const char *const s_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const s_idle_states[] = {"off", "min", NULL};
static const char *const s_safe_states[] = {"off", "min", "hold", NULL};
static const char *const s_models[] = {"BIC2200-12CAN", "BIC2200-24CAN", "BIC2200-48CAN",
                                       "BIC2200-96CAN", NULL};
/* The seed takes pid and winter, anything else meaning no controller (its README writes
 * "none"); "off" is ours. */
static const char *const s_controllers[] = {"PID", "Winter", "None", "off", NULL};
static const char *const s_units[] = {"W", "kW", "mW", NULL};
/* [NPB] DcOkPolarity: what SYSTEM_STATUS DC_OK = 1 means (docs/npb.md, disputed points). */
static const char *const s_dcok[] = {"normal", "low", NULL};
static const char *const s_disable_states[] = {"min", "idle", NULL};

//  socketcan:IFACE (a Linux interface name) or slcan:PATH[:BAUD].
static int s_check_can(const char *value, char *what, size_t n)
{
    snprintf(what, n, "socketcan:IFACE (1-15 characters) or slcan:PATH[:BAUD]");
    if (strncmp(value, "socketcan:", 10) == 0) {
        const char *ifname = value + 10;
        size_t len = strlen(ifname);
        if (len < 1 || len > 15)
            return -1;
        for (const char *p = ifname; *p; p++)
            if (*p == '/' || isspace((unsigned char)*p))
                return -1;
        return 0;
    }
    if (strncmp(value, "slcan:", 6) == 0) {
        const char *path = value + 6;
        if (*path == '\0' || *path == ':')
            return -1;
        const char *colon = strchr(path, ':');
        if (colon) {
            const char *baud = colon + 1;
            if (*baud == '\0' || strspn(baud, "0123456789") != strlen(baud) || strlen(baud) > 7)
                return -1;
        }
        return 0;
    }
    return -1;
}

//  A Z85 encoded CURVE key: 40 characters of the Z85 alphabet.
static int s_check_z85(const char *value, char *what, size_t n)
{
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              ".-:+=^!/*?&<>()[]{}@%$#";
    snprintf(what, n, "empty or a Z85 key of 40 characters");
    if (*value == '\0')
        return 0;
    if (strlen(value) != 40 || strspn(value, z85) != 40)
        return -1;
    return 0;
}

static int s_check_jpath(const char *value, char *what, size_t n)
{
    snprintf(what, n, "empty or a dot path such as ENERGY.Power or a.b[0].c");
    if (*value == '\0')
        return 0;
    return jpath_valid(value);
}

// clang-format off
#define INT(s, k, d, lo, hi) {s, k, CT_INT, d, lo, hi, NULL, NULL, NULL}
#define FLT(s, k, d, lo, hi) {s, k, CT_FLOAT, d, lo, hi, NULL, NULL, NULL}
#define BOOL(s, k, d) {s, k, CT_BOOL, d, 0, 1, NULL, NULL, NULL}
#define STR(s, k, d, lo, hi) {s, k, CT_STRING, d, lo, hi, NULL, NULL, NULL}
#define ENUM(s, k, d, v) {s, k, CT_ENUM, d, 0, 0, v, NULL, NULL}
#define PATH(s, k, d) {s, k, CT_PATH, d, 0, 4095, NULL, NULL, NULL}
#define TOPIC(s, k, d) {s, k, CT_TOPIC, d, 0, 1024, NULL, NULL, NULL}
#define ENDP(s, k, d) {s, k, CT_ENDPOINT, d, 0, 1024, NULL, NULL, NULL}
#define CHECKED(s, k, d, fn) {s, k, CT_STRING, d, 0, 256, NULL, fn, NULL}
// clang-format on

const config_key_t config_schema[] = {
    ENUM("ALL", "TraceLevel", "info", s_levels),
    PATH("ALL", "TraceFilePath", ""),
    BOOL("ALL", "LogTimestamps", "0"),

    {"MQTT", "BrokerIpAdr", CT_HOST, "127.0.0.1", 1, 253, NULL, NULL, NULL},
    INT("MQTT", "BrokerPort", "1883", 1, 65535),
    STR("MQTT", "BrokerAccUser", "", 0, 256),
    STR("MQTT", "BrokerAccPasswd", "", 0, 256),
    TOPIC("MQTT", "TopicMain", "haus/power/bat/bic2mqtt"),
    STR("MQTT", "AppId", "", 0, 64),
    INT("MQTT", "KeepAliveSec", "30", 5, 600),
    PATH("MQTT", "TlsCaFile", ""),
    PATH("MQTT", "TlsCertFile", ""),
    PATH("MQTT", "TlsKeyFile", ""),
    STR("MQTT", "StatePayloadOnline", "running", 1, 64),
    STR("MQTT", "StatePayloadOffline", "offline", 1, 64),
    INT("MQTT", "PublishPeriodSec", "10", 1, 3600),
    BOOL("MQTT", "HaDiscovery", "1"),
    TOPIC("MQTT", "HaPrefix", "homeassistant"),
    TOPIC("MQTT", "HaStatusTopic", "homeassistant/status"),
    INT("MQTT", "ManualLeaseTtlSec", "600", 10, 3600),

    CHECKED("GATEWAY", "Can", "socketcan:can0", s_check_can),
    ENDP("GATEWAY", "ReqEndpoint", "ipc:///run/bic2mqtt/gateway.sock"),
    ENDP("GATEWAY", "PubEndpoint", "ipc:///run/bic2mqtt/telemetry.sock"),
    PATH("GATEWAY", "CurveSecretKeyFile", ""),
    CHECKED("GATEWAY", "CurveServerPublicKey", "", s_check_z85),
    PATH("GATEWAY", "CurveClientKeyFile", ""),
    PATH("GATEWAY", "CurveClientsDir", ""),
    PATH("GATEWAY", "CurveReadOnlyClientsDir", ""),
    PATH("GATEWAY", "StateDir", "/var/lib/bic2mqtt"),
    INT("GATEWAY", "TelemetryPeriodMs", "1000", 200, 60000),
    INT("GATEWAY", "ResponseTimeoutMs", "50", 10, 1000),
    INT("GATEWAY", "Retries", "2", 0, 5),
    INT("GATEWAY", "OfflineAfterTimeouts", "3", 1, 100),
    BOOL("GATEWAY", "Discover", "0"),
    BOOL("GATEWAY", "BroadcastWrites", "0"),
    ENUM("GATEWAY", "IdleState", "off", s_idle_states),
    ENUM("GATEWAY", "SafeState", "off", s_safe_states),
    BOOL("GATEWAY", "SafeStateOnExit", "0"),
    BOOL("GATEWAY", "ApplyDeviceLimits", "1"),
    INT("GATEWAY", "EepromWriteIntervalSec", "79", 0, 86400),
    INT("GATEWAY", "EepromWritesPerDay", "1095", 1, 100000),
    INT("GATEWAY", "EepromBurst", "300", 1, 100000),
    INT("GATEWAY", "EepromMinSpacingSec", "20", 0, 86400),
    INT("GATEWAY", "LeaseMaxTtlSec", "3600", 1, 86400),
    INT("GATEWAY", "ClientTimeoutMs", "2000", 100, 60000),
    INT("GATEWAY", "ClientRetries", "2", 0, 10),
    ENDP("GATEWAY", "Gw/#/ReqEndpoint", ""),
    ENDP("GATEWAY", "Gw/#/PubEndpoint", ""),
    CHECKED("GATEWAY", "Gw/#/CurveServerPublicKey", "", s_check_z85),

    ENUM("DEVICE", "Id/#/Type", "", s_models),
    INT("DEVICE", "Id/#/CanBitrate", "250000", 250000, 250000),
    INT("DEVICE", "Id/#/ChargeVoltage", NULL, 1000, 11200),
    INT("DEVICE", "Id/#/DischargeVoltage", NULL, 1000, 11200),
    INT("DEVICE", "Id/#/MaxChargeCurrent", NULL, 25, 19800),
    INT("DEVICE", "Id/#/MaxDischargeCurrent", NULL, 25, 15300),
    INT("DEVICE", "Id/#/MinCurrent", NULL, 25, 19800),
    INT("DEVICE", "Id/#/Battery", "0", 0, 63),
    /* a device of a controller's group on another gateway ([GATEWAY] Gw/G/...) */
    INT("DEVICE", "Id/#@#/ChargeVoltage", NULL, 1000, 11200),
    INT("DEVICE", "Id/#@#/DischargeVoltage", NULL, 1000, 11200),
    INT("DEVICE", "Id/#@#/MaxChargeCurrent", NULL, 25, 19800),
    INT("DEVICE", "Id/#@#/MaxDischargeCurrent", NULL, 25, 15300),
    INT("DEVICE", "Id/#@#/MinCurrent", NULL, 25, 19800),
    INT("DEVICE", "Id/#@#/Battery", "0", 0, 63),

    STR("NPB", "Id/#/Type", "", 0, 24),
    INT("NPB", "Id/#/ChargeVoltage", NULL, 1050, 8000),
    INT("NPB", "Id/#/MaxChargeCurrent", NULL, 25, 8500),
    ENUM("NPB", "DcOkPolarity", "normal", s_dcok),
    INT("NPB", "CurrentMinPct", "20", 20, 100),

    FLT("BAT_0", "Cap2V/#", NULL, 0, 150),
    FLT("BAT_0", "InternalResistanceMOhm", "10", 0, 1000),

    ENUM("CHARGE_CONTROL", "Id/#/Type", "PID", s_controllers),
    BOOL("CHARGE_CONTROL", "Id/#/Enable", "1"),
    TOPIC("CHARGE_CONTROL", "Id/#/TopicPower", ""),
    CHECKED("CHARGE_CONTROL", "Id/#/MeterJsonPath", "", s_check_jpath),
    ENUM("CHARGE_CONTROL", "Id/#/MeterUnit", "W", s_units),
    BOOL("CHARGE_CONTROL", "Id/#/MeterInvert", "0"),
    INT("CHARGE_CONTROL", "Id/#/MeterTimeoutSec", "30", 3, 600),
    INT("CHARGE_CONTROL", "Id/#/MeterLatencyMs", "500", 0, 10000),
    INT("CHARGE_CONTROL", "Id/#/MeterMaxAbsW", "30000", 100, 1000000),
    INT("CHARGE_CONTROL", "Id/#/TimeSliceCalcSec", "12", 1, 3600),
    INT("CHARGE_CONTROL", "Id/#/ChargeTol", "10", 0, 1000),
    INT("CHARGE_CONTROL", "Id/#/ChargePowerOffset", "0", -10000, 10000),
    {"CHARGE_CONTROL", "Id/#/DischargeBlockHourStart", CT_INT, "-1", -1, 23, NULL, NULL,
     "-1 (no block) or 0..23"},
    {"CHARGE_CONTROL", "Id/#/DischargeBlockHourStop", CT_INT, "-1", -1, 23, NULL, NULL,
     "-1 (no block) or 0..23"},
    INT("CHARGE_CONTROL", "Id/#/DischargeBlockTimeSec", "60", 0, 86400),
    FLT("CHARGE_CONTROL", "Id/#/LoopGain", "0.5", 0.01, 2),
    FLT("CHARGE_CONTROL", "Id/#/Pid/P", "1.0", 0, 10),
    FLT("CHARGE_CONTROL", "Id/#/Pid/I", "0", 0, 10),
    FLT("CHARGE_CONTROL", "Id/#/Pid/D", "0", 0, 10),
    INT("CHARGE_CONTROL", "Id/#/Pid/ClockSec", "0", 0, 60),
    INT("CHARGE_CONTROL", "Id/#/Pid/MaxChargePower", "400", 0, 100000),
    INT("CHARGE_CONTROL", "Id/#/Pid/MaxDischargePower", "-400", -100000, 0),
    INT("CHARGE_CONTROL", "Id/#/Profile/Hour/#/MaxChargePower", NULL, 0, 100000),
    INT("CHARGE_CONTROL", "Id/#/Profile/Hour/#/MaxDischargePower", NULL, -100000, 0),
    INT("CHARGE_CONTROL", "Id/#/Profile/Hour/#/GridOffsetPower", NULL, -10000, 10000),
    INT("CHARGE_CONTROL", "Id/#/Profile/Hour/#/DischargeBlockTimeSec", NULL, 0, 86400),
    INT("CHARGE_CONTROL", "Id/#/MaxChargePower", "2000", 0, 100000),
    INT("CHARGE_CONTROL", "Id/#/MaxDischargePower", "-1600", -100000, 0),
    INT("CHARGE_CONTROL", "Id/#/DirectionDwellSec", "5", 0, 3600),
    INT("CHARGE_CONTROL", "Id/#/IdleDwellSec", "3", 0, 3600),
    INT("CHARGE_CONTROL", "Id/#/DwellMaxPower", "300", 0, 100000),
    INT("CHARGE_CONTROL", "Id/#/StepUpFast", "2000", 1, 100000),
    INT("CHARGE_CONTROL", "Id/#/StepSlow", "300", 1, 100000),
    INT("CHARGE_CONTROL", "Id/#/MinSocPct", "5", 0, 100),
    INT("CHARGE_CONTROL", "Id/#/MaxSocPct", "100", 0, 100),
    INT("CHARGE_CONTROL", "Id/#/MinVoltage", NULL, 1000, 11200),
    INT("CHARGE_CONTROL", "Id/#/MaxVoltage", NULL, 1000, 11200),
    INT("CHARGE_CONTROL", "Id/#/ProtectHysteresisPct", "3", 0, 50),
    INT("CHARGE_CONTROL", "Id/#/LeaseTtlSec", "10", 2, 600),
    {"CHARGE_CONTROL", "Id/#/FollowTimeoutSec", CT_INT, "10", 0, 600, NULL, NULL,
     "0 (check off) or 5..600"},
    INT("CHARGE_CONTROL", "Id/#/FollowSafeSec", "10", 0, 600),
    INT("CHARGE_CONTROL", "Id/#/FollowRetrySec", "600", 10, 86400),
    STR("CHARGE_CONTROL", "Id/#/Devices", "", 0, 256),
    INT("CHARGE_CONTROL", "Id/#/Group/StageHysteresisPct", "15", 0, 100),
    INT("CHARGE_CONTROL", "Id/#/Group/RotateWh", "1000", 0, 10000000),
    BOOL("CHARGE_CONTROL", "Id/#/Group/SocBalance", "1"),

    ENUM("CHARGE_CONTROL", "Id/#/DisableState", "min", s_disable_states),
    FLT("CHARGE_CONTROL", "Id/#/Winter/TempMin", "10", -40, 80),
    INT("CHARGE_CONTROL", "Id/#/Winter/ChargeP", "200", 1, 100000),
    INT("CHARGE_CONTROL", "Id/#/Winter/CapMin", "20", 0, 100),
    INT("CHARGE_CONTROL", "Id/#/Winter/CapMax", "50", 0, 100),
    INT("CHARGE_CONTROL", "Id/#/Winter/StartDelaySec", "120", 0, 3600),

    INT("SURPLUS_SWITCH", "Id/#/SwitchDelaySec", "40", 0, 86400),
    INT("SURPLUS_SWITCH", "Id/#/switch/#/SurplusMinP", "0", 0, 1000000),
    TOPIC("SURPLUS_SWITCH", "Id/#/switch/#/Topic", ""),
    STR("SURPLUS_SWITCH", "Id/#/switch/#/Name", "", 0, 64),
    INT("SURPLUS_SWITCH", "Id/#/switch/#/MinDurationMin", "5", 0, 10080),
    {"SURPLUS_SWITCH", "Id/#/switch/#/MaxDurationMax", CT_INT, "-1", -1, 10080, NULL, NULL,
     "-1 (no limit) or 0..10080"},
    {"SURPLUS_SWITCH", "Id/#/switch/#/BlockRestart", CT_INT, "-1", -1, 10080, NULL, NULL,
     "-1 (no block) or 0..10080"},
};

const size_t config_schema_count = sizeof config_schema / sizeof config_schema[0];
