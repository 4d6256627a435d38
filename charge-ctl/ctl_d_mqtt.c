/*
 * ctl_d_mqtt: bic-charge-ctl's MQTT payloads (see ctl_d_mqtt.h). Discovery payloads use Home
 * Assistant's documented abbreviations, as the bridge's do.
 */
#include "ctl_d_mqtt.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

static const char *const s_state_names[CTLD_ST_COUNT] = {
    [CTLD_ST_DISABLED] = "disabled", [CTLD_ST_NO_LEASE] = "no_lease", [CTLD_ST_SAFE] = "safe",
    [CTLD_ST_RUNNING] = "running",   [CTLD_ST_PAUSED] = "paused",     [CTLD_ST_STOPPED] = "stopped",
};

const char *ctld_state_name(ctld_state_t st)
{
    return (unsigned)st < CTLD_ST_COUNT ? s_state_names[st] : "?";
}

/* ---- status ---------------------------------------------------------------------------- */

static double s_round(double v, double q)
{
    return round(v / q) * q;
}

static void s_str_or_null(cJSON *o, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

char *ctld_status_json(const ctld_status_t *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddBoolToObject(o, "enabled", s->enabled);
    cJSON_AddStringToObject(o, "mode", ctld_state_name(s->state));
    s_str_or_null(o, "reason", s->reason);
    cJSON_AddNumberToObject(o, "target_w", s_round(s->target_w, 1));
    if (s->meter_valid) {
        cJSON_AddNumberToObject(o, "meter_w", s_round(s->meter_w, 0.1));
        cJSON_AddNumberToObject(o, "meter_age_s", s_round(s->meter_age_s, 0.1));
    } else {
        cJSON_AddNullToObject(o, "meter_w");
        cJSON_AddNullToObject(o, "meter_age_s");
    }
    cJSON_AddBoolToObject(o, "meter_stale", s->meter_stale);
    cJSON_AddNumberToObject(o, "meter_errors", (double)s->meter_errors);
    cJSON *sp = cJSON_AddObjectToObject(o, "setpoint");
    if (sp) {
        cJSON_AddStringToObject(sp, "mode", s->sp_mode ? s->sp_mode : "none");
        cJSON_AddNumberToObject(sp, "current_a", s_round(s->sp_current_a, 0.01));
        cJSON_AddNumberToObject(sp, "power_w", s_round(s->sp_power_w, 1));
    }
    cJSON *lim = cJSON_AddObjectToObject(o, "limit");
    if (lim) {
        bool active = s->limit && strcmp(s->limit, "none") != 0;
        cJSON_AddBoolToObject(lim, "active", active);
        s_str_or_null(lim, "why", active ? s->limit : NULL);
    }
    if (s->soc_valid)
        cJSON_AddNumberToObject(o, "soc_pct", s_round(s->soc_pct, 0.1));
    else
        cJSON_AddNullToObject(o, "soc_pct");
    cJSON *blk = cJSON_AddObjectToObject(o, "discharge_block");
    if (blk) {
        cJSON_AddBoolToObject(blk, "active", s->block_active);
        s_str_or_null(blk, "why",
                      s->block_active && s->block_why && *s->block_why ? s->block_why : NULL);
    }
    cJSON *fo = cJSON_AddObjectToObject(o, "follow");
    if (fo) {
        cJSON_AddBoolToObject(fo, "problem", s->follow_problem);
        cJSON_AddBoolToObject(fo, "safe", s->follow_safe);
        s_str_or_null(fo, "cause", s->follow_problem ? s->follow_cause : NULL);
        s_str_or_null(fo, "message", s->follow_problem ? s->follow_message : NULL);
        cJSON_AddNumberToObject(fo, "count", (double)s->follow_count);
    }
    cJSON *ls = cJSON_AddObjectToObject(o, "lease");
    if (ls) {
        cJSON_AddBoolToObject(ls, "held", s->lease_held);
        s_str_or_null(ls, "client", s->lease_client);
        s_str_or_null(ls, "note", s->lease_held ? NULL : s->lease_note);
    }
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

char *ctld_fault_json(bool active, uint32_t count, const char *cause, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON *f = cJSON_AddObjectToObject(o, "follow");
    if (f) {
        cJSON_AddNumberToObject(f, "active", active ? 1 : 0);
        cJSON_AddNumberToObject(f, "cnt", (double)count);
        cJSON_AddStringToObject(f, "desc", "device does not follow the setpoint");
        s_str_or_null(f, "cause", active ? cause : NULL);
        s_str_or_null(f, "message", active ? message : NULL);
    }
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* ---- control/set ----------------------------------------------------------------------- */

int ctld_parse_enable(const void *payload, size_t len, bool *on, const char **code, char *err,
                      size_t errlen)
{
    static const char allowed[] = "allowed: 1 or 0 (also on/off, true/false)";
    if (!payload || len == 0) {
        *code = "empty";
        snprintf(err, errlen, "empty payload; %s", allowed);
        return -1;
    }
    if (len > CTLD_MAX_CMD) {
        *code = "too_large";
        snprintf(err, errlen, "payload of %zu bytes is longer than %d; %s", len, CTLD_MAX_CMD,
                 allowed);
        return -1;
    }
    if (memchr(payload, '\0', len)) {
        *code = "bad_request";
        snprintf(err, errlen, "payload contains a NUL byte; %s", allowed);
        return -1;
    }
    char buf[CTLD_MAX_CMD + 1];
    memcpy(buf, payload, len);
    buf[len] = '\0';
    char *b = buf;
    while (*b && isspace((unsigned char)*b))
        b++;
    char *e = b + strlen(b);
    while (e > b && isspace((unsigned char)e[-1]))
        *--e = '\0';
    /* Only printable text is echoed back into the message. */
    for (char *p = b; *p; p++)
        if (!isprint((unsigned char)*p))
            *p = '?';
    if (strcmp(b, "1") == 0 || strcasecmp(b, "on") == 0 || strcasecmp(b, "true") == 0) {
        *on = true;
        return 0;
    }
    if (strcmp(b, "0") == 0 || strcasecmp(b, "off") == 0 || strcasecmp(b, "false") == 0) {
        *on = false;
        return 0;
    }
    *code = "bad_request";
    snprintf(err, errlen, "'%s' is not a switch value; %s", b, allowed);
    return -1;
}

int ctld_parse_state(const void *payload, size_t len)
{
    if (!payload || len == 0 || len > CTLD_MAX_STATE_CMD || memchr(payload, '\0', len))
        return -1;
    char buf[CTLD_MAX_STATE_CMD + 1];
    memcpy(buf, payload, len);
    buf[len] = '\0';
    const char *b = buf;
    while (isspace((unsigned char)*b))
        b++;
    double v;
    if (*b == '{') {
        cJSON *o = cJSON_Parse(b);
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(o, "val");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        /* an id the bridge refuses (not a string of at most 128 characters or a number)
         * makes the command one it refuses */
        bool id_ok =
            !id || cJSON_IsNumber(id) || (cJSON_IsString(id) && strlen(id->valuestring) <= 128);
        bool num = cJSON_IsObject(o) && cJSON_IsNumber(val) && id_ok;
        v = num ? val->valuedouble : -1;
        cJSON_Delete(o);
    } else {
        char *end;
        v = strtod(b, &end);
        while (isspace((unsigned char)*end))
            end++;
        if (end == b || *end)
            return -1;
    }
    return v == 0 ? 0 : v == 1 ? 1 : v == 2 ? 2 : -1;
}

char *ctld_result_json(bool ok, const char *request, bool enabled, const char *code,
                       const char *message)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddBoolToObject(o, "ok", ok);
    cJSON_AddStringToObject(o, "cmd", "control");
    if (request)
        cJSON_AddStringToObject(o, "request", request);
    cJSON_AddBoolToObject(o, "enabled", enabled);
    if (!ok) {
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        if (e) {
            cJSON_AddStringToObject(e, "code", code ? code : "internal");
            cJSON_AddStringToObject(e, "message", message ? message : "");
        }
    }
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* ---- the group ---------------------------------------------------------------------- */

char *ctld_group_json(const ctld_group_view_t *v, bool with_energy)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "setpoint_w", round(v->setpoint_w));
    int online = 0;
    cJSON *units = cJSON_AddArrayToObject(o, "units");
    for (int i = 0; i < v->n && i < 8; i++) {
        const ctld_group_unit_view_t *u = &v->unit[i];
        online += u->online && u->lease_held;
        cJSON *e = cJSON_CreateObject();
        if (!e)
            continue;
        cJSON_AddNumberToObject(e, "dev", u->dev);
        if (u->gw)
            cJSON_AddNumberToObject(e, "gw", u->gw);
        cJSON_AddBoolToObject(e, "online", u->online);
        cJSON_AddBoolToObject(e, "lease", u->lease_held);
        cJSON_AddStringToObject(e, "state", u->state);
        cJSON_AddStringToObject(e, "mode", u->mode);
        cJSON_AddNumberToObject(e, "current_a", round(u->current_a * 100) / 100);
        cJSON_AddNumberToObject(e, "power_w", round(u->power_w));
        if (with_energy)
            cJSON_AddNumberToObject(e, "energy_wh", round(u->energy_wh * 10) / 10);
        if (u->follow)
            cJSON_AddStringToObject(e, "follow", u->follow);
        else
            cJSON_AddNullToObject(e, "follow");
        cJSON_AddItemToArray(units, e);
    }
    cJSON_AddNumberToObject(o, "online", online);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---- Home Assistant discovery ---------------------------------------------------------- */

void ctld_list_clear(ctld_list_t *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->msgs[i].topic);
        free(list->msgs[i].payload);
    }
    free(list->msgs);
    list->msgs = NULL;
    list->count = list->cap = 0;
}

static char *s_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *s_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* Adds a formatted string member; false when out of memory. */
static bool s_add_fmt(cJSON *o, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool s_add_fmt(cJSON *o, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    bool ok = s && cJSON_AddStringToObject(o, key, s);
    free(s);
    return ok;
}

static cJSON *s_device(const ctld_ha_ctx_t *ctx)
{
    cJSON *d = cJSON_CreateObject();
    if (!d)
        return NULL;
    cJSON *ids = cJSON_AddArrayToObject(d, "ids");
    char *id = s_fmt("%s_ctl_%d", ctx->node, ctx->dev);
    if (ids && id)
        cJSON_AddItemToArray(ids, cJSON_CreateString(id));
    free(id);
    s_add_fmt(d, "name", "bic2mqtt controller #%d", ctx->dev);
    cJSON_AddStringToObject(d, "mf", "bic2mqtt");
    cJSON_AddStringToObject(d, "mdl", "bic-charge-ctl");
    cJSON_AddStringToObject(d, "sw", ctx->sw_version);
    /* no via_device: the bridge's config may reach Home Assistant after this one */
    return d;
}

/* The part every entity shares: name, unique id, state topic, availability, device,
 * origin. */
static cJSON *s_entity(const ctld_ha_ctx_t *ctx, const char *object, const char *name,
                       const char *tpl)
{
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return NULL;
    cJSON_AddStringToObject(e, "name", name);
    s_add_fmt(e, "uniq_id", "%s_ctl%d_%s", ctx->node, ctx->dev, object);
    s_add_fmt(e, "stat_t", "%s/inv/%d/control", ctx->topic_main, ctx->dev);
    cJSON_AddStringToObject(e, "val_tpl", tpl);
    cJSON *avty = cJSON_AddArrayToObject(e, "avty");
    cJSON *a = cJSON_CreateObject();
    if (a) {
        s_add_fmt(a, "topic", "%s/ctl/%d/state", ctx->topic_main, ctx->dev);
        cJSON_AddStringToObject(a, "payload_available", ctx->avail_online);
        cJSON_AddStringToObject(a, "payload_not_available", ctx->avail_offline);
        if (avty)
            cJSON_AddItemToArray(avty, a);
        else
            cJSON_Delete(a);
    }
    cJSON *dev = s_device(ctx);
    if (dev)
        cJSON_AddItemToObject(e, "dev", dev);
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "name", "bic2mqtt");
        cJSON_AddStringToObject(o, "sw", ctx->sw_version);
        cJSON_AddItemToObject(e, "o", o);
    }
    return e;
}

/* Serialises e (consumed) as the config of <component>/<node>/ctl<dev>_<object>. */
static int s_emit(const ctld_ha_ctx_t *ctx, ctld_list_t *out, const char *component,
                  const char *object, cJSON *e)
{
    if (!e)
        return -1;
    char *payload = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    char *topic =
        s_fmt("%s/%s/%s/ctl%d_%s/config", ctx->prefix, component, ctx->node, ctx->dev, object);
    if (!payload || !topic)
        goto fail;
    if (out->count == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 8;
        ctld_msg_t *m = realloc(out->msgs, cap * sizeof *m);
        if (!m)
            goto fail;
        out->msgs = m;
        out->cap = cap;
    }
    out->msgs[out->count].topic = topic;
    out->msgs[out->count].payload = payload;
    out->count++;
    return 0;
fail:
    free(payload);
    free(topic);
    return -1;
}

static int s_sensor(const ctld_ha_ctx_t *ctx, ctld_list_t *out, const char *object,
                    const char *name, const char *tpl, const char *dev_cla, const char *unit,
                    const char *ent_cat, int precision)
{
    cJSON *e = s_entity(ctx, object, name, tpl);
    if (!e)
        return -1;
    cJSON_AddStringToObject(e, "dev_cla", dev_cla);
    cJSON_AddStringToObject(e, "stat_cla", "measurement");
    cJSON_AddStringToObject(e, "unit_of_meas", unit);
    if (ent_cat)
        cJSON_AddStringToObject(e, "ent_cat", ent_cat);
    cJSON_AddNumberToObject(e, "sug_dsp_prc", precision);
    return s_emit(ctx, out, "sensor", object, e);
}

/* A power sensor reading the group topic, with attributes from it when attr_tpl is given. */
static int s_group_sensor(const ctld_ha_ctx_t *ctx, ctld_list_t *out, const char *object,
                          const char *name, const char *tpl, const char *attr_tpl)
{
    cJSON *e = s_entity(ctx, object, name, tpl);
    char *topic = s_fmt("%s/ctl/%d/group", ctx->topic_main, ctx->dev);
    if (!e || !topic) {
        cJSON_Delete(e);
        free(topic);
        return -1;
    }
    cJSON_ReplaceItemInObject(e, "stat_t", cJSON_CreateString(topic));
    if (attr_tpl) {
        cJSON_AddStringToObject(e, "json_attr_t", topic);
        cJSON_AddStringToObject(e, "json_attr_tpl", attr_tpl);
    }
    free(topic);
    cJSON_AddStringToObject(e, "dev_cla", "power");
    cJSON_AddStringToObject(e, "stat_cla", "measurement");
    cJSON_AddStringToObject(e, "unit_of_meas", "W");
    cJSON_AddNumberToObject(e, "sug_dsp_prc", 0);
    return s_emit(ctx, out, "sensor", object, e);
}

/* A group: its setpoint, and each unit's share with its state and command as attributes. */
static int s_group_disc(const ctld_ha_ctx_t *ctx, ctld_list_t *out)
{
    if (ctx->n_group < 2)
        return 0;
    int rc = s_group_sensor(ctx, out, "group_setpoint", "Group setpoint",
                            "{{ value_json.setpoint_w }}", NULL);
    for (int i = 0; i < ctx->n_group && i < 8; i++) {
        char object[32], name[64], tpl[96], attr[96];
        int gw = ctx->group_gw ? ctx->group_gw[i] : 0;
        if (gw) { /* Y@G: devices on two buses may share an address */
            snprintf(object, sizeof object, "unit%d_g%d_share", ctx->group[i], gw);
            snprintf(name, sizeof name, "Unit %d@%d share", ctx->group[i], gw);
        } else {
            snprintf(object, sizeof object, "unit%d_share", ctx->group[i]);
            snprintf(name, sizeof name, "Unit %d share", ctx->group[i]);
        }
        snprintf(tpl, sizeof tpl, "{{ value_json.units[%d].power_w }}", i);
        snprintf(attr, sizeof attr, "{{ value_json.units[%d] | tojson }}", i);
        rc |= s_group_sensor(ctx, out, object, name, tpl, attr);
    }
    return rc;
}

int ctld_disc_msgs(const ctld_ha_ctx_t *ctx, ctld_list_t *out)
{
    int rc = 0;

    /* Enable switch: the seed's control/set with 1/0; the state HA shows is what the
     * controller reports, never an optimistic guess. */
    cJSON *e = s_entity(ctx, "enable", "Controller", "{{ 1 if value_json.enabled else 0 }}");
    if (e) {
        s_add_fmt(e, "cmd_t", "%s/inv/%d/control/set", ctx->topic_main, ctx->dev);
        cJSON_AddStringToObject(e, "pl_on", "1");
        cJSON_AddStringToObject(e, "pl_off", "0");
        cJSON_AddStringToObject(e, "stat_on", "1");
        cJSON_AddStringToObject(e, "stat_off", "0");
        cJSON_AddBoolToObject(e, "opt", false);
        cJSON_AddNumberToObject(e, "qos", 1);
        cJSON_AddBoolToObject(e, "ret", false);
    }
    rc |= s_emit(ctx, out, "switch", "enable", e);

    rc |= s_sensor(ctx, out, "grid_power", "Grid power", "{{ value_json.meter_w }}", "power", "W",
                   NULL, 0);
    rc |= s_sensor(ctx, out, "setpoint_power", "Setpoint power",
                   "{{ value_json.setpoint.power_w }}", "power", "W", NULL, 0);
    rc |= s_sensor(ctx, out, "soc", "State of charge", "{{ value_json.soc_pct }}", "battery", "%",
                   NULL, 0);
    rc |= s_sensor(ctx, out, "meter_age", "Meter age", "{{ value_json.meter_age_s }}", "duration",
                   "s", "diagnostic", 1);

    e = s_entity(ctx, "meter_stale", "Meter stale",
                 "{{ 'ON' if value_json.meter_stale else 'OFF' }}");
    if (e)
        cJSON_AddStringToObject(e, "dev_cla", "problem");
    rc |= s_emit(ctx, out, "binary_sensor", "meter_stale", e);

    /* The device does not follow the setpoint: a problem, with the cause as attributes. */
    e = s_entity(ctx, "not_following", "Device not following",
                 "{{ 'ON' if value_json.follow.problem else 'OFF' }}");
    if (e) {
        cJSON_AddStringToObject(e, "dev_cla", "problem");
        s_add_fmt(e, "json_attr_t", "%s/inv/%d/control", ctx->topic_main, ctx->dev);
        cJSON_AddStringToObject(e, "json_attr_tpl", "{{ value_json.follow | tojson }}");
    }
    rc |= s_emit(ctx, out, "binary_sensor", "not_following", e);

    /* Controller state: an enum sensor, so no state class, and every value listed. */
    e = s_entity(ctx, "state", "Controller state", "{{ value_json.mode }}");
    if (e) {
        cJSON_AddStringToObject(e, "dev_cla", "enum");
        cJSON *ops = cJSON_AddArrayToObject(e, "ops");
        for (int i = 0; ops && i < CTLD_ST_COUNT; i++)
            cJSON_AddItemToArray(ops, cJSON_CreateString(ctld_state_name((ctld_state_t)i)));
    }
    rc |= s_emit(ctx, out, "sensor", "state", e);

    /* Surplus switches: what the controller last published on each switch's topic. */
    for (size_t i = 0; i < ctx->n_switches; i++) {
        const ctld_switch_t *w = &ctx->switches[i];
        char object[32], name[96];
        snprintf(object, sizeof object, "switch%d", w->num);
        if (w->name && *w->name)
            snprintf(name, sizeof name, "Surplus switch %s", w->name);
        else
            snprintf(name, sizeof name, "Surplus switch %d", w->num);
        e = s_entity(ctx, object, name, "{{ value }}");
        if (e) {
            cJSON_ReplaceItemInObject(e, "stat_t", cJSON_CreateString(w->topic));
            cJSON_AddStringToObject(e, "pl_on", "1");
            cJSON_AddStringToObject(e, "pl_off", "0");
            cJSON_AddStringToObject(e, "dev_cla", "power");
        }
        rc |= s_emit(ctx, out, "binary_sensor", object, e);
    }
    return rc || s_group_disc(ctx, out) ? -1 : 0;
}
