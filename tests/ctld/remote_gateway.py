"""Gateway 1 of a controller's group over two gateways, for the tests and the benchmark: a
bic-sim with a device 0 on its own pty and a bic-can-gateway on tcp://127.0.0.1 with CURVE (its
key pair, the controller's key in its CurveClientsDir), as a gateway on another machine would
be. Its processes join the Stack's extra ones (stopped at its end)."""

import json
import os

import harness
import zmq
import zmq.auth
from ctld_stack import DEV_KEYS_24


class RemoteGateway:
    """Gateway 1: a bic-sim with device 0 on its own pty (no household: its meter reading is
    its battery's AC power) and a bic-can-gateway on tcp://127.0.0.1 with CURVE."""

    def __init__(self, s, max_a, meter_topic=None, telemetry_ms=500):
        self.tmp = harness.temp_dir("bic-ctld-gw1-")
        keys = {}
        self.dirs = {}
        for name in ("gateway", "ctl"):
            d = os.path.join(self.tmp, name)
            os.mkdir(d)
            zmq.auth.create_certificates(d, name)
            keys[name] = zmq.auth.load_certificate(os.path.join(d, name + ".key_secret"))
            self.dirs[name] = d
        self.server_public = keys["gateway"][0]
        self.ctl_keys = keys["ctl"]
        self.ctl_key_file = os.path.join(self.dirs["ctl"], "ctl.key")
        self.sim = harness.Sim(devices=["0:24:battery,canctrl"], speed=s.speed,
                               mqtt=s.broker if meter_topic else None, meter_topic=meter_topic,
                               meter_period_ms=500 if meter_topic else None)
        s.extra.append(self.sim)
        self.req_port, self.pub_port = harness.free_port(), harness.free_port()
        self.req_ep = "tcp://127.0.0.1:%d" % self.req_port
        self.pub_ep = "tcp://127.0.0.1:%d" % self.pub_port
        dev = dict(DEV_KEYS_24, MaxChargeCurrent=max_a * 100)
        self.ini = {
            "ALL": {"TraceLevel": "debug"},
            "GATEWAY": {"Can": self.sim.transport, "ReqEndpoint": self.req_ep,
                        "PubEndpoint": self.pub_ep, "StateDir": self.tmp,
                        "TelemetryPeriodMs": telemetry_ms, "EepromWriteIntervalSec": 0,
                        "CurveSecretKeyFile": os.path.join(self.dirs["gateway"],
                                                           "gateway.key_secret"),
                        "CurveClientsDir": self.dirs["ctl"]},
            "DEVICE": {"Id/0/%s" % k: v for k, v in dev.items()},
        }
        self.ini_path = harness.write_ini(os.path.join(self.tmp, "gw1.ini"), self.ini)
        self.proc = None
        self.s = s
        self.start()
        for reg, v in (("VOUT_SET", 28.0), ("REVERSE_VOUT_SET", 24.0)):
            r = self.request({"op": "set", "dev": 0, "reg": reg, "value": v,
                              "client": "commissioning"})
            assert r.get("ok"), r

    def start(self):
        self.proc = harness.start_program("bic-can-gateway", self.ini_path, tmp=self.tmp)
        self.s.extra.append(self.proc)
        harness.wait_for(lambda: (self.request({"op": "info", "dev": 0}) or {}).get(
            "devices", [{}])[0].get("online"), timeout=30, what="gateway 1: device 0 online")

    def request(self, req, keys=None, timeout=5):
        """A request over CURVE with the controller's (allowed) key or keys; None without a
        reply."""
        sock = zmq.Context.instance().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_serverkey = self.server_public
        sock.curve_publickey, sock.curve_secretkey = keys or self.ctl_keys
        sock.connect(self.req_ep)
        try:
            sock.send(json.dumps(dict(req, v=1)).encode())
            if not sock.poll(int(timeout * 1000)):
                return None
            return json.loads(sock.recv())
        finally:
            sock.close()

    def lease(self):
        r = self.request({"op": "info", "dev": 0})
        return r["devices"][0]["lease"] if r else None

    def device(self):
        return self.sim.control.device(0)

    def stranger_key_file(self):
        """A key pair the gateway does not allow (not in its CurveClientsDir)."""
        d = os.path.join(self.tmp, "stranger")
        os.makedirs(d, exist_ok=True)
        zmq.auth.create_certificates(d, "stranger")
        return os.path.join(d, "stranger.key")

    def configure_ctl(self, battery=1, key_file=None):
        """The controller's file (s.ini): gateway 1's endpoints and key, the controller's key
        file (key_file: another), device 0@1's limits as gateway 1 has them for its device 0."""
        s = self.s
        s.ini["GATEWAY"].update({"Gw/1/ReqEndpoint": self.req_ep,
                                 "Gw/1/PubEndpoint": self.pub_ep,
                                 "Gw/1/CurveServerPublicKey": self.server_public.decode(),
                                 "CurveClientKeyFile": key_file or self.ctl_key_file})
        for k, v in self.ini["DEVICE"].items():
            if not k.endswith("/Type"):
                s.ini["DEVICE"][k.replace("Id/0/", "Id/0@1/")] = v
        s.ini["DEVICE"]["Id/0@1/Battery"] = battery
        s.write_ini()
