/*
 * ha_disc: Home Assistant MQTT discovery messages (per-entity discovery) for the bridge
 * device and for each BIC, and the empty retained messages that remove them.
 *
 * Pure: a context and a dev_view in, (topic, payload) pairs out. Topics are
 * `<prefix>/<component>/<node>/<object>/config` with `node` derived from TopicMain so that
 * two installations on one broker do not collide and the ids stay stable across restarts.
 * Payloads use Home Assistant's documented abbreviations (`stat_t`, `uniq_id`, `dev`, ...).
 */
#ifndef HA_DISC_H
#define HA_DISC_H

#include <stdbool.h>
#include <stddef.h>

#include "dev_view.h"

typedef struct {
    const char *prefix;        /* discovery prefix, e.g. "homeassistant" */
    const char *topic_main;    /* <T> */
    const char *node;          /* node id, only [A-Za-z0-9_-] (mqtt_node_id, common/) */
    const char *avail_online;  /* payload on <T>/sys/state while the bridge runs */
    const char *avail_offline; /* the bridge's LWT payload */
    const char *sw_version;    /* origin and bridge device sw_version */
} ha_ctx_t;

typedef struct {
    char *topic;
    char *payload; /* "" removes the entity */
} ha_msg_t;

typedef struct {
    ha_msg_t *msgs;
    size_t count;
    size_t cap;
} ha_list_t;

/* Frees every message and resets the list (the list struct itself is the caller's). */
void ha_list_clear(ha_list_t *list);

/* Appends the bridge device's discovery messages. 0, or -1 on allocation failure. */
int ha_bridge_msgs(const ha_ctx_t *ctx, ha_list_t *out);

/* Appends one BIC's discovery messages. Entities that need data the bridge does not have yet
 * are left out and appear once it is known: numbers need the gateway's limits, fans need
 * `caps.fans`, SOC needs a value from the controller. 0, or -1 on allocation failure. */
int ha_device_msgs(const ha_ctx_t *ctx, const dev_view_t *dv, ha_list_t *out);

/* Appends an empty retained message for every entity a BIC can have (removal). 0 or -1. */
int ha_device_remove_msgs(const ha_ctx_t *ctx, int dev, ha_list_t *out);

/* For a topic under `<prefix>/+/<node>/+/config`: true with *dev set to the BIC's address,
 * or -1 for a bridge entity. False for topics that are not this node's discovery topics. */
bool ha_topic_dev(const ha_ctx_t *ctx, const char *topic, int *dev);

#endif
