"""No busy loops: each daemon's CPU use over a minute, with the whole chain running (two
devices polled, the meter at 1 Hz, the controller holding device 0's lease), and over a
minute with the broker down (the bridge and the controller retrying the connection). A
daemon that wakes up without anything to do shows here long before a user's machine feels
it; the bound is generous (2 % of one core: the measured figures are in
docs/benchmarks.md)."""

import faultlib

BOUND_PCT = 2.0
SECONDS = 60


def _over(phase, figures):
    print("%s: %s" % (phase, ", ".join("%s %.2f %%" % kv for kv in sorted(figures.items()))),
          flush=True)
    return {"%s (%s)" % (k, phase): round(v, 2) for k, v in figures.items() if v > BOUND_PCT}


def test_cpu_normal_and_broker_down():
    with faultlib.Chain(seed=1, load=False) as c:
        normal = faultlib.daemon_cpu(c, SECONDS)
        c.broker.stop()
        down = faultlib.daemon_cpu(c, SECONDS)
    over = _over("running", normal)
    over.update(_over("broker down", down))
    assert not over, "above %.0f %% of a core: %s" % (BOUND_PCT, over)


if __name__ == "__main__":
    import harness
    harness.run_tests()
