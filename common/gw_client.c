/*  gw_client: gateway REQ client (implementation in progress). */
#include "gw_client.h"

gw_client_t *gw_client_new(const char *endpoint, int timeout_ms, int retries)
{
    return NULL;
}

gw_client_t *gw_client_from_config(const struct config_t *cfg, char *err, size_t n)
{
    return NULL;
}

void gw_client_destroy(gw_client_t **self_p)
{
    if (self_p)
        *self_p = NULL;
}

int gw_client_set_curve(gw_client_t *self, const char *server_key, const char *client_cert,
                        char *err, size_t n)
{
    return -1;
}

cJSON *gw_client_call(gw_client_t *self, const cJSON *req, char *err, size_t n)
{
    return NULL;
}

int gw_client_send(gw_client_t *self, const cJSON *req)
{
    return -1;
}

void *gw_client_socket(gw_client_t *self)
{
    return NULL;
}

cJSON *gw_client_recv(gw_client_t *self)
{
    return NULL;
}

bool gw_client_pending(const gw_client_t *self)
{
    return false;
}

int64_t gw_client_deadline(const gw_client_t *self)
{
    return INT64_MAX;
}

int gw_client_expire(gw_client_t *self, int64_t now)
{
    return 0;
}

int gw_client_reset(gw_client_t *self)
{
    return -1;
}

const char *gw_client_endpoint(const gw_client_t *self)
{
    return "";
}

zsock_t *gw_client_sub_new(const char *endpoint, const char *const *prefixes)
{
    return NULL;
}

zsock_t *gw_client_sub_from_config(const struct config_t *cfg, const char *const *prefixes,
                                   char *err, size_t n)
{
    return NULL;
}

cJSON *gw_client_sub_recv(zsock_t *sub, char *topic, size_t topic_len)
{
    return NULL;
}
