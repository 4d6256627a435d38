"""Install rules and the Debian package, checked as a packager and an installer would.

- `cmake --install` with DESTDIR and --prefix /usr puts the programs in bin/sbin, the sample
  configuration in /etc/bic2mqtt, the units in lib/systemd/system naming the installed
  programs, and the docs and the supervisord example in share/doc/bic2mqtt.
- cpack builds the .deb; `dpkg-deb -I/-f/-c` show the control fields (the library
  dependencies declared), the conffile, the maintainer scripts and exactly the expected files.
- lintian reports no error and no warning on the .deb (an override in the package carries its
  reason); every program has a manual page, and `man bicctl` shows every command of
  `bicctl --help` and the exit codes.
- The package installs, is removed and purged in a throwaway root with
  `dpkg --root=DIR --force-not-root --force-script-chrootless --force-depends`: the machine's
  own package database is never touched. --force-depends because the empty root has none of
  the libraries installed (the Depends field is checked above instead). The postinst creates
  the system user and group there (systemd-sysusers --root) and the state directory
  /var/lib/bic2mqtt (systemd-tmpfiles --root), and makes the configuration readable by that
  group only; a reinstall keeps an edited conffile and its mode; remove
  leaves the conffile, purge leaves nothing of the package.
"""

import os
import re
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

BUILD = harness.BUILD_DIR
LIBS = ("libzmq5", "libczmq4", "libmosquitto1", "libinih1", "libcjson1", "libsystemd0")
PROGRAMS = {"usr/sbin/bic-can-gateway", "usr/bin/bicctl", "usr/bin/bic-mqtt-bridge",
            "usr/bin/bic-charge-ctl", "usr/bin/bic-sim"}
UNITS = {"bic-can-gateway.service", "bic-mqtt-bridge.service", "bic-charge-ctl.service",
         "bic-can-up@.service", "bic2mqtt.target"}
EXPECTED = (PROGRAMS
            | {"usr/lib/systemd/system/" + u for u in UNITS}
            | {"etc/bic2mqtt/bic2mqtt.ini", "usr/lib/sysusers.d/bic2mqtt.conf",
               "usr/lib/tmpfiles.d/bic2mqtt.conf",
               "usr/share/doc/bic2mqtt/README.md", "usr/share/doc/bic2mqtt/deployment.md",
               "usr/share/doc/bic2mqtt/configuration.md",
               "usr/share/doc/bic2mqtt/examples/bic2mqtt.conf",
               "usr/share/doc/bic2mqtt/examples/80-bic2mqtt-can.network",
               "usr/share/bic2mqtt/profiles/p1_clear_march.csv",
               "usr/share/doc/bic2mqtt/copyright", "usr/share/doc/bic2mqtt/changelog.gz",
               "usr/share/lintian/overrides/bic2mqtt"}
            | {"usr/share/man/man1/%s.1.gz" % p for p in ("bicctl", "bic-mqtt-bridge",
                                                         "bic-charge-ctl", "bic-sim")}
            | {"usr/share/man/man8/bic-can-gateway.8.gz"})


def run(argv, timeout=120, env=None, check=True):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(map(str, argv)), r.returncode,
                                                    r.stdout, r.stderr))
    return r


def project_version():
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        m = re.search(r"^CMAKE_PROJECT_VERSION:STATIC=(\S+)$", f.read(), re.M)
    assert m, "no CMAKE_PROJECT_VERSION in the cache"
    return m.group(1)


def files_under(root):
    """Regular files and symlinks under root, relative."""
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def check_units(root):
    """Each unit's ExecStart= names a program that is in the tree, at its /usr path."""
    for u in UNITS:
        with open(os.path.join(root, "usr/lib/systemd/system", u)) as f:
            text = f.read()
        assert "_CPack_Packages" not in text and root not in text, (u, text)
        for exe in re.findall(r"^ExecStart=-?(/\S+)", text, re.M):
            if exe.startswith("/usr/sbin/bic") or exe.startswith("/usr/bin/bic"):
                assert exe.lstrip("/") in PROGRAMS, (u, exe)


def test_cmake_install_puts_files_in_the_usual_places():
    dest = harness.temp_dir("bic-install-")
    env = dict(os.environ, DESTDIR=dest)
    run(["cmake", "--install", BUILD, "--prefix", "/usr"], env=env)
    got = files_under(dest)
    missing = EXPECTED - got
    assert not missing, "not installed: %s" % sorted(missing)
    outside = [f for f in got if not (f.startswith("usr/") or f.startswith("etc/bic2mqtt/"))]
    assert not outside, "installed outside /usr and /etc/bic2mqtt: %s" % outside
    check_units(dest)
    with open(os.path.join(dest, "etc/bic2mqtt/bic2mqtt.ini")) as f, \
            open(harness.source_path("deploy", "bic2mqtt.ini")) as g:
        assert f.read() == g.read(), "the installed sample differs from deploy/bic2mqtt.ini"


def build_deb():
    out = harness.temp_dir("bic-cpack-")
    run(["cpack", "-G", "DEB", "--config", os.path.join(BUILD, "CPackConfig.cmake"), "-B", out],
        timeout=600)
    debs = [f for f in os.listdir(out) if f.endswith(".deb")]
    assert len(debs) == 1, os.listdir(out)
    return os.path.join(out, debs[0])


def test_deb_control_fields_contents_and_install_into_a_throwaway_root():
    if not shutil.which("dpkg-deb"):
        raise AssertionError("dpkg-deb is missing (Debian package dpkg)")
    deb = build_deb()
    version = project_version()
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    assert os.path.basename(deb) == "bic2mqtt_%s_%s.deb" % (version, arch), deb

    # -- control fields
    info = run(["dpkg-deb", "-I", deb]).stdout

    def field(name):
        return run(["dpkg-deb", "-f", deb, name]).stdout.strip()
    assert field("Package") == "bic2mqtt", info
    assert field("Version") == version, info
    assert field("Architecture") == arch, info
    assert field("Maintainer"), info
    assert field("Description").startswith("Mean Well BIC-2200"), info
    depends = [d.strip() for d in field("Depends").split(",")]
    for lib in LIBS:
        assert any(re.match(r"^%s( \(|$)" % re.escape(lib), d) for d in depends), \
            "Depends lacks %s: %s" % (lib, depends)
    # systemd-sysusers and systemd-tmpfiles run in the postinst; adduser is not used
    assert "systemd" in depends and "adduser" not in field("Depends"), depends
    for member in ("conffiles", "postinst", "prerm", "postrm"):
        assert re.search(r"\b%s\b" % member, info), "control archive lacks %s:\n%s" % (member, info)

    # -- the control archive and the files, unpacked
    x = harness.temp_dir("bic-deb-x-")
    run(["dpkg-deb", "-e", deb, os.path.join(x, "DEBIAN")])
    run(["dpkg-deb", "-x", deb, os.path.join(x, "root")])
    with open(os.path.join(x, "DEBIAN", "conffiles")) as f:
        assert f.read().split() == ["/etc/bic2mqtt/bic2mqtt.ini"]
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(x, "DEBIAN", script)
        assert os.stat(path).st_mode & stat.S_IXUSR, "%s is not executable" % script
        run(["sh", "-n", path])
    listing = run(["dpkg-deb", "-c", deb]).stdout
    packaged = {line.split()[-1][2:] for line in listing.splitlines()
                if not line.startswith("d")}
    root = os.path.join(x, "root")
    assert packaged == files_under(root)
    missing = EXPECTED - packaged
    assert not missing, "not in the package: %s" % sorted(missing)
    outside = [f for f in packaged if not (f.startswith("usr/") or f.startswith("etc/bic2mqtt/"))]
    assert not outside, "files outside /usr and /etc/bic2mqtt: %s" % outside
    assert not [f for f in packaged if f.startswith("usr/local/")], packaged
    check_units(root)
    # The stripped programs still load and run (against this machine's libraries).
    for p in sorted(PROGRAMS):
        r = run([os.path.join(root, p), "--help"], timeout=10, check=False)
        assert r.returncode == 0 and "usage" in (r.stdout + r.stderr).lower(), \
            "%s --help: %r" % (p, r)

    # -- install, remove, purge in a throwaway root (the machine's dpkg database untouched)
    droot = harness.temp_dir("bic-dpkg-root-")
    admin = os.path.join(droot, "var/lib/dpkg")
    for d in ("info", "updates", "triggers"):
        os.makedirs(os.path.join(admin, d))
    for f in ("status", "available"):
        open(os.path.join(admin, f), "w").close()
    os.makedirs(os.path.join(droot, "etc"))
    dpkg = ["dpkg", "--root=" + droot, "--force-not-root", "--force-script-chrootless"]
    before = files_under(droot)

    r = run(dpkg + ["--force-depends", "-i", deb], timeout=120)
    status = run(["dpkg-query", "--admindir=" + admin, "-W", "-f=${Status}", "bic2mqtt"]).stdout
    assert status == "install ok installed", status
    assert "commission each device" in r.stdout, r.stdout
    for f in EXPECTED:
        assert os.path.lexists(os.path.join(droot, f)), "not installed: " + f
    with open(os.path.join(droot, "etc/passwd")) as f:
        assert re.search(r"^bic2mqtt:x:\d+:\d+:", f.read(), re.M), "no system user bic2mqtt"
    with open(os.path.join(droot, "etc/group")) as f:
        groups = f.read()
    m = re.search(r"^bic2mqtt:x:(\d+):", groups, re.M)
    assert m, "no group bic2mqtt:\n" + groups
    assert re.search(r"^dialout:x:\d+:.*\bbic2mqtt\b", groups, re.M), \
        "bic2mqtt is not in dialout:\n" + groups
    state = os.path.join(droot, "var/lib/bic2mqtt")
    assert os.path.isdir(state), "the postinst did not make /var/lib/bic2mqtt"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o750, oct(os.stat(state).st_mode)
    if os.geteuid() == 0:
        assert os.stat(state).st_gid == int(m.group(1)), os.stat(state)
    st = os.stat(os.path.join(droot, "etc/bic2mqtt/bic2mqtt.ini"))
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    if os.geteuid() == 0:
        assert st.st_gid == int(m.group(1)) and st.st_uid == 0, (st.st_uid, st.st_gid)

    # The installed programs accept the installed sample.
    for p in ("usr/sbin/bic-can-gateway", "usr/bin/bic-mqtt-bridge", "usr/bin/bic-charge-ctl"):
        r = run([os.path.join(droot, p), "--check-config", "-c",
                 os.path.join(droot, "etc/bic2mqtt/bic2mqtt.ini")], timeout=20, check=False)
        assert r.returncode == 0, "%s --check-config: %r" % (p, r)

    # An administrator's edit of the conffile and its mode survive a reinstall (upgrade path:
    # the postinst runs with the old version and leaves both alone).
    ini = os.path.join(droot, "etc/bic2mqtt/bic2mqtt.ini")
    with open(ini, "a") as f:
        f.write("; edited by the administrator\n")
    os.chmod(ini, 0o600)
    r = run(dpkg + ["--force-depends", "--force-confold", "-i", deb], timeout=120)
    with open(ini) as f:
        assert f.read().endswith("; edited by the administrator\n"), "the edit was lost"
    assert stat.S_IMODE(os.stat(ini).st_mode) == 0o600, oct(os.stat(ini).st_mode)
    assert not os.path.exists(ini + ".dpkg-new"), "same conffile: no .dpkg-new expected"

    run(dpkg + ["-r", "bic2mqtt"])
    left = files_under(droot) - before
    assert "etc/bic2mqtt/bic2mqtt.ini" in left, "remove must keep the conffile"
    assert not [f for f in left if f.startswith("usr/")], "remove left: %s" % sorted(left)

    run(dpkg + ["-P", "bic2mqtt"])
    left = files_under(droot) - before
    # What remains is the user database systemd-sysusers wrote (users stay, as in Debian).
    allowed = {"etc/passwd", "etc/group", "etc/shadow", "etc/gshadow", "etc/.pwd.lock"}
    assert not [f for f in left if f not in allowed and not f.startswith("var/lib/dpkg/")], \
        "purge left: %s" % sorted(left)
    assert not os.path.exists(os.path.join(droot, "etc/bic2mqtt")), "purge left /etc/bic2mqtt"
    r = run(["dpkg-query", "--admindir=" + admin, "-W", "-f=${Status}", "bic2mqtt"], check=False)
    assert r.returncode != 0 or "not-installed" in r.stdout, r.stdout


def test_lintian_clean_and_manual_pages():
    assert shutil.which("lintian"), "lintian is missing (tools/deps.sh installs it)"
    assert shutil.which("man"), "man is missing (Debian package man-db, tools/deps.sh)"
    deb = build_deb()
    r = run(["lintian", "--fail-on", "error,warning", "--no-tag-display-limit", deb],
            timeout=600, check=False)
    tags = [line for line in r.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert r.returncode == 0 and not tags, "lintian (exit %d):\n%s%s" % (
        r.returncode, r.stdout, r.stderr)

    x = harness.temp_dir("bic-deb-man-")
    run(["dpkg-deb", "-x", deb, x])
    # Every override says why: a comment right above its block of overrides.
    with open(os.path.join(x, "usr/share/lintian/overrides/bic2mqtt")) as f:
        reason = False
        for line in f.read().splitlines():
            if line.startswith("#"):
                reason = True
            elif not line.strip():
                reason = False
            else:
                assert reason, "a lintian override without a reason: " + line
    for p in PROGRAMS:
        name = os.path.basename(p)
        section = "8" if p.startswith("usr/sbin/") else "1"
        page = os.path.join(x, "usr/share/man/man%s/%s.%s.gz" % (section, name, section))
        assert os.path.exists(page), "no manual page for " + name
        r = run(["man", "--warnings", "-l", page],
                env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="", LC_ALL="C.UTF-8"))
        assert "NAME" in r.stdout and name in r.stdout and "EXIT STATUS" in r.stdout, r.stdout
        assert not r.stderr.strip(), "%s: %s" % (page, r.stderr)
        if name == "bicctl":
            text = r.stdout
    # man bicctl: every command bicctl --help lists, and every exit code.
    usage = run([os.path.join(BUILD, "can-gateway", "bicctl"), "--help"]).stdout
    commands = re.findall(r"^  ([a-z_]+)\b", usage.split("commands:")[1], re.M)
    assert len(commands) >= 30, commands
    for c in commands:
        assert re.search(r"^\s+%s\b" % c, text, re.M), "man bicctl lacks the command " + c
    codes = re.findall(r"(\d) [a-z]", usage.split("exit codes:")[1])
    assert codes == ["0", "1", "2", "3", "4", "5", "6"], codes
    exits = text.split("EXIT STATUS")[1].split("EXAMPLES")[0]
    for code in codes:
        assert re.search(r"^\s+%s(\s|$)" % code, exits, re.M), "man bicctl lacks exit code " + code


if __name__ == "__main__":
    harness.run_tests()
