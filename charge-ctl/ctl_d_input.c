/*
 * ctl_d_input: the daemon's MQTT inputs: the meter topic, control/set and state/set (a pause
 * while a person has the output off). Part of the bic-charge-ctl daemon (ctl_d.h).
 */
#include "ctl_d.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "monotime.h"

#define BAD_LOG_EVERY_MS 60000 /* rejected meter payloads: one line per minute at most */

static void s_log_bad_meter(ctl_daemon_t *d, int64_t now, const char *why,
                            const struct mosquitto_message *m)
{
    if (d->bad_log_ms && now - d->bad_log_ms < BAD_LOG_EVERY_MS) {
        d->bad_unlogged++;
        return;
    }
    char shown[65];
    size_t n = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
    if (n > sizeof shown - 1)
        n = sizeof shown - 1;
    for (size_t i = 0; i < n; i++) {
        char c = ((const char *)m->payload)[i];
        shown[i] = c >= 32 && c < 127 ? c : '?';
    }
    shown[n] = '\0';
    if (d->bad_unlogged)
        log_warn("meter %s: payload '%s' rejected: %s (and %llu more since the last report; "
                 "%llu in all)",
                 m->topic, shown, why, (unsigned long long)d->bad_unlogged,
                 (unsigned long long)d->meter_errors);
    else
        log_warn("meter %s: payload '%s' rejected: %s", m->topic, shown, why);
    d->bad_unlogged = 0;
    d->bad_log_ms = now;
}

void ctld_on_meter(ctl_daemon_t *d, const struct mosquitto_message *m)
{
    int64_t now = mono_ms();
    double w;
    char err[200];
    size_t len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
    if (meter_parse(&d->set.meter, m->payload, len, &w, err, sizeof err) != 0) {
        d->meter_errors++;
        s_log_bad_meter(d, now, err, m);
        ctld_publish_status(d, now, false);
        return;
    }
    d->shown_valid = true;
    d->shown_w = w;
    d->shown_ms = now;
    if (m->retain) {
        /* Delivered at subscribe time from the broker's store: its age is unknown. */
        if (!d->retained_logged)
            log_info("meter %s: retained value %.1f W shown, not used for control", m->topic, w);
        d->retained_logged = true;
        ctld_publish_status(d, now, false);
        return;
    }
    bool was_stale = ctld_meter_stale(d, now);
    d->meter_valid = true;
    d->meter_w = w;
    d->meter_ms = now;
    d->meter_seq++;
    if (was_stale && d->meter_seq > 1)
        log_info("meter %s: fresh samples again", m->topic);
    ctld_step(d, now);
    ctld_pump(d, now);
    ctld_publish_status(d, now, false);
}

void ctld_on_control(ctl_daemon_t *d, const struct mosquitto_message *m)
{
    int64_t now = mono_ms();
    if (m->payloadlen <= 0)
        return; /* clearing a retained command is not a command */
    if (m->retain) {
        log_warn("%s: retained command ignored (publish commands without the retain flag)",
                 m->topic);
        ctld_publish_result(d, false, NULL, "retained",
                            "retained command ignored; publish commands without the retain flag "
                            "and clear the retained message");
        return;
    }
    bool on = false;
    const char *code = NULL;
    char err[200];
    if (ctld_parse_enable(m->payload, (size_t)m->payloadlen, &on, &code, err, sizeof err) != 0) {
        log_warn("%s: refused: %s: %s", m->topic, code, err);
        ctld_publish_result(d, false, NULL, code, err);
        return;
    }
    if (on && !d->set.can_run) {
        const char *why =
            "this controller cannot run: [CHARGE_CONTROL] Type=None/off, or PID without "
            "TopicPower in the configuration";
        log_warn("%s: refused: %s", m->topic, why);
        ctld_publish_result(d, false, on ? "1" : "0", "not_configured", why);
        return;
    }
    /* As in the seed, every toggle (also a repeated one) stops charging: start from idle. */
    log_info("%s: controller %s%s", m->topic, on ? "enabled" : "disabled",
             d->paused ? " (the pause from state/set 0 ends)" : "");
    d->enabled = on;
    d->paused = d->resume_on = false;
    d->resume_sp = on;
    /* the setpoint not sent yet and the one confirmed are forgotten with the step's state */
    ctld_forget_commands(d, on, now);
    ctld_step(d, now);
    ctld_pump(d, now);
    ctld_publish_result(d, true, on ? "1" : "0", NULL, NULL);
    ctld_publish_status(d, now, true);
}

/* Starts again from idle, as a control/set does. */
static void s_restart(ctl_daemon_t *d, int64_t now)
{
    ctld_forget_commands(d, true, now);
    ctld_step(d, now);
    ctld_pump(d, now);
    ctld_publish_status(d, now, true);
}

void ctld_check_resume(ctl_daemon_t *d, int64_t now)
{
    if (!d->paused || !d->resume_on || d->operation != 1)
        return;
    log_info("the output is on again (state/set 1): the controller resumes");
    d->paused = d->resume_on = false;
    d->resume_sp = true;
    s_restart(d, now);
}

void ctld_on_state_cmd(ctl_daemon_t *d, const struct mosquitto_message *m)
{
    int64_t now = mono_ms();
    if (m->retain || m->payloadlen <= 0)
        return; /* the bridge ignores these too */
    int v = ctld_parse_state(m->payload, (size_t)m->payloadlen);
    if (v == 2) /* toggle: the bridge decides by the same telemetry */
        v = d->operation == 1 ? 0 : d->operation == 0 ? 1 : -1;
    if (v < 0)
        return; /* the bridge refuses it and answers */
    if (v == 1) {
        if (!d->paused || d->resume_on)
            return;
        log_info("%s: 1: the controller resumes once the output is on", m->topic);
        d->resume_on = true;
        ctld_publish_status(d, now, true);
        return;
    }
    if (d->paused && !d->resume_on)
        return;
    log_info("%s: 0: output off by a person: the controller pauses (idle set-points, lease given "
             "back) until state/set 1 or control/set",
             m->topic);
    ctld_pause(d, now);
}

void ctld_pause(ctl_daemon_t *d, int64_t now)
{
    d->paused = true;
    d->resume_on = d->resume_sp = false;
    s_restart(d, now);
}
