/*  numconv: the one checked conversion of a number that came from outside (a JSON field, an
    MQTT payload, an ini value, a command-line value, a state file) to an integer type.

    Casting a double to an integer type is undefined behaviour in C when the value does not
    fit (1.7e26 to long, NaN, an infinity), so every such conversion goes through here: the
    value must be finite and its integer image within [MIN, MAX], otherwise -1 and OUT is
    left alone. MIN and MAX are the caller's allowed range; they may be the limits of the
    target type (INT64_MIN/INT64_MAX included).
*/
#ifndef BIC_NUMCONV_H
#define BIC_NUMCONV_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  V must be a whole number (no fraction). Returns 0 or -1. */
int numconv_whole(double v, int64_t min, int64_t max, int64_t *out);

/*  V truncated toward zero, as a C cast would (2.9 -> 2, -2.9 -> -2). Returns 0 or -1. */
int numconv_trunc(double v, int64_t min, int64_t max, int64_t *out);

/*  V rounded to the nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3).
    Returns 0 or -1. */
int numconv_round(double v, int64_t min, int64_t max, int64_t *out);

#ifdef __cplusplus
}
#endif

#endif
