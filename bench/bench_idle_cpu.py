#!/usr/bin/python3
"""bench_idle_cpu: what each daemon costs in CPU while it has little to do, with the real
processes (tests/faults/faultlib.py's chain): a private mosquitto, bic-sim on a pty with two
devices replaying a household day (meter at 1 Hz), bic-can-gateway, bic-mqtt-bridge and
bic-charge-ctl holding device 0's lease. Two phases of --seconds each: everything running,
then the broker stopped (the bridge and the controller retrying). CPU = utime + stime from
/proc/PID/stat over the phase's wall time, in percent of one core.

usage: BIC_BUILD_DIR=build /usr/bin/python3 bench/bench_idle_cpu.py [--seconds 60]
The last lines are key=value figures (docs/benchmarks.md).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.join(SRC, "tests", "faults"))

import faultlib  # noqa: E402

SHORT = {"bic-can-gateway": "gateway", "bic-mqtt-bridge": "bridge", "bic-charge-ctl": "ctl"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    args = ap.parse_args()
    with faultlib.Chain(seed=1, load=False) as c:
        normal = faultlib.daemon_cpu(c, args.seconds)
        c.broker.stop()
        down = faultlib.daemon_cpu(c, args.seconds)
    for phase, figures in (("normal", normal), ("broker_down", down)):
        print("bench=idle_cpu phase=%s seconds=%.0f %s" % (
            phase, args.seconds,
            " ".join("%s_cpu_pct=%.2f" % (SHORT[k], v) for k, v in sorted(figures.items()))))


if __name__ == "__main__":
    main()
