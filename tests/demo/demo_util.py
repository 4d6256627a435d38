"""Runs tools/demo.sh as `make demo` does (from the source tree, with the build directory as
its argument), without a terminal, and checks that nothing of it is left afterwards."""

import os
import re
import signal
import subprocess
import threading
import time

import harness


class Demo:
    """tools/demo.sh in a session of its own, its output collected line by line. The demo's
    temporary directory is created under a test directory (TMPDIR), so that what it leaves
    behind can be found."""

    def __init__(self, env=None):
        self.tmpdir = harness.temp_dir("bic-demo-test-")
        full_env = dict(os.environ, TMPDIR=self.tmpdir)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            ["sh", harness.source_path("tools", "demo.sh"), harness.BUILD_DIR],
            cwd=harness.SOURCE_DIR, env=full_env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def output(self):
        with self.lock:
            return "\n".join(self.lines)

    def wait_line(self, regex, timeout=60):
        """The first match of regex in the output so far (waits for it)."""
        r = re.compile(regex, re.M)
        return harness.wait_for(lambda: r.search(self.output()), timeout,
                                what="demo output matching %r" % regex)

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise harness.HarnessError("demo did not end within %d s:\n%s"
                                       % (timeout, self.output()))
        self.reader.join(5)
        return rc

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL for the demo's whole session: the test's own cleanup."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def demo_dir(self):
        m = re.search(r"^demo: starting in (\S+)", self.output(), re.M)
        return m.group(1) if m else None

    def leftovers(self):
        """Processes that mention the demo's test directory on their command line (mosquitto
        and bic-sim name files in it, the others their ini), and files left in it."""
        procs = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
                with open("/proc/%s/stat" % pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if self.tmpdir in cmd and state != "Z":
                procs.append("%s: %s" % (pid, cmd))
        return procs, os.listdir(self.tmpdir)

    def assert_clean(self, timeout=15):
        """Nothing of the demo runs any more and its temporary directory is gone."""
        def clean():
            procs, files = self.leftovers()
            return not procs and not files
        try:
            harness.wait_for(clean, timeout, what="the demo's processes and files to go")
        except harness.HarnessError:
            procs, files = self.leftovers()
            raise harness.HarnessError("left behind: processes %s, files %s" % (procs, files))


def summary_values(text):
    """{row: (without, with)} in kWh from the summary's table."""
    out = {}
    for row in ("import", "export", "exchange"):
        m = re.search(r"^  grid %s\s+([\d.]+) kWh\s+([\d.]+) kWh$" % row, text, re.M)
        if m:
            out[row] = (float(m.group(1)), float(m.group(2)))
    return out
