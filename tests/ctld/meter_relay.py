"""A smart meter for the controller's tests: forwards every message of one topic (bic-sim's
true grid power) to another (the controller's TopicPower), as a meter of its own would publish
it. Killing this process is a meter that goes silent. With more topics (other simulators'
readings, e.g. one without a household: its battery's AC power alone), each forwarded reading
adds the latest of each: one meter for a house whose batteries sit on two buses.

usage: meter_relay.py HOST PORT FROM_TOPIC TO_TOPIC [ADD_TOPIC...]
"""

import sys

import paho.mqtt.client as mqtt


def main():
    host, port, src, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    adds = {t: 0.0 for t in sys.argv[5:]}
    try:  # paho 2.x
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id="meter-relay-%s" % src)
    except AttributeError:  # paho 1.x
        c = mqtt.Client(client_id="meter-relay-%s" % src)

    def on_connect(client, userdata, flags, rc):
        if rc == 0:
            client.subscribe(src, qos=0)
            for t in adds:
                client.subscribe(t, qos=0)
            print("relay %s -> %s connected" % (src, dst), flush=True)

    def on_message(client, userdata, msg):
        if msg.retain:
            return
        if msg.topic in adds:
            adds[msg.topic] = float(msg.payload)
            return
        payload = msg.payload
        if adds:
            payload = "%.1f" % (float(msg.payload) + sum(adds.values()))
        client.publish(dst, payload, qos=0, retain=False)

    c.on_connect = on_connect
    c.on_message = on_message
    c.connect(host, port, keepalive=10)
    c.loop_forever()


if __name__ == "__main__":
    main()
