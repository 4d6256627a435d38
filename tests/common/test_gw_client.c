/*  Tests of the gateway client against a real ZeroMQ REP socket run by a scripted server
    thread in this test: answers, a dropped request retried on a fresh socket, giving up
    after the retries, garbage replies, the event-loop form, SUB, CURVE and config.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "gw_client.h"
#include "monotime.h"

//  What the server does with each request, in order (then it answers):
//  a answer (echo the request), d drop (close and rebind the socket, like a gateway
//  restart), g not JSON, n JSON that is not an object, m two frames, o object without "ok".
typedef struct {
    char endpoint[128];
    const char *script;
    zcert_t *cert; /* CURVE server keys, or NULL */
} server_args_t;

static void s_server(zsock_t *pipe, void *argp)
{
    server_args_t *args = argp;
    zsock_t *rep = NULL;
#define OPEN_REP()                                                                                 \
    do {                                                                                           \
        rep = zsock_new(ZMQ_REP);                                                                  \
        zsock_set_linger(rep, 0);                                                                  \
        if (args->cert) {                                                                          \
            zcert_apply(args->cert, rep);                                                          \
            zsock_set_curve_server(rep, 1);                                                        \
        }                                                                                          \
        zsock_bind(rep, "%s", args->endpoint);                                                     \
    } while (0)
    OPEN_REP();
    zpoller_t *poller = zpoller_new(pipe, rep, NULL);
    zsock_signal(pipe, 0);
    int count = 0;
    size_t step = 0;
    while (true) {
        void *which = zpoller_wait(poller, -1);
        if (!which)
            break;
        if (which == pipe) {
            char *cmd = zstr_recv(pipe);
            bool term = !cmd || streq(cmd, "$TERM");
            if (cmd && streq(cmd, "COUNT"))
                zstr_sendf(pipe, "%d", count);
            free(cmd);
            if (term)
                break;
            continue;
        }
        char *req = zstr_recv(rep);
        count++;
        char action = args->script[step] ? args->script[step++] : 'a';
        switch (action) {
        case 'd':
            zpoller_remove(poller, rep);
            zsock_destroy(&rep);
            OPEN_REP();
            zpoller_add(poller, rep);
            break;
        case 'g':
            zstr_send(rep, "this is {not json");
            break;
        case 'n':
            zstr_send(rep, "[1,2,3]");
            break;
        case 'm':
            zstr_sendm(rep, "{\"ok\":true}");
            zstr_send(rep, "extra");
            break;
        case 'o':
            zstr_send(rep, "{\"v\":1}");
            break;
        default: {
            cJSON *reply = cJSON_CreateObject();
            cJSON_AddNumberToObject(reply, "v", 1);
            cJSON_AddBoolToObject(reply, "ok", true);
            cJSON *echo = cJSON_Parse(req ? req : "null");
            cJSON_AddItemToObject(reply, "echo", echo ? echo : cJSON_CreateNull());
            char *text = cJSON_PrintUnformatted(reply);
            zstr_send(rep, text);
            cJSON_free(text);
            cJSON_Delete(reply);
        }
        }
        free(req);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&rep);
}

static int s_seq = 0;
static server_args_t s_args;

static zactor_t *server_start(const char *script, zcert_t *cert)
{
    snprintf(s_args.endpoint, sizeof s_args.endpoint, "ipc:///tmp/bic-test-gwc-%d-%d.sock",
             (int)getpid(), ++s_seq);
    s_args.script = script;
    s_args.cert = cert;
    zactor_t *server = zactor_new(s_server, &s_args);
    assert_non_null(server);
    return server;
}

//  Stop the server and remove its socket file.
static void server_stop(zactor_t **server)
{
    zactor_destroy(server);
    unlink(s_args.endpoint + strlen("ipc://"));
}

static int server_count(zactor_t *server)
{
    zstr_send(server, "COUNT");
    char *text = zstr_recv(server);
    int count = text ? atoi(text) : -1;
    free(text);
    return count;
}

static cJSON *ping(int id)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", "ping");
    cJSON_AddNumberToObject(req, "id", id);
    return req;
}

static const char *error_code(const cJSON *reply)
{
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(reply, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
    return cJSON_IsString(code) ? code->valuestring : "";
}

static void test_call_answers(void **state)
{
    zactor_t *server = server_start("", NULL);
    gw_client_t *client = gw_client_new(s_args.endpoint, 3000, 1);
    assert_non_null(client);
    char err[256] = "";
    cJSON *req = ping(7);
    cJSON *reply = gw_client_call(client, req, err, sizeof err);
    assert_non_null(reply);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")));
    const cJSON *echo = cJSON_GetObjectItem(reply, "echo");
    //  "v":1 was added; the request's own fields are unchanged; the caller's object too.
    assert_int_equal(cJSON_GetObjectItem(echo, "v")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(echo, "op")->valuestring, "ping");
    assert_int_equal(cJSON_GetObjectItem(echo, "id")->valueint, 7);
    assert_null(cJSON_GetObjectItem(req, "v"));
    cJSON_Delete(reply);

    //  A "v" the caller set is kept (the gateway answers bad_version, not the client).
    cJSON_AddNumberToObject(req, "v", 2);
    reply = gw_client_call(client, req, err, sizeof err);
    assert_non_null(reply);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "echo"), "v")->valueint, 2);
    cJSON_Delete(reply);
    cJSON_Delete(req);
    assert_int_equal(server_count(server), 2);
    gw_client_destroy(&client);
    assert_null(client);
    server_stop(&server);
}

static void test_retry_after_drop(void **state)
{
    zactor_t *server = server_start("d", NULL);
    gw_client_t *client = gw_client_new(s_args.endpoint, 1000, 2);
    char err[256] = "";
    cJSON *req = ping(1);
    cJSON *reply = gw_client_call(client, req, err, sizeof err);
    if (!reply)
        fail_msg("no reply: %s", err);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")));
    //  The first request was lost; the resend on a fresh socket was answered.
    assert_int_equal(server_count(server), 2);
    cJSON_Delete(reply);
    cJSON_Delete(req);
    gw_client_destroy(&client);
    server_stop(&server);
}

static void test_retries_exhausted(void **state)
{
    zactor_t *server = server_start("ddd", NULL);
    gw_client_t *client = gw_client_new(s_args.endpoint, 500, 2);
    char err[256] = "";
    cJSON *req = ping(1);
    int64_t start = mono_ms();
    cJSON *reply = gw_client_call(client, req, err, sizeof err);
    assert_null(reply);
    //  It waited for every try (a lower bound only: the machine may be slow).
    assert_true(mono_ms() - start >= 3 * 500);
    assert_non_null(strstr(err, "no reply from the gateway"));
    assert_non_null(strstr(err, s_args.endpoint));
    assert_int_equal(server_count(server), 3);
    assert_false(gw_client_pending(client));

    //  The client is usable afterwards: the script is over, the server answers again.
    reply = gw_client_call(client, req, err, sizeof err);
    assert_non_null(reply);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")));
    cJSON_Delete(reply);

    //  Nobody listening at all.
    gw_client_t *lonely = gw_client_new("ipc:///tmp/bic-test-gwc-nobody.sock", 100, 1);
    assert_null(gw_client_call(lonely, req, err, sizeof err));
    assert_non_null(strstr(err, "after 2 tries of 100 ms"));
    gw_client_destroy(&lonely);

    cJSON_Delete(req);
    gw_client_destroy(&client);
    server_stop(&server);
}

static void test_garbage_replies(void **state)
{
    zactor_t *server = server_start("gnmo", NULL);
    gw_client_t *client = gw_client_new(s_args.endpoint, 3000, 0);
    char err[256] = "";
    cJSON *req = ping(1);
    const char *expect[] = {"not a JSON object", "not a JSON object", "2 frames", "\"ok\""};
    for (int i = 0; i < 4; i++) {
        cJSON *reply = gw_client_call(client, req, err, sizeof err);
        assert_non_null(reply);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItem(reply, "ok")));
        assert_string_equal(error_code(reply), "bad_reply");
        const cJSON *error = cJSON_GetObjectItem(reply, "error");
        const char *message = cJSON_GetObjectItem(error, "message")->valuestring;
        if (!strstr(message, expect[i]))
            fail_msg("reply %d: message '%s' lacks '%s'", i, message, expect[i]);
        cJSON_Delete(reply);
    }
    //  After garbage the next exchange works.
    cJSON *reply = gw_client_call(client, req, err, sizeof err);
    assert_non_null(reply);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")));
    cJSON_Delete(reply);
    cJSON_Delete(req);
    gw_client_destroy(&client);
    server_stop(&server);
}

static void test_bad_requests(void **state)
{
    assert_null(gw_client_new(NULL, 100, 1));
    assert_null(gw_client_new("ipc:///tmp/x", 0, 1));
    assert_null(gw_client_new("ipc:///tmp/x", 100, -1));
    assert_null(gw_client_new("bogus://x", 100, 1));

    gw_client_t *client = gw_client_new("ipc:///tmp/bic-test-gwc-nobody.sock", 100, 0);
    char err[256] = "";
    cJSON *array = cJSON_CreateArray();
    assert_null(gw_client_call(client, array, err, sizeof err));
    assert_non_null(strstr(err, "JSON object of at most 4096 bytes"));
    assert_int_equal(gw_client_send(client, array), -1);
    cJSON_Delete(array);

    cJSON *big = cJSON_CreateObject();
    char filler[5000];
    memset(filler, 'x', sizeof filler - 1);
    filler[sizeof filler - 1] = '\0';
    cJSON_AddStringToObject(big, "client", filler);
    assert_null(gw_client_call(client, big, err, sizeof err));
    assert_false(gw_client_pending(client));
    cJSON_Delete(big);
    gw_client_destroy(&client);
}

//  Poll the client's socket until a reply arrives or its deadline passes.
static cJSON *async_wait(gw_client_t *client, int *expired)
{
    *expired = 0;
    while (gw_client_pending(client)) {
        int64_t now = mono_ms();
        int64_t wait = gw_client_deadline(client) - now;
        zmq_pollitem_t item = {zsock_resolve(gw_client_socket(client)), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, wait > 0 ? (long)wait : 0) > 0) {
            cJSON *reply = gw_client_recv(client);
            if (reply)
                return reply;
        }
        int rc = gw_client_expire(client, mono_ms());
        if (rc != 0)
            (*expired)++;
        if (rc < 0)
            return NULL;
    }
    return NULL;
}

static void test_async(void **state)
{
    zactor_t *server = server_start("d", NULL);
    gw_client_t *client = gw_client_new(s_args.endpoint, 1000, 1);
    assert_false(gw_client_pending(client));
    assert_true(gw_client_deadline(client) == INT64_MAX);
    assert_int_equal(gw_client_expire(client, mono_ms()), 0);

    cJSON *req = ping(3);
    assert_int_equal(gw_client_send(client, req), 0);
    assert_true(gw_client_pending(client));
    assert_true(gw_client_deadline(client) > mono_ms() - 1);
    //  One request in flight at a time.
    assert_int_equal(gw_client_send(client, req), -1);
    //  Before the deadline nothing expires.
    assert_int_equal(gw_client_expire(client, gw_client_deadline(client) - 1), 0);

    int expired;
    cJSON *reply = async_wait(client, &expired);
    assert_non_null(reply);
    assert_int_equal(expired, 1); //  the dropped first try was resent once
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "echo"), "id")->valueint, 3);
    assert_false(gw_client_pending(client));
    cJSON_Delete(reply);
    server_stop(&server);

    //  Exhaustion: -1 from expire and nothing pending any more.
    server = server_start("dd", NULL);
    gw_client_t *other = gw_client_new(s_args.endpoint, 200, 1);
    assert_int_equal(gw_client_send(other, req), 0);
    assert_null(async_wait(other, &expired));
    assert_int_equal(expired, 2);
    assert_false(gw_client_pending(other));
    assert_int_equal(server_count(server), 2);
    gw_client_destroy(&other);

    cJSON_Delete(req);
    gw_client_destroy(&client);
    server_stop(&server);
}

static void test_sub(void **state)
{
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/bic-test-gwc-pub-%d.sock", (int)getpid());
    zsock_t *pub = zsock_new(ZMQ_PUB);
    assert_int_equal(zsock_bind(pub, "%s", endpoint), 0);
    const char *prefixes[] = {"tel/", NULL};
    zsock_t *sub = gw_client_sub_new(endpoint, prefixes);
    assert_non_null(sub);

    //  A subscription takes a moment to reach the publisher: publish until one arrives.
    cJSON *body = NULL;
    char topic[64] = "";
    int64_t give_up = mono_ms() + 10000;
    int garbage_seen = 0;
    while (!body && mono_ms() < give_up) {
        zstr_sendm(pub, "evt/0");
        zstr_send(pub, "{\"event\":\"online\"}");
        zstr_send(pub, "tel/9"); //  a single frame: not "topic | JSON"
        zstr_sendm(pub, "tel/0");
        zstr_send(pub, "{\"v\":1,\"dev\":0}");
        zmq_pollitem_t item = {zsock_resolve(sub), 0, ZMQ_POLLIN, 0};
        while (zmq_poll(&item, 1, 50) > 0) {
            cJSON *got = gw_client_sub_recv(sub, topic, sizeof topic);
            if (!got) {
                garbage_seen++;
                continue;
            }
            //  Only subscribed topics arrive.
            assert_string_equal(topic, "tel/0");
            body = got;
            break;
        }
    }
    assert_non_null(body);
    assert_int_equal(cJSON_GetObjectItem(body, "dev")->valueint, 0);
    cJSON_Delete(body);
    zsock_destroy(&sub);
    zsock_destroy(&pub);
    unlink(endpoint + strlen("ipc://"));
    assert_null(gw_client_sub_new("bogus://", NULL));
}

static void test_curve(void **state)
{
    if (!zsys_has_curve())
        fail_msg("czmq without CURVE: Debian's libczmq-dev has it (tools/deps.sh)");
    zcert_t *server_cert = zcert_new();
    zactor_t *server = server_start("", server_cert);
    char err[256] = "";
    cJSON *req = ping(5);

    gw_client_t *client = gw_client_new(s_args.endpoint, 2000, 0);
    assert_int_equal(
        gw_client_set_curve(client, zcert_public_txt(server_cert), NULL, err, sizeof err), 0);
    cJSON *reply = gw_client_call(client, req, err, sizeof err);
    if (!reply)
        fail_msg("no reply over CURVE: %s", err);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")));
    cJSON_Delete(reply);
    gw_client_destroy(&client);

    //  The wrong server key: the handshake fails, no reply.
    zcert_t *other = zcert_new();
    client = gw_client_new(s_args.endpoint, 300, 0);
    assert_int_equal(gw_client_set_curve(client, zcert_public_txt(other), NULL, err, sizeof err),
                     0);
    assert_null(gw_client_call(client, req, err, sizeof err));
    //  Bad key text and a missing certificate file are refused.
    assert_int_equal(gw_client_set_curve(client, "short", NULL, err, sizeof err), -1);
    assert_int_equal(
        gw_client_set_curve(client, zcert_public_txt(other), "/nonexistent/cert", err, sizeof err),
        -1);
    assert_non_null(strstr(err, "/nonexistent/cert"));
    gw_client_destroy(&client);
    zcert_destroy(&other);

    cJSON_Delete(req);
    server_stop(&server);
    zcert_destroy(&server_cert);
}

static void test_from_config(void **state)
{
    zactor_t *server = server_start("", NULL);
    char path[] = "/tmp/bic-test-gwc-ini-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char text[256];
    int len = snprintf(text, sizeof text,
                       "[GATEWAY]\nReqEndpoint=%s\nClientTimeoutMs=1500\nClientRetries=0\n",
                       s_args.endpoint);
    assert_int_equal(write(fd, text, (size_t)len), len);
    close(fd);
    char err[512];
    config_t *cfg = config_load(path, err, sizeof err);
    if (!cfg)
        fail_msg("%s", err);
    gw_client_t *client = gw_client_from_config(cfg, err, sizeof err);
    assert_non_null(client);
    assert_string_equal(gw_client_endpoint(client), s_args.endpoint);
    cJSON *req = ping(9);
    cJSON *reply = gw_client_call(client, req, err, sizeof err);
    assert_non_null(reply);
    cJSON_Delete(reply);
    cJSON_Delete(req);
    gw_client_destroy(&client);
    config_destroy(&cfg);
    unlink(path);
    server_stop(&server);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_answers),
        cmocka_unit_test(test_retry_after_drop),
        cmocka_unit_test(test_retries_exhausted),
        cmocka_unit_test(test_garbage_replies),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_sub),
        cmocka_unit_test(test_curve),
        cmocka_unit_test(test_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
