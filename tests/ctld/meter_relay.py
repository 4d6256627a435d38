"""A smart meter for the controller's tests: forwards every message of one topic (bic-sim's
true grid power) to another (the controller's TopicPower), as a meter of its own would publish
it. Killing this process is a meter that goes silent.

usage: meter_relay.py HOST PORT FROM_TOPIC TO_TOPIC
"""

import sys

import paho.mqtt.client as mqtt


def main():
    host, port, src, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    try:  # paho 2.x
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id="meter-relay-%s" % src)
    except AttributeError:  # paho 1.x
        c = mqtt.Client(client_id="meter-relay-%s" % src)

    def on_connect(client, userdata, flags, rc):
        if rc == 0:
            client.subscribe(src, qos=0)
            print("relay %s -> %s connected" % (src, dst), flush=True)

    def on_message(client, userdata, msg):
        if not msg.retain:
            client.publish(dst, msg.payload, qos=0, retain=False)

    c.on_connect = on_connect
    c.on_message = on_message
    c.connect(host, port, keepalive=10)
    c.loop_forever()


if __name__ == "__main__":
    main()
