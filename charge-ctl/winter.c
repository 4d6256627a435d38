/*
 * winter: the Winter controller's state machine (see winter.h).
 */
#include "winter.h"

#include "config.h"

#include <math.h>
#include <string.h>

void winter_params_from_config(const struct config_t *cfg, int id, winter_params_t *p)
{
    const char *cc = "CHARGE_CONTROL";
    p->temp_min_c = config_float(cfg, cc, "Id/%d/Winter/TempMin", id);
    p->power_w = (double)config_int(cfg, cc, "Id/%d/Winter/ChargeP", id);
    p->cap_min_pct = (int)config_int(cfg, cc, "Id/%d/Winter/CapMin", id);
    p->cap_max_pct = (int)config_int(cfg, cc, "Id/%d/Winter/CapMax", id);
    p->start_ms = config_int(cfg, cc, "Id/%d/Winter/StartDelaySec", id) * 1000LL;
}

void winter_init(winter_state_t *s)
{
    memset(s, 0, sizeof *s);
}

static void s_idle(winter_output_t *out, const char *why)
{
    out->cmd = WINTER_OUT_IDLE;
    out->power_w = 0;
    out->reason = why;
}

static void s_wait(winter_state_t *s, int64_t until_ms)
{
    s->phase = WINTER_WAIT;
    s->until_ms = until_ms;
    s->resting = false;
}

/* CHARGE or DISCHARGE: run, rest every WINTER_CHECK_MS, stop at the SOC read at rest. */
static void s_run(const winter_params_t *p, winter_state_t *s, const winter_input_t *in,
                  bool soc_ok, winter_output_t *out)
{
    bool charge = s->phase == WINTER_CHARGE;
    if (s->resting) {
        if (!soc_ok) {
            s_idle(out, "resting to read the SOC");
            return;
        }
        double stop = p->cap_max_pct + 10;
        if (charge ? in->soc_pct >= stop : in->soc_pct <= stop) {
            s_wait(s, in->now_ms + WINTER_IDLE_MS);
            s_idle(out, charge ? "charged into the band" : "discharged into the band");
            return;
        }
        s->resting = false;
        s->until_ms = in->now_ms + WINTER_CHECK_MS;
    } else if (in->now_ms >= s->until_ms) {
        s->resting = true;
        s_idle(out, "resting to read the SOC");
        return;
    }
    out->cmd = charge ? WINTER_OUT_CHARGE : WINTER_OUT_DISCHARGE;
    out->power_w = p->power_w;
    out->reason =
        charge ? "charging: SOC at or below CapMin" : "discharging: SOC above CapMax + 20";
}

void winter_step(const winter_params_t *p, winter_state_t *s, const winter_input_t *in,
                 winter_output_t *out)
{
    if (!s->started) {
        s->started = true;
        s->phase = WINTER_START;
        s->until_ms = in->now_ms + p->start_ms;
    }
    if (in->online && isfinite(in->dc_a) && fabs(in->dc_a) < WINTER_REST_A) {
        if (!s->rest_from_ms)
            s->rest_from_ms = in->now_ms ? in->now_ms : 1;
    } else {
        s->rest_from_ms = 0;
    }
    bool soc_ok = in->soc_valid && isfinite(in->soc_pct) && s->rest_from_ms &&
                  in->now_ms - s->rest_from_ms >= WINTER_REST_MS;

    /* Every step, also while charging or discharging (the seed checked only before). */
    if (!in->online) {
        if (s->phase == WINTER_CHARGE || s->phase == WINTER_DISCHARGE)
            s_wait(s, in->now_ms);
        s_idle(out, "device offline");
        return;
    }
    if (in->fault) {
        s_wait(s, in->now_ms + WINTER_COLD_MS);
        s_idle(out, "device fault");
        return;
    }
    if (!isfinite(in->temp_c)) {
        /* Not read yet (or lost): stop, decide again once it is known. */
        if (s->phase == WINTER_CHARGE || s->phase == WINTER_DISCHARGE)
            s_wait(s, in->now_ms);
        s_idle(out, "no temperature");
        return;
    }
    if (in->temp_c <= p->temp_min_c) {
        s_wait(s, in->now_ms + WINTER_COLD_MS);
        s_idle(out, "at or below TempMin");
        return;
    }

    switch (s->phase) {
    case WINTER_CHARGE:
    case WINTER_DISCHARGE:
        s_run(p, s, in, soc_ok, out);
        return;
    case WINTER_START:
    case WINTER_WAIT:
        break;
    }
    if (in->now_ms < s->until_ms) {
        s_idle(out, s->phase == WINTER_START ? "starting" : "waiting");
        return;
    }
    if (!soc_ok) {
        s_idle(out, "waiting for a SOC at rest");
        return;
    }
    if (in->soc_pct > p->cap_max_pct + 20) {
        s->phase = WINTER_DISCHARGE;
    } else if (in->soc_pct <= p->cap_min_pct) {
        s->phase = WINTER_CHARGE;
    } else {
        s_wait(s, in->now_ms + WINTER_IDLE_MS);
        s_idle(out, "within the band");
        return;
    }
    s->resting = false;
    s->until_ms = in->now_ms + WINTER_CHECK_MS;
    s_run(p, s, in, soc_ok, out);
}
