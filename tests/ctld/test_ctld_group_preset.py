"""One bic-charge-ctl over a group of three devices on one bus with the gateway's broadcast
writes on ([GATEWAY] BroadcastWrites = 1), against the real chain (bic-sim with three BIC-2200
on one pty, bic-can-gateway, the controller, a meter the test closes over the simulated
devices). A household exporting 800 W needs two of the three 20 A units (the group's staging);
the third stays on standby with its output off. The controller gives it the running units'
current as a preset, so that the group's change reaches all three as one frame to the
broadcast ID 0x000C03FF (the simulator's frame log) instead of a frame per running unit: the
standby unit's current register holds the running units' value while its output stays off and
moves no current, through a change of the household's export."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from ctld_stack import METER, Stack  # noqa: E402

UNITS = (0, 1, 2)
BROADCAST_ID = 0x000C03FF
IOUT_SET = 0x0030
SETTLE_S = 90  # generous: a loaded 2-core machine


def _broadcast_iout(sim):
    """The IOUT_SET values (raw) sent to the broadcast ID, in the simulator's frame log."""
    out = []
    for f in sim.control.frames(512):
        if f["dir"] != "rx" or int(f["id"], 16) != BROADCAST_ID or f["dlc"] != 4:
            continue
        d = bytes.fromhex(f["data"])
        if d[0] | d[1] << 8 == IOUT_SET:
            out.append(d[2] | d[3] << 8)
    return out


def test_standby_unit_preset_joins_the_broadcast():
    ctl = {"Id/0/MeterTimeoutSec": 30, "Id/0/LeaseTtlSec": 30, "Id/0/IdleDwellSec": 0,
           "Id/0/ChargeTol": 10, "Id/0/Devices": "0,1,2"}
    device = {"Id/%d/MaxChargeCurrent" % u: 2000 for u in UNITS}
    with Stack(start_s=0, speed=1, relay=False, ctl=ctl, units=UNITS, device=device,
               gateway={"BroadcastWrites": 1}) as s:
        s.write_ini()
        s.start_ctl(args=())
        export = [800.0]
        standby_on = []  # polls that found the standby unit's output on

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

        def two_run_one_preset(also=lambda regs: True):
            """Two units charge, one is idle (on standby), and all three current registers
            hold one value that went out in a broadcast frame: {"standby": its index}."""
            devs = meter()
            g = group()
            if g is None:
                return None
            modes = [u["mode"] for u in g["units"]]
            if modes.count("charge") != 2 or modes.count("idle") != 1:
                return None
            sb = modes.index("idle")
            if sb == standby[0] and devs[sb]["output_on"]:
                standby_on.append(devs[sb])
            regs = [d["registers"]["IOUT_SET"] for d in devs]
            ok = (len(set(regs)) == 1 and regs[0] in _broadcast_iout(s.sim) and
                  abs(devs[sb]["dc_a"]) < 0.1 and also(regs))
            return {"standby": sb} if ok else None

        standby = [-1]
        standby[0] = harness.wait_for(
            lambda: two_run_one_preset(), timeout=SETTLE_S, interval=0.5,
            what="two units charging, the third on standby holding their current as a preset "
            "sent in a broadcast frame")["standby"]
        assert "broadcast writes on for devices 0,1,2" in s.gateway.output()
        before = units()[0]["registers"]["IOUT_SET"]
        # the export grows: both running units' new current, and the standby unit's preset,
        # in one broadcast frame again; the standby unit's output stays off meanwhile
        export[0] = 950.0
        sb = harness.wait_for(lambda: two_run_one_preset(lambda regs: regs[0] > before + 50),
                              timeout=SETTLE_S, interval=0.5,
                              what="the group's higher current on all three from a broadcast "
                              "frame, the standby unit still off")["standby"]
        assert sb == standby[0], "another unit went to standby: %d, was %d" % (sb, standby[0])
        assert not standby_on, "the standby unit's output was on: %r" % standby_on[:1]
        bus = s.sim.control.counters()["bus"]
        assert bus["pacing_violations"] == 0, bus
        log = s.gateway.output()
        assert "preset charge" in log, log[-3000:]

if __name__ == "__main__":
    harness.run_tests()
