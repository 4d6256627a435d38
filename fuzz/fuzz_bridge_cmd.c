/*
 * Fuzz harness: MQTT command payloads of the bridge (mqtt-bridge/bridge_cmd.h).
 *
 * The first input byte picks the command kind and the device's OPERATION state (needed by
 * the toggle), the rest is the payload exactly as it would arrive on <T>/inv/<id>/<kind>/set.
 * Besides the sanitizers, it checks the parser's contract: a refusal always names an error
 * code and a message, an accepted command always carries a request (or is a reload), and the
 * result payloads built from either are valid JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "bridge_cmd.h"

static void s_check_json(char *text)
{
    if (!text)
        return; /* allocation failure is allowed to yield NULL */
    cJSON *j = cJSON_Parse(text);
    if (!j || !cJSON_IsObject(j)) {
        fprintf(stderr, "result payload is not a JSON object: %s\n", text);
        abort();
    }
    cJSON_Delete(j);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bcmd_kind_t kind = (bcmd_kind_t)(data[0] % BCMD_KINDS);
    bcmd_opts_t opts = {.lease_ttl_s = 600, .operation = (int)((data[0] >> 4) % 3) - 1};
    bcmd_t cmd;
    memset(&cmd, 0, sizeof cmd);
    const char *code = NULL;
    char err[256] = "";
    int rc = bcmd_parse(kind, 3, data + 1, size - 1, &opts, &cmd, &code, err, sizeof err);
    if (rc == 0) {
        if (!cmd.reload && !cmd.req) {
            fprintf(stderr, "accepted command without a request\n");
            abort();
        }
        if (cmd.req) {
            char *req = cJSON_PrintUnformatted(cmd.req);
            s_check_json(req);
        }
        cJSON *reply = cJSON_CreateObject();
        cJSON_AddBoolToObject(reply, "ok", 1);
        s_check_json(bcmd_result_ok(kind, cmd.corr, cmd.what, reply));
        cJSON_Delete(reply);
    } else {
        if (rc != -1 || !code || !*code || !err[0]) {
            fprintf(stderr, "refusal without code or message (rc %d)\n", rc);
            abort();
        }
        s_check_json(bcmd_result_error(kind, cmd.corr, cmd.what, code, err, NULL));
    }
    bcmd_clear(&cmd);
    bcmd_clear(&cmd); /* documented as safe on a cleared command */

    /* the topic splitter sees the same bytes as a topic */
    char topic[BCMD_MAX_PAYLOAD + 1];
    size_t n = size - 1 < BCMD_MAX_PAYLOAD ? size - 1 : BCMD_MAX_PAYLOAD;
    memcpy(topic, data + 1, n);
    topic[n] = '\0';
    int dev = -1;
    bcmd_kind_t k;
    if (bcmd_topic_parse(topic, "bic", &dev, &k) && (dev < 0 || dev > 67 || k >= BCMD_KINDS)) {
        fprintf(stderr, "topic parse returned device %d kind %d\n", dev, (int)k);
        abort();
    }
    return 0;
}
