/*
 * ctl_d_gateways: the gateways of a group over several ([CHARGE_CONTROL] Id/X/Devices with
 * Y@G members, [GATEWAY] Gw/G/...). Gateway 0 is the daemon's own SUB socket; each other
 * gateway has a SUB socket here for its devices' telemetry and events. Each gateway's SUB
 * connection is watched (a ZeroMQ socket monitor, and ZMTP heartbeats): when it drops
 * (the gateway's process ended, its host or the network went) its devices are out of the
 * group at once, their requests in flight dropped and their leases counted as lost, and the
 * group's step runs, so the others take their shares at that step rather than after the
 * telemetry's silence. Their gateway applies its safe state when their leases lapse. When
 * the gateway is back, its telemetry brings its devices back: their leases are taken again
 * (with the tokens kept, a restarted gateway's saved lease carries on) and they get commands
 * of their own. Each gateway's telemetry is judged by the period it states in it, so a
 * gateway slower than the controller's file says is not taken for silent between two of its
 * messages. Part of the bic-charge-ctl daemon (ctl_d.h).
 */
#include "ctl_d.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl_tel_period.h"
#include "gw_client.h"
#include "log.h"
#include "monotime.h"

/* A gateway that answers no ZMTP heartbeat for three of these counts as gone: a host or
 * network that went away (or a process that hangs) says nothing, and its connection stays
 * up. */
#define GW_HEARTBEAT_MS 1000

#define GW_EVENTS                                                                                  \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |                \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |                      \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)

static zsock_t *s_sub(ctl_daemon_t *d, int g)
{
    return g == 0 ? d->sub : d->gsub[g];
}

/* A monitor of gateway g's SUB connection: a PAIR socket receiving its events. */
static int s_monitor(ctl_daemon_t *d, int g, char *err, size_t errlen)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://ctl-gw-monitor-%p-%d", (void *)d, g);
    void *sub = zsock_resolve(s_sub(d, g));
    if (zmq_socket_monitor(sub, ep, GW_EVENTS) != 0) {
        snprintf(err, errlen, "gateway %d: cannot watch its connection: %s", g,
                 zmq_strerror(errno));
        return -1;
    }
    d->gmon[g] = zsock_new(ZMQ_PAIR);
    if (!d->gmon[g] || zsock_connect(d->gmon[g], "%s", ep) != 0) {
        snprintf(err, errlen, "gateway %d: cannot watch its connection", g);
        return -1;
    }
    return 0;
}

int ctld_gateways_setup(ctl_daemon_t *d, const config_t *cfg, char *err, size_t errlen)
{
    d->n_gw = d->set.group.n_gw > 1 ? d->set.group.n_gw : 1;
    if (d->n_gw == 1)
        return 0; /* one gateway: as it always was */
    const char *prefixes[] = {"tel/", "evt/", NULL};
    for (int g = 0; g < d->n_gw; g++) {
        bool used = g == 0;
        for (int i = 0; i < d->set.group.n; i++)
            used = used || d->set.group.gw[i] == g;
        if (!used)
            continue;
        /* gateway 0's too, again with the heartbeats (set before its connect) */
        zsock_t **sub = g == 0 ? &d->sub : &d->gsub[g];
        zsock_destroy(sub);
        if (!(*sub = gw_client_sub_from_config_gw(cfg, g, prefixes, GW_HEARTBEAT_MS, err, errlen)))
            return -1;
        if (s_monitor(d, g, err, errlen) != 0)
            return -1;
        log_info("gateway %d: %s", g,
                 g == 0 ? config_str(cfg, "GATEWAY", "PubEndpoint")
                        : config_str(cfg, "GATEWAY", "Gw/%d/PubEndpoint", g));
    }
    return 0;
}

void ctld_gateways_destroy(ctl_daemon_t *d)
{
    for (int g = 0; g < CONFIG_MAX_GATEWAYS; g++) {
        zsock_t *sub = s_sub(d, g);
        if (d->gmon[g] && sub)
            zmq_socket_monitor(zsock_resolve(sub), NULL, 0);
        zsock_destroy(&d->gmon[g]);
        zsock_destroy(&d->gsub[g]);
    }
}

int ctld_gateways_pollitems(ctl_daemon_t *d, zmq_pollitem_t *items, int max)
{
    int n = 0;
    for (int g = 0; g < d->n_gw && n + 2 <= max; g++) {
        if (d->gsub[g])
            items[n++] =
                (zmq_pollitem_t){.socket = zsock_resolve(d->gsub[g]), .events = ZMQ_POLLIN};
        if (d->gmon[g])
            items[n++] =
                (zmq_pollitem_t){.socket = zsock_resolve(d->gmon[g]), .events = ZMQ_POLLIN};
    }
    return n;
}

void ctld_gateway_drain(ctl_daemon_t *d, int g, zsock_t *sub)
{
    /* bounded so MQTT and the other gateways are never starved */
    for (int i = 0; i < 64; i++) {
        char topic[64];
        cJSON *msg = gw_client_sub_recv(sub, topic, sizeof topic);
        if (msg) {
            int64_t now = mono_ms();
            if (g == 0)
                ctld_on_pub(d, topic, msg, now);
            else
                ctld_group_on_pub(d, g, topic, msg, now);
            cJSON_Delete(msg);
        }
        if (!(zsock_events(sub) & ZMQ_POLLIN))
            break;
    }
}

/* One event of gateway g's monitor: its number, or 0 when none was waiting. */
static unsigned s_event(ctl_daemon_t *d, int g)
{
    void *mon = zsock_resolve(d->gmon[g]);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    unsigned ev = 0;
    if (zmq_msg_recv(&msg, mon, ZMQ_DONTWAIT) >= 0 && zmq_msg_size(&msg) >= 2) {
        uint16_t e;
        memcpy(&e, zmq_msg_data(&msg), sizeof e);
        ev = e;
    }
    bool more = zmq_msg_more(&msg);
    zmq_msg_close(&msg);
    while (more) { /* the endpoint's frame */
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
    }
    return ev;
}

static void s_on_events(ctl_daemon_t *d, int g)
{
    for (int k = 0; k < 16; k++) {
        unsigned ev = s_event(d, g);
        if (!ev)
            return;
        if (ev == ZMQ_EVENT_DISCONNECTED && d->gw_up[g]) {
            d->gw_up[g] = false;
            log_warn("gateway %d disconnected: its devices are out of the group and the others "
                     "take their shares; its safe state follows when their leases lapse",
                     g);
            ctld_group_gateway_lost(d, g, mono_ms());
        } else if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            log_info("gateway %d connected", g);
            d->gw_up[g] = true;
            d->gw_auth_logged[g] = false;
        } else if (ev & (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)) {
            if (!d->gw_auth_logged[g])
                log_error("gateway %d refused the connection (CURVE handshake): check "
                          "Gw/%d/CurveServerPublicKey and that CurveClientKeyFile's public key is "
                          "in that gateway's CurveClientsDir",
                          g, g);
            d->gw_auth_logged[g] = true;
        }
    }
}

void ctld_gateways_handle(ctl_daemon_t *d, const zmq_pollitem_t *items, int n)
{
    int k = 0;
    for (int g = 0; g < d->n_gw && k < n; g++) {
        if (d->gsub[g] && k < n) {
            if (items[k].revents & ZMQ_POLLIN)
                ctld_gateway_drain(d, g, d->gsub[g]);
            k++;
        }
        if (d->gmon[g] && k < n) {
            if (items[k].revents & ZMQ_POLLIN)
                s_on_events(d, g);
            k++;
        }
    }
}

/* ---------------------------------------------------------------- each gateway's period */

/* Device i's telemetry period as stated, as measured and whether the measured one is used. */
typedef struct {
    int *stated;
    ctl_tel_spacing_t *spacing;
    bool *measured;
} s_tel_t;

static s_tel_t s_tel(ctl_daemon_t *d, int i)
{
    if (!ctld_is_group(d) || i == d->own)
        return (s_tel_t){&d->tel_period_ms, &d->tel_spacing, &d->tel_measured};
    ctld_unit_t *u = &d->units[i];
    return (s_tel_t){&u->tel_period_ms, &u->tel_spacing, &u->tel_measured};
}

static int s_period(const ctl_daemon_t *d, int i)
{
    bool own = !ctld_is_group(d) || i == d->own;
    int stated = own ? d->tel_period_ms : d->units[i].tel_period_ms;
    const ctl_tel_spacing_t *sp = own ? &d->tel_spacing : &d->units[i].tel_spacing;
    return ctl_tel_period_ms(stated, d->set.tel_period_ms, ctl_tel_spacing_ms(sp));
}

int ctld_unit_silence_ms(const ctl_daemon_t *d, int i)
{
    return ctl_tel_silence_ms(s_period(d, i));
}

void ctld_tel_stale_update(ctl_daemon_t *d)
{
    int longest = 0;
    for (int i = 0; i < d->n_units; i++)
        if (s_period(d, i) > longest)
            longest = s_period(d, i);
    d->set.params.telemetry_timeout_ms = ctl_tel_stale_ms(longest);
}

void ctld_tel_period_seen(ctl_daemon_t *d, int i, const cJSON *msg, int64_t now)
{
    char err[160] = "";
    int stated = ctl_tel_period_stated(msg, err, sizeof err);
    s_tel_t t = s_tel(d, i);
    ctl_tel_spacing_add(t.spacing, now);
    bool changed = stated != *t.stated, first = *t.stated == 0;
    *t.stated = stated;
    /* none stated: the spacing measured counts once it is longer than the file says */
    bool measured = stated <= 0 && ctl_tel_spacing_ms(t.spacing) > d->set.tel_period_ms;
    bool measured_changed = measured != *t.measured;
    *t.measured = measured;
    if (changed || stated <= 0)
        ctld_tel_stale_update(d);
    if (!changed && !measured_changed)
        return;
    char dev[16];
    ctl_group_member_name(&d->set.group, i, dev, sizeof dev);
    int period = s_period(d, i);
    double silence_s = ctld_unit_silence_ms(d, i) / 1000.0;
    if (stated > 0) {
        if (!first || stated != d->set.tel_period_ms)
            log_info("device %s: its gateway sends telemetry every %d ms: silent after %.1f s "
                     "without it",
                     dev, period, silence_s);
        return;
    }
    char why[200];
    snprintf(why, sizeof why, "its telemetry's %s", err);
    log_write(stated < 0 && changed ? BIC_LOG_WARN : BIC_LOG_INFO,
              "device %s: %s; judged by %s (%d ms): silent after %.1f s without it", dev,
              stated < 0 ? why : "its gateway states no telemetry period",
              measured ? "the spacing of its messages" : "TelemetryPeriodMs", period, silence_s);
}
