/*
 * Fuzz harness: bic-sim's control requests (sim/sim_control.h), which tests and people send
 * to the simulator's control socket.
 *
 * Each input is one request to a bus of two simulated devices (kept from input to input, as
 * in the running simulator, with the clock moving on). Every request must get exactly one
 * reply, a JSON object with a boolean "ok", and a refusal must name a code and a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "bic_device.h"
#include "sim_bus.h"
#include "sim_control.h"

static sim_bus_t *s_bus;
static int64_t s_now_us = 1000000;

static void s_add(const char *spec)
{
    bic_device_config_t cfg;
    battery_config_t bcfg;
    char err[256];
    if (bic_device_parse_spec(spec, &cfg, &bcfg, err, sizeof err) != 0) {
        fprintf(stderr, "device spec %s: %s\n", spec, err);
        abort();
    }
    bic_device_t *dev = bic_device_new(&cfg, &bcfg, s_now_us);
    if (!dev || sim_bus_add(s_bus, &dev) != 0)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    s_bus = sim_bus_new(NULL);
    if (!s_bus)
        abort();
    s_add("0:24:battery,canctrl");
    s_add("5:48:fw=old");
    npb_device_config_t ncfg;
    battery_config_t nbcfg;
    char err[256];
    if (npb_device_parse_spec("3:npb-1200-24", &ncfg, &nbcfg, err, sizeof err) != 0) {
        fprintf(stderr, "NPB spec: %s\n", err);
        abort();
    }
    npb_device_t *npb = npb_device_new(&ncfg, &nbcfg, s_now_us);
    if (!npb || sim_bus_add_npb(s_bus, &npb) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_now_us += 100000;
    sim_control_env_t env = {.speed = 1.0, .transport = "slcan-pty:/dev/null"};
    char *reply = sim_control_handle(s_bus, &env, (const char *)data, size, s_now_us, s_now_us);
    if (!reply)
        return 0;
    cJSON *r = cJSON_Parse(reply);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
    if (!r || !cJSON_IsBool(ok)) {
        fprintf(stderr, "reply is not a JSON object with a boolean ok: %s\n", reply);
        abort();
    }
    if (cJSON_IsFalse(ok)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        if (!cJSON_IsString(code) || !code->valuestring[0] || !cJSON_IsString(msg) ||
            !msg->valuestring[0]) {
            fprintf(stderr, "error reply without a code and a message: %s\n", reply);
            abort();
        }
    }
    cJSON_Delete(r);
    free(reply);
    return 0;
}
