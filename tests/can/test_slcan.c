/*  test_slcan.c - the slcan codec: encoding frames and commands, parsing both sides'
    lines, partial reads byte by byte, garbage and overlong lines with resynchronisation, BEL.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "slcan.h"

#define MAXITEMS 64

/* Feed a whole string in chunks of `chunk` bytes; collect items. */
static int feed(slcan_parser_t *p, const char *s, size_t len, size_t chunk, slcan_item_t *items,
                int max)
{
    int n = 0;
    for (size_t off = 0; off < len;) {
        size_t c = len - off < chunk ? len - off : chunk;
        size_t coff = 0;
        while (coff < c) {
            size_t used = 0;
            slcan_item_t it;
            int r = slcan_parse(p, (const uint8_t *)s + off + coff, c - coff, &it, &used);
            assert_true(used > 0);
            coff += used;
            if (r) {
                assert_true(n < max);
                items[n++] = it;
            }
        }
        off += c;
    }
    return n;
}

static int feed_str(slcan_parser_t *p, const char *s, slcan_item_t *items, int max)
{
    return feed(p, s, strlen(s), strlen(s) ? strlen(s) : 1, items, max);
}

static void test_encode_frames(void **state)
{
    (void)state;
    char buf[SLCAN_ENCODE_MAX];
    can_frame_t fr = {.id = 0x000C0300, .ext = true, .dlc = 4, .data = {0x20, 0x00, 0xB8, 0x0B}};
    assert_int_equal(slcan_encode_frame(&fr, buf, sizeof buf), 19);
    assert_string_equal(buf, "T000C030042000B80B\r");
    fr = (can_frame_t){.id = 0x123, .ext = false, .dlc = 2, .data = {0xAB, 0xCD}};
    assert_int_equal(slcan_encode_frame(&fr, buf, sizeof buf), 10);
    assert_string_equal(buf, "t1232ABCD\r");
    fr = (can_frame_t){.id = 0x1FFFFFFF, .ext = true, .rtr = true, .dlc = 8};
    slcan_encode_frame(&fr, buf, sizeof buf);
    assert_string_equal(buf, "R1FFFFFFF8\r");
    fr = (can_frame_t){.id = 0x7FF, .rtr = true, .dlc = 0};
    slcan_encode_frame(&fr, buf, sizeof buf);
    assert_string_equal(buf, "r7FF0\r");
    fr = (can_frame_t){.id = 0x000C0200, .ext = true, .dlc = 8, .data = {1, 2, 3, 4, 5, 6, 7, 8}};
    assert_int_equal(slcan_encode_frame_ts(&fr, 0xEA5F, buf, sizeof buf), 31);
    assert_string_equal(buf, "T000C020080102030405060708EA5F\r");
    /* invalid frames and small buffers */
    fr = (can_frame_t){.id = 0x800, .dlc = 0};
    assert_int_equal(slcan_encode_frame(&fr, buf, sizeof buf), -1);
    fr = (can_frame_t){.id = 0x20000000, .ext = true};
    assert_int_equal(slcan_encode_frame(&fr, buf, sizeof buf), -1);
    fr = (can_frame_t){.id = 1, .ext = true, .dlc = 9};
    assert_int_equal(slcan_encode_frame(&fr, buf, sizeof buf), -1);
    fr = (can_frame_t){.id = 1, .ext = true, .dlc = 1};
    assert_int_equal(slcan_encode_frame(&fr, buf, 8), -1);
}

static void test_encode_commands(void **state)
{
    (void)state;
    char buf[SLCAN_ENCODE_MAX];
    slcan_item_t it = {.kind = SLCAN_BITRATE, .value = 5};
    assert_int_equal(slcan_encode(SLCAN_FROM_HOST, &it, buf, sizeof buf), 3);
    assert_string_equal(buf, "S5\r");
    it.value = 9;
    assert_int_equal(slcan_encode(SLCAN_FROM_HOST, &it, buf, sizeof buf), -1);
    it = (slcan_item_t){.kind = SLCAN_OPEN};
    slcan_encode(SLCAN_FROM_HOST, &it, buf, sizeof buf);
    assert_string_equal(buf, "O\r");
    it.kind = SLCAN_CLOSE;
    slcan_encode(SLCAN_FROM_HOST, &it, buf, sizeof buf);
    assert_string_equal(buf, "C\r");
    it.kind = SLCAN_VERSION;
    slcan_encode(SLCAN_FROM_HOST, &it, buf, sizeof buf);
    assert_string_equal(buf, "V\r");
    it.kind = SLCAN_STATUS;
    slcan_encode(SLCAN_FROM_HOST, &it, buf, sizeof buf);
    assert_string_equal(buf, "F\r");
    it = (slcan_item_t){.kind = SLCAN_OK};
    assert_int_equal(slcan_encode(SLCAN_FROM_HOST, &it, buf, sizeof buf), -1);
    /* adapter answers */
    assert_int_equal(slcan_encode(SLCAN_FROM_ADAPTER, &it, buf, sizeof buf), 1);
    assert_string_equal(buf, "\r");
    it.kind = SLCAN_ERROR;
    slcan_encode(SLCAN_FROM_ADAPTER, &it, buf, sizeof buf);
    assert_string_equal(buf, "\a");
    it.kind = SLCAN_TX_OK;
    it.frame.ext = true;
    slcan_encode(SLCAN_FROM_ADAPTER, &it, buf, sizeof buf);
    assert_string_equal(buf, "Z\r");
    it.frame.ext = false;
    slcan_encode(SLCAN_FROM_ADAPTER, &it, buf, sizeof buf);
    assert_string_equal(buf, "z\r");
    it = (slcan_item_t){.kind = SLCAN_VERSION, .text = "1013"};
    slcan_encode(SLCAN_FROM_ADAPTER, &it, buf, sizeof buf);
    assert_string_equal(buf, "V1013\r");
    it = (slcan_item_t){.kind = SLCAN_VERSION, .text = "bad\r"};
    assert_int_equal(slcan_encode(SLCAN_FROM_ADAPTER, &it, buf, sizeof buf), -1);
    it = (slcan_item_t){.kind = SLCAN_STATUS, .value = 0x08};
    slcan_encode(SLCAN_FROM_ADAPTER, &it, buf, sizeof buf);
    assert_string_equal(buf, "F08\r");
    it = (slcan_item_t){.kind = SLCAN_OPEN};
    assert_int_equal(slcan_encode(SLCAN_FROM_ADAPTER, &it, buf, sizeof buf), -1);

    assert_int_equal(slcan_bitrate_code(250000), 5);
    assert_int_equal(slcan_bitrate_code(1000000), 8);
    assert_int_equal(slcan_bitrate_code(10000), 0);
    assert_int_equal(slcan_bitrate_code(250001), -1);
    assert_int_equal(slcan_bitrate_bps(5), 250000);
    assert_int_equal(slcan_bitrate_bps(9), 0);
    assert_int_equal(slcan_bitrate_bps(-1), 0);
    assert_string_equal(slcan_kind_name(SLCAN_OVERLONG), "overlong");
}

static void test_parse_from_adapter(void **state)
{
    (void)state;
    slcan_parser_t *p = slcan_parser_new(SLCAN_FROM_ADAPTER);
    assert_non_null(p);
    slcan_item_t it[MAXITEMS];
    int n =
        feed_str(p, "T000C02013000001\rZ\r\r\aV1013\rF00\rT000C020042000B80B1234\r", it, MAXITEMS);
    assert_int_equal(n, 7);
    assert_int_equal(it[0].kind, SLCAN_FRAME);
    assert_int_equal(it[0].frame.id, 0x000C0201);
    assert_true(it[0].frame.ext);
    assert_int_equal(it[0].frame.dlc, 3);
    assert_memory_equal(it[0].frame.data, "\x00\x00\x01", 3);
    assert_false(it[0].has_timestamp);
    assert_int_equal(it[1].kind, SLCAN_TX_OK);
    assert_true(it[1].frame.ext);
    assert_int_equal(it[2].kind, SLCAN_OK);
    assert_int_equal(it[3].kind, SLCAN_ERROR);
    assert_int_equal(it[4].kind, SLCAN_VERSION);
    assert_string_equal(it[4].text, "1013");
    assert_int_equal(it[5].kind, SLCAN_STATUS);
    assert_int_equal(it[5].value, 0);
    assert_int_equal(it[6].kind, SLCAN_FRAME);
    assert_true(it[6].has_timestamp);
    assert_int_equal(it[6].timestamp, 0x1234);
    assert_memory_equal(it[6].frame.data, "\x20\x00\xB8\x0B", 4);
    slcan_stats_t st;
    slcan_parser_stats(p, &st);
    assert_int_equal(st.frames, 2);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.garbage, 0);
    /* standard and RTR frames parse too (the transport filters them later) */
    n = feed_str(p, "t1232ABCD\rR000C02004\rr1230\r", it, MAXITEMS);
    assert_int_equal(n, 3);
    assert_false(it[0].frame.ext);
    assert_int_equal(it[0].frame.id, 0x123);
    assert_true(it[1].frame.rtr);
    assert_int_equal(it[1].frame.dlc, 4);
    assert_true(it[2].frame.rtr);
    assert_false(it[2].frame.ext);
    /* CR LF line ends from some adapters */
    n = feed_str(p, "T000C020020000\r\n\r\n", it, MAXITEMS);
    assert_int_equal(n, 2);
    assert_int_equal(it[0].kind, SLCAN_FRAME);
    assert_int_equal(it[1].kind, SLCAN_OK);
    slcan_parser_destroy(&p);
    assert_null(p);
    slcan_parser_destroy(&p);
}

/* Lower-case hex digits are accepted as the Linux slcan driver and the CANable/USBtin
   firmware accept them; the type letter keeps its meaning (t = standard). */
static void test_lowercase_hex(void **state)
{
    (void)state;
    slcan_parser_t *p = slcan_parser_new(SLCAN_FROM_ADAPTER);
    slcan_item_t it[4];
    int n = feed_str(p, "T000c02004c000abcd\r", it, 4);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].kind, SLCAN_FRAME);
    assert_int_equal(it[0].frame.id, 0x000C0200);
    assert_memory_equal(it[0].frame.data, "\xC0\x00\xAB\xCD", 4);
    slcan_parser_destroy(&p);
}

static void test_parse_from_host(void **state)
{
    (void)state;
    slcan_parser_t *p = slcan_parser_new(SLCAN_FROM_HOST);
    slcan_item_t it[MAXITEMS];
    int n = feed_str(p,
                     "\r\r\rC\rS5\rO\rV\rv\rN\rF\rZ1\rs031C\rM00000000\rL\r"
                     "T000C030042000B80B\r",
                     it, MAXITEMS);
    assert_int_equal(n, 12); /* bare CRs flush the adapter's buffer: no items */
    assert_int_equal(it[0].kind, SLCAN_CLOSE);
    assert_int_equal(it[1].kind, SLCAN_BITRATE);
    assert_int_equal(it[1].value, 5);
    assert_int_equal(it[2].kind, SLCAN_OPEN);
    assert_int_equal(it[3].kind, SLCAN_VERSION);
    assert_int_equal(it[4].kind, SLCAN_FW_VERSION);
    assert_int_equal(it[5].kind, SLCAN_SERIAL);
    assert_int_equal(it[6].kind, SLCAN_STATUS);
    assert_int_equal(it[7].kind, SLCAN_TIMESTAMP);
    assert_int_equal(it[7].value, 1);
    assert_int_equal(it[8].kind, SLCAN_BTR);
    assert_int_equal(it[8].value, 0x031C);
    assert_int_equal(it[9].kind, SLCAN_ACCEPT);
    assert_int_equal(it[10].kind, SLCAN_LISTEN);
    assert_int_equal(it[11].kind, SLCAN_FRAME);
    assert_int_equal(it[11].frame.id, 0x000C0300);
    slcan_parser_destroy(&p);
}

static void test_garbage_resync(void **state)
{
    (void)state;
    slcan_parser_t *p = slcan_parser_new(SLCAN_FROM_ADAPTER);
    slcan_item_t it[MAXITEMS];
    const char *lines[] = {
        "hello",           /* unknown type */
        "T000C02002000",   /* dlc 2 but 1 data byte */
        "T000C0200200000", /* one digit too many (not a 4-digit timestamp) */
        "T000C020X20000",  /* non-hex id */
        "T200000002000",   /* id beyond 29 bits */
        "T000C020092000",  /* dlc 9 */
        "t8002ABCD",       /* standard id beyond 11 bits */
        "T000C02",         /* truncated */
        "Zz",              /* ack with a tail */
        "F0",              /* short status */
        "T000C0200200GG",  /* non-hex data */
    };
    char stream[512] = "";
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        strcat(stream, lines[i]);
        strcat(stream, "\r");
    }
    strcat(stream, "T000C020020000\r"); /* a good frame after all that */
    int n = feed_str(p, stream, it, MAXITEMS);
    int nlines = (int)(sizeof lines / sizeof lines[0]);
    assert_int_equal(n, nlines + 1);
    for (int i = 0; i < nlines; i++)
        assert_int_equal(it[i].kind, SLCAN_GARBAGE);
    assert_string_equal(it[0].text, "hello");
    assert_int_equal(it[nlines].kind, SLCAN_FRAME);
    assert_int_equal(it[nlines].frame.id, 0x000C0200);
    slcan_stats_t st;
    slcan_parser_stats(p, &st);
    assert_int_equal(st.garbage, (uint64_t)nlines);
    assert_int_equal(st.frames, 1);

    /* binary noise with NULs and high bytes, then a frame */
    const uint8_t noise[] = {0xFF, 0x00, 0x80, 'T', 0x01, '\r', 'T', '0', '0', '0', 'C',
                             '0',  '2',  '0',  '0', '2',  '0',  '0', '0', '0', '\r'};
    size_t off = 0;
    int frames = 0, garbage = 0;
    while (off < sizeof noise) {
        size_t used;
        slcan_item_t x;
        if (slcan_parse(p, noise + off, sizeof noise - off, &x, &used)) {
            frames += x.kind == SLCAN_FRAME;
            garbage += x.kind == SLCAN_GARBAGE;
        }
        off += used;
    }
    assert_int_equal(frames, 1);
    assert_int_equal(garbage, 1);
    slcan_parser_destroy(&p);

    /* from host: a frame with a timestamp suffix is not valid host input */
    p = slcan_parser_new(SLCAN_FROM_HOST);
    n = feed_str(p, "T000C030020000ABCD\rS9\rO1\rZ2\rM0000\rX\r", it, MAXITEMS);
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++)
        assert_int_equal(it[i].kind, SLCAN_GARBAGE);
    slcan_parser_destroy(&p);
}

static void test_partial_reads(void **state)
{
    (void)state;
    const char *s = "T000C02013000001\rZ\r\aT000C020042000B80B\rgarbage\rV1013\r";
    for (size_t chunk = 1; chunk <= strlen(s); chunk++) {
        slcan_parser_t *p = slcan_parser_new(SLCAN_FROM_ADAPTER);
        slcan_item_t it[MAXITEMS];
        int n = feed(p, s, strlen(s), chunk, it, MAXITEMS);
        assert_int_equal(n, 6);
        assert_int_equal(it[0].kind, SLCAN_FRAME);
        assert_int_equal(it[0].frame.id, 0x000C0201);
        assert_int_equal(it[1].kind, SLCAN_TX_OK);
        assert_int_equal(it[2].kind, SLCAN_ERROR);
        assert_int_equal(it[3].kind, SLCAN_FRAME);
        assert_memory_equal(it[3].frame.data, "\x20\x00\xB8\x0B", 4);
        assert_int_equal(it[4].kind, SLCAN_GARBAGE);
        assert_int_equal(it[5].kind, SLCAN_VERSION);
        slcan_parser_destroy(&p);
    }
    /* a partial line stays pending until its CR; reset drops it */
    slcan_parser_t *p = slcan_parser_new(SLCAN_FROM_ADAPTER);
    slcan_item_t it[4];
    assert_int_equal(feed_str(p, "T000C0200", it, 4), 0);
    slcan_parser_reset(p);
    assert_int_equal(feed_str(p, "T000C020020000\r", it, 4), 1);
    assert_int_equal(it[0].kind, SLCAN_FRAME);
    slcan_parser_destroy(&p);
}

static void test_overlong_and_bel(void **state)
{
    (void)state;
    slcan_parser_t *p = slcan_parser_new(SLCAN_FROM_ADAPTER);
    slcan_item_t it[MAXITEMS];
    /* a line of exactly SLCAN_LINE_MAX characters is still parsed (timestamped DLC 8) */
    int n = feed_str(p, "T000C020080102030405060708EA5F\r", it, MAXITEMS);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].kind, SLCAN_FRAME);
    /* longer: dropped up to the CR, counted, next line fine */
    char big[2000];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char stream[2100];
    snprintf(stream, sizeof stream, "%s\rT000C0200200000%s", big, "\r");
    /* this T line is one digit too long: garbage, not a frame */
    n = feed_str(p, stream, it, MAXITEMS);
    assert_int_equal(n, 2);
    assert_int_equal(it[0].kind, SLCAN_OVERLONG);
    assert_int_equal(it[1].kind, SLCAN_GARBAGE);
    n = feed(p, big, strlen(big), 7, it, MAXITEMS);
    assert_int_equal(n, 0);
    n = feed_str(p, "\rT000C020020000\r", it, MAXITEMS);
    assert_int_equal(n, 2);
    assert_int_equal(it[0].kind, SLCAN_OVERLONG);
    assert_int_equal(it[1].kind, SLCAN_FRAME);
    /* BEL in the middle of a line ends it: the partial is garbage, BEL is an error */
    n = feed_str(p, "T000C02\aT000C020020000\r", it, MAXITEMS);
    assert_int_equal(n, 2);
    assert_int_equal(it[0].kind, SLCAN_ERROR);
    assert_int_equal(it[1].kind, SLCAN_FRAME);
    /* BEL during an overlong line ends it too */
    n = feed(p, big, 100, 100, it, MAXITEMS);
    assert_int_equal(n, 0);
    n = feed_str(p, "\a\a\r", it, MAXITEMS);
    assert_int_equal(n, 3);
    assert_int_equal(it[0].kind, SLCAN_ERROR);
    assert_int_equal(it[1].kind, SLCAN_ERROR);
    assert_int_equal(it[2].kind, SLCAN_OK);
    slcan_stats_t st;
    slcan_parser_stats(p, &st);
    assert_int_equal(st.overlong, 2);
    assert_int_equal(st.errors, 3);
    assert_int_equal(st.garbage, 3); /* the too-long T line, the cut line, the cut overlong */
    slcan_parser_destroy(&p);
}

static void test_round_trip(void **state)
{
    (void)state;
    /* every DLC, both id kinds, through the encoder and the other side's parser */
    slcan_parser_t *host = slcan_parser_new(SLCAN_FROM_HOST);
    slcan_parser_t *adapter = slcan_parser_new(SLCAN_FROM_ADAPTER);
    for (int ext = 0; ext <= 1; ext++) {
        for (uint8_t dlc = 0; dlc <= 8; dlc++) {
            can_frame_t fr = {
                .id = ext ? 0x1ABCDEF0u + dlc : 0x700u + dlc, .ext = ext != 0, .dlc = dlc};
            for (int i = 0; i < dlc; i++)
                fr.data[i] = (uint8_t)(0xF0 + i * 3);
            char buf[SLCAN_ENCODE_MAX];
            int len = slcan_encode_frame(&fr, buf, sizeof buf);
            assert_true(len > 0);
            slcan_item_t it[2];
            assert_int_equal(feed(host, buf, (size_t)len, 1, it, 2), 1);
            assert_int_equal(it[0].kind, SLCAN_FRAME);
            assert_int_equal(it[0].frame.id, fr.id);
            assert_int_equal(it[0].frame.ext, fr.ext);
            assert_int_equal(it[0].frame.dlc, dlc);
            assert_memory_equal(it[0].frame.data, fr.data, dlc);
            len = slcan_encode_frame_ts(&fr, 59999, buf, sizeof buf);
            assert_int_equal(feed(adapter, buf, (size_t)len, 3, it, 2), 1);
            assert_int_equal(it[0].frame.id, fr.id);
            assert_int_equal(it[0].timestamp, 59999);
        }
    }
    slcan_parser_destroy(&host);
    slcan_parser_destroy(&adapter);
    assert_null(slcan_parser_new((slcan_side_t)7));
}

/* Random bytes, biased towards slcan's alphabet: the parser never stalls, never yields an
   invalid frame, and the counters add up. Deterministic (fixed seed). */
static void test_random_input(void **state)
{
    (void)state;
    static const char alphabet[] = "TtRrZzVvNFOCS0123456789ABCDEFabcdef\r\r\r\a\n";
    uint32_t seed = 12345;
    for (int side = 0; side <= 1; side++) {
        slcan_parser_t *p = slcan_parser_new(side ? SLCAN_FROM_HOST : SLCAN_FROM_ADAPTER);
        uint8_t buf[4096];
        int items = 0;
        for (int round = 0; round < 50; round++) {
            for (size_t i = 0; i < sizeof buf; i++) {
                seed = seed * 1103515245u + 12345u;
                uint32_t r = seed >> 16;
                buf[i] =
                    (r & 7) == 0 ? (uint8_t)(r >> 3) : (uint8_t)alphabet[r % (sizeof alphabet - 1)];
            }
            size_t off = 0;
            while (off < sizeof buf) {
                size_t used = 0;
                slcan_item_t it;
                int r = slcan_parse(p, buf + off, sizeof buf - off, &it, &used);
                assert_true(used > 0 && used <= sizeof buf - off);
                off += used;
                if (!r)
                    continue;
                items++;
                assert_true(it.kind > SLCAN_NONE && it.kind <= SLCAN_OVERLONG);
                if (it.kind == SLCAN_FRAME) {
                    assert_true(it.frame.dlc <= 8);
                    assert_true(it.frame.id <=
                                (it.frame.ext ? CAN_FRAME_EXT_MAX : CAN_FRAME_STD_MAX));
                }
                assert_true(strlen(it.text) <= SLCAN_LINE_MAX);
            }
        }
        slcan_stats_t st;
        slcan_parser_stats(p, &st);
        assert_true(items > 0);
        assert_true(st.garbage > 0);
        assert_true(st.frames + st.garbage + st.overlong <= st.lines);
        slcan_parser_destroy(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_frames),      cmocka_unit_test(test_encode_commands),
        cmocka_unit_test(test_parse_from_adapter), cmocka_unit_test(test_lowercase_hex),
        cmocka_unit_test(test_parse_from_host),    cmocka_unit_test(test_garbage_resync),
        cmocka_unit_test(test_partial_reads),      cmocka_unit_test(test_overlong_and_bel),
        cmocka_unit_test(test_round_trip),         cmocka_unit_test(test_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
