/*
 * The broadcast set of the bus ([GATEWAY] BroadcastWrites): which BICs the bus scheduler may
 * write with one frame to the broadcast ID when a group's controller gives them all the same
 * value. Every configured BIC, while each is online and all are leased by one holder (one
 * controller instance: the device links of a group differ only in a final "-u<device>"), and
 * only when no BIC answers on the bus that is not configured. Otherwise the empty set: each
 * write to its own device. Every per-device check (limits, lease, token, EEPROM budget) is
 * made before a request is queued, as without the key: the set changes only how the frame
 * goes out.
 */
#include "gw_internal.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* The length of the holder name that names the controller instance: without a final
 * "-u<digit>..." (the device link of a group), else the whole name. */
static size_t s_instance_len(const char *holder)
{
    size_t n = strlen(holder);
    for (size_t i = n; i >= 2; i--)
        if (holder[i - 2] == '-' && holder[i - 1] == 'u' && holder[i] >= '0' && holder[i] <= '9')
            return i - 2;
    return n;
}

/* The set now, or 0 with the reason in why. */
static uint64_t s_set(gateway_t *gw, int64_t now, char *why, size_t whylen)
{
    uint64_t set = 0;
    const char *first = NULL;
    size_t first_len = 0;
    int n = 0;
    for (int a = 0; a < GW_NPB_BASE; a++) {
        gw_dev_t *d = gw->dev[a];
        if (!gw->set.dev[a].present) {
            if (d && d->identified) {
                snprintf(why, whylen, "device %d answers on the bus but is not configured", a);
                return 0;
            }
            continue;
        }
        if (!d || !d->online) {
            snprintf(why, whylen, "device %d is offline", a);
            return 0;
        }
        const char *h = lease_holder(gw_lease(gw, a), now);
        if (!h) {
            snprintf(why, whylen, "device %d is not leased", a);
            return 0;
        }
        size_t len = s_instance_len(h);
        if (!first) {
            first = h;
            first_len = len;
        } else if (len != first_len || strncmp(h, first, len) != 0) {
            snprintf(why, whylen, "device %d is leased by %s, another holder than %.*s's", a, h,
                     (int)first_len, first);
            return 0;
        }
        set |= 1ULL << a;
        n++;
    }
    if (n < 2) {
        snprintf(why, whylen, "fewer than two BICs configured");
        return 0;
    }
    return set;
}

void gw_bcast_update(gateway_t *gw, int64_t now)
{
    uint64_t was = bus_sched_broadcast(gw->sched);
    char why[160] = "";
    uint64_t set = gw->set.bcast ? s_set(gw, now, why, sizeof why) : 0;
    if (set == was)
        return;
    bus_sched_set_broadcast(gw->sched, set);
    if (set) {
        char list[200] = "";
        size_t k = 0;
        for (int a = 0; a < GW_NPB_BASE && k < sizeof list - 4; a++)
            if ((set >> a) & 1)
                k += (size_t)snprintf(list + k, sizeof list - k, "%s%d", k ? "," : "", a);
        log_info("broadcast writes on for devices %s (one holder leases them all)", list);
    } else {
        log_info("broadcast writes off: %s", gw->set.bcast ? why : "BroadcastWrites = 0");
    }
}

bool gw_bcast_preset_applies(gateway_t *gw, const gw_dev_t *d, int64_t now, char *why,
                             size_t whylen)
{
    /* a trickling idle unit would start moving the preset's current */
    if (gw->set.idle_min) {
        snprintf(why, whylen, "IdleState = min");
        return false;
    }
    if (!gw->set.bcast) {
        snprintf(why, whylen, "broadcast writes are off (BroadcastWrites = 0)");
        return false;
    }
    gw_bcast_update(gw, now); /* a lease this request just took counts */
    if (d->addr < GW_NPB_BASE && ((bus_sched_broadcast(gw->sched) >> d->addr) & 1))
        return true;
    char set_why[160] = "";
    if (!s_set(gw, now, set_why, sizeof set_why))
        snprintf(why, whylen, "no broadcast writes: %s", set_why);
    else
        snprintf(why, whylen, "device %d is not in the broadcast set", d->addr);
    return false;
}
