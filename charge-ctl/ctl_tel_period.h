/*
 * ctl_tel_period: when a device's telemetry counts as silent, by its own gateway's telemetry
 * period. Each gateway states its period in every tel/<dev> message (`period_ms`,
 * docs/ipc-protocol.md); a gateway that states none is taken at the controller's own
 * [GATEWAY] TelemetryPeriodMs. Gateways of a group may have different periods: a slow one is
 * not declared silent between two of its messages, a fast one that stops is seen as soon.
 *
 * Pure: a telemetry message and numbers in, numbers out.
 */
#ifndef CTL_TEL_PERIOD_H
#define CTL_TEL_PERIOD_H

#include <stddef.h>

#include <cJSON.h>

/* The periods a gateway may state (its TelemetryPeriodMs range). */
#define CTL_TEL_PERIOD_MIN_MS 200
#define CTL_TEL_PERIOD_MAX_MS 60000

/* The period a telemetry message states: its `period_ms` in ms; 0 when it states none (a
 * gateway from before the key); -1 when it is not a whole number of CTL_TEL_PERIOD_MIN_MS to
 * CTL_TEL_PERIOD_MAX_MS, with err saying what it was and what is allowed. */
int ctl_tel_period_stated(const cJSON *msg, char *err, size_t errlen);

/* The period to judge a device's telemetry by: the stated one when valid (> 0), otherwise
 * the controller's own file's (fallback_ms). */
int ctl_tel_period_ms(int stated_ms, int fallback_ms);

/* Silent (the device unreachable, its lease not renewed) after five periods without
 * telemetry, never before 3 s. */
int ctl_tel_silence_ms(int period_ms);

/* The step's telemetry counts as stale (ctl_params_t.telemetry_timeout_ms) after five
 * periods, never before 10 s. */
int ctl_tel_stale_ms(int period_ms);

#endif
