"""One bic-charge-ctl over a group of three devices on one bus with the gateway's broadcast
writes on ([GATEWAY] BroadcastWrites = 1), against the real chain (bic-sim with three BIC-2200
on one pty, bic-can-gateway, the controller, the meter published by the test). Each device is
limited to 10 A, so an export of 800 W runs all three at that limit. Once the controller
holds all three leases (the gateway's broadcast writes are on only then: the first writes may
go one frame per device, whichever lease comes first), a small import asks for less: the
group's new, lower current is the same for the three and reaches them as one frame to the
broadcast ID 0x000C03FF (the simulator's frame log), after which every device holds it and
charges."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from ctld_stack import METER, Stack, broadcast_iout  # noqa: E402

UNITS = (0, 1, 2)
SETTLE_S = 60  # generous: a loaded 2-core machine


def test_group_current_as_one_broadcast_frame():
    ctl = {"Id/0/MeterTimeoutSec": 30, "Id/0/LeaseTtlSec": 30, "Id/0/IdleDwellSec": 0,
           "Id/0/ChargeTol": 10, "Id/0/Devices": "0,1,2"}
    device = {"Id/%d/MaxChargeCurrent" % u: 1000 for u in UNITS}
    with Stack(start_s=0, speed=1, relay=False, ctl=ctl, units=UNITS, device=device,
               gateway={"BroadcastWrites": 1}) as s:
        s.write_ini()
        s.start_ctl(args=())

        def units():
            return [s.sim.control.device(u) for u in UNITS]

        def group_charging():
            g = json.loads(s.client.last(s.topic("ctl/0/group")) or "null")
            return g is not None and all(u["mode"] == "charge" for u in g["units"])

        def at_limit():
            s.client.publish(METER, "-800")  # a meter repeats its reading
            regs = [d["registers"]["IOUT_SET"] for d in units()]
            return (regs == [1000] * len(UNITS) and group_charging() and
                    "broadcast writes on for devices 0,1,2" in s.gateway.output())

        harness.wait_for(at_limit, timeout=SETTLE_S, interval=0.5,
                         what="all three leased and charging at their 10 A limit")
        seen = []

        def broadcast_taken():
            s.client.publish(METER, "60")  # importing a little: the group steps down
            seen[:] = broadcast_iout(s.sim)
            regs = [d["registers"]["IOUT_SET"] for d in units()]
            return (len(set(regs)) == 1 and regs[0] < 1000 and
                    regs[0] in seen and group_charging())

        harness.wait_for(broadcast_taken, timeout=SETTLE_S, interval=0.5,
                         what="the group's lower current taken by all three from a broadcast "
                         "frame")
        harness.wait_for(lambda: all(d["dc_a"] > 1 for d in units()),
                         timeout=SETTLE_S, interval=0.5, what="all three charging")
        bus = s.sim.control.counters()["bus"]
        assert bus["pacing_violations"] == 0, bus
        log = s.gateway.output()
        assert "broadcast writes on for devices 0,1,2" in log, log


if __name__ == "__main__":
    harness.run_tests()
