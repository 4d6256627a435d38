/*
 * bicctl_render - how bicctl prints the gateway's replies to a command (the seed's plain
 * output, docs/bicctl.md, or JSON) and the telemetry and events `watch` receives.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bicctl_cmd_int.h"
#include "bicctl_group.h"
#include "bicctl_npb.h"
#include "numconv.h"

/* FAULT_STATUS bits (protocol reference 8.1) with the seed's names and texts, in the order
 * of the seed's fault dictionary. */
static const struct {
    const char *seed; /* name in the seed's fault dictionary */
    const char *name; /* name in the gateway's telemetry */
    int bit;
    const char *desc;
} s_faults[] = {
    {"fan", "fan_fail", 0, "fanspeed abnormal"},
    {"otp", "otp", 1, "over temperature protection"},
    {"otpHi", "hi_temp", 7, "internal hi temperature protection"},
    {"ovp", "ovp", 2, "over voltage protection"},
    {"ovpHi", "hv_ovp", 8, "over voltage protection"},
    {"olp", "olp", 3, "over current protection"},
    {"short", "short", 4, "short circuit protection"},
    {"acRange", "ac_fail", 5, "ac grid range"},
    {"dcOff", "op_off", 6, "dc off"},
};

/* ---------------------------------------------------------------- renderers */

RENDER(bc_r_quiet)
{
    (void)c, (void)a, (void)r, (void)n, (void)out, (void)err, (void)errlen;
    return 0; /* the seed prints nothing after a write; the exit code tells */
}

RENDER(bc_r_raw)
{
    long v;
    int rc = bc_slot_raw(r[0], c->regs[0], &v, err, errlen);
    if (rc)
        return rc;
    fprintf(out, "%ld\n", v);
    return 0;
}

RENDER(bc_r_fan)
{
    long f1, f2;
    int rc = bc_slot_raw(r[0], c->regs[0], &f1, err, errlen);
    if (!rc)
        rc = bc_slot_raw(r[0], c->regs[1], &f2, err, errlen);
    if (rc)
        return rc;
    fprintf(out, "fan1:%ld fan2:%ld\n", f1, f2);
    return 0;
}

RENDER(bc_r_type)
{
    int rc;
    const char *t1 = bc_slot_text(r[0], c->regs[0], &rc, err, errlen);
    if (rc)
        return rc;
    const char *t2 = bc_slot_text(r[0], c->regs[1], &rc, err, errlen);
    if (rc)
        return rc;
    fprintf(out, "%s%s\n", t1, t2);
    return 0;
}

RENDER(bc_r_sysstatus)
{
    /* The manual's bit positions (ADL_ON 4, INITIAL_STATE 5, EEPER 6); the seed read 3/4/5. */
    static const struct {
        int bit;
        const char *zero, *one;
    } lines[] = {
        {0, "Current Device is Slave", "Current Device is Master"},
        {1, "Secondary DD output Status TOO LOW", "Secondary DD output Status NORMAL"},
        {2, "Primary PFC OFF oder abnormal", "Primary PFC ON normally"}, /* the seed's words */
        {4, "Active Dummy Load off / not_supported", "Active Dummy Load on"},
        {5, "Device in initialization status", "NOT in initialization status"},
        {6, "EEPROM data access normal", "EEPROM data access error"},
    };
    long v;
    int rc = bc_slot_raw(r[0], c->regs[0], &v, err, errlen);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        fprintf(out, "%s\n", (v >> lines[i].bit) & 1 ? lines[i].one : lines[i].zero);
    return 0;
}

RENDER(bc_r_fault)
{
    long v;
    int rc = bc_slot_raw(r[0], c->regs[0], &v, err, errlen);
    if (rc)
        return rc;
    if (a->table) {
        for (size_t i = 0; i < sizeof s_faults / sizeof s_faults[0]; i++)
            fprintf(out, "%-8s %ld  %s\n", s_faults[i].seed, (v >> s_faults[i].bit) & 1,
                    s_faults[i].desc);
        return 0;
    }
    /* cbic2200.py's output, which scripts parse: a fresh process sees every fault change
     * from its starting state (can -1, the others 0), in the order it reads the bits,
     * then its whole dictionary (eeprom comes from SYSTEM_STATUS, which faultread does not
     * read: 0 as in the seed). */
    fputs("fault state changed can = 0 cnt:0\n", out);
    for (int bit = 0; bit <= 8; bit++)
        for (size_t i = 0; i < sizeof s_faults / sizeof s_faults[0]; i++)
            if (s_faults[i].bit == bit && ((v >> bit) & 1))
                fprintf(out, "fault state changed %s = 1 cnt:1\n", s_faults[i].seed);
    for (size_t i = 0; i < sizeof s_faults / sizeof s_faults[0]; i++)
        fprintf(out, "{'active': %ld, 'cnt': %ld, 'desc': '%s'}\n", (v >> s_faults[i].bit) & 1,
                (v >> s_faults[i].bit) & 1, s_faults[i].desc);
    fputs("{'active': 0, 'cnt': 0, 'desc': 'eeprom fault'}\n"
          "{'active': 0, 'cnt': 0, 'desc': 'can-com error / read-tmo'}\n",
          out);
    return 0;
}

/* The eeprom block of an `eeprom` or `info` reply (flat or nested). */
static const cJSON *s_eeprom_block(const cJSON *obj)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(obj, "eeprom");
    return cJSON_IsObject(e) ? e : obj;
}

RENDER(bc_r_dump)
{
    int rc;
    const char *m1 = bc_slot_text(r[0], "MFR_MODEL_B0B5", &rc, err, errlen);
    if (rc)
        return rc;
    const char *m2 = bc_slot_text(r[0], "MFR_MODEL_B6B11", &rc, err, errlen);
    if (rc)
        return rc;
    long rev, cfg, bdir;
    if ((rc = bc_slot_raw(r[0], "MFR_REVISION_B0B5", &rev, err, errlen)) ||
        (rc = bc_slot_raw(r[0], "SYSTEM_CONFIG", &cfg, err, errlen)) ||
        (rc = bc_slot_raw(r[0], "BIDIRECTIONAL_CONFIG", &bdir, err, errlen)))
        return rc;
    const char *date = bc_slot_text(r[0], "MFR_DATE_B0B5", &rc, err, errlen);
    if (rc)
        return rc;
    double writes = 0;
    if (n < 2 || !bc_num(s_eeprom_block(r[1]), "writes_total", &writes)) {
        bc_fmt(err, errlen, "gateway eeprom reply has no writes_total");
        return BICCTL_EXIT_GATEWAY;
    }
    char model[32], firm[16], scfg[16], sbdir[16];
    snprintf(model, sizeof model, "%s%s", m1, m2);
    /* firmRev as the seed shows it: the first two revision bytes as a little-endian word */
    snprintf(firm, sizeof firm, "0x%lx", rev & 0xffff);
    snprintf(scfg, sizeof scfg, "0x%lx", cfg);
    snprintf(sbdir, sizeof sbdir, "0x%lx", bdir);
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        double dev;
        if (bc_num(r[0], "dev", &dev))
            cJSON_AddNumberToObject(o, "dev", dev);
        cJSON_AddStringToObject(o, "modelName", model);
        cJSON_AddStringToObject(o, "firmRev", firm);
        cJSON_AddStringToObject(o, "sysCfg", scfg);
        cJSON_AddStringToObject(o, "sysCfgBDir", sbdir);
        cJSON_AddStringToObject(o, "manDate", date);
        cJSON_AddNumberToObject(o, "cntWrite", writes);
        bc_print_json(o, out);
        cJSON_Delete(o);
        return 0;
    }
    fputs("dev-info:{'modelName': ", out);
    bc_print_pystr(out, model);
    fputs(", 'firmRev': ", out);
    bc_print_pystr(out, firm);
    fputs(", 'sysCfg': ", out);
    bc_print_pystr(out, scfg);
    fputs(", 'sysCfgBDir': ", out);
    bc_print_pystr(out, sbdir);
    fputs(", 'manDate': ", out);
    bc_print_pystr(out, date);
    fprintf(out, ", 'cntWrite': %.0f}\n", writes);
    return 0;
}

RENDER(bc_r_init)
{
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(r[0], "steps");
    const cJSON *s;
    cJSON_ArrayForEach(s, steps)
    {
        if (cJSON_IsString(s))
            fprintf(out, "%s\n", s->valuestring);
    }
    if (bc_true(r[0], "power_cycle_needed"))
        fputs("need repowering: switch the AC supply off and on to activate battery mode\n", out);
    fputs("init_mode done\n", out);
    return 0;
}

void bc_range(FILE *out, const cJSON *limits, const char *key, const char *unit)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(limits, key);
    const cJSON *lo = cJSON_GetArrayItem(l, 0), *hi = cJSON_GetArrayItem(l, 1);
    if (cJSON_IsNumber(lo) && cJSON_IsNumber(hi))
        fprintf(out, "%.2f-%.2f %s", lo->valuedouble, hi->valuedouble, unit);
    else
        fprintf(out, "? %s", unit);
}

static void s_print_lease(FILE *out, const cJSON *lease)
{
    const char *holder = bc_str(lease, "holder");
    double ttl;
    if (!holder)
        fputs("none\n", out);
    else if (bc_num(lease, "expires_in_s", &ttl))
        fprintf(out, "held by %s, expires in %.1f s\n", holder, ttl);
    else
        fprintf(out, "held by %s\n", holder);
}

static void s_print_eeprom_line(FILE *out, const cJSON *e)
{
    const char *policy = bc_str(e, "policy");
    double total = 0, interval;
    bc_num(e, "writes_total", &total);
    fprintf(out, "policy %s", policy ? policy : "?");
    if (policy && strcmp(policy, "budget") == 0 && bc_num(e, "min_interval_s", &interval))
        fprintf(out, " (min %.0f s between writes)", interval);
    fprintf(out, ", %.0f persisted writes", total);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(e, "writes"), *it;
    bool first = true;
    cJSON_ArrayForEach(it, w)
    {
        if (!cJSON_IsNumber(it) || it->valuedouble == 0)
            continue; /* the one-line view lists the registers that were written */
        fprintf(out, "%s%s %.0f", first ? " (" : ", ", it->string, it->valuedouble);
        first = false;
    }
    if (!first)
        fputc(')', out);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pending");
    first = true;
    cJSON_ArrayForEach(it, p)
    {
        fprintf(out, "%s%s", first ? ", pending " : ", ", it->string);
        if (cJSON_IsNumber(it))
            fprintf(out, " %g", it->valuedouble);
        first = false;
    }
    fputc('\n', out);
}

static void s_print_firmware(FILE *out, const cJSON *d)
{
    const cJSON *fw = cJSON_GetObjectItemCaseSensitive(d, "firmware");
    const cJSON *mcu = cJSON_GetObjectItemCaseSensitive(fw, "mcu"), *it;
    bool first = true;
    cJSON_ArrayForEach(it, mcu)
    {
        if (cJSON_IsString(it)) {
            fprintf(out, "%s%s", first ? "" : "/", it->valuestring);
            first = false;
        }
    }
    const char *raw = bc_str(fw, "raw");
    if (first && !raw)
        fputs("?", out);
    else if (raw)
        fprintf(out, "%s(%s)", first ? "" : " ", raw);
}

/* The header lines every device view shares (info and status). */
static void s_print_device_head(FILE *out, const cJSON *d)
{
    double dev = -1;
    bc_num(d, "dev", &dev);
    const char *model = bc_str(d, "model");
    fprintf(out, "device %.0f      %s, %s\n", dev, model ? model : "unknown model",
            bc_true(d, "online") ? "online" : "OFFLINE");
    fputs("firmware      ", out);
    s_print_firmware(out, d);
    fputc('\n', out);
    const char *mode = bc_str(d, "mode"), *pending = bc_str(d, "mode_pending");
    if (bicctl_npb_is(d)) { /* charger or psu: CURVE_CONFIG's, no CAN control bit */
        fprintf(out, "mode          %s\n", mode ? mode : "?");
        return;
    }
    fprintf(out, "mode          %s, CAN control %s", mode ? mode : "?",
            bc_true(d, "can_ctrl") ? "on" : "off");
    if (pending)
        fprintf(out, ", %s after the next power cycle", pending);
    fputc('\n', out);
}

static void s_print_device_tail(FILE *out, const cJSON *d)
{
    if (bicctl_npb_is(d)) {
        bicctl_npb_print_device(out, d);
        goto rest;
    }
    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(d, "limits");
    fputs("limits        charge ", out);
    bc_range(out, limits, "vout_v", "V");
    fputs(" ", out);
    bc_range(out, limits, "iout_a", "A");
    fputs("; discharge ", out);
    bc_range(out, limits, "rev_vout_v", "V");
    fputs(" ", out);
    bc_range(out, limits, "rev_iout_a", "A");
    fputc('\n', out);
    /* whether the gateway brought the [DEVICE] values onto the device */
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(d, "device_limits");
    const char *st = bc_str(dl, "state");
    if (st && strcmp(st, "ok") == 0)
        fputs("device values the [DEVICE] end voltages and current maxima are on the device\n",
              out);
    else if (st && strcmp(st, "failed") == 0)
        fprintf(out, "device values NOT APPLIED: %s; no setpoint until they are\n",
                bc_str(dl, "error") ? bc_str(dl, "error") : "?");
    else if (st && strcmp(st, "off") == 0)
        fputs("device values not written by the gateway ([GATEWAY] ApplyDeviceLimits = 0 or no "
              "[DEVICE] block)\n",
              out);
    else if (st)
        fputs("device values being applied\n", out);
rest:
    fputs("lease         ", out);
    s_print_lease(out, cJSON_GetObjectItemCaseSensitive(d, "lease"));
    fputs("eeprom        ", out);
    s_print_eeprom_line(out, cJSON_GetObjectItemCaseSensitive(d, "eeprom"));
}

RENDER(bc_r_info)
{
    if (a->json) {
        bc_print_result(r[0], out);
        return 0;
    }
    const cJSON *gw = cJSON_GetObjectItemCaseSensitive(r[0], "gateway");
    if (cJSON_IsObject(gw)) {
        const char *ver = bc_str(gw, "version"), *tr = bc_str(gw, "transport");
        const char *bus = bc_str(gw, "bus");
        double up = 0;
        bc_num(gw, "uptime_s", &up);
        fprintf(out, "gateway       bic-can-gateway %s, %s, bus %s, up %.0f s\n", ver ? ver : "?",
                tr ? tr : "?", bus ? bus : "?", up);
    }
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r[0], "devices"))
    {
        s_print_device_head(out, d);
        const char *serial = bc_str(d, "serial"), *date = bc_str(d, "date");
        fprintf(out, "serial        %s, made %s\n", serial ? serial : "?", date ? date : "?");
        const cJSON *caps = cJSON_GetObjectItemCaseSensitive(d, "caps");
        fprintf(out, "capabilities  fans %s, EEP_OFF %s\n", bc_true(caps, "fans") ? "yes" : "no",
                bc_true(caps, "eep_off") ? "yes" : "no");
        s_print_device_tail(out, d);
    }
    return 0;
}

RENDER(bc_r_devices)
{
    if (a->json) {
        bc_print_result(r[0], out);
        return 0;
    }
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r[0], "devices"))
    {
        double dev = -1;
        bc_num(d, "dev", &dev);
        const char *model = bc_str(d, "model");
        fprintf(out, "%.0f %s %s\n", dev, model ? model : "unknown",
                bc_true(d, "online") ? "online" : "offline");
    }
    return 0;
}

RENDER(bc_r_eeprom)
{
    if (a->json) {
        bc_print_result(r[0], out);
        return 0;
    }
    const cJSON *e = s_eeprom_block(r[0]);
    const char *policy = bc_str(e, "policy");
    double v;
    fprintf(out, "policy        %s", policy ? policy : "?");
    if (policy && strcmp(policy, "eep_off") == 0)
        fputs(" (EEP_OFF set: set-points stay in RAM, nothing is persisted)", out);
    else if (bc_num(e, "min_interval_s", &v))
        fprintf(out, " (at most one persisted write per %.0f s)", v);
    fputc('\n', out);
    fprintf(out, "writes total  %.0f\n", bc_num(e, "writes_total", &v) ? v : 0.0);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(e, "writes"))
    {
        if (cJSON_IsNumber(it))
            fprintf(out, "  %-22s %.0f\n", it->string, it->valuedouble);
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pending");
    if (cJSON_GetArraySize(p) == 0)
        fputs("pending       none\n", out);
    cJSON_ArrayForEach(it, p)
    {
        if (cJSON_IsNumber(it))
            fprintf(out, "pending       %s %g\n", it->string, it->valuedouble);
        else
            fprintf(out, "pending       %s\n", it->string);
    }
    return 0;
}

/* A register's engineering value from a get reply, or false (slot missing or an error). */
bool bc_val(const cJSON *get, const char *reg, double *out)
{
    const cJSON *slot = bc_slot(get, reg);
    if (!cJSON_IsObject(slot) || cJSON_GetObjectItemCaseSensitive(slot, "error"))
        return false;
    return bc_num(slot, "value", out);
}

/* A number with DEC decimals (and a sign when SIGNED) and its unit. */
static void s_print_fixed(FILE *out, double v, int dec, bool is_signed, const char *unit)
{
    fprintf(out, is_signed ? "%+.*f %s" : "%.*f %s", dec, v, unit);
}

static void s_print_val(FILE *out, const cJSON *get, const char *reg, int dec, bool is_signed,
                        const char *unit)
{
    double v;
    if (bc_val(get, reg, &v))
        s_print_fixed(out, v, dec, is_signed, unit);
    else
        fputs("n/a", out);
}

static void s_print_status_values(FILE *out, const cJSON *get)
{
    double v, i, x;
    fputs("output        ", out);
    if (bc_val(get, "OPERATION", &x))
        fputs(x != 0 ? "on" : "off", out);
    else
        fputs("n/a", out);
    fputs(", direction ", out);
    if (bc_val(get, "DIRECTION_CTRL", &x))
        fputs(x != 0 ? "discharge" : "charge", out);
    else
        fputs("n/a", out);
    fputc('\n', out);
    fputs("battery       ", out);
    s_print_val(out, get, "READ_VOUT", 2, false, "V");
    fputs("  ", out);
    s_print_val(out, get, "READ_IOUT", 2, true, "A");
    if (bc_val(get, "READ_VOUT", &v) && bc_val(get, "READ_IOUT", &i))
        fprintf(out, "  %+.1f W (%s)", v * i,
                i > 0   ? "charging"
                : i < 0 ? "discharging"
                        : "no current");
    fputc('\n', out);
    fputs("AC            ", out);
    s_print_val(out, get, "READ_VIN", 1, false, "V");
    fputs("\ntemperature   ", out);
    s_print_val(out, get, "READ_TEMPERATURE_1", 1, false, "degC");
    fputs("\nfans          ", out);
    double f1, f2;
    if (bc_val(get, "READ_FAN_SPEED_1", &f1) && bc_val(get, "READ_FAN_SPEED_2", &f2))
        fprintf(out, "%.0f / %.0f RPM", f1, f2);
    else
        fputs("n/a (not reported by this firmware)", out);
    fputs("\nset-points    charge ", out);
    s_print_val(out, get, "VOUT_SET", 2, false, "V");
    fputc(' ', out);
    s_print_val(out, get, "IOUT_SET", 2, false, "A");
    fputs("; discharge ", out);
    s_print_val(out, get, "REVERSE_VOUT_SET", 2, false, "V");
    fputc(' ', out);
    s_print_val(out, get, "REVERSE_IOUT_SET", 2, false, "A");
    fputs("\nfaults        ", out);
    long raw;
    char dummy[8];
    if (bc_slot_raw(get, "FAULT_STATUS", &raw, dummy, sizeof dummy) == 0) {
        bool any = false;
        for (size_t k = 0; k < sizeof s_faults / sizeof s_faults[0]; k++) {
            if ((raw >> s_faults[k].bit) & 1) {
                fprintf(out, "%s%s", any ? ", " : "", s_faults[k].name);
                any = true;
            }
        }
        if (!any)
            fputs("none", out);
    } else {
        fputs("n/a", out);
    }
    fputs("\nsystem        ", out);
    if (bc_slot_raw(get, "SYSTEM_STATUS", &raw, dummy, sizeof dummy) == 0)
        fprintf(out, "%s, DC %s, PFC %s, %s, EEPROM %s", raw & 1 ? "master" : "slave",
                raw & 2 ? "ok" : "too low", raw & 4 ? "ok" : "off",
                raw & 32 ? "ready" : "initialising", raw & 64 ? "ERROR" : "ok");
    else
        fputs("n/a", out);
    fputc('\n', out);
}

RENDER(bc_r_status)
{
    const cJSON *info = r[0];
    cJSON *all = a->json ? cJSON_CreateArray() : NULL;
    size_t online = 0, shown = 0;
    int rc = 0;
    const cJSON *d;
    const cJSON *devs[BICCTL_STATUS_DEVS], *gets[BICCTL_STATUS_DEVS]; /* for the groups */
    for (size_t k = 0; (d = bc_status_device(a, info, k, false)) != NULL; k++) {
        const cJSON *get = NULL;
        if (bc_true(d, "online")) {
            if (1 + online < n)
                get = r[1 + online];
            online++;
            if (get && !bc_true(get, "ok")) { /* shown without its registers */
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(get, "error");
                const char *code = bc_str(e, "code"), *text = bc_str(e, "message");
                double dev = -1;
                bc_num(d, "dev", &dev);
                bc_fmt(err, errlen, "device %.0f: registers not read: %s: %s", dev,
                       code ? code : "?", text ? text : "no message");
                rc = BICCTL_EXIT_DEVICE;
            }
        } else {
            double dev = -1;
            bc_num(d, "dev", &dev);
            bc_fmt(err, errlen, "device %.0f is offline", dev);
            rc = BICCTL_EXIT_DEVICE;
        }
        if (all) {
            cJSON *o = cJSON_Duplicate(d, true);
            const cJSON *vals = get ? cJSON_GetObjectItemCaseSensitive(get, "values") : NULL;
            cJSON_AddItemToObject(o, "values",
                                  vals ? cJSON_Duplicate(vals, true) : cJSON_CreateNull());
            cJSON_AddItemToArray(all, o);
        } else {
            if (shown)
                fputc('\n', out);
            s_print_device_head(out, d);
            if (get && bicctl_npb_is(d))
                bicctl_npb_print_status(out, d, get);
            else if (get)
                s_print_status_values(out, get);
            s_print_device_tail(out, d);
        }
        if (shown < BICCTL_STATUS_DEVS) {
            devs[shown] = d;
            gets[shown] = get;
        }
        shown++;
    }
    size_t listed = shown < BICCTL_STATUS_DEVS ? shown : BICCTL_STATUS_DEVS;
    if (!all)
        bicctl_group_print(out, devs, gets, listed);
    if (all) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "devices", all);
        cJSON_AddItemToObject(o, "groups", bicctl_group_json(devs, gets, listed));
        bc_print_json(o, out);
        cJSON_Delete(o);
    }
    if (shown == 0) {
        if (a->dev >= 0)
            bc_fmt(err, errlen, "the gateway knows no device %d", a->dev);
        else
            bc_fmt(err, errlen, "the gateway knows no devices");
        return BICCTL_EXIT_DEVICE;
    }
    return rc;
}

int bicctl_render(const bicctl_cmd_t *cmd, const bicctl_args_t *a, cJSON *const *replies, size_t n,
                  FILE *out, char *err, size_t errlen)
{
    if (!cmd->render || n == 0) {
        bc_fmt(err, errlen, "%s: nothing to render", cmd->name);
        return BICCTL_EXIT_GATEWAY;
    }
    if (a->json && (cmd->kind == K_GET || cmd->kind == K_SET || cmd->kind == K_FIXED ||
                    (cmd->kind == K_OP && strcmp(cmd->op, "init") == 0))) {
        /* still check the slots: a read that failed is an error in JSON mode too */
        for (size_t i = 0; cmd->kind == K_GET && cmd->regs[i]; i++) {
            int rc = bc_slot_check(replies[0], cmd->regs[i], err, errlen);
            if (rc)
                return rc;
        }
        bc_print_result(replies[0], out);
        return 0;
    }
    return cmd->render(cmd, a, replies, n, out, err, errlen);
}

/* ---------------------------------------------------------------- watch */

static void s_print_time(FILE *out, const cJSON *msg)
{
    double ts;
    if (!bc_num(msg, "ts_ms", &ts)) {
        fputs("--:--:--.---", out);
        return;
    }
    time_t sec = (time_t)(ts / 1000);
    struct tm tm;
    localtime_r(&sec, &tm);
    fprintf(out, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, (int)fmod(ts, 1000.0));
}

static void s_print_num_or_na(FILE *out, const cJSON *msg, const char *key, int dec, bool is_signed,
                              const char *unit)
{
    double v;
    if (bc_num(msg, key, &v))
        s_print_fixed(out, v, dec, is_signed, unit);
    else
        fputs("n/a", out);
}

int bicctl_render_pub(const char *topic, const cJSON *msg, int dev, bool json, FILE *out)
{
    if (!topic || !cJSON_IsObject(msg))
        return 0;
    bool is_tel = strncmp(topic, "tel/", 4) == 0, is_evt = strncmp(topic, "evt/", 4) == 0;
    bool is_gw = strcmp(topic, "gw") == 0;
    if (!is_tel && !is_evt && !is_gw)
        return 0;
    if (is_gw && dev >= 0)
        return 0;
    if ((is_tel || is_evt) && dev >= 0) {
        char *end = NULL;
        long d = strtol(topic + 4, &end, 10);
        if (end == topic + 4 || *end != '\0' || d != dev)
            return 0;
    }
    if (json) {
        cJSON *copy = cJSON_Duplicate(msg, true);
        cJSON_AddStringToObject(copy, "topic", topic);
        bc_print_json(copy, out);
        cJSON_Delete(copy);
        return 1;
    }
    s_print_time(out, msg);
    if (is_gw) {
        const char *bus = bc_str(msg, "bus");
        fprintf(out, " gateway bus %s", bus ? bus : "?");
        static const char *const keys[] = {"frames_tx", "frames_rx", "errors",      "timeouts",
                                           "retries",   "stray",     "queue_depth", NULL};
        for (size_t i = 0; keys[i]; i++) {
            double v;
            if (bc_num(msg, keys[i], &v))
                fprintf(out, " %s %.0f", keys[i], v);
        }
        fputc('\n', out);
        return 1;
    }
    fprintf(out, " dev %s", topic + 4);
    if (is_evt) {
        const char *ev = bc_str(msg, "event");
        fprintf(out, " event %s", ev ? ev : "?");
        const cJSON *it;
        cJSON_ArrayForEach(it, msg)
        {
            if (!it->string || strcmp(it->string, "v") == 0 || strcmp(it->string, "dev") == 0 ||
                strcmp(it->string, "ts_ms") == 0 || strcmp(it->string, "event") == 0)
                continue;
            if (cJSON_IsString(it)) {
                fprintf(out, " %s=%s", it->string, it->valuestring);
            } else {
                char *t = cJSON_PrintUnformatted(it);
                fprintf(out, " %s=%s", it->string, t ? t : "?");
                cJSON_free(t);
            }
        }
        fputc('\n', out);
        return 1;
    }
    if (!bc_true(msg, "online")) {
        fputs(" OFFLINE\n", out);
        return 1;
    }
    fputs(" ", out);
    s_print_num_or_na(out, msg, "dc_v", 2, false, "V");
    fputs(" ", out);
    s_print_num_or_na(out, msg, "dc_a", 2, true, "A");
    fputs(" ", out);
    s_print_num_or_na(out, msg, "dc_w", 1, true, "W");
    fputs(" AC ", out);
    s_print_num_or_na(out, msg, "ac_v", 1, false, "V");
    fputs(" ", out);
    s_print_num_or_na(out, msg, "temp_c", 1, false, "degC");
    double op;
    const char *dir = bc_str(msg, "direction");
    fprintf(out, " output %s %s", bc_num(msg, "operation", &op) ? (op != 0 ? "on" : "off") : "n/a",
            dir ? dir : "n/a");
    const cJSON *fault = cJSON_GetObjectItemCaseSensitive(msg, "fault");
    bool any = false;
    for (size_t k = 0; k < sizeof s_faults / sizeof s_faults[0]; k++) {
        if (bc_true(fault, s_faults[k].name)) {
            fprintf(out, "%s%s", any ? "," : " faults ", s_faults[k].name);
            any = true;
        }
    }
    if (!any)
        fputs(" faults none", out);
    const char *holder = bc_str(cJSON_GetObjectItemCaseSensitive(msg, "lease"), "holder");
    if (holder)
        fprintf(out, " lease %s", holder);
    fputc('\n', out);
    return 1;
}
