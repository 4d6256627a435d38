"""The gateway as a process: --check-config, CURVE required off loopback (and working when
configured, with an allow-list of client keys: others refused and logged, read-only keys
limited to reads), SIGHUP reload that keeps the old config when the new one is invalid (and
whose new telemetry period the telemetry states), SIGTERM clean exit with and without
SafeStateOnExit."""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zmq  # noqa: E402

import harness  # noqa: E402
from gwtest import Gateway, Sub, assert_no_pacing_violations, gateway_ini  # noqa: E402


def _check(path):
    p = subprocess.run([harness.program("bic-can-gateway"), "--check-config", "-c", path],
                       capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


def test_check_config():
    tmp = harness.temp_dir()
    ini = {"GATEWAY": {"Can": "slcan:/dev/ttyACM0", "ReqEndpoint": "tcp://127.0.0.1:5555",
                       "PubEndpoint": "tcp://127.0.0.1:5556", "StateDir": tmp},
           "DEVICE": {"Id/0/ChargeVoltage": 2760, "Id/0/DischargeVoltage": 2400,
                      "Id/0/MaxChargeCurrent": 3000, "Id/0/MaxDischargeCurrent": 2500}}
    rc, out = _check(harness.write_ini(os.path.join(tmp, "ok.ini"), ini))
    assert rc == 0, out
    # a network endpoint without CURVE keys is refused
    ini["GATEWAY"]["ReqEndpoint"] = "tcp://0.0.0.0:5555"
    rc, out = _check(harness.write_ini(os.path.join(tmp, "open.ini"), ini))
    assert rc == 1 and "CurveSecretKeyFile" in out, out
    # the program itself refuses to start with it, before touching anything
    p = harness.start_program("bic-can-gateway", ini=os.path.join(tmp, "open.ini"), tmp=tmp)
    assert p.wait_exit(10) != 0
    assert "CurveSecretKeyFile" in p.output(), p.output()
    ini["GATEWAY"]["ReqEndpoint"] = "tcp://127.0.0.1:5555"
    ini["GATEWAY"]["ResponseTimeoutMs"] = 5
    rc, out = _check(harness.write_ini(os.path.join(tmp, "bad.ini"), ini))
    assert rc == 1 and "ResponseTimeoutMs" in out, out
    rc, out = _check(os.path.join(tmp, "missing.ini"))
    assert rc == 1, out
    p = subprocess.run([harness.program("bic-can-gateway"), "--bogus"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode != 0 and "usage" in p.stderr, p.stderr


def _curve_keys(tmp):
    """The gateway's key pair, an allowed client (CurveClientsDir), a read-only client
    (CurveReadOnlyClientsDir): {name: (public, secret)} and the two directories."""
    import zmq.auth
    keys = {}
    dirs = {}
    for name in ("gateway", "ctl", "viewer"):
        d = os.path.join(tmp, name)
        os.mkdir(d)
        pub_file, sec_file = zmq.auth.create_certificates(d, name)
        keys[name] = zmq.auth.load_certificate(sec_file)
        dirs[name] = d
    return keys, dirs, os.path.join(dirs["gateway"], "gateway.key_secret")


def _curve_req(port, server_public, pair):
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_serverkey = server_public
    s.curve_publickey, s.curve_secretkey = pair
    s.connect("tcp://127.0.0.1:%d" % port)
    return s


def _call(s, req, timeout_ms=10000):
    s.send_json(dict(req, v=1))
    if not s.poll(timeout_ms):
        return None
    return s.recv_json()


def test_curve_on_network_endpoint():
    tmp = harness.temp_dir()
    keys, dirs, sec_file = _curve_keys(tmp)
    with harness.Sim(devices=["0:24"]) as sim:
        ini = gateway_ini(sim, tmp)
        port = harness.free_port()
        ini["GATEWAY"]["ReqEndpoint"] = "tcp://0.0.0.0:%d" % port
        ini["GATEWAY"]["CurveSecretKeyFile"] = sec_file
        # a network endpoint needs the allow-list too
        path = harness.write_ini(os.path.join(tmp, "gateway.ini"), ini)
        rc, out = _check(path)
        assert rc == 1 and "CurveClientsDir" in out, out
        ini["GATEWAY"]["CurveClientsDir"] = dirs["ctl"]
        ini["GATEWAY"]["CurveReadOnlyClientsDir"] = dirs["viewer"]
        path = harness.write_ini(os.path.join(tmp, "gateway.ini"), ini)
        p = harness.start_program("bic-can-gateway", ini=path, tmp=tmp)
        p.wait_output("CURVE: 1 client key(s) allowed, 1 read-only")
        server_public = keys["gateway"][0]
        ctx = zmq.Context.instance()
        # an allowed client works: reads and writes
        s = _curve_req(port, server_public, keys["ctl"])
        r = _call(s, {"op": "ping"})
        assert r and r["ok"] is True, p.output()
        harness.wait_for(lambda: _call(s, {"op": "info", "dev": 0})["devices"][0]["online"],
                         20, what="device 0 online")
        r = _call(s, {"op": "set", "dev": 0, "reg": "VOUT_SET", "value": 27.0, "client": "ctl"})
        assert r["ok"], r
        s.close()
        # a read-only client reads, and may not write
        v = _curve_req(port, server_public, keys["viewer"])
        assert _call(v, {"op": "get", "dev": 0, "reg": "READ_VOUT"})["ok"]
        r = _call(v, {"op": "set", "dev": 0, "reg": "VOUT_SET", "value": 27.5, "client": "v"})
        assert not r["ok"] and r["error"]["code"] == "forbidden", r
        assert "read-only" in r["error"]["message"], r
        r = _call(v, {"op": "lease", "action": "take", "client": "v", "ttl_s": 5})
        assert not r["ok"] and r["error"]["code"] == "forbidden", r
        v.close()
        assert sim.control.device(0)["registers"]["VOUT_SET"] == 2700
        # a client with a random key pair and the server's public key: refused, logged
        stranger = zmq.curve_keypair()
        x = _curve_req(port, server_public, stranger)
        assert _call(x, {"op": "ping"}, 2000) is None
        x.close()
        p.wait_output("CURVE: refused client key %s" % stranger[0].decode())
        # a client without the keys gets nothing
        plain = ctx.socket(zmq.REQ)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect("tcp://127.0.0.1:%d" % port)
        plain.send_json({"v": 1, "op": "ping"})
        assert not plain.poll(1000)
        plain.close()
        p.stop()


def test_sighup_reload_keeps_old_config_when_invalid():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        ini = gateway_ini(sim, tmp)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            assert c.ok("info")["devices"][0]["limits"]["iout_a"] == [0.9, 30]
            # invalid: refused, old limits stay, the gateway keeps serving
            with open(gw.path, "a") as f:
                f.write("[GATEWAY]\nRetries = 99\n")
            gw.proc.signal(signal.SIGHUP)
            gw.proc.wait_output("keeping the old configuration")
            assert c.ok("info")["devices"][0]["limits"]["iout_a"] == [0.9, 30]
            # valid: a lower charge current limit applies without a restart, and a new
            # telemetry period, which the telemetry states to its clients
            sub = Sub(gw.pub, ["tel/0"])
            ini["DEVICE"]["Id/0/MaxChargeCurrent"] = 2000
            ini["GATEWAY"]["TelemetryPeriodMs"] = 700
            harness.write_ini(gw.path, ini)
            gw.proc.signal(signal.SIGHUP)
            harness.wait_for(lambda: c.ok("info")["devices"][0].get("limits", {}).get(
                "iout_a") == [0.9, 20], what="new limits after reload")
            sub.wait(lambda t, b: b["period_ms"] == 700, what="telemetry stating 700 ms")
            sub.close()
            c.error("set", "out_of_range", dev=0, reg="IOUT_SET", value=25, client="t")
            assert gw.proc.alive()
            assert_no_pacing_violations(sim)


def test_second_gateway_on_same_adapter_is_refused():
    tmp = harness.temp_dir()
    tmp2 = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        with Gateway(gateway_ini(sim, tmp), tmp) as gw:
            other = Gateway(gateway_ini(sim, tmp2), tmp2, wait_online=False)
            try:
                other.proc.wait_output("in use by another process")
                assert other.client.ok("ping")["bus"] == "down"
                # the first gateway's session is untouched (no second C/S5/O handshake)
                for _ in range(5):
                    gw.client.ok("get", dev=0, reg="READ_VOUT")
                assert sim.control.counters()["adapter"]["open"] is True
            finally:
                other.stop()
            assert_no_pacing_violations(sim)


def test_sigterm_clean_exit_and_safe_state_on_exit():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24:battery,canctrl"]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0)
        with Gateway(ini, tmp) as gw:
            gw.client.ok("setpoint", dev=0, client="ctl", mode="discharge", current_a=5,
                         lease_ttl_s=600)
            gw.proc.signal(signal.SIGTERM)
            assert gw.proc.wait_exit(10) == 0
        # default: the device keeps what it was told
        assert sim.control.device(0)["registers"]["OPERATION"] == 1
        ini["GATEWAY"]["SafeStateOnExit"] = True
        with Gateway(ini, tmp) as gw:
            gw.proc.signal(signal.SIGTERM)
            assert gw.proc.wait_exit(10) == 0
        regs = sim.control.device(0)["registers"]
        assert regs["OPERATION"] == 0 and regs["REVERSE_IOUT_SET"] == 90, regs
        assert_no_pacing_violations(sim)


if __name__ == "__main__":
    harness.run_tests()
