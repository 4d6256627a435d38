/*
 * gw_ensure: the write engine for one device (pure core: no I/O, no clock reads).
 *
 * A job says "register R of this device should hold V" for up to GW_ENSURE_MAX targets, one
 * after the other: read, compare (skip when the device already holds it), ask the EEPROM
 * policy (write now, defer, refuse), write, read back, verify. A read-back that shows the old
 * value means the device never took the write (lost on the line): it is taken back from the
 * counters and written once more before the job fails with a verify error. A read or write
 * that fails after the bus scheduler's own retries ends the job (timeout, bus down). A power
 * cycle seen while a job runs restarts its current target from the read (the device may hold
 * its stored value again).
 *
 * Where the caller knows what a register holds (it read it lately and nothing else can have
 * changed it, see gw_dev_known()), it may hand that value in instead of the read
 * (gw_ensure_known()): the job then goes straight to the write and its read-back. Only a value
 * that differs from the wanted one is taken; a value the caller believes is already there is
 * read from the device as before, so a wrong belief can cost at most one write that was not
 * needed, never a write that was. After a power cycle seen in the job every target is read.
 *
 * Driven like bus_sched: gw_ensure_next() gives the next bus request to submit (the caller
 * tags it and hands it to bus_sched), gw_ensure_on_result() takes its result and returns what
 * happened, so the loop around can cache values, publish events and save the counters.
 */
#ifndef BIC_GW_ENSURE_H
#define BIC_GW_ENSURE_H

#include <stdbool.h>
#include <stdint.h>

#include "bus_sched.h"
#include "eeprom_policy.h"

#define GW_ENSURE_MAX 8

/* The outcome of one target. */
typedef enum {
    GWE_OPEN = 0,  /* not finished */
    GWE_UNCHANGED, /* the device already held the value: nothing written */
    GWE_WRITTEN,   /* written and verified (or, with tolerate, written and read back) */
    GWE_DEFERRED,  /* held back by the EEPROM policy until `until` (pending value) */
    GWE_REFUSED,   /* refused by the EEPROM policy (a person's write, budget spent) */
    GWE_FAILED     /* the job ended here (see gw_ensure_error) */
} gwe_outcome_t;

/* Why a job failed. */
typedef enum { GWE_OK = 0, GWE_ERR_TIMEOUT, GWE_ERR_BUS_DOWN, GWE_ERR_VERIFY } gwe_error_t;

/* What gw_ensure_on_result() saw; the caller acts on it. */
typedef enum {
    GWE_EV_NONE = 0,
    GWE_EV_READ,      /* a value was read (target's before, or after on read-back): cache it */
    GWE_EV_WRITTEN,   /* a write went out (counted when it persists: save the counters) */
    GWE_EV_UNCOUNTED, /* the read-back showed the write was not taken: the count was taken
                         back (save the counters); it is written once more */
    GWE_EV_FAILED     /* the job ended with an error */
} gwe_event_t;

typedef struct {
    uint16_t cmd;
    uint16_t value;    /* wanted bits; after the read: the whole wanted value */
    uint16_t mask;     /* bits that matter (0xFFFF: the whole register) */
    bool at_most;      /* value is an upper bound: a lower value is left as it is */
    bool tolerate;     /* a read-back mismatch is a finding (mismatch), not an error */
    const char *label; /* the caller's name for the step (static text) */
    /* outcome */
    gwe_outcome_t outcome;
    bool read_ok;
    int32_t before, after; /* as read before the write and read back after it */
    bool known;            /* before is the value the caller knew (no read was made) */
    bool written;          /* a write went out (also when the read-back then differed) */
    bool counted;          /* ... and was counted as a persisted EEPROM write */
    bool mismatch;         /* the read-back differed */
    bool safety;           /* the write moved the device toward safety */
    int64_t until;         /* GWE_DEFERRED/GWE_REFUSED: when the policy would allow it */
} gwe_target_t;

typedef struct gw_ensure gw_ensure_t;

/* A new job for device addr; by and holder are passed to eeprom_policy_decide() (holder: the
 * writer holds the device's control lease). NULL when out of memory. */
gw_ensure_t *gw_ensure_new(uint8_t addr, eeprom_writer_t by, bool holder);
void gw_ensure_destroy(gw_ensure_t **p);

/* Adds a target. Returns 0, or -1 when the job is full. */
int gw_ensure_add(gw_ensure_t *e, uint16_t cmd, uint16_t value, uint16_t mask, bool tolerate,
                  const char *label);
/* Adds a target whose value is an upper bound (a current within the configured maximum). */
int gw_ensure_add_at_most(gw_ensure_t *e, uint16_t cmd, uint16_t max, const char *label);

/* The next bus request of the job: returns 1 with *req filled (a read with len 0, or a write
 * with len 2 and the value little-endian in data: the caller sets the register's own length),
 * 0 when a request is in flight or the job is finished. */
int gw_ensure_next(gw_ensure_t *e, int64_t now, bus_req_t *req);

/* The result of the request gw_ensure_next() gave. raw_ok/raw: the decoded value of a read
 * (false for a reply that could not be decoded: treated as a failed read). eep is the
 * device's EEPROM policy: it decides after the read and counts the write. */
gwe_event_t gw_ensure_on_result(gw_ensure_t *e, eeprom_policy_t *eep, const bus_result_t *r,
                                bool raw_ok, int32_t raw, int64_t now);

/* The register whose read the job makes next, or -1: a whole-register target (not masked, not
 * at-most: those need the device's other bits) whose read is not sent yet, and no power cycle
 * seen in this job. */
int gw_ensure_read_due(const gw_ensure_t *e);

/* The caller knows the register of gw_ensure_read_due() holds raw: taken as the read when it
 * differs from the wanted value (the EEPROM policy decides, then the write and its read-back
 * follow); returns 1 when taken, 0 when not (the read goes ahead). */
int gw_ensure_known(gw_ensure_t *e, eeprom_policy_t *eep, int32_t raw, int64_t now);

/* A failed submission of the request (queue full, bus down): ends the job. */
void gw_ensure_submit_failed(gw_ensure_t *e, bool bus_down);

/* The device was power cycled: the current target starts again from its read. */
void gw_ensure_power_cycled(gw_ensure_t *e);

bool gw_ensure_done(const gw_ensure_t *e);
gwe_error_t gw_ensure_error(const gw_ensure_t *e);
uint8_t gw_ensure_addr(const gw_ensure_t *e);
eeprom_writer_t gw_ensure_writer(const gw_ensure_t *e);
int gw_ensure_count(const gw_ensure_t *e);
int gw_ensure_current(const gw_ensure_t *e); /* index of the target in progress */
/* Target i (0..count-1), or NULL. */
const gwe_target_t *gw_ensure_target(const gw_ensure_t *e, int i);
/* Counts over the targets. */
int gw_ensure_writes(const gw_ensure_t *e);
bool gw_ensure_any(const gw_ensure_t *e, gwe_outcome_t outcome);

#endif
