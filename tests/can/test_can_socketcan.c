/*  test_can_socketcan.c - the SocketCAN backend on a real kernel CAN stack. Runs inside the
    user-mode-linux guest (tools/uml/run-in-guest.sh -i vcan1) where vcan0 and vcan1 exist:
    a gateway-side and a device-side transport exchange BIC frames on vcan0, the kernel
    filter keeps stray frames away, error frames are counted, a missing or down interface is a
    clear error, and an interface going down while open is the DOWN state.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/can.h>
#include <linux/can/error.h>
#include <linux/can/raw.h>

#include "bic_proto.h"
#include "can_transport.h"

#define WAIT_MS 5000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* recv with a deadline: 1 frame, 0 none before the deadline, -1 gone */
static int recv_wait(can_transport_t *t, can_frame_t *fr, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int r = can_transport_recv(t, fr);
        if (r != 0)
            return r;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = can_transport_fd(t), .events = POLLIN};
        poll(&pfd, 1, (int)left);
    }
}

static void sh(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("'%s' failed (%d)", cmd, rc);
}

/* The device side listens to controller requests 0x000C0300-0x000C03FF, as a simulator. */
static can_transport_t *open_device_side(const char *spec)
{
    can_filter_spec_t f = {.id = 0x000C0300u | CAN_TRANSPORT_EFF_FLAG,
                           .mask = CAN_TRANSPORT_EFF_FLAG | CAN_TRANSPORT_RTR_FLAG | 0x1FFFFF00u};
    can_transport_opts_t o = {.filters = &f, .nfilters = 1};
    char err[256] = "";
    can_transport_t *t = can_transport_open_opts(spec, &o, err, sizeof err);
    if (!t)
        fail_msg("open %s: %s", spec, err);
    return t;
}

static void test_frames_both_ways(void **state)
{
    (void)state;
    char err[256] = "";
    can_transport_t *gw = can_transport_open("socketcan:vcan0", err, sizeof err);
    if (!gw)
        fail_msg("open socketcan:vcan0: %s", err);
    can_transport_t *dev = open_device_side("socketcan:vcan0");
    assert_int_equal(can_transport_state(gw), CAN_TRANSPORT_UP);

    /* gateway -> device: the manual's VOUT_SET 30 V */
    can_frame_t fr, got;
    assert_int_equal(bic_encode_write(bic_family_bic(), 0, BIC_CMD_VOUT_SET, 3000, &fr), BIC_OK);
    assert_int_equal(can_transport_send(gw, &fr), 0);
    assert_int_equal(recv_wait(dev, &got, WAIT_MS), 1);
    assert_int_equal(got.id, 0x000C0300);
    assert_true(got.ext);
    assert_int_equal(got.dlc, 4);
    assert_memory_equal(got.data, "\x20\x00\xB8\x0B", 4);

    /* device -> gateway: strays first, then the reply; only the reply passes the filter */
    can_frame_t stray[] = {
        {.id = 0x000C0240, .ext = true, .dlc = 4, .data = {0x60, 0x00, 1, 2}}, /* addr 64 */
        {.id = 0x200, .ext = false, .dlc = 2, .data = {0x60, 0x00}},           /* standard */
        {.id = 0x000C0201, .ext = true, .rtr = true, .dlc = 4},                /* RTR */
        {.id = 0x000C0301, .ext = true, .dlc = 2, .data = {0x60, 0x00}},       /* a request */
    };
    for (size_t i = 0; i < sizeof stray / sizeof stray[0]; i++)
        assert_int_equal(can_transport_send(dev, &stray[i]), 0);
    uint8_t d[2] = {0xD0, 0x07};
    assert_int_equal(bic_encode_reply(bic_family_bic(), 0, BIC_CMD_IOUT_SET, d, 2, &fr), BIC_OK);
    assert_int_equal(can_transport_send(dev, &fr), 0);
    assert_int_equal(recv_wait(gw, &got, WAIT_MS), 1);
    assert_int_equal(got.id, 0x000C0200);
    assert_memory_equal(got.data, "\x30\x00\xD0\x07", 4);
    assert_int_equal(recv_wait(gw, &got, 200), 0); /* nothing else came through */

    can_transport_stats_t st;
    can_transport_stats(gw, &st);
    assert_int_equal(st.tx, 1);
    assert_int_equal(st.rx, 1);
    assert_int_equal(st.filtered, 0); /* the kernel filter dropped the strays, not us */
    can_transport_stats(dev, &st);
    assert_int_equal(st.tx, 5);
    can_transport_close(&gw);
    can_transport_close(&dev);
}

static void test_error_frames_counted(void **state)
{
    (void)state;
    char err[256] = "";
    can_transport_t *gw = can_transport_open("socketcan:vcan0", err, sizeof err);
    assert_non_null(gw);
    /* Inject an error frame as a controller would report bus-off. */
    int s = socket(PF_CAN, SOCK_RAW, CAN_RAW);
    assert_true(s >= 0);
    struct sockaddr_can addr = {.can_family = AF_CAN, .can_ifindex = (int)if_nametoindex("vcan0")};
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof addr), 0);
    struct can_frame cf = {.can_id = CAN_ERR_FLAG | CAN_ERR_BUSOFF, .can_dlc = CAN_ERR_DLC};
    assert_int_equal(write(s, &cf, sizeof cf), (ssize_t)sizeof cf);
    struct can_frame ok = {
        .can_id = 0x000C0205 | CAN_EFF_FLAG, .can_dlc = 3, .data = {0x00, 0x00, 0x01}};
    assert_int_equal(write(s, &ok, sizeof ok), (ssize_t)sizeof ok);
    can_frame_t got;
    assert_int_equal(recv_wait(gw, &got, WAIT_MS), 1);
    assert_int_equal(got.id, 0x000C0205);
    can_transport_stats_t st;
    can_transport_stats(gw, &st);
    assert_int_equal(st.error_frames, 1);
    assert_int_equal(st.rx, 1);
    close(s);
    can_transport_close(&gw);
}

static void test_missing_and_down_interface(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(can_transport_open("socketcan:vcan9", err, sizeof err));
    assert_non_null(strstr(err, "interface vcan9 not found"));

    /* the helper takes it down; opening then says so and how to bring it up */
    assert_int_equal(can_socketcan_link_down("vcan1", err, sizeof err), 0);
    assert_null(can_transport_open("socketcan:vcan1", err, sizeof err));
    assert_non_null(strstr(err, "interface vcan1 is down"));
    assert_non_null(strstr(err, "can_up"));
    /* a virtual interface has no bit rate: ip's own refusal comes back */
    err[0] = '\0';
    assert_int_equal(can_socketcan_link_up("vcan1", 250000, err, sizeof err), -1);
    assert_non_null(strstr(err, "type can bitrate 250000 failed"));
    sh("ip link set vcan1 up");
    can_transport_t *t = can_transport_open("socketcan:vcan1", err, sizeof err);
    assert_non_null(t);
    can_transport_close(&t);
}

static void test_interface_lost_while_open(void **state)
{
    (void)state;
    char err[256] = "";
    can_transport_t *t = can_transport_open("socketcan:vcan1", err, sizeof err);
    if (!t)
        fail_msg("open socketcan:vcan1: %s", err);
    can_transport_t *t2 = can_transport_open("socketcan:vcan1", err, sizeof err);
    assert_non_null(t2);
    can_frame_t fr;
    assert_int_equal(bic_encode_read(bic_family_bic(), 0, BIC_CMD_READ_VOUT, &fr), BIC_OK);
    assert_int_equal(can_transport_send(t, &fr), 0);

    sh("ip link set vcan1 down");
    /* sending: refused and DOWN */
    assert_int_equal(can_transport_send(t, &fr), -1);
    assert_int_equal(can_transport_state(t), CAN_TRANSPORT_DOWN);
    assert_non_null(strstr(can_transport_last_error(t), "down"));
    assert_int_equal(can_transport_fd(t), -1);
    /* receiving: the socket reports ENETDOWN, recv says gone */
    can_frame_t got;
    assert_int_equal(recv_wait(t2, &got, WAIT_MS), -1);
    assert_int_equal(can_transport_state(t2), CAN_TRANSPORT_DOWN);
    can_transport_close(&t);
    can_transport_close(&t2);

    /* the owner recovers by reopening once the interface is back */
    sh("ip link set vcan1 up");
    t = can_transport_open("socketcan:vcan1", err, sizeof err);
    assert_non_null(t);
    assert_int_equal(can_transport_send(t, &fr), 0);
    can_transport_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_both_ways),
        cmocka_unit_test(test_error_frames_counted),
        cmocka_unit_test(test_missing_and_down_interface),
        cmocka_unit_test(test_interface_lost_while_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
