/*  monotime: the clocks. Deadlines and intervals use the monotonic clock (never jumps);
    wall time is only for timestamps in messages and for hour-of-day schedules.
*/
#ifndef BIC_MONOTIME_H
#define BIC_MONOTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  Monotonic time in milliseconds / microseconds (CLOCK_MONOTONIC, arbitrary origin). */
int64_t mono_ms(void);
int64_t mono_us(void);

/*  Wall-clock time in milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t wall_ms(void);

#ifdef __cplusplus
}
#endif

#endif
