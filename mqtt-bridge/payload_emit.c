/*
 * payload_emit: one builder for a payload and for its key. See payload_emit.h.
 */
#include "payload_emit.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum {
    K_NUM = 'n',
    K_NUMBER = 'N',
    K_STR = 's',
    K_NULL = 'z',
    K_BOOL = 'b',
    K_OBJ = 'o',
    K_ARR = 'a',
    K_END = 'e'
};

pe_t pe_json(cJSON *o)
{
    return (pe_t){.o = o, .kb = NULL};
}

pe_t pe_key(pe_key_t *kb, unsigned char *buf, size_t cap)
{
    kb->buf = buf;
    kb->cap = cap;
    kb->len = 0;
    return (pe_t){.o = NULL, .kb = kb};
}

static void s_kput(pe_key_t *kb, const void *p, size_t n)
{
    if (kb->len <= kb->cap && n <= kb->cap - kb->len)
        memcpy(kb->buf + kb->len, p, n);
    kb->len += n;
}

/* A field in the key: its kind, its name's address and its value's bytes. */
static void s_kfield(pe_key_t *kb, char kind, const char *name, const void *v, size_t n)
{
    uintptr_t np = (uintptr_t)name;
    s_kput(kb, &kind, 1);
    s_kput(kb, &np, sizeof np);
    if (n)
        s_kput(kb, v, n);
}

/* Adds item to the object or array; false (item freed) when it could not. */
static bool s_put(pe_t *e, const char *name, cJSON *item)
{
    if (!item)
        return false;
    bool ok = e->o && (cJSON_IsArray(e->o) ? cJSON_AddItemToArray(e->o, item)
                                           : cJSON_AddItemToObject(e->o, name, item));
    if (!ok)
        cJSON_Delete(item);
    return ok;
}

void pe_null(pe_t *e, const char *name)
{
    if (e->kb)
        s_kfield(e->kb, K_NULL, name, NULL, 0);
    else
        s_put(e, name, cJSON_CreateNull());
}

void pe_num(pe_t *e, const char *name, double v, int decimals)
{
    if (isnan(v)) {
        pe_null(e, name);
        return;
    }
    double scale = pow(10.0, decimals);
    double r = round(v * scale) / scale;
    if (r == 0)
        r = 0; /* no "-0" in the payload */
    if (e->kb) {
        unsigned char v8[sizeof r + 1];
        memcpy(v8, &r, sizeof r);
        v8[sizeof r] = (unsigned char)decimals;
        s_kfield(e->kb, K_NUM, name, v8, sizeof v8);
        return;
    }
    /* The text cJSON would print (%1.15g, or %d for a whole number) without its print and
     * read-back test per number: r is the double nearest a number of at most `decimals`
     * decimals, so its %.*f form less trailing zeros is that text while it stays well within
     * 15 digits and above 1e-4 (no exponent). */
    char num[48];
    if (decimals >= 0 && decimals <= 3 && fabs(r) < 1e9) {
        int n = snprintf(num, sizeof num, "%.*f", decimals, r);
        if (decimals > 0) {
            while (n > 0 && num[n - 1] == '0')
                num[--n] = '\0';
            if (n > 0 && num[n - 1] == '.')
                num[--n] = '\0';
        }
        if (strcmp(num, "-0") != 0) {
            s_put(e, name, cJSON_CreateRaw(num));
            return;
        }
    }
    s_put(e, name, cJSON_CreateNumber(r));
}

void pe_number(pe_t *e, const char *name, double v)
{
    if (e->kb)
        s_kfield(e->kb, K_NUMBER, name, &v, sizeof v);
    else
        s_put(e, name, cJSON_CreateNumber(v));
}

void pe_str(pe_t *e, const char *name, const char *s)
{
    if (e->kb)
        s_kfield(e->kb, K_STR, name, s, strlen(s) + 1);
    else
        s_put(e, name, cJSON_CreateString(s));
}

void pe_str_or_null(pe_t *e, const char *name, const char *s)
{
    if (s && *s)
        pe_str(e, name, s);
    else
        pe_null(e, name);
}

void pe_bool(pe_t *e, const char *name, bool v)
{
    unsigned char b = v;
    if (e->kb)
        s_kfield(e->kb, K_BOOL, name, &b, 1);
    else
        s_put(e, name, cJSON_CreateBool(v));
}

static pe_t s_child(pe_t *e, const char *name, bool array)
{
    if (e->kb) {
        s_kfield(e->kb, array ? K_ARR : K_OBJ, name, NULL, 0);
        return *e;
    }
    cJSON *c = array ? cJSON_CreateArray() : cJSON_CreateObject();
    /* a child the parent did not take is freed: nothing is written into it */
    return (pe_t){.o = s_put(e, name, c) ? c : NULL, .kb = NULL};
}

pe_t pe_object(pe_t *e, const char *name)
{
    return s_child(e, name, false);
}

pe_t pe_array(pe_t *e, const char *name)
{
    return s_child(e, name, true);
}

void pe_end(pe_t *child)
{
    if (child->kb)
        s_kfield(child->kb, K_END, NULL, NULL, 0);
}
