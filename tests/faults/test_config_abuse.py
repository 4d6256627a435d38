"""Odd configuration files and --check-config against the real programs: a path that is not
a regular file (a device such as /dev/zero, a FIFO with no writer, a directory) or a file
above 1 MiB is refused at once with a clear message by every program that reads the ini;
--check-config refuses what the program itself would refuse at start (a controller file
without a device, an endpoint the gateway cannot bind, a TLS file that is not there); a
StateDir that cannot be written stops the gateway at start; every program answers
--version."""

import os
import subprocess
import time

import harness

READERS = ["bic-can-gateway", "bic-mqtt-bridge", "bic-charge-ctl"]
PROGRAMS = READERS + ["bicctl", "bic-sim"]


def _run(args, timeout=10):
    t0 = time.monotonic()
    p = subprocess.run([str(a) for a in args], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace"), time.monotonic() - t0


def _refused(args, words, within=None):
    rc, out, took = _run(args)
    assert rc != 0, "%s: exit 0, expected a refusal: %s" % (" ".join(map(str, args)), out)
    for w in words:
        assert w in out, "%s: '%s' not in the message: %s" % (" ".join(map(str, args)), w, out)
    if within is not None:
        assert took < within, "%s took %.2f s (allowed %.1f s)" % (args, took, within)
    return out


def test_not_a_regular_file():
    tmp = harness.temp_dir()
    fifo = os.path.join(tmp, "fifo.ini")
    os.mkfifo(fifo)
    cases = [("/dev/zero", "a character device"), (fifo, "a FIFO"), (tmp, "a directory")]
    for name in READERS:
        for path, what in cases:
            for extra in ([], ["--check-config"]):
                _refused([harness.program(name), "-c", path] + extra,
                         ["not a regular file", what], within=1.0)
    for path, what in cases:
        _refused([harness.program("bicctl"), "-c", path, "info"],
                 ["not a regular file", what], within=1.0)


def test_file_too_big():
    tmp = harness.temp_dir()
    big = os.path.join(tmp, "big.ini")
    with open(big, "w") as f:
        f.write("[ALL]\n")
        f.write(("; " + "x" * 1021 + "\n") * 1100)  # 1.1 MiB of comments
    for name in READERS:
        _refused([harness.program(name), "-c", big, "--check-config"], ["at most 1048576"],
                 within=1.0)


def test_check_config_runs_the_start_checks():
    tmp = harness.temp_dir()
    empty = os.path.join(tmp, "empty.ini")
    open(empty, "w").close()
    # An empty file: the controller has no device to drive.
    _refused([harness.program("bic-charge-ctl"), "-c", empty, "--check-config"],
             ["[CHARGE_CONTROL] has no Id/X/ keys"])
    # A host name: ZeroMQ binds addresses and interfaces only.
    lh = harness.write_ini(os.path.join(tmp, "localhost.ini"),
                           {"GATEWAY": {"ReqEndpoint": "tcp://localhost:5555"}})
    _refused([harness.program("bic-can-gateway"), "-c", lh, "--check-config"],
             ["ReqEndpoint", "tcp://localhost:5555", "host name cannot be bound"])
    ok = harness.write_ini(os.path.join(tmp, "loopback.ini"),
                           {"GATEWAY": {"ReqEndpoint": "tcp://127.0.0.1:5555",
                                        "PubEndpoint": "tcp://lo:5556"}})
    rc, out, _ = _run([harness.program("bic-can-gateway"), "-c", ok, "--check-config"])
    assert rc == 0, out
    # A CA file that is not there (libmosquitto would only say "Invalid function arguments").
    missing = os.path.join(tmp, "no-such-ca.pem")
    tls = harness.write_ini(os.path.join(tmp, "tls.ini"), {
        "MQTT": {"TlsCaFile": missing},
        "CHARGE_CONTROL": {"Id/0/TopicPower": "home/meter/power"}})
    for name in ("bic-mqtt-bridge", "bic-charge-ctl"):
        _refused([harness.program(name), "-c", tls, "--check-config"],
                 ["TlsCaFile", missing, "No such file"])
        # and the same at start, at once
        _refused([harness.program(name), "-c", tls], ["TlsCaFile", missing], within=2.0)


def test_state_dir_not_writable():
    """A directory without write permission for the gateway's user (as root the gateway runs
    as nobody here, since root may write anywhere), and a path that is a file."""
    import shutil
    tmp = harness.temp_dir()
    os.chmod(tmp, 0o755)
    state = os.path.join(tmp, "state")
    os.mkdir(state, 0o555)
    not_dir = os.path.join(tmp, "a-file")
    open(not_dir, "w").close()
    wrap = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to run the gateway unprivileged"
        wrap = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"]
    for path in (state, not_dir):
        ini = harness.write_ini(os.path.join(tmp, "gw.ini"), {"GATEWAY": {
            "Can": "slcan:" + os.path.join(tmp, "no-adapter"), "StateDir": path,
            "ReqEndpoint": "ipc://%s/gw.sock" % tmp, "PubEndpoint": "ipc://%s/tel.sock" % tmp}})
        os.chmod(ini, 0o644)
        _refused(wrap + [harness.program("bic-can-gateway"), "-c", ini],
                 ["StateDir", path, "cannot be written"], within=5.0)


def test_version():
    for name in PROGRAMS:
        rc, out, _ = _run([harness.program(name), "--version"])
        assert rc == 0 and out.startswith(name + " "), "%s --version: %d %r" % (name, rc, out)


if __name__ == "__main__":
    harness.run_tests()
