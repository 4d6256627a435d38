"""Control lease and setpoints against the real bic-sim: the holder drives, intruders are
refused with "controlled by NAME", a lapsed lease puts the device in the safe state (seen in
the simulator's registers and output), direction changes happen in the safe order, power
setpoints use the measured voltage, a person's stop goes through the lease and holds the
device off for a controller (and for SafeState=min), and a restarted gateway writes nothing by itself."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import (Client, Gateway, Sub, assert_no_pacing_violations,  # noqa: E402
                    gateway_ini)

DEV = "0:24:battery,canctrl"


def _writes(sim, since=None):
    """Write frames (command, value) the simulator received after monotonic time `since`
    (all in its log when None), oldest first."""
    out = []
    window_ms = None if since is None else (time.monotonic() - since) * 1000.0
    for f in sim.control.frames(500):
        if window_ms is not None and f["age_ms"] > window_ms:
            continue
        if f["dir"] == "rx" and f["dlc"] > 2:
            data = bytes.fromhex(f["data"])
            cmd = data[0] | (data[1] << 8)
            val = data[2] | ((data[3] << 8) if len(data) > 3 else 0)
            out.append((cmd, val))
    return out


def test_lease_holder_and_intruder():
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, LeaseMaxTtlSec=600)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            # setpoints need the lease
            c.error("setpoint", "no_lease", dev=0, client="ctl", mode="charge", current_a=5)
            r = c.ok("lease", client="ctl", action="take", ttl_s=60)
            assert r["holder"] == "ctl" and 59 <= r["expires_in_s"] <= 60, r
            assert c.ok("lease", client="ctl", action="take", ttl_s=60)["holder"] == "ctl"
            e = c.error("lease", "lease_held", client="intruder", action="take", ttl_s=10)
            assert e["message"] == "controlled by ctl" and e["holder"] == "ctl", e
            assert 0 < e["expires_in_s"] <= 60, e
            c.error("lease", "lease_held", client="intruder", action="renew", ttl_s=10)
            c.error("lease", "lease_held", client="intruder", action="release")
            regs = dict(sim.control.device(0)["registers"])
            e = c.error("setpoint", "lease_held", dev=0, client="intruder", mode="off")
            assert e["message"] == "controlled by ctl", e
            c.error("setpoint", "lease_held", dev=0, client="intruder", mode="charge",
                    current_a=5, lease_ttl_s=5)
            c.error("set", "lease_held", dev=0, reg="IOUT_SET", value=5, client="intruder")
            c.error("set", "lease_held", dev=0, reg="OPERATION", value=0, client="intruder")
            assert sim.control.device(0)["registers"] == regs
            # reads and non-output registers stay open to everyone
            c.ok("get", dev=0, reg="READ_VOUT", client="intruder")
            # the holder drives
            r = c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=5)
            assert r["applied"]["iout_a"] == 5 and r["applied"]["direction"] == "charge", r
            # bounds and names
            e = c.error("lease", "out_of_range", client="ctl", action="renew", ttl_s=601)
            assert e["max"] == 600 and e["min"] == 1, e
            c.error("lease", "out_of_range", client="ctl", action="renew", ttl_s=0)
            c.error("lease", "bad_request", client="ctl", action="steal", ttl_s=5)
            c.error("lease", "bad_request", action="take", ttl_s=5)
            c.error("lease", "bad_request", client="x" * 33, action="take", ttl_s=5)
            c.error("lease", "bad_request", client="ctl", action="take", ttl_s="5")
            r = c.ok("lease", client="ctl", action="release")
            assert r["holder"] is None, r
            c.error("lease", "no_lease", client="ctl", action="renew", ttl_s=5)
            # released: the intruder may take it now; release applies no safe state
            assert c.ok("lease", client="intruder", action="take", ttl_s=5)["holder"] == "intruder"
            assert sim.control.device(0)["registers"]["OPERATION"] == 1
            assert_no_pacing_violations(sim)


def test_setpoint_directions_in_safe_order():
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            # battery limits first: charge up to 27.6 V, discharge down to 24 V
            c.ok("set", dev=0, reg="VOUT_SET", value=27.6, client="ctl")
            c.ok("set", dev=0, reg="REVERSE_VOUT_SET", value=24, client="ctl")
            r = c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=12.4,
                     lease_ttl_s=30)
            assert r["mode"] == "charge" and r["current_a"] == 12.4, r
            assert r["applied"] == {"operation": 1, "direction": "charge", "iout_a": 12.4,
                                    "rev_iout_a": 0.9}, r
            regs = sim.control.device(0)["registers"]
            assert regs["IOUT_SET"] == 1240 and regs["DIRECTION_CTRL"] == 0, regs
            assert regs["REVERSE_IOUT_SET"] == 90, regs
            harness.wait_for(lambda: sim.control.device(0)["dc_a"] > 5, what="charging")
            # the same setpoint again writes nothing
            assert c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=12.4)[
                "writes"] == 0
            # reverse: new direction's current first, then DIRECTION_CTRL, then the old
            # direction's current down to its minimum
            t0 = time.monotonic()
            r = c.ok("setpoint", dev=0, client="ctl", mode="discharge", current_a=7.5)
            w = _writes(sim, t0)
            assert w == [(0x0130, 750), (0x0100, 1), (0x0030, 90)], w
            assert r["applied"] == {"operation": 1, "direction": "discharge", "iout_a": 0.9,
                                    "rev_iout_a": 7.5}, r
            harness.wait_for(lambda: sim.control.device(0)["dc_a"] < -3, what="discharging")
            # a power setpoint converts with the measured battery voltage
            volts = c.ok("get", dev=0, reg="READ_VOUT")["values"]["READ_VOUT"]["value"]
            r = c.ok("setpoint", dev=0, client="ctl", mode="discharge", power_w=150)
            assert abs(r["current_a"] - 150 / volts) < 0.1, (r, volts)
            assert abs(sim.control.device(0)["registers"]["REVERSE_IOUT_SET"] -
                       round(150 / volts * 100)) <= 10
            # power beyond the limit is refused with the range, in amperes
            e = c.error("setpoint", "out_of_range", dev=0, client="ctl", mode="discharge",
                        power_w=5000)
            assert e["max"] == 25 and "W" in e["message"], e
            # a power or current no register holds (once undefined in the conversion) is
            # refused the same way
            for big in ({"power_w": 1.7e26}, {"power_w": 1e308}, {"current_a": 1.7e26}):
                e = c.error("setpoint", "out_of_range", dev=0, client="ctl", mode="discharge",
                            **big)
                assert e["max"] == 25, (big, e)
            # idle (default "off"): both currents to the minimum, output off
            r = c.ok("setpoint", dev=0, client="ctl", mode="idle")
            regs = sim.control.device(0)["registers"]
            assert regs["OPERATION"] == 0 and regs["IOUT_SET"] == 90, regs
            assert regs["REVERSE_IOUT_SET"] == 90, regs
            assert sim.control.device(0)["output_on"] is False
            # charge again: output back on after the current and direction
            t0 = time.monotonic()
            c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=3)
            w = _writes(sim, t0)
            assert w == [(0x0030, 300), (0x0100, 0), (0x0000, 1)], w
            c.ok("setpoint", dev=0, client="ctl", mode="off")
            assert sim.control.device(0)["registers"]["OPERATION"] == 0
            c.error("setpoint", "bad_request", dev=0, client="ctl", mode="boost")
            c.error("setpoint", "bad_request", dev=0, client="ctl", mode="charge")
            c.error("setpoint", "bad_request", dev=0, client="ctl", mode="charge",
                    current_a=-1)
            c.error("setpoint", "bad_request", dev=0, client="ctl", mode="charge",
                    current_a=1, power_w=20)
            c.error("setpoint", "bad_request", dev=0, mode="off")
            assert_no_pacing_violations(sim)


def test_stop_goes_through_the_lease_and_holds_the_device_off():
    """A person's stop (the bridge's state/set 0): no lease needed, the holder keeps it; the
    seed's idle set-points in a safe order; a controller's switch-on is refused with held_off
    until a person's on or a setpoint with resume."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            c.ok("setpoint", dev=0, client="ctl", mode="discharge", current_a=7.5,
                 lease_ttl_s=60)
            t0 = time.monotonic()
            r = c.ok("setpoint", dev=0, client="person", mode="stop", manual=True,
                     lease_ttl_s=60)
            # currents down first, then the output off, then the charge direction
            w = _writes(sim, t0)
            assert w == [(0x0130, 90), (0x0000, 0), (0x0100, 0)], w
            assert r["applied"] == {"operation": 0, "direction": "charge", "iout_a": 0.9,
                                    "rev_iout_a": 0.9}, r
            info = c.ok("info", dev=0)["devices"][0]
            assert info["lease"]["holder"] == "ctl" and info["held_off"] == "person", info
            # the holder may not switch the output on again; off and idle off are fine
            e = c.error("setpoint", "held_off", dev=0, client="ctl", mode="charge", current_a=5)
            assert e["by"] == "person" and "'person'" in e["message"], e
            c.error("setpoint", "held_off", dev=0, client="ctl", mode="discharge", current_a=5)
            c.error("setpoint", "bad_request", dev=0, client="ctl", mode="charge", current_a=5,
                    resume="yes")
            assert c.ok("setpoint", dev=0, client="ctl", mode="idle")["writes"] == 0
            c.ok("setpoint", dev=0, client="ctl", mode="off")
            assert sim.control.device(0)["registers"]["OPERATION"] == 0
            # resumed by a person: the hold ends
            c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=5, resume=True)
            assert sim.control.device(0)["registers"]["OPERATION"] == 1
            assert c.ok("info", dev=0)["devices"][0]["held_off"] is None
            # a person's on ends it too (the holder's lease does not block a stop, it blocks
            # another client's on)
            c.ok("setpoint", dev=0, client="person", mode="stop")
            c.error("set", "lease_held", dev=0, reg="OPERATION", value=1, client="person")
            c.ok("set", dev=0, reg="OPERATION", value=1, client="ctl")
            c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=6)
            assert sim.control.device(0)["registers"]["IOUT_SET"] == 600
            assert_no_pacing_violations(sim)


def test_lapse_applies_safe_state():
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["evt/0", "tel/0"])
            c.ok("setpoint", dev=0, client="charge-ctl", mode="discharge", current_a=10,
                 lease_ttl_s=2)
            harness.wait_for(lambda: sim.control.device(0)["dc_a"] < -3, what="discharging")
            _, t = sub.wait(lambda tp, b: tp == "tel/0" and b["lease"] is not None,
                            what="telemetry with the lease")
            assert t["lease"]["holder"] == "charge-ctl", t
            # the controller dies (stops renewing): within the TTL the safe state follows
            e = sub.event(0, "lease_lapsed")
            assert e["holder"] == "charge-ctl", e
            e = sub.event(0, "safe_state")
            assert e["state"] == "off" and e["reason"] == "lease lapsed", e
            dev = sim.control.device(0)
            assert dev["registers"]["OPERATION"] == 0, dev["registers"]
            assert dev["registers"]["REVERSE_IOUT_SET"] == 90, dev["registers"]
            assert dev["registers"]["IOUT_SET"] == 90, dev["registers"]
            assert dev["output_on"] is False
            harness.wait_for(lambda: abs(sim.control.device(0)["dc_a"]) < 0.5,
                             what="no current after the safe state")
            assert c.ok("ping")["ok"] and c.ok("info")["devices"][0]["lease"] is None
            sub.close()
            assert_no_pacing_violations(sim)


def test_idle_min_and_safe_state_hold():
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, IdleState="min",
                          SafeState="hold")
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["evt/0"])
            c.ok("setpoint", dev=0, client="ctl", mode="discharge", current_a=8, lease_ttl_s=2)
            r = c.ok("setpoint", dev=0, client="ctl", mode="idle")
            assert r["applied"] == {"operation": 1, "direction": "charge", "iout_a": 0.9,
                                    "rev_iout_a": 0.9}, r
            regs = dict(sim.control.device(0)["registers"])
            assert regs["OPERATION"] == 1 and regs["DIRECTION_CTRL"] == 0, regs
            # "hold": the lapse is announced and nothing is written
            t0 = time.monotonic()
            e = sub.event(0, "safe_state")
            assert e["state"] == "hold" and e["reason"] == "lease lapsed", e
            time.sleep(0.5)
            assert _writes(sim, t0) == []
            assert sim.control.device(0)["registers"] == regs
            sub.close()
            assert_no_pacing_violations(sim)


def test_held_off_device_stays_off_through_a_lapse_with_safe_state_min():
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, SafeState="min")
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["evt/0"])
            c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=8, lease_ttl_s=2)
            c.ok("setpoint", dev=0, client="person", mode="stop", manual=True)
            # the holder vanishes: its lease lapses; the stopped device is not switched on
            e = sub.event(0, "safe_state")
            assert e["state"] == "off" and e["reason"] == "lease lapsed", e
            regs = sim.control.device(0)["registers"]
            assert regs["OPERATION"] == 0 and regs["IOUT_SET"] == 90, regs
            sub.close()


def test_lapse_while_unreachable_applies_safe_state_on_return():
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, OfflineAfterTimeouts=2)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["evt/0"])
            sim.control.set(boot_ms=300)
            c.ok("setpoint", dev=0, client="charge-ctl", mode="discharge", current_a=10,
                 lease_ttl_s=2)
            sim.control.ac(False, dev=0)  # the device drops off the bus
            sub.event(0, "offline")
            sub.event(0, "lease_lapsed")
            time.sleep(0.5)
            sim.control.ac(True, dev=0)  # back, with its persisted setpoints
            sub.event(0, "online", timeout=15)
            e = sub.event(0, "safe_state", timeout=15)
            assert e["state"] == "off" and e["reason"] == "lease lapsed", e
            regs = sim.control.device(0)["registers"]
            assert regs["OPERATION"] == 0 and regs["REVERSE_IOUT_SET"] == 90, regs
            sub.close()
            assert_no_pacing_violations(sim)


def test_lease_survives_restart_and_lapses_without_holder():
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0)
        with Gateway(ini, tmp) as gw:
            gw.client.ok("setpoint", dev=0, client="charge-ctl", mode="discharge",
                         current_a=6, lease_ttl_s=3)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["evt/0"])
            # the holder renews after the restart as if nothing happened; others are refused
            assert c.ok("lease", client="charge-ctl", action="renew", ttl_s=3)["holder"] == \
                "charge-ctl"
            c.error("setpoint", "lease_held", dev=0, client="other", mode="off")
            assert sim.control.device(0)["registers"]["OPERATION"] == 1
            # then the controller is gone for good: the lease lapses, the safe state follows
            e = sub.event(0, "lease_lapsed")
            assert e["holder"] == "charge-ctl", e
            sub.event(0, "safe_state")
            assert sim.control.device(0)["registers"]["OPERATION"] == 0
            sub.close()
        # a lapsed lease stays lapsed across the next restart
        with Gateway(ini, tmp) as gw:
            assert gw.client.ok("info")["devices"][0]["lease"] is None
        assert_no_pacing_violations(sim)


def test_restarted_gateway_writes_nothing():
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0)
        with Gateway(ini, tmp) as gw:
            gw.client.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=8,
                         lease_ttl_s=600)
        regs = dict(sim.control.device(0)["registers"])
        t0 = time.monotonic()
        with Gateway(ini, tmp) as gw:
            time.sleep(2.0)  # identification and a few telemetry cycles
            # the holder keeps its lease across the restart (a full TTL to renew)
            lease = gw.client.ok("info")["devices"][0]["lease"]
            assert lease["holder"] == "ctl" and lease["expires_in_s"] > 590, lease
        assert _writes(sim, t0) == []
        assert sim.control.device(0)["registers"] == regs
        assert_no_pacing_violations(sim)


def test_token_binds_the_lease():
    """The holder's name is public; its token is not. A second client on the socket that uses
    the controller's name without the token can neither take, renew nor release the lease,
    nor send a setpoint, a set or init to the device: refused with bad_token and logged, at
    most a line a second under a flood. The real holder keeps the device and drives it with
    its token, across a gateway restart too. The token is in the taker's reply only: never in
    info, telemetry, events or the log; the lease file that keeps it is its owner's only."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=[DEV]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, LeaseMaxTtlSec=600)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub)
            r = c.ok("lease", client="charge-ctl", action="take", ttl_s=60, token=None)
            token = r["token"]
            assert len(token) == 32 and all(ch in "0123456789abcdef" for ch in token), r
            c.ok("setpoint", dev=0, client="charge-ctl", token=token, mode="charge",
                 current_a=5)
            regs = dict(sim.control.device(0)["registers"])
            hostile = Client(gw.req)
            wrong = "0" * 32 if token != "0" * 32 else "1" * 32
            for tk in (None, wrong):
                f = {"client": "charge-ctl", "token": tk}
                for _ in range(20):  # a flood: logged once a second, not twenty times
                    e = hostile.error("lease", "bad_token", action="renew", ttl_s=600, **f)
                assert e["dev"] == 0 and "token" in e["message"], e
                hostile.error("lease", "bad_token", action="take", ttl_s=600, **f)
                hostile.error("lease", "bad_token", action="take", dev=0, ttl_s=600, **f)
                hostile.error("lease", "bad_token", action="renew", dev=0, ttl_s=600, **f)
                hostile.error("lease", "bad_token", action="release", **f)
                hostile.error("lease", "bad_token", action="release", dev=0, **f)
                hostile.error("setpoint", "bad_token", dev=0, mode="off", **f)
                hostile.error("setpoint", "bad_token", dev=0, mode="discharge", current_a=20,
                              lease_ttl_s=600, **f)
                hostile.error("set", "bad_token", dev=0, reg="OPERATION", value=0, **f)
                hostile.error("set", "bad_token", dev=0, reg="IOUT_SET", value=20, **f)
                hostile.error("init", "bad_token", dev=0, **f)
            hostile.error("lease", "bad_request", client="charge-ctl", action="renew", ttl_s=60,
                          token=token.upper())
            hostile.close()
            # nothing reached the device; the controller still holds it, with the TTL it set
            assert sim.control.device(0)["registers"] == regs
            lease = c.ok("info")["devices"][0]["lease"]
            assert lease["holder"] == "charge-ctl" and lease["expires_in_s"] <= 60, lease
            # and drives it with its token
            c.ok("lease", client="charge-ctl", token=token, action="renew", ttl_s=60)
            r = c.ok("setpoint", dev=0, client="charge-ctl", token=token, mode="charge",
                     current_a=7, lease_ttl_s=60)
            assert r["applied"]["iout_a"] == 7 and r["token"] == token, r
            # the refusals are logged, without the token and not once per request
            out = gw.proc.output()
            lines = [ln for ln in out.splitlines() if "token of the lease holder" in ln]
            assert 1 <= len(lines) <= 10, lines
            assert "as 'charge-ctl' refused" in lines[0], lines
            # the token is nowhere anyone else can read it
            info = c.ok("info")
            sub.wait(lambda t, b: t == "tel/0" and b.get("lease"), what="telemetry")
            sub.wait(lambda t, b: t == "gw", what="gateway health")
            assert token not in json.dumps(info)
            assert all(token not in json.dumps(b) for _, b in sub.seen), "token published"
            assert token not in out
            sub.close()
            path = os.path.join(ini["GATEWAY"]["StateDir"], "lease.json")
            assert os.stat(path).st_mode & 0o777 == 0o600, oct(os.stat(path).st_mode)
        # a restarted gateway keeps the lease with its token: the holder renews, the name
        # alone is still refused
        with Gateway(ini, tmp) as gw:
            c = gw.client
            c.error("lease", "bad_token", client="charge-ctl", token=None, action="renew",
                    ttl_s=60)
            c.ok("lease", client="charge-ctl", token=token, action="renew", ttl_s=60)
            r = c.ok("lease", client="charge-ctl", token=token, action="release")
            assert "token" not in r, r
            # released: the token is worth nothing now, a new take gets a new one
            c.error("lease", "no_lease", client="charge-ctl", token=token, action="renew",
                    ttl_s=60)
            r = c.ok("lease", client="charge-ctl", token=token, action="take", ttl_s=60)
            assert r["token"] != token, r
        assert_no_pacing_violations(sim)


if __name__ == "__main__":
    harness.run_tests()
