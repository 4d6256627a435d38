/* sim_bus.c - simulated bus: fan-out of controller frames to the devices, reply queue with
 * delay and fault injection, pacing check, frame log. */
#include "sim_bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t due_us; /* when it should leave: the request's read time plus the delay */
    can_frame_t frame;
    bool injected; /* a late or duplicated reply of the fault options, outside the protocol */
} s_pending_t;

struct sim_bus_t {
    sim_bus_options_t opts;
    bic_device_t *dev[SIM_BUS_MAX_DEVICES];
    size_t ndev;
    npb_device_t *npb[4]; /* NPB addresses 0-3 */
    size_t nnpb;
    s_pending_t queue[SIM_BUS_QUEUE_MAX];
    size_t nqueue;
    sim_bus_counters_t c;
    bool have_request;
    sim_rx_t last_request; /* how the previous request was read */
    bool have_reply;
    int64_t last_reply_us;
    int64_t last_reply_late_us; /* how much later than scheduled the last reply left */
    bool last_reply_injected;   /* the last reply was a late or duplicated one by option */
    uint64_t rng;
    sim_frame_log_t log[SIM_BUS_LOG_MAX];
    size_t log_head; /* next slot to write */
    size_t log_count;
};

void sim_bus_options_defaults(sim_bus_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->reply_delay_us = 1000;
    opts->late_delay_us = 8000;
    opts->seed = 1;
}

int sim_bus_options_validate(const sim_bus_options_t *o, char *err, size_t errlen)
{
    const char *what = NULL;
    if (o->reply_delay_us < 0 || o->reply_delay_us > 1000000)
        what = "reply delay (allowed: 0..1000000 us)";
    else if (o->late_delay_us < 0 || o->late_delay_us > 10000000)
        what = "late reply delay (allowed: 0..10000000 us)";
    else if (o->late_pct < 0 || o->late_pct > 100)
        what = "late reply share (allowed: 0..100 %)";
    else if (o->drop_pct < 0 || o->drop_pct > 100)
        what = "dropped reply share (allowed: 0..100 %)";
    else if (o->dup_pct < 0 || o->dup_pct > 100)
        what = "duplicated reply share (allowed: 0..100 %)";
    if (what) {
        if (err && errlen)
            snprintf(err, errlen, "bad bus option: %s", what);
        return -1;
    }
    return 0;
}

sim_bus_t *sim_bus_new(const sim_bus_options_t *opts)
{
    sim_bus_options_t def;
    if (!opts) {
        sim_bus_options_defaults(&def);
        opts = &def;
    }
    if (sim_bus_options_validate(opts, NULL, 0) != 0)
        return NULL;
    sim_bus_t *bus = calloc(1, sizeof *bus);
    if (!bus)
        return NULL;
    bus->opts = *opts;
    bus->rng = opts->seed ? opts->seed : 1;
    return bus;
}

void sim_bus_destroy(sim_bus_t **p)
{
    if (!p || !*p)
        return;
    for (size_t i = 0; i < (*p)->ndev; i++)
        bic_device_destroy(&(*p)->dev[i]);
    for (size_t i = 0; i < (*p)->nnpb; i++)
        npb_device_destroy(&(*p)->npb[i]);
    free(*p);
    *p = NULL;
}

int sim_bus_add(sim_bus_t *bus, bic_device_t **dev)
{
    if (!dev || !*dev)
        return -1;
    if (bus->ndev >= SIM_BUS_MAX_DEVICES || sim_bus_find(bus, bic_device_addr(*dev))) {
        bic_device_destroy(dev);
        return -1;
    }
    bus->dev[bus->ndev++] = *dev;
    *dev = NULL;
    return 0;
}

size_t sim_bus_count(const sim_bus_t *bus)
{
    return bus->ndev;
}

bic_device_t *sim_bus_device(sim_bus_t *bus, size_t i)
{
    return i < bus->ndev ? bus->dev[i] : NULL;
}

bic_device_t *sim_bus_find(sim_bus_t *bus, uint8_t addr)
{
    for (size_t i = 0; i < bus->ndev; i++)
        if (bic_device_addr(bus->dev[i]) == addr)
            return bus->dev[i];
    return NULL;
}

int sim_bus_add_npb(sim_bus_t *bus, npb_device_t **dev)
{
    if (!dev || !*dev)
        return -1;
    size_t max = sizeof bus->npb / sizeof bus->npb[0];
    if (bus->nnpb >= max || sim_bus_find_npb(bus, npb_device_addr(*dev))) {
        npb_device_destroy(dev);
        return -1;
    }
    bus->npb[bus->nnpb++] = *dev;
    *dev = NULL;
    return 0;
}

size_t sim_bus_npb_count(const sim_bus_t *bus)
{
    return bus->nnpb;
}

npb_device_t *sim_bus_npb(sim_bus_t *bus, size_t i)
{
    return i < bus->nnpb ? bus->npb[i] : NULL;
}

npb_device_t *sim_bus_find_npb(sim_bus_t *bus, uint8_t addr)
{
    for (size_t i = 0; i < bus->nnpb; i++)
        if (npb_device_addr(bus->npb[i]) == addr)
            return bus->npb[i];
    return NULL;
}

double sim_bus_ac_w(sim_bus_t *bus)
{
    double w = 0;
    for (size_t i = 0; i < bus->ndev; i++) {
        bic_device_state_t st;
        bic_device_get_state(bus->dev[i], &st);
        w += st.ac_w;
    }
    for (size_t i = 0; i < bus->nnpb; i++) {
        npb_device_state_t st;
        npb_device_get_state(bus->npb[i], &st);
        w += st.ac_w;
    }
    return w;
}

int sim_bus_set_options(sim_bus_t *bus, const sim_bus_options_t *opts)
{
    if (sim_bus_options_validate(opts, NULL, 0) != 0)
        return -1;
    if (opts->seed != bus->opts.seed)
        bus->rng = opts->seed ? opts->seed : 1;
    bus->opts = *opts;
    return 0;
}

void sim_bus_get_options(const sim_bus_t *bus, sim_bus_options_t *out)
{
    *out = bus->opts;
}

/* xorshift64*: small, seedable, reproducible across platforms. */
static int s_roll(sim_bus_t *bus)
{
    uint64_t x = bus->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    bus->rng = x;
    return (int)(((x * 0x2545F4914F6CDD1DULL) >> 33) % 100);
}

static bool s_chance(sim_bus_t *bus, int pct)
{
    if (pct <= 0)
        return false;
    if (pct >= 100)
        return true;
    return s_roll(bus) < pct;
}

static void s_log(sim_bus_t *bus, sim_frame_dir_t dir, const can_frame_t *fr, int64_t now_us)
{
    sim_frame_log_t *e = &bus->log[bus->log_head];
    e->t_us = now_us;
    e->dir = dir;
    e->frame = *fr;
    bus->log_head = (bus->log_head + 1) % SIM_BUS_LOG_MAX;
    if (bus->log_count < SIM_BUS_LOG_MAX)
        bus->log_count++;
}

static void s_enqueue(sim_bus_t *bus, const can_frame_t *fr, int64_t due_us, bool injected)
{
    if (bus->nqueue >= SIM_BUS_QUEUE_MAX) {
        bus->c.queue_overflow++;
        return;
    }
    bus->queue[bus->nqueue].due_us = due_us;
    bus->queue[bus->nqueue].frame = *fr;
    bus->queue[bus->nqueue].injected = injected;
    bus->nqueue++;
}

static bool s_is_bic_request(const can_frame_t *fr)
{
    return fr->ext && (fr->id & 0x1FFFFF00u) == 0x000C0300u;
}

static bool s_is_npb_request(const can_frame_t *fr)
{
    return fr->ext && (fr->id & 0x1FFFFF00u) == 0x000C0100u;
}

int sim_bus_request(sim_bus_t *bus, const can_frame_t *req, int64_t now_us)
{
    return sim_bus_request_at(bus, req, now_us, now_us);
}

int sim_bus_request_at(sim_bus_t *bus, const can_frame_t *req, int64_t now_us, int64_t dev_us)
{
    sim_rx_t rx = {.t_us = now_us, .empty_us = INT64_MIN, .chunk = 0, .lag_us = 0};
    return sim_bus_request_rx(bus, req, &rx, dev_us);
}

/* S_GAP_INJECTED: short only against a reply the fault options injected (late or sent
 * twice), which no sender can foresee: neither a violation nor a sign of a slow reader. */
typedef enum { S_GAP_OK = 0, S_GAP_SUSPECT, S_GAP_INJECTED, S_GAP_VIOLATION } s_gap_t;

/* The period rule against the previous request (see sim_bus.h for the reasoning). */
static s_gap_t s_judge_period(const sim_bus_t *bus, const sim_rx_t *rx)
{
    const sim_rx_t *prev = &bus->last_request;
    const int64_t limit = SIM_BUS_PERIOD_US - SIM_BUS_TOLERANCE_US;
    int64_t gap = rx->t_us - prev->t_us;
    if (!bus->have_request || gap >= limit)
        return S_GAP_OK;
    if (rx->chunk != 0 && rx->chunk == prev->chunk) {
        /* both arrived inside the read window: its length bounds their real distance */
        bool window_known = rx->empty_us != INT64_MIN;
        return window_known && rx->t_us - rx->empty_us < limit ? S_GAP_VIOLATION : S_GAP_SUSPECT;
    }
    /* the previous request may have been read up to its lag after it arrived */
    int64_t lag = prev->lag_us > 0 ? prev->lag_us : 0;
    return gap + lag < limit ? S_GAP_VIOLATION : S_GAP_SUSPECT;
}

/* The margin rule against the last reply. */
static s_gap_t s_judge_margin(const sim_bus_t *bus, const sim_rx_t *rx)
{
    int64_t gap = rx->t_us - bus->last_reply_us;
    if (!bus->have_reply || gap >= SIM_BUS_MARGIN_US - SIM_BUS_TOLERANCE_US)
        return S_GAP_OK;
    /* The margin counts from a reply within the response time. A reply the fault options made
     * late (after the sender gave up on it) or sent twice cannot be foreseen by the sender. */
    if (bus->last_reply_injected)
        return S_GAP_INJECTED;
    return bus->last_reply_late_us > SIM_BUS_RESPONSE_US ? S_GAP_SUSPECT : S_GAP_VIOLATION;
}

int sim_bus_request_rx(sim_bus_t *bus, const can_frame_t *req, const sim_rx_t *rx, int64_t dev_us)
{
    int64_t now_us = rx->t_us;
    s_log(bus, SIM_FRAME_RX, req, now_us);
    bool npb_req = s_is_npb_request(req);
    if (!s_is_bic_request(req) && !npb_req) {
        bus->c.foreign++;
        return 0;
    }
    bus->c.requests++;
    s_gap_t period = s_judge_period(bus, rx);
    s_gap_t margin = s_judge_margin(bus, rx);
    bool violation = period == S_GAP_VIOLATION || margin == S_GAP_VIOLATION;
    if (period == S_GAP_VIOLATION)
        bus->c.pacing_period++;
    if (margin == S_GAP_VIOLATION)
        bus->c.pacing_margin++;
    if (!violation && (period == S_GAP_SUSPECT || margin == S_GAP_SUSPECT))
        bus->c.pacing_suspect++;
    else if (!violation && margin == S_GAP_INJECTED)
        bus->c.pacing_injected++;
    bus->have_request = true;
    bus->last_request = *rx;
    if (violation) {
        bus->c.pacing_violations++;
        if (bus->opts.pacing_drop) {
            bus->c.pacing_dropped++;
            bus->c.silent++;
            return 0;
        }
    }
    int scheduled = 0;
    bool addressed = false;
    uint8_t to = (uint8_t)(req->id & 0xFF);
    size_t n = npb_req ? bus->nnpb : bus->ndev;
    for (size_t i = 0; i < n; i++) {
        uint8_t addr = npb_req ? npb_device_addr(bus->npb[i]) : bic_device_addr(bus->dev[i]);
        if (to != 0xFF && to != addr)
            continue;
        addressed = true;
        can_frame_t reply;
        int got = npb_req ? npb_device_handle_frame(bus->npb[i], req, dev_us, &reply)
                          : bic_device_handle_frame(bus->dev[i], req, dev_us, &reply);
        if (got != 1)
            continue;
        if (s_chance(bus, bus->opts.drop_pct)) {
            bus->c.dropped++;
            continue;
        }
        int64_t delay = bus->opts.reply_delay_us;
        bool late = s_chance(bus, bus->opts.late_pct);
        if (late) {
            bus->c.late++;
            delay = bus->opts.late_delay_us;
        }
        s_enqueue(bus, &reply, now_us + delay, late);
        scheduled++;
        if (s_chance(bus, bus->opts.dup_pct)) {
            bus->c.duplicated++;
            s_enqueue(bus, &reply, now_us + delay + 200, true);
        }
    }
    if (!addressed)
        bus->c.foreign++;
    if (scheduled == 0)
        bus->c.silent++;
    return scheduled;
}

int64_t sim_bus_next_due_us(const sim_bus_t *bus)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < bus->nqueue; i++)
        if (bus->queue[i].due_us < due)
            due = bus->queue[i].due_us;
    return due;
}

int sim_bus_take_reply(sim_bus_t *bus, int64_t now_us, can_frame_t *out)
{
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < bus->nqueue; i++)
        if (bus->queue[i].due_us <= now_us &&
            (best == SIZE_MAX || bus->queue[i].due_us < bus->queue[best].due_us))
            best = i;
    if (best == SIZE_MAX)
        return 0;
    *out = bus->queue[best].frame;
    bus->last_reply_late_us = now_us - bus->queue[best].due_us;
    bus->last_reply_injected = bus->queue[best].injected;
    memmove(&bus->queue[best], &bus->queue[best + 1],
            (bus->nqueue - best - 1) * sizeof bus->queue[0]);
    bus->nqueue--;
    bus->c.replies++;
    bus->have_reply = true;
    bus->last_reply_us = now_us;
    s_log(bus, SIM_FRAME_TX, out, now_us);
    return 1;
}

void sim_bus_step(sim_bus_t *bus, int64_t now_us)
{
    for (size_t i = 0; i < bus->ndev; i++)
        bic_device_step(bus->dev[i], now_us);
    for (size_t i = 0; i < bus->nnpb; i++)
        npb_device_step(bus->npb[i], now_us);
}

void sim_bus_counters(const sim_bus_t *bus, sim_bus_counters_t *out)
{
    *out = bus->c;
}

size_t sim_bus_log(const sim_bus_t *bus, sim_frame_log_t *out, size_t max)
{
    size_t n = bus->log_count < max ? bus->log_count : max;
    /* The newest n entries, oldest first. */
    size_t start = (bus->log_head + SIM_BUS_LOG_MAX - n) % SIM_BUS_LOG_MAX;
    for (size_t i = 0; i < n; i++)
        out[i] = bus->log[(start + i) % SIM_BUS_LOG_MAX];
    return n;
}
