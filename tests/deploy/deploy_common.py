"""Helpers shared by the deployment tests: locating built programs and reading unit files."""
import os

SRC = os.environ.get("BIC_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BIC_BUILD_DIR") or os.path.join(SRC, "build")
DEPLOY = os.path.join(SRC, "deploy")
PROGRAMS = ("bic-can-gateway", "bic-mqtt-bridge", "bic-charge-ctl", "bicctl", "bic-sim")


def find_program(name):
    """The built executable NAME under the build tree, or None."""
    for root, dirs, files in os.walk(BUILD):
        dirs[:] = [d for d in dirs if d != "CMakeFiles"]
        if name in files:
            path = os.path.join(root, name)
            if os.access(path, os.X_OK):
                return path
    return None


def read_unit(path):
    """A unit file as {section: [(key, value), ...]}, keeping repeated keys in order."""
    sections, current = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], [])
                continue
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def values(unit, section, key):
    """Every value of KEY in SECTION, space-separated lists split."""
    out = []
    for k, v in unit.get(section, []):
        if k == key:
            out.extend(v.split())
    return out


class Checks:
    """Collects named checks; prints each, and the verdict at the end."""

    def __init__(self):
        self.failures = []

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            self.failures.append(what)
        return cond

    def exit_code(self):
        if self.failures:
            print(f"{len(self.failures)} check(s) failed:", flush=True)
            for f in self.failures:
                print("  " + f)
            return 1
        return 0
