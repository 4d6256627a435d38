"""The systemd units of deploy/systemd, run by a real systemd, inside the guest kernel.

Runs under `tools/uml/run-in-guest.sh --systemd` (see CMakeLists.txt): systemd is the guest's
init, the host's files are a read-only layer under a tmpfs, so the test installs the units,
the sysusers and tmpfiles entries and the sample configuration as a package would, creates
the user, and drives the services with systemctl. bic-sim's slcan pty is attached to the
kernel's slcan driver, which makes it the CAN interface can0 (as a USB-CAN adapter would
be); bic-can-up@can0.service sets its bit rate and brings it up, and the gateway uses
socketcan:can0. mosquitto runs on 127.0.0.1:1883 as an ordinary process of the test.

Checked: `systemctl enable --now bic2mqtt.target` enables the three services and brings
them up (Type=notify: READY=1 from each), can0 at 250 kbit/s first (the bit rate reaches the
adapter); the hardening of the units is in force, with the users and groups the docs
promise; the bridge and the controller, as dynamic users, reach the gateway's sockets in
/run/bic2mqtt through the group bic2mqtt and read the 0640 configuration (the controller
takes the lease, the bridge publishes on MQTT); `systemctl reload` re-reads the configuration
in place; restarting or stopping the controller and restarting the bridge leave the gateway's
process alone, and a gateway restart leaves its clients running and reconnecting; a killed
service is restarted on its own (Restart=on-failure); a gateway that stops sending
WATCHDOG=1 is killed and restarted by the watchdog; the target stops all; and
systemd-networkd with 80-bic2mqtt-can.network brings can0 up at 250 kbit/s as well.
"""
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))

import harness  # noqa: E402
from gwtest import Client  # noqa: E402

SRC = harness.SOURCE_DIR
DEPLOY = os.path.join(SRC, "deploy")
UNITS = ("bic-can-gateway.service", "bic-mqtt-bridge.service", "bic-charge-ctl.service")
GW, BRIDGE, CTL = UNITS
METER_TOPIC = "test/meter/power"
TOPIC_MAIN = "haus/power/bat/bic2mqtt"
SLOW = 40.0
N_SLCAN = 17  # the slcan line discipline (linux/tty.h)


_t0 = time.monotonic()


def phase(name):
    print("%6.1f s  %s" % (time.monotonic() - _t0, name), flush=True)


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("%s: rc %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r.stdout


def show(unit, prop):
    return sh("systemctl", "show", "-p", prop, "--value", unit).strip()


def main_pid(unit):
    return int(show(unit, "MainPID"))


def active(unit):
    return sh("systemctl", "is-active", unit, check=False).strip() == "active"


def proc_ids(pid):
    """(uid, [gids]) of a process."""
    uid, groups = None, []
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
            elif line.startswith("Groups:"):
                groups = [int(g) for g in line.split()[1:]]
    return uid, groups


def install():
    """Puts the deployment files where the package puts them, with the built programs."""
    # The units run with PrivateTmp=, so a build tree under /tmp is out of their sight: the
    # programs are copied to the guest's own /run, which every unit sees.
    bindir = "/run/bic2mqtt-test-bin"
    os.makedirs(bindir, exist_ok=True)
    os.chmod(bindir, 0o755)
    paths = {}
    for installed in ("/usr/sbin/bic-can-gateway", "/usr/bin/bic-mqtt-bridge",
                      "/usr/bin/bic-charge-ctl"):
        name = os.path.basename(installed)
        copy = os.path.join(bindir, name)
        shutil.copy(harness.program(name), copy)
        os.chmod(copy, 0o755)
        paths[installed] = copy
    for name in os.listdir(os.path.join(DEPLOY, "systemd")):
        if not name.endswith((".service", ".target")):
            continue
        with open(os.path.join(DEPLOY, "systemd", name)) as f:
            text = f.read()
        for installed, built in paths.items():
            text = text.replace(installed, built)
        with open("/etc/systemd/system/" + name, "w") as f:
            f.write(text)
    os.makedirs("/etc/sysusers.d", exist_ok=True)
    os.makedirs("/etc/tmpfiles.d", exist_ok=True)
    shutil.copy(os.path.join(DEPLOY, "systemd", "bic2mqtt.sysusers.conf"), "/etc/sysusers.d/bic2mqtt.conf")
    shutil.copy(os.path.join(DEPLOY, "systemd", "bic2mqtt.tmpfiles.conf"), "/etc/tmpfiles.d/bic2mqtt.conf")
    sh("systemd-sysusers", "/etc/sysusers.d/bic2mqtt.conf")
    sh("systemd-tmpfiles", "--create", "/etc/tmpfiles.d/bic2mqtt.conf")

    # The sample configuration, edited as the docs say: the meter topic, and the bus of a
    # SocketCAN adapter; the broker is the default 127.0.0.1:1883.
    with open(os.path.join(DEPLOY, "bic2mqtt.ini")) as f:
        text = f.read()
    for key, value in (("Id/0/TopicPower", METER_TOPIC), ("Can", "socketcan:can0")):
        text, n = re.subn(r"^" + re.escape(key) + r"\s*=.*$", "%s = %s" % (key, value), text,
                          count=1, flags=re.M)
        assert n == 1, key
    os.makedirs("/etc/bic2mqtt", exist_ok=True)
    with open("/etc/bic2mqtt/bic2mqtt.ini", "w") as f:
        f.write(text)
    os.chown("/etc/bic2mqtt/bic2mqtt.ini", 0, grp.getgrnam("bic2mqtt").gr_gid)
    os.chmod("/etc/bic2mqtt/bic2mqtt.ini", 0o640)
    # can0 is brought up at 250 kbit/s by bic-can-up@can0.service, ordered before the
    # gateway by the drop-in the docs give (what `systemctl edit` would write).
    os.makedirs("/etc/systemd/system/%s.d" % GW, exist_ok=True)
    with open("/etc/systemd/system/%s.d/can0.conf" % GW, "w") as f:
        f.write("[Unit]\nWants=bic-can-up@can0.service\nAfter=bic-can-up@can0.service\n")
    # Shorter watchdog times than shipped, to keep the test short: the period, and how long
    # systemd waits after the SIGABRT it sends first (a stopped process cannot act on it)
    # before it sends SIGKILL.
    with open("/etc/systemd/system/%s.d/watchdog.conf" % GW, "w") as f:
        f.write("[Service]\nWatchdogSec=4s\nTimeoutAbortSec=2s\n")
    sh("systemctl", "daemon-reload")


def journal():
    return sh("journalctl", "--no-pager", "-o", "short-monotonic", "-u", GW, "-u", BRIDGE, "-u", CTL,
              "-u", "bic-can-up@can0.service",
              check=False)


def lease_holder(c):
    lease = c.ok("info", dev=0)["devices"][0]["lease"]
    return lease["holder"] if lease else None


def wait_lease(c, pid, what):
    holder = "charge-ctl-0-%d" % pid
    harness.wait_for(lambda: lease_holder(c) == holder, SLOW, what=what)


def test_units_under_systemd():
    # Without udev, systemd never sees can0 as a device and bic-can-up@can0 waits for it.
    assert os.path.exists("/lib/systemd/systemd-udevd"), \
        "udev is not installed (Debian package udev, see tools/deps.sh)"
    install()
    tmp = harness.temp_dir()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = harness.Process([harness.MOSQUITTO, "-c", conf], name="mosquitto", log_dir=tmp)
    harness.wait_for_port(1883, SLOW)
    profile = os.path.join(SRC, "data", "profiles", "p1_clear_march.csv")
    pty = os.path.join(tmp, "pty")
    sim = harness.Process([harness.program("bic-sim"), "--slcan-pty", pty,
                           "--device", "0:24:battery,canctrl", "--control", "ipc://%s/sim.ctl" % tmp,
                           "--mqtt", "127.0.0.1:1883", "--meter-topic", METER_TOPIC,
                           "--meter-period-ms", "1000", "--household", profile, "--start-s", "43200"],
                          name="bic-sim", log_dir=tmp)
    harness.wait_for_path(pty, SLOW)
    # The kernel's slcan driver on the simulator's pty: can0, a CAN network interface whose
    # bit rate is set and reaches the adapter, as with a USB-CAN adapter or a CAN HAT.
    ldisc = harness.Process(["ldattach", "-d", str(N_SLCAN), pty], name="ldattach", log_dir=tmp)
    harness.wait_for(lambda: os.path.exists("/sys/class/net/can0"), SLOW, what="can0 from slcan")
    sim_ctl = harness.SimControl("ipc://%s/sim.ctl" % tmp)
    mqtt = harness.MqttClient(("127.0.0.1", 1883), subscribe=(TOPIC_MAIN + "/#",))
    try:
        # as docs/deployment.md says: enabling the target enables the three services
        t0 = time.monotonic()
        sh("systemctl", "enable", "--now", "bic2mqtt.target")
        print("bic2mqtt.target enabled and started in %.1f s" % (time.monotonic() - t0), flush=True)
        for u in UNITS:
            assert sh("systemctl", "is-enabled", u, check=False).strip() == "enabled", u
            assert active(u), "%s is %s" % (u, show(u, "ActiveState"))
        assert active("bic-can-up@can0.service")
        link = sh("ip", "-details", "link", "show", "can0")
        assert "bitrate 250000" in link and "state UP" in link.replace("can state", ""), link
        adapter = sim_ctl.counters()["adapter"]
        assert adapter["open"] is True and adapter["bitrate"] == 250000, adapter
        pids = {u: main_pid(u) for u in UNITS}

        phase("users and groups")
        # users, groups and the shared runtime directory
        user = pwd.getpwnam("bic2mqtt")
        group = grp.getgrnam("bic2mqtt").gr_gid
        dialout = grp.getgrnam("dialout").gr_gid
        uid, groups = proc_ids(pids[GW])
        assert uid == user.pw_uid and dialout in groups, (uid, groups)
        for u in (BRIDGE, CTL):
            uid, groups = proc_ids(pids[u])
            assert 61184 <= uid <= 65519, "%s runs as uid %d, not a dynamic user" % (u, uid)
            assert group in groups, "%s is not in group bic2mqtt: %s" % (u, groups)
        st = os.stat("/run/bic2mqtt")
        assert st.st_uid == user.pw_uid and st.st_gid == group and st.st_mode & 0o777 == 0o750, st
        sock = os.stat("/run/bic2mqtt/gateway.sock")
        assert sock.st_mode & 0o060 == 0o060 and sock.st_mode & 0o007 == 0, oct(sock.st_mode)
        # the hardening is in force, not just written down
        with open("/proc/%d/status" % pids[BRIDGE]) as f:
            status = f.read()
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), "NoNewPrivileges not applied"
        assert re.search(r"^Seccomp:\s+2$", status, re.M), "no system call filter"
        assert re.search(r"^CapBnd:\s+0+$", status, re.M), "capability bounding set not empty"

        phase("working together")
        # they work together: the controller drives through the gateway, the bridge publishes
        c = Client("ipc:///run/bic2mqtt/gateway.sock", timeout=10)
        harness.wait_for(lambda: c.ok("devices")["devices"][0]["online"], SLOW, what="device online")
        wait_lease(c, pids[CTL], "the controller holds the lease")
        mqtt.wait_message(TOPIC_MAIN + "/sys/state", lambda p: p == "running", timeout=SLOW)

        # reload (SIGHUP): the configuration is re-read in place, no process changes
        phase("reload")
        sh("systemctl", "reload", *UNITS)
        for u in UNITS:
            assert active(u) and main_pid(u) == pids[u], "%s changed on reload" % u
        assert lease_holder(c) == "charge-ctl-0-%d" % pids[CTL]

        phase("controller restart/stop")
        # restart and stop the controller: the gateway and the bridge keep their processes
        sh("systemctl", "restart", CTL)
        new_ctl = main_pid(CTL)
        assert new_ctl != pids[CTL]
        assert main_pid(GW) == pids[GW] and main_pid(BRIDGE) == pids[BRIDGE]
        wait_lease(c, new_ctl, "the restarted controller holds the lease")
        sh("systemctl", "stop", CTL)
        assert active(GW) and active(BRIDGE) and main_pid(GW) == pids[GW]
        assert lease_holder(c) is None, "a stopped controller releases its lease"
        sh("systemctl", "start", CTL)
        pids[CTL] = main_pid(CTL)
        wait_lease(c, pids[CTL], "the controller is back")
        sh("systemctl", "restart", BRIDGE)
        assert main_pid(GW) == pids[GW] and main_pid(CTL) == pids[CTL]
        pids[BRIDGE] = main_pid(BRIDGE)

        phase("gateway restart")
        # restart the gateway: its clients stay and reconnect
        sh("systemctl", "restart", GW)
        assert main_pid(GW) != pids[GW]
        pids[GW] = main_pid(GW)
        assert main_pid(BRIDGE) == pids[BRIDGE] and main_pid(CTL) == pids[CTL], \
            "a gateway restart restarted a client"
        c.close()
        c = Client("ipc:///run/bic2mqtt/gateway.sock", timeout=10)
        wait_lease(c, pids[CTL], "the controller drives the restarted gateway")

        phase("crash")
        # a crash restarts that service alone
        os.kill(pids[BRIDGE], 9)
        harness.wait_for(lambda: active(BRIDGE) and main_pid(BRIDGE) not in (0, pids[BRIDGE]), SLOW, interval=0.5,
                         what="the killed bridge restarted")
        assert show(BRIDGE, "NRestarts") == "1"
        assert main_pid(GW) == pids[GW] and main_pid(CTL) == pids[CTL]

        phase("watchdog")
        # the watchdog: the gateway has run through everything above with a 4 s watchdog
        # (WATCHDOG=1 from its loop kept it alive); one that stops its loop is killed and
        # restarted.
        assert active(GW) and show(GW, "NRestarts") == "0", "the watchdog hit a healthy gateway"
        frozen = main_pid(GW)
        os.kill(frozen, 19)  # SIGSTOP
        harness.wait_for(lambda: main_pid(GW) not in (0, frozen) and active(GW), SLOW, interval=0.5,
                         what="the watchdog restarts the frozen gateway")
        assert show(GW, "NRestarts") == "1", show(GW, "NRestarts")
        assert "watchdog" in sh("journalctl", "--no-pager", "-u", GW), "not restarted by the watchdog"
        assert main_pid(CTL) == pids[CTL], "the watchdog restart touched the controller"
        c.close()

        phase("stop target")
        # systemctl waits for the target's own stop job; the services' jobs (PartOf=) run on,
        # the gateway last (the clients are ordered after it)
        sh("systemctl", "stop", "bic2mqtt.target")
        for u in UNITS:
            harness.wait_for(lambda: show(u, "ActiveState") == "inactive", SLOW, interval=0.5,
                             what="%s stopped with the target" % u)
        sh("systemctl", "stop", "bic-can-up@can0.service")
        assert "state DOWN" in sh("ip", "link", "show", "can0")

        # the alternative: systemd-networkd with the shipped .network file
        phase("systemd-networkd")
        os.makedirs("/etc/systemd/network", exist_ok=True)
        shutil.copy(os.path.join(DEPLOY, "systemd", "80-bic2mqtt-can.network"), "/etc/systemd/network/")
        sh("systemctl", "start", "systemd-networkd.service")
        harness.wait_for(lambda: "state UP" in sh("ip", "link", "show", "can0"), SLOW, interval=0.5,
                         what="systemd-networkd brings can0 up")
        assert "bitrate 250000" in sh("ip", "-details", "link", "show", "can0")
        sh("systemctl", "stop", "systemd-networkd.service", "systemd-networkd.socket")
    except Exception:
        print("---- journal ----\n" + journal()[-6000:], flush=True)
        raise
    finally:
        mqtt.close()
        sim_ctl.close()
        sh("systemctl", "stop", "bic2mqtt.target", check=False)
        ldisc.stop()
        sim.stop()
        broker.stop()


if __name__ == "__main__":
    harness.run_tests()
