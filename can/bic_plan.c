/* bic_plan: setpoint -> register writes in order (see bic_plan.h). */
#include "bic_plan.h"

#include "bic_proto.h"
#include "npb_proto.h"

int bic_setpoint_plan(bic_plan_mode_t mode, const bic_plan_args_t *a,
                      bic_plan_write_t out[BIC_PLAN_MAX])
{
    int n = 0;
    switch (mode) {
    case BIC_PLAN_CHARGE:
    case BIC_PLAN_DISCHARGE: {
        bool charge = mode == BIC_PLAN_CHARGE;
        out[n++] = (bic_plan_write_t){charge ? BIC_CMD_IOUT_SET : BIC_CMD_REVERSE_IOUT_SET,
                                      a->current_raw};
        out[n++] = (bic_plan_write_t){BIC_CMD_DIRECTION_CTRL, charge ? 0 : 1};
        out[n++] = (bic_plan_write_t){BIC_CMD_OPERATION, 1};
        if (!a->keep_other)
            out[n++] = (bic_plan_write_t){charge ? BIC_CMD_REVERSE_IOUT_SET : BIC_CMD_IOUT_SET,
                                          charge ? a->discharge_min_raw : a->charge_min_raw};
        return n;
    }
    case BIC_PLAN_IDLE_OFF:
        out[n++] = (bic_plan_write_t){BIC_CMD_IOUT_SET, a->charge_min_raw};
        out[n++] = (bic_plan_write_t){BIC_CMD_REVERSE_IOUT_SET, a->discharge_min_raw};
        out[n++] = (bic_plan_write_t){BIC_CMD_OPERATION, 0};
        return n;
    case BIC_PLAN_IDLE_MIN:
        out[n++] = (bic_plan_write_t){BIC_CMD_REVERSE_IOUT_SET, a->discharge_min_raw};
        out[n++] = (bic_plan_write_t){BIC_CMD_IOUT_SET, a->charge_min_raw};
        out[n++] = (bic_plan_write_t){BIC_CMD_DIRECTION_CTRL, 0};
        out[n++] = (bic_plan_write_t){BIC_CMD_OPERATION, 1};
        return n;
    case BIC_PLAN_STOP:
        out[n++] = (bic_plan_write_t){BIC_CMD_IOUT_SET, a->charge_min_raw};
        out[n++] = (bic_plan_write_t){BIC_CMD_REVERSE_IOUT_SET, a->discharge_min_raw};
        out[n++] = (bic_plan_write_t){BIC_CMD_OPERATION, 0};
        out[n++] = (bic_plan_write_t){BIC_CMD_DIRECTION_CTRL, 0};
        return n;
    case BIC_PLAN_OFF:
        out[n++] = (bic_plan_write_t){BIC_CMD_OPERATION, 0};
        return n;
    case BIC_PLAN_STANDBY_CHARGE:
    case BIC_PLAN_STANDBY_DISCHARGE: {
        bool charge = mode == BIC_PLAN_STANDBY_CHARGE;
        out[n++] = (bic_plan_write_t){BIC_CMD_OPERATION, 0};
        out[n++] = (bic_plan_write_t){charge ? BIC_CMD_IOUT_SET : BIC_CMD_REVERSE_IOUT_SET,
                                      a->current_raw};
        out[n++] = (bic_plan_write_t){charge ? BIC_CMD_REVERSE_IOUT_SET : BIC_CMD_IOUT_SET,
                                      charge ? a->discharge_min_raw : a->charge_min_raw};
        out[n++] = (bic_plan_write_t){BIC_CMD_DIRECTION_CTRL, charge ? 0 : 1};
        return n;
    }
    }
    return -1;
}

bool bic_write_toward_safety(uint16_t cmd, int32_t old_raw, int32_t new_raw)
{
    switch (cmd) {
    case BIC_CMD_OPERATION:
        return old_raw != 0 && new_raw == 0;
    case BIC_CMD_VOUT_SET:
    case BIC_CMD_IOUT_SET:
    case BIC_CMD_REVERSE_IOUT_SET:
    case NPB_CMD_CURVE_CC:
        return new_raw < old_raw;
    case BIC_CMD_REVERSE_VOUT_SET:
        return new_raw > old_raw;
    default:
        return false;
    }
}
