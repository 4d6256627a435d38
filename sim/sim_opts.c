/* sim_opts.c - bic-sim's command line (sim_opts.h). */
#include "sim_opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "can_transport.h"
#include "numconv.h"

static void s_usage(FILE *f)
{
    fprintf(
        f,
        "usage: bic-sim (--slcan-pty PATH | --socketcan IFACE) [--device "
        "ADDR:VARIANT[:OPTIONS]]...\n"
        "               [--control ENDPOINT] [--household CSV [--speed N] [--start-s S]\n"
        "               [--transients SEED]] [--mqtt HOST:PORT [--meter-topic T]\n"
        "               [--meter-period-ms MS] [--meter-json]] [--reply-delay-us US]\n"
        "               [--late-delay-us US] [--late-pct P] [--drop-pct P] [--dup-pct P]\n"
        "               [--pacing-drop] [--seed N] [--log-level LEVEL]\n"
        "       bic-sim twin [twin options]   (the offline twin)\n"
        "Simulated Mean Well BIC-2200 devices on a CAN transport. See docs/simulator.md.\n"
        "  --slcan-pty PATH       create a pty speaking slcan; PATH becomes a symlink to it\n"
        "  --socketcan IFACE      use a SocketCAN interface (needs kernel CAN)\n"
        "  --device SPEC          ADDR:VARIANT[:OPTIONS], repeatable (default 0:24), e.g.\n"
        "                         1:48:fw=old,soc=80,clamp; an NPB charger on the same bus:\n"
        "                         ADDR:npb-POWER-VOLTS[:OPTIONS], e.g. 3:npb-1200-24\n"
        "  --control ENDPOINT     ZeroMQ REP for JSON commands (default "
        "ipc:///tmp/bic-sim-PID.ctl)\n"
        "  --household CSV        replay a t_s,load_w,pv_w day for the meter reading\n"
        "  --speed N              time compression for the devices and the day (0.01..10000, "
        "default 1)\n"
        "  --start-s S            household time at start, on the CSV's t_s axis (default: first "
        "row)\n"
        "  --transients SEED      add kettle/oven/microwave/cloud transients from SEED\n"
        "  --mqtt HOST:PORT       publish the meter reading to this broker\n"
        "  --meter-topic T        topic (default bic-sim/meter)\n"
        "  --meter-period-ms MS   publish period in real time (50..3600000, default 2000)\n"
        "  --meter-json           publish {\"power_w\":...} instead of a plain number\n"
        "  --reply-delay-us US    reply delay (default 1000)\n"
        "  --late-delay-us US     delay of a late reply (default 8000)\n"
        "  --late-pct/--drop-pct/--dup-pct P   share of late/dropped/duplicated replies (0..100)\n"
        "  --pacing-drop          do not deliver requests that break the 20 ms / 5 ms pacing\n"
        "  --seed N               seed for the shares above (default 1)\n"
        "  --log-level LEVEL      debug, info, warn, error (default info)\n");
}

static int s_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int s_bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bic-sim: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run bic-sim --help for the options)\n");
    va_end(ap);
    return 2;
}

static int s_num(const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* A whole number in [LO, HI] from TEXT (numconv: no fraction, nothing out of range). */
static int s_whole(const char *text, double lo, double hi, int64_t *out)
{
    double v;
    return s_num(text, lo, hi, &v) == 0 ? numconv_whole(v, (int64_t)lo, (int64_t)hi, out) : -1;
}

int sim_opts_parse(int argc, char **argv, sim_opts_t *o)
{
    enum {
        O_PTY = 1000,
        O_SOCKETCAN,
        O_DEVICE,
        O_CONTROL,
        O_HOUSEHOLD,
        O_SPEED,
        O_START,
        O_MQTT,
        O_TOPIC,
        O_PERIOD,
        O_JSON,
        O_TRANSIENTS,
        O_DELAY,
        O_LATE_DELAY,
        O_LATE,
        O_DROP,
        O_DUP,
        O_PACING,
        O_SEED,
        O_LEVEL,
        O_VERSION,
    };
    static const struct option longopts[] = {
        {"slcan-pty", required_argument, NULL, O_PTY},
        {"socketcan", required_argument, NULL, O_SOCKETCAN},
        {"device", required_argument, NULL, O_DEVICE},
        {"control", required_argument, NULL, O_CONTROL},
        {"household", required_argument, NULL, O_HOUSEHOLD},
        {"speed", required_argument, NULL, O_SPEED},
        {"start-s", required_argument, NULL, O_START},
        {"mqtt", required_argument, NULL, O_MQTT},
        {"meter-topic", required_argument, NULL, O_TOPIC},
        {"meter-period-ms", required_argument, NULL, O_PERIOD},
        {"meter-json", no_argument, NULL, O_JSON},
        {"transients", required_argument, NULL, O_TRANSIENTS},
        {"reply-delay-us", required_argument, NULL, O_DELAY},
        {"late-delay-us", required_argument, NULL, O_LATE_DELAY},
        {"late-pct", required_argument, NULL, O_LATE},
        {"drop-pct", required_argument, NULL, O_DROP},
        {"dup-pct", required_argument, NULL, O_DUP},
        {"pacing-drop", no_argument, NULL, O_PACING},
        {"seed", required_argument, NULL, O_SEED},
        {"log-level", required_argument, NULL, O_LEVEL},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->speed = 1;
    o->meter_period_ms = 2000;
    o->meter_topic = NULL;
    o->level = BIC_LOG_INFO;
    sim_bus_options_defaults(&o->bus);
    snprintf(o->control, sizeof o->control, "ipc:///tmp/bic-sim-%ld.ctl", (long)getpid());
    bool period_given = false;
    opterr = 0;
    int c;
    int64_t n;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            s_usage(stdout);
            return 1;
        case O_VERSION:
            printf("bic-sim %s\n", BIC_VERSION);
            return 1;
        case O_PTY:
            o->pty_path = optarg;
            break;
        case O_SOCKETCAN:
            o->socketcan = optarg;
            break;
        case O_DEVICE:
            if (o->nspecs >= SIM_BUS_MAX_DEVICES)
                return s_bad("more than %d devices", SIM_BUS_MAX_DEVICES);
            o->specs[o->nspecs++] = optarg;
            break;
        case O_CONTROL:
            if (strlen(optarg) >= sizeof o->control ||
                (strncmp(optarg, "ipc://", 6) != 0 && strncmp(optarg, "tcp://", 6) != 0 &&
                 strncmp(optarg, "inproc://", 9) != 0))
                return s_bad("--control '%s' (allowed: an ipc://, tcp:// or inproc:// endpoint, at "
                             "most 511 characters)",
                             optarg);
            snprintf(o->control, sizeof o->control, "%s", optarg);
            break;
        case O_HOUSEHOLD:
            o->household = optarg;
            break;
        case O_SPEED:
            if (s_num(optarg, 0.01, 10000, &o->speed) != 0)
                return s_bad("--speed '%s' (allowed: a number from 0.01 to 10000)", optarg);
            break;
        case O_START:
            if (s_num(optarg, 0, 1e9, &o->start_s) != 0)
                return s_bad("--start-s '%s' (allowed: seconds, 0 or more)", optarg);
            o->start_given = true;
            break;
        case O_MQTT:
            o->mqtt = optarg;
            break;
        case O_TOPIC:
            if (!*optarg || strlen(optarg) > 256 || strpbrk(optarg, "#+"))
                return s_bad("--meter-topic '%s' (allowed: 1..256 characters, no wildcards)",
                             optarg);
            o->meter_topic = optarg;
            break;
        case O_PERIOD:
            if (s_whole(optarg, 50, 3600000, &n) != 0)
                return s_bad("--meter-period-ms '%s' (allowed: whole ms from 50 to 3600000)",
                             optarg);
            o->meter_period_ms = (long)n;
            period_given = true;
            break;
        case O_JSON:
            o->meter_json = true;
            break;
        case O_TRANSIENTS:
            if (s_whole(optarg, 0, 1e15, &n) != 0)
                return s_bad("--transients '%s' (allowed: a whole number seed, 0 or more)", optarg);
            o->transients = true;
            o->transients_seed = (uint64_t)n;
            break;
        case O_DELAY:
        case O_LATE_DELAY:
            if (s_whole(optarg, 0, 1000000, &n) != 0)
                return s_bad("%s (allowed: whole microseconds 0..1000000, got '%s')",
                             c == O_DELAY ? "--reply-delay-us" : "--late-delay-us", optarg);
            if (c == O_DELAY)
                o->bus.reply_delay_us = n;
            else
                o->bus.late_delay_us = n;
            break;
        case O_LATE:
        case O_DROP:
        case O_DUP:
            if (s_whole(optarg, 0, 100, &n) != 0)
                return s_bad("%s (allowed: a whole percentage 0..100, got '%s')",
                             c == O_LATE   ? "--late-pct"
                             : c == O_DROP ? "--drop-pct"
                                           : "--dup-pct",
                             optarg);
            if (c == O_LATE)
                o->bus.late_pct = (int)n;
            else if (c == O_DROP)
                o->bus.drop_pct = (int)n;
            else
                o->bus.dup_pct = (int)n;
            break;
        case O_PACING:
            o->bus.pacing_drop = true;
            break;
        case O_SEED:
            if (s_whole(optarg, 0, 1e15, &n) != 0)
                return s_bad("--seed '%s' (allowed: a whole number, 0 or more)", optarg);
            o->bus.seed = (uint64_t)n;
            break;
        case O_LEVEL:
            if (log_level_parse(optarg, &o->level) != 0)
                return s_bad("--log-level '%s' (allowed: debug, info, warn, error)", optarg);
            break;
        case ':':
            return s_bad("option %s needs a value", argv[optind - 1]);
        default:
            return s_bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return s_bad("unexpected argument '%s'", argv[optind]);
    if (!o->pty_path == !o->socketcan)
        return s_bad("give exactly one transport: --slcan-pty PATH or --socketcan IFACE");
    if (o->pty_path && (!*o->pty_path || strlen(o->pty_path) > 400))
        return s_bad("--slcan-pty '%s' (allowed: a file path of 1..400 characters)", o->pty_path);
    if (o->socketcan && !can_socketcan_iface_valid(o->socketcan))
        return s_bad("--socketcan '%s' (allowed: an interface name of 1..15 characters of "
                     "A-Z a-z 0-9 _ . -)",
                     o->socketcan);
    if (o->transients && !o->household)
        return s_bad("--transients needs --household");
    if (!o->mqtt && (o->meter_topic || period_given || o->meter_json))
        return s_bad("--meter-topic, --meter-period-ms and --meter-json need --mqtt");
    if (o->mqtt) {
        const char *colon = strrchr(o->mqtt, ':');
        int64_t port;
        size_t hl = colon ? (size_t)(colon - o->mqtt) : 0;
        if (!colon || hl == 0 || hl >= sizeof o->mqtt_host ||
            s_whole(colon + 1, 1, 65535, &port) != 0)
            return s_bad("--mqtt '%s' (allowed: HOST:PORT with PORT 1..65535, e.g. 127.0.0.1:1883)",
                         o->mqtt);
        memcpy(o->mqtt_host, o->mqtt, hl);
        o->mqtt_host[hl] = '\0';
        o->mqtt_port = (int)port;
        if (!o->meter_topic)
            o->meter_topic = "bic-sim/meter";
    }
    return 0;
}
