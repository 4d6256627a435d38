/* ctl_tel_period: when a device's telemetry counts as silent (ctl_tel_period.h). */
#include "ctl_tel_period.h"

#include <stdio.h>

#include "numconv.h"

#define SILENT_PERIODS 5
#define SILENCE_MIN_MS 3000
#define STALE_MIN_MS 10000

int ctl_tel_period_stated(const cJSON *msg, char *err, size_t errlen)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(msg, "period_ms");
    if (!p)
        return 0;
    int64_t ms;
    if (cJSON_IsNumber(p) &&
        numconv_whole(p->valuedouble, CTL_TEL_PERIOD_MIN_MS, CTL_TEL_PERIOD_MAX_MS, &ms) == 0)
        return (int)ms;
    if (cJSON_IsNumber(p))
        snprintf(err, errlen, "period_ms %g is not a whole number of %d-%d ms", p->valuedouble,
                 CTL_TEL_PERIOD_MIN_MS, CTL_TEL_PERIOD_MAX_MS);
    else
        snprintf(err, errlen, "period_ms is not a number; allowed: a whole number of %d-%d ms",
                 CTL_TEL_PERIOD_MIN_MS, CTL_TEL_PERIOD_MAX_MS);
    return -1;
}

int ctl_tel_period_ms(int stated_ms, int fallback_ms)
{
    return stated_ms > 0 ? stated_ms : fallback_ms;
}

int ctl_tel_silence_ms(int period_ms)
{
    return period_ms * SILENT_PERIODS > SILENCE_MIN_MS ? period_ms * SILENT_PERIODS
                                                       : SILENCE_MIN_MS;
}

int ctl_tel_stale_ms(int period_ms)
{
    return period_ms * SILENT_PERIODS > STALE_MIN_MS ? period_ms * SILENT_PERIODS : STALE_MIN_MS;
}
