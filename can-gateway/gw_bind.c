/*
 * The gateway's sockets: see gw_bind.h.
 */
#include "gw_bind.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int s_apply_curve(zsock_t *sock, const char *keyfile, char *err, size_t errlen)
{
    zcert_t *cert = zcert_load(keyfile);
    if (!cert) {
        snprintf(err, errlen, "[GATEWAY] CurveSecretKeyFile: cannot load zcert file '%s'", keyfile);
        return -1;
    }
    zcert_apply(cert, sock);
    zsock_set_curve_server(sock, 1);
    zcert_destroy(&cert);
    return 0;
}

zsock_t *gw_bind(int type, const char *ep, const char *curve, char *err, size_t errlen)
{
    zsock_t *s = zsock_new(type);
    if (!s) {
        snprintf(err, errlen, "cannot create a ZeroMQ socket");
        return NULL;
    }
    zsock_set_linger(s, 200);
    if (type == ZMQ_ROUTER)
        zsock_set_maxmsgsize(s, 1 << 20); /* larger frames close the connection */
    if (curve[0] && s_apply_curve(s, curve, err, errlen) < 0) {
        zsock_destroy(&s);
        return NULL;
    }
    if (strncmp(ep, "ipc://", 6) == 0) {
        /* create the socket's directory (e.g. /run/bic2mqtt) when it is missing */
        char dir[256];
        snprintf(dir, sizeof dir, "%s", ep + 6);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            mkdir(dir, 0755);
        }
    }
    if (zsock_bind(s, "%s", ep) < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", ep, zmq_strerror(zmq_errno()));
        zsock_destroy(&s);
        return NULL;
    }
    return s;
}
