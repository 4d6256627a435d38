/*
 * gw_bus: the CAN transport: the adapter locked and opened, frames to and from the scheduler,
 * the bus down (every device offline, every request answered) and the reconnect with backoff.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "bic_proto.h"
#include "can_transport.h"
#include "gw_internal.h"
#include "gw_npb.h"
#include "log.h"
#include "monotime.h"

static void s_bus_down(gateway_t *gw, int64_t now, const char *why)
{
    snprintf(gw->bus_error, sizeof gw->bus_error, "%s", why);
    log_error("CAN bus down: %s; reconnecting", why);
    can_transport_close(&gw->tp);
    gw_adapter_unlock(gw);
    bus_sched_set_up(gw->sched, false, now);
    for (int a = 0; a < GW_DEV_MAX; a++) {
        gw_dev_t *d = gw->dev[a];
        if (!d)
            continue;
        d->probing = false;
        d->fast_busy = false;
        d->fast_left = 0;
        d->slow_left = 0;
        gw_set_online(gw, d, false, "CAN bus down");
    }
    gw_dispatch_results(gw, now);
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->dev[a])
            gw->dev[a]->identifying = false;
    gw->backoff_us = RECONNECT_MIN_US;
    gw->reconnect_at = now + gw->backoff_us;
    gw_publish_health(gw, now);
}

/* One gateway per adapter: a second process on the same tty would split the replies, break
 * the pacing and, with its C/S5/O handshake, close the first one's channel. The lock is taken
 * on a descriptor of our own before the transport touches the device (flock locks the device
 * itself, so it also holds when the adapter is reached through different symlinks). */
static int s_lock_adapter(gateway_t *gw, char *err, size_t errlen)
{
    can_transport_spec_t spec;
    if (can_transport_parse_spec(gw->set.can, &spec, err, errlen) < 0 ||
        strcmp(spec.kind, "slcan") != 0)
        return 0;
    int fd = open(spec.path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return 0; /* the transport reports a missing device with a better message */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "%.200s is in use by another process (%s)", spec.path,
                 errno == EWOULDBLOCK ? "locked" : strerror(errno));
        close(fd);
        return -1;
    }
    gw->lock_fd = fd;
    return 0;
}

void gw_adapter_unlock(gateway_t *gw)
{
    if (gw->lock_fd >= 0)
        close(gw->lock_fd);
    gw->lock_fd = -1;
}

int gw_bus_open(gateway_t *gw, int64_t now)
{
    char err[256];
    if (s_lock_adapter(gw, err, sizeof err) < 0) {
        if (strcmp(err, gw->bus_error) != 0)
            log_warn("cannot use CAN transport %s: %s", gw->set.can, err);
        snprintf(gw->bus_error, sizeof gw->bus_error, "%s", err);
        return -1;
    }
    can_filter_spec_t filt[CAN_TRANSPORT_FILTERS_MAX];
    can_transport_opts_t topts = {.filters = filt,
                                  .nfilters = gw_npb_rx_filters(filt, CAN_TRANSPORT_FILTERS_MAX)};
    gw->tp = can_transport_open_opts(gw->set.can, &topts, err, sizeof err);
    if (!gw->tp)
        gw_adapter_unlock(gw);
    if (!gw->tp) {
        if (strcmp(err, gw->bus_error) != 0)
            log_warn("cannot open CAN transport %s: %s", gw->set.can, err);
        snprintf(gw->bus_error, sizeof gw->bus_error, "%s", err);
        return -1;
    }
    gw->bus_error[0] = '\0';
    can_transport_spec_t spec;
    rx_defer_init(&gw->rxd, can_transport_parse_spec(gw->set.can, &spec, err, sizeof err) == 0 &&
                                strcmp(spec.kind, "slcan") == 0);
    bus_sched_set_up(gw->sched, true, now);
    /* another process may have used the bus a moment ago (a restart) */
    bus_sched_assume_busy(gw->sched, mono_us());
    log_info("CAN transport %s up", gw->set.can);
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->dev[a])
            gw_ident_start(gw, gw->dev[a], now);
    if (gw->set.discover) {
        /* [GATEWAY] Discover: scan 0-7 whenever the bus comes up */
        job_t *j = gw_job_new(gw, JOB_DISCOVER, NULL, NULL);
        if (j) {
            for (int a = 0; a <= 7; a++)
                gw_job_add_read(j, (uint8_t)a, BIC_CMD_MFR_MODEL_B0B5, BUS_REQ_NO_RETRY);
            for (int a = GW_NPB_BASE; a < GW_DEV_MAX; a++) /* and the NPB addresses 0-3 */
                gw_job_add_read(j, (uint8_t)a, BIC_CMD_MFR_MODEL_B0B5, BUS_REQ_NO_RETRY);
            gw_job_start(gw, j, now);
        }
    }
    return 0;
}

void gw_bus_reconnect(gateway_t *gw, int64_t now)
{
    if (gw->tp || now < gw->reconnect_at)
        return;
    if (gw_bus_open(gw, now) == 0) {
        gw->reconnects++;
        gw->backoff_us = RECONNECT_MIN_US;
        gw_publish_health(gw, now);
        return;
    }
    gw->backoff_us = gw->backoff_us * 2 > RECONNECT_MAX_US ? RECONNECT_MAX_US : gw->backoff_us * 2;
    gw->reconnect_at = now + gw->backoff_us;
}

void gw_bus_io(gateway_t *gw, int64_t now)
{
    if (gw->tp) {
        can_frame_t fr;
        int rc;
        while ((rc = can_transport_recv(gw->tp, &fr)) == 1) {
            uint32_t id = (fr.ext && !fr.rtr) ? fr.id : 0xFFFFFFFFu;
            int64_t t = mono_us();
            int matched = bus_sched_on_rx(gw->sched, t, id, fr.data, fr.dlc);
            if (matched)
                rx_defer_reply(&gw->rxd, t);
            if (log_enabled(BIC_LOG_DEBUG))
                log_debug("rx %lld 0x%08X %02X%02X dlc %d%s", (long long)t, fr.id, fr.data[0],
                          fr.data[1], fr.dlc, matched ? "" : " stray");
        }
        if (rc < 0) {
            char why[256];
            snprintf(why, sizeof why, "%s", can_transport_last_error(gw->tp));
            s_bus_down(gw, now, why[0] ? why : "adapter gone");
            return;
        }
    }
    gw_bcast_update(gw, now);
    bool sent_any = false, sent_read = false;
    int64_t sent_at = 0;
    for (int guard = 0; guard < 4; guard++) {
        now = mono_us();
        bus_req_t tx;
        if (!gw->tp || !bus_sched_tick(gw->sched, now, &tx)) {
            break;
        }
        can_frame_t fr;
        bic_err_t e =
            tx.len
                ? bic_encode_write(gw_dev_family(tx.addr), gw_dev_bus_addr(tx.addr), tx.cmd,
                                   tx.len == 1 ? tx.data[0] : (tx.data[0] | (tx.data[1] << 8)), &fr)
                : bic_encode_read(gw_dev_family(tx.addr), gw_dev_bus_addr(tx.addr), tx.cmd, &fr);
        if (e != BIC_OK) {
            log_error("cannot encode request 0x%04X for device %d: %s", tx.cmd, tx.addr,
                      bic_strerror(e));
            continue;
        }
        int sent = can_transport_send(gw->tp, &fr);
        int64_t t_sent = mono_us();
        bus_sched_sent(gw->sched, t_sent);
        sent_any = true;
        sent_read = tx.len == 0;
        sent_at = t_sent;
        if (log_enabled(BIC_LOG_DEBUG))
            log_debug("tx %lld (picked %lld) 0x%08X %02X%02X dlc %d", (long long)t_sent,
                      (long long)now, fr.id, fr.data[0], fr.data[1], fr.dlc);
        if (sent < 0) {
            if (can_transport_state(gw->tp) == CAN_TRANSPORT_DOWN) {
                char why[256];
                snprintf(why, sizeof why, "%s", can_transport_last_error(gw->tp));
                s_bus_down(gw, now, why[0] ? why : "adapter gone");
                return;
            }
            log_warn("CAN send refused: %s", can_transport_last_error(gw->tp));
        }
    }
    /* after the loop: a write's next bus deadline is known only once the tick said no */
    if (sent_any)
        rx_defer_sent(&gw->rxd, sent_at, sent_read, bus_sched_deadline(gw->sched));
    gw_dispatch_results(gw, mono_us());
}
