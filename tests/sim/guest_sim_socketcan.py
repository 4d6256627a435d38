"""bic-sim on SocketCAN (vcan0), probed through can/'s SocketCAN transport, inside a guest
kernel that has CAN (run by tools/uml/run-in-guest.sh): the same byte-exact replies and
silence as on the slcan pty, and the control channel's view agreeing."""

import os
import subprocess

import harness

SLOW = 30.0  # the guest is slower than the host


def probe(*frames, iface="vcan0", timeout_ms=200):
    out = subprocess.run([harness.program("can-probe"), "socketcan:" + iface, "--timeout-ms",
                          str(timeout_ms), "--gap-ms", "25"] + list(frames),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, "can-probe failed: %s %s" % (out.stdout, out.stderr)
    return [l for l in out.stdout.splitlines() if l.startswith("<")]


def test_socketcan_byte_exact():
    tmp = harness.temp_dir()
    endpoint = "ipc://" + os.path.join(tmp, "sim.ctl")
    sim = harness.Process([harness.program("bic-sim"), "--socketcan", "vcan0", "--control",
                           endpoint, "--device", "0:24", "--device", "2:96:fw=old"],
                          name="bic-sim", log_dir=tmp)
    with sim:
        ctl = harness.SimControl(endpoint, timeout=5.0, retries=4)
        harness.wait_for(lambda: ctl.state(), SLOW, what="bic-sim control")
        got = probe("000C0300#2000", "000C0300#2000C409", "000C0300#2000",
                    "000C0302#8300", "000C0302#7000", "000C03FF#2000")
        assert got == ["< 000C0200#20006009", "< 000C0200#2000C409",
                       "< 000C0202#8300" + "30302D393620"], got
        assert ctl.device(0)["registers"]["VOUT_SET"] == 2500
        c = ctl.counters()["bus"]
        assert c["requests"] == 6 and c["replies"] == 3, c
        ctl.close()


if __name__ == "__main__":
    harness.run_tests()
