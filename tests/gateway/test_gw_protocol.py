"""Gateway protocol against the real bic-sim: ping/info, get, set with verify and
skip-when-equal (checked against the simulator's EEPROM counters), range checks that leave the
device untouched, malformed and oversized requests, telemetry, and no pacing violations."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, Sub, assert_no_pacing_violations, gateway_ini  # noqa: E402


def _setup(tmp, **gw):
    sim = harness.Sim(devices=["0:24"])
    ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, **gw)
    return sim, ini


def test_ping_info_get():
    tmp = harness.temp_dir()
    sim, ini = _setup(tmp)
    with sim, Gateway(ini, tmp) as gw:
        c = gw.client
        r = c.ok("ping", id="abc")
        assert r["id"] == "abc" and r["bus"] == "up" and r["gateway"] == "bic-can-gateway", r
        info = c.ok("info")
        d = info["devices"][0]
        assert d["model"] == "BIC-2200-24" and d["variant"] == 24, d
        assert d["firmware"]["mcu"], d
        # effective limits: model table intersected with [DEVICE]
        assert d["limits"]["vout_v"] == [24, 27.6], d["limits"]
        assert d["limits"]["iout_a"] == [0.9, 30], d["limits"]
        assert d["limits"]["rev_vout_v"] == [24, 27.6], d["limits"]
        assert d["limits"]["rev_iout_a"] == [0.9, 25], d["limits"]
        assert d["eeprom"]["policy"] == "budget", d["eeprom"]
        r = c.ok("get", dev=0, regs=["READ_VOUT", "FAULT_STATUS", "MFR_MODEL_B0B5", "0x0030"])
        v = r["values"]
        true_v = sim.control.device(0)["dc_v"]
        assert v["READ_VOUT"]["unit"] == "V" and abs(v["READ_VOUT"]["value"] - true_v) < 0.2, v
        assert v["READ_VOUT"]["raw"] == round(v["READ_VOUT"]["value"] * 100), v
        assert v["FAULT_STATUS"]["bits"]["otp"] is False, v
        assert v["MFR_MODEL_B0B5"]["value"] == "BIC-22", v
        assert v["IOUT_SET"]["unit"] == "A", v  # asked by code, answered by name
        r = c.ok("get", dev=0, regs=["READ_VOUT", "read_vout", "0x0060", "VOUT_SET"])
        assert sorted(r["values"]) == ["READ_VOUT", "VOUT_SET"], r
        # a single device may be addressed without "dev"
        assert c.ok("get", reg="read_iout")["values"]["READ_IOUT"]["unit"] == "A"
        devs = c.ok("devices")["devices"]
        assert devs == [{"dev": 0, "online": True, "model": "BIC-2200-24"}], devs
        assert_no_pacing_violations(sim)


def test_set_verify_and_skip_when_equal():
    tmp = harness.temp_dir()
    sim, ini = _setup(tmp)
    with sim, Gateway(ini, tmp) as gw:
        c = gw.client
        before = sim.control.eeprom_writes(0)["VOUT_SET"]
        r = c.ok("set", dev=0, reg="VOUT_SET", value=27.5, client="test")
        assert r["written"] is True and r["deferred"] is False and r["raw"] == 2750, r
        assert sim.control.device(0)["registers"]["VOUT_SET"] == 2750
        assert sim.control.eeprom_writes(0)["VOUT_SET"] == before + 1
        # the same value again: read, found equal, not written (no EEPROM wear)
        r = c.ok("set", dev=0, reg="VOUT_SET", value=27.5, client="test")
        assert r["written"] is False, r
        r = c.ok("set", dev=0, reg="VOUT_SET", raw=2750, client="test")
        assert r["written"] is False, r
        assert sim.control.eeprom_writes(0)["VOUT_SET"] == before + 1
        # the gateway's own counters agree with the device's (the [DEVICE] values written at
        # start included)
        e = c.ok("eeprom", dev=0)["eeprom"]
        sim_w = sim.control.eeprom_writes(0)
        assert all(e["writes"][k] == sim_w[k] for k in e["writes"]), (e, sim_w)
        total = e["writes_total"]
        # a non-EEPROM register: DIRECTION_CTRL
        r = c.ok("set", dev=0, reg="DIRECTION_CTRL", value=1, client="test")
        assert r["written"] is True, r
        assert sim.control.device(0)["registers"]["DIRECTION_CTRL"] == 1
        assert c.ok("eeprom", dev=0)["eeprom"]["writes_total"] == total
        assert_no_pacing_violations(sim)


def test_out_of_range_rejected_and_device_untouched():
    tmp = harness.temp_dir()
    sim, ini = _setup(tmp)
    with sim, Gateway(ini, tmp) as gw:
        c = gw.client
        sub = Sub(gw.pub, ["evt/"])
        regs = dict(sim.control.device(0)["registers"])
        frames_before = sim.control.counters()["bus"]["requests"]
        t_start = time.monotonic()
        # above the configured ChargeVoltage (27.60 V) though inside the model's 19-28 V; the
        # window's other side is the configured DischargeVoltage (24.00 V)
        e = c.error("set", "out_of_range", dev=0, reg="VOUT_SET", value=27.7, client="t")
        assert e["min"] == 24 and e["max"] == 27.6 and e["unit"] == "V", e
        assert "24" in e["message"] and "27.6" in e["message"], e
        e = c.error("set", "out_of_range", dev=0, reg="IOUT_SET", value=30.01, client="t")
        assert e["max"] == 30, e
        e = c.error("set", "out_of_range", dev=0, reg="REVERSE_IOUT_SET", value=-5, client="t")
        e = c.error("set", "out_of_range", dev=0, reg="IOUT_SET", raw=50, client="t")
        assert e["min"] == 0.9, e
        e = c.error("setpoint", "out_of_range", dev=0, client="ctl", mode="charge",
                    current_a=31, lease_ttl_s=5)
        assert e["max"] == 30 and e["unit"] == "A", e
        sub.event(0, "write_rejected")
        # nothing reached the device
        assert sim.control.device(0)["registers"] == regs
        since_ms = (time.monotonic() - t_start) * 1000
        frames = [f for f in sim.control.frames(200)
                  if f["dir"] == "rx" and f["dlc"] > 2 and f["age_ms"] < since_ms]
        assert frames == [], frames
        assert sim.control.counters()["bus"]["requests"] >= frames_before
        e = c.error("set", "read_only", dev=0, reg="READ_VOUT", value=1, client="t")
        e = c.error("set", "unknown_register", dev=0, reg="NOPE", value=1, client="t")
        e = c.error("get", "unknown_register", dev=0, regs=["READ_VOUT", "0x0999"])
        e = c.error("get", "unknown_device", dev=5, reg="READ_VOUT")
        e = c.error("get", "unknown_device", dev=64, reg="READ_VOUT")  # an NPB number, none here
        e = c.error("get", "bad_request", dev=68, reg="READ_VOUT")
        e = c.error("set", "bad_request", dev=0, reg="VOUT_SET", value="27", client="t")
        e = c.error("set", "bad_request", dev=0, reg="VOUT_SET", value=27, raw=2700, client="t")
        e = c.error("set", "bad_request", dev=0, reg="VOUT_SET", value=27, client="bad name")
        e = c.error("set", "out_of_range", dev=0, reg="SYSTEM_CONFIG", raw=0x0007, client="t")
        assert "OPERATION_INIT 11" in e["message"], e
        sub.close()
        assert_no_pacing_violations(sim)


def test_malformed_and_oversized_requests():
    tmp = harness.temp_dir()
    sim, ini = _setup(tmp)
    with sim, Gateway(ini, tmp) as gw:
        c = gw.client
        cases = [
            (b"not json", "bad_request"),
            (b"[1,2,3]", "bad_request"),
            (b"\"str\"", "bad_request"),
            (b"{\"op\":\"ping\"}", "bad_version"),
            (b"{\"v\":2,\"op\":\"ping\"}", "bad_version"),
            (b"{\"v\":1}", "bad_request"),
            (b"{\"v\":1,\"op\":7}", "bad_request"),
            (b"{\"v\":1,\"op\":\"explode\",\"id\":9}", "unknown_op"),
            (b"\xff\xfe\x00garbage", "bad_request"),
            (b"", "bad_request"),
            (b"{\"v\":1,\"op\":\"ping\"} trailing", "bad_request"),
            (b"{\"v\":1,\"op\":\"ping\"}{\"v\":1,\"op\":\"ping\"}", "bad_request"),
            (json.dumps({"v": 1, "op": "ping", "pad": "x" * 5000}).encode(), "too_large"),
        ]
        for data, code in cases:
            r = c.raw(data)
            assert r["ok"] is False and r["error"]["code"] == code, (data[:40], r)
        assert c.raw(b"{\"v\":1,\"op\":\"explode\",\"id\":9}")["id"] == 9
        assert c.raw(b" {\"v\":1,\"op\":\"ping\"}\r\n")["ok"] is True  # white space is fine
        # a request of exactly 4096 bytes is still served
        base = {"v": 1, "op": "ping", "pad": ""}
        base["pad"] = "x" * (4096 - len(json.dumps(base)))
        assert len(json.dumps(base)) == 4096
        assert c.raw(json.dumps(base))["ok"] is True
        # 256 KiB: refused with an error, the gateway lives on
        r = c.raw(b"{" + b" " * (1 << 18) + b"}")
        assert r["error"]["code"] in ("too_large",), r
        assert c.ok("ping")["bus"] == "up"
        assert gw.proc.alive()
        assert_no_pacing_violations(sim)


def test_telemetry_and_health():
    tmp = harness.temp_dir()
    sim, ini = _setup(tmp)
    with sim, Gateway(ini, tmp) as gw:
        sub = Sub(gw.pub, ["tel/0", "gw"])
        _, t = sub.wait(lambda tp, b: tp == "tel/0" and b["age_ms"]["slow"] is not None,
                        what="telemetry with the slow set")
        true = sim.control.device(0)
        assert t["v"] == 1 and t["dev"] == 0 and t["online"] is True, t
        assert abs(t["dc_v"] - true["dc_v"]) < 0.2, (t, true)
        assert t["model"] == "BIC-2200-24" and t["mode"] == "auto", t
        assert set(t["fault"]) >= {"raw", "otp", "ovp", "fan_fail"}, t
        assert t["setpoints"]["iout_a"] is not None, t
        assert t["period_ms"] == 500, t  # its TelemetryPeriodMs
        assert t["eeprom"]["policy"] == "budget" and t["lease"] is None, t
        _, g = sub.wait(lambda tp, b: tp == "gw", what="gw health")
        assert g["bus"] == "up" and g["frames_tx"] > 0 and g["state_file"]["ok"] is True, g
        # a fault edge becomes an event
        sub2 = Sub(gw.pub, ["evt/0"])
        sim.control.fault("otp", True, dev=0)
        e = sub2.event(0, "fault_on")
        assert e["fault"] == "otp", e
        sim.control.fault("otp", False, dev=0)
        sub.close()
        sub2.close()
        assert_no_pacing_violations(sim)


if __name__ == "__main__":
    harness.run_tests()
