/*
 * bicctl_group - the groups of `bicctl status` (bicctl_group.h).
 */
#include "bicctl_group.h"

#include <stdlib.h>
#include <string.h>

#include "bicctl_cmd_int.h"

#define INST_LEN 48

bool bicctl_group_holder(const char *holder, int *ctl, char *inst, size_t instlen)
{
    static const char prefix[] = "charge-ctl-";
    if (!holder || strncmp(holder, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *p = holder + sizeof prefix - 1;
    char *end;
    long x = strtol(p, &end, 10);
    if (end == p || end - p > 2 || x < 0 || x > 67 || *end != '-')
        return false;
    p = end + 1;
    long pid = strtol(p, &end, 10);
    if (end == p || end - p > 9 || pid < 1 || (*end && strncmp(end, "-u", 2) != 0))
        return false;
    size_t inst_n = (size_t)(end - holder);
    if (*end) { /* -u<Y>, or -u<Y>g<G> for a device on the controller's gateway G */
        const char *y = end + 2;
        long dev = strtol(y, &end, 10);
        if (end == y || end - y > 2 || dev < 0 || dev > 67)
            return false;
        if (*end == 'g') {
            const char *g = end + 1;
            long gw = strtol(g, &end, 10);
            if (end != g + 1 || gw < 1 || gw > 7)
                return false;
        }
        if (*end)
            return false;
    }
    if (inst_n >= instlen)
        return false;
    memcpy(inst, holder, inst_n);
    inst[inst_n] = '\0';
    *ctl = (int)x;
    return true;
}

static const char *s_holder(const cJSON *dev)
{
    const cJSON *lease = cJSON_GetObjectItemCaseSensitive(dev, "lease");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(lease, "holder");
    return cJSON_IsString(h) ? h->valuestring : NULL;
}

/* The instance holding devs[k]'s lease as a group's controller ("" when none). */
static void s_inst(const cJSON *dev, int *ctl, char *inst)
{
    if (!bicctl_group_holder(s_holder(dev), ctl, inst, INST_LEN))
        inst[0] = '\0';
}

/* Does inst hold dev's lease? */
static bool s_member(const cJSON *dev, const char *inst)
{
    int x;
    char other[INST_LEN];
    s_inst(dev, &x, other);
    return strcmp(other, inst) == 0;
}

/* The number of devices whose lease inst holds. */
static size_t s_count(const cJSON *const *devs, size_t n, const char *inst)
{
    size_t c = 0;
    for (size_t k = 0; k < n; k++)
        c += s_member(devs[k], inst);
    return c;
}

/* Is k the first device of a group (an instance with two or more leases, seen first at k)? */
static bool s_group_at(const cJSON *const *devs, size_t n, size_t k, int *ctl, char *inst)
{
    s_inst(devs[k], ctl, inst);
    if (!inst[0] || s_count(devs, n, inst) < 2)
        return false;
    for (size_t j = 0; j < k; j++)
        if (s_member(devs[j], inst))
            return false;
    return true;
}

/* A device's command as its registers hold it: the mode (NULL: unknown) and the current set
 * for the direction (< 0: unknown). */
static const char *s_mode(const cJSON *get, double *set_a)
{
    double op, dir;
    *set_a = -1;
    if (!get || !bicctl_i_val(get, "OPERATION", &op))
        return NULL;
    if (op == 0)
        return "off";
    if (!bicctl_i_val(get, "DIRECTION_CTRL", &dir))
        return NULL;
    if (!bicctl_i_val(get, dir != 0 ? "REVERSE_IOUT_SET" : "IOUT_SET", set_a))
        *set_a = -1;
    return dir != 0 ? "discharge" : "charge";
}

static double s_dev(const cJSON *dev)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(dev, "dev");
    return cJSON_IsNumber(d) ? d->valuedouble : -1;
}

void bicctl_group_print(FILE *out, const cJSON *const *devs, const cJSON *const *gets, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        int ctl;
        char inst[INST_LEN];
        if (!s_group_at(devs, n, k, &ctl, inst))
            continue;
        fprintf(out, "\ngroup %-7d %s drives devices", ctl, inst);
        const char *sep = " ";
        for (size_t j = k; j < n; j++) {
            if (s_member(devs[j], inst)) {
                fprintf(out, "%s%.0f", sep, s_dev(devs[j]));
                sep = ", ";
            }
        }
        fputc('\n', out);
        double sum_w = 0;
        bool all_w = true;
        for (size_t j = k; j < n; j++) {
            if (!s_member(devs[j], inst))
                continue;
            double set_a, v, a;
            const char *mode = s_mode(gets[j], &set_a);
            fprintf(out, "  device %-4.0f ", s_dev(devs[j]));
            if (!mode)
                fputs("n/a", out);
            else if (set_a >= 0)
                fprintf(out, "%s %.2f A", mode, set_a);
            else
                fputs(mode, out);
            if (gets[j] && bicctl_i_val(gets[j], "READ_VOUT", &v) &&
                bicctl_i_val(gets[j], "READ_IOUT", &a)) {
                fprintf(out, "; output %.2f V %+.2f A %+.1f W\n", v, a, v * a);
                sum_w += v * a;
            } else {
                fputs("; output n/a\n", out);
                all_w = false;
            }
        }
        if (all_w)
            fprintf(out, "  together    %+.1f W\n", sum_w);
    }
}

static void s_num_or_null(cJSON *o, const char *key, bool ok, double v)
{
    if (ok)
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *bicctl_group_json(const cJSON *const *devs, const cJSON *const *gets, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t k = 0; arr && k < n; k++) {
        int ctl;
        char inst[INST_LEN];
        if (!s_group_at(devs, n, k, &ctl, inst))
            continue;
        cJSON *g = cJSON_CreateObject();
        cJSON_AddNumberToObject(g, "controller", ctl);
        cJSON_AddStringToObject(g, "holder", inst);
        cJSON *list = cJSON_AddArrayToObject(g, "devices");
        for (size_t j = k; j < n; j++) {
            if (!s_member(devs[j], inst))
                continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "dev", s_dev(devs[j]));
            double set_a, v = 0, a = 0;
            const char *mode = s_mode(gets[j], &set_a);
            if (mode)
                cJSON_AddStringToObject(e, "mode", mode);
            else
                cJSON_AddNullToObject(e, "mode");
            s_num_or_null(e, "current_set_a", set_a >= 0, set_a);
            bool out = gets[j] && bicctl_i_val(gets[j], "READ_VOUT", &v) &&
                       bicctl_i_val(gets[j], "READ_IOUT", &a);
            s_num_or_null(e, "dc_v", out, v);
            s_num_or_null(e, "dc_a", out, a);
            s_num_or_null(e, "power_w", out, v * a);
            cJSON_AddItemToArray(list, e);
        }
        cJSON_AddItemToArray(arr, g);
    }
    return arr;
}
