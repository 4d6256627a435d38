"""Fault injection, part 2: processes frozen (SIGSTOP) past the controller's lease or the
broker's keepalive and then resumed (SIGCONT), and the adapter frozen. Under load, as in
part 1, with the same checks after every scenario (bus audit, EEPROM counters, true device
state, recovery of every process without help). Seeded: BIC_FAULT_SEED reproduces a run."""

import json
import os
import signal
import time

import faultlib
import harness
from faultlib import LEASE_TTL_S, MARGIN_S, T

RESULTS = os.path.join(harness.BUILD_DIR, "tests", "faults", "results-freeze.json")


def _safe(c):
    """Device 0 in the configured safe state `off`: output off, currents at the minimum."""
    d = c.simctl.device(0)
    lim = c.limits[0]
    r = d["registers"]
    return (not d["output_on"] and r["OPERATION"] == 0
            and r["IOUT_SET"] == lim[faultlib.CMD["IOUT_SET"]][0]
            and r["REVERSE_IOUT_SET"] == lim[faultlib.CMD["REVERSE_IOUT_SET"]][0])


def freeze_controller(c):
    t0 = time.monotonic()
    c.ctl.signal(signal.SIGSTOP)
    try:
        harness.wait_for(lambda: c.holder() is None, LEASE_TTL_S + MARGIN_S,
                         what="the lease lapsing")
        harness.wait_for(lambda: not c.simctl.device(0)["output_on"], MARGIN_S,
                         what="the output off")
        off = time.monotonic() - t0
        # Under the EEPROM budget the current writes may come one write interval later.
        harness.wait_for(lambda: _safe(c), MARGIN_S, what="the safe state in the device")
        safe = time.monotonic() - t0
        faultlib.wait_event(c, t0, 0, "lease_lapsed")
        e = faultlib.wait_event(c, t0, 0, "safe_state")
        assert e.get("reason") == "lease lapsed", e
        time.sleep(1.0)  # frozen well past the lease
    finally:
        c.ctl.signal(signal.SIGCONT)
    t1 = time.monotonic()
    rec = c.wait_recovered(t1)
    return rec, ("output off %.1f s, currents at minimum %.1f s after the freeze (TTL %d s); "
                 "control resumed" % (off, safe, LEASE_TTL_S))


def freeze_gateway(c):
    t0 = time.monotonic()
    c.gateway.signal(signal.SIGSTOP)
    try:
        # The controller notices: no confirmed renewal within its lease.
        st = json.loads(c.mqtt.wait_message(
            T + "/inv/0/control", lambda p: json.loads(p).get("mode") == "no_lease",
            timeout=LEASE_TTL_S + MARGIN_S + 5, after=t0))
        time.sleep(max(0.0, t0 + LEASE_TTL_S + 2 - time.monotonic()))
    finally:
        c.gateway.signal(signal.SIGCONT)
    t1 = time.monotonic()
    # Resumed past the lease: the gateway lets it lapse into the safe state, then the
    # controller takes it again.
    faultlib.wait_event(c, t1, 0, "lease_lapsed", timeout=10)
    faultlib.wait_event(c, t1, 0, "safe_state", timeout=10)
    rec = c.wait_recovered(t1)
    return rec, "controller: %s; lease lapsed on resume, taken again" % st.get("reason")


def freeze_bridge(c):
    gw_pid, holder = c.gateway.pid, c.holder()
    t0 = time.monotonic()
    c.bridge.signal(signal.SIGSTOP)
    try:
        # KeepAliveSec 5: the broker gives up after 1.5 keepalives and publishes the will.
        c.mqtt.wait_message(T + "/sys/state", lambda p: p == "offline", timeout=20, after=t0)
        lwt = time.monotonic() - t0
    finally:
        c.bridge.signal(signal.SIGCONT)
    t1 = time.monotonic()
    c.mqtt.wait_message(T + "/sys/state", lambda p: p == "running", timeout=40, after=t1)
    rec = c.wait_recovered(t1)
    assert c.gateway.pid == gw_pid and c.holder() == holder
    return rec, "will `offline` %.1f s after the freeze; reconnected on resume" % lwt


def freeze_adapter(c):
    t0 = time.monotonic()
    c.sim.signal(signal.SIGSTOP)
    try:
        # No replies: both devices go offline after OfflineAfterTimeouts failed requests.
        for dev in (0, 1):
            e = faultlib.wait_event(c, t0, dev, "offline", timeout=15)
            assert e.get("reason"), e
        r = faultlib.gw_request(c.req_ep, {"op": "get", "dev": 0, "reg": "READ_VOUT"})
        assert r and not r["ok"] and r["error"]["code"] in ("device_offline", "bus_down"), r
    finally:
        c.sim.signal(signal.SIGCONT)
    t1 = time.monotonic()
    for dev in (0, 1):
        faultlib.wait_event(c, t1, dev, "online", timeout=20)
    rec = c.wait_recovered(t1)
    return rec, "devices offline (%s), online again on resume" % e["reason"]


SCENARIOS = [
    ("SIGSTOP bic-charge-ctl past its lease, SIGCONT", freeze_controller),
    ("SIGSTOP bic-can-gateway past the lease, SIGCONT", freeze_gateway),
    ("SIGSTOP bic-mqtt-bridge past keepalive, SIGCONT", freeze_bridge),
    ("SIGSTOP bic-sim (adapter hangs), SIGCONT", freeze_adapter),
]


def test_freeze_and_resume():
    seed = faultlib.seed_from_env()
    with faultlib.Chain(seed) as c:
        harness.wait_for(lambda: c.healthy(time.monotonic() - 5), 20, what="chain healthy")
        failures = faultlib.run_scenarios(c, SCENARIOS)
        gw, recv = c.check_all()
        print("load: %d requests, %d replies, %d timeouts; EEPROM writes counted %s, "
              "received %s" % (c.load.sent, c.load.replied, c.load.timeouts, gw, recv))
        faultlib.print_table("fault injection (seed %d)" % seed, c.rows, RESULTS)
        assert not failures, "failed: %s" % ["%s: %s" % (n, e) for n, e in failures]


if __name__ == "__main__":
    harness.run_tests()
