/*  test_npb_proto.c - the NPB layer: the model table against its sources (docs/npb.md), the
    ranges under the current-minimum option, writes refused with a message naming what is
    allowed, model detection from MFR_MODEL, the CURVE_CONFIG and CHG_STATUS decoders with the
    protocol notes' example 0x0884 byte for byte, the charge stage, and the DC_OK polarity
    option with its cross-check against READ_VOUT.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "npb_proto.h"

static void assert_frame(const can_frame_t *fr, uint32_t id, const char *hex)
{
    assert_true(fr->ext);
    assert_int_equal(fr->id, id);
    char got[17] = "";
    for (int i = 0; i < fr->dlc; i++)
        snprintf(got + 2 * i, 3, "%02X", fr->data[i]);
    assert_string_equal(got, hex);
}

static void test_models(void **state)
{
    (void)state;
    size_t n = 0;
    const npb_model_t *all = npb_models(&n);
    assert_int_equal(n, 12); /* 450, 750, 1200, 1700 x 12/24/48 */
    for (size_t i = 0; i < n; i++) {
        const npb_model_t *m = &all[i];
        assert_ptr_equal(npb_model_find(m->power_w, m->volts), m);
        assert_ptr_equal(npb_model_by_name(m->name), m);
        assert_true(m->vmin_raw < m->float_raw && m->float_raw < m->boost_raw);
        assert_true(m->boost_raw <= m->vmax_raw);
        assert_non_null(m->source);
        /* the rated power covers the maximum current at the boost voltage within 10 % */
        double w = (double)m->imax_raw / 100.0 * (double)m->boost_raw / 100.0;
        assert_true(w <= m->power_w * 1.1);
    }
    /* §15.4: NPB-1200-24 7.2-36 A, NPB-1200-48 3.6-18 A, 12 V NPB-1200 10.5-17.5 V */
    const npb_model_t *m = npb_model_by_name("npb-1200-24");
    assert_non_null(m);
    assert_int_equal(m->imax_raw, 3600);
    bic_range_t r;
    assert_int_equal(npb_range(m, NULL, NPB_CMD_CURVE_CC, &r), BIC_OK);
    assert_int_equal(r.min_raw, 720);
    assert_int_equal(r.max_raw, 3600);
    assert_int_equal(npb_range(npb_model_find(1200, 48), NULL, BIC_CMD_IOUT_SET, &r), BIC_OK);
    assert_int_equal(r.min_raw, 360);
    assert_int_equal(r.max_raw, 1800);
    assert_int_equal(npb_range(npb_model_find(1200, 12), NULL, NPB_CMD_CURVE_CV, &r), BIC_OK);
    assert_int_equal(r.min_raw, 1050);
    assert_int_equal(r.max_raw, 1750);
    /* the NPB-450 datasheet: 25 / 13.5 / 6.8 A, 10.5-21 / 21-42 / 42-80 V */
    assert_int_equal(npb_model_find(450, 12)->imax_raw, 2500);
    assert_int_equal(npb_model_find(450, 24)->imax_raw, 1350);
    assert_int_equal(npb_model_find(450, 48)->imax_raw, 680);
    assert_int_equal(npb_model_find(450, 48)->vmax_raw, 8000);
    assert_false(npb_model_find(450, 24)->read_vin); /* not on NPB-450/750 */
    assert_true(npb_model_find(1700, 24)->read_vin);
    /* zero-padded spelling, unknown ones */
    assert_ptr_equal(npb_model_by_name("NPB-0450-12"), npb_model_find(450, 12));
    assert_null(npb_model_by_name("NPB-450-72"));
    assert_null(npb_model_by_name("NPB-2000-24"));
    assert_null(npb_model_by_name("BIC-2200-24"));
    assert_null(npb_model_by_name("NPB-1200"));
    assert_null(npb_model_by_name("NPB-1200-24x"));
}

static void test_ranges_and_options(void **state)
{
    (void)state;
    const npb_model_t *m = npb_model_find(1200, 24);
    npb_options_t o;
    npb_options_default(&o);
    assert_int_equal(o.iout_min_pct, 20);
    assert_int_equal(o.dc_ok, NPB_DCOK_ONE_IS_NORMAL);
    char err[256];
    assert_int_equal(npb_options_validate(&o, err, sizeof err), 0);
    /* the other source's 50 % minimum */
    o.iout_min_pct = 50;
    assert_int_equal(npb_options_validate(&o, err, sizeof err), 0);
    bic_range_t r;
    assert_int_equal(npb_range(m, &o, NPB_CMD_CURVE_CC, &r), BIC_OK);
    assert_int_equal(r.min_raw, 1800);
    assert_int_equal(npb_check_write(m, &o, NPB_CMD_CURVE_CC, 1799, err, sizeof err), BIC_E_RANGE);
    assert_non_null(strstr(err, "18.00 A to 36.00 A"));
    o.iout_min_pct = 19;
    assert_int_equal(npb_options_validate(&o, err, sizeof err), -1);
    assert_non_null(strstr(err, "20 to 100"));
    o.iout_min_pct = 101;
    assert_int_equal(npb_options_validate(&o, err, sizeof err), -1);
    npb_options_default(&o);

    /* bounds of every ranged register: min and max accepted, one step past refused */
    static const uint16_t codes[] = {
        BIC_CMD_VOUT_SET,         BIC_CMD_IOUT_SET,         NPB_CMD_CURVE_CC,
        NPB_CMD_CURVE_CV,         NPB_CMD_CURVE_FV,         NPB_CMD_CURVE_TC,
        NPB_CMD_CURVE_CC_TIMEOUT, NPB_CMD_CURVE_CV_TIMEOUT, NPB_CMD_CURVE_FV_TIMEOUT,
        NPB_CMD_CHG_RST_VBAT,     BIC_CMD_OPERATION};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_int_equal(npb_range(m, &o, codes[i], &r), BIC_OK);
        assert_true(r.min_raw <= r.def_raw && r.def_raw <= r.max_raw);
        assert_int_equal(npb_check_write(m, &o, codes[i], r.min_raw, err, sizeof err), BIC_OK);
        assert_int_equal(npb_check_write(m, &o, codes[i], r.max_raw, err, sizeof err), BIC_OK);
        assert_int_equal(npb_check_write(m, &o, codes[i], r.max_raw + 1, err, sizeof err),
                         BIC_E_RANGE);
        if (r.min_raw > 0)
            assert_int_equal(npb_check_write(m, &o, codes[i], r.min_raw - 1, err, sizeof err),
                             BIC_E_RANGE);
    }
    assert_int_equal(npb_check_write(m, &o, NPB_CMD_CURVE_CV, 4201, err, sizeof err), BIC_E_RANGE);
    assert_string_equal(err,
                        "CURVE_CV 42.01 V is out of range for NPB-1200-24 (allowed: 21.00 V to "
                        "42.00 V)");
    assert_int_equal(npb_check_write(m, &o, NPB_CMD_CURVE_CC_TIMEOUT, 59, err, sizeof err),
                     BIC_E_RANGE);
    assert_non_null(strstr(err, "60 min to 64800 min"));
    /* the most negative value a caller can pass is named, not mangled */
    assert_int_equal(npb_check_write(m, &o, NPB_CMD_CURVE_CV, INT32_MIN, err, sizeof err),
                     BIC_E_RANGE);
    assert_non_null(strstr(err, "CURVE_CV -21474836.48 V"));
    /* timeouts default 600 min (§15.2) */
    assert_int_equal(npb_range(m, &o, NPB_CMD_CURVE_FV_TIMEOUT, &r), BIC_OK);
    assert_int_equal(r.def_raw, 600);
    /* bitfields: only defined bits */
    assert_int_equal(npb_check_write(m, &o, NPB_CMD_CURVE_CONFIG, 0x0884, err, sizeof err), BIC_OK);
    assert_int_equal(npb_check_write(m, &o, NPB_CMD_CURVE_CONFIG, 0x2084, err, sizeof err),
                     BIC_E_RANGE);
    assert_non_null(strstr(err, "0x0FCF"));
    assert_int_equal(npb_check_write(m, &o, BIC_CMD_SYSTEM_CONFIG, 0x0402, err, sizeof err),
                     BIC_OK);
    assert_int_equal(npb_check_write(m, &o, BIC_CMD_SYSTEM_CONFIG, 0x0001, err, sizeof err),
                     BIC_E_RANGE);
    /* read-only, unknown and BIC-only commands */
    assert_int_equal(npb_check_write(m, &o, NPB_CMD_CHG_STATUS, 0, err, sizeof err),
                     BIC_E_READ_ONLY);
    assert_int_equal(npb_check_write(m, &o, BIC_CMD_REVERSE_VOUT_SET, 2500, err, sizeof err),
                     BIC_E_UNKNOWN_CMD);
    assert_int_equal(npb_check_write(m, &o, BIC_CMD_DIRECTION_CTRL, 0, err, sizeof err),
                     BIC_E_UNKNOWN_CMD);
    /* the defaults form a consistent curve; an inverted one is refused */
    bic_range_t cc, cv, fv, tc, rst;
    npb_range(m, &o, NPB_CMD_CURVE_CC, &cc);
    npb_range(m, &o, NPB_CMD_CURVE_CV, &cv);
    npb_range(m, &o, NPB_CMD_CURVE_FV, &fv);
    npb_range(m, &o, NPB_CMD_CURVE_TC, &tc);
    npb_range(m, &o, NPB_CMD_CHG_RST_VBAT, &rst);
    assert_int_equal(npb_check_curve(cc.def_raw, cv.def_raw, fv.def_raw, tc.def_raw, rst.def_raw,
                                     err, sizeof err),
                     BIC_OK);
    assert_int_equal(npb_check_curve(3600, 2760, 2880, 360, 2520, err, sizeof err), BIC_E_RANGE);
    assert_non_null(strstr(err, "CURVE_FV must not exceed"));
    assert_int_equal(npb_check_curve(720, 2880, 2760, 720, 2520, err, sizeof err), BIC_E_RANGE);
    assert_int_equal(npb_check_curve(3600, 2880, 2760, 360, 2760, err, sizeof err), BIC_E_RANGE);
}

static void test_detect(void **state)
{
    (void)state;
    const npb_model_t *m = NULL;
    char err[512];
    uint8_t a[6], b[6];
    npb_model_encode(npb_model_find(1200, 24), a, b);
    assert_memory_equal(a, "NPB-12", 6);
    assert_memory_equal(b, "00-24 ", 6);
    assert_int_equal(npb_model_detect(a, b, &m, err, sizeof err), BIC_OK);
    assert_ptr_equal(m, npb_model_find(1200, 24));
    /* through bic_model_parse, as the gateway identifies a device */
    bic_model_t bm;
    assert_int_equal(bic_model_parse(a, b, &bm, NULL, 0), BIC_OK);
    assert_ptr_equal(npb_model_of(&bm), m);
    npb_model_encode(npb_model_find(450, 48), a, b);
    assert_memory_equal(b, "0-48  ", 6);
    assert_int_equal(npb_model_detect(a, b, &m, err, sizeof err), BIC_OK);
    assert_int_equal(m->power_w, 450);
    /* an NPB this table does not know: the message lists the known ones */
    assert_int_equal(
        npb_model_detect((const uint8_t *)"NPB-45", (const uint8_t *)"0-72  ", &m, err, sizeof err),
        BIC_E_RANGE);
    assert_null(m);
    assert_non_null(strstr(err, "unknown NPB model NPB-450-72"));
    assert_non_null(strstr(err, "NPB-1700-48"));
    /* a BIC is not an NPB */
    assert_int_equal(
        npb_model_detect((const uint8_t *)"BIC-22", (const uint8_t *)"00-24 ", &m, err, sizeof err),
        BIC_E_PARSE);
    assert_non_null(strstr(err, "not an NPB"));
    assert_int_equal(
        bic_model_parse((const uint8_t *)"BIC-22", (const uint8_t *)"00-24 ", &bm, NULL, 0),
        BIC_OK);
    assert_null(npb_model_of(&bm));
}

static void test_curve_config(void **state)
{
    (void)state;
    /* the common setting 0x0884 (§15.2): charger, -3 mV/degC/cell, restart enabled, sent to
       the default address 3 as B4 00 84 08 */
    const bic_family_t *f = bic_family_get(BIC_FAMILY_NPB);
    can_frame_t fr;
    assert_int_equal(bic_encode_write(f, NPB_ADDR_DEFAULT, NPB_CMD_CURVE_CONFIG, 0x0884, &fr),
                     BIC_OK);
    assert_frame(&fr, 0x000C0103, "B4008408");
    bic_msg_t msg;
    int32_t raw;
    fr.id = 0x000C0003; /* the reply to a read carries the same bytes */
    assert_int_equal(bic_decode_reply(f, &fr, &msg), BIC_OK);
    assert_int_equal(bic_data_to_raw(msg.cmd, msg.data, msg.len, &raw), BIC_OK);
    npb_curve_config_t c;
    npb_curve_config_decode((uint16_t)raw, &c);
    assert_int_equal(c.curve, 0);
    assert_int_equal(c.tcs, NPB_TCS_3MV);
    assert_int_equal(npb_tcs_mv(c.tcs), 3);
    assert_false(c.two_stage);
    assert_true(c.charger);
    assert_false(c.cc_timeout_en);
    assert_false(c.cv_timeout_en);
    assert_false(c.fv_timeout_en);
    assert_true(c.restart_en);
    assert_int_equal(c.reserved, 0);
    assert_int_equal(npb_curve_config_encode(&c), 0x0884);
    /* each bit where the table puts it (CCTOE 8, CVTOE 9: not the swapped helper's order) */
    npb_curve_config_decode(0x0100, &c);
    assert_true(c.cc_timeout_en);
    assert_false(c.cv_timeout_en);
    npb_curve_config_decode(0x0200, &c);
    assert_true(c.cv_timeout_en);
    npb_curve_config_decode(0x0400, &c);
    assert_true(c.fv_timeout_en);
    npb_curve_config_decode(0x0040 | 0x000C | 0x0003, &c);
    assert_true(c.two_stage);
    assert_false(c.charger); /* PSU mode */
    assert_int_equal(c.tcs, NPB_TCS_5MV);
    assert_string_equal(npb_tcs_name(c.tcs), "-5mV/C/cell");
    assert_string_equal(npb_curve_name(c.curve), "curve3");
    /* reserved bits survive a round trip; bit 13 (one source's CVTSSE) is kept as reserved */
    npb_curve_config_decode(0x2084, &c);
    assert_int_equal(c.reserved, 0x2000);
    assert_int_equal(npb_curve_config_encode(&c), 0x2084);
    for (uint32_t v = 0; v <= 0xFFFF; v += 0x0101) {
        npb_curve_config_decode((uint16_t)v, &c);
        assert_int_equal(npb_curve_config_encode(&c), v);
    }
}

static void test_chg_status(void **state)
{
    (void)state;
    npb_chg_status_t s;
    /* a reply B8 00 02 00 from the default address: CC stage */
    const bic_family_t *f = bic_family_get(BIC_FAMILY_NPB);
    can_frame_t fr = {.id = 0x000C0003, .ext = true, .dlc = 4, .data = {0xB8, 0x00, 0x02, 0x00}};
    bic_msg_t msg;
    int32_t raw;
    assert_int_equal(bic_decode_reply(f, &fr, &msg), BIC_OK);
    assert_int_equal(bic_data_to_raw(msg.cmd, msg.data, msg.len, &raw), BIC_OK);
    npb_chg_status_decode((uint16_t)raw, &s);
    assert_true(s.cc);
    assert_false(s.cv || s.fv || s.full);
    assert_int_equal(npb_stage_of((uint16_t)raw), NPB_STAGE_CC);
    assert_string_equal(npb_stage_name(NPB_STAGE_CC), "cc");
    assert_int_equal(npb_stage_of(0x0004), NPB_STAGE_CV);
    assert_int_equal(npb_stage_of(0x0009), NPB_STAGE_FLOAT); /* float and full */
    assert_string_equal(npb_stage_name(npb_stage_of(0x0009)), "float");
    assert_int_equal(npb_stage_of(0x0001), NPB_STAGE_FULL);
    assert_int_equal(npb_stage_of(0x0000), NPB_STAGE_IDLE);
    assert_int_equal(npb_stage_of(0x2002), NPB_STAGE_TIMEOUT); /* CCTOF */
    assert_int_equal(npb_stage_of(0x4000), NPB_STAGE_TIMEOUT);
    assert_int_equal(npb_stage_of(0x8001), NPB_STAGE_TIMEOUT);
    assert_int_equal(npb_stage_of(0x0801), NPB_STAGE_NO_BATTERY);
    npb_chg_status_decode(0xFFFF, &s);
    assert_true(s.full && s.cc && s.cv && s.fv && s.wakeup_stop && s.ntc_short && s.no_battery &&
                s.cc_timeout && s.cv_timeout && s.fv_timeout);
    assert_int_equal(s.reserved, 0x13B0);
    for (uint32_t v = 0; v <= 0xFFFF; v += 0x0103) {
        npb_chg_status_decode((uint16_t)v, &s);
        assert_int_equal(npb_chg_status_encode(&s), v);
    }
    npb_chg_status_decode(0x0400, &s);
    assert_true(s.ntc_short);
    assert_false(s.no_battery);
}

static void test_dc_ok(void **state)
{
    (void)state;
    const npb_model_t *m = npb_model_find(1200, 24);
    npb_options_t o;
    npb_options_default(&o);
    npb_sysstatus_t st;
    npb_sysstatus_decode(&o, 0x0002, &st);
    assert_true(st.dc_ok_bit);
    assert_true(st.dc_ok);
    assert_false(st.initialising);
    npb_sysstatus_decode(&o, 0x0060, &st); /* initialising, EEPROM error, DC_OK 0 */
    assert_true(st.initialising);
    assert_true(st.eeper);
    assert_false(st.dc_ok);
    assert_int_equal(st.reserved, 0);
    npb_dcok_polarity_t p;
    assert_int_equal(npb_dcok_parse("LOW", &p), 0);
    assert_int_equal(p, NPB_DCOK_ONE_IS_LOW);
    assert_int_equal(npb_dcok_parse("high", &p), -1);
    assert_string_equal(npb_dcok_name(NPB_DCOK_ONE_IS_LOW), "low");
    o.dc_ok = NPB_DCOK_ONE_IS_LOW;
    npb_sysstatus_decode(&o, 0x0002, &st);
    assert_true(st.dc_ok_bit);
    assert_false(st.dc_ok);
    /* cross-check: 26.40 V on a 21-42 V model is a normal output */
    assert_int_equal(npb_dcok_cross_check(m, &o, 0x0002, 2640), NPB_DCOK_CONTRADICTS);
    assert_int_equal(npb_dcok_cross_check(m, &o, 0x0000, 2640), NPB_DCOK_AGREES);
    o.dc_ok = NPB_DCOK_ONE_IS_NORMAL;
    assert_int_equal(npb_dcok_cross_check(m, &o, 0x0002, 2640), NPB_DCOK_AGREES);
    assert_int_equal(npb_dcok_cross_check(m, &o, 0x0002, 500), NPB_DCOK_CONTRADICTS);
    assert_int_equal(npb_dcok_cross_check(m, &o, 0x0000, 500), NPB_DCOK_AGREES);
    assert_int_equal(npb_dcok_cross_check(m, &o, 0x0002, 2000), NPB_DCOK_UNKNOWN); /* 19-21 V */
}

/* The NPB table entries keep the EEPROM budget honest: curve writes are persisted, and the
   registers that move the output are lease-protected. */
static void test_table_flags(void **state)
{
    (void)state;
    const bic_family_t *f = bic_family_get(BIC_FAMILY_NPB);
    static const uint16_t persisted[] = {0x00B0, 0x00B1, 0x00B2, 0x00B3, 0x00B4,
                                         0x00B5, 0x00B6, 0x00B7, 0x00B9};
    for (size_t i = 0; i < sizeof persisted / sizeof persisted[0]; i++) {
        const bic_cmd_t *c = bic_cmd_by_code(f, persisted[i]);
        assert_non_null(c);
        assert_true(c->persisted);
        assert_true(c->writable);
    }
    assert_true(bic_cmd_by_code(f, NPB_CMD_CURVE_CC)->output);
    assert_true(bic_cmd_by_code(f, NPB_CMD_CURVE_CONFIG)->output);
    assert_false(bic_cmd_by_code(f, NPB_CMD_CHG_STATUS)->writable);
    assert_false(bic_cmd_by_code(f, NPB_CMD_CHG_STATUS)->persisted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models),      cmocka_unit_test(test_ranges_and_options),
        cmocka_unit_test(test_detect),      cmocka_unit_test(test_curve_config),
        cmocka_unit_test(test_chg_status),  cmocka_unit_test(test_dc_ok),
        cmocka_unit_test(test_table_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
