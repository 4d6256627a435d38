"""One bic-charge-ctl over a group of three devices on one bus with the gateway's broadcast
writes on ([GATEWAY] BroadcastWrites = 1), against the real chain (bic-sim with three BIC-2200
on one pty, bic-can-gateway, the controller, a meter the test closes over the simulated
devices). A household exporting 800 W needs two of the three 20 A units (the group's staging);
the third stays on standby with its output off. The controller gives it the running units'
current as a preset, so that a change of the group's current reaches all three as one frame
to the broadcast ID 0x000C03FF (the simulator's frame log) instead of a frame per running
unit: after a step of the household's export, the standby unit's current register holds the
value of a broadcast frame sent after the step, while its output stays off and moves no
current. (The step where a running unit goes to standby cannot be one frame: its output goes
off first. Between changes the small trims of the settled loop go to one running unit,
ctl_group_run.h, and the standby unit keeps its preset.)"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from ctld_stack import METER, Stack, broadcast_iout  # noqa: E402

UNITS = (0, 1, 2)
SETTLE_S = 90  # generous: a loaded 2-core machine


def test_standby_unit_preset_joins_the_broadcast():
    ctl = {"Id/0/MeterTimeoutSec": 30, "Id/0/LeaseTtlSec": 30, "Id/0/IdleDwellSec": 0,
           "Id/0/ChargeTol": 10, "Id/0/Devices": "0,1,2"}
    device = {"Id/%d/MaxChargeCurrent" % u: 2000 for u in UNITS}
    with Stack(start_s=0, speed=1, relay=False, ctl=ctl, units=UNITS, device=device,
               gateway={"BroadcastWrites": 1}) as s:
        s.write_ini()
        s.start_ctl(args=())
        export = [800.0]

        def units():
            return [s.sim.control.device(u) for u in UNITS]

        def meter():
            """The household's grid power with the batteries' AC power on it (+ import)."""
            devs = units()
            batt = sum(d["ac_w"] if d["dc_a"] >= 0 else -abs(d["ac_w"]) for d in devs)
            s.client.publish(METER, "%.1f" % (batt - export[0]))
            return devs

        def group():
            return json.loads(s.client.last(s.topic("ctl/0/group")) or "null")

        def two_run_one_idle():
            """Two units charge and one is idle (on standby): its index, or None."""
            g = group()
            if g is None:
                return None
            modes = [u["mode"] for u in g["units"]]
            if modes.count("charge") != 2 or modes.count("idle") != 1:
                return None
            return modes.index("idle")

        since = {"sb": None, "t": 0.0}

        def settled():
            """The same unit on standby, its output off, for 6 s (the ramp from idle may run
            all three for a while before the staging settles on two)."""
            devs = meter()
            sb = two_run_one_idle()
            if sb is None or devs[sb]["output_on"] or abs(devs[sb]["dc_a"]) >= 0.1:
                sb = None
            if sb != since["sb"]:
                since["sb"], since["t"] = sb, time.monotonic()
            return (sb is not None and time.monotonic() - since["t"] >= 6 and
                    {"standby": sb})

        standby = harness.wait_for(settled, timeout=SETTLE_S, interval=0.5,
                                   what="two units charging, the third on standby with its "
                                   "output off for 6 s")["standby"]
        assert "broadcast writes on for devices 0,1,2" in s.gateway.output()
        # Steps of the household's export, each more than a small change (whole shares, every
        # running unit told): the running units' new current and the standby unit's preset go
        # in one broadcast frame. A step every 15 s, 900 and 800 W in turn, until the standby
        # unit holds a value sent to the broadcast ID after the step; its output stays off.
        step = {"t": 0.0, "n": 0}
        last_sent = [None]
        standby_on = []

        def preset_by_broadcast():
            now = time.monotonic()
            if now - step["t"] >= 15:
                step["t"], step["n"] = now, step["n"] + 1
                export[0] = 900.0 if step["n"] % 2 else 800.0
                last_sent[0] = None
            devs = meter()
            if devs[standby]["output_on"]:
                standby_on.append(devs[standby])
            sent = broadcast_iout(s.sim, now - step["t"])
            if sent:  # the frame log holds the last few seconds: the last value seen is kept
                last_sent[0] = sent[-1]
            return (last_sent[0] is not None and two_run_one_idle() == standby and
                    devs[standby]["registers"]["IOUT_SET"] == last_sent[0] and
                    abs(devs[standby]["dc_a"]) < 0.1 and {"steps": step["n"]})

        got = harness.wait_for(preset_by_broadcast, timeout=SETTLE_S, interval=0.5,
                               what="the standby unit holding the group's current from a "
                               "broadcast frame sent after a step of the export")
        print("export steps until the preset went in a broadcast frame: %d" % got["steps"])
        assert not standby_on, "the standby unit's output was on: %r" % standby_on[:1]
        bus = s.sim.control.counters()["bus"]
        assert bus["pacing_violations"] == 0, bus
        log = s.gateway.output()
        assert "preset charge" in log, log[-3000:]

if __name__ == "__main__":
    harness.run_tests()
