/*
 * eeprom_policy: persisted-write budget and counters for one device (see eeprom_policy.h).
 */
#include "eeprom_policy.h"

#include "bic_plan.h"

#include <math.h>
#include <stdlib.h>

/* The bucket's level is kept in integer units of 1/DAY_US token, so a refill of writes_per_day
 * tokens a day is exactly writes_per_day units per microsecond: no rounding, and the time a
 * token becomes whole is exact (a deadline never wakes the loop a hair too early). */
#define DAY_US 86400000000LL
#define TOKEN DAY_US

static const struct {
    uint16_t cmd;
    const char *name;
    bool star;  /* a setpoint: the only writes ever deferred */
    bool spare; /* EEP_OFF spares it (the BIC's '*' registers) */
} s_regs[EEPROM_NREGS] = {
    {0x0000, "OPERATION", false, false},
    {0x0020, "VOUT_SET", true, true},
    {0x0030, "IOUT_SET", true, true},
    {0x0120, "REVERSE_VOUT_SET", true, true},
    {0x0130, "REVERSE_IOUT_SET", true, true},
    {0x00C2, "SYSTEM_CONFIG", false, false},
    {0x0140, "BIDIRECTIONAL_CONFIG", false, false},
    /* NPB charge curve (docs/npb.md): persisted whatever EEP_OFF says (not documented to
       spare them); CURVE_CC is the charger-mode setpoint */
    {0x00B0, "CURVE_CC", true, false},
    {0x00B1, "CURVE_CV", false, false},
    {0x00B2, "CURVE_FV", false, false},
    {0x00B3, "CURVE_TC", false, false},
    {0x00B4, "CURVE_CONFIG", false, false},
    {0x00B5, "CURVE_CC_TIMEOUT", false, false},
    {0x00B6, "CURVE_CV_TIMEOUT", false, false},
    {0x00B7, "CURVE_FV_TIMEOUT", false, false},
    {0x00B9, "CHG_RST_VBAT", false, false},
};

struct eeprom_policy {
    int64_t interval; /* minimum spacing between persisted writes, µs */
    int per_day;      /* daily budget (tokens a day); 0: spacing only */
    int burst;        /* bucket depth in tokens */
    bool level_set;   /* the level was given (budget set or restored) */
    int64_t level;    /* tokens × TOKEN at level_at */
    int64_t level_at;
    bool eep_off;
    bool have_last;
    int64_t last; /* last persisted write */
    bool have_last_ctl;
    int64_t last_ctl; /* last persisted write by the lease holder: the spacing counts from it,
                         so another client's writes never hold the controller back */
    uint64_t count[EEPROM_NREGS];
    bool pending[EEPROM_NREGS];
    uint32_t pending_raw[EEPROM_NREGS];
    int64_t pending_since[EEPROM_NREGS];
};

eeprom_policy_t *eeprom_policy_new(int64_t min_interval_us)
{
    if (min_interval_us < 0)
        return NULL;
    eeprom_policy_t *e = calloc(1, sizeof *e);
    if (e)
        e->interval = min_interval_us;
    return e;
}

void eeprom_policy_destroy(eeprom_policy_t **p)
{
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

void eeprom_policy_set_interval(eeprom_policy_t *e, int64_t min_interval_us)
{
    if (min_interval_us >= 0)
        e->interval = min_interval_us;
}

int64_t eeprom_policy_interval(const eeprom_policy_t *e)
{
    return e->interval;
}

/* The level at now: refilled from level_at at per_day units per µs, capped at the burst. */
static int64_t s_level(const eeprom_policy_t *e, int64_t now)
{
    int64_t cap = (int64_t)e->burst * TOKEN;
    if (e->per_day <= 0)
        return cap;
    if (!e->level_set)
        return cap;
    if (e->level >= cap)
        return cap;
    int64_t dt = now - e->level_at;
    if (dt <= 0)
        return e->level;
    /* compare before multiplying: a long gap must not overflow */
    if (dt >= (cap - e->level) / e->per_day + 1)
        return cap;
    int64_t l = e->level + dt * e->per_day;
    return l > cap ? cap : l;
}

/* The lowest level: a debt of EEPROM_TOKENS_FLOOR tokens (never reached in practice: a write
 * toward safety is one of a few after a write that needed a whole token). */
#define FLOOR_UNITS ((int64_t)EEPROM_TOKENS_FLOOR * TOKEN)

void eeprom_policy_set_budget(eeprom_policy_t *e, int writes_per_day, int burst, int64_t now)
{
    if (writes_per_day < 1 || burst < 1) {
        e->per_day = 0;
        e->burst = 0;
        return;
    }
    e->per_day = writes_per_day;
    e->burst = burst;
    /* a known level refills up to now at the (new) rate; restored from the state file, that
     * is the time the gateway was down */
    int64_t level = e->level_set ? s_level(e, now) : (int64_t)burst * TOKEN;
    if (level > (int64_t)burst * TOKEN)
        level = (int64_t)burst * TOKEN;
    e->level = level;
    e->level_at = now;
    e->level_set = true;
}

int eeprom_policy_writes_per_day(const eeprom_policy_t *e)
{
    return e->per_day;
}

int eeprom_policy_burst(const eeprom_policy_t *e)
{
    return e->burst;
}

double eeprom_policy_tokens(const eeprom_policy_t *e, int64_t now)
{
    if (e->per_day > 0)
        return (double)s_level(e, now) / (double)TOKEN;
    if (!e->have_last || e->interval <= 0 || now - e->last >= e->interval)
        return 1.0;
    return now <= e->last ? 0.0 : (double)(now - e->last) / (double)e->interval;
}

void eeprom_policy_set_tokens(eeprom_policy_t *e, double tokens, int64_t at)
{
    if (!isfinite(tokens))
        return;
    if (tokens < -EEPROM_TOKENS_FLOOR)
        tokens = -EEPROM_TOKENS_FLOOR;
    if (e->burst > 0 && tokens > e->burst)
        tokens = e->burst;
    if (tokens > EEPROM_TOKENS_FLOOR)
        tokens = EEPROM_TOKENS_FLOOR;
    e->level = llround(tokens * (double)TOKEN);
    e->level_at = at;
    e->level_set = true;
}

void eeprom_policy_set_eep_off(eeprom_policy_t *e, bool eep_off)
{
    /* Setpoints held back by the budget stay pending: with EEP_OFF they no longer wear the
     * EEPROM, so they become due at once (eeprom_policy_due) instead of being lost. */
    e->eep_off = eep_off;
}

bool eeprom_policy_eep_off(const eeprom_policy_t *e)
{
    return e->eep_off;
}

int eeprom_reg_index(uint16_t cmd)
{
    for (int i = 0; i < EEPROM_NREGS; i++)
        if (s_regs[i].cmd == cmd)
            return i;
    return -1;
}

uint16_t eeprom_reg_cmd(int index)
{
    return (index >= 0 && index < EEPROM_NREGS) ? s_regs[index].cmd : 0xFFFF;
}

const char *eeprom_reg_name(int index)
{
    return (index >= 0 && index < EEPROM_NREGS) ? s_regs[index].name : NULL;
}

bool eeprom_policy_persists(const eeprom_policy_t *e, uint16_t cmd)
{
    int i = eeprom_reg_index(cmd);
    if (i < 0)
        return false;
    return !(s_regs[i].spare && e->eep_off);
}

/* When a deferrable write is allowed: the spacing has passed and a whole token is there. */
static int64_t s_allowed_at(const eeprom_policy_t *e)
{
    int64_t t = e->have_last_ctl ? e->last_ctl + e->interval : INT64_MIN;
    if (e->per_day > 0 && e->level_set && e->level < TOKEN) {
        int64_t need = TOKEN - e->level;
        int64_t tok = e->level_at + (need + e->per_day - 1) / e->per_day;
        if (tok > t)
            t = tok;
    }
    return t;
}

eeprom_decision_t eeprom_policy_request(eeprom_policy_t *e, uint16_t cmd, uint32_t raw, int64_t now)
{
    int i = eeprom_reg_index(cmd);
    if (i < 0 || !s_regs[i].star || !eeprom_policy_persists(e, cmd))
        return EEPROM_WRITE_NOW;
    if (now >= s_allowed_at(e))
        return EEPROM_WRITE_NOW;
    if (!e->pending[i])
        e->pending_since[i] = now;
    e->pending[i] = true;
    e->pending_raw[i] = raw;
    return EEPROM_DEFER;
}

int eeprom_policy_reserve(const eeprom_policy_t *e)
{
    return e->per_day > 0 ? e->burst / 4 : 0;
}

/* When the bucket holds need tokens (now when it does; INT64_MAX when it never will). */
static int64_t s_tokens_at(const eeprom_policy_t *e, int64_t need_units, int64_t now)
{
    int64_t l = s_level(e, now);
    if (l >= need_units)
        return now;
    if (need_units > (int64_t)e->burst * TOKEN)
        return INT64_MAX;
    return now + (need_units - l + e->per_day - 1) / e->per_day;
}

eeprom_decision_t eeprom_policy_decide(eeprom_policy_t *e, uint16_t cmd, int32_t old_raw,
                                       int32_t new_raw, eeprom_writer_t by, bool holder,
                                       int64_t now, int64_t *until)
{
    int64_t dummy;
    if (!until)
        until = &dummy;
    *until = now;
    int i = eeprom_reg_index(cmd);
    if (i < 0 || !eeprom_policy_persists(e, cmd) || by == EEPROM_BY_SAFETY ||
        bic_write_toward_safety(cmd, old_raw, new_raw))
        return EEPROM_WRITE_NOW;
    if (e->per_day <= 0) {
        /* the fixed-interval rule: the spacing holds back a controller's set-points only */
        if (by == EEPROM_BY_PERSON || !s_regs[i].star)
            return EEPROM_WRITE_NOW;
        return eeprom_policy_request(e, cmd, (uint32_t)new_raw, now) == EEPROM_DEFER
                   ? (*until = s_allowed_at(e), EEPROM_DEFER)
                   : EEPROM_WRITE_NOW;
    }
    int64_t need = (int64_t)(1 + (holder ? 0 : eeprom_policy_reserve(e))) * TOKEN;
    int64_t at = s_tokens_at(e, need, now);
    if (by == EEPROM_BY_CONTROL && s_regs[i].star && e->have_last_ctl &&
        e->last_ctl + e->interval > at)
        at = e->last_ctl + e->interval;
    if (at <= now)
        return EEPROM_WRITE_NOW;
    *until = at;
    if (by == EEPROM_BY_PERSON)
        return EEPROM_REFUSE;
    if (!e->pending[i])
        e->pending_since[i] = now;
    e->pending[i] = true;
    e->pending_raw[i] = (uint32_t)new_raw;
    return EEPROM_DEFER;
}

void eeprom_policy_written(eeprom_policy_t *e, uint16_t cmd, int64_t now)
{
    eeprom_policy_written_by(e, cmd, true, now);
}

void eeprom_policy_written_by(eeprom_policy_t *e, uint16_t cmd, bool holder, int64_t now)
{
    int i = eeprom_reg_index(cmd);
    if (i < 0)
        return;
    e->pending[i] = false;
    if (!eeprom_policy_persists(e, cmd))
        return;
    e->count[i]++;
    e->have_last = true;
    e->last = now;
    if (holder) {
        e->have_last_ctl = true;
        e->last_ctl = now;
    }
    if (e->per_day > 0) {
        /* every persisted write takes its token, whoever made it: a write toward safety that
         * goes out past an empty bucket leaves a debt, which the refill pays off before the
         * next write that needs a whole token */
        int64_t l = s_level(e, now) - TOKEN;
        e->level = l < -FLOOR_UNITS ? -FLOOR_UNITS : l;
        e->level_at = now;
        e->level_set = true;
    }
}

void eeprom_policy_uncount(eeprom_policy_t *e, uint16_t cmd)
{
    int i = eeprom_reg_index(cmd);
    if (i >= 0 && e->count[i] > 0)
        e->count[i]--;
}

void eeprom_policy_clear_pending(eeprom_policy_t *e, uint16_t cmd)
{
    int i = eeprom_reg_index(cmd);
    if (i >= 0)
        e->pending[i] = false;
}

bool eeprom_policy_pending(const eeprom_policy_t *e, uint16_t cmd, uint32_t *raw)
{
    int i = eeprom_reg_index(cmd);
    if (i < 0 || !e->pending[i])
        return false;
    if (raw)
        *raw = e->pending_raw[i];
    return true;
}

/* The pending value waiting longest; only_free: only those a write would not persist. */
static int s_oldest_pending_of(const eeprom_policy_t *e, bool only_free)
{
    int best = -1;
    for (int i = 0; i < EEPROM_NREGS; i++) {
        if (!e->pending[i] || (only_free && !(s_regs[i].spare && e->eep_off)))
            continue;
        if (best < 0 || e->pending_since[i] < e->pending_since[best])
            best = i;
    }
    return best;
}

static int s_oldest_pending(const eeprom_policy_t *e)
{
    return s_oldest_pending_of(e, false);
}

bool eeprom_policy_due(const eeprom_policy_t *e, int64_t now, uint16_t *cmd, uint32_t *raw)
{
    /* values that no longer persist (EEP_OFF set after they were held back) go first, now */
    int i = s_oldest_pending_of(e, true);
    if (i < 0) {
        i = s_oldest_pending(e);
        if (i < 0 || now < s_allowed_at(e))
            return false;
    }
    *cmd = s_regs[i].cmd;
    *raw = e->pending_raw[i];
    return true;
}

int64_t eeprom_policy_deadline(const eeprom_policy_t *e)
{
    if (s_oldest_pending_of(e, true) >= 0)
        return 0;
    if (s_oldest_pending(e) < 0)
        return INT64_MAX;
    int64_t t = s_allowed_at(e);
    return t == INT64_MIN ? 0 : t;
}

uint64_t eeprom_policy_count(const eeprom_policy_t *e, int index)
{
    return (index >= 0 && index < EEPROM_NREGS) ? e->count[index] : 0;
}

uint64_t eeprom_policy_total(const eeprom_policy_t *e)
{
    uint64_t t = 0;
    for (int i = 0; i < EEPROM_NREGS; i++)
        t += e->count[i];
    return t;
}

void eeprom_policy_set_count(eeprom_policy_t *e, int index, uint64_t count)
{
    if (index >= 0 && index < EEPROM_NREGS)
        e->count[index] = count;
}

bool eeprom_policy_last_write(const eeprom_policy_t *e, int64_t *when)
{
    if (e->have_last && when)
        *when = e->last;
    return e->have_last;
}

void eeprom_policy_set_last_write(eeprom_policy_t *e, int64_t when)
{
    e->have_last = true;
    e->last = when;
    e->have_last_ctl = true;
    e->last_ctl = when;
}
