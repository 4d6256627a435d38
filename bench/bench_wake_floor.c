/*
 * bench_wake_floor: the least CPU a message can cost a process on this machine, measured
 * beside the daemons (bench/bench_cpu_work.py). It receives what a daemon receives and does
 * nothing with it:
 *
 *   --mqtt PORT TOPIC   the messages of TOPIC from the broker on 127.0.0.1:PORT, through
 *                       libmosquitto in a zmq_poll loop over its socket and an idle SUB, as
 *                       bic-charge-ctl receives its meter readings
 *   --sub ENDPOINT      the messages of a ZeroMQ PUB (the gateway's telemetry), as
 *                       bic-mqtt-bridge receives them (its I/O thread included)
 *
 * Runs until SIGTERM or SIGINT, then prints `floor messages=N cpu_us=C us_per_message=U`:
 * the CPU time of all its threads (/proc/self/task/<tid>/schedstat) from the first message
 * on, divided by the messages after it.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <zmq.h>

static volatile sig_atomic_t s_stop;
static long s_count;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* CPU time of all threads of this process, in ns. */
static long long s_cpu_ns(void)
{
    long long total = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        FILE *f = fopen(path, "r");
        long long ns = 0;
        if (f && fscanf(f, "%lld", &ns) == 1)
            total += ns;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return total;
}

static void s_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    (void)obj;
    (void)msg;
    s_count++;
}

static int s_usage(void)
{
    fprintf(stderr, "usage: bench_wake_floor --mqtt PORT TOPIC | --sub ENDPOINT\n");
    return 2;
}

int main(int argc, char **argv)
{
    bool mqtt = argc == 4 && strcmp(argv[1], "--mqtt") == 0;
    bool sub = argc == 3 && strcmp(argv[1], "--sub") == 0;
    if (!mqtt && !sub)
        return s_usage();
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    void *ctx = zmq_ctx_new();
    void *zs = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(zs, ZMQ_SUBSCRIBE, "", 0);
    if (sub && zmq_connect(zs, argv[2]) != 0) {
        fprintf(stderr, "bench_wake_floor: %s: %s\n", argv[2], zmq_strerror(errno));
        return 1;
    }
    struct mosquitto *m = NULL;
    if (mqtt) {
        char *end;
        long port = strtol(argv[2], &end, 10);
        if (*end || port < 1 || port > 65535) {
            fprintf(stderr, "bench_wake_floor: port '%s': allowed: 1-65535\n", argv[2]);
            return 2;
        }
        mosquitto_lib_init();
        m = mosquitto_new(NULL, true, NULL);
        if (!m || mosquitto_connect(m, "127.0.0.1", (int)port, 60) != MOSQ_ERR_SUCCESS ||
            mosquitto_subscribe(m, NULL, argv[3], 0) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "bench_wake_floor: cannot subscribe to %s on port %ld\n", argv[3],
                    port);
            return 1;
        }
        mosquitto_message_callback_set(m, s_on_message);
    }
    long long t0 = 0;
    long first = 0;
    while (!s_stop) {
        zmq_pollitem_t it[2] = {{.socket = zs, .events = ZMQ_POLLIN}};
        int n = 1;
        if (m)
            it[n++] = (zmq_pollitem_t){.fd = mosquitto_socket(m),
                                       .events = ZMQ_POLLIN |
                                                 (mosquitto_want_write(m) ? ZMQ_POLLOUT : 0)};
        if (zmq_poll(it, n, 1000) < 0)
            continue;
        while (zmq_recv(zs, NULL, 0, ZMQ_DONTWAIT) >= 0) {
            int more = 0;
            size_t len = sizeof more;
            zmq_getsockopt(zs, ZMQ_RCVMORE, &more, &len);
            if (!more)
                s_count++;
        }
        if (m && (it[1].revents & ZMQ_POLLIN))
            mosquitto_loop_read(m, 1);
        if (m && (it[1].revents & ZMQ_POLLOUT))
            mosquitto_loop_write(m, 1);
        if (m)
            mosquitto_loop_misc(m);
        if (!t0 && s_count) {
            t0 = s_cpu_ns();
            first = s_count;
        }
    }
    long long t1 = s_cpu_ns();
    long n = s_count - first;
    printf("floor messages=%ld cpu_us=%.0f us_per_message=%.1f\n", n, (t1 - t0) / 1e3,
           n > 0 ? (t1 - t0) / 1e3 / (double)n : 0.0);
    return 0;
}
