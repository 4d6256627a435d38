/*
 * gw_state: the gateway's persisted state: the EEPROM write counters per device and register
 * and the time of each device's last persisted write (so a restart neither loses the count nor
 * resets the write interval), the level of each device's daily-budget bucket with the wall time
 * it was taken (so a restart does not refill it), and the holder of the control lease.
 *
 * The file is JSON, replaced atomically: written to a temporary file, fsync'ed, renamed over
 * the old one, and the directory fsync'ed. A failed save (disk full, read-only) returns -1
 * with the reason; the in-memory counters are untouched and the caller retries later.
 */
#ifndef BIC_GW_STATE_H
#define BIC_GW_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "eeprom_policy.h"

#define GW_STATE_FILE "eeprom-counters.json"

/* Saves the counters of every non-NULL eep[addr] (64 entries) to path. now_us/wall_ms
 * convert the monotonic time of the last write to wall time. Returns 0 or -1 (err). */
int gw_state_save(const char *path, eeprom_policy_t *const *eep, int64_t now_us, int64_t wall_ms,
                  char *err, size_t errlen);

/* Loads path into eep[addr], creating a policy with interval_us where there is none.
 * A missing file is not an error (returns 0, nothing loaded). Returns the number of devices
 * loaded, or -1 (err) when the file exists but cannot be read or parsed. */
int gw_state_load(const char *path, eeprom_policy_t **eep, int64_t interval_us, int64_t now_us,
                  int64_t wall_ms, char *err, size_t errlen);

#define GW_LEASE_FILE "lease.json"

/* The control lease across a restart: the holder and its TTL (not the time left, so a
 * restarted gateway gives the holder a full TTL to renew before the safe state). Written
 * atomically when the holder changes, never on renewals. holder NULL or "" = free.
 * Returns 0 or -1 (err). */
int gw_state_save_lease(const char *path, const char *holder, int64_t ttl_us, char *err,
                        size_t errlen);

/* Loads the lease file: 1 with holder (LEASE_NAME_MAX + 1 bytes) and *ttl_us filled, 0 when
 * there is no file or no holder, -1 (err) when it cannot be read or is invalid. */
int gw_state_load_lease(const char *path, char *holder, size_t holderlen, int64_t *ttl_us,
                        char *err, size_t errlen);

#endif
