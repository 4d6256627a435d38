"""Fault injection, part 2: processes frozen (SIGSTOP) past the controller's lease or the
broker's keepalive and then resumed (SIGCONT); the adapter frozen; garbage on the slcan line;
a device that answers late (after the gateway's response timeout, some replies twice) and one
that stops answering. Under load, as in part 1, with the same checks after every scenario
(bus audit, EEPROM counters, true device state, recovery of every process without help).
Seeded: BIC_FAULT_SEED reproduces a run."""

import json
import os
import signal
import time

import faultlib
import harness
from faultlib import LEASE_TTL_S, MARGIN_S, T

RESULTS = os.path.join(harness.BUILD_DIR, "tests", "faults", "results-freeze.json")


def _gw(c, timeout=12):
    import zmq
    s = zmq.Context.instance().socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"gw")
    s.connect(c.pub_ep)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if s.poll(200):
                parts = s.recv_multipart()
                if parts[0] == b"gw":
                    return json.loads(parts[1])
        raise harness.HarnessError("no `gw` message within %.0f s" % timeout)
    finally:
        s.close()


def _event(c, after, dev, name, timeout=10):
    return json.loads(c.mqtt.wait_message(
        "%s/inv/%d/event" % (T, dev), lambda p: json.loads(p).get("event") == name,
        timeout=timeout, after=after))


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
        _event(c, t0, 0, "lease_lapsed")
        e = _event(c, t0, 0, "safe_state")
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
    _event(c, t1, 0, "lease_lapsed", timeout=10)
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
            e = _event(c, t0, dev, "offline", timeout=15)
            assert e.get("reason"), e
        r = faultlib.gw_request(c.req_ep, {"op": "get", "dev": 0, "reg": "READ_VOUT"})
        assert r and not r["ok"] and r["error"]["code"] in ("device_offline", "bus_down"), r
    finally:
        c.sim.signal(signal.SIGCONT)
    t1 = time.monotonic()
    for dev in (0, 1):
        _event(c, t1, dev, "online", timeout=20)
    rec = c.wait_recovered(t1)
    return rec, "devices offline (%s), online again on resume" % e["reason"]


GARBAGE = (b"0123456789 !#$%&*+,-./:;<=>?@[]^_{|}~" + bytes(range(0x80, 0x100)) + b"\x00\x01")


def garbage_line(c):
    """Bytes that are no slcan command (no letters, so no line can start with one) written
    to the adapter's line beside the gateway, some ending in CR, some cutting into the
    gateway's next line."""
    before = c.simctl.counters()["adapter"]
    errors_before = _gw(c)["errors"]
    fd = os.open(os.path.join(c.tmp, "can0"), os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    t0 = time.monotonic()
    chunks = 0
    try:
        while time.monotonic() - t0 < 4.0:
            n = c.rng.randint(1, 40)
            chunk = bytes(c.rng.choice(GARBAGE) for _ in range(n))
            if c.rng.random() < 0.6:
                chunk += b"\r"
            try:
                os.write(fd, chunk)
                chunks += 1
            except BlockingIOError:
                pass
            time.sleep(c.rng.uniform(0.01, 0.1))
    finally:
        os.close(fd)
    t1 = time.monotonic()
    after = c.simctl.counters()["adapter"]
    assert after["garbage"] + after["overlong"] > before["garbage"] + before["overlong"], (
        before, after)
    assert c.gateway.alive()
    rec = c.wait_recovered(t1)
    errors = _gw(c)["errors"] - errors_before
    return rec, "%d chunks; adapter counted %d garbage lines, gateway %d errors" % (
        chunks, after["garbage"] - before["garbage"], errors)


def late_replies(c):
    h0 = _gw(c)
    # Late (80 ms, past the 50 ms response timeout) and duplicated replies.
    c.simctl.set(late_pct=30, late_delay_us=80000, dup_pct=20)
    t0 = time.monotonic()
    try:
        time.sleep(6)
        # Requests still work: retried, matched by CAN ID and command.
        r = faultlib.gw_request(c.req_ep, {"op": "get", "dev": 0,
                                           "regs": ["IOUT_SET", "REVERSE_IOUT_SET"]}, 5)
        assert r and r["ok"], r
    finally:
        c.simctl.set(late_pct=0, dup_pct=0, late_delay_us=8000)
    t1 = time.monotonic()
    rec = c.wait_recovered(t1)
    h1 = _gw(c)
    # Late replies are retried; late and duplicated ones arrive unmatched (stray) and are
    # dropped rather than taken for the next request.
    assert h1["retries"] > h0["retries"] and h1["stray"] > h0["stray"], (h0, h1)
    # Every value read through the gateway is the device's (no reply taken for another).
    regs = c.simctl.device(0)["registers"]
    r = faultlib.gw_request(c.req_ep, {"op": "get", "dev": 0,
                                       "regs": ["VOUT_SET", "REVERSE_VOUT_SET"]}, 5)
    assert r["values"]["VOUT_SET"]["raw"] == regs["VOUT_SET"], (r, regs)
    assert r["values"]["REVERSE_VOUT_SET"]["raw"] == regs["REVERSE_VOUT_SET"], (r, regs)
    return rec, "%d timeouts, %d retries, %d stray replies ignored" % (
        h1["timeouts"] - h0["timeouts"], h1["retries"] - h0["retries"],
        h1["stray"] - h0["stray"])


def device_silent(c):
    c.simctl.set(drop_pct=100)
    t0 = time.monotonic()
    try:
        e = _event(c, t0, 0, "offline", timeout=15)
        _event(c, t0, 1, "offline", timeout=15)
        time.sleep(1.0)
    finally:
        c.simctl.set(drop_pct=0)
    t1 = time.monotonic()
    _event(c, t1, 0, "online", timeout=20)
    rec = c.wait_recovered(t1)
    return rec, "offline (%s), online again" % e.get("reason")


SCENARIOS = [
    ("SIGSTOP bic-charge-ctl past its lease, SIGCONT", freeze_controller),
    ("SIGSTOP bic-can-gateway past the lease, SIGCONT", freeze_gateway),
    ("SIGSTOP bic-mqtt-bridge past keepalive, SIGCONT", freeze_bridge),
    ("SIGSTOP bic-sim (adapter hangs), SIGCONT", freeze_adapter),
    ("garbage on the slcan line", garbage_line),
    ("device answers late (30 %, 80 ms) and twice", late_replies),
    ("device stops answering", device_silent),
]


def test_freeze_garbage_late_silent():
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
