"""The gateway on SocketCAN, against bic-sim on the same vcan0, inside the guest kernel.

Runs under tools/uml/run-in-guest.sh (see CMakeLists.txt). The checks mirror the slcan
integration tests (tests/gateway/): get against the simulator's true state, set with
verification and skip-when-equal (the simulator's EEPROM counters), out-of-range requests that
leave the device untouched, setpoints and the lease, telemetry, two devices on one bus,
devices falling silent and answering again, and the bus pacing (20 ms
between requests, 5 ms after a reply, judged by kernel timestamps from a listener of our
own); plus what only a kernel interface can do: `ip link set vcan0 down` while running
(device offline, bus down, requests refused with a clear error, nothing exits) and `up`
again (device back online and served again, without a restart).
"""

import errno
import os
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))

import harness  # noqa: E402
from gwtest import Gateway, Sub, gateway_ini  # noqa: E402

IFACE = "vcan0"
# Guest processes are slower to start and to schedule than on the host.
SLOW = 30.0


class SocketcanSim:
    """bic-sim on a SocketCAN interface with its control socket in a temporary directory."""

    def __init__(self, devices=("0:24",), iface=IFACE, tmp=None):
        self.dir = tmp or harness.temp_dir("bic-sim-")
        self.iface = iface
        endpoint = "ipc://" + os.path.join(self.dir, "sim.ctl")
        argv = [harness.program("bic-sim"), "--socketcan", iface, "--control", endpoint]
        for d in devices:
            argv += ["--device", d]
        self.proc = harness.Process(argv, name="bic-sim", log_dir=self.dir)
        self.control = None
        try:
            self.control = harness.SimControl(endpoint, timeout=5.0, retries=4)
            harness.wait_for(lambda: self.control.state(), SLOW, what="bic-sim control")
        except Exception:
            self.stop()
            raise

    @property
    def transport(self):
        return "socketcan:" + self.iface

    def stop(self):
        if self.control is not None:
            self.control.close()
            self.control = None
        return self.proc.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class PacingMonitor:
    """A third listener on the bus that checks the gateway's pacing with the kernel's receive
    timestamps (SO_TIMESTAMPNS): at least 20 ms between requests and 5 ms after a reply.

    vcan delivers a frame to every socket in the sender's system call, so these timestamps
    are the send times. bic-sim's own pacing counters take the time when its loop reads the
    frame; in the guest, where a process may wait several milliseconds for the CPU, that
    read time runs late and two correctly spaced requests can look too close."""

    HOST, DEV, MASK = 0x000C0300, 0x000C0200, 0x1FFFFF00
    PERIOD_NS, MARGIN_NS = 20_000_000, 5_000_000
    SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)

    def __init__(self, iface=IFACE):
        self.sock = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
        self.sock.setsockopt(socket.SOL_SOCKET, self.SO_TIMESTAMPNS, 1)
        self.sock.bind((iface,))
        self.sock.settimeout(0.2)
        self.frames = []  # (kernel time ns, can id, data)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data, anc, _, _ = self.sock.recvmsg(16, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            except OSError as e:
                if e.errno == errno.ENETDOWN:  # reported once when the interface goes down
                    continue
                raise
            ts = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == self.SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", payload[:16])
                    ts = sec * 1_000_000_000 + nsec
            can_id, dlc = struct.unpack("=IB", data[:5])
            self.frames.append((ts, can_id & socket.CAN_EFF_MASK, data[8:8 + dlc]))

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def violations(self):
        """Requests closer than 20 ms to the previous request or 5 ms to the previous reply."""
        out, last_req, last_rep = [], None, None
        for ts, cid, data in self.frames:
            kind = cid & self.MASK
            if kind == self.HOST:
                if last_req is not None and ts - last_req < self.PERIOD_NS:
                    out.append("request %#x %s %.3f ms after the previous request"
                               % (cid, data.hex(), (ts - last_req) / 1e6))
                if last_rep is not None and ts - last_rep < self.MARGIN_NS:
                    out.append("request %#x %s %.3f ms after a reply"
                               % (cid, data.hex(), (ts - last_rep) / 1e6))
                last_req = ts
            elif kind == self.DEV:
                last_rep = ts
        return out

    def assert_paced(self, sim):
        requests = sum(1 for _, cid, _ in self.frames if cid & self.MASK == self.HOST)
        assert requests > 0, "no request seen on the bus"
        assert all(ts is not None for ts, _, _ in self.frames), "frames without a kernel timestamp"
        bad = self.violations()
        seen_by_sim = sim.control.counters()["bus"]["pacing_violations"]
        print("pacing: %d requests, %d violations by kernel timestamps, %d by bic-sim's read "
              "times" % (requests, len(bad), seen_by_sim), flush=True)
        assert not bad, bad


def link(state):
    subprocess.run(["ip", "link", "set", IFACE, state], check=True)


def link_is_up():
    out = subprocess.run(["ip", "-brief", "link", "show", IFACE], capture_output=True,
                         text=True, check=True).stdout
    flags = [w for w in out.split() if w.startswith("<")][0]
    return "UP" in flags.strip("<>").split(",")


class Stack:
    """Pacing monitor, bic-sim and gateway on vcan0; stopped in reverse order."""

    def __init__(self, devices=("0:24",), devices_cfg=None, **gw):
        self.tmp = harness.temp_dir()
        self.mon = PacingMonitor()
        self.sim = self.gw = None
        try:
            self.sim = SocketcanSim(devices)
            ini = gateway_ini(self.sim, self.tmp, devices=devices_cfg, EepromWriteIntervalSec=0, **gw)
            self.gw = Gateway(ini, self.tmp, timeout=SLOW)
        except Exception:
            self.__exit__()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.gw:
            self.gw.stop()
        if self.sim:
            self.sim.stop()
        self.mon.stop()
        return False


def test_pacing_monitor_catches_fast_requests():
    """The monitor's verdict means something: requests 1 ms apart are caught."""
    mon = PacingMonitor()
    try:
        tx = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
        tx.bind((IFACE,))
        for _ in range(2):
            tx.send(struct.pack("=IB3x8s", 0x000C0300 | socket.CAN_EFF_FLAG, 2, b"\x60\x00"))
            time.sleep(0.001)
        tx.close()
        harness.wait_for(lambda: len(mon.frames) >= 2, SLOW, what="two frames seen")
        bad = mon.violations()
        assert len(bad) == 1 and "after the previous request" in bad[0], bad
    finally:
        mon.stop()


def test_ping_info_get():
    with Stack() as st:
        sim, gw = st.sim, st.gw
        c = gw.client
        r = c.ok("ping", id="vcan")
        assert r["id"] == "vcan" and r["bus"] == "up", r
        info = c.ok("info")
        assert info["gateway"]["transport"] == "socketcan:vcan0", info["gateway"]
        d = info["devices"][0]
        assert d["online"] and d["model"] == "BIC-2200-24" and d["variant"] == 24, d
        assert d["limits"]["vout_v"] == [24, 27.6], d["limits"]  # the configured [DEVICE] range
        v = c.ok("get", dev=0, regs=["READ_VOUT", "FAULT_STATUS", "MFR_MODEL_B0B5"])["values"]
        true_v = sim.control.device(0)["dc_v"]
        assert v["READ_VOUT"]["unit"] == "V" and abs(v["READ_VOUT"]["value"] - true_v) < 0.2, (v, true_v)
        assert v["MFR_MODEL_B0B5"]["value"] == "BIC-22", v
        assert v["FAULT_STATUS"]["bits"]["otp"] is False, v
        st.mon.assert_paced(sim)


def test_set_verify_skip_and_range():
    with Stack() as st:
        sim, gw = st.sim, st.gw
        c = gw.client
        before = sim.control.eeprom_writes(0)["VOUT_SET"]
        # the gateway's count includes the [DEVICE] limits it wrote at start
        gw_before = c.ok("eeprom", dev=0)["eeprom"]["writes"]["VOUT_SET"]
        r = c.ok("set", dev=0, reg="VOUT_SET", value=27.5, client="vcan")
        assert r["written"] is True and r["raw"] == 2750, r
        assert sim.control.device(0)["registers"]["VOUT_SET"] == 2750
        assert sim.control.eeprom_writes(0)["VOUT_SET"] == before + 1
        # equal value: read, compared, not written
        assert c.ok("set", dev=0, reg="VOUT_SET", value=27.5, client="vcan")["written"] is False
        assert sim.control.eeprom_writes(0)["VOUT_SET"] == before + 1
        assert c.ok("eeprom", dev=0)["eeprom"]["writes"]["VOUT_SET"] == gw_before + 1
        # outside the configured limits: refused with the range, device untouched
        regs = dict(sim.control.device(0)["registers"])
        e = c.error("set", "out_of_range", dev=0, reg="VOUT_SET", value=27.7, client="vcan")
        assert e["max"] == 27.6 and e["unit"] == "V", e
        c.error("set", "out_of_range", dev=0, reg="IOUT_SET", value=30.01, client="vcan")
        assert sim.control.device(0)["registers"] == regs
        st.mon.assert_paced(sim)


def test_setpoint_and_telemetry():
    with Stack(devices=("0:24:battery,canctrl",)) as st:
        sim, gw = st.sim, st.gw
        c = gw.client
        sub = Sub(gw.pub, ["tel/0"])
        # battery limits first: charge up to 27.6 V, discharge down to 24 V
        c.ok("set", dev=0, reg="VOUT_SET", value=27.6, client="ctl")
        c.ok("set", dev=0, reg="REVERSE_VOUT_SET", value=24, client="ctl")
        r = c.ok("setpoint", dev=0, client="ctl", mode="charge", current_a=12.4, lease_ttl_s=60)
        assert r["applied"]["direction"] == "charge" and r["applied"]["iout_a"] == 12.4, r
        regs = sim.control.device(0)["registers"]
        assert regs["IOUT_SET"] == 1240 and regs["DIRECTION_CTRL"] == 0 and regs["OPERATION"] == 1, regs
        harness.wait_for(lambda: sim.control.device(0)["dc_a"] > 5, SLOW, what="charging")
        e = c.error("setpoint", "lease_held", dev=0, client="intruder", mode="off")
        assert "ctl" in e["message"], e
        _, t = sub.wait(lambda tp, b: tp == "tel/0" and b["online"] and b["dc_a"] is not None
                        and b["dc_a"] > 5, SLOW, "telemetry while charging")
        assert t["direction"] == "charge" and t["lease"]["holder"] == "ctl", t
        c.ok("setpoint", dev=0, client="ctl", mode="off")
        assert sim.control.device(0)["registers"]["OPERATION"] == 0
        sub.close()
        st.mon.assert_paced(sim)


DEV48 = {"Type": "BIC2200-48CAN", "ChargeVoltage": 5520, "DischargeVoltage": 4800,
         "MaxChargeCurrent": 2000, "MaxDischargeCurrent": 1500}


def test_two_devices_on_one_bus():
    with Stack(devices=("0:24", "3:48"), devices_cfg={0: {}, 3: DEV48}) as st:
        sim, c = st.sim, st.gw.client
        devs = {d["dev"]: d for d in c.ok("info")["devices"]}
        assert devs[0]["model"] == "BIC-2200-24" and devs[3]["model"] == "BIC-2200-48", devs
        # each device answers at its own address (replies matched by CAN ID)
        v0 = c.ok("get", dev=0, reg="READ_VOUT")["values"]["READ_VOUT"]["value"]
        v3 = c.ok("get", dev=3, reg="READ_VOUT")["values"]["READ_VOUT"]["value"]
        assert abs(v0 - sim.control.device(0)["dc_v"]) < 0.2 and abs(v3 - sim.control.device(3)["dc_v"]) < 0.2
        assert v0 < 30 < v3, (v0, v3)
        c.ok("set", dev=3, reg="VOUT_SET", value=55.0, client="vcan")
        c.error("set", "out_of_range", dev=0, reg="VOUT_SET", value=55.0, client="vcan")
        assert sim.control.device(3)["registers"]["VOUT_SET"] == 5500
        assert sim.control.device(0)["registers"]["VOUT_SET"] != 5500
        st.mon.assert_paced(sim)


def test_simulator_gone_and_back():
    """On SocketCAN the interface stays when the devices fall silent: devices go offline, the
    bus stays up, and they come back when something answers again."""
    with Stack() as st:
        c = st.gw.client
        sub = Sub(st.gw.pub, ["evt/0"])
        st.sim.stop()
        sub.wait(lambda tp, b: b.get("event") == "offline", SLOW, "device 0 offline")
        r = c.call("get", dev=0, reg="READ_VOUT")
        assert r["ok"] is False and r["error"]["code"] in ("device_offline", "timeout"), r
        assert c.ok("ping")["bus"] == "up"
        st.sim = SocketcanSim()
        sub.wait(lambda tp, b: b.get("event") == "online", SLOW, "device 0 online again")
        v = c.ok("get", dev=0, reg="READ_VOUT")["values"]["READ_VOUT"]
        assert abs(v["value"] - st.sim.control.device(0)["dc_v"]) < 0.2, v
        sub.close()
        st.mon.assert_paced(st.sim)


def test_interface_down_and_up():
    try:
        with Stack() as st:
            sim, gw = st.sim, st.gw
            c = gw.client
            sub = Sub(gw.pub, ["evt/0", "gw"])
            c.ok("get", dev=0, reg="READ_VOUT")

            link("down")
            assert not link_is_up()
            sub.wait(lambda tp, b: tp == "evt/0" and b.get("event") == "offline", SLOW,
                     "device 0 offline event")
            sub.wait(lambda tp, b: tp == "gw" and b.get("bus") == "down", SLOW, "gw bus down")
            r = c.call("get", dev=0, reg="READ_VOUT")
            assert r["ok"] is False and r["error"]["code"] in ("bus_down", "device_offline"), r
            assert r["error"]["message"], r
            assert c.ok("ping")["bus"] == "down"
            devs = c.ok("devices")["devices"]
            assert devs[0]["online"] is False, devs
            assert gw.proc.alive() and sim.proc.alive(), "a process exited on interface down"
            # The simulator reads its socket's error while the interface is down: left pending,
            # the error woke every poll at once and the simulator spun on it until a frame came
            # (starving the gateway in a one-CPU guest).
            sim.proc.wait_output("SocketCAN interface %s is down" % IFACE, SLOW)

            link("up")
            sub.wait(lambda tp, b: tp == "evt/0" and b.get("event") == "online", SLOW,
                     "device 0 online again")
            _, g = sub.wait(lambda tp, b: tp == "gw" and b.get("bus") == "up", SLOW, "gw bus up")
            assert g["reconnects"] >= 1, g
            v = c.ok("get", dev=0, reg="READ_VOUT")["values"]["READ_VOUT"]
            assert abs(v["value"] - sim.control.device(0)["dc_v"]) < 0.2, v
            assert c.ok("set", dev=0, reg="VOUT_SET", value=27.4, client="vcan")["written"] is True
            assert sim.control.device(0)["registers"]["VOUT_SET"] == 2740
            assert sim.proc.output().count("on SocketCAN interface %s" % IFACE) >= 2, \
                "bic-sim did not reopen its socket: " + sim.proc.output()[-1000:]
            sub.close()
            st.mon.assert_paced(sim)
    finally:
        if not link_is_up():
            link("up")


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        harness.run_tests()
    finally:
        print("guest test time %.1f s" % (time.monotonic() - t0), flush=True)
