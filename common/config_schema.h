/*  config_schema: the table of every ini key (private to config.c / config_schema.c).
    One row per key of docs/configuration.md; '#' in a key is a number whose range
    depends on the text before it (see config.c).
*/
#ifndef BIC_CONFIG_SCHEMA_H
#define BIC_CONFIG_SCHEMA_H

#include <stddef.h>

typedef enum {
    CT_INT,
    CT_FLOAT,
    CT_BOOL,
    CT_STRING,   /* free text, length in [min, max] */
    CT_ENUM,     /* one of values (case-insensitive); empty = the default */
    CT_PATH,     /* a file or directory name; opened (and checked) by the program */
    CT_TOPIC,    /* an MQTT topic name: no wildcards, no leading or trailing '/' */
    CT_ENDPOINT, /* ipc://PATH or tcp://HOST:PORT */
    CT_HOST,     /* host name or address */
} config_type_t;

/*  Extra check for a value that passed its type: returns 0, or -1 with a short text of
    what is allowed in WHAT. */
typedef int(config_check_fn)(const char *value, char *what, size_t n);

typedef struct {
    const char *section; /* canonical spelling (upper case) */
    const char *key;     /* canonical spelling, '#' = a number */
    config_type_t type;
    const char *def;           /* default as text; NULL = none (reads as 0 / "") */
    double min, max;           /* int/float: bounds; string: length bounds */
    const char *const *values; /* enum: canonical values, NULL-terminated */
    config_check_fn *check;    /* optional extra validation */
    const char *allowed;       /* optional text for "allowed:" in messages */
} config_key_t;

/*  Sections the loader knows; the ignored ones are accepted with a warning. */
extern const char *const config_sections[];
extern const char *const config_ignored_sections[];

extern const config_key_t config_schema[];
extern const size_t config_schema_count;

#endif
