/*
 * ctl_follow: does the device do what the controller commands? (see ctl_follow.h)
 *
 * In battery mode a BIC-2200 charges CC/CV toward VOUT_SET and discharges toward
 * REVERSE_VOUT_SET; on the wrong side of the setting it runs the other way at up to 5 % of
 * its rated current (docs/bic2200-protocol.md §13). A smaller current than asked is
 * normal at the voltage setting, at the battery's ends and when the unit is hot; a current
 * the other way, or none at all without such a reason, is not.
 */
#include "ctl_follow.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The battery voltage counts as at a voltage setting within 1 % of it (the accuracy of the
 * device's voltage reading and setting). */
#define S_V_NEAR 0.01

static int s_vset(const ctl_params_t *p, const ctl_input_t *in)
{
    return in->vout_set_cv > 0 ? in->vout_set_cv : p->charge_voltage_cv;
}

static int s_rvset(const ctl_params_t *p, const ctl_input_t *in)
{
    return in->rev_vout_set_cv > 0 ? in->rev_vout_set_cv : p->discharge_voltage_cv;
}

/* The battery at or above the charge voltage setting (within S_V_NEAR). */
static bool s_at_vset(const ctl_params_t *p, const ctl_input_t *in)
{
    int vset = s_vset(p, in);
    return vset > 0 && in->dc_v * 100.0 >= vset * (1 - S_V_NEAR);
}

/* The battery at or below the discharge end voltage setting (within S_V_NEAR). */
static bool s_at_rvset(const ctl_params_t *p, const ctl_input_t *in)
{
    int rvset = s_rvset(p, in);
    return rvset > 0 && in->dc_v * 100.0 <= rvset * (1 + S_V_NEAR);
}

static bool s_hot(const ctl_input_t *in)
{
    return (in->temp_valid && in->temp_c >= CTL_FOLLOW_DERATE_C) ||
           (in->fault_raw & CTL_FOLLOW_FAULT_HI_TEMP);
}

static void s_not(ctl_follow_t *out, ctl_follow_cause_t cause)
{
    out->verdict = CTL_FV_NOT_FOLLOWING;
    out->cause = cause;
}

static void s_excused(ctl_follow_t *out, ctl_follow_excuse_t why)
{
    out->verdict = CTL_FV_EXCUSED;
    out->excuse = why;
}

void ctl_follow_judge(const ctl_params_t *p, ctl_mode_t mode, int current_ca, const ctl_input_t *in,
                      double soc_pct, ctl_follow_t *out)
{
    memset(out, 0, sizeof *out);
    out->verdict = CTL_FV_FOLLOWS;
    double min_a = p->min_current_ca / 100.0;
    double a = in->dc_a;

    if (mode == CTL_MODE_IDLE || mode == CTL_MODE_OFF) {
        /* The idle state may keep the minimum current flowing ([GATEWAY] IdleState min). */
        if (fabs(a) <= 1.5 * min_a)
            return;
        /* With the output on, the wrong-side voltage setting makes the 5 % flow. */
        if (a < 0 && in->operation == 1 && in->direction == 0 && s_at_vset(p, in))
            s_not(out, CTL_F_CHARGE_VOLTAGE);
        else if (a > 0 && in->operation == 1 && in->direction == 1 && s_at_rvset(p, in))
            s_not(out, CTL_F_DISCHARGE_VOLTAGE);
        else
            s_not(out, CTL_F_OUTPUT_ON);
        out->opposite = true;
        return;
    }
    if (mode != CTL_MODE_CHARGE && mode != CTL_MODE_DISCHARGE)
        return;

    bool charge = mode == CTL_MODE_CHARGE;
    double flow = charge ? a : -a; /* in the commanded direction */
    /* What the device has been told: a current write not done yet lowers the expectation. */
    int reg = charge ? in->iout_ca : in->rev_iout_ca;
    int expect_ca = reg > 0 && reg < current_ca ? reg : current_ca;
    double expect = expect_ca / 100.0;
    if (flow >= 0.5 * expect)
        return;
    out->opposite = flow <= -min_a;

    if (in->fault_raw & CTL_FOLLOW_FAULT_SHUTDOWN) {
        s_not(out, CTL_F_FAULT);
        return;
    }
    if (in->operation == 0 || (in->fault_raw & CTL_FOLLOW_FAULT_OP_OFF)) {
        s_not(out, CTL_F_OUTPUT_OFF);
        return;
    }
    if (in->direction != (charge ? 0 : 1)) {
        s_not(out, CTL_F_DIRECTION);
        return;
    }
    /* At the voltage setting: the constant-voltage stage tapers the current (excused), and
     * beyond it the 5 % reverse flow runs the other way (not). */
    if (charge ? s_at_vset(p, in) : s_at_rvset(p, in)) {
        if (out->opposite)
            s_not(out, charge ? CTL_F_CHARGE_VOLTAGE : CTL_F_DISCHARGE_VOLTAGE);
        else
            s_excused(out, CTL_FX_CV);
        return;
    }
    if (out->opposite) {
        s_not(out, CTL_F_UNKNOWN);
        return;
    }
    /* The battery's own BMS at the ends of its charge. */
    if (soc_pct >= 0 && (charge ? soc_pct >= fmin(p->max_soc_pct - 2.0, 98.0)
                                : soc_pct <= fmax(p->min_soc_pct + 2.0, 2.0))) {
        s_excused(out, CTL_FX_SOC);
        return;
    }
    if (s_hot(in)) {
        if (flow >= min_a)
            s_excused(out, CTL_FX_DERATING);
        else
            s_not(out, CTL_F_DERATING);
        return;
    }
    if (reg > 0 && reg != current_ca && flow >= 0.5 * expect) {
        s_excused(out, CTL_FX_PENDING);
        return;
    }
    s_not(out, CTL_F_UNKNOWN);
}

bool ctl_follow_cause_gone(const ctl_params_t *p, ctl_follow_cause_t cause, const ctl_input_t *in)
{
    (void)p;
    if (!in->telemetry_valid)
        return false;
    double v_cv = in->dc_v * 100.0;
    switch (cause) {
    case CTL_F_CHARGE_VOLTAGE:
        return in->vout_set_cv > 0 && in->vout_set_cv >= v_cv * (1 + S_V_NEAR);
    case CTL_F_DISCHARGE_VOLTAGE:
        return in->rev_vout_set_cv > 0 && in->rev_vout_set_cv <= v_cv * (1 - S_V_NEAR);
    case CTL_F_FAULT:
        return !(in->fault_raw & CTL_FOLLOW_FAULT_SHUTDOWN);
    default:
        return false;
    }
}

const char *ctl_follow_cause_name(ctl_follow_cause_t cause)
{
    static const char *names[] = {
        [CTL_F_NONE] = "none",
        [CTL_F_CHARGE_VOLTAGE] = "charge_voltage",
        [CTL_F_DISCHARGE_VOLTAGE] = "discharge_voltage",
        [CTL_F_OUTPUT_OFF] = "output_off",
        [CTL_F_FAULT] = "fault",
        [CTL_F_DERATING] = "derating",
        [CTL_F_DIRECTION] = "direction",
        [CTL_F_OUTPUT_ON] = "output_on",
        [CTL_F_UNKNOWN] = "unknown",
    };
    if ((unsigned)cause < sizeof names / sizeof names[0] && names[cause])
        return names[cause];
    return "?";
}

/* The names of the shutdown faults set in raw, comma-separated. */
static void s_fault_names(int raw, char *buf, size_t n)
{
    static const char *names[] = {"fan_fail", "otp",    "ovp",     "olp",   "short",
                                  "ac_fail",  "op_off", "hi_temp", "hv_ovp"};
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned b = 0; b < sizeof names / sizeof names[0]; b++) {
        if (!((unsigned)raw & (1u << b)) || !((1u << b) & CTL_FOLLOW_FAULT_SHUTDOWN))
            continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", names[b]);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
}

void ctl_follow_text(const ctl_params_t *p, ctl_follow_cause_t cause, ctl_mode_t mode,
                     int current_ca, const ctl_input_t *in, char *buf, size_t n)
{
    const char *dir = mode == CTL_MODE_CHARGE ? "charges" : "discharges";
    const char *flow = in->dc_a < 0 ? "discharges" : in->dc_a > 0 ? "charges" : "carries";
    double a = fabs(in->dc_a);
    char faults[64];
    switch (cause) {
    case CTL_F_NONE:
        snprintf(buf, n, "%s", "");
        return;
    case CTL_F_CHARGE_VOLTAGE:
        snprintf(buf, n,
                 "charge voltage setting (VOUT_SET %.2f V) not above the battery voltage "
                 "%.2f V: the device %s at %.2f A instead of charging; raise VOUT_SET "
                 "([DEVICE] ChargeVoltage)",
                 s_vset(p, in) / 100.0, in->dc_v, flow, a);
        return;
    case CTL_F_DISCHARGE_VOLTAGE:
        snprintf(buf, n,
                 "discharge end voltage (REVERSE_VOUT_SET %.2f V) not below the battery voltage "
                 "%.2f V: the device %s at %.2f A instead of discharging; lower REVERSE_VOUT_SET "
                 "([DEVICE] DischargeVoltage)",
                 s_rvset(p, in) / 100.0, in->dc_v, flow, a);
        return;
    case CTL_F_OUTPUT_OFF:
        snprintf(buf, n,
                 "the device's output is off (OPERATION %s%s): check the remote ON/OFF contact "
                 "and CAN control",
                 in->operation == 0 ? "off" : "on",
                 in->fault_raw & CTL_FOLLOW_FAULT_OP_OFF ? ", FAULT_STATUS OP_OFF" : "");
        return;
    case CTL_F_FAULT:
        s_fault_names(in->fault_raw, faults, sizeof faults);
        snprintf(buf, n, "device fault: %s has shut the output down", faults);
        return;
    case CTL_F_DERATING:
        snprintf(buf, n,
                 "temperature derating: %.1f degC inside, the device %s at %.2f A for a "
                 "setpoint of %.2f A",
                 in->temp_valid ? in->temp_c : NAN, flow, a, current_ca / 100.0);
        return;
    case CTL_F_DIRECTION:
        snprintf(buf, n, "DIRECTION_CTRL reads %s, the setpoint %s",
                 in->direction == 1 ? "discharge" : "charge",
                 mode == CTL_MODE_CHARGE ? "charges" : "discharges");
        return;
    case CTL_F_OUTPUT_ON:
        snprintf(buf, n, "the device %s at %.2f A while it should be idle", flow, a);
        return;
    case CTL_F_UNKNOWN:
        snprintf(buf, n,
                 "the device %s at %.2f A for a setpoint that %s at %.2f A; no cause found "
                 "in its telemetry",
                 flow, a, dir, current_ca / 100.0);
        return;
    }
    snprintf(buf, n, "%s", "?");
}
