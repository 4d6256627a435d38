"""The whole chain for the controller's integration tests: a private mosquitto, bic-sim on a
pty replaying a household day (its true grid power published on MQTT), a meter relay that
forwards that reading to the controller's meter topic (kill it and the meter goes silent),
bic-can-gateway and bic-charge-ctl with one generated ini, and a paho client that records
everything. Real processes only; the harness cleans them up."""

import json
import os
import sys
import time

import harness

T = "test/bic"
METER = "home/meter/power"
BROADCAST_ID = 0x000C03FF  # a BIC-2200 frame to every device of the bus
IOUT_SET = 0x0030
SIM_METER = "sim/meter"
DEV = "0:24:battery,canctrl"
# A commissioned BIC-2200-24 on a 24 V pack: the [DEVICE] keys of every unit of the stack.
DEV_KEYS_24 = {"Type": "BIC2200-24CAN", "ChargeVoltage": 2800, "DischargeVoltage": 2400,
               "MaxChargeCurrent": 7500, "MaxDischargeCurrent": 6000}
PROFILE = harness.source_path("data", "profiles", "p1_clear_march.csv")

# Open-circuit voltage of a 24 V LiFePO4 pack (8 cells), as in sim/twin-example.ini.
CAP2V = {0: 20.00, 2: 23.20, 5: 24.40, 10: 25.44, 20: 25.92, 30: 26.16, 40: 26.32, 50: 26.40,
         60: 26.48, 70: 26.56, 80: 26.64, 90: 26.72, 95: 26.88, 98: 27.20, 100: 28.00}


def broadcast_iout(sim, within_s=None):
    """The IOUT_SET values (raw) sent to the broadcast ID, in the simulator's frame log (the
    last within_s seconds of it when given), oldest first."""
    out = []
    for f in sorted(sim.control.frames(512), key=lambda f: -f["age_ms"]):
        if (f["dir"] != "rx" or int(f["id"], 16) != BROADCAST_ID or f["dlc"] != 4 or
                (within_s is not None and f["age_ms"] > within_s * 1000.0)):
            continue
        d = bytes.fromhex(f["data"])
        if d[0] | d[1] << 8 == IOUT_SET:
            out.append(d[2] | d[3] << 8)
    return out


class Stack:
    def __init__(self, start_s=46920, speed=5, ctl=None, meter_period_ms=500, relay=True,
                 gateway=None, sim_args=(), device=None, follow_problem_expected=False,
                 units=(0,), ctl_id=0, npbs=None, npb_keys=None, household=PROFILE):
        """units: the devices on the simulator's bus (each with its own battery), all
        commissioned and given the same [DEVICE] keys as device 0. ctl_id: the device the
        controller drives (its [CHARGE_CONTROL] Id/X and topics). npbs: {address: bic-sim
        NPB spec, e.g. "npb-1200-24:soc=30"} on the bus too; npb_keys: their [NPB] keys."""
        self.tmp = harness.temp_dir("bic-ctld-")
        self.broker = harness.Mosquitto()
        self.sim = self.gateway = self.ctl = self.relay = self.client = None
        self.old = []  # controllers stopped by the test, for failure reports
        self.extra = []  # more processes the test starts (stopped first at the end)
        # A device that follows never raises "does not follow" (checked when the test ends).
        self.follow_problem_expected = follow_problem_expected
        try:
            self.units = tuple(units)
            self.speed = speed
            self.ctl_id = ctl_id
            devs = [DEV] + ["%d:24:battery,canctrl" % u for u in self.units if u != 0]
            devs += ["%d:%s" % (a, spec) for a, spec in sorted((npbs or {}).items())]
            self.sim = harness.Sim(devices=devs, household=household, speed=speed,
                                   mqtt=self.broker, meter_topic=SIM_METER,
                                   meter_period_ms=meter_period_ms,
                                   args=["--start-s", start_s] + list(sim_args), tmp=self.tmp)
            self.req_ep = "ipc://%s/gw.sock" % self.tmp
            self.pub_ep = "ipc://%s/tel.sock" % self.tmp
            gw = {"Can": self.sim.transport, "ReqEndpoint": self.req_ep,
                  "PubEndpoint": self.pub_ep, "StateDir": self.tmp, "TelemetryPeriodMs": 500,
                  "EepromWriteIntervalSec": 0, "ClientTimeoutMs": 1500, "ClientRetries": 1}
            gw.update(gateway or {})
            cc = {"Id/%d/%s" % (ctl_id, k): v for k, v in (
                ("TopicPower", METER), ("MeterTimeoutSec", 3), ("LeaseTtlSec", 4),
                ("IdleDwellSec", 1), ("DirectionDwellSec", 2), ("DischargeBlockTimeSec", 0),
                ("ChargeTol", 20))}
            cc.update(ctl or {})
            dev_keys = DEV_KEYS_24
            self.ini = {
                "ALL": {"TraceLevel": "debug"},
                "MQTT": {"BrokerIpAdr": "127.0.0.1", "BrokerPort": self.broker.port,
                         "TopicMain": T, "KeepAliveSec": 5},
                "GATEWAY": gw,
                "DEVICE": dict({"Id/%d/%s" % (u, k): v for u in self.units
                                for k, v in dev_keys.items()}, **(device or {})),
                "BAT_0": {"Cap2V/%d" % p: v for p, v in CAP2V.items()},
                "CHARGE_CONTROL": cc,
            }
            if npb_keys:
                self.ini["NPB"] = dict(npb_keys)
            self.ini_path = os.path.join(self.tmp, "bic2mqtt.ini")
            self.write_ini()
            self.client = harness.MqttClient(self.broker)
            self.gateway = harness.start_program("bic-can-gateway", self.ini_path, tmp=self.tmp)
            # Commissioning (as `bicctl` would do it): the configured charge and discharge end
            # voltages. The controller commands modes and currents only.
            dv = self.ini["DEVICE"]
            for u in self.units:
                harness.wait_for(lambda: self.gateway_request({"op": "info", "dev": u})
                                 ["devices"][0]["online"], timeout=20,
                                 what="gateway: device %d online" % u)
                for reg, key in (("VOUT_SET", "ChargeVoltage"),
                                 ("REVERSE_VOUT_SET", "DischargeVoltage")):
                    r = self.gateway_request({"op": "set", "dev": u, "reg": reg,
                                              "value": dv["Id/%d/%s" % (u, key)] / 100.0,
                                              "client": "commissioning"})
                    assert r.get("ok"), r
            if relay:
                self.start_relay()
        except Exception:
            self.close()
            raise

    # -- processes
    def restart_gateway(self):
        """Stops the gateway and starts a new one on the same ini."""
        self.gateway.stop()
        self.old.append(self.gateway)
        self.gateway = harness.start_program("bic-can-gateway", self.ini_path, tmp=self.tmp)
        harness.wait_for(lambda: self.gateway_request({"op": "info", "dev": 0})
                         ["devices"][0]["online"], timeout=20, what="gateway: device online")

    def write_ini(self):
        harness.write_ini(self.ini_path, self.ini)

    def start_relay(self, add_topics=()):
        """The meter: the simulator's reading, plus the latest of each of add_topics."""
        self.relay = harness.Process(
            [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "meter_relay.py"),
             "127.0.0.1", self.broker.port, SIM_METER, METER] + list(add_topics),
            name="meter-relay", log_dir=self.tmp)
        self.client.wait_message(METER, timeout=15, after=time.monotonic())
        return self.relay

    def start_bridge(self):
        """Starts bic-mqtt-bridge on the same ini (stopped with the stack); returns it once it
        publishes device 0's state."""
        after = time.monotonic()
        bridge = harness.start_program("bic-mqtt-bridge", self.ini_path, tmp=self.tmp)
        self.old.append(bridge)
        self.client.wait_message(self.topic("inv/0/state"), timeout=30, after=after)
        return bridge

    def start_ctl(self, wait=True, args=("-v",)):
        after = time.monotonic()
        if self.ctl is not None:
            self.old.append(self.ctl)
        self.ctl = harness.start_program("bic-charge-ctl", self.ini_path, args=args,
                                         tmp=self.tmp)
        if wait:
            # Start-up deadlines, not timing claims: generous for a loaded machine.
            self.client.wait_message(self.topic("ctl/%d/state" % self.ctl_id),
                                     lambda p: p == "running",
                                     timeout=30, after=after)
            self.wait_status(lambda s: s["lease"]["held"], timeout=30, after=after)
        return self.ctl

    # -- MQTT helpers
    def topic(self, sub):
        return "%s/%s" % (T, sub)

    def status(self):
        p = self.client.last(self.topic("inv/%d/control" % self.ctl_id))
        return json.loads(p) if p else None

    def wait_status(self, pred, timeout=15, after=None):
        def ok(payload):
            try:
                return pred(json.loads(payload))
            except (ValueError, KeyError, TypeError):
                return False
        return json.loads(self.client.wait_message(self.topic("inv/%d/control" % self.ctl_id), ok,
                                                   timeout=timeout, after=after))

    def command(self, payload, retain=False, timeout=10):
        """Publishes on control/set and returns the result (dict)."""
        after = time.monotonic()
        self.client.publish(self.topic("inv/0/control/set"), payload, qos=1, retain=retain)
        return json.loads(self.client.wait_message(self.topic("inv/0/control/set/result"),
                                                   timeout=timeout, after=after))

    # -- gateway
    def gateway_request(self, req, timeout=5):
        import zmq
        s = zmq.Context.instance().socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.req_ep)
        try:
            s.send(json.dumps(dict(req, v=1)).encode())
            if not s.poll(int(timeout * 1000)):
                raise harness.HarnessError("gateway did not answer %r" % req)
            return json.loads(s.recv())
        finally:
            s.close()

    def lease(self):
        """The gateway's lease of device 0: {"holder":..,"expires_in_s":..} or None."""
        return self.gateway_request({"op": "info", "dev": 0})["devices"][0]["lease"]

    def gw_health(self, timeout=12):
        """The gateway's next `gw` message (bus state and reconnect counter)."""
        import zmq
        s = zmq.Context.instance().socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SUBSCRIBE, b"gw")
        s.connect(self.pub_ep)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if s.poll(200):
                    parts = s.recv_multipart()
                    if parts[0] == b"gw":
                        return json.loads(parts[1])
            raise harness.HarnessError("no `gw` message from the gateway")
        finally:
            s.close()

    # -- the simulator's truth
    def device(self):
        return self.sim.control.device(0)

    def charging(self):
        """The controller runs and charges, and the device follows its current."""
        st = self.status()
        if not st or st["mode"] != "running" or st["setpoint"]["mode"] != "charge":
            return False
        d = self.device()
        return d["output_on"] and abs(d["dc_a"] - st["setpoint"]["current_a"]) < 2

    def household(self):
        return self.sim.control.household()

    def report(self):
        out = []
        for p in self.old + [self.ctl, self.gateway, self.relay] + self.extra:
            if p is not None:
                out.append("--- %s\n%s" % (getattr(p, "name", "bic-sim"), p.output()[-5000:]))
        return "\n".join(out)

    def close(self):
        for p in [self.ctl, self.relay, self.gateway] + self.extra:
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
        if exc_type is None and not self.follow_problem_expected:
            for p in self.old + [self.ctl]:
                if p is not None and "does not follow the setpoint" in p.output():
                    raise AssertionError("the controller reported a device that follows as not "
                                         "following:\n%s" % p.output()[-3000:])
        return False
