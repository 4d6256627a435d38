"""One bic-charge-ctl over a group on two gateways ([CHARGE_CONTROL] Id/0/Devices = 0,0@1):
two buses, each with its own bic-sim on its own pty and its own bic-can-gateway, both devices
at CAN address 0. Gateway 0 on ipc:// (this machine's), gateway 1 on tcp:// 127.0.0.1 with
CURVE (its key pair, the controller's key in its CurveClientsDir), as a gateway on another
machine would be. One meter for the house: the first simulator's household and battery plus
the second simulator's battery. Each device is limited to 25 A (about 700 W at 28 V), so the
noon export of about 900 W needs both, neither at its limit.

The controller takes a lease on each gateway and both units charge; gateway 1 is killed: its
connection drops, and the step that follows gives unit 0 the whole setpoint (within its
limit), while the simulated unit on the dead gateway's bus keeps what it was last told (the
simulator has no watchdog of its own, and its gateway, which would apply the safe state when
the lease lapses, is gone). Gateway 1 restarts with its saved lease: the controller takes it
again with its token, and the unit rejoins with a share of its own. A client whose key is not
allowed gets nothing from gateway 1. Unit 0@1 alone loses its mains (offline at gateway 1,
whose device 0 is not unit 0): it leaves the group and rejoins. Gateway 1 hangs (SIGSTOP: its connection stays up, it
answers no heartbeat): it is dropped as when killed; it goes on: its unit rejoins. A gateway
with a slower telemetry period than the controller's file says is judged by its own."""

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import zmq  # noqa: E402
from ctld_stack import Stack  # noqa: E402
from remote_gateway import RemoteGateway  # noqa: E402

MAX_A = 25  # each device's MaxChargeCurrent: about 700 W
SETTLE_S = 60  # deadlines for what is not a timing claim: generous for a loaded machine
SIM_METER_B = "sim/meter-b"


def _group(s):
    p = s.client.last(s.topic("ctl/0/group"))
    return json.loads(p) if p else None


def _charging(d):
    return d["output_on"] and d["dc_a"] > 1


def _both_share(s):
    """The group message when both units have a share (the controller runs the group)."""
    g = _group(s)
    return g if g and g["online"] == 2 and all(u["power_w"] > 0 for u in g["units"]) else None


def _stack():
    device = {"Id/0/MaxChargeCurrent": MAX_A * 100}
    return Stack(start_s=46920, speed=5, units=(0,), device=device, relay=False,
                 ctl={"Id/0/Devices": "0,0@1"})


def _start(s):
    """Gateway 1, the controller's file for both gateways, the meter, the controller."""
    gw1 = RemoteGateway(s, MAX_A, meter_topic=SIM_METER_B)
    gw1.configure_ctl(battery=1)
    s.start_relay(add_topics=[SIM_METER_B])
    s.start_ctl()
    return gw1


def test_group_over_two_gateways():
    with _stack() as s:
        gw1 = _start(s)
        # a client whose key is not in gateway 1's CurveClientsDir gets nothing
        assert gw1.request({"op": "ping"}, keys=zmq.curve_keypair(), timeout=2) is None
        gw1.proc.wait_output("CURVE: refused client key")

        # a lease on each gateway, each under its own name
        harness.wait_for(lambda: (gw1.lease() or {}).get("holder"), timeout=SETTLE_S,
                         what="device 0@1's lease")
        h0 = s.lease()["holder"]
        h1 = gw1.lease()["holder"]
        assert h0.startswith("charge-ctl-0-") and h1 == h0 + "-u0g1", (h0, h1)

        # the export needs both: both charge
        harness.wait_for(lambda: _charging(s.device()) and _charging(gw1.device()),
                         timeout=SETTLE_S, what="both units charging")
        g = harness.wait_for(lambda: _both_share(s), timeout=SETTLE_S,
                             what="a share for each unit")
        print("two gateways:", g)
        assert g["online"] == 2 and g["units"][1]["gw"] == 1 and "gw" not in g["units"][0], g

        # gateway 1 is killed: at the next step unit 0 takes the whole setpoint
        gw1.proc.kill()
        since = [time.monotonic()]
        s.ctl.wait_output("gateway 1 disconnected", timeout=SETTLE_S)

        def first_without_1():
            for at, _, p, _ in s.client.received(s.topic("ctl/0/group")):
                if at >= since[0] and p and not json.loads(p)["units"][1]["online"]:
                    return json.loads(p)
            return None
        g = harness.wait_for(first_without_1, timeout=SETTLE_S, what="the group without 0@1")
        print("gateway 1 killed:", g)
        u0, u1 = g["units"]
        assert g["online"] == 1 and u1["power_w"] == 0 and not u1["lease"], g
        assert u0["mode"] == "charge" and (u0["power_w"] == g["setpoint_w"] or
                                           u0["current_a"] == MAX_A), g
        # the unit on the dead gateway's bus keeps what it was last told
        assert _charging(gw1.device()), gw1.device()
        harness.wait_for(lambda: _charging(s.device()), timeout=SETTLE_S,
                         what="unit 0 charging alone")

        # gateway 1 restarts with its saved lease: taken again, the unit rejoins
        gw1.start()
        harness.wait_for(lambda: (_group(s) or {}).get("online") == 2, timeout=SETTLE_S,
                         what="device 0@1 back in the group")
        assert gw1.lease()["holder"] == h1, gw1.lease()
        harness.wait_for(lambda: _group(s)["units"][1]["mode"] == "charge" and
                         _charging(gw1.device()), timeout=SETTLE_S, what="0@1 charging again")
        # taken again with its token before it lapsed: no safe state in between
        assert "lapsed; applying the safe state" not in gw1.proc.output(), \
            gw1.proc.output()[-3000:]
        st = s.status()
        assert st["mode"] == "running" and st["lease"]["held"], st

        # unit 0@1 alone loses its mains (offline at gateway 1, whose tel/0 and evt/0 are not
        # unit 0's): it leaves the group, unit 0 stays in it; back, it rejoins
        gw1.sim.control.ac(False, dev=0)
        harness.wait_for(lambda: not _group(s)["units"][1]["online"], timeout=SETTLE_S,
                         what="0@1 offline")
        g = _group(s)
        assert g["units"][0]["online"] and g["units"][0]["mode"] == "charge", g
        assert s.status()["lease"]["held"], s.status()
        gw1.sim.control.ac(True, dev=0)
        harness.wait_for(lambda: _both_share(s), timeout=SETTLE_S, what="0@1 back after its mains")

        # gateway 1 hangs (SIGSTOP): its connection stays up but answers no heartbeat; the
        # controller drops it, unit 0 takes the whole setpoint again
        drops = s.ctl.output().count("gateway 1 disconnected")
        gw1.proc.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            harness.wait_for(lambda: s.ctl.output().count("gateway 1 disconnected") > drops,
                             timeout=SETTLE_S, what="the hung gateway dropped")
            since[0] = stopped
            g = harness.wait_for(first_without_1, timeout=SETTLE_S,
                                 what="the group without the hung gateway's unit")
            print("gateway 1 hung:", g)
            u0 = g["units"][0]
            assert u0["mode"] == "charge" and (u0["power_w"] == g["setpoint_w"] or
                                               u0["current_a"] == MAX_A), g
        finally:
            gw1.proc.signal(signal.SIGCONT)
        # it goes on: its unit rejoins (its lease lapsed while it hung, or is taken again)
        harness.wait_for(lambda: (_group(s) or {}).get("online") == 2 and
                         _group(s)["units"][1]["mode"] == "charge" and _charging(gw1.device()),
                         timeout=SETTLE_S, what="0@1 back after the hang")


def test_own_gateway_killed():
    """Gateway 0, the one of the controller's own device X, is killed: unit 0@1 takes the
    whole setpoint; back, unit 0 rejoins. The controller dies: each gateway puts its device in
    its safe state when the lease lapses."""
    with _stack() as s:
        gw1 = _start(s)
        harness.wait_for(lambda: _both_share(s) and _charging(s.device()) and
                         _charging(gw1.device()), timeout=SETTLE_S, what="both units charging")
        s.gateway.kill()
        since = time.monotonic()
        s.ctl.wait_output("gateway 0 disconnected", timeout=SETTLE_S)

        def first_without_0():
            for at, _, p, _ in s.client.received(s.topic("ctl/0/group")):
                if at >= since and p and not json.loads(p)["units"][0]["online"]:
                    return json.loads(p)
            return None
        g = harness.wait_for(first_without_0, timeout=SETTLE_S, what="the group without 0")
        print("gateway 0 killed:", g)
        u0, u1 = g["units"]
        assert g["online"] == 1 and u0["power_w"] == 0 and not u0["lease"], g
        assert u1["mode"] == "charge" and (u1["power_w"] == g["setpoint_w"] or
                                           u1["current_a"] == MAX_A), g
        assert _charging(s.device()), s.device()  # keeps what it was last told
        s.old.append(s.gateway)
        s.gateway = harness.start_program("bic-can-gateway", s.ini_path, tmp=s.tmp)
        harness.wait_for(lambda: (_group(s) or {}).get("online") == 2 and
                         _group(s)["units"][0]["mode"] == "charge" and _charging(s.device()),
                         timeout=SETTLE_S, what="unit 0 back in the group and charging")
        st = s.status()
        assert st["mode"] == "running" and st["lease"]["held"], st

        # a changed group on SIGHUP: said to take effect at the next start
        s.ini["CHARGE_CONTROL"]["Id/0/Devices"] = "0"
        s.write_ini()
        s.ctl.signal(signal.SIGHUP)
        s.ctl.wait_output("the group's devices (Id/0/Devices) and their gateways take effect "
                          "after a restart", timeout=SETTLE_S)

        # the controller dies: each gateway lets its device's lease lapse into its safe state
        # (SafeState=off: the output off)
        s.ctl.kill()
        for gw in (s.gateway, gw1.proc):
            gw.wait_output("lapsed; applying the safe state", timeout=SETTLE_S)
        harness.wait_for(lambda: not s.device()["output_on"] and not gw1.device()["output_on"],
                         timeout=SETTLE_S, what="both outputs off")


def test_slow_gateway():
    """Gateway 1 sends telemetry every 4 s, the controller's file says 0.5 s (3 s of silence):
    the controller judges unit 0@1 by the period its gateway states in its telemetry (silent
    after 20 s), so the unit stays in the group between two of its messages rather than
    leaving and rejoining every 4 s; gateway 0's unit is still judged by its 0.5 s."""
    with _stack() as s:
        gw1 = RemoteGateway(s, MAX_A, meter_topic=SIM_METER_B, telemetry_ms=4000)
        gw1.configure_ctl(battery=1)
        s.start_relay(add_topics=[SIM_METER_B])
        s.start_ctl()
        s.ctl.wait_output("device 0@1: its gateway sends telemetry every 4000 ms: silent after "
                          "20.0 s without it", timeout=SETTLE_S)
        harness.wait_for(lambda: _both_share(s), timeout=SETTLE_S, what="a share for each unit")
        since = time.monotonic()
        time.sleep(14)  # more than three of gateway 1's periods
        msgs = [json.loads(p) for at, _, p, _ in s.client.received(s.topic("ctl/0/group"))
                if at >= since and p]
        assert msgs, "no group message in 14 s"
        left = [g for g in msgs if not g["units"][1]["online"]]
        assert not left, left[0]
        assert _both_share(s), _group(s)
        # gateway 0 states the file's period: nothing to say about it
        assert "device 0: its gateway sends" not in s.ctl.output(), s.ctl.output()[-3000:]


def test_key_not_allowed():
    """The controller's key is not in gateway 1's CurveClientsDir: the gateway refuses it
    (and logs the key), the controller says so, and the group runs on unit 0 alone, unit 0@1
    out of it (no lease, no share)."""
    with _stack() as s:
        gw1 = RemoteGateway(s, MAX_A, meter_topic=SIM_METER_B)
        gw1.configure_ctl(battery=1, key_file=gw1.stranger_key_file())
        s.start_relay(add_topics=[SIM_METER_B])
        s.start_ctl()
        s.ctl.wait_output("gateway 1 refused the connection (CURVE handshake)",
                          timeout=SETTLE_S)
        gw1.proc.wait_output("CURVE: refused client key")
        g = harness.wait_for(lambda: (_group(s) or {}).get("units", [{}])[0].get("power_w", 0) > 0
                             and _group(s), timeout=SETTLE_S, what="unit 0 running alone")
        print("key not allowed:", g)
        assert g["online"] == 1 and not g["units"][1]["online"] and \
            not g["units"][1]["lease"] and g["units"][1]["power_w"] == 0, g
        assert gw1.lease() is None
        # logged once, and never taken for a gateway that was connected
        out = s.ctl.output()
        assert out.count("refused the connection") == 1, out[-3000:]
        assert "gateway 1 disconnected" not in out, out[-3000:]


def _check(program, path):
    p = subprocess.run([harness.program(program), "--check-config", "-c", path],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def test_check_config():
    """One file for the house machine's gateway, bridge and controller over 0,0@1: each
    program accepts it without a warning (gateway 1's device is not the house gateway's);
    the controller refuses it, naming the key, without gateway 1's endpoints or device 0@1's
    limits."""
    tmp = harness.temp_dir("bic-ctld-gwcfg-")
    dev = {"ChargeVoltage": 2800, "DischargeVoltage": 2400, "MaxChargeCurrent": 7500,
           "MaxDischargeCurrent": 6000}
    ini = {"GATEWAY": {"Can": "slcan:/dev/ttyACM0", "StateDir": tmp,
                       "ReqEndpoint": "ipc://%s/gw.sock" % tmp,
                       "PubEndpoint": "ipc://%s/tel.sock" % tmp,
                       "Gw/1/ReqEndpoint": "tcp://192.168.1.20:5555",
                       "Gw/1/PubEndpoint": "tcp://192.168.1.20:5556"},
           "DEVICE": dict({"Id/0/%s" % k: v for k, v in dev.items()},
                          **{"Id/0@1/%s" % k: v for k, v in dev.items()}),
           "CHARGE_CONTROL": {"Id/0/TopicPower": "home/meter/power", "Id/0/Devices": "0,0@1"}}
    path = os.path.join(tmp, "house.ini")
    harness.write_ini(path, ini)
    for program in ("bic-can-gateway", "bic-mqtt-bridge", "bic-charge-ctl"):
        rc, out = _check(program, path)
        assert rc == 0 and "warn" not in out.lower(), (program, out)
    bad = json.loads(json.dumps(ini))
    del bad["GATEWAY"]["Gw/1/PubEndpoint"]
    harness.write_ini(path, bad)
    rc, out = _check("bic-charge-ctl", path)
    assert rc == 1 and "Gw/1/ReqEndpoint and Gw/1/PubEndpoint are not both set" in out, out
    bad = json.loads(json.dumps(ini))
    del bad["DEVICE"]["Id/0@1/MaxDischargeCurrent"]
    harness.write_ini(path, bad)
    rc, out = _check("bic-charge-ctl", path)
    assert rc == 1 and "Id/0@1/MaxDischargeCurrent" in out, out
    bad = json.loads(json.dumps(ini))
    bad["GATEWAY"]["Gw/9/ReqEndpoint"] = "tcp://192.168.1.21:5555"
    harness.write_ini(path, bad)
    rc, out = _check("bic-charge-ctl", path)
    assert rc == 1 and "gateway number 9 is out of range; allowed: 1..7" in out, out


if __name__ == "__main__":
    harness.run_tests()
