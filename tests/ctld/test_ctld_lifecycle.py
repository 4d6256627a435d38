"""bic-charge-ctl comes and goes without touching the CAN link: stopping it (SIGTERM) puts the
device to idle and releases the lease, a crash (SIGKILL) lets the lease lapse into the
gateway's safe state, a restarted or second instance takes over; a second instance started
while the first runs is held off by the lease until the first stops. Throughout, the gateway
keeps its pid and its reconnect counter."""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from ctld_stack import Stack  # noqa: E402

LEASE_TTL_S = 4
MARGIN_S = 5
# Deadlines for what is not a timing claim (a process starting, the controller settling on a
# household that changes every few seconds): generous, for a loaded 2-core machine.
SETTLE_S = 30


def _charging(s):
    st = s.status()
    if not st or st["mode"] != "running" or st["setpoint"]["mode"] != "charge":
        return False
    d = s.device()
    return d["output_on"] and abs(d["dc_a"] - st["setpoint"]["current_a"]) < 2


def _idle(s):
    return abs(s.device()["dc_a"]) < 1.5


def _holder(s):
    lease = s.lease()
    return lease["holder"] if lease else None


def test_stop_restart_crash_replace_never_touch_the_can_link():
    with Stack(start_s=46920, speed=5) as s:
        gw_pid = s.gateway.pid
        reconnects = s.gw_health()["reconnects"]
        avail = s.topic("ctl/0/state")

        s.start_ctl()
        harness.wait_for(lambda: _charging(s), timeout=SETTLE_S, what="charging")

        # 1. SIGTERM: idle through the gateway, lease released, offline published.
        after = time.monotonic()
        assert s.ctl.stop() == 0
        # Released, not lapsed: a release leaves the device as it is, so only the controller's
        # own idle brings the current down.
        assert _holder(s) is None
        harness.wait_for(lambda: _idle(s), timeout=MARGIN_S, what="device idle after SIGTERM")
        s.client.wait_message(avail, lambda p: p == "offline", timeout=5, after=after)
        assert s.status()["mode"] == "stopped", s.status()

        # 2. Restarted: takes the lease and controls again.
        s.start_ctl()
        harness.wait_for(lambda: _charging(s), timeout=SETTLE_S, what="charging after a restart")

        # 3. Crash: nobody idles the device, the lease lapses into the gateway's safe state.
        crashed_name = _holder(s)
        killed = time.monotonic()
        s.ctl.kill()
        harness.wait_for(lambda: _holder(s) is None, timeout=LEASE_TTL_S + MARGIN_S,
                         what="the lease lapsing")
        harness.wait_for(lambda: _idle(s), timeout=MARGIN_S, what="the gateway's safe state")
        print("lease lapsed and device safe %.1f s after the crash (TTL %d s)"
              % (time.monotonic() - killed, LEASE_TTL_S))
        assert not s.device()["output_on"], s.device()  # [GATEWAY] SafeState=off
        s.client.wait_message(avail, lambda p: p == "offline", timeout=15, after=killed)

        # 4. A new instance replaces it (a name of its own: the old lease could not be
        #    reused by mistake).
        s.start_ctl()
        harness.wait_for(lambda: _charging(s), timeout=SETTLE_S, what="charging after the crash")
        first = _holder(s)
        assert first != crashed_name and first.startswith("charge-ctl-0-")

        # 5. A second instance while the first runs: the lease holds it off...
        started = time.monotonic()
        second = harness.start_program("bic-charge-ctl", s.ini_path, args=("-v",), tmp=s.tmp)
        s.old.append(second)
        second.wait_output("cannot take the control lease", timeout=SETTLE_S)
        assert "controlled by %s" % first in second.output()
        time.sleep(1)
        assert _holder(s) == first
        # The first goes on charging. (Not a snapshot: the setpoint follows the household and
        # the device follows the setpoint, so at any instant a step may be under way.)
        harness.wait_for(lambda: _charging(s), timeout=SETTLE_S,
                         what="the first instance charging beside the second")
        assert _holder(s) == first
        assert not re.search(r"setpoint (charge|discharge|idle|off)\b", second.output()), \
            second.output()[-2000:]
        # A command is answered once, by the instance that drives the device.
        after = time.monotonic()
        assert s.command("1")["ok"]
        harness.wait_for(lambda: _charging(s), timeout=SETTLE_S, what="charging after the toggle")
        results = [m for m in s.client.received(s.topic("inv/0/control/set/result"))
                   if m[0] >= after]
        assert len(results) == 1, results
        # ...until the first stops; then it takes over.
        s.ctl.stop()
        harness.wait_for(lambda: (_holder(s) or "").endswith("-%d" % second.pid),
                         timeout=SETTLE_S,
                         what="the second instance taking the lease")
        s.ctl = second
        harness.wait_for(lambda: _charging(s), timeout=SETTLE_S,
                         what="the second instance charging")
        # The first one's `offline` does not stick while the second one runs.
        s.client.wait_message(avail, lambda p: p == "running", timeout=5, after=started)
        harness.wait_for(lambda: s.client.last(avail) == "running", timeout=5,
                         what="availability running")

        # The CAN link was never touched.
        assert s.gateway.alive() and s.gateway.pid == gw_pid
        health = s.gw_health()
        assert health["reconnects"] == reconnects and health["bus"] == "up", health


def test_lease_taken_by_another_client_and_silent_gateway():
    with Stack(start_s=46920, speed=5) as s:
        s.start_ctl()
        harness.wait_for(lambda: _charging(s), timeout=SETTLE_S, what="charging")
        # A person takes over by hand (as the bridge's charge/set does): the controller
        # is refused, says by whom, and does not fight.
        after = time.monotonic()
        r = s.command("0")
        assert r["ok"], r
        harness.wait_for(lambda: s.lease() is None, timeout=SETTLE_S, what="lease released")
        r = s.gateway_request({"op": "lease", "client": "mqtt-bridge", "action": "take",
                               "ttl_s": 6})
        assert r["ok"], r
        assert s.command("1")["ok"]
        st = s.wait_status(lambda x: x["enabled"] and x["mode"] == "no_lease", timeout=SETTLE_S,
                           after=after)
        st = s.wait_status(lambda x: x["lease"]["note"] == "controlled by mqtt-bridge",
                           timeout=SETTLE_S, after=after)
        assert st["reason"] == "controlled by mqtt-bridge", st
        assert _holder(s) == "mqtt-bridge"
        # When the manual lease lapses, the controller takes over again.
        harness.wait_for(lambda: _charging(s), timeout=SETTLE_S, what="charging after the lapse")

        # The gateway stops answering (frozen): lease lost, published, no crash; the gateway
        # lets the lease lapse into its safe state once it runs again, and the controller
        # takes it back.
        frozen = time.monotonic()
        s.gateway.signal(signal.SIGSTOP)
        try:
            st = s.wait_status(lambda x: x["mode"] == "no_lease", timeout=15, after=frozen)
            assert st["reason"] in ("gateway not answering", "no telemetry from the gateway",
                                    "no renewal confirmed within the lease TTL"), st
        finally:
            s.gateway.signal(signal.SIGCONT)
        assert "lease lost" in s.ctl.output()
        harness.wait_for(lambda: _charging(s), timeout=SETTLE_S, what="charging after the gateway")
        assert s.ctl.alive() and s.gateway.alive()


if __name__ == "__main__":
    harness.run_tests()
