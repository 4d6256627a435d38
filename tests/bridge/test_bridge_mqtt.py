"""bic-mqtt-bridge with a real broker, bic-sim, the gateway and a paho client: the seed's
retained topics carry the documented keys with the simulator's true values, commands change
the simulated device, bad or retained commands are refused with an error result and change
nothing, a controller's lease is respected (a person's off goes through it), and the LWT says offline when the bridge dies."""

import json
import signal
import time

import harness
from bridge_stack import Stack, T


def test_retained_seed_topics_match_the_device():
    with Stack() as s:
        check_seed_topics(s)
        check_fault_topic(s)


def test_commands_and_the_controller_lease():
    with Stack() as s:
        check_controller_lease(s)
        check_state_set(s)
        check_charge_set(s)


def test_mqtt5_response_topic_and_correlation_data():
    with Stack() as s:
        check_mqtt5_correlation(s)


def test_bad_and_retained_commands_change_nothing():
    with Stack() as s:
        check_bad_payloads(s)
        check_retained_command(s)


def test_lwt_offline_when_killed_and_on_clean_stop():
    with Stack() as s:
        check_lwt(s)


def check_seed_topics(s):
    s.wait_json("inv/0/info", lambda i: i["sysCfg"] is not None)
    late = s.fresh_client(subscribe=(T + "/#",))  # a late subscriber gets the retained state
    try:
        for sub in ("info", "state", "charge", "fault", "availability"):
            harness.wait_for(lambda: late.received("%s/inv/0/%s" % (T, sub)), 10,
                             what="retained %s" % sub)
            assert late.received("%s/inv/0/%s" % (T, sub))[0][3], "%s not retained" % sub
        harness.wait_for(lambda: late.received(T + "/sys/state"), 5, what="sys/state")
        assert late.last(T + "/sys/state") == "running"
        assert late.last(T + "/inv/0/availability") == "online"
        app = json.loads(late.last(T))
        assert app["appName"] == "bic2mqtt" and app["conCnt"] == 1, app
    finally:
        late.close()

    # Fans and temperature are in the gateway's slow telemetry set (read round robin).
    s.wait_json("inv/0/state", lambda st: all(f is not None for f in st["fan"]))
    true = s.sim.control.device(0)
    state = s.last_json("inv/0/state")
    assert set(state) >= {"onlMode", "opMode", "tempC", "fan", "acGridV", "dcBatV", "capBatPc"}
    assert state["opMode"] == true["registers"]["OPERATION"]
    assert state["onlMode"] == ("running" if true["registers"]["OPERATION"] else "idle")
    assert abs(state["dcBatV"] - true["dc_v"]) < 0.5, (state, true["dc_v"])
    assert abs(state["tempC"] - true["temperature_c"]) <= 2
    assert all(f % 100 == 0 for f in state["fan"])

    # The simulated current moves; the published one follows it within a telemetry period.
    def current_matches():
        c = s.last_json("inv/0/charge")
        return c if c and abs(c["chargeA"] - s.sim.control.device(0)["dc_a"]) < 3 else None
    charge = harness.wait_for(current_matches, 15, interval=0.3, what="chargeA = simulated")
    assert set(charge) >= {"chargeA", "chargeP", "chargeSetA", "chargedKWh", "dischargedKWh",
                           "surplusP", "surplusKWh", "chargedTotalKWh", "dischargedTotalKWh"}
    assert abs(charge["chargeP"] - charge["chargeA"] * state["dcBatV"]) < 60, (charge, state)
    # The seed's 24-hour sums: discharged negative; our counters: both positive.
    assert charge["chargedKWh"] >= 0 and charge["dischargedKWh"] <= 0
    assert charge["chargedTotalKWh"] >= 0 and charge["dischargedTotalKWh"] >= 0

    fault = s.last_json("inv/0/fault")
    keys = ["fan", "otp", "otpHi", "ovp", "ovpHi", "olp", "short", "acRange", "dcOff", "eeprom",
            "can", "limits"]  # the seed's keys in its order, then the addition
    assert list(fault) == keys, list(fault)
    assert fault["limits"]["active"] == 0, fault
    for k in keys:
        assert set(fault[k]) == {"active", "cnt", "desc"}
    assert fault["otp"]["active"] == 0 and fault["can"]["active"] == 0

    info = s.last_json("inv/0/info")
    assert info["modelName"].startswith("BIC-2200-24"), info
    assert info["id"] == 0 and info["firmRev"].startswith("0x")
    assert info["cntWrite"] == true["eeprom_writes_total"]


def check_fault_topic(s):
    s.sim.control.fault("otp", True, dev=0)
    try:
        f = s.wait_json("inv/0/fault", lambda f: f["otp"]["active"] == 1, timeout=10)
        assert f["otp"]["cnt"] == 1, f
    finally:
        after = time.monotonic()
        s.sim.control.fault("otp", False, dev=0)
    f = s.wait_json("inv/0/fault", lambda f: f["otp"]["active"] == 0, timeout=10, after=after)
    assert f["otp"]["cnt"] == 1, f  # edges are counted, not samples


def check_controller_lease(s):
    r = s.gateway_request({"op": "lease", "client": "charge-ctl", "action": "take", "ttl_s": 60})
    assert r["ok"], r
    token = r["token"]
    try:
        before = s.regs(0)
        res = s.command("inv/0/charge/set", json.dumps({"var": "chargeA", "val": 3, "id": "l1"}))
        assert res["ok"] is False and res["id"] == "l1", res
        assert res["error"]["code"] == "lease_held", res
        assert "controlled by charge-ctl" in res["error"]["message"], res
        res = s.command("inv/0/state/set", "1")
        assert res["ok"] is False and "controlled by charge-ctl" in res["error"]["message"], res
        assert s.regs(0) == before
        # A person's off is never refused for the lease (the seed's state/set 0: the idle
        # set-points, output off); the controller keeps its lease and pauses on its own.
        res = s.command("inv/0/state/set", "0")
        assert res["ok"] and res["result"]["mode"] == "stop", res
        regs = s.regs(0)
        assert regs["OPERATION"] == 0 and regs["DIRECTION_CTRL"] == 0, regs
        assert regs["IOUT_SET"] == regs["REVERSE_IOUT_SET"] == 90, regs
        lease = s.gateway_request({"op": "info", "dev": 0})["devices"][0]["lease"]
        assert lease["holder"] == "charge-ctl", lease
    finally:
        s.gateway_request({"op": "lease", "client": "charge-ctl", "action": "release",
                           "token": token})


def check_state_set(s):
    res = s.command("inv/0/state/set", "0")
    assert res["ok"], res
    harness.wait_for(lambda: s.regs(0)["OPERATION"] == 0, 10, what="OPERATION off")
    s.wait_json("inv/0/state", lambda st: st["opMode"] == 0 and st["onlMode"] == "idle")
    res = s.command("inv/0/state/set", json.dumps({"val": 2, "id": 42}))  # toggle
    assert res["ok"] and res["id"] == 42 and res["request"] == "toggle -> on", res
    harness.wait_for(lambda: s.regs(0)["OPERATION"] == 1, 10, what="OPERATION on")
    s.wait_json("inv/0/state", lambda st: st["opMode"] == 1)


def check_charge_set(s):
    res = s.command("inv/0/charge/set", json.dumps({"var": "chargeA", "val": 5, "id": "c1"}))
    assert res["ok"] and res["id"] == "c1", res
    regs = harness.wait_for(lambda: (lambda r: r if r["IOUT_SET"] == 500 else None)(s.regs(0)),
                            10, what="IOUT_SET 5 A")
    assert regs["DIRECTION_CTRL"] == 0 and regs["OPERATION"] == 1
    s.wait_json("inv/0/charge", lambda c: c["chargeSetA"] == 5)
    s.wait_json("inv/0/state", lambda st: st["leaseHolder"] == "mqtt-bridge")

    res = s.command("inv/0/charge/set", json.dumps({"var": "chargeP", "val": -300}))
    assert res["ok"], res
    regs = harness.wait_for(lambda: (lambda r: r if r["DIRECTION_CTRL"] == 1 else None)(
        s.regs(0)), 10, what="discharge")
    volts = s.sim.control.device(0)["dc_v"]
    assert abs(regs["REVERSE_IOUT_SET"] / 100 - 300 / volts) < 1.0, (regs, volts)

    res = s.command("inv/0/chargeV/set", "27.2")
    assert res["ok"], res
    harness.wait_for(lambda: s.regs(0)["VOUT_SET"] == 2720, 10, what="VOUT_SET 27.2 V")
    s.wait_json("inv/0/state", lambda st: st["chargeV"] == 27.2)
    res = s.command("inv/0/direction/set", "charge")
    assert res["ok"], res
    harness.wait_for(lambda: s.regs(0)["DIRECTION_CTRL"] == 0, 10, what="direction charge")

    # the manual lease is the bridge's by its token, which is never published: the bridge's
    # name alone on the gateway's socket is refused, the bridge itself releases
    assert "token" not in res.get("result", {}), res
    r = s.gateway_request({"op": "lease", "client": "mqtt-bridge", "action": "release"})
    assert not r["ok"] and r["error"]["code"] == "bad_token", r
    r = s.gateway_request({"op": "setpoint", "dev": 0, "client": "mqtt-bridge", "mode": "off"})
    assert not r["ok"] and r["error"]["code"] == "bad_token", r
    assert _lease(s)["holder"] == "mqtt-bridge"
    res = s.command("inv/0/charge/set", json.dumps({"var": "release", "val": 0}))
    assert res["ok"], res
    assert _lease(s) is None


def _lease(s):
    return s.gateway_request({"op": "info", "dev": 0})["devices"][0]["lease"]


def check_mqtt5_correlation(s):
    """An MQTT v5 requester names its response topic and correlation data; the result goes
    there with the same correlation data (refusals too)."""
    import threading
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    got = []
    lock = threading.Lock()
    ready = threading.Event()

    def on_connect(c, userdata, flags, rc, props=None):
        c.subscribe("replies/me", qos=1)

    def on_subscribe(c, userdata, mid, granted, props=None):
        ready.set()

    def on_message(c, userdata, msg):
        with lock:
            got.append((msg.topic, msg.payload.decode(),
                        getattr(msg.properties, "CorrelationData", None)))
    c = mqtt.Client(client_id="v5-requester", protocol=mqtt.MQTTv5)
    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect("127.0.0.1", s.broker.port)
    c.loop_start()
    try:
        assert ready.wait(10), "no SUBACK"
        for payload, corr, ok in ((json.dumps({"var": "chargeA", "val": 4}), b"\x01req-1", True),
                                  ("not json", b"req-2", False)):
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "replies/me"
            props.CorrelationData = corr
            c.publish(s.topic("inv/0/charge/set"), payload, qos=1, properties=props)
            r = harness.wait_for(lambda: [g for g in got if g[2] == corr], 15,
                                 what="result with correlation data %r" % corr)[0]
            assert r[0] == "replies/me", r
            assert json.loads(r[1])["ok"] is ok, r
        harness.wait_for(lambda: s.regs(0)["IOUT_SET"] == 400, 10, what="IOUT_SET 4 A")
        # With a response topic, nothing goes to <topic>/result.
        assert s.client.received(s.topic("inv/0/charge/set/result")) == []
    finally:
        c.loop_stop()
        c.disconnect()


BAD = [
    ("inv/0/charge/set", "not json", "bad_request"),
    ("inv/0/charge/set", '{"var":"chargeA","val":"5"}', "bad_request"),
    ("inv/0/charge/set", '{"var":"chargeX","val":5}', "bad_request"),
    ("inv/0/charge/set", '{"var":"chargeA","val":1000}', "out_of_range"),
    ("inv/0/charge/set", '{"var":"chargeA","val":95}', "out_of_range"),  # above the device limit
    ("inv/0/charge/set", '{"var":"chargeA","val":1,"pad":"%s"}' % ("x" * 2000), "too_large"),
    ("inv/0/chargeV/set", "abc", "bad_request"),
    ("inv/0/chargeV/set", "99", "out_of_range"),
    ("inv/0/chargeV/set", "40", "out_of_range"),  # plausible number, outside the limits
    ("inv/0/direction/set", "sideways", "bad_request"),
    ("inv/0/state/set", "", "bad_request"),
    ("inv/0/state/set", "3", "bad_request"),  # the seed switched the output off
    ("inv/0/charge/set", b"\xff\xfe\x00{\"var\":\"chargeA\",\"val\":5}", "bad_request"),
    ("inv/0/chargeLimA/set", b"\x005", "bad_request"),
    ("inv/0/charge/set", '{"var":"chargeA","val":5,"id":{"x":1}}', "bad_request"),
    ("inv/9/state/set", "1", "unknown_device"),
]


def check_bad_payloads(s):
    time.sleep(1.0)  # let the previous commands settle in the device
    before = s.regs(0)
    for sub, payload, code in BAD:
        res = s.command(sub, payload)
        assert res["ok"] is False, (sub, payload, res)
        assert res["error"]["code"] == code, (sub, payload, res)
        assert res["error"]["message"], res
    assert s.regs(0) == before
    assert s.bridge.alive()
    # Still serving afterwards.
    assert s.command("inv/0/chargeV/set", "27.3")["ok"]


def check_retained_command(s):
    before = s.regs(0)["OPERATION"]
    # A retained command is delivered with the retain flag to a client that subscribes
    # later (a running subscriber gets it as a live message): publish it while the bridge is
    # down, as after a restart.
    s.bridge.stop()
    s.client.publish(s.topic("inv/0/state/set"), "0" if before else "1", qos=1, retain=True)
    s.client.clear()
    s.start_bridge()
    res = json.loads(s.client.wait_message(s.topic("inv/0/state/set/result"), timeout=10))
    assert res["ok"] is False and res["error"]["code"] == "retained", res
    assert s.regs(0)["OPERATION"] == before
    s.client.publish(s.topic("inv/0/state/set"), "", qos=1, retain=True)  # clear it
    time.sleep(1.0)
    assert s.regs(0)["OPERATION"] == before  # clearing is not a command either


def check_lwt(s):
    before = s.wait_json("inv/0/charge",
                         lambda c: c["dischargedTotalKWh"] + c["chargedTotalKWh"] > 0, timeout=20)
    after = time.monotonic()
    s.bridge.signal(signal.SIGKILL)
    s.client.wait_message(T + "/sys/state", lambda p: p == "offline", timeout=20, after=after)
    s.start_bridge()
    assert s.client.last(T + "/sys/state") == "running"
    # The energy counters continue from the retained message instead of starting at zero.
    first = s.wait_json("inv/0/charge", after=after)
    assert first["chargedTotalKWh"] >= before["chargedTotalKWh"], (before, first)
    assert first["dischargedTotalKWh"] >= before["dischargedTotalKWh"], (before, first)
    after = time.monotonic()
    s.bridge.stop()  # SIGTERM: publishes offline itself before disconnecting
    s.client.wait_message(T + "/sys/state", lambda p: p == "offline", timeout=5, after=after)
    assert s.bridge.returncode == 0, s.bridge.output()


if __name__ == "__main__":
    harness.run_tests()
