/*  jget: typed, validating getters over cJSON, for everything that arrives from outside
    (gateway requests, MQTT payloads). Each getter checks presence, type and bounds, and on
    failure writes a message naming the field and what is allowed, e.g.
        'current_a' must be a number between 0 and 198 (got "abc")
    so the message can go back to the sender as is. All return 0 on success, -1 on error;
    OUT is written only on success. ERR may be NULL.
*/
#ifndef BIC_JGET_H
#define BIC_JGET_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  An integer (a JSON number with no fraction) in [MIN, MAX]. */
int jget_int(const cJSON *obj, const char *key, long min, long max, long *out, char *err, size_t n);

/*  A finite number in [MIN, MAX]. */
int jget_num(const cJSON *obj, const char *key, double min, double max, double *out, char *err,
             size_t n);

/*  A string of at most MAXLEN bytes; *OUT points into OBJ (valid while OBJ lives). */
int jget_str(const cJSON *obj, const char *key, size_t maxlen, const char **out, char *err,
             size_t n);

/*  true or false (JSON booleans only). */
int jget_bool(const cJSON *obj, const char *key, bool *out, char *err, size_t n);

/*  Optional variants: a missing key (or JSON null) gives DEF and succeeds; a present key
    is validated as above. */
int jget_int_opt(const cJSON *obj, const char *key, long min, long max, long def, long *out,
                 char *err, size_t n);
int jget_num_opt(const cJSON *obj, const char *key, double min, double max, double def, double *out,
                 char *err, size_t n);
int jget_str_opt(const cJSON *obj, const char *key, size_t maxlen, const char *def,
                 const char **out, char *err, size_t n);
int jget_bool_opt(const cJSON *obj, const char *key, bool def, bool *out, char *err, size_t n);

/*  The number at PATH in ROOT: dot-separated object keys with array subscripts,
    e.g. "ENERGY.Power", "a.b[0].c", "[2]" or "" (ROOT itself). The value may be a JSON
    number or a string holding a plain number (see num_parse). NaN/Inf are rejected.
    Returns 0, or -1 (path syntax error, missing, not a number). */
int jpath_number(const cJSON *root, const char *path, double *out);

/*  Check a jpath expression's syntax without a document (for config validation).
    Returns 0 when valid, -1 otherwise. */
int jpath_valid(const char *path);

/*  LEN bytes of S are well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
    above U+10FFFF), as JSON text must be. Returns 0, or -1 with the offset of the first bad
    byte in *BAD_AT (may be NULL). Text that fails is never echoed back. */
int jget_utf8_check(const char *s, size_t len, size_t *bad_at);

/*  A whole text as one plain number: surrounding whitespace allowed, decimal with optional
    sign, fraction and exponent; rejects empty text, NaN, Inf, hex and trailing garbage.
    Returns 0 or -1. */
int num_parse(const char *text, double *out);

#ifdef __cplusplus
}
#endif

#endif
