"""bic-mqtt-bridge keeps serving through restarts of its peers, without a restart of its own:
after a broker restart (which loses every retained message here: no persistence) it
reconnects, restores its subscriptions and republishes state and discovery; after a gateway
restart its devices go unavailable, come back, and commands work again."""

import json
import time

import harness
from bridge_stack import Stack, T


def test_broker_restart_reconnect_and_republish():
    with Stack() as s:
        pid = s.bridge.pid
        s.client.close()
        s.broker.stop()
        time.sleep(3)  # the bridge's first reconnect attempts fail
        s.broker.restart()
        s.client = harness.MqttClient(s.broker)
        # Retained state is back (republished by the bridge, not kept by the broker).
        s.client.wait_message(T + "/sys/state", lambda p: p == "running", timeout=40)
        s.client.wait_message(T + "/inv/0/availability", lambda p: p == "online", timeout=10)
        s.wait_json("inv/0/info", timeout=10)
        s.wait_json("inv/0/state", timeout=10)
        s.client.wait_message("homeassistant/switch/test_bic/bic0_output/config", timeout=10)
        app = json.loads(s.client.wait_message(T, lambda p: json.loads(p)["conCnt"] >= 2,
                                               timeout=10))
        assert app["appName"] == "bic2mqtt", app
        # Subscriptions were restored: a command works.
        res = s.command("inv/0/state/set", "1")
        assert res["ok"], res
        assert s.bridge.alive() and s.bridge.pid == pid


def test_bridge_started_before_the_broker():
    with Stack() as s:
        s.bridge.stop()
        s.client.close()
        s.broker.stop()
        s.start_bridge(wait=False)
        time.sleep(2.5)
        assert s.bridge.alive(), s.bridge.output()
        s.broker.restart()
        s.client = harness.MqttClient(s.broker)
        s.client.wait_message(T + "/sys/state", lambda p: p == "running", timeout=40)
        s.wait_json("inv/0/state", timeout=10)


def test_gateway_restart_recovers():
    with Stack() as s:
        s.gateway.stop()
        after = time.monotonic()
        # Silence from the gateway: devices unavailable, state says offline.
        s.client.wait_message(T + "/inv/0/availability", lambda p: p == "offline", timeout=30,
                              after=after)
        st = s.wait_json("inv/0/state", lambda st: st["onlMode"] == "offline", after=after)
        f = s.wait_json("inv/0/fault", lambda f: f["can"]["active"] == 1, after=after)
        # A command while the gateway is away gets an error result at once, not silence.
        res = s.command("inv/0/chargeV/set", "27.1", timeout=5)
        assert res["ok"] is False and res["error"]["code"] == "gateway_unreachable", res

        after = time.monotonic()
        s.start_gateway()
        s.client.wait_message(T + "/inv/0/availability", lambda p: p == "online", timeout=30,
                              after=after)
        st = s.wait_json("inv/0/state", lambda st: st["onlMode"] != "offline", after=after)
        assert st["dcBatV"] is not None
        # Gateway events reach MQTT as the gateway sent them.
        ev = s.wait_json("inv/0/event", lambda e: e["event"] == "online", after=after)
        assert ev["dev"] == 0 and ev["v"] == 1, ev
        res = s.command("inv/0/chargeV/set", "27.1")
        assert res["ok"], res
        harness.wait_for(lambda: s.regs(0)["VOUT_SET"] == 2710, 10, what="VOUT_SET 27.1 V")
        assert s.bridge.alive()
        assert f["can"]["cnt"] >= 1


if __name__ == "__main__":
    harness.run_tests()
