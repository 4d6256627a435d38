"""bic-mqtt-bridge's command line and configuration: bad options and invalid files are refused
with a clear message and a non-zero exit (never a start with defaults), --check-config
answers 0/1; and the broker connection settings work for real: user/password against a
broker that requires them, TLS with a CA file, and a client certificate."""

import os
import subprocess
import time

import harness
from bridge_stack import T, device_keys


def run(args, timeout=10):
    p = subprocess.run([harness.program("bic-mqtt-bridge")] + list(args), capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def base_ini(port=1883, **mqtt):
    ini = {"MQTT": {"BrokerIpAdr": "127.0.0.1", "BrokerPort": port, "TopicMain": T},
           "GATEWAY": {"ReqEndpoint": "ipc:///nonexistent/gw.sock",
                       "PubEndpoint": "ipc:///nonexistent/tel.sock"},
           "DEVICE": device_keys(0)}
    ini["MQTT"].update(mqtt)
    return ini


def test_command_line_and_invalid_files():
    tmp = harness.temp_dir()
    rc, out = run(["--bogus"])
    assert rc == 2 and "usage" in out, (rc, out)
    rc, out = run(["-c", os.path.join(tmp, "missing.ini")])
    assert rc == 1 and "missing.ini" in out, (rc, out)
    rc, out = run(["--version"])
    assert rc == 0 and out.startswith("bic-mqtt-bridge "), out

    good = harness.write_ini(os.path.join(tmp, "good.ini"), base_ini())
    rc, out = run(["--check-config", "-c", good])
    assert rc == 0, out
    cases = [
        ({"BrokerPort": 70000}, "BrokerPort"),
        ({"KeepAliveSec": 2}, "KeepAliveSec"),
        ({"PublishPeriodSec": "ten"}, "PublishPeriodSec"),
        ({"ManualLeaseTtlSec": 0}, "ManualLeaseTtlSec"),
        ({"TopicMain": "a/#"}, "TopicMain"),
        ({"HaDiscovery": "maybe"}, "HaDiscovery"),
    ]
    for mqtt, key in cases:
        bad = harness.write_ini(os.path.join(tmp, "bad.ini"), base_ini(**mqtt))
        rc, out = run(["--check-config", "-c", bad])
        assert rc == 1 and key in out, (mqtt, rc, out)
        rc, out = run(["-c", bad])  # the program refuses to start, naming the key
        assert rc == 1 and key in out, (mqtt, rc, out)

    # Settings that only make sense together are checked at start.
    key = harness.write_ini(os.path.join(tmp, "k.ini"), base_ini(TlsCertFile=good))
    rc, out = run(["-c", key])
    assert rc == 1 and "TlsKeyFile" in out, (rc, out)


def make_certs(d):
    def ossl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
         "-keyout", "ca.key", "-out", "ca.crt")
    for name, cn in (("server", "127.0.0.1"), ("client", "bic-bridge")):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % cn,
             "-keyout", name + ".key", "-out", name + ".csr")
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n" if name == "server" else
                    "extendedKeyUsage=clientAuth\n")
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", name + ".crt", "-extfile", ext)
    return {n: os.path.join(d, n) for n in ("ca.crt", "server.crt", "server.key",
                                             "client.crt", "client.key")}


def broker(conf_lines):
    """A private mosquitto with the given listener configuration."""
    d = harness.temp_dir("bic-mosq-")
    port = harness.free_port()
    conf = os.path.join(d, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\npersistence false\n" % port)
        f.write("\n".join(conf_lines) + "\n")
    p = harness.Process([harness.MOSQUITTO, "-c", conf], name="mosquitto", log_dir=d)
    harness.wait_for(lambda: harness.port_open(port) or not p.alive(), 10, what="mosquitto")
    assert p.alive(), p.output()
    return p, port


def wait_connected(proc, timeout=15):
    proc.wait_output("connected to", timeout)


def readable(tmp):
    """mosquitto started as root drops to its own user: let it read the test's files."""
    os.chmod(tmp, 0o755)
    for name in os.listdir(tmp):
        os.chmod(os.path.join(tmp, name), 0o644)


def test_user_password_and_tls():
    tmp = harness.temp_dir()
    pw = os.path.join(tmp, "passwd")
    with open(pw, "w") as f:
        f.write("bic:secret\n")
    subprocess.run(["mosquitto_passwd", "-U", pw], check=True)
    readable(tmp)
    mosq, port = broker(["allow_anonymous false", "password_file %s" % pw])
    try:
        wrong = harness.start_program("bic-mqtt-bridge", base_ini(port, BrokerAccUser="bic",
                                                                   BrokerAccPasswd="wrong"),
                                      tmp=tmp)
        wrong.wait_output("refused", 15)  # says why, keeps retrying, does not exit
        time.sleep(1.5)
        assert wrong.alive(), wrong.output()
        wrong.stop()
        ok = harness.start_program("bic-mqtt-bridge", base_ini(port, BrokerAccUser="bic",
                                                                BrokerAccPasswd="secret"),
                                   tmp=tmp)
        wait_connected(ok)
        ok.stop()
    finally:
        mosq.stop()

    c = make_certs(tmp)
    readable(tmp)
    mosq, port = broker(["cafile %s" % c["ca.crt"], "certfile %s" % c["server.crt"],
                         "keyfile %s" % c["server.key"], "require_certificate true",
                         "allow_anonymous true"])
    try:
        tls = harness.start_program("bic-mqtt-bridge", base_ini(
            port, TlsCaFile=c["ca.crt"], TlsCertFile=c["client.crt"],
            TlsKeyFile=c["client.key"]), tmp=tmp)
        wait_connected(tls)
        tls.stop()
        # Without a client certificate this broker refuses the handshake: no connection.
        nocert = harness.start_program("bic-mqtt-bridge", base_ini(port, TlsCaFile=c["ca.crt"]),
                                       tmp=tmp)
        time.sleep(3)
        assert "connected to" not in nocert.output() and nocert.alive(), nocert.output()
        nocert.stop()
    finally:
        mosq.stop()


if __name__ == "__main__":
    harness.run_tests()
