"""Self-test of ha_schema.py, the Home Assistant discovery validator the bridge's integration
tests rely on: it must accept a payload written the way Home Assistant's documentation shows
and reject each documented mistake. A validator that accepts everything would make those
integration tests worthless."""

import copy
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ha_schema  # noqa: E402

TOPIC = "homeassistant/sensor/bic2mqtt/bic2mqtt_0_dcbatv/config"
TOPIC_NO_NODE = "homeassistant/sensor/bic2mqtt_0_dcbatv/config"
# The example of field-conventions §1.2, abbreviated the way the bridge abbreviates.
GOOD = {
    "name": "Battery voltage",
    "uniq_id": "bic2mqtt_0_dcbatv",
    "stat_t": "haus/power/bat/bic2mqtt/inv/0/state",
    "val_tpl": "{{ value_json.dcBatV }}",
    "dev_cla": "voltage",
    "stat_cla": "measurement",
    "unit_of_meas": "V",
    "avty": [{"topic": "haus/power/bat/bic2mqtt/sys/state", "payload_available": "running",
              "payload_not_available": "offline"}],
    "avty_mode": "all",
    "dev": {"ids": ["bic2mqtt_bic_0"], "name": "BIC-2200-24 #0", "mf": "Mean Well",
            "mdl": "BIC-2200-24", "sw": "R01.4/R01.3"},
    "o": {"name": "bic2mqtt", "sw": "0.1.0"},
}


def check(topic, payload):
    return ha_schema.validate(topic, json.dumps(payload))


def mutated(**changes):
    p = copy.deepcopy(GOOD)
    for k, v in changes.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    return p


def test_documented_example_is_valid():
    assert check(TOPIC, GOOD) == [], check(TOPIC, GOOD)
    assert check(TOPIC_NO_NODE, GOOD) == []
    full = ha_schema.expand(GOOD)
    assert full["state_topic"] == GOOD["stat_t"]
    assert full["device"]["manufacturer"] == "Mean Well"
    assert full["origin"]["sw_version"] == "0.1.0"


def test_base_topic_substitution():
    p = mutated(stat_t="~/state")
    p["~"] = "haus/power/bat/bic2mqtt/inv/0"
    assert ha_schema.expand(p)["state_topic"] == "haus/power/bat/bic2mqtt/inv/0/state"
    assert check(TOPIC, p) == []


def expect_problem(topic, payload, words):
    problems = check(topic, payload)
    assert problems, "accepted: %r" % payload
    assert any(words in p for p in problems), problems


def test_rejects_documented_mistakes():
    expect_problem(TOPIC, mutated(unit_of_meas="kWh"), "not valid for device_class voltage")
    expect_problem(TOPIC, mutated(stat_cla="total_increasing"), "not allowed with device_class")
    expect_problem(TOPIC, mutated(stat_cla="sometimes"), "state_class 'sometimes' unknown")
    expect_problem(TOPIC, mutated(dev_cla="volts"), "device_class 'volts' unknown")
    expect_problem(TOPIC, mutated(stat_t=None), "required key 'state_topic'")
    expect_problem(TOPIC, mutated(stat_t="a/+/b"), "without wildcards")
    expect_problem(TOPIC, mutated(stat_topic="x"), "unknown key 'stat_topic'")
    expect_problem(TOPIC, mutated(avty_mode="most"), "availability_mode")
    expect_problem(TOPIC, mutated(avty=[{"payload_available": "x"}]), "needs a topic")
    expect_problem(TOPIC, mutated(ent_cat="config"), "cannot have entity_category config")
    expect_problem(TOPIC, mutated(ent_cat="settings"), "entity_category")
    expect_problem(TOPIC, mutated(uniq_id=None), "needs unique_id")
    expect_problem(TOPIC, mutated(dev={"name": "x"}), "identifiers or connections")
    expect_problem(TOPIC, mutated(o={"sw": "1"}), "origin needs a name")
    expect_problem(TOPIC, mutated(val_tpl="{{ value_json.x }"), "unbalanced")
    expect_problem(TOPIC, mutated(qos=3), "qos")
    enum = mutated(dev_cla="enum", unit_of_meas=None, stat_cla=None, ops=["a", "b"])
    assert check(TOPIC, enum) == []
    expect_problem(TOPIC, enum | {"stat_cla": "measurement"}, "must not have a state_class")
    expect_problem(TOPIC, mutated(dev_cla="enum", unit_of_meas=None, stat_cla=None),
                   "needs options")
    expect_problem(TOPIC, enum | {"unit_of_meas": "V"}, "must not have a unit")
    expect_problem(TOPIC, mutated(ops=["a"]), "only allowed with device_class enum")
    expect_problem("homeassistant/sensor/bad node/x/config", GOOD, "outside [a-zA-Z0-9_-]")
    expect_problem("homeassistant/sensor/x/state", GOOD, "is not <prefix>")


def test_platform_rules():
    base = {k: GOOD[k] for k in ("name", "uniq_id", "dev", "o")}
    num = dict(base, cmd_t="t/chargeV/set", stat_t="t/state", min=19, max=28, step=0.01,
               mode="box", dev_cla="voltage", unit_of_meas="V")
    assert check("homeassistant/number/n/o/config", num) == []
    expect_problem("homeassistant/number/n/o/config", dict(num, min=30), "below max")
    expect_problem("homeassistant/number/n/o/config", dict(num, mode="knob"), "mode")
    expect_problem("homeassistant/number/n/o/config", dict(num, step=0), "step")
    expect_problem("homeassistant/number/n/o/config", dict(num, unit_of_meas="A"), "not valid")
    expect_problem("homeassistant/number/n/o/config", {k: v for k, v in num.items()
                                                       if k != "cmd_t"}, "command_topic")
    sel = dict(base, cmd_t="t/direction/set", stat_t="t/state", ops=["charge", "discharge"])
    assert check("homeassistant/select/n/o/config", sel) == []
    expect_problem("homeassistant/select/n/o/config", dict(sel, ops=[]), "options")
    sw = dict(base, cmd_t="t/state/set", stat_t="t/state", pl_on="1", pl_off="0")
    assert check("homeassistant/switch/n/o/config", sw) == []
    expect_problem("homeassistant/switch/n/o/config", dict(sw, dev_cla="problem"), "switch")
    bs = dict(base, stat_t="t/fault", dev_cla="problem", ent_cat="diagnostic")
    assert check("homeassistant/binary_sensor/n/o/config", bs) == []
    expect_problem("homeassistant/binary_sensor/n/o/config", dict(bs, dev_cla="voltage"),
                   "binary_sensor device_class")
    energy = mutated(dev_cla="energy", stat_cla="total_increasing", unit_of_meas="kWh")
    assert check(TOPIC, energy) == []


def test_set_rules():
    a = json.dumps(GOOD)
    b = json.dumps(mutated(name="other"))
    problems = ha_schema.validate_set({"x/sensor/n/a/config": a, "x/sensor/n/b/config": b})
    assert any("unique_id" in p for p in problems), problems
    bridge = json.dumps({"name": "b", "uniq_id": "br", "stat_t": "t",
                         "dev": {"ids": ["bic2mqtt_bridge"]}})
    ok = ha_schema.validate_set({"x/sensor/n/a/config": a, "x/binary_sensor/n/b/config": bridge})
    assert ok == [], ok
    # a via_device depends on the order the retained configs arrive in: refused, whether
    # its parent is in the set or not
    child = json.dumps(mutated(dev=dict(GOOD["dev"], via_device="bic2mqtt_bridge")))
    for s in ({"x/sensor/n/a/config": child, "x/binary_sensor/n/b/config": bridge},
              {"x/sensor/n/a/config": child}):
        problems = ha_schema.validate_set(s)
        assert any("via_device" in p and "order" in p for p in problems), problems


def test_template_refs():
    assert ha_schema.template_refs("{{ value_json.fan[1] }}") == [["fan", 1]]
    assert ha_schema.template_refs(
        "{{ 'ON' if value_json.otp.active == 1 else 'OFF' }}") == [["otp", "active"]]
    assert ha_schema.resolve({"fan": [1, 2]}, ["fan", 1]) == 2


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print("ok   ", name)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print("FAIL ", name, repr(e))
    print("%d passed, %d failed" % (len(tests) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
