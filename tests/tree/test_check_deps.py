"""tools/check_deps.py: the project's tree keeps the folder rules, and the checker fails, naming
file and line, on each kind of violation planted in a small tree of its own."""

import os
import subprocess
import sys

import harness

CHECKER = os.path.join(harness.SOURCE_DIR, "tools", "check_deps.py")


def run(root=None):
    args = [sys.executable, CHECKER] + ([root] if root else [])
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def tree(files):
    """A small tree in a temporary folder: {relative path: text}."""
    root = harness.temp_dir()
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return root


CLEAN = {
    "common/log.h": "#pragma once\n",
    "common/log.c": '#include "log.h"\n',
    "can/bic_proto.h": '#include "log.h"\n',
    "can/can_transport.h": "#pragma once\n",
    "can-gateway/gateway.c": '#include "bic_proto.h"\n#include "log.h"\n#include <stdio.h>\n',
    "charge-ctl/ctl_step.h": "#pragma once\n",
    "charge-ctl/ctl_step.c": '#include "ctl_step.h"\n#include "log.h"\n',
    "mqtt-bridge/bridge.h": "#pragma once\n",
    "mqtt-bridge/bridge.c": '#include "bridge.h"\n',
    "sim/twin.h": "#pragma once\n",
    "sim/twin.c": '#include "twin.h"\n#include "ctl_step.h"\n#include "bic_proto.h"\n',
    "tests/any.c": '#include "twin.h"\n#include "bridge.h"\n#include "bic_proto.h"\n',
}


def with_change(rel, text):
    files = dict(CLEAN)
    files[rel] = text
    return tree(files)


def test_the_project_keeps_the_rules():
    rc, out = run()
    assert rc == 0, out
    assert "the folder rules hold" in out, out


def test_a_clean_tree_passes():
    rc, out = run(tree(CLEAN))
    assert rc == 0, out


def test_common_including_a_service_fails():
    rc, out = run(with_change("common/log.c", '#include "log.h"\n#include "bridge.h"\n'))
    assert rc == 1, out
    assert "common/log.c:2: common/ includes bridge.h from mqtt-bridge/" in out, out


def test_one_service_including_another_fails():
    rc, out = run(with_change("mqtt-bridge/bridge.c", '#include "bridge.h"\n#include "ctl_step.h"\n'))
    assert rc == 1, out
    assert "mqtt-bridge/bridge.c:2: mqtt-bridge/ includes ctl_step.h from charge-ctl/" in out, out
    rc, out = run(with_change("can-gateway/gateway.c", '#  include "bridge.h"\n'))
    assert rc == 1, out
    assert "can-gateway/gateway.c:1: can-gateway/ includes bridge.h" in out, out


def test_the_controller_including_the_simulator_or_can_fails():
    rc, out = run(with_change("charge-ctl/ctl_step.c", '#include "ctl_step.h"\n#include "twin.h"\n'))
    assert rc == 1, out
    assert "charge-ctl/ctl_step.c:2: charge-ctl/ includes twin.h from sim/" in out, out
    rc, out = run(with_change("charge-ctl/ctl_step.c", '#include "can_transport.h"\n'))
    assert rc == 1, out
    assert "charge-ctl/ includes can_transport.h from can/" in out, out
    rc, out = run(with_change("mqtt-bridge/bridge.c", '#include "can_transport.h"\n'))
    assert rc == 1, out
    assert "mqtt-bridge/ includes can_transport.h from can/" in out, out


def test_the_protocol_tables_are_allowed_to_the_bridge_and_the_controller():
    rc, out = run(with_change("mqtt-bridge/bridge.c", '#include "bic_proto.h"\n'))
    assert rc == 0, out
    rc, out = run(with_change("charge-ctl/ctl_step.c", '#include "bic_proto.h"\n'))
    assert rc == 0, out


def test_a_header_with_two_homes_fails():
    rc, out = run(with_change("mqtt-bridge/log.h", "#pragma once\n"))
    assert rc == 1, out
    assert "header log.h exists in common, mqtt-bridge" in out, out


if __name__ == "__main__":
    harness.run_tests()
