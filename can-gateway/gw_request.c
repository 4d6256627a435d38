/*
 * The gateway's request decoding: see gw_request.h.
 */
#include "gw_request.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jget.h"
#include "lease.h"
#include "numconv.h"

static const char *const s_op_names[GWR_OP_COUNT] = {
    [GWR_PING] = "ping",         [GWR_INFO] = "info", [GWR_DEVICES] = "devices",
    [GWR_DISCOVER] = "discover", [GWR_GET] = "get",   [GWR_SET] = "set",
    [GWR_SETPOINT] = "setpoint", [GWR_INIT] = "init", [GWR_LEASE] = "lease",
    [GWR_EEPROM] = "eeprom",
};

const char *gw_request_op_name(gwr_op_t op)
{
    return op >= 0 && op < GWR_OP_COUNT ? s_op_names[op] : "?";
}

bool gw_request_op_read_only(gwr_op_t op)
{
    return op == GWR_PING || op == GWR_INFO || op == GWR_DEVICES || op == GWR_GET ||
           op == GWR_EEPROM;
}

static int s_refuse(gwr_error_t *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_refuse(gwr_error_t *err, const char *code, const char *fmt, ...)
{
    snprintf(err->code, sizeof err->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Skips one JSON value of already valid JSON text at p (before end); returns what follows. */
static const char *s_skip_value(const char *p, const char *end)
{
    int depth = 0;
    bool in_str = false;
    for (; p < end; p++) {
        char ch = *p;
        if (in_str) {
            if (ch == '\\')
                p++;
            else if (ch == '"')
                in_str = false;
            if (!in_str && depth == 0)
                return p + 1;
            continue;
        }
        if (ch == '"')
            in_str = true;
        else if (ch == '{' || ch == '[')
            depth++;
        else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return p; /* the end of the enclosing object */
            if (--depth == 0)
                return p + 1;
        } else if (depth == 0 && (ch == ',' || (unsigned char)ch <= ' '))
            return p; /* cJSON takes every byte up to 32 for white space */
    }
    return p;
}

/* The text of the first top-level member "id" of the valid JSON object in text: *len bytes
 * at the returned pointer, or NULL. The id is echoed as it came, so a number a double cannot
 * hold (1e400, 2^64 + 1) comes back as sent, not as null or rounded. */
static const char *s_raw_id(const char *text, size_t n, size_t *len)
{
    const char *p = text, *end = text + n;
    while (p < end && *p != '{')
        p++;
    for (p++; p < end;) {
        while (p < end && *p != '"' && *p != '}')
            p++;
        if (p >= end || *p == '}')
            return NULL;
        const char *key = ++p;
        while (p < end && *p != '"')
            p += *p == '\\' ? 2 : 1;
        bool is_id = p - key == 2 && strncmp(key, "id", 2) == 0;
        while (p < end && *p != ':')
            p++;
        for (p++; p < end && (unsigned char)*p <= ' '; p++) /* white space as cJSON sees it */
            ;
        const char *v = p;
        p = s_skip_value(p, end);
        if (is_id) {
            *len = (size_t)(p - v);
            return v;
        }
        while (p < end && *p != ',' && *p != '}')
            p++;
        if (p < end && *p == ',')
            p++;
    }
    return NULL;
}

/* Whether the n bytes of a value's text can be echoed as they are: not empty, and no control
 * byte: not inside a string (a NUL among them, which the parser let through) and not between
 * tokens (the parser takes every byte up to 32 for white space; a reply must not carry them). */
static bool s_echoable(const char *v, size_t n)
{
    bool in_str = false;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch < 0x20 && (in_str || (ch != '\t' && ch != '\r' && ch != '\n')))
            return false;
        if (in_str && ch == '\\')
            i++;
        else if (ch == '"')
            in_str = !in_str;
    }
    return true;
}

static const char *const s_mode_names[] = {
    [GWR_MODE_CHARGE] = "charge", [GWR_MODE_DISCHARGE] = "discharge", [GWR_MODE_IDLE] = "idle",
    [GWR_MODE_OFF] = "off",       [GWR_MODE_STOP] = "stop",
};

const char *gw_request_mode_name(gwr_mode_t mode)
{
    return mode >= GWR_MODE_CHARGE && mode <= GWR_MODE_STOP ? s_mode_names[mode] : "?";
}

static const char *const s_action_names[] = {
    [GWR_LEASE_TAKE] = "take",
    [GWR_LEASE_RENEW] = "renew",
    [GWR_LEASE_RELEASE] = "release",
};

const char *gw_request_lease_action_name(gwr_lease_action_t action)
{
    return action >= GWR_LEASE_TAKE && action <= GWR_LEASE_RELEASE ? s_action_names[action] : "?";
}

/* The index of the string v among the n names, or -1 (also when v is no string). */
static int s_name_index(const cJSON *v, const char *const *names, int n)
{
    for (int i = 0; i < n && cJSON_IsString(v); i++)
        if (strcmp(v->valuestring, names[i]) == 0)
            return i;
    return -1;
}

static const cJSON *s_field(const gw_request_t *r, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(r->json, name);
}

/* discover: "extended", true or false (absent or null: false). */
static int s_decode_discover(gw_request_t *r, gwr_error_t *err)
{
    const cJSON *e = s_field(r, "extended");
    if (e && !cJSON_IsNull(e)) {
        if (!cJSON_IsBool(e))
            return s_refuse(err, "bad_request", "'extended' must be true or false");
        r->discover.extended = cJSON_IsTrue(e);
    }
    return 0;
}

/* get: "reg" (one name) or "regs" (1-32 names), each a register name or code. */
static int s_decode_get(gw_request_t *r, gwr_error_t *err)
{
    const cJSON *regs = s_field(r, "regs");
    const cJSON *reg = s_field(r, "reg");
    const cJSON *list[GWR_GET_MAX];
    int n = 0;
    if (regs && reg)
        return s_refuse(err, "bad_request", "give either 'reg' or 'regs', not both");
    if (reg) {
        list[n++] = reg;
    } else if (cJSON_IsArray(regs)) {
        int sz = cJSON_GetArraySize(regs);
        if (sz < 1 || sz > GWR_GET_MAX)
            return s_refuse(err, "bad_request", "'regs' must list 1-32 register names (got %d)",
                            sz);
        const cJSON *it;
        cJSON_ArrayForEach(it, regs) list[n++] = it;
    } else {
        return s_refuse(err, "bad_request",
                        "'reg' (a register name or \"0x0030\") or 'regs' (a list of them) is "
                        "required");
    }
    gwr_get_t *g = &r->get;
    for (int i = 0; i < n; i++) {
        if (!cJSON_IsString(list[i]) || strlen(list[i]->valuestring) > GWR_REG_NAME_MAX)
            return s_refuse(err, "bad_request",
                            "register names must be strings such as \"READ_VOUT\" or "
                            "\"0x0060\"");
        g->name[g->n++] = list[i]->valuestring;
    }
    return 0;
}

/* set: "reg" and exactly one of "value" or "raw". */
static int s_decode_set(gw_request_t *r, gwr_error_t *err)
{
    const cJSON *reg = s_field(r, "reg");
    if (!cJSON_IsString(reg))
        return s_refuse(err, "bad_request",
                        "'reg' is required: a register name such as \"VOUT_SET\" or a code such "
                        "as \"0x0020\"");
    const cJSON *val = s_field(r, "value");
    const cJSON *raw = s_field(r, "raw");
    if ((val && raw) || (!val && !raw))
        return s_refuse(err, "bad_request",
                        "give exactly one of 'value' (engineering units) or 'raw' (register "
                        "integer)");
    gwr_set_t *st = &r->set;
    st->reg = reg->valuestring;
    if (val) {
        if (!cJSON_IsNumber(val) || !isfinite(val->valuedouble))
            return s_refuse(err, "bad_request", "'value' must be a number");
        st->value = val->valuedouble;
        return 0;
    }
    int64_t w;
    if (!cJSON_IsNumber(raw) || numconv_whole(raw->valuedouble, -1000000000, 1000000000, &w) != 0)
        return s_refuse(err, "bad_request", "'raw' must be an integer");
    st->is_raw = true;
    st->raw = (int32_t)w;
    return 0;
}

/* setpoint: "preset" (absent or null: none) with its "current_a", idle only. */
static int s_decode_preset(gw_request_t *r, gwr_error_t *err)
{
    gwr_setpoint_t *sp = &r->setpoint;
    const cJSON *p = s_field(r, "preset");
    if (!p || cJSON_IsNull(p))
        return 0;
    if (sp->mode != GWR_MODE_IDLE)
        return s_refuse(err, "bad_request",
                        "'preset' is only for mode \"idle\" (a unit on standby); %s has none",
                        s_mode_names[sp->mode]);
    int dir = s_name_index(p, s_mode_names, GWR_MODE_DISCHARGE + 1);
    if (dir < 0)
        return s_refuse(err, "bad_request", "'preset' must be \"charge\" or \"discharge\"");
    if (s_field(r, "power_w"))
        return s_refuse(err, "bad_request",
                        "'preset' takes 'current_a' (A), not 'power_w': a unit on standby has no "
                        "power");
    const cJSON *cur = s_field(r, "current_a");
    if (!cJSON_IsNumber(cur) || !isfinite(cur->valuedouble) || cur->valuedouble < 0)
        return s_refuse(err, "bad_request", "'preset' needs 'current_a': a number >= 0");
    sp->has_preset = true;
    sp->preset = (gwr_mode_t)dir;
    sp->amount = cur->valuedouble;
    return 0;
}

/* setpoint: "mode", "manual", "resume", the magnitude of charge and discharge, idle's preset,
 * "lease_ttl_s". */
static int s_decode_setpoint(gw_request_t *r, gwr_error_t *err)
{
    gwr_setpoint_t *sp = &r->setpoint;
    int found = s_name_index(s_field(r, "mode"), s_mode_names, GWR_MODE_STOP + 1);
    if (found < 0)
        return s_refuse(err, "bad_request",
                        "'mode' must be \"charge\", \"discharge\", \"idle\", \"off\" or "
                        "\"stop\"");
    sp->mode = (gwr_mode_t)found;
    const cJSON *manual = s_field(r, "manual");
    if (manual && !cJSON_IsBool(manual))
        return s_refuse(err, "bad_request",
                        "'manual' must be true (a person's command: at once within the EEPROM "
                        "budget) or false (a controller's: spaced, deferred)");
    sp->manual = cJSON_IsTrue(manual);
    const cJSON *resume = s_field(r, "resume");
    if (resume && !cJSON_IsBool(resume))
        return s_refuse(err, "bad_request",
                        "'resume' must be true (a person let the controller switch the output on "
                        "again after a stop) or false");
    sp->resume = cJSON_IsTrue(resume);
    if (sp->mode == GWR_MODE_CHARGE || sp->mode == GWR_MODE_DISCHARGE) {
        const cJSON *cur = s_field(r, "current_a");
        const cJSON *pw = s_field(r, "power_w");
        if ((cur && pw) || (!cur && !pw))
            return s_refuse(err, "bad_request",
                            "%s needs exactly one of 'current_a' or 'power_w' (magnitudes)",
                            s_mode_names[sp->mode]);
        const cJSON *num = cur ? cur : pw;
        if (!cJSON_IsNumber(num) || !isfinite(num->valuedouble) || num->valuedouble < 0)
            return s_refuse(err, "bad_request", "'%s' must be a number >= 0",
                            cur ? "current_a" : "power_w");
        sp->by_power = pw != NULL;
        sp->amount = num->valuedouble;
    }
    if (s_decode_preset(r, err) != 0)
        return -1;
    const cJSON *ttl = s_field(r, "lease_ttl_s");
    if (ttl && !cJSON_IsNull(ttl)) {
        sp->has_ttl = true;
        sp->ttl_s = cJSON_IsNumber(ttl) ? ttl->valuedouble : NAN;
    }
    return 0;
}

/* lease: "action" and "ttl_s". */
static int s_decode_lease(gw_request_t *r, gwr_error_t *err)
{
    int found = s_name_index(s_field(r, "action"), s_action_names, GWR_LEASE_RELEASE + 1);
    if (found < 0)
        return s_refuse(err, "bad_request", "'action' must be \"take\", \"renew\" or \"release\"");
    r->lease.action = (gwr_lease_action_t)found;
    const cJSON *ttl = s_field(r, "ttl_s");
    if (cJSON_IsNumber(ttl)) {
        r->lease.has_ttl = true;
        r->lease.ttl_s = ttl->valuedouble;
    }
    return 0;
}

/* The op's own fields into the request's member of that op; -1 with *err when one is wrong. */
static int s_decode_fields(gw_request_t *r, gwr_error_t *err)
{
    switch (r->op) {
    case GWR_DISCOVER:
        return s_decode_discover(r, err);
    case GWR_GET:
        return s_decode_get(r, err);
    case GWR_SET:
        return s_decode_set(r, err);
    case GWR_SETPOINT:
        return s_decode_setpoint(r, err);
    case GWR_LEASE:
        return s_decode_lease(r, err);
    default:
        return 0;
    }
}

static void s_decode_common(gw_request_t *r)
{
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(r->json, "dev");
    int64_t a;
    if (!dv || cJSON_IsNull(dv))
        r->dev = GWR_DEV_ABSENT;
    else if (!cJSON_IsNumber(dv) || numconv_whole(dv->valuedouble, 0, GWR_DEV_LAST, &a) != 0)
        r->dev = GWR_DEV_INVALID;
    else
        r->dev = (int)a;
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(r->json, "client");
    if (!cl || cJSON_IsNull(cl))
        r->client_state = GWR_CLIENT_ABSENT;
    else if (!cJSON_IsString(cl) || !lease_name_valid(cl->valuestring))
        r->client_state = GWR_CLIENT_INVALID;
    else {
        r->client_state = GWR_CLIENT_OK;
        r->client = cl->valuestring;
    }
}

int gw_request_decode(const char *text, size_t len, size_t parts, bool read_only, gw_request_t *out,
                      gwr_error_t *err)
{
    memset(out, 0, sizeof *out);
    out->dev = GWR_DEV_ABSENT;
    err->code[0] = err->message[0] = '\0';
    if (len > GWR_MAX_BYTES)
        return s_refuse(err, "too_large", "request is %zu bytes; at most %d are allowed", len,
                        GWR_MAX_BYTES);
    if (parts > 1)
        return s_refuse(err, "bad_request",
                        "a request is one frame holding one JSON object; this one had %zu frames",
                        parts);
    size_t bad_at = 0;
    if (jget_utf8_check(text, len, &bad_at) != 0) /* nothing of it is echoed */
        return s_refuse(err, "bad_request",
                        "request is not valid UTF-8 (byte %zu); JSON text is UTF-8", bad_at);
    const char *end = NULL;
    out->json = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (out->json && end) {
        /* one JSON object and nothing after it but white space */
        while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
            end++;
        if (end != text + len)
            return s_refuse(err, "bad_request",
                            "request has %zu bytes after its JSON object; send exactly one JSON "
                            "object",
                            (size_t)(text + len - end));
    }
    if (!out->json || !cJSON_IsObject(out->json))
        return s_refuse(err, "bad_request",
                        out->json ? "request must be a JSON object" : "request is not valid JSON");
    out->id = cJSON_GetObjectItemCaseSensitive(out->json, "id");
    size_t id_len = 0;
    const char *id_text = out->id ? s_raw_id(text, len, &id_len) : NULL;
    if (id_text && id_len <= GWR_ID_MAX && s_echoable(id_text, id_len)) {
        char buf[GWR_ID_MAX + 1];
        memcpy(buf, id_text, id_len);
        buf[id_len] = '\0';
        out->id_raw = cJSON_CreateRaw(buf);
        if (out->id_raw)
            out->id = out->id_raw;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(out->json, "v");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1)
        return s_refuse(err, "bad_version", "'v' must be 1");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(out->json, "op");
    if (!cJSON_IsString(op))
        return s_refuse(err, "bad_request", "'op' is required (a string)");
    int found = s_name_index(op, s_op_names, GWR_OP_COUNT);
    if (read_only && (found < 0 || !gw_request_op_read_only((gwr_op_t)found)))
        return s_refuse(err, "forbidden",
                        "this client's key is read-only (CurveReadOnlyClientsDir): allowed ops "
                        "ping, info, devices, get, eeprom");
    if (found < 0)
        return s_refuse(err, "unknown_op",
                        "unknown op '%.40s'; ops: ping, info, devices, discover, get, set, "
                        "setpoint, init, lease, eeprom",
                        op->valuestring);
    out->op = (gwr_op_t)found;
    s_decode_common(out);
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(out->json, "token");
    if (tk && !cJSON_IsNull(tk)) {
        if (!cJSON_IsString(tk) || !lease_token_valid(tk->valuestring))
            return s_refuse(err, "bad_request",
                            "'token' must be the %d lowercase hex digits a lease take replied "
                            "with",
                            LEASE_TOKEN_LEN);
        out->token = tk->valuestring;
    }
    return s_decode_fields(out, err);
}

void gw_request_free(gw_request_t *r)
{
    if (!r)
        return;
    cJSON_Delete(r->json);
    cJSON_Delete(r->id_raw);
    r->json = r->id_raw = NULL;
    r->id = NULL;
    r->client = NULL;
    r->token = NULL;
}
