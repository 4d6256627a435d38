#!/usr/bin/python3
"""bench_cpu_work: CPU time per unit of work of each daemon, with the real processes.

- bic-can-gateway: CPU per bus request, while a client asks for registers as fast as the
  gateway answers (the bus at its pacing limit) and telemetry runs beside it.
- bic-mqtt-bridge: CPU per message it handles: the gateway's telemetry and events it takes in
  (counted by a subscriber of the gateway's PUB socket) and the MQTT messages it publishes
  (counted by a subscriber on the broker).
- bic-charge-ctl: CPU per meter reading, with readings at 20 a second.
- The floor beside each (bench_wake_floor): a process that receives the same messages and does
  nothing with them, its CPU per message: the gateway's telemetry from its PUB socket (what
  the bridge's work starts from), the meter readings through libmosquitto in a zmq_poll loop
  (what the controller's work starts from).

Each figure is the time the process ran on a CPU (/proc/PID/schedstat, all threads) over the
window, divided by the work counted in it. usage: BIC_BUILD_DIR=build /usr/bin/python3 bench/bench_cpu_work.py
[--seconds S]. The last line is key=value figures (docs/benchmarks.md)."""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.join(SRC, "tests", "bridge"))
sys.path.insert(0, os.path.join(SRC, "tests", "ctld"))

import harness  # noqa: E402


def cpu_ns(pid):
    """Time the process has run on a CPU (ns): /proc/PID/schedstat, exact where /proc/PID/stat
    counts in 10 ms ticks."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            total += int(f.read().split()[0])
    return total


class Floor:
    """bench_wake_floor beside a daemon: its CPU per message over the window."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([harness.program("bench_wake_floor")] + [str(a) for a in args],
                                     stdout=subprocess.PIPE, text=True)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        f = dict(kv.split("=") for kv in out.split()[1:])
        return float(f["us_per_message"])


def gateway_and_bridge(seconds):
    import bridge_stack  # noqa: E402
    import zmq  # noqa: E402
    with bridge_stack.Stack(devices=(0,), publish_period=5) as s:
        # as deployed: the daemons log at info, not at the tests' debug
        s.ini["ALL"]["TraceLevel"] = "info"
        harness.write_ini(s.ini_path, s.ini)
        s.gateway.stop()
        s.bridge.stop()
        s.start_gateway()
        s.start_bridge()
        time.sleep(2)
        ctx = zmq.Context.instance()
        stop = threading.Event()
        answered = [0]

        def client():
            sock = ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(s.req_ep)
            i = 0
            while not stop.is_set():
                sock.send_json({"v": 1, "id": i, "op": "get", "dev": 0, "client": "bench-cpu",
                                "regs": ["READ_VOUT", "READ_IOUT", "READ_FAN_SPEED_1"]})
                if sock.poll(5000):
                    r = sock.recv_json()
                    if not r.get("ok"):
                        print("bench_cpu_work: the gateway refused: %s" % r, file=sys.stderr)
                        break
                    answered[0] += 1
                else:
                    break
                i += 1
            sock.close()

        messages = [0]
        counter = harness.MqttClient(s.broker, subscribe=(bridge_stack.T + "/#",))
        counter.client.on_message = lambda c, u, m: messages.__setitem__(0, messages[0] + 1)
        # what the bridge takes in: the gateway's telemetry and events
        tel = [0]
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(s.ini["GATEWAY"]["PubEndpoint"])

        def count_tel():
            while not stop.is_set():
                if sub.poll(200):
                    sub.recv_multipart()
                    tel[0] += 1
        th_tel = threading.Thread(target=count_tel)
        th_tel.start()
        floor = Floor("--sub", s.ini["GATEWAY"]["PubEndpoint"])
        time.sleep(1)
        c0 = s.sim.control.counters()["bus"]["requests"]
        g0 = cpu_ns(s.gateway.pid) / 1e9
        w0 = harness.wakeups(s.gateway.pid)
        bw0 = harness.wakeups(s.bridge.pid)
        b0 = cpu_ns(s.bridge.pid) / 1e9
        m0 = messages[0]
        n0 = tel[0]
        t0 = time.monotonic()
        th = threading.Thread(target=client)
        th.start()
        time.sleep(seconds)
        stop.set()
        th.join()
        t1 = time.monotonic()
        c1 = s.sim.control.counters()["bus"]["requests"]
        g1 = cpu_ns(s.gateway.pid) / 1e9
        w1 = harness.wakeups(s.gateway.pid)
        bw1 = harness.wakeups(s.bridge.pid)
        b1 = cpu_ns(s.bridge.pid) / 1e9
        m1 = messages[0]
        n1 = tel[0]
        th_tel.join()
        sub.close()
        counter.close()
        floor_us = floor.stop()
        req = c1 - c0
        return {"gw_requests": req, "gw_req_per_s": req / (t1 - t0),
                "gw_us_per_request": 1e6 * (g1 - g0) / max(req, 1),
                "gw_answered": answered[0],
                "gw_wakeups_per_request": (w1 - w0) / max(req, 1),
                "bridge_messages": (m1 - m0) + (n1 - n0), "bridge_out": m1 - m0,
                "bridge_in": n1 - n0,
                "bridge_us_per_message": 1e6 * (b1 - b0) / max((m1 - m0) + (n1 - n0), 1),
                "bridge_wakeups_per_message": (bw1 - bw0) / max((m1 - m0) + (n1 - n0), 1),
                "bridge_us_per_in": 1e6 * (b1 - b0) / max(n1 - n0, 1),
                "bridge_floor_us": floor_us}


def controller(seconds):
    import ctld_stack  # noqa: E402
    with ctld_stack.Stack(start_s=0, speed=1, relay=False,
                          ctl={"Id/0/MeterTimeoutSec": 30, "Id/0/LeaseTtlSec": 30}) as s:
        s.ini["ALL"]["TraceLevel"] = "info"
        s.write_ini()
        s.start_ctl(args=())
        floor = Floor("--mqtt", s.broker.port, ctld_stack.METER)
        time.sleep(2)
        c0 = cpu_ns(s.ctl.pid) / 1e9
        w0 = harness.wakeups(s.ctl.pid)
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < seconds:
            # readings around zero export: the controller works on each one
            s.client.publish(ctld_stack.METER, str(-300 + (n % 7) * 100))
            n += 1
            time.sleep(0.05)
        time.sleep(0.5)
        c1 = cpu_ns(s.ctl.pid) / 1e9
        w1 = harness.wakeups(s.ctl.pid)
        return {"ctl_readings": n, "ctl_us_per_reading": 1e6 * (c1 - c0) / n,
                "ctl_wakeups_per_reading": (w1 - w0) / n,
                "ctl_floor_us": floor.stop()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30, help="length of each window")
    a = ap.parse_args()
    if not 5 <= a.seconds <= 600:
        ap.error("--seconds 5-600")
    f = gateway_and_bridge(a.seconds)
    f.update(controller(a.seconds))
    print("bic-can-gateway: %d bus requests (%.1f/s), %.0f us CPU and %.2f wake-ups per request"
          % (f["gw_requests"], f["gw_req_per_s"], f["gw_us_per_request"],
             f["gw_wakeups_per_request"]))
    print("bic-mqtt-bridge: %d messages (%d telemetry in, %d MQTT out), %.0f us CPU and %.2f "
          "wake-ups per message, %.0f us per telemetry message in (floor: %.0f us to receive one "
          "and do nothing)"
          % (f["bridge_messages"], f["bridge_in"], f["bridge_out"], f["bridge_us_per_message"],
             f["bridge_wakeups_per_message"], f["bridge_us_per_in"], f["bridge_floor_us"]))
    print("bic-charge-ctl: %d meter readings, %.0f us CPU and %.2f wake-ups per reading (floor: "
          "%.0f us to receive one and do nothing)"
          % (f["ctl_readings"], f["ctl_us_per_reading"], f["ctl_wakeups_per_reading"],
             f["ctl_floor_us"]))
    print("bench=cpu_work gw_us_per_request=%.0f bridge_us_per_message=%.0f "
          "ctl_us_per_reading=%.0f target_us=100 bridge_us_per_in=%.0f bridge_floor_us=%.0f "
          "ctl_floor_us=%.0f"
          % (f["gw_us_per_request"], f["bridge_us_per_message"], f["ctl_us_per_reading"],
             f["bridge_us_per_in"], f["bridge_floor_us"], f["ctl_floor_us"]))


if __name__ == "__main__":
    main()
