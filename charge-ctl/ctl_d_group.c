/*
 * ctl_d_group: the daemon driving a group of devices ([CHARGE_CONTROL] Id/X/Devices) on one
 * gateway. Each device has its own link (its own lease under its own client name, so its own
 * lease token); X keeps the daemon's link, telemetry and gateway socket, the others have
 * theirs here (a socket each, so the devices' requests reach the gateway together, whose bus
 * scheduler takes the devices in turn). Each step runs
 * ctl_group_run over the devices online (answering, their lease held) and hands each
 * device's command to its link; a device offline or without its lease gets nothing, its
 * share goes to the others at that step, and its command is given again when it is back.
 * The group's setpoint and each device's share go to <TopicMain>/ctl/X/group. Part of the
 * bic-charge-ctl daemon (ctl_d.h).
 */
#include "ctl_d.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define GROUP_REPUBLISH_MS 60000 /* the group topic again even when nothing changed */

bool ctld_is_group(const ctl_daemon_t *d)
{
    return d->n_units > 1;
}

int ctld_group_setup(ctl_daemon_t *d, int64_t now)
{
    const ctl_group_cfg_t *g = &d->set.group;
    d->n_units = g->n > 1 ? g->n : 1;
    d->own = 0;
    ctl_group_run_init(&d->grun, now);
    snprintf(d->t_group, sizeof d->t_group, "%s/ctl/%d/group", d->set.site.topic_main, d->set.id);
    if (!ctld_is_group(d))
        return 0;
    for (int i = 0; i < g->n; i++) {
        if (g->dev[i] == d->set.id && g->gw[i] == 0) {
            d->own = i;
            continue;
        }
        /* a client name per device: one lease and one token each */
        char client[sizeof d->client + 24];
        if (g->gw[i])
            snprintf(client, sizeof client, "%s-u%dg%d", d->client, g->dev[i], g->gw[i]);
        else
            snprintf(client, sizeof client, "%s-u%d", d->client, g->dev[i]);
        d->units[i].dev = g->dev[i];
        d->units[i].gateway = g->gw[i];
        ctl_link_init(&d->units[i].link, g->dev[i], client, d->set.lease_ttl_s, now);
    }
    return 0;
}

ctl_link_t *ctld_unit_link(ctl_daemon_t *d, int i)
{
    return !ctld_is_group(d) || i == d->own ? &d->link : &d->units[i].link;
}

gw_client_t *ctld_unit_gw(ctl_daemon_t *d, int i)
{
    return !ctld_is_group(d) || i == d->own ? d->gw : d->units[i].gw;
}

bool ctld_unit_tel_alive(const ctl_daemon_t *d, int i, int64_t now)
{
    if (!ctld_is_group(d) || i == d->own)
        return ctld_tel_alive(d, now);
    const ctld_unit_t *u = &d->units[i];
    return u->tel_seen && now - u->tel_ms <= ctld_unit_silence_ms(d, i);
}

static bool s_reachable(const ctl_daemon_t *d, int i, int64_t now)
{
    if (i == d->own)
        return ctld_device_reachable(d, now);
    return ctld_unit_tel_alive(d, i, now) && d->units[i].tel.online;
}

void ctld_forget_commands(ctl_daemon_t *d, bool retake, int64_t now)
{
    for (int i = 0; i < d->n_units; i++) {
        ctl_link_t *l = ctld_unit_link(d, i);
        l->sp_dirty = false;
        l->acked_mode = CTL_MODE_NONE;
        if (retake)
            l->next_lease_try = now;
        d->units[i].resume = d->resume_sp;
    }
    ctld_holds_clear(d, now);
    ctl_state_init(&d->st, now);
    if (ctld_is_group(d))
        ctl_group_run_init(&d->grun, now);
}

void ctld_unit_flags(ctl_daemon_t *d, int i, unsigned flags, int64_t now)
{
    if (!ctld_is_group(d)) {
        ctld_link_flags(d, flags, now);
        return;
    }
    /* what the device was told is unknown: its command is given again at the next step */
    if (flags & CTL_LINK_RESET)
        d->grun.mode[i] = CTL_MODE_NONE;
    if (flags & CTL_LINK_STEP)
        ctld_step(d, now);
}

/* Energy each device moved since the last step (for the rotation of the lead). */
static void s_energy(ctl_daemon_t *d, const ctl_group_dev_t *devs, int64_t now)
{
    if (d->energy_ms) {
        double h = (double)(now - d->energy_ms) / 3600000.0;
        for (int i = 0; i < d->n_units; i++)
            if (devs[i].online && devs[i].telemetry_valid)
                d->energy_wh[i] += fabs(devs[i].dc_v * devs[i].dc_a) * h;
    }
    d->energy_ms = now;
}

/* Device i's fields of a step input: X's from the daemon's telemetry, the others' own. */
static void s_dev_input(const ctl_daemon_t *d, int i, int64_t now, ctl_input_t *in)
{
    if (i == d->own) {
        memset(in, 0, sizeof *in);
        in->online = d->tel_online;
        in->telemetry_valid = d->tel_valid;
        in->telemetry_ms = d->tel_ms;
        in->dc_v = d->dc_v;
        in->dc_a = d->dc_a;
        in->operation = d->operation;
        in->direction = d->direction;
        in->iout_ca = d->iout_ca;
        in->rev_iout_ca = d->rev_iout_ca;
        in->vout_set_cv = d->vout_cv;
        in->rev_vout_set_cv = d->rev_vout_cv;
        in->temp_valid = d->temp_valid;
        in->temp_c = d->temp_c;
        in->fault_raw = d->fault_raw;
    } else {
        *in = d->units[i].tel;
        in->telemetry_ms = d->units[i].tel_ms;
    }
    in->now_ms = now;
}

/* Does device i follow its command (ctl_follow, as 1.7 for one device)? One that has not for
 * FollowTimeoutSec after its response time is left out of the group (idle; its share goes to
 * the others), switched off after FollowSafeSec more, until the cause is seen gone or
 * FollowRetrySec have passed since the switch-off (doubled for each further switch-off before
 * it is seen following again, up to 32 x). True while it is left out. */
/* How long a device switched off for not following stays off (the cause not seen gone). */
static int64_t s_retry_ms(const ctl_params_t *p, const ctld_unit_t *u)
{
    unsigned doubling = u->f_offs > 1 ? u->f_offs - 1 : 0;
    return (int64_t)p->follow_retry_ms << (doubling < 5 ? doubling : 5);
}

static bool s_follow(ctl_daemon_t *d, int i, const ctl_input_t *in, double soc, int64_t now)
{
    const ctl_params_t *p = &d->set.params;
    ctld_unit_t *u = &d->units[i];
    char dev[16];
    ctl_group_member_name(&d->set.group, i, dev, sizeof dev);
    if (p->follow_timeout_ms <= 0)
        return false;
    if (u->f_out_ms) {
        bool gone = ctl_follow_cause_gone(p, u->f_cause, in);
        if (!gone && !u->f_safe && now - u->f_out_ms >= p->follow_safe_ms) {
            u->f_safe = true;
            u->f_safe_ms = now;
            u->f_offs++;
            log_warn("device %s: output switched off (it did not follow its share) until the "
                     "cause is gone or %d s have passed",
                     dev, (int)(s_retry_ms(p, u) / 1000));
            ctl_link_setpoint(ctld_unit_link(d, i), CTL_MODE_OFF, 0);
        }
        if (!gone && (!u->f_safe || now - u->f_safe_ms < s_retry_ms(p, u)))
            return true;
        log_info("device %s: back in the group (%s)", dev,
                 gone ? "the cause is gone" : "trying again");
        u->f_out_ms = 0;
        u->f_safe = false;
        u->f_mode = CTL_MODE_NONE;
        if (gone)
            u->f_cause = CTL_F_NONE;
    }
    ctl_mode_t mode = d->grun.mode[i];
    int ca = d->grun.current_ca[i];
    if (mode != u->f_mode) {
        u->f_mode = mode;
        u->f_mode_ms = now;
    }
    if (mode == CTL_MODE_NONE || now - u->f_mode_ms < p->settle_timeout_ms ||
        in->telemetry_ms <= u->f_mode_ms) {
        u->f_ok_ms = now; /* its response time */
        return false;
    }
    ctl_follow_t f;
    ctl_follow_judge(p, mode, ca, in, soc, &f);
    if (f.verdict != CTL_FV_NOT_FOLLOWING) {
        u->f_ok_ms = now;
        if (u->f_cause != CTL_F_NONE && (mode == CTL_MODE_CHARGE || mode == CTL_MODE_DISCHARGE)) {
            log_info("device %s follows its share again", dev);
            u->f_cause = CTL_F_NONE;
            u->f_offs = 0;
        }
        return false;
    }
    if (now - u->f_ok_ms < p->follow_timeout_ms)
        return false;
    u->f_cause = f.cause;
    ctl_follow_text(p, f.cause, mode, ca, in, u->f_text, sizeof u->f_text);
    log_warn("device %s does not follow its share: %s; left out of the group (its share goes to "
             "the others) until the cause is gone or %d s have passed",
             dev, u->f_text, p->follow_retry_ms / 1000);
    u->f_out_ms = now;
    ctl_link_setpoint(ctld_unit_link(d, i), CTL_MODE_IDLE, 0);
    return true;
}

void ctld_group_step(ctl_daemon_t *d, const ctl_input_t *house, int64_t now)
{
    const ctl_params_t *p = &d->set.params;
    ctl_group_dev_t devs[CTL_GROUP_MAX];
    memset(devs, 0, sizeof devs);
    for (int i = 0; i < d->n_units; i++) {
        ctl_group_dev_t *g = &devs[i];
        ctl_input_t in;
        s_dev_input(d, i, now, &in);
        g->online = s_reachable(d, i, now) && ctld_unit_link(d, i)->lease_held;
        g->telemetry_valid = g->online && in.telemetry_valid;
        g->telemetry_ms = in.telemetry_ms;
        g->dc_v = in.dc_v;
        g->dc_a = in.dc_a;
        g->energy_wh = d->energy_wh[i];
        /* its own battery's SOC from its load-corrected voltage and the [BAT_0] table */
        double soc = g->telemetry_valid
                         ? ctl_soc_from_voltage(p, in.dc_v - in.dc_a * p->r_internal_ohm)
                         : -1;
        g->soc_valid = soc >= 0;
        g->soc_pct = soc;
        if (g->online)
            ctld_unit_check_off(d, i, &in, now);
        if (ctld_unit_held(d, i))
            g->online = false;
        if (g->online && s_follow(d, i, &in, soc, now))
            g->online = false;
        d->units[i].in_step = g->online;
    }
    s_energy(d, devs, now);
    ctl_group_run_step(p, &d->set.group, &d->grun, house, devs, &d->gout);
    d->st = d->grun.st;
    d->out = d->gout.ctl;
    for (int i = 0; i < d->n_units; i++)
        if (d->gout.send[i])
            ctl_link_setpoint(ctld_unit_link(d, i), d->grun.mode[i],
                              ctl_group_run_link_ca(&d->grun, i));
    ctld_publish_group(d, now, false);
}

/* ---------------------------------------------------------------- the other devices' PUB */

static int s_unit_of(const ctl_daemon_t *d, int g, const char *topic, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(topic, prefix, n) != 0)
        return -1;
    char *end;
    long dev = strtol(topic + n, &end, 10);
    if (end == topic + n || *end)
        return -1;
    for (int i = 0; i < d->n_units; i++)
        if (i != d->own && d->units[i].dev == dev && d->units[i].gateway == g)
            return i;
    return -1;
}

static void s_unit_tel(ctl_daemon_t *d, int i, const cJSON *msg, int64_t now)
{
    ctld_unit_t *u = &d->units[i];
    u->tel_seen = true;
    u->tel_ms = now;
    ctld_tel_period_seen(d, i, msg, now);
    ctld_tel_reading(msg, &u->tel);
    const cJSON *lease = cJSON_GetObjectItem(msg, "lease"); /* null: free */
    const cJSON *holder = cJSON_GetObjectItem(lease, "holder");
    const char *who = cJSON_IsString(holder) ? holder->valuestring : NULL;
    ctld_unit_flags(d, i, ctl_link_telemetry(&u->link, lease != NULL, who, now), now);
    /* offline (or back): its share goes to the others (or comes back) now, not at the next
     * meter reading or timer */
    if (u->in_step != (s_reachable(d, i, now) && u->link.lease_held && !u->held && !u->f_out_ms))
        ctld_step(d, now);
}

bool ctld_group_on_pub(ctl_daemon_t *d, int g, const char *topic, const cJSON *msg, int64_t now)
{
    if (!ctld_is_group(d))
        return false;
    int i = s_unit_of(d, g, topic, "tel/");
    if (i >= 0) {
        s_unit_tel(d, i, msg, now);
        return true;
    }
    i = s_unit_of(d, g, topic, "evt/");
    if (i < 0)
        return false;
    ctld_unit_t *u = &d->units[i];
    char dev[16];
    ctl_group_member_name(&d->set.group, i, dev, sizeof dev);
    const cJSON *ev = cJSON_GetObjectItem(msg, "event");
    const cJSON *h = cJSON_GetObjectItem(msg, "holder");
    const char *who = cJSON_IsString(h) ? h->valuestring : NULL;
    if (!cJSON_IsString(ev))
        return true;
    if (strcmp(ev->valuestring, "lease_lapsed") == 0) {
        ctld_unit_flags(d, i, ctl_link_lease_lapsed(&u->link, who, now), now);
    } else if (strcmp(ev->valuestring, "power_cycled") == 0) {
        if (ctl_link_power_cycled(&u->link, who, d->grun.mode[i],
                                  ctl_group_run_link_ca(&d->grun, i), now))
            log_warn("device %s came back from a power cycle: its share re-applied", dev);
    } else if (strcmp(ev->valuestring, "safe_state") == 0 ||
               strcmp(ev->valuestring, "offline") == 0 || strcmp(ev->valuestring, "online") == 0) {
        log_info("gateway event on device %s: %s", dev, ev->valuestring);
        if (strcmp(ev->valuestring, "online") == 0)
            ctl_link_device_online(&u->link, now);
    }
    return true;
}

void ctld_group_gateway_lost(ctl_daemon_t *d, int g, int64_t now)
{
    for (int i = 0; i < d->n_units; i++) {
        if (d->set.group.gw[i] != g)
            continue;
        if (i == d->own)
            d->tel_seen = false;
        else
            d->units[i].tel_seen = false;
        /* a request in flight is dropped, not resent to the gateway once it is back */
        gw_client_reset(ctld_unit_gw(d, i));
        unsigned flags = ctl_link_gateway_lost(ctld_unit_link(d, i), now);
        ctld_unit_flags(d, i, (flags | CTL_LINK_RESET) & ~(unsigned)CTL_LINK_STEP, now);
    }
    ctld_step(d, now); /* the others take its devices' shares now */
}

/* ---------------------------------------------------------------- the group topic */

void ctld_publish_group(ctl_daemon_t *d, int64_t now, bool force)
{
    if (!ctld_is_group(d) || d->link.standby || !mqtt_conn_connected(d->mq))
        return;
    ctld_group_view_t v;
    memset(&v, 0, sizeof v);
    v.setpoint_w = d->grun.setpoint_w;
    v.n = d->n_units;
    for (int i = 0; i < d->n_units; i++) {
        ctld_group_unit_view_t *u = &v.unit[i];
        const ctl_link_t *l = ctld_unit_link(d, i);
        u->dev = d->set.group.dev[i];
        u->gw = d->set.group.gw[i];
        u->online = s_reachable(d, i, now);
        u->lease_held = l->lease_held;
        const ctld_unit_t *du = &d->units[i];
        u->state = du->held       ? "held_off"
                   : du->f_out_ms ? "not_following"
                                  : ctl_group_why_name(d->gout.go.why[i]);
        u->follow =
            d->units[i].f_cause != CTL_F_NONE ? ctl_follow_cause_name(d->units[i].f_cause) : NULL;
        u->mode =
            du->held || du->f_safe ? ctl_mode_name(CTL_MODE_OFF) : ctl_mode_name(d->gout.mode[i]);
        u->current_a = d->gout.current_ca[i] / 100.0;
        u->power_w = d->gout.go.power_w[i];
        u->energy_wh = d->energy_wh[i];
    }
    /* the energy changes every step: it alone is not worth a message */
    char *key = ctld_group_json(&v, false);
    bool same = key && d->group_key && strcmp(d->group_key, key) == 0;
    if (force || !same || now - d->group_ms >= GROUP_REPUBLISH_MS) {
        char *json = ctld_group_json(&v, true);
        if (json)
            ctld_publish(d, d->t_group, json, 0, true);
        free(json);
        d->group_ms = now;
    }
    free(d->group_key);
    d->group_key = key;
}
