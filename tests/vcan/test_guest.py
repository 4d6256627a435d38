"""The guest kernel harness (tools/uml/run-in-guest.sh) does what the SocketCAN tests rely on.

Boots the user-mode-linux guest a few times and checks, from the host: the command's exit
status, stdout and stderr come back separately; environment and working directory carry over;
vcan0 is up and SocketCAN frames flow on it (and an interface down/up is seen as ENETDOWN,
then traffic again); with --systemd the command runs as a service of a booted systemd and
what the guest writes stays in the guest; a command that overruns its time limit is stopped
with status 124 and no guest process is left behind; bad options are refused with a clear
message.
"""
import os
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("BIC_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUN = os.path.join(SRC, "tools", "uml", "run-in-guest.sh")
HERE = os.path.join(SRC, "tests", "vcan")

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(args, env=None, cwd=None, timeout=150):
    return subprocess.run([RUN] + args, capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def guest_processes(marker):
    """Host processes whose command line mentions marker (our private TMPDIR)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def check_unbootable_is_a_skip(tmp):
    """A kernel that never reaches the command (hangs, or stops at once) is this machine's
    lack, reported as a skip (77, a SKIP: line with the reason) after the boot limit, not a
    hang until the host limit."""
    mods = os.path.join(tmp, "fake-modules")
    os.makedirs(mods)
    open(os.path.join(mods, "modules.dep"), "w").close()
    for name, body, what in (("hangs", "sleep 300", "did not reach the command within 3 s"),
                             ("stops", "exit 3", "stopped (exit 3) before it reached")):
        kernel = os.path.join(tmp, "linux-" + name)
        with open(kernel, "w") as f:
            f.write('#!/bin/sh\ncase "$1" in --version) echo fake ;; '
                    '*) echo "fake kernel: %s"; %s ;; esac\n' % (name, body))
        os.chmod(kernel, 0o755)
        env = dict(os.environ, TMPDIR=tmp, BIC_UML_KERNEL=kernel, BIC_UML_MODULES=mods,
                   BIC_UML_BOOT_LIMIT_S="3")
        start = time.monotonic()
        r = run(["-t", "100", "true"], env=env)
        took = time.monotonic() - start
        check(r.returncode == 77 and r.stdout.startswith("SKIP: ") and what in r.stdout
              and "console: fake kernel: " + name in r.stdout,
              f"a guest kernel that {name} is reported as a skip with the reason "
              f"(rc {r.returncode}: {r.stdout.strip()!r})")
        check(took < 60, f"... soon after the boot limit, not at the host limit ({took:.0f} s)")
    os.unlink(os.path.join(mods, "modules.dep"))
    os.rmdir(mods)


def main():
    with tempfile.TemporaryDirectory(prefix="bic-vcan-") as tmp:
        env = dict(os.environ, TMPDIR=tmp, BIC_GUEST_PROBE="carried over")
        check_unbootable_is_a_skip(tmp)
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))

        r = run(["sh", "-c", 'echo "out $BIC_GUEST_PROBE"; pwd; echo err >&2; exit 7'], env=env, cwd=tmp)
        if r.returncode == 77:  # this machine cannot boot the guest: nothing else can be checked
            print(r.stdout, end="", flush=True)
            return 1 if failures else 77
        check(r.returncode == 7, f"exit status propagates (got {r.returncode})")
        check(r.stdout.splitlines() == ["out carried over", tmp],
              f"stdout, environment and working directory carry over (got {r.stdout!r})")
        check(r.stderr.strip() == "err", f"stderr comes back separately (got {r.stderr!r})")

        r = run(["ip", "-details", "link", "show", "vcan0"], env=env)
        check(r.returncode == 0 and "UP" in r.stdout and "vcan" in r.stdout,
              f"vcan0 exists and is up in the guest (rc {r.returncode}: {r.stdout.strip()!r})")

        r = run([sys.executable, "-u", os.path.join(HERE, "guest_can_echo.py")], env=env)
        print(r.stdout + r.stderr, end="")
        check(r.returncode == 0 and "echo ok" in r.stdout and "down: ENETDOWN" in r.stdout
              and "up: traffic again" in r.stdout,
              "SocketCAN frames flow on vcan0; down gives ENETDOWN, up brings traffic back")

        r = run(["-i", "vcan1", "ip", "-brief", "link", "show", "vcan1"], env=env)
        check(r.returncode == 0 and "vcan1" in r.stdout, f"-i adds another interface (rc {r.returncode})")

        r = run(["-t", "2", "sleep", "60"], env=env)
        check(r.returncode == 124, f"a command past its time limit ends with 124 (got {r.returncode})")
        check(guest_processes(tmp) == [], f"no guest process left after a timeout: {guest_processes(tmp)}")

        # The host's own backstop: the guest is killed even when it does not stop by itself.
        r = run(["-t", "100", "sleep", "60"], env=dict(env, BIC_UML_HOST_LIMIT_S="5"))
        check(r.returncode == 124 and "did not stop" in r.stderr,
              f"the host kills a guest that overruns the backstop (rc {r.returncode})")
        check(guest_processes(tmp) == [], f"no guest process left after the backstop: {guest_processes(tmp)}")
        check(os.listdir(tmp) == [], f"no run directory left behind: {os.listdir(tmp)}")

        # --systemd: systemd is the guest's init; the host's files stay untouched.
        probe = os.path.join(HERE, ".guest-write-probe")
        r = run(["--systemd", "sh", "-c",
                 'echo "pid1=$(cat /proc/1/comm)"; systemctl is-active bic-guest-cmd.service; '
                 'touch "$0" && echo written; exit 5', probe], env=env)
        leaked = os.path.exists(probe)
        if leaked:
            os.unlink(probe)
        check(r.returncode == 5, f"--systemd: exit status propagates (got {r.returncode}: {r.stderr[-500:]!r})")
        check(r.stdout.split() == ["pid1=systemd", "activating", "written"],
              f"--systemd: the command runs as a service of systemd (got {r.stdout!r})")
        check(not leaked, "--systemd: a file the guest writes does not reach the host")

        r = run(["-t", "soon", "true"], env=env)
        check(r.returncode == 2 and "-t must be a whole number" in r.stderr,
              f"a bad -t is refused with a message (rc {r.returncode}: {r.stderr.strip()!r})")
        r = run(["-x", "true"], env=env)
        check(r.returncode == 2 and "unknown option -x" in r.stderr, "an unknown option is refused")
        r = run([], env=env)
        check(r.returncode == 2 and "usage" in r.stderr, "no command prints the usage")

    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
