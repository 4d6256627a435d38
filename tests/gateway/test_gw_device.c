/*
 * Unit tests for the device model helpers: configured types, effective limits (model table for
 * the mode intersected with [DEVICE]), register ranges, register and telemetry JSON, what the
 * gateway knows a register holds without reading it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "gw_device.h"

static gw_dev_t s_dev(int variant, bic_mode_t mode)
{
    gw_dev_t d;
    memset(&d, 0, sizeof d);
    uint8_t b0[6], b1[6];
    assert_int_equal(bic_model_encode(bic_family_bic(), variant, b0, b1), BIC_OK);
    assert_int_equal(bic_model_parse(b0, b1, &d.model, NULL, 0), BIC_OK);
    bic_scaling_fixed(&d.scaling);
    d.mode = mode;
    d.identified = true;
    return d;
}

static void test_type_names(void **state)
{
    (void)state;
    assert_int_equal(gw_type_variant("BIC2200-24CAN"), 24);
    assert_int_equal(gw_type_variant("bic2200-96can"), 96);
    assert_int_equal(gw_type_variant(""), 0);
    assert_int_equal(gw_type_variant(NULL), 0);
    assert_int_equal(gw_type_variant("BIC2200-36CAN"), -1);
    assert_int_equal(gw_type_variant("NPB-1200-24"), -1);
}

static void test_limits_model_only(void **state)
{
    (void)state;
    gw_dev_t d = s_dev(24, BIC_MODE_BATTERY);
    char err[160];
    assert_int_equal(gw_dev_compute_limits(&d, err, sizeof err), 0);
    assert_int_equal(d.limits.vout.min_raw, 1900);
    assert_int_equal(d.limits.vout.max_raw, 2800);
    assert_int_equal(d.limits.iout.min_raw, 90);
    assert_int_equal(d.limits.iout.max_raw, 9000); /* battery mode: 90 A */
    assert_int_equal(d.limits.rev_iout.max_raw, 7650);
    d.mode = BIC_MODE_AUTO;
    assert_int_equal(gw_dev_compute_limits(&d, err, sizeof err), 0);
    assert_int_equal(d.limits.iout.max_raw, 9900); /* auto-detect: 99 A */
}

static void test_limits_intersected_with_config(void **state)
{
    (void)state;
    gw_dev_t d = s_dev(48, BIC_MODE_BATTERY);
    d.cfg.present = true;
    d.cfg.charge_v_raw = 5520;
    d.cfg.discharge_v_raw = 4800;
    d.cfg.max_charge_raw = 2000;
    d.cfg.max_discharge_raw = 9999; /* above the model: the model wins */
    d.cfg.min_current_raw = 900;    /* e.g. 20 % on old firmware */
    char err[160];
    assert_int_equal(gw_dev_compute_limits(&d, err, sizeof err), 0);
    /* the battery's window holds on both sides of both voltages: VOUT_SET not below the
     * discharge end voltage, REVERSE_VOUT_SET not above the charge voltage */
    assert_int_equal(d.limits.vout.min_raw, 4800);
    assert_int_equal(d.limits.vout.max_raw, 5520);
    assert_int_equal(d.limits.rev_vout.min_raw, 4800);
    assert_int_equal(d.limits.rev_vout.max_raw, 5520);
    assert_int_equal(d.limits.iout.min_raw, 900);
    assert_int_equal(d.limits.iout.max_raw, 2000);
    assert_int_equal(d.limits.rev_iout.min_raw, 900);
    assert_int_equal(d.limits.rev_iout.max_raw, 3830);
    /* limits that leave nothing are an error naming the register, not a silent clamp */
    d.cfg.max_charge_raw = 500;
    assert_int_equal(gw_dev_compute_limits(&d, err, sizeof err), -1);
    assert_non_null(strstr(err, "IOUT_SET"));
    /* a 24 V ChargeVoltage on a 48 V device leaves no VOUT_SET either */
    d.cfg.max_charge_raw = 2000;
    d.cfg.charge_v_raw = 2760;
    assert_int_equal(gw_dev_compute_limits(&d, err, sizeof err), -1);
    assert_non_null(strstr(err, "VOUT_SET"));
}

static void test_register_ranges(void **state)
{
    (void)state;
    gw_dev_t d = s_dev(12, BIC_MODE_AUTO);
    char err[160];
    gw_dev_compute_limits(&d, err, sizeof err);
    const bic_family_t *f = bic_family_bic();
    int32_t lo, hi;
    gw_dev_reg_range(&d, bic_cmd_by_code(f, BIC_CMD_VOUT_SET), &lo, &hi);
    assert_int_equal(lo, 1000);
    assert_int_equal(hi, 1500);
    gw_dev_reg_range(&d, bic_cmd_by_code(f, BIC_CMD_OPERATION), &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 1);
    const bic_cmd_t *sc = bic_cmd_by_code(f, BIC_CMD_SYSTEM_CONFIG);
    gw_dev_reg_range(&d, sc, &lo, &hi);
    assert_int_equal(hi, 0x0605);
    char why[256];
    /* the values in use: 0x0003, 0x0403, 0x0205, 0x0401, all bits allowed at once */
    assert_int_equal(gw_dev_check_value(&d, sc, 0x0003, why, sizeof why), 0);
    assert_int_equal(gw_dev_check_value(&d, sc, 0x0403, why, sizeof why), 0);
    assert_int_equal(gw_dev_check_value(&d, sc, 0x0205, why, sizeof why), 0);
    assert_int_equal(gw_dev_check_value(&d, sc, 0x0605, why, sizeof why), 0);
    /* reserved bits and reserved field values inside the numeric range are refused */
    assert_int_equal(gw_dev_check_value(&d, sc, 0x0007, why, sizeof why), -1);
    assert_non_null(strstr(why, "OPERATION_INIT 11"));
    assert_int_equal(gw_dev_check_value(&d, sc, 0x0300, why, sizeof why), -1);
    assert_non_null(strstr(why, "EEP_CONFIG 11"));
    assert_int_equal(gw_dev_check_value(&d, sc, 0x0010, why, sizeof why), -1);
    assert_non_null(strstr(why, "reserved bits"));
    assert_int_equal(gw_dev_check_value(&d, sc, 0x0800, why, sizeof why), -1);
    const bic_cmd_t *vs = bic_cmd_by_code(f, BIC_CMD_VOUT_SET);
    assert_int_equal(gw_dev_check_value(&d, vs, 1500, why, sizeof why), 0);
    assert_int_equal(gw_dev_check_value(&d, vs, 1501, why, sizeof why), -1);
    assert_int_equal(gw_dev_check_value(&d, vs, -1, why, sizeof why), -1);
}

static void test_register_json(void **state)
{
    (void)state;
    gw_dev_t d = s_dev(24, BIC_MODE_AUTO);
    const bic_family_t *f = bic_family_bic();
    uint8_t vout[2] = {0x51, 0x0A}; /* 2641 */
    cJSON *o = gw_reg_json(&d, bic_cmd_by_code(f, BIC_CMD_READ_VOUT), vout, 2);
    assert_true(fabs(cJSON_GetObjectItem(o, "value")->valuedouble - 26.41) < 1e-9);
    assert_string_equal(cJSON_GetObjectItem(o, "unit")->valuestring, "V");
    assert_int_equal(cJSON_GetObjectItem(o, "raw")->valueint, 2641);
    cJSON_Delete(o);
    uint8_t iout[2] = {0x32, 0xFB}; /* -1230 as s16 */
    o = gw_reg_json(&d, bic_cmd_by_code(f, BIC_CMD_READ_IOUT), iout, 2);
    assert_true(fabs(cJSON_GetObjectItem(o, "value")->valuedouble + 12.30) < 1e-9);
    cJSON_Delete(o);
    uint8_t fault[2] = {0x02, 0x00}; /* OTP */
    o = gw_reg_json(&d, bic_cmd_by_code(f, BIC_CMD_FAULT_STATUS), fault, 2);
    cJSON *bits = cJSON_GetObjectItem(o, "bits");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(bits, "otp")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(bits, "ovp")));
    cJSON_Delete(o);
    uint8_t model[6] = {'B', 'I', 'C', '-', '2', '2'};
    o = gw_reg_json(&d, bic_cmd_by_code(f, BIC_CMD_MFR_MODEL_B0B5), model, 6);
    assert_string_equal(cJSON_GetObjectItem(o, "value")->valuestring, "BIC-22");
    assert_string_equal(cJSON_GetObjectItem(o, "raw")->valuestring, "4249432D3232");
    cJSON_Delete(o);
    uint8_t rev[6] = {0x0E, 0x0D, 0xFF, 0xFF, 0xFF, 0xFF};
    o = gw_reg_json(&d, bic_cmd_by_code(f, BIC_CMD_MFR_REVISION_B0B5), rev, 6);
    cJSON *mcu = cJSON_GetObjectItem(o, "mcu");
    assert_int_equal(cJSON_GetArraySize(mcu), 2);
    assert_string_equal(cJSON_GetArrayItem(mcu, 0)->valuestring, "R01.4");
    cJSON_Delete(o);
    /* a short reply does not turn into a number */
    o = gw_reg_json(&d, bic_cmd_by_code(f, BIC_CMD_READ_VOUT), vout, 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "value")));
    cJSON_Delete(o);
}

static void test_telemetry_json(void **state)
{
    (void)state;
    gw_dev_t d = s_dev(24, BIC_MODE_BATTERY);
    d.addr = 2;
    d.online = true;
    d.cache[TREG_READ_VOUT] = (gw_cached_t){true, 2641, 1000, false};
    d.cache[TREG_READ_IOUT] = (gw_cached_t){true, -1230, 1000, false};
    d.cache[TREG_DIRECTION] = (gw_cached_t){true, 1, 1000, false};
    d.fast_at = 1000;
    cJSON *t = gw_dev_telemetry(&d, 41000, 1732960000123LL);
    assert_int_equal(cJSON_GetObjectItem(t, "dev")->valueint, 2);
    assert_true(fabs(cJSON_GetObjectItem(t, "dc_w")->valuedouble + 324.8) < 0.05);
    assert_string_equal(cJSON_GetObjectItem(t, "direction")->valuestring, "discharge");
    assert_string_equal(cJSON_GetObjectItem(t, "mode")->valuestring, "battery");
    /* what was never read is null, not 0 */
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(t, "ac_v")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(t, "fault")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(t, "fans")));
    cJSON *age = cJSON_GetObjectItem(t, "age_ms");
    assert_int_equal(cJSON_GetObjectItem(age, "fast")->valueint, 40);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(age, "slow")));
    cJSON_Delete(t);
}

static void test_treg_table(void **state)
{
    (void)state;
    for (int i = 0; i < TREG_COUNT; i++)
        assert_int_equal(gw_treg_slot(gw_treg_cmd(i)), i);
    assert_int_equal(gw_treg_slot(BIC_CMD_MFR_ID_B0B5), -1);
}

/* What the gateway may know without a read: a fresh telemetry or read-back value, not one from
 * before the device went away or came back (maybe power cycled onto its stored values), not an
 * old one, and nothing while another CAN master was seen lately. */
static void test_known_values(void **state)
{
    (void)state;
    const int64_t S = 1000000;
    gw_dev_t d = s_dev(24, BIC_MODE_BATTERY);
    d.online = true;
    int slot = gw_treg_slot(BIC_CMD_IOUT_SET);
    d.cache[slot] = (gw_cached_t){.valid = true, .raw = 1200, .at = 100 * S};
    int32_t raw = 0;
    assert_true(gw_dev_known(&d, BIC_CMD_IOUT_SET, 101 * S, 2 * S, INT64_MIN, &raw));
    assert_int_equal(raw, 1200);
    /* a write went out after the read (its read-back may be lost): not known until read */
    d.cache[slot].written = true;
    assert_false(gw_dev_known(&d, BIC_CMD_IOUT_SET, 101 * S, 2 * S, INT64_MIN, &raw));
    d.cache[slot].written = false;
    /* too old */
    assert_false(gw_dev_known(&d, BIC_CMD_IOUT_SET, 103 * S, 2 * S, INT64_MIN, &raw));
    /* not a register the gateway reads */
    assert_false(gw_dev_known(&d, BIC_CMD_VOUT_SET + 1, 101 * S, 2 * S, INT64_MIN, &raw));
    /* came back after an outage (a power cycle restores the stored values) */
    d.known_since = 100 * S + 1;
    assert_false(gw_dev_known(&d, BIC_CMD_IOUT_SET, 101 * S, 2 * S, INT64_MIN, &raw));
    d.cache[slot].at = 100 * S + 500000; /* read again since */
    assert_true(gw_dev_known(&d, BIC_CMD_IOUT_SET, 101 * S, 2 * S, INT64_MIN, &raw));
    /* its RAM setpoints not checked yet after coming back */
    d.back_at = 100 * S;
    assert_false(gw_dev_known(&d, BIC_CMD_IOUT_SET, 101 * S, 2 * S, INT64_MIN, &raw));
    d.back_at = 0;
    /* offline, or not identified */
    d.online = false;
    assert_false(gw_dev_known(&d, BIC_CMD_IOUT_SET, 101 * S, 2 * S, INT64_MIN, &raw));
    d.online = true;
    d.identified = false;
    assert_false(gw_dev_known(&d, BIC_CMD_IOUT_SET, 101 * S, 2 * S, INT64_MIN, &raw));
    d.identified = true;
    /* another CAN master sent a request: nothing is known for the hold time after it, even
     * values read since */
    assert_false(gw_dev_known(&d, BIC_CMD_IOUT_SET, 101 * S, 2 * S, 99 * S, &raw));
    int64_t later = 99 * S + GW_KNOWN_FOREIGN_HOLD_US + S;
    d.cache[slot].at = later - S / 2;
    assert_true(gw_dev_known(&d, BIC_CMD_IOUT_SET, later, 2 * S, 99 * S, &raw));
    /* ... and a value read before its last request is not known, however long ago it was */
    d.cache[slot].at = 99 * S - 1;
    assert_false(gw_dev_known(&d, BIC_CMD_IOUT_SET, later, later, 99 * S, &raw));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_limits_model_only),
        cmocka_unit_test(test_limits_intersected_with_config),
        cmocka_unit_test(test_register_ranges),
        cmocka_unit_test(test_register_json),
        cmocka_unit_test(test_telemetry_json),
        cmocka_unit_test(test_treg_table),
        cmocka_unit_test(test_known_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
