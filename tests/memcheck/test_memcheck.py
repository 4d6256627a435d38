"""The daemons under valgrind memcheck for short scripted sessions.

First bic-can-gateway and bic-sim together: both start under `valgrind --error-exitcode=1 --leak-check=full`, the gateway comes
up on the simulator's pty, and a client sends a few requests of every kind (reads, a write
with read-back, a setpoint under a lease, a lease release, refusals of malformed, oversized
and unknown requests) while the simulator's control socket is queried and a fault is
injected and cleared. Both then get SIGTERM. Then bic-mqtt-bridge, between a real broker
and gateway, with commands and bad payloads on its topics. A test fails when a program under
valgrind exits non-zero or valgrind reports any error or leak (its log is printed).
"""

import json
import os
import shutil
import signal
import time

import zmq

import harness

VALGRIND = shutil.which("valgrind")
# valgrind runs the programs tens of times slower: generous deadlines everywhere
SLOW = 60.0


def valgrind_argv(tmp, name):
    log = os.path.join(tmp, "%s.valgrind.log" % name)
    return log, [VALGRIND, "--error-exitcode=1", "--leak-check=full", "--show-leak-kinds=all",
                 "--errors-for-leak-kinds=definite,possible", "--track-origins=yes",
                 "--num-callers=30", "--log-file=%s" % log]


class Req:
    """A REQ client that waits long enough for a gateway under valgrind."""

    def __init__(self, endpoint):
        self.sock = zmq.Context.instance().socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def raw(self, data, timeout=SLOW):
        self.sock.send(data if isinstance(data, bytes) else data.encode())
        if not self.sock.poll(int(timeout * 1000)):
            raise harness.HarnessError("no reply within %.0f s" % timeout)
        return json.loads(self.sock.recv().decode())

    def call(self, op, **fields):
        msg = {"v": 1, "op": op}
        msg.update(fields)
        return self.raw(json.dumps(msg))

    def close(self):
        self.sock.close(linger=0)


def stop_under_valgrind(proc, log):
    """SIGTERM, then the exit code and valgrind's log (the process must exit by itself)."""
    proc.signal(signal.SIGTERM)
    rc = proc.wait_exit(SLOW)
    with open(log) as f:
        text = f.read()
    return rc, text


def check_clean(name, rc, text, output):
    summary = [l for l in text.splitlines() if "ERROR SUMMARY" in l]
    assert rc == 0 and summary and " 0 errors" in summary[-1], (
        "%s under valgrind: exit %s, %s\n---- valgrind log ----\n%s\n---- output ----\n%s" %
        (name, rc, summary[-1] if summary else "no summary", text[-12000:], output[-3000:]))


def test_gateway_and_sim_session():
    assert VALGRIND, "valgrind is not installed (tools/deps.sh installs it)"
    tmp = harness.temp_dir("bic-memcheck-")
    pty = os.path.join(tmp, "can0")
    ctl = "ipc://" + os.path.join(tmp, "sim.ctl")
    sim_log, argv = valgrind_argv(tmp, "bic-sim")
    sim = harness.Process(argv + [harness.program("bic-sim"), "--slcan-pty", pty, "--control",
                                  ctl, "--device", "0:24:battery,canctrl"],
                          name="bic-sim", log_dir=tmp)
    harness.wait_for(lambda: os.path.lexists(pty) or not sim.alive(), SLOW, what="bic-sim pty")
    assert sim.alive(), sim.output()
    control = harness.SimControl(ctl, timeout=SLOW, retries=0)
    control.state()

    req_ep = "ipc://" + os.path.join(tmp, "gw.sock")
    pub_ep = "ipc://" + os.path.join(tmp, "tel.sock")
    state = os.path.join(tmp, "state")
    os.makedirs(state)
    ini = harness.write_ini(os.path.join(tmp, "gw.ini"), {
        "GATEWAY": {"Can": "slcan:" + pty, "ReqEndpoint": req_ep, "PubEndpoint": pub_ep,
                    "StateDir": state, "TelemetryPeriodMs": 1000, "ResponseTimeoutMs": 1000,
                    "LeaseMaxTtlSec": 60},
        "DEVICE": {"Id/0/Type": "BIC2200-24CAN", "Id/0/ChargeVoltage": 2760,
                   "Id/0/DischargeVoltage": 2400, "Id/0/MaxChargeCurrent": 3000,
                   "Id/0/MaxDischargeCurrent": 2500},
    })
    gw_log, argv = valgrind_argv(tmp, "bic-can-gateway")
    gw = harness.Process(argv + [harness.program("bic-can-gateway"), "-c", ini],
                         name="bic-can-gateway", log_dir=tmp)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt_string(zmq.SUBSCRIBE, "")
    sub.connect(pub_ep)
    cl = Req(req_ep)
    try:
        assert cl.call("ping")["ok"]

        def online():
            devs = cl.call("devices")["devices"]
            return any(d["dev"] == 0 and d["online"] for d in devs)
        harness.wait_for(online, SLOW, interval=0.5, what="device 0 online")

        r = cl.call("get", dev=0, regs=["READ_VOUT", "IOUT_SET", "FAULT_STATUS",
                                        "MFR_MODEL_B0B5", "SCALING_FACTOR"])
        assert r["ok"] and r["values"]["READ_VOUT"]["value"] > 0, r
        r = cl.call("set", dev=0, reg="VOUT_SET", value=27.5, client="memcheck")
        assert r["ok"] and r["raw"] == 2750, r
        r = cl.call("setpoint", dev=0, client="memcheck", mode="charge", current_a=5.0,
                    lease_ttl_s=30)
        assert r["ok"], r
        token = r["token"]  # the lease is memcheck's by this token
        assert control.device(0)["target_a"] > 0
        r = cl.call("setpoint", dev=0, client="other", mode="discharge", current_a=2.0)
        assert not r["ok"] and r["error"]["code"] == "lease_held", r
        assert cl.call("info")["ok"]
        assert cl.call("eeprom", dev=0)["ok"]
        r = cl.call("setpoint", dev=0, client="memcheck", mode="idle")
        assert not r["ok"] and r["error"]["code"] == "bad_token", r
        r = cl.call("setpoint", dev=0, client="memcheck", mode="idle", token=token)
        assert r["ok"], r
        assert cl.call("lease", client="memcheck", action="release", token=token)["ok"]
        # refusals: each must be answered, none may leak
        assert cl.raw(b'{"v":1,"op":')["error"]["code"] == "bad_request"
        assert cl.raw(b'{"v":1,"op":"get","regs":' + b'"X",' * 2000 + b'"Y"]}')["error"]["code"] \
            == "too_large"
        assert cl.call("reboot")["error"]["code"] == "unknown_op"
        assert cl.call("set", dev=0, reg="IOUT_SET", value=500)["error"]["code"] == "out_of_range"
        assert cl.call("get", dev=9, reg="READ_VOUT")["error"]["code"] == "unknown_device"

        control.fault("otp", True)
        control.fault("otp", False)
        assert control.counters()["ok"]
        bad = control.raw(b'{"cmd":')
        assert bad.get("ok") is False, bad
        # telemetry reached the subscriber
        assert sub.poll(int(SLOW * 1000)), "no telemetry published"
    finally:
        cl.close()
        sub.close(linger=0)
        control.close()
    rc_gw, text_gw = stop_under_valgrind(gw, gw_log)
    rc_sim, text_sim = stop_under_valgrind(sim, sim_log)
    check_clean("bic-can-gateway", rc_gw, text_gw, gw.output())
    check_clean("bic-sim", rc_sim, text_sim, sim.output())


def test_bridge_session():
    """bic-mqtt-bridge under valgrind against a real broker, gateway and simulator: it comes up,
    publishes state, executes commands and refuses bad payloads, then stops on SIGTERM."""
    assert VALGRIND, "valgrind is not installed (tools/deps.sh installs it)"
    tmp = harness.temp_dir("bic-memcheck-")
    topic = "mc/bic"
    with harness.Mosquitto() as broker, harness.Sim(devices=["0:24:battery,canctrl"],
                                                    tmp=tmp) as sim:
        ini = harness.write_ini(os.path.join(tmp, "bic2mqtt.ini"), {
            "MQTT": {"BrokerIpAdr": "127.0.0.1", "BrokerPort": broker.port, "TopicMain": topic,
                     "PublishPeriodSec": 5},
            "GATEWAY": {"Can": sim.transport, "ReqEndpoint": "ipc://%s/gw.sock" % tmp,
                        "PubEndpoint": "ipc://%s/tel.sock" % tmp, "StateDir": tmp,
                        "TelemetryPeriodMs": 500, "EepromWriteIntervalSec": 0},
            "DEVICE": {"Id/0/Type": "BIC2200-24CAN", "Id/0/ChargeVoltage": 2760,
                       "Id/0/DischargeVoltage": 2400, "Id/0/MaxChargeCurrent": 3000,
                       "Id/0/MaxDischargeCurrent": 2500},
        })
        client = harness.MqttClient(broker)
        gw = harness.start_program("bic-can-gateway", ini, tmp=tmp)
        log, argv = valgrind_argv(tmp, "bic-mqtt-bridge")
        bridge = harness.Process(argv + [harness.program("bic-mqtt-bridge"), "-c", ini],
                                 name="bic-mqtt-bridge", log_dir=tmp)
        try:
            client.wait_message(topic + "/sys/state", lambda p: p == "running", timeout=SLOW)
            client.wait_message(topic + "/inv/0/state",
                                lambda p: json.loads(p).get("onlMode") != "offline",
                                timeout=SLOW)
            cmds = [("chargeV/set", "27.5"), ("charge/set", '{"var":"chargeA","val":5,"id":1}'),
                    ("direction/set", "charge"), ("chargeLimA/set", "not a number"),
                    ("charge/set", '{"var":'), ("charge/set", "x" * 5000),
                    ("state/set", "0")]
            for sub, payload in cmds:
                after = time.monotonic()
                client.publish("%s/inv/0/%s" % (topic, sub), payload)
                client.wait_message("%s/inv/0/%s/result" % (topic, sub), timeout=SLOW,
                                    after=after)
        finally:
            client.close()
        rc, text = stop_under_valgrind(bridge, log)
        check_clean("bic-mqtt-bridge", rc, text, bridge.output())
        gw.stop()


if __name__ == "__main__":
    harness.run_tests()
