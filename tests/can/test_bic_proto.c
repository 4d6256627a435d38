/*  test_bic_proto.c - the BIC-2200 protocol codec against the manual: worked examples byte
    for byte, signed decodes, bit decoders (the manual's positions, not the seed's), scaling,
    model and revision decoding, per-variant ranges, and malformed frames rejected with the
    right error.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bic_proto.h"

static const bic_family_t *F;

static void assert_frame(const can_frame_t *fr, uint32_t id, const char *hex)
{
    assert_true(fr->ext);
    assert_false(fr->rtr);
    assert_int_equal(fr->id, id);
    char got[17] = "";
    for (int i = 0; i < fr->dlc; i++)
        snprintf(got + 2 * i, 3, "%02X", fr->data[i]);
    assert_string_equal(got, hex);
}

static can_frame_t mkframe(uint32_t id, const char *hex)
{
    can_frame_t fr = {.id = id, .ext = true};
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        fr.data[i] = (uint8_t)b;
    }
    fr.dlc = (uint8_t)n;
    return fr;
}

/* ---- command table ---------------------------------------------------------------- */

static void test_table_complete(void **state)
{
    (void)state;
    static const uint16_t codes[] = {0x0000, 0x0020, 0x0030, 0x0040, 0x0050, 0x0060, 0x0061,
                                     0x0062, 0x0070, 0x0071, 0x0080, 0x0081, 0x0082, 0x0083,
                                     0x0084, 0x0085, 0x0086, 0x0087, 0x0088, 0x00C0, 0x00C1,
                                     0x00C2, 0x0100, 0x0120, 0x0130, 0x0140};
    assert_int_equal(F->ncmds, sizeof codes / sizeof codes[0]);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const bic_cmd_t *c = bic_cmd_by_code(F, codes[i]);
        assert_non_null(c);
        assert_int_equal(c->code, codes[i]);
        /* reply DLC per §4: 3 for 1-byte, 5 for MFR_LOCATION, 8 for 6-byte, 4 otherwise */
        int want = 4;
        if (codes[i] == 0x0000 || codes[i] == 0x0100)
            want = 3;
        else if (codes[i] == 0x0085)
            want = 5;
        else if ((codes[i] >= 0x0080 && codes[i] <= 0x0088) || codes[i] == 0x00C0)
            want = 8;
        assert_int_equal(bic_cmd_reply_dlc(c), want);
    }
    assert_null(bic_cmd_by_code(F, 0x0090));
    assert_null(bic_cmd_by_code(F, 0x00B0)); /* NPB curve command, not a BIC command */
}

static void test_table_attributes(void **state)
{
    (void)state;
    const bic_cmd_t *c = bic_cmd_by_code(F, BIC_CMD_READ_IOUT);
    assert_int_equal(c->type, BIC_TYPE_S16);
    assert_int_equal(c->scale, BIC_SCALE_IOUT);
    assert_false(c->writable);
    c = bic_cmd_by_code(F, BIC_CMD_READ_TEMPERATURE_1);
    assert_int_equal(c->type, BIC_TYPE_S16);
    c = bic_cmd_by_code(F, BIC_CMD_REVERSE_IOUT_SET);
    assert_int_equal(c->type, BIC_TYPE_U16);
    assert_true(c->writable);
    assert_true(c->eep_star);
    assert_true(c->persisted);
    /* '*' set: exactly the four setpoints */
    int stars = 0, persisted = 0;
    for (size_t i = 0; i < F->ncmds; i++) {
        stars += F->cmds[i].eep_star;
        persisted += F->cmds[i].persisted;
    }
    assert_int_equal(stars, 4);
    assert_int_equal(persisted, 7); /* 0x0000 0x0020 0x0030 0x0120 0x0130 0x0140 0x00C2 */
    assert_true(bic_cmd_by_code(F, BIC_CMD_SYSTEM_CONFIG)->persisted);
    assert_false(bic_cmd_by_code(F, BIC_CMD_SYSTEM_CONFIG)->eep_star);
    assert_false(bic_cmd_by_code(F, BIC_CMD_DIRECTION_CTRL)->persisted);
    assert_false(bic_cmd_by_code(F, BIC_CMD_MFR_SERIAL_B0B5)->writable);
    assert_int_equal(bic_cmd_by_code(F, BIC_CMD_SCALING_FACTOR)->min_len, 2);
}

static void test_lookup_names(void **state)
{
    (void)state;
    assert_int_equal(bic_cmd_by_name(F, "vout_set")->code, 0x0020);
    assert_int_equal(bic_cmd_by_name(F, "READ_TEMPERATURE_1")->code, 0x0062);
    assert_int_equal(bic_cmd_by_name(F, "REV_VOUT_SET")->code, 0x0120);
    assert_int_equal(bic_cmd_by_name(F, "vout_set_rev")->code, 0x0120);
    assert_int_equal(bic_cmd_by_name(F, "Rev_Iout_Set")->code, 0x0130);
    assert_int_equal(bic_cmd_by_name(F, "BIDIR_CONFIG")->code, 0x0140);
    assert_int_equal(bic_cmd_by_name(F, "0x0030")->code, 0x0030);
    assert_int_equal(bic_cmd_by_name(F, "0X00c2")->code, 0x00C2);
    assert_int_equal(bic_cmd_by_name(F, "0x30")->code, 0x0030);
    assert_null(bic_cmd_by_name(F, "0x0031"));
    assert_null(bic_cmd_by_name(F, "0x"));
    assert_null(bic_cmd_by_name(F, "0x00300"));
    assert_null(bic_cmd_by_name(F, "0x00g0"));
    assert_null(bic_cmd_by_name(F, "VOUT"));
    assert_null(bic_cmd_by_name(F, ""));
    assert_null(bic_cmd_by_name(F, NULL));
    assert_null(bic_cmd_by_name(F, "VOUT_SET "));
}

/* ---- the manual's worked examples (§4) --------------------------------------------- */

static void test_manual_examples(void **state)
{
    (void)state;
    can_frame_t fr;
    int32_t raw;
    const bic_cmd_t *vout = bic_cmd_by_code(F, BIC_CMD_VOUT_SET);

    /* VOUT_SET 30.00 V to unit 0 */
    assert_int_equal(bic_value_to_raw(vout, NULL, 30.0, &raw), BIC_OK);
    assert_int_equal(raw, 3000);
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_VOUT_SET, raw, &fr), BIC_OK);
    assert_int_equal(fr.dlc, 4);
    assert_frame(&fr, 0x000C0300, "2000B80B");

    /* read OPERATION from unit 1, reply DLC 3 00 00 01 = ON */
    assert_int_equal(bic_encode_read(F, 1, BIC_CMD_OPERATION, &fr), BIC_OK);
    assert_int_equal(fr.dlc, 2);
    assert_frame(&fr, 0x000C0301, "0000");
    can_frame_t rep = mkframe(0x000C0201, "000001");
    assert_true(bic_reply_matches(F, &fr, &rep));
    bic_msg_t m;
    assert_int_equal(bic_decode_reply(F, &rep, &m), BIC_OK);
    assert_int_equal(m.addr, 1);
    assert_int_equal(m.code, BIC_CMD_OPERATION);
    assert_int_equal(bic_data_to_raw(m.cmd, m.data, m.len, &raw), BIC_OK);
    assert_int_equal(raw, 1);

    /* IOUT_SET reply 30 00 D0 07 = 20.00 A */
    rep = mkframe(0x000C0200, "3000D007");
    assert_int_equal(bic_decode_reply(F, &rep, &m), BIC_OK);
    assert_int_equal(bic_data_to_raw(m.cmd, m.data, m.len, &raw), BIC_OK);
    assert_int_equal(raw, 2000);
    assert_true(fabs(bic_raw_to_value(m.cmd, NULL, raw) - 20.0) < 1e-9);

    /* bring-up of a BIC-2200-48 */
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_SYSTEM_CONFIG, 0x0003, &fr), BIC_OK);
    assert_frame(&fr, 0x000C0300, "C2000300");
    assert_int_equal(bic_value_to_raw(vout, NULL, 60.0, &raw), BIC_OK);
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_VOUT_SET, raw, &fr), BIC_OK);
    assert_frame(&fr, 0x000C0300, "20007017");
    assert_int_equal(bic_text_to_raw(bic_cmd_by_code(F, BIC_CMD_IOUT_SET), NULL, "20", &raw),
                     BIC_OK);
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_IOUT_SET, raw, &fr), BIC_OK);
    assert_frame(&fr, 0x000C0300, "3000D007");
    /* "REVERSE_IOUT_SET = -20 A" goes on the wire as the magnitude +2000 ... */
    const bic_cmd_t *rev = bic_cmd_by_code(F, BIC_CMD_REVERSE_IOUT_SET);
    assert_int_equal(bic_value_to_raw(rev, NULL, 20.0, &raw), BIC_OK);
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_REVERSE_IOUT_SET, raw, &fr), BIC_OK);
    assert_frame(&fr, 0x000C0300, "3001D007");
    /* ... and a negative number is refused, never sent as two's complement */
    assert_int_equal(bic_value_to_raw(rev, NULL, -20.0, &raw), BIC_E_RANGE);
    assert_int_equal(bic_text_to_raw(rev, NULL, "-20", &raw), BIC_E_RANGE);
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_REVERSE_IOUT_SET, -2000, &fr), BIC_E_RANGE);
}

/* ---- values ------------------------------------------------------------------------- */

static void test_signed_decodes(void **state)
{
    (void)state;
    int32_t raw;
    const bic_cmd_t *iout = bic_cmd_by_code(F, BIC_CMD_READ_IOUT);
    const bic_cmd_t *temp = bic_cmd_by_code(F, BIC_CMD_READ_TEMPERATURE_1);
    const bic_cmd_t *vout = bic_cmd_by_code(F, BIC_CMD_READ_VOUT);
    uint8_t d[2] = {0x0C, 0xFE}; /* 0xFE0C = -500 */
    assert_int_equal(bic_data_to_raw(iout, d, 2, &raw), BIC_OK);
    assert_int_equal(raw, -500);
    assert_true(fabs(bic_raw_to_value(iout, NULL, raw) + 5.0) < 1e-9);
    /* 25000 = 0x61A8 is a positive 250 A, not the seed's "> 20000 means negative" */
    uint8_t d2[2] = {0xA8, 0x61};
    assert_int_equal(bic_data_to_raw(iout, d2, 2, &raw), BIC_OK);
    assert_int_equal(raw, 25000);
    uint8_t d3[2] = {0x70, 0xFE}; /* -400 = -40.0 degC */
    assert_int_equal(bic_data_to_raw(temp, d3, 2, &raw), BIC_OK);
    assert_true(fabs(bic_raw_to_value(temp, NULL, raw) + 40.0) < 1e-9);
    /* the same bytes on an unsigned register are a large positive */
    assert_int_equal(bic_data_to_raw(vout, d, 2, &raw), BIC_OK);
    assert_int_equal(raw, 0xFE0C);
    assert_int_equal(bic_data_to_raw(vout, d, 1, &raw), BIC_E_DLC);
    /* s16 round trip through data bytes */
    uint8_t out[6];
    assert_int_equal(bic_raw_to_data(iout, -500, out), BIC_OK);
    assert_int_equal(out[0], 0x0C);
    assert_int_equal(out[1], 0xFE);
    assert_int_equal(bic_raw_to_data(iout, -40000, out), BIC_E_RANGE);
    assert_int_equal(bic_raw_to_data(bic_cmd_by_code(F, 0), 256, out), BIC_E_RANGE);
    /* text/bytes registers have no raw integer */
    assert_int_equal(bic_data_to_raw(bic_cmd_by_code(F, 0x0082), d, 2, &raw), BIC_E_ARG);
}

static void test_rounding(void **state)
{
    (void)state;
    int32_t raw;
    const bic_cmd_t *vout = bic_cmd_by_code(F, BIC_CMD_VOUT_SET);
    const bic_cmd_t *temp = bic_cmd_by_code(F, BIC_CMD_READ_TEMPERATURE_1);
    assert_int_equal(bic_value_to_raw(vout, NULL, 27.6, &raw), BIC_OK);
    assert_int_equal(raw, 2760);
    assert_int_equal(bic_value_to_raw(vout, NULL, 20.005, &raw), BIC_OK);
    assert_int_equal(raw, 2001); /* half away from zero despite 2000.4999999 in binary */
    assert_int_equal(bic_value_to_raw(vout, NULL, 20.0049, &raw), BIC_OK);
    assert_int_equal(raw, 2000);
    assert_int_equal(bic_value_to_raw(temp, NULL, -0.05, &raw), BIC_OK);
    assert_int_equal(raw, -1); /* away from zero on the negative side too */
    assert_int_equal(bic_value_to_raw(vout, NULL, NAN, &raw), BIC_E_RANGE);
    assert_int_equal(bic_value_to_raw(vout, NULL, INFINITY, &raw), BIC_E_RANGE);
    assert_int_equal(bic_value_to_raw(vout, NULL, 655.36, &raw), BIC_E_RANGE);
    assert_int_equal(bic_value_to_raw(vout, NULL, 655.35, &raw), BIC_OK);
    assert_int_equal(raw, 65535);
    assert_int_equal(bic_value_to_raw(vout, NULL, -0.01, &raw), BIC_E_RANGE);

    /* exact decimal text, integer arithmetic */
    assert_int_equal(bic_text_to_raw(vout, NULL, "20.005", &raw), BIC_OK);
    assert_int_equal(raw, 2001);
    assert_int_equal(bic_text_to_raw(vout, NULL, "20.00499999", &raw), BIC_OK);
    assert_int_equal(raw, 2000);
    assert_int_equal(bic_text_to_raw(vout, NULL, "+27.6", &raw), BIC_OK);
    assert_int_equal(raw, 2760);
    assert_int_equal(bic_text_to_raw(vout, NULL, ".5", &raw), BIC_OK);
    assert_int_equal(raw, 50);
    assert_int_equal(bic_text_to_raw(temp, NULL, "-12.35", &raw), BIC_OK);
    assert_int_equal(raw, -124);
    assert_int_equal(bic_text_to_raw(vout, NULL, "1e3", &raw), BIC_E_PARSE);
    assert_int_equal(bic_text_to_raw(vout, NULL, "", &raw), BIC_E_PARSE);
    assert_int_equal(bic_text_to_raw(vout, NULL, "-", &raw), BIC_E_PARSE);
    assert_int_equal(bic_text_to_raw(vout, NULL, "1.2.3", &raw), BIC_E_PARSE);
    assert_int_equal(bic_text_to_raw(vout, NULL, "12 V", &raw), BIC_E_PARSE);
    assert_int_equal(bic_text_to_raw(vout, NULL, "99999999999999999999", &raw), BIC_E_RANGE);
    assert_int_equal(bic_text_to_raw(vout, NULL, "655.36", &raw), BIC_E_RANGE);
    /* unscaled registers take integers */
    assert_int_equal(bic_text_to_raw(bic_cmd_by_code(F, 0x00C2), NULL, "1027", &raw), BIC_OK);
    assert_int_equal(raw, 1027);
}

/* ---- decoders ---------------------------------------------------------------------- */

static void test_fault_status(void **state)
{
    (void)state;
    bic_fault_t f;
    static const char *names[] = {"fan_fail", "otp",    "ovp",     "olp",   "short",
                                  "ac_fail",  "op_off", "hi_temp", "hv_ovp"};
    for (int bit = 0; bit < 9; bit++) {
        bic_fault_decode((uint16_t)(1u << bit), &f);
        bool got[9] = {f.fan_fail, f.otp,    f.ovp,     f.olp,   f.short_circuit,
                       f.ac_fail,  f.op_off, f.hi_temp, f.hv_ovp};
        for (int j = 0; j < 9; j++)
            assert_int_equal(got[j], j == bit);
        bic_field_t fl[16];
        int n = bic_fields(F, BIC_CMD_FAULT_STATUS, (uint16_t)(1u << bit), fl, 16);
        assert_int_equal(n, 9);
        for (int j = 0; j < 9; j++) {
            assert_string_equal(fl[j].name, names[j]);
            assert_true(fl[j].is_flag);
            assert_int_equal(fl[j].value, j == bit);
        }
    }
    bic_fault_decode(0x8000, &f);
    assert_int_equal(f.reserved, 0x8000);
    assert_false(f.hv_ovp);
}

static void test_system_status_manual_bits(void **state)
{
    (void)state;
    bic_sysstatus_t s;
    /* ADL_ON is bit 4, INITIAL_STATE bit 5, EEPER bit 6 (the seed used 3/4/5) */
    bic_sysstatus_decode(F, 0x0010, &s);
    assert_true(s.adl_on);
    assert_false(s.initial_state);
    assert_false(s.eeper);
    bic_sysstatus_decode(F, 0x0020, &s);
    assert_false(s.adl_on);
    assert_true(s.initial_state);
    assert_true(s.ready); /* BIC: 1 = not in initialisation */
    assert_false(s.eeper);
    bic_sysstatus_decode(F, 0x0040, &s);
    assert_true(s.eeper);
    assert_false(s.initial_state);
    assert_false(s.ready);
    bic_sysstatus_decode(F, 0x0008, &s); /* bit 3 is reserved, not ADL */
    assert_false(s.adl_on);
    assert_false(s.initial_state);
    assert_int_equal(s.reserved, 0x0008);
    bic_sysstatus_decode(F, 0x0007, &s);
    assert_true(s.master);
    assert_true(s.dc_ok);
    assert_true(s.pfc_ok);
    bic_field_t fl[16];
    int n = bic_fields(F, BIC_CMD_SYSTEM_STATUS, 0x0046, fl, 16);
    assert_int_equal(n, 7);
    assert_string_equal(fl[0].name, "master");
    assert_int_equal(fl[0].value, 0);
    assert_string_equal(fl[1].name, "dc_ok");
    assert_int_equal(fl[1].value, 1);
    assert_string_equal(fl[6].name, "eeper");
    assert_int_equal(fl[6].value, 1);
}

static void test_system_config(void **state)
{
    (void)state;
    bic_sysconfig_t c;
    bic_sysconfig_decode(0x0002, &c); /* factory default */
    assert_false(c.can_ctrl);
    assert_int_equal(c.operation_init, BIC_OPINIT_ON);
    assert_int_equal(c.eep_config, BIC_EEPCFG_IMMEDIATE);
    assert_false(c.eep_off);
    bic_sysconfig_decode(0x0403, &c);
    assert_true(c.can_ctrl);
    assert_int_equal(c.operation_init, BIC_OPINIT_ON);
    assert_true(c.eep_off);
    bic_sysconfig_decode(0x0205, &c); /* CAN control, previous state, 10-min delay */
    assert_true(c.can_ctrl);
    assert_int_equal(c.operation_init, BIC_OPINIT_PREVIOUS);
    assert_int_equal(c.eep_config, BIC_EEPCFG_10MIN);
    assert_false(c.eep_off);
    bic_sysconfig_decode(0x0100, &c); /* bits 9:8, not >> 7 */
    assert_int_equal(c.eep_config, BIC_EEPCFG_1MIN);
    bic_sysconfig_decode(0x0080, &c);
    assert_int_equal(c.eep_config, BIC_EEPCFG_IMMEDIATE);
    assert_int_equal(c.reserved, 0x0080);
    bic_sysconfig_decode(0x4000, &c); /* 0x4000 is not EEP_OFF */
    assert_false(c.eep_off);
    assert_int_equal(bic_sysconfig_encode(&c), 0x4000);
    bic_sysconfig_t w = {.can_ctrl = true, .operation_init = BIC_OPINIT_OFF, .eep_off = true};
    assert_int_equal(bic_sysconfig_encode(&w), 0x0401);
    for (unsigned v = 0; v < 0x10000; v += 7) {
        bic_sysconfig_decode((uint16_t)v, &c);
        assert_int_equal(bic_sysconfig_encode(&c), v);
    }
    bic_field_t fl[8];
    int n = bic_fields(F, BIC_CMD_SYSTEM_CONFIG, 0x0205, fl, 8);
    assert_int_equal(n, 4);
    assert_string_equal(fl[1].name, "operation_init");
    assert_false(fl[1].is_flag);
    assert_string_equal(fl[1].text, "previous");
    assert_string_equal(fl[2].text, "10min");
    assert_string_equal(fl[3].name, "eep_off");
    assert_int_equal(fl[3].value, 0);
}

static void test_bidir_and_fields(void **state)
{
    (void)state;
    bic_bidir_t b;
    bic_bidir_decode(0x0001, &b);
    assert_int_equal(b.mode, BIC_MODE_BATTERY);
    bic_bidir_decode(0x0000, &b);
    assert_int_equal(b.mode, BIC_MODE_AUTO);
    bic_bidir_decode(0x0002, &b);
    assert_int_equal(b.mode, BIC_MODE_AUTO);
    assert_int_equal(b.reserved, 2);
    bic_field_t fl[4];
    assert_int_equal(bic_fields(F, BIC_CMD_BIDIRECTIONAL_CONFIG, 1, fl, 4), 1);
    assert_string_equal(fl[0].text, "battery");
    /* not a bitfield */
    assert_int_equal(bic_fields(F, BIC_CMD_VOUT_SET, 1, fl, 4), -1);
    /* max truncates */
    assert_int_equal(bic_fields(F, BIC_CMD_FAULT_STATUS, 0, fl, 4), 4);
}

static void test_scaling_factor(void **state)
{
    (void)state;
    bic_scaling_t s;
    uint8_t six[6];
    bic_scaling_encode_fixed(six);
    assert_memory_equal(six, "\x55\x76\x06\x00\x00\x00", 6);
    assert_int_equal(bic_scaling_decode(six, 6, &s), BIC_OK);
    assert_int_equal(s.exp10[BIC_SCALE_VOUT], -2);
    assert_int_equal(s.exp10[BIC_SCALE_IOUT], -2);
    assert_int_equal(s.exp10[BIC_SCALE_VIN], -1);
    assert_int_equal(s.exp10[BIC_SCALE_FAN], 0);
    assert_int_equal(s.exp10[BIC_SCALE_TEMP], -1);
    assert_true(s.reported[BIC_SCALE_TEMP]);

    /* 2 bytes: VOUT/IOUT/VIN/FAN reported, TEMP from the fixed table */
    uint8_t two[2] = {0x46, 0x77}; /* VOUT 0.1, IOUT 0.001, VIN 1, FAN 1 */
    assert_int_equal(bic_scaling_decode(two, 2, &s), BIC_OK);
    assert_int_equal(s.exp10[BIC_SCALE_VOUT], -1);
    assert_int_equal(s.exp10[BIC_SCALE_IOUT], -3);
    assert_int_equal(s.exp10[BIC_SCALE_VIN], 0);
    assert_false(s.reported[BIC_SCALE_TEMP]);
    assert_int_equal(s.exp10[BIC_SCALE_TEMP], -1);
    const bic_cmd_t *vout = bic_cmd_by_code(F, BIC_CMD_READ_VOUT);
    assert_true(fabs(bic_raw_to_value(vout, &s, 264) - 26.4) < 1e-9);
    int32_t raw;
    assert_int_equal(bic_value_to_raw(bic_cmd_by_code(F, BIC_CMD_IOUT_SET), &s, 1.2345, &raw),
                     BIC_OK);
    assert_int_equal(raw, 1235);

    /* 3 bytes with a 0 nibble and a reserved code: fixed factors for those */
    uint8_t three[3] = {0x05, 0xA6, 0x08};
    assert_int_equal(bic_scaling_decode(three, 3, &s), BIC_OK);
    assert_int_equal(s.exp10[BIC_SCALE_VOUT], -2);
    assert_true(s.reported[BIC_SCALE_VOUT]);
    assert_int_equal(s.exp10[BIC_SCALE_IOUT], -2);
    assert_false(s.reported[BIC_SCALE_IOUT]);
    assert_int_equal(s.exp10[BIC_SCALE_FAN], 0);
    assert_false(s.reported[BIC_SCALE_FAN]);
    assert_int_equal(s.exp10[BIC_SCALE_TEMP], 1); /* 0x8 = x10 */
    assert_true(fabs(bic_scaling_factor(&s, BIC_SCALE_TEMP) - 10.0) < 1e-12);

    /* lengths outside 2-6 */
    bic_scaling_t before = s;
    assert_int_equal(bic_scaling_decode(six, 1, &s), BIC_E_DLC);
    assert_int_equal(bic_scaling_decode(six, 7, &s), BIC_E_DLC);
    assert_memory_equal(&before, &s, sizeof s);

    /* replies of 2..6 data bytes decode, 1 and 7 do not */
    bic_msg_t m;
    can_frame_t rep = mkframe(0x000C0200, "C0005576");
    assert_int_equal(bic_decode_reply(F, &rep, &m), BIC_OK);
    assert_int_equal(m.len, 2);
    rep = mkframe(0x000C0200, "C000557606000000");
    assert_int_equal(bic_decode_reply(F, &rep, &m), BIC_OK);
    assert_int_equal(m.len, 6);
    rep = mkframe(0x000C0200, "C00055");
    assert_int_equal(bic_decode_reply(F, &rep, &m), BIC_E_DLC);
}

/* ---- identity ---------------------------------------------------------------------- */

static void test_model_detection(void **state)
{
    (void)state;
    static const int variants[] = {12, 24, 48, 96};
    for (size_t i = 0; i < 4; i++) {
        uint8_t a[6], b[6];
        assert_int_equal(bic_model_encode(F, variants[i], a, b), BIC_OK);
        assert_memory_equal(a, "BIC-22", 6);
        char want[7];
        snprintf(want, sizeof want, "00-%d ", variants[i]);
        assert_memory_equal(b, want, 6);
        bic_model_t m;
        assert_int_equal(bic_model_parse(a, b, &m, NULL, 0), BIC_OK);
        assert_int_equal(m.family, BIC_FAMILY_BIC);
        assert_int_equal(m.variant, variants[i]);
        assert_non_null(m.var);
        assert_int_equal(m.var->variant, variants[i]);
        assert_ptr_equal(m.fam, F);
        char name[16];
        snprintf(name, sizeof name, "BIC-2200-%d", variants[i]);
        assert_string_equal(m.model, name);
    }
    bic_model_t m;
    char err[200];
    /* NUL padding is as good as spaces */
    assert_int_equal(
        bic_model_parse((const uint8_t *)"BIC-22", (const uint8_t *)"00-48\0", &m, err, sizeof err),
        BIC_OK);
    assert_int_equal(m.variant, 48);
    /* NPB family */
    assert_int_equal(
        bic_model_parse((const uint8_t *)"NPB-12", (const uint8_t *)"00-24 ", &m, err, sizeof err),
        BIC_OK);
    assert_int_equal(m.family, BIC_FAMILY_NPB);
    assert_int_equal(m.variant, 24);
    assert_string_equal(m.model, "NPB-1200-24");
    /* garbage */
    assert_int_equal(
        bic_model_parse((const uint8_t *)"BIC-22", (const uint8_t *)"00-36 ", &m, err, sizeof err),
        BIC_E_PARSE);
    assert_non_null(strstr(err, "BIC-2200-36"));
    assert_int_equal(m.family, BIC_FAMILY_UNKNOWN);
    assert_int_equal(bic_model_parse((const uint8_t *)"\xff\xff\xff\xff\xff\xff",
                                     (const uint8_t *)"\x00\x01\x02\x03\x04\x05", &m, err,
                                     sizeof err),
                     BIC_E_PARSE);
    assert_non_null(strstr(err, "FFFFFFFFFFFF000102030405"));
    assert_int_equal(
        bic_model_parse((const uint8_t *)"      ", (const uint8_t *)"      ", &m, err, sizeof err),
        BIC_E_PARSE);
    assert_int_equal(
        bic_model_parse((const uint8_t *)"BIC-22", (const uint8_t *)"00-2x ", &m, err, sizeof err),
        BIC_E_PARSE);
    assert_int_equal(
        bic_model_parse((const uint8_t *)"NPB--2", (const uint8_t *)"4     ", &m, err, sizeof err),
        BIC_E_PARSE);
    assert_int_equal(
        bic_model_parse((const uint8_t *)"BIC 22", (const uint8_t *)"00 24 ", &m, err, sizeof err),
        BIC_E_PARSE);
    uint8_t a[6], b[6];
    assert_int_equal(bic_model_encode(F, 36, a, b), BIC_E_ARG);
}

static void test_revision(void **state)
{
    (void)state;
    bic_revision_t r;
    assert_int_equal(bic_revision_decode((const uint8_t *)"\x0E\x0D\xFF\xFF\xFF\xFF", 6, &r),
                     BIC_OK);
    assert_int_equal(r.nmcu, 2);
    assert_string_equal(r.mcu[0], "R01.4");
    assert_string_equal(r.mcu[1], "R01.3");
    assert_string_equal(r.raw, "0E0DFFFFFFFF");
    assert_int_equal(bic_revision_decode((const uint8_t *)"\xFE\x69\xFF\xFF\xFF\xFF", 6, &r),
                     BIC_OK);
    assert_string_equal(r.mcu[0], "R25.4");
    assert_string_equal(r.mcu[1], "R10.5");
    assert_int_equal(bic_revision_decode((const uint8_t *)"\xFF\xFF\xFF\xFF\xFF\xFF", 6, &r),
                     BIC_OK);
    assert_int_equal(r.nmcu, 0);
    assert_int_equal(bic_revision_decode((const uint8_t *)"\x00", 1, &r), BIC_OK);
    assert_string_equal(r.mcu[0], "R00.0");
    assert_int_equal(bic_revision_decode((const uint8_t *)"\x00", 0, &r), BIC_E_ARG);
    assert_int_equal(bic_revision_decode((const uint8_t *)"1234567", 7, &r), BIC_E_ARG);
}

/* ---- ranges -------------------------------------------------------------------------- */

static void test_ranges(void **state)
{
    (void)state;
    struct {
        int v;
        uint16_t vmin, vmax, vdef_auto, vdef_bat, rvdef;
        uint16_t imin, imax_auto, imax_bat, idef_bat, rimax, ridef_bat, min20;
    } t[] = {
        {12, 1000, 1500, 1200, 1260, 1000, 180, 19800, 18000, 16000, 15300, 12000, 3600},
        {24, 1900, 2800, 2400, 2520, 1900, 90, 9900, 9000, 8000, 7650, 6430, 1800},
        {48, 3800, 6500, 4800, 5040, 3800, 45, 4950, 4500, 4000, 3830, 3220, 900},
        {96, 7600, 11200, 9600, 10080, 7600, 25, 2475, 2250, 2000, 1910, 1610, 450},
    };
    for (size_t i = 0; i < 4; i++) {
        const bic_variant_t *v = bic_variant_get(F, t[i].v);
        assert_non_null(v);
        bic_limits_t a, b, b20;
        assert_int_equal(bic_limits_get(v, BIC_MODE_AUTO, BIC_MIN_1PCT, &a), BIC_OK);
        assert_int_equal(bic_limits_get(v, BIC_MODE_BATTERY, BIC_MIN_1PCT, &b), BIC_OK);
        assert_int_equal(bic_limits_get(v, BIC_MODE_BATTERY, BIC_MIN_20PCT, &b20), BIC_OK);
        assert_int_equal(a.vout.min_raw, t[i].vmin);
        assert_int_equal(a.vout.max_raw, t[i].vmax);
        assert_int_equal(a.vout.def_raw, t[i].vdef_auto);
        assert_int_equal(b.vout.def_raw, t[i].vdef_bat);
        assert_int_equal(a.rev_vout.def_raw, t[i].rvdef);
        assert_int_equal(b.rev_vout.def_raw, t[i].rvdef);
        assert_int_equal(a.iout.min_raw, t[i].imin);
        assert_int_equal(a.iout.max_raw, t[i].imax_auto);
        assert_int_equal(a.iout.def_raw, t[i].imax_auto);
        assert_int_equal(b.iout.max_raw, t[i].imax_bat);
        assert_int_equal(b.iout.def_raw, t[i].idef_bat);
        assert_int_equal(a.rev_iout.max_raw, t[i].rimax);
        assert_int_equal(a.rev_iout.def_raw, t[i].rimax);
        assert_int_equal(b.rev_iout.def_raw, t[i].ridef_bat);
        assert_int_equal(b20.iout.min_raw, t[i].min20);
        assert_int_equal(b20.rev_iout.min_raw, t[i].min20);
        assert_int_equal(b20.iout.max_raw, t[i].imax_bat);
        /* 1 % of rated current, within rounding (96 V: the manual's 0.25 A) */
        assert_true(abs((int)a.iout.min_raw - (int)(v->rated_current_ca / 100)) <= 3);
        int32_t d;
        assert_int_equal(bic_default_raw(v, BIC_MODE_BATTERY, BIC_CMD_IOUT_SET, &d), BIC_OK);
        assert_int_equal(d, t[i].idef_bat);
        assert_int_equal(bic_default_raw(v, BIC_MODE_AUTO, BIC_CMD_SYSTEM_CONFIG, &d), BIC_OK);
        assert_int_equal(d, 0x0002);
        assert_int_equal(bic_default_raw(v, BIC_MODE_AUTO, BIC_CMD_OPERATION, &d), BIC_OK);
        assert_int_equal(d, 1);
        assert_int_equal(bic_default_raw(v, BIC_MODE_AUTO, BIC_CMD_READ_VOUT, &d),
                         BIC_E_UNKNOWN_CMD);
    }
    assert_null(bic_variant_get(F, 36));
    bic_limits_t l;
    assert_int_equal(bic_limits_get(bic_variant_get(F, 24), (bic_mode_t)2, BIC_MIN_1PCT, &l),
                     BIC_E_ARG);
    assert_int_equal(bic_limits_get(NULL, BIC_MODE_AUTO, BIC_MIN_1PCT, &l), BIC_E_ARG);
}

/* ---- frames ------------------------------------------------------------------------- */

static void test_encode_errors(void **state)
{
    (void)state;
    can_frame_t fr;
    assert_int_equal(bic_encode_read(F, 64, BIC_CMD_READ_VOUT, &fr), BIC_E_ADDR);
    assert_int_equal(bic_encode_read(F, 63, BIC_CMD_READ_VOUT, &fr), BIC_OK);
    assert_int_equal(fr.id, 0x000C033F);
    assert_int_equal(bic_encode_read(F, BIC_ADDR_BROADCAST, BIC_CMD_READ_VOUT, &fr), BIC_E_ADDR);
    assert_int_equal(bic_encode_read(F, 0, 0x1234, &fr), BIC_E_UNKNOWN_CMD);
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_READ_VOUT, 1, &fr), BIC_E_READ_ONLY);
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_MFR_DATE_B0B5, 1, &fr), BIC_E_READ_ONLY);
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_VOUT_SET, 70000, &fr), BIC_E_RANGE);
    assert_int_equal(bic_encode_write(F, 0, BIC_CMD_OPERATION, 256, &fr), BIC_E_RANGE);
    /* broadcast write, 1-byte command: DLC 3 */
    assert_int_equal(bic_encode_write(F, BIC_ADDR_BROADCAST, BIC_CMD_OPERATION, 0, &fr), BIC_OK);
    assert_int_equal(fr.dlc, 3);
    assert_frame(&fr, 0x000C03FF, "000000");
    assert_int_equal(bic_encode_write(F, 7, BIC_CMD_DIRECTION_CTRL, 1, &fr), BIC_OK);
    assert_frame(&fr, 0x000C0307, "000101");
    /* replies (simulator side) */
    uint8_t model[6] = {'B', 'I', 'C', '-', '2', '2'};
    assert_int_equal(bic_encode_reply(F, 2, BIC_CMD_MFR_MODEL_B0B5, model, 6, &fr), BIC_OK);
    assert_int_equal(fr.dlc, 8);
    assert_frame(&fr, 0x000C0202, "82004249432D3232");
    assert_int_equal(bic_encode_reply(F, 2, BIC_CMD_MFR_MODEL_B0B5, model, 2, &fr), BIC_E_DLC);
    assert_int_equal(bic_encode_reply(F, 2, BIC_CMD_SCALING_FACTOR, model, 2, &fr), BIC_OK);
    assert_int_equal(fr.dlc, 4);
    assert_int_equal(bic_encode_reply(F, 64, BIC_CMD_OPERATION, model, 1, &fr), BIC_E_ADDR);
    assert_int_equal(bic_encode_reply(F, 0, 0x0999, model, 1, &fr), BIC_E_UNKNOWN_CMD);
}

static void test_decode_reply_errors(void **state)
{
    (void)state;
    bic_msg_t m;
    can_frame_t fr = mkframe(0x000C0200, "60001A0A");
    assert_int_equal(bic_decode_reply(F, &fr, &m), BIC_OK);
    assert_int_equal(m.code, BIC_CMD_READ_VOUT);

    can_frame_t x = fr;
    x.ext = false;
    x.id = 0x200;
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_NOT_EXT);
    x = fr;
    x.rtr = true;
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_RTR);
    x = fr;
    x.id = 0x000C0300; /* a request, not a reply */
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_WRONG_ID);
    x.id = 0x000C0240; /* address 64 */
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_WRONG_ID);
    x.id = 0x000C0000; /* NPB reply id */
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_WRONG_ID);
    x = fr;
    x.dlc = 1;
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_SHORT);
    x.dlc = 0;
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_SHORT);
    x = mkframe(0x000C0200, "9900AABB");
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_UNKNOWN_CMD);
    assert_int_equal(m.code, 0x0099);
    x = mkframe(0x000C0200, "60001A"); /* READ_VOUT with one data byte */
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_DLC);
    x = mkframe(0x000C0200, "60001A0A00"); /* ... with three */
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_DLC);
    x = mkframe(0x000C0200, "00000100"); /* OPERATION must be DLC 3 */
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_DLC);
    x = mkframe(0x000C0200, "0000");
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_DLC);
    x = fr;
    x.dlc = 9;
    assert_int_equal(bic_decode_reply(F, &x, &m), BIC_E_DLC);
    for (int e = BIC_OK; e <= BIC_E_PARSE; e++)
        assert_true(strlen(bic_strerror((bic_err_t)e)) > 0);
    assert_non_null(strstr(bic_strerror(BIC_E_UNKNOWN_CMD), "unknown"));
}

static void test_decode_request(void **state)
{
    (void)state;
    bic_msg_t m;
    can_frame_t fr = mkframe(0x000C0305, "2000B80B");
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_OK);
    assert_int_equal(m.addr, 5);
    assert_true(m.write);
    assert_int_equal(m.len, 2);
    fr = mkframe(0x000C03FF, "000000");
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_OK);
    assert_int_equal(m.addr, BIC_ADDR_BROADCAST);
    fr = mkframe(0x000C0300, "0000");
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_OK);
    assert_false(m.write);
    fr = mkframe(0x000C0300, "2000B8"); /* short write */
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_E_DLC);
    fr = mkframe(0x000C0300, "00000100"); /* long write: accepted, first N bytes used */
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_OK);
    assert_int_equal(m.len, 2);
    fr = mkframe(0x000C0300, "60000000"); /* write to READ_VOUT */
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_E_READ_ONLY);
    assert_int_equal(m.code, BIC_CMD_READ_VOUT);
    fr = mkframe(0x000C0300, "7700");
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_E_UNKNOWN_CMD);
    assert_int_equal(m.code, 0x0077);
    fr = mkframe(0x000C0200, "0000");
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_E_WRONG_ID);
    fr = mkframe(0x000C0340, "0000");
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_E_WRONG_ID);
    fr = mkframe(0x000C0300, "00");
    assert_int_equal(bic_decode_request(F, &fr, &m), BIC_E_SHORT);
}

static void test_reply_matching(void **state)
{
    (void)state;
    can_frame_t q, r;
    assert_int_equal(bic_encode_read(F, 3, BIC_CMD_READ_VOUT, &q), BIC_OK);
    r = mkframe(0x000C0203, "60001A0A");
    assert_true(bic_reply_matches(F, &q, &r));
    r = mkframe(0x000C0203, "61001A0A"); /* other command from the same unit */
    assert_false(bic_reply_matches(F, &q, &r));
    r = mkframe(0x000C0204, "60001A0A"); /* same command from another unit */
    assert_false(bic_reply_matches(F, &q, &r));
    r = mkframe(0x000C0303, "6000"); /* our own request echoed */
    assert_false(bic_reply_matches(F, &q, &r));
    r = mkframe(0x000C0203, "60001A0A");
    r.ext = false;
    assert_false(bic_reply_matches(F, &q, &r));
    r = mkframe(0x000C0203, "60");
    assert_false(bic_reply_matches(F, &q, &r));
    q = mkframe(0x000C03FF, "6000"); /* broadcast is never answered */
    r = mkframe(0x000C02FF, "60001A0A");
    assert_false(bic_reply_matches(F, &q, &r));
}

/* ---- the NPB descriptor: same callers, other identifiers and commands ----------------- */

static void test_npb_family(void **state)
{
    (void)state;
    const bic_family_t *npb = bic_family_get(BIC_FAMILY_NPB);
    assert_non_null(npb);
    assert_ptr_equal(bic_family_get(BIC_FAMILY_BIC), F);
    assert_null(bic_family_get(BIC_FAMILY_UNKNOWN));
    can_frame_t fr;
    /* usual NPB address 3: 0x000C0103 / 0x000C0003 */
    assert_int_equal(bic_encode_read(npb, 3, BIC_CMD_READ_VOUT, &fr), BIC_OK);
    assert_frame(&fr, 0x000C0103, "6000");
    assert_int_equal(bic_encode_read(npb, 4, BIC_CMD_READ_VOUT, &fr), BIC_E_ADDR);
    assert_int_equal(bic_encode_read(npb, 0, BIC_CMD_DIRECTION_CTRL, &fr), BIC_E_UNKNOWN_CMD);
    const bic_cmd_t *cv = bic_cmd_by_name(npb, "curve_cv");
    assert_non_null(cv);
    assert_int_equal(cv->code, 0x00B1);
    assert_null(bic_cmd_by_name(F, "CURVE_CV"));
    int32_t raw;
    assert_int_equal(bic_value_to_raw(cv, NULL, 28.8, &raw), BIC_OK);
    assert_int_equal(bic_encode_write(npb, BIC_ADDR_BROADCAST, 0x00B1, raw, &fr), BIC_OK);
    assert_frame(&fr, 0x000C01FF, "B100400B");
    bic_msg_t m;
    fr = mkframe(0x000C0003, "B8000100");
    assert_int_equal(bic_decode_reply(npb, &fr, &m), BIC_OK);
    assert_int_equal(m.addr, 3);
    assert_int_equal(bic_decode_reply(F, &fr, &m), BIC_E_WRONG_ID);
    fr = mkframe(0x000C0200, "60001A0A");
    assert_int_equal(bic_decode_reply(npb, &fr, &m), BIC_E_WRONG_ID);
    /* INITIAL_STATE polarity is the BIC's opposite */
    bic_sysstatus_t st;
    bic_sysstatus_decode(npb, 0x0020, &st);
    assert_true(st.initial_state);
    assert_false(st.ready);
    bic_sysstatus_decode(npb, 0x0000, &st);
    assert_true(st.ready);
    /* CURVE_CONFIG 0x0884: charger mode, -3 mV/degC/cell, restart enabled */
    bic_field_t fl[16];
    int n = bic_fields(npb, 0x00B4, 0x0884, fl, 16);
    assert_int_equal(n, 8);
    assert_string_equal(fl[0].text, "custom");
    assert_string_equal(fl[1].text, "-3mV/C/cell");
    assert_string_equal(fl[3].name, "cuve");
    assert_int_equal(fl[3].value, 1);
    assert_string_equal(fl[7].name, "rste");
    assert_int_equal(fl[7].value, 1);
    assert_int_equal(fl[4].value, 0);
    n = bic_fields(npb, 0x00B8, 0x0801, fl, 16);
    assert_int_equal(n, 10);
    assert_int_equal(fl[0].value, 1); /* fullm */
    assert_string_equal(fl[6].name, "btnc");
    assert_int_equal(fl[6].value, 1);
    assert_int_equal(bic_fields(F, 0x00B4, 0x0884, fl, 16), -1);
    assert_int_equal(bic_fields(npb, BIC_CMD_BIDIRECTIONAL_CONFIG, 1, fl, 16), -1);
    /* a detected NPB has its descriptor but no variant data yet */
    bic_model_t mdl;
    assert_int_equal(
        bic_model_parse((const uint8_t *)"NPB-17", (const uint8_t *)"00-48 ", &mdl, NULL, 0),
        BIC_OK);
    assert_ptr_equal(mdl.fam, npb);
    assert_null(mdl.var);
}

/* Random frames: decoders return a defined error or a consistent message, never crash. */
static void test_random_frames(void **state)
{
    (void)state;
    uint32_t seed = 777;
    const bic_family_t *fams[2] = {F, bic_family_get(BIC_FAMILY_NPB)};
    int ok = 0;
    for (int i = 0; i < 200000; i++) {
        uint8_t b[24];
        for (size_t k = 0; k < sizeof b; k++) {
            seed = seed * 1103515245u + 12345u;
            b[k] = (uint8_t)(seed >> 16);
        }
        can_frame_t fr;
        memcpy(&fr.id, b + 12, sizeof fr.id);
        memcpy(fr.data, b + 16, 8);
        /* keep the bools valid, bias ids and codes towards the interesting ones */
        fr.ext = (b[0] & 7) != 0;
        fr.rtr = (b[1] & 15) == 0;
        fr.dlc = (uint8_t)(b[2] % 11);
        fr.id = (b[3] & 1) ? (0x000C0000u | (b[4] & 3) << 8 | b[5]) : fr.id & 0x3FFFFFFFu;
        if (b[6] & 1)
            fr.data[1] = (uint8_t)(b[7] & 1);
        const bic_family_t *f = fams[b[8] & 1];
        if (b[9] & 1) { /* a known command, often with its exact length */
            const bic_cmd_t *c = &f->cmds[b[10] % f->ncmds];
            fr.data[0] = (uint8_t)(c->code & 0xFF);
            fr.data[1] = (uint8_t)(c->code >> 8);
            if (b[11] & 1)
                fr.dlc = (uint8_t)(2 + c->len);
        }
        bic_msg_t m;
        bic_err_t e = bic_decode_reply(f, &fr, &m);
        assert_true(e >= BIC_OK && e <= BIC_E_PARSE);
        if (e == BIC_OK) {
            ok++;
            assert_non_null(m.cmd);
            assert_true(m.len >= m.cmd->min_len && m.len <= m.cmd->len);
            assert_true(m.addr <= f->addr_max);
        }
        e = bic_decode_request(f, &fr, &m);
        assert_true(e >= BIC_OK && e <= BIC_E_PARSE);
        if (e == BIC_OK)
            assert_true(m.len == fr.dlc - 2 && m.len <= 6);
    }
    assert_true(ok > 0); /* the generator does reach valid replies */
}

int main(void)
{
    F = bic_family_bic();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_complete), cmocka_unit_test(test_table_attributes),
        cmocka_unit_test(test_lookup_names),   cmocka_unit_test(test_manual_examples),
        cmocka_unit_test(test_signed_decodes), cmocka_unit_test(test_rounding),
        cmocka_unit_test(test_fault_status),   cmocka_unit_test(test_system_status_manual_bits),
        cmocka_unit_test(test_system_config),  cmocka_unit_test(test_bidir_and_fields),
        cmocka_unit_test(test_scaling_factor), cmocka_unit_test(test_model_detection),
        cmocka_unit_test(test_revision),       cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_encode_errors),  cmocka_unit_test(test_decode_reply_errors),
        cmocka_unit_test(test_decode_request), cmocka_unit_test(test_reply_matching),
        cmocka_unit_test(test_npb_family),     cmocka_unit_test(test_random_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
