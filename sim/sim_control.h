/* sim_control.h - the simulator's side channel for tests and people: one JSON request in,
 * one JSON reply out (bic-sim serves it on a ZeroMQ REP socket). Commands: state, counters,
 * fault, power_cycle, ac, remote, battery, set, frames, household (docs/simulator.md).
 * Every request gets exactly one reply: {"ok":true,...} or
 * {"ok":false,"error":{"code":"...","message":"..."}}.
 */
#ifndef BIC_SIM_SIM_CONTROL_H
#define BIC_SIM_SIM_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "household.h"
#include "sim_bus.h"
#include "slcan_adapter.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SIM_CONTROL_REQUEST_MAX 4096 /* bytes */

/* What the program around the bus knows; any pointer may be NULL. */
typedef struct {
    const slcan_adapter_t *adapter; /* slcan adapter statistics */
    const household_t *household;   /* household replay */
    double household_t_s;           /* present household time, s */
    double speed;                   /* time compression factor */
    double sim_time_s;              /* simulated seconds since start */
    uint64_t meter_published;       /* meter messages sent */
    const char *transport;          /* "slcan-pty:/path" or "socketcan:can0" */
} sim_control_env_t;

/* Handles one request. bus_us is the bus clock (real time), dev_us the devices' clock.
 * Returns a malloc'd NUL-terminated JSON reply the caller frees (NULL only when memory
 * is short). */
char *sim_control_handle(sim_bus_t *bus, const sim_control_env_t *env, const char *req, size_t len,
                         int64_t bus_us, int64_t dev_us);

#ifdef __cplusplus
}
#endif

#endif
