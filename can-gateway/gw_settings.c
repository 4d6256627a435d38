/*
 * The gateway's settings: see gw_settings.h.
 */
#include "gw_settings.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <czmq.h>

#include "can_transport.h"
#include "gateway.h"
#include "gw_auth.h"

/* [NPB] DcOkPolarity and CurrentMinPct: the disputed points, one setting for the family,
 * given to every NPB slot (configured or found by discover). */
static int s_read_npb_options(const config_t *cfg, settings_t *s, char *err, size_t errlen)
{
    npb_options_t o;
    npb_options_default(&o);
    const char *pol = config_str(cfg, "NPB", "DcOkPolarity");
    char why[200];
    if (npb_dcok_parse(pol, &o.dc_ok) != 0) {
        snprintf(err, errlen, "[NPB] DcOkPolarity: '%s' is not a polarity; allowed: normal, low",
                 pol);
        return -1;
    }
    o.iout_min_pct = (int)config_int(cfg, "NPB", "CurrentMinPct");
    if (npb_options_validate(&o, why, sizeof why) != 0) {
        snprintf(err, errlen, "[NPB] CurrentMinPct: %s", why);
        return -1;
    }
    for (int a = 0; a < GW_NPB_COUNT; a++)
        s->dev[GW_NPB_BASE + a].npb_opts = o;
    return 0;
}

/* [NPB] Id/X/...: the NPB charger at CAN address X (0-3) is device number 64 + X. */
static int s_read_npb(const config_t *cfg, settings_t *s, char *err, size_t errlen)
{
    if (s_read_npb_options(cfg, s, err, errlen) != 0)
        return -1;
    int ids[GW_DEV_MAX];
    size_t n = config_ids(cfg, "NPB", ids, GW_DEV_MAX);
    for (size_t i = 0; i < n && i < GW_DEV_MAX; i++) {
        int a = ids[i];
        if (a < 0 || a >= GW_NPB_COUNT) {
            snprintf(err, errlen,
                     "[NPB] Id/%d/: %d is not an NPB address; allowed: 0-%d (the address pins; "
                     "3 with both open)",
                     a, a, GW_NPB_COUNT - 1);
            return -1;
        }
        gw_dev_cfg_t *d = &s->dev[GW_NPB_BASE + a];
        d->present = true;
        snprintf(d->type, sizeof d->type, "%s", config_str(cfg, "NPB", "Id/%d/Type", a));
        d->npb_type = NULL;
        if (d->type[0]) {
            d->npb_type = npb_model_by_name(d->type);
            if (!d->npb_type) {
                snprintf(err, errlen,
                         "[NPB] Id/%d/Type: '%s' is not a known NPB model; allowed: "
                         "NPB-450/750/1200/1700 with -12, -24 or -48 (e.g. NPB-1200-24), or empty",
                         a, d->type);
                return -1;
            }
        }
        d->charge_v_raw = config_has(cfg, "NPB", "Id/%d/ChargeVoltage", a)
                              ? (int)config_int(cfg, "NPB", "Id/%d/ChargeVoltage", a)
                              : 0;
        d->max_charge_raw = config_has(cfg, "NPB", "Id/%d/MaxChargeCurrent", a)
                                ? (int)config_int(cfg, "NPB", "Id/%d/MaxChargeCurrent", a)
                                : 0;
    }
    return 0;
}

int gw_settings_read(const config_t *cfg, settings_t *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    snprintf(s->can, sizeof s->can, "%s", config_str(cfg, "GATEWAY", "Can"));
    snprintf(s->req_ep, sizeof s->req_ep, "%s", config_str(cfg, "GATEWAY", "ReqEndpoint"));
    snprintf(s->pub_ep, sizeof s->pub_ep, "%s", config_str(cfg, "GATEWAY", "PubEndpoint"));
    snprintf(s->curve_key, sizeof s->curve_key, "%s",
             config_str(cfg, "GATEWAY", "CurveSecretKeyFile"));
    snprintf(s->state_dir, sizeof s->state_dir, "%s", config_str(cfg, "GATEWAY", "StateDir"));
    snprintf(s->curve_clients, sizeof s->curve_clients, "%s",
             config_str(cfg, "GATEWAY", "CurveClientsDir"));
    snprintf(s->curve_ro_clients, sizeof s->curve_ro_clients, "%s",
             config_str(cfg, "GATEWAY", "CurveReadOnlyClientsDir"));
    s->tel_period_ms = (int)config_int(cfg, "GATEWAY", "TelemetryPeriodMs");
    s->timeout_ms = (int)config_int(cfg, "GATEWAY", "ResponseTimeoutMs");
    s->retries = (int)config_int(cfg, "GATEWAY", "Retries");
    s->offline_after = (int)config_int(cfg, "GATEWAY", "OfflineAfterTimeouts");
    s->discover = config_bool(cfg, "GATEWAY", "Discover");
    s->bcast = config_bool(cfg, "GATEWAY", "BroadcastWrites");
    s->idle_min = strcasecmp(config_str(cfg, "GATEWAY", "IdleState"), "min") == 0;
    const char *ss = config_str(cfg, "GATEWAY", "SafeState");
    s->safe_state = strcasecmp(ss, "min") == 0    ? SAFE_MIN
                    : strcasecmp(ss, "hold") == 0 ? SAFE_HOLD
                                                  : SAFE_OFF;
    s->safe_on_exit = config_bool(cfg, "GATEWAY", "SafeStateOnExit");
    s->apply_limits = config_bool(cfg, "GATEWAY", "ApplyDeviceLimits");
    /* EepromWriteIntervalSec set explicitly keeps the fixed-interval rule (spacing = interval,
     * no daily bucket); otherwise the daily budget with bursts and a minimum spacing */
    if (config_has(cfg, "GATEWAY", "EepromWriteIntervalSec")) {
        static const char *const budget_keys[] = {"EepromWritesPerDay", "EepromBurst",
                                                  "EepromMinSpacingSec", NULL};
        for (int k = 0; budget_keys[k]; k++)
            if (config_has(cfg, "GATEWAY", "%s", budget_keys[k])) {
                snprintf(err, errlen,
                         "[GATEWAY] EepromWriteIntervalSec (line %d) and %s (line %d) both set: "
                         "use either the fixed interval or the daily budget keys "
                         "(EepromWritesPerDay, EepromBurst, EepromMinSpacingSec)",
                         config_line(cfg, "GATEWAY", "EepromWriteIntervalSec"), budget_keys[k],
                         config_line(cfg, "GATEWAY", "%s", budget_keys[k]));
                return -1;
            }
        s->eep_interval_s = (int)config_int(cfg, "GATEWAY", "EepromWriteIntervalSec");
    } else {
        s->eep_interval_s = (int)config_int(cfg, "GATEWAY", "EepromMinSpacingSec");
        s->eep_per_day = (int)config_int(cfg, "GATEWAY", "EepromWritesPerDay");
        s->eep_burst = (int)config_int(cfg, "GATEWAY", "EepromBurst");
    }
    s->lease_max_ttl_s = (int)config_int(cfg, "GATEWAY", "LeaseMaxTtlSec");
    /* the loader validated the ranges; guard against a zero from an absent schema entry */
    if (s->tel_period_ms < 200)
        s->tel_period_ms = 1000;
    if (s->timeout_ms < 10)
        s->timeout_ms = 50;
    if (s->offline_after < 1)
        s->offline_after = 3;
    if (s->lease_max_ttl_s < 1)
        s->lease_max_ttl_s = 3600;

    int ids[GW_DEV_MAX];
    size_t n = config_ids(cfg, "DEVICE", ids, GW_DEV_MAX);
    for (size_t i = 0; i < n && i < GW_DEV_MAX; i++) {
        int a = ids[i];
        if (a < 0 || a >= GW_DEV_MAX)
            continue;
        gw_dev_cfg_t *d = &s->dev[a];
        d->present = true;
        snprintf(d->type, sizeof d->type, "%s", config_str(cfg, "DEVICE", "Id/%d/Type", a));
        d->type_variant = gw_type_variant(d->type);
        if (d->type_variant < 0) {
            snprintf(err, errlen,
                     "[DEVICE] Id/%d/Type: '%s' is not a known type; allowed: BIC2200-12CAN, "
                     "BIC2200-24CAN, BIC2200-48CAN, BIC2200-96CAN or empty",
                     a, d->type);
            return -1;
        }
        d->charge_v_raw = (int)config_int(cfg, "DEVICE", "Id/%d/ChargeVoltage", a);
        d->discharge_v_raw = (int)config_int(cfg, "DEVICE", "Id/%d/DischargeVoltage", a);
        d->max_charge_raw = (int)config_int(cfg, "DEVICE", "Id/%d/MaxChargeCurrent", a);
        d->max_discharge_raw = (int)config_int(cfg, "DEVICE", "Id/%d/MaxDischargeCurrent", a);
        d->min_current_raw = config_has(cfg, "DEVICE", "Id/%d/MinCurrent", a)
                                 ? (int)config_int(cfg, "DEVICE", "Id/%d/MinCurrent", a)
                                 : 0;
    }
    return s_read_npb(cfg, s, err, errlen);
}

/* tcp://HOST:PORT with HOST not a loopback address needs CURVE. */
static bool s_endpoint_needs_curve(const char *ep)
{
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *h = ep + 6;
    if (strncmp(h, "127.", 4) == 0 || strncmp(h, "localhost:", 10) == 0 ||
        strncmp(h, "[::1]:", 6) == 0 || strncmp(h, "lo:", 3) == 0)
        return false;
    return true;
}

/* What ZeroMQ can bind a tcp:// endpoint to: a numeric address, `*` or an interface name
 * (a host name is not resolved for a bind), and a port 1-65535 or `*`. */
static int s_check_tcp_bind(const char *key, const char *ep, char *err, size_t errlen)
{
    const char *hp = ep + 6;
    const char *colon = strrchr(hp, ':');
    char host[128];
    size_t hlen = colon ? (size_t)(colon - hp) : 0;
    if (!colon || hlen == 0 || hlen >= sizeof host) {
        snprintf(err, errlen, "[GATEWAY] %s: '%s' has no HOST:PORT; allowed: tcp://ADDRESS:PORT",
                 key, ep);
        return -1;
    }
    memcpy(host, hp, hlen);
    host[hlen] = '\0';
    const char *port = colon + 1;
    char *end = NULL;
    long p = strtol(port, &end, 10);
    if (strcmp(port, "*") != 0 && (end == port || *end || p < 1 || p > 65535)) {
        snprintf(err, errlen, "[GATEWAY] %s: '%s': port '%s'; allowed: 1-65535 or *", key, ep,
                 port);
        return -1;
    }
    unsigned char addr[sizeof(struct in6_addr)];
    bool v6 = hlen > 2 && host[0] == '[' && host[hlen - 1] == ']';
    if (v6)
        host[hlen - 1] = '\0';
    if (strcmp(host, "*") == 0 || inet_pton(AF_INET, host, addr) == 1 ||
        (v6 && inet_pton(AF_INET6, host + 1, addr) == 1) || (!v6 && if_nametoindex(host) > 0))
        return 0;
    snprintf(err, errlen,
             "[GATEWAY] %s: '%s': '%s' is neither an address nor a network interface of this "
             "host, and a host name cannot be bound; allowed: an IPv4 address, [IPv6 address], "
             "* or an interface name (e.g. tcp://127.0.0.1:5555)",
             key, ep, hp[0] == '[' ? hp : host);
    return -1;
}

static int s_check_endpoint(const char *key, const char *ep, char *err, size_t errlen)
{
    if (strncmp(ep, "ipc://", 6) != 0 && strncmp(ep, "tcp://", 6) != 0) {
        snprintf(err, errlen,
                 "[GATEWAY] %s: '%s' is not an endpoint; allowed: ipc://PATH, "
                 "tcp://HOST:PORT",
                 key, ep);
        return -1;
    }
    if (strncmp(ep, "tcp://", 6) == 0)
        return s_check_tcp_bind(key, ep, err, errlen);
    return 0;
}

int gateway_check_config(const config_t *cfg, char *err, size_t errlen)
{
    settings_t *s = calloc(1, sizeof *s);
    int rc = -1;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (gw_settings_read(cfg, s, err, errlen) < 0)
        goto cleanup;
    if (s_check_endpoint("ReqEndpoint", s->req_ep, err, errlen) < 0 ||
        s_check_endpoint("PubEndpoint", s->pub_ep, err, errlen) < 0)
        goto cleanup;
    if ((s_endpoint_needs_curve(s->req_ep) || s_endpoint_needs_curve(s->pub_ep)) &&
        !s->curve_key[0]) {
        snprintf(err, errlen,
                 "[GATEWAY] a tcp:// endpoint on a non-loopback address needs "
                 "CurveSecretKeyFile (ReqEndpoint '%s', PubEndpoint '%s')",
                 s->req_ep, s->pub_ep);
        goto cleanup;
    }
    if ((s_endpoint_needs_curve(s->req_ep) || s_endpoint_needs_curve(s->pub_ep)) &&
        !s->curve_clients[0]) {
        snprintf(err, errlen,
                 "[GATEWAY] a tcp:// endpoint on a non-loopback address needs CurveClientsDir: "
                 "the public keys of the clients allowed in (ReqEndpoint '%s', PubEndpoint "
                 "'%s')",
                 s->req_ep, s->pub_ep);
        goto cleanup;
    }
    if ((s->curve_clients[0] || s->curve_ro_clients[0]) && !s->curve_key[0]) {
        snprintf(err, errlen,
                 "[GATEWAY] CurveClientsDir and CurveReadOnlyClientsDir need CurveSecretKeyFile "
                 "(they say which CURVE clients are allowed in)");
        goto cleanup;
    }
    if (s->curve_clients[0] &&
        gw_auth_check_dir("CurveClientsDir", s->curve_clients, err, errlen) < 0)
        goto cleanup;
    if (s->curve_ro_clients[0] &&
        gw_auth_check_dir("CurveReadOnlyClientsDir", s->curve_ro_clients, err, errlen) < 0)
        goto cleanup;
    if (s->curve_key[0]) {
        zcert_t *cert = zcert_load(s->curve_key);
        if (!cert) {
            snprintf(err, errlen, "[GATEWAY] CurveSecretKeyFile: cannot load zcert file '%s'",
                     s->curve_key);
            goto cleanup;
        }
        zcert_destroy(&cert);
    }
    can_transport_spec_t spec;
    if (can_transport_parse_spec(s->can, &spec, err, errlen) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    free(s);
    return rc;
}
