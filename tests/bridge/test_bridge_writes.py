"""The write rules seen from the broker, with the real chain (mosquitto, bic-sim, the gateway,
the bridge) and the gateway's daily EEPROM budget: the battery window refuses chargeV/set and
dischargeV/set with the allowed range; a flood of state/set 1/0 for 60 s costs at most the
budget's share of persisted writes (its switch-offs included), never switches on the device a
controller holds, never drives the bucket below zero nor more than the one switch-off after
its last switch-on into the controller's reserve, and the controller keeps control."""

import json
import threading
import time

import harness
from bridge_stack import Stack

BURST = 40            # EepromBurst: a quarter (10) is kept for the lease holder
FLOOD_S = 60


def _eeprom(s, dev):
    r = s.gateway_request({"op": "eeprom", "dev": dev})
    assert r["ok"], r
    return r["eeprom"]


def check_window(s):
    res = s.command("inv/0/chargeV/set", "19")
    assert not res["ok"] and res["error"]["code"] == "out_of_range", res
    assert res["error"]["min"] == 24 and res["error"]["max"] == 27.6, res
    assert "24-27.6 V" in res["error"]["message"], res
    res = s.command("inv/0/dischargeV/set", "28")
    assert not res["ok"] and res["error"]["code"] == "out_of_range", res
    assert res["error"]["max"] == 27.6, res
    regs = s.regs(0)
    assert regs["VOUT_SET"] == 2760 and regs["REVERSE_VOUT_SET"] == 2400, regs
    # within the window: written at once, and the result says so
    res = s.command("inv/0/chargeV/set", "27.5")
    assert res["ok"] and res["result"]["outcome"] == "written", res
    res = s.command("inv/0/chargeV/set", "27.5")
    assert res["ok"] and res["result"]["outcome"] == "unchanged", res


def test_flood_costs_at_most_the_share_and_the_controller_keeps_control():
    with Stack(devices=(0, 1), gateway_extra={"EepromWritesPerDay": 1095, "EepromBurst": BURST,
                                              "EepromMinSpacingSec": 20}) as s:
        check_window(s)
        # a controller holds device 0 and drives it through the flood
        r = s.gateway_request({"op": "setpoint", "dev": 0, "client": "ctl", "mode": "charge",
                               "current_a": 10, "lease_ttl_s": 30})
        assert r["ok"], r
        token = r["token"]  # the controller's lease is its by this token
        ops0 = s.sim.control.eeprom_writes(0)["OPERATION"]
        before1 = s.sim.control.eeprom_writes(1)
        tokens1 = _eeprom(s, 1)["tokens"]
        lows = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                lows.append((_eeprom(s, 0)["tokens"], _eeprom(s, 1)["tokens"]))
                time.sleep(0.5)
        w = threading.Thread(target=watch)
        w.start()
        flood = s.fresh_client(subscribe=())
        ctl_replies = []
        try:
            end = time.monotonic() + FLOOD_S
            n = 0
            next_ctl = time.monotonic()
            while time.monotonic() < end:
                # device 1 on and off; device 0 (the controller's) on only: a person's off
                # goes through a controller's lease (tests/ctld/test_ctld_state_set.py)
                flood.publish(s.topic("inv/1/state/set"), "1" if n % 2 else "0")
                flood.publish(s.topic("inv/0/state/set"), "1")
                n += 1
                if time.monotonic() >= next_ctl:
                    # the controller lowers and raises its current every 2 s: a lower one goes
                    # out at once, a higher one after the spacing
                    amps = 8 if len(ctl_replies) % 2 == 0 else 10
                    ctl_replies.append((amps, s.gateway_request(
                        {"op": "setpoint", "dev": 0, "client": "ctl", "mode": "charge",
                         "current_a": amps, "lease_ttl_s": 30, "token": token})))
                    next_ctl += 2
                time.sleep(0.02)
        finally:
            stop.set()
            w.join()
            flood.close()
        assert n > 1000, n
        # the controller was never refused, and its lower currents went out at once
        for amps, r in ctl_replies:
            assert r["ok"], r
            if amps == 8:
                assert r["deferred"] is False, r
        # the flood never reached the controller's device
        assert s.sim.control.eeprom_writes(0)["OPERATION"] == ops0
        # device 1: at most its share (above the reserve) and the refill over the minute,
        # switch-ons and switch-offs together, and the one switch-off after the last switch-on
        after1 = s.sim.control.eeprom_writes(1)
        cost = sum(after1.values()) - sum(before1.values())
        share = tokens1 - BURST // 4 + 1095 * (FLOOD_S + 30) / 86400.0
        print("flood: %d state/set per device in %d s; device 1: %d persisted writes, share "
              "%.1f; device 0 (the controller's): %d; lowest bucket %.2f / %.2f" %
              (n, FLOOD_S, cost, share, s.sim.control.eeprom_writes(0)["OPERATION"] - ops0,
               min(t for t, _ in lows), min(t for _, t in lows)))
        assert cost > 10, (cost, after1)  # the flood did toggle it
        assert cost <= int(share) + 2, (cost, share, after1)
        # the bucket never went below zero, and the flood took from the reserve at most the one
        # switch-off after its last switch-on
        assert all(t0 >= 0 and t1 >= BURST // 4 - 1.01 for t0, t1 in lows), lows
        # the lease holder of device 1 still has its reserve (resumed by a person: the flood's
        # last command may have been an off, which holds the device off for a controller)
        r = s.gateway_request({"op": "setpoint", "dev": 1, "client": "ctl", "mode": "charge",
                               "current_a": 12, "lease_ttl_s": 30, "resume": True,
                               "token": token})
        assert r["ok"] and r["deferred"] is False, r
        harness.wait_for(lambda: s.regs(1)["IOUT_SET"] == 1200, 10, what="holder's write")
        # a refused switch-on tells why and what to do
        s.gateway_request({"op": "lease", "dev": 1, "client": "ctl", "action": "release",
                           "token": token})
        s.command("inv/1/state/set", "0")
        res = s.command("inv/1/state/set", "1")
        if not res["ok"]:
            assert res["error"]["code"] == "eeprom_budget", res
            assert "kept for the device's controller" in res["error"]["reason"], res
            assert res["error"]["remedy"], res


if __name__ == "__main__":
    harness.run_tests()
