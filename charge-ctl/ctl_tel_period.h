/*
 * ctl_tel_period: when a device's telemetry counts as silent, by its own gateway's telemetry
 * period. Each gateway states its period in every tel/<dev> message (`period_ms`,
 * docs/ipc-protocol.md); a gateway that states none (one from before the key) is taken at
 * the controller's own [GATEWAY] TelemetryPeriodMs, or at the spacing measured between its
 * messages where that is longer. Gateways of a group may have different periods: a slow one
 * is not declared silent between two of its messages, a fast one that stops is seen as soon.
 *
 * Pure: a telemetry message, times and numbers in, numbers out.
 */
#ifndef CTL_TEL_PERIOD_H
#define CTL_TEL_PERIOD_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

/* The periods a gateway may state (its TelemetryPeriodMs range). */
#define CTL_TEL_PERIOD_MIN_MS 200
#define CTL_TEL_PERIOD_MAX_MS 60000

/* The period a telemetry message states: its `period_ms` in ms; 0 when it states none (a
 * gateway from before the key); -1 when it is not a whole number of CTL_TEL_PERIOD_MIN_MS to
 * CTL_TEL_PERIOD_MAX_MS, with err saying what it was and what is allowed. */
int ctl_tel_period_stated(const cJSON *msg, char *err, size_t errlen);

/* The spacing of a device's telemetry messages: the last CTL_TEL_GAPS gaps between them. */
#define CTL_TEL_GAPS 8
typedef struct {
    int64_t last_ms; /* the last message (0: none yet) */
    int gap_ms[CTL_TEL_GAPS];
    int n, next;
} ctl_tel_spacing_t;

/* A telemetry message of the device arrived at now_ms. */
void ctl_tel_spacing_add(ctl_tel_spacing_t *s, int64_t now_ms);

/* The median of the gaps once at least half of CTL_TEL_GAPS are known (so one outage is not
 * taken for the period), within CTL_TEL_PERIOD_MIN_MS..CTL_TEL_PERIOD_MAX_MS; 0 before. */
int ctl_tel_spacing_ms(const ctl_tel_spacing_t *s);

/* The period to judge a device's telemetry by: the stated one when valid (> 0), otherwise
 * the controller's own file's (fallback_ms), or the measured spacing (measured_ms, 0: none)
 * when that is longer: never shorter than the file says for a gateway that states none. */
int ctl_tel_period_ms(int stated_ms, int fallback_ms, int measured_ms);

/* Silent (the device unreachable, its lease not renewed) after five periods without
 * telemetry, never before 3 s. */
int ctl_tel_silence_ms(int period_ms);

/* The step's telemetry counts as stale (ctl_params_t.telemetry_timeout_ms) after five
 * periods, never before 10 s. */
int ctl_tel_stale_ms(int period_ms);

#endif
