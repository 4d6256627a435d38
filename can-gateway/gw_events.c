/*
 * gw_events: what the gateway publishes besides telemetry: a device's events (evt/<dev>) and
 * the gateway's health (gw): bus state, counters, leases, the state file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <cJSON.h>
#include <czmq.h>

#include "gw_internal.h"
#include "lease.h"

void gw_publish(gateway_t *gw, const char *topic, cJSON *body)
{
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text)
        return;
    zsock_send(gw->pub, "ss", topic, text);
    free(text);
}

cJSON *gw_event(const gw_dev_t *d, const char *name)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "v", 1);
    cJSON_AddNumberToObject(e, "dev", d->addr);
    cJSON_AddNumberToObject(e, "ts_ms", (double)gw_wall());
    cJSON_AddStringToObject(e, "event", name);
    return e;
}

void gw_publish_event(gateway_t *gw, const gw_dev_t *d, cJSON *e)
{
    char topic[16];
    snprintf(topic, sizeof topic, "evt/%d", d->addr);
    gw_publish(gw, topic, e);
}

void gw_publish_health(gateway_t *gw, int64_t now)
{
    const bus_sched_stats_t *st = bus_sched_stats(gw->sched);
    can_transport_stats_t ts = {0};
    if (gw->tp)
        can_transport_stats(gw->tp, &ts);
    cJSON *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(g, "v", 1);
    cJSON_AddNumberToObject(g, "ts_ms", (double)gw_wall());
    cJSON_AddStringToObject(g, "bus", bus_sched_is_up(gw->sched) ? "up" : "down");
    if (!bus_sched_is_up(gw->sched) && gw->bus_error[0])
        cJSON_AddStringToObject(g, "bus_error", gw->bus_error);
    cJSON_AddStringToObject(g, "transport", gw->set.can);
    cJSON_AddNumberToObject(g, "uptime_s", round((now - gw->start_us) / 100000.0) / 10.0);
    cJSON_AddNumberToObject(g, "frames_tx", (double)st->frames_tx);
    cJSON_AddNumberToObject(g, "frames_rx", (double)st->frames_rx);
    cJSON_AddNumberToObject(g, "errors", (double)(ts.errors + ts.error_frames + ts.garbage));
    cJSON_AddNumberToObject(g, "timeouts", (double)st->timeouts);
    cJSON_AddNumberToObject(g, "retries", (double)st->retries);
    cJSON_AddNumberToObject(g, "stray", (double)st->stray);
    cJSON_AddNumberToObject(g, "busy", (double)st->busy);
    cJSON_AddNumberToObject(g, "aged", (double)st->aged);
    cJSON_AddNumberToObject(g, "broadcasts", (double)st->broadcasts);
    cJSON_AddNumberToObject(g, "broadcast_writes", (double)st->merged);
    if (gw->set.bcast) { /* the devices whose identical writes go as one frame now */
        cJSON *bd = cJSON_AddArrayToObject(g, "broadcast_devs");
        uint64_t set = bus_sched_broadcast(gw->sched);
        for (int a = 0; a < 64; a++)
            if ((set >> a) & 1)
                cJSON_AddItemToArray(bd, cJSON_CreateNumber(a));
    }
    cJSON_AddNumberToObject(g, "queue_depth", (double)bus_sched_depth(gw->sched));
    cJSON_AddNumberToObject(g, "reconnects", (double)gw->reconnects);
    /* every held lease, by device */
    cJSON *ls = cJSON_AddArrayToObject(g, "leases");
    for (int a = 0; a < GW_DEV_MAX; a++) {
        const char *h = lease_holder(gw_lease(gw, a), now);
        if (!h)
            continue;
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "dev", a);
        cJSON_AddStringToObject(l, "holder", h);
        cJSON_AddNumberToObject(l, "expires_in_s", gw_lease_left_s(gw, a, now));
        cJSON_AddItemToArray(ls, l);
    }
    cJSON *sf = cJSON_AddObjectToObject(g, "state_file");
    cJSON_AddBoolToObject(sf, "ok", gw->state_error[0] == '\0');
    cJSON_AddStringToObject(sf, "path", gw->state_path);
    if (gw->state_error[0])
        cJSON_AddStringToObject(sf, "error", gw->state_error);
    cJSON_AddNumberToObject(sf, "failures", (double)gw->state_failures);
    gw_publish(gw, "gw", g);
}
