/*
 * bicctl_npb - bicctl's commands for Mean Well NPB chargers (docs/bicctl.md, "NPB chargers"):
 * the charge curve (curve, cc, cv, fv, tc, the stage timeouts), the mode (chargemode and the
 * seed's NPB_chargemode) and the NPB's lines in info and status. Pure, as bicctl_cmd.
 */
#ifndef BICCTL_NPB_H
#define BICCTL_NPB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cJSON.h>

#include "bicctl_cmd.h"

/* The command table (bicctl_npb_cmds, bicctl_npb_ncmds) is in bicctl_cmd_int.h. */

/* The NPB command's VALUE (see bicctl_cmd_check_value). */
int bicctl_npb_check_value(const bicctl_cmd_t *cmd, const char *text, bicctl_args_t *args,
                           char *err, size_t errlen);
/* The NPB command's next request (see bicctl_next_request). */
cJSON *bicctl_npb_next(const bicctl_cmd_t *cmd, const bicctl_args_t *args, cJSON *const *replies,
                       size_t n);

/* Is the device object of an info reply an NPB? */
bool bicctl_npb_is(const cJSON *device);
/* The registers `status` reads from an NPB. */
extern const char *const bicctl_npb_status_regs[];
/* An NPB's lines of `status` (its get reply; DC_OK read with the polarity in the device
 * object's options) and of `info` and `status` (its device object). */
void bicctl_npb_print_status(FILE *out, const cJSON *device, const cJSON *get);
void bicctl_npb_print_device(FILE *out, const cJSON *device);

#endif
