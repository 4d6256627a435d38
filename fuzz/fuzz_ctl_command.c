/*
 * Fuzz harness: the charge controller's MQTT command payload (`<T>/inv/<id>/control/set`,
 * charge-ctl/ctl_d_mqtt.h) and the result it publishes.
 *
 * A refusal must name a code and a message; the result payload built from an accepted or a
 * refused command must be a JSON object.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ctl_d_mqtt.h"

static void s_check(char *text)
{
    if (!text)
        return;
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
    bool on = false;
    const char *code = NULL;
    char err[256] = "";
    if (ctld_parse_enable(data, size, &on, &code, err, sizeof err) == 0) {
        char req[CTLD_MAX_CMD + 1];
        size_t n = size < CTLD_MAX_CMD ? size : CTLD_MAX_CMD;
        memcpy(req, data, n);
        req[n] = '\0';
        s_check(ctld_result_json(true, req, on, NULL, NULL));
    } else {
        if (!code || !*code || !err[0]) {
            fprintf(stderr, "refusal without a code or a message\n");
            abort();
        }
        s_check(ctld_result_json(false, NULL, false, code, err));
    }
    return 0;
}
