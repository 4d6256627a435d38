"""bic-charge-ctl's commands and topics: control/set 1/0 with the seed's semantics (every
toggle starts from idle; disabled releases the lease after idling the device), refused and
retained commands, the enable state across a config reload (and a bad file kept out), Home
Assistant discovery checked with the bridge's validator next to the real bridge, and the
program's refusals of configurations it cannot run."""

import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bridge"))

import harness  # noqa: E402
import ha_schema  # noqa: E402
from ctld_stack import Stack  # noqa: E402


def _charging(s):
    st = s.status()
    if not st or st["mode"] != "running" or st["setpoint"]["mode"] != "charge":
        return False
    d = s.device()
    return d["output_on"] and abs(d["dc_a"] - st["setpoint"]["current_a"]) < 2


def _idle(s):
    return abs(s.device()["dc_a"]) < 1.5


def test_control_set():
    with Stack() as s:
        s.start_ctl()
        harness.wait_for(lambda: _charging(s), timeout=20, what="charging")

        # 0: disabled, device idled, lease given back
        after = time.monotonic()
        r = s.command("0")
        assert r["ok"] and r["request"] == "0" and r["enabled"] is False, r
        s.wait_status(lambda x: x["mode"] == "disabled" and not x["enabled"], timeout=5,
                      after=after)
        harness.wait_for(lambda: _idle(s), timeout=5, what="device idle")
        harness.wait_for(lambda: s.lease() is None, timeout=5, what="lease released")
        st = s.wait_status(lambda x: not x["lease"]["held"], timeout=5, after=after)
        assert st["reason"] == "disabled", st
        # As the seed (DisableState=min): the output stays on at the minimum charge current.
        d = s.device()
        assert d["output_on"] and not d["discharging"] and d["dc_a"] >= 0, d

        # refused: not a switch value, and nothing changes
        for bad in ("2", "enable", "{\"val\":1}"):
            r = s.command(bad)
            assert not r["ok"] and r["error"]["code"] == "bad_request", r
            assert "allowed: 1 or 0" in r["error"]["message"], r
        time.sleep(1)
        assert s.status()["mode"] == "disabled" and s.lease() is None

        # 1: enabled, takes the lease, starts from idle, charges again
        r = s.command("1")
        assert r["ok"] and r["enabled"] is True, r
        harness.wait_for(lambda: _charging(s), timeout=20, what="charging again")

        # a repeated 1 is a toggle too: charging stops (idle) before control resumes
        after = time.monotonic()
        r = s.command("1")
        assert r["ok"], r
        s.wait_status(lambda x: x["setpoint"]["mode"] in ("idle", "none"), timeout=5,
                      after=after)
        harness.wait_for(lambda: _charging(s), timeout=20, what="charging after the toggle")
        assert s.ctl.alive()


def test_retained_command_ignored():
    with Stack() as s:
        # Left in the broker by someone publishing with -r: replayed to every new subscriber.
        s.client.publish(s.topic("inv/0/control/set"), "0", qos=1, retain=True)
        after = time.monotonic()
        s.start_ctl(wait=False)
        r = json.loads(s.client.wait_message(s.topic("inv/0/control/set/result"), timeout=15,
                                             after=after))
        assert not r["ok"] and r["error"]["code"] == "retained", r
        assert r["enabled"] is True, r
        harness.wait_for(lambda: _charging(s), timeout=20, what="charging (Enable=1 kept)")
        assert "retained command ignored" in s.ctl.output()
        s.client.publish(s.topic("inv/0/control/set"), "", qos=1, retain=True)  # clear it
        time.sleep(1)
        assert s.status()["enabled"] is True


def test_enable_state_survives_reload():
    with Stack() as s:
        s.start_ctl()
        after = time.monotonic()
        r = s.command("0")
        assert r["ok"], r
        s.wait_status(lambda x: x["mode"] == "disabled", timeout=5, after=after)
        # A valid new file (Enable=1 in it, as before): the runtime switch stays off.
        s.ini["CHARGE_CONTROL"]["Id/0/ChargeTol"] = 30
        s.write_ini()
        s.ctl.signal(signal.SIGHUP)
        s.ctl.wait_output("configuration reloaded", timeout=5)
        time.sleep(1.5)
        assert s.status()["mode"] == "disabled" and s.lease() is None, s.status()
        # An invalid file is refused and the running configuration kept.
        s.ini["CHARGE_CONTROL"]["Id/0/ChargeTol"] = "lots"
        s.write_ini()
        s.ctl.signal(signal.SIGHUP)
        out = s.ctl.wait_output("configuration kept", timeout=5)
        assert "ChargeTol" in out, out[-2000:]
        assert s.ctl.alive()
        r = s.command("1")
        assert r["ok"], r
        harness.wait_for(lambda: _charging(s), timeout=20, what="charging")


def test_discovery_beside_the_bridge():
    with Stack() as s:
        bridge = harness.start_program("bic-mqtt-bridge", s.ini_path, tmp=s.tmp)
        s.old.append(bridge)
        s.start_ctl()
        harness.wait_for(lambda: _charging(s), timeout=20, what="charging")
        time.sleep(2)  # the bridge's discovery once it knows the device
        disc = {t: p for _, t, p, _ in s.client.received()
                if t.startswith("homeassistant/") and t.endswith("/config")}
        ours = {t: p for t, p in disc.items() if "/ctl0_" in t}
        assert len(ours) == 8, sorted(ours)
        problems = []
        for t, p in ours.items():
            problems += ha_schema.validate(t, p)
        problems += ha_schema.validate_set(disc)  # unique ids, no via_device
        assert not problems, problems
        status = s.status()
        for t, p in ours.items():
            e = ha_schema.expand(json.loads(p))
            for path in ha_schema.template_refs(e.get("value_template")):
                ha_schema.resolve(status, path)  # raises when the status lacks the field
        kinds = {t.split("/")[1] for t in ours}
        assert kinds == {"switch", "sensor", "binary_sensor"}, kinds
        # The bridge keeps them (they are not its stale entities) and shows our SOC.
        time.sleep(1)
        for t in ours:
            assert s.client.last(t), "%s was cleared" % t
        assert bridge.alive()
        s.client.wait_message(s.topic("inv/0/state"),
                              lambda p: json.loads(p).get("capBatPc") is not None, timeout=15)


def test_disable_state_idle():
    """DisableState=idle: control/set 0 puts the device in the gateway's idle state, which is
    output off by default ([GATEWAY] IdleState=off)."""
    with Stack(ctl={"Id/0/DisableState": "idle"}) as s:
        s.start_ctl()
        harness.wait_for(lambda: _charging(s), timeout=20, what="charging")
        r = s.command("0")
        assert r["ok"] and r["enabled"] is False, r
        harness.wait_for(lambda: not s.device()["output_on"], timeout=10, what="output off")
        harness.wait_for(lambda: s.lease() is None, timeout=5, what="lease released")


def test_control_set_1_ends_a_manual_hold():
    """As in the seed, enabling the controller takes control back at once: a charge/set sent
    by hand holds the device for ManualLeaseTtlSec (600 s), control/set 1 ends that hold."""
    with Stack() as s:
        bridge = harness.start_program("bic-mqtt-bridge", s.ini_path, tmp=s.tmp)
        s.old.append(bridge)
        s.start_ctl()
        harness.wait_for(lambda: _charging(s), timeout=20, what="charging")
        info = json.loads(s.client.wait_message(
            s.topic("inv/0/info"), lambda p: json.loads(p).get("leaseHolder"), timeout=15))
        # The seed's name of the configured controller, the same after every restart.
        assert info["ChargeCtrlName"] == "ChargePID", info

        # The seed's workflow: controller off, a current by hand, controller on again.
        r = s.command("0")
        assert r["ok"] and r["enabled"] is False, r
        harness.wait_for(lambda: s.lease() is None, timeout=10, what="lease released")
        after = time.monotonic()
        s.client.publish(s.topic("inv/0/charge/set"), '{"var":"chargeA","val":-3}', qos=1)
        res = json.loads(s.client.wait_message(s.topic("inv/0/charge/set/result"), timeout=15,
                                               after=after))
        assert res["ok"], res
        harness.wait_for(lambda: (s.lease() or {}).get("holder") == "mqtt-bridge", timeout=10,
                         what="the manual hold")
        s.wait_status(lambda x: not x["lease"]["held"], timeout=10, after=after)
        assert s.lease()["expires_in_s"] > 500, s.lease()

        r = s.command("1")
        assert r["ok"] and r["enabled"] is True, r
        # At once: the controller's next attempt (every 2 s) gets the lease, long before the
        # 600 s hold would have run out.
        harness.wait_for(lambda: (s.lease() or {}).get("holder", "").startswith("charge-ctl"),
                         timeout=15, what="the controller holding the lease again")
        harness.wait_for(lambda: _charging(s), timeout=20, what="charging again")
        assert "the manual hold ends" in bridge.output()
        assert bridge.alive() and s.ctl.alive()


def test_status_period_and_home_assistant_birth():
    with Stack() as s:
        s.start_ctl()
        after = time.monotonic()
        assert s.command("0")["ok"]
        s.wait_status(lambda x: x["mode"] == "disabled", timeout=5, after=after)
        # Disabled, the meter silent and stale, the device idle: nothing changes, and the
        # status still comes again at least every 10 s (not on every pass of the loop).
        s.relay.kill()
        s.wait_status(lambda x: x["meter_stale"], timeout=8, after=after)
        time.sleep(2)
        quiet = time.monotonic()
        time.sleep(12)
        seen = [m for m in s.client.received(s.topic("inv/0/control")) if m[0] >= quiet]
        assert 1 <= len(seen) <= 3, seen
        # Home Assistant restarted: discovery, availability and status again after 1-3 s.
        born = time.monotonic()
        s.client.publish("homeassistant/status", "online", qos=1)
        s.client.wait_message("homeassistant/sensor/test_bic/ctl0_state/config", timeout=8,
                              after=born)
        s.client.wait_message(s.topic("ctl/0/state"), lambda p: p == "running", timeout=5,
                              after=born)
        s.wait_status(lambda x: x["mode"] == "disabled", timeout=5, after=born)


def test_refuses_configurations_it_cannot_run():
    tmp = harness.temp_dir()
    base = {"MQTT": {"TopicMain": "t"},
            "DEVICE": {"Id/0/ChargeVoltage": 2800, "Id/0/DischargeVoltage": 2400,
                       "Id/0/MaxChargeCurrent": 7500, "Id/0/MaxDischargeCurrent": 6000}}
    good = dict(base, CHARGE_CONTROL={"Id/0/TopicPower": "m"})
    path = harness.write_ini(os.path.join(tmp, "good.ini"), good)
    p = harness.start_program("bic-charge-ctl", path, args=("--check-config",), tmp=tmp)
    assert p.wait_exit() == 0, p.output()
    # nothing to control
    path = harness.write_ini(os.path.join(tmp, "none.ini"), base)
    p = harness.start_program("bic-charge-ctl", path, tmp=tmp)
    assert p.wait_exit() == 1
    assert "no device to control" in p.output(), p.output()
    # a controller for a device without limits
    path = harness.write_ini(os.path.join(tmp, "nodev.ini"),
                             {"MQTT": {"TopicMain": "t"},
                              "CHARGE_CONTROL": {"Id/2/TopicPower": "m"}})
    p = harness.start_program("bic-charge-ctl", path, tmp=tmp)
    assert p.wait_exit() == 1
    assert "Id/2" in p.output(), p.output()
    # a bad value names the key
    bad = dict(base, CHARGE_CONTROL={"Id/0/TopicPower": "m", "Id/0/LeaseTtlSec": 1})
    path = harness.write_ini(os.path.join(tmp, "bad.ini"), bad)
    p = harness.start_program("bic-charge-ctl", path, tmp=tmp)
    assert p.wait_exit() == 1
    assert "LeaseTtlSec" in p.output(), p.output()
    p = harness.start_program("bic-charge-ctl", path, args=("--check-config",), tmp=tmp)
    assert p.wait_exit() == 1 and "LeaseTtlSec" in p.output(), p.output()
    # a group of devices: accepted (test_ctld_group runs one); the Winter mode drives one
    group = {"MQTT": {"TopicMain": "t"},
             "DEVICE": dict(base["DEVICE"], **{"Id/1/ChargeVoltage": 2800,
                                               "Id/1/DischargeVoltage": 2400,
                                               "Id/1/MaxChargeCurrent": 7500,
                                               "Id/1/MaxDischargeCurrent": 6000}),
             "CHARGE_CONTROL": {"Id/0/TopicPower": "m", "Id/0/Devices": "0,1"}}
    path = harness.write_ini(os.path.join(tmp, "group.ini"), group)
    p = harness.start_program("bic-charge-ctl", path, args=("--check-config",), tmp=tmp)
    assert p.wait_exit() == 0, p.output()
    group["CHARGE_CONTROL"]["Id/0/Type"] = "Winter"
    path = harness.write_ini(os.path.join(tmp, "group_winter.ini"), group)
    p = harness.start_program("bic-charge-ctl", path, args=("--check-config",), tmp=tmp)
    assert p.wait_exit() == 1, p.output()
    assert "Type=Winter with Id/0/Devices listing 2 devices" in p.output(), p.output()
    del group["CHARGE_CONTROL"]["Id/0/Type"]
    group["CHARGE_CONTROL"]["Id/0/Devices"] = "0,5"
    path = harness.write_ini(os.path.join(tmp, "group5.ini"), group)
    p = harness.start_program("bic-charge-ctl", path, tmp=tmp)
    assert p.wait_exit() == 1
    assert "device 5 has no [DEVICE] Id/5/ keys" in p.output(), p.output()
    # one device listed: exactly as without the key
    group["CHARGE_CONTROL"]["Id/0/Devices"] = "0"
    path = harness.write_ini(os.path.join(tmp, "group0.ini"), group)
    p = harness.start_program("bic-charge-ctl", path, args=("--check-config",), tmp=tmp)
    assert p.wait_exit() == 0, p.output()
    # bad flags
    p = harness.start_program("bic-charge-ctl", None, args=("--bogus",), tmp=tmp)
    assert p.wait_exit() == 2


if __name__ == "__main__":
    harness.run_tests()
