/*
 * Fuzz harness: slcan byte streams (can/slcan.h), both sides, and the simulator's adapter
 * (sim/slcan_adapter.h) that answers a host.
 *
 * The first byte picks the chunk size the stream is fed in (read() may return any
 * chunking); the rest is the stream. Both parsers (host side: lines from an adapter;
 * adapter side: lines from a host) must consume every byte, and every frame they report
 * must survive an encode/parse round trip unchanged. The adapter model gets the same bytes
 * and must keep its output bounded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slcan.h"
#include "slcan_adapter.h"

static bool s_same_frame(const can_frame_t *a, const can_frame_t *b)
{
    if (a->id != b->id || a->ext != b->ext || a->rtr != b->rtr || a->dlc != b->dlc)
        return false;
    return a->rtr || memcmp(a->data, b->data, a->dlc) == 0;
}

static void s_round_trip(slcan_side_t side, const slcan_item_t *it)
{
    char line[SLCAN_ENCODE_MAX];
    int n = slcan_encode(side, it, line, sizeof line);
    if (n <= 0) {
        fprintf(stderr, "a parsed frame does not encode again (side %d)\n", (int)side);
        abort();
    }
    slcan_parser_t *p = slcan_parser_new(side);
    if (!p)
        return;
    slcan_item_t back;
    size_t used = 0;
    int got = slcan_parse(p, (const uint8_t *)line, (size_t)n, &back, &used);
    if (got != 1 || back.kind != SLCAN_FRAME || !s_same_frame(&it->frame, &back.frame) ||
        (side == SLCAN_FROM_ADAPTER && (back.has_timestamp != it->has_timestamp ||
                                        (it->has_timestamp && back.timestamp != it->timestamp)))) {
        fprintf(stderr, "frame changed in an encode/parse round trip: '%.*s'\n", n - 1, line);
        abort();
    }
    slcan_parser_destroy(&p);
}

static void s_parse_stream(slcan_side_t side, const uint8_t *buf, size_t len, size_t chunk)
{
    slcan_parser_t *p = slcan_parser_new(side);
    if (!p)
        return;
    uint64_t frames = 0;
    for (size_t start = 0; start < len; start += chunk) {
        size_t end = start + chunk < len ? start + chunk : len;
        size_t off = start;
        while (off < end) {
            slcan_item_t it;
            size_t used = 0;
            int got = slcan_parse(p, buf + off, end - off, &it, &used);
            if (used == 0 || used > end - off) {
                fprintf(stderr, "slcan_parse consumed %zu of %zu bytes\n", used, end - off);
                abort();
            }
            off += used;
            if (got == 1 && it.kind == SLCAN_FRAME) {
                frames++;
                if (it.frame.dlc > 8 || (it.frame.ext ? it.frame.id > CAN_FRAME_EXT_MAX
                                                      : it.frame.id > CAN_FRAME_STD_MAX)) {
                    fprintf(stderr, "parsed an impossible frame\n");
                    abort();
                }
                s_round_trip(side, &it);
            }
            if (got == 1)
                (void)slcan_kind_name(it.kind);
        }
    }
    slcan_stats_t st;
    slcan_parser_stats(p, &st);
    if (st.frames != frames) {
        fprintf(stderr, "stats count %llu frames, %llu were reported\n",
                (unsigned long long)st.frames, (unsigned long long)frames);
        abort();
    }
    slcan_parser_destroy(&p);
}

static void s_on_frame(void *arg, const can_frame_t *fr)
{
    (*(size_t *)arg)++;
    if (fr->dlc > 8)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)(data[0] % 40) + 1;
    const uint8_t *buf = data + 1;
    size_t len = size - 1;
    s_parse_stream(SLCAN_FROM_ADAPTER, buf, len, chunk);
    s_parse_stream(SLCAN_FROM_HOST, buf, len, chunk);

    slcan_adapter_t *a = slcan_adapter_new();
    if (!a)
        return 0;
    size_t sent = 0;
    for (size_t start = 0; start < len; start += chunk) {
        size_t n = start + chunk < len ? chunk : len - start;
        slcan_adapter_feed(a, buf + start, n, (uint16_t)(start % 60000), s_on_frame, &sent);
        /* a frame from the bus while the channel is whatever the host made it */
        can_frame_t fr = {.id = 0x000C0200, .ext = true, .dlc = 2, .data = {0x60, 0x00}};
        slcan_adapter_bus_frame(a, &fr, 0);
    }
    size_t out = 0;
    (void)slcan_adapter_output(a, &out);
    if (out > SLCAN_ADAPTER_OUT_MAX + SLCAN_ENCODE_MAX) {
        fprintf(stderr, "adapter output grew to %zu bytes\n", out);
        abort();
    }
    slcan_adapter_consume(a, out);
    slcan_adapter_destroy(&a);
    return 0;
}
