/*  can_socketcan.c - the SocketCAN backend of can_transport: a CAN_RAW socket bound to one
    interface, with the transport's receive filters installed in the kernel (CAN_RAW_FILTER)
    and all error classes enabled (CAN_RAW_ERR_FILTER), so error frames are counted instead
    of passing unnoticed. ENETDOWN / ENODEV (interface down or removed) make the transport
    DOWN; a full transmit queue (ENOBUFS) is a transient refusal.
*/
#include "can_transport_int.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/can.h>
#include <linux/can/error.h>
#include <linux/can/raw.h>

_Static_assert(CAN_TRANSPORT_EFF_FLAG == CAN_EFF_FLAG, "flag values follow <linux/can.h>");
_Static_assert(CAN_TRANSPORT_RTR_FLAG == CAN_RTR_FLAG, "flag values follow <linux/can.h>");
_Static_assert(CAN_TRANSPORT_EFF_MASK == CAN_EFF_MASK, "flag values follow <linux/can.h>");

static bool s_link_gone(int e)
{
    return e == ENETDOWN || e == ENODEV || e == ENXIO || e == EBADF;
}

static int s_send(can_transport_t *t, const can_frame_t *fr)
{
    struct can_frame cf;
    memset(&cf, 0, sizeof cf);
    cf.can_id = fr->ext ? ((fr->id & CAN_EFF_MASK) | CAN_EFF_FLAG) : (fr->id & CAN_SFF_MASK);
    if (fr->rtr)
        cf.can_id |= CAN_RTR_FLAG;
    cf.can_dlc = fr->dlc;
    memcpy(cf.data, fr->data, fr->dlc);
    ssize_t n = write(t->fd, &cf, sizeof cf);
    if (n == (ssize_t)sizeof cf)
        return 0;
    if (n < 0 && s_link_gone(errno)) {
        can_transport_set_down(t, "CAN interface gone or down: %s", strerror(errno));
        return -1;
    }
    snprintf(t->last_error, sizeof t->last_error, "CAN send refused: %s",
             n < 0 ? strerror(errno) : "short write");
    return -1;
}

static int s_recv(can_transport_t *t, can_frame_t *out)
{
    for (;;) {
        struct can_frame cf;
        if (!can_transport_may_read(t))
            return 0;
        ssize_t n = read(t->fd, &cf, sizeof cf);
        if (n < 0) {
            t->ready = false;
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            if (s_link_gone(errno)) {
                can_transport_set_down(t, "CAN interface gone or down: %s", strerror(errno));
                return -1;
            }
            /* Other errors (e.g. a reported bus problem) are counted, not fatal. */
            t->stats.errors++;
            snprintf(t->last_error, sizeof t->last_error, "CAN read error: %s", strerror(errno));
            return 0;
        }
        if (n != (ssize_t)sizeof cf) {
            t->stats.errors++;
            continue;
        }
        if (cf.can_id & CAN_ERR_FLAG) {
            t->stats.error_frames++;
            continue;
        }
        memset(out, 0, sizeof *out);
        out->ext = (cf.can_id & CAN_EFF_FLAG) != 0;
        out->rtr = (cf.can_id & CAN_RTR_FLAG) != 0;
        out->id = cf.can_id & (out->ext ? CAN_EFF_MASK : CAN_SFF_MASK);
        out->dlc = cf.can_dlc > 8 ? 8 : cf.can_dlc;
        memcpy(out->data, cf.data, out->dlc);
        return 1;
    }
}

static void s_close(can_transport_t *t)
{
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
}

static const can_transport_ops_t s_ops = {s_send, s_recv, s_close};

int can_socketcan_open(can_transport_t *t, const char *iface, char *err, size_t errlen)
{
    int fd = socket(PF_CAN, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, CAN_RAW);
    if (fd < 0) {
        int en = errno;
        if (en == EAFNOSUPPORT || en == EPROTONOSUPPORT || en == ESOCKTNOSUPPORT)
            snprintf(err, errlen,
                     "socketcan: AF_CAN is not available in this kernel (%s); load the can "
                     "and can_raw modules (modprobe can_raw) or use an slcan adapter "
                     "(slcan:/dev/ttyACM0)",
                     strerror(en));
        else
            snprintf(err, errlen, "socketcan: cannot create a CAN socket: %s", strerror(en));
        return -1;
    }
    t->fd = fd;
    t->ops = &s_ops;

    unsigned idx = if_nametoindex(iface);
    if (idx == 0) {
        snprintf(err, errlen,
                 "socketcan: interface %s not found (check `ip link show`; for a CAN HAT the "
                 "driver must be loaded, e.g. can0)",
                 iface);
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
        snprintf(err, errlen,
                 "socketcan: interface %s is down (bring it up at 250 kbit/s: "
                 "`bicctl can_up %s` or `ip link set %s up type can bitrate 250000`)",
                 iface, iface, iface);
        return -1;
    }

    struct can_filter kf[CAN_TRANSPORT_FILTERS_MAX];
    for (size_t i = 0; i < t->nfilters; i++) {
        kf[i].can_id = t->filters[i].id;
        kf[i].can_mask = t->filters[i].mask;
    }
    if (setsockopt(fd, SOL_CAN_RAW, CAN_RAW_FILTER, kf, (socklen_t)(t->nfilters * sizeof kf[0])) <
        0) {
        snprintf(err, errlen, "socketcan: cannot set the receive filter: %s", strerror(errno));
        return -1;
    }
    can_err_mask_t em = CAN_ERR_MASK;
    if (setsockopt(fd, SOL_CAN_RAW, CAN_RAW_ERR_FILTER, &em, sizeof em) < 0) {
        snprintf(err, errlen, "socketcan: cannot enable error frames: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_can addr;
    memset(&addr, 0, sizeof addr);
    addr.can_family = AF_CAN;
    addr.can_ifindex = (int)idx;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        snprintf(err, errlen, "socketcan: cannot bind to %s: %s", iface, strerror(errno));
        return -1;
    }
    return 0;
}
