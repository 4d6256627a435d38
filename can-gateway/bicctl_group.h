/*
 * bicctl_group - the groups `bicctl status` shows: the devices whose control leases one
 * bic-charge-ctl instance holds. A controller over a group ([CHARGE_CONTROL] Id/X/Devices,
 * docs/charge-ctl.md 1.5) takes one lease per device, named charge-ctl-<X>-<pid> for X and
 * charge-ctl-<X>-<pid>-u<Y> for device Y; bicctl talks to the gateway only, so the leases
 * are where it sees the group, and each device's registers say its setpoint and output.
 * Pure, as bicctl_cmd.
 */
#ifndef BICCTL_GROUP_H
#define BICCTL_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cJSON.h>

/* Parses a lease holder's name as a group controller's: true for charge-ctl-<X>-<pid> or
 * charge-ctl-<X>-<pid>-u<Y> (X, Y 0-67, pid 1-9 digits), with X in *ctl and the instance's name
 * (charge-ctl-<X>-<pid>) in inst. */
bool bicctl_group_holder(const char *holder, int *ctl, char *inst, size_t instlen);

/* The groups among devs[0..n-1] (info's device objects, gets[k] the get reply of devs[k] or
 * NULL): every instance holding the leases of two or more devices. Plain: a block per group,
 * nothing without one. JSON: an array of {"controller":X,"holder":NAME,"devices":[{"dev":D,
 * "mode":"charge"|"discharge"|"off"|null,"current_set_a":A|null,"dc_v":V|null,"dc_a":A|null,
 * "power_w":W|null}]} (new, the caller frees; empty without a group). */
void bicctl_group_print(FILE *out, const cJSON *const *devs, const cJSON *const *gets, size_t n);
cJSON *bicctl_group_json(const cJSON *const *devs, const cJSON *const *gets, size_t n);

#endif
