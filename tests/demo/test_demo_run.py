"""The demo runs the whole stack for 40 s without a terminal, as `DEMO_SECONDS=40 make demo`
would after the build: it prints plain lines, its MQTT line works as printed, the battery
moves the grid exchange toward zero, the summary appears, and nothing is left running."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from demo_util import Demo, summary_values  # noqa: E402


def test_demo_runs_the_stack_and_summarises():
    # From 09:00 household time: PV surplus, so the controller charges (zero export).
    demo = Demo({"DEMO_SECONDS": "40", "DEMO_START_H": "9"})
    try:
        demo.wait_line(r"^demo: starting in ")
        # The mosquitto_sub line for the controller, exactly as printed, receives its status.
        m = demo.wait_line(r"^  (mosquitto_sub -h 127\.0\.0\.1 -p \d+ "
                           r"-t '[^']+/inv/0/control' -v) +# the controller$")
        argv = m.group(1).replace("'", "").split() + ["-C", "1", "-W", "20"]
        got = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert got.returncode == 0, "%s: %s%s" % (argv, got.stdout, got.stderr)
        assert '"mode":' in got.stdout and '"setpoint":' in got.stdout, got.stdout
        # Plain periodic lines with the household time, the grid and the controller.
        demo.wait_line(r"^\d\d:\d\d load +\d+ W +pv +\d+ W +battery +[-+]\d+ W +grid +[-+]\d+ W"
                       r".* ctl running", timeout=30)
        rc = demo.wait(timeout=120)
        out = demo.output()
        assert rc == 0, "demo exit status %d:\n%s" % (rc, out)
    except Exception:
        print(demo.output())
        raise
    finally:
        demo.kill()
    assert "bic2mqtt demo summary (0:40 elapsed)" in out, out
    v = summary_values(out)
    assert set(v) == {"import", "export", "exchange"}, out
    without, with_battery = v["exchange"]
    assert without > 0.5, "the replayed household should exchange energy with the grid:\n" + out
    # The battery must take a real share of the exchange, not a rounding error (a quiet
    # machine shows about 40 %; the household runs 360 times faster than the controller's
    # sampling, so load steps are followed late).
    assert with_battery < 0.9 * without, "the grid exchange did not move toward zero:\n" + out
    # From 09:00 the PV surplus goes into the battery: less export (the point of the
    # zero-export controller).
    assert v["export"][1] < 0.8 * v["export"][0], "export not reduced:\n" + out
    m = re.search(r"^  battery +charged ([\d.]+) kWh, discharged ([\d.]+) kWh", out, re.M)
    assert m and float(m.group(1)) > 0.1, "no energy went into the battery:\n" + out
    assert re.search(r"^  EEPROM writes +\d+ \(\d+ during the run\)", out, re.M), out
    assert re.search(r"^  pacing violations +\d+$", out, re.M), out
    demo.assert_clean()


if __name__ == "__main__":
    harness.run_tests()
