/*  Tests of the process plumbing: signal flags (also after czmq has started), the clocks,
    and systemd notifications sent to a real notify socket.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#include "monotime.h"
#include "sdnotify.h"
#include "sigflag.h"

static void test_signal_flags(void **state)
{
    assert_int_equal(sigflag_install(), 0);
    //  czmq would install its own SIGINT/SIGTERM handler with its first socket.
    zsock_t *sock = zsock_new(ZMQ_PUB);
    assert_non_null(sock);
    assert_false(sigflag_stop());
    assert_false(sigflag_reload_take());

    raise(SIGHUP);
    assert_true(sigflag_reload_take());
    assert_false(sigflag_reload_take()); //  taken: cleared
    assert_false(sigflag_stop());

    raise(SIGPIPE); //  ignored: the process lives on
    assert_false(sigflag_stop());

    raise(SIGTERM);
    assert_true(sigflag_stop());
    assert_int_equal(sigflag_stop_signal(), SIGTERM);
    assert_true(sigflag_stop()); //  stays set

    assert_int_equal(sigflag_install(), 0);
    assert_false(sigflag_stop());
    raise(SIGINT);
    assert_int_equal(sigflag_stop_signal(), SIGINT);
    zsock_destroy(&sock);
}

static void test_clocks(void **state)
{
    int64_t a = mono_ms();
    int64_t au = mono_us();
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    int64_t b = mono_ms();
    assert_true(b - a >= 19);
    assert_true(mono_us() - au >= 19000);
    int64_t wall = wall_ms();
    int64_t now_s = (int64_t)time(NULL);
    assert_true(wall / 1000 >= now_s - 2 && wall / 1000 <= now_s + 2);
}

static void test_sdnotify(void **state)
{
#ifndef BIC_HAVE_SYSTEMD
    fail_msg("built without libsystemd: Debian's libsystemd-dev has it (tools/deps.sh)");
#else
    //  Not under systemd: nothing to do, no error.
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    assert_int_equal(sdnotify_ready(), 0);
    assert_int_equal(sdnotify_watchdog_interval_us(), 0);

    char path[108];
    snprintf(path, sizeof path, "/tmp/bic-test-notify-%d.sock", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    setenv("NOTIFY_SOCKET", path, 1);

    char buf[256];
    assert_true(sdnotify_ready() > 0);
    ssize_t len = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(len > 0);
    buf[len] = '\0';
    assert_string_equal(buf, "READY=1");

    assert_true(sdnotify_status("%d devices online", 2) > 0);
    len = recv(fd, buf, sizeof buf - 1, 0);
    buf[len > 0 ? len : 0] = '\0';
    assert_string_equal(buf, "STATUS=2 devices online");

    assert_true(sdnotify_watchdog() > 0);
    len = recv(fd, buf, sizeof buf - 1, 0);
    buf[len > 0 ? len : 0] = '\0';
    assert_string_equal(buf, "WATCHDOG=1");

    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    setenv("WATCHDOG_USEC", "3000000", 1);
    assert_int_equal(sdnotify_watchdog_interval_us(), 3000000);

    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    close(fd);
    unlink(path);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_flags),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_sdnotify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
