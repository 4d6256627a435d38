#!/usr/bin/python3
"""Benchmark of bic-mqtt-bridge: latency from a telemetry message on the gateway's PUB socket
to the matching `<T>/inv/<id>/state` message at an MQTT subscriber, and the bridge's memory
(RSS) and CPU time. Prints figures; it is not a test.

The bridge runs for real against a private mosquitto. The gateway's side is played by this
script (a PUB and a REP socket speaking docs/ipc-protocol.md), so that the time a message
enters the bridge is known exactly and the figure is the bridge's own: ZeroMQ receive, JSON
decode, payload build, libmosquitto publish, broker, subscriber.

    BIC_BUILD_DIR=build /usr/bin/python3 bench/bench_bridge.py [--samples N] [--rate HZ]
      [--devices N]

Figures are recorded in docs/mqtt.md ("Benchmark").
"""

import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import harness  # noqa: E402
import zmq  # noqa: E402

T = "bench/bic"


def info_device(dev):
    return {"dev": dev, "online": True, "family": "BIC", "model": "BIC-2200-24", "variant": 24,
            "firmware": {"raw": "0E0DFFFFFFFF", "mcu": ["R01.4", "R01.3"]},
            "serial": "24030100000%d" % dev, "date": "240301", "mode": "battery",
            "mode_pending": None, "can_ctrl": True, "caps": {"fans": True, "eep_off": True},
            "limits": {"vout_v": [19.0, 28.0], "iout_a": [0.9, 50.0],
                       "rev_vout_v": [19.0, 28.0], "rev_iout_a": [0.9, 50.0]},
            "eeprom": {"policy": "eep_off", "writes_total": 0}, "lease": None}


def telemetry(dev, i):
    v = 20.0 + (i % 800) * 0.01  # consecutive samples differ: the bridge publishes on change
    return {"v": 1, "dev": dev, "ts_ms": int(time.time() * 1000), "online": True,
            "model": "BIC-2200-24", "dc_v": round(v, 2), "dc_a": 10.0, "dc_w": round(v * 10, 1),
            "ac_v": 230.0, "temp_c": 30.0, "fans": [1200, 1300], "operation": 1,
            "direction": "charge", "mode": "battery",
            "setpoints": {"vout_v": 27.6, "iout_a": 10.0, "rev_vout_v": 24.0,
                          "rev_iout_a": 0.9},
            "fault": {"raw": 0, "fan_fail": False, "otp": False, "ovp": False, "olp": False,
                      "short": False, "ac_fail": False, "op_off": False, "hi_temp": False,
                      "hv_ovp": False},
            "status": {"raw": 34, "eeper": False}, "eeprom": {"writes_total": 0,
                                                                "policy": "eep_off"},
            "lease": None, "age_ms": {"fast": 10, "slow": 500}}


class FakeGatewayRep(threading.Thread):
    """Answers the bridge's requests (info, get) the way the gateway does."""

    def __init__(self, ctx, endpoint, devices):
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.REP)
        self.sock.bind(endpoint)
        self.devices = devices
        self.stop = False

    def run(self):
        while not self.stop:
            if not self.sock.poll(100):
                continue
            req = json.loads(self.sock.recv())
            rep = {"v": 1, "ok": True}
            if "id" in req:
                rep["id"] = req["id"]
            if req.get("op") == "info":
                rep["devices"] = [info_device(d) for d in range(self.devices)]
            elif req.get("op") == "get":
                rep.update(dev=req.get("dev", 0), values={
                    "SYSTEM_CONFIG": {"value": 1025, "raw": 1025},
                    "BIDIRECTIONAL_CONFIG": {"value": 1, "raw": 1}})
            self.sock.send(json.dumps(rep).encode())


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return -1


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=50.0, help="telemetry messages per second")
    ap.add_argument("--devices", type=int, default=1)
    args = ap.parse_args()

    tmp = harness.temp_dir("bic-bench-bridge-")
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub_ep, req_ep = "ipc://%s/tel.sock" % tmp, "ipc://%s/gw.sock" % tmp
    pub.bind(pub_ep)
    rep = FakeGatewayRep(ctx, req_ep, args.devices)
    rep.start()
    with harness.Mosquitto() as broker:
        ini = {"MQTT": {"BrokerIpAdr": "127.0.0.1", "BrokerPort": broker.port, "TopicMain": T,
                        "PublishPeriodSec": 3600},
               "GATEWAY": {"ReqEndpoint": req_ep, "PubEndpoint": pub_ep},
               "DEVICE": {}}
        for d in range(args.devices):
            ini["DEVICE"].update({"Id/%d/ChargeVoltage" % d: 2760,
                                  "Id/%d/DischargeVoltage" % d: 2400,
                                  "Id/%d/MaxChargeCurrent" % d: 5000,
                                  "Id/%d/MaxDischargeCurrent" % d: 5000})
        bridge = harness.start_program("bic-mqtt-bridge", ini, tmp=tmp)
        arrivals = {}
        lock = threading.Lock()
        client = harness.MqttClient(broker, subscribe=(T + "/inv/+/state",))

        def on_message(c, userdata, msg):
            now = time.monotonic()
            try:
                st = json.loads(msg.payload)
                dev = int(msg.topic.split("/")[-2])
            except (ValueError, IndexError):
                return
            with lock:
                arrivals.setdefault((dev, st.get("dcBatV")), []).append(now)
        client.client.on_message = on_message

        # Warm-up: the bridge is connected and has the devices' info.
        i = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pub.send_multipart([b"tel/0", json.dumps(telemetry(0, 500 + i)).encode()])
            i += 1
            time.sleep(0.1)
            with lock:
                if arrivals:
                    break
        time.sleep(1.0)
        rss0 = proc_status(bridge.pid, "VmRSS:")
        cpu0 = cpu_s(bridge.pid)

        sent = {}
        period = 1.0 / args.rate
        start = time.monotonic()
        for n in range(args.samples):
            dev = n % args.devices
            msg = telemetry(dev, n)
            t = time.monotonic()
            pub.send_multipart([b"tel/%d" % dev, json.dumps(msg).encode()])
            sent[(dev, msg["dc_v"], n)] = t
            next_t = start + (n + 1) * period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        time.sleep(1.0)
        elapsed = time.monotonic() - start
        cpu1 = cpu_s(bridge.pid)
        rss1 = proc_status(bridge.pid, "VmRSS:")
        hwm = proc_status(bridge.pid, "VmHWM:")
        lat = []
        with lock:
            for (dev, v, n), t in sent.items():
                # the first state with this value after it was sent (values repeat slowly)
                later = [a for a in arrivals.get((dev, v), []) if a >= t]
                if later:
                    lat.append((min(later) - t) * 1e6)
        client.close()
        bridge.stop()
    rep.stop = True
    rep.join(1)

    import subprocess
    version = subprocess.run([harness.program("bic-mqtt-bridge"), "--version"],
                             capture_output=True, text=True).stdout.strip()
    print("%s: %d device(s), %d telemetry messages at %.0f/s, %d CPUs, %s" % (
        version, args.devices, args.samples, args.rate, os.cpu_count(), os.uname().release))
    if not lat:
        print("no state message matched a telemetry message")
        return 1
    print("latency telemetry in -> MQTT state out: p50 %.0f us  p90 %.0f us  p99 %.0f us  "
          "max %.0f us  (%d of %d matched)" % (pct(lat, 50), pct(lat, 90), pct(lat, 99),
                                                max(lat), len(lat), args.samples))
    print("bridge RSS %d kB after warm-up, %d kB at the end (peak %d kB); CPU %.1f %% of one "
          "core at %.0f messages/s" % (rss0, rss1, hwm, 100.0 * (cpu1 - cpu0) / elapsed,
                                       args.rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
