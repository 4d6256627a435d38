"""deploy/supervisord/bic2mqtt.conf with the real supervisord: the controller restarts and
swaps without touching the gateway or its CAN link, and the device stays safe throughout.

The stack: a private mosquitto, bic-sim on a pty (a device in battery mode, a sunny noon
household so the controller has work to do), and supervisord running the three programs from
the shipped configuration, changed only where the test machine differs (program paths, the
runtime and log directories, the user), on the shipped sample bic2mqtt.ini changed only where
a user would change it (broker, meter topic) plus the test's bus, endpoints and state
directory and a short lease.

Checked: `supervisorctl restart` of the controller, a `kill -9` of it (supervisord restarts
it; the gateway applies its safe state when the dead controller's lease lapses and the new
one takes over), and a swap to a second controller instance; through all of it the
gateway keeps its pid, the simulator's adapter is never reopened, the gateway never
reconnects, and no current above the configured limits ever reaches the device.
"""
import getpass
import grp
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))

import harness  # noqa: E402
from gwtest import Client, Sub  # noqa: E402

from deploy_common import DEPLOY, SRC  # noqa: E402

SLOW = 30.0
LEASE_TTL_S = 4
METER_TOPIC = "test/meter/power"
MAX_CHARGE_A, MAX_DISCHARGE_A = 35.0, 26.0  # the sample's [DEVICE] limits


def edit(text, old, new, count=1):
    """Replaces old by new, insisting that old is there (the shipped file may not drift
    away from what this test adapts)."""
    assert text.count(old) >= count, "expected %r in the shipped file" % old
    return text.replace(old, new)


def set_key(text, key, value):
    pat = re.compile(r"^" + re.escape(key) + r"\s*=.*$", re.M)
    assert pat.search(text), "expected key %s in the sample" % key
    return pat.sub("%s = %s" % (key, value), text, count=1)


def write_ini(tmp, broker, sim):
    with open(os.path.join(DEPLOY, "bic2mqtt.ini")) as f:
        text = f.read()
    # what a user edits
    text = set_key(text, "BrokerIpAdr", broker.host)
    text = set_key(text, "BrokerPort", broker.port)
    text = set_key(text, "Id/0/TopicPower", METER_TOPIC)
    # what differs on a test machine
    run = os.path.join(tmp, "run")
    text = set_key(text, "Can", sim.transport)
    text = set_key(text, "ReqEndpoint", "ipc://%s/gateway.sock" % run)
    text = set_key(text, "PubEndpoint", "ipc://%s/telemetry.sock" % run)
    text = set_key(text, "StateDir", os.path.join(tmp, "state"))
    text = set_key(text, "Id/0/LeaseTtlSec", LEASE_TTL_S)
    os.makedirs(os.path.join(tmp, "state"))
    path = os.path.join(tmp, "bic2mqtt.ini")
    with open(path, "w") as f:
        f.write(text)
    return path, run


def write_supervisor_conf(tmp, ini, run):
    with open(os.path.join(DEPLOY, "supervisord", "bic2mqtt.conf")) as f:
        text = f.read()
    text = edit(text, "/usr/sbin/bic-can-gateway", harness.program("bic-can-gateway"))
    text = edit(text, "/usr/bin/bic-mqtt-bridge", harness.program("bic-mqtt-bridge"))
    text = edit(text, "/usr/bin/bic-charge-ctl", harness.program("bic-charge-ctl"))
    text = edit(text, "/etc/bic2mqtt/bic2mqtt.ini", ini, 3)
    text = edit(text, "/run/bic2mqtt", run, 3)
    text = edit(text, "/var/log/supervisor/", tmp + "/", 3)
    me, my_group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
    text = edit(text, "user=bic2mqtt", "user=" + me, 2)
    text = edit(text, "user=root", "user=" + me)
    if os.getuid() == 0:
        text = edit(text, "chown bic2mqtt:bic2mqtt", "chown %s:%s" % (me, my_group))
        text = edit(text, "--reuid=bic2mqtt --regid=bic2mqtt", "--reuid=%s --regid=%s" % (me, my_group))
    else:  # without root there is nobody to change to
        text = edit(text, "chown bic2mqtt:bic2mqtt %s && " % run, "")
        text = re.sub(r"exec setpriv .*? -- ", "exec ", text)
    conf = os.path.join(tmp, "bic2mqtt.conf")
    with open(conf, "w") as f:
        f.write(text)
    # A second controller instance for the swap; not started by itself.
    with open(os.path.join(tmp, "alt.conf"), "w") as f:
        f.write("[program:bic-charge-ctl-b]\ncommand=%s -c %s\nautostart=false\n"
                "autorestart=true\nstopsignal=TERM\nstopwaitsecs=15\nredirect_stderr=true\n"
                "stdout_logfile=%s/%%(program_name)s.log\n"
                % (harness.program("bic-charge-ctl"), ini, tmp))
    main = os.path.join(tmp, "supervisord.conf")
    with open(main, "w") as f:
        f.write("[supervisord]\nlogfile=%(t)s/supervisord.log\npidfile=%(t)s/supervisord.pid\n"
                "childlogdir=%(t)s\n\n"
                "[unix_http_server]\nfile=%(t)s/supervisor.sock\nchmod=0700\n\n"
                "[rpcinterface:supervisor]\n"
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
                "[supervisorctl]\nserverurl=unix://%(t)s/supervisor.sock\n\n"
                "[include]\nfiles = %(t)s/bic2mqtt.conf %(t)s/alt.conf\n" % {"t": tmp})
    return main


class Supervisor:
    def __init__(self, conf, tmp):
        self.conf = conf
        self.proc = harness.Process(["supervisord", "-n", "-c", conf], name="supervisord",
                                    log_dir=tmp)

    def ctl(self, *args, check=True):
        r = subprocess.run(["supervisorctl", "-c", self.conf] + list(args), capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("supervisorctl %s: rc %d: %s%s" % (" ".join(args), r.returncode,
                                                                  r.stdout, r.stderr))
        return r.stdout

    def status(self):
        """{name: (state, pid or None)}."""
        out = {}
        for line in self.ctl("status", check=False).splitlines():
            parts = line.split()
            if len(parts) >= 2:
                m = re.search(r"pid (\d+)", line)
                out[parts[0]] = (parts[1], int(m.group(1)) if m else None)
        return out

    def pid(self, name):
        state, pid = self.status().get(name, (None, None))
        return pid if state == "RUNNING" else None

    def running(self, names):
        """{name: pid} when all names are RUNNING, else None."""
        st = self.status()
        pids = {n: st[n][1] for n in names if n in st and st[n][0] == "RUNNING"}
        return pids if len(pids) == len(names) else None

    def wait_running(self, names, timeout=SLOW):
        return harness.wait_for(lambda: self.running(names), timeout,
                                what="%s RUNNING" % ", ".join(names))


class SafetyWatch:
    """Samples the simulator in the background: no current above the configured limits may
    reach the device. Judged on what the gateway writes (the current registers in every
    write frame the simulator received), on the current register of the direction the
    device runs in, and on the measured current. (A register the gateway never wrote may
    hold the device's own power-on default, which can be higher; it does not act while the
    device runs the other way.)"""

    IOUT_SET, REVERSE_IOUT_SET = 0x0030, 0x0130

    def __init__(self, endpoint):
        self.control = harness.SimControl(endpoint)
        self.samples, self.writes, self.bad = 0, 0, []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _check(self):
        d = self.control.device(0)
        r = d["registers"]
        self.samples += 1
        if r["OPERATION"] == 1:
            if r["DIRECTION_CTRL"] == 0 and r["IOUT_SET"] > MAX_CHARGE_A * 100:
                self.bad.append("charging with IOUT_SET %d" % r["IOUT_SET"])
            if r["DIRECTION_CTRL"] == 1 and r["REVERSE_IOUT_SET"] > MAX_DISCHARGE_A * 100:
                self.bad.append("discharging with REVERSE_IOUT_SET %d" % r["REVERSE_IOUT_SET"])
        if d["dc_a"] > MAX_CHARGE_A + 0.5 or d["dc_a"] < -(MAX_DISCHARGE_A + 0.5):
            self.bad.append("current %.2f A" % d["dc_a"])
        for f in self.control.frames(200):
            if f["dir"] != "rx" or f["dlc"] < 4:
                continue
            data = bytes.fromhex(f["data"])
            cmd, val = data[0] | data[1] << 8, data[2] | data[3] << 8
            if cmd in (self.IOUT_SET, self.REVERSE_IOUT_SET):
                self.writes += 1
                limit = MAX_CHARGE_A if cmd == self.IOUT_SET else MAX_DISCHARGE_A
                if val > limit * 100:
                    self.bad.append("write of %#06x = %d" % (cmd, val))

    def _run(self):
        while not self.stopping:
            self._check()
            time.sleep(0.2)

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.control.close()


def lease_holder(client):
    lease = client.ok("info", dev=0)["devices"][0]["lease"]
    return lease["holder"] if lease else None


def test_restart_kill_and_swap_the_controller():
    tmp = harness.temp_dir("bic-supervisord-")
    profile = os.path.join(SRC, "data", "profiles", "p1_clear_march.csv")
    with harness.Mosquitto() as broker, harness.Sim(
            devices=["0:24:battery,canctrl"], mqtt=broker, meter_topic=METER_TOPIC,
            meter_period_ms=1000, household=profile, args=["--start-s", "43200"]) as sim:
        ini, run = write_ini(tmp, broker, sim)
        sup = Supervisor(write_supervisor_conf(tmp, ini, run), tmp)
        gw_name, br_name = "bic2mqtt:bic-can-gateway", "bic2mqtt:bic-mqtt-bridge"
        ctl_name, alt_name = "bic2mqtt:bic-charge-ctl", "bic-charge-ctl-b"
        watch = None
        try:
            pids = sup.wait_running([gw_name, br_name, ctl_name])
            gw_pid = pids[gw_name]
            assert os.path.realpath("/proc/%d/exe" % gw_pid) == \
                os.path.realpath(harness.program("bic-can-gateway")), \
                "supervisord watches the gateway itself, not a wrapper"
            c = Client("ipc://%s/gateway.sock" % run)
            harness.wait_for(lambda: c.ok("devices")["devices"][0]["online"], SLOW, what="device online")
            ctl_client = "charge-ctl-0-%d" % pids[ctl_name]
            harness.wait_for(lambda: lease_holder(c) == ctl_client, SLOW, what="controller holds the lease")
            opens = sim.control.counters()["adapter"]["open"]
            watch = SafetyWatch(sim.endpoint)
            sub = Sub("ipc://%s/telemetry.sock" % run, ["evt/0", "gw"])

            # 1. restart through supervisorctl: a new controller, nothing else touched
            sup.ctl("restart", ctl_name)
            pids2 = sup.wait_running([gw_name, br_name, ctl_name])
            assert pids2[ctl_name] != pids[ctl_name], "the controller was not restarted"
            assert pids2[gw_name] == gw_pid and pids2[br_name] == pids[br_name], (pids, pids2)
            ctl_client = "charge-ctl-0-%d" % pids2[ctl_name]
            harness.wait_for(lambda: lease_holder(c) == ctl_client, SLOW,
                             what="the restarted controller holds the lease")

            # 2. kill -9: supervisord restarts it; the dead one's lease lapses into the safe state
            os.kill(pids2[ctl_name], 9)
            def restarted():
                p = sup.running([gw_name, br_name, ctl_name])
                return p if p and p[ctl_name] != pids2[ctl_name] else None
            pids3 = harness.wait_for(restarted, SLOW, what="supervisord restarts the killed controller")
            sub.event(0, "lease_lapsed", timeout=SLOW)
            safe = sub.event(0, "safe_state", timeout=SLOW)
            assert safe["state"] == "off", safe
            ctl_client = "charge-ctl-0-%d" % pids3[ctl_name]
            harness.wait_for(lambda: lease_holder(c) == ctl_client, SLOW,
                             what="the new controller takes over after the lapse")
            assert pids3[gw_name] == gw_pid and pids3[br_name] == pids[br_name], (pids, pids3)

            # 3. swap: stop the controller (it idles the device and releases), start another
            harness.wait_for(lambda: sim.control.device(0)["registers"]["OPERATION"] == 1, SLOW,
                             what="the controller runs the device (noon sun: charging)")
            sup.ctl("stop", ctl_name)
            assert lease_holder(c) is None, "a stopped controller releases its lease"
            assert sim.control.device(0)["registers"]["OPERATION"] == 0, "idle after the stop"
            sup.ctl("start", alt_name)
            pids4 = sup.wait_running([gw_name, br_name, alt_name])
            alt_client = "charge-ctl-0-%d" % pids4[alt_name]
            harness.wait_for(lambda: lease_holder(c) == alt_client, SLOW,
                             what="the second instance holds the lease")
            assert pids4[gw_name] == gw_pid and pids4[br_name] == pids[br_name], (pids, pids4)

            # the gateway and its CAN link never moved
            assert sim.control.counters()["adapter"]["open"] == opens, "the adapter was reopened"
            _, health = sub.wait(lambda tp, b: tp == "gw", SLOW, "gw health")
            assert health["bus"] == "up" and health["reconnects"] == 0, health
            assert c.ok("ping")["bus"] == "up"
            watch.stop()
            assert watch.samples > 10 and watch.writes > 0 and not watch.bad, \
                (watch.samples, watch.writes, watch.bad[:5])
            watch = None
            sub.close()
            c.close()

            # 4. the group stops as a whole, and nothing is left
            sup.ctl("stop", alt_name)
            sup.ctl("stop", "bic2mqtt:")
            st = sup.status()
            assert all(s[0] in ("STOPPED", "EXITED") for s in st.values()), st
            assert not os.path.exists("/proc/%d" % gw_pid), "the gateway is still running"
        finally:
            if watch:
                watch.stop()
            sup.ctl("shutdown", check=False)
            sup.proc.wait_exit(SLOW)


if __name__ == "__main__":
    harness.run_tests()
