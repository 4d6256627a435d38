"""The seed's Winter mode (Type=Winter) with the real processes: bic-sim's battery at 50 %,
CapMin 60: after the start delay and a minute at rest for the SOC, the controller charges at
about ChargeP W without any meter; a device fault while charging stops it at the next step
(the seed never looked again while running), and it stays idle when the fault clears (it
checks again only after ten minutes)."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from ctld_stack import Stack  # noqa: E402


def test_winter_charges_and_stops_on_a_fault():
    ctl = {"Id/0/Type": "Winter", "Id/0/Winter/StartDelaySec": 5, "Id/0/Winter/ChargeP": 300,
           "Id/0/Winter/CapMin": 60, "Id/0/Winter/CapMax": 70, "Id/0/Winter/TempMin": 5}
    with Stack(ctl=ctl, relay=False) as s:
        s.start_ctl()
        st = s.wait_status(lambda x: x["enabled"], timeout=10)
        assert st["setpoint"]["mode"] in ("none", "idle"), st

        def charging():
            x = s.status()
            d = s.device()
            return x and x["setpoint"]["mode"] == "charge" and d["output_on"] and \
                d["dc_a"] > 5 and x
        # Start delay, then 60 s at rest for a SOC reading: 50 % <= CapMin.
        x = harness.wait_for(charging, timeout=120, interval=1, what="Winter charging")
        assert "CapMin" in x["reason"], x
        # ChargeP 300 W at about 26.5 V: about 11 A.
        assert 9 <= x["setpoint"]["current_a"] <= 13, x
        assert x["meter_w"] is None  # no meter at all

        # A fault while charging stops it at once.
        after = time.monotonic()
        s.sim.control.fault("hi_temp", True)
        s.wait_status(lambda y: y["reason"] == "device fault" and
                      y["setpoint"]["mode"] in ("idle", "none"), timeout=10, after=after)
        harness.wait_for(lambda: abs(s.device()["dc_a"]) < 1.5, timeout=10,
                         what="device not charging")
        s.sim.control.fault("hi_temp", False)
        time.sleep(5)
        assert s.status()["setpoint"]["mode"] in ("idle", "none"), s.status()
        assert abs(s.device()["dc_a"]) < 1.5
        assert s.ctl.alive()


if __name__ == "__main__":
    harness.run_tests()
