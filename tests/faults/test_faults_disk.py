"""Fault injection, part 3: the disk fills up while the gateway saves its EEPROM write
counters. The gateway's StateDir is a 64 KiB tmpfs mounted in a private mount namespace (so
nothing is left mounted whatever happens to the test); the gateway runs in that namespace and
the test fills the tmpfs through /proc/PID/root. Documented behaviour (ipc-protocol.md): a
failed save keeps the counts in memory, is reported in `gw` health at once and retried; once
the disk has room again the file holds every count, and a restarted gateway continues from it.
Under load, with the checks of part 1. Seeded: BIC_FAULT_SEED reproduces a run."""

import errno
import json
import os
import subprocess
import time

import faultlib
import harness
from faultlib import LEASE_TTL_S, MARGIN_S

RESULTS = os.path.join(harness.BUILD_DIR, "tests", "faults", "results-disk.json")


class PrivateTmpfs:
    """A tmpfs of `size` mounted at `path` in a mount namespace of its own, held open by a
    sleeping process: programs started with `wrap` see it; the rest of the system does not.
    It disappears with the namespace."""

    def __init__(self, path, size="64k"):
        self.path = path
        self.holder = harness.Process(["unshare", "--mount", "--propagation", "private",
                                       "sleep", "3600"], name="mount-ns")
        harness.wait_for(lambda: os.readlink("/proc/%d/ns/mnt" % self.holder.pid)
                         != os.readlink("/proc/self/ns/mnt"), 5, what="a new mount namespace")
        subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", "--", "mount", "-t",
                        "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path], check=True)
        self.wrap = ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def file(self, name):
        """The path of a file on the tmpfs as this process reaches it."""
        return os.path.join("/proc/%d/root" % self.holder.pid, self.path.lstrip("/"), name)

    def fill(self):
        """Fills the filesystem; returns the bytes written."""
        n = 0
        with open(self.file("filler"), "wb", buffering=0) as f:
            while True:
                try:
                    n += f.write(b"\0" * 4096)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
        return n

    def free(self):
        os.unlink(self.file("filler"))

    def close(self):
        self.holder.kill()


def _file_totals(tmpfs):
    with open(tmpfs.file("eeprom-counters.json")) as f:
        state = json.load(f)
    return {int(a): sum(d["writes"].values()) for a, d in state["devices"].items()}


def _gw(c, pred, timeout):
    import zmq
    s = zmq.Context.instance().socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"gw")
    s.connect(c.pub_ep)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if s.poll(200):
                parts = s.recv_multipart()
                if parts[0] == b"gw":
                    m = json.loads(parts[1])
                    if pred(m):
                        return m
        raise harness.HarnessError("no matching `gw` message within %.0f s" % timeout)
    finally:
        s.close()


def test_disk_full_while_saving_counters():
    seed = faultlib.seed_from_env()
    base = harness.temp_dir("bic-faults-disk-")
    state_dir = os.path.join(base, "state")
    os.makedirs(state_dir)
    tmpfs = PrivateTmpfs(state_dir)
    try:
        with faultlib.Chain(seed, state_dir=state_dir, gateway_wrap=tmpfs.wrap) as c:
            harness.wait_for(lambda: c.healthy(time.monotonic() - 5), 20, what="chain healthy")
            # The counters are on the tmpfs (and nowhere else).
            harness.wait_for(lambda: _file_totals(tmpfs) == c.eeprom_totals(), 10,
                             what="counters file equal to the gateway's counts")
            assert not os.path.exists(os.path.join(state_dir, "eeprom-counters.json"))

            filled = tmpfs.fill()
            saved = _file_totals(tmpfs)
            # Persisted writes now: the controller dies, its lease lapses, the safe state
            # switches the output off (OPERATION is counted and never deferred).
            c.ctl.kill()
            m = _gw(c, lambda m: not m["state_file"]["ok"], LEASE_TTL_S + MARGIN_S + 5)
            sf = m["state_file"]
            assert sf["failures"] >= 1 and "space" in sf["error"], sf
            harness.wait_for(lambda: not c.simctl.device(0)["output_on"], MARGIN_S,
                             what="the safe state despite the full disk")
            assert "EEPROM counters not saved" in c.gateway.output()
            # The controller comes back and writes more while the disk stays full.
            c.start_ctl()
            time.sleep(3)
            in_memory = c.eeprom_totals()
            assert _file_totals(tmpfs) == saved, "the file changed on a full disk"
            assert in_memory[0] > saved[0], (in_memory, saved)
            c.check_all()

            # Room again: the next counted write (or the 30 s retry) saves everything.
            t1 = time.monotonic()
            tmpfs.free()
            m = _gw(c, lambda m: m["state_file"]["ok"], 40)
            harness.wait_for(lambda: _file_totals(tmpfs) == c.eeprom_totals(), 10,
                             what="counters file equal to the gateway's counts again")
            rec = c.wait_recovered(t1)
            c.row("disk full while saving the EEPROM counters", "ok", rec,
                  "%d KiB filled; %d failed saves, counts kept in memory (%s), all saved once "
                  "there was room" % (filled // 1024, sf["failures"], in_memory))

            # A crash now loses nothing: the restarted gateway continues from the file.
            before = c.eeprom_totals()
            t2 = time.monotonic()
            c.gateway.kill()
            c.start_gateway(wait=False)
            harness.wait_for(lambda: c.info(1.0), 10, what="restarted gateway")
            after = c.eeprom_totals()
            assert all(after[d] >= before[d] for d in before), (before, after)
            rec = c.wait_recovered(t2)
            c.check_all()
            c.row("kill -9 bic-can-gateway after the disk-full episode", "ok", rec,
                  "counters %s continued from the file" % after)
            gw, recv = c.check_all()
            print("load: %d requests, %d replies, %d timeouts; EEPROM writes counted %s, "
                  "received %s" % (c.load.sent, c.load.replied, c.load.timeouts, gw, recv))
            faultlib.print_table("fault injection (seed %d)" % seed, c.rows, RESULTS)
    finally:
        tmpfs.close()


def _mount_namespace_problem():
    """Why this machine cannot give the test a private tmpfs (None when it can): it needs
    unshare --mount with private propagation and a tmpfs mount inside, which a chroot or
    container without CAP_SYS_ADMIN refuses."""
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs",
                        "-o", "size=64k", "tmpfs", "/mnt"], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        return "no private mount namespace with a tmpfs on this machine (%s)" % (
            (r.stderr or r.stdout).strip().splitlines() or ["unshare exit %d" % r.returncode])[-1]
    return None


if __name__ == "__main__":
    problem = _mount_namespace_problem()
    if problem:
        harness.skip_file(problem)
    harness.run_tests()
