/*  Tests of mqtt_conn: the [MQTT] connection keys and their refusals, the node and client
    ids, and the connection's life against a real mosquitto on a free loopback port: no
    broker (the attempt fails, retries back off 1 s, 2 s, ...), the broker appearing
    (connected, back-off reset), the broker going away (reported, retried after 1 s) and an
    orderly disconnect (not reported, not retried).
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "monotime.h"
#include "mqtt_conn.h"

#define WAIT_MS 20000 /* generous: a loaded machine, a broker starting */

static char s_path[64];
static char s_err[8192];

static config_t *load_text(const char *text)
{
    snprintf(s_path, sizeof s_path, "/tmp/bic-test-mqtt-XXXXXX");
    int fd = mkstemp(s_path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    s_err[0] = '\0';
    config_t *cfg = config_load(s_path, s_err, sizeof s_err);
    unlink(s_path);
    if (!cfg)
        fail_msg("config refused: %s", s_err);
    return cfg;
}

static void test_cfg(void **state)
{
    mqtt_conn_cfg_t c;
    char err[8192];
    char dir[] = "/tmp/bic-test-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ca[64], me[64], key[64], text[512];
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(me, sizeof me, "%s/me.pem", dir);
    snprintf(key, sizeof key, "%s/me.key", dir);
    const char *files[] = {ca, me, key};
    for (int i = 0; i < 3; i++) {
        int fd = open(files[i], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    snprintf(text, sizeof text,
             "[MQTT]\nBrokerIpAdr = broker.lan\nBrokerPort = 8883\n"
             "BrokerAccUser = bic\nBrokerAccPasswd = secret\n"
             "KeepAliveSec = 20\nTlsCaFile = %s\nTlsCertFile = %s\nTlsKeyFile = %s\n",
             ca, me, key);
    config_t *cfg = load_text(text);
    assert_int_equal(mqtt_conn_cfg_from_config(cfg, &c, err, sizeof err), 0);
    assert_string_equal(c.host, "broker.lan");
    assert_int_equal(c.port, 8883);
    assert_string_equal(c.user, "bic");
    assert_string_equal(c.pass, "secret");
    assert_int_equal(c.keepalive_s, 20);
    assert_string_equal(c.tls_ca, ca);
    assert_string_equal(c.tls_cert, me);
    assert_string_equal(c.tls_key, key);
    config_destroy(&cfg);

    // A TLS file that is not there, or not a file: refused at once, naming key and path
    // (libmosquitto would only say "Invalid function arguments provided.").
    unlink(key);
    cfg = load_text(text);
    assert_int_equal(mqtt_conn_cfg_from_config(cfg, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "TlsKeyFile"));
    assert_non_null(strstr(err, key));
    assert_non_null(strstr(err, "No such file"));
    config_destroy(&cfg);
    snprintf(text, sizeof text, "[MQTT]\nTlsCaFile = %s\n", dir);
    cfg = load_text(text);
    assert_int_equal(mqtt_conn_cfg_from_config(cfg, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "TlsCaFile"));
    assert_non_null(strstr(err, "not a regular file"));
    config_destroy(&cfg);
    unlink(ca);
    unlink(me);
    rmdir(dir);

    // A certificate without its key, a key without its certificate, a client certificate
    // without the CA file that switches TLS on: refused, naming the keys.
    cfg = load_text("[MQTT]\nTlsCaFile = /ca.pem\nTlsCertFile = /me.pem\n");
    assert_int_equal(mqtt_conn_cfg_from_config(cfg, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "TlsCertFile and TlsKeyFile must be given together"));
    config_destroy(&cfg);
    cfg = load_text("[MQTT]\nTlsCaFile = /ca.pem\nTlsKeyFile = /me.key\n");
    assert_int_equal(mqtt_conn_cfg_from_config(cfg, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "TlsCertFile and TlsKeyFile"));
    config_destroy(&cfg);
    cfg = load_text("[MQTT]\nTlsCertFile = /me.pem\nTlsKeyFile = /me.key\n");
    assert_int_equal(mqtt_conn_cfg_from_config(cfg, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "TlsCertFile needs TlsCaFile"));
    config_destroy(&cfg);
}

/* The topics both daemons publish under, and what a reload compares to warn that a change
 * needs a restart. */
static void test_site_and_reload_compare(void **state)
{
    (void)state;
    char err[256];
    config_t *cfg = load_text("[MQTT]\nTopicMain = home/bat\nHaDiscovery = 0\n"
                              "HaPrefix = ha\nStatePayloadOnline = up\n");
    mqtt_site_t a, b;
    assert_int_equal(mqtt_site_from_config(cfg, &a, err, sizeof err), 0);
    assert_string_equal(a.topic_main, "home/bat");
    assert_string_equal(a.ha_prefix, "ha");
    assert_string_equal(a.ha_status, "homeassistant/status");
    assert_false(a.ha_discovery);
    assert_string_equal(a.pl_online, "up");
    assert_string_equal(a.pl_offline, "offline");
    b = a;
    assert_true(mqtt_site_equal(&a, &b));
    snprintf(b.pl_offline, sizeof b.pl_offline, "gone");
    assert_false(mqtt_site_equal(&a, &b));
    b = a;
    b.ha_discovery = true;
    assert_false(mqtt_site_equal(&a, &b));

    mqtt_conn_cfg_t c, d;
    assert_int_equal(mqtt_conn_cfg_from_config(cfg, &c, err, sizeof err), 0);
    d = c;
    assert_true(mqtt_conn_cfg_equal(&c, &d));
    d.keepalive_s++;
    assert_false(mqtt_conn_cfg_equal(&c, &d));
    d = c;
    snprintf(d.tls_key, sizeof d.tls_key, "/other.key");
    assert_false(mqtt_conn_cfg_equal(&c, &d));
    config_destroy(&cfg);
}

static void test_node_id(void **state)
{
    char out[64];
    mqtt_node_id("haus/power/bat/bic2mqtt", out, sizeof out);
    assert_string_equal(out, "haus_power_bat_bic2mqtt");
    mqtt_node_id("a b+#.c-d_eZ9", out, sizeof out);
    assert_string_equal(out, "a_b___c-d_eZ9");
    mqtt_node_id("abcdef", out, 4); // cut, terminated
    assert_string_equal(out, "abc");
    mqtt_node_id("", out, sizeof out);
    assert_string_equal(out, "");
    mqtt_node_id(NULL, out, sizeof out);
    assert_string_equal(out, "");
    out[0] = 'x';
    mqtt_node_id("abc", out, 0); // nothing written
    assert_int_equal(out[0], 'x');
}

static void test_client_id(void **state)
{
    char out[160];
    mqtt_client_id("house", "bridge", out, sizeof out);
    assert_string_equal(out, "house-bridge");
    mqtt_client_id("", "ctl0-42", out, sizeof out);
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    char want[160];
    snprintf(want, sizeof want, "bic2mqtt-%s-ctl0-42", host);
    assert_string_equal(out, want);
    mqtt_client_id(NULL, "bridge", out, 12); // cut to the buffer
    assert_int_equal(strlen(out), 11);
}

/* ---------------------------------------------------------------- a real broker */

typedef struct {
    int connects;    /* accepted CONNACKs */
    int refused;     /* CONNACKs with rc != 0 */
    int disconnects; /* on_disconnect */
    int failed;      /* on_connect_failed */
    int retries[16]; /* retry_ms reported, in order */
    int nretries;
} seen_t;

static void s_note_retry(seen_t *s, int retry_ms)
{
    if (s->nretries < 16)
        s->retries[s->nretries++] = retry_ms;
}

static void s_hook_connect(mqtt_conn_t *c, void *user, int rc)
{
    seen_t *s = user;
    if (rc == 0)
        s->connects++;
    else
        s->refused++;
}

static void s_hook_disconnect(mqtt_conn_t *c, void *user, int rc, int retry_ms)
{
    seen_t *s = user;
    s->disconnects++;
    s_note_retry(s, retry_ms);
}

static void s_hook_failed(mqtt_conn_t *c, void *user, const char *why, int retry_ms)
{
    seen_t *s = user;
    assert_non_null(why);
    s->failed++;
    s_note_retry(s, retry_ms);
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t s_broker_start(int port)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execl("/usr/sbin/mosquitto", "mosquitto", "-p", p, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void s_broker_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* Runs the connection as a program's loop would, until *flag reaches want or the deadline;
 * *passes (when not NULL) counts the loop's wake-ups. */
static bool s_run_counted(mqtt_conn_t *c, const int *flag, int want, int64_t ms, int *passes)
{
    int64_t deadline = mono_ms() + ms;
    while (*flag < want) {
        if (passes)
            (*passes)++;
        int64_t now = mono_ms();
        if (now >= deadline)
            return false;
        int64_t dl = mqtt_conn_deadline(c);
        if (dl > deadline)
            dl = deadline;
        zmq_pollitem_t item;
        int n = mqtt_conn_pollitem(c, &item) == 0 ? 1 : 0;
        long timeout = dl > now ? (long)(dl - now) : 0;
        if (n) {
            assert_true(zmq_poll(&item, 1, timeout) >= 0);
            mqtt_conn_handle(c, item.revents);
        } else {
            zmq_poll(NULL, 0, timeout);
        }
        mqtt_conn_tick(c, mono_ms());
    }
    return true;
}

static bool s_run_until(mqtt_conn_t *c, const int *flag, int want, int64_t ms)
{
    return s_run_counted(c, flag, want, ms, NULL);
}

static void test_connection_life(void **state)
{
    int port = s_free_port();
    mqtt_conn_cfg_t cfg = {.port = port, .keepalive_s = 5};
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    seen_t seen = {0};
    mqtt_conn_hooks_t hooks = {.on_connect = s_hook_connect,
                               .on_disconnect = s_hook_disconnect,
                               .on_connect_failed = s_hook_failed};
    char err[256];
    mqtt_conn_t *c = mqtt_conn_new(&cfg, "bic-test-conn", MQTT_PROTOCOL_V311, "test/state",
                                   "offline", &hooks, &seen, err, sizeof err);
    assert_non_null(c);
    assert_ptr_equal(mqtt_conn_user(c), &seen);
    assert_non_null(mqtt_conn_mosq(c));
    assert_int_equal(mqtt_conn_protocol(c), MQTT_PROTOCOL_V311);
    zmq_pollitem_t item;
    assert_int_equal(mqtt_conn_pollitem(c, &item), -1); // no socket before the start
    assert_false(mqtt_conn_connected(c));

    // No broker: each attempt fails and the wait before the next one doubles.
    mqtt_conn_start(c, mono_ms());
    int *attempts = &seen.nretries;
    assert_true(s_run_until(c, attempts, 2, WAIT_MS));
    assert_false(mqtt_conn_connected(c));
    assert_int_equal(seen.connects, 0);
    assert_int_equal(seen.retries[0], 1000);
    assert_int_equal(seen.retries[1], 2000);

    // The broker appears: the next attempt connects.
    pid_t broker = s_broker_start(port);
    assert_true(s_run_until(c, &seen.connects, 1, WAIT_MS));
    assert_true(mqtt_conn_connected(c));
    assert_int_equal(mqtt_conn_pollitem(c, &item), 0);
    assert_true(item.fd >= 0 && (item.events & ZMQ_POLLIN));

    // A publish waits in libmosquitto's queue until the socket is writable (POLLOUT is
    // asked for exactly then) and leaves with the loop.
    assert_int_equal(mosquitto_publish(mqtt_conn_mosq(c), NULL, "test/x", 1, "1", 1, false),
                     MOSQ_ERR_SUCCESS);
    int64_t deadline = mono_ms() + WAIT_MS;
    while (mqtt_conn_want_write(c) && mono_ms() < deadline) {
        assert_int_equal(mqtt_conn_pollitem(c, &item), 0);
        assert_true(item.events & ZMQ_POLLOUT);
        assert_true(zmq_poll(&item, 1, 100) >= 0);
        mqtt_conn_handle(c, item.revents);
    }
    assert_false(mqtt_conn_want_write(c));

    // The broker goes away: reported, and retried after the minimum back-off again (it was
    // reset by the connection).
    int before = seen.nretries;
    s_broker_stop(broker);
    assert_true(s_run_until(c, &seen.disconnects, 1, WAIT_MS));
    assert_false(mqtt_conn_connected(c));
    assert_int_equal(seen.retries[before], 1000);

    // Back again; then an orderly disconnect is neither reported nor retried.
    broker = s_broker_start(port);
    assert_true(s_run_until(c, &seen.connects, 2, WAIT_MS));
    int disconnects = seen.disconnects, failed = seen.failed;

    // Idle for 12 s, nothing to send or receive (the broker drops a client it has heard
    // nothing from for one and a half keep-alives, 7.5 s): woken only when
    // mqtt_conn_deadline() says (the keep-alive's work waits for a wake-up the program has
    // anyway, here none), the loop still sends its pings in time and the connection holds.
    int never = 0, passes = 0;
    assert_false(s_run_counted(c, &never, 1, 12000, &passes));
    assert_true(mqtt_conn_connected(c));
    assert_int_equal(seen.disconnects, disconnects);
    printf("idle 12 s: %d wake-ups of the loop\n", passes);

    mqtt_conn_disconnect(c);
    deadline = mono_ms() + WAIT_MS;
    while (mqtt_conn_pollitem(c, &item) == 0 && mono_ms() < deadline) {
        assert_true(zmq_poll(&item, 1, 100) >= 0);
        mqtt_conn_handle(c, item.revents);
        if (!mqtt_conn_want_write(c))
            break;
    }
    assert_false(s_run_until(c, &never, 1, 2500)); // 2.5 s: past the 1 s back-off
    assert_false(mqtt_conn_connected(c));
    assert_int_equal(seen.disconnects, disconnects);
    assert_int_equal(seen.failed, failed);
    assert_int_equal(seen.connects, 2);
    assert_int_equal(seen.refused, 0);
    s_broker_stop(broker);
    mqtt_conn_destroy(&c);
    assert_null(c);
    mqtt_conn_destroy(&c); // NULL is fine
}

static void test_bad_arguments(void **state)
{
    mqtt_conn_cfg_t cfg = {.port = 1883};
    char err[256] = "";
    assert_null(mqtt_conn_new(&cfg, "id", MQTT_PROTOCOL_V311, NULL, "offline", NULL, NULL, err,
                              sizeof err));
    assert_true(err[0] != '\0');
    err[0] = '\0';
    assert_null(
        mqtt_conn_new(NULL, "id", MQTT_PROTOCOL_V311, "t", "offline", NULL, NULL, err, sizeof err));
    assert_true(err[0] != '\0');
    // A CA file that does not exist is refused at set-up, not at the first connect.
    snprintf(cfg.tls_ca, sizeof cfg.tls_ca, "/nonexistent/ca.pem");
    err[0] = '\0';
    assert_null(
        mqtt_conn_new(&cfg, "id", MQTT_PROTOCOL_V311, "t", "offline", NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "MQTT client setup"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg),           cmocka_unit_test(test_site_and_reload_compare),
        cmocka_unit_test(test_node_id),       cmocka_unit_test(test_client_id),
        cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_connection_life),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
