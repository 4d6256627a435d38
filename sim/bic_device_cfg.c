/* bic_device_cfg.c - a simulated BIC-2200's configuration: defaults per variant, the checks,
 * and the --device spec ADDR:VARIANT[:OPTIONS] with its options (docs/simulator.md). */
#include "bic_device.h"

#include "dev_common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double bic_device_rated_current_a(int variant)
{
    const bic_variant_t *v = bic_variant_get(bic_family_bic(), variant);
    return v ? v->rated_current_ca / 100.0 : 0;
}

int bic_device_config_defaults(bic_device_config_t *cfg, int variant)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = 0;
    if (!bic_variant_get(bic_family_bic(), variant)) {
        variant = 24;
        rc = -1;
    }
    cfg->addr = 0;
    cfg->variant = variant;
    cfg->fw = BIC_FW_NEW;
    cfg->range = BIC_RANGE_IGNORE;
    cfg->tau_s = 1.0;
    cfg->eff_charge = 0.92;
    cfg->eff_discharge = 0.92;
    cfg->ambient_c = 25.0;
    cfg->thermal_k_per_w = 0.15;
    cfg->thermal_tau_s = 300.0;
    cfg->ac_v = 230.0;
    cfg->boot_silence_us = 1800000;
    static const uint8_t rev[6] = {0x0E, 0x0D, 0xFF, 0xFF, 0xFF, 0xFF};
    memcpy(cfg->revision, rev, sizeof rev);
    snprintf(cfg->location, sizeof cfg->location, "TWN");
    snprintf(cfg->date, sizeof cfg->date, "240301");
    snprintf(cfg->serial, sizeof cfg->serial, "240301000001");
    return rc;
}

int bic_device_config_validate(const bic_device_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg) {
        dev_msg(err, errlen, "no device configuration");
        return -1;
    }
    if (cfg->addr > 63) {
        dev_msg(err, errlen, "device address %u (allowed: 0..63)", cfg->addr);
        return -1;
    }
    if (!bic_variant_get(bic_family_bic(), cfg->variant)) {
        dev_msg(err, errlen, "device variant %d (allowed: 12, 24, 48, 96)", cfg->variant);
        return -1;
    }
    if (cfg->fw != BIC_FW_OLD && cfg->fw != BIC_FW_NEW) {
        dev_msg(err, errlen, "firmware generation %d (allowed: old, new)", (int)cfg->fw);
        return -1;
    }
    if (cfg->range != BIC_RANGE_IGNORE && cfg->range != BIC_RANGE_CLAMP) {
        dev_msg(err, errlen, "range policy %d (allowed: ignore, clamp)", (int)cfg->range);
        return -1;
    }
    const struct {
        const char *name;
        double v, lo, hi;
    } num[] = {
        {"svr (V)", cfg->svr_v, 0, 200},
        {"tau (s)", cfg->tau_s, 0, 3600},
        {"ramp (A/s)", cfg->ramp_a_per_s, 0, 100000},
        {"eff_c", cfg->eff_charge, 0.05, 1},
        {"eff_d", cfg->eff_discharge, 0.05, 1},
        {"ambient (degC)", cfg->ambient_c, -40, 60},
        {"thermal K/W", cfg->thermal_k_per_w, 0, 10},
        {"thermal tau (s)", cfg->thermal_tau_s, 0, 36000},
        {"AC voltage (V)", cfg->ac_v, 180, 264},
    };
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) {
        if (!isfinite(num[i].v) || num[i].v < num[i].lo || num[i].v > num[i].hi) {
            dev_msg(err, errlen, "device option %s: %g (allowed: %g..%g)", num[i].name, num[i].v,
                    num[i].lo, num[i].hi);
            return -1;
        }
    }
    if (cfg->boot_silence_us < 0 || cfg->boot_silence_us > 60000000) {
        dev_msg(err, errlen, "boot silence %lld ms (allowed: 0..60000)",
                (long long)(cfg->boot_silence_us / 1000));
        return -1;
    }
    return 0;
}

static int s_parse_option(bic_device_config_t *cfg, battery_config_t *bcfg, char *opt, char *err,
                          size_t errlen)
{
    char *eq = strchr(opt, '=');
    const char *key = opt;
    const char *value = NULL;
    if (eq) {
        *eq = '\0';
        value = eq + 1;
    }
    static const char *const flags[] = {"clamp",       "ignore",    "battery", "canctrl",
                                        "scaling2",    "min20",     "eep_all", "canctrl_powerup",
                                        "island_auto", "remote_off"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (strcmp(key, flags[i]) != 0)
            continue;
        if (value) {
            dev_msg(err, errlen, "device option %s takes no value", key);
            return -1;
        }
        switch (i) {
        case 0:
            cfg->range = BIC_RANGE_CLAMP;
            break;
        case 1:
            cfg->range = BIC_RANGE_IGNORE;
            break;
        case 2:
            cfg->battery_mode = true;
            break;
        case 3:
            cfg->can_ctrl = true;
            break;
        case 4:
            cfg->scaling_short = true;
            break;
        case 5:
            cfg->min_current_20pct = true;
            break;
        case 6:
            cfg->all_obey_eep_off = true;
            break;
        case 7:
            cfg->can_ctrl_at_power_up = true;
            break;
        case 8:
            cfg->islanding_auto = true;
            break;
        case 9:
            cfg->remote_open = true;
            break;
        }
        return 0;
    }
    if (!value) {
        dev_msg(err, errlen,
                "unknown device option '%s' (allowed flags: clamp, ignore, battery, canctrl, "
                "scaling2, min20, eep_all, canctrl_powerup, island_auto, remote_off; or key=value)",
                key);
        return -1;
    }
    if (strcmp(key, "fw") == 0) {
        if (strcmp(value, "old") == 0)
            cfg->fw = BIC_FW_OLD;
        else if (strcmp(value, "new") == 0)
            cfg->fw = BIC_FW_NEW;
        else {
            dev_msg(err, errlen, "device option fw: '%s' (allowed: old, new)", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "rev") == 0) {
        size_t n = strlen(value);
        if (n != 12 || strspn(value, "0123456789abcdefABCDEF") != 12) {
            dev_msg(err, errlen,
                    "device option rev: '%s' (allowed: 12 hex digits, e.g. 0E0DFFFFFFFF)", value);
            return -1;
        }
        for (int i = 0; i < 6; i++) {
            char b[3] = {value[2 * i], value[2 * i + 1], 0};
            cfg->revision[i] = (uint8_t)strtoul(b, NULL, 16);
        }
        return 0;
    }
    if (strcmp(key, "date") == 0) {
        if (strlen(value) != 6 || strspn(value, "0123456789") != 6) {
            dev_msg(err, errlen, "device option date: '%s' (allowed: YYMMDD, 6 digits)", value);
            return -1;
        }
        memcpy(cfg->date, value, 7);
        return 0;
    }
    if (strcmp(key, "serial") == 0)
        return dev_parse_text(key, value, cfg->serial, 12, err, errlen);
    if (strcmp(key, "location") == 0)
        return dev_parse_text(key, value, cfg->location, 3, err, errlen);

    static const char *const nums[] = {"svr",   "tau",   "ramp",    "eff",
                                       "eff_c", "eff_d", "ambient", "boot_ms"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(key, nums[i]) != 0)
            continue;
        double v;
        if (dev_parse_double(value, &v) != 0) {
            dev_msg(err, errlen, "device option %s: '%s' is not a number", key, value);
            return -1;
        }
        switch (i) {
        case 0:
            cfg->svr_v = v;
            break;
        case 1:
            cfg->tau_s = v;
            break;
        case 2:
            cfg->ramp_a_per_s = v;
            break;
        case 3:
            cfg->eff_charge = cfg->eff_discharge = v;
            break;
        case 4:
            cfg->eff_charge = v;
            break;
        case 5:
            cfg->eff_discharge = v;
            break;
        case 6:
            cfg->ambient_c = v;
            break;
        case 7:
            if (v < 0 || v > 60000) {
                dev_msg(err, errlen, "device option boot_ms: %g (allowed: 0..60000)", v);
                return -1;
            }
            cfg->boot_silence_us = (int64_t)(v * 1000);
            break;
        }
        return 0;
    }
    static const char *const bat[] = {"soc", "soc_min", "soc_max", "ah", "cells", "r_mohm"};
    for (size_t i = 0; i < sizeof bat / sizeof bat[0]; i++)
        if (strcmp(key, bat[i]) == 0)
            return battery_config_set(bcfg, key, value, err, errlen);
    dev_msg(err, errlen,
            "unknown device option '%s' (allowed keys: fw, rev, date, serial, location, svr, tau, "
            "ramp, eff, eff_c, eff_d, ambient, boot_ms, soc, soc_min, soc_max, ah, cells, r_mohm)",
            key);
    return -1;
}

int bic_device_parse_spec(const char *spec, bic_device_config_t *cfg, battery_config_t *bcfg,
                          char *err, size_t errlen)
{
    char buf[512];
    if (!spec || !*spec || strlen(spec) >= sizeof buf) {
        dev_msg(err, errlen,
                "device spec '%s' (allowed: ADDR:VARIANT[:OPTIONS], at most %zu characters)",
                spec ? spec : "", sizeof buf - 1);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", spec);
    char *addr_s = buf;
    char *var_s = strchr(buf, ':');
    if (!var_s) {
        dev_msg(err, errlen,
                "device spec '%s': missing ':VARIANT' (allowed: ADDR:VARIANT[:OPTIONS], e.g. 0:24)",
                spec);
        return -1;
    }
    *var_s++ = '\0';
    char *opts = strchr(var_s, ':');
    if (opts)
        *opts++ = '\0';

    char *end = NULL;
    errno = 0;
    long addr = strtol(addr_s, &end, 10);
    if (!*addr_s || *end || errno || addr < 0 || addr > 63) {
        dev_msg(err, errlen, "device spec '%s': address '%s' (allowed: 0..63)", spec, addr_s);
        return -1;
    }
    errno = 0;
    long variant = strtol(var_s, &end, 10);
    if (!*var_s || *end || errno ||
        (variant != 12 && variant != 24 && variant != 48 && variant != 96)) {
        dev_msg(err, errlen, "device spec '%s': variant '%s' (allowed: 12, 24, 48, 96)", spec,
                var_s);
        return -1;
    }
    bic_device_config_defaults(cfg, (int)variant);
    battery_config_for_variant(bcfg, (int)variant);
    cfg->addr = (uint8_t)addr;

    if (opts) {
        char *save = NULL;
        for (char *opt = strtok_r(opts, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
            char why[256];
            if (s_parse_option(cfg, bcfg, opt, why, sizeof why) != 0) {
                dev_msg(err, errlen, "device spec '%s': %s", spec, why);
                return -1;
            }
        }
    }
    char why[256];
    if (bic_device_config_validate(cfg, why, sizeof why) != 0 ||
        battery_config_validate(bcfg, why, sizeof why) != 0) {
        dev_msg(err, errlen, "device spec '%s': %s", spec, why);
        return -1;
    }
    return 0;
}
