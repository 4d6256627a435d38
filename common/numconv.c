/*  numconv: checked conversions of outside numbers to integers (see numconv.h). */
#include "numconv.h"

#include <math.h>

/*  -2^63 and 2^63 are exact doubles; every whole double in [-2^63, 2^63) converts to
    int64_t with defined behaviour. (double)INT64_MAX rounds up to 2^63, so the upper bound
    is checked against 2^63 itself, not against the cast of INT64_MAX. */
#define S_TWO63 9223372036854775808.0

static int s_fit(double whole, int64_t min, int64_t max, int64_t *out)
{
    if (!(whole >= -S_TWO63 && whole < S_TWO63)) /* also false for NaN */
        return -1;
    int64_t i = (int64_t)whole;
    if (i < min || i > max)
        return -1;
    *out = i;
    return 0;
}

int numconv_whole(double v, int64_t min, int64_t max, int64_t *out)
{
    if (!isfinite(v) || v != trunc(v))
        return -1;
    return s_fit(v, min, max, out);
}

int numconv_trunc(double v, int64_t min, int64_t max, int64_t *out)
{
    if (!isfinite(v))
        return -1;
    return s_fit(trunc(v), min, max, out);
}

int numconv_round(double v, int64_t min, int64_t max, int64_t *out)
{
    if (!isfinite(v))
        return -1;
    return s_fit(round(v), min, max, out);
}
