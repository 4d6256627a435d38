/*
 * Fuzz harness: the gateway's JSON requests, through the whole request handler of a running
 * gateway (can-gateway/gateway.h), with a simulated BIC-2200 on the far end of its bus.
 *
 * Set-up (once): a pty whose master side a thread of this harness serves as an slcan
 * adapter (sim/slcan_adapter.h) in front of one simulated device (sim/bic_device.h), a gateway
 * configured for that pty with ipc endpoints in a private temporary directory, and a DEALER
 * socket towards its request endpoint. The harness waits until the device is online, so
 * requests get past the bus checks into range checks, leases, writes and read-backs.
 *
 * Each input is first decoded by the request decoder alone (can-gateway/gw_request.h), as
 * a plain and as a read-only client: a decoded request has a known op and an object, a
 * refusal a code and a message; either way the typed fields are consistent.
 *
 * Then it is sent as one request body. The loop turns the gateway and the adapter until
 * the one reply arrives, then checks it: a JSON object with a boolean "ok", and for a
 * refusal an error object with a non-empty code and message. No reply within the deadline,
 * or a second reply, is a failure (docs/ipc-protocol.md: every request gets exactly one).
 * The adapter checks every frame the gateway puts on the bus: no write before the first
 * request, and no setpoint write outside the device's effective limits (as the gateway's
 * info reports them), whatever the requests asked for.
 *
 * The gateway's state (lease, cached registers, EEPROM counters) carries over from one input
 * to the next, as in service; leases are capped at a few seconds so they lapse and the safe
 * state runs now and then.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cJSON.h>
#include <czmq.h>

#include "bic_device.h"
#include "bic_proto.h"
#include "config.h"
#include "gateway.h"
#include "gw_request.h"
#include "log.h"
#include "monotime.h"
#include "slcan_adapter.h"

#define REPLY_DEADLINE_US (30 * 1000000LL)
#define ONLINE_DEADLINE_US (30 * 1000000LL)

static char s_dir[64];
static int s_master = -1, s_slave = -1;
static slcan_adapter_t *s_adapter;
static bic_device_t *s_dev;
static gateway_t *s_gw;
static zsock_t *s_dealer;

#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "fuzz_gw_request: " __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* Effective setpoint limits of device 0 (raw, from the gateway's info reply), set once
 * before the first input. Before that the configured [DEVICE] window below holds: the
 * gateway brings the configured values onto the device at start (ApplyDeviceLimits), and
 * nothing outside the window may reach the bus. Indexed like s_limit_cmds. */
static const uint16_t s_limit_cmds[4] = {BIC_CMD_VOUT_SET, BIC_CMD_IOUT_SET,
                                         BIC_CMD_REVERSE_VOUT_SET, BIC_CMD_REVERSE_IOUT_SET};
static const char *s_limit_names[4] = {"vout_v", "iout_a", "rev_vout_v", "rev_iout_a"};
static int32_t s_limit_min[4], s_limit_max[4];
static atomic_bool s_limits_ready;

/* Every write that reaches the bus is checked against the limits. */
static void s_check_write(const can_frame_t *fr)
{
    bic_msg_t m;
    if (bic_decode_request(bic_family_bic(), fr, &m) != BIC_OK || !m.write)
        return;
    if (!atomic_load(&s_limits_ready))
        DIE("write of 0x%04X reached the bus before the limits were known", (unsigned)m.code);
    for (int i = 0; i < 4; i++) {
        int32_t raw;
        if (m.code != s_limit_cmds[i] || bic_data_to_raw(m.cmd, m.data, m.len, &raw) != BIC_OK)
            continue;
        if (raw < s_limit_min[i] || raw > s_limit_max[i])
            DIE("%s raw %d reached the bus, outside the limits %d-%d", m.cmd->name, (int)raw,
                (int)s_limit_min[i], (int)s_limit_max[i]);
    }
}

static void s_on_frame(void *arg, const can_frame_t *fr)
{
    s_check_write(fr);
    can_frame_t reply;
    if (bic_device_handle_frame(s_dev, fr, mono_us(), &reply) == 1)
        slcan_adapter_bus_frame(s_adapter, &reply, (uint16_t)(mono_ms() % 60000));
}

/* The adapter's side of the pty, on its own thread: the gateway opens its transport with a
 * blocking handshake, so the far end must answer while the gateway's thread waits. Only
 * this thread touches the adapter and the device. */
static void *s_adapter_thread(void *arg)
{
    uint8_t buf[4096];
    for (;;) {
        struct pollfd pfd = {.fd = s_master, .events = POLLIN};
        size_t len = 0;
        (void)slcan_adapter_output(s_adapter, &len);
        if (len > 0)
            pfd.events |= POLLOUT;
        if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
            DIE("poll on the pty: %s", strerror(errno));
        ssize_t n;
        while ((n = read(s_master, buf, sizeof buf)) > 0)
            slcan_adapter_feed(s_adapter, buf, (size_t)n, (uint16_t)(mono_ms() % 60000), s_on_frame,
                               NULL);
        const uint8_t *out = slcan_adapter_output(s_adapter, &len);
        if (len > 0) {
            ssize_t w = write(s_master, out, len);
            if (w > 0)
                slcan_adapter_consume(s_adapter, (size_t)w);
        }
    }
    return NULL;
}

static void s_pump(int wait_ms)
{
    if (gateway_poll(s_gw, wait_ms) < 0)
        DIE("gateway_poll failed");
}

static void s_send(const void *body, size_t len)
{
    zmsg_t *m = zmsg_new();
    zmsg_addmem(m, NULL, 0);
    zmsg_addmem(m, body, len);
    if (zmsg_send(&m, s_dealer) != 0)
        DIE("cannot send a request");
}

/* Waits for the reply to the request just sent; returns its parsed body (caller frees). */
static cJSON *s_reply(const void *req, size_t reqlen)
{
    int64_t deadline = mono_us() + REPLY_DEADLINE_US;
    while (mono_us() < deadline) {
        s_pump(1);
        zmsg_t *m = zmsg_recv_nowait(s_dealer);
        if (!m)
            continue;
        if (zmsg_size(m) != 2 || zframe_size(zmsg_first(m)) != 0)
            DIE("reply has %zu frames, expected an empty delimiter and a body", zmsg_size(m));
        zframe_t *body = zmsg_last(m);
        cJSON *r = cJSON_ParseWithLength((const char *)zframe_data(body), zframe_size(body));
        if (!r || !cJSON_IsObject(r))
            DIE("reply is not a JSON object: %.*s", (int)zframe_size(body),
                (const char *)zframe_data(body));
        zmsg_destroy(&m);
        return r;
    }
    DIE("no reply within %lld s to a request of %zu bytes: %.*s",
        (long long)(REPLY_DEADLINE_US / 1000000), reqlen, (int)(reqlen < 300 ? reqlen : 300),
        (const char *)req);
}

static void s_check_reply(const cJSON *r)
{
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
    if (!cJSON_IsBool(ok))
        DIE("reply without a boolean 'ok'");
    if (cJSON_IsTrue(ok))
        return;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (!cJSON_IsString(code) || !code->valuestring[0] || !cJSON_IsString(msg) ||
        !msg->valuestring[0])
        DIE("error reply without a code and a message");
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void s_cleanup(void)
{
    if (s_dir[0])
        nftw(s_dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* Before czmq's own exit handler, which reports sockets still open. */
static void s_close(void)
{
    zsock_destroy(&s_dealer);
    gateway_destroy(&s_gw);
}

static bool s_online(void)
{
    static const char req[] = "{\"v\":1,\"op\":\"devices\"}";
    s_send(req, sizeof req - 1);
    cJSON *r = s_reply(req, sizeof req - 1);
    bool online = false;
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(r, "devices");
    const cJSON *d;
    cJSON_ArrayForEach(d, devs)
    {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "online")))
            online = true;
    }
    cJSON_Delete(r);
    return online;
}

static void s_read_limits(void)
{
    static const char req[] = "{\"v\":1,\"op\":\"info\",\"dev\":0}";
    s_send(req, sizeof req - 1);
    cJSON *r = s_reply(req, sizeof req - 1);
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(r, "devices");
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(devs, 0), "limits");
    for (int i = 0; i < 4; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(lim, s_limit_names[i]);
        const cJSON *lo = cJSON_GetArrayItem(a, 0), *hi = cJSON_GetArrayItem(a, 1);
        if (!cJSON_IsNumber(lo) || !cJSON_IsNumber(hi))
            DIE("info has no limits.%s", s_limit_names[i]);
        s_limit_min[i] = (int32_t)lround(lo->valuedouble * 100);
        s_limit_max[i] = (int32_t)lround(hi->valuedouble * 100);
    }
    cJSON_Delete(r);
    atomic_store(&s_limits_ready, true);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init("fuzz_gw_request");
    log_set_level(getenv("BIC_FUZZ_VERBOSE") ? BIC_LOG_DEBUG : BIC_LOG_ERROR);
    snprintf(s_dir, sizeof s_dir, "/tmp/bic-fuzz-gw-XXXXXX");
    if (!mkdtemp(s_dir))
        DIE("mkdtemp: %s", strerror(errno));
    atexit(s_cleanup);

    char pts[64];
    s_master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (s_master < 0 || grantpt(s_master) != 0 || unlockpt(s_master) != 0 ||
        ptsname_r(s_master, pts, sizeof pts) != 0)
        DIE("cannot create a pty: %s", strerror(errno));
    struct termios t;
    if (tcgetattr(s_master, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(s_master, TCSANOW, &t);
    }
    /* keep the slave side open so the master never sees a hang-up between reopens */
    s_slave = open(pts, O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (s_slave < 0)
        DIE("cannot open %s: %s", pts, strerror(errno));

    bic_device_config_t dcfg;
    battery_config_t bcfg;
    char err[512];
    if (bic_device_parse_spec("0:24:battery,canctrl,boot_ms=0", &dcfg, &bcfg, err, sizeof err) != 0)
        DIE("device spec: %s", err);
    s_dev = bic_device_new(&dcfg, &bcfg, mono_us());
    s_adapter = slcan_adapter_new();
    if (!s_dev || !s_adapter)
        DIE("out of memory");
    pthread_t th;
    if (pthread_create(&th, NULL, s_adapter_thread, NULL) != 0)
        DIE("cannot start the adapter thread");
    pthread_detach(th);

    char ini[600], state[128];
    snprintf(ini, sizeof ini, "%s/gateway.ini", s_dir);
    snprintf(state, sizeof state, "%s/state", s_dir);
    if (mkdir(state, 0700) != 0)
        DIE("mkdir %s: %s", state, strerror(errno));
    FILE *f = fopen(ini, "w");
    if (!f)
        DIE("cannot write %s", ini);
    fprintf(f,
            "[GATEWAY]\n"
            "Can = slcan:%s\n"
            "ReqEndpoint = ipc://%s/req.sock\n"
            "PubEndpoint = ipc://%s/pub.sock\n"
            "StateDir = %s\n"
            "TelemetryPeriodMs = 60000\n"
            "ResponseTimeoutMs = 20\n"
            "Retries = 1\n"
            "LeaseMaxTtlSec = 3\n"
            "SafeState = min\n"
            "[DEVICE]\n"
            "Id/0/Type = BIC2200-24CAN\n"
            "Id/0/ChargeVoltage = 2760\n"
            "Id/0/DischargeVoltage = 2400\n"
            "Id/0/MaxChargeCurrent = 3000\n"
            "Id/0/MaxDischargeCurrent = 2500\n",
            pts, s_dir, s_dir, state);
    fclose(f);
    /* the window of the ini above (24.00-27.60 V both ways, at most 30 A / 25 A) */
    static const int32_t win_min[4] = {2400, 0, 2400, 0}, win_max[4] = {2760, 3000, 2760, 2500};
    for (int i = 0; i < 4; i++) {
        s_limit_min[i] = win_min[i];
        s_limit_max[i] = win_max[i];
    }
    atomic_store(&s_limits_ready, true);
    config_t *cfg = config_load(ini, err, sizeof err);
    if (!cfg)
        DIE("config: %s", err);
    s_gw = gateway_new(cfg, err, sizeof err);
    config_destroy(&cfg);
    if (!s_gw)
        DIE("gateway: %s", err);
    char ep[128];
    snprintf(ep, sizeof ep, ">ipc://%s/req.sock", s_dir);
    s_dealer = zsock_new_dealer(ep);
    if (!s_dealer)
        DIE("cannot connect %s", ep + 1);
    zsock_set_linger(s_dealer, 0);
    atexit(s_close);

    int64_t deadline = mono_us() + ONLINE_DEADLINE_US;
    while (!s_online()) {
        if (mono_us() > deadline)
            DIE("the simulated device did not come online");
        for (int i = 0; i < 50; i++)
            s_pump(2);
    }
    s_read_limits();
    return 0;
}

/* The decoder alone: one typed outcome, consistent in itself. */
static void s_check_decode(const uint8_t *data, size_t size, bool read_only)
{
    gw_request_t rq;
    gwr_error_t err;
    int rc = gw_request_decode((const char *)data, size, 1, read_only, &rq, &err);
    if (rc == 0) {
        if (rq.op >= GWR_OP_COUNT || !cJSON_IsObject(rq.json))
            DIE("decoded request without a known op or an object");
        if (read_only && !gw_request_op_read_only(rq.op))
            DIE("a read-only client's %s was decoded", gw_request_op_name(rq.op));
        if (rq.dev < GWR_DEV_INVALID || rq.dev > GWR_DEV_LAST)
            DIE("dev %d decoded", rq.dev);
        if ((rq.client_state == GWR_CLIENT_OK) != (rq.client != NULL))
            DIE("client state and name disagree");
        /* the op's own fields, typed */
        if (rq.op == GWR_GET && (rq.get.n < 1 || rq.get.n > GWR_GET_MAX))
            DIE("get decoded with %d registers", rq.get.n);
        for (int i = 0; rq.op == GWR_GET && i < rq.get.n; i++)
            if (!rq.get.name[i] || strlen(rq.get.name[i]) > GWR_REG_NAME_MAX)
                DIE("get decoded with a register name that is none");
        if (rq.op == GWR_SET && !rq.set.reg)
            DIE("set decoded without a register");
        if (rq.op == GWR_SET && !rq.set.is_raw && !isfinite(rq.set.value))
            DIE("set decoded with a value that is no finite number");
        if (rq.op == GWR_SETPOINT &&
            (rq.setpoint.mode == GWR_MODE_CHARGE || rq.setpoint.mode == GWR_MODE_DISCHARGE) &&
            !(rq.setpoint.amount >= 0 && isfinite(rq.setpoint.amount)))
            DIE("setpoint decoded with the magnitude %g", rq.setpoint.amount);
    } else if (rc != -1 || !err.code[0] || !err.message[0]) {
        DIE("decode returned %d with code '%s' message '%s'", rc, err.code, err.message);
    }
    gw_request_free(&rq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_check_decode(data, size, false);
    s_check_decode(data, size, true);
    /* a reply left over from the previous input would be a second answer */
    s_pump(0);
    zmsg_t *stray = zmsg_recv_nowait(s_dealer);
    if (stray)
        DIE("a request got a second reply");
    s_send(data, size);
    cJSON *r = s_reply(data, size);
    s_check_reply(r);
    cJSON_Delete(r);
    return 0;
}
