"""An idle setpoint's preset (a unit on standby holding the running units' current with its
output off) against the real bic-sim with three devices on one bus and the real gateway: with
BroadcastWrites = 1 and one controller instance leasing all three, devices 0 and 1 charging
and device 2 on standby, the charge setpoints of 0 and 1 and the preset of 2 with the same
current go as ONE frame to the broadcast ID 0x000C03FF; device 2's output stays off and
carries no current, its reply says "preset": true. A running unit given a preset switches its
output off before its current changes; a discharging group's preset changes the standby
unit's direction with its output off; a unit a person stopped takes a preset and stays held
off. With the broadcast set off (a device not leased, the key off) or IdleState = min the
same request is a plain idle ("preset": false and the reason), which leaves device 2's
IOUT_SET at its minimum. Refusals of a wrong preset come from the real gateway with their
codes."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import (BROADCAST_ID, GROUP_HOLDERS as GROUP, IOUT_SET,  # noqa: E402
                    GROUP_SIM_DEVS as DEVS, Gateway, assert_no_pacing_violations,
                    group_ini, setpoints_together, write_frames)

REVERSE_IOUT_SET = 0x0130


def _charge(current_a):
    return {"mode": "charge", "current_a": current_a, "lease_ttl_s": 120}


def _preset(current_a):
    return {"mode": "idle", "preset": "charge", "current_a": current_a, "lease_ttl_s": 120}


def _standby_start(gw, sim):
    """All three charging at 5 A (the group's leases taken), then device 2 on standby with a
    plain idle; returns device 2's IOUT_SET minimum as the idle left it."""
    setpoints_together(gw.req, [(GROUP[a], dict(_charge(5.0), dev=a)) for a in range(3)])
    r = gw.client.ok("setpoint", dev=2, client=GROUP[2], mode="idle", lease_ttl_s=120)
    assert "preset" not in r, r
    d2 = sim.control.device(2)
    assert d2["registers"]["OPERATION"] == 0 and not d2["output_on"], d2
    assert d2["registers"]["IOUT_SET"] < 500, d2
    return d2["registers"]["IOUT_SET"]


def _assert_standby(sim, iout_raw):
    d2 = sim.control.device(2)
    assert d2["registers"]["OPERATION"] == 0 and not d2["output_on"], d2
    assert abs(d2["dc_a"]) < 0.05, d2
    assert d2["registers"]["IOUT_SET"] == iout_raw, d2


def test_preset_lets_the_group_go_as_one_frame():
    tmp = harness.temp_dir()
    with harness.Sim(devices=DEVS) as sim:
        with Gateway(group_ini(sim, tmp, 1), tmp) as gw:
            iout_min = _standby_start(gw, sim)
            eep = gw.client.ok("eeprom", dev=2)["eeprom"]["writes"].get("IOUT_SET", 0)
            calls = [(GROUP[0], dict(_charge(8.5), dev=0)), (GROUP[1], dict(_charge(8.5), dev=1)),
                     (GROUP[2], dict(_preset(8.5), dev=2))]
            r0, r1, r2 = setpoints_together(gw.req, calls)
            # the preset's write is a controller's like any other: device 2's budget counts it
            assert gw.client.ok("eeprom", dev=2)["eeprom"]["writes"]["IOUT_SET"] == eep + 1
            assert "preset" not in r0 and "preset" not in r1, (r0, r1)
            assert r2["preset"] is True and "preset_skipped" not in r2, r2
            assert r2["mode"] == "idle", r2
            assert r2["applied"]["operation"] == 0, r2
            assert r2["applied"]["direction"] == "charge", r2
            assert abs(r2["applied"]["iout_a"] - 8.5) < 0.005, r2
            frames = write_frames(sim, IOUT_SET, 850)
            assert frames == {BROADCAST_ID: 1}, (frames, sim.control.frames(40))
            _assert_standby(sim, 850)
            for a in (0, 1):
                d = sim.control.device(a)
                assert d["output_on"] and d["registers"]["IOUT_SET"] == 850, d

            # refusals: the current outside the direction's limits, a wrong preset
            e = gw.client.error("setpoint", "out_of_range", dev=2, client=GROUP[2], mode="idle",
                                preset="charge", current_a=99)
            assert e["max"] == 30.0 and e["unit"] == "A", e
            assert "IOUT_SET 99 A" in e["message"], e
            e = gw.client.error("setpoint", "out_of_range", dev=2, client=GROUP[2], mode="idle",
                                preset="discharge", current_a=26)
            assert e["max"] == 25.0 and "REVERSE_IOUT_SET" in e["message"], e
            e = gw.client.error("setpoint", "bad_request", dev=2, client=GROUP[2], mode="idle",
                                preset="up", current_a=8.5)
            assert "'preset' must be \"charge\" or \"discharge\"" in e["message"], e
            e = gw.client.error("setpoint", "bad_request", dev=2, client=GROUP[2],
                                mode="charge", preset="charge", current_a=8.5)
            assert "only for mode \"idle\"" in e["message"], e
            e = gw.client.error("setpoint", "bad_request", dev=2, client=GROUP[2], mode="idle",
                                preset="charge", power_w=200)
            assert "not 'power_w'" in e["message"], e
            e = gw.client.error("setpoint", "bad_request", dev=2, client=GROUP[2], mode="idle",
                                preset="charge")
            assert "'preset' needs 'current_a'" in e["message"], e
            _assert_standby(sim, 850)  # none of them wrote

            # a running unit put on standby with a preset: its output off before the current
            r = gw.client.ok("setpoint", dev=0, client=GROUP[0], **_preset(7.0))
            assert r["preset"] is True and r["applied"]["operation"] == 0, r
            writes = [f["data"].upper() for f in sim.control.frames(512)
                      if f["dir"] == "rx" and f["dlc"] in (3, 4) and f["id"] == "0x000C0300"]
            cur = writes.index("3000BC02")  # IOUT_SET 7 A
            on = max([i for i, w in enumerate(writes[:cur]) if w == "000001"], default=-1)
            assert "000000" in writes[on + 1:cur], writes  # OPERATION 0 after the last 1
            d0 = sim.control.device(0)
            assert not d0["output_on"] and d0["registers"]["IOUT_SET"] == 700, d0

            # a person's stop holds device 2 off; a preset does not switch it on, so it is not
            # refused for the hold, and the hold stays
            gw.client.ok("setpoint", dev=2, client="bicctl-person", mode="stop", manual=True)
            r = gw.client.ok("setpoint", dev=2, client=GROUP[2], **_preset(7.5))
            assert r["preset"] is True, r
            _assert_standby(sim, 750)
            held = {d["dev"]: d["held_off"] for d in gw.client.ok("info")["devices"]}
            assert held[2] == "bicctl-person", held

            # device 1 no longer leased: no broadcast set, the preset is a plain idle
            gw.client.ok("lease", dev=1, client=GROUP[1], action="release")
            r = gw.client.ok("setpoint", dev=2, client=GROUP[2], **_preset(6.0))
            assert r["preset"] is False, r
            assert r["preset_skipped"] == "no broadcast writes: device 1 is not leased", r
            _assert_standby(sim, iout_min)
        log = gw.proc.output()
        assert ("device 2: setpoint idle, preset charge 8.50 A by 'charge-ctl-0-4242-u2'"
                in log), log
        assert ("device 2: setpoint idle by 'charge-ctl-0-4242-u2' (preset charge 6.00 A not "
                "applied: no broadcast writes: device 1 is not leased)" in log), log
        assert_no_pacing_violations(sim)


def test_discharge_preset_with_a_direction_change():
    """The standby unit idled from charging, the group discharging: its REVERSE_IOUT_SET
    write goes with the running units' in one frame, then its direction follows, output off."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=DEVS) as sim:
        with Gateway(group_ini(sim, tmp, 1), tmp) as gw:
            _standby_start(gw, sim)
            discharge = {"mode": "discharge", "current_a": 6.0, "lease_ttl_s": 120}
            preset = {"mode": "idle", "preset": "discharge", "current_a": 6.0, "lease_ttl_s": 120}
            calls = [(GROUP[0], dict(discharge, dev=0)), (GROUP[1], dict(discharge, dev=1)),
                     (GROUP[2], dict(preset, dev=2))]
            r2 = setpoints_together(gw.req, calls)[2]
            assert r2["preset"] is True and r2["applied"]["direction"] == "discharge", r2
            frames = write_frames(sim, REVERSE_IOUT_SET, 600)
            assert frames == {BROADCAST_ID: 1}, frames
            d2 = sim.control.device(2)
            assert d2["registers"]["DIRECTION_CTRL"] == 1, d2
            assert d2["registers"]["OPERATION"] == 0 and not d2["output_on"], d2
            assert abs(d2["dc_a"]) < 0.05, d2
            assert d2["registers"]["REVERSE_IOUT_SET"] == 600, d2
        assert_no_pacing_violations(sim)


def test_preset_skipped_without_broadcast_writes():
    tmp = harness.temp_dir()
    with harness.Sim(devices=DEVS) as sim:
        with Gateway(group_ini(sim, tmp, 0), tmp) as gw:
            iout_min = _standby_start(gw, sim)
            r = gw.client.ok("setpoint", dev=2, client=GROUP[2], **_preset(8.5))
            assert r["preset"] is False, r
            assert "BroadcastWrites = 0" in r["preset_skipped"], r
            _assert_standby(sim, iout_min)
            assert write_frames(sim, IOUT_SET, 850) == {}
        assert_no_pacing_violations(sim)


def test_preset_skipped_when_idle_holds_a_trickle():
    tmp = harness.temp_dir()
    with harness.Sim(devices=DEVS) as sim:
        with Gateway(group_ini(sim, tmp, 1, IdleState="min"), tmp) as gw:
            setpoints_together(gw.req, [(GROUP[a], dict(_charge(5.0), dev=a)) for a in range(3)])
            r = gw.client.ok("setpoint", dev=2, client=GROUP[2], **_preset(8.5))
            assert r["preset"] is False and r["preset_skipped"] == "IdleState = min", r
            d2 = sim.control.device(2)  # the plain idle min: a trickle at the minimum
            assert d2["registers"]["IOUT_SET"] < 500 and d2["output_on"], d2
            assert write_frames(sim, IOUT_SET, 850) == {}
        assert_no_pacing_violations(sim)


if __name__ == "__main__":
    harness.run_tests()
