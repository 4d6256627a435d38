/*
 * Unit tests of the controller's link to the gateway (ctl_link.h): which request goes out
 * when, as the gateway's replies, timeouts, telemetry and events come in. Lease loss in each
 * of its ways, a gateway that restarts, a device that goes offline and comes back, a power
 * cycle, the stop sequence, and the waits before a request is tried again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_link.h"
#include "log.h"

#define ME "charge-ctl-3-100"
#define TTL_S 30

static const ctl_link_reply_t OK = {.ok = true, .code = "", .msg = ""};

typedef struct {
    ctl_link_t l;
    ctl_link_view_t v;
    int64_t t;
} rig_t;

static ctl_link_send_t s_next(rig_t *r)
{
    return ctl_link_next(&r->l, &r->v, r->t);
}

static unsigned s_reply(rig_t *r, const ctl_link_reply_t *rep)
{
    return ctl_link_reply(&r->l, rep, r->t);
}

static ctl_link_reply_t s_err(const char *code, const char *msg)
{
    return (ctl_link_reply_t){.ok = false, .code = code, .msg = msg};
}

/* A link with telemetry, enabled, that has asked for info and taken the lease. */
static void s_rig(rig_t *r)
{
    memset(r, 0, sizeof *r);
    r->t = 1000000;
    ctl_link_init(&r->l, 3, ME, TTL_S, r->t);
    r->v = (ctl_link_view_t){.tel_alive = true, .enabled = true, .out_mode = CTL_MODE_IDLE};
    assert_int_equal(s_next(r).kind, CTL_LINK_REQ_INFO);
    assert_int_equal(s_reply(r, &OK), CTL_LINK_INFO);
    ctl_link_info_ok(&r->l, r->t);
    assert_int_equal(s_next(r).kind, CTL_LINK_REQ_TAKE);
    r->t += 10;
    assert_int_equal(s_reply(r, &OK), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_true(r->l.lease_held);
    assert_string_equal(r->l.lease_note, "");
}

/* The step wants charge 12.5 A; the gateway confirms it. */
static void s_charging(rig_t *r)
{
    ctl_link_setpoint(&r->l, CTL_MODE_CHARGE, 1250);
    ctl_link_send_t q = s_next(r);
    assert_int_equal(q.kind, CTL_LINK_REQ_SETPOINT);
    assert_int_equal(q.mode, CTL_MODE_CHARGE);
    assert_int_equal(q.ca, 1250);
    assert_int_equal(s_reply(r, &OK), 0);
    assert_int_equal(r->l.acked_mode, CTL_MODE_CHARGE);
}

/* Nothing goes out until `until` (ms from now), then `kind` does. */
static void s_quiet_until(rig_t *r, int64_t until, ctl_link_req_t kind)
{
    int64_t end = r->t + until;
    for (; r->t < end; r->t += 100)
        assert_int_equal(s_next(r).kind, CTL_LINK_REQ_NONE);
    r->t = end;
    assert_int_equal(s_next(r).kind, kind);
}

static void test_take_renew_one_request_at_a_time(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    s_charging(&r);
    /* renewed every TTL/3 from the last confirmation (the setpoint's) */
    s_quiet_until(&r, TTL_S * 1000 / 3, CTL_LINK_REQ_RENEW);
    /* in flight: nothing else, not even a new setpoint */
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 1300);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE);
    assert_int_equal(s_reply(&r, &OK), 0);
    ctl_link_send_t q = s_next(&r);
    assert_int_equal(q.kind, CTL_LINK_REQ_SETPOINT);
    assert_int_equal(q.ca, 1300);
    /* a newer setpoint replaces one not sent yet */
    assert_int_equal(s_reply(&r, &OK), 0);
    r.l.sp_retry_at = r.t + 1000;
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 1400);
    ctl_link_setpoint(&r.l, CTL_MODE_DISCHARGE, 500);
    s_quiet_until(&r, 1000, CTL_LINK_REQ_SETPOINT);
    assert_int_equal(r.l.inflight_mode, CTL_MODE_DISCHARGE);
    assert_int_equal(r.l.inflight_ca, 500);
    /* without the lease the step's setpoints are not taken */
    ctl_link_t l;
    ctl_link_init(&l, 3, ME, TTL_S, 0);
    ctl_link_setpoint(&l, CTL_MODE_CHARGE, 1000);
    assert_false(l.sp_dirty);
}

static void test_lease_loss(void **state)
{
    (void)state;
    rig_t r;
    /* renewal refused */
    s_rig(&r);
    s_charging(&r);
    r.t += TTL_S * 1000 / 3;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_RENEW);
    ctl_link_reply_t e = s_err("lease_held", "held by bicctl");
    assert_int_equal(s_reply(&r, &e), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_false(r.l.lease_held);
    assert_string_equal(r.l.lease_note, "renewal refused: held by bicctl");
    assert_int_equal(r.l.acked_mode, CTL_MODE_NONE);
    s_quiet_until(&r, CTL_LINK_LEASE_RETRY_MS, CTL_LINK_REQ_TAKE);

    /* a setpoint refused for want of the lease */
    s_rig(&r);
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 1000);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    e = s_err("no_lease", "no lease");
    assert_int_equal(s_reply(&r, &e), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_false(r.l.lease_held);

    /* no renewal confirmed within the TTL (replies lost) */
    s_rig(&r);
    r.t += TTL_S * 1000;
    assert_int_equal(ctl_link_tick(&r.l, r.t), 0);
    r.t += 1;
    assert_int_equal(ctl_link_tick(&r.l, r.t), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_string_equal(r.l.lease_note, "no renewal confirmed within the lease TTL");
    assert_int_equal(ctl_link_tick(&r.l, r.t), 0); /* reported once */

    /* the gateway's lease_lapsed event: only ours counts */
    s_rig(&r);
    assert_int_equal(ctl_link_lease_lapsed(&r.l, "bicctl", r.t), 0);
    assert_int_equal(ctl_link_lease_lapsed(&r.l, NULL, r.t), 0);
    assert_true(r.l.lease_held);
    assert_int_equal(ctl_link_lease_lapsed(&r.l, ME, r.t), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_string_equal(r.l.lease_note, "lease lapsed");
}

static void test_gateway_restart(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    s_charging(&r);
    /* telemetry sent before the take still names the old holder (or none): kept */
    assert_int_equal(ctl_link_telemetry(&r.l, true, NULL, r.t + CTL_LINK_HOLDER_GRACE_MS), 0);
    assert_int_equal(ctl_link_telemetry(&r.l, true, ME, r.t + 60000), 0);
    assert_int_equal(ctl_link_telemetry(&r.l, false, NULL, r.t + 60000), 0);
    assert_true(r.l.lease_held);
    /* the restarted gateway's telemetry: the lease is free */
    r.t += 60000;
    assert_int_equal(ctl_link_telemetry(&r.l, true, NULL, r.t), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_false(r.l.lease_held);
    assert_string_equal(r.l.lease_note, "the gateway reports no lease holder");
    s_quiet_until(&r, CTL_LINK_LEASE_RETRY_MS, CTL_LINK_REQ_TAKE);
    assert_int_equal(s_reply(&r, &OK), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_true(r.l.lease_held);
    /* another holder after the restart */
    r.t += 60000;
    assert_int_equal(ctl_link_telemetry(&r.l, true, "bicctl-7", r.t),
                     CTL_LINK_RESET | CTL_LINK_STEP);
    assert_string_equal(r.l.lease_note, "the gateway reports the lease held by bicctl-7");

    /* a gateway that does not answer at all */
    s_rig(&r);
    s_charging(&r);
    r.t += TTL_S * 1000 / 3;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_RENEW);
    assert_int_equal(ctl_link_timeout(&r.l, r.t), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_false(r.l.lease_held);
    assert_string_equal(r.l.lease_note, "gateway not answering");
    s_quiet_until(&r, CTL_LINK_LEASE_RETRY_MS, CTL_LINK_REQ_TAKE);
    assert_int_equal(ctl_link_timeout(&r.l, r.t), 0);
    s_quiet_until(&r, CTL_LINK_LEASE_RETRY_MS, CTL_LINK_REQ_TAKE);
}

/* The connection to the gateway drops (its process killed): the renewal in flight is
 * dropped, the lease counts as lost, a setpoint not sent yet is forgotten; the token is kept
 * for the take once the gateway is back with its saved lease. */
static void test_gateway_disconnected(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 1250);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    ctl_link_reply_t tok = OK;
    tok.token = "0123456789abcdef0123456789abcdef";
    assert_int_equal(s_reply(&r, &tok), 0);
    r.t += TTL_S * 1000 / 3;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_RENEW);
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 2000);
    assert_int_equal(ctl_link_gateway_lost(&r.l, r.t), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_false(r.l.lease_held);
    assert_int_equal(r.l.inflight, CTL_LINK_REQ_NONE);
    assert_false(r.l.sp_dirty);
    assert_int_equal(r.l.acked_mode, CTL_MODE_NONE);
    assert_string_equal(r.l.lease_note, "gateway disconnected");
    assert_string_equal(r.l.token, "0123456789abcdef0123456789abcdef");
    /* a second report changes nothing more */
    assert_int_equal(ctl_link_gateway_lost(&r.l, r.t) & CTL_LINK_STEP, 0);
    /* no telemetry yet: no take */
    r.v.tel_alive = false;
    r.t += CTL_LINK_LEASE_RETRY_MS;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE);
    /* back: the take carries the token */
    r.v.tel_alive = true;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_TAKE);
    assert_string_equal(r.l.token, "0123456789abcdef0123456789abcdef");
    assert_int_equal(s_reply(&r, &tok), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_true(r.l.lease_held);
}

static void test_device_offline_and_back(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    s_charging(&r);
    /* no telemetry: the lease is not renewed, it lapses into the gateway's safe state */
    r.v.tel_alive = false;
    r.v.out_mode = CTL_MODE_NONE;
    for (int64_t end = r.t + TTL_S * 1000; r.t < end; r.t += 500) {
        assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE);
        assert_int_equal(ctl_link_tick(&r.l, r.t), 0);
    }
    r.t += 500;
    assert_int_equal(ctl_link_tick(&r.l, r.t), CTL_LINK_RESET | CTL_LINK_STEP);
    /* and is not taken without telemetry */
    r.t += 10 * CTL_LINK_LEASE_RETRY_MS;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE);
    assert_int_equal(ctl_link_deadline(&r.l, &r.v, r.t + 1000), r.t + 1000);
    /* back: the device's identity is asked for first, then the lease */
    ctl_link_device_online(&r.l, r.t);
    r.v.tel_alive = true;
    assert_true(ctl_link_deadline(&r.l, &r.v, r.t + 1000) <= r.t); /* due now */
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_INFO);
    assert_int_equal(s_reply(&r, &OK), CTL_LINK_INFO);
    ctl_link_info_ok(&r.l, r.t);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_TAKE);
    assert_int_equal(s_reply(&r, &OK), CTL_LINK_RESET | CTL_LINK_STEP);
    s_charging(&r);
}

static void test_power_cycle(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    s_charging(&r);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE); /* unchanged: never resent */
    /* another client's lease (or none): not ours to act on */
    assert_false(ctl_link_power_cycled(&r.l, "bicctl", CTL_MODE_CHARGE, 1250, r.t));
    assert_false(ctl_link_power_cycled(&r.l, NULL, CTL_MODE_CHARGE, 1250, r.t));
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE);
    /* ours: the last command goes out again at once, even right after a refusal's wait */
    r.l.sp_retry_at = r.t + 5000;
    assert_true(ctl_link_power_cycled(&r.l, ME, CTL_MODE_CHARGE, 1250, r.t));
    assert_int_equal(r.l.acked_mode, CTL_MODE_NONE);
    ctl_link_send_t q = s_next(&r);
    assert_int_equal(q.kind, CTL_LINK_REQ_SETPOINT);
    assert_int_equal(q.mode, CTL_MODE_CHARGE);
    assert_int_equal(q.ca, 1250);
    assert_int_equal(s_reply(&r, &OK), 0);
    assert_int_equal(r.l.acked_mode, CTL_MODE_CHARGE);
    /* with nothing commanded there is nothing to send again */
    assert_true(ctl_link_power_cycled(&r.l, ME, CTL_MODE_NONE, 0, r.t));
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE);
    /* without the lease: nothing */
    ctl_link_lease_lapsed(&r.l, ME, r.t);
    assert_false(ctl_link_power_cycled(&r.l, ME, CTL_MODE_CHARGE, 1250, r.t));
}

static void test_stop(void **state)
{
    (void)state;
    rig_t r;
    /* with the lease: idle, then release, then over */
    s_rig(&r);
    s_charging(&r);
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 2000); /* not sent: the stop comes first */
    ctl_link_stop(&r.l, r.t);
    ctl_link_send_t q = s_next(&r);
    assert_int_equal(q.kind, CTL_LINK_REQ_SETPOINT);
    assert_int_equal(q.mode, CTL_MODE_IDLE);
    assert_false(ctl_link_stop_over(&r.l, r.t));
    assert_int_equal(s_reply(&r, &OK), 0);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_RELEASE);
    assert_int_equal(s_reply(&r, &OK), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_false(r.l.lease_held);
    assert_string_equal(r.l.lease_note, "released");
    assert_false(ctl_link_stop_over(&r.l, r.t));
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE);
    assert_true(ctl_link_stop_over(&r.l, r.t));

    /* idle refused: released all the same */
    s_rig(&r);
    ctl_link_stop(&r.l, r.t);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    ctl_link_reply_t e = s_err("busy", "bus busy");
    s_reply(&r, &e);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_RELEASE);

    /* a gateway that does not answer: over after the stop budget, not before */
    s_rig(&r);
    ctl_link_stop(&r.l, r.t);
    int64_t start = r.t;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    assert_int_equal(ctl_link_deadline(&r.l, &r.v, r.t + 60000), start + CTL_LINK_STOP_BUDGET_MS);
    r.t = start + CTL_LINK_STOP_BUDGET_MS - 1;
    assert_false(ctl_link_stop_over(&r.l, r.t));
    r.t++;
    assert_true(ctl_link_stop_over(&r.l, r.t));
    assert_true(r.l.stop_done);

    /* without the lease: over at once, nothing sent */
    ctl_link_t l;
    ctl_link_init(&l, 3, ME, TTL_S, 0);
    l.next_info = 1000000;
    ctl_link_view_t v = {.tel_alive = true, .enabled = true};
    ctl_link_stop(&l, 0);
    assert_int_equal(ctl_link_next(&l, &v, 0).kind, CTL_LINK_REQ_NONE);
    assert_true(ctl_link_stop_over(&l, 0));
}

static void test_retry_backoff(void **state)
{
    (void)state;
    rig_t r;
    /* a refused setpoint: the step starts from idle, the next one waits */
    s_rig(&r);
    s_charging(&r);
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 1500);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    ctl_link_reply_t e = s_err("limit", "above MaxChargeA");
    assert_int_equal(s_reply(&r, &e), CTL_LINK_RESET);
    assert_true(r.l.lease_held);
    assert_int_equal(r.l.acked_mode, CTL_MODE_NONE);
    ctl_link_setpoint(&r.l, CTL_MODE_IDLE, 0);
    assert_int_equal(ctl_link_deadline(&r.l, &r.v, r.t + 60000), r.t + CTL_LINK_SETPOINT_RETRY_MS);
    s_quiet_until(&r, CTL_LINK_SETPOINT_RETRY_MS, CTL_LINK_REQ_SETPOINT);
    assert_int_equal(r.l.inflight_mode, CTL_MODE_IDLE);

    /* a request the socket would not take: everything waits */
    s_rig(&r);
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 1000);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    ctl_link_send_failed(&r.l, r.t);
    assert_int_equal(r.l.inflight, CTL_LINK_REQ_NONE);
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 1000);
    s_quiet_until(&r, CTL_LINK_LEASE_RETRY_MS, CTL_LINK_REQ_INFO);

    /* a lease another client holds: tried again every 2 s, no standby */
    s_rig(&r);
    ctl_link_lease_lapsed(&r.l, ME, r.t);
    s_quiet_until(&r, CTL_LINK_LEASE_RETRY_MS, CTL_LINK_REQ_TAKE);
    e = (ctl_link_reply_t){.code = "lease_held", .msg = "held by bicctl-9", .holder = "bicctl-9"};
    assert_int_equal(s_reply(&r, &e), 0);
    assert_false(r.l.standby);
    assert_string_equal(r.l.lease_note, "held by bicctl-9");
    s_quiet_until(&r, CTL_LINK_LEASE_RETRY_MS, CTL_LINK_REQ_TAKE);
    /* another instance of this controller: standby, still trying */
    e.holder = "charge-ctl-3-200";
    s_reply(&r, &e);
    assert_true(r.l.standby);
    s_quiet_until(&r, CTL_LINK_LEASE_RETRY_MS, CTL_LINK_REQ_TAKE);
    assert_int_equal(s_reply(&r, &OK), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_false(r.l.standby);

    /* info without our device: asked again after the retry time, then after the period */
    assert_int_equal(r.l.next_info, 1000000 + CTL_LINK_INFO_PERIOD_MS);
    r.t = r.l.next_info;
    r.l.renew_at = r.t + 3600000;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_INFO);
    assert_int_equal(s_reply(&r, &OK), CTL_LINK_INFO);
    s_quiet_until(&r, CTL_LINK_INFO_RETRY_MS, CTL_LINK_REQ_INFO);
}

static void test_disabled_releases_when_idle(void **state)
{
    (void)state;
    rig_t r;
    s_rig(&r);
    s_charging(&r);
    r.v.enabled = false;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE); /* still charging */
    ctl_link_setpoint(&r.l, CTL_MODE_IDLE, 0);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    assert_int_equal(s_reply(&r, &OK), 0);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_RELEASE);
    assert_int_equal(s_reply(&r, &OK), CTL_LINK_RESET | CTL_LINK_STEP);
    /* disabled: not taken again */
    r.t += 60000;
    r.l.next_info = r.t + 60000;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_NONE);
}

/* The lease's token: kept from the take's reply (and a setpoint's), kept after a loss so the
 * next take shows it (a gateway that still holds the lease under it carries on), replaced by
 * the next take's, forgotten on release; bad_token ends the lease like lease_held. */
static void test_token(void **state)
{
    (void)state;
    static const char tk1[] = "0123456789abcdef0123456789abcdef";
    static const char tk2[] = "fedcba9876543210fedcba9876543210";
    rig_t r;
    memset(&r, 0, sizeof r);
    r.t = 1000000;
    ctl_link_init(&r.l, 3, ME, TTL_S, r.t);
    r.v = (ctl_link_view_t){.tel_alive = true, .enabled = true, .out_mode = CTL_MODE_IDLE};
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_INFO);
    s_reply(&r, &OK);
    ctl_link_info_ok(&r.l, r.t);
    assert_string_equal(r.l.token, "");
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_TAKE);
    ctl_link_reply_t taken = {.ok = true, .code = "", .msg = "", .token = tk1};
    s_reply(&r, &taken);
    assert_string_equal(r.l.token, tk1);
    /* a setpoint's reply carries the same token; one that is not a token is not kept */
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 1000);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    ctl_link_reply_t odd = {.ok = true, .code = "", .msg = "", .token = "NOT-A-TOKEN"};
    s_reply(&r, &odd);
    assert_string_equal(r.l.token, tk1);
    /* the gateway does not answer (it restarts): the lease is lost here, the token kept */
    r.t += TTL_S * 1000 / 3;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_RENEW);
    ctl_link_timeout(&r.l, r.t);
    assert_false(r.l.lease_held);
    assert_string_equal(r.l.token, tk1);
    r.t += CTL_LINK_LEASE_RETRY_MS;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_TAKE);
    s_reply(&r, &taken); /* the gateway kept it: same token */
    assert_true(r.l.lease_held);
    assert_string_equal(r.l.token, tk1);
    /* someone else's bad_token refusal of our setpoint: the lease is not ours */
    ctl_link_setpoint(&r.l, CTL_MODE_CHARGE, 1100);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    ctl_link_reply_t bad = s_err("bad_token", "device 3: holds the lease under another token");
    assert_int_equal(s_reply(&r, &bad), CTL_LINK_RESET | CTL_LINK_STEP);
    assert_false(r.l.lease_held);
    /* lapsed meanwhile: the take gets a new token, which replaces the old one */
    r.t += CTL_LINK_LEASE_RETRY_MS;
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_TAKE);
    ctl_link_reply_t retaken = {.ok = true, .code = "", .msg = "", .token = tk2};
    s_reply(&r, &retaken);
    assert_string_equal(r.l.token, tk2);
    /* released: forgotten */
    ctl_link_stop(&r.l, r.t);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_SETPOINT);
    s_reply(&r, &OK);
    assert_int_equal(s_next(&r).kind, CTL_LINK_REQ_RELEASE);
    s_reply(&r, &OK);
    assert_string_equal(r.l.token, "");
}

int main(void)
{
    log_set_level(BIC_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_renew_one_request_at_a_time),
        cmocka_unit_test(test_lease_loss),
        cmocka_unit_test(test_gateway_restart),
        cmocka_unit_test(test_gateway_disconnected),
        cmocka_unit_test(test_device_offline_and_back),
        cmocka_unit_test(test_power_cycle),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_retry_backoff),
        cmocka_unit_test(test_disabled_releases_when_idle),
        cmocka_unit_test(test_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
