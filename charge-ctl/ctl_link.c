/*
 * ctl_link: the controller's link to the gateway. See ctl_link.h.
 */
#include "ctl_link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_client.h"
#include "log.h"

static const char *const s_req_names[] = {"none",        "info",          "lease take",
                                          "lease renew", "lease release", "setpoint"};

/* The lease note: the gateway's messages may be longer than the note; cut to fit. */
static void s_note(ctl_link_t *l, const char *why)
{
    size_t n = strnlen(why, sizeof l->lease_note - 1);
    memcpy(l->lease_note, why, n);
    l->lease_note[n] = '\0';
}

void ctl_link_init(ctl_link_t *l, int dev, const char *client, int lease_ttl_s, int64_t now)
{
    memset(l, 0, sizeof *l);
    l->dev = dev;
    l->lease_ttl_s = lease_ttl_s;
    snprintf(l->client, sizeof l->client, "%s", client);
    l->next_info = l->next_lease_try = now;
}

const char *ctl_link_req_name(ctl_link_req_t kind)
{
    return kind <= CTL_LINK_REQ_SETPOINT ? s_req_names[kind] : "?";
}

void ctl_link_setpoint(ctl_link_t *l, ctl_mode_t mode, int ca)
{
    if (!l->lease_held || mode == CTL_MODE_NONE)
        return;
    l->sp_dirty = true;
    l->sp_mode = mode;
    l->sp_ca = ca;
}

/* Forget what the device was told: after a lease change the gateway (or another client)
 * may have put it anywhere. */
static unsigned s_reset(ctl_link_t *l)
{
    l->sp_dirty = false;
    l->acked_mode = CTL_MODE_NONE;
    return CTL_LINK_RESET;
}

/* Keeps the token of a reply that carries one (32 lowercase hex digits; anything else is
 * not a token and not kept). */
static void s_keep_token(ctl_link_t *l, const char *token)
{
    if (!gw_token_valid(token))
        return;
    memcpy(l->token, token, sizeof l->token);
}

static void s_renewed(ctl_link_t *l, int64_t now)
{
    l->lease_ok_ms = now;
    l->renew_at = now + l->lease_ttl_s * 1000 / 3;
}

static unsigned s_lease_lost(ctl_link_t *l, int64_t now, const char *why)
{
    s_note(l, why);
    l->next_lease_try = now + CTL_LINK_LEASE_RETRY_MS;
    if (!l->lease_held)
        return 0;
    l->lease_held = false;
    log_warn("control lease lost (%s): the gateway applies its safe state when it lapses", why);
    return s_reset(l) | CTL_LINK_STEP;
}

static ctl_link_send_t s_out(ctl_link_t *l, ctl_link_req_t kind, ctl_mode_t mode, int ca)
{
    l->inflight = kind;
    if (kind == CTL_LINK_REQ_SETPOINT) {
        l->inflight_mode = mode;
        l->inflight_ca = ca;
    }
    return (ctl_link_send_t){.kind = kind, .mode = mode, .ca = ca};
}

ctl_link_send_t ctl_link_next(ctl_link_t *l, const ctl_link_view_t *v, int64_t now)
{
    ctl_link_send_t none = {.kind = CTL_LINK_REQ_NONE};
    if (l->inflight != CTL_LINK_REQ_NONE)
        return none;
    if (l->stopping) {
        if (l->lease_held && !l->stop_idle_sent) {
            l->stop_idle_sent = true;
            return s_out(l, CTL_LINK_REQ_SETPOINT, CTL_MODE_IDLE, 0);
        }
        if (l->lease_held)
            return s_out(l, CTL_LINK_REQ_RELEASE, CTL_MODE_NONE, 0);
        l->stop_done = true;
        return none;
    }
    if (now >= l->next_info)
        return s_out(l, CTL_LINK_REQ_INFO, CTL_MODE_NONE, 0);
    if (!l->lease_held) {
        if (v->enabled && v->tel_alive && now >= l->next_lease_try)
            return s_out(l, CTL_LINK_REQ_TAKE, CTL_MODE_NONE, 0);
        return none;
    }
    if (l->sp_dirty && now >= l->sp_retry_at) {
        l->sp_dirty = false;
        return s_out(l, CTL_LINK_REQ_SETPOINT, l->sp_mode, l->sp_ca);
    }
    /* Disabled: give the lease back once the device is idle (or cannot be reached). */
    if (!v->enabled && !l->sp_dirty &&
        (l->acked_mode == CTL_MODE_IDLE || v->out_mode == CTL_MODE_NONE))
        return s_out(l, CTL_LINK_REQ_RELEASE, CTL_MODE_NONE, 0);
    if (v->tel_alive && now >= l->renew_at)
        return s_out(l, CTL_LINK_REQ_RENEW, CTL_MODE_NONE, 0);
    return none;
}

void ctl_link_send_failed(ctl_link_t *l, int64_t now)
{
    log_error("cannot send a %s request to the gateway", ctl_link_req_name(l->inflight));
    l->inflight = CTL_LINK_REQ_NONE;
    /* Try again later rather than in a tight loop. */
    l->next_lease_try = l->sp_retry_at = l->next_info = now + CTL_LINK_LEASE_RETRY_MS;
}

static unsigned s_take_refused(ctl_link_t *l, const ctl_link_reply_t *r, int64_t now)
{
    char mine[32];
    int n = snprintf(mine, sizeof mine, "charge-ctl-%d-", l->dev);
    bool was = l->standby;
    l->standby = r->holder && strncmp(r->holder, mine, (size_t)n) == 0;
    if (l->standby && !was)
        log_info("standby: another instance of this controller (%s) drives device %d", r->holder,
                 l->dev);
    if (strncmp(r->msg, l->lease_note, sizeof l->lease_note - 1) != 0)
        log_warn("cannot take the control lease: %s: %s (retrying every %d s)", r->code, r->msg,
                 CTL_LINK_LEASE_RETRY_MS / 1000);
    s_note(l, r->msg);
    l->next_lease_try = now + CTL_LINK_LEASE_RETRY_MS;
    return 0;
}

static unsigned s_setpoint_reply(ctl_link_t *l, const ctl_link_reply_t *r, int64_t now)
{
    if (r->ok) {
        /* A change of mode is worth a line; current trims only at debug level. */
        log_level_t lvl = l->acked_mode != l->inflight_mode ? BIC_LOG_INFO : BIC_LOG_DEBUG;
        if (l->inflight_mode == CTL_MODE_CHARGE || l->inflight_mode == CTL_MODE_DISCHARGE)
            log_write(lvl, "setpoint %s %.2f A", ctl_mode_name(l->inflight_mode),
                      l->inflight_ca / 100.0);
        else if (l->inflight_mode == CTL_MODE_IDLE && l->inflight_ca != 0)
            log_write(BIC_LOG_DEBUG, "setpoint idle, preset %s %.2f A",
                      l->inflight_ca > 0 ? "charge" : "discharge", abs(l->inflight_ca) / 100.0);
        else
            log_write(lvl, "setpoint %s", ctl_mode_name(l->inflight_mode));
        l->acked_mode = l->inflight_mode;
        s_keep_token(l, r->token);
        s_renewed(l, now);
        return 0;
    }
    if (strcmp(r->code, "lease_held") == 0 || strcmp(r->code, "no_lease") == 0 ||
        strcmp(r->code, "bad_token") == 0) {
        char why[200];
        snprintf(why, sizeof why, "setpoint refused: %s", r->msg);
        return s_lease_lost(l, now, why);
    }
    log_warn("setpoint %s %.2f A refused: %s: %s; starting again from idle",
             ctl_mode_name(l->inflight_mode), l->inflight_ca / 100.0, r->code, r->msg);
    l->sp_retry_at = now + CTL_LINK_SETPOINT_RETRY_MS;
    return s_reset(l);
}

unsigned ctl_link_reply(ctl_link_t *l, const ctl_link_reply_t *r, int64_t now)
{
    ctl_link_req_t kind = l->inflight;
    l->inflight = CTL_LINK_REQ_NONE;
    switch (kind) {
    case CTL_LINK_REQ_NONE:
        return 0;
    case CTL_LINK_REQ_INFO:
        l->next_info = now + CTL_LINK_INFO_RETRY_MS;
        if (r->ok)
            return CTL_LINK_INFO;
        log_warn("gateway info: %s: %s", r->code, r->msg);
        return 0;
    case CTL_LINK_REQ_TAKE:
        if (!r->ok)
            return s_take_refused(l, r, now);
        l->lease_held = true;
        l->token[0] = '\0';
        s_keep_token(l, r->token);
        l->standby = false;
        l->lease_taken_ms = now;
        s_renewed(l, now);
        l->lease_note[0] = '\0';
        log_info("control lease taken as '%s' (TTL %d s)", l->client, l->lease_ttl_s);
        return s_reset(l) | CTL_LINK_STEP;
    case CTL_LINK_REQ_RENEW:
        if (r->ok) {
            s_renewed(l, now);
            return 0;
        } else {
            char why[200];
            snprintf(why, sizeof why, "renewal refused: %s", r->msg);
            return s_lease_lost(l, now, why);
        }
    case CTL_LINK_REQ_RELEASE:
        if (r->ok)
            log_info("control lease released");
        else
            log_warn("lease release: %s: %s", r->code, r->msg);
        l->lease_held = false;
        l->token[0] = '\0';
        s_note(l, "released");
        return s_reset(l) | CTL_LINK_STEP;
    case CTL_LINK_REQ_SETPOINT:
        return s_setpoint_reply(l, r, now);
    }
    return 0;
}

void ctl_link_info_ok(ctl_link_t *l, int64_t now)
{
    l->next_info = now + CTL_LINK_INFO_PERIOD_MS;
}

/* The lease cannot be trusted any more (it lapses into the gateway's safe state if the
 * gateway is alive). */
unsigned ctl_link_timeout(ctl_link_t *l, int64_t now)
{
    ctl_link_req_t kind = l->inflight;
    l->inflight = CTL_LINK_REQ_NONE;
    log_warn("the gateway did not answer (%s)", ctl_link_req_name(kind));
    if (kind == CTL_LINK_REQ_INFO)
        l->next_info = now + CTL_LINK_INFO_RETRY_MS;
    l->standby = false;
    if (l->lease_held)
        return s_lease_lost(l, now, "gateway not answering");
    s_note(l, "gateway not answering");
    l->next_lease_try = now + CTL_LINK_LEASE_RETRY_MS;
    return 0;
}

unsigned ctl_link_gateway_lost(ctl_link_t *l, int64_t now)
{
    l->inflight = CTL_LINK_REQ_NONE;
    l->standby = false;
    if (l->lease_held)
        return s_lease_lost(l, now, "gateway disconnected");
    s_note(l, "gateway disconnected");
    l->next_lease_try = now + CTL_LINK_LEASE_RETRY_MS;
    return s_reset(l);
}

unsigned ctl_link_telemetry(ctl_link_t *l, bool has_lease, const char *holder, int64_t now)
{
    if (!has_lease || !l->lease_held || now - l->lease_taken_ms <= CTL_LINK_HOLDER_GRACE_MS ||
        (holder && strcmp(holder, l->client) == 0))
        return 0;
    char why[160];
    snprintf(why, sizeof why, "the gateway reports %s%s",
             holder ? "the lease held by " : "no lease holder", holder ? holder : "");
    return s_lease_lost(l, now, why);
}

unsigned ctl_link_lease_lapsed(ctl_link_t *l, const char *holder, int64_t now)
{
    if (!holder || strcmp(holder, l->client) != 0)
        return 0;
    return s_lease_lost(l, now, "lease lapsed");
}

void ctl_link_device_online(ctl_link_t *l, int64_t now)
{
    l->next_info = now;
}

bool ctl_link_power_cycled(ctl_link_t *l, const char *holder, ctl_mode_t mode, int ca, int64_t now)
{
    if (!l->lease_held || !holder || strcmp(holder, l->client) != 0)
        return false;
    l->acked_mode = CTL_MODE_NONE;
    if (mode != CTL_MODE_NONE) {
        l->sp_dirty = true;
        l->sp_mode = mode;
        l->sp_ca = ca;
        l->sp_retry_at = now;
    }
    return true;
}

unsigned ctl_link_tick(ctl_link_t *l, int64_t now)
{
    if (l->lease_held && now - l->lease_ok_ms > (int64_t)l->lease_ttl_s * 1000)
        return s_lease_lost(l, now, "no renewal confirmed within the lease TTL");
    return 0;
}

static int64_t s_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int64_t ctl_link_deadline(const ctl_link_t *l, const ctl_link_view_t *v, int64_t dl)
{
    if (l->inflight == CTL_LINK_REQ_NONE) {
        /* Without telemetry nothing about the lease is due (telemetry wakes the loop). */
        if (l->lease_held) {
            if (v->tel_alive)
                dl = s_min(dl, l->renew_at);
            if (l->sp_dirty)
                dl = s_min(dl, l->sp_retry_at);
        } else if (v->enabled && v->tel_alive) {
            dl = s_min(dl, l->next_lease_try);
        }
        dl = s_min(dl, l->next_info);
    }
    if (l->stopping)
        dl = s_min(dl, l->stop_deadline);
    return dl;
}

void ctl_link_stop(ctl_link_t *l, int64_t now)
{
    if (l->stopping)
        return;
    l->stopping = true;
    l->stop_deadline = now + CTL_LINK_STOP_BUDGET_MS;
}

bool ctl_link_stop_over(ctl_link_t *l, int64_t now)
{
    if (!l->stopping || !(l->stop_done || now >= l->stop_deadline))
        return false;
    if (!l->stop_done)
        log_warn("the gateway did not confirm idle and release in time; the lease lapses into "
                 "the gateway's safe state");
    l->stop_done = true;
    return true;
}
