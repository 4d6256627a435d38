/*
 * bus_sched: pacing, matching, retries and priority queues for one CAN bus.
 * See bus_sched.h for the contract. Pure: no I/O, time comes in as `now` (µs).
 */
#include "bus_sched.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define BIC_RX_ID_BASE 0x000C0200u
#define BIC_TX_ID_BASE 0x000C0300u /* controller -> device, 0x000C03FF the broadcast */
#define ECHO_WINDOW_US 100000      /* an adapter's echo of a sent frame comes back within this */
#define NPB_RX_ID_BASE 0x000C0000u
#define NPB_TX_ID_BASE 0x000C0100u
#define NPB_FIRST 64 /* device numbers 64-67: the NPB at address 0-3 */
#define DEV_LAST 67
/* The first round trips after a start can all be slow (a cold adapter or pty); an estimate
 * from them is too large and would hide a request that reached the device late. Until this
 * many clear samples, the device is assumed to have seen a request when its reply came. */
#define RTT_TRUST_SAMPLES 4
#define CAN_EFF_MASK_29 0x1FFFFFFFu
/* Share keys (device, flow) whose last turn is remembered; the least recently served key
 * is forgotten first (it is then treated as never served: it goes first, as it should). */
#define SHARE_KEYS 128

typedef struct {
    bus_req_t req;
    uint64_t tag;
} entry_t;

typedef struct {
    entry_t *items;
    size_t cap, head, count;
} ring_t;

typedef enum { FLIGHT_NONE = 0, FLIGHT_RETRY, FLIGHT_WAIT } flight_state_t;

struct bus_sched {
    bus_sched_cfg_t cfg;
    ring_t q[BUS_PRIO_COUNT];
    bus_result_t *results; /* FIFO of finished requests */
    size_t res_cap, res_head, res_count;
    struct {
        flight_state_t state;
        entry_t e;
        int attempts;
        int64_t started;  /* last transmission */
        int64_t first;    /* first transmission */
        int64_t deadline; /* reply timeout of the last transmission */
    } flight;
    bool up;
    bool have_start, have_reply;
    bool last_was_write;
    int64_t last_start, last_reply;
    int64_t min_rtt; /* shortest round trip seen, -1 before the first reply */
    int rtt_samples; /* clear round-trip samples so far (the estimate is trusted from
                        RTT_TRUST_SAMPLES on) */
    int64_t wait_since[BUS_PRIO_COUNT]; /* queue not served since (INT64_MIN: empty) */
    size_t promoted[BUS_PRIO_COUNT];    /* entries aged ahead of the client queue */
    struct {
        uint64_t key;  /* addr << 32 | flow */
        uint64_t turn; /* serial of its last turn; 0: slot free */
    } share[SHARE_KEYS];
    uint64_t turns;
    bool late_valid; /* the last timed-out read, whose reply may still come */
    uint8_t late_addr;
    uint16_t late_cmd;
    int64_t foreign_at; /* last request of another CAN master, INT64_MIN: none */
    bus_req_t last_tx;  /* the last request sent, and when: an adapter that echoes it back */
    int64_t last_tx_at; /* does not make it another master's */
    bus_sched_stats_t stats;
};

void bus_sched_cfg_default(bus_sched_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->period_us = 20000;
    cfg->gap_after_reply_us = 5000;
    cfg->timeout_us = 50000;
    cfg->retries = 2;
    cfg->queue_cap[BUS_PRIO_SAFETY] = 32;
    cfg->queue_cap[BUS_PRIO_CLIENT] = 64;
    cfg->queue_cap[BUS_PRIO_FAST] = 64;
    cfg->queue_cap[BUS_PRIO_SLOW] = 64;
}

bus_sched_t *bus_sched_new(const bus_sched_cfg_t *cfg)
{
    if (!cfg || cfg->period_us < 0 || cfg->gap_after_reply_us < 0 || cfg->timeout_us <= 0 ||
        cfg->write_extra_us < 0 || cfg->seen_slack_us < 0 || cfg->retries < 0)
        return NULL;
    for (int p = 0; p < BUS_PRIO_COUNT; p++)
        if (cfg->max_wait_us[p] < 0)
            return NULL;
    bus_sched_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = *cfg;
    for (int p = 0; p < BUS_PRIO_COUNT; p++)
        s->wait_since[p] = INT64_MIN;
    size_t total = 1;
    for (int p = 0; p < BUS_PRIO_COUNT; p++) {
        if (cfg->queue_cap[p] <= 0)
            goto fail;
        s->q[p].cap = (size_t)cfg->queue_cap[p];
        s->q[p].items = calloc(s->q[p].cap, sizeof(entry_t));
        if (!s->q[p].items)
            goto fail;
        total += s->q[p].cap;
    }
    s->res_cap = total;
    s->results = calloc(total, sizeof(bus_result_t));
    if (!s->results)
        goto fail;
    s->up = true;
    s->min_rtt = -1;
    s->foreign_at = INT64_MIN;
    return s;
fail:
    bus_sched_destroy(&s);
    return NULL;
}

void bus_sched_destroy(bus_sched_t **p)
{
    if (!p || !*p)
        return;
    bus_sched_t *s = *p;
    for (int i = 0; i < BUS_PRIO_COUNT; i++)
        free(s->q[i].items);
    free(s->results);
    free(s);
    *p = NULL;
}

void bus_sched_set_timing(bus_sched_t *s, int64_t timeout_us, int retries)
{
    if (timeout_us > 0)
        s->cfg.timeout_us = timeout_us;
    if (retries >= 0)
        s->cfg.retries = retries;
}

void bus_sched_set_max_wait(bus_sched_t *s, bus_prio_t prio, int64_t max_wait_us)
{
    if (prio < 0 || prio >= BUS_PRIO_COUNT || max_wait_us < 0)
        return;
    s->cfg.max_wait_us[prio] = max_wait_us;
}

static size_t s_queued(const bus_sched_t *s)
{
    size_t n = 0;
    for (int p = 0; p < BUS_PRIO_COUNT; p++)
        n += s->q[p].count;
    return n;
}

static void s_push_result(bus_sched_t *s, const entry_t *e, bus_status_t st, int attempts)
{
    /* Capacity is guaranteed by the outstanding-request check in submit. */
    if (s->res_count == s->res_cap)
        return;
    bus_result_t *r = &s->results[(s->res_head + s->res_count) % s->res_cap];
    memset(r, 0, sizeof *r);
    r->tag = e->tag;
    r->status = st;
    r->req = e->req;
    r->attempts = attempts;
    s->res_count++;
}

int bus_sched_submit(bus_sched_t *s, bus_prio_t prio, const bus_req_t *req, uint64_t tag)
{
    if (!s || !req || prio < 0 || prio >= BUS_PRIO_COUNT || req->addr > DEV_LAST || req->len > 6)
        return BUS_SCHED_EINVAL;
    if (!s->up) {
        s->stats.bus_down++;
        return BUS_SCHED_EDOWN;
    }
    ring_t *q = &s->q[prio];
    size_t outstanding = s_queued(s) + s->res_count + (s->flight.state != FLIGHT_NONE);
    if (q->count == q->cap || outstanding >= s->res_cap) {
        s->stats.busy++;
        return BUS_SCHED_EFULL;
    }
    entry_t *e = &q->items[(q->head + q->count) % q->cap];
    e->req = *req;
    e->tag = tag;
    q->count++;
    return 0;
}

static int64_t s_earliest(const bus_sched_t *s)
{
    int64_t t = INT64_MIN;
    if (s->have_start)
        t = s->last_start + s->cfg.period_us + (s->last_was_write ? s->cfg.write_extra_us : 0);
    if (s->have_reply && s->last_reply + s->cfg.gap_after_reply_us > t)
        t = s->last_reply + s->cfg.gap_after_reply_us;
    return t;
}

static uint64_t s_key(const bus_req_t *r)
{
    return (uint64_t)r->addr << 32 | r->flow;
}

/* The serial of the key's last turn (0: none remembered). */
static uint64_t s_last_turn(const bus_sched_t *s, uint64_t key)
{
    for (int i = 0; i < SHARE_KEYS; i++)
        if (s->share[i].turn && s->share[i].key == key)
            return s->share[i].turn;
    return 0;
}

static void s_note_turn(bus_sched_t *s, uint64_t key)
{
    int slot = 0;
    for (int i = 0; i < SHARE_KEYS; i++) {
        if (s->share[i].turn && s->share[i].key == key) {
            slot = i;
            break;
        }
        if (s->share[i].turn < s->share[slot].turn)
            slot = i; /* a free slot (0) or the one served longest ago */
    }
    s->share[slot].key = key;
    s->share[slot].turn = ++s->turns;
}

/* The index (from the head) of the entry of queue p to serve next: the first entry of the
 * key served least recently; only flow-0 entries when gw_only. -1 when there is none. */
static long s_pick(const bus_sched_t *s, int p, bool gw_only)
{
    const ring_t *q = &s->q[p];
    long best = -1;
    uint64_t best_turn = 0;
    for (size_t i = 0; i < q->count; i++) {
        const bus_req_t *r = &q->items[(q->head + i) % q->cap].req;
        if (gw_only && r->flow != 0)
            continue;
        uint64_t t = s_last_turn(s, s_key(r));
        if (best < 0 || t < best_turn) {
            best = (long)i;
            best_turn = t;
            if (t == 0)
                break; /* never served: nothing goes before it */
        }
    }
    return best;
}

static void s_take(bus_sched_t *s, int p, long idx, entry_t *out, int64_t now)
{
    ring_t *q = &s->q[p];
    *out = q->items[(q->head + (size_t)idx) % q->cap];
    /* close the hole: the entries before it move one place towards the tail */
    for (size_t i = (size_t)idx; i > 0; i--)
        q->items[(q->head + i) % q->cap] = q->items[(q->head + i - 1) % q->cap];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    s_note_turn(s, s_key(&out->req));
    if (s->promoted[p] > 0)
        s->promoted[p]--;
    /* the queue moves: its wait counts again from now */
    s->wait_since[p] = q->count > 0 ? now : INT64_MIN;
}

/* Aging: a telemetry queue not served for max_wait_us has what it holds now promoted (served
 * after the gateway's own safety, before the client queue), so a steady stream of client
 * requests cannot starve telemetry for longer than that. A client queue not served for its
 * max_wait_us has its next request promoted ahead of the clients' safety and setpoint writes
 * (one request per wait), so a controller whose writes fill the bus cannot starve a person's
 * read or setting. */
static void s_age(bus_sched_t *s, int64_t now)
{
    for (int p = BUS_PRIO_CLIENT; p < BUS_PRIO_COUNT; p++) {
        if (s->q[p].count == 0) {
            s->wait_since[p] = INT64_MIN;
            s->promoted[p] = 0;
            continue;
        }
        if (s->wait_since[p] == INT64_MIN)
            s->wait_since[p] = now;
        if (s->cfg.max_wait_us[p] > 0 && s->promoted[p] == 0 &&
            now - s->wait_since[p] >= s->cfg.max_wait_us[p])
            s->promoted[p] = p == BUS_PRIO_CLIENT ? 1 : s->q[p].count;
    }
}

/* The order: the gateway's own safety requests; a client request that waited too long, then
 * telemetry that did (aging); then each queue by priority, every (device, flow) taking its
 * turn within a queue. */
static bool s_pop(bus_sched_t *s, entry_t *out, int64_t now)
{
    long i = s_pick(s, BUS_PRIO_SAFETY, true);
    if (i >= 0) {
        s_take(s, BUS_PRIO_SAFETY, i, out, now);
        return true;
    }
    for (int p = BUS_PRIO_CLIENT; p < BUS_PRIO_COUNT; p++)
        if (s->promoted[p] > 0 && s->q[p].count > 0) {
            /* only counted when it really overtook a safety or client request */
            if (s->q[BUS_PRIO_SAFETY].count > 0 ||
                (p != BUS_PRIO_CLIENT && s->q[BUS_PRIO_CLIENT].count > 0))
                s->stats.aged++;
            s_take(s, p, s_pick(s, p, false), out, now);
            return true;
        }
    for (int p = 0; p < BUS_PRIO_COUNT; p++) {
        if (s->q[p].count == 0)
            continue;
        s_take(s, p, s_pick(s, p, false), out, now);
        return true;
    }
    return false;
}

int bus_sched_tick(bus_sched_t *s, int64_t now, bus_req_t *tx)
{
    if (s->flight.state == FLIGHT_WAIT && now >= s->flight.deadline) {
        int retries = (s->flight.e.req.flags & BUS_REQ_NO_RETRY) ? 0 : s->cfg.retries;
        if (s->flight.attempts <= retries) {
            s->flight.state = FLIGHT_RETRY;
        } else {
            s->stats.timeouts++;
            s_push_result(s, &s->flight.e, BUS_TIMEOUT, s->flight.attempts);
            s->flight.state = FLIGHT_NONE;
        }
        /* the device may still be busy with it (a slow adapter): a full period from now */
        s->last_start = s->flight.deadline;
        s->late_addr = s->flight.e.req.addr;
        s->late_cmd = s->flight.e.req.cmd;
        s->late_valid = true;
    }
    s_age(s, now);
    if (!s->up || s->flight.state == FLIGHT_WAIT)
        return 0;
    if (now < s_earliest(s))
        return 0;
    if (s->flight.state == FLIGHT_RETRY) {
        s->stats.retries++;
    } else {
        if (!s_pop(s, &s->flight.e, now))
            return 0;
        s->flight.attempts = 0;
        s->flight.first = now;
    }
    s->flight.attempts++;
    s->flight.started = now;
    s->have_start = true;
    s->last_start = now;
    s->last_was_write = s->flight.e.req.len > 0;
    s->stats.frames_tx++;
    *tx = s->flight.e.req;
    s->last_tx = *tx;
    s->last_tx_at = now;
    if (s->flight.e.req.len > 0) {
        /* The device never answers a write: it is done once it is on the wire. */
        s_push_result(s, &s->flight.e, BUS_WRITTEN, s->flight.attempts);
        s->flight.state = FLIGHT_NONE;
    } else {
        s->flight.state = FLIGHT_WAIT;
        s->flight.deadline = now + s->cfg.timeout_us;
    }
    return 1;
}

void bus_sched_sent(bus_sched_t *s, int64_t now)
{
    if (!s->have_start || now <= s->last_start)
        return;
    if (s->flight.state == FLIGHT_WAIT && s->flight.started == s->last_start) {
        s->flight.deadline += now - s->flight.started;
        s->flight.started = now;
    }
    s->last_start = now;
}

void bus_sched_assume_busy(bus_sched_t *s, int64_t now)
{
    if (!s->have_start || now > s->last_start) {
        s->have_start = true;
        s->last_start = now;
    }
}

int64_t bus_sched_deadline(const bus_sched_t *s)
{
    if (s->flight.state == FLIGHT_WAIT)
        return s->flight.deadline;
    if (!s->up)
        return INT64_MAX;
    if (s->flight.state == FLIGHT_RETRY || s_queued(s) > 0) {
        int64_t t = s_earliest(s);
        return t == INT64_MIN ? 0 : t;
    }
    return INT64_MAX;
}

/* The identifier device number addr replies with. */
static uint32_t s_rx_id(uint8_t addr)
{
    return addr >= NPB_FIRST ? NPB_RX_ID_BASE | (uint32_t)(addr - NPB_FIRST)
                             : BIC_RX_ID_BASE | addr;
}

/* The identifier a request to device number addr goes out with. */
static uint32_t s_tx_id(uint8_t addr)
{
    return addr >= NPB_FIRST ? NPB_TX_ID_BASE | (uint32_t)(addr - NPB_FIRST)
                             : BIC_TX_ID_BASE | addr;
}

/* A request frame that is the last one sent, back within the echo window: the adapter's echo. */
static bool s_own_echo(const bus_sched_t *s, int64_t now, uint32_t id, const uint8_t *data,
                       size_t dlc)
{
    const bus_req_t *t = &s->last_tx;
    if (!s->have_start || now - s->last_tx_at > ECHO_WINDOW_US || id != s_tx_id(t->addr) || !data ||
        dlc != 2u + t->len || (uint16_t)(data[0] | (data[1] << 8)) != t->cmd)
        return false;
    return memcmp(data + 2, t->data, t->len) == 0;
}

int bus_sched_on_rx(bus_sched_t *s, int64_t now, uint32_t can_id, const uint8_t *data, size_t dlc)
{
    s->stats.frames_rx++;
    /* any frame on the bus, stray or not, is traffic the 5 ms margin counts from */
    s->have_reply = true;
    s->last_reply = now;
    const bus_req_t *r = &s->flight.e.req;
    uint32_t id = can_id & CAN_EFF_MASK_29;
    if (s->flight.state != FLIGHT_WAIT || !data || dlc < 2 || dlc > 8 || id != s_rx_id(r->addr) ||
        (uint16_t)(data[0] | (data[1] << 8)) != r->cmd) {
        s->stats.stray++;
        uint32_t base = id & ~0xFFu;
        if ((base == BIC_TX_ID_BASE || base == NPB_TX_ID_BASE) &&
            !s_own_echo(s, now, id, data, dlc)) {
            s->stats.foreign++;
            s->foreign_at = now;
        }
        /* a late reply to a timed-out read shows when the device really saw it */
        if (s->late_valid && data && dlc >= 2 && id == s_rx_id(s->late_addr) &&
            (uint16_t)(data[0] | (data[1] << 8)) == s->late_cmd) {
            s->late_valid = false;
            int64_t rtt = s->rtt_samples >= RTT_TRUST_SAMPLES && s->min_rtt > 0 ? s->min_rtt : 0;
            int64_t seen = now - rtt - s->cfg.seen_slack_us;
            if (seen > s->last_start)
                s->last_start = seen;
        }
        return 0;
    }
    s->stats.replies++;
    s_push_result(s, &s->flight.e, BUS_OK, s->flight.attempts);
    bus_result_t *res = &s->results[(s->res_head + s->res_count - 1) % s->res_cap];
    res->len = (uint8_t)(dlc - 2);
    memcpy(res->data, data + 2, dlc - 2);
    res->rtt_us = now - s->flight.started;
    /* the device saw the request at the latest at (now - shortest round trip); before the
     * estimate is trusted there is no telling, so assume it saw it just now */
    bool trusted = s->rtt_samples >= RTT_TRUST_SAMPLES && s->min_rtt >= 0;
    int64_t seen = (trusted ? now - s->min_rtt : now) - s->cfg.seen_slack_us;
    if (seen > s->last_start)
        s->last_start = seen;
    /* The estimate may only shrink on clear samples: not from a retried request (the reply
     * may be a late one to the first attempt, Karn's rule), and by at most half per sample (a
     * duplicate of an earlier reply arriving just after the send looks impossibly fast). A
     * too-large estimate would let the next request out early, so it converges in a few
     * replies from any start. */
    if (res->rtt_us >= 0 && s->flight.attempts == 1) {
        s->rtt_samples++;
        if (s->min_rtt < 0)
            s->min_rtt = res->rtt_us;
        else if (res->rtt_us * 2 < s->min_rtt)
            s->min_rtt /= 2;
        else if (res->rtt_us < s->min_rtt)
            s->min_rtt = res->rtt_us;
    }
    s->flight.state = FLIGHT_NONE;
    s->have_reply = true;
    s->last_reply = now;
    return 1;
}

void bus_sched_set_up(bus_sched_t *s, bool up, int64_t now)
{
    if (up) {
        s->up = true;
        return;
    }
    s->up = false;
    if (s->flight.state != FLIGHT_NONE) {
        s_push_result(s, &s->flight.e, BUS_DOWN, s->flight.attempts);
        s->stats.bus_down++;
        s->flight.state = FLIGHT_NONE;
    }
    for (int p = 0; p < BUS_PRIO_COUNT; p++) {
        s->wait_since[p] = INT64_MIN;
        s->promoted[p] = 0;
    }
    entry_t e;
    while (s_pop(s, &e, now)) {
        s_push_result(s, &e, BUS_DOWN, 0);
        s->stats.bus_down++;
    }
}

bool bus_sched_is_up(const bus_sched_t *s)
{
    return s->up;
}

int bus_sched_result(bus_sched_t *s, bus_result_t *out)
{
    if (s->res_count == 0)
        return 0;
    *out = s->results[s->res_head];
    s->res_head = (s->res_head + 1) % s->res_cap;
    s->res_count--;
    return 1;
}

size_t bus_sched_depth(const bus_sched_t *s)
{
    return s_queued(s);
}

size_t bus_sched_depth_prio(const bus_sched_t *s, bus_prio_t prio)
{
    if (prio < 0 || prio >= BUS_PRIO_COUNT)
        return 0;
    return s->q[prio].count;
}

bool bus_sched_idle(const bus_sched_t *s)
{
    return s->flight.state == FLIGHT_NONE && s_queued(s) == 0;
}

int64_t bus_sched_foreign_at(const bus_sched_t *s)
{
    return s->foreign_at;
}

const bus_sched_stats_t *bus_sched_stats(const bus_sched_t *s)
{
    return &s->stats;
}
