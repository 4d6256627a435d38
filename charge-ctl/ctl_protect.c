/*
 * ctl_protect: the battery protection of the step function (docs/charge-ctl.md 1.2): the SOC
 * from the load-corrected voltage, the full and empty cuts with their hysteresis, the tail
 * current and the reuse of charge put back after an empty cut. Independent of the law.
 */
#include "ctl_step.h"
#include "ctl_step_impl.h"

#include <math.h>

/* Protection with hysteresis, independent of the control law. */
void ctl_protect(const ctl_params_t *p, ctl_state_t *s, const ctl_input_t *in, ctl_output_t *out,
                 ctl_limit_t *charge_why, ctl_limit_t *discharge_why)
{
    *charge_why = CTL_L_NONE;
    *discharge_why = CTL_L_NONE;
    if (!in->telemetry_valid || !isfinite(in->dc_v) || !isfinite(in->dc_a) || in->dc_v <= 0)
        return;
    double ocv = in->dc_v - in->dc_a * p->r_internal_ohm; /* load-corrected */
    double ocv_cv = ocv * 100.0;
    double soc = ctl_soc_from_voltage(p, ocv);
    if (soc >= 0) {
        out->soc_valid = true;
        out->soc_pct = soc;
    }
    /* Voltage hysteresis: a quarter percent of the cut-off voltage (70 mV at 28 V). */
    bool v_high = p->max_voltage_cv > 0 && ocv_cv >= p->max_voltage_cv;
    bool v_high_clear = p->max_voltage_cv <= 0 || ocv_cv < p->max_voltage_cv * 0.9975;
    bool v_low = p->min_voltage_cv > 0 && ocv_cv <= p->min_voltage_cv;
    bool v_low_clear = p->min_voltage_cv <= 0 || ocv_cv > p->min_voltage_cv * 1.0025;
    /* Near the ends of the table the estimate approaches the last entry but need not reach
     * it, so there a twentieth of a percent short of a limit counts as reaching it; inside
     * the table the limit itself holds (a margin there leaves usable energy unused every
     * day), up to the estimate's rounding. */
    double m_hi = 0.005, m_lo = 0.005;
    if (p->cap2v_n > 0 && p->max_soc_pct >= p->cap2v_pct[p->cap2v_n - 1] - 0.5)
        m_hi = 0.05;
    if (p->cap2v_n > 0 && p->min_soc_pct <= p->cap2v_pct[0] + 0.5)
        m_lo = 0.05;
    bool soc_full = soc >= 0 && soc >= p->max_soc_pct - m_hi;
    bool soc_empty = soc >= 0 && soc <= p->min_soc_pct + m_lo;
    /* End of charge by tail current: the device holds ChargeVoltage and the current has
     * tapered to a quarter of what is asked and to three times the minimum current. A
     * current the other way is no taper: the device's voltage setting is below the battery
     * (the follow check reports it, s_follow). */
    bool tail = s->mode == CTL_MODE_CHARGE && !s->pending && p->charge_voltage_cv > 0 &&
                in->dc_v * 100.0 >= p->charge_voltage_cv - 5 &&
                in->dc_a * 100.0 > -p->min_current_ca && s->current_ca >= 2 * p->min_current_ca &&
                in->dc_a * 100.0 < s->current_ca / 4.0 &&
                in->dc_a * 100.0 < 3.0 * p->min_current_ca;
    /* Resume once the state of charge is the hysteresis away from the limit (or, for a
     * tail-current cut, from where it was cut); at least a tenth of a percent, so the cut
     * cannot toggle on the estimate's noise. */
    double hyst_lo = p->protect_hyst_pct > 0.1 ? p->protect_hyst_pct : 0.1;
    double hyst_hi = p->full_hyst_pct > 0.1 ? p->full_hyst_pct : 0.1;

    if (!s->charge_cut && (soc_full || v_high || tail)) {
        s->charge_cut = true;
        s->cut_soc_hi = soc >= 0 ? soc : 100;
        s->charge_cut_why = v_high && !soc_full ? CTL_L_VOLTAGE_HIGH : CTL_L_FULL;
    } else if (s->charge_cut && v_high_clear &&
               (soc < 0 || soc <= fmin(s->cut_soc_hi, p->max_soc_pct) - hyst_hi)) {
        s->charge_cut = false;
    }
    /* Charge taken since the empty cut, counted from the measured current (a noisy voltage
     * cannot fake it). Energy a small surplus put back at the bottom may be used again once
     * the estimate shows it (CTL_REUSE_SOC_PCT) and the battery really took it (at least a
     * minute at the minimum current); otherwise it would stay unused below the hysteresis. */
    if (s->discharge_cut && in->telemetry_ms > s->cut_tel_ms) {
        double dt_s = (double)(in->telemetry_ms - s->cut_tel_ms) / 1000.0;
        if (in->dc_a > 0 && dt_s < 10)
            s->cut_charge_as += in->dc_a * dt_s;
        s->cut_tel_ms = in->telemetry_ms;
    }
    bool reuse = s->discharge_cut_why == CTL_L_EMPTY && soc >= p->min_soc_pct + CTL_REUSE_SOC_PCT &&
                 s->cut_charge_as >= 60.0 * p->min_current_ca / 100.0;
    if (!s->discharge_cut && (soc_empty || v_low)) {
        s->discharge_cut = true;
        s->cut_soc_lo = soc >= 0 ? soc : 0;
        s->discharge_cut_why = v_low && !soc_empty ? CTL_L_VOLTAGE_LOW : CTL_L_EMPTY;
        s->cut_charge_as = 0;
        s->cut_tel_ms = in->telemetry_ms;
    } else if (s->discharge_cut && v_low_clear &&
               (soc < 0 || soc >= p->min_soc_pct + hyst_lo || reuse)) {
        s->discharge_cut = false;
    }
    if (s->charge_cut)
        *charge_why = s->charge_cut_why;
    if (s->discharge_cut)
        *discharge_why = s->discharge_cut_why;
}
