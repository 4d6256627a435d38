/*
 * Fuzz harness: the typed JSON getters and jpath (common/jget.h) that guard every JSON value
 * arriving from outside (gateway requests, MQTT payloads, meter documents).
 *
 * Input: a jpath expression, a newline, then a JSON document. Every getter is run on every
 * member of the document (and on a missing key) and must keep its contract: on success the
 * value is within the bounds asked for, on failure there is a message. jpath_number must
 * refuse a path that jpath_valid refuses, and every number either returns is finite.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "jget.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static void s_getters(const cJSON *obj, const char *key)
{
    char err[256];
    long l;
    err[0] = '\0';
    if (jget_int(obj, key, -5, 198, &l, err, sizeof err) == 0) {
        if (l < -5 || l > 198)
            FAIL("jget_int gave %ld outside -5..198", l);
    } else if (!err[0]) {
        FAIL("jget_int failed without a message");
    }
    if (jget_int_opt(obj, key, 0, 63, 7, &l, err, sizeof err) == 0 && (l < 0 || l > 63))
        FAIL("jget_int_opt gave %ld outside 0..63", l);
    if (jget_int(obj, key, LONG_MIN, LONG_MAX, &l, NULL, 0) == 0)
        (void)l;
    double d;
    err[0] = '\0';
    if (jget_num(obj, key, -1e3, 1e3, &d, err, sizeof err) == 0) {
        if (!isfinite(d) || d < -1e3 || d > 1e3)
            FAIL("jget_num gave %g outside -1000..1000", d);
    } else if (!err[0]) {
        FAIL("jget_num failed without a message");
    }
    if (jget_num_opt(obj, key, -HUGE_VAL, HUGE_VAL, 1.5, &d, err, sizeof err) == 0 && !isfinite(d))
        FAIL("jget_num_opt gave a non-finite number");
    const char *s;
    err[0] = '\0';
    if (jget_str(obj, key, 8, &s, err, sizeof err) == 0) {
        if (!s || strlen(s) > 8)
            FAIL("jget_str gave a string longer than 8");
    } else if (!err[0]) {
        FAIL("jget_str failed without a message");
    }
    if (jget_str_opt(obj, key, 0, "x", &s, err, sizeof err) == 0 && !s)
        FAIL("jget_str_opt gave NULL");
    bool b;
    err[0] = '\0';
    if (jget_bool(obj, key, &b, err, sizeof err) != 0 && !err[0])
        FAIL("jget_bool failed without a message");
    (void)jget_bool_opt(obj, key, true, &b, err, 1); /* a tiny buffer must not overflow */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t plen = nl ? (size_t)(nl - data) : 0;
    if (!nl || plen > 256)
        return 0;
    char path[257];
    memcpy(path, data, plen);
    path[plen] = '\0';
    const char *doc = (const char *)nl + 1;
    size_t dlen = size - plen - 1;

    char *text = malloc(dlen + 1);
    if (!text)
        return 0;
    memcpy(text, doc, dlen);
    text[dlen] = '\0';
    double v;
    if (num_parse(text, &v) == 0 && !isfinite(v))
        FAIL("num_parse accepted a non-finite number");

    cJSON *root = cJSON_ParseWithLength(doc, dlen);
    int valid = jpath_valid(path);
    if (root) {
        if (jpath_number(root, path, &v) == 0) {
            if (valid != 0)
                FAIL("jpath_number accepted '%s' which jpath_valid refuses", path);
            if (!isfinite(v))
                FAIL("jpath_number gave a non-finite number");
        }
        s_getters(root, "no such key");
        s_getters(root, path);
        if (cJSON_IsObject(root)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, root)
            {
                if (it->string)
                    s_getters(root, it->string);
            }
        }
        cJSON_Delete(root);
    }
    free(text);
    return 0;
}
