/*
 * ctl_d_hold: a person's stop of one device of a group. A device switched off by a person
 * (state/set 0 on its own topic, or the gateway's `held_off` refusal of a stop this controller
 * did not hear of) is left out of the group: the controller sends it its last word (`stop`),
 * gives its lease back (so the person's switch-on is not refused for it) and its share goes to
 * the others at the next step, while they go on. A device whose output reads off while it
 * should run is asked about (`info`, its `held_off`). It is back in the group when the gateway
 * no longer holds it off (a person's switch-on: state/set 1, bicctl on, a manual setpoint), asked
 * with `info` every CTLD_HOLD_INFO_MS, or at control/set. Part of the bic-charge-ctl daemon
 * (ctl_d.h).
 */
#include "ctl_d.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "monotime.h"

#define CTLD_HOLD_INFO_MS 2000  /* while held: is it still held off? */
#define CTLD_HOLD_AFTER_ON 1000 /* state/set 1: the bridge's OPERATION 1 goes first */

bool ctld_unit_held(const ctl_daemon_t *d, int i)
{
    return ctld_is_group(d) && d->units[i].held;
}

void ctld_unit_hold(ctl_daemon_t *d, int i, const char *why, int64_t now)
{
    ctld_unit_t *u = &d->units[i];
    if (u->held)
        return;
    u->held = true;
    log_warn("device %d switched off by a person (%s): left out of the group, its share goes to "
             "the others, until a person switches it on (state/set 1) or control/set",
             d->set.group.dev[i], why);
    ctl_link_t *l = ctld_unit_link(d, i);
    /* the last word on it: stop (the output off, as the person asked); then the lease goes */
    ctl_link_setpoint(l, CTL_MODE_IDLE, 0);
    l->sp_retry_at = now;
    l->next_info = now + CTLD_HOLD_INFO_MS;
    ctld_step(d, now);
}

/* The hold ends: back in the group (its lease taken again, a command at the next step). */
static void s_release(ctl_daemon_t *d, int i, const char *why, int64_t now)
{
    ctld_unit_t *u = &d->units[i];
    if (!u->held)
        return;
    u->held = false;
    log_info("device %d: %s: back in the group", d->set.group.dev[i], why);
    ctl_link_t *l = ctld_unit_link(d, i);
    l->next_lease_try = now;
    d->grun.mode[i] = CTL_MODE_NONE;
    ctld_step(d, now);
}

void ctld_holds_clear(ctl_daemon_t *d, int64_t now)
{
    if (!ctld_is_group(d))
        return;
    for (int i = 0; i < d->n_units; i++)
        if (d->units[i].held) {
            d->units[i].held = false;
            log_info("device %d: control/set: back in the group", d->set.group.dev[i]);
            ctld_unit_link(d, i)->next_lease_try = now;
        }
}

void ctld_unit_info(ctl_daemon_t *d, int i, const cJSON *dv, int64_t now)
{
    if (!ctld_is_group(d))
        return;
    const cJSON *h = cJSON_GetObjectItem(dv, "held_off");
    ctl_link_t *l = ctld_unit_link(d, i);
    if (cJSON_IsString(h) && !d->units[i].held && ctld_active(d)) {
        char why[80];
        snprintf(why, sizeof why, "the gateway holds it off, stopped by '%.32s'", h->valuestring);
        ctld_unit_hold(d, i, why, now);
    } else if (cJSON_IsNull(h) && d->units[i].held) {
        s_release(d, i, "switched on by a person", now);
    }
    if (d->units[i].held)
        l->next_info = now + CTLD_HOLD_INFO_MS;
}

void ctld_unit_check_off(ctl_daemon_t *d, int i, const ctl_input_t *in, int64_t now)
{
    ctld_unit_t *u = &d->units[i];
    ctl_mode_t m = d->grun.mode[i];
    if (u->held || in->operation != 0 || (m != CTL_MODE_CHARGE && m != CTL_MODE_DISCHARGE) ||
        now - u->off_ask_ms < CTLD_HOLD_INFO_MS)
        return;
    u->off_ask_ms = now;
    ctl_link_t *l = ctld_unit_link(d, i);
    if (l->next_info > now)
        l->next_info = now; /* its held_off (ctld_unit_info) */
}

void ctld_group_subscribe(ctl_daemon_t *d, struct mosquitto *mosq)
{
    if (!ctld_is_group(d))
        return;
    for (int i = 0; i < d->n_units; i++) {
        /* a device on another gateway has its state/set under that machine's bridge's
         * TopicMain; a person's stop there reaches the controller as the gateway's held_off */
        if (d->set.group.gw[i])
            continue;
        snprintf(d->units[i].t_state, sizeof d->units[i].t_state, "%s/inv/%d/state/set",
                 d->set.site.topic_main, d->set.group.dev[i]);
        mosquitto_subscribe(mosq, NULL, d->units[i].t_state, 1);
    }
}

bool ctld_group_on_state(ctl_daemon_t *d, const struct mosquitto_message *m)
{
    if (!ctld_is_group(d))
        return false;
    int i = 0;
    while (i < d->n_units && strcmp(m->topic, d->units[i].t_state) != 0)
        i++;
    if (i == d->n_units)
        return false;
    int64_t now = mono_ms();
    if (m->retain || m->payloadlen <= 0 || !ctld_active(d))
        return true; /* the bridge ignores these too; a controller not running holds nothing */
    int v = ctld_parse_state(m->payload, (size_t)m->payloadlen);
    int op = i == d->own ? d->operation : d->units[i].tel.operation;
    if (v == 2) /* toggle: the bridge decides by the same telemetry */
        v = op == 1 ? 0 : op == 0 ? 1 : -1;
    if (v == 0) {
        ctld_unit_hold(d, i, "state/set 0", now);
    } else if (v == 1 && d->units[i].held) {
        /* the bridge switches it on, which ends the gateway's hold: ask soon */
        log_info("device %d: state/set 1: back in the group once the gateway no longer holds it "
                 "off",
                 d->set.group.dev[i]);
        ctld_unit_link(d, i)->next_info = now + CTLD_HOLD_AFTER_ON;
    }
    ctld_pump(d, now);
    return true;
}
