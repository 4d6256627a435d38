/*
 * gw_state: the gateway's persisted state: the EEPROM write counters per device and register
 * and the time of each device's last persisted write (so a restart neither loses the count nor
 * resets the write interval), the level of each device's daily-budget bucket with the wall time
 * it was taken (so a restart does not refill it), and the holders of the control leases (one per
 * device).
 *
 * The files are JSON, mode 0600, replaced atomically: written to a temporary file, fsync'ed,
 * renamed over the old one, and the directory fsync'ed. A failed save (disk full, read-only)
 * returns -1 with the reason; the in-memory counters are untouched and the caller retries later.
 */
#ifndef BIC_GW_STATE_H
#define BIC_GW_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eeprom_policy.h"

#define GW_STATE_FILE "eeprom-counters.json"

/* Saves the counters of every non-NULL eep[addr] (GW_LEASE_DEVS entries) to path. now_us/wall_ms
 * convert the monotonic time of the last write to wall time. Returns 0 or -1 (err). */
int gw_state_save(const char *path, eeprom_policy_t *const *eep, int64_t now_us, int64_t wall_ms,
                  char *err, size_t errlen);

/* Loads path into eep[addr], creating a policy with interval_us where there is none.
 * A missing file is not an error (returns 0, nothing loaded). Returns the number of devices
 * loaded, or -1 (err) when the file exists but cannot be read or parsed. */
int gw_state_load(const char *path, eeprom_policy_t **eep, int64_t interval_us, int64_t now_us,
                  int64_t wall_ms, char *err, size_t errlen);

#define GW_LEASE_FILE "lease.json"
#define GW_LEASE_DEVS 68 /* device numbers: BICs 0-63, NPBs 64-67 */

/* The control lease of one device across a restart: its holder ("" = free), the holder's token
 * ("" in a file of earlier versions) and TTL (not the time left, so a restarted gateway gives
 * the holder a full TTL to renew before the safe state). */
typedef struct {
    char holder[33]; /* LEASE_NAME_MAX + 1 */
    char token[33];  /* LEASE_TOKEN_LEN + 1 */
    int64_t ttl_us;
} gw_lease_rec_t;

/* Saves the leases of devices 0-67 (rec[GW_LEASE_DEVS]) as
 * {"v":2,"leases":[{"dev":0,"holder":"..","token":"..","ttl_ms":..},...]}, atomically, readable
 * by the gateway's user only (the tokens). Written when a holder changes, never on renewals.
 * Returns 0 or -1 (err). */
int gw_state_save_leases(const char *path, const gw_lease_rec_t *rec, char *err, size_t errlen);

/* Loads the lease file into rec[GW_LEASE_DEVS] (all cleared first). The single-lease file of
 * earlier versions ({"v":1,"holder":..,"ttl_ms":..}) means "every device": *every is set and
 * rec[0] holds it. Returns the number of leases held (0 also when there is no file), or -1
 * (err) when the file cannot be read or is invalid. */
int gw_state_load_leases(const char *path, gw_lease_rec_t *rec, bool *every, char *err,
                         size_t errlen);

#endif
