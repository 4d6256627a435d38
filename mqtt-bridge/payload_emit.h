/*
 * payload_emit: a JSON payload written once and used two ways. A builder adds its fields
 * through these calls; with a JSON emitter they build the cJSON object, with a key emitter
 * they append what the object would hold (each field's name, kind and value as it would be
 * shown, numbers already rounded) to a byte buffer. The same builder on the same state gives
 * the same key and the same payload, so equal keys mean equal payloads: the bridge compares
 * a key (no allocation, no number printing) to know a payload has not changed.
 *
 * Field names must be strings that outlive the key (literals or static tables): a key
 * holds the name's address, not its text.
 */
#ifndef PAYLOAD_EMIT_H
#define PAYLOAD_EMIT_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

typedef struct {
    unsigned char *buf;
    size_t cap;
    size_t len; /* grows past cap when the key does not fit (then it is not usable) */
} pe_key_t;

typedef struct {
    cJSON *o;     /* JSON: the object or array written to (NULL after an allocation failure) */
    pe_key_t *kb; /* key: the buffer appended to; NULL for a JSON emitter */
} pe_t;

/* An emitter building the object `o` (owned by the caller). */
pe_t pe_json(cJSON *o);
/* An emitter appending to kb (its len set to 0 first). */
pe_t pe_key(pe_key_t *kb, unsigned char *buf, size_t cap);

/* A number rounded to `decimals` places (0-3; written as cJSON prints it), null when NAN. */
void pe_num(pe_t *e, const char *name, double v, int decimals);
/* A number as it is (cJSON's own printing). */
void pe_number(pe_t *e, const char *name, double v);
/* A string; pe_str_or_null: null when s is NULL or empty. */
void pe_str(pe_t *e, const char *name, const char *s);
void pe_str_or_null(pe_t *e, const char *name, const char *s);
void pe_null(pe_t *e, const char *name);
void pe_bool(pe_t *e, const char *name, bool v);
/* A nested object or array named `name` (name ignored inside an array); the fields added to
 * the returned emitter go into it. pe_end() closes it. */
pe_t pe_object(pe_t *e, const char *name);
pe_t pe_array(pe_t *e, const char *name);
void pe_end(pe_t *child);

#endif
