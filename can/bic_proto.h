/*  bic_proto.h - Mean Well BIC-2200 CAN protocol: command table, per-variant limits,
    register decoders, unit conversions and frame encode/decode.

    Pure code over plain data: no I/O, no clock, no allocation. Everything is reached through
    a family descriptor (bic_family_t) so that another family with the same protocol and
    different identifiers and commands (the NPB chargers) is one more descriptor, not a change
    in callers. The specification is docs/bic2200-protocol.md (section numbers in comments
    refer to it).

    Vocabulary:
      wire value  the unsigned integer in the frame's data bytes (little-endian, N bytes)
      raw         the register's integer value: the wire value, sign-extended for the s16
                  registers (READ_IOUT, READ_TEMPERATURE_1)
      value       engineering units: raw x factor (V, A, V AC, degC, RPM)
*/
#ifndef BIC_PROTO_H_INCLUDED
#define BIC_PROTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "can_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
   Errors. One vocabulary for every function here that can fail.
   --------------------------------------------------------------------------------------- */
typedef enum {
    BIC_OK = 0,
    BIC_E_ARG,         /* NULL pointer or otherwise unusable argument */
    BIC_E_NOT_EXT,     /* frame has an 11-bit identifier; the protocol uses 29-bit only */
    BIC_E_RTR,         /* frame is a remote request; the protocol uses data frames only */
    BIC_E_WRONG_ID,    /* identifier is not in this family's range for that direction */
    BIC_E_ADDR,        /* address outside the family's range (BIC: 0-63, or broadcast) */
    BIC_E_SHORT,       /* fewer than 2 data bytes: no command code */
    BIC_E_UNKNOWN_CMD, /* command code not in the family's command table */
    BIC_E_DLC,         /* data length does not match the command's (reply: exactly 2+N) */
    BIC_E_READ_ONLY,   /* write to a read-only command */
    BIC_E_RANGE,       /* value does not fit the register (sign, width, NaN) */
    BIC_E_PARSE,       /* text could not be parsed */
} bic_err_t;

/* Short English description of an error code, e.g. "unknown command". Never NULL. */
const char *bic_strerror(bic_err_t err);

/* ---------------------------------------------------------------------------------------
   Command table
   --------------------------------------------------------------------------------------- */

/* Value class of a command: selects the scaling factor (SCALING_FACTOR nibble, §7). */
typedef enum {
    BIC_SCALE_NONE = 0, /* no factor: enum, bitfield, text, bytes */
    BIC_SCALE_VOUT,     /* VOUT_SET, READ_VOUT, REVERSE_VOUT_SET: 0.01 V */
    BIC_SCALE_IOUT,     /* IOUT_SET, READ_IOUT, REVERSE_IOUT_SET: 0.01 A */
    BIC_SCALE_VIN,      /* READ_VIN: 0.1 V AC */
    BIC_SCALE_TEMP,     /* READ_TEMPERATURE_1: 0.1 degC */
    BIC_SCALE_FAN,      /* READ_FAN_SPEED_1/2: 1 RPM */
    BIC_SCALE_COUNT
} bic_scale_t;

/* How the data bytes are to be read. */
typedef enum {
    BIC_TYPE_U8 = 0, /* 1 byte enum (OPERATION, DIRECTION_CTRL) */
    BIC_TYPE_U16,    /* unsigned 16-bit number */
    BIC_TYPE_S16,    /* two's complement 16-bit number */
    BIC_TYPE_BITS,   /* 16-bit bitfield, see the decoders below */
    BIC_TYPE_ASCII,  /* text bytes (MFR_ID, MFR_MODEL, MFR_DATE, ...) */
    BIC_TYPE_BYTES,  /* opaque bytes (MFR_REVISION, SCALING_FACTOR) */
} bic_type_t;

typedef struct {
    uint16_t code;          /* command code, e.g. 0x0020 */
    const char *name;       /* canonical name, e.g. "VOUT_SET" */
    const char *aliases[3]; /* other spellings in the manual, NULL-terminated */
    bool writable;          /* R/W in the gateway's sense (MFR_* texts are read-only, §4) */
    uint8_t len;            /* data bytes N: 1, 2, 3 or 6; reply DLC = 2 + len */
    uint8_t min_len;        /* fewest data bytes accepted in a reply (SCALING_FACTOR: 2) */
    bic_type_t type;
    bic_scale_t scale;
    const char *unit; /* "V", "A", "V", "degC", "RPM" or NULL */
    bool eep_star;    /* '*' command: obeys EEP_OFF / EEP_CONFIG (§6, §11) */
    bool persisted;   /* in the EEPROM-backed (factory reset) set (§11) */
    bool output;      /* moves the output (setpoint registers; lease-protected) */
} bic_cmd_t;

/* BIC command codes (§6). */
enum {
    BIC_CMD_OPERATION = 0x0000,
    BIC_CMD_VOUT_SET = 0x0020,
    BIC_CMD_IOUT_SET = 0x0030,
    BIC_CMD_FAULT_STATUS = 0x0040,
    BIC_CMD_READ_VIN = 0x0050,
    BIC_CMD_READ_VOUT = 0x0060,
    BIC_CMD_READ_IOUT = 0x0061,
    BIC_CMD_READ_TEMPERATURE_1 = 0x0062,
    BIC_CMD_READ_FAN_SPEED_1 = 0x0070,
    BIC_CMD_READ_FAN_SPEED_2 = 0x0071,
    BIC_CMD_MFR_ID_B0B5 = 0x0080,
    BIC_CMD_MFR_ID_B6B11 = 0x0081,
    BIC_CMD_MFR_MODEL_B0B5 = 0x0082,
    BIC_CMD_MFR_MODEL_B6B11 = 0x0083,
    BIC_CMD_MFR_REVISION_B0B5 = 0x0084,
    BIC_CMD_MFR_LOCATION_B0B2 = 0x0085,
    BIC_CMD_MFR_DATE_B0B5 = 0x0086,
    BIC_CMD_MFR_SERIAL_B0B5 = 0x0087,
    BIC_CMD_MFR_SERIAL_B6B11 = 0x0088,
    BIC_CMD_SCALING_FACTOR = 0x00C0,
    BIC_CMD_SYSTEM_STATUS = 0x00C1,
    BIC_CMD_SYSTEM_CONFIG = 0x00C2,
    BIC_CMD_DIRECTION_CTRL = 0x0100,
    BIC_CMD_REVERSE_VOUT_SET = 0x0120,
    BIC_CMD_REVERSE_IOUT_SET = 0x0130,
    BIC_CMD_BIDIRECTIONAL_CONFIG = 0x0140,
};

/* ---------------------------------------------------------------------------------------
   Families and variants
   --------------------------------------------------------------------------------------- */

typedef enum { BIC_FAMILY_UNKNOWN = 0, BIC_FAMILY_BIC, BIC_FAMILY_NPB } bic_family_id_t;

typedef enum { BIC_MODE_AUTO = 0, BIC_MODE_BATTERY = 1 } bic_mode_t; /* BIDIRECTIONAL_CONFIG */

/* Which current minimum applies (§14): the manual's 1 % of rated current, or the 20 % some
   older firmware/manual editions use. */
typedef enum { BIC_MIN_1PCT = 0, BIC_MIN_20PCT = 1 } bic_min_policy_t;

/* One control range in raw register units (0.01 V or 0.01 A with the fixed factors). */
typedef struct {
    uint16_t min_raw;
    uint16_t max_raw;
    uint16_t def_raw; /* factory default */
} bic_range_t;

/* The four setpoint ranges for one mode. */
typedef struct {
    bic_range_t vout;     /* VOUT_SET, 0.01 V */
    bic_range_t iout;     /* IOUT_SET, 0.01 A */
    bic_range_t rev_vout; /* REVERSE_VOUT_SET, 0.01 V */
    bic_range_t rev_iout; /* REVERSE_IOUT_SET, 0.01 A, magnitude */
} bic_limits_t;

/* A voltage variant of a family (§9). Plain data. */
typedef struct {
    int variant;             /* nominal battery voltage: 12, 24, 48, 96 */
    bic_limits_t limits[2];  /* indexed by bic_mode_t, 1 % minimum */
    uint16_t iout_min20_raw; /* 20 % current minimum, 0.01 A (IOUT and REVERSE_IOUT) */
    uint16_t vout_tol_raw;   /* accuracy of VOUT readings/setpoints, 0.01 V */
    uint16_t iout_tol_raw;   /* accuracy of IOUT, 0.01 A */
    /* ratings, manual §2.3 */
    uint16_t rated_power_w;    /* AC->DC rated power, W */
    uint32_t rated_current_ca; /* AC->DC rated current, 0.01 A */
    uint32_t dc_in_current_ca; /* DC->AC maximum input current, 0.01 A */
    uint16_t dc_in_power_w;    /* DC->AC rated input power (constant-power limit), W */
    uint32_t ovp_min_cv;       /* DC over-voltage protection trip range, 0.01 V */
    uint32_t ovp_max_cv;
} bic_variant_t;

/* A protocol family: identifiers, address range, command table, variants, polarities. */
typedef struct bic_family {
    bic_family_id_t id;
    const char *name;         /* "BIC" */
    const char *model_prefix; /* "BIC-2200-" */
    uint32_t host_base;       /* controller -> device: host_base | addr (BIC 0x000C0300) */
    uint32_t dev_base;        /* device -> controller: dev_base | addr (BIC 0x000C0200) */
    uint32_t broadcast_id;    /* controller -> all devices (BIC 0x000C03FF) */
    uint8_t addr_max_basic;   /* highest DIP-switch address (BIC 7) */
    uint8_t addr_max;         /* highest extended address (BIC 63) */
    const bic_cmd_t *cmds;    /* command table, sorted by code */
    size_t ncmds;
    const bic_variant_t *variants;
    size_t nvariants;
    bool initial_state_is_ready; /* SYSTEM_STATUS bit 5: 1 = ready (BIC) or 1 = initialising */
} bic_family_t;

#define BIC_ADDR_BROADCAST 0xFF /* pseudo address for the broadcast identifier */
#define BIC_DATA_MAX 6          /* most data bytes any command carries */

/* The BIC-2200 descriptor (static data, never NULL). */
const bic_family_t *bic_family_bic(void);
/* The descriptor for a family id (BIC, NPB), NULL for BIC_FAMILY_UNKNOWN. The NPB descriptor
   has identifiers, addresses 0-3 and its command table (§15) but no variant tables: the NPB
   models, their ranges and decoders are npb_proto.h's. */
const bic_family_t *bic_family_get(bic_family_id_t id);

/* Command lookup. NULL when unknown. by_name accepts, case-insensitively, the canonical name,
   a manual alias (REV_VOUT_SET, VOUT_SET_REV, REV_IOUT_SET, BIDIR_CONFIG) or the code as
   "0x0030" (also "0x30"; hex digits either case). */
const bic_cmd_t *bic_cmd_by_code(const bic_family_t *f, uint16_t code);
const bic_cmd_t *bic_cmd_by_name(const bic_family_t *f, const char *name);
/* Reply DLC for a command: 2 + len. */
int bic_cmd_reply_dlc(const bic_cmd_t *c);

/* Variant lookup (12/24/48/96); NULL when the family has no such variant. */
const bic_variant_t *bic_variant_get(const bic_family_t *f, int variant);

/* Setpoint limits for a variant, mode and minimum policy (the 20 % policy raises the two
   current minimums). Returns BIC_OK or BIC_E_ARG. */
bic_err_t bic_limits_get(const bic_variant_t *v, bic_mode_t mode, bic_min_policy_t min,
                         bic_limits_t *ret_limits);

/* Factory default raw value of a writable register for a variant and mode (§9.2, §16 item 12):
   OPERATION 1, DIRECTION_CTRL 0, SYSTEM_CONFIG 0x0002, BIDIRECTIONAL_CONFIG 0 and the four
   setpoints. Returns BIC_OK, or BIC_E_UNKNOWN_CMD when the command has no default. */
bic_err_t bic_default_raw(const bic_variant_t *v, bic_mode_t mode, uint16_t code, int32_t *ret_raw);

/* ---------------------------------------------------------------------------------------
   Identity: MFR_MODEL and MFR_REVISION
   --------------------------------------------------------------------------------------- */

typedef struct {
    bic_family_id_t family;   /* BIC or NPB */
    int variant;              /* 12/24/48/96 for BIC; the trailing number for NPB */
    char model[13];           /* trimmed text, e.g. "BIC-2200-24" */
    const bic_family_t *fam;  /* the family's descriptor */
    const bic_variant_t *var; /* variant data; NULL for NPB (see npb_model_of) */
} bic_model_t;

/* Parse the two 6-byte halves of MFR_MODEL (0x0082, 0x0083), space/NUL padded.
   BIC_OK for "BIC-2200-12/24/48/96" and any "NPB-<digits>-<digits>"; BIC_E_PARSE with a
   message in err (what was received, what is recognised) otherwise. err may be NULL. */
bic_err_t bic_model_parse(const uint8_t b0b5[6], const uint8_t b6b11[6], bic_model_t *ret_model,
                          char *err, size_t errlen);
/* The two halves a device of this family and variant reports ("BIC-22", "00-24 ").
   BIC_E_ARG for a variant the family does not have. */
bic_err_t bic_model_encode(const bic_family_t *f, int variant, uint8_t b0b5[6], uint8_t b6b11[6]);

#define BIC_REVISION_MCUS 6
typedef struct {
    int nmcu;                            /* MCUs present (bytes other than 0xFF) */
    char mcu[BIC_REVISION_MCUS][7];      /* "R01.4" per present MCU, in byte order */
    char raw[2 * BIC_REVISION_MCUS + 1]; /* the bytes as upper-case hex, "0E0DFFFFFFFF" */
} bic_revision_t;

/* Decode MFR_REVISION (1-6 bytes): each byte 0x00-0xFE is "R%02d.%d" of value/10, 0xFF is
   no MCU. BIC_E_ARG for len 0 or > 6. */
bic_err_t bic_revision_decode(const uint8_t *data, size_t len, bic_revision_t *ret_rev);

/* ---------------------------------------------------------------------------------------
   Register decoders (§8). The struct decoders give typed fields; bic_fields() gives a
   name/value list in bit order for JSON ("fan_fail": false, ...).
   --------------------------------------------------------------------------------------- */

typedef struct {
    bool fan_fail;      /* bit 0 */
    bool otp;           /* bit 1: over-temperature protection */
    bool ovp;           /* bit 2: DC over-voltage, latched */
    bool olp;           /* bit 3: DC over-current, latched */
    bool short_circuit; /* bit 4: latched */
    bool ac_fail;       /* bit 5 */
    bool op_off;        /* bit 6: DC output off */
    bool hi_temp;       /* bit 7: high-temperature alarm */
    bool hv_ovp;        /* bit 8: primary-side over-voltage */
    uint16_t reserved;  /* bits 9-15 as received (0 expected) */
} bic_fault_t;
void bic_fault_decode(uint16_t raw, bic_fault_t *ret_fault);

typedef struct {
    bool master;        /* bit 0 M/S: 1 = master */
    bool dc_ok;         /* bit 1 */
    bool pfc_ok;        /* bit 2 */
    bool adl_on;        /* bit 4 (manual; not the seed's bit 3) */
    bool initial_state; /* bit 5 as received */
    bool ready;         /* not in initialisation, after the family's polarity */
    bool eeper;         /* bit 6: EEPROM access error */
    uint16_t reserved;  /* bit 3 and bits 7-15 as received */
} bic_sysstatus_t;
void bic_sysstatus_decode(const bic_family_t *f, uint16_t raw, bic_sysstatus_t *ret_status);

typedef enum {
    BIC_OPINIT_OFF = 0,      /* 00: OPERATION = OFF at power-up */
    BIC_OPINIT_ON = 1,       /* 01: ON (factory) */
    BIC_OPINIT_PREVIOUS = 2, /* 10: last persisted OPERATION */
    BIC_OPINIT_RESERVED = 3,
} bic_opinit_t;

typedef enum {
    BIC_EEPCFG_IMMEDIATE = 0, /* 00: write at once (factory) */
    BIC_EEPCFG_1MIN = 1,      /* 01: after 1 min without change */
    BIC_EEPCFG_10MIN = 2,     /* 10: after 10 min without change */
    BIC_EEPCFG_RESERVED = 3,
} bic_eepcfg_t;

typedef struct {
    bool can_ctrl;               /* bit 0: setpoints and ON/OFF over CAN */
    bic_opinit_t operation_init; /* bits 2:1 */
    bic_eepcfg_t eep_config;     /* bits 9:8 */
    bool eep_off;                /* bit 10 (0x0400): '*' setpoints not saved */
    uint16_t reserved;           /* bits 7:3 and 15:11 as received */
} bic_sysconfig_t;
void bic_sysconfig_decode(uint16_t raw, bic_sysconfig_t *ret_cfg);
/* Inverse of decode (reserved bits included as given). */
uint16_t bic_sysconfig_encode(const bic_sysconfig_t *cfg);
const char *bic_opinit_name(bic_opinit_t v); /* "off", "on", "previous", "reserved" */
const char *bic_eepcfg_name(bic_eepcfg_t v); /* "immediate", "1min", "10min", "reserved" */

typedef struct {
    bic_mode_t mode;   /* bit 0: 0 auto-detect, 1 battery */
    uint16_t reserved; /* bits 15:1 as received */
} bic_bidir_t;
void bic_bidir_decode(uint16_t raw, bic_bidir_t *ret_cfg);
const char *bic_mode_name(bic_mode_t m); /* "auto", "battery" */

/* SCALING_FACTOR: a power-of-ten exponent per value class (factor = 10^exp10). */
typedef struct {
    int8_t exp10[BIC_SCALE_COUNT];  /* index bic_scale_t; [BIC_SCALE_NONE] = 0 */
    bool reported[BIC_SCALE_COUNT]; /* true: from the device; false: fixed-table fallback */
} bic_scaling_t;

/* The fixed factors of §7 (VOUT/IOUT -2, VIN/TEMP -1, FAN 0). */
void bic_scaling_fixed(bic_scaling_t *ret_scaling);
/* Decode SCALING_FACTOR data (2-6 bytes accepted; missing bytes, 0 nibbles and reserved
   codes fall back to the fixed factor). BIC_E_DLC for len < 2 or > 6 (ret untouched). */
bic_err_t bic_scaling_decode(const uint8_t *data, size_t len, bic_scaling_t *ret_scaling);
/* The bytes a BIC reports: 55 76 06 00 00 00 (len 2-6 gives the first len bytes). */
void bic_scaling_encode_fixed(uint8_t out[6]);
double bic_scaling_factor(const bic_scaling_t *s, bic_scale_t cls);

typedef struct {
    const char *name; /* lower-case field name, e.g. "fan_fail", "operation_init" */
    int value;        /* 0/1 for flags, the field value otherwise */
    bool is_flag;     /* true: a boolean flag; false: a multi-bit field with text */
    const char *text; /* value's name for multi-bit fields ("on", "10min"), NULL for flags */
} bic_field_t;
/* Fields of a bitfield register (FAULT_STATUS, SYSTEM_STATUS, SYSTEM_CONFIG,
   BIDIRECTIONAL_CONFIG; NPB also CURVE_CONFIG and CHG_STATUS) in bit order, at most 12.
   Returns the number of fields written (at most max), or -1 if the command is not a
   bitfield of the family. */
int bic_fields(const bic_family_t *f, uint16_t code, uint16_t raw, bic_field_t *out, size_t max);

/* ---------------------------------------------------------------------------------------
   Values: data bytes <-> raw <-> engineering units
   --------------------------------------------------------------------------------------- */

/* Read a numeric register's raw value from its data bytes (little-endian; s16 sign-extended;
   u8 one byte). BIC_E_DLC if len < cmd->len; BIC_E_ARG for text/bytes commands. */
bic_err_t bic_data_to_raw(const bic_cmd_t *c, const uint8_t *data, size_t len, int32_t *ret_raw);
/* Write a raw value as the command's N data bytes. BIC_E_RANGE if it does not fit (u8 0-255,
   u16 0-65535, s16 -32768..32767). Returns BIC_OK. */
bic_err_t bic_raw_to_data(const bic_cmd_t *c, int32_t raw, uint8_t out[BIC_DATA_MAX]);

/* raw x factor. Commands without a scale return raw. */
double bic_raw_to_value(const bic_cmd_t *c, const bic_scaling_t *s, int32_t raw);
/* Engineering units to raw: round half away from zero to the register's resolution (a value
   within 1e-7 step of a half step counts as the half step, so 20.005 V -> 2001). BIC_E_RANGE for
   NaN/inf, negatives on unsigned registers (REVERSE_IOUT_SET is a magnitude) and values
   beyond the register width. s may be NULL (fixed factors). */
bic_err_t bic_value_to_raw(const bic_cmd_t *c, const bic_scaling_t *s, double value,
                           int32_t *ret_raw);
/* Decimal text ("27.6", "-3", "0.455") to raw with integer arithmetic only, same rounding
   and range rules. BIC_E_PARSE for anything that is not a plain decimal number. */
bic_err_t bic_text_to_raw(const bic_cmd_t *c, const bic_scaling_t *s, const char *text,
                          int32_t *ret_raw);

/* ---------------------------------------------------------------------------------------
   Frames
   --------------------------------------------------------------------------------------- */

/* A decoded protocol message (request or reply). */
typedef struct {
    uint8_t addr;               /* 0..addr_max, or BIC_ADDR_BROADCAST */
    uint16_t code;              /* command code as received */
    const bic_cmd_t *cmd;       /* NULL when the code is unknown */
    bool write;                 /* requests: data bytes follow the code */
    uint8_t len;                /* data bytes received (dlc - 2) */
    uint8_t data[BIC_DATA_MAX]; /* first min(len, 6) data bytes */
} bic_msg_t;

/* Controller -> device read request: id host_base|addr, DLC 2. addr 0..addr_max (a broadcast
   read is refused with BIC_E_ADDR: devices do not answer it). */
bic_err_t bic_encode_read(const bic_family_t *f, uint8_t addr, uint16_t code,
                          can_frame_t *ret_frame);
/* Controller -> device write: DLC 2+N exactly, raw value little-endian. addr 0..addr_max or
   BIC_ADDR_BROADCAST. BIC_E_READ_ONLY, BIC_E_RANGE, BIC_E_UNKNOWN_CMD, BIC_E_ADDR. */
bic_err_t bic_encode_write(const bic_family_t *f, uint8_t addr, uint16_t code, int32_t raw,
                           can_frame_t *ret_frame);
/* Device -> controller reply (the simulator's side): id dev_base|addr, DLC 2+len. len must be
   the command's N, except SCALING_FACTOR (2-6). */
bic_err_t bic_encode_reply(const bic_family_t *f, uint8_t addr, uint16_t code, const uint8_t *data,
                           size_t len, can_frame_t *ret_frame);

/* Decode a device reply (the gateway's side). Checks, in order: extended (BIC_E_NOT_EXT), not
   RTR (BIC_E_RTR), id is dev_base|addr with addr 0..addr_max (BIC_E_WRONG_ID), DLC >= 2
   (BIC_E_SHORT), command known (BIC_E_UNKNOWN_CMD; ret->code is still filled), DLC == 2+N,
   SCALING_FACTOR 2+2..2+6 (BIC_E_DLC). */
bic_err_t bic_decode_reply(const bic_family_t *f, const can_frame_t *fr, bic_msg_t *ret_msg);

/* Decode a controller request (the simulator's side): extended, not RTR, id host_base|addr
   with addr 0..addr_max or the broadcast id (addr = BIC_ADDR_BROADCAST), DLC >= 2. The
   command may be unknown (cmd NULL, BIC_E_UNKNOWN_CMD returned with ret filled). write =
   DLC > 2; a write shorter than 2+N gives BIC_E_DLC; a longer one is accepted (len as
   received, the device uses the first N bytes); a write to a read-only command gives
   BIC_E_READ_ONLY. On these errors ret is filled as far as decoded, so a device can stay
   silent knowingly. */
bic_err_t bic_decode_request(const bic_family_t *f, const can_frame_t *fr, bic_msg_t *ret_msg);

/* Does reply answer request? Same family, reply id = dev_base|addr for request id
   host_base|addr, both extended data frames, reply DLC >= 2 and the echoed command equals the
   request's. Broadcast requests are never answered. */
bool bic_reply_matches(const bic_family_t *f, const can_frame_t *request, const can_frame_t *reply);

#ifdef __cplusplus
}
#endif

#endif
