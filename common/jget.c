/*  jget: validating getters over cJSON, a JSON dot-path number lookup, and a strict
    number parser for plain-text payloads.
*/
#include "jget.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numconv.h"

#define JPATH_MAX_DEPTH 32
#define JPATH_MAX_KEY 128

static void s_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void s_err(char *err, size_t n, const char *fmt, ...)
{
    if (!err || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

//  A short rendering of what was received, for messages ("got ...").
static void s_got(const cJSON *item, char *out, size_t n)
{
    if (!item) {
        snprintf(out, n, "nothing");
        return;
    }
    if (cJSON_IsString(item)) {
        const char *s = item->valuestring ? item->valuestring : "";
        snprintf(out, n, "a string \"%.24s%s\"", s, strlen(s) > 24 ? "..." : "");
    } else if (cJSON_IsNumber(item)) {
        snprintf(out, n, "%.10g", item->valuedouble);
    } else if (cJSON_IsBool(item)) {
        snprintf(out, n, "%s", cJSON_IsTrue(item) ? "true" : "false");
    } else if (cJSON_IsNull(item)) {
        snprintf(out, n, "null");
    } else if (cJSON_IsArray(item)) {
        snprintf(out, n, "an array");
    } else if (cJSON_IsObject(item)) {
        snprintf(out, n, "an object");
    } else {
        snprintf(out, n, "an invalid value");
    }
}

static const cJSON *s_field(const cJSON *obj, const char *key, char *err, size_t n)
{
    if (!cJSON_IsObject(obj)) {
        s_err(err, n, "'%s': the message is not a JSON object", key);
        return NULL;
    }
    //  Case-sensitive: field names are part of the protocol.
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

int jget_int(const cJSON *obj, const char *key, long min, long max, long *out, char *err, size_t n)
{
    const cJSON *item = s_field(obj, key, err, n);
    if (!cJSON_IsObject(obj))
        return -1;
    char got[64];
    s_got(item, got, sizeof got);
    int64_t v;
    if (!cJSON_IsNumber(item) || numconv_whole(item->valuedouble, min, max, &v) != 0) {
        s_err(err, n, "'%s' must be an integer between %ld and %ld (got %s)", key, min, max, got);
        return -1;
    }
    *out = (long)v;
    return 0;
}

int jget_num(const cJSON *obj, const char *key, double min, double max, double *out, char *err,
             size_t n)
{
    const cJSON *item = s_field(obj, key, err, n);
    if (!cJSON_IsObject(obj))
        return -1;
    char got[64];
    s_got(item, got, sizeof got);
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < min ||
        item->valuedouble > max) {
        s_err(err, n, "'%s' must be a number between %.10g and %.10g (got %s)", key, min, max, got);
        return -1;
    }
    *out = item->valuedouble;
    return 0;
}

int jget_str(const cJSON *obj, const char *key, size_t maxlen, const char **out, char *err,
             size_t n)
{
    const cJSON *item = s_field(obj, key, err, n);
    if (!cJSON_IsObject(obj))
        return -1;
    char got[64];
    s_got(item, got, sizeof got);
    if (!cJSON_IsString(item) || !item->valuestring) {
        s_err(err, n, "'%s' must be a string of at most %zu characters (got %s)", key, maxlen, got);
        return -1;
    }
    size_t len = strlen(item->valuestring);
    if (len > maxlen) {
        s_err(err, n, "'%s' must be a string of at most %zu characters (got %zu)", key, maxlen,
              len);
        return -1;
    }
    *out = item->valuestring;
    return 0;
}

int jget_bool(const cJSON *obj, const char *key, bool *out, char *err, size_t n)
{
    const cJSON *item = s_field(obj, key, err, n);
    if (!cJSON_IsObject(obj))
        return -1;
    char got[64];
    s_got(item, got, sizeof got);
    if (!cJSON_IsBool(item)) {
        s_err(err, n, "'%s' must be true or false (got %s)", key, got);
        return -1;
    }
    *out = cJSON_IsTrue(item);
    return 0;
}

//  True when KEY is absent or null in OBJ (so an optional getter takes its default).
static bool s_absent(const cJSON *obj, const char *key)
{
    if (!cJSON_IsObject(obj))
        return false;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return !item || cJSON_IsNull(item);
}

int jget_int_opt(const cJSON *obj, const char *key, long min, long max, long def, long *out,
                 char *err, size_t n)
{
    if (s_absent(obj, key)) {
        *out = def;
        return 0;
    }
    return jget_int(obj, key, min, max, out, err, n);
}

int jget_num_opt(const cJSON *obj, const char *key, double min, double max, double def, double *out,
                 char *err, size_t n)
{
    if (s_absent(obj, key)) {
        *out = def;
        return 0;
    }
    return jget_num(obj, key, min, max, out, err, n);
}

int jget_str_opt(const cJSON *obj, const char *key, size_t maxlen, const char *def,
                 const char **out, char *err, size_t n)
{
    if (s_absent(obj, key)) {
        *out = def;
        return 0;
    }
    return jget_str(obj, key, maxlen, out, err, n);
}

int jget_bool_opt(const cJSON *obj, const char *key, bool def, bool *out, char *err, size_t n)
{
    if (s_absent(obj, key)) {
        *out = def;
        return 0;
    }
    return jget_bool(obj, key, out, err, n);
}

int num_parse(const char *text, double *out)
{
    if (!text)
        return -1;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    //  Check the shape first: strtod alone would take "nan", "inf", "0x1p3" and "1e".
    const char *s = p;
    if (*s == '+' || *s == '-')
        s++;
    size_t int_digits = strspn(s, "0123456789");
    s += int_digits;
    size_t frac_digits = 0;
    if (*s == '.') {
        s++;
        frac_digits = strspn(s, "0123456789");
        s += frac_digits;
    }
    if (int_digits + frac_digits == 0)
        return -1;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        size_t exp_digits = strspn(s, "0123456789");
        if (exp_digits == 0)
            return -1;
        s += exp_digits;
    }
    const char *end = s;
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '\0')
        return -1;

    char buf[128];
    size_t len = (size_t)(end - p);
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    errno = 0;
    char *stop = NULL;
    double value = strtod(buf, &stop);
    if (stop != buf + len || !isfinite(value) || errno == ERANGE)
        return -1;
    *out = value;
    return 0;
}

//  One step of a path: an object key or an array index.
typedef struct {
    bool is_index;
    long index;
    char key[JPATH_MAX_KEY];
} jstep_t;

//  Parse the next step at *P. Returns 1 with a step, 0 at the end, -1 on a syntax error.
static int s_next_step(const char **p, bool first, jstep_t *step)
{
    const char *s = *p;
    if (*s == '\0')
        return 0;
    if (*s == '[') {
        s++;
        size_t digits = strspn(s, "0123456789");
        if (digits == 0 || digits > 6 || s[digits] != ']')
            return -1;
        step->is_index = true;
        step->index = strtol(s, NULL, 10);
        *p = s + digits + 1;
        return 1;
    }
    if (!first) {
        if (*s != '.')
            return -1;
        s++;
    }
    size_t len = strcspn(s, ".[");
    if (len == 0 || len >= JPATH_MAX_KEY)
        return -1;
    step->is_index = false;
    memcpy(step->key, s, len);
    step->key[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (iscntrl((unsigned char)step->key[i]) || step->key[i] == ']')
            return -1;
    *p = s + len;
    return 1;
}

int jpath_valid(const char *path)
{
    if (!path)
        return -1;
    const char *p = path;
    jstep_t step;
    int depth = 0;
    int rc;
    while ((rc = s_next_step(&p, depth == 0, &step)) == 1)
        if (++depth > JPATH_MAX_DEPTH)
            return -1;
    return rc;
}

int jpath_number(const cJSON *root, const char *path, double *out)
{
    if (!root || !path || jpath_valid(path) != 0)
        return -1;
    const cJSON *node = root;
    const char *p = path;
    jstep_t step;
    int depth = 0;
    while (s_next_step(&p, depth == 0, &step) == 1) {
        depth++;
        if (step.is_index) {
            if (!cJSON_IsArray(node) || step.index >= cJSON_GetArraySize(node))
                return -1;
            node = cJSON_GetArrayItem(node, (int)step.index);
        } else {
            if (!cJSON_IsObject(node))
                return -1;
            node = cJSON_GetObjectItemCaseSensitive(node, step.key);
        }
        if (!node)
            return -1;
    }
    if (cJSON_IsNumber(node)) {
        if (!isfinite(node->valuedouble))
            return -1;
        *out = node->valuedouble;
        return 0;
    }
    if (cJSON_IsString(node))
        return num_parse(node->valuestring, out);
    return -1;
}

int jget_utf8_check(const char *s, size_t len, size_t *bad_at)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
        if (c < 0x80)
            n = 0;
        else if (c >= 0xC2 && c <= 0xDF)
            n = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            goto bad;
        }
        if (n > len - i - 1)
            goto bad;
        for (size_t k = 1; k <= n; k++) {
            unsigned b = p[i + k];
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
                goto bad;
        }
        i += n + 1;
    }
    return 0;
bad:
    if (bad_at)
        *bad_at = i;
    return -1;
}
