"""The demo stops cleanly however it is stopped, and refuses bad settings before starting
anything: SIGTERM and SIGINT (what Ctrl-C delivers) end it with the summary and nothing left;
SIGKILL of the script leaves nothing running either; a bad DEMO_* value is a clear error."""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from demo_util import Demo  # noqa: E402


def started(demo):
    """Waits until the whole stack runs (the view prints its lines)."""
    demo.wait_line(r"^\d\d:\d\d load ", timeout=60)
    procs, _ = demo.leftovers()
    names = " ".join(procs)
    for p in ("mosquitto", "bic-sim", "bic-can-gateway", "bic-mqtt-bridge", "bic-charge-ctl"):
        assert p in names, "%s is not running: %s" % (p, procs)


def test_sigint_prints_the_summary_and_cleans_up():
    demo = Demo({"DEMO_SECONDS": "120"})
    try:
        started(demo)
        # Ctrl-C in a terminal: SIGINT to the foreground process group (script and view).
        os.killpg(demo.proc.pid, signal.SIGINT)
        rc = demo.wait(timeout=60)
    finally:
        demo.kill()
    out = demo.output()
    assert rc == 130, "exit status %d:\n%s" % (rc, out)
    assert "bic2mqtt demo summary (stopped by Ctrl-C)" in out, out
    demo.assert_clean()


def test_sigterm_cleans_up():
    demo = Demo({"DEMO_SECONDS": "120"})
    try:
        started(demo)
        demo.signal(signal.SIGTERM)  # the script only
        rc = demo.wait(timeout=60)
    finally:
        demo.kill()
    assert rc == 143, "exit status %d:\n%s" % (rc, demo.output())
    demo.assert_clean()


def test_sigkill_of_the_script_leaves_nothing_running():
    demo = Demo({"DEMO_SECONDS": "120"})
    try:
        started(demo)
        os.kill(demo.proc.pid, signal.SIGKILL)  # the script only; no trap can run
        demo.wait(timeout=30)
        # The programs get SIGTERM from the kernel as their parent died; the view removes
        # the temporary directory once they are gone.
        demo.assert_clean(timeout=20)
    finally:
        demo.kill()


def test_bad_settings_are_refused_before_anything_starts():
    cases = [({"DEMO_SECONDS": "abc"}, "DEMO_SECONDS='abc'", "10-86400"),
             ({"DEMO_SECONDS": "5"}, "DEMO_SECONDS='5'", "10-86400"),
             ({"DEMO_SPEED": "0"}, "DEMO_SPEED='0'", "10-3600"),
             ({"DEMO_SPEED": "36000"}, "DEMO_SPEED='36000'", "10-3600"),
             ({"DEMO_START_H": "24"}, "DEMO_START_H='24'", "0-23"),
             ({"DEMO_START_H": "-1"}, "DEMO_START_H='-1'", "0-23")]
    for env, what, allowed in cases:
        demo = Demo(env)
        try:
            rc = demo.wait(timeout=30)
        finally:
            demo.kill()
        out = demo.output()
        assert rc == 2, "%s: exit status %d:\n%s" % (env, rc, out)
        assert what in out and allowed in out, "%s: unclear message:\n%s" % (env, out)
        assert "starting in" not in out, out
        demo.assert_clean(timeout=5)
    # A build directory without the programs: told to build first.
    empty = harness.temp_dir("bic-demo-nobuild-")
    r = subprocess.run(["sh", harness.source_path("tools", "demo.sh"), empty],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and re.search(r"is missing; build first", r.stderr), r


if __name__ == "__main__":
    harness.run_tests()
