"""The seed's surplus switches with the real processes: bic-sim replays the shared clear March
day (data/profiles/p1_clear_march.csv) fast from late morning, the hourly profile lets the
battery take only 500 W, so PV power is exported that the battery cannot take. The switch
turns on at midday ("1" retained on its topic), the bridge shows that surplus as `surplusP`,
and when the sun is gone the switch is off ("0") again."""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from ctld_stack import Stack  # noqa: E402

SWITCH = "home/boiler/set"
START_H = 11.5
SPEED = 300  # a household hour in 12 s


def _hour(s):
    return s.household()["t_s"] / 3600.0


def test_switch_on_at_midday_and_off_again():
    with Stack(start_s=int(START_H * 3600), speed=SPEED,
               ctl={"Id/0/Profile/Hour/0/MaxChargePower": 500,
                    "Id/0/Profile/Hour/0/MaxDischargePower": -1000}) as s:
        s.ini["SURPLUS_SWITCH"] = {"Id/0/SwitchDelaySec": 2,
                                   "Id/0/switch/0/SurplusMinP": 1000,
                                   "Id/0/switch/0/Topic": SWITCH,
                                   "Id/0/switch/0/Name": "boiler",
                                   "Id/0/switch/0/MinDurationMin": 0}
        s.write_ini()
        bridge = harness.start_program("bic-mqtt-bridge", s.ini_path, tmp=s.tmp)
        s.old.append(bridge)
        s.start_ctl()
        # At start the controller says where every switch stands.
        s.client.wait_message(SWITCH, lambda p: p == "0", timeout=15)
        late = harness.MqttClient(s.broker, subscribe=(SWITCH,))
        try:  # retained, as in the seed
            late.wait_message(SWITCH, timeout=10)
            assert all(r for _, _, _, r in late.received(SWITCH)), late.received(SWITCH)
        finally:
            late.close()

        s.client.wait_message(SWITCH, lambda p: p == "1", timeout=60)
        on_h = _hour(s)
        assert START_H <= on_h <= 14.5, "switched on at %.2f h, not at midday" % on_h
        # The bridge shows the surplus the battery could not take, and sums it.
        charge = json.loads(s.client.wait_message(
            s.topic("inv/0/charge"), lambda p: json.loads(p)["surplusP"] >= 1000, timeout=20))
        assert charge["surplusP"] <= 5000, charge
        st = s.status()
        assert st["limit"]["why"] == "hourly charge limit", st
        # Home Assistant sees the switch.
        disc = s.client.last("homeassistant/binary_sensor/%s/ctl0_switch0/config"
                             % s.topic("").strip("/").replace("/", "_"))
        assert disc and json.loads(disc)["stat_t"] == SWITCH, disc

        # Evening: no PV left, the switch is off again and stays off.
        harness.wait_for(lambda: _hour(s) >= 18.6, timeout=150, interval=1,
                         what="household evening")
        after = time.monotonic()
        assert s.client.last(SWITCH) == "0", [p for _, t, p, _ in s.client.received()
                                              if t == SWITCH]
        offs = [p for _, t, p, _ in s.client.received() if t == SWITCH]
        assert "0" in offs[offs.index("1"):], offs
        charge = json.loads(s.client.wait_message(s.topic("inv/0/charge"), timeout=20,
                                                  after=after))
        # (surplusKWh sums real time, a few seconds of it here: the unit test checks the sum.)
        assert charge["surplusP"] == 0 and charge["surplusKWh"] >= 0, charge

        # A clean stop leaves no load switched on.
        s.ctl.stop()
        assert s.client.last(SWITCH) == "0"
        assert bridge.alive()


if __name__ == "__main__":
    harness.run_tests()
