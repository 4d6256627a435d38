"""deploy/bic2mqtt.ini, the sample configuration, is complete, at its defaults, and valid.

- Every key of docs/configuration.md and of the loader's table (common/config_schema.c)
  appears in the sample, set or (where the default is derived from other keys) commented out.
- Every key set in the sample is one the loader knows, and holds the documented default,
  except the few a user must edit (the device's limits, the battery curve, the meter topic).
- Each program accepts the sample with --check-config, without a single warning; and the
  check is shown to bite: a copy with an out-of-range value is refused.
"""
import os
import re
import subprocess
import sys
import tempfile

from deploy_common import DEPLOY, SRC, Checks, find_program

SAMPLE = os.path.join(DEPLOY, "bic2mqtt.ini")
# Keys without a literal default that the sample sets to an example the user edits.
EDITED = {("DEVICE", "Id/#/ChargeVoltage"), ("DEVICE", "Id/#/DischargeVoltage"),
          ("DEVICE", "Id/#/MaxChargeCurrent"), ("DEVICE", "Id/#/MaxDischargeCurrent"),
          ("BAT_0", "Cap2V/#"), ("CHARGE_CONTROL", "Id/#/TopicPower")}
CHECKERS = ("bic-can-gateway", "bic-mqtt-bridge", "bic-charge-ctl")

c = Checks()


def pattern(key):
    """A key of the schema (# = a number) or the doc (X, P, H, N = a number) as a regex."""
    k = re.escape(key).replace(r"\#", "#")
    k = re.sub(r"^Id/X/", "Id/#/", k)
    k = re.sub(r"^Id/X@G/", "Id/#@#/", k)
    k = re.sub(r"^Gw/G/", "Gw/#/", k)
    k = re.sub(r"/Hour/H/", "/Hour/#/", k)
    k = re.sub(r"/switch/N/", "/switch/#/", k)
    k = re.sub(r"^Cap2V/P$", "Cap2V/#", k)
    return re.compile("^" + k.replace("#", r"\d+") + "$", re.I)


def schema_keys():
    """[(section, key, default or None)] from common/config_schema.c."""
    with open(os.path.join(SRC, "common", "config_schema.c")) as f:
        text = f.read()
    out = []
    for m in re.finditer(r'(?:INT|FLT|BOOL|STR|ENUM|PATH|TOPIC|ENDP|CHECKED)\("(\w+)", "([^"]+)", '
                         r'(NULL|"[^"]*")', text):
        out.append((m.group(1), m.group(2), None if m.group(3) == "NULL" else m.group(3)[1:-1]))
    for m in re.finditer(r'\{"(\w+)", "([^"]+)", CT_\w+, (NULL|"[^"]*")', text):
        out.append((m.group(1), m.group(2), None if m.group(3) == "NULL" else m.group(3)[1:-1]))
    return out


def doc_keys():
    """[(section, key)] from the tables of docs/configuration.md."""
    with open(os.path.join(SRC, "docs", "configuration.md")) as f:
        lines = f.read().splitlines()
    out, section = [], None
    for line in lines:
        m = re.match(r"^## \[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        if not section or not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        prev = None
        for name in re.findall(r"`([^`]+)`", cell):
            if name.startswith("/") and prev:          # `Id/X/Pid/P`, `/I`
                name = prev.rsplit("/", 1)[0] + name
            elif name.startswith("…") and prev:        # `…HourStart`, `…Stop`
                name = re.sub(r"[A-Z][a-z]+$", name[1:], prev)
            elif "/" not in name and prev and "/" in prev:  # `Id/X/MinSocPct`, `MaxSocPct`
                name = prev.rsplit("/", 1)[0] + "/" + name
            out.append((section, name))
            prev = name
    return out


def sample_entries():
    """[(section, key, value, active)] of the sample; commented-out keys are inactive."""
    out, section = [], None
    with open(SAMPLE) as f:
        for line in f:
            line = line.strip()
            m = re.match(r"^\[(\w+)\]$", line)
            if m:
                section = m.group(1).upper()
                continue
            m = re.match(r"^([;#]?)\s*([A-Za-z][\w/@]*)\s*=\s*(.*)$", line)
            if m and section:
                out.append((section, m.group(2), m.group(3).strip(), m.group(1) == ""))
    return out


def same_value(a, b):
    if a.lower() == b.lower():
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def main():
    entries = sample_entries()
    schema = schema_keys()
    c.check(len(schema) > 60, f"read the loader's key table ({len(schema)} keys)")
    docs = doc_keys()
    c.check(len(docs) > 60, f"read the documented keys ({len(docs)} keys)")

    def present(section, key, active=None):
        p = pattern(key)
        return [e for e in entries if e[0] == section.upper() and p.match(e[1])
                and (active is None or e[3] == active)]

    missing_doc = [f"[{s}] {k}" for s, k in docs if not present(s, k)]
    c.check(not missing_doc, f"every documented key is in the sample (missing: {missing_doc})")
    missing_schema = [f"[{s}] {k}" for s, k, _ in schema if not present(s, k)]
    c.check(not missing_schema, f"every key the loader knows is in the sample (missing: {missing_schema})")

    unknown = [f"[{s}] {k}" for s, k, _, act in entries
               if act and not any(s == ss.upper() and pattern(kk).match(k) for ss, kk, _ in schema)]
    c.check(not unknown, f"the sample sets only known keys (unknown: {unknown})")

    off_default = []
    for s, k, default in schema:
        for _, key, value, _ in present(s, k, active=True):
            if (s, k) in EDITED:
                continue
            if default is None:
                off_default.append(f"[{s}] {key} = {value} (no literal default: comment it out)")
            elif not same_value(value, default):
                off_default.append(f"[{s}] {key} = {value} (default {default!r})")
    c.check(not off_default, f"every key set holds its default (not: {off_default})")
    for s, k in EDITED:
        c.check(bool(present(s, k, active=True)), f"the sample sets [{s}] {k} for the user to edit")

    for prog in CHECKERS:
        path = find_program(prog)
        if not c.check(path is not None, f"{prog} is built"):
            continue
        r = subprocess.run([path, "--check-config", "-c", SAMPLE], capture_output=True, text=True,
                           timeout=30)
        warnings = [l for l in (r.stdout + r.stderr).splitlines() if "warn" in l.lower() or "error" in l.lower()]
        c.check(r.returncode == 0 and not warnings,
                f"{prog} --check-config accepts the sample without warnings (rc {r.returncode}: {warnings})")
        with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
            with open(SAMPLE) as s:
                f.write(s.read().replace("BrokerPort = 1883", "BrokerPort = 0"))
            bad = f.name
        try:
            r = subprocess.run([path, "--check-config", "-c", bad], capture_output=True, text=True, timeout=30)
            c.check(r.returncode == 1 and "BrokerPort" in r.stderr,
                    f"{prog} --check-config refuses BrokerPort = 0, naming the key (rc {r.returncode})")
        finally:
            os.unlink(bad)
    return c.exit_code()


if __name__ == "__main__":
    sys.exit(main())
