/*
 * gw_device: what the gateway knows about one device on its bus (plain data plus pure helpers).
 *
 * Identity (model, variant, firmware, serial), capabilities (fans, EEP_OFF), the active mode,
 * the effective limits (the model's table for the mode intersected with the [DEVICE] limits),
 * online state and a cache of the last value read from each telemetry register. The gateway
 * service owns the devices and mutates them from its loop; these helpers never do I/O.
 */
#ifndef BIC_GW_DEVICE_H
#define BIC_GW_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "bic_proto.h"
#include "eeprom_policy.h"
#include "npb_proto.h"

/* Device numbers ("dev" in requests, telemetry and the state files): 0-63 the BIC-2200 at that
 * CAN address, 64-67 the NPB charger at address 0-3 (docs/ipc-protocol.md). */
#define GW_NPB_BASE 64
#define GW_NPB_COUNT 4
#define GW_DEV_MAX (GW_NPB_BASE + GW_NPB_COUNT)
#define GW_DEV_IS_NPB(dev) ((dev) >= GW_NPB_BASE && (dev) < GW_DEV_MAX)

/* [DEVICE] Id/X/... as configured; raw units (0.01 V, 0.01 A). */
typedef struct {
    bool present;
    int type_variant;            /* 0 = detect; else 12/24/48/96 from Id/X/Type */
    char type[24];               /* the configured Type text */
    int charge_v_raw;            /* ChargeVoltage: upper bound of VOUT_SET */
    int discharge_v_raw;         /* DischargeVoltage: lower bound of REVERSE_VOUT_SET */
    int max_charge_raw;          /* MaxChargeCurrent: upper bound of IOUT_SET */
    int max_discharge_raw;       /* MaxDischargeCurrent: upper bound of REVERSE_IOUT_SET */
    int min_current_raw;         /* MinCurrent, 0 = the model's minimum */
    const npb_model_t *npb_type; /* [NPB] Id/X/Type: the expected NPB model, NULL = detect */
    npb_options_t npb_opts;      /* [NPB] DcOkPolarity, CurrentMinPct: the family's (NPBs) */
} gw_dev_cfg_t;

/* Registers the gateway polls for telemetry, and the cache slot of each. */
enum {
    TREG_READ_VOUT = 0,
    TREG_READ_IOUT,
    TREG_OPERATION,
    TREG_DIRECTION,
    TREG_FAULT,
    TREG_IOUT_SET,
    TREG_REV_IOUT_SET,
    TREG_CHG_STATUS, /* NPB only */
    TREG_CURVE_CC,   /* NPB only */
    TREG_FAST_COUNT, /* the fast set ends here */
    TREG_READ_VIN = TREG_FAST_COUNT,
    TREG_TEMP,
    TREG_FAN1,
    TREG_FAN2,
    TREG_SYSSTATUS,
    TREG_VOUT_SET,
    TREG_REV_VOUT_SET,
    TREG_CURVE_CV,     /* NPB only */
    TREG_CURVE_FV,     /* NPB only */
    TREG_CURVE_CONFIG, /* NPB only */
    TREG_COUNT
};

typedef struct {
    bool valid;
    int32_t raw;
    int64_t at;   /* monotonic µs of the read */
    bool written; /* a write went out after that read: what it holds is not known until the
                     next read (a lost read-back must not leave the old value as known) */
} gw_cached_t;

typedef struct {
    uint8_t addr;
    gw_dev_cfg_t cfg;
    bool identified; /* identity read and accepted */
    bool online;
    char offline_reason[160];
    bic_model_t model;
    const npb_model_t *npb; /* an NPB's model (its ranges), NULL for a BIC */
    bic_scaling_t scaling;
    bic_revision_t revision;
    char serial[13], date[7], location[4];
    uint16_t sysconfig; /* SYSTEM_CONFIG as last read */
    bool can_ctrl;
    bic_mode_t mode;   /* active mode */
    bool mode_pending; /* BIDIRECTIONAL_CONFIG written, power cycle needed */
    bic_mode_t pending_mode;
    bool fans;           /* READ_FAN_SPEED answered */
    bic_limits_t limits; /* effective limits, raw */
    int fails;           /* consecutive failed requests */
    gw_cached_t cache[TREG_COUNT];
    int64_t fast_at, slow_at; /* when each set was last completed */
    bool fast_busy;           /* fast-set reads outstanding */
    int fast_left;
    int slow_next; /* round robin index into the slow set */
    int slow_left; /* slow-set reads outstanding: no new ones while the bus is behind */
    bool probing, identifying;
    int64_t next_probe; /* no identity probe before this (monotonic µs) */
    bool safe_pending;  /* the safe state is owed: apply when the device is back */
    /* A person switched the output off (setpoint stop): a controller's setpoint that would
     * switch it on again is refused with `held_off` until a person's on (set OPERATION 1, a
     * manual setpoint) or a setpoint with "resume":true. Not kept across a restart. */
    bool held_off;
    char held_off_by[33];
    char safe_reason[64];
    uint16_t last_fault;
    bool fault_known;
    /* Setpoints that live in RAM only (EEP_OFF setpoints, DIRECTION_CTRL) as last verified,
     * per telemetry slot: a power-up replaces them with the stored values. */
    int32_t ram_set[TREG_COUNT];
    bool ram_set_valid[TREG_COUNT];
    bool ever_online;
    int limits_state;       /* GW_LIMITS_*: the configured [DEVICE] values on the device */
    char limits_error[320]; /* why they are not (GW_LIMITS_FAILED) */
    int64_t limits_retry_at;
    int64_t back_at;     /* came back online then, RAM setpoints not checked yet (0: none) */
    int64_t known_since; /* cached values read before this are not known (it went offline or
                            came back: maybe power cycled onto its stored values) */
} gw_dev_t;

enum { GW_LIMITS_UNKNOWN = 0, GW_LIMITS_APPLYING, GW_LIMITS_OK, GW_LIMITS_FAILED };

/* Telemetry register table: command and slot. */
uint16_t gw_treg_cmd(int slot);
int gw_treg_slot(uint16_t cmd); /* -1 when not a telemetry register */

/* The protocol family of device number dev (the NPB's for 64-67, else the BIC's), its bus
 * address (0-63 or 0-3) and a command of its table (NULL when the family has none). */
const bic_family_t *gw_dev_family(int dev);
uint8_t gw_dev_bus_addr(int dev);
const bic_cmd_t *gw_dev_cmd(int dev, uint16_t code);
/* A command of either family's table (the BIC's first): for names and units where no device
 * is at hand. */
const bic_cmd_t *gw_cmd_any(uint16_t code);

/* Parses an Id/X/Type text ("BIC2200-24CAN") to its variant, 0 for "", -1 when unknown. */
int gw_type_variant(const char *type);

/* Computes d->limits from the model table for d->mode intersected with d->cfg. Returns 0,
 * or -1 with a reason in err when the intersection is empty or the model has no table. */
int gw_dev_compute_limits(gw_dev_t *d, char *err, size_t errlen);

/* Range of a writable register in raw units for d (effective limits for the setpoints,
 * the register's own bounds otherwise). */
void gw_dev_reg_range(const gw_dev_t *d, const bic_cmd_t *c, int32_t *min, int32_t *max);

/* Checks a value for a writable register of d: the range of gw_dev_reg_range() and, for
 * the bitfield registers, no reserved bits or reserved field values (SYSTEM_CONFIG
 * OPERATION_INIT and EEP_CONFIG = 11). Returns 0, or -1 with what is allowed in why. */
int gw_dev_check_value(const gw_dev_t *d, const bic_cmd_t *c, int32_t raw, char *why,
                       size_t whylen);

/* A register value as JSON: {"value":..,"unit":..,"raw":..} (bitfields add "bits", text and
 * byte registers give hex "raw"). data/len are the reply bytes after the command code. */
cJSON *gw_reg_json(const gw_dev_t *d, const bic_cmd_t *c, const uint8_t *data, size_t len);

/* Cached engineering value of a telemetry slot, or NAN when not valid. */
double gw_dev_value(const gw_dev_t *d, int slot);

/* How long after the last frame of another CAN master on the bus the cache stays unknown: a
 * second writer may change any register between two reads. */
#define GW_KNOWN_FOREIGN_HOLD_US (600 * 1000000LL)

/* What register cmd of d holds as far as the gateway knows without reading it: the cached
 * value of its telemetry slot, read from the device (telemetry or a write's read-back) at most
 * max_age_us ago and after known_since with no write since, the device online and identified with
 * no check of its RAM setpoints pending, and no frame of another CAN master seen (foreign_at,
 * INT64_MIN when none) after that read or within GW_KNOWN_FOREIGN_HOLD_US. Returns true with *raw.
 */
bool gw_dev_known(const gw_dev_t *d, uint16_t cmd, int64_t now, int64_t max_age_us,
                  int64_t foreign_at, int32_t *raw);

/* tel/<dev> body (without lease/eeprom, which the service adds). */
cJSON *gw_dev_telemetry(const gw_dev_t *d, int64_t now_us, int64_t wall_ms);

/* The "limits" object in engineering units. */
cJSON *gw_dev_limits_json(const gw_dev_t *d);

#endif
