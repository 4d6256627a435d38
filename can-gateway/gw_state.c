/*
 * gw_state: persisted EEPROM write counters and the control lease (see gw_state.h).
 */
#include "gw_state.h"

#include "gw_device.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "gw_client.h"
#include "numconv.h"

#define STATE_MAX_BYTES (256 * 1024)

static int s_write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Replaces path with text: temporary file, fsync, rename, fsync of the directory. */
static int s_write_atomic(const char *path, const char *text, char *err, size_t errlen)
{
    int fd = -1;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        snprintf(err, errlen, "state path too long");
        return -1;
    }
    /* the lease file holds the holders' tokens: the gateway's user only */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0600) < 0) { /* a temporary file left with other rights */
        snprintf(err, errlen, "cannot restrict %s to its owner: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (s_write_all(fd, text, strlen(text)) < 0 || s_write_all(fd, "\n", 1) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    /* make the rename itself durable */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int gw_state_save(const char *path, eeprom_policy_t *const *eep, int64_t now_us, int64_t wall_ms,
                  char *err, size_t errlen)
{
    int rc = -1;
    char *text = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    cJSON_AddNumberToObject(root, "v", 1);
    cJSON *devs = cJSON_AddObjectToObject(root, "devices");
    for (int a = 0; a < GW_LEASE_DEVS; a++) {
        if (!eep[a])
            continue;
        char key[8];
        snprintf(key, sizeof key, "%d", a);
        cJSON *d = cJSON_AddObjectToObject(devs, key);
        cJSON *w = cJSON_AddObjectToObject(d, "writes");
        for (int i = 0; i < EEPROM_NREGS; i++)
            if (gw_dev_cmd(a, eeprom_reg_cmd(i))) /* the registers of the device's family */
                cJSON_AddNumberToObject(w, eeprom_reg_name(i),
                                        (double)eeprom_policy_count(eep[a], i));
        int64_t last;
        if (eeprom_policy_last_write(eep[a], &last))
            cJSON_AddNumberToObject(d, "last_write_ms", (double)(wall_ms - (now_us - last) / 1000));
        /* the bucket's level with the wall time it holds for, so a restart refills it by the
         * time that really passed, not to full */
        if (eeprom_policy_writes_per_day(eep[a]) > 0) {
            cJSON_AddNumberToObject(d, "tokens", eeprom_policy_tokens(eep[a], now_us));
            cJSON_AddNumberToObject(d, "tokens_ms", (double)wall_ms);
        }
    }
    text = cJSON_Print(root);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    rc = s_write_atomic(path, text, err, errlen);
cleanup:
    free(text);
    cJSON_Delete(root);
    return rc;
}

int gw_state_load(const char *path, eeprom_policy_t **eep, int64_t interval_us, int64_t now_us,
                  int64_t wall_ms, char *err, size_t errlen)
{
    int rc = -1, loaded = 0;
    char *buf = NULL;
    cJSON *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(STATE_MAX_BYTES + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    size_t n = fread(buf, 1, STATE_MAX_BYTES + 1, f);
    if (n > STATE_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, STATE_MAX_BYTES);
        goto cleanup;
    }
    buf[n] = '\0';
    root = cJSON_Parse(buf);
    cJSON *devs = root ? cJSON_GetObjectItemCaseSensitive(root, "devices") : NULL;
    if (!cJSON_IsObject(devs)) {
        snprintf(err, errlen, "%s: not a state file (expected {\"v\":1,\"devices\":{...}})", path);
        goto cleanup;
    }
    cJSON *d;
    cJSON_ArrayForEach(d, devs)
    {
        char *end = NULL;
        long a = strtol(d->string, &end, 10);
        if (!end || *end || a < 0 || a >= GW_LEASE_DEVS || !cJSON_IsObject(d)) {
            snprintf(err, errlen, "%s: bad device entry '%s' (allowed: 0-%d)", path, d->string,
                     GW_LEASE_DEVS - 1);
            goto cleanup;
        }
        if (!eep[a] && !(eep[a] = eeprom_policy_new(interval_us))) {
            snprintf(err, errlen, "out of memory");
            goto cleanup;
        }
        cJSON *w = cJSON_GetObjectItemCaseSensitive(d, "writes");
        for (int i = 0; i < EEPROM_NREGS && cJSON_IsObject(w); i++) {
            cJSON *c = cJSON_GetObjectItemCaseSensitive(w, eeprom_reg_name(i));
            int64_t count;
            if (cJSON_IsNumber(c) && numconv_trunc(c->valuedouble, 0, INT64_MAX, &count) == 0)
                eeprom_policy_set_count(eep[a], i, (uint64_t)count);
        }
        cJSON *lw = cJSON_GetObjectItemCaseSensitive(d, "last_write_ms");
        int64_t lw_ms;
        /* a wall time in ms within the years 1970 to 5138 */
        if (cJSON_IsNumber(lw) && numconv_trunc(lw->valuedouble, 0, 100000000000000, &lw_ms) == 0) {
            int64_t ago_ms = wall_ms - lw_ms;
            if (ago_ms < 0) /* clock went back: assume the write was just now */
                ago_ms = 0;
            eeprom_policy_set_last_write(eep[a], now_us - ago_ms * 1000);
        }
        cJSON *tk = cJSON_GetObjectItemCaseSensitive(d, "tokens");
        cJSON *tm = cJSON_GetObjectItemCaseSensitive(d, "tokens_ms");
        if (tk) {
            if (!cJSON_IsNumber(tk) || !isfinite(tk->valuedouble) ||
                fabs(tk->valuedouble) > EEPROM_TOKENS_FLOOR || !cJSON_IsNumber(tm) ||
                !(tm->valuedouble >= 0 && tm->valuedouble <= 1e14)) {
                snprintf(err, errlen,
                         "%s: device %ld: bad tokens/tokens_ms (allowed: a number of tokens "
                         "within +-%.0f and a wall time in ms)",
                         path, a, EEPROM_TOKENS_FLOOR);
                goto cleanup;
            }
            /* Refill for the time since the save by the wall clock. A clock that went back
             * refills nothing; a jump forward refills at most to the bucket's depth, which is
             * also all a long real downtime can give. */
            int64_t tm_ms = 0;
            numconv_trunc(tm->valuedouble, 0, 100000000000000, &tm_ms); /* checked above */
            int64_t ago_ms = wall_ms - tm_ms;
            if (ago_ms < 0)
                ago_ms = 0;
            eeprom_policy_set_tokens(eep[a], tk->valuedouble, now_us - ago_ms * 1000);
        }
        loaded++;
    }
    rc = loaded;
cleanup:
    fclose(f);
    free(buf);
    cJSON_Delete(root);
    return rc;
}

int gw_state_save_leases(const char *path, const gw_lease_rec_t *rec, char *err, size_t errlen)
{
    int rc = -1;
    char *text = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "leases") : NULL;
    if (!arr) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    cJSON_AddNumberToObject(root, "v", 2);
    for (int a = 0; a < GW_LEASE_DEVS; a++) {
        if (!rec[a].holder[0])
            continue;
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            snprintf(err, errlen, "out of memory");
            goto cleanup;
        }
        cJSON_AddItemToArray(arr, o);
        cJSON_AddNumberToObject(o, "dev", a);
        cJSON_AddStringToObject(o, "holder", rec[a].holder);
        if (rec[a].token[0])
            cJSON_AddStringToObject(o, "token", rec[a].token);
        cJSON_AddNumberToObject(o, "ttl_ms", (double)(rec[a].ttl_us / 1000));
    }
    text = cJSON_PrintUnformatted(root);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    rc = s_write_atomic(path, text, err, errlen);
cleanup:
    free(text);
    cJSON_Delete(root);
    return rc;
}

/* One lease entry: holder 1-32 characters, token absent or 32 hex digits, ttl_ms >= 1. */
static bool s_lease_entry(const cJSON *h, const cJSON *tk, const cJSON *t, gw_lease_rec_t *r)
{
    if (!cJSON_IsString(h) || !h->valuestring[0] || strlen(h->valuestring) >= sizeof r->holder ||
        !cJSON_IsNumber(t) || !(t->valuedouble >= 1) || t->valuedouble > 1e9)
        return false;
    if (tk && !(cJSON_IsString(tk) && gw_token_valid(tk->valuestring)))
        return false;
    snprintf(r->holder, sizeof r->holder, "%s", h->valuestring);
    snprintf(r->token, sizeof r->token, "%s", tk ? tk->valuestring : "");
    int64_t ttl_ms = 1;
    numconv_trunc(t->valuedouble, 1, 1000000000, &ttl_ms); /* checked above */
    r->ttl_us = ttl_ms * 1000;
    return true;
}

int gw_state_load_leases(const char *path, gw_lease_rec_t *rec, bool *every, char *err,
                         size_t errlen)
{
    char buf[16384];
    memset(rec, 0, sizeof *rec * GW_LEASE_DEVS);
    *every = false;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf);
    int rc = -1;
    const cJSON *arr =
        cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "leases") : NULL;
    const cJSON *h = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "holder") : NULL;
    if (cJSON_IsArray(arr)) {
        int held = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, arr)
        {
            const cJSON *dv = cJSON_GetObjectItemCaseSensitive(o, "dev");
            if (!cJSON_IsNumber(dv) || dv->valuedouble != floor(dv->valuedouble) ||
                dv->valuedouble < 0 || dv->valuedouble >= GW_LEASE_DEVS ||
                rec[dv->valueint].holder[0] ||
                !s_lease_entry(cJSON_GetObjectItemCaseSensitive(o, "holder"),
                               cJSON_GetObjectItemCaseSensitive(o, "token"),
                               cJSON_GetObjectItemCaseSensitive(o, "ttl_ms"), &rec[dv->valueint])) {
                memset(rec, 0, sizeof *rec * GW_LEASE_DEVS);
                snprintf(err, errlen,
                         "%s: bad lease entry (expected {\"dev\":0-63,\"holder\":NAME,"
                         "\"token\":32 hex digits,\"ttl_ms\":>=1}, each device once)",
                         path);
                goto cleanup;
            }
            held++;
        }
        rc = held;
    } else if (!h) {
        snprintf(err, errlen,
                 "%s: not a lease file (expected {\"v\":2,\"leases\":[...]} or "
                 "{\"v\":1,\"holder\":...})",
                 path);
    } else if (cJSON_IsNull(h)) {
        rc = 0; /* earlier single-lease file, free */
    } else if (!s_lease_entry(h, NULL, cJSON_GetObjectItemCaseSensitive(root, "ttl_ms"), &rec[0])) {
        snprintf(err, errlen, "%s: bad holder or ttl_ms", path);
    } else {
        *every = true; /* earlier single-lease file: the lease of every device */
        rc = 1;
    }
cleanup:
    cJSON_Delete(root);
    return rc;
}
