"""The whole chain for the bridge's integration tests: a private mosquitto, bic-sim on a pty,
bic-can-gateway and bic-mqtt-bridge with one generated ini, and a paho client that records
everything. Real processes only; the harness cleans them up."""

import json
import os
import time

import harness

T = "test/bic"


def device_keys(dev):
    return {"Id/%d/ChargeVoltage" % dev: 2760, "Id/%d/DischargeVoltage" % dev: 2400,
            "Id/%d/MaxChargeCurrent" % dev: 4000, "Id/%d/MaxDischargeCurrent" % dev: 3000}


class Stack:
    def __init__(self, devices=(0,), mqtt_extra=None, keepalive=5, publish_period=5,
                 gateway_extra=None, npbs=()):
        """npbs: NPB chargers as bic-sim --device specs ("3:npb-1200-24"), each configured
        as [NPB] Id/<address>/Type (the gateway's device 64 + address)."""
        self.tmp = harness.temp_dir("bic-bridge-")
        self.devices = list(devices)
        self.broker = harness.Mosquitto()
        self.sim = None
        self.gateway = None
        self.bridge = None
        self.client = None
        try:
            self.sim = harness.Sim(devices=["%d:24" % d for d in self.devices] + list(npbs),
                                   tmp=self.tmp)
            self.req_ep = "ipc://%s/gw.sock" % self.tmp
            self.ini = {
                "ALL": {"TraceLevel": "debug"},
                "MQTT": {"BrokerIpAdr": "127.0.0.1", "BrokerPort": self.broker.port,
                         "TopicMain": T, "KeepAliveSec": keepalive,
                         "PublishPeriodSec": publish_period},
                "GATEWAY": {"Can": self.sim.transport, "ReqEndpoint": self.req_ep,
                            "PubEndpoint": "ipc://%s/tel.sock" % self.tmp,
                            "StateDir": self.tmp, "TelemetryPeriodMs": 500,
                            "EepromWriteIntervalSec": 0},
                "DEVICE": {},
            }
            for d in self.devices:
                self.ini["DEVICE"].update(device_keys(d))
            if npbs:
                self.ini["NPB"] = {"Id/%s/Type" % s.split(":")[0]: s.split(":")[1].upper()
                                   for s in npbs}
            if mqtt_extra:
                self.ini["MQTT"].update(mqtt_extra)
            if gateway_extra:  # e.g. the daily EEPROM budget instead of no limit
                if any(k.startswith("Eeprom") for k in gateway_extra):
                    del self.ini["GATEWAY"]["EepromWriteIntervalSec"]
                self.ini["GATEWAY"].update(gateway_extra)
            self.ini_path = os.path.join(self.tmp, "bic2mqtt.ini")
            harness.write_ini(self.ini_path, self.ini)
            self.client = harness.MqttClient(self.broker)
            self.start_gateway()
            self.start_bridge()
        except Exception:
            self.close()
            raise

    # -- processes
    def start_gateway(self):
        self.gateway = harness.start_program("bic-can-gateway", self.ini_path, tmp=self.tmp)
        return self.gateway

    def start_bridge(self, wait=True):
        after = time.monotonic()
        self.bridge = harness.start_program("bic-mqtt-bridge", self.ini_path, tmp=self.tmp)
        if wait:
            self.client.wait_message(self.topic("sys/state"), lambda p: p == "running",
                                     timeout=20, after=after)
            for d in self.devices:
                self.wait_json("inv/%d/state" % d, lambda s: s["onlMode"] != "offline"
                               and s["tempC"] is not None, timeout=20, after=after)
                self.wait_json("inv/%d/charge" % d, timeout=20, after=after)
        return self.bridge

    def rewrite_ini(self, **sections):
        for sec, keys in sections.items():
            self.ini[sec] = keys
        harness.write_ini(self.ini_path, self.ini)

    # -- MQTT helpers
    def topic(self, sub):
        return "%s/%s" % (T, sub)

    def last_json(self, sub):
        p = self.client.last(self.topic(sub))
        return json.loads(p) if p else None

    def wait_json(self, sub, pred=None, timeout=10, after=None):
        def ok(payload):
            try:
                v = json.loads(payload)
            except ValueError:
                return False
            return pred is None or pred(v)
        return json.loads(self.client.wait_message(self.topic(sub), ok, timeout=timeout,
                                                   after=after))

    def command(self, sub, payload, qos=1, retain=False, timeout=15):
        """Publishes a command and returns its result (dict) from <topic>/result."""
        after = time.monotonic()
        self.client.publish(self.topic(sub), payload, qos=qos, retain=retain)
        return json.loads(self.client.wait_message(self.topic(sub) + "/result",
                                                   timeout=timeout, after=after))

    def gateway_request(self, req, timeout=5):
        import zmq
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.req_ep)
        try:
            req = dict(req, v=1)
            s.send(json.dumps(req).encode())
            if not s.poll(int(timeout * 1000)):
                raise harness.HarnessError("gateway did not answer %r" % req)
            return json.loads(s.recv())
        finally:
            s.close()

    def regs(self, dev=0):
        return self.sim.control.device(dev)["registers"]

    def fresh_client(self, subscribe=("#",)):
        return harness.MqttClient(self.broker, subscribe=subscribe)

    def report(self):
        """Program output for a failing test."""
        out = []
        for p in (self.bridge, self.gateway):
            if p is not None:
                out.append("--- %s\n%s" % (p.name, p.output()[-6000:]))
        return "\n".join(out)

    def close(self):
        for p in (self.bridge, self.gateway):
            if p is not None:
                p.stop()
        if self.client is not None:
            self.client.close()
        if self.sim is not None:
            self.sim.stop()
        self.broker.stop()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is not None:
            print(self.report())
        self.close()
        return False
