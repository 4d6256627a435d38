/*
 * eeprom_policy: EEPROM wear protection for one device (pure core, time as monotonic µs).
 *
 * The BIC-2200 persists OPERATION, VOUT_SET, IOUT_SET, REVERSE_VOUT_SET, REVERSE_IOUT_SET,
 * SYSTEM_CONFIG and BIDIRECTIONAL_CONFIG. With EEP_OFF set (newer firmware, verified by
 * read-back) the four `*` setpoints stay in RAM. Without it every setpoint change wears the
 * EEPROM, so the gateway limits persisted setpoint writes per device and keeps the newest
 * refused value as pending, to be written when allowed. OPERATION and the configuration
 * registers are never deferred (turning the output off must not wait), but they count, restart
 * the spacing and take a token. Every persisted write is counted per register.
 *
 * An NPB charger persists the same shared registers and its charge curve (CURVE_CC/CV/FV/TC,
 * CURVE_CONFIG, the three stage timeouts, CHG_RST_VBAT) whatever EEP_OFF says; CURVE_CC, its
 * charger-mode setpoint, is deferred like the BIC's setpoints (docs/npb.md).
 *
 * The limit is a minimum spacing between persisted writes plus, optionally, a daily budget as
 * a token bucket: writes_per_day tokens a day flow in, at most burst are saved up, each
 * persisted write takes one. A setpoint write needs a whole token and the spacing to have
 * passed. Writes that are never held back (eeprom_policy_decide: toward safety, the safe
 * state) take their token all the same: past an empty bucket they leave a debt (a level below
 * 0) that the refill pays off before any write that needs a whole token goes out. So a client
 * that alternates a write within the budget and one toward safety (a charge and a stop) gets
 * no more persisted writes than the budget, plus the few toward safety since the last write
 * that needed a token; a stop is never refused. Without a daily budget (writes_per_day 0) only the
 * spacing applies: the fixed-interval rule.
 */
#ifndef BIC_EEPROM_POLICY_H
#define BIC_EEPROM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define EEPROM_NREGS 16

typedef enum { EEPROM_WRITE_NOW = 0, EEPROM_DEFER, EEPROM_REFUSE } eeprom_decision_t;

/* Who asks for a write (eeprom_policy_decide). */
typedef enum {
    EEPROM_BY_PERSON = 0, /* bicctl, MQTT commands, the configured limits: at once within the
                             budget, refused when it is spent; never waits for the spacing */
    EEPROM_BY_CONTROL,    /* a controller's setpoint, a held-back value: spacing and budget,
                             deferred when they do not allow it */
    EEPROM_BY_SAFETY      /* the gateway's safe state: never held back */
} eeprom_writer_t;

typedef struct eeprom_policy eeprom_policy_t;

eeprom_policy_t *eeprom_policy_new(int64_t min_interval_us);
void eeprom_policy_destroy(eeprom_policy_t **p);

/* The minimum spacing between persisted writes (the fixed interval without a daily budget). */
void eeprom_policy_set_interval(eeprom_policy_t *e, int64_t min_interval_us);
int64_t eeprom_policy_interval(const eeprom_policy_t *e);

/* The daily budget: writes_per_day >= 1 tokens a day, burst >= 1 saved up at most; 0, 0
 * (or any value < 1) turns the bucket off. The level carries over (clamped to the new burst);
 * a policy that never had a level (new device, no state file) starts with a full bucket. */
void eeprom_policy_set_budget(eeprom_policy_t *e, int writes_per_day, int burst, int64_t now);
int eeprom_policy_writes_per_day(const eeprom_policy_t *e); /* 0: no daily budget */
int eeprom_policy_burst(const eeprom_policy_t *e);          /* 0: no daily budget */

/* Tokens at now (below 0: a debt left by writes toward safety). Without a daily budget: the
 * share of the interval passed since the last persisted write, at most 1 (what a one-deep
 * bucket refilled once per interval would hold). */
double eeprom_policy_tokens(const eeprom_policy_t *e, int64_t now);
/* Restores the level of the bucket as it was at `at` (from the state file); it refills from
 * `at` on. tokens is clamped to [-EEPROM_TOKENS_FLOOR, burst]. */
void eeprom_policy_set_tokens(eeprom_policy_t *e, double tokens, int64_t at);
#define EEPROM_TOKENS_FLOOR 1000000.0

/* EEP_OFF confirmed by read-back (true) or not available/not set (false). */
void eeprom_policy_set_eep_off(eeprom_policy_t *e, bool eep_off);
bool eeprom_policy_eep_off(const eeprom_policy_t *e);

/* The EEPROM-backed register set: index 0..EEPROM_NREGS-1 or -1 when not persisted at all. */
int eeprom_reg_index(uint16_t cmd);
uint16_t eeprom_reg_cmd(int index);
const char *eeprom_reg_name(int index);

/* True when a write of cmd reaches the EEPROM under the current EEP_OFF state. */
bool eeprom_policy_persists(const eeprom_policy_t *e, uint16_t cmd);

/* Decides a write of raw to cmd at now. A deferred value becomes the register's pending
 * value (replacing an older one). Writes that do not persist, and the never-deferred
 * registers, are always WRITE_NOW. */
eeprom_decision_t eeprom_policy_request(eeprom_policy_t *e, uint16_t cmd, uint32_t raw,
                                        int64_t now);

/* Tokens a write by someone other than the device's lease holder must leave in the bucket:
 * a quarter of the burst (0 without a daily budget). */
int eeprom_policy_reserve(const eeprom_policy_t *e);

/* The rules every write goes through (docs/configuration.md, "EEPROM writes"):
 * - a write that does not persist, or one toward safety, or by the safe state: WRITE_NOW
 *   (past an empty bucket too: the write then leaves a debt, eeprom_policy_written_by);
 * - otherwise it needs a whole token above the reserve (none for the lease holder):
 *   a person's write goes out at once or is refused (EEPROM_REFUSE, *until = when the bucket
 *   allows it); a controller's write of a set-point also waits for the spacing and is
 *   deferred (EEPROM_DEFER, *until; the value becomes the register's pending value).
 * Without a daily budget (the fixed-interval rule) the spacing is the only limit and applies
 * to a controller's set-point writes only. until may be NULL. */
eeprom_decision_t eeprom_policy_decide(eeprom_policy_t *e, uint16_t cmd, int32_t old_raw,
                                       int32_t new_raw, eeprom_writer_t by, bool holder,
                                       int64_t now, int64_t *until);

/* Records a write that went out: counts it if it persists, restarts the spacing and takes a
 * token.
 * Also drops a pending value for cmd (the newer write supersedes it). */
void eeprom_policy_written(eeprom_policy_t *e, uint16_t cmd, int64_t now);
/* The same for a write by a client that does (holder) or does not hold the device's lease:
 * the spacing counts from the holder's writes only. Every persisted write takes a token,
 * whoever made it: a write toward safety past an empty bucket (or into the reserve, by a
 * client without the lease) leaves the level that much lower, below 0 a debt. */
void eeprom_policy_written_by(eeprom_policy_t *e, uint16_t cmd, bool holder, int64_t now);

/* Takes back the count of a write the device did not take (the read-back showed the old
 * value). The spacing stays restarted and the token spent: the budget errs on the side of
 * fewer writes. */
void eeprom_policy_uncount(eeprom_policy_t *e, uint16_t cmd);

/* Drops a pending value (e.g. the device already holds the wanted value). */
void eeprom_policy_clear_pending(eeprom_policy_t *e, uint16_t cmd);

/* Pending value of cmd: true and *raw, or false. */
bool eeprom_policy_pending(const eeprom_policy_t *e, uint16_t cmd, uint32_t *raw);

/* A pending value that may be written at now (the one waiting longest). Returns true and
 * fills cmd/raw; the caller writes it and calls eeprom_policy_written(). */
bool eeprom_policy_due(const eeprom_policy_t *e, int64_t now, uint16_t *cmd, uint32_t *raw);

/* When a pending value becomes due (INT64_MAX when nothing is pending). */
int64_t eeprom_policy_deadline(const eeprom_policy_t *e);

/* Counters. */
uint64_t eeprom_policy_count(const eeprom_policy_t *e, int index);
uint64_t eeprom_policy_total(const eeprom_policy_t *e);
/* Restores a counter loaded from the state file. */
void eeprom_policy_set_count(eeprom_policy_t *e, int index, uint64_t count);
/* Last persisted write (monotonic µs) or false when none since start. */
bool eeprom_policy_last_write(const eeprom_policy_t *e, int64_t *when);
/* Restores the time of the last persisted write (converted from the state file's wall time)
 * so a restart does not reset the interval. */
void eeprom_policy_set_last_write(eeprom_policy_t *e, int64_t when);

#endif
