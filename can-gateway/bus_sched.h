/*
 * bus_sched: the scheduler that owns one CAN bus (pure core, no I/O, no clock reads).
 *
 * It enforces the BIC-2200 timing rules (one request in flight per bus, a minimum period
 * between request starts, a gap after every reply), matches replies by CAN ID and echoed
 * command code (anything else is counted as stray and dropped, so a late reply can never
 * shift later reads), retries timed-out reads a bounded number of times and serves four
 * bounded priority queues. Within a queue the bus is shared fairly: each (device, flow)
 * pair, where the flow names who asked, takes its turn (the one served least recently goes
 * first; one pair's own requests keep their order), so a client that floods one device
 * slows only itself. The gateway's own safety requests (flow 0) come first; a client request
 * that waited too long (aging) goes ahead of the clients' safety and setpoint writes, one per
 * wait; telemetry that waited too long goes ahead of every client's requests, safety writes of
 * clients included. Identical writes queued for every BIC of a broadcast set go out as one
 * frame to the broadcast ID (bus_sched_set_broadcast). The loop around it transmits what
 * bus_sched_tick() returns, feeds received frames to bus_sched_on_rx() and collects results
 * with bus_sched_result().
 * All times are monotonic microseconds passed in by the caller.
 */
#ifndef BIC_BUS_SCHED_H
#define BIC_BUS_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Highest first. */
typedef enum {
    BUS_PRIO_SAFETY = 0, /* safety and setpoint writes, lease lapse */
    BUS_PRIO_CLIENT,     /* client get/set/init/discover */
    BUS_PRIO_FAST,       /* fast telemetry set, every cycle */
    BUS_PRIO_SLOW,       /* slow telemetry set, round robin */
    BUS_PRIO_COUNT
} bus_prio_t;

typedef enum {
    BUS_OK = 0,  /* read answered; data holds the reply payload after the command */
    BUS_WRITTEN, /* write transmitted (the device never answers writes) */
    BUS_TIMEOUT, /* no matching reply after all retries */
    BUS_DOWN,    /* the bus went down while the request was queued or in flight */
} bus_status_t;

/* Submission errors. */
#define BUS_SCHED_EFULL (-1) /* the queue of that priority is full */
#define BUS_SCHED_EDOWN (-2) /* the bus is down: fail fast, do not queue */
#define BUS_SCHED_EINVAL (-3)

typedef struct {
    uint8_t addr;    /* device number: 0-63 the BIC at that address, 64-67 the NPB at 0-3 */
    uint16_t cmd;    /* command code */
    uint8_t len;     /* data bytes to write (1 or 2); 0 = read */
    uint8_t data[6]; /* little-endian payload of a write */
    uint8_t flags;   /* BUS_REQ_* */
    uint32_t flow;   /* who asked: 0 the gateway itself (telemetry, safe state, deferred
                        writes), otherwise one value per client; with addr the share key */
} bus_req_t;

#define BUS_REQ_NO_RETRY 0x01 /* one attempt only (discovery scans, capability probes) */

/* bus_req_t.addr of a request bus_sched_tick() returns for the BICs' broadcast ID
 * (0x000C03FF): one write frame that stands for identical writes to every BIC of the
 * broadcast set. Never accepted by bus_sched_submit(). */
#define BUS_ADDR_BROADCAST 0xFF

typedef struct {
    uint64_t tag; /* the caller's tag from bus_sched_submit */
    bus_status_t status;
    bus_req_t req;   /* the request as submitted */
    uint8_t len;     /* reply data bytes (after the echoed command), BUS_OK only */
    uint8_t data[6]; /* reply data */
    int attempts;    /* transmissions made (1 + retries) */
    int64_t rtt_us;  /* request start to reply, BUS_OK only */
} bus_result_t;

typedef struct {
    int64_t period_us;          /* minimum time between request starts (20 ms) */
    int64_t gap_after_reply_us; /* minimum time from a reply to the next request (5 ms) */
    int64_t seen_slack_us;      /* subtracted from the time a reply shows the device saw the
                                   request (the part of period_us that is a safety margin for
                                   what replies cannot show; default 0) */
    int64_t write_extra_us;     /* added to the period after a write: nothing confirms when
                                   the device saw it (default 0) */
    int64_t timeout_us;         /* reply timeout per attempt */
    int retries;                /* extra attempts after a timeout */
    int queue_cap[BUS_PRIO_COUNT];
    int64_t max_wait_us[BUS_PRIO_COUNT]; /* aging (0 = none): when a telemetry queue has not
                                            been served for this long, what it holds at that
                                            moment goes ahead of every client request (safety
                                            writes of clients included; never ahead of the
                                            gateway's own safety, flow 0); when the client
                                            queue has not, its next request goes ahead of the
                                            clients' safety writes and of aged telemetry (one
                                            request per wait); bounds the wait of telemetry
                                            polling and of a client's request on a bus that
                                            setpoint writes fill */
    int64_t bcast_hold_us;  /* a client's write to a BIC of the broadcast set, while another
                               BIC of the set has no client request queued, waits at most
                               this long for its partners (0: none; default 0) */
    int64_t bcast_quiet_us; /* no broadcast for this long after another CAN master was seen
                               (default 60 s) */
} bus_sched_cfg_t;

typedef struct {
    uint64_t frames_tx;
    uint64_t frames_rx;  /* every frame offered to bus_sched_on_rx */
    uint64_t replies;    /* frames matched to the request in flight */
    uint64_t stray;      /* frames that matched nothing (late, duplicate, foreign) */
    uint64_t foreign;    /* of them, requests of another CAN master (controller -> device) */
    uint64_t timeouts;   /* requests failed after all retries */
    uint64_t retries;    /* retransmissions */
    uint64_t busy;       /* submissions refused because a queue was full */
    uint64_t bus_down;   /* requests failed because the bus was down */
    uint64_t aged;       /* requests served ahead of their priority because they waited too
                            long (max_wait_us) */
    uint64_t broadcasts; /* write frames sent to the broadcast ID (counted in frames_tx) */
    uint64_t merged;     /* requests completed by them (BUS_WRITTEN each) */
} bus_sched_stats_t;

typedef struct bus_sched bus_sched_t;

/* Fills cfg with the manual's timing and the gateway's defaults. */
void bus_sched_cfg_default(bus_sched_cfg_t *cfg);

/* Returns a new scheduler (bus initially up) or NULL on bad cfg / no memory. */
bus_sched_t *bus_sched_new(const bus_sched_cfg_t *cfg);
void bus_sched_destroy(bus_sched_t **p);

/* Applies new timing (queue capacities are kept). Takes effect for the next request. */
void bus_sched_set_timing(bus_sched_t *s, int64_t timeout_us, int retries);

/* Changes the aging of one priority (see max_wait_us; 0 = none). */
void bus_sched_set_max_wait(bus_sched_t *s, bus_prio_t prio, int64_t max_wait_us);

/* The broadcast set: bit n set for the BIC at address n (0-63); 0 (the default) sends every
 * request to its own device. The caller states with it that the bus holds no BIC outside
 * the set (a frame to the broadcast ID reaches every BIC on the bus). When the request to
 * start next is a client's write (flow != 0) to a BIC of the set, taken in its queue's turn
 * (not a gateway request, not one aged ahead of its priority), and the same queue holds an
 * identical write (cmd, len, data) of a client for every other BIC of the set, each the first
 * request of its own (device, flow) pair in that queue, one frame to BUS_ADDR_BROADCAST goes
 * out for all of them and each gets its own BUS_WRITTEN result. Never for reads, NPBs or
 * within bcast_quiet_us of another CAN master's request. The set needs two BICs at least. */
void bus_sched_set_broadcast(bus_sched_t *s, uint64_t bic_addrs);
uint64_t bus_sched_broadcast(const bus_sched_t *s);

/* Queues a request. Returns 0, BUS_SCHED_EFULL, BUS_SCHED_EDOWN or BUS_SCHED_EINVAL. Every
 * accepted request yields exactly one result. */
int bus_sched_submit(bus_sched_t *s, bus_prio_t prio, const bus_req_t *req, uint64_t tag);

/* Advances time: fails or retries a timed-out request, applies the aging, then, if the pacing
 * rules allow a request to start at `now`, marks it in flight, copies it to *tx and returns 1; the
 * caller must transmit it right away. Returns 0 when nothing is to be sent now. */
int bus_sched_tick(bus_sched_t *s, int64_t now, bus_req_t *tx);

/* Tells the scheduler when the frame returned by bus_sched_tick() actually left (after the
 * write returned). Pacing and the reply timeout count from the later of the two times, so a
 * process delay between tick and write never shortens the gap the device sees. */
void bus_sched_sent(bus_sched_t *s, int64_t now);

/* Treats `now` as the start of a request someone else may have made (a previous gateway
 * process, a reconnected adapter): the first request waits a full period after it. */
void bus_sched_assume_busy(bus_sched_t *s, int64_t now);

/* The next time bus_sched_tick() has something to do (INT64_MAX when idle). */
int64_t bus_sched_deadline(const bus_sched_t *s);

/* Offers a received frame (29-bit ID, flags masked or not; data with its DLC). Returns 1 if it
 * answered the request in flight, 0 if it was dropped as stray. A reply also moves the
 * request's start to (reply time - shortest round trip seen): when the request reached the
 * device late (adapter or delivery delay), the next request is held back by as much. Every
 * frame, stray ones included, restarts the gap after a reply. */
int bus_sched_on_rx(bus_sched_t *s, int64_t now, uint32_t can_id, const uint8_t *data, size_t dlc);

/* Marks the bus up or down. Going down fails the request in flight and everything queued with
 * BUS_DOWN; while down, submissions are refused with BUS_SCHED_EDOWN. */
void bus_sched_set_up(bus_sched_t *s, bool up, int64_t now);
bool bus_sched_is_up(const bus_sched_t *s);

/* Pops one finished request. Returns 1 and fills *out, or 0 when there is none. */
int bus_sched_result(bus_sched_t *s, bus_result_t *out);

/* Requests queued (all priorities, not counting the one in flight). */
size_t bus_sched_depth(const bus_sched_t *s);
size_t bus_sched_depth_prio(const bus_sched_t *s, bus_prio_t prio);
bool bus_sched_idle(const bus_sched_t *s);
/* When the last request of another CAN master was seen on the bus (a frame with a controller
 * -> device ID, BIC or NPB, that is not the adapter's echo of the last request sent),
 * INT64_MIN when never. */
int64_t bus_sched_foreign_at(const bus_sched_t *s);
const bus_sched_stats_t *bus_sched_stats(const bus_sched_t *s);

#endif
