/*  slcan.h - the LAWICEL / slcan ASCII protocol of serial CAN adapters (CANable, USBtin and
    others), both sides: the host that drives an adapter, and the adapter (the simulator plays
    it). Pure codec: no I/O. Lines end in CR; the adapter answers a command with CR (ok) or
    BEL (error) and a transmitted frame with "z" (standard) / "Z" (extended) + CR.

    Frames: "Tiiiiiiiild<data>" extended, "tiiild<data>" standard, "R"/"r" the RTR forms (no
    data), optionally followed by a 4-digit hex timestamp when the adapter has timestamps on.
    Hex digits are parsed in either case, as the Linux slcan driver and the CANable/USBtin
    firmware do; the encoder always writes upper case.

    The parser is a stream reassembler: feed it whatever read() returned (any chunking, one
    byte at a time included); it splits lines, reports BEL, counts and skips garbage and
    overlong lines, and resynchronises at the next CR.
*/
#ifndef SLCAN_H_INCLUDED
#define SLCAN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "can_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest line accepted, without the CR: "T" + 8 id + 1 dlc + 16 data + 4 timestamp = 30. */
#define SLCAN_LINE_MAX 30
/* Buffer size that holds any encoded line with its CR and a NUL. */
#define SLCAN_ENCODE_MAX 32

/* Who is talking: the parser interprets lines as sent by that side. */
typedef enum {
    SLCAN_FROM_ADAPTER = 0, /* host's parser: frames received, acks, BEL, replies */
    SLCAN_FROM_HOST = 1,    /* adapter's parser: commands and frames to transmit */
} slcan_side_t;

typedef enum {
    SLCAN_NONE = 0,
    SLCAN_FRAME,      /* a CAN frame: received from the bus (from adapter) or to send (from host) */
    SLCAN_OK,         /* from adapter: bare CR, the positive answer to a command */
    SLCAN_TX_OK,      /* from adapter: "z"/"Z" CR, a frame was queued for transmission */
    SLCAN_ERROR,      /* from adapter: BEL, the command or frame was refused */
    SLCAN_OPEN,       /* from host: "O" open the channel */
    SLCAN_LISTEN,     /* from host: "L" open listen-only */
    SLCAN_CLOSE,      /* from host: "C" close the channel */
    SLCAN_BITRATE,    /* from host: "Sn", value = n (0-8), see slcan_bitrate_bps() */
    SLCAN_BTR,        /* from host: "sxxyy" raw bit timing, value = 0xXXYY */
    SLCAN_VERSION,    /* "V": from host a request; from adapter "Vhhss", text = "hhss" */
    SLCAN_FW_VERSION, /* "v": as VERSION, for the firmware version */
    SLCAN_SERIAL,     /* "N": from host a request; from adapter "Nxxxx", text = serial */
    SLCAN_STATUS,     /* "F": from host a request; from adapter "Fxx", value = status flags */
    SLCAN_TIMESTAMP,  /* from host: "Z0"/"Z1" timestamps off/on, value = 0/1 */
    SLCAN_ACCEPT,     /* from host: "Mxxxxxxxx" code or "mxxxxxxxx" mask, value, text = "M"/"m" */
    SLCAN_GARBAGE,    /* a line that is not valid for that side, skipped (text = its start) */
    SLCAN_OVERLONG,   /* a line longer than SLCAN_LINE_MAX, skipped up to the next CR */
} slcan_kind_t;

typedef struct {
    slcan_kind_t kind;
    can_frame_t frame;             /* SLCAN_FRAME */
    bool has_timestamp;            /* SLCAN_FRAME from adapter with a 4-digit timestamp */
    uint16_t timestamp;            /* ms, 0-59999 on real adapters */
    uint32_t value;                /* BITRATE, BTR, STATUS, TIMESTAMP, ACCEPT */
    char text[SLCAN_LINE_MAX + 1]; /* VERSION/SERIAL payload; GARBAGE: the line (cut) */
} slcan_item_t;

typedef struct {
    uint64_t lines;    /* complete lines and BELs seen */
    uint64_t frames;   /* SLCAN_FRAME items */
    uint64_t errors;   /* BEL received (from adapter side) */
    uint64_t garbage;  /* lines rejected as not valid */
    uint64_t overlong; /* lines dropped for length */
} slcan_stats_t;

typedef struct slcan_parser slcan_parser_t;

/* A parser for lines sent by side. NULL on allocation failure. Caller owns it. */
slcan_parser_t *slcan_parser_new(slcan_side_t side);
/* Destroy, accepting NULL; nulls the caller's pointer. */
void slcan_parser_destroy(slcan_parser_t **p);
/* Forget any partial line (after reopening a device). Counters are kept. */
void slcan_parser_reset(slcan_parser_t *p);

/* Consume bytes from buf until one item is complete or buf is exhausted. *ret_used is set to
   the number of bytes consumed (always > 0 when len > 0). Returns 1 with *ret_item filled, 0
   when all of buf was consumed without completing an item (a partial line is kept inside).
   Typical loop:
       size_t off = 0, used;
       while (off < len) { if (slcan_parse(p, buf + off, len - off, &it, &used)) handle(&it);
                           off += used; }
   LF bytes and NULs are ignored between lines (some adapters send CR LF). */
int slcan_parse(slcan_parser_t *p, const uint8_t *buf, size_t len, slcan_item_t *ret_item,
                size_t *ret_used);
void slcan_parser_stats(const slcan_parser_t *p, slcan_stats_t *ret_stats);

/* Encode a frame as a line with its CR ("T000C03002420 00B80B\r" without the space).
   Returns the length written (excluding NUL), or -1 for an invalid frame (dlc > 8, id beyond
   11/29 bits) or a buffer shorter than SLCAN_ENCODE_MAX. */
int slcan_encode_frame(const can_frame_t *fr, char *buf, size_t n);
/* Encode a frame with a timestamp suffix (adapter side, timestamps on). */
int slcan_encode_frame_ts(const can_frame_t *fr, uint16_t timestamp, char *buf, size_t n);

/* Encode an item as sent by side: from host the commands (OPEN "O\r", CLOSE "C\r", LISTEN,
   BITRATE "S5\r" from value, BTR, VERSION "V\r", FW_VERSION, SERIAL, STATUS "F\r",
   TIMESTAMP "Z1\r", ACCEPT, FRAME); from adapter the answers (OK "\r", ERROR "\a", TX_OK "z\r"
   or "Z\r" by item->frame.ext, VERSION "V" + text + "\r", SERIAL, STATUS "F%02X\r", FRAME with
   a timestamp when has_timestamp). Returns the length, -1 for a kind the side does not send
   or a bad value. */
int slcan_encode(slcan_side_t side, const slcan_item_t *item, char *buf, size_t n);

/* "Sn" codes: 0 10k, 1 20k, 2 50k, 3 100k, 4 125k, 5 250k, 6 500k, 7 800k, 8 1M.
   bitrate_code returns -1 for a rate without a code; bitrate_bps returns 0 for a bad code. */
int slcan_bitrate_code(uint32_t bps);
uint32_t slcan_bitrate_bps(int code);

const char *slcan_kind_name(slcan_kind_t k); /* "frame", "ok", ... for messages and logs */

#ifdef __cplusplus
}
#endif

#endif
