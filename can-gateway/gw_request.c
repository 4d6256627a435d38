/*
 * The gateway's request decoding: see gw_request.h.
 */
#include "gw_request.h"

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
    int found = -1;
    for (int i = 0; i < GWR_OP_COUNT; i++)
        if (strcmp(op->valuestring, s_op_names[i]) == 0)
            found = i;
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
    return 0;
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
