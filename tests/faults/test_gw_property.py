"""Property test of the gateway: seeded random sequences of client operations (every op of
docs/ipc-protocol.md plus unknown ones, any value: in range, on and past the limits, wrong
types, malformed and oversized requests) from several clients at once, some taking, renewing
and releasing the control lease with short TTLs (so leases also lapse into the safe state),
others without a lease, against bic-can-gateway and bic-sim. Checked:

- every request gets exactly one reply (none missing, none extra, `id` echoed), a JSON object
  with `v`:1 and a documented error code when it is an error;
- no register ever holds a value outside the effective limits: not in any write frame on the
  bus (bic-sim's frame log, all of it), not in the devices' true state (sampled throughout);
- no write is left unverified: every write frame is followed by a read-back of that register
  of that device before it is written again, and by the end;
- no EEPROM write goes uncounted (the gateway counts at least what the devices counted).

BIC_FAULT_SEED reproduces a run (the request sequence; the interleaving follows the bus)."""

import json
import os
import random
import time

import zmq

import faultlib
import harness

OPS_MAX = int(os.environ.get("BIC_PROPERTY_OPS", "500"))
TIME_MAX_S = float(os.environ.get("BIC_PROPERTY_SECONDS", "25"))
# A `discover` with `extended` probes 64 addresses, each absent one with its retries: on a
# loaded machine that alone can take well over 15 s; a reply later than this is a failure.
REPLY_TIMEOUT_S = 60.0

ERROR_CODES = {"bad_request", "too_large", "bad_version", "unknown_op", "unknown_device",
               "unknown_register", "read_only", "out_of_range", "device_offline", "bus_down",
               "timeout", "verify_failed", "not_supported", "lease_held", "no_lease", "busy",
               "no_voltage", "internal", "bad_token"}
REGS = ["OPERATION", "VOUT_SET", "IOUT_SET", "FAULT_STATUS", "READ_VIN", "READ_VOUT",
        "READ_IOUT", "READ_TEMPERATURE_1", "READ_FAN_SPEED_1", "READ_FAN_SPEED_2",
        "MFR_ID_B0B5", "MFR_MODEL_B0B5", "MFR_REVISION_B0B5", "MFR_SERIAL_B6B11",
        "SCALING_FACTOR", "SYSTEM_STATUS", "SYSTEM_CONFIG", "DIRECTION_CTRL",
        "REVERSE_VOUT_SET", "REVERSE_IOUT_SET", "BIDIRECTIONAL_CONFIG",
        "iout_set", "0x0030", "0x0020", "0x00C2", "0x0140", "0x0000", "0x9999", "NOPE", ""]
WRITABLE = ["OPERATION", "VOUT_SET", "IOUT_SET", "SYSTEM_CONFIG", "DIRECTION_CTRL",
            "REVERSE_VOUT_SET", "REVERSE_IOUT_SET", "BIDIRECTIONAL_CONFIG"]
RANGE_KEY = {"VOUT_SET": "vout_v", "IOUT_SET": "iout_a", "REVERSE_VOUT_SET": "rev_vout_v",
             "REVERSE_IOUT_SET": "rev_iout_a"}
CLIENTS = [("alice", True), ("bob", True), ("bicctl", False), (None, False)]
JUNK = [None, True, "12", [], {}, "x" * 50, -1, 1e308, -1e308, 0.001, 2 ** 40]


def _exercised(codes):
    """Whether the replies so far show the run reached the paths it is about."""
    return (codes.get("setpoint", {}).get("ok", 0) > 2
            and codes.get("set", {}).get("out_of_range", 0) > 5)


class Gen:
    """The random request generator (pure: the seed fixes the sequence)."""

    def __init__(self, seed, limits):
        self.r = random.Random(seed)
        self.limits = limits  # dev -> info "limits"

    def pick(self, *xs):
        return self.r.choice(xs)

    def dev(self):
        if self.r.random() < 0.85:
            return self.pick(0, 1)
        return self.pick(2, 63, 64, -1, "0", None, 1.5)

    def number_for(self, dev, reg):
        """A value for reg of dev: mostly in range, often on or just past a limit,
        sometimes absurd or of the wrong type."""
        lim = self.limits.get(dev) if isinstance(dev, int) else None
        key = RANGE_KEY.get(reg)
        if lim and key:
            lo, hi = lim[key]
            if self.r.random() < 0.5:
                return round(self.r.uniform(lo, hi), 2)
            return self.pick(lo, hi, round(lo - 0.01, 2), round(hi + 0.01, 2), hi * 3, -hi,
                             0, self.r.choice(JUNK))
        if reg == "SYSTEM_CONFIG":
            return self.pick(0, 1, 2, 3, 0x403, 0x603, 0x607, 0x608, 0x0107, 0x0707, 0xFFFF, 7,
                             self.r.randrange(0, 0x10000), self.r.choice(JUNK))
        return self.pick(0, 1, 1, 0, 2, -1, 0.5, self.r.choice(JUNK))

    def request(self, client, may_lease):
        p = self.r.random()
        name = client
        base = {}
        if name is not None and self.r.random() < 0.97:
            base["client"] = name
        elif self.r.random() < 0.1:
            base["client"] = self.pick("", "x" * 33, "bad name!", 5, None)
        if p < 0.04:
            return self._malformed()
        if p < 0.08:
            return dict(base, op=self.pick("ping", "devices"))
        if p < 0.12:
            req = dict(base, op="info")
            if self.r.random() < 0.6:
                req["dev"] = self.dev()
            return req
        if p < 0.14:
            return dict(base, op="discover", extended=self.pick(False, False, True, "yes"))
        if p < 0.28:
            req = dict(base, op="get", dev=self.dev())
            if self.r.random() < 0.5:
                req["regs"] = [self.pick(*REGS) for _ in range(self.r.randint(0, 5))]
                if self.r.random() < 0.05:
                    req["regs"] = ["READ_VOUT"] * 33
            else:
                req["reg"] = self.pick(*REGS)
            return req
        if p < 0.33:
            return dict(base, op="eeprom", dev=self.dev())
        if p < 0.55:
            dev = self.dev()
            reg = self.pick(*(WRITABLE * 3 + REGS))
            req = dict(base, op="set", dev=dev, reg=reg)
            v = self.number_for(dev, reg)
            if (self.r.random() < 0.2 and isinstance(v, (int, float))
                    and not isinstance(v, bool) and abs(v) < 1e9):
                req["raw"] = int(round(v * 100)) if reg in RANGE_KEY else int(v)
            else:
                req["value"] = v
            if self.r.random() < 0.05:
                req.pop("value", None)
                req.pop("raw", None)
            return req
        if p < 0.80:
            dev = self.dev()
            mode = self.pick("charge", "discharge", "charge", "discharge", "idle", "off")
            if self.r.random() < 0.05:
                mode = self.pick("boost", None, 1, "CHARGE")
            req = dict(base, op="setpoint", dev=dev, mode=mode)
            if mode in ("charge", "discharge") or self.r.random() < 0.1:
                reg = "IOUT_SET" if mode == "charge" else "REVERSE_IOUT_SET"
                if self.r.random() < 0.75:
                    req["current_a"] = self.number_for(dev, reg)
                else:
                    req["power_w"] = self.pick(0, 50, 300, 900, 5000, -10, "300",
                                               round(self.r.uniform(0, 1200), 1))
            if may_lease and self.r.random() < 0.4:
                req["lease_ttl_s"] = self.pick(1, 2, 3, 0, 5000, "2", -1)
            return req
        if p < 0.93:
            req = dict(base, op="lease", action=self.pick("take", "take", "renew", "renew",
                                                          "release", "steal", None))
            if self.r.random() < 0.85:
                req["ttl_s"] = self.pick(1, 2, 2, 3, 3, 0, 3601, -5, "3", 1.5, None)
            return req
        if p < 0.96:
            return dict(base, op="init", dev=self.dev())
        return dict(base, op=self.pick("reboot", "SET", "", 7, None))

    def _malformed(self):
        return self.pick(b"", b"not json", b"[1,2,3]", b'"ping"', b"{\"v\":1,\"op\":\"get\"",
                         b'{"op":"ping"}', b'{"v":2,"op":"ping"}', b'{"v":"1","op":"ping"}',
                         b'{"v":1,"op":"ping","id":' + b"[" * 200 + b"]" * 200 + b"}",
                         json.dumps({"v": 1, "op": "ping", "pad": "x" * 5000}).encode(),
                         b'{"v":1,"op":"set","dev":0,"reg":"VOUT_SET","value":1e999}',
                         b'{"v":1,"op":"set","dev":0,"reg":"IOUT_SET","value":NaN}',
                         b'\xff\xfe{"v":1}', b'{"v":1,"op":"ping"}\x00junk')


class Client:
    """One DEALER socket: at most one request outstanding (as REQ would), so any second
    message before the next request is an extra reply."""

    def __init__(self, endpoint, name, may_lease):
        self.name = name
        self.may_lease = may_lease
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.pending = None  # (id, request, sent at)
        self.next_id = 0
        self.token = None  # the lease token its last take got, sent as a controller sends it


def _check_reply(req, rid, rep, problems):
    if not isinstance(rep, dict) or rep.get("v") != 1 or not isinstance(rep.get("ok"), bool):
        problems.append("reply without v:1/ok: %r to %r" % (rep, req))
        return
    if rid is not None and rep.get("id") != rid:
        problems.append("id %r echoed as %r: %r" % (rid, rep.get("id"), req))
    if not rep["ok"]:
        e = rep.get("error")
        if not isinstance(e, dict) or e.get("code") not in ERROR_CODES or not e.get("message"):
            problems.append("undocumented error %r to %r" % (e, req))
        elif e["code"] == "out_of_range" and ("min" not in e or "max" not in e):
            problems.append("out_of_range without min/max: %r" % e)
        elif e["code"] == "internal":
            problems.append("internal error: %r to %r" % (e, req))


class Rig:
    """bic-sim (frame log on) and bic-can-gateway, nothing else."""

    def __init__(self):
        self.tmp = tmp = harness.temp_dir("bic-prop-")
        pty = os.path.join(tmp, "can0")
        self.sim = harness.Process(
            [harness.program("bic-sim"), "--slcan-pty", pty, "--control",
             "ipc://%s/sim.ctl" % tmp, "--log-level", "debug"]
            + sum((["--device", d] for d in faultlib.SIM_DEVICES), []),
            name="bic-sim", log_dir=tmp)
        harness.wait_for(lambda: os.path.lexists(pty), 10, what="bic-sim pty")
        self.simctl = harness.SimControl("ipc://%s/sim.ctl" % tmp)
        self.req_ep = "ipc://%s/gw.sock" % tmp
        self.pub_ep = "ipc://%s/tel.sock" % tmp
        dev_keys = {"Id/%d/%s" % (a, k): v for a, c in faultlib.DEVICE_CFG.items()
                    for k, v in c.items()}
        ini = harness.write_ini(os.path.join(tmp, "gw.ini"), {
            "GATEWAY": {"Can": "slcan:" + pty, "ReqEndpoint": self.req_ep,
                        "PubEndpoint": self.pub_ep, "StateDir": tmp,
                        "TelemetryPeriodMs": 500, "EepromWriteIntervalSec": 1,
                        "IdleState": "min", "SafeState": "min", "LeaseMaxTtlSec": 3600},
            "DEVICE": dev_keys})
        self.gw = harness.Process([harness.program("bic-can-gateway"), "-c", ini],
                                  name="bic-can-gateway", log_dir=tmp)
        info = harness.wait_for(
            lambda: (lambda r: r if r and all(d["online"] for d in r["devices"]) else None)(
                faultlib.gw_request(self.req_ep, {"op": "info"}, 1.0)), 20,
            what="devices online")
        self.limits = {d["dev"]: d["limits"] for d in info["devices"]}
        self.raw_limits = {d["dev"]: faultlib.raw_limits(d, faultlib.DEVICE_CFG[d["dev"]])
                           for d in info["devices"]}

    def frames(self):
        with open(self.sim.log_path, errors="replace") as f:
            return faultlib.parse_frames(f.read())

    def close(self):
        self.simctl.close()
        self.gw.stop()
        self.sim.stop()


def test_random_client_operations():
    _property_run(faultlib.seed_from_env(), OPS_MAX, TIME_MAX_S)


def test_random_client_operations_on_a_noisy_bus():
    """The same on a bus where 10 % of the replies come after the gateway's response timeout,
    5 % twice and 3 % never: retries, stray replies and timeouts must not let a value past
    the limits or a write past its read-back."""
    _property_run(faultlib.seed_from_env(), OPS_MAX, TIME_MAX_S,
                  noise={"late_pct": 10, "late_delay_us": 80000, "dup_pct": 5, "drop_pct": 3})


def _property_run(seed, ops_max, time_max_s, noise=None):
    rig = Rig()
    if noise:
        rig.simctl.set(**noise)
        print("bus noise: %s" % noise)
    sim, simctl, gw, req_ep = rig.sim, rig.simctl, rig.gw, rig.req_ep
    limits, raw_limits = rig.limits, rig.raw_limits
    tel = zmq.Context.instance().socket(zmq.SUB)
    tel.setsockopt(zmq.LINGER, 0)
    tel.setsockopt(zmq.SUBSCRIBE, b"tel/")
    tel.connect(rig.pub_ep)
    # Telemetry while clients keep the bus busy: messages and the longest gap per device.
    tel_last, tel_gap_max, tel_count = {}, [0.0], [0]

    gen = Gen(seed, limits)
    clients = [Client(req_ep, n, l) for n, l in CLIENTS]
    poller = zmq.Poller()
    for c in clients:
        poller.register(c.sock, zmq.POLLIN)
    problems, counts, codes = [], {"sent": 0, "replies": 0}, {}
    written = {}  # (dev, cmd) written at least once: true state must be within limits
    start = time.monotonic()
    next_sample = start
    samples = 0

    def sample_true_state():
        path_text = open(sim.log_path, errors="replace").read()  # noqa: SIM115
        for d, cid, data in faultlib.parse_frames(path_text):
            if d == "rx" and len(data) > 2 and (cid & 0xFFFFFF00) == 0x000C0300:
                written[(cid & 0xFF, data[0] | (data[1] << 8))] = True
        for addr in faultlib.DEVICE_CFG:
            regs = simctl.device(addr)["registers"]
            for name, raw in regs.items():
                cmd = faultlib.CMD.get(name)
                if (addr, cmd) in written and not faultlib.in_limits(raw_limits[addr], cmd, raw):
                    problems.append("device %d %s holds %d, allowed %s" % (
                        addr, name, raw, raw_limits[addr][cmd]))

    try:
        while True:
            now = time.monotonic()
            # The random mix runs until its budget is spent and, if by then too few setpoints
            # and out-of-range sets got through to mean anything, on for up to twice as long.
            budget_left = ((counts["sent"] < ops_max and now - start < time_max_s)
                           or (not _exercised(codes) and now - start < 3 * time_max_s))
            for c in clients:
                if c.pending is None and budget_left:
                    req = gen.request(c.name, c.may_lease)
                    rid = None
                    if isinstance(req, dict):
                        c.next_id += 1
                        rid = "%s-%d" % (c.name, c.next_id)
                        if gen.r.random() < 0.9:
                            req = dict(req, id=rid)
                        else:
                            rid = None
                        if gen.r.random() < 0.97:
                            req.setdefault("v", 1)
                        # mostly with the token the client's take got; sometimes without
                        # (bad_token when it holds a lease) or a malformed one (bad_request)
                        if c.token and gen.r.random() < 0.9:
                            req["token"] = c.token if gen.r.random() < 0.97 else "X" * 32
                        data = json.dumps(req).encode()
                    else:
                        data = req
                    c.sock.send_multipart([b"", data])
                    c.pending = (rid, req, now)
                    counts["sent"] += 1
                elif c.pending is not None and now - c.pending[2] > REPLY_TIMEOUT_S:
                    problems.append("no reply within %.0f s to %r" % (REPLY_TIMEOUT_S,
                                                                      c.pending[1]))
                    c.pending = None
            if not budget_left and all(c.pending is None for c in clients):
                break
            if now >= next_sample:
                sample_true_state()
                samples += 1
                next_sample = now + 2.0
            while tel.poll(0):
                topic = tel.recv_multipart()[0]
                t = time.monotonic()
                tel_gap_max[0] = max(tel_gap_max[0], t - tel_last.get(topic, start))
                tel_last[topic] = t
                tel_count[0] += 1
            for sock, _ in poller.poll(100):
                c = next(x for x in clients if x.sock is sock)
                frames = sock.recv_multipart()
                if c.pending is None:
                    problems.append("extra reply to %s: %r" % (c.name, frames))
                    continue
                rid, req, _ = c.pending
                c.pending = None
                counts["replies"] += 1
                try:
                    assert len(frames) == 2 and frames[0] == b""
                    rep = json.loads(frames[1])
                except (AssertionError, ValueError):
                    problems.append("unparsable reply %r to %r" % (frames, req))
                    continue
                _check_reply(req, rid, rep, problems)
                if rep.get("ok") and isinstance(rep.get("token"), str):
                    c.token = rep["token"]
                code = "ok" if rep.get("ok") else rep.get("error", {}).get("code")
                op = req.get("op") if isinstance(req, dict) else "malformed"
                codes.setdefault(str(op), {}).setdefault(code, 0)
                codes[str(op)][code] += 1
        load_end = time.monotonic()
        for topic in (b"tel/0", b"tel/1"):
            tel_gap_max[0] = max(tel_gap_max[0], load_end - tel_last.get(topic, start))
        # Extra replies arriving late.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            for sock, _ in poller.poll(100):
                c = next(x for x in clients if x.sock is sock)
                problems.append("extra reply to %s: %r" % (c.name, sock.recv_multipart()))
        # Let the last lease lapse (its safe state is written and verified too).
        time.sleep(4)
        if noise:
            rig.simctl.set(late_pct=0, dup_pct=0, drop_pct=0)
        sample_true_state()

        def audit():
            a = faultlib.audit_frames(faultlib.parse_frames(
                open(sim.log_path, errors="replace").read()), raw_limits)
            return a if not a.unverified else None
        try:
            a = harness.wait_for(audit, 5, interval=0.3, what="every write read back")
        except harness.HarnessError:
            a = faultlib.audit_frames(faultlib.parse_frames(
                open(sim.log_path, errors="replace").read()), raw_limits)
        gw_eep = {d["dev"]: d["eeprom"]["writes_total"]
                  for d in faultlib.gw_request(req_ep, {"op": "info"})["devices"]}
        sim_eep = {d["addr"]: d["eeprom_writes_total"] for d in simctl.counters()["devices"]}
        bus = simctl.counters()["bus"]

        print("seed %d: %d requests, %d replies, %d true-state samples; bus: %d requests, "
              "%d writes, %d pacing violations" % (seed, counts["sent"], counts["replies"],
                                                   samples, a.requests, a.writes,
                                                   bus["pacing_violations"]))
        print("EEPROM writes: gateway %s, devices %s; telemetry under this load: %d messages "
              "in %.0f s, longest gap %.1f s (period 0.5 s)" % (
                  gw_eep, sim_eep, tel_count[0], load_end - start, tel_gap_max[0]))
        for op in sorted(codes):
            print("  %-10s %s" % (op, ", ".join("%s %d" % kv for kv in sorted(codes[op].items()))))
        # Every property is checked and every failure reported together.
        fails = []
        if not gw.alive():
            fails.append("the gateway died: %s" % gw.output()[-2000:])
        if problems:
            fails.append("%d reply problems: %s" % (len(problems), problems[:10]))
        if counts["sent"] != counts["replies"]:
            fails.append("%d requests, %d replies" % (counts["sent"], counts["replies"]))
        if a.violations:
            fails.append("values outside the limits on the bus: %s" % a.violations[:10])
        if a.unverified:
            fails.append("writes left unverified: %s" % a.unverified[:10])
        if a.writes <= 20:
            fails.append("too few writes reached the bus to mean anything (%d)" % a.writes)
        for d in faultlib.DEVICE_CFG:
            if gw_eep[d] < sim_eep[d]:
                fails.append("EEPROM writes uncounted on device %d: gateway %s, devices %s"
                             % (d, gw_eep, sim_eep))
        if not _exercised(codes):
            fails.append("the run exercised too little: %s" % codes)
        assert not fails, "\n".join(fails)
    finally:
        for c in clients:
            c.sock.close()
        tel.close()
        rig.close()


def test_contract_edges():
    """Fixed cases the random run may miss: a request with bytes after its JSON object, and
    SYSTEM_CONFIG values with reserved bits or reserved field values (OPERATION_INIT = 11,
    EEP_CONFIG = 11), which must be refused before anything reaches the bus."""
    rig = Rig()
    try:
        problems = []
        for data in (b'{"v":1,"op":"ping"}\x00junk', b'{"v":1,"op":"ping"} trailing',
                     b'{"v":1,"op":"ping"}{"v":1,"op":"ping"}'):
            r = faultlib.gw_request(rig.req_ep, data)
            if not r or r.get("ok") is not False or r["error"]["code"] != "bad_request":
                problems.append("%r answered %r (expected bad_request)" % (data, r))
        before = len(rig.frames())
        for raw in (0x0007, 0x0010, 0x0080, 0x0300, 0x0306):
            r = faultlib.gw_request(rig.req_ep, {"op": "set", "dev": 0, "reg": "SYSTEM_CONFIG",
                                                 "raw": raw, "client": "edges"}, 5)
            if not r or r.get("ok") is not False or r["error"]["code"] != "out_of_range":
                problems.append("SYSTEM_CONFIG 0x%04X answered %r (expected out_of_range)"
                                % (raw, r))
        time.sleep(0.5)
        a = faultlib.audit_frames(rig.frames()[before:], rig.raw_limits)
        problems += a.violations
        assert not problems, "\n".join(problems)
    finally:
        rig.close()


if __name__ == "__main__":
    harness.run_tests()
