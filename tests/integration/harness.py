"""Shared harness for bic2mqtt's integration tests.

Starts real processes from the build tree (a private mosquitto, bic-sim on a pty, the
gateway, the bridge, the controller), talks to them (bic-sim's control socket, MQTT) and
makes sure nothing is left running, whatever happens. Python 3 standard library plus
python3-zmq and python3-paho-mqtt (Debian packages) only.

Conventions for a test file (tests/<area>/test_*.py, registered with bic_add_py_test):

    import harness
    def test_something():
        with harness.Mosquitto() as broker, harness.Sim(devices=["0:24"]) as sim:
            ...
    if __name__ == "__main__":
        harness.run_tests()

run_tests() runs every test_* function of the calling module in file order (or those named
on the command line), prints each result and "N passed, N failed", and exits non-zero when
anything failed.
"""

import atexit
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import zmq
except ImportError:  # the harness still imports; SimControl reports what is missing
    zmq = None

try:
    import paho.mqtt.client as paho_mqtt
except ImportError:
    paho_mqtt = None

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("BIC_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("BIC_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")

# Generous defaults: the machines running the tests are shared and noisy.
DEFAULT_TIMEOUT = 10.0


class HarnessError(Exception):
    """A process could not be started or a condition was not met in time."""


# ---------------------------------------------------------------------------------------
# Paths and ports
# ---------------------------------------------------------------------------------------

def source_path(*parts):
    return os.path.join(SOURCE_DIR, *parts)


def build_path(*parts):
    return os.path.join(BUILD_DIR, *parts)


_PROGRAM_DIRS = {
    "bic-sim": "sim",
    "bic-can-gateway": "can-gateway",
    "bicctl": "can-gateway",
    "bic-mqtt-bridge": "mqtt-bridge",
    "bic-charge-ctl": "charge-ctl",
    "can-probe": "tests/sim",
}


def program(name):
    """Path of a program built in the build tree (searched if it is not where expected)."""
    sub = _PROGRAM_DIRS.get(name)
    if sub:
        p = build_path(sub, name)
        if os.access(p, os.X_OK):
            return p
    for root, dirs, files in os.walk(BUILD_DIR):
        dirs[:] = [d for d in dirs if d != "CMakeFiles"]
        if name in files and os.access(os.path.join(root, name), os.X_OK):
            return os.path.join(root, name)
    raise HarnessError("program %s not found under %s (is it built?)" % (name, BUILD_DIR))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def cpu_seconds(pid):
    """User + system CPU time a live process has used so far (/proc/PID/stat), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wakeups(pid):
    """Times a live process's threads have gone to sleep and been woken so far (voluntary
    context switches, /proc/PID/task/*/status)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            total += sum(int(line.split()[1]) for line in f
                         if line.startswith("voluntary_ctxt_switches:"))
    return total


# ---------------------------------------------------------------------------------------
# Waiting
# ---------------------------------------------------------------------------------------

def wait_for(pred, timeout=DEFAULT_TIMEOUT, interval=0.05, what="condition"):
    """Calls pred() until it returns a true value (returned) or the overall deadline passes
    (HarnessError naming what). Exceptions from pred count as "not yet" and the last one is
    reported on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported below
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1f s waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise HarnessError(msg)
        time.sleep(interval)


def wait_for_path(path, timeout=DEFAULT_TIMEOUT):
    return wait_for(lambda: os.path.lexists(path), timeout, what="path %s" % path)


def wait_for_port(port, timeout=DEFAULT_TIMEOUT, host="127.0.0.1"):
    return wait_for(lambda: port_open(port, host), timeout, what="port %s:%d" % (host, port))


# ---------------------------------------------------------------------------------------
# Temporary directories and processes (always cleaned up)
# ---------------------------------------------------------------------------------------

_SETPRIV = shutil.which("setpriv")
_live_processes = []
_started_processes = []  # every process of the current test, for failure reports
_temp_dirs = []


def temp_dir(prefix="bic-test-"):
    """A fresh directory removed at exit. Kept when BIC_KEEP_TEMP is set (for debugging)."""
    d = tempfile.mkdtemp(prefix=prefix)
    _temp_dirs.append(d)
    return d


class Process:
    """A started program. Output (stdout and stderr) goes to a log file; output() reads it.
    stop() sends SIGTERM, then SIGKILL after a grace period; it is also called at exit."""

    def __init__(self, args, name=None, env=None, cwd=None, log_dir=None, stdin=None):
        self.args = [str(a) for a in args]
        self.name = name or os.path.basename(self.args[0])
        log_dir = log_dir or temp_dir()
        self.log_path = os.path.join(log_dir, "%s-%d.log" % (self.name, len(_live_processes)))
        self._log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        # The program gets SIGTERM if this test process dies without cleaning up (e.g. killed
        # by ctest on a timeout): nothing is left running in any case.
        argv = self.args
        if _SETPRIV:
            argv = [_SETPRIV, "--pdeathsig", "TERM", "--"] + self.args
        try:
            self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                         env=full_env, cwd=cwd, start_new_session=True)
        except OSError as e:
            self._log.close()
            raise HarnessError("cannot start %s: %s" % (self.args[0], e)) from e
        self.pid = self.proc.pid
        _live_processes.append(self)
        _started_processes.append(self)

    def alive(self):
        return self.proc.poll() is None

    @property
    def returncode(self):
        return self.proc.poll()

    def output(self):
        if not self._log.closed:
            self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_output(self, text, timeout=DEFAULT_TIMEOUT):
        """Waits until text appears in the output; returns the output."""
        return wait_for(lambda: text in self.output() and self.output(), timeout,
                        what="'%s' in the output of %s" % (text, self.name))

    def wait_exit(self, timeout=DEFAULT_TIMEOUT):
        """Waits for the process to exit by itself; returns its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError("%s did not exit within %.1f s" % (self.name, timeout))

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=5.0):
        """SIGTERM, wait, then SIGKILL the process group. Returns the exit code."""
        if self.alive():
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()
        return self.proc.returncode

    def kill(self):
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
        self._reap()

    def _reap(self):
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # Children the program left in its session go too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        if not self._log.closed:
            self._log.close()
        if self in _live_processes:
            _live_processes.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def start_process(args, **kw):
    return Process(args, **kw)


@atexit.register
def _cleanup():
    for p in list(_live_processes):
        try:
            p.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    if not os.environ.get("BIC_KEEP_TEMP"):
        for d in _temp_dirs:
            shutil.rmtree(d, ignore_errors=True)


def _on_signal(signum, frame):
    _cleanup()
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except (ValueError, OSError):
        pass


# ---------------------------------------------------------------------------------------
# Configuration files
# ---------------------------------------------------------------------------------------

def ini_text(sections):
    """Ini text from {section: {key: value}}; keys keep their spelling ("Id/0/VoltageMax");
    booleans become 1/0; a value None omits the key."""
    out = []
    for sec, keys in sections.items():
        out.append("[%s]" % sec)
        for k, v in keys.items():
            if v is None:
                continue
            if isinstance(v, bool):
                v = 1 if v else 0
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


def write_ini(path, sections):
    """Writes an ini file from a dict (see ini_text) and returns its path."""
    with open(path, "w") as f:
        f.write(ini_text(sections))
    return path


def start_program(name, ini=None, args=(), tmp=None, config_flag="-c", **kw):
    """Starts a built program. ini may be a dict (written to TMP/<name>.ini) or a path; it is
    passed as `-c PATH`. Returns the Process."""
    tmp = tmp or temp_dir()
    argv = [program(name)]
    if ini is not None:
        path = ini if isinstance(ini, str) else write_ini(os.path.join(tmp, name + ".ini"), ini)
        argv += [config_flag, path]
    argv += list(args)
    return Process(argv, name=name, log_dir=tmp, **kw)


# ---------------------------------------------------------------------------------------
# mosquitto
# ---------------------------------------------------------------------------------------

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """A private broker on a free loopback port (anonymous, no persistence)."""

    def __init__(self, port=None, timeout=DEFAULT_TIMEOUT):
        self.dir = temp_dir("bic-mosq-")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % self.port)
        self.proc = Process([MOSQUITTO, "-c", self.conf], name="mosquitto", log_dir=self.dir)
        try:
            wait_for(lambda: port_open(self.port) or not self.proc.alive(), timeout,
                     what="mosquitto on port %d" % self.port)
            if not self.proc.alive():
                raise HarnessError("mosquitto exited: %s" % self.proc.output())
        except Exception:
            self.proc.kill()
            raise

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def stop(self):
        self.proc.stop()

    def restart(self, timeout=DEFAULT_TIMEOUT):
        """Stops the broker and starts a new one on the same port."""
        self.stop()
        self.proc = Process([MOSQUITTO, "-c", self.conf], name="mosquitto", log_dir=self.dir)
        wait_for_port(self.port, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class MqttClient:
    """A paho client on its own network thread that records every message it receives."""

    def __init__(self, broker, client_id=None, subscribe=("#",), timeout=DEFAULT_TIMEOUT):
        if paho_mqtt is None:
            raise HarnessError("python3-paho-mqtt is not installed")
        import threading
        self._lock = threading.Lock()
        self.messages = []  # (monotonic time, topic, payload str, retain)
        self._connected = False
        cid = client_id or "bic-test-%d-%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)
        try:  # paho 2.x
            self.client = paho_mqtt.Client(paho_mqtt.CallbackAPIVersion.VERSION1, client_id=cid)
        except AttributeError:  # paho 1.x
            self.client = paho_mqtt.Client(client_id=cid)
        self._subs = list(subscribe)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        host, port = (broker.host, broker.port) if hasattr(broker, "port") else broker
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        wait_for(lambda: self._connected, timeout, what="MQTT connection to %s:%d" % (host, port))

    def _on_connect(self, client, userdata, flags, rc):
        if rc == 0:
            for t in self._subs:
                client.subscribe(t, qos=0)
            self._connected = True

    def _on_disconnect(self, client, userdata, rc):
        self._connected = False

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.messages.append((time.monotonic(), msg.topic,
                                  msg.payload.decode("utf-8", "replace"), bool(msg.retain)))

    def subscribe(self, topic):
        self._subs.append(topic)
        self.client.subscribe(topic, qos=0)

    def publish(self, topic, payload, retain=False, qos=0):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos > 0:
            info.wait_for_publish()
        return info

    def clear(self):
        with self._lock:
            self.messages = []

    def received(self, topic=None):
        """[(t, topic, payload, retain)] so far, optionally for one topic."""
        with self._lock:
            return [m for m in self.messages if topic is None or m[1] == topic]

    def last(self, topic):
        msgs = self.received(topic)
        return msgs[-1][2] if msgs else None

    def wait_message(self, topic, pred=None, timeout=DEFAULT_TIMEOUT, after=None):
        """Waits for a message on topic (received after monotonic time `after`, if given)
        whose payload satisfies pred; returns the payload."""
        def find():
            for t, tp, payload, _ in self.received(topic):
                if after is not None and t < after:
                    continue
                if pred is None or pred(payload):
                    return payload
            return None
        return wait_for(find, timeout, what="MQTT message on %s" % topic)

    def close(self):
        try:
            self.client.loop_stop()
            self.client.disconnect()
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---------------------------------------------------------------------------------------
# bic-sim
# ---------------------------------------------------------------------------------------

class SimControl:
    """Client of bic-sim's control socket (JSON over ZeroMQ REQ/REP, Lazy Pirate: on a
    timeout the socket is recreated and the request retried a bounded number of times)."""

    def __init__(self, endpoint, timeout=5.0, retries=2):
        if zmq is None:
            raise HarnessError("python3-zmq is not installed")
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.ctx = zmq.Context.instance()
        self.sock = None
        self._connect()

    def _connect(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)

    def raw(self, data):
        """Sends raw bytes, returns the decoded JSON reply."""
        for attempt in range(self.retries + 1):
            self.sock.send(data)
            if self.sock.poll(int(self.timeout * 1000)):
                return json.loads(self.sock.recv().decode("utf-8"))
            self._connect()
        raise HarnessError("no reply from bic-sim control %s" % self.endpoint)

    def request(self, cmd, **fields):
        """{"cmd": cmd, ...fields} -> reply dict (ok or error, as sent)."""
        msg = dict(fields)
        msg["cmd"] = cmd
        return self.raw(json.dumps(msg).encode())

    def ok(self, cmd, **fields):
        """As request(), but raises HarnessError unless the reply is ok."""
        r = self.request(cmd, **fields)
        if not r.get("ok"):
            raise HarnessError("bic-sim %s failed: %s" % (cmd, r.get("error")))
        return r

    def state(self, dev=None):
        return self.ok("state", **({} if dev is None else {"dev": dev}))

    def device(self, dev=0):
        """The true state of one device (dict, see docs/simulator.md)."""
        return self.state(dev)["devices"][0]

    def counters(self, dev=None):
        return self.ok("counters", **({} if dev is None else {"dev": dev}))

    def eeprom_writes(self, dev=0):
        """{register name: persisted writes} of one device."""
        return self.counters(dev)["devices"][0]["eeprom_writes"]

    def fault(self, name, on=True, dev=None):
        return self.ok("fault", name=name, on=on, **({} if dev is None else {"dev": dev}))

    def power_cycle(self, dev=None):
        return self.ok("power_cycle", **({} if dev is None else {"dev": dev}))

    def ac(self, on, dev=None):
        return self.ok("ac", on=on, **({} if dev is None else {"dev": dev}))

    def remote(self, on, dev=None):
        return self.ok("remote", on=on, **({} if dev is None else {"dev": dev}))

    def battery(self, dev=None, **fields):
        return self.ok("battery", **fields, **({} if dev is None else {"dev": dev}))

    def set(self, **options):
        return self.ok("set", **options)

    def frames(self, max=100):
        return self.ok("frames", max=max)["frames"]

    def household(self):
        return self.ok("household")["household"]

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None


class Sim:
    """bic-sim on a pty (slcan) with a control socket, both in a temporary directory.

        with Sim(devices=["0:24:battery,canctrl"]) as sim:
            sim.transport      # "slcan:/tmp/.../can0" for the gateway's ini
            sim.control.device(0)["dc_a"]
    """

    def __init__(self, devices=("0:24",), args=(), household=None, speed=None, mqtt=None,
                 meter_topic=None, meter_period_ms=None, timeout=DEFAULT_TIMEOUT, tmp=None):
        self.dir = tmp or temp_dir("bic-sim-")
        self.pty_path = os.path.join(self.dir, "can0")
        self.endpoint = "ipc://" + os.path.join(self.dir, "sim.ctl")
        argv = [program("bic-sim"), "--slcan-pty", self.pty_path, "--control", self.endpoint]
        for d in devices:
            argv += ["--device", d]
        if household:
            argv += ["--household", household]
        if speed:
            argv += ["--speed", speed]
        if mqtt:
            argv += ["--mqtt", mqtt.address if hasattr(mqtt, "address") else mqtt]
            if meter_topic:
                argv += ["--meter-topic", meter_topic]
            if meter_period_ms:
                argv += ["--meter-period-ms", meter_period_ms]
        argv += list(args)
        self.proc = Process(argv, name="bic-sim", log_dir=self.dir)
        self.control = None
        try:
            wait_for(lambda: os.path.lexists(self.pty_path) or not self.proc.alive(), timeout,
                     what="bic-sim pty %s" % self.pty_path)
            if not self.proc.alive():
                raise HarnessError("bic-sim exited (%s): %s" % (self.proc.returncode,
                                                               self.proc.output()))
            self.control = SimControl(self.endpoint)
            self.control.state()
        except Exception:
            self.stop()
            raise

    @property
    def transport(self):
        """The gateway's transport spec for this simulator."""
        return "slcan:" + self.pty_path

    def output(self):
        return self.proc.output()

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


# ---------------------------------------------------------------------------------------
# A minimal slcan host, for tests that need to speak to the pty byte by byte
# ---------------------------------------------------------------------------------------

class SlcanHost:
    """Opens a pty/tty in raw mode and exchanges slcan lines with the adapter side."""

    def __init__(self, path):
        import termios
        import tty
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIOFLUSH)
        self.buf = b""

    def write(self, data):
        if isinstance(data, str):
            data = data.encode("ascii")
        os.write(self.fd, data)

    def read_for(self, seconds):
        """Everything that arrives within the given time."""
        import select
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    self.buf += os.read(self.fd, 4096)
                except BlockingIOError:
                    pass
        out, self.buf = self.buf, b""
        return out

    def read_until(self, pred, timeout=DEFAULT_TIMEOUT):
        """Reads until pred(bytes so far) is true; returns the bytes (and keeps none)."""
        import select
        end = time.monotonic() + timeout
        while not pred(self.buf):
            left = end - time.monotonic()
            if left <= 0:
                raise HarnessError("slcan: timed out, got %r" % self.buf)
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    self.buf += os.read(self.fd, 4096)
                except BlockingIOError:
                    pass
        out, self.buf = self.buf, b""
        return out

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---------------------------------------------------------------------------------------
# Test runner
# ---------------------------------------------------------------------------------------

SKIP_RC = 77  # ctest's SKIP_RETURN_CODE for these tests (CMakeLists.txt)


def skip_file(reason):
    """Ends the test program as skipped: this machine lacks a capability that every test of
    the file needs (never a missing package: tools/deps.sh installs those). Prints the reason
    on a "SKIP:" line, which the summary of `make test` lists (tools/test-skips.sh)."""
    print("SKIP: %s" % reason, flush=True)
    _cleanup()
    sys.exit(SKIP_RC)


def run_tests(module_globals=None, argv=None):
    """Runs the test_* functions of the caller's module in file order (or those named in
    argv), prints a line per test and "N passed, N failed", and exits 1 on any failure.
    A module without any test_* function fails too: a renamed or emptied file must not
    pass by running nothing."""
    if module_globals is None:
        module_globals = inspect.stack()[1].frame.f_globals
    argv = sys.argv[1:] if argv is None else argv
    tests = [(name, fn) for name, fn in module_globals.items()
             if name.startswith("test_") and callable(fn)]
    tests.sort(key=lambda t: getattr(getattr(t[1], "__code__", None), "co_firstlineno", 0))
    if argv:
        unknown = [a for a in argv if a not in dict(tests)]
        if unknown:
            print("unknown test(s): %s" % ", ".join(unknown))
            sys.exit(2)
        tests = [t for t in tests if t[0] in argv]
    if not tests:
        print("no test_* function found: 0 tests run, which is a failure")
        _cleanup()
        sys.exit(1)
    passed = failed = 0
    for name, fn in tests:
        start = time.monotonic()
        del _started_processes[:]
        try:
            fn()
        except Exception:  # noqa: BLE001 - every failure is reported
            failed += 1
            print("FAIL %s (%.1f s)" % (name, time.monotonic() - start))
            traceback.print_exc()
            for p in list(_started_processes):
                out = p.output()
                if out:
                    print("---- %s output (last 3000 characters) ----" % p.name)
                    print(out[-3000:])
        else:
            passed += 1
            print("ok   %s (%.1f s)" % (name, time.monotonic() - start))
        finally:
            for p in list(_live_processes):
                p.kill()
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    _cleanup()
    sys.exit(1 if failed else 0)
