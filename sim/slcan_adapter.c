/* slcan_adapter.c - adapter side of slcan: command answers, transmit acks, bus frames to
 * the host while open. */
#include "slcan_adapter.h"

#include <stdlib.h>
#include <string.h>

#include "slcan.h"

#define S_BUS_BPS 250000u /* the BIC-2200 bus */

struct slcan_adapter_t {
    slcan_parser_t *parser;
    bool open;
    bool listen_only;
    bool timestamps;
    uint32_t bitrate; /* bps, 0 = not set */
    uint8_t out[SLCAN_ADAPTER_OUT_MAX];
    size_t nout;
    slcan_adapter_stats_t st;
};

slcan_adapter_t *slcan_adapter_new(void)
{
    slcan_adapter_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->parser = slcan_parser_new(SLCAN_FROM_HOST);
    if (!a->parser) {
        free(a);
        return NULL;
    }
    return a;
}

void slcan_adapter_destroy(slcan_adapter_t **p)
{
    if (!p || !*p)
        return;
    slcan_parser_destroy(&(*p)->parser);
    free(*p);
    *p = NULL;
}

static int s_put(slcan_adapter_t *a, const char *s, size_t n)
{
    if (a->nout + n > sizeof a->out)
        return -1;
    memcpy(a->out + a->nout, s, n);
    a->nout += n;
    return 0;
}

static void s_answer(slcan_adapter_t *a, slcan_kind_t kind, const char *text, uint32_t value,
                     bool ext)
{
    slcan_item_t it;
    memset(&it, 0, sizeof it);
    it.kind = kind;
    it.value = value;
    it.frame.ext = ext;
    if (text)
        strncpy(it.text, text, sizeof it.text - 1);
    char buf[SLCAN_ENCODE_MAX + 8];
    int n = slcan_encode(SLCAN_FROM_ADAPTER, &it, buf, sizeof buf);
    if (n > 0)
        s_put(a, buf, (size_t)n);
    if (kind == SLCAN_ERROR)
        a->st.bel_sent++;
}

static void s_ok(slcan_adapter_t *a)
{
    a->st.commands++;
    s_answer(a, SLCAN_OK, NULL, 0, false);
}

static void s_bel(slcan_adapter_t *a)
{
    s_answer(a, SLCAN_ERROR, NULL, 0, false);
}

static void s_item(slcan_adapter_t *a, const slcan_item_t *it, slcan_adapter_frame_fn fn, void *arg)
{
    switch (it->kind) {
    case SLCAN_FRAME:
        if (!a->open || a->listen_only) {
            a->st.not_open++;
            s_bel(a);
            return;
        }
        s_answer(a, SLCAN_TX_OK, NULL, 0, it->frame.ext);
        a->st.frames_from_host++;
        /* At a foreign bit rate nothing on the bus can decode the frame. */
        if (a->bitrate != 0 && a->bitrate != S_BUS_BPS) {
            a->st.bitrate_mismatch++;
            return;
        }
        if (fn)
            fn(arg, &it->frame);
        return;
    case SLCAN_OPEN:
    case SLCAN_LISTEN:
        if (a->open) {
            s_bel(a);
            return;
        }
        a->open = true;
        a->listen_only = it->kind == SLCAN_LISTEN;
        s_ok(a);
        return;
    case SLCAN_CLOSE:
        /* Answered with CR even when already closed, as common firmware does: hosts send
         * C first to get a known state. */
        a->open = false;
        a->listen_only = false;
        s_ok(a);
        return;
    case SLCAN_BITRATE: {
        uint32_t bps = slcan_bitrate_bps((int)it->value);
        if (a->open || bps == 0) {
            s_bel(a);
            return;
        }
        a->bitrate = bps;
        s_ok(a);
        return;
    }
    case SLCAN_BTR:
        if (a->open) {
            s_bel(a);
            return;
        }
        a->bitrate = 0; /* custom timing: assume the host knows the bus */
        s_ok(a);
        return;
    case SLCAN_TIMESTAMP:
        if (a->open) {
            s_bel(a);
            return;
        }
        a->timestamps = it->value != 0;
        s_ok(a);
        return;
    case SLCAN_ACCEPT:
        s_ok(a);
        return;
    case SLCAN_VERSION:
        a->st.commands++;
        s_answer(a, SLCAN_VERSION, "1013", 0, false);
        return;
    case SLCAN_FW_VERSION:
        a->st.commands++;
        s_answer(a, SLCAN_FW_VERSION, "1013", 0, false);
        return;
    case SLCAN_SERIAL:
        a->st.commands++;
        s_answer(a, SLCAN_SERIAL, "SIM0", 0, false);
        return;
    case SLCAN_STATUS:
        a->st.commands++;
        s_answer(a, SLCAN_STATUS, NULL, 0, false);
        return;
    case SLCAN_GARBAGE:
        a->st.garbage++;
        s_bel(a);
        return;
    case SLCAN_OVERLONG:
        a->st.overlong++;
        s_bel(a);
        return;
    default:
        s_bel(a);
        return;
    }
}

void slcan_adapter_feed(slcan_adapter_t *a, const uint8_t *buf, size_t len, uint16_t ts_ms,
                        slcan_adapter_frame_fn fn, void *arg)
{
    (void)ts_ms;
    size_t off = 0;
    while (off < len) {
        slcan_item_t it;
        size_t used = 0;
        if (slcan_parse(a->parser, buf + off, len - off, &it, &used) == 1)
            s_item(a, &it, fn, arg);
        if (used == 0)
            break;
        off += used;
    }
}

int slcan_adapter_bus_frame(slcan_adapter_t *a, const can_frame_t *fr, uint16_t ts_ms)
{
    if (!a->open)
        return 0;
    char buf[SLCAN_ENCODE_MAX + 8];
    int n = a->timestamps ? slcan_encode_frame_ts(fr, ts_ms % 60000, buf, sizeof buf)
                          : slcan_encode_frame(fr, buf, sizeof buf);
    if (n <= 0 || s_put(a, buf, (size_t)n) != 0) {
        a->st.out_dropped++;
        return -1;
    }
    a->st.frames_to_host++;
    return 1;
}

const uint8_t *slcan_adapter_output(const slcan_adapter_t *a, size_t *len)
{
    *len = a->nout;
    return a->out;
}

void slcan_adapter_consume(slcan_adapter_t *a, size_t n)
{
    if (n >= a->nout) {
        a->nout = 0;
        return;
    }
    memmove(a->out, a->out + n, a->nout - n);
    a->nout -= n;
}

void slcan_adapter_reset(slcan_adapter_t *a)
{
    a->open = false;
    a->listen_only = false;
    a->nout = 0;
    slcan_parser_reset(a->parser);
}

bool slcan_adapter_is_open(const slcan_adapter_t *a)
{
    return a->open;
}

uint32_t slcan_adapter_bitrate(const slcan_adapter_t *a)
{
    return a->bitrate;
}

void slcan_adapter_stats(const slcan_adapter_t *a, slcan_adapter_stats_t *out)
{
    *out = a->st;
}
