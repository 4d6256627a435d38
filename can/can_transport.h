/*  can_transport.h - one small interface to a CAN bus, two backends:

      slcan:PATH[:BAUD]   a serial LAWICEL adapter (CANable, USBtin, ...) or any tty/pty that
                          speaks slcan, driven from user space (no kernel CAN needed). Opening
                          puts the tty in raw mode and runs the C, S5, O handshake within a
                          bounded deadline. BAUD defaults to 115200 (ignored by USB CDC).
      socketcan:IFACE     a Linux SocketCAN raw socket with a receive filter, error frames
                          enabled and counted.

    Non-blocking: poll can_transport_fd() for POLLIN, then call can_transport_recv() until it
    returns 0 (one read may carry several frames, which are kept inside the transport).
    An adapter that disappears is a state (CAN_TRANSPORT_DOWN) and a -1 from recv/send, never
    an exit: the owner closes the transport and opens it again later.

    Both backends deliver only extended data frames that pass the receive filter (SocketCAN in
    the kernel, slcan in software), so callers see the same frames whichever backend is used.
*/
#ifndef CAN_TRANSPORT_H_INCLUDED
#define CAN_TRANSPORT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "can_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct can_transport can_transport_t;

typedef enum { CAN_TRANSPORT_DOWN = 0, CAN_TRANSPORT_UP = 1 } can_transport_state_t;

typedef struct {
    uint64_t tx;           /* frames sent */
    uint64_t rx;           /* frames delivered by recv */
    uint64_t errors;       /* adapter refusals (slcan BEL), failed sends */
    uint64_t error_frames; /* SocketCAN error frames (bus errors, controller problems) */
    uint64_t garbage;      /* slcan lines that were not valid */
    uint64_t overlong;     /* slcan lines dropped for length */
    uint64_t filtered;     /* frames received but dropped by the filter (slcan; RTR/std) */
} can_transport_stats_t;

/* A receive filter entry in SocketCAN terms: a frame passes when
   (frame_id_with_flags & mask) == (id & mask). Flag bits as in <linux/can.h>. */
#define CAN_TRANSPORT_EFF_FLAG 0x80000000u
#define CAN_TRANSPORT_RTR_FLAG 0x40000000u
#define CAN_TRANSPORT_EFF_MASK 0x1FFFFFFFu
typedef struct {
    uint32_t id;
    uint32_t mask;
} can_filter_spec_t;

#define CAN_TRANSPORT_FILTERS_MAX 72 /* 64 addresses and a few more */

typedef struct {
    int handshake_timeout_ms;         /* slcan: deadline for each step of C/S5/O; 0 = 1000 */
    const can_filter_spec_t *filters; /* NULL = BIC device replies 0x000C0200-0x000C023F */
    size_t nfilters;                  /* 0 with filters != NULL: accept every extended data frame */
} can_transport_opts_t;

/* Open a transport from its spec (see above). On failure returns NULL and writes into err a
   message that names what was wrong and what is allowed (bad spec, missing device, not a tty,
   adapter did not answer, AF_CAN not available in this kernel, interface not found). The
   caller owns the result. opts may be NULL (defaults, as the gateway uses). */
can_transport_t *can_transport_open(const char *spec, char *err, size_t errlen);
can_transport_t *can_transport_open_opts(const char *spec, const can_transport_opts_t *opts,
                                         char *err, size_t errlen);
/* Close and free, accepting NULL; nulls the caller's pointer. slcan sends "C" first. */
void can_transport_close(can_transport_t **pt);

/* The descriptor to poll for POLLIN, -1 when down. */
int can_transport_fd(const can_transport_t *t);
/* 0 sent (queued to the adapter/kernel); -1 not sent: check can_transport_state() - DOWN
   means the adapter is gone, UP means a transient refusal (kernel queue full, invalid
   frame). */
int can_transport_send(can_transport_t *t, const can_frame_t *fr);
/* 1 a frame in *out; 0 nothing now; -1 adapter gone (EOF, EIO, ENODEV, ENETDOWN): state is
   DOWN from then on. */
int can_transport_recv(can_transport_t *t, can_frame_t *out);
/* For an event loop that polls the descriptor: after each poll, say whether it reported the
   descriptor ready (any revents). From the first call on, can_transport_recv reads the device
   only while it is ready, and a read that finds it drained (nothing, or for slcan less than
   asked) makes it not ready until the next poll says so: a wake-up costs no read that finds
   nothing (on a tty such a read also waits for the line discipline's pending work). Buffered
   input is returned either way. */
void can_transport_polled(can_transport_t *t, bool ready);

can_transport_state_t can_transport_state(const can_transport_t *t);
const char *can_transport_state_name(can_transport_state_t s); /* "up", "down" */
void can_transport_stats(const can_transport_t *t, can_transport_stats_t *ret_stats);
/* The spec the transport was opened with. */
const char *can_transport_spec(const can_transport_t *t);
/* Why the transport went down (or the last send error), "" when there is none. */
const char *can_transport_last_error(const can_transport_t *t);

/* ---------------------------------------------------------------------------------------
   Helpers (pure unless noted)
   --------------------------------------------------------------------------------------- */

/* Receive filters for the reply identifiers base|addr, base e.g. 0x000C0200: one entry per
   address (extended, not RTR, exact id), or, with naddrs == 0, one entry covering addresses
   0-63. Returns the number of entries written, -1 if max is too small or an address > 63. */
int can_transport_reply_filters(uint32_t base, const uint8_t *addrs, size_t naddrs,
                                can_filter_spec_t *out, size_t max);
/* Does a frame pass the filter list? (The slcan backend applies filters with this.) */
bool can_transport_filter_match(const can_filter_spec_t *filters, size_t n, const can_frame_t *fr);

/* Parsed spec. kind "slcan" or "socketcan". Returns 0, or -1 with a message in err. */
typedef struct {
    char kind[16];
    char path[256]; /* slcan: device path; socketcan: interface name */
    uint32_t baud;  /* slcan only; 0 = default */
} can_transport_spec_t;
int can_transport_parse_spec(const char *spec, can_transport_spec_t *ret_spec, char *err,
                             size_t errlen);

/* For `bicctl can_up` / `can_down` (runs `ip link`, not pure): bring a SocketCAN interface
   down, set its bit rate, bring it up. Returns 0, or -1 with the reason in err (bad interface
   name, ip not found, ip's own error text such as "Cannot find device", needs root). */
int can_socketcan_link_up(const char *iface, uint32_t bitrate, char *err, size_t errlen);
int can_socketcan_link_down(const char *iface, char *err, size_t errlen);
/* Is iface a valid interface name (1-15 chars of [A-Za-z0-9_.-], not "." or "..")? */
bool can_socketcan_iface_valid(const char *iface);

#ifdef __cplusplus
}
#endif

#endif
