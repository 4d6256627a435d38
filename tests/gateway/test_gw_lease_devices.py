"""Control leases per device against the real bic-sim with two devices on one bus: two
controllers drive one device each at the same time, each is refused on the other's device with
"controlled by NAME", a lapse puts only its own device in the safe state (seen in the
simulator's registers), the leases survive a gateway restart, and the single-lease file of
earlier versions is read as the lease of every device."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, Sub, assert_no_pacing_violations, gateway_ini  # noqa: E402

DEVS = ["0:24:battery,canctrl", "1:24:battery,canctrl"]


def _holders(c):
    return {d["dev"]: (d["lease"] or {}).get("holder") for d in c.ok("info")["devices"]}


def test_two_controllers_two_devices():
    tmp = harness.temp_dir()
    with harness.Sim(devices=DEVS) as sim:
        ini = gateway_ini(sim, tmp, devices={0: {}, 1: {}}, EepromWriteIntervalSec=0,
                          LeaseMaxTtlSec=600)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["gw"])
            # A drives device 0 and B device 1, at the same time
            r = c.ok("setpoint", dev=0, client="A", mode="charge", current_a=5, lease_ttl_s=60)
            assert r["applied"]["direction"] == "charge", r
            r = c.ok("setpoint", dev=1, client="B", mode="discharge", current_a=4,
                     lease_ttl_s=60)
            assert r["applied"]["direction"] == "discharge", r
            assert _holders(c) == {0: "A", 1: "B"}
            # each is refused on the other's device, naming that device's holder
            regs1 = dict(sim.control.device(1)["registers"])
            e = c.error("setpoint", "lease_held", dev=1, client="A", mode="off")
            assert e["message"] == "controlled by B" and e["holder"] == "B", e
            assert e["dev"] == 1, e
            e = c.error("setpoint", "lease_held", dev=1, client="A", mode="off", lease_ttl_s=5)
            assert e["message"] == "controlled by B", e
            e = c.error("set", "lease_held", dev=1, reg="OPERATION", value=0, client="A")
            assert e["message"] == "controlled by B", e
            e = c.error("lease", "lease_held", dev=1, client="A", action="take", ttl_s=5)
            assert e["message"] == "controlled by B", e
            e = c.error("set", "lease_held", dev=0, reg="IOUT_SET", value=3, client="B")
            assert e["message"] == "controlled by A", e
            assert sim.control.device(1)["registers"] == regs1
            # a take without dev wants every device: refused as a whole, nothing taken
            e = c.error("lease", "lease_held", client="C", action="take", ttl_s=5)
            assert e["holder"] in ("A", "B") and e["message"] == "controlled by " + e["holder"]
            assert _holders(c) == {0: "A", 1: "B"}
            # an unknown device is refused
            c.error("lease", "unknown_device", dev=5, client="A", action="take", ttl_s=5)
            c.error("lease", "bad_request", dev="0", client="A", action="take", ttl_s=5)
            # renew without dev renews what the client holds, only that
            r = c.ok("lease", client="A", action="renew", ttl_s=60)
            assert r["holder"] == "A" and r["devs"] == [0], r
            r = c.ok("lease", dev=1, client="B", action="renew", ttl_s=60)
            assert r["dev"] == 1 and r["devs"] == [1], r
            # gw health lists both leases
            _, g = sub.wait(lambda t, b: t == "gw" and len(b.get("leases", [])) == 2,
                            timeout=15, what="gw health with two leases")
            assert {(x["dev"], x["holder"]) for x in g["leases"]} == {(0, "A"), (1, "B")}, g
            sub.close()
            regs0 = dict(sim.control.device(0)["registers"])
        # a restart keeps both leases
        with Gateway(ini, tmp) as gw:
            c = gw.client
            assert _holders(c) == {0: "A", 1: "B"}
            with open(os.path.join(ini["GATEWAY"]["StateDir"], "lease.json")) as f:
                saved = json.load(f)
            assert {(x["dev"], x["holder"]) for x in saved["leases"]} == {(0, "A"), (1, "B")}
            c.error("setpoint", "lease_held", dev=1, client="A", mode="off")
            sub = Sub(gw.pub, ["evt/"])
            # B renews for a short while, then stops: only device 1 goes to the safe state
            c.ok("lease", dev=1, client="B", action="renew", ttl_s=2)
            e = sub.event(1, "lease_lapsed")
            assert e["holder"] == "B", e
            e = sub.event(1, "safe_state")
            assert e["state"] == "off" and e["reason"] == "lease lapsed", e
            harness.wait_for(lambda: sim.control.device(1)["registers"]["OPERATION"] == 0,
                             what="device 1 off")
            d1 = sim.control.device(1)
            assert d1["registers"]["REVERSE_IOUT_SET"] == 90, d1["registers"]
            assert d1["output_on"] is False
            # device 0 is untouched and still A's
            d0 = sim.control.device(0)
            assert d0["registers"] == regs0, (d0["registers"], regs0)
            assert d0["output_on"] is True
            assert not [b for t, b in sub.seen if t == "evt/0" and
                        b.get("event") in ("lease_lapsed", "safe_state")], sub.seen
            assert _holders(c) == {0: "A", 1: None}
            # device 1 is free now: A may take it too; a release without dev gives up both
            r = c.ok("lease", dev=1, client="A", action="take", ttl_s=30)
            assert r["holder"] == "A" and r["devs"] == [1], r
            r = c.ok("lease", client="A", action="release")
            assert r["holder"] is None and r["devs"] == [0, 1], r
            assert _holders(c) == {0: None, 1: None}
            c.error("lease", "no_lease", client="A", action="renew", ttl_s=5)
            c.error("lease", "no_lease", dev=0, client="A", action="release")
            # a release applies no safe state
            assert sim.control.device(0)["registers"]["OPERATION"] == 1
            sub.close()
        assert_no_pacing_violations(sim)


def test_earlier_single_lease_file_means_every_device():
    tmp = harness.temp_dir()
    with harness.Sim(devices=DEVS) as sim:
        ini = gateway_ini(sim, tmp, devices={0: {}, 1: {}}, EepromWriteIntervalSec=0)
        path = os.path.join(ini["GATEWAY"]["StateDir"], "lease.json")
        with open(path, "w") as f:
            f.write('{"v":1,"holder":"charge-ctl","ttl_ms":600000}')
        with Gateway(ini, tmp) as gw:
            c = gw.client
            assert _holders(c) == {0: "charge-ctl", 1: "charge-ctl"}
            e = c.error("setpoint", "lease_held", dev=1, client="other", mode="off")
            assert e["message"] == "controlled by charge-ctl", e
            # rewritten per device
            with open(path) as f:
                saved = json.load(f)
            assert {(x["dev"], x["holder"]) for x in saved["leases"]} == \
                {(0, "charge-ctl"), (1, "charge-ctl")}, saved
            # the earlier file had no token: each lease got one nobody knows, so the holder's
            # name alone renews and releases nothing (the leases lapse and are taken again)
            assert all(len(x["token"]) == 32 for x in saved["leases"]), saved
            assert os.stat(path).st_mode & 0o777 == 0o600, oct(os.stat(path).st_mode)
            c.error("lease", "bad_token", client="charge-ctl", action="renew", ttl_s=30,
                    token=None)
            c.error("lease", "bad_token", client="charge-ctl", action="release", token=None)
            assert _holders(c) == {0: "charge-ctl", 1: "charge-ctl"}
        # a damaged file is ignored with a warning, the gateway still starts
        with open(path, "w") as f:
            f.write('{"v":2,"leases":[{"dev":99,"holder":"x","ttl_ms":1000}]}')
        with Gateway(ini, tmp) as gw:
            assert _holders(gw.client) == {0: None, 1: None}
        assert_no_pacing_violations(sim)


if __name__ == "__main__":
    harness.run_tests()
