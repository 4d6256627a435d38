/*
 * dev_view: one BIC as the bridge sees it, and its seed-compatible payloads.
 * See dev_view.h for the contract; docs/mqtt.md for the payload keys and their meanings.
 */
#include "dev_view.h"
#include "payload_emit.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numconv.h"

const char *const dev_view_fault_keys[DEV_VIEW_FAULTS] = {
    "fan", "otp", "otpHi", "ovp", "ovpHi", "olp", "short", "acRange", "dcOff", "eeprom", "can"};

/* The seed's texts, word for word (scripts and dashboards match on them). */
const char *const dev_view_fault_desc[DEV_VIEW_FAULTS] = {"fanspeed abnormal",
                                                          "over temperature protection",
                                                          "internal hi temperature protection",
                                                          "over voltage protection",
                                                          "over voltage protection",
                                                          "over current protection",
                                                          "short circuit protection",
                                                          "ac grid range",
                                                          "dc off",
                                                          "eeprom fault",
                                                          "can-com error / read-tmo"};

/* Telemetry `fault` field behind each seed key (NULL: not in `fault`, handled apart). */
static const char *const s_fault_fields[DEV_VIEW_FAULTS] = {
    "fan_fail", "otp", "hi_temp", "ovp", "hv_ovp", "olp", "short", "ac_fail", "op_off", NULL, NULL};
enum { FAULT_EEPROM = 9, FAULT_CAN = 10 };

#define MAX_FANS 4
#define DAY_MIN 1440 /* per-minute buckets of the seed's rolling 24-hour sums */
enum { SUM_CHARGED, SUM_DISCHARGED, SUM_SURPLUS, SUM_COUNT };
enum { LIM_VOUT, LIM_IOUT, LIM_REV_VOUT, LIM_REV_IOUT, LIM_COUNT };
static const char *const s_limit_names[LIM_COUNT] = {"vout_v", "iout_a", "rev_vout_v",
                                                     "rev_iout_a"};

struct dev_view_t {
    int dev;
    bool have_tel;
    bool have_info;
    bool gw_reachable;
    bool online;
    int operation;                       /* 0/1, -1 unknown */
    char direction[16];                  /* "charge"/"discharge", "" unknown */
    char mode[16];                       /* "battery"/..., "" unknown */
    bool npb;                            /* an NPB charger (telemetry or info "family") */
    char stage[16];                      /* NPB: the charge stage, "" unknown */
    double curve_cc, curve_cv, curve_fv; /* NPB: the charge curve, NAN unknown */
    int curve_config;                    /* NPB: CURVE_CONFIG, -1 unknown */
    double dc_v;                         /* V, NAN unknown */
    double dc_a;                         /* A, + charge */
    double dc_w;                         /* W, + charge */
    double ac_v;                         /* V */
    double temp_c;                       /* °C */
    int nfans;
    double fans[MAX_FANS]; /* RPM */
    double sp_vout;        /* V, VOUT_SET */
    double sp_iout;        /* A, IOUT_SET */
    double sp_rev_vout;    /* V, REVERSE_VOUT_SET */
    double sp_rev_iout;    /* A, REVERSE_IOUT_SET */
    int fault_active[DEV_VIEW_FAULTS];
    unsigned long fault_cnt[DEV_VIEW_FAULTS];
    int limits_active;        /* the gateway could not bring the [DEVICE] values on */
    unsigned long limits_cnt; /* rising edges of that */
    char limits_error[200];   /* the gateway's reason */
    long eeprom_writes;       /* persisted writes, -1 unknown */
    char lease_holder[40];
    /* energy */
    double charged_wh;
    double discharged_wh;
    bool have_last;
    int64_t last_ts_ms;
    int64_t now_ts_ms; /* the newest telemetry timestamp: the end of the 24 h window; -1 none */
    double last_w;
    /* the seed's rolling 24 h sums: Wh per wall-clock minute, and which minute it is */
    double day_wh[SUM_COUNT][DAY_MIN];
    int64_t day_min[DAY_MIN];
    double day_sum[SUM_COUNT]; /* of the buckets in the 24 h window (s_day_sums) */
    double surplus_w;          /* W, from the controller; NAN unknown */
    /* SOC from the controller */
    bool have_soc;  /* the controller has published a SOC at some time */
    double soc_pct; /* %, NAN when the last one went stale */
    /* own SOC from the [BAT_0] table */
    size_t cap2v_n;
    double cap2v_pct[DEV_VIEW_CAP2V];
    double cap2v_v[DEV_VIEW_CAP2V];
    double r_ohm;
    char ctrl_name[32];
    /* info */
    char model[40];
    char firmware[40];
    char firm_rev[16];
    char serial[40];
    int variant; /* nominal battery voltage of the model (12/24/48/96), 0 unknown */
    char date[16];
    char eeprom_policy[16];
    char mode_pending[16];
    int can_ctrl; /* -1 unknown */
    bool fans_cap;
    bool have_limit[LIM_COUNT];
    double limit[LIM_COUNT][2];
    char sys_cfg[12];
    char sys_cfg_bdir[12];
};

dev_view_t *dev_view_new(int dev)
{
    dev_view_t *dv = calloc(1, sizeof *dv);
    if (!dv)
        return NULL;
    dv->dev = dev;
    dv->gw_reachable = true;
    dv->operation = -1;
    dv->dc_v = dv->dc_a = dv->dc_w = dv->ac_v = dv->temp_c = NAN;
    dv->sp_vout = dv->sp_iout = dv->sp_rev_vout = dv->sp_rev_iout = NAN;
    dv->curve_cc = dv->curve_cv = dv->curve_fv = NAN;
    dv->curve_config = -1;
    for (int i = 0; i < DEV_VIEW_FAULTS; i++)
        dv->fault_active[i] = 0;
    dv->fault_active[FAULT_CAN] = -1;
    dv->eeprom_writes = -1;
    dv->can_ctrl = -1;
    dv->surplus_w = NAN;
    dv->now_ts_ms = -1;
    for (int i = 0; i < DAY_MIN; i++)
        dv->day_min[i] = -1;
    return dv;
}

void dev_view_destroy(dev_view_t **p)
{
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

int dev_view_dev(const dev_view_t *dv)
{
    return dv->dev;
}

static void s_err(char *err, size_t n, const char *msg)
{
    if (err && n)
        snprintf(err, n, "%s", msg);
}

/* Number field or NAN when missing, null or not a finite number. */
static double s_num(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return NAN;
    return it->valuedouble;
}

static void s_keep_num(double *dst, const cJSON *obj, const char *key)
{
    double v = s_num(obj, key);
    if (!isnan(v))
        *dst = v;
}

static void s_keep_str(char *dst, size_t n, const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsString(it) && it->valuestring)
        snprintf(dst, n, "%s", it->valuestring);
}

static void s_fault_set(dev_view_t *dv, int i, int active)
{
    if (active == dv->fault_active[i])
        return;
    if (active == 1)
        dv->fault_cnt[i]++;
    dv->fault_active[i] = active;
}

/* Adds WH to bucket K of the minute TS_MS falls in (a bucket of an older day starts over). */
static void s_day_add(dev_view_t *dv, int k, int64_t ts_ms, double wh)
{
    int64_t minute = ts_ms / 60000;
    int slot = (int)(((minute % DAY_MIN) + DAY_MIN) % DAY_MIN);
    if (dv->day_min[slot] != minute) {
        dv->day_min[slot] = minute;
        for (int j = 0; j < SUM_COUNT; j++)
            dv->day_wh[j][slot] = 0;
    }
    dv->day_wh[k][slot] += wh;
}

/* The sums of the buckets over the 24 hours up to the last sample, in Wh (day_sum): after
 * each telemetry message, the only thing that moves them. */
static void s_day_sums(dev_view_t *dv)
{
    for (int k = 0; k < SUM_COUNT; k++)
        dv->day_sum[k] = 0;
    if (dv->now_ts_ms < 0)
        return;
    int64_t now = dv->now_ts_ms / 60000;
    for (int i = 0; i < DAY_MIN; i++) {
        if (dv->day_min[i] > now - DAY_MIN && dv->day_min[i] <= now) {
            for (int k = 0; k < SUM_COUNT; k++)
                dv->day_sum[k] += dv->day_wh[k][i];
        }
    }
}

static double s_day_sum(const dev_view_t *dv, int k)
{
    return dv->day_sum[k];
}

static void s_integrate(dev_view_t *dv, const cJSON *tel)
{
    double ts = s_num(tel, "ts_ms");
    double w = s_num(tel, "dc_w");
    if (isnan(w) && !isnan(s_num(tel, "dc_v")) && !isnan(s_num(tel, "dc_a")))
        w = s_num(tel, "dc_v") * s_num(tel, "dc_a");
    /* a timestamp beyond +-9e15 ms (285,000 years) is no clock reading */
    int64_t ts_ms;
    bool ts_ok = numconv_trunc(ts, -9000000000000000, 9000000000000000, &ts_ms) == 0;
    if (ts_ok && ts_ms >= 0 && ts_ms > dv->now_ts_ms)
        dv->now_ts_ms = ts_ms;
    if (!dv->online || !ts_ok || !isfinite(w)) {
        dv->have_last = false;
        return;
    }
    if (dv->have_last) {
        int64_t dt = ts_ms - dv->last_ts_ms;
        if (dt <= 0)
            return; /* the same sample again (or a clock step back): nothing to add */
        if (dt <= DEV_VIEW_ENERGY_MAX_GAP_MS) {
            /* Each sample's power holds until the next one: the energy of one interval
             * goes wholly to one direction, so the two counters stay clean. */
            double wh = dv->last_w * (double)dt / 3600000.0;
            if (wh > 0) {
                dv->charged_wh += wh;
                s_day_add(dv, SUM_CHARGED, ts_ms, wh);
            } else {
                dv->discharged_wh -= wh;
                s_day_add(dv, SUM_DISCHARGED, ts_ms, wh);
            }
            if (isfinite(dv->surplus_w) && dv->surplus_w > 0)
                s_day_add(dv, SUM_SURPLUS, ts_ms, dv->surplus_w * (double)dt / 3600000.0);
        }
    }
    dv->have_last = true;
    dv->last_ts_ms = ts_ms;
    dv->last_w = w;
}

/* An NPB's telemetry keys (docs/ipc-protocol.md): family, stage and the curve. */
static void s_npb_telemetry(dev_view_t *dv, const cJSON *tel)
{
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(tel, "family");
    if (cJSON_IsString(fam))
        dv->npb = strcmp(fam->valuestring, "NPB") == 0;
    if (!dv->npb)
        return;
    s_keep_str(dv->stage, sizeof dv->stage, tel, "stage");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(tel, "curve");
    if (cJSON_IsObject(c)) {
        s_keep_num(&dv->curve_cc, c, "cc_a");
        s_keep_num(&dv->curve_cv, c, "cv_v");
        s_keep_num(&dv->curve_fv, c, "fv_v");
        s_keep_str(dv->mode, sizeof dv->mode, c, "mode");
        int64_t raw;
        if (numconv_whole(s_num(c, "config_raw"), 0, 0xFFFF, &raw) == 0)
            dv->curve_config = (int)raw;
    }
}

int dev_view_on_telemetry(dev_view_t *dv, const cJSON *tel, char *err, size_t errlen)
{
    if (!cJSON_IsObject(tel)) {
        s_err(err, errlen, "telemetry is not a JSON object");
        return -1;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tel, "v");
    if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
        s_err(err, errlen, "telemetry 'v' is not 1");
        return -1;
    }
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(tel, "dev");
    if (!cJSON_IsNumber(dev) || dev->valuedouble != dv->dev) {
        s_err(err, errlen, "telemetry 'dev' does not name this device");
        return -1;
    }
    const cJSON *online = cJSON_GetObjectItemCaseSensitive(tel, "online");
    if (!cJSON_IsBool(online)) {
        s_err(err, errlen, "telemetry 'online' is not a boolean");
        return -1;
    }
    dv->have_tel = true;
    dv->online = cJSON_IsTrue(online);

    s_keep_num(&dv->dc_v, tel, "dc_v");
    s_keep_num(&dv->dc_a, tel, "dc_a");
    double w = s_num(tel, "dc_w");
    if (!isnan(w))
        dv->dc_w = w;
    else if (!isnan(dv->dc_v) && !isnan(dv->dc_a))
        dv->dc_w = dv->dc_v * dv->dc_a;
    s_keep_num(&dv->ac_v, tel, "ac_v");
    s_keep_num(&dv->temp_c, tel, "temp_c");

    const cJSON *fans = cJSON_GetObjectItemCaseSensitive(tel, "fans");
    if (cJSON_IsArray(fans)) {
        /* Index by index: a fan the gateway has not read yet (a shorter list, or null) keeps
         * its last value, so fan[1] does not come and go between samples. */
        int n = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, fans)
        {
            if (n >= MAX_FANS)
                break;
            if (cJSON_IsNumber(f) && isfinite(f->valuedouble)) {
                while (dv->nfans < n)
                    dv->fans[dv->nfans++] = NAN;
                dv->fans[n] = f->valuedouble;
                if (dv->nfans <= n)
                    dv->nfans = n + 1;
            }
            n++;
        }
    }

    int64_t op;
    if (numconv_whole(s_num(tel, "operation"), 0, 1, &op) == 0)
        dv->operation = (int)op;
    s_keep_str(dv->direction, sizeof dv->direction, tel, "direction");
    s_keep_str(dv->mode, sizeof dv->mode, tel, "mode");
    s_npb_telemetry(dv, tel);

    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(tel, "setpoints");
    if (cJSON_IsObject(sp)) {
        s_keep_num(&dv->sp_vout, sp, "vout_v");
        s_keep_num(&dv->sp_iout, sp, "iout_a");
        s_keep_num(&dv->sp_rev_vout, sp, "rev_vout_v");
        s_keep_num(&dv->sp_rev_iout, sp, "rev_iout_a");
    }

    const cJSON *fault = cJSON_GetObjectItemCaseSensitive(tel, "fault");
    if (cJSON_IsObject(fault)) {
        for (int i = 0; i < DEV_VIEW_FAULTS; i++) {
            if (!s_fault_fields[i])
                continue;
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(fault, s_fault_fields[i]);
            if (cJSON_IsBool(b))
                s_fault_set(dv, i, cJSON_IsTrue(b) ? 1 : 0);
        }
    }
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(tel, "status");
    if (cJSON_IsObject(status)) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(status, "eeper");
        if (cJSON_IsBool(b))
            s_fault_set(dv, FAULT_EEPROM, cJSON_IsTrue(b) ? 1 : 0);
    }
    s_fault_set(dv, FAULT_CAN, dv->online && dv->gw_reachable ? 0 : 1);

    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(tel, "device_limits");
    const cJSON *lst = cJSON_GetObjectItemCaseSensitive(lim, "state");
    if (cJSON_IsString(lst)) {
        int active = strcmp(lst->valuestring, "failed") == 0;
        if (active && !dv->limits_active)
            dv->limits_cnt++;
        dv->limits_active = active;
        dv->limits_error[0] = '\0';
        if (active)
            s_keep_str(dv->limits_error, sizeof dv->limits_error, lim, "error");
    }

    const cJSON *eep = cJSON_GetObjectItemCaseSensitive(tel, "eeprom");
    if (cJSON_IsObject(eep)) {
        int64_t wt;
        if (numconv_trunc(s_num(eep, "writes_total"), 0, LONG_MAX, &wt) == 0)
            dv->eeprom_writes = (long)wt;
    }
    const cJSON *lease = cJSON_GetObjectItemCaseSensitive(tel, "lease");
    if (cJSON_IsNull(lease))
        dv->lease_holder[0] = '\0';
    else if (cJSON_IsObject(lease))
        s_keep_str(dv->lease_holder, sizeof dv->lease_holder, lease, "holder");

    s_integrate(dv, tel);
    s_day_sums(dv);
    return 0;
}

/* "0E0DFFFFFFFF" -> "0xd0e", as the seed prints MFR_REVISION (first two bytes, LE). */
static void s_firm_rev(char *dst, size_t n, const char *raw)
{
    unsigned b0, b1;
    if (!raw || strlen(raw) < 4 || sscanf(raw, "%2x%2x", &b0, &b1) != 2) {
        dst[0] = '\0';
        return;
    }
    snprintf(dst, n, "0x%x", (b1 << 8) | b0);
}

int dev_view_on_info(dev_view_t *dv, const cJSON *info, char *err, size_t errlen)
{
    if (!cJSON_IsObject(info)) {
        s_err(err, errlen, "device info is not a JSON object");
        return -1;
    }
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(info, "dev");
    if (!cJSON_IsNumber(dev) || dev->valuedouble != dv->dev) {
        s_err(err, errlen, "device info 'dev' does not name this device");
        return -1;
    }
    dv->have_info = true;
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(info, "family");
    if (cJSON_IsString(fam))
        dv->npb = strcmp(fam->valuestring, "NPB") == 0;
    s_keep_str(dv->model, sizeof dv->model, info, "model");
    s_keep_str(dv->serial, sizeof dv->serial, info, "serial");
    int64_t variant;
    if (numconv_whole(s_num(info, "variant"), 1, 1000, &variant) == 0)
        dv->variant = (int)variant;
    s_keep_str(dv->date, sizeof dv->date, info, "date");
    s_keep_str(dv->mode, sizeof dv->mode, info, "mode");
    dv->mode_pending[0] = '\0';
    s_keep_str(dv->mode_pending, sizeof dv->mode_pending, info, "mode_pending");
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(info, "can_ctrl");
    if (cJSON_IsBool(cc))
        dv->can_ctrl = cJSON_IsTrue(cc);
    const cJSON *fw = cJSON_GetObjectItemCaseSensitive(info, "firmware");
    if (cJSON_IsObject(fw)) {
        const cJSON *raw = cJSON_GetObjectItemCaseSensitive(fw, "raw");
        if (cJSON_IsString(raw))
            s_firm_rev(dv->firm_rev, sizeof dv->firm_rev, raw->valuestring);
        const cJSON *mcu = cJSON_GetObjectItemCaseSensitive(fw, "mcu");
        if (cJSON_IsArray(mcu)) {
            size_t len = 0;
            const cJSON *m;
            dv->firmware[0] = '\0';
            cJSON_ArrayForEach(m, mcu)
            {
                if (!cJSON_IsString(m) || len >= sizeof dv->firmware)
                    continue;
                len += (size_t)snprintf(dv->firmware + len, sizeof dv->firmware - len, "%s%s",
                                        len ? "/" : "", m->valuestring);
            }
        }
    }
    const cJSON *caps = cJSON_GetObjectItemCaseSensitive(info, "caps");
    if (cJSON_IsObject(caps))
        dv->fans_cap = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(caps, "fans"));
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(info, "limits");
    if (cJSON_IsObject(lim)) {
        for (int i = 0; i < LIM_COUNT; i++) {
            const cJSON *pair = cJSON_GetObjectItemCaseSensitive(lim, s_limit_names[i]);
            const cJSON *lo = cJSON_GetArrayItem(pair, 0);
            const cJSON *hi = cJSON_GetArrayItem(pair, 1);
            if (cJSON_IsArray(pair) && cJSON_IsNumber(lo) && cJSON_IsNumber(hi) &&
                isfinite(lo->valuedouble) && isfinite(hi->valuedouble) &&
                lo->valuedouble <= hi->valuedouble) {
                dv->have_limit[i] = true;
                dv->limit[i][0] = lo->valuedouble;
                dv->limit[i][1] = hi->valuedouble;
            }
        }
    }
    const cJSON *eep = cJSON_GetObjectItemCaseSensitive(info, "eeprom");
    if (cJSON_IsObject(eep)) {
        s_keep_str(dv->eeprom_policy, sizeof dv->eeprom_policy, eep, "policy");
        int64_t wt;
        if (numconv_trunc(s_num(eep, "writes_total"), 0, LONG_MAX, &wt) == 0)
            dv->eeprom_writes = (long)wt;
    }
    const cJSON *online = cJSON_GetObjectItemCaseSensitive(info, "online");
    if (cJSON_IsBool(online) && !dv->have_tel)
        dv->online = cJSON_IsTrue(online);
    const cJSON *lease = cJSON_GetObjectItemCaseSensitive(info, "lease");
    if (cJSON_IsNull(lease))
        dv->lease_holder[0] = '\0';
    else if (cJSON_IsObject(lease))
        s_keep_str(dv->lease_holder, sizeof dv->lease_holder, lease, "holder");
    return 0;
}

static void s_reg_hex(char *dst, size_t n, const cJSON *values, const char *reg)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(values, reg);
    int64_t raw;
    if (numconv_trunc(s_num(r, "raw"), 0, 0xFFFF, &raw) == 0)
        snprintf(dst, n, "0x%x", (unsigned)raw);
}

int dev_view_on_regs(dev_view_t *dv, const cJSON *values)
{
    if (!cJSON_IsObject(values))
        return -1;
    s_reg_hex(dv->sys_cfg, sizeof dv->sys_cfg, values, "SYSTEM_CONFIG");
    s_reg_hex(dv->sys_cfg_bdir, sizeof dv->sys_cfg_bdir, values, "BIDIRECTIONAL_CONFIG");
    return 0;
}

void dev_view_set_gateway_reachable(dev_view_t *dv, bool reachable)
{
    dv->gw_reachable = reachable;
    if (!reachable) {
        dv->have_last = false; /* do not integrate across the outage */
        if (dv->have_tel)
            s_fault_set(dv, FAULT_CAN, 1);
    }
}

void dev_view_set_battery(dev_view_t *dv, const double *pct, const double *volts, size_t n,
                          double r_ohm)
{
    dv->cap2v_n = n < DEV_VIEW_CAP2V ? n : DEV_VIEW_CAP2V;
    for (size_t i = 0; i < dv->cap2v_n; i++) {
        dv->cap2v_pct[i] = pct[i];
        dv->cap2v_v[i] = volts[i];
    }
    dv->r_ohm = isfinite(r_ohm) && r_ohm >= 0 ? r_ohm : 0;
}

void dev_view_set_ctrl_name(dev_view_t *dv, const char *name)
{
    snprintf(dv->ctrl_name, sizeof dv->ctrl_name, "%s", name ? name : "");
}

void dev_view_set_surplus(dev_view_t *dv, double surplus_w)
{
    dv->surplus_w = surplus_w;
}

/* The table's percentage at V: linear between the entries around it, the end values beyond
 * them (the seed gave 0 % at and above its top entry). NAN without a table or a voltage. */
static double s_table_soc(const dev_view_t *dv, double v)
{
    size_t n = dv->cap2v_n;
    if (n == 0 || !isfinite(v) || v <= 0)
        return NAN;
    if (v <= dv->cap2v_v[0])
        return dv->cap2v_pct[0];
    for (size_t i = 1; i < n; i++) {
        if (v < dv->cap2v_v[i]) {
            double f = (v - dv->cap2v_v[i - 1]) / (dv->cap2v_v[i] - dv->cap2v_v[i - 1]);
            return dv->cap2v_pct[i - 1] + f * (dv->cap2v_pct[i] - dv->cap2v_pct[i - 1]);
        }
    }
    return dv->cap2v_pct[n - 1];
}

/* capBatPc: the controller's fresh SOC, else the table's at the load-corrected voltage. */
static double s_soc(const dev_view_t *dv)
{
    if (dv->have_soc && !isnan(dv->soc_pct))
        return dv->soc_pct;
    double v = dv->dc_v;
    if (isfinite(v) && isfinite(dv->dc_a))
        v -= dv->dc_a * dv->r_ohm;
    return s_table_soc(dv, v);
}

int dev_view_set_soc(dev_view_t *dv, double pct)
{
    if (!isfinite(pct) || pct < 0 || pct > 100)
        return -1;
    dv->have_soc = true;
    dv->soc_pct = pct;
    return 0;
}

void dev_view_expire_soc(dev_view_t *dv)
{
    dv->soc_pct = NAN;
}

int dev_view_set_energy(dev_view_t *dv, double charged_wh, double discharged_wh)
{
    if (!isfinite(charged_wh) || !isfinite(discharged_wh) || charged_wh < 0 || discharged_wh < 0)
        return -1;
    dv->charged_wh = charged_wh;
    dv->discharged_wh = discharged_wh;
    return 0;
}

void dev_view_energy(const dev_view_t *dv, double *charged_wh, double *discharged_wh)
{
    if (charged_wh)
        *charged_wh = dv->charged_wh;
    if (discharged_wh)
        *discharged_wh = dv->discharged_wh;
}

bool dev_view_has_telemetry(const dev_view_t *dv)
{
    return dv->have_tel;
}

bool dev_view_has_info(const dev_view_t *dv)
{
    return dv->have_info;
}

bool dev_view_has_soc(const dev_view_t *dv)
{
    return dv->have_soc || dv->cap2v_n > 0;
}

bool dev_view_online(const dev_view_t *dv)
{
    return dv->have_tel && dv->online && dv->gw_reachable;
}

int dev_view_operation(const dev_view_t *dv)
{
    return dev_view_online(dv) ? dv->operation : -1;
}

const char *dev_view_model(const dev_view_t *dv)
{
    return dv->model;
}

const char *dev_view_firmware(const dev_view_t *dv)
{
    return dv->firmware;
}

const char *dev_view_serial(const dev_view_t *dv)
{
    return dv->serial;
}

bool dev_view_has_fans(const dev_view_t *dv)
{
    return dv->fans_cap;
}

int dev_view_variant(const dev_view_t *dv)
{
    return dv->variant;
}

bool dev_view_state_complete(const dev_view_t *dv)
{
    if (!dv->have_tel || dv->operation < 0 || isnan(dv->dc_v) || isnan(dv->ac_v) ||
        isnan(dv->temp_c))
        return false;
    if (dv->fans_cap && (dv->nfans < 2 || isnan(dv->fans[0]) || isnan(dv->fans[1])))
        return false;
    return true;
}

bool dev_view_limit(const dev_view_t *dv, const char *which, double *min, double *max)
{
    for (int i = 0; i < LIM_COUNT; i++) {
        if (strcmp(which, s_limit_names[i]) != 0)
            continue;
        if (!dv->have_limit[i])
            return false;
        *min = dv->limit[i][0];
        *max = dv->limit[i][1];
        return true;
    }
    return false;
}

const char *dev_view_availability(const dev_view_t *dv)
{
    return dev_view_online(dv) ? "online" : "offline";
}

/* A payload from its builder (payload_emit): the JSON text, NULL on allocation failure. */
static char *s_json(const dev_view_t *dv, void (*build)(const dev_view_t *, pe_t *))
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    pe_t e = pe_json(o);
    build(dv, &e);
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

static const char *s_onl_mode(const dev_view_t *dv)
{
    if (!dev_view_online(dv))
        return "offline";
    if (dv->operation == 1)
        return "running";
    if (dv->operation == 0)
        return "idle";
    return "init";
}

static void s_state(const dev_view_t *dv, pe_t *e)
{
    pe_str(e, "onlMode", s_onl_mode(dv));
    if (dv->operation >= 0)
        pe_number(e, "opMode", dv->operation);
    else
        pe_null(e, "opMode");
    pe_num(e, "tempC", dv->temp_c, 0);
    /* A BIC has two fans: with the fan capability both positions are always there (null
     * until read), so templates such as value_json.fan[1] always resolve. */
    pe_t fan = pe_array(e, "fan");
    int nfans = dv->fans_cap && dv->nfans < 2 ? 2 : dv->nfans;
    for (int i = 0; i < nfans; i++) {
        if (i < dv->nfans && !isnan(dv->fans[i]))
            pe_number(&fan, NULL, round(dv->fans[i] / 100.0) * 100.0);
        else
            pe_null(&fan, NULL);
    }
    pe_end(&fan);
    pe_num(e, "acGridV", dv->ac_v, 0);
    pe_num(e, "dcBatV", dv->dc_v, 2);
    pe_num(e, "capBatPc", s_soc(dv), 0); /* NAN -> null */
    /* Additions beyond the seed's keys. */
    pe_str_or_null(e, "direction", dv->direction);
    pe_str_or_null(e, "mode", dv->mode);
    pe_num(e, "chargeV", dv->sp_vout, 2);
    pe_num(e, "dischargeV", dv->sp_rev_vout, 2);
    pe_num(e, "chargeLimA", dv->sp_iout, 2);
    pe_num(e, "dischargeLimA", dv->sp_rev_iout, 2);
    pe_str_or_null(e, "leaseHolder", dv->lease_holder);
    if (dv->npb) { /* an NPB charger's stage and curve */
        pe_str_or_null(e, "npbStage", dv->stage);
        pe_num(e, "npbCurveCC", dv->curve_cc, 2);
        pe_num(e, "npbCurveCV", dv->curve_cv, 2);
        pe_num(e, "npbCurveFV", dv->curve_fv, 2);
    }
}

bool dev_view_is_npb(const dev_view_t *dv)
{
    return dv->npb;
}

int dev_view_curve_config(const dev_view_t *dv)
{
    return dv->npb ? dv->curve_config : -1;
}

static void s_charge(const dev_view_t *dv, pe_t *e)
{
    pe_num(e, "chargeA", dv->dc_a, 1);
    pe_num(e, "chargeP", dv->dc_w, 0);
    double set_a = NAN;
    if (strcmp(dv->direction, "discharge") == 0)
        set_a = isnan(dv->sp_rev_iout) ? NAN : -dv->sp_rev_iout;
    else if (strcmp(dv->direction, "charge") == 0)
        set_a = dv->sp_iout;
    pe_num(e, "chargeSetA", set_a, 2);
    /* The seed's meanings: the last 24 hours, discharged negative, one decimal. */
    pe_num(e, "chargedKWh", s_day_sum(dv, SUM_CHARGED) / 1000.0, 1);
    pe_num(e, "dischargedKWh", s_day_sum(dv, SUM_DISCHARGED) / 1000.0, 1);
    pe_num(e, "surplusP", isfinite(dv->surplus_w) ? dv->surplus_w : 0, 0);
    pe_num(e, "surplusKWh", s_day_sum(dv, SUM_SURPLUS) / 1000.0, 1);
    /* Additions: monotonic counters since the first start (Home Assistant's energy). */
    pe_num(e, "chargedTotalKWh", dv->charged_wh / 1000.0, 3);
    pe_num(e, "dischargedTotalKWh", dv->discharged_wh / 1000.0, 3);
}

static void s_fault(const dev_view_t *dv, pe_t *e)
{
    for (int i = 0; i < DEV_VIEW_FAULTS; i++) {
        pe_t f = pe_object(e, dev_view_fault_keys[i]);
        pe_number(&f, "active", dv->fault_active[i]);
        pe_number(&f, "cnt", (double)dv->fault_cnt[i]);
        pe_str(&f, "desc", dev_view_fault_desc[i]);
        pe_end(&f);
    }
    /* beyond the seed's keys: the configured [DEVICE] values are not on the device */
    pe_t f = pe_object(e, "limits");
    /* "configured limits not on the device[: <reason>]", without a printf per key */
    static const char head[] = "configured limits not on the device";
    char desc[sizeof head + 2 + sizeof dv->limits_error];
    memcpy(desc, head, sizeof head);
    if (dv->limits_error[0]) {
        size_t n = strnlen(dv->limits_error, sizeof dv->limits_error - 1);
        memcpy(desc + sizeof head - 1, ": ", 2);
        memcpy(desc + sizeof head + 1, dv->limits_error, n);
        desc[sizeof head + 1 + n] = '\0';
    }
    pe_number(&f, "active", dv->limits_active);
    pe_number(&f, "cnt", (double)dv->limits_cnt);
    pe_str(&f, "desc", desc);
    pe_end(&f);
}

static void s_info(const dev_view_t *dv, pe_t *e)
{
    pe_number(e, "id", dv->dev);
    pe_str_or_null(e, "modelName", dv->model);
    pe_str_or_null(e, "firmRev", dv->firm_rev);
    pe_str_or_null(e, "sysCfg", dv->sys_cfg);
    pe_str_or_null(e, "sysCfgBDir", dv->sys_cfg_bdir);
    pe_str_or_null(e, "manDate", dv->date);
    if (dv->eeprom_writes >= 0)
        pe_number(e, "cntWrite", (double)dv->eeprom_writes);
    else
        pe_null(e, "cntWrite");
    pe_str_or_null(e, "ChargeCtrlName", dv->ctrl_name);
    /* Additions beyond the seed's keys. */
    pe_str_or_null(e, "leaseHolder", dv->lease_holder);
    pe_str_or_null(e, "serial", dv->serial);
    pe_str_or_null(e, "firmware", dv->firmware);
    pe_str_or_null(e, "mode", dv->mode);
    pe_str_or_null(e, "modePending", dv->mode_pending);
    if (dv->can_ctrl >= 0)
        pe_bool(e, "canCtrl", dv->can_ctrl);
    else
        pe_null(e, "canCtrl");
    pe_str_or_null(e, "eepromPolicy", dv->eeprom_policy);
    pe_bool(e, "fans", dv->fans_cap);
    pe_t lim = pe_object(e, "limits");
    for (int i = 0; i < LIM_COUNT; i++) {
        if (!dv->have_limit[i])
            continue;
        pe_t pair = pe_array(&lim, s_limit_names[i]);
        pe_number(&pair, NULL, dv->limit[i][0]);
        pe_number(&pair, NULL, dv->limit[i][1]);
        pe_end(&pair);
    }
    pe_end(&lim);
}

static void (*const s_builders[DEV_VIEW_P_COUNT])(const dev_view_t *,
                                                  pe_t *) = {[DEV_VIEW_P_STATE] = s_state,
                                                             [DEV_VIEW_P_CHARGE] = s_charge,
                                                             [DEV_VIEW_P_FAULT] = s_fault,
                                                             [DEV_VIEW_P_INFO] = s_info};

/* The payload has something to say: info after the gateway's info, the others after the
 * first telemetry. */
static bool s_has(const dev_view_t *dv, dev_view_payload_t which)
{
    return (unsigned)which < DEV_VIEW_P_COUNT &&
           (which == DEV_VIEW_P_INFO ? dv->have_info : dv->have_tel);
}

char *dev_view_json(const dev_view_t *dv, dev_view_payload_t which)
{
    return s_has(dv, which) ? s_json(dv, s_builders[which]) : NULL;
}

size_t dev_view_key(const dev_view_t *dv, dev_view_payload_t which, unsigned char *buf, size_t cap)
{
    if (!s_has(dv, which))
        return 0;
    pe_key_t kb;
    pe_t e = pe_key(&kb, buf, cap);
    /* a leading byte: a key is never empty (0 = no payload) */
    pe_bool(&e, NULL, true);
    s_builders[which](dv, &e);
    return kb.len;
}

char *dev_view_state_json(const dev_view_t *dv)
{
    return dev_view_json(dv, DEV_VIEW_P_STATE);
}

char *dev_view_charge_json(const dev_view_t *dv)
{
    return dev_view_json(dv, DEV_VIEW_P_CHARGE);
}

char *dev_view_fault_json(const dev_view_t *dv)
{
    return dev_view_json(dv, DEV_VIEW_P_FAULT);
}

char *dev_view_info_json(const dev_view_t *dv)
{
    return dev_view_json(dv, DEV_VIEW_P_INFO);
}
