/* test_npb_device.c - the simulated NPB charger through its frames: identity and silence,
 * the CC -> CV -> float curve with its taper, curve registers that act only after OFF -> ON,
 * stage timeouts, temperature compensation, the restart voltage (and firmware without it),
 * PSU mode, ranges, the EEPROM model, the --device syntax, and an NPB beside a BIC at the
 * same address on one bus. */
#include <math.h>
#include <stdio.h>

#include "sim_bus.h"
#include "sim_test_util.h"

static const bic_family_t *NPB;

static int32_t n_read(npb_device_t *dev, uint16_t cmd, int64_t now)
{
    can_frame_t req, rep;
    assert_int_equal(bic_encode_read(NPB, npb_device_addr(dev), cmd, &req), BIC_OK);
    assert_int_equal(npb_device_handle_frame(dev, &req, now, &rep), 1);
    bic_msg_t msg;
    assert_int_equal(bic_decode_reply(NPB, &rep, &msg), BIC_OK);
    assert_int_equal(rep.id, 0x000C0000u | npb_device_addr(dev));
    assert_int_equal(msg.code, cmd);
    int32_t raw = 0;
    if (msg.cmd->type != BIC_TYPE_ASCII && msg.cmd->type != BIC_TYPE_BYTES)
        assert_int_equal(bic_data_to_raw(msg.cmd, msg.data, msg.len, &raw), BIC_OK);
    return raw;
}

static int n_answers(npb_device_t *dev, uint16_t cmd, int64_t now)
{
    can_frame_t req, rep;
    assert_int_equal(bic_encode_read(NPB, npb_device_addr(dev), cmd, &req), BIC_OK);
    return npb_device_handle_frame(dev, &req, now, &rep);
}

static void n_write(npb_device_t *dev, uint16_t cmd, int32_t raw, int64_t now)
{
    can_frame_t req, rep;
    assert_int_equal(bic_encode_write(NPB, npb_device_addr(dev), cmd, raw, &req), BIC_OK);
    assert_int_equal(npb_device_handle_frame(dev, &req, now, &rep), 0);
}

static npb_device_t *n_new(const char *spec)
{
    npb_device_config_t cfg;
    battery_config_t bcfg;
    char err[512];
    if (npb_device_parse_spec(spec, &cfg, &bcfg, err, sizeof err) != 0)
        fail_msg("%s", err);
    npb_device_t *dev = npb_device_new(&cfg, &bcfg, 0);
    assert_non_null(dev);
    return dev;
}

/* Runs the device until its stage is want (checked every simulated second) or max_s pass;
 * returns the simulated time reached. */
static int64_t n_until_stage(npb_device_t *dev, npb_stage_t want, int64_t t, double max_s)
{
    for (double s = 0; s < max_s; s += 1) {
        t += SEC(1);
        npb_device_step(dev, t);
        if (npb_stage_of((uint16_t)n_read(dev, NPB_CMD_CHG_STATUS, t)) == want)
            return t;
    }
    fail_msg("stage %s not reached in %g s", npb_stage_name(want), max_s);
    return t;
}

static void test_identity_and_silence(void **state)
{
    (void)state;
    npb_device_t *dev = n_new("3:npb-1200-24");
    can_frame_t req, rep;
    /* MFR_MODEL "NPB-12" "00-24 " */
    assert_int_equal(bic_encode_read(NPB, 3, BIC_CMD_MFR_MODEL_B0B5, &req), BIC_OK);
    assert_int_equal(npb_device_handle_frame(dev, &req, 0, &rep), 1);
    assert_int_equal(rep.id, 0x000C0003);
    assert_int_equal(rep.dlc, 8);
    assert_memory_equal(rep.data + 2, "NPB-12", 6);
    assert_int_equal(bic_encode_read(NPB, 3, BIC_CMD_MFR_MODEL_B6B11, &req), BIC_OK);
    assert_int_equal(npb_device_handle_frame(dev, &req, 0, &rep), 1);
    assert_memory_equal(rep.data + 2, "00-24 ", 6);
    /* factory curve: 36 A, 28.8 V, 27.6 V, 0x0084; OPERATION 1 */
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CC, 0), 3600);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CV, 0), 2880);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_FV, 0), 2760);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CONFIG, 0), 0x0084);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CC_TIMEOUT, 0), 600);
    assert_int_equal(n_read(dev, BIC_CMD_OPERATION, 0), 1);
    assert_int_equal(n_read(dev, BIC_CMD_READ_VIN, 0), 2300); /* NPB-1200 has READ_VIN */
    /* a BIC's identifier at the same address, another address, a broadcast read, a BIC-only
       command, RTR: silence */
    req = t_frame(0x000C0303, 0x0060, 0, NULL);
    assert_int_equal(npb_device_handle_frame(dev, &req, 0, &rep), 0);
    req = t_frame(0x000C0102, 0x0060, 0, NULL);
    assert_int_equal(npb_device_handle_frame(dev, &req, 0, &rep), 0);
    req = t_frame(0x000C01FF, 0x0060, 0, NULL);
    assert_int_equal(npb_device_handle_frame(dev, &req, 0, &rep), 0);
    req = t_frame(0x000C0103, BIC_CMD_DIRECTION_CTRL, 0, NULL);
    assert_int_equal(npb_device_handle_frame(dev, &req, 0, &rep), 0);
    req = t_frame(0x000C0103, 0x0060, 0, NULL);
    req.rtr = true;
    assert_int_equal(npb_device_handle_frame(dev, &req, 0, &rep), 0);
    /* a broadcast write is applied */
    uint8_t d[2] = {0x20, 0x03}; /* 8.00 A */
    req = t_frame(0x000C01FF, NPB_CMD_CURVE_CC, 2, d);
    assert_int_equal(npb_device_handle_frame(dev, &req, 0, &rep), 0);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CC, 0), 800);
    /* CHG_STATUS is read-only */
    d[0] = 0xFF;
    req = t_frame(0x000C0103, NPB_CMD_CHG_STATUS, 2, d);
    assert_int_equal(npb_device_handle_frame(dev, &req, 0, &rep), 0);
    npb_device_destroy(&dev);
    assert_null(dev);

    /* NPB-450/750 do not know READ_VIN */
    dev = n_new("0:npb-450-48");
    assert_int_equal(n_answers(dev, BIC_CMD_READ_VIN, 0), 0);
    assert_int_equal(n_answers(dev, BIC_CMD_READ_VOUT, 0), 1);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CC, 0), 680);
    npb_device_destroy(&dev);
}

static void test_charge_curve(void **state)
{
    (void)state;
    /* NPB-1200-24 on an 8-cell LiFePO4 of 40 Ah and 60 mOhm at 50 %: CC at 36 A, CV at
       28.8 V with the current tapering, float at 27.6 V once it falls to the taper current
       (3.6 A; here the battery's BMS ends the charge at 100 %). */
    npb_device_t *dev = n_new("3:npb-1200-24:ah=40,soc=50,r_mohm=60");
    int64_t t = SEC(10);
    npb_device_step(dev, t);
    assert_int_equal(npb_stage_of((uint16_t)n_read(dev, NPB_CMD_CHG_STATUS, t)), NPB_STAGE_CC);
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, t), 0x0002);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 3600);
    assert_true(n_read(dev, BIC_CMD_READ_VOUT, t) < 2880);
    t = n_until_stage(dev, NPB_STAGE_CV, t, 4 * 3600);
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, t), 0x0004);
    t += SEC(60);
    npb_device_step(dev, t);
    int32_t v_cv = n_read(dev, BIC_CMD_READ_VOUT, t);
    assert_in_range(v_cv, 2870, 2890);
    assert_true(n_read(dev, BIC_CMD_READ_IOUT, t) < 3600);
    t = n_until_stage(dev, NPB_STAGE_FLOAT, t, 4 * 3600);
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, t), 0x0009); /* float and full */
    npb_device_state_t st;
    npb_device_get_state(dev, &st);
    assert_true(st.dc_a <= 3.6 + 0.01); /* the taper current ended the CV stage */
    assert_true(fabs(st.target_v - 27.6) < 1e-9);
    t += SEC(3600);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, BIC_CMD_READ_VOUT, t), 2760); /* full battery: at no load */
    /* DC_OK (1 = normal by default) and the AC power drawn */
    assert_int_equal(n_read(dev, BIC_CMD_SYSTEM_STATUS, t) & 0x0002, 0x0002);
    npb_device_destroy(&dev);

    /* 2-stage: no float, full at the boost voltage */
    dev = n_new("3:npb-1200-24:ah=40,soc=97");
    n_write(dev, NPB_CMD_CURVE_CONFIG, 0x00C4, 0);
    n_write(dev, BIC_CMD_OPERATION, 0, SEC(1));
    n_write(dev, BIC_CMD_OPERATION, 1, SEC(2));
    t = n_until_stage(dev, NPB_STAGE_FULL, SEC(2), 4 * 3600);
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, t), 0x0001);
    npb_device_get_state(dev, &st);
    assert_true(fabs(st.target_v - 28.8) < 1e-9);
    npb_device_destroy(&dev);
}

static void test_curve_acts_after_off_on(void **state)
{
    (void)state;
    npb_device_t *dev = n_new("3:npb-1200-24:soc=20");
    int64_t t = SEC(10);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 3600);
    n_write(dev, NPB_CMD_CURVE_CC, 1000, t);                  /* 10 A */
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CC, t), 1000); /* reads back at once */
    t += SEC(20);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 3600); /* not in force yet */
    n_write(dev, BIC_CMD_OPERATION, 0, t);
    t += SEC(1);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 0);
    assert_int_equal(n_read(dev, BIC_CMD_FAULT_STATUS, t) & 0x0040, 0x0040); /* OP_OFF */
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, t), 0); /* no stage while off */
    n_write(dev, BIC_CMD_OPERATION, 1, t);
    t += SEC(20);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 1000);
    /* a Remote ON/OFF cycle and a power cycle bring the curve into force too */
    n_write(dev, NPB_CMD_CURVE_CC, 2000, t);
    npb_device_set_remote(dev, false, t);
    npb_device_set_remote(dev, true, t + SEC(1));
    t += SEC(20);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 2000);
    n_write(dev, NPB_CMD_CURVE_CC, 3000, t);
    npb_device_power_cycle(dev, t);
    assert_int_equal(n_answers(dev, BIC_CMD_READ_IOUT, t + SEC(1)), 0); /* booting: silent */
    t += SEC(30);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CC, t), 3000); /* kept in the EEPROM */
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 3000);
    npb_device_destroy(&dev);
}

static void test_stage_timeouts(void **state)
{
    (void)state;
    /* CC timeout enabled at 60 min on a large, empty battery: the charge stops after an hour */
    npb_device_t *dev = n_new("3:npb-1200-24:soc=5");
    n_write(dev, NPB_CMD_CURVE_CONFIG, 0x0184, 0); /* + CCTOE */
    n_write(dev, NPB_CMD_CURVE_CC_TIMEOUT, 60, 0);
    n_write(dev, BIC_CMD_OPERATION, 0, 0);
    n_write(dev, BIC_CMD_OPERATION, 1, SEC(1));
    int64_t t = SEC(59 * 60);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, t), 0x0002); /* still CC */
    t = SEC(62 * 60);
    npb_device_step(dev, t);
    uint16_t cs = (uint16_t)n_read(dev, NPB_CMD_CHG_STATUS, t);
    assert_int_equal(cs, 0x2000); /* CCTOF */
    assert_int_equal(npb_stage_of(cs), NPB_STAGE_TIMEOUT);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 0);
    /* the next OFF -> ON starts a new charge */
    n_write(dev, BIC_CMD_OPERATION, 0, t);
    n_write(dev, BIC_CMD_OPERATION, 1, t + SEC(1));
    t += SEC(20);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, t), 0x0002);
    npb_device_destroy(&dev);

    /* the float timeout ends the float stage (FVTOF, full kept) */
    dev = n_new("3:npb-1200-24:ah=40,soc=97");
    n_write(dev, NPB_CMD_CURVE_CONFIG, 0x0484, 0); /* + FVTOE */
    n_write(dev, NPB_CMD_CURVE_FV_TIMEOUT, 60, 0);
    n_write(dev, BIC_CMD_OPERATION, 0, 0);
    n_write(dev, BIC_CMD_OPERATION, 1, SEC(1));
    t = n_until_stage(dev, NPB_STAGE_FLOAT, SEC(1), 4 * 3600);
    t = n_until_stage(dev, NPB_STAGE_TIMEOUT, t, 3700);
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, t), 0x8001);
    npb_device_destroy(&dev);
}

static void test_temperature_compensation(void **state)
{
    (void)state;
    npb_device_t *dev = n_new("3:npb-1200-24:soc=20,batt_temp=5");
    npb_device_state_t st;
    npb_device_step(dev, SEC(2));
    npb_device_get_state(dev, &st);
    /* -3 mV/degC/cell x 12 cells x (5 - 25) degC = +0.72 V on the 28.8 V boost */
    assert_true(fabs(st.target_v - 29.52) < 1e-6);
    npb_device_set_battery_temp(dev, -10, SEC(3)); /* the sensor range ends at 0 degC */
    npb_device_step(dev, SEC(4));
    npb_device_get_state(dev, &st);
    assert_true(fabs(st.target_v - 29.70) < 1e-6);
    npb_device_set_battery_temp(dev, 35, SEC(5));
    npb_device_step(dev, SEC(6));
    npb_device_get_state(dev, &st);
    assert_true(fabs(st.target_v - 28.44) < 1e-6);
    /* -5 mV (TCS 11) after OFF -> ON */
    n_write(dev, NPB_CMD_CURVE_CONFIG, 0x008C, SEC(6));
    n_write(dev, BIC_CMD_OPERATION, 0, SEC(6));
    n_write(dev, BIC_CMD_OPERATION, 1, SEC(7));
    npb_device_step(dev, SEC(8));
    npb_device_get_state(dev, &st);
    assert_true(fabs(st.target_v - 28.2) < 1e-6);
    /* a shorted sensor: NTCER and no compensation */
    npb_device_set_fault(dev, NPB_DEV_FAULT_NTC_SHORT, true, SEC(8));
    npb_device_step(dev, SEC(9));
    npb_device_get_state(dev, &st);
    assert_true(fabs(st.target_v - 28.8) < 1e-6);
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, SEC(9)) & 0x0400, 0x0400);
    npb_device_destroy(&dev);
    /* without a sensor, 2-stage: no compensation */
    dev = n_new("3:npb-1200-24:soc=20,batt_temp=5,no_ntc");
    npb_device_step(dev, SEC(2));
    npb_device_get_state(dev, &st);
    assert_true(fabs(st.target_v - 28.8) < 1e-6);
    npb_device_destroy(&dev);
}

static void test_restart_voltage(void **state)
{
    (void)state;
    /* RSTE: a battery that falls below CHG_RST_VBAT (25.2 V) is charged again */
    npb_device_t *dev = n_new("3:npb-1200-24:ah=40,soc=97");
    assert_int_equal(n_read(dev, NPB_CMD_CHG_RST_VBAT, 0), 2520);
    n_write(dev, NPB_CMD_CURVE_CONFIG, 0x0884, 0);
    n_write(dev, BIC_CMD_OPERATION, 0, 0);
    n_write(dev, BIC_CMD_OPERATION, 1, SEC(1));
    int64_t t = n_until_stage(dev, NPB_STAGE_FLOAT, SEC(1), 4 * 3600);
    battery_set_soc(npb_device_battery(dev), 0);
    t = n_until_stage(dev, NPB_STAGE_CC, t, 10);
    npb_device_destroy(&dev);

    /* RSTE off: the float stage holds */
    dev = n_new("3:npb-1200-24:ah=40,soc=97");
    t = n_until_stage(dev, NPB_STAGE_FLOAT, 0, 4 * 3600);
    battery_set_soc(npb_device_battery(dev), 0);
    t += SEC(10);
    npb_device_step(dev, t);
    assert_int_equal(npb_stage_of((uint16_t)n_read(dev, NPB_CMD_CHG_STATUS, t)), NPB_STAGE_FLOAT);
    npb_device_destroy(&dev);

    /* old firmware: silent to CHG_RST_VBAT (read and write), no restart */
    dev = n_new("3:npb-1200-24:ah=40,soc=97,fw=old");
    assert_int_equal(n_answers(dev, NPB_CMD_CHG_RST_VBAT, 0), 0);
    assert_int_equal(npb_device_write(dev, NPB_CMD_CHG_RST_VBAT, 2400, 0), NPB_WRITE_UNKNOWN);
    n_write(dev, NPB_CMD_CURVE_CONFIG, 0x0884, 0);
    n_write(dev, BIC_CMD_OPERATION, 0, 0);
    n_write(dev, BIC_CMD_OPERATION, 1, SEC(1));
    t = n_until_stage(dev, NPB_STAGE_FLOAT, SEC(1), 4 * 3600);
    battery_set_soc(npb_device_battery(dev), 0);
    t += SEC(10);
    npb_device_step(dev, t);
    assert_int_equal(npb_stage_of((uint16_t)n_read(dev, NPB_CMD_CHG_STATUS, t)), NPB_STAGE_FLOAT);
    /* old firmware keeps no EEP bits of SYSTEM_CONFIG */
    n_write(dev, BIC_CMD_SYSTEM_CONFIG, 0x0402, t);
    assert_int_equal(n_read(dev, BIC_CMD_SYSTEM_CONFIG, t), 0x0002);
    npb_device_destroy(&dev);
}

static void test_psu_mode(void **state)
{
    (void)state;
    npb_device_t *dev = n_new("3:npb-1200-24:soc=20");
    n_write(dev, NPB_CMD_CURVE_CONFIG, 0x0004, 0); /* CUVE = 0 */
    n_write(dev, BIC_CMD_IOUT_SET, 1200, 0);
    n_write(dev, BIC_CMD_OPERATION, 0, 0);
    n_write(dev, BIC_CMD_OPERATION, 1, SEC(1));
    int64_t t = SEC(30);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 1200);
    assert_int_equal(n_read(dev, NPB_CMD_CHG_STATUS, t), 0); /* no stage in PSU mode */
    /* VOUT_SET / IOUT_SET act at once in PSU mode */
    n_write(dev, BIC_CMD_IOUT_SET, 800, t);
    t += SEC(20);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 800);
    npb_device_state_t st;
    npb_device_get_state(dev, &st);
    assert_false(st.charger);
    assert_int_equal(st.stage, NPB_STAGE_IDLE);
    /* a voltage below the battery's: no current (a charger never discharges) */
    n_write(dev, BIC_CMD_VOUT_SET, 2100, t);
    t += SEC(20);
    npb_device_step(dev, t);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, t), 0);
    npb_device_destroy(&dev);
}

static void test_ranges_and_eeprom(void **state)
{
    (void)state;
    npb_device_t *dev = n_new("3:npb-1200-24");
    /* 7.19 A is below the 20 % minimum: ignored */
    n_write(dev, NPB_CMD_CURVE_CC, 719, 0);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CC, 0), 3600);
    assert_int_equal(npb_device_write(dev, NPB_CMD_CURVE_CV, 4201, 0), NPB_WRITE_OUT_OF_RANGE);
    assert_int_equal(npb_device_write(dev, NPB_CMD_CURVE_CONFIG, 0x1084, 0),
                     NPB_WRITE_OUT_OF_RANGE);
    assert_int_equal(npb_device_write(dev, BIC_CMD_REVERSE_VOUT_SET, 2500, 0), NPB_WRITE_UNKNOWN);
    /* persisted writes: curve registers always, VOUT_SET ('*') not under EEP_OFF */
    assert_int_equal(npb_device_eeprom_writes(dev, NPB_CMD_CURVE_CC), 0);
    n_write(dev, NPB_CMD_CURVE_CC, 2000, 0);
    assert_int_equal(npb_device_eeprom_writes(dev, NPB_CMD_CURVE_CC), 1);
    n_write(dev, BIC_CMD_SYSTEM_CONFIG, 0x0402, 0); /* EEP_OFF */
    n_write(dev, BIC_CMD_VOUT_SET, 2700, 0);
    n_write(dev, NPB_CMD_CURVE_CV, 2840, 0);
    assert_int_equal(npb_device_eeprom_writes(dev, BIC_CMD_VOUT_SET), 0);
    assert_int_equal(npb_device_eeprom_writes(dev, NPB_CMD_CURVE_CV), 1);
    npb_device_power_cycle(dev, SEC(1));
    int64_t t = SEC(5);
    assert_int_equal(n_read(dev, BIC_CMD_VOUT_SET, t), 2880); /* RAM only: lost */
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CV, t), 2840);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CC, t), 2000);
    uint16_t raw = 0;
    assert_int_equal(npb_device_eeprom_value(dev, NPB_CMD_CURVE_CC, &raw), 0);
    assert_int_equal(raw, 2000);
    npb_device_destroy(&dev);
    /* clamp policy and a 50 % minimum */
    dev = n_new("3:npb-1200-24:clamp,min=50");
    assert_int_equal(npb_device_write(dev, NPB_CMD_CURVE_CC, 1000, 0), NPB_WRITE_CLAMPED);
    assert_int_equal(n_read(dev, NPB_CMD_CURVE_CC, 0), 1800);
    npb_device_destroy(&dev);
    /* DC_OK reported the other way round */
    dev = n_new("3:npb-1200-24:dcok=low");
    npb_device_step(dev, SEC(2));
    assert_int_equal(n_read(dev, BIC_CMD_SYSTEM_STATUS, SEC(2)) & 0x0002, 0);
    npb_device_destroy(&dev);
    /* no battery: BTNC, no current */
    dev = n_new("3:npb-1200-24:nobatt");
    npb_device_step(dev, SEC(5));
    assert_int_equal(npb_stage_of((uint16_t)n_read(dev, NPB_CMD_CHG_STATUS, SEC(5))),
                     NPB_STAGE_NO_BATTERY);
    assert_int_equal(n_read(dev, BIC_CMD_READ_IOUT, SEC(5)), 0);
    npb_device_destroy(&dev);
}

static void test_spec(void **state)
{
    (void)state;
    npb_device_config_t cfg;
    battery_config_t bcfg;
    char err[512];
    assert_true(npb_device_spec_is_npb("3:npb-1200-24"));
    assert_true(npb_device_spec_is_npb("0:NPB-450-12:fw=old"));
    assert_false(npb_device_spec_is_npb("0:24"));
    assert_false(npb_device_spec_is_npb("npb-1200-24"));
    assert_int_equal(
        npb_device_parse_spec("2:npb-1700-48:fw=old,soc=40", &cfg, &bcfg, err, sizeof err), 0);
    assert_int_equal(cfg.addr, 2);
    assert_ptr_equal(cfg.model, npb_model_find(1700, 48));
    assert_int_equal(cfg.fw, NPB_FW_OLD);
    assert_int_equal(bcfg.cells_series, 16);
    assert_int_equal(npb_device_parse_spec("4:npb-1200-24", &cfg, &bcfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "allowed: 0..3"));
    assert_int_equal(npb_device_parse_spec("3:npb-1300-24", &cfg, &bcfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "npb-1200-24"));
    assert_int_equal(npb_device_parse_spec("3:npb-1200-24:dcok=high", &cfg, &bcfg, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "normal, low"));
    assert_int_equal(npb_device_parse_spec("3:npb-1200-24:min=10", &cfg, &bcfg, err, sizeof err),
                     -1);
    assert_int_equal(npb_device_parse_spec("3:npb-1200-24:bogus", &cfg, &bcfg, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "allowed: fw=old|new"));
}

static void test_bus_with_bic(void **state)
{
    (void)state;
    /* a BIC and an NPB both at address 3: each answers on its own identifiers */
    sim_bus_t *bus = sim_bus_new(NULL);
    bic_device_config_t bc;
    battery_config_t bb;
    char err[256];
    assert_int_equal(bic_device_parse_spec("3:24", &bc, &bb, err, sizeof err), 0);
    bic_device_t *bic = bic_device_new(&bc, &bb, 0);
    assert_int_equal(sim_bus_add(bus, &bic), 0);
    npb_device_t *npb = n_new("3:npb-1200-24");
    assert_int_equal(sim_bus_add_npb(bus, &npb), 0);
    assert_null(npb);
    npb = n_new("3:npb-450-24");
    assert_int_equal(sim_bus_add_npb(bus, &npb), -1); /* NPB address taken */
    assert_null(npb);
    assert_int_equal(sim_bus_npb_count(bus), 1);
    assert_non_null(sim_bus_find_npb(bus, 3));
    can_frame_t req = t_frame(0x000C0303, BIC_CMD_MFR_MODEL_B0B5, 0, NULL), rep;
    assert_int_equal(sim_bus_request(bus, &req, SEC(1)), 1);
    assert_int_equal(sim_bus_take_reply(bus, SEC(2), &rep), 1);
    assert_int_equal(rep.id, 0x000C0203);
    assert_memory_equal(rep.data + 2, "BIC-22", 6);
    req = t_frame(0x000C0103, BIC_CMD_MFR_MODEL_B0B5, 0, NULL);
    assert_int_equal(sim_bus_request(bus, &req, SEC(3)), 1);
    assert_int_equal(sim_bus_take_reply(bus, SEC(4), &rep), 1);
    assert_int_equal(rep.id, 0x000C0003);
    assert_memory_equal(rep.data + 2, "NPB-12", 6);
    /* an NPB address nobody has is foreign */
    req = t_frame(0x000C0101, BIC_CMD_READ_VOUT, 0, NULL);
    assert_int_equal(sim_bus_request(bus, &req, SEC(5)), 0);
    sim_bus_counters_t c;
    sim_bus_counters(bus, &c);
    assert_int_equal(c.requests, 3);
    assert_int_equal(c.replies, 2);
    assert_int_equal(c.foreign, 1);
    /* the charger's AC power counts in the bus total */
    sim_bus_step(bus, SEC(60));
    npb_device_state_t st;
    npb_device_get_state(sim_bus_npb(bus, 0), &st);
    assert_true(st.ac_w > 900);
    bic_device_state_t bst;
    bic_device_get_state(sim_bus_device(bus, 0), &bst);
    assert_true(fabs(sim_bus_ac_w(bus) - (st.ac_w + bst.ac_w)) < 1e-9);
    sim_bus_destroy(&bus);
}

int main(void)
{
    NPB = bic_family_get(BIC_FAMILY_NPB);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_and_silence),
        cmocka_unit_test(test_charge_curve),
        cmocka_unit_test(test_curve_acts_after_off_on),
        cmocka_unit_test(test_stage_timeouts),
        cmocka_unit_test(test_temperature_compensation),
        cmocka_unit_test(test_restart_voltage),
        cmocka_unit_test(test_psu_mode),
        cmocka_unit_test(test_ranges_and_eeprom),
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_bus_with_bic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
