/*  npb_proto.h - Mean Well NPB chargers: the models and their ranges, the charge-curve
    decoders (CURVE_CONFIG, CHG_STATUS), model detection from MFR_MODEL, and the points where
    the sources disagree (DC_OK polarity, current minimum) as per-family options.

    The frames, identifiers and the command table are those of the NPB descriptor in
    bic_proto.h (bic_family_get(BIC_FAMILY_NPB)); this module adds what only the NPB has.
    Pure code over plain data: no I/O, no clock, no allocation. The specification, with the
    sources of every range, is docs/npb.md.

    Units: raw register units as in bic_proto.h (0.01 V, 0.01 A, minutes for the timeouts).
*/
#ifndef NPB_PROTO_H_INCLUDED
#define NPB_PROTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bic_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NPB-only command codes (§15.2 of the protocol notes; docs/npb.md). */
enum {
    NPB_CMD_CURVE_CC = 0x00B0,
    NPB_CMD_CURVE_CV = 0x00B1,
    NPB_CMD_CURVE_FV = 0x00B2,
    NPB_CMD_CURVE_TC = 0x00B3,
    NPB_CMD_CURVE_CONFIG = 0x00B4,
    NPB_CMD_CURVE_CC_TIMEOUT = 0x00B5,
    NPB_CMD_CURVE_CV_TIMEOUT = 0x00B6,
    NPB_CMD_CURVE_FV_TIMEOUT = 0x00B7,
    NPB_CMD_CHG_STATUS = 0x00B8,
    NPB_CMD_CHG_RST_VBAT = 0x00B9,
};

#define NPB_ADDR_DEFAULT 3 /* address pins open */

/* ---------------------------------------------------------------------------------------
   Options: the disputed points, configurable per family
   --------------------------------------------------------------------------------------- */

/* SYSTEM_STATUS bit 1 (DC_OK): which value means the output is normal. */
typedef enum {
    NPB_DCOK_ONE_IS_NORMAL = 0, /* 1 = output normal (default; the BIC and the sister families'
                                   manuals) */
    NPB_DCOK_ONE_IS_LOW = 1,    /* 1 = output too low */
} npb_dcok_polarity_t;

typedef struct {
    npb_dcok_polarity_t dc_ok; /* default NPB_DCOK_ONE_IS_NORMAL */
    int iout_min_pct;          /* current minimum, % of the model's maximum (CURVE_CC and
                                  IOUT_SET): 20 by default, 20..100 allowed */
} npb_options_t;

void npb_options_default(npb_options_t *ret_opts);
/* 0 when valid, else -1 with a message in err (may be NULL). */
int npb_options_validate(const npb_options_t *opts, char *err, size_t errlen);
/* Parses a polarity name: "normal" (1 = normal) or "low" (1 = too low). -1 otherwise. */
int npb_dcok_parse(const char *text, npb_dcok_polarity_t *ret);
const char *npb_dcok_name(npb_dcok_polarity_t p); /* "normal", "low" */

/* ---------------------------------------------------------------------------------------
   Models
   --------------------------------------------------------------------------------------- */

typedef struct {
    int power_w;       /* 450, 750, 1200, 1700 */
    int volts;         /* 12, 24, 48 */
    const char *name;  /* "NPB-1200-24" */
    uint16_t vmin_raw; /* charge voltage range, 0.01 V */
    uint16_t vmax_raw;
    uint16_t imax_raw;  /* maximum output (CC) current, 0.01 A */
    uint16_t boost_raw; /* default boost (CV) voltage, 0.01 V */
    uint16_t float_raw; /* default float (FV) voltage, 0.01 V */
    bool read_vin;      /* READ_VIN supported (not on NPB-450/750) */
    const char *source; /* where the ratings come from (docs/npb.md) */
} npb_model_t;

/* All known models, and how many. */
const npb_model_t *npb_models(size_t *ret_count);
/* A model by rating; NULL when unknown. */
const npb_model_t *npb_model_find(int power_w, int volts);
/* A model by name, case-insensitive: "NPB-1200-24", also "npb-1200-24" and the zero-padded
   "NPB-0450-12". NULL when unknown. */
const npb_model_t *npb_model_by_name(const char *name);
/* The model of a parsed MFR_MODEL (bic_model_parse): NULL when it is not an NPB or an NPB
   model this table does not know (the caller then keeps the device offline). */
const npb_model_t *npb_model_of(const bic_model_t *m);
/* Detects the model from the two MFR_MODEL halves (0x0082, 0x0083). BIC_OK, BIC_E_PARSE for
   text that is not an NPB model (message in err), BIC_E_RANGE for an NPB this table does not
   know (message names the known ones). err may be NULL. */
bic_err_t npb_model_detect(const uint8_t b0b5[6], const uint8_t b6b11[6],
                           const npb_model_t **ret_model, char *err, size_t errlen);
/* The two halves a device of this model reports ("NPB-12", "00-24 "). */
void npb_model_encode(const npb_model_t *m, uint8_t b0b5[6], uint8_t b6b11[6]);

/* ---------------------------------------------------------------------------------------
   Ranges and defaults
   --------------------------------------------------------------------------------------- */

#define NPB_TIMEOUT_MIN 60    /* minutes */
#define NPB_TIMEOUT_MAX 64800 /* minutes (45 days) */
#define NPB_TIMEOUT_DEFAULT 600
#define NPB_CURVE_CONFIG_DEFAULT 0x0084u  /* custom curve, -3 mV/degC/cell, 3-stage, charger */
#define NPB_CURVE_CONFIG_WRITABLE 0x0FCFu /* the defined bits: 1:0, 3:2, 6, 7, 8, 9, 10, 11 */
#define NPB_SYSTEM_CONFIG_DEFAULT 0x0002u
#define NPB_SYSTEM_CONFIG_WRITABLE 0x0706u /* OPERATION_INIT 2:1, EEP_CONFIG 9:8, EEP_OFF 10 */

/* The range and factory default of a writable register for a model under the options:
   OPERATION, VOUT_SET, IOUT_SET, CURVE_CC/CV/FV/TC, the three timeouts, CHG_RST_VBAT
   (min/max/def in register units). CURVE_CONFIG and SYSTEM_CONFIG are bitfields: min 0, max
   their writable mask, def the factory value. BIC_E_UNKNOWN_CMD for another command. */
bic_err_t npb_range(const npb_model_t *m, const npb_options_t *opts, uint16_t code,
                    bic_range_t *ret_range);

/* Checks one write: the command is a writable NPB command, the value is within npb_range (a
   bitfield sets no bit outside its writable mask). BIC_OK, or BIC_E_UNKNOWN_CMD,
   BIC_E_READ_ONLY, BIC_E_RANGE with a message naming the register, the value and what is
   allowed (in V, A or minutes). err may be NULL. */
bic_err_t npb_check_write(const npb_model_t *m, const npb_options_t *opts, uint16_t code,
                          int32_t raw, char *err, size_t errlen);

/* The curve as a whole: float voltage at most the boost voltage, taper current below the
   constant current, restart voltage below the float voltage (0.01 V / 0.01 A). BIC_OK or
   BIC_E_RANGE with a message. err may be NULL. */
bic_err_t npb_check_curve(uint16_t cc_raw, uint16_t cv_raw, uint16_t fv_raw, uint16_t tc_raw,
                          uint16_t rst_raw, char *err, size_t errlen);

/* ---------------------------------------------------------------------------------------
   Decoders
   --------------------------------------------------------------------------------------- */

typedef enum {
    NPB_TCS_OFF = 0, /* no temperature compensation */
    NPB_TCS_3MV = 1, /* -3 mV/degC/cell (factory) */
    NPB_TCS_4MV = 2,
    NPB_TCS_5MV = 3,
} npb_tcs_t;

typedef struct {
    int curve;          /* bits 1:0 CUVS: 0 custom curve (CURVE_*), 1-3 preset curves */
    npb_tcs_t tcs;      /* bits 3:2 */
    bool two_stage;     /* bit 6 STGS: 1 = 2-stage (no float), 0 = 3-stage */
    bool charger;       /* bit 7 CUVE: 1 = charger mode, 0 = PSU mode (VOUT_SET/IOUT_SET) */
    bool cc_timeout_en; /* bit 8 CCTOE */
    bool cv_timeout_en; /* bit 9 CVTOE */
    bool fv_timeout_en; /* bit 10 FVTOE */
    bool restart_en;    /* bit 11 RSTE: restart charging below CHG_RST_VBAT */
    uint16_t reserved;  /* bits 5:4 and 15:12 as received */
} npb_curve_config_t;
void npb_curve_config_decode(uint16_t raw, npb_curve_config_t *ret_cfg);
uint16_t npb_curve_config_encode(const npb_curve_config_t *cfg); /* reserved bits included */
const char *npb_curve_name(int curve); /* "custom", "curve1", "curve2", "curve3" */
const char *npb_tcs_name(npb_tcs_t t); /* "off", "-3mV/C/cell", "-4mV/C/cell", "-5mV/C/cell" */
int npb_tcs_mv(npb_tcs_t t);           /* 0, 3, 4, 5 (mV per degC per cell, negative slope) */

typedef struct {
    bool full;         /* bit 0 FULLM: fully charged */
    bool cc;           /* bit 1 CCM: constant-current stage */
    bool cv;           /* bit 2 CVM: constant-voltage stage */
    bool fv;           /* bit 3 FVM: float stage */
    bool wakeup_stop;  /* bit 6 WAKEUP_STOP */
    bool ntc_short;    /* bit 10 NTCER: temperature-compensation sensor short */
    bool no_battery;   /* bit 11 BTNC: no battery detected */
    bool cc_timeout;   /* bit 13 CCTOF */
    bool cv_timeout;   /* bit 14 CVTOF */
    bool fv_timeout;   /* bit 15 FVTOF */
    uint16_t reserved; /* bits 5:4, 9:7, 12 as received */
} npb_chg_status_t;
void npb_chg_status_decode(uint16_t raw, npb_chg_status_t *ret_status);
uint16_t npb_chg_status_encode(const npb_chg_status_t *st); /* reserved bits included */

/* The charge stage one word tells: the first that holds of no_battery, timeout (any stage
   timeout), float, cv, cc, full, idle (none of these: PSU mode or output off). */
typedef enum {
    NPB_STAGE_IDLE = 0,
    NPB_STAGE_CC,
    NPB_STAGE_CV,
    NPB_STAGE_FLOAT,
    NPB_STAGE_FULL,
    NPB_STAGE_TIMEOUT,
    NPB_STAGE_NO_BATTERY,
} npb_stage_t;
npb_stage_t npb_stage_of(uint16_t chg_status_raw);
const char *npb_stage_name(npb_stage_t s); /* "idle", "cc", "cv", "float", "full", "timeout",
                                              "no_battery" */

/* SYSTEM_STATUS of an NPB (§15.3): bit 1 DC_OK after the configured polarity, bit 5
   INITIAL_STATE with 1 = initialising, bit 6 EEPER; bits 0, 2, 4 unused. */
typedef struct {
    bool dc_ok_bit;    /* bit 1 as received */
    bool dc_ok;        /* the output is normal, after the polarity option */
    bool initialising; /* bit 5 */
    bool eeper;        /* bit 6 */
    uint16_t reserved; /* every other bit as received */
} npb_sysstatus_t;
void npb_sysstatus_decode(const npb_options_t *opts, uint16_t raw, npb_sysstatus_t *ret_status);

/* Cross-check of the DC_OK bit against READ_VOUT: does the bit, read with the configured
   polarity, agree with the measured output? The output counts as normal at or above the
   model's minimum charge voltage and as low below 90 % of it; between the two nothing is
   concluded. */
typedef enum {
    NPB_DCOK_UNKNOWN = 0, /* READ_VOUT in the band between low and normal */
    NPB_DCOK_AGREES,
    NPB_DCOK_CONTRADICTS, /* the polarity option is probably wrong for this unit */
} npb_dcok_check_t;
npb_dcok_check_t npb_dcok_cross_check(const npb_model_t *m, const npb_options_t *opts,
                                      uint16_t sysstatus_raw, uint16_t read_vout_raw);

#ifdef __cplusplus
}
#endif

#endif
