/*
 * gw_ensure: the write engine for one device (see gw_ensure.h).
 */
#include "gw_ensure.h"

#include "bic_plan.h"

#include <stdlib.h>
#include <string.h>

#define SYSTEM_CONFIG 0x00C2

typedef enum { PH_READ, PH_WRITE, PH_VERIFY } phase_t;

struct gw_ensure {
    uint8_t addr;
    eeprom_writer_t by;
    bool holder;
    gwe_target_t t[GW_ENSURE_MAX];
    int n, cur;
    phase_t phase;
    bool inflight;
    bool restart;   /* a power cycle was seen: the result in flight is void */
    bool rewritten; /* the current target's write was sent a second time */
    bool cycled;    /* a power cycle was seen: every target is read from the device */
    bool done;
    gwe_error_t err;
};

gw_ensure_t *gw_ensure_new(uint8_t addr, eeprom_writer_t by, bool holder)
{
    gw_ensure_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->addr = addr;
    e->by = by;
    e->holder = holder;
    return e;
}

void gw_ensure_destroy(gw_ensure_t **p)
{
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

static gwe_target_t *s_add(gw_ensure_t *e, uint16_t cmd, uint16_t value, uint16_t mask,
                           const char *label)
{
    if (e->n >= GW_ENSURE_MAX)
        return NULL;
    gwe_target_t *t = &e->t[e->n++];
    memset(t, 0, sizeof *t);
    t->cmd = cmd;
    t->value = value;
    t->mask = mask;
    t->label = label;
    return t;
}

int gw_ensure_add(gw_ensure_t *e, uint16_t cmd, uint16_t value, uint16_t mask, bool tolerate,
                  const char *label)
{
    gwe_target_t *t = s_add(e, cmd, value, mask, label);
    if (!t)
        return -1;
    t->tolerate = tolerate;
    return 0;
}

int gw_ensure_add_at_most(gw_ensure_t *e, uint16_t cmd, uint16_t max, const char *label)
{
    gwe_target_t *t = s_add(e, cmd, max, 0xFFFF, label);
    if (!t)
        return -1;
    t->at_most = true;
    return 0;
}

static void s_advance(gw_ensure_t *e)
{
    e->cur++;
    e->phase = PH_READ;
    e->rewritten = false;
    if (e->cur >= e->n)
        e->done = true;
}

static gwe_event_t s_fail(gw_ensure_t *e, gwe_error_t err)
{
    if (e->cur < e->n)
        e->t[e->cur].outcome = GWE_FAILED;
    e->err = err;
    e->done = true;
    return GWE_EV_FAILED;
}

int gw_ensure_next(gw_ensure_t *e, int64_t now, bus_req_t *req)
{
    (void)now;
    if (e->done || e->inflight)
        return 0;
    if (e->cur >= e->n) {
        e->done = true;
        return 0;
    }
    const gwe_target_t *t = &e->t[e->cur];
    memset(req, 0, sizeof *req);
    req->addr = e->addr;
    req->cmd = t->cmd;
    if (e->phase == PH_WRITE) {
        req->len = 2;
        req->data[0] = t->value & 0xff;
        req->data[1] = t->value >> 8;
    }
    e->inflight = true;
    return 1;
}

static gwe_error_t s_bus_error(const bus_result_t *r)
{
    return r->status == BUS_DOWN ? GWE_ERR_BUS_DOWN : GWE_ERR_TIMEOUT;
}

/* After the read: skip, hold back or write. */
static gwe_event_t s_after_read(gw_ensure_t *e, eeprom_policy_t *eep, gwe_target_t *t, int32_t raw,
                                int64_t now)
{
    t->read_ok = true;
    t->before = raw;
    int32_t want =
        t->at_most ? (raw > t->value ? t->value : raw) : ((raw & ~t->mask) | (t->value & t->mask));
    t->value = (uint16_t)want;
    t->mask = 0xFFFF;
    if (want == raw) {
        /* the device already holds it: an older held-back value must not win later */
        eeprom_policy_clear_pending(eep, t->cmd);
        t->outcome = GWE_UNCHANGED;
        s_advance(e);
        return GWE_EV_READ;
    }
    int64_t until = now;
    eeprom_decision_t d =
        eeprom_policy_decide(eep, t->cmd, raw, want, e->by, e->holder, now, &until);
    if (d != EEPROM_WRITE_NOW) {
        t->outcome = d == EEPROM_DEFER ? GWE_DEFERRED : GWE_REFUSED;
        t->until = until;
        s_advance(e);
        return GWE_EV_READ;
    }
    t->safety = bic_write_toward_safety(t->cmd, raw, want);
    e->phase = PH_WRITE;
    return GWE_EV_READ;
}

gwe_event_t gw_ensure_on_result(gw_ensure_t *e, eeprom_policy_t *eep, const bus_result_t *r,
                                bool raw_ok, int32_t raw, int64_t now)
{
    if (!e->inflight || e->done)
        return GWE_EV_NONE;
    e->inflight = false;
    if (e->restart) {
        /* the device was power cycled meanwhile: what it answered may be stale */
        e->restart = false;
        e->phase = PH_READ;
        e->rewritten = false;
        return GWE_EV_NONE;
    }
    gwe_target_t *t = &e->t[e->cur];
    if (e->phase == PH_WRITE) {
        if (r->status != BUS_WRITTEN)
            return s_fail(e, s_bus_error(r));
        t->written = true;
        /* counted when sent (a lost read-back must not hide a write); taken back when the
         * read-back shows the register unchanged */
        t->counted = eeprom_policy_persists(eep, t->cmd);
        eeprom_policy_written_by(eep, t->cmd, e->holder, now);
        e->phase = PH_VERIFY;
        return GWE_EV_WRITTEN;
    }
    if (r->status != BUS_OK || !raw_ok)
        return s_fail(e, r->status == BUS_OK ? GWE_ERR_TIMEOUT : s_bus_error(r));
    if (e->phase == PH_READ)
        return s_after_read(e, eep, t, raw, now);
    /* verify */
    t->after = raw;
    if (raw == t->value) {
        t->mismatch = false;
        t->outcome = GWE_WRITTEN;
        s_advance(e);
        return GWE_EV_READ;
    }
    t->mismatch = true;
    if (raw == t->before && t->cmd != SYSTEM_CONFIG) {
        /* a value register that did not change: the device never took the write (lost on
         * the line), so the EEPROM was not written either. SYSTEM_CONFIG keeps its count:
         * firmware that lacks a bit (EEP_OFF on older units) stores the write and drops only
         * that bit. */
        bool was_counted = t->counted;
        if (t->counted)
            eeprom_policy_uncount(eep, t->cmd);
        t->counted = false;
        if (!e->rewritten && !t->tolerate) {
            e->rewritten = true;
            e->phase = PH_WRITE;
            return was_counted ? GWE_EV_UNCOUNTED : GWE_EV_READ;
        }
        if (t->tolerate) {
            t->outcome = GWE_WRITTEN;
            s_advance(e);
            return was_counted ? GWE_EV_UNCOUNTED : GWE_EV_READ;
        }
        s_fail(e, GWE_ERR_VERIFY);
        return was_counted ? GWE_EV_UNCOUNTED : GWE_EV_FAILED;
    }
    if (t->tolerate) {
        t->outcome = GWE_WRITTEN;
        s_advance(e);
        return GWE_EV_READ;
    }
    return s_fail(e, GWE_ERR_VERIFY);
}

int gw_ensure_read_due(const gw_ensure_t *e)
{
    if (e->done || e->inflight || e->cycled || e->cur >= e->n || e->phase != PH_READ)
        return -1;
    const gwe_target_t *t = &e->t[e->cur];
    if (t->mask != 0xFFFF || t->at_most)
        return -1;
    return t->cmd;
}

int gw_ensure_known(gw_ensure_t *e, eeprom_policy_t *eep, int32_t raw, int64_t now)
{
    if (gw_ensure_read_due(e) < 0)
        return 0;
    gwe_target_t *t = &e->t[e->cur];
    if (raw == t->value)
        return 0; /* believed there already: the device confirms it, the cache never does */
    t->known = true;
    s_after_read(e, eep, t, raw, now);
    return 1;
}

void gw_ensure_submit_failed(gw_ensure_t *e, bool bus_down)
{
    e->inflight = false;
    s_fail(e, bus_down ? GWE_ERR_BUS_DOWN : GWE_ERR_TIMEOUT);
}

void gw_ensure_power_cycled(gw_ensure_t *e)
{
    if (e->done)
        return;
    if (e->inflight)
        e->restart = true;
    e->cycled = true;
    if (e->cur < e->n)
        e->t[e->cur].known = false;
    e->phase = PH_READ;
    e->rewritten = false;
}

bool gw_ensure_done(const gw_ensure_t *e)
{
    return e->done;
}

gwe_error_t gw_ensure_error(const gw_ensure_t *e)
{
    return e->err;
}

uint8_t gw_ensure_addr(const gw_ensure_t *e)
{
    return e->addr;
}

eeprom_writer_t gw_ensure_writer(const gw_ensure_t *e)
{
    return e->by;
}

int gw_ensure_count(const gw_ensure_t *e)
{
    return e->n;
}

int gw_ensure_current(const gw_ensure_t *e)
{
    return e->cur;
}

const gwe_target_t *gw_ensure_target(const gw_ensure_t *e, int i)
{
    return (i >= 0 && i < e->n) ? &e->t[i] : NULL;
}

int gw_ensure_writes(const gw_ensure_t *e)
{
    int w = 0;
    for (int i = 0; i < e->n; i++)
        w += e->t[i].written;
    return w;
}

bool gw_ensure_any(const gw_ensure_t *e, gwe_outcome_t outcome)
{
    for (int i = 0; i < e->n; i++)
        if (e->t[i].outcome == outcome)
            return true;
    return false;
}
