/*  slcan.c - LAWICEL / slcan line codec and stream reassembler (see slcan.h).

    The reassembler keeps at most one partial line (SLCAN_LINE_MAX bytes); anything longer is
    dropped up to the next CR and counted, so a peer that sends noise can neither grow memory
    nor wedge the parser.
*/
#include "slcan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct slcan_parser {
    slcan_side_t side;
    char line[SLCAN_LINE_MAX + 1];
    size_t n;      /* bytes in line */
    bool overlong; /* dropping bytes up to the next CR */
    slcan_stats_t stats;
};

slcan_parser_t *slcan_parser_new(slcan_side_t side)
{
    if (side != SLCAN_FROM_ADAPTER && side != SLCAN_FROM_HOST)
        return NULL;
    slcan_parser_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->side = side;
    return p;
}

void slcan_parser_destroy(slcan_parser_t **pp)
{
    if (!pp || !*pp)
        return;
    free(*pp);
    *pp = NULL;
}

void slcan_parser_reset(slcan_parser_t *p)
{
    if (!p)
        return;
    p->n = 0;
    p->overlong = false;
}

void slcan_parser_stats(const slcan_parser_t *p, slcan_stats_t *ret_stats)
{
    if (!p || !ret_stats)
        return;
    *ret_stats = p->stats;
}

/* ------------------------------------------------------------------------------------- */

static int s_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* n hex digits at s into *out; false if any is not hex. */
static bool s_hex(const char *s, size_t n, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int h = s_hexval(s[i]);
        if (h < 0)
            return false;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return true;
}

/* A frame line: T/t/R/r. Timestamps (4 hex digits after the data) only from an adapter. */
static bool s_parse_frame(const char *l, size_t n, bool allow_ts, slcan_item_t *it)
{
    char t = l[0];
    bool ext = t == 'T' || t == 'R';
    bool rtr = t == 'R' || t == 'r';
    size_t idlen = ext ? 8 : 3;
    if (n < 1 + idlen + 1)
        return false;
    uint32_t id;
    if (!s_hex(l + 1, idlen, &id))
        return false;
    if (id > (ext ? CAN_FRAME_EXT_MAX : CAN_FRAME_STD_MAX))
        return false;
    char d = l[1 + idlen];
    if (d < '0' || d > '8')
        return false;
    uint8_t dlc = (uint8_t)(d - '0');
    size_t pos = 1 + idlen + 1;
    size_t datalen = rtr ? 0 : 2u * dlc;
    if (n < pos + datalen)
        return false;
    memset(&it->frame, 0, sizeof it->frame);
    for (size_t i = 0; i < datalen / 2; i++) {
        uint32_t b;
        if (!s_hex(l + pos + 2 * i, 2, &b))
            return false;
        it->frame.data[i] = (uint8_t)b;
    }
    pos += datalen;
    size_t rest = n - pos;
    if (rest == 4 && allow_ts) {
        uint32_t ts;
        if (!s_hex(l + pos, 4, &ts))
            return false;
        it->has_timestamp = true;
        it->timestamp = (uint16_t)ts;
    } else if (rest != 0) {
        return false;
    }
    it->kind = SLCAN_FRAME;
    it->frame.id = id;
    it->frame.ext = ext;
    it->frame.rtr = rtr;
    it->frame.dlc = dlc;
    return true;
}

static void s_set_text(slcan_item_t *it, const char *s, size_t n)
{
    if (n > SLCAN_LINE_MAX)
        n = SLCAN_LINE_MAX;
    memcpy(it->text, s, n);
    it->text[n] = '\0';
}

static bool s_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7E)
            return false;
    return true;
}

static bool s_parse_from_adapter(const char *l, size_t n, slcan_item_t *it)
{
    uint32_t v;
    switch (l[0]) {
    case 'T':
    case 't':
    case 'R':
    case 'r':
        return s_parse_frame(l, n, true, it);
    case 'z':
    case 'Z':
        if (n != 1)
            return false;
        it->kind = SLCAN_TX_OK;
        it->frame.ext = l[0] == 'Z';
        return true;
    case 'V':
    case 'v':
    case 'N':
        if (n < 2 || !s_printable(l + 1, n - 1))
            return false;
        it->kind = l[0] == 'V' ? SLCAN_VERSION : l[0] == 'v' ? SLCAN_FW_VERSION : SLCAN_SERIAL;
        s_set_text(it, l + 1, n - 1);
        return true;
    case 'F':
        if (n != 3 || !s_hex(l + 1, 2, &v))
            return false;
        it->kind = SLCAN_STATUS;
        it->value = v;
        return true;
    default:
        return false;
    }
}

static bool s_parse_from_host(const char *l, size_t n, slcan_item_t *it)
{
    uint32_t v;
    switch (l[0]) {
    case 'T':
    case 't':
    case 'R':
    case 'r':
        return s_parse_frame(l, n, false, it);
    case 'O':
    case 'L':
    case 'C':
    case 'V':
    case 'v':
    case 'N':
    case 'F':
        if (n != 1)
            return false;
        it->kind = l[0] == 'O'   ? SLCAN_OPEN
                   : l[0] == 'L' ? SLCAN_LISTEN
                   : l[0] == 'C' ? SLCAN_CLOSE
                   : l[0] == 'V' ? SLCAN_VERSION
                   : l[0] == 'v' ? SLCAN_FW_VERSION
                   : l[0] == 'N' ? SLCAN_SERIAL
                                 : SLCAN_STATUS;
        return true;
    case 'S':
        if (n != 2 || l[1] < '0' || l[1] > '8')
            return false;
        it->kind = SLCAN_BITRATE;
        it->value = (uint32_t)(l[1] - '0');
        return true;
    case 's':
        if (n != 5 || !s_hex(l + 1, 4, &v))
            return false;
        it->kind = SLCAN_BTR;
        it->value = v;
        return true;
    case 'Z':
        if (n != 2 || (l[1] != '0' && l[1] != '1'))
            return false;
        it->kind = SLCAN_TIMESTAMP;
        it->value = (uint32_t)(l[1] - '0');
        return true;
    case 'M':
    case 'm':
        if (n != 9 || !s_hex(l + 1, 8, &v))
            return false;
        it->kind = SLCAN_ACCEPT;
        it->value = v;
        s_set_text(it, l, 1);
        return true;
    default:
        return false;
    }
}

/* A complete line (without CR) into an item; invalid lines become SLCAN_GARBAGE. */
static void s_finish_line(slcan_parser_t *p, slcan_item_t *it)
{
    bool ok = p->side == SLCAN_FROM_ADAPTER ? s_parse_from_adapter(p->line, p->n, it)
                                            : s_parse_from_host(p->line, p->n, it);
    if (!ok) {
        memset(it, 0, sizeof *it);
        it->kind = SLCAN_GARBAGE;
        /* Keep a printable trace of the line for messages. */
        size_t m = p->n > SLCAN_LINE_MAX ? SLCAN_LINE_MAX : p->n;
        for (size_t i = 0; i < m; i++) {
            char c = p->line[i];
            it->text[i] = (c >= 0x20 && c <= 0x7E) ? c : '?';
        }
        it->text[m] = '\0';
        p->stats.garbage++;
    } else if (it->kind == SLCAN_FRAME) {
        p->stats.frames++;
    }
}

int slcan_parse(slcan_parser_t *p, const uint8_t *buf, size_t len, slcan_item_t *ret_item,
                size_t *ret_used)
{
    size_t i = 0;
    if (ret_used)
        *ret_used = 0;
    if (!p || !ret_item || (!buf && len))
        return 0;
    for (; i < len; i++) {
        uint8_t b = buf[i];
        if (b == '\r') {
            memset(ret_item, 0, sizeof *ret_item);
            if (p->overlong) {
                p->overlong = false;
                p->n = 0;
                p->stats.lines++;
                p->stats.overlong++;
                ret_item->kind = SLCAN_OVERLONG;
                goto emit;
            }
            if (p->n == 0) {
                if (p->side == SLCAN_FROM_HOST)
                    continue; /* hosts send bare CRs to flush the adapter's line buffer */
                p->stats.lines++;
                ret_item->kind = SLCAN_OK;
                goto emit;
            }
            p->stats.lines++;
            s_finish_line(p, ret_item);
            p->n = 0;
            goto emit;
        }
        if (b == 0x07 && p->side == SLCAN_FROM_ADAPTER) {
            /* BEL ends whatever was pending: a partial line before it is garbage. */
            if (p->n > 0 || p->overlong)
                p->stats.garbage++;
            p->n = 0;
            p->overlong = false;
            p->stats.lines++;
            p->stats.errors++;
            memset(ret_item, 0, sizeof *ret_item);
            ret_item->kind = SLCAN_ERROR;
            goto emit;
        }
        if ((b == '\n' || b == '\0') && p->n == 0 && !p->overlong)
            continue;
        if (p->overlong)
            continue;
        if (p->n >= SLCAN_LINE_MAX) {
            p->overlong = true;
            p->n = 0;
            continue;
        }
        p->line[p->n++] = (char)b;
    }
    if (ret_used)
        *ret_used = len;
    return 0;
emit:
    if (ret_used)
        *ret_used = i + 1;
    return 1;
}

/* ------------------------------------------------------------------------------------- */
/* Encoding                                                                               */

/* value as ndigits upper-case hex digits at buf */
static size_t s_put_hex(char *buf, uint32_t value, int ndigits)
{
    static const char digits[] = "0123456789ABCDEF";
    for (int i = ndigits - 1; i >= 0; i--) {
        buf[i] = digits[value & 0xF];
        value >>= 4;
    }
    return (size_t)ndigits;
}

/* The frame's line, written digit by digit (it is encoded for every frame on the bus). */
static int s_encode_frame(const can_frame_t *fr, bool ts, uint16_t timestamp, char *buf, size_t n)
{
    if (!fr || !buf || n < SLCAN_ENCODE_MAX || fr->dlc > 8)
        return -1;
    if (fr->id > (fr->ext ? CAN_FRAME_EXT_MAX : CAN_FRAME_STD_MAX))
        return -1;
    size_t len = 0;
    buf[len++] = fr->ext ? (fr->rtr ? 'R' : 'T') : (fr->rtr ? 'r' : 't');
    len += s_put_hex(buf + len, fr->id, fr->ext ? 8 : 3);
    buf[len++] = (char)('0' + fr->dlc);
    if (!fr->rtr)
        for (unsigned i = 0; i < fr->dlc; i++)
            len += s_put_hex(buf + len, fr->data[i], 2);
    if (ts)
        len += s_put_hex(buf + len, timestamp, 4);
    buf[len++] = '\r';
    buf[len] = '\0';
    return (int)len;
}

int slcan_encode_frame(const can_frame_t *fr, char *buf, size_t n)
{
    return s_encode_frame(fr, false, 0, buf, n);
}

int slcan_encode_frame_ts(const can_frame_t *fr, uint16_t timestamp, char *buf, size_t n)
{
    return s_encode_frame(fr, true, timestamp, buf, n);
}

/* A text payload must be printable and short enough for one line. */
static bool s_text_ok(const char *s)
{
    size_t n = strnlen(s, SLCAN_LINE_MAX + 1);
    return n >= 1 && n < SLCAN_LINE_MAX && s_printable(s, n);
}

int slcan_encode(slcan_side_t side, const slcan_item_t *it, char *buf, size_t n)
{
    if (!it || !buf || n < SLCAN_ENCODE_MAX)
        return -1;
    if (it->kind == SLCAN_FRAME)
        return (side == SLCAN_FROM_ADAPTER && it->has_timestamp)
                   ? s_encode_frame(&it->frame, true, it->timestamp, buf, n)
                   : s_encode_frame(&it->frame, false, 0, buf, n);
    if (side == SLCAN_FROM_HOST) {
        switch (it->kind) {
        case SLCAN_OPEN:
            return snprintf(buf, n, "O\r");
        case SLCAN_LISTEN:
            return snprintf(buf, n, "L\r");
        case SLCAN_CLOSE:
            return snprintf(buf, n, "C\r");
        case SLCAN_VERSION:
            return snprintf(buf, n, "V\r");
        case SLCAN_FW_VERSION:
            return snprintf(buf, n, "v\r");
        case SLCAN_SERIAL:
            return snprintf(buf, n, "N\r");
        case SLCAN_STATUS:
            return snprintf(buf, n, "F\r");
        case SLCAN_BITRATE:
            return it->value <= 8 ? snprintf(buf, n, "S%u\r", (unsigned)it->value) : -1;
        case SLCAN_BTR:
            return it->value <= 0xFFFF ? snprintf(buf, n, "s%04X\r", (unsigned)it->value) : -1;
        case SLCAN_TIMESTAMP:
            return it->value <= 1 ? snprintf(buf, n, "Z%u\r", (unsigned)it->value) : -1;
        case SLCAN_ACCEPT:
            return snprintf(buf, n, "%c%08X\r", it->text[0] == 'm' ? 'm' : 'M',
                            (unsigned)it->value);
        default:
            return -1;
        }
    }
    if (side != SLCAN_FROM_ADAPTER)
        return -1;
    switch (it->kind) {
    case SLCAN_OK:
        return snprintf(buf, n, "\r");
    case SLCAN_ERROR:
        return snprintf(buf, n, "\a");
    case SLCAN_TX_OK:
        return snprintf(buf, n, "%c\r", it->frame.ext ? 'Z' : 'z');
    case SLCAN_VERSION:
    case SLCAN_FW_VERSION:
    case SLCAN_SERIAL:
        if (!s_text_ok(it->text))
            return -1;
        return snprintf(buf, n, "%c%s\r",
                        it->kind == SLCAN_VERSION  ? 'V'
                        : it->kind == SLCAN_SERIAL ? 'N'
                                                   : 'v',
                        it->text);
    case SLCAN_STATUS:
        return it->value <= 0xFF ? snprintf(buf, n, "F%02X\r", (unsigned)it->value) : -1;
    default:
        return -1;
    }
}

static const uint32_t s_rates[] = {10000,  20000,  50000,  100000, 125000,
                                   250000, 500000, 800000, 1000000};

int slcan_bitrate_code(uint32_t bps)
{
    for (int i = 0; i < 9; i++)
        if (s_rates[i] == bps)
            return i;
    return -1;
}

uint32_t slcan_bitrate_bps(int code)
{
    return (code >= 0 && code <= 8) ? s_rates[code] : 0;
}

const char *slcan_kind_name(slcan_kind_t k)
{
    switch (k) {
    case SLCAN_NONE:
        return "none";
    case SLCAN_FRAME:
        return "frame";
    case SLCAN_OK:
        return "ok";
    case SLCAN_TX_OK:
        return "tx_ok";
    case SLCAN_ERROR:
        return "error";
    case SLCAN_OPEN:
        return "open";
    case SLCAN_LISTEN:
        return "listen";
    case SLCAN_CLOSE:
        return "close";
    case SLCAN_BITRATE:
        return "bitrate";
    case SLCAN_BTR:
        return "btr";
    case SLCAN_VERSION:
        return "version";
    case SLCAN_FW_VERSION:
        return "fw_version";
    case SLCAN_SERIAL:
        return "serial";
    case SLCAN_STATUS:
        return "status";
    case SLCAN_TIMESTAMP:
        return "timestamp";
    case SLCAN_ACCEPT:
        return "accept";
    case SLCAN_GARBAGE:
        return "garbage";
    case SLCAN_OVERLONG:
        return "overlong";
    }
    return "unknown";
}
