/* npb_device.h - one simulated Mean Well NPB charger (CAN variant).
 *
 * A pure model of an NPB as docs/npb.md describes it, on the same bus as the BIC models:
 * identifiers 0x000C01XX / 0x000C00XX (addresses 0-3), the NPB command table, the twelve
 * models with their ranges (can/npb_proto.h), charger mode with the CC -> CV -> float curve
 * (taper current, stage timeouts, temperature compensation from the battery sensor, restart
 * below CHG_RST_VBAT, 2- or 3-stage) and PSU mode (VOUT_SET / IOUT_SET), curve registers that
 * act only after a re-power, a Remote ON/OFF cycle or OPERATION OFF -> ON, firmware without
 * CHG_RST_VBAT (silent to it), and the EEPROM model of the BIC (persisted set, EEP_OFF and
 * EEP_CONFIG for the '*' registers, write counters). The charger only charges: its current
 * is never negative. No clock reads and no I/O: every call that depends on time takes now_us.
 */
#ifndef BIC_SIM_NPB_DEVICE_H
#define BIC_SIM_NPB_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "battery.h"
#include "can_frame.h"
#include "npb_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Firmware: OLD does not know CHG_RST_VBAT (silent to reads and writes, no restart) and has
 * no EEP_OFF/EEP_CONFIG bits (written bits 8-10 of SYSTEM_CONFIG read back 0). */
typedef enum { NPB_FW_OLD = 0, NPB_FW_NEW = 1 } npb_fw_t;

/* Injectable faults; OVP, OLP and SHORT latch until AC re-power. */
typedef enum {
    NPB_DEV_FAULT_OTP = 0,   /* shutdown, auto-recovers when removed */
    NPB_DEV_FAULT_OVP,       /* shutdown, latched */
    NPB_DEV_FAULT_OLP,       /* shutdown, latched */
    NPB_DEV_FAULT_SHORT,     /* shutdown, latched */
    NPB_DEV_FAULT_AC_FAIL,   /* shutdown, auto-recovers */
    NPB_DEV_FAULT_HI_TEMP,   /* flag only */
    NPB_DEV_FAULT_EEPER,     /* SYSTEM_STATUS EEPER, shutdown while set */
    NPB_DEV_FAULT_NTC_SHORT, /* CHG_STATUS NTCER: no temperature compensation */
    NPB_DEV_FAULT_COUNT
} npb_dev_fault_t;

typedef enum {
    NPB_WRITE_OK = 0,
    NPB_WRITE_CLAMPED,      /* out of range, clamped (clamp policy) */
    NPB_WRITE_OUT_OF_RANGE, /* ignored */
    NPB_WRITE_READ_ONLY,
    NPB_WRITE_UNKNOWN, /* not an NPB command, or not on this firmware */
    NPB_WRITE_UNPOWERED,
} npb_write_result_t;

typedef struct {
    uint8_t addr;              /* 0..3, default 3 (address pins open) */
    const npb_model_t *model;  /* e.g. npb_model_find(1200, 24) */
    npb_fw_t fw;               /* default NEW */
    bool clamp;                /* out-of-range writes clamped (default: ignored) */
    npb_dcok_polarity_t dc_ok; /* how this unit reports DC_OK (default 1 = normal) */
    int iout_min_pct;          /* this unit's current minimum, % (default 20) */
    bool battery_connected;    /* default true; false: BTNC, no current */
    bool ntc_fitted;           /* battery temperature sensor connected (default true) */
    double battery_temp_c;     /* battery (sensor) temperature, degC (default 25) */
    bool remote_open;          /* Remote ON/OFF contact open at start (default closed) */
    double tau_s;              /* first-order current response time constant, s (default 1) */
    double eff;                /* AC->DC efficiency (default 0.92) */
    double ambient_c;          /* internal ambient at no load, degC (default 25) */
    double thermal_k_per_w;    /* temperature rise per W of loss, K/W (default 0.15) */
    double thermal_tau_s;      /* temperature time constant, s (default 300) */
    double ac_v;               /* READ_VIN, V (default 230; NPB-1200/1700 only) */
    int64_t boot_silence_us;   /* CAN silence after power-up, us (default 1800000) */
    uint8_t revision[6];       /* MFR_REVISION (default 0A FF FF FF FF FF) */
    char location[4];          /* MFR_LOCATION (default "TWN") */
    char date[7];              /* MFR_DATE (default "240301") */
    char serial[13];           /* MFR_SERIAL (default "NPB000000001") */
} npb_device_config_t;

typedef struct {
    bool powered, booting, output_on;
    bool charger;        /* active mode: charger (CUVE = 1) or PSU */
    npb_stage_t stage;   /* the stage CHG_STATUS reports */
    uint16_t chg_status; /* CHG_STATUS register value */
    uint16_t fault_status;
    uint16_t system_status;
    double dc_v;     /* battery terminal voltage, V */
    double dc_a;     /* charge current, A (>= 0) */
    double target_a; /* the current the converter steers toward, A */
    double target_v; /* the voltage it regulates to (temperature-compensated), V */
    double ac_w;     /* AC power drawn, W */
    double soc_pct;
    double temperature_c; /* internal temperature */
    double stage_s;       /* time in the present stage, s */
    uint32_t eeprom_writes_total;
} npb_device_state_t;

typedef struct npb_device_t npb_device_t;

/* Defaults for a model (addr 3); battery sized for the model's voltage. */
void npb_device_config_defaults(npb_device_config_t *cfg, const npb_model_t *model);
int npb_device_config_validate(const npb_device_config_t *cfg, char *err, size_t errlen);

/* True when an --device specification names an NPB ("ADDR:npb-...", any case). */
bool npb_device_spec_is_npb(const char *spec);
/* Parses "ADDR:npb-POWER-VOLTS[:OPTIONS]" (OPTIONS comma-separated, docs/simulator.md):
 * fw=old|new, clamp, ignore, dcok=normal|low, min=PCT, nobatt, no_ntc, batt_temp=C,
 * remote_off, tau=S, eff=F, ambient=C, boot_ms=MS, rev=HEX12, date=YYMMDD, serial=S,
 * location=S and the battery keys soc=, soc_min=, soc_max=, ah=, cells=, r_mohm=.
 * Returns 0, or -1 with a message naming the bad part and what is allowed. */
int npb_device_parse_spec(const char *spec, npb_device_config_t *cfg, battery_config_t *bcfg,
                          char *err, size_t errlen);

/* A powered, booted device with its EEPROM at the model's factory values. NULL when a
 * configuration is invalid. The caller owns it. */
npb_device_t *npb_device_new(const npb_device_config_t *cfg, const battery_config_t *bcfg,
                             int64_t now_us);
void npb_device_destroy(npb_device_t **p);

/* One frame seen on the bus: 1 and *reply when the device answers, 0 for silence (writes,
 * other identifiers or addresses, broadcast reads, unknown commands, unpowered/booting). */
int npb_device_handle_frame(npb_device_t *dev, const can_frame_t *req, int64_t now_us,
                            can_frame_t *reply);
npb_write_result_t npb_device_write(npb_device_t *dev, uint16_t cmd, uint16_t raw, int64_t now_us);
int npb_device_read(npb_device_t *dev, uint16_t cmd, int64_t now_us, uint8_t data[6], size_t *len);
void npb_device_step(npb_device_t *dev, int64_t now_us);
void npb_device_get_state(const npb_device_t *dev, npb_device_state_t *out);

/* Present (RAM) and EEPROM value of a settable register; per-register persisted writes. */
int npb_device_register(const npb_device_t *dev, uint16_t cmd, uint16_t *raw);
int npb_device_eeprom_value(const npb_device_t *dev, uint16_t cmd, uint16_t *raw);
uint32_t npb_device_eeprom_writes(const npb_device_t *dev, uint16_t cmd);

void npb_device_set_fault(npb_device_t *dev, npb_dev_fault_t fault, bool on, int64_t now_us);
const char *npb_dev_fault_name(npb_dev_fault_t fault);
int npb_dev_fault_from_name(const char *name);
void npb_device_set_ac(npb_device_t *dev, bool on, int64_t now_us);
void npb_device_power_cycle(npb_device_t *dev, int64_t now_us);
void npb_device_set_remote(npb_device_t *dev, bool closed, int64_t now_us);
void npb_device_set_battery_temp(npb_device_t *dev, double temp_c, int64_t now_us);
void npb_device_set_battery_connected(npb_device_t *dev, bool connected, int64_t now_us);

battery_t *npb_device_battery(npb_device_t *dev);
uint8_t npb_device_addr(const npb_device_t *dev);
const npb_device_config_t *npb_device_config(const npb_device_t *dev);

#ifdef __cplusplus
}
#endif

#endif
