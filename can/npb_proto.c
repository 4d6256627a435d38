/*  npb_proto.c - NPB models, ranges, decoders and options (see npb_proto.h, docs/npb.md).

    The model table transcribes docs/npb.md: Mean Well's NPB-450 datasheet (NPB-450-SPEC
    2021-10-25) for the 450 W models, the NPB-1200 figures of the protocol notes §15.4, and
    MacGH23/meanwell-can-lib's mwcan.ini for the currents no datasheet text at hand gives.
    Where no source gives a value (taper current range, restart voltage default) the choice
    is the conservative one documented there.
*/
#include "npb_proto.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------------------- */
/* Options                                                                                */

void npb_options_default(npb_options_t *ret_opts)
{
    if (!ret_opts)
        return;
    ret_opts->dc_ok = NPB_DCOK_ONE_IS_NORMAL;
    ret_opts->iout_min_pct = 20;
}

int npb_options_validate(const npb_options_t *opts, char *err, size_t errlen)
{
    if (!opts) {
        if (err && errlen)
            snprintf(err, errlen, "no NPB options");
        return -1;
    }
    if (opts->dc_ok != NPB_DCOK_ONE_IS_NORMAL && opts->dc_ok != NPB_DCOK_ONE_IS_LOW) {
        if (err && errlen)
            snprintf(err, errlen, "NPB DC_OK polarity %d (allowed: normal or low)",
                     (int)opts->dc_ok);
        return -1;
    }
    if (opts->iout_min_pct < 20 || opts->iout_min_pct > 100) {
        if (err && errlen)
            snprintf(err, errlen,
                     "NPB current minimum %d %% (allowed: 20 to 100 %% of the model's maximum)",
                     opts->iout_min_pct);
        return -1;
    }
    return 0;
}

int npb_dcok_parse(const char *text, npb_dcok_polarity_t *ret)
{
    if (!text || !ret)
        return -1;
    if (strcasecmp(text, "normal") == 0)
        *ret = NPB_DCOK_ONE_IS_NORMAL;
    else if (strcasecmp(text, "low") == 0)
        *ret = NPB_DCOK_ONE_IS_LOW;
    else
        return -1;
    return 0;
}

const char *npb_dcok_name(npb_dcok_polarity_t p)
{
    return p == NPB_DCOK_ONE_IS_LOW ? "low" : "normal";
}

/* ------------------------------------------------------------------------------------- */
/* Models                                                                                 */

#define SRC_450 "Mean Well NPB-450 datasheet (NPB-450-SPEC 2021-10-25)"
#define SRC_INI "MacGH23/meanwell-can-lib mwcan.ini; voltage ranges: Mean Well NPB-750 manual"
#define SRC_1200 "protocol notes 15.4 and MacGH23/meanwell-can-lib mwcan.ini"

static const npb_model_t s_models[] = {
    {450, 12, "NPB-450-12", 1050, 2100, 2500, 1440, 1380, false, SRC_450},
    {450, 24, "NPB-450-24", 2100, 4200, 1350, 2880, 2760, false, SRC_450},
    {450, 48, "NPB-450-48", 4200, 8000, 680, 5760, 5520, false, SRC_450},
    {750, 12, "NPB-750-12", 1050, 2100, 4300, 1440, 1380, false, SRC_INI},
    {750, 24, "NPB-750-24", 2100, 4200, 2250, 2880, 2760, false, SRC_INI},
    {750, 48, "NPB-750-48", 4200, 8000, 1130, 5760, 5520, false, SRC_INI},
    {1200, 12, "NPB-1200-12", 1050, 1750, 7000, 1440, 1380, true, SRC_1200},
    {1200, 24, "NPB-1200-24", 2100, 4200, 3600, 2880, 2760, true, SRC_1200},
    {1200, 48, "NPB-1200-48", 4200, 8000, 1800, 5760, 5520, true, SRC_1200},
    /* mwcan.ini gives 10.5-21 V for the NPB-1700-12; the narrower 17.5 V ceiling of the
       other high-power 12 V model is taken until a datasheet says otherwise. */
    {1700, 12, "NPB-1700-12", 1050, 1750, 8500, 1440, 1380, true, SRC_INI},
    {1700, 24, "NPB-1700-24", 2100, 4200, 5000, 2880, 2760, true, SRC_INI},
    {1700, 48, "NPB-1700-48", 4200, 8000, 2500, 5760, 5520, true, SRC_INI},
};

const npb_model_t *npb_models(size_t *ret_count)
{
    if (ret_count)
        *ret_count = sizeof s_models / sizeof s_models[0];
    return s_models;
}

const npb_model_t *npb_model_find(int power_w, int volts)
{
    for (size_t i = 0; i < sizeof s_models / sizeof s_models[0]; i++)
        if (s_models[i].power_w == power_w && s_models[i].volts == volts)
            return &s_models[i];
    return NULL;
}

/* "<digits>" of 1..5 characters to an int; -1 otherwise. */
static int s_small_number(const char *s, size_t n)
{
    if (n == 0 || n > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

const npb_model_t *npb_model_by_name(const char *name)
{
    if (!name || strncasecmp(name, "NPB-", 4) != 0)
        return NULL;
    const char *p = name + 4;
    const char *dash = strchr(p, '-');
    if (!dash)
        return NULL;
    int power = s_small_number(p, (size_t)(dash - p));
    int volts = s_small_number(dash + 1, strlen(dash + 1));
    if (power < 0 || volts < 0)
        return NULL;
    return npb_model_find(power, volts);
}

const npb_model_t *npb_model_of(const bic_model_t *m)
{
    if (!m || m->family != BIC_FAMILY_NPB)
        return NULL;
    return npb_model_by_name(m->model);
}

static void s_known_list(char *out, size_t outlen)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof s_models / sizeof s_models[0] && off < outlen; i++) {
        int n = snprintf(out + off, outlen - off, "%s%s", i ? ", " : "", s_models[i].name);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

bic_err_t npb_model_detect(const uint8_t b0b5[6], const uint8_t b6b11[6],
                           const npb_model_t **ret_model, char *err, size_t errlen)
{
    if (!b0b5 || !b6b11 || !ret_model)
        return BIC_E_ARG;
    *ret_model = NULL;
    bic_model_t m;
    bic_err_t rc = bic_model_parse(b0b5, b6b11, &m, err, errlen);
    if (rc != BIC_OK)
        return rc;
    if (m.family != BIC_FAMILY_NPB) {
        if (err && errlen)
            snprintf(err, errlen, "MFR_MODEL %s is not an NPB charger", m.model);
        return BIC_E_PARSE;
    }
    const npb_model_t *nm = npb_model_of(&m);
    if (!nm) {
        if (err && errlen) {
            char known[256];
            s_known_list(known, sizeof known);
            snprintf(err, errlen, "unknown NPB model %s (known: %s)", m.model, known);
        }
        return BIC_E_RANGE;
    }
    *ret_model = nm;
    return BIC_OK;
}

void npb_model_encode(const npb_model_t *m, uint8_t b0b5[6], uint8_t b6b11[6])
{
    char text[13];
    memset(text, ' ', 12);
    size_t n = m ? strlen(m->name) : 0;
    if (n > 12)
        n = 12;
    if (m)
        memcpy(text, m->name, n);
    memcpy(b0b5, text, 6);
    memcpy(b6b11, text + 6, 6);
}

/* ------------------------------------------------------------------------------------- */
/* Ranges                                                                                 */

/* pct % of raw, rounded up to the register step. */
static uint16_t s_pct_up(uint16_t raw, int pct)
{
    return (uint16_t)(((uint32_t)raw * (uint32_t)pct + 99u) / 100u);
}

bic_err_t npb_range(const npb_model_t *m, const npb_options_t *opts, uint16_t code,
                    bic_range_t *ret_range)
{
    if (!m || !ret_range)
        return BIC_E_ARG;
    npb_options_t def;
    if (!opts) {
        npb_options_default(&def);
        opts = &def;
    }
    int pct = opts->iout_min_pct < 20 ? 20 : opts->iout_min_pct > 100 ? 100 : opts->iout_min_pct;
    uint16_t imin = s_pct_up(m->imax_raw, pct);
    bic_range_t r = {0, 0, 0};
    switch (code) {
    case BIC_CMD_OPERATION:
        r = (bic_range_t){0, 1, 1};
        break;
    case BIC_CMD_VOUT_SET:
        r = (bic_range_t){m->vmin_raw, m->vmax_raw, m->boost_raw};
        break;
    case BIC_CMD_IOUT_SET:
    case NPB_CMD_CURVE_CC:
        r = (bic_range_t){imin, m->imax_raw, m->imax_raw};
        break;
    case NPB_CMD_CURVE_CV:
        r = (bic_range_t){m->vmin_raw, m->vmax_raw, m->boost_raw};
        break;
    case NPB_CMD_CURVE_FV:
        r = (bic_range_t){m->vmin_raw, m->vmax_raw, m->float_raw};
        break;
    case NPB_CMD_CURVE_TC:
        /* No source gives the range: 5-50 % of the maximum, default 10 %. */
        r = (bic_range_t){s_pct_up(m->imax_raw, 5), s_pct_up(m->imax_raw, 50),
                          s_pct_up(m->imax_raw, 10)};
        break;
    case NPB_CMD_CURVE_CC_TIMEOUT:
    case NPB_CMD_CURVE_CV_TIMEOUT:
    case NPB_CMD_CURVE_FV_TIMEOUT:
        r = (bic_range_t){NPB_TIMEOUT_MIN, NPB_TIMEOUT_MAX, NPB_TIMEOUT_DEFAULT};
        break;
    case NPB_CMD_CHG_RST_VBAT:
        /* Default 2.1 V per lead-acid cell (6 cells per 12 V), below every float voltage. */
        r = (bic_range_t){m->vmin_raw, m->vmax_raw, (uint16_t)(m->volts / 2 * 210)};
        break;
    case NPB_CMD_CURVE_CONFIG:
        r = (bic_range_t){0, NPB_CURVE_CONFIG_WRITABLE, NPB_CURVE_CONFIG_DEFAULT};
        break;
    case BIC_CMD_SYSTEM_CONFIG:
        r = (bic_range_t){0, NPB_SYSTEM_CONFIG_WRITABLE, NPB_SYSTEM_CONFIG_DEFAULT};
        break;
    default:
        return BIC_E_UNKNOWN_CMD;
    }
    *ret_range = r;
    return BIC_OK;
}

/* Formats a raw value of a command in its unit ("27.60 V", "7.20 A", "600 min", "0x0884"). */
static void s_fmt(const bic_cmd_t *c, int32_t raw, char *out, size_t outlen)
{
    if (c->type == BIC_TYPE_BITS)
        snprintf(out, outlen, "0x%04X", (unsigned)raw);
    else if (c->scale == BIC_SCALE_VOUT || c->scale == BIC_SCALE_IOUT)
        snprintf(out, outlen, "%s%lld.%02lld %s", raw < 0 ? "-" : "", llabs((long long)raw) / 100,
                 llabs((long long)raw) % 100, c->unit);
    else
        snprintf(out, outlen, "%d%s%s", (int)raw, c->unit ? " " : "", c->unit ? c->unit : "");
}

bic_err_t npb_check_write(const npb_model_t *m, const npb_options_t *opts, uint16_t code,
                          int32_t raw, char *err, size_t errlen)
{
    const bic_family_t *f = bic_family_get(BIC_FAMILY_NPB);
    const bic_cmd_t *c = bic_cmd_by_code(f, code);
    if (!m) {
        if (err && errlen)
            snprintf(err, errlen, "no NPB model");
        return BIC_E_ARG;
    }
    if (!c) {
        if (err && errlen)
            snprintf(err, errlen, "command 0x%04X is not an NPB command", (unsigned)code);
        return BIC_E_UNKNOWN_CMD;
    }
    if (!c->writable) {
        if (err && errlen)
            snprintf(err, errlen, "%s is read-only", c->name);
        return BIC_E_READ_ONLY;
    }
    bic_range_t r;
    bic_err_t rc = npb_range(m, opts, code, &r);
    if (rc != BIC_OK) {
        if (err && errlen)
            snprintf(err, errlen, "%s has no range on %s", c->name, m->name);
        return rc;
    }
    if (c->type == BIC_TYPE_BITS) {
        if (raw < 0 || raw > 0xFFFF || ((uint32_t)raw & ~(uint32_t)r.max_raw) != 0) {
            if (err && errlen)
                snprintf(err, errlen,
                         "%s 0x%04X sets undefined bits (allowed: the bits of mask 0x%04X)",
                         c->name, (unsigned)raw & 0xFFFFu, (unsigned)r.max_raw);
            return BIC_E_RANGE;
        }
        return BIC_OK;
    }
    if (raw < r.min_raw || raw > r.max_raw) {
        if (err && errlen) {
            char v[32], lo[32], hi[32];
            s_fmt(c, raw, v, sizeof v);
            s_fmt(c, r.min_raw, lo, sizeof lo);
            s_fmt(c, r.max_raw, hi, sizeof hi);
            snprintf(err, errlen, "%s %s is out of range for %s (allowed: %s to %s)", c->name, v,
                     m->name, lo, hi);
        }
        return BIC_E_RANGE;
    }
    return BIC_OK;
}

bic_err_t npb_check_curve(uint16_t cc_raw, uint16_t cv_raw, uint16_t fv_raw, uint16_t tc_raw,
                          uint16_t rst_raw, char *err, size_t errlen)
{
    const char *what = NULL;
    if (fv_raw > cv_raw)
        what = "the float voltage CURVE_FV must not exceed the boost voltage CURVE_CV";
    else if (tc_raw >= cc_raw)
        what = "the taper current CURVE_TC must be below the constant current CURVE_CC";
    else if (rst_raw >= fv_raw)
        what = "the restart voltage CHG_RST_VBAT must be below the float voltage CURVE_FV";
    if (!what)
        return BIC_OK;
    if (err && errlen)
        snprintf(err, errlen,
                 "inconsistent charge curve (CC %u.%02u A, CV %u.%02u V, FV %u.%02u V, TC "
                 "%u.%02u A, restart %u.%02u V): %s",
                 cc_raw / 100u, cc_raw % 100u, cv_raw / 100u, cv_raw % 100u, fv_raw / 100u,
                 fv_raw % 100u, tc_raw / 100u, tc_raw % 100u, rst_raw / 100u, rst_raw % 100u, what);
    return BIC_E_RANGE;
}

/* ------------------------------------------------------------------------------------- */
/* Decoders                                                                               */

#define NPB_BIT(raw, n) ((((raw) >> (n)) & 1u) != 0)

void npb_curve_config_decode(uint16_t raw, npb_curve_config_t *ret_cfg)
{
    if (!ret_cfg)
        return;
    ret_cfg->curve = raw & 3u;
    ret_cfg->tcs = (npb_tcs_t)((raw >> 2) & 3u);
    ret_cfg->two_stage = NPB_BIT(raw, 6);
    ret_cfg->charger = NPB_BIT(raw, 7);
    ret_cfg->cc_timeout_en = NPB_BIT(raw, 8);
    ret_cfg->cv_timeout_en = NPB_BIT(raw, 9);
    ret_cfg->fv_timeout_en = NPB_BIT(raw, 10);
    ret_cfg->restart_en = NPB_BIT(raw, 11);
    ret_cfg->reserved = raw & 0xF030u;
}

uint16_t npb_curve_config_encode(const npb_curve_config_t *cfg)
{
    if (!cfg)
        return 0;
    uint16_t raw = cfg->reserved & 0xF030u;
    raw |= (uint16_t)((unsigned)cfg->curve & 3u);
    raw |= (uint16_t)(((unsigned)cfg->tcs & 3u) << 2);
    raw |= cfg->two_stage ? 0x0040u : 0u;
    raw |= cfg->charger ? 0x0080u : 0u;
    raw |= cfg->cc_timeout_en ? 0x0100u : 0u;
    raw |= cfg->cv_timeout_en ? 0x0200u : 0u;
    raw |= cfg->fv_timeout_en ? 0x0400u : 0u;
    raw |= cfg->restart_en ? 0x0800u : 0u;
    return raw;
}

const char *npb_curve_name(int curve)
{
    static const char *names[] = {"custom", "curve1", "curve2", "curve3"};
    return names[(unsigned)curve & 3u];
}

const char *npb_tcs_name(npb_tcs_t t)
{
    static const char *names[] = {"off", "-3mV/C/cell", "-4mV/C/cell", "-5mV/C/cell"};
    return names[(unsigned)t & 3u];
}

int npb_tcs_mv(npb_tcs_t t)
{
    static const int mv[] = {0, 3, 4, 5};
    return mv[(unsigned)t & 3u];
}

void npb_chg_status_decode(uint16_t raw, npb_chg_status_t *ret_status)
{
    if (!ret_status)
        return;
    ret_status->full = NPB_BIT(raw, 0);
    ret_status->cc = NPB_BIT(raw, 1);
    ret_status->cv = NPB_BIT(raw, 2);
    ret_status->fv = NPB_BIT(raw, 3);
    ret_status->wakeup_stop = NPB_BIT(raw, 6);
    ret_status->ntc_short = NPB_BIT(raw, 10);
    ret_status->no_battery = NPB_BIT(raw, 11);
    ret_status->cc_timeout = NPB_BIT(raw, 13);
    ret_status->cv_timeout = NPB_BIT(raw, 14);
    ret_status->fv_timeout = NPB_BIT(raw, 15);
    ret_status->reserved = raw & 0x13B0u;
}

uint16_t npb_chg_status_encode(const npb_chg_status_t *st)
{
    if (!st)
        return 0;
    uint16_t raw = st->reserved & 0x13B0u;
    raw |= st->full ? 0x0001u : 0u;
    raw |= st->cc ? 0x0002u : 0u;
    raw |= st->cv ? 0x0004u : 0u;
    raw |= st->fv ? 0x0008u : 0u;
    raw |= st->wakeup_stop ? 0x0040u : 0u;
    raw |= st->ntc_short ? 0x0400u : 0u;
    raw |= st->no_battery ? 0x0800u : 0u;
    raw |= st->cc_timeout ? 0x2000u : 0u;
    raw |= st->cv_timeout ? 0x4000u : 0u;
    raw |= st->fv_timeout ? 0x8000u : 0u;
    return raw;
}

npb_stage_t npb_stage_of(uint16_t chg_status_raw)
{
    npb_chg_status_t s;
    npb_chg_status_decode(chg_status_raw, &s);
    if (s.no_battery)
        return NPB_STAGE_NO_BATTERY;
    if (s.cc_timeout || s.cv_timeout || s.fv_timeout)
        return NPB_STAGE_TIMEOUT;
    if (s.fv)
        return NPB_STAGE_FLOAT;
    if (s.cv)
        return NPB_STAGE_CV;
    if (s.cc)
        return NPB_STAGE_CC;
    if (s.full)
        return NPB_STAGE_FULL;
    return NPB_STAGE_IDLE;
}

const char *npb_stage_name(npb_stage_t s)
{
    switch (s) {
    case NPB_STAGE_IDLE:
        return "idle";
    case NPB_STAGE_CC:
        return "cc";
    case NPB_STAGE_CV:
        return "cv";
    case NPB_STAGE_FLOAT:
        return "float";
    case NPB_STAGE_FULL:
        return "full";
    case NPB_STAGE_TIMEOUT:
        return "timeout";
    case NPB_STAGE_NO_BATTERY:
        return "no_battery";
    }
    return "idle";
}

void npb_sysstatus_decode(const npb_options_t *opts, uint16_t raw, npb_sysstatus_t *ret_status)
{
    if (!ret_status)
        return;
    npb_dcok_polarity_t pol = opts ? opts->dc_ok : NPB_DCOK_ONE_IS_NORMAL;
    ret_status->dc_ok_bit = NPB_BIT(raw, 1);
    ret_status->dc_ok = pol == NPB_DCOK_ONE_IS_LOW ? !ret_status->dc_ok_bit : ret_status->dc_ok_bit;
    ret_status->initialising = NPB_BIT(raw, 5);
    ret_status->eeper = NPB_BIT(raw, 6);
    ret_status->reserved = raw & 0xFF9Du;
}

npb_dcok_check_t npb_dcok_cross_check(const npb_model_t *m, const npb_options_t *opts,
                                      uint16_t sysstatus_raw, uint16_t read_vout_raw)
{
    if (!m)
        return NPB_DCOK_UNKNOWN;
    bool measured_normal;
    if (read_vout_raw >= m->vmin_raw)
        measured_normal = true;
    else if ((uint32_t)read_vout_raw * 10u < (uint32_t)m->vmin_raw * 9u)
        measured_normal = false;
    else
        return NPB_DCOK_UNKNOWN;
    npb_sysstatus_t st;
    npb_sysstatus_decode(opts, sysstatus_raw, &st);
    return st.dc_ok == measured_normal ? NPB_DCOK_AGREES : NPB_DCOK_CONTRADICTS;
}
