#!/usr/bin/python3
"""The demo's live view and summary (started by tools/demo.sh).

Twice a second it asks bic-sim (its control socket) for the household and the device's true
state, and listens on MQTT to what the bridge and the controller publish; it draws one screen
with plain ANSI escapes, or prints plain lines when stdout is not a terminal. It integrates the
grid power with the battery (the meter reading) and without it (load - PV) over the household
clock, and prints a summary when the day is over, after --seconds, or on Ctrl-C.

Exit status: 0 after the summary, 1 when a program of the stack died or the simulator stopped
answering, 2 for bad arguments.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time

try:
    import zmq
    import paho.mqtt.client as paho_mqtt
except ImportError as e:  # demo.sh checks this first; say it clearly anyway
    sys.stderr.write("demo: %s (Debian packages python3-zmq, python3-paho-mqtt)\n" % e)
    sys.exit(2)

DAY_S = 86400.0
REFRESH_S = 0.5
PLAIN_PERIOD_S = 2.0
HISTORY = 72  # bars in the grid chart


# ---------------------------------------------------------------------------- arguments

def parse_args(argv):
    p = argparse.ArgumentParser(description="bic2mqtt demo view")
    p.add_argument("--broker", required=True, help="HOST:PORT of the demo's broker")
    p.add_argument("--topic", required=True, help="the bridge's TopicMain")
    p.add_argument("--meter-topic", required=True)
    p.add_argument("--sim", required=True, help="bic-sim control endpoint")
    p.add_argument("--speed", type=float, required=True)
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--logs", default=None, help="folder with the programs' logs")
    p.add_argument("--watch-pid", type=int, action="append", default=[],
                   help="a program of the stack; the demo ends if it dies")
    p.add_argument("--dev", type=int, default=0)
    p.add_argument("--remove-if-orphaned", default=None, metavar="DIR",
                   help="if demo.sh is gone when the view ends (killed with SIGKILL), stop "
                        "the watched programs and remove DIR, as demo.sh would have")
    a = p.parse_args(argv)
    host, _, port = a.broker.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        p.error("--broker '%s': expected HOST:PORT with PORT 1-65535" % a.broker)
    a.host, a.port = host, int(port)
    if not 0.01 <= a.speed <= 10000:
        p.error("--speed %g: allowed 0.01-10000" % a.speed)
    if a.seconds is not None and a.seconds <= 0:
        p.error("--seconds must be positive")
    return a


# ---------------------------------------------------------------------------- sources

class SimControl:
    """bic-sim's control socket, Lazy Pirate: a fresh socket after a timeout."""

    def __init__(self, endpoint, timeout_s=1.5):
        self.endpoint = endpoint
        self.timeout_ms = int(timeout_s * 1000)
        self.ctx = zmq.Context.instance()
        self.sock = None
        self.failures = 0

    def _socket(self):
        if self.sock is None:
            self.sock = self.ctx.socket(zmq.REQ)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(self.endpoint)
        return self.sock

    def request(self, cmd, **fields):
        """The reply dict, or None when bic-sim did not answer in time."""
        s = self._socket()
        s.send(json.dumps(dict(fields, cmd=cmd)).encode())
        if s.poll(self.timeout_ms):
            r = json.loads(s.recv().decode("utf-8", "replace"))
            self.failures = 0
            return r if r.get("ok") else None
        s.close(linger=0)
        self.sock = None
        self.failures += 1
        return None

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None


class Mqtt:
    """The last payload of every topic under TopicMain and of the meter."""

    def __init__(self, host, port, subs):
        self.lock = threading.Lock()
        self.last = {}
        self.count = 0
        self.connected = False
        cid = "bic2mqtt-demo-view-%d" % os.getpid()
        try:  # paho 2.x
            self.client = paho_mqtt.Client(paho_mqtt.CallbackAPIVersion.VERSION1, client_id=cid)
        except AttributeError:  # paho 1.x (Debian 12)
            self.client = paho_mqtt.Client(client_id=cid)
        self.subs = subs
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, rc):
        if rc == 0:
            self.connected = True
            for t in self.subs:
                client.subscribe(t)

    def _on_disconnect(self, client, userdata, rc):
        self.connected = False

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.last[msg.topic] = msg.payload.decode("utf-8", "replace")
            self.count += 1

    def get(self, topic):
        with self.lock:
            return self.last.get(topic)

    def json(self, topic):
        p = self.get(topic)
        try:
            return json.loads(p) if p else None
        except ValueError:
            return None

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


# ---------------------------------------------------------------------------- the tally

class Tally:
    """Grid energy with the battery (the meter) and without it (load - PV), integrated over
    the household clock with the trapezoid rule, plus the device counters at start and now."""

    def __init__(self):
        self.covered_s = 0.0
        self.prev = None  # (t_s, grid_with_w, grid_without_w)
        self.import_with = self.export_with = 0.0  # Wh
        self.import_without = self.export_without = 0.0
        self.first_t = None
        self.last_t = None
        self.dev0 = None  # device state at the first sample
        self.dev = None  # latest device state
        self.counters0 = None
        self.counters = None
        self.history = []  # grid with battery, one value per chart bar

    def add(self, hh, dev, counters):
        t = float(hh["t_s"])
        g_with = float(hh["meter_w"])
        g_without = float(hh["load_w"]) - float(hh["pv_w"])
        if self.prev is not None:
            dt = t - self.prev[0]
            if dt < 0:  # the replayed day started again
                dt += DAY_S
            dt = min(dt, 3600.0)  # a stall is not a gap to bridge
            self.covered_s += dt
            for now, before, attr in ((g_with, self.prev[1], "with"),
                                      (g_without, self.prev[2], "without")):
                imp = (max(now, 0.0) + max(before, 0.0)) / 2 * dt / 3600.0
                exp = (max(-now, 0.0) + max(-before, 0.0)) / 2 * dt / 3600.0
                setattr(self, "import_" + attr, getattr(self, "import_" + attr) + imp)
                setattr(self, "export_" + attr, getattr(self, "export_" + attr) + exp)
        else:
            self.first_t = t
        self.prev = (t, g_with, g_without)
        self.last_t = t
        if dev is not None:
            if self.dev0 is None:
                self.dev0 = dev
            self.dev = dev
        if counters is not None:
            if self.counters0 is None:
                self.counters0 = counters
            self.counters = counters
        # One bar per 1/HISTORY of a day.
        slot = int(self.covered_s / (DAY_S / HISTORY))
        while len(self.history) <= slot:
            self.history.append(g_with)
        self.history[slot] = g_with
        del self.history[:-HISTORY]

    def battery_wh(self):
        """(charged, discharged) Wh at the battery terminals since the first sample."""
        if self.dev0 is None or self.dev is None:
            return 0.0, 0.0
        b0, b = self.dev0.get("battery", {}), self.dev.get("battery", {})
        return (b.get("charged_wh", 0) - b0.get("charged_wh", 0),
                b.get("discharged_wh", 0) - b0.get("discharged_wh", 0))

    def eeprom(self):
        """(total persisted writes of the device, of which during the run)."""
        if self.dev is None:
            return 0, 0
        total = self.dev.get("eeprom_writes_total", 0)
        return total, total - self.dev0.get("eeprom_writes_total", 0)

    def pacing(self):
        if self.counters is None:
            return 0
        return self.counters.get("bus", {}).get("pacing_violations", 0)


# ---------------------------------------------------------------------------- formatting

def hhmm(t_s):
    t = int(t_s) % int(DAY_S)
    return "%02d:%02d" % (t // 3600, t % 3600 // 60)


def mmss(s):
    s = int(s)
    return "%d:%02d" % (s // 60, s % 60)


def watts(v, sign=False):
    if v is None:
        return "-"
    return ("%+.0f W" if sign else "%.0f W") % v


def kwh(wh):
    return "%.2f kWh" % (wh / 1000.0)


def chart(values, width):
    """Grid power with the battery, one character per bar: '#' import, '=' export, '.' near
    zero (within 50 W)."""
    out = []
    for v in values[-width:]:
        out.append("." if abs(v) < 50 else ("#" if v > 0 else "="))
    return "".join(out)


class View:
    def __init__(self, args, tty):
        self.a = args
        self.tty = tty
        self.t0 = time.monotonic()
        self.next_plain = 0.0
        topic = args.topic
        self.dev = args.dev
        self.t_control = "%s/inv/%d/control" % (topic, self.dev)
        self.t_state = "%s/inv/%d/state" % (topic, self.dev)
        self.t_charge = "%s/inv/%d/charge" % (topic, self.dev)
        self.t_sys = "%s/sys/state" % topic
        self.t_ctl = "%s/ctl/%d/state" % (topic, self.dev)
        b = "mosquitto_sub -h %s -p %d" % (args.host, args.port)
        self.topics = [
            ("everything", "%s -t '%s/#' -v" % (b, topic)),
            ("the controller", "%s -t '%s' -v" % (b, self.t_control)),
            ("the meter", "%s -t '%s' -v" % (b, args.meter_topic)),
            ("Home Assistant", "%s -t 'homeassistant/#' -v" % b),
        ]

    def _ctl(self, mqtt):
        c = mqtt.json(self.t_control)
        if not isinstance(c, dict):
            return None
        return c

    def lines(self, tally, hh, mqtt):
        """The screen, one string per line."""
        elapsed = time.monotonic() - self.t0
        dev = tally.dev or {}
        c = self._ctl(mqtt)
        L = []
        L.append("bic2mqtt demo: a simulated BIC-2200-24 on a 24 V LiFePO4 battery, a household "
                 "day at %gx" % self.a.speed)
        L.append("")
        day_pct = min(100.0, tally.covered_s / DAY_S * 100)
        L.append("  time of day       %s   (%.0f %% of the day replayed, %s real)"
                 % (hhmm(hh["t_s"]), day_pct, mmss(elapsed)))
        L.append("  household load    %8s" % watts(hh["load_w"]))
        L.append("  PV                %8s" % watts(hh["pv_w"]))
        bw = hh.get("battery_w")
        what = "idle"
        if bw is not None and bw > 5:
            what = "charging"
        elif bw is not None and bw < -5:
            what = "discharging"
        L.append("  battery (AC)      %8s   %s, %.2f V %+.1f A"
                 % (watts(bw, True), what, dev.get("dc_v", 0), dev.get("dc_a", 0)))
        g = hh["meter_w"]
        L.append("  grid              %8s   %s   (without battery: %s)"
                 % (watts(g, True), "import" if g > 0 else "export" if g < 0 else "",
                    watts(hh["load_w"] - hh["pv_w"], True)))
        soc = dev.get("battery", {}).get("soc_pct", dev.get("soc_pct"))
        L.append("  SOC               %8s" % ("-" if soc is None else "%.1f %%" % soc))
        if c:
            sp = c.get("setpoint") or {}
            L.append("  setpoint          %8s   %s, %.2f A"
                     % (watts(sp.get("power_w")), sp.get("mode", "none"),
                        sp.get("current_a") or 0))
            L.append("  controller        %s: %s" % (c.get("mode"), c.get("reason")))
            lim = c.get("limit") or {}
            if lim.get("active"):
                L.append("                    limit: %s" % lim.get("why"))
        else:
            L.append("  setpoint                 -")
            L.append("  controller        (waiting for %s)" % self.t_control)
        total, during = tally.eeprom()
        L.append("  EEPROM writes     %8d   (%d during the run)" % (total, during))
        L.append("  pacing violations %8d" % tally.pacing())
        L.append("  bridge            %s; %d MQTT messages seen"
                 % (mqtt.get(self.t_sys) or "(not yet on MQTT)", mqtt.count))
        L.append("")
        L.append("  grid so far       import %s, export %s (without battery: %s, %s)"
                 % (kwh(tally.import_with), kwh(tally.export_with),
                    kwh(tally.import_without), kwh(tally.export_without)))
        L.append("  grid over the day [%s]" % chart(tally.history, HISTORY).ljust(HISTORY))
        L.append("                     # import  = export  . within 50 W of zero")
        L.append("")
        L.append("MQTT (broker %s:%d), for example:" % (self.a.host, self.a.port))
        for what_, cmd in self.topics:
            L.append("  %s   # %s" % (cmd, what_))
        L.append("")
        L.append("Ctrl-C stops the demo" + (" (it ends by itself after %s)"
                                           % mmss(self.a.seconds) if self.a.seconds else
                                           " (it ends by itself after one day)"))
        return L

    def draw(self, tally, hh, mqtt):
        if self.tty:
            cols = shutil.get_terminal_size((100, 30)).columns
            out = ["\x1b[H"]
            width = max(cols - 1, 20)
            for line in self.lines(tally, hh, mqtt):
                # Wrapped, not cut: the mosquitto_sub lines must stay whole to be copied.
                while len(line) > width:
                    out.append(line[:width] + "\x1b[K\n")
                    line = line[width:]
                out.append(line + "\x1b[K\n")
            out.append("\x1b[J")
            sys.stdout.write("".join(out))
            sys.stdout.flush()
            return
        now = time.monotonic()
        if now < self.next_plain:
            return
        self.next_plain = now + PLAIN_PERIOD_S
        dev = tally.dev or {}
        c = self._ctl(mqtt) or {}
        sp = c.get("setpoint") or {}
        soc = dev.get("battery", {}).get("soc_pct")
        print("%s load %5.0f W  pv %5.0f W  battery %+6.0f W  grid %+6.0f W (without %+6.0f W)"
              "  soc %s  setpoint %s %s  ctl %s: %s  eeprom %d"
              % (hhmm(hh["t_s"]), hh["load_w"], hh["pv_w"], hh.get("battery_w") or 0,
                 hh["meter_w"], hh["load_w"] - hh["pv_w"],
                 "-" if soc is None else "%.1f %%" % soc, sp.get("mode", "none"),
                 watts(sp.get("power_w")), c.get("mode", "-"), c.get("reason", "-"),
                 tally.eeprom()[0]), flush=True)

    def header(self):
        if self.tty:
            sys.stdout.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear the screen
            sys.stdout.flush()
            return
        print("demo: MQTT broker %s:%d; subscribe with e.g.:" % (self.a.host, self.a.port))
        for what, cmd in self.topics:
            print("  %s   # %s" % (cmd, what))
        print("demo: one line every %g s (household time first)" % PLAIN_PERIOD_S, flush=True)

    def restore(self):
        if self.tty:
            sys.stdout.write("\x1b[?25h\n")
            sys.stdout.flush()


def summary(tally, elapsed_s, why):
    charged, discharged = tally.battery_wh()
    total, during = tally.eeprom()
    dev0, dev = tally.dev0 or {}, tally.dev or {}
    soc0 = dev0.get("battery", {}).get("soc_pct")
    soc1 = dev.get("battery", {}).get("soc_pct")
    span = "-"
    if tally.first_t is not None:
        span = "%s to %s" % (hhmm(tally.first_t), hhmm(tally.last_t))
    ex_with = tally.import_with + tally.export_with
    ex_without = tally.import_without + tally.export_without
    print()
    print("bic2mqtt demo summary (%s)" % why)
    print("  household time     %.1f h (%s) in %s real" % (tally.covered_s / 3600.0, span,
                                                        mmss(elapsed_s)))
    print("                     %16s %16s" % ("without battery", "with battery"))
    print("  grid import        %16s %16s" % (kwh(tally.import_without), kwh(tally.import_with)))
    print("  grid export        %16s %16s" % (kwh(tally.export_without), kwh(tally.export_with)))
    print("  grid exchange      %16s %16s" % (kwh(ex_without), kwh(ex_with)))
    if ex_without > 0:
        print("  the battery cut the grid exchange by %.0f %%"
              % ((ex_without - ex_with) / ex_without * 100))
    print("  battery            charged %s, discharged %s (at its terminals)"
          % (kwh(charged), kwh(discharged)))
    if soc0 is not None and soc1 is not None:
        print("  SOC                %.1f %% -> %.1f %%" % (soc0, soc1))
    per = (tally.dev or {}).get("eeprom_writes") or {}
    detail = ", ".join("%s %d" % (k, v) for k, v in sorted(per.items()) if v)
    print("  EEPROM writes      %d (%d during the run)%s"
          % (total, during, "; by register: " + detail if detail else ""))
    print("  pacing violations  %d" % tally.pacing())
    sys.stdout.flush()


# ---------------------------------------------------------------------------- main loop

def proc_alive(pid):
    """True while pid runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def proc_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "pid %d" % pid


def orphan_cleanup(a, parent):
    """demo.sh died without cleaning up (SIGKILL): the programs got SIGTERM from the kernel
    (setpriv --pdeathsig); make sure they are gone, then remove the temporary directory."""
    if os.getppid() == parent or not a.remove_if_orphaned:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(proc_alive(p) for p in a.watch_pid):
        time.sleep(0.1)
    for pid in a.watch_pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(a.remove_if_orphaned, ignore_errors=True)


def main(argv):
    a = parse_args(argv)
    parent = os.getppid()
    stop = {"why": None}

    def on_signal(signum, frame):
        stop["why"] = "stopped by Ctrl-C" if signum == signal.SIGINT else "stopped"

    # demo.sh starts the view in the background, where SIGINT is ignored: take it back.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    names = {pid: proc_name(pid) for pid in a.watch_pid}

    tty = sys.stdout.isatty()
    sim = SimControl(a.sim)
    mqtt = Mqtt(a.host, a.port, ["%s/#" % a.topic, a.meter_topic])
    view = View(a, tty)
    tally = Tally()
    t0 = time.monotonic()
    status = 0
    view.header()
    try:
        deadline = time.monotonic()
        while stop["why"] is None:
            for pid in a.watch_pid:
                if not proc_alive(pid):
                    stop["why"] = "%s exited" % names[pid]
                    status = 1
            if stop["why"]:
                break
            r = sim.request("state", dev=a.dev)
            cnt = sim.request("counters", dev=a.dev)
            if r is None or "household" not in r:
                if sim.failures >= 5:
                    stop["why"] = "bic-sim does not answer on %s" % a.sim
                    status = 1
                    break
            else:
                tally.add(r["household"], r["devices"][0], cnt)
                view.draw(tally, r["household"], mqtt)
            elapsed = time.monotonic() - t0
            if a.seconds is not None and elapsed >= a.seconds:
                stop["why"] = "%s elapsed" % mmss(a.seconds)
            elif a.seconds is None and tally.covered_s >= DAY_S:
                stop["why"] = "one day replayed"
            deadline += REFRESH_S
            wait = deadline - time.monotonic()
            if wait < 0:  # fell behind (busy machine): keep the pace from now on
                deadline = time.monotonic()
                wait = 0
            time.sleep(wait)
    finally:
        view.restore()
        mqtt.close()
        sim.close()
    if status:
        print("demo: %s" % stop["why"], file=sys.stderr)
        for pid in a.watch_pid:
            log = os.path.join(a.logs or "", names[pid] + ".log")
            if a.logs and not proc_alive(pid) and os.path.exists(log):
                with open(log, errors="replace") as f:
                    tail = f.read().splitlines()[-20:]
                print("---- last lines of %s's log ----" % names[pid], file=sys.stderr)
                print("\n".join(tail), file=sys.stderr)
    summary(tally, time.monotonic() - t0, stop["why"])
    orphan_cleanup(a, parent)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
