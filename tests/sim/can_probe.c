/* can-probe - send CAN frames through a bic2mqtt transport and print what comes back.
 *
 *   can-probe TRANSPORT [--timeout-ms N] [--gap-ms N] FRAME...
 *
 * TRANSPORT is a can/ transport spec (slcan:PATH, socketcan:IFACE). FRAME is ID#HEXDATA in
 * cansend style (8 hex digits = extended id, 3 = standard; ID#R = remote frame). Each frame
 * is sent, then every frame received within the timeout is printed, then the probe waits
 * the gap (the bus pacing) before the next. Lines: "> ID#DATA" sent, "< ID#DATA" received.
 * Used by the integration tests to talk to bic-sim with the real transport code.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "can_transport.h"
#include "monotime.h"

static int s_usage(const char *why)
{
    fprintf(stderr,
            "can-probe: %s\nusage: can-probe TRANSPORT [--timeout-ms N] [--gap-ms N] ID#DATA...\n",
            why);
    return 2;
}

static int s_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int s_parse_frame(const char *text, can_frame_t *fr)
{
    memset(fr, 0, sizeof *fr);
    const char *hash = strchr(text, '#');
    if (!hash)
        return -1;
    size_t idlen = (size_t)(hash - text);
    if (idlen != 3 && idlen != 8)
        return -1;
    uint32_t id = 0;
    for (size_t i = 0; i < idlen; i++) {
        int v = s_hexval(text[i]);
        if (v < 0)
            return -1;
        id = id * 16 + (uint32_t)v;
    }
    fr->ext = idlen == 8;
    if ((fr->ext && id > CAN_FRAME_EXT_MAX) || (!fr->ext && id > CAN_FRAME_STD_MAX))
        return -1;
    fr->id = id;
    const char *d = hash + 1;
    if (strcmp(d, "R") == 0) {
        fr->rtr = true;
        return 0;
    }
    size_t n = strlen(d);
    if (n % 2 || n > 16)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = s_hexval(d[2 * i]), lo = s_hexval(d[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        fr->data[i] = (uint8_t)(hi * 16 + lo);
    }
    fr->dlc = (uint8_t)(n / 2);
    return 0;
}

static void s_print(char dir, const can_frame_t *fr)
{
    printf("%c %0*X#", dir, fr->ext ? 8 : 3, fr->id);
    if (fr->rtr)
        printf("R");
    for (int i = 0; i < fr->dlc && i < 8; i++)
        printf("%02X", fr->data[i]);
    printf("\n");
    fflush(stdout);
}

/* Receives and prints frames until deadline_ms. Returns 0, or -1 when the transport fails. */
static int s_collect(can_transport_t *t, int64_t deadline_ms)
{
    for (;;) {
        can_frame_t fr;
        int rc;
        while ((rc = can_transport_recv(t, &fr)) == 1)
            s_print('<', &fr);
        if (rc < 0) {
            fprintf(stderr, "can-probe: transport down: %s\n", can_transport_last_error(t));
            return -1;
        }
        int64_t left = deadline_ms - mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = can_transport_fd(t), .events = POLLIN};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return -1;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return s_usage("missing TRANSPORT");
    long timeout_ms = 100, gap_ms = 25;
    can_frame_t frames[256];
    size_t n = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--timeout-ms") == 0 || strcmp(argv[i], "--gap-ms") == 0) {
            char *end = NULL;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;
            if (i + 1 >= argc || *end || v < 0 || v > 60000)
                return s_usage("--timeout-ms/--gap-ms need 0..60000");
            if (argv[i][2] == 't')
                timeout_ms = v;
            else
                gap_ms = v;
            i++;
            continue;
        }
        if (n >= sizeof frames / sizeof frames[0])
            return s_usage("too many frames (at most 256)");
        if (s_parse_frame(argv[i], &frames[n]) != 0) {
            fprintf(stderr,
                    "can-probe: bad frame '%s' (allowed: ID#HEX with a 3- or 8-digit id, "
                    "up to 8 data bytes, or ID#R)\n",
                    argv[i]);
            return 2;
        }
        n++;
    }
    char err[256];
    /* Receive every extended data frame: the probe shows whatever comes back. */
    static const can_filter_spec_t all[1] = {{0, 0}};
    can_transport_opts_t opts = {.filters = all, .nfilters = 0};
    can_transport_t *t = can_transport_open_opts(argv[1], &opts, err, sizeof err);
    if (!t) {
        fprintf(stderr, "can-probe: %s\n", err);
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (can_transport_send(t, &frames[i]) != 0) {
            fprintf(stderr, "can-probe: send failed: %s\n", can_transport_last_error(t));
            rc = 1;
            break;
        }
        s_print('>', &frames[i]);
        if (s_collect(t, mono_ms() + timeout_ms) != 0)
            rc = 1;
        else if (gap_ms > 0 && s_collect(t, mono_ms() + gap_ms) != 0)
            rc = 1;
    }
    if (n == 0 && s_collect(t, mono_ms() + timeout_ms) != 0)
        rc = 1;
    can_transport_close(&t);
    return rc;
}
