/*
 * surplus: the surplus rule and the surplus switches (see surplus.h).
 */
#include "surplus.h"

#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SW "SURPLUS_SWITCH"
#define MS_PER_MIN 60000LL

int surplus_cfg_from_config(const struct config_t *cfg, int id, surplus_cfg_t *out, char *err,
                            size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->delay_ms = config_int(cfg, SW, "Id/%d/SwitchDelaySec", id) * 1000LL;
    for (int num = 0; num < 64; num++) {
        long min_p = config_int(cfg, SW, "Id/%d/switch/%d/SurplusMinP", id, num);
        if (min_p <= 0)
            continue;
        if (out->n == SURPLUS_MAX_SWITCHES) {
            snprintf(err, errlen,
                     "[SURPLUS_SWITCH] Id/%d/switch/%d: more than %d switches; allowed: at most "
                     "%d with SurplusMinP above 0",
                     id, num, SURPLUS_MAX_SWITCHES, SURPLUS_MAX_SWITCHES);
            return -1;
        }
        surplus_switch_t *w = &out->sw[out->n++];
        w->num = num;
        w->min_power_w = (double)min_p;
        snprintf(w->topic, sizeof w->topic, "%s",
                 config_str(cfg, SW, "Id/%d/switch/%d/Topic", id, num));
        snprintf(w->name, sizeof w->name, "%s",
                 config_str(cfg, SW, "Id/%d/switch/%d/Name", id, num));
        w->min_on_ms = config_int(cfg, SW, "Id/%d/switch/%d/MinDurationMin", id, num) * MS_PER_MIN;
        long max = config_int(cfg, SW, "Id/%d/switch/%d/MaxDurationMax", id, num);
        w->max_on_ms = max < 0 ? -1 : max * MS_PER_MIN;
        long block = config_int(cfg, SW, "Id/%d/switch/%d/BlockRestart", id, num);
        w->block_ms = block <= 0 ? -1 : block * MS_PER_MIN;
    }
    return 0;
}

void surplus_init(surplus_state_t *s)
{
    memset(s, 0, sizeof *s);
}

double surplus_power_w(bool grid_valid, double grid_w, bool in_control, bool charge_limited,
                       double set_w, double measured_w)
{
    if (!grid_valid || !isfinite(grid_w) || grid_w >= 0)
        return 0;
    bool saturated = isfinite(set_w) && isfinite(measured_w) && set_w > 0 &&
                     set_w - measured_w >= SURPLUS_SATURATION_W;
    if (!in_control || charge_limited || saturated)
        return -grid_w;
    return 0;
}

unsigned surplus_step(const surplus_cfg_t *cfg, surplus_state_t *s, double surplus_w,
                      int64_t now_ms)
{
    unsigned changed = 0;
    if (!isfinite(surplus_w) || surplus_w < 0)
        surplus_w = 0;
    for (size_t i = 0; i < cfg->n; i++) {
        const surplus_switch_t *w = &cfg->sw[i];
        /* The seed lets the grid settle after a switch-on before anything else changes. */
        if (s->delay_until_ms && now_ms < s->delay_until_ms)
            break;
        if (!s->on[i]) {
            bool blocked = s->block_until_ms[i] && now_ms < s->block_until_ms[i];
            if (surplus_w >= w->min_power_w && !blocked) {
                s->on[i] = true;
                s->on_since_ms[i] = now_ms;
                s->delay_until_ms = cfg->delay_ms > 0 ? now_ms + cfg->delay_ms : 0;
                s->block_until_ms[i] = w->block_ms > 0 ? now_ms + w->block_ms : 0;
                changed |= 1u << i;
            }
            continue;
        }
        int64_t on_ms = now_ms - s->on_since_ms[i];
        bool too_long = w->max_on_ms >= 0 && on_ms > w->max_on_ms;
        bool gone = surplus_w == 0 && on_ms > w->min_on_ms;
        if (too_long || gone) {
            s->on[i] = false;
            changed |= 1u << i;
        }
    }
    return changed;
}
