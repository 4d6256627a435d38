/*
 * bridge_cmd: command payload validation and result payloads. See bridge_cmd.h and
 * docs/mqtt.md ("Commands").
 */
#include "bridge_cmd.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Plausibility bounds checked before the gateway applies the device's effective limits:
 * they only keep absurd numbers from travelling further. */
#define MAX_CURRENT_A 200.0
#define MAX_POWER_W 100000.0
#define MAX_VOLTAGE_V 120.0
#define MAX_CORR_LEN 128

static const char *const s_names[BCMD_KINDS] = {
    "state",     "charge",     "chargeV",    "dischargeV", "chargeLimA", "dischargeLimA",
    "direction", "npbCurveCC", "npbCurveCV", "npbCurveFV", "npbMode"};

/* Register behind each single-value topic. */
static const char *const s_regs[BCMD_KINDS] = {NULL,
                                               NULL,
                                               "VOUT_SET",
                                               "REVERSE_VOUT_SET",
                                               "IOUT_SET",
                                               "REVERSE_IOUT_SET",
                                               "DIRECTION_CTRL",
                                               "CURVE_CC",
                                               "CURVE_CV",
                                               "CURVE_FV",
                                               "CURVE_CONFIG"};

const char *bcmd_kind_name(bcmd_kind_t kind)
{
    return (unsigned)kind < BCMD_KINDS ? s_names[kind] : "?";
}

bool bcmd_topic_parse(const char *topic, const char *topic_main, int *dev, bcmd_kind_t *kind)
{
    size_t tl = strlen(topic_main);
    if (strncmp(topic, topic_main, tl) != 0 || strncmp(topic + tl, "/inv/", 5) != 0)
        return false;
    const char *p = topic + tl + 5;
    if (!isdigit((unsigned char)p[0]))
        return false;
    int id = 0;
    int digits = 0;
    while (isdigit((unsigned char)*p) && digits < 3) {
        id = id * 10 + (*p++ - '0');
        digits++;
    }
    if (*p != '/' || id > 67 || (digits > 1 && topic[tl + 5] == '0')) /* 64-67: an NPB */
        return false;
    p++;
    const char *slash = strchr(p, '/');
    if (!slash || strcmp(slash, "/set") != 0)
        return false;
    size_t seg = (size_t)(slash - p);
    for (int k = 0; k < BCMD_KINDS; k++) {
        if (strlen(s_names[k]) == seg && strncmp(p, s_names[k], seg) == 0) {
            *dev = id;
            *kind = (bcmd_kind_t)k;
            return true;
        }
    }
    return false;
}

void bcmd_clear(bcmd_t *cmd)
{
    if (!cmd)
        return;
    cJSON_Delete(cmd->req);
    cJSON_Delete(cmd->corr);
    cmd->req = NULL;
    cmd->corr = NULL;
}

static int s_fail(const char **code, const char *c, char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int s_fail(const char **code, const char *c, char *err, size_t n, const char *fmt, ...)
{
    *code = c;
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A whole payload as one finite number (surrounding whitespace allowed). */
static bool s_plain_number(const char *text, double *out)
{
    while (isspace((unsigned char)*text))
        text++;
    if (!*text)
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno == ERANGE)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool s_looks_json_object(const char *text)
{
    while (isspace((unsigned char)*text))
        text++;
    return *text == '{';
}

static cJSON *s_base_req(const char *op, int dev)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    cJSON_AddNumberToObject(r, "v", 1);
    cJSON_AddStringToObject(r, "op", op);
    cJSON_AddNumberToObject(r, "dev", dev);
    cJSON_AddStringToObject(r, "client", BCMD_CLIENT);
    return r;
}

/* Takes the optional correlation id from a JSON payload into out->corr. */
static int s_take_corr(const cJSON *obj, bcmd_t *out, const char **code, char *err, size_t n)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    if (!id)
        return 0;
    if (cJSON_IsString(id) && strlen(id->valuestring) > MAX_CORR_LEN)
        return s_fail(code, "bad_request", err, n, "'id' is longer than %d characters",
                      MAX_CORR_LEN);
    if (!cJSON_IsString(id) && !cJSON_IsNumber(id))
        return s_fail(code, "bad_request", err, n, "'id' must be a string or a number");
    out->corr = cJSON_Duplicate(id, true);
    return 0;
}

static int s_parse_state(int dev, const char *text, const bcmd_opts_t *opts, bcmd_t *out,
                         const char **code, char *err, size_t n)
{
    double v = 0;
    bool have = false;
    if (s_looks_json_object(text)) {
        cJSON *obj = cJSON_Parse(text);
        if (!cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            return s_fail(code, "bad_request", err, n,
                          "payload is not valid JSON; allowed: 0, 1, 2 or {\"val\":0|1|2}");
        }
        int rc = s_take_corr(obj, out, code, err, n);
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(obj, "val");
        if (rc == 0 && !cJSON_IsNumber(val))
            rc = s_fail(code, "bad_request", err, n,
                        "'val' must be a number: 0 off, 1 on, 2 toggle");
        if (rc == 0) {
            v = val->valuedouble;
            have = true;
        }
        cJSON_Delete(obj);
        if (rc)
            return rc;
    } else {
        have = s_plain_number(text, &v);
    }
    /* 0 off, 1 on, 2 toggle. The seed switched the output off for anything else (a typo
     * or "on" turned it off); that is refused here, and nothing is written. */
    if (!have || (v != 0 && v != 1 && v != 2))
        return s_fail(code, "bad_request", err, n,
                      "state/set takes 0 (off), 1 (on) or 2 (toggle); nothing was written");
    int want;
    if (v == 1)
        want = 1;
    else if (v == 2) {
        if (opts->operation != 0 && opts->operation != 1)
            return s_fail(code, "unknown_state", err, n,
                          "cannot toggle: the device's output state is not known (offline?)");
        want = !opts->operation;
        snprintf(out->what, sizeof out->what, "toggle -> %s", want ? "on" : "off");
    } else
        want = 0;
    if (!out->what[0])
        snprintf(out->what, sizeof out->what, "%s", want ? "on" : "off");
    /* Off as the seed: the idle set-points (both currents at the minimum, direction charge)
     * and the output off, the gateway's setpoint `stop`, never refused for a controller's
     * lease (the controller pauses on the same message). On: OPERATION 1. */
    out->req = s_base_req(want ? "set" : "setpoint", dev);
    if (!out->req)
        return s_fail(code, "internal", err, n, "out of memory");
    if (!want) {
        cJSON_AddStringToObject(out->req, "mode", "stop");
        cJSON_AddBoolToObject(out->req, "manual", true);
        return 0;
    }
    cJSON_AddStringToObject(out->req, "reg", "OPERATION");
    cJSON_AddNumberToObject(out->req, "value", want);
    return 0;
}

static int s_parse_charge(int dev, const char *text, const bcmd_opts_t *opts, bcmd_t *out,
                          const char **code, char *err, size_t n)
{
    static const char allowed[] =
        "allowed: {\"var\":\"chargeA\"|\"chargeP\"|\"cfgReload\"|\"release\",\"val\":<number>}";
    cJSON *obj = cJSON_Parse(text);
    int rc = 0;
    if (!cJSON_IsObject(obj)) {
        rc = s_fail(code, "bad_request", err, n, "payload is not a JSON object; %s", allowed);
        goto cleanup;
    }
    rc = s_take_corr(obj, out, code, err, n);
    if (rc)
        goto cleanup;
    const cJSON *var = cJSON_GetObjectItemCaseSensitive(obj, "var");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(obj, "val");
    if (!cJSON_IsString(var)) {
        rc = s_fail(code, "bad_request", err, n, "'var' missing or not a string; %s", allowed);
        goto cleanup;
    }
    if (strcmp(var->valuestring, "cfgReload") == 0) {
        out->reload = true;
        snprintf(out->what, sizeof out->what, "cfgReload");
        goto cleanup;
    }
    if (strcmp(var->valuestring, "release") == 0) {
        /* Hands the device back before the manual lease runs out. */
        snprintf(out->what, sizeof out->what, "release");
        out->req = s_base_req("lease", dev);
        if (!out->req) {
            rc = s_fail(code, "internal", err, n, "out of memory");
            goto cleanup;
        }
        cJSON_DeleteItemFromObject(out->req, "dev");
        cJSON_AddStringToObject(out->req, "action", "release");
        goto cleanup;
    }
    bool amps = strcmp(var->valuestring, "chargeA") == 0;
    if (!amps && strcmp(var->valuestring, "chargeP") != 0) {
        rc = s_fail(code, "bad_request", err, n, "'var' '%.40s' unknown; %s", var->valuestring,
                    allowed);
        goto cleanup;
    }
    if (!cJSON_IsNumber(val) || !isfinite(val->valuedouble)) {
        rc = s_fail(code, "bad_request", err, n, "'val' missing or not a number; %s", allowed);
        goto cleanup;
    }
    double v = val->valuedouble;
    double lim = amps ? MAX_CURRENT_A : MAX_POWER_W;
    if (fabs(v) > lim) {
        rc = s_fail(code, "out_of_range", err, n, "'val' %g is outside -%g..%g %s", v, lim, lim,
                    amps ? "A" : "W");
        goto cleanup;
    }
    snprintf(out->what, sizeof out->what, "%s %g", var->valuestring, v);
    out->req = s_base_req("setpoint", dev);
    if (!out->req) {
        rc = s_fail(code, "internal", err, n, "out of memory");
        goto cleanup;
    }
    /* a person's command: at once within the EEPROM budget, never deferred */
    cJSON_AddBoolToObject(out->req, "manual", true);
    if (v == 0) {
        cJSON_AddStringToObject(out->req, "mode", "idle");
    } else {
        cJSON_AddStringToObject(out->req, "mode", v > 0 ? "charge" : "discharge");
        cJSON_AddNumberToObject(out->req, amps ? "current_a" : "power_w", fabs(v));
    }
    cJSON_AddNumberToObject(out->req, "lease_ttl_s", opts->lease_ttl_s);
cleanup:
    cJSON_Delete(obj);
    return rc;
}

/* Payload of a single-value topic: plain text or {"val":...,"id":...}. Returns the value item
 * (owned by *holder, or a new item for plain text) via *val. */
static int s_single_value(const char *text, bcmd_t *out, cJSON **holder, const cJSON **val,
                          bool want_string, const char **code, char *err, size_t n)
{
    if (s_looks_json_object(text)) {
        *holder = cJSON_Parse(text);
        if (!cJSON_IsObject(*holder))
            return s_fail(code, "bad_request", err, n, "payload is not valid JSON");
        if (s_take_corr(*holder, out, code, err, n))
            return -1;
        *val = cJSON_GetObjectItemCaseSensitive(*holder, "val");
        if (!*val)
            return s_fail(code, "bad_request", err, n, "'val' missing");
        return 0;
    }
    if (want_string) {
        char word[16];
        const char *p = text;
        while (isspace((unsigned char)*p))
            p++;
        size_t len = strcspn(p, " \t\r\n");
        if (len == 0 || len >= sizeof word)
            return s_fail(code, "bad_request", err, n, "payload is empty or too long");
        memcpy(word, p, len);
        word[len] = '\0';
        *holder = cJSON_CreateString(word);
    } else {
        double v;
        if (!s_plain_number(text, &v))
            return s_fail(code, "bad_request", err, n, "payload is not a number");
        *holder = cJSON_CreateNumber(v);
    }
    *val = *holder;
    return *holder ? 0 : s_fail(code, "internal", err, n, "out of memory");
}

static int s_parse_register(bcmd_kind_t kind, int dev, const char *text, const bcmd_opts_t *opts,
                            bcmd_t *out, const char **code, char *err, size_t n)
{
    cJSON *holder = NULL;
    const cJSON *val = NULL;
    bool direction = kind == BCMD_DIRECTION, mode = kind == BCMD_NPB_MODE;
    int rc = s_single_value(text, out, &holder, &val, direction || mode, code, err, n);
    if (rc)
        goto cleanup;
    double value;
    const char *field = "value";
    if (mode) {
        /* CURVE_CONFIG with bit 7 (CUVE) as asked and the other bits as the device holds them */
        bool charger = cJSON_IsString(val) && strcmp(val->valuestring, "charger") == 0;
        if (!charger && !(cJSON_IsString(val) && strcmp(val->valuestring, "psu") == 0)) {
            rc = s_fail(code, "bad_request", err, n, "npbMode must be \"charger\" or \"psu\"");
            goto cleanup;
        }
        if (opts->curve_config < 0) {
            rc = s_fail(code, "unknown_state", err, n,
                        "the device's CURVE_CONFIG is not known (not an NPB, or offline?)");
            goto cleanup;
        }
        value = charger ? (opts->curve_config | 0x80) : (opts->curve_config & ~0x80);
        field = "raw";
        snprintf(out->what, sizeof out->what, "npbMode %s", val->valuestring);
    } else if (direction) {
        if (cJSON_IsString(val) && strcmp(val->valuestring, "charge") == 0)
            value = 0;
        else if (cJSON_IsString(val) && strcmp(val->valuestring, "discharge") == 0)
            value = 1;
        else {
            rc = s_fail(code, "bad_request", err, n,
                        "direction must be \"charge\" or \"discharge\"");
            goto cleanup;
        }
        snprintf(out->what, sizeof out->what, "direction %s", val->valuestring);
    } else {
        bool volts = kind == BCMD_CHARGE_V || kind == BCMD_DISCHARGE_V || kind == BCMD_NPB_CV ||
                     kind == BCMD_NPB_FV;
        double lim = volts ? MAX_VOLTAGE_V : MAX_CURRENT_A;
        if (!cJSON_IsNumber(val) || !isfinite(val->valuedouble)) {
            rc = s_fail(code, "bad_request", err, n, "value must be a number in %s",
                        volts ? "V" : "A");
            goto cleanup;
        }
        value = val->valuedouble;
        if (value <= 0 || value > lim) {
            rc = s_fail(code, "out_of_range", err, n, "value %g is outside 0..%g %s", value, lim,
                        volts ? "V" : "A");
            goto cleanup;
        }
        snprintf(out->what, sizeof out->what, "%s %g", s_regs[kind], value);
    }
    out->req = s_base_req("set", dev);
    if (!out->req) {
        rc = s_fail(code, "internal", err, n, "out of memory");
        goto cleanup;
    }
    cJSON_AddStringToObject(out->req, "reg", s_regs[kind]);
    cJSON_AddNumberToObject(out->req, field, value);
cleanup:
    cJSON_Delete(holder);
    return rc;
}

int bcmd_parse(bcmd_kind_t kind, int dev, const void *payload, size_t len, const bcmd_opts_t *opts,
               bcmd_t *out, const char **code, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->dev = dev;
    *code = NULL;
    if (err && errlen)
        err[0] = '\0';
    if ((unsigned)kind >= BCMD_KINDS)
        return s_fail(code, "internal", err, errlen, "unknown command kind");
    if (len > BCMD_MAX_PAYLOAD)
        return s_fail(code, "too_large", err, errlen, "payload of %zu bytes; at most %d allowed",
                      len, BCMD_MAX_PAYLOAD);
    char text[BCMD_MAX_PAYLOAD + 1];
    if (len)
        memcpy(text, payload, len);
    text[len] = '\0';
    if (strlen(text) != len)
        return s_fail(code, "bad_request", err, errlen, "payload contains a NUL byte");
    /* An empty payload is what clearing a retained message delivers: never a command. */
    if (len == 0)
        return s_fail(code, "bad_request", err, errlen, "empty payload ignored");
    int rc;
    switch (kind) {
    case BCMD_STATE:
        rc = s_parse_state(dev, text, opts, out, code, err, errlen);
        break;
    case BCMD_CHARGE:
        rc = s_parse_charge(dev, text, opts, out, code, err, errlen);
        break;
    default:
        rc = s_parse_register(kind, dev, text, opts, out, code, err, errlen);
        break;
    }
    if (rc) {
        cJSON_Delete(out->req);
        out->req = NULL;
    } else if (out->req && out->corr) {
        cJSON_AddItemToObject(out->req, "id", cJSON_Duplicate(out->corr, true));
    }
    return rc;
}

static cJSON *s_result_base(bcmd_kind_t kind, bool ok, const cJSON *corr, const char *what)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddBoolToObject(o, "ok", ok);
    if (corr)
        cJSON_AddItemToObject(o, "id", cJSON_Duplicate(corr, true));
    cJSON_AddStringToObject(o, "cmd", bcmd_kind_name(kind));
    if (what && *what)
        cJSON_AddStringToObject(o, "request", what);
    return o;
}

static char *s_print(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *bcmd_result_ok(bcmd_kind_t kind, const cJSON *corr, const char *what, const cJSON *reply)
{
    cJSON *o = s_result_base(kind, true, corr, what);
    if (!o)
        return NULL;
    if (cJSON_IsObject(reply)) {
        cJSON *res = cJSON_AddObjectToObject(o, "result");
        const cJSON *it;
        cJSON_ArrayForEach(it, reply)
        {
            /* the lease token is the bridge's alone: never on MQTT */
            if (!res || !it->string || strcmp(it->string, "v") == 0 ||
                strcmp(it->string, "ok") == 0 || strcmp(it->string, "id") == 0 ||
                strcmp(it->string, "token") == 0)
                continue;
            cJSON_AddItemToObject(res, it->string, cJSON_Duplicate(it, true));
        }
    }
    return s_print(o);
}

char *bcmd_result_error(bcmd_kind_t kind, const cJSON *corr, const char *what, const char *code,
                        const char *message, const cJSON *gw_error)
{
    cJSON *o = s_result_base(kind, false, corr, what);
    if (!o)
        return NULL;
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    if (e) {
        cJSON_AddStringToObject(e, "code", code ? code : "internal");
        cJSON_AddStringToObject(e, "message", message ? message : "");
        const cJSON *it;
        cJSON_ArrayForEach(it, gw_error)
        {
            if (!it->string || strcmp(it->string, "code") == 0 ||
                strcmp(it->string, "message") == 0)
                continue;
            cJSON_AddItemToObject(e, it->string, cJSON_Duplicate(it, true));
        }
    }
    return s_print(o);
}
