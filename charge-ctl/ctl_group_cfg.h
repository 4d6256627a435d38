/*
 * ctl_group_cfg: a controller's group of devices from the configuration.
 *
 * [CHARGE_CONTROL] Id/X/Devices lists the devices one controller drives as a group
 * (comma-separated device addresses, X among them); without it the group is X alone, as
 * before. [DEVICE] Id/Y/Battery says which battery device Y sits on (devices with the same
 * number share one; different numbers: separate batteries, SOC-balanced). Id/X/Group/...
 * tune the dispatch (ctl_group.h).
 */
#ifndef CTL_GROUP_CFG_H
#define CTL_GROUP_CFG_H

#include <stddef.h>

#include "ctl_group.h"

struct config_t; /* common/config.h */

typedef struct {
    int n;                      /* devices in the group, 1..CTL_GROUP_MAX */
    int dev[CTL_GROUP_MAX];     /* their addresses, in the listed order */
    int battery[CTL_GROUP_MAX]; /* [DEVICE] Id/Y/Battery */
    int max_charge_ca[CTL_GROUP_MAX];
    int max_discharge_ca[CTL_GROUP_MAX];
    int min_current_ca[CTL_GROUP_MAX];
    ctl_group_params_t params;
} ctl_group_cfg_t;

/* The group of controller id. Returns 0, or -1 with a message naming the key, what was
 * wrong and what is allowed. */
int ctl_group_cfg_from_config(const struct config_t *cfg, int id, ctl_group_cfg_t *g, char *err,
                              size_t errlen);

#endif
