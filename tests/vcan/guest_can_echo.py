"""Runs inside the guest kernel: proves SocketCAN works on vcan0.

Sends a BIC-2200-style extended frame from one raw socket and receives it on another, then
takes the interface down (a send must fail with ENETDOWN, the way a gateway sees an unplugged
adapter) and up again (traffic flows again). Exit status 0 only if all of that held.
"""
import errno
import socket
import struct
import subprocess
import sys

FRAME = "=IB3x8s"  # struct can_frame: id, dlc, pad, data


def frame(can_id, data):
    return struct.pack(FRAME, can_id | socket.CAN_EFF_FLAG, len(data), data.ljust(8, b"\0"))


def open_raw(iface):
    s = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    s.bind((iface,))
    s.settimeout(5)
    return s


def main():
    iface = sys.argv[1] if len(sys.argv) > 1 else "vcan0"
    tx, rx = open_raw(iface), open_raw(iface)
    # Controller to device 0: read READ_VOUT (0x0060), as on the real bus.
    tx.send(frame(0x000C0300, b"\x60\x00"))
    can_id, dlc, data = struct.unpack(FRAME, rx.recv(16))
    if can_id & socket.CAN_EFF_MASK != 0x000C0300 or data[:dlc] != b"\x60\x00":
        print(f"wrong frame back: id={can_id:#x} data={data[:dlc].hex()}")
        return 1
    print(f"echo ok id={can_id & socket.CAN_EFF_MASK:#010x} data={data[:dlc].hex()}")

    subprocess.run(["ip", "link", "set", iface, "down"], check=True)
    try:
        tx.send(frame(0x000C0300, b"\x60\x00"))
        print("send on a down interface did not fail")
        return 1
    except OSError as e:
        if e.errno != errno.ENETDOWN:
            print(f"send on a down interface: {e} (expected ENETDOWN)")
            return 1
    print("down: ENETDOWN")

    subprocess.run(["ip", "link", "set", iface, "up"], check=True)
    tx.send(frame(0x000C0301, b"\x60\x00"))
    # A socket bound to the interface reports the down once, as ENETDOWN on its next
    # receive, and then works again: a reader must treat that as a state, not as the end.
    reported = False
    while True:
        try:
            can_id, dlc, data = struct.unpack(FRAME, rx.recv(16))
        except OSError as e:
            if e.errno != errno.ENETDOWN or reported:
                raise
            reported = True
            continue
        if can_id & socket.CAN_EFF_MASK == 0x000C0301:
            break
    print(f"up: traffic again (receiver saw ENETDOWN once: {reported})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
