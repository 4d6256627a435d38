/*
 * gw_persist: what the gateway keeps in StateDir across restarts (the files are gw_state's):
 * the EEPROM write counters loaded at start and saved after each counted write (a failed save
 * retried and shown in health), the lease holders saved when they change and restored at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw_internal.h"
#include "gw_state.h"
#include "lease.h"
#include "log.h"

/* Saves the counters; a failure keeps them in memory, is reported in `gw` health at once
 * and retried later. */
void gw_save_state(gateway_t *gw, int64_t now)
{
    char err[256];
    if (!gw->state_path[0])
        return;
    if (gw_state_save(gw->state_path, gw->eep, now, gw_wall(), err, sizeof err) < 0) {
        bool news = strcmp(err, gw->state_error) != 0;
        if (news)
            log_error("EEPROM counters not saved (kept in memory, retrying): %s", err);
        snprintf(gw->state_error, sizeof gw->state_error, "%s", err);
        gw->state_failures++;
        gw->state_dirty = true;
        gw->state_retry_at = now + STATE_RETRY_US;
        if (news)
            gw_publish_health(gw, now);
        return;
    }
    gw->state_dirty = false;
    if (gw->state_error[0]) {
        log_info("EEPROM counters saved again to %s", gw->state_path);
        gw->state_error[0] = '\0';
        gw_publish_health(gw, now);
    }
}

_Static_assert(sizeof(((gw_lease_rec_t *)0)->holder) == LEASE_NAME_MAX + 1,
               "a saved holder has the size of a lease name");
_Static_assert(sizeof(((gw_lease_rec_t *)0)->token) == LEASE_TOKEN_LEN + 1,
               "a saved token has the size of a lease token");

int gw_lease_token_new(char *out)
{
    uint8_t raw[LEASE_TOKEN_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* Keeps the lease file in step with the holders (written when a device's holder changes
 * only, so renewals cost no disk writes). A restarted gateway restores each holder with a
 * full TTL: the holder carries on, or the lease lapses and the safe state follows. */
void gw_lease_persist(gateway_t *gw, int64_t now)
{
    if (!gw->lease_path[0])
        return;
    gw_lease_rec_t rec[GW_LEASE_DEVS];
    bool changed = false;
    for (int a = 0; a < GW_DEV_MAX; a++) {
        const lease_t *l = gw_lease(gw, a);
        const char *h = lease_holder(l, now);
        const char *tk = lease_token(l, now);
        snprintf(rec[a].holder, sizeof rec[a].holder, "%s", h ? h : "");
        snprintf(rec[a].token, sizeof rec[a].token, "%s", tk ? tk : "");
        rec[a].ttl_us = h ? lease_ttl(l) : 0;
        if (strcmp(rec[a].holder, gw->lease_saved[a]) != 0 ||
            strcmp(rec[a].token, gw->lease_saved_token[a]) != 0)
            changed = true;
    }
    if (!changed)
        return;
    char err[256];
    if (gw_state_save_leases(gw->lease_path, rec, err, sizeof err) < 0) {
        log_warn("lease not saved (a restart forgets it): %s", err);
        return;
    }
    for (int a = 0; a < GW_DEV_MAX; a++) {
        memcpy(gw->lease_saved[a], rec[a].holder, sizeof gw->lease_saved[a]);
        memcpy(gw->lease_saved_token[a], rec[a].token, sizeof gw->lease_saved_token[a]);
    }
}

/* The EEPROM counters and the leases are saved in StateDir: one that cannot be written is
 * an error at start, not a surprise at the first persisted write. */
static int s_check_state_dir(const char *dir, char *err, size_t errlen)
{
    char probe[512];
    snprintf(probe, sizeof probe, "%s/.write-test-%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen,
                 "[GATEWAY] StateDir '%s' cannot be written (%s): the EEPROM write counters "
                 "and the leases are kept there",
                 dir, strerror(errno));
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

/* Without StateDir nothing is kept. With it: the directory made and checked, the counters
 * loaded (a damaged file is an error: counters must not restart from zero). */
int gw_persist_load(gateway_t *gw, int64_t now, char *err, size_t errlen)
{
    if (!gw->set.state_dir[0])
        return 0;
    mkdir(gw->set.state_dir, 0755);
    if (s_check_state_dir(gw->set.state_dir, err, errlen) < 0)
        return -1;
    snprintf(gw->state_path, sizeof gw->state_path, "%s/%s", gw->set.state_dir, GW_STATE_FILE);
    char lerr[256];
    int n = gw_state_load(gw->state_path, gw->eep, (int64_t)gw->set.eep_interval_s * 1000000, now,
                          gw_wall(), lerr, sizeof lerr);
    if (n < 0) {
        /* a damaged file must not silently reset the counters to 0 */
        snprintf(err, errlen, "EEPROM state: %s (fix or remove the file)", lerr);
        return -1;
    }
    if (n > 0)
        log_info("EEPROM write counters of %d device(s) loaded from %s", n, gw->state_path);
    for (int a = 0; a < GW_DEV_MAX; a++)
        if (gw->eep[a])
            gw_eep_configure(gw, gw->eep[a], now);
    return 0;
}

/* Restores the leases saved before a restart, each with a full TTL and its token. The
 * single-lease file of earlier versions is the lease of every configured device; a lease
 * saved without a token (earlier versions) gets a new one nobody knows: its holder is refused
 * (bad_token), the lease lapses into the safe state and the holder takes it again. */
void gw_lease_restore(gateway_t *gw, int64_t now)
{
    snprintf(gw->lease_path, sizeof gw->lease_path, "%s/%s", gw->set.state_dir, GW_LEASE_FILE);
    gw_lease_rec_t rec[GW_LEASE_DEVS];
    bool every = false;
    char lerr[256];
    int n = gw_state_load_leases(gw->lease_path, rec, &every, lerr, sizeof lerr);
    if (n < 0)
        log_warn("lease file ignored: %s", lerr);
    if (n <= 0)
        return;
    if (every)
        for (int a = 1; a < GW_DEV_MAX; a++)
            rec[a] = gw->dev[a] ? rec[0] : (gw_lease_rec_t){{0}, {0}, 0};
    if (every && !gw->dev[0])
        rec[0] = (gw_lease_rec_t){{0}, {0}, 0};
    int64_t max = lease_table_max_ttl(gw->leases);
    for (int a = 0; a < GW_DEV_MAX; a++) {
        if (!rec[a].holder[0])
            continue;
        int64_t ttl = rec[a].ttl_us > max ? max : rec[a].ttl_us;
        char fresh[LEASE_TOKEN_LEN + 1] = "";
        if (!rec[a].token[0]) {
            if (gw_lease_token_new(fresh) < 0)
                continue;
            log_warn("control lease of '%s' on device %d was saved without a token (an earlier "
                     "version): it lapses unless taken again",
                     rec[a].holder, a);
        }
        if (lease_take(gw_lease(gw, a), rec[a].holder, NULL, rec[a].token[0] ? rec[a].token : fresh,
                       ttl, now) != LEASE_OK)
            continue;
        memcpy(gw->lease_saved[a], rec[a].holder, sizeof gw->lease_saved[a]);
        snprintf(gw->lease_saved_token[a], sizeof gw->lease_saved_token[a], "%s", rec[a].token);
        log_info("control lease of '%s' on device %d restored for %.1f s: it renews or the "
                 "safe state follows",
                 rec[a].holder, a, ttl / 1e6);
    }
    /* an earlier single-lease file is rewritten in the per-device form */
    if (every)
        for (int a = 0; a < GW_DEV_MAX; a++)
            gw->lease_saved[a][0] = '\0';
    gw_lease_persist(gw, now);
}
