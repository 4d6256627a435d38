/*
 * Fuzz harness: received CAN frames. The gateway's side decodes device replies
 * (bic_decode_reply and the register decoders behind it); the simulator's side decodes
 * controller requests (bic_decode_request) and a simulated BIC-2200 and a simulated NPB
 * charger answer them (bic_device_handle_frame, npb_device_handle_frame); the NPB's register
 * decoders (CURVE_CONFIG, CHG_STATUS, SYSTEM_STATUS, model detection, range checks) see every
 * value that decodes on the NPB's identifiers.
 *
 * Input: one byte choosing the simulated devices (variant, firmware, mode), then records of
 * 14 bytes: flags, identifier (4, little-endian), DLC, 8 data bytes. The flags steer the
 * identifier into the protocol's ranges often enough to get past the first checks, and
 * advance the device's clock. Every reply the device sends must decode as a reply and match
 * the request it answers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bic_device.h"
#include "bic_proto.h"
#include "npb_device.h"
#include "npb_proto.h"

#define REC 14

static const char *s_specs[] = {
    "0:24",
    "0:24:battery,canctrl",
    "5:48:fw=old,clamp",
    "63:96:battery,canctrl,scaling2",
    "1:12:min20",
    "2:24:battery,canctrl,eep_all,canctrl_powerup",
    "7:48:boot_ms=0",
    "3:96",
};

static const char *s_npb_specs[] = {
    "3:npb-1200-24",
    "0:npb-450-12:fw=old,clamp",
    "1:npb-1700-48:dcok=low,min=50",
    "2:npb-750-24:nobatt,no_ntc,boot_ms=0",
};

/* The NPB's own decoders on a value read from its identifiers: round trips, and the range
   check of a detected model must give a defined answer. */
static void s_npb_values(const bic_cmd_t *c, int32_t raw, const npb_model_t *model)
{
    npb_curve_config_t cc;
    npb_curve_config_decode((uint16_t)raw, &cc);
    npb_chg_status_t cs;
    npb_chg_status_decode((uint16_t)raw, &cs);
    if (npb_curve_config_encode(&cc) != (uint16_t)raw ||
        npb_chg_status_encode(&cs) != (uint16_t)raw) {
        fprintf(stderr, "NPB bitfield 0x%04X does not encode back\n", (unsigned)raw);
        abort();
    }
    (void)npb_stage_name(npb_stage_of((uint16_t)raw));
    (void)npb_curve_name(cc.curve);
    (void)npb_tcs_name(cc.tcs);
    npb_options_t o;
    npb_options_default(&o);
    npb_sysstatus_t ss;
    npb_sysstatus_decode(&o, (uint16_t)raw, &ss);
    if (model) {
        char err[200];
        bic_err_t rc = npb_check_write(model, &o, c->code, raw, err, sizeof err);
        if (rc != BIC_OK && rc != BIC_E_RANGE && rc != BIC_E_READ_ONLY && rc != BIC_E_UNKNOWN_CMD) {
            fprintf(stderr, "npb_check_write: unexpected %d\n", (int)rc);
            abort();
        }
        (void)npb_dcok_cross_check(model, &o, (uint16_t)raw, (uint16_t)raw);
    }
}

static void s_decode_values(const bic_family_t *f, const bic_msg_t *m, uint8_t model[2][6],
                            bool have[2])
{
    const bic_cmd_t *c = m->cmd;
    int32_t raw = 0;
    bic_scaling_t sc;
    bic_scaling_fixed(&sc);
    switch (c->type) {
    case BIC_TYPE_U8:
    case BIC_TYPE_U16:
    case BIC_TYPE_S16:
    case BIC_TYPE_BITS:
        if (bic_data_to_raw(c, m->data, m->len, &raw) == BIC_OK) {
            (void)bic_raw_to_value(c, &sc, raw);
            bic_field_t fields[12];
            (void)bic_fields(f, c->code, (uint16_t)raw, fields, 12);
            if (f->id == BIC_FAMILY_NPB) {
                const npb_model_t *nm = NULL;
                if (have[0] && have[1])
                    (void)npb_model_detect(model[0], model[1], &nm, NULL, 0);
                s_npb_values(c, raw, nm);
            }
            bic_fault_t ft;
            bic_fault_decode((uint16_t)raw, &ft);
            bic_sysstatus_t ss;
            bic_sysstatus_decode(f, (uint16_t)raw, &ss);
            bic_sysconfig_t cfg;
            bic_sysconfig_decode((uint16_t)raw, &cfg);
            if (bic_sysconfig_encode(&cfg) != (uint16_t)raw) {
                fprintf(stderr, "SYSTEM_CONFIG 0x%04X does not encode back\n", (unsigned)raw);
                abort();
            }
            (void)bic_opinit_name(cfg.operation_init);
            (void)bic_eepcfg_name(cfg.eep_config);
        }
        break;
    case BIC_TYPE_ASCII:
        if (m->code == BIC_CMD_MFR_MODEL_B0B5 || m->code == BIC_CMD_MFR_MODEL_B6B11) {
            int half = m->code == BIC_CMD_MFR_MODEL_B6B11;
            memset(model[half], 0, 6);
            memcpy(model[half], m->data, m->len < 6 ? m->len : 6);
            have[half] = true;
            if (have[0] && have[1]) {
                bic_model_t mod;
                char err[160];
                (void)bic_model_parse(model[0], model[1], &mod, err, sizeof err);
            }
        }
        break;
    case BIC_TYPE_BYTES:
        if (m->code == BIC_CMD_SCALING_FACTOR) {
            if (bic_scaling_decode(m->data, m->len, &sc) == BIC_OK)
                for (int k = 0; k < BIC_SCALE_COUNT; k++)
                    (void)bic_scaling_factor(&sc, (bic_scale_t)k);
        } else {
            bic_revision_t rev;
            (void)bic_revision_decode(m->data, m->len, &rev);
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bic_device_config_t cfg;
    battery_config_t bcfg;
    char err[256];
    if (bic_device_parse_spec(s_specs[data[0] & 7], &cfg, &bcfg, err, sizeof err) != 0) {
        fprintf(stderr, "bad device spec: %s\n", err);
        abort();
    }
    int64_t now = 1000000;
    bic_device_t *dev = bic_device_new(&cfg, &bcfg, now);
    if (!dev)
        return 0;
    npb_device_config_t ncfg;
    battery_config_t nbcfg;
    if (npb_device_parse_spec(s_npb_specs[(data[0] >> 3) & 3], &ncfg, &nbcfg, err, sizeof err) !=
        0) {
        fprintf(stderr, "bad NPB spec: %s\n", err);
        abort();
    }
    npb_device_t *npb = npb_device_new(&ncfg, &nbcfg, now);
    if (!npb) {
        bic_device_destroy(&dev);
        return 0;
    }
    const bic_family_t *fams[2] = {bic_family_bic(), bic_family_get(BIC_FAMILY_NPB)};
    uint8_t model[2][6];
    bool have[2] = {false, false};

    for (size_t off = 1; off + REC <= size; off += REC) {
        const uint8_t *r = data + off;
        uint8_t flags = r[0];
        uint32_t id =
            (uint32_t)r[1] | (uint32_t)r[2] << 8 | (uint32_t)r[3] << 16 | (uint32_t)r[4] << 24;
        const bic_family_t *f = fams[(flags >> 7) & 1];
        switch (flags & 3) {
        case 0: /* anything */
            break;
        case 1:
            id = f->host_base | (id & 0x3F);
            break;
        case 2:
            id = f->dev_base | (id & 0x3F);
            break;
        case 3:
            id = f->broadcast_id;
            break;
        }
        can_frame_t fr = {0};
        fr.ext = !(flags & 0x04);
        fr.rtr = (flags & 0x08) != 0;
        fr.id = id & (fr.ext ? CAN_FRAME_EXT_MAX : CAN_FRAME_STD_MAX);
        fr.dlc = r[5] % 9;
        memcpy(fr.data, r + 6, 8);
        now += (int64_t)((flags >> 4) & 7) * 250000; /* 0-1.75 s between frames */

        bic_msg_t m;
        for (int k = 0; k < 2; k++) {
            if (bic_decode_reply(fams[k], &fr, &m) == BIC_OK) {
                if (!m.cmd || m.len > BIC_DATA_MAX) {
                    fprintf(stderr, "reply decoded without a command\n");
                    abort();
                }
                s_decode_values(fams[k], &m, model, have);
            }
            (void)bic_decode_request(fams[k], &fr, &m);
        }
        can_frame_t reply;
        if (bic_device_handle_frame(dev, &fr, now, &reply) == 1) {
            if (bic_decode_reply(fams[0], &reply, &m) != BIC_OK ||
                !bic_reply_matches(fams[0], &fr, &reply)) {
                fprintf(stderr, "the device's reply does not decode or match the request\n");
                abort();
            }
            s_decode_values(fams[0], &m, model, have);
        }
        if (npb_device_handle_frame(npb, &fr, now, &reply) == 1) {
            if (bic_decode_reply(fams[1], &reply, &m) != BIC_OK ||
                !bic_reply_matches(fams[1], &fr, &reply)) {
                fprintf(stderr, "the NPB's reply does not decode or match the request\n");
                abort();
            }
            s_decode_values(fams[1], &m, model, have);
        }
    }
    bic_device_state_t st;
    bic_device_get_state(dev, &st);
    bic_device_destroy(&dev);
    npb_device_state_t nst;
    npb_device_get_state(npb, &nst);
    npb_device_destroy(&npb);
    return 0;
}
