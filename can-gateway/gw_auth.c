/*
 * gw_auth: the CURVE allow-list of the gateway (a ZAP handler). See gw_auth.h.
 */
#include "gw_auth.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define KEYS_MAX 256
#define KEY_TXT 41 /* Z85 of 32 bytes, and the terminator */

struct gw_auth_t {
    zsock_t *zap;
    char (*keys)[KEY_TXT]; /* full access first, then read-only */
    size_t n_rw, n_ro;
};

/* Appends the public key of every zcert public file in dir (not the `_secret` files) to
 * self->keys, counting them in n_ro (gw_auth_new moves the first list's count to n_rw). The
 * number added, or -1 with the reason in err. */
static int s_load_dir(gw_auth_t *self, const char *key, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "[GATEWAY] %s: cannot read the directory '%s': %s", key, dir,
                 strerror(errno));
        return -1;
    }
    int added = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || (n > 7 && strcmp(e->d_name + n - 7, "_secret") == 0))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        zcert_t *cert = zcert_load(path);
        if (!cert)
            continue; /* not a zcert file */
        if (self->n_rw + self->n_ro >= KEYS_MAX) {
            zcert_destroy(&cert);
            closedir(d);
            snprintf(err, errlen, "[GATEWAY] %s: more than %d keys", key, KEYS_MAX);
            return -1;
        }
        snprintf(self->keys[self->n_rw + self->n_ro], KEY_TXT, "%s", zcert_public_txt(cert));
        zcert_destroy(&cert);
        added++;
        self->n_ro++;
    }
    closedir(d);
    if (added == 0) {
        snprintf(err, errlen,
                 "[GATEWAY] %s: no zcert public file in '%s' (allowed: files as zcert_save or "
                 "zmq.auth.create_certificates write them)",
                 key, dir);
        return -1;
    }
    return added;
}

int gw_auth_check_dir(const char *key, const char *dir, char *err, size_t errlen)
{
    gw_auth_t probe = {.keys = calloc(KEYS_MAX, KEY_TXT)};
    if (!probe.keys) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = s_load_dir(&probe, key, dir, err, errlen);
    free(probe.keys);
    return rc < 0 ? -1 : 0;
}

gw_auth_t *gw_auth_new(const char *rw_dir, const char *ro_dir, char *err, size_t errlen)
{
    gw_auth_t *self = calloc(1, sizeof *self);
    if (!self || !(self->keys = calloc(KEYS_MAX, KEY_TXT))) {
        free(self);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int n = s_load_dir(self, "CurveClientsDir", rw_dir, err, errlen);
    if (n < 0)
        goto fail;
    self->n_rw = self->n_ro;
    self->n_ro = 0;
    if (ro_dir && *ro_dir) {
        n = s_load_dir(self, "CurveReadOnlyClientsDir", ro_dir, err, errlen);
        if (n < 0)
            goto fail;
    }
    self->zap = zsock_new(ZMQ_REP);
    if (!self->zap || zsock_bind(self->zap, ZAP_ENDPOINT) != 0) {
        snprintf(err, errlen, "cannot bind the CURVE authentication handler (%s)",
                 zmq_strerror(zmq_errno()));
        goto fail;
    }
    return self;
fail:
    gw_auth_destroy(&self);
    return NULL;
}

void gw_auth_destroy(gw_auth_t **p)
{
    if (!p || !*p)
        return;
    gw_auth_t *self = *p;
    zsock_destroy(&self->zap);
    free(self->keys);
    free(self);
    *p = NULL;
}

zsock_t *gw_auth_sock(gw_auth_t *self)
{
    return self->zap;
}

size_t gw_auth_count(const gw_auth_t *self, bool read_only)
{
    return read_only ? self->n_ro : self->n_rw;
}

/* 0: not allowed, 1: full access, 2: read-only. */
static int s_lookup(const gw_auth_t *self, const char *key)
{
    for (size_t i = 0; i < self->n_rw + self->n_ro; i++)
        if (strcmp(self->keys[i], key) == 0)
            return i < self->n_rw ? 1 : 2;
    return 0;
}

int gw_auth_handle(gw_auth_t *self, char *why, size_t whylen)
{
    zmsg_t *req = zmsg_recv_nowait(self->zap);
    if (!req)
        return -1;
    /* version, request id, domain, address, identity, mechanism, credentials */
    char *version = zmsg_popstr(req);
    char *request_id = zmsg_popstr(req);
    char *domain = zmsg_popstr(req);
    char *address = zmsg_popstr(req);
    char *identity = zmsg_popstr(req);
    char *mechanism = zmsg_popstr(req);
    zframe_t *cred = zmsg_pop(req);
    char key[KEY_TXT] = "";
    int access = 0;
    if (mechanism && strcmp(mechanism, "CURVE") == 0 && cred && zframe_size(cred) == 32) {
        zmq_z85_encode(key, zframe_data(cred), 32);
        access = s_lookup(self, key);
    }
    char user[KEY_TXT + 3] = "";
    if (access)
        snprintf(user, sizeof user, "%s:%s", access == 1 ? "rw" : "ro", key);
    zstr_sendm(self->zap, version ? version : "1.0");
    zstr_sendm(self->zap, request_id ? request_id : "");
    zstr_sendm(self->zap, access ? "200" : "400");
    zstr_sendm(self->zap, access ? "OK" : "key not allowed");
    zstr_sendm(self->zap, user);
    zstr_send(self->zap, "");
    if (!access)
        snprintf(why, whylen, "client key %s from %s (%s)", key[0] ? key : "(none)",
                 address ? address : "?", mechanism ? mechanism : "?");
    free(version);
    free(request_id);
    free(domain);
    free(address);
    free(identity);
    free(mechanism);
    zframe_destroy(&cred);
    zmsg_destroy(&req);
    return access ? 0 : 1;
}

bool gw_auth_read_only(zframe_t *frame)
{
    const char *user = frame ? zframe_meta(frame, "User-Id") : NULL;
    return user && strncmp(user, "ro:", 3) == 0;
}
