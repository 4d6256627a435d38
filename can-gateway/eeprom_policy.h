/*
 * eeprom_policy: EEPROM wear protection for one device (pure core, time as monotonic µs).
 *
 * The BIC-2200 persists OPERATION, VOUT_SET, IOUT_SET, REVERSE_VOUT_SET, REVERSE_IOUT_SET,
 * SYSTEM_CONFIG and BIDIRECTIONAL_CONFIG. With EEP_OFF set (newer firmware, verified by
 * read-back) the four `*` setpoints stay in RAM. Without it every setpoint change wears the
 * EEPROM, so the gateway allows one persisted setpoint write per device per min_interval and
 * keeps the newest refused value as pending, to be written when allowed. OPERATION and the
 * configuration registers are never deferred (turning the output off must not wait), but they
 * count and restart the interval. Every persisted write is counted per register.
 */
#ifndef BIC_EEPROM_POLICY_H
#define BIC_EEPROM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define EEPROM_NREGS 7

typedef enum { EEPROM_WRITE_NOW = 0, EEPROM_DEFER } eeprom_decision_t;

typedef struct eeprom_policy eeprom_policy_t;

eeprom_policy_t *eeprom_policy_new(int64_t min_interval_us);
void eeprom_policy_destroy(eeprom_policy_t **p);

void eeprom_policy_set_interval(eeprom_policy_t *e, int64_t min_interval_us);
int64_t eeprom_policy_interval(const eeprom_policy_t *e);

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

/* Records a write that went out: counts it if it persists and restarts the interval.
 * Also drops a pending value for cmd (the newer write supersedes it). */
void eeprom_policy_written(eeprom_policy_t *e, uint16_t cmd, int64_t now);

/* Takes back the count of a write the device did not take (the read-back showed the old
 * value). The interval stays restarted: the budget errs on the side of fewer writes. */
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
