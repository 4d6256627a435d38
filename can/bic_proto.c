/*  bic_proto.c - BIC-2200 protocol tables and codec (see bic_proto.h).

    The tables transcribe docs/bic2200-protocol.md: the command table of §6, the ranges and
    defaults of §9.2 (register units, fixed factors), the ratings of §9.3 and the bit layouts
    of §8. Where sources disagree the position of §14 is taken: SYSTEM_STATUS bits 4/5/6,
    EEP_OFF at bit 10, EEP_CONFIG at bits 9:8, REVERSE_IOUT_SET a positive magnitude, the 1 %
    current minimum by default.
*/
#include "bic_proto.h"
#include "npb_proto.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------------------- */
/* Errors                                                                                 */

const char *bic_strerror(bic_err_t err)
{
    switch (err) {
    case BIC_OK:
        return "ok";
    case BIC_E_ARG:
        return "invalid argument";
    case BIC_E_NOT_EXT:
        return "standard (11-bit) frame: the protocol uses extended 29-bit identifiers only";
    case BIC_E_RTR:
        return "remote (RTR) frame: the protocol uses data frames only";
    case BIC_E_WRONG_ID:
        return "identifier is not in the family's range for this direction";
    case BIC_E_ADDR:
        return "address out of range for the family (BIC 0-63, NPB 0-3; broadcast only for "
               "writes)";
    case BIC_E_SHORT:
        return "frame shorter than the 2-byte command code";
    case BIC_E_UNKNOWN_CMD:
        return "unknown command code";
    case BIC_E_DLC:
        return "data length does not match the command";
    case BIC_E_READ_ONLY:
        return "command is read-only";
    case BIC_E_RANGE:
        return "value does not fit the register";
    case BIC_E_PARSE:
        return "text could not be parsed";
    }
    return "unknown error";
}

/* ------------------------------------------------------------------------------------- */
/* Command table (§6), sorted by code                                                     */

/* Column order: code, name, aliases, writable, len, min_len, type, scale, unit,
   eep_star, persisted, output. */
#define CMD(code, name, wr, len, type, scale, unit, star, pers, out)                               \
    {                                                                                              \
        (code), (name), {NULL}, (wr), (len), (len), (type), (scale), (unit), (star), (pers), (out) \
    }

static const bic_cmd_t s_bic_cmds[] = {
    CMD(0x0000, "OPERATION", true, 1, BIC_TYPE_U8, BIC_SCALE_NONE, NULL, false, true, true),
    CMD(0x0020, "VOUT_SET", true, 2, BIC_TYPE_U16, BIC_SCALE_VOUT, "V", true, true, true),
    CMD(0x0030, "IOUT_SET", true, 2, BIC_TYPE_U16, BIC_SCALE_IOUT, "A", true, true, true),
    CMD(0x0040, "FAULT_STATUS", false, 2, BIC_TYPE_BITS, BIC_SCALE_NONE, NULL, false, false, false),
    CMD(0x0050, "READ_VIN", false, 2, BIC_TYPE_U16, BIC_SCALE_VIN, "V", false, false, false),
    CMD(0x0060, "READ_VOUT", false, 2, BIC_TYPE_U16, BIC_SCALE_VOUT, "V", false, false, false),
    CMD(0x0061, "READ_IOUT", false, 2, BIC_TYPE_S16, BIC_SCALE_IOUT, "A", false, false, false),
    CMD(0x0062, "READ_TEMPERATURE_1", false, 2, BIC_TYPE_S16, BIC_SCALE_TEMP, "degC", false, false,
        false),
    CMD(0x0070, "READ_FAN_SPEED_1", false, 2, BIC_TYPE_U16, BIC_SCALE_FAN, "RPM", false, false,
        false),
    CMD(0x0071, "READ_FAN_SPEED_2", false, 2, BIC_TYPE_U16, BIC_SCALE_FAN, "RPM", false, false,
        false),
    CMD(0x0080, "MFR_ID_B0B5", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false, false),
    CMD(0x0081, "MFR_ID_B6B11", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0082, "MFR_MODEL_B0B5", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0083, "MFR_MODEL_B6B11", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0084, "MFR_REVISION_B0B5", false, 6, BIC_TYPE_BYTES, BIC_SCALE_NONE, NULL, false, false,
        false),
    /* The manual lists the next four as R/W but shows no write format and nobody writes
       them (§4): read-only here. */
    CMD(0x0085, "MFR_LOCATION_B0B2", false, 3, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0086, "MFR_DATE_B0B5", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0087, "MFR_SERIAL_B0B5", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0088, "MFR_SERIAL_B6B11", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    /* 6 bytes in practice, 2 in the command list (§7): replies of 2-6 accepted. */
    {0x00C0,
     "SCALING_FACTOR",
     {NULL},
     false,
     6,
     2,
     BIC_TYPE_BYTES,
     BIC_SCALE_NONE,
     NULL,
     false,
     false,
     false},
    CMD(0x00C1, "SYSTEM_STATUS", false, 2, BIC_TYPE_BITS, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x00C2, "SYSTEM_CONFIG", true, 2, BIC_TYPE_BITS, BIC_SCALE_NONE, NULL, false, true, false),
    CMD(0x0100, "DIRECTION_CTRL", true, 1, BIC_TYPE_U8, BIC_SCALE_NONE, NULL, false, false, true),
    {0x0120,
     "REVERSE_VOUT_SET",
     {"REV_VOUT_SET", "VOUT_SET_REV", NULL},
     true,
     2,
     2,
     BIC_TYPE_U16,
     BIC_SCALE_VOUT,
     "V",
     true,
     true,
     true},
    {0x0130,
     "REVERSE_IOUT_SET",
     {"REV_IOUT_SET", NULL},
     true,
     2,
     2,
     BIC_TYPE_U16,
     BIC_SCALE_IOUT,
     "A",
     true,
     true,
     true},
    {0x0140,
     "BIDIRECTIONAL_CONFIG",
     {"BIDIR_CONFIG", NULL},
     true,
     2,
     2,
     BIC_TYPE_BITS,
     BIC_SCALE_NONE,
     NULL,
     false,
     true,
     false},
};

/* ------------------------------------------------------------------------------------- */
/* Variants (§9.2, §9.3), register units: 0.01 V and 0.01 A                               */

#define RNG(lo, hi, def)                                                                           \
    {                                                                                              \
        (lo), (hi), (def)                                                                          \
    }

static const bic_variant_t s_bic_variants[] = {
    {.variant = 12,
     .limits = {[BIC_MODE_AUTO] = {RNG(1000, 1500, 1200), RNG(180, 19800, 19800),
                                   RNG(1000, 1500, 1000), RNG(180, 15300, 15300)},
                [BIC_MODE_BATTERY] = {RNG(1000, 1500, 1260), RNG(180, 18000, 16000),
                                      RNG(1000, 1500, 1000), RNG(180, 15300, 12000)}},
     .iout_min20_raw = 3600,
     .vout_tol_raw = 12,
     .iout_tol_raw = 180,
     .rated_power_w = 2160,
     .rated_current_ca = 18000,
     .dc_in_current_ca = 15000,
     .dc_in_power_w = 1800,
     .ovp_min_cv = 1760,
     .ovp_max_cv = 2080},
    {.variant = 24,
     .limits = {[BIC_MODE_AUTO] = {RNG(1900, 2800, 2400), RNG(90, 9900, 9900),
                                   RNG(1900, 2800, 1900), RNG(90, 7650, 7650)},
                [BIC_MODE_BATTERY] = {RNG(1900, 2800, 2520), RNG(90, 9000, 8000),
                                      RNG(1900, 2800, 1900), RNG(90, 7650, 6430)}},
     .iout_min20_raw = 1800,
     .vout_tol_raw = 24,
     .iout_tol_raw = 90,
     .rated_power_w = 2160,
     .rated_current_ca = 9000,
     .dc_in_current_ca = 7500,
     .dc_in_power_w = 1800,
     .ovp_min_cv = 3360,
     .ovp_max_cv = 3920},
    {.variant = 48,
     .limits = {[BIC_MODE_AUTO] = {RNG(3800, 6500, 4800), RNG(45, 4950, 4950),
                                   RNG(3800, 6500, 3800), RNG(45, 3830, 3830)},
                [BIC_MODE_BATTERY] = {RNG(3800, 6500, 5040), RNG(45, 4500, 4000),
                                      RNG(3800, 6500, 3800), RNG(45, 3830, 3220)}},
     .iout_min20_raw = 900,
     .vout_tol_raw = 48,
     .iout_tol_raw = 45,
     .rated_power_w = 2160,
     .rated_current_ca = 4500,
     .dc_in_current_ca = 3750,
     .dc_in_power_w = 1800,
     .ovp_min_cv = 7260,
     .ovp_max_cv = 8600},
    {.variant = 96,
     .limits = {[BIC_MODE_AUTO] = {RNG(7600, 11200, 9600), RNG(25, 2475, 2475),
                                   RNG(7600, 11200, 7600), RNG(25, 1910, 1910)},
                [BIC_MODE_BATTERY] = {RNG(7600, 11200, 10080), RNG(25, 2250, 2000),
                                      RNG(7600, 11200, 7600), RNG(25, 1910, 1610)}},
     .iout_min20_raw = 450,
     .vout_tol_raw = 96,
     .iout_tol_raw = 25,
     .rated_power_w = 2160,
     .rated_current_ca = 2250,
     .dc_in_current_ca = 1875,
     .dc_in_power_w = 1800,
     .ovp_min_cv = 13400,
     .ovp_max_cv = 15700},
};

static const bic_family_t s_bic_family = {
    .id = BIC_FAMILY_BIC,
    .name = "BIC",
    .model_prefix = "BIC-2200-",
    .host_base = 0x000C0300u,
    .dev_base = 0x000C0200u,
    .broadcast_id = 0x000C03FFu,
    .addr_max_basic = 7,
    .addr_max = 63,
    .cmds = s_bic_cmds,
    .ncmds = sizeof s_bic_cmds / sizeof s_bic_cmds[0],
    .variants = s_bic_variants,
    .nvariants = sizeof s_bic_variants / sizeof s_bic_variants[0],
    .initial_state_is_ready = true,
};

/* ------------------------------------------------------------------------------------- */
/* NPB chargers (§15): same protocol, other identifiers, addresses 0-3, no bidirectional    */
/* commands, charge-curve commands. The model tables (ranges per model) are npb_proto.c's.  */

/* The curve registers are kept in the EEPROM (they survive a re-power, which is when they   */
/* act); whether they obey EEP_OFF is not documented, so they are counted as persisted and   */
/* not marked '*'. CC, CV and FV move the output (lease-protected); the rest shape the curve. */
#define NPB_CURVE(code, name, scale, unit, out)                                                    \
    {                                                                                              \
        (code), (name), {NULL}, true, 2, 2, BIC_TYPE_U16, (scale), (unit), false, true, (out)      \
    }

static const bic_cmd_t s_npb_cmds[] = {
    CMD(0x0000, "OPERATION", true, 1, BIC_TYPE_U8, BIC_SCALE_NONE, NULL, false, true, true),
    CMD(0x0020, "VOUT_SET", true, 2, BIC_TYPE_U16, BIC_SCALE_VOUT, "V", true, true, true),
    CMD(0x0030, "IOUT_SET", true, 2, BIC_TYPE_U16, BIC_SCALE_IOUT, "A", true, true, true),
    CMD(0x0040, "FAULT_STATUS", false, 2, BIC_TYPE_BITS, BIC_SCALE_NONE, NULL, false, false, false),
    CMD(0x0050, "READ_VIN", false, 2, BIC_TYPE_U16, BIC_SCALE_VIN, "V", false, false, false),
    CMD(0x0060, "READ_VOUT", false, 2, BIC_TYPE_U16, BIC_SCALE_VOUT, "V", false, false, false),
    CMD(0x0061, "READ_IOUT", false, 2, BIC_TYPE_S16, BIC_SCALE_IOUT, "A", false, false, false),
    CMD(0x0062, "READ_TEMPERATURE_1", false, 2, BIC_TYPE_S16, BIC_SCALE_TEMP, "degC", false, false,
        false),
    CMD(0x0080, "MFR_ID_B0B5", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false, false),
    CMD(0x0081, "MFR_ID_B6B11", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0082, "MFR_MODEL_B0B5", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0083, "MFR_MODEL_B6B11", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0084, "MFR_REVISION_B0B5", false, 6, BIC_TYPE_BYTES, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0085, "MFR_LOCATION_B0B2", false, 3, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0086, "MFR_DATE_B0B5", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0087, "MFR_SERIAL_B0B5", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x0088, "MFR_SERIAL_B6B11", false, 6, BIC_TYPE_ASCII, BIC_SCALE_NONE, NULL, false, false,
        false),
    /* Curve parameters act only after a re-power or an OPERATION OFF->ON (§15.4); whether
       they obey EEP_OFF is not documented, so they are not marked. */
    NPB_CURVE(0x00B0, "CURVE_CC", BIC_SCALE_IOUT, "A", true),
    NPB_CURVE(0x00B1, "CURVE_CV", BIC_SCALE_VOUT, "V", true),
    NPB_CURVE(0x00B2, "CURVE_FV", BIC_SCALE_VOUT, "V", true),
    NPB_CURVE(0x00B3, "CURVE_TC", BIC_SCALE_IOUT, "A", false),
    /* Charger/PSU mode and stages: moves the output. */
    {0x00B4,
     "CURVE_CONFIG",
     {NULL},
     true,
     2,
     2,
     BIC_TYPE_BITS,
     BIC_SCALE_NONE,
     NULL,
     false,
     true,
     true},
    NPB_CURVE(0x00B5, "CURVE_CC_TIMEOUT", BIC_SCALE_NONE, "min", false),
    NPB_CURVE(0x00B6, "CURVE_CV_TIMEOUT", BIC_SCALE_NONE, "min", false),
    NPB_CURVE(0x00B7, "CURVE_FV_TIMEOUT", BIC_SCALE_NONE, "min", false),
    CMD(0x00B8, "CHG_STATUS", false, 2, BIC_TYPE_BITS, BIC_SCALE_NONE, NULL, false, false, false),
    NPB_CURVE(0x00B9, "CHG_RST_VBAT", BIC_SCALE_VOUT, "V", false),
    {0x00C0,
     "SCALING_FACTOR",
     {NULL},
     false,
     6,
     2,
     BIC_TYPE_BYTES,
     BIC_SCALE_NONE,
     NULL,
     false,
     false,
     false},
    CMD(0x00C1, "SYSTEM_STATUS", false, 2, BIC_TYPE_BITS, BIC_SCALE_NONE, NULL, false, false,
        false),
    CMD(0x00C2, "SYSTEM_CONFIG", true, 2, BIC_TYPE_BITS, BIC_SCALE_NONE, NULL, false, true, false),
};

static const bic_family_t s_npb_family = {
    .id = BIC_FAMILY_NPB,
    .name = "NPB",
    .model_prefix = "NPB-",
    .host_base = 0x000C0100u,
    .dev_base = 0x000C0000u,
    .broadcast_id = 0x000C01FFu,
    .addr_max_basic = 3,
    .addr_max = 3,
    .cmds = s_npb_cmds,
    .ncmds = sizeof s_npb_cmds / sizeof s_npb_cmds[0],
    .variants = NULL,
    .nvariants = 0,
    .initial_state_is_ready = false, /* NPB: 1 = in initialisation (§15.3) */
};

const bic_family_t *bic_family_bic(void)
{
    return &s_bic_family;
}

const bic_family_t *bic_family_get(bic_family_id_t id)
{
    if (id == BIC_FAMILY_BIC)
        return &s_bic_family;
    if (id == BIC_FAMILY_NPB)
        return &s_npb_family;
    return NULL;
}

/* ------------------------------------------------------------------------------------- */
/* Lookup                                                                                 */

const bic_cmd_t *bic_cmd_by_code(const bic_family_t *f, uint16_t code)
{
    if (!f)
        return NULL;
    for (size_t i = 0; i < f->ncmds; i++)
        if (f->cmds[i].code == code)
            return &f->cmds[i];
    return NULL;
}

/* "0x0030" / "0X30": 1-4 hex digits after 0x, nothing else. -1 if not that form. */
static int s_parse_code_text(const char *s)
{
    if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return -1;
    const char *p = s + 2;
    size_t n = strlen(p);
    if (n < 1 || n > 4)
        return -1;
    unsigned v = 0;
    for (; *p; p++) {
        if (!isxdigit((unsigned char)*p))
            return -1;
        v = v * 16 + (unsigned)(isdigit((unsigned char)*p) ? *p - '0'
                                                           : tolower((unsigned char)*p) - 'a' + 10);
    }
    return (int)v;
}

const bic_cmd_t *bic_cmd_by_name(const bic_family_t *f, const char *name)
{
    if (!f || !name || !*name)
        return NULL;
    int code = s_parse_code_text(name);
    if (code >= 0)
        return bic_cmd_by_code(f, (uint16_t)code);
    for (size_t i = 0; i < f->ncmds; i++) {
        const bic_cmd_t *c = &f->cmds[i];
        if (strcasecmp(c->name, name) == 0)
            return c;
        for (size_t a = 0; a < 3 && c->aliases[a]; a++)
            if (strcasecmp(c->aliases[a], name) == 0)
                return c;
    }
    return NULL;
}

int bic_cmd_reply_dlc(const bic_cmd_t *c)
{
    return c ? 2 + c->len : -1;
}

const bic_variant_t *bic_variant_get(const bic_family_t *f, int variant)
{
    if (!f)
        return NULL;
    for (size_t i = 0; i < f->nvariants; i++)
        if (f->variants[i].variant == variant)
            return &f->variants[i];
    return NULL;
}

bic_err_t bic_limits_get(const bic_variant_t *v, bic_mode_t mode, bic_min_policy_t min,
                         bic_limits_t *ret_limits)
{
    if (!v || !ret_limits || (mode != BIC_MODE_AUTO && mode != BIC_MODE_BATTERY))
        return BIC_E_ARG;
    if (min != BIC_MIN_1PCT && min != BIC_MIN_20PCT)
        return BIC_E_ARG;
    *ret_limits = v->limits[mode];
    if (min == BIC_MIN_20PCT) {
        ret_limits->iout.min_raw = v->iout_min20_raw;
        ret_limits->rev_iout.min_raw = v->iout_min20_raw;
    }
    return BIC_OK;
}

bic_err_t bic_default_raw(const bic_variant_t *v, bic_mode_t mode, uint16_t code, int32_t *ret_raw)
{
    if (!v || !ret_raw || (mode != BIC_MODE_AUTO && mode != BIC_MODE_BATTERY))
        return BIC_E_ARG;
    const bic_limits_t *l = &v->limits[mode];
    switch (code) {
    case BIC_CMD_OPERATION:
        *ret_raw = 1;
        return BIC_OK;
    case BIC_CMD_DIRECTION_CTRL:
        *ret_raw = 0;
        return BIC_OK;
    case BIC_CMD_SYSTEM_CONFIG:
        *ret_raw = 0x0002;
        return BIC_OK;
    case BIC_CMD_BIDIRECTIONAL_CONFIG:
        *ret_raw = 0;
        return BIC_OK;
    case BIC_CMD_VOUT_SET:
        *ret_raw = l->vout.def_raw;
        return BIC_OK;
    case BIC_CMD_IOUT_SET:
        *ret_raw = l->iout.def_raw;
        return BIC_OK;
    case BIC_CMD_REVERSE_VOUT_SET:
        *ret_raw = l->rev_vout.def_raw;
        return BIC_OK;
    case BIC_CMD_REVERSE_IOUT_SET:
        *ret_raw = l->rev_iout.def_raw;
        return BIC_OK;
    default:
        return BIC_E_UNKNOWN_CMD;
    }
}

/* ------------------------------------------------------------------------------------- */
/* Identity                                                                               */

static bool s_all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

bic_err_t bic_model_parse(const uint8_t b0b5[6], const uint8_t b6b11[6], bic_model_t *ret_model,
                          char *err, size_t errlen)
{
    if (!b0b5 || !b6b11 || !ret_model)
        return BIC_E_ARG;
    char text[13];
    memcpy(text, b0b5, 6);
    memcpy(text + 6, b6b11, 6);
    text[12] = '\0';
    /* Trim the space/NUL padding; the text must then be plain printable ASCII. */
    size_t n = 12;
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\0'))
        n--;
    text[n] = '\0';
    bool printable = n > 0;
    for (size_t i = 0; i < n; i++)
        if (text[i] < 0x21 || text[i] > 0x7E)
            printable = false;

    memset(ret_model, 0, sizeof *ret_model);
    if (printable) {
        snprintf(ret_model->model, sizeof ret_model->model, "%s", text);
        if (strncmp(text, "BIC-2200-", 9) == 0 && s_all_digits(text + 9)) {
            int variant = atoi(text + 9);
            const bic_variant_t *v = bic_variant_get(&s_bic_family, variant);
            if (v) {
                ret_model->family = BIC_FAMILY_BIC;
                ret_model->variant = variant;
                ret_model->fam = &s_bic_family;
                ret_model->var = v;
                return BIC_OK;
            }
        }
        if (strncmp(text, "NPB-", 4) == 0) {
            const char *dash = strchr(text + 4, '-');
            if (dash) {
                char power[8] = "";
                size_t plen = (size_t)(dash - (text + 4));
                if (plen > 0 && plen < sizeof power) {
                    memcpy(power, text + 4, plen);
                    power[plen] = '\0';
                }
                if (s_all_digits(power) && s_all_digits(dash + 1)) {
                    ret_model->family = BIC_FAMILY_NPB;
                    ret_model->variant = atoi(dash + 1);
                    ret_model->fam = bic_family_get(BIC_FAMILY_NPB);
                    return BIC_OK;
                }
            }
        }
    }
    /* Say what arrived (hex, as it may not be text) and what is recognised. */
    if (err && errlen) {
        char hex[2 * 12 + 1];
        for (int i = 0; i < 12; i++)
            snprintf(hex + 2 * i, 3, "%02X", i < 6 ? b0b5[i] : b6b11[i - 6]);
        snprintf(err, errlen,
                 "unrecognised MFR_MODEL %s (bytes %s): expected BIC-2200-12/24/48/96 or "
                 "NPB-<power>-<volts>",
                 printable ? text : "(not text)", hex);
    }
    memset(ret_model, 0, sizeof *ret_model);
    return BIC_E_PARSE;
}

bic_err_t bic_model_encode(const bic_family_t *f, int variant, uint8_t b0b5[6], uint8_t b6b11[6])
{
    if (!f || !b0b5 || !b6b11 || !bic_variant_get(f, variant) || !f->model_prefix)
        return BIC_E_ARG;
    char text[32];
    snprintf(text, sizeof text, "%s%d", f->model_prefix, variant);
    size_t n = strlen(text);
    if (n > 12)
        return BIC_E_ARG;
    memset(text + n, ' ', 12 - n);
    memcpy(b0b5, text, 6);
    memcpy(b6b11, text + 6, 6);
    return BIC_OK;
}

bic_err_t bic_revision_decode(const uint8_t *data, size_t len, bic_revision_t *ret_rev)
{
    if (!data || !ret_rev || len == 0 || len > BIC_REVISION_MCUS)
        return BIC_E_ARG;
    memset(ret_rev, 0, sizeof *ret_rev);
    for (size_t i = 0; i < len; i++) {
        snprintf(ret_rev->raw + 2 * i, 3, "%02X", data[i]);
        if (data[i] == 0xFF)
            continue;
        snprintf(ret_rev->mcu[ret_rev->nmcu], sizeof ret_rev->mcu[0], "R%02u.%u",
                 (unsigned)(data[i] / 10), (unsigned)(data[i] % 10));
        ret_rev->nmcu++;
    }
    return BIC_OK;
}

/* ------------------------------------------------------------------------------------- */
/* Bit decoders (§8)                                                                      */

#define BIT(raw, n) ((((raw) >> (n)) & 1u) != 0)

void bic_fault_decode(uint16_t raw, bic_fault_t *ret_fault)
{
    if (!ret_fault)
        return;
    ret_fault->fan_fail = BIT(raw, 0);
    ret_fault->otp = BIT(raw, 1);
    ret_fault->ovp = BIT(raw, 2);
    ret_fault->olp = BIT(raw, 3);
    ret_fault->short_circuit = BIT(raw, 4);
    ret_fault->ac_fail = BIT(raw, 5);
    ret_fault->op_off = BIT(raw, 6);
    ret_fault->hi_temp = BIT(raw, 7);
    ret_fault->hv_ovp = BIT(raw, 8);
    ret_fault->reserved = raw & 0xFE00u;
}

void bic_sysstatus_decode(const bic_family_t *f, uint16_t raw, bic_sysstatus_t *ret_status)
{
    if (!ret_status)
        return;
    bool ready_is_one = f ? f->initial_state_is_ready : true;
    ret_status->master = BIT(raw, 0);
    ret_status->dc_ok = BIT(raw, 1);
    ret_status->pfc_ok = BIT(raw, 2);
    ret_status->adl_on = BIT(raw, 4);
    ret_status->initial_state = BIT(raw, 5);
    ret_status->ready = ret_status->initial_state == ready_is_one;
    ret_status->eeper = BIT(raw, 6);
    ret_status->reserved = raw & 0xFF88u;
}

void bic_sysconfig_decode(uint16_t raw, bic_sysconfig_t *ret_cfg)
{
    if (!ret_cfg)
        return;
    ret_cfg->can_ctrl = BIT(raw, 0);
    ret_cfg->operation_init = (bic_opinit_t)((raw >> 1) & 3u);
    ret_cfg->eep_config = (bic_eepcfg_t)((raw >> 8) & 3u);
    ret_cfg->eep_off = BIT(raw, 10);
    ret_cfg->reserved = raw & 0xF8F8u;
}

uint16_t bic_sysconfig_encode(const bic_sysconfig_t *cfg)
{
    if (!cfg)
        return 0;
    uint16_t raw = cfg->reserved & 0xF8F8u;
    raw |= cfg->can_ctrl ? 1u : 0u;
    raw |= (uint16_t)(((unsigned)cfg->operation_init & 3u) << 1);
    raw |= (uint16_t)(((unsigned)cfg->eep_config & 3u) << 8);
    raw |= cfg->eep_off ? 0x0400u : 0u;
    return raw;
}

const char *bic_opinit_name(bic_opinit_t v)
{
    static const char *names[] = {"off", "on", "previous", "reserved"};
    return names[(unsigned)v & 3u];
}

const char *bic_eepcfg_name(bic_eepcfg_t v)
{
    static const char *names[] = {"immediate", "1min", "10min", "reserved"};
    return names[(unsigned)v & 3u];
}

void bic_bidir_decode(uint16_t raw, bic_bidir_t *ret_cfg)
{
    if (!ret_cfg)
        return;
    ret_cfg->mode = BIT(raw, 0) ? BIC_MODE_BATTERY : BIC_MODE_AUTO;
    ret_cfg->reserved = raw & 0xFFFEu;
}

const char *bic_mode_name(bic_mode_t m)
{
    return m == BIC_MODE_BATTERY ? "battery" : "auto";
}

/* Fixed exponents of §7, indexed by bic_scale_t. */
static const int8_t s_fixed_exp[BIC_SCALE_COUNT] = {
    [BIC_SCALE_NONE] = 0, [BIC_SCALE_VOUT] = -2, [BIC_SCALE_IOUT] = -2,
    [BIC_SCALE_VIN] = -1, [BIC_SCALE_TEMP] = -1, [BIC_SCALE_FAN] = 0,
};

void bic_scaling_fixed(bic_scaling_t *ret_scaling)
{
    if (!ret_scaling)
        return;
    memcpy(ret_scaling->exp10, s_fixed_exp, sizeof s_fixed_exp);
    memset(ret_scaling->reported, 0, sizeof ret_scaling->reported);
}

bic_err_t bic_scaling_decode(const uint8_t *data, size_t len, bic_scaling_t *ret_scaling)
{
    if (!data || !ret_scaling)
        return BIC_E_ARG;
    if (len < 2 || len > 6)
        return BIC_E_DLC;
    bic_scaling_t s;
    bic_scaling_fixed(&s);
    /* (class, byte, shift) per §8.5 */
    static const struct {
        bic_scale_t cls;
        uint8_t byte, shift;
    } map[] = {
        {BIC_SCALE_VOUT, 0, 0}, {BIC_SCALE_IOUT, 0, 4}, {BIC_SCALE_VIN, 1, 0},
        {BIC_SCALE_FAN, 1, 4},  {BIC_SCALE_TEMP, 2, 0},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].byte >= len)
            continue; /* not sent: fixed factor */
        unsigned nib = (data[map[i].byte] >> map[i].shift) & 0xFu;
        if (nib >= 4 && nib <= 9) {
            s.exp10[map[i].cls] = (int8_t)((int)nib - 7);
            s.reported[map[i].cls] = true;
        }
    }
    *ret_scaling = s;
    return BIC_OK;
}

void bic_scaling_encode_fixed(uint8_t out[6])
{
    static const uint8_t bytes[6] = {0x55, 0x76, 0x06, 0x00, 0x00, 0x00};
    if (out)
        memcpy(out, bytes, 6);
}

static int s_exp(const bic_scaling_t *s, bic_scale_t cls)
{
    if ((unsigned)cls >= BIC_SCALE_COUNT)
        return 0;
    return s ? s->exp10[cls] : s_fixed_exp[cls];
}

double bic_scaling_factor(const bic_scaling_t *s, bic_scale_t cls)
{
    return pow(10.0, s_exp(s, cls));
}

int bic_fields(const bic_family_t *f, uint16_t code, uint16_t raw, bic_field_t *out, size_t max)
{
    bic_field_t tmp[12];
    size_t n = 0;
#define FLAG(nm, v)                                                                                \
    tmp[n++] = (bic_field_t)                                                                       \
    {                                                                                              \
        (nm), (v) ? 1 : 0, true, NULL                                                              \
    }
    switch (code) {
    case BIC_CMD_FAULT_STATUS: {
        bic_fault_t x;
        bic_fault_decode(raw, &x);
        FLAG("fan_fail", x.fan_fail);
        FLAG("otp", x.otp);
        FLAG("ovp", x.ovp);
        FLAG("olp", x.olp);
        FLAG("short", x.short_circuit);
        FLAG("ac_fail", x.ac_fail);
        FLAG("op_off", x.op_off);
        FLAG("hi_temp", x.hi_temp);
        FLAG("hv_ovp", x.hv_ovp);
        break;
    }
    case BIC_CMD_SYSTEM_STATUS: {
        bic_sysstatus_t x;
        bic_sysstatus_decode(f, raw, &x);
        FLAG("master", x.master);
        FLAG("dc_ok", x.dc_ok);
        FLAG("pfc_ok", x.pfc_ok);
        FLAG("adl_on", x.adl_on);
        FLAG("initial_state", x.initial_state);
        FLAG("ready", x.ready);
        FLAG("eeper", x.eeper);
        break;
    }
    case BIC_CMD_SYSTEM_CONFIG: {
        bic_sysconfig_t x;
        bic_sysconfig_decode(raw, &x);
        FLAG("can_ctrl", x.can_ctrl);
        tmp[n++] = (bic_field_t){"operation_init", (int)x.operation_init, false,
                                 bic_opinit_name(x.operation_init)};
        tmp[n++] =
            (bic_field_t){"eep_config", (int)x.eep_config, false, bic_eepcfg_name(x.eep_config)};
        FLAG("eep_off", x.eep_off);
        break;
    }
    case BIC_CMD_BIDIRECTIONAL_CONFIG: {
        bic_bidir_t x;
        bic_bidir_decode(raw, &x);
        tmp[n++] = (bic_field_t){"mode", (int)x.mode, false, bic_mode_name(x.mode)};
        break;
    }
    case NPB_CMD_CURVE_CONFIG: { /* NPB (§15.2) */
        npb_curve_config_t x;
        npb_curve_config_decode(raw, &x);
        tmp[n++] = (bic_field_t){"cuvs", x.curve, false, npb_curve_name(x.curve)};
        tmp[n++] = (bic_field_t){"tcs", (int)x.tcs, false, npb_tcs_name(x.tcs)};
        FLAG("stgs", x.two_stage);
        FLAG("cuve", x.charger);
        FLAG("cctoe", x.cc_timeout_en);
        FLAG("cvtoe", x.cv_timeout_en);
        FLAG("fvtoe", x.fv_timeout_en);
        FLAG("rste", x.restart_en);
        break;
    }
    case NPB_CMD_CHG_STATUS: { /* NPB (§15.2) */
        npb_chg_status_t x;
        npb_chg_status_decode(raw, &x);
        FLAG("fullm", x.full);
        FLAG("ccm", x.cc);
        FLAG("cvm", x.cv);
        FLAG("fvm", x.fv);
        FLAG("wakeup_stop", x.wakeup_stop);
        FLAG("ntcer", x.ntc_short);
        FLAG("btnc", x.no_battery);
        FLAG("cctof", x.cc_timeout);
        FLAG("cvtof", x.cv_timeout);
        FLAG("fvtof", x.fv_timeout);
        break;
    }
    default:
        return -1;
    }
#undef FLAG
    /* Only the family's own bitfields: a family without the command has no fields. */
    if (f && !bic_cmd_by_code(f, code))
        return -1;
    if (n > max)
        n = max;
    if (out)
        memcpy(out, tmp, n * sizeof tmp[0]);
    return (int)n;
}

/* ------------------------------------------------------------------------------------- */
/* Values                                                                                 */

static bool s_numeric(const bic_cmd_t *c)
{
    return c->type == BIC_TYPE_U8 || c->type == BIC_TYPE_U16 || c->type == BIC_TYPE_S16 ||
           c->type == BIC_TYPE_BITS;
}

static void s_raw_bounds(const bic_cmd_t *c, int64_t *lo, int64_t *hi)
{
    if (c->type == BIC_TYPE_S16) {
        *lo = -32768;
        *hi = 32767;
    } else if (c->len == 1) {
        *lo = 0;
        *hi = 255;
    } else {
        *lo = 0;
        *hi = 65535;
    }
}

bic_err_t bic_data_to_raw(const bic_cmd_t *c, const uint8_t *data, size_t len, int32_t *ret_raw)
{
    if (!c || !data || !ret_raw || !s_numeric(c))
        return BIC_E_ARG;
    if (len < c->len)
        return BIC_E_DLC;
    if (c->len == 1) {
        *ret_raw = data[0];
        return BIC_OK;
    }
    uint16_t w = (uint16_t)(data[0] | (data[1] << 8));
    *ret_raw = c->type == BIC_TYPE_S16 ? (int32_t)(int16_t)w : (int32_t)w;
    return BIC_OK;
}

bic_err_t bic_raw_to_data(const bic_cmd_t *c, int32_t raw, uint8_t out[BIC_DATA_MAX])
{
    if (!c || !out || !s_numeric(c))
        return BIC_E_ARG;
    int64_t lo, hi;
    s_raw_bounds(c, &lo, &hi);
    if (raw < lo || raw > hi)
        return BIC_E_RANGE;
    uint16_t w = (uint16_t)raw; /* two's complement for s16 */
    out[0] = (uint8_t)(w & 0xFF);
    if (c->len >= 2)
        out[1] = (uint8_t)(w >> 8);
    return BIC_OK;
}

double bic_raw_to_value(const bic_cmd_t *c, const bic_scaling_t *s, int32_t raw)
{
    if (!c || c->scale == BIC_SCALE_NONE)
        return (double)raw;
    int e = s_exp(s, c->scale);
    /* Divide by the exact power of ten rather than multiply by an inexact 0.01, so 2641
       becomes the double nearest 26.41. */
    if (e < 0)
        return (double)raw / pow(10.0, -e);
    return (double)raw * pow(10.0, e);
}

static bic_err_t s_check_range(const bic_cmd_t *c, int64_t raw, int32_t *ret_raw)
{
    int64_t lo, hi;
    s_raw_bounds(c, &lo, &hi);
    if (raw < lo || raw > hi)
        return BIC_E_RANGE;
    *ret_raw = (int32_t)raw;
    return BIC_OK;
}

bic_err_t bic_value_to_raw(const bic_cmd_t *c, const bic_scaling_t *s, double value,
                           int32_t *ret_raw)
{
    if (!c || !ret_raw || !s_numeric(c))
        return BIC_E_ARG;
    if (!isfinite(value))
        return BIC_E_RANGE;
    int e = c->scale == BIC_SCALE_NONE ? 0 : s_exp(s, c->scale);
    double steps = e < 0 ? value * pow(10.0, -e) : value / pow(10.0, e);
    double mag = fabs(steps);
    if (mag > 1e9)
        return BIC_E_RANGE;
    /* Round half away from zero; 1e-7 of a step absorbs binary representation error
       (20.005 * 100 = 2000.4999999999998). */
    int64_t r = (int64_t)floor(mag + 0.5 + 1e-7);
    if (steps < 0)
        r = -r;
    return s_check_range(c, r, ret_raw);
}

bic_err_t bic_text_to_raw(const bic_cmd_t *c, const bic_scaling_t *s, const char *text,
                          int32_t *ret_raw)
{
    if (!c || !text || !ret_raw || !s_numeric(c))
        return BIC_E_ARG;
    const char *p = text;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    uint64_t mant = 0;
    int ndig = 0, frac = 0;
    bool dot = false;
    for (; *p; p++) {
        if (*p == '.' && !dot) {
            dot = true;
            continue;
        }
        if (!isdigit((unsigned char)*p))
            return BIC_E_PARSE;
        if (++ndig > 18)
            return BIC_E_RANGE;
        mant = mant * 10 + (uint64_t)(*p - '0');
        if (dot)
            frac++;
    }
    if (ndig == 0)
        return BIC_E_PARSE;
    int e = c->scale == BIC_SCALE_NONE ? 0 : s_exp(s, c->scale);
    /* value = mant * 10^-frac; raw = value / 10^e = mant * 10^(-frac - e) */
    int k = -frac - e;
    uint64_t r = mant;
    if (k >= 0) {
        for (int i = 0; i < k; i++) {
            if (r > UINT64_MAX / 10 / 2)
                return BIC_E_RANGE;
            r *= 10;
        }
    } else {
        uint64_t d = 1;
        for (int i = 0; i < -k; i++)
            d *= 10;
        uint64_t q = r / d, rem = r % d;
        if (2 * rem >= d) /* half away from zero (on the magnitude) */
            q++;
        r = q;
    }
    if (r > (uint64_t)INT32_MAX)
        return BIC_E_RANGE;
    int64_t v = neg ? -(int64_t)r : (int64_t)r;
    return s_check_range(c, v, ret_raw);
}

/* ------------------------------------------------------------------------------------- */
/* Frames                                                                                 */

static bic_err_t s_check_addr(const bic_family_t *f, uint8_t addr, bool allow_broadcast)
{
    if (addr == BIC_ADDR_BROADCAST)
        return allow_broadcast ? BIC_OK : BIC_E_ADDR;
    return addr <= f->addr_max ? BIC_OK : BIC_E_ADDR;
}

static uint32_t s_host_id(const bic_family_t *f, uint8_t addr)
{
    return addr == BIC_ADDR_BROADCAST ? f->broadcast_id : (f->host_base | addr);
}

bic_err_t bic_encode_read(const bic_family_t *f, uint8_t addr, uint16_t code,
                          can_frame_t *ret_frame)
{
    if (!f || !ret_frame)
        return BIC_E_ARG;
    bic_err_t rc = s_check_addr(f, addr, false);
    if (rc)
        return rc;
    if (!bic_cmd_by_code(f, code))
        return BIC_E_UNKNOWN_CMD;
    memset(ret_frame, 0, sizeof *ret_frame);
    ret_frame->id = s_host_id(f, addr);
    ret_frame->ext = true;
    ret_frame->dlc = 2;
    ret_frame->data[0] = (uint8_t)(code & 0xFF);
    ret_frame->data[1] = (uint8_t)(code >> 8);
    return BIC_OK;
}

bic_err_t bic_encode_write(const bic_family_t *f, uint8_t addr, uint16_t code, int32_t raw,
                           can_frame_t *ret_frame)
{
    if (!f || !ret_frame)
        return BIC_E_ARG;
    bic_err_t rc = s_check_addr(f, addr, true);
    if (rc)
        return rc;
    const bic_cmd_t *c = bic_cmd_by_code(f, code);
    if (!c)
        return BIC_E_UNKNOWN_CMD;
    if (!c->writable)
        return BIC_E_READ_ONLY;
    uint8_t data[BIC_DATA_MAX];
    rc = bic_raw_to_data(c, raw, data);
    if (rc)
        return rc;
    memset(ret_frame, 0, sizeof *ret_frame);
    ret_frame->id = s_host_id(f, addr);
    ret_frame->ext = true;
    ret_frame->dlc = (uint8_t)(2 + c->len);
    ret_frame->data[0] = (uint8_t)(code & 0xFF);
    ret_frame->data[1] = (uint8_t)(code >> 8);
    memcpy(ret_frame->data + 2, data, c->len);
    return BIC_OK;
}

bic_err_t bic_encode_reply(const bic_family_t *f, uint8_t addr, uint16_t code, const uint8_t *data,
                           size_t len, can_frame_t *ret_frame)
{
    if (!f || !ret_frame || (!data && len))
        return BIC_E_ARG;
    if (addr > f->addr_max)
        return BIC_E_ADDR;
    const bic_cmd_t *c = bic_cmd_by_code(f, code);
    if (!c)
        return BIC_E_UNKNOWN_CMD;
    if (len < c->min_len || len > c->len)
        return BIC_E_DLC;
    memset(ret_frame, 0, sizeof *ret_frame);
    ret_frame->id = f->dev_base | addr;
    ret_frame->ext = true;
    ret_frame->dlc = (uint8_t)(2 + len);
    ret_frame->data[0] = (uint8_t)(code & 0xFF);
    ret_frame->data[1] = (uint8_t)(code >> 8);
    if (len)
        memcpy(ret_frame->data + 2, data, len);
    return BIC_OK;
}

/* Common part of both decoders: frame kind, DLC, command. */
static bic_err_t s_decode_common(const bic_family_t *f, const can_frame_t *fr, bic_msg_t *m)
{
    if (fr->dlc < 2)
        return BIC_E_SHORT;
    uint8_t dlc = fr->dlc > 8 ? 8 : fr->dlc;
    m->code = (uint16_t)(fr->data[0] | (fr->data[1] << 8));
    m->len = (uint8_t)(dlc - 2);
    memcpy(m->data, fr->data + 2, m->len);
    m->cmd = bic_cmd_by_code(f, m->code);
    return m->cmd ? BIC_OK : BIC_E_UNKNOWN_CMD;
}

bic_err_t bic_decode_reply(const bic_family_t *f, const can_frame_t *fr, bic_msg_t *ret_msg)
{
    if (!f || !fr || !ret_msg)
        return BIC_E_ARG;
    memset(ret_msg, 0, sizeof *ret_msg);
    if (!fr->ext)
        return BIC_E_NOT_EXT;
    if (fr->rtr)
        return BIC_E_RTR;
    if ((fr->id & ~0xFFu) != f->dev_base || (fr->id & 0xFFu) > f->addr_max)
        return BIC_E_WRONG_ID;
    if (fr->dlc > 8)
        return BIC_E_DLC;
    ret_msg->addr = (uint8_t)(fr->id & 0xFF);
    bic_err_t rc = s_decode_common(f, fr, ret_msg);
    if (rc)
        return rc;
    if (ret_msg->len < ret_msg->cmd->min_len || ret_msg->len > ret_msg->cmd->len)
        return BIC_E_DLC;
    return BIC_OK;
}

bic_err_t bic_decode_request(const bic_family_t *f, const can_frame_t *fr, bic_msg_t *ret_msg)
{
    if (!f || !fr || !ret_msg)
        return BIC_E_ARG;
    memset(ret_msg, 0, sizeof *ret_msg);
    if (!fr->ext)
        return BIC_E_NOT_EXT;
    if (fr->rtr)
        return BIC_E_RTR;
    if (fr->id == f->broadcast_id)
        ret_msg->addr = BIC_ADDR_BROADCAST;
    else if ((fr->id & ~0xFFu) == f->host_base && (fr->id & 0xFFu) <= f->addr_max)
        ret_msg->addr = (uint8_t)(fr->id & 0xFF);
    else
        return BIC_E_WRONG_ID;
    if (fr->dlc > 8)
        return BIC_E_DLC;
    bic_err_t rc = s_decode_common(f, fr, ret_msg);
    ret_msg->write = fr->dlc > 2;
    if (rc)
        return rc;
    if (ret_msg->write && ret_msg->len < ret_msg->cmd->len)
        return BIC_E_DLC;
    if (ret_msg->write && !ret_msg->cmd->writable)
        return BIC_E_READ_ONLY;
    return BIC_OK;
}

bool bic_reply_matches(const bic_family_t *f, const can_frame_t *request, const can_frame_t *reply)
{
    if (!f || !request || !reply)
        return false;
    if (!request->ext || request->rtr || request->dlc < 2 || request->dlc > 8)
        return false;
    if (!reply->ext || reply->rtr || reply->dlc < 2 || reply->dlc > 8)
        return false;
    if ((request->id & ~0xFFu) != f->host_base || request->id == f->broadcast_id)
        return false;
    uint32_t addr = request->id & 0xFFu;
    if (addr > f->addr_max || reply->id != (f->dev_base | addr))
        return false;
    return reply->data[0] == request->data[0] && reply->data[1] == request->data[1];
}
