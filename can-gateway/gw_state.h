/*
 * gw_state: the gateway's persisted state, i.e. the EEPROM write counters per device and
 * register and the time of each device's last persisted write (so a restart neither loses
 * the count nor resets the write interval).
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

#endif
