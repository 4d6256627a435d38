/*
 * dev_view: what the bridge knows about one BIC, and the seed-compatible MQTT payloads
 * built from it (`<T>/inv/<id>/info`, `/state`, `/charge`, `/fault`, `/availability`).
 *
 * Pure core: fed with the gateway's `tel/<dev>` telemetry and `info` device objects
 * (docs/ipc-protocol.md), no sockets, no clock reads (times come in as arguments).
 * It keeps what the gateway does not: rising-edge counts per fault, monotonic charged and
 * discharged energy (integrated from `dc_w` over the telemetry timestamps; the seed's keys
 * carry the same energy summed over the last 24 hours, in per-minute buckets), the SOC the
 * controller publishes or its own from the [BAT_0] table.
 */
#ifndef DEV_VIEW_H
#define DEV_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

/* Seed fault keys, in the seed's order. `can` is not a device bit: it is 1 while the device
 * is offline (or the gateway unreachable), -1 until the first telemetry. */
#define DEV_VIEW_FAULTS 11
extern const char *const dev_view_fault_keys[DEV_VIEW_FAULTS];
extern const char *const dev_view_fault_desc[DEV_VIEW_FAULTS];

/* Longest gap between two telemetry samples that is still integrated into the energy
 * counters; a longer gap (bridge or gateway down) is skipped rather than guessed. */
#define DEV_VIEW_ENERGY_MAX_GAP_MS 65000

typedef struct dev_view_t dev_view_t;

/* A view of device `dev` (0-63 a BIC's CAN address, 64-67 an NPB's). NULL on allocation
 * failure. */
dev_view_t *dev_view_new(int dev);
/* Destroys the view; accepts NULL and nulls the caller's pointer. */
void dev_view_destroy(dev_view_t **p);

int dev_view_dev(const dev_view_t *dv);

/* Feeds one `tel/<dev>` object (borrowed). Returns 0, or -1 with a reason in err when the
 * object is not telemetry for this device (not an object, wrong `v`/`dev`). Fields that are
 * missing or null keep their previous value. */
int dev_view_on_telemetry(dev_view_t *dv, const cJSON *tel, char *err, size_t errlen);

/* Feeds one element of the `info` reply's `devices` array (borrowed). 0 or -1 (not this
 * device / not an object). */
int dev_view_on_info(dev_view_t *dv, const cJSON *info, char *err, size_t errlen);

/* Feeds the `values` object of a `get` reply (borrowed) for SYSTEM_CONFIG and
 * BIDIRECTIONAL_CONFIG, shown as the seed's `sysCfg`/`sysCfgBDir`. Other registers are
 * ignored. 0, or -1 when `values` is not an object. */
int dev_view_on_regs(dev_view_t *dv, const cJSON *values);

/* The gateway stopped answering / publishing (reachable=false) or came back. While
 * unreachable the device is reported offline. */
void dev_view_set_gateway_reachable(dev_view_t *dv, bool reachable);

/* The [BAT_0] table (percent ascending, volts rising; at most DEV_VIEW_CAP2V entries are
 * kept) and the battery's internal resistance: `capBatPc` is the table's value at the
 * load-corrected voltage (dc_v - dc_a * r) whenever no fresh SOC from a controller is there,
 * so it is known as soon as a battery voltage is. n = 0: no table, no own SOC. */
#define DEV_VIEW_CAP2V 101
void dev_view_set_battery(dev_view_t *dv, const double *pct, const double *volts, size_t n,
                          double r_ohm);
/* The seed's `ChargeCtrlName` in `info`: the configured controller ("ChargePID",
 * "ChargeWinter"), NULL or "" when none runs for this device. */
void dev_view_set_ctrl_name(dev_view_t *dv, const char *name);
/* The controller's surplus (W the battery could not take while exporting), for the seed's
 * `surplusP`; it is summed into `surplusKWh` over the last 24 hours. NAN: unknown (0). */
void dev_view_set_surplus(dev_view_t *dv, double surplus_w);

/* SOC in percent published by the controller; values outside 0-100 are refused (-1). */
int dev_view_set_soc(dev_view_t *dv, double pct);
/* The last SOC is too old to show: `capBatPc` becomes null until the next one (the SOC
 * entity stays, showing unknown). */
void dev_view_expire_soc(dev_view_t *dv);

/* Restores persisted energy counters (Wh, both >= 0); -1 if negative or not finite. */
int dev_view_set_energy(dev_view_t *dv, double charged_wh, double discharged_wh);
void dev_view_energy(const dev_view_t *dv, double *charged_wh, double *discharged_wh);

bool dev_view_has_telemetry(const dev_view_t *dv);
/* An NPB charger (device 64-67): its state adds npbStage, npbCurveCC/CV/FV. */
bool dev_view_is_npb(const dev_view_t *dv);
/* An NPB's CURVE_CONFIG from the telemetry's curve, -1 when unknown (or not an NPB). */
int dev_view_curve_config(const dev_view_t *dv);
bool dev_view_has_info(const dev_view_t *dv);
/* A SOC can be shown: a [BAT_0] table, or a controller has published one. */
bool dev_view_has_soc(const dev_view_t *dv);
bool dev_view_online(const dev_view_t *dv);
/* OPERATION read-back 0/1, or -1 when unknown. */
int dev_view_operation(const dev_view_t *dv);

/* From `info` (NULL/empty when unknown): model name, firmware as "R01.4/R01.3", serial. */
const char *dev_view_model(const dev_view_t *dv);
const char *dev_view_firmware(const dev_view_t *dv);
const char *dev_view_serial(const dev_view_t *dv);
bool dev_view_has_fans(const dev_view_t *dv);
/* The model's variant from `info` (nominal battery voltage 12/24/48/96), 0 when unknown. */
int dev_view_variant(const dev_view_t *dv);
/* Every value of the state payload is known: both fans (with the fan capability), AC
 * voltage, temperature, battery voltage and OPERATION. */
bool dev_view_state_complete(const dev_view_t *dv);
/* Effective limits from `info`: which = "vout_v", "iout_a", "rev_vout_v", "rev_iout_a".
 * Returns false when the gateway did not give them. */
bool dev_view_limit(const dev_view_t *dv, const char *which, double *min, double *max);

/* Seed payloads, each a new compact JSON string the caller frees (free()); NULL when there is
 * nothing to say yet (no telemetry / no info) or on allocation failure. */
char *dev_view_state_json(const dev_view_t *dv);
char *dev_view_charge_json(const dev_view_t *dv);
char *dev_view_fault_json(const dev_view_t *dv);
char *dev_view_info_json(const dev_view_t *dv);
/* The payloads above, for dev_view_key(). */
typedef enum {
    DEV_VIEW_P_STATE,
    DEV_VIEW_P_CHARGE,
    DEV_VIEW_P_FAULT,
    DEV_VIEW_P_INFO,
    DEV_VIEW_P_COUNT
} dev_view_payload_t;
/* Payload `which` as dev_view_<which>_json() builds it. */
char *dev_view_json(const dev_view_t *dv, dev_view_payload_t which);
/* What payload `which` would show, as a key (payload_emit.h): equal keys, equal payloads, at
 * a small part of the cost of building the payload. Writes up to cap bytes to buf and returns
 * the key's length: 0 when the payload would be NULL (nothing to say yet); more than cap when
 * the key did not fit (then it cannot be compared: build the payload). */
size_t dev_view_key(const dev_view_t *dv, dev_view_payload_t which, unsigned char *buf, size_t cap);
/* "online" or "offline" (static string). */
const char *dev_view_availability(const dev_view_t *dv);

#endif
