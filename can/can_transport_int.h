/*  can_transport_int.h - what the transport front end and its backends share (not part of
    the public interface): the object layout and the backend operations.
*/
#ifndef CAN_TRANSPORT_INT_H_INCLUDED
#define CAN_TRANSPORT_INT_H_INCLUDED

#include "can_transport.h"
#include "slcan.h"

typedef struct {
    int (*send)(can_transport_t *t, const can_frame_t *fr); /* 0 / -1 */
    int (*recv)(can_transport_t *t, can_frame_t *out);      /* 1 / 0 / -1, unfiltered */
    void (*close)(can_transport_t *t);                      /* release fd and backend data */
} can_transport_ops_t;

struct can_transport {
    const can_transport_ops_t *ops;
    char spec[300];
    int fd;
    can_transport_state_t state;
    can_transport_stats_t stats;
    char last_error[256];
    can_filter_spec_t filters[CAN_TRANSPORT_FILTERS_MAX];
    size_t nfilters;
    /* can_transport_polled: reads only while the caller's poll found the descriptor ready */
    bool poll_driven;
    bool ready;
    /* slcan backend */
    slcan_parser_t *parser;
    uint8_t in[512];
    size_t in_off, in_len;
};

/* Whether a backend may read the device now (see can_transport_polled). */
static inline bool can_transport_may_read(const can_transport_t *t)
{
    return !t->poll_driven || t->ready;
}

/* Mark the transport down with a reason (printf-style). */
void can_transport_set_down(can_transport_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Backend openers: fill t->ops, t->fd; return 0, or -1 with a message in err. */
int can_slcan_open(can_transport_t *t, const char *path, uint32_t baud, int timeout_ms, char *err,
                   size_t errlen);
int can_socketcan_open(can_transport_t *t, const char *iface, char *err, size_t errlen);

#endif
