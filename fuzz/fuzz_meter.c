/*
 * Fuzz harness: smart meter payloads (charge-ctl/meter.h).
 *
 * The first byte picks a configuration (plain number, or one of a few JSON paths as real
 * meters publish them; unit and sign inversion), the rest is the MQTT payload. A payload
 * that is accepted must give a finite value within the plausibility limit; a rejected one
 * must give a reason.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter.h"

static const char *s_paths[] = {"",    "SML.curr_w",   "total_act_power",  "a.b[0].c",
                                "[2]", "ENERGY.Power", "emeters[1].power", "x"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    meter_cfg_t m;
    meter_cfg_defaults(&m);
    snprintf(m.json_path, sizeof m.json_path, "%s", s_paths[data[0] & 7]);
    static const double scales[] = {1.0, 1000.0, 0.001, 1.0};
    m.scale = scales[(data[0] >> 3) & 3];
    m.invert = (data[0] >> 5) & 1;
    double w = NAN;
    char err[256] = "";
    if (meter_parse(&m, (const char *)data + 1, size - 1, &w, err, sizeof err) == 0) {
        if (!isfinite(w) || fabs(w) > m.max_abs_w) {
            fprintf(stderr, "accepted an implausible value %g\n", w);
            abort();
        }
    } else if (!err[0]) {
        fprintf(stderr, "rejected without a reason\n");
        abort();
    }
    return 0;
}
