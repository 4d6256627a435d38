/*
 * Fuzz harness: the bridge's view of a device (mqtt-bridge/dev_view.h), fed with what the
 * gateway publishes and replies (docs/ipc-protocol.md: `tel/<dev>` telemetry, `info` device
 * objects, `get` values). The protocol is documented for third-party gateways too, so the
 * bridge must survive anything on it.
 *
 * Input: lines, each a kind character (t telemetry, i info, r register values, s SOC,
 * u/d gateway reachable/unreachable) followed by a JSON document or a number. After each
 * line every seed payload the bridge would publish must be a JSON object, a payload whose
 * key (dev_view_key) equals the last line's must equal the last line's payload (the bridge
 * does not build it then), and the charged and discharged energy counters must stay finite
 * and never decrease.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "dev_view.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static void s_check_payload(const char *what, char *text)
{
    if (!text)
        return; /* nothing to say yet */
    cJSON *j = cJSON_Parse(text);
    if (!j || !cJSON_IsObject(j))
        FAIL("%s payload is not a JSON object: %s", what, text);
    cJSON_Delete(j);
    free(text);
}

/* The last line's payload and key of each kind. */
typedef struct {
    char *text;
    unsigned char key[4096];
    size_t len;
} last_t;

static void s_check_key(const dev_view_t *dv, dev_view_payload_t which, last_t *last)
{
    static const char *const names[DEV_VIEW_P_COUNT] = {"state", "charge", "fault", "info"};
    unsigned char key[sizeof last->key];
    size_t len = dev_view_key(dv, which, key, sizeof key);
    char *text = dev_view_json(dv, which);
    if ((len == 0) != (text == NULL))
        FAIL("%s: key of %zu bytes for %s payload", names[which], len, text ? "a" : "no");
    if (len > sizeof key)
        FAIL("%s: key of %zu bytes", names[which], len);
    if (text && last->text && len == last->len && memcmp(key, last->key, len) == 0 &&
        strcmp(text, last->text) != 0)
        FAIL("%s: the same key for %s and %s", names[which], last->text, text);
    free(last->text);
    last->text = text;
    memcpy(last->key, key, len);
    last->len = len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dev_view_t *dv = dev_view_new(3);
    if (!dv)
        return 0;
    double prev_c = 0, prev_d = 0;
    static last_t last[DEV_VIEW_P_COUNT];
    size_t off = 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
        const char *line = (const char *)data + off;
        off += len + 1;
        if (len == 0)
            continue;
        char kind = line[0];
        cJSON *doc = cJSON_ParseWithLength(line + 1, len - 1);
        char err[256];
        switch (kind) {
        case 't':
            (void)dev_view_on_telemetry(dv, doc, err, sizeof err);
            break;
        case 'i':
            (void)dev_view_on_info(dv, doc, err, sizeof err);
            break;
        case 'r':
            (void)dev_view_on_regs(dv, doc);
            break;
        case 's':
            if (cJSON_IsNumber(doc))
                (void)dev_view_set_soc(dv, doc->valuedouble);
            break;
        case 'u':
        case 'd':
            dev_view_set_gateway_reachable(dv, kind == 'u');
            break;
        default:
            break;
        }
        cJSON_Delete(doc);

        double c, d;
        dev_view_energy(dv, &c, &d);
        if (!isfinite(c) || !isfinite(d) || c < prev_c || d < prev_d)
            FAIL("energy counters went from %g/%g Wh to %g/%g Wh", prev_c, prev_d, c, d);
        prev_c = c;
        prev_d = d;
        s_check_payload("state", dev_view_state_json(dv));
        s_check_payload("charge", dev_view_charge_json(dv));
        s_check_payload("fault", dev_view_fault_json(dv));
        s_check_payload("info", dev_view_info_json(dv));
        for (int w = 0; w < DEV_VIEW_P_COUNT; w++)
            s_check_key(dv, (dev_view_payload_t)w, &last[w]);
        static const char *lims[] = {"vout_v", "iout_a", "rev_vout_v", "rev_iout_a"};
        for (int k = 0; k < 4; k++) {
            double lo, hi;
            (void)dev_view_limit(dv, lims[k], &lo, &hi);
        }
        (void)dev_view_availability(dv);
        (void)dev_view_operation(dv);
        (void)dev_view_model(dv);
        (void)dev_view_firmware(dv);
        (void)dev_view_serial(dv);
    }
    for (int w = 0; w < DEV_VIEW_P_COUNT; w++) {
        free(last[w].text);
        last[w].text = NULL;
    }
    dev_view_destroy(&dv);
    return 0;
}
