/*
 * bicctl_cmd - the command table of bicctl and everything about a command that needs no
 * socket: value validation, the gateway requests it needs (docs/ipc-protocol.md) and the
 * checks on the replies; how they are printed is bicctl_render.c's.
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

#define GW BICCTL_RUN_GATEWAY

/* Volt and ampere bounds: the union of the four variants' control ranges
 * (docs/configuration.md [DEVICE]); the gateway narrows them to the device's model and mode. */
static const bicctl_cmd_t s_cmds[] = {
    {"on", K_FIXED, V_NONE, {"OPERATION"}, 1, 0, 0, NULL, NULL, GW, bc_r_quiet, "output on"},
    {"off", K_FIXED, V_NONE, {"OPERATION"}, 0, 0, 0, NULL, NULL, GW, bc_r_quiet, "output off"},
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
     bc_r_raw,
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
     bc_r_raw,
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
     bc_r_quiet,
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
     bc_r_raw,
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
     bc_r_quiet,
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
     bc_r_raw,
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
     bc_r_quiet,
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
     bc_r_raw,
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
     bc_r_quiet,
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
     bc_r_raw,
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
     bc_r_raw,
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
     bc_r_raw,
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
     bc_r_quiet,
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
     bc_r_quiet,
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
     bc_r_raw,
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
     bc_r_raw,
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
     bc_r_fan,
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
     bc_r_type,
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
     bc_r_dump,
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
     bc_r_sysstatus,
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
     bc_r_fault,
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
     bc_r_init,
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
     bc_r_info,
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
     bc_r_devices,
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
     bc_r_status,
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
     bc_r_eeprom,
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

/* ---------------------------------------------------------------- small helpers */

void bc_fmt(char *buf, size_t n, const char *fmt, ...)
{
    if (!buf || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

bool bc_num(const cJSON *obj, const char *key, double *out)
{
    const cJSON *it = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return false;
    *out = it->valuedouble;
    return true;
}

const char *bc_str(const cJSON *obj, const char *key)
{
    const cJSON *it = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

bool bc_true(const cJSON *obj, const char *key)
{
    return cJSON_IsTrue(obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL);
}

/* Registers whose raw value is a two's-complement int16 (protocol reference 6). */
static bool s_signed_reg(const char *reg)
{
    return strcasecmp(reg, "READ_IOUT") == 0 || strcasecmp(reg, "READ_TEMPERATURE_1") == 0;
}

/* The slot of REG in a `get` reply, or NULL. */
const cJSON *bc_slot(const cJSON *reply, const char *reg)
{
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(reply, "values");
    if (!cJSON_IsObject(values))
        return NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(values, reg);
    return it ? it : cJSON_GetObjectItem(values, reg); /* names are case-insensitive */
}

/* Check the slot of REG: 0 when it holds a value, else the exit code with a message. */
int bc_slot_check(const cJSON *reply, const char *reg, char *err, size_t errlen)
{
    const cJSON *slot = bc_slot(reply, reg);
    if (!cJSON_IsObject(slot)) {
        bc_fmt(err, errlen, "gateway reply has no value for %s", reg);
        return BICCTL_EXIT_GATEWAY;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(slot, "error");
    if (e) {
        const char *code = bc_str(e, "code");
        const char *msg = bc_str(e, "message");
        bc_fmt(err, errlen, "%s: %s: %s", reg, code ? code : "error", msg ? msg : "no message");
        return bicctl_exit_for_code(code);
    }
    return 0;
}

/* The raw integer of REG (sign-extended for the signed registers). */
int bc_slot_raw(const cJSON *reply, const char *reg, long *out, char *err, size_t errlen)
{
    int rc = bc_slot_check(reply, reg, err, errlen);
    if (rc)
        return rc;
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(bc_slot(reply, reg), "raw");
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
    bc_fmt(err, errlen, "gateway reply for %s has no usable raw value", reg);
    return BICCTL_EXIT_GATEWAY;
}

/* The text value of a string register (MFR_*), or NULL with an error. */
const char *bc_slot_text(const cJSON *reply, const char *reg, int *rc, char *err, size_t errlen)
{
    *rc = bc_slot_check(reply, reg, err, errlen);
    if (*rc)
        return NULL;
    const char *v = bc_str(bc_slot(reply, reg), "value");
    if (!v) {
        bc_fmt(err, errlen, "gateway reply for %s has no text value", reg);
        *rc = BICCTL_EXIT_GATEWAY;
    }
    return v;
}

/* Print REPLY without the envelope fields (v, ok, id), one line. */
void bc_print_result(const cJSON *reply, FILE *out)
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

void bc_print_json(const cJSON *obj, FILE *out)
{
    char *text = cJSON_PrintUnformatted(obj);
    if (text) {
        fprintf(out, "%s\n", text);
        cJSON_free(text);
    }
}

/* A Python str() rendering of a text, as the seed's dump prints its dictionary. */
void bc_print_pystr(FILE *out, const char *s)
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
                bc_fmt(err, errlen,
                       "%s takes no value (it only sets the direction); set the current with %s",
                       cmd->name, strcmp(cmd->name, "charge") == 0 ? "ccset" : "dcset");
            else
                bc_fmt(err, errlen, "%s takes no value, got '%s'", cmd->name, text);
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
            bc_fmt(err, errlen,
                   "%s: '%s' is not a network interface name; allowed: 1-15 characters of "
                   "[A-Za-z0-9_.-], e.g. can0",
                   cmd->name, text);
            return -1;
        }
        return 0;
    }
    /* V_CENTI: an integer in units of 0.01 V or 0.01 A, as the seed takes it */
    if (!text) {
        bc_fmt(err, errlen,
               "%s needs a VALUE: %s x 100 as an integer, %ld-%ld (e.g. %ld = %.2f %s)", cmd->name,
               cmd->unit, cmd->min, cmd->max, cmd->min * 2, cmd->min * 2 / 100.0, cmd->unit);
        return -1;
    }
    errno = 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE) {
        bc_fmt(err, errlen,
               "%s: '%s' is not an integer; give %s x 100, %ld-%ld (e.g. 2566 = 25.66 %s)",
               cmd->name, text, cmd->unit, cmd->min, cmd->max, cmd->unit);
        return -1;
    }
    if (v < cmd->min || v > cmd->max) {
        bc_fmt(err, errlen, "%s: %ld is out of range; allowed %ld-%ld (%.2f-%.2f %s, %s x 100)",
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
const cJSON *bc_status_device(const bicctl_args_t *a, const cJSON *info, size_t k, bool online_only)
{
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(info, "devices");
    const cJSON *d;
    size_t i = 0;
    cJSON_ArrayForEach(d, devs)
    {
        double addr;
        if (!bc_num(d, "dev", &addr))
            continue;
        if (a->dev >= 0 && (int)addr != a->dev)
            continue;
        if (online_only && !bc_true(d, "online"))
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
        const cJSON *d = bc_status_device(a, replies[0], n - 1, true);
        double addr;
        if (!d || !bc_num(d, "dev", &addr))
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
        bc_fmt(msg, msglen, "gateway reply is not a JSON object");
        return BICCTL_EXIT_GATEWAY;
    }
    double v;
    if (bc_true(reply, "ok")) {
        if (!bc_num(reply, "v", &v) || v != 1) {
            bc_fmt(msg, msglen, "gateway reply is not protocol version 1");
            return BICCTL_EXIT_GATEWAY;
        }
        return BICCTL_EXIT_OK;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
    const char *code = bc_str(e, "code");
    const char *text = bc_str(e, "message");
    if (!code) {
        bc_fmt(msg, msglen, "gateway reply is neither ok nor a coded error");
        return BICCTL_EXIT_GATEWAY;
    }
    if (!text)
        text = "no message";
    int rc = bicctl_exit_for_code(code);
    double lo, hi;
    if (strcmp(code, "out_of_range") == 0 && bc_num(e, "min", &lo) && bc_num(e, "max", &hi)) {
        const char *unit = bc_str(e, "unit");
        /* the gateway's reason beyond the range, e.g. the charge voltage the device holds */
        const char *why = strstr(text, " (the ");
        if (cmd && cmd->kind == K_SET && a && a->has_value)
            bc_fmt(msg, msglen,
                   "refused: %s %ld (%.2f %s) is outside this device's range; allowed %ld-%ld "
                   "(%.2f-%.2f %s)%s",
                   cmd->name, a->value, a->value / 100.0, cmd->unit, (long)llround(lo * 100),
                   (long)llround(hi * 100), lo, hi, cmd->unit, why ? why : "");
        else
            bc_fmt(msg, msglen, "refused: %s; allowed %g-%g%s%s", text, lo, hi, unit ? " " : "",
                   unit ? unit : "");
        return rc;
    }
    if (strcmp(code, "lease_held") == 0) {
        const char *holder = bc_str(e, "holder");
        double ttl;
        if (holder && bc_num(e, "expires_in_s", &ttl))
            bc_fmt(msg, msglen, "refused: controlled by %s (lease expires in %.1f s)", holder, ttl);
        else if (holder)
            bc_fmt(msg, msglen, "refused: controlled by %s", holder);
        else
            bc_fmt(msg, msglen, "refused: %s", text);
        return rc;
    }
    if (rc == BICCTL_EXIT_USAGE)
        bc_fmt(msg, msglen, "bad request: %s%s", text,
               strstr(text, "'dev'") ? " (give --dev N)" : "");
    else if (rc == BICCTL_EXIT_REFUSED)
        bc_fmt(msg, msglen, "refused: %s", text);
    else if (rc == BICCTL_EXIT_DEVICE)
        bc_fmt(msg, msglen, "device error (%s): %s", code, text);
    else
        bc_fmt(msg, msglen, "gateway error (%s): %s", code, text);
    return rc;
}

int bicctl_write_outcome(const bicctl_cmd_t *cmd, const cJSON *reply, char *line, size_t linelen)
{
    if (!cmd || (cmd->kind != K_SET && cmd->kind != K_FIXED && cmd->kind != K_NPB))
        return -1;
    if (cmd->kind == K_NPB && !bc_str(reply, "reg"))
        return -1; /* an NPB command that only read */
    const char *reg = bc_str(reply, "reg");
    const char *outcome = bc_str(reply, "outcome");
    double value = 0, dev = 0, until = 0;
    bc_num(reply, "value", &value);
    bc_num(reply, "dev", &dev);
    char what[64];
    if (cmd->unit && strcmp(cmd->unit, "min") != 0)
        snprintf(what, sizeof what, "%s %.2f %s", reg ? reg : cmd->regs[0], value, cmd->unit);
    else if (cmd->unit)
        snprintf(what, sizeof what, "%s %g %s", reg ? reg : cmd->regs[0], value, cmd->unit);
    else
        snprintf(what, sizeof what, "%s %g", reg ? reg : cmd->regs[0], value);
    if (!outcome) /* a gateway from before the outcome field */
        outcome = bc_true(reply, "deferred")  ? "deferred"
                  : bc_true(reply, "written") ? "written"
                                              : "unchanged";
    if (strcmp(outcome, "deferred") == 0) {
        const char *why = bc_str(reply, "reason");
        if (bc_num(reply, "until_s", &until))
            bc_fmt(line, linelen,
                   "%s: %s deferred for %.0f s, not on the device yet (%s) (device %.0f)",
                   cmd->name, what, until, why ? why : "EEPROM write limit", dev);
        else
            bc_fmt(line, linelen, "%s: %s deferred, not on the device yet (%s) (device %.0f)",
                   cmd->name, what, why ? why : "EEPROM write limit", dev);
        return BICCTL_EXIT_DEFERRED;
    }
    if (strcmp(outcome, "unchanged") == 0) {
        bc_fmt(line, linelen, "%s: %s unchanged, the device already holds it (device %.0f)",
               cmd->name, what, dev);
        return BICCTL_EXIT_UNCHANGED;
    }
    bc_fmt(line, linelen, "%s: %s written (device %.0f)", cmd->name, what, dev);
    return BICCTL_EXIT_OK;
}

/* ---------------------------------------------------------------- shared with bicctl_npb.c */

cJSON *bicctl_i_req(const char *op, const bicctl_args_t *a, int dev)
{
    return s_req(op, a, dev);
}

int bicctl_i_slot_raw(const cJSON *reply, const char *reg, long *out, char *err, size_t errlen)
{
    return bc_slot_raw(reply, reg, out, err, errlen);
}

bool bicctl_i_val(const cJSON *get, const char *reg, double *out)
{
    return bc_val(get, reg, out);
}

void bicctl_i_print_result(const cJSON *reply, FILE *out)
{
    bc_print_result(reply, out);
}

void bicctl_i_range(FILE *out, const cJSON *limits, const char *key, const char *unit)
{
    bc_range(out, limits, key, unit);
}
