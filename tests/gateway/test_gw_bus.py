"""The bus against the real bic-sim: two devices on one bus, a configured type that does not
match the device, discovery (basic and extended addresses), a device that stops answering and
comes back, the adapter disappearing (bic-sim killed) and coming back, and the wake-ups a bus
request costs with the bus full."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from gwtest import Gateway, Sub, assert_no_pacing_violations, gateway_ini  # noqa: E402

DEV48 = {"Type": "BIC2200-48CAN", "ChargeVoltage": 5520, "DischargeVoltage": 4800,
         "MaxChargeCurrent": 2000, "MaxDischargeCurrent": 1500}


def test_two_devices_on_one_bus():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24", "3:48"]) as sim:
        ini = gateway_ini(sim, tmp, devices={0: {}, 3: DEV48}, EepromWriteIntervalSec=0)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["tel/"])
            devs = {d["dev"]: d for d in c.ok("info")["devices"]}
            assert devs[0]["model"] == "BIC-2200-24" and devs[3]["model"] == "BIC-2200-48"
            assert devs[3]["limits"]["vout_v"] == [48, 55.2], devs[3]["limits"]
            assert devs[3]["limits"]["iout_a"] == [0.45, 20], devs[3]["limits"]
            # each device is read and written at its own address, with its own limits
            v0 = c.ok("get", dev=0, reg="READ_VOUT")["values"]["READ_VOUT"]["value"]
            v3 = c.ok("get", dev=3, reg="READ_VOUT")["values"]["READ_VOUT"]["value"]
            assert v0 < 30 < v3, (v0, v3)
            c.ok("set", dev=3, reg="VOUT_SET", value=55.0, client="t")
            c.error("set", "out_of_range", dev=0, reg="VOUT_SET", value=55.0, client="t")
            assert sim.control.device(3)["registers"]["VOUT_SET"] == 5500
            assert sim.control.device(0)["registers"]["VOUT_SET"] != 5500
            c.error("get", "bad_request", reg="READ_VOUT")  # two devices: dev required
            sub.wait(lambda t, b: t == "tel/0", what="telemetry of device 0")
            sub.wait(lambda t, b: t == "tel/3" and b["dc_v"] > 30, what="telemetry of 3")
            # concurrent clients on both devices: each gets its own answer
            from gwtest import Client
            a, b = Client(gw.req), Client(gw.req)
            a.sock.send_json({"v": 1, "op": "get", "dev": 0, "regs": ["READ_VOUT"], "id": "a"})
            b.sock.send_json({"v": 1, "op": "get", "dev": 3, "regs": ["READ_VOUT"], "id": "b"})
            ra, rb = a.sock.recv_json(), b.sock.recv_json()
            assert ra["id"] == "a" and ra["dev"] == 0 and rb["id"] == "b" and rb["dev"] == 3
            a.close()
            b.close()
            sub.close()
            assert_no_pacing_violations(sim)


def test_type_mismatch_keeps_device_offline():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:48"]) as sim:
        ini = gateway_ini(sim, tmp)  # configured as BIC2200-24CAN
        with Gateway(ini, tmp, wait_online=False) as gw:
            c = gw.client

            def reason():
                d = c.ok("devices")["devices"][0]
                return not d["online"] and "type mismatch" in d.get("reason", "") and d
            d = harness.wait_for(reason, what="type mismatch reported")
            assert "BIC2200-24CAN" in d["reason"] and "BIC-2200-48" in d["reason"], d
            e = c.error("set", "device_offline", dev=0, reg="VOUT_SET", value=50, client="t")
            assert "type mismatch" in e["message"], e
            writes = [f for f in sim.control.frames(500) if f["dir"] == "rx" and f["dlc"] > 2]
            assert writes == [], writes
            # the refused device is not polled: the bus stays quiet
            n0 = sim.control.counters()["bus"]["requests"]
            time.sleep(2.0)
            assert sim.control.counters()["bus"]["requests"] - n0 < 5
            # corrected in the file and reloaded: the device is taken into service
            ini["DEVICE"]["Id/0/Type"] = "BIC2200-48CAN"
            for k, v in {"ChargeVoltage": 5520, "DischargeVoltage": 4800}.items():
                ini["DEVICE"]["Id/0/" + k] = v
            harness.write_ini(gw.path, ini)
            gw.proc.signal(signal.SIGHUP)
            harness.wait_for(lambda: gw.online([0]), what="device online after the reload")
            assert_no_pacing_violations(sim)


def test_discover():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24", "5:12", "40:96"]) as sim:
        ini = gateway_ini(sim, tmp)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            r = c.ok("discover")
            found = {d["dev"]: d for d in r["devices"]}
            assert set(found) == {0, 5}, r
            harness.wait_for(lambda: {d["dev"]: d for d in c.ok("devices")["devices"]}[5][
                "online"], what="discovered device online")
            d5 = c.ok("info", dev=5)["devices"][0]
            assert d5["model"] == "BIC-2200-12" and d5["limits"]["vout_v"] == [10, 15], d5
            # the extended scan asks every address 8-63 at the bus's pace: on a loaded machine
            # its reply takes longer than the client's usual wait (and a resent request
            # would start another scan), so it gets a deadline of its own
            c.timeout = 60.0
            r = c.ok("discover", extended=True)
            c.timeout = 8.0
            assert {d["dev"] for d in r["devices"]} == {0, 5, 40}, r
            harness.wait_for(lambda: gw.online([0, 5, 40]), what="all three online")
            c.error("discover", "bad_request", extended="yes")
            assert_no_pacing_violations(sim)


def test_discover_at_start_and_old_firmware():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["2:24:fw=old"]) as sim:
        ini = gateway_ini(sim, tmp, devices={}, Discover=True)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            harness.wait_for(lambda: gw.online([2]), what="device 2 found at start")
            d = c.ok("info")["devices"][0]
            assert d["dev"] == 2 and d["caps"]["fans"] is False, d
            # a single device may be addressed without "dev"
            r = c.ok("get", regs=["READ_FAN_SPEED_1", "READ_VOUT"])
            assert r["values"]["READ_FAN_SPEED_1"]["error"]["code"] == "not_supported", r
            assert r["values"]["READ_VOUT"]["unit"] == "V", r
            assert_no_pacing_violations(sim)


def test_late_duplicated_and_dropped_replies_never_shift_reads():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0, Retries=3,
                          OfflineAfterTimeouts=20)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            c.ok("set", dev=0, reg="VOUT_SET", value=27.3, client="t")
            c.ok("set", dev=0, reg="IOUT_SET", value=12.5, client="t")
            c.ok("set", dev=0, reg="REVERSE_VOUT_SET", value=24.5, client="t")
            # replies late beyond the 50 ms timeout, duplicated, or lost
            sim.control.set(late_pct=25, late_delay_us=70000, dup_pct=25, drop_pct=10)
            want = {"VOUT_SET": 27.3, "IOUT_SET": 12.5, "REVERSE_VOUT_SET": 24.5,
                    "MFR_MODEL_B0B5": "BIC-22"}
            good = 0
            for _ in range(12):
                r = c.ok("get", dev=0, regs=list(want))
                for name, v in r["values"].items():
                    if "error" in v:
                        assert v["error"]["code"] == "timeout", r
                        continue
                    assert v["value"] == want[name], (name, v, r)
                    good += 1
            assert good >= 24, good
            sim.control.set(late_pct=0, dup_pct=0, drop_pct=0)
            health = None
            sub = Sub(gw.pub, ["gw"])
            _, health = sub.wait(lambda t, b: t == "gw", what="gw health")
            assert health["stray"] > 0 and health["retries"] > 0, health
            sub.close()
            counters = sim.control.counters()["bus"]
            assert counters["late"] > 0 and counters["duplicated"] > 0, counters
            assert_no_pacing_violations(sim)


def test_device_stops_answering_and_comes_back():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24", "1:24"]) as sim:
        ini = gateway_ini(sim, tmp, devices={0: {}, 1: {}}, OfflineAfterTimeouts=2)
        with Gateway(ini, tmp) as gw:
            c = gw.client
            sub = Sub(gw.pub, ["evt/", "tel/1"])
            sim.control.set(boot_ms=300)
            sim.control.ac(False, dev=1)
            e = sub.event(1, "offline")
            assert e["reason"], e
            e = c.error("get", "device_offline", dev=1, reg="READ_VOUT")
            assert "offline" in e["message"], e
            _, t = sub.wait(lambda tp, b: tp == "tel/1" and b["online"] is False,
                            what="offline telemetry")
            # the other device keeps working
            c.ok("get", dev=0, reg="READ_VOUT")
            sim.control.ac(True, dev=1)
            sub.event(1, "online", timeout=15)
            c.ok("get", dev=1, reg="READ_VOUT")
            sub.close()
            assert_no_pacing_violations(sim)


def test_adapter_loss_and_recovery():
    tmp = harness.temp_dir()
    simdir = harness.temp_dir("bic-sim-")
    sim = harness.Sim(devices=["0:24"], tmp=simdir)
    ini = gateway_ini(sim, tmp, EepromWriteIntervalSec=0)
    with Gateway(ini, tmp) as gw:
        c = gw.client
        sub = Sub(gw.pub, ["gw", "evt/0", "tel/0"])
        # A SUB socket hears nothing until its subscription has reached the publisher: wait
        # for the first telemetry, or the `offline` event may be published before that.
        sub.wait(lambda t, b: t == "tel/0", what="telemetry of device 0")
        sim.stop()  # the adapter is unplugged
        _, g = sub.wait(lambda t, b: t == "gw" and b["bus"] == "down", what="bus down")
        sub.event(0, "offline")
        assert c.ok("ping")["bus"] == "down"
        e = c.error("get", "bus_down", dev=0, reg="READ_VOUT")
        assert "reconnecting" in e["message"], e
        c.error("set", "bus_down", dev=0, reg="VOUT_SET", value=27, client="t")
        c.error("setpoint", "bus_down", dev=0, client="ctl", mode="off", lease_ttl_s=5)
        c.error("discover", "bus_down")
        info = c.ok("info")
        assert info["gateway"]["bus"] == "down" and info["devices"][0]["online"] is False
        time.sleep(1.0)  # the gateway keeps trying with back-off; stays up
        assert gw.proc.alive()
        sim = harness.Sim(devices=["0:24"], tmp=simdir)  # plugged in again, same path
        try:
            _, g = sub.wait(lambda t, b: t == "gw" and b["bus"] == "up", timeout=20,
                            what="bus up again")
            assert g["reconnects"] >= 1, g
            sub.event(0, "online", timeout=10)
            assert c.ok("get", dev=0, reg="READ_VOUT")["ok"]
            c.ok("set", dev=0, reg="VOUT_SET", value=27.0, client="t")
            assert sim.control.device(0)["registers"]["VOUT_SET"] == 2700
            assert_no_pacing_violations(sim)
        finally:
            sub.close()
            sim.stop()


def test_telemetry_while_clients_saturate_the_bus():
    """Clients that keep the request queue full still leave telemetry its share: a fast
    cycle at least about once per TelemetryPeriodMs, and the clients keep being served."""
    import zmq
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        ini = gateway_ini(sim, tmp, TelemetryPeriodMs=500)
        with Gateway(ini, tmp) as gw:
            sub = Sub(gw.pub, ["tel/0"])
            sub.wait(lambda t, b: True, what="first telemetry")
            ctx = zmq.Context.instance()
            socks = []
            msg = {"v": 1, "op": "get", "dev": 0,
                   "regs": ["READ_VOUT", "READ_IOUT", "VOUT_SET", "IOUT_SET", "OPERATION",
                            "READ_TEMPERATURE_1", "READ_VIN", "SYSTEM_STATUS"]}
            poller = zmq.Poller()
            for _ in range(4):
                s = ctx.socket(zmq.REQ)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(gw.req)
                s.send_json(msg)
                poller.register(s, zmq.POLLIN)
                socks.append(s)
            start = time.monotonic()
            served = 0
            arrivals = []
            while time.monotonic() - start < 6.0:
                for s, _ in poller.poll(100):
                    r = s.recv_json()
                    assert r["ok"], r
                    served += 1
                    s.send_json(msg)
                before = len(sub.seen)
                sub._drain(0)
                arrivals += [time.monotonic()] * (len(sub.seen) - before)
            end = time.monotonic()
            for s in socks:
                s.close(linger=0)
            # the clients had the bus: 8 reads a request, about 45 reads a second in all
            assert served >= 10, served
            edges = [start] + arrivals + [end]
            gap = max(b - a for a, b in zip(edges, edges[1:]))
            # without a share for telemetry there is none at all while the load lasts
            assert gap < 3.0, "%.1f s without telemetry under client load (%d messages)" % (
                gap, len(arrivals))
            sub.close()
            assert_no_pacing_violations(sim)


def test_device_answering_faster_or_slower_keeps_pacing():
    """The adapter is read when a reply is due by the round trips seen (can-gateway/rx_defer):
    a device that starts answering in 0.3 ms after 3 ms, then in 6 ms, is still read and
    paced right: every get answered with the register's value, no pacing violation."""
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        with Gateway(gateway_ini(sim, tmp), tmp) as gw:
            c = gw.client
            c.ok("set", dev=0, reg="VOUT_SET", value=27.3, client="t")
            for delay_us in (3000, 300, 6000, 1000):
                sim.control.set(reply_delay_us=delay_us)
                for _ in range(15):
                    r = c.ok("get", dev=0, regs=["VOUT_SET", "READ_VOUT", "READ_IOUT"])
                    assert r["values"]["VOUT_SET"]["value"] == 27.3, (delay_us, r)
                    assert all("error" not in v for v in r["values"].values()), (delay_us, r)
            assert_no_pacing_violations(sim)


def test_wakeups_per_bus_request_with_the_bus_full():
    """A bus request costs the gateway a few wake-ups (the pacing timer, the adapter's ack with
    the reply, a share of the client's request): a loop that wakes for nothing, ticks or reads
    the adapter in turns shows as more, and one that spins as CPU. Both bounds are generous
    (about 2.8 wake-ups and 1 % of a core measured: docs/benchmarks.md)."""
    import zmq
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim:
        with Gateway(gateway_ini(sim, tmp), tmp) as gw:
            sock = zmq.Context.instance().socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(gw.req)
            msg = {"v": 1, "op": "get", "dev": 0,
                   "regs": ["READ_VOUT", "READ_IOUT", "READ_FAN_SPEED_1"]}
            pid = gw.proc.pid
            req0 = sim.control.counters()["bus"]["requests"]
            wake0, cpu0, t0 = harness.wakeups(pid), harness.cpu_seconds(pid), time.monotonic()
            while time.monotonic() - t0 < 5.0:
                sock.send_json(msg)
                assert sock.poll(10000), "no reply within 10 s"
                assert sock.recv_json()["ok"]
            req = sim.control.counters()["bus"]["requests"] - req0
            wakes = harness.wakeups(pid) - wake0
            cpu_pct = 100.0 * (harness.cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            sock.close()
            print("%d bus requests, %.2f wake-ups each, CPU %.1f %% of a core"
                  % (req, wakes / max(req, 1), cpu_pct), flush=True)
            assert req >= 60, "the bus was not kept busy: %d requests in 5 s" % req
            assert wakes / req < 8, "%.1f wake-ups per bus request" % (wakes / req)
            assert cpu_pct < 25, "the gateway used %.0f %% of a core" % cpu_pct
            assert_no_pacing_violations(sim)


if __name__ == "__main__":
    harness.run_tests()
