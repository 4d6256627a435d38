"""bic-sim end to end: a real pty speaking slcan, driven through can/'s slcan transport
(can-probe) with byte-exact frames; garbage on the line; the control channel's view agreeing
with the bus; pacing violations counted; faults and power cycles; the meter on MQTT; a BIC and
NPB chargers on one bus; bad command lines refused with exit code 2."""

import json
import os
import subprocess
import time

import harness


def probe(sim, *frames, timeout_ms=100, gap_ms=25):
    """Runs can-probe on the simulator's pty; returns the received lines ("< ID#DATA")."""
    out = subprocess.run([harness.program("can-probe"), sim.transport, "--timeout-ms",
                          str(timeout_ms), "--gap-ms", str(gap_ms)] + list(frames),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, "can-probe failed: %s %s" % (out.stdout, out.stderr)
    return [l for l in out.stdout.splitlines() if l.startswith("<")]


def test_read_write_byte_exact():
    with harness.Sim(devices=["0:24", "1:48:fw=old"]) as sim:
        got = probe(sim,
                    "000C0300#2000",        # read VOUT_SET: 24.00 V
                    "000C0300#2000C409",    # write VOUT_SET 25.00 V: no reply
                    "000C0300#2000",        # read back
                    "000C0301#0000",        # OPERATION of unit 1: DLC 3
                    "000C0301#8300",        # MFR_MODEL_B6B11 of unit 1
                    "000C0301#7000",        # fan speed on old firmware: silence
                    "000C03FF#2000",        # broadcast read: silence
                    "000C0300#C000")        # SCALING_FACTOR: 6 bytes
        assert got == ["< 000C0200#20006009",
                       "< 000C0200#2000C409",
                       "< 000C0201#000001",
                       "< 000C0201#8300" + "30302D343820",
                       "< 000C0200#C000557606000000"], got
        dev = sim.control.device(0)
        assert dev["registers"]["VOUT_SET"] == 2500
        assert dev["eeprom"]["VOUT_SET"] == 2500
        assert sim.control.eeprom_writes(0)["VOUT_SET"] == 1
        c = sim.control.counters()
        assert c["bus"]["requests"] == 8, c
        assert c["bus"]["replies"] == 5, c
        assert c["bus"]["pacing_violations"] == 0, c
        assert c["adapter"]["frames_from_host"] == 8, c
        frames = sim.control.frames(max=20)
        writes = [f for f in frames if f["dir"] == "rx" and f["data"] == "2000C409"]
        assert len(writes) == 1 and writes[0]["id"] == "0x000C0300" and writes[0]["dlc"] == 4


def test_garbage_on_the_line():
    with harness.Sim(devices=["0:24"]) as sim:
        with harness.SlcanHost(sim.pty_path) as host:
            host.write("C\rS5\rO\r")
            assert host.read_until(lambda b: b.count(b"\r") >= 3) == b"\r\r\r"
            # Garbage lines, binary noise and an overlong line: one BEL each, no crash.
            host.write(b"hello\r\x00\xff\xfe\x01zz\rT" + b"1" * 80 + b"\rT000C03002\r")
            got = host.read_until(lambda b: b.count(b"\a") >= 4)
            assert set(got) <= {7}, got
            # The next valid frame still works, byte for byte.
            host.write("T000C030022000\r")
            got = host.read_until(lambda b: b.endswith(b"T000C0200420006009\r"))
            assert got == b"Z\rT000C0200420006009\r", got
        c = sim.control.counters()
        assert c["adapter"]["garbage"] + c["adapter"]["overlong"] >= 4, c
        assert c["adapter"]["errors"] >= 4, c
        assert sim.proc.alive()
        # The transport of can/ still opens the pty afterwards.
        assert probe(sim, "000C0300#0000") == ["< 000C0200#000001"]


def test_pacing_violations_counted():
    with harness.Sim(devices=["0:24"]) as sim:
        before = sim.control.counters()["bus"]
        probe(sim, *(["000C0300#6000"] * 6), timeout_ms=3, gap_ms=0)
        c = sim.control.counters()["bus"]
        assert c["requests"] == 6, c
        assert c["pacing_violations"] - before["pacing_violations"] >= 3, c
        # a sender 5 ms apart: every request after the first is too close; the simulator
        # calls some of them only suspect when it read them late (and one read late enough
        # can even look far enough from the one before), but most are violations
        time.sleep(0.05)  # the next probe's first request keeps its distance
        before = c
        probe(sim, *(["000C0300#6000"] * 10), timeout_ms=5, gap_ms=0)
        c = sim.control.counters()["bus"]
        close = (c["pacing_violations"] - before["pacing_violations"] +
                 c["pacing_suspect"] - before["pacing_suspect"])
        assert close >= 7, c
        assert c["pacing_violations"] - before["pacing_violations"] >= 5, c
        # and a sender keeping 25 ms is never judged
        time.sleep(0.05)
        before = c
        probe(sim, *(["000C0300#6000"] * 5), timeout_ms=5, gap_ms=20)
        c = sim.control.counters()["bus"]
        assert c["pacing_violations"] == before["pacing_violations"], c


def test_faults_and_power_cycle():
    with harness.Sim(devices=["0:24"]) as sim:
        assert probe(sim, "000C0300#4000") == ["< 000C0200#40000000"]
        sim.control.fault("ovp", True, dev=0)
        sim.control.fault("ovp", False, dev=0)
        # OVP (bit 2) latched, output off (bit 6).
        assert probe(sim, "000C0300#4000") == ["< 000C0200#40004400"]
        assert sim.control.device(0)["faults"]["ovp"] is True
        sim.control.power_cycle(dev=0)
        # Silent while it boots (1.8 s), then clean.
        assert probe(sim, "000C0300#4000") == []
        harness.wait_for(lambda: probe(sim, "000C0300#4000") == ["< 000C0200#40000000"],
                         timeout=10, interval=0.2, what="device back after the power cycle")
        dev = sim.control.device(0)
        assert dev["faults"]["ovp"] is False and dev["powered"] and not dev["booting"]


def test_meter_on_mqtt():
    tmp = harness.temp_dir()
    csv = os.path.join(tmp, "day.csv")
    with open(csv, "w") as f:
        f.write("t_s,load_w,pv_w\n0,1000,400\n60,1500,0\n")
    with harness.Mosquitto() as broker, \
            harness.Sim(devices=["0:24"], household=csv, mqtt=broker, meter_topic="home/grid",
                        meter_period_ms=100, args=["--meter-json"]) as sim, \
            harness.MqttClient(broker, subscribe=["home/grid"]) as mq:
        # With the converter's output off the meter shows the household alone.
        sim.control.remote(False)
        after = time.monotonic()
        payload = mq.wait_message("home/grid", after=after + 0.3)
        j = json.loads(payload)
        assert abs(j["power_w"] - 600) < 0.01, j
        assert j["load_w"] == 1000 and j["pv_w"] == 400 and j["battery_w"] == 0, j
        h = sim.control.household()
        assert abs(h["meter_w"] - 600) < 0.01, h
        # Output on (factory state: SVR 24 V below the battery, so it feeds the grid).
        sim.control.remote(True)
        harness.wait_for(lambda: sim.control.device(0)["ac_w"] < -100, timeout=10,
                         what="the converter feeding in")
        after = time.monotonic()
        payload = mq.wait_message("home/grid", after=after + 0.3)
        j = json.loads(payload)
        assert abs(j["power_w"] - (600 + j["battery_w"])) < 0.2, j
        assert j["power_w"] < 500, j
        assert sim.control.counters()["meter_published"] > 0


def test_plain_meter_and_time_compression():
    tmp = harness.temp_dir()
    csv = os.path.join(tmp, "day.csv")
    with open(csv, "w") as f:
        f.write("t_s,load_w,pv_w\n0,100,0\n60,200,0\n120,300,0\n")
    with harness.Mosquitto() as broker, \
            harness.Sim(devices=["0:24"], household=csv, mqtt=broker, speed=120,
                        meter_period_ms=100) as sim, \
            harness.MqttClient(broker, subscribe=["bic-sim/meter"]) as mq:
        sim.control.remote(False)
        # At 120x a simulated minute passes in half a second: all three rows appear.
        seen = set()

        def rows():
            for _, _, p, _ in mq.received("bic-sim/meter"):
                seen.add(float(p))
            return {100.0, 200.0, 300.0} <= seen
        harness.wait_for(rows, timeout=15, what="every row of the day on the meter")
        assert sim.control.state()["speed"] == 120


def test_household_start_time():
    tmp = harness.temp_dir()
    csv = os.path.join(tmp, "day.csv")
    with open(csv, "w") as f:
        f.write("t_s,load_w,pv_w\n3600,100,0\n3660,200,0\n3720,300,0\n")
    with harness.Sim(household=csv) as sim:
        h = sim.control.household()
        assert 3600 <= h["t_s"] < 3660 and h["load_w"] == 100, h
    with harness.Sim(household=csv, args=["--start-s", "3725"]) as sim:
        h = sim.control.household()
        assert 3725 <= h["t_s"] < 3780 and h["load_w"] == 300, h


def test_meter_survives_broker_restart():
    broker_port = harness.free_port()
    # bic-sim starts before the broker and keeps retrying.
    with harness.Sim(devices=["0:24"], mqtt="127.0.0.1:%d" % broker_port,
                     meter_period_ms=100) as sim:
        with harness.Mosquitto(port=broker_port) as broker:
            with harness.MqttClient(broker, subscribe=["bic-sim/meter"]) as mq:
                mq.wait_message("bic-sim/meter", timeout=15)
            broker.restart()
            with harness.MqttClient(broker, subscribe=["bic-sim/meter"]) as mq:
                mq.wait_message("bic-sim/meter", timeout=15)
        assert sim.proc.alive()


def npb_stage(sim, addr):
    return sim.control.ok("npb", addr=addr)["npb"]["stage"]


def test_bic_and_npb_on_one_bus():
    # A BIC and three NPBs: one at the BIC's address 3 on an almost empty battery (in the CC
    # stage for hours), one on a nearly full battery, an NPB-450 with old firmware.
    devices = ["3:24", "3:npb-1200-24:soc=5", "1:npb-1200-24:ah=40,soc=97",
               "2:npb-450-24:fw=old"]
    with harness.Sim(devices=devices, speed="50") as sim:
        got = probe(sim,
                    "000C0303#8200",        # the BIC's MFR_MODEL_B0B5
                    "000C0103#8200",        # the NPB's at the same address
                    "000C0103#8300",
                    "000C0103#B000",        # CURVE_CC 36.00 A
                    "000C0103#B400",        # CURVE_CONFIG 0x0084
                    "000C0103#B4008408",    # write 0x0884: no reply
                    "000C0103#B400",        # read back
                    "000C0103#B900",        # CHG_RST_VBAT 25.20 V
                    "000C0103#B800",        # CHG_STATUS: CC stage
                    "000C01FF#B800",        # broadcast read: silence
                    "000C0103#7000",        # a BIC-only command: silence
                    "000C0100#6000",        # no NPB at address 0: silence
                    "000C0102#B000",        # NPB-450-24: 13.50 A
                    "000C0102#B900",        # old firmware: no CHG_RST_VBAT
                    "000C0102#5000")        # NPB-450: no READ_VIN
        assert got == ["< 000C0203#8200" + "4249432D3232",
                       "< 000C0003#8200" + "4E50422D3132",
                       "< 000C0003#8300" + "30302D323420",
                       "< 000C0003#B000100E",
                       "< 000C0003#B4008400",
                       "< 000C0003#B4008408",
                       "< 000C0003#B900D809",
                       "< 000C0003#B8000200",
                       "< 000C0002#B0004605"], got
        npb = sim.control.ok("npb", addr=3)["npb"]
        assert npb["model"] == "NPB-1200-24" and npb["stage"] == "cc", npb
        assert npb["registers"]["CURVE_CONFIG"] == 0x0884, npb
        assert npb["eeprom"]["CURVE_CONFIG"] == 0x0884, npb
        assert npb["eeprom_writes"]["CURVE_CONFIG"] == 1, npb
        assert sim.control.device(3)["variant"] == 24
        c = sim.control.counters()["bus"]
        assert c["requests"] == 15 and c["replies"] == 9, c
        assert c["pacing_violations"] == 0, c
        # The nearly full battery goes through CV into float: CHG_STATUS and READ_VOUT on the
        # wire say so.
        harness.wait_for(lambda: npb_stage(sim, 1) == "float", 120, what="NPB 1 in float")
        assert probe(sim, "000C0101#B800", "000C0101#6000") == [
            "< 000C0001#B8000900", "< 000C0001#6000C80A"]
        # Restart below CHG_RST_VBAT once enabled (after OFF -> ON): the battery drained,
        # the charger starts again at the CC stage.
        assert probe(sim, "000C0101#B4008408", "000C0101#000000", "000C0101#000001") == []
        harness.wait_for(lambda: npb_stage(sim, 1) == "float", 120, what="NPB 1 in float")
        sim.control.ok("npb", addr=1, soc=0)
        harness.wait_for(lambda: npb_stage(sim, 1) == "cc", 60, what="NPB 1 restarted")
        assert probe(sim, "000C0101#B800") == ["< 000C0001#B8000200"]
        # The control channel names a missing NPB.
        r = sim.control.request("npb", addr=0)
        assert not r["ok"] and r["error"]["code"] == "unknown_device", r
        for bad in ({}, {"addr": 4}, {"addr": 3, "soc": 101}, {"addr": 3, "battery": "yes"},
                    {"addr": 3, "batt_temp": "warm"}):
            r = sim.control.request("npb", **bad)
            assert not r["ok"] and r["error"]["code"] == "bad_request", (bad, r)
        assert sim.control.ok("npb", addr=3)["npb"]["stage"] == "cc"  # nothing changed


def test_bad_command_lines():
    sim = harness.program("bic-sim")
    tmp = harness.temp_dir()
    cases = [
        ([], "exactly one transport"),
        (["--slcan-pty", tmp + "/a", "--socketcan", "can0"], "exactly one transport"),
        (["--slcan-pty", tmp + "/a", "--device", "0:25"], "12, 24, 48, 96"),
        (["--slcan-pty", tmp + "/a", "--device", "0:24", "--device", "0:48"], "used twice"),
        (["--slcan-pty", tmp + "/a", "--device", "0:24:fw=ancient"], "old, new"),
        (["--slcan-pty", tmp + "/a", "--device", "4:npb-1200-24"], "0..3"),
        (["--slcan-pty", tmp + "/a", "--device", "3:npb-1200-36"], "npb-1700-48"),
        (["--slcan-pty", tmp + "/a", "--device", "3:npb-1200-24", "--device", "3:npb-450-12"],
         "used twice"),
        (["--slcan-pty", tmp + "/a", "--speed", "0"], "--speed"),
        (["--slcan-pty", tmp + "/a", "--mqtt", "localhost"], "HOST:PORT"),
        (["--slcan-pty", tmp + "/a", "--mqtt", "localhost:99999"], "HOST:PORT"),
        (["--slcan-pty", tmp + "/a", "--meter-topic", "x"], "need --mqtt"),
        (["--slcan-pty", tmp + "/a", "--transients", "3"], "needs --household"),
        (["--slcan-pty", tmp + "/a", "--household", tmp + "/missing.csv"], "cannot open"),
        (["--slcan-pty", tmp + "/a", "--control", "http://x"], "--control"),
        (["--slcan-pty", tmp + "/a", "--drop-pct", "150"], "--drop-pct"),
        (["--slcan-pty", tmp + "/a", "--frobnicate"], "unknown option"),
        (["--slcan-pty", tmp + "/a", "--speed"], "needs a value"),
        (["--socketcan", "bad/name"], "interface name"),
    ]
    bad_csv = os.path.join(tmp, "bad.csv")
    with open(bad_csv, "w") as f:
        f.write("t_s,load_w,pv_w\n0,1,2\n60,x,2\n")
    cases.append((["--slcan-pty", tmp + "/a", "--household", bad_csv], "bad.csv:3"))
    for args, needle in cases:
        r = subprocess.run([sim] + args, capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert not os.path.lexists(tmp + "/a"), args
    # SocketCAN on a machine without kernel CAN (or a missing interface): a clear error.
    r = subprocess.run([sim, "--socketcan", "nosuchcan0"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and r.stderr.strip(), r.stderr
    r = subprocess.run([sim, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--slcan-pty" in r.stdout


def test_symlink_lifecycle():
    tmp = harness.temp_dir()
    # A path that is a regular file is never replaced.
    path = os.path.join(tmp, "can0")
    with open(path, "w") as f:
        f.write("keep me")
    p = harness.Process([harness.program("bic-sim"), "--slcan-pty", path, "--control",
                         "ipc://" + os.path.join(tmp, "c1")], log_dir=tmp)
    assert p.wait_exit(10) == 2
    assert "not a symlink" in p.output()
    assert open(path).read() == "keep me"
    os.unlink(path)
    # A directory that does not exist.
    p = harness.Process([harness.program("bic-sim"), "--slcan-pty", tmp + "/no/such/dir/can0",
                         "--control", "ipc://" + os.path.join(tmp, "c2")], log_dir=tmp)
    assert p.wait_exit(10) == 2
    assert "cannot create the symlink" in p.output()
    # A stale symlink is replaced; SIGTERM removes it.
    os.symlink("/nonexistent", path)
    with harness.Sim(tmp=tmp) as sim:
        assert os.path.realpath(sim.pty_path).startswith("/dev/pts/")
        assert sim.stop() == 0
    assert not os.path.lexists(path)


if __name__ == "__main__":
    harness.run_tests()
