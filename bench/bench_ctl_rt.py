#!/usr/bin/python3
"""bench_ctl_rt: the controller's real-time path, end to end with the real processes.

A private mosquitto, bic-sim on a pty (its frame log timestamps every CAN frame), the gateway
and bic-charge-ctl. This program is the smart meter: it publishes a grid reading that asks
for a different charge power each time, then finds, in the simulator's frame log, the first
write frame the gateway put on the bus for it. Latency = that frame's time - the publish
time (both on this machine's monotonic clock). Readings the controller does not act on (it
waits for the device to follow the previous setpoint first) are counted, not timed. The
simulator also counts the requests that broke the bus pacing rules. Targets: p50 < 5 ms,
p99 < 25 ms, no pacing violation.

With --units N (2-8) the controller drives a group of N devices on the one bus
([CHARGE_CONTROL] Id/0/Devices, each device limited to 20 A so that more than one runs), and
the latency also counts to the last setpoint write frame of the group within 500 ms of the
reading (every device's new command on the bus); target p99 < 50 ms for that. The spacing
from one device's first write frame to the next device's shows where that time goes. With
--broadcast the gateway has [GATEWAY] BroadcastWrites = 1: the group's identical writes go
as one frame to the broadcast ID (counted as a write to every device of the group; the
figures add the readings whose writes went as broadcast frames). On one gateway it also
counts, from the frame log, the reads on the bus between the group's first and last write
frame, the readings that found a device busy with a command of another step (a setpoint
write within 300 ms before the reading, or two writes to one device after it: the device's
new command waits for the gateway's answer to the one before), and the requests the gateway
served ahead of their priority meanwhile (the `aged` counter of its `gw` message).

With --gateways 2 the group is device 0 on each of two buses ([CHARGE_CONTROL] Id/0/Devices =
0,0@1): a second bic-sim on its own pty behind a second gateway on tcp://127.0.0.1 with CURVE
(tests/ctld/remote_gateway.py), each device limited to 20 A; the latency counts to the first
and to the last setpoint write frame on either bus (both simulators' frame logs, one clock),
the pacing violations of both buses together, and the readings where a device got a second
command within the window (the step acting again: its frame counts as the last). With
--takeover N, after the readings gateway 1
is killed N times (restarted in between, each time once both units have a share again) and
each kill is timed to the first group message (<T>/ctl/0/group) that leaves unit 0@1 out and
gives unit 0 the whole setpoint within its limit.

usage: BIC_BUILD_DIR=build /usr/bin/python3 bench/bench_ctl_rt.py [--count N] [--telemetry-ms MS]
       [--units N [--broadcast] | --gateways 2 [--takeover N]]
The last line is key=value figures (docs/benchmarks.md).
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.join(SRC, "tests", "ctld"))

import harness  # noqa: E402
from ctld_stack import METER, Stack  # noqa: E402
from remote_gateway import RemoteGateway  # noqa: E402

READY = "waiting for a newer meter sample"
TARGET_P50_MS = 5  # meter message -> first setpoint frame, with no pacing violation
TARGET_P99_MS = 25
TARGET_GROUP_P99_MS = 50  # meter message -> the group's last setpoint frame
BROADCAST = 0xFF  # the low byte of the broadcast ID 0x000C03FF
WRITES = {0x0000: "OPERATION", 0x0030: "IOUT_SET", 0x0100: "DIRECTION_CTRL",
          0x0130: "REVERSE_IOUT_SET"}


def first_write_after(sim, t_pub, window_s):
    """Monotonic time of the first setpoint write the simulator received after t_pub, or
    None when there was none within window_s."""
    deadline = t_pub + window_s
    while True:
        t0 = time.monotonic()
        frames = sim.control.frames(200)
        t1 = time.monotonic()
        now = (t0 + t1) / 2  # the simulator stamped its answer in between
        best = None
        for f in frames:
            if f["dir"] != "rx" or f["dlc"] <= 2:
                continue
            data = bytes.fromhex(f["data"])
            if (data[0] | data[1] << 8) not in WRITES:
                continue
            t = now - f["age_ms"] / 1000.0
            if t >= t_pub and (best is None or t < best):
                best = t
        if best is not None:
            return best
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def writes_within(sim, t_pub, window_s, units=()):
    """{device address: [monotonic times]} of the setpoint writes the simulator received
    within window_s after t_pub (asked once the window is over); a frame to the broadcast ID
    counts for every address of units."""
    time.sleep(max(0.0, t_pub + window_s - time.monotonic()))
    t0 = time.monotonic()
    frames = sim.control.frames(512)
    now = (t0 + time.monotonic()) / 2
    out = {}
    for f in frames:
        if f["dir"] != "rx" or f["dlc"] <= 2:
            continue
        data = bytes.fromhex(f["data"])
        if (data[0] | data[1] << 8) not in WRITES:
            continue
        t = now - f["age_ms"] / 1000.0
        if t_pub <= t <= t_pub + window_s:
            to = int(f["id"], 16) & 0xFF
            for dev in (units if to == BROADCAST else (to,)):
                out.setdefault(dev, []).append(t)
            if to == BROADCAST:
                out.setdefault(BROADCAST, []).append(t)
    return out


def writes_before(sim, t_pub, window_s):
    """Whether the simulator received a setpoint write within window_s before t_pub: a
    command of the step before still on the bus (its read-backs follow it) when the reading
    came."""
    t0 = time.monotonic()
    frames = sim.control.frames(512)
    now = (t0 + time.monotonic()) / 2
    for f in frames:
        data = bytes.fromhex(f["data"])
        if f["dir"] != "rx" or f["dlc"] <= 2 or (data[0] | data[1] << 8) not in WRITES:
            continue
        if t_pub - window_s <= now - f["age_ms"] / 1000.0 < t_pub:
            return True
    return False


def reads_between(sim, t_from, t_to):
    """The read requests the simulator received strictly between two times (the frames that
    went on the bus between the group's first and last setpoint write), asked at once."""
    t0 = time.monotonic()
    frames = sim.control.frames(512)
    now = (t0 + time.monotonic()) / 2
    n = 0
    for f in frames:
        if f["dir"] == "rx" and f["dlc"] == 2 and t_from < now - f["age_ms"] / 1000.0 < t_to:
            n += 1
    return n


def second_commands(sim, t_pub, window_s):
    """{device address: ms after t_pub} of the devices whose same register was written again
    within window_s after t_pub: a second command (the step acting again), not the reading's
    own. Asked once the window is over."""
    time.sleep(max(0.0, t_pub + window_s - time.monotonic()))
    t0 = time.monotonic()
    frames = sim.control.frames(512)
    now = (t0 + time.monotonic()) / 2
    seen, out = set(), {}
    for f in sorted(frames, key=lambda f: -f["age_ms"]):
        data = bytes.fromhex(f["data"])
        if f["dir"] != "rx" or f["dlc"] <= 2 or (data[0] | data[1] << 8) not in WRITES:
            continue
        t = now - f["age_ms"] / 1000.0
        key = (int(f["id"], 16) & 0xFF, data[0] | data[1] << 8)
        if t_pub <= t <= t_pub + window_s:
            if key in seen:
                out.setdefault(key[0], (t - t_pub) * 1000.0)
            seen.add(key)
    return out


def footprint(pid):
    """(RSS in kB, CPU seconds so far) of a process, from /proc."""
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def pct(values, p):
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def measure_takeover(s, gw1, kills):
    """Kills gateway 1 `kills` times once both units have a share, each timed to the first
    group message that leaves unit 0@1 out (the step that gives its share to unit 0; its
    arrival at this program's MQTT client); restarts it in between. The meter reads an export
    of 300 W until both have a share, then 0 W (balanced: the setpoint holds)."""
    out = []
    topic = s.topic("ctl/0/group")

    def both_share():
        s.client.publish(METER, "-300")
        p = s.client.last(topic)
        g = json.loads(p) if p else None
        return g and g["online"] == 2 and all(u["power_w"] > 0 for u in g["units"])

    def first_without_1(t_kill):
        for at, _, p, _ in s.client.received(topic):
            if at >= t_kill and p and not json.loads(p)["units"][1]["online"]:
                return at, json.loads(p)
        return None
    for k in range(kills):
        harness.wait_for(both_share, timeout=90, interval=0.5, what="both units sharing")
        s.client.publish(METER, "0")
        time.sleep(1.0)
        t_kill = time.monotonic()
        gw1.proc.kill()
        at, g = harness.wait_for(lambda: first_without_1(t_kill), timeout=30,
                                 what="the group without unit 0@1")
        u0 = g["units"][0]
        assert u0["power_w"] == g["setpoint_w"] or u0["current_a"] == 20, g
        out.append((at - t_kill) * 1000.0)
        gw1.start()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=40, help="meter readings to publish")
    ap.add_argument("--telemetry-ms", type=int, default=1000,
                    help="the gateway's TelemetryPeriodMs (bus load from polling)")
    ap.add_argument("--units", type=int, default=1,
                    help="devices on the bus driven as one group (1: one device)")
    ap.add_argument("--unit-max-a", type=float, default=20.0,
                    help="each device's charge current limit with --units or --gateways 2 "
                         "(A, default 20: an export of 800 W runs two of three devices; 10 "
                         "runs all three)")
    ap.add_argument("--broadcast", action="store_true",
                    help="[GATEWAY] BroadcastWrites = 1 (the group's identical writes as one "
                         "broadcast frame)")
    ap.add_argument("--gateways", type=int, default=1,
                    help="2: a group of device 0 on each of two buses and gateways")
    ap.add_argument("--takeover", type=int, default=0,
                    help="with --gateways 2: kills of gateway 1 timed to the group without it")
    a = ap.parse_args()
    if a.count < 5 or not 200 <= a.telemetry_ms <= 60000 or not 1 <= a.units <= 8:
        ap.error("--count at least 5, --telemetry-ms 200-60000, --units 1-8")
    if a.gateways not in (1, 2) or (a.gateways == 2 and a.units != 1):
        ap.error("--gateways 1 or 2, and 2 without --units")
    if not 1.0 <= a.unit_max_a <= 198.0:
        ap.error("--unit-max-a 1-198")
    if a.broadcast and (a.units < 2 or a.gateways != 1):
        ap.error("--broadcast with --units 2-8 on one gateway")
    if a.takeover and (a.gateways != 2 or not 0 < a.takeover <= 20):
        ap.error("--takeover 1-20 with --gateways 2")
    group = a.units > 1 or a.gateways == 2

    lat = []
    lat_all = []  # group: to the last write frame of every device written
    spacing = []  # group: from one device's first write frame to the next device's
    devs_written = []
    seconds = []  # --gateways 2: (reading, ms) of a device's second command in the window
    missed = 0
    ctl = {"Id/0/MeterTimeoutSec": 30, "Id/0/LeaseTtlSec": 30, "Id/0/IdleDwellSec": 0,
           "Id/0/ChargeTol": 10}
    units = tuple(range(a.units))
    device = {}
    if a.units > 1:
        ctl["Id/0/Devices"] = ",".join(str(u) for u in units)
        for u in units:
            device["Id/%d/MaxChargeCurrent" % u] = round(a.unit_max_a * 100)
    if a.gateways == 2:
        ctl["Id/0/Devices"] = "0,0@1"
        device["Id/0/MaxChargeCurrent"] = round(a.unit_max_a * 100)
    gw_keys = {"TelemetryPeriodMs": a.telemetry_ms}
    if a.broadcast:
        gw_keys["BroadcastWrites"] = 1
    bcast_readings = 0
    between = []  # one gateway: reads on the bus between the group's first and last write
    busy_at = []  # one gateway: a device with a command of another step on the bus
    running = []  # one gateway: units with a share after each reading (the group topic)
    with Stack(start_s=0, speed=1, relay=False, ctl=ctl, units=units, device=device,
               gateway=gw_keys) as s:
        sims = [s.sim]
        s.ini["ALL"]["TraceLevel"] = "info"
        if a.gateways == 2:
            gw1 = RemoteGateway(s, 20, telemetry_ms=a.telemetry_ms)
            gw1.configure_ctl(battery=0)
            sims.append(gw1.sim)
        s.write_ini()
        s.start_ctl(args=())
        # Export 800 W: the controller starts charging; from then on each reading asks for
        # 250 W more or less than the battery takes now.
        def export_800():
            s.client.publish(METER, "-800")  # a meter repeats its reading
            return s.status()["setpoint"]["mode"] == "charge"
        harness.wait_for(export_800, timeout=15, interval=0.5, what="charging")
        time.sleep(3)
        _, cpu0 = footprint(s.ctl.pid)
        aged0 = s.gw_health()["aged"]
        wall0 = time.monotonic()
        for i in range(a.count):
            # Publish when the controller acts on a new reading at once: the device has
            # followed the previous setpoint (a reading before that is only waited out).
            try:
                harness.wait_for(lambda: s.status()["reason"] == READY, timeout=10,
                                 interval=0.02, what="the controller ready for a reading")
            except harness.HarnessError:
                missed += 1
                continue
            time.sleep(0.6)  # the controller's effect margin (500 ms) after the read-back
            value = "-250" if i % 2 == 0 else "250"
            t_pub = time.monotonic()
            s.client.publish(METER, value)
            if group:
                w = {}
                for k, sim in enumerate(sims):  # (bus, address): its write frames
                    for dev, ts in writes_within(sim, t_pub, 0.5, units).items():
                        if dev == BROADCAST:
                            bcast_readings += 1
                        else:
                            w[(k, dev)] = ts
                if not w:
                    missed += 1
                    continue
                if a.gateways == 2:
                    for sim in sims:
                        seconds += [(i, ms) for ms in second_commands(sim, t_pub, 0.5).values()]
                lat.append((min(min(v) for v in w.values()) - t_pub) * 1000.0)
                lat_all.append((max(max(v) for v in w.values()) - t_pub) * 1000.0)
                firsts = sorted(min(v) for v in w.values())
                if a.gateways == 1 and len(firsts) > 1:
                    last = max(max(v) for v in w.values())
                    between.append(reads_between(s.sim, firsts[0], last))
                if a.gateways == 1:
                    busy_at.append(writes_before(s.sim, t_pub, 0.3) or
                                   any(len(v) > 1 for v in w.values()))
                spacing += [(b - a) * 1000.0 for a, b in zip(firsts, firsts[1:])]
                devs_written.append(len(w))
                if a.gateways == 1:
                    g = json.loads(s.client.last(s.topic("ctl/0/group")) or "null")
                    if g is not None:
                        running.append(sum(u["mode"] in ("charge", "discharge")
                                           for u in g["units"]))
                continue
            t = first_write_after(s.sim, t_pub, 0.5)
            if t is None:
                missed += 1
            else:
                lat.append((t - t_pub) * 1000.0)
        rss_kb, cpu1 = footprint(s.ctl.pid)
        cpu_pct = 100.0 * (cpu1 - cpu0) / (time.monotonic() - wall0)
        aged = s.gw_health()["aged"] - aged0
        violations = sum(sim.control.counters()["bus"]["pacing_violations"] for sim in sims)
        takeover = [] if not a.takeover else measure_takeover(s, gw1, a.takeover)
    if not lat:
        print("no setpoint frame followed any reading")
        sys.exit(1)
    p50, p99, mx = pct(lat, 50), pct(lat, 99), max(lat)
    print("meter message -> first setpoint write frame on the bus")
    print("readings %d, acted on %d, waited out %d" % (a.count, len(lat), missed))
    print("latency ms: min %.1f  p50 %.1f  p99 %.1f  max %.1f" % (min(lat), p50, p99, mx))
    print("bic-charge-ctl: RSS %d kB, CPU %.2f %% of one core during the readings"
          % (rss_kb, cpu_pct))
    print("pacing violations counted by the simulator: %d" % violations)
    if group:
        n = a.units if a.gateways == 1 else 2
        g50, g99, gmx = pct(lat_all, 50), pct(lat_all, 99), max(lat_all)
        print("group of %d%s: devices written per reading: mean %.2f, max %d"
              % (n, " on two gateways" if a.gateways == 2 else "",
                 sum(devs_written) / len(devs_written), max(devs_written)))
        print("latency to the group's last setpoint write frame ms: p50 %.1f  p99 %.1f  max %.1f"
              % (g50, g99, gmx))
        s50 = pct(spacing, 50) if spacing else 0.0
        s99 = pct(spacing, 99) if spacing else 0.0
        if spacing and a.gateways == 1:
            print("from one device's write to the next device's ms: p50 %.1f  p99 %.1f "
                  "(the bus pacing after a write)" % (s50, s99))
        if a.gateways == 2:
            print("readings where a device got a second command within the 500 ms (its frame "
                  "then counts as the group's last): %d%s"
                  % (len(seconds), "".join(" (reading %d at %.1f ms)" % s for s in seconds)))
        if between:
            print("reads on the bus between the group's first and last write frame: p50 %d  "
                  "max %d; requests the gateway served ahead of their priority (aged): %d"
                  % (pct(between, 50), max(between), aged))
        if busy_at:
            idle = [t for t, b in zip(lat_all, busy_at) if not b]
            busy = [t for t, b in zip(lat_all, busy_at) if b]
            print("readings that found a device busy with another command (a write within 300 "
                  "ms before them, or two to one device after): %d of %d; to the last frame "
                  "p50 / max ms: without "
                  "%s, with %s" % (len(busy), len(lat_all),
                                   "%.1f / %.1f" % (pct(idle, 50), max(idle)) if idle else "-",
                                   "%.1f / %.1f" % (pct(busy, 50), max(busy)) if busy else "-"))
        if running:
            print("units running after a reading: min %d, max %d (the others on standby)"
                  % (min(running), max(running)))
        if a.broadcast:
            print("readings whose writes went as a broadcast frame: %d of %d"
                  % (bcast_readings, len(lat_all)))
        if takeover:
            print("gateway 1 killed -> the group message without it ms: %s (p50 %.1f, max "
                  "%.1f)" % (" ".join("%.1f" % t for t in takeover), pct(takeover, 50),
                             max(takeover)))
            print("bench=ctl_rt_takeover kills=%d timed=%d p50_ms=%.1f max_ms=%.1f"
                  % (a.takeover, len(takeover), pct(takeover, 50), max(takeover)))
        ok = g99 < TARGET_GROUP_P99_MS and violations == 0
        print("bench=ctl_rt_group units=%d gateways=%d readings=%d timed=%d waited=%d first_p50_ms=%.1f "
              "first_p99_ms=%.1f all_p50_ms=%.1f all_p99_ms=%.1f all_max_ms=%.1f "
              "devs_written_mean=%.2f spacing_p50_ms=%.1f spacing_p99_ms=%.1f "
              "target_all_p99_ms=%d pacing_violations=%d pass=%d rss_kb=%d cpu_pct=%.2f "
              "broadcast=%d bcast_readings=%d reads_between_max=%d aged=%d busy_readings=%d"
              % (n, a.gateways, a.count, len(lat), missed, p50, p99, g50, g99, gmx,
                 sum(devs_written) / len(devs_written), s50, s99, TARGET_GROUP_P99_MS,
                 violations, 1 if ok else 0, rss_kb, cpu_pct, int(a.broadcast), bcast_readings,
                 max(between) if between else 0, aged, sum(busy_at)))
        return
    ok = p50 < TARGET_P50_MS and p99 < TARGET_P99_MS and violations == 0
    print("bench=ctl_rt readings=%d timed=%d waited=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f "
          "target_p50_ms=%d target_p99_ms=%d pacing_violations=%d pass=%d rss_kb=%d cpu_pct=%.2f"
          % (a.count, len(lat), missed, p50, p99, mx, TARGET_P50_MS, TARGET_P99_MS, violations,
             1 if ok else 0, rss_kb, cpu_pct))


if __name__ == "__main__":
    main()
