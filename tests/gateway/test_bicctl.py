"""bicctl against the real gateway and bic-sim on a pty: every seed command checked against the
simulator's true state, verified writes skipped when equal, bad values and unknown commands
with their exit codes and messages, no gateway, an offline device, a lease held by another
client, and watch. (The bus pacing is the gateway's own tests' subject.)"""

import ast
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, gateway_ini  # noqa: E402

BICCTL = harness.program("bicctl")

# A 24 V unit in battery mode under CAN control, in the cold (negative temperatures), with
# the firmware revision and date the seed's dump example shows.
DEV0 = "0:24:battery,canctrl,ambient=-10,rev=0E0DFFFFFFFF,date=230512"


def run(cfg, *args, timeout=30):
    """bicctl -c CFG ARGS...: (exit code, stdout, stderr). CFG None: no -c."""
    argv = [BICCTL] + (["-c", cfg] if cfg else []) + [str(a) for a in args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ok(cfg, *args):
    rc, out, err = run(cfg, *args)
    assert rc == 0, "bicctl %s: exit %d, stderr %r" % (" ".join(map(str, args)), rc, err)
    return out


WRITE_EXIT = {"written": 0, "unchanged": 5, "deferred": 6}


def wrote(cfg, *args, outcome=None):
    """Runs a write command: nothing on stdout (as the seed), one line on stderr saying what
    happened, and the exit code of that outcome. Returns the outcome."""
    rc, out, err = run(cfg, *args)
    what = "bicctl %s" % " ".join(map(str, args))
    assert out == "" and err.count("\n") == 1, "%s: stdout %r, stderr %r" % (what, out, err)
    found = [k for k in WRITE_EXIT if " %s" % k in err]
    assert len(found) == 1, "%s: no single outcome in %r" % (what, err)
    assert rc == WRITE_EXIT[found[0]], "%s: exit %d for %r" % (what, rc, err)
    if outcome is not None:
        assert found[0] == outcome, "%s: %r, expected %s" % (what, err, outcome)
    return found[0]


def fails(cfg, code, *args, contains=()):
    """Runs bicctl, asserts exit CODE and one clear line on stderr; returns that line."""
    rc, out, err = run(cfg, *args)
    what = "bicctl %s" % " ".join(map(str, args))
    assert rc == code, "%s: expected exit %d, got %d (stdout %r, stderr %r)" % (
        what, code, rc, out, err)
    assert err.startswith("bicctl: ") and err.count("\n") == 1, "%s: stderr %r" % (what, err)
    for c in contains:
        assert c in err, "%s: %r not in %r" % (what, c, err)
    return err


def number(cfg, *args):
    out = ok(cfg, *args)
    assert out.endswith("\n") and out.count("\n") == 1, out
    return int(out)


def _start(tmp, devices=(DEV0,), dev_cfg=None, wait_online=True, **gw):
    sim = harness.Sim(devices=list(devices))
    # a roomy CAN reply timeout: the pty and both processes share a busy machine
    gw.setdefault("ResponseTimeoutMs", 200)
    ini = gateway_ini(sim, tmp, devices=dev_cfg, EepromWriteIntervalSec=0, **gw)
    try:
        return sim, Gateway(ini, tmp, wait_online=wait_online)
    except Exception:
        sim.stop()
        raise


def test_seed_reads_match_the_device():
    tmp = harness.temp_dir()
    sim, gw = _start(tmp)
    with sim, gw:
        cfg = gw.path
        wrote(cfg, "off")
        harness.wait_for(lambda: abs(sim.control.device(0)["dc_a"]) < 0.005, 15,
                         what="no current with the output off")
        d = sim.control.device(0)
        regs = d["registers"]
        assert number(cfg, "outputread") == 0 == regs["OPERATION"]
        assert number(cfg, "cvread") == regs["VOUT_SET"]
        assert number(cfg, "ccread") == regs["IOUT_SET"]
        assert number(cfg, "dvread") == regs["REVERSE_VOUT_SET"]
        assert number(cfg, "dcread") == regs["REVERSE_IOUT_SET"]
        assert number(cfg, "dirread") == regs["DIRECTION_CTRL"]
        assert abs(number(cfg, "vread") - d["dc_v"] * 100) <= 20, d["dc_v"]
        assert number(cfg, "cread") == 0
        assert number(cfg, "acvread") == 2300  # the simulator's mains, V x 10
        # below 0 degC: signed, not the seed's 6553.x degC
        temp = number(cfg, "tempread")
        true_t = sim.control.device(0)["temperature_c"]
        assert temp < 0 and abs(temp - true_t * 10) <= 20, (temp, true_t)
        fan = ok(cfg, "fanread")
        f1, f2 = [int(x.split(":")[1]) for x in fan.split()]
        rpm = sim.control.device(0)["fan_rpm"]
        assert fan.startswith("fan1:") and abs(f1 - rpm[0]) <= 100 and abs(f2 - rpm[1]) <= 100, (
            fan, rpm)
        assert ok(cfg, "typeread") == "BIC-2200-24 \n"

        # statusread: six lines decoded at the manual's bit positions
        status = sim.control.device(0)["system_status"]
        lines = ok(cfg, "statusread").splitlines()
        expect = [
            "Current Device is %s" % ("Master" if status & 1 else "Slave"),
            "Secondary DD output Status %s" % ("NORMAL" if status & 2 else "TOO LOW"),
            "Primary PFC %s" % ("ON normally" if status & 4 else "OFF oder abnormal"),
            "Active Dummy Load %s" % ("on" if status & 16 else "off / not_supported"),
            "NOT in initialization status" if status & 32 else "Device in initialization status",
            "EEPROM data access %s" % ("error" if status & 64 else "normal"),
        ]
        assert lines == expect, (lines, status)

        # faultread: each bit against the device; then an injected OTP shows up
        def faults():
            return {ln.split()[0]: int(ln.split()[1])
                    for ln in ok(cfg, "faultread", "--table").splitlines()}
        bits = {"fan": 0, "otp": 1, "ovp": 2, "olp": 3, "short": 4, "acRange": 5, "dcOff": 6,
                "otpHi": 7, "ovpHi": 8}
        fs = sim.control.device(0)["fault_status"]
        got = faults()
        assert got == {k: (fs >> b) & 1 for k, b in bits.items()}, (got, fs)
        sim.control.fault("otp", True)
        assert faults()["otp"] == 1
        # The default is cbic2200.py's output: change lines, then its dictionary.
        lines = ok(cfg, "faultread").splitlines()
        assert lines[0] == "fault state changed can = 0 cnt:0", lines
        assert "fault state changed otp = 1 cnt:1" in lines, lines
        d = [ast.literal_eval(ln) for ln in lines if ln.startswith("{")]
        assert [e["desc"] for e in d][:3] == ["fanspeed abnormal", "over temperature protection",
                                              "internal hi temperature protection"], d
        assert len(d) == 11 and d[1]["active"] == 1 and d[10]["active"] == 0, d
        sim.control.fault("otp", False)
        harness.wait_for(lambda: faults()["otp"] == 0, 10, what="OTP cleared")

        # dump: the seed's dictionary, values from the device and the gateway's counter
        out = ok(cfg, "dump")
        assert out.startswith("dev-info:{") and out.endswith("}\n"), out
        info = ast.literal_eval(out[len("dev-info:"):])
        regs = sim.control.device(0)["registers"]
        assert info["modelName"] == "BIC-2200-24 ", info
        assert info["firmRev"] == "0xd0e", info
        assert info["sysCfg"] == hex(regs["SYSTEM_CONFIG"]), (info, regs)
        assert info["sysCfgBDir"] == hex(regs["BIDIRECTIONAL_CONFIG"]) == "0x1", (info, regs)
        assert info["manDate"] == "230512", info
        writes = gw.client.ok("eeprom", dev=0)["eeprom"]["writes_total"]
        assert info["cntWrite"] == writes, (info, writes)


def test_seed_writes_verified_and_skipped_when_equal():
    tmp = harness.temp_dir()
    sim, gw = _start(tmp)
    with sim, gw:
        cfg = gw.path
        ctl = sim.control
        for cmd, reg, value in (("cvset", "VOUT_SET", 2700), ("ccset", "IOUT_SET", 1500),
                                ("dvset", "REVERSE_VOUT_SET", 2450),
                                ("dcset", "REVERSE_IOUT_SET", 1200)):
            before = ctl.eeprom_writes(0)[reg]
            # the seed printed nothing after a write; bicctl says what happened on stderr
            wrote(cfg, cmd, value, outcome="written")
            assert ctl.device(0)["registers"][reg] == value, (cmd, ctl.device(0)["registers"])
            assert ctl.eeprom_writes(0)[reg] == before + 1, cmd
            assert number(cfg, cmd.replace("set", "read")) == value
            # the same value again: read, found equal, not written (no EEPROM wear)
            rc, out, _ = run(cfg, "--json", cmd, value)
            assert rc == 5 and '"written":false' in out and '"outcome":"unchanged"' in out, out
            wrote(cfg, cmd, value, outcome="unchanged")
            assert ctl.eeprom_writes(0)[reg] == before + 1, cmd

        wrote(cfg, "off")
        assert ctl.device(0)["registers"]["OPERATION"] == 0
        wrote(cfg, "discharge")
        assert ctl.device(0)["registers"]["DIRECTION_CTRL"] == 1
        assert number(cfg, "dirread") == 1
        wrote(cfg, "on")
        assert ctl.device(0)["registers"]["OPERATION"] == 1
        assert number(cfg, "outputread") == 1
        # discharging at the 12 A set with dcset: a negative current, read signed
        harness.wait_for(lambda: ctl.device(0)["dc_a"] < -8, 15, what="discharge current")
        cread = number(cfg, "cread")
        true_a = ctl.device(0)["dc_a"]
        assert cread < -800 and abs(cread - true_a * 100) <= 150, (cread, true_a)
        wrote(cfg, "charge")
        assert ctl.device(0)["registers"]["DIRECTION_CTRL"] == 0
        wrote(cfg, "off")
        assert ctl.device(0)["output_on"] is False


def test_init_mode_and_second_device():
    tmp = harness.temp_dir()
    dev_cfg = {0: {}, 1: {"Type": "BIC2200-48CAN", "ChargeVoltage": 5520,
                          "DischargeVoltage": 4800, "MaxChargeCurrent": 2000,
                          "MaxDischargeCurrent": 2000}}
    sim, gw = _start(tmp, devices=(DEV0, "1:48"), dev_cfg=dev_cfg)
    with sim, gw:
        cfg = gw.path
        assert ok(cfg, "--dev", 1, "typeread") == "BIC-2200-48 \n"
        assert ok(cfg, "--dev", 0, "typeread") == "BIC-2200-24 \n"
        assert ok(cfg, "devices") == "0 BIC-2200-24 online\n1 BIC-2200-48 online\n"
        # commissioning of the factory-fresh 48 V unit (auto-detect mode, SVR control)
        before = sim.control.device(1)["registers"]
        assert before["SYSTEM_CONFIG"] & 1 == 0 and before["BIDIRECTIONAL_CONFIG"] == 0, before
        out = ok(cfg, "--dev", 1, "init_mode")
        assert out.endswith("init_mode done\n"), out
        assert "need repowering" in out, out
        regs = sim.control.device(1)["registers"]
        assert regs["SYSTEM_CONFIG"] & 0x0001, regs   # CAN control
        assert regs["SYSTEM_CONFIG"] & 0x0400, regs   # EEP_OFF (new firmware)
        assert regs["BIDIRECTIONAL_CONFIG"] == 1, regs
        # one device of several without --dev: a usage error that says what to give
        fails(cfg, 1, "vread", contains=("--dev",))


def test_bad_values_and_unknown_commands():
    # refused before anything is sent: no gateway needed
    fails(None, 1, "frobnicate", contains=("unknown command 'frobnicate'",))
    fails(None, 1, contains=("no command",))
    fails(None, 1, "cvset", contains=("needs a VALUE", "1000-11200"))
    fails(None, 1, "cvset", "26.5", contains=("not an integer", "2566"))
    fails(None, 1, "cvset", "50000", contains=("out of range", "allowed 1000-11200"))
    fails(None, 1, "ccset", "19801", contains=("allowed 25-19800",))
    fails(None, 1, "dcset", "-100", contains=("negative",))
    fails(None, 1, "charge", "500", contains=("takes no value", "ccset"))
    fails(None, 1, "vread", "1", contains=("takes no value",))
    fails(None, 1, "cvset", "2566", "1", contains=("too many arguments",))
    fails(None, 1, "--dev", "68", "vread", contains=("0-63", "64-67"))
    fails(None, 1, "--timeout", "0", "vread", contains=("1-600000",))
    fails(None, 1, "--client", "a b", "on", contains=("[A-Za-z0-9_.-]",))
    fails(None, 1, "--bogus", "vread", contains=("unknown option",))
    fails(None, 1, "can_up", "can0;reboot", contains=("not a network interface",))

    tmp = harness.temp_dir()
    sim, gw = _start(tmp)
    with sim, gw:
        cfg = gw.path
        # outside the device's effective range ([DEVICE] ChargeVoltage 27.60 V): refused by
        # the gateway with the range, the device untouched
        regs = sim.control.device(0)["registers"]
        writes = sim.control.eeprom_writes(0)
        fails(cfg, 4, "cvset", 3000, contains=("3000", "allowed 2400-2760", "24.00-27.60 V"))
        fails(cfg, 4, "dcset", 3000, contains=("allowed 90-2500",))
        assert sim.control.device(0)["registers"] == regs
        assert sim.control.eeprom_writes(0) == writes
        fails(cfg, 3, "--dev", 9, "vread", contains=("unknown_device",))


def test_gateway_not_running():
    tmp = harness.temp_dir()
    ini = harness.write_ini(os.path.join(tmp, "nogw.ini"), {"GATEWAY": {
        "ReqEndpoint": "ipc://%s/gateway.sock" % tmp,
        "PubEndpoint": "ipc://%s/telemetry.sock" % tmp}})
    fails(ini, 2, "vread", contains=("gateway not running", "%s/gateway.sock" % tmp))
    fails(ini, 2, "on", contains=("gateway not running",))
    fails(ini, 2, "watch", contains=("gateway not running", "telemetry.sock"))
    # tcp: nothing listening, found out by the timeout and the retry
    port = harness.free_port()
    fails(None, 2, "--endpoint", "tcp://127.0.0.1:%d" % port, "--timeout", 300, "vread",
          contains=("not answering", "tcp://127.0.0.1:%d" % port))
    fails(None, 2, "--pub", "tcp://127.0.0.1:%d" % port, "--timeout", 500, "watch",
          contains=("no telemetry",))
    # an invalid config file is a usage error naming the file
    bad = os.path.join(tmp, "bad.ini")
    with open(bad, "w") as f:
        f.write("[GATEWAY]\nTelemetryPeriodMs = fast\n")
    fails(bad, 1, "vread", contains=(bad, "TelemetryPeriodMs"))
    fails(os.path.join(tmp, "missing.ini"), 1, "vread", contains=("missing.ini",))


def test_offline_device():
    tmp = harness.temp_dir()
    # device 1 is configured but nothing answers at address 1
    sim, gw = _start(tmp, dev_cfg={0: {}, 1: {}}, wait_online=False)
    with sim, gw:
        cfg = gw.path
        harness.wait_for(lambda: gw.online([0]), 15, what="device 0 online")
        harness.wait_for(lambda: ok(cfg, "devices").splitlines()[1].endswith("offline"), 15,
                         what="device 1 offline")
        fails(cfg, 3, "--dev", 1, "vread", contains=("offline",))
        fails(cfg, 3, "--dev", 1, "cvset", 2600, contains=("offline",))
        rc, out, err = run(cfg, "status")
        assert rc == 3 and "device 1 is offline" in err, (rc, err)
        assert "device 1" in out and "OFFLINE" in out, out
        assert "BIC-2200-24, online" in out and "battery " in out, out
        assert number(cfg, "--dev", 0, "outputread") in (0, 1)


def test_lease_held_by_another_client():
    tmp = harness.temp_dir()
    sim, gw = _start(tmp)
    with sim, gw:
        cfg = gw.path
        wrote(cfg, "off")
        tk = gw.client.ok("lease", client="charge-ctl", action="take", ttl_s=60)["token"]
        regs = sim.control.device(0)["registers"]
        for args in (("on",), ("ccset", 1000), ("dcset", 1000), ("discharge",), ("cvset", 2700)):
            fails(cfg, 4, *args, contains=("controlled by charge-ctl",))
        assert sim.control.device(0)["registers"] == regs
        # reading is free for everyone
        assert number(cfg, "outputread") == 0
        out = ok(cfg, "status")
        assert "held by charge-ctl" in out, out
        # the holder's name alone may not (it is public); with the holder's token it may
        fails(cfg, 4, "--client", "charge-ctl", "ccset", 1000, contains=("under another token",))
        fails(cfg, 1, "--client", "charge-ctl", "--token", "x" * 32, "ccset", 1000,
              contains=("not a lease token",))
        assert sim.control.device(0)["registers"] == regs
        wrote(cfg, "--client", "charge-ctl", "--token", tk, "ccset", 1000, outcome="written")
        assert sim.control.device(0)["registers"]["IOUT_SET"] == 1000
        gw.client.ok("lease", client="charge-ctl", action="release")
        wrote(cfg, "ccset", 1100, outcome="written")
        assert sim.control.device(0)["registers"]["IOUT_SET"] == 1100


def test_watch_json_and_status():
    tmp = harness.temp_dir()
    sim, gw = _start(tmp)
    with sim, gw:
        cfg = gw.path
        out = ok(cfg, "watch", "--count", 2, "--dev", 0)
        lines = out.splitlines()
        assert len(lines) == 2 and all(" dev 0 " in ln for ln in lines), out
        msg = json.loads(ok(cfg, "--json", "watch", "--count", 1, "--dev", 0))
        assert msg["topic"] == "tel/0" and msg["online"] is True, msg
        assert abs(msg["dc_v"] - sim.control.device(0)["dc_v"]) < 0.5, msg
        r = json.loads(ok(cfg, "--json", "cvread"))
        assert r["values"]["VOUT_SET"]["raw"] == sim.control.device(0)["registers"]["VOUT_SET"]

        # events while watching, and Ctrl-C ends watch with exit 0
        w = harness.start_program("bicctl", ini=cfg, args=["watch", "--dev", "0"], tmp=tmp)
        w.wait_output(" dev 0 ", 10)
        sim.control.fault("otp", True)
        w.wait_output("event fault_on fault=otp", 10)
        w.signal(signal.SIGINT)
        assert w.wait_exit(10) == 0, w.output()
        sim.control.fault("otp", False)

        out = ok(cfg, "status")
        for label in ("device 0", "firmware", "mode          battery", "output", "battery",
                      "AC            230.0 V", "temperature", "fans", "set-points", "faults",
                      "limits        charge 24.00-27.60 V 0.90-30.00 A", "lease         none",
                      "eeprom        policy"):
            assert label in out, (label, out)
        eep = ok(cfg, "eeprom")
        assert eep.startswith("policy        budget"), eep
        info = ok(cfg, "info")
        assert "bic-can-gateway" in info and "bus up" in info, info
        assert "device 0      BIC-2200-24, online" in info, info
        assert "firmware      R01.4/R01.3" in info, info
        j = json.loads(ok(cfg, "--json", "info"))
        assert j["devices"][0]["model"] == "BIC-2200-24", j
        j = json.loads(ok(cfg, "--json", "status"))
        d = j["devices"][0]
        assert d["dev"] == 0 and d["online"] is True, d
        assert d["values"]["VOUT_SET"]["raw"] == sim.control.device(0)["registers"]["VOUT_SET"]
        j = json.loads(ok(cfg, "--json", "dump"))
        assert j["modelName"] == "BIC-2200-24 " and j["firmRev"] == "0xd0e", j


def test_can_up_explains():
    tmp = harness.temp_dir()
    ini = harness.write_ini(os.path.join(tmp, "slcan.ini"), {"GATEWAY": {
        "Can": "slcan:/dev/ttyACM0"}})
    out = ok(ini, "can_up")
    assert "nothing to do" in out and "slcan:/dev/ttyACM0" in out, out
    # an interface that does not exist: exit 3 with the reason (no change anywhere)
    err = fails(None, 3, "can_down", "bicnosuch0", contains=("bicnosuch0",))
    assert len(err) > len("bicctl: can_down bicnosuch0: \n"), err


if __name__ == "__main__":
    harness.run_tests()
