/*
 * ctl_group_cfg: a controller's group of devices from the configuration.
 *
 * [CHARGE_CONTROL] Id/X/Devices lists the devices one controller drives as a group
 * (comma-separated, X among them); without it the group is X alone, as before. A device is
 * Y, the address Y on the gateway of [GATEWAY] ReqEndpoint/PubEndpoint (gateway 0), or Y@G,
 * the address Y on gateway G (1-7) of [GATEWAY] Gw/G/ReqEndpoint, PubEndpoint and
 * CurveServerPublicKey, whose limits are [DEVICE] Id/Y@G/... (devices on two buses may share
 * an address). X is on gateway 0. [DEVICE] Id/Y/Battery (Id/Y@G/Battery) says which battery
 * a device sits on (devices with the same number share one; different numbers: separate
 * batteries, SOC-balanced). Id/X/Group/... tune the dispatch (ctl_group.h).
 */
#ifndef CTL_GROUP_CFG_H
#define CTL_GROUP_CFG_H

#include <stddef.h>

#include "ctl_group.h"

struct config_t; /* common/config.h */

typedef struct {
    int n;                      /* devices in the group, 1..CTL_GROUP_MAX */
    int dev[CTL_GROUP_MAX];     /* their addresses, in the listed order */
    int gw[CTL_GROUP_MAX];      /* the gateway each is on (0: [GATEWAY]'s own endpoints) */
    int n_gw;                   /* the highest gateway number used + 1 */
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

/* Member i as the configuration names it: "Y" or "Y@G". */
const char *ctl_group_member_name(const ctl_group_cfg_t *g, int i, char *buf, size_t n);

#endif
