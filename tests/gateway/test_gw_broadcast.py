"""Broadcast writes ([GATEWAY] BroadcastWrites) against the real bic-sim with three devices on
one bus: the setpoints of one controller instance's device links (charge-ctl-0-<pid> and
charge-ctl-0-<pid>-u<Y>), sent together with the same current, reach all three devices as one
frame to the broadcast ID 0x000C03FF (the simulator's frame log), each setpoint answered and
read back as written; with device 2 leased by another client, or with the key off, the same
setpoints go as one frame per device and no broadcast frame is sent."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import (BROADCAST_ID, GROUP_HOLDERS as GROUP, IOUT_SET,  # noqa: E402
                    GROUP_SIM_DEVS as DEVS, Gateway, Sub, assert_no_pacing_violations,
                    group_ini, setpoints_together, write_frames)


def _setpoints(gw, sim, current_a, holders=GROUP):
    """The three devices to charge at current_a together; each device's register checked."""
    calls = [(holders[a], {"dev": a, "mode": "charge", "current_a": current_a,
                           "lease_ttl_s": 120}) for a in range(3)]
    for r in setpoints_together(gw.req, calls):
        assert r["applied"]["direction"] == "charge", r
        assert abs(r["applied"]["iout_a"] - current_a) < 0.005, r
    raw = round(current_a * 100)
    for a in range(3):
        assert sim.control.device(a)["registers"]["IOUT_SET"] == raw, a
    return write_frames(sim, IOUT_SET, raw)


def test_group_writes_as_one_broadcast_frame():
    tmp = harness.temp_dir()
    with harness.Sim(devices=DEVS) as sim:
        with Gateway(group_ini(sim, tmp, 1), tmp) as gw:
            sub = Sub(gw.pub, ["gw"])
            _setpoints(gw, sim, 5.0)  # the same state everywhere first
            frames = _setpoints(gw, sim, 7.31)
            assert frames == {BROADCAST_ID: 1}, frames
            frames = _setpoints(gw, sim, 6.02)
            assert frames == {BROADCAST_ID: 1}, frames
            # the health message counts them: a frame each, three requests each
            _, g = sub.wait(lambda t, b: t == "gw" and b.get("broadcasts", 0) >= 2,
                            timeout=15, what="gw health with the broadcasts")
            assert g["broadcast_writes"] == 3 * g["broadcasts"], g
            assert g["broadcast_devs"] == [0, 1, 2], g
            sub.close()
            # device 2 leased by another client: each device gets its own frame
            gw.client.ok("lease", dev=2, client=GROUP[2], action="release")
            gw.client.ok("lease", dev=2, client="bicctl-person", action="take", ttl_s=120)
            harness.wait_for(lambda: "broadcast writes off: device 2 is" in gw.proc.output(),
                             timeout=15, what="broadcast writes off")
            holders = GROUP[:2] + ["bicctl-person"]
            frames = _setpoints(gw, sim, 8.13, holders)
            assert frames == {0x000C0300: 1, 0x000C0301: 1, 0x000C0302: 1}, frames
            gw.client.ok("lease", dev=2, client="bicctl-person", action="release")
            # the group's again: one frame again, once the gateway has seen the group hold
            # all three (a set completed by the last of the setpoints sent together may let the
            # first ones go alone: their wait for partners is 3 ms)
            gw.client.ok("lease", dev=2, client=GROUP[2], action="take", ttl_s=120)
            harness.wait_for(lambda: gw.proc.output().count(
                "broadcast writes on for devices 0,1,2") >= 2, timeout=15,
                what="broadcast writes on again")
            frames = _setpoints(gw, sim, 6.54)
            assert frames == {BROADCAST_ID: 1}, frames
        log = gw.proc.output()
        assert "broadcast writes on for devices 0,1,2" in log, log
        # off for device 2: free, or already held by the person when the gateway next
        # looked (the release and the person's setpoint may come in one batch of requests)
        assert ("broadcast writes off: device 2 is not leased" in log or
                "broadcast writes off: device 2 is leased by bicctl-person" in log), log
        assert_no_pacing_violations(sim)


def test_key_off_no_broadcast():
    tmp = harness.temp_dir()
    with harness.Sim(devices=DEVS) as sim:
        with Gateway(group_ini(sim, tmp, 0), tmp) as gw:
            _setpoints(gw, sim, 5.0)
            frames = _setpoints(gw, sim, 7.31)
            assert frames == {0x000C0300: 1, 0x000C0301: 1, 0x000C0302: 1}, frames
        assert "broadcast writes" not in gw.proc.output()
        assert_no_pacing_violations(sim)


if __name__ == "__main__":
    harness.run_tests()
