/*
 * bicctl - the command line for BIC-2200 converters behind bic-can-gateway.
 *
 * Every command of the seed's cbic2200.py with its semantics and plain output, plus info,
 * devices, status, eeprom and watch. bicctl never touches CAN: it sends the requests of
 * docs/ipc-protocol.md to the gateway (bicctl_cmd.c knows which) and prints the replies.
 * can_up/can_down are the exception that configure the kernel's SocketCAN interface.
 * Exit codes (docs/bicctl.md): 0 ok, 1 usage or bad value, 2 gateway not answering,
 * 3 device error, 4 refused.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>

#include "bicctl_cmd.h"
#include "can_transport.h"
#include "config.h"
#include "gw_client.h"
#include "monotime.h"
#include "sigflag.h"

#define DEFAULT_REQ_ENDPOINT "ipc:///run/bic2mqtt/gateway.sock"
#define DEFAULT_PUB_ENDPOINT "ipc:///run/bic2mqtt/telemetry.sock"
#define DEFAULT_TIMEOUT_MS 3000       /* per try; one retry */
#define DEFAULT_SLOW_TIMEOUT_MS 15000 /* init_mode: several verified writes */
#define WATCH_SILENCE_MS 10000        /* watch gives up after this long without a message */
#define MAX_REPLIES 72                /* status: info + one get per device (64) */

typedef struct {
    const char *config_path; /* -c */
    const char *endpoint;    /* --endpoint */
    const char *pub;         /* --pub */
    int timeout_ms;          /* --timeout, 0 = default */
    long count;              /* --count, 0 = unlimited */
    bicctl_args_t args;
} opts_t;

static void s_usage(FILE *out)
{
    fputs("usage: bicctl [-c CONFIG | --endpoint EP] [--dev N] [--json | --table]\n"
          "              [--timeout MS] [--client NAME [--token HEX]] [--pub EP] [--count N] "
          "COMMAND [VALUE]\n"
          "\n"
          "Talks to bic-can-gateway (never to CAN directly). VALUE is V x 100 or A x 100 as\n"
          "an integer, as in cbic2200.py: cvset 2566 sets 25.66 V.\n"
          "\n"
          "options:\n"
          "  -c, --config PATH   ini file with [GATEWAY] ReqEndpoint/PubEndpoint\n"
          "                      (default " CONFIG_DEFAULT_PATH " when it exists)\n"
          "  -e, --endpoint EP   gateway request endpoint (default " DEFAULT_REQ_ENDPOINT ")\n"
          "      --pub EP        gateway telemetry endpoint for watch\n"
          "                      (default " DEFAULT_PUB_ENDPOINT ")\n"
          "  -d, --dev N         device: 0-63 a BIC's CAN address, 64-67 the NPB at address 0-3\n"
          "                      (may be left out with one device)\n"
          "  -j, --json          structured output (one JSON object per line)\n"
          "      --table         faultread: one line per fault (name, 0/1, text) instead of\n"
          "                      cbic2200.py's lines\n"
          "  -t, --timeout MS    wait per try for a reply, 1-600000 (default 3000, init_mode\n"
          "                      15000; one retry); watch: longest silence (default 10000)\n"
          "      --client NAME   client name sent to the gateway (default bicctl); with\n"
          "                      --token, the lease holder's name acts as that holder\n"
          "      --token HEX     the lease token the holder's take replied with (32 hex\n"
          "                      digits); without it the holder's name is refused\n"
          "  -n, --count N       watch: stop after N lines\n"
          "  -h, --help          this text\n"
          "  -V, --version       print the version\n"
          "\n"
          "commands:\n",
          out);
    bicctl_cmd_list(out);
    fputs("\n"
          "exit codes: 0 ok (a write: written), 1 usage error or bad value, 2 gateway not\n"
          "            answering, 3 device error (offline, timeout, verify failed, not\n"
          "            supported), 4 refused (outside the device's range, controlled by another\n"
          "            client, daily EEPROM budget spent), 5 a write found the value already\n"
          "            there (unchanged), 6 a write deferred by the EEPROM spacing\n",
          out);
}

static void s_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bicctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Parse a whole decimal integer within [lo, hi]. */
static int s_parse_long(const char *text, long lo, long hi, long *out)
{
    errno = 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static bool s_client_name_ok(const char *s)
{
    size_t len = strlen(s);
    if (len < 1 || len > 32)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* Parse argv into OPTS and the command. Returns the command, or NULL after printing the
 * reason (*EXIT_CODE is set: 0 for --help/--version, 1 for usage errors). */
static const bicctl_cmd_t *s_parse(int argc, char **argv, opts_t *o, int *exit_code)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"endpoint", required_argument, NULL, 'e'},
                                             {"pub", required_argument, NULL, 'P'},
                                             {"dev", required_argument, NULL, 'd'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"table", no_argument, NULL, 'T'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"client", required_argument, NULL, 'C'},
                                             {"count", required_argument, NULL, 'n'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {"token", required_argument, NULL, 'K'},
                                             {NULL, 0, NULL, 0}};
    char err[512];
    long v;
    int c;
    *exit_code = BICCTL_EXIT_USAGE;
    opterr = 0;
    /* Options may follow the command (bicctl watch --count 5). No value of bicctl is
     * negative, and getopt would take "-2566" for options: say what is wrong instead. */
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '9') {
            s_fail("'%s': negative values are not allowed (VALUE is V x 100 or A x 100 as a "
                   "positive integer, e.g. 2566 = 25.66 V)",
                   argv[i]);
            return NULL;
        }
    }
    while ((c = getopt_long(argc, argv, ":c:e:d:jt:n:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case 'e':
            o->endpoint = optarg;
            break;
        case 'P':
            o->pub = optarg;
            break;
        case 'd':
            if (s_parse_long(optarg, 0, 67, &v) != 0) {
                s_fail("--dev '%s' is not a device number; allowed: 0-63 (a BIC's CAN address) "
                       "or 64-67 (the NPB at CAN address 0-3)",
                       optarg);
                return NULL;
            }
            o->args.dev = (int)v;
            break;
        case 'j':
            o->args.json = true;
            break;
        case 'T':
            o->args.table = true;
            break;
        case 't':
            if (s_parse_long(optarg, 1, 600000, &v) != 0) {
                s_fail("--timeout '%s' is not a time in ms; allowed: 1-600000", optarg);
                return NULL;
            }
            o->timeout_ms = (int)v;
            break;
        case 'C':
            if (!s_client_name_ok(optarg)) {
                s_fail("--client '%s' is not a client name; allowed: 1-32 characters of "
                       "[A-Za-z0-9_.-]",
                       optarg);
                return NULL;
            }
            o->args.client = optarg;
            break;
        case 'K':
            if (!gw_token_valid(optarg)) {
                s_fail("--token '%.40s' is not a lease token; allowed: the 32 lowercase hex "
                       "digits the lease take replied with",
                       optarg);
                return NULL;
            }
            o->args.token = optarg;
            break;
        case 'n':
            if (s_parse_long(optarg, 1, LONG_MAX, &v) != 0) {
                s_fail("--count '%s' is not a count; allowed: 1 or more", optarg);
                return NULL;
            }
            o->count = v;
            break;
        case 'h':
            s_usage(stdout);
            *exit_code = BICCTL_EXIT_OK;
            return NULL;
        case 'V':
            printf("bicctl %s\n", BIC_VERSION);
            *exit_code = BICCTL_EXIT_OK;
            return NULL;
        case ':': /* the option without its value is the last argument */
            s_fail("option %s needs a value (bicctl --help lists the options)", argv[optind - 1]);
            return NULL;
        default:
            if (optopt)
                s_fail("unknown option '-%c' (bicctl --help lists the options)", optopt);
            else
                s_fail("unknown option '%s' (bicctl --help lists the options)", argv[optind - 1]);
            return NULL;
        }
    }
    if (optind >= argc) {
        s_fail("no command given (bicctl --help lists the commands)");
        return NULL;
    }
    const char *name = argv[optind];
    const bicctl_cmd_t *cmd = bicctl_cmd_find(name);
    if (!cmd) {
        s_fail("unknown command '%s' (bicctl --help lists the commands)", name);
        return NULL;
    }
    if (argc - optind > 2) {
        s_fail("%s: too many arguments, starting at '%s'", name, argv[optind + 2]);
        return NULL;
    }
    if (bicctl_cmd_check_value(cmd, argc - optind == 2 ? argv[optind + 1] : NULL, &o->args, err,
                               sizeof err) != 0) {
        s_fail("%s", err);
        return NULL;
    }
    return cmd;
}

/* For an ipc:// endpoint: is there a socket file? A missing one means no gateway, and
 * saying so at once beats waiting for the timeout. tcp:// can only be found out by trying. */
static bool s_ipc_missing(const char *endpoint, const char **path)
{
    if (strncmp(endpoint, "ipc://", 6) != 0)
        return false;
    *path = endpoint + 6;
    struct stat st;
    return stat(*path, &st) != 0;
}

static int s_run_gateway(const bicctl_cmd_t *cmd, const opts_t *o, const config_t *cfg,
                         const char *endpoint)
{
    char err[1024];
    const char *path = NULL;
    int rc = BICCTL_EXIT_GATEWAY;
    gw_client_t *client = NULL;
    cJSON *replies[MAX_REPLIES] = {0};
    size_t n = 0;

    if (s_ipc_missing(endpoint, &path)) {
        s_fail("gateway not running: no socket at %s (start bic-can-gateway, or give its "
               "endpoint with --endpoint or -c)",
               path);
        return BICCTL_EXIT_GATEWAY;
    }
    int timeout = o->timeout_ms          ? o->timeout_ms
                  : bicctl_cmd_slow(cmd) ? DEFAULT_SLOW_TIMEOUT_MS
                                         : DEFAULT_TIMEOUT_MS;
    client = gw_client_new(endpoint, timeout, 1);
    if (!client) {
        s_fail("cannot open a socket for endpoint '%s' (allowed: ipc://PATH, tcp://HOST:PORT)",
               endpoint);
        goto cleanup;
    }
    if (cfg) {
        const char *server_key = config_str(cfg, "GATEWAY", "CurveServerPublicKey");
        const char *client_cert = config_str(cfg, "GATEWAY", "CurveClientKeyFile");
        if (server_key && *server_key &&
            gw_client_set_curve(client, server_key, client_cert, err, sizeof err) != 0) {
            s_fail("CURVE keys from %s: %s", config_path(cfg), err);
            rc = BICCTL_EXIT_USAGE;
            goto cleanup;
        }
    }
    for (;;) {
        cJSON *req = bicctl_next_request(cmd, &o->args, replies, n);
        if (!req)
            break;
        if (n >= MAX_REPLIES) {
            cJSON_Delete(req);
            break;
        }
        cJSON *reply = gw_client_call(client, req, err, sizeof err);
        cJSON_Delete(req);
        if (!reply) {
            s_fail("gateway not answering at %s: %s", endpoint, err);
            rc = BICCTL_EXIT_GATEWAY;
            goto cleanup;
        }
        replies[n++] = reply;
        rc = bicctl_reply_check(cmd, &o->args, reply, err, sizeof err);
        if (rc != BICCTL_EXIT_OK && !bicctl_reply_tolerated(cmd, n)) {
            s_fail("%s", err);
            goto cleanup;
        }
    }
    rc = bicctl_render(cmd, &o->args, replies, n, stdout, err, sizeof err);
    fflush(stdout);
    if (rc != BICCTL_EXIT_OK) {
        s_fail("%s", err);
    } else if (n > 0) {
        /* no write is silent: what happened goes to stderr, and the exit code says it */
        char line[400];
        int wrc = bicctl_write_outcome(cmd, replies[n - 1], line, sizeof line);
        if (wrc >= 0) {
            if (!o->args.json)
                fprintf(stderr, "%s\n", line);
            rc = wrc;
        }
    }

cleanup:
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(replies[i]);
    gw_client_destroy(&client);
    return rc;
}

static int s_run_watch(const opts_t *o, const config_t *cfg, const char *pub)
{
    static const char *const prefixes[] = {"tel/", "evt/", "gw", NULL};
    char err[512], topic[128];
    const char *path = NULL;
    int rc = BICCTL_EXIT_GATEWAY;
    zsock_t *sub = NULL;
    long printed = 0;

    if (s_ipc_missing(pub, &path)) {
        s_fail("gateway not running: no telemetry socket at %s (start bic-can-gateway, or give "
               "its endpoint with --pub or -c)",
               path);
        return BICCTL_EXIT_GATEWAY;
    }
    int silence_ms = o->timeout_ms;
    if (!silence_ms) {
        silence_ms = WATCH_SILENCE_MS;
        if (cfg && 3 * config_int(cfg, "GATEWAY", "TelemetryPeriodMs") > silence_ms)
            silence_ms = (int)(3 * config_int(cfg, "GATEWAY", "TelemetryPeriodMs"));
    }
    if (cfg && !o->pub && *config_str(cfg, "GATEWAY", "CurveServerPublicKey"))
        sub = gw_client_sub_from_config(cfg, prefixes, err, sizeof err);
    else
        sub = gw_client_sub_new(pub, prefixes);
    if (!sub) {
        s_fail("cannot subscribe to '%s' (allowed: ipc://PATH, tcp://HOST:PORT)", pub);
        goto cleanup;
    }
    int64_t deadline = mono_ms() + silence_ms;
    while (!sigflag_stop()) {
        int64_t now = mono_ms();
        if (now >= deadline) {
            s_fail("no telemetry from %s for %d ms (is bic-can-gateway running?)", pub, silence_ms);
            rc = BICCTL_EXIT_GATEWAY;
            goto cleanup;
        }
        zmq_pollitem_t item = {zsock_resolve(sub), 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, (long)(deadline - now));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s_fail("poll on %s failed: %s", pub, zmq_strerror(errno));
            goto cleanup;
        }
        if (n == 0 || !(item.revents & ZMQ_POLLIN))
            continue;
        cJSON *msg = gw_client_sub_recv(sub, topic, sizeof topic);
        if (!msg)
            continue; /* not topic|JSON: not ours to print */
        deadline = mono_ms() + silence_ms;
        printed += bicctl_render_pub(topic, msg, o->args.dev, o->args.json, stdout);
        cJSON_Delete(msg);
        fflush(stdout);
        if (o->count && printed >= o->count)
            break;
    }
    rc = BICCTL_EXIT_OK; /* Ctrl-C or --count reached */

cleanup:
    zsock_destroy(&sub);
    return rc;
}

static int s_run_can(const bicctl_cmd_t *cmd, const opts_t *o, const config_t *cfg)
{
    char err[512];
    can_transport_spec_t spec;
    const char *iface = o->args.arg;
    bool up = bicctl_cmd_run(cmd) == BICCTL_RUN_CAN_UP;
    if (!iface && cfg) {
        const char *spec_text = config_str(cfg, "GATEWAY", "Can");
        if (can_transport_parse_spec(spec_text, &spec, err, sizeof err) != 0) {
            s_fail("%s: [GATEWAY] Can: %s", config_path(cfg), err);
            return BICCTL_EXIT_USAGE;
        }
        if (strcmp(spec.kind, "socketcan") != 0) {
            /* slcan adapters are driven from user space by the gateway: no kernel interface */
            printf("nothing to do: %s uses [GATEWAY] Can=%s, which the gateway opens itself; "
                   "there is no SocketCAN interface to bring %s\n",
                   config_path(cfg), spec_text, up ? "up" : "down");
            return BICCTL_EXIT_OK;
        }
        iface = spec.path;
    }
    if (!iface)
        iface = "can0";
    if (up) {
        printf("can up:%s bit-rate:%d\n", iface, 250000);
        fflush(stdout);
    }
    int r = up ? can_socketcan_link_up(iface, 250000, err, sizeof err)
               : can_socketcan_link_down(iface, err, sizeof err);
    if (r != 0) {
        s_fail("%s %s: %s", bicctl_cmd_name(cmd), iface, err);
        return BICCTL_EXIT_DEVICE;
    }
    return BICCTL_EXIT_OK;
}

int main(int argc, char **argv)
{
    opts_t o = {.args = {.dev = -1, .client = "bicctl"}};
    config_t *cfg = NULL;
    char err[4096];
    int rc = BICCTL_EXIT_USAGE;

    const bicctl_cmd_t *cmd = s_parse(argc, argv, &o, &rc);
    if (!cmd)
        return rc;

    /* The config names the endpoints; without -c the default file is used when present. */
    const char *cfg_path = o.config_path;
    if (!cfg_path && !o.endpoint && access(CONFIG_DEFAULT_PATH, R_OK) == 0)
        cfg_path = CONFIG_DEFAULT_PATH;
    if (cfg_path) {
        cfg = config_load(cfg_path, err, sizeof err);
        if (!cfg) {
            /* the loader's message may span lines: keep the one-line contract */
            for (char *p = err; *p; p++)
                if (*p == '\n')
                    *p = (p[1] ? ';' : '\0');
            s_fail("config %s: %s", cfg_path, err);
            return BICCTL_EXIT_USAGE;
        }
    }
    const char *endpoint = o.endpoint ? o.endpoint
                           : cfg      ? config_str(cfg, "GATEWAY", "ReqEndpoint")
                                      : DEFAULT_REQ_ENDPOINT;
    const char *pub = o.pub ? o.pub
                      : cfg ? config_str(cfg, "GATEWAY", "PubEndpoint")
                            : DEFAULT_PUB_ENDPOINT;

    switch (bicctl_cmd_run(cmd)) {
    case BICCTL_RUN_GATEWAY:
        zsys_handler_set(NULL); /* Ctrl-C ends a waiting bicctl at once */
        rc = s_run_gateway(cmd, &o, cfg, endpoint);
        break;
    case BICCTL_RUN_WATCH:
        sigflag_install();
        rc = s_run_watch(&o, cfg, pub);
        break;
    case BICCTL_RUN_CAN_UP:
    case BICCTL_RUN_CAN_DOWN:
        rc = s_run_can(cmd, &o, cfg);
        break;
    }
    config_destroy(&cfg);
    return rc;
}
