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

void ctl_tel_spacing_add(ctl_tel_spacing_t *s, int64_t now_ms)
{
    if (s->last_ms > 0 && now_ms > s->last_ms) {
        int64_t gap = now_ms - s->last_ms;
        s->gap_ms[s->next] =
            gap > CTL_TEL_PERIOD_MAX_MS * 10 ? CTL_TEL_PERIOD_MAX_MS * 10 : (int)gap;
        s->next = (s->next + 1) % CTL_TEL_GAPS;
        if (s->n < CTL_TEL_GAPS)
            s->n++;
    }
    s->last_ms = now_ms;
}

int ctl_tel_spacing_ms(const ctl_tel_spacing_t *s)
{
    if (s->n < CTL_TEL_GAPS / 2)
        return 0;
    int v[CTL_TEL_GAPS];
    for (int i = 0; i < s->n; i++) { /* insertion sort of at most 8 */
        int x = s->gap_ms[i], k = i;
        for (; k > 0 && v[k - 1] > x; k--)
            v[k] = v[k - 1];
        v[k] = x;
    }
    int m = v[s->n / 2];
    return m < CTL_TEL_PERIOD_MIN_MS   ? CTL_TEL_PERIOD_MIN_MS
           : m > CTL_TEL_PERIOD_MAX_MS ? CTL_TEL_PERIOD_MAX_MS
                                       : m;
}

int ctl_tel_period_ms(int stated_ms, int fallback_ms, int measured_ms)
{
    if (stated_ms > 0)
        return stated_ms;
    return measured_ms > fallback_ms ? measured_ms : fallback_ms;
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
