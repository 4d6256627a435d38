/* test_bic_device.c - the BIC-2200 model against docs/bic2200-protocol.md §16: reply framing
 * and silence, variants and defaults, firmware generations, EEPROM model and counters,
 * power cycles, range policy, CAN_CTRL/SVR, battery-mode physics, faults. */
#include "sim_test_util.h"

#include <math.h>
#include <stdio.h>

/* ---- framing (§16 items 1-6) ---- */

static void test_read_reply_exact_frame(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24", 0);
    can_frame_t req = t_frame(0x000C0300, 0x0020, 0, NULL), rep;
    assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 1);
    assert_true(rep.ext);
    assert_false(rep.rtr);
    assert_int_equal(rep.id, 0x000C0200);
    assert_int_equal(rep.dlc, 4);
    uint8_t want[] = {0x20, 0x00, 0x60, 0x09}; /* 24.00 V */
    assert_memory_equal(rep.data, want, 4);
    bic_device_destroy(&dev);
    assert_null(dev);
}

static void test_manual_examples(void **state)
{
    (void)state;
    /* Read OPERATION from unit 1: reply id 0x000C0201, DLC 3, 00 00 01. */
    bic_device_t *dev = t_device("1:48", 0);
    can_frame_t req = t_frame(0x000C0301, 0x0000, 0, NULL), rep;
    assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 1);
    assert_int_equal(rep.id, 0x000C0201);
    assert_int_equal(rep.dlc, 3);
    uint8_t op[] = {0x00, 0x00, 0x01};
    assert_memory_equal(rep.data, op, 3);
    /* IOUT_SET = 20 A is 30 00 D0 07; REVERSE_IOUT_SET as the positive magnitude 30 01 D0 07. */
    uint8_t d1[] = {0xD0, 0x07};
    req = t_frame(0x000C0301, 0x0030, 2, d1);
    assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 0);
    assert_int_equal(t_read(dev, 0x0030, 0), 2000);
    req = t_frame(0x000C0301, 0x0130, 2, d1);
    assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 0);
    assert_int_equal(t_read(dev, 0x0130, 0), 2000);
    bic_device_destroy(&dev);
}

static void test_reply_lengths(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24", 0);
    struct {
        uint16_t cmd;
        int dlc;
    } cases[] = {{0x0000, 3}, {0x0100, 3}, {0x0085, 5}, {0x0080, 8}, {0x0081, 8}, {0x0082, 8},
                 {0x0083, 8}, {0x0084, 8}, {0x0086, 8}, {0x0087, 8}, {0x0088, 8}, {0x00C0, 8},
                 {0x0020, 4}, {0x0030, 4}, {0x0040, 4}, {0x0050, 4}, {0x0060, 4}, {0x0061, 4},
                 {0x0062, 4}, {0x0070, 4}, {0x0071, 4}, {0x00C1, 4}, {0x00C2, 4}, {0x0120, 4},
                 {0x0130, 4}, {0x0140, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        can_frame_t req = t_frame(0x000C0300, cases[i].cmd, 0, NULL), rep;
        assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 1);
        if (rep.dlc != cases[i].dlc)
            fail_msg("command 0x%04X: DLC %d, expected %d", cases[i].cmd, rep.dlc, cases[i].dlc);
        assert_int_equal(rep.data[0], cases[i].cmd & 0xFF);
        assert_int_equal(rep.data[1], cases[i].cmd >> 8);
    }
    bic_device_destroy(&dev);
}

static void test_identity_and_scaling(void **state)
{
    (void)state;
    bic_device_t *dev =
        t_device("0:24:rev=FE69FFFFFFFF,date=231224,serial=ABC123456789,location=TWX", 0);
    struct {
        uint16_t cmd;
        const char *bytes;
        int n;
    } cases[] = {
        {0x0080, "MEANWE", 6}, {0x0081, "LL    ", 6}, {0x0082, "BIC-22", 6}, {0x0083, "00-24 ", 6},
        {0x0085, "TWX", 3},    {0x0086, "231224", 6}, {0x0087, "ABC123", 6}, {0x0088, "456789", 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        can_frame_t req = t_frame(0x000C0300, cases[i].cmd, 0, NULL), rep;
        assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 1);
        assert_int_equal(rep.dlc, 2 + cases[i].n);
        assert_memory_equal(rep.data + 2, cases[i].bytes, (size_t)cases[i].n);
    }
    can_frame_t req = t_frame(0x000C0300, 0x0084, 0, NULL), rep;
    assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 1);
    uint8_t rev[] = {0xFE, 0x69, 0xFF, 0xFF, 0xFF, 0xFF};
    assert_memory_equal(rep.data + 2, rev, 6);
    req = t_frame(0x000C0300, 0x00C0, 0, NULL);
    assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 1);
    uint8_t sf[] = {0xC0, 0x00, 0x55, 0x76, 0x06, 0x00, 0x00, 0x00};
    assert_int_equal(rep.dlc, 8);
    assert_memory_equal(rep.data, sf, 8);
    bic_device_destroy(&dev);

    /* The 2-byte SCALING_FACTOR option, and the default revision 0E 0D FF FF FF FF. */
    dev = t_device("0:24:scaling2", 0);
    req = t_frame(0x000C0300, 0x00C0, 0, NULL);
    assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 1);
    assert_int_equal(rep.dlc, 4);
    assert_memory_equal(rep.data, sf, 4);
    req = t_frame(0x000C0300, 0x0084, 0, NULL);
    assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 1);
    uint8_t rev0[] = {0x0E, 0x0D, 0xFF, 0xFF, 0xFF, 0xFF};
    assert_memory_equal(rep.data + 2, rev0, 6);
    bic_device_destroy(&dev);
}

static void test_silence(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24", 0);
    can_frame_t rep;
    uint8_t v25[] = {0xC4, 0x09};
    /* A write never gets a reply, and is applied. */
    can_frame_t f = t_frame(0x000C0300, 0x0020, 2, v25);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    assert_int_equal(t_read(dev, 0x0020, 0), 2500);
    /* Unknown commands: a gap in the table and an NPB-only code. */
    f = t_frame(0x000C0300, 0x0099, 0, NULL);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    f = t_frame(0x000C0300, 0x00B0, 0, NULL);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    /* Broadcast read. */
    f = t_frame(0x000C03FF, 0x0020, 0, NULL);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    /* Another address, and the reply direction's id. */
    f = t_frame(0x000C0305, 0x0020, 0, NULL);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    f = t_frame(0x000C0200, 0x0020, 0, NULL);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    /* Standard and remote frames. */
    f = t_frame(0x300, 0x0020, 0, NULL);
    f.ext = false;
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    f = t_frame(0x000C0300, 0x0020, 0, NULL);
    f.rtr = true;
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    /* DLC < 2. */
    f = t_frame(0x000C0300, 0x0020, 0, NULL);
    f.dlc = 1;
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    f.dlc = 0;
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    /* Writes to read-only commands: silent and without effect. */
    uint8_t junk[] = {0x34, 0x12};
    f = t_frame(0x000C0300, 0x0060, 2, junk);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    f = t_frame(0x000C0300, 0x0040, 2, junk);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    assert_int_equal(t_read(dev, 0x0040, 0) & 0x0001, 0);
    assert_int_equal(bic_device_write(dev, 0x0060, 0x1234, 0), BIC_WRITE_READ_ONLY);
    assert_int_equal(bic_device_write(dev, 0x0099, 1, 0), BIC_WRITE_UNKNOWN);
    /* A write shorter than 2+N is ignored. */
    f = t_frame(0x000C0300, 0x0020, 1, v25);
    f.data[2] = 0x10;
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    assert_int_equal(t_read(dev, 0x0020, 0), 2500);
    /* NULL arguments are harmless. */
    assert_int_equal(bic_device_handle_frame(dev, NULL, 0, &rep), 0);
    assert_int_equal(bic_device_handle_frame(NULL, &f, 0, &rep), 0);
    bic_device_destroy(&dev);
    bic_device_destroy(&dev);
    bic_device_destroy(NULL);
}

static void test_long_write_uses_first_bytes(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:canctrl", 0);
    can_frame_t rep;
    uint8_t op[] = {0x00, 0xFF}; /* OPERATION with DLC 4: the first data byte counts */
    can_frame_t f = t_frame(0x000C0300, 0x0000, 2, op);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    assert_int_equal(t_read(dev, 0x0000, 0), 0);
    uint8_t v[] = {0xC4, 0x09, 0xFF, 0xFF, 0x01, 0x02};
    f = t_frame(0x000C0300, 0x0020, 6, v);
    assert_int_equal(bic_device_handle_frame(dev, &f, 0, &rep), 0);
    assert_int_equal(t_read(dev, 0x0020, 0), 2500);
    bic_device_destroy(&dev);
}

static void test_broadcast_write_applies(void **state)
{
    (void)state;
    bic_device_t *a = t_device("0:24", 0), *b = t_device("5:24", 0);
    uint8_t v[] = {0x8C, 0x0A}; /* 27.00 V */
    can_frame_t f = t_frame(0x000C03FF, 0x0020, 2, v), rep;
    assert_int_equal(bic_device_handle_frame(a, &f, 0, &rep), 0);
    assert_int_equal(bic_device_handle_frame(b, &f, 0, &rep), 0);
    assert_int_equal(t_read(a, 0x0020, 0), 2700);
    assert_int_equal(t_read(b, 0x0020, 0), 2700);
    bic_device_destroy(&a);
    bic_device_destroy(&b);
}

/* ---- variants and defaults (§9.2, §16 items 9 and 12) ---- */

static void test_variant_defaults(void **state)
{
    (void)state;
    struct {
        int v;
        const char *model;
        int vout_ad, iout_ad, rvout, riout_ad, vout_bat, iout_bat, riout_bat;
    } cases[] = {
        {12, "00-12 ", 1200, 19800, 1000, 15300, 1260, 16000, 12000},
        {24, "00-24 ", 2400, 9900, 1900, 7650, 2520, 8000, 6430},
        {48, "00-48 ", 4800, 4950, 3800, 3830, 5040, 4000, 3220},
        {96, "00-96 ", 9600, 2475, 7600, 1910, 10080, 2000, 1610},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char spec[32];
        snprintf(spec, sizeof spec, "3:%d", cases[i].v);
        bic_device_t *dev = t_device(spec, 0);
        assert_int_equal(bic_device_variant(dev), cases[i].v);
        assert_int_equal(t_read(dev, 0x0020, 0), cases[i].vout_ad);
        assert_int_equal(t_read(dev, 0x0030, 0), cases[i].iout_ad);
        assert_int_equal(t_read(dev, 0x0120, 0), cases[i].rvout);
        assert_int_equal(t_read(dev, 0x0130, 0), cases[i].riout_ad);
        assert_int_equal(t_read(dev, 0x0000, 0), 1);
        assert_int_equal(t_read(dev, 0x0100, 0), 0);
        assert_int_equal(t_read(dev, 0x00C2, 0), 0x0002);
        assert_int_equal(t_read(dev, 0x0140, 0), 0);
        can_frame_t req = t_frame(0x000C0303, 0x0083, 0, NULL), rep;
        assert_int_equal(bic_device_handle_frame(dev, &req, 0, &rep), 1);
        assert_memory_equal(rep.data + 2, cases[i].model, 6);
        bic_device_destroy(&dev);

        snprintf(spec, sizeof spec, "3:%d:battery", cases[i].v);
        dev = t_device(spec, 0);
        assert_int_equal(t_read(dev, 0x0140, 0), 1);
        assert_int_equal(t_read(dev, 0x0020, 0), cases[i].vout_bat);
        assert_int_equal(t_read(dev, 0x0030, 0), cases[i].iout_bat);
        assert_int_equal(t_read(dev, 0x0120, 0), cases[i].rvout);
        assert_int_equal(t_read(dev, 0x0130, 0), cases[i].riout_bat);
        bic_device_destroy(&dev);
    }
}

static void test_parse_spec_errors(void **state)
{
    (void)state;
    bic_device_config_t cfg;
    battery_config_t b;
    char err[512];
    assert_int_equal(
        bic_device_parse_spec("7:96:fw=old,soc=80,clamp,tau=2.5", &cfg, &b, err, sizeof err), 0);
    assert_int_equal(cfg.addr, 7);
    assert_int_equal(cfg.variant, 96);
    assert_int_equal(cfg.fw, BIC_FW_OLD);
    assert_int_equal(cfg.range, BIC_RANGE_CLAMP);
    assert_true(fabs(b.soc_pct - 80) < 1e-9);
    assert_int_equal(b.cells_series, 32);
    struct {
        const char *spec;
        const char *needle;
    } bad[] = {
        {"", "ADDR:VARIANT"},
        {"0", "missing ':VARIANT'"},
        {"x:24", "address 'x'"},
        {"64:24", "0..63"},
        {"0:25", "12, 24, 48, 96"},
        {"0:24:bogus", "unknown device option 'bogus'"},
        {"0:24:fw=mid", "old, new"},
        {"0:24:soc=120", "battery SOC"},
        {"0:24:soc=abc", "not a number"},
        {"0:24:eff=0", "eff_c"},
        {"0:24:rev=12", "12 hex digits"},
        {"0:24:clamp=1", "takes no value"},
        {"0:24:cells=2.5", "whole number"},
        {"0:24:date=2024", "YYMMDD"},
        {"0:24:boot_ms=-5", "0..60000"},
        {"0:24:tau=nan", "not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (bic_device_parse_spec(bad[i].spec, &cfg, &b, err, sizeof err) != -1)
            fail_msg("spec '%s' was accepted", bad[i].spec);
        if (!strstr(err, bad[i].needle))
            fail_msg("spec '%s': message '%s' lacks '%s'", bad[i].spec, err, bad[i].needle);
    }
    assert_int_equal(bic_device_parse_spec(NULL, &cfg, &b, err, sizeof err), -1);
    /* An invalid configuration makes no device. */
    bic_device_config_defaults(&cfg, 24);
    battery_config_defaults(&b);
    cfg.variant = 36;
    assert_null(bic_device_new(&cfg, &b, 0));
    cfg.variant = 24;
    b.capacity_ah = -1;
    assert_null(bic_device_new(&cfg, &b, 0));
}

/* ---- firmware generations (§16 item 20) ---- */

static void test_firmware_generations(void **state)
{
    (void)state;
    bic_device_t *n = t_device("0:24", 0), *o = t_device("0:24:fw=old", 0);
    assert_int_equal(t_answers(n, 0x0070, 0), 1);
    assert_int_equal(t_answers(n, 0x0071, 0), 1);
    assert_int_equal(t_answers(o, 0x0070, 0), 0);
    assert_int_equal(t_answers(o, 0x0071, 0), 0);
    t_write(n, 0x00C2, 0x0403, 0);
    t_write(o, 0x00C2, 0x0403, 0);
    assert_int_equal(t_read(n, 0x00C2, 0), 0x0403);
    assert_int_equal(t_read(o, 0x00C2, 0), 0x0003); /* EEP bits do not stick */
    t_write(o, 0x00C2, 0x0203, 0);
    assert_int_equal(t_read(o, 0x00C2, 0), 0x0003);
    /* Old firmware therefore persists every set-point write. */
    t_write(o, 0x0020, 2500, 0);
    assert_int_equal(bic_device_eeprom_writes(o, 0x0020), 1);
    bic_device_destroy(&n);
    bic_device_destroy(&o);

    /* The optional 20 % current minimum. */
    bic_device_t *m = t_device("0:24:min20", 0);
    t_write(m, 0x0030, 1000, 0); /* 10 A < 18 A */
    assert_int_equal(t_read(m, 0x0030, 0), 9900);
    t_write(m, 0x0030, 2000, 0);
    assert_int_equal(t_read(m, 0x0030, 0), 2000);
    bic_device_destroy(&m);
}

/* ---- EEPROM model (§11, §16 items 18-19) ---- */

static void test_eeprom_immediate_counts(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:canctrl", 0);
    assert_int_equal(bic_device_eeprom_writes_total(dev), 0);
    t_write(dev, 0x0020, 2500, 0);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0020), 1);
    uint16_t raw = 0;
    assert_int_equal(bic_device_eeprom_value(dev, 0x0020, &raw), 0);
    assert_int_equal(raw, 2500);
    /* Every accepted write is a persisted write, also of an unchanged value. */
    t_write(dev, 0x0020, 2500, SEC(1));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0020), 2);
    /* Ignored writes do not count. */
    t_write(dev, 0x0020, 9000, SEC(2));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0020), 2);
    /* OPERATION, SYSTEM_CONFIG, BIDIRECTIONAL_CONFIG are persisted; DIRECTION_CTRL is not. */
    t_write(dev, 0x0000, 0, SEC(3));
    t_write(dev, 0x00C2, 0x0003, SEC(3));
    t_write(dev, 0x0140, 1, SEC(3));
    t_write(dev, 0x0100, 1, SEC(3));
    t_write(dev, 0x0030, 2000, SEC(3));
    t_write(dev, 0x0120, 2000, SEC(3));
    t_write(dev, 0x0130, 2000, SEC(3));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0000), 1);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x00C2), 1);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0140), 1);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0100), 0);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0030), 1);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0120), 1);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0130), 1);
    assert_int_equal(bic_device_eeprom_writes_total(dev), 8);
    assert_int_equal(bic_device_eeprom_value(dev, 0x0100, &raw), -1);
    bic_device_destroy(&dev);
}

static void test_eep_off(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:canctrl,boot_ms=0", 0);
    t_write(dev, 0x00C2, 0x0403, 0);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x00C2), 1);
    t_write(dev, 0x0020, 2500, SEC(1));
    t_write(dev, 0x0030, 3000, SEC(1));
    assert_int_equal(t_read(dev, 0x0020, SEC(1)), 2500); /* RAM changed */
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0020), 0);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0030), 0);
    /* OPERATION still persists under EEP_OFF (not a '*' command). */
    t_write(dev, 0x0000, 0, SEC(2));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0000), 1);
    /* After a power cycle the unit runs on the values saved before EEP_OFF. */
    bic_device_power_cycle(dev, SEC(10));
    assert_int_equal(t_read(dev, 0x0020, SEC(10)), 2400);
    assert_int_equal(t_read(dev, 0x0030, SEC(10)), 9900);
    assert_int_equal(t_read(dev, 0x00C2, SEC(10)), 0x0403);
    bic_device_destroy(&dev);

    /* Option: OPERATION/SYSTEM_CONFIG/BIDIRECTIONAL_CONFIG obey EEP_OFF too. */
    dev = t_device("0:24:canctrl,eep_all", 0);
    t_write(dev, 0x00C2, 0x0403, 0);
    t_write(dev, 0x0000, 0, SEC(1));
    t_write(dev, 0x0140, 1, SEC(1));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0000), 0);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0140), 0);
    bic_device_destroy(&dev);
}

static void test_eep_config_delays(void **state)
{
    (void)state;
    /* 01: commit once all parameters were unchanged for 1 minute. */
    bic_device_t *dev = t_device("0:24:canctrl", 0);
    t_write(dev, 0x00C2, 0x0103, 0);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x00C2), 1);
    t_write(dev, 0x0020, 2500, SEC(1));
    assert_true(bic_device_eeprom_pending(dev));
    bic_device_step(dev, SEC(30));
    t_write(dev, 0x0020, 2600, SEC(30)); /* restarts the minute */
    bic_device_step(dev, SEC(89));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0020), 0);
    bic_device_step(dev, SEC(91));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0020), 1); /* once, the last value */
    assert_false(bic_device_eeprom_pending(dev));
    uint16_t raw;
    bic_device_eeprom_value(dev, 0x0020, &raw);
    assert_int_equal(raw, 2600);
    bic_device_destroy(&dev);

    /* 10: ten minutes. */
    dev = t_device("0:24:canctrl", 0);
    t_write(dev, 0x00C2, 0x0203, 0);
    t_write(dev, 0x0030, 2000, SEC(1));
    bic_device_step(dev, SEC(600));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0030), 0);
    bic_device_step(dev, SEC(602));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0030), 1);
    bic_device_destroy(&dev);

    /* Power lost before the commit: the value is gone. */
    dev = t_device("0:24:canctrl,boot_ms=0", 0);
    t_write(dev, 0x00C2, 0x0103, 0);
    t_write(dev, 0x0020, 2500, SEC(1));
    bic_device_power_cycle(dev, SEC(10));
    bic_device_step(dev, SEC(200));
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0020), 0);
    assert_int_equal(t_read(dev, 0x0020, SEC(200)), 2400);
    bic_device_destroy(&dev);
}

/* ---- power cycles (§12, §16 items 14, 16, 21) ---- */

static void test_bidirectional_config_after_power_cycle(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:canctrl", 0);
    t_write(dev, 0x0140, 1, 0);
    assert_int_equal(t_read(dev, 0x0140, 0), 1); /* read-back at once */
    bic_device_state_t st = t_state(dev, SEC(1));
    assert_false(st.battery_mode);      /* still auto-detect */
    t_write(dev, 0x0030, 9500, SEC(1)); /* the auto-detect maximum still applies */
    assert_int_equal(t_read(dev, 0x0030, SEC(1)), 9500);
    bic_device_power_cycle(dev, SEC(2));
    st = t_state(dev, SEC(5));
    assert_true(st.battery_mode);
    /* The stored current above the battery-mode maximum is limited to it. */
    assert_int_equal(t_read(dev, 0x0030, SEC(5)), 9000);
    bic_device_destroy(&dev);
}

static void test_boot_silence_and_initial_state(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24", 0);
    assert_int_equal(t_read(dev, 0x00C1, 0) & 0x20, 0x20); /* created ready */
    bic_device_power_cycle(dev, SEC(1));
    assert_int_equal(t_answers(dev, 0x0020, SEC(1.5)), 0);
    assert_int_equal(t_answers(dev, 0x0020, SEC(2.7)), 0);
    bic_device_state_t st = t_state(dev, SEC(2.7));
    assert_true(st.booting);
    assert_false(st.output_on);
    assert_int_equal(st.system_status & 0x20, 0); /* INITIAL_STATE: initialising */
    assert_int_equal(t_answers(dev, 0x0020, SEC(2.9)), 1);
    assert_int_equal(t_read(dev, 0x00C1, SEC(2.9)) & 0x20, 0x20);
    /* No silence when configured so. */
    bic_device_set_boot_silence(dev, 0);
    bic_device_power_cycle(dev, SEC(5));
    assert_int_equal(t_answers(dev, 0x0020, SEC(5)), 1);
    /* AC off: silent, writes unheard. */
    bic_device_set_ac(dev, false, SEC(6));
    assert_false(bic_device_ac_on(dev));
    assert_int_equal(t_answers(dev, 0x0020, SEC(7)), 0);
    assert_int_equal(bic_device_write(dev, 0x0020, 2500, SEC(7)), BIC_WRITE_UNPOWERED);
    st = t_state(dev, SEC(7));
    assert_false(st.powered);
    bic_device_set_ac(dev, true, SEC(8));
    assert_int_equal(t_read(dev, 0x0020, SEC(8)), 2400);
    bic_device_destroy(&dev);
}

static void test_operation_init_and_direction(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:battery,canctrl,boot_ms=0", 0);
    /* 00: OFF at power-up. */
    t_write(dev, 0x00C2, 0x0001, 0);
    bic_device_power_cycle(dev, SEC(1));
    assert_int_equal(t_read(dev, 0x0000, SEC(1)), 0);
    assert_false(t_state(dev, SEC(2)).output_on);
    /* 01: ON. */
    t_write(dev, 0x00C2, 0x0003, SEC(2));
    bic_device_power_cycle(dev, SEC(3));
    assert_int_equal(t_read(dev, 0x0000, SEC(3)), 1);
    /* 10: the last persisted OPERATION. */
    t_write(dev, 0x00C2, 0x0005, SEC(4));
    t_write(dev, 0x0000, 0, SEC(4));
    bic_device_power_cycle(dev, SEC(5));
    assert_int_equal(t_read(dev, 0x0000, SEC(5)), 0);
    t_write(dev, 0x0000, 1, SEC(6));
    bic_device_power_cycle(dev, SEC(7));
    assert_int_equal(t_read(dev, 0x0000, SEC(7)), 1);
    /* DIRECTION_CTRL is volatile: 0 after power-up. */
    t_write(dev, 0x0100, 1, SEC(8));
    assert_int_equal(t_read(dev, 0x0100, SEC(8)), 1);
    bic_device_power_cycle(dev, SEC(9));
    assert_int_equal(t_read(dev, 0x0100, SEC(9)), 0);
    bic_device_destroy(&dev);
}

/* ---- range policy (§10, §16 item 17) ---- */

static void test_range_policy(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24", 0);
    assert_int_equal(bic_device_write(dev, 0x0020, 3000, 0), BIC_WRITE_OUT_OF_RANGE);
    assert_int_equal(t_read(dev, 0x0020, 0), 2400);
    t_write(dev, 0x0030, 50, 0); /* 0.5 A < 0.9 A */
    assert_int_equal(t_read(dev, 0x0030, 0), 9900);
    t_write(dev, 0x0120, 1800, 0);
    assert_int_equal(t_read(dev, 0x0120, 0), 1900);
    t_write(dev, 0x0130, 8000, 0);
    assert_int_equal(t_read(dev, 0x0130, 0), 7650);
    /* Enumerations and bit fields with reserved values. */
    t_write(dev, 0x0000, 2, 0);
    assert_int_equal(t_read(dev, 0x0000, 0), 1);
    t_write(dev, 0x0140, 2, 0);
    assert_int_equal(t_read(dev, 0x0140, 0), 0);
    t_write(dev, 0x00C2, 0x0007, 0); /* OPERATION_INIT 11 */
    t_write(dev, 0x00C2, 0x0303, 0); /* EEP_CONFIG 11 */
    t_write(dev, 0x00C2, 0x0803, 0); /* reserved bit 11 */
    assert_int_equal(t_read(dev, 0x00C2, 0), 0x0002);
    assert_int_equal(bic_device_eeprom_writes_total(dev), 0);
    /* Switch to clamping at run time. */
    bic_device_set_range_policy(dev, BIC_RANGE_CLAMP);
    assert_int_equal(bic_device_write(dev, 0x0020, 3000, 0), BIC_WRITE_CLAMPED);
    assert_int_equal(t_read(dev, 0x0020, 0), 2800);
    t_write(dev, 0x0030, 50, 0);
    assert_int_equal(t_read(dev, 0x0030, 0), 90);
    t_write(dev, 0x0000, 2, 0); /* not clampable: still ignored */
    assert_int_equal(t_read(dev, 0x0000, 0), 1);
    bic_device_destroy(&dev);

    /* Battery mode has the lower IOUT_SET maximum. */
    dev = t_device("0:24:battery", 0);
    t_write(dev, 0x0030, 9500, 0);
    assert_int_equal(t_read(dev, 0x0030, 0), 8000);
    t_write(dev, 0x0030, 9000, 0);
    assert_int_equal(t_read(dev, 0x0030, 0), 9000);
    bic_device_destroy(&dev);
}

/* ---- CAN_CTRL = 0: SVR (§16 item 13) ---- */

static void test_can_ctrl_svr(void **state)
{
    (void)state;
    /* Factory state: SVR at 24 V, auto-detect, battery at ~26.4 V -> the unit discharges. */
    bic_device_t *dev = t_device("0:24", 0);
    t_write(dev, 0x0000, 0, 0);
    assert_int_equal(t_read(dev, 0x0000, 0), 0); /* stored */
    bic_device_state_t st = t_state(dev, SEC(10));
    assert_true(st.output_on); /* but OPERATION does not control the output */
    assert_true(st.dc_a < -10);
    t_write(dev, 0x0020, 2800, SEC(10)); /* CAN set-points are ignored too */
    st = t_state(dev, SEC(20));
    assert_true(st.dc_a < -10);
    /* CAN_CTRL = 1 acts at once: now OPERATION = 0 switches the output off. */
    t_write(dev, 0x00C2, 0x0003, SEC(20));
    st = t_state(dev, SEC(21));
    assert_false(st.output_on);
    assert_true(fabs(st.dc_a) < 1e-9);
    assert_int_equal(t_read(dev, 0x0040, SEC(21)) & 0x40, 0x40); /* OP_OFF */
    bic_device_destroy(&dev);

    /* Option: CAN_CTRL takes effect only at the next power-up. */
    dev = t_device("0:24:canctrl_powerup,boot_ms=0", 0);
    t_write(dev, 0x0000, 0, 0);
    t_write(dev, 0x00C2, 0x0005, 0); /* CAN_CTRL, previous OPERATION */
    assert_true(t_state(dev, SEC(1)).output_on);
    bic_device_power_cycle(dev, SEC(2));
    assert_false(t_state(dev, SEC(3)).output_on);
    bic_device_destroy(&dev);

    /* The SVR voltage is configurable: above the battery, the unit charges. */
    dev = t_device("0:24:svr=27.5", 0);
    assert_true(t_state(dev, SEC(10)).dc_a > 10);
    bic_device_destroy(&dev);
}

/* ---- physics (§13, §16 items 22-25, 28) ---- */

static void test_battery_mode_charge(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:battery,canctrl", 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 2000, 0);
    bic_device_state_t st = t_state(dev, SEC(10));
    assert_true(st.output_on);
    assert_false(st.discharging);
    assert_true(fabs(st.dc_a - 20) < 0.05);
    int32_t iout = t_read(dev, 0x0061, SEC(10));
    assert_true(iout >= 1995 && iout <= 2005);
    int32_t vout = t_read(dev, 0x0060, SEC(10));
    assert_true(vout > 2640 && vout < 2680); /* OCV ~26.4 V + 20 A x 10 mOhm */
    assert_true(fabs(st.ac_w - st.dc_v * st.dc_a / 0.92) < 1);
    assert_true(st.ac_w > 0);
    bic_device_destroy(&dev);
}

static void test_cc_then_cv_taper(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:battery,canctrl,soc=80", 0);
    t_write(dev, 0x0020, 2720, 0); /* CV at 27.20 V */
    t_write(dev, 0x0030, 5000, 0); /* CC at 50 A */
    bic_device_state_t st = t_state(dev, SEC(10));
    assert_true(fabs(st.dc_a - 50) < 0.1); /* constant current first */
    st = t_state(dev, SEC(6 * 3600));
    /* Then constant voltage: the current tapers and the terminal voltage sits at VOUT_SET. */
    assert_true(st.dc_a > 0 && st.dc_a < 2);
    int32_t v = t_read(dev, 0x0060, SEC(6 * 3600));
    assert_true(v >= 2715 && v <= 2721);
    assert_true(st.soc_pct > 96 && st.soc_pct < 98.5);
    bic_device_destroy(&dev);
}

static void test_battery_mode_discharge_negative_iout(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:battery,canctrl", 0);
    t_write(dev, 0x0120, 2200, 0);
    t_write(dev, 0x0130, 3000, 0);
    t_write(dev, 0x0100, 1, 0);
    bic_device_state_t st = t_state(dev, SEC(10));
    assert_true(st.discharging);
    assert_true(fabs(st.dc_a + 30) < 0.05);
    int32_t iout = t_read(dev, 0x0061, SEC(10)); /* two's complement on the wire */
    assert_true(iout <= -2995 && iout >= -3005);
    assert_true(st.ac_w < 0);
    assert_true(fabs(st.ac_w - st.dc_v * st.dc_a * 0.92) < 1);
    /* The raw bytes are a negative s16. */
    can_frame_t req = t_frame(0x000C0300, 0x0061, 0, NULL), rep;
    assert_int_equal(bic_device_handle_frame(dev, &req, SEC(10), &rep), 1);
    assert_true(rep.data[3] >= 0xF4);
    bic_device_destroy(&dev);
}

static void test_five_percent_rule(void **state)
{
    (void)state;
    /* Charge direction with VOUT_SET below the battery: the unit discharges at 5 % of 90 A. */
    bic_device_t *dev = t_device("0:24:battery,canctrl", 0);
    t_write(dev, 0x0020, 2500, 0);
    t_write(dev, 0x0030, 5000, 0);
    bic_device_state_t st = t_state(dev, SEC(10));
    assert_true(fabs(st.dc_a + 4.5) < 0.05);
    assert_true(t_read(dev, 0x0061, SEC(10)) < -440);
    assert_true(st.ac_w < -90 && st.ac_w > -130);
    /* Discharge direction with REVERSE_VOUT_SET above the battery: it charges at 4.5 A. */
    t_write(dev, 0x0100, 1, SEC(10));
    t_write(dev, 0x0120, 2800, SEC(10));
    st = t_state(dev, SEC(20));
    assert_true(fabs(st.dc_a - 4.5) < 0.05);
    assert_true(st.ac_w > 90 && st.ac_w < 140);
    bic_device_destroy(&dev);

    /* 48 V: 5 % of 45 A. */
    dev = t_device("0:48:battery,canctrl", 0);
    t_write(dev, 0x0020, 4000, 0);
    assert_true(fabs(t_state(dev, SEC(10)).dc_a + 2.25) < 0.05);
    bic_device_destroy(&dev);
}

static void test_dc_ac_constant_power_limit(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:battery,canctrl", 0);
    t_write(dev, 0x0100, 1, 0);
    t_write(dev, 0x0130, 7650, 0); /* 76.5 A allowed by the register */
    bic_device_state_t st = t_state(dev, SEC(10));
    double ocv = battery_ocv_v(bic_device_battery(dev));
    /* 1800 W at the battery's voltage caps the current below 75 A. */
    assert_true(-st.dc_a * ocv <= 1801);
    assert_true(-st.dc_a * ocv > 1780);
    assert_true(-st.dc_a < 75);
    bic_device_destroy(&dev);
}

static void test_first_order_response(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:battery,canctrl", 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 2000, 0);
    double a1 = t_state(dev, SEC(1)).dc_a;
    assert_true(a1 > 11 && a1 < 14); /* ~63 % after one time constant */
    double a5 = t_state(dev, SEC(5)).dc_a;
    assert_true(a5 > 19.5);
    bic_device_destroy(&dev);

    dev = t_device("0:24:battery,canctrl,tau=5", 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 2000, 0);
    a1 = t_state(dev, SEC(1)).dc_a;
    assert_true(a1 > 2.5 && a1 < 5);
    bic_device_destroy(&dev);

    /* A ramp limit bounds the slope. */
    dev = t_device("0:24:battery,canctrl,tau=0,ramp=2", 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 2000, 0);
    a1 = t_state(dev, SEC(2)).dc_a;
    assert_true(a1 > 3.5 && a1 < 4.5);
    bic_device_destroy(&dev);
}

static void test_auto_detect_direction(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:canctrl", 0);
    t_write(dev, 0x0100, 1, 0); /* ignored in auto-detect mode */
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 3000, 0);
    bic_device_state_t st = t_state(dev, SEC(10));
    assert_true(fabs(st.dc_a - 30) < 0.1);
    t_write(dev, 0x0020, 2000, SEC(10));
    t_write(dev, 0x0130, 2500, SEC(10));
    st = t_state(dev, SEC(20));
    assert_true(fabs(st.dc_a + 25) < 0.1);
    bic_device_destroy(&dev);
}

static void test_soc_and_voltage_follow_charge(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:battery,canctrl", 0);
    int32_t v0 = t_read(dev, 0x0060, 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 2000, 0);
    bic_device_state_t st = t_state(dev, SEC(3600));
    /* 20 A for an hour into 280 Ah: about +7.1 % SOC. */
    assert_true(st.soc_pct > 56.5 && st.soc_pct < 57.5);
    battery_t *b = bic_device_battery(dev);
    assert_true(battery_charged_wh(b) > 500 && battery_charged_wh(b) < 560);
    assert_true(battery_discharged_wh(b) < 1e-9);
    /* Stop and let the voltage settle: higher than at the start. */
    t_write(dev, 0x0000, 0, SEC(3600));
    int32_t v1 = t_read(dev, 0x0060, SEC(3700));
    assert_true(v1 > v0);
    /* Discharge for an hour: SOC and voltage fall. */
    t_write(dev, 0x0000, 1, SEC(3700));
    t_write(dev, 0x0100, 1, SEC(3700));
    t_write(dev, 0x0130, 4000, SEC(3700));
    st = t_state(dev, SEC(7300));
    assert_true(st.soc_pct < 43);
    assert_true(battery_discharged_wh(b) > 900);
    bic_device_destroy(&dev);
}

static void test_battery_cutoffs(void **state)
{
    (void)state;
    /* At the SOC ceiling no charge current flows, whatever the set-points say. */
    bic_device_t *dev = t_device("0:24:battery,canctrl,soc=99.99,soc_max=100", 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 8000, 0);
    bic_device_state_t st = t_state(dev, SEC(600));
    assert_true(st.soc_pct <= 100.0);
    assert_true(st.dc_a < 1); /* CV near full, then the BMS */
    bic_device_destroy(&dev);
    dev = t_device("0:24:battery,canctrl,soc=5,soc_min=5", 0);
    t_write(dev, 0x0100, 1, 0);
    st = t_state(dev, SEC(60));
    assert_true(fabs(st.dc_a) < 1e-9);
    assert_true(st.soc_pct >= 5.0);
    bic_device_destroy(&dev);
}

static void test_temperature_and_fans_follow_load(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:battery,canctrl", 0);
    bic_device_state_t st = t_state(dev, SEC(1));
    int32_t t0 = t_read(dev, 0x0062, SEC(1));
    int32_t f0 = t_read(dev, 0x0070, SEC(1));
    assert_true(t0 >= 240 && t0 <= 260);
    t_write(dev, 0x0020, 2800, SEC(1));
    t_write(dev, 0x0030, 8000, SEC(1));
    st = t_state(dev, SEC(1800));
    assert_true(st.temperature_c > 40);
    assert_true(t_read(dev, 0x0062, SEC(1800)) > 400);
    assert_true(t_read(dev, 0x0070, SEC(1800)) > f0 + 1000);
    assert_true(t_read(dev, 0x0071, SEC(1800)) > f0 + 1000);
    /* Idle again: it cools down. */
    t_write(dev, 0x0000, 0, SEC(1800));
    st = t_state(dev, SEC(5400));
    assert_true(st.temperature_c < 32);
    bic_device_destroy(&dev);

    /* Hot surroundings and full load: the high-temperature alarm comes by itself. */
    dev = t_device("0:24:battery,canctrl,ambient=60", 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 8000, 0);
    t_state(dev, SEC(3600));
    assert_int_equal(t_read(dev, 0x0040, SEC(3600)) & 0x80, 0x80);
    bic_device_destroy(&dev);
}

/* Hot inside, the current limits derate (docs/simulator.md): 100 % up to 75 degC internal,
 * linearly to 50 % of the rating at 90 degC. The unit keeps the direction, with less
 * current than asked, and READ_TEMPERATURE_1 and HI_TEMP show why. */
static void test_temperature_derating(void **state)
{
    (void)state;
    /* Cool: 80 A asked, 80 A flow. */
    bic_device_t *dev = t_device("0:24:battery,canctrl", 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 8000, 0);
    assert_true(fabs(t_state(dev, SEC(10)).dc_a - 80) < 0.5);
    bic_device_destroy(&dev);

    /* Hot surroundings (60 degC) and full load: inside it passes 75 degC and the current
     * falls below what is asked, to where the heat balances; never below half the 90 A
     * rating and never the other way. */
    dev = t_device("0:24:battery,canctrl,ambient=60", 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 8000, 0);
    assert_true(fabs(t_state(dev, SEC(10)).dc_a - 80) < 0.5);
    bic_device_state_t st = t_state(dev, SEC(3600));
    assert_true(st.output_on);
    assert_true(st.temperature_c > 78 && st.temperature_c < 90);
    double derated = 1 - 0.5 * (st.temperature_c - 75) / 15;
    double rating = fmin(90, 2160 / battery_ocv_v(bic_device_battery(dev))); /* A, or 2160 W */
    assert_true(fabs(st.dc_a - rating * derated) < 1.0);
    assert_true(st.dc_a > 45 && st.dc_a < 75);
    assert_int_equal(t_read(dev, 0x0040, SEC(3600)) & 0x80, 0x80); /* HI_TEMP */
    assert_true(t_read(dev, 0x0062, SEC(3600)) > 780);
    /* A small current is not touched by the derating. */
    t_write(dev, 0x0030, 2000, SEC(3600));
    assert_true(fabs(t_state(dev, SEC(3610)).dc_a - 20) < 0.1);
    t_write(dev, 0x0030, 8000, SEC(3610));
    t_state(dev, SEC(7200));
    /* Discharging derates the same way, against the 75 A input rating. */
    t_write(dev, 0x0130, 6400, SEC(7200));
    t_write(dev, 0x0120, 2200, SEC(7200));
    t_write(dev, 0x0100, 1, SEC(7200));
    st = t_state(dev, SEC(7210));
    derated = 1 - 0.5 * (st.temperature_c - 75) / 15;
    assert_true(st.temperature_c > 76);
    rating = fmin(75, 1800 / battery_ocv_v(bic_device_battery(dev))); /* A, or 1800 W */
    assert_true(st.dc_a < 0 && fabs(-st.dc_a - rating * derated) < 1.0);
    bic_device_destroy(&dev);
}

/* ---- faults (§8.1, §13, §16 items 26-27) ---- */

static void test_latched_faults(void **state)
{
    (void)state;
    struct {
        bic_dev_fault_t f;
        uint16_t bit;
    } cases[] = {{BIC_DEV_FAULT_OVP, 1u << 2},
                 {BIC_DEV_FAULT_OLP, 1u << 3},
                 {BIC_DEV_FAULT_SHORT, 1u << 4},
                 {BIC_DEV_FAULT_ISLANDING, 1u << 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bic_device_t *dev = t_device("0:24:battery,canctrl,boot_ms=0", 0);
        t_write(dev, 0x0020, 2800, 0);
        t_write(dev, 0x0030, 2000, 0);
        assert_true(t_state(dev, SEC(5)).dc_a > 19);
        bic_device_set_fault(dev, cases[i].f, true, SEC(5));
        bic_device_state_t st = t_state(dev, SEC(6));
        assert_false(st.output_on);
        assert_true(fabs(st.dc_a) < 1e-9);
        assert_int_equal(t_read(dev, 0x0040, SEC(6)) & cases[i].bit, cases[i].bit);
        assert_int_equal(t_read(dev, 0x0040, SEC(6)) & 0x40, 0x40);
        bic_device_set_fault(dev, cases[i].f, false, SEC(7));
        assert_int_equal(t_read(dev, 0x0040, SEC(8)) & cases[i].bit, cases[i].bit);
        assert_false(t_state(dev, SEC(8)).output_on);
        assert_true(bic_device_fault_active(dev, cases[i].f));
        bic_device_power_cycle(dev, SEC(9));
        assert_int_equal(t_read(dev, 0x0040, SEC(9)) & (cases[i].bit | 0x40), 0);
        assert_false(bic_device_fault_active(dev, cases[i].f));
        bic_device_destroy(&dev);
    }
    /* Islanding can be configured to recover by itself. */
    bic_device_t *dev = t_device("0:24:island_auto", 0);
    bic_device_set_fault(dev, BIC_DEV_FAULT_ISLANDING, true, 0);
    bic_device_set_fault(dev, BIC_DEV_FAULT_ISLANDING, false, SEC(1));
    assert_true(t_state(dev, SEC(2)).output_on);
    bic_device_destroy(&dev);
}

static void test_auto_recovering_faults_and_flags(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:battery,canctrl", 0);
    t_write(dev, 0x0020, 2800, 0);
    t_write(dev, 0x0030, 2000, 0);
    /* OTP: shutdown, back when the cause is gone. */
    bic_device_set_fault(dev, BIC_DEV_FAULT_OTP, true, SEC(5));
    assert_int_equal(t_read(dev, 0x0040, SEC(6)) & 0x42, 0x42);
    assert_false(t_state(dev, SEC(6)).output_on);
    bic_device_set_fault(dev, BIC_DEV_FAULT_OTP, false, SEC(7));
    assert_int_equal(t_read(dev, 0x0040, SEC(7)) & 0x42, 0);
    assert_true(t_state(dev, SEC(12)).dc_a > 19);
    /* AC_FAIL: shutdown, PFC_OK cleared, READ_VIN out of range; automatic recovery. */
    assert_int_equal(t_read(dev, 0x0050, SEC(12)), 2300);
    bic_device_set_fault(dev, BIC_DEV_FAULT_AC_FAIL, true, SEC(12));
    assert_int_equal(t_read(dev, 0x0040, SEC(13)) & 0x20, 0x20);
    assert_int_equal(t_read(dev, 0x00C1, SEC(13)) & 0x04, 0);
    assert_int_equal(t_read(dev, 0x0050, SEC(13)), 1700);
    assert_false(t_state(dev, SEC(13)).output_on);
    bic_device_set_fault(dev, BIC_DEV_FAULT_AC_FAIL, false, SEC(14));
    assert_int_equal(t_read(dev, 0x00C1, SEC(14)) & 0x06, 0x06); /* PFC_OK, DC_OK */
    /* FAN_FAIL and HI_TEMP are flags: the output keeps running; fan 1 reads 0. */
    bic_device_set_fault(dev, BIC_DEV_FAULT_FAN_FAIL, true, SEC(15));
    bic_device_set_fault(dev, BIC_DEV_FAULT_HI_TEMP, true, SEC(15));
    bic_device_set_fault(dev, BIC_DEV_FAULT_HV_OVP, true, SEC(15));
    assert_int_equal(t_read(dev, 0x0040, SEC(16)) & 0x1C1, 0x181);
    assert_int_equal(t_read(dev, 0x0070, SEC(16)), 0);
    assert_true(t_read(dev, 0x0071, SEC(16)) > 0);
    assert_true(t_state(dev, SEC(16)).output_on);
    bic_device_set_fault(dev, BIC_DEV_FAULT_FAN_FAIL, false, SEC(17));
    bic_device_set_fault(dev, BIC_DEV_FAULT_HI_TEMP, false, SEC(17));
    bic_device_set_fault(dev, BIC_DEV_FAULT_HV_OVP, false, SEC(17));
    assert_int_equal(t_read(dev, 0x0040, SEC(17)), 0);
    /* EEPER: SYSTEM_STATUS bit 6 and shutdown while set. */
    bic_device_set_fault(dev, BIC_DEV_FAULT_EEPER, true, SEC(18));
    assert_int_equal(t_read(dev, 0x00C1, SEC(18)) & 0x40, 0x40);
    assert_false(t_state(dev, SEC(18)).output_on);
    bic_device_set_fault(dev, BIC_DEV_FAULT_EEPER, false, SEC(19));
    assert_true(t_state(dev, SEC(19)).output_on);
    /* Starting with the contact open. */
    bic_device_t *r = t_device("0:24:remote_off", 0);
    assert_false(t_state(r, SEC(1)).output_on);
    bic_device_set_remote(r, true, SEC(1));
    assert_true(t_state(r, SEC(2)).output_on);
    bic_device_destroy(&r);
    /* Remote ON/OFF open: output off, OP_OFF. */
    bic_device_set_remote(dev, false, SEC(20));
    assert_int_equal(t_read(dev, 0x0040, SEC(20)) & 0x40, 0x40);
    assert_int_equal(t_read(dev, 0x00C1, SEC(20)) & 0x02, 0); /* DC_OK */
    bic_device_set_remote(dev, true, SEC(21));
    assert_true(t_state(dev, SEC(21)).output_on);
    /* Names. */
    assert_int_equal(bic_dev_fault_from_name("otp"), BIC_DEV_FAULT_OTP);
    assert_int_equal(bic_dev_fault_from_name("short"), BIC_DEV_FAULT_SHORT);
    assert_int_equal(bic_dev_fault_from_name("nope"), -1);
    assert_int_equal(bic_dev_fault_from_name(NULL), -1);
    assert_string_equal(bic_dev_fault_name(BIC_DEV_FAULT_AC_FAIL), "ac_fail");
    bic_device_set_fault(dev, (bic_dev_fault_t)99, true, SEC(22)); /* ignored */
    bic_device_destroy(&dev);
}

static void test_register_getters(void **state)
{
    (void)state;
    bic_device_t *dev = t_device("0:24:canctrl", 0);
    uint16_t raw = 0;
    assert_int_equal(bic_device_register(dev, 0x00C2, &raw), 0);
    assert_int_equal(raw, 0x0003);
    assert_int_equal(bic_device_register(dev, 0x0100, &raw), 0);
    assert_int_equal(raw, 0);
    assert_int_equal(bic_device_register(dev, 0x0060, &raw), -1);
    assert_int_equal(bic_device_eeprom_writes(dev, 0x0060), 0);
    assert_int_equal(bic_device_config(dev)->variant, 24);
    assert_true(fabs(bic_device_rated_current_a(48) - 45) < 1e-9);
    assert_true(bic_device_rated_current_a(36) == 0);
    bic_device_destroy(&dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_reply_exact_frame),
        cmocka_unit_test(test_manual_examples),
        cmocka_unit_test(test_reply_lengths),
        cmocka_unit_test(test_identity_and_scaling),
        cmocka_unit_test(test_silence),
        cmocka_unit_test(test_long_write_uses_first_bytes),
        cmocka_unit_test(test_broadcast_write_applies),
        cmocka_unit_test(test_variant_defaults),
        cmocka_unit_test(test_parse_spec_errors),
        cmocka_unit_test(test_firmware_generations),
        cmocka_unit_test(test_eeprom_immediate_counts),
        cmocka_unit_test(test_eep_off),
        cmocka_unit_test(test_eep_config_delays),
        cmocka_unit_test(test_bidirectional_config_after_power_cycle),
        cmocka_unit_test(test_boot_silence_and_initial_state),
        cmocka_unit_test(test_operation_init_and_direction),
        cmocka_unit_test(test_range_policy),
        cmocka_unit_test(test_can_ctrl_svr),
        cmocka_unit_test(test_battery_mode_charge),
        cmocka_unit_test(test_cc_then_cv_taper),
        cmocka_unit_test(test_battery_mode_discharge_negative_iout),
        cmocka_unit_test(test_five_percent_rule),
        cmocka_unit_test(test_dc_ac_constant_power_limit),
        cmocka_unit_test(test_first_order_response),
        cmocka_unit_test(test_auto_detect_direction),
        cmocka_unit_test(test_soc_and_voltage_follow_charge),
        cmocka_unit_test(test_battery_cutoffs),
        cmocka_unit_test(test_temperature_and_fans_follow_load),
        cmocka_unit_test(test_temperature_derating),
        cmocka_unit_test(test_latched_faults),
        cmocka_unit_test(test_auto_recovering_faults_and_flags),
        cmocka_unit_test(test_register_getters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
