"""The mosquitto ACL of docs/mqtt.md on a real broker (users and passwords, the ACL file as
the documentation prints it), with bic-sim, the gateway and the bridge logged in as
`bic2mqtt`: a viewer reads the state and its commands never reach the bridge (no result, the
device untouched); Home Assistant's user commands and reads the result."""

import json
import os
import re
import subprocess
import time

import harness
from bridge_stack import device_keys

T = "haus/power/bat/bic2mqtt"  # the documented example's TopicMain
PASSWORDS = {"bic2mqtt": "b1c-secret", "homeassistant": "ha-secret", "viewer": "view-secret"}


def documented_acl():
    """The ACL block of docs/mqtt.md (the fenced block after the acl file's name)."""
    with open(harness.source_path("docs", "mqtt.md")) as f:
        text = f.read()
    m = re.search(r"`/etc/mosquitto/bic2mqtt\.acl`:\s*```text\n(.*?)```", text, re.S)
    assert m, "docs/mqtt.md has no ACL block"
    return m.group(1)


class Client:
    """A paho client logged in as a user, recording what it receives."""

    def __init__(self, port, user):
        import paho.mqtt.client as mqtt
        try:
            self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id="acl-" + user)
        except AttributeError:
            self.c = mqtt.Client(client_id="acl-" + user)
        self.c.username_pw_set(user, PASSWORDS[user])
        self.msgs = []
        self.ok = False
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda cl, u, m: self.msgs.append(
            (time.monotonic(), m.topic, m.payload.decode("utf-8", "replace")))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        harness.wait_for(lambda: self.ok, what="%s connected" % user)

    def _on_connect(self, cl, u, flags, rc):
        assert rc == 0, "connect refused: %d" % rc
        cl.subscribe(T + "/#", qos=1)
        self.ok = True

    def wait(self, topic, after, pred=lambda p: True, timeout=15):
        def find():
            return next((p for t, tp, p in self.msgs if tp == topic and t >= after and pred(p)),
                        None)
        return harness.wait_for(find, timeout, what="a message on %s" % topic)

    def publish(self, topic, payload):
        self.c.publish(topic, payload, qos=1).wait_for_publish()

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_documented_acl():
    tmp = harness.temp_dir("bic-acl-")
    os.chmod(tmp, 0o755)  # mosquitto started as root reads its files as user mosquitto
    pw = os.path.join(tmp, "passwd")
    open(pw, "w").close()
    for user, password in PASSWORDS.items():
        subprocess.run(["mosquitto_passwd", "-b", pw, user, password], check=True,
                       capture_output=True)
    acl = os.path.join(tmp, "bic2mqtt.acl")
    with open(acl, "w") as f:
        f.write(documented_acl())
    port = harness.free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\npersistence false\nallow_anonymous false\n"
                "password_file %s\nacl_file %s\n" % (port, pw, acl))
    for p in (pw, acl, conf):
        os.chmod(p, 0o644)
    broker = harness.Process([harness.MOSQUITTO, "-c", conf], name="mosquitto", log_dir=tmp)
    harness.wait_for(lambda: harness.port_open(port) or not broker.alive(), what="mosquitto")
    assert broker.alive(), broker.output()
    sim = harness.Sim(devices=["0:24"], tmp=tmp)
    ini = harness.write_ini(os.path.join(tmp, "bic2mqtt.ini"), {
        "MQTT": {"BrokerIpAdr": "127.0.0.1", "BrokerPort": port, "TopicMain": T,
                 "BrokerAccUser": "bic2mqtt", "BrokerAccPasswd": PASSWORDS["bic2mqtt"],
                 "KeepAliveSec": 5},
        "GATEWAY": {"Can": sim.transport, "ReqEndpoint": "ipc://%s/gw.sock" % tmp,
                    "PubEndpoint": "ipc://%s/tel.sock" % tmp, "StateDir": tmp,
                    "TelemetryPeriodMs": 500, "EepromWriteIntervalSec": 0},
        "DEVICE": device_keys(0)})
    viewer = Client(port, "viewer")
    t0 = time.monotonic()
    gateway = harness.start_program("bic-can-gateway", ini, tmp=tmp)
    bridge = harness.start_program("bic-mqtt-bridge", ini, tmp=tmp)
    ha = Client(port, "homeassistant")
    try:
        # the viewer reads the device state
        viewer.wait(T + "/sys/state", t0, lambda p: p == "running", timeout=20)
        viewer.wait(T + "/inv/0/state", t0, lambda p: json.loads(p)["onlMode"] != "offline",
                    timeout=20)
        # its command is dropped by the broker: the bridge never sees it
        t1 = time.monotonic()
        viewer.publish(T + "/inv/0/chargeV/set", "27.0")
        # Home Assistant's command after it is carried out (the bridge works in order)
        ha.publish(T + "/inv/0/chargeV/set", "27.2")
        res = json.loads(ha.wait(T + "/inv/0/chargeV/set/result", t1))
        assert res["ok"] and res["request"].endswith("27.2"), res
        # the viewer reads the result too, and there was only this one
        viewer.wait(T + "/inv/0/chargeV/set/result", t1)
        results = [p for t, tp, p in viewer.msgs
                   if tp == T + "/inv/0/chargeV/set/result" and t >= t1]
        assert len(results) == 1, results
        assert sim.control.device(0)["registers"]["VOUT_SET"] == 2720
    finally:
        viewer.close()
        ha.close()
        bridge.stop()
        gateway.stop()
        sim.stop()
        broker.stop()


if __name__ == "__main__":
    harness.run_tests()
