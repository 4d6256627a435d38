"""An NPB charger beside a BIC on one bus, against the real bic-sim and bic-can-gateway: both
online as two devices (the BIC at address 0 is dev 0, the NPB at address 3 is dev 67); the
NPB's own registers read and written within its model's ranges and the [NPB] limits, each
curve write counted as an EEPROM write on both sides; a charge setpoint that moves the
charger's current through CURVE_CC (charger mode) with the stage in telemetry; discharge
and an idle preset refused; a lapsed lease turning the charger's output off while the BIC is
left alone."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, Sub, assert_no_pacing_violations, gateway_ini  # noqa: E402

NPB = 67  # the NPB at CAN address 3


def _npb(sim):
    return sim.control.ok("npb", addr=3)["npb"]


def test_npb_beside_bic():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24:battery,canctrl", "3:npb-1200-24:soc=30"]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, LeaseMaxTtlSec=600)
        ini["NPB"] = {"Id/3/Type": "NPB-1200-24", "Id/3/MaxChargeCurrent": 3000}
        with Gateway(ini, tmp) as gw:
            c = gw.client
            harness.wait_for(lambda: {d["dev"]: d["online"] for d in c.ok("devices")["devices"]}
                             == {0: True, NPB: True}, what="BIC and NPB online")
            info = c.ok("info", dev=NPB)["devices"][0]
            assert info["family"] == "NPB" and info["model"] == "NPB-1200-24", info
            assert info["address"] == 3 and info["mode"] == "charger", info
            assert info["ranges"]["curve_cc_a"] == [7.2, 30.0], info["ranges"]
            assert info["ranges"]["curve_cv_v"] == [21.0, 42.0], info["ranges"]
            assert "CURVE_CC" in info["eeprom"]["writes"], info["eeprom"]
            assert "REVERSE_VOUT_SET" not in info["eeprom"]["writes"], info["eeprom"]
            bic = c.ok("info", dev=0)["devices"][0]
            assert bic["family"] == "BIC" and "CURVE_CC" not in bic["eeprom"]["writes"], bic

            # the curve as the device holds it (factory: 28.8 V boost, 27.6 V float)
            v = c.ok("get", dev=NPB, regs=["CURVE_CV", "CURVE_FV", "CURVE_CONFIG"])["values"]
            assert v["CURVE_CV"]["value"] == 28.8 and v["CURVE_CV"]["unit"] == "V", v
            assert v["CURVE_FV"]["value"] == 27.6, v
            assert v["CURVE_CONFIG"]["bits"]["cuve"] is True, v
            c.error("get", "unknown_register", dev=NPB, reg="REVERSE_VOUT_SET")
            c.error("get", "unknown_register", dev=0, reg="CURVE_CC")

            # a curve write within the range: on the device, counted on both sides
            r = c.ok("set", dev=NPB, reg="CURVE_CV", value=28.4, client="bicctl")
            assert r["written"] is True, r
            assert _npb(sim)["registers"]["CURVE_CV"] == 2840
            assert _npb(sim)["eeprom_writes"]["CURVE_CV"] == 1
            assert c.ok("eeprom", dev=NPB)["eeprom"]["writes"]["CURVE_CV"] == 1
            # the curve as a whole: the float voltage not above the boost voltage it holds
            e = c.error("set", "out_of_range", dev=NPB, reg="CURVE_FV", value=28.5, client="b")
            assert e["max"] == 28.4 and "boost voltage" in e["message"], e
            # outside the model's range, the [NPB] limit, or the writable bits: refused
            e = c.error("set", "out_of_range", dev=NPB, reg="CURVE_FV", value=45, client="bicctl")
            assert e["max"] == 42.0, e
            e = c.error("set", "out_of_range", dev=NPB, reg="CURVE_CC", value=31, client="bicctl")
            assert e["max"] == 30.0, e
            e = c.error("set", "out_of_range", dev=NPB, reg="CURVE_CC", value=5, client="bicctl")
            assert e["min"] == 7.2, e
            assert _npb(sim)["registers"]["CURVE_CC"] == 3600  # untouched

            # charge-only
            e = c.error("setpoint", "not_supported", dev=NPB, client="ctl", mode="discharge",
                        current_a=5, lease_ttl_s=30)
            assert "only charges" in e["message"], e
            e = c.error("setpoint", "not_supported", dev=NPB, client="ctl", mode="idle",
                        preset="charge", current_a=10, lease_ttl_s=30)
            assert "it has no preset" in e["message"], e
            c.error("setpoint", "out_of_range", dev=NPB, client="ctl", mode="charge",
                    current_a=40, lease_ttl_s=30)

            # a charge setpoint: CURVE_CC, acting after the output's restart
            sub = Sub(gw.pub, ["tel/%d" % NPB, "evt/%d" % NPB])
            r = c.ok("setpoint", dev=NPB, client="ctl", mode="charge", current_a=10,
                     lease_ttl_s=4)
            n = _npb(sim)
            assert n["registers"]["CURVE_CC"] == 1000 and n["output_on"], n
            assert n["eeprom_writes"]["CURVE_CC"] == 1, n
            harness.wait_for(lambda: 9.0 <= _npb(sim)["dc_a"] <= 11.0,
                             what="the charger at 10 A")
            _, t = sub.wait(lambda tp, b: tp.startswith("tel/") and b.get("stage") == "cc" and
                            (b.get("curve") or {}).get("cc_a") == 10.0 and
                            b.get("dc_a") is not None and b["dc_a"] > 8.0,
                            what="telemetry: stage cc at 10 A")
            assert t["family"] == "NPB" and t["direction"] == "charge", t
            assert t["charge_status"]["ccm"] is True, t
            assert c.ok("eeprom", dev=NPB)["eeprom"]["writes"]["CURVE_CC"] == 1
            # the same setpoint again: nothing written, no restart
            r = c.ok("setpoint", dev=NPB, client="ctl", mode="charge", current_a=10)
            assert r["writes"] == 0, r
            assert _npb(sim)["eeprom_writes"]["CURVE_CC"] == 1

            # the lease lapses: the charger's output goes off, the BIC is not touched
            bic_regs = dict(sim.control.device(0)["registers"])
            e = sub.event(NPB, "lease_lapsed", timeout=20)
            assert e["holder"] == "ctl", e
            e = sub.event(NPB, "safe_state", timeout=20)
            assert e["state"] == "off", e
            harness.wait_for(lambda: not _npb(sim)["output_on"], what="NPB output off")
            assert _npb(sim)["registers"]["OPERATION"] == 0
            assert sim.control.device(0)["registers"] == bic_regs
            assert c.ok("info", dev=0)["devices"][0]["online"]
            sub.close()
        assert_no_pacing_violations(sim)


def test_npb_discovered():
    """Without an [NPB] block, Discover = 1 finds the charger at its address (dev 67) beside
    the configured BIC, and the discover op lists it."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24:battery,canctrl", "3:npb-450-48"]) as sim:
        ini = gateway_ini(sim, tmp, Discover=1)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            harness.wait_for(lambda: {d["dev"]: d["online"] for d in c.ok("devices")["devices"]}
                             == {0: True, NPB: True}, what="the NPB discovered and online")
            info = c.ok("info", dev=NPB)["devices"][0]
            assert info["model"] == "NPB-450-48" and info["family"] == "NPB", info
            assert info["device_limits"]["state"] == "off", info
            devs = c.ok("discover")["devices"]
            assert [d["dev"] for d in devs] == [0, NPB], devs
            # an NPB-450 has no READ_VIN: not polled, so telemetry shows none
            sub = Sub(gw.pub, ["tel/%d" % NPB])
            _, t = sub.wait(lambda tp, b: b.get("age_ms", {}).get("slow") is not None,
                            what="NPB telemetry with the slow set")
            assert t["ac_v"] is None and t["model"] == "NPB-450-48", t
            sub.close()


if __name__ == "__main__":
    test_npb_beside_bic()
    test_npb_discovered()
    print("ok")
