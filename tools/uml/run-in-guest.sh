#!/bin/sh
# Runs one command inside a user-mode-linux guest kernel that has SocketCAN, with vcan0 up.
#
# The build hosts' kernels have no CAN, but Debian's user-mode-linux kernel does and boots
# as an ordinary process in a couple of seconds with the host's root filesystem (hostfs).
# The guest sees the same files as the host (binaries, build tree, /tmp), plus its own
# /proc, /sys, /dev, a private tmpfs on /run (so the default ipc:///run/bic2mqtt/ endpoints
# work), loopback up, and the modules can, can_raw, can_dev, vcan with vcan0 up.
#
# usage: run-in-guest.sh [-t SECONDS] [-m MEM] [-i IFACE]... [--systemd] [--] CMD [ARG...]
#   -t SECONDS  time limit for CMD inside the guest (default 120); the host adds a margin
#               for boot and power-off and kills the whole guest if even that passes
#   -m MEM      guest memory (default 384M)
#   -i IFACE    create and bring up another vcan interface besides vcan0 (repeatable)
#   --systemd   boot systemd as the guest's init and run CMD as a service once the system
#               is up (sysinit and basic targets), for tests of systemd units. The host's
#               root is then read-only under a tmpfs overlay: the guest may change any file
#               (install units, create users) and the host sees none of it; CMD cannot
#               write files for the host either, only its output and exit status come back.
#
# CMD runs with the caller's environment and working directory, stdin from /dev/null. Its
# stdout and stderr are copied to ours once the guest has stopped. Exit status: CMD's own;
# 124 when CMD ran out of time; 125 when the guest failed (the console log goes to stderr);
# 77 when this machine cannot run the guest at all: no linux.uml or modules, or the guest
# kernel did not reach CMD within BIC_UML_BOOT_LIMIT_S (default 60) seconds (for example in
# a chroot or container whose /dev the UML kernel cannot use). Then the reason is printed on
# a line starting with "SKIP:", and ctest (SKIP_RETURN_CODE 77) reports the test skipped.
# No process survives the script: the guest powers itself off, and on a timeout or a signal
# the whole guest process group is killed.
set -eu

timeout_s=120
mem=384M
ifaces=vcan0
systemd=0
while [ $# -gt 0 ]; do
    case "$1" in
    -t) [ $# -ge 2 ] || { echo "run-in-guest: -t needs SECONDS" >&2; exit 2; }
        timeout_s=$2; shift 2 ;;
    -m) [ $# -ge 2 ] || { echo "run-in-guest: -m needs a size such as 384M" >&2; exit 2; }
        mem=$2; shift 2 ;;
    -i) [ $# -ge 2 ] || { echo "run-in-guest: -i needs an interface name" >&2; exit 2; }
        ifaces="$ifaces $2"; shift 2 ;;
    --systemd) systemd=1; shift ;;
    --) shift; break ;;
    -*) echo "run-in-guest: unknown option $1 (allowed: -t SECONDS, -m MEM, -i IFACE, --systemd)" >&2
        exit 2 ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: run-in-guest.sh [-t SECONDS] [-m MEM] [-i IFACE]... [--systemd] CMD [ARG...]" >&2; exit 2; }
case "$timeout_s" in
''|*[!0-9]*) echo "run-in-guest: -t must be a whole number of seconds, got '$timeout_s'" >&2; exit 2 ;;
esac
[ "$timeout_s" -ge 1 ] && [ "$timeout_s" -le 3600 ] ||
    { echo "run-in-guest: -t must be 1-3600 seconds, got $timeout_s" >&2; exit 2; }
case "$mem" in
*[!0-9MmGg]*|'') echo "run-in-guest: -m must look like 384M, got '$mem'" >&2; exit 2 ;;
esac
for i in $ifaces; do
    case "$i" in
    *[!A-Za-z0-9_.-]*|'') echo "run-in-guest: bad interface name '$i'" >&2; exit 2 ;;
    esac
done

boot_limit=${BIC_UML_BOOT_LIMIT_S:-60}
case "$boot_limit" in ''|*[!0-9]*) echo "run-in-guest: bad BIC_UML_BOOT_LIMIT_S" >&2; exit 2 ;; esac

uml=${BIC_UML_KERNEL:-$(command -v linux.uml || true)}
[ -n "$uml" ] && [ -x "$uml" ] ||
    { echo "run-in-guest: linux.uml not found (Debian package user-mode-linux, tools/deps.sh)" >&2; exit 125; }
command -v modprobe >/dev/null 2>&1 ||
    { echo "run-in-guest: modprobe not found (Debian package kmod, tools/deps.sh)" >&2; exit 125; }
# The module tree that belongs to this kernel binary.
kver=$("$uml" --version 2>/dev/null | tail -n 1 | tr -d '[:space:]')
moddir=${BIC_UML_MODULES:-/usr/lib/uml/modules/$kver}
[ -f "$moddir/modules.dep" ] ||
    { echo "run-in-guest: no modules for UML kernel '$kver' in $moddir" >&2; exit 125; }

run=$(mktemp -d "${TMPDIR:-/tmp}/bic-guest.XXXXXX")
guest_pid=
# linux.uml makes itself a session leader, so its host processes form a process group of
# their own (not timeout's). Its pid file names it; the command line check makes sure a
# recycled pid is never hit.
kill_uml() {
    for f in "$run"/uml/*/pid; do
        [ -f "$f" ] || continue
        p=$(cat "$f" 2>/dev/null || true)
        case "$p" in ''|*[!0-9]*) continue ;; esac
        if { tr '\0' ' ' < "/proc/$p/cmdline"; } 2>/dev/null | grep -qF "$run/init"; then
            kill -s KILL -- "-$p" 2>/dev/null || true
        fi
    done
}
cleanup() {
    if [ -n "$guest_pid" ]; then
        kill -s KILL -- "-$guest_pid" 2>/dev/null || true
        kill_uml
        wait "$guest_pid" 2>/dev/null || true
    fi
    kill_uml
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# modprobe -d wants BASE/lib/modules/VERSION.
mkdir -p "$run/mods/lib/modules"
ln -s "$moddir" "$run/mods/lib/modules/$kver"

# Each argument single-quoted for the guest's shell.
quoted=
for a in "$@"; do
    q=$(printf '%s' "$a" | sed "s/'/'\\\\''/g")
    quoted="$quoted '$q'"
done
export -p > "$run/env"

cat > "$run/init" <<EOF
#!/bin/sh
# Guest init: written by run-in-guest.sh for one run.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# mount -n: the mount table lives in the host's /run; the guest's mounts are its own.
fail() { echo "guest: \$*" > '$run/guest-error'; sync; echo o > /proc/sysrq-trigger; sleep 60; }
mount -n -t proc proc /proc || fail "mount /proc"
mount -n -t sysfs sys /sys || fail "mount /sys"
[ -e /dev/null ] || mount -n -t devtmpfs dev /dev || fail "mount /dev"
mount -n -t tmpfs -o mode=0755 run /run || fail "mount /run"
mkdir -p /dev/pts /dev/shm
mount -n -t devpts -o ptmxmode=0666 devpts /dev/pts || fail "mount /dev/pts"
mount -n -t tmpfs shm /dev/shm || fail "mount /dev/shm"
ip link set lo up || fail "loopback up"
modprobe -d '$run/mods' -a can_raw vcan slcan || fail "modprobe can_raw vcan slcan"
for i in $ifaces; do
    ip link add dev "\$i" type vcan && ip link set "\$i" up || fail "vcan \$i up"
done
. '$run/env'
cd '$PWD' || fail "cd $PWD"
: > '$run/started'
timeout -k 5 $timeout_s $quoted < /dev/null > '$run/stdout' 2> '$run/stderr'
echo \$? > '$run/status.tmp'
sync
mv '$run/status.tmp' '$run/status'
sync
echo o > /proc/sysrq-trigger
sleep 60
EOF
chmod +x "$run/init"
root_mode=rw

if [ "$systemd" = 1 ]; then
    [ -x /lib/systemd/systemd ] ||
        { echo "run-in-guest: --systemd needs /lib/systemd/systemd (Debian package systemd)" >&2; exit 125; }
    # The host's root stays read-only; $run is mounted read-write at /bic-run in the guest.
    root_mode=ro
    cat > "$run/cmd" <<EOF
#!/bin/sh
# The command, run by the guest's systemd as bic-guest-cmd.service.
. /bic-run/env
cd '$PWD' || { echo "guest: cd $PWD failed" > /bic-run/guest-error; sync; echo o > /proc/sysrq-trigger; }
: > /bic-run/started
timeout -k 5 $timeout_s $quoted < /dev/null > /bic-run/stdout 2> /bic-run/stderr
echo \$? > /bic-run/status.tmp
sync
mv /bic-run/status.tmp /bic-run/status
sync
echo o > /proc/sysrq-trigger
sleep 60
EOF
    chmod +x "$run/cmd"
    cat > "$run/init" <<EOF
#!/bin/sh
# Guest pre-init: written by run-in-guest.sh --systemd for one run. Builds a writable root
# (tmpfs over the read-only host root), adds the command as a unit, and hands over to systemd.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# mount -n: the root is read-only, there is no mount table to update.
R=/mnt/bic-run
fail() { echo "guest: \$*" > \$R/guest-error; sync; echo o > /proc/sysrq-trigger; sleep 60; }
mount -n -t proc proc /proc
mount -n -t sysfs sys /sys
[ -e /dev/null ] || mount -n -t devtmpfs dev /dev
mount -n -t tmpfs -o mode=0755 guest /mnt
mkdir /mnt/bic-run /mnt/upper /mnt/work /mnt/root
mount -n -t hostfs -o '$run' none /mnt/bic-run || { echo o > /proc/sysrq-trigger; sleep 60; }
ip link set lo up || fail "loopback up"
modprobe -d '$run/mods' -a can_raw vcan slcan overlay || fail "modprobe can_raw vcan slcan overlay"
for i in $ifaces; do
    ip link add dev "\$i" type vcan && ip link set "\$i" up || fail "vcan \$i up"
done
mount -n -t overlay overlay -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work /mnt/root ||
    fail "overlay root"
mkdir -p /mnt/root/bic-run /mnt/root/oldroot
mount -n --move /mnt/bic-run /mnt/root/bic-run || fail "move /bic-run"
R=/mnt/root/bic-run
# Keep the host's /tmp visible: no clean-up of /tmp at boot (it would hide the host's files).
printf 'd /tmp 1777 root root -\\nd /var/tmp 1777 root root -\\n' > /mnt/root/etc/tmpfiles.d/tmp.conf
cat > /mnt/root/etc/systemd/system/bic-guest-cmd.service <<'UNIT'
[Unit]
Description=run-in-guest command
[Service]
Type=oneshot
ExecStart=/bic-run/cmd
UNIT
cat > /mnt/root/etc/systemd/system/bic-guest.target <<'UNIT'
[Unit]
Description=run-in-guest
Requires=basic.target bic-guest-cmd.service
After=basic.target bic-guest-cmd.service
UNIT
for m in proc sys dev; do mount -n --move /\$m /mnt/root/\$m 2>/dev/null; done
cd /mnt/root
pivot_root . oldroot || fail "pivot_root"
exec chroot . /bin/sh -c 'umount -l /oldroot; exec /lib/systemd/systemd systemd.unit=bic-guest.target'
EOF
    chmod +x "$run/init"
fi

# The UML memory file lives in TMPDIR; shared memory makes the guest faster than disk.
uml_tmp=/dev/shm
[ -d "$uml_tmp" ] && [ -w "$uml_tmp" ] || uml_tmp=${TMPDIR:-/tmp}
# Boot and power-off take a few seconds; the margin covers a slow, shared machine.
# BIC_UML_HOST_LIMIT_S overrides the host's backstop (the harness's own test uses it).
host_limit=${BIC_UML_HOST_LIMIT_S:-$((timeout_s + 60))}
case "$host_limit" in ''|*[!0-9]*) echo "run-in-guest: bad BIC_UML_HOST_LIMIT_S" >&2; exit 2 ;; esac
TMPDIR=$uml_tmp timeout -k 5 "$host_limit" "$uml" mem="$mem" \
    root=/dev/root rootfstype=hostfs rootflags=/ "$root_mode" init="$run/init" \
    con=null ssl=null con0=null,fd:1 uml_dir="$run/uml" \
    < /dev/null > "$run/console.log" 2>&1 &
guest_pid=$!
# The console lines that say why a guest did not get to CMD: the kernel panic and the first
# "not permitted" (such as "epollctl add err fd 14, Operation not permitted"), else the last.
console_reason() {
    { grep -iE 'kernel panic|not permitted' "$run/console.log" | head -n 2 | tr '\n' ';' |
        sed 's/;$//'; } 2>/dev/null | grep . ||
        { grep -v '^[[:space:]]*$' "$run/console.log" | tail -n 1; } 2>/dev/null | cut -c1-300
}
# The guest reaches CMD in a few seconds. One that has not after boot_limit seconds, without
# a set-up failure of its own, never will on this machine: say so and skip, quickly, instead
# of waiting for the host limit. (Polled once a second: the guest writes to hostfs, there is
# nothing to wait on.)
waited=0
while [ ! -e "$run/started" ] && [ ! -e "$run/guest-error" ] && kill -0 "$guest_pid" 2>/dev/null; do
    if [ "$waited" -ge "$boot_limit" ]; then
        kill -s KILL -- "-$guest_pid" 2>/dev/null || true
        kill_uml
        wait "$guest_pid" 2>/dev/null || true
        guest_pid=
        why=$(console_reason)
        echo "SKIP: the user-mode-linux guest kernel did not reach the command within ${boot_limit} s on this machine (console: ${why:-nothing})"
        tail -n 30 "$run/console.log" >&2 || true
        exit 77
    fi
    sleep 1
    waited=$((waited + 1))
done
rc=0
wait "$guest_pid" || rc=$?
guest_pid=
kill_uml
if [ ! -e "$run/started" ] && [ ! -e "$run/guest-error" ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ]; then
    why=$(console_reason)
    echo "SKIP: the user-mode-linux guest kernel stopped (exit $rc) before it reached the command on this machine (console: ${why:-nothing})"
    tail -n 30 "$run/console.log" >&2 || true
    exit 77
fi

[ -f "$run/stdout" ] && cat "$run/stdout"
[ -f "$run/stderr" ] && cat "$run/stderr" >&2
if [ -f "$run/status" ]; then
    exit "$(cat "$run/status")"
fi
if [ -f "$run/guest-error" ]; then
    echo "run-in-guest: guest set-up failed: $(cat "$run/guest-error")" >&2
elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "run-in-guest: the guest did not stop within ${host_limit} s; killed" >&2
else
    echo "run-in-guest: the guest stopped without a result (linux.uml exit $rc)" >&2
fi
echo "run-in-guest: last lines of the guest console:" >&2
tail -n 30 "$run/console.log" >&2 || true
[ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && exit 124
exit 125
