/*  monotime: CLOCK_MONOTONIC and CLOCK_REALTIME in ms/us. */
#include "monotime.h"

#include <time.h>

static int64_t s_clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mono_ms(void)
{
    return s_clock_us(CLOCK_MONOTONIC) / 1000;
}

int64_t mono_us(void)
{
    return s_clock_us(CLOCK_MONOTONIC);
}

int64_t wall_ms(void)
{
    return s_clock_us(CLOCK_REALTIME) / 1000;
}
