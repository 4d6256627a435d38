/* sim_opts.h - bic-sim's command line: the options of a run (devices, transport, control
 * socket, household replay, MQTT meter, bus faults, log level), parsed and checked, each
 * refusal naming the option and what is allowed. Options: docs/simulator.md. */
#ifndef BIC_SIM_OPTS_H
#define BIC_SIM_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "sim_bus.h"

typedef struct {
    const char *pty_path;
    const char *socketcan;
    const char *specs[SIM_BUS_MAX_DEVICES];
    size_t nspecs;
    char control[512];
    const char *household;
    double speed;
    double start_s;
    bool start_given;
    const char *mqtt;
    char mqtt_host[256];
    int mqtt_port;
    const char *meter_topic;
    long meter_period_ms;
    bool meter_json;
    bool transients;
    uint64_t transients_seed;
    sim_bus_options_t bus;
    log_level_t level;
} sim_opts_t;

/* Parses the command line into *o. Returns 0, 1 for --help/--version (exit 0), 2 on error
 * (message printed). */
int sim_opts_parse(int argc, char **argv, sim_opts_t *o);

#endif
