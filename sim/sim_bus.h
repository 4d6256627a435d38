/* sim_bus.h - the simulated CAN bus in front of one or more BIC-2200 models and NPB chargers.
 *
 * Delivers each controller frame to every device, schedules their replies after the
 * response delay (with optional fault injection: late, dropped and duplicated replies),
 * judges the pacing against the manual's timing (a request less than 20 ms after the previous
 * request's start, or less than 5 ms after the previous reply) and keeps a log of recent
 * frames. The judgement separates violations the sender certainly committed from gaps that
 * only look short because the reader saw the frames late ("suspect"). Pure: the caller passes
 * now_us and moves the frames between the transport and the bus.
 */
#ifndef BIC_SIM_SIM_BUS_H
#define BIC_SIM_SIM_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bic_device.h"
#include "npb_device.h"
#include "can_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SIM_BUS_MAX_DEVICES 64
#define SIM_BUS_LOG_MAX 512      /* frames kept in the log */
#define SIM_BUS_QUEUE_MAX 128    /* replies waiting for their delay */
#define SIM_BUS_PERIOD_US 20000  /* minimum request period (manual) */
#define SIM_BUS_MARGIN_US 5000   /* minimum gap after a reply (manual) */
#define SIM_BUS_RESPONSE_US 5000 /* maximum response time (manual) */
/* Gaps this much shorter than a rule are still accepted: the jitter of reading a frame from a
 * pty or socket on an idle machine. */
#define SIM_BUS_TOLERANCE_US 1000

typedef struct {
    int64_t reply_delay_us; /* normal reply delay, us (default 1000; manual: at most 5000) */
    int64_t late_delay_us;  /* delay of a late reply, us (default 8000) */
    int late_pct;           /* share of replies sent late, 0..100 (default 0) */
    int drop_pct;           /* share of replies dropped, 0..100 (default 0) */
    int dup_pct;            /* share of replies sent twice, 0..100 (default 0) */
    bool pacing_drop; /* requests violating the pacing are not delivered (default: only counted) */
    uint64_t seed;    /* PRNG seed for the shares above (default 1) */
} sim_bus_options_t;

typedef struct {
    uint64_t requests;   /* frames received from the controller */
    uint64_t replies;    /* replies sent (duplicates included) */
    uint64_t silent;     /* requests that got no reply */
    uint64_t foreign;    /* frames not addressed to any simulated device or not BIC requests */
    uint64_t dropped;    /* replies dropped by injection */
    uint64_t late;       /* replies delayed by injection */
    uint64_t duplicated; /* replies sent twice by injection */
    uint64_t pacing_violations; /* requests certainly breaking either timing rule */
    uint64_t pacing_period;     /* of which < 20 ms after the previous request */
    uint64_t pacing_margin;     /* of which < 5 ms after the previous reply */
    uint64_t pacing_suspect;    /* requests that looked too close, but only because the reader
                                   may have seen them (or sent its reply) late: not counted as
                                   violations */
    uint64_t pacing_injected;   /* requests short of the margin only after a late or
                                   duplicated reply the fault options injected (the sender
                                   cannot foresee it): neither violation nor suspect */
    uint64_t pacing_dropped;    /* requests not delivered because of pacing_drop */
    uint64_t queue_overflow;    /* replies lost because the queue was full */
} sim_bus_counters_t;

typedef enum { SIM_FRAME_RX = 0, SIM_FRAME_TX = 1 } sim_frame_dir_t; /* RX: from the controller */

typedef struct {
    int64_t t_us;
    sim_frame_dir_t dir;
    can_frame_t frame;
} sim_frame_log_t;

typedef struct sim_bus_t sim_bus_t;

void sim_bus_options_defaults(sim_bus_options_t *opts);
/* 0 when valid, else -1 with a message in err (may be NULL). */
int sim_bus_options_validate(const sim_bus_options_t *opts, char *err, size_t errlen);

/* A bus with no devices. opts NULL = defaults. NULL for invalid options. Caller owns it. */
sim_bus_t *sim_bus_new(const sim_bus_options_t *opts);
/* Destroys the bus and its devices; accepts NULL, nulls the pointer. */
void sim_bus_destroy(sim_bus_t **p);

/* Adds a device; the bus takes ownership (also on failure, when *dev is destroyed).
 * Returns 0, or -1 when the address is taken or the bus is full. *dev is set to NULL. */
int sim_bus_add(sim_bus_t *bus, bic_device_t **dev);
size_t sim_bus_count(const sim_bus_t *bus);
bic_device_t *sim_bus_device(sim_bus_t *bus, size_t i);   /* borrowed, NULL beyond count */
bic_device_t *sim_bus_find(sim_bus_t *bus, uint8_t addr); /* borrowed, NULL if none */

/* NPB chargers on the same bus (their own identifiers, addresses 0-3): the bus takes
 * ownership as sim_bus_add does. -1 when the NPB address is taken or the bus is full. */
int sim_bus_add_npb(sim_bus_t *bus, npb_device_t **dev);
size_t sim_bus_npb_count(const sim_bus_t *bus);
npb_device_t *sim_bus_npb(sim_bus_t *bus, size_t i);          /* borrowed, NULL beyond */
npb_device_t *sim_bus_find_npb(sim_bus_t *bus, uint8_t addr); /* borrowed, NULL if none */

/* AC power of every device at the last step, W (+ drawn from the grid): the BICs and the NPB
 * chargers together, as the household meter sees them. */
double sim_bus_ac_w(sim_bus_t *bus);

/* Options at run time (the reply queue keeps its scheduled times). -1 when invalid. */
int sim_bus_set_options(sim_bus_t *bus, const sim_bus_options_t *opts);
void sim_bus_get_options(const sim_bus_t *bus, sim_bus_options_t *out);

/* When and how a request was read, for the pacing judgement. */
typedef struct {
    int64_t t_us;     /* read time: taken right after the read() that delivered the frame */
    int64_t empty_us; /* the input was last seen empty then: the frame arrived after it
                         (INT64_MIN: unknown) */
    uint64_t chunk;   /* number of the read() that delivered it; frames of one read share it
                         (0: every frame stands alone) */
    int64_t lag_us;   /* how late the read may have been after the frame's arrival (time the
                         reader was runnable but not running, or busy elsewhere); 0 = prompt */
} sim_rx_t;

/* A frame from the controller at now_us. Counts pacing, logs the frame, hands it to every
 * device and schedules the replies. Returns the number of replies scheduled. */
int sim_bus_request(sim_bus_t *bus, const can_frame_t *req, int64_t now_us);

/* The same with two clocks: bus_us (real time: pacing, reply delays, the log) and dev_us
 * (the devices' simulated time, which runs faster under time compression). */
int sim_bus_request_at(sim_bus_t *bus, const can_frame_t *req, int64_t bus_us, int64_t dev_us);

/* The same with the read's details (rx->t_us is the bus time). A gap shorter than a rule
 * (less SIM_BUS_TOLERANCE_US) counts as a violation only when the sender certainly made it:
 * - period, previous request in the same read: only if the whole read window (rx->empty_us
 *   to rx->t_us) is shorter than the period, else suspect;
 * - period, separate reads: only if the gap plus the lag of the previous request's read is
 *   still short, else suspect;
 * - margin: the measured gap is an upper bound (the request was sent before it was read), so
 *   a short one is a violation, unless the reply itself left more than the manual's 5 ms
 *   response time after it was due (the reader's own delay: the sender may have given up on
 *   it), then suspect. */
int sim_bus_request_rx(sim_bus_t *bus, const can_frame_t *req, const sim_rx_t *rx, int64_t dev_us);

/* When the next reply is due, or INT64_MAX when none waits. */
int64_t sim_bus_next_due_us(const sim_bus_t *bus);

/* Takes one reply due at or before now_us into *out (1), or 0 when none is due. The reply
 * is logged and its time kept for the pacing check; the caller transmits it. */
int sim_bus_take_reply(sim_bus_t *bus, int64_t now_us, can_frame_t *out);

/* Advances every device to now_us. */
void sim_bus_step(sim_bus_t *bus, int64_t now_us);

void sim_bus_counters(const sim_bus_t *bus, sim_bus_counters_t *out);

/* Recent frames, oldest first: fills up to max entries, returns how many. */
size_t sim_bus_log(const sim_bus_t *bus, sim_frame_log_t *out, size_t max);

#ifdef __cplusplus
}
#endif

#endif
