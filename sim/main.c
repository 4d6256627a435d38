/* bic-sim - simulated Mean Well BIC-2200 devices on a CAN transport.
 *
 * Plays one or more devices (sim/bic_device.h) behind an slcan adapter on a pty, or on a
 * SocketCAN interface, with a JSON control socket (ZeroMQ REP) for tests and people, and
 * optionally replays a household day and publishes the smart meter's reading on MQTT.
 * `bic-sim twin ...` runs the offline twin (twin.h, twin_cli.c).
 * Options, control commands and model defaults: docs/simulator.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <mosquitto.h>
#include <zmq.h>

#include "bic_device.h"
#include "npb_device.h"
#include "can_transport.h"
#include "household.h"
#include "log.h"
#include "monotime.h"
#include "numconv.h"
#include "sigflag.h"
#include "sim_bus.h"
#include "sim_control.h"
#include "sim_opts.h"
#include "slcan_adapter.h"

#include "twin.h"

#define S_STEP_US 50000         /* physics step while idle, real time */
#define S_MQTT_MISC_US 1000000  /* mosquitto_loop_misc period */
#define S_MQTT_RETRY_US 1000000 /* reconnect back-off */
#define S_CAN_RETRY_US 1000000  /* SocketCAN reopen back-off */

typedef struct {
    sim_opts_t o;
    sim_bus_t *bus;
    household_t *household;
    /* slcan pty */
    int pty_master;
    int pty_keep; /* our own slave fd: the master never sees EIO between hosts */
    char pty_name[128];
    bool symlink_made;
    slcan_adapter_t *adapter;
    /* SocketCAN */
    can_transport_t *can;
    int64_t can_retry_us;
    /* control */
    void *zctx;
    void *zrep;
    /* MQTT */
    struct mosquitto *mosq;
    bool mqtt_connected;
    bool mqtt_started;
    int64_t mqtt_retry_us;
    int64_t mqtt_misc_us;
    int64_t meter_due_us;
    uint64_t meter_published;
    /* clocks */
    int64_t t0_us;  /* real time at start */
    int64_t now_us; /* real time of the current pass */
    int64_t dev_us; /* simulated time of the current pass */
    /* how requests are read, for the pacing judgement (sim_bus.h) */
    sim_rx_t rx;           /* the read being delivered */
    uint64_t rx_chunks;    /* reads that delivered data */
    int64_t rx_empty_us;   /* the input was last seen empty then */
    int schedstat_fd;      /* /proc/thread-self/schedstat, -1 when missing */
    int64_t poll_enter_us; /* the last poll: entered, */
    int64_t poll_exit_us;  /* returned, */
    int64_t poll_delay_us; /* and the run-queue wait before it returned */
} s_sim_t;

/* ---------------------------------------------------------------------------------------
   Clocks
   --------------------------------------------------------------------------------------- */

static void s_tick(s_sim_t *s)
{
    s->now_us = mono_us();
    s->dev_us = s->t0_us + (int64_t)((double)(s->now_us - s->t0_us) * s->o.speed);
}

/* Time this thread spent runnable but not running (µs), from the kernel's schedstat; -1 when
 * not available. Its growth across a poll shows how late the loop was woken. */
static int64_t s_run_delay_us(s_sim_t *s)
{
    if (s->schedstat_fd < 0)
        return -1;
    char buf[128];
    ssize_t n = pread(s->schedstat_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    unsigned long long run_ns = 0, wait_ns = 0;
    if (sscanf(buf, "%llu %llu", &run_ns, &wait_ns) != 2)
        return -1;
    return (int64_t)(wait_ns / 1000);
}

/* How late a read right now may be after its data arrived. Data that came while the loop
 * slept arrived after the poll was entered and was read after the kernel woke the loop: the
 * run-queue wait is the lateness. Data already there when the poll was entered (it returned
 * at once) may have waited since the input was last seen empty. */
static int64_t s_read_lag_us(const s_sim_t *s, int64_t t_us)
{
    bool slept = s->poll_exit_us - s->poll_enter_us >= 200;
    if (!slept && s->rx_empty_us != INT64_MIN)
        return t_us - s->rx_empty_us;
    int64_t lag = (t_us - s->poll_exit_us) + (s->poll_delay_us > 0 ? s->poll_delay_us : 0);
    return lag > 0 ? lag : 0;
}

static double s_sim_elapsed_s(const s_sim_t *s)
{
    return (double)(s->dev_us - s->t0_us) / 1e6;
}

static double s_household_t(const s_sim_t *s)
{
    if (!s->household)
        return 0;
    /* The day repeats: time on the CSV's axis, wrapped into [first t_s, first t_s + span). */
    double t0 = household_start_s(s->household);
    double start = s->o.start_given ? s->o.start_s : t0;
    double span = household_span_s(s->household);
    double rel = start - t0 + s_sim_elapsed_s(s);
    if (span > 0)
        rel = fmod(rel, span);
    if (rel < 0)
        rel += span;
    return t0 + rel;
}

/* ---------------------------------------------------------------------------------------
   slcan pty
   --------------------------------------------------------------------------------------- */

static int s_pty_open(s_sim_t *s)
{
    s->pty_master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (s->pty_master < 0) {
        log_error("cannot create a pty: %s", strerror(errno));
        return -1;
    }
    if (grantpt(s->pty_master) != 0 || unlockpt(s->pty_master) != 0 ||
        ptsname_r(s->pty_master, s->pty_name, sizeof s->pty_name) != 0) {
        log_error("cannot set up the pty: %s", strerror(errno));
        return -1;
    }
    struct termios t;
    if (tcgetattr(s->pty_master, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(s->pty_master, TCSANOW, &t);
    }
    s->pty_keep = open(s->pty_name, O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (s->pty_keep < 0) {
        log_error("cannot open %s: %s", s->pty_name, strerror(errno));
        return -1;
    }
    if (tcgetattr(s->pty_keep, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(s->pty_keep, TCSANOW, &t);
    }
    struct stat st;
    if (lstat(s->o.pty_path, &st) == 0) {
        if (!S_ISLNK(st.st_mode)) {
            log_error("--slcan-pty %s exists and is not a symlink; refusing to replace it",
                      s->o.pty_path);
            return 2;
        }
        if (unlink(s->o.pty_path) != 0) {
            log_error("--slcan-pty: cannot remove the old symlink %s: %s", s->o.pty_path,
                      strerror(errno));
            return 2;
        }
    }
    if (symlink(s->pty_name, s->o.pty_path) != 0) {
        log_error("--slcan-pty: cannot create the symlink %s -> %s: %s", s->o.pty_path, s->pty_name,
                  strerror(errno));
        return 2;
    }
    s->symlink_made = true;
    s->adapter = slcan_adapter_new();
    if (!s->adapter) {
        log_error("out of memory");
        return -1;
    }
    log_info("slcan adapter on %s (symlink %s)", s->pty_name, s->o.pty_path);
    return 0;
}

static uint16_t s_ts_ms(const s_sim_t *s)
{
    return (uint16_t)(((s->now_us - s->t0_us) / 1000) % 60000);
}

static void s_log_frame(const char *dir, const can_frame_t *fr)
{
    if (!log_enabled(BIC_LOG_DEBUG))
        return;
    char hex[17] = "";
    for (int i = 0; i < fr->dlc && i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02X", fr->data[i]);
    log_debug("%s %0*X#%s%s", dir, fr->ext ? 8 : 3, fr->id, fr->rtr ? "R" : "", hex);
}

/* A frame from the controller: onto the bus; pacing violations are logged. */
static void s_request(s_sim_t *s, const can_frame_t *fr)
{
    sim_bus_counters_t before, after;
    sim_bus_counters(s->bus, &before);
    s_log_frame("rx", fr);
    sim_bus_request_rx(s->bus, fr, &s->rx, s->dev_us);
    sim_bus_counters(s->bus, &after);
    if (after.pacing_violations != before.pacing_violations)
        log_debug("pacing violation: request %s (%" PRIu64 " so far)",
                  after.pacing_period != before.pacing_period
                      ? "less than 20 ms after the previous request"
                      : "less than 5 ms after the previous reply",
                  after.pacing_violations);
    else if (after.pacing_suspect != before.pacing_suspect)
        log_debug("pacing suspect: request looked too close, read %lld us late at most "
                  "(%" PRIu64 " so far)",
                  (long long)s->rx.lag_us, after.pacing_suspect);
}

static void s_on_host_frame(void *arg, const can_frame_t *fr)
{
    s_request(arg, fr);
}

static void s_pty_read(s_sim_t *s)
{
    uint8_t buf[4096];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read(s->pty_master, buf, sizeof buf);
        /* the frames' time is taken here, before anything else can delay it */
        int64_t t = mono_us();
        if (n > 0) {
            s->rx = (sim_rx_t){.t_us = t,
                               .empty_us = s->rx_empty_us,
                               .chunk = ++s->rx_chunks,
                               .lag_us = s_read_lag_us(s, t)};
            slcan_adapter_feed(s->adapter, buf, (size_t)n, s_ts_ms(s), s_on_host_frame, s);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            s->rx_empty_us = t;
        else if (n < 0 && errno != EINTR)
            log_warn("pty read: %s", strerror(errno));
        return;
    }
}

static void s_pty_write(s_sim_t *s)
{
    size_t len;
    const uint8_t *out = slcan_adapter_output(s->adapter, &len);
    if (len == 0)
        return;
    ssize_t n = write(s->pty_master, out, len);
    if (n > 0)
        slcan_adapter_consume(s->adapter, (size_t)n);
}

/* ---------------------------------------------------------------------------------------
   SocketCAN
   --------------------------------------------------------------------------------------- */

static int s_can_open(s_sim_t *s, bool first)
{
    char spec[64], err[256];
    snprintf(spec, sizeof spec, "socketcan:%s", s->o.socketcan);
    static const can_filter_spec_t none[1] = {{0, 0}};
    can_transport_opts_t opts = {.filters = none, .nfilters = 0};
    s->can = can_transport_open_opts(spec, &opts, err, sizeof err);
    if (!s->can) {
        if (first)
            fprintf(stderr, "bic-sim: %s\n", err);
        else
            log_warn("%s", err);
        return -1;
    }
    log_info("on SocketCAN interface %s", s->o.socketcan);
    return 0;
}

/* ---------------------------------------------------------------------------------------
   MQTT meter
   --------------------------------------------------------------------------------------- */

static void s_on_connect(struct mosquitto *m, void *arg, int rc)
{
    s_sim_t *s = arg;
    (void)m;
    s->mqtt_connected = rc == 0;
    if (rc == 0)
        log_info("MQTT connected to %s:%d", s->o.mqtt_host, s->o.mqtt_port);
    else
        log_warn("MQTT connection refused: %s", mosquitto_connack_string(rc));
}

static void s_on_disconnect(struct mosquitto *m, void *arg, int rc)
{
    s_sim_t *s = arg;
    (void)m;
    if (s->mqtt_connected)
        log_warn("MQTT disconnected (%d)", rc);
    s->mqtt_connected = false;
    s->mqtt_retry_us = s->now_us + S_MQTT_RETRY_US;
}

static void s_mqtt_try(s_sim_t *s)
{
    int rc = s->mqtt_started ? mosquitto_reconnect_async(s->mosq)
                             : mosquitto_connect_async(s->mosq, s->o.mqtt_host, s->o.mqtt_port, 30);
    if (rc == MOSQ_ERR_SUCCESS) {
        s->mqtt_started = true;
        return;
    }
    if (!s->mqtt_started && rc == MOSQ_ERR_INVAL) {
        log_error("MQTT: invalid broker address %s:%d", s->o.mqtt_host, s->o.mqtt_port);
    }
    log_debug("MQTT connect: %s", mosquitto_strerror(rc));
    s->mqtt_retry_us = s->now_us + S_MQTT_RETRY_US;
}

static double s_meter_w(s_sim_t *s, double *load, double *pv, double *bat)
{
    *load = *pv = *bat = 0;
    if (s->household)
        household_at(s->household, s_household_t(s), load, pv);
    *bat = sim_bus_ac_w(s->bus);
    return household_meter_w(*load, *pv, *bat);
}

static void s_meter_publish(s_sim_t *s)
{
    double load, pv, bat;
    double w = s_meter_w(s, &load, &pv, &bat);
    char payload[256];
    if (s->o.meter_json)
        snprintf(payload, sizeof payload,
                 "{\"power_w\":%.1f,\"load_w\":%.1f,\"pv_w\":%.1f,\"battery_w\":%.1f,\"t_s\":%.1f}",
                 w, load, pv, bat, s_household_t(s));
    else
        snprintf(payload, sizeof payload, "%.1f", w);
    if (!s->mqtt_connected)
        return;
    int rc =
        mosquitto_publish(s->mosq, NULL, s->o.meter_topic, (int)strlen(payload), payload, 0, false);
    if (rc == MOSQ_ERR_SUCCESS)
        s->meter_published++;
    else
        log_debug("MQTT publish: %s", mosquitto_strerror(rc));
}

/* ---------------------------------------------------------------------------------------
   Control
   --------------------------------------------------------------------------------------- */

static void s_control(s_sim_t *s)
{
    for (int rounds = 0; rounds < 16; rounds++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        int n = zmq_msg_recv(&msg, s->zrep, ZMQ_DONTWAIT);
        if (n < 0) {
            zmq_msg_close(&msg);
            return;
        }
        /* Multipart requests are drained; only the first part is read. */
        while (zmq_msg_more(&msg)) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            zmq_msg_recv(&extra, s->zrep, 0);
            zmq_msg_close(&extra);
        }
        sim_control_env_t env = {
            .adapter = s->adapter,
            .household = s->household,
            .household_t_s = s_household_t(s),
            .speed = s->o.speed,
            .sim_time_s = s_sim_elapsed_s(s),
            .meter_published = s->meter_published,
            .transport = s->o.pty_path ? s->o.pty_path : s->o.socketcan,
        };
        char *reply = sim_control_handle(s->bus, &env, zmq_msg_data(&msg), zmq_msg_size(&msg),
                                         s->now_us, s->dev_us);
        zmq_msg_close(&msg);
        const char *fallback =
            "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        const char *out = reply ? reply : fallback;
        zmq_send(s->zrep, out, strlen(out), 0);
        free(reply);
    }
}

/* ---------------------------------------------------------------------------------------
   Main
   --------------------------------------------------------------------------------------- */

/* An NPB charger from its --device specification (docs/simulator.md). */
static int s_add_npb(s_sim_t *s, const char *spec)
{
    npb_device_config_t cfg;
    battery_config_t bcfg;
    char err[512];
    if (npb_device_parse_spec(spec, &cfg, &bcfg, err, sizeof err) != 0) {
        fprintf(stderr, "bic-sim: %s\n", err);
        return -1;
    }
    if (sim_bus_find_npb(s->bus, cfg.addr)) {
        fprintf(stderr, "bic-sim: --device %s: NPB address %u is used twice\n", spec, cfg.addr);
        return -1;
    }
    npb_device_t *dev = npb_device_new(&cfg, &bcfg, s->dev_us);
    if (!dev || sim_bus_add_npb(s->bus, &dev) != 0) {
        fprintf(stderr, "bic-sim: --device %s: cannot create the device\n", spec);
        return -1;
    }
    log_info("NPB %u: %s, firmware %s, battery %.0f%% SOC", cfg.addr, cfg.model->name,
             cfg.fw == NPB_FW_OLD ? "old" : "new", bcfg.soc_pct);
    return 0;
}

static int s_setup(s_sim_t *s)
{
    s->pty_master = -1;
    s->pty_keep = -1;
    s->rx_empty_us = INT64_MIN;
    s->schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    s_tick(s);
    s->t0_us = s->now_us;
    s->dev_us = s->now_us;

    s->bus = sim_bus_new(&s->o.bus);
    if (!s->bus) {
        log_error("bad bus options");
        return 2;
    }
    const char *def_spec = "0:24";
    size_t nspecs = s->o.nspecs ? s->o.nspecs : 1;
    for (size_t i = 0; i < nspecs; i++) {
        const char *spec = s->o.nspecs ? s->o.specs[i] : def_spec;
        if (npb_device_spec_is_npb(spec)) {
            if (s_add_npb(s, spec) != 0)
                return 2;
            continue;
        }
        bic_device_config_t cfg;
        battery_config_t bcfg;
        char err[512];
        if (bic_device_parse_spec(spec, &cfg, &bcfg, err, sizeof err) != 0) {
            fprintf(stderr, "bic-sim: %s\n", err);
            return 2;
        }
        if (sim_bus_find(s->bus, cfg.addr)) {
            fprintf(stderr, "bic-sim: --device %s: address %u is used twice\n", spec, cfg.addr);
            return 2;
        }
        bic_device_t *dev = bic_device_new(&cfg, &bcfg, s->dev_us);
        if (!dev || sim_bus_add(s->bus, &dev) != 0) {
            fprintf(stderr, "bic-sim: --device %s: cannot create the device\n", spec);
            return 2;
        }
        log_info("device %u: BIC-2200-%d, firmware %s, battery %.0f%% SOC", cfg.addr, cfg.variant,
                 cfg.fw == BIC_FW_OLD ? "old" : "new", bcfg.soc_pct);
    }
    if (s->o.household) {
        char err[512];
        s->household = household_load(s->o.household, err, sizeof err);
        if (!s->household) {
            fprintf(stderr, "bic-sim: --household %s\n", err);
            return 2;
        }
        if (s->o.transients)
            log_info("%d transient events from seed %" PRIu64,
                     household_add_transients(s->household, s->o.transients_seed),
                     s->o.transients_seed);
    }
    if (s->o.socketcan) {
        if (s_can_open(s, true) != 0)
            return 2;
    } else {
        int rc = s_pty_open(s);
        if (rc != 0)
            return rc < 0 ? 1 : rc; /* 2: the path is unusable, 1: no pty */
    }

    s->zctx = zmq_ctx_new();
    s->zrep = s->zctx ? zmq_socket(s->zctx, ZMQ_REP) : NULL;
    int linger = 0;
    if (!s->zrep) {
        log_error("cannot create the control socket: %s", zmq_strerror(zmq_errno()));
        return 1;
    }
    zmq_setsockopt(s->zrep, ZMQ_LINGER, &linger, sizeof linger);
    int64_t maxmsg = SIM_CONTROL_REQUEST_MAX + 1;
    zmq_setsockopt(s->zrep, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind(s->zrep, s->o.control) != 0) {
        fprintf(stderr, "bic-sim: --control %s: cannot bind: %s\n", s->o.control,
                zmq_strerror(zmq_errno()));
        return 2;
    }
    log_info("control on %s", s->o.control);

    if (s->o.mqtt) {
        mosquitto_lib_init();
        char id[64];
        snprintf(id, sizeof id, "bic-sim-%ld", (long)getpid());
        s->mosq = mosquitto_new(id, true, s);
        if (!s->mosq) {
            log_error("cannot create the MQTT client");
            return 1;
        }
        mosquitto_connect_callback_set(s->mosq, s_on_connect);
        mosquitto_disconnect_callback_set(s->mosq, s_on_disconnect);
        s->mqtt_retry_us = s->now_us;
        s->mqtt_misc_us = s->now_us + S_MQTT_MISC_US;
        s->meter_due_us = s->now_us + s->o.meter_period_ms * 1000;
        log_info("meter on %s:%d topic %s every %ld ms", s->o.mqtt_host, s->o.mqtt_port,
                 s->o.meter_topic, s->o.meter_period_ms);
    }
    return 0;
}

static void s_teardown(s_sim_t *s)
{
    if (s->mosq) {
        if (s->mqtt_connected)
            mosquitto_disconnect(s->mosq);
        mosquitto_destroy(s->mosq);
        mosquitto_lib_cleanup();
    }
    if (s->zrep)
        zmq_close(s->zrep);
    if (s->zctx)
        zmq_ctx_term(s->zctx);
    can_transport_close(&s->can);
    if (s->symlink_made)
        unlink(s->o.pty_path);
    if (s->pty_keep >= 0)
        close(s->pty_keep);
    if (s->pty_master >= 0)
        close(s->pty_master);
    if (s->schedstat_fd > 0)
        close(s->schedstat_fd);
    slcan_adapter_destroy(&s->adapter);
    household_destroy(&s->household);
    sim_bus_destroy(&s->bus);
}

static int64_t s_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The SocketCAN interface went down or away: the socket is closed and reopened every
 * S_CAN_RETRY_US until the interface is up again (a socket kept across a down and up keeps
 * its pending error, and reports it again and again). */
static void s_can_lost(s_sim_t *s)
{
    log_warn("SocketCAN interface %s is down: %s", s->o.socketcan,
             can_transport_last_error(s->can));
    can_transport_close(&s->can);
    s->can_retry_us = s->now_us + S_CAN_RETRY_US;
}

static void s_deliver_replies(s_sim_t *s)
{
    can_frame_t fr;
    while (sim_bus_take_reply(s->bus, s->now_us, &fr) == 1) {
        s_log_frame("tx", &fr);
        if (s->adapter) {
            slcan_adapter_bus_frame(s->adapter, &fr, s_ts_ms(s));
        } else if (s->can && can_transport_send(s->can, &fr) != 0) {
            log_debug("SocketCAN send failed: %s", can_transport_last_error(s->can));
            if (can_transport_state(s->can) != CAN_TRANSPORT_UP)
                s_can_lost(s);
        }
    }
}

static void s_can_read(s_sim_t *s)
{
    can_frame_t fr;
    for (int rounds = 0; rounds < 64; rounds++) {
        int rc = can_transport_recv(s->can, &fr);
        int64_t t = mono_us();
        if (rc == 1) {
            s->rx = (sim_rx_t){.t_us = t,
                               .empty_us = s->rx_empty_us,
                               .chunk = ++s->rx_chunks,
                               .lag_us = s_read_lag_us(s, t)};
            s_request(s, &fr);
            continue;
        }
        if (rc == 0)
            s->rx_empty_us = t;
        if (rc < 0)
            s_can_lost(s);
        return;
    }
}

static int s_loop(s_sim_t *s)
{
    int64_t next_step = s->now_us + S_STEP_US;
    while (!sigflag_stop()) {
        s_tick(s);
        int64_t deadline = s_min(next_step, sim_bus_next_due_us(s->bus));
        if (s->mosq) {
            deadline = s_min(deadline, s->meter_due_us);
            deadline = s_min(deadline, s->mqtt_misc_us);
            if (!s->mqtt_connected && mosquitto_socket(s->mosq) < 0)
                deadline = s_min(deadline, s->mqtt_retry_us);
        }
        if (s->o.socketcan && !s->can)
            deadline = s_min(deadline, s->can_retry_us);

        zmq_pollitem_t items[3];
        int n = 0;
        items[n++] = (zmq_pollitem_t){.socket = s->zrep, .events = ZMQ_POLLIN};
        int i_can = -1, i_mq = -1;
        if (s->adapter) {
            size_t pending;
            slcan_adapter_output(s->adapter, &pending);
            i_can = n;
            items[n++] = (zmq_pollitem_t){.fd = s->pty_master,
                                          .events = ZMQ_POLLIN | (pending ? ZMQ_POLLOUT : 0)};
        } else if (s->can && can_transport_fd(s->can) >= 0) {
            i_can = n;
            items[n++] = (zmq_pollitem_t){.fd = can_transport_fd(s->can), .events = ZMQ_POLLIN};
        }
        int mfd = s->mosq ? mosquitto_socket(s->mosq) : -1;
        if (mfd >= 0) {
            i_mq = n;
            items[n++] = (zmq_pollitem_t){
                .fd = mfd,
                .events = ZMQ_POLLIN | (mosquitto_want_write(s->mosq) ? ZMQ_POLLOUT : 0)};
        }
        long timeout_ms = 0;
        if (deadline > s->now_us)
            timeout_ms = (long)((deadline - s->now_us + 999) / 1000);
        if (timeout_ms > 1000)
            timeout_ms = 1000;
        int64_t delay0 = s_run_delay_us(s);
        s->poll_enter_us = mono_us();
        int rc = zmq_poll(items, n, timeout_ms);
        s->poll_exit_us = mono_us();
        int64_t delay1 = s_run_delay_us(s);
        s->poll_delay_us = delay0 >= 0 && delay1 >= delay0 ? delay1 - delay0 : 0;
        if (rc < 0 && zmq_errno() != EINTR) {
            log_error("poll: %s", zmq_strerror(zmq_errno()));
            return 1;
        }
        s_tick(s);

        /* A CAN socket's error (its interface down) is read too: left pending, it would wake
         * every poll at once and the loop would spin until a frame came. */
        short can_ev = i_can >= 0 && rc > 0 ? items[i_can].revents : 0;
        if (s->adapter && (can_ev & ZMQ_POLLIN))
            s_pty_read(s);
        else if (!s->adapter && (can_ev & (ZMQ_POLLIN | ZMQ_POLLERR)))
            s_can_read(s);
        s_deliver_replies(s);
        if (s->adapter)
            s_pty_write(s);
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
            s_control(s);

        if (s->now_us >= next_step) {
            sim_bus_step(s->bus, s->dev_us);
            next_step = s->now_us + S_STEP_US;
        }
        if (s->o.socketcan && !s->can && s->now_us >= s->can_retry_us) {
            if (s_can_open(s, false) != 0)
                s->can_retry_us = s->now_us + S_CAN_RETRY_US;
        }
        if (s->mosq) {
            if (i_mq >= 0 && rc > 0) {
                if (items[i_mq].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                    mosquitto_loop_read(s->mosq, 1);
                if (items[i_mq].revents & ZMQ_POLLOUT)
                    mosquitto_loop_write(s->mosq, 1);
            }
            if (s->now_us >= s->mqtt_misc_us) {
                mosquitto_loop_misc(s->mosq);
                s->mqtt_misc_us = s->now_us + S_MQTT_MISC_US;
            }
            if (!s->mqtt_connected && s->now_us >= s->mqtt_retry_us &&
                mosquitto_socket(s->mosq) < 0)
                s_mqtt_try(s);
            if (s->now_us >= s->meter_due_us) {
                sim_bus_step(s->bus, s->dev_us);
                s_meter_publish(s);
                s->meter_due_us += s->o.meter_period_ms * 1000;
                if (s->meter_due_us <= s->now_us)
                    s->meter_due_us = s->now_us + s->o.meter_period_ms * 1000;
                if (mosquitto_want_write(s->mosq))
                    mosquitto_loop_write(s->mosq, 1);
            }
        }
    }
    log_info("stopping on signal %d", sigflag_stop_signal());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "twin") == 0) {
        return twin_main(argc - 1, argv + 1);
    }
    log_init("bic-sim");
    s_sim_t s;
    memset(&s, 0, sizeof s);
    int rc = sim_opts_parse(argc, argv, &s.o);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return rc;
    log_set_level(s.o.level);
    if (sigflag_install() != 0) {
        fprintf(stderr, "bic-sim: cannot install signal handlers: %s\n", strerror(errno));
        return 1;
    }
    rc = s_setup(&s);
    if (rc == 0)
        rc = s_loop(&s);
    s_teardown(&s);
    return rc;
}
