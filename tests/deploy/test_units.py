"""The systemd units in deploy/systemd pass systemd's own checks and keep their promises.

- `systemd-analyze verify` accepts every unit without a warning, with ExecStart= pointing at
  the programs built in this tree (a broken unit is shown to be caught, so the check can fail).
- `systemd-analyze security --offline=true`: the bridge and the controller at 2.0 or below,
  the gateway at 5.0 or below, and docs/deployment.md quotes the figures measured here.
- Restart independence: nothing pulls the gateway along when the bridge or the controller is
  restarted or stopped, and the gateway's restart does not stop them (Wants=, never
  Requires=/BindsTo=/PartOf= between services); the target groups all three.
- The gateway alone has device access; the others run as dynamic users without
  capabilities, devices or address families beyond UNIX/INET, and join the group that owns
  the gateway's runtime directory, which is where the configured ipc endpoints live.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from deploy_common import DEPLOY, SRC, Checks, find_program, read_unit, values

UNITS = os.path.join(DEPLOY, "systemd")
SERVICES = ("bic-can-gateway.service", "bic-mqtt-bridge.service", "bic-charge-ctl.service")
CLIENTS = ("bic-mqtt-bridge.service", "bic-charge-ctl.service")
PATHS = {"/usr/sbin/bic-can-gateway": "bic-can-gateway",
         "/usr/bin/bic-mqtt-bridge": "bic-mqtt-bridge",
         "/usr/bin/bic-charge-ctl": "bic-charge-ctl"}
LIMITS = {"bic-can-gateway.service": 5.0, "bic-mqtt-bridge.service": 2.0,
          "bic-charge-ctl.service": 2.0}
STRONG = ("Requires", "BindsTo", "PartOf", "Requisite", "PropagatesStopTo", "StopPropagatedFrom")

c = Checks()


def stage(tmp):
    """Copies the units into tmp with the built programs' paths in ExecStart=."""
    for name in os.listdir(UNITS):
        with open(os.path.join(UNITS, name)) as f:
            text = f.read()
        for installed, prog in PATHS.items():
            if installed in text:
                built = find_program(prog)
                c.check(built is not None, f"{prog} is built (needed by {name})")
                text = text.replace(installed, built or "/nonexistent/" + prog)
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)


def verify(tmp, unit):
    """(ok, output) of systemd-analyze verify; a warning about our unit counts as failure."""
    r = subprocess.run(["systemd-analyze", "verify", "--no-pager", unit], cwd=tmp,
                       capture_output=True, text=True, timeout=60)
    base = unit.split("@")[0]
    ours = [l for l in (r.stdout + r.stderr).splitlines() if base in l or tmp in l]
    return r.returncode == 0 and not ours, "\n".join(ours) or r.stderr.strip()


def exposure(tmp, unit):
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        os.path.join(tmp, unit)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    return float(m.group(1)) if m else None


def main():
    if not shutil.which("systemd-analyze"):
        c.check(False, "systemd-analyze is installed (Debian package systemd)")
        return c.exit_code()
    units = {n: read_unit(os.path.join(UNITS, n)) for n in os.listdir(UNITS)
             if n.endswith((".service", ".target"))}

    with tempfile.TemporaryDirectory(prefix="bic-units-") as tmp:
        stage(tmp)
        for unit in list(SERVICES) + ["bic2mqtt.target", "bic-can-up@can0.service"]:
            ok, out = verify(tmp, unit)
            c.check(ok, f"systemd-analyze verify {unit}" + ("" if ok else f": {out}"))

        # The check itself must be able to fail: a misspelt key is only a warning to systemd.
        bad = os.path.join(tmp, "bic-broken.service")
        with open(os.path.join(tmp, "bic-charge-ctl.service")) as f:
            text = f.read()
        with open(bad, "w") as f:
            f.write(text.replace("ProtectSystem=strict", "ProtectSytem=strict"))
        ok, out = verify(tmp, "bic-broken.service")
        c.check(not ok and "ProtectSytem" in out, "verify catches a misspelt key in a unit")

        figures = {}
        for unit, limit in LIMITS.items():
            figures[unit] = exposure(tmp, unit)
            c.check(figures[unit] is not None and figures[unit] <= limit,
                    f"{unit} exposure {figures[unit]} <= {limit}")

    with open(os.path.join(SRC, "docs", "deployment.md")) as f:
        doc = f.read()
    for unit, fig in figures.items():
        m = re.search(r"\|\s*`?" + re.escape(unit) + r"`?\s*\|\s*([0-9.]+)", doc)
        c.check(m is not None and fig is not None and abs(float(m.group(1)) - fig) < 0.05,
                f"docs/deployment.md records {unit} at {fig} (doc: {m.group(1) if m else 'missing'})")

    # Grouping and restart independence.
    target = "bic2mqtt.target"
    for s in SERVICES:
        u = units[s]
        c.check(values(u, "Service", "Type") == ["notify"] and
                values(u, "Service", "NotifyAccess") == ["main"], f"{s}: Type=notify, NotifyAccess=main")
        c.check(bool(values(u, "Service", "WatchdogSec")), f"{s}: WatchdogSec= set")
        c.check(values(u, "Service", "Restart") == ["on-failure"], f"{s}: Restart=on-failure")
        c.check(target in values(u, "Unit", "PartOf") and target in values(u, "Install", "WantedBy"),
                f"{s}: PartOf= and WantedBy= {target}")
        exec_start = " ".join(values(u, "Service", "ExecStart"))
        c.check(exec_start.endswith("-c /etc/bic2mqtt/bic2mqtt.ini"), f"{s}: started with -c /etc/bic2mqtt/bic2mqtt.ini")
        for other in SERVICES:
            if other == s:
                continue
            strong = [k for k in STRONG if other in values(u, "Unit", k)]
            c.check(not strong, f"{s}: no {'/'.join(STRONG[:3])} on {other} (has {strong})")
    for s in CLIENTS:
        u = units[s]
        c.check("bic-can-gateway.service" in values(u, "Unit", "Wants") and
                "bic-can-gateway.service" in values(u, "Unit", "After"),
                f"{s}: Wants= and After= the gateway (start order without restart coupling)")
    t = units[target]
    c.check(set(SERVICES) <= set(values(t, "Install", "Also")) and
            "multi-user.target" in values(t, "Install", "WantedBy"),
            f"{target}: enabled from multi-user.target, enabling it enables all three services")
    c.check(not any(k in dict(t.get("Unit", [])) for k in ("Requires", "BindsTo", "PartOf")),
            f"{target}: does not tie itself to one service")

    # Privileges.
    gw = units["bic-can-gateway.service"]
    c.check(values(gw, "Service", "RuntimeDirectory") == ["bic2mqtt"] and
            values(gw, "Service", "RuntimeDirectoryPreserve") == ["yes"] and
            values(gw, "Service", "RuntimeDirectoryMode") == ["0750"] and
            values(gw, "Service", "Group") == ["bic2mqtt"] and
            values(gw, "Service", "UMask") == ["0007"],
            "gateway: /run/bic2mqtt kept across restarts, group bic2mqtt may use its sockets")
    c.check({"AF_CAN", "AF_NETLINK"} <= set(values(gw, "Service", "RestrictAddressFamilies")),
            "gateway: AF_CAN and AF_NETLINK allowed (SocketCAN)")
    c.check("dialout" in values(gw, "Service", "SupplementaryGroups") and
            values(gw, "Service", "DevicePolicy") == ["closed"] and
            "char-ttyACM" in values(gw, "Service", "DeviceAllow"),
            "gateway: serial adapters only (dialout, DevicePolicy=closed, DeviceAllow=char-ttyACM)")
    for s in SERVICES:
        u = units[s]
        c.check(values(u, "Service", "CapabilityBoundingSet") == [] and
                ("CapabilityBoundingSet", "") in u["Service"], f"{s}: empty capability bounding set")
        c.check(values(u, "Service", "NoNewPrivileges") == ["yes"] and
                values(u, "Service", "ProtectSystem") == ["strict"], f"{s}: NoNewPrivileges, ProtectSystem=strict")
    for s in CLIENTS:
        u = units[s]
        c.check(values(u, "Service", "DynamicUser") == ["yes"] and
                values(u, "Service", "PrivateDevices") == ["yes"] and
                sorted(values(u, "Service", "RestrictAddressFamilies")) == ["AF_INET", "AF_INET6", "AF_UNIX"],
                f"{s}: dynamic user, no devices, only AF_UNIX AF_INET AF_INET6")
        c.check("bic2mqtt" in values(u, "Service", "SupplementaryGroups") and
                not values(u, "Service", "DeviceAllow"),
                f"{s}: joins group bic2mqtt for the gateway's sockets, no device access")

    # The sample configuration's endpoints live in the directory the gateway's unit makes.
    with open(os.path.join(DEPLOY, "bic2mqtt.ini")) as f:
        ini = f.read()
    for key in ("ReqEndpoint", "PubEndpoint"):
        m = re.search(r"^" + key + r"\s*=\s*ipc://(\S+)$", ini, re.M)
        c.check(m is not None and os.path.dirname(m.group(1)) == "/run/bic2mqtt",
                f"sample {key} is in /run/bic2mqtt")
    with open(os.path.join(UNITS, "bic2mqtt.sysusers.conf")) as f:
        sysusers = f.read()
    c.check(re.search(r"^u bic2mqtt ", sysusers, re.M) and re.search(r"^m bic2mqtt dialout", sysusers, re.M),
            "sysusers.d creates the user bic2mqtt, member of dialout")
    return c.exit_code()


if __name__ == "__main__":
    sys.exit(main())
