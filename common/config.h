/*  config: the one ini file shared by every bic2mqtt program.

    A table-driven loader on inih. Every key of docs/configuration.md is in the schema
    (config_schema.c) with its type, default, bounds or allowed values. Loading validates
    every value and the cross-field rules, so a program that got a config_t can trust it.
    Section and key names are case-insensitive; '#' in a schema key is a number (device
    address 0-63 after "Id/" (a device number 0-67 in [CHARGE_CONTROL] and [SURPLUS_SWITCH],
    64-67 naming an NPB), hour 0-23 after "Hour/", percent 0-100 after "Cap2V/").

    Getters take the section and a printf-style key ("Id/%d/ChargeVoltage") and return the
    file's value or the schema default. Asking for a key that is not in the schema is a
    programming error and aborts with a message: such a key can never come from the file.
*/
#ifndef BIC_CONFIG_H
#define BIC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct config_t config_t;

#define CONFIG_DEFAULT_PATH "/etc/bic2mqtt/bic2mqtt.ini"
/* A configuration file is a regular file of at most this size (the full sample is 10 KiB). */
#define CONFIG_MAX_BYTES (1024 * 1024)
#define CONFIG_MAX_IDS 68    /* device numbers: BICs 0-63, NPBs 64-67 */
#define CONFIG_MAX_CAP2V 101 /* percent 0-100 */
/* Gateways a controller reaches: 0 is [GATEWAY]'s own endpoints, 1-7 [GATEWAY] Gw/G/... */
#define CONFIG_MAX_GATEWAYS 8

/*  Load and validate PATH. Returns a new config (caller owns; config_destroy) or NULL.
    On NULL, ERR (if not NULL) holds every error found, one per line, each as
        FILE:LINE: [SECTION] KEY: 'VALUE' is not <what>; allowed: <range/list>
    (cross-field errors name the line of the key they are about). Unknown sections and
    keys are not errors: they are kept as warnings (see config_warning). */
config_t *config_load(const char *path, char *err, size_t errlen);

/*  Destroy a config; accepts NULL and a pointer to NULL; nulls the caller's pointer. */
void config_destroy(config_t **self_p);

/*  The path the config was loaded from (owned by the config). */
const char *config_path(const config_t *self);

/*  Warnings found while loading (unknown key or section, a key set twice...), each as
    "FILE:LINE: [SECTION] KEY: what". Index 0..count-1; the string is owned by the config. */
size_t config_warning_count(const config_t *self);
const char *config_warning(const config_t *self, size_t index);

/*  Typed getters: the value from the file, else the schema default. The key must match a
    schema entry of the right type, else abort() with a message (a programming error).
    config_int also serves bool keys (0/1). config_str serves every type and returns the
    normalised text (enums in their canonical spelling, quotes stripped); the string is
    owned by the config and lives as long as it. A required key that is absent reads as 0
    or "" (load already refused files where it is needed). */
long config_int(const config_t *self, const char *section, const char *keyfmt, ...)
    __attribute__((format(printf, 3, 4)));
double config_float(const config_t *self, const char *section, const char *keyfmt, ...)
    __attribute__((format(printf, 3, 4)));
bool config_bool(const config_t *self, const char *section, const char *keyfmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *config_str(const config_t *self, const char *section, const char *keyfmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  True when the file sets the key (a schema key; aborts otherwise, like the getters). */
bool config_has(const config_t *self, const char *section, const char *keyfmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  The line of the file that set the key, 0 when not set (for messages in programs). */
int config_line(const config_t *self, const char *section, const char *keyfmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  The X of every "Id/X/" key present in SECTION (not "Id/X@G/": a device on another
    gateway), ascending and unique, at most MAX of
    them written to IDS. Returns how many there are (may exceed MAX). */
size_t config_ids(const config_t *self, const char *section, int *ids, size_t max);

/*  The [BAT_0] Cap2V/P table, ascending by percent (load checked that the voltages rise
    with the percentage). Writes at most MAX entries; returns how many there are. */
size_t config_cap2v(const config_t *self, double *pct, double *volts, size_t max);

/*  For every program's --check-config: load PATH, print the warnings and errors to
    stderr (and "PATH: ok" to stdout when valid). Returns the exit code: 0 valid, 1 not. */
int config_check_main(const char *path);

/*  A program's own checks of a file the schema accepts: 0, or -1 with the reason in err. */
typedef int (*config_prog_check_fn)(const config_t *cfg, char *err, size_t errlen);

/*  As config_check_main(), then (when the schema finds nothing) the program's own checks,
    so that --check-config refuses what the program would refuse at start. check may be
    NULL. */
int config_check_main_with(const char *path, config_prog_check_fn check);

#ifdef __cplusplus
}
#endif

#endif
