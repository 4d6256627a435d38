/*  can_transport.c - the transport front end: spec parsing, receive filters, dispatch to the
    slcan and SocketCAN backends, and the `ip link` helper for SocketCAN interfaces.
*/
#include "can_transport_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_HANDSHAKE_MS 1000
#define BIC_REPLY_BASE 0x000C0200u

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void can_transport_set_down(can_transport_t *t, const char *fmt, ...)
{
    t->state = CAN_TRANSPORT_DOWN;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->last_error, sizeof t->last_error, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------- */
/* Spec                                                                                   */

static const uint32_t s_bauds[] = {9600,    19200,   38400,   57600,   115200,  230400,
                                   460800,  500000,  576000,  921600,  1000000, 1152000,
                                   1500000, 2000000, 2500000, 3000000, 3500000, 4000000};

static bool s_baud_ok(uint32_t b)
{
    for (size_t i = 0; i < sizeof s_bauds / sizeof s_bauds[0]; i++)
        if (s_bauds[i] == b)
            return true;
    return false;
}

bool can_socketcan_iface_valid(const char *iface)
{
    if (!iface)
        return false;
    size_t n = strlen(iface);
    if (n < 1 || n > 15 || strcmp(iface, ".") == 0 || strcmp(iface, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)iface[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-')
            return false;
    }
    return true;
}

int can_transport_parse_spec(const char *spec, can_transport_spec_t *ret, char *err, size_t errlen)
{
    static const char *allowed = "allowed: slcan:PATH[:BAUD] or socketcan:IFACE";
    if (!spec || !ret) {
        s_err(err, errlen, "no CAN transport given (%s)", allowed);
        return -1;
    }
    memset(ret, 0, sizeof *ret);
    const char *colon = strchr(spec, ':');
    if (!colon) {
        s_err(err, errlen, "bad CAN transport '%s': no kind prefix (%s)", spec, allowed);
        return -1;
    }
    size_t klen = (size_t)(colon - spec);
    const char *rest = colon + 1;
    if (klen == 5 && strncmp(spec, "slcan", 5) == 0) {
        strcpy(ret->kind, "slcan");
        /* An optional trailing :BAUD (digits only); the path itself may not be empty. */
        const char *last = strrchr(rest, ':');
        size_t plen = strlen(rest);
        if (last && last[1] && strspn(last + 1, "0123456789") == strlen(last + 1)) {
            plen = (size_t)(last - rest);
            unsigned long b = strtoul(last + 1, NULL, 10);
            if (strlen(last + 1) > 8 || !s_baud_ok((uint32_t)b)) {
                s_err(err, errlen,
                      "bad serial baud rate '%s' in '%s' (allowed: 9600, 19200, 38400, 57600, "
                      "115200, 230400, 460800, 500000, 576000, 921600, 1000000 ... 4000000)",
                      last + 1, spec);
                return -1;
            }
            ret->baud = (uint32_t)b;
        } else if (last && !last[1]) {
            plen = (size_t)(last - rest); /* "slcan:/dev/x:" - tolerate the empty baud */
        }
        if (plen == 0) {
            s_err(err, errlen, "bad CAN transport '%s': missing device path (%s)", spec, allowed);
            return -1;
        }
        if (plen >= sizeof ret->path) {
            s_err(err, errlen, "bad CAN transport: device path longer than %zu characters",
                  sizeof ret->path - 1);
            return -1;
        }
        memcpy(ret->path, rest, plen);
        ret->path[plen] = '\0';
        return 0;
    }
    if (klen == 9 && strncmp(spec, "socketcan", 9) == 0) {
        strcpy(ret->kind, "socketcan");
        if (!can_socketcan_iface_valid(rest)) {
            s_err(err, errlen,
                  "bad SocketCAN interface name '%s' (allowed: 1-15 characters of "
                  "A-Z a-z 0-9 _ . -, e.g. socketcan:can0)",
                  rest);
            return -1;
        }
        snprintf(ret->path, sizeof ret->path, "%s", rest);
        return 0;
    }
    s_err(err, errlen, "unknown CAN transport kind '%.*s' in '%s' (%s)", (int)klen, spec, spec,
          allowed);
    return -1;
}

/* ------------------------------------------------------------------------------------- */
/* Filters                                                                                */

int can_transport_reply_filters(uint32_t base, const uint8_t *addrs, size_t naddrs,
                                can_filter_spec_t *out, size_t max)
{
    if (!out || (naddrs && !addrs) || base > CAN_TRANSPORT_EFF_MASK)
        return -1;
    if (naddrs == 0) {
        if (max < 1)
            return -1;
        /* addresses 0-63 are the low 6 bits */
        out[0].id = (base & ~0x3Fu) | CAN_TRANSPORT_EFF_FLAG;
        out[0].mask =
            CAN_TRANSPORT_EFF_FLAG | CAN_TRANSPORT_RTR_FLAG | (CAN_TRANSPORT_EFF_MASK & ~0x3Fu);
        return 1;
    }
    if (naddrs > max)
        return -1;
    for (size_t i = 0; i < naddrs; i++) {
        if (addrs[i] > 63)
            return -1;
        out[i].id = (base | addrs[i]) | CAN_TRANSPORT_EFF_FLAG;
        out[i].mask = CAN_TRANSPORT_EFF_FLAG | CAN_TRANSPORT_RTR_FLAG | CAN_TRANSPORT_EFF_MASK;
    }
    return (int)naddrs;
}

bool can_transport_filter_match(const can_filter_spec_t *filters, size_t n, const can_frame_t *fr)
{
    if (!fr)
        return false;
    uint32_t fid =
        fr->id | (fr->ext ? CAN_TRANSPORT_EFF_FLAG : 0) | (fr->rtr ? CAN_TRANSPORT_RTR_FLAG : 0);
    for (size_t i = 0; i < n; i++)
        if ((fid & filters[i].mask) == (filters[i].id & filters[i].mask))
            return true;
    return false;
}

/* ------------------------------------------------------------------------------------- */
/* Front end                                                                              */

can_transport_t *can_transport_open(const char *spec, char *err, size_t errlen)
{
    return can_transport_open_opts(spec, NULL, err, errlen);
}

can_transport_t *can_transport_open_opts(const char *spec, const can_transport_opts_t *opts,
                                         char *err, size_t errlen)
{
    can_transport_spec_t ps;
    if (can_transport_parse_spec(spec, &ps, err, errlen) < 0)
        return NULL;
    can_transport_t *t = calloc(1, sizeof *t);
    if (!t) {
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    t->fd = -1;
    snprintf(t->spec, sizeof t->spec, "%s", spec);

    if (opts && opts->filters) {
        if (opts->nfilters > CAN_TRANSPORT_FILTERS_MAX) {
            s_err(err, errlen, "too many receive filters (%zu, at most %d)", opts->nfilters,
                  CAN_TRANSPORT_FILTERS_MAX);
            goto fail;
        }
        if (opts->nfilters == 0) {
            t->filters[0].id = CAN_TRANSPORT_EFF_FLAG;
            t->filters[0].mask = CAN_TRANSPORT_EFF_FLAG | CAN_TRANSPORT_RTR_FLAG;
            t->nfilters = 1;
        } else {
            memcpy(t->filters, opts->filters, opts->nfilters * sizeof t->filters[0]);
            t->nfilters = opts->nfilters;
        }
    } else {
        t->nfilters = (size_t)can_transport_reply_filters(BIC_REPLY_BASE, NULL, 0, t->filters,
                                                          CAN_TRANSPORT_FILTERS_MAX);
    }
    int timeout_ms =
        opts && opts->handshake_timeout_ms > 0 ? opts->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
    int rc = strcmp(ps.kind, "slcan") == 0
                 ? can_slcan_open(t, ps.path, ps.baud, timeout_ms, err, errlen)
                 : can_socketcan_open(t, ps.path, err, errlen);
    if (rc < 0)
        goto fail;
    t->state = CAN_TRANSPORT_UP;
    return t;
fail:
    if (t->ops && t->ops->close)
        t->ops->close(t);
    else if (t->fd >= 0)
        close(t->fd);
    slcan_parser_destroy(&t->parser);
    free(t);
    return NULL;
}

void can_transport_close(can_transport_t **pt)
{
    if (!pt || !*pt)
        return;
    can_transport_t *t = *pt;
    if (t->ops && t->ops->close)
        t->ops->close(t);
    else if (t->fd >= 0)
        close(t->fd);
    slcan_parser_destroy(&t->parser);
    free(t);
    *pt = NULL;
}

int can_transport_fd(const can_transport_t *t)
{
    if (!t || t->state != CAN_TRANSPORT_UP)
        return -1;
    return t->fd;
}

int can_transport_send(can_transport_t *t, const can_frame_t *fr)
{
    if (!t || !fr)
        return -1;
    if (t->state != CAN_TRANSPORT_UP)
        return -1;
    if (fr->dlc > 8 || fr->id > (fr->ext ? CAN_FRAME_EXT_MAX : CAN_FRAME_STD_MAX)) {
        t->stats.errors++;
        snprintf(t->last_error, sizeof t->last_error,
                 "invalid frame: id 0x%X dlc %u (allowed: 29-bit id, dlc 0-8)", (unsigned)fr->id,
                 (unsigned)fr->dlc);
        return -1;
    }
    int rc = t->ops->send(t, fr);
    if (rc == 0)
        t->stats.tx++;
    else
        t->stats.errors++;
    return rc;
}

int can_transport_recv(can_transport_t *t, can_frame_t *out)
{
    if (!t || !out || t->state != CAN_TRANSPORT_UP)
        return -1;
    for (;;) {
        int rc = t->ops->recv(t, out);
        if (rc <= 0)
            return rc;
        /* Same rule for both backends: extended data frames that pass the filter. */
        if (!out->ext || out->rtr || !can_transport_filter_match(t->filters, t->nfilters, out)) {
            t->stats.filtered++;
            continue;
        }
        t->stats.rx++;
        return 1;
    }
}

void can_transport_polled(can_transport_t *t, bool ready)
{
    if (!t)
        return;
    t->poll_driven = true;
    t->ready = ready;
}

can_transport_state_t can_transport_state(const can_transport_t *t)
{
    return t ? t->state : CAN_TRANSPORT_DOWN;
}

const char *can_transport_state_name(can_transport_state_t s)
{
    return s == CAN_TRANSPORT_UP ? "up" : "down";
}

void can_transport_stats(const can_transport_t *t, can_transport_stats_t *ret_stats)
{
    if (!t || !ret_stats)
        return;
    *ret_stats = t->stats;
    if (t->parser) {
        slcan_stats_t ps;
        slcan_parser_stats(t->parser, &ps);
        ret_stats->garbage = ps.garbage;
        ret_stats->overlong = ps.overlong;
    }
}

const char *can_transport_spec(const can_transport_t *t)
{
    return t ? t->spec : "";
}

const char *can_transport_last_error(const can_transport_t *t)
{
    return t ? t->last_error : "";
}

/* ------------------------------------------------------------------------------------- */
/* ip link helper                                                                         */

/* Run `ip` with argv, collect its stdout+stderr (trimmed) into out. Returns the exit status,
   127 if ip could not be started, -1 on a local failure. */
static int s_run_ip(char *const argv[], char *out, size_t outlen)
{
    int pipefd[2];
    if (out && outlen)
        out[0] = '\0';
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, "ip", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return 127;
    }
    size_t used = 0;
    char buf[256];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (out && used + 1 < outlen) {
            size_t k = (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;
            memcpy(out + used, buf, k);
            used += k;
            out[used] = '\0';
        }
    }
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    while (out && used > 0 && (out[used - 1] == '\n' || out[used - 1] == ' '))
        out[--used] = '\0';
    if (!WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static int s_ip_step(char *const argv[], const char *what, char *err, size_t errlen)
{
    char out[256];
    int rc = s_run_ip(argv, out, sizeof out);
    if (rc == 0)
        return 0;
    if (rc == 127 && !out[0])
        s_err(err, errlen, "cannot run 'ip' (install iproute2)");
    else if (rc < 0)
        s_err(err, errlen, "%s: could not run ip: %s", what, strerror(errno));
    else
        s_err(err, errlen, "%s failed: %s%s", what, out[0] ? out : "ip exited with an error",
              strstr(out, "Operation not permitted") ? " (needs root or CAP_NET_ADMIN)" : "");
    return -1;
}

int can_socketcan_link_up(const char *iface, uint32_t bitrate, char *err, size_t errlen)
{
    if (!can_socketcan_iface_valid(iface)) {
        s_err(err, errlen,
              "bad interface name '%s' (allowed: 1-15 characters of A-Z a-z 0-9 _ . -)",
              iface ? iface : "");
        return -1;
    }
    if (bitrate < 10000 || bitrate > 1000000) {
        s_err(err, errlen, "bad bit rate %u (allowed 10000-1000000; the BIC-2200 uses 250000)",
              (unsigned)bitrate);
        return -1;
    }
    char rate[16];
    snprintf(rate, sizeof rate, "%u", (unsigned)bitrate);
    char *down[] = {"ip", "link", "set", (char *)iface, "down", NULL};
    char *type[] = {"ip", "link", "set", (char *)iface, "type", "can", "bitrate", rate, NULL};
    char *up[] = {"ip", "link", "set", (char *)iface, "up", NULL};
    char what[64];
    snprintf(what, sizeof what, "ip link set %s down", iface);
    if (s_ip_step(down, what, err, errlen) < 0)
        return -1;
    snprintf(what, sizeof what, "ip link set %s type can bitrate %s", iface, rate);
    if (s_ip_step(type, what, err, errlen) < 0)
        return -1;
    snprintf(what, sizeof what, "ip link set %s up", iface);
    return s_ip_step(up, what, err, errlen);
}

int can_socketcan_link_down(const char *iface, char *err, size_t errlen)
{
    if (!can_socketcan_iface_valid(iface)) {
        s_err(err, errlen,
              "bad interface name '%s' (allowed: 1-15 characters of A-Z a-z 0-9 _ . -)",
              iface ? iface : "");
        return -1;
    }
    char *down[] = {"ip", "link", "set", (char *)iface, "down", NULL};
    char what[64];
    snprintf(what, sizeof what, "ip link set %s down", iface);
    return s_ip_step(down, what, err, errlen);
}
