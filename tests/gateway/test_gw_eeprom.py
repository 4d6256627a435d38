"""EEPROM protection against the real bic-sim: the write budget defers a controller's
set-point and later applies the newest value, counters match the device's own, survive a gateway restart (and so does the
interval), the daily budget lets a burst through with the minimum spacing and then defers
(its bucket is not refilled by a restart), EEP_OFF is detected by read-back during
commissioning, and a state file that cannot be written is reported without losing the
count."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, Sub, assert_no_pacing_violations, gateway_ini  # noqa: E402


def _ini(sim, tmp, **kw):
    """These tests count writes from the device's own start values; the gateway's writes of
    the [DEVICE] values at start are tested in test_gw_limits.py."""
    kw.setdefault("ApplyDeviceLimits", 0)
    return gateway_ini(sim, tmp, **kw)


def _charge(c, amps, client="t"):
    """The controller's way: a charge setpoint (takes the lease); returns the reply."""
    return c.ok("setpoint", dev=0, client=client, mode="charge", current_a=amps, lease_ttl_s=60)


def test_budget_defers_then_applies_newest():
    """A controller's higher current waits for the spacing; the newest value wins; one the
    device already holds is dropped."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        ini = _ini(sim, tmp, EepromWriteIntervalSec=3)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["evt/0"])
            w0 = sim.control.eeprom_writes(0)["IOUT_SET"]
            r = _charge(c, 20)
            assert r["deferred"] is False and _iout(sim) == 2000, r
            t_first = time.monotonic()
            r = _charge(c, 21)
            assert r["deferred"] is True and r["pending"] == {"IOUT_SET": 21}, r
            o = [x for x in r["outcomes"] if x["reg"] == "IOUT_SET"][0]
            assert o["outcome"] == "deferred" and 0 < o["until_s"] <= 3, o
            assert "spacing" in o["reason"], o
            e = sub.event(0, "write_deferred")
            assert e["reg"] == "IOUT_SET" and e["value"] == 21 and e["until_s"] > 0, e
            r = _charge(c, 22)
            assert r["deferred"] is True, r
            ee = c.ok("eeprom", dev=0)["eeprom"]
            assert ee["pending"] == {"IOUT_SET": 22} and ee["min_interval_s"] == 3, ee
            # the device still has the first value: nothing was written early
            assert _iout(sim) == 2000
            harness.wait_for(lambda: _iout(sim) == 2200, what="the deferred value applied")
            assert time.monotonic() - t_first >= 2.5
            # one write for 20 A, one for the newest deferred value; 21 A never written
            assert sim.control.eeprom_writes(0)["IOUT_SET"] == w0 + 2
            ee = c.ok("eeprom", dev=0)["eeprom"]
            assert ee["pending"] == {} and ee["writes"]["IOUT_SET"] == w0 + 2, ee
            # a deferred value that the device already holds is dropped, not written later
            assert _charge(c, 23)["deferred"] is True
            r = _charge(c, 22)
            assert r["writes"] == 0 and r["deferred"] is False, r
            assert c.ok("eeprom", dev=0)["eeprom"]["pending"] == {}
            time.sleep(3.5)
            assert _iout(sim) == 2200
            assert sim.control.eeprom_writes(0)["IOUT_SET"] == w0 + 2
            sub.close()
            assert_no_pacing_violations(sim)


def test_counters_persist_across_restart():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        ini = _ini(sim, tmp, EepromWriteIntervalSec=0)
        with Gateway(ini, tmp) as gw:
            for v in (27.0, 27.1, 27.2):
                gw.client.ok("set", dev=0, reg="VOUT_SET", value=v, client="t")
            gw.client.ok("set", dev=0, reg="IOUT_SET", value=10, client="t")
        path = os.path.join(ini["GATEWAY"]["StateDir"], "eeprom-counters.json")
        saved = json.load(open(path))
        assert saved["devices"]["0"]["writes"]["VOUT_SET"] == 3, saved
        with Gateway(ini, tmp) as gw:
            e = gw.client.ok("info")["devices"][0]["eeprom"]
            assert e["writes"]["VOUT_SET"] == 3 and e["writes"]["IOUT_SET"] == 1, e
            assert e["writes_total"] == 4, e
            gw.client.ok("set", dev=0, reg="VOUT_SET", value=27.3, client="t")
            assert gw.client.ok("eeprom", dev=0)["eeprom"]["writes_total"] == 5
        sim_w = sim.control.eeprom_writes(0)
        assert sim_w["VOUT_SET"] == 4 and sim_w["IOUT_SET"] == 1, sim_w
        # the interval is kept too: a spacing of 60 s just after a write holds a controller's
        # higher current back across the restart
        ini2 = _ini(sim, tmp, EepromWriteIntervalSec=60)
        ini2["GATEWAY"]["StateDir"] = ini["GATEWAY"]["StateDir"]
        with Gateway(ini2, tmp) as gw:
            r = _charge(gw.client, 12)
            assert r["deferred"] is True and r["pending"] == {"IOUT_SET": 12}, r
        assert sim.control.device(0)["registers"]["IOUT_SET"] == 1000
        assert_no_pacing_violations(sim)


def _iout(sim):
    return sim.control.device(0)["registers"]["IOUT_SET"]


def test_daily_budget_burst_with_spacing_then_defers():
    """Old firmware (no EEP_OFF): a controller's burst of current changes goes through up to
    the bucket's depth, one per spacing, then waits for the daily refill; a restart does not
    refill it. One write a day: nothing refills within the test."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24:fw=old"]) as sim:
        ini = _ini(sim, tmp, EepromWritesPerDay=1, EepromBurst=6, EepromMinSpacingSec=2)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["tel/0"])
            ee = c.ok("eeprom", dev=0)["eeprom"]
            assert ee["policy"] == "budget" and ee["writes_per_day"] == 1, ee
            assert ee["burst"] == 6 and ee["tokens"] == 6, ee
            assert ee["min_spacing_s"] == 2 and ee["min_interval_s"] == 2, ee
            _, tel = sub.wait(lambda t, b: t == "tel/0", what="telemetry")
            assert tel["eeprom"]["burst"] == 6 and tel["eeprom"]["min_interval_s"] == 2, tel
            w0 = sim.control.eeprom_writes(0)["IOUT_SET"]
            r = _charge(c, 20)
            assert r["deferred"] is False and _iout(sim) == 2000, r
            # output on and the current: each persisted write took a token
            ee = c.ok("eeprom", dev=0)["eeprom"]
            left = int(ee["tokens"])
            assert 1 <= left <= 4 and ee["writes_total"] == 6 - left, ee
            # the next changes come faster than the spacing: each waits for it, newest wins
            want = 20
            for _ in range(left):
                want += 1
                t0 = time.monotonic()
                r = _charge(c, want)
                assert r["deferred"] is True, r
                harness.wait_for(lambda: _iout(sim) == want * 100, timeout=15,
                                 what="%d A written after the spacing" % want)
                assert time.monotonic() - t0 >= 0.5  # held back, not written at once
            ee = c.ok("eeprom", dev=0)["eeprom"]
            assert ee["tokens"] < 1 and ee["writes"]["IOUT_SET"] == 1 + left, ee
            # the burst is spent: past the spacing, a change still waits (for the refill)
            time.sleep(2.5)
            r = _charge(c, want + 1)
            assert r["deferred"] is True, r
            time.sleep(2.5)
            assert _iout(sim) == want * 100
            ee = c.ok("eeprom", dev=0)["eeprom"]
            assert ee["pending"] == {"IOUT_SET": want + 1}, ee
            # the bucket never goes below zero
            assert ee["tokens"] >= 0, ee
            # gateway and device agree on the persisted writes
            assert sim.control.eeprom_writes(0)["IOUT_SET"] - w0 == 1 + left
            sub.close()
        saved = json.load(open(os.path.join(ini["GATEWAY"]["StateDir"], "eeprom-counters.json")))
        assert 0 <= saved["devices"]["0"]["tokens"] < 1, saved
        # a restart does not refill the bucket
        with Gateway(ini, tmp) as gw:
            ee = gw.client.ok("eeprom", dev=0)["eeprom"]
            assert ee["tokens"] < 1 and ee["writes"]["IOUT_SET"] == 1 + left, ee
            r = _charge(gw.client, want + 2)
            assert r["deferred"] is True, r
            time.sleep(2.5)
            assert _iout(sim) == want * 100
        assert sim.control.eeprom_writes(0)["IOUT_SET"] - w0 == 1 + left
        assert_no_pacing_violations(sim)


def test_budget_keys_validated():
    """The fixed interval and the daily budget are one or the other; out-of-range budget
    values are refused with the allowed range."""
    tmp = harness.temp_dir()
    base = {"Can": "slcan:/dev/ttyACM0", "ReqEndpoint": "ipc://%s/r.sock" % tmp,
            "PubEndpoint": "ipc://%s/p.sock" % tmp, "StateDir": tmp}

    def check(**gw):
        ini = {"GATEWAY": dict(base, **gw)}
        path = harness.write_ini(os.path.join(tmp, "gw.ini"), ini)
        p = subprocess.run([harness.program("bic-can-gateway"), "--check-config", "-c", path],
                           capture_output=True, text=True, timeout=20)
        return p.returncode, p.stdout + p.stderr

    rc, out = check(EepromWritesPerDay=1095, EepromBurst=300, EepromMinSpacingSec=20)
    assert rc == 0, out
    rc, out = check(EepromWriteIntervalSec=79)
    assert rc == 0, out
    rc, out = check(EepromWriteIntervalSec=79, EepromBurst=100)
    assert rc == 1 and "EepromWriteIntervalSec" in out and "EepromBurst" in out, out
    for key, value in (("EepromWritesPerDay", 0), ("EepromBurst", "many"),
                       ("EepromMinSpacingSec", -1)):
        rc, out = check(**{key: value})
        assert rc == 1 and key in out, (key, out)


def test_init_detects_eep_off():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24", "1:24:fw=old"]) as sim:
        ini = _ini(sim, tmp, devices={0: {}, 1: {}}, EepromWriteIntervalSec=79)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["evt/"])
            r = c.ok("init", dev=0, client="bicctl")
            assert r["steps"] == ["can_ctrl: set", "eep_off: set", "battery_mode: set"], r
            assert r["eep_off"] is True and r["power_cycle_needed"] is True, r
            sub.event(0, "power_cycle_needed")
            d = c.ok("info", dev=0)["devices"][0]
            assert d["caps"]["eep_off"] is True and d["eeprom"]["policy"] == "eep_off", d
            assert d["mode"] == "auto" and d["mode_pending"] == "battery", d
            assert d["can_ctrl"] is True, d
            # with EEP_OFF, setpoint writes are RAM-only: no budget, no EEPROM wear
            w0 = sim.control.eeprom_writes(0)["IOUT_SET"]
            for v in (10, 11, 12):
                r = c.ok("set", dev=0, reg="IOUT_SET", value=v, client="t")
                assert r["written"] is True and r["deferred"] is False, r
            assert sim.control.eeprom_writes(0)["IOUT_SET"] == w0
            assert c.ok("eeprom", dev=0)["eeprom"]["writes"]["IOUT_SET"] == 0
            # commissioning again changes nothing
            r = c.ok("init", dev=0, client="bicctl")
            assert r["steps"] == ["can_ctrl: already set", "eep_off: already set",
                                  "battery_mode: already set"], r
            # after the power cycle the device runs in battery mode, EEP_OFF kept
            sim.control.power_cycle(dev=0)
            sub.event(0, "offline")
            sub.event(0, "online", timeout=15)
            d = c.ok("info", dev=0)["devices"][0]
            assert d["mode"] == "battery" and d["mode_pending"] is None, d
            assert d["eeprom"]["policy"] == "eep_off", d
            assert d["limits"]["iout_a"] == [0.9, 30], d
            # old firmware: the EEP_OFF bit does not stick; reported, not an error
            r = c.ok("init", dev=1, client="bicctl")
            assert r["steps"] == ["can_ctrl: set", "eep_off: not supported",
                                  "battery_mode: set"], r
            assert r["eep_off"] is False, r
            d = c.ok("info", dev=1)["devices"][0]
            assert d["eeprom"]["policy"] == "budget" and d["caps"]["eep_off"] is False, d
            # gateway and device agree on the persisted writes
            for dev in (0, 1):
                mine = c.ok("eeprom", dev=dev)["eeprom"]["writes"]
                theirs = sim.control.eeprom_writes(dev)
                for reg in ("SYSTEM_CONFIG", "BIDIRECTIONAL_CONFIG", "IOUT_SET"):
                    assert mine[reg] == theirs[reg], (dev, reg, mine, theirs)
            sub.close()
            assert_no_pacing_violations(sim)


def test_write_the_device_ignores_is_not_counted():
    tmp = harness.temp_dir()
    # older firmware with a 20 % current minimum: it ignores 5 A (the manual's table allows it)
    with harness.Sim(devices=["0:24:min20"]) as sim:
        ini = _ini(sim, tmp, EepromWriteIntervalSec=0)
        with Gateway(ini, tmp) as gw:
            sub = Sub(gw.pub, ["evt/0"])
            e = gw.client.error("set", "verify_failed", dev=0, reg="IOUT_SET", value=5,
                                client="t")
            assert "500" in e["message"], e
            ev = sub.event(0, "write_rejected")
            assert ev["reg"] == "IOUT_SET", ev
            # the device never took it: neither side counts an EEPROM write
            assert sim.control.eeprom_writes(0)["IOUT_SET"] == 0
            assert gw.client.ok("eeprom", dev=0)["eeprom"]["writes"]["IOUT_SET"] == 0
            saved = json.load(open(os.path.join(ini["GATEWAY"]["StateDir"],
                                                "eeprom-counters.json")))
            assert saved["devices"]["0"]["writes"]["IOUT_SET"] == 0, saved
            sub.close()
        assert_no_pacing_violations(sim)


def test_state_file_failure_reported_and_count_kept():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        ini = _ini(sim, tmp, EepromWriteIntervalSec=0)
        state = ini["GATEWAY"]["StateDir"]
        # a directory in the way of the temporary file: every save fails until it is gone
        # (running out of space is covered by the unit test with /dev/full)
        os.mkdir(os.path.join(state, "eeprom-counters.json.tmp"))
        with Gateway(ini, tmp) as gw:
            sub = Sub(gw.pub, ["gw"])
            gw.client.ok("set", dev=0, reg="VOUT_SET", value=27.0, client="t")
            _, g = sub.wait(lambda t, b: t == "gw" and not b["state_file"]["ok"],
                            what="state file failure in gw health")
            assert "cannot create" in g["state_file"]["error"], g
            assert gw.client.ok("eeprom", dev=0)["eeprom"]["writes_total"] == 1
            assert "EEPROM counters not saved" in gw.proc.output()
            # disk fixed: the next save succeeds with the full count
            os.rmdir(os.path.join(state, "eeprom-counters.json.tmp"))
            gw.client.ok("set", dev=0, reg="VOUT_SET", value=27.1, client="t")
            saved = json.load(open(os.path.join(state, "eeprom-counters.json")))
            assert saved["devices"]["0"]["writes"]["VOUT_SET"] == 2, saved
            _, g = sub.wait(lambda t, b: t == "gw" and b["state_file"]["ok"],
                            what="state file ok again")
            sub.close()
        assert_no_pacing_violations(sim)


def test_commissioning_flushes_pending_and_counts_match():
    """Set-points held back by the spacing before commissioning are written as soon as EEP_OFF
    is set (they no longer wear the EEPROM), and the gateway's counters equal the device's
    own persisted writes, also across a power cycle. A factory unit, and one already in
    battery mode under CAN control."""
    for spec in ("0:24", "0:24:battery,canctrl"):
        _commission_with_pending(spec)


def _commission_with_pending(spec):
    tmp = harness.temp_dir()
    with harness.Sim(devices=[spec]) as sim:
        ini = _ini(sim, tmp, EepromWriteIntervalSec=79)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["evt/0"])
            # a person's writes go out at once, whatever the spacing
            for v in (27.0, 27.1):
                r = c.ok("set", dev=0, reg="VOUT_SET", value=v, client="t")
                assert r["outcome"] == "written", r
            # a controller's higher current waits for the spacing (79 s)
            assert _charge(c, 10)["deferred"] is False
            r = _charge(c, 15)
            assert r["deferred"] is True, r
            want = {"VOUT_SET": 2710, "IOUT_SET": 1500}
            assert c.ok("eeprom", dev=0)["eeprom"]["pending"] == {"IOUT_SET": 15}
            r = c.ok("init", dev=0, client="t")  # the lease holder commissions
            assert r["eep_off"] is True, r
            # RAM-only now: the held-back values go out at once, not after 79 s
            harness.wait_for(lambda: all(sim.control.device(0)["registers"][k] == v
                                         for k, v in want.items()),
                             timeout=10, what="the pending setpoints applied after init")
            ee = c.ok("eeprom", dev=0)["eeprom"]
            assert ee["pending"] == {} and ee["policy"] == "eep_off", ee
            sim_w = sim.control.eeprom_writes(0)
            for reg, n in ee["writes"].items():
                assert sim_w[reg] == n, (reg, ee["writes"], sim_w)
            # after a power cycle the device runs on its stored values and EEP_OFF is kept;
            # the RAM-only setpoints are gone and the lease holder is told which
            c.ok("lease", client="t", action="take", ttl_s=60)
            sim.control.power_cycle(dev=0)
            sub.event(0, "offline")
            sub.event(0, "online", timeout=15)
            e = sub.event(0, "power_cycled", timeout=15)
            assert e["holder"] == "t", e
            stored = sim.control.device(0)["eeprom"]
            assert set(e["lost"]) == {k for k, v in want.items() if stored[k] != v}, (e, stored)
            assert e["lost"]["IOUT_SET"] == {"was": 15, "now": 10}, e
            # nothing is written back by the gateway itself
            assert _iout(sim) == 1000
            harness.wait_for(lambda: c.ok("info", dev=0)["devices"][0]["eeprom"]["policy"]
                             == "eep_off", timeout=10, what="EEP_OFF detected again")
            ee = c.ok("eeprom", dev=0)["eeprom"]
            sim_w = sim.control.eeprom_writes(0)
            for reg, n in ee["writes"].items():
                assert sim_w[reg] == n, (reg, ee["writes"], sim_w)
            assert _iout(sim) == 1000
            sub.close()
            assert_no_pacing_violations(sim)


if __name__ == "__main__":
    harness.run_tests()
