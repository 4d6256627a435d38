/*
 * bicctl_npb - bicctl's NPB commands (see bicctl_npb.h, docs/bicctl.md "NPB chargers").
 */
#include "bicctl_npb.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bicctl_cmd_int.h"
#include "npb_proto.h"

#define GW BICCTL_RUN_GATEWAY

static int r_curve(const cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n, FILE *out,
                   char *err, size_t errlen);
static int r_reg(const cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n, FILE *out,
                 char *err, size_t errlen);
static int r_mode(const cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n, FILE *out,
                  char *err, size_t errlen);

/* Bounds: the union of the twelve models' ranges (docs/npb.md); the gateway narrows them to
 * the device's model and the [NPB] limits. */
const bicctl_cmd_t bicctl_npb_cmds[] = {
    {"curve",
     K_NPB,
     V_NONE,
     {NULL},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_curve,
     "read the charge curve: CC, CV, FV, TC, mode, stage timeouts and the stage"},
    {"cc",
     K_NPB,
     V_OPTIONAL,
     {"CURVE_CC"},
     0,
     136,
     8500,
     "A",
     NULL,
     GW,
     r_reg,
     "read or set the CC stage's current CURVE_CC, VALUE = A x 100"},
    {"cv",
     K_NPB,
     V_OPTIONAL,
     {"CURVE_CV"},
     0,
     1050,
     8000,
     "V",
     NULL,
     GW,
     r_reg,
     "read or set the boost (CV stage) voltage CURVE_CV, VALUE = V x 100"},
    {"fv",
     K_NPB,
     V_OPTIONAL,
     {"CURVE_FV"},
     0,
     1050,
     8000,
     "V",
     NULL,
     GW,
     r_reg,
     "read or set the float voltage CURVE_FV, VALUE = V x 100"},
    {"tc",
     K_NPB,
     V_OPTIONAL,
     {"CURVE_TC"},
     0,
     7,
     4250,
     "A",
     NULL,
     GW,
     r_reg,
     "read or set the taper current CURVE_TC (CV stage ends), VALUE = A x 100"},
    {"cc_timeout",
     K_NPB,
     V_OPTIONAL,
     {"CURVE_CC_TIMEOUT"},
     0,
     NPB_TIMEOUT_MIN,
     NPB_TIMEOUT_MAX,
     "min",
     NULL,
     GW,
     r_reg,
     "read or set the CC stage timeout, VALUE = minutes"},
    {"cv_timeout",
     K_NPB,
     V_OPTIONAL,
     {"CURVE_CV_TIMEOUT"},
     0,
     NPB_TIMEOUT_MIN,
     NPB_TIMEOUT_MAX,
     "min",
     NULL,
     GW,
     r_reg,
     "read or set the CV stage timeout, VALUE = minutes"},
    {"fv_timeout",
     K_NPB,
     V_OPTIONAL,
     {"CURVE_FV_TIMEOUT"},
     0,
     NPB_TIMEOUT_MIN,
     NPB_TIMEOUT_MAX,
     "min",
     NULL,
     GW,
     r_reg,
     "read or set the float stage timeout, VALUE = minutes"},
    {"chargemode",
     K_NPB,
     V_OPTIONAL,
     {"CURVE_CONFIG"},
     0,
     0,
     1,
     NULL,
     NULL,
     GW,
     r_mode,
     "read the mode, or set it: VALUE charger or psu (CURVE_CONFIG bit 7)"},
    {"NPB_chargemode",
     K_NPB,
     V_NONE,
     {"CURVE_CONFIG"},
     0,
     0,
     0,
     NULL,
     NULL,
     GW,
     r_mode,
     "the seed's: switch between charger and PSU mode (toggles CURVE_CONFIG bit 7)"},
};
const size_t bicctl_npb_ncmds = sizeof bicctl_npb_cmds / sizeof bicctl_npb_cmds[0];

static const char *const s_curve_regs[] = {
    "CURVE_CC",         "CURVE_CV",         "CURVE_FV",         "CURVE_TC",   "CURVE_CONFIG",
    "CURVE_CC_TIMEOUT", "CURVE_CV_TIMEOUT", "CURVE_FV_TIMEOUT", "CHG_STATUS", NULL};

const char *const bicctl_npb_status_regs[] = {"READ_VOUT",          "READ_IOUT", "READ_VIN",
                                              "READ_TEMPERATURE_1", "OPERATION", "FAULT_STATUS",
                                              "SYSTEM_STATUS",      NULL};

static void s_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

static bool s_mode_cmd(const cmd_t *c)
{
    return strcmp(c->regs[0] ? c->regs[0] : "", "CURVE_CONFIG") == 0;
}

int bicctl_npb_check_value(const bicctl_cmd_t *c, const char *text, bicctl_args_t *args, char *err,
                           size_t errlen)
{
    if (!text)
        return 0; /* a read */
    if (c->val == V_NONE) {
        s_fmt(err, errlen, "%s takes no value, got '%s'", c->name, text);
        return -1;
    }
    if (s_mode_cmd(c)) {
        if (strcmp(text, "charger") != 0 && strcmp(text, "psu") != 0) {
            s_fmt(err, errlen, "%s: '%s' is not a mode; allowed: charger or psu", c->name, text);
            return -1;
        }
        args->value = strcmp(text, "charger") == 0;
        args->has_value = true;
        return 0;
    }
    bool minutes = strcmp(c->unit, "min") == 0;
    errno = 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || v < c->min || v > c->max) {
        if (minutes)
            s_fmt(err, errlen, "%s: '%s' is not allowed; give whole minutes, %ld-%ld", c->name,
                  text, c->min, c->max);
        else
            s_fmt(err, errlen,
                  "%s: '%s' is not allowed; give %s x 100 as an integer, %ld-%ld (%.2f-%.2f %s; "
                  "the device's model narrows it)",
                  c->name, text, c->unit, c->min, c->max, c->min / 100.0, c->max / 100.0, c->unit);
        return -1;
    }
    args->value = v;
    args->has_value = true;
    return 0;
}

static cJSON *s_get(const bicctl_args_t *a, const char *const *regs)
{
    cJSON *req = bicctl_i_req("get", a, a->dev);
    cJSON *arr = cJSON_AddArrayToObject(req, "regs");
    for (size_t i = 0; regs[i]; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(regs[i]));
    return req;
}

static cJSON *s_set(const bicctl_args_t *a, const char *reg, long raw)
{
    cJSON *req = bicctl_i_req("set", a, a->dev);
    cJSON_AddStringToObject(req, "reg", reg);
    cJSON_AddNumberToObject(req, "raw", (double)raw);
    return req;
}

cJSON *bicctl_npb_next(const bicctl_cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n)
{
    if (!c->regs[0]) /* curve */
        return n == 0 ? s_get(a, s_curve_regs) : NULL;
    if (!s_mode_cmd(c)) {
        if (n > 0)
            return NULL;
        const char *one[] = {c->regs[0], NULL};
        return a->has_value ? s_set(a, c->regs[0], a->value) : s_get(a, one);
    }
    /* the mode: read CURVE_CONFIG, then write it with bit 7 (CUVE) as asked or toggled */
    if (n == 0) {
        const char *one[] = {"CURVE_CONFIG", NULL};
        return s_get(a, one);
    }
    bool toggle = c->val == V_NONE;
    long raw;
    char err[128];
    if (n > 1 || (!toggle && !a->has_value) ||
        bicctl_i_slot_raw(r[0], "CURVE_CONFIG", &raw, err, sizeof err) != 0)
        return NULL;
    bool charger = toggle ? !(raw & 0x80) : a->value != 0;
    return s_set(a, "CURVE_CONFIG", charger ? (raw | 0x80) : (raw & ~0x80L));
}

bool bicctl_npb_is(const cJSON *d)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(d, "family");
    return cJSON_IsString(f) && strcmp(f->valuestring, "NPB") == 0;
}

/* ---------------------------------------------------------------- renderers */

static void s_line_val(FILE *out, const cJSON *get, const char *label, const char *reg, int dec,
                       const char *unit)
{
    double v;
    fprintf(out, "%-14s", label);
    if (bicctl_i_val(get, reg, &v))
        fprintf(out, "%.*f %s", dec, v, unit);
    else
        fputs("n/a", out);
    fputc('\n', out);
}

static const char *s_stage_of(const cJSON *get)
{
    long raw;
    char err[64];
    if (bicctl_i_slot_raw(get, "CHG_STATUS", &raw, err, sizeof err) != 0)
        return NULL;
    return npb_stage_name(npb_stage_of((uint16_t)raw));
}

static void s_line_timeout(FILE *out, const cJSON *get, const char *label, const char *reg, bool on)
{
    double v;
    fprintf(out, "%-14s", label);
    if (bicctl_i_val(get, reg, &v))
        fprintf(out, "%.0f min, %s\n", v, on ? "enabled" : "disabled");
    else
        fputs("n/a\n", out);
}

static int r_curve(const cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n, FILE *out,
                   char *err, size_t errlen)
{
    (void)c, (void)n;
    if (a->json) {
        bicctl_i_print_result(r[0], out);
        return 0;
    }
    long cfg_raw;
    int rc = bicctl_i_slot_raw(r[0], "CURVE_CONFIG", &cfg_raw, err, errlen);
    if (rc)
        return rc;
    npb_curve_config_t cfg;
    npb_curve_config_decode((uint16_t)cfg_raw, &cfg);
    fprintf(out, "%-14s%s, %s, temperature compensation %s\n", "mode",
            cfg.charger ? "charger" : "psu (VOUT_SET/IOUT_SET; the curve does not act)",
            cfg.curve ? npb_curve_name(cfg.curve) : "custom curve", npb_tcs_name(cfg.tcs));
    fprintf(out, "%-14s%s\n", "stages", cfg.two_stage ? "2 (CC, CV)" : "3 (CC, CV, float)");
    s_line_val(out, r[0], "cc", "CURVE_CC", 2, "A");
    s_line_val(out, r[0], "cv", "CURVE_CV", 2, "V");
    s_line_val(out, r[0], "fv", "CURVE_FV", 2, "V");
    s_line_val(out, r[0], "tc", "CURVE_TC", 2, "A");
    s_line_timeout(out, r[0], "cc_timeout", "CURVE_CC_TIMEOUT", cfg.cc_timeout_en);
    s_line_timeout(out, r[0], "cv_timeout", "CURVE_CV_TIMEOUT", cfg.cv_timeout_en);
    s_line_timeout(out, r[0], "fv_timeout", "CURVE_FV_TIMEOUT", cfg.fv_timeout_en);
    const char *stage = s_stage_of(r[0]);
    fprintf(out, "%-14s%s\n", "stage", stage ? stage : "n/a");
    return 0;
}

static int r_reg(const cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n, FILE *out,
                 char *err, size_t errlen)
{
    (void)n;
    if (a->has_value) {
        if (a->json)
            bicctl_i_print_result(r[0], out);
        return 0; /* a write: the outcome line tells */
    }
    long raw;
    int rc = bicctl_i_slot_raw(r[0], c->regs[0], &raw, err, errlen);
    if (rc)
        return rc;
    if (a->json)
        bicctl_i_print_result(r[0], out);
    else
        fprintf(out, "%ld\n", raw); /* as the seed's reads: V or A x 100, minutes */
    return 0;
}

static int r_mode(const cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n, FILE *out,
                  char *err, size_t errlen)
{
    if (a->json) {
        bicctl_i_print_result(r[n - 1], out);
        return 0;
    }
    if (n == 1) { /* a read */
        long raw;
        int rc = bicctl_i_slot_raw(r[0], "CURVE_CONFIG", &raw, err, errlen);
        if (rc)
            return rc;
        fprintf(out, "%s\n", raw & 0x80 ? "charger" : "psu");
        return 0;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r[n - 1], "value");
    bool charger = cJSON_IsNumber(v) && ((long)v->valuedouble & 0x80);
    fprintf(out, "%s\n", charger ? "charger" : "psu");
    if (c->val == V_NONE || a->has_value)
        fputs("(in force after the output is switched off and on, or a re-power)\n", stderr);
    return 0;
}

/* ---------------------------------------------------------------- info and status lines */

void bicctl_npb_print_status(FILE *out, const cJSON *device, const cJSON *get)
{
    double x, v, i;
    fprintf(out, "%-14s", "output");
    fputs(bicctl_i_val(get, "OPERATION", &x) ? (x != 0 ? "on" : "off") : "n/a", out);
    fputc('\n', out);
    fprintf(out, "%-14s", "battery");
    if (bicctl_i_val(get, "READ_VOUT", &v) && bicctl_i_val(get, "READ_IOUT", &i))
        fprintf(out, "%.2f V  %.2f A  %+.1f W (%s)\n", v, i, v * i,
                i > 0 ? "charging" : "no current");
    else
        fputs("n/a\n", out);
    s_line_val(out, get, "AC", "READ_VIN", 1, "V");
    s_line_val(out, get, "temperature", "READ_TEMPERATURE_1", 1, "degC");
    long raw;
    char err[64];
    fprintf(out, "%-14s", "faults");
    if (bicctl_i_slot_raw(get, "FAULT_STATUS", &raw, err, sizeof err) == 0)
        fprintf(out, raw ? "0x%04lX\n" : "none\n", raw);
    else
        fputs("n/a\n", out);
    fprintf(out, "%-14s", "system");
    if (bicctl_i_slot_raw(get, "SYSTEM_STATUS", &raw, err, sizeof err) == 0) {
        npb_sysstatus_t st;
        npb_options_t opts;
        npb_options_default(&opts);
        const cJSON *pol = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(device, "options"), "dc_ok");
        if (cJSON_IsString(pol))
            npb_dcok_parse(pol->valuestring, &opts.dc_ok); /* the gateway's [NPB] setting */
        npb_sysstatus_decode(&opts, (uint16_t)raw, &st);
        fprintf(out, "DC %s, %s, EEPROM %s\n", st.dc_ok ? "ok" : "too low",
                st.initialising ? "initialising" : "ready", st.eeper ? "ERROR" : "ok");
    } else {
        fputs("n/a\n", out);
    }
}

void bicctl_npb_print_device(FILE *out, const cJSON *d)
{
    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(d, "limits");
    fprintf(out, "%-14scharge ", "limits");
    bicctl_i_range(out, limits, "vout_v", "V");
    fputc(' ', out);
    bicctl_i_range(out, limits, "iout_a", "A");
    fputs(" (the model's ranges within [NPB]); charges only\n", out);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "curve");
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(c, "cc_a");
    const cJSON *cv = cJSON_GetObjectItemCaseSensitive(c, "cv_v");
    const cJSON *fv = cJSON_GetObjectItemCaseSensitive(c, "fv_v");
    fprintf(out, "%-14s", "charge curve");
    if (cJSON_IsNumber(cc) && cJSON_IsNumber(cv) && cJSON_IsNumber(fv))
        fprintf(out, "CC %.2f A, CV %.2f V, FV %.2f V\n", cc->valuedouble, cv->valuedouble,
                fv->valuedouble);
    else
        fputs("not read yet\n", out);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "stage");
    fprintf(out, "%-14s%s\n", "stage", cJSON_IsString(st) ? st->valuestring : "n/a");
}
