/* sim_control.c - JSON side channel of the simulator: inspect true state and counters,
 * inject faults, power-cycle, change the battery and the bus options. */
#include "sim_control.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "bic_proto.h"
#include "npb_proto.h"
#include "jget.h"

static const uint16_t s_regs[] = {
    BIC_CMD_OPERATION,        BIC_CMD_VOUT_SET,
    BIC_CMD_IOUT_SET,         BIC_CMD_SYSTEM_CONFIG,
    BIC_CMD_DIRECTION_CTRL,   BIC_CMD_REVERSE_VOUT_SET,
    BIC_CMD_REVERSE_IOUT_SET, BIC_CMD_BIDIRECTIONAL_CONFIG,
};
#define S_NREGS (sizeof s_regs / sizeof s_regs[0])

static const char *s_reg_name(uint16_t code)
{
    const bic_cmd_t *c = bic_cmd_by_code(bic_family_bic(), code);
    return c ? c->name : "?";
}

static char *s_error(const char *code, const char *message)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    cJSON_AddBoolToObject(r, "ok", false);
    cJSON *e = cJSON_AddObjectToObject(r, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

static char *s_finish(cJSON *r)
{
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

static double s_round(double v, double step)
{
    return round(v / step) * step;
}

static cJSON *s_device_json(bic_device_t *dev)
{
    bic_device_state_t st;
    bic_device_get_state(dev, &st);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "addr", bic_device_addr(dev));
    cJSON_AddNumberToObject(d, "variant", bic_device_variant(dev));
    cJSON_AddStringToObject(d, "fw", bic_device_fw(dev) == BIC_FW_OLD ? "old" : "new");
    cJSON_AddBoolToObject(d, "powered", st.powered);
    cJSON_AddBoolToObject(d, "booting", st.booting);
    cJSON_AddBoolToObject(d, "output_on", st.output_on);
    cJSON_AddStringToObject(d, "mode", st.battery_mode ? "battery" : "auto");
    cJSON_AddBoolToObject(d, "can_ctrl", st.can_ctrl);
    cJSON_AddBoolToObject(d, "discharging", st.discharging);
    cJSON_AddNumberToObject(d, "dc_v", s_round(st.dc_v, 0.001));
    cJSON_AddNumberToObject(d, "dc_a", s_round(st.dc_a, 0.001));
    cJSON_AddNumberToObject(d, "target_a", s_round(st.target_a, 0.001));
    cJSON_AddNumberToObject(d, "ac_w", s_round(st.ac_w, 0.01));
    cJSON_AddNumberToObject(d, "soc_pct", s_round(st.soc_pct, 0.0001));
    cJSON_AddNumberToObject(d, "temperature_c", s_round(st.temperature_c, 0.01));
    cJSON *fans = cJSON_AddArrayToObject(d, "fan_rpm");
    cJSON_AddItemToArray(fans, cJSON_CreateNumber(st.fan_rpm[0]));
    cJSON_AddItemToArray(fans, cJSON_CreateNumber(st.fan_rpm[1]));
    cJSON_AddNumberToObject(d, "fault_status", st.fault_status);
    cJSON_AddNumberToObject(d, "system_status", st.system_status);
    cJSON *faults = cJSON_AddObjectToObject(d, "faults");
    for (int f = 0; f < BIC_DEV_FAULT_COUNT; f++)
        cJSON_AddBoolToObject(faults, bic_dev_fault_name(f), bic_device_fault_active(dev, f));
    cJSON *regs = cJSON_AddObjectToObject(d, "registers");
    cJSON *eep = cJSON_AddObjectToObject(d, "eeprom");
    cJSON *writes = cJSON_AddObjectToObject(d, "eeprom_writes");
    for (size_t i = 0; i < S_NREGS; i++) {
        uint16_t raw;
        if (bic_device_register(dev, s_regs[i], &raw) == 0)
            cJSON_AddNumberToObject(regs, s_reg_name(s_regs[i]), raw);
        if (bic_device_eeprom_value(dev, s_regs[i], &raw) == 0) {
            cJSON_AddNumberToObject(eep, s_reg_name(s_regs[i]), raw);
            cJSON_AddNumberToObject(writes, s_reg_name(s_regs[i]),
                                    bic_device_eeprom_writes(dev, s_regs[i]));
        }
    }
    cJSON_AddNumberToObject(d, "eeprom_writes_total", bic_device_eeprom_writes_total(dev));
    cJSON_AddBoolToObject(d, "eeprom_pending", bic_device_eeprom_pending(dev));
    battery_t *b = bic_device_battery(dev);
    cJSON *bat = cJSON_AddObjectToObject(d, "battery");
    cJSON_AddNumberToObject(bat, "soc_pct", s_round(battery_soc_pct(b), 0.0001));
    cJSON_AddNumberToObject(bat, "ocv_v", s_round(battery_ocv_v(b), 0.001));
    cJSON_AddNumberToObject(bat, "capacity_ah", battery_capacity_ah(b));
    cJSON_AddNumberToObject(bat, "cells", battery_cells(b));
    cJSON_AddNumberToObject(bat, "charged_wh", s_round(battery_charged_wh(b), 0.001));
    cJSON_AddNumberToObject(bat, "discharged_wh", s_round(battery_discharged_wh(b), 0.001));
    return d;
}

/* Selected devices: "dev" absent = all, else the one with that address. */
static int s_select(sim_bus_t *bus, const cJSON *req, bic_device_t **out, size_t *n, char *err,
                    size_t errlen)
{
    long addr = -1;
    if (jget_int_opt(req, "dev", 0, 63, -1, &addr, err, errlen) != 0)
        return -1;
    *n = 0;
    if (addr < 0) {
        for (size_t i = 0; i < sim_bus_count(bus); i++)
            out[(*n)++] = sim_bus_device(bus, i);
        return 0;
    }
    bic_device_t *d = sim_bus_find(bus, (uint8_t)addr);
    if (!d) {
        snprintf(err, errlen, "no simulated device at address %ld", addr);
        return -2;
    }
    out[(*n)++] = d;
    return 0;
}

/* NPB registers reported by the npb command, in this order. */
static const uint16_t s_npb_regs[] = {
    BIC_CMD_OPERATION,        BIC_CMD_VOUT_SET,         BIC_CMD_IOUT_SET,
    BIC_CMD_SYSTEM_CONFIG,    NPB_CMD_CURVE_CC,         NPB_CMD_CURVE_CV,
    NPB_CMD_CURVE_FV,         NPB_CMD_CURVE_TC,         NPB_CMD_CURVE_CONFIG,
    NPB_CMD_CURVE_CC_TIMEOUT, NPB_CMD_CURVE_CV_TIMEOUT, NPB_CMD_CURVE_FV_TIMEOUT,
    NPB_CMD_CHG_RST_VBAT,
};

static cJSON *s_npb_json(npb_device_t *dev)
{
    npb_device_state_t st;
    npb_device_get_state(dev, &st);
    const npb_device_config_t *cfg = npb_device_config(dev);
    const bic_family_t *f = bic_family_get(BIC_FAMILY_NPB);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "addr", npb_device_addr(dev));
    cJSON_AddStringToObject(d, "model", cfg->model->name);
    cJSON_AddStringToObject(d, "fw", cfg->fw == NPB_FW_OLD ? "old" : "new");
    cJSON_AddBoolToObject(d, "powered", st.powered);
    cJSON_AddBoolToObject(d, "output_on", st.output_on);
    cJSON_AddStringToObject(d, "mode", st.charger ? "charger" : "psu");
    cJSON_AddStringToObject(d, "stage", npb_stage_name(st.stage));
    cJSON_AddNumberToObject(d, "chg_status", st.chg_status);
    cJSON_AddNumberToObject(d, "dc_v", s_round(st.dc_v, 0.001));
    cJSON_AddNumberToObject(d, "dc_a", s_round(st.dc_a, 0.001));
    cJSON_AddNumberToObject(d, "target_v", s_round(st.target_v, 0.001));
    cJSON_AddNumberToObject(d, "ac_w", s_round(st.ac_w, 0.01));
    cJSON_AddNumberToObject(d, "soc_pct", s_round(st.soc_pct, 0.001));
    cJSON_AddNumberToObject(d, "stage_s", s_round(st.stage_s, 0.001));
    cJSON *regs = cJSON_AddObjectToObject(d, "registers");
    cJSON *eep = cJSON_AddObjectToObject(d, "eeprom");
    cJSON *wr = cJSON_AddObjectToObject(d, "eeprom_writes");
    for (size_t i = 0; i < sizeof s_npb_regs / sizeof s_npb_regs[0]; i++) {
        const char *name = bic_cmd_by_code(f, s_npb_regs[i])->name;
        uint16_t raw;
        if (npb_device_register(dev, s_npb_regs[i], &raw) == 0)
            cJSON_AddNumberToObject(regs, name, raw);
        if (npb_device_eeprom_value(dev, s_npb_regs[i], &raw) == 0)
            cJSON_AddNumberToObject(eep, name, raw);
        cJSON_AddNumberToObject(wr, name, npb_device_eeprom_writes(dev, s_npb_regs[i]));
    }
    cJSON_AddNumberToObject(d, "eeprom_writes_total", st.eeprom_writes_total);
    return d;
}

/* {"cmd":"npb","addr":A} with optional changes first: soc, batt_temp, battery (connected),
 * remote, power_cycle. */
static int s_npb_cmd(sim_bus_t *bus, const cJSON *j, cJSON *r, int64_t dev_us, char *err,
                     size_t errlen)
{
    long addr = 0;
    double soc = NAN, temp = NAN;
    bool cycle = false;
    if (jget_int(j, "addr", 0, 3, &addr, err, errlen) != 0 ||
        jget_num_opt(j, "soc", 0, 100, NAN, &soc, err, errlen) != 0 ||
        jget_num_opt(j, "batt_temp", -40, 80, NAN, &temp, err, errlen) != 0 ||
        jget_bool_opt(j, "power_cycle", false, &cycle, err, errlen) != 0)
        return -1;
    npb_device_t *dev = sim_bus_find_npb(bus, (uint8_t)addr);
    if (!dev) {
        snprintf(err, errlen, "no NPB at address %ld", addr);
        return -2;
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "battery");
    const cJSON *rm = cJSON_GetObjectItemCaseSensitive(j, "remote");
    if ((b && !cJSON_IsBool(b)) || (rm && !cJSON_IsBool(rm))) {
        snprintf(err, errlen, "battery and remote must be true or false");
        return -1;
    }
    if (!isnan(soc))
        battery_set_soc(npb_device_battery(dev), soc);
    if (!isnan(temp))
        npb_device_set_battery_temp(dev, temp, dev_us);
    if (b)
        npb_device_set_battery_connected(dev, cJSON_IsTrue(b), dev_us);
    if (rm)
        npb_device_set_remote(dev, cJSON_IsTrue(rm), dev_us);
    if (cycle)
        npb_device_power_cycle(dev, dev_us);
    cJSON_AddItemToObject(r, "npb", s_npb_json(dev));
    return 0;
}

static cJSON *s_household_json(const sim_control_env_t *env, sim_bus_t *bus)
{
    if (!env || !env->household)
        return NULL;
    double load, pv, bat = sim_bus_ac_w(bus);
    household_at(env->household, env->household_t_s, &load, &pv);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "t_s", s_round(env->household_t_s, 0.001));
    cJSON_AddNumberToObject(h, "load_w", s_round(load, 0.01));
    cJSON_AddNumberToObject(h, "pv_w", s_round(pv, 0.01));
    cJSON_AddNumberToObject(h, "battery_w", s_round(bat, 0.01));
    cJSON_AddNumberToObject(h, "meter_w", s_round(household_meter_w(load, pv, bat), 0.01));
    return h;
}

static void s_hex(const uint8_t *d, size_t n, char *out)
{
    static const char hx[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = '\0';
}

char *sim_control_handle(sim_bus_t *bus, const sim_control_env_t *env, const char *req, size_t len,
                         int64_t bus_us, int64_t dev_us)
{
    char err[256] = "";
    if (len > SIM_CONTROL_REQUEST_MAX)
        return s_error("too_large", "request longer than 4096 bytes");
    cJSON *j = cJSON_ParseWithLength(req, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return s_error("bad_request", "request must be one JSON object, e.g. {\"cmd\":\"state\"}");
    }
    const char *cmd = NULL;
    char *out = NULL;
    cJSON *r = NULL;
    bic_device_t *sel[SIM_BUS_MAX_DEVICES];
    size_t nsel = 0;
    if (jget_str(j, "cmd", 32, &cmd, err, sizeof err) != 0) {
        out = s_error("bad_request", err);
        goto cleanup;
    }
    sim_bus_step(bus, dev_us);
    int rc = s_select(bus, j, sel, &nsel, err, sizeof err);
    if (rc != 0) {
        out = s_error(rc == -2 ? "unknown_device" : "bad_request", err);
        goto cleanup;
    }
    r = cJSON_CreateObject();
    cJSON_AddBoolToObject(r, "ok", true);

    if (strcmp(cmd, "state") == 0) {
        if (env) {
            cJSON_AddNumberToObject(r, "sim_time_s", s_round(env->sim_time_s, 0.001));
            cJSON_AddNumberToObject(r, "speed", env->speed);
            if (env->transport)
                cJSON_AddStringToObject(r, "transport", env->transport);
        }
        cJSON *devs = cJSON_AddArrayToObject(r, "devices");
        for (size_t i = 0; i < nsel; i++)
            cJSON_AddItemToArray(devs, s_device_json(sel[i]));
        cJSON *npbs = cJSON_AddArrayToObject(r, "npbs");
        for (size_t i = 0; i < sim_bus_npb_count(bus); i++)
            cJSON_AddItemToArray(npbs, s_npb_json(sim_bus_npb(bus, i)));
        cJSON *h = s_household_json(env, bus);
        if (h)
            cJSON_AddItemToObject(r, "household", h);
    } else if (strcmp(cmd, "counters") == 0) {
        sim_bus_counters_t c;
        sim_bus_counters(bus, &c);
        cJSON *b = cJSON_AddObjectToObject(r, "bus");
        cJSON_AddNumberToObject(b, "requests", (double)c.requests);
        cJSON_AddNumberToObject(b, "replies", (double)c.replies);
        cJSON_AddNumberToObject(b, "silent", (double)c.silent);
        cJSON_AddNumberToObject(b, "foreign", (double)c.foreign);
        cJSON_AddNumberToObject(b, "dropped", (double)c.dropped);
        cJSON_AddNumberToObject(b, "late", (double)c.late);
        cJSON_AddNumberToObject(b, "duplicated", (double)c.duplicated);
        cJSON_AddNumberToObject(b, "pacing_violations", (double)c.pacing_violations);
        cJSON_AddNumberToObject(b, "pacing_period", (double)c.pacing_period);
        cJSON_AddNumberToObject(b, "pacing_margin", (double)c.pacing_margin);
        cJSON_AddNumberToObject(b, "pacing_dropped", (double)c.pacing_dropped);
        cJSON_AddNumberToObject(b, "pacing_suspect", (double)c.pacing_suspect);
        cJSON_AddNumberToObject(b, "pacing_injected", (double)c.pacing_injected);
        cJSON_AddNumberToObject(b, "queue_overflow", (double)c.queue_overflow);
        if (env && env->adapter) {
            slcan_adapter_stats_t a;
            slcan_adapter_stats(env->adapter, &a);
            cJSON *ad = cJSON_AddObjectToObject(r, "adapter");
            cJSON_AddBoolToObject(ad, "open", slcan_adapter_is_open(env->adapter));
            cJSON_AddNumberToObject(ad, "bitrate", slcan_adapter_bitrate(env->adapter));
            cJSON_AddNumberToObject(ad, "commands", (double)a.commands);
            cJSON_AddNumberToObject(ad, "frames_from_host", (double)a.frames_from_host);
            cJSON_AddNumberToObject(ad, "frames_to_host", (double)a.frames_to_host);
            cJSON_AddNumberToObject(ad, "errors", (double)a.bel_sent);
            cJSON_AddNumberToObject(ad, "garbage", (double)a.garbage);
            cJSON_AddNumberToObject(ad, "overlong", (double)a.overlong);
            cJSON_AddNumberToObject(ad, "not_open", (double)a.not_open);
            cJSON_AddNumberToObject(ad, "bitrate_mismatch", (double)a.bitrate_mismatch);
            cJSON_AddNumberToObject(ad, "out_dropped", (double)a.out_dropped);
        }
        if (env)
            cJSON_AddNumberToObject(r, "meter_published", (double)env->meter_published);
        cJSON *devs = cJSON_AddArrayToObject(r, "devices");
        for (size_t i = 0; i < nsel; i++) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddNumberToObject(d, "addr", bic_device_addr(sel[i]));
            cJSON *w = cJSON_AddObjectToObject(d, "eeprom_writes");
            for (size_t k = 0; k < S_NREGS; k++) {
                uint16_t raw;
                if (bic_device_eeprom_value(sel[i], s_regs[k], &raw) == 0)
                    cJSON_AddNumberToObject(w, s_reg_name(s_regs[k]),
                                            bic_device_eeprom_writes(sel[i], s_regs[k]));
            }
            cJSON_AddNumberToObject(d, "eeprom_writes_total",
                                    bic_device_eeprom_writes_total(sel[i]));
            cJSON_AddItemToArray(devs, d);
        }
    } else if (strcmp(cmd, "fault") == 0) {
        const char *name = NULL;
        bool on = false;
        if (jget_str(j, "name", 32, &name, err, sizeof err) != 0 ||
            jget_bool(j, "on", &on, err, sizeof err) != 0) {
            out = s_error("bad_request", err);
            goto cleanup;
        }
        int f = bic_dev_fault_from_name(name);
        if (f < 0) {
            snprintf(err, sizeof err,
                     "unknown fault '%s' (allowed: otp, ovp, olp, short, ac_fail, fan_fail, "
                     "hi_temp, hv_ovp, eeper, islanding)",
                     name);
            out = s_error("bad_request", err);
            goto cleanup;
        }
        for (size_t i = 0; i < nsel; i++)
            bic_device_set_fault(sel[i], f, on, dev_us);
    } else if (strcmp(cmd, "npb") == 0) {
        int nrc = s_npb_cmd(bus, j, r, dev_us, err, sizeof err);
        if (nrc != 0) {
            out = s_error(nrc == -2 ? "unknown_device" : "bad_request", err);
            goto cleanup;
        }
    } else if (strcmp(cmd, "power_cycle") == 0) {
        for (size_t i = 0; i < nsel; i++)
            bic_device_power_cycle(sel[i], dev_us);
    } else if (strcmp(cmd, "ac") == 0 || strcmp(cmd, "remote") == 0) {
        bool on = false;
        if (jget_bool(j, "on", &on, err, sizeof err) != 0) {
            out = s_error("bad_request", err);
            goto cleanup;
        }
        for (size_t i = 0; i < nsel; i++) {
            if (cmd[0] == 'a')
                bic_device_set_ac(sel[i], on, dev_us);
            else
                bic_device_set_remote(sel[i], on, dev_us);
        }
    } else if (strcmp(cmd, "battery") == 0) {
        double soc = NAN;
        if (jget_num_opt(j, "soc", 0, 100, NAN, &soc, err, sizeof err) != 0) {
            out = s_error("bad_request", err);
            goto cleanup;
        }
        for (size_t i = 0; i < nsel; i++)
            if (!isnan(soc))
                battery_set_soc(bic_device_battery(sel[i]), soc);
    } else if (strcmp(cmd, "set") == 0) {
        sim_bus_options_t o;
        sim_bus_get_options(bus, &o);
        long v;
        bool pd = o.pacing_drop;
        const char *range = NULL;
        double boot_ms = NAN;
        if (jget_int_opt(j, "reply_delay_us", 0, 1000000, (long)o.reply_delay_us, &v, err,
                         sizeof err) != 0)
            goto bad_set;
        o.reply_delay_us = v;
        if (jget_int_opt(j, "late_delay_us", 0, 10000000, (long)o.late_delay_us, &v, err,
                         sizeof err) != 0)
            goto bad_set;
        o.late_delay_us = v;
        if (jget_int_opt(j, "late_pct", 0, 100, o.late_pct, &v, err, sizeof err) != 0)
            goto bad_set;
        o.late_pct = (int)v;
        if (jget_int_opt(j, "drop_pct", 0, 100, o.drop_pct, &v, err, sizeof err) != 0)
            goto bad_set;
        o.drop_pct = (int)v;
        if (jget_int_opt(j, "dup_pct", 0, 100, o.dup_pct, &v, err, sizeof err) != 0)
            goto bad_set;
        o.dup_pct = (int)v;
        if (jget_bool_opt(j, "pacing_drop", o.pacing_drop, &pd, err, sizeof err) != 0)
            goto bad_set;
        o.pacing_drop = pd;
        if (jget_str_opt(j, "range", 16, NULL, &range, err, sizeof err) != 0)
            goto bad_set;
        if (range && strcmp(range, "ignore") != 0 && strcmp(range, "clamp") != 0) {
            snprintf(err, sizeof err, "'range' must be \"ignore\" or \"clamp\" (got \"%s\")",
                     range);
            goto bad_set;
        }
        if (jget_num_opt(j, "boot_ms", 0, 60000, NAN, &boot_ms, err, sizeof err) != 0)
            goto bad_set;
        sim_bus_set_options(bus, &o);
        for (size_t i = 0; i < nsel; i++) {
            if (range)
                bic_device_set_range_policy(sel[i],
                                            range[0] == 'c' ? BIC_RANGE_CLAMP : BIC_RANGE_IGNORE);
            if (!isnan(boot_ms))
                bic_device_set_boot_silence(sel[i], (int64_t)(boot_ms * 1000));
        }
        cJSON *opts = cJSON_AddObjectToObject(r, "options");
        cJSON_AddNumberToObject(opts, "reply_delay_us", (double)o.reply_delay_us);
        cJSON_AddNumberToObject(opts, "late_delay_us", (double)o.late_delay_us);
        cJSON_AddNumberToObject(opts, "late_pct", o.late_pct);
        cJSON_AddNumberToObject(opts, "drop_pct", o.drop_pct);
        cJSON_AddNumberToObject(opts, "dup_pct", o.dup_pct);
        cJSON_AddBoolToObject(opts, "pacing_drop", o.pacing_drop);
    } else if (strcmp(cmd, "frames") == 0) {
        long max = 100;
        if (jget_int_opt(j, "max", 1, SIM_BUS_LOG_MAX, 100, &max, err, sizeof err) != 0) {
            out = s_error("bad_request", err);
            goto cleanup;
        }
        static sim_frame_log_t log[SIM_BUS_LOG_MAX];
        size_t n = sim_bus_log(bus, log, (size_t)max);
        cJSON *arr = cJSON_AddArrayToObject(r, "frames");
        for (size_t i = 0; i < n; i++) {
            cJSON *f = cJSON_CreateObject();
            char id[16], hex[17];
            snprintf(id, sizeof id, "0x%08X", log[i].frame.id);
            s_hex(log[i].frame.data, log[i].frame.dlc <= 8 ? log[i].frame.dlc : 8, hex);
            cJSON_AddNumberToObject(f, "age_ms", (double)(bus_us - log[i].t_us) / 1000.0);
            cJSON_AddStringToObject(f, "dir", log[i].dir == SIM_FRAME_RX ? "rx" : "tx");
            cJSON_AddStringToObject(f, "id", id);
            cJSON_AddBoolToObject(f, "ext", log[i].frame.ext);
            cJSON_AddBoolToObject(f, "rtr", log[i].frame.rtr);
            cJSON_AddNumberToObject(f, "dlc", log[i].frame.dlc);
            cJSON_AddStringToObject(f, "data", hex);
            cJSON_AddItemToArray(arr, f);
        }
    } else if (strcmp(cmd, "household") == 0) {
        cJSON *h = s_household_json(env, bus);
        if (!h) {
            out = s_error("not_available", "no household replay (start bic-sim with --household)");
            goto cleanup;
        }
        cJSON_AddItemToObject(r, "household", h);
    } else {
        snprintf(err, sizeof err,
                 "unknown cmd '%s' (allowed: state, counters, fault, power_cycle, ac, remote, "
                 "battery, set, frames, household)",
                 cmd);
        out = s_error("unknown_cmd", err);
        goto cleanup;
    }
    out = s_finish(r);
    r = NULL;
    goto cleanup;
bad_set:
    out = s_error("bad_request", err);
cleanup:
    cJSON_Delete(r);
    cJSON_Delete(j);
    return out;
}
