#!/usr/bin/env python3
"""The folder rules of DESIGN.md, checked on every #include "..." of the project's C files.

Each folder may include headers only from the folders its rule lists (and from itself):

  common/       nothing else: it depends on no service
  can/          common/
  charge-ctl/   common/, can/'s protocol tables  (the controller never touches CAN, nor the
                                              simulator)
  mqtt-bridge/  common/, can/'s protocol tables  (the bridge never touches CAN)
  can-gateway/  common/, can/               (the only service with device access)
  sim/          common/, can/, charge-ctl/  (the twin runs the controller's step function)

can/'s protocol tables are the pure description of the device (bic_proto.h: commands, ranges,
decoders); its transports and frames (can_transport.h, can_frame.h, slcan.h) are CAN code.

tests/, bench/, fuzz/ and tools/ may include anything. A header name that exists in two
folders is an error too (an include by bare name would then depend on the search order).

usage: check_deps.py [ROOT]   (default: the tree this script is in)
Prints each violation as FILE:LINE and exits 1 on any, 0 when the tree keeps the rules."""
import os
import re
import sys

ALLOWED = {
    "common": set(),
    "can": {"common"},
    "charge-ctl": {"common"},
    "mqtt-bridge": {"common"},
    "can-gateway": {"common", "can"},
    "sim": {"common", "can", "charge-ctl"},
}
# Single headers a folder may include from a folder its rule does not list.
ALLOWED_HEADERS = {
    "charge-ctl": {("can", "bic_proto.h")},
    "mqtt-bridge": {("can", "bic_proto.h")},
}
FREE = {"tests", "bench", "fuzz", "tools"}
SKIP_DIRS = {".git", "packaging", "deploy", "docs", "data"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def source_files(root):
    """(folder, path relative to root) for every .c/.h below the rule's and the free folders."""
    for top in sorted(os.listdir(root)):
        full = os.path.join(root, top)
        if not os.path.isdir(full) or top in SKIP_DIRS or top.startswith("build"):
            continue
        if top not in ALLOWED and top not in FREE:
            continue
        for dirpath, dirnames, filenames in os.walk(full):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("build"))
            for name in sorted(filenames):
                if name.endswith((".c", ".h")):
                    yield top, os.path.relpath(os.path.join(dirpath, name), root)


def check(root):
    """Returns the list of violations, each a line of text."""
    files = list(source_files(root))
    owner = {}  # header base name -> folders holding it (rule folders only)
    for folder, rel in files:
        if folder in ALLOWED and rel.endswith(".h"):
            owner.setdefault(os.path.basename(rel), set()).add(folder)
    problems = []
    for name, folders in sorted(owner.items()):
        if len(folders) > 1:
            problems.append("header %s exists in %s: give it one home" %
                            (name, ", ".join(sorted(folders))))
    for folder, rel in files:
        if folder in FREE:
            continue
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                name = os.path.basename(m.group(1))
                for target in sorted(owner.get(name, ())):
                    if (target != folder and target not in ALLOWED[folder] and
                            (target, name) not in ALLOWED_HEADERS.get(folder, ())):
                        allowed = ", ".join(sorted(ALLOWED[folder]) + [
                            "%s/%s" % th for th in sorted(ALLOWED_HEADERS.get(folder, ()))])
                        allowed = allowed or "no other folder"
                        problems.append("%s:%d: %s/ includes %s from %s/ (allowed: %s)" %
                                        (rel, lineno, folder, name, target, allowed))
    return problems


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print("check_deps: %d violation(s) of the folder rules (tools/check_deps.py)" % len(problems))
        return 1
    print("check_deps: the folder rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
