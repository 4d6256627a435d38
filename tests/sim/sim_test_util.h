/* sim_test_util.h - helpers shared by the simulator's unit tests: build request frames with
 * the protocol library, exchange them with a device model, decode replies. */
#ifndef SIM_TEST_UTIL_H
#define SIM_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bic_device.h"
#include "bic_proto.h"

#define SEC(s) ((int64_t)((s)*1000000.0))

/* A raw request frame: extended id 0x000C0300|addr, the command and n data bytes. */
static inline can_frame_t t_frame(uint32_t id, uint16_t cmd, int ndata, const uint8_t *data)
{
    can_frame_t f;
    memset(&f, 0, sizeof f);
    f.id = id;
    f.ext = true;
    f.dlc = (uint8_t)(2 + ndata);
    f.data[0] = (uint8_t)(cmd & 0xFF);
    f.data[1] = (uint8_t)(cmd >> 8);
    for (int i = 0; i < ndata; i++)
        f.data[2 + i] = data[i];
    return f;
}

/* Reads a numeric register through a frame; fails the test when the device is silent. */
static inline int32_t t_read(bic_device_t *dev, uint16_t cmd, int64_t now)
{
    can_frame_t req, rep;
    assert_int_equal(bic_encode_read(bic_family_bic(), bic_device_addr(dev), cmd, &req), BIC_OK);
    assert_int_equal(bic_device_handle_frame(dev, &req, now, &rep), 1);
    bic_msg_t msg;
    assert_int_equal(bic_decode_reply(bic_family_bic(), &rep, &msg), BIC_OK);
    assert_int_equal(msg.code, cmd);
    int32_t raw = 0;
    assert_int_equal(bic_data_to_raw(msg.cmd, msg.data, msg.len, &raw), BIC_OK);
    return raw;
}

/* Does the device answer a read of cmd? */
static inline int t_answers(bic_device_t *dev, uint16_t cmd, int64_t now)
{
    can_frame_t req, rep;
    assert_int_equal(bic_encode_read(bic_family_bic(), bic_device_addr(dev), cmd, &req), BIC_OK);
    return bic_device_handle_frame(dev, &req, now, &rep);
}

/* Writes a register through a frame (exact DLC); asserts that no reply comes. */
static inline void t_write(bic_device_t *dev, uint16_t cmd, int32_t raw, int64_t now)
{
    can_frame_t req, rep;
    assert_int_equal(bic_encode_write(bic_family_bic(), bic_device_addr(dev), cmd, raw, &req),
                     BIC_OK);
    assert_int_equal(bic_device_handle_frame(dev, &req, now, &rep), 0);
}

/* A device from a spec string ("0:24:battery,canctrl"), created at time now. */
static inline bic_device_t *t_device(const char *spec, int64_t now)
{
    bic_device_config_t cfg;
    battery_config_t bcfg;
    char err[256] = "";
    int rc = bic_device_parse_spec(spec, &cfg, &bcfg, err, sizeof err);
    if (rc != 0)
        fail_msg("spec %s: %s", spec, err);
    bic_device_t *dev = bic_device_new(&cfg, &bcfg, now);
    assert_non_null(dev);
    return dev;
}

static inline bic_device_state_t t_state(bic_device_t *dev, int64_t now)
{
    bic_device_step(dev, now);
    bic_device_state_t st;
    bic_device_get_state(dev, &st);
    return st;
}

#endif
