"""bicctl's NPB commands against the real gateway and bic-sim with a BIC (dev 0) and an NPB
charger at CAN address 3 (dev 67) on one bus: the curve read and set register by register,
checked against the simulator's registers, writes skipped when equal, values outside the
model's range refused by the gateway and outside every model's by bicctl, the seed's
NPB_chargemode switching the mode, and info and status showing the charge stage."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, gateway_ini  # noqa: E402
from test_bicctl import DEV0, fails, number, ok, run, wrote  # noqa: E402

NPB = "67"


def _regs(sim):
    return sim.control.ok("npb", addr=3)["npb"]["registers"]


def test_npb_commands():
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV0, "3:npb-1200-24:soc=30"]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, ResponseTimeoutMs=200)
        ini["NPB"] = {"Id/3/Type": "NPB-1200-24"}
        with Gateway(ini, tmp) as gw:
            harness.wait_for(lambda: all(d["online"] for d in gw.client.ok("devices")["devices"])
                             and len(gw.client.ok("devices")["devices"]) == 2,
                             what="BIC and NPB online")
            cfg = gw.path
            # the curve as a whole, at the factory values
            out = ok(cfg, "--dev", NPB, "curve")
            lines = dict(line.split(None, 1) for line in out.splitlines())
            assert lines["cc"] == "36.00 A" and lines["cv"] == "28.80 V", out
            assert lines["fv"] == "27.60 V", out
            assert lines["mode"].startswith("charger"), out
            assert lines["cc_timeout"] == "600 min, disabled", out
            assert lines["stage"] == "cc", out
            vals = json.loads(ok(cfg, "--json", "--dev", NPB, "curve"))["values"]
            assert vals["CURVE_CC"]["raw"] == 3600, vals

            # register by register, as the seed's reads and writes (x 100)
            assert number(cfg, "--dev", NPB, "cc") == 3600
            wrote(cfg, "--dev", NPB, "cc", 1000, outcome="written")
            assert _regs(sim)["CURVE_CC"] == 1000
            wrote(cfg, "--dev", NPB, "cc", 1000, outcome="unchanged")
            wrote(cfg, "--dev", NPB, "cv", 2840, outcome="written")
            assert number(cfg, "--dev", NPB, "cv") == 2840 == _regs(sim)["CURVE_CV"]
            wrote(cfg, "--dev", NPB, "tc", 300, outcome="written")
            wrote(cfg, "--dev", NPB, "cc_timeout", 120, outcome="written")
            assert _regs(sim)["CURVE_CC_TIMEOUT"] == 120
            # the model's range (the gateway) and every model's (bicctl)
            fails(cfg, 4, "--dev", NPB, "fv", 5000, contains=("42",))
            assert _regs(sim)["CURVE_FV"] == 2760
            fails(cfg, 1, "--dev", NPB, "cc", 99999, contains=("136-8500",))
            fails(cfg, 1, "--dev", NPB, "cc_timeout", 30, contains=("60-64800",))
            fails(cfg, 1, "--dev", NPB, "chargemode", "banana", contains=("charger or psu",))
            fails(cfg, 1, "--dev", "68", "curve", contains=("64-67",))
            # a BIC has no charge curve
            fails(cfg, 3, "--dev", "0", "curve", contains=("CURVE_CC",))

            # the mode: read, the seed's toggle, and set by name
            assert ok(cfg, "--dev", NPB, "chargemode") == "charger\n"
            rc, out, err = run(cfg, "--dev", NPB, "NPB_chargemode")
            assert rc == 0 and out == "psu\n", (rc, out, err)
            assert _regs(sim)["CURVE_CONFIG"] & 0x80 == 0
            rc, out, err = run(cfg, "--dev", NPB, "chargemode", "charger")
            assert rc == 0 and out == "charger\n", (rc, out, err)
            assert _regs(sim)["CURVE_CONFIG"] & 0x80 == 0x80

            # info and status show the stage; status shows both devices
            out = ok(cfg, "--dev", NPB, "info")
            assert "NPB-1200-24" in out and "stage         cc" in out, out
            assert "charge curve  CC 10.00 A, CV 28.40 V" in out, out
            out = ok(cfg, "status")
            assert "device 0 " in out and "device 67 " in out, out
            assert out.count("stage         cc") == 1 and "mode          charger" in out, out
            assert "charge curve  CC 10.00 A" in out, out


if __name__ == "__main__":
    test_npb_commands()
    print("ok")
