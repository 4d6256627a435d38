"""A user of the Python project switches over with the ini file they have: its shipped sample
(tests/common/data/seed-sample.ini) with the one typo line fixed and nothing else changed but
what this stack needs to find its parts (the broker's port, the gateway's bus and sockets, in
keys the seed did not have) starts the whole stack on the simulator: gateway, bridge and
controller. The misplaced surplus-switch keys are warned once each with their line; the
controller runs as ChargePID; the first state carries the SOC from the [BAT_0] table and both
fans; the charge payload has the seed's keys with the seed's meanings; state/set refuses what
is not 0, 1 or 2. The unchanged sample is refused by every program with the typo's line, and
the seed's other controller words load."""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from ctld_stack import SIM_METER, Stack  # noqa: E402

SAMPLE = harness.source_path("tests", "common", "data", "seed-sample.ini")
TYPO = "Id/0/Pid/P=0.3Id/0/Pid/I=0"
T = "haus/power/bat"  # the sample's TopicMain
METER = "power/grid/smartmeter"  # and its TopicPower
PROGRAMS = ("bic-can-gateway", "bic-mqtt-bridge", "bic-charge-ctl")


def _sample():
    with open(SAMPLE) as f:
        return f.read()


def test_unchanged_sample_is_refused_with_the_typo_line():
    text = _sample()
    line = text[:text.index(TYPO)].count("\n") + 1
    for prog in PROGRAMS:
        r = subprocess.run([harness.program(prog), "--check-config", "-c", SAMPLE],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (prog, r.stderr)
        want = "seed-sample.ini:%d: [CHARGE_CONTROL] Id/0/Pid/P: '0.3Id/0/Pid/I=0' is not a " \
               "number" % line
        assert want in r.stderr, (prog, r.stderr)


def test_seed_controller_words_load():
    tmp = harness.temp_dir()
    fixed = _sample().replace(TYPO, "Id/0/Pid/P=0.3\nId/0/Pid/I=0")
    for word in ('"None"', "none", '"Winter"', "winter", '"PID" ', "pid"):
        path = os.path.join(tmp, "seed.ini")
        with open(path, "w") as f:
            f.write(fixed.replace('Id/0/Type="PID" ', "Id/0/Type=" + word))
        for prog in PROGRAMS:
            r = subprocess.run([harness.program(prog), "--check-config", "-c", path],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, (prog, word, r.stderr)


def test_fixed_sample_starts_the_stack():
    with Stack(start_s=int(12 * 3600), speed=5, relay=False) as s:
        text = _sample().replace(TYPO, "Id/0/Pid/P=0.3\nId/0/Pid/I=0")
        # What the seed had fixed (port 1883, SocketCAN can0) in keys it did not have.
        text = text.replace('TopicMain="haus/power/bat"',
                            'TopicMain="haus/power/bat"\nBrokerPort=%d' % s.broker.port)
        line = text[:text.index("SwitchDelaySec=40")].count("\n") + 1
        text += "\n[GATEWAY]\n" + "".join("%s=%s\n" % kv for kv in s.ini["GATEWAY"].items())
        with open(s.ini_path, "w") as f:
            f.write(text)
        s.restart_gateway()
        relay = harness.Process(
            [sys.executable, os.path.join(HERE, "meter_relay.py"), "127.0.0.1", s.broker.port,
             SIM_METER, METER], name="meter-relay", log_dir=s.tmp)
        s.old.append(relay)
        s.client.wait_message(METER, timeout=15)
        after = time.monotonic()
        bridge = harness.start_program("bic-mqtt-bridge", s.ini_path, tmp=s.tmp)
        s.old.append(bridge)
        ctl = harness.start_program("bic-charge-ctl", s.ini_path, tmp=s.tmp)
        s.old.append(ctl)

        # Each misplaced switch key: one warning with its line, from each program.
        for p in (s.gateway, bridge, ctl):
            p.wait_output("SwitchDelaySec: unknown key", timeout=10)
            out = p.output()
            assert out.count("SwitchDelaySec: unknown key") == 1, out
            assert ":%d: [CHARGE_CONTROL] SwitchDelaySec: unknown key, ignored (a surplus-" \
                   "switch key: move it to [SURPLUS_SWITCH] as Id/0/SwitchDelaySec)" % line \
                   in out, out

        # The controller drives the device, as the seed's "ChargePID".
        def status(p):
            try:
                st = json.loads(p)
            except ValueError:
                return False
            return st["enabled"] and st["lease"]["held"]
        s.client.wait_message(T + "/inv/0/control", status, timeout=30, after=after)
        info = json.loads(s.client.wait_message(
            T + "/inv/0/info", lambda p: json.loads(p)["leaseHolder"], timeout=30,
            after=after))
        assert info["ChargeCtrlName"] == "ChargePID", info
        assert info["leaseHolder"].startswith("charge-ctl"), info

        # The first state already has the SOC from [BAT_0] and both fans.
        first = json.loads(s.client.wait_message(T + "/inv/0/state", timeout=30, after=after))
        assert first["capBatPc"] is not None and 0 <= first["capBatPc"] <= 100, first
        assert len(first["fan"]) == 2 and None not in first["fan"], first
        assert first["onlMode"] in ("running", "idle"), first

        charge = json.loads(s.client.wait_message(T + "/inv/0/charge", timeout=30, after=after))
        for k in ("chargeA", "chargeP", "chargeSetA", "chargedKWh", "dischargedKWh", "surplusP",
                  "surplusKWh"):
            assert k in charge, charge
        assert charge["dischargedKWh"] <= 0 <= charge["chargedKWh"], charge
        fault = json.loads(s.client.last(T + "/inv/0/fault"))
        assert fault["acRange"]["desc"] == "ac grid range", fault

        # state/set: 0, 1, 2 only; anything else is refused and writes nothing.
        op = s.device()["output_on"]
        t0 = time.monotonic()
        s.client.publish(T + "/inv/0/state/set", "5", qos=1)
        res = json.loads(s.client.wait_message(T + "/inv/0/state/set/result", timeout=15,
                                               after=t0))
        assert not res["ok"] and res["error"]["code"] == "bad_request", res
        assert "0 (off), 1 (on) or 2 (toggle)" in res["error"]["message"], res
        assert s.device()["output_on"] == op
        assert bridge.alive() and ctl.alive() and s.gateway.alive()


if __name__ == "__main__":
    harness.run_tests()
