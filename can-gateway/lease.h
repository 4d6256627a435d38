/*
 * lease: the control leases of one gateway (pure core, time passed in as monotonic µs).
 *
 * One client at a time may drive the setpoints of a device. It takes that device's lease with
 * a TTL and renews it; when it lapses the gateway applies its safe state to that device. A
 * lease_t is the lease of one device; a lease_table_t holds one per CAN address, so several
 * controllers can drive several devices on one bus. Names are validated here so every caller
 * gets the same rule (1-32 characters of [A-Za-z0-9_.-]).
 *
 * Names are public, so a lease is tied to a token given at take (the caller draws it: this core
 * has no I/O): every later act on the lease (take again, renew, release, and whatever needs
 * the holder) must name the holder and carry its token. The right name with a missing or
 * wrong token is LEASE_BAD_TOKEN; a second instance using the holder's name cannot take,
 * renew or release the lease before it lapses or is released.
 */
#ifndef BIC_LEASE_H
#define BIC_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#define LEASE_NAME_MAX 32
#define LEASE_TOKEN_LEN 32 /* lowercase hex digits (128 bits) */

typedef enum {
    LEASE_OK = 0,
    LEASE_HELD,       /* another client holds it */
    LEASE_NOT_HOLDER, /* renew/release by a client that does not hold it */
    LEASE_BAD_NAME,
    LEASE_BAD_TTL,
    LEASE_BAD_TOKEN, /* the holder's name without the holder's token */
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

/* True when token is LEASE_TOKEN_LEN characters of [0-9a-f]. */
bool lease_token_valid(const char *token);

/* In the functions below token is the one the request carries (NULL or "" when none).
 * Takes the lease for ttl_us: a free or lapsed one with the token fresh (valid, drawn by the
 * caller); one client already holds, only with its token (then a renewal, token unchanged). */
lease_rc_t lease_take(lease_t *l, const char *client, const char *token, const char *fresh,
                      int64_t ttl_us, int64_t now);
/* Extends the holder's lease to now + ttl_us. */
lease_rc_t lease_renew(lease_t *l, const char *client, const char *token, int64_t ttl_us,
                       int64_t now);
/* Gives the lease up (no safe state: the holder leaves the device as it wants it). */
lease_rc_t lease_release(lease_t *l, const char *client, const char *token, int64_t now);

/* May client (NULL or "": anonymous) act as the holder? LEASE_OK: it holds the lease and
 * carries its token; LEASE_NOT_HOLDER: the lease is free; LEASE_HELD: another client holds
 * it; LEASE_BAD_TOKEN: client is the holder's name but the token is missing or wrong. */
lease_rc_t lease_check(const lease_t *l, const char *client, const char *token, int64_t now);

/* Who holds it from client's point of view (client may be NULL: FREE or OTHER). */
lease_owner_t lease_owner(const lease_t *l, const char *client, int64_t now);

/* Holder name, or NULL when free at now. Owned by the lease. */
const char *lease_holder(const lease_t *l, int64_t now);
/* The holder's token (for the state file only), or NULL when free at now. */
const char *lease_token(const lease_t *l, int64_t now);
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

/* Takes the lease of every device in devs, all or none: LEASE_HELD when another client holds one of
 * them, LEASE_BAD_TOKEN when client holds one under another token, *blocked_dev naming it. The
 * leases taken get token when client holds a lease of the table with it (one token for all of a
 * client's devices), else fresh; granted (LEASE_TOKEN_LEN + 1 bytes, may be NULL) gets the one
 * given. */
lease_rc_t lease_table_take_all(lease_table_t *t, const lease_devs_t *devs, const char *client,
                                const char *token, const char *fresh, int64_t ttl_us, int64_t now,
                                int *blocked_dev, char *granted);

/* Renews (ttl_us) or, with release, gives up every lease client holds with token;
 * *done_devs gets the devices it acted on. When there is none: LEASE_BAD_TOKEN when client
 * holds one under another token, LEASE_HELD when another client holds one (*blocked_dev
 * names it), LEASE_NOT_HOLDER when none is held. */
lease_rc_t lease_table_renew_all(lease_table_t *t, const char *client, const char *token,
                                 int64_t ttl_us, int64_t now, lease_devs_t *done_devs,
                                 int *blocked_dev);
lease_rc_t lease_table_release_all(lease_table_t *t, const char *client, const char *token,
                                   int64_t now, lease_devs_t *done_devs, int *blocked_dev);

/* Detects one lapse: true with *dev and lapsed_holder (LEASE_NAME_MAX + 1 bytes) filled for a
 * device whose lease expired at now (that lease is freed); call until false. */
bool lease_table_check_lapse(lease_table_t *t, int64_t now, int *dev, char *lapsed_holder);

/* The earliest lease_table_check_lapse() deadline (INT64_MAX when nothing is held). */
int64_t lease_table_deadline(const lease_table_t *t);

#endif
