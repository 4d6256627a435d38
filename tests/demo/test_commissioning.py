"""The README's commissioning guide, run as written against a factory-fresh simulated unit.

The bicctl commands are taken from the README's "Commissioning" section in order (so the
guide cannot drift from what works), with the steps a person does by hand played on bic-sim:
the power cycle after `init_mode`, closing Remote ON/OFF. Afterwards the unit must be in
battery mode under CAN control with EEPROM writes off, the power-up values of step 4 must be
in its EEPROM (they survive a further power cycle), and nothing may have been written beyond
the gateway's limits.
"""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


def guide_commands():
    """[argv] of every `bicctl ...` line in the README's Commissioning code blocks and
    inline steps, in order."""
    with open(harness.source_path("README.md")) as f:
        text = f.read()
    m = re.search(r"^## Commissioning\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "README.md has no Commissioning section"
    section = m.group(1)
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("bicctl "):
                cmds.append(line.split()[1:])
    return cmds


def test_the_guide_commissions_a_factory_unit():
    cmds = guide_commands()
    names = [c[0] for c in cmds]
    for needed in ("devices", "info", "cvset", "dvset", "ccset", "dcset", "status"):
        assert needed in names, "the guide lacks bicctl %s: %s" % (needed, names)
    # init_mode is a step of its own in the text, not in a code block.
    with harness.Sim(devices=["0:24:remote_off"]) as sim:
        tmp = sim.dir
        ini = harness.write_ini(os.path.join(tmp, "bic2mqtt.ini"), {
            "GATEWAY": {"Can": sim.transport, "ReqEndpoint": "ipc://%s/gw.sock" % tmp,
                        "PubEndpoint": "ipc://%s/tel.sock" % tmp, "StateDir": tmp},
            "DEVICE": {"Id/0/Type": "BIC2200-24CAN", "Id/0/ChargeVoltage": 2760,
                       "Id/0/DischargeVoltage": 2520, "Id/0/MaxChargeCurrent": 3500,
                       "Id/0/MaxDischargeCurrent": 2600},
            "CHARGE_CONTROL": {"Id/0/Enable": 0, "Id/0/TopicPower": "home/meter"},
        })
        bicctl = harness.program("bicctl")

        def run(args, timeout=30):
            r = subprocess.run([bicctl, "-c", ini] + list(args), capture_output=True,
                               text=True, timeout=timeout)
            # a set-point write may find the value already there (exit 5, "unchanged"): the
            # gateway wrote the [DEVICE] end voltages when the unit came online
            done = (0, 5) if args and args[0] in ("cvset", "dvset", "ccset", "dcset") else (0,)
            assert r.returncode in done, "bicctl %s: exit %d\n%s%s" % (" ".join(args),
                                                                      r.returncode, r.stdout,
                                                                      r.stderr)
            return r.stdout

        with harness.start_program("bic-can-gateway", ini, tmp=tmp) as gw:
            harness.wait_for(lambda: "online" in run(["devices"]), timeout=20,
                             what="device 0 online")
            factory = sim.control.device(0)
            assert factory["mode"] == "auto" and not factory["can_ctrl"], factory
            stored = {}
            for c in cmds:
                if c[0] == "info" and "init done" in stored:
                    break  # the checks after the power cycle come below
                out = run(c)
                if c[0] in ("cvset", "dvset", "ccset", "dcset"):
                    stored[c[0]] = int(c[1])
                    if len(stored) == 4:
                        run(["init_mode"])
                        stored["init done"] = True
                        sim.control.power_cycle()  # step 6, by hand
                elif c[0] == "info" and "init done" not in stored:
                    assert "mode          auto" in out, out

            def commissioned():
                out = run(["info"])
                return "mode          battery, CAN control on" in out and out
            info = harness.wait_for(commissioned, timeout=20, what="battery mode after the "
                                    "power cycle")
            assert "policy eep_off" in info, info
            dev = sim.control.device(0)
            want = {"VOUT_SET": stored["cvset"], "REVERSE_VOUT_SET": stored["dvset"],
                    "IOUT_SET": stored["ccset"], "REVERSE_IOUT_SET": stored["dcset"]}
            for reg, raw in want.items():
                assert dev["eeprom"][reg] == raw, "EEPROM %s: %s, not %s" % (
                    reg, dev["eeprom"][reg], raw)
            status = run(["status"])
            assert "set-points    charge 27.60 V 5.00 A; discharge 25.20 V 5.00 A" in status, \
                status
            # Step 8: close Remote ON/OFF; the unit runs on the stored values, charging at
            # no more than the stored trickle current.
            sim.control.remote(True)
            harness.wait_for(lambda: sim.control.device(0)["output_on"], timeout=10,
                             what="output on")
            dev = sim.control.device(0)
            assert dev["mode"] == "battery" and dev["can_ctrl"], dev
            assert dev["target_a"] <= stored["ccset"] / 100.0 + 0.01, dev
            # Another power loss: EEP_OFF is on, the stored power-up values are what comes back.
            sim.control.power_cycle()
            harness.wait_for(lambda: not sim.control.device(0)["booting"], timeout=20,
                             what="boot")
            dev = sim.control.device(0)
            for reg, raw in want.items():
                assert dev["registers"][reg] == raw, (reg, dev["registers"])
            gw.stop()


if __name__ == "__main__":
    harness.run_tests()
