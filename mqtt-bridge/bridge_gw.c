/*
 * bridge_gw: the bridge's side of the gateway: requests queued and sent one at a time on the
 * asynchronous REQ client (commands, device info, register reads, lease releases), their
 * replies, and the telemetry and events arriving on the gateway's PUB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_internal.h"
#include "log.h"
#include "monotime.h"

/* ---------------------------------------------------------------- gateway requests */

void br_job_free(job_t *j)
{
    cJSON_Delete(j->req);
    cJSON_Delete(j->corr);
    memset(j, 0, sizeof *j);
}

/* Takes ownership of the job's allocations (freed on failure). */
int br_enqueue(bridge_t *b, job_t *j)
{
    if (b->qlen == QUEUE_MAX) {
        br_job_free(j);
        return -1;
    }
    b->queue[(b->qhead + b->qlen) % QUEUE_MAX] = *j;
    b->qlen++;
    memset(j, 0, sizeof *j);
    return 0;
}

static bool s_queued(const bridge_t *b, origin_t origin, int dev)
{
    if (b->busy && b->inflight.origin == origin && b->inflight.dev == dev)
        return true;
    for (size_t i = 0; i < b->qlen; i++) {
        const job_t *j = &b->queue[(b->qhead + i) % QUEUE_MAX];
        if (j->origin == origin && j->dev == dev)
            return true;
    }
    return false;
}

void br_request_info(bridge_t *b)
{
    if (s_queued(b, ORIGIN_INFO, -1))
        return;
    job_t j = {.origin = ORIGIN_INFO, .dev = -1};
    j.req = cJSON_CreateObject();
    cJSON_AddNumberToObject(j.req, "v", 1);
    cJSON_AddStringToObject(j.req, "op", "info");
    cJSON_AddStringToObject(j.req, "client", BCMD_CLIENT);
    if (br_enqueue(b, &j) != 0)
        log_warn("gateway request queue full; device info refresh postponed");
}

static void s_request_regs(bridge_t *b, int dev)
{
    if (s_queued(b, ORIGIN_REGS, dev))
        return;
    job_t j = {.origin = ORIGIN_REGS, .dev = dev};
    j.req = cJSON_CreateObject();
    cJSON_AddNumberToObject(j.req, "v", 1);
    cJSON_AddStringToObject(j.req, "op", "get");
    cJSON_AddNumberToObject(j.req, "dev", dev);
    cJSON_AddStringToObject(j.req, "client", BCMD_CLIENT);
    cJSON *regs = cJSON_AddArrayToObject(j.req, "regs");
    cJSON_AddItemToArray(regs, cJSON_CreateString("SYSTEM_CONFIG"));
    /* an NPB has no BIDIRECTIONAL_CONFIG (its mode is in the telemetry's curve) */
    if (dev < 64)
        cJSON_AddItemToArray(regs, cJSON_CreateString("BIDIRECTIONAL_CONFIG"));
    br_enqueue(b, &j);
}

static void s_result(bridge_t *b, const job_t *j, const cJSON *reply)
{
    char *payload;
    if (cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok"))) {
        payload = bcmd_result_ok(j->kind, j->corr, j->what, reply);
        log_info("dev %d %s/set %s: ok", j->dev, bcmd_kind_name(j->kind), j->what);
    } else {
        const cJSON *e = cJSON_GetObjectItem(reply, "error");
        const cJSON *code = cJSON_GetObjectItem(e, "code");
        const cJSON *msg = cJSON_GetObjectItem(e, "message");
        const char *c = cJSON_IsString(code) ? code->valuestring : "internal";
        const char *m = cJSON_IsString(msg) ? msg->valuestring : "gateway error without message";
        payload = bcmd_result_error(j->kind, j->corr, j->what, c, m, e);
        log_warn("dev %d %s/set %s: refused by the gateway: %s: %s", j->dev,
                 bcmd_kind_name(j->kind), j->what, c, m);
    }
    br_send_result(b, &j->reply, payload);
    free(payload);
}

void br_on_reply(bridge_t *b, job_t *j, cJSON *reply, int64_t now)
{
    bool ok = cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok"));
    /* a take (a manual setpoint with lease_ttl_s) replies with the lease's token: the gateway
     * gives one token for all of the bridge's devices while it presents it, a new one after
     * its leases lapsed or were released */
    const cJSON *tk = cJSON_GetObjectItem(reply, "token");
    if (ok && cJSON_IsString(tk) && gw_token_valid(tk->valuestring))
        br_copy(b->lease_token, sizeof b->lease_token, tk->valuestring);
    switch (j->origin) {
    case ORIGIN_CMD:
        s_result(b, j, reply);
        break;
    case ORIGIN_INFO: {
        if (!ok) {
            b->next_info = now + INFO_RETRY_MS;
            break;
        }
        const cJSON *devs = cJSON_GetObjectItem(reply, "devices");
        const cJSON *d;
        cJSON_ArrayForEach(d, devs)
        {
            int dev = br_msg_dev(cJSON_GetObjectItem(d, "dev"));
            slot_t *s = br_slot(b, dev, true);
            if (!s)
                continue;
            char err[128];
            if (dev_view_on_info(s->dv, d, err, sizeof err) != 0)
                log_warn("gateway info for dev %d ignored: %s", dev, err);
            else if (cJSON_IsTrue(cJSON_GetObjectItem(d, "online")))
                s->want_regs = true;
        }
        b->next_info = now + INFO_PERIOD_MS;
        for (int dev = 0; dev < MAX_DEVS; dev++) {
            slot_t *s = &b->slots[dev];
            if (!s->dv)
                continue;
            if (s->want_regs)
                s_request_regs(b, dev);
            br_publish_device(b, s, now);
        }
        break;
    }
    case ORIGIN_RELEASE:
        if (ok)
            log_info("dev %d: controller enabled: the manual hold ends", j->dev);
        break;
    case ORIGIN_REGS: {
        slot_t *s = br_slot(b, j->dev, false);
        if (!s)
            break;
        if (ok) {
            dev_view_on_regs(s->dv, cJSON_GetObjectItem(reply, "values"));
            s->want_regs = false;
            br_publish_device(b, s, now);
        }
        break;
    }
    }
}

void br_on_gateway_lost(bridge_t *b, const job_t *j, int64_t now)
{
    if (j->origin == ORIGIN_CMD) {
        char *p = bcmd_result_error(j->kind, j->corr, j->what, "gateway_unreachable",
                                    "the gateway did not answer; nothing was changed by the "
                                    "bridge (the request may or may not have reached the device)",
                                    NULL);
        br_send_result(b, &j->reply, p);
        free(p);
        log_warn("dev %d %s/set %s: the gateway did not answer", j->dev, bcmd_kind_name(j->kind),
                 j->what);
    } else if (j->origin == ORIGIN_INFO) {
        b->next_info = now + INFO_RETRY_MS;
    }
}

void br_pump_queue(bridge_t *b)
{
    while (!b->busy && b->qlen) {
        job_t j = b->queue[b->qhead];
        b->qhead = (b->qhead + 1) % QUEUE_MAX;
        b->qlen--;
        /* every request in the bridge's name carries its lease token: the name is public,
         * the lease is the bridge's by the token */
        const cJSON *cl = cJSON_GetObjectItem(j.req, "client");
        if (b->lease_token[0] && cJSON_IsString(cl) && strcmp(cl->valuestring, BCMD_CLIENT) == 0 &&
            !cJSON_GetObjectItem(j.req, "token"))
            cJSON_AddStringToObject(j.req, "token", b->lease_token);
        if (gw_client_send(b->gw, j.req) != 0) {
            log_error("cannot send a request to the gateway");
            br_on_gateway_lost(b, &j, mono_ms());
            br_job_free(&j);
            continue;
        }
        b->inflight = j;
        b->busy = true;
    }
}

/* ---------------------------------------------------------------- gateway PUB */

void br_set_gw_alive(bridge_t *b, bool alive, int64_t now)
{
    if (alive == b->gw_alive)
        return;
    b->gw_alive = alive;
    b->gw_silence_warned = !alive; /* a lost gateway is logged here already */
    if (alive)
        log_info("gateway reachable");
    else
        log_warn("gateway silent for %d s: devices reported offline", GW_SILENCE_MS / 1000);
    for (int d = 0; d < MAX_DEVS; d++) {
        slot_t *s = &b->slots[d];
        if (!s->dv)
            continue;
        dev_view_set_gateway_reachable(s->dv, alive);
        br_publish_device(b, s, now);
    }
    if (alive)
        b->next_info = now; /* a restarted gateway may know more (or other) devices */
    br_publish_app(b, now);
}

void br_on_pub(bridge_t *b, const char *topic, cJSON *msg, int64_t now)
{
    b->gw_last_ms = now;
    br_set_gw_alive(b, true, now);
    if (strncmp(topic, "tel/", 4) == 0) {
        slot_t *s = br_slot(b, br_msg_dev(cJSON_GetObjectItem(msg, "dev")), true);
        if (!s)
            return; /* no device address, or a device this bridge is not configured for */
        char err[128];
        if (dev_view_on_telemetry(s->dv, msg, err, sizeof err) != 0) {
            log_warn("telemetry %s ignored: %s", topic, err);
            return;
        }
        if (!s->tel0_ms)
            s->tel0_ms = now;
        if (!dev_view_has_info(s->dv) && b->next_info > b->last_info_ms + INFO_RETRY_MS)
            b->next_info = b->last_info_ms + INFO_RETRY_MS;
        br_publish_device(b, s, now);
    } else if (strncmp(topic, "evt/", 4) == 0) {
        const cJSON *ev = cJSON_GetObjectItem(msg, "event");
        int dev = br_msg_dev(cJSON_GetObjectItem(msg, "dev"));
        if (!cJSON_IsString(ev))
            return;
        log_info("gateway event dev %d: %s", dev, ev->valuestring);
        if (strcmp(ev->valuestring, "online") == 0)
            b->next_info = now; /* identity and limits may have changed */
        /* Events (fault edges, lease lapsed, safe state applied, ...) for users, as the
         * gateway sent them. */
        slot_t *s = br_slot(b, dev, false);
        char *p = s ? cJSON_PrintUnformatted(msg) : NULL;
        if (p) {
            char t[600];
            snprintf(t, sizeof t, "%s/inv/%d/event", b->set.site.topic_main, dev);
            br_publish(b, t, p, 0, false);
        }
        free(p);
    } else if (strcmp(topic, "gw") == 0) {
        const cJSON *bus = cJSON_GetObjectItem(msg, "bus");
        if (cJSON_IsString(bus) && strcmp(bus->valuestring, b->gw_bus) != 0) {
            br_copy(b->gw_bus, sizeof b->gw_bus, bus->valuestring);
            br_publish_app(b, now);
        }
    }
}
