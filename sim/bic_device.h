/* bic_device.h - one simulated Mean Well BIC-2200 (CAN variant).
 *
 * A pure model of the device as docs/bic2200-protocol.md §16 describes it: reply framing and
 * silence, variants 12/24/48/96 with their defaults and ranges, firmware generations, the
 * EEPROM model (persisted set, EEP_OFF, EEP_CONFIG delays, per-register write counters),
 * power cycles, battery-mode and auto-detect physics on an owned battery model, faults.
 * No clock reads and no I/O: every call that depends on time takes now_us, a monotonic time
 * in microseconds chosen by the caller (the simulator's clock or the twin's simulated time).
 *
 * Sign conventions: dc current > 0 charges the battery; ac power > 0 is drawn from the grid
 * (charging), < 0 is fed into it (discharging).
 */
#ifndef BIC_SIM_BIC_DEVICE_H
#define BIC_SIM_BIC_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "battery.h"
#include "bic_proto.h"
#include "can_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Firmware generation (§11): OLD has no fan readings and no EEP_OFF/EEP_CONFIG bits
 * (written bits 8-10 of SYSTEM_CONFIG read back 0); NEW has everything. */
typedef enum { BIC_FW_OLD = 0, BIC_FW_NEW = 1 } bic_fw_t;

/* What a write outside the allowed range does (§10): never a reply either way. */
typedef enum { BIC_RANGE_IGNORE = 0, BIC_RANGE_CLAMP = 1 } bic_range_policy_t;

/* Injectable faults. Latched ones (OVP, OLP, SHORT, ISLANDING unless configured otherwise)
 * stay set after the cause is removed, until AC re-power. */
typedef enum {
    BIC_DEV_FAULT_FAN_FAIL = 0, /* flag only: FAULT_STATUS bit 0, fan 1 reads 0 RPM */
    BIC_DEV_FAULT_OTP,          /* shutdown, auto-recovers when removed */
    BIC_DEV_FAULT_OVP,          /* shutdown, latched */
    BIC_DEV_FAULT_OLP,          /* shutdown, latched */
    BIC_DEV_FAULT_SHORT,        /* shutdown, latched */
    BIC_DEV_FAULT_AC_FAIL,      /* shutdown, auto-recovers when removed; PFC_OK = 0 */
    BIC_DEV_FAULT_HI_TEMP,      /* flag only: FAULT_STATUS bit 7 */
    BIC_DEV_FAULT_HV_OVP,       /* flag only: FAULT_STATUS bit 8 */
    BIC_DEV_FAULT_EEPER,        /* SYSTEM_STATUS EEPER, shutdown while set */
    BIC_DEV_FAULT_ISLANDING,    /* anti-islanding trip: shutdown, latched by default */
    BIC_DEV_FAULT_COUNT
} bic_dev_fault_t;

/* Result of a register write through bic_device_write() (frames never get a reply). */
typedef enum {
    BIC_WRITE_OK = 0,       /* applied as written */
    BIC_WRITE_CLAMPED,      /* out of range, clamped (clamp policy) and applied */
    BIC_WRITE_OUT_OF_RANGE, /* out of range, ignored (ignore policy or not clampable) */
    BIC_WRITE_READ_ONLY,    /* read-only command: ignored */
    BIC_WRITE_UNKNOWN,      /* not a BIC-2200 command (or not on this firmware): ignored */
    BIC_WRITE_SHORT,        /* fewer data bytes than the command needs: ignored */
    BIC_WRITE_UNPOWERED,    /* AC off or booting: the device hears nothing */
} bic_write_result_t;

typedef struct {
    uint8_t addr;             /* CAN address 0..63 */
    int variant;              /* 12, 24, 48 or 96 (V) */
    bic_fw_t fw;              /* firmware generation, default NEW */
    bic_range_policy_t range; /* default IGNORE */
    bool battery_mode;        /* factory EEPROM holds BIDIRECTIONAL_CONFIG = 1 (pre-commissioned);
                                 default false (auto-detect, the factory state) */
    bool can_ctrl;            /* factory EEPROM holds SYSTEM_CONFIG CAN_CTRL = 1; default false */
    bool scaling_short;       /* SCALING_FACTOR replies with 2 data bytes instead of 6 */
    bool min_current_20pct; /* current minimum 20 % of rated instead of 1 % (old firmware option) */
    bool all_obey_eep_off;  /* OPERATION/SYSTEM_CONFIG/BIDIRECTIONAL_CONFIG obey EEP_OFF too */
    bool can_ctrl_at_power_up; /* a CAN_CTRL change acts only after a power cycle (default: at once)
                                */
    bool islanding_auto;       /* islanding trip recovers automatically (default: latched) */
    bool remote_open;          /* Remote ON/OFF contact open at start (default: closed) */
    double svr_v;              /* SVR potentiometer voltage used while CAN_CTRL = 0, V;
                                  0 = the variant's auto-detect default VOUT_SET */
    double tau_s;              /* first-order current response time constant, s (default 1) */
    double ramp_a_per_s;       /* current slew limit, A/s; 0 = none (default) */
    double eff_charge;         /* AC->DC efficiency (default 0.92) */
    double eff_discharge;      /* DC->AC efficiency (default 0.92) */
    double ambient_c;          /* ambient temperature, degC (default 25) */
    double thermal_k_per_w;    /* steady-state temperature rise per W of loss, K/W (default 0.15) */
    double thermal_tau_s;      /* temperature time constant, s (default 300) */
    double ac_v;               /* READ_VIN while AC is good, V (default 230) */
    int64_t boot_silence_us;   /* CAN silence after a power-up, us (default 1800000; 0 = none) */
    uint8_t revision[6];       /* MFR_REVISION bytes (default 0E 0D FF FF FF FF) */
    char location[4];          /* MFR_LOCATION, 3 ASCII chars (default "TWN") */
    char date[7];              /* MFR_DATE YYMMDD (default "240301") */
    char serial[13];           /* MFR_SERIAL, 12 ASCII chars (default "240301000001") */
} bic_device_config_t;

/* True state, as a test or the twin sees it (not quantised like the registers). */
typedef struct {
    bool powered;                 /* AC present (device alive) */
    bool booting;                 /* within the boot silence after power-up */
    bool output_on;               /* converter is running (not off, not shut down by a fault) */
    bool battery_mode;            /* active mode (BIDIRECTIONAL_CONFIG as of the last power-up) */
    bool can_ctrl;                /* active CAN_CTRL */
    bool discharging;             /* present direction of power flow is DC->AC */
    double dc_v;                  /* battery terminal voltage, V */
    double dc_a;                  /* DC current, + charging the battery, A */
    double target_a;              /* the current the converter is steering towards, A */
    double ac_w;                  /* AC power, + drawn from the grid, W */
    double soc_pct;               /* battery SOC, % */
    double temperature_c;         /* internal temperature, degC */
    int fan_rpm[2];               /* fan speeds, RPM */
    uint16_t fault_status;        /* FAULT_STATUS register value */
    uint16_t system_status;       /* SYSTEM_STATUS register value */
    uint32_t eeprom_writes_total; /* persisted writes since creation, all registers */
} bic_device_state_t;

typedef struct bic_device_t bic_device_t;

/* Fills *cfg with the defaults for a variant (12/24/48/96). Returns 0, or -1 for another
 * variant (cfg then holds the 24 V defaults). addr is set to 0. */
int bic_device_config_defaults(bic_device_config_t *cfg, int variant);

/* Checks a configuration; 0 when valid, else -1 with a message in err (may be NULL). */
int bic_device_config_validate(const bic_device_config_t *cfg, char *err, size_t errlen);

/* Parses an --device specification "ADDR:VARIANT[:OPTIONS]" (OPTIONS comma-separated, see
 * docs/simulator.md: fw=old|new, clamp, ignore, battery, canctrl, scaling2, min20,
 * eep_all, canctrl_powerup, island_auto, remote_off, svr=V, tau=S, ramp=A/S, eff=F, eff_c=F,
 * eff_d=F, ambient=C, boot_ms=MS, rev=HEX12, date=YYMMDD, serial=S, location=S, and the battery
 * keys soc=, soc_min=, soc_max=, ah=, cells=, r_mohm=). Fills both configurations from their
 * defaults for the variant first (battery sized for the variant). Returns 0, or -1 with a
 * message in err naming the bad part and what is allowed. */
int bic_device_parse_spec(const char *spec, bic_device_config_t *cfg, battery_config_t *bcfg,
                          char *err, size_t errlen);

/* Creates a powered, booted device (no boot silence at creation) with its EEPROM at the
 * factory values for cfg and a battery made from bcfg (owned by the device). NULL when a
 * configuration is invalid or memory is short. The caller owns the result. */
bic_device_t *bic_device_new(const bic_device_config_t *cfg, const battery_config_t *bcfg,
                             int64_t now_us);

/* Destroys *p (and its battery) and sets *p to NULL. Accepts NULL and *p == NULL. */
void bic_device_destroy(bic_device_t **p);

/* Handles one frame seen on the bus. Returns 1 and fills *reply when the device answers,
 * 0 for silence (writes, frames for another address, standard or RTR frames, DLC < 2,
 * unknown commands, writes to read-only commands, broadcast reads, unpowered or booting).
 * Broadcast writes (0x000C03FF) are applied. Advances the physics to now_us first. */
int bic_device_handle_frame(bic_device_t *dev, const can_frame_t *req, int64_t now_us,
                            can_frame_t *reply);

/* Register-level access with the same semantics as a frame, for the twin and tests.
 * bic_device_write: raw is the value as sent (little-endian data bytes d0, d1 combined;
 * 1-byte commands use the low byte). bic_device_read: fills data (up to 6 bytes) and *len;
 * returns 0, or -1 where the device would stay silent. */
bic_write_result_t bic_device_write(bic_device_t *dev, uint16_t cmd, uint16_t raw, int64_t now_us);
int bic_device_read(bic_device_t *dev, uint16_t cmd, int64_t now_us, uint8_t data[6], size_t *len);

/* Advances physics, temperature, EEPROM commit timers and boot state to now_us. Calls with
 * now_us earlier than the last one change nothing. Steps longer than 1 s are subdivided. */
void bic_device_step(bic_device_t *dev, int64_t now_us);

/* The true state at the last step. */
void bic_device_get_state(const bic_device_t *dev, bic_device_state_t *out);

/* Present (RAM) value of a settable register (0x0000, 0x0020, 0x0030, 0x0100, 0x0120, 0x0130,
 * 0x0140, 0x00C2) as it would read back. Returns 0, or -1 for another command. */
int bic_device_register(const bic_device_t *dev, uint16_t cmd, uint16_t *raw);

/* EEPROM content of a persisted register (0x0000, 0x0020, 0x0030, 0x0120, 0x0130, 0x0140,
 * 0x00C2). Returns 0, or -1 for another command. */
int bic_device_eeprom_value(const bic_device_t *dev, uint16_t cmd, uint16_t *raw);

/* Persisted writes of one register since creation (0 for registers not persisted), and
 * of all registers. A delayed (EEP_CONFIG) commit counts once per register committed. */
uint32_t bic_device_eeprom_writes(const bic_device_t *dev, uint16_t cmd);
uint32_t bic_device_eeprom_writes_total(const bic_device_t *dev);

/* True when a delayed EEPROM commit is pending. */
bool bic_device_eeprom_pending(const bic_device_t *dev);

/* Fault injection: on = the cause is present. Latched faults stay active after off until
 * AC re-power. */
void bic_device_set_fault(bic_device_t *dev, bic_dev_fault_t fault, bool on, int64_t now_us);
bool bic_device_fault_active(const bic_device_t *dev, bic_dev_fault_t fault);

/* Fault names ("otp", "ovp", "olp", "short", "ac_fail", "fan_fail", "hi_temp", "hv_ovp",
 * "eeper", "islanding"). from_name returns -1 for an unknown name. */
const char *bic_dev_fault_name(bic_dev_fault_t fault);
int bic_dev_fault_from_name(const char *name);

/* AC mains. Off: the device is unpowered (silent, output off, pending EEPROM commits lost).
 * On after off: power-up (reload EEPROM, apply BIDIRECTIONAL_CONFIG and OPERATION_INIT,
 * clear latched faults, DIRECTION_CTRL = 0, boot silence). */
void bic_device_set_ac(bic_device_t *dev, bool on, int64_t now_us);
bool bic_device_ac_on(const bic_device_t *dev);

/* AC off and on again at now_us. */
void bic_device_power_cycle(bic_device_t *dev, int64_t now_us);

/* Remote ON/OFF contact (CN46): closed (true, default) lets the output run. */
void bic_device_set_remote(bic_device_t *dev, bool closed, int64_t now_us);

/* Run-time options. */
void bic_device_set_range_policy(bic_device_t *dev, bic_range_policy_t policy);
void bic_device_set_boot_silence(bic_device_t *dev, int64_t boot_silence_us);

/* The owned battery, for inspection and for changing its state (e.g. battery_set_soc). */
battery_t *bic_device_battery(bic_device_t *dev);

/* Identity. */
uint8_t bic_device_addr(const bic_device_t *dev);
int bic_device_variant(const bic_device_t *dev);
bic_fw_t bic_device_fw(const bic_device_t *dev);
const bic_device_config_t *bic_device_config(const bic_device_t *dev);

/* Rated AC->DC current of the variant (180/90/45/22.5 A). */
double bic_device_rated_current_a(int variant);

#ifdef __cplusplus
}
#endif

#endif
