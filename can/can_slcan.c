/*  can_slcan.c - the slcan backend of can_transport: a LAWICEL adapter on a tty (or a pty
    played by the simulator), driven from user space.

    Open: raw mode at the given baud, then C (answer CR or BEL both fine: a closed channel
    may refuse it), S5 (must answer CR), O (must answer CR), each within the handshake
    deadline. Receive: bytes are kept in the transport's buffer and reassembled by the slcan
    parser; BEL answers and transmit acks are consumed and counted here. The adapter is gone
    when the tty reports EOF or EIO (USB unplugged, pty master closed).
*/
#include "can_transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define SLCAN_DEFAULT_BAUD 115200
#define SLCAN_WRITE_TIMEOUT_MS 100

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static speed_t s_speed(uint32_t baud)
{
    switch (baud) {
    case 9600:
        return B9600;
    case 19200:
        return B19200;
    case 38400:
        return B38400;
    case 57600:
        return B57600;
    case 115200:
        return B115200;
    case 230400:
        return B230400;
    case 460800:
        return B460800;
    case 500000:
        return B500000;
    case 576000:
        return B576000;
    case 921600:
        return B921600;
    case 1000000:
        return B1000000;
    case 1152000:
        return B1152000;
    case 1500000:
        return B1500000;
    case 2000000:
        return B2000000;
    case 2500000:
        return B2500000;
    case 3000000:
        return B3000000;
    case 3500000:
        return B3500000;
    case 4000000:
        return B4000000;
    default:
        return B0;
    }
}

static bool s_gone_errno(int e)
{
    return e == EIO || e == ENXIO || e == ENODEV || e == EPIPE || e == EBADF;
}

/* Write all of buf within a deadline (a tty accepts a line at once unless the adapter
   stalls). 0, or -1 with errno (ETIMEDOUT when the deadline passed). */
static int s_write_all(int fd, const char *buf, size_t n, int timeout_ms)
{
    int64_t deadline = s_now_ms() + timeout_ms;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        int64_t left = deadline - s_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            return -1;
    }
    return 0;
}

/* Next item from the adapter, reading as needed: 1 item, 0 nothing now, -1 gone. */
static int s_next_item(can_transport_t *t, slcan_item_t *it)
{
    for (;;) {
        while (t->in_off < t->in_len) {
            size_t used = 0;
            int r = slcan_parse(t->parser, t->in + t->in_off, t->in_len - t->in_off, it, &used);
            t->in_off += used;
            if (r)
                return 1;
        }
        if (!can_transport_may_read(t))
            return 0;
        ssize_t n = read(t->fd, t->in, sizeof t->in);
        if (n > 0) {
            t->in_off = 0;
            t->in_len = (size_t)n;
            if ((size_t)n < sizeof t->in)
                t->ready = false; /* the tty had no more: the next poll says when it has */
            continue;
        }
        t->ready = false;
        if (n == 0) {
            can_transport_set_down(t, "slcan adapter gone: end of file on the device");
            return -1;
        }
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        if (s_gone_errno(errno)) {
            can_transport_set_down(t, "slcan adapter gone: %s", strerror(errno));
            return -1;
        }
        can_transport_set_down(t, "slcan read failed: %s", strerror(errno));
        return -1;
    }
}

/* Send one command and wait for CR or BEL until the deadline, skipping frames and other
   lines. 1 = CR, 0 = BEL, -1 = no answer / gone (message in err). */
static int s_command(can_transport_t *t, const char *cmd, int timeout_ms, char *err, size_t errlen)
{
    char shown[8];
    snprintf(shown, sizeof shown, "%.*s", (int)strcspn(cmd, "\r"), cmd);
    if (s_write_all(t->fd, cmd, strlen(cmd), timeout_ms) < 0) {
        snprintf(err, errlen, "slcan: cannot write '%s' to %.64s: %s", shown, t->spec,
                 strerror(errno));
        return -1;
    }
    int64_t deadline = s_now_ms() + timeout_ms;
    for (;;) {
        slcan_item_t it;
        int r = s_next_item(t, &it);
        if (r < 0) {
            snprintf(err, errlen, "slcan: adapter at %.64s went away during '%s': %.64s", t->spec,
                     shown, t->last_error);
            return -1;
        }
        if (r == 1) {
            if (it.kind == SLCAN_OK)
                return 1;
            if (it.kind == SLCAN_ERROR)
                return 0;
            continue; /* frames, acks or noise from before the handshake */
        }
        int64_t left = deadline - s_now_ms();
        if (left <= 0) {
            snprintf(err, errlen,
                     "slcan: no answer from the adapter at %.64s to '%s' within %d ms (is it an "
                     "slcan/LAWICEL adapter, at the right baud rate?)",
                     t->spec, shown, timeout_ms);
            return -1;
        }
        struct pollfd pfd = {.fd = t->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
            snprintf(err, errlen, "slcan: poll failed: %s", strerror(errno));
            return -1;
        }
    }
}

static int s_send(can_transport_t *t, const can_frame_t *fr)
{
    char line[SLCAN_ENCODE_MAX];
    int n = slcan_encode_frame(fr, line, sizeof line);
    if (n < 0) {
        snprintf(t->last_error, sizeof t->last_error, "frame cannot be encoded for slcan");
        return -1;
    }
    if (s_write_all(t->fd, line, (size_t)n, SLCAN_WRITE_TIMEOUT_MS) < 0) {
        if (s_gone_errno(errno)) {
            can_transport_set_down(t, "slcan adapter gone: %s", strerror(errno));
        } else {
            snprintf(t->last_error, sizeof t->last_error, "slcan write failed: %s",
                     strerror(errno));
        }
        return -1;
    }
    return 0;
}

static int s_recv(can_transport_t *t, can_frame_t *out)
{
    for (;;) {
        slcan_item_t it;
        int r = s_next_item(t, &it);
        if (r <= 0)
            return r;
        switch (it.kind) {
        case SLCAN_FRAME:
            *out = it.frame;
            return 1;
        case SLCAN_ERROR:
            /* The adapter refused a frame or command (e.g. bus off, buffer full). */
            t->stats.errors++;
            snprintf(t->last_error, sizeof t->last_error, "slcan adapter answered BEL (error)");
            break;
        default:
            break; /* acks, status replies; garbage is counted by the parser */
        }
    }
}

static void s_close(can_transport_t *t)
{
    if (t->fd >= 0) {
        if (t->state == CAN_TRANSPORT_UP) {
            /* Best effort: leave the adapter closed for the next user. */
            ssize_t w = write(t->fd, "C\r", 2);
            (void)w;
        }
        close(t->fd);
        t->fd = -1;
    }
}

static const can_transport_ops_t s_ops = {s_send, s_recv, s_close};

int can_slcan_open(can_transport_t *t, const char *path, uint32_t baud, int timeout_ms, char *err,
                   size_t errlen)
{
    char e[256] = "";
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int en = errno;
        if (en == ENOENT)
            snprintf(err, errlen,
                     "slcan: device %s not found (is the adapter plugged in? "
                     "expected a serial device such as /dev/ttyACM0)",
                     path);
        else if (en == EACCES)
            snprintf(err, errlen,
                     "slcan: permission denied on %s (add the user to the dialout group)", path);
        else
            snprintf(err, errlen, "slcan: cannot open %s: %s", path, strerror(en));
        return -1;
    }
    t->fd = fd;
    t->ops = &s_ops;
    if (!isatty(fd)) {
        snprintf(err, errlen, "slcan: %s is not a serial device (tty or pty)", path);
        return -1;
    }
    struct termios tio;
    if (tcgetattr(fd, &tio) < 0) {
        snprintf(err, errlen, "slcan: cannot read the tty settings of %s: %s", path,
                 strerror(errno));
        return -1;
    }
    cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    /* VMIN 1: with VMIN 0 a non-blocking read of an idle tty returns 0, which would be
       indistinguishable from a hang-up; with VMIN 1 it fails with EAGAIN instead. */
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    speed_t sp = s_speed(baud ? baud : SLCAN_DEFAULT_BAUD);
    cfsetispeed(&tio, sp);
    cfsetospeed(&tio, sp);
    if (tcsetattr(fd, TCSANOW, &tio) < 0) {
        snprintf(err, errlen, "slcan: cannot set raw mode on %s: %s", path, strerror(errno));
        return -1;
    }
    tcflush(fd, TCIOFLUSH);
    t->parser = slcan_parser_new(SLCAN_FROM_ADAPTER);
    if (!t->parser) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->state = CAN_TRANSPORT_UP; /* for the handshake's reads */

    if (s_command(t, "C\r", timeout_ms, e, sizeof e) < 0)
        goto fail;
    int r = s_command(t, "S5\r", timeout_ms, e, sizeof e);
    if (r == 0)
        snprintf(e, sizeof e, "slcan: the adapter at %s refused 'S5' (250 kbit/s)", path);
    if (r <= 0)
        goto fail;
    r = s_command(t, "O\r", timeout_ms, e, sizeof e);
    if (r == 0)
        snprintf(e, sizeof e, "slcan: the adapter at %s refused 'O' (open channel)", path);
    if (r <= 0)
        goto fail;
    t->last_error[0] = '\0';
    return 0;
fail:
    t->state = CAN_TRANSPORT_DOWN;
    snprintf(err, errlen, "%s", e);
    return -1;
}
