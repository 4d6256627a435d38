/*
 * gw_npb: what the gateway does differently for a Mean Well NPB charger (docs/npb.md, the
 * gateway part): its identification, limits and register ranges, the registers it polls, its
 * telemetry keys (the charge stage), and the writes of a setpoint and of the safe state.
 * Pure helpers over gw_dev_t: no I/O. An NPB is device number 64 + its CAN address (0-3).
 */
#ifndef BIC_GW_NPB_H
#define BIC_GW_NPB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "bic_plan.h"
#include "can_transport.h"
#include "gw_device.h"

/* The receive filters of the gateway's transport: the BICs' replies (0x000C0200-0x000C023F)
 * and the NPBs' (0x000C0000-0x000C0003). Returns how many entries were written to out. */
size_t gw_npb_rx_filters(can_filter_spec_t *out, size_t max);

/* The register an NPB reads at identification in place of the BIC's: CURVE_CONFIG for
 * BIDIRECTIONAL_CONFIG (the mode), CHG_STATUS for READ_FAN_SPEED_1 (no fans); others as given. */
uint16_t gw_npb_ident_cmd(uint16_t bic_cmd);

/* Takes the identity from the two MFR_MODEL halves: d->model and d->npb. Returns 0, or -1
 * with why (not an NPB, an NPB model without a range table, another model than the
 * configured [NPB] Id/X/Type). */
int gw_npb_identify(gw_dev_t *d, const uint8_t b0b5[6], const uint8_t b6b11[6], char *why,
                    size_t whylen);

/* d->limits from the model's ranges and the [NPB] window: limits.vout the charge voltage
 * range (VOUT_SET, CURVE_CV, CURVE_FV, CHG_RST_VBAT) up to ChargeVoltage, limits.iout the
 * current range (IOUT_SET, CURVE_CC) up to MaxChargeCurrent; no discharge side. */
int gw_npb_compute_limits(gw_dev_t *d, char *err, size_t errlen);

/* Range and check of a writable NPB register (npb_range within d->limits). */
void gw_npb_reg_range(const gw_dev_t *d, uint16_t code, int32_t *min, int32_t *max);
int gw_npb_check_value(const gw_dev_t *d, const bic_cmd_t *c, int32_t raw, char *why,
                       size_t whylen);

/* The curve as a whole (npb_check_curve) against what the device holds: CURVE_FV at most
 * CURVE_CV, CURVE_CV at least CURVE_FV, CURVE_TC below CURVE_CC (as last read). Returns 0, or
 * -1 with the narrowed range in *lo and *hi (raw, entered with the register's range) and the
 * rule in why. */
int gw_npb_check_curve(const gw_dev_t *d, uint16_t code, int32_t raw, int32_t *lo, int32_t *hi,
                       char *why, size_t whylen);

/* Does the device poll telemetry slot s (the NPB has no direction, discharge side or fans; a
 * BIC has no charge curve; READ_VIN only where the model has it)? */
bool gw_npb_slot_applies(const gw_dev_t *d, int slot);

/* Charger mode (CURVE_CONFIG.CUVE = 1) as last read; true while not read yet (factory). */
bool gw_npb_charger_mode(const gw_dev_t *d);

/* The register a charge setpoint writes: CURVE_CC in charger mode, IOUT_SET in PSU mode. */
uint16_t gw_npb_setpoint_cmd(const gw_dev_t *d);

/* The writes of a setpoint mode on an NPB, in order (at most BIC_PLAN_MAX). Charge: the
 * current into gw_npb_setpoint_cmd(), then the output on; in charger mode a CURVE_CC that
 * differs from the one the device holds acts only after OPERATION OFF -> ON, so an output that
 * is on is turned off first. Idle, off, stop and both safe states: the output off. Discharge: -1.
 */
int gw_npb_plan(const gw_dev_t *d, bic_plan_mode_t mode, uint16_t current_raw,
                bic_plan_write_t out[BIC_PLAN_MAX]);

/* The NPB's telemetry keys added to (or replacing those of) the BIC's body t: family, stage,
 * charge_status, curve, status (the NPB's SYSTEM_STATUS), direction "charge". */
void gw_npb_telemetry(const gw_dev_t *d, cJSON *t);

/* The NPB's keys of an info device object o: family, stage, curve with its ranges. */
void gw_npb_info(const gw_dev_t *d, cJSON *o);

#endif
