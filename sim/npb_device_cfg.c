/* npb_device_cfg.c - a simulated NPB charger's configuration: defaults per model, the checks,
 * and the --device spec with its options (docs/simulator.md, docs/npb.md). */
#include "npb_device.h"

#include "dev_common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void npb_device_config_defaults(npb_device_config_t *cfg, const npb_model_t *model)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->addr = NPB_ADDR_DEFAULT;
    cfg->model = model ? model : npb_model_find(1200, 24);
    cfg->fw = NPB_FW_NEW;
    cfg->dc_ok = NPB_DCOK_ONE_IS_NORMAL;
    cfg->iout_min_pct = 20;
    cfg->battery_connected = true;
    cfg->ntc_fitted = true;
    cfg->battery_temp_c = 25;
    cfg->tau_s = 1.0;
    cfg->eff = 0.92;
    cfg->ambient_c = 25;
    cfg->thermal_k_per_w = 0.15;
    cfg->thermal_tau_s = 300;
    cfg->ac_v = 230;
    cfg->boot_silence_us = 1800000;
    static const uint8_t rev[6] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    memcpy(cfg->revision, rev, 6);
    snprintf(cfg->location, sizeof cfg->location, "TWN");
    snprintf(cfg->date, sizeof cfg->date, "240301");
    snprintf(cfg->serial, sizeof cfg->serial, "NPB000000001");
}

int npb_device_config_validate(const npb_device_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg || !cfg->model) {
        dev_msg(err, errlen, "no NPB model");
        return -1;
    }
    if (cfg->addr > 3) {
        dev_msg(err, errlen, "NPB address %u (allowed: 0..3)", cfg->addr);
        return -1;
    }
    npb_options_t o;
    npb_options_default(&o);
    o.dc_ok = cfg->dc_ok;
    o.iout_min_pct = cfg->iout_min_pct;
    if (npb_options_validate(&o, err, errlen) != 0)
        return -1;
    struct {
        const char *name;
        double v, lo, hi;
    } nums[] = {
        {"tau", cfg->tau_s, 0, 3600},
        {"eff", cfg->eff, 0.5, 1},
        {"ambient", cfg->ambient_c, -40, 70},
        {"batt_temp", cfg->battery_temp_c, -40, 80},
        {"thermal_k", cfg->thermal_k_per_w, 0, 10},
        {"thermal_tau", cfg->thermal_tau_s, 0, 1e5},
        {"ac_v", cfg->ac_v, 0, 300},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (!(nums[i].v >= nums[i].lo && nums[i].v <= nums[i].hi)) {
            dev_msg(err, errlen, "device option %s: %g (allowed: %g..%g)", nums[i].name, nums[i].v,
                    nums[i].lo, nums[i].hi);
            return -1;
        }
    }
    if (cfg->boot_silence_us < 0 || cfg->boot_silence_us > 60000000) {
        dev_msg(err, errlen, "device option boot_ms: %lld (allowed: 0..60000)",
                (long long)(cfg->boot_silence_us / 1000));
        return -1;
    }
    return 0;
}

bool npb_device_spec_is_npb(const char *spec)
{
    const char *colon = spec ? strchr(spec, ':') : NULL;
    return colon && strncasecmp(colon + 1, "npb-", 4) == 0;
}

static int s_parse_option(npb_device_config_t *cfg, battery_config_t *bcfg, char *opt, char *err,
                          size_t errlen)
{
    char *eq = strchr(opt, '=');
    const char *key = opt, *value = NULL;
    if (eq) {
        *eq = '\0';
        value = eq + 1;
    }
    static const struct {
        const char *name;
        int what;
    } flags[] = {{"clamp", 1}, {"ignore", 2}, {"nobatt", 3}, {"no_ntc", 4}, {"remote_off", 5}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (strcmp(key, flags[i].name) != 0)
            continue;
        if (value) {
            dev_msg(err, errlen, "device option %s takes no value", key);
            return -1;
        }
        switch (flags[i].what) {
        case 1:
            cfg->clamp = true;
            break;
        case 2:
            cfg->clamp = false;
            break;
        case 3:
            cfg->battery_connected = false;
            break;
        case 4:
            cfg->ntc_fitted = false;
            break;
        default:
            cfg->remote_open = true;
            break;
        }
        return 0;
    }
    if (!value || !*value) {
        dev_msg(err, errlen,
                "device option '%s' (allowed: fw=old|new, clamp, ignore, dcok=normal|low, min=PCT, "
                "nobatt, no_ntc, batt_temp=C, remote_off, tau=S, eff=F, ambient=C, boot_ms=MS, "
                "rev=HEX12, date=YYMMDD, serial=S, location=S, soc=, soc_min=, soc_max=, ah=, "
                "cells=, r_mohm=)",
                key);
        return -1;
    }
    if (strcmp(key, "fw") == 0) {
        if (strcmp(value, "old") == 0)
            cfg->fw = NPB_FW_OLD;
        else if (strcmp(value, "new") == 0)
            cfg->fw = NPB_FW_NEW;
        else {
            dev_msg(err, errlen, "device option fw: '%s' (allowed: old, new)", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "dcok") == 0) {
        if (npb_dcok_parse(value, &cfg->dc_ok) != 0) {
            dev_msg(err, errlen, "device option dcok: '%s' (allowed: normal, low)", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "rev") == 0) {
        uint8_t b[6];
        bool ok = strlen(value) == 12;
        for (int i = 0; ok && i < 6; i++) {
            unsigned x;
            char two[3] = {value[2 * i], value[2 * i + 1], 0};
            ok = sscanf(two, "%2x", &x) == 1 && strspn(two, "0123456789abcdefABCDEF") == 2;
            b[i] = (uint8_t)x;
        }
        if (!ok) {
            dev_msg(err, errlen, "device option rev: '%s' (allowed: 12 hex digits)", value);
            return -1;
        }
        memcpy(cfg->revision, b, 6);
        return 0;
    }
    if (strcmp(key, "date") == 0)
        return dev_parse_text(key, value, cfg->date, 6, err, errlen);
    if (strcmp(key, "serial") == 0)
        return dev_parse_text(key, value, cfg->serial, 12, err, errlen);
    if (strcmp(key, "location") == 0)
        return dev_parse_text(key, value, cfg->location, 3, err, errlen);
    static const char *const nums[] = {"min", "batt_temp", "tau", "eff", "ambient", "boot_ms"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(key, nums[i]) != 0)
            continue;
        double v;
        if (dev_parse_double(value, &v) != 0) {
            dev_msg(err, errlen, "device option %s: '%s' (allowed: a number)", key, value);
            return -1;
        }
        switch (i) {
        case 0:
            if (v != floor(v) || v < 20 || v > 100) {
                dev_msg(err, errlen, "device option min: '%s' (allowed: a whole percent 20..100)",
                        value);
                return -1;
            }
            cfg->iout_min_pct = (int)v;
            break;
        case 1:
            cfg->battery_temp_c = v;
            break;
        case 2:
            cfg->tau_s = v;
            break;
        case 3:
            cfg->eff = v;
            break;
        case 4:
            cfg->ambient_c = v;
            break;
        default:
            if (v < 0 || v > 60000) {
                dev_msg(err, errlen, "device option boot_ms: '%s' (allowed: 0..60000)", value);
                return -1;
            }
            cfg->boot_silence_us = (int64_t)(v * 1000);
            break;
        }
        return 0;
    }
    return battery_config_set(bcfg, key, value, err, errlen);
}

int npb_device_parse_spec(const char *spec, npb_device_config_t *cfg, battery_config_t *bcfg,
                          char *err, size_t errlen)
{
    char buf[512];
    if (!spec || !*spec || strlen(spec) >= sizeof buf) {
        dev_msg(
            err, errlen,
            "device spec '%s' (allowed: ADDR:npb-POWER-VOLTS[:OPTIONS], at most %zu characters)",
            spec ? spec : "", sizeof buf - 1);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", spec);
    char *model_s = strchr(buf, ':');
    if (!model_s) {
        dev_msg(err, errlen, "device spec '%s': missing ':npb-POWER-VOLTS' (e.g. 3:npb-1200-24)",
                spec);
        return -1;
    }
    *model_s++ = '\0';
    char *opts = strchr(model_s, ':');
    if (opts)
        *opts++ = '\0';
    char *end = NULL;
    errno = 0;
    long addr = strtol(buf, &end, 10);
    if (!*buf || *end || errno || addr < 0 || addr > 3) {
        dev_msg(err, errlen, "device spec '%s': NPB address '%s' (allowed: 0..3)", spec, buf);
        return -1;
    }
    const npb_model_t *m = npb_model_by_name(model_s);
    if (!m) {
        size_t n = 0;
        const npb_model_t *all = npb_models(&n);
        char known[256] = "";
        size_t off = 0;
        for (size_t i = 0; i < n && off < sizeof known; i++) {
            int k = snprintf(known + off, sizeof known - off, "%snpb-%d-%d", i ? ", " : "",
                             all[i].power_w, all[i].volts);
            if (k < 0)
                break;
            off += (size_t)k;
        }
        dev_msg(err, errlen, "device spec '%s': NPB model '%s' (allowed: %s)", spec, model_s,
                known);
        return -1;
    }
    npb_device_config_defaults(cfg, m);
    battery_config_for_variant(bcfg, m->volts);
    cfg->addr = (uint8_t)addr;
    if (opts) {
        char *save = NULL;
        for (char *opt = strtok_r(opts, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
            char why[384];
            if (s_parse_option(cfg, bcfg, opt, why, sizeof why) != 0) {
                dev_msg(err, errlen, "device spec '%s': %s", spec, why);
                return -1;
            }
        }
    }
    char why[256];
    if (npb_device_config_validate(cfg, why, sizeof why) != 0 ||
        battery_config_validate(bcfg, why, sizeof why) != 0) {
        dev_msg(err, errlen, "device spec '%s': %s", spec, why);
        return -1;
    }
    return 0;
}
