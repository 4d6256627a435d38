"""The EEPROM budget holds whoever asks, against the real bic-sim: a client that alternates a
person's charge (written at once within the budget) and a stop (toward safety: never refused)
as fast as the gateway answers makes the device take no more persisted writes than the bucket
held, plus its refill, plus the few writes of one stop. The device's own EEPROM counter is the
measure. The stop is never refused, and once the budget is spent it finds the device already
stopped."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, assert_no_pacing_violations, gateway_ini  # noqa: E402

PER_DAY = 43200  # a token every 2 s: the refill shows within the test
BURST = 6
SECONDS = 20.0
STOP_WRITES = 4  # the most one stop writes: both currents, OPERATION, the direction


def _persisted(sim):
    return sum(sim.control.eeprom_writes(0).values())


def _alternate(c, charger, stopper):
    """Charge and stop in turn for SECONDS; returns (charges written, charges refused,
    stops)."""
    written = refused = stops = 0
    end = time.monotonic() + SECONDS
    amps = 10
    while time.monotonic() < end:
        amps = 11 if amps == 10 else 10  # a new current each time: every charge costs writes
        r = c.call("setpoint", dev=0, client=charger, mode="charge", current_a=amps,
                   manual=True, lease_ttl_s=60)
        if r.get("ok"):
            written += 1
        else:
            assert r["error"]["code"] == "eeprom_budget", r
            refused += 1
        r = c.call("setpoint", dev=0, client=stopper, mode="stop", manual=True)
        assert r.get("ok"), r  # a stop is never refused
        stops += 1
    return written, refused, stops


def _flood(stopper):
    tmp = harness.temp_dir()
    # old firmware: no EEP_OFF, every set-point change persists
    with harness.Sim(devices=["0:24:fw=old"]) as sim:
        ini = gateway_ini(sim, tmp, ApplyDeviceLimits=0, EepromWritesPerDay=PER_DAY,
                          EepromBurst=BURST, EepromMinSpacingSec=0)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            w0 = _persisted(sim)
            t0 = time.monotonic()
            written, refused, stops = _alternate(c, "person", stopper)
            elapsed = time.monotonic() - t0
            spent = _persisted(sim) - w0
            allowed = BURST + elapsed * PER_DAY / 86400.0
            print("stopper %s: %.1f s, %d charges written, %d refused, %d stops; persisted "
                  "writes %d, budget %.1f" % (stopper, elapsed, written, refused, stops, spent,
                                             allowed))
            # the flood ran into the budget: most charges were refused
            assert refused > written, (written, refused)
            assert spent <= allowed + STOP_WRITES, (spent, allowed)
            # the device ends stopped, and the gateway's count is the device's
            regs = sim.control.device(0)["registers"]
            assert regs["OPERATION"] == 0, regs
            ee = c.ok("eeprom", dev=0)["eeprom"]
            assert ee["writes_total"] - w0 == spent or ee["writes_total"] == _persisted(sim), ee
            # a stop on the stopped device costs nothing
            r = c.ok("setpoint", dev=0, client=stopper, mode="stop", manual=True)
            assert r["writes"] == 0, r
        assert_no_pacing_violations(sim)


def test_charge_stop_alternation_stays_within_the_budget():
    """One client (the bridge: charge/set and state/set 0), holding the lease."""
    _flood("person")


def test_stops_from_another_client_stay_within_the_budget():
    """The stops from a client without the lease: they take their tokens all the same."""
    _flood("other")


if __name__ == "__main__":
    harness.run_tests()
