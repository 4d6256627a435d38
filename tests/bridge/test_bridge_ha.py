"""Home Assistant discovery from the real bridge (mosquitto, bic-sim with two devices, the
gateway): every config payload passes the validator written from Home Assistant's documented
schema (ha_schema.py), the entity set is the documented one, templates read keys that exist
in the retained state payloads, numbers hold every value the model's registers can, discovery is retained
and republished when Home Assistant announces itself, removed when a device leaves the
configuration (cfgReload) and when discovery is switched off."""

import json
import time

import harness
import ha_schema
from bridge_stack import Stack, T, device_keys

PREFIX = "homeassistant"
NODE = T.replace("/", "_")

SENSORS = {"dc_voltage", "dc_current", "battery_power", "ac_voltage", "temperature", "fan1",
           "fan2", "eeprom_writes", "charged_energy", "discharged_energy", "surplus_power", "current_setpoint",
           "state"}
FAULTS = {"fault_" + k for k in ("fan", "otp", "otpHi", "ovp", "ovpHi", "olp", "short",
                                 "acRange", "dcOff", "eeprom", "limits")}


def configs(client, dev=None, prefix=PREFIX):
    """{topic: payload} of this node's non-empty discovery configs seen by client (last)."""
    out = {}
    for _, topic, payload, _ in client.received():
        if topic.startswith(prefix + "/") and topic.endswith("/config") and "/%s/" % NODE in topic:
            out[topic] = payload
    out = {t: p for t, p in out.items() if p}
    if dev is not None:
        out = {t: p for t, p in out.items() if "/bic%d_" % dev in t}
    return out


def expected_topics(dev, soc=False, prefix=PREFIX):
    objs = [("sensor", o) for o in SENSORS | ({"soc"} if soc else set())]
    objs += [("binary_sensor", o) for o in FAULTS | {"connectivity"}]
    objs += [("switch", "output"), ("select", "direction")]
    objs += [("number", o) for o in ("charge_voltage", "discharge_voltage", "charge_current",
                                     "discharge_current")]
    return {"%s/%s/%s/bic%d_%s/config" % (prefix, c, NODE, dev, o) for c, o in objs}


def wait_complete(client, devs, soc=False, timeout=20, prefix=PREFIX):
    want = set()
    for d in devs:
        want |= expected_topics(d, soc, prefix)
    want |= {"%s/binary_sensor/%s/bridge_running/config" % (prefix, NODE),
             "%s/binary_sensor/%s/bridge_gateway/config" % (prefix, NODE),
             "%s/sensor/%s/bridge_bus/config" % (prefix, NODE)}
    harness.wait_for(lambda: want <= set(configs(client, prefix=prefix)), timeout,
                     what="discovery configs %s" % sorted(
                         want - set(configs(client, prefix=prefix)))[:5])
    return want


def check_payloads(s, client):
    msgs = configs(client)
    problems = []
    for topic, payload in msgs.items():
        problems += ["%s: %s" % (topic, p) for p in ha_schema.validate(topic, payload, PREFIX)]
    problems += ha_schema.validate_set(msgs)
    assert not problems, "\n".join(problems)

    # Templates read keys that exist in the retained payloads of their state topics, and
    # measurement sensors get numbers there.
    for topic, payload in msgs.items():
        p = ha_schema.expand(json.loads(payload))
        st = p.get("state_topic")
        state = client.last(st)
        assert state is not None, "%s: nothing retained on %s" % (topic, st)
        if "value_template" not in p:
            assert state in (p.get("payload_on"), p.get("payload_off")), (topic, state)
            continue
        doc = json.loads(state)
        for path in ha_schema.template_refs(p["value_template"]):
            value = ha_schema.resolve(doc, path)
            if p.get("state_class") == "measurement":
                assert isinstance(value, (int, float)), (topic, path, value)
            if "options" in p and len(path) == 1:
                assert value in p["options"], (topic, value, p["options"])
        for a in p.get("availability", []):
            assert client.last(a["topic"]) == a["payload_available"], (topic, a)


# The BIC-2200-24's register ranges over both modes (the model's table, docs/ipc-protocol.md):
# every value such a device can hold, a factory-state one included.
MODEL_24 = {"vout_v": [19.0, 28.0], "iout_a": [0.9, 99.0], "rev_vout_v": [19.0, 28.0],
            "rev_iout_a": [0.9, 76.5]}


def check_numbers_hold_every_device_value(s, client):
    """Numbers announce the model's range, which holds the configured limits and anything a
    device may hold outside them (Home Assistant refuses a state outside min/max); a write
    outside the configured limits is still refused."""
    info = s.gateway_request({"op": "info", "dev": 0})["devices"][0]
    assert info["model"] == "BIC-2200-24", info
    limits = info["limits"]
    for obj, key in (("charge_voltage", "vout_v"), ("discharge_voltage", "rev_vout_v"),
                     ("charge_current", "iout_a"), ("discharge_current", "rev_iout_a")):
        p = ha_schema.expand(json.loads(client.last(
            "%s/number/%s/bic0_%s/config" % (PREFIX, NODE, obj))))
        assert [p["min"], p["max"]] == MODEL_24[key], (obj, p, MODEL_24[key])
        assert p["min"] <= limits[key][0] and p["max"] >= limits[key][1], (obj, p, limits)
        assert p["mode"] == "box" and p["entity_category"] == "config"
    above = limits["iout_a"][1] + 5
    assert above < MODEL_24["iout_a"][1], (above, limits)
    res = s.command("inv/0/chargeLimA/set", "%g" % above)
    assert res["ok"] is False and res["error"]["code"] == "out_of_range", res


def test_discovery_valid_complete_and_retained():
    with Stack(devices=(0, 1)) as s:
        wait_complete(s.client, (0, 1))
        for d in (0, 1):  # every slow register read once
            s.wait_json("inv/%d/state" % d, lambda st: None not in st["fan"] and
                        st["acGridV"] is not None and st["chargeV"] is not None, timeout=15)
        # A late subscriber (Home Assistant after a restart) gets everything retained.
        late = s.fresh_client(subscribe=(PREFIX + "/#", T + "/#"))
        try:
            want = wait_complete(late, (0, 1))
            assert set(configs(late)) == want, sorted(set(configs(late)) ^ want)
            assert all(r for _, t, _, r in late.received() if t in want)
            check_payloads(s, late)
            check_numbers_hold_every_device_value(s, late)
        finally:
            late.close()

        # SOC from the controller adds the SOC sensor and fills capBatPc.
        s.client.publish(T + "/ctl/0/soc", "57.4", qos=1)
        soc_topic = "%s/sensor/%s/bic0_soc/config" % (PREFIX, NODE)
        s.client.wait_message(soc_topic, lambda p: p != "", timeout=10)
        s.wait_json("inv/0/state", lambda st: st["capBatPc"] == 57, timeout=10)
        s.client.publish(T + "/ctl/0/soc", "157", qos=1)  # refused, logged
        s.bridge.wait_output("is not a state of charge")
        assert s.last_json("inv/0/state")["capBatPc"] == 57


def test_republished_when_home_assistant_comes_online():
    # Prefix and birth topic are configurable: use other ones than the defaults here.
    prefix, status = "ha-test", "ha-test/birth"
    with Stack(devices=(0,), mqtt_extra={"HaPrefix": prefix, "HaStatusTopic": status}) as s:
        want = wait_complete(s.client, (0,), prefix=prefix)
        assert not configs(s.client), "published under the default prefix"
        s.client.clear()
        after = time.monotonic()
        s.client.publish(status, "online", qos=1)
        harness.wait_for(lambda: want <= set(configs(s.client, prefix=prefix)), 15,
                         what="discovery republished")
        # then availability (the bridge's and the device's) and states
        s.client.wait_message(T + "/sys/state", lambda p: p == "running", after=after)
        s.client.wait_message(T + "/inv/0/availability", lambda p: p == "online", after=after)
        s.wait_json("inv/0/state", after=after)
        for topic, payload in configs(s.client, prefix=prefix).items():
            assert not ha_schema.validate(topic, payload, prefix), topic
        s.client.clear()
        s.client.publish(status, "offline", qos=1)
        s.client.publish(PREFIX + "/status", "online", qos=1)  # not this bridge's birth topic
        time.sleep(4)
        assert not configs(s.client, prefix=prefix), "republished on 'offline'"


def test_removed_device_and_discovery_off_clear_entities():
    with Stack(devices=(0, 1)) as s:
        wait_complete(s.client, (0, 1))
        # A broken file is refused and changes nothing.
        s.rewrite_ini(MQTT=dict(s.ini["MQTT"], PublishPeriodSec=0))
        res = s.command("inv/0/charge/set", json.dumps({"var": "cfgReload", "val": 0}))
        assert res["ok"] is False and res["error"]["code"] == "bad_config", res
        assert "PublishPeriodSec" in res["error"]["message"], res
        time.sleep(1)
        assert configs(s.client, 1), "device 1 lost on a refused reload"

        # Device 1 leaves the configuration: its entities and retained topics are removed.
        s.rewrite_ini(MQTT=dict(s.ini["MQTT"], PublishPeriodSec=5), DEVICE=device_keys(0))
        res = s.command("inv/0/charge/set", json.dumps({"var": "cfgReload", "val": 0}))
        assert res["ok"], res
        harness.wait_for(lambda: not configs(s.client, 1), 10, what="device 1 entities removed")
        late = s.fresh_client(subscribe=(PREFIX + "/#", T + "/#"))
        try:
            wait_complete(late, (0,))
            time.sleep(1)
            assert not configs(late, 1)
            assert late.last(T + "/inv/1/state") is None
        finally:
            late.close()
        res = s.command("inv/1/state/set", "1")
        assert res["ok"] is False and res["error"]["code"] == "unknown_device", res

        # A device removed while the bridge was down is cleared at the next start.
        s.bridge.stop()
        s.rewrite_ini(DEVICE=device_keys(1))
        s.devices = [1]
        s.start_bridge()
        s.bridge.wait_output("removing stale discovery entity")
        late = s.fresh_client(subscribe=(PREFIX + "/#",))
        try:
            wait_complete(late, (1,))
            time.sleep(1)
            assert not configs(late, 0), sorted(configs(late, 0))
        finally:
            late.close()

        # Discovery switched off: every entity of this node is removed.
        s.bridge.stop()
        s.rewrite_ini(MQTT=dict(s.ini["MQTT"], HaDiscovery=0))
        s.start_bridge(wait=False)
        harness.wait_for(lambda: not configs(s.client), 15, what="all entities removed")
        late = s.fresh_client(subscribe=(PREFIX + "/#",))
        try:
            time.sleep(1.5)
            assert not configs(late)
        finally:
            late.close()


if __name__ == "__main__":
    harness.run_tests()
