"""The NPB family's disputed points as [NPB] settings, against the real bic-sim and
bic-can-gateway. The simulated NPB-1200-24 is a unit whose DC_OK bit is 1 for a low output
(bic-sim's dcok=low). With the defaults (DcOkPolarity = normal, CurrentMinPct = 20) the
gateway reports its output as not ok, which the READ_VOUT cross-check contradicts, and takes a
10 A charge; with DcOkPolarity = low and CurrentMinPct = 50 the same unit reports ok (the
cross-check agrees), its CURVE_CC range starts at 18 A and the 10 A charge is refused;
bicctl status reads DC_OK as the gateway does."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, Sub, gateway_ini  # noqa: E402
from test_bicctl import ok  # noqa: E402

NPB = 67


def _run(sim, tmp, npb_family):
    """Starts a gateway with these [NPB] family keys; returns (info, telemetry status, the
    reply to a 10 A charge setpoint, bicctl status's system line of the NPB)."""
    ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, LeaseMaxTtlSec=600)
    ini["NPB"] = dict({"Id/3/Type": "NPB-1200-24", "Id/3/MaxChargeCurrent": 3000}, **npb_family)
    with Gateway(ini, tmp) as gw:
        c = gw.client
        harness.wait_for(lambda: c.ok("info", dev=NPB)["devices"][0]["online"],
                         what="the NPB online")
        info = c.ok("info", dev=NPB)["devices"][0]
        # the output on (as a controller's charge does), then its status as reported
        r = c.call("setpoint", dev=NPB, client="t", mode="charge", current_a=20, lease_ttl_s=30)
        assert r.get("ok"), r
        harness.wait_for(lambda: sim.control.ok("npb", addr=3)["npb"]["output_on"],
                         what="the NPB output on")
        sub = Sub(gw.pub, ["tel/%d" % NPB])
        _, t = sub.wait(lambda tp, b: (b.get("status") or {}).get("dc_ok_check")
                        in ("agrees", "contradicts"), what="telemetry with the DC_OK check")
        sub.close()
        ten = c.call("setpoint", dev=NPB, client="t", mode="charge", current_a=10)
        system = [ln for ln in ok(gw.path, "--dev", str(NPB), "status").splitlines()
                  if ln.startswith("system")]
        return info, t["status"], ten, system


def test_npb_family_options():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24:battery,canctrl", "3:npb-1200-24:soc=30,dcok=low"]) as sim:
        info, st, ten, system = _run(sim, tmp, {})
        assert info["options"] == {"dc_ok": "normal", "current_min_pct": 20}, info
        assert info["ranges"]["curve_cc_a"] == [7.2, 30.0], info["ranges"]
        assert st["dc_ok"] is False and st["dc_ok_check"] == "contradicts", st
        assert ten.get("ok"), ten
        assert system and "DC too low" in system[0], system

        info, st, ten, system = _run(sim, tmp, {"DcOkPolarity": "low", "CurrentMinPct": 50})
        assert info["options"] == {"dc_ok": "low", "current_min_pct": 50}, info
        assert info["ranges"]["curve_cc_a"] == [18.0, 30.0], info["ranges"]
        assert st["dc_ok"] is True and st["dc_ok_check"] == "agrees", st
        assert not ten.get("ok") and ten["error"]["code"] == "out_of_range", ten
        assert ten["error"]["min"] == 18.0, ten
        assert system and "DC ok" in system[0], system


if __name__ == "__main__":
    test_npb_family_options()
    print("ok")
