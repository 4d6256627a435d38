/*  test_can_transport.c - the transports against real parts: the slcan backend on a real pty
    pair where this test plays the adapter (handshake, frames both ways, filtering, garbage,
    BEL, adapter gone), spec and device errors, the SocketCAN error on kernels without AF_CAN,
    receive filter construction, and the `ip link` helper's refusals.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bic_proto.h"
#include "can_transport.h"
#include "slcan.h"

/* Generous: the machine is shared and noisy; nothing here depends on speed. */
#define WAIT_MS 5000

/* ---- the adapter, played by a thread on the pty master -------------------------------- */

typedef enum { ADAPTER_OK, ADAPTER_REFUSE_S5, ADAPTER_SILENT } adapter_mode_t;

typedef struct {
    int master;
    char slave_path[128];
    int slave_keep; /* the test's own slave fd, so the master never sees "no slave" */
    adapter_mode_t mode;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    slcan_item_t items[64]; /* what the host sent, in order */
    int nitems;
} adapter_t;

static void *adapter_main(void *arg)
{
    adapter_t *a = arg;
    slcan_parser_t *p = slcan_parser_new(SLCAN_FROM_HOST);
    bool open = false;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        bool stop = a->stop;
        pthread_mutex_unlock(&a->mu);
        if (stop)
            break;
        struct pollfd pfd = {.fd = a->master, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        uint8_t buf[256];
        ssize_t n = read(a->master, buf, sizeof buf);
        if (n <= 0)
            continue;
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used;
            slcan_item_t it;
            int r = slcan_parse(p, buf + off, (size_t)n - off, &it, &used);
            off += used;
            if (!r)
                continue;
            pthread_mutex_lock(&a->mu);
            if (a->nitems < 64)
                a->items[a->nitems++] = it;
            pthread_cond_broadcast(&a->cv);
            pthread_mutex_unlock(&a->mu);
            if (a->mode == ADAPTER_SILENT)
                continue;
            const char *answer = "\r";
            if (it.kind == SLCAN_BITRATE && a->mode == ADAPTER_REFUSE_S5)
                answer = "\a";
            else if (it.kind == SLCAN_OPEN)
                open = true;
            else if (it.kind == SLCAN_CLOSE)
                open = false;
            else if (it.kind == SLCAN_FRAME)
                answer = open ? (it.frame.ext ? "Z\r" : "z\r") : "\a";
            else if (it.kind == SLCAN_GARBAGE)
                answer = "\a";
            ssize_t w = write(a->master, answer, strlen(answer));
            (void)w;
        }
    }
    slcan_parser_destroy(&p);
    return NULL;
}

static adapter_t *adapter_start(adapter_mode_t mode)
{
    adapter_t *a = calloc(1, sizeof *a);
    assert_non_null(a);
    int slave;
    assert_int_equal(openpty(&a->master, &slave, NULL, NULL, NULL), 0);
    snprintf(a->slave_path, sizeof a->slave_path, "%s", ttyname(slave));
    a->slave_keep = slave;
    a->mode = mode;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    assert_int_equal(pthread_create(&a->thread, NULL, adapter_main, a), 0);
    return a;
}

static void adapter_stop(adapter_t **pa)
{
    adapter_t *a = *pa;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    if (a->master >= 0)
        close(a->master);
    if (a->slave_keep >= 0)
        close(a->slave_keep);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
    *pa = NULL;
}

/* Wait until the host has sent at least n items; returns the count seen. */
static int adapter_wait_items(adapter_t *a, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&a->mu);
    while (a->nitems < n)
        if (pthread_cond_timedwait(&a->cv, &a->mu, &dl) == ETIMEDOUT)
            break;
    int got = a->nitems;
    pthread_mutex_unlock(&a->mu);
    return got;
}

static void adapter_send(adapter_t *a, const char *s)
{
    assert_int_equal(write(a->master, s, strlen(s)), (ssize_t)strlen(s));
}

static can_transport_t *open_on(adapter_t *a, int timeout_ms, char *err, size_t errlen)
{
    char spec[160];
    snprintf(spec, sizeof spec, "slcan:%s", a->slave_path);
    can_transport_opts_t o = {.handshake_timeout_ms = timeout_ms};
    return can_transport_open_opts(spec, &o, err, errlen);
}

/* recv with a deadline: 1 frame, 0 none before the deadline, -1 gone */
static int recv_wait(can_transport_t *t, can_frame_t *fr, int timeout_ms)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t deadline = now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
    for (;;) {
        int r = can_transport_recv(t, fr);
        if (r != 0)
            return r;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left = deadline - (now.tv_sec * 1000 + now.tv_nsec / 1000000);
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = can_transport_fd(t), .events = POLLIN};
        poll(&pfd, 1, (int)left);
    }
}

/* ---- slcan over a pty ------------------------------------------------------------------- */

static void test_slcan_handshake_and_frames(void **state)
{
    (void)state;
    adapter_t *a = adapter_start(ADAPTER_OK);
    char err[256] = "";
    can_transport_t *t = open_on(a, 2000, err, sizeof err);
    assert_non_null(t);
    close(a->slave_keep); /* the transport holds the slave now */
    a->slave_keep = -1;
    assert_int_equal(can_transport_state(t), CAN_TRANSPORT_UP);
    assert_string_equal(can_transport_state_name(can_transport_state(t)), "up");
    assert_true(can_transport_fd(t) >= 0);
    assert_int_equal(adapter_wait_items(a, 3), 3);
    assert_int_equal(a->items[0].kind, SLCAN_CLOSE);
    assert_int_equal(a->items[1].kind, SLCAN_BITRATE);
    assert_int_equal(a->items[1].value, 5); /* 250 kbit/s */
    assert_int_equal(a->items[2].kind, SLCAN_OPEN);

    /* host -> bus: the manual's VOUT_SET 30 V frame arrives byte for byte */
    can_frame_t fr;
    assert_int_equal(bic_encode_write(bic_family_bic(), 0, BIC_CMD_VOUT_SET, 3000, &fr), BIC_OK);
    assert_int_equal(can_transport_send(t, &fr), 0);
    assert_int_equal(adapter_wait_items(a, 4), 4);
    assert_int_equal(a->items[3].kind, SLCAN_FRAME);
    assert_int_equal(a->items[3].frame.id, 0x000C0300);
    assert_true(a->items[3].frame.ext);
    assert_int_equal(a->items[3].frame.dlc, 4);
    assert_memory_equal(a->items[3].frame.data, "\x20\x00\xB8\x0B", 4);

    /* bus -> host: noise, filtered frames, a BEL, then the reply; only the reply arrives */
    adapter_send(a, "garbage line\r");
    adapter_send(a, "t2004AABBCCDD\r");      /* standard frame */
    adapter_send(a, "R000C02002\r");         /* RTR */
    adapter_send(a, "T000C0300400000000\r"); /* a request id, not a reply */
    adapter_send(a, "\a");
    adapter_send(a, "T000C02004300"); /* the reply, split across writes */
    adapter_send(a, "0D007\r");
    can_frame_t got;
    assert_int_equal(recv_wait(t, &got, WAIT_MS), 1);
    assert_int_equal(got.id, 0x000C0200);
    assert_true(got.ext);
    assert_int_equal(got.dlc, 4);
    assert_memory_equal(got.data, "\x30\x00\xD0\x07", 4);
    bic_msg_t m;
    assert_int_equal(bic_decode_reply(bic_family_bic(), &got, &m), BIC_OK);
    assert_int_equal(can_transport_recv(t, &got), 0);

    /* two replies in one write are both delivered */
    adapter_send(a, "T000C02033000001\rT000C0207460001A0A\r");
    assert_int_equal(recv_wait(t, &got, WAIT_MS), 1);
    assert_int_equal(got.id, 0x000C0203);
    assert_int_equal(recv_wait(t, &got, WAIT_MS), 1);
    assert_int_equal(got.id, 0x000C0207);
    assert_int_equal(got.dlc, 4);

    can_transport_stats_t st;
    can_transport_stats(t, &st);
    assert_int_equal(st.tx, 1);
    assert_int_equal(st.rx, 3);
    assert_int_equal(st.filtered, 3);
    assert_int_equal(st.garbage, 1);
    assert_true(st.errors >= 1); /* the BEL */
    assert_int_equal(st.overlong, 0);
    assert_non_null(strstr(can_transport_spec(t), a->slave_path));

    can_transport_close(&t);
    assert_null(t);
    can_transport_close(&t);
    /* closing leaves the adapter closed ("C") */
    assert_int_equal(adapter_wait_items(a, 5), 5);
    assert_int_equal(a->items[4].kind, SLCAN_CLOSE);
    adapter_stop(&a);
}

/* A transport open on a started adapter, which no longer keeps its own slave fd. */
static can_transport_t *open_up(adapter_t *a)
{
    char err[256] = "";
    can_transport_t *t = open_on(a, 2000, err, sizeof err);
    assert_non_null(t);
    close(a->slave_keep);
    a->slave_keep = -1;
    return t;
}

/* An event loop's transport reads only when its poll found the tty ready, and a read that
 * drains it waits for the next poll's word: what arrives in between stays in the tty (nothing
 * lost), buffered frames come out either way. */
static bool wait_readable(can_transport_t *t)
{
    struct pollfd pfd = {.fd = can_transport_fd(t), .events = POLLIN};
    return poll(&pfd, 1, WAIT_MS) == 1 && (pfd.revents & POLLIN);
}

static void test_slcan_polled(void **state)
{
    (void)state;
    adapter_t *a = adapter_start(ADAPTER_OK);
    can_transport_t *t = open_up(a);
    can_frame_t got;
    /* two replies and the start of a third in one write */
    adapter_send(a, "T000C02033000001\rT000C0207460001A0A\rT000C0201");
    assert_true(wait_readable(t));
    can_transport_polled(t, false); /* the poll woke for something else */
    assert_int_equal(can_transport_recv(t, &got), 0);
    can_transport_polled(t, true);
    assert_int_equal(can_transport_recv(t, &got), 1);
    assert_int_equal(got.id, 0x000C0203);
    assert_int_equal(can_transport_recv(t, &got), 1);
    assert_int_equal(got.id, 0x000C0207);
    assert_int_equal(can_transport_recv(t, &got), 0); /* drained: no read until told */
    adapter_send(a, "44300ABCD\r");                   /* the third reply's rest: dlc 4, data */
    assert_true(wait_readable(t));
    assert_int_equal(can_transport_recv(t, &got), 0);
    can_transport_polled(t, true);
    assert_int_equal(can_transport_recv(t, &got), 1);
    assert_int_equal(got.id, 0x000C0201);
    assert_memory_equal(got.data, "\x43\x00\xAB\xCD", 4);
    assert_int_equal(can_transport_recv(t, &got), 0);
    can_transport_close(&t);
    adapter_stop(&a);
}

static void test_slcan_adapter_gone(void **state)
{
    (void)state;
    adapter_t *a = adapter_start(ADAPTER_OK);
    can_transport_t *t = open_up(a);
    can_frame_t fr;
    assert_int_equal(can_transport_recv(t, &fr), 0);
    /* unplug: the adapter side disappears */
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    close(a->master);
    a->master = -1;
    assert_int_equal(recv_wait(t, &fr, WAIT_MS), -1);
    assert_int_equal(can_transport_state(t), CAN_TRANSPORT_DOWN);
    assert_string_equal(can_transport_state_name(CAN_TRANSPORT_DOWN), "down");
    assert_int_equal(can_transport_fd(t), -1);
    assert_non_null(strstr(can_transport_last_error(t), "gone"));
    assert_int_equal(can_transport_recv(t, &fr), -1);
    assert_int_equal(bic_encode_read(bic_family_bic(), 0, BIC_CMD_READ_VOUT, &fr), BIC_OK);
    assert_int_equal(can_transport_send(t, &fr), -1);
    can_transport_close(&t);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}

static void test_slcan_handshake_failures(void **state)
{
    (void)state;
    char err[256] = "";
    adapter_t *a = adapter_start(ADAPTER_REFUSE_S5);
    assert_null(open_on(a, 2000, err, sizeof err));
    assert_non_null(strstr(err, "refused 'S5'"));
    adapter_stop(&a);

    a = adapter_start(ADAPTER_SILENT);
    err[0] = '\0';
    assert_null(open_on(a, 200, err, sizeof err));
    assert_non_null(strstr(err, "no answer"));
    assert_non_null(strstr(err, "'C'"));
    assert_non_null(strstr(err, "200 ms"));
    adapter_stop(&a);
}

static void test_spec_errors(void **state)
{
    (void)state;
    struct {
        const char *spec;
        const char *msg;
    } bad[] = {
        {"", "no kind"},
        {"/dev/ttyACM0", "no kind"},
        {"can:can0", "unknown CAN transport kind 'can'"},
        {"slcan:", "missing device path"},
        {"slcan::115200", "missing device path"},
        {"slcan:/dev/ttyACM0:12345", "bad serial baud rate '12345'"},
        {"socketcan:", "bad SocketCAN interface name"},
        {"socketcan:can 0", "bad SocketCAN interface name"},
        {"socketcan:averyveryverylongname", "bad SocketCAN interface name"},
        {"socketcan:..", "bad SocketCAN interface name"},
        {"slcan:/nonexistent/ttyACM9", "not found"},
        {"slcan:/dev/null", "not a serial device"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        can_transport_t *t = can_transport_open(bad[i].spec, err, sizeof err);
        assert_null(t);
        if (!strstr(err, bad[i].msg))
            fail_msg("spec '%s': got '%s', want '%s'", bad[i].spec, err, bad[i].msg);
        if (i < 10) /* the syntax errors also say what is allowed */
            assert_true(strstr(err, "allowed") || strstr(err, "slcan:PATH"));
    }
    char err[64];
    assert_null(can_transport_open(NULL, err, sizeof err));
    can_transport_spec_t ps;
    assert_int_equal(can_transport_parse_spec("slcan:/dev/ttyUSB0:921600", &ps, err, sizeof err),
                     0);
    assert_string_equal(ps.kind, "slcan");
    assert_string_equal(ps.path, "/dev/ttyUSB0");
    assert_int_equal(ps.baud, 921600);
    assert_int_equal(can_transport_parse_spec("slcan:/tmp/bic-sim.pty", &ps, err, sizeof err), 0);
    assert_string_equal(ps.path, "/tmp/bic-sim.pty");
    assert_int_equal(ps.baud, 0);
    assert_int_equal(can_transport_parse_spec("socketcan:can0", &ps, err, sizeof err), 0);
    assert_string_equal(ps.kind, "socketcan");
    assert_string_equal(ps.path, "can0");
}

static void test_socketcan_missing(void **state)
{
    (void)state;
    char err[512] = "";
    can_transport_t *t = can_transport_open("socketcan:bicnone0", err, sizeof err);
    assert_null(t);
    int s = socket(PF_CAN, SOCK_RAW, 1 /* CAN_RAW */);
    if (s < 0) {
        /* this kernel has no CAN: say so and point at slcan */
        assert_non_null(strstr(err, "AF_CAN is not available"));
        assert_non_null(strstr(err, "slcan:"));
    } else {
        close(s);
        assert_non_null(strstr(err, "interface bicnone0 not found"));
    }
}

/* ---- filters (pure) ----------------------------------------------------------------------- */

static void test_filters(void **state)
{
    (void)state;
    can_filter_spec_t f[CAN_TRANSPORT_FILTERS_MAX];
    assert_int_equal(can_transport_reply_filters(0x000C0200, NULL, 0, f, 4), 1);
    assert_int_equal(f[0].id, 0x800C0200u);
    assert_int_equal(f[0].mask, 0x80000000u | 0x40000000u | 0x1FFFFFC0u);
    can_frame_t fr = {.id = 0x000C0200, .ext = true, .dlc = 4};
    assert_true(can_transport_filter_match(f, 1, &fr));
    fr.id = 0x000C023F;
    assert_true(can_transport_filter_match(f, 1, &fr));
    fr.id = 0x000C0240;
    assert_false(can_transport_filter_match(f, 1, &fr));
    fr.id = 0x000C0300;
    assert_false(can_transport_filter_match(f, 1, &fr));
    fr.id = 0x000C0201;
    fr.rtr = true;
    assert_false(can_transport_filter_match(f, 1, &fr));
    fr = (can_frame_t){.id = 0x201, .ext = false};
    assert_false(can_transport_filter_match(f, 1, &fr));

    const uint8_t addrs[] = {0, 7, 63};
    assert_int_equal(can_transport_reply_filters(0x000C0200, addrs, 3, f, 8), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f[i].id, (0x000C0200u | addrs[i]) | 0x80000000u);
        assert_int_equal(f[i].mask, 0x80000000u | 0x40000000u | 0x1FFFFFFFu);
    }
    fr = (can_frame_t){.id = 0x000C0207, .ext = true};
    assert_true(can_transport_filter_match(f, 3, &fr));
    fr.id = 0x000C0206;
    assert_false(can_transport_filter_match(f, 3, &fr));
    const uint8_t bad[] = {64};
    assert_int_equal(can_transport_reply_filters(0x000C0200, bad, 1, f, 8), -1);
    assert_int_equal(can_transport_reply_filters(0x000C0200, addrs, 3, f, 2), -1);
    assert_int_equal(can_transport_reply_filters(0x000C0200, NULL, 0, f, 0), -1);
    assert_false(can_transport_filter_match(f, 0, &fr));
}

static void test_link_helper(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(can_socketcan_link_up("can0; reboot", 250000, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad interface name"));
    assert_int_equal(can_socketcan_link_up("can0", 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad bit rate"));
    assert_int_equal(can_socketcan_link_down("", err, sizeof err), -1);
    assert_true(can_socketcan_iface_valid("can0"));
    assert_true(can_socketcan_iface_valid("vcan-1.2_x"));
    assert_false(can_socketcan_iface_valid("a/b"));
    assert_false(can_socketcan_iface_valid("0123456789abcdef"));
    /* a real run of ip on an interface that does not exist: ip's own reason comes back */
    err[0] = '\0';
    assert_int_equal(can_socketcan_link_up("bicnone0", 250000, err, sizeof err), -1);
    assert_true(strstr(err, "bicnone0") || strstr(err, "cannot run 'ip'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slcan_handshake_and_frames),
        cmocka_unit_test(test_slcan_polled),
        cmocka_unit_test(test_slcan_adapter_gone),
        cmocka_unit_test(test_slcan_handshake_failures),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_socketcan_missing),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_link_helper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
