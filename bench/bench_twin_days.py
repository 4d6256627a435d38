#!/usr/bin/env python3
"""The controller against its yardsticks on many days and meters: runs `bic-sim twin` in batch
mode over the shared days and 30 generated days for each meter and battery case, and prints one
summary line per case (median and worst over the days). The figures go in docs/charge-ctl.md.

usage: bench/bench_twin_days.py [BUILD_DIR] [--days N] [--seed S] [--ini FILE]

Each case runs every run of the twin on the same days with the same limits: the controller,
the deadbeat (setpoint += -grid on each reading), the seed's algorithm and the ideal battery
(the physics limit). Shortfall = (import + export) - the ideal's. The meter phase is random per
day (uniform within one period), so the profile's steps do not fall on a sample. "elsewhere":
the controller's shortfall over the deadbeat's counted only where the ideal battery meets the
net load (not full, empty or at a power limit), median and worst of the days' ratios."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)


def main(argv):
    build = "build"
    days, seed, ini = 30, 1, os.path.join(SRC, "sim", "twin-example.ini")
    args = list(argv)
    if args and not args[0].startswith("--"):
        build = args.pop(0)
    while args:
        opt = args.pop(0)
        if opt == "--days" and args:
            days = int(args.pop(0))
        elif opt == "--seed" and args:
            seed = int(args.pop(0))
        elif opt == "--ini" and args:
            ini = args.pop(0)
        else:
            print(__doc__)
            return 2
    sim = os.path.join(build, "sim", "bic-sim")
    if not os.access(sim, os.X_OK):
        print("bench_twin_days: %s not built (cmake --build %s)" % (sim, build), file=sys.stderr)
        return 2
    shared = ",".join(os.path.join(SRC, "data", "profiles", f)
                      for f in ("p1_clear_march.csv", "p3_overcast_april.csv"))
    cases = [
        ("meter 1 s", ["--meter-period", "1"]),
        ("meter 2 s", ["--meter-period", "2"]),
        ("meter 3 s", ["--meter-period", "3"]),
        ("meter 5 s", ["--meter-period", "5"]),
        ("meter 10 s", ["--meter-period", "10"]),
        ("meter 2 s, latency 1 s", ["--meter-latency", "1"]),
        ("meter 1 s, latency 1 s", ["--meter-period", "1", "--meter-latency", "1"]),
        ("start SOC 6 %", ["--soc", "6"]),
        ("start SOC 99 %", ["--soc", "99"]),
        ("50 Ah battery", ["--ah", "50"]),
        ("EEPROM on, 1095/day", ["--eeprom-on", "--eeprom-interval", "20",
                                 "--eeprom-budget", "1095"]),
    ]
    print("days: the 2 shared days and %d generated (seed %d); median / worst over the days" %
          (days, seed))
    print("%-24s %15s %15s %13s %11s %11s %11s %11s %9s %11s" % (
        "case", "ctl shortfall", "deadbeat", "ctl/deadbeat", "elsewhere", "ctl over",
        "deadb over", "seed over", "ctl rev", "ctl EEPROM"))
    eep_off, eep_lines = {}, []  # the deadbeat's median shortfall with EEP_OFF (meter 2 s), per day set
    for name, extra in cases:
        for label, source in (("shared", ["--days", shared]),
                              ("generated", ["--generated", str(days), "--gen-seed", str(seed)])):
            cmd = [sim, "twin", "-c", ini, "--json", "--meter-phase", "random",
                   "--breakdown"] + source + extra
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print("bench_twin_days: %s failed: %s" % (" ".join(cmd), p.stderr.strip()),
                      file=sys.stderr)
                return 1
            s = json.loads(p.stdout)["summary"]
            c, d, sd = s["controller"], s["deadbeat"], s["seed"]
            r, e = s["controller_over_deadbeat"], s["controller_over_deadbeat_elsewhere"]

            def mw(o, k, fmt="%.3f"):
                return (fmt + "/" + fmt) % (o[k]["median"], o[k]["worst"])
            print("%-24s %15s %15s %13s %11s %11s %11s %11s %9s %11s" % (
                (name if label == "generated" else name + ", shared")[:24],
                mw(c, "shortfall_kwh"), mw(d, "shortfall_kwh"),
                "%.2f/%.2f" % (r["median"], r["worst"]), "%.2f/%.2f" % (e["median"], e["worst"]),
                mw(c, "overshoot_events", "%.0f"), mw(d, "overshoot_events", "%.0f"),
                mw(sd, "overshoot_events", "%.0f"),
                "%.0f" % c["reversals"]["median"], mw(c, "eeprom_writes", "%.0f")))
            if name == "meter 2 s":
                eep_off[label] = d["shortfall_kwh"]["median"]
            if "--eeprom-on" in extra and eep_off.get(label):
                eep_lines.append("EEPROM on, %s days: the controller's median shortfall %.3f kWh "
                                 "is %.2f x the deadbeat's with EEP_OFF (%.3f, meter 2 s)" % (
                                     label, c["shortfall_kwh"]["median"],
                                     c["shortfall_kwh"]["median"] / eep_off[label], eep_off[label]))
            sys.stdout.flush()
    for line in eep_lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
