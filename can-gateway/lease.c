/*
 * lease: the control lease (see lease.h).
 */
#include "lease.h"

#include <stdlib.h>
#include <string.h>

struct lease {
    char holder[LEASE_NAME_MAX + 1]; /* "" = free */
    int64_t expires;                 /* monotonic µs */
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

static bool s_held(const lease_t *l, int64_t now)
{
    return l->holder[0] && now < l->expires;
}

lease_rc_t lease_take(lease_t *l, const char *client, int64_t ttl_us, int64_t now)
{
    if (!lease_name_valid(client))
        return LEASE_BAD_NAME;
    if (ttl_us <= 0 || ttl_us > l->max_ttl_us)
        return LEASE_BAD_TTL;
    if (s_held(l, now) && strcmp(l->holder, client) != 0)
        return LEASE_HELD;
    strcpy(l->holder, client);
    l->expires = now + ttl_us;
    return LEASE_OK;
}

lease_rc_t lease_renew(lease_t *l, const char *client, int64_t ttl_us, int64_t now)
{
    if (!lease_name_valid(client))
        return LEASE_BAD_NAME;
    if (ttl_us <= 0 || ttl_us > l->max_ttl_us)
        return LEASE_BAD_TTL;
    if (!s_held(l, now))
        return LEASE_NOT_HOLDER;
    if (strcmp(l->holder, client) != 0)
        return LEASE_HELD;
    l->expires = now + ttl_us;
    return LEASE_OK;
}

lease_rc_t lease_release(lease_t *l, const char *client, int64_t now)
{
    if (!lease_name_valid(client))
        return LEASE_BAD_NAME;
    if (!s_held(l, now))
        return LEASE_NOT_HOLDER;
    if (strcmp(l->holder, client) != 0)
        return LEASE_HELD;
    l->holder[0] = '\0';
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
    return true;
}

int64_t lease_deadline(const lease_t *l)
{
    return l->holder[0] ? l->expires : INT64_MAX;
}
