"""An NPB charger beside a BIC, through the real gateway and bridge (mosquitto, bic-sim with a
BIC at address 0 and an NPB-1200-24 at address 3): the charger gets its own inv/67 topics
with its charge stage and curve in the state, and Home Assistant entities for them that pass
the validator and read keys the retained state has (the curve as numbers within the model's
range, set over MQTT); the BIC gets none of them."""

import json

import harness
import ha_schema
from bridge_stack import Stack, T

PREFIX = "homeassistant"
NODE = T.replace("/", "_")
NPB_OBJECTS = {"charge_stage", "curve_cc", "curve_cv", "curve_fv", "npb_mode"}


def _configs(client, dev):
    out = {}
    for _, topic, payload, _ in client.received():
        if topic.startswith(PREFIX + "/") and topic.endswith("/config") and \
                "/%s/bic%d_" % (NODE, dev) in topic:
            out[topic] = payload
    return {t: p for t, p in out.items() if p}


def test_npb_on_mqtt_and_home_assistant():
    with Stack(devices=(0,), npbs=("3:npb-1200-24:soc=30",)) as st:
        state = st.wait_json("inv/67/state", lambda s: s.get("npbStage") == "cc" and
                             s.get("npbCurveCC") == 36.0 and s.get("dcBatV") is not None
                             and s.get("npbCurveCV") is not None
                             and s.get("npbCurveFV") is not None,
                             timeout=30)
        assert state["npbCurveCV"] == 28.8 and state["npbCurveFV"] == 27.6, state
        assert state["mode"] == "charger" and state["direction"] == "charge", state
        info = st.wait_json("inv/67/info", lambda i: i.get("modelName") == "NPB-1200-24",
                            timeout=30)
        assert info["id"] == 67 and info["fans"] is False, info
        bic = st.wait_json("inv/0/state", timeout=20)
        assert "npbStage" not in bic, bic

        # Home Assistant: the charger's stage and curve entities, valid, reading state keys
        harness.wait_for(lambda: NPB_OBJECTS <= {t.split("/")[3].split("_", 1)[1]
                                                 for t in _configs(st.client, 67)},
                         timeout=30, what="the NPB's discovery entities")
        configs = _configs(st.client, 67)
        problems = []
        for topic, payload in configs.items():
            problems += ["%s: %s" % (t, p) for t, p in
                         [(topic, p) for p in ha_schema.validate(topic, payload, PREFIX)]]
        assert not problems, problems
        stage = [json.loads(p) for t, p in configs.items() if t.endswith("_charge_stage/config")]
        assert len(stage) == 1, configs.keys()
        stage = ha_schema.expand(stage[0])
        assert "cc" in stage["options"] and "float" in stage["options"], stage
        assert stage["state_topic"] == "%s/inv/67/state" % T, stage
        for path in ha_schema.template_refs(stage["value_template"]):
            assert ha_schema.resolve(state, path) == "cc", path
        assert not NPB_OBJECTS & {t.split("/")[3].split("_", 1)[1]
                                  for t in _configs(st.client, 0)}
        # the curve as numbers within the model's range, set through MQTT
        cc = [ha_schema.expand(json.loads(p)) for t, p in configs.items()
              if t.endswith("_curve_cc/config")]
        assert len(cc) == 1 and cc[0]["min"] == 7.2 and cc[0]["max"] == 36, cc
        assert cc[0]["command_topic"] == "%s/inv/67/npbCurveCC/set" % T, cc
        res = st.command("inv/67/npbCurveCC/set", "12.5")
        assert res.get("ok") is True, res
        assert st.sim.control.ok("npb", addr=3)["npb"]["registers"]["CURVE_CC"] == 1250
        st.wait_json("inv/67/state", lambda s: s.get("npbCurveCC") == 12.5, timeout=30)
        res = st.command("inv/67/npbCurveFV/set", "50")
        assert res.get("ok") is False and res["error"]["code"] == "out_of_range", res
        # the mode select: PSU mode written as CURVE_CONFIG bit 7, the other bits kept
        sel = [ha_schema.expand(json.loads(p)) for t, p in configs.items()
               if t.endswith("_npb_mode/config")]
        assert len(sel) == 1 and sel[0]["options"] == ["charger", "psu"], sel
        res = st.command("inv/67/npbMode/set", "psu")
        assert res.get("ok") is True, res
        assert st.sim.control.ok("npb", addr=3)["npb"]["registers"]["CURVE_CONFIG"] == 0x0004
        st.wait_json("inv/67/state", lambda s: s.get("mode") == "psu", timeout=30)
        res = st.command("inv/67/npbMode/set", "banana")
        assert res["error"]["code"] == "bad_request", res


if __name__ == "__main__":
    harness.run_tests()
