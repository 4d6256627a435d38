"""state/set 0 as the seed's: the output off and the idle set-points (both currents at the
device's minimum, direction charge), never refused because the controller holds the device,
and the controller paused (no setpoint, no lease) until state/set 1 (output on, the controller
resumes) or control/set 1; also without a controller. Real processes: mosquitto, bic-sim, the
gateway, the bridge and the controller; the registers are read from the simulator."""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from ctld_stack import Stack  # noqa: E402


def _state_cmd(s, payload):
    """Publishes on state/set; returns the result and how many results came for it."""
    after = time.monotonic()
    s.client.publish(s.topic("inv/0/state/set"), payload, qos=1)
    res = json.loads(s.client.wait_message(s.topic("inv/0/state/set/result"), timeout=15,
                                           after=after))
    time.sleep(2)  # room for a second answer, were there one
    n = len([m for m in s.client.received(s.topic("inv/0/state/set/result")) if m[0] >= after])
    return res, n


def _minimum(s):
    lim = s.gateway_request({"op": "info", "dev": 0})["devices"][0]["limits"]
    return round(lim["iout_a"][0] * 100), round(lim["rev_iout_a"][0] * 100)


def _stopped(s, mins):
    r = s.device()["registers"]
    return (r["OPERATION"] == 0 and r["DIRECTION_CTRL"] == 0 and r["IOUT_SET"] == mins[0]
            and r["REVERSE_IOUT_SET"] == mins[1])


def _ctl_setpoints(s):
    """The gateway's log lines of the controller's setpoints (any mode)."""
    return [ln for ln in s.gateway.output().splitlines()
            if "by 'charge-ctl" in ln and ("setpoint" in ln or "stop by" in ln)]


def test_state_set_0_with_the_controller_running():
    with Stack(start_s=int(12 * 3600)) as s:
        bridge = s.start_bridge()
        s.start_ctl()
        harness.wait_for(s.charging, timeout=30, what="the controller charging")
        mins = _minimum(s)
        assert mins == (90, 90), mins  # 0.9 A both ways on the 24 V model

        # 0: not refused for the controller's lease; the seed's idle set-points, output off
        after = time.monotonic()
        res, n = _state_cmd(s, "0")
        assert res["ok"], res
        assert n == 1, n
        assert res["result"]["mode"] == "stop", res
        assert res["result"]["applied"] == {"operation": 0, "direction": "charge",
                                            "iout_a": 0.9, "rev_iout_a": 0.9}, res
        harness.wait_for(lambda: _stopped(s, mins), timeout=10, what="output off at the minimum")
        # the controller pauses and gives the lease back
        st = s.wait_status(lambda x: x["mode"] == "paused" and not x["lease"]["held"],
                           timeout=10, after=after)
        assert st["enabled"] is True, st
        assert "state/set 1 or control/set 1 resumes" in st["reason"], st
        harness.wait_for(lambda: s.lease() is None, timeout=10, what="lease given back")
        # paused: the meter keeps coming, no setpoint goes out, the output stays off
        sent = len(_ctl_setpoints(s))
        meter_before = len(s.client.received("home/meter/power"))
        time.sleep(6)
        assert len(s.client.received("home/meter/power")) > meter_before + 4
        assert len(_ctl_setpoints(s)) == sent, _ctl_setpoints(s)[sent:]
        assert _stopped(s, mins), s.device()["registers"]
        assert s.status()["mode"] == "paused" and s.lease() is None, s.status()

        # 1: output on, the controller resumes and charges again
        after = time.monotonic()
        res, n = _state_cmd(s, "1")
        assert res["ok"] and n == 1, (res, n)
        s.wait_status(lambda x: x["mode"] == "running" and x["lease"]["held"], timeout=20,
                      after=after)
        harness.wait_for(s.charging, timeout=30, what="charging after state/set 1")

        # paused again; control/set 1 resumes too
        res, n = _state_cmd(s, "{\"val\":0,\"id\":\"x1\"}")
        assert res["ok"] and res["id"] == "x1" and n == 1, (res, n)
        harness.wait_for(lambda: _stopped(s, mins), timeout=10, what="off again")
        s.wait_status(lambda x: x["mode"] == "paused", timeout=10)
        r = s.command("1")
        assert r["ok"] and r["enabled"] is True, r
        harness.wait_for(s.charging, timeout=30, what="charging after control/set 1")
        # a refused state/set changes nothing on either side
        res, n = _state_cmd(s, "off")
        assert not res["ok"] and res["error"]["code"] == "bad_request" and n == 1, (res, n)
        assert s.status()["mode"] == "running" and s.device()["output_on"], s.status()
        assert bridge.alive() and s.ctl.alive() and s.gateway.alive()


def test_a_stop_the_controller_did_not_hear_of_holds_it_off():
    """A person's stop that reached the gateway but not the controller (away from the broker,
    or started later): the gateway refuses its next switch-on (held_off) and it pauses."""
    with Stack(start_s=int(12 * 3600)) as s:
        s.start_ctl()
        harness.wait_for(s.charging, timeout=30, what="the controller charging")
        mins = _minimum(s)
        after = time.monotonic()
        r = s.gateway_request({"op": "setpoint", "dev": 0, "client": "a-person", "mode": "stop",
                               "manual": True})
        assert r["ok"], r
        info = s.gateway_request({"op": "info", "dev": 0})["devices"][0]
        assert info["held_off"] == "a-person" and info["lease"]["holder"].startswith(
            "charge-ctl"), info
        st = s.wait_status(lambda x: x["mode"] == "paused", timeout=30, after=after)
        assert st["enabled"] is True, st
        harness.wait_for(lambda: s.lease() is None, timeout=10, what="lease given back")
        assert _stopped(s, mins), s.device()["registers"]
        s.ctl.wait_output("held_off", timeout=5)
        # another client's switch-on is refused the same way; a person's on is not
        r = s.gateway_request({"op": "setpoint", "dev": 0, "client": "other", "mode": "charge",
                               "current_a": 5, "lease_ttl_s": 5})
        assert not r["ok"] and r["error"]["code"] == "held_off", r
        assert "'a-person'" in r["error"]["message"], r
        # control/set 1: the controller resumes and switches the output on again
        r = s.command("1")
        assert r["ok"] and r["enabled"] is True, r
        harness.wait_for(s.charging, timeout=30, what="charging after control/set 1")
        assert s.gateway_request({"op": "info", "dev": 0})["devices"][0]["held_off"] is None


def test_state_set_0_without_a_controller():
    with Stack(start_s=int(12 * 3600)) as s:
        bridge = s.start_bridge()
        mins = _minimum(s)
        # a person discharges by hand (the bridge's manual hold)
        after = time.monotonic()
        s.client.publish(s.topic("inv/0/charge/set"), '{"var":"chargeA","val":-5}', qos=1)
        res = json.loads(s.client.wait_message(s.topic("inv/0/charge/set/result"), timeout=15,
                                               after=after))
        assert res["ok"], res
        harness.wait_for(lambda: s.device()["registers"]["DIRECTION_CTRL"] == 1
                         and s.device()["registers"]["OPERATION"] == 1, timeout=10,
                         what="discharging")

        res, n = _state_cmd(s, "0")
        assert res["ok"] and n == 1, (res, n)
        harness.wait_for(lambda: _stopped(s, mins), timeout=10,
                         what="off, both currents at the minimum, direction charge")
        # a repeated 0 writes nothing
        writes = s.sim.control.eeprom_writes(0)
        res, n = _state_cmd(s, "0")
        assert res["ok"] and res["result"]["writes"] == 0 and n == 1, (res, n)
        assert s.sim.control.eeprom_writes(0) == writes

        res, n = _state_cmd(s, "1")
        assert res["ok"] and n == 1, (res, n)
        harness.wait_for(lambda: s.device()["registers"]["OPERATION"] == 1, timeout=10,
                         what="output on")
        r = s.device()["registers"]
        assert r["DIRECTION_CTRL"] == 0 and r["IOUT_SET"] == mins[0], r
        assert bridge.alive() and s.gateway.alive()


if __name__ == "__main__":
    harness.run_tests()
