/*
 * rx_defer: when the gateway's loop reads an slcan adapter. See rx_defer.h for the contract.
 * Pure: no I/O, time comes in as `now` (µs).
 */
#include "rx_defer.h"

#include <string.h>

void rx_defer_init(rx_defer_t *d, bool enabled)
{
    memset(d, 0, sizeof *d);
    d->enabled = enabled;
}

static int64_t s_shortest(const rx_defer_t *d)
{
    int64_t m = d->rtt[0];
    for (int i = 1; i < d->nrtt; i++)
        if (d->rtt[i] < m)
            m = d->rtt[i];
    return m;
}

void rx_defer_sent(rx_defer_t *d, int64_t now, bool read, int64_t next_us)
{
    d->until = 0;
    d->reading = read;
    d->sent_at = now;
    if (!d->enabled)
        return;
    if (!read) {
        /* nothing answers a write: its ack is read when the loop wakes for the bus anyway */
        if (next_us > now)
            d->until =
                next_us - now > RX_DEFER_WRITE_MAX_US ? now + RX_DEFER_WRITE_MAX_US : next_us;
    } else if (++d->reads % RX_DEFER_PROMPT_EVERY != 0 && d->nrtt >= RX_DEFER_TRUST) {
        int64_t wait = s_shortest(d) + RX_DEFER_MARGIN_US;
        d->until = now + (wait > RX_DEFER_READ_MAX_US ? RX_DEFER_READ_MAX_US : wait);
    }
    if (d->until)
        d->deferred++;
}

bool rx_defer_poll(rx_defer_t *d, int64_t *deadline)
{
    d->late = false;
    if (!d->until)
        return true;
    if (d->until < *deadline)
        *deadline = d->until;
    return false;
}

bool rx_defer_due(rx_defer_t *d, int64_t now)
{
    if (!d->until || now < d->until)
        return false;
    d->until = 0;
    d->late = true;
    return true;
}

void rx_defer_reply(rx_defer_t *d, int64_t now)
{
    if (!d->reading)
        return;
    d->reading = false;
    if (d->late) {
        d->caught++;
        return;
    }
    int64_t rtt = now - d->sent_at;
    if (rtt <= 0)
        return;
    d->rtt[d->irtt] = rtt;
    d->irtt = (d->irtt + 1) % RX_DEFER_WINDOW;
    if (d->nrtt < RX_DEFER_WINDOW)
        d->nrtt++;
}
