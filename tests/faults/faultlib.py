"""The fault-injection chain: a private mosquitto, bic-sim on a pty (two devices, a household
day replayed and its meter reading published at 1 Hz), bic-can-gateway, bic-mqtt-bridge and
bic-charge-ctl from one generated ini, a client loading the gateway with requests, and the
checks every scenario ends with:

- the bus audit: every frame the gateway sent, from bic-sim's debug log of every incarnation
  of the simulator, holds no setpoint outside the effective limits, and every write is
  followed by a read-back of the same register;
- the EEPROM counters: the gateway's counts never go backwards (also across its restarts) and
  equal the persisted writes the devices received (counted from the frame log and checked
  against the live simulator's own counters);
- the device's true state (bic-sim's control channel) within the limits;
- every process running and doing its job again (the recovery time is measured to this).

Real processes only (tests/integration/harness.py); nothing is mocked.
"""

import json
import os
import random
import re
import threading
import time

import zmq

import harness

T = "faults/bic"
SIM_METER = "faults/meter"
PROFILE = harness.source_path("data", "profiles", "p1_clear_march.csv")

# Device 0: a commissioned 24 V unit (new firmware) driven by the controller; device 1: a 48 V
# unit with old firmware (no EEP_OFF) that only the gateway's polling and safe state touch.
SIM_DEVICES = ["0:24:battery,canctrl", "1:48:battery,canctrl,fw=old"]
DEVICE_CFG = {
    0: {"Type": "BIC2200-24CAN", "ChargeVoltage": 2800, "DischargeVoltage": 2400,
        "MaxChargeCurrent": 3000, "MaxDischargeCurrent": 2500},
    1: {"Type": "BIC2200-48CAN", "ChargeVoltage": 5600, "DischargeVoltage": 4800,
        "MaxChargeCurrent": 2000, "MaxDischargeCurrent": 1500},
}

# Open-circuit voltage of a 24 V LiFePO4 pack (8 cells), as sim/twin-example.ini has it.
CAP2V = {0: 20.00, 2: 23.20, 5: 24.40, 10: 25.44, 20: 25.92, 30: 26.16, 40: 26.32, 50: 26.40,
         60: 26.48, 70: 26.56, 80: 26.64, 90: 26.72, 95: 26.88, 98: 27.20, 100: 28.00}

LEASE_TTL_S = 4
MARGIN_S = 6.0   # generous: the machine is shared and noisy

CMD = {"OPERATION": 0x0000, "VOUT_SET": 0x0020, "IOUT_SET": 0x0030, "SYSTEM_CONFIG": 0x00C2,
       "DIRECTION_CTRL": 0x0100, "REVERSE_VOUT_SET": 0x0120, "REVERSE_IOUT_SET": 0x0130,
       "BIDIRECTIONAL_CONFIG": 0x0140}
NAME = {v: k for k, v in CMD.items()}
PERSISTED = {0x0000, 0x0020, 0x0030, 0x0120, 0x0130, 0x00C2, 0x0140}
SYSCFG_RESERVED = 0xF8F8  # SYSTEM_CONFIG bits that must stay 0
_FRAME_RE = re.compile(r"debug: (rx|tx) ([0-9A-F]{3,8})#(R?)([0-9A-F]*)")


def seed_from_env():
    """The run's seed: BIC_FAULT_SEED if set, else a fresh one; printed for reproduction."""
    s = os.environ.get("BIC_FAULT_SEED")
    seed = int(s) if s else random.SystemRandom().randrange(1 << 31)
    print("seed %d (BIC_FAULT_SEED=%d reproduces the run)" % (seed, seed), flush=True)
    return seed


# ---------------------------------------------------------------------------------------
# Limits and the bus audit
# ---------------------------------------------------------------------------------------

def raw_limits(info_dev, cfg):
    """{cmd: (min_raw, max_raw)} for one device: the effective limits the gateway reports,
    checked against the configured [DEVICE] limits (the gateway must never widen them)."""
    lim = info_dev["limits"]

    def rng(name):
        lo, hi = lim[name]
        return int(round(lo * 100)), int(round(hi * 100))
    out = {CMD["VOUT_SET"]: rng("vout_v"), CMD["IOUT_SET"]: rng("iout_a"),
           CMD["REVERSE_VOUT_SET"]: rng("rev_vout_v"),
           CMD["REVERSE_IOUT_SET"]: rng("rev_iout_a"),
           CMD["OPERATION"]: (0, 1), CMD["DIRECTION_CTRL"]: (0, 1),
           CMD["BIDIRECTIONAL_CONFIG"]: (0, 1), CMD["SYSTEM_CONFIG"]: (0, 0x0607)}
    assert out[CMD["VOUT_SET"]][1] <= cfg["ChargeVoltage"], (lim, cfg)
    assert out[CMD["REVERSE_VOUT_SET"]][0] >= cfg["DischargeVoltage"], (lim, cfg)
    assert out[CMD["IOUT_SET"]][1] <= cfg["MaxChargeCurrent"], (lim, cfg)
    assert out[CMD["REVERSE_IOUT_SET"]][1] <= cfg["MaxDischargeCurrent"], (lim, cfg)
    return out


def in_limits(limits, cmd, raw):
    lo, hi = limits[cmd]
    if cmd == CMD["SYSTEM_CONFIG"]:
        # Reserved bits stay 0; OPERATION_INIT (bits 2:1) and EEP_CONFIG (bits 9:8) = 11 are
        # reserved values (bic2200-protocol.md, SYSTEM_CONFIG).
        if raw & SYSCFG_RESERVED or (raw >> 1) & 3 == 3 or (raw >> 8) & 3 == 3:
            return False
    return lo <= raw <= hi


def parse_frames(text):
    """[(dir, can_id, data bytes)] from bic-sim's debug log, in order."""
    out = []
    for m in _FRAME_RE.finditer(text):
        if m.group(3):
            continue  # remote frames carry no data
        out.append((m.group(1), int(m.group(2), 16), bytes.fromhex(m.group(4))))
    return out


class Audit:
    """Result of auditing one incarnation's frames."""

    def __init__(self):
        self.requests = 0
        self.writes = 0
        self.violations = []   # setpoints outside the limits
        self.unverified = []   # writes without a later read-back of the register
        self.tail_unverified = []  # the same, in the last frames before the simulator died
        self.persisted = {}    # addr -> persisted writes received
        self.per_reg = {}      # (addr, register name) -> persisted writes received


def audit_frames(frames, limits, killed=False, tail=12):
    """Checks one incarnation's frames: every write (to a known device) within its limits,
    every write followed by a read of the same register of the same device. A write among the
    last `tail` requests of an incarnation that was killed may lack its read-back (the device
    vanished under it); it is listed apart."""
    a = Audit()
    rx = [(cid, data) for d, cid, data in frames if d == "rx"]
    a.requests = len(rx)
    pending = {}  # (addr, cmd) -> index of the write awaiting a read-back
    for i, (cid, data) in enumerate(rx):
        if (cid & 0xFFFFFF00) != 0x000C0300 or len(data) < 2:
            continue
        addr = cid & 0xFF
        cmd = data[0] | (data[1] << 8)
        if len(data) == 2:
            pending.pop((addr, cmd), None)
            continue
        a.writes += 1
        value = data[2] | (data[3] << 8) if len(data) >= 4 else data[2]
        if cmd in (CMD["OPERATION"], CMD["DIRECTION_CTRL"]):
            value = data[2]
        lim = limits.get(addr)
        if lim is None or cmd not in lim or not in_limits(lim, cmd, value):
            if lim is None:
                allowed = "nothing (no such device)"
            elif cmd == CMD["SYSTEM_CONFIG"]:
                allowed = ("0x0000-0x0607 with bits 3-7 and 11-15 clear and neither "
                           "OPERATION_INIT nor EEP_CONFIG = 11")
            else:
                allowed = "%s-%s" % lim.get(cmd, ("?", "?"))
            a.violations.append("write #%d to device %d: %s = %d (0x%04X); allowed: %s" % (
                i, addr, NAME.get(cmd, "0x%04X" % cmd), value, value, allowed))
        if cmd in PERSISTED:
            a.persisted[addr] = a.persisted.get(addr, 0) + 1
            key = (addr, NAME[cmd])
            a.per_reg[key] = a.per_reg.get(key, 0) + 1
        if (addr, cmd) in pending:
            a.unverified.append("device %d %s written twice without a read-back (request #%d)"
                                % (addr, NAME.get(cmd, cmd), i))
        pending[(addr, cmd)] = i
    for (addr, cmd), i in pending.items():
        msg = "device %d %s written (request #%d of %d) and never read back" % (
            addr, NAME.get(cmd, cmd), i, len(rx))
        if killed and i >= len(rx) - tail:
            a.tail_unverified.append(msg)
        else:
            a.unverified.append(msg)
    return a


# ---------------------------------------------------------------------------------------
# Gateway clients
# ---------------------------------------------------------------------------------------

def gw_request(endpoint, req, timeout=3.0):
    """One request on a fresh REQ socket; the reply (dict) or None on a timeout."""
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send(json.dumps(dict(req, v=1)).encode() if isinstance(req, dict) else req)
        if not s.poll(int(timeout * 1000)):
            return None
        return json.loads(s.recv())
    finally:
        s.close()


class Load(threading.Thread):
    """A client loading the gateway: reads, info, eeprom, and refused writes (read-only
    registers, out-of-range values, malformed requests) at about 10 requests per second, with
    a receive timeout and a fresh socket after each timeout (Lazy Pirate). It never sends a
    write that could be accepted, so the device stays the controller's. It records the EEPROM
    counters it sees: they must never go backwards."""

    def __init__(self, endpoint, seed, period_s=0.1):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.rng = random.Random(seed)
        self.period_s = period_s
        self.stop_flag = threading.Event()
        self.sent = self.replied = self.timeouts = 0
        self.wrong = []  # replies that break the contract
        self.eeprom = {}  # dev -> [(t, writes_total)]
        self.lock = threading.Lock()

    def _request(self):
        r = self.rng.random()
        dev = self.rng.choice([0, 1])
        if r < 0.25:
            return {"op": "get", "dev": dev, "regs": ["READ_VOUT", "IOUT_SET", "OPERATION"]}, None
        if r < 0.40:
            return {"op": "eeprom", "dev": dev}, None
        if r < 0.50:
            return {"op": "info"}, None
        if r < 0.60:
            return {"op": "ping"}, None
        if r < 0.70:
            return {"op": "set", "dev": dev, "reg": "READ_VOUT", "value": 1.0,
                    "client": "faults-load"}, "read_only"
        if r < 0.85:
            reg, val = self.rng.choice([("IOUT_SET", 500.0), ("REVERSE_IOUT_SET", -3.0),
                                        ("VOUT_SET", 99.0), ("REVERSE_VOUT_SET", 5.0)])
            return {"op": "set", "dev": dev, "reg": reg, "value": val,
                    "client": "faults-load"}, ("out_of_range", "lease_held")
        return b'{"v":1,"op":"get","dev":', "bad_request"

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - a dead load client fails the test
            self.wrong.append(("load client died", repr(e)))

    def _run(self):
        ctx = zmq.Context.instance()
        sock = None
        while not self.stop_flag.is_set():
            if sock is None:
                sock = ctx.socket(zmq.REQ)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(self.endpoint)
            req, expect = self._request()
            data = req if isinstance(req, bytes) else json.dumps(dict(req, v=1)).encode()
            sock.send(data)
            self.sent += 1
            if not sock.poll(2000):
                self.timeouts += 1
                sock.close()
                sock = None
                continue
            rep = json.loads(sock.recv())
            self.replied += 1
            self._check(req, expect, rep)
            self.stop_flag.wait(self.period_s)
        if sock is not None:
            sock.close()

    def _check(self, req, expect, rep):
        if not isinstance(rep, dict) or "ok" not in rep:
            self.wrong.append((req, rep))
            return
        if expect is not None:
            codes = expect if isinstance(expect, tuple) else (expect,)
            if rep["ok"] or rep["error"]["code"] not in codes + ("device_offline", "bus_down",
                                                                  "unknown_device"):
                self.wrong.append((req, rep))
            return
        if rep["ok"] and isinstance(req, dict) and req.get("op") == "eeprom":
            with self.lock:
                self.eeprom.setdefault(req["dev"], []).append(
                    (time.monotonic(), rep["eeprom"]["writes_total"]))

    def backwards(self):
        """EEPROM totals that went down between two observations."""
        out = []
        with self.lock:
            for dev, seen in self.eeprom.items():
                for (t0, a), (t1, b) in zip(seen, seen[1:]):
                    if b < a:
                        out.append("device %d: writes_total %d then %d" % (dev, a, b))
        return out

    def stop(self):
        self.stop_flag.set()
        self.join(5)


# ---------------------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------------------

class Chain:
    """Every process of bic2mqtt against bic-sim, restartable one by one."""

    def __init__(self, seed, state_dir=None, gateway_wrap=(), gateway=None, ctl=None,
                 start_s=46920, bridge=True, controller=True, load=True):
        self.rng = random.Random(seed)
        self.seed = seed
        self.tmp = harness.temp_dir("bic-faults-")
        self.gateway_wrap = list(gateway_wrap)
        self.incarnations = []  # [(log path, killed)] of bic-sim, oldest first
        self.sim = self.gateway = self.bridge = self.ctl = self.load = self.mqtt = None
        self.start_s = start_s
        self.rows = []
        self.nlogs = 0
        # Write frames destroyed on the way (the simulator killed under them, garbage cutting
        # into a line): the gateway may have counted them, the device never saw them.
        self.frames_lost_max = 0
        self.broker = harness.Mosquitto()
        try:
            self.req_ep = "ipc://%s/gw.sock" % self.tmp
            self.pub_ep = "ipc://%s/tel.sock" % self.tmp
            self.state_dir = state_dir or os.path.join(self.tmp, "state")
            os.makedirs(self.state_dir, exist_ok=True)
            gw = {"Can": "slcan:" + os.path.join(self.tmp, "can0"), "ReqEndpoint": self.req_ep,
                  "PubEndpoint": self.pub_ep, "StateDir": self.state_dir,
                  "TelemetryPeriodMs": 1000, "EepromWriteIntervalSec": 2,
                  "ClientTimeoutMs": 1500, "ClientRetries": 1, "SafeState": "off"}
            gw.update(gateway or {})
            cc = {"Id/0/TopicPower": SIM_METER, "Id/0/MeterTimeoutSec": 5,
                  "Id/0/LeaseTtlSec": LEASE_TTL_S, "Id/0/IdleDwellSec": 1,
                  "Id/0/DirectionDwellSec": 2, "Id/0/DischargeBlockTimeSec": 0,
                  "Id/0/ChargeTol": 20}
            cc.update(ctl or {})
            dev = {}
            for addr, keys in DEVICE_CFG.items():
                for k, v in keys.items():
                    dev["Id/%d/%s" % (addr, k)] = v
            self.ini = {
                "ALL": {"TraceLevel": "info"},
                "MQTT": {"BrokerIpAdr": "127.0.0.1", "BrokerPort": self.broker.port,
                         "TopicMain": T, "KeepAliveSec": 5, "PublishPeriodSec": 2},
                "GATEWAY": gw,
                "DEVICE": dev,
                "BAT_0": {"Cap2V/%d" % p: v for p, v in CAP2V.items()},
                "CHARGE_CONTROL": cc,
            }
            self.ini_path = harness.write_ini(os.path.join(self.tmp, "bic2mqtt.ini"), self.ini)
            self.mqtt = harness.MqttClient(self.broker, subscribe=[T + "/#", SIM_METER])
            self.start_sim()
            self.start_gateway()
            info = gw_request(self.req_ep, {"op": "info"})
            self.limits = {d["dev"]: raw_limits(d, DEVICE_CFG[d["dev"]]) for d in info["devices"]}
            # Commissioning of the end voltages (as `bicctl` does it), before anyone else.
            for reg, value in (("VOUT_SET", 27.6), ("REVERSE_VOUT_SET", 24.5)):
                r = gw_request(self.req_ep, {"op": "set", "dev": 0, "reg": reg, "value": value,
                                             "client": "commissioning"})
                assert r and r["ok"], r
            if bridge:
                self.start_bridge()
            if controller:
                self.start_ctl()
            if load:
                self.load = Load(self.req_ep, seed + 1)
                self.load.start()
        except Exception:
            self.close()
            raise

    # -- processes --------------------------------------------------------------------
    def _logdir(self, name):
        self.nlogs += 1
        d = os.path.join(self.tmp, "%s-%d" % (name, self.nlogs))
        os.makedirs(d)
        return d

    def start_sim(self, timeout=10):
        pty = os.path.join(self.tmp, "can0")
        argv = [harness.program("bic-sim"), "--slcan-pty", pty,
                "--control", "ipc://%s/sim.ctl" % self.tmp, "--household", PROFILE,
                "--start-s", self.start_s, "--mqtt", self.broker.address,
                "--meter-topic", SIM_METER, "--meter-period-ms", 1000, "--log-level", "debug",
                "--seed", self.rng.randrange(1 << 30)]
        for d in SIM_DEVICES:
            argv += ["--device", d]
        self.sim = harness.Process(argv, name="bic-sim", log_dir=self._logdir("sim"))
        self.incarnations.append([self.sim.log_path, False])
        harness.wait_for(lambda: os.path.lexists(pty) or not self.sim.alive(), timeout,
                         what="bic-sim pty")
        assert self.sim.alive(), self.sim.output()
        self.simctl = harness.SimControl("ipc://%s/sim.ctl" % self.tmp)
        self.simctl.state()
        return self.sim

    def kill_sim(self):
        """kill -9: the adapter is unplugged and the devices lose power."""
        self.simctl.close()
        self.sim.kill()
        self.incarnations[-1][1] = True
        self.frames_lost_max += 1

    def start_gateway(self, wait=True):
        argv = self.gateway_wrap + [harness.program("bic-can-gateway"), "-c", self.ini_path]
        self.gateway = harness.Process(argv, name="bic-can-gateway",
                                       log_dir=self._logdir("gateway"))
        if wait:
            harness.wait_for(self.devices_online, 20, what="gateway with every device online")
        return self.gateway

    def start_bridge(self, wait=True):
        after = time.monotonic()
        self.bridge = harness.Process([harness.program("bic-mqtt-bridge"), "-c", self.ini_path],
                                      name="bic-mqtt-bridge", log_dir=self._logdir("bridge"))
        if wait:
            harness.wait_for(lambda: self.bridge_ok(after), 20, what="bridge publishing")
        return self.bridge

    def start_ctl(self, wait=True):
        self.ctl = harness.Process([harness.program("bic-charge-ctl"), "-c", self.ini_path],
                                   name="bic-charge-ctl", log_dir=self._logdir("ctl"))
        if wait:
            harness.wait_for(self.ctl_ok, 20, what="controller holding the lease")
        return self.ctl

    # -- health -------------------------------------------------------------------------
    def info(self, timeout=2.0):
        return gw_request(self.req_ep, {"op": "info"}, timeout)

    def devices_online(self):
        r = gw_request(self.req_ep, {"op": "devices"}, 1.5)
        return bool(r and r["ok"] and len(r["devices"]) == len(SIM_DEVICES)
                    and all(d["online"] for d in r["devices"]))

    def holder(self):
        r = self.info()
        return r["devices"][0]["lease"]["holder"] if r and r["devices"][0]["lease"] else None

    def ctl_ok(self):
        """The running controller instance holds the lease and says it runs."""
        return (self.ctl is not None and self.ctl.alive()
                and self.holder() == "charge-ctl-0-%d" % self.ctl.pid
                and self.mqtt.last(T + "/ctl/0/state") == "running")

    def bridge_ok(self, after):
        """The bridge is connected and publishes fresh device state for both devices."""
        if self.bridge is None or not self.bridge.alive():
            return False
        if self.mqtt.last(T + "/sys/state") != "running":
            return False
        for d in DEVICE_CFG:
            if self.mqtt.last("%s/inv/%d/availability" % (T, d)) != "online":
                return False
            if not any(t >= after for t, *_ in self.mqtt.received("%s/inv/%d/state" % (T, d))):
                return False
        return True

    def meter_ok(self, after):
        return any(t >= after for t, *_ in self.mqtt.received(SIM_METER))

    def healthy(self, after):
        """Everything works again: devices online, the controller in control, the bridge
        publishing what happens after `after`, the meter flowing."""
        return (self.sim.alive() and self.gateway.alive() and self.devices_online()
                and self.ctl_ok() and self.bridge_ok(after) and self.meter_ok(after))

    def wait_recovered(self, since, timeout=40, what="recovery"):
        """Waits until healthy; returns the seconds from `since` (monotonic)."""
        harness.wait_for(lambda: self.healthy(since), timeout, interval=0.1, what=what)
        return time.monotonic() - since

    # -- invariants ---------------------------------------------------------------------
    def audits(self):
        out = []
        for path, killed in self.incarnations:
            with open(path, "r", errors="replace") as f:
                frames = parse_frames(f.read())
            out.append(audit_frames(frames, self.limits, killed))
        return out

    def eeprom_totals(self):
        r = self.info(3.0)
        assert r and r["ok"], "gateway info: %r" % (r,)
        return {d["dev"]: d["eeprom"]["writes_total"] for d in r["devices"]}

    def check_counters(self):
        """The gateway's counts equal the persisted writes the devices received: the sum over
        the simulator's incarnations counted from the frame log (which must agree with the
        live simulator's own counters). A write sent in the moment the simulator was killed
        may be counted by the gateway but never received, and so may a write line that garbage
        on the slcan line destroyed: the gateway then counts more, never less (at most
        frames_lost_max more). Returns (gateway, received) totals."""
        def snapshot():
            audits = self.audits()
            gw = self.eeprom_totals()
            live = {d["addr"]: d["eeprom_writes_total"] for d in self.simctl.counters()["devices"]}
            audits2 = self.audits()
            if [a.persisted for a in audits] != [a.persisted for a in audits2]:
                return None  # a write landed meanwhile: try again
            recv = {d: sum(a.persisted.get(d, 0) for a in audits) for d in DEVICE_CFG}
            return gw, recv, live, audits[-1].persisted
        last = [None]

        def consistent():
            s = snapshot()
            last[0] = s
            if s is None:
                return False
            gw, recv, live, cur = s
            return (all(live.get(d, 0) == cur.get(d, 0) for d in DEVICE_CFG)
                    and all(recv[d] <= gw[d] <= recv[d] + self.frames_lost_max
                            for d in DEVICE_CFG))
        try:
            harness.wait_for(consistent, 8, interval=0.3, what="EEPROM counters to agree")
        except harness.HarnessError:
            s = last[0]
            assert s is not None, "EEPROM counters never settled"
            gw, recv, live, cur = s
            assert all(live.get(d, 0) == cur.get(d, 0) for d in DEVICE_CFG), (
                "frame log and bic-sim disagree on persisted writes: log %s, sim %s" % (cur, live))
            detail = "gateway %s; received %s" % (
                {dd["dev"]: dd["eeprom"]["writes"] for dd in self.info(3.0)["devices"]},
                [a.per_reg for a in self.audits()])
            for d in DEVICE_CFG:
                assert gw[d] >= recv[d], ("EEPROM writes lost: device %d received %d persisted "
                                          "writes, the gateway counts %d (%s)" % (d, recv[d], gw[d],
                                                                              detail))
                assert gw[d] - recv[d] <= self.frames_lost_max, (
                    "device %d: the gateway counts %d persisted writes, the device received %d "
                    "(%s)" % (d, gw[d], recv[d], detail))
        return last[0][0], last[0][1]

    def check_bus(self):
        """No setpoint outside the limits ever reached the bus; every write was read back."""
        last = [None]

        def settled():
            # A write at the very end of the live log may still await its read-back.
            last[0] = self.audits()
            return not any(a.unverified for a in last[0])
        try:
            harness.wait_for(settled, 5, interval=0.3, what="read-backs of the last writes")
        except harness.HarnessError:
            pass
        audits = last[0]
        bad = [v for a in audits for v in a.violations]
        unverified = [v for a in audits for v in a.unverified]
        assert not bad, "setpoints outside the limits on the bus: %s" % bad[:10]
        assert not unverified, "writes without a read-back: %s" % unverified[:10]
        return audits

    def check_device(self):
        """bic-sim's true registers hold nothing outside the limits (for the registers the
        gateway wrote to this incarnation; the factory values of a fresh unit are the
        manual's and may lie outside the configured [DEVICE] range)."""
        path, _ = self.incarnations[-1]
        with open(path, "r", errors="replace") as f:
            frames = parse_frames(f.read())
        written = set()
        for d, cid, data in frames:
            if d == "rx" and len(data) > 2 and (cid & 0xFFFFFF00) == 0x000C0300:
                written.add((cid & 0xFF, data[0] | (data[1] << 8)))
        for addr in DEVICE_CFG:
            regs = self.simctl.device(addr)["registers"]
            for name, raw in regs.items():
                cmd = CMD.get(name)
                if cmd is not None and (addr, cmd) in written:
                    assert in_limits(self.limits[addr], cmd, raw), (
                        "device %d %s holds %d, allowed %s" % (addr, name, raw,
                                                               self.limits[addr][cmd]))

    def check_all(self):
        self.check_bus()
        self.check_device()
        gw, recv = self.check_counters()
        back = self.load.backwards()
        assert not back, "EEPROM counters went backwards: %s" % back
        assert not self.load.wrong, "replies that break the contract: %s" % self.load.wrong[:5]
        return gw, recv

    # -- results ------------------------------------------------------------------------
    def row(self, scenario, result, recovery_s, note=""):
        self.rows.append((scenario, result, recovery_s, note))
        print("  %-44s %-5s %6s  %s" % (scenario, result,
                                         "-" if recovery_s is None else "%.1f s" % recovery_s,
                                         note), flush=True)

    def close(self):
        if self.load is not None:
            self.load.stop()
        for p in (self.ctl, self.bridge, self.gateway, self.sim):
            if p is not None:
                p.stop()
        if self.mqtt is not None:
            self.mqtt.close()
        self.broker.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def gw_health(c, timeout=12):
    """The gateway's next `gw` health message."""
    import zmq
    s = zmq.Context.instance().socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"gw")
    s.connect(c.pub_ep)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if s.poll(200):
                parts = s.recv_multipart()
                if parts[0] == b"gw":
                    return json.loads(parts[1])
        raise harness.HarnessError("no `gw` message within %.0f s" % timeout)
    finally:
        s.close()


def daemon_cpu(c, seconds):
    """Each daemon's CPU use over `seconds` of wall time (percent of one core), measured from
    /proc/PID/stat while the chain runs as it is: {"bic-can-gateway": pct, ...}."""
    procs = [p for p in (c.gateway, c.bridge, c.ctl) if p is not None]
    t0 = time.monotonic()
    before = {p.name: harness.cpu_seconds(p.pid) for p in procs}
    end = t0 + seconds
    while time.monotonic() < end:
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        for p in procs:
            assert p.alive(), "%s exited: %s" % (p.name, p.output()[-2000:])
    wall = time.monotonic() - t0
    return {p.name: 100.0 * (harness.cpu_seconds(p.pid) - before[p.name]) / wall
            for p in procs}


def wait_event(c, after, dev, name, timeout=10):
    """The first gateway event `name` of device dev on MQTT (through the bridge) after the
    monotonic time `after`."""
    return json.loads(c.mqtt.wait_message(
        "%s/inv/%d/event" % (T, dev), lambda p: json.loads(p).get("event") == name,
        timeout=timeout, after=after))


def run_scenarios(c, scenarios):
    """Runs each (name, fn) at a random moment; fn returns (recovery time, note). After each:
    check_all(). A failure is recorded and the next scenario still runs once the chain has
    recovered. Returns [(name, exception)]."""
    failures = []
    for name, fn in scenarios:
        time.sleep(c.rng.uniform(0.3, 2.0))  # a random moment under load
        try:
            rec, note = fn(c)
            c.check_all()
            c.row(name, "ok", rec, note)
        except Exception as e:  # noqa: BLE001 - recorded, the next scenario still runs
            c.row(name, "FAIL", None, str(e)[:300])
            failures.append((name, e))
            try:
                c.wait_recovered(time.monotonic(), timeout=30)
            except harness.HarnessError:
                break
    return failures


def print_table(title, rows, path=None):
    """Prints the scenario table and, with path, writes it as JSON (for the docs)."""
    print("\n%s\n%-46s %-6s %-9s %s" % (title, "scenario", "result", "recovery", "notes"))
    for scenario, result, rec, note in rows:
        print("%-46s %-6s %-9s %s" % (scenario, result, "-" if rec is None else "%.1f s" % rec,
                                      note))
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump([{"scenario": s, "result": r, "recovery_s": rec, "note": n}
                       for s, r, rec, n in rows], f, indent=1)
