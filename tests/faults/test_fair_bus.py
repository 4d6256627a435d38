"""A fair bus under a write flood: four clients send `set` requests to device 1 as fast as
the gateway answers them (DIRECTION_CTRL back and forth: an output register, and one that
is never persisted, so the flood costs no EEPROM) for 60 s, while bic-charge-ctl drives
device 0 with a lease of 4 s. The gateway shares the bus per device and per client: device
0's telemetry keeps coming (largest gap under 3 s), its controller keeps its lease (no
`lease_lapsed`, no `safe_state`), and the flood is slowed, not refused. Real processes only
(faultlib's chain: mosquitto, bic-sim with two devices, the gateway, the controller)."""

import json
import threading
import time

import zmq

import faultlib
import harness

FLOOD_S = 60
CLIENTS = 4
GAP_MAX_S = 3.0


class Watch(threading.Thread):
    """Records the arrival time of every `tel/0` message and every event."""

    def __init__(self, endpoint):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.tel0 = []
        self.events = []
        self.stop_flag = threading.Event()

    def run(self):
        s = zmq.Context.instance().socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        for p in (b"tel/0", b"evt/"):
            s.setsockopt(zmq.SUBSCRIBE, p)
        s.connect(self.endpoint)
        while not self.stop_flag.is_set():
            if s.poll(100):
                topic, body = s.recv_multipart()
                now = time.monotonic()
                if topic == b"tel/0":
                    self.tel0.append(now)
                else:
                    self.events.append((now, topic.decode(), json.loads(body)))
        s.close()

    def max_gap(self, t0, t1):
        ts = [t0] + [t for t in self.tel0 if t0 <= t <= t1] + [t1]
        return max(b - a for a, b in zip(ts, ts[1:]))


class Flood(threading.Thread):
    """One client writing DIRECTION_CTRL of device 1 back and forth, one request at a time
    (a fresh socket after a timeout)."""

    def __init__(self, endpoint, name, until):
        super().__init__(daemon=True)
        self.endpoint, self.name, self.until = endpoint, name, until
        self.done = self.ok = 0
        self.errors = {}

    def run(self):
        ctx = zmq.Context.instance()
        s = None
        value = 0
        while time.monotonic() < self.until:
            if s is None:
                s = ctx.socket(zmq.REQ)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(self.endpoint)
            value ^= 1
            s.send(json.dumps({"v": 1, "op": "set", "dev": 1, "reg": "DIRECTION_CTRL",
                               "value": value, "client": self.name}).encode())
            if not s.poll(5000):
                s.close()
                s = None
                self.errors["no reply"] = self.errors.get("no reply", 0) + 1
                continue
            r = json.loads(s.recv())
            self.done += 1
            if r.get("ok"):
                self.ok += 1
            else:
                code = r["error"]["code"]
                self.errors[code] = self.errors.get(code, 0) + 1
        if s is not None:
            s.close()


def test_write_flood_leaves_the_neighbour_its_share():
    with faultlib.Chain(seed=7, load=False, bridge=False) as c:
        holder = c.holder()
        assert holder and holder.startswith("charge-ctl-0-"), holder
        watch = Watch(c.pub_ep)
        watch.start()
        harness.wait_for(lambda: len(watch.tel0) >= 2, 10, what="telemetry of device 0")
        t0 = time.monotonic()
        floods = [Flood(c.req_ep, "flood-%d" % i, t0 + FLOOD_S) for i in range(CLIENTS)]
        for f in floods:
            f.start()
        for f in floods:
            f.join(FLOOD_S + 30)
        t1 = time.monotonic()
        watch.stop_flag.set()
        watch.join(5)
        gap = watch.max_gap(t0, t1)
        done = sum(f.done for f in floods)
        ok = sum(f.ok for f in floods)
        errors = {}
        for f in floods:
            for k, v in f.errors.items():
                errors[k] = errors.get(k, 0) + v
        lost = [e for e in watch.events if e[1] == "evt/0"
                and e[2].get("event") in ("lease_lapsed", "safe_state")]
        print("flood: %d clients, %.0f s, %d requests answered (%d ok, %.1f/s), errors %s; "
              "device 0: %d telemetry messages, largest gap %.2f s; lease holder %s"
              % (CLIENTS, t1 - t0, done, ok, done / (t1 - t0), errors, len(
                  [t for t in watch.tel0 if t0 <= t <= t1]), gap, c.holder()), flush=True)
        assert gap < GAP_MAX_S, "device 0's telemetry stopped for %.2f s" % gap
        assert not lost, "device 0 lost its controller's lease: %s" % lost
        assert c.holder() == holder, "lease of device 0: %s, was %s" % (c.holder(), holder)
        assert ok > 0, "the flood was refused altogether: %s" % errors


if __name__ == "__main__":
    harness.run_tests()
