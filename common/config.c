/*  config: ini loader (implementation in progress). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

config_t *config_load(const char *path, char *err, size_t errlen)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: config loader not available yet", path);
    return NULL;
}

void config_destroy(config_t **self_p)
{
    if (self_p)
        *self_p = NULL;
}

const char *config_path(const config_t *self)
{
    return "";
}

size_t config_warning_count(const config_t *self)
{
    return 0;
}

const char *config_warning(const config_t *self, size_t index)
{
    return NULL;
}

long config_int(const config_t *self, const char *section, const char *keyfmt, ...)
{
    return 0;
}

double config_float(const config_t *self, const char *section, const char *keyfmt, ...)
{
    return 0;
}

bool config_bool(const config_t *self, const char *section, const char *keyfmt, ...)
{
    return false;
}

const char *config_str(const config_t *self, const char *section, const char *keyfmt, ...)
{
    return "";
}

bool config_has(const config_t *self, const char *section, const char *keyfmt, ...)
{
    return false;
}

int config_line(const config_t *self, const char *section, const char *keyfmt, ...)
{
    return 0;
}

size_t config_ids(const config_t *self, const char *section, int *ids, size_t max)
{
    return 0;
}

size_t config_cap2v(const config_t *self, double *pct, double *volts, size_t max)
{
    return 0;
}

int config_check_main(const char *path)
{
    char err[1024];
    config_t *cfg = config_load(path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    config_destroy(&cfg);
    return 0;
}
