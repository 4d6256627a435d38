/*
 * lease: the control leases of one gateway (pure core, time passed in as monotonic µs).
 *
 * One client at a time may drive the setpoints of a device. It takes that device's lease with
 * a TTL and renews it; when it lapses the gateway applies its safe state to that device. A
 * lease_t is the lease of one device; a lease_table_t holds one per CAN address, so several
 * controllers can drive several devices on one bus. Names are validated here so every caller
 * gets the same rule (1-32 characters of [A-Za-z0-9_.-]).
 */
#ifndef BIC_LEASE_H
#define BIC_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#define LEASE_NAME_MAX 32

typedef enum {
    LEASE_OK = 0,
    LEASE_HELD,       /* another client holds it */
    LEASE_NOT_HOLDER, /* renew/release by a client that does not hold it */
    LEASE_BAD_NAME,
    LEASE_BAD_TTL,
} lease_rc_t;

typedef enum { LEASE_FREE = 0, LEASE_MINE, LEASE_OTHER } lease_owner_t;

typedef struct lease lease_t;

/* max_ttl_us: the longest TTL a client may ask for. NULL on bad argument or no memory. */
lease_t *lease_new(int64_t max_ttl_us);
void lease_destroy(lease_t **p);
void lease_set_max_ttl(lease_t *l, int64_t max_ttl_us);
int64_t lease_max_ttl(const lease_t *l);

/* True when name is 1-32 characters of [A-Za-z0-9_.-]. */
bool lease_name_valid(const char *name);

/* Takes the lease (free, lapsed or already held by client) for ttl_us. */
lease_rc_t lease_take(lease_t *l, const char *client, int64_t ttl_us, int64_t now);
/* Extends the holder's lease to now + ttl_us. */
lease_rc_t lease_renew(lease_t *l, const char *client, int64_t ttl_us, int64_t now);
/* Gives the lease up (no safe state: the holder leaves the device as it wants it). */
lease_rc_t lease_release(lease_t *l, const char *client, int64_t now);

/* Who holds it from client's point of view (client may be NULL: FREE or OTHER). */
lease_owner_t lease_owner(const lease_t *l, const char *client, int64_t now);

/* Holder name, or NULL when free at now. Owned by the lease. */
const char *lease_holder(const lease_t *l, int64_t now);
/* Time left (µs, >= 0), 0 when free. */
int64_t lease_remaining(const lease_t *l, int64_t now);

/* Detects a lapse: returns true once, when a held lease has expired at now, copying the
 * former holder's name to lapsed_holder (LEASE_NAME_MAX + 1 bytes) and freeing the lease. */
bool lease_check_lapse(lease_t *l, int64_t now, char *lapsed_holder);

/* When lease_check_lapse() has something to do (INT64_MAX when free). */
int64_t lease_deadline(const lease_t *l);

/* The TTL last granted by a take or renew (what a restarted gateway grants again). */
int64_t lease_ttl(const lease_t *l);

/* ---- one lease per device ---- */

#define LEASE_TABLE_SIZE 68 /* device numbers: BICs 0-63, NPBs 64-67 */

typedef struct lease_table lease_table_t;

/* A set of device numbers: bit n % 64 of w[n / 64]. */
typedef struct {
    uint64_t w[(LEASE_TABLE_SIZE + 63) / 64];
} lease_devs_t;

static inline void lease_devs_add(lease_devs_t *s, int dev)
{
    if (dev >= 0 && dev < LEASE_TABLE_SIZE)
        s->w[dev / 64] |= 1ULL << (dev % 64);
}

static inline bool lease_devs_has(const lease_devs_t *s, int dev)
{
    return dev >= 0 && dev < LEASE_TABLE_SIZE && ((s->w[dev / 64] >> (dev % 64)) & 1);
}

/* NULL on bad argument or no memory. */
lease_table_t *lease_table_new(int64_t max_ttl_us);
void lease_table_destroy(lease_table_t **p);
void lease_table_set_max_ttl(lease_table_t *t, int64_t max_ttl_us);
int64_t lease_table_max_ttl(const lease_table_t *t);

/* The lease of device dev (0-67), owned by the table; NULL when dev is out of range. */
lease_t *lease_table_get(lease_table_t *t, int dev);

/* Takes the lease of every device in devs, all or none: LEASE_HELD when another client holds
 * one of them, *blocked_dev naming it. */
lease_rc_t lease_table_take_all(lease_table_t *t, const lease_devs_t *devs, const char *client,
                                int64_t ttl_us, int64_t now, int *blocked_dev);

/* Renews (ttl_us) or, with release, gives up every lease client holds; *done_devs gets the
 * devices it acted on. When client holds none: LEASE_HELD when another client holds one
 * (*blocked_dev names it), LEASE_NOT_HOLDER when none is held. */
lease_rc_t lease_table_renew_all(lease_table_t *t, const char *client, int64_t ttl_us, int64_t now,
                                 lease_devs_t *done_devs, int *blocked_dev);
lease_rc_t lease_table_release_all(lease_table_t *t, const char *client, int64_t now,
                                   lease_devs_t *done_devs, int *blocked_dev);

/* Detects one lapse: true with *dev and lapsed_holder (LEASE_NAME_MAX + 1 bytes) filled for a
 * device whose lease expired at now (that lease is freed); call until false. */
bool lease_table_check_lapse(lease_table_t *t, int64_t now, int *dev, char *lapsed_holder);

/* The earliest lease_table_check_lapse() deadline (INT64_MAX when nothing is held). */
int64_t lease_table_deadline(const lease_table_t *t);

#endif
