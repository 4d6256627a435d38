"""Helpers for the gateway's integration tests: start bic-can-gateway against a bic-sim from
the shared harness, talk to it over ZeroMQ (REQ with Lazy Pirate, SUB for telemetry and
events) and check the simulator's pacing counters.
"""

import json
import os
import time

import zmq

import harness


def gateway_ini(sim, tmp, devices=None, **gateway):
    """The ini dict for a gateway on sim's pty. The endpoints are ipc:// sockets in tmp, so
    no other test running at the same time can reach this gateway by picking the same port."""
    gw = {
        "Can": sim.transport,
        "ReqEndpoint": "ipc://%s/gw-req.sock" % tmp,
        "PubEndpoint": "ipc://%s/gw-pub.sock" % tmp,
        "StateDir": os.path.join(tmp, "state"),
        "TelemetryPeriodMs": 500,
    }
    gw.update({k: v for k, v in gateway.items()})
    os.makedirs(gw["StateDir"], exist_ok=True)
    dev = {}
    for addr, d in (devices if devices is not None else {0: {}}).items():
        base = {"Type": "BIC2200-24CAN", "ChargeVoltage": 2760, "DischargeVoltage": 2400,
                "MaxChargeCurrent": 3000, "MaxDischargeCurrent": 2500}
        base.update(d)
        for k, v in base.items():
            dev["Id/%d/%s" % (addr, k)] = v
    return {"GATEWAY": gw, "DEVICE": dev}


class Client:
    """REQ client with a receive timeout; on timeout the socket is recreated (Lazy Pirate).

    Like a controller, it keeps the lease token a take (or a setpoint with lease_ttl_s) replied
    with, by client name, and sends it with that name's later requests unless the call gives
    `token` itself (token=None: none). The tokens are shared by every Client, so they outlive a
    gateway restart as the leases do."""

    tokens = {}

    def __init__(self, endpoint, timeout=8.0):
        self.endpoint = endpoint
        self.timeout = timeout
        self.ctx = zmq.Context.instance()
        self.sock = None
        self._open()

    def _open(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)

    def raw(self, data, retries=1):
        if isinstance(data, str):
            data = data.encode()
        for _ in range(retries + 1):
            self.sock.send(data)
            if self.sock.poll(int(self.timeout * 1000)):
                return json.loads(self.sock.recv().decode())
            self._open()
        raise harness.HarnessError("no reply from the gateway at %s" % self.endpoint)

    def call(self, op, **fields):
        msg = {"v": 1, "op": op}
        name = fields.get("client")
        if "token" not in fields and name in Client.tokens:
            msg["token"] = Client.tokens[name]
        msg.update(fields)
        r = self.raw(json.dumps(msg))
        if name and r.get("ok") and r.get("token"):
            Client.tokens[name] = r["token"]
        return r

    def ok(self, op, **fields):
        r = self.call(op, **fields)
        if not r.get("ok"):
            raise AssertionError("%s failed: %s" % (op, r))
        return r

    def error(self, op, code, **fields):
        """Calls op, asserts an error reply with code; returns the error object."""
        r = self.call(op, **fields)
        assert r.get("ok") is False, "expected %s from %s, got %s" % (code, op, r)
        assert r["error"]["code"] == code, "expected %s from %s, got %s" % (code, op, r)
        assert r["error"]["message"], r
        return r["error"]

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None


class Sub:
    """SUB socket recording (topic, json) messages."""

    # Topics the gateway publishes on its own (telemetry each period, health every 5 s).
    SYNC_PREFIXES = ("tel/", "gw")

    def __init__(self, endpoint, prefixes=("",), sync_timeout=6.0):
        """Subscribes and, while the gateway is up, returns once the subscription is in
        force: a PUB drops what it sends before a subscriber's subscriptions reach it, so an
        event caused right after connecting could be missed. The subscriptions travel in
        order; the first message on a topic subscribed after them shows all are in force."""
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.prefixes = tuple(prefixes)
        for p in self.prefixes:
            self.sock.setsockopt_string(zmq.SUBSCRIBE, p)
        extra = [p for p in self.SYNC_PREFIXES
                 if not any(p.startswith(q) for q in self.prefixes)]
        for p in extra:
            self.sock.setsockopt_string(zmq.SUBSCRIBE, p)
        self.sock.connect(endpoint)
        self.seen = []
        # Without the gateway running nothing comes: the subscription is then in force by
        # the time it starts publishing.
        if self.sock.poll(int(sync_timeout * 1000)):
            self._drain(0)
        for p in extra:
            self.sock.setsockopt_string(zmq.UNSUBSCRIBE, p)

    def _drain(self, wait_ms):
        while self.sock.poll(wait_ms):
            parts = self.sock.recv_multipart()
            if len(parts) == 2:
                topic = parts[0].decode()
                if any(topic.startswith(p) for p in self.prefixes):
                    self.seen.append((topic, json.loads(parts[1].decode())))
            wait_ms = 0

    def wait(self, pred, timeout=harness.DEFAULT_TIMEOUT, what="message"):
        """Waits for a (topic, body) that satisfies pred; returns it."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for m in self.seen[checked:]:
                if pred(m[0], m[1]):
                    return m
            checked = len(self.seen)
            left = deadline - time.monotonic()
            if left <= 0:
                raise harness.HarnessError("timed out waiting for %s (got %d messages: %s)" %
                                           (what, len(self.seen),
                                            [t for t, _ in self.seen[-10:]]))
            self._drain(int(min(left, 0.2) * 1000))

    def event(self, dev, name, timeout=harness.DEFAULT_TIMEOUT):
        return self.wait(lambda t, b: t == "evt/%d" % dev and b.get("event") == name,
                         timeout, "event %s of device %d" % (name, dev))[1]

    def close(self):
        self.sock.close(linger=0)


class Gateway:
    """bic-can-gateway with an ini from a dict, plus a client; waits until it answers ping
    and, when wait_online, until every configured device is online."""

    def __init__(self, ini, tmp, wait_online=True, timeout=15.0):
        self.ini = ini
        self.tmp = tmp
        self.path = harness.write_ini(os.path.join(tmp, "gateway.ini"), ini)
        self.req = ini["GATEWAY"]["ReqEndpoint"]
        self.pub = ini["GATEWAY"]["PubEndpoint"]
        self.proc = harness.start_program("bic-can-gateway", ini=self.path, tmp=tmp)
        self.client = Client(self.req)
        try:
            harness.wait_for(lambda: self.client.call("ping")["ok"], timeout,
                             what="gateway ping")
            if wait_online:
                addrs = sorted({int(k.split("/")[1]) for k in ini.get("DEVICE", {})})
                harness.wait_for(lambda: self.online(addrs), timeout, what="devices online")
        except Exception:
            self.stop()
            raise

    def online(self, addrs):
        """Every device in addrs online, with the configured limits applied (or given up on):
        the writes the gateway makes at start are over before a test counts any."""
        devs = {d["dev"]: d for d in self.client.ok("info")["devices"]}
        return all(a in devs and devs[a]["online"] and
                   devs[a].get("device_limits", {}).get("state") in ("ok", "failed", "off")
                   for a in addrs)

    def stop(self):
        if self.client:
            self.client.close()
            self.client = None
        return self.proc.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


# Three BICs on one bus leased by one controller instance (the group's device links), for the
# broadcast writes' tests.
GROUP_SIM_DEVS = ["%d:24:battery,canctrl" % a for a in range(3)]
GROUP_HOLDERS = ["charge-ctl-0-4242", "charge-ctl-0-4242-u1", "charge-ctl-0-4242-u2"]
BROADCAST_ID = 0x000C03FF
IOUT_SET = 0x0030


def group_ini(sim, tmp, bcast, **gateway):
    """The ini of a gateway serving the three BICs of GROUP_SIM_DEVS, BroadcastWrites = bcast."""
    return gateway_ini(sim, tmp, devices={0: {}, 1: {}, 2: {}}, EepromWriteIntervalSec=0,
                       LeaseMaxTtlSec=600, BroadcastWrites=bcast, **gateway)


def setpoints_together(endpoint, calls):
    """Sends every (client, fields) setpoint on its own REQ socket at once (a controller's
    device links do), then collects the replies in order; each must be ok."""
    ctx = zmq.Context.instance()
    socks = []
    for name, fields in calls:
        msg = {"v": 1, "op": "setpoint", "client": name}
        if name in Client.tokens:
            msg["token"] = Client.tokens[name]
        msg.update(fields)
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        socks.append((s, json.dumps(msg).encode()))
    for s, data in socks:
        s.send(data)
    out = []
    for (s, _), (name, _) in zip(socks, calls):
        assert s.poll(10000), "no reply from the gateway"
        r = json.loads(s.recv().decode())
        s.close(linger=0)
        assert r.get("ok"), r
        if r.get("token"):
            Client.tokens[name] = r["token"]  # the lease's, as a controller keeps it
        out.append(r)
    return out


def write_frames(sim, cmd, raw):
    """{CAN ID: count} of the frames in the simulator's log that write raw (16 bits) to
    register cmd."""
    want = "%02X%02X%02X%02X" % (cmd & 0xFF, cmd >> 8, raw & 0xFF, raw >> 8)
    out = {}
    for f in sim.control.frames(512):
        if f["dir"] == "rx" and f["dlc"] == 4 and f["data"].upper() == want:
            i = int(f["id"], 16)
            out[i] = out.get(i, 0) + 1
    return out


def _close_requests(sim):
    """Requests in the simulator's frame log closer than 20 ms to the previous one."""
    out, prev = [], None
    for f in sim.control.frames(512):
        if f["dir"] != "rx":
            continue
        if prev is not None and prev["age_ms"] - f["age_ms"] < 20.0:
            out.append("%s %s -> %s %s after %.3f ms" % (prev["id"], prev["data"], f["id"],
                                                         f["data"],
                                                         prev["age_ms"] - f["age_ms"]))
        prev = f
    return out


# "Suspect" gaps: requests that looked closer than the pacing period only because bic-sim
# read them late from the pty (a loaded machine). They cannot be told from real violations
# one by one, so they are bounded: at most 2, or 1 in 50 requests when there are more. More
# than that is a pacing problem the test reports, not noise it ignores.
PACING_SUSPECT_MIN = 2
PACING_SUSPECT_PER = 50


def pacing_suspect_bound(requests):
    return max(PACING_SUSPECT_MIN, requests // PACING_SUSPECT_PER)


def assert_no_pacing_violations(sim):
    bus = sim.control.counters()["bus"]
    assert bus["pacing_violations"] == 0, "pacing violations seen by bic-sim: %s %s" % (
        bus, _close_requests(sim))
    assert bus["requests"] > 0, bus
    bound = pacing_suspect_bound(bus["requests"])
    assert bus["pacing_suspect"] <= bound, (
        "%d suspect pacing gaps in %d requests (allowed: %d): %s %s" % (
            bus["pacing_suspect"], bus["requests"], bound, bus, _close_requests(sim)))
    return bus
