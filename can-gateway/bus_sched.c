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
#define BIC_LAST 63
#define BCAST_QUIET_US (60 * 1000000LL)

typedef struct {
    bus_req_t req;
    uint64_t tag;
    uint64_t seq; /* submission serial */
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
    uint64_t bcast;     /* the broadcast set: bit n for the BIC at address n */
    uint64_t submits;   /* submissions so far (entry_t.seq) */
    uint64_t alone_seq; /* submissions when the last client write to a BIC of the set went
                           alone: a write queued before it does not wait for partners */
    struct {
        bool on;
        uint64_t seq;  /* the write waiting for its partners */
        int64_t until; /* it goes alone from then */
    } hold;
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
    cfg->bcast_quiet_us = BCAST_QUIET_US;
}

bus_sched_t *bus_sched_new(const bus_sched_cfg_t *cfg)
{
    if (!cfg || cfg->period_us < 0 || cfg->gap_after_reply_us < 0 || cfg->timeout_us <= 0 ||
        cfg->write_extra_us < 0 || cfg->seen_slack_us < 0 || cfg->retries < 0 ||
        cfg->bcast_hold_us < 0 || cfg->bcast_quiet_us < 0)
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
    e->seq = ++s->submits;
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

/* The request to serve next: queue p, index idx; in_turn when it is taken in its queue's
 * turn (not a gateway safety request ahead of the clients', not aged ahead). */
typedef struct {
    int p;
    long idx;
    bool in_turn;
    bool aged; /* it overtook a safety or client request by aging */
} pick_t;

/* The order: the gateway's own safety requests; a client request that waited too long, then
 * telemetry that did (aging); then each queue by priority, every (device, flow) taking its
 * turn within a queue. */
static bool s_choose(const bus_sched_t *s, pick_t *pk)
{
    memset(pk, 0, sizeof *pk);
    long i = s_pick(s, BUS_PRIO_SAFETY, true);
    if (i >= 0) {
        pk->p = BUS_PRIO_SAFETY;
        pk->idx = i;
        return true;
    }
    for (int p = BUS_PRIO_CLIENT; p < BUS_PRIO_COUNT; p++)
        if (s->promoted[p] > 0 && s->q[p].count > 0) {
            pk->p = p;
            pk->idx = s_pick(s, p, false);
            /* only counted when it really overtook a safety or client request */
            pk->aged = s->q[BUS_PRIO_SAFETY].count > 0 ||
                       (p != BUS_PRIO_CLIENT && s->q[BUS_PRIO_CLIENT].count > 0);
            return true;
        }
    for (int p = 0; p < BUS_PRIO_COUNT; p++) {
        if (s->q[p].count == 0)
            continue;
        pk->p = p;
        pk->idx = s_pick(s, p, false);
        pk->in_turn = true;
        return true;
    }
    return false;
}

static void s_take_pick(bus_sched_t *s, const pick_t *pk, entry_t *out, int64_t now)
{
    if (pk->aged)
        s->stats.aged++;
    s_take(s, pk->p, pk->idx, out, now);
}

static bool s_pop(bus_sched_t *s, entry_t *out, int64_t now)
{
    pick_t pk;
    if (!s_choose(s, &pk))
        return false;
    s_take_pick(s, &pk, out, now);
    return true;
}

/* ---- broadcast writes ---- */

typedef enum { MERGE_NONE = 0, MERGE_ALL, MERGE_WAIT } merge_t;

static const entry_t *s_at(const bus_sched_t *s, int p, long i)
{
    const ring_t *q = &s->q[p];
    return &q->items[(q->head + (size_t)i) % q->cap];
}

/* Is entry i of queue p the first of its (device, flow) pair in that queue? */
static bool s_first_of_pair(const bus_sched_t *s, int p, long i)
{
    uint64_t key = s_key(&s_at(s, p, i)->req);
    for (long k = 0; k < i; k++)
        if (s_key(&s_at(s, p, k)->req) == key)
            return false;
    return true;
}

static bool s_same_write(const bus_req_t *a, const bus_req_t *b)
{
    return a->cmd == b->cmd && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* A client's write to a BIC of the set, taken in its queue's turn. */
static bool s_bcast_candidate(const bus_sched_t *s, const pick_t *pk)
{
    const bus_req_t *r = &s_at(s, pk->p, pk->idx)->req;
    return pk->in_turn && r->len > 0 && r->flow != 0 && r->addr <= BIC_LAST &&
           ((s->bcast >> r->addr) & 1);
}

/* Can the chosen request go out as a broadcast? MERGE_ALL with part[0..*n-1] the indices (in
 * queue pk->p) of the identical writes of every other BIC of the set; MERGE_WAIT when one of
 * them has no client request queued there yet; MERGE_NONE otherwise. */
static merge_t s_merge_check(const bus_sched_t *s, const pick_t *pk, int64_t now, long *part,
                             int *n)
{
    *n = 0;
    const bus_req_t *r = &s_at(s, pk->p, pk->idx)->req;
    if (!s_bcast_candidate(s, pk))
        return MERGE_NONE;
    if (s->foreign_at != INT64_MIN && now - s->foreign_at < s->cfg.bcast_quiet_us)
        return MERGE_NONE;
    const ring_t *q = &s->q[pk->p];
    bool missing = false;
    for (int a = 0; a <= BIC_LAST; a++) {
        if (a == r->addr || !((s->bcast >> a) & 1))
            continue;
        long found = -1;
        bool any = false;
        for (size_t i = 0; i < q->count && found < 0; i++) {
            const bus_req_t *o = &s_at(s, pk->p, (long)i)->req;
            if (o->addr != a || o->flow == 0)
                continue;
            any = true;
            if (o->len > 0 && s_same_write(o, r) && s_first_of_pair(s, pk->p, (long)i))
                found = (long)i;
        }
        if (found >= 0)
            part[(*n)++] = found;
        else if (any)
            return MERGE_NONE; /* it has another request to go first: no wait helps */
        else
            missing = true;
    }
    return missing ? MERGE_WAIT : MERGE_ALL;
}

/* Takes the chosen write and its partners out of the queue; their results go out at once
 * (BUS_WRITTEN each). *out gets the chosen one. */
static void s_take_merged(bus_sched_t *s, const pick_t *pk, const long *part, int n, entry_t *out,
                          int64_t now)
{
    long idx[BIC_LAST + 1];
    int k = 0;
    idx[k++] = pk->idx;
    for (int i = 0; i < n; i++)
        idx[k++] = part[i];
    /* highest index first: taking one moves only the entries before it */
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && idx[j] > idx[j - 1]; j--) {
            long t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    entry_t e;
    entry_t taken[BIC_LAST + 1];
    for (int i = 0; i < k; i++) {
        s_take(s, pk->p, idx[i], &e, now);
        taken[i] = e;
        if (idx[i] == pk->idx)
            *out = e;
    }
    s_push_result(s, out, BUS_WRITTEN, 1);
    for (int i = 0; i < k; i++)
        if (idx[i] != pk->idx)
            s_push_result(s, &taken[i], BUS_WRITTEN, 1);
    s->stats.broadcasts++;
    s->stats.merged += (uint64_t)k;
}

void bus_sched_set_broadcast(bus_sched_t *s, uint64_t bic_addrs)
{
    s->bcast = bic_addrs;
    if (!bic_addrs)
        s->hold.on = false;
}

uint64_t bus_sched_broadcast(const bus_sched_t *s)
{
    return s->bcast;
}

/* Whether the set has two BICs at least. */
static bool s_bcast_on(const bus_sched_t *s)
{
    return (s->bcast & (s->bcast - 1)) != 0;
}

/* Picks the next request into s->flight.e; a broadcast write sets *merged (its results are
 * already out). Returns false when nothing is to start at now (nothing queued, or a write
 * waiting for its partners). */
static bool s_next(bus_sched_t *s, int64_t now, bool *merged)
{
    pick_t pk;
    *merged = false;
    if (!s_choose(s, &pk))
        return false;
    long part[BIC_LAST + 1];
    int n = 0;
    merge_t m = s_bcast_on(s) ? s_merge_check(s, &pk, now, part, &n) : MERGE_NONE;
    const entry_t *e = s_at(s, pk.p, pk.idx);
    /* wait for the partners only while none of the group's writes has gone alone since this
     * one was queued (then they are not coming as one burst) */
    if (m == MERGE_WAIT && s->cfg.bcast_hold_us > 0 && e->seq > s->alone_seq) {
        if (!s->hold.on || s->hold.seq != e->seq) {
            s->hold.on = true;
            s->hold.seq = e->seq;
            s->hold.until = now + s->cfg.bcast_hold_us;
        }
        if (now < s->hold.until)
            return false;
    }
    s->hold.on = false;
    if (m == MERGE_ALL) {
        s_take_merged(s, &pk, part, n, &s->flight.e, now);
        *merged = true;
    } else {
        if (s_bcast_on(s) && s_bcast_candidate(s, &pk))
            s->alone_seq = s->submits;
        s_take_pick(s, &pk, &s->flight.e, now);
    }
    return true;
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
    bool merged = false;
    if (s->flight.state == FLIGHT_RETRY) {
        s->stats.retries++;
    } else {
        if (!s_next(s, now, &merged))
            return 0;
        s->flight.attempts = 0;
        s->flight.first = now;
    }
    if (merged)
        s->flight.e.req.addr = BUS_ADDR_BROADCAST;
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
        /* The device never answers a write: it is done once it is on the wire (a broadcast's
         * results are out already). */
        if (!merged)
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
        if (s->hold.on && s->flight.state != FLIGHT_RETRY && s->hold.until > t)
            t = s->hold.until; /* a write waiting for its partners */
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
    if (addr == BUS_ADDR_BROADCAST)
        return BIC_TX_ID_BASE | 0xFFu;
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
    s->hold.on = false;
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
