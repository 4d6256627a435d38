/*
 * bench_gateway - figures for bic-can-gateway driving a device (normally bic-sim).
 *
 * Three phases against a running gateway:
 *  1. latency: sequential one-register `get` requests, spaced wider than the bus pacing so
 *     none waits for the 20 ms slot; round trip p50/p99, and the gateway's own overhead =
 *     round trip minus the device's response time (the simulator's reply delay);
 *  2. throughput: several requests kept in flight on a DEALER socket for a while; client
 *     reads per second, and all CAN requests per second seen by the simulator (client reads
 *     plus the gateway's telemetry polling) against the 50 req/s pacing limit of one bus;
 *  3. during both: telemetry age from `tel/<dev>` (the gateway's age_ms.fast, and how late a
 *     message arrives after its ts_ms), RSS and CPU of the gateway process from /proc.
 * The last line is machine-readable key=value pairs. See bench/run-gateway.sh and
 * docs/benchmarks.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include <zmq.h>

#include "monotime.h"

#define PACING_LIMIT_PER_S 50 /* one request per 20 ms per bus (manual) */
#define MAX_SAMPLES 100000

typedef struct {
    const char *endpoint;      /* gateway requests */
    const char *pub;           /* gateway telemetry */
    const char *sim_control;   /* bic-sim control channel, optional */
    int gateway_pid;           /* for RSS and CPU, optional */
    int dev;                   /* device address */
    const char *reg;           /* register read in both phases */
    int latency_n;             /* phase 1 requests */
    int spacing_ms;            /* phase 1 gap between requests */
    int duration_s;            /* phase 2 length */
    int inflight;              /* phase 2 requests kept in flight */
    double device_response_us; /* device response time; <0: ask the simulator */
} opts_t;

typedef struct {
    double *v;
    size_t n, cap;
} samples_t;

static void s_push(samples_t *s, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        if (cap > MAX_SAMPLES)
            return;
        double *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            return;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile P (0-100) of S (sorted in place); NAN when empty. */
static double s_pct(samples_t *s, double p)
{
    if (s->n == 0)
        return NAN;
    qsort(s->v, s->n, sizeof *s->v, s_cmp);
    size_t rank = (size_t)ceil(p / 100.0 * (double)s->n);
    if (rank < 1)
        rank = 1;
    return s->v[rank - 1];
}

/* ------------------------------------------------------------------ /proc */

/* utime+stime of PID in clock ticks, -1 when unreadable. */
static long long s_cpu_ticks(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* fields after ')': state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* A "VmRSS:"-style line of /proc/PID/status in kB, -1 when unreadable. */
static long s_status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0) {
            kb = strtol(line + klen, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* ------------------------------------------------------------------ sockets */

static void *s_ctx;

static void *s_dealer(const char *endpoint)
{
    void *s = zmq_socket(s_ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, endpoint) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* DEALER speaking to a REP/ROUTER: an empty delimiter frame, then the request. */
static int s_send(void *s, const char *json)
{
    if (zmq_send(s, "", 0, ZMQ_SNDMORE) < 0)
        return -1;
    return zmq_send(s, json, strlen(json), 0) < 0 ? -1 : 0;
}

/* Receive one reply (delimiter + body) into a parsed object; NULL on garbage. */
static cJSON *s_recv(void *s)
{
    zmq_msg_t m;
    cJSON *out = NULL;
    int more = 1;
    while (more) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            return out;
        }
        if (zmq_msg_size(&m) > 0 && !out)
            out = cJSON_ParseWithLength(zmq_msg_data(&m), zmq_msg_size(&m));
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return out;
}

/* One request/reply on a fresh REQ socket with a timeout (for the simulator's control). */
static cJSON *s_call(const char *endpoint, const char *json, int timeout_ms)
{
    void *s = zmq_socket(s_ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    cJSON *out = NULL;
    if (zmq_connect(s, endpoint) == 0 && zmq_send(s, json, strlen(json), 0) >= 0) {
        char buf[65536];
        int n = zmq_recv(s, buf, sizeof buf - 1, 0);
        if (n > 0 && n < (int)sizeof buf)
            out = cJSON_ParseWithLength(buf, (size_t)n);
    }
    zmq_close(s);
    return out;
}

/* A number anywhere in a small tree by key (first match, depth first). */
static bool s_find_num(const cJSON *o, const char *key, double *out)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (it->string && strcmp(it->string, key) == 0 && cJSON_IsNumber(it)) {
            *out = it->valuedouble;
            return true;
        }
        if ((cJSON_IsObject(it) || cJSON_IsArray(it)) && s_find_num(it, key, out))
            return true;
    }
    return false;
}

/* The simulator's count of requests received and pacing violations; false without one. */
static bool s_sim_counters(const opts_t *o, double *requests, double *violations)
{
    if (!o->sim_control)
        return false;
    cJSON *r = s_call(o->sim_control, "{\"cmd\":\"counters\"}", 2000);
    bool ok = r && s_find_num(r, "requests", requests);
    if (ok && !s_find_num(r, "pacing_violations", violations))
        *violations = NAN;
    cJSON_Delete(r);
    return ok;
}

/* The simulator's reply delay in us; false when it cannot say. */
static bool s_sim_reply_delay(const opts_t *o, double *us)
{
    if (!o->sim_control)
        return false;
    cJSON *r = s_call(o->sim_control, "{\"cmd\":\"counters\"}", 2000);
    bool ok = r && s_find_num(r, "reply_delay_us", us);
    cJSON_Delete(r);
    if (ok)
        return true;
    r = s_call(o->sim_control, "{\"cmd\":\"set\"}", 2000); /* no change: echoes the options */
    ok = r && s_find_num(r, "reply_delay_us", us);
    cJSON_Delete(r);
    return ok;
}

/* ------------------------------------------------------------------ telemetry */

typedef struct {
    void *sub;
    samples_t age_fast_ms; /* the gateway's own age of the fast set */
    samples_t late_ms;     /* arrival minus ts_ms */
    int64_t last_ms;       /* mono_ms of the last message, 0 before the first */
    double gap_max_ms[2];  /* longest time without telemetry, per phase */
    int msgs[2];           /* messages per phase */
    int phase;             /* 0 latency, 1 throughput */
    int dev;
} tel_t;

/* Account the time since the last message as a gap of the current phase (at its end). */
static void s_tel_gap(tel_t *t, int64_t now_ms)
{
    if (t->last_ms && (double)(now_ms - t->last_ms) > t->gap_max_ms[t->phase])
        t->gap_max_ms[t->phase] = (double)(now_ms - t->last_ms);
}

static void s_tel_drain(tel_t *t)
{
    for (;;) {
        char topic[64];
        int n = zmq_recv(t->sub, topic, sizeof topic - 1, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        topic[n < (int)sizeof topic ? n : (int)sizeof topic - 1] = '\0';
        int more = 0;
        size_t ml = sizeof more;
        zmq_getsockopt(t->sub, ZMQ_RCVMORE, &more, &ml);
        if (!more)
            continue;
        char body[16384];
        int bn = zmq_recv(t->sub, body, sizeof body - 1, 0);
        int64_t now = wall_ms();
        if (bn <= 0 || bn >= (int)sizeof body)
            continue;
        cJSON *m = cJSON_ParseWithLength(body, (size_t)bn);
        double ts, age;
        if (m && cJSON_IsTrue(cJSON_GetObjectItem(m, "online"))) {
            if (s_find_num(cJSON_GetObjectItem(m, "age_ms"), "fast", &age))
                s_push(&t->age_fast_ms, age);
            if (s_find_num(m, "ts_ms", &ts))
                s_push(&t->late_ms, (double)now - ts);
            s_tel_gap(t, mono_ms());
            t->last_ms = mono_ms();
            t->msgs[t->phase]++;
        }
        cJSON_Delete(m);
    }
}

/* ------------------------------------------------------------------ phases */

static char *s_get_json(const opts_t *o, long id)
{
    static char buf[256];
    snprintf(
        buf, sizeof buf,
        "{\"v\":1,\"op\":\"get\",\"id\":%ld,\"dev\":%d,\"regs\":[\"%s\"],\"client\":\"bench\"}", id,
        o->dev, o->reg);
    return buf;
}

/* The last error seen, for the report. */
static char s_last_error[160];

/* Is REPLY an ok get with a value for the register? Remembers the error otherwise. */
static bool s_reply_ok(const cJSON *reply)
{
    const cJSON *vals = cJSON_GetObjectItem(reply, "values");
    const cJSON *slot = vals ? vals->child : NULL;
    if (cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")) && slot &&
        !cJSON_GetObjectItem(slot, "error"))
        return true;
    const cJSON *e = cJSON_GetObjectItem(reply, "error");
    if (!e && slot)
        e = cJSON_GetObjectItem(slot, "error");
    const cJSON *code = cJSON_GetObjectItem(e, "code"), *msg = cJSON_GetObjectItem(e, "message");
    snprintf(s_last_error, sizeof s_last_error, "%s: %s",
             cJSON_IsString(code) ? code->valuestring : "no reply",
             cJSON_IsString(msg) ? msg->valuestring : "unparsable");
    return false;
}

/* Wait on SOCK (NULL: none) and the telemetry SUB until SOCK is readable or DEADLINE_US
 * passes; telemetry is collected meanwhile. */
static bool s_wait(void *sock, tel_t *t, int64_t deadline_us)
{
    for (;;) {
        int64_t now = mono_us();
        if (now >= deadline_us)
            return false;
        zmq_pollitem_t items[2];
        int n = 0, isock = -1;
        if (sock) {
            items[n] = (zmq_pollitem_t){sock, 0, ZMQ_POLLIN, 0};
            isock = n++;
        }
        int itel = n;
        items[n++] = (zmq_pollitem_t){t->sub, 0, ZMQ_POLLIN, 0};
        long timeout_ms = (long)((deadline_us - now + 999) / 1000);
        int rc = zmq_poll(items, n, timeout_ms);
        if (rc < 0 && errno != EINTR)
            return false;
        if (rc <= 0)
            continue;
        if (items[itel].revents & ZMQ_POLLIN)
            s_tel_drain(t);
        if (isock >= 0 && (items[isock].revents & ZMQ_POLLIN))
            return true;
    }
}

/* Wait until the gateway reports the device online (it identifies it after start). */
static int s_wait_online(const opts_t *o, tel_t *t, int timeout_s)
{
    void *s = s_dealer(o->endpoint);
    if (!s)
        return -1;
    int64_t deadline = mono_us() + (int64_t)timeout_s * 1000000;
    int rc = -1;
    while (rc != 0 && mono_us() < deadline) {
        if (s_send(s, "{\"v\":1,\"op\":\"devices\",\"client\":\"bench\"}") != 0)
            break;
        if (!s_wait(s, t, deadline))
            break;
        cJSON *r = s_recv(s), *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(r, "devices"))
        {
            const cJSON *dev = cJSON_GetObjectItem(d, "dev");
            if (cJSON_IsNumber(dev) && dev->valueint == o->dev &&
                cJSON_IsTrue(cJSON_GetObjectItem(d, "online")))
                rc = 0;
        }
        cJSON_Delete(r);
        if (rc != 0)
            s_wait(NULL, t, mono_us() + 200000); /* ask again in 200 ms */
    }
    zmq_close(s);
    return rc;
}

/* The simulator's view of the bus cadence: median gap between request starts and from a
 * reply to the next request, over its recent frame log. False without a simulator. */
static bool s_sim_cadence(const opts_t *o, double *period_ms, double *margin_ms)
{
    if (!o->sim_control)
        return false;
    cJSON *r = s_call(o->sim_control, "{\"cmd\":\"frames\",\"max\":400}", 2000);
    samples_t period = {0}, margin = {0};
    double last_rx = NAN, last_tx = NAN;
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(r, "frames"))
    {
        const cJSON *age = cJSON_GetObjectItem(f, "age_ms"), *dir = cJSON_GetObjectItem(f, "dir");
        if (!cJSON_IsNumber(age) || !cJSON_IsString(dir))
            continue;
        double t = -age->valuedouble; /* oldest first: ages fall */
        if (strcmp(dir->valuestring, "rx") == 0) {
            if (!isnan(last_rx))
                s_push(&period, t - last_rx);
            if (!isnan(last_tx))
                s_push(&margin, t - last_tx);
            last_rx = t;
            last_tx = NAN;
        } else {
            last_tx = t;
        }
    }
    cJSON_Delete(r);
    bool ok = period.n > 10;
    *period_ms = s_pct(&period, 50);
    *margin_ms = s_pct(&margin, 50);
    free(period.v);
    free(margin.v);
    return ok;
}

static int s_latency(const opts_t *o, tel_t *t, samples_t *rtt, int *errors)
{
    void *s = s_dealer(o->endpoint);
    if (!s)
        return -1;
    for (long i = 0; i < o->latency_n; i++) {
        int64_t t0 = mono_us();
        if (s_send(s, s_get_json(o, i)) != 0)
            break;
        if (!s_wait(s, t, t0 + 5 * 1000000LL)) {
            fprintf(stderr, "bench_gateway: no reply within 5 s in the latency phase\n");
            zmq_close(s);
            return -1;
        }
        int64_t t1 = mono_us();
        cJSON *r = s_recv(s);
        if (s_reply_ok(r))
            s_push(rtt, (double)(t1 - t0));
        else
            (*errors)++;
        cJSON_Delete(r);
        /* leave the bus idle past its 20 ms slot so no request waits for pacing */
        s_wait(NULL, t, t1 + (int64_t)o->spacing_ms * 1000);
    }
    zmq_close(s);
    return 0;
}

static int s_throughput(const opts_t *o, tel_t *t, long *done, int *errors, double *secs)
{
    void *s = s_dealer(o->endpoint);
    if (!s)
        return -1;
    long id = 1000000;
    int outstanding = 0;
    for (int i = 0; i < o->inflight; i++, outstanding++)
        s_send(s, s_get_json(o, id++));
    int64_t start = mono_us(), end = start + (int64_t)o->duration_s * 1000000;
    int64_t last_reply = start;
    while (outstanding > 0) {
        int64_t now = mono_us();
        if (now - last_reply > 5 * 1000000LL) {
            fprintf(stderr, "bench_gateway: no reply for 5 s in the throughput phase\n");
            break;
        }
        if (!s_wait(s, t, now + 200000))
            continue;
        cJSON *r = s_recv(s);
        last_reply = mono_us();
        outstanding--;
        if (s_reply_ok(r))
            (*done)++;
        else
            (*errors)++;
        cJSON_Delete(r);
        if (last_reply < end) {
            s_send(s, s_get_json(o, id++));
            outstanding++;
        }
    }
    *secs = (double)(mono_us() - start) / 1e6;
    zmq_close(s);
    return 0;
}

static void s_usage(FILE *out)
{
    fputs("usage: bench_gateway --endpoint EP [--pub EP] [--sim-control EP] [--gateway-pid PID]\n"
          "                     [--dev N] [--reg NAME] [--latency-n N] [--spacing-ms MS]\n"
          "                     [--duration-s S] [--inflight N] [--device-response-us US]\n",
          out);
}

static int s_opt_int(const char *name, const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "bench_gateway: %s '%s' is not an integer in %ld-%ld\n", name, text, lo,
                hi);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o = {.dev = 0,
                .reg = "READ_VOUT",
                .latency_n = 300,
                .spacing_ms = 25,
                .duration_s = 10,
                .inflight = 4,
                .device_response_us = -1};
    static const struct option longopts[] = {{"endpoint", required_argument, NULL, 'e'},
                                             {"pub", required_argument, NULL, 'p'},
                                             {"sim-control", required_argument, NULL, 's'},
                                             {"gateway-pid", required_argument, NULL, 'g'},
                                             {"dev", required_argument, NULL, 'd'},
                                             {"reg", required_argument, NULL, 'r'},
                                             {"latency-n", required_argument, NULL, 'n'},
                                             {"spacing-ms", required_argument, NULL, 'S'},
                                             {"duration-s", required_argument, NULL, 'D'},
                                             {"inflight", required_argument, NULL, 'i'},
                                             {"device-response-us", required_argument, NULL, 'R'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            o.endpoint = optarg;
            break;
        case 'p':
            o.pub = optarg;
            break;
        case 's':
            o.sim_control = optarg;
            break;
        case 'r':
            o.reg = optarg;
            break;
        case 'g':
            if (s_opt_int("--gateway-pid", optarg, 1, 1 << 22, &v))
                return 2;
            o.gateway_pid = (int)v;
            break;
        case 'd':
            if (s_opt_int("--dev", optarg, 0, 63, &v))
                return 2;
            o.dev = (int)v;
            break;
        case 'n':
            if (s_opt_int("--latency-n", optarg, 1, MAX_SAMPLES, &v))
                return 2;
            o.latency_n = (int)v;
            break;
        case 'S':
            if (s_opt_int("--spacing-ms", optarg, 0, 10000, &v))
                return 2;
            o.spacing_ms = (int)v;
            break;
        case 'D':
            if (s_opt_int("--duration-s", optarg, 1, 3600, &v))
                return 2;
            o.duration_s = (int)v;
            break;
        case 'i':
            if (s_opt_int("--inflight", optarg, 1, 64, &v))
                return 2;
            o.inflight = (int)v;
            break;
        case 'R':
            if (s_opt_int("--device-response-us", optarg, 0, 1000000, &v))
                return 2;
            o.device_response_us = (double)v;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (!o.endpoint || optind != argc) {
        s_usage(stderr);
        return 2;
    }

    s_ctx = zmq_ctx_new();
    tel_t tel = {.dev = o.dev};
    tel.sub = zmq_socket(s_ctx, ZMQ_SUB);
    char topic[16];
    snprintf(topic, sizeof topic, "tel/%d", o.dev);
    zmq_setsockopt(tel.sub, ZMQ_SUBSCRIBE, topic, strlen(topic));
    if (o.pub)
        zmq_connect(tel.sub, o.pub);

    if (o.device_response_us < 0 && !s_sim_reply_delay(&o, &o.device_response_us)) {
        o.device_response_us = 1000; /* bic-sim's default reply delay */
        printf("device response time: simulator did not say, assuming %.0f us\n",
               o.device_response_us);
    }
    double req0 = 0, req1 = 0, viol0 = NAN, viol1 = NAN;
    bool have_sim = s_sim_counters(&o, &req0, &viol0);
    long long cpu0 = o.gateway_pid ? s_cpu_ticks(o.gateway_pid) : -1;
    int64_t wall0 = mono_us();

    if (s_wait_online(&o, &tel, 20) != 0) {
        fprintf(stderr, "bench_gateway: device %d not online at %s within 20 s\n", o.dev,
                o.endpoint);
        return 1;
    }
    samples_t rtt = {0};
    int lat_errors = 0;
    printf("phase 1: %d sequential gets of %s on dev %d, %d ms apart\n", o.latency_n, o.reg, o.dev,
           o.spacing_ms);
    fflush(stdout);
    if (s_latency(&o, &tel, &rtt, &lat_errors) != 0 || rtt.n == 0) {
        fprintf(stderr, "bench_gateway: the gateway at %s did not answer\n", o.endpoint);
        return 1;
    }
    samples_t over = {0};
    for (size_t i = 0; i < rtt.n; i++)
        s_push(&over, rtt.v[i] - o.device_response_us);
    size_t waited = 0; /* requests that found the bus busy (telemetry polling) */
    for (size_t i = 0; i < over.n; i++)
        waited += over.v[i] > 5000;
    double rtt50 = s_pct(&rtt, 50), rtt99 = s_pct(&rtt, 99), rttmax = s_pct(&rtt, 100);
    double ov50 = s_pct(&over, 50), ov90 = s_pct(&over, 90), ov99 = s_pct(&over, 99);
    printf("  round trip   p50 %.0f us  p99 %.0f us  max %.0f us  (%zu ok, %d errors)\n", rtt50,
           rtt99, rttmax, rtt.n, lat_errors);
    printf("  overhead     p50 %.0f us  p90 %.0f us  p99 %.0f us  (round trip - device response "
           "%.0f us)\n",
           ov50, ov90, ov99, o.device_response_us);
    printf("  %zu of %zu requests (%.1f %%) waited > 5 ms for a bus slot taken by telemetry "
           "polling (at most 20 ms by the pacing rule)\n",
           waited, over.n, over.n ? 100.0 * (double)waited / (double)over.n : 0.0);
    if (lat_errors)
        printf("  last error: %s\n", s_last_error);

    double sreq0 = 0, sviol0 = NAN;
    bool have_sim2 = s_sim_counters(&o, &sreq0, &sviol0);
    long done = 0;
    int tp_errors = 0;
    double secs = 0;
    s_tel_gap(&tel, mono_ms());
    tel.phase = 1;
    printf("phase 2: %d gets in flight for %d s\n", o.inflight, o.duration_s);
    fflush(stdout);
    if (s_throughput(&o, &tel, &done, &tp_errors, &secs) != 0) {
        fprintf(stderr, "bench_gateway: throughput phase failed\n");
        return 1;
    }
    double sreq1 = 0, sviol1 = NAN;
    have_sim2 = have_sim2 && s_sim_counters(&o, &sreq1, &sviol1);
    double client_rps = secs > 0 ? (double)done / secs : 0;
    double bus_rps = have_sim2 && secs > 0 ? (sreq1 - sreq0) / secs : client_rps;
    printf("  client reads %.1f/s (%ld ok, %d errors in %.1f s)\n", client_rps, done, tp_errors,
           secs);
    if (tp_errors)
        printf("  last error: %s\n", s_last_error);
    if (have_sim2)
        printf("  bus requests %.1f/s seen by the simulator (client reads + telemetry polling)\n",
               bus_rps);
    else
        printf("  bus requests: no simulator counters, client reads used\n");
    double period_ms = NAN, margin_ms = NAN;
    if (s_sim_cadence(&o, &period_ms, &margin_ms))
        printf("  bus cadence at the simulator: request to request p50 %.2f ms (pacing: >= 20), "
               "reply to next request p50 %.2f ms (pacing: >= 5)\n",
               period_ms, margin_ms);
    double ratio = bus_rps / PACING_LIMIT_PER_S;
    printf("  pacing limit %d/s: ratio %.3f (target >= 0.95)\n", PACING_LIMIT_PER_S, ratio);

    if (have_sim)
        have_sim = s_sim_counters(&o, &req1, &viol1);
    double age50 = s_pct(&tel.age_fast_ms, 50), agemax = s_pct(&tel.age_fast_ms, 100);
    double late50 = s_pct(&tel.late_ms, 50), latemax = s_pct(&tel.late_ms, 100);
    s_tel_gap(&tel, mono_ms());
    printf("telemetry: fast-set age at publication p50 %.0f ms max %.0f ms, delivery p50 %.0f ms "
           "max %.0f ms\n",
           age50, agemax, late50, latemax);
    printf("  phase 1: %d messages, longest gap %.0f ms; phase 2 (bus saturated by clients): %d "
           "messages, longest gap %.0f ms\n",
           tel.msgs[0], tel.gap_max_ms[0], tel.msgs[1], tel.gap_max_ms[1]);

    long rss = -1, hwm = -1;
    double cpu_pct = NAN;
    if (o.gateway_pid) {
        rss = s_status_kb(o.gateway_pid, "VmRSS:");
        hwm = s_status_kb(o.gateway_pid, "VmHWM:");
        long long cpu1 = s_cpu_ticks(o.gateway_pid);
        double wall = (double)(mono_us() - wall0) / 1e6;
        if (cpu0 >= 0 && cpu1 >= 0 && wall > 0)
            cpu_pct = 100.0 * (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) / wall;
        printf("gateway pid %d: RSS %ld kB (peak %ld kB), CPU %.1f %% of one core\n", o.gateway_pid,
               rss, hwm, cpu_pct);
    }
    double violations = have_sim && !isnan(viol1) && !isnan(viol0) ? viol1 - viol0 : NAN;
    if (!isnan(violations))
        printf("pacing violations counted by the simulator: %.0f\n", violations);

    printf("reads_per_s=%.1f client_reads_per_s=%.1f pacing_limit_per_s=%d ratio=%.3f "
           "rtt_p50_us=%.0f rtt_p99_us=%.0f overhead_p50_us=%.0f overhead_p99_us=%.0f "
           "tel_age_p50_ms=%.0f tel_age_max_ms=%.0f rss_kb=%ld cpu_pct=%.1f "
           "tel_gap_idle_ms=%.0f tel_gap_busy_ms=%.0f pacing_violations=%.0f "
           "bus_period_p50_ms=%.2f errors=%d\n",
           bus_rps, client_rps, PACING_LIMIT_PER_S, ratio, rtt50, rtt99, ov50, ov99, age50, agemax,
           rss, cpu_pct, tel.gap_max_ms[0], tel.gap_max_ms[1], violations, period_ms,
           lat_errors + tp_errors);

    free(rtt.v);
    free(over.v);
    free(tel.age_fast_ms.v);
    free(tel.late_ms.v);
    zmq_close(tel.sub);
    zmq_ctx_term(s_ctx);
    return 0;
}
