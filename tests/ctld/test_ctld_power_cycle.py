"""A device that loses AC power comes back on its stored values: with EEP_OFF the currents the
controller set lived in RAM only, and DIRECTION_CTRL is back to charge. The gateway reports
that in a `power_cycled` event naming the lease holder; bic-charge-ctl, holding the lease,
puts its setpoint back on the device at once, also when the control law would not change it
(here the charge is held at the hour's profile limit, so an unchanged command would never be
sent again)."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from ctld_stack import Stack  # noqa: E402

LIMIT_W = 300  # Id/0/Profile/Hour/0/MaxChargePower, inherited by every hour
BACK_S = 30    # power-up (1.8 s of silence), the gateway's re-identification and re-read,
#                the event, the setpoint: seconds normally; generous for a loaded machine


def _settled(s):
    """The controller charges at the profile limit and the device holds that setpoint."""
    st = s.status()
    if not st or st["mode"] != "running" or st["setpoint"]["mode"] != "charge":
        return None
    if abs(st["setpoint"]["power_w"] - LIMIT_W) > 0.05 * LIMIT_W:
        return None
    regs = s.device()["registers"]
    want = round(st["setpoint"]["current_a"] * 100)
    if regs["DIRECTION_CTRL"] != 0 or regs["OPERATION"] != 1 or regs["IOUT_SET"] != want:
        return None
    return st


def _follows(s, stored):
    """The device holds the controller's charge setpoint (not the stored current) again."""
    st = s.status()
    if not st or st["mode"] != "running" or st["setpoint"]["mode"] != "charge":
        return False
    d = s.device()
    regs = d["registers"]
    want = round(st["setpoint"]["current_a"] * 100)
    return (not d["booting"] and want != stored and regs["OPERATION"] == 1
            and regs["DIRECTION_CTRL"] == 0 and regs["IOUT_SET"] == want)


def _events(s):
    import zmq
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"evt/0")
    sub.connect(s.pub_ep)
    return sub


def _wait_event(sub, name, timeout):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if sub.poll(200):
            topic, body = sub.recv_multipart()
            ev = json.loads(body)
            seen.append(ev.get("event"))
            if ev.get("event") == name:
                return ev
    raise AssertionError("no %s event within %d s (saw %s)" % (name, timeout, seen))


def test_setpoint_reapplied_after_a_power_cycle():
    # Midday: 800-1000 W of surplus, far more than the 300 W the profile lets the battery
    # take, so the controller sits at the limit and its command does not change.
    with Stack(start_s=46920, speed=5,
               ctl={"Id/0/Profile/Hour/0/MaxChargePower": LIMIT_W}) as s:
        # Commissioning with EEP_OFF: the currents the controller sets live in RAM only.
        r = s.gateway_request({"op": "init", "dev": 0, "client": "commissioning"})
        assert r.get("ok") and r["eep_off"] is True, r
        stored = s.device()["eeprom"]["IOUT_SET"]

        s.start_ctl()
        st = harness.wait_for(lambda: _settled(s), timeout=30,
                              what="charging at the profile limit")
        want = round(st["setpoint"]["current_a"] * 100)
        # The power-up must lose something: the stored current is not the commanded one.
        assert abs(want - stored) > 100, (want, stored)

        # The simulator runs at 5x: 10 s of device boot time are 2 s of silence here, long
        # enough for the gateway to see the device gone (as with a real unit's 1.8 s).
        s.sim.control.set(boot_ms=10000, dev=0)
        sub = _events(s)
        try:
            time.sleep(0.5)  # the subscription reaches the gateway
            cycled = time.monotonic()
            s.sim.control.power_cycle(0)
            ev = _wait_event(sub, "power_cycled", BACK_S)
            print("power_cycled event after %.1f s: %s" % (time.monotonic() - cycled, ev))
        finally:
            sub.close()
        assert "IOUT_SET" in ev["lost"], ev
        assert abs(ev["lost"]["IOUT_SET"]["was"] - want / 100) < 1, ev
        assert ev["lost"]["IOUT_SET"]["now"] == stored / 100, ev
        assert ev["holder"] == st["lease"]["client"], ev

        harness.wait_for(lambda: _follows(s, stored), timeout=BACK_S,
                         what="the device back on the controller's setpoint")
        print("setpoint %.2f A back on the device %.1f s after the power cycle (stored: %.2f A)"
              % (want / 100, time.monotonic() - cycled, stored / 100))
        # It stays there: the controller does not lose track of it afterwards.
        time.sleep(3)
        harness.wait_for(lambda: _follows(s, stored), timeout=BACK_S,
                         what="the device still on the controller's setpoint")
        assert s.ctl.output().count("setpoint re-applied") == 1, s.ctl.output()[-3000:]


if __name__ == "__main__":
    harness.run_tests()
