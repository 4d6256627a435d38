/*
 * meter: smart-meter payload parsing (see meter.h).
 */
#include "meter.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "jget.h"

void meter_cfg_defaults(meter_cfg_t *m)
{
    memset(m, 0, sizeof *m);
    m->scale = 1.0;
    m->max_abs_w = 30000;
}

double meter_unit_scale(const char *unit)
{
    if (!unit || !*unit || strcasecmp(unit, "W") == 0)
        return 1.0;
    if (strcasecmp(unit, "kW") == 0)
        return 1000.0;
    if (strcasecmp(unit, "mW") == 0)
        return 0.001;
    return -1;
}

int meter_cfg_from_config(const struct config_t *cfg, int id, meter_cfg_t *m, char *err,
                          size_t errlen)
{
    const char *cc = "CHARGE_CONTROL";
    meter_cfg_defaults(m);
    const char *path = config_str(cfg, cc, "Id/%d/MeterJsonPath", id);
    if (strlen(path) >= sizeof m->json_path || (*path && jpath_valid(path) != 0)) {
        snprintf(err, errlen,
                 "[CHARGE_CONTROL] Id/%d/MeterJsonPath '%s' is not a valid path; "
                 "allowed: dot-separated keys with [n] subscripts, up to %d characters",
                 id, path, METER_MAX_PATH - 1);
        return -1;
    }
    snprintf(m->json_path, sizeof m->json_path, "%s", path);
    const char *unit = config_str(cfg, cc, "Id/%d/MeterUnit", id);
    m->scale = meter_unit_scale(unit);
    if (m->scale < 0) {
        snprintf(err, errlen,
                 "[CHARGE_CONTROL] Id/%d/MeterUnit '%s' is not a unit; allowed: "
                 "W, kW, mW",
                 id, unit);
        return -1;
    }
    m->invert = config_bool(cfg, cc, "Id/%d/MeterInvert", id);
    m->max_abs_w = (double)config_int(cfg, cc, "Id/%d/MeterMaxAbsW", id);
    return 0;
}

int meter_parse(const meter_cfg_t *m, const char *payload, size_t len, double *out_w, char *err,
                size_t errlen)
{
    char buf[METER_MAX_PAYLOAD + 1];
    double v = 0;
    if (!payload || len == 0) {
        snprintf(err, errlen, "empty payload; expected a number in W%s",
                 m->json_path[0] ? " or JSON" : "");
        return -1;
    }
    if (len > METER_MAX_PAYLOAD) {
        snprintf(err, errlen, "payload of %zu bytes is too long; allowed up to %d", len,
                 METER_MAX_PAYLOAD);
        return -1;
    }
    memcpy(buf, payload, len);
    buf[len] = '\0';
    if (strlen(buf) != len) {
        snprintf(err, errlen, "payload contains a NUL byte");
        return -1;
    }
    if (m->json_path[0] == '\0') {
        if (num_parse(buf, &v) != 0) {
            snprintf(err, errlen,
                     "'%.40s' is not a plain number; expected e.g. -345 or 123.4 "
                     "(for JSON set MeterJsonPath)",
                     buf);
            return -1;
        }
    } else {
        cJSON *root = cJSON_ParseWithLength(buf, len);
        if (!root) {
            snprintf(err, errlen, "'%.40s' is not valid JSON (MeterJsonPath is '%s')", buf,
                     m->json_path);
            return -1;
        }
        int rc = jpath_number(root, m->json_path, &v);
        cJSON_Delete(root);
        if (rc != 0) {
            snprintf(err, errlen, "no number at '%s' in '%.40s'", m->json_path, buf);
            return -1;
        }
    }
    if (!isfinite(v)) {
        snprintf(err, errlen, "value is not finite");
        return -1;
    }
    v *= m->scale;
    if (m->invert)
        v = -v;
    if (fabs(v) > m->max_abs_w) {
        snprintf(err, errlen, "%.1f W is beyond the plausibility limit of %.0f W", v, m->max_abs_w);
        return -1;
    }
    *out_w = v + 0.0; /* no negative zero */
    return 0;
}
