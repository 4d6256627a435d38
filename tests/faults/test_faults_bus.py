"""Fault injection, part 4: the bus misbehaves. Garbage on the slcan line beside the gateway;
a device that answers late (after the gateway's response timeout) and sometimes twice; a
device that stops answering. Under load (meter at 1 Hz, telemetry, client requests), with the
checks every scenario ends with (bus audit, EEPROM counters, true device state, recovery of
every process without help). Seeded: BIC_FAULT_SEED reproduces a run."""

import os
import time

import faultlib
import harness

RESULTS = os.path.join(harness.BUILD_DIR, "tests", "faults", "results-bus.json")


GARBAGE = (b"0123456789 !#$%&*+,-./:;<=>?@[]^_{|}~" + bytes(range(0x80, 0x100)) + b"\x00\x01")


def garbage_line(c):
    """Bytes that are no slcan command (no letters, so no line can start with one) written
    to the adapter's line beside the gateway, some ending in CR, some cutting into the
    gateway's next line."""
    before = c.simctl.counters()["adapter"]
    errors_before = faultlib.gw_health(c)["errors"]
    fd = os.open(os.path.join(c.tmp, "can0"), os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    t0 = time.monotonic()
    chunks = 0
    try:
        while time.monotonic() - t0 < 4.0:
            n = c.rng.randint(1, 40)
            chunk = bytes(c.rng.choice(GARBAGE) for _ in range(n))
            if c.rng.random() < 0.6:
                chunk += b"\r"
            try:
                os.write(fd, chunk)
                chunks += 1
            except BlockingIOError:
                pass
            time.sleep(c.rng.uniform(0.01, 0.1))
    finally:
        os.close(fd)
    t1 = time.monotonic()
    after = c.simctl.counters()["adapter"]
    c.frames_lost_max += (after["garbage"] - before["garbage"]
                          + after["overlong"] - before["overlong"])
    assert after["garbage"] + after["overlong"] > before["garbage"] + before["overlong"], (
        before, after)
    assert c.gateway.alive()
    rec = c.wait_recovered(t1)
    errors = faultlib.gw_health(c)["errors"] - errors_before
    gw, recv = c.check_counters()
    excess = sum(gw.values()) - sum(recv.values())
    return rec, ("%d chunks; adapter counted %d garbage lines, gateway %d errors; %d write(s) "
                 "destroyed on the line but counted" % (
                     chunks, after["garbage"] - before["garbage"], errors, excess))


def late_replies(c):
    h0 = faultlib.gw_health(c)
    # Late (80 ms, past the 50 ms response timeout) and duplicated replies.
    c.simctl.set(late_pct=30, late_delay_us=80000, dup_pct=20)
    try:
        time.sleep(4)
        # Requests still work: retried, matched by CAN ID and command.
        r = faultlib.gw_request(c.req_ep, {"op": "get", "dev": 0,
                                           "regs": ["IOUT_SET", "REVERSE_IOUT_SET"]}, 5)
        assert r and r["ok"], r
    finally:
        c.simctl.set(late_pct=0, dup_pct=0, late_delay_us=8000)
    t1 = time.monotonic()
    rec = c.wait_recovered(t1)
    h1 = faultlib.gw_health(c)
    # Late replies are retried; late and duplicated ones arrive unmatched (stray) and are
    # dropped rather than taken for the next request.
    assert h1["retries"] > h0["retries"] and h1["stray"] > h0["stray"], (h0, h1)
    # Every value read through the gateway is the device's (no reply taken for another).
    regs = c.simctl.device(0)["registers"]
    r = faultlib.gw_request(c.req_ep, {"op": "get", "dev": 0,
                                       "regs": ["VOUT_SET", "REVERSE_VOUT_SET"]}, 5)
    assert r["values"]["VOUT_SET"]["raw"] == regs["VOUT_SET"], (r, regs)
    assert r["values"]["REVERSE_VOUT_SET"]["raw"] == regs["REVERSE_VOUT_SET"], (r, regs)
    return rec, "%d timeouts, %d retries, %d stray replies ignored" % (
        h1["timeouts"] - h0["timeouts"], h1["retries"] - h0["retries"],
        h1["stray"] - h0["stray"])


def device_silent(c):
    c.simctl.set(drop_pct=100)
    t0 = time.monotonic()
    try:
        e = faultlib.wait_event(c, t0, 0, "offline", timeout=15)
        faultlib.wait_event(c, t0, 1, "offline", timeout=15)
        time.sleep(1.0)
    finally:
        c.simctl.set(drop_pct=0)
    t1 = time.monotonic()
    faultlib.wait_event(c, t1, 0, "online", timeout=20)
    rec = c.wait_recovered(t1)
    return rec, "offline (%s), online again" % e.get("reason")


SCENARIOS = [
    ("garbage on the slcan line", garbage_line),
    ("device answers late (30 %, 80 ms) and twice", late_replies),
    ("device stops answering", device_silent),
]


def test_garbage_late_silent():
    seed = faultlib.seed_from_env()
    with faultlib.Chain(seed) as c:
        harness.wait_for(lambda: c.healthy(time.monotonic() - 5), 20, what="chain healthy")
        failures = faultlib.run_scenarios(c, SCENARIOS)
        gw, recv = c.check_all()
        print("load: %d requests, %d replies, %d timeouts; EEPROM writes counted %s, "
              "received %s" % (c.load.sent, c.load.replied, c.load.timeouts, gw, recv))
        faultlib.print_table("fault injection (seed %d)" % seed, c.rows, RESULTS)
        assert not failures, "failed: %s" % ["%s: %s" % (n, e) for n, e in failures]


if __name__ == "__main__":
    harness.run_tests()
