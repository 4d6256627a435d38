/*
 * lease: the control leases, one per device (see lease.h).
 */
#include "lease.h"

#include <stdlib.h>
#include <string.h>

#include "gw_client.h"

struct lease {
    char holder[LEASE_NAME_MAX + 1]; /* "" = free */
    char token[LEASE_TOKEN_LEN + 1];
    int64_t expires; /* monotonic µs */
    int64_t ttl_us;  /* last granted TTL */
    int64_t max_ttl_us;
};

struct lease_table {
    lease_t dev[LEASE_TABLE_SIZE];
    int64_t max_ttl_us;
};

lease_t *lease_new(int64_t max_ttl_us)
{
    if (max_ttl_us <= 0)
        return NULL;
    lease_t *l = calloc(1, sizeof *l);
    if (l)
        l->max_ttl_us = max_ttl_us;
    return l;
}

void lease_destroy(lease_t **p)
{
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

void lease_set_max_ttl(lease_t *l, int64_t max_ttl_us)
{
    if (max_ttl_us > 0)
        l->max_ttl_us = max_ttl_us;
}

int64_t lease_max_ttl(const lease_t *l)
{
    return l->max_ttl_us;
}

bool lease_name_valid(const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    if (n < 1 || n > LEASE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

_Static_assert(LEASE_TOKEN_LEN == GW_TOKEN_LEN, "the gateway's tokens are its clients'");

bool lease_token_valid(const char *token)
{
    return gw_token_valid(token);
}

static bool s_held(const lease_t *l, int64_t now)
{
    return l->holder[0] && now < l->expires;
}

/* Compares in time independent of where the first difference is. */
static bool s_token_is(const lease_t *l, const char *token)
{
    if (!token || strlen(token) != LEASE_TOKEN_LEN)
        return false;
    unsigned char diff = 0;
    for (int i = 0; i < LEASE_TOKEN_LEN; i++)
        diff |= (unsigned char)(l->token[i] ^ token[i]);
    return diff == 0;
}

lease_rc_t lease_check(const lease_t *l, const char *client, const char *token, int64_t now)
{
    if (!s_held(l, now))
        return LEASE_NOT_HOLDER;
    if (!client || strcmp(l->holder, client) != 0)
        return LEASE_HELD;
    return s_token_is(l, token) ? LEASE_OK : LEASE_BAD_TOKEN;
}

lease_rc_t lease_take(lease_t *l, const char *client, const char *token, const char *fresh,
                      int64_t ttl_us, int64_t now)
{
    if (!lease_name_valid(client))
        return LEASE_BAD_NAME;
    if (ttl_us <= 0 || ttl_us > l->max_ttl_us)
        return LEASE_BAD_TTL;
    lease_rc_t rc = lease_check(l, client, token, now);
    if (rc == LEASE_HELD || rc == LEASE_BAD_TOKEN)
        return rc;
    if (rc == LEASE_NOT_HOLDER) {
        if (!lease_token_valid(fresh))
            return LEASE_BAD_TOKEN;
        strcpy(l->holder, client);
        strcpy(l->token, fresh);
    }
    l->expires = now + ttl_us;
    l->ttl_us = ttl_us;
    return LEASE_OK;
}

lease_rc_t lease_renew(lease_t *l, const char *client, const char *token, int64_t ttl_us,
                       int64_t now)
{
    if (!lease_name_valid(client))
        return LEASE_BAD_NAME;
    if (ttl_us <= 0 || ttl_us > l->max_ttl_us)
        return LEASE_BAD_TTL;
    lease_rc_t rc = lease_check(l, client, token, now);
    if (rc != LEASE_OK)
        return rc;
    l->expires = now + ttl_us;
    l->ttl_us = ttl_us;
    return LEASE_OK;
}

lease_rc_t lease_release(lease_t *l, const char *client, const char *token, int64_t now)
{
    if (!lease_name_valid(client))
        return LEASE_BAD_NAME;
    lease_rc_t rc = lease_check(l, client, token, now);
    if (rc != LEASE_OK)
        return rc;
    l->holder[0] = '\0';
    memset(l->token, 0, sizeof l->token);
    return LEASE_OK;
}

lease_owner_t lease_owner(const lease_t *l, const char *client, int64_t now)
{
    if (!s_held(l, now))
        return LEASE_FREE;
    if (client && strcmp(l->holder, client) == 0)
        return LEASE_MINE;
    return LEASE_OTHER;
}

const char *lease_holder(const lease_t *l, int64_t now)
{
    return s_held(l, now) ? l->holder : NULL;
}

const char *lease_token(const lease_t *l, int64_t now)
{
    return s_held(l, now) ? l->token : NULL;
}

int64_t lease_remaining(const lease_t *l, int64_t now)
{
    return s_held(l, now) ? l->expires - now : 0;
}

bool lease_check_lapse(lease_t *l, int64_t now, char *lapsed_holder)
{
    if (!l->holder[0] || now < l->expires)
        return false;
    if (lapsed_holder)
        strcpy(lapsed_holder, l->holder);
    l->holder[0] = '\0';
    memset(l->token, 0, sizeof l->token);
    return true;
}

int64_t lease_deadline(const lease_t *l)
{
    return l->holder[0] ? l->expires : INT64_MAX;
}

int64_t lease_ttl(const lease_t *l)
{
    return l->ttl_us;
}

/* ---- one lease per device ---- */

lease_table_t *lease_table_new(int64_t max_ttl_us)
{
    if (max_ttl_us <= 0)
        return NULL;
    lease_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    lease_table_set_max_ttl(t, max_ttl_us);
    return t;
}

void lease_table_destroy(lease_table_t **p)
{
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

void lease_table_set_max_ttl(lease_table_t *t, int64_t max_ttl_us)
{
    if (max_ttl_us <= 0)
        return;
    t->max_ttl_us = max_ttl_us;
    for (int i = 0; i < LEASE_TABLE_SIZE; i++)
        t->dev[i].max_ttl_us = max_ttl_us;
}

int64_t lease_table_max_ttl(const lease_table_t *t)
{
    return t->max_ttl_us;
}

lease_t *lease_table_get(lease_table_t *t, int dev)
{
    if (dev < 0 || dev >= LEASE_TABLE_SIZE)
        return NULL;
    return &t->dev[dev];
}

/* Does client hold a lease of the table under token? */
static bool s_holds_with(const lease_table_t *t, const char *client, const char *token, int64_t now)
{
    for (int i = 0; i < LEASE_TABLE_SIZE; i++)
        if (lease_check(&t->dev[i], client, token, now) == LEASE_OK)
            return true;
    return false;
}

lease_rc_t lease_table_take_all(lease_table_t *t, const lease_devs_t *devs, const char *client,
                                const char *token, const char *fresh, int64_t ttl_us, int64_t now,
                                int *blocked_dev, char *granted)
{
    if (!lease_name_valid(client))
        return LEASE_BAD_NAME;
    if (ttl_us <= 0 || ttl_us > t->max_ttl_us)
        return LEASE_BAD_TTL;
    /* all or none: check every device before taking any */
    for (int i = 0; i < LEASE_TABLE_SIZE; i++) {
        if (!lease_devs_has(devs, i))
            continue;
        lease_rc_t rc = lease_check(&t->dev[i], client, token, now);
        if (rc == LEASE_HELD || rc == LEASE_BAD_TOKEN) {
            if (blocked_dev)
                *blocked_dev = i;
            return rc;
        }
    }
    const char *give = s_holds_with(t, client, token, now) ? token : fresh;
    if (!lease_token_valid(give))
        return LEASE_BAD_TOKEN;
    for (int i = 0; i < LEASE_TABLE_SIZE; i++)
        if (lease_devs_has(devs, i))
            lease_take(&t->dev[i], client, give, give, ttl_us, now);
    if (granted)
        strcpy(granted, give);
    return LEASE_OK;
}

/* The client's leases under token, or why there are none (see lease.h). */
static lease_rc_t s_mine(lease_table_t *t, const char *client, const char *token, int64_t now,
                         lease_devs_t *mine, int *blocked_dev)
{
    memset(mine, 0, sizeof *mine);
    int other = -1, bad_token = -1;
    bool any = false;
    for (int i = 0; i < LEASE_TABLE_SIZE; i++) {
        lease_rc_t rc = lease_check(&t->dev[i], client, token, now);
        if (rc == LEASE_OK) {
            lease_devs_add(mine, i);
            any = true;
        } else if (rc == LEASE_BAD_TOKEN && bad_token < 0)
            bad_token = i;
        else if (rc == LEASE_HELD && other < 0)
            other = i;
    }
    if (any)
        return LEASE_OK;
    if (bad_token >= 0 || other >= 0) {
        if (blocked_dev)
            *blocked_dev = bad_token >= 0 ? bad_token : other;
        return bad_token >= 0 ? LEASE_BAD_TOKEN : LEASE_HELD;
    }
    return LEASE_NOT_HOLDER;
}

lease_rc_t lease_table_renew_all(lease_table_t *t, const char *client, const char *token,
                                 int64_t ttl_us, int64_t now, lease_devs_t *done_devs,
                                 int *blocked_dev)
{
    lease_devs_t mine;
    if (done_devs)
        memset(done_devs, 0, sizeof *done_devs);
    if (!lease_name_valid(client))
        return LEASE_BAD_NAME;
    if (ttl_us <= 0 || ttl_us > t->max_ttl_us)
        return LEASE_BAD_TTL;
    lease_rc_t rc = s_mine(t, client, token, now, &mine, blocked_dev);
    if (rc != LEASE_OK)
        return rc;
    for (int i = 0; i < LEASE_TABLE_SIZE; i++)
        if (lease_devs_has(&mine, i))
            lease_renew(&t->dev[i], client, token, ttl_us, now);
    if (done_devs)
        *done_devs = mine;
    return LEASE_OK;
}

lease_rc_t lease_table_release_all(lease_table_t *t, const char *client, const char *token,
                                   int64_t now, lease_devs_t *done_devs, int *blocked_dev)
{
    lease_devs_t mine;
    if (done_devs)
        memset(done_devs, 0, sizeof *done_devs);
    if (!lease_name_valid(client))
        return LEASE_BAD_NAME;
    lease_rc_t rc = s_mine(t, client, token, now, &mine, blocked_dev);
    if (rc != LEASE_OK)
        return rc;
    for (int i = 0; i < LEASE_TABLE_SIZE; i++)
        if (lease_devs_has(&mine, i))
            lease_release(&t->dev[i], client, token, now);
    if (done_devs)
        *done_devs = mine;
    return LEASE_OK;
}

bool lease_table_check_lapse(lease_table_t *t, int64_t now, int *dev, char *lapsed_holder)
{
    for (int i = 0; i < LEASE_TABLE_SIZE; i++)
        if (lease_check_lapse(&t->dev[i], now, lapsed_holder)) {
            if (dev)
                *dev = i;
            return true;
        }
    return false;
}

int64_t lease_table_deadline(const lease_table_t *t)
{
    int64_t dl = INT64_MAX;
    for (int i = 0; i < LEASE_TABLE_SIZE; i++) {
        int64_t d = lease_deadline(&t->dev[i]);
        if (d < dl)
            dl = d;
    }
    return dl;
}
