/* slcan_adapter.h - the adapter side of the LAWICEL/slcan protocol, as a USB CAN adapter
 * (CANable, USBtin) behaves towards its host: commands answered with CR or BEL, frames to
 * transmit acknowledged with "Z"/"z" and put on the bus, frames from the bus sent to the
 * host only while the channel is open. Pure: bytes in, bytes out; the program moves them
 * between a pty and this object. Line parsing and encoding come from can/slcan.h.
 */
#ifndef BIC_SIM_SLCAN_ADAPTER_H
#define BIC_SIM_SLCAN_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "can_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLCAN_ADAPTER_OUT_MAX 65536 /* bytes waiting for the host before frames are dropped */

typedef struct {
    uint64_t commands;         /* command lines answered */
    uint64_t frames_from_host; /* frames transmitted onto the bus */
    uint64_t frames_to_host;   /* bus frames delivered to the host */
    uint64_t bel_sent;         /* commands or frames refused with BEL */
    uint64_t garbage;          /* lines that were not valid slcan */
    uint64_t overlong;         /* lines longer than the protocol allows */
    uint64_t not_open;         /* frames from the host while the channel was closed (BEL) */
    uint64_t bitrate_mismatch; /* frames sent at a bit rate other than 250 kbit/s (lost) */
    uint64_t out_dropped;      /* frames for the host dropped because it did not read */
} slcan_adapter_stats_t;

typedef struct slcan_adapter_t slcan_adapter_t;

/* Called for each frame the host transmits onto the bus. */
typedef void (*slcan_adapter_frame_fn)(void *arg, const can_frame_t *fr);

/* A closed adapter with no bit rate set. NULL on allocation failure. Caller owns it. */
slcan_adapter_t *slcan_adapter_new(void);
void slcan_adapter_destroy(slcan_adapter_t **p);

/* Bytes from the host (any chunking). Answers are queued for the host; frames to transmit
 * at 250 kbit/s are passed to fn. ts_ms is the adapter's timestamp (ms, 0-59999) used when
 * timestamps are on. */
void slcan_adapter_feed(slcan_adapter_t *a, const uint8_t *buf, size_t len, uint16_t ts_ms,
                        slcan_adapter_frame_fn fn, void *arg);

/* A frame seen on the bus: queued for the host when the channel is open. Returns 1 when
 * queued, 0 when closed, -1 when dropped because the output is full. */
int slcan_adapter_bus_frame(slcan_adapter_t *a, const can_frame_t *fr, uint16_t ts_ms);

/* Bytes waiting for the host, and consuming n of them once written. */
const uint8_t *slcan_adapter_output(const slcan_adapter_t *a, size_t *len);
void slcan_adapter_consume(slcan_adapter_t *a, size_t n);

/* The host went away: close the channel, forget partial input and pending output. */
void slcan_adapter_reset(slcan_adapter_t *a);

bool slcan_adapter_is_open(const slcan_adapter_t *a);
uint32_t slcan_adapter_bitrate(const slcan_adapter_t *a); /* bps, 0 = not set */
void slcan_adapter_stats(const slcan_adapter_t *a, slcan_adapter_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif
