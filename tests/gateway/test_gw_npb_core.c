/*
 * Unit tests for the gateway's NPB helpers (gw_npb.h): identification by MFR_MODEL and the
 * configured type, limits from the model and the [NPB] window, the register checks, which
 * telemetry registers each family polls, and the writes of a setpoint and of the safe state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gw_npb.h"

/* An identified NPB-1200-24 at address 3 (device 67). */
static gw_dev_t s_npb(void)
{
    gw_dev_t d;
    memset(&d, 0, sizeof d);
    d.addr = GW_NPB_BASE + 3;
    uint8_t b0[6], b1[6];
    npb_model_encode(npb_model_find(1200, 24), b0, b1);
    char why[200];
    assert_int_equal(gw_npb_identify(&d, b0, b1, why, sizeof why), 0);
    assert_int_equal(gw_npb_compute_limits(&d, why, sizeof why), 0);
    return d;
}

static void s_cache(gw_dev_t *d, int slot, int32_t raw)
{
    d->cache[slot].valid = true;
    d->cache[slot].raw = raw;
}

static void test_numbers_and_family(void **state)
{
    (void)state;
    assert_false(GW_DEV_IS_NPB(63));
    assert_true(GW_DEV_IS_NPB(64) && GW_DEV_IS_NPB(67));
    assert_false(GW_DEV_IS_NPB(68));
    assert_int_equal(gw_dev_bus_addr(67), 3);
    assert_int_equal(gw_dev_bus_addr(5), 5);
    assert_int_equal(gw_dev_family(67)->id, BIC_FAMILY_NPB);
    assert_int_equal(gw_dev_family(0)->id, BIC_FAMILY_BIC);
    assert_non_null(gw_dev_cmd(67, NPB_CMD_CURVE_CC));
    assert_null(gw_dev_cmd(0, NPB_CMD_CURVE_CC));
    assert_null(gw_dev_cmd(67, BIC_CMD_REVERSE_VOUT_SET));
    assert_string_equal(gw_cmd_any(NPB_CMD_CURVE_CV)->name, "CURVE_CV");
    can_filter_spec_t f[8];
    assert_int_equal(gw_npb_rx_filters(f, 8), 5); /* the BICs' range and four NPB ids */
}

static void test_identify(void **state)
{
    (void)state;
    gw_dev_t d = s_npb();
    assert_string_equal(d.npb->name, "NPB-1200-24");
    /* a BIC's text, an NPB not in the table, another model than configured: refused */
    uint8_t b0[6], b1[6];
    char why[300];
    bic_model_encode(bic_family_bic(), 24, b0, b1);
    assert_int_equal(gw_npb_identify(&d, b0, b1, why, sizeof why), -1);
    assert_non_null(strstr(why, "not a supported NPB"));
    memcpy(b0, "NPB-90", 6);
    memcpy(b1, "0-24  ", 6);
    assert_int_equal(gw_npb_identify(&d, b0, b1, why, sizeof why), -1);
    assert_non_null(strstr(why, "NPB-1700-48")); /* names the known models */
    d.cfg.present = true;
    d.cfg.npb_type = npb_model_find(750, 24);
    npb_model_encode(npb_model_find(1200, 24), b0, b1);
    assert_int_equal(gw_npb_identify(&d, b0, b1, why, sizeof why), -1);
    assert_non_null(strstr(why, "type mismatch: configured NPB-750-24"));
}

static void test_limits_and_checks(void **state)
{
    (void)state;
    gw_dev_t d = s_npb();
    assert_int_equal(d.limits.vout.min_raw, 2100);
    assert_int_equal(d.limits.vout.max_raw, 4200);
    assert_int_equal(d.limits.iout.min_raw, 720);
    assert_int_equal(d.limits.iout.max_raw, 3600);
    /* the [NPB] window narrows the top */
    d.cfg.present = true;
    d.cfg.max_charge_raw = 3000;
    d.cfg.charge_v_raw = 2900;
    char why[300];
    assert_int_equal(gw_npb_compute_limits(&d, why, sizeof why), 0);
    int32_t lo, hi;
    gw_npb_reg_range(&d, NPB_CMD_CURVE_CC, &lo, &hi);
    assert_int_equal(lo, 720);
    assert_int_equal(hi, 3000);
    gw_npb_reg_range(&d, NPB_CMD_CURVE_FV, &lo, &hi);
    assert_int_equal(hi, 2900);
    const bic_cmd_t *cc = gw_dev_cmd(d.addr, NPB_CMD_CURVE_CC);
    const bic_cmd_t *cfg = gw_dev_cmd(d.addr, NPB_CMD_CURVE_CONFIG);
    assert_int_equal(gw_npb_check_value(&d, cc, 2500, why, sizeof why), 0);
    assert_int_equal(gw_npb_check_value(&d, cc, 3100, why, sizeof why), -1);
    assert_non_null(strstr(why, "[NPB] limits"));
    assert_int_equal(gw_npb_check_value(&d, cc, 500, why, sizeof why), -1);
    assert_int_equal(gw_npb_check_value(&d, cfg, 0x0884, why, sizeof why), 0);
    assert_int_equal(gw_npb_check_value(&d, cfg, 0x1084, why, sizeof why), -1);
    /* a window below the model's minimum leaves nothing: the device stays offline */
    d.cfg.charge_v_raw = 2000;
    assert_int_equal(gw_npb_compute_limits(&d, why, sizeof why), -1);
    assert_non_null(strstr(why, "ChargeVoltage"));
}

static void test_curve_as_a_whole(void **state)
{
    (void)state;
    gw_dev_t d = s_npb();
    char why[200];
    int32_t lo = 2100, hi = 4200;
    /* nothing read yet: nothing to hold against */
    assert_int_equal(gw_npb_check_curve(&d, NPB_CMD_CURVE_FV, 3000, &lo, &hi, why, sizeof why), 0);
    s_cache(&d, TREG_CURVE_CV, 2880);
    s_cache(&d, TREG_CURVE_FV, 2760);
    s_cache(&d, TREG_CURVE_CC, 1000);
    assert_int_equal(gw_npb_check_curve(&d, NPB_CMD_CURVE_FV, 2880, &lo, &hi, why, sizeof why), 0);
    assert_int_equal(gw_npb_check_curve(&d, NPB_CMD_CURVE_FV, 2881, &lo, &hi, why, sizeof why), -1);
    assert_int_equal(hi, 2880);
    assert_non_null(strstr(why, "28.80 V"));
    lo = 2100;
    assert_int_equal(gw_npb_check_curve(&d, NPB_CMD_CURVE_CV, 2700, &lo, &hi, why, sizeof why), -1);
    assert_int_equal(lo, 2760);
    hi = 1800;
    assert_int_equal(gw_npb_check_curve(&d, NPB_CMD_CURVE_TC, 1000, &lo, &hi, why, sizeof why), -1);
    assert_int_equal(hi, 999);
    assert_int_equal(gw_npb_check_curve(&d, NPB_CMD_CURVE_TC, 999, &lo, &hi, why, sizeof why), 0);
}

static void test_polled_registers(void **state)
{
    (void)state;
    gw_dev_t n = s_npb();
    gw_dev_t b;
    memset(&b, 0, sizeof b);
    b.fans = true;
    assert_true(gw_npb_slot_applies(&n, TREG_CHG_STATUS));
    assert_true(gw_npb_slot_applies(&n, TREG_CURVE_CONFIG));
    assert_true(gw_npb_slot_applies(&n, TREG_READ_VIN)); /* an NPB-1200 has it */
    assert_false(gw_npb_slot_applies(&n, TREG_DIRECTION));
    assert_false(gw_npb_slot_applies(&n, TREG_REV_IOUT_SET));
    assert_false(gw_npb_slot_applies(&n, TREG_FAN1));
    assert_false(gw_npb_slot_applies(&b, TREG_CHG_STATUS));
    assert_true(gw_npb_slot_applies(&b, TREG_FAN2));
    assert_true(gw_npb_slot_applies(&b, TREG_DIRECTION));
    n.npb = npb_model_find(450, 24);
    assert_false(gw_npb_slot_applies(&n, TREG_READ_VIN));
}

static void test_plans(void **state)
{
    (void)state;
    gw_dev_t d = s_npb();
    bic_plan_write_t w[BIC_PLAN_MAX];
    /* charger mode, output on, CC changes: CC, then OFF -> ON so it acts */
    s_cache(&d, TREG_CURVE_CONFIG, 0x0084);
    s_cache(&d, TREG_OPERATION, 1);
    s_cache(&d, TREG_CURVE_CC, 3600);
    assert_int_equal(gw_npb_plan(&d, BIC_PLAN_CHARGE, 1000, w), 3);
    assert_int_equal(w[0].cmd, NPB_CMD_CURVE_CC);
    assert_int_equal(w[0].raw, 1000);
    assert_int_equal(w[1].cmd, BIC_CMD_OPERATION);
    assert_int_equal(w[1].raw, 0);
    assert_int_equal(w[2].raw, 1);
    /* the same CC: no restart */
    s_cache(&d, TREG_CURVE_CC, 1000);
    assert_int_equal(gw_npb_plan(&d, BIC_PLAN_CHARGE, 1000, w), 2);
    assert_int_equal(w[1].cmd, BIC_CMD_OPERATION);
    assert_int_equal(w[1].raw, 1);
    /* PSU mode: IOUT_SET, no restart needed */
    s_cache(&d, TREG_CURVE_CONFIG, 0x0004);
    assert_false(gw_npb_charger_mode(&d));
    assert_int_equal(gw_npb_plan(&d, BIC_PLAN_CHARGE, 1500, w), 2);
    assert_int_equal(w[0].cmd, BIC_CMD_IOUT_SET);
    /* idle, off, stop and the safe states: the output off; discharge: none */
    static const bic_plan_mode_t offs[] = {BIC_PLAN_IDLE_OFF, BIC_PLAN_IDLE_MIN, BIC_PLAN_OFF,
                                           BIC_PLAN_STOP};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        assert_int_equal(gw_npb_plan(&d, offs[i], 0, w), 1);
        assert_int_equal(w[0].cmd, BIC_CMD_OPERATION);
        assert_int_equal(w[0].raw, 0);
    }
    assert_int_equal(gw_npb_plan(&d, BIC_PLAN_DISCHARGE, 1000, w), -1);
}

static void test_telemetry(void **state)
{
    (void)state;
    gw_dev_t d = s_npb();
    d.identified = d.online = true;
    s_cache(&d, TREG_CHG_STATUS, 0x0009); /* float and full: float */
    s_cache(&d, TREG_CURVE_CC, 1000);
    s_cache(&d, TREG_CURVE_CONFIG, 0x0084);
    s_cache(&d, TREG_SYSSTATUS, 0x0022); /* DC_OK, initialising */
    cJSON *t = gw_dev_telemetry(&d, 0, 0);
    assert_string_equal(cJSON_GetObjectItem(t, "family")->valuestring, "NPB");
    assert_string_equal(cJSON_GetObjectItem(t, "stage")->valuestring, "float");
    assert_string_equal(cJSON_GetObjectItem(t, "direction")->valuestring, "charge");
    cJSON *c = cJSON_GetObjectItem(t, "curve");
    assert_true(cJSON_GetObjectItem(c, "cc_a")->valuedouble == 10.0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(c, "cv_v")));
    assert_string_equal(cJSON_GetObjectItem(c, "mode")->valuestring, "charger");
    cJSON *s = cJSON_GetObjectItem(t, "status");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(s, "initialising")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "charge_status"), "fvm")));
    cJSON_Delete(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_and_family),
        cmocka_unit_test(test_identify),
        cmocka_unit_test(test_limits_and_checks),
        cmocka_unit_test(test_polled_registers),
        cmocka_unit_test(test_plans),
        cmocka_unit_test(test_telemetry),
        cmocka_unit_test(test_curve_as_a_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
