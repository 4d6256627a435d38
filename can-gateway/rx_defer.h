/*
 * rx_defer: when the gateway's loop reads an slcan adapter (pure core, no I/O, no clock reads).
 *
 * An slcan adapter acknowledges every frame it transmits ('z\r' / '\r') as soon as it takes
 * it, and the device's reply to a read comes a millisecond or more later: polled all the time,
 * the adapter wakes the loop twice per read and once per write for nothing but the ack. So
 * after a read the adapter is left out of the poll until its reply is due (the shortest round
 * trip of the recent replies read as they came, plus a margin), and ack and reply are read in
 * one wake-up; after a write, until the loop's next bus deadline (the next request). Whatever
 * is read late is only ever timed later than it came, which the scheduler's pacing treats as
 * later traffic (bus_sched_on_rx): the next request can only go out later, never earlier.
 * Round trips of replies read at the end of a deferral are not samples (they say only that the
 * reply came before), every RX_DEFER_PROMPT_EVERY-th read is polled as it comes so that the
 * scheduler's and this estimate keep following the bus, and nothing is deferred before
 * RX_DEFER_TRUST samples. All times are monotonic microseconds passed in by the caller.
 */
#ifndef BIC_RX_DEFER_H
#define BIC_RX_DEFER_H

#include <stdbool.h>
#include <stdint.h>

#define RX_DEFER_WINDOW 8          /* prompt round trips the estimate is the shortest of */
#define RX_DEFER_TRUST 4           /* prompt round trips before the first deferral */
#define RX_DEFER_PROMPT_EVERY 16   /* one read in this many is polled as it comes */
#define RX_DEFER_MARGIN_US 150     /* added to the estimate: most replies are in at its end */
#define RX_DEFER_READ_MAX_US 10000 /* a read's deferral never longer (timeouts are longer) */
/* nor a write's (when no request follows soon): half the time within which the scheduler
 * takes a frame like the last one sent for the adapter's echo of it, not another master's */
#define RX_DEFER_WRITE_MAX_US 50000

typedef struct {
    bool enabled;                 /* the adapter acks each frame (slcan); off: always polled */
    int64_t until;                /* the adapter is not polled before this; 0: polled */
    bool late;                    /* what is read now was read at the end of a deferral */
    bool reading;                 /* a read is in flight ... */
    int64_t sent_at;              /* ... sent then */
    int64_t rtt[RX_DEFER_WINDOW]; /* the last prompt round trips */
    int nrtt, irtt;
    unsigned reads;    /* reads sent, for the prompt one in RX_DEFER_PROMPT_EVERY */
    uint64_t deferred; /* deferrals made (reads and writes) */
    uint64_t caught;   /* reads whose reply was in at the end of the deferral */
} rx_defer_t;

/* Starts afresh (a transport opened); enabled for an adapter that acks its frames. */
void rx_defer_init(rx_defer_t *d, bool enabled);

/* A frame left at `now`: a read (a reply is expected) or a write; next_us is the loop's next
 * bus deadline (bus_sched_deadline() after the send, INT64_MAX when idle). */
void rx_defer_sent(rx_defer_t *d, int64_t now, bool read, int64_t next_us);

/* Before the poll: true to poll the adapter; while it is deferred, false, and *deadline is
 * lowered to the end of the deferral. */
bool rx_defer_poll(rx_defer_t *d, int64_t *deadline);

/* After the poll: true when the deferral has ended by `now`: the adapter is to be read though
 * the poll did not watch it. What is read until the next rx_defer_poll() counts as late. */
bool rx_defer_due(rx_defer_t *d, int64_t now);

/* The reply to the read in flight was read at `now`. */
void rx_defer_reply(rx_defer_t *d, int64_t now);

#endif
