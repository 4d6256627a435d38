/*  jget: validating JSON getters (implementation in progress). */
#include "jget.h"

int jget_int(const cJSON *obj, const char *key, long min, long max, long *out, char *err,
             size_t n)
{
    return -1;
}

int jget_num(const cJSON *obj, const char *key, double min, double max, double *out, char *err,
             size_t n)
{
    return -1;
}

int jget_str(const cJSON *obj, const char *key, size_t maxlen, const char **out, char *err,
             size_t n)
{
    return -1;
}

int jget_bool(const cJSON *obj, const char *key, bool *out, char *err, size_t n)
{
    return -1;
}

int jget_int_opt(const cJSON *obj, const char *key, long min, long max, long def, long *out,
                 char *err, size_t n)
{
    return -1;
}

int jget_num_opt(const cJSON *obj, const char *key, double min, double max, double def,
                 double *out, char *err, size_t n)
{
    return -1;
}

int jget_str_opt(const cJSON *obj, const char *key, size_t maxlen, const char *def,
                 const char **out, char *err, size_t n)
{
    return -1;
}

int jget_bool_opt(const cJSON *obj, const char *key, bool def, bool *out, char *err, size_t n)
{
    return -1;
}

int jpath_number(const cJSON *root, const char *path, double *out)
{
    return -1;
}

int jpath_valid(const char *path)
{
    return -1;
}

int num_parse(const char *text, double *out)
{
    return -1;
}
