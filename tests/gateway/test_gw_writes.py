"""The write path against the real bic-sim, bic-can-gateway and bicctl: a person's write lands
at once on a factory unit (every write persists there) and says what happened; the daily
EEPROM budget refuses a person's write with the remedy when it is spent, never queues it,
keeps the lease holder's share and never goes below zero; a lower current goes out during the
spacing; the configured battery window holds on both sides whoever asks; the configured
[DEVICE] values are brought onto the device at start and after a power cycle (and cost no
write when they are there already); a device where that fails gets no setpoint; a setpoint
writes a register it knows without reading it first; a gateway with nothing to serve says which
keys to set."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, Sub, assert_no_pacing_violations, gateway_ini  # noqa: E402

BICCTL = harness.program("bicctl")


def bicctl(gw, *args):
    p = subprocess.run([BICCTL, "-c", gw.path] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def _ini(sim, tmp, **kw):
    kw.setdefault("ResponseTimeoutMs", 200)  # the pty and the processes share a busy machine
    return gateway_ini(sim, tmp, **kw)


def _regs(sim, dev=0):
    return sim.control.device(dev)["registers"]


def _eeprom(gw, dev=0):
    return gw.client.ok("eeprom", dev=dev)["eeprom"]


def test_factory_unit_takes_a_persons_writes_at_once():
    """The factory state persists every write (EEP_OFF not set): dcset then dcread shows the
    new value at once, and five cvset in a row each land, each saying so."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        with Gateway(_ini(sim, tmp), tmp) as gw:
            assert _eeprom(gw)["policy"] == "budget"
            rc, out, err = bicctl(gw, "dcset", 1200)
            assert rc == 0 and out == "" and "REVERSE_IOUT_SET 12.00 A written" in err, (rc, err)
            rc, out, err = bicctl(gw, "dcread")
            assert rc == 0 and out == "1200\n", (rc, out, err)
            w0 = sim.control.eeprom_writes(0)["VOUT_SET"]
            for v in range(2700, 2705):
                rc, out, err = bicctl(gw, "cvset", v)
                assert rc == 0 and "VOUT_SET %.2f V written" % (v / 100) in err, (v, rc, err)
                assert _regs(sim)["VOUT_SET"] == v
                rc, out, _ = bicctl(gw, "cvread")
                assert out == "%d\n" % v, out
            assert sim.control.eeprom_writes(0)["VOUT_SET"] == w0 + 5
            # the same value again: nothing written, said so, its own exit code
            rc, out, err = bicctl(gw, "cvset", 2704)
            assert rc == 5 and "unchanged" in err, (rc, err)
            assert sim.control.eeprom_writes(0)["VOUT_SET"] == w0 + 5
            assert "VOUT_SET 27.04 V written (by bicctl)" in gw.proc.output()
        assert_no_pacing_violations(sim)


def _frames(sim, since, cmds):
    """(command, "W" value | "R") of the request frames the simulator received for cmds after
    monotonic time `since`, oldest first."""
    out = []
    window_ms = (time.monotonic() - since) * 1000.0
    for f in sim.control.frames(500):
        if f["dir"] != "rx" or f["age_ms"] > window_ms:
            continue
        data = bytes.fromhex(f["data"])
        cmd = data[0] | (data[1] << 8)
        if cmd in cmds:
            out.append((cmd, data[2] | (data[3] << 8)) if f["dlc"] > 3 else (cmd, "R"))
    return out


def test_setpoint_writes_a_known_register_without_reading_it_first():
    """A setpoint's register whose value the gateway read moments ago goes to the bus as a
    write at once, followed by its read-back; the registers that keep their values are read
    (the device confirms them), not written."""
    tmp = harness.temp_dir()
    # telemetry once a minute: in the seconds of the test only the setpoints use the bus
    with harness.Sim(devices=["0:24:battery,canctrl"]) as sim:
        ini = _ini(sim, tmp, EepromWriteIntervalSec=0, TelemetryPeriodMs=60000)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=12.4, lease_ttl_s=30)
            regs = (0x0030, 0x0100, 0x0000, 0x0130)
            t0 = time.monotonic()
            r = c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=20)
            assert r["writes"] == 1, r
            f = _frames(sim, t0, regs)
            # IOUT_SET written first, then read back; the others only read
            assert f == [(0x0030, 2000), (0x0030, "R"), (0x0100, "R"), (0x0000, "R"),
                         (0x0130, "R")], f
            assert _regs(sim)["IOUT_SET"] == 2000
            assert "IOUT_SET 20 A written" in gw.proc.output()
        assert_no_pacing_violations(sim)


def test_spent_budget_refuses_a_persons_write_with_the_remedy():
    """Eight writes saved up, two of them kept for the lease holder: bicctl's writes land
    until only the reserve is left, then a write is refused (exit 4) with the reason and the
    remedy and nothing is queued; a lower current still goes out; the holder still writes;
    the bucket never goes below zero."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        ini = _ini(sim, tmp, EepromWritesPerDay=1, EepromBurst=8, EepromMinSpacingSec=20)
        with Gateway(ini, tmp) as gw:
            left = int(_eeprom(gw)["tokens"])  # what the [DEVICE] values at start left
            assert left >= 3, _eeprom(gw)
            for i in range(left - 2):
                rc, _, err = bicctl(gw, "cvset", 2700 + i)
                assert rc == 0 and "written" in err, (i, rc, err)
            regs = _regs(sim)
            rc, out, err = bicctl(gw, "cvset", 2750)
            assert rc == 4 and out == "" and err.startswith("bicctl: refused"), (rc, err)
            assert "daily EEPROM budget spent" in err and "bicctl init_mode" in err, err
            assert "kept for the device's controller" in err, err
            assert _regs(sim)["VOUT_SET"] == regs["VOUT_SET"]
            ee = _eeprom(gw)
            assert ee["pending"] == {} and 2 <= ee["tokens"] < 3, ee
            # toward safety: a lower current goes out all the same
            assert regs["IOUT_SET"] > 500, regs
            rc, _, err = bicctl(gw, "ccset", 500)
            assert rc == 0 and "written" in err, (rc, err)
            assert _regs(sim)["IOUT_SET"] == 500
            # the holder of the device's lease spends the reserve
            tk = gw.client.ok("lease", client="ctl", action="take", ttl_s=60)["token"]
            rc, _, err = bicctl(gw, "--client", "ctl", "--token", tk, "cvset", 2750)
            assert rc == 0 and "written" in err, (rc, err)
            rc, _, err = bicctl(gw, "--client", "ctl", "--token", tk, "cvset", 2751)
            rc, _, err = bicctl(gw, "--client", "ctl", "--token", tk, "cvset", 2752)
            assert rc == 4 and "budget" in err, (rc, err)
            ee = _eeprom(gw)
            assert ee["tokens"] >= 0 and ee["pending"] == {}, ee
            # a person's setpoint (the bridge's charge/set) is refused the same way, saying
            # which write did not go out; a controller's is deferred instead
            e = gw.client.error("setpoint", "eeprom_budget", dev=0, client="ctl", mode="charge",
                                current_a=25, manual=True)
            refused = [o for o in e["outcomes"] if o["outcome"] == "refused"]
            assert refused and refused[0]["reg"] == "IOUT_SET" and e["remedy"], e
            assert _eeprom(gw)["pending"] == {}
            r = gw.client.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=25)
            assert r["deferred"] is True and r["pending"]["IOUT_SET"] == 25, r
            assert _regs(sim)["IOUT_SET"] == 500
            # gateway and device agree on the persisted writes
            ee = _eeprom(gw)
            sim_w = sim.control.eeprom_writes(0)
            assert all(sim_w[k] == n for k, n in ee["writes"].items()), (ee, sim_w)
        assert_no_pacing_violations(sim)


def test_lower_current_during_the_spacing_goes_out_at_once():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        with Gateway(_ini(sim, tmp), tmp) as gw:
            c = gw.client

            def charge(a):
                return c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=a,
                            lease_ttl_s=60)
            assert charge(20)["deferred"] is False and _regs(sim)["IOUT_SET"] == 2000
            r = charge(25)  # higher, inside the 20 s spacing: deferred, says until when
            assert r["deferred"] is True, r
            o = [x for x in r["outcomes"] if x["reg"] == "IOUT_SET"][0]
            assert o["outcome"] == "deferred" and 0 < o["until_s"] <= 20, o
            assert _regs(sim)["IOUT_SET"] == 2000
            r = charge(10)  # lower, inside the spacing: at once
            assert r["deferred"] is False, r
            o = [x for x in r["outcomes"] if x["reg"] == "IOUT_SET"][0]
            assert o["outcome"] == "written" and o.get("toward_safety") is True, o
            assert _regs(sim)["IOUT_SET"] == 1000
            assert _eeprom(gw)["pending"] == {}  # the higher value is not written later
            # a person's setpoint (the bridge's charge/set) does not wait for the spacing
            r = c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=22, manual=True)
            assert r["deferred"] is False and _regs(sim)["IOUT_SET"] == 2200, r
            c.error("setpoint", "bad_request", dev=0, client="ctl", mode="off", manual=1)
            r = c.ok("setpoint", dev=0, client="ctl", mode="off")
            assert r["deferred"] is False and _regs(sim)["OPERATION"] == 0, r
            time.sleep(1)
            assert _regs(sim)["IOUT_SET"] == 2200
        assert_no_pacing_violations(sim)


def test_battery_window_on_both_sides_whoever_asks():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24", "1:48"]) as sim:
        devs = {0: {}, 1: {"Type": "BIC2200-48CAN", "ChargeVoltage": 5600,
                           "DischargeVoltage": 4800, "MaxChargeCurrent": 2000,
                           "MaxDischargeCurrent": 2000}}
        with Gateway(_ini(sim, tmp, devices=devs), tmp) as gw:
            c = gw.client
            regs = _regs(sim)
            # a charge voltage below the configured DischargeVoltage (24.00 V)
            rc, _, err = bicctl(gw, "--dev", 0, "cvset", 2300)
            assert rc == 4 and "allowed 2400-2760" in err, (rc, err)
            e = c.error("set", "out_of_range", dev=0, reg="VOUT_SET", raw=2300, client="t")
            assert e["min"] == 24 and e["max"] == 27.6, e
            # a discharge end voltage above the charge voltage
            rc, _, err = bicctl(gw, "--dev", 0, "dvset", 2800)
            assert rc == 4 and "allowed 2400-2760" in err, (rc, err)
            e = c.error("set", "out_of_range", dev=1, reg="REVERSE_VOUT_SET", value=65,
                        client="t")
            assert e["min"] == 48 and e["max"] == 56, e
            assert _regs(sim) == regs
            # ... and above the charge voltage the device holds now
            rc, _, err = bicctl(gw, "--dev", 0, "cvset", 2500)
            assert rc in (0, 5), (rc, err)
            harness.wait_for(lambda: c.ok("get", dev=0, regs=["VOUT_SET"])["values"]
                             ["VOUT_SET"]["raw"] == 2500, what="VOUT_SET read")
            rc, _, err = bicctl(gw, "--dev", 0, "dvset", 2600)
            assert rc == 4 and "allowed 2400-2499" in err and "25 V" in err, (rc, err)
            e = c.error("set", "out_of_range", dev=0, reg="REVERSE_VOUT_SET", raw=2500,
                        client="t")
            assert e["max"] == 24.99, e
            assert _regs(sim)["REVERSE_VOUT_SET"] == 2400
        assert_no_pacing_violations(sim)


def test_configured_limits_are_brought_onto_the_device():
    """A device holding VOUT_SET 25.20 V holds the configured 26.60 V after the gateway
    starts, again after a power cycle; one that holds them already costs no EEPROM write."""
    tmp = harness.temp_dir()
    dev = {0: {"ChargeVoltage": 2660, "DischargeVoltage": 2400, "MaxChargeCurrent": 2000}}
    with harness.Sim(devices=["0:24"]) as sim:
        ini = _ini(sim, tmp, devices=dev, ApplyDeviceLimits=0)
        with Gateway(ini, tmp) as gw:  # by hand: the device keeps its values
            d = gw.client.ok("info", dev=0)["devices"][0]
            assert d["device_limits"] == {"state": "off"}, d
            gw.client.ok("set", dev=0, reg="VOUT_SET", value=25.2, client="t")
        assert _regs(sim)["VOUT_SET"] == 2520
        assert _regs(sim)["IOUT_SET"] > 2000  # the factory value, above MaxChargeCurrent
        ini = _ini(sim, tmp, devices=dev)
        with Gateway(ini, tmp) as gw:
            d = gw.client.ok("info", dev=0)["devices"][0]
            assert d["device_limits"] == {"state": "ok"}, d
            rc, out, _ = bicctl(gw, "info")
            assert "device values the [DEVICE] end voltages and current maxima are on" in out, out
            regs = _regs(sim)
            assert regs["VOUT_SET"] == 2660 and regs["REVERSE_VOUT_SET"] == 2400, regs
            assert regs["IOUT_SET"] == 2000, regs  # lowered to MaxChargeCurrent
            out = gw.proc.output()
            assert "VOUT_SET 26.6 V written (by [DEVICE] limits)" in out, out
            assert "the configured [DEVICE] limits are on the device" in out, out
            # a power cycle brings back what the EEPROM holds; the gateway checks again
            sub = Sub(gw.pub, ["evt/0"])
            gw.client.ok("set", dev=0, reg="VOUT_SET", value=26.0, client="t")
            sim.control.power_cycle(dev=0)
            sub.event(0, "offline")
            sub.event(0, "online", timeout=20)
            e = sub.event(0, "limits_applied", timeout=20)
            assert e["writes"] == 1, e
            assert _regs(sim)["VOUT_SET"] == 2660
            sub.close()
        # a device that already holds the configured values: no EEPROM write at start
        total = sim.control.state(0)["devices"][0]["eeprom_writes_total"]
        regs = _regs(sim)
        with Gateway(ini, tmp) as gw:
            assert gw.client.ok("info", dev=0)["devices"][0]["device_limits"]["state"] == "ok"
            time.sleep(1)
            assert sim.control.state(0)["devices"][0]["eeprom_writes_total"] == total
            assert _regs(sim) == regs
            assert _eeprom(gw)["writes_total"] == total
        assert_no_pacing_violations(sim)


def test_device_without_its_limits_gets_no_setpoint():
    """The budget is spent, so the configured charge voltage cannot be written: reported
    (info, event, log) and setpoint refused until it is fixed."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        ini = _ini(sim, tmp, EepromWritesPerDay=1, EepromBurst=1, ApplyDeviceLimits=0)
        with Gateway(ini, tmp) as gw:
            gw.client.ok("set", dev=0, reg="VOUT_SET", value=25.0, client="t")  # the one token
        ini = _ini(sim, tmp, EepromWritesPerDay=1, EepromBurst=1)
        with Gateway(ini, tmp) as gw:
            d = gw.client.ok("info", dev=0)["devices"][0]
            assert d["device_limits"]["state"] == "failed", d
            assert "VOUT_SET 27.6 not written" in d["device_limits"]["error"], d
            assert "daily EEPROM budget spent" in d["device_limits"]["error"], d
            e = gw.client.error("setpoint", "limits_not_applied", dev=0, client="ctl",
                                mode="charge", current_a=5, lease_ttl_s=10)
            assert e["dev"] == 0 and "[DEVICE]" in e["message"], e
            assert _regs(sim)["VOUT_SET"] == 2500
            assert "the configured [DEVICE] limits are not on the device" in gw.proc.output()
            rc, out, _ = bicctl(gw, "status")
            assert "device values NOT APPLIED: VOUT_SET 27.6 not written" in out, out
        assert_no_pacing_violations(sim)


def test_nothing_to_serve_names_the_keys():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        ini = _ini(sim, tmp, devices={})
        with Gateway(ini, tmp) as gw:
            harness.wait_for(lambda: "no device to serve" in gw.proc.output(), 10,
                             what="the warning")
            out = gw.proc.output()
            assert "[DEVICE] Id/0/Type" in out and "Id/0/ChargeVoltage" in out, out
            assert "Discover = 1" in out, out


if __name__ == "__main__":
    harness.run_tests()
