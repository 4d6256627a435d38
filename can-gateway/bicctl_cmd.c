/*
 * bicctl_cmd - the command table of bicctl and everything about a command that needs no
 * socket: value validation, the gateway requests it needs (docs/ipc-protocol.md) and how
 * the replies are printed (the seed's plain output, docs/bicctl.md, or JSON).
 */
#include "bicctl_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bicctl_cmd_int.h"
#include "bicctl_group.h"
#include "bicctl_npb.h"
#include "numconv.h"

#define BICCTL_STATUS_DEVS 68 /* status: the devices (0-67) whose groups it lists */

#define RENDER(name)                                                                               \
    static int name(const cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n, FILE *out,  \
                    char *err, size_t errlen)
RENDER(r_raw);
RENDER(r_fan);
RENDER(r_type);
RENDER(r_sysstatus);
RENDER(r_fault);
RENDER(r_dump);
RENDER(r_quiet);
RENDER(r_init);
RENDER(r_info);
RENDER(r_devices);
RENDER(r_eeprom);
RENDER(r_status);

#define GW BICCTL_RUN_GATEWAY

/* Volt and ampere bounds: the union of the four variants' control ranges
 * (docs/configuration.md [DEVICE]); the gateway narrows them to the device's model and mode. */
static const bicctl_cmd_t s_cmds[] = {
    {"on", K_FIXED, V_NONE, {"OPERATION"}, 1, 0, 0, NULL, NULL, GW, r_quiet, "output on"},
    {"off", K_FIXED, V_NONE, {"OPERATION"}, 0, 0, 0, NULL, NULL, GW, r_quiet, "output off"},
    {"outputread",
     K_GET,
     V_NONE,
     {"OPERATION"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read output status 1:on 0:off"},
    {"cvread",
     K_GET,
     V_NONE,
     {"VOUT_SET"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read charge voltage setting (V x 100)"},
    {"cvset",
     K_SET,
     V_CENTI,
     {"VOUT_SET"},
     0,
     1000,
     11200,
     "V",
     NULL,
     GW,
     r_quiet,
     "set charge voltage, VALUE = V x 100"},
    {"ccread",
     K_GET,
     V_NONE,
     {"IOUT_SET"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read charge current setting (A x 100)"},
    {"ccset",
     K_SET,
     V_CENTI,
     {"IOUT_SET"},
     0,
     25,
     19800,
     "A",
     NULL,
     GW,
     r_quiet,
     "set charge current, VALUE = A x 100"},
    {"dvread",
     K_GET,
     V_NONE,
     {"REVERSE_VOUT_SET"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read discharge voltage setting (V x 100)"},
    {"dvset",
     K_SET,
     V_CENTI,
     {"REVERSE_VOUT_SET"},
     0,
     1000,
     11200,
     "V",
     NULL,
     GW,
     r_quiet,
     "set discharge voltage, VALUE = V x 100"},
    {"dcread",
     K_GET,
     V_NONE,
     {"REVERSE_IOUT_SET"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read discharge current setting (A x 100)"},
    {"dcset",
     K_SET,
     V_CENTI,
     {"REVERSE_IOUT_SET"},
     0,
     25,
     15300,
     "A",
     NULL,
     GW,
     r_quiet,
     "set discharge current, VALUE = A x 100"},
    {"vread",
     K_GET,
     V_NONE,
     {"READ_VOUT"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read DC voltage (V x 100)"},
    {"cread",
     K_GET,
     V_NONE,
     {"READ_IOUT"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read DC current (A x 100, negative while discharging)"},
    {"acvread",
     K_GET,
     V_NONE,
     {"READ_VIN"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read AC voltage (V x 10)"},
    {"charge",
     K_FIXED,
     V_NONE,
     {"DIRECTION_CTRL"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_quiet,
     "set direction: charge battery"},
    {"discharge",
     K_FIXED,
     V_NONE,
     {"DIRECTION_CTRL"},
     1,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_quiet,
     "set direction: discharge battery"},
    {"dirread",
     K_GET,
     V_NONE,
     {"DIRECTION_CTRL"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read direction 0:charge 1:discharge"},
    {"tempread",
     K_GET,
     V_NONE,
     {"READ_TEMPERATURE_1"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_raw,
     "read internal temperature (degC x 10)"},
    {"fanread",
     K_GET,
     V_NONE,
     {"READ_FAN_SPEED_1", "READ_FAN_SPEED_2"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_fan,
     "read fan 1 and 2 speed (RPM; newer firmware)"},
    {"typeread",
     K_GET,
     V_NONE,
     {"MFR_MODEL_B0B5", "MFR_MODEL_B6B11"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_type,
     "read power supply type"},
    {"dump",
     K_DUMP,
     V_NONE,
     {"MFR_MODEL_B0B5", "MFR_MODEL_B6B11", "MFR_REVISION_B0B5", "SYSTEM_CONFIG",
      "BIDIRECTIONAL_CONFIG", "MFR_DATE_B0B5"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_dump,
     "dump type, firmware, configuration, date, write count"},
    {"statusread",
     K_GET,
     V_NONE,
     {"SYSTEM_STATUS"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_sysstatus,
     "read system status"},
    {"faultread",
     K_GET,
     V_NONE,
     {"FAULT_STATUS"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_fault,
     "read fault status"},
    {"init_mode",
     K_OP,
     V_NONE,
     {NULL},
     0,
     0,
     0,
     NULL,
     "init",
     GW,
     r_init,
     "commission: CAN control, EEPROM writes off, battery mode"},
    {"can_up",
     K_CAN,
     V_IFACE,
     {NULL},
     0,
     0,
     0,
     NULL,
     NULL,
     BICCTL_RUN_CAN_UP,
     NULL,
     "bring a SocketCAN interface (default: -c file's Can=, else can0) up at 250 kbit/s"},
    {"can_down",
     K_CAN,
     V_IFACE,
     {NULL},
     0,
     0,
     0,
     NULL,
     NULL,
     BICCTL_RUN_CAN_DOWN,
     NULL,
     "take a SocketCAN interface down"},
    {"info",
     K_OP,
     V_NONE,
     {NULL},
     0,
     0,
     0,
     NULL,
     "info",
     GW,
     r_info,
     "gateway and device information"},
    {"devices",
     K_OP,
     V_NONE,
     {NULL},
     0,
     0,
     0,
     NULL,
     "devices",
     GW,
     r_devices,
     "list the devices the gateway knows"},
    {"status",
     K_STATUS,
     V_NONE,
     {NULL},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_status,
     "one-screen summary of the device(s) and controller groups"},
    {"eeprom",
     K_OP,
     V_NONE,
     {NULL},
     0,
     0,
     0,
     NULL,
     "eeprom",
     GW,
     r_eeprom,
     "EEPROM policy and persisted write counters"},
    {"watch",
     K_WATCH,
     V_NONE,
     {NULL},
     0,
     0,
     0,
     NULL,
     NULL,
     BICCTL_RUN_WATCH,
     NULL,
     "live telemetry and events until Ctrl-C or --count N"},
};

/* The registers `status` reads besides the info op. */
static const char *const s_status_regs[] = {
    "READ_VOUT",          "READ_IOUT",        "READ_VIN",
    "READ_TEMPERATURE_1", "READ_FAN_SPEED_1", "READ_FAN_SPEED_2",
    "OPERATION",          "DIRECTION_CTRL",   "VOUT_SET",
    "IOUT_SET",           "REVERSE_VOUT_SET", "REVERSE_IOUT_SET",
    "FAULT_STATUS",       "SYSTEM_STATUS",    NULL};

/* FAULT_STATUS bits (protocol reference 8.1) with the seed's names and texts, in the order
 * of the seed's fault dictionary. */
static const struct {
    const char *seed; /* name in the seed's fault dictionary */
    const char *name; /* name in the gateway's telemetry */
    int bit;
    const char *desc;
} s_faults[] = {
    {"fan", "fan_fail", 0, "fanspeed abnormal"},
    {"otp", "otp", 1, "over temperature protection"},
    {"otpHi", "hi_temp", 7, "internal hi temperature protection"},
    {"ovp", "ovp", 2, "over voltage protection"},
    {"ovpHi", "hv_ovp", 8, "over voltage protection"},
    {"olp", "olp", 3, "over current protection"},
    {"short", "short", 4, "short circuit protection"},
    {"acRange", "ac_fail", 5, "ac grid range"},
    {"dcOff", "op_off", 6, "dc off"},
};

/* ---------------------------------------------------------------- small helpers */

static void s_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_fmt(char *buf, size_t n, const char *fmt, ...)
{
    if (!buf || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

static bool s_num(const cJSON *obj, const char *key, double *out)
{
    const cJSON *it = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return false;
    *out = it->valuedouble;
    return true;
}

static const char *s_str(const cJSON *obj, const char *key)
{
    const cJSON *it = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static bool s_true(const cJSON *obj, const char *key)
{
    return cJSON_IsTrue(obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL);
}

/* Registers whose raw value is a two's-complement int16 (protocol reference 6). */
static bool s_signed_reg(const char *reg)
{
    return strcasecmp(reg, "READ_IOUT") == 0 || strcasecmp(reg, "READ_TEMPERATURE_1") == 0;
}

/* The slot of REG in a `get` reply, or NULL. */
static const cJSON *s_slot(const cJSON *reply, const char *reg)
{
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(reply, "values");
    if (!cJSON_IsObject(values))
        return NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(values, reg);
    return it ? it : cJSON_GetObjectItem(values, reg); /* names are case-insensitive */
}

/* Check the slot of REG: 0 when it holds a value, else the exit code with a message. */
static int s_slot_check(const cJSON *reply, const char *reg, char *err, size_t errlen)
{
    const cJSON *slot = s_slot(reply, reg);
    if (!cJSON_IsObject(slot)) {
        s_fmt(err, errlen, "gateway reply has no value for %s", reg);
        return BICCTL_EXIT_GATEWAY;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(slot, "error");
    if (e) {
        const char *code = s_str(e, "code");
        const char *msg = s_str(e, "message");
        s_fmt(err, errlen, "%s: %s: %s", reg, code ? code : "error", msg ? msg : "no message");
        return bicctl_exit_for_code(code);
    }
    return 0;
}

/* The raw integer of REG (sign-extended for the signed registers). */
static int s_slot_raw(const cJSON *reply, const char *reg, long *out, char *err, size_t errlen)
{
    int rc = s_slot_check(reply, reg, err, errlen);
    if (rc)
        return rc;
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(s_slot(reply, reg), "raw");
    int64_t r;
    if (cJSON_IsNumber(raw) && numconv_round(raw->valuedouble, LONG_MIN, LONG_MAX, &r) == 0) {
        long v = (long)r;
        if (s_signed_reg(reg) && v >= 32768 && v <= 65535)
            v -= 65536;
        *out = v;
        return 0;
    }
    if (cJSON_IsString(raw)) { /* multi-byte registers: hex of the data bytes, low byte first */
        const char *h = raw->valuestring;
        size_t len = strlen(h);
        unsigned long long v = 0;
        for (size_t i = 0; i + 1 < len && i < 16; i += 2) {
            char byte[3] = {h[i], h[i + 1], 0};
            char *end = NULL;
            unsigned long b = strtoul(byte, &end, 16);
            if (*end != '\0')
                goto bad;
            v |= (unsigned long long)b << (4 * i);
        }
        *out = (long)v;
        return 0;
    }
bad:
    s_fmt(err, errlen, "gateway reply for %s has no usable raw value", reg);
    return BICCTL_EXIT_GATEWAY;
}

/* The text value of a string register (MFR_*), or NULL with an error. */
static const char *s_slot_text(const cJSON *reply, const char *reg, int *rc, char *err,
                               size_t errlen)
{
    *rc = s_slot_check(reply, reg, err, errlen);
    if (*rc)
        return NULL;
    const char *v = s_str(s_slot(reply, reg), "value");
    if (!v) {
        s_fmt(err, errlen, "gateway reply for %s has no text value", reg);
        *rc = BICCTL_EXIT_GATEWAY;
    }
    return v;
}

/* Print REPLY without the envelope fields (v, ok, id), one line. */
static void s_print_result(const cJSON *reply, FILE *out)
{
    cJSON *copy = cJSON_Duplicate(reply, true);
    if (!copy)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "v");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "ok");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "id");
    char *text = cJSON_PrintUnformatted(copy);
    if (text) {
        fprintf(out, "%s\n", text);
        cJSON_free(text);
    }
    cJSON_Delete(copy);
}

static void s_print_json(const cJSON *obj, FILE *out)
{
    char *text = cJSON_PrintUnformatted(obj);
    if (text) {
        fprintf(out, "%s\n", text);
        cJSON_free(text);
    }
}

/* A Python str() rendering of a text, as the seed's dump prints its dictionary. */
static void s_print_pystr(FILE *out, const char *s)
{
    fputc('\'', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\'' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('\'', out);
}

/* ---------------------------------------------------------------- table access */

const bicctl_cmd_t *bicctl_cmd_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        if (strcmp(s_cmds[i].name, name) == 0)
            return &s_cmds[i];
    for (size_t i = 0; i < bicctl_npb_ncmds; i++)
        if (strcmp(bicctl_npb_cmds[i].name, name) == 0)
            return &bicctl_npb_cmds[i];
    return NULL;
}

const char *bicctl_cmd_name(const bicctl_cmd_t *cmd)
{
    return cmd->name;
}
bicctl_run_t bicctl_cmd_run(const bicctl_cmd_t *cmd)
{
    return cmd->run;
}
bool bicctl_cmd_slow(const bicctl_cmd_t *cmd)
{
    return cmd->op && strcmp(cmd->op, "init") == 0;
}

void bicctl_cmd_list(FILE *out)
{
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++) {
        const bicctl_cmd_t *c = &s_cmds[i];
        char name[32];
        snprintf(name, sizeof name, "%s%s", c->name,
                 c->val == V_CENTI   ? " VALUE"
                 : c->val == V_IFACE ? " [IFACE]"
                                     : "");
        fprintf(out, "  %-16s %s\n", name, c->help);
    }
    fputs("NPB chargers (--dev 64-67: the NPB at CAN address 0-3):\n", out);
    for (size_t i = 0; i < bicctl_npb_ncmds; i++)
        fprintf(out, "  %-16s %s\n", bicctl_npb_cmds[i].name, bicctl_npb_cmds[i].help);
}

int bicctl_exit_for_code(const char *code)
{
    static const char *const refused[] = {"out_of_range",  "lease_held", "no_lease", "read_only",
                                          "eeprom_budget", "bad_token",  NULL};
    static const char *const device[] = {
        "device_offline", "bus_down",   "timeout", "verify_failed",    "not_supported",
        "unknown_device", "no_voltage", "busy",    "unknown_register", NULL};
    if (!code)
        return BICCTL_EXIT_GATEWAY;
    /* bicctl validates its own fields, so what the gateway still finds wrong came from the
     * user: a missing --dev with several devices */
    if (strcmp(code, "bad_request") == 0)
        return BICCTL_EXIT_USAGE;
    for (size_t i = 0; refused[i]; i++)
        if (strcmp(code, refused[i]) == 0)
            return BICCTL_EXIT_REFUSED;
    for (size_t i = 0; device[i]; i++)
        if (strcmp(code, device[i]) == 0)
            return BICCTL_EXIT_DEVICE;
    return BICCTL_EXIT_GATEWAY; /* unknown_op, bad_version, internal...: a protocol mismatch */
}

/* ---------------------------------------------------------------- values */

int bicctl_cmd_check_value(const bicctl_cmd_t *cmd, const char *text, bicctl_args_t *args,
                           char *err, size_t errlen)
{
    args->has_value = false;
    args->arg = text;
    if (cmd->kind == K_NPB)
        return bicctl_npb_check_value(cmd, text, args, err, errlen);
    if (cmd->val == V_NONE) {
        if (text) {
            if (cmd->kind == K_FIXED && cmd->regs[0] && strcmp(cmd->regs[0], "DIRECTION_CTRL") == 0)
                s_fmt(err, errlen,
                      "%s takes no value (it only sets the direction); set the current with %s",
                      cmd->name, strcmp(cmd->name, "charge") == 0 ? "ccset" : "dcset");
            else
                s_fmt(err, errlen, "%s takes no value, got '%s'", cmd->name, text);
            return -1;
        }
        return 0;
    }
    if (cmd->val == V_IFACE) {
        if (!text)
            return 0;
        size_t len = strlen(text);
        bool ok = len > 0 && len < 16 && text[0] != '-';
        for (size_t i = 0; ok && i < len; i++) {
            char c = text[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        }
        if (!ok) {
            s_fmt(err, errlen,
                  "%s: '%s' is not a network interface name; allowed: 1-15 characters of "
                  "[A-Za-z0-9_.-], e.g. can0",
                  cmd->name, text);
            return -1;
        }
        return 0;
    }
    /* V_CENTI: an integer in units of 0.01 V or 0.01 A, as the seed takes it */
    if (!text) {
        s_fmt(err, errlen, "%s needs a VALUE: %s x 100 as an integer, %ld-%ld (e.g. %ld = %.2f %s)",
              cmd->name, cmd->unit, cmd->min, cmd->max, cmd->min * 2, cmd->min * 2 / 100.0,
              cmd->unit);
        return -1;
    }
    errno = 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE) {
        s_fmt(err, errlen,
              "%s: '%s' is not an integer; give %s x 100, %ld-%ld (e.g. 2566 = 25.66 %s)",
              cmd->name, text, cmd->unit, cmd->min, cmd->max, cmd->unit);
        return -1;
    }
    if (v < cmd->min || v > cmd->max) {
        s_fmt(err, errlen, "%s: %ld is out of range; allowed %ld-%ld (%.2f-%.2f %s, %s x 100)",
              cmd->name, v, cmd->min, cmd->max, cmd->min / 100.0, cmd->max / 100.0, cmd->unit,
              cmd->unit);
        return -1;
    }
    args->value = v;
    args->has_value = true;
    return 0;
}

/* ---------------------------------------------------------------- requests */

static cJSON *s_req(const char *op, const bicctl_args_t *a, int dev)
{
    cJSON *req = cJSON_CreateObject();
    if (!req)
        return NULL;
    cJSON_AddNumberToObject(req, "v", 1);
    cJSON_AddStringToObject(req, "op", op);
    if (dev >= 0)
        cJSON_AddNumberToObject(req, "dev", dev);
    cJSON_AddStringToObject(req, "client", a->client ? a->client : "bicctl");
    if (a->token)
        cJSON_AddStringToObject(req, "token", a->token);
    return req;
}

static cJSON *s_get_req(const bicctl_args_t *a, int dev, const char *const *regs)
{
    cJSON *req = s_req("get", a, dev);
    cJSON *arr = cJSON_AddArrayToObject(req, "regs");
    for (size_t i = 0; regs[i]; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(regs[i]));
    return req;
}

/* The devices `status` shows: from the info reply, filtered by --dev, online only when
 * ONLINE_ONLY. Returns the K-th, or NULL. */
static const cJSON *s_status_device(const bicctl_args_t *a, const cJSON *info, size_t k,
                                    bool online_only)
{
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(info, "devices");
    const cJSON *d;
    size_t i = 0;
    cJSON_ArrayForEach(d, devs)
    {
        double addr;
        if (!s_num(d, "dev", &addr))
            continue;
        if (a->dev >= 0 && (int)addr != a->dev)
            continue;
        if (online_only && !s_true(d, "online"))
            continue;
        if (i++ == k)
            return d;
    }
    return NULL;
}

cJSON *bicctl_next_request(const bicctl_cmd_t *cmd, const bicctl_args_t *a, cJSON *const *replies,
                           size_t n)
{
    switch (cmd->kind) {
    case K_GET:
        return n == 0 ? s_get_req(a, a->dev, cmd->regs) : NULL;
    case K_SET:
    case K_FIXED: {
        if (n > 0)
            return NULL;
        cJSON *req = s_req("set", a, a->dev);
        cJSON_AddStringToObject(req, "reg", cmd->regs[0]);
        cJSON_AddNumberToObject(req, "raw", cmd->kind == K_SET ? a->value : cmd->fixed_raw);
        return req;
    }
    case K_OP:
        if (n > 0)
            return NULL;
        return s_req(cmd->op, a, strcmp(cmd->op, "devices") == 0 ? -1 : a->dev);
    case K_DUMP:
        if (n == 0)
            return s_get_req(a, a->dev, cmd->regs);
        return n == 1 ? s_req("eeprom", a, a->dev) : NULL;
    case K_STATUS: {
        if (n == 0)
            return s_req("info", a, -1); /* all devices: --dev is applied when reading it */
        const cJSON *d = s_status_device(a, replies[0], n - 1, true);
        double addr;
        if (!d || !s_num(d, "dev", &addr))
            return NULL;
        return s_get_req(a, (int)addr, bicctl_npb_is(d) ? bicctl_npb_status_regs : s_status_regs);
    }
    case K_NPB:
        return bicctl_npb_next(cmd, a, replies, n);
    case K_WATCH:
    case K_CAN:
        return NULL;
    }
    return NULL;
}

/* ---------------------------------------------------------------- replies */

bool bicctl_reply_tolerated(const bicctl_cmd_t *cmd, size_t n)
{
    return cmd && cmd->kind == K_STATUS && n > 1;
}

int bicctl_reply_check(const bicctl_cmd_t *cmd, const bicctl_args_t *a, const cJSON *reply,
                       char *msg, size_t msglen)
{
    if (!cJSON_IsObject(reply)) {
        s_fmt(msg, msglen, "gateway reply is not a JSON object");
        return BICCTL_EXIT_GATEWAY;
    }
    double v;
    if (s_true(reply, "ok")) {
        if (!s_num(reply, "v", &v) || v != 1) {
            s_fmt(msg, msglen, "gateway reply is not protocol version 1");
            return BICCTL_EXIT_GATEWAY;
        }
        return BICCTL_EXIT_OK;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
    const char *code = s_str(e, "code");
    const char *text = s_str(e, "message");
    if (!code) {
        s_fmt(msg, msglen, "gateway reply is neither ok nor a coded error");
        return BICCTL_EXIT_GATEWAY;
    }
    if (!text)
        text = "no message";
    int rc = bicctl_exit_for_code(code);
    double lo, hi;
    if (strcmp(code, "out_of_range") == 0 && s_num(e, "min", &lo) && s_num(e, "max", &hi)) {
        const char *unit = s_str(e, "unit");
        /* the gateway's reason beyond the range, e.g. the charge voltage the device holds */
        const char *why = strstr(text, " (the ");
        if (cmd && cmd->kind == K_SET && a && a->has_value)
            s_fmt(msg, msglen,
                  "refused: %s %ld (%.2f %s) is outside this device's range; allowed %ld-%ld "
                  "(%.2f-%.2f %s)%s",
                  cmd->name, a->value, a->value / 100.0, cmd->unit, (long)llround(lo * 100),
                  (long)llround(hi * 100), lo, hi, cmd->unit, why ? why : "");
        else
            s_fmt(msg, msglen, "refused: %s; allowed %g-%g%s%s", text, lo, hi, unit ? " " : "",
                  unit ? unit : "");
        return rc;
    }
    if (strcmp(code, "lease_held") == 0) {
        const char *holder = s_str(e, "holder");
        double ttl;
        if (holder && s_num(e, "expires_in_s", &ttl))
            s_fmt(msg, msglen, "refused: controlled by %s (lease expires in %.1f s)", holder, ttl);
        else if (holder)
            s_fmt(msg, msglen, "refused: controlled by %s", holder);
        else
            s_fmt(msg, msglen, "refused: %s", text);
        return rc;
    }
    if (rc == BICCTL_EXIT_USAGE)
        s_fmt(msg, msglen, "bad request: %s%s", text,
              strstr(text, "'dev'") ? " (give --dev N)" : "");
    else if (rc == BICCTL_EXIT_REFUSED)
        s_fmt(msg, msglen, "refused: %s", text);
    else if (rc == BICCTL_EXIT_DEVICE)
        s_fmt(msg, msglen, "device error (%s): %s", code, text);
    else
        s_fmt(msg, msglen, "gateway error (%s): %s", code, text);
    return rc;
}

int bicctl_write_outcome(const bicctl_cmd_t *cmd, const cJSON *reply, char *line, size_t linelen)
{
    if (!cmd || (cmd->kind != K_SET && cmd->kind != K_FIXED && cmd->kind != K_NPB))
        return -1;
    if (cmd->kind == K_NPB && !s_str(reply, "reg"))
        return -1; /* an NPB command that only read */
    const char *reg = s_str(reply, "reg");
    const char *outcome = s_str(reply, "outcome");
    double value = 0, dev = 0, until = 0;
    s_num(reply, "value", &value);
    s_num(reply, "dev", &dev);
    char what[64];
    if (cmd->unit && strcmp(cmd->unit, "min") != 0)
        snprintf(what, sizeof what, "%s %.2f %s", reg ? reg : cmd->regs[0], value, cmd->unit);
    else if (cmd->unit)
        snprintf(what, sizeof what, "%s %g %s", reg ? reg : cmd->regs[0], value, cmd->unit);
    else
        snprintf(what, sizeof what, "%s %g", reg ? reg : cmd->regs[0], value);
    if (!outcome) /* a gateway from before the outcome field */
        outcome = s_true(reply, "deferred")  ? "deferred"
                  : s_true(reply, "written") ? "written"
                                             : "unchanged";
    if (strcmp(outcome, "deferred") == 0) {
        const char *why = s_str(reply, "reason");
        if (s_num(reply, "until_s", &until))
            s_fmt(line, linelen,
                  "%s: %s deferred for %.0f s, not on the device yet (%s) (device %.0f)", cmd->name,
                  what, until, why ? why : "EEPROM write limit", dev);
        else
            s_fmt(line, linelen, "%s: %s deferred, not on the device yet (%s) (device %.0f)",
                  cmd->name, what, why ? why : "EEPROM write limit", dev);
        return BICCTL_EXIT_DEFERRED;
    }
    if (strcmp(outcome, "unchanged") == 0) {
        s_fmt(line, linelen, "%s: %s unchanged, the device already holds it (device %.0f)",
              cmd->name, what, dev);
        return BICCTL_EXIT_UNCHANGED;
    }
    s_fmt(line, linelen, "%s: %s written (device %.0f)", cmd->name, what, dev);
    return BICCTL_EXIT_OK;
}

/* ---------------------------------------------------------------- renderers */

RENDER(r_quiet)
{
    (void)c, (void)a, (void)r, (void)n, (void)out, (void)err, (void)errlen;
    return 0; /* the seed prints nothing after a write; the exit code tells */
}

RENDER(r_raw)
{
    long v;
    int rc = s_slot_raw(r[0], c->regs[0], &v, err, errlen);
    if (rc)
        return rc;
    fprintf(out, "%ld\n", v);
    return 0;
}

RENDER(r_fan)
{
    long f1, f2;
    int rc = s_slot_raw(r[0], c->regs[0], &f1, err, errlen);
    if (!rc)
        rc = s_slot_raw(r[0], c->regs[1], &f2, err, errlen);
    if (rc)
        return rc;
    fprintf(out, "fan1:%ld fan2:%ld\n", f1, f2);
    return 0;
}

RENDER(r_type)
{
    int rc;
    const char *t1 = s_slot_text(r[0], c->regs[0], &rc, err, errlen);
    if (rc)
        return rc;
    const char *t2 = s_slot_text(r[0], c->regs[1], &rc, err, errlen);
    if (rc)
        return rc;
    fprintf(out, "%s%s\n", t1, t2);
    return 0;
}

RENDER(r_sysstatus)
{
    /* The manual's bit positions (ADL_ON 4, INITIAL_STATE 5, EEPER 6); the seed read 3/4/5. */
    static const struct {
        int bit;
        const char *zero, *one;
    } lines[] = {
        {0, "Current Device is Slave", "Current Device is Master"},
        {1, "Secondary DD output Status TOO LOW", "Secondary DD output Status NORMAL"},
        {2, "Primary PFC OFF oder abnormal", "Primary PFC ON normally"}, /* the seed's words */
        {4, "Active Dummy Load off / not_supported", "Active Dummy Load on"},
        {5, "Device in initialization status", "NOT in initialization status"},
        {6, "EEPROM data access normal", "EEPROM data access error"},
    };
    long v;
    int rc = s_slot_raw(r[0], c->regs[0], &v, err, errlen);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        fprintf(out, "%s\n", (v >> lines[i].bit) & 1 ? lines[i].one : lines[i].zero);
    return 0;
}

RENDER(r_fault)
{
    long v;
    int rc = s_slot_raw(r[0], c->regs[0], &v, err, errlen);
    if (rc)
        return rc;
    if (a->table) {
        for (size_t i = 0; i < sizeof s_faults / sizeof s_faults[0]; i++)
            fprintf(out, "%-8s %ld  %s\n", s_faults[i].seed, (v >> s_faults[i].bit) & 1,
                    s_faults[i].desc);
        return 0;
    }
    /* cbic2200.py's output, which scripts parse: a fresh process sees every fault change
     * from its starting state (can -1, the others 0), in the order it reads the bits,
     * then its whole dictionary (eeprom comes from SYSTEM_STATUS, which faultread does not
     * read: 0 as in the seed). */
    fputs("fault state changed can = 0 cnt:0\n", out);
    for (int bit = 0; bit <= 8; bit++)
        for (size_t i = 0; i < sizeof s_faults / sizeof s_faults[0]; i++)
            if (s_faults[i].bit == bit && ((v >> bit) & 1))
                fprintf(out, "fault state changed %s = 1 cnt:1\n", s_faults[i].seed);
    for (size_t i = 0; i < sizeof s_faults / sizeof s_faults[0]; i++)
        fprintf(out, "{'active': %ld, 'cnt': %ld, 'desc': '%s'}\n", (v >> s_faults[i].bit) & 1,
                (v >> s_faults[i].bit) & 1, s_faults[i].desc);
    fputs("{'active': 0, 'cnt': 0, 'desc': 'eeprom fault'}\n"
          "{'active': 0, 'cnt': 0, 'desc': 'can-com error / read-tmo'}\n",
          out);
    return 0;
}

/* The eeprom block of an `eeprom` or `info` reply (flat or nested). */
static const cJSON *s_eeprom_block(const cJSON *obj)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(obj, "eeprom");
    return cJSON_IsObject(e) ? e : obj;
}

RENDER(r_dump)
{
    int rc;
    const char *m1 = s_slot_text(r[0], "MFR_MODEL_B0B5", &rc, err, errlen);
    if (rc)
        return rc;
    const char *m2 = s_slot_text(r[0], "MFR_MODEL_B6B11", &rc, err, errlen);
    if (rc)
        return rc;
    long rev, cfg, bdir;
    if ((rc = s_slot_raw(r[0], "MFR_REVISION_B0B5", &rev, err, errlen)) ||
        (rc = s_slot_raw(r[0], "SYSTEM_CONFIG", &cfg, err, errlen)) ||
        (rc = s_slot_raw(r[0], "BIDIRECTIONAL_CONFIG", &bdir, err, errlen)))
        return rc;
    const char *date = s_slot_text(r[0], "MFR_DATE_B0B5", &rc, err, errlen);
    if (rc)
        return rc;
    double writes = 0;
    if (n < 2 || !s_num(s_eeprom_block(r[1]), "writes_total", &writes)) {
        s_fmt(err, errlen, "gateway eeprom reply has no writes_total");
        return BICCTL_EXIT_GATEWAY;
    }
    char model[32], firm[16], scfg[16], sbdir[16];
    snprintf(model, sizeof model, "%s%s", m1, m2);
    /* firmRev as the seed shows it: the first two revision bytes as a little-endian word */
    snprintf(firm, sizeof firm, "0x%lx", rev & 0xffff);
    snprintf(scfg, sizeof scfg, "0x%lx", cfg);
    snprintf(sbdir, sizeof sbdir, "0x%lx", bdir);
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        double dev;
        if (s_num(r[0], "dev", &dev))
            cJSON_AddNumberToObject(o, "dev", dev);
        cJSON_AddStringToObject(o, "modelName", model);
        cJSON_AddStringToObject(o, "firmRev", firm);
        cJSON_AddStringToObject(o, "sysCfg", scfg);
        cJSON_AddStringToObject(o, "sysCfgBDir", sbdir);
        cJSON_AddStringToObject(o, "manDate", date);
        cJSON_AddNumberToObject(o, "cntWrite", writes);
        s_print_json(o, out);
        cJSON_Delete(o);
        return 0;
    }
    fputs("dev-info:{'modelName': ", out);
    s_print_pystr(out, model);
    fputs(", 'firmRev': ", out);
    s_print_pystr(out, firm);
    fputs(", 'sysCfg': ", out);
    s_print_pystr(out, scfg);
    fputs(", 'sysCfgBDir': ", out);
    s_print_pystr(out, sbdir);
    fputs(", 'manDate': ", out);
    s_print_pystr(out, date);
    fprintf(out, ", 'cntWrite': %.0f}\n", writes);
    return 0;
}

RENDER(r_init)
{
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(r[0], "steps");
    const cJSON *s;
    cJSON_ArrayForEach(s, steps)
    {
        if (cJSON_IsString(s))
            fprintf(out, "%s\n", s->valuestring);
    }
    if (s_true(r[0], "power_cycle_needed"))
        fputs("need repowering: switch the AC supply off and on to activate battery mode\n", out);
    fputs("init_mode done\n", out);
    return 0;
}

static void s_range(FILE *out, const cJSON *limits, const char *key, const char *unit)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(limits, key);
    const cJSON *lo = cJSON_GetArrayItem(l, 0), *hi = cJSON_GetArrayItem(l, 1);
    if (cJSON_IsNumber(lo) && cJSON_IsNumber(hi))
        fprintf(out, "%.2f-%.2f %s", lo->valuedouble, hi->valuedouble, unit);
    else
        fprintf(out, "? %s", unit);
}

static void s_print_lease(FILE *out, const cJSON *lease)
{
    const char *holder = s_str(lease, "holder");
    double ttl;
    if (!holder)
        fputs("none\n", out);
    else if (s_num(lease, "expires_in_s", &ttl))
        fprintf(out, "held by %s, expires in %.1f s\n", holder, ttl);
    else
        fprintf(out, "held by %s\n", holder);
}

static void s_print_eeprom_line(FILE *out, const cJSON *e)
{
    const char *policy = s_str(e, "policy");
    double total = 0, interval;
    s_num(e, "writes_total", &total);
    fprintf(out, "policy %s", policy ? policy : "?");
    if (policy && strcmp(policy, "budget") == 0 && s_num(e, "min_interval_s", &interval))
        fprintf(out, " (min %.0f s between writes)", interval);
    fprintf(out, ", %.0f persisted writes", total);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(e, "writes"), *it;
    bool first = true;
    cJSON_ArrayForEach(it, w)
    {
        if (!cJSON_IsNumber(it) || it->valuedouble == 0)
            continue; /* the one-line view lists the registers that were written */
        fprintf(out, "%s%s %.0f", first ? " (" : ", ", it->string, it->valuedouble);
        first = false;
    }
    if (!first)
        fputc(')', out);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pending");
    first = true;
    cJSON_ArrayForEach(it, p)
    {
        fprintf(out, "%s%s", first ? ", pending " : ", ", it->string);
        if (cJSON_IsNumber(it))
            fprintf(out, " %g", it->valuedouble);
        first = false;
    }
    fputc('\n', out);
}

static void s_print_firmware(FILE *out, const cJSON *d)
{
    const cJSON *fw = cJSON_GetObjectItemCaseSensitive(d, "firmware");
    const cJSON *mcu = cJSON_GetObjectItemCaseSensitive(fw, "mcu"), *it;
    bool first = true;
    cJSON_ArrayForEach(it, mcu)
    {
        if (cJSON_IsString(it)) {
            fprintf(out, "%s%s", first ? "" : "/", it->valuestring);
            first = false;
        }
    }
    const char *raw = s_str(fw, "raw");
    if (first && !raw)
        fputs("?", out);
    else if (raw)
        fprintf(out, "%s(%s)", first ? "" : " ", raw);
}

/* The header lines every device view shares (info and status). */
static void s_print_device_head(FILE *out, const cJSON *d)
{
    double dev = -1;
    s_num(d, "dev", &dev);
    const char *model = s_str(d, "model");
    fprintf(out, "device %.0f      %s, %s\n", dev, model ? model : "unknown model",
            s_true(d, "online") ? "online" : "OFFLINE");
    fputs("firmware      ", out);
    s_print_firmware(out, d);
    fputc('\n', out);
    const char *mode = s_str(d, "mode"), *pending = s_str(d, "mode_pending");
    if (bicctl_npb_is(d)) { /* charger or psu: CURVE_CONFIG's, no CAN control bit */
        fprintf(out, "mode          %s\n", mode ? mode : "?");
        return;
    }
    fprintf(out, "mode          %s, CAN control %s", mode ? mode : "?",
            s_true(d, "can_ctrl") ? "on" : "off");
    if (pending)
        fprintf(out, ", %s after the next power cycle", pending);
    fputc('\n', out);
}

static void s_print_device_tail(FILE *out, const cJSON *d)
{
    if (bicctl_npb_is(d)) {
        bicctl_npb_print_device(out, d);
        goto rest;
    }
    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(d, "limits");
    fputs("limits        charge ", out);
    s_range(out, limits, "vout_v", "V");
    fputs(" ", out);
    s_range(out, limits, "iout_a", "A");
    fputs("; discharge ", out);
    s_range(out, limits, "rev_vout_v", "V");
    fputs(" ", out);
    s_range(out, limits, "rev_iout_a", "A");
    fputc('\n', out);
    /* whether the gateway brought the [DEVICE] values onto the device */
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(d, "device_limits");
    const char *st = s_str(dl, "state");
    if (st && strcmp(st, "ok") == 0)
        fputs("device values the [DEVICE] end voltages and current maxima are on the device\n",
              out);
    else if (st && strcmp(st, "failed") == 0)
        fprintf(out, "device values NOT APPLIED: %s; no setpoint until they are\n",
                s_str(dl, "error") ? s_str(dl, "error") : "?");
    else if (st && strcmp(st, "off") == 0)
        fputs("device values not written by the gateway ([GATEWAY] ApplyDeviceLimits = 0 or no "
              "[DEVICE] block)\n",
              out);
    else if (st)
        fputs("device values being applied\n", out);
rest:
    fputs("lease         ", out);
    s_print_lease(out, cJSON_GetObjectItemCaseSensitive(d, "lease"));
    fputs("eeprom        ", out);
    s_print_eeprom_line(out, cJSON_GetObjectItemCaseSensitive(d, "eeprom"));
}

RENDER(r_info)
{
    if (a->json) {
        s_print_result(r[0], out);
        return 0;
    }
    const cJSON *gw = cJSON_GetObjectItemCaseSensitive(r[0], "gateway");
    if (cJSON_IsObject(gw)) {
        const char *ver = s_str(gw, "version"), *tr = s_str(gw, "transport");
        const char *bus = s_str(gw, "bus");
        double up = 0;
        s_num(gw, "uptime_s", &up);
        fprintf(out, "gateway       bic-can-gateway %s, %s, bus %s, up %.0f s\n", ver ? ver : "?",
                tr ? tr : "?", bus ? bus : "?", up);
    }
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r[0], "devices"))
    {
        s_print_device_head(out, d);
        const char *serial = s_str(d, "serial"), *date = s_str(d, "date");
        fprintf(out, "serial        %s, made %s\n", serial ? serial : "?", date ? date : "?");
        const cJSON *caps = cJSON_GetObjectItemCaseSensitive(d, "caps");
        fprintf(out, "capabilities  fans %s, EEP_OFF %s\n", s_true(caps, "fans") ? "yes" : "no",
                s_true(caps, "eep_off") ? "yes" : "no");
        s_print_device_tail(out, d);
    }
    return 0;
}

RENDER(r_devices)
{
    if (a->json) {
        s_print_result(r[0], out);
        return 0;
    }
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r[0], "devices"))
    {
        double dev = -1;
        s_num(d, "dev", &dev);
        const char *model = s_str(d, "model");
        fprintf(out, "%.0f %s %s\n", dev, model ? model : "unknown",
                s_true(d, "online") ? "online" : "offline");
    }
    return 0;
}

RENDER(r_eeprom)
{
    if (a->json) {
        s_print_result(r[0], out);
        return 0;
    }
    const cJSON *e = s_eeprom_block(r[0]);
    const char *policy = s_str(e, "policy");
    double v;
    fprintf(out, "policy        %s", policy ? policy : "?");
    if (policy && strcmp(policy, "eep_off") == 0)
        fputs(" (EEP_OFF set: set-points stay in RAM, nothing is persisted)", out);
    else if (s_num(e, "min_interval_s", &v))
        fprintf(out, " (at most one persisted write per %.0f s)", v);
    fputc('\n', out);
    fprintf(out, "writes total  %.0f\n", s_num(e, "writes_total", &v) ? v : 0.0);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(e, "writes"))
    {
        if (cJSON_IsNumber(it))
            fprintf(out, "  %-22s %.0f\n", it->string, it->valuedouble);
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pending");
    if (cJSON_GetArraySize(p) == 0)
        fputs("pending       none\n", out);
    cJSON_ArrayForEach(it, p)
    {
        if (cJSON_IsNumber(it))
            fprintf(out, "pending       %s %g\n", it->string, it->valuedouble);
        else
            fprintf(out, "pending       %s\n", it->string);
    }
    return 0;
}

/* A register's engineering value from a get reply, or false (slot missing or an error). */
static bool s_val(const cJSON *get, const char *reg, double *out)
{
    const cJSON *slot = s_slot(get, reg);
    if (!cJSON_IsObject(slot) || cJSON_GetObjectItemCaseSensitive(slot, "error"))
        return false;
    return s_num(slot, "value", out);
}

/* A number with DEC decimals (and a sign when SIGNED) and its unit. */
static void s_print_fixed(FILE *out, double v, int dec, bool is_signed, const char *unit)
{
    fprintf(out, is_signed ? "%+.*f %s" : "%.*f %s", dec, v, unit);
}

static void s_print_val(FILE *out, const cJSON *get, const char *reg, int dec, bool is_signed,
                        const char *unit)
{
    double v;
    if (s_val(get, reg, &v))
        s_print_fixed(out, v, dec, is_signed, unit);
    else
        fputs("n/a", out);
}

static void s_print_status_values(FILE *out, const cJSON *get)
{
    double v, i, x;
    fputs("output        ", out);
    if (s_val(get, "OPERATION", &x))
        fputs(x != 0 ? "on" : "off", out);
    else
        fputs("n/a", out);
    fputs(", direction ", out);
    if (s_val(get, "DIRECTION_CTRL", &x))
        fputs(x != 0 ? "discharge" : "charge", out);
    else
        fputs("n/a", out);
    fputc('\n', out);
    fputs("battery       ", out);
    s_print_val(out, get, "READ_VOUT", 2, false, "V");
    fputs("  ", out);
    s_print_val(out, get, "READ_IOUT", 2, true, "A");
    if (s_val(get, "READ_VOUT", &v) && s_val(get, "READ_IOUT", &i))
        fprintf(out, "  %+.1f W (%s)", v * i,
                i > 0   ? "charging"
                : i < 0 ? "discharging"
                        : "no current");
    fputc('\n', out);
    fputs("AC            ", out);
    s_print_val(out, get, "READ_VIN", 1, false, "V");
    fputs("\ntemperature   ", out);
    s_print_val(out, get, "READ_TEMPERATURE_1", 1, false, "degC");
    fputs("\nfans          ", out);
    double f1, f2;
    if (s_val(get, "READ_FAN_SPEED_1", &f1) && s_val(get, "READ_FAN_SPEED_2", &f2))
        fprintf(out, "%.0f / %.0f RPM", f1, f2);
    else
        fputs("n/a (not reported by this firmware)", out);
    fputs("\nset-points    charge ", out);
    s_print_val(out, get, "VOUT_SET", 2, false, "V");
    fputc(' ', out);
    s_print_val(out, get, "IOUT_SET", 2, false, "A");
    fputs("; discharge ", out);
    s_print_val(out, get, "REVERSE_VOUT_SET", 2, false, "V");
    fputc(' ', out);
    s_print_val(out, get, "REVERSE_IOUT_SET", 2, false, "A");
    fputs("\nfaults        ", out);
    long raw;
    char dummy[8];
    if (s_slot_raw(get, "FAULT_STATUS", &raw, dummy, sizeof dummy) == 0) {
        bool any = false;
        for (size_t k = 0; k < sizeof s_faults / sizeof s_faults[0]; k++) {
            if ((raw >> s_faults[k].bit) & 1) {
                fprintf(out, "%s%s", any ? ", " : "", s_faults[k].name);
                any = true;
            }
        }
        if (!any)
            fputs("none", out);
    } else {
        fputs("n/a", out);
    }
    fputs("\nsystem        ", out);
    if (s_slot_raw(get, "SYSTEM_STATUS", &raw, dummy, sizeof dummy) == 0)
        fprintf(out, "%s, DC %s, PFC %s, %s, EEPROM %s", raw & 1 ? "master" : "slave",
                raw & 2 ? "ok" : "too low", raw & 4 ? "ok" : "off",
                raw & 32 ? "ready" : "initialising", raw & 64 ? "ERROR" : "ok");
    else
        fputs("n/a", out);
    fputc('\n', out);
}

RENDER(r_status)
{
    const cJSON *info = r[0];
    cJSON *all = a->json ? cJSON_CreateArray() : NULL;
    size_t online = 0, shown = 0;
    int rc = 0;
    const cJSON *d;
    const cJSON *devs[BICCTL_STATUS_DEVS], *gets[BICCTL_STATUS_DEVS]; /* for the groups */
    for (size_t k = 0; (d = s_status_device(a, info, k, false)) != NULL; k++) {
        const cJSON *get = NULL;
        if (s_true(d, "online")) {
            if (1 + online < n)
                get = r[1 + online];
            online++;
            if (get && !s_true(get, "ok")) { /* shown without its registers */
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(get, "error");
                const char *code = s_str(e, "code"), *text = s_str(e, "message");
                double dev = -1;
                s_num(d, "dev", &dev);
                s_fmt(err, errlen, "device %.0f: registers not read: %s: %s", dev,
                      code ? code : "?", text ? text : "no message");
                rc = BICCTL_EXIT_DEVICE;
            }
        } else {
            double dev = -1;
            s_num(d, "dev", &dev);
            s_fmt(err, errlen, "device %.0f is offline", dev);
            rc = BICCTL_EXIT_DEVICE;
        }
        if (all) {
            cJSON *o = cJSON_Duplicate(d, true);
            const cJSON *vals = get ? cJSON_GetObjectItemCaseSensitive(get, "values") : NULL;
            cJSON_AddItemToObject(o, "values",
                                  vals ? cJSON_Duplicate(vals, true) : cJSON_CreateNull());
            cJSON_AddItemToArray(all, o);
        } else {
            if (shown)
                fputc('\n', out);
            s_print_device_head(out, d);
            if (get && bicctl_npb_is(d))
                bicctl_npb_print_status(out, d, get);
            else if (get)
                s_print_status_values(out, get);
            s_print_device_tail(out, d);
        }
        if (shown < BICCTL_STATUS_DEVS) {
            devs[shown] = d;
            gets[shown] = get;
        }
        shown++;
    }
    size_t listed = shown < BICCTL_STATUS_DEVS ? shown : BICCTL_STATUS_DEVS;
    if (!all)
        bicctl_group_print(out, devs, gets, listed);
    if (all) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "devices", all);
        cJSON_AddItemToObject(o, "groups", bicctl_group_json(devs, gets, listed));
        s_print_json(o, out);
        cJSON_Delete(o);
    }
    if (shown == 0) {
        if (a->dev >= 0)
            s_fmt(err, errlen, "the gateway knows no device %d", a->dev);
        else
            s_fmt(err, errlen, "the gateway knows no devices");
        return BICCTL_EXIT_DEVICE;
    }
    return rc;
}

int bicctl_render(const bicctl_cmd_t *cmd, const bicctl_args_t *a, cJSON *const *replies, size_t n,
                  FILE *out, char *err, size_t errlen)
{
    if (!cmd->render || n == 0) {
        s_fmt(err, errlen, "%s: nothing to render", cmd->name);
        return BICCTL_EXIT_GATEWAY;
    }
    if (a->json && (cmd->kind == K_GET || cmd->kind == K_SET || cmd->kind == K_FIXED ||
                    (cmd->kind == K_OP && strcmp(cmd->op, "init") == 0))) {
        /* still check the slots: a read that failed is an error in JSON mode too */
        for (size_t i = 0; cmd->kind == K_GET && cmd->regs[i]; i++) {
            int rc = s_slot_check(replies[0], cmd->regs[i], err, errlen);
            if (rc)
                return rc;
        }
        s_print_result(replies[0], out);
        return 0;
    }
    return cmd->render(cmd, a, replies, n, out, err, errlen);
}

/* ---------------------------------------------------------------- watch */

static void s_print_time(FILE *out, const cJSON *msg)
{
    double ts;
    if (!s_num(msg, "ts_ms", &ts)) {
        fputs("--:--:--.---", out);
        return;
    }
    time_t sec = (time_t)(ts / 1000);
    struct tm tm;
    localtime_r(&sec, &tm);
    fprintf(out, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, (int)fmod(ts, 1000.0));
}

static void s_print_num_or_na(FILE *out, const cJSON *msg, const char *key, int dec, bool is_signed,
                              const char *unit)
{
    double v;
    if (s_num(msg, key, &v))
        s_print_fixed(out, v, dec, is_signed, unit);
    else
        fputs("n/a", out);
}

int bicctl_render_pub(const char *topic, const cJSON *msg, int dev, bool json, FILE *out)
{
    if (!topic || !cJSON_IsObject(msg))
        return 0;
    bool is_tel = strncmp(topic, "tel/", 4) == 0, is_evt = strncmp(topic, "evt/", 4) == 0;
    bool is_gw = strcmp(topic, "gw") == 0;
    if (!is_tel && !is_evt && !is_gw)
        return 0;
    if (is_gw && dev >= 0)
        return 0;
    if ((is_tel || is_evt) && dev >= 0) {
        char *end = NULL;
        long d = strtol(topic + 4, &end, 10);
        if (end == topic + 4 || *end != '\0' || d != dev)
            return 0;
    }
    if (json) {
        cJSON *copy = cJSON_Duplicate(msg, true);
        cJSON_AddStringToObject(copy, "topic", topic);
        s_print_json(copy, out);
        cJSON_Delete(copy);
        return 1;
    }
    s_print_time(out, msg);
    if (is_gw) {
        const char *bus = s_str(msg, "bus");
        fprintf(out, " gateway bus %s", bus ? bus : "?");
        static const char *const keys[] = {"frames_tx", "frames_rx", "errors",      "timeouts",
                                           "retries",   "stray",     "queue_depth", NULL};
        for (size_t i = 0; keys[i]; i++) {
            double v;
            if (s_num(msg, keys[i], &v))
                fprintf(out, " %s %.0f", keys[i], v);
        }
        fputc('\n', out);
        return 1;
    }
    fprintf(out, " dev %s", topic + 4);
    if (is_evt) {
        const char *ev = s_str(msg, "event");
        fprintf(out, " event %s", ev ? ev : "?");
        const cJSON *it;
        cJSON_ArrayForEach(it, msg)
        {
            if (!it->string || strcmp(it->string, "v") == 0 || strcmp(it->string, "dev") == 0 ||
                strcmp(it->string, "ts_ms") == 0 || strcmp(it->string, "event") == 0)
                continue;
            if (cJSON_IsString(it)) {
                fprintf(out, " %s=%s", it->string, it->valuestring);
            } else {
                char *t = cJSON_PrintUnformatted(it);
                fprintf(out, " %s=%s", it->string, t ? t : "?");
                cJSON_free(t);
            }
        }
        fputc('\n', out);
        return 1;
    }
    if (!s_true(msg, "online")) {
        fputs(" OFFLINE\n", out);
        return 1;
    }
    fputs(" ", out);
    s_print_num_or_na(out, msg, "dc_v", 2, false, "V");
    fputs(" ", out);
    s_print_num_or_na(out, msg, "dc_a", 2, true, "A");
    fputs(" ", out);
    s_print_num_or_na(out, msg, "dc_w", 1, true, "W");
    fputs(" AC ", out);
    s_print_num_or_na(out, msg, "ac_v", 1, false, "V");
    fputs(" ", out);
    s_print_num_or_na(out, msg, "temp_c", 1, false, "degC");
    double op;
    const char *dir = s_str(msg, "direction");
    fprintf(out, " output %s %s", s_num(msg, "operation", &op) ? (op != 0 ? "on" : "off") : "n/a",
            dir ? dir : "n/a");
    const cJSON *fault = cJSON_GetObjectItemCaseSensitive(msg, "fault");
    bool any = false;
    for (size_t k = 0; k < sizeof s_faults / sizeof s_faults[0]; k++) {
        if (s_true(fault, s_faults[k].name)) {
            fprintf(out, "%s%s", any ? "," : " faults ", s_faults[k].name);
            any = true;
        }
    }
    if (!any)
        fputs(" faults none", out);
    const char *holder = s_str(cJSON_GetObjectItemCaseSensitive(msg, "lease"), "holder");
    if (holder)
        fprintf(out, " lease %s", holder);
    fputc('\n', out);
    return 1;
}

/* ---------------------------------------------------------------- shared with bicctl_npb.c */

cJSON *bicctl_i_req(const char *op, const bicctl_args_t *a, int dev)
{
    return s_req(op, a, dev);
}

int bicctl_i_slot_raw(const cJSON *reply, const char *reg, long *out, char *err, size_t errlen)
{
    return s_slot_raw(reply, reg, out, err, errlen);
}

bool bicctl_i_val(const cJSON *get, const char *reg, double *out)
{
    return s_val(get, reg, out);
}

void bicctl_i_print_result(const cJSON *reply, FILE *out)
{
    s_print_result(reply, out);
}

void bicctl_i_range(FILE *out, const cJSON *limits, const char *key, const char *unit)
{
    s_range(out, limits, key, unit);
}
