"""MQTT over TLS with a real mosquitto and certificates made here with openssl: a broker
whose certificate the daemons cannot accept (signed by another CA) is retried with back-off
for as long as it takes, each failure logged with its reason in words; once the broker has
the right certificate, the bridge and the controller connect within the back-off. A wrong
password is logged as such (not authorised), and retried too."""

import os
import re
import ssl
import subprocess
import time

import harness

T = "tls/bic"
BACKOFF_MAX_S = 30  # common/mqtt_conn.h MQTT_CONN_BACKOFF_MAX_MS
MARGIN_S = 10       # a loaded machine


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_certs(d):
    """ca.pem (the daemons trust it), other-ca.pem, and two server certificates for
    127.0.0.1: good.pem (signed by ca) and bad.pem (signed by other-ca)."""
    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + ".key",
                 "-out", ca + ".pem", "-days", "2", "-subj", "/CN=bic2mqtt test " + ca, cwd=d)
    for name, ca in (("good", "ca"), ("bad", "other-ca")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
                 name + ".csr", "-subj", "/CN=localhost", cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                 "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", "san.cnf",
                 cwd=d)
    # mosquitto started as root reads its key files as the user `mosquitto`
    os.chmod(d, 0o755)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


class TlsBroker:
    """mosquitto with one TLS listener on 127.0.0.1:port serving `cert`."""

    def __init__(self, d, port, cert, password_file=None):
        self.conf = os.path.join(d, "mosquitto-%s.conf" % cert)
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\npersistence false\n" % port)
            f.write("cafile %s/ca.pem\ncertfile %s/%s.pem\nkeyfile %s/%s.key\n"
                    % (d, d, cert, d, cert))
            if password_file:
                f.write("allow_anonymous false\npassword_file %s\n" % password_file)
            else:
                f.write("allow_anonymous true\n")
        self.proc = harness.Process([harness.MOSQUITTO, "-c", self.conf], name="mosquitto",
                                    log_dir=d)
        harness.wait_for(lambda: harness.port_open(port) or not self.proc.alive(),
                         what="mosquitto (TLS) on port %d" % port)
        assert self.proc.alive(), self.proc.output()

    def stop(self):
        self.proc.stop()


def _ini(d, port, **mqtt):
    m = {"BrokerIpAdr": "127.0.0.1", "BrokerPort": port, "TopicMain": T, "KeepAliveSec": 5,
         "TlsCaFile": os.path.join(d, "ca.pem")}
    m.update(mqtt)
    return harness.write_ini(os.path.join(d, "bic2mqtt.ini"), {
        "MQTT": m,
        "GATEWAY": {"ReqEndpoint": "ipc://%s/gw.sock" % d, "PubEndpoint": "ipc://%s/tel.sock" % d},
        "DEVICE": {"Id/0/Type": "BIC2200-24CAN", "Id/0/ChargeVoltage": 2800,
                   "Id/0/DischargeVoltage": 2400, "Id/0/MaxChargeCurrent": 7500,
                   "Id/0/MaxDischargeCurrent": 6000},
        "CHARGE_CONTROL": {"Id/0/TopicPower": "tls/meter"}})


def _daemons(ini, d):
    return [harness.start_program(n, ini, tmp=d) for n in ("bic-mqtt-bridge", "bic-charge-ctl")]


def _count(p, text):
    return p.output().count(text)


def test_reconnect_after_tls_failure():
    d = harness.temp_dir("bic-tls-")
    make_certs(d)
    port = harness.free_port()
    broker = TlsBroker(d, port, "bad")
    daemons = _daemons(_ini(d, port), d)
    why = "TLS handshake failed: the broker's certificate was not accepted"
    # Failures are retried (at least three attempts each) and each one says why.
    harness.wait_for(lambda: all(_count(p, why) >= 3 for p in daemons), 30,
                     what="three logged TLS failures from each daemon")
    for p in daemons:
        assert "retrying in" in p.output(), p.output()
        assert "connected to" not in p.output(), p.output()
    # The broker gets the right certificate (same port): both daemons come back by themselves.
    broker.stop()
    broker = TlsBroker(d, port, "good")
    t_fix = time.monotonic()
    for p in daemons:
        harness.wait_for(lambda p=p: "connected to" in p.output(), BACKOFF_MAX_S + MARGIN_S,
                         what="%s connected after the broker was fixed" % p.name)
    took = time.monotonic() - t_fix
    print("reconnected %.1f s after the broker was fixed" % took)
    # What a user sees: the bridge's state on the broker, read over TLS.
    import paho.mqtt.client as mqtt
    got = []
    try:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
    except AttributeError:
        c = mqtt.Client()
    c.tls_set(ca_certs=os.path.join(d, "ca.pem"), cert_reqs=ssl.CERT_REQUIRED)
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload.decode()))
    c.on_connect = lambda cl, u, f, rc: cl.subscribe(T + "/sys/state")
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        harness.wait_for(lambda: (T + "/sys/state", "running") in got, 15,
                         what="the bridge's running state over TLS")
    finally:
        c.loop_stop()
        c.disconnect()
    for p in daemons:
        p.stop()
    broker.stop()


def test_wrong_password_in_words():
    d = harness.temp_dir("bic-tls-")
    make_certs(d)
    pw = os.path.join(d, "passwd")
    open(pw, "w").close()
    subprocess.run(["mosquitto_passwd", "-b", pw, "bic", "right"], check=True,
                   capture_output=True)
    os.chmod(pw, 0o644)
    port = harness.free_port()
    broker = TlsBroker(d, port, "good", password_file=pw)
    daemons = _daemons(_ini(d, port, BrokerAccUser="bic", BrokerAccPasswd="wrong"), d)
    for p in daemons:
        harness.wait_for(lambda p=p: _count(p, "not authorised: the broker refuses "
                                                  "BrokerAccUser 'bic' with this BrokerAccPasswd")
                         >= 2, 30, what="%s: two refusals in words" % p.name)
        assert "unknown reason" not in p.output(), p.output()
        assert re.search(r"retrying in \d+ ms", p.output()), p.output()
    for p in daemons:
        p.stop()
    broker.stop()


if __name__ == "__main__":
    harness.run_tests()
